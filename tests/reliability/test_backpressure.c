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
 * sy_msg_send() or per sy_msg_send_burst() chunk. Where time matters (SY_BP_BLOCK)
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

#include "tests/fixture.h"

/* Rounds of 20 us sleeps while the test checks that something does not
 * happen. */
#define QUIET_ROUNDS 2000u

#define RING_SIZE 64u
/* bp_high 0.5 of the 63 entries a ring of 64 holds: ceil(31.5) entries. */
#define BP_HIGH 0.5
#define LIMIT 32u

/* ------------------------------------------------------------------ */
/* Rig: an engine with small rings, gated servers, counted callbacks   */
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

static sy_engine *engine_new(struct t_clock *clock, struct bp_events *events)
{
	struct sy_config cfg;

	t_config(&cfg, 2, clock);
	cfg.ring_size = RING_SIZE;
	if (events) {
		cfg.on_backpressure = count_backpressure;
		cfg.callback_ctx = events;
	}
	return t_create(&cfg);
}

/* A route over @p n servers with backpressure @p mode at BP_HIGH. */
static uint32_t route_new(sy_engine *eng, const char *name, const char *policy,
			  const uint32_t *servers, unsigned n,
			  enum sy_backpressure mode, uint64_t block_ns)
{
	struct sy_route_opts ro = {
		.policy = policy,
		.backpressure = mode,
		.bp_high = mode == SY_BP_OFF ? 0 : BP_HIGH,
		.bp_block_ns = block_ns,
	};

	return t_add_route(eng, name, ro, servers, n);
}

/*
 * A started engine with one gated server "slow" on worker 1 and a direct
 * route to it in mode @p mode, whose handler holds blocker 0: every later
 * send to @p *route stays in this thread's ring until the test releases
 * the blocker.
 */
static sy_engine *held_rig(struct t_server *g, enum sy_backpressure mode,
			   struct bp_events *events, uint32_t *sid,
			   uint32_t *route)
{
	sy_engine *eng = engine_new(NULL, events);

	*sid = t_add_counter(eng, "slow", g, 1);
	*route = route_new(eng, "slow", "direct", sid, 1, mode, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_hold(eng, *route, g, 0);
	return eng;
}

/* Let every blocker of @p g go, wait until it ran @p handled times, stop. */
static void release_and_stop(sy_engine *eng, struct t_server *g,
			     uint64_t handled)
{
	atomic_store(&g->released, atomic_load(&g->held));
	cr_assert(t_wait_u64(&g->handled, handled, T_WAIT_MS),
		  "%llu handler runs of %llu",
		  (unsigned long long)atomic_load(&g->handled),
		  (unsigned long long)handled);
	cr_assert_eq(sy_engine_stop(eng), 0);
}

/* The message is intact and still the caller's to read. */
static void expect_owned(sy_msg *m, uint64_t tag)
{
	cr_expect_eq(sy_msg_tag(m), tag);
	cr_expect_eq(t_msg_value(m), tag);
	cr_expect_eq(sy_msg_size(m), sizeof(tag));
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
		sy_msg *m = t_msg_try(eng, first + n);

		if (!m) {
			*rc = -ENOMEM;
			break;
		}
		*rc = sy_msg_send(eng, route, m);
		if (*rc) {
			*refused = m;
			break;
		}
		n++;
	}
	return n;
}

/* fill() exactly @p n messages, none refused. */
static void fill_n(sy_engine *eng, uint32_t route, uint64_t first, unsigned n)
{
	sy_msg *refused;
	int rc;

	cr_assert_eq(fill(eng, route, first, n, &rc, &refused), n,
		     "refused with %d (%s)", rc, sy_strerror(rc));
}

/* Send a burst of @p n messages tagged @p first, ... into @p msgs; returns
 * what sy_msg_send_burst() returned. */
static int send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
		      uint64_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		msgs[i] = t_msg(eng, first + i);
	return sy_msg_send_burst(eng, route, msgs, n);
}

/* msgs[from..n) are the caller's, intact, tagged first + i; free them. */
static void expect_owned_and_free(sy_msg **msgs, unsigned from, unsigned n,
				  uint64_t first)
{
	for (unsigned i = from; i < n; i++) {
		expect_owned(msgs[i], first + i);
		sy_msg_free(msgs[i]);
	}
}

static void expect_never_ran(struct t_server *g, uint64_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_expect_eq(atomic_load(&g->runs[first + i]), 0, "id %llu ran",
			     (unsigned long long)(first + i));
}

/* ------------------------------------------------------------------ */
/* reject                                                              */
/* ------------------------------------------------------------------ */

Test(reliability_backpressure, reject_refuses_sends_past_the_threshold_and_they_stay_the_callers)
{
	struct t_server g = { 0 };
	struct sy_stats st;
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_REJECT, NULL, &sid, &route);
	sy_msg *refused;
	unsigned n;
	int rc;

	n = fill(eng, route, 1, 2 * LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT, "%u sends accepted before the refusal, want %u",
		     n, LIMIT);
	cr_assert_eq(rc, -ENOBUFS, "refused with %d (%s)", rc, sy_strerror(rc));
	cr_assert_not_null(refused);
	expect_owned(refused, 1 + LIMIT);
	for (unsigned i = 0; i < 9; i++) {
		sy_msg *m = t_msg(eng, 500 + i);

		cr_assert_eq(sy_msg_send(eng, route, m), -ENOBUFS);
		expect_owned(m, 500 + i);
		sy_msg_free(m);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 10);
	cr_expect_eq(st.rejected_full, 0);
	cr_expect_eq(st.accepted, 1 + LIMIT);

	/* Once the ring drains the refused message goes, as its owner sends it. */
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + LIMIT, T_WAIT_MS));
	cr_assert_eq(t_send_retry(eng, route, refused, T_WAIT_MS), 0);
	release_and_stop(eng, &g, 2 + LIMIT);
	t_expect_each_once(&g, 0, 2 + LIMIT);
	expect_never_ran(&g, 500, 9);
	t_expect_accounting(eng, 2 + LIMIT, 2 + LIMIT, 0);
	sy_engine_destroy(eng);
}

Test(reliability_backpressure, reject_refuses_a_burst_whole_per_ring_entry_in_its_order)
{
	enum { BURST = 40, SMALL = 5 };
	struct t_server g = { 0 };
	sy_msg *msgs[BURST], *small[SMALL];
	struct sy_stats st;
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_REJECT, NULL, &sid, &route);
	int rc;

	fill_n(eng, route, 1, LIMIT - 1);

	/* One entry below the threshold: the first chunk of 32 messages takes
	 * the last entry, the rest of the burst is refused. */
	rc = send_burst(eng, route, msgs, 100, BURST);
	cr_assert_eq(rc, 32, "sy_msg_send_burst accepted %d of %d", rc, BURST);
	expect_owned_and_free(msgs, 32, BURST, 100);
	cr_assert_eq(send_burst(eng, route, small, 200, SMALL), -ENOBUFS);
	expect_owned_and_free(small, 0, SMALL, 200);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, (BURST - 32) + SMALL);

	release_and_stop(eng, &g, LIMIT + 32);
	t_expect_each_once(&g, 0, LIMIT);
	t_expect_each_once(&g, 100, 32);
	expect_never_ran(&g, 100 + 32, BURST - 32);
	t_expect_accounting(eng, LIMIT + 32, LIMIT + 32, 0);
	sy_engine_destroy(eng);
}

Test(reliability_backpressure, reject_lets_a_burst_over_two_workers_take_the_uncongested_half)
{
	enum { BURST = 8 };
	struct t_server slow = { 0 }, fast = { 0 };
	sy_engine *eng = engine_new(NULL, NULL);
	uint32_t sids[2], direct, route;
	sy_msg *msgs[BURST];
	int rc;

	sids[0] = t_add_counter(eng, "slow", &slow, 0);
	sids[1] = t_add_counter(eng, "fast", &fast, 1);
	direct = route_new(eng, "to-slow", "direct", &sids[0], 1, SY_BP_REJECT, 0);
	route = route_new(eng, "both", "round_robin", sids, 2, SY_BP_REJECT, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_hold(eng, direct, &slow, 0);
	fill_n(eng, direct, 1, LIMIT);

	/* round_robin from this thread's first pick: even ids to the slow
	 * server (congested), odd ids to the fast one. */
	rc = send_burst(eng, route, msgs, 100, BURST);
	cr_assert_eq(rc, BURST / 2, "sy_msg_send_burst accepted %d", rc);
	for (unsigned i = 0; i < BURST / 2; i++) {
		expect_owned(msgs[BURST / 2 + i], 100 + 2 * i);
		sy_msg_free(msgs[BURST / 2 + i]);
	}
	cr_assert(t_wait_u64(&fast.handled, BURST / 2, T_WAIT_MS));
	release_and_stop(eng, &slow, 1 + LIMIT);
	for (unsigned i = 0; i < BURST; i++)
		cr_expect_eq(atomic_load(&fast.runs[100 + i]), i % 2,
			     "id %u ran %u times on the fast server", 100 + i,
			     atomic_load(&fast.runs[100 + i]));
	t_expect_accounting(eng, 1 + LIMIT + BURST / 2, 1 + LIMIT + BURST / 2, 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* spill                                                               */
/* ------------------------------------------------------------------ */

/* failover over [slow on worker 0, fast on worker 1]: everything goes to
 * the slow server until its ring is past the threshold. The slow server
 * holds blocker 0. */
static sy_engine *spill_rig(struct t_server *slow, struct t_server *fast,
			    uint32_t *route)
{
	sy_engine *eng = engine_new(NULL, NULL);
	uint32_t sids[2];

	sids[0] = t_add_counter(eng, "slow", slow, 0);
	sids[1] = t_add_counter(eng, "fast", fast, 1);
	*route = route_new(eng, "spill", "failover", sids, 2, SY_BP_SPILL, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_hold(eng, *route, slow, 0);
	return eng;
}

Test(reliability_backpressure, spill_sends_past_the_threshold_to_the_other_server)
{
	enum { EXTRA = 20 };
	struct t_server slow = { 0 }, fast = { 0 };
	struct sy_stats st;
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);

	fill_n(eng, route, 1, LIMIT + EXTRA);
	cr_assert(t_wait_u64(&fast.handled, EXTRA, T_WAIT_MS));
	cr_expect_eq(atomic_load(&slow.handled), 0);
	release_and_stop(eng, &slow, 1 + LIMIT);
	t_expect_each_once(&slow, 0, 1 + LIMIT);
	t_expect_each_once(&fast, 1 + LIMIT, EXTRA);
	cr_expect_eq(atomic_load(&fast.handled), EXTRA);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_backpressure, 0);
	t_expect_accounting(eng, 1 + LIMIT + EXTRA, 1 + LIMIT + EXTRA, 0);
	sy_engine_destroy(eng);
}

Test(reliability_backpressure, spill_sends_a_burst_past_the_threshold_to_the_other_server_once)
{
	enum { BURST = 20 };
	struct t_server slow = { 0 }, fast = { 0 };
	sy_msg *msgs[BURST];
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);
	int rc;

	fill_n(eng, route, 1, LIMIT);
	rc = send_burst(eng, route, msgs, 100, BURST);
	cr_assert_eq(rc, BURST, "sy_msg_send_burst accepted %d (%s)", rc,
		     sy_strerror(rc));
	cr_assert(t_wait_u64(&fast.handled, BURST, T_WAIT_MS));
	release_and_stop(eng, &slow, 1 + LIMIT);
	t_expect_each_once(&fast, 100, BURST);
	cr_expect_eq(atomic_load(&fast.handled), BURST,
		     "the fast server ran %llu times for %d messages",
		     (unsigned long long)atomic_load(&fast.handled), BURST);
	t_expect_accounting(eng, 1 + LIMIT + BURST, 1 + LIMIT + BURST, 0);
	sy_engine_destroy(eng);
}

Test(reliability_backpressure, spill_refuses_once_every_server_is_past_the_threshold)
{
	struct t_server slow = { 0 }, fast = { 0 };
	sy_msg *refused;
	uint32_t route;
	sy_engine *eng = spill_rig(&slow, &fast, &route);
	unsigned n;
	int rc;

	fill_n(eng, route, 1, LIMIT);
	/* The next message spills to the other server: make it a blocker. */
	t_hold(eng, route, &fast, 1000);
	n = fill(eng, route, 1 + LIMIT, 2 * LIMIT, &rc, &refused);
	cr_assert_eq(n, LIMIT, "%u spilled before the refusal, want %u", n, LIMIT);
	cr_assert_eq(rc, -ENOBUFS);
	expect_owned(refused, 1 + 2 * LIMIT);
	sy_msg_free(refused);
	atomic_store(&fast.released, 1);
	cr_assert(t_wait_u64(&fast.handled, 1 + LIMIT, T_WAIT_MS));
	release_and_stop(eng, &slow, 1 + LIMIT);
	t_expect_each_once(&slow, 0, 1 + LIMIT);
	t_expect_each_once(&fast, 1 + LIMIT, LIMIT);
	t_expect_accounting(eng, 2 + 2 * LIMIT, 2 + 2 * LIMIT, 0);
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
	struct t_server *g;
	sy_msg *msgs[8];
	unsigned n;               /* 1: sy_msg_send(), more: sy_msg_send_burst() */
	unsigned filled;          /* accepted while filling */
	_Atomic uint64_t ready;   /* the ring is at the threshold */
	_Atomic uint64_t done;
	int rc;
};

static void *blocked_send_main(void *arg)
{
	struct blocked_send *b = arg;
	sy_msg *blocker = t_msg_try(b->eng, T_HOLD), *refused = NULL;
	int rc = -ENOMEM;

	if (blocker) {
		rc = sy_msg_send(b->eng, b->route, blocker);
		if (rc)
			sy_msg_free(blocker);
	}
	if (rc == 0 && t_wait_u64(&b->g->held, 1, T_WAIT_MS))
		b->filled = fill(b->eng, b->route, 1, LIMIT, &rc, &refused);
	sy_msg_free(refused);
	/* Publishes filled to the test thread's load of ready. */
	atomic_store(&b->ready, 1);
	if (b->filled == LIMIT) {
		if (b->n == 1)
			rc = sy_msg_send(b->eng, b->route, b->msgs[0]);
		else
			rc = sy_msg_send_burst(b->eng, b->route, b->msgs, b->n);
	}
	b->rc = rc;
	/* Publishes rc to the test thread's load of done. */
	atomic_store(&b->done, 1);
	return NULL;
}

/* Give the sender plenty of chances to return; it must still be waiting. */
static void expect_still_blocked(struct blocked_send *b)
{
	for (unsigned i = 0; i < QUIET_ROUNDS && !atomic_load(&b->done); i++)
		t_sleep_us(20);
	cr_expect_eq(atomic_load(&b->done), 0, "the send returned %d", b->rc);
}

/* A BLOCK route to a gated server, on a fake clock, and a blocked sender. */
struct block_rig {
	struct t_clock clock;
	struct t_server g;
	struct blocked_send b;
	pthread_t t;
	sy_engine *eng;
};

static int blocked_join(struct blocked_send *b, pthread_t t)
{
	bool done = t_wait_u64(&b->done, 1, T_WAIT_MS);

	if (!done)
		atomic_store(&b->g->released, 1);
	cr_assert(done, "the blocked send never returned");
	pthread_join(t, NULL);
	return b->rc;
}

/*
 * Clock at 1 s; a BLOCK route to a gated server; @p n messages to send,
 * ids 900 and up, due @p due_in after the start (0: no deadline). Starts
 * the sender and returns once its ring is at the threshold and its send
 * has had plenty of chances to return.
 */
static void block_start(struct block_rig *r, unsigned n, uint64_t due_in)
{
	struct blocked_send *b = &r->b;
	uint32_t sid;

	memset(r, 0, sizeof(*r));
	r->eng = engine_new(&r->clock, NULL);
	atomic_store(&r->clock.ns, 1000000000ull);
	sid = t_add_counter(r->eng, "slow", &r->g, 1);
	b->eng = r->eng;
	b->g = &r->g;
	b->n = n;
	b->route = route_new(r->eng, "slow", "direct", &sid, 1, SY_BP_BLOCK, 1000);
	for (unsigned i = 0; i < n; i++) {
		b->msgs[i] = t_msg(r->eng, 900 + i);
		if (due_in)
			sy_msg_set_deadline(b->msgs[i],
					    atomic_load(&r->clock.ns) + due_in);
	}
	cr_assert_eq(sy_engine_start(r->eng), 0);
	cr_assert_eq(pthread_create(&r->t, NULL, blocked_send_main, b), 0);
	cr_assert(t_wait_u64(&b->ready, 1, T_WAIT_MS));
	if (b->filled != LIMIT) {
		atomic_store(&r->g.released, 1);
		pthread_join(r->t, NULL);
		cr_assert_fail("the sender filled %u entries, want %u", b->filled,
			       LIMIT);
	}
	expect_still_blocked(b);
}

/* The blocked send failed once the clock moved by @p ns; its messages are
 * still the caller's and counted as refusals; none of them ever ran. */
static void expect_timed_out(struct block_rig *r, uint64_t ns)
{
	struct sy_stats st;

	atomic_fetch_add(&r->clock.ns, ns);
	cr_assert_eq(blocked_join(&r->b, r->t), -ENOBUFS);
	expect_owned_and_free(r->b.msgs, 0, r->b.n, 900);
	sy_engine_stats(r->eng, &st);
	cr_expect_eq(st.rejected_backpressure, r->b.n, "%u refused messages "
		     "counted as %llu refusals", r->b.n,
		     (unsigned long long)st.rejected_backpressure);
	release_and_stop(r->eng, &r->g, 1 + LIMIT);
	expect_never_ran(&r->g, 900, r->b.n);
	t_expect_accounting(r->eng, 1 + LIMIT, 1 + LIMIT, 0);
	sy_engine_destroy(r->eng);
}

/* The blocked send went once the ring drained; nothing refused. */
static void expect_sent_on_drain(struct block_rig *r)
{
	struct blocked_send *b = &r->b;
	struct sy_stats st;

	atomic_store(&r->g.released, 1);
	cr_assert_eq(blocked_join(b, r->t), b->n == 1 ? 0 : (int)b->n);
	release_and_stop(r->eng, &r->g, 1 + LIMIT + b->n);
	t_expect_each_once(&r->g, 900, b->n);
	sy_engine_stats(r->eng, &st);
	cr_expect_eq(st.rejected_backpressure, 0, "a send that waited and went "
		     "counted %llu refusals",
		     (unsigned long long)st.rejected_backpressure);
	t_expect_accounting(r->eng, 1 + LIMIT + b->n, 1 + LIMIT + b->n, 0);
	sy_engine_destroy(r->eng);
}

Test(reliability_backpressure, block_send_fails_once_the_clock_passes_bp_block_ns)
{
	struct block_rig r;

	block_start(&r, 1, 0);
	expect_timed_out(&r, 1000);
}

Test(reliability_backpressure, block_send_with_a_deadline_waits_until_the_deadline)
{
	struct block_rig r;

	block_start(&r, 1, 5000);
	/* Past bp_block_ns, not yet at the deadline: still waiting. */
	atomic_fetch_add(&r.clock.ns, 2000);
	expect_still_blocked(&r.b);
	expect_timed_out(&r, 3000);
}

Test(reliability_backpressure, block_send_succeeds_when_the_ring_drains_in_time)
{
	struct block_rig r;

	block_start(&r, 1, 0);
	expect_sent_on_drain(&r);
}

Test(reliability_backpressure, block_burst_goes_whole_when_the_ring_drains)
{
	struct block_rig r;

	block_start(&r, 5, 0);
	expect_sent_on_drain(&r);
}

Test(reliability_backpressure, block_burst_fails_whole_once_the_clock_passes)
{
	struct block_rig r;

	block_start(&r, 5, 0);
	expect_timed_out(&r, 1000);
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
	sy_dlq_filter_init(&f);
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

Test(reliability_backpressure, dead_letter_accepts_sends_past_the_threshold_into_the_dlq)
{
	enum { EXTRA = 10 };
	struct t_server g = { 0 };
	struct sy_accounting a;
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_DEAD_LETTER, NULL, &sid, &route);
	sy_msg *reply = NULL, *req;

	fill_n(eng, route, 1, LIMIT + EXTRA);
	expect_backpressure_letters(eng, route, sid, 1 + LIMIT, EXTRA);

	/* A call's caller waits for its reply: it is refused, not dead-lettered. */
	req = t_msg(eng, 800);
	cr_assert_eq(sy_msg_call(eng, route, req, &reply, 1000000), -ENOBUFS);
	expect_owned(req, 800);
	sy_msg_free(req);

	release_and_stop(eng, &g, 1 + LIMIT);
	t_expect_each_once(&g, 0, 1 + LIMIT);
	expect_never_ran(&g, 1 + LIMIT, EXTRA);
	t_expect_accounting(eng, 1 + LIMIT + EXTRA, 1 + LIMIT, EXTRA);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_BACKPRESSURE], EXTRA);
	sy_engine_destroy(eng);
}

Test(reliability_backpressure, dead_letter_accepts_a_burst_past_the_threshold_into_the_dlq)
{
	enum { BURST = 10 };
	struct t_server g = { 0 };
	sy_msg *msgs[BURST];
	struct sy_stats st;
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_DEAD_LETTER, NULL, &sid, &route);

	fill_n(eng, route, 1, LIMIT);
	cr_assert_eq(send_burst(eng, route, msgs, 100, BURST), BURST);
	expect_backpressure_letters(eng, route, sid, 100, BURST);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, 1 + LIMIT + BURST);
	cr_expect_eq(st.rejected_backpressure, 0);

	release_and_stop(eng, &g, 1 + LIMIT);
	expect_never_ran(&g, 100, BURST);
	t_expect_accounting(eng, 1 + LIMIT + BURST, 1 + LIMIT, BURST);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* on_backpressure                                                     */
/* ------------------------------------------------------------------ */

Test(reliability_backpressure, callback_fires_once_per_crossing_each_way)
{
	struct bp_events ev = { 0 };
	struct t_server g = { 0 };
	sy_engine *eng = engine_new(NULL, &ev);
	uint32_t sid = t_add_counter(eng, "slow", &g, 1);
	uint32_t route = route_new(eng, "slow", "direct", &sid, 1, SY_BP_REJECT, 0);

	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t round = 1; round <= 2; round++) {
		uint64_t base = round * 100;

		/* Hold the server, fill its ring and try 7 more sends. */
		t_hold(eng, route, &g, base);
		fill_n(eng, route, base + 1, LIMIT);
		for (unsigned i = 0; i < 7; i++) {
			sy_msg *m = t_msg(eng, base + 1 + LIMIT + i);

			cr_assert_eq(sy_msg_send(eng, route, m), -ENOBUFS);
			sy_msg_free(m);
		}
		cr_expect_eq(atomic_load(&ev.on[1]), round,
			     "round %llu: congested reported %llu times",
			     (unsigned long long)round,
			     (unsigned long long)atomic_load(&ev.on[1]));
		cr_expect_eq(atomic_load(&ev.off[1]), round - 1);
		atomic_store(&g.released, round);
		cr_assert(t_wait_u64(&g.handled, round * (1 + LIMIT), T_WAIT_MS));
		cr_assert(t_wait_u64(&ev.off[1], round, T_WAIT_MS),
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

Test(reliability_backpressure, callback_is_silent_below_the_threshold)
{
	struct bp_events ev = { 0 };
	struct t_server g = { 0 };
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_REJECT, &ev, &sid, &route);

	fill_n(eng, route, 1, LIMIT - 1);
	release_and_stop(eng, &g, LIMIT);
	cr_expect_eq(atomic_load(&ev.on[1]), 0);
	cr_expect_eq(atomic_load(&ev.off[1]), 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* no threshold: a full ring                                           */
/* ------------------------------------------------------------------ */

Test(reliability_backpressure, off_full_ring_refuses_with_eagain_and_loses_nothing)
{
	enum { CAP = RING_SIZE - 1, BURST = 4 };
	struct t_server g = { 0 };
	sy_msg *msgs[BURST], *refused;
	uint64_t end = t_now_ms() + T_WAIT_MS;
	struct sy_stats st;
	uint32_t sid, route;
	sy_engine *eng = held_rig(&g, SY_BP_OFF, NULL, &sid, &route);
	unsigned n;
	int rc;

	n = fill(eng, route, 1, 2 * CAP, &rc, &refused);
	cr_assert_eq(n, CAP, "%u accepted before the ring was full, want %d",
		     n, CAP);
	cr_assert_eq(rc, -EAGAIN, "refused with %d (%s)", rc, sy_strerror(rc));
	expect_owned(refused, 1 + CAP);
	cr_assert_eq(send_burst(eng, route, msgs, 200, BURST), -EAGAIN);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_full, 1 + BURST);
	cr_expect_eq(st.rejected_backpressure, 0);

	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1 + CAP, T_WAIT_MS));
	cr_assert_eq(t_send_retry(eng, route, refused, T_WAIT_MS), 0);
	for (unsigned done = 0; done < BURST;) {
		rc = sy_msg_send_burst(eng, route, msgs + done, BURST - done);
		cr_assert(rc > 0 || rc == -EAGAIN, "sy_msg_send_burst: %d", rc);
		cr_assert(rc > 0 || t_now_ms() < end, "the ring never drained");
		if (rc > 0)
			done += (unsigned)rc;
		else
			sched_yield();
	}
	release_and_stop(eng, &g, 2 + CAP + BURST);
	t_expect_each_once(&g, 0, 2 + CAP);
	t_expect_each_once(&g, 200, BURST);
	t_expect_accounting(eng, 2 + CAP + BURST, 2 + CAP + BURST, 0);
	sy_engine_destroy(eng);
}
