/*
 * Stress: snapshot readers while traffic flows and the collector publishes
 * every millisecond.
 *
 * Two producers send (single sends and bursts) to three routes over four
 * servers on two workers; one message in seven fails its handler. Three
 * readers take snapshots without pause, hold each for a while (up to
 * HELD snapshots at once, so that references outlive newer publications),
 * and check every one:
 *  - the engine series equals the sum of the route series (every route
 *    lives through the run) for every counter the routes keep, and its
 *    `rejected` equals the producer and worker transports' together;
 *  - no window count exceeds its total, error rates lie in [0, 1], a
 *    queue's current depth does not exceed its max;
 *  - each histogram's count equals the sum of its buckets, and its
 *    statistics are ordered (min <= p50 <= ... <= p99.9 <= max);
 *  - between a reader's successive snapshots the sequence number and the
 *    time never go back and no total decreases.
 * A control thread refreshes now and then, so requests and ticks mix (a
 * refresh that times out on a loaded machine is counted, not a failure).
 *
 * After sy_engine_stop() the last snapshot must be exact: engine = sum of
 * servers = sum of routes, sends = the producers' own count of accepted
 * sends, handler runs = the handlers' own count.
 *
 * While traffic flows the server sums are not compared: a handler run is
 * counted by two stores (its server's counter, then its route's), and the
 * collector may read between them.
 *
 * A plain executable (it also runs under ThreadSanitizer; AddressSanitizer
 * catches a snapshot freed while held). Every wait is bounded.
 * Usage: stress_metrics [scale]: each producer sends PER_PRODUCER * scale
 * messages (scale > 0, default 1). Exit status 0 on success, 1 on failure;
 * one summary line on stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/snapshot.h"
#include "switchyard.h"

#define PRODUCERS 2
#define READERS 3
#define SERVERS 4
#define ROUTES 3
#define PER_PRODUCER 2000000u  /* at scale 1 */
#define BURST 8u
#define HELD 8u                /* snapshots a reader holds at once */
#define EAGAIN_TRIES 1000u
#define WAIT_S 600             /* bound of the whole traffic phase */

static const char *const route_names[ROUTES] = { "rr", "d0", "d3" };

static struct {
	sy_engine *eng;
	uint32_t rid[ROUTES];
	uint64_t per_producer;
	_Atomic uint64_t accepted;     /* accepted sends, all producers */
	_Atomic uint64_t runs;         /* handler runs */
	_Atomic bool done;             /* readers and the refresher stop */
	_Atomic uint64_t snapshots;    /* checked by the readers */
	_Atomic uint64_t refresh_timeouts;
	_Atomic uint64_t newest_seq;   /* highest sequence number seen (a hint) */
	pthread_mutex_t fail_lock;
	char failure[512];             /* the first failure, "" if none */
} run;

static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&run.fail_lock);
	if (!run.failure[0]) {
		va_start(ap, fmt);
		vsnprintf(run.failure, sizeof(run.failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&run.fail_lock);
	atomic_store(&run.done, true);
}

static int handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)ctx;
	atomic_fetch_add_explicit(&run.runs, 1, memory_order_relaxed);
	return sy_msg_tag(m) % 7 == 0 ? -EIO : 0;
}

/* ---- producers ---- */

static sy_msg *message(uint64_t tag)
{
	sy_msg *m = sy_msg_alloc(run.eng, 16);

	if (m)
		sy_msg_set_tag(m, tag);
	return m;
}

/* One message with sy_send(), more with sy_send_burst(): the number
 * accepted, or the error. */
static int send_some(uint32_t route, sy_msg **msgs, unsigned n)
{
	int rc;

	if (n > 1)
		return sy_send_burst(run.eng, route, msgs, n);
	rc = sy_send(run.eng, route, msgs[0]);
	return rc ? rc : 1;
}

/* Send @p n messages of @p msgs, retrying what was refused with -EAGAIN;
 * frees what is given up. */
static void send_burst(uint32_t route, sy_msg **msgs, unsigned n)
{
	unsigned tries = 0;

	while (n) {
		int k = send_some(route, msgs, n);

		if (k > 0) {
			atomic_fetch_add_explicit(&run.accepted, (uint64_t)k,
						  memory_order_relaxed);
			memmove(msgs, msgs + k, (n - (unsigned)k) * sizeof(*msgs));
			n -= (unsigned)k;
			continue;
		}
		if (k != -EAGAIN || ++tries > EAGAIN_TRIES) {
			if (k != -EAGAIN)
				fail("send: %s", sy_strerror(k));
			while (n)
				sy_msg_free(msgs[--n]);
			return;
		}
		sched_yield();
	}
}

static void *producer_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	sy_msg *burst[BURST];

	for (uint64_t seq = 0; seq < run.per_producer && !atomic_load(&run.done);) {
		uint32_t route = run.rid[seq % ROUTES];
		unsigned n = seq % 5 == 0 ? BURST : 1;

		for (unsigned i = 0; i < n; i++) {
			burst[i] = message(seq * PRODUCERS + id + i);
			if (!burst[i]) {
				fail("sy_msg_alloc: %s", sy_last_error());
				n = i;
			}
		}
		send_burst(route, burst, n);
		seq += n ? n : 1;
	}
	return NULL;
}

/* ---- readers ---- */

static bool counters_le(const struct sy_counters *a, const struct sy_counters *b)
{
	if (a->sent > b->sent || a->delivered > b->delivered ||
	    a->failed > b->failed || a->retried > b->retried ||
	    a->rejected > b->rejected || a->transitions > b->transitions)
		return false;
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		if (a->dead_lettered[i] > b->dead_lettered[i])
			return false;
	return true;
}

static void counters_add(struct sy_counters *into, const struct sy_counters *c)
{
	into->sent += c->sent;
	into->delivered += c->delivered;
	into->failed += c->failed;
	into->retried += c->retried;
	into->rejected += c->rejected;
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		into->dead_lettered[i] += c->dead_lettered[i];
}

/* The counters the routes keep agree with the engine's. */
static bool same_route_counts(const struct sy_counters *a,
			      const struct sy_counters *b)
{
	if (a->sent != b->sent || a->delivered != b->delivered ||
	    a->failed != b->failed || a->retried != b->retried)
		return false;
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		if (a->dead_lettered[i] != b->dead_lettered[i])
			return false;
	return true;
}

static void check_sums(const sy_snapshot *snap)
{
	const struct sy_series *e = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	struct sy_counters total = { 0 }, recent = { 0 };
	uint64_t rejected = 0;

	for (unsigned i = 0; i < sy_snapshot_count(snap, SY_SERIES_ROUTE); i++) {
		const struct sy_series *s = sy_snapshot_series(snap, SY_SERIES_ROUTE, i);

		counters_add(&total, &s->total);
		counters_add(&recent, &s->recent);
	}
	if (!same_route_counts(&total, &e->total) ||
	    !same_route_counts(&recent, &e->recent))
		fail("snapshot %lu: engine != sum of routes (sent %lu vs %lu)",
		     sy_snapshot_seq(snap), e->total.sent, total.sent);
	rejected += sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 0)->total.rejected;
	rejected += sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 1)->total.rejected;
	if (rejected != e->total.rejected)
		fail("snapshot %lu: engine rejected %lu, transports %lu",
		     sy_snapshot_seq(snap), e->total.rejected, rejected);
}

static void check_series(const sy_snapshot *snap)
{
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		for (unsigned i = 0; i < sy_snapshot_count(snap, k); i++) {
			const struct sy_series *s = sy_snapshot_series(snap, k, i);

			if (!counters_le(&s->recent, &s->total))
				fail("snapshot %lu: %s: window above total",
				     sy_snapshot_seq(snap), s->name);
			if (s->error_rate < 0 || s->error_rate > 1 ||
			    s->error_rate_recent < 0 || s->error_rate_recent > 1)
				fail("%s: error rate out of [0, 1]", s->name);
		}
	}
	for (unsigned w = 0; w < sy_snapshot_workers(snap); w++) {
		struct sy_queue_depth q;

		if (sy_snapshot_queue(snap, w, &q) || q.current > q.max)
			fail("worker %u: depth %lu above max %lu", w, q.current, q.max);
	}
}

static bool summary_ordered(const struct sy_hist_summary *h)
{
	if (!h->count)
		return !h->min && !h->max && !h->p50 && !h->p999;
	return h->min <= h->p50 && h->p50 <= h->p90 && h->p90 <= h->p95 &&
	       h->p95 <= h->p99 && h->p99 <= h->p999 && h->p999 <= h->max &&
	       h->mean >= (double)h->min && h->mean <= (double)h->max;
}

static void check_hists(const sy_snapshot *snap)
{
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		const struct sy_hist *h = &snap->hist[k];
		struct sy_hist_summary total, recent;
		uint64_t n = 0;

		for (unsigned i = 0; i < SY_HIST_BUCKETS; i++)
			n += h->b[i];
		sy_snapshot_hist(snap, k, false, &total);
		sy_snapshot_hist(snap, k, true, &recent);
		if (n != h->count || total.count != n)
			fail("histogram %u: count %lu, buckets %lu", k, total.count, n);
		if (recent.count > total.count)
			fail("histogram %u: window above total", k);
		if (!summary_ordered(&total) || !summary_ordered(&recent))
			fail("histogram %u: statistics out of order", k);
	}
}

/* Nothing in @p b is older or smaller than in @p a (b was taken later). */
static void check_progress(const sy_snapshot *a, const sy_snapshot *b)
{
	if (sy_snapshot_seq(b) < sy_snapshot_seq(a) ||
	    sy_snapshot_time_ns(b) < sy_snapshot_time_ns(a))
		fail("snapshot %lu after %lu", sy_snapshot_seq(b), sy_snapshot_seq(a));
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		for (unsigned i = 0; i < sy_snapshot_count(a, k); i++) {
			const struct sy_series *s = sy_snapshot_series(a, k, i);
			const struct sy_series *t = sy_snapshot_find(b, k, s->name);

			if (!t || !counters_le(&s->total, &t->total))
				fail("%s: totals went back from %lu to %lu",
				     s->name, sy_snapshot_seq(a), sy_snapshot_seq(b));
		}
	}
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		struct sy_hist_summary x, y;

		sy_snapshot_hist(a, k, false, &x);
		sy_snapshot_hist(b, k, false, &y);
		if (y.count < x.count)
			fail("histogram %u went back", k);
	}
}

static void check(const sy_snapshot *snap)
{
	check_sums(snap);
	check_series(snap);
	check_hists(snap);
	atomic_fetch_add_explicit(&run.snapshots, 1, memory_order_relaxed);
}

static void *reader_main(void *arg)
{
	sy_snapshot *held[HELD] = { NULL };
	sy_snapshot *last = NULL;
	unsigned next = 0;

	(void)arg;
	while (!atomic_load(&run.done)) {
		sy_snapshot *snap = sy_metrics_snapshot(run.eng);

		if (!snap) {
			sched_yield();
			continue;
		}
		check(snap);
		if (last)
			check_progress(last, snap);
		last = snap;
		if (sy_snapshot_seq(snap) > atomic_load(&run.newest_seq))
			atomic_store(&run.newest_seq, sy_snapshot_seq(snap));
		/* Hold it: release the one taken HELD snapshots ago. */
		sy_snapshot_release(held[next]);
		held[next] = snap;
		next = (next + 1) % HELD;
		/* Two CPUs: leave the collector its turn now and then. */
		if (next == 0)
			sched_yield();
	}
	for (unsigned i = 0; i < HELD; i++)
		sy_snapshot_release(held[i]);
	return NULL;
}

/* Requests to the collector mixed with its own ticks. */
static void *refresher_main(void *arg)
{
	struct timespec pause = { 0, 3000000 };

	(void)arg;
	while (!atomic_load(&run.done)) {
		int rc = sy_metrics_refresh(run.eng);

		/* A loaded machine may keep the collector past the 1 s bound. */
		if (rc == -ETIMEDOUT)
			atomic_fetch_add_explicit(&run.refresh_timeouts, 1,
						  memory_order_relaxed);
		else if (rc)
			fail("sy_metrics_refresh: %s", sy_strerror(rc));
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* ---- set-up and the final check ---- */

static bool setup_failed(const char *what)
{
	fail("%s: %s", what, sy_last_error());
	return false;
}

static bool setup(void)
{
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = SERVERS };
	uint32_t sid[SERVERS];
	struct sy_config cfg;
	char name[16];

	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.max_servers = 8;
	cfg.max_routes = 8;
	cfg.metrics_interval_ms = 1;
	cfg.latency_sample = 4;
	if (sy_engine_create(&cfg, &run.eng))
		return setup_failed("sy_engine_create");
	for (unsigned s = 0; s < SERVERS; s++) {
		struct sy_server_opts so = { .worker = (int)(s % 2) };

		snprintf(name, sizeof(name), "s%u", s);
		if (sy_server_add(run.eng, name, handler, NULL, &so, &sid[s]))
			return setup_failed("sy_server_add");
	}
	ro.servers = sid;
	if (sy_route_add(run.eng, route_names[0], &ro, &run.rid[0]))
		return setup_failed("sy_route_add");
	ro.policy = "direct";
	ro.n_servers = 1;
	ro.servers = &sid[0];
	if (sy_route_add(run.eng, route_names[1], &ro, &run.rid[1]))
		return setup_failed("sy_route_add");
	ro.servers = &sid[3];
	if (sy_route_add(run.eng, route_names[2], &ro, &run.rid[2]))
		return setup_failed("sy_route_add");
	if (sy_engine_start(run.eng))
		return setup_failed("sy_engine_start");
	return true;
}

/* After stop: every sum exact, and equal to what the threads counted. */
static void check_final(void)
{
	sy_snapshot *snap = sy_metrics_snapshot(run.eng);
	const struct sy_series *e;
	struct sy_counters servers = { 0 };
	uint64_t runs = atomic_load(&run.runs);

	if (!snap) {
		fail("no snapshot after stop");
		return;
	}
	check(snap);
	e = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	for (unsigned i = 0; i < sy_snapshot_count(snap, SY_SERIES_SERVER); i++)
		counters_add(&servers, &sy_snapshot_series(snap, SY_SERIES_SERVER, i)->total);
	if (!same_route_counts(&servers, &e->total))
		fail("after stop: servers sent %lu, engine %lu",
		     servers.sent, e->total.sent);
	if (e->total.sent != atomic_load(&run.accepted))
		fail("after stop: engine sent %lu, producers %lu",
		     e->total.sent, atomic_load(&run.accepted));
	if (e->total.delivered + e->total.failed != runs)
		fail("after stop: engine runs %lu, handlers %lu",
		     e->total.delivered + e->total.failed, runs);
	if (sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 0)->total.sent != e->total.sent)
		fail("after stop: producer transport disagrees");
	sy_snapshot_release(snap);
}

static void join_all(pthread_t *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

int main(int argc, char **argv)
{
	double scale = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	pthread_t producers[PRODUCERS], readers[READERS], refresher;
	unsigned np = 0, nr = 0;
	bool refreshing = false;
	time_t start = time(NULL);

	if (!(scale > 0) || scale > 1000) {
		fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
		return 1;
	}
	pthread_mutex_init(&run.fail_lock, NULL);
	run.per_producer = (uint64_t)(PER_PRODUCER * scale);
	if (setup()) {
		for (; nr < READERS; nr++)
			if (pthread_create(&readers[nr], NULL, reader_main, NULL))
				break;
		refreshing = !pthread_create(&refresher, NULL, refresher_main, NULL);
		for (; np < PRODUCERS; np++)
			if (pthread_create(&producers[np], NULL, producer_main,
					   (void *)(uintptr_t)np))
				break;
		join_all(producers, np);
		/* Readers keep going a little while the engine drains. */
		while (atomic_load(&run.snapshots) < 1000 && !atomic_load(&run.done) &&
		       time(NULL) - start < WAIT_S)
			sched_yield();
		atomic_store(&run.done, true);
		join_all(readers, nr);
		if (refreshing)
			pthread_join(refresher, NULL);
		if (np < PRODUCERS || nr < READERS || !refreshing)
			fail("pthread_create failed");
		sy_engine_stop(run.eng);
		check_final();
	}
	if (run.eng)
		sy_engine_destroy(run.eng);
	printf("stress_metrics: %s: %lu messages, %lu handler runs, %lu snapshots "
	       "published, %lu checked, %lu refreshes timed out%s%s\n",
	       run.failure[0] ? "FAIL" : "ok", atomic_load(&run.accepted),
	       atomic_load(&run.runs), atomic_load(&run.newest_seq),
	       atomic_load(&run.snapshots), atomic_load(&run.refresh_timeouts),
	       run.failure[0] ? ": " : "", run.failure);
	return run.failure[0] ? 1 : 0;
}
