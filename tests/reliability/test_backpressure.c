/*
 * End-to-end tests of backpressure: what a send does when the ring from the
 * sending thread to the picked server's worker holds as many entries as the
 * route's threshold allows, in each mode (reject, spill, block, dead-letter),
 * for single sends and bursts; the on_backpressure callback; and a full ring
 * on a route without a threshold.
 *
 * The depth of a ring is set by the test, not by timing: the first message
 * a gated server takes is a "blocker" whose handler waits on the gate, so
 * the worker takes nothing more from its rings until the test opens the
 * gate. Every later message then stays in the ring, one ring entry per
 * sy_send() or per sy_send_burst() chunk. Where time matters (SY_BP_BLOCK)
 * the engine runs on a fake clock that only the test thread moves.
 *
 * Handlers run on worker threads, where Criterion's assertions must not be
 * called: they count what they see (atomics) and the test thread asserts.
 * Message ids travel in the tag; each server counts the runs of every id.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/common.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define WAIT_MS 60000u
/* Rounds of 20 us sleeps while the test checks that something does not
 * happen. */
#define QUIET_ROUNDS 2000u

#define RING_SIZE 64u
/* bp_high 0.5 of the 63 entries a ring of 64 holds: ceil(31.5) entries. */
#define BP_HIGH 0.5
#define LIMIT 32u
#define HOLD (1ull << 63)  /* tag bit: the handler waits on the gate */
#define MAX_IDS 1024u

/* ------------------------------------------------------------------ */
/* Rig: an engine with a fake clock, gated servers, counted callbacks  */
/* ------------------------------------------------------------------ */

/* What the on_backpressure callback saw, per worker. */
struct bp_events {
	_Atomic uint64_t on[2];
	_Atomic uint64_t off[2];
};

static void count_backpressure(sy_engine *eng, unsigned worker,
			       bool congested, void *ctx)
{
	struct bp_events *ev = ctx;

	(void)eng;
	if (worker < 2)
		atomic_fetch_add(congested ? &ev->on[worker] : &ev->off[worker], 1);
}

/* A server whose blockers wait until the test releases them, in order. */
struct gated {
	_Atomic uint64_t held;      /* blockers that have started */
	_Atomic uint64_t released;  /* blockers allowed to finish */
	_Atomic uint64_t handled;   /* handler runs */
	_Atomic uint32_t runs[MAX_IDS];
};

static int gated_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct gated *g = ctx;
	uint64_t tag = sy_msg_tag(msg), id = tag & ~HOLD;

	(void)eng;
	if (tag & HOLD) {
		t_gate_wait(&g->held, &g->released, WAIT_MS);
	}
	if (id < MAX_IDS)
		atomic_fetch_add(&g->runs[id], 1);
	atomic_fetch_add(&g->handled, 1);
	return 0;
}

static sy_engine *engine_new(unsigned workers, struct t_clock *clock,
			     struct bp_events *events)
{
	struct sy_config cfg;
	sy_engine *eng = NULL;

	t_config(&cfg, workers, clock);
	cfg.ring_size = RING_SIZE;
	if (events) {
		cfg.on_backpressure = count_backpressure;
		cfg.callback_ctx = events;
	}
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "sy_engine_create: %s",
		     sy_last_error());
	return eng;
}

static uint32_t server_new(sy_engine *eng, const char *name, struct gated *g,
			   int worker)
{
	struct sy_server_opts so = { .worker = worker };
	uint32_t id;

	cr_assert_eq(sy_server_add(eng, name, gated_handler, g, &so, &id), 0,
		     "sy_server_add: %s", sy_last_error());
	return id;
}

/* A route over @p n servers with backpressure @p mode at BP_HIGH. */
static uint32_t route_new(sy_engine *eng, const char *name, const char *policy,
			  const uint32_t *servers, unsigned n,
			  enum sy_backpressure mode, uint64_t block_ns)
{
	struct sy_route_opts ro = {
		.policy = policy,
		.servers = servers,
		.n_servers = n,
		.backpressure = mode,
		.bp_high = mode == SY_BP_OFF ? 0 : BP_HIGH,
		.bp_block_ns = block_ns,
	};
	uint32_t id;

	cr_assert_eq(sy_route_add(eng, name, &ro, &id), 0, "sy_route_add: %s",
		     sy_last_error());
	return id;
}

/* A message whose tag and payload are @p tag, or NULL. Any thread. */
static sy_msg *msg_try(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(tag));

	if (m) {
		memcpy(sy_msg_data(m), &tag, sizeof(tag));
		sy_msg_set_tag(m, tag);
	}
	return m;
}

static sy_msg *msg_new(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = msg_try(eng, tag);

	cr_assert_not_null(m, "sy_msg_alloc: %s", sy_last_error());
	return m;
}

/* The message is intact and still the caller's to read. */
static void expect_owned(sy_msg *m, uint64_t tag)
{
	uint64_t payload;

	memcpy(&payload, sy_msg_data(m), sizeof(payload));
	cr_expect_eq(sy_msg_tag(m), tag);
	cr_expect_eq(payload, tag);
	cr_expect_eq(sy_msg_size(m), sizeof(tag));
}

/* Send a blocker to @p route and wait until @p g's handler holds it. */
static void hold(sy_engine *eng, uint32_t route, struct gated *g, uint64_t id)
{
	uint64_t before = atomic_load(&g->held);

	cr_assert_eq(sy_send(eng, route, msg_new(eng, id | HOLD)), 0);
	cr_assert(t_wait_u64(&g->held, before + 1, WAIT_MS),
		  "the blocker never reached its handler");
}

/* Send ids first, first + 1, ... while sends succeed, at most @p max.
 * Returns how many were accepted; the refused message, if any, in *refused.
 * Any thread (it asserts nothing). */
static unsigned fill(sy_engine *eng, uint32_t route, uint64_t first,
		     unsigned max, int *rc, sy_msg **refused)
{
	unsigned n = 0;

	*refused = NULL;
	*rc = 0;
	while (n < max) {
		sy_msg *m = msg_try(eng, first + n);

		if (!m) {
			*rc = -ENOMEM;
			break;
		}
		*rc = sy_send(eng, route, m);
		if (*rc) {
			*refused = m;
			break;
		}
		n++;
	}
	return n;
}

static void expect_each_once(struct gated *g, uint64_t first, uint64_t n)
{
	for (uint64_t id = first; id < first + n; id++)
		cr_expect_eq(atomic_load(&g->runs[id]), 1, "id %llu ran %u times",
			     (unsigned long long)id, atomic_load(&g->runs[id]));
}

static void expect_accounting(sy_engine *eng, uint64_t accepted,
			      uint64_t delivered, uint64_t dead)
{
	struct sy_accounting a;

	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, accepted, "accepted %llu, want %llu",
		     (unsigned long long)a.accepted, (unsigned long long)accepted);
	cr_expect_eq(a.delivered, delivered, "delivered %llu, want %llu",
		     (unsigned long long)a.delivered, (unsigned long long)delivered);
	cr_expect_eq(a.dead_lettered + a.evicted, dead,
		     "dead-lettered %llu + evicted %llu, want %llu",
		     (unsigned long long)a.dead_lettered,
		     (unsigned long long)a.evicted, (unsigned long long)dead);
	cr_expect_eq(a.in_flight, 0);
}

/* ------------------------------------------------------------------ */
/* reject                                                              */
/* ------------------------------------------------------------------ */

Test(backpressure_reject, sends_past_the_threshold_fail_and_stay_the_callers)
{
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_REJECT, 0);
	struct sy_stats st;
	sy_msg *refused;
	unsigned n;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	n = fill(eng, route, 1, 2 * LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT, "%u sends accepted before the refusal, want %u",
		     n, LIMIT);
	cr_assert_eq(rc, -ENOBUFS, "refused with %d (%s)", rc, sy_strerror(rc));
	cr_assert_not_null(refused);
	expect_owned(refused, 1 + LIMIT);
	for (unsigned i = 0; i < 9; i++) {
		sy_msg *m = msg_new(eng, 500 + i);

		cr_assert_eq(sy_send(eng, route, m), -ENOBUFS);
		expect_owned(m, 500 + i);
		sy_msg_free(m);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 10);
	cr_expect_eq(st.rejected_full, 0);
	cr_expect_eq(st.accepted, 1 + LIMIT);

	/* Once the ring drains the refused message goes, as its owner sends it. */
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(t_send_retry(eng, route, refused, WAIT_MS), 0);
	cr_assert(t_wait_u64(&g.handled, 2 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&g, 0, 2 + LIMIT);
	for (unsigned i = 0; i < 9; i++)
		cr_expect_eq(atomic_load(&g.runs[500 + i]), 0);
	expect_accounting(eng, 2 + LIMIT, 2 + LIMIT, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_reject, burst_is_refused_whole_per_ring_entry_and_keeps_its_order)
{
	enum { BURST = 40, SMALL = 5 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_REJECT, 0);
	sy_msg *msgs[BURST], *small[SMALL], *refused;
	struct sy_stats st;
	unsigned n;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	n = fill(eng, route, 1, LIMIT - 1, &rc, &refused);
	cr_assert_eq(n, LIMIT - 1);
	cr_assert_eq(rc, 0);

	/* One entry below the threshold: the first chunk of 32 messages takes
	 * the last entry, the rest of the burst is refused. */
	for (unsigned i = 0; i < BURST; i++)
		msgs[i] = msg_new(eng, 100 + i);
	rc = sy_send_burst(eng, route, msgs, BURST);
	cr_assert_eq(rc, 32, "sy_send_burst accepted %d of %d", rc, BURST);
	for (unsigned i = 32; i < BURST; i++) {
		expect_owned(msgs[i], 100 + i);
		sy_msg_free(msgs[i]);
	}
	for (unsigned i = 0; i < SMALL; i++)
		small[i] = msg_new(eng, 200 + i);
	cr_assert_eq(sy_send_burst(eng, route, small, SMALL), -ENOBUFS);
	for (unsigned i = 0; i < SMALL; i++) {
		expect_owned(small[i], 200 + i);
		sy_msg_free(small[i]);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, (BURST - 32) + SMALL);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, LIMIT + 32, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&g, 0, LIMIT);
	expect_each_once(&g, 100, 32);
	for (unsigned i = 32; i < BURST; i++)
		cr_expect_eq(atomic_load(&g.runs[100 + i]), 0);
	expect_accounting(eng, LIMIT + 32, LIMIT + 32, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_reject, burst_over_two_workers_takes_the_uncongested_half)
{
	enum { BURST = 8 };
	struct gated slow = { 0 }, fast = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sids[2], direct, route;
	sy_msg *msgs[BURST], *refused;
	unsigned n;
	int rc;

	sids[0] = server_new(eng, "slow", &slow, 0);
	sids[1] = server_new(eng, "fast", &fast, 1);
	direct = route_new(eng, "to-slow", "direct", &sids[0], 1, SY_BP_REJECT, 0);
	route = route_new(eng, "both", "round_robin", sids, 2, SY_BP_REJECT, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, direct, &slow, 0);
	n = fill(eng, direct, 1, LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT);

	/* round_robin from this thread's first pick: even ids to the slow
	 * server (congested), odd ids to the fast one. */
	for (unsigned i = 0; i < BURST; i++)
		msgs[i] = msg_new(eng, 100 + i);
	rc = sy_send_burst(eng, route, msgs, BURST);
	cr_assert_eq(rc, BURST / 2, "sy_send_burst accepted %d", rc);
	for (unsigned i = 0; i < BURST / 2; i++) {
		expect_owned(msgs[BURST / 2 + i], 100 + 2 * i);
		sy_msg_free(msgs[BURST / 2 + i]);
	}
	cr_assert(t_wait_u64(&fast.handled, BURST / 2, WAIT_MS));
	atomic_store(&slow.released, 1);
	cr_assert(t_wait_u64(&slow.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	for (unsigned i = 0; i < BURST; i++)
		cr_expect_eq(atomic_load(&fast.runs[100 + i]), i % 2,
			     "id %u ran %u times on the fast server", 100 + i,
			     atomic_load(&fast.runs[100 + i]));
	expect_accounting(eng, 1 + LIMIT + BURST / 2, 1 + LIMIT + BURST / 2, 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* spill                                                               */
/* ------------------------------------------------------------------ */

/* failover over [slow on worker 0, fast on worker 1]: everything goes to
 * the slow server until its ring is past the threshold. */
static sy_engine *spill_rig(struct gated *slow, struct gated *fast,
			    uint32_t *route)
{
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sids[2];

	sids[0] = server_new(eng, "slow", slow, 0);
	sids[1] = server_new(eng, "fast", fast, 1);
	*route = route_new(eng, "spill", "failover", sids, 2, SY_BP_SPILL, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	return eng;
}

Test(backpressure_spill, sends_past_the_threshold_go_to_the_other_server)
{
	enum { EXTRA = 20 };
	struct gated slow = { 0 }, fast = { 0 };
	struct sy_stats st;
	sy_msg *refused;
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);
	unsigned n;
	int rc;

	hold(eng, route, &slow, 0);
	n = fill(eng, route, 1, LIMIT + EXTRA, &rc, &refused);
	cr_assert_eq(n, LIMIT + EXTRA, "only %u accepted (%s)", n, sy_strerror(rc));
	cr_assert(t_wait_u64(&fast.handled, EXTRA, WAIT_MS));
	cr_expect_eq(atomic_load(&slow.handled), 0);
	atomic_store(&slow.released, 1);
	cr_assert(t_wait_u64(&slow.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&slow, 0, 1 + LIMIT);
	expect_each_once(&fast, 1 + LIMIT, EXTRA);
	cr_expect_eq(atomic_load(&fast.handled), EXTRA);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 0);
	expect_accounting(eng, 1 + LIMIT + EXTRA, 1 + LIMIT + EXTRA, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_spill, burst_past_the_threshold_goes_to_the_other_server_once)
{
	enum { BURST = 20 };
	struct gated slow = { 0 }, fast = { 0 };
	sy_msg *msgs[BURST], *refused;
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);
	unsigned n;
	int rc;

	hold(eng, route, &slow, 0);
	n = fill(eng, route, 1, LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT);
	for (unsigned i = 0; i < BURST; i++)
		msgs[i] = msg_new(eng, 100 + i);
	rc = sy_send_burst(eng, route, msgs, BURST);
	cr_assert_eq(rc, BURST, "sy_send_burst accepted %d (%s)", rc,
		     sy_strerror(rc));
	cr_assert(t_wait_u64(&fast.handled, BURST, WAIT_MS));
	atomic_store(&slow.released, 1);
	cr_assert(t_wait_u64(&slow.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&fast, 100, BURST);
	cr_expect_eq(atomic_load(&fast.handled), BURST,
		     "the fast server ran %llu times for %d messages",
		     (unsigned long long)atomic_load(&fast.handled), BURST);
	expect_accounting(eng, 1 + LIMIT + BURST, 1 + LIMIT + BURST, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_spill, refused_once_every_server_is_past_the_threshold)
{
	struct gated slow = { 0 }, fast = { 0 };
	sy_msg *refused;
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);
	unsigned n;
	int rc;

	hold(eng, route, &slow, 0);
	n = fill(eng, route, 1, LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT);
	/* The next message spills to the other server: make it a blocker. */
	hold(eng, route, &fast, 1000);
	n = fill(eng, route, 1 + LIMIT, 2 * LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT, "%u spilled before the refusal, want %u", n, LIMIT);
	cr_assert_eq(rc, -ENOBUFS);
	expect_owned(refused, 1 + 2 * LIMIT);
	sy_msg_free(refused);
	atomic_store(&slow.released, 1);
	atomic_store(&fast.released, 1);
	cr_assert(t_wait_u64(&slow.handled, 1 + LIMIT, WAIT_MS));
	cr_assert(t_wait_u64(&fast.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&slow, 0, 1 + LIMIT);
	expect_each_once(&fast, 1 + LIMIT, LIMIT);
	expect_accounting(eng, 2 + 2 * LIMIT, 2 + 2 * LIMIT, 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* block                                                               */
/* ------------------------------------------------------------------ */

/*
 * Backpressure is per ring, and a ring belongs to one sending thread: the
 * thread that blocks must be the one that filled its ring. It holds the
 * server, fills its ring to the threshold, says so, then sends one more
 * message (or a burst) and records the result. No Criterion assertion
 * runs on it.
 */
struct blocked_send {
	sy_engine *eng;
	uint32_t route;
	struct gated *g;
	sy_msg *msgs[8];
	unsigned n;               /* 1: sy_send(), more: sy_send_burst() */
	unsigned filled;          /* accepted while filling */
	_Atomic uint64_t ready;   /* the ring is at the threshold */
	_Atomic uint64_t done;
	int rc;
};

static void *blocked_send_main(void *arg)
{
	struct blocked_send *b = arg;
	sy_msg *blocker = msg_try(b->eng, HOLD), *refused = NULL;
	int rc = -ENOMEM;

	if (blocker) {
		rc = sy_send(b->eng, b->route, blocker);
		if (rc)
			sy_msg_free(blocker);
	}
	if (rc == 0 && t_wait_u64(&b->g->held, 1, WAIT_MS))
		b->filled = fill(b->eng, b->route, 1, LIMIT, &rc, &refused);
	sy_msg_free(refused);
	/* Publishes filled to the test thread's load of ready. */
	atomic_store(&b->ready, 1);
	if (b->filled == LIMIT) {
		if (b->n == 1)
			rc = sy_send(b->eng, b->route, b->msgs[0]);
		else
			rc = sy_send_burst(b->eng, b->route, b->msgs, b->n);
	}
	b->rc = rc;
	/* Publishes rc to the test thread's load of done. */
	atomic_store(&b->done, 1);
	return NULL;
}

/* Start the sender of @p b; return once its ring is at the threshold. */
static void blocked_start(struct blocked_send *b, pthread_t *t)
{
	atomic_init(&b->ready, 0);
	atomic_init(&b->done, 0);
	cr_assert_eq(pthread_create(t, NULL, blocked_send_main, b), 0);
	cr_assert(t_wait_u64(&b->ready, 1, WAIT_MS));
	if (b->filled != LIMIT) {
		atomic_store(&b->g->released, 1);
		pthread_join(*t, NULL);
		cr_assert_fail("the sender filled %u entries, want %u", b->filled,
			       LIMIT);
	}
}

/* Give the sender plenty of chances to return; it must still be waiting. */
static void expect_still_blocked(struct blocked_send *b)
{
	for (unsigned i = 0; i < QUIET_ROUNDS && !atomic_load(&b->done); i++)
		t_sleep_us(20);
	cr_expect_eq(atomic_load(&b->done), 0, "the send returned %d", b->rc);
}

static int blocked_join(struct blocked_send *b, pthread_t t)
{
	bool done = t_wait_u64(&b->done, 1, WAIT_MS);

	if (!done)
		atomic_store(&b->g->released, 1);
	cr_assert(done, "the blocked send never returned");
	pthread_join(t, NULL);
	return b->rc;
}

/* Clock at 1 s; a BLOCK route to a gated server. The messages to send
 * have ids 900 and up. */
static sy_engine *block_rig(struct t_clock *clock, struct gated *g,
			    struct blocked_send *b, unsigned n)
{
	sy_engine *eng;
	uint32_t sid;

	atomic_init(&clock->ns, 1000000000ull);
	eng = engine_new(2, clock, NULL);
	sid = server_new(eng, "slow", g, 1);
	b->eng = eng;
	b->g = g;
	b->n = n;
	b->route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_BLOCK, 1000);
	for (unsigned i = 0; i < n; i++)
		b->msgs[i] = msg_new(eng, 900 + i);
	cr_assert_eq(sy_engine_start(eng), 0);
	return eng;
}

Test(backpressure_block, blocked_send_fails_once_the_clock_passes_bp_block_ns)
{
	struct t_clock clock;
	struct gated g = { 0 };
	struct blocked_send b = { 0 };
	sy_engine *eng = block_rig(&clock, &g, &b, 1);
	struct sy_stats st;
	pthread_t t;

	blocked_start(&b, &t);
	expect_still_blocked(&b);
	atomic_fetch_add(&clock.ns, 1000);
	cr_assert_eq(blocked_join(&b, t), -ENOBUFS);
	expect_owned(b.msgs[0], 900);
	sy_msg_free(b.msgs[0]);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 1);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&g.runs[900]), 0);
	expect_accounting(eng, 1 + LIMIT, 1 + LIMIT, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_block, blocked_send_with_a_deadline_waits_until_the_deadline)
{
	struct t_clock clock;
	struct gated g = { 0 };
	struct blocked_send b = { 0 };
	sy_engine *eng = block_rig(&clock, &g, &b, 1);
	pthread_t t;

	sy_msg_set_deadline(b.msgs[0], atomic_load(&clock.ns) + 5000);
	blocked_start(&b, &t);
	expect_still_blocked(&b);
	/* Past bp_block_ns, not yet at the deadline: still waiting. */
	atomic_fetch_add(&clock.ns, 2000);
	expect_still_blocked(&b);
	atomic_fetch_add(&clock.ns, 3000);
	cr_assert_eq(blocked_join(&b, t), -ENOBUFS);
	expect_owned(b.msgs[0], 900);
	sy_msg_free(b.msgs[0]);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_accounting(eng, 1 + LIMIT, 1 + LIMIT, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_block, blocked_send_succeeds_when_the_ring_drains_in_time)
{
	struct t_clock clock;
	struct gated g = { 0 };
	struct blocked_send b = { 0 };
	sy_engine *eng = block_rig(&clock, &g, &b, 1);
	struct sy_stats st;
	pthread_t t;

	blocked_start(&b, &t);
	expect_still_blocked(&b);
	atomic_store(&g.released, 1);
	cr_assert_eq(blocked_join(&b, t), 0);
	cr_assert(t_wait_u64(&g.handled, 2 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&g.runs[900]), 1);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 0);
	expect_accounting(eng, 2 + LIMIT, 2 + LIMIT, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_block, blocked_burst_goes_whole_when_the_ring_drains)
{
	enum { BURST = 5 };
	struct t_clock clock;
	struct gated g = { 0 };
	struct blocked_send b = { 0 };
	sy_engine *eng = block_rig(&clock, &g, &b, BURST);
	struct sy_stats st;
	pthread_t t;


	blocked_start(&b, &t);
	expect_still_blocked(&b);
	atomic_store(&g.released, 1);
	cr_assert_eq(blocked_join(&b, t), BURST);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT + BURST, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&g, 900, BURST);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 0, "a burst that waited and went "
		     "counted %llu refusals",
		     (unsigned long long)st.rejected_backpressure);
	expect_accounting(eng, 1 + LIMIT + BURST, 1 + LIMIT + BURST, 0);
	sy_engine_destroy(eng);
}

Test(backpressure_block, blocked_burst_fails_whole_once_the_clock_passes)
{
	enum { BURST = 5 };
	struct t_clock clock;
	struct gated g = { 0 };
	struct blocked_send b = { 0 };
	sy_engine *eng = block_rig(&clock, &g, &b, BURST);
	struct sy_stats st;
	pthread_t t;

	blocked_start(&b, &t);
	expect_still_blocked(&b);
	atomic_fetch_add(&clock.ns, 1000);
	cr_assert_eq(blocked_join(&b, t), -ENOBUFS);
	for (unsigned i = 0; i < BURST; i++) {
		expect_owned(b.msgs[i], 900 + i);
		sy_msg_free(b.msgs[i]);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, BURST, "%d refused messages "
		     "counted as %llu refusals", BURST,
		     (unsigned long long)st.rejected_backpressure);
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_accounting(eng, 1 + LIMIT, 1 + LIMIT, 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* dead letter                                                         */
/* ------------------------------------------------------------------ */

/* Check the dead letters held: @p n of them, reason backpressure, from
 * @p route and @p server, tags first .. first + n - 1 in order. */
static void expect_backpressure_letters(sy_engine *eng, uint32_t route,
					uint32_t server, uint64_t first,
					unsigned n)
{
	struct sy_dead_letter dl[64];
	struct sy_dl_filter f;
	int got;

	cr_assert_leq(n, 64);
	sy_dl_filter_init(&f);
	f.reasons = 1u << SY_DL_BACKPRESSURE;
	cr_expect_eq(sy_dlq_count(eng, &f), n);
	cr_expect_eq(sy_dlq_count(eng, NULL), n);
	got = sy_dlq_list(eng, &f, dl, 64);
	cr_assert_eq(got, (int)n, "%d dead letters listed, want %u", got, n);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_eq(dl[i].reason, SY_DL_BACKPRESSURE);
		cr_expect_eq(dl[i].tag, first + i);
		cr_expect_eq(dl[i].route, route);
		cr_expect_eq(dl[i].server, server);
		cr_expect_eq(dl[i].attempts, 0);
	}
}

Test(backpressure_dead_letter, sends_past_the_threshold_are_accepted_into_the_dlq)
{
	enum { EXTRA = 10 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1,
				   SY_BP_DEAD_LETTER, 0);
	struct sy_accounting a;
	sy_msg *refused, *reply = NULL, *req;
	unsigned n;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	n = fill(eng, route, 1, LIMIT + EXTRA, &rc, &refused);
	cr_assert_eq(n, LIMIT + EXTRA, "only %u accepted (%s)", n, sy_strerror(rc));
	expect_backpressure_letters(eng, route, sid, 1 + LIMIT, EXTRA);

	/* A call's caller waits for its reply: it is refused, not dead-lettered. */
	req = msg_new(eng, 800);
	cr_assert_eq(sy_call(eng, route, req, &reply, 1000000), -ENOBUFS);
	expect_owned(req, 800);
	sy_msg_free(req);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&g, 0, 1 + LIMIT);
	for (unsigned i = 0; i < EXTRA; i++)
		cr_expect_eq(atomic_load(&g.runs[1 + LIMIT + i]), 0);
	expect_accounting(eng, 1 + LIMIT + EXTRA, 1 + LIMIT, EXTRA);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_BACKPRESSURE], EXTRA);
	sy_engine_destroy(eng);
}

Test(backpressure_dead_letter, burst_past_the_threshold_is_accepted_into_the_dlq)
{
	enum { BURST = 10 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1,
				   SY_BP_DEAD_LETTER, 0);
	sy_msg *msgs[BURST], *refused;
	struct sy_stats st;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	cr_assert_eq(fill(eng, route, 1, LIMIT, &rc, &refused), LIMIT);
	for (unsigned i = 0; i < BURST; i++)
		msgs[i] = msg_new(eng, 100 + i);
	cr_assert_eq(sy_send_burst(eng, route, msgs, BURST), BURST);
	expect_backpressure_letters(eng, route, sid, 100, BURST);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, 1 + LIMIT + BURST);
	cr_expect_eq(st.rejected_backpressure, 0);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	for (unsigned i = 0; i < BURST; i++)
		cr_expect_eq(atomic_load(&g.runs[100 + i]), 0);
	expect_accounting(eng, 1 + LIMIT + BURST, 1 + LIMIT, BURST);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* on_backpressure                                                     */
/* ------------------------------------------------------------------ */

/* Hold the server, fill its ring and try @p refusals more sends. */
static void congest(sy_engine *eng, uint32_t route, struct gated *g,
		    uint64_t base, unsigned refusals)
{
	sy_msg *refused;
	int rc;

	hold(eng, route, g, base);
	cr_assert_eq(fill(eng, route, base + 1, LIMIT, &rc, &refused), LIMIT);
	for (unsigned i = 0; i < refusals; i++) {
		sy_msg *m = msg_new(eng, base + 1 + LIMIT + i);

		cr_assert_eq(sy_send(eng, route, m), -ENOBUFS);
		sy_msg_free(m);
	}
}

Test(backpressure_callback, fires_once_per_crossing_each_way)
{
	struct bp_events ev = { 0 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, &ev);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_REJECT, 0);

	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t round = 1; round <= 2; round++) {
		congest(eng, route, &g, round * 100, 7);
		cr_expect_eq(atomic_load(&ev.on[1]), round,
			     "round %llu: congested reported %llu times",
			     (unsigned long long)round,
			     (unsigned long long)atomic_load(&ev.on[1]));
		cr_expect_eq(atomic_load(&ev.off[1]), round - 1);
		atomic_store(&g.released, round);
		cr_assert(t_wait_u64(&g.handled, round * (1 + LIMIT), WAIT_MS));
		cr_assert(t_wait_u64(&ev.off[1], round, WAIT_MS),
			  "round %llu: the drained ring was never reported",
			  (unsigned long long)round);
		cr_expect_eq(atomic_load(&ev.on[1]), round);
	}
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&ev.on[1]), 2);
	cr_expect_eq(atomic_load(&ev.off[1]), 2);
	cr_expect_eq(atomic_load(&ev.on[0]), 0);
	cr_expect_eq(atomic_load(&ev.off[0]), 0);
	sy_engine_destroy(eng);
}

Test(backpressure_callback, silent_below_the_threshold)
{
	struct bp_events ev = { 0 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, &ev);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_REJECT, 0);
	sy_msg *refused;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	cr_assert_eq(fill(eng, route, 1, LIMIT - 1, &rc, &refused), LIMIT - 1);
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, LIMIT, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&ev.on[1]), 0);
	cr_expect_eq(atomic_load(&ev.off[1]), 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* no threshold: a full ring                                           */
/* ------------------------------------------------------------------ */

Test(backpressure_off, full_ring_refuses_with_eagain_and_loses_nothing)
{
	enum { CAP = RING_SIZE - 1, BURST = 4 };
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, NULL, NULL);
	uint32_t sid = server_new(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_OFF, 0);
	sy_msg *msgs[BURST], *refused;
	uint64_t end = t_now_ms() + WAIT_MS;
	struct sy_stats st;
	unsigned n;
	int rc;

	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	n = fill(eng, route, 1, 2 * CAP, &rc, &refused);
	cr_assert_eq(n, CAP, "%u accepted before the ring was full, want %d",
		     n, CAP);
	cr_assert_eq(rc, -EAGAIN, "refused with %d (%s)", rc, sy_strerror(rc));
	expect_owned(refused, 1 + CAP);
	for (unsigned i = 0; i < BURST; i++)
		msgs[i] = msg_new(eng, 200 + i);
	cr_assert_eq(sy_send_burst(eng, route, msgs, BURST), -EAGAIN);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_full, 1 + BURST);
	cr_expect_eq(st.rejected_backpressure, 0);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + CAP, WAIT_MS));
	cr_assert_eq(t_send_retry(eng, route, refused, WAIT_MS), 0);
	for (unsigned done = 0; done < BURST;) {
		rc = sy_send_burst(eng, route, msgs + done, BURST - done);
		cr_assert(rc > 0 || rc == -EAGAIN, "sy_send_burst: %d", rc);
		cr_assert(rc > 0 || t_now_ms() < end, "the ring never drained");
		if (rc > 0)
			done += (unsigned)rc;
		else
			sched_yield();
	}
	cr_assert(t_wait_u64(&g.handled, 2 + CAP + BURST, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_each_once(&g, 0, 2 + CAP);
	expect_each_once(&g, 200, BURST);
	expect_accounting(eng, 2 + CAP + BURST, 2 + CAP + BURST, 0);
	sy_engine_destroy(eng);
}
