/*
 * Instructions per routed message, counted by callgrind.
 *
 * sy-bench runs itself under `valgrind --tool=callgrind` twice per engine
 * variant, with N and with 2N messages (a "fixed run": untimed, idle workers
 * sleep and the producer keeps the ring from filling, so that waiting and
 * retrying cost few instructions), and reports
 * (Ir(2N) - Ir(N)) / N: the difference cancels the cost of starting the
 * process and the engine. The child routes through the route of
 * ctx->policy (engine_runs.h), which it gets with --fixed-policy, with the
 * engine configuration it gets with --fixed-config. The metrics collector
 * of a fixed run wakes once a minute, so not during the run: its work is
 * per period, not per message.
 */
#ifndef SY_PERF_INSTRUCTIONS_H
#define SY_PERF_INSTRUCTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench.h"
#include "report.h"

/**
 * Measure engine-single and engine-burst32 through the route of
 * ctx->policy, each with the engine configurations bare, the default,
 * metrics-every, reliability and all (engine_config.h), and append a row
 * for each, every row but bare's with its difference to bare's; if
 * valgrind is not on PATH, mark the report so and return 0.
 * Control thread; blocks (tens of seconds).
 * @return 0; a negative errno (explained on stderr).
 */
int scenario_instructions(const struct bench_ctx *ctx, struct report *rep);

/**
 * Measure engine-burst32 through the route of the policy of every row of
 * the "policies" scenario, and give each row its instructions per message
 * and, once the row of ENGINE_BASELINE_POLICY is measured, the difference
 * to it. If valgrind is not on PATH, add a note saying so and return 0.
 * Control thread; blocks (two callgrind runs per row).
 * @return 0; a negative errno (explained on stderr).
 */
int instructions_policies(const struct bench_ctx *ctx, struct report *rep);

/** Whether @p variant is one that a fixed run knows. Any thread. */
bool instructions_fixed_variant_known(const char *variant);

/**
 * The body of a fixed run: @p variant ("engine-single" or "engine-burst32",
 * see instructions_fixed_variant_known()) once with @p n messages, through
 * the route of ctx->policy, with the engine configuration ctx->engine.
 * @return 0; the run's error.
 */
int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant,
			   uint64_t n);

#endif /* SY_PERF_INSTRUCTIONS_H */
