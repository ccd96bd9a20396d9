/*
 * The metrics collector (collector.h, docs/metrics.md): reads the engine
 * (every slot's shard, the inbox depths, the servers' names and states,
 * the route names), hands it to a merge (metrics/merge.h) and publishes
 * the snapshot the merge builds.
 *
 * Threads and locks.
 *  - The collector thread runs from sy__collector_start() to
 *    sy__collector_stop() and merges every interval, or when
 *    sy_metrics_refresh() asks (c->lock, c->cond). Without it (engine not
 *    started, or stopped) a refresh merges in the calling thread.
 *  - merge_lock serializes merges and guards the merge. Lock order:
 *    eng->lock, then merge_lock. The collector thread only ever *tries*
 *    eng->lock (to read the servers): sy__collector_stop() joins it while
 *    holding eng->lock, and sy_server_remove() waits for a grace period
 *    while holding it. When the lock is busy the merge keeps the server
 *    names and states it read last; counters are never stale.
 *  - Readers take no lock: the published pointer is loaded inside an RCU
 *    read-side section and a reference taken (metrics/snapshot.h).
 *
 * Ordering.
 *  P1 publish() stores the new snapshot with release; pairs with A1 in
 *     sy_metrics_snapshot(), so a reader sees the contents it points to.
 *  S1 a shard is read only after sy__slot_out() (acquire) returned the
 *     slot's rings: pairs with the release that publishes them in
 *     sy__slot_setup(), after the shard was created.
 *  The shard counters are single-writer counters (metrics/counter.h): a
 *  merge while traffic flows is a recent view; once the writers are quiet
 *  (after the workers are joined at stop) it is exact.
 *
 * Progress: readers are wait-free; the collector and a refresh block on
 * merge_lock only behind another merge.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/breaker.h"
#include "core/collector.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/rcu.h"
#include "core/remote.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/worker.h"
#include "metrics/merge.h"
#include "metrics/snapshot.h"

#define SY_REFRESH_WAIT_S 1           /* sy_metrics_refresh() gives up after */

struct sy__collector {
	struct sy_engine *eng;
	_Atomic(struct sy_snapshot *) current; /* P1 / A1 */
	_Atomic bool reset;               /* the next merge takes a baseline */

	/* The collector thread, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;              /* requests and answers, both ways */
	pthread_t thread;
	bool running;                     /* changes with eng->lock held too */
	bool quit;
	uint64_t asked;                   /* refresh requests so far */
	uint64_t answered;                /* requests a merge has served */

	pthread_mutex_t merge_lock;
	struct sy__merge *merge;          /* under merge_lock */
};

/* ---- reading the engine ---- */

/* Every slot's shard and every inbox's depth. */
static void shards_read(struct sy__collector *c)
{
	struct sy_engine *eng = c->eng;
	unsigned used = atomic_load_explicit(&eng->slots_used,
					     memory_order_acquire);

	for (unsigned i = 0; i < used; i++) {
		struct sy__slot *s = &eng->slots[i];
		struct sy__ring *out = sy__slot_out(s); /* S1 */

		if (!out)
			continue;
		for (unsigned w = 0; w < eng->nworkers; w++)
			sy__merge_depth(c->merge, w, sy__ring_count(&out[w]));
		if (s->shard)
			sy__merge_shard(c->merge, s->shard, s->is_worker);
	}
}

/* Names, states and breaker transitions of the servers, and the routes'
 * backpressure thresholds per worker, with eng->lock held (by the caller or
 * by us). */
static void servers_read(struct sy__collector *c)
{
	struct sy_engine *eng = c->eng;

	for (unsigned id = 0; id < eng->cfg.max_servers; id++) {
		const struct sy__server *srv = eng->servers[id];
		struct sy__server_view v;

		if (!srv) {
			sy__merge_server(c->merge, id, NULL);
			continue;
		}
		memcpy(v.name, srv->name, sizeof(v.name));
		v.worker = srv->worker;
		v.breaker = srv->breaker ? sy__breaker_get(srv->breaker) :
					   SY_BREAKER_CLOSED;
		v.healthy = !(atomic_load_explicit(&srv->gate,
						   memory_order_relaxed) &
			      SY_GATE_UNHEALTHY);
		v.transitions = atomic_load_explicit(&srv->transitions,
						     memory_order_relaxed);
		sy__merge_server(c->merge, id, &v);
	}
	/* The routes' servers are freed under eng->lock only. */
	sy__merge_thresholds_clear(c->merge);
	for (unsigned id = 0; id < eng->cfg.max_routes; id++) {
		const struct sy__route *rt =
			atomic_load_explicit(&eng->routes[id], memory_order_acquire);

		for (unsigned i = 0; rt && rt->bp_mode != SY_BP_OFF && i < rt->n; i++)
			sy__merge_threshold(c->merge, rt->servers[i]->worker,
					    rt->bp_high);
	}
}

/* Read the servers if eng->lock can be had (or is held by the caller, @p
 * have_lock). @return whether they were read. */
static bool servers_refresh(struct sy__collector *c, bool have_lock)
{
	struct sy_engine *eng = c->eng;

	if (!have_lock && pthread_mutex_trylock(&eng->lock) != 0)
		return false;
	servers_read(c);
	if (!have_lock)
		pthread_mutex_unlock(&eng->lock);
	return true;
}

/* Route names, inside a read-side section. */
static void routes_read(struct sy__collector *c)
{
	struct sy_engine *eng = c->eng;

	sy__read_lock();
	for (unsigned id = 0; id < eng->cfg.max_routes; id++) {
		/* Pairs with R1 in registry.c: the route is initialized. */
		const struct sy__route *rt =
			atomic_load_explicit(&eng->routes[id], memory_order_acquire);

		sy__merge_route(c->merge, id, rt ? rt->name : NULL);
	}
	sy__read_unlock();
}

/*
 * A server or route was just added under id @p id, with eng->lock held, so
 * no merge reads the registry meanwhile: its totals start now.
 */
void sy__collector_id_added(struct sy_engine *eng, bool server, uint32_t id)
{
	struct sy__collector *c = eng->collector;
	unsigned used;
	uint64_t now[SY_SC_COUNT] = { 0 }, lat[SY_COARSE_BUCKETS] = { 0 };

	if (!c)
		return;
	pthread_mutex_lock(&c->merge_lock);
	used = atomic_load_explicit(&eng->slots_used, memory_order_acquire);
	for (unsigned i = 0; i < used; i++) {
		if (!eng->slots[i].shard)
			continue;
		sy__shard_id_add(eng->slots[i].shard, server, id, now);
		if (!server)
			sy__shard_lat_add(eng->slots[i].shard, id, lat);
	}
	sy__merge_id_added(c->merge, server, id, now, lat);
	pthread_mutex_unlock(&c->merge_lock);
}

/* ---- publishing ---- */

/* call_rcu: the collector's reference to a replaced snapshot. */
static void snapshot_drop_rcu(struct rcu_head *head)
{
	sy__rcu_callback_start();
	sy__snapshot_put(caa_container_of(head, struct sy_snapshot, rcu));
	sy__rcu_callback_end();
}

/* Publish @p snap; the previous one loses the collector's reference after
 * a grace period. The calling thread is registered with RCU. */
static void publish(struct sy__collector *c, struct sy_snapshot *snap)
{
	struct sy_snapshot *old;

	/* P1: release, pairs with A1 in sy_metrics_snapshot(). */
	old = atomic_exchange_explicit(&c->current, snap, memory_order_release);
	if (old)
		sy__call_rcu(&old->rcu, snapshot_drop_rcu);
}

/*
 * Merge every shard and publish a snapshot. @p have_lock: the caller holds
 * eng->lock. The calling thread is registered with RCU and not in a
 * read-side section.
 */
static void collect(struct sy__collector *c, bool have_lock)
{
	struct sy_snapshot *snap;
	bool fresh, reset;

	pthread_mutex_lock(&c->merge_lock);
	sy__merge_begin(c->merge);
	shards_read(c);
	fresh = servers_refresh(c, have_lock);
	routes_read(c);
	reset = atomic_exchange_explicit(&c->reset, false, memory_order_relaxed);
	snap = sy__merge_finish(c->merge, sy__now(c->eng), fresh, reset);
	if (snap) {
		sy__remote_stats(c->eng, &snap->nats);
		publish(c, snap);
	}
	pthread_mutex_unlock(&c->merge_lock);
}

/* ---- the collector thread ---- */

static void ts_add_ms(struct timespec *ts, unsigned ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The next tick after a merge: one interval on, or from now if the merge
 * overran it. Refreshes in between do not move it. */
static void tick_next(struct timespec *next, unsigned ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ts_before(&now, next))
		return;
	ts_add_ms(next, ms);
	if (ts_before(next, &now)) {
		*next = now;
		ts_add_ms(next, ms);
	}
}

static void *collector_main(void *arg)
{
	struct sy__collector *c = arg;
	unsigned ms = c->eng->cfg.metrics_interval_ms;
	struct timespec next;
	uint64_t asked;

	pthread_setname_np(pthread_self(), "sy-collector");
	urcu_memb_register_thread();
	clock_gettime(CLOCK_MONOTONIC, &next);
	ts_add_ms(&next, ms);
	pthread_mutex_lock(&c->lock);
	while (!c->quit) {
		if (c->asked == c->answered &&
		    pthread_cond_timedwait(&c->cond, &c->lock, &next) != ETIMEDOUT)
			continue;         /* a request, a stop, or spurious */
		asked = c->asked;
		pthread_mutex_unlock(&c->lock);
		collect(c, false);
		tick_next(&next, ms);
		pthread_mutex_lock(&c->lock);
		c->answered = asked;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	urcu_memb_unregister_thread();
	return NULL;
}

/* Stop and join the collector thread if it runs. Leaves `running` set:
 * the caller clears it after the last merge. */
static bool collector_join(struct sy__collector *c)
{
	bool running;

	pthread_mutex_lock(&c->lock);
	running = c->running;
	c->quit = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (running)
		pthread_join(c->thread, NULL);
	return running;
}

/* No collector thread any more; answer every request made so far (the
 * caller has just published a snapshot newer than all of them). */
static void collector_gone(struct sy__collector *c)
{
	pthread_mutex_lock(&c->lock);
	c->running = false;
	c->quit = false;
	c->answered = c->asked;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* ---- life cycle (collector.h) ---- */

int sy__collector_init(struct sy_engine *eng)
{
	const struct sy__merge_dims d = {
		.max_servers = eng->cfg.max_servers,
		.max_routes = eng->cfg.max_routes,
		.workers = eng->nworkers,
		.route_lats = sy__slot_route_lats(eng),
		.retention_ms = eng->cfg.retention_ms,
		.metrics_interval_ms = eng->cfg.metrics_interval_ms,
	};
	pthread_condattr_t ca;
	struct sy__collector *c;

	if (!eng->cfg.metrics)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->eng = eng;
	atomic_init(&c->current, NULL);
	atomic_init(&c->reset, false);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->merge_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	eng->collector = c;      /* sy__collector_destroy() frees a partial one */
	/* The first window starts at engine create. */
	c->merge = sy__merge_create(&d, sy__now(eng));
	return c->merge ? 0 : -ENOMEM;
}

int sy__collector_start(struct sy_engine *eng)
{
	struct sy__collector *c = eng->collector;
	int cpu = eng->cfg.collector_cpu;
	pthread_attr_t attr;
	cpu_set_t set;
	int rc = 0;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (c->running)
		goto out_unlock;
	pthread_attr_init(&attr);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	rc = pthread_create(&c->thread, &attr, collector_main, c);
	pthread_attr_destroy(&attr);
	if (rc) {
		rc = sy__fail(rc == EINVAL ? -EINVAL : -EAGAIN,
			      "metrics collector: cannot start it (CPU %d): %s",
			      cpu, strerror(rc));
		goto out_unlock;
	}
	c->running = true;
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void sy__collector_stop(struct sy_engine *eng)
{
	struct sy__collector *c = eng->collector;

	if (!c)
		return;
	collector_join(c);
	/* The workers have exited: this merge is exact. */
	sy__rcu_reader_ensure();
	collect(c, true);
	collector_gone(c);
}

void sy__collector_destroy(struct sy_engine *eng)
{
	struct sy__collector *c = eng->collector;
	struct sy_snapshot *last;

	if (!c)
		return;
	if (collector_join(c))
		collector_gone(c);
	last = atomic_exchange_explicit(&c->current, NULL, memory_order_relaxed);
	if (last) {
		sy__synchronize_rcu();
		sy__snapshot_put(last);
	}
	/* Every dropped reference's callback has run: no snapshot is left
	 * but those that readers still hold. */
	sy__rcu_barrier();
	sy__merge_destroy(c->merge);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->merge_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
	eng->collector = NULL;
}

/* ---- public functions ---- */

SY_API sy_snapshot *sy_metrics_snapshot(sy_engine *eng)
{
	struct sy__collector *c;
	struct sy_snapshot *snap;

	SY__NONNULL_OR(eng, NULL);
	c = eng->collector;
	if (!c) {
		sy__fail(-ENOTSUP, "metrics are off in this engine");
		return sy__failed_null(__func__, -ENOTSUP);
	}
	sy__rcu_reader_ensure();
	sy__read_lock();
	/* A1: acquire, pairs with P1 in publish(). */
	snap = atomic_load_explicit(&c->current, memory_order_acquire);
	/* The collector's own reference is dropped only after a grace
	 * period, so inside this section the count is above zero. */
	if (snap)
		atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
	sy__read_unlock();
	return snap;
}

uint64_t sy__collector_rtt_p95(struct sy_engine *eng)
{
	struct sy__collector *c = eng->collector;
	struct sy_snapshot *snap;
	uint64_t p95 = 0;

	if (!c)
		return 0;
	sy__rcu_reader_ensure();
	sy__read_lock();
	/* A1 as in sy_metrics_snapshot(); the snapshot outlives the section. */
	snap = atomic_load_explicit(&c->current, memory_order_acquire);
	if (snap)
		p95 = snap->recent[SY_HIST_RTT].count ?
		      snap->recent[SY_HIST_RTT].p95 :
		      snap->total[SY_HIST_RTT].p95;
	sy__read_unlock();
	return p95;
}

/* Ask the running collector for a merge and wait for it. */
static int collector_ask(struct sy__collector *c)
{
	struct timespec deadline;
	uint64_t ticket;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SY_REFRESH_WAIT_S;
	pthread_mutex_lock(&c->lock);
	ticket = ++c->asked;
	pthread_cond_broadcast(&c->cond);
	while (c->answered < ticket && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
	rc = c->answered >= ticket ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

SY_API int sy_metrics_refresh(sy_engine *eng)
{
	struct sy__collector *c;
	bool running;

	SY__NONNULL(eng);
	c = eng->collector;
	if (!c)
		return sy__failed(__func__, sy__fail(-ENOTSUP,
			"metrics are off in this engine"));
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK,
			"called from a handler"));
	/* `running` changes only with eng->lock held (start, stop). */
	pthread_mutex_lock(&eng->lock);
	pthread_mutex_lock(&c->lock);
	running = c->running;
	pthread_mutex_unlock(&c->lock);
	if (!running) {
		sy__rcu_reader_ensure();
		collect(c, true);
		pthread_mutex_unlock(&eng->lock);
		return 0;
	}
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, collector_ask(c));
}

SY_API int sy_metrics_reset(sy_engine *eng)
{
	SY__NONNULL(eng);
	if (!eng->collector)
		return sy__failed(__func__, sy__fail(-ENOTSUP,
			"metrics are off in this engine"));
	/* Relaxed: the next merge to look takes it; a refresh after this
	 * call is ordered after it by the locks it takes. */
	atomic_store_explicit(&eng->collector->reset, true, memory_order_relaxed);
	return 0;
}
