/*
 * switchyard: an in-process message routing engine.
 *
 * Producers send messages to named routes; a route's policy picks one of its
 * servers; the worker thread that owns the server runs the server's handler.
 * Handlers may reply to the thread that sent a request, or forward messages
 * to other routes.
 *
 * Conventions used by every function below:
 *  - Actions return 0 or a negative errno value; sy_strerror() explains each.
 *    Burst calls return a count.
 *  - "Any thread" means any thread of the process, attached or not.
 *    "Control" functions (servers, routes, engine life cycle) serialize on an
 *    internal mutex, may block, and must not be called from a handler unless
 *    their documentation says so.
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
 * Memory for the engine's pools (message slabs, rings). Both functions may be
 * called from any thread, concurrently. Left NULL, the engine uses its own
 * arena of jemalloc (default build) or malloc.
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
 * Start the worker threads (pinned as configured).
 * Control thread; blocks until every worker runs.
 * @return 0; -EALREADY if started before; -EAGAIN or -EINVAL if a thread
 *         could not be created or pinned (sy_last_error() says which).
 */
SY_API int sy_engine_start(sy_engine *eng);

/**
 * Stop accepting messages and drain: every message accepted before the call
 * runs its handler before the workers exit. Sends made after the call starts
 * fail with -ESHUTDOWN; replies from draining handlers are still delivered.
 * Control thread, not a handler; blocks until the workers have exited.
 * @return 0; -EALREADY if already stopped; -EDEADLK from a worker thread.
 */
SY_API int sy_engine_stop(sy_engine *eng);

/**
 * Stop (if running) and free the engine: servers, routes, rings and every
 * pooled message, including messages a caller still holds. Threads still
 * attached must not use the engine afterwards; they need not detach.
 * Control thread, not a handler; blocks like sy_engine_stop().
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
 * the sums are a recent view, not an atomic one; with nothing in flight
 * (after sy_engine_stop(), for instance) accepted == delivered exactly.
 */
struct sy_stats {
	uint64_t accepted;          /**< messages taken by a send call */
	uint64_t delivered;         /**< handler runs */
	uint64_t handler_failed;    /**< handler runs that returned < 0 */
	uint64_t rejected_noroute;  /**< sends refused: unknown route (-ENOENT) */
	uint64_t rejected_unreachable; /**< sends refused: no server available (-EHOSTUNREACH) */
	uint64_t rejected_full;     /**< sends refused: ring full (-EAGAIN) */
	uint64_t rejected_shutdown; /**< sends refused: engine stopping (-ESHUTDOWN) */
	uint64_t requests;          /**< accepted messages that expect a reply */
	uint64_t replies_sent;      /**< replies enqueued by handlers */
	uint64_t replies_received;  /**< replies handed to their requester */
	uint64_t replies_dropped;   /**< replies to a thread that detached or timed out, or to a full reply ring */
	uint64_t in_flight;         /**< accepted - delivered, clamped at 0 */
	uint64_t pool_slabs;        /**< slabs the message pools hold */
	uint64_t pool_bytes;        /**< bytes of those slabs */
};

/**
 * Read the engine's counters. Any thread; never blocks.
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
 * it, unless the handler passed it on with sy_send(), sy_reply() or
 * sy_msg_keep() (after which it is no longer the handler's to touch).
 * @return 0 on success, a negative errno value on failure (counted).
 */
typedef int (*sy_handler_fn)(sy_engine *eng, sy_msg *msg, void *ctx);

/** Server options; zero-initialize, then set. */
struct sy_server_opts {
	int worker; /**< owning worker index; -1 places it on the worker with fewest servers */
};

/**
 * Add a server. Control; any thread but a handler; may block.
 * @param name unique, 1 to 63 bytes
 * @param opts NULL for automatic placement
 * @param[out] id the server's id
 * @return 0; -EINVAL (bad name, handler or worker); -EEXIST (name taken);
 *         -ENOSPC (max_servers reached); -ENOMEM.
 */
SY_API int sy_server_add(sy_engine *eng, const char *name, sy_handler_fn fn,
			 void *ctx, const struct sy_server_opts *opts,
			 uint32_t *id);

/**
 * Remove a server at run time: take it out of every route, wait until every
 * message already sent to it has run its handler, then free it.
 * Control; any thread but a worker of this engine; blocks until drained.
 * @return 0; -ENOENT (no such server); -EDEADLK (called from a worker);
 *         -EBUSY (the engine was never started and messages for the
 *         server's worker are queued: start or stop the engine first).
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

/** What a route is: a policy over a set of servers. */
struct sy_route_opts {
	const char *policy;       /**< a built-in or registered policy name (see docs/policies.md); NULL: "round_robin" */
	const uint32_t *servers;  /**< server ids, in order (the priority order for "failover") */
	unsigned n_servers;       /**< 1 or more */
	const uint32_t *weights;  /**< one per server, 1 to 65535, for "weighted"; NULL: all 1 */
	const char *params;       /**< policy parameters, "name=value,name=value"; NULL: none */
};

/**
 * Add a route. Control; any thread but a handler; may block.
 * @param[out] id the route's small integer id, for sy_send()
 * @return 0; -EINVAL (bad name, unknown policy, no servers, "direct" with
 *         more than one, duplicate server); -ENOENT (unknown server id);
 *         -EEXIST (name taken); -ENOSPC (max_routes reached); -ENOMEM.
 */
SY_API int sy_route_add(sy_engine *eng, const char *name,
			const struct sy_route_opts *opts, uint32_t *id);

/**
 * Replace a route's policy and servers, keeping its name and id. Senders see
 * either the old or the new route, never a mix; messages already sent are
 * not moved. Control; any thread but a handler; may block.
 * @return 0; -ENOENT (no such route, or unknown server); -EINVAL; -ENOMEM.
 */
SY_API int sy_route_replace(sy_engine *eng, uint32_t id,
			    const struct sy_route_opts *opts);

/**
 * Remove a route. Later sends to its id fail with -ENOENT; messages already
 * sent are delivered. Control; any thread but a handler; may block.
 * @return 0; -ENOENT.
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
 * The caller owns the message.
 * @return the message, or NULL (size above SY_MSG_MAX_SIZE, no producer slot,
 *         or no memory; sy_last_error() says which).
 */
SY_API sy_msg *sy_msg_alloc(sy_engine *eng, size_t size);

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
 * @return 0; -EMSGSIZE if above the capacity.
 */
SY_API int sy_msg_set_size(sy_msg *msg, size_t size);

/** A 64-bit value the engine carries untouched, from request to reply too. */
SY_API uint64_t sy_msg_tag(const sy_msg *msg);

/** Set the tag. The owner only. */
SY_API void sy_msg_set_tag(sy_msg *msg, uint64_t tag);

/**
 * The key that key-based policies ("hash") route by; 0 for a new message.
 * Messages with the same key sent through the same route go to the same
 * server while the route's servers do not change. The owner only.
 */
SY_API uint64_t sy_msg_key(const sy_msg *msg);

/** Set the key. The owner only. */
SY_API void sy_msg_set_key(sy_msg *msg, uint64_t key);

/**
 * Inside a handler: keep the message being handled; the handler now owns it
 * and must free or send it later. The handling worker only.
 * @return 0; -EINVAL if @p msg is not the message being handled.
 */
SY_API int sy_msg_keep(sy_msg *msg);

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
 *         retry); -ESHUTDOWN (engine stopping); -ENOSPC (no producer slot);
 *         -ENOMEM.
 */
SY_API int sy_send(sy_engine *eng, uint32_t route, sy_msg *msg);

/**
 * Send up to @p n messages to a route, with one RCU read-side section and at
 * most one ring operation per destination worker. Messages to the same worker
 * are accepted or refused together. On return msgs[0..k) were accepted (the
 * engine owns them) and msgs[k..n) were not (the caller still owns them, in
 * their original order). Same threads and blocking as sy_send().
 * @return k, the number accepted (0 to n); or, when none was accepted, the
 *         negative errno that sy_send() would have returned for msgs[0].
 */
SY_API int sy_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n);

/**
 * Send a request: like sy_send(), and the handler may answer with sy_reply();
 * the reply comes back to the calling thread through sy_poll_replies().
 * Use the tag to match replies with requests.
 * @return as sy_send().
 */
SY_API int sy_request(sy_engine *eng, uint32_t route, sy_msg *msg);

/**
 * Inside a handler: answer the request being handled. @p reply may be the
 * request itself (answered in place) or a message the handler owns; its tag
 * is set to the request's. On success the reply belongs to the requester.
 * The handling worker only; never blocks.
 * @return 0; -EINVAL (@p request is not the message being handled or is not
 *         a request); -EAGAIN (the requester's reply ring is full; the reply
 *         stays the handler's); -ECONNRESET (the requester detached; the
 *         reply stays the handler's).
 */
SY_API int sy_reply(sy_msg *request, sy_msg *reply);

/**
 * Take up to @p max replies that arrived for the calling thread. The caller
 * owns each. The calling (attached) thread; never blocks.
 * @return the number taken (0 to max); -ENOENT if the thread is not attached.
 */
SY_API int sy_poll_replies(sy_engine *eng, sy_msg **out, unsigned max);

/**
 * Send a request and wait for its reply, at most @p timeout_ns nanoseconds.
 * Other replies that arrive meanwhile wait for sy_poll_replies(). A reply
 * that arrives after the timeout is dropped and counted. Any thread but a
 * handler (attaches it); blocks.
 * @param req the request: the engine owns it once sent, even on timeout
 * @param[out] reply the reply, which the caller then owns
 * @return 0; -ETIMEDOUT; -EDEADLK (called from a handler); any error of
 *         sy_send(), in which case @p req is still the caller's.
 */
SY_API int sy_call(sy_engine *eng, uint32_t route, sy_msg *req,
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
 * returns an index in [0, n). The engine skips a picked server that is not
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
 * picks of one sy_send_burst() see the same time). In pick() only.
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
/* Errors                                                             */
/* ------------------------------------------------------------------ */

/**
 * A static description of an error code this library returns (negative or
 * positive errno). Any thread; never blocks.
 */
SY_API const char *sy_strerror(int err);

/**
 * The message that explains the last error on the calling thread, for
 * failures that carry more than a code (configuration, environment, start).
 * Valid until the thread's next call into the library. Any thread.
 */
SY_API const char *sy_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
