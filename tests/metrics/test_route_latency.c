/*
 * Per-route latency and the inboxes' backpressure thresholds in snapshots.
 *
 * Latency: the engine's clock reads T on the sending (test) thread and
 * T + delay on every other thread, so each timed message waits exactly
 * `delay` from its send to its handler's start. Two routes get different
 * delays in turn; each route's quantiles must show its own delay (to
 * within the coarse histogram's 12.5%), its window only what happened in
 * it, and the engine-wide histogram both.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define N 2000u
#define FAST_NS 2000u
#define SLOW_NS 3000000u
#define RING 1024u                   /* a ring holds RING - 1 entries */

static pthread_t sender;
static _Atomic uint64_t delay_ns;

static uint64_t split_clock(void *ctx)
{
	(void)ctx;
	return 1000000000ull + (pthread_equal(pthread_self(), sender) ? 0 :
				atomic_load(&delay_ns));
}

static sy_engine *engine_with_split_clock(void)
{
	struct sy_config cfg;

	sender = pthread_self();
	t_config(&cfg, 2, NULL);
	cfg.clock = split_clock;
	cfg.latency_sample = 1;
	cfg.ring_size = RING;
	cfg.metrics_interval_ms = 60000; /* windows end at our refreshes only */
	return t_create(&cfg);
}

static const struct sy_series *route_series(sy_snapshot *snap, const char *name)
{
	const struct sy_series *s = sy_snapshot_find(snap, SY_SERIES_ROUTE, name);

	cr_assert_not_null(s, "no series for route %s", name);
	return s;
}

static void expect_near(uint64_t got, uint64_t want, const char *what)
{
	cr_expect(got >= want - want / 8 && got <= want + want / 8,
		  "%s is %llu ns, expected %llu within 12.5%%", what,
		  (unsigned long long)got, (unsigned long long)want);
}

static void expect_latency(const struct sy_latency *l, uint64_t samples,
			   uint64_t ns, const char *what)
{
	cr_expect_eq(l->samples, samples, "%s: %llu samples, expected %llu",
		     what, (unsigned long long)l->samples,
		     (unsigned long long)samples);
	if (!samples)
		return;
	expect_near(l->p50_ns, ns, what);
	expect_near(l->p99_ns, ns, what);
	expect_near(l->p999_ns, ns, what);
}

/* Send N messages to @p route with every wait @p ns, and let them run. */
static void phase(sy_engine *eng, uint32_t route, struct t_server *s,
		  uint64_t first, uint64_t ns)
{
	atomic_store(&delay_ns, ns);
	t_send_tags(eng, route, first, N);
	cr_assert(t_wait_u64(&s->handled, first + N, T_WAIT_MS));
	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
}

Test(metrics_route_latency, each_route_shows_its_own_wait)
{
	static struct t_server fast_srv, slow_srv;
	sy_engine *eng = engine_with_split_clock();
	uint32_t fast = t_direct(eng, "fast", t_server_handler, &fast_srv, 0, NULL);
	uint32_t slow = t_direct(eng, "slow", t_server_handler, &slow_srv, 1, NULL);
	struct sy_hist_summary all;
	sy_snapshot *snap;

	cr_assert_eq(sy_engine_start(eng), 0);
	phase(eng, fast, &fast_srv, 0, FAST_NS);
	snap = sy_metrics_snapshot(eng);
	expect_latency(&route_series(snap, "fast")->latency_recent, N, FAST_NS,
		       "fast, first window");
	expect_latency(&route_series(snap, "slow")->latency_recent, 0, 0,
		       "slow, first window");
	sy_snapshot_release(snap);

	phase(eng, slow, &slow_srv, 0, SLOW_NS);
	snap = sy_metrics_snapshot(eng);
	expect_latency(&route_series(snap, "fast")->latency_total, N, FAST_NS,
		       "fast since the start");
	expect_latency(&route_series(snap, "fast")->latency_recent, 0, 0,
		       "fast, second window");
	expect_latency(&route_series(snap, "slow")->latency_recent, N, SLOW_NS,
		       "slow, second window");
	expect_latency(&route_series(snap, "slow")->latency_total, N, SLOW_NS,
		       "slow since the start");
	/* The engine-wide histogram holds both, half each. */
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &all), 0);
	cr_expect_eq(all.count, 2 * N);
	cr_expect_eq(all.min, FAST_NS);
	cr_expect_eq(all.max, SLOW_NS);
	/* Every sample's time in the ring too: the worker read the clock for
	 * each batch that held one, however far behind it ran. */
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_SOJOURN, false, &all), 0);
	cr_expect_eq(all.count, 2 * N);
	cr_expect_eq(all.min, FAST_NS);
	cr_expect_eq(all.max, SLOW_NS);
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}

/* Send msgs in bursts of @p n through @p route, waiting out full rings. */
static void send_bursts(sy_engine *eng, uint32_t route, unsigned bursts,
			unsigned n)
{
	sy_msg *b[32];
	int rc;

	cr_assert_leq(n, 32);
	for (unsigned k = 0; k < bursts; k++) {
		cr_assert_eq(sy_msg_alloc_burst(eng, 8, b, n), (int)n);
		rc = t_send_burst_retry(eng, route, b, n, T_WAIT_MS);
		cr_assert_eq(rc, 0, "burst: %s", sy_strerror(rc));
	}
}

/*
 * Every latency sample, however it was sent (a direct route's single
 * sends and bursts, a route with a policy), has its time in the ring: the
 * worker reads the clock for every batch that takes one.
 */
Test(metrics_route_latency, every_sample_has_its_time_in_the_ring)
{
	static struct t_server one, two, three;
	sy_engine *eng = engine_with_split_clock();
	uint32_t direct = t_direct(eng, "direct", t_server_handler, &one, 0, NULL);
	uint32_t ids[2] = { t_add_counter(eng, "two", &two, 0),
			    t_add_counter(eng, "three", &three, 1) };
	uint32_t spread = t_add_route(eng, "spread", (struct sy_route_opts){ 0 },
				      ids, 2);
	struct sy_hist_summary lat, soj;
	sy_snapshot *snap;

	cr_assert_eq(sy_engine_start(eng), 0);
	atomic_store(&delay_ns, FAST_NS);
	t_send_tags(eng, direct, 0, N);
	send_bursts(eng, direct, N / 32, 32);
	t_send_tags(eng, spread, 0, N);
	cr_assert(t_wait_u64(&one.handled, N + N / 32 * 32, T_WAIT_MS));
	/* Between them: a send refused by a full ring goes to the other
	 * server when it is sent again. */
	for (uint64_t end = t_now_ms() + T_WAIT_MS;
	     atomic_load(&two.handled) + atomic_load(&three.handled) < N;
	     sched_yield())
		cr_assert_lt(t_now_ms(), end, "the spread route's messages did not run");
	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
	snap = sy_metrics_snapshot(eng);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &lat), 0);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_SOJOURN, false, &soj), 0);
	/* One sample a single send, one a burst (its first message). */
	cr_expect_eq(lat.count, 2 * N + N / 32);
	cr_expect_eq(soj.count, lat.count, "%llu samples, %llu times in the ring",
		     (unsigned long long)lat.count, (unsigned long long)soj.count);
	cr_expect_eq(soj.min, FAST_NS);
	cr_expect_eq(soj.max, FAST_NS);
	/* Each sample under its own route: a burst's too, whose messages
	 * carry no route until something reads it. */
	expect_latency(&route_series(snap, "direct")->latency_total,
		       N + N / 32, FAST_NS, "the direct route");
	expect_latency(&route_series(snap, "spread")->latency_total, N,
		       FAST_NS, "the spread route");
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}

Test(metrics_route_latency, a_new_route_on_a_used_id_starts_from_nothing)
{
	static struct t_server srv;
	sy_engine *eng = engine_with_split_clock();
	uint32_t sid = t_add_counter(eng, "s", &srv, 0);
	uint32_t first = t_add_route(eng, "first", (struct sy_route_opts){ 0 },
				     &sid, 1);
	uint32_t second;
	sy_snapshot *snap;

	cr_assert_eq(sy_engine_start(eng), 0);
	atomic_store(&delay_ns, SLOW_NS);
	t_send_tags(eng, first, 0, N);
	cr_assert(t_wait_u64(&srv.handled, N, T_WAIT_MS));
	cr_assert_eq(sy_route_remove(eng, first), 0);
	second = t_add_route(eng, "second", (struct sy_route_opts){ 0 }, &sid, 1);
	cr_assert_eq(second, first, "the test needs the id reused");
	phase(eng, second, &srv, N, FAST_NS);
	snap = sy_metrics_snapshot(eng);
	expect_latency(&route_series(snap, "second")->latency_total, N, FAST_NS,
		       "the second route since it was added");
	expect_latency(&route_series(snap, "second")->latency_recent, N, FAST_NS,
		       "the second route's window");
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}

/* Worker 0 serves a route refusing at 1/2 of a ring and one at 1/4 (and a
 * route without backpressure); worker 1 only routes without. */
Test(metrics_route_latency, inboxes_show_the_lowest_threshold_of_their_routes)
{
	static struct t_server a, b, c;
	sy_engine *eng = engine_with_split_clock();
	uint32_t sa = t_add_counter(eng, "a", &a, 0);
	uint32_t sb = t_add_counter(eng, "b", &b, 0);
	uint32_t sc = t_add_counter(eng, "c", &c, 1);
	const unsigned cap = RING - 1;
	uint32_t quarter;
	struct sy_queue_depth q0, q1;
	sy_snapshot *snap;

	t_add_route(eng, "half", (struct sy_route_opts){
		.backpressure = SY_BP_REJECT, .bp_high = 0.5 }, &sa, 1);
	quarter = t_add_route(eng, "quarter", (struct sy_route_opts){
		.backpressure = SY_BP_SPILL, .bp_high = 0.25 },
		(uint32_t[]){ sb, sc }, 2);
	t_add_route(eng, "plain", (struct sy_route_opts){ 0 }, &sc, 1);
	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
	snap = sy_metrics_snapshot(eng);
	cr_assert_eq(sy_snapshot_queue(snap, 0, &q0), 0);
	cr_assert_eq(sy_snapshot_queue(snap, 1, &q1), 0);
	/* "quarter" has a server on each worker. */
	cr_expect_eq(q0.bp_threshold, (cap + 3) / 4, "worker 0: %llu",
		     (unsigned long long)q0.bp_threshold);
	cr_expect_eq(q1.bp_threshold, (cap + 3) / 4, "worker 1: %llu",
		     (unsigned long long)q1.bp_threshold);
	sy_snapshot_release(snap);

	/* Without "quarter", worker 0 has "half" and worker 1 none. */
	cr_assert_eq(sy_route_remove(eng, quarter), 0);
	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
	snap = sy_metrics_snapshot(eng);
	cr_assert_eq(sy_snapshot_queue(snap, 0, &q0), 0);
	cr_assert_eq(sy_snapshot_queue(snap, 1, &q1), 0);
	cr_expect_eq(q0.bp_threshold, (cap + 1) / 2);
	cr_expect_eq(q1.bp_threshold, 0u, "worker 1 serves no route with backpressure");
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}
