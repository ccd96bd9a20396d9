/*
 * The metrics collector: merges the slots' shards into snapshots and
 * publishes them (metrics.h, docs/metrics.md).
 *
 * Design. Every shard has one writer, so nothing is ever zeroed: a merge
 * (a *raw*) is the sum of every shard's counters and histograms at one
 * moment, per server id, per route id and per transport. Three raws are
 * kept: the current merge, the previous one (the start of the window) and
 * the baseline (the totals' zero: the state at the last reset, per id the
 * state when the id last changed owner). Totals are current - baseline,
 * the window is current - previous, both saturating at 0.
 *
 * Threads and locks.
 *  - The collector thread runs from sy__metrics_start() to
 *    sy__metrics_stop() and merges every interval, or when
 *    sy_metrics_refresh() asks (m->lock, m->cond). Without it (engine not
 *    started, or stopped) a refresh merges in the calling thread.
 *  - merge_lock serializes merges and guards every field below it in
 *    struct sy__metrics. Lock order: eng->lock, then merge_lock. The
 *    collector thread only ever *tries* eng->lock (to read the servers):
 *    sy__metrics_stop() joins it while holding eng->lock, and
 *    sy_server_remove() waits for a grace period while holding it. When
 *    the lock is busy the merge reuses the server names and states it read
 *    last; counters are never stale.
 *  - Readers take no lock: the published pointer is loaded inside an RCU
 *    read-side section and a reference taken (snapshot.h).
 *
 * Ordering.
 *  P1 publish() stores the new snapshot with release; pairs with A1 in
 *     sy_metrics_snapshot(), so a reader sees the contents it points to.
 *  S1 a shard is read only after sy__slot_out() (acquire) returned the
 *     slot's rings: pairs with the release that publishes them in
 *     sy__slot_setup(), after the shard was created.
 *  The shard counters themselves are relaxed loads: a merge while traffic
 *  flows is a recent view; once the writers are quiet (after the workers
 *  are joined at stop) it is exact.
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
#include "core/engine_internal.h"
#include "metrics/metrics.h"
#include "metrics/snapshot.h"

#define SY_WINDOWS_MAX 4096u          /* retained windows, at most */
#define SY_REFRESH_WAIT_S 1           /* sy_metrics_refresh() gives up after */

/* One merge: sums over every shard. */
struct raw {
	uint64_t time_ns;                 /* engine clock */
	uint64_t (*server)[SY_SC_COUNT];  /* [max_servers] */
	uint64_t (*route)[SY_SC_COUNT];   /* [max_routes] */
	uint64_t *transitions;            /* [max_servers], live servers */
	uint64_t transport[SY_TRANSPORTS][SY_SC_COUNT];
	uint64_t engine[SY_SC_COUNT];     /* see engine_sum() */
	struct sy_hist hist[SY_HIST_KINDS];
};

/* What a merge knows about a server id: read under eng->lock. */
struct server_info {
	bool live;
	bool healthy;
	enum sy_breaker_state breaker;
	unsigned worker;
	char name[SY_NAME_MAX];
};

/* A server or route id: its name now and at the previous merge ("" for
 * none), to notice when an id changes owner. */
struct id_info {
	bool live;
	char name[SY_NAME_MAX];
	char seen[SY_NAME_MAX];
};

/* Past windows, a ring: their sequence numbers, times and inbox depths. */
struct windows {
	unsigned cap;
	unsigned first;                   /* oldest */
	unsigned n;
	uint64_t *seq;                    /* [cap] */
	uint64_t *time_ns;                /* [cap] */
	uint64_t *depth;                  /* [cap * workers] */
};

struct sy__metrics {
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

	/* Merge state, under merge_lock. */
	pthread_mutex_t merge_lock;
	struct raw raws[2];
	struct raw *cur;                  /* the merge in progress */
	struct raw *prev;                 /* the previous merge */
	struct raw base;                  /* the totals' zero */
	struct server_info *servers;      /* [max_servers], last read */
	struct id_info *server_ids;       /* [max_servers] */
	struct id_info *route_ids;        /* [max_routes] */
	uint64_t *depth;                  /* [workers], this merge */
	struct windows win;
	struct sy_hist scratch;           /* a window's histogram */
	uint64_t seq;                     /* snapshots published */
};

static const char *const transport_names[SY_TRANSPORTS] = {
	[SY_TRANSPORT_PRODUCER] = "producer",
	[SY_TRANSPORT_WORKER] = "worker",
	[SY_TRANSPORT_REPLY] = "reply",
};

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* ---- raws ---- */

static int raw_alloc(struct raw *r, const struct sy__config *cfg)
{
	r->server = calloc(cfg->max_servers, sizeof(*r->server));
	r->route = calloc(cfg->max_routes, sizeof(*r->route));
	r->transitions = calloc(cfg->max_servers, sizeof(*r->transitions));
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy_hist_clear(&r->hist[k]);
	return r->server && r->route && r->transitions ? 0 : -ENOMEM;
}

static void raw_free(struct raw *r)
{
	free(r->server);
	free(r->route);
	free(r->transitions);
}

/* Every counter 0 and every histogram empty (the time is left alone). */
static void raw_clear(struct raw *r, const struct sy__config *cfg)
{
	memset(r->server, 0, cfg->max_servers * sizeof(*r->server));
	memset(r->route, 0, cfg->max_routes * sizeof(*r->route));
	memset(r->transitions, 0, cfg->max_servers * sizeof(*r->transitions));
	memset(r->transport, 0, sizeof(r->transport));
	memset(r->engine, 0, sizeof(r->engine));
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy_hist_clear(&r->hist[k]);
}

static void raw_copy(struct raw *dst, const struct raw *src,
		     const struct sy__config *cfg)
{
	dst->time_ns = src->time_ns;
	memcpy(dst->server, src->server, cfg->max_servers * sizeof(*dst->server));
	memcpy(dst->route, src->route, cfg->max_routes * sizeof(*dst->route));
	memcpy(dst->transitions, src->transitions,
	       cfg->max_servers * sizeof(*dst->transitions));
	memcpy(dst->transport, src->transport, sizeof(dst->transport));
	memcpy(dst->engine, src->engine, sizeof(dst->engine));
	memcpy(dst->hist, src->hist, sizeof(dst->hist));
}

/* ---- reading the engine ---- */

/* Add @p n shard counter sets into @p into, relaxed loads. */
static void sctr_add(uint64_t (*into)[SY_SC_COUNT], const struct sy__sctr *c,
		     unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			into[i][f] += atomic_load_explicit(&c[i].v[f],
							   memory_order_relaxed);
}

/*
 * Add a shard's route counters into @p into; @return the messages it sent
 * (its transport's `sent`: senders count each message per route and per
 * server only, and a shard belongs to one kind of thread).
 */
static uint64_t routes_add(uint64_t (*into)[SY_SC_COUNT],
			   const struct sy__sctr *c, unsigned n)
{
	uint64_t sent = 0;

	for (unsigned i = 0; i < n; i++) {
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			into[i][f] += atomic_load_explicit(&c[i].v[f],
							   memory_order_relaxed);
		sent += atomic_load_explicit(&c[i].v[SY_SC_SENT],
					     memory_order_relaxed);
	}
	return sent;
}

/*
 * The engine series: every route id's counters (removed routes included),
 * except `rejected`, which the producer and worker transports count for
 * every refused send, even one that named no route. Replies are not sends.
 */
static void engine_sum(struct raw *r, const struct sy__config *cfg)
{
	for (unsigned id = 0; id < cfg->max_routes; id++)
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			r->engine[f] += r->route[id][f];
	r->engine[SY_SC_REJECTED] =
		r->transport[SY_TRANSPORT_PRODUCER][SY_SC_REJECTED] +
		r->transport[SY_TRANSPORT_WORKER][SY_SC_REJECTED];
}

/* Sum every slot's shard into @p r, and every inbox's depth into m->depth. */
static void shards_merge(struct sy__metrics *m, struct raw *r)
{
	struct sy_engine *eng = m->eng;
	const struct sy__config *cfg = &eng->cfg;
	unsigned used = atomic_load_explicit(&eng->slots_used,
					     memory_order_acquire);

	memset(m->depth, 0, eng->nworkers * sizeof(*m->depth));
	for (unsigned i = 0; i < used; i++) {
		struct sy__slot *s = &eng->slots[i];
		struct sy__ring *out = sy__slot_out(s); /* S1 */
		struct sy__shard *sh;
		uint64_t sent;

		if (!out)
			continue;
		for (unsigned w = 0; w < eng->nworkers; w++)
			m->depth[w] += sy__ring_count(&out[w]);
		sh = s->shard;
		if (!sh)
			continue;
		sctr_add(r->server, sh->server, cfg->max_servers);
		sent = routes_add(r->route, sh->route, cfg->max_routes);
		sctr_add(r->transport, sh->transport, SY_TRANSPORTS);
		r->transport[s->is_worker ? SY_TRANSPORT_WORKER :
			     SY_TRANSPORT_PRODUCER][SY_SC_SENT] += sent;
		for (unsigned k = 0; k < SY_HIST_KINDS; k++)
			sy__hist_merge(&r->hist[k], &sh->hist[k]);
	}
	engine_sum(r, cfg);
}

/* Names, states and breaker transitions of the servers. With eng->lock
 * held (by the caller or by us). */
static void servers_read(struct sy__metrics *m, struct raw *r)
{
	struct sy_engine *eng = m->eng;

	for (unsigned id = 0; id < eng->cfg.max_servers; id++) {
		const struct sy__server *srv = eng->servers[id];
		struct server_info *si = &m->servers[id];
		unsigned gate;

		si->live = srv != NULL;
		if (!srv)
			continue;
		memcpy(si->name, srv->name, sizeof(si->name));
		si->worker = srv->worker;
		si->breaker = srv->breaker ? sy__breaker_get(srv->breaker) :
					     SY_BREAKER_CLOSED;
		gate = atomic_load_explicit(&srv->gate, memory_order_relaxed);
		si->healthy = !(gate & SY_GATE_UNHEALTHY);
		r->transitions[id] = atomic_load_explicit(&srv->transitions,
							  memory_order_relaxed);
	}
}

/*
 * Refresh the server information if eng->lock can be had (or is held by
 * the caller, @p have_lock); else keep what was read last. @return whether
 * it was read now.
 */
static bool servers_refresh(struct sy__metrics *m, struct raw *r,
			    bool have_lock)
{
	struct sy_engine *eng = m->eng;

	if (!have_lock && pthread_mutex_trylock(&eng->lock) != 0) {
		memcpy(r->transitions, m->prev->transitions,
		       eng->cfg.max_servers * sizeof(*r->transitions));
		return false;
	}
	servers_read(m, r);
	if (!have_lock)
		pthread_mutex_unlock(&eng->lock);
	return true;
}

/* Route names, inside a read-side section. */
static void routes_read(struct sy__metrics *m)
{
	struct sy_engine *eng = m->eng;

	sy__read_lock();
	for (unsigned id = 0; id < eng->cfg.max_routes; id++) {
		/* Pairs with R1 in registry.c: the route is initialized. */
		const struct sy__route *rt =
			atomic_load_explicit(&eng->routes[id], memory_order_acquire);
		struct id_info *ri = &m->route_ids[id];

		ri->live = rt != NULL;
		if (rt)
			memcpy(ri->name, rt->name, sizeof(ri->name));
	}
	sy__read_unlock();
}

/* Did id @p ii change owner since the previous merge? Remembers it. */
static bool id_changed(struct id_info *ii)
{
	const char *now = ii->live ? ii->name : "";
	bool changed = strcmp(now, ii->seen) != 0;

	if (changed)
		strcpy(ii->seen, now);
	return changed;
}

/* Keep the names the merges saw (the snapshot's series names). */
static void ids_refresh(struct sy__metrics *m, bool servers_fresh)
{
	const struct sy__config *cfg = &m->eng->cfg;

	for (unsigned id = 0; servers_fresh && id < cfg->max_servers; id++) {
		struct id_info *ii = &m->server_ids[id];

		ii->live = m->servers[id].live;
		strcpy(ii->name, m->servers[id].name);
		id_changed(ii);
	}
	for (unsigned id = 0; id < cfg->max_routes; id++)
		id_changed(&m->route_ids[id]);
}

/* The counts every shard holds for one id now. */
static void id_sum(struct sy__metrics *m, bool server, uint32_t id,
		   uint64_t *out)
{
	struct sy_engine *eng = m->eng;
	unsigned used = atomic_load_explicit(&eng->slots_used,
					     memory_order_acquire);

	memset(out, 0, SY_SC_COUNT * sizeof(*out));
	for (unsigned i = 0; i < used; i++) {
		const struct sy__shard *sh = eng->slots[i].shard;
		const struct sy__sctr *c;

		if (!sh)
			continue;
		c = server ? &sh->server[id] : &sh->route[id];
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			out[f] += atomic_load_explicit(&c->v[f],
						       memory_order_relaxed);
	}
}

/*
 * A server or route was just added under id @p id (with eng->lock held, so
 * no merge reads the registry meanwhile): its totals start now. The counts
 * the shards keep for the id's earlier owner are not its own. Ids are only
 * reused once every message of the earlier owner has been handled, so the
 * sums are final for it.
 */
void sy__metrics_id_added(struct sy_engine *eng, bool server, uint32_t id)
{
	struct sy__metrics *m = eng->metrics;
	uint64_t now[SY_SC_COUNT];

	if (!m)
		return;
	pthread_mutex_lock(&m->merge_lock);
	id_sum(m, server, id, now);
	if (server) {
		memcpy(m->base.server[id], now, sizeof(now));
		memcpy(m->prev->server[id], now, sizeof(now));
		/* A new server's breaker counts from 0. */
		m->base.transitions[id] = 0;
		m->prev->transitions[id] = 0;
	} else {
		memcpy(m->base.route[id], now, sizeof(now));
		memcpy(m->prev->route[id], now, sizeof(now));
	}
	pthread_mutex_unlock(&m->merge_lock);
}

/* ---- retained windows ---- */

static int windows_alloc(struct windows *wd, const struct sy__config *cfg,
			 unsigned workers)
{
	/* Room for twice the windows the retention holds at the interval,
	 * and some more, for refreshes in between. */
	unsigned cap = cfg->retention_ms / cfg->metrics_interval_ms * 2 + 16;

	wd->cap = cap < SY_WINDOWS_MAX ? cap : SY_WINDOWS_MAX;
	wd->seq = calloc(wd->cap, sizeof(*wd->seq));
	wd->time_ns = calloc(wd->cap, sizeof(*wd->time_ns));
	wd->depth = calloc((size_t)wd->cap * workers, sizeof(*wd->depth));
	return wd->seq && wd->time_ns && wd->depth ? 0 : -ENOMEM;
}

static void windows_free(struct windows *wd)
{
	free(wd->seq);
	free(wd->time_ns);
	free(wd->depth);
}

/* Record this merge's depths; drop windows older than the retention and,
 * when the ring is full, the oldest. */
static void windows_push(struct windows *wd, unsigned workers, uint64_t seq,
			 uint64_t now, const uint64_t *depth,
			 uint64_t retention_ns)
{
	unsigned k;

	while (wd->n && (wd->n == wd->cap ||
			 wd->time_ns[wd->first] + retention_ns < now)) {
		wd->first = (wd->first + 1) % wd->cap;
		wd->n--;
	}
	k = (wd->first + wd->n) % wd->cap;
	wd->seq[k] = seq;
	wd->time_ns[k] = now;
	memcpy(&wd->depth[(size_t)k * workers], depth, workers * sizeof(*depth));
	wd->n++;
}

/* Max and least-squares slope (per window) of worker @p w's depth over the
 * retained windows. */
static void windows_depth(const struct windows *wd, unsigned workers,
			  unsigned w, struct sy_queue_depth *q)
{
	double n = wd->n, sx = 0, sy = 0, sxy = 0, sxx = 0, den;
	uint64_t x0 = wd->seq[wd->first];

	q->max = 0;
	for (unsigned i = 0; i < wd->n; i++) {
		unsigned k = (wd->first + i) % wd->cap;
		uint64_t y = wd->depth[(size_t)k * workers + w];
		double x = (double)(wd->seq[k] - x0);

		if (y > q->max)
			q->max = y;
		sx += x;
		sy += (double)y;
		sxy += x * (double)y;
		sxx += x * x;
	}
	den = n * sxx - sx * sx;
	q->trend = wd->n >= 2 && den > 0 ? (n * sxy - sx * sy) / den : 0.0;
}

/* ---- building a snapshot ---- */

static void counters_diff(struct sy_counters *c, const uint64_t *now,
			  const uint64_t *then)
{
	c->sent = sub_sat(now[SY_SC_SENT], then[SY_SC_SENT]);
	c->delivered = sub_sat(now[SY_SC_DELIVERED], then[SY_SC_DELIVERED]);
	c->failed = sub_sat(now[SY_SC_FAILED], then[SY_SC_FAILED]);
	c->retried = sub_sat(now[SY_SC_RETRIED], then[SY_SC_RETRIED]);
	c->rejected = sub_sat(now[SY_SC_REJECTED], then[SY_SC_REJECTED]);
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		c->dead_lettered[i] = sub_sat(now[SY_SC_DL + i],
					      then[SY_SC_DL + i]);
	c->transitions = 0;
}

static double error_rate(const struct sy_counters *c)
{
	uint64_t runs = c->delivered + c->failed;

	return runs ? (double)c->failed / (double)runs : 0.0;
}

/* The three raws' counters of one series, for series_fill(). */
struct span {
	const uint64_t *cur;
	const uint64_t *from;             /* the window's start */
	const uint64_t *base;             /* the totals' zero */
};

/* A series' counters, rates and error rates; the server fields are those
 * of a healthy server without a breaker. */
static void series_fill(struct sy_series *s, enum sy_series_kind kind,
			uint32_t id, const char *name, struct span sp,
			uint64_t window_ns)
{
	double secs = (double)window_ns / 1e9;

	s->kind = kind;
	s->id = id;
	s->name = name;
	counters_diff(&s->total, sp.cur, sp.base);
	counters_diff(&s->recent, sp.cur, sp.from);
	s->sent_per_s = secs > 0 ? (double)s->recent.sent / secs : 0.0;
	s->delivered_per_s = secs > 0 ? (double)s->recent.delivered / secs : 0.0;
	s->error_rate = error_rate(&s->total);
	s->error_rate_recent = error_rate(&s->recent);
	s->breaker = SY_BREAKER_CLOSED;
	s->healthy = true;
	s->worker = 0;
}

/* Copy @p name to *at and advance past its terminator. */
static const char *name_put(char **at, const char *name)
{
	size_t len = strlen(name) + 1;
	char *p = *at;

	memcpy(p, name, len);
	*at += len;
	return p;
}

/* Series counts and name bytes of the snapshot to build. */
static size_t snapshot_size(const struct sy__metrics *m,
			    unsigned n[SY_SERIES_KINDS])
{
	const struct sy__config *cfg = &m->eng->cfg;
	size_t bytes = sizeof("engine");

	n[SY_SERIES_ENGINE] = 1;
	n[SY_SERIES_SERVER] = 0;
	n[SY_SERIES_ROUTE] = 0;
	n[SY_SERIES_TRANSPORT] = SY_TRANSPORTS;
	for (unsigned t = 0; t < SY_TRANSPORTS; t++)
		bytes += strlen(transport_names[t]) + 1;
	for (unsigned id = 0; id < cfg->max_servers; id++) {
		if (m->servers[id].live) {
			n[SY_SERIES_SERVER]++;
			bytes += strlen(m->servers[id].name) + 1;
		}
	}
	for (unsigned id = 0; id < cfg->max_routes; id++) {
		if (m->route_ids[id].live) {
			n[SY_SERIES_ROUTE]++;
			bytes += strlen(m->route_ids[id].name) + 1;
		}
	}
	return bytes;
}

/* Server series, by id; their transitions add up into the engine's. */
static void servers_fill(struct sy__metrics *m, struct sy_snapshot *snap,
			 const struct raw *from, char **names)
{
	const struct raw *cur = m->cur, *base = &m->base;
	struct sy_series *eng_s = &snap->series[SY_SERIES_ENGINE][0];
	struct sy_series *s = snap->series[SY_SERIES_SERVER];

	for (unsigned id = 0; id < m->eng->cfg.max_servers; id++) {
		const struct server_info *si = &m->servers[id];
		struct span sp = { cur->server[id], from->server[id],
				   base->server[id] };

		if (!si->live)
			continue;
		series_fill(s, SY_SERIES_SERVER, id, name_put(names, si->name),
			    sp, snap->window_ns);
		s->total.transitions = sub_sat(cur->transitions[id],
					       base->transitions[id]);
		s->recent.transitions = sub_sat(cur->transitions[id],
						from->transitions[id]);
		s->breaker = si->breaker;
		s->healthy = si->healthy;
		s->worker = si->worker;
		eng_s->total.transitions += s->total.transitions;
		eng_s->recent.transitions += s->recent.transitions;
		s++;
	}
}

static void routes_fill(struct sy__metrics *m, struct sy_snapshot *snap,
			const struct raw *from, char **names)
{
	const struct raw *cur = m->cur, *base = &m->base;
	struct sy_series *s = snap->series[SY_SERIES_ROUTE];

	for (unsigned id = 0; id < m->eng->cfg.max_routes; id++) {
		struct span sp = { cur->route[id], from->route[id],
				   base->route[id] };

		if (!m->route_ids[id].live)
			continue;
		series_fill(s++, SY_SERIES_ROUTE, id,
			    name_put(names, m->route_ids[id].name), sp,
			    snap->window_ns);
	}
}

/* Histograms since the start (kept whole) and over the window (summary). */
static void hists_fill(struct sy__metrics *m, struct sy_snapshot *snap,
		       const struct raw *from)
{
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		snap->hist[k] = m->cur->hist[k];
		sy_hist_sub(&snap->hist[k], &m->base.hist[k]);
		sy_hist_summary(&snap->hist[k], &snap->total[k]);
		m->scratch = m->cur->hist[k];
		sy_hist_sub(&m->scratch, &from->hist[k]);
		sy_hist_summary(&m->scratch, &snap->recent[k]);
	}
}

/* The snapshot of the current merge, its window starting at @p from.
 * NULL: no memory. */
static struct sy_snapshot *snapshot_build(struct sy__metrics *m,
					  const struct raw *from)
{
	const struct raw *cur = m->cur, *base = &m->base;
	unsigned n[SY_SERIES_KINDS], workers = m->eng->nworkers;
	struct sy_snapshot *snap;
	char *names;

	snap = sy__snapshot_alloc(n, workers, snapshot_size(m, n), &names);
	if (!snap)
		return NULL;
	snap->seq = m->seq + 1;
	snap->time_ns = cur->time_ns;
	snap->window_ns = sub_sat(cur->time_ns, m->prev->time_ns);
	series_fill(snap->series[SY_SERIES_ENGINE], SY_SERIES_ENGINE, 0,
		    name_put(&names, "engine"),
		    (struct span){ cur->engine, from->engine, base->engine },
		    snap->window_ns);
	servers_fill(m, snap, from, &names);
	routes_fill(m, snap, from, &names);
	for (unsigned t = 0; t < SY_TRANSPORTS; t++)
		series_fill(&snap->series[SY_SERIES_TRANSPORT][t],
			    SY_SERIES_TRANSPORT, t,
			    name_put(&names, transport_names[t]),
			    (struct span){ cur->transport[t], from->transport[t],
					   base->transport[t] },
			    snap->window_ns);
	hists_fill(m, snap, from);
	for (unsigned w = 0; w < workers; w++) {
		windows_depth(&m->win, workers, w, &snap->queue[w]);
		snap->queue[w].current = m->depth[w];
	}
	return snap;
}

/* ---- publishing ---- */

/* call_rcu: the collector's reference to a replaced snapshot. */
static void snapshot_drop_rcu(struct rcu_head *head)
{
	sy__rcu_callback_start();
	sy__snapshot_put(caa_container_of(head, struct sy_snapshot, rcu));
}

/* Publish @p snap; the previous one loses the collector's reference after
 * a grace period. The calling thread is registered with RCU. */
static void publish(struct sy__metrics *m, struct sy_snapshot *snap)
{
	struct sy_snapshot *old;

	/* P1: release, pairs with A1 in sy_metrics_snapshot(). */
	old = atomic_exchange_explicit(&m->current, snap, memory_order_release);
	if (old)
		sy__call_rcu(&old->rcu, snapshot_drop_rcu);
}

/*
 * Merge every shard and publish a snapshot. @p have_lock: the caller holds
 * eng->lock. The calling thread is registered with RCU and not in a
 * read-side section.
 */
static void collect(struct sy__metrics *m, bool have_lock)
{
	struct sy_engine *eng = m->eng;
	const struct sy__config *cfg = &eng->cfg;
	struct sy_snapshot *snap;
	struct raw *cur, *from;
	bool fresh, reset;

	pthread_mutex_lock(&m->merge_lock);
	cur = m->cur;
	raw_clear(cur, cfg);
	shards_merge(m, cur);
	fresh = servers_refresh(m, cur, have_lock);
	routes_read(m);
	cur->time_ns = sy__now(eng);
	ids_refresh(m, fresh);
	reset = atomic_exchange_explicit(&m->reset, false, memory_order_relaxed);
	if (reset)
		raw_copy(&m->base, cur, cfg);
	/* After a reset the window starts now too: it is empty. */
	from = reset ? &m->base : m->prev;
	windows_push(&m->win, eng->nworkers, m->seq + 1, cur->time_ns, m->depth,
		     (uint64_t)cfg->retention_ms * 1000000u);
	snap = snapshot_build(m, from);
	if (snap) {
		m->seq++;
		publish(m, snap);
	}
	m->cur = m->prev;
	m->prev = cur;
	pthread_mutex_unlock(&m->merge_lock);
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
	struct sy__metrics *m = arg;
	unsigned ms = m->eng->cfg.metrics_interval_ms;
	struct timespec next;
	uint64_t asked;

	pthread_setname_np(pthread_self(), "sy-collector");
	urcu_memb_register_thread();
	clock_gettime(CLOCK_MONOTONIC, &next);
	ts_add_ms(&next, ms);
	pthread_mutex_lock(&m->lock);
	while (!m->quit) {
		if (m->asked == m->answered &&
		    pthread_cond_timedwait(&m->cond, &m->lock, &next) != ETIMEDOUT)
			continue;         /* a request, a stop, or spurious */
		asked = m->asked;
		pthread_mutex_unlock(&m->lock);
		collect(m, false);
		tick_next(&next, ms);
		pthread_mutex_lock(&m->lock);
		m->answered = asked;
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	urcu_memb_unregister_thread();
	return NULL;
}

/* Stop and join the collector thread if it runs. Leaves `running` set:
 * the caller clears it after the last merge. */
static bool collector_join(struct sy__metrics *m)
{
	bool running;

	pthread_mutex_lock(&m->lock);
	running = m->running;
	m->quit = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (running)
		pthread_join(m->thread, NULL);
	return running;
}

/* No collector thread any more; answer every request made so far (the
 * caller has just published a snapshot newer than all of them). */
static void collector_gone(struct sy__metrics *m)
{
	pthread_mutex_lock(&m->lock);
	m->running = false;
	m->quit = false;
	m->answered = m->asked;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- life cycle (metrics.h) ---- */

static int metrics_alloc(struct sy__metrics *m, const struct sy__config *cfg,
			 unsigned workers)
{
	int rc = raw_alloc(&m->raws[0], cfg);

	rc |= raw_alloc(&m->raws[1], cfg);
	rc |= raw_alloc(&m->base, cfg);
	rc |= windows_alloc(&m->win, cfg, workers);
	m->servers = calloc(cfg->max_servers, sizeof(*m->servers));
	m->server_ids = calloc(cfg->max_servers, sizeof(*m->server_ids));
	m->route_ids = calloc(cfg->max_routes, sizeof(*m->route_ids));
	m->depth = calloc(workers, sizeof(*m->depth));
	if (rc || !m->servers || !m->server_ids || !m->route_ids || !m->depth)
		return -ENOMEM;
	return 0;
}

int sy__metrics_init(struct sy_engine *eng)
{
	pthread_condattr_t ca;
	struct sy__metrics *m;

	if (!eng->cfg.metrics)
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->eng = eng;
	atomic_init(&m->current, NULL);
	atomic_init(&m->reset, false);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->merge_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	eng->metrics = m;          /* sy__metrics_destroy() frees a partial one */
	if (metrics_alloc(m, &eng->cfg, eng->nworkers))
		return -ENOMEM;
	m->cur = &m->raws[0];
	m->prev = &m->raws[1];
	/* The first window starts at engine create. */
	m->prev->time_ns = sy__now(eng);
	m->base.time_ns = m->prev->time_ns;
	return 0;
}

int sy__metrics_start(struct sy_engine *eng)
{
	struct sy__metrics *m = eng->metrics;
	int cpu = eng->cfg.collector_cpu;
	pthread_attr_t attr;
	cpu_set_t set;
	int rc = 0;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	if (m->running)
		goto out_unlock;
	pthread_attr_init(&attr);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	rc = pthread_create(&m->thread, &attr, collector_main, m);
	pthread_attr_destroy(&attr);
	if (rc) {
		rc = sy__fail(rc == EINVAL ? -EINVAL : -EAGAIN,
			      "metrics collector: cannot start it (CPU %d): %s",
			      cpu, strerror(rc));
		goto out_unlock;
	}
	m->running = true;
out_unlock:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void sy__metrics_stop(struct sy_engine *eng)
{
	struct sy__metrics *m = eng->metrics;

	if (!m)
		return;
	collector_join(m);
	/* The workers have exited: this merge is exact. */
	sy__rcu_reader_ensure();
	collect(m, true);
	collector_gone(m);
}

void sy__metrics_destroy(struct sy_engine *eng)
{
	struct sy__metrics *m = eng->metrics;
	struct sy_snapshot *last;

	if (!m)
		return;
	if (collector_join(m))
		collector_gone(m);
	last = atomic_exchange_explicit(&m->current, NULL, memory_order_relaxed);
	if (last) {
		sy__rcu_reader_ensure();
		sy__call_rcu(&last->rcu, snapshot_drop_rcu);
	}
	/* Every dropped reference's callback has run: no snapshot is left
	 * but those that readers still hold. */
	urcu_memb_barrier();
	raw_free(&m->raws[0]);
	raw_free(&m->raws[1]);
	raw_free(&m->base);
	windows_free(&m->win);
	free(m->servers);
	free(m->server_ids);
	free(m->route_ids);
	free(m->depth);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->merge_lock);
	pthread_mutex_destroy(&m->lock);
	free(m);
	eng->metrics = NULL;
}

/* ---- public functions ---- */

SY_API sy_snapshot *sy_metrics_snapshot(sy_engine *eng)
{
	struct sy__metrics *m = eng->metrics;
	struct sy_snapshot *snap;

	if (!m)
		return NULL;
	sy__rcu_reader_ensure();
	sy__read_lock();
	/* A1: acquire, pairs with P1 in publish(). */
	snap = atomic_load_explicit(&m->current, memory_order_acquire);
	/* The collector's own reference is dropped only after a grace
	 * period, so inside this section the count is above zero. */
	if (snap)
		atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
	sy__read_unlock();
	return snap;
}

/* Ask the running collector for a merge and wait for it. */
static int collector_ask(struct sy__metrics *m)
{
	struct timespec deadline;
	uint64_t ticket;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SY_REFRESH_WAIT_S;
	pthread_mutex_lock(&m->lock);
	ticket = ++m->asked;
	pthread_cond_broadcast(&m->cond);
	while (m->answered < ticket && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&m->cond, &m->lock, &deadline);
	rc = m->answered >= ticket ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

SY_API int sy_metrics_refresh(sy_engine *eng)
{
	struct sy__metrics *m = eng->metrics;
	bool running;

	if (!m)
		return -ENOTSUP;
	/* `running` changes only with eng->lock held (start, stop). */
	pthread_mutex_lock(&eng->lock);
	pthread_mutex_lock(&m->lock);
	running = m->running;
	pthread_mutex_unlock(&m->lock);
	if (!running) {
		sy__rcu_reader_ensure();
		collect(m, true);
		pthread_mutex_unlock(&eng->lock);
		return 0;
	}
	pthread_mutex_unlock(&eng->lock);
	return collector_ask(m);
}

SY_API int sy_metrics_reset(sy_engine *eng)
{
	if (!eng->metrics)
		return -ENOTSUP;
	/* Relaxed: the next merge to look takes it; a refresh after this
	 * call is ordered after it by the locks it takes. */
	atomic_store_explicit(&eng->metrics->reset, true, memory_order_relaxed);
	return 0;
}
