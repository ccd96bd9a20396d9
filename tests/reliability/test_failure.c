/*
 * What a route does with a message whose handler failed for good
 * (sy_route_opts.on_failure): dead-letter it, drop it, or return it to its
 * requester. Each test checks where every message ended and that the
 * accounting balances with the new ends counted.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define N 64u

struct rig {
	sy_engine *eng;
	struct t_server srv;
	uint32_t route;
};

/* A started engine with one always-failing server behind a route that
 * gives failures up as @p on_failure says, after @p attempts runs. */
static void rig_start(struct rig *r, enum sy_on_failure on_failure,
		      unsigned attempts)
{
	struct sy_route_opts ro = {
		.on_failure = on_failure,
		.max_attempts = attempts,
		.retry_backoff_ns = 1000,
		.retry_backoff_max_ns = 1000,
		.retry_budget = 1000, /* every failure gets its retries */
		.retry_budget_min = 1000,
	};
	uint32_t sid;

	memset(&r->srv, 0, sizeof(r->srv));
	r->srv.fail_before = T_FAIL_ALWAYS;
	r->eng = t_engine_at(1, NULL, 0);
	sid = t_add_counter(r->eng, "failing", &r->srv, 0);
	r->route = t_add_route(r->eng, "route", ro, &sid, 1);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

Test(reliability_failure, drop_frees_each_failure_and_counts_it)
{
	struct rig r;
	struct sy_accounting a;
	struct sy_stats st;

	rig_start(&r, SY_FAIL_DROP, 2);
	t_send_tags(r.eng, r.route, 0, N);
	cr_assert(t_wait_u64(&r.srv.handled, 2 * N, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(r.eng), 0);

	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_expect_eq(a.dropped, N);
	cr_expect_eq(a.dead_lettered, 0);
	cr_expect_eq(sy_dlq_count(r.eng, NULL), 0);
	cr_assert_eq(sy_engine_stats(r.eng, &st), 0);
	cr_expect_eq(st.dropped, N);
	cr_expect_eq(st.handler_failed, 2 * N, "each message ran twice");
	t_expect_balanced(r.eng);
	sy_engine_destroy(r.eng);
}

Test(reliability_failure, dead_letter_is_the_default)
{
	struct rig r;
	struct sy_accounting a;

	rig_start(&r, 0, 1);
	t_send_tags(r.eng, r.route, 0, N);
	cr_assert(t_wait_dead_letters(r.eng, N));
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], N);
	cr_expect_eq(a.dropped + a.returned, 0);
	t_expect_balanced(r.eng);
	sy_engine_destroy(r.eng);
}

Test(reliability_failure, return_makes_a_call_fail_with_the_request_back)
{
	struct rig r;
	struct sy_accounting a;
	sy_msg *req, *reply = NULL;

	rig_start(&r, SY_FAIL_RETURN, 1);
	req = t_msg(r.eng, 7);
	cr_assert_eq(sy_msg_call(r.eng, r.route, req, &reply, 60000000000ull),
		     -EREMOTEIO);
	cr_assert_eq(reply, req, "the failed request comes back as the reply");
	cr_expect_eq(sy_msg_status(reply), -EIO, "the handler's code");
	cr_expect_eq(t_msg_value(reply), 7);
	cr_expect(strstr(sy_last_error(), "sy_msg_call: the handler failed with -5") ==
		  sy_last_error(), "%s", sy_last_error());
	/* The caller owns it again: it can send it once more. */
	cr_expect_eq(sy_msg_send(r.eng, r.route, reply), 0);
	cr_assert(t_wait_u64(&r.srv.handled, 2, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_expect_eq(a.returned, 1);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], 1,
		     "a plain send on that route has no one to return to");
	t_expect_balanced(r.eng);
	sy_engine_destroy(r.eng);
}

Test(reliability_failure, return_hands_failed_requests_to_poll_with_status)
{
	struct rig r;
	sy_msg *got[N];
	unsigned n = 0;
	uint64_t end = t_now_ms() + T_WAIT_MS;
	struct sy_accounting a;

	rig_start(&r, SY_FAIL_RETURN, 3);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(sy_msg_request(r.eng, r.route, t_msg(r.eng, i)), 0);
	while (n < N && t_now_ms() < end) {
		int k = sy_producer_poll_replies(r.eng, got + n, N - n);

		cr_assert_geq(k, 0);
		n += (unsigned)k;
		if (!k)
			t_sleep_us(50);
	}
	cr_assert_eq(n, N);
	for (unsigned i = 0; i < n; i++) {
		cr_expect_eq(sy_msg_status(got[i]), -EIO);
		sy_msg_free(got[i]);
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_expect_eq(a.returned, N);
	cr_expect_eq(a.retried, 2 * N, "returned only after the retries");
	t_expect_balanced(r.eng);
	sy_engine_destroy(r.eng);
}

Test(reliability_failure, a_reply_has_status_zero)
{
	struct rig r;
	sy_msg *req, *reply = NULL;

	rig_start(&r, SY_FAIL_RETURN, 1);
	atomic_store(&r.srv.failing, false);
	r.srv.fail_before = 0;
	req = t_msg(r.eng, 3 | T_REPLY);
	cr_assert_eq(sy_msg_call(r.eng, r.route, req, &reply, 60000000000ull), 0);
	cr_expect_eq(sy_msg_status(reply), 0);
	sy_msg_free(reply);
	sy_engine_destroy(r.eng);
}

Test(reliability_failure, rejects_an_unknown_choice)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	struct t_server s = { 0 };
	struct sy_route_opts ro = { .on_failure = (enum sy_on_failure)7 };
	uint32_t sid = t_add_counter(eng, "s", &s, 0), id;

	ro.servers = &sid;
	ro.n_servers = 1;
	cr_expect_eq(sy_route_add(eng, "r", &ro, &id), -EINVAL);
	cr_expect_str_eq(sy_last_error(), "sy_route_add: route \"r\": on_failure "
			 "7 is not an enum sy_on_failure value");
	sy_engine_destroy(eng);
}
