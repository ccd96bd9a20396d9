/*
 * Raw baselines of sy-bench: what moving a pointer from one pinned thread to
 * another costs without the engine, measured the same way as the engine.
 *
 * Each throughput baseline moves @p n messages from a producer pinned to
 * ctx->producer_cpu to a consumer pinned to ctx->consumer_cpu, checks that
 * they arrive complete and in order, and stores the seconds from the first
 * enqueue to the last dequeue in @p secs. Control thread; blocks for the run.
 * @return 0; -EPROTO (a message lost or out of order); -ETIMEDOUT (a side
 *         stalled); -ENOMEM; -errno from thread creation.
 */
#ifndef SY_PERF_BASELINES_H
#define SY_PERF_BASELINES_H

#include <stdint.h>

#include "bench.h"

/** ck_ring SPSC, ring of 1024, one pointer per enqueue and dequeue. */
int baseline_ck_spsc(const struct bench_ctx *ctx, uint64_t n, double *secs);

/** batch_ring: cached indices, published every 32, dequeue all available. */
int baseline_batched_limit(const struct bench_ctx *ctx, uint64_t n,
			   double *secs);

/** A bounded queue under a pthread mutex with two condition variables. */
int baseline_mutex_queue(const struct bench_ctx *ctx, uint64_t n,
			 double *secs);

/**
 * Round trips over two ck_ring SPSC rings, busy polling: the producer sends
 * a pointer, the consumer echoes it back. Stores each round trip's duration
 * in ns (two clock_gettime calls around it) in @p samples[0..n), and the
 * seconds of the whole run in @p secs. Same errors as above.
 */
int baseline_ck_pingpong(const struct bench_ctx *ctx, uint64_t n,
			 uint64_t *samples, double *secs);

#endif /* SY_PERF_BASELINES_H */
