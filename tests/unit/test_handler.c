/*
 * What a handler may return and what it may not call.
 *
 * A handler's result counts by its sign only: INT_MAX and every other
 * positive value are successes, INT_MIN and any negative value failures,
 * retried or dead-lettered as the route says, with the accounting exact.
 * The control calls that the header forbids in a handler return -EDEADLK
 * there (the void ones do nothing) and change nothing: the engine, its
 * servers, routes and endpoint work on as before. A refresh from a handler
 * while sy_engine_stop() drains used to wait for the control mutex that
 * stop holds until the handler's worker exits: a deadlock; so did the
 * lookups that any thread may make (sy_server_find(), sy_breaker_state(),
 * sy_breaker_force(), sy_server_healthy()).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define WAIT_MS T_WAIT_MS

/* ---- garbage results ---- */

#define MESSAGES 600

struct garbage {
	_Atomic uint64_t ok_runs, failed_runs;
};

/* The result a message's handler returns: edges first, then a generator's
 * values, half of them negated. */
static int result_for(uint64_t id)
{
	static const int edges[] = {
		INT_MAX, INT_MIN, INT_MIN + 1, 1, -1, 0, -4095, -4096, 4096,
		-EIO, 0x7fff0000, -0x7fff0000, 255, -256,
	};
	uint64_t x = id * 0x9e3779b97f4a7c15ull;

	if (id < sizeof(edges) / sizeof(edges[0]))
		return edges[id];
	x ^= x >> 29;
	return (int)(uint32_t)x;
}

static int garbage_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct garbage *g = ctx;
	int rc = result_for(t_msg_value(msg));

	(void)eng;
	atomic_fetch_add(rc < 0 ? &g->failed_runs : &g->ok_runs, 1);
	return rc;
}

Test(core_handler, garbage_results_count_by_their_sign_and_lose_nothing)
{
	struct sy_route_opts once = { .policy = "direct" };
	struct sy_route_opts thrice = { .policy = "adaptive", .max_attempts = 3,
					.retry_budget = 1000,
					.retry_budget_min = 100000,
					.retry_backoff_ns = 1000,
					.retry_backoff_max_ns = 1000 };
	struct sy_breaker_opts bo = { .consecutive_failures = 1000000 };
	struct sy_server_opts so = { .worker = -1, .breaker = &bo };
	struct garbage g[3] = { 0 };
	uint64_t ok = 0, bad = 0, runs_ok = 0, runs_bad = 0;
	uint32_t ids[3], r_once, r_thrice;
	struct sy_accounting a;
	struct sy_stats st;
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	cr_assert_eq(sy_server_add(eng, "once", garbage_handler, &g[0], NULL,
				   &ids[0]), 0);
	cr_assert_eq(sy_server_add(eng, "a", garbage_handler, &g[1], &so,
				   &ids[1]), 0);
	cr_assert_eq(sy_server_add(eng, "b", garbage_handler, &g[2], &so,
				   &ids[2]), 0);
	r_once = t_add_route(eng, "once", once, ids, 1);
	r_thrice = t_add_route(eng, "thrice", thrice, ids + 1, 2);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t id = 0; id < MESSAGES; id++) {
		bool retried = id % 2;

		cr_assert_eq(t_send_retry(eng, retried ? r_thrice : r_once,
					  t_msg(eng, id), WAIT_MS), 0);
		if (result_for(id) >= 0) {
			ok++;
			runs_ok++;
		} else {
			bad++;
			runs_bad += retried ? 3 : 1;
		}
	}
	/* Every retry has run before the stop, which would dead-letter it. */
	for (uint64_t end = t_now_ms() + WAIT_MS; t_now_ms() < end;) {
		cr_assert_eq(sy_engine_accounting(eng, &a), 0);
		if (a.in_flight == 0)
			break;
		t_sleep_us(1000);
	}
	cr_assert_eq(a.in_flight, 0, "%llu messages still in flight",
		     (unsigned long long)a.in_flight);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_assert_eq(atomic_load(&g[0].ok_runs) + atomic_load(&g[1].ok_runs) +
		     atomic_load(&g[2].ok_runs), runs_ok);
	cr_assert_eq(atomic_load(&g[0].failed_runs) +
		     atomic_load(&g[1].failed_runs) +
		     atomic_load(&g[2].failed_runs), runs_bad,
		     "failed runs %llu + %llu + %llu, expected %llu",
		     (unsigned long long)atomic_load(&g[0].failed_runs),
		     (unsigned long long)atomic_load(&g[1].failed_runs),
		     (unsigned long long)atomic_load(&g[2].failed_runs),
		     (unsigned long long)runs_bad);
	sy_engine_stats(eng, &st);
	cr_assert_eq(st.delivered, runs_ok, "delivered %llu, expected %llu",
		     (unsigned long long)st.delivered,
		     (unsigned long long)runs_ok);
	cr_assert_eq(st.handler_failed, runs_bad, "failed %llu, expected %llu",
		     (unsigned long long)st.handler_failed,
		     (unsigned long long)runs_bad);
	t_expect_accounting(eng, MESSAGES, ok, bad);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_assert_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED] +
		     a.dead_lettered_by[SY_DL_RETRIES_EXHAUSTED], bad);
	sy_engine_destroy(eng);
}

/* ---- control calls from a handler ---- */

enum call {
	C_START, C_STOP, C_SERVER_ADD, C_SERVER_REMOVE, C_ROUTE_ADD,
	C_ROUTE_REPLACE, C_ROUTE_REMOVE, C_REFRESH, C_SERVE, C_CALL,
	C_REPLAY, C_PARKED_RELEASE, C_PARKED_PURGE, C_COUNT
};

static const char *const call_names[C_COUNT] = {
	"sy_engine_start", "sy_engine_stop", "sy_server_add",
	"sy_server_remove", "sy_route_add", "sy_route_replace",
	"sy_route_remove", "sy_metrics_refresh", "sy_metrics_serve",
	"sy_msg_call", "sy_dlq_replay", "sy_parked_release", "sy_parked_purge",
};

struct control {
	uint32_t self, route;
	int rc[C_COUNT];
	_Atomic uint64_t done;
};

static int noop(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

static int control_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	struct control *c = ctx;
	sy_msg *req = sy_msg_alloc(eng, 8), *reply = NULL;
	uint32_t id;

	(void)msg;
	if (atomic_load(&c->done))
		return 0;
	ro.servers = &c->self;
	c->rc[C_START] = sy_engine_start(eng);
	c->rc[C_STOP] = sy_engine_stop(eng);
	c->rc[C_SERVER_ADD] = sy_server_add(eng, "new", noop, NULL, NULL, &id);
	c->rc[C_SERVER_REMOVE] = sy_server_remove(eng, c->self);
	c->rc[C_ROUTE_ADD] = sy_route_add(eng, "new", &ro, &id);
	c->rc[C_ROUTE_REPLACE] = sy_route_replace(eng, c->route, &ro);
	c->rc[C_ROUTE_REMOVE] = sy_route_remove(eng, c->route);
	c->rc[C_REFRESH] = sy_metrics_refresh(eng);
	c->rc[C_SERVE] = sy_metrics_serve(eng, NULL, 0, NULL);
	c->rc[C_CALL] = sy_msg_call(eng, c->route, req, &reply, 1000000);
	if (c->rc[C_CALL])
		sy_msg_free(req);
	c->rc[C_REPLAY] = sy_dlq_replay(eng, NULL, 0, 0);
	c->rc[C_PARKED_RELEASE] = sy_parked_release(eng, c->route, 1);
	c->rc[C_PARKED_PURGE] = sy_parked_purge(eng, c->route, 1);
	sy_metrics_serve_stop(eng);
	sy_engine_destroy(eng);
	/* Release: the results are visible to whoever sees done. */
	atomic_store_explicit(&c->done, 1, memory_order_release);
	return 0;
}

Test(core_handler, control_calls_from_a_handler_are_edeadlk_and_change_nothing)
{
	struct control c = { .route = 0 };
	struct sy_config cfg;
	uint32_t found;
	unsigned port;
	sy_engine *eng;
	int serve_rc;

	for (unsigned i = 0; i < C_COUNT; i++)
		c.rc[i] = 1;
	atomic_init(&c.done, 0);
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.metrics_interval_ms = 10;
	eng = t_create(&cfg);
	c.route = t_direct(eng, "self", control_handler, &c, 0, &c.self);
	cr_assert_eq(sy_engine_start(eng), 0);
	serve_rc = sy_metrics_serve(eng, NULL, 0, &port);
	cr_assert(serve_rc == 0 || serve_rc == -ENOTSUP, "serve: %d", serve_rc);
	cr_assert_eq(t_send_retry(eng, c.route, t_msg(eng, 1), WAIT_MS), 0);
	cr_assert(t_wait_u64(&c.done, 1, WAIT_MS), "the handler never finished");

	for (unsigned i = 0; i < C_COUNT; i++)
		cr_expect_eq(c.rc[i], -EDEADLK, "%s from a handler: %d",
			     call_names[i], c.rc[i]);
	/* Nothing changed: the engine, its server, route and endpoint. */
	cr_assert_eq(sy_server_find(eng, "self", &found), 0);
	cr_assert_eq(found, c.self);
	cr_assert_eq(sy_server_find(eng, "new", &found), -ENOENT);
	cr_assert_eq(sy_route_find(eng, "self", &found), 0);
	cr_assert_eq(found, c.route);
	cr_assert_eq(sy_route_find(eng, "new", &found), -ENOENT);
	if (serve_rc == 0)
		cr_assert_eq(sy_metrics_serve(eng, NULL, 0, NULL), -EALREADY,
			     "the endpoint stopped");
	cr_assert_eq(t_send_retry(eng, c.route, t_msg(eng, 2), WAIT_MS), 0);
	cr_assert_eq(sy_metrics_refresh(eng), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	t_expect_accounting(eng, 2, 2, 0);
	sy_engine_destroy(eng);
}

/* ---- a refresh from a handler while stop drains ---- */

struct during_stop {
	_Atomic uint64_t stopping, done;
	uint32_t self;
	int rc, find_rc, state_rc, force_rc, healthy_rc;
};

static int refresh_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct during_stop *d = ctx;
	uint64_t end = t_now_ms() + WAIT_MS;
	enum sy_breaker_state state;
	bool healthy;
	uint32_t id;

	(void)msg;
	while (!atomic_load(&d->stopping) && t_now_ms() < end)
		sched_yield();
	/* stop takes the control mutex at once and keeps it while it drains. */
	t_sleep_us(20000);
	d->rc = sy_metrics_refresh(eng);
	/* Lookups any thread may make: they must not wait for stop either. */
	d->find_rc = sy_server_find(eng, "r", &id);
	d->state_rc = sy_breaker_state(eng, d->self, &state);
	d->force_rc = sy_breaker_force(eng, d->self, SY_BREAKER_CLOSED);
	d->healthy_rc = sy_server_healthy(eng, d->self, &healthy);
	atomic_store_explicit(&d->done, 1, memory_order_release);
	return 0;
}

static void *stopper(void *arg)
{
	sy_engine_stop(arg);
	return NULL;
}

Test(core_handler, refresh_and_lookups_from_a_handler_while_stop_drains_return)
{
	struct during_stop d = { .rc = 1, .find_rc = 1, .state_rc = 1,
				 .force_rc = 1, .healthy_rc = 1 };
	struct sy_breaker_opts bo = { .consecutive_failures = 5 };
	struct sy_server_opts so = { .worker = 0, .worker_set = true,
				     .breaker = &bo };
	pthread_t t;
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t route;

	cr_assert_not_null(eng);
	atomic_init(&d.stopping, 0);
	atomic_init(&d.done, 0);
	cr_assert_eq(sy_server_add(eng, "r", refresh_handler, &d, &so, &d.self), 0);
	route = t_add_route(eng, "r", (struct sy_route_opts){ 0 }, &d.self, 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(t_send_retry(eng, route, t_msg(eng, 1), WAIT_MS), 0);
	cr_assert_eq(pthread_create(&t, NULL, stopper, eng), 0);
	atomic_store(&d.stopping, 1);
	cr_assert(t_wait_u64(&d.done, 1, WAIT_MS),
		  "a call from a handler waits for the mutex that "
		  "sy_engine_stop() holds until the handler returns");
	pthread_join(t, NULL);
	cr_assert_eq(d.rc, -EDEADLK, "refresh from a handler: %d", d.rc);
	cr_assert_eq(d.find_rc, 0, "sy_server_find: %d", d.find_rc);
	cr_assert_eq(d.state_rc, 0, "sy_breaker_state: %d", d.state_rc);
	cr_assert_eq(d.force_rc, 0, "sy_breaker_force: %d", d.force_rc);
	cr_assert_eq(d.healthy_rc, 0, "sy_server_healthy: %d", d.healthy_rc);
	t_expect_accounting(eng, 1, 1, 0);
	sy_engine_destroy(eng);
}
