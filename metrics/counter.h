/*
 * Counters: the one counting primitive of the engine.
 *
 * Every counter has exactly one writer, the thread that owns the set it is
 * in (a producer slot or a worker), so an increment is one unlocked add to
 * memory (a load and a store where that is not x86-64), no locked
 * instruction and no shared cache line. The store is a release
 * and a read is an acquire (both free on x86): a reader that sees a count
 * also sees every count its writer made before it, so a message's outcome
 * is never visible without its acceptance (sy_engine_accounting()).
 * Readers add the sets of every thread; a sum is a recent view, exact once
 * the writers are quiet.
 *
 * Two sets use it: each thread's engine totals (enum sy__total, what
 * sy_engine_stats() and sy_engine_accounting() add up), and the per-series
 * counters of a metrics shard (enum sy__sc, per server, route and
 * transport; shard.h).
 */
#ifndef SY_METRICS_COUNTER_H
#define SY_METRICS_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

#include "switchyard.h"

typedef _Atomic uint64_t sy__counter;

/**
 * Add @p n to @p c. Its owning thread only.
 *
 * On x86-64 one unlocked add to memory, as a per-CPU counter of the Linux
 * kernel: a single instruction whose store is a release there (no store
 * passes an earlier one), aligned 8 bytes so that a reader sees the old
 * value or the new one; volatile, so that the compiler keeps the counts in
 * the order the code makes them and behind the compiler barriers of the
 * ring's publish. Elsewhere, and under ThreadSanitizer (which must see the
 * store), a relaxed load and a release store: the same effect in C.
 */
static inline void sy__counter_add(sy__counter *c, uint64_t n)
{
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
	__asm__ __volatile__("addq %1, %0" : "+m"(*c) : "er"(n));
#else
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

	atomic_store_explicit(c, v + n, memory_order_release);
#endif
}

/** The value of @p c. Any thread. */
static inline uint64_t sy__counter_read(const sy__counter *c)
{
	return atomic_load_explicit((sy__counter *)c, memory_order_acquire);
}

/* A thread's engine totals. */
enum sy__total {
	SY_T_ACCEPTED,
	SY_T_DELIVERED,
	SY_T_HANDLER_FAILED,
	SY_T_REJ_NOROUTE,
	SY_T_REJ_UNREACHABLE,
	SY_T_REJ_FULL,
	SY_T_REJ_SHUTDOWN,
	SY_T_REQUESTS,
	SY_T_REPLIES_SENT,
	SY_T_REPLIES_RECEIVED,
	SY_T_REPLIES_DROPPED,
	SY_T_REJ_BACKPRESSURE,
	SY_T_HANDED_ON,  /* failed handler runs whose message went to a retry or the DLQ */
	SY_T_RETRIED,
	SY_T_SEND_WAITS,         /* waiting sends that found no room at first */
	SY_T_SEND_WAIT_TIMEOUTS, /* waiting sends that gave up */
	SY_T_DROPPED,    /* failures dropped by their route (SY_FAIL_DROP) */
	SY_T_RETURNED,   /* failures returned to their requester (SY_FAIL_RETURN) */
	SY_T_REJ_DEADLINE, /* sy_msg_call() requests no server could finish in time */
	SY_T_CODEL_SHED, /* sends CoDel shed (codel.c), in any backpressure mode */
	SY_T_HEDGES_SENT,   /* hedge copies sent (hedge.c) */
	SY_T_HEDGE_WINS,    /* hedged requests whose copy answered first */
	SY_T_HEDGE_DISCARDS,/* replies of hedged requests nobody takes */
	SY_T_COUNT
};

struct sy__totals {
	sy__counter v[SY_T_COUNT];
} __attribute__((aligned(64)));

static inline void sy__total_add(struct sy__totals *t, enum sy__total i,
				 uint64_t n)
{
	sy__counter_add(&t->v[i], n);
}

/** Add the totals @p t into @p out. Any thread. */
void sy__totals_add_to(const struct sy__totals *t, struct sy_stats *out);

#endif /* SY_METRICS_COUNTER_H */
