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
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define WAIT_MS 60000u
/* Rounds of 20 us sleeps while the test checks that nothing happens: the
 * workers park for at most 1 ms with a retry pending, so they look at the
 * clock dozens of times meanwhile. */
#define QUIET_ROUNDS 3000u

#define T0 10000000000ull  /* the fake clock's start: 10 s */
/* A retry budget that never refuses: budget_min alone covers every retry,
 * even on a worker that sees retries before any first run. */
#define NO_LIMIT 1000000u
#define HOLD (1ull << 63)  /* tag bit: the handler waits on the gate */
#define MAX_IDS 4096u

/* A server that fails every run before attempt succeed_at (0: every run). */
struct flaky {
	unsigned succeed_at;
	_Atomic uint64_t held;      /* blockers that have started */
	_Atomic uint64_t released;  /* blockers allowed to finish */
	_Atomic uint64_t handled;   /* handler runs */
	_Atomic uint64_t failed;    /* runs that returned an error */
	_Atomic uint64_t by_attempt[8]; /* runs by sy_msg_attempts(), 7+ last */
	_Atomic uint32_t runs[MAX_IDS];
	_Atomic uint32_t attempt[MAX_IDS]; /* sy_msg_attempts() in the last run */
};

static int flaky_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct flaky *f = ctx;
	uint64_t tag = sy_msg_tag(msg), id = tag & ~HOLD;
	unsigned a = sy_msg_attempts(msg);
	bool fail = f->succeed_at == 0 || a < f->succeed_at;

	(void)eng;
	if (tag & HOLD) {
		t_gate_wait(&f->held, &f->released, WAIT_MS);
	}
	if (id < MAX_IDS) {
		atomic_store(&f->attempt[id], a);
		atomic_fetch_add(&f->runs[id], 1);
	}
	atomic_fetch_add(&f->by_attempt[a < 7 ? a : 7], 1);
	if (fail)
		atomic_fetch_add(&f->failed, 1);
	/* Last: the test reads the counts above once it sees handled. */
	atomic_fetch_add(&f->handled, 1);
	return fail ? -EIO : 0;
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

static uint32_t server_new(sy_engine *eng, const char *name, struct flaky *f,
			   int worker)
{
	struct sy_server_opts so = { .worker = worker };
	uint32_t id;

	cr_assert_eq(sy_server_add(eng, name, flaky_handler, f, &so, &id), 0,
		     "sy_server_add: %s", sy_last_error());
	return id;
}

static uint32_t route_new(sy_engine *eng, const char *name,
			  struct sy_route_opts *ro)
{
	uint32_t id;

	if (!ro->policy)
		ro->policy = "round_robin";
	cr_assert_eq(sy_route_add(eng, name, ro, &id), 0, "sy_route_add: %s",
		     sy_last_error());
	return id;
}

static sy_msg *msg_new(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(tag));

	cr_assert_not_null(m, "sy_msg_alloc: %s", sy_last_error());
	memcpy(sy_msg_data(m), &tag, sizeof(tag));
	sy_msg_set_tag(m, tag);
	return m;
}

static void send_ids(sy_engine *eng, uint32_t route, uint64_t first,
		     unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(t_send_retry(eng, route, msg_new(eng, first + i),
					  WAIT_MS), 0);
}

/* Wait until sy_stats.delivered (handler runs, counted by a worker after
 * it has dealt with their results) reaches @p want. */
static bool wait_runs_counted(sy_engine *eng, uint64_t want)
{
	uint64_t end = t_now_ms() + WAIT_MS;
	struct sy_stats st;

	for (;;) {
		sy_engine_stats(eng, &st);
		if (st.delivered >= want)
			return true;
		if (t_now_ms() > end)
			return false;
		t_sleep_us(20);
	}
}

static bool wait_dead_letters(sy_engine *eng, size_t want)
{
	uint64_t end = t_now_ms() + WAIT_MS;

	while (sy_dlq_count(eng, NULL) < want) {
		if (t_now_ms() > end)
			return false;
		t_sleep_us(20);
	}
	return true;
}

/* Nothing more runs on @p f however long we wait. */
static void expect_quiet(struct flaky *f, uint64_t handled)
{
	for (unsigned i = 0; i < QUIET_ROUNDS; i++)
		t_sleep_us(20);
	cr_expect_eq(atomic_load(&f->handled), handled,
		     "%llu handler runs, want %llu",
		     (unsigned long long)atomic_load(&f->handled),
		     (unsigned long long)handled);
}

static void expect_balanced(sy_engine *eng)
{
	struct sy_accounting a;
	uint64_t by = 0;

	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		by += a.dead_lettered_by[r];
	cr_expect_eq(by, a.dead_lettered);
	cr_expect_eq(a.accepted, a.delivered + a.dead_lettered + a.evicted,
		     "accepted %llu != delivered %llu + dead-lettered %llu + "
		     "evicted %llu", (unsigned long long)a.accepted,
		     (unsigned long long)a.delivered,
		     (unsigned long long)a.dead_lettered,
		     (unsigned long long)a.evicted);
	cr_expect_eq(a.in_flight, 0);
}

/* What a drain hands over: per reason and per attempts count. */
struct letters {
	unsigned n;
	unsigned by_reason[SY_DL_REASONS];
	unsigned by_attempts[8];
	unsigned bad_id;          /* ids out of range or seen twice */
	uint8_t seen[MAX_IDS];
};

static void take_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			sy_msg *msg, void *ctx)
{
	struct letters *l = ctx;
	uint64_t id = dl->tag & ~HOLD;

	(void)eng;
	l->n++;
	if (dl->reason < SY_DL_REASONS)
		l->by_reason[dl->reason]++;
	l->by_attempts[dl->attempts < 7 ? dl->attempts : 7]++;
	if (id >= MAX_IDS || l->seen[id]++)
		l->bad_id++;
	sy_msg_free(msg);
}

static void drain_letters(sy_engine *eng, struct letters *l)
{
	memset(l, 0, sizeof(*l));
	cr_assert_geq(sy_dlq_drain(eng, NULL, take_letter, l), 0);
	cr_expect_eq(l->bad_id, 0, "%u dead letters with a stray or repeated id",
		     l->bad_id);
}

/* ------------------------------------------------------------------ */
/* Delivery through retries                                            */
/* ------------------------------------------------------------------ */

Test(retry_delivery, every_message_sent_to_a_failing_server_is_delivered_by_the_other)
{
	enum { N = 400 };
	struct flaky bad = { .succeed_at = 0 }, good = { .succeed_at = 1 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sids[2];
	struct sy_route_opts ro = { .n_servers = 2, .max_attempts = 2,
				    .retry_budget = 1.0 };
	struct sy_accounting a;
	struct sy_stats st;
	uint32_t route;

	sids[0] = server_new(eng, "bad", &bad, 0);
	sids[1] = server_new(eng, "good", &good, 1);
	ro.servers = sids;
	route = route_new(eng, "pair", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	/* round_robin from this thread's first pick: even ids go to "bad". */
	send_ids(eng, route, 0, N);
	cr_assert(t_wait_u64(&good.handled, N, WAIT_MS),
		  "%llu of %d messages delivered",
		  (unsigned long long)atomic_load(&good.handled), N);
	cr_assert_eq(sy_engine_stop(eng), 0);

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
	cr_expect_eq(st.delivered, N + N / 2);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, N);
	cr_expect_eq(a.delivered, N);
	cr_expect_eq(a.dead_lettered, 0);
	cr_expect_eq(a.retried, N / 2);
	expect_balanced(eng);
	sy_engine_destroy(eng);
}

Test(retry_delivery, exhausted_attempts_end_in_the_dlq_with_every_attempt_counted)
{
	enum { N = 50, ATTEMPTS = 3 };
	struct flaky a0 = { .succeed_at = 0 }, a1 = { .succeed_at = 0 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sids[2];
	struct sy_route_opts ro = { .n_servers = 2, .max_attempts = ATTEMPTS,
				    .retry_budget = 1000,
				    .retry_budget_min = NO_LIMIT };
	struct sy_accounting acc;
	struct letters l;
	uint32_t route;

	sids[0] = server_new(eng, "a0", &a0, 0);
	sids[1] = server_new(eng, "a1", &a1, 1);
	ro.servers = sids;
	route = route_new(eng, "pair", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 0, N);
	cr_assert(wait_dead_letters(eng, N), "%zu of %d messages dead-lettered",
		  sy_dlq_count(eng, NULL), N);
	cr_assert_eq(sy_engine_stop(eng), 0);

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
	expect_balanced(eng);
	drain_letters(eng, &l);
	cr_expect_eq(l.n, N);
	cr_expect_eq(l.by_reason[SY_DL_RETRIES_EXHAUSTED], N);
	cr_expect_eq(l.by_attempts[ATTEMPTS], N, "%u of %d letters show %d attempts",
		     l.by_attempts[ATTEMPTS], N, ATTEMPTS);
	sy_engine_destroy(eng);
}

Test(retry_delivery, route_without_retries_dead_letters_the_first_failure)
{
	enum { N = 20 };
	struct flaky f = { .succeed_at = 0 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sid, route;
	struct sy_route_opts ro = { .n_servers = 1, .policy = "direct" };
	struct sy_stats st;
	struct letters l;

	sid = server_new(eng, "bad", &f, 1);
	ro.servers = &sid;
	route = route_new(eng, "bad", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 0, N);
	cr_assert(wait_dead_letters(eng, N));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&f.handled), N);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.retried, 0);
	expect_balanced(eng);
	drain_letters(eng, &l);
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
	struct flaky f0 = { .succeed_at = 0 }, f1 = { .succeed_at = 0 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sids[2];
	struct sy_route_opts ro = { .n_servers = 2, .max_attempts = 2,
				    .retry_budget = 0.1, .retry_budget_min = 5 };
	uint64_t bound = n / 10 + 5 * workers;
	struct sy_stats st;
	struct letters l;
	uint32_t route;

	sids[0] = server_new(eng, "f0", &f0, 0);
	sids[1] = server_new(eng, "f1", &f1, workers > 1 ? 1 : 0);
	ro.servers = sids;
	route = route_new(eng, "pair", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 0, n);
	cr_assert(wait_dead_letters(eng, n), "%zu of %u messages dead-lettered",
		  sy_dlq_count(eng, NULL), n);
	cr_assert_eq(sy_engine_stop(eng), 0);

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
	expect_balanced(eng);
	drain_letters(eng, &l);
	cr_expect_eq(l.n, n);
	cr_expect_eq(l.by_reason[SY_DL_RETRIES_EXHAUSTED], n);
	cr_expect_eq(l.by_attempts[2], st.retried);
	cr_expect_eq(l.by_attempts[1], n - st.retried);
	sy_engine_destroy(eng);
}

Test(retry_budget, caps_retries_of_one_worker_at_its_share_of_first_runs)
{
	budget_run(1, 2000);
}

Test(retry_budget, caps_retries_of_two_workers_at_their_shares_of_first_runs)
{
	budget_run(2, 3000);
}

/*
 * failover sends every first attempt to p0 (worker 0); its retries run on
 * p1 (worker 1), whose retries run on p0 again. Each worker's budget is its
 * own share of its own first runs: worker 0 retries N / 10 + 5 messages,
 * worker 1, which ran no first attempt, only its minimum of 5.
 */
Test(retry_budget, worker_that_runs_only_retries_has_only_the_minimum)
{
	enum { N = 1000, MIN = 5 };
	struct flaky p0 = { .succeed_at = 0 }, p1 = { .succeed_at = 0 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sids[2];
	struct sy_route_opts ro = { .policy = "failover", .n_servers = 2,
				    .max_attempts = 3, .retry_budget = 0.1,
				    .retry_budget_min = MIN };
	struct sy_stats st;
	struct letters l;
	uint32_t route;

	sids[0] = server_new(eng, "p0", &p0, 0);
	sids[1] = server_new(eng, "p1", &p1, 1);
	ro.servers = sids;
	route = route_new(eng, "pair", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 0, N);
	cr_assert(wait_dead_letters(eng, N), "%zu of %d messages dead-lettered",
		  sy_dlq_count(eng, NULL), N);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&p0.by_attempt[1]), N);
	cr_expect_eq(atomic_load(&p1.by_attempt[2]), N / 10 + MIN,
		     "worker 0 retried %llu of its %d first runs",
		     (unsigned long long)atomic_load(&p1.by_attempt[2]), N);
	cr_expect_eq(atomic_load(&p0.by_attempt[3]), MIN,
		     "worker 1 retried %llu messages with no first run",
		     (unsigned long long)atomic_load(&p0.by_attempt[3]));
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.retried, N / 10 + 2 * MIN);
	expect_balanced(eng);
	drain_letters(eng, &l);
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
	struct flaky f = { .succeed_at = attempts };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route;
	struct sy_route_opts ro = {
		.n_servers = 1, .policy = "direct", .max_attempts = attempts,
		.retry_backoff_ns = BACKOFF_NS, .retry_backoff_max_ns = max_ns,
		.retry_budget = 1000, .retry_budget_min = NO_LIMIT,
	};
	struct sy_accounting a;
	uint64_t failed_at = T0;

	sid = server_new(eng, "flaky", &f, 1);
	ro.servers = &sid;
	route = route_new(eng, "flaky", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 7, 1);
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
		cr_assert(t_wait_u64(&f.handled, k + 1, WAIT_MS),
			  "retry %u did not run once its backoff had passed", k);
	}
	cr_assert(wait_runs_counted(eng, attempts));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&f.runs[7]), attempts);
	cr_expect_eq(atomic_load(&f.attempt[7]), attempts);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.delivered, 1);
	cr_expect_eq(a.retried, attempts - 1);
	expect_balanced(eng);
	sy_engine_destroy(eng);
}

Test(retry_backoff, retry_waits_for_its_backoff_on_the_engine_clock)
{
	/* Equal jitter: the backoff is in [b/2, b]. */
	const uint64_t earliest[] = { BACKOFF_NS / 2 };
	const uint64_t latest[] = { BACKOFF_NS };

	backoff_run(2, 0, earliest, latest);
}

Test(retry_backoff, backoff_doubles_per_attempt_up_to_the_cap)
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

Test(retry_shutdown, retries_still_waiting_are_dead_lettered_at_stop)
{
	enum { N = 30 };
	struct t_clock clock;
	struct flaky f = { .succeed_at = 2 };
	sy_engine *eng = engine_new(2, &clock);
	uint32_t sid, route;
	struct sy_route_opts ro = { .n_servers = 1, .policy = "direct",
				    .max_attempts = 3, .retry_budget = 1000,
				    .retry_budget_min = NO_LIMIT };
	struct sy_accounting a;
	struct letters l;

	sid = server_new(eng, "flaky", &f, 1);
	ro.servers = &sid;
	route = route_new(eng, "flaky", &ro);
	cr_assert_eq(sy_engine_start(eng), 0);
	send_ids(eng, route, 0, N);
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
	expect_balanced(eng);
	drain_letters(eng, &l);
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

Test(retry_shutdown, failures_while_the_engine_drains_are_dead_lettered_as_shutdown)
{
	enum { N = 10 };
	struct flaky f = { .succeed_at = 0 }, ok = { .succeed_at = 1 };
	struct stopper stop = { 0 };
	sy_engine *eng = engine_new(2, NULL);
	uint32_t sid, probe, route;
	struct sy_route_opts ro = { .n_servers = 1, .policy = "direct",
				    .max_attempts = 3, .retry_budget = 1000,
				    .retry_budget_min = NO_LIMIT };
	uint64_t probes = 0, end = t_now_ms() + WAIT_MS;
	struct letters l;
	pthread_t t;
	int rc;

	sid = server_new(eng, "failing", &f, 1);
	ro.servers = &sid;
	route = route_new(eng, "failing", &ro);
	probe = t_direct(eng, "probe", flaky_handler, &ok, 0, NULL);
	cr_assert_neq(probe, UINT32_MAX);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_send(eng, route, msg_new(eng, 0 | HOLD)), 0);
	cr_assert(t_wait_u64(&f.held, 1, WAIT_MS));
	send_ids(eng, route, 1, N);
	atomic_init(&stop.done, 0);
	stop.eng = eng;
	cr_assert_eq(pthread_create(&t, NULL, stop_main, &stop), 0);
	/* Once a send is refused with -ESHUTDOWN the engine is stopping. */
	do {
		sy_msg *m = msg_new(eng, 100);

		rc = sy_send(eng, probe, m);
		if (rc)
			sy_msg_free(m);
		else
			probes++;
	} while ((rc == 0 || rc == -EAGAIN) && t_now_ms() < end);
	atomic_store(&f.released, 1);
	cr_expect_eq(rc, -ESHUTDOWN);
	cr_assert(t_wait_u64(&stop.done, 1, WAIT_MS));
	pthread_join(t, NULL);
	cr_assert_eq(stop.rc, 0);
	cr_expect_eq(atomic_load(&f.handled), N + 1);
	cr_expect_eq(atomic_load(&ok.handled), probes);
	expect_balanced(eng);
	drain_letters(eng, &l);
	cr_expect_eq(l.n, N + 1);
	cr_expect_eq(l.by_reason[SY_DL_SHUTDOWN], N + 1,
		     "%u of %d failures while draining dead-lettered as shutdown "
		     "(%u as retries exhausted)", l.by_reason[SY_DL_SHUTDOWN],
		     N + 1, l.by_reason[SY_DL_RETRIES_EXHAUSTED]);
	cr_expect_eq(l.by_attempts[1], N + 1);
	sy_engine_destroy(eng);
}
