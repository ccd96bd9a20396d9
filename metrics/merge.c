/*
 * Merging shards into snapshots (merge.h, docs/metrics.md): sums, windows,
 * rates, percentiles and queue depth trends, from plain data.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/merge.h"
#include "metrics/snapshot.h"

#define SY_WINDOWS_MAX 4096u          /* retained windows, at most */

/* One merge: sums over every shard. */
struct raw {
	uint64_t time_ns;                 /* engine clock */
	uint64_t (*server)[SY_SC_COUNT];  /* [max_servers] */
	uint64_t (*route)[SY_SC_COUNT];   /* [max_routes] */
	uint64_t *transitions;            /* [max_servers], live servers */
	uint64_t transport[SY_TRANSPORTS][SY_SC_COUNT];
	uint64_t engine[SY_SC_COUNT];     /* see engine_sum() */
	struct sy_hist hist[SY_HIST_KINDS];
	uint64_t (*lat)[SY_COARSE_BUCKETS]; /* [route_lats] */
};

/* A server or route id: its name now and at the previous merge ("" for
 * none), to notice when an id changes owner. */
struct id_info {
	bool live;
	char name[SY_METRICS_NAME_MAX];
	char seen[SY_METRICS_NAME_MAX];
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

struct sy__merge {
	struct sy__merge_dims d;
	struct raw raws[2];
	struct raw *cur;                  /* the merge in progress */
	struct raw *prev;                 /* the previous merge */
	struct raw base;                  /* the totals' zero */
	struct sy__server_view *servers;  /* [max_servers], last read */
	struct id_info *server_ids;       /* [max_servers] */
	struct id_info *route_ids;        /* [max_routes] */
	uint64_t *depth;                  /* [workers], this merge */
	uint64_t *threshold;              /* [workers], as last told; 0: none */
	struct windows win;
	struct sy_hist scratch;           /* a window's histogram */
	uint64_t seq;                     /* snapshots built */
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

static int raw_alloc(struct raw *r, const struct sy__merge_dims *cfg)
{
	r->server = calloc(cfg->max_servers, sizeof(*r->server));
	r->route = calloc(cfg->max_routes, sizeof(*r->route));
	r->transitions = calloc(cfg->max_servers, sizeof(*r->transitions));
	r->lat = calloc(cfg->route_lats + 1, sizeof(*r->lat)); /* + 1: never 0 */
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy_hist_clear(&r->hist[k]);
	return r->server && r->route && r->transitions && r->lat ? 0 : -ENOMEM;
}

static void raw_free(struct raw *r)
{
	free(r->server);
	free(r->route);
	free(r->transitions);
	free(r->lat);
}

/* Every counter 0 and every histogram empty (the time is left alone). */
static void raw_clear(struct raw *r, const struct sy__merge_dims *cfg)
{
	memset(r->server, 0, cfg->max_servers * sizeof(*r->server));
	memset(r->route, 0, cfg->max_routes * sizeof(*r->route));
	memset(r->transitions, 0, cfg->max_servers * sizeof(*r->transitions));
	memset(r->transport, 0, sizeof(r->transport));
	memset(r->engine, 0, sizeof(r->engine));
	memset(r->lat, 0, cfg->route_lats * sizeof(*r->lat));
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy_hist_clear(&r->hist[k]);
}

static void raw_copy(struct raw *dst, const struct raw *src,
		     const struct sy__merge_dims *cfg)
{
	dst->time_ns = src->time_ns;
	memcpy(dst->server, src->server, cfg->max_servers * sizeof(*dst->server));
	memcpy(dst->route, src->route, cfg->max_routes * sizeof(*dst->route));
	memcpy(dst->transitions, src->transitions,
	       cfg->max_servers * sizeof(*dst->transitions));
	memcpy(dst->transport, src->transport, sizeof(dst->transport));
	memcpy(dst->engine, src->engine, sizeof(dst->engine));
	memcpy(dst->hist, src->hist, sizeof(dst->hist));
	memcpy(dst->lat, src->lat, cfg->route_lats * sizeof(*dst->lat));
}

/* ---- the merge's input ---- */

/* Add @p n shard counter sets into @p into. */
static void sctr_add(uint64_t (*into)[SY_SC_COUNT], const struct sy__sctr *c,
		     unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			into[i][f] += sy__counter_read(&c[i].v[f]);
}

/*
 * The engine series: every route id's counters (removed routes included),
 * except `rejected`, which the producer and worker transports count for
 * every refused send, even one that named no route. Replies are not sends.
 */
static void engine_sum(struct raw *r, const struct sy__merge_dims *cfg)
{
	for (unsigned id = 0; id < cfg->max_routes; id++)
		for (unsigned f = 0; f < SY_SC_COUNT; f++)
			r->engine[f] += r->route[id][f];
	r->engine[SY_SC_REJECTED] =
		r->transport[SY_TRANSPORT_PRODUCER][SY_SC_REJECTED] +
		r->transport[SY_TRANSPORT_WORKER][SY_SC_REJECTED];
}

void sy__merge_begin(struct sy__merge *m)
{
	raw_clear(m->cur, &m->d);
	memset(m->depth, 0, m->d.workers * sizeof(*m->depth));
}

/*
 * Senders count each message per route and per server only; a shard
 * belongs to one kind of thread, so the sum of its routes' `sent` is its
 * transport's.
 */
void sy__merge_shard(struct sy__merge *m, const struct sy__shard *sh,
		     bool worker)
{
	struct raw *r = m->cur;
	uint64_t sent = 0;

	sctr_add(r->server, sh->server, m->d.max_servers);
	sctr_add(r->route, sh->route, m->d.max_routes);
	for (unsigned id = 0; id < m->d.max_routes; id++)
		sent += sy__counter_read(&sh->route[id].v[SY_SC_SENT]);
	sctr_add(r->transport, sh->transport, SY_TRANSPORTS);
	r->transport[worker ? SY_TRANSPORT_WORKER :
		     SY_TRANSPORT_PRODUCER][SY_SC_SENT] += sent;
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy__hist_merge(&r->hist[k], &sh->hist[k]);
	for (unsigned id = 0; id < sh->route_lats && id < m->d.route_lats; id++)
		sy__shard_lat_add(sh, id, r->lat[id]);
}

void sy__merge_depth(struct sy__merge *m, unsigned w, uint64_t depth)
{
	m->depth[w] += depth;
}

void sy__merge_thresholds_clear(struct sy__merge *m)
{
	memset(m->threshold, 0, m->d.workers * sizeof(*m->threshold));
}

void sy__merge_threshold(struct sy__merge *m, unsigned w, uint64_t entries)
{
	if (entries && (!m->threshold[w] || entries < m->threshold[w]))
		m->threshold[w] = entries;
}

void sy__merge_server(struct sy__merge *m, uint32_t id,
		      const struct sy__server_view *v)
{
	if (!v) {
		m->servers[id].live = false;
		return;
	}
	m->servers[id] = *v;
	m->servers[id].live = true;
	m->cur->transitions[id] = v->transitions;
}

void sy__merge_route(struct sy__merge *m, uint32_t id, const char *name)
{
	struct id_info *ri = &m->route_ids[id];

	ri->live = name != NULL;
	if (name)
		snprintf(ri->name, sizeof(ri->name), "%s", name);
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
static void ids_refresh(struct sy__merge *m, bool servers_fresh)
{
	const struct sy__merge_dims *cfg = &m->d;

	for (unsigned id = 0; servers_fresh && id < cfg->max_servers; id++) {
		struct id_info *ii = &m->server_ids[id];

		ii->live = m->servers[id].live;
		strcpy(ii->name, m->servers[id].name);
		id_changed(ii);
	}
	for (unsigned id = 0; id < cfg->max_routes; id++)
		id_changed(&m->route_ids[id]);
}

/*
 * The counts the shards keep for the id's earlier owner are not the new
 * owner's. Ids are only reused once every message of the earlier owner has
 * been handled, so the sums are final for it.
 */
void sy__merge_id_added(struct sy__merge *m, bool server, uint32_t id,
			const uint64_t now[SY_SC_COUNT],
			const uint64_t lat[SY_COARSE_BUCKETS])
{
	size_t bytes = SY_SC_COUNT * sizeof(*now);

	if (server) {
		memcpy(m->base.server[id], now, bytes);
		memcpy(m->prev->server[id], now, bytes);
		/* A new server's breaker counts from 0. */
		m->base.transitions[id] = 0;
		m->prev->transitions[id] = 0;
	} else {
		memcpy(m->base.route[id], now, bytes);
		memcpy(m->prev->route[id], now, bytes);
		if (id < m->d.route_lats) {
			memcpy(m->base.lat[id], lat, sizeof(m->base.lat[id]));
			memcpy(m->prev->lat[id], lat, sizeof(m->prev->lat[id]));
		}
	}
}

/* ---- retained windows ---- */

static int windows_alloc(struct windows *wd, const struct sy__merge_dims *cfg,
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
static size_t snapshot_size(const struct sy__merge *m,
			    unsigned n[SY_SERIES_KINDS])
{
	const struct sy__merge_dims *cfg = &m->d;
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
static void servers_fill(struct sy__merge *m, struct sy_snapshot *snap,
			 const struct raw *from, char **names)
{
	const struct raw *cur = m->cur, *base = &m->base;
	struct sy_series *eng_s = &snap->series[SY_SERIES_ENGINE][0];
	struct sy_series *s = snap->series[SY_SERIES_SERVER];

	for (unsigned id = 0; id < m->d.max_servers; id++) {
		const struct sy__server_view *si = &m->servers[id];
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

/* The quantiles of a route's latency counts now less those then. */
static void lat_diff(struct sy_latency *out, const uint64_t *now,
		     const uint64_t *then)
{
	uint64_t d[SY_COARSE_BUCKETS];

	for (unsigned i = 0; i < SY_COARSE_BUCKETS; i++)
		d[i] = sub_sat(now[i], then[i]);
	sy_coarse_latency(d, out);
}

static void routes_fill(struct sy__merge *m, struct sy_snapshot *snap,
			const struct raw *from, char **names)
{
	const struct raw *cur = m->cur, *base = &m->base;
	struct sy_series *s = snap->series[SY_SERIES_ROUTE];

	for (unsigned id = 0; id < m->d.max_routes; id++) {
		struct span sp = { cur->route[id], from->route[id],
				   base->route[id] };

		if (!m->route_ids[id].live)
			continue;
		series_fill(s, SY_SERIES_ROUTE, id,
			    name_put(names, m->route_ids[id].name), sp,
			    snap->window_ns);
		if (id < m->d.route_lats) {
			lat_diff(&s->latency_total, cur->lat[id], base->lat[id]);
			lat_diff(&s->latency_recent, cur->lat[id], from->lat[id]);
		}
		s++;
	}
}

/* Histograms since the start (kept whole) and over the window (summary). */
static void hists_fill(struct sy__merge *m, struct sy_snapshot *snap,
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
static struct sy_snapshot *snapshot_build(struct sy__merge *m,
					  const struct raw *from)
{
	const struct raw *cur = m->cur, *base = &m->base;
	unsigned n[SY_SERIES_KINDS], workers = m->d.workers;
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
		snap->queue[w].bp_threshold = m->threshold[w];
	}
	return snap;
}

/* ---- a whole merge ---- */

struct sy_snapshot *sy__merge_finish(struct sy__merge *m, uint64_t now_ns,
				     bool servers_read, bool reset)
{
	const struct sy__merge_dims *cfg = &m->d;
	struct raw *cur = m->cur, *from;
	struct sy_snapshot *snap;

	cur->time_ns = now_ns;
	engine_sum(cur, cfg);
	if (!servers_read)
		memcpy(cur->transitions, m->prev->transitions,
		       cfg->max_servers * sizeof(*cur->transitions));
	ids_refresh(m, servers_read);
	if (reset)
		raw_copy(&m->base, cur, cfg);
	/* After a reset the window starts now too: it is empty. */
	from = reset ? &m->base : m->prev;
	windows_push(&m->win, cfg->workers, m->seq + 1, now_ns, m->depth,
		     (uint64_t)cfg->retention_ms * 1000000u);
	snap = snapshot_build(m, from);
	if (snap)
		m->seq++;
	m->cur = m->prev;
	m->prev = cur;
	return snap;
}

struct sy__merge *sy__merge_create(const struct sy__merge_dims *d,
				   uint64_t now_ns)
{
	struct sy__merge *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return NULL;
	m->d = *d;
	rc = raw_alloc(&m->raws[0], d);
	rc |= raw_alloc(&m->raws[1], d);
	rc |= raw_alloc(&m->base, d);
	rc |= windows_alloc(&m->win, d, d->workers);
	m->servers = calloc(d->max_servers, sizeof(*m->servers));
	m->server_ids = calloc(d->max_servers, sizeof(*m->server_ids));
	m->route_ids = calloc(d->max_routes, sizeof(*m->route_ids));
	m->depth = calloc(d->workers, sizeof(*m->depth));
	m->threshold = calloc(d->workers, sizeof(*m->threshold));
	if (rc || !m->servers || !m->server_ids || !m->route_ids || !m->depth ||
	    !m->threshold) {
		sy__merge_destroy(m);
		return NULL;
	}
	m->cur = &m->raws[0];
	m->prev = &m->raws[1];
	m->prev->time_ns = now_ns;
	m->base.time_ns = now_ns;
	return m;
}

void sy__merge_destroy(struct sy__merge *m)
{
	if (!m)
		return;
	raw_free(&m->raws[0]);
	raw_free(&m->raws[1]);
	raw_free(&m->base);
	windows_free(&m->win);
	free(m->servers);
	free(m->server_ids);
	free(m->route_ids);
	free(m->depth);
	free(m->threshold);
	free(m);
}
