/*
 * End-to-end tests of deadlines and call timeouts.
 *
 * A message's deadline is in the engine's clock; the tests give the engine a
 * fake clock that only the test thread moves, so "expired" never depends on
 * how fast the machine is. A worker that takes a message whose deadline has
 * passed dead-letters it (reason timeout) instead of running its handler.
 * sy_call() times out in real time; a reply that arrives after the call has
 * returned is dropped and counted.
 *
 * Handlers run on worker threads, where Criterion's assertions must not be
 * called: they count what they see (atomics) and the test thread asserts.
 * Message ids travel in the tag; the handler counts the runs of every id.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define WAIT_MS 60000u
/* sy_call() timeouts: long where a reply must come, short where none may. */
#define CALL_LONG_NS (60ull * 1000 * 1000 * 1000)
#define CALL_SHORT_NS (50ull * 1000 * 1000)

#define T0 10000000000ull  /* the fake clock's start: 10 s */
#define HOLD (1ull << 63)  /* tag bit: the handler waits on the gate */
#define REPLY (1ull << 62) /* tag bit: the handler answers in place */
#define MAX_IDS 256u

/* A server whose blockers wait until the test releases them, in order. */
struct gated {
	_Atomic uint64_t held;      /* blockers that have started */
	_Atomic uint64_t released;  /* blockers allowed to finish */
	_Atomic uint64_t handled;   /* handler runs */
	_Atomic uint64_t replied;   /* sy_reply() calls that succeeded */
	_Atomic uint64_t reply_failed;
	_Atomic uint32_t runs[MAX_IDS];
	_Atomic uint32_t attempts[MAX_IDS]; /* sy_msg_attempts() in the last run */
};

static int gated_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct gated *g = ctx;
	uint64_t tag = sy_msg_tag(msg), id = tag & ~(HOLD | REPLY);
	int rc = 0;

	(void)eng;
	if (tag & HOLD) {
		t_gate_wait(&g->held, &g->released, WAIT_MS);
	}
	if (id < MAX_IDS) {
		atomic_store(&g->attempts[id], sy_msg_attempts(msg));
		atomic_fetch_add(&g->runs[id], 1);
	}
	if (tag & REPLY) {
		rc = sy_reply(msg, msg);
		atomic_fetch_add(rc ? &g->reply_failed : &g->replied, 1);
	}
	atomic_fetch_add(&g->handled, 1);
	return rc;
}

static sy_engine *engine_new(unsigned workers, struct t_clock *clock)
{
	struct sy_config cfg;
	sy_engine *eng = NULL;

	if (clock)
		atomic_init(&clock->ns, T0);
	t_config(&cfg, workers, clock);
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "sy_engine_create: %s",
		     sy_last_error());
	return eng;
}

static sy_msg *msg_new(sy_engine *eng, uint64_t tag, uint64_t deadline)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(tag));

	cr_assert_not_null(m, "sy_msg_alloc: %s", sy_last_error());
	memcpy(sy_msg_data(m), &tag, sizeof(tag));
	sy_msg_set_tag(m, tag);
	sy_msg_set_deadline(m, deadline);
	cr_assert_eq(sy_msg_deadline(m), deadline);
	return m;
}

/* Send a blocker and wait until the handler holds it. */
static void hold(sy_engine *eng, uint32_t route, struct gated *g, uint64_t id)
{
	uint64_t before = atomic_load(&g->held);

	cr_assert_eq(sy_send(eng, route, msg_new(eng, id | HOLD, 0)), 0);
	cr_assert(t_wait_u64(&g->held, before + 1, WAIT_MS),
		  "the blocker never reached its handler");
}

/* What a drain hands over, checked by the test thread afterwards. */
struct drained {
	unsigned n;
	struct sy_dead_letter dl[16];
	uint64_t payload[16];
};

static void take_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			sy_msg *msg, void *ctx)
{
	struct drained *d = ctx;

	(void)eng;
	if (d->n < 16) {
		d->dl[d->n] = *dl;
		memcpy(&d->payload[d->n], sy_msg_data(msg), sizeof(uint64_t));
	}
	d->n++;
	sy_msg_free(msg);
}

/* Drain the queue and check it held exactly the timed-out messages @p tags. */
static void expect_timed_out(sy_engine *eng, uint32_t route, uint32_t server,
			     const uint64_t *tags, unsigned n)
{
	struct drained d = { 0 };
	struct sy_dl_filter f;

	sy_dl_filter_init(&f);
	f.reasons = 1u << SY_DL_TIMEOUT;
	cr_expect_eq(sy_dlq_count(eng, &f), n);
	cr_expect_eq(sy_dlq_count(eng, NULL), n);
	cr_assert_eq(sy_dlq_drain(eng, NULL, take_letter, &d), (int)n);
	cr_assert_eq(d.n, n);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_eq(d.dl[i].reason, SY_DL_TIMEOUT);
		cr_expect_eq(d.dl[i].tag, tags[i]);
		cr_expect_eq(d.payload[i], tags[i]);
		cr_expect_eq(d.dl[i].attempts, 0, "attempts %u",
			     d.dl[i].attempts);
		cr_expect_eq(d.dl[i].route, route);
		cr_expect_eq(d.dl[i].server, server);
	}
	cr_expect_eq(sy_dlq_count(eng, NULL), 0);
}

static void expect_accounting(sy_engine *eng, uint64_t accepted,
			      uint64_t delivered, uint64_t timed_out)
{
	struct sy_accounting a;

	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, accepted, "accepted %llu, want %llu",
		     (unsigned long long)a.accepted, (unsigned long long)accepted);
	cr_expect_eq(a.delivered, delivered, "delivered %llu, want %llu",
		     (unsigned long long)a.delivered, (unsigned long long)delivered);
	cr_expect_eq(a.dead_lettered, timed_out);
	cr_expect_eq(a.dead_lettered_by[SY_DL_TIMEOUT], timed_out);
	cr_expect_eq(a.evicted, 0);
	cr_expect_eq(a.in_flight, 0);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

Test(deadline_expiry, expired_message_is_dead_lettered_and_never_handled)
{
	struct t_clock clock;
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route = t_direct(eng, "svc", gated_handler, &g, 1, &sid);
	const uint64_t expired[] = { 1, 4 };

	cr_assert_neq(route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 1, T0 - 1)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 2, T0 + 1)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 3, 0)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 4, 1)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 5, UINT64_MAX)), 0);
	cr_assert(t_wait_u64(&g.handled, 3, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&g.runs[1]), 0, "an expired message ran");
	cr_expect_eq(atomic_load(&g.runs[4]), 0, "an expired message ran");
	cr_expect_eq(atomic_load(&g.runs[2]), 1);
	cr_expect_eq(atomic_load(&g.runs[3]), 1);
	cr_expect_eq(atomic_load(&g.runs[5]), 1);
	cr_expect_eq(atomic_load(&g.handled), 3);
	expect_accounting(eng, 5, 3, 2);
	expect_timed_out(eng, route, sid, expired, 2);
	sy_engine_destroy(eng);
}

Test(deadline_expiry, deadline_that_passes_while_queued_expires_the_message)
{
	struct t_clock clock;
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route = t_direct(eng, "svc", gated_handler, &g, 1, &sid);
	const uint64_t expired[] = { 1, 3 };

	cr_assert_neq(route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	hold(eng, route, &g, 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 1, T0 + 1000)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 2, T0 + 1000000)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 3, T0 + 2000)), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 4, 0)), 0);
	atomic_store(&clock.ns, T0 + 2001);
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 3, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&g.runs[0]), 1);
	cr_expect_eq(atomic_load(&g.runs[1]), 0, "an expired message ran");
	cr_expect_eq(atomic_load(&g.runs[2]), 1);
	cr_expect_eq(atomic_load(&g.runs[3]), 0, "an expired message ran");
	cr_expect_eq(atomic_load(&g.runs[4]), 1);
	expect_accounting(eng, 5, 3, 2);
	expect_timed_out(eng, route, sid, expired, 2);
	sy_engine_destroy(eng);
}

Test(deadline_expiry, burst_members_expire_one_by_one)
{
	enum { N = 8 };
	struct t_clock clock;
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route = t_direct(eng, "svc", gated_handler, &g, 0, &sid);
	const uint64_t expired[] = { 10, 12, 14, 16 };
	sy_msg *msgs[N];

	cr_assert_neq(route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (unsigned i = 0; i < N; i++)
		msgs[i] = msg_new(eng, 10 + i, i % 2 ? T0 + 1 : T0 - 1);
	cr_assert_eq(sy_send_burst(eng, route, msgs, N), N);
	cr_assert(t_wait_u64(&g.handled, N / 2, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	for (unsigned i = 0; i < N; i++)
		cr_expect_eq(atomic_load(&g.runs[10 + i]), i % 2, "id %u ran %u times",
			     10 + i, atomic_load(&g.runs[10 + i]));
	expect_accounting(eng, N, N / 2, N / 2);
	expect_timed_out(eng, route, sid, expired, N / 2);
	sy_engine_destroy(eng);
}

Test(deadline_expiry, call_whose_deadline_has_passed_is_not_handled)
{
	struct t_clock clock;
	struct gated g = { 0 };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route = t_direct(eng, "svc", gated_handler, &g, 1, &sid);
	const uint64_t expired[] = { 1 | REPLY };
	sy_msg *reply = NULL;

	cr_assert_neq(route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_call(eng, route, msg_new(eng, 1 | REPLY, T0 - 1), &reply,
			     CALL_SHORT_NS), -ETIMEDOUT);
	cr_assert_eq(sy_call(eng, route, msg_new(eng, 2 | REPLY, T0 + 1), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | REPLY);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&g.runs[1]), 0, "the expired request ran");
	cr_expect_eq(atomic_load(&g.runs[2]), 1);
	expect_accounting(eng, 2, 1, 1);
	expect_timed_out(eng, route, sid, expired, 1);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Call timeouts                                                       */
/* ------------------------------------------------------------------ */

/* A call times out while its handler is held; the handler then answers. */
static sy_engine *late_reply(struct gated *g, uint32_t *route)
{
	sy_engine *eng = engine_new(1, NULL);
	sy_msg *reply = NULL;

	*route = t_direct(eng, "late", gated_handler, g, 0, NULL);
	cr_assert_neq(*route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_call(eng, *route, msg_new(eng, 1 | HOLD | REPLY, 0),
			     &reply, CALL_SHORT_NS), -ETIMEDOUT);
	cr_expect_null(reply);
	atomic_store(&g->released, 1);
	cr_assert(t_wait_u64(&g->handled, 1, WAIT_MS));
	return eng;
}

Test(deadline_call, late_reply_is_dropped_counted_and_freed)
{
	struct gated g = { 0 };
	struct sy_stats st;
	sy_msg *out[4], *reply = NULL;
	uint32_t route;
	sy_engine *eng = late_reply(&g, &route);

	cr_expect_eq(atomic_load(&g.replied), 1, "the late handler could not reply");
	cr_assert_eq(sy_poll_replies(eng, out, 4), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_dropped, 1);
	cr_expect_eq(st.replies_received, 0);

	/* The next call gets its own reply, not the stale one. */
	cr_assert_eq(sy_call(eng, route, msg_new(eng, 2 | REPLY, 0), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | REPLY);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_dropped, 1);
	cr_expect_eq(st.replies_received, 1);
	cr_expect_eq(st.requests, 2);
	expect_accounting(eng, 2, 2, 0);
	sy_engine_destroy(eng);
}

Test(deadline_call, late_reply_never_polled_is_freed_with_the_engine)
{
	struct gated g = { 0 };
	uint32_t route;
	sy_engine *eng = late_reply(&g, &route);

	cr_expect_eq(atomic_load(&g.replied), 1);
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_accounting(eng, 1, 1, 0);
	sy_engine_destroy(eng);
}

Test(deadline_call, late_reply_to_a_detached_caller_is_dropped)
{
	struct gated g = { 0 };
	sy_msg *reply = NULL;
	struct sy_accounting a;
	struct sy_stats st;
	uint32_t route;
	sy_engine *eng = engine_new(1, NULL);

	route = t_direct(eng, "late", gated_handler, &g, 0, NULL);
	cr_assert_neq(route, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_producer_attach(eng), 0);
	cr_assert_eq(sy_call(eng, route, msg_new(eng, 1 | HOLD | REPLY, 0),
			     &reply, CALL_SHORT_NS), -ETIMEDOUT);
	cr_assert_eq(sy_producer_detach(eng), 0);
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 1, WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	/* The handler's sy_reply() fails: its request stays its own, and it
	 * returns the error, so the request ends as a failed handler run. */
	cr_expect_eq(atomic_load(&g.reply_failed), 1);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_dropped, 1);
	cr_expect_eq(st.replies_received, 0);
	cr_expect_eq(st.handler_failed, 1);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 1);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], 1);
	cr_expect_eq(a.in_flight, 0);
	sy_engine_destroy(eng);
}
