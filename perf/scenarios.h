/*
 * The timed scenarios of sy-bench. Each runs its variants interleaved
 * (A B C A B C ...) for ctx->runs repeats, so that a change of machine state
 * during the invocation spreads over every variant, and appends one report
 * row per variant.
 */
#ifndef SY_PERF_SCENARIOS_H
#define SY_PERF_SCENARIOS_H

#include "bench.h"
#include "report.h"

/**
 * Throughput, one producer to one consumer, ctx->messages per run: the raw
 * baselines and the engine variants through the route of ctx->policy, with
 * each engine row's ratio to every baseline. Control thread; blocks. @return 0; a negative errno (explained
 * on stderr).
 */
int scenario_throughput(const struct bench_ctx *ctx, struct report *rep);

/**
 * Round-trip latency, one request outstanding: ck-pingpong and engine-rtt.
 * Control thread; blocks. @return 0; a negative errno (explained on stderr).
 */
int scenario_latency(const struct bench_ctx *ctx, struct report *rep);

/**
 * engine-burst32 through the route of every built-in policy that picks
 * among servers (ENGINE_BASELINE_POLICY first), ctx->messages per run, with
 * each row's ratio to the baseline's; a policy this build of the library
 * lacks gets a note instead of a row. ctx->policy is not used.
 * Control thread; blocks. @return 0; a negative errno (explained on stderr).
 */
int scenario_policies(const struct bench_ctx *ctx, struct report *rep);

#endif /* SY_PERF_SCENARIOS_H */
