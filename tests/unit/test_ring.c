/*
 * Unit tests of queues/ring.h: the SPSC ring wrappers over Concurrency Kit.
 *
 * What a caller of the wrappers relies on: a ring of size n holds n - 1
 * entries and then refuses, entries come out in the order they went in,
 * sy__ring_count() is exact for the producer and the consumer, and
 * sy__ring_produced()/sy__ring_passed() tell a third thread when everything
 * published up to a mark has been taken, across the wrap of the 32-bit
 * counters too; sy__ring_dequeue_burst_spsc() takes up to its limit, in
 * order; sy__ring_entries() gives a batch in place, cut at the end of the
 * buffer; a sample's mark is pending for the batches up to the one that
 * takes it. The last tests move a million sequence numbers between two
 * threads, one entry or one burst at a time. Every wait is bounded.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "queues/ring.h"

/* Failed attempts in a row before a thread of the SPSC test gives up. */
#define SPIN_BOUND 20000000u
#define SPSC_COUNT 1000000u

struct test_ring {
	struct sy__ring r;
	void *buf;
	unsigned size;
};

static void ring_open(struct test_ring *t, unsigned size)
{
	t->buf = calloc(1, sy__ring_buffer_bytes(size));
	cr_assert_not_null(t->buf);
	t->size = size;
	sy__ring_init(&t->r, t->buf, size, 0);
}

static void ring_close(struct test_ring *t)
{
	free(t->buf);
	t->buf = NULL;
}

/* Sequence numbers travel as pointers; +1 keeps them away from NULL. */
static void *seq_ptr(uintptr_t seq)
{
	return (void *)(seq + 1);
}

static uintptr_t ptr_seq(void *p)
{
	return (uintptr_t)p - 1;
}

/* Start both counters at @p at, as if that many entries had passed. */
static void ring_rewind_to(struct test_ring *t, unsigned at)
{
	sy__ring_init(&t->r, t->buf, t->size, at);
}

Test(queues_ring, holds_size_minus_one_entries_then_refuses)
{
	static const unsigned sizes[] = { 2, 16, 64, 1024, 4096 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct test_ring t;
		void *out;

		ring_open(&t, sizes[k]);
		for (unsigned i = 0; i < t.size - 1; i++)
			cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)),
				  "size %u: entry %u refused", t.size, i);
		cr_assert_not(sy__ring_enqueue_spsc(&t.r, seq_ptr(t.size)),
			      "size %u: accepted an n-th entry", t.size);
		cr_assert_eq(sy__ring_count(&t.r), t.size - 1);

		/* One slot freed: exactly one more fits. */
		cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(t.size)));
		cr_assert_not(sy__ring_enqueue_spsc(&t.r, seq_ptr(t.size + 1)));
		ring_close(&t);
	}
}

Test(queues_ring, empty_ring_dequeues_nothing)
{
	struct test_ring t;
	void *out = seq_ptr(7);

	ring_open(&t, 16);
	cr_assert_not(sy__ring_dequeue_spsc(&t.r, &out));
	cr_assert_eq(ptr_seq(out), 7, "a failed dequeue wrote its output");
	cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(1)));
	cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
	cr_assert_not(sy__ring_dequeue_spsc(&t.r, &out));
	ring_close(&t);
}

Test(queues_ring, entries_come_out_in_fifo_order_across_wraps)
{
	struct test_ring t;
	uintptr_t next_in = 0, next_out = 0;
	void *out;

	ring_open(&t, 16);
	/* Uneven fill and drain sizes move the indices through many wraps. */
	for (unsigned round = 0; round < 200; round++) {
		unsigned fill = 1 + round % 15, drain = 1 + (round * 7) % 15;

		for (unsigned i = 0; i < fill; i++)
			if (sy__ring_enqueue_spsc(&t.r, seq_ptr(next_in)))
				next_in++;
		for (unsigned i = 0; i < drain && sy__ring_dequeue_spsc(&t.r, &out); i++) {
			cr_assert_eq(ptr_seq(out), next_out,
				     "round %u: got %lu, want %lu", round,
				     (unsigned long)ptr_seq(out),
				     (unsigned long)next_out);
			next_out++;
		}
	}
	while (sy__ring_dequeue_spsc(&t.r, &out))
		cr_assert_eq(ptr_seq(out), next_out++);
	cr_assert_eq(next_out, next_in);
	cr_assert_gt(next_in, 16u * 10, "the test did not wrap the ring");
	ring_close(&t);
}

Test(queues_ring, count_follows_enqueues_and_dequeues)
{
	struct test_ring t;
	void *out;

	ring_open(&t, 64);
	cr_assert_eq(sy__ring_count(&t.r), 0);
	for (unsigned i = 0; i < 40; i++) {
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
		cr_assert_eq(sy__ring_count(&t.r), i + 1);
	}
	for (unsigned i = 40; i-- > 0;) {
		cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
		cr_assert_eq(sy__ring_count(&t.r), i);
	}
	/* A refused enqueue leaves the count alone. */
	for (unsigned i = 0; i < 63; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	cr_assert_not(sy__ring_enqueue_spsc(&t.r, seq_ptr(63)));
	cr_assert_eq(sy__ring_count(&t.r), 63);
	ring_close(&t);
}

Test(queues_ring, count_is_exact_when_the_counters_wrap)
{
	struct test_ring t;
	void *out;

	ring_open(&t, 16);
	ring_rewind_to(&t, UINT_MAX - 4);
	cr_assert_eq(sy__ring_count(&t.r), 0);
	for (unsigned i = 0; i < 12; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	cr_assert_eq(sy__ring_count(&t.r), 12);
	for (unsigned i = 0; i < 12; i++) {
		cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
		cr_assert_eq(ptr_seq(out), i);
	}
	cr_assert_eq(sy__ring_count(&t.r), 0);
	ring_close(&t);
}

/* An idle worker's spin and its passes look at sy__ring_waiting() alone:
 * it must see every entry, a full ring's and one across the wrap included. */
Test(queues_ring, waiting_says_whether_an_entry_is_there)
{
	static const unsigned starts[] = { 0, UINT_MAX - 4 };
	struct test_ring t;
	void *out;

	for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
		ring_open(&t, 16);
		ring_rewind_to(&t, starts[s]);
		cr_assert_not(sy__ring_waiting(&t.r), "start %u", starts[s]);
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(0)));
		cr_assert(sy__ring_waiting(&t.r));
		for (unsigned i = 1; i < t.size - 1; i++)
			cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
		cr_assert(sy__ring_waiting(&t.r), "a full ring, start %u", starts[s]);
		for (unsigned i = 0; i < t.size - 1; i++) {
			cr_assert(sy__ring_waiting(&t.r), "%u taken", i);
			cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
		}
		cr_assert_not(sy__ring_waiting(&t.r), "drained, start %u",
			      starts[s]);
		ring_close(&t);
	}
}

Test(queues_ring, produced_counts_accepted_enqueues_only)
{
	struct test_ring t;
	unsigned start;
	void *out;

	ring_open(&t, 16);
	start = sy__ring_produced(&t.r);
	cr_assert_eq(start, 0);
	for (unsigned i = 0; i < 15; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	cr_assert_eq(sy__ring_produced(&t.r) - start, 15);
	cr_assert_not(sy__ring_enqueue_spsc(&t.r, seq_ptr(15)));
	cr_assert_eq(sy__ring_produced(&t.r) - start, 15,
		     "a refused enqueue was counted as produced");
	/* Dequeues do not move the producer's counter. */
	while (sy__ring_dequeue_spsc(&t.r, &out))
		;
	cr_assert_eq(sy__ring_produced(&t.r) - start, 15);
	ring_close(&t);
}

Test(queues_ring, passed_turns_true_once_the_consumer_takes_the_mark)
{
	struct test_ring t;
	unsigned before, mark;
	void *out;

	ring_open(&t, 16);
	before = sy__ring_produced(&t.r);
	cr_assert(sy__ring_passed(&t.r, before),
		  "nothing published yet, so nothing is pending");
	for (unsigned i = 0; i < 5; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	mark = sy__ring_produced(&t.r);
	cr_assert(sy__ring_passed(&t.r, before));
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_not(sy__ring_passed(&t.r, mark),
			      "passed with %u of 5 entries taken", i);
		cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
	}
	cr_assert(sy__ring_passed(&t.r, mark));

	/* Entries published after the mark do not hold it back. */
	for (unsigned i = 0; i < 3; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	cr_assert(sy__ring_passed(&t.r, mark));
	cr_assert_not(sy__ring_passed(&t.r, sy__ring_produced(&t.r)));
	ring_close(&t);
}

Test(queues_ring, passed_and_produced_work_across_the_counter_wrap)
{
	struct test_ring t;
	unsigned mark;
	void *out;

	ring_open(&t, 16);
	ring_rewind_to(&t, UINT_MAX - 2);
	for (unsigned i = 0; i < 8; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	mark = sy__ring_produced(&t.r);
	cr_assert_eq(mark, 5u, "produced should wrap: got %u", mark);
	for (unsigned i = 0; i < 8; i++) {
		cr_assert_not(sy__ring_passed(&t.r, mark),
			      "passed with %u of 8 entries taken", i);
		cr_assert(sy__ring_dequeue_spsc(&t.r, &out));
		cr_assert_eq(ptr_seq(out), i);
	}
	cr_assert(sy__ring_passed(&t.r, mark));
	cr_assert(sy__ring_passed(&t.r, UINT_MAX - 2),
		  "a mark from before the wrap is passed too");
	ring_close(&t);
}

Test(queues_ring, dequeue_burst_takes_up_to_max_in_order)
{
	struct test_ring t;
	void *out[32];
	uintptr_t next = 0;
	unsigned n;

	ring_open(&t, 64);
	for (unsigned i = 0; i < 50; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	n = sy__ring_dequeue_burst_spsc(&t.r, out, 32);
	cr_assert_eq(n, 32);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(ptr_seq(out[i]), next++);
	cr_assert_eq(sy__ring_count(&t.r), 18);
	n = sy__ring_dequeue_burst_spsc(&t.r, out, 1);
	cr_assert_eq(n, 1);
	cr_assert_eq(ptr_seq(out[0]), next++);
	/* Fewer entries than asked for: it takes what there is. */
	n = sy__ring_dequeue_burst_spsc(&t.r, out, 32);
	cr_assert_eq(n, 17);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(ptr_seq(out[i]), next++);
	cr_assert_eq(sy__ring_count(&t.r), 0);
	ring_close(&t);
}

Test(queues_ring, dequeue_burst_of_an_empty_ring_takes_nothing)
{
	struct test_ring t;
	void *out[4] = { seq_ptr(9), seq_ptr(9), seq_ptr(9), seq_ptr(9) };

	ring_open(&t, 16);
	cr_assert_eq(sy__ring_dequeue_burst_spsc(&t.r, out, 4), 0);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(ptr_seq(out[i]), 9, "an empty burst wrote slot %u", i);
	cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(1)));
	cr_assert_eq(sy__ring_dequeue_burst_spsc(&t.r, out, 0), 0,
		     "a burst of at most 0 took an entry");
	cr_assert_eq(sy__ring_count(&t.r), 1);
	ring_close(&t);
}

Test(queues_ring, dequeue_burst_frees_slots_and_moves_passed)
{
	struct test_ring t;
	void *out[16];
	unsigned mark;

	ring_open(&t, 16);
	for (unsigned i = 0; i < 15; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	mark = sy__ring_produced(&t.r);
	cr_assert_eq(sy__ring_dequeue_burst_spsc(&t.r, out, 10), 10);
	cr_assert_not(sy__ring_passed(&t.r, mark));
	/* The 10 slots it took are free for the producer again. */
	for (unsigned i = 15; i < 25; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)), "slot %u not freed", i);
	cr_assert_not(sy__ring_enqueue_spsc(&t.r, seq_ptr(25)));
	cr_assert_eq(sy__ring_dequeue_burst_spsc(&t.r, out, 16), 15);
	cr_assert(sy__ring_passed(&t.r, mark));
	for (unsigned i = 0; i < 15; i++)
		cr_assert_eq(ptr_seq(out[i]), 10 + i);
	ring_close(&t);
}

Test(queues_ring, dequeue_burst_works_across_the_counter_wrap)
{
	struct test_ring t;
	void *out[16];
	uintptr_t next = 0;

	ring_open(&t, 16);
	ring_rewind_to(&t, UINT_MAX - 6);
	for (unsigned round = 0; round < 4; round++) {
		unsigned n;

		for (unsigned i = 0; i < 11; i++)
			cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(round * 11 + i)));
		n = sy__ring_dequeue_burst_spsc(&t.r, out, 16);
		cr_assert_eq(n, 11, "round %u took %u", round, n);
		for (unsigned i = 0; i < n; i++)
			cr_assert_eq(ptr_seq(out[i]), next++);
		cr_assert_eq(sy__ring_count(&t.r), 0);
	}
	ring_close(&t);
}

/* A batch read in place: the entries up to the end of the buffer, then
 * the rest from its start, in order. */
Test(queues_ring, entries_in_place_stop_at_the_end_of_the_buffer)
{
	struct test_ring t;
	unsigned c, n, k, rest;
	void *const *at;

	ring_open(&t, 16);
	ring_rewind_to(&t, 10);
	for (unsigned i = 0; i < 12; i++)
		cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
	n = sy__ring_peek_spsc(&t.r, 32, &c);
	cr_assert_eq(n, 12);
	k = n;
	at = sy__ring_entries(&t.r, c, &k);
	cr_assert_eq(k, 6, "six slots to the end of the buffer, got %u", k);
	for (unsigned i = 0; i < k; i++)
		cr_assert_eq(ptr_seq(at[i]), i);
	rest = n - k;
	at = sy__ring_entries(&t.r, c + k, &rest);
	cr_assert_eq(rest, 6);
	cr_assert_eq((const void *)at, t.buf, "the rest starts the buffer");
	for (unsigned i = 0; i < rest; i++)
		cr_assert_eq(ptr_seq(at[i]), k + i);
	sy__ring_taken_spsc(&t.r, c, n);
	cr_assert_eq(sy__ring_count(&t.r), 0);
	ring_close(&t);
}

/* A sample's mark holds for every batch up to the one that takes it, and
 * not after; across the counter wrap too. */
Test(queues_ring, a_marked_sample_is_pending_until_its_batch_is_taken)
{
	static const unsigned starts[] = { 0, UINT_MAX - 2 };

	for (unsigned s = 0; s < 2; s++) {
		struct test_ring t = { .size = 16 };
		unsigned c, n;

		t.buf = calloc(1, sy__ring_buffer_bytes(16));
		cr_assert_not_null(t.buf);
		sy__ring_init(&t.r, t.buf, 16, starts[s]);
		cr_assert_not(sy__ring_sample_pending(&t.r, starts[s]),
			      "start %u: a new ring has no sample", starts[s]);
		for (unsigned i = 0; i < 6; i++) {
			if (i == 3)
				sy__ring_mark_sample(&t.r);
			cr_assert(sy__ring_enqueue_spsc(&t.r, seq_ptr(i)));
		}
		/* Batches of two: the first two may hold it, the third not. */
		for (unsigned b = 0; b < 3; b++) {
			n = sy__ring_peek_spsc(&t.r, 2, &c);
			cr_assert_eq(n, 2);
			cr_assert_eq(sy__ring_sample_pending(&t.r, c), b < 2,
				     "start %u, batch %u", starts[s], b);
			sy__ring_taken_spsc(&t.r, c, n);
		}
		ring_close(&t);
	}
}

struct spsc_run {
	struct sy__ring *r;
	_Atomic bool give_up;
	uintptr_t sent;
	uintptr_t received;
	uintptr_t first_bad;      /* first out-of-order value, UINTPTR_MAX if none */
	uintptr_t first_bad_at;
};

static void *spsc_producer(void *arg)
{
	struct spsc_run *run = arg;
	unsigned misses = 0;

	while (run->sent < SPSC_COUNT) {
		if (sy__ring_enqueue_spsc(run->r, seq_ptr(run->sent))) {
			run->sent++;
			misses = 0;
			continue;
		}
		if (++misses > SPIN_BOUND ||
		    atomic_load_explicit(&run->give_up, memory_order_relaxed)) {
			atomic_store(&run->give_up, true);
			break;
		}
		sched_yield();
	}
	return NULL;
}

/* Check one received entry against the sequence. */
static void spsc_take(struct spsc_run *run, void *e)
{
	if (ptr_seq(e) != run->received && run->first_bad == UINTPTR_MAX) {
		run->first_bad = ptr_seq(e);
		run->first_bad_at = run->received;
	}
	run->received++;
}

static void *spsc_consumer(void *arg)
{
	struct spsc_run *run = arg;
	unsigned misses = 0;
	void *out;

	while (run->received < SPSC_COUNT) {
		if (sy__ring_dequeue_spsc(run->r, &out)) {
			spsc_take(run, out);
			misses = 0;
			continue;
		}
		if (++misses > SPIN_BOUND ||
		    atomic_load_explicit(&run->give_up, memory_order_relaxed)) {
			atomic_store(&run->give_up, true);
			break;
		}
		sched_yield();
	}
	return NULL;
}

static void *spsc_burst_consumer(void *arg)
{
	struct spsc_run *run = arg;
	unsigned misses = 0;
	void *out[32];

	while (run->received < SPSC_COUNT) {
		unsigned n = sy__ring_dequeue_burst_spsc(run->r, out, 32);

		for (unsigned i = 0; i < n; i++)
			spsc_take(run, out[i]);
		if (n) {
			misses = 0;
			continue;
		}
		if (++misses > SPIN_BOUND ||
		    atomic_load_explicit(&run->give_up, memory_order_relaxed)) {
			atomic_store(&run->give_up, true);
			break;
		}
		sched_yield();
	}
	return NULL;
}

static void spsc_transfer(void *(*consumer)(void *))
{
	struct test_ring t;
	struct spsc_run run = {
		.first_bad = UINTPTR_MAX,
	};
	pthread_t prod, cons;
	int rc;

	ring_open(&t, 1024);
	run.r = &t.r;
	atomic_init(&run.give_up, false);
	cr_assert_eq(pthread_create(&cons, NULL, consumer, &run), 0);
	rc = pthread_create(&prod, NULL, spsc_producer, &run);
	if (rc == 0)
		pthread_join(prod, NULL);
	else
		atomic_store(&run.give_up, true);
	pthread_join(cons, NULL);
	cr_assert_eq(rc, 0, "cannot start the producer");

	cr_assert_not(atomic_load(&run.give_up),
		      "a side gave up: sent %lu, received %lu",
		      (unsigned long)run.sent, (unsigned long)run.received);
	cr_assert_eq(run.sent, SPSC_COUNT);
	cr_assert_eq(run.received, SPSC_COUNT);
	cr_assert_eq(run.first_bad, UINTPTR_MAX,
		     "entry %lu arrived as %lu", (unsigned long)run.first_bad_at,
		     (unsigned long)run.first_bad);
	cr_assert_eq(sy__ring_count(&t.r), 0);
	cr_assert(sy__ring_passed(&t.r, sy__ring_produced(&t.r)));
	ring_close(&t);
}

Test(queues_ring, two_threads_move_a_million_entries_complete_and_in_order)
{
	spsc_transfer(spsc_consumer);
}

Test(queues_ring, burst_consumer_gets_a_million_entries_complete_and_in_order)
{
	spsc_transfer(spsc_burst_consumer);
}
