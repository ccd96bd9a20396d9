/*
 * Engine variants of sy-bench, driven through the public API only: one
 * producer thread pinned to ctx->producer_cpu, one engine worker pinned to
 * ctx->consumer_cpu, and a route "bench" with the policy ctx->policy:
 * "direct" over one server, any other policy over ENGINE_ROUTE_SERVERS
 * servers, all owned by the one worker, so that the policy picks among
 * servers while messages still move between the same two CPUs. The route
 * of "weighted" has the weights 4, 3, 2, 1; with "hash" each message's key
 * is its sequence number. The round-trip run always uses "direct".
 *
 * Every engine is configured by ctx->engine (engine_config.h): metrics,
 * a breaker on each server, the route's backpressure.
 *
 * Every function is called from the control thread and blocks for the run;
 * the engine is created, started, stopped and destroyed around the timed
 * part. A failure is explained on stderr (with sy_last_error() where the
 * library gives one) and returned as a negative errno.
 */
#ifndef SY_PERF_ENGINE_RUNS_H
#define SY_PERF_ENGINE_RUNS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "switchyard.h"

/* Servers of the route of a policy that picks (every one but "direct"). */
#define ENGINE_ROUTE_SERVERS 4

/* Built-in policies that pick among servers: all but "direct". */
#define ENGINE_PICKING_POLICIES 7

/* The picking policy that the others are compared with; the first of them. */
#define ENGINE_BASELINE_POLICY "round_robin"

/**
 * The @p i-th built-in policy that picks among servers, i below
 * ENGINE_PICKING_POLICIES, ENGINE_BASELINE_POLICY first. Any thread.
 */
const char *engine_picking_policy(unsigned i);

/** Whether @p name is a built-in policy ("direct" included). Any thread. */
bool engine_policy_known(const char *name);

/**
 * A line that says how the route of the built-in policy @p name is built,
 * for the table. Any thread.
 */
const char *engine_policy_route(const char *name);

/**
 * Whether this build of the library has the built-in policy @p name: build
 * its route on an engine that is never started. Control thread; blocks.
 * @return 0; -ENOENT (sy_route_add() refused the policy with -EINVAL: not
 *         in this build); another negative errno (explained on stderr).
 */
int engine_policy_check(const char *name);

/**
 * Create and destroy an engine with every setting taken from the
 * environment, so that a bad SY_* variable stops sy-bench before it measures
 * anything. @return 0; the error of sy_engine_create().
 */
int engine_preflight(void);

/**
 * @p n messages of ctx->payload bytes, each allocated with sy_msg_alloc()
 * and sent alone with sy_send() (retried while the ring is full) through
 * the route of ctx->policy; the handler counts. @p secs: from the first send until
 * the handler has counted @p n.
 */
int engine_single(const struct bench_ctx *ctx, uint64_t n, double *secs);

/** As engine_single(), in bursts of ctx->burst with sy_send_burst(). */
int engine_burst32(const struct bench_ctx *ctx, uint64_t n, double *secs);

/**
 * Looks at a started engine after its run, before it is destroyed; every
 * message sent has been handled. Control thread.
 * @return 0; a negative errno (explained on stderr), which fails the run.
 */
typedef int (*engine_inspect_fn)(sy_engine *eng, void *arg);

/**
 * As engine_single(), untimed, then @p inspect(@p arg) on the engine
 * before it is destroyed. @return 0; the run's or @p inspect's error.
 */
int engine_single_inspect(const struct bench_ctx *ctx, uint64_t n,
			  engine_inspect_fn inspect, void *arg);

/**
 * @p n requests with sy_request(), one outstanding at a time; the handler
 * answers in place with sy_reply(); the producer polls sy_poll_replies().
 * Stores each round trip in ns in @p samples[0..n) and the seconds of the
 * whole run in @p secs. The worker spins when idle if it has a CPU of its
 * own, else it uses the default idle strategy.
 */
int engine_rtt(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
	       double *secs);

/**
 * Send msgs[0..n) in order, resending what the engine refuses and waiting
 * with @p b while its ring is full or past the backpressure threshold. On an error the messages not sent are
 * freed. @return 0; a negative errno (-ETIMEDOUT when @p b gave up).
 */
int bench_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
		     unsigned n, struct backoff *b);

#endif /* SY_PERF_ENGINE_RUNS_H */
