/*
 * The scaling scenario of sy-bench: k producers x k workers for k = 1, 2,
 * 4, ... up to half the allowed CPUs (at least k = 1), engine-burst32
 * through a round_robin route over the k workers' servers, each producer
 * sending ctx->messages per run; with ctx->oversubscribe, one step more,
 * beyond the CPUs. Reports each k's median rate, its speedup over k = 1 and
 * the efficiency, speedup / k.
 */
#ifndef SY_PERF_SCALING_H
#define SY_PERF_SCALING_H

#include "bench.h"
#include "report.h"

/**
 * Run the scaling steps interleaved (k = 1, 2, 4, ... then again) for
 * ctx->runs repeats and add one row per step. Control thread; blocks.
 * @return 0; a negative errno (explained on stderr).
 */
int scenario_scaling(const struct bench_ctx *ctx, struct report *rep);

#endif /* SY_PERF_SCALING_H */
