/*
 * Unit tests of core/pool.c through the public API: message sizes and
 * capacities, and the promise that a warmed-up engine sends without calling
 * its allocator. The engine gets a counting allocator through
 * struct sy_config.allocator, so the tests see every call the engine makes.
 *
 * The no-allocation test bounds how far the producer runs ahead of the
 * worker (a window of accepted but not yet handled messages) and grows the
 * pool past that bound before it measures: "steady state" is then a fact of
 * the test, not of the scheduler.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define WAIT_MS 60000u

/* Messages accepted but not yet handled, at most. */
#define WINDOW 2048u
#define BURST_MAX 64u
/* Messages of one size class the producer may hold at once, with margin
 * for the worker's unreturned chains and burst descriptors. */
#define PREWARM (WINDOW + 2 * BURST_MAX + 256u)

#define WARMUP_MSGS 200000u
#define MEASURED_MSGS 1000000u

struct counting_allocator {
	struct sy_allocator a;
	_Atomic uint64_t allocs;
	_Atomic uint64_t frees;
	_Atomic uint64_t alloc_bytes;
	_Atomic uint64_t free_bytes;
	_Atomic uint64_t misaligned;
	/* Refuse every allocation from the allocs-th on (0: never). */
	_Atomic uint64_t fail_from;
};

static void *count_alloc(size_t size, size_t align, void *ctx)
{
	struct counting_allocator *c = ctx;
	void *p;

	uint64_t from = atomic_load(&c->fail_from);

	if (from && atomic_load(&c->allocs) + 1 >= from)
		return NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size) != 0)
		return NULL;
	if ((uintptr_t)p % align)
		atomic_fetch_add(&c->misaligned, 1);
	atomic_fetch_add(&c->allocs, 1);
	atomic_fetch_add(&c->alloc_bytes, size);
	return p;
}

static void count_free(void *p, size_t size, void *ctx)
{
	struct counting_allocator *c = ctx;

	atomic_fetch_add(&c->frees, 1);
	atomic_fetch_add(&c->free_bytes, size);
	free(p);
}

static void counting_init(struct counting_allocator *c)
{
	c->a.alloc = count_alloc;
	c->a.free = count_free;
	c->a.ctx = c;
	atomic_init(&c->allocs, 0);
	atomic_init(&c->frees, 0);
	atomic_init(&c->alloc_bytes, 0);
	atomic_init(&c->free_bytes, 0);
	atomic_init(&c->misaligned, 0);
	atomic_init(&c->fail_from, 0);
}

static uint64_t calls(struct counting_allocator *c)
{
	return atomic_load(&c->allocs) + atomic_load(&c->frees);
}

static sy_engine *counting_engine(struct counting_allocator *c)
{
	struct sy_config cfg;

	t_config(&cfg, 1, NULL);
	cfg.allocator = &c->a;
	return t_create(&cfg);
}

static void expect_balanced(struct counting_allocator *c)
{
	cr_assert_gt(atomic_load(&c->allocs), 0, "the allocator was never used");
	cr_assert_eq(atomic_load(&c->allocs), atomic_load(&c->frees),
		     "%lu allocations, %lu frees",
		     (unsigned long)atomic_load(&c->allocs),
		     (unsigned long)atomic_load(&c->frees));
	cr_assert_eq(atomic_load(&c->alloc_bytes), atomic_load(&c->free_bytes),
		     "%lu bytes allocated, %lu freed",
		     (unsigned long)atomic_load(&c->alloc_bytes),
		     (unsigned long)atomic_load(&c->free_bytes));
	cr_assert_eq(atomic_load(&c->misaligned), 0);
}

/* ---- the traffic of the no-allocation test ---- */

struct sink {
	_Atomic uint64_t delivered;
	_Atomic uint64_t bad;
};

static int sink_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct sink *s = ctx;
	const unsigned char *d = sy_msg_data(m);

	(void)eng;
	/* The producer writes the low byte of the tag over the payload. */
	if (sy_msg_size(m) && d[sy_msg_size(m) - 1] != (unsigned char)sy_msg_tag(m))
		atomic_fetch_add_explicit(&s->bad, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->delivered, 1, memory_order_release);
	return 0;
}

/* Payload sizes in three pool classes (the largest shares its class with
 * the engine's burst descriptors). */
static const size_t traffic_sizes[] = { 16, 150, 400 };
#define N_SIZES (sizeof(traffic_sizes) / sizeof(traffic_sizes[0]))

struct traffic {
	sy_engine *eng;
	uint32_t route;
	struct sink *sink;
	uint64_t sent;
};

static sy_msg *traffic_msg(struct traffic *t, uint64_t seq)
{
	size_t size = traffic_sizes[seq % N_SIZES];
	sy_msg *m = sy_msg_alloc(t->eng, size);

	cr_assert_not_null(m, "alloc: %s", sy_last_error());
	sy_msg_set_tag(m, seq);
	memset(sy_msg_data(m), (unsigned char)seq, size);
	return m;
}

/* Wait until fewer than WINDOW - @p room accepted messages are unhandled. */
static void traffic_throttle(struct traffic *t, unsigned room)
{
	uint64_t want = t->sent + room > WINDOW ? t->sent + room - WINDOW : 0;

	cr_assert(t_wait_u64(&t->sink->delivered, want, WAIT_MS),
		  "worker stuck: %lu of %lu handled",
		  (unsigned long)atomic_load(&t->sink->delivered),
		  (unsigned long)t->sent);
}

static void traffic_single(struct traffic *t)
{
	sy_msg *m;
	int rc;

	traffic_throttle(t, 1);
	m = traffic_msg(t, t->sent);
	rc = t_send_retry(t->eng, t->route, m, WAIT_MS);
	cr_assert_eq(rc, 0, "send: %s", sy_strerror(rc));
	t->sent++;
}

/* Send msgs[0..n) through @p route, waiting out full rings. */
static void burst_send_all(sy_engine *eng, uint32_t route, sy_msg **msgs,
			   unsigned n)
{
	unsigned done = 0, tries = 0;

	while (done < n) {
		int rc = sy_msg_send_burst(eng, route, msgs + done, n - done);

		if (rc > 0) {
			done += (unsigned)rc;
			continue;
		}
		cr_assert_eq(rc, -EAGAIN, "burst: %s", sy_strerror(rc));
		cr_assert_lt(++tries, 10000000u, "burst refused for too long");
		sched_yield();
	}
}

static void traffic_burst(struct traffic *t, unsigned n)
{
	sy_msg *msgs[BURST_MAX];

	traffic_throttle(t, n);
	for (unsigned i = 0; i < n; i++)
		msgs[i] = traffic_msg(t, t->sent + i);
	burst_send_all(t->eng, t->route, msgs, n);
	t->sent += n;
}

/* Send @p count messages, alternating single sends and bursts. */
static void traffic_run(struct traffic *t, uint64_t count)
{
	static const unsigned bursts[] = { 2, 7, 16, 32, 45, 64 };
	uint64_t end = t->sent + count;
	unsigned k = 0;

	while (t->sent < end) {
		uint64_t left = end - t->sent;
		unsigned n = bursts[k++ % (sizeof(bursts) / sizeof(bursts[0]))];

		if (n > left)
			n = (unsigned)left;
		for (unsigned i = 0; i < n && t->sent < end; i++)
			traffic_single(t);
		left = end - t->sent;
		if (left == 0)
			break;
		traffic_burst(t, n > left ? (unsigned)left : n);
	}
}

/* Make the calling thread's pool hold PREWARM free messages of each class
 * the traffic uses: allocate them all at once, then free them. */
static void pool_prewarm(sy_engine *eng)
{
	static sy_msg *held[2 * PREWARM];

	for (size_t k = 0; k < N_SIZES; k++) {
		unsigned n = k + 1 == N_SIZES ? 2 * PREWARM : PREWARM;

		for (unsigned i = 0; i < n; i++) {
			held[i] = sy_msg_alloc(eng, traffic_sizes[k]);
			cr_assert_not_null(held[i]);
		}
		for (unsigned i = 0; i < n; i++)
			sy_msg_free(held[i]);
	}
}

Test(core_pool, warm_engine_sends_a_million_messages_without_allocating)
{
	struct counting_allocator c;
	struct sink sink;
	struct traffic t = { .sink = &sink };
	struct sy_stats before, after;
	uint64_t calls_before, calls_after;

	counting_init(&c);
	atomic_init(&sink.delivered, 0);
	atomic_init(&sink.bad, 0);
	t.eng = counting_engine(&c);
	t.route = t_direct(t.eng, "sink", sink_handler, &sink, 0, NULL);
	cr_assert_eq(sy_engine_start(t.eng), 0, "%s", sy_last_error());

	pool_prewarm(t.eng);
	traffic_run(&t, WARMUP_MSGS);
	cr_assert(t_wait_u64(&sink.delivered, t.sent, WAIT_MS));

	calls_before = calls(&c);
	sy_engine_stats(t.eng, &before);
	traffic_run(&t, MEASURED_MSGS);
	cr_assert(t_wait_u64(&sink.delivered, t.sent, WAIT_MS));
	calls_after = calls(&c);
	sy_engine_stats(t.eng, &after);

	cr_assert_eq(calls_after, calls_before,
		     "%lu allocator calls while sending %u warm messages",
		     (unsigned long)(calls_after - calls_before), MEASURED_MSGS);
	cr_assert_eq(after.pool_slabs, before.pool_slabs);
	cr_assert_eq(after.pool_bytes, before.pool_bytes);
	cr_assert_eq(after.accepted - before.accepted, MEASURED_MSGS);
	cr_assert_eq(atomic_load(&sink.bad), 0, "payloads arrived damaged");

	cr_assert_eq(sy_engine_stop(t.eng), 0);
	sy_engine_stats(t.eng, &after);
	cr_assert_eq(after.accepted, after.delivered);
	sy_engine_destroy(t.eng);
	expect_balanced(&c);
}

/* ---- sizes and capacities ---- */

static const size_t sizes[] = { 0, 1, 63, 64, 100, 1000, 5000, 70000 };

Test(core_pool, alloc_above_the_maximum_size_returns_null)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *m;

	cr_assert_not_null(eng);
	cr_assert_null(sy_msg_alloc(eng, (size_t)SY_MSG_MAX_SIZE + 1));
	cr_assert_neq(sy_last_error()[0], '\0', "no explanation in sy_last_error()");
	cr_assert_null(sy_msg_alloc(eng, SIZE_MAX));

	m = sy_msg_alloc(eng, SY_MSG_MAX_SIZE);
	cr_assert_not_null(m, "the maximum size itself is allowed");
	cr_assert_geq(sy_msg_capacity(m), (size_t)SY_MSG_MAX_SIZE);
	sy_msg_free(m);
	sy_engine_destroy(eng);
}

Test(core_pool, capacity_covers_the_requested_size)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		sy_msg *m = sy_msg_alloc(eng, sizes[i]);

		cr_assert_not_null(m, "size %zu: %s", sizes[i], sy_last_error());
		cr_assert_eq(sy_msg_size(m), sizes[i]);
		cr_assert_geq(sy_msg_capacity(m), sizes[i], "size %zu: capacity %zu",
			      sizes[i], sy_msg_capacity(m));
		cr_assert_eq(sy_msg_tag(m), 0);
		sy_msg_free(m);
	}
	sy_engine_destroy(eng);
}

Test(core_pool, writing_the_whole_capacity_stays_inside_the_message)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *msgs[sizeof(sizes) / sizeof(sizes[0])][2];

	cr_assert_not_null(eng);
	/* Two of each size, side by side in their slabs: each fills its whole
	 * capacity with its own byte; neither may see the other's. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (unsigned j = 0; j < 2; j++) {
			sy_msg *m = sy_msg_alloc(eng, sizes[i]);

			cr_assert_not_null(m);
			memset(sy_msg_data(m), (int)(i * 2 + j + 1), sy_msg_capacity(m));
			msgs[i][j] = m;
		}
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (unsigned j = 0; j < 2; j++) {
			sy_msg *m = msgs[i][j];
			const unsigned char *d = sy_msg_data(m);

			cr_assert_eq(sy_msg_size(m), sizes[i],
				     "a neighbour's payload overwrote the header");
			for (size_t b = 0; b < sy_msg_capacity(m); b++)
				cr_assert_eq(d[b], (unsigned char)(i * 2 + j + 1),
					     "size %zu byte %zu changed", sizes[i], b);
			sy_msg_free(m);
		}
	}
	sy_engine_destroy(eng);
}

Test(core_pool, set_size_above_capacity_is_refused)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		sy_msg *m = sy_msg_alloc(eng, sizes[i]);
		size_t cap = sy_msg_capacity(m);

		cr_assert_eq(sy_msg_set_size(m, cap + 1), -EMSGSIZE);
		cr_assert_eq(sy_msg_size(m), sizes[i], "a refused size was applied");
		cr_assert_eq(sy_msg_set_size(m, cap), 0);
		cr_assert_eq(sy_msg_size(m), cap);
		cr_assert_eq(sy_msg_set_size(m, 0), 0);
		cr_assert_eq(sy_msg_size(m), 0);
		sy_msg_free(m);
	}
	sy_engine_destroy(eng);
}

/* ---- every allocation is freed ---- */

static int count_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	atomic_fetch_add_explicit((_Atomic uint64_t *)ctx, 1, memory_order_release);
	return 0;
}

Test(core_pool, destroy_returns_every_allocation_to_the_allocator)
{
	struct counting_allocator c;
	_Atomic uint64_t delivered;
	uint64_t sent = 0;
	sy_msg *kept[16];
	sy_engine *eng;
	uint32_t route;

	counting_init(&c);
	atomic_init(&delivered, 0);
	eng = counting_engine(&c);
	route = t_direct(eng, "count", count_handler, &delivered, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	/* Every size, huge ones included, sent singly and in bursts. */
	for (unsigned round = 0; round < 50; round++) {
		sy_msg *burst[sizeof(sizes) / sizeof(sizes[0])];
		unsigned n = sizeof(sizes) / sizeof(sizes[0]);
		int rc;

		for (unsigned i = 0; i < n; i++) {
			sy_msg *m = sy_msg_alloc(eng, sizes[i]);

			cr_assert_not_null(m);
			cr_assert_eq(t_send_retry(eng, route, m, WAIT_MS), 0);
			sent++;
			burst[i] = sy_msg_alloc(eng, sizes[(i + round) % n]);
			cr_assert_not_null(burst[i]);
		}
		for (unsigned done = 0; done < n; done += (unsigned)rc) {
			rc = sy_msg_send_burst(eng, route, burst + done, n - done);
			if (rc == -EAGAIN) {
				rc = 0;
				sched_yield();
				continue;
			}
			cr_assert_gt(rc, 0, "burst: %s", sy_strerror(rc));
		}
		sent += n;
	}
	cr_assert(t_wait_u64(&delivered, sent, WAIT_MS));

	/* Pooled messages the caller still holds go with the engine. */
	for (unsigned i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		kept[i] = sy_msg_alloc(eng, sizes[i % 7]);
		cr_assert_not_null(kept[i]);
	}
	sy_engine_destroy(eng);
	expect_balanced(&c);
}

/* ---- sy_msg_alloc_burst() ---- */

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

/* msgs[0..n) are n different messages. */
static void expect_distinct(sy_msg **msgs, unsigned n)
{
	sy_msg **sorted = malloc(n * sizeof(*sorted));

	cr_assert_not_null(sorted);
	memcpy(sorted, msgs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_ptr);
	for (unsigned i = 1; i < n; i++)
		cr_assert_neq(sorted[i - 1], sorted[i], "message %p given twice",
			      (void *)sorted[i]);
	free(sorted);
}

Test(core_pool, alloc_burst_gives_fresh_messages_of_every_size)
{
	enum { N = 40 };
	_Atomic uint64_t delivered;
	uint64_t sent = 0;
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t route;

	cr_assert_not_null(eng);
	atomic_init(&delivered, 0);
	route = t_direct(eng, "count", count_handler, &delivered, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		sy_msg *b[N];
		int rc;

		/* Used messages of the class first: the burst must not show
		 * what they carried. */
		for (unsigned i = 0; i < 3; i++) {
			b[i] = sy_msg_alloc(eng, sizes[k]);
			cr_assert_not_null(b[i]);
			sy_msg_set_tag(b[i], 7);
			sy_msg_set_key(b[i], 9);
		}
		for (unsigned i = 0; i < 3; i++)
			sy_msg_free(b[i]);
		cr_assert_eq(sy_msg_alloc_burst(eng, sizes[k], b, N), N,
			     "size %zu: %s", sizes[k], sy_last_error());
		expect_distinct(b, N);
		for (unsigned i = 0; i < N; i++) {
			cr_assert_eq(sy_msg_size(b[i]), sizes[k]);
			cr_assert_geq(sy_msg_capacity(b[i]), sizes[k]);
			cr_assert_eq(sy_msg_tag(b[i]), 0);
			cr_assert_eq(sy_msg_key(b[i]), 0);
			/* Under ASan: the whole capacity is the message's own. */
			memset(sy_msg_data(b[i]), (int)i, sy_msg_capacity(b[i]));
		}
		rc = t_send_burst_retry(eng, route, b, N, WAIT_MS);
		cr_assert_eq(rc, 0, "burst: %s", sy_strerror(rc));
		sent += N;
	}
	cr_assert(t_wait_u64(&delivered, sent, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_destroy(eng);
}

Test(core_pool, alloc_burst_refuses_what_sy_msg_alloc_refuses)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *b[4] = { NULL };

	cr_assert_not_null(eng);
	cr_assert_eq(sy_msg_alloc_burst(eng, (size_t)SY_MSG_MAX_SIZE + 1, b, 4),
		     -EMSGSIZE);
	cr_assert_eq(sy_last_error_code(), -EMSGSIZE);
	cr_assert_not_null(strstr(sy_last_error(), "sy_msg_alloc_burst"), "%s",
			   sy_last_error());
	cr_assert_eq(sy_msg_alloc_burst(eng, 8, b, 0), 0, "an empty burst");
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_msg_alloc_burst(eng, 8, b, 4), -ESHUTDOWN);
	cr_assert_eq(sy_last_error_code(), -ESHUTDOWN);
	sy_engine_destroy(eng);
}

/*
 * A burst that needs more than the pool can get takes nothing: the
 * messages it had taken off the free list are back on it, so a burst of
 * exactly what the free list holds then succeeds without the allocator.
 */
Test(core_pool, alloc_burst_is_all_or_nothing)
{
	struct counting_allocator c;
	struct sy_stats st;
	unsigned have = 0, cap = 1u << 16;
	uint64_t slabs;
	sy_msg **b = calloc(cap, sizeof(*b));
	sy_engine *eng;

	cr_assert_not_null(b);
	counting_init(&c);
	eng = counting_engine(&c);
	/* Fill a slab of the smallest class, and take one message of the
	 * next: have - 1 messages a slab. */
	b[have++] = sy_msg_alloc(eng, 16);
	cr_assert_not_null(b[0]);
	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	slabs = st.pool_slabs;
	do {
		cr_assert_lt(have, cap);
		b[have] = sy_msg_alloc(eng, 16);
		cr_assert_not_null(b[have++]);
		cr_assert_eq(sy_engine_stats(eng, &st), 0);
	} while (st.pool_slabs == slabs);
	for (unsigned i = 0; i < have; i++)
		sy_msg_free(b[i]);
	/* The free list holds two slabs' messages. */
	have = 2 * (have - 1);
	atomic_store(&c.fail_from, atomic_load(&c.allocs) + 1);
	cr_assert_eq(sy_msg_alloc_burst(eng, 16, b, have + 1), -ENOMEM);
	cr_assert_eq(sy_last_error_code(), -ENOMEM);
	cr_assert_eq(sy_msg_alloc_burst(eng, 16, b, have), (int)have, "%s",
		     sy_last_error());
	expect_distinct(b, have);
	for (unsigned i = 0; i < have; i++)
		sy_msg_free(b[i]);
	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	cr_assert_eq(st.pool_slabs, slabs + 1, "no slab was added");

	/* Messages allocated alone: the ones taken before the refusal go
	 * back to the allocator. */
	atomic_store(&c.fail_from, atomic_load(&c.allocs) + 4);
	{
		uint64_t allocs = atomic_load(&c.allocs), frees = atomic_load(&c.frees);

		cr_assert_eq(sy_msg_alloc_burst(eng, 70000, b, 5), -ENOMEM);
		cr_assert_eq(atomic_load(&c.allocs) - allocs, 3);
		cr_assert_eq(atomic_load(&c.frees) - frees, 3);
	}
	atomic_store(&c.fail_from, 0);
	sy_engine_destroy(eng);
	expect_balanced(&c);
	free(b);
}

/* ---- bursts that go back whole ---- */

/*
 * A uniform burst through a local server goes back to its pool as one
 * group listed in its descriptor, unless one of its runs fails, or its
 * messages come from more than one pool, or the server's breaker has
 * something to record: then its messages go back one by one. Either way,
 * each message must go back once: a message freed twice would sit in two
 * groups, and come out of its pool twice.
 */
#define FAIL_EVERY 61u  /* the handler fails the tags that are multiples */
#define WHOLE_BURST 32u
#define FOREIGN 8u      /* of each mixed burst's messages, from another pool */
/* The smallest message a pool holds, header included (SY_CLASS0_BYTES in
 * core/pool.h): the slabs hold at most pool_bytes / this messages. */
#define SMALLEST_CLASS_BYTES 192u

struct picky {
	_Atomic uint64_t ran;
	_Atomic uint64_t bad;
};

static int picky_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct picky *p = ctx;
	uint64_t v;

	(void)eng;
	memcpy(&v, sy_msg_data(m), sizeof(v));
	if (v != sy_msg_tag(m))
		atomic_fetch_add_explicit(&p->bad, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->ran, 1, memory_order_release);
	return sy_msg_tag(m) % FAIL_EVERY == 0 ? -EIO : 0;
}

static void burst_fill(sy_msg **msgs, unsigned n, uint64_t *next)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t tag = (*next)++;

		sy_msg_set_tag(msgs[i], tag);
		memcpy(sy_msg_data(msgs[i]), &tag, sizeof(tag));
	}
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(sy_msg *const *)a;
	uintptr_t y = (uintptr_t)*(sy_msg *const *)b;

	return x < y ? -1 : x > y;
}

/* How many messages of the calling thread's pool come out twice when it
 * hands out more than the engine's slabs hold, at once (SIZE_MAX: an
 * allocation failed). Any thread: no assertion here. */
static size_t count_twice(sy_engine *eng)
{
	struct sy_stats st;
	size_t n, twice = 0, got = 0;
	sy_msg **held;

	sy_engine_stats(eng, &st);
	n = (size_t)(st.pool_bytes / SMALLEST_CLASS_BYTES) + 64u;
	held = calloc(n, sizeof(*held));
	if (!held)
		return SIZE_MAX;
	while (got < n && (held[got] = sy_msg_alloc(eng, 8)) != NULL)
		got++;
	qsort(held, got, sizeof(*held), by_address);
	for (size_t i = 1; i < got; i++)
		twice += held[i] == held[i - 1];
	/* A message out twice is freed once. */
	for (size_t i = 0; i < got; i++)
		if (i == 0 || held[i] != held[i - 1])
			sy_msg_free(held[i]);
	free(held);
	return got == n ? twice : SIZE_MAX;
}

struct foreign {
	sy_engine *eng;
	sy_msg *msgs[FOREIGN];
	_Atomic int step; /* 1: fill msgs; 2: filled; 3: check the pool; 4: done */
	size_t twice;     /* count_twice() of its pool, at step 4 */
};

/* Another thread's pool: it allocates the foreign messages of each mixed
 * burst, and at the end checks that each came back to it once. */
static void *foreign_main(void *arg)
{
	struct foreign *f = arg;
	/* Each wait for the test's next step is bounded: the test, which
	 * waits for this thread's steps, then fails. */
	uint64_t until = t_now_ms() + T_WAIT_MS;

	while (t_now_ms() < until) {
		int step = atomic_load(&f->step);

		if (step == 1) {
			/* On failure the sender finds NULL messages. */
			if (sy_msg_alloc_burst(f->eng, 8, f->msgs, FOREIGN) < 0)
				memset(f->msgs, 0, sizeof(f->msgs));
			atomic_store(&f->step, 2);
			until = t_now_ms() + T_WAIT_MS;
		} else if (step == 3) {
			f->twice = count_twice(f->eng);
			atomic_store(&f->step, 4);
			break;
		} else {
			sched_yield();
		}
	}
	return NULL;
}

static void foreign_wait(struct foreign *f, int step)
{
	uint64_t until = t_now_ms() + T_WAIT_MS;

	while (atomic_load(&f->step) != step) {
		cr_assert_lt(t_now_ms(), until, "the other thread is stuck");
		sched_yield();
	}
}

Test(core_pool, bursts_go_back_whole_or_one_by_one_and_each_message_once)
{
	const struct sy_breaker_opts bo = { .consecutive_failures = 1000,
					    .window = 128,
					    .failure_rate = 1.0 };
	struct sy_server_opts so = { .breaker = &bo };
	struct picky plain = { 0 }, guarded = { 0 };
	struct foreign f = { .step = 0 };
	uint32_t routes[2], srv;
	sy_msg *msgs[WHOLE_BURST];
	uint64_t next = 1, sent = 0;
	pthread_t other;

	f.eng = t_engine(1, SY_IDLE_SLEEP);
	routes[0] = t_direct(f.eng, "plain", picky_handler, &plain, 0, NULL);
	cr_assert_eq(sy_server_add(f.eng, "guarded", picky_handler, &guarded,
				   &so, &srv), 0, "%s", sy_last_error());
	routes[1] = t_add_route(f.eng, "guarded", (struct sy_route_opts){ 0 },
				&srv, 1);
	cr_assert_eq(sy_engine_start(f.eng), 0, "%s", sy_last_error());
	cr_assert_eq(pthread_create(&other, NULL, foreign_main, &f), 0);

	for (unsigned b = 0; b < 3000; b++) {
		uint32_t route = routes[b % 2];

		if (b % 3 == 2) {
			/* Mixed: a quarter of it from the other thread. */
			atomic_store(&f.step, 1);
			foreign_wait(&f, 2);
			cr_assert_eq(sy_msg_alloc_burst(f.eng, 8, msgs,
							WHOLE_BURST - FOREIGN),
				     (int)(WHOLE_BURST - FOREIGN));
			memcpy(msgs + WHOLE_BURST - FOREIGN, f.msgs,
			       sizeof(f.msgs));
			cr_assert_not_null(f.msgs[0], "the other thread's "
					   "allocation failed");
			atomic_store(&f.step, 0);
		} else {
			cr_assert_eq(sy_msg_alloc_burst(f.eng, 8, msgs,
							WHOLE_BURST),
				     (int)WHOLE_BURST);
		}
		burst_fill(msgs, WHOLE_BURST, &next);
		burst_send_all(f.eng, route, msgs, WHOLE_BURST);
		sent += WHOLE_BURST;
	}
	cr_assert(t_wait_u64(&plain.ran, sent / 2, T_WAIT_MS));
	cr_assert(t_wait_u64(&guarded.ran, sent / 2, T_WAIT_MS));
	cr_assert_eq(atomic_load(&plain.bad) + atomic_load(&guarded.bad), 0,
		     "payloads arrived damaged");
	/* The failed runs were dead-lettered, the others delivered. */
	t_expect_accounting(f.eng, sent, sent - sent / FAIL_EVERY,
			    sent / FAIL_EVERY);
	cr_assert_eq(count_twice(f.eng), 0, "messages of this thread's pool "
		     "handed out twice (SIZE_MAX: an allocation failed)");
	atomic_store(&f.step, 3);
	foreign_wait(&f, 4);
	pthread_join(other, NULL);
	cr_assert_eq(f.twice, 0, "messages of the other thread's pool handed "
		     "out twice (SIZE_MAX: an allocation failed)");
	cr_assert_eq(sy_engine_stop(f.eng), 0);
	sy_engine_destroy(f.eng);
}
