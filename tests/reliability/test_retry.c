/*
 * End-to-end tests of retries: a handler that fails (returns < 0 and keeps
 * nothing) on a route with max_attempts > 1 has its message sent again,
 * after a backoff, to another server of the route where there is one; the
 * per-worker retry budget and max_attempts bound the retries, and what they
 * refuse is dead-lettered (retries exhausted). Stopping the engine
 * dead-letters the retries still waiting (shutdown).
 *
 * Where time matters the engine runs on a fake clock that only the test
 * thread moves: a retry whose backoff has not passed on that clock must not
 * run however long the test waits in real time.
 *
 * Handlers run on worker threads, where Criterion's assertions must not be
 * called: they count what they see (atomics) and the test thread asserts.
 * Message ids travel in the tag; each server counts, per id, its runs and
 * the attempt number it saw last.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* Rounds of 20 us sleeps while the test checks that nothing happens: the
 * workers park for at most 1 ms with a retry pending, so they look at the
 * clock dozens of times meanwhile. */
#define QUIET_ROUNDS 3000u

#define T0 10000000000ull  /* the fake clock's start: 10 s */
/* A retry budget that never refuses: budget_min alone covers every retry,
 * even on a worker that sees retries before any first run. */
#define NO_LIMIT 1000000u

/*
 * Servers s0 on worker 0 and s1 on worker @p w1, a route "pair" over them
 * with the options @p ro; @p n messages, ids 0 .. n - 1, sent once the
 * engine has started. Returns the engine once every message has ended in
 * the dead letter queue (@p dead) or s1 has delivered them all, and the
 * engine has stopped.
 */
static sy_engine *pair_run(struct t_server *s0, struct t_server *s1, int w1,
			   struct sy_route_opts ro, unsigned n, bool dead)
{
	sy_engine *eng = t_engine_at(2, NULL, 0);
	uint32_t sids[2], route;

	sids[0] = t_add_counter(eng, "s0", s0, 0);
	sids[1] = t_add_counter(eng, "s1", s1, w1);
	route = t_add_route(eng, "pair", ro, sids, 2);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_send_tags(eng, route, 0, n);
	if (dead)
		cr_assert(t_wait_dead_letters(eng, n), "%zu of %u messages "
			  "dead-lettered", sy_dlq_count(eng, NULL), n);
	else
		cr_assert(t_wait_u64(&s1->handled, n, T_WAIT_MS), "%llu of %u "
			  "messages delivered",
			  (unsigned long long)atomic_load(&s1->handled), n);
	cr_assert_eq(sy_engine_stop(eng), 0);
	return eng;
}

/* A started engine (on @p clock where not NULL) with one server "flaky"
 * on worker 1 and a direct route to it with the options @p ro. */
static sy_engine *direct_rig(struct t_clock *clock, struct t_server *f,
			     struct sy_route_opts ro, uint32_t *route)
{
	sy_engine *eng = t_engine_at(2, clock, T0);
	uint32_t sid = t_add_counter(eng, "flaky", f, 1);

	*route = t_add_route(eng, "flaky", ro, &sid, 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	return eng;
}

/* Wait until sy_stats.handler_runs (counted by a worker after it has
 * dealt with their results) reaches @p want. */
static bool wait_runs_counted(sy_engine *eng, uint64_t want)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	struct sy_stats st;

	for (;;) {
		sy_engine_stats(eng, &st);
		if (st.handler_runs >= want)
			return true;
		if (t_now_ms() > end)
			return false;
		t_sleep_us(20);
	}
}

/* Nothing more runs on @p f however long we wait. */
static void expect_quiet(struct t_server *f, uint64_t handled)
{
	for (unsigned i = 0; i < QUIET_ROUNDS; i++)
		t_sleep_us(20);
	cr_expect_eq(atomic_load(&f->handled), handled,
		     "%llu handler runs, want %llu",
		     (unsigned long long)atomic_load(&f->handled),
		     (unsigned long long)handled);
}

/* ------------------------------------------------------------------ */
/* Delivery through retries                                            */
/* ------------------------------------------------------------------ */

Test(reliability_retry, every_message_sent_to_a_failing_server_is_delivered_by_the_other)
{
	enum { N = 400 };
	struct t_server bad = { .fail_before = T_FAIL_ALWAYS }, good = { 0 };
	struct sy_route_opts ro = { .max_attempts = 2, .retry_budget = 1.0 };
	struct sy_accounting a;
	struct sy_stats st;
	/* round_robin from this thread's first pick: even ids go to "bad". */
	sy_engine *eng = pair_run(&bad, &good, 1, ro, N, false);

	for (unsigned id = 0; id < N; id++) {
		cr_expect_eq(atomic_load(&good.runs[id]), 1, "id %u delivered %u times",
			     id, atomic_load(&good.runs[id]));
		cr_expect_eq(atomic_load(&good.attempt[id]), id % 2 ? 1 : 2,
			     "id %u delivered at attempt %u", id,
			     atomic_load(&good.attempt[id]));
		cr_expect_eq(atomic_load(&bad.runs[id]), id % 2 ? 0 : 1);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.retried, N / 2);
	cr_expect_eq(st.handler_failed, N / 2);
	cr_expect_eq(st.handler_runs, N + N / 2);
	cr_expect_eq(st.delivered, N, "delivered counts successful runs only");
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, N);
	cr_expect_eq(a.delivered, N);
	cr_expect_eq(a.dead_lettered, 0);
	cr_expect_eq(a.retried, N / 2);
	t_expect_balanced(eng);
	sy_engine_destroy(eng);
}

Test(reliability_retry, exhausted_attempts_end_in_the_dlq_with_every_attempt_counted)
{
	enum { N = 50, ATTEMPTS = 3 };
	struct t_server a0 = { .fail_before = T_FAIL_ALWAYS };
	struct t_server a1 = { .fail_before = T_FAIL_ALWAYS };
	struct sy_route_opts ro = { .max_attempts = ATTEMPTS, .retry_budget = 1000,
				    .retry_budget_min = NO_LIMIT };
	sy_engine *eng = pair_run(&a0, &a1, 1, ro, N, true);
	struct sy_accounting acc;
	struct t_letters l;

	/* Each attempt avoids the server that failed the one before. */
	for (unsigned id = 0; id < N; id++) {
		unsigned r0 = atomic_load(&a0.runs[id]), r1 = atomic_load(&a1.runs[id]);

		cr_expect_eq(r0 + r1, ATTEMPTS, "id %u ran %u times", id, r0 + r1);
		cr_expect(r0 == 2 ? r1 == 1 : r0 == 1 && r1 == 2,
			  "id %u ran %u times on a0 and %u on a1", id, r0, r1);
	}
	cr_assert_eq(sy_engine_accounting(eng, &acc), 0);
	cr_expect_eq(acc.dead_lettered_by[SY_DL_RETRIES_EXHAUSTED], N);
	cr_expect_eq(acc.retried, N * (ATTEMPTS - 1));
	cr_expect_eq(acc.delivered, 0);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.n, N);
	cr_expect_eq(l.by_reason[SY_DL_RETRIES_EXHAUSTED], N);
	cr_expect_eq(l.by_attempts[ATTEMPTS], N, "%u of %d letters show %d attempts",
		     l.by_attempts[ATTEMPTS], N, ATTEMPTS);
	sy_engine_destroy(eng);
}

Test(reliability_retry, route_without_retries_dead_letters_the_first_failure)
{
	enum { N = 20 };
	struct t_server f = { .fail_before = T_FAIL_ALWAYS };
	struct sy_stats st;
	struct t_letters l;
	uint32_t route;
	sy_engine *eng = direct_rig(NULL, &f, (struct sy_route_opts){ 0 }, &route);

	t_send_tags(eng, route, 0, N);
	cr_assert(t_wait_dead_letters(eng, N));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&f.handled), N);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.retried, 0);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.by_reason[SY_DL_HANDLER_FAILED], N);
	cr_expect_eq(l.by_attempts[1], N);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Budget                                                              */
/* ------------------------------------------------------------------ */

/* Every server fails; max_attempts 2, budget 0.1, at least 5 per worker. */
static void budget_run(unsigned workers, unsigned n)
{
	struct t_server f0 = { .fail_before = T_FAIL_ALWAYS };
	struct t_server f1 = { .fail_before = T_FAIL_ALWAYS };
	struct sy_route_opts ro = { .max_attempts = 2, .retry_budget = 0.1,
				    .retry_budget_min = 5 };
	uint64_t bound = n / 10 + 5 * workers;
	sy_engine *eng = pair_run(&f0, &f1, workers > 1 ? 1 : 0, ro, n, true);
	struct sy_stats st;
	struct t_letters l;

	sy_engine_stats(eng, &st);
	cr_expect_leq(st.retried, bound, "%llu retries for %u messages, budget %llu",
		      (unsigned long long)st.retried, n,
		      (unsigned long long)bound);
	cr_expect_geq(st.retried, 5, "only %llu retries",
		      (unsigned long long)st.retried);
	cr_expect_eq(atomic_load(&f0.handled) + atomic_load(&f1.handled),
		     n + st.retried);
	cr_expect_eq(atomic_load(&f0.by_attempt[2]) + atomic_load(&f1.by_attempt[2]),
		     st.retried);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.n, n);
	cr_expect_eq(l.by_reason[SY_DL_RETRIES_EXHAUSTED], n);
	cr_expect_eq(l.by_attempts[2], st.retried);
	cr_expect_eq(l.by_attempts[1], n - st.retried);
	sy_engine_destroy(eng);
}

Test(reliability_retry, budget_caps_retries_of_one_worker_at_its_share_of_first_runs)
{
	budget_run(1, 2000);
}

Test(reliability_retry, budget_caps_retries_of_two_workers_at_their_shares_of_first_runs)
{
	budget_run(2, 3000);
}

/*
 * failover sends every first attempt to p0 (worker 0); its retries run on
 * p1 (worker 1), whose retries run on p0 again. Each worker's budget is its
 * own share of its own first runs: worker 0 retries N / 10 + 5 messages,
 * worker 1, which ran no first attempt, only its minimum of 5.
 */
Test(reliability_retry, budget_of_a_worker_that_runs_only_retries_is_the_minimum)
{
	enum { N = 1000, MIN = 5 };
	struct t_server p0 = { .fail_before = T_FAIL_ALWAYS };
	struct t_server p1 = { .fail_before = T_FAIL_ALWAYS };
	struct sy_route_opts ro = { .policy = "failover", .max_attempts = 3,
				    .retry_budget = 0.1, .retry_budget_min = MIN };
	sy_engine *eng = pair_run(&p0, &p1, 1, ro, N, true);
	struct sy_stats st;
	struct t_letters l;

	cr_expect_eq(atomic_load(&p0.by_attempt[1]), N);
	cr_expect_eq(atomic_load(&p1.by_attempt[2]), N / 10 + MIN,
		     "worker 0 retried %llu of its %d first runs",
		     (unsigned long long)atomic_load(&p1.by_attempt[2]), N);
	cr_expect_eq(atomic_load(&p0.by_attempt[3]), MIN,
		     "worker 1 retried %llu messages with no first run",
		     (unsigned long long)atomic_load(&p0.by_attempt[3]));
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.retried, N / 10 + 2 * MIN);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.by_reason[SY_DL_RETRIES_EXHAUSTED], N);
	cr_expect_eq(l.by_attempts[1], N - (N / 10 + MIN));
	cr_expect_eq(l.by_attempts[2], N / 10);
	cr_expect_eq(l.by_attempts[3], MIN);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Backoff                                                             */
/* ------------------------------------------------------------------ */

#define BACKOFF_NS 1000000ull  /* 1 ms of the fake clock */

/*
 * One message on a route whose server fails until attempt @p attempts;
 * backoffs from BACKOFF_NS doubling up to @p max_ns. For each retry the
 * test moves the clock to just before the earliest time it may run (it must
 * not), then to the latest (it must).
 */
static void backoff_run(unsigned attempts, uint64_t max_ns,
			const uint64_t *earliest, const uint64_t *latest)
{
	struct t_clock clock;
	struct t_server f = { .fail_before = attempts };
	struct sy_route_opts ro = {
		.max_attempts = attempts, .retry_backoff_ns = BACKOFF_NS,
		.retry_backoff_max_ns = max_ns, .retry_budget = 1000,
		.retry_budget_min = NO_LIMIT,
	};
	struct sy_accounting a;
	uint64_t failed_at = T0;
	uint32_t route;
	sy_engine *eng = direct_rig(&clock, &f, ro, &route);

	t_send_tags(eng, route, 7, 1);
	for (unsigned k = 1; k < attempts; k++) {
		/* Run k failed and its retry is scheduled at failed_at. */
		cr_assert(wait_runs_counted(eng, k), "run %u never ended", k);
		cr_expect_eq(atomic_load(&f.attempt[7]), k);
		cr_assert_eq(sy_engine_accounting(eng, &a), 0);
		cr_expect_eq(a.in_flight, 1);
		expect_quiet(&f, k);
		atomic_store(&clock.ns, failed_at + earliest[k - 1] - 1);
		expect_quiet(&f, k);
		failed_at += latest[k - 1];
		atomic_store(&clock.ns, failed_at);
		cr_assert(t_wait_u64(&f.handled, k + 1, T_WAIT_MS),
			  "retry %u did not run once its backoff had passed", k);
	}
	cr_assert(wait_runs_counted(eng, attempts));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&f.runs[7]), attempts);
	cr_expect_eq(atomic_load(&f.attempt[7]), attempts);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.delivered, 1);
	cr_expect_eq(a.retried, attempts - 1);
	t_expect_balanced(eng);
	sy_engine_destroy(eng);
}

Test(reliability_retry, retry_waits_for_its_backoff_on_the_engine_clock)
{
	/* Equal jitter: the backoff is in [b/2, b]. */
	const uint64_t earliest[] = { BACKOFF_NS / 2 };
	const uint64_t latest[] = { BACKOFF_NS };

	backoff_run(2, 0, earliest, latest);
}

Test(reliability_retry, backoff_doubles_per_attempt_up_to_the_cap)
{
	/* b, 2b, 4b capped to 3b, 8b capped to 3b: each in [x/2, x]. */
	const uint64_t b = BACKOFF_NS;
	const uint64_t earliest[] = { b / 2, b, 3 * b / 2, 3 * b / 2 };
	const uint64_t latest[] = { b, 2 * b, 3 * b, 3 * b };

	backoff_run(5, 3 * b, earliest, latest);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                            */
/* ------------------------------------------------------------------ */

/* A route with up to 3 attempts and no budget limit. */
static const struct sy_route_opts three_attempts = {
	.max_attempts = 3, .retry_budget = 1000, .retry_budget_min = NO_LIMIT,
};

Test(reliability_retry, retries_still_waiting_are_dead_lettered_at_stop)
{
	enum { N = 30 };
	struct t_clock clock;
	struct t_server f = { .fail_before = 2 };
	struct sy_accounting a;
	struct t_letters l;
	uint32_t route;
	sy_engine *eng = direct_rig(&clock, &f, three_attempts, &route);

	t_send_tags(eng, route, 0, N);
	/* The clock stands still: every retry waits for its backoff. */
	cr_assert(wait_runs_counted(eng, N));
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.in_flight, N);
	cr_expect_eq(a.retried, N);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&f.handled), N);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_SHUTDOWN], N);
	cr_expect_eq(a.delivered, 0);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.n, N);
	cr_expect_eq(l.by_reason[SY_DL_SHUTDOWN], N);
	cr_expect_eq(l.by_attempts[1], N);
	sy_engine_destroy(eng);
}

struct stopper {
	sy_engine *eng;
	_Atomic uint64_t done;
	int rc;
};

static void *stop_main(void *arg)
{
	struct stopper *s = arg;

	s->rc = sy_engine_stop(s->eng);
	/* Publishes rc to the test thread's load of done. */
	atomic_store(&s->done, 1);
	return NULL;
}

Test(reliability_retry, failures_while_the_engine_drains_are_dead_lettered_as_shutdown)
{
	enum { N = 10 };
	struct t_server f = { .fail_before = T_FAIL_ALWAYS }, ok = { 0 };
	struct stopper stop = { 0 };
	sy_engine *eng = t_engine_at(2, NULL, 0);
	uint32_t sid, probe, route;
	uint64_t probes = 0, end = t_now_ms() + T_WAIT_MS;
	struct t_letters l;
	pthread_t t;
	int rc;

	sid = t_add_counter(eng, "failing", &f, 1);
	route = t_add_route(eng, "failing", three_attempts, &sid, 1);
	probe = t_direct(eng, "probe", t_server_handler, &ok, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_hold(eng, route, &f, 0);
	t_send_tags(eng, route, 1, N);
	atomic_init(&stop.done, 0);
	stop.eng = eng;
	cr_assert_eq(pthread_create(&t, NULL, stop_main, &stop), 0);
	/* Once a send is refused with -ESHUTDOWN the engine is stopping. */
	do {
		sy_msg *m = t_msg(eng, 100);

		rc = sy_msg_send(eng, probe, m);
		if (rc)
			sy_msg_free(m);
		else
			probes++;
	} while ((rc == 0 || rc == -EAGAIN) && t_now_ms() < end);
	atomic_store(&f.released, 1);
	cr_expect_eq(rc, -ESHUTDOWN);
	cr_assert(t_wait_u64(&stop.done, 1, T_WAIT_MS));
	pthread_join(t, NULL);
	cr_assert_eq(stop.rc, 0);
	cr_expect_eq(atomic_load(&f.handled), N + 1);
	cr_expect_eq(atomic_load(&ok.handled), probes);
	t_expect_balanced(eng);
	t_drain_letters(eng, &l);
	cr_expect_eq(l.n, N + 1);
	cr_expect_eq(l.by_reason[SY_DL_SHUTDOWN], N + 1,
		     "%u of %d failures while draining dead-lettered as shutdown "
		     "(%u as retries exhausted)", l.by_reason[SY_DL_SHUTDOWN],
		     N + 1, l.by_reason[SY_DL_RETRIES_EXHAUSTED]);
	cr_expect_eq(l.by_attempts[1], N + 1);
	sy_engine_destroy(eng);
}
