/*
 * Snapshots of a real engine: every total against counts the test keeps
 * itself, lookup and iteration, reset, and the life of a reference.
 *
 * Rig: two workers; servers alpha (worker 0), beta and gamma (worker 1);
 * routes "rr" (round_robin over alpha and beta), "g" (direct to gamma) and
 * "to_alpha" (direct to alpha). Three producer threads send to rr and g.
 * gamma forwards a new message to to_alpha for one message in three: sends
 * from a worker (the "worker" transport). Every handler run whose sequence
 * number is a multiple of 5 fails; routes have no retries, so each failure
 * is also dead-lettered (reason handler_failed).
 *
 * Handlers count in atomics (no Criterion assertion off the test thread);
 * the test thread asserts once the engine is quiet. Each message carries
 * its producer and sequence number: a flag per message tells a duplicate.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define WAIT_MS 60000u
#define PRODUCERS 3
#define PER_PRODUCER 20000u
#define FORWARDER PRODUCERS         /* the producer id of forwarded messages */
#define SEQ_CAP (2 * PRODUCERS * PER_PRODUCER) /* per producer id, both phases */
#define EAGAIN_TRIES 100000u
#define REFRESH_TRIES 20000u

enum { ALPHA, BETA, GAMMA, NSRV };
enum { R_RR, R_G, R_TO_ALPHA, NROUTE };
enum { T_PRODUCER, T_WORKER, NTRANSPORT };

static const char *const srv_names[NSRV] = { "alpha", "beta", "gamma" };
static const char *const route_names[NROUTE] = { "rr", "g", "to_alpha" };

struct payload {
	uint32_t route;
	uint32_t producer;
	uint64_t seq;
};

/* What the test saw, in one phase. */
struct counts {
	_Atomic uint64_t sent[NROUTE];      /* accepted sends (forwards: optimistic) */
	_Atomic uint64_t rejected[NROUTE];  /* refused send calls */
	_Atomic uint64_t t_sent[NTRANSPORT];
	_Atomic uint64_t t_rejected[NTRANSPORT];
	_Atomic uint64_t delivered[NSRV];   /* handler runs that returned 0 */
	_Atomic uint64_t failed[NSRV];      /* handler runs that returned < 0 */
	_Atomic uint64_t r_delivered[NROUTE];
	_Atomic uint64_t r_failed[NROUTE];
	_Atomic uint64_t runs;
	_Atomic uint64_t accepted;          /* all sends, forwards included */
};

static struct {
	sy_engine *eng;
	uint32_t sid[NSRV];
	uint32_t rid[NROUTE];
	struct counts phase[2];
	struct counts *c;                   /* the phase running */
	_Atomic uint64_t fwd_seq;
	_Atomic uint64_t duplicates;
	_Atomic uint8_t *seen[PRODUCERS + 1];
} rig;

static void fill(sy_msg *m, uint32_t route, uint32_t producer, uint64_t seq)
{
	struct payload p = { route, producer, seq };

	memcpy(sy_msg_data(m), &p, sizeof(p));
}

/* gamma's forward: counted as accepted before the send, so that the test
 * never sees every run done while a forward is on its way. */
static void forward(sy_engine *eng)
{
	struct counts *c = rig.c;
	uint64_t seq = atomic_fetch_add(&rig.fwd_seq, 1);
	sy_msg *m = sy_msg_alloc(eng, sizeof(struct payload));

	if (!m)
		return;
	fill(m, R_TO_ALPHA, FORWARDER, seq);
	atomic_fetch_add(&c->accepted, 1);
	if (sy_msg_send(eng, rig.rid[R_TO_ALPHA], m) == 0) {
		atomic_fetch_add(&c->sent[R_TO_ALPHA], 1);
		atomic_fetch_add(&c->t_sent[T_WORKER], 1);
		return;
	}
	atomic_fetch_sub(&c->accepted, 1);
	atomic_fetch_add(&c->rejected[R_TO_ALPHA], 1);
	atomic_fetch_add(&c->t_rejected[T_WORKER], 1);
	sy_msg_free(m);
}

static int handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	unsigned srv = (unsigned)(uintptr_t)ctx;
	struct counts *c = rig.c;
	struct payload p;
	bool fail;

	memcpy(&p, sy_msg_data(m), sizeof(p));
	if (p.producer > FORWARDER || p.seq >= SEQ_CAP ||
	    atomic_exchange(&rig.seen[p.producer][p.seq], 1))
		atomic_fetch_add(&rig.duplicates, 1);
	if (srv == GAMMA && p.seq / 3 % 3 == 0)
		forward(eng);
	fail = p.seq % 5 == 0;
	atomic_fetch_add(fail ? &c->failed[srv] : &c->delivered[srv], 1);
	atomic_fetch_add(fail ? &c->r_failed[p.route] : &c->r_delivered[p.route], 1);
	/* Last: a run is counted once everything it sent is. */
	atomic_fetch_add(&c->runs, 1);
	return fail ? -EIO : 0;
}

static void rig_up(int metrics)
{
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = 2 };
	struct sy_config cfg;
	uint32_t both[2];

	memset(&rig, 0, sizeof(rig));
	rig.c = &rig.phase[0];
	for (unsigned p = 0; p <= PRODUCERS; p++) {
		rig.seen[p] = calloc(SEQ_CAP, sizeof(*rig.seen[p]));
		cr_assert_not_null(rig.seen[p]);
	}
	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.ring_size = 4096;
	cfg.max_servers = 8;
	cfg.max_routes = 8;
	cfg.metrics = metrics;
	cfg.metrics_interval_ms = 10;
	cfg.latency_sample = 1;
	cr_assert_eq(sy_engine_create(&cfg, &rig.eng), 0, "%s", sy_last_error());
	for (unsigned s = 0; s < NSRV; s++) {
		struct sy_server_opts so = { .worker = s == ALPHA ? 0 : 1, .worker_set = true };

		cr_assert_eq(sy_server_add(rig.eng, srv_names[s], handler,
					   (void *)(uintptr_t)s, &so, &rig.sid[s]), 0);
	}
	both[0] = rig.sid[ALPHA];
	both[1] = rig.sid[BETA];
	ro.servers = both;
	cr_assert_eq(sy_route_add(rig.eng, "rr", &ro, &rig.rid[R_RR]), 0);
	ro.policy = "direct";
	ro.n_servers = 1;
	ro.servers = &rig.sid[GAMMA];
	cr_assert_eq(sy_route_add(rig.eng, "g", &ro, &rig.rid[R_G]), 0);
	ro.servers = &rig.sid[ALPHA];
	cr_assert_eq(sy_route_add(rig.eng, "to_alpha", &ro, &rig.rid[R_TO_ALPHA]), 0);
}

static void rig_down(void)
{
	sy_engine_destroy(rig.eng);
	for (unsigned p = 0; p <= PRODUCERS; p++)
		free(rig.seen[p]);
}

struct producer_arg {
	unsigned id;
	uint64_t from;                      /* first sequence number */
	uint64_t n;
};

/* Send n messages, two in three to rr and one in three to g; retry -EAGAIN
 * (counting every refused call), give up after EAGAIN_TRIES. */
static void *producer(void *arg)
{
	const struct producer_arg *a = arg;
	struct counts *c = rig.c;

	for (uint64_t seq = a->from; seq < a->from + a->n; seq++) {
		unsigned r = seq % 3 == 2 ? R_G : R_RR;
		sy_msg *m = sy_msg_alloc(rig.eng, sizeof(struct payload));

		if (!m)
			break;
		fill(m, r, a->id, seq);
		for (unsigned tries = 0;; tries++) {
			int rc = sy_msg_send(rig.eng, rig.rid[r], m);

			if (rc == 0) {
				atomic_fetch_add(&c->sent[r], 1);
				atomic_fetch_add(&c->t_sent[T_PRODUCER], 1);
				atomic_fetch_add(&c->accepted, 1);
				break;
			}
			atomic_fetch_add(&c->rejected[r], 1);
			atomic_fetch_add(&c->t_rejected[T_PRODUCER], 1);
			if (rc != -EAGAIN || tries == EAGAIN_TRIES) {
				sy_msg_free(m);
				break;
			}
			sched_yield();
		}
	}
	return NULL;
}

/* Run @p producers threads of @p n messages each (sequence numbers from
 * @p from), join them, and wait until every accepted message has run. */
static void traffic(unsigned producers, uint64_t from, uint64_t n)
{
	struct producer_arg a[PRODUCERS];
	pthread_t t[PRODUCERS];

	for (unsigned i = 0; i < producers; i++) {
		a[i] = (struct producer_arg){ i, from, n };
		cr_assert_eq(pthread_create(&t[i], NULL, producer, &a[i]), 0);
	}
	for (unsigned i = 0; i < producers; i++)
		pthread_join(t[i], NULL);
	/* Producers are done; forwards count themselves before they send. */
	for (uint64_t end = t_now_ms() + WAIT_MS;
	     atomic_load(&rig.c->runs) != atomic_load(&rig.c->accepted);) {
		cr_assert(t_now_ms() < end, "handlers did not catch up");
		sched_yield();
	}
	cr_assert_eq(atomic_load(&rig.duplicates), 0);
}

/* Refresh until the engine series has counted @p runs handler runs (the
 * engine counts a run after its handler returns). Returns the snapshot. */
static sy_snapshot *snapshot_after(uint64_t runs)
{
	for (unsigned i = 0; i < REFRESH_TRIES; i++) {
		const struct sy_series *e;
		sy_snapshot *snap;

		cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
		snap = sy_metrics_snapshot(rig.eng);
		cr_assert_not_null(snap);
		e = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
		cr_assert_not_null(e);
		if (e->total.delivered + e->total.failed >= runs)
			return snap;
		sy_snapshot_release(snap);
		sched_yield();
	}
	cr_assert_fail("the engine never counted %lu runs", runs);
	return NULL;
}

static uint64_t sum(_Atomic uint64_t *v, unsigned n)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n; i++)
		s += atomic_load(&v[i]);
	return s;
}

static void assert_counter(const char *series, const char *field,
			   uint64_t got, uint64_t want)
{
	cr_assert_eq(got, want, "%s.%s: snapshot %lu, test counted %lu",
		     series, field, got, want);
}

/* Every total of @p snap against @p c. */
static void assert_totals(const sy_snapshot *snap, struct counts *c)
{
	const struct sy_series *s;
	struct sy_hist_summary h;
	uint64_t runs = atomic_load(&c->runs);

	for (unsigned i = 0; i < NSRV; i++) {
		uint64_t d = atomic_load(&c->delivered[i]), f = atomic_load(&c->failed[i]);

		s = sy_snapshot_find(snap, SY_SERIES_SERVER, srv_names[i]);
		cr_assert_not_null(s, "no series for server %s", srv_names[i]);
		assert_counter(s->name, "sent", s->total.sent, d + f);
		assert_counter(s->name, "delivered", s->total.delivered, d);
		assert_counter(s->name, "failed", s->total.failed, f);
		assert_counter(s->name, "dead_lettered",
			       s->total.dead_lettered[SY_DL_HANDLER_FAILED], f);
	}
	for (unsigned i = 0; i < NROUTE; i++) {
		uint64_t f = atomic_load(&c->r_failed[i]);

		s = sy_snapshot_find(snap, SY_SERIES_ROUTE, route_names[i]);
		cr_assert_not_null(s, "no series for route %s", route_names[i]);
		assert_counter(s->name, "sent", s->total.sent, atomic_load(&c->sent[i]));
		assert_counter(s->name, "rejected", s->total.rejected,
			       atomic_load(&c->rejected[i]));
		assert_counter(s->name, "delivered", s->total.delivered,
			       atomic_load(&c->r_delivered[i]));
		assert_counter(s->name, "failed", s->total.failed, f);
		assert_counter(s->name, "dead_lettered",
			       s->total.dead_lettered[SY_DL_HANDLER_FAILED], f);
	}
	s = sy_snapshot_find(snap, SY_SERIES_TRANSPORT, "producer");
	cr_assert_not_null(s);
	assert_counter("producer", "sent", s->total.sent, atomic_load(&c->t_sent[T_PRODUCER]));
	assert_counter("producer", "rejected", s->total.rejected,
		       atomic_load(&c->t_rejected[T_PRODUCER]));
	s = sy_snapshot_find(snap, SY_SERIES_TRANSPORT, "worker");
	cr_assert_not_null(s);
	assert_counter("worker", "sent", s->total.sent, atomic_load(&c->t_sent[T_WORKER]));
	assert_counter("worker", "rejected", s->total.rejected,
		       atomic_load(&c->t_rejected[T_WORKER]));
	s = sy_snapshot_find(snap, SY_SERIES_TRANSPORT, "reply");
	cr_assert_not_null(s);
	assert_counter("reply", "sent", s->total.sent, 0);
	s = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
	cr_assert_not_null(s);
	assert_counter("engine", "sent", s->total.sent, sum(c->sent, NROUTE));
	assert_counter("engine", "rejected", s->total.rejected, sum(c->rejected, NROUTE));
	assert_counter("engine", "delivered", s->total.delivered, sum(c->delivered, NSRV));
	assert_counter("engine", "failed", s->total.failed, sum(c->failed, NSRV));
	assert_counter("engine", "dead_lettered",
		       s->total.dead_lettered[SY_DL_HANDLER_FAILED], sum(c->failed, NSRV));
	assert_counter("engine", "runs", s->total.delivered + s->total.failed, runs);
	cr_assert_eq(s->total.sent, runs, "every accepted message ran once");
	/* latency_sample = 1: every send call is timed, every run too. */
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &h), 0);
	assert_counter("latency", "count", h.count, runs);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_SERVICE, false, &h), 0);
	assert_counter("service", "count", h.count, runs);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_RTT, false, &h), 0);
	assert_counter("rtt", "count", h.count, 0);
}

Test(metrics_snapshot, totals_after_stop_equal_the_test_counts)
{
	const struct sy_series *e;
	sy_snapshot *snap, *newer;

	rig_up(0);
	cr_assert_eq(sy_engine_start(rig.eng), 0);
	traffic(PRODUCERS, 0, PER_PRODUCER);
	cr_assert_eq(sy_engine_stop(rig.eng), 0);
	/* Stop published a last snapshot after the workers drained. */
	snap = sy_metrics_snapshot(rig.eng);
	cr_assert_not_null(snap);
	assert_totals(snap, rig.c);
	cr_assert_gt(atomic_load(&rig.c->t_sent[T_WORKER]), 0, "gamma forwarded");
	/* A refresh after stop merges in the calling thread: same totals,
	 * an empty window. */
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	newer = sy_metrics_snapshot(rig.eng);
	cr_assert_eq(sy_snapshot_seq(newer), sy_snapshot_seq(snap) + 1);
	assert_totals(newer, rig.c);
	e = sy_snapshot_find(newer, SY_SERIES_ENGINE, "engine");
	cr_assert(e->recent.sent == 0 && e->recent.delivered == 0 && e->recent.failed == 0);
	sy_snapshot_release(newer);
	sy_snapshot_release(snap);
	rig_down();
}

Test(metrics_snapshot, totals_after_refresh_equal_the_test_counts)
{
	sy_snapshot *snap;

	rig_up(0);
	cr_assert_eq(sy_engine_start(rig.eng), 0);
	traffic(PRODUCERS, 0, PER_PRODUCER);
	snap = snapshot_after(atomic_load(&rig.c->runs));
	assert_totals(snap, rig.c);
	sy_snapshot_release(snap);
	rig_down();
}

Test(metrics_snapshot, lookup_by_name_and_iteration)
{
	sy_snapshot *snap;
	uint32_t last = 0;

	rig_up(0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	snap = sy_metrics_snapshot(rig.eng);
	cr_assert_not_null(snap);
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_ENGINE), 1);
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_SERVER), NSRV);
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_ROUTE), NROUTE);
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_TRANSPORT), 3);
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_KINDS), 0);
	for (unsigned i = 0; i < NSRV; i++) {
		const struct sy_series *s = sy_snapshot_series(snap, SY_SERIES_SERVER, i);
		const struct sy_series *f;

		cr_assert_not_null(s);
		cr_assert_eq(s->kind, SY_SERIES_SERVER);
		cr_assert(i == 0 || s->id > last, "servers in id order");
		last = s->id;
		f = sy_snapshot_find(snap, SY_SERIES_SERVER, s->name);
		cr_assert_eq(f, s, "find(%s) is the series iterated", s->name);
		cr_assert_str_eq(s->name, srv_names[i], "ids follow the order added");
		cr_assert_eq(s->id, rig.sid[i]);
		cr_assert_eq(s->worker, i == ALPHA ? 0u : 1u);
		cr_assert(s->healthy);
		cr_assert_eq(s->breaker, SY_BREAKER_CLOSED);
	}
	cr_assert_null(sy_snapshot_series(snap, SY_SERIES_SERVER, NSRV));
	for (unsigned i = 0; i < NROUTE; i++) {
		const struct sy_series *s = sy_snapshot_find(snap, SY_SERIES_ROUTE,
							     route_names[i]);

		cr_assert_not_null(s);
		cr_assert_eq(s->id, rig.rid[i]);
		cr_assert_str_eq(s->name, route_names[i]);
	}
	cr_assert_str_eq(sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 0)->name, "producer");
	cr_assert_str_eq(sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 1)->name, "worker");
	cr_assert_str_eq(sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 2)->name, "reply");
	cr_assert_str_eq(sy_snapshot_series(snap, SY_SERIES_ENGINE, 0)->name, "engine");
	cr_assert_null(sy_snapshot_find(snap, SY_SERIES_SERVER, "rr"));
	cr_assert_null(sy_snapshot_find(snap, SY_SERIES_ROUTE, "nope"));
	cr_assert_null(sy_snapshot_find(snap, SY_SERIES_ROUTE, NULL));
	cr_assert_eq(sy_snapshot_workers(snap), 2);
	sy_snapshot_release(snap);
	rig_down();
}

Test(metrics_snapshot, removed_and_added_series_follow_the_registry)
{
	struct sy_server_opts so = { .worker = 0, .worker_set = true };
	uint32_t sid;
	sy_snapshot *snap;

	rig_up(0);
	cr_assert_eq(sy_route_remove(rig.eng, rig.rid[R_G]), 0);
	cr_assert_eq(sy_server_add(rig.eng, "delta", handler, (void *)(uintptr_t)ALPHA,
				   &so, &sid), 0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	snap = sy_metrics_snapshot(rig.eng);
	cr_assert_null(sy_snapshot_find(snap, SY_SERIES_ROUTE, "g"));
	cr_assert_eq(sy_snapshot_count(snap, SY_SERIES_ROUTE), NROUTE - 1);
	cr_assert_not_null(sy_snapshot_find(snap, SY_SERIES_SERVER, "delta"));
	sy_snapshot_release(snap);
	rig_down();
}

Test(metrics_snapshot, reset_zeroes_totals)
{
	const struct sy_series *e;
	sy_snapshot *snap;
	struct sy_hist_summary h;

	rig_up(0);
	cr_assert_eq(sy_engine_start(rig.eng), 0);
	traffic(PRODUCERS, 0, PER_PRODUCER / 4);
	sy_snapshot_release(snapshot_after(atomic_load(&rig.c->runs)));
	cr_assert_eq(sy_metrics_reset(rig.eng), 0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	snap = sy_metrics_snapshot(rig.eng);
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		for (unsigned i = 0; i < sy_snapshot_count(snap, k); i++) {
			const struct sy_series *s = sy_snapshot_series(snap, k, i);
			const struct sy_counters *t = &s->total;

			cr_assert(t->sent == 0 && t->delivered == 0 && t->failed == 0 &&
				  t->rejected == 0 && t->retried == 0 &&
				  t->dead_lettered[SY_DL_HANDLER_FAILED] == 0,
				  "%s: totals after reset", s->name);
			cr_assert_eq(s->recent.sent, 0, "%s: recent after reset", s->name);
			cr_assert_eq(s->error_rate, 0.0);
		}
	}
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		cr_assert_eq(sy_snapshot_hist(snap, k, false, &h), 0);
		cr_assert_eq(h.count, 0, "histogram %u after reset", k);
		cr_assert_eq(sy_snapshot_hist_count_le(snap, k, UINT64_MAX), 0);
	}
	sy_snapshot_release(snap);
	/* Totals restart: they count the second phase only. */
	rig.c = &rig.phase[1];
	traffic(1, PER_PRODUCER, PER_PRODUCER / 4);
	snap = snapshot_after(atomic_load(&rig.c->runs));
	assert_totals(snap, rig.c);
	e = sy_snapshot_find(snap, SY_SERIES_ENGINE, "engine");
	cr_assert_eq(e->total.sent, atomic_load(&rig.c->accepted));
	sy_snapshot_release(snap);
	rig_down();
}

Test(metrics_snapshot, a_held_snapshot_outlives_newer_ones)
{
	sy_snapshot *old, *newer;
	const struct sy_series *s;

	rig_up(0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	old = sy_metrics_snapshot(rig.eng);
	cr_assert_not_null(old);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	newer = sy_metrics_snapshot(rig.eng);
	cr_assert_neq(old, newer);
	cr_assert_gt(sy_snapshot_seq(newer), sy_snapshot_seq(old));
	/* The old one is still whole (ASan: no use after free). */
	s = sy_snapshot_find(old, SY_SERIES_SERVER, "gamma");
	cr_assert_not_null(s);
	cr_assert_str_eq(s->name, "gamma");
	cr_assert_eq(sy_snapshot_seq(old) + 2, sy_snapshot_seq(newer));
	sy_snapshot_release(old);
	sy_snapshot_release(newer);
	/* ...and a snapshot outlives its engine. */
	old = sy_metrics_snapshot(rig.eng);
	rig_down();
	cr_assert_str_eq(sy_snapshot_find(old, SY_SERIES_ROUTE, "rr")->name, "rr");
	sy_snapshot_release(old);
}

Test(metrics_snapshot, none_before_the_first_and_none_with_metrics_off)
{
	sy_snapshot *snap;

	rig_up(0);
	/* Not started: no collector thread, no snapshot yet. */
	cr_assert_null(sy_metrics_snapshot(rig.eng));
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	snap = sy_metrics_snapshot(rig.eng);
	cr_assert_not_null(snap);
	cr_assert_eq(sy_snapshot_seq(snap), 1);
	sy_snapshot_release(snap);
	rig_down();

	rig_up(-1);
	cr_assert_null(sy_metrics_snapshot(rig.eng));
	cr_assert_eq(sy_metrics_refresh(rig.eng), -ENOTSUP);
	cr_assert_eq(sy_metrics_reset(rig.eng), -ENOTSUP);
	cr_assert_eq(sy_engine_start(rig.eng), 0);
	traffic(1, 0, 100);
	cr_assert_null(sy_metrics_snapshot(rig.eng));
	rig_down();
}

Test(metrics_snapshot, accessors_refuse_bad_arguments)
{
	struct sy_hist_summary h;
	struct sy_queue_depth q;
	sy_snapshot *snap;

	rig_up(0);
	cr_assert_eq(sy_metrics_refresh(rig.eng), 0);
	snap = sy_metrics_snapshot(rig.eng);
	cr_assert_eq(sy_snapshot_hist(snap, SY_HIST_KINDS, false, &h), -EINVAL);
	cr_assert_eq(sy_snapshot_hist_count_le(snap, SY_HIST_KINDS, 1), 0);
	cr_assert_eq(sy_snapshot_queue(snap, 2, &q), -EINVAL);
	cr_assert_eq(sy_snapshot_queue(snap, 1, &q), 0);
	cr_assert_null(sy_snapshot_series(snap, SY_SERIES_KINDS, 0));
	sy_snapshot_release(snap);
	sy_snapshot_release(NULL);
	rig_down();
}

Test(metrics_snapshot, a_pinned_collector_publishes_on_its_own)
{
	struct sy_config cfg;
	sy_engine *eng;
	sy_snapshot *snap = NULL;

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.collector_cpu = "0";
	cfg.metrics_interval_ms = 5;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(eng), 0, "%s", sy_last_error());
	/* No refresh: the interval alone brings the first snapshots. */
	for (uint64_t end = t_now_ms() + WAIT_MS; !snap || sy_snapshot_seq(snap) < 3;) {
		cr_assert(t_now_ms() < end, "no snapshot from the collector");
		sy_snapshot_release(snap);
		sched_yield();
		snap = sy_metrics_snapshot(eng);
	}
	cr_assert_gt(sy_snapshot_window_ns(snap), 0);
	cr_assert_gt(sy_snapshot_time_ns(snap), 0);
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}
