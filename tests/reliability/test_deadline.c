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

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* sy_call() timeouts: long where a reply must come, short where none may. */
#define CALL_LONG_NS (60ull * 1000 * 1000 * 1000)
#define CALL_SHORT_NS (50ull * 1000 * 1000)

#define T0 10000000000ull  /* the fake clock's start: 10 s */

/* A message with id @p tag due at @p deadline (0: none). */
static sy_msg *msg_due(sy_engine *eng, uint64_t tag, uint64_t deadline)
{
	sy_msg *m = t_msg(eng, tag);

	sy_msg_set_deadline(m, deadline);
	cr_assert_eq(sy_msg_deadline(m), deadline);
	return m;
}

/* A started engine of @p workers workers (on @p clock where not NULL) with
 * one counting server "svc" on @p worker and a direct route to it. */
static sy_engine *svc_rig(unsigned workers, struct t_clock *clock,
			  struct t_server *g, int worker, uint32_t *sid,
			  uint32_t *route)
{
	sy_engine *eng = t_engine_at(workers, clock, T0);

	*route = t_direct(eng, "svc", t_server_handler, g, worker, sid);
	cr_assert_eq(sy_engine_start(eng), 0);
	return eng;
}

/* Send each of @p n messages: tags[i] due at due[i]. */
static void send_due(sy_engine *eng, uint32_t route, const uint64_t *tags,
		     const uint64_t *due, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(sy_send(eng, route, msg_due(eng, tags[i], due[i])), 0);
}

/* Ids @p first .. first + n - 1 ran @p want[i] times. */
static void expect_runs(struct t_server *g, uint64_t first,
			const uint32_t *want, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_expect_eq(atomic_load(&g->runs[first + i]), want[i],
			     "id %llu ran %u times, want %u",
			     (unsigned long long)(first + i),
			     atomic_load(&g->runs[first + i]), want[i]);
}

/* Drain the queue and check it held exactly the timed-out messages @p tags. */
static void expect_timed_out(sy_engine *eng, uint32_t route, uint32_t server,
			     const uint64_t *tags, unsigned n)
{
	struct sy_dl_filter f;
	struct t_letters l;

	sy_dl_filter_init(&f);
	f.reasons = 1u << SY_DL_TIMEOUT;
	cr_expect_eq(sy_dlq_count(eng, &f), n);
	cr_expect_eq(sy_dlq_count(eng, NULL), n);
	t_drain_letters(eng, &l);
	cr_assert_eq(l.n, n);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_eq(l.dl[i].reason, SY_DL_TIMEOUT);
		cr_expect_eq(l.dl[i].tag, tags[i]);
		cr_expect_eq(l.value[i], tags[i]);
		cr_expect_eq(l.dl[i].attempts, 0, "attempts %u", l.dl[i].attempts);
		cr_expect_eq(l.dl[i].route, route);
		cr_expect_eq(l.dl[i].server, server);
	}
	cr_expect_eq(sy_dlq_count(eng, NULL), 0);
}

/* The accounting: the dead letters are all timeouts, none evicted. */
static void expect_accounting(sy_engine *eng, uint64_t accepted,
			      uint64_t delivered, uint64_t timed_out)
{
	struct sy_accounting a;

	t_expect_accounting(eng, accepted, delivered, timed_out);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_TIMEOUT], timed_out);
	cr_expect_eq(a.evicted, 0);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

Test(reliability_deadline, expired_message_is_dead_lettered_and_never_handled)
{
	static const uint64_t tags[] = { 1, 2, 3, 4, 5 };
	static const uint64_t due[] = { T0 - 1, T0 + 1, 0, 1, UINT64_MAX };
	static const uint32_t runs[] = { 0, 1, 1, 0, 1 };
	const uint64_t expired[] = { 1, 4 };
	struct t_clock clock;
	struct t_server g = { 0 };
	uint32_t sid, route;
	sy_engine *eng = svc_rig(2, &clock, &g, 1, &sid, &route);

	send_due(eng, route, tags, due, 5);
	cr_assert(t_wait_u64(&g.handled, 3, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	expect_runs(&g, 1, runs, 5);
	cr_expect_eq(atomic_load(&g.handled), 3);
	expect_accounting(eng, 5, 3, 2);
	expect_timed_out(eng, route, sid, expired, 2);
	sy_engine_destroy(eng);
}

Test(reliability_deadline, deadline_that_passes_while_queued_expires_the_message)
{
	static const uint64_t tags[] = { 1, 2, 3, 4 };
	static const uint64_t due[] = { T0 + 1000, T0 + 1000000, T0 + 2000, 0 };
	static const uint32_t runs[] = { 1, 0, 1, 0, 1 };
	const uint64_t expired[] = { 1, 3 };
	struct t_clock clock;
	struct t_server g = { 0 };
	uint32_t sid, route;
	sy_engine *eng = svc_rig(2, &clock, &g, 1, &sid, &route);

	t_hold(eng, route, &g, 0);
	send_due(eng, route, tags, due, 4);
	atomic_store(&clock.ns, T0 + 2001);
	atomic_store(&g.released, 1);
	cr_assert(t_wait_u64(&g.handled, 3, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	expect_runs(&g, 0, runs, 5);
	expect_accounting(eng, 5, 3, 2);
	expect_timed_out(eng, route, sid, expired, 2);
	sy_engine_destroy(eng);
}

Test(reliability_deadline, burst_members_expire_one_by_one)
{
	enum { N = 8 };
	const uint64_t expired[] = { 10, 12, 14, 16 };
	struct t_clock clock;
	struct t_server g = { 0 };
	uint32_t sid, route;
	sy_engine *eng = svc_rig(2, &clock, &g, 0, &sid, &route);
	sy_msg *msgs[N];

	for (unsigned i = 0; i < N; i++)
		msgs[i] = msg_due(eng, 10 + i, i % 2 ? T0 + 1 : T0 - 1);
	cr_assert_eq(sy_send_burst(eng, route, msgs, N), N);
	cr_assert(t_wait_u64(&g.handled, N / 2, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	for (unsigned i = 0; i < N; i++)
		cr_expect_eq(atomic_load(&g.runs[10 + i]), i % 2, "id %u ran %u times",
			     10 + i, atomic_load(&g.runs[10 + i]));
	expect_accounting(eng, N, N / 2, N / 2);
	expect_timed_out(eng, route, sid, expired, N / 2);
	sy_engine_destroy(eng);
}

Test(reliability_deadline, call_whose_deadline_has_passed_is_not_handled)
{
	const uint64_t expired[] = { 1 | T_REPLY };
	struct t_clock clock;
	struct t_server g = { 0 };
	uint32_t sid, route;
	sy_engine *eng = svc_rig(2, &clock, &g, 1, &sid, &route);
	sy_msg *reply = NULL;

	cr_assert_eq(sy_call(eng, route, msg_due(eng, 1 | T_REPLY, T0 - 1), &reply,
			     CALL_SHORT_NS), -ETIMEDOUT);
	cr_assert_eq(sy_call(eng, route, msg_due(eng, 2 | T_REPLY, T0 + 1), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | T_REPLY);
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

/* A call times out while its handler is held; the handler then answers.
 * With @p detach, the caller attached itself and detaches in between. */
static sy_engine *late_reply(struct t_server *g, uint32_t *route, bool detach)
{
	uint32_t sid;
	sy_engine *eng = svc_rig(1, NULL, g, 0, &sid, route);
	sy_msg *reply = NULL;

	if (detach)
		cr_assert_eq(sy_producer_attach(eng), 0);
	cr_assert_eq(sy_call(eng, *route, msg_due(eng, 1 | T_HOLD | T_REPLY, 0),
			     &reply, CALL_SHORT_NS), -ETIMEDOUT);
	cr_expect_null(reply);
	if (detach)
		cr_assert_eq(sy_producer_detach(eng), 0);
	atomic_store(&g->released, 1);
	cr_assert(t_wait_u64(&g->handled, 1, T_WAIT_MS));
	return eng;
}

Test(reliability_deadline, late_reply_is_dropped_counted_and_freed)
{
	struct t_server g = { 0 };
	sy_msg *out[4], *reply = NULL;
	uint32_t route;
	sy_engine *eng = late_reply(&g, &route, false);

	cr_expect_eq(atomic_load(&g.replied), 1, "the late handler could not reply");
	cr_assert_eq(sy_poll_replies(eng, out, 4), 0);
	t_expect_replies(eng, 1, 0, 1);

	/* The next call gets its own reply, not the stale one. */
	cr_assert_eq(sy_call(eng, route, msg_due(eng, 2 | T_REPLY, 0), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | T_REPLY);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);
	t_expect_replies(eng, 2, 1, 1);
	expect_accounting(eng, 2, 2, 0);
	sy_engine_destroy(eng);
}

Test(reliability_deadline, late_reply_never_polled_is_freed_with_the_engine)
{
	struct t_server g = { 0 };
	uint32_t route;
	sy_engine *eng = late_reply(&g, &route, false);

	cr_expect_eq(atomic_load(&g.replied), 1);
	cr_assert_eq(sy_engine_stop(eng), 0);
	expect_accounting(eng, 1, 1, 0);
	sy_engine_destroy(eng);
}

Test(reliability_deadline, late_reply_to_a_detached_caller_is_dropped)
{
	struct t_server g = { 0 };
	struct sy_accounting a;
	struct sy_stats st;
	uint32_t route;
	sy_engine *eng = late_reply(&g, &route, true);

	cr_assert_eq(sy_engine_stop(eng), 0);
	/* The handler's sy_reply() fails: its request stays its own, and it
	 * returns the error, so the request ends as a failed handler run. */
	cr_expect_eq(atomic_load(&g.reply_failed), 1);
	t_expect_replies(eng, 1, 0, 1);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.handler_failed, 1);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 1);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], 1);
	cr_expect_eq(a.in_flight, 0);
	sy_engine_destroy(eng);
}
