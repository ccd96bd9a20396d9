/*
 * Per-thread counters.
 *
 * Each producer slot and each worker owns one struct sy__counters and is its
 * only writer: an increment is a relaxed load and a relaxed store, no locked
 * instruction and no shared cache line. Readers (sy_engine_stats()) load each
 * field relaxed and add the shards up; a sum is a recent view, exact once the
 * writers are quiet.
 */
#ifndef SY_METRICS_COUNTERS_H
#define SY_METRICS_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "switchyard.h"

enum sy__counter {
	SY_C_ACCEPTED,
	SY_C_DELIVERED,
	SY_C_HANDLER_FAILED,
	SY_C_REJ_NOROUTE,
	SY_C_REJ_UNREACHABLE,
	SY_C_REJ_FULL,
	SY_C_REJ_SHUTDOWN,
	SY_C_REQUESTS,
	SY_C_REPLIES_SENT,
	SY_C_REPLIES_RECEIVED,
	SY_C_REPLIES_DROPPED,
	SY_C_REJ_BACKPRESSURE,
	SY_C_HANDED_ON,     /* failed handler runs whose message went to a retry or the DLQ */
	SY_C_RETRIED,
	SY_C_COUNT
};

struct sy__counters {
	_Atomic uint64_t v[SY_C_COUNT];
} __attribute__((aligned(64)));

/**
 * Add @p n to counter @p c. The owning thread only. The store is a release
 * (free on x86): a reader that acquires a count also sees every count its
 * writer saw, so a message's outcome is never visible without its
 * acceptance (sy_engine_accounting()).
 */
static inline void sy__count(struct sy__counters *c, enum sy__counter i,
			     uint64_t n)
{
	uint64_t v = atomic_load_explicit(&c->v[i], memory_order_relaxed);

	atomic_store_explicit(&c->v[i], v + n, memory_order_release);
}

/** Add the shard @p c into @p out. Any thread. */
void sy__counters_add_to(const struct sy__counters *c, struct sy_stats *out);

#endif /* SY_METRICS_COUNTERS_H */
