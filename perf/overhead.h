/*
 * The overhead scenario of sy-bench: what metrics, a circuit breaker and
 * backpressure cost a sender. The throughput scenario's engine variants
 * (engine-single and engine-burst<B>, through the route of --policy, with
 * --producers x --workers) run with every configuration of engine_config.h,
 * interleaved; each row's median rate is divided by that of "bare" (metrics
 * off, no breaker, backpressure off) with the same send call, measured in
 * the same invocation, and shown next to the configuration's target.
 */
#ifndef SY_PERF_OVERHEAD_H
#define SY_PERF_OVERHEAD_H

#include "bench.h"
#include "report.h"

/*
 * Messages per run unless --messages says otherwise: 14 variants x --runs
 * runs must fit in the default "all" (about 0.1 s per engine-single run on
 * the development VM).
 */
#define OVERHEAD_DEFAULT_MESSAGES 2000000u

/**
 * Run each send call with each configuration ctx->runs times,
 * ctx->overhead_messages per run, and add a row per pair, named
 * "<send>/<configuration>" ("engine-single/metrics"), with its ratio to bare,
 * the spread of the per-run ratios and its target.
 * Control thread; blocks. @return 0; a negative errno (explained on stderr).
 */
int scenario_overhead(const struct bench_ctx *ctx, struct report *rep);

#endif /* SY_PERF_OVERHEAD_H */
