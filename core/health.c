/*
 * Health probes.
 *
 * Design. One thread per engine, started by the first server that has a
 * probe, keeps a list of probes (struct sy__health, one per server) under
 * its own mutex. It runs the probe that is due soonest, as soon as the
 * engine clock (sy__now()) says it is due, then schedules it interval_ns
 * after the engine clock at its end. The first probe of a server runs when
 * it is attached. A probe passes when it returns 0 or more. After
 * unhealthy_threshold failures in a row the server's gate gets
 * SY_GATE_UNHEALTHY, and senders skip it; after healthy_threshold passes in
 * a row the bit is cleared again. A server starts healthy.
 *
 * Sleeping is real time (CLOCK_MONOTONIC). With a clock of the user's
 * (sy_config.clock) the thread cannot know how engine time relates to real
 * time, so it looks again every SLEEP_STEP_NS at most; with the default clock
 * it sleeps until the next probe is due.
 *
 * Guarantees:
 *  1. Probes run on this thread only, never on a worker, one at a time, and
 *     without eng->lock or the thread's mutex held.
 *  2. Once sy__health_detach() returns, the server's probe is not running
 *     and never runs again: `running` names the probe in progress, and
 *     detach waits on the condition variable until it is not the one.
 *     Detach is called under eng->lock, so a probe must not call functions
 *     that take it (control functions: servers, routes, sy_breaker_*,
 *     sy_server_healthy()); sending is allowed.
 *  3. The thread is not an RCU reader: it reads no route and no server
 *     other than those on its list, which detach keeps alive for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/engine.h"
#include "core/error.h"
#include "core/health.h"
#include "core/route.h"
#include "core/health.h"

#define SLEEP_STEP_NS 10000000ull         /* 10 ms */
#define SLEEP_MAX_NS 3600000000000ull     /* an hour: nothing due */
#define DEFAULT_INTERVAL_NS 1000000000ull /* 1 s */
#define DEFAULT_HEALTHY 2u
#define DEFAULT_UNHEALTHY 3u

/* One server's probe: read-only after attach but for the fields marked. */
struct sy__health {
	struct sy__health *next;       /* under the thread's mutex */
	struct sy__server *srv;
	sy_health_fn probe;
	void *ctx;
	uint64_t interval_ns;
	unsigned healthy_threshold;
	unsigned unhealthy_threshold;
	uint64_t due_ns;               /* engine clock; under the mutex */
	unsigned passes;               /* in a row, capped at the threshold; */
	unsigned fails;                /* both under the mutex */
};

struct sy__health_thread {
	pthread_mutex_t lock;          /* list, running, stop, due times */
	pthread_cond_t cond;           /* CLOCK_MONOTONIC; broadcast on every change */
	struct sy__health *list;
	struct sy__health *running;    /* whose probe runs now, or NULL */
	uint64_t runs;                 /* probes completed */
	bool stop;
	struct sy_engine *eng;
	pthread_t thread;
};

/* ---- the thread ---- */

/* Wait on the condition variable for at most @p ns of real time. */
static void wait_for(struct sy__health_thread *ht, uint64_t ns)
{
	struct timespec ts;
	uint64_t t;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = (uint64_t)ts.tv_nsec + ns;
	ts.tv_sec += (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	pthread_cond_timedwait(&ht->cond, &ht->lock, &ts);
}

/* The probe due soonest if it is due at @p now, else NULL with *@p wait_ns
 * set to the engine time until then. Under ht->lock. */
static struct sy__health *next_due(struct sy__health_thread *ht, uint64_t now,
				   uint64_t *wait_ns)
{
	struct sy__health *best = NULL;

	for (struct sy__health *e = ht->list; e; e = e->next)
		if (!best || (int64_t)(e->due_ns - best->due_ns) < 0)
			best = e;
	*wait_ns = UINT64_MAX;
	if (!best)
		return NULL;
	if ((int64_t)(best->due_ns - now) <= 0)
		return best;
	*wait_ns = best->due_ns - now;
	return NULL;
}

/* Count one probe result and move the gate after enough in a row. The
 * gate RMWs are relaxed: the gate is a hint senders read relaxed, and an
 * RMW continues the release sequences of the breaker's gate writes. */
static void apply(struct sy__health *e, bool ok)
{
	struct sy__server *srv = e->srv;

	if (ok) {
		e->fails = 0;
		if (e->passes < e->healthy_threshold)
			e->passes++;
		if (e->passes >= e->healthy_threshold)
			atomic_fetch_and_explicit(&srv->gate,
						  ~(unsigned)SY_GATE_UNHEALTHY,
						  memory_order_relaxed);
	} else {
		e->passes = 0;
		if (e->fails < e->unhealthy_threshold)
			e->fails++;
		if (e->fails >= e->unhealthy_threshold)
			atomic_fetch_or_explicit(&srv->gate, SY_GATE_UNHEALTHY,
						 memory_order_relaxed);
	}
}

/* Run @p e's probe with ht->lock dropped; detach waits while it runs. */
static void run_probe(struct sy__health_thread *ht, struct sy__health *e)
{
	struct sy_engine *eng = ht->eng;
	int rc;

	ht->running = e;
	pthread_mutex_unlock(&ht->lock);
	rc = e->probe(eng, e->srv->id, e->ctx);
	pthread_mutex_lock(&ht->lock);
	apply(e, rc >= 0);
	e->due_ns = sy__now(eng) + e->interval_ns;
	ht->running = NULL;
	ht->runs++;
	pthread_cond_broadcast(&ht->cond);
}

static void *health_main(void *arg)
{
	struct sy__health_thread *ht = arg;
	bool own_clock = ht->eng->cfg.clock != sy__clock_monotonic;

	pthread_mutex_lock(&ht->lock);
	while (!ht->stop) {
		uint64_t wait_ns;
		struct sy__health *e = next_due(ht, sy__now(ht->eng), &wait_ns);

		if (e) {
			run_probe(ht, e);
			continue;
		}
		if (own_clock && wait_ns > SLEEP_STEP_NS)
			wait_ns = SLEEP_STEP_NS;
		wait_for(ht, wait_ns < SLEEP_MAX_NS ? wait_ns : SLEEP_MAX_NS);
	}
	pthread_mutex_unlock(&ht->lock);
	return NULL;
}

/* Start the engine's health thread. Under eng->lock. */
static int thread_start(struct sy_engine *eng)
{
	struct sy__health_thread *ht = calloc(1, sizeof(*ht));
	pthread_condattr_t ca;
	int rc;

	if (!ht)
		return sy__fail(-ENOMEM, "no memory for the health thread");
	ht->eng = eng;
	pthread_mutex_init(&ht->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ht->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&ht->thread, NULL, health_main, ht);
	if (rc) {
		pthread_cond_destroy(&ht->cond);
		pthread_mutex_destroy(&ht->lock);
		free(ht);
		return sy__fail(-EAGAIN, "cannot start the health thread: %s",
				sy_strerror(rc));
	}
	pthread_setname_np(ht->thread, "sy-health");
	eng->health = ht;
	return 0;
}

/* ---- attach, detach, shutdown ---- */

static int check_opts(const struct sy__server *srv,
		      const struct sy_health_opts *o)
{
	if (!o || !o->probe)
		return sy__fail(-EINVAL, "server \"%s\": health options without a probe",
				srv->name);
	return 0;
}

int sy__health_attach(struct sy_engine *eng, struct sy__server *srv,
		      const struct sy_health_opts *o)
{
	struct sy__health_thread *ht;
	struct sy__health *e;
	int rc;

	if ((rc = check_opts(srv, o)) != 0)
		return rc;
	e = calloc(1, sizeof(*e));
	if (!e)
		return sy__fail(-ENOMEM, "no memory for a health probe");
	if (!eng->health && (rc = thread_start(eng)) != 0) {
		free(e);
		return rc;
	}
	e->srv = srv;
	e->probe = o->probe;
	e->ctx = o->ctx;
	e->interval_ns = o->interval_ns ? o->interval_ns : DEFAULT_INTERVAL_NS;
	e->healthy_threshold = o->healthy_threshold ? o->healthy_threshold :
			       DEFAULT_HEALTHY;
	e->unhealthy_threshold = o->unhealthy_threshold ?
				 o->unhealthy_threshold : DEFAULT_UNHEALTHY;
	e->due_ns = sy__now(eng);
	ht = eng->health;
	pthread_mutex_lock(&ht->lock);
	e->next = ht->list;
	ht->list = e;
	srv->health = e;
	pthread_cond_broadcast(&ht->cond);
	pthread_mutex_unlock(&ht->lock);
	return 0;
}

/* Take @p e off the list. Under ht->lock. */
static void unlink_probe(struct sy__health_thread *ht, struct sy__health *e)
{
	for (struct sy__health **p = &ht->list; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			return;
		}
	}
}

void sy__health_detach(struct sy_engine *eng, struct sy__server *srv)
{
	struct sy__health_thread *ht = eng->health;
	struct sy__health *e = srv->health;

	if (!e)
		return;
	pthread_mutex_lock(&ht->lock);
	unlink_probe(ht, e);
	/* Off the list, it cannot start again; wait if it runs now. */
	while (ht->running == e)
		pthread_cond_wait(&ht->cond, &ht->lock);
	pthread_mutex_unlock(&ht->lock);
	srv->health = NULL;
	free(e);
}

void sy__health_shutdown(struct sy_engine *eng)
{
	struct sy__health_thread *ht = eng->health;

	if (!ht)
		return;
	pthread_mutex_lock(&ht->lock);
	ht->stop = true;
	pthread_cond_broadcast(&ht->cond);
	pthread_mutex_unlock(&ht->lock);
	pthread_join(ht->thread, NULL);
	/* Servers not detached yet still exist: detach them here. */
	while (ht->list) {
		struct sy__health *e = ht->list;

		ht->list = e->next;
		e->srv->health = NULL;
		free(e);
	}
	pthread_cond_destroy(&ht->cond);
	pthread_mutex_destroy(&ht->lock);
	free(ht);
	eng->health = NULL;
}

uint64_t sy__health_runs(struct sy_engine *eng)
{
	struct sy__health_thread *ht = eng->health;
	uint64_t runs = 0;

	if (ht) {
		pthread_mutex_lock(&ht->lock);
		runs = ht->runs;
		pthread_mutex_unlock(&ht->lock);
	}
	return runs;
}

SY_API int sy_server_is_healthy(sy_engine *eng, uint32_t server)
{
	struct sy__server *srv;
	int rc;

	SY__NONNULL(eng);
	pthread_mutex_lock(&eng->servers_lock);
	srv = server < eng->cfg.max_servers ? eng->servers[server] : NULL;
	if (srv)
		rc = !(atomic_load_explicit(&srv->gate, memory_order_relaxed) &
		       SY_GATE_UNHEALTHY);
	else
		rc = sy__fail(-ENOENT, "no server with id %u", server);
	pthread_mutex_unlock(&eng->servers_lock);
	return sy__ret(__func__, rc);
}

SY_API int sy_server_healthy(sy_engine *eng, uint32_t server, bool *healthy)
{
	int rc;

	SY__NONNULL(healthy);
	rc = sy_server_is_healthy(eng, server);
	if (rc < 0)
		return rc; /* recorded under the new name */
	*healthy = rc == 1;
	return 0;
}
