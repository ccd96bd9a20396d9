/*
 * The placement probe: how far apart the producer's and the consumer's CPUs
 * are, as the round trip of one cache line between them. The host moves
 * virtual CPUs, so a result means little without the probe taken with it.
 */
#ifndef SY_PERF_PROBE_H
#define SY_PERF_PROBE_H

#include "bench.h"

#define PROBE_ROUND_TRIPS 10000u

/**
 * Bounce one atomic variable PROBE_ROUND_TRIPS times between a thread on
 * ctx->producer_cpu and one on ctx->consumer_cpu; store the median round
 * trip in ns (including one clock_gettime) in @p median_ns.
 * Control thread; blocks for the run.
 * @return 0; -ETIMEDOUT; -ENOMEM; -errno from thread creation.
 */
int probe_round_trip(const struct bench_ctx *ctx, double *median_ns);

#endif /* SY_PERF_PROBE_H */
