/*
 * Raw baselines: ck_ring SPSC, the batched ring, a mutex queue, and a ck_ring
 * ping-pong. The message is the pointer value 1, 2, 3...: the consumer checks
 * each against the count it expects, which proves nothing was lost or
 * reordered and keeps the compiler from dropping the work.
 */
#include "baselines.h"

#include <ck_ring.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "batch_ring.h"
#include "pinned.h"

#define CK_RING_ENTRIES 1024u   /* holds 1023: ck_ring keeps one slot free */
#define MUTEX_QUEUE_ENTRIES 1024u

/* One run between a producer and a consumer thread. */
struct pair_run {
	uint64_t n;
	unsigned spin_limit;
	void *queue;
	uint64_t *samples;   /* ping-pong only */
	uint64_t t_start;    /* written by the producer before its first send */
	uint64_t t_end;      /* written by whoever sees the last message */
};

static void *msg_of(uint64_t i)
{
	return (void *)(uintptr_t)i;
}

static int run_pair(const struct bench_ctx *ctx, struct pair_run *run,
		    int (*produce)(void *), int (*consume)(void *),
		    double *secs)
{
	struct pinned_thread threads[2] = {
		{ .cpu = ctx->producer_cpu, .fn = produce, .arg = run },
		{ .cpu = ctx->consumer_cpu, .fn = consume, .arg = run },
	};
	int rc;

	rc = pinned_run(threads, 2, ctx->spin_limit);
	if (rc < 0)
		return rc;
	*secs = (double)(run->t_end - run->t_start) / 1e9;
	return 0;
}

/* ------------------------------------------------------------------ */
/* ck_ring SPSC                                                       */
/* ------------------------------------------------------------------ */

struct ck_spsc {
	_Alignas(BENCH_CACHELINE) struct ck_ring ring;
	_Alignas(BENCH_CACHELINE) struct ck_ring_buffer buf[CK_RING_ENTRIES];
};

/* An array of @p count empty rings, or NULL. */
static struct ck_spsc *ck_spsc_new(unsigned count)
{
	struct ck_spsc *q = aligned_alloc(BENCH_CACHELINE, count * sizeof(*q));

	for (unsigned i = 0; q && i < count; i++)
		ck_ring_init(&q[i].ring, CK_RING_ENTRIES);
	return q;
}

static int ck_put(struct ck_spsc *q, void *entry, struct backoff *b)
{
	int rc;

	while (!ck_ring_enqueue_spsc(&q->ring, q->buf, entry)) {
		rc = backoff_wait(b);
		if (rc < 0)
			return rc;
	}
	backoff_reset(b);
	return 0;
}

static int ck_get(struct ck_spsc *q, void **entry, struct backoff *b)
{
	int rc;

	while (!ck_ring_dequeue_spsc(&q->ring, q->buf, entry)) {
		rc = backoff_wait(b);
		if (rc < 0)
			return rc;
	}
	backoff_reset(b);
	return 0;
}

static int ck_spsc_produce(void *arg)
{
	struct pair_run *run = arg;
	struct backoff b;
	int rc;

	backoff_init(&b, run->spin_limit);
	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		rc = ck_put(run->queue, msg_of(i), &b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int ck_spsc_consume(void *arg)
{
	struct pair_run *run = arg;
	struct backoff b;
	void *entry;
	int rc;

	backoff_init(&b, run->spin_limit);
	for (uint64_t i = 1; i <= run->n; i++) {
		rc = ck_get(run->queue, &entry, &b);
		if (rc < 0)
			return rc;
		if (entry != msg_of(i))
			return -EPROTO;
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_ck_spsc(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	struct pair_run run = { .n = n, .spin_limit = ctx->spin_limit };
	int rc;

	run.queue = ck_spsc_new(1);
	if (!run.queue)
		return -ENOMEM;
	rc = run_pair(ctx, &run, ck_spsc_produce, ck_spsc_consume, secs);
	free(run.queue);
	return rc;
}

/* ------------------------------------------------------------------ */
/* batched ring                                                       */
/* ------------------------------------------------------------------ */

static int batched_produce(void *arg)
{
	struct pair_run *run = arg;
	struct batch_ring *r = run->queue;
	struct backoff b;
	int rc;

	backoff_init(&b, run->spin_limit);
	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		while (!batch_ring_enqueue_sp(r, msg_of(i))) {
			rc = backoff_wait(&b);
			if (rc < 0)
				return rc;
		}
		backoff_reset(&b);
	}
	batch_ring_flush_sp(r);
	return 0;
}

static int batched_consume(void *arg)
{
	struct pair_run *run = arg;
	struct batch_ring *r = run->queue;
	void *burst[BATCH_RING_SIZE];
	struct backoff b;
	uint64_t seen = 0;
	unsigned got;
	int rc;

	backoff_init(&b, run->spin_limit);
	while (seen < run->n) {
		got = batch_ring_dequeue_burst_sc(r, burst, BATCH_RING_SIZE);
		if (!got) {
			rc = backoff_wait(&b);
			if (rc < 0)
				return rc;
			continue;
		}
		backoff_reset(&b);
		for (unsigned i = 0; i < got; i++) {
			if (burst[i] != msg_of(++seen))
				return -EPROTO;
		}
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_batched_limit(const struct bench_ctx *ctx, uint64_t n,
			   double *secs)
{
	struct pair_run run = { .n = n, .spin_limit = ctx->spin_limit };
	struct batch_ring *r;
	int rc;

	r = aligned_alloc(BENCH_CACHELINE, sizeof(*r));
	if (!r)
		return -ENOMEM;
	batch_ring_init(r);
	run.queue = r;
	rc = run_pair(ctx, &run, batched_produce, batched_consume, secs);
	free(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* mutex + condition variable queue                                   */
/* ------------------------------------------------------------------ */

/* The queue people write by hand: one lock round per item, both sides. */
struct mutex_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_full;
	pthread_cond_t not_empty;
	unsigned head;
	unsigned count;
	void *slot[MUTEX_QUEUE_ENTRIES];
};

static int mutex_queue_produce(void *arg)
{
	struct pair_run *run = arg;
	struct mutex_queue *q = run->queue;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		pthread_mutex_lock(&q->lock);
		while (q->count == MUTEX_QUEUE_ENTRIES)
			pthread_cond_wait(&q->not_full, &q->lock);
		q->slot[(q->head + q->count) % MUTEX_QUEUE_ENTRIES] = msg_of(i);
		q->count++;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

static int mutex_queue_consume(void *arg)
{
	struct pair_run *run = arg;
	struct mutex_queue *q = run->queue;
	void *entry;

	for (uint64_t i = 1; i <= run->n; i++) {
		pthread_mutex_lock(&q->lock);
		while (q->count == 0)
			pthread_cond_wait(&q->not_empty, &q->lock);
		entry = q->slot[q->head];
		q->head = (q->head + 1) % MUTEX_QUEUE_ENTRIES;
		q->count--;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->lock);
		if (entry != msg_of(i))
			return -EPROTO;
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_mutex_queue(const struct bench_ctx *ctx, uint64_t n,
			 double *secs)
{
	struct pair_run run = { .n = n, .spin_limit = ctx->spin_limit };
	struct mutex_queue *q;
	int rc;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	rc = -pthread_mutex_init(&q->lock, NULL);
	if (rc < 0)
		goto out_free;
	rc = -pthread_cond_init(&q->not_full, NULL);
	if (rc < 0)
		goto out_lock;
	rc = -pthread_cond_init(&q->not_empty, NULL);
	if (rc < 0)
		goto out_not_full;
	run.queue = q;
	rc = run_pair(ctx, &run, mutex_queue_produce, mutex_queue_consume,
		      secs);
	pthread_cond_destroy(&q->not_empty);
out_not_full:
	pthread_cond_destroy(&q->not_full);
out_lock:
	pthread_mutex_destroy(&q->lock);
out_free:
	free(q);
	return rc;
}

/* ------------------------------------------------------------------ */
/* ck_ring ping-pong                                                  */
/* ------------------------------------------------------------------ */

/* run->queue: two rings, requests then replies. */
static int pingpong_produce(void *arg)
{
	struct pair_run *run = arg;
	struct ck_spsc *ring = run->queue;
	struct backoff b;
	uint64_t t0;
	void *entry;
	int rc;

	backoff_init(&b, run->spin_limit);
	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		t0 = bench_now_ns();
		rc = ck_put(&ring[0], msg_of(i), &b);
		if (!rc)
			rc = ck_get(&ring[1], &entry, &b);
		if (rc < 0)
			return rc;
		run->samples[i - 1] = bench_now_ns() - t0;
		if (entry != msg_of(i))
			return -EPROTO;
	}
	run->t_end = bench_now_ns();
	return 0;
}

static int pingpong_echo(void *arg)
{
	struct pair_run *run = arg;
	struct ck_spsc *ring = run->queue;
	struct backoff b;
	void *entry;
	int rc;

	backoff_init(&b, run->spin_limit);
	for (uint64_t i = 1; i <= run->n; i++) {
		rc = ck_get(&ring[0], &entry, &b);
		if (!rc)
			rc = ck_put(&ring[1], entry, &b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int baseline_ck_pingpong(const struct bench_ctx *ctx, uint64_t n,
			 uint64_t *samples, double *secs)
{
	struct pair_run run = {
		.n = n, .spin_limit = ctx->spin_limit, .samples = samples,
	};
	int rc;

	run.queue = ck_spsc_new(2);
	if (!run.queue)
		return -ENOMEM;
	rc = run_pair(ctx, &run, pingpong_produce, pingpong_echo, secs);
	free(run.queue);
	return rc;
}
