/*
 * The ZeroMQ baseline of sy-bench: what the established in-process
 * messaging library costs between the same two pinned CPUs. Built only when
 * libzmq is found (SY_BENCH_HAVE_ZMQ, meson option "zmq").
 */
#ifndef SY_PERF_ZMQ_BASELINE_H
#define SY_PERF_ZMQ_BASELINE_H

#include <stdint.h>

#include "bench.h"

/**
 * @p n messages over a ZeroMQ inproc PUSH/PULL pair (default high-water
 * marks), one zmq_msg of ctx->payload bytes (as the engine variants) per
 * message, carrying its sequence number in its first (up to 8) bytes; producer pinned to ctx->producer_cpu, consumer to
 * ctx->consumer_cpu. The consumer checks every number. @p secs: from the
 * first send to the last receive. Control thread; blocks for the run.
 * @return 0; -EPROTO (a message lost, reordered or of the wrong size);
 *         -ENOMEM; a negative errno from ZeroMQ or thread creation
 *         (explained on stderr).
 */
int baseline_zmq_inproc(const struct bench_ctx *ctx, uint64_t n, double *secs);

#endif /* SY_PERF_ZMQ_BASELINE_H */
