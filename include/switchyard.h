/*
 * switchyard: an in-process message routing engine.
 *
 * Producers send messages to named routes; a route's policy picks one of its
 * servers; the worker thread that owns the server runs the server's handler.
 * Handlers may reply to the thread that sent a request, or forward messages
 * to other routes.
 *
 * Conventions used by every function below:
 *  - Names: sy_<type>_<verb> for actions (sy_msg_send(), sy_route_add()),
 *    sy_<type>_<noun> for accessors (sy_msg_size(), sy_engine_stats()) and
 *    sy_<type>_is_<adjective> for predicates (sy_msg_is_request()). The
 *    types are engine, server, route, producer, msg, policy, pick, breaker,
 *    dlq, metrics and snapshot. The names of 0.1.0 that broke this grid are
 *    deprecated aliases, at the end of this file, until 0.3.0.
 *  - Actions return 0 or a negative errno value; sy_strerror() explains each.
 *    Burst calls return a count.
 *  - Every call that fails (a negative return, or NULL from a call that
 *    returns a pointer) records why for the calling thread: sy_last_error()
 *    gives "<function>: <what happened>" and sy_last_error_code() the code.
 *    A call that succeeds leaves both as they were.
 *  - NULL: a pointer argument may be NULL only where its documentation
 *    says so. Any other NULL is refused the same way everywhere: -EINVAL
 *    (NULL, 0 or false from a call whose result is not an error code, and
 *    nothing done by a call that returns nothing), recorded as above. A
 *    message that is not the caller's to pass (freed, already sent, held by
 *    the dead letter queue) is refused the same way. Nothing is touched
 *    before the check, so a refused call changes nothing.
 *  - "Any thread" means any thread of the process, attached or not.
 *    "Control" functions (servers, routes, engine life cycle) serialize on an
 *    internal mutex, may block, and must not be called from a handler unless
 *    their documentation says so: from a worker of the same engine they
 *    change nothing and return -EDEADLK (the void ones return at once,
 *    sy_last_error() says why).
 *  - A handler's result is read by its sign only: >= 0 is a success, any
 *    negative value (INT_MIN too) a failure.
 *  - A thread that sends or allocates messages is attached to the engine on
 *    its first call (or explicitly with sy_producer_attach()) and registered
 *    with liburcu's memb flavor; do not register it with that flavor yourself.
 *  - Message ownership: a message belongs to exactly one party at a time. A
 *    call that accepts a message takes it; a call that fails leaves it with
 *    the caller.
 *
 * Copyright (c) 2026 The switchyard authors. MIT licensed, see LICENSE.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SY_BUILDING_LIBRARY)
#define SY_API __attribute__((visibility("default")))
#else
#define SY_API
#endif

#define SY_VERSION_MAJOR 0
#define SY_VERSION_MINOR 1
#define SY_VERSION_PATCH 0

/** An engine: its workers, servers, routes and producers. Opaque. */
typedef struct sy_engine sy_engine;

/** A message: a header the engine owns plus a payload the user fills. Opaque. */
typedef struct sy_msg sy_msg;

/** How an idle worker waits for work. */
enum sy_idle {
	SY_IDLE_DEFAULT = 0, /**< from SY_IDLE, else SY_IDLE_SLEEP */
	SY_IDLE_SPIN,        /**< busy-poll forever: lowest latency, burns a CPU */
	SY_IDLE_YIELD,       /**< poll, then sched_yield() between polls */
	SY_IDLE_SLEEP,       /**< poll, yield, then sleep until a sender wakes it */
};

/** How workers are placed on the allowed CPUs. */
enum sy_pin {
	SY_PIN_DEFAULT = 0, /**< from SY_PIN, else SY_PIN_CLOSE */
	SY_PIN_CLOSE,       /**< worker i on the i-th allowed CPU */
	SY_PIN_SPREAD,      /**< workers spaced evenly over the allowed CPUs */
	SY_PIN_NONE,        /**< no pinning; the scheduler places threads */
};

/**
 * Memory for the engine's pools (message slabs, rings) and its routes. Both
 * functions may be called from any thread, concurrently (a replaced or
 * removed route is freed by liburcu's call_rcu thread). Left NULL, the
 * engine uses its own arena of jemalloc (default build) or malloc.
 */
struct sy_allocator {
	void *(*alloc)(size_t size, size_t align, void *ctx);
	void (*free)(void *ptr, size_t size, void *ctx);
	void *ctx;
};

/**
 * Engine configuration. Fill it with sy_config_init(), then set what you
 * need. A field left at its zero/default value is taken from the environment
 * (SY_WORKERS, SY_CPUS, SY_PIN, SY_IDLE, SY_DISPLAY_AFFINITY) when the engine
 * is created, else from the built-in default. An explicit value always wins.
 */
struct sy_config {
	unsigned workers;      /**< worker threads; 0: SY_WORKERS, else one per allowed CPU */
	const char *cpus;      /**< CPU list ("0-3,8,10-14:2"); NULL: SY_CPUS, else all allowed */
	enum sy_pin pin;       /**< worker placement */
	enum sy_idle idle;     /**< idle strategy */
	int display_affinity;  /**< 1 print the thread -> CPU map at start, 0 do not, -1 SY_DISPLAY_AFFINITY */
	unsigned ring_size;    /**< entries per SPSC ring, a power of two >= 16; 0: 1024 */
	unsigned burst;        /**< ring entries a worker takes from one ring per pass; 0: 32 */
	unsigned max_producers;/**< attached threads at once, workers excluded; 0: 64 */
	unsigned max_servers;  /**< server ids; 0: 256 */
	unsigned max_routes;   /**< route ids; 0: 1024 */
	const struct sy_allocator *allocator; /**< NULL: built-in */
	/**
	 * Deterministic mode: a non-zero seed makes every random choice of the
	 * engine (policies' sy_pick_random()) a function of the seed and the
	 * sending thread's sequence of sends. 0: seeded from the clock.
	 */
	uint64_t seed;
	/**
	 * The engine's clock in nanoseconds, for policies that measure time
	 * (sy_pick_now(), handler service times). Called from any thread,
	 * concurrently; must be monotonic. NULL: CLOCK_MONOTONIC.
	 */
	uint64_t (*clock)(void *ctx);
	void *clock_ctx;
	/** Dead letter queue capacity; when full the oldest entry is evicted
	 *  (and counted). 0: 4096. */
	unsigned max_dead_letters;
	/** Called on every circuit breaker transition, from the thread that
	 *  made it (a sender, a worker or the caller of sy_breaker_force()).
	 *  Must not block or call control functions; NULL: none. */
	void (*on_breaker)(sy_engine *eng, uint32_t server, int from, int to,
			   void *ctx);
	/** Called once when an inbox (the ring from one sending thread to one
	 *  worker) rises past a route's backpressure threshold (congested =
	 *  true, on the sending thread) and once when it has drained below the
	 *  low mark again (false, on the worker's thread). Must not block and
	 *  must not send; NULL: none. */
	void (*on_backpressure)(sy_engine *eng, unsigned worker, bool congested,
				void *ctx);
	/** Called by sy_engine_create(), on its thread, once the engine is
	 *  made, with what in the configuration and environment is legal but
	 *  suspicious: a CPU list stride that steps past its range, CPUs
	 *  listed twice, more pinned workers than CPUs. NULL: such a message
	 *  is written to stderr, prefixed "switchyard: warning: ". */
	void (*on_warning)(const char *message, void *ctx);
	void *callback_ctx;    /**< passed to on_breaker, on_backpressure and on_warning */
	/* Metrics (docs/metrics.md). */
	int metrics;           /**< 1 on (the default when 0), -1 off: no shards, no collector */
	unsigned metrics_interval_ms; /**< collector period; 0: SY_METRICS_INTERVAL_MS, else 100 */
	const char *collector_cpu; /**< the collector's CPU ("3"), or "none"; NULL: SY_COLLECTOR_CPU, else not pinned */
	unsigned latency_sample; /**< time 1 message in N (1: every one); 0: 64 */
	/** How long past windows are kept, at least the interval; 0: 60000, or
	 *  4 intervals where that is longer. */
	unsigned retention_ms;
};

/**
 * Fill @p cfg with "unset" values (see struct sy_config). Reads no environment.
 * Any thread; never blocks.
 */
SY_API void sy_config_init(struct sy_config *cfg);

/**
 * Create an engine: resolve the configuration against the environment,
 * allocate rings and tables. Workers are not started.
 * Any thread; blocks on memory allocation only.
 * @param cfg configuration, or NULL for all defaults
 * @param[out] out the new engine
 * @return 0; -EINVAL for a bad configuration or environment variable (the
 *         message from sy_last_error() names the variable, the value and the
 *         reason); -ENOMEM.
 */
SY_API int sy_engine_create(const struct sy_config *cfg, sy_engine **out);

/**
 * Start the worker threads (pinned as configured). Messages sent before the
 * start were accepted and wait in the workers' rings; they run now.
 * An engine runs once: create -> start -> stop -> destroy.
 * Control thread; blocks until every worker runs.
 * @return 0; -EALREADY if it is running already; -ESHUTDOWN if it was
 *         stopped (an engine cannot be restarted: create a new one);
 *         -EAGAIN or -EINVAL if a thread could not be created or pinned
 *         (sy_last_error() says which); -EDEADLK from a handler.
 */
SY_API int sy_engine_start(sy_engine *eng);

/**
 * Stop accepting messages and drain: every message accepted before the call
 * runs its handler before the workers exit. Sends made after the call starts
 * fail with -ESHUTDOWN; replies from draining handlers are still delivered.
 * On an engine never started, the workers start just to run what was sent,
 * then exit (none start if nothing was sent). Afterwards the engine cannot be started again; sends,
 * attaches and new allocations fail with -ESHUTDOWN (a thread may still
 * take a message its pool already holds), and the dead letter queue,
 * counters and metrics stay readable until sy_engine_destroy().
 * Control thread, not a handler; blocks until the workers have exited.
 * @return 0; -EALREADY if already stopped; -EDEADLK from a worker thread.
 */
SY_API int sy_engine_stop(sy_engine *eng);

/**
 * Stop (if running) and free the engine: servers, routes, rings and every
 * pooled message, including messages a caller still holds. Threads still
 * attached must not use the engine afterwards; they need not detach.
 * Control thread, not a handler; blocks like sy_engine_stop(). NULL does
 * nothing; so does a call from a handler, recorded as -EDEADLK.
 */
SY_API void sy_engine_destroy(sy_engine *eng);

/** Number of worker threads. Any thread; never blocks. */
SY_API unsigned sy_engine_workers(const sy_engine *eng);

/**
 * CPU that worker @p worker is pinned to, or -1 when it is not pinned.
 * Any thread; never blocks. @return the CPU, -1, or -EINVAL for a bad index.
 */
SY_API int sy_engine_worker_cpu(const sy_engine *eng, unsigned worker);

/**
 * Counters of the whole engine, summed over all threads. While traffic flows
 * the sums are a recent view, not an atomic one. Where every message went
 * (delivered, dead-lettered, evicted) is sy_engine_accounting()'s job.
 */
struct sy_stats {
	uint64_t accepted;          /**< messages taken by a send call */
	/** Handler runs that succeeded (returned >= 0), retries included: the
	 *  one meaning of "delivered" in every count and export. (Up to
	 *  0.1.0 this field counted every handler run; that is handler_runs.) */
	uint64_t delivered;
	uint64_t handler_failed;    /**< handler runs that returned < 0 */
	uint64_t rejected_noroute;  /**< sends refused: unknown route (-ENOENT) */
	uint64_t rejected_unreachable; /**< sends refused: no server available (-EHOSTUNREACH) */
	uint64_t rejected_full;     /**< sends refused: ring full (-EAGAIN) */
	uint64_t rejected_shutdown; /**< sends refused: engine stopping (-ESHUTDOWN) */
	uint64_t rejected_backpressure; /**< sends refused: inbox past the route's threshold (-ENOBUFS) */
	uint64_t retried;           /**< failed handler runs scheduled for a retry */
	uint64_t requests;          /**< accepted messages that expect a reply */
	uint64_t replies_sent;      /**< replies enqueued by handlers */
	uint64_t replies_received;  /**< replies handed to their requester */
	uint64_t replies_dropped;   /**< replies to a thread that detached or timed out, or to a full reply ring */
	uint64_t in_flight;         /**< as sy_engine_accounting() counts it */
	uint64_t pool_slabs;        /**< slabs the message pools hold */
	uint64_t pool_bytes;        /**< bytes of those slabs */
	/** Every handler run: delivered + handler_failed. */
	uint64_t handler_runs;
	/** sy_msg_send_wait() calls that found no room at first and waited
	 *  (their refused tries are not in rejected_full). */
	uint64_t send_waits;
	uint64_t send_wait_timeouts; /**< sy_msg_send_wait() calls that timed out */
	uint64_t dropped;           /**< failed messages dropped by their route (SY_FAIL_DROP) */
	uint64_t returned;          /**< failed requests returned to their requester (SY_FAIL_RETURN) */
	/** sy_msg_call() requests refused at once because no server of a
	 *  deadline-aware route could finish them in time (-ETIME). */
	uint64_t rejected_deadline;
	/** Messages CoDel shed (sy_route_opts.codel) because their server's
	 *  inbox delay stood above target: refused (in rejected_backpressure),
	 *  spilled to another server, or dead-lettered (SY_DL_OVERLOAD). */
	uint64_t codel_shed;
	/** Hedge copies sent (docs/reliability.md); each is also a request,
	 *  accepted and ended on its own. */
	uint64_t hedges_sent;
	uint64_t hedge_wins;        /**< hedged requests answered first by their copy */
	/** Replies of hedged requests not handed to the requester (the
	 *  loser's, or both after a call timed out); also in replies_dropped. */
	uint64_t hedge_replies_discarded;
};

/**
 * Read the engine's counters. Any thread; takes the dead letter queue's
 * lock briefly (for in_flight), nothing else.
 * @return 0.
 */
SY_API int sy_engine_stats(sy_engine *eng, struct sy_stats *out);

/* ------------------------------------------------------------------ */
/* Servers                                                            */
/* ------------------------------------------------------------------ */

/**
 * A server's handler. Runs on the worker that owns the server, one message at
 * a time, never concurrently with itself. The message belongs to the handler
 * for the duration of the call: when the handler returns, the engine frees
 * it, unless the handler passed it on with sy_msg_send(), sy_msg_reply() or
 * sy_msg_keep() (after which it is no longer the handler's to touch, and a
 * second sy_msg_send(), sy_msg_reply() or sy_msg_keep() of it is refused
 * with -EINVAL; a kept message is the handler's to send once). Every call
 * that sends passes it on when it accepts it (sy_msg_send_burst(),
 * sy_msg_request(), and to another engine's route sy_msg_send_wait() and
 * sy_msg_call() too); one that refuses it leaves it as it was, a request
 * still answerable.
 * @return 0 on success, a negative errno value on failure (counted). Only
 *         the sign counts: any value >= 0 is a success, any negative one
 *         (INT_MIN included) a failure, retried or dead-lettered as the
 *         route says.
 */
typedef int (*sy_handler_fn)(sy_engine *eng, sy_msg *msg, void *ctx);

/** Server options; zero-initialize, then set. */
/** Circuit breaker states (docs/reliability.md). */
enum sy_breaker_state {
	SY_BREAKER_CLOSED = 0,    /**< normal: calls pass, results counted */
	SY_BREAKER_OPEN,          /**< tripped: no calls until open_ns has passed */
	SY_BREAKER_HALF_OPEN,     /**< admitting half_open_probes trial calls */
	SY_BREAKER_FORCED_OPEN,   /**< operator: no calls until released */
	SY_BREAKER_DISABLED,      /**< operator: calls pass, nothing is counted */
};

/** A server's circuit breaker. Zero fields take the defaults. */
struct sy_breaker_opts {
	unsigned consecutive_failures; /**< trip after this many failures in a row; 0: 5 */
	unsigned window;               /**< count-based sliding window of the last calls, <= 1024; 0: no rate rule */
	unsigned min_calls;            /**< calls in the window before the rate rule applies; 0: window (needs window) */
	double failure_rate;           /**< trip when failures / calls in the window >= this, in (0, 1]; 0: 0.5 (needs window) */
	uint64_t open_ns;              /**< time open before half-open; 0: 1 s */
	unsigned half_open_probes;     /**< trial calls admitted in half-open, <= 65535; 0: 1 */
	unsigned success_threshold;    /**< successful probes that close it, <= half_open_probes; 0: half_open_probes */
};

/**
 * A health probe: >= 0 healthy, < 0 unhealthy. Runs on the engine's health
 * thread, never on a worker; may block briefly (it delays other probes).
 * It may send, but must not call control functions (server, route and
 * breaker functions): removing a server waits for its running probe.
 */
typedef int (*sy_health_fn)(sy_engine *eng, uint32_t server, void *ctx);

struct sy_health_opts {
	sy_health_fn probe;            /**< required */
	void *ctx;
	uint64_t interval_ns;          /**< between probes; 0: 1 s */
	unsigned healthy_threshold;    /**< passes in a row that mark it up; 0: 2 */
	unsigned unhealthy_threshold;  /**< failures in a row that mark it down; 0: 3 */
};

/** sy_server_opts.worker: the engine places the server (the zero value). */
#define SY_WORKER_AUTO 0

/**
 * Where a server runs and what guards it. Zero-filled options (or NULL) mean
 * "the engine decides": the server goes to the worker with the fewest
 * servers, with no breaker and no health probe.
 */
struct sy_server_opts {
	/**
	 * Owning worker index. 0 (SY_WORKER_AUTO) or -1: the engine places it
	 * on the worker with the fewest servers. 1 to workers - 1: that
	 * worker. To ask for worker 0 itself, set worker_set as well.
	 */
	int worker;
	const struct sy_breaker_opts *breaker; /**< NULL: no circuit breaker */
	const struct sy_health_opts *health;   /**< NULL: no health probe */
	/** true: .worker names a worker even when it is 0 (worker 0 itself);
	 *  false: a .worker of 0 means SY_WORKER_AUTO. */
	bool worker_set;
};

/**
 * Add a server. Control; any thread but a handler; may block.
 * @param name unique, 1 to 63 bytes
 * @param opts NULL, or zero-filled, for automatic placement and no breaker
 *        or probe (see struct sy_server_opts)
 * @param[out] id the server's id
 * @return 0; -EINVAL (bad name, handler or worker); -EEXIST (name taken);
 *         -ENOSPC (max_servers reached); -ENOMEM; -EDEADLK (from a handler).
 */
SY_API int sy_server_add(sy_engine *eng, const char *name, sy_handler_fn fn,
			 void *ctx, const struct sy_server_opts *opts,
			 uint32_t *id);

/**
 * Remove a server at run time: take it out of every route, wait until every
 * message already sent to it has run its handler, then free it.
 * Control; any thread but a worker of this engine; blocks until drained.
 * A removal that fails changes nothing: the server stays in every route,
 * picked and probed as before.
 * @return 0; -ENOENT (no such server); -EDEADLK (called from a worker);
 *         -EBUSY (the engine was never started and messages for the
 *         server's worker are queued: start or stop the engine first);
 *         -ENOMEM (no memory for the routes rebuilt without it); the error
 *         of a route's policy that refuses the servers left.
 */
SY_API int sy_server_remove(sy_engine *eng, uint32_t id);

/**
 * Look up a server by name. Any thread; takes the control mutex briefly.
 * @return 0; -ENOENT; -EINVAL (NULL name).
 */
SY_API int sy_server_find(sy_engine *eng, const char *name, uint32_t *id);

/* ------------------------------------------------------------------ */
/* Routes                                                             */
/* ------------------------------------------------------------------ */

/** What a send does when the picked server's inbox is past the threshold. */
enum sy_backpressure {
	SY_BP_OFF = 0,        /**< no threshold: only a full ring refuses (-EAGAIN) */
	SY_BP_REJECT,         /**< refuse with -ENOBUFS; the message stays the caller's */
	SY_BP_SPILL,          /**< another server of the route below the threshold, else -ENOBUFS */
	SY_BP_BLOCK,          /**< wait until the inbox drains, up to the message's deadline or bp_block_ns, then -ENOBUFS */
	SY_BP_DEAD_LETTER,    /**< accept it and dead-letter it (reason backpressure) */
};

/**
 * What becomes of a message whose handler failed and that will not be run
 * again (the route has no retries, or they are spent). The dead letter
 * queue is the engine's, always there; a route chooses whether its failures
 * go to it.
 */
enum sy_on_failure {
	SY_FAIL_DEAD_LETTER = 0, /**< into the dead letter queue (reason handler_failed or retries_exhausted) */
	SY_FAIL_DROP,            /**< freed, and counted (sy_accounting.dropped) */
	/** A request goes back to its requester as its reply, with the
	 *  handler's code in sy_msg_status(); sy_msg_call() returns
	 *  -EREMOTEIO. Counted (sy_accounting.returned). A plain message, or
	 *  a request whose requester left or whose reply ring is full, is
	 *  dead-lettered. */
	SY_FAIL_RETURN,
};

/** What a route is: a policy over a set of servers. */
struct sy_route_opts {
	const char *policy;       /**< a built-in or registered policy name (see docs/policies.md); NULL: "round_robin" */
	const uint32_t *servers;  /**< server ids, in order (the priority order for "failover") */
	unsigned n_servers;       /**< 1 or more */
	const uint32_t *weights;  /**< one per server, 1 to 65535, for "weighted"; NULL: all 1 */
	const char *params;       /**< policy parameters, "name=value,name=value"; NULL: none */
	/* Backpressure (docs/reliability.md). */
	enum sy_backpressure backpressure; /**< 0: SY_BP_OFF */
	double bp_high;           /**< threshold, a fraction of the ring's capacity in (0, 1]; 0: 0.8 */
	double bp_low;            /**< the mark it must drain below to clear, < bp_high; 0: bp_high / 2 */
	uint64_t bp_block_ns;     /**< SY_BP_BLOCK: longest wait when the message has no deadline; 0: 1 ms */
	/* Retries of failed handler runs. */
	unsigned max_attempts;    /**< handler runs per message, <= 255; 0 or 1: no retries */
	uint64_t retry_backoff_ns;/**< first backoff, doubled per attempt, with jitter; 0: 100 us */
	uint64_t retry_backoff_max_ns; /**< 0: 100 ms */
	double retry_budget;      /**< retries at most this share of first attempts, per worker; 0: 0.2 */
	unsigned retry_budget_min;/**< retries always allowed per worker and route, on top; 0: 10 */
	/** Dead-letter a message that finds no available server instead of
	 *  refusing it (-EHOSTUNREACH); the send then succeeds. */
	bool dead_letter_unreachable;
	/** A failed message that will not be retried; 0: SY_FAIL_DEAD_LETTER. */
	enum sy_on_failure on_failure;
	/*
	 * Slow start (docs/policies.md): a server that joins the route through
	 * sy_route_replace(), or whose circuit breaker closes again, takes a
	 * fraction of the messages the policy picks it for that ramps linearly
	 * from slow_start_min to 1 over slow_start_ns; what it refuses goes
	 * where the policy picks next. The servers a route is created with do
	 * not ramp. Costs nothing while no server of the route is ramping.
	 */
	uint64_t slow_start_ns;   /**< length of the ramp; 0: no slow start */
	double slow_start_min;    /**< the fraction it starts at, in (0, 1]; 0: 0.1 */
	/**
	 * Deadline-aware picks (docs/policies.md), for a policy with an
	 * estimate() ("adaptive"): a message with a deadline goes to a server
	 * whose estimate says it can finish in the time left, the policy's
	 * pick if it can, else the one estimated fastest; when none can, it
	 * fails at once: dead-lettered with SY_DL_TIMEOUT, or, for sy_msg_call(),
	 * refused with -ETIME. Applies to routes of two or more servers.
	 */
	bool deadline_aware;
	/**
	 * CoDel per destination (docs/reliability.md): manage each server's
	 * inbox on the time messages wait in it. When the shortest wait of
	 * the route's messages at a server stays above codel_target_ns for
	 * codel_interval_ns, sends that pick the server are shed, at a rate
	 * rising as interval / sqrt(count), until the wait falls below the
	 * target. A shed message takes the route's backpressure mode:
	 * SY_BP_OFF and SY_BP_REJECT refuse it (-ENOBUFS), SY_BP_SPILL sends
	 * it to another server that is not shedding and below the threshold
	 * (else -ENOBUFS), SY_BP_DEAD_LETTER accepts it and dead-letters it
	 * (SY_DL_OVERLOAD; a sy_msg_call() is refused instead). SY_BP_BLOCK
	 * is refused (-EINVAL). Counted in sy_stats.codel_shed. Each send
	 * reads the clock once; each run reads it once on the worker.
	 */
	bool codel;
	uint64_t codel_target_ns;   /**< with codel: the delay to keep below; 0: 5 ms */
	uint64_t codel_interval_ns; /**< with codel: how long it may stand above; 0: 100 ms */
	/**
	 * Poison-key parking (docs/reliability.md), for routes that keep
	 * order per key ("hash"): once park_after messages with one key in a
	 * row have failed for good (after their retries: dead-lettered,
	 * dropped or returned), the key is parked. Later messages with that
	 * key are held, in order, by the worker instead of run, up to
	 * park_capacity of them (past that, dead-lettered SY_DL_PARKED),
	 * while every other key flows; sy_parked_release() delivers them in
	 * order, ahead of newer ones, sy_parked_purge() dead-letters them.
	 * Messages of the route count in their server's in-flight count.
	 */
	unsigned park_after;      /**< failures in a row that park a key; 0: no parking */
	unsigned park_capacity;   /**< messages held per parked key, at most 1048576; 0: 1024 */
	/**
	 * Hedged calls (docs/reliability.md): a request sent by sy_msg_call()
	 * or sy_msg_request() on a route of two or more servers is copied
	 * before it goes (its payload, tag, key and deadline: one message
	 * from the caller's pool and a memcpy of its size), and when no reply
	 * has come after the delay the copy goes to another server of the
	 * route, as a message of its own. The first reply is the caller's; the
	 * other is discarded and counted (sy_stats.hedge_replies_discarded).
	 * sy_msg_call() sends the copy while it waits; a sy_msg_request()'s
	 * copy goes from the requester's sy_producer_poll_replies().
	 */
	uint64_t hedge_delay_ns;  /**< engine clock; 0: no hedging (unless hedge_p95) */
	/** The delay is the request round trip's p95 (SY_HIST_RTT, engine-wide,
	 *  latest snapshot's window, else since the start); hedge_delay_ns
	 *  while no snapshot has a sample. */
	bool hedge_p95;
	/** Hedges at most this share of the route's hedgeable requests, per
	 *  sending thread, plus one, in (0, 1]; 0: 0.1. */
	double hedge_budget;
};

/**
 * Add a route. Control; any thread but a handler; may block.
 * @param[out] id the route's small integer id, for sy_msg_send()
 * @return 0; -EINVAL (bad name, unknown policy, no servers, "direct" with
 *         more than one, duplicate server, or the policy's create()
 *         refused with any code but -ENOMEM); -ENOENT (unknown server id);
 *         -EEXIST (name taken); -ENOSPC (max_routes reached); -ENOMEM;
 *         -EDEADLK (from a handler).
 */
SY_API int sy_route_add(sy_engine *eng, const char *name,
			const struct sy_route_opts *opts, uint32_t *id);

/**
 * Replace a route's policy and servers, keeping its name and id. Senders see
 * either the old or the new route, never a mix; messages already sent are
 * not moved. Control; any thread but a handler; may block.
 * @return 0; -ENOENT (no such route, or unknown server); -EINVAL; -ENOMEM;
 *         -EDEADLK (from a handler).
 */
SY_API int sy_route_replace(sy_engine *eng, uint32_t id,
			    const struct sy_route_opts *opts);

/**
 * Remove a route. Later sends to its id fail with -ENOENT; messages already
 * sent are delivered. Control; any thread but a handler; may block.
 * @return 0; -ENOENT; -EDEADLK (from a handler).
 */
SY_API int sy_route_remove(sy_engine *eng, uint32_t id);

/**
 * Look up a route's id by name. Any thread; never blocks (it takes an RCU
 * read-side section, registering the thread for the call if needed).
 * @return 0; -ENOENT; -EINVAL (NULL name).
 */
SY_API int sy_route_find(sy_engine *eng, const char *name, uint32_t *id);

/* ------------------------------------------------------------------ */
/* Producers                                                          */
/* ------------------------------------------------------------------ */

/**
 * Attach the calling thread: register it with RCU and give it a slot with an
 * SPSC ring to every worker, a reply ring from every worker and a message
 * pool. Sending attaches a thread lazily; a thread attached that way is
 * detached when it exits. Attaching twice is counted and needs as many
 * detaches. Any thread; may block (allocation, RCU registration).
 * @return 0; -ENOSPC (max_producers threads attached); -ENOMEM;
 *         -ESHUTDOWN (engine stopped).
 */
SY_API int sy_producer_attach(sy_engine *eng);

/**
 * Detach the calling thread. Messages it sent are still delivered; replies
 * that arrive for it later are dropped and counted. Messages it allocated
 * stay valid. The calling thread only; never blocks.
 * @return 0; -ENOENT (not attached).
 */
SY_API int sy_producer_detach(sy_engine *eng);

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

/** Largest payload sy_msg_alloc() accepts. */
#define SY_MSG_MAX_SIZE (1u << 20)

/**
 * Allocate a message with room for @p size payload bytes (its size is set to
 * @p size) from the calling thread's pool. Any thread (attaches it);
 * never blocks in steady state (a pool grows by a slab when empty; a
 * message above 65,472 bytes is allocated alone).
 * The caller owns the message. It may be sent through another engine's
 * routes too, and goes back to this engine's pool when freed there: this
 * engine must outlive it.
 * @return the message, or NULL (size above SY_MSG_MAX_SIZE, no producer slot,
 *         the engine stopped, or no memory; sy_last_error() says which).
 */
SY_API sy_msg *sy_msg_alloc(sy_engine *eng, size_t size);

/**
 * Allocate @p n messages as sy_msg_alloc() would, each with room for
 * @p size payload bytes, into msgs[0..n): all of them or none. For the
 * senders of bursts: the checks are made once for the burst, and for the
 * smallest size class the thread's free list is walked once. Same threads
 * and blocking as sy_msg_alloc(). @p msgs may be NULL when @p n is 0.
 * @return n; or a negative errno and no message allocated (msgs[] holds
 *         nothing of the caller's): -EINVAL (@p n above INT_MAX),
 *         -EMSGSIZE (size above SY_MSG_MAX_SIZE), -ESHUTDOWN (the engine
 *         stopped), -ENOSPC (no producer slot), -ENOMEM.
 */
SY_API int sy_msg_alloc_burst(sy_engine *eng, size_t size, sy_msg **msgs,
			      unsigned n);

/**
 * Return a message to the pool it came from. Any thread; never blocks
 * (a message above 65,472 bytes, allocated alone, takes a mutex briefly).
 * The caller must own @p msg. NULL is ignored.
 */
SY_API void sy_msg_free(sy_msg *msg);

/** The payload. The owner only. */
SY_API void *sy_msg_data(sy_msg *msg);

/** Payload bytes in use. The owner only. */
SY_API size_t sy_msg_size(const sy_msg *msg);

/** Payload bytes available. The owner only. */
SY_API size_t sy_msg_capacity(const sy_msg *msg);

/**
 * Set the payload bytes in use. The owner only.
 * @return 0; -EMSGSIZE if above the capacity; -EINVAL (NULL, or a message
 *         that is not the caller's: sent already, freed, held by the dead
 *         letter queue).
 */
SY_API int sy_msg_set_size(sy_msg *msg, size_t size);

/** A 64-bit value the engine carries untouched, from request to reply too. */
SY_API uint64_t sy_msg_tag(const sy_msg *msg);

/** Set the tag. The owner only: a message that is not the caller's (sent
 *  already, freed) is refused like a NULL one, and left as it is. */
SY_API void sy_msg_set_tag(sy_msg *msg, uint64_t tag);

/**
 * The key that key-based policies ("hash") route by; 0 for a new message.
 * Messages with the same key sent through the same route go to the same
 * server while the route's servers do not change. The owner only.
 */
SY_API uint64_t sy_msg_key(const sy_msg *msg);

/** Set the key. The owner only; refused like sy_msg_set_tag(). */
SY_API void sy_msg_set_key(sy_msg *msg, uint64_t key);

/**
 * Inside a handler: keep the message being handled; the handler now owns it
 * and must free or send it later. The handling worker only.
 * @return 0; -EINVAL if @p msg is not the message being handled, or the
 * handler passed it on already.
 */
SY_API int sy_msg_keep(sy_msg *msg);

/**
 * Give the message a deadline, in the engine's clock (sy_config.clock), or 0
 * for none. A worker dead-letters a message whose deadline has passed
 * (reason SY_DL_TIMEOUT) instead of running its handler; SY_BP_BLOCK waits
 * no longer than it. The owner only; refused like sy_msg_set_tag().
 */
SY_API void sy_msg_set_deadline(sy_msg *msg, uint64_t deadline_ns);

/** The message's deadline, or 0. The owner only. */
SY_API uint64_t sy_msg_deadline(const sy_msg *msg);

/** In the message's handler: which run this is (1 for the first, 2 for
 *  the first retry). Elsewhere: its handler runs that failed so far (a dead
 *  letter's attempts). The owner only (its handler, during the run). */
SY_API unsigned sy_msg_attempts(const sy_msg *msg);

/* ------------------------------------------------------------------ */
/* Sending                                                            */
/* ------------------------------------------------------------------ */

/**
 * Send a message to a route. On success the engine owns it; on failure the
 * caller still does. Messages from one thread to one server are handled in
 * the order sent. Any thread (attaches it); never blocks, makes no system
 * call unless the destination worker sleeps (SY_IDLE_SLEEP).
 * @return 0; -ENOENT (unknown route id); -EHOSTUNREACH (no server of the
 *         route can take it); -EAGAIN (the worker's ring is full: back off,
 *         retry, or use sy_msg_send_wait()); -ENOBUFS (past the route's
 *         backpressure threshold); -ESHUTDOWN (engine stopping); -ENOSPC
 *         (no producer slot); -ENOMEM; -EINVAL (NULL @p msg, or a message
 *         that is not the caller's: freed, sent already and not handed
 *         back, or held by the dead letter queue).
 */
SY_API int sy_msg_send(sy_engine *eng, uint32_t route, sy_msg *msg);

/**
 * Send like sy_msg_send(), waiting up to @p timeout_ns nanoseconds while
 * the worker's ring is full (-EAGAIN) or past the route's backpressure
 * threshold (-ENOBUFS): it spins a little, then yields, then sleeps 1 to
 * 64 us at a time. Its refused tries are not counted as refusals;
 * sy_stats.send_waits counts the calls that waited, send_wait_timeouts
 * those that gave up. Any thread but a handler; may block.
 * @return 0; -ETIMEDOUT (still no room; the message is the caller's);
 *         -EDEADLK (from a handler: its own worker may be the one to
 *         drain); any other error of sy_msg_send(), at once.
 */
SY_API int sy_msg_send_wait(sy_engine *eng, uint32_t route, sy_msg *msg,
			    uint64_t timeout_ns);

/**
 * Send up to @p n messages to a route, with one RCU read-side section and at
 * most one ring operation per destination worker. Messages to the same worker
 * are accepted or refused together. On return msgs[0..k) were accepted (the
 * engine owns them) and msgs[k..n) were not (the caller still owns them, in
 * their original order). Same threads and blocking as sy_msg_send(). A
 * message that comes twice in @p msgs (the handled message of a handler
 * among them) is not the caller's in its second place: the burst stops
 * there.
 * @return k, the number accepted (0 to n); or, when none was accepted, the
 *         negative errno that sy_msg_send() would have returned for msgs[0].
 */
SY_API int sy_msg_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n);

/**
 * Send a request: like sy_msg_send(), and the handler may answer with sy_msg_reply();
 * the reply comes back to the calling thread through sy_producer_poll_replies().
 * Use the tag to match replies with requests.
 * @return as sy_msg_send().
 */
SY_API int sy_msg_request(sy_engine *eng, uint32_t route, sy_msg *msg);

/**
 * Inside a handler: whether the message being handled is a request (sent
 * with sy_msg_request() or sy_msg_call()) that sy_msg_reply() may answer. A plain
 * sy_msg_send() message, a replayed dead letter, a request answered already
 * and any message outside its handler run give false. A handler that serves both kinds replies only
 * when this is true. The handling worker; never blocks.
 */
SY_API bool sy_msg_is_request(const sy_msg *msg);

/**
 * A reply's status: 0 for a handler's sy_msg_reply(), or the negative code
 * its handler failed with when its route returned the failed request
 * (SY_FAIL_RETURN). 0 for any message that is not a reply in its
 * requester's hands. The message's owner; never blocks.
 */
SY_API int sy_msg_status(const sy_msg *msg);

/**
 * Inside a handler: answer the request being handled. @p reply may be the
 * request itself (answered in place) or a message the handler owns; its tag
 * is set to the request's. On success the reply belongs to the requester.
 * A request is answered once: answered with another message, it is no
 * longer a request (no second reply, nor a failure reply if the handler
 * then fails). The handling worker only; never blocks.
 * @return 0; -EINVAL (@p request is not the message being handled, is not
 *         a request, or was answered already); -EAGAIN (the requester's reply ring is full; the reply
 *         stays the handler's); -ECONNRESET (the requester detached; the
 *         reply stays the handler's).
 */
SY_API int sy_msg_reply(sy_msg *request, sy_msg *reply);

/**
 * Take up to @p max replies that arrived for the calling thread. The caller
 * owns each. The calling (attached) thread; never blocks.
 * @return the number taken (0 to max); -ENOENT if the thread is not attached.
 */
SY_API int sy_producer_poll_replies(sy_engine *eng, sy_msg **out, unsigned max);

/**
 * Send a request and wait for its reply, at most @p timeout_ns nanoseconds.
 * Other replies that arrive meanwhile wait for sy_producer_poll_replies(). A reply
 * that arrives after the timeout is dropped and counted. Any thread but a
 * handler (attaches it); blocks.
 * @param req the request: the engine owns it once sent, even on timeout
 * @param[out] reply the reply, which the caller then owns
 * @return 0; -ETIMEDOUT; -EDEADLK (called from a handler); -EREMOTEIO (the
 *         handler failed and the route returns failures, SY_FAIL_RETURN:
 *         *reply is the request, the caller's again, and sy_msg_status()
 *         has the handler's code); -ETIME (a deadline-aware route found
 *         no server that could answer before the request's deadline; @p req
 *         is still the caller's); any error of sy_msg_send(), in which case
 *         @p req is still the caller's.
 */
SY_API int sy_msg_call(sy_engine *eng, uint32_t route, sy_msg *req,
		   sy_msg **reply, uint64_t timeout_ns);

/* ------------------------------------------------------------------ */
/* Policies                                                           */
/* ------------------------------------------------------------------ */

/** One server of a route, as a policy sees it when the route is built. */
struct sy_policy_server {
	uint32_t id;     /**< server id */
	uint32_t weight; /**< from sy_route_opts.weights, else 1 */
};

/** A route being built, as its policy's create() sees it. */
struct sy_policy_route {
	const char *name;                        /**< the route's name */
	const char *params;                      /**< sy_route_opts.params, or "" */
	unsigned n;                              /**< servers, >= 1 */
	const struct sy_policy_server *servers;  /**< in the route's order */
};

/** One pick in progress. Opaque; read through the sy_pick_*() functions. */
struct sy_pick;

enum sy_policy_flags {
	/** The engine counts each server's messages in flight (sent, not yet
	 *  handled) for sy_pick_inflight(); one atomic add per message. */
	SY_POLICY_INFLIGHT = 1u << 0,
	/** The engine times each handler run of the route's messages and calls
	 *  observe(); one clock read per message on the worker. */
	SY_POLICY_OBSERVE = 1u << 1,
};

/**
 * A routing policy: how a route picks one of its servers.
 *
 * create() runs on the control thread when a route is added or replaced and
 * builds state that is shared, read-only, by every sender of that route
 * object (a replaced route gets new state). pick() runs on every sending
 * thread concurrently, inside an RCU read-side section: it must not block,
 * and should write only the producer-private word of sy_pick_word(). It
 * returns an index in [0, n); any other value (INT_MIN too) picks index 0.
 * The engine skips a picked server that is not
 * available (removed, draining) by trying the next index in order; a policy
 * may also check sy_pick_available() itself. observe() (optional) runs on
 * the worker that owns the server, after each handler run of a message the
 * route sent there, with the handler's result, its service time and the
 * engine clock when it ended; calls for different servers run concurrently
 * on different workers, calls for one server never do.
 */
struct sy_policy {
	const char *name;          /**< 1 to 31 bytes, unique in the process */
	unsigned flags;            /**< enum sy_policy_flags */
	unsigned min_servers;      /**< 0: 1 */
	unsigned max_servers;      /**< 0: no limit */
	int (*create)(const struct sy_policy_route *route, void **state); /**< optional; 0 or -EINVAL/-ENOMEM */
	void (*destroy)(void *state);                                     /**< optional */
	int (*pick)(const void *state, struct sy_pick *p);                /**< required */
	void (*observe)(void *state, unsigned index, int result,
			uint64_t service_ns, uint64_t now_ns);            /**< optional */
	/**
	 * Optional, for sy_route_opts.deadline_aware: how long, in ns of the
	 * engine clock, a message sent now to server @p index would take until
	 * its handler ends (waiting included); 0 when the policy does not know.
	 * Called like pick(), inside a pick.
	 */
	uint64_t (*estimate)(const void *state, struct sy_pick *p,
			     unsigned index);
};

/**
 * Register a policy for every engine of the process; routes then name it in
 * sy_route_opts.policy. @p policy must stay valid until the process exits.
 * Any thread; takes a process-wide mutex.
 * @return 0; -EINVAL (no name or pick, name too long); -EEXIST (a policy of
 *         that name exists, built-in or registered); -ENOSPC (64 registered).
 */
SY_API int sy_policy_register(const struct sy_policy *policy);

/** Number of servers of the route. In pick() only. */
SY_API unsigned sy_pick_count(const struct sy_pick *p);

/** The message's key (sy_msg_set_key()). In pick() only. */
SY_API uint64_t sy_pick_key(const struct sy_pick *p);

/**
 * A 64-bit word private to the sending thread and the route id, zero at
 * first, kept across picks and route replacements. In pick() only.
 */
SY_API uint64_t *sy_pick_word(struct sy_pick *p);

/** A uniform 64-bit random number from the sending thread's generator. In pick() only. */
SY_API uint64_t sy_pick_random(struct sy_pick *p);

/**
 * The engine's clock, in nanoseconds, read at most once per send call (the
 * picks of one sy_msg_send_burst() see the same time). In pick() only.
 */
SY_API uint64_t sy_pick_now(struct sy_pick *p);

/** Whether server @p i of the route can take messages now. In pick() only. */
SY_API bool sy_pick_available(const struct sy_pick *p, unsigned i);

/**
 * Messages sent to server @p i and not yet handled, over every route that
 * counts them (SY_POLICY_INFLIGHT). In pick() only.
 */
SY_API int64_t sy_pick_inflight(const struct sy_pick *p, unsigned i);

/* ------------------------------------------------------------------ */
/* Circuit breakers and health                                        */
/* ------------------------------------------------------------------ */

/**
 * Operator control of a server's breaker: SY_BREAKER_FORCED_OPEN (no calls),
 * SY_BREAKER_DISABLED (calls pass, results ignored) or SY_BREAKER_CLOSED
 * (back to normal operation, counts cleared). Any thread.
 * @return 0; -ENOENT (no such server); -EINVAL (other state, or the server
 *         has no breaker).
 */
SY_API int sy_breaker_force(sy_engine *eng, uint32_t server,
			    enum sy_breaker_state state);

/** A server's breaker state; SY_BREAKER_CLOSED when it has none. Any
 *  thread. @return 0; -ENOENT. */
SY_API int sy_breaker_state(sy_engine *eng, uint32_t server,
			    enum sy_breaker_state *state);

/** Whether a server's health probe last marked it up (yes without a
 *  probe). Any thread. @return 1 (up); 0 (down); -ENOENT (no such server);
 *  -EINVAL. */
SY_API int sy_server_is_healthy(sy_engine *eng, uint32_t server);

/* ------------------------------------------------------------------ */
/* Dead letter queue and accounting                                   */
/* ------------------------------------------------------------------ */

/** Why a message was dead-lettered. */
enum sy_dl_reason {
	SY_DL_UNREACHABLE = 0,    /**< no server of the route was available */
	SY_DL_CIRCUIT_OPEN,       /**< every available server's circuit was open */
	SY_DL_BACKPRESSURE,       /**< the route's inbox was past its threshold (SY_BP_DEAD_LETTER) */
	SY_DL_TIMEOUT,            /**< its deadline passed before its handler ran */
	SY_DL_HANDLER_FAILED,     /**< the handler failed and the route has no retries */
	SY_DL_RETRIES_EXHAUSTED,  /**< the handler failed max_attempts times, or the budget was spent */
	SY_DL_SHUTDOWN,           /**< waiting for a retry when the engine stopped */
	SY_DL_REMOTE,             /**< its last run was on a remote server and failed: no ack in time, no responders, connection lost, too large, or the far handler failed (docs/remote.md) */
	SY_DL_OVERLOAD,           /**< shed by CoDel: its server's inbox delay stood above the route's target (SY_BP_DEAD_LETTER) */
	SY_DL_PARKED,             /**< its key was parked and its queue was full, or it was purged (sy_parked_purge()), or its server or route was removed while it was held */
	SY_DL_REASONS
};

#define SY_ANY UINT32_MAX /**< a filter field that matches every route or server */

/** One dead letter, copied out. */
struct sy_dead_letter {
	uint64_t id;              /**< unique in the engine, increasing */
	enum sy_dl_reason reason;
	uint32_t route;           /**< route id it was sent through */
	uint32_t server;          /**< the last server tried, or SY_ANY */
	unsigned attempts;        /**< handler runs */
	uint64_t first_ns;        /**< when it was first dead-lettered (engine clock) */
	uint64_t last_ns;         /**< when it was dead-lettered last (after a replay) */
	uint64_t tag;             /**< sy_msg_tag() */
	uint64_t key;             /**< sy_msg_key() */
	size_t size;              /**< sy_msg_size() */
};

/** Which dead letters an admin function applies to. Zero fields and NULL
 *  match all; set route and server to SY_ANY to match any. */
struct sy_dl_filter {
	unsigned reasons;         /**< bit (1u << reason) per reason; 0: all */
	uint32_t route;           /**< SY_ANY: all */
	uint32_t server;          /**< SY_ANY: all */
	uint64_t since_ns;        /**< last_ns >= since_ns */
	uint64_t until_ns;        /**< last_ns <= until_ns; 0: no bound */
};

/** A filter matching every dead letter. */
SY_API void sy_dlq_filter_init(struct sy_dl_filter *f);

/** Dead letters held that match @p f (NULL: all). Any thread; holds the
 *  queue's lock while it counts. 0 for a NULL engine. */
SY_API size_t sy_dlq_count(sy_engine *eng, const struct sy_dl_filter *f);

/**
 * Copy out up to @p max matching dead letters, oldest first, leaving them in
 * the queue. Any thread; holds the queue's lock while it copies.
 * @return entries copied; -EINVAL.
 */
SY_API int sy_dlq_list(sy_engine *eng, const struct sy_dl_filter *f,
		       struct sy_dead_letter *out, unsigned max);

/**
 * Copy up to @p cap bytes of dead letter @p id's payload into @p buf. Any
 * thread; holds the queue's lock while it copies.
 * @return the payload's size; -ENOENT (no longer held); -EINVAL (NULL
 *         engine, or NULL @p buf with @p cap > 0).
 */
SY_API long sy_dlq_peek(sy_engine *eng, uint64_t id, void *buf, size_t cap);

/**
 * Send matching dead letters again, each to its route, oldest first, at most
 * @p max of them (0: all) and at most @p per_second a second (0: no limit;
 * the caller sleeps between sends). A replayed message leaves the queue and
 * is a new send (counted as accepted again); one whose send is refused stays
 * in the queue and the replay stops. Any thread but a worker; may block.
 * @return messages replayed; -EINVAL; -EDEADLK (from a worker).
 */
SY_API int sy_dlq_replay(sy_engine *eng, const struct sy_dl_filter *f,
			 unsigned max, unsigned per_second);

/** Receives a drained dead letter; the message is the callee's (free it
 *  with sy_msg_free()). Runs without the queue's lock held. */
typedef void (*sy_dlq_fn)(sy_engine *eng, const struct sy_dead_letter *dl,
			  sy_msg *msg, void *ctx);

/**
 * Take matching dead letters out of the queue, oldest first, handing each to
 * @p fn on the calling thread (without the queue's lock held). Any thread;
 * blocks as long as @p fn does. @return entries drained; -EINVAL.
 */
SY_API int sy_dlq_drain(sy_engine *eng, const struct sy_dl_filter *f,
			sy_dlq_fn fn, void *ctx);

/** Free matching dead letters. Any thread; holds the queue's lock.
 *  @return entries purged; -EINVAL (NULL engine or bad filter). */
SY_API int sy_dlq_purge(sy_engine *eng, const struct sy_dl_filter *f);

/* ------------------------------------------------------------------ */
/* Parked keys (sy_route_opts.park_after, docs/reliability.md)        */
/* ------------------------------------------------------------------ */

/** One parked key, copied out. */
struct sy_parked_key {
	uint32_t route;           /**< route id */
	uint32_t server;          /**< the server its held messages run on when released */
	uint64_t key;             /**< sy_msg_key() */
	uint64_t parked_ns;       /**< when it was parked (engine clock) */
	unsigned held;            /**< messages held now */
	unsigned failures;        /**< failures in a row that parked it */
	uint64_t dead_lettered;   /**< messages dead-lettered since, its queue full (SY_DL_PARKED) */
	bool releasing;           /**< sy_parked_release() was called; its worker has not yet run them */
};

/**
 * Copy out up to @p max parked keys of route @p route (SY_ANY: every
 * route), in no particular order. Any thread; holds the parking table's
 * lock while it copies.
 * @return keys copied; -EINVAL (NULL engine, or NULL @p out with
 *         @p max > 0).
 */
SY_API int sy_parked_list(sy_engine *eng, uint32_t route,
			  struct sy_parked_key *out, unsigned max);

/**
 * Unpark @p key of route @p route: its held messages run on their server's
 * worker, in the order they arrived, before any newer message with that key
 * runs; later messages flow again (a key that fails park_after times in a
 * row again is parked again). Returns once the first of them is on the
 * calling thread's ring to that worker; they run when the worker takes it.
 * Control; any thread but a handler; may block while that ring is full.
 * @return messages released; -ENOENT (not parked); -EALREADY (being
 *         released); -ESHUTDOWN (the engine is not running); -EINVAL;
 *         -EDEADLK (from a handler).
 */
SY_API int sy_parked_release(sy_engine *eng, uint32_t route, uint64_t key);

/**
 * Unpark @p key of route @p route and dead-letter its held messages
 * (reason SY_DL_PARKED), oldest first. Control; any thread but a handler.
 * @return messages dead-lettered; -ENOENT (not parked); -EINVAL;
 *         -EDEADLK (from a handler).
 */
SY_API int sy_parked_purge(sy_engine *eng, uint32_t route, uint64_t key);

/**
 * Where every accepted message is. At any moment
 *   accepted = delivered + failed_kept + dead_lettered + evicted + dropped
 *              + returned + in_flight
 * and with the engine quiet (stopped, or nothing sent for a while and no
 * retry pending) in_flight is 0. A replay is a new acceptance.
 */
struct sy_accounting {
	uint64_t accepted;        /**< messages taken by send calls (replays included) */
	/** Ended in a handler run that succeeded (returned >= 0), whether or
	 *  not the handler kept the message. (Up to 0.1.0 this also counted
	 *  failed_kept.) */
	uint64_t delivered;
	uint64_t dead_lettered;   /**< ended in the dead letter queue and not evicted */
	uint64_t dead_lettered_by[SY_DL_REASONS]; /**< the same, by reason */
	uint64_t evicted;         /**< dead letters pushed out by newer ones */
	uint64_t in_flight;       /**< in rings, in handlers, waiting for a retry, or held for a parked key */
	uint64_t retried;         /**< handler runs that were retries */
	uint64_t dlq_held;        /**< entries in the queue now */
	uint64_t replayed;        /**< dead letters sent again */
	/** Ended in a handler run that failed (returned < 0) but kept the
	 *  message with sy_msg_keep(): the handler owns it, nothing is
	 *  retried or dead-lettered. */
	uint64_t failed_kept;
	uint64_t dropped;         /**< failed, and dropped by their route (SY_FAIL_DROP) */
	uint64_t returned;        /**< failed requests returned to their requester (SY_FAIL_RETURN) */
};

/** Fill @p out. Any thread; takes the dead letter queue's lock briefly.
 *  @return 0; -EINVAL (NULL engine or @p out). */
SY_API int sy_engine_accounting(sy_engine *eng, struct sy_accounting *out);

/* ------------------------------------------------------------------ */
/* Metrics (docs/metrics.md)                                          */
/* ------------------------------------------------------------------ */

/** What a series in a snapshot describes. */
enum sy_series_kind {
	SY_SERIES_ENGINE = 0,     /**< the whole engine: one series */
	SY_SERIES_SERVER,
	SY_SERIES_ROUTE,
	SY_SERIES_TRANSPORT,      /**< "producer" (thread to worker rings), "worker" (worker to worker), "reply" */
	SY_SERIES_KINDS
};

/** Counters of one series. */
struct sy_counters {
	uint64_t sent;            /**< messages accepted for it */
	uint64_t delivered;       /**< handler runs that succeeded (returned >= 0) */
	uint64_t failed;          /**< handler runs that returned < 0 */
	uint64_t retried;         /**< retries sent */
	uint64_t rejected;        /**< sends refused */
	uint64_t dead_lettered[SY_DL_REASONS];
	uint64_t transitions;     /**< circuit breaker transitions (servers) */
};

/** Latency histograms recorded by the engine. */
enum sy_hist_kind {
	SY_HIST_LATENCY = 0,      /**< send call to handler start (sampled) */
	SY_HIST_SERVICE,          /**< handler run (sampled) */
	SY_HIST_RTT,              /**< request to reply received (sampled) */
	SY_HIST_SOJOURN,          /**< send call to the worker taking it off the ring (sampled) */
	SY_HIST_KINDS
};

/** A histogram's summary, in nanoseconds. All 0 when count is 0. */
struct sy_hist_summary {
	uint64_t count;
	uint64_t min, max;
	double mean, stddev;
	uint64_t p50, p90, p95, p99, p999;
};

/** An inbox's depth: every ring into one worker. */
struct sy_queue_depth {
	uint64_t current;         /**< at the snapshot */
	uint64_t max;             /**< highest seen in the retained windows */
	double trend;             /**< least-squares slope, messages per window, over the retained windows */
	/** The lowest backpressure threshold, in entries of one ring, of the
	 *  routes with backpressure on and a server on this worker: where a
	 *  sender's ring to it starts refusing (or spilling, ...). 0: none. */
	uint64_t bp_threshold;
};

/**
 * A route's latency from the send call to its handler's start, from the
 * sampled messages (sy_config.latency_sample), like SY_HIST_LATENCY but per
 * route: quantiles to within 12.5% (4 buckets per power of two, from 64 ns
 * to 68 s; outside, the bound). Routes with ids from SY_ROUTE_LATENCY_MAX
 * up have none (samples 0).
 */
struct sy_latency {
	uint64_t samples;
	uint64_t p50_ns, p99_ns, p999_ns;
};

#define SY_ROUTE_LATENCY_MAX 256u  /**< route ids with a latency histogram */

struct sy_hist;               /**< a merged histogram, owned by its snapshot */

/** One series of a snapshot. Valid while the snapshot is held. */
struct sy_series {
	enum sy_series_kind kind;
	uint32_t id;              /**< server or route id; worker index for queue depth; 0 else */
	const char *name;
	struct sy_counters total; /**< since the start (or the last reset) */
	struct sy_counters recent;/**< during the last window */
	double sent_per_s;        /**< over the last window */
	double delivered_per_s;
	double error_rate;        /**< failed / (delivered + failed), since the start */
	double error_rate_recent; /**< the same over the last window */
	enum sy_breaker_state breaker; /**< servers */
	bool healthy;             /**< servers */
	unsigned worker;          /**< servers: owning worker */
	struct sy_latency latency_total;  /**< routes: since the start */
	struct sy_latency latency_recent; /**< routes: during the last window */
};

typedef struct sy_snapshot sy_snapshot;

/**
 * Take a reference to the latest snapshot: no lock, never blocks. Release it
 * with sy_snapshot_release(). Any thread.
 * @return the snapshot; NULL with metrics off or before the first one.
 */
SY_API sy_snapshot *sy_metrics_snapshot(sy_engine *eng);

/** Drop a reference from sy_metrics_snapshot(). Any thread. */
SY_API void sy_snapshot_release(sy_snapshot *snap);

/** Ask the collector for a snapshot now and wait for it (up to 1 s); with
 *  the engine not running, build it in the calling thread. Control thread,
 *  never a handler: it takes the control mutex. Blocks up to 1 s.
 *  @return 0; -ENOTSUP (metrics off); -ETIMEDOUT; -EDEADLK (from a
 *  handler). */
SY_API int sy_metrics_refresh(sy_engine *eng);

/** Zero every counter and histogram from now on (totals restart). Any
 *  thread; takes effect at the collector's next window. @return 0; -ENOTSUP. */
SY_API int sy_metrics_reset(sy_engine *eng);

/*
 * The accessors below read an immutable snapshot: any thread that holds a
 * reference to it; none of them blocks.
 */

/** Snapshot sequence number (1 for the first), its time (engine clock) and
 *  the length of its window. */
SY_API uint64_t sy_snapshot_seq(const sy_snapshot *snap);
SY_API uint64_t sy_snapshot_time_ns(const sy_snapshot *snap);
SY_API uint64_t sy_snapshot_window_ns(const sy_snapshot *snap);

/** Series of one kind in the snapshot, and the i-th of them (NULL past the
 *  end). */
SY_API unsigned sy_snapshot_count(const sy_snapshot *snap,
				  enum sy_series_kind kind);
SY_API const struct sy_series *sy_snapshot_series(const sy_snapshot *snap,
						  enum sy_series_kind kind,
						  unsigned i);

/** The series of that kind and name, or NULL. */
SY_API const struct sy_series *sy_snapshot_find(const sy_snapshot *snap,
						enum sy_series_kind kind,
						const char *name);

/** An engine-wide histogram: its summary since the start, or over the last
 *  window (@p recent). @return 0; -EINVAL (bad kind or NULL @p out). */
SY_API int sy_snapshot_hist(const sy_snapshot *snap, enum sy_hist_kind kind,
			    bool recent, struct sy_hist_summary *out);

/** Samples at or below @p ns in an engine-wide histogram since the start
 *  (for cumulative buckets). */
SY_API uint64_t sy_snapshot_hist_count_le(const sy_snapshot *snap,
					  enum sy_hist_kind kind, uint64_t ns);

/** Workers in the snapshot and the depth of worker @p w's inbox.
 *  @return (queue) 0; -EINVAL (@p w out of range or NULL @p out). */
SY_API unsigned sy_snapshot_workers(const sy_snapshot *snap);
SY_API int sy_snapshot_queue(const sy_snapshot *snap, unsigned w,
			     struct sy_queue_depth *out);

/** Export formats. */
enum sy_format {
	SY_FORMAT_JSON = 0,
	SY_FORMAT_CSV,
	SY_FORMAT_PROMETHEUS,     /**< text exposition format 0.0.4 */
	SY_FORMAT_ERLANG,         /**< terms for file:consult/1 */
	SY_FORMAT_TABLE,          /**< human-readable */
};

/**
 * Render @p snap in @p fmt into a new buffer (free it with free()).
 * Any thread. @return 0; -EINVAL; -ENOMEM.
 */
SY_API int sy_snapshot_format(const sy_snapshot *snap, enum sy_format fmt,
			      char **buf, size_t *len);

/**
 * Serve, read-only, over HTTP: the dashboard page (/), its data
 * (/dashboard.json), the latest snapshot as Prometheus text (/metrics) and
 * as JSON (/metrics.json); GET and HEAD only, no request changes the engine
 * (docs/metrics.md). Requests run on the endpoint's own thread and read
 * snapshots, the accounting and the dead letter queue (briefly taking its
 * lock), never anything on the send or handler paths.
 * Control thread; returns once the socket is listening.
 * @param addr where to listen: NULL for "127.0.0.1", else a dotted IPv4
 *        literal inside 127.0.0.0/8. Anything else (another address,
 *        "0.0.0.0", a host name, IPv6) is refused with -EINVAL: the
 *        endpoint never listens beyond the loopback.
 * @param port the TCP port; 0: any free port
 * @param[out] bound the port bound, or NULL
 * @return 0; -ENOTSUP (built without libmicrohttpd, or metrics off);
 *         -EALREADY (serving already); -EADDRINUSE; -EINVAL (a bad or
 *         non-loopback address, a port above 65535 or one that cannot be
 *         bound); -ENOMEM; -EDEADLK (from a handler).
 */
SY_API int sy_metrics_serve(sy_engine *eng, const char *addr, unsigned port,
			    unsigned *bound);

/** Stop the endpoint (also done by sy_engine_destroy()). Control thread;
 *  from a handler it does nothing. */
SY_API void sy_metrics_serve_stop(sy_engine *eng);

/* ------------------------------------------------------------------ */
/* Remote servers and exported routes over NATS (docs/remote.md)      */
/* ------------------------------------------------------------------ */

/**
 * An engine's connection to a NATS server or cluster. Strings are copied.
 * Credentials and TLS settings go to the NATS client (libnats) unchanged.
 */
struct sy_nats_opts {
	const char *const *urls;   /**< "nats://host:port"; several for a cluster */
	unsigned n_urls;           /**< 1 or more */
	const char *name;          /**< connection name the server shows; NULL: "switchyard" */
	const char *user;          /**< user and password; NULL: none */
	const char *password;
	const char *token;         /**< authentication token; NULL: none */
	const char *creds_file;    /**< a NATS credentials file (JWT and seed); NULL: none */
	bool tls;                  /**< require TLS */
	const char *ca_file;       /**< TLS: trusted CA certificates (PEM); NULL: the system's */
	const char *cert_file;     /**< TLS client certificate (PEM), with key_file; NULL: none */
	const char *key_file;
	uint64_t connect_timeout_ns; /**< 0: 2 s */
	uint64_t reconnect_wait_ns;  /**< between reconnect attempts; 0: 100 ms */
	int max_reconnect;         /**< attempts per server; 0: 60; -1: no limit */
	/**
	 * A JetStream stream that keeps a copy of every dead letter of the
	 * engine (the server runs with JetStream on), so that dead letters
	 * survive the process: sy_nats_dlq_list() and sy_nats_dlq_replay()
	 * read them back, from this engine or a later one. Created if absent
	 * (file storage, subject "sy.dlq.<name>"); a name is 1 to 64 letters,
	 * digits, '-' or '_'. The remote thread writes the copies, never a
	 * sender or a worker. NULL: none.
	 */
	const char *dlq_stream;
};

/**
 * Connect the engine to NATS and start its remote thread, which receives
 * acknowledgements and messages for exported routes. Once per engine,
 * before or after sy_engine_start(). Control thread; blocks while it
 * connects.
 * @return 0; -ENOTSUP (built without libnats); -EINVAL (no URL, a bad
 *         option); -EALREADY (connected already); -ESHUTDOWN (engine
 *         stopped); -ECONNREFUSED (no server of the list could be reached:
 *         sy_last_error() says which URLs and why); -ENOMEM.
 */
SY_API int sy_nats_connect(sy_engine *eng, const struct sy_nats_opts *opts);

/** A remote server's options; zero-initialize, then set. */
struct sy_remote_opts {
	uint64_t ack_timeout_ns;   /**< longest wait for the far engine's acknowledgement; 0: 1 s */
	/** Messages published and awaiting their ack (the window); past it
	 *  messages wait on the worker, up to 16 windows, and past those a
	 *  run fails (-ENOBUFS). 0: 1024. */
	unsigned max_in_flight;
	int worker;                /**< the worker that sends to it, as sy_server_opts.worker */
	bool worker_set;
	const struct sy_breaker_opts *breaker; /**< NULL: no circuit breaker */
};

/**
 * Add a server whose handler runs on another engine, reached through NATS
 * at @p subject (an engine that exports a route there, sy_route_export()).
 * It is a server like any other: routes list it, policies pick it,
 * breakers, retries, deadlines, backpressure and the dead letter queue
 * treat it as a local one. Its worker publishes each message with its key,
 * tag, deadline, route and reply address in headers; the run succeeds
 * when the far engine acknowledges that its handler ran and succeeded, and
 * fails on a failed far run, no acknowledgement within ack_timeout_ns, no
 * responders, a lost connection or a message above the server's maximum
 * payload (a failure dead-letters with reason SY_DL_REMOTE). A request's
 * reply comes back to the requester as from a local server.
 * Control; any thread but a handler; may block.
 * @return as sy_server_add(); -ENOTCONN (sy_nats_connect() first);
 *         -EINVAL (bad subject: empty, wildcards, spaces).
 */
SY_API int sy_server_add_remote(sy_engine *eng, const char *name,
				const char *subject,
				const struct sy_remote_opts *opts, uint32_t *id);

/**
 * Serve route @p route to other engines on NATS subject @p subject, in
 * queue group @p queue (engines that export the same subject in the same
 * group share its messages; NULL: every exporter gets every message). Each
 * message arriving there is sent through the route; when its handler has
 * run, the sender gets the result (and the reply of a request).
 * Control; any thread but a handler.
 * @return 0; -ENOTCONN; -ENOENT (no such route); -EINVAL (bad subject or
 *         queue); -ENOMEM; -EIO (the subscription failed: sy_last_error()).
 */
SY_API int sy_route_export(sy_engine *eng, uint32_t route, const char *subject,
			   const char *queue);

/** The state of an engine's NATS connection. */
enum sy_nats_state {
	SY_NATS_NONE = 0,         /**< not connected (sy_nats_connect() not called) */
	SY_NATS_CONNECTED,
	SY_NATS_RECONNECTING,     /**< the connection dropped; the client is reconnecting */
	SY_NATS_CLOSED,           /**< given up, or the engine stopped */
};

/** What an engine's remote traffic did. */
struct sy_nats_stats {
	enum sy_nats_state state;
	uint64_t reconnects;      /**< connections re-established */
	uint64_t published;       /**< messages published to remote servers */
	uint64_t in_flight;       /**< published, not yet acknowledged or failed */
	uint64_t acked;           /**< acknowledged: the far handler ran and succeeded */
	uint64_t nacked;          /**< acknowledged: the far handler, or its route, failed */
	uint64_t timeouts;        /**< no acknowledgement within the ack timeout */
	uint64_t no_responders;   /**< nobody served the subject */
	uint64_t conn_failures;   /**< failed by a lost or absent connection */
	uint64_t too_large;       /**< above the server's maximum payload */
	uint64_t late_acks;       /**< acknowledgements for messages already failed (a duplicate run) */
	uint64_t served;          /**< messages of exported routes run here */
	uint64_t served_failed;   /**< of those, runs that failed or were refused */
	uint64_t malformed;       /**< messages on an exported subject dropped as malformed */
	struct sy_hist_summary ack_latency; /**< publish to acknowledgement, ns */
	uint64_t dl_stored;       /**< dead letters the JetStream stream acknowledged (sy_nats_opts.dlq_stream) */
	uint64_t dl_store_failed; /**< dead letters that could not be stored there (kept in memory only) */
};

/** Read the remote counters. Any thread; never blocks. @return 0;
 *  -EINVAL. (All zero, state SY_NATS_NONE, when not connected.) */
SY_API int sy_nats_stats(sy_engine *eng, struct sy_nats_stats *out);

/** The remote counters as the collector read them for @p snap (state
 *  SY_NATS_NONE when the engine had no connection: the exports then leave
 *  them out). Any thread holding a reference. @return 0; -EINVAL. */
SY_API int sy_snapshot_nats(const sy_snapshot *snap, struct sy_nats_stats *out);

/**
 * Copy out up to @p max of the dead letters stored in the engine's
 * JetStream stream (sy_nats_opts.dlq_stream) that match @p f, oldest
 * first, whichever engine or process stored them. In each, id is the
 * stream's sequence number; route and server are this engine's ids of the
 * stored names (SY_ANY where it has none by that name); first_ns and
 * last_ns are the storing engine's clock. Any thread but a worker; blocks
 * on the network (one request per dead letter read).
 * @return entries copied; -EINVAL; -EDEADLK (from a worker); -ENOTCONN (no
 *         stream, or not connected); -EIO (JetStream failed: sy_last_error()).
 */
SY_API int sy_nats_dlq_list(sy_engine *eng, const struct sy_dl_filter *f,
			    struct sy_dead_letter *out, unsigned max);

/**
 * Copy up to @p cap bytes of the payload of stored dead letter @p id (its
 * stream sequence) into @p buf. Any thread but a worker; blocks on the
 * network.
 * @return the payload's size; -ENOENT (not in the stream); -EINVAL;
 *         -EDEADLK; -ENOTCONN; -EIO.
 */
SY_API long sy_nats_dlq_peek(sy_engine *eng, uint64_t id, void *buf,
			     size_t cap);

/**
 * Send stored dead letters that match @p f again, oldest first, at most
 * @p max (0: all), each to this engine's route of the stored route name,
 * with its payload, key and tag; then delete each from the stream, so a
 * second replay does not send it again. Dead letters whose route this
 * engine lacks stay in the stream; a refused send stops the replay and
 * leaves that one there. Replays of one engine take turns; two processes
 * replaying one stream at once may both send a dead letter. Should the
 * process die between a send and its deletion, a later replay sends that
 * one again (at least once). Any thread but a worker; blocks on the
 * network.
 * @return messages sent; -EINVAL; -EDEADLK; -ENOTCONN; -EIO.
 */
SY_API int sy_nats_dlq_replay(sy_engine *eng, const struct sy_dl_filter *f,
			      unsigned max);

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/**
 * A static description of an error code (negative or positive errno): the
 * library's own text for the codes it returns, the C library's text
 * (strerrordesc_np()) for any other errno value, "unknown error" for a
 * value that is none. Any thread; never blocks.
 */
SY_API const char *sy_strerror(int err);

/**
 * What the calling thread's last failing call was and why, as
 * "<function>: <what happened>", for example "sy_route_find: no route
 * named 'orders'". Set by every call that fails (see the conventions at the
 * top), left alone by every call that succeeds; "" before any failure.
 * Valid until the thread's next failing call. Any thread; never blocks.
 */
SY_API const char *sy_last_error(void);

/** The code of the calling thread's last failing call (negative errno), 0
 *  before any failure. Any thread; never blocks. */
SY_API int sy_last_error_code(void);

/* ------------------------------------------------------------------ */
/* Deprecated names (0.1.0), kept until 0.3.0                         */
/* ------------------------------------------------------------------ */

#if !defined(SY_BUILDING_LIBRARY)
#define SY_DEPRECATED(use) __attribute__((deprecated("use " use)))
#else
#define SY_DEPRECATED(use)
#endif

/** sy_msg_send() */
SY_API int sy_send(sy_engine *eng, uint32_t route, sy_msg *msg)
	SY_DEPRECATED("sy_msg_send()");
/** sy_msg_send_burst() */
SY_API int sy_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n) SY_DEPRECATED("sy_msg_send_burst()");
/** sy_msg_request() */
SY_API int sy_request(sy_engine *eng, uint32_t route, sy_msg *msg)
	SY_DEPRECATED("sy_msg_request()");
/** sy_msg_reply() */
SY_API int sy_reply(sy_msg *request, sy_msg *reply)
	SY_DEPRECATED("sy_msg_reply()");
/** sy_msg_call() */
SY_API int sy_call(sy_engine *eng, uint32_t route, sy_msg *req,
		   sy_msg **reply, uint64_t timeout_ns)
	SY_DEPRECATED("sy_msg_call()");
/** sy_producer_poll_replies() */
SY_API int sy_poll_replies(sy_engine *eng, sy_msg **out, unsigned max)
	SY_DEPRECATED("sy_producer_poll_replies()");
/** sy_dlq_filter_init() */
SY_API void sy_dl_filter_init(struct sy_dl_filter *f)
	SY_DEPRECATED("sy_dlq_filter_init()");
/** sy_server_is_healthy(): 0 and *healthy set, or the negative error. */
SY_API int sy_server_healthy(sy_engine *eng, uint32_t server, bool *healthy)
	SY_DEPRECATED("sy_server_is_healthy()");

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
