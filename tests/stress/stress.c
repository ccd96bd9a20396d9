/*
 * The stress machinery (stress.h): threads, producers, id tracking, churn,
 * watchers, snapshot readers, and the checks at the end.
 *
 * Ids: producer p sends ids [p * per_producer, (p + 1) * per_producer),
 * per_producer a multiple of 64, so that each producer writes its own
 * words of the "accepted" bitmap. A message carries its id in its first 8
 * bytes and in its tag, and a canary over the rest of its payload.
 * Handlers set the id's bit in "delivered", whoever drains the dead letter
 * queue sets it in "dead"; a bit found set already is a duplicate.
 *
 * After the threads are joined, the engine stopped and the dead letter
 * queue drained, the run fails unless:
 *  - no thread met an unexpected return code;
 *  - every accepted id was delivered once or dead-lettered once, or neither
 *    (evicted from the queue) and then the ids in neither number exactly
 *    the evictions counted; no id that was not accepted was either;
 *  - no duplicate delivery or dead letter, no wrong id, size or canary, no
 *    attempts count outside [1, max_attempts], no handler run on a server
 *    after sy_server_remove() returned;
 *  - accepted == delivered + dead-lettered + evicted with nothing in
 *    flight, each equal to what the producers, the handlers and the drains
 *    counted, reason by reason; the counters of handler runs, failures and
 *    refusals (kind by kind) equal the threads' own counts;
 *  - with no_dead_letters, every accepted message was delivered;
 *  - the watcher never read more messages ended than accepted, nor reasons
 *    that did not add up; on_backpressure kept every worker's count of
 *    congested rings in [0, producers + workers], and 0 after the stop;
 *  - every snapshot a reader took passed the checks of check_snapshot()
 *    below, and the last one, after the stop, is exact.
 *
 * Handlers and callbacks count with C11 atomics only (ThreadSanitizer sees
 * them); the main thread reads what the other threads wrote after joining
 * them, or after sy_engine_stop() has joined the workers.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/common.h"
#include "tests/stress/stress.h"

#define REATTACH_EVERY 40000u
#define MIN_CHURN_OPS 50u
#define MAX_REPORTED 20u        /* failures printed; the rest are counted */
#define MAX_WORKERS 16u
#define HELD 8u                 /* snapshots a reader holds at once */
#define LINGER_MS 600000u       /* bound of the readers' extra time */

struct slot {
	const struct stress_server *spec;
	char name[16];
	uint64_t rng;               /* its worker only */
	_Atomic bool alive;         /* its handler may run */
	_Atomic uint64_t runs;
	_Atomic uint64_t failed;
	bool present;               /* the churn thread (or set-up) only */
	uint32_t id;                /* likewise */
};

struct producer {
	const struct stress_producer *spec;
	unsigned index;
	uint64_t rng;
	uint64_t first, end;        /* its ids */
	uint64_t sends;
	uint64_t accepted;
	uint64_t refused;           /* refused send attempts, retries included */
	uint64_t gave_up;           /* messages freed unsent */
	uint64_t reattaches;
	int fatal;                  /* an unexpected return code, 0 if none */
	const char *fatal_what;
};

struct churn {
	uint64_t rng;
	uint64_t ops;               /* 0: until the run stops */
	uint64_t done[STRESS_OPS];
	int fatal;
	const char *fatal_what;
};

struct watcher {
	struct t_watch w;
	uint64_t drains;
	int fatal;
};

static struct run {
	const struct stress_scenario *sc;
	sy_engine *eng;
	unsigned workers;
	unsigned max_attempts;
	uint64_t per_producer;
	uint64_t total;             /* ids 0 .. total - 1 */
	struct slot servers[STRESS_MAX_SERVERS];
	struct stress_server any_server; /* the spec of unlisted servers */
	_Atomic uint32_t route_id[STRESS_MAX_ROUTES]; /* stale once removed */
	bool route_present[STRESS_MAX_ROUTES]; /* the churn thread only */
	unsigned route_weights;
	uint64_t *accepted;         /* bitmap; producers own their words */
	_Atomic uint64_t *delivered;
	_Atomic uint64_t *dead;
	_Atomic uint64_t duplicates;
	_Atomic uint64_t dead_twice;
	_Atomic uint64_t bad_id;
	_Atomic uint64_t bad_size;
	_Atomic uint64_t bad_canary;
	_Atomic uint64_t bad_attempts;
	_Atomic uint64_t after_remove;
	_Atomic int64_t congested[MAX_WORKERS]; /* on_backpressure: on - off */
	_Atomic uint64_t congested_events;
	_Atomic uint64_t congested_bad;
	_Atomic uint64_t dl_by_reason[SY_DL_REASONS];
	_Atomic uint64_t snapshots;     /* checked by the readers */
	_Atomic uint64_t newest_seq;    /* highest sequence number seen */
	_Atomic uint64_t refresh_timeouts;
	_Atomic bool stop;              /* every thread returns */
	pthread_mutex_t fail_lock;
	unsigned failures;
	struct producer prod[STRESS_MAX_PRODUCERS];
	struct churn churn;
	struct watcher watcher;
} run = { .fail_lock = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------------ */
/* Failures, time, random numbers, bitmaps                             */
/* ------------------------------------------------------------------ */

static void fail_v(const char *fmt, va_list ap)
{
	pthread_mutex_lock(&run.fail_lock);
	if (run.failures++ < MAX_REPORTED) {
		fprintf(stderr, "%s: FAIL: ", run.sc->name);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&run.fail_lock);
	atomic_store(&run.stop, true);
}

void stress_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(fmt, ap);
	va_end(ap);
}

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	fail_v(fmt, ap);
	va_end(ap);
}

static bool run_failed(void)
{
	bool f;

	pthread_mutex_lock(&run.fail_lock);
	f = run.failures > 0;
	pthread_mutex_unlock(&run.fail_lock);
	return f;
}

static bool stopping(void)
{
	/* Relaxed: the flag only says when to stop, it publishes nothing. */
	return atomic_load_explicit(&run.stop, memory_order_relaxed);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

/* splitmix64: a state per thread, never shared. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *state)
{
	*state = mix(*state);
	return *state;
}

static bool bit_set(_Atomic uint64_t *map, uint64_t id)
{
	uint64_t bit = 1ull << (id % 64);

	/* Relaxed: main reads the bitmaps after joining every thread. */
	return atomic_fetch_or_explicit(&map[id / 64], bit,
					memory_order_relaxed) & bit;
}

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static size_t payload_size(uint64_t id)
{
	const struct stress_scenario *sc = run.sc;

	return sc->payload_min + mix(id) % (sc->payload_max - sc->payload_min + 1);
}

static unsigned char canary(uint64_t id, size_t i)
{
	return (unsigned char)(id * 131u + i * 7u + (i >> 8));
}

static sy_msg *message_new(struct producer *p, uint64_t id)
{
	size_t size = payload_size(id);
	sy_msg *m = sy_msg_alloc(run.eng, size);
	unsigned char *d;

	if (!m)
		return NULL;
	d = sy_msg_data(m);
	memcpy(d, &id, sizeof(id));
	for (size_t i = sizeof(id); i < size; i++)
		d[i] = canary(id, i);
	sy_msg_set_tag(m, id);
	if (rnd(&p->rng) % 1000 < run.sc->expired_per_mille)
		sy_msg_set_deadline(m, 1);
	return m;
}

/* The message's id, or false (counted) when it is not one we sent. */
static bool message_id(sy_msg *m, uint64_t *out)
{
	const unsigned char *d = sy_msg_data(m);
	size_t size = sy_msg_size(m);
	uint64_t id;

	if (size < sizeof(id)) {
		count(&run.bad_size);
		return false;
	}
	memcpy(&id, d, sizeof(id));
	if (id >= run.total || sy_msg_tag(m) != id) {
		count(&run.bad_id);
		return false;
	}
	if (size != payload_size(id))
		count(&run.bad_size);
	for (size_t i = sizeof(id); i < size; i++) {
		if (d[i] != canary(id, i)) {
			count(&run.bad_canary);
			break;
		}
	}
	*out = id;
	return true;
}

/* ------------------------------------------------------------------ */
/* The handler and the callbacks                                       */
/* ------------------------------------------------------------------ */

static int handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct slot *sv = ctx;
	unsigned attempts = sy_msg_attempts(m);
	uint64_t id;

	(void)eng;
	/* Acquire pairs with the release stores of alive (server_add(),
	 * server_remove()). */
	if (!atomic_load_explicit(&sv->alive, memory_order_acquire))
		count(&run.after_remove);
	count(&sv->runs);
	if (!message_id(m, &id))
		return 0;
	if (attempts < 1 || attempts > run.max_attempts)
		count(&run.bad_attempts);
	if (sv->spec->slow_ns)
		spin_ns(sv->spec->slow_ns);
	if (sv->spec->fail_per_mille &&
	    rnd(&sv->rng) % 1000 < sv->spec->fail_per_mille) {
		count(&sv->failed);
		return -EIO;
	}
	if (bit_set(run.delivered, id))
		count(&run.duplicates);
	return 0;
}

/* Keeps, per worker, how many rings into it are past their threshold. */
static void on_backpressure(sy_engine *eng, unsigned worker, bool congested,
			    void *ctx)
{
	int64_t step = congested ? 1 : -1, level;

	(void)eng;
	(void)ctx;
	count(&run.congested_events);
	if (worker >= run.workers || worker >= MAX_WORKERS) {
		count(&run.congested_bad);
		return;
	}
	level = atomic_fetch_add_explicit(&run.congested[worker], step,
					  memory_order_relaxed) + step;
	if (level < 0 || level > (int64_t)(run.sc->n_producers + run.workers))
		count(&run.congested_bad);
}

static void take_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			sy_msg *m, void *ctx)
{
	uint64_t id;

	(void)eng;
	(void)ctx;
	if (dl->reason < SY_DL_REASONS)
		count(&run.dl_by_reason[dl->reason]);
	if (message_id(m, &id)) {
		if (dl->tag != id)
			count(&run.bad_id);
		else if (bit_set(run.dead, id))
			count(&run.dead_twice);
	}
	sy_msg_free(m);
}

static int drain_dead_letters(void)
{
	return sy_dlq_drain(run.eng, NULL, take_letter, NULL);
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */
/* ------------------------------------------------------------------ */

static void producer_fail(struct producer *p, const char *what, int rc)
{
	if (!p->fatal) {
		p->fatal = rc ? rc : -1;
		p->fatal_what = what;
	}
}

static bool refusal_in(int rc, unsigned set)
{
	return (rc == -ENOENT && (set & STRESS_NOROUTE)) ||
	       (rc == -EHOSTUNREACH && (set & STRESS_UNREACHABLE)) ||
	       (rc == -EAGAIN && (set & STRESS_FULL)) ||
	       (rc == -ENOBUFS && (set & STRESS_BACKPRESSURE));
}

static uint32_t pick_route(struct producer *p)
{
	unsigned r = (unsigned)(rnd(&p->rng) % run.route_weights), k = 0;

	while (r >= run.sc->routes[k].weight)
		r -= run.sc->routes[k++].weight;
	return atomic_load_explicit(&run.route_id[k], memory_order_relaxed);
}

static void mark_accepted(struct producer *p, uint64_t id)
{
	run.accepted[id / 64] |= 1ull << (id % 64);
	p->accepted++;
}

static void send_single(struct producer *p, uint64_t id)
{
	const struct stress_scenario *sc = run.sc;
	sy_msg *m = message_new(p, id);
	uint32_t route = pick_route(p);
	int rc;

	if (!m) {
		producer_fail(p, "sy_msg_alloc", -ENOMEM);
		return;
	}
	for (unsigned tries = 1;; tries++) {
		rc = sy_msg_send(run.eng, route, m);
		if (rc == 0) {
			mark_accepted(p, id);
			return;
		}
		p->refused++;
		if (!refusal_in(rc, sc->refusals)) {
			producer_fail(p, "sy_msg_send", rc);
			break;
		}
		if (!refusal_in(rc, sc->retried) || tries >= sc->send_tries)
			break;
		sched_yield();
	}
	p->gave_up++;
	sy_msg_free(m);
}

/* Send ids first .. first + n - 1 as bursts, retrying what is refused. */
static void send_burst(struct producer *p, uint64_t first, unsigned n)
{
	const struct stress_scenario *sc = run.sc;
	sy_msg *msgs[STRESS_MAX_BURST], *sent_as[STRESS_MAX_BURST];
	uint32_t route = pick_route(p);
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		msgs[i] = sent_as[i] = message_new(p, first + i);
		if (!msgs[i]) {
			producer_fail(p, "sy_msg_alloc", -ENOMEM);
			n = i;
			break;
		}
	}
	for (unsigned tries = 1; done < n; tries++) {
		int rc = sy_msg_send_burst(run.eng, route, msgs + done, n - done);
		unsigned k = rc > 0 ? (unsigned)rc : 0;

		/* An accepted message is the engine's: know it by its address,
		 * never by reading it. */
		for (unsigned a = done; a < done + k; a++)
			for (unsigned j = 0; j < n; j++)
				if (sent_as[j] == msgs[a])
					mark_accepted(p, first + j);
		done += k;
		if (done == n)
			break;
		p->refused += n - done;
		if (rc < 0 && !refusal_in(rc, sc->refusals)) {
			producer_fail(p, "sy_msg_send_burst", rc);
			break;
		}
		if ((rc < 0 && !refusal_in(rc, sc->retried)) ||
		    tries >= sc->send_tries)
			break;
		sched_yield();
	}
	for (unsigned i = done; i < n; i++) {
		p->gave_up++;
		sy_msg_free(msgs[i]);
	}
}

/* How many ids the next send call takes: 0 for one sy_msg_send(). */
static unsigned burst_len(struct producer *p, uint64_t id)
{
	switch (p->spec->sends) {
	case STRESS_SINGLE:
		return 0;
	case STRESS_BURSTS:
		return 1 + (unsigned)(rnd(&p->rng) % run.sc->burst_max);
	default:
		return id % 5 == 0 ? run.sc->burst_max : 0;
	}
}

static void reattach(struct producer *p)
{
	int rc;

	if ((rc = sy_producer_detach(run.eng)) != 0)
		producer_fail(p, "sy_producer_detach", rc);
	if ((rc = sy_producer_attach(run.eng)) != 0)
		producer_fail(p, "sy_producer_attach (again)", rc);
	p->reattaches++;
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	bool attached = p->spec->attach != STRESS_LAZY;
	int rc;

	if (attached && (rc = sy_producer_attach(run.eng)) != 0) {
		producer_fail(p, "sy_producer_attach", rc);
		return NULL;
	}
	for (uint64_t id = p->first; id < p->end && !p->fatal && !stopping();) {
		unsigned n = burst_len(p, id);

		if (n == 0) {
			send_single(p, id++);
		} else {
			if (n > p->end - id)
				n = (unsigned)(p->end - id);
			send_burst(p, id, n);
			id += n;
		}
		if (p->spec->attach == STRESS_REATTACH &&
		    ++p->sends % REATTACH_EVERY == 0)
			reattach(p);
	}
	if (attached && (rc = sy_producer_detach(run.eng)) != 0)
		producer_fail(p, "sy_producer_detach", rc);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Churn of the routing table                                          */
/* ------------------------------------------------------------------ */

static void churn_fail(struct churn *c, const char *what, int rc)
{
	if (!c->fatal) {
		c->fatal = rc ? rc : -1;
		c->fatal_what = what;
	}
}

static int server_add(struct churn *c, unsigned k)
{
	struct slot *sv = &run.servers[k];
	struct sy_server_opts so = { .worker = sv->spec->worker, .worker_set = true };
	int rc;

	if (so.worker == STRESS_ANY_WORKER)
		so.worker = (int)(rnd(&c->rng) % (run.workers + 1)) - 1;
	/* Release pairs with the handler's acquire load. */
	atomic_store_explicit(&sv->alive, true, memory_order_release);
	rc = sy_server_add(run.eng, sv->name, handler, sv, &so, &sv->id);
	if (rc == 0)
		sv->present = true;
	return rc;
}

static int server_remove(unsigned k)
{
	struct slot *sv = &run.servers[k];
	int rc = sy_server_remove(run.eng, sv->id);

	if (rc)
		return rc;
	/* Every message for it has been handled: no handler may run now. */
	atomic_store_explicit(&sv->alive, false, memory_order_release);
	sv->present = false;
	return 0;
}

/* A random server whose presence is @p present (and that may be removed,
 * when it is), or -1. */
static int pick_server(struct churn *c, bool present)
{
	unsigned n = run.sc->n_servers;
	unsigned start = (unsigned)(rnd(&c->rng) % n);

	for (unsigned i = 0; i < n; i++) {
		struct slot *sv = &run.servers[(start + i) % n];

		if (sv->present == present && (!present || sv->spec->churn))
			return (int)((start + i) % n);
	}
	return -1;
}

static int pick_route_slot(struct churn *c, bool present)
{
	unsigned n = run.sc->n_routes;
	unsigned start = (unsigned)(rnd(&c->rng) % n);

	for (unsigned i = 0; i < n; i++)
		if (run.route_present[(start + i) % n] == present)
			return (int)((start + i) % n);
	return -1;
}

/* Route @p r's present servers; how many (0: none, leave the route be). */
static unsigned route_members(struct churn *c, unsigned r, uint32_t *ids)
{
	const struct stress_route *spec = &run.sc->routes[r];
	unsigned n = 0, want, start;

	if (spec->n_members) {
		for (unsigned i = 0; i < spec->n_members; i++)
			if (run.servers[spec->members[i]].present)
				ids[n++] = run.servers[spec->members[i]].id;
		return n;
	}
	want = 1 + (unsigned)(rnd(&c->rng) % spec->max_members);
	start = (unsigned)(rnd(&c->rng) % run.sc->n_servers);
	for (unsigned i = 0; i < run.sc->n_servers && n < want; i++) {
		struct slot *sv = &run.servers[(start + i) % run.sc->n_servers];

		if (sv->present)
			ids[n++] = sv->id;
	}
	return n;
}

/* Add route @p r, or (@p replace) replace it; 0 also when it has no
 * server to take. */
static int route_build(struct churn *c, unsigned r, bool replace)
{
	struct sy_route_opts ro = run.sc->routes[r].opts;
	uint32_t ids[STRESS_MAX_SERVERS], id;
	int rc;

	ro.servers = ids;
	ro.n_servers = route_members(c, r, ids);
	if (!ro.n_servers)
		return 0;
	if (replace)
		return sy_route_replace(run.eng, atomic_load(&run.route_id[r]), &ro);
	rc = sy_route_add(run.eng, run.sc->routes[r].name, &ro, &id);
	if (rc == 0) {
		atomic_store_explicit(&run.route_id[r], id, memory_order_relaxed);
		run.route_present[r] = true;
	}
	return rc;
}

static void rebuild_routes(struct churn *c)
{
	for (unsigned r = 0; r < run.sc->n_routes; r++) {
		int rc = run.route_present[r] ? route_build(c, r, true) : 0;

		if (rc)
			churn_fail(c, "sy_route_replace", rc);
	}
}

/* Names and ids agree with what the churn thread did. */
static void churn_find(struct churn *c)
{
	unsigned k = (unsigned)(rnd(&c->rng) % run.sc->n_routes);
	uint32_t id;
	int rc;

	rc = sy_route_find(run.eng, run.sc->routes[k].name, &id);
	if (run.route_present[k] ? rc != 0 || id != atomic_load(&run.route_id[k])
				 : rc != -ENOENT)
		churn_fail(c, "sy_route_find disagrees", rc);
	k = (unsigned)(rnd(&c->rng) % run.sc->n_servers);
	rc = sy_server_find(run.eng, run.servers[k].name, &id);
	if (run.servers[k].present ? rc != 0 || id != run.servers[k].id
				   : rc != -ENOENT)
		churn_fail(c, "sy_server_find disagrees", rc);
}

static void churn_once(struct churn *c, enum stress_op op)
{
	int k, rc = 0;

	switch (op) {
	case STRESS_ADD_SERVER:
		if ((k = pick_server(c, false)) >= 0 && (rc = server_add(c, (unsigned)k)))
			churn_fail(c, "sy_server_add", rc);
		break;
	case STRESS_REMOVE_SERVER:
		if ((k = pick_server(c, true)) >= 0 && (rc = server_remove((unsigned)k)))
			churn_fail(c, "sy_server_remove", rc);
		break;
	case STRESS_CYCLE_SERVER:
		if ((k = pick_server(c, true)) < 0)
			break;
		if ((rc = server_remove((unsigned)k))) {
			churn_fail(c, "sy_server_remove", rc);
			break;
		}
		rebuild_routes(c);
		if ((rc = server_add(c, (unsigned)k)))
			churn_fail(c, "sy_server_add", rc);
		rebuild_routes(c);
		break;
	case STRESS_REPLACE_ROUTE:
		if ((k = pick_route_slot(c, true)) >= 0 &&
		    (rc = route_build(c, (unsigned)k, true)))
			churn_fail(c, "sy_route_replace", rc);
		break;
	case STRESS_REMOVE_ROUTE:
		if ((k = pick_route_slot(c, true)) < 0)
			break;
		/* The id stays in route_id: senders that use it get -ENOENT. */
		if ((rc = sy_route_remove(run.eng, atomic_load(&run.route_id[k]))))
			churn_fail(c, "sy_route_remove", rc);
		else
			run.route_present[k] = false;
		break;
	case STRESS_ADD_ROUTE:
		if ((k = pick_route_slot(c, false)) >= 0 &&
		    (rc = route_build(c, (unsigned)k, false)))
			churn_fail(c, "sy_route_add", rc);
		break;
	default:
		churn_find(c);
		break;
	}
	c->done[op]++;
}

static enum stress_op churn_pick(struct churn *c, unsigned total)
{
	unsigned r = (unsigned)(rnd(&c->rng) % total), op = 0;

	while (r >= run.sc->churn.weight[op])
		r -= run.sc->churn.weight[op++];
	return (enum stress_op)op;
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	const struct stress_churn *spec = &run.sc->churn;
	struct timespec pause = { .tv_sec = spec->pause_us / 1000000,
				  .tv_nsec = (long)(spec->pause_us % 1000000) * 1000 };
	unsigned total = 0;

	for (unsigned op = 0; op < STRESS_OPS; op++)
		total += spec->weight[op];
	for (uint64_t op = 0; !c->fatal && !stopping() && (!c->ops || op < c->ops); op++) {
		churn_once(c, churn_pick(c, total));
		if (spec->pause_us)
			nanosleep(&pause, NULL);
		else
			sched_yield();
	}
	/* A run that lasts as long as the churn ends with it. */
	if (c->ops)
		atomic_store(&run.stop, true);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The watcher: accounting reads and dead letter drains                */
/* ------------------------------------------------------------------ */

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	uint64_t period = (uint64_t)run.sc->drain_ms * 1000000u;
	uint64_t next_drain = now_ns() + period;

	while (!stopping() && !w->fatal) {
		if (t_watch_once(run.eng, &w->w) != 0)
			w->fatal = -EINVAL;
		if (w->w.reads % 64 == 0)
			sched_yield();
		if (now_ns() >= next_drain) {
			int n = drain_dead_letters();

			if (n < 0)
				w->fatal = n;
			w->drains++;
			next_drain = now_ns() + period;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Snapshot readers                                                    */
/* ------------------------------------------------------------------ */

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

/* The counters that routes and servers keep agree with the engine's. */
static bool same_counts(const struct sy_counters *a, const struct sy_counters *b)
{
	if (a->sent != b->sent || a->delivered != b->delivered ||
	    a->failed != b->failed || a->retried != b->retried)
		return false;
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		if (a->dead_lettered[i] != b->dead_lettered[i])
			return false;
	return true;
}

/*
 * The engine series is the sum of the route series (every route lives
 * through a run with readers), and its rejected count is the producer and
 * worker transports' together. While traffic flows the server series are
 * not summed: a handler run is counted by two stores (its server's
 * counter, then its route's), and the collector may read between them.
 */
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
	if (!same_counts(&total, &e->total) || !same_counts(&recent, &e->recent))
		stress_fail("snapshot %lu: engine != sum of routes (sent %lu vs %lu)",
			    sy_snapshot_seq(snap), e->total.sent, total.sent);
	rejected += sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 0)->total.rejected;
	rejected += sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 1)->total.rejected;
	if (rejected != e->total.rejected)
		stress_fail("snapshot %lu: engine rejected %lu, transports %lu",
			    sy_snapshot_seq(snap), e->total.rejected, rejected);
}

/* No window above its total, error rates in [0, 1], no depth above max. */
static void check_series(const sy_snapshot *snap)
{
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		for (unsigned i = 0; i < sy_snapshot_count(snap, k); i++) {
			const struct sy_series *s = sy_snapshot_series(snap, k, i);

			if (!counters_le(&s->recent, &s->total))
				stress_fail("snapshot %lu: %s: window above total",
					    sy_snapshot_seq(snap), s->name);
			if (s->error_rate < 0 || s->error_rate > 1 ||
			    s->error_rate_recent < 0 || s->error_rate_recent > 1)
				stress_fail("%s: error rate out of [0, 1]", s->name);
		}
	}
	for (unsigned w = 0; w < sy_snapshot_workers(snap); w++) {
		struct sy_queue_depth q;

		if (sy_snapshot_queue(snap, w, &q) || q.current > q.max)
			stress_fail("worker %u: depth %lu above max %lu", w,
				    q.current, q.max);
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

/* Statistics in order, no window above its total. */
static void check_summaries(const sy_snapshot *snap)
{
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		struct sy_hist_summary total, recent;

		sy_snapshot_hist(snap, k, false, &total);
		sy_snapshot_hist(snap, k, true, &recent);
		if (recent.count > total.count)
			stress_fail("histogram %u: window above total", k);
		if (!summary_ordered(&total) || !summary_ordered(&recent))
			stress_fail("histogram %u: statistics out of order", k);
	}
}

static void snapshot_checks(const sy_snapshot *snap)
{
	check_sums(snap);
	check_series(snap);
	check_summaries(snap);
	if (run.sc->check_snapshot)
		run.sc->check_snapshot(snap);
	count(&run.snapshots);
}

/* Nothing in @p b is older or smaller than in @p a (b was taken later). */
static void check_progress(const sy_snapshot *a, const sy_snapshot *b)
{
	if (sy_snapshot_seq(b) < sy_snapshot_seq(a) ||
	    sy_snapshot_time_ns(b) < sy_snapshot_time_ns(a))
		stress_fail("snapshot %lu after %lu", sy_snapshot_seq(b),
			    sy_snapshot_seq(a));
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		for (unsigned i = 0; i < sy_snapshot_count(a, k); i++) {
			const struct sy_series *s = sy_snapshot_series(a, k, i);
			const struct sy_series *t = sy_snapshot_find(b, k, s->name);

			if (!t || !counters_le(&s->total, &t->total))
				stress_fail("%s: totals went back from %lu to %lu",
					    s->name, sy_snapshot_seq(a),
					    sy_snapshot_seq(b));
		}
	}
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		struct sy_hist_summary x, y;

		sy_snapshot_hist(a, k, false, &x);
		sy_snapshot_hist(b, k, false, &y);
		if (y.count < x.count)
			stress_fail("histogram %u went back", k);
	}
}

/* Takes snapshots without pause and holds HELD of them at once, so that
 * references outlive newer publications. */
static void *reader_main(void *arg)
{
	sy_snapshot *held[HELD] = { NULL };
	sy_snapshot *last = NULL;
	unsigned next = 0;

	(void)arg;
	while (!stopping()) {
		sy_snapshot *snap = sy_metrics_snapshot(run.eng);

		if (!snap) {
			sched_yield();
			continue;
		}
		snapshot_checks(snap);
		if (last)
			check_progress(last, snap);
		last = snap;
		if (sy_snapshot_seq(snap) > atomic_load(&run.newest_seq))
			atomic_store(&run.newest_seq, sy_snapshot_seq(snap));
		/* Release the one taken HELD snapshots ago. */
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
	struct timespec pause = { 0, (long)run.sc->refresh_ms * 1000000 };

	(void)arg;
	while (!stopping()) {
		int rc = sy_metrics_refresh(run.eng);

		/* A loaded machine may keep the collector past the 1 s bound. */
		if (rc == -ETIMEDOUT)
			count(&run.refresh_timeouts);
		else if (rc)
			stress_fail("sy_metrics_refresh: %s", sy_strerror(rc));
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* After the stop: every sum exact, and equal to what the threads counted. */
static void check_last_snapshot(uint64_t accepted, uint64_t runs)
{
	sy_snapshot *snap = sy_metrics_snapshot(run.eng);
	const struct sy_series *e;
	struct sy_counters servers = { 0 };

	if (!snap) {
		stress_fail("no snapshot after stop");
		return;
	}
	snapshot_checks(snap);
	e = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	for (unsigned i = 0; i < sy_snapshot_count(snap, SY_SERIES_SERVER); i++)
		counters_add(&servers, &sy_snapshot_series(snap, SY_SERIES_SERVER, i)->total);
	check(same_counts(&servers, &e->total), "after stop: servers sent %lu, "
	      "engine %lu", servers.sent, e->total.sent);
	check(e->total.sent == accepted, "after stop: engine sent %lu, producers "
	      "%lu", e->total.sent, accepted);
	check(e->total.delivered + e->total.failed == runs, "after stop: engine "
	      "runs %lu, handlers %lu", e->total.delivered + e->total.failed, runs);
	check(sy_snapshot_series(snap, SY_SERIES_TRANSPORT, 0)->total.sent ==
	      e->total.sent, "after stop: producer transport disagrees");
	sy_snapshot_release(snap);
}

/* ------------------------------------------------------------------ */
/* Set-up                                                              */
/* ------------------------------------------------------------------ */

static bool run_init(const struct stress_scenario *sc, double scale)
{
	uint64_t messages = sc->churn.ops ? sc->messages :
			    (uint64_t)((double)sc->messages * scale);
	size_t words;

	run.per_producer = (messages / sc->n_producers + 63) / 64 * 64;
	if (run.per_producer < 64)
		run.per_producer = 64;
	run.total = run.per_producer * sc->n_producers;
	words = (size_t)(run.total / 64);
	run.accepted = calloc(words, sizeof(*run.accepted));
	run.delivered = calloc(words, sizeof(*run.delivered));
	run.dead = calloc(words, sizeof(*run.dead));
	if (!run.accepted || !run.delivered || !run.dead)
		return false;
	for (size_t w = 0; w < words; w++) {
		atomic_init(&run.delivered[w], 0);
		atomic_init(&run.dead[w], 0);
	}
	run.churn.rng = 0x5eed;
	if (sc->churn.ops) {
		run.churn.ops = (uint64_t)((double)sc->churn.ops * scale);
		if (run.churn.ops < MIN_CHURN_OPS)
			run.churn.ops = MIN_CHURN_OPS;
	}
	for (unsigned p = 0; p < sc->n_producers; p++)
		run.prod[p] = (struct producer){
			.spec = &sc->producers[p],
			.index = p,
			.rng = mix(p + 1),
			.first = p * run.per_producer,
			.end = (p + 1) * run.per_producer,
		};
	run.any_server = (struct stress_server){ .worker = STRESS_ANY_WORKER,
						 .churn = true };
	run.max_attempts = 1;
	for (unsigned r = 0; r < sc->n_routes; r++) {
		run.route_weights += sc->routes[r].weight;
		if (sc->routes[r].opts.max_attempts > run.max_attempts)
			run.max_attempts = sc->routes[r].opts.max_attempts;
	}
	for (unsigned k = 0; k < sc->n_servers; k++) {
		struct slot *sv = &run.servers[k];

		sv->spec = sc->servers ? &sc->servers[k] : &run.any_server;
		if (sc->servers)
			snprintf(sv->name, sizeof(sv->name), "%s", sv->spec->name);
		else
			snprintf(sv->name, sizeof(sv->name), "s%u", k);
		sv->rng = 0x9e3779b97f4a7c15ull * (k + 1);
	}
	return true;
}

static int setup_failed(const char *what, int rc)
{
	stress_fail("set-up: %s: %s (%s)", what, sy_strerror(rc), sy_last_error());
	return rc;
}

static int setup(void)
{
	const struct stress_scenario *sc = run.sc;
	unsigned start = sc->start_servers ? sc->start_servers : sc->n_servers;
	struct sy_config cfg = sc->engine;
	int rc;

	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	if (sc->track_backpressure)
		cfg.on_backpressure = on_backpressure;
	if ((rc = sy_engine_create(&cfg, &run.eng)))
		return setup_failed("sy_engine_create", rc);
	run.workers = sy_engine_workers(run.eng);
	/* All of them in order, or as many as asked at random. */
	for (unsigned k = 0; k < start; k++) {
		int slot = start == sc->n_servers ? (int)k : pick_server(&run.churn, false);

		if ((rc = server_add(&run.churn, (unsigned)slot)))
			return setup_failed("sy_server_add", rc);
	}
	for (unsigned r = 0; r < sc->n_routes; r++)
		if ((rc = route_build(&run.churn, r, false)) || !run.route_present[r])
			return setup_failed("sy_route_add", rc ? rc : -EINVAL);
	if ((rc = sy_engine_start(run.eng)))
		return setup_failed("sy_engine_start", rc);
	return 0;
}

static void run_free(void)
{
	if (run.eng)
		sy_engine_destroy(run.eng);
	free(run.accepted);
	free((void *)run.delivered);
	free((void *)run.dead);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

struct threads {
	pthread_t t[STRESS_MAX_PRODUCERS + STRESS_MAX_READERS + 3];
	unsigned n;
};

static void start(struct threads *ts, void *(*fn)(void *), void *arg,
		  const char *what)
{
	if (pthread_create(&ts->t[ts->n], NULL, fn, arg))
		stress_fail("cannot start the %s thread", what);
	else
		ts->n++;
}

static void join(struct threads *ts)
{
	for (unsigned i = 0; i < ts->n; i++)
		pthread_join(ts->t[i], NULL);
	ts->n = 0;
}

/* The readers go on after the producers until they checked enough. */
static void linger(void)
{
	uint64_t end = t_now_ms() + LINGER_MS;

	while (atomic_load(&run.snapshots) < run.sc->linger_snapshots &&
	       !stopping() && t_now_ms() < end)
		sched_yield();
}

static void run_threads(void)
{
	const struct stress_scenario *sc = run.sc;
	struct threads producers = { .n = 0 }, helpers = { .n = 0 };
	bool churning = false;

	for (unsigned op = 0; op < STRESS_OPS; op++)
		churning |= sc->churn.weight[op] != 0;
	for (unsigned i = 0; i < sc->readers; i++)
		start(&helpers, reader_main, NULL, "reader");
	if (sc->refresh_ms)
		start(&helpers, refresher_main, NULL, "refresher");
	if (churning)
		start(&helpers, churn_main, &run.churn, "churn");
	if (sc->drain_ms)
		start(&helpers, watcher_main, &run.watcher, "watcher");
	for (unsigned p = 0; p < sc->n_producers; p++)
		start(&producers, producer_main, &run.prod[p], "producer");
	join(&producers);
	linger();
	atomic_store(&run.stop, true);
	join(&helpers);
}

/* ------------------------------------------------------------------ */
/* Checks and report                                                   */
/* ------------------------------------------------------------------ */

struct totals {
	uint64_t accepted, refused, gave_up, runs, fails;
	uint64_t delivered, dead, missing, both, stray, first_missing;
};

static void check_threads(struct totals *t)
{
	const struct churn *c = &run.churn;

	for (unsigned p = 0; p < run.sc->n_producers; p++) {
		const struct producer *pr = &run.prod[p];

		check(!pr->fatal, "producer %u: %s returned %d (%s)", p,
		      pr->fatal_what ? pr->fatal_what : "?", pr->fatal,
		      sy_strerror(pr->fatal));
		t->accepted += pr->accepted;
		t->refused += pr->refused;
		t->gave_up += pr->gave_up;
	}
	check(!c->fatal, "churn: %s returned %d (%s)",
	      c->fatal_what ? c->fatal_what : "?", c->fatal, sy_strerror(c->fatal));
	check(!run.watcher.fatal, "watcher: %s", sy_strerror(run.watcher.fatal));
	for (unsigned k = 0; k < run.sc->n_servers; k++) {
		t->runs += atomic_load(&run.servers[k].runs);
		t->fails += atomic_load(&run.servers[k].failed);
	}
}

static void check_ids(struct totals *t)
{
	t->first_missing = UINT64_MAX;
	for (uint64_t w = 0; w < run.total / 64; w++) {
		uint64_t acc = run.accepted[w];
		uint64_t del = atomic_load_explicit(&run.delivered[w], memory_order_relaxed);
		uint64_t dead = atomic_load_explicit(&run.dead[w], memory_order_relaxed);
		uint64_t missing = acc & ~del & ~dead;

		t->delivered += (uint64_t)__builtin_popcountll(del);
		t->dead += (uint64_t)__builtin_popcountll(dead);
		t->stray += (uint64_t)__builtin_popcountll(~acc & (del | dead));
		t->both += (uint64_t)__builtin_popcountll(acc & del & dead);
		t->missing += (uint64_t)__builtin_popcountll(missing);
		if (missing && t->first_missing == UINT64_MAX)
			t->first_missing = w * 64 + (uint64_t)__builtin_ctzll(missing);
	}
	check(t->stray == 0, "%lu ids delivered or dead-lettered but never "
	      "accepted", t->stray);
	check(t->both == 0, "%lu ids both delivered and dead-lettered", t->both);
	check(atomic_load(&run.duplicates) == 0, "%lu duplicate deliveries",
	      atomic_load(&run.duplicates));
	check(atomic_load(&run.dead_twice) == 0, "%lu ids dead-lettered twice",
	      atomic_load(&run.dead_twice));
	check(atomic_load(&run.bad_id) == 0, "%lu messages with a wrong id or tag",
	      atomic_load(&run.bad_id));
	check(atomic_load(&run.bad_size) == 0, "%lu wrong payload sizes",
	      atomic_load(&run.bad_size));
	check(atomic_load(&run.bad_canary) == 0, "%lu damaged payloads",
	      atomic_load(&run.bad_canary));
	check(atomic_load(&run.bad_attempts) == 0, "%lu handler runs with "
	      "attempts out of [1, %u]", atomic_load(&run.bad_attempts),
	      run.max_attempts);
	check(atomic_load(&run.after_remove) == 0, "%lu handler runs after "
	      "sy_server_remove() returned", atomic_load(&run.after_remove));
}

static void check_accounting(const struct sy_accounting *a, struct totals *t)
{
	check(t->missing == a->evicted, "%lu accepted ids neither delivered nor "
	      "dead-lettered (the first %lu), %lu evictions counted", t->missing,
	      t->first_missing, a->evicted);
	check(t->accepted > 0, "nothing was accepted");
	check(a->accepted == t->accepted, "accounting: accepted %lu, producers "
	      "counted %lu", a->accepted, t->accepted);
	check(a->accepted == a->delivered + a->failed_kept + a->dead_lettered +
	      a->evicted + a->dropped + a->returned, "accounting: accepted %lu "
	      "!= delivered %lu + failed, kept %lu + dead-lettered %lu + "
	      "evicted %lu + dropped %lu + returned %lu", a->accepted,
	      a->delivered, a->failed_kept, a->dead_lettered, a->evicted,
	      a->dropped, a->returned);
	check(a->in_flight == 0, "accounting: %lu in flight after stop",
	      a->in_flight);
	check(a->delivered == t->delivered, "accounting: delivered %lu, handlers "
	      "marked %lu", a->delivered, t->delivered);
	check(a->dead_lettered == t->dead, "accounting: dead-lettered %lu, "
	      "drained %lu", a->dead_lettered, t->dead);
	check(a->dlq_held == 0, "%lu dead letters left after the last drain",
	      a->dlq_held);
	/* Every dead letter not evicted has been drained. */
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		check(a->dead_lettered_by[r] == atomic_load(&run.dl_by_reason[r]),
		      "accounting: %lu dead letters for reason %u, drained %lu",
		      a->dead_lettered_by[r], r, atomic_load(&run.dl_by_reason[r]));
}

/* Refusals kind by kind: those the scenario expects add up to the
 * producers' count, the others are none. */
static void check_refusals(const struct sy_stats *st, const struct totals *t)
{
	static const struct {
		unsigned kind;
		size_t offset;
		const char *name;
	} kinds[] = {
		{ STRESS_NOROUTE, offsetof(struct sy_stats, rejected_noroute), "noroute" },
		{ STRESS_UNREACHABLE, offsetof(struct sy_stats, rejected_unreachable), "unreachable" },
		{ STRESS_FULL, offsetof(struct sy_stats, rejected_full), "full" },
		{ STRESS_BACKPRESSURE, offsetof(struct sy_stats, rejected_backpressure), "backpressure" },
	};
	uint64_t sum = 0;

	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		uint64_t n;

		memcpy(&n, (const char *)st + kinds[i].offset, sizeof(n));
		sum += n;
		check(n == 0 || (run.sc->refusals & kinds[i].kind), "stats: %lu "
		      "sends refused as %s, which the scenario never sees", n,
		      kinds[i].name);
	}
	check(sum == t->refused, "stats: refused %lu (noroute %lu, unreachable "
	      "%lu, full %lu, backpressure %lu), producers counted %lu", sum,
	      st->rejected_noroute, st->rejected_unreachable, st->rejected_full,
	      st->rejected_backpressure, t->refused);
	check(st->rejected_shutdown == 0, "stats: %lu sends refused as shutdown",
	      st->rejected_shutdown);
}

static void check_counters(const struct sy_stats *st, const struct totals *t)
{
	const struct t_watch *w = &run.watcher.w;

	check(st->handler_runs == t->runs, "stats: %lu handler runs, handlers saw "
	      "%lu", st->handler_runs, t->runs);
	check(st->handler_failed == t->fails, "stats: %lu failed runs, handlers "
	      "failed %lu", st->handler_failed, t->fails);
	check(st->accepted == t->accepted, "stats: accepted %lu, producers "
	      "counted %lu", st->accepted, t->accepted);
	if (run.sc->no_dead_letters) {
		check(st->accepted == st->delivered && st->delivered == t->delivered,
		      "stats: accepted %lu, delivered %lu, handlers marked %lu",
		      st->accepted, st->delivered, t->delivered);
		check(t->missing == 0 && t->dead == 0, "%lu accepted messages "
		      "never handled (the first %lu), %lu dead-lettered",
		      t->missing, t->first_missing, t->dead);
	}
	check_refusals(st, t);
	check(w->ahead == 0, "%lu of %lu accounting reads showed more messages "
	      "ended than accepted (by up to %lu)", w->ahead, w->reads, w->worst);
	check(w->unbalanced == 0, "%lu accounting reads where the reasons did "
	      "not add up", w->unbalanced);
	check(atomic_load(&run.congested_bad) == 0, "%lu on_backpressure calls "
	      "left a worker's congested count out of range",
	      atomic_load(&run.congested_bad));
	for (unsigned i = 0; i < run.workers && i < MAX_WORKERS; i++)
		check(atomic_load(&run.congested[i]) == 0, "worker %u: %ld rings "
		      "still congested after stop", i,
		      (long)atomic_load(&run.congested[i]));
}

static void report(const struct sy_accounting *a, const struct sy_stats *st,
		   const struct totals *t, double seconds)
{
	const struct churn *c = &run.churn;

	printf("%s: %s: %lu ids, %lu accepted = %lu delivered + %lu "
	       "dead-lettered (timeout %lu, failed %lu, exhausted %lu, "
	       "unreachable %lu, overload %lu) + %lu evicted; %lu runs, %lu "
	       "retried; refused "
	       "%lu (noroute %lu, unreachable %lu, full %lu, backpressure %lu), "
	       "%lu given up; churn: servers +%lu -%lu ~%lu, routes ~%lu -%lu "
	       "+%lu, %lu finds; %lu congestion events; %lu accounting reads, "
	       "%lu drains; %lu snapshots checked, newest %lu, %lu refreshes "
	       "timed out; %.1f s\n",
	       run.sc->name, run_failed() ? "FAIL" : "ok", run.total, a->accepted,
	       a->delivered, a->dead_lettered,
	       a->dead_lettered_by[SY_DL_TIMEOUT],
	       a->dead_lettered_by[SY_DL_HANDLER_FAILED],
	       a->dead_lettered_by[SY_DL_RETRIES_EXHAUSTED],
	       a->dead_lettered_by[SY_DL_UNREACHABLE],
	       a->dead_lettered_by[SY_DL_OVERLOAD], a->evicted, st->delivered,
	       st->retried, t->refused, st->rejected_noroute,
	       st->rejected_unreachable, st->rejected_full,
	       st->rejected_backpressure, t->gave_up,
	       c->done[STRESS_ADD_SERVER], c->done[STRESS_REMOVE_SERVER],
	       c->done[STRESS_CYCLE_SERVER], c->done[STRESS_REPLACE_ROUTE],
	       c->done[STRESS_REMOVE_ROUTE], c->done[STRESS_ADD_ROUTE],
	       c->done[STRESS_FIND], atomic_load(&run.congested_events),
	       run.watcher.w.reads, run.watcher.drains,
	       atomic_load(&run.snapshots), atomic_load(&run.newest_seq),
	       atomic_load(&run.refresh_timeouts), seconds);
}

static void finish(double seconds)
{
	struct totals t = { 0 };
	struct sy_accounting a;
	struct sy_stats st;
	int n;

	check(sy_engine_stop(run.eng) == 0, "sy_engine_stop failed");
	check_threads(&t);
	if (run.sc->readers)
		check_last_snapshot(t.accepted, t.runs);
	n = drain_dead_letters();
	check(n >= 0, "sy_dlq_drain: %s", sy_strerror(n));
	sy_engine_accounting(run.eng, &a);
	sy_engine_stats(run.eng, &st);
	check_ids(&t);
	check_accounting(&a, &t);
	check_counters(&st, &t);
	report(&a, &st, &t, seconds);
}

int stress_main(const struct stress_scenario *sc, int argc, char **argv)
{
	double scale = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	uint64_t t0 = now_ns();

	run.sc = sc;
	if (!(scale > 0) || scale > 1000) {
		fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
		return 1;
	}
	if (!run_init(sc, scale)) {
		fprintf(stderr, "%s: out of memory\n", sc->name);
		run_free();
		return 1;
	}
	if (setup() == 0) {
		run_threads();
		finish((double)(now_ns() - t0) / 1e9);
	}
	run_free();
	return run_failed() ? 1 : 0;
}
