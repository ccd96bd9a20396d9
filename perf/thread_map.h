/*
 * SY_DISPLAY_AFFINITY=1: sy-bench's own thread -> CPU map on stderr, next
 * to the engine's "switchyard: worker N -> cpu C" lines.
 */
#ifndef SY_PERF_THREAD_MAP_H
#define SY_PERF_THREAD_MAP_H

#include "bench.h"

/**
 * If SY_DISPLAY_AFFINITY is "1", print where sy-bench pins the threads it
 * starts (the producer and consumer of every two-thread run and of the
 * probe) and where its control thread may run. Control thread; never
 * blocks.
 */
void thread_map_print(const struct bench_ctx *ctx);

#endif /* SY_PERF_THREAD_MAP_H */
