/*
 * Raw baselines (docs/perf.md): a producer on ctx->producer_cpu sends 1, 2, 3... to a consumer
 * on ctx->consumer_cpu, which checks each: nothing lost or reordered. A run lasts from the
 * first send to the last receive.
 */
#include <ck_ring.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef SY_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#include "bench.h"

#define RING_ENTRIES 1024u   /* ck_ring holds 1023: it keeps one slot free */
#define BATCH_PUBLISH 32u

struct pair_run {
	uint64_t n;
	unsigned spin_limit;
	void *queue;
	uint64_t *samples;   /* ping-pong only */
	uint64_t t_start, t_end;
	size_t payload;      /* zmq-inproc: bytes per message, */
	size_t key_len;      /* of which the sequence number's */
	void *socket[2];     /* PUSH, PULL */
};

/* Run @p produce and @p consume on @p run->queue, then @p release it. */
static int run_pair(const struct bench_ctx *ctx, struct pair_run *run, int (*produce)(void *),
		    int (*consume)(void *), void (*release)(void *), double *secs)
{
	struct pinned_thread threads[2] = {
		{ .cpu = ctx->producer_cpu, .fn = produce, .arg = run },
		{ .cpu = ctx->consumer_cpu, .fn = consume, .arg = run },
	};
	int rc = run->queue ? 0 : -ENOMEM;

	run->spin_limit = bench_spin_limit(ctx, 2);
	if (!rc)
		rc = pinned_run(threads, 2, run->spin_limit);
	if (!rc)
		*secs = (double)(run->t_end - run->t_start) / 1e9;
	if (release)
		release(run->queue);
	return rc;
}

/* ck-spsc and ck-pingpong: ck_ring, one pointer at a time. */
struct ck_spsc {
	_Alignas(BENCH_CACHELINE) struct ck_ring ring;
	_Alignas(BENCH_CACHELINE) struct ck_ring_buffer buf[RING_ENTRIES];
};

static struct ck_spsc *ck_spsc_new(unsigned count)
{
	struct ck_spsc *q = aligned_alloc(BENCH_CACHELINE, count * sizeof(*q));

	for (unsigned i = 0; q && i < count; i++)
		ck_ring_init(&q[i].ring, RING_ENTRIES);
	return q;
}

/* Put *@p entry into @p q (@p put) or take one out into it; wait. */
static inline __attribute__((always_inline)) int
ck_move(struct ck_spsc *q, bool put, void **entry, struct backoff *b)
{
	while (!(put ? ck_ring_enqueue_spsc(&q->ring, q->buf, *entry)
		     : ck_ring_dequeue_spsc(&q->ring, q->buf, entry)))
		if (backoff_wait(b) < 0)
			return -ETIMEDOUT;
	backoff_reset(b);
	return 0;
}

/* ck-spsc's producer; ck-pingpong's (rings: requests, replies) times. */
static int ck_produce(void *arg)
{
	struct pair_run *run = arg;
	struct ck_spsc *ring = run->queue;
	uint64_t *samples = run->samples, t0 = 0;
	struct backoff b = { .limit = run->spin_limit };
	void *entry;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		if (samples)
			t0 = bench_now_ns();
		entry = (void *)(uintptr_t)i;
		if (ck_move(&ring[0], true, &entry, &b) < 0 ||
		    (samples && ck_move(&ring[1], false, &entry, &b) < 0))
			return -ETIMEDOUT;
		if (!samples)
			continue;
		samples[i - 1] = bench_now_ns() - t0;
		if (entry != (void *)(uintptr_t)i)
			return -EPROTO;
	}
	if (samples)
		run->t_end = bench_now_ns();
	return 0;
}

/* The consumer of ck-spsc, and the echo of ck-pingpong. */
static int ck_consume(void *arg)
{
	struct pair_run *run = arg;
	struct ck_spsc *ring = run->queue;
	const bool echo = run->samples != NULL;
	struct backoff b = { .limit = run->spin_limit };
	void *entry;

	for (uint64_t i = 1; i <= run->n; i++) {
		if (ck_move(&ring[0], false, &entry, &b) < 0 ||
		    (echo && ck_move(&ring[1], true, &entry, &b) < 0))
			return -ETIMEDOUT;
		if (!echo && entry != (void *)(uintptr_t)i)
			return -EPROTO;
	}
	if (!echo)
		run->t_end = bench_now_ns();
	return 0;
}

/* ck-spsc; with @p samples (a latency run), ck-pingpong. */
int baseline_ck(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples, double *secs)
{
	struct pair_run run = { .n = n, .queue = ck_spsc_new(samples ? 2 : 1), .samples = samples };

	return run_pair(ctx, &run, ck_produce, ck_consume, free, secs);
}

/*
 * batched-limit: each side caches the other's index and reloads it only when the ring looks
 * full (producer) or empty (consumer); the producer publishes its tail every BATCH_PUBLISH
 * entries and before it reports a full ring. Invariants: head and tail count entries and wrap
 * as unsigned; tail - head <= RING_ENTRIES; entry i lives in slot i % RING_ENTRIES while
 * head <= i < tail. Both sides are wait-free.
 */
_Static_assert((RING_ENTRIES & (RING_ENTRIES - 1)) == 0 && RING_ENTRIES % BATCH_PUBLISH == 0,
	       "a power of two, published at multiples of BATCH_PUBLISH");

struct batch_ring {
	_Alignas(BENCH_CACHELINE) atomic_uint tail; /* producer -> consumer */
	_Alignas(BENCH_CACHELINE) atomic_uint head; /* consumer -> producer */
	_Alignas(BENCH_CACHELINE) unsigned prod_tail; /* the producer's line */
	unsigned prod_head_cache;
	_Alignas(BENCH_CACHELINE) unsigned cons_head; /* the consumer's line */
	unsigned cons_tail_cache;
	_Alignas(BENCH_CACHELINE) void *slot[RING_ENTRIES];
};

static void batch_flush_sp(struct batch_ring *r)
{
	/* R1: pairs with A1 in batch_dequeue_sc(). */
	atomic_store_explicit(&r->tail, r->prod_tail, memory_order_release);
}

/* @return false if the ring is full (all enqueued is then published). */
static bool batch_enqueue_sp(struct batch_ring *r, void *entry)
{
	if (r->prod_tail - r->prod_head_cache == RING_ENTRIES) {
		/* A2: pairs with R2 in batch_dequeue_sc(). */
		r->prod_head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
		if (r->prod_tail - r->prod_head_cache == RING_ENTRIES) {
			batch_flush_sp(r);
			return false;
		}
	}
	r->slot[r->prod_tail % RING_ENTRIES] = entry;
	if (++r->prod_tail % BATCH_PUBLISH == 0)
		batch_flush_sp(r);
	return true;
}

/* Take every published entry into @p out. @return the number taken. */
static unsigned batch_dequeue_sc(struct batch_ring *r, void **out)
{
	unsigned n;

	if (r->cons_head == r->cons_tail_cache)
		/* A1: pairs with R1 in batch_flush_sp(). */
		r->cons_tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
	n = r->cons_tail_cache - r->cons_head;
	for (unsigned i = 0; i < n; i++)
		out[i] = r->slot[(r->cons_head + i) % RING_ENTRIES];
	r->cons_head += n;
	/* R2: pairs with A2 in batch_enqueue_sp(). */
	if (n)
		atomic_store_explicit(&r->head, r->cons_head, memory_order_release);
	return n;
}

static int batch_produce(void *arg)
{
	struct pair_run *run = arg;
	struct backoff b = { .limit = run->spin_limit };

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		while (!batch_enqueue_sp(run->queue, (void *)(uintptr_t)i))
			if (backoff_wait(&b) < 0)
				return -ETIMEDOUT;
		backoff_reset(&b);
	}
	batch_flush_sp(run->queue);
	return 0;
}

static int batch_consume(void *arg)
{
	struct pair_run *run = arg;
	void *burst[RING_ENTRIES];
	uint64_t seen = 0;
	struct backoff b = { .limit = run->spin_limit };
	unsigned got;

	while (seen < run->n) {
		got = batch_dequeue_sc(run->queue, burst);
		if (!got && backoff_wait(&b) < 0)
			return -ETIMEDOUT;
		if (got)
			backoff_reset(&b);
		for (unsigned i = 0; i < got; i++)
			if (burst[i] != (void *)(uintptr_t)++seen)
				return -EPROTO;
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_batched_limit(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			   double *secs)
{
	struct pair_run run = { .n = n, .queue = aligned_alloc(BENCH_CACHELINE,
							       sizeof(struct batch_ring)) };

	(void)samples;
	if (run.queue)
		memset(run.queue, 0, offsetof(struct batch_ring, slot));
	return run_pair(ctx, &run, batch_produce, batch_consume, free, secs);
}

/*
 * message-ring: batched-limit moving messages instead of bare numbers, the plainest way to
 * pass messages that both sides touch. A pool of RING_ENTRIES messages of MESSAGE_BYTES (the
 * engine's smallest class, header included) goes round: the producer writes each one's
 * sequence number and sends its address, the consumer reads and checks the number and hands
 * the message back through a second batched ring. The producer reuses them in the order
 * they came back (measured here: about 10% faster than the latest first). Each side flushes
 * its ring before it waits, so neither waits on entries the other has not been shown. The
 * pool is no larger than the return ring, so a hand back never finds it full.
 */
#define MESSAGE_BYTES 192u

struct message {
	_Alignas(BENCH_CACHELINE) uint64_t seq;
	char rest[MESSAGE_BYTES - sizeof(uint64_t)];
};

struct message_run {
	struct batch_ring to, back;
	struct message pool[RING_ENTRIES];
};

static int message_produce(void *arg)
{
	struct pair_run *run = arg;
	struct message_run *q = run->queue;
	struct backoff b = { .limit = run->spin_limit };
	void *back[RING_ENTRIES];
	unsigned fresh = 0, next = 0, have = 0;
	struct message *m;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		if (fresh < RING_ENTRIES) {
			m = &q->pool[fresh++];
		} else {
			/* The messages handed back, in the order they came. */
			if (next == have) {
				while (!(have = batch_dequeue_sc(&q->back, back))) {
					batch_flush_sp(&q->to);
					if (backoff_wait(&b) < 0)
						return -ETIMEDOUT;
				}
				backoff_reset(&b);
				next = 0;
			}
			m = back[next++];
		}
		m->seq = i;
		while (!batch_enqueue_sp(&q->to, m))
			if (backoff_wait(&b) < 0)
				return -ETIMEDOUT;
		backoff_reset(&b);
	}
	batch_flush_sp(&q->to);
	return 0;
}

static int message_consume(void *arg)
{
	struct pair_run *run = arg;
	struct message_run *q = run->queue;
	void *burst[RING_ENTRIES];
	struct backoff b = { .limit = run->spin_limit };
	uint64_t seen = 0;
	unsigned got;

	while (seen < run->n) {
		got = batch_dequeue_sc(&q->to, burst);
		if (!got) {
			if (backoff_wait(&b) < 0)
				return -ETIMEDOUT;
			continue;
		}
		backoff_reset(&b);
		for (unsigned i = 0; i < got; i++) {
			if (((struct message *)burst[i])->seq != ++seen)
				return -EPROTO;
			/* Never full: the pool is no larger than the ring. */
			if (!batch_enqueue_sp(&q->back, burst[i]))
				return -EPROTO;
		}
		batch_flush_sp(&q->back);
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_message_ring(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			   double *secs)
{
	struct message_run *q = aligned_alloc(BENCH_CACHELINE, sizeof(*q));
	struct pair_run run = { .n = n, .queue = q };

	(void)samples;
	if (q) {
		memset(&q->to, 0, offsetof(struct batch_ring, slot));
		memset(&q->back, 0, offsetof(struct batch_ring, slot));
	}
	return run_pair(ctx, &run, message_produce, message_consume, free, secs);
}

/* mutex-queue: the queue people write by hand, a lock round per item. */
struct mutex_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond[2];   /* [0]: not full, [1]: not empty */
	unsigned head, count;
	void *slot[RING_ENTRIES];
};

static int mutex_produce(void *arg)
{
	struct pair_run *run = arg;
	struct mutex_queue *q = run->queue;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		pthread_mutex_lock(&q->lock);
		while (q->count == RING_ENTRIES)
			pthread_cond_wait(&q->cond[0], &q->lock);
		q->slot[(q->head + q->count++) % RING_ENTRIES] = (void *)(uintptr_t)i;
		pthread_cond_signal(&q->cond[1]);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

static int mutex_consume(void *arg)
{
	struct pair_run *run = arg;
	struct mutex_queue *q = run->queue;
	void *entry;

	for (uint64_t i = 1; i <= run->n; i++) {
		pthread_mutex_lock(&q->lock);
		while (q->count == 0)
			pthread_cond_wait(&q->cond[1], &q->lock);
		entry = q->slot[q->head];
		q->head = (q->head + 1) % RING_ENTRIES;
		q->count--;
		pthread_cond_signal(&q->cond[0]);
		pthread_mutex_unlock(&q->lock);
		if (entry != (void *)(uintptr_t)i)
			return -EPROTO;
	}
	run->t_end = bench_now_ns();
	return 0;
}

int baseline_mutex_queue(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			 double *secs)
{
	struct mutex_queue *q = malloc(sizeof(*q));
	struct pair_run run = { .n = n, .queue = q };

	(void)samples;
	if (q)
		*q = (struct mutex_queue){
			.lock = PTHREAD_MUTEX_INITIALIZER,
			.cond = { PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER },
		};
	return run_pair(ctx, &run, mutex_produce, mutex_consume, free, secs);
}

#ifdef SY_BENCH_HAVE_ZMQ
/*
 * zmq-inproc: PUSH/PULL, each message's sequence number in its first (up to 8) bytes. The
 * sockets move to the pinned threads across the full barrier of pinned_run()'s start gate, as
 * ZeroMQ allows. zmq_failed(): a call failed; say which, return its negative errno.
 */
static int zmq_failed(const char *call)
{
	int err = zmq_errno();

	fprintf(stderr, "sy-bench: zmq-inproc: %s: %s\n", call, zmq_strerror(err));
	return err > 0 ? -err : -EIO;
}

static int zmq_produce(void *arg)
{
	struct pair_run *run = arg;
	zmq_msg_t msg;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		if (zmq_msg_init_size(&msg, run->payload))
			return zmq_failed("zmq_msg_init_size");
		memset(zmq_msg_data(&msg), 0, run->payload);
		memcpy(zmq_msg_data(&msg), &i, run->key_len);
		/* On success ZeroMQ owns the message; on failure we do. */
		if (zmq_msg_send(&msg, run->socket[0], 0) < 0) {
			zmq_msg_close(&msg);
			return zmq_failed("zmq_msg_send");
		}
	}
	return 0;
}

static int zmq_consume(void *arg)
{
	struct pair_run *run = arg;
	zmq_msg_t msg;
	int rc = 0;

	if (zmq_msg_init(&msg))
		return zmq_failed("zmq_msg_init");
	/* After a bad message, keep draining: the producer may wait on us. */
	for (uint64_t i = 1; i <= run->n; i++) {
		if (zmq_msg_recv(&msg, run->socket[1], 0) < 0) {
			rc = zmq_failed("zmq_msg_recv");
			break;
		}
		if (zmq_msg_size(&msg) != run->payload ||
		    memcmp(zmq_msg_data(&msg), &i, run->key_len))
			rc = -EPROTO;
	}
	run->t_end = bench_now_ns();
	zmq_msg_close(&msg);
	return rc;
}

int baseline_zmq_inproc(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			double *secs)
{
	struct pair_run run = {
		.n = n, .queue = zmq_ctx_new(),
		.payload = ctx->payload ? ctx->payload : BENCH_DEFAULT_PAYLOAD,
	};
	int linger = 0, rc;

	(void)samples;
	run.key_len = run.payload < 8 ? run.payload : 8;
	if (!run.queue)
		return zmq_failed("zmq_ctx_new");
	run.socket[0] = zmq_socket(run.queue, ZMQ_PUSH);
	run.socket[1] = zmq_socket(run.queue, ZMQ_PULL);
	if (!run.socket[0] || !run.socket[1])
		rc = zmq_failed("zmq_socket");
	/* Nothing is left unsent at close in a complete run; never wait. */
	else if (zmq_setsockopt(run.socket[0], ZMQ_LINGER, &linger, sizeof(linger)))
		rc = zmq_failed("zmq_setsockopt(ZMQ_LINGER)");
	else if (zmq_bind(run.socket[1], "inproc://sy-bench") ||
		 zmq_connect(run.socket[0], "inproc://sy-bench"))
		rc = zmq_failed("zmq_bind/zmq_connect");
	else
		rc = run_pair(ctx, &run, zmq_produce, zmq_consume, NULL, secs);
	/* Back through pthread_join(), the sockets close here. */
	for (unsigned i = 0; i < 2; i++)
		if (run.socket[i])
			zmq_close(run.socket[i]);
	zmq_ctx_term(run.queue);
	return rc;
}
#endif /* SY_BENCH_HAVE_ZMQ */
