/*
 * Single-producer single-consumer rings of pointers, on Concurrency Kit.
 *
 * Invariants: one thread at a time enqueues (the producer) and one thread
 * dequeues (the consumer); a ring of size n holds n - 1 entries. Both sides
 * are wait-free. An entry becomes visible to the consumer after everything
 * the producer wrote before enqueueing it (ck_ring fences the slot store
 * before the p_tail store, and the consumer loads p_tail before the slot).
 *
 * The producer keeps a private copy of the consumer's counter and reloads
 * it only when the ring looks full, so an enqueue does not touch the
 * consumer's cache line. It keeps its own counter on that private line too
 * and only stores ck_ring's p_tail: a line the consumer has read since the
 * producer wrote it is not in the producer's cache any more, and an
 * enqueue that loaded p_tail would wait for it. The consumer takes entries
 * in bursts, with one load of the producer's counter and one store of its
 * own per burst. Both sides use ck_ring's layout and fences, so the ring
 * stays a ck_ring.
 *
 * The produced/consumed counters let a control thread wait until everything
 * enqueued before a point has been taken (see sy__ring_passed()).
 *
 * ThreadSanitizer does not model the fences; under it the hand-offs carry
 * explicit annotations: P1 (release, before the producer publishes p_tail)
 * pairs with C1 (acquire, after the consumer loads it), and C2 (release,
 * before the consumer hands slots back through c_head) pairs with P2
 * (acquire, after the producer reloads it).
 */
#ifndef SY_QUEUES_RING_H
#define SY_QUEUES_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <ck_ring.h>

#include "queues/park.h"
#include "queues/tsan.h"

struct sy__ring {
	struct ck_ring ring;
	void **buf;               /* the slots: one pointer each */
	/* The producer's line, which the consumer never reads: its copy of
	 * ring.c_head, its own of ring.p_tail, and the consumer's parker,
	 * looked at after a publish (a consumer that never parks leaves its
	 * word 0). */
	unsigned c_cache __attribute__((aligned(64)));
	unsigned p_next;
	struct sy__parker *wake;
	/* The index of the latest entry marked a sample
	 * (sy__ring_mark_sample()), on a line of its own: the consumer reads
	 * it at each take, alongside the slots rather than before them, and
	 * the producer writes it for a sample only. */
	unsigned sampled __attribute__((aligned(64)));
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct sy__ring, c_cache) / 64 !=
	       offsetof(struct sy__ring, buf) / 64 &&
	       offsetof(struct sy__ring, c_cache) / 64 !=
	       offsetof(struct sy__ring, ring.p_tail) / 64 &&
	       offsetof(struct sy__ring, sampled) / 64 !=
	       offsetof(struct sy__ring, c_cache) / 64,
	       "the producer's private line holds nothing the consumer reads");

/** Bytes of buffer a ring of @p size entries needs. */
static inline size_t sy__ring_buffer_bytes(unsigned size)
{
	return (size_t)size * sizeof(void *);
}

/**
 * Set up @p r over @p buf (sy__ring_buffer_bytes(size) bytes, size a power
 * of two), empty, with both counters at @p start (0, or near the wrap to
 * test it: every use of them is modular).
 */
static inline void sy__ring_init(struct sy__ring *r, void *buf, unsigned size,
				 unsigned start)
{
	ck_ring_init(&r->ring, size);
	r->ring.c_head = start;
	r->ring.p_tail = start;
	r->ring.p_head = start;
	r->buf = buf;
	r->c_cache = start;
	r->p_next = start;
	r->sampled = start - 1; /* behind the consumer: no sample */
	r->wake = NULL;
}

/** Producer only, after publishing: wake the consumer if it sleeps, with
 * @p asymmetric the barriers' mode as the caller read it (barrier.h). The
 * ring's parker must be set. @return 0 (sy__wake_rc()). */
static inline int sy__ring_wake_as(struct sy__ring *r, bool asymmetric)
{
	return sy__wake_rc_as(r->wake, asymmetric);
}

static inline int sy__ring_wake(struct sy__ring *r)
{
	return sy__ring_wake_as(r, sy__barrier_asymmetric);
}

/**
 * Producer only: is there room for an entry by the producer's copy of the
 * consumer's counter? (false: there may be room all the same.) No shared
 * load.
 */
static inline bool sy__ring_room_cached_spsc(const struct sy__ring *r)
{
	/* A ring of size n holds n - 1 entries: mask of them. */
	return r->p_next - r->c_cache < r->ring.mask;
}

/** Producer only, after sy__ring_room_cached_spsc() said there is room. */
static inline void sy__ring_put_spsc(struct sy__ring *r, void *p)
{
	struct ck_ring *ring = &r->ring;
	unsigned prod = r->p_next;

	r->buf[prod & ring->mask] = p;
	SY_YIELD_POINT();
	/* The slot is written before the entry is published. */
	ck_pr_fence_store();
	SY_TSAN_RELEASE(&ring->p_tail); /* P1 */
	ck_pr_store_uint(&ring->p_tail, prod + 1);
	r->p_next = prod + 1;
}

/** Producer only. @return false when full. */
static inline bool sy__ring_enqueue_spsc(struct sy__ring *r, void *p)
{
	if (__builtin_expect(!sy__ring_room_cached_spsc(r), 0)) {
		r->c_cache = ck_pr_load_uint(&r->ring.c_head);
		SY_TSAN_ACQUIRE(&r->ring.c_head); /* P2 */
		if (!sy__ring_room_cached_spsc(r))
			return false;
	}
	sy__ring_put_spsc(r, p);
	return true;
}

/**
 * Consumer only: how many entries are published and not yet taken, at most
 * @p max, from index *first on (read them with sy__ring_copy() or
 * sy__ring_entries(), then hand their slots back with
 * sy__ring_taken_spsc()). One load of the producer's
 * counter for all of them.
 */
static inline unsigned sy__ring_peek_spsc(struct sy__ring *r, unsigned max,
					  unsigned *first)
{
	struct ck_ring *ring = &r->ring;
	unsigned c = ring->c_head;
	unsigned n = ck_pr_load_uint(&ring->p_tail) - c;

	if (n == 0)
		return 0;
	if (n > max)
		n = max;
	SY_YIELD_POINT();
	/* Read the slots after the p_tail snapshot that published them. */
	ck_pr_fence_load();
	SY_TSAN_ACQUIRE(&ring->p_tail); /* C1 */
	*first = c;
	return n;
}

/**
 * Consumer only: the entries from index @p first on, in place, as an array
 * of *@p n (cut to the end of the buffer where they wrap: the rest start at
 * index first + *n). They are read before sy__ring_taken_spsc() hands
 * their slots back.
 */
static inline void *const *sy__ring_entries(const struct sy__ring *r,
					    unsigned first, unsigned *n)
{
	unsigned at = first & r->ring.mask, to_end = r->ring.mask + 1 - at;

	if (*n > to_end)
		*n = to_end;
	return &r->buf[at];
}

/** Consumer only: copy the @p n entries from index @p first on (from
 * sy__ring_peek_spsc()) into @p out, whole: one copy up to the end of the
 * buffer, one for the rest from its start. */
static inline void sy__ring_copy(const struct sy__ring *r, void **out,
				 unsigned first, unsigned n)
{
	unsigned k = n, rest;
	void *const *at = sy__ring_entries(r, first, &k);

	memcpy(out, at, k * sizeof(*out));
	if (__builtin_expect(k < n, 0)) {
		rest = n - k;
		at = sy__ring_entries(r, first + k, &rest);
		memcpy(out + k, at, rest * sizeof(*out));
	}
}

/**
 * Producer only, before it publishes an entry that is a latency sample:
 * record the entry's index, so that the consumer reads the clock for the
 * batch that takes it (sy__ring_sample_pending()). Of several samples in
 * the ring only the latest is recorded, and a batch before it reads the
 * clock too: no sample's batch goes without.
 */
static inline void sy__ring_mark_sample(struct sy__ring *r)
{
	ck_pr_store_uint(&r->sampled, r->p_next);
}

/** Consumer only, after sy__ring_peek_spsc() gave @p first: may an entry
 * from @p first on be a sample? */
static inline bool sy__ring_sample_pending(const struct sy__ring *r,
					   unsigned first)
{
	return ck_pr_load_uint(&r->sampled) - first <= r->ring.mask;
}

/** Consumer only: the @p n entries from @p first on are read; their slots
 * are the producer's again. One store of the consumer's counter. */
static inline void sy__ring_taken_spsc(struct sy__ring *r, unsigned first,
				       unsigned n)
{
	/* Finish reading the slots before handing them back. */
	ck_pr_fence_load_store();
	SY_TSAN_RELEASE(&r->ring.c_head); /* C2 */
	ck_pr_store_uint(&r->ring.c_head, first + n);
}

/**
 * Consumer only: take up to @p max entries at once, with one load of the
 * producer's counter and one store of the consumer's, where
 * sy__ring_dequeue_spsc() pays both per entry. Same fences as ck_ring's
 * single dequeue. @return the number taken.
 */
static inline unsigned sy__ring_dequeue_burst_spsc(struct sy__ring *r,
						   void **out, unsigned max)
{
	unsigned c, n = sy__ring_peek_spsc(r, max, &c);

	if (n) {
		sy__ring_copy(r, out, c, n);
		sy__ring_taken_spsc(r, c, n);
	}
	return n;
}

/** Consumer only. @return false when empty. */
static inline bool sy__ring_dequeue_spsc(struct sy__ring *r, void **p)
{
	return sy__ring_dequeue_burst_spsc(r, p, 1) == 1;
}

/*
 * Does the ring hold *@p limit entries or more? The producer only. Reads the
 * consumer's index only when the cached one says it might.
 */
static inline bool sy__ring_over_at(struct sy__ring *r, const unsigned *limit)
{
	if (__builtin_expect(r->p_next - r->c_cache < *limit, 1))
		return false;
	r->c_cache = ck_pr_load_uint(&r->ring.c_head);
	SY_TSAN_ACQUIRE(&r->ring.c_head); /* P2 */
	return r->p_next - r->c_cache >= *limit;
}

/* sy__ring_over_at() of a limit held in hand. (_at reads it where it lies
 * each time it compares: a caller short of registers holds nothing for it.) */
static inline bool sy__ring_over(struct sy__ring *r, unsigned limit)
{
	return sy__ring_over_at(r, &limit);
}

/* Entries the ring can hold. */
static inline unsigned sy__ring_capacity(const struct sy__ring *r)
{
	return r->ring.mask;
}

/** Entries in the ring; exact for its producer or consumer, a hint otherwise. */
static inline unsigned sy__ring_count(const struct sy__ring *r)
{
	return ck_ring_size(&r->ring);
}

/** Consumer only: whether an entry is waiting (one load of the producer's
 * counter, one compare with the consumer's). */
static inline bool sy__ring_waiting(const struct sy__ring *r)
{
	return ck_pr_load_uint(&r->ring.p_tail) != r->ring.c_head;
}

/** Entries the producer has published so far (wraps). Any thread. */
static inline unsigned sy__ring_produced(const struct sy__ring *r)
{
	return ck_pr_load_uint(&r->ring.p_tail);
}

/** True once the consumer has taken every entry published up to @p mark. */
static inline bool sy__ring_passed(const struct sy__ring *r, unsigned mark)
{
	return (int)(ck_pr_load_uint(&r->ring.c_head) - mark) >= 0;
}

#endif /* SY_QUEUES_RING_H */
