/*
 * Health probe tests.
 *
 * The engine runs on a fake clock that only the test moves, so a probe runs
 * exactly when the test makes it due: the first when it is attached, the
 * next one interval later. A step moves the clock by one interval and waits
 * (bounded) until the health thread has applied one more result. Probes
 * report what they see through atomics; the test thread asserts.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/engine.h"
#include "core/health.h"
#include "core/route.h"
#include "core/slot.h"
#include "tests/fixture.h"

#define INTERVAL_NS 1000000u

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

struct rig {
	struct t_clock clock;
	sy_engine *eng;
};

/* An engine on the fake clock, or on the real one (@p real). */
static void rig_init(struct rig *r, unsigned workers, bool real)
{
	atomic_init(&r->clock.ns, 1000);
	r->eng = t_engine_at(workers, real ? NULL : &r->clock, 1000);
}

static void rig_fini(struct rig *r)
{
	sy__health_shutdown(r->eng);
	sy_engine_destroy(r->eng);
}

/* What a probe sees; its result is the test's to flip. */
struct probe {
	_Atomic int result;
	_Atomic uint64_t runs;
	_Atomic int on_worker;      /* runs that found a worker's TLS */
	_Atomic int other_thread;   /* runs on another thread than the first */
	_Atomic uint32_t server;    /* the id it was called with */
	_Atomic pthread_t thread;
	_Atomic bool have_thread;
};

static int probe_fn(sy_engine *eng, uint32_t server, void *ctx)
{
	struct probe *p = ctx;
	pthread_t self = pthread_self();
	bool had = false;

	(void)eng;
	if (sy__worker_self())
		atomic_fetch_add(&p->on_worker, 1);
	if (!atomic_compare_exchange_strong(&p->have_thread, &had, true))
		atomic_fetch_add(&p->other_thread,
				 !pthread_equal(atomic_load(&p->thread), self));
	else
		atomic_store(&p->thread, self);
	atomic_store(&p->server, server);
	atomic_fetch_add(&p->runs, 1);
	return atomic_load(&p->result);
}

/* Attach @p p to server @p id, as sy_server_add() does with opts.health. */
static int attach(struct rig *r, uint32_t id, sy_health_fn fn, void *ctx,
		  unsigned up, unsigned down, uint64_t interval_ns)
{
	struct sy_health_opts o = {
		.probe = fn, .ctx = ctx, .interval_ns = interval_ns,
		.healthy_threshold = up, .unhealthy_threshold = down,
	};
	int rc;

	pthread_mutex_lock(&r->eng->lock);
	rc = sy__health_attach(r->eng, r->eng->servers[id], &o);
	pthread_mutex_unlock(&r->eng->lock);
	return rc;
}

static void detach(struct rig *r, uint32_t id)
{
	pthread_mutex_lock(&r->eng->lock);
	sy__health_detach(r->eng, r->eng->servers[id]);
	pthread_mutex_unlock(&r->eng->lock);
}

/* Wait until the health thread has applied @p want results in all. */
static bool wait_runs(struct rig *r, uint64_t want)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;

	while (sy__health_runs(r->eng) < want) {
		if (t_now_ms() > end)
			return false;
		sched_yield();
	}
	return true;
}

/* One interval later: the one probe due then has run and counted. */
static void step(struct rig *r)
{
	uint64_t want = sy__health_runs(r->eng) + 1;

	atomic_fetch_add(&r->clock.ns, INTERVAL_NS);
	cr_assert(wait_runs(r, want), "no probe ran after a step");
}

static bool healthy(struct rig *r, uint32_t id)
{
	bool h = false;

	cr_assert_eq(sy_server_healthy(r->eng, id, &h), 0);
	return h;
}

/* Move the clock by @p ns: the health thread applies its @p runs-th result
 * in all, after which server @p id is healthy or not (@p up). */
static void probe_after(struct rig *r, uint32_t id, uint64_t ns, uint64_t runs,
			bool up)
{
	atomic_fetch_add(&r->clock.ns, ns);
	cr_assert(wait_runs(r, runs), "result %llu never applied",
		  (unsigned long long)runs);
	cr_assert_eq(healthy(r, id), up, "after result %llu", (unsigned long long)runs);
}

/* ------------------------------------------------------------------ */
/* Thresholds and routing                                             */
/* ------------------------------------------------------------------ */

Test(reliability_health, probe_marks_a_server_down_and_up_and_sends_skip_it)
{
	struct probe p = { 0 };
	struct sy_health_opts ho = {
		.probe = probe_fn, .ctx = &p, .interval_ns = INTERVAL_NS,
		.healthy_threshold = 2, .unhealthy_threshold = 3,
	};
	struct sy_server_opts so = { .worker = 0, .worker_set = true, .health = &ho };
	struct t_server a = { 0 }, b = { 0 };
	uint32_t ids[2], route;
	struct rig r;

	rig_init(&r, 2, false);
	cr_assert_eq(sy_server_add(r.eng, "a", t_server_handler, &a, &so, &ids[0]), 0);
	ids[1] = t_add_counter(r.eng, "b", &b, 1);
	route = t_add_route(r.eng, "pair", (struct sy_route_opts){ 0 }, ids, 2);
	cr_assert_eq(sy_engine_start(r.eng), 0);
	cr_assert(wait_runs(&r, 1), "the first probe runs when attached");
	cr_assert_eq(atomic_load(&p.server), ids[0]);
	cr_assert(healthy(&r, ids[0]));

	atomic_store(&p.result, -EIO);
	step(&r);
	step(&r);
	cr_assert(healthy(&r, ids[0]), "two failures of three");
	step(&r);
	cr_assert_not(healthy(&r, ids[0]));
	cr_assert(atomic_load(&r.eng->servers[ids[0]]->gate) & SY_GATE_UNHEALTHY);

	t_send_tags(r.eng, route, 0, 100);
	cr_assert(t_wait_u64(&b.handled, 100, T_WAIT_MS));
	cr_assert_eq(atomic_load(&a.handled), 0, "a server marked down gets nothing");

	atomic_store(&p.result, 0);
	step(&r);
	cr_assert_not(healthy(&r, ids[0]), "one pass of two");
	step(&r);
	cr_assert(healthy(&r, ids[0]));
	t_send_tags(r.eng, route, 0, 100);
	cr_assert(t_wait_u64(&a.handled, 1, T_WAIT_MS), "a takes messages again");

	cr_assert_eq(atomic_load(&p.runs), 6);
	cr_assert_eq(atomic_load(&p.on_worker), 0);
	cr_assert_eq(atomic_load(&p.other_thread), 0);
	cr_assert_eq(sy_server_remove(r.eng, ids[0]), 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	rig_fini(&r);
}

Test(reliability_health, probe_runs_on_its_own_thread_never_on_a_worker)
{
	struct t_server c[2] = { 0 };
	struct probe p[2] = { 0 };
	uint32_t ids[2], routes[2];
	struct rig r;

	rig_init(&r, 2, false);
	for (int i = 0; i < 2; i++) {
		char name[8] = { 's', (char)('0' + i), 0 };

		routes[i] = t_direct(r.eng, name, t_server_handler, &c[i], i, &ids[i]);
	}
	cr_assert_eq(sy_engine_start(r.eng), 0);
	for (int i = 0; i < 2; i++) {
		t_send_tags(r.eng, routes[i], 0, 1);
		cr_assert(t_wait_u64(&c[i].handled, 1, T_WAIT_MS));
		cr_assert_eq(attach(&r, ids[i], probe_fn, &p[i], 1, 1, INTERVAL_NS), 0);
	}
	cr_assert(wait_runs(&r, 2));
	for (int i = 0; i < 5; i++)
		step(&r), step(&r);
	for (int i = 0; i < 2; i++) {
		pthread_t t = atomic_load(&p[i].thread);

		cr_assert_geq(atomic_load(&p[i].runs), 5);
		cr_assert_eq(atomic_load(&p[i].on_worker), 0);
		cr_assert_eq(atomic_load(&p[i].other_thread), 0);
		cr_assert(pthread_equal(t, atomic_load(&p[0].thread)),
			  "one thread for every probe");
		cr_assert_not(pthread_equal(t, atomic_load(&c[0].thread)));
		cr_assert_not(pthread_equal(t, atomic_load(&c[1].thread)));
		cr_assert_not(pthread_equal(t, pthread_self()));
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (int i = 0; i < 2; i++)
		detach(&r, ids[i]);
	rig_fini(&r);
}

Test(reliability_health, probe_defaults_and_bad_options)
{
	struct t_server c = { 0 };
	struct probe p = { 0 };
	struct sy_health_opts none = { 0 };
	uint32_t id;
	bool h = false;
	struct rig r;

	rig_init(&r, 1, false);
	id = t_add_counter(r.eng, "s", &c, 0);
	pthread_mutex_lock(&r.eng->lock);
	cr_assert_eq(sy__health_attach(r.eng, r.eng->servers[id], &none), -EINVAL);
	pthread_mutex_unlock(&r.eng->lock);
	cr_assert_str_neq(sy_last_error(), "");
	cr_assert_null(r.eng->health, "no thread for a refused probe");
	cr_assert_eq(sy_server_healthy(r.eng, id, &h), 0);
	cr_assert(h, "healthy without a probe");
	cr_assert_eq(sy_server_healthy(r.eng, 999, &h), -ENOENT);

	/* Defaults: a probe a second, down after 3 failures, up after 2. */
	atomic_store(&p.result, -EIO);
	cr_assert_eq(attach(&r, id, probe_fn, &p, 0, 0, 0), 0);
	cr_assert(wait_runs(&r, 1));
	atomic_fetch_add(&r.clock.ns, 999999999);
	t_sleep_us(30000);
	cr_assert_eq(sy__health_runs(r.eng), 1, "not due before a second");
	probe_after(&r, id, 1, 2, true);
	probe_after(&r, id, 1000000000, 3, false);
	atomic_store(&p.result, 0);
	probe_after(&r, id, 1000000000, 4, false);
	probe_after(&r, id, 1000000000, 5, true);
	detach(&r, id);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Removal                                                            */
/* ------------------------------------------------------------------ */

/* A probe that holds on until the test lets it go (bounded). */
struct gate_probe {
	_Atomic int inside;
	_Atomic int release;
	_Atomic uint64_t runs;
};

static int held_probe(sy_engine *eng, uint32_t server, void *ctx)
{
	struct gate_probe *g = ctx;
	uint64_t end = t_now_ms() + T_WAIT_MS;

	(void)eng;
	(void)server;
	atomic_store(&g->inside, 1);
	while (!atomic_load(&g->release) && t_now_ms() < end)
		sched_yield();
	atomic_fetch_add(&g->runs, 1);
	atomic_store(&g->inside, 0);
	return 0;
}

struct detacher {
	struct rig *rig;
	uint32_t id;
	_Atomic int done;
};

static void *detach_thread(void *arg)
{
	struct detacher *d = arg;

	detach(d->rig, d->id);
	atomic_store(&d->done, 1);
	return NULL;
}

Test(reliability_health, detach_waits_for_the_running_probe_and_stops_it_for_good)
{
	struct gate_probe g = { 0 };
	struct t_server c = { 0 };
	struct detacher d = { 0 };
	uint64_t end = t_now_ms() + T_WAIT_MS;
	pthread_t t;
	struct rig r;

	rig_init(&r, 1, false);
	d.id = t_add_counter(r.eng, "s", &c, 0);
	d.rig = &r;
	cr_assert_eq(attach(&r, d.id, held_probe, &g, 1, 1, INTERVAL_NS), 0);
	while (!atomic_load(&g.inside) && t_now_ms() < end)
		sched_yield();
	cr_assert(atomic_load(&g.inside), "the first probe started");

	cr_assert_eq(pthread_create(&t, NULL, detach_thread, &d), 0);
	t_sleep_us(20000);
	cr_assert_not(atomic_load(&d.done), "detach returned while its probe ran");
	atomic_store(&g.release, 1);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&g.inside), 0);
	cr_assert_eq(atomic_load(&g.runs), 1);
	cr_assert_null(r.eng->servers[d.id]->health);

	/* Due many times over: it never runs again. */
	atomic_fetch_add(&r.clock.ns, 100ull * INTERVAL_NS);
	t_sleep_us(50000);
	cr_assert_eq(atomic_load(&g.runs), 1);
	rig_fini(&r);
}

/* A probe that checks it is not called for a server already detached. */
struct watched {
	_Atomic int detached;
	_Atomic uint64_t runs;
	_Atomic uint64_t late;      /* runs after detach returned */
};

static int watched_probe(sy_engine *eng, uint32_t server, void *ctx)
{
	struct watched *w = ctx;

	(void)eng;
	(void)server;
	if (atomic_load(&w->detached))
		atomic_fetch_add(&w->late, 1);
	atomic_fetch_add(&w->runs, 1);
	return atomic_load(&w->runs) % 2 ? -EIO : 0;
}

Test(reliability_health, removal_while_probes_run_back_to_back_stops_them)
{
	enum { SERVERS = 6, ROUNDS = 20 };
	struct sy_health_opts ho = {
		.probe = watched_probe, .interval_ns = 1000, /* back to back */
		.healthy_threshold = 1, .unhealthy_threshold = 1,
	};
	struct sy_server_opts so = { .worker = -1, .health = &ho };
	struct watched w[SERVERS];
	struct t_server c = { 0 };
	uint32_t ids[SERVERS];
	struct rig r;

	rig_init(&r, 1, true);
	cr_assert_eq(sy_engine_start(r.eng), 0);
	for (unsigned round = 0; round < ROUNDS; round++) {
		memset(w, 0, sizeof(w));
		for (unsigned i = 0; i < SERVERS; i++) {
			char name[16];

			snprintf(name, sizeof(name), "s%u", i);
			ho.ctx = &w[i];
			cr_assert_eq(sy_server_add(r.eng, name, t_server_handler,
						   &c, &so, &ids[i]), 0);
		}
		for (unsigned i = 0; i < SERVERS; i++) {
			cr_assert(t_wait_u64(&w[i].runs, 2, T_WAIT_MS));
			cr_assert_eq(sy_server_remove(r.eng, ids[i]), 0);
			atomic_store(&w[i].detached, 1);
		}
		t_sleep_us(1000);
		for (unsigned i = 0; i < SERVERS; i++)
			cr_assert_eq(atomic_load(&w[i].late), 0,
				     "round %u: server %u probed after removal",
				     round, i);
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	rig_fini(&r);
}

Test(reliability_health, shutdown_detaches_servers_left_attached)
{
	struct t_server c = { 0 };
	struct probe p = { 0 };
	uint32_t id;
	struct rig r;

	rig_init(&r, 1, false);
	id = t_add_counter(r.eng, "s", &c, 0);
	cr_assert_eq(attach(&r, id, probe_fn, &p, 1, 1, INTERVAL_NS), 0);
	cr_assert(wait_runs(&r, 1));
	sy__health_shutdown(r.eng);
	cr_assert_null(r.eng->health);
	cr_assert_null(r.eng->servers[id]->health);
	detach(&r, id); /* nothing left to do */
	rig_fini(&r);
}
