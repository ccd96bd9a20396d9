/*
 * Unit tests of the public API's contracts that need no traffic to speak
 * of: error texts, the engine life cycle's repeated calls, producer
 * attachment (explicit, counted, lazy, limited), argument checks of the
 * registry, and the calls a handler must not make.
 *
 * Threads started here hand results back through atomics and are joined
 * before the test ends; every wait is bounded.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define WAIT_MS 30000u

static sy_engine *engine_with_producers(unsigned max_producers)
{
	struct sy_config cfg;

	t_config(&cfg, 1, NULL);
	cfg.max_producers = max_producers;
	return t_create(&cfg);
}

static int noop_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	if (ctx)
		atomic_fetch_add_explicit((_Atomic uint64_t *)ctx, 1,
					  memory_order_release);
	return 0;
}

/* A thread that attaches (explicitly or by sending) and reports. */
struct attacher {
	sy_engine *eng;
	uint32_t route;          /* for lazy: send here instead of attaching */
	bool lazy;
	bool hold;               /* stay attached until released */
	_Atomic bool attached;
	_Atomic bool release;
	int rc;
	bool alloc_null;
	char why[256];
};

static void attacher_init(struct attacher *a, sy_engine *eng)
{
	memset(a, 0, sizeof(*a));
	a->eng = eng;
	atomic_init(&a->attached, false);
	atomic_init(&a->release, false);
}

static void *attacher_main(void *arg)
{
	struct attacher *a = arg;

	if (a->lazy) {
		sy_msg *m = sy_msg_alloc(a->eng, 16);

		a->alloc_null = m == NULL;
		if (m)
			a->rc = t_send_retry(a->eng, a->route, m, WAIT_MS);
		if (m && a->rc)
			sy_msg_free(m);
	} else {
		a->rc = sy_producer_attach(a->eng);
	}
	snprintf(a->why, sizeof(a->why), "%s", sy_last_error());
	atomic_store(&a->attached, true);
	if (a->hold) {
		for (unsigned i = 0; i < 100000000u && !atomic_load(&a->release); i++)
			sched_yield();
	}
	if (!a->lazy && a->rc == 0)
		sy_producer_detach(a->eng);
	return NULL;
}

/* Run @p a on a thread of its own to the end. @return pthread_create's code. */
static int attacher_run(struct attacher *a)
{
	pthread_t t;
	int rc = pthread_create(&t, NULL, attacher_main, a);

	if (rc == 0)
		pthread_join(t, NULL);
	return rc;
}

static void wait_flag(_Atomic bool *flag)
{
	for (unsigned i = 0; i < 100000000u && !atomic_load(flag); i++)
		sched_yield();
	cr_assert(atomic_load(flag), "a thread never reported");
}

/* ---- errors ---- */

static const int documented_errors[] = {
	EINVAL, ENOMEM, ENOENT, EEXIST, ENOSPC, EAGAIN, EHOSTUNREACH,
	ESHUTDOWN, ETIMEDOUT, EDEADLK, EALREADY, EMSGSIZE, ECONNRESET, EBUSY,
	ENOBUFS, ENOTSUP, EADDRINUSE,
};
#define N_ERRORS (sizeof(documented_errors) / sizeof(documented_errors[0]))

Test(core_error, every_documented_code_has_its_own_text)
{
	const char *unknown = sy_strerror(-4095);

	cr_assert_not_null(unknown);
	for (size_t i = 0; i < N_ERRORS; i++) {
		int err = documented_errors[i];
		const char *neg = sy_strerror(-err), *pos = sy_strerror(err);

		cr_assert_not_null(neg);
		cr_assert_neq(neg[0], '\0', "empty text for %d", -err);
		cr_assert_str_neq(neg, unknown, "no text for %d (%s)", -err,
				  strerror(err));
		cr_assert_null(strstr(neg, "unknown"), "%d reads \"%s\"", -err, neg);
		cr_assert_str_eq(pos, neg, "%d and %d differ", err, -err);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(neg, sy_strerror(-documented_errors[j]),
					  "%s and %s share a text",
					  strerror(err), strerror(documented_errors[j]));
	}
}

Test(core_error, values_that_are_no_errno_share_one_generic_text)
{
	cr_assert_not_null(sy_strerror(-4095));
	cr_assert_str_eq(sy_strerror(-4095), sy_strerror(4095));
	cr_assert_str_eq(sy_strerror(-4095), sy_strerror(-4094));
	cr_assert_str_eq(sy_strerror(-4095), "unknown error");
}

Test(core_error, other_errno_values_read_as_the_system_says)
{
	cr_assert_str_eq(sy_strerror(-EIO), strerror(EIO));
	cr_assert_str_eq(sy_strerror(EPIPE), strerror(EPIPE));
}

Test(core_error, enoent_messages_name_what_is_missing)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *out[1];
	uint32_t id;

	cr_assert_eq(sy_route_find(eng, "nowhere", &id), -ENOENT);
	cr_assert_str_eq(sy_last_error(), "sy_route_find: no route named \"nowhere\"");
	cr_assert_eq(sy_server_find(eng, "nobody", &id), -ENOENT);
	cr_assert_str_eq(sy_last_error(), "sy_server_find: no server named \"nobody\"");
	cr_assert_eq(sy_route_remove(eng, 7), -ENOENT);
	cr_assert_str_eq(sy_last_error(), "sy_route_remove: no route with id 7");
	cr_assert_eq(sy_server_remove(eng, 9), -ENOENT);
	cr_assert_str_eq(sy_last_error(), "sy_server_remove: no server with id 9");
	cr_assert_eq(sy_dlq_peek(eng, 42, NULL, 0), -ENOENT);
	cr_assert_str_eq(sy_last_error(), "sy_dlq_peek: no dead letter with id 42 is held");
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), -ENOENT);
	cr_assert(strstr(sy_last_error(), "sy_producer_poll_replies: the calling thread is not attached"),
		  "%s", sy_last_error());
	cr_assert_eq(sy_producer_detach(eng), -ENOENT);
	cr_assert(strstr(sy_last_error(), "sy_producer_detach: the calling thread is not attached"),
		  "%s", sy_last_error());
	sy_engine_destroy(eng);
}

/* ---- life cycle ---- */

Test(core_engine, start_twice_is_already)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	cr_assert_eq(sy_engine_start(eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(eng), -EALREADY);
	cr_assert_str_eq(sy_last_error(), "sy_engine_start: the engine is already running");
	sy_engine_destroy(eng);
}

Test(core_engine, stop_twice_is_already)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	cr_assert_eq(sy_engine_start(eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_engine_stop(eng), -EALREADY);
	cr_assert(strstr(sy_last_error(), "sy_engine_stop: the engine is already stopped"),
		  "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(eng), -ESHUTDOWN, "a stopped engine restarted");
	cr_assert(strstr(sy_last_error(), "sy_engine_start:") == sy_last_error() &&
		  strstr(sy_last_error(), "cannot be restarted"),
		  "%s", sy_last_error());
	sy_engine_destroy(eng);
}

Test(core_engine, stop_before_start_runs_what_was_sent_and_ends_the_engine)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	_Atomic uint64_t runs = 0;
	uint32_t route = t_direct(eng, "r", noop_handler, (void *)&runs, -1, NULL);

	/* Sends before start are accepted and wait for the workers. */
	cr_assert_eq(sy_msg_send(eng, route, sy_msg_alloc(eng, 8)), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(atomic_load(&runs), 1, "stop did not run the queued message");
	cr_assert_eq(sy_engine_start(eng), -ESHUTDOWN);
	cr_assert(strstr(sy_last_error(), "cannot be restarted"), "%s", sy_last_error());
	sy_engine_destroy(eng);
}

Test(core_engine, sends_and_attaches_after_stop_are_refused)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t route = t_direct(eng, "r", noop_handler, NULL, 0, NULL);
	struct attacher late;
	sy_msg *m;

	m = sy_msg_alloc(eng, 8);
	cr_assert_not_null(m);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_msg_send(eng, route, m), -ESHUTDOWN);
	sy_msg_free(m);

	attacher_init(&late, eng);
	cr_assert_eq(attacher_run(&late), 0);
	cr_assert_eq(late.rc, -ESHUTDOWN, "attach after stop: %d", late.rc);

	attacher_init(&late, eng);
	late.lazy = true;
	late.route = route;
	cr_assert_eq(attacher_run(&late), 0);
	cr_assert(late.alloc_null, "sy_msg_alloc after stop gave a message");
	cr_assert_str_eq(late.why, "sy_msg_alloc: the engine is stopped");
	sy_engine_destroy(eng);
}

/* ---- attachment ---- */

Test(core_producer, attaching_twice_takes_two_detaches)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *out[1];

	cr_assert_not_null(eng);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), -ENOENT, "attached from the start");
	cr_assert_eq(sy_producer_attach(eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_producer_attach(eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_producer_detach(eng), 0);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), 0,
		     "one detach undid two attaches");
	cr_assert_eq(sy_producer_detach(eng), 0);
	cr_assert_eq(sy_producer_poll_replies(eng, out, 1), -ENOENT, "still attached");
	cr_assert_eq(sy_producer_detach(eng), -ENOENT);
	sy_engine_destroy(eng);
}

Test(core_producer, detach_without_attach_is_enoent)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	cr_assert_eq(sy_producer_detach(eng), -ENOENT);
	sy_engine_destroy(eng);
}

Test(core_producer, attach_beyond_max_producers_is_enospc)
{
	sy_engine *eng = engine_with_producers(2);
	struct attacher held, refused, refused_lazy;
	uint32_t route = t_direct(eng, "r", noop_handler, NULL, 0, NULL);
	int rc_refused, rc_lazy;
	pthread_t th;

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_producer_attach(eng), 0, "%s", sy_last_error());

	attacher_init(&held, eng);
	held.hold = true;
	cr_assert_eq(pthread_create(&th, NULL, attacher_main, &held), 0);
	wait_flag(&held.attached);

	attacher_init(&refused, eng);
	rc_refused = attacher_run(&refused);

	attacher_init(&refused_lazy, eng);
	refused_lazy.lazy = true;
	refused_lazy.route = route;
	rc_lazy = attacher_run(&refused_lazy);

	atomic_store(&held.release, true);
	pthread_join(th, NULL);
	cr_assert_eq(rc_refused, 0, "cannot start a thread");
	cr_assert_eq(rc_lazy, 0, "cannot start a thread");

	cr_assert_eq(held.rc, 0, "second producer: %s", held.why);
	cr_assert_eq(refused.rc, -ENOSPC, "third producer got %d", refused.rc);
	cr_assert_not_null(strstr(refused.why, "producer"),
			   "sy_last_error() says \"%s\"", refused.why);
	cr_assert(refused_lazy.alloc_null,
		  "a lazy third producer got a message without a slot");
	cr_assert_not_null(strstr(refused_lazy.why, "producer"),
			   "sy_last_error() says \"%s\"", refused_lazy.why);
	cr_assert_eq(sy_producer_detach(eng), 0);
	sy_engine_destroy(eng);
}

Test(core_producer, lazy_producer_is_detached_when_its_thread_exits)
{
	sy_engine *eng = engine_with_producers(1);
	_Atomic uint64_t delivered;
	struct attacher lazy, later;
	uint32_t route;

	atomic_init(&delivered, 0);
	route = t_direct(eng, "r", noop_handler, &delivered, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	attacher_init(&lazy, eng);
	lazy.lazy = true;
	lazy.route = route;
	cr_assert_eq(attacher_run(&lazy), 0);
	cr_assert_not(lazy.alloc_null, "lazy alloc: %s", lazy.why);
	cr_assert_eq(lazy.rc, 0, "lazy send: %s (%s)", sy_strerror(lazy.rc), lazy.why);
	cr_assert(t_wait_u64(&delivered, 1, WAIT_MS), "the lazy send never arrived");

	/* The only producer slot is free again. */
	attacher_init(&later, eng);
	cr_assert_eq(attacher_run(&later), 0);
	cr_assert_eq(later.rc, 0, "slot not reused: %s (%s)",
		     sy_strerror(later.rc), later.why);
	sy_engine_destroy(eng);
}

/* ---- registry argument checks ---- */

Test(core_registry, server_with_a_bad_worker_index_is_einval)
{
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	struct sy_server_opts opts = { .worker = -1 };
	uint32_t id;

	cr_assert_not_null(eng);
	opts.worker = 2;
	cr_assert_eq(sy_server_add(eng, "s", noop_handler, NULL, &opts, &id), -EINVAL);
	opts.worker = 1000;
	cr_assert_eq(sy_server_add(eng, "s", noop_handler, NULL, &opts, &id), -EINVAL);
	opts.worker = -2;
	cr_assert_eq(sy_server_add(eng, "s", noop_handler, NULL, &opts, &id), -EINVAL);
	cr_assert_eq(sy_server_find(eng, "s", &id), -ENOENT, "a refused server exists");
	opts.worker = 1;
	cr_assert_eq(sy_server_add(eng, "s", noop_handler, NULL, &opts, &id), 0);
	opts.worker = -1;
	cr_assert_eq(sy_server_add(eng, "t", noop_handler, NULL, &opts, &id), 0);
	sy_engine_destroy(eng);
}

/* The worker that owns server @p name, read from a snapshot. */
static unsigned server_worker_of(sy_engine *eng, const char *name)
{
	sy_snapshot *snap;
	const struct sy_series *s;
	unsigned worker;

	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap);
	s = sy_snapshot_find(snap, SY_SERIES_SERVER, name);
	cr_assert_not_null(s, "no series for server %s", name);
	worker = s->worker;
	sy_snapshot_release(snap);
	return worker;
}

Test(core_registry, zero_filled_server_options_let_the_engine_place_servers)
{
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	struct sy_server_opts zero = { 0 };
	struct sy_server_opts on0 = { .worker = 0, .worker_set = true };
	uint32_t id;

	cr_assert_not_null(eng);
	cr_assert_eq(sy_server_add(eng, "a", noop_handler, NULL, &zero, &id), 0);
	cr_assert_eq(sy_server_add(eng, "b", noop_handler, NULL, &zero, &id), 0);
	cr_assert_eq(sy_server_add(eng, "c", noop_handler, NULL, NULL, &id), 0);
	/* Worker 0 asked for explicitly, although worker 0 has more servers. */
	cr_assert_eq(sy_server_add(eng, "e", noop_handler, NULL, &on0, &id), 0);
	cr_assert_eq(sy_server_add(eng, "d", noop_handler, NULL, &zero, &id), 0);
	cr_assert_eq(server_worker_of(eng, "a"), 0);
	cr_assert_eq(server_worker_of(eng, "b"), 1,
		     "zero-filled options pinned a second server to worker 0");
	cr_assert_eq(server_worker_of(eng, "c"), 0);
	cr_assert_eq(server_worker_of(eng, "d"), 1);
	cr_assert_eq(server_worker_of(eng, "e"), 0);
	sy_engine_destroy(eng);
}

Test(core_registry, name_longer_than_63_bytes_is_einval)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	char name[80];
	uint32_t sid, rid;

	cr_assert_not_null(eng);
	memset(name, 'n', sizeof(name));
	name[64] = '\0';
	cr_assert_eq(sy_server_add(eng, name, noop_handler, NULL, NULL, &sid), -EINVAL);
	cr_assert_eq(sy_server_add(eng, "", noop_handler, NULL, NULL, &sid), -EINVAL);
	name[63] = '\0';
	cr_assert_eq(sy_server_add(eng, name, noop_handler, NULL, NULL, &sid), 0,
		     "63 bytes: %s", sy_last_error());
	ro.servers = &sid;
	name[63] = 'n';
	cr_assert_eq(sy_route_add(eng, name, &ro, &rid), -EINVAL);
	name[63] = '\0';
	cr_assert_eq(sy_route_add(eng, name, &ro, &rid), 0, "%s", sy_last_error());
	sy_engine_destroy(eng);
}

Test(core_registry, removing_an_unknown_server_is_enoent)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t id;

	cr_assert_not_null(eng);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_server_remove(eng, 7), -ENOENT);
	cr_assert_eq(sy_server_remove(eng, UINT32_MAX), -ENOENT);
	cr_assert_eq(sy_server_add(eng, "s", noop_handler, NULL, NULL, &id), 0);
	cr_assert_eq(sy_server_remove(eng, id), 0);
	cr_assert_eq(sy_server_remove(eng, id), -ENOENT, "removed twice");
	sy_engine_destroy(eng);
}

/* ---- calls a handler must not make ---- */

struct forbidden {
	uint32_t self_id;
	uint32_t route;
	int remove_rc;
	int stop_rc;
	int call_rc;
	_Atomic uint64_t done;
};

static int forbidden_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct forbidden *f = ctx;
	sy_msg *req = sy_msg_alloc(eng, 8);
	sy_msg *reply = NULL;

	(void)m;
	f->remove_rc = sy_server_remove(eng, f->self_id);
	f->stop_rc = sy_engine_stop(eng);
	f->call_rc = req ? sy_msg_call(eng, f->route, req, &reply, 1000000) : -ENOMEM;
	if (f->call_rc != 0)
		sy_msg_free(req);
	if (reply)
		sy_msg_free(reply);
	/* Release: the results above are visible to whoever sees done. */
	atomic_store_explicit(&f->done, 1, memory_order_release);
	return 0;
}

Test(core_handler, remove_stop_and_call_from_a_handler_are_edeadlk)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	struct forbidden f = { .remove_rc = 1, .stop_rc = 1, .call_rc = 1 };
	struct sy_stats st;
	sy_msg *m;

	cr_assert_not_null(eng);
	atomic_init(&f.done, 0);
	f.route = t_direct(eng, "self", forbidden_handler, &f, 0, &f.self_id);
	cr_assert_eq(sy_engine_start(eng), 0);
	m = sy_msg_alloc(eng, 8);
	cr_assert_not_null(m);
	cr_assert_eq(t_send_retry(eng, f.route, m, WAIT_MS), 0);
	cr_assert(t_wait_u64(&f.done, 1, WAIT_MS), "the handler never finished");

	cr_assert_eq(f.remove_rc, -EDEADLK, "sy_server_remove: %d", f.remove_rc);
	cr_assert_eq(f.stop_rc, -EDEADLK, "sy_engine_stop: %d", f.stop_rc);
	cr_assert_eq(f.call_rc, -EDEADLK, "sy_msg_call: %d", f.call_rc);
	/* None of them took effect: the server and the engine still work. */
	cr_assert_eq(sy_server_find(eng, "self", &f.self_id), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_stats(eng, &st);
	cr_assert_eq(st.accepted, 1);
	cr_assert_eq(st.delivered, 1);
	sy_engine_destroy(eng);
}
