/*
 * Engine variants of sy-bench, driven through the public API only: one
 * producer thread pinned to ctx->producer_cpu, one engine worker pinned to
 * ctx->consumer_cpu, one server, one route "bench" with policy "direct".
 *
 * Every function is called from the control thread and blocks for the run;
 * the engine is created, started, stopped and destroyed around the timed
 * part. A failure is explained on stderr (with sy_last_error() where the
 * library gives one) and returned as a negative errno.
 */
#ifndef SY_PERF_ENGINE_RUNS_H
#define SY_PERF_ENGINE_RUNS_H

#include <stdint.h>

#include "bench.h"

/**
 * Create and destroy an engine with every setting taken from the
 * environment, so that a bad SY_* variable stops sy-bench before it measures
 * anything. @return 0; the error of sy_engine_create().
 */
int engine_preflight(void);

/**
 * @p n messages of 16 bytes, each allocated with sy_msg_alloc() and sent
 * alone with sy_send() (retried while the ring is full); the handler counts.
 * @p secs: from the first send until the handler has counted @p n.
 */
int engine_single(const struct bench_ctx *ctx, uint64_t n, double *secs);

/** As engine_single(), in bursts of 32 with sy_send_burst(). */
int engine_burst32(const struct bench_ctx *ctx, uint64_t n, double *secs);

/**
 * @p n requests with sy_request(), one outstanding at a time; the handler
 * answers in place with sy_reply(); the producer polls sy_poll_replies().
 * Stores each round trip in ns in @p samples[0..n) and the seconds of the
 * whole run in @p secs. The worker spins when idle if it has a CPU of its
 * own, else it uses the default idle strategy.
 */
int engine_rtt(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
	       double *secs);

#endif /* SY_PERF_ENGINE_RUNS_H */
