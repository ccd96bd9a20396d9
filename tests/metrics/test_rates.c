/*
 * Rates, error rates and queue depths over windows.
 *
 * Windows are made deterministic: the collector's interval is an hour, so
 * it never ticks during a test and only sy_metrics_refresh() closes a
 * window; the engine's clock is the test's own and moves STEP_NS before
 * each refresh, so every window is exactly STEP_NS long and a retention of
 * 3600 s keeps the last four windows. Before a refresh the test waits until
 * the shards have counted what it expects (the engine counts a handler run
 * after the handler returns), reading them the way the collector does.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/engine.h"
#include "core/slot.h"
#include "metrics/shard.h"
#include "tests/fixture.h"

#define WAIT_MS 60000u
#define HOUR_MS 3600000u
#define STEP_NS 1000000000000ull        /* 1000 s per window */
#define N 1000u                         /* messages per phase */
#define M 10u                           /* messages per growth step */

static struct t_clock fake_now = { 5 * STEP_NS };

static sy_engine *engine(void)
{
	struct sy_config cfg;
	sy_engine *eng;

	t_config(&cfg, 1, &fake_now);
	cfg.burst = 1;                      /* the worker takes one entry at a time */
	cfg.max_servers = 4;
	cfg.max_routes = 4;
	cfg.metrics_interval_ms = HOUR_MS;
	cfg.retention_ms = HOUR_MS;
	cfg.latency_sample = 1;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	return eng;
}

/* Handler runs the shards have counted, read as the collector reads them. */
static uint64_t counted_runs(sy_engine *eng)
{
	unsigned used = atomic_load(&eng->slots_used);
	uint64_t n = 0;

	for (unsigned i = 0; i < used; i++) {
		struct sy__slot *s = &eng->slots[i];

		if (!sy__slot_out(s) || !s->shard)
			continue;
		for (unsigned r = 0; r < eng->cfg.max_routes; r++) {
			n += atomic_load(&s->shard->route[r].v[SY_SC_DELIVERED]);
			n += atomic_load(&s->shard->route[r].v[SY_SC_FAILED]);
		}
	}
	return n;
}

static void wait_counted(sy_engine *eng, uint64_t runs)
{
	for (uint64_t end = t_now_ms() + WAIT_MS; counted_runs(eng) < runs;) {
		cr_assert(t_now_ms() < end, "runs not counted");
		sched_yield();
	}
}

/* Close a window of STEP_NS: move the clock, refresh, take the snapshot. */
static sy_snapshot *window(sy_engine *eng)
{
	sy_snapshot *snap;

	atomic_fetch_add(&fake_now.ns, STEP_NS);
	cr_assert_eq(sy_metrics_refresh(eng), 0);
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap);
	cr_assert_eq(sy_snapshot_window_ns(snap), STEP_NS);
	return snap;
}

/* ------------------------------------------------------------------ */
/* Error rates                                                         */
/* ------------------------------------------------------------------ */

/* Fails when the payload's byte says so. */
static int fail_on_mark(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)ctx;
	return *(unsigned char *)sy_msg_data(m) ? -EIO : 0;
}

static void send_marked(sy_engine *eng, uint32_t route, unsigned n,
			bool every_other_fails)
{
	for (unsigned i = 0; i < n; i++) {
		sy_msg *m = sy_msg_alloc(eng, 1);

		cr_assert_not_null(m);
		*(unsigned char *)sy_msg_data(m) = every_other_fails && i % 2;
		cr_assert_eq(t_send_retry(eng, route, m, WAIT_MS), 0);
	}
}

Test(metrics_rates, error_rate_recent_versus_since_start)
{
	sy_engine *eng = engine();
	const struct sy_series *e, *s;
	struct sy_hist_summary h;
	sy_snapshot *snap;
	uint32_t route;

	route = t_direct(eng, "flaky", fail_on_mark, NULL, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	/* Phase 1: no failures. */
	send_marked(eng, route, N, false);
	wait_counted(eng, N);
	snap = window(eng);
	e = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
	cr_assert_eq(e->recent.delivered, N);
	cr_assert_eq(e->error_rate, 0.0);
	cr_assert_eq(e->error_rate_recent, 0.0);
	/* N messages in 1000 s. */
	cr_assert_eq(e->sent_per_s, N / 1000.0);
	cr_assert_eq(e->delivered_per_s, N / 1000.0);
	sy_snapshot_release(snap);

	/* Phase 2: one in two fails. */
	send_marked(eng, route, N, true);
	wait_counted(eng, 2 * N);
	snap = window(eng);
	e = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
	cr_assert_eq(e->recent.failed, N / 2);
	cr_assert_eq(e->recent.delivered, N / 2);
	cr_assert_eq(e->error_rate_recent, 0.5);
	cr_assert(e->error_rate > 0.0 && e->error_rate < 0.5,
		  "since start %g is between the phases", e->error_rate);
	cr_assert_eq(e->error_rate, 0.25);
	cr_assert_eq(e->delivered_per_s, N / 2 / 1000.0);
	/* The route's and the server's series agree. */
	s = sy_snapshot_find(snap, SY_SERIES_ROUTE, "flaky");
	cr_assert_eq(s->error_rate_recent, 0.5);
	cr_assert_eq(s->error_rate, 0.25);
	s = sy_snapshot_find(snap, SY_SERIES_SERVER, "flaky");
	cr_assert_eq(s->error_rate_recent, 0.5);
	cr_assert_eq(s->error_rate, 0.25);
	/* Histograms: the window holds phase 2's samples, the total both. */
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_LATENCY, true, &h), 0);
	cr_assert_eq(h.count, N);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &h), 0);
	cr_assert_eq(h.count, 2 * N);
	sy_snapshot_release(snap);

	/* A window with no traffic: rates and recent error rate drop to 0. */
	snap = window(eng);
	e = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
	cr_assert_eq(e->recent.sent, 0);
	cr_assert_eq(e->sent_per_s, 0.0);
	cr_assert_eq(e->error_rate_recent, 0.0);
	cr_assert_eq(e->error_rate, 0.25);
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Queue depth                                                         */
/* ------------------------------------------------------------------ */

/* A handler that takes one permit per run and waits for it (bounded). */
static _Atomic uint64_t entered;
static _Atomic uint64_t permits;

static int gated(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	(void)ctx;
	atomic_fetch_add(&entered, 1);
	for (uint64_t end = t_now_ms() + WAIT_MS; t_now_ms() < end;) {
		uint64_t p = atomic_load(&permits);

		if (p && atomic_compare_exchange_weak(&permits, &p, p - 1))
			return 0;
		sched_yield();
	}
	return -ETIMEDOUT;
}

static void wait_entered(uint64_t n)
{
	for (uint64_t end = t_now_ms() + WAIT_MS; atomic_load(&entered) < n;) {
		cr_assert(t_now_ms() < end, "handler not entered");
		sched_yield();
	}
	cr_assert_eq(atomic_load(&entered), n);
}

static void send_n(sy_engine *eng, uint32_t route, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sy_msg *m = sy_msg_alloc(eng, 8);

		cr_assert_not_null(m);
		cr_assert_eq(sy_msg_send(eng, route, m), 0);
	}
}

/* Depth of worker 0's inbox in a new window. */
static struct sy_queue_depth depth_window(sy_engine *eng)
{
	struct sy_queue_depth q;
	sy_snapshot *snap = window(eng);

	cr_assert_eq(sy_snapshot_workers(snap), 1);
	cr_assert_eq(sy_snapshot_queue(snap, 0, &q), 0);
	sy_snapshot_release(snap);
	return q;
}

Test(metrics_rates, queue_depth_current_max_and_trend)
{
	/* Depths at each window, and the max over the last four. */
	static const uint64_t drain_max[] = { 40, 40, 40, 30 };
	sy_engine *eng = engine();
	struct sy_queue_depth q;
	uint32_t route;

	route = t_direct(eng, "gate", gated, NULL, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);
	/* One message holds the worker in its handler. */
	send_n(eng, route, 1);
	wait_entered(1);
	q = depth_window(eng);
	cr_assert(q.current == 0 && q.max == 0 && q.trend == 0.0);

	/* Growth: M more per window, nothing handled. */
	for (unsigned k = 1; k <= 4; k++) {
		send_n(eng, route, M);
		q = depth_window(eng);
		cr_assert_eq(q.current, k * M, "window %u: current %lu", k, q.current);
		cr_assert_eq(q.max, k * M);
		cr_assert(fabs(q.trend - M) < 1e-9, "growing: trend %g", q.trend);
	}

	/* Drain: M handled per window. Old windows leave the retention, so
	 * max falls back and the trend turns negative. */
	for (unsigned j = 1; j <= 4; j++) {
		atomic_fetch_add(&permits, M);
		/* The next message entered: the M before it took their permits. */
		wait_entered(1 + j * M);
		q = depth_window(eng);
		cr_assert_eq(q.current, (4 - j) * M, "drain %u: current %lu", j, q.current);
		cr_assert_eq(q.max, drain_max[j - 1], "drain %u: max %lu", j, q.max);
		if (j >= 2)
			cr_assert_lt(q.trend, 0.0, "draining: trend %g", q.trend);
		if (j >= 3)
			cr_assert(fabs(q.trend + M) < 1e-9, "draining: trend %g", q.trend);
	}
	/* Let the last message go. */
	atomic_fetch_add(&permits, 1);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_destroy(eng);
}
