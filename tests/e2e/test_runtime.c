/*
 * End-to-end tests of run-time changes: routes replaced and servers removed
 * under live traffic, stopping with messages in flight, names, bad route
 * options, and configuration from the environment.
 *
 * Live traffic comes from a feeder thread that sends unique ids until told to
 * stop. It records which ids were accepted; the servers mark which ids they
 * handled. Nothing lost or duplicated means the two sets are equal and no
 * id was handled twice. Handlers never call Criterion's assertions.
 *
 * Criterion runs each test in its own process, so environment variables set
 * here cannot leak into other tests.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* Most ids a feeder sends; far more than any test needs. */
#define FEED_MAX (1u << 22)

static uint32_t route_new(sy_engine *eng, const char *name, const char *policy,
			  const uint32_t *servers, unsigned n)
{
	return t_add_route(eng, name, (struct sy_route_opts){ .policy = policy },
			   servers, n);
}

/* An engine of two workers, servers a and b (on workers 0 and 1) that
 * mark the ids they handle in one ledger, and a round_robin route over
 * them. */
struct pair {
	sy_engine *eng;
	struct t_ledger ledger;
	struct t_ledger_server a, b;
	uint32_t servers[2];
	uint32_t route;
};

/* Set up @p p, each server spinning @p spin rounds per message, and start
 * the engine. */
static void pair_start(struct pair *p, unsigned spin)
{
	p->eng = t_engine(2, SY_IDLE_SLEEP);
	cr_assert_not_null(p->eng);
	t_ledger_init(&p->ledger, FEED_MAX);
	p->a = (struct t_ledger_server){ .ledger = &p->ledger, .spin = spin };
	p->b = (struct t_ledger_server){ .ledger = &p->ledger, .spin = spin };
	p->servers[0] = t_add_server(p->eng, "a", t_ledger_handler, &p->a, 0);
	p->servers[1] = t_add_server(p->eng, "b", t_ledger_handler, &p->b, 1);
	p->route = route_new(p->eng, "r", "round_robin", p->servers, 2);
	cr_assert_eq(sy_engine_start(p->eng), 0);
}

static void pair_destroy(struct pair *p)
{
	sy_engine_destroy(p->eng);
	t_ledger_fini(&p->ledger);
}

/* ------------------------------------------------------------------ */
/* The feeder thread                                                  */
/* ------------------------------------------------------------------ */

struct feeder {
	pthread_t thread;
	sy_engine *eng;
	uint32_t route;
	bool until_shutdown;     /* keep going until a send fails -ESHUTDOWN */
	_Atomic uint64_t sent;   /* accepted sends */
	_Atomic uint64_t stop;
	_Atomic uint64_t done;
	/* With a budget, the feeder sends no more than this many before the
	 * test raises it, so it cannot run out of ids before the test's
	 * changes are done however the threads are scheduled. 0: none. */
	_Atomic uint64_t budget;
	uint8_t *accepted;       /* [FEED_MAX], feeder-written until joined */
	uint64_t ids;            /* ids tried */
	uint64_t failed;         /* sends refused; the feeder freed those */
	int last_rc;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	uint64_t id;

	for (id = 0; id < FEED_MAX && !atomic_load(&f->stop); id++) {
		sy_msg *m;
		int rc;

		for (unsigned i = 0; i < T_WAIT_MS / 10 && atomic_load(&f->budget) &&
		     atomic_load(&f->sent) >= atomic_load(&f->budget) &&
		     !atomic_load(&f->stop); i++)
			t_wait_u64(&f->budget, atomic_load(&f->sent) + 1, 10);
		m = t_msg_try(f->eng, id);
		if (!m) {
			f->failed++;
			break;
		}
		rc = t_send_retry(f->eng, f->route, m, T_WAIT_MS);
		f->last_rc = rc;
		if (rc) {
			sy_msg_free(m);
			f->failed++;
			if (f->until_shutdown && rc == -ESHUTDOWN) {
				id++;
				break;
			}
			continue;
		}
		f->accepted[id] = 1;
		atomic_fetch_add(&f->sent, 1);
	}
	f->ids = id;
	atomic_store(&f->done, 1);
	return NULL;
}

static void feeder_start(struct feeder *f, sy_engine *eng, uint32_t route,
			 bool until_shutdown)
{
	memset(f, 0, sizeof(*f));
	f->eng = eng;
	f->route = route;
	f->until_shutdown = until_shutdown;
	f->accepted = calloc(FEED_MAX, 1);
	cr_assert_not_null(f->accepted);
	cr_assert_eq(pthread_create(&f->thread, NULL, feed, f), 0);
}

/* Wait until the feeder had @p want sends accepted, or it finished. */
static bool feeder_wait(struct feeder *f, uint64_t want)
{
	for (unsigned i = 0; i < T_WAIT_MS / 10; i++) {
		if (atomic_load(&f->sent) >= want || atomic_load(&f->done))
			return atomic_load(&f->sent) >= want;
		/* Bounded by the loop count: about 10 ms per round. */
		t_wait_u64(&f->sent, want, 10);
	}
	return false;
}

static void feeder_join(struct feeder *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
}

/* Every accepted id was handled once; no refused id was handled. */
static void expect_exactly_accepted(const struct feeder *f,
				    const struct t_ledger *l)
{
	uint64_t lost = 0, ghosts = 0;

	for (uint64_t id = 0; id < f->ids; id++) {
		bool handled = t_ledger_has(l, id);

		lost += f->accepted[id] && !handled;
		ghosts += !f->accepted[id] && handled;
	}
	cr_expect_eq(lost, 0, "%llu accepted ids never handled",
		     (unsigned long long)lost);
	cr_expect_eq(ghosts, 0, "%llu refused ids handled",
		     (unsigned long long)ghosts);
	cr_expect_eq(atomic_load(&l->wrong), 0, "%llu ids handled twice",
		     (unsigned long long)atomic_load(&l->wrong));
	cr_expect_eq(atomic_load(&l->got), atomic_load(&f->sent));
}

/* ------------------------------------------------------------------ */
/* Changes under live traffic                                         */
/* ------------------------------------------------------------------ */

#define REPLACES 200u

Test(core_registry, route_replaced_under_traffic_loses_and_duplicates_nothing)
{
	struct t_ledger ledger;
	struct t_ledger_server a = { .ledger = &ledger }, b = { .ledger = &ledger };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = 1 };
	uint32_t sa, sb, route;
	unsigned replaced = 0;
	struct feeder f;
	struct sy_stats st;

	cr_assert_not_null(eng);
	t_ledger_init(&ledger, FEED_MAX);
	sa = t_add_server(eng, "a", t_ledger_handler, &a, 0);
	sb = t_add_server(eng, "b", t_ledger_handler, &b, 1);
	route = route_new(eng, "r", "round_robin", &sa, 1);
	cr_assert_eq(sy_engine_start(eng), 0);

	feeder_start(&f, eng, route, false);
	for (unsigned i = 0; i < REPLACES; i++) {
		uint64_t sent = atomic_load(&f.sent);

		/* Let traffic flow through every version of the route, and
		 * on while it is replaced, but not so far ahead that the
		 * feeder runs out of ids first. */
		atomic_store(&f.budget, sent + 64);
		if (!feeder_wait(&f, sent + 16))
			break;
		ro.servers = i % 2 == 0 ? &sb : &sa;
		if (sy_route_replace(eng, route, &ro) != 0)
			break;
		replaced++;
	}
	atomic_store(&f.budget, 0);
	feeder_join(&f);
	cr_assert_eq(replaced, REPLACES, "replaced %u times of %u: %s",
		     replaced, REPLACES, sy_last_error());
	cr_assert_eq(f.failed, 0, "%llu sends failed, last %d",
		     (unsigned long long)f.failed, f.last_rc);
	cr_assert(t_wait_u64(&ledger.got, atomic_load(&f.sent), T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	expect_exactly_accepted(&f, &ledger);
	cr_expect_gt(atomic_load(&a.got), 0);
	cr_expect_gt(atomic_load(&b.got), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, atomic_load(&f.sent));
	cr_expect_eq(st.delivered, atomic_load(&f.sent));
	free(f.accepted);
	t_ledger_fini(&ledger);
	sy_engine_destroy(eng);
}

Test(core_registry, server_removed_under_traffic_loses_and_duplicates_nothing)
{
	struct pair p;
	uint64_t b_at_removal;
	struct feeder f;
	struct sy_stats st;
	int rc;

	pair_start(&p, 0);

	feeder_start(&f, p.eng, p.route, false);
	feeder_wait(&f, 5000);
	rc = sy_server_remove(p.eng, p.servers[1]);
	b_at_removal = atomic_load(&p.b.got);
	feeder_wait(&f, atomic_load(&f.sent) + 5000);
	feeder_join(&f);
	cr_assert_eq(rc, 0, "sy_server_remove: %d", rc);
	cr_assert_geq(atomic_load(&f.sent), 10000, "feeder stalled");
	cr_assert(t_wait_u64(&p.ledger.got, atomic_load(&f.sent), T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(p.eng), 0);

	expect_exactly_accepted(&f, &p.ledger);
	cr_expect_gt(b_at_removal, 0);
	cr_expect_eq(atomic_load(&p.b.got), b_at_removal,
		     "removed server handled %llu more messages",
		     (unsigned long long)(atomic_load(&p.b.got) - b_at_removal));
	cr_expect_eq(sy_server_remove(p.eng, p.servers[1]), -ENOENT);
	sy_engine_stats(p.eng, &st);
	cr_expect_eq(st.accepted, atomic_load(&f.sent));
	cr_expect_eq(st.delivered, atomic_load(&f.sent));
	free(f.accepted);
	pair_destroy(&p);
}

/* ------------------------------------------------------------------ */
/* Stop                                                               */
/* ------------------------------------------------------------------ */

#define STOP_SENDS 100000u

/* After a stop: allocation and every send are refused with -ESHUTDOWN, and
 * messages allocated before it stay their caller's. */
static void expect_shutdown_refusals(sy_engine *eng, uint32_t route,
				     sy_msg *m, sy_msg *burst[2])
{
	struct sy_stats before, after;

	sy_engine_stats(eng, &before);
	cr_expect_null(sy_msg_alloc(eng, sizeof(uint64_t)));
	cr_expect_eq(sy_last_error_code(), -ESHUTDOWN);
	cr_expect_str_eq(sy_last_error(), "sy_msg_alloc: the engine is stopped");
	cr_expect_eq(sy_msg_send(eng, route, m), -ESHUTDOWN);
	cr_expect_eq(sy_msg_request(eng, route, m), -ESHUTDOWN);
	cr_expect_eq(sy_msg_send_burst(eng, route, burst, 2), -ESHUTDOWN);
	sy_engine_stats(eng, &after);
	cr_expect_eq(after.rejected_shutdown - before.rejected_shutdown, 4);
	cr_expect_eq(after.accepted, before.accepted);
	sy_msg_free(m);
	sy_msg_free(burst[0]);
	sy_msg_free(burst[1]);
}

Test(core_engine, stop_right_after_sending_delivers_every_accepted_message)
{
	struct pair p;
	uint64_t ok = 0;
	struct sy_stats st;
	sy_msg *late, *late_burst[2];

	pair_start(&p, 200);
	late = t_msg(p.eng, 0);
	late_burst[0] = t_msg(p.eng, 1);
	late_burst[1] = t_msg(p.eng, 2);

	for (uint64_t id = 0; id < STOP_SENDS; id++) {
		sy_msg *m = t_msg(p.eng, id);

		if (t_send_retry(p.eng, p.route, m, T_WAIT_MS) == 0)
			ok++;
		else
			sy_msg_free(m);
	}
	cr_assert_eq(sy_engine_stop(p.eng), 0);

	cr_expect_gt(ok, 0);
	sy_engine_stats(p.eng, &st);
	cr_expect_eq(st.accepted, ok, "accepted %llu, sends that returned 0 %llu",
		     (unsigned long long)st.accepted, (unsigned long long)ok);
	cr_expect_eq(st.delivered, ok, "delivered %llu of %llu",
		     (unsigned long long)st.delivered, (unsigned long long)ok);
	cr_expect_eq(st.in_flight, 0);
	cr_expect_eq(atomic_load(&p.ledger.got), ok);
	cr_expect_eq(atomic_load(&p.ledger.wrong), 0);

	expect_shutdown_refusals(p.eng, p.route, late, late_burst);
	cr_expect_eq(sy_engine_stop(p.eng), -EALREADY);
	pair_destroy(&p);
}

Test(core_engine, stop_racing_a_sender_delivers_every_accepted_message)
{
	struct pair p;
	struct feeder f;
	struct sy_stats st;

	pair_start(&p, 200);

	/* The feeder runs until its sends fail with -ESHUTDOWN. */
	feeder_start(&f, p.eng, p.route, true);
	feeder_wait(&f, 10000);
	cr_assert_eq(sy_engine_stop(p.eng), 0);
	cr_assert(t_wait_u64(&f.done, 1, T_WAIT_MS), "feeder never saw the stop");
	pthread_join(f.thread, NULL);

	cr_expect_eq(f.last_rc, -ESHUTDOWN);
	sy_engine_stats(p.eng, &st);
	cr_expect_eq(st.accepted, atomic_load(&f.sent));
	cr_expect_eq(st.delivered, atomic_load(&f.sent));
	cr_expect_eq(st.in_flight, 0);
	expect_exactly_accepted(&f, &p.ledger);
	free(f.accepted);
	pair_destroy(&p);
}

/* ------------------------------------------------------------------ */
/* Names                                                              */
/* ------------------------------------------------------------------ */

static int idle_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

static sy_engine *engine_with_servers(uint32_t *servers, unsigned n)
{
	static const char *const names[] = { "s0", "s1", "s2" };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	cr_assert_leq(n, 3);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(sy_server_add(eng, names[i], idle_handler, NULL,
					   NULL, &servers[i]), 0);
	return eng;
}

Test(core_registry, route_is_found_by_name)
{
	uint32_t servers[2], alpha, beta, found = UINT32_MAX;
	sy_engine *eng = engine_with_servers(servers, 2);
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };

	alpha = route_new(eng, "alpha", "direct", &servers[0], 1);
	beta = route_new(eng, "beta", "round_robin", servers, 2);
	cr_assert_neq(alpha, beta);
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_assert_eq(sy_route_find(eng, "alpha", &found), 0);
	cr_expect_eq(found, alpha);
	cr_assert_eq(sy_route_find(eng, "beta", &found), 0);
	cr_expect_eq(found, beta);
	cr_expect_eq(sy_route_find(eng, "gamma", &found), -ENOENT);
	cr_expect_eq(sy_route_find(eng, "alph", &found), -ENOENT);

	/* A replaced route keeps its name and id. */
	ro.servers = &servers[1];
	cr_assert_eq(sy_route_replace(eng, alpha, &ro), 0);
	cr_assert_eq(sy_route_find(eng, "alpha", &found), 0);
	cr_expect_eq(found, alpha);

	cr_assert_eq(sy_route_remove(eng, beta), 0);
	cr_expect_eq(sy_route_find(eng, "beta", &found), -ENOENT);
	cr_assert_eq(sy_route_find(eng, "alpha", &found), 0);
	cr_expect_eq(found, alpha);
	sy_engine_destroy(eng);
}

/*
 * A route replaced by one of another kind sends by the new one from the
 * next send on: a direct route (the common send's) by two servers in turn,
 * then by a direct route to the other server; removed, it refuses. Single
 * sends and bursts both.
 */
Test(core_registry, a_replaced_route_sends_by_its_new_kind)
{
	struct t_server a = { 0 }, b = { 0 };
	sy_engine *eng = t_engine_at(2, NULL, 0);
	uint32_t ids[2], route;
	struct sy_route_opts rr = { .policy = "round_robin", .servers = ids,
				    .n_servers = 2 };
	struct sy_route_opts to_b = { .policy = "direct", .servers = &ids[1],
				      .n_servers = 1 };
	sy_msg *m;

	ids[0] = t_add_counter(eng, "a", &a, 0);
	ids[1] = t_add_counter(eng, "b", &b, 1);
	route = t_add_route(eng, "changes", (struct sy_route_opts){ 0 }, ids, 1);
	cr_assert_eq(sy_engine_start(eng), 0);

	t_send_tags(eng, route, 0, 4);
	cr_assert(t_wait_u64(&a.handled, 4, T_WAIT_MS));
	cr_expect_eq(atomic_load(&b.handled), 0);

	cr_assert_eq(sy_route_replace(eng, route, &rr), 0);
	t_send_tags(eng, route, 4, 4);
	cr_assert(t_wait_u64(&a.handled, 6, T_WAIT_MS) &&
		  t_wait_u64(&b.handled, 2, T_WAIT_MS),
		  "round robin: a %llu, b %llu",
		  (unsigned long long)atomic_load(&a.handled),
		  (unsigned long long)atomic_load(&b.handled));

	cr_assert_eq(sy_route_replace(eng, route, &to_b), 0);
	t_send_tags(eng, route, 8, 4);
	cr_assert(t_wait_u64(&b.handled, 6, T_WAIT_MS));
	cr_expect_eq(atomic_load(&a.handled), 6, "the direct route to b only");

	cr_assert_eq(sy_route_remove(eng, route), 0);
	m = t_msg(eng, 12);
	cr_expect_eq(sy_msg_send(eng, route, m), -ENOENT);
	cr_expect_eq(sy_msg_send_burst(eng, route, &m, 1), -ENOENT);
	sy_msg_free(m);
	cr_assert_eq(sy_engine_stop(eng), 0);
	t_expect_each_once(&a, 0, 4);
	t_expect_each_once(&b, 8, 4);
	sy_engine_destroy(eng);
}

Test(core_registry, server_is_found_by_name)
{
	uint32_t servers[3], found = UINT32_MAX;
	sy_engine *eng = engine_with_servers(servers, 3);

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_server_find(eng, "s0", &found), 0);
	cr_expect_eq(found, servers[0]);
	cr_assert_eq(sy_server_find(eng, "s2", &found), 0);
	cr_expect_eq(found, servers[2]);
	cr_expect_eq(sy_server_find(eng, "s3", &found), -ENOENT);

	cr_assert_eq(sy_server_remove(eng, servers[1]), 0);
	cr_expect_eq(sy_server_find(eng, "s1", &found), -ENOENT);
	cr_assert_eq(sy_server_find(eng, "s0", &found), 0);
	cr_expect_eq(found, servers[0]);
	sy_engine_destroy(eng);
}

Test(core_registry, duplicate_names_are_eexist_until_freed)
{
	uint32_t servers[2], route, id = UINT32_MAX;
	sy_engine *eng = engine_with_servers(servers, 2);
	struct sy_route_opts ro = {
		.policy = "direct", .servers = &servers[0], .n_servers = 1,
	};

	route = route_new(eng, "r", "direct", &servers[0], 1);
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_expect_eq(sy_server_add(eng, "s0", idle_handler, NULL, NULL, &id),
		     -EEXIST);
	cr_expect_eq(sy_route_add(eng, "r", &ro, &id), -EEXIST);
	cr_expect_neq(sy_last_error()[0], '\0');

	/* A removed name can be taken again. */
	cr_assert_eq(sy_route_remove(eng, route), 0);
	cr_expect_eq(sy_route_add(eng, "r", &ro, &id), 0);
	cr_assert_eq(sy_server_remove(eng, servers[1]), 0);
	cr_expect_eq(sy_server_add(eng, "s1", idle_handler, NULL, NULL, &id), 0);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Bad route options                                                  */
/* ------------------------------------------------------------------ */

/*
 * Adding a route, then replacing a working one, with @p policy over the
 * servers at @p picks (indices into two servers; NULL: no list) must fail
 * -EINVAL and explain why; the replaced route must keep working as before.
 */
static void expect_route_rejected(const char *policy, const unsigned *picks,
				  unsigned n)
{
	struct t_ledger ledger;
	struct t_ledger_server s = { .ledger = &ledger };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint32_t servers[2], listed[4], route, id = UINT32_MAX;
	struct sy_route_opts ro = { .policy = policy, .n_servers = n };

	cr_assert_not_null(eng);
	cr_assert_leq(n, 4);
	t_ledger_init(&ledger, FEED_MAX);
	servers[0] = t_add_server(eng, "s0", t_ledger_handler, &s, 0);
	cr_assert_eq(sy_server_add(eng, "s1", idle_handler, NULL, NULL,
				   &servers[1]), 0);
	for (unsigned i = 0; picks && i < n; i++)
		listed[i] = servers[picks[i]];
	ro.servers = picks ? listed : NULL;
	route = route_new(eng, "good", "direct", &servers[0], 1);
	cr_assert_eq(sy_engine_start(eng), 0);

	cr_assert_eq(sy_last_error()[0], '\0', "an error before the test");
	cr_expect_eq(sy_route_add(eng, "bad", &ro, &id), -EINVAL);
	cr_expect_neq(sy_last_error()[0], '\0', "no message after -EINVAL");
	cr_expect_eq(sy_route_find(eng, "bad", &id), -ENOENT);
	cr_expect_eq(sy_route_replace(eng, route, &ro), -EINVAL);
	cr_expect_neq(sy_last_error()[0], '\0');

	cr_assert_eq(t_send_retry(eng, route, t_msg(eng, 1), T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&s.got, 1, T_WAIT_MS), "old route broken");
	sy_engine_destroy(eng);
	t_ledger_fini(&ledger);
}

Test(core_registry, route_with_an_unknown_policy_is_einval)
{
	expect_route_rejected("random_walk", (const unsigned[]){ 0 }, 1);
}

Test(core_registry, direct_route_with_two_servers_is_einval)
{
	expect_route_rejected("direct", (const unsigned[]){ 0, 1 }, 2);
}

Test(core_registry, route_with_zero_servers_is_einval)
{
	expect_route_rejected("round_robin", (const unsigned[]){ 0 }, 0);
}

Test(core_registry, route_with_no_server_list_is_einval)
{
	expect_route_rejected("round_robin", NULL, 1);
}

Test(core_registry, route_with_a_duplicate_server_is_einval)
{
	expect_route_rejected("round_robin", (const unsigned[]){ 0, 1, 0 }, 3);
}

/* ------------------------------------------------------------------ */
/* Configuration from the environment                                 */
/* ------------------------------------------------------------------ */

static void clear_sy_env(void)
{
	static const char *const vars[] = {
		"SY_WORKERS", "SY_CPUS", "SY_PIN", "SY_IDLE",
		"SY_DISPLAY_AFFINITY",
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

Test(core_engine, bad_sy_workers_fails_create_and_is_named)
{
	struct sy_config cfg;
	sy_engine *eng = NULL;

	clear_sy_env();
	cr_assert_eq(setenv("SY_WORKERS", "abc", 1), 0);
	sy_config_init(&cfg);
	cr_expect_eq(sy_engine_create(&cfg, &eng), -EINVAL);
	cr_expect(strstr(sy_last_error(), "SY_WORKERS") != NULL,
		  "message '%s' does not name SY_WORKERS", sy_last_error());
	cr_expect_eq(sy_engine_create(NULL, &eng), -EINVAL);
	cr_expect(strstr(sy_last_error(), "SY_WORKERS") != NULL,
		  "message '%s' does not name SY_WORKERS", sy_last_error());
	unsetenv("SY_WORKERS");
}

Test(core_engine, explicit_config_beats_the_environment)
{
	struct sy_config cfg;
	sy_engine *eng = NULL;

	clear_sy_env();
	cr_assert_eq(setenv("SY_WORKERS", "abc", 1), 0);
	cr_assert_eq(setenv("SY_IDLE", "nap", 1), 0);
	sy_config_init(&cfg);
	cfg.workers = 3;
	cfg.idle = SY_IDLE_YIELD;
	cfg.pin = SY_PIN_NONE;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	cr_expect_eq(sy_engine_workers(eng), 3);
	sy_engine_destroy(eng);

	/* A valid variable loses to the field too, and wins when it is unset. */
	cr_assert_eq(setenv("SY_WORKERS", "1", 1), 0);
	unsetenv("SY_IDLE");
	cfg.workers = 2;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	cr_expect_eq(sy_engine_workers(eng), 2);
	sy_engine_destroy(eng);
	cfg.workers = 0;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	cr_expect_eq(sy_engine_workers(eng), 1);
	sy_engine_destroy(eng);
	unsetenv("SY_WORKERS");
}
