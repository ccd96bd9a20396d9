/*
 * Many-thread engine runs of sy-bench: P producer threads and W engine
 * workers, each worker owning one server, and one round_robin route "bench"
 * over the W servers. Each producer sends its share of the messages (the
 * first n % P producers one more) through the route; every server counts
 * what it handles in a counter of its own, since only its worker writes it.
 *
 * Threads are spread over the allowed CPUs (ctx->cpus) in slots: producer j
 * and worker j of the first min(P, W) pairs take slots 2j and 2j + 1, the
 * producers left over the next slots, then the workers left over; slot s
 * is the (s mod n)-th of the n allowed CPUs. The engine places worker i on
 * the i-th CPU of the set of worker CPUs. The engine, its servers and its
 * route take the settings of ctx->engine (engine_config.h). More threads than CPUs is allowed:
 * waiters then yield at once instead of spinning, so that every run ends.
 *
 * Every function is called from the control thread and blocks; a failure
 * is explained on stderr and returned as a negative errno.
 */
#ifndef SY_PERF_MULTI_RUNS_H
#define SY_PERF_MULTI_RUNS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "switchyard.h"

/* Most producers (--producers) and workers (--workers) of a run. */
#define MULTI_MAX_THREADS 64

/* The route of a many-thread run. */
#define MULTI_POLICY "round_robin"

struct multi_counter;

/** An engine with W workers, one counting server each, and the route. */
struct multi_engine {
	sy_engine *eng;
	uint32_t route;
	unsigned workers;
	struct multi_counter *counters; /* one per worker */
	const char *variant;            /* for messages */
};

/**
 * Create and start @p m: @p workers workers placed as described above for
 * ctx->producers producers, the servers and the route, configured by
 * ctx->engine; @p allocator (NULL:
 * the engine's own) feeds the engine's pools. Sets m->variant to @p variant.
 * @return 0; a negative errno.
 */
int multi_engine_open(struct multi_engine *m, const struct bench_ctx *ctx,
		      unsigned workers, const struct sy_allocator *allocator,
		      const char *variant);

/** Stop and destroy the engine of @p m and free its counters. */
void multi_engine_close(struct multi_engine *m);

/** Messages the servers of @p m have handled so far. Any thread. */
uint64_t multi_engine_handled(const struct multi_engine *m);

/**
 * Wait until the servers of @p m have handled @p target messages.
 * An attached or any other thread. @return 0; -ETIMEDOUT (the count stopped
 * moving for BENCH_STALL_NS); -EPROTO (more than @p target).
 */
int multi_engine_await(const struct multi_engine *m, uint64_t target,
		       unsigned spin_limit);

/**
 * Send @p n messages of @p payload bytes through the route of @p m, in
 * bursts of @p burst with sy_send_burst(), or alone with sy_send() when
 * @p burst is 0; retry while a ring is full or past the backpressure
 * threshold. The calling (attached) thread.
 * @return 0; a negative errno.
 */
int multi_send(const struct multi_engine *m, uint64_t n, unsigned payload,
	       unsigned burst, unsigned spin_limit);

/** The CPU of slot @p slot (see above). */
int multi_slot_cpu(const struct bench_ctx *ctx, unsigned slot);

/** Whether ctx->producers + ctx->workers threads outnumber the CPUs. */
bool multi_oversubscribed(const struct bench_ctx *ctx);

/**
 * One timed run: ctx->producers x ctx->workers, @p n messages of
 * ctx->payload bytes in all, in bursts of @p burst (0: sy_send()).
 * @p secs: from the first producer's start until every message is handled.
 */
int multi_run(const struct bench_ctx *ctx, unsigned burst, uint64_t n,
	      double *secs);

/**
 * The engine variants of the throughput scenario: with one producer and
 * one worker, engine_single() and engine_burst32() (engine_runs.h, route of
 * ctx->policy); else multi_run().
 */
int multi_engine_single(const struct bench_ctx *ctx, uint64_t n, double *secs);
int multi_engine_burst(const struct bench_ctx *ctx, uint64_t n, double *secs);

#endif /* SY_PERF_MULTI_RUNS_H */
