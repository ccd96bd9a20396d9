/*
 * Instructions per routed message, counted by callgrind.
 *
 * sy-bench runs itself under `valgrind --tool=callgrind` twice per engine
 * variant, with N and with 2N messages (a "fixed run": untimed, idle workers
 * sleep and the producer keeps the ring from filling, so that waiting and
 * retrying cost few instructions), and reports
 * (Ir(2N) - Ir(N)) / N: the difference cancels the cost of starting the
 * process and the engine.
 */
#ifndef SY_PERF_INSTRUCTIONS_H
#define SY_PERF_INSTRUCTIONS_H

#include <stdint.h>

#include "bench.h"
#include "report.h"

/**
 * Measure engine-single and engine-burst32 and append a row for each; if
 * valgrind is not on PATH, mark the report so and return 0.
 * Control thread; blocks (tens of seconds).
 * @return 0; a negative errno (explained on stderr).
 */
int scenario_instructions(const struct bench_ctx *ctx, struct report *rep);

/**
 * The body of a fixed run: @p variant ("engine-single" or "engine-burst32")
 * once with @p n messages. @return 0; -EINVAL (unknown variant); the run's
 * error.
 */
int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant,
			   uint64_t n);

#endif /* SY_PERF_INSTRUCTIONS_H */
