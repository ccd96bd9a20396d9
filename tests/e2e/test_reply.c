/*
 * End-to-end tests of the reply path: a thread sends requests, handlers on
 * the workers answer with sy_msg_reply(), and the replies come back to that
 * thread through sy_producer_poll_replies() or sy_msg_call().
 *
 * Handlers run on worker threads, where Criterion's assertions must not be
 * called: they count what they see in their context, and the test thread
 * asserts after a bounded wait. A request's tag identifies it; its payload
 * holds a number the handler answers with number + 1.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* sy_msg_call() timeouts: long where a reply must come, short where none may. */
#define CALL_LONG_NS (60ull * 1000 * 1000 * 1000)
#define CALL_SHORT_NS (50ull * 1000 * 1000)

static uint64_t value_of(sy_msg *m)
{
	uint64_t v;

	memcpy(&v, sy_msg_data(m), sizeof(v));
	return v;
}

static void set_value(sy_msg *m, uint64_t v)
{
	memcpy(sy_msg_data(m), &v, sizeof(v));
}

static sy_msg *request_msg(sy_engine *eng, uint64_t tag, uint64_t value)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(value));

	cr_assert_not_null(m, "sy_msg_alloc: %s", sy_last_error());
	sy_msg_set_tag(m, tag);
	set_value(m, value);
	return m;
}

/* Poll until @p want replies are in @p out, or the bound passes. */
static unsigned poll_until(sy_engine *eng, sy_msg **out, unsigned want)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	unsigned got = 0;

	while (got < want && t_now_ms() < end) {
		int n = sy_producer_poll_replies(eng, out + got, want - got);

		cr_assert_geq(n, 0, "sy_producer_poll_replies: %d", n);
		if (n == 0)
			sched_yield();
		got += (unsigned)n;
	}
	return got;
}

/* What a replying server saw. */
struct answerer {
	bool fresh;               /* reply with a new message, not in place */
	_Atomic uint64_t handled;
	_Atomic uint64_t replied;
	_Atomic uint64_t failed;  /* sy_msg_reply() or sy_msg_alloc() failed */
};

/* Answer value with value + 1, in place or in a message of our own. */
static int answer_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct answerer *a = ctx;
	sy_msg *reply = msg;
	int rc;

	if (a->fresh) {
		reply = sy_msg_alloc(eng, sizeof(uint64_t));
		if (!reply) {
			atomic_fetch_add(&a->failed, 1);
			atomic_fetch_add(&a->handled, 1);
			return -ENOMEM;
		}
	}
	set_value(reply, value_of(msg) + 1);
	rc = sy_msg_reply(msg, reply);
	if (rc) {
		atomic_fetch_add(&a->failed, 1);
		if (reply != msg)
			sy_msg_free(reply);
	} else {
		atomic_fetch_add(&a->replied, 1);
	}
	atomic_fetch_add(&a->handled, 1);
	return rc;
}

static void expect_replies_to_tags(bool fresh)
{
	enum { N = 100 };
	struct answerer ans = { .fresh = fresh };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	bool seen[N] = { false };
	sy_msg *replies[N];
	struct sy_stats st;
	unsigned got;
	uint32_t route;

	cr_assert_not_null(eng);
	route = t_direct(eng, "answer", answer_handler, &ans, 1, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(sy_msg_request(eng, route,
					request_msg(eng, 5000 + i, i * 10)), 0);
	got = poll_until(eng, replies, N);
	cr_assert_eq(got, N, "%u replies of %d", got, N);
	for (unsigned i = 0; i < got; i++) {
		uint64_t tag = sy_msg_tag(replies[i]);

		cr_expect(tag >= 5000 && tag < 5000 + N, "stray tag %llu",
			  (unsigned long long)tag);
		if (tag >= 5000 && tag < 5000 + N) {
			cr_expect(!seen[tag - 5000], "tag %llu twice",
				  (unsigned long long)tag);
			seen[tag - 5000] = true;
			cr_expect_eq(value_of(replies[i]), (tag - 5000) * 10 + 1);
		}
		sy_msg_free(replies[i]);
	}
	cr_assert_eq(sy_producer_poll_replies(eng, replies, N), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&ans.failed), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_sent, N);
	t_expect_replies(eng, N, N, 0);
	sy_engine_destroy(eng);
}

Test(core_reply, reply_in_place_comes_back_with_the_request_tag)
{
	expect_replies_to_tags(false);
}

Test(core_reply, reply_allocated_by_the_handler_comes_back_with_the_request_tag)
{
	expect_replies_to_tags(true);
}

Test(core_reply, thread_never_attached_cannot_poll)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *out[1];

	cr_assert_not_null(eng);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), -ENOENT);
	sy_engine_destroy(eng);
}

#define WINDOW_TOTAL 10000u
#define WINDOW 256u

Test(core_reply, ten_thousand_requests_in_flight_by_windows_each_answered_once)
{
	struct answerer a0 = { .fresh = false }, a1 = { .fresh = true };
	struct sy_server_opts on0 = { .worker = 0, .worker_set = true }, on1 = { .worker = 1 };
	struct sy_route_opts rr = { .policy = "round_robin", .n_servers = 2 };
	uint8_t *seen = calloc(WINDOW_TOTAL, 1);
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint64_t sent = 0, received = 0, wrong = 0, end;
	uint32_t servers[2], route;

	cr_assert_not_null(seen);
	cr_assert_not_null(eng);
	cr_assert_eq(sy_server_add(eng, "a0", answer_handler, &a0, &on0,
				   &servers[0]), 0);
	cr_assert_eq(sy_server_add(eng, "a1", answer_handler, &a1, &on1,
				   &servers[1]), 0);
	rr.servers = servers;
	cr_assert_eq(sy_route_add(eng, "both", &rr, &route), 0);
	cr_assert_eq(sy_engine_start(eng), 0);

	end = t_now_ms() + T_WAIT_MS;
	while (received < WINDOW_TOTAL && t_now_ms() < end) {
		sy_msg *batch[64];
		int n;

		while (sent < WINDOW_TOTAL && sent - received < WINDOW) {
			sy_msg *m = request_msg(eng, sent, sent * 3);
			int rc = sy_msg_request(eng, route, m);

			if (rc) {
				cr_assert_eq(rc, -EAGAIN, "sy_msg_request: %d", rc);
				sy_msg_free(m);
				break;
			}
			sent++;
		}
		n = sy_producer_poll_replies(eng, batch, 64);
		cr_assert_geq(n, 0);
		if (n == 0)
			sched_yield();
		for (int i = 0; i < n; i++) {
			uint64_t tag = sy_msg_tag(batch[i]);

			if (tag >= sent || seen[tag] ||
			    value_of(batch[i]) != tag * 3 + 1)
				wrong++;
			else
				seen[tag] = 1;
			sy_msg_free(batch[i]);
		}
		received += (uint64_t)n;
	}
	cr_assert_eq(received, WINDOW_TOTAL, "%llu replies of %u",
		     (unsigned long long)received, WINDOW_TOTAL);
	cr_expect_eq(wrong, 0, "%llu replies with a wrong or repeated tag",
		     (unsigned long long)wrong);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&a0.failed) + atomic_load(&a1.failed), 0);
	cr_expect_gt(atomic_load(&a0.replied), 0);
	cr_expect_gt(atomic_load(&a1.replied), 0);
	t_expect_replies(eng, WINDOW_TOTAL, WINDOW_TOTAL, 0);
	sy_engine_destroy(eng);
	free(seen);
}

/* Fewer than a reply ring of the default size (1024 entries) holds. */
#define DRAIN_REQUESTS 1000u

Test(core_reply, replies_from_draining_handlers_arrive_after_stop)
{
	struct answerer ans = { .fresh = false };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint8_t *seen = calloc(DRAIN_REQUESTS, 1);
	uint64_t sent = 0, wrong = 0;
	sy_msg *out[DRAIN_REQUESTS];
	struct sy_stats st;
	uint32_t route;
	unsigned got;

	cr_assert_not_null(seen);
	cr_assert_not_null(eng);
	route = t_direct(eng, "answer", answer_handler, &ans, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t i = 0; i < DRAIN_REQUESTS; i++) {
		sy_msg *m = request_msg(eng, i, i);
		int rc = sy_msg_request(eng, route, m);

		if (rc) {
			cr_assert_eq(rc, -EAGAIN, "sy_msg_request: %d", rc);
			sy_msg_free(m);
			break;
		}
		sent++;
	}
	cr_assert_gt(sent, 0);
	cr_assert_eq(sy_engine_stop(eng), 0);

	got = poll_until(eng, out, (unsigned)sent);
	cr_expect_eq(got, sent, "%u replies of %llu", got,
		     (unsigned long long)sent);
	for (unsigned i = 0; i < got; i++) {
		uint64_t tag = sy_msg_tag(out[i]);

		if (tag >= sent || seen[tag] || value_of(out[i]) != tag + 1)
			wrong++;
		else
			seen[tag] = 1;
		sy_msg_free(out[i]);
	}
	cr_expect_eq(wrong, 0);
	cr_expect_eq(sy_producer_poll_replies(eng, out, 1), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_sent, sent);
	t_expect_replies(eng, sent, sent, 0);
	sy_engine_destroy(eng);
	free(seen);
}

/* ------------------------------------------------------------------ */
/* sy_msg_call                                                            */
/* ------------------------------------------------------------------ */

Test(core_reply, call_returns_the_reply_to_its_request)
{
	struct answerer ans = { .fresh = false }, fresh = { .fresh = true };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint32_t routes[2];

	cr_assert_not_null(eng);
	routes[0] = t_direct(eng, "in-place", answer_handler, &ans, 0, NULL);
	routes[1] = t_direct(eng, "fresh", answer_handler, &fresh, 1, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t i = 0; i < 200; i++) {
		sy_msg *reply = NULL;
		int rc = sy_msg_call(eng, routes[i % 2], request_msg(eng, i, i * 7),
				 &reply, CALL_LONG_NS);

		cr_assert_eq(rc, 0, "call %llu: %d", (unsigned long long)i, rc);
		cr_assert_not_null(reply);
		cr_expect_eq(sy_msg_tag(reply), i);
		cr_expect_eq(value_of(reply), i * 7 + 1);
		sy_msg_free(reply);
	}
	cr_assert_eq(sy_engine_stop(eng), 0);
	t_expect_replies(eng, 200, 200, 0);
	sy_engine_destroy(eng);
}

Test(core_reply, call_to_a_handler_that_never_replies_times_out)
{
	struct t_server sil = { 0 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *reply = NULL, *out[1];
	struct sy_stats st;
	uint32_t route;

	cr_assert_not_null(eng);
	route = t_direct(eng, "silent", t_server_handler, &sil, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t i = 1; i <= 2; i++) {
		/* The engine owns the request once sent, timeout or not. */
		cr_assert_eq(sy_msg_call(eng, route, request_msg(eng, i, i), &reply,
				     CALL_SHORT_NS), -ETIMEDOUT);
		cr_assert(t_wait_u64(&sil.handled, i, T_WAIT_MS));
	}
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.delivered, 2);
	t_expect_replies(eng, 2, 0, 0);
	sy_engine_destroy(eng);
}

/* Answers in place; its first run waits until the test opens the gate. */
struct late {
	_Atomic uint64_t entered;
	_Atomic uint64_t open;
	_Atomic uint64_t replied;
	_Atomic uint64_t failed;
};

static int late_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct late *l = ctx;
	int rc;

	(void)eng;
	if (atomic_fetch_add(&l->entered, 1) == 0)
		t_wait_u64(&l->open, 1, T_WAIT_MS);
	set_value(msg, value_of(msg) + 1);
	rc = sy_msg_reply(msg, msg);
	atomic_fetch_add(rc ? &l->failed : &l->replied, 1);
	return rc;
}

/* Make a call time out, then let its reply arrive. */
static sy_engine *late_reply_waiting(struct late *l, uint32_t *route)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *reply = NULL;

	cr_assert_not_null(eng);
	*route = t_direct(eng, "late", late_handler, l, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_assert_eq(sy_msg_call(eng, *route, request_msg(eng, 1, 10), &reply,
			     CALL_SHORT_NS), -ETIMEDOUT);
	atomic_store(&l->open, 1);
	cr_assert(t_wait_u64(&l->replied, 1, T_WAIT_MS));
	return eng;
}

Test(core_reply, late_reply_is_dropped_and_not_returned_by_poll)
{
	struct late l = { 0 };
	sy_msg *out[4];
	uint32_t route;
	sy_engine *eng = late_reply_waiting(&l, &route);

	cr_assert_eq(sy_producer_poll_replies(eng, out, 4), 0);
	t_expect_replies(eng, 1, 0, 1);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&l.failed), 0);
	sy_engine_destroy(eng);
}

Test(core_reply, late_reply_is_dropped_and_not_returned_by_a_later_call)
{
	struct late l = { 0 };
	sy_msg *reply = NULL, *out[4];
	uint32_t route;
	sy_engine *eng = late_reply_waiting(&l, &route);

	cr_assert_eq(sy_msg_call(eng, route, request_msg(eng, 2, 20), &reply,
			     CALL_LONG_NS), 0);
	cr_assert_not_null(reply);
	cr_expect_eq(sy_msg_tag(reply), 2);
	cr_expect_eq(value_of(reply), 21);
	sy_msg_free(reply);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 4), 0);
	t_expect_replies(eng, 2, 1, 1);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_destroy(eng);
}

/*
 * A server that, before it answers, lets another (gated) server answer an
 * earlier asynchronous request: that reply arrives while sy_msg_call() waits.
 */
struct opener {
	struct late *other;
	_Atomic uint64_t failed;
};

static int opener_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct opener *o = ctx;
	int rc;

	(void)eng;
	atomic_store(&o->other->open, 1);
	t_wait_u64(&o->other->replied, 1, T_WAIT_MS);
	rc = sy_msg_reply(msg, msg);
	if (rc)
		atomic_fetch_add(&o->failed, 1);
	return rc;
}

Test(core_reply, call_leaves_other_replies_for_poll)
{
	struct late gated = { 0 };
	struct opener op = { .other = &gated };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	sy_msg *reply = NULL, *out[4];
	uint32_t to_gated, to_opener;

	cr_assert_not_null(eng);
	to_gated = t_direct(eng, "gated", late_handler, &gated, 0, NULL);
	to_opener = t_direct(eng, "opener", opener_handler, &op, 1, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_assert_eq(sy_msg_request(eng, to_gated, request_msg(eng, 77, 0)), 0);
	cr_assert(t_wait_u64(&gated.entered, 1, T_WAIT_MS));
	cr_assert_eq(sy_msg_call(eng, to_opener, request_msg(eng, 88, 5), &reply,
			     CALL_LONG_NS), 0);
	cr_expect_eq(sy_msg_tag(reply), 88);
	sy_msg_free(reply);

	cr_assert_eq(poll_until(eng, out, 1), 1);
	cr_expect_eq(sy_msg_tag(out[0]), 77);
	cr_expect_eq(value_of(out[0]), 1);
	sy_msg_free(out[0]);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 4), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&op.failed) + atomic_load(&gated.failed), 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* sy_msg_reply misuse                                                    */
/* ------------------------------------------------------------------ */

struct misreply {
	uint32_t route;
	_Atomic int in_place_rc;
	_Atomic int fresh_rc;
	_Atomic int call_rc;
	_Atomic uint64_t handled;
};

static int misreply_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct misreply *r = ctx;
	sy_msg *other = sy_msg_alloc(eng, 8);
	sy_msg *reply = NULL;
	int rc;

	/* A handler must not wait on workers; the message stays ours. */
	atomic_store(&r->call_rc, sy_msg_call(eng, r->route, msg, &reply,
					  CALL_SHORT_NS));
	atomic_store(&r->in_place_rc, sy_msg_reply(msg, msg));
	if (other) {
		rc = sy_msg_reply(msg, other);
		atomic_store(&r->fresh_rc, rc);
		if (rc)
			sy_msg_free(other);
	}
	atomic_fetch_add(&r->handled, 1);
	return 0;
}

Test(core_reply, plain_message_reply_is_einval_and_handler_call_edeadlk)
{
	struct misreply r = { .in_place_rc = 1, .fresh_rc = 1, .call_rc = 1 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *out[1], *m;
	struct sy_stats st;
	uint32_t route;

	cr_assert_not_null(eng);
	route = t_direct(eng, "plain", misreply_handler, &r, 0, NULL);
	r.route = route;
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_assert_eq(t_send_retry(eng, route, request_msg(eng, 3, 3), T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&r.handled, 1, T_WAIT_MS));
	cr_expect_eq(atomic_load(&r.in_place_rc), -EINVAL);
	cr_expect_eq(atomic_load(&r.fresh_rc), -EINVAL);
	cr_expect_eq(atomic_load(&r.call_rc), -EDEADLK);

	/* Outside a handler nothing is being handled. */
	m = request_msg(eng, 4, 4);
	cr_expect_eq(sy_msg_reply(m, m), -EINVAL);
	sy_msg_free(m);

	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.replies_sent, 0);
	cr_expect_eq(st.delivered, 1);
	sy_engine_destroy(eng);
}

/* What sy_msg_is_request() said in a handler, by message kind. */
struct asker {
	_Atomic unsigned plain_true, plain_false;
	_Atomic unsigned request_true, request_false;
};

/* Answer requests only, as the README's handler does. */
static int ask_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct asker *a = ctx;
	bool plain = sy_msg_tag(msg) == 0;
	bool req = sy_msg_is_request(msg);

	(void)eng;
	if (plain)
		atomic_fetch_add(req ? &a->plain_true : &a->plain_false, 1);
	else
		atomic_fetch_add(req ? &a->request_true : &a->request_false, 1);
	return req ? sy_msg_reply(msg, msg) : 0;
}

Test(e2e_reply, a_handler_can_tell_requests_from_plain_messages)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	struct asker a = { 0 };
	uint32_t route = t_direct(eng, "ask", ask_handler, &a, -1, NULL);
	sy_msg *plain, *reply = NULL;

	cr_assert_eq(sy_engine_start(eng), 0);
	plain = request_msg(eng, 0, 1);
	cr_assert_not(sy_msg_is_request(plain), "a message outside a handler");
	cr_assert_eq(sy_msg_send(eng, route, plain), 0);
	cr_assert_eq(sy_msg_request(eng, route, request_msg(eng, 1, 1)), 0);
	cr_assert_eq(poll_until(eng, &reply, 1), 1);
	cr_assert_not(sy_msg_is_request(reply), "a reply in its requester's hands");
	sy_msg_free(reply);
	cr_assert_eq(sy_msg_call(eng, route, request_msg(eng, 2, 1), &reply,
			     CALL_LONG_NS), 0);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(atomic_load(&a.plain_false), 1);
	cr_assert_eq(atomic_load(&a.plain_true), 0);
	cr_assert_eq(atomic_load(&a.request_true), 2);
	cr_assert_eq(atomic_load(&a.request_false), 0);
	t_expect_accounting(eng, 3, 3, 0);
	sy_engine_destroy(eng);
}
