/*
 * End-to-end tests of deadlines and call timeouts.
 *
 * A message's deadline is in the engine's clock; the tests give the engine a
 * fake clock that only the test thread moves, so "expired" never depends on
 * how fast the machine is. A worker that takes a message whose deadline has
 * passed dead-letters it (reason timeout) instead of running its handler.
 * sy_msg_call() times out in real time; a reply that arrives after the call has
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

/* sy_msg_call() timeouts: long where a reply must come, short where none may. */
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

/* An engine with one counting server "svc" and a direct route to it. */
struct svc {
	struct t_clock clock;
	struct t_server g;
	uint32_t sid, route;
	sy_engine *eng;
};

/* Start @p s: @p workers workers, on the fake clock (at T0) if @p clocked,
 * the server on @p worker. */
static void svc_start(struct svc *s, unsigned workers, bool clocked, int worker)
{
	memset(s, 0, sizeof(*s));
	s->eng = t_engine_at(workers, clocked ? &s->clock : NULL, T0);
	s->route = t_direct(s->eng, "svc", t_server_handler, &s->g, worker,
			    &s->sid);
	cr_assert_eq(sy_engine_start(s->eng), 0);
}

/* Send each of @p n messages: tags[i] due at due[i]. */
static void send_due(sy_engine *eng, uint32_t route, const uint64_t *tags,
		     const uint64_t *due, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(sy_msg_send(eng, route, msg_due(eng, tags[i], due[i])), 0);
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

	sy_dlq_filter_init(&f);
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

/* After the stop: of @p accepted messages, the @p n tagged @p expired are
 * in the dead letter queue as timeouts, the others were delivered. */
static void svc_finish(struct svc *s, uint64_t accepted, const uint64_t *expired,
		       unsigned n)
{
	expect_accounting(s->eng, accepted, accepted - n, n);
	expect_timed_out(s->eng, s->route, s->sid, expired, n);
	sy_engine_destroy(s->eng);
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                           */
/* ------------------------------------------------------------------ */

Test(reliability_deadline, expired_message_is_dead_lettered_and_never_handled)
{
	static const uint64_t tags[] = { 1, 2, 3, 4, 5 };
	static const uint64_t due[] = { T0 - 1, T0 + 1, 0, 1, UINT64_MAX };
	static const uint32_t runs[] = { 0, 1, 1, 0, 1 };
	static const uint64_t expired[] = { 1, 4 };
	struct svc s;

	svc_start(&s, 2, true, 1);
	send_due(s.eng, s.route, tags, due, 5);
	cr_assert(t_wait_u64(&s.g.handled, 3, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	expect_runs(&s.g, 1, runs, 5);
	cr_expect_eq(atomic_load(&s.g.handled), 3);
	svc_finish(&s, 5, expired, 2);
}

Test(reliability_deadline, deadline_that_passes_while_queued_expires_the_message)
{
	static const uint64_t tags[] = { 1, 2, 3, 4 };
	static const uint64_t due[] = { T0 + 1000, T0 + 1000000, T0 + 2000, 0 };
	static const uint32_t runs[] = { 1, 0, 1, 0, 1 };
	static const uint64_t expired[] = { 1, 3 };
	struct svc s;

	svc_start(&s, 2, true, 1);
	t_hold(s.eng, s.route, &s.g, 0);
	send_due(s.eng, s.route, tags, due, 4);
	atomic_store(&s.clock.ns, T0 + 2001);
	atomic_store(&s.g.released, 1);
	cr_assert(t_wait_u64(&s.g.handled, 3, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	expect_runs(&s.g, 0, runs, 5);
	svc_finish(&s, 5, expired, 2);
}

Test(reliability_deadline, burst_members_expire_one_by_one)
{
	enum { N = 8 };
	static const uint64_t expired[] = { 10, 12, 14, 16 };
	sy_msg *msgs[N];
	struct svc s;

	svc_start(&s, 2, true, 0);
	for (unsigned i = 0; i < N; i++)
		msgs[i] = msg_due(s.eng, 10 + i, i % 2 ? T0 + 1 : T0 - 1);
	cr_assert_eq(sy_msg_send_burst(s.eng, s.route, msgs, N), N);
	cr_assert(t_wait_u64(&s.g.handled, N / 2, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	for (unsigned i = 0; i < N; i++)
		cr_expect_eq(atomic_load(&s.g.runs[10 + i]), i % 2,
			     "id %u ran %u times", 10 + i,
			     atomic_load(&s.g.runs[10 + i]));
	svc_finish(&s, N, expired, N / 2);
}

Test(reliability_deadline, call_whose_deadline_has_passed_is_not_handled)
{
	static const uint64_t expired[] = { 1 | T_REPLY };
	sy_msg *reply = NULL;
	struct svc s;

	svc_start(&s, 2, true, 1);
	cr_assert_eq(sy_msg_call(s.eng, s.route, msg_due(s.eng, 1 | T_REPLY, T0 - 1),
			     &reply, CALL_SHORT_NS), -ETIMEDOUT);
	cr_assert_eq(sy_msg_call(s.eng, s.route, msg_due(s.eng, 2 | T_REPLY, T0 + 1),
			     &reply, CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | T_REPLY);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	cr_expect_eq(atomic_load(&s.g.runs[1]), 0, "the expired request ran");
	cr_expect_eq(atomic_load(&s.g.runs[2]), 1);
	svc_finish(&s, 2, expired, 1);
}

/* ------------------------------------------------------------------ */
/* Call timeouts                                                       */
/* ------------------------------------------------------------------ */

/* A call times out while its handler is held; the handler then answers.
 * With @p detach, the caller attached itself and detaches in between. */
static void late_reply(struct svc *s, bool detach)
{
	sy_msg *reply = NULL;

	svc_start(s, 1, false, 0);
	if (detach)
		cr_assert_eq(sy_producer_attach(s->eng), 0);
	cr_assert_eq(sy_msg_call(s->eng, s->route,
			     msg_due(s->eng, 1 | T_HOLD | T_REPLY, 0), &reply,
			     CALL_SHORT_NS), -ETIMEDOUT);
	cr_expect_null(reply);
	if (detach)
		cr_assert_eq(sy_producer_detach(s->eng), 0);
	atomic_store(&s->g.released, 1);
	cr_assert(t_wait_u64(&s->g.handled, 1, T_WAIT_MS));
}

Test(reliability_deadline, late_reply_is_dropped_counted_and_freed)
{
	sy_msg *out[4], *reply = NULL;
	struct svc s;

	late_reply(&s, false);
	cr_expect_eq(atomic_load(&s.g.replied), 1, "the late handler could not reply");
	cr_assert_eq(sy_producer_poll_replies(s.eng, out, 4), 0);
	t_expect_replies(s.eng, 1, 0, 1);

	/* The next call gets its own reply, not the stale one. */
	cr_assert_eq(sy_msg_call(s.eng, s.route, msg_due(s.eng, 2 | T_REPLY, 0), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2 | T_REPLY);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	t_expect_replies(s.eng, 2, 1, 1);
	svc_finish(&s, 2, NULL, 0);
}

Test(reliability_deadline, late_reply_never_polled_is_freed_with_the_engine)
{
	struct svc s;

	late_reply(&s, false);
	cr_expect_eq(atomic_load(&s.g.replied), 1);
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	svc_finish(&s, 1, NULL, 0);
}

Test(reliability_deadline, late_reply_to_a_detached_caller_is_dropped)
{
	struct sy_accounting a;
	struct sy_stats st;
	struct svc s;

	late_reply(&s, true);
	cr_assert_eq(sy_engine_stop(s.eng), 0);
	/* The handler's sy_msg_reply() fails: its request stays its own, and it
	 * returns the error, so the request ends as a failed handler run. */
	cr_expect_eq(atomic_load(&s.g.reply_failed), 1);
	t_expect_replies(s.eng, 1, 0, 1);
	sy_engine_stats(s.eng, &st);
	cr_expect_eq(st.handler_failed, 1);
	cr_assert_eq(sy_engine_accounting(s.eng, &a), 0);
	cr_expect_eq(a.accepted, 1);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], 1);
	cr_expect_eq(a.in_flight, 0);
	sy_engine_destroy(s.eng);
}
