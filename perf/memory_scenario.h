/*
 * The memory scenario of sy-bench: what the engine's memory does while it
 * routes many messages. One engine with one worker, one producer (placed
 * as in the throughput scenario), a counting allocator plugged into the
 * engine's configuration. After a warm-up of MEMORY_WARMUP messages, two
 * phases of ctx->messages each: engine-burst<B> (sy_send_burst()), then
 * engine-single (sy_send()). Before and after each phase it reads the
 * process's resident set (/proc/self/statm), the engine's pool counters
 * (sy_engine_stats()) and the allocator's calls; it reports the RSS growth
 * per million messages and the allocator calls per message, which in steady
 * state should be 0. It runs once, whatever ctx->runs says.
 */
#ifndef SY_PERF_MEMORY_SCENARIO_H
#define SY_PERF_MEMORY_SCENARIO_H

#include "bench.h"
#include "report.h"

/*
 * Messages sent before the first measurement, to fill the pools: a pool
 * grows until it holds what its producer keeps in flight at most (up to
 * ring_size - 1 bursts of 32), which a short warm-up does not always reach.
 */
#define MEMORY_WARMUP 10000000u

/**
 * Run the memory scenario and add one row per phase, and a note if the
 * allocator is not balanced after sy_engine_destroy(). Control thread;
 * blocks. @return 0; a negative errno (explained on stderr).
 */
int scenario_memory(const struct bench_ctx *ctx, struct report *rep);

#endif /* SY_PERF_MEMORY_SCENARIO_H */
