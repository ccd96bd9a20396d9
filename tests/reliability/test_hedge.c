/*
 * Tests of hedged requests (sy_route_opts.hedge_delay_ns, hedge_p95,
 * hedge_budget; docs/reliability.md).
 *
 * A "failover" route lists a slowed server first and a fast one second,
 * each on its own worker: every request goes to the slowed one, and a
 * hedge's copy, which avoids the server its request went to, to the fast
 * one. The engine runs on a fake clock that only the slowed server's
 * handler moves: each run first adds SLOW_NS, past the hedge delay, then
 * waits (bounded) on its gate before it answers. So the requester sees the
 * delay pass while the first server has not answered, and the fast
 * server's answer to the copy comes first; the test then opens the gate
 * and the slowed server's answer comes second. Both servers answer in
 * place: a reply's payload is its request's, which tells that the copy
 * carried the request's payload. Handlers never assert; no test asserts
 * how long anything took.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define DELAY_NS 1000000u           /* 1 ms */
#define SLOW_NS (2u * DELAY_NS)
#define START_NS 1000000000ull
#define CALL_TIMEOUT_NS (60ull * 1000000000u)
#define LATE_MS 100u

struct rig {
	sy_engine *eng;
	struct t_clock clock;
	struct t_server slow, fast;
	uint32_t slow_id, fast_id, route;
	/* Bound of the slowed server's wait when the test does not open its
	 * gate (ms). */
	unsigned gate_ms;
	uint64_t slow_step_ns;
	/* Set: the requester's clock reads wait (bounded) for the slowed
	 * server's first run. */
	_Atomic bool late_reads;
	pthread_t requester;
};

static struct rig rig;

/* The slowed server: moves the clock, waits on its gate, answers. */
static int slow_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct rig *r = ctx;

	atomic_fetch_add(&r->clock.ns, r->slow_step_ns);
	t_gate_wait(&r->slow.held, &r->slow.released, r->gate_ms);
	return t_server_handler(eng, msg, &r->slow);
}

/* The fake clock, whose reads on the requester's thread, once asked,
 * wait until the slowed server has run (at most LATE_MS): as if the
 * requester were preempted before each look at the clock. */
static uint64_t rig_clock(void *ctx)
{
	if (atomic_load(&rig.late_reads) &&
	    pthread_equal(pthread_self(), rig.requester))
		for (uint64_t end = t_now_ms() + LATE_MS;
		     atomic_load(&rig.slow.held) == 0 && t_now_ms() < end;)
			t_sleep_us(50);
	return t_clock_now(ctx);
}

/* Two workers on the fake clock (every request timed, where
 * @p latency_sample is 1), the two servers and the route over the first
 * @p n_servers of them with @p ro's hedge options; slowed runs move the
 * clock by @p step_ns. */
static void rig_with(struct sy_route_opts ro, unsigned n_servers,
		     unsigned latency_sample, uint64_t step_ns)
{
	struct sy_config cfg;
	uint32_t ids[2];

	rig = (struct rig){ .gate_ms = T_WAIT_MS, .slow_step_ns = step_ns };
	atomic_init(&rig.clock.ns, START_NS);
	t_config(&cfg, 2, &rig.clock);
	cfg.clock = rig_clock;
	cfg.latency_sample = latency_sample;
	rig.eng = t_create(&cfg);
	rig.slow_id = t_add_server(rig.eng, "slow", slow_handler, &rig, 0);
	rig.fast_id = t_add_counter(rig.eng, "fast", &rig.fast, 1);
	ids[0] = rig.slow_id;
	ids[1] = rig.fast_id;
	ro.policy = "failover";
	rig.route = t_add_route(rig.eng, "pair", ro, ids, n_servers);
	cr_assert_eq(sy_engine_start(rig.eng), 0);
}

static void rig_up(struct sy_route_opts ro, unsigned n_servers)
{
	rig_with(ro, n_servers, 0, SLOW_NS);
}

static void rig_down(void)
{
	if (rig.eng)
		sy_engine_destroy(rig.eng);
	rig.eng = NULL;
}

static struct sy_stats stats(void)
{
	struct sy_stats st;

	cr_assert_eq(sy_engine_stats(rig.eng, &st), 0);
	return st;
}

/* Poll (bounded) until @p discarded replies of hedged requests have been
 * discarded; every reply poll hands over is counted in *got by id. */
static void poll_until_discarded(uint64_t discarded, uint32_t *got)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	sy_msg *out[16];

	for (;;) {
		int n = sy_producer_poll_replies(rig.eng, out, 16);

		cr_assert_geq(n, 0);
		for (int i = 0; i < n; i++) {
			uint64_t id = T_ID(sy_msg_tag(out[i]));

			cr_assert_lt(id, T_MAX_IDS);
			got[id]++;
			sy_msg_free(out[i]);
		}
		if (n == 0 && stats().hedge_replies_discarded >= discarded)
			return;
		cr_assert_lt(t_now_ms(), end, "still %llu replies discarded",
			     (unsigned long long)stats().hedge_replies_discarded);
		t_sleep_us(50);
	}
}

/* Wait (bounded) until the servers have run @p runs messages in all, and
 * the engine has counted them delivered: a worker counts a run after its
 * handler returns. */
static void wait_runs(uint64_t runs)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	struct sy_accounting a;

	while (atomic_load(&rig.slow.handled) + atomic_load(&rig.fast.handled) <
	       runs) {
		cr_assert_lt(t_now_ms(), end);
		t_sleep_us(50);
	}
	for (;;) {
		cr_assert_eq(sy_engine_accounting(rig.eng, &a), 0);
		if (a.delivered >= runs)
			return;
		cr_assert_lt(t_now_ms(), end, "%llu delivered, not %llu",
			     (unsigned long long)a.delivered,
			     (unsigned long long)runs);
		t_sleep_us(50);
	}
}

/* Calls with ids [first, first + n), each answered with its own payload. */
static void calls(uint64_t first, unsigned n)
{
	for (uint64_t id = first; id < first + n; id++) {
		sy_msg *reply = NULL;

		cr_assert_eq(sy_msg_call(rig.eng, rig.route,
					 t_msg(rig.eng, id | T_REPLY), &reply,
					 CALL_TIMEOUT_NS), 0, "%s", sy_last_error());
		cr_expect_eq(t_msg_value(reply), id | T_REPLY);
		sy_msg_free(reply);
	}
}

TestSuite(hedge_call, .fini = rig_down, .timeout = 120);
TestSuite(hedge_request, .fini = rig_down, .timeout = 120);
TestSuite(hedge_budget, .fini = rig_down, .timeout = 300);

Test(hedge_call, the_copy_answers_a_slowed_call_and_the_loser_is_discarded)
{
	uint32_t got[T_MAX_IDS] = { 0 };
	sy_msg *req, *reply = NULL;
	struct sy_stats st;

	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 2);
	req = t_msg(rig.eng, 7 | T_REPLY);
	cr_assert_eq(sy_msg_call(rig.eng, rig.route, req, &reply,
				 CALL_TIMEOUT_NS), 0, "%s", sy_last_error());
	/* The fast server answered the copy, with the request's payload. */
	cr_expect_eq(atomic_load(&rig.fast.runs[7]), 1);
	cr_expect_eq(atomic_load(&rig.slow.runs[7]), 0);
	cr_expect_eq(t_msg_value(reply), 7 | T_REPLY);
	sy_msg_free(reply);
	st = stats();
	cr_expect_eq(st.hedges_sent, 1);
	cr_expect_eq(st.hedge_wins, 1);
	cr_expect_eq(st.hedge_replies_discarded, 0);

	/* The slowed server answers too: discarded, never handed over. */
	atomic_fetch_add(&rig.slow.released, 1);
	poll_until_discarded(1, got);
	cr_expect_eq(got[7], 0);
	cr_expect_eq(atomic_load(&rig.slow.runs[7]), 1);
	t_expect_replies(rig.eng, 2, 1, 1);
	/* Two messages, each accepted and delivered once. */
	t_expect_accounting(rig.eng, 2, 2, 0);
	t_expect_balanced(rig.eng);
}

/*
 * The delay counts from the send, whenever the requester next looks at
 * the clock: here the slowed server has already moved it past
 * the delay by then, and the copy must still go. Its gate is short, so
 * that a copy that never went shows as the slowed server's answer.
 */
Test(hedge_call, a_server_that_runs_before_the_requester_looks_still_hedges)
{
	sy_msg *reply = NULL;

	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 2);
	rig.gate_ms = 2000;
	rig.requester = pthread_self();
	atomic_store(&rig.late_reads, true);
	cr_assert_eq(sy_msg_call(rig.eng, rig.route, t_msg(rig.eng, 5 | T_REPLY),
				 &reply, CALL_TIMEOUT_NS), 0, "%s", sy_last_error());
	cr_expect_eq(atomic_load(&rig.fast.runs[5]), 1, "the copy never went");
	cr_expect_eq(t_msg_value(reply), 5 | T_REPLY);
	sy_msg_free(reply);
	cr_expect_eq(stats().hedge_wins, 1);
	atomic_fetch_add(&rig.slow.released, 1);
	wait_runs(2);
	t_expect_accounting(rig.eng, 2, 2, 0);
}

Test(hedge_call, a_prompt_reply_sends_no_copy)
{
	struct sy_stats st;

	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 2);
	rig.slow_step_ns = 0; /* the delay never passes */
	atomic_store(&rig.slow.released, 1000);
	calls(0, 50);
	st = stats();
	cr_expect_eq(st.hedges_sent, 0);
	cr_expect_eq(st.hedge_replies_discarded, 0);
	cr_expect_eq(atomic_load(&rig.fast.handled), 0);
	t_expect_replies(rig.eng, 50, 50, 0);
	t_expect_accounting(rig.eng, 50, 50, 0);
}

Test(hedge_call, a_route_of_one_server_never_hedges)
{
	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 1);
	atomic_store(&rig.slow.released, 1000);
	calls(0, 20);
	cr_expect_eq(stats().hedges_sent, 0);
	cr_expect_eq(atomic_load(&rig.slow.handled), 20);
	cr_expect_eq(atomic_load(&rig.fast.handled), 0);
	t_expect_accounting(rig.eng, 20, 20, 0);
}

Test(hedge_call, the_delay_follows_the_round_trip_p95)
{
	struct sy_route_opts ro = {
		.hedge_p95 = true,
		.hedge_delay_ns = 3600ull * 1000000000u, /* until a p95: never */
	};
	/* Every request timed; calls whose slowed run takes DELAY_NS. */
	rig_with(ro, 2, 1, DELAY_NS);
	atomic_store(&rig.slow.released, 20);
	calls(0, 20);
	cr_expect_eq(stats().hedges_sent, 0, "no p95 yet: the hour's delay");
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);

	/* The round trip's p95 is about DELAY_NS now: a run of twice that
	 * is hedged. */
	rig.slow_step_ns = SLOW_NS;
	calls(100, 1);
	cr_expect_eq(atomic_load(&rig.fast.runs[100]), 1);
	cr_expect_eq(stats().hedge_wins, 1);
	atomic_fetch_add(&rig.slow.released, 1);
	wait_runs(22);
	t_expect_accounting(rig.eng, 22, 22, 0);
}

Test(hedge_request, the_first_reply_is_polled_once_and_the_loser_discarded)
{
	uint32_t got[T_MAX_IDS] = { 0 };
	struct sy_stats st;

	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 2);
	cr_assert_eq(sy_msg_request(rig.eng, rig.route,
				    t_msg(rig.eng, 3 | T_REPLY)), 0);
	/* The slowed server moves the clock past the delay; the next poll
	 * sends the copy, whose answer a later poll hands over. */
	cr_assert(t_wait_u64(&rig.slow.held, 1, T_WAIT_MS));
	for (uint64_t end = t_now_ms() + T_WAIT_MS; got[3] == 0;) {
		sy_msg *out[4];
		int n = sy_producer_poll_replies(rig.eng, out, 4);

		cr_assert_geq(n, 0);
		for (int i = 0; i < n; i++) {
			cr_expect_eq(t_msg_value(out[i]), 3 | T_REPLY);
			got[T_ID(sy_msg_tag(out[i]))]++;
			sy_msg_free(out[i]);
		}
		cr_assert_lt(t_now_ms(), end, "no reply");
		t_sleep_us(50);
	}
	cr_expect_eq(atomic_load(&rig.fast.runs[3]), 1);
	st = stats();
	cr_expect_eq(st.hedges_sent, 1);
	cr_expect_eq(st.hedge_wins, 1);
	atomic_fetch_add(&rig.slow.released, 1);
	poll_until_discarded(1, got);
	cr_expect_eq(got[3], 1, "handed over once");
	t_expect_replies(rig.eng, 2, 1, 1);
	t_expect_accounting(rig.eng, 2, 2, 0);
	t_expect_balanced(rig.eng);
}

/*
 * One request at a time, each followed by the delay passing and a poll:
 * every request wants a hedge, and the budget (0.1, the default) lets one
 * in ten have it. The slowed server holds every request until the end, so
 * each copy answers first.
 */
Test(hedge_budget, holds_under_many_requests)
{
	enum { N = 400 };
	uint32_t got[T_MAX_IDS] = { 0 };
	struct sy_stats st;

	/* The test moves the clock; the ring (1024) holds every request. */
	rig_with((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS }, 2, 0, 0);
	for (uint64_t id = 0; id < N; id++) {
		sy_msg *out[4];
		int n;

		cr_assert_eq(sy_msg_request(rig.eng, rig.route,
					    t_msg(rig.eng, id | T_REPLY)), 0);
		atomic_fetch_add(&rig.clock.ns, SLOW_NS);
		n = sy_producer_poll_replies(rig.eng, out, 4);
		for (int i = 0; i < n; i++) {
			got[T_ID(sy_msg_tag(out[i]))]++;
			sy_msg_free(out[i]);
		}
	}
	st = stats();
	cr_expect_eq(st.hedges_sent, N / 10, "one hedge per ten requests, "
		     "the first included: %llu",
		     (unsigned long long)st.hedges_sent);
	cr_expect_leq(st.hedges_sent, 1 + N / 10);

	/* Every copy answers first; then the slowed server answers all. */
	wait_runs(st.hedges_sent);
	for (uint64_t end = t_now_ms() + T_WAIT_MS;
	     stats().hedge_wins < st.hedges_sent;) {
		sy_msg *out[16];
		int n = sy_producer_poll_replies(rig.eng, out, 16);

		for (int i = 0; i < n; i++) {
			got[T_ID(sy_msg_tag(out[i]))]++;
			sy_msg_free(out[i]);
		}
		cr_assert_lt(t_now_ms(), end, "copies still unanswered");
		t_sleep_us(50);
	}
	atomic_store(&rig.slow.released, N);
	wait_runs(N + st.hedges_sent);
	poll_until_discarded(st.hedges_sent, got);
	for (unsigned id = 0; id < N; id++)
		cr_expect_eq(got[id], 1, "id %u handed over %u times", id, got[id]);
	st = stats();
	cr_expect_eq(st.hedge_wins, st.hedges_sent, "%llu wins of %llu",
		     (unsigned long long)st.hedge_wins,
		     (unsigned long long)st.hedges_sent);
	cr_expect_eq(st.hedge_replies_discarded, st.hedges_sent);
	t_expect_replies(rig.eng, N + st.hedges_sent, N, st.hedges_sent);
	t_expect_accounting(rig.eng, N + st.hedges_sent, N + st.hedges_sent, 0);
	t_expect_balanced(rig.eng);
}

/*
 * Many calls, each slowed past the delay: the budget lets about one in ten
 * hedge. A call without a copy waits for the slowed server, which answers
 * after a short bounded wait; one with a copy returns with the copy's
 * answer and opens the gate. Which reply wins a hedged call depends on the
 * machine's timing; that each call is answered once, that the hedges stay
 * within the budget and that the accounting is exact does not.
 */
Test(hedge_budget, holds_under_many_calls)
{
	enum { N = 100 };
	uint32_t got[T_MAX_IDS] = { 0 };
	struct sy_stats st;

	rig_up((struct sy_route_opts){ .hedge_delay_ns = DELAY_NS,
				       .hedge_budget = 0.1 }, 2);
	rig.gate_ms = 20;
	for (uint64_t id = 0; id < N; id++) {
		calls(id, 1);
		atomic_store(&rig.slow.released, id + 1);
	}
	st = stats();
	cr_expect_leq(st.hedges_sent, 1 + N / 10);
	cr_expect_geq(st.hedges_sent, 1);
	wait_runs(N + st.hedges_sent);
	poll_until_discarded(st.hedges_sent, got);
	for (unsigned id = 0; id < N; id++)
		cr_expect_eq(got[id], 0, "a call's reply polled: id %u", id);
	st = stats();
	cr_expect_leq(st.hedge_wins, st.hedges_sent);
	cr_expect_eq(st.hedge_replies_discarded, st.hedges_sent);
	t_expect_replies(rig.eng, N + st.hedges_sent, N, st.hedges_sent);
	t_expect_accounting(rig.eng, N + st.hedges_sent, N + st.hedges_sent, 0);
	t_expect_balanced(rig.eng);
}
