/*
 * Open-loop latency of the engine: requests sent on a fixed schedule,
 * whatever the replies do, and each latency counted from the time the
 * request was meant to leave (coordinated-omission correction, as wrk2
 * does). A closed loop (engine-rtt) sends the next request only after the
 * reply, so a stall delays the requests that would have seen it and hides
 * it; an open loop does not.
 */
#ifndef SY_PERF_OPEN_LOOP_H
#define SY_PERF_OPEN_LOOP_H

#include <stdint.h>

#include "bench.h"
#include "report.h"

/* Default share of engine-rtt's closed-loop rate that the open loop offers. */
#define OPEN_LOOP_DEFAULT_FRACTION 0.5

/* Most requests the producer leaves outstanding (below a reply ring's size). */
#define OPEN_LOOP_MAX_OUTSTANDING 512u

/**
 * @p n requests (tags 0 .. n-1) through a direct route to an echo handler,
 * request i meant to leave at t0 + i / @p rate seconds; between sends the
 * producer polls sy_poll_replies(). @p samples[i]: reply arrival minus the
 * intended send time of request i, in ns. @p secs: from t0 to the last
 * reply. At most OPEN_LOOP_MAX_OUTSTANDING requests are outstanding; a
 * request held back by that bound (or by a full ring) still counts from its
 * intended time. The worker spins when idle if it has a CPU of its own,
 * unless SY_IDLE is set, which then decides.
 * Control thread; blocks for the run.
 * @return 0; -EPROTO (a reply lost, doubled or with a bad tag); -ETIMEDOUT;
 *         -ENOMEM; an engine error (explained on stderr).
 */
int engine_open_loop(const struct bench_ctx *ctx, double rate, uint64_t n,
		     uint64_t *samples, double *secs);

/**
 * The row "engine-open-loop" of the latency scenario: ctx->runs open-loop
 * runs offering @p fraction (0 < fraction <= 1) of the median rate of the
 * engine-rtt row already in @p rep, with as many round trips per run as
 * that row. Without an engine-rtt row it adds nothing.
 * Control thread; blocks. @return 0; a negative errno (explained on stderr).
 */
int scenario_open_loop(const struct bench_ctx *ctx, double fraction,
		       struct report *rep);

#endif /* SY_PERF_OPEN_LOOP_H */
