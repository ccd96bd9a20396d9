/*
 * batch_ring: a single-producer single-consumer ring of pointers built to
 * show how fast a pointer can move from one core to another: the
 * "batched-limit" baseline of sy-bench.
 *
 * Where ck_ring reads the other side's index and writes its own on every
 * operation (two cache-line transfers per entry), each side here keeps a
 * private copy of the other side's index and reloads it only when that copy
 * says the ring is full (producer) or empty (consumer). The producer
 * publishes its tail every BATCH_RING_PUBLISH entries, and before it reports
 * a full ring; the consumer takes everything available at once and then
 * publishes its head. The shared lines thus move once per batch.
 *
 * Invariants: head and tail count entries since the start and wrap as
 * unsigned; tail - head <= BATCH_RING_SIZE; entry i lives in slot
 * i % BATCH_RING_SIZE while head <= i < tail.
 *
 * Ordering:
 *  R1 (producer publishes tail, release) pairs with A1 (consumer loads tail,
 *     acquire): the consumer reads a slot only after its entry was written.
 *  R2 (consumer publishes head, release) pairs with A2 (producer loads head,
 *     acquire): the producer overwrites a slot only after it was read.
 *
 * Progress: both sides are wait-free; a full or empty ring is reported, the
 * caller decides how to wait. Entries reach the consumer only once
 * published: a producer that stops must call batch_ring_flush_sp().
 */
#ifndef SY_PERF_BATCH_RING_H
#define SY_PERF_BATCH_RING_H

#include <stdatomic.h>
#include <stdbool.h>

#include "bench.h"

#define BATCH_RING_SIZE 1024u
#define BATCH_RING_PUBLISH 32u

_Static_assert((BATCH_RING_SIZE & (BATCH_RING_SIZE - 1)) == 0,
	       "BATCH_RING_SIZE must be a power of two");
_Static_assert(BATCH_RING_SIZE % BATCH_RING_PUBLISH == 0,
	       "the producer publishes at multiples of BATCH_RING_PUBLISH");

struct batch_ring {
	/* Written by the producer, read by the consumer. */
	_Alignas(BENCH_CACHELINE) atomic_uint tail;
	/* Written by the consumer, read by the producer. */
	_Alignas(BENCH_CACHELINE) atomic_uint head;
	/* The producer's own line. */
	_Alignas(BENCH_CACHELINE) unsigned prod_tail;
	unsigned prod_head_cache;
	/* The consumer's own line. */
	_Alignas(BENCH_CACHELINE) unsigned cons_head;
	unsigned cons_tail_cache;
	_Alignas(BENCH_CACHELINE) void *slot[BATCH_RING_SIZE];
};

static inline void batch_ring_init(struct batch_ring *r)
{
	atomic_init(&r->tail, 0);
	atomic_init(&r->head, 0);
	r->prod_tail = 0;
	r->prod_head_cache = 0;
	r->cons_head = 0;
	r->cons_tail_cache = 0;
}

/** Make every enqueued entry visible to the consumer. Producer only. */
static inline void batch_ring_flush_sp(struct batch_ring *r)
{
	/* R1: pairs with A1 in batch_ring_dequeue_burst_sc(). */
	atomic_store_explicit(&r->tail, r->prod_tail, memory_order_release);
}

/**
 * Enqueue @p entry. Producer only.
 * @return false if the ring is full (everything enqueued is then published).
 */
static inline bool batch_ring_enqueue_sp(struct batch_ring *r, void *entry)
{
	if (r->prod_tail - r->prod_head_cache == BATCH_RING_SIZE) {
		/* A2: pairs with R2 in batch_ring_dequeue_burst_sc(). */
		r->prod_head_cache = atomic_load_explicit(&r->head,
							  memory_order_acquire);
		if (r->prod_tail - r->prod_head_cache == BATCH_RING_SIZE) {
			batch_ring_flush_sp(r);
			return false;
		}
	}
	r->slot[r->prod_tail % BATCH_RING_SIZE] = entry;
	r->prod_tail++;
	if (r->prod_tail % BATCH_RING_PUBLISH == 0)
		batch_ring_flush_sp(r);
	return true;
}

/**
 * Take every published entry, at most @p max, into @p out. Consumer only.
 * @return the number taken.
 */
static inline unsigned batch_ring_dequeue_burst_sc(struct batch_ring *r,
						   void **out, unsigned max)
{
	unsigned n;

	if (r->cons_head == r->cons_tail_cache) {
		/* A1: pairs with R1 in batch_ring_flush_sp(). */
		r->cons_tail_cache = atomic_load_explicit(&r->tail,
							  memory_order_acquire);
	}
	n = r->cons_tail_cache - r->cons_head;
	if (n > max)
		n = max;
	for (unsigned i = 0; i < n; i++)
		out[i] = r->slot[(r->cons_head + i) % BATCH_RING_SIZE];
	if (n) {
		r->cons_head += n;
		/* R2: pairs with A2 in batch_ring_enqueue_sp(). */
		atomic_store_explicit(&r->head, r->cons_head,
				      memory_order_release);
	}
	return n;
}

#endif /* SY_PERF_BATCH_RING_H */
