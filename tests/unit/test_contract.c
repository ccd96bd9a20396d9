/*
 * The contract every public function keeps (include/switchyard.h, the
 * conventions at the top): a NULL where none is allowed, an id out of
 * range, or a message that is not the caller's is refused, recorded as
 * "<function>: <what happened>" in sy_last_error() with the code in
 * sy_last_error_code(), and changes nothing. The walk below calls every
 * function of the header (check_walk.sh makes sure none is left out);
 * the deprecated names of 0.1.0 still work.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* The last error names @p fn and has @p code. */
#define EXPECT_RECORDED(fn, code)                                              \
	do {                                                                   \
		cr_expect_eq(sy_last_error_code(), (code), "%s: code %d", fn,  \
			     sy_last_error_code());                            \
		cr_expect(strncmp(sy_last_error(), fn ": ", strlen(fn) + 2) == 0, \
			  "%s: last error \"%s\"", fn, sy_last_error());       \
	} while (0)

/* @p call returns @p want and records it under @p fn. */
#define EXPECT_REFUSED(fn, call, want)                                         \
	do {                                                                   \
		sy__clear();                                                   \
		cr_expect_eq((long)(call), (long)(want), "%s", fn);            \
		EXPECT_RECORDED(fn, -EINVAL);                                  \
	} while (0)

/* A NULL-returning or void call that records -EINVAL under @p fn. */
#define EXPECT_NOTED(fn, stmt)                                                 \
	do {                                                                   \
		sy__clear();                                                   \
		stmt;                                                          \
		EXPECT_RECORDED(fn, -EINVAL);                                  \
	} while (0)

/* Make the last error one that no call below records. */
static void sy__clear(void)
{
	cr_assert_eq(sy_engine_create(NULL, NULL), -EINVAL);
}

static int ok_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	(void)ctx;
	return 0;
}

static int ok_pick(const void *state, struct sy_pick *p)
{
	(void)state;
	(void)p;
	return 0;
}

static void drain_fn(sy_engine *eng, const struct sy_dead_letter *dl,
		     sy_msg *m, void *ctx)
{
	(void)eng;
	(void)dl;
	(void)ctx;
	sy_msg_free(m);
}

Test(core_contract, every_function_refuses_null_and_says_so)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	sy_engine *volatile no_engine = NULL;
	uint32_t id, route = t_direct(eng, "r", ok_handler, NULL, 0, NULL);
	sy_msg *m = t_msg(eng, 1), *out[1];
	struct sy_accounting acct;
	struct sy_stats st;
	struct sy_dead_letter dl;
	struct sy_hist_summary hs;
	struct sy_queue_depth qd;
	struct sy_nats_stats nats;
	enum sy_breaker_state bs;
	char *buf;
	size_t len;

	/* Engine */
	EXPECT_REFUSED("sy_engine_create", sy_engine_create(NULL, NULL), -EINVAL);
	EXPECT_REFUSED("sy_engine_start", sy_engine_start(NULL), -EINVAL);
	EXPECT_REFUSED("sy_engine_stop", sy_engine_stop(NULL), -EINVAL);
	EXPECT_REFUSED("sy_engine_stats", sy_engine_stats(NULL, &st), -EINVAL);
	EXPECT_REFUSED("sy_engine_stats", sy_engine_stats(eng, NULL), -EINVAL);
	EXPECT_REFUSED("sy_engine_accounting", sy_engine_accounting(eng, NULL), -EINVAL);
	EXPECT_REFUSED("sy_engine_workers", sy_engine_workers(NULL), 0);
	EXPECT_REFUSED("sy_engine_worker_cpu", sy_engine_worker_cpu(NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_engine_worker_cpu", sy_engine_worker_cpu(eng, 99), -EINVAL);
	EXPECT_NOTED("sy_config_init", sy_config_init(NULL));
	/* Servers, routes, policies, breakers, health */
	EXPECT_REFUSED("sy_server_add", sy_server_add(NULL, "s", ok_handler, NULL, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_server_add", sy_server_add(eng, "s", ok_handler, NULL, NULL, NULL), -EINVAL);
	EXPECT_REFUSED("sy_server_add", sy_server_add(eng, NULL, ok_handler, NULL, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_server_add", sy_server_add(eng, "s", NULL, NULL, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_server_remove", sy_server_remove(NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_server_find", sy_server_find(eng, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_server_find", sy_server_find(eng, "r", NULL), -EINVAL);
	EXPECT_REFUSED("sy_server_is_healthy", sy_server_is_healthy(NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_route_add", sy_route_add(eng, "x", NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_route_add", sy_route_add(NULL, "x", NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_route_replace", sy_route_replace(eng, route, NULL), -EINVAL);
	EXPECT_REFUSED("sy_route_remove", sy_route_remove(NULL, route), -EINVAL);
	EXPECT_REFUSED("sy_route_find", sy_route_find(NULL, "r", &id), -EINVAL);
	EXPECT_REFUSED("sy_route_find", sy_route_find(eng, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_route_find", sy_route_find(eng, "r", NULL), -EINVAL);
	EXPECT_REFUSED("sy_policy_register", sy_policy_register(NULL), -EINVAL);
	EXPECT_REFUSED("sy_policy_register",
		       sy_policy_register(&(struct sy_policy){ .pick = ok_pick }), -EINVAL);
	EXPECT_REFUSED("sy_breaker_force", sy_breaker_force(NULL, 0, SY_BREAKER_CLOSED), -EINVAL);
	EXPECT_REFUSED("sy_breaker_state", sy_breaker_state(NULL, 0, &bs), -EINVAL);
	EXPECT_REFUSED("sy_breaker_state", sy_breaker_state(eng, 0, NULL), -EINVAL);
	/* Producers */
	EXPECT_REFUSED("sy_producer_attach", sy_producer_attach(NULL), -EINVAL);
	EXPECT_REFUSED("sy_producer_detach", sy_producer_detach(NULL), -EINVAL);
	EXPECT_REFUSED("sy_producer_poll_replies", sy_producer_poll_replies(NULL, out, 1), -EINVAL);
	EXPECT_REFUSED("sy_producer_poll_replies", sy_producer_poll_replies(eng, NULL, 1), -EINVAL);
	/* Messages */
	/* Through a volatile: the compiler would see a constant NULL engine
	 * dereferenced in the inlined fast path it never reaches. */
	EXPECT_NOTED("sy_msg_alloc", cr_expect_null(sy_msg_alloc(no_engine, 8)));
	EXPECT_REFUSED("sy_msg_alloc_burst", sy_msg_alloc_burst(NULL, 8, out, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_alloc_burst", sy_msg_alloc_burst(eng, 8, NULL, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_data", sy_msg_data(NULL), 0);
	EXPECT_REFUSED("sy_msg_size", sy_msg_size(NULL), 0);
	EXPECT_REFUSED("sy_msg_capacity", sy_msg_capacity(NULL), 0);
	EXPECT_REFUSED("sy_msg_set_size", sy_msg_set_size(NULL, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_tag", sy_msg_tag(NULL), 0);
	EXPECT_NOTED("sy_msg_set_tag", sy_msg_set_tag(NULL, 1));
	EXPECT_REFUSED("sy_msg_key", sy_msg_key(NULL), 0);
	EXPECT_NOTED("sy_msg_set_key", sy_msg_set_key(NULL, 1));
	EXPECT_REFUSED("sy_msg_deadline", sy_msg_deadline(NULL), 0);
	EXPECT_NOTED("sy_msg_set_deadline", sy_msg_set_deadline(NULL, 1));
	EXPECT_REFUSED("sy_msg_attempts", sy_msg_attempts(NULL), 0);
	EXPECT_REFUSED("sy_msg_is_request", sy_msg_is_request(NULL), false);
	EXPECT_REFUSED("sy_msg_status", sy_msg_status(NULL), -EINVAL);
	EXPECT_REFUSED("sy_msg_keep", sy_msg_keep(NULL), -EINVAL);
	/* Sending */
	EXPECT_REFUSED("sy_msg_send", sy_msg_send(eng, route, NULL), -EINVAL);
	EXPECT_REFUSED("sy_msg_send", sy_msg_send(NULL, route, m), -EINVAL);
	EXPECT_REFUSED("sy_msg_send_burst", sy_msg_send_burst(eng, route, NULL, 1), -EINVAL);
	out[0] = NULL;
	EXPECT_REFUSED("sy_msg_send_burst", sy_msg_send_burst(eng, route, out, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_send_wait", sy_msg_send_wait(eng, route, NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_msg_request", sy_msg_request(eng, route, NULL), -EINVAL);
	EXPECT_REFUSED("sy_msg_reply", sy_msg_reply(NULL, m), -EINVAL);
	EXPECT_REFUSED("sy_msg_reply", sy_msg_reply(m, m), -EINVAL);
	EXPECT_REFUSED("sy_msg_call", sy_msg_call(eng, route, NULL, out, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_call", sy_msg_call(NULL, route, m, out, 1), -EINVAL);
	EXPECT_REFUSED("sy_msg_call", sy_msg_call(eng, route, m, NULL, 1), -EINVAL);
	/* Dead letters */
	EXPECT_NOTED("sy_dlq_filter_init", sy_dlq_filter_init(NULL));
	EXPECT_REFUSED("sy_dlq_count", sy_dlq_count(NULL, NULL), 0);
	EXPECT_REFUSED("sy_dlq_list", sy_dlq_list(NULL, NULL, &dl, 1), -EINVAL);
	EXPECT_REFUSED("sy_dlq_list", sy_dlq_list(eng, NULL, NULL, 1), -EINVAL);
	EXPECT_REFUSED("sy_dlq_peek", sy_dlq_peek(NULL, 0, NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_dlq_peek", sy_dlq_peek(eng, 0, NULL, 8), -EINVAL);
	EXPECT_REFUSED("sy_dlq_replay", sy_dlq_replay(NULL, NULL, 0, 0), -EINVAL);
	EXPECT_REFUSED("sy_dlq_drain", sy_dlq_drain(NULL, NULL, drain_fn, NULL), -EINVAL);
	EXPECT_REFUSED("sy_dlq_drain", sy_dlq_drain(eng, NULL, NULL, NULL), -EINVAL);
	EXPECT_REFUSED("sy_dlq_purge", sy_dlq_purge(NULL, NULL), -EINVAL);
	/* Parked keys */
	EXPECT_REFUSED("sy_parked_list", sy_parked_list(NULL, SY_ANY, NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_parked_list", sy_parked_list(eng, SY_ANY, NULL, 1), -EINVAL);
	EXPECT_REFUSED("sy_parked_release", sy_parked_release(NULL, 0, 0), -EINVAL);
	EXPECT_REFUSED("sy_parked_purge", sy_parked_purge(NULL, 0, 0), -EINVAL);
	/* Metrics and snapshots */
	EXPECT_REFUSED("sy_metrics_snapshot", sy_metrics_snapshot(NULL), 0);
	EXPECT_REFUSED("sy_metrics_refresh", sy_metrics_refresh(NULL), -EINVAL);
	EXPECT_REFUSED("sy_metrics_reset", sy_metrics_reset(NULL), -EINVAL);
	EXPECT_REFUSED("sy_metrics_serve", sy_metrics_serve(NULL, NULL, 0, NULL), -EINVAL);
	EXPECT_REFUSED("sy_snapshot_seq", sy_snapshot_seq(NULL), 0);
	EXPECT_REFUSED("sy_snapshot_time_ns", sy_snapshot_time_ns(NULL), 0);
	EXPECT_REFUSED("sy_snapshot_window_ns", sy_snapshot_window_ns(NULL), 0);
	EXPECT_REFUSED("sy_snapshot_count", sy_snapshot_count(NULL, SY_SERIES_SERVER), 0);
	EXPECT_REFUSED("sy_snapshot_series", sy_snapshot_series(NULL, SY_SERIES_SERVER, 0), 0);
	EXPECT_REFUSED("sy_snapshot_find", sy_snapshot_find(NULL, SY_SERIES_SERVER, "r"), 0);
	EXPECT_REFUSED("sy_snapshot_hist", sy_snapshot_hist(NULL, SY_HIST_LATENCY, false, &hs), -EINVAL);
	EXPECT_REFUSED("sy_snapshot_hist_count_le", sy_snapshot_hist_count_le(NULL, SY_HIST_LATENCY, 1), 0);
	EXPECT_REFUSED("sy_snapshot_workers", sy_snapshot_workers(NULL), 0);
	EXPECT_REFUSED("sy_snapshot_queue", sy_snapshot_queue(NULL, 0, &qd), -EINVAL);
	EXPECT_REFUSED("sy_snapshot_format", sy_snapshot_format(NULL, SY_FORMAT_JSON, &buf, &len), -EINVAL);
	EXPECT_REFUSED("sy_snapshot_nats", sy_snapshot_nats(NULL, &nats), -EINVAL);
	/* Remote servers (NATS) */
	EXPECT_REFUSED("sy_nats_connect", sy_nats_connect(NULL, NULL), -EINVAL);
	EXPECT_REFUSED("sy_nats_connect", sy_nats_connect(eng, NULL), -EINVAL);
	EXPECT_REFUSED("sy_server_add_remote",
		       sy_server_add_remote(eng, "x", NULL, NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_server_add_remote",
		       sy_server_add_remote(NULL, "x", "a.b", NULL, &id), -EINVAL);
	EXPECT_REFUSED("sy_route_export", sy_route_export(eng, route, NULL, NULL), -EINVAL);
	EXPECT_REFUSED("sy_route_export", sy_route_export(NULL, route, "a", NULL), -EINVAL);
	EXPECT_REFUSED("sy_nats_stats", sy_nats_stats(eng, NULL), -EINVAL);
	EXPECT_REFUSED("sy_nats_stats", sy_nats_stats(NULL, &nats), -EINVAL);
	EXPECT_REFUSED("sy_nats_dlq_list", sy_nats_dlq_list(NULL, NULL, &dl, 1), -EINVAL);
	EXPECT_REFUSED("sy_nats_dlq_list", sy_nats_dlq_list(eng, NULL, NULL, 1), -EINVAL);
	EXPECT_REFUSED("sy_nats_dlq_peek", sy_nats_dlq_peek(NULL, 1, NULL, 0), -EINVAL);
	EXPECT_REFUSED("sy_nats_dlq_peek", sy_nats_dlq_peek(eng, 1, NULL, 8), -EINVAL);
	EXPECT_REFUSED("sy_nats_dlq_replay", sy_nats_dlq_replay(NULL, NULL, 0), -EINVAL);
	/* Policies' accessors */
	EXPECT_REFUSED("sy_pick_count", sy_pick_count(NULL), 0);
	EXPECT_REFUSED("sy_pick_key", sy_pick_key(NULL), 0);
	EXPECT_REFUSED("sy_pick_word", sy_pick_word(NULL), 0);
	EXPECT_REFUSED("sy_pick_random", sy_pick_random(NULL), 0);
	EXPECT_REFUSED("sy_pick_now", sy_pick_now(NULL), 0);
	EXPECT_REFUSED("sy_pick_available", sy_pick_available(NULL, 0), false);
	EXPECT_REFUSED("sy_pick_inflight", sy_pick_inflight(NULL, 0), 0);

	/* The NULLs that are allowed do nothing and record nothing. */
	sy__clear();
	sy_engine_destroy(NULL);
	sy_msg_free(NULL);
	sy_snapshot_release(NULL);
	sy_metrics_serve_stop(NULL);
	cr_expect_eq(sy_msg_send_burst(eng, route, NULL, 0), 0);
	cr_expect_eq(sy_msg_alloc_burst(eng, 8, NULL, 0), 0);
	EXPECT_RECORDED("sy_engine_create", -EINVAL);
	/* Strings that take any value. */
	cr_expect_str_eq(sy_strerror(-EINVAL), "invalid argument or configuration");

	/* Nothing refused above changed the engine. */
	cr_assert_eq(sy_engine_accounting(eng, &acct), 0);
	cr_expect_eq(acct.accepted, 0);
	sy_msg_free(m);
	sy_engine_destroy(eng);
}

static _Atomic uint64_t runs;

static int count_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	(void)ctx;
	atomic_fetch_add(&runs, 1);
	return 0;
}

Test(core_contract, a_message_that_is_not_the_callers_is_refused)
{
	struct t_server s = { 0 };
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid = t_add_counter(eng, "s", &s, 0);
	uint32_t route = t_add_route(eng, "r", (struct sy_route_opts){ 0 }, &sid, 1);
	sy_msg *m = t_msg(eng, 1), *burst[2];
	struct sy_accounting a;

	cr_assert_eq(sy_engine_start(eng), 0);
	/* Sent twice: the second send is refused while the engine has it. */
	t_hold(eng, route, &s, 0);
	cr_assert_eq(sy_msg_send(eng, route, m), 0);
	cr_expect_eq(sy_msg_send(eng, route, m), -EINVAL);
	EXPECT_RECORDED("sy_msg_send", -EINVAL);
	cr_expect(strstr(sy_last_error(), "not the caller's") != NULL, "%s",
		  sy_last_error());
	cr_expect_eq(sy_msg_request(eng, route, m), -EINVAL);
	EXPECT_RECORDED("sy_msg_request", -EINVAL);
	cr_expect_eq(sy_msg_send_wait(eng, route, m, 0), -EINVAL);
	EXPECT_RECORDED("sy_msg_send_wait", -EINVAL);
	sy_msg_free(m); /* not the caller's: refused, not freed */
	EXPECT_RECORDED("sy_msg_free", -EINVAL);
	/* Nor changed: the handler sees tag 1, its size and no deadline. */
	cr_expect_eq(sy_msg_set_size(m, 0), -EINVAL);
	EXPECT_RECORDED("sy_msg_set_size", -EINVAL);
	EXPECT_NOTED("sy_msg_set_tag", sy_msg_set_tag(m, 9));
	EXPECT_NOTED("sy_msg_set_key", sy_msg_set_key(m, 9));
	EXPECT_NOTED("sy_msg_set_deadline", sy_msg_set_deadline(m, 1));
	atomic_fetch_add(&s.released, 1);
	cr_assert(t_wait_u64(&s.handled, 2, T_WAIT_MS));
	cr_expect_eq(atomic_load(&s.runs[1]), 1, "the tag was not changed");
	cr_expect_eq(atomic_load(&s.runs[9]), 0);

	/* Freed, then sent or freed again. */
	m = t_msg(eng, 2);
	sy_msg_free(m);
	cr_expect_eq(sy_msg_send(eng, route, m), -EINVAL);
	EXPECT_RECORDED("sy_msg_send", -EINVAL);
	sy_msg_free(m);
	EXPECT_RECORDED("sy_msg_free", -EINVAL);

	/* A burst goes up to the first message that is not the caller's. */
	burst[0] = t_msg(eng, 3);
	burst[1] = m;
	cr_expect_eq(sy_msg_send_burst(eng, route, burst, 2), 1);
	EXPECT_RECORDED("sy_msg_send_burst", -EINVAL);
	cr_expect_eq(sy_msg_send_burst(eng, route, burst + 1, 1), -EINVAL);

	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 3, "the refusals accepted nothing");
	cr_expect_eq(a.delivered, 3);
	cr_expect_eq(atomic_load(&s.handled), 3, "nothing ran twice");
	sy_engine_destroy(eng);
}

/*
 * A message twice in one burst is the caller's in its first place only:
 * the burst stops at its second, wherever the two places fall among the
 * messages the send checks together (four at a step), and the message runs
 * once.
 */
Test(core_contract, a_message_twice_in_a_burst_goes_once)
{
	static const unsigned places[][2] = {
		{ 0, 1 }, { 1, 3 }, { 2, 3 }, { 0, 4 }, { 4, 5 }, { 5, 7 },
	};
	enum { N = 8 };
	struct t_server s = { 0 };
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid = t_add_counter(eng, "s", &s, 0);
	uint32_t route = t_add_route(eng, "r", (struct sy_route_opts){ 0 }, &sid, 1);
	struct sy_accounting a;
	uint64_t sent = 0;

	cr_assert_eq(sy_engine_start(eng), 0);
	for (size_t k = 0; k < sizeof(places) / sizeof(places[0]); k++) {
		unsigned first = places[k][0], second = places[k][1];
		sy_msg *b[N];

		for (unsigned i = 0; i < N; i++)
			b[i] = i == second ? b[first] : t_msg(eng, i);
		cr_expect_eq(sy_msg_send_burst(eng, route, b, N), (int)second,
			     "places %u and %u", first, second);
		EXPECT_RECORDED("sy_msg_send_burst", -EINVAL);
		sent += second;
		/* The rest are the caller's still. */
		for (unsigned i = second + 1; i < N; i++)
			sy_msg_free(b[i]);
	}
	cr_assert(t_wait_u64(&s.handled, sent, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, sent);
	cr_expect_eq(a.delivered, sent);
	cr_expect_eq(atomic_load(&s.handled), sent, "nothing ran twice");
	sy_engine_destroy(eng);
}

/*
 * A handler passes its message on once: by sending it, replying with it or
 * keeping it. The tag says which; then it tries every way again, and each
 * try must be refused, so that no message is on two rings at once.
 */
enum { PASS_SEND, PASS_REPLY, PASS_KEEP, PASS_WAYS };

static struct {
	uint32_t to;               /* where the handler sends */
	_Atomic int again[PASS_WAYS][4]; /* the second tries' results */
	_Atomic int first[PASS_WAYS];
	_Atomic unsigned runs;
} pass;

static int passing_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	uint64_t way = sy_msg_tag(m);
	int rc;

	(void)ctx;
	switch (way) {
	case PASS_SEND:
		rc = sy_msg_send(eng, pass.to, m);
		break;
	case PASS_REPLY:
		rc = sy_msg_reply(m, m);
		break;
	default:
		rc = sy_msg_keep(m);
		break;
	}
	atomic_store(&pass.first[way], rc);
	/* Only a kept message, the handler's now, may go again. */
	atomic_store(&pass.again[way][0], sy_msg_send(eng, pass.to, m));
	atomic_store(&pass.again[way][1], sy_msg_send(eng, pass.to, m));
	atomic_store(&pass.again[way][2], sy_msg_reply(m, m));
	atomic_store(&pass.again[way][3], sy_msg_keep(m));
	atomic_fetch_add(&pass.runs, 1);
	return 0;
}

Test(core_contract, a_handler_passes_its_message_on_once)
{
	struct t_server s = { 0 };
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid = t_add_counter(eng, "s", &s, 0);
	uint32_t route = t_direct(eng, "passing", passing_handler, NULL, 0, NULL);
	struct sy_accounting a;
	sy_msg *reply = NULL;

	pass.to = t_add_route(eng, "to", (struct sy_route_opts){ 0 }, &sid, 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, PASS_SEND)), 0);
	cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, PASS_KEEP)), 0);
	cr_assert_eq(sy_msg_call(eng, route, t_msg(eng, PASS_REPLY), &reply,
				 10000000000ull), 0);
	cr_expect_eq(sy_msg_status(reply), 0);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&pass.runs), PASS_WAYS);
	for (int way = 0; way < PASS_WAYS; way++) {
		cr_expect_eq(atomic_load(&pass.first[way]), 0, "way %d", way);
		/* A kept message is the handler's, and its first send goes;
		 * every other try is refused. */
		for (int i = 0; i < 4; i++)
			cr_expect_eq(atomic_load(&pass.again[way][i]),
				     way == PASS_KEEP && i == 0 ? 0 : -EINVAL,
				     "way %d, try %d", way, i);
	}
	/* Sent once each: by the send, and by the kept message's send. */
	cr_expect_eq(atomic_load(&s.handled), 2, "nothing ran twice");
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 5);
	cr_expect_eq(a.delivered, 5);
	sy_engine_destroy(eng);
}

/*
 * The message a handler runs appears twice in one burst: the burst sends
 * it once and stops at its second place (sent already); no message runs
 * twice.
 */
static struct {
	uint32_t to;
	_Atomic int sent[2];       /* the bursts' results, by tag */
	_Atomic int code[2];       /* sy_last_error_code() after each */
	_Atomic unsigned runs;
} twice;

static int twice_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	uint64_t way = sy_msg_tag(m);
	sy_msg *other = way ? t_msg(eng, 100) : NULL;
	sy_msg *b[3] = { m, other ? other : m, m };
	int rc;

	(void)ctx;
	sy__clear();
	rc = sy_msg_send_burst(eng, twice.to, b, way ? 3 : 2);
	atomic_store(&twice.sent[way], rc);
	atomic_store(&twice.code[way], sy_last_error_code());
	if (other && rc < 2)
		sy_msg_free(other);
	atomic_fetch_add(&twice.runs, 1);
	return 0;
}

Test(core_contract, a_burst_sends_the_handled_message_once)
{
	struct t_server s = { 0 };
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid = t_add_counter(eng, "s", &s, 0);
	uint32_t route = t_direct(eng, "twice", twice_handler, NULL, 0, NULL);
	struct sy_accounting a;

	twice.to = t_add_route(eng, "to", (struct sy_route_opts){ 0 }, &sid, 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, 0)), 0); /* m, m */
	cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, 1)), 0); /* m, x, m */
	/* Not stopped before: a stopping engine refuses the bursts. */
	for (unsigned i = 0; i < T_WAIT_MS && atomic_load(&twice.runs) < 2; i++)
		usleep(1000);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&twice.runs), 2);
	cr_expect_eq(atomic_load(&twice.sent[0]), 1, "m, m: one sent");
	cr_expect_eq(atomic_load(&twice.sent[1]), 2, "m, x, m: two sent");
	for (int way = 0; way < 2; way++)
		cr_expect_eq(atomic_load(&twice.code[way]), -EINVAL,
			     "way %d: the second place is recorded", way);
	cr_expect_eq(atomic_load(&s.handled), 3, "each message ran once");
	cr_expect_eq(atomic_load(&s.runs[0]), 1);
	cr_expect_eq(atomic_load(&s.runs[1]), 1);
	cr_expect_eq(atomic_load(&s.runs[100]), 1);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 5);
	cr_expect_eq(a.delivered, 5);
	sy_engine_destroy(eng);
}

/*
 * A handler bursts the request it runs to an engine that refuses the burst
 * before any dispatch (stopped: the handler's thread cannot attach to it).
 * The request is what it was: still a request, and its reply goes back to
 * the caller.
 */
static struct {
	sy_engine *stopped;
	_Atomic int burst, is_request, reply;
} asked;

static int asked_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)ctx;
	atomic_store(&asked.burst, sy_msg_send_burst(asked.stopped, 0, &m, 1));
	atomic_store(&asked.is_request, sy_msg_is_request(m));
	atomic_store(&asked.reply, sy_msg_reply(m, m));
	return 0;
}

Test(core_contract, a_request_burst_refused_before_its_dispatch_stays_a_request)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t route = t_direct(eng, "asks", asked_handler, NULL, 0, NULL);
	sy_msg *reply = NULL;

	asked.stopped = t_engine_at(1, NULL, 0);
	cr_assert_eq(sy_engine_start(asked.stopped), 0);
	cr_assert_eq(sy_engine_stop(asked.stopped), 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_msg_call(eng, route, t_msg(eng, 7), &reply,
				 (uint64_t)T_WAIT_MS * 1000000u), 0,
		     "the call: %s", sy_last_error());
	cr_expect_eq(atomic_load(&asked.burst), -ESHUTDOWN);
	cr_expect_eq(atomic_load(&asked.is_request), 1);
	cr_expect_eq(atomic_load(&asked.reply), 0);
	cr_expect_eq(sy_msg_tag(reply), 7);
	sy_msg_free(reply);
	cr_assert_eq(sy_engine_stop(eng), 0);
	sy_engine_destroy(eng);
	sy_engine_destroy(asked.stopped);
}

/*
 * A handler bursts the message it runs with another, through a route whose
 * policy sends the first to a server past its backpressure threshold and
 * the second to a free one. The dispatch accepts the second and moves it
 * to the front: the handler's message, refused, is still the handler's
 * (it may send it elsewhere), whatever its place in the array.
 */
static int by_key(const void *state, struct sy_pick *p)
{
	(void)state;
	return (int)(sy_pick_key(p) % 2);
}

static const struct sy_policy by_key_policy = { .name = "contract_by_key",
						.pick = by_key };

static struct {
	uint32_t split, elsewhere;
	_Atomic uint64_t entered;   /* the blocked server's handler runs */
	_Atomic uint64_t release;   /* the blocked server's handler returns */
	_Atomic uint64_t done;
	_Atomic int burst, resend;
	_Atomic bool own_first, own_last, filled;
} part;

static int blocked_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	(void)ctx;
	atomic_fetch_add(&part.entered, 1);
	t_wait_u64(&part.release, 1, T_WAIT_MS);
	return 0;
}

static int part_handler(sy_engine *eng, sy_msg *own, void *ctx)
{
	sy_msg *b[2];

	(void)ctx;
	/* Key 0 goes to the blocked server: once its worker is in the
	 * handler (and takes nothing more), fill its ring past the mark. */
	for (unsigned i = 0; i < 64; i++) {
		sy_msg *f = t_msg(eng, 1000 + i);

		sy_msg_set_key(f, 0);
		if (sy_msg_send(eng, part.split, f) != 0) {
			sy_msg_free(f);
			atomic_store(&part.filled, true);
			break;
		}
		if (i == 0 && !t_wait_u64(&part.entered, 1, T_WAIT_MS))
			break;
	}
	b[0] = own;
	b[1] = t_msg(eng, 2);
	sy_msg_set_key(own, 0);
	sy_msg_set_key(b[1], 1);
	atomic_store(&part.burst, sy_msg_send_burst(eng, part.split, b, 2));
	atomic_store(&part.own_first, b[0] == own);
	atomic_store(&part.own_last, b[1] == own);
	atomic_store(&part.resend, sy_msg_send(eng, part.elsewhere, own));
	atomic_store(&part.done, 1);
	return 0;
}

Test(core_contract, a_burst_that_refuses_the_handled_message_leaves_it_the_handlers)
{
	struct sy_config cfg;
	struct sy_route_opts ro = {
		.policy = "contract_by_key", .backpressure = SY_BP_REJECT,
		.bp_high = 0.25,
	};
	struct t_server s = { 0 };
	uint32_t ids[2], start;
	struct sy_accounting a;
	sy_engine *eng;

	cr_assert_eq(sy_policy_register(&by_key_policy), 0);
	t_config(&cfg, 3, NULL);
	cfg.ring_size = 16;
	eng = t_create(&cfg);
	start = t_direct(eng, "start", part_handler, NULL, 0, NULL);
	ids[0] = t_add_server(eng, "blocked", blocked_handler, NULL, 1);
	ids[1] = t_add_counter(eng, "free", &s, 2);
	part.split = t_add_route(eng, "split", ro, ids, 2);
	part.elsewhere = t_add_route(eng, "elsewhere", (struct sy_route_opts){ 0 },
				     &ids[1], 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_msg_send(eng, start, t_msg(eng, 1)), 0);
	cr_assert(t_wait_u64(&part.done, 1, T_WAIT_MS));
	atomic_store(&part.release, 1);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_assert(atomic_load(&part.filled), "the blocked server's ring filled");
	cr_expect_eq(atomic_load(&part.burst), 1);
	cr_expect(atomic_load(&part.own_last), "the refused one moved back");
	cr_expect_eq(atomic_load(&part.resend), 0,
		     "the handler's message is still its own after the refusal");
	cr_expect_eq(atomic_load(&s.runs[1]), 1, "it ran once, where it was resent");
	cr_expect_eq(atomic_load(&s.runs[2]), 1);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.in_flight, 0);
	cr_expect_eq(a.accepted, a.delivered, "every message ran once");
	sy_engine_destroy(eng);
}

/*
 * A handler passes the message it runs to a route of another engine, by
 * each call that sends: the message is that engine's then, and the
 * handler's worker must not free it when the handler returns (it went
 * back to its pool, and on to new allocations, while the other engine
 * still held it). The other engine's handler keeps each message; none of
 * them may come out of an allocation until they are freed.
 */
enum { AWAY_SEND, AWAY_BURST, AWAY_REQUEST, AWAY_WAIT, AWAY_CALL, AWAY_WAYS };

static struct {
	sy_engine *far;
	uint32_t far_route;
	_Atomic int first[AWAY_WAYS];
	_Atomic int again[AWAY_WAYS];
	_Atomic unsigned runs;
	_Atomic bool tried[AWAY_WAYS]; /* the handler tried again */
	_Atomic(sy_msg *) kept[AWAY_WAYS];
	_Atomic unsigned nkept;
} away;

static int away_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	uint64_t way = sy_msg_tag(m);
	sy_msg *reply = NULL, *b[1] = { m };
	int rc;

	(void)eng;
	(void)ctx;
	switch (way) {
	case AWAY_SEND:
		rc = sy_msg_send(away.far, away.far_route, m);
		break;
	case AWAY_BURST:
		rc = sy_msg_send_burst(away.far, away.far_route, b, 1);
		break;
	case AWAY_REQUEST:
		rc = sy_msg_request(away.far, away.far_route, m);
		break;
	case AWAY_WAIT:
		rc = sy_msg_send_wait(away.far, away.far_route, m, T_WAIT_MS * 1000000ull);
		break;
	default: /* not answered: the call times out, the message is far */
		rc = sy_msg_call(away.far, away.far_route, m, &reply, 1000000);
		break;
	}
	atomic_store(&away.first[way], rc);
	atomic_store(&away.again[way], sy_msg_send(away.far, away.far_route, m));
	atomic_store(&away.tried[way], true);
	atomic_fetch_add(&away.runs, 1);
	return 0;
}

/* Kept, a message is not held: the sender's second try would find it
 * free. The far handler waits for that try first. */
static int keeping_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	uint64_t way = sy_msg_tag(m) % AWAY_WAYS;

	(void)eng;
	(void)ctx;
	for (unsigned i = 0; i < T_WAIT_MS && !atomic_load(&away.tried[way]); i++)
		usleep(1000);
	cr_assert_eq(sy_msg_keep(m), 0);
	atomic_store(&away.kept[way], m);
	atomic_fetch_add(&away.nkept, 1);
	return 0;
}

/* Allocate @p n messages from @p eng into @p got (kept: each round takes
 * what was freed to the calling thread's pool since); whether one of them
 * is a kept message. */
static bool kept_reallocated(sy_engine *eng, sy_msg **got, unsigned n)
{
	bool found = false;

	for (unsigned i = 0; i < n; i++) {
		got[i] = t_msg(eng, 0);
		for (int w = 0; w < AWAY_WAYS; w++)
			found |= got[i] == atomic_load(&away.kept[w]);
	}
	return found;
}

Test(core_contract, a_handler_passes_its_message_to_another_engine_once)
{
	enum { ROUNDS = 10, PER_ROUND = 2048 };
	static sy_msg *got[ROUNDS * PER_ROUND];
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t route = t_direct(eng, "away", away_handler, NULL, 0, NULL);

	away.far = t_engine_at(1, NULL, 0);
	away.far_route = t_direct(away.far, "keep", keeping_handler, NULL, 0, NULL);
	cr_assert_eq(sy_engine_start(away.far), 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t way = 0; way < AWAY_WAYS; way++)
		cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, way)), 0);
	for (unsigned i = 0; i < T_WAIT_MS && (atomic_load(&away.runs) < AWAY_WAYS ||
	     atomic_load(&away.nkept) < AWAY_WAYS); i++)
		usleep(1000);
	cr_assert_eq(atomic_load(&away.runs), AWAY_WAYS);
	cr_assert_eq(atomic_load(&away.nkept), AWAY_WAYS);
	for (int way = 0; way < AWAY_WAYS; way++) {
		cr_expect_eq(atomic_load(&away.first[way]),
			     way == AWAY_BURST ? 1 : way == AWAY_CALL ? -ETIMEDOUT : 0,
			     "way %d", way);
		cr_expect_eq(atomic_load(&away.again[way]), -EINVAL,
			     "way %d: sent already", way);
	}
	/* The handler's worker freed none of them: give it time to have. */
	for (int round = 0; round < ROUNDS; round++) {
		cr_assert_not(kept_reallocated(eng, got + round * PER_ROUND,
					       PER_ROUND),
			      "round %d: a kept message was allocated again",
			      round);
		usleep(1000);
	}
	for (unsigned i = 0; i < ROUNDS * PER_ROUND; i++)
		sy_msg_free(got[i]);
	for (int w = 0; w < AWAY_WAYS; w++)
		sy_msg_free(atomic_load(&away.kept[w]));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_engine_stop(away.far), 0);
	sy_engine_destroy(eng);
	sy_engine_destroy(away.far);
}

/*
 * A handler's forward of its request that is refused leaves the request as
 * it was: still a request, answered to its own requester (the refused
 * sy_msg_request() had put the handler's worker in as the requester, the
 * refused send had made it a plain message).
 */
enum { FWD_SEND, FWD_REQUEST, FWD_BURST, FWD_FAR_WAIT, FWD_FAR_CALL, FWD_WAYS };

static struct {
	sy_engine *far;
	_Atomic int fwd[FWD_WAYS];
	_Atomic bool is_request[FWD_WAYS];
	_Atomic int reply[FWD_WAYS];
} fwd;

static int forwarding_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	uint64_t way = sy_msg_tag(m);
	sy_msg *b[1] = { m }, *reply = NULL;
	const uint32_t nowhere = 999;
	int rc;

	(void)ctx;
	switch (way) {
	case FWD_SEND:
		rc = sy_msg_send(eng, nowhere, m);
		break;
	case FWD_REQUEST:
		rc = sy_msg_request(eng, nowhere, m);
		break;
	case FWD_BURST:
		rc = sy_msg_send_burst(eng, nowhere, b, 1);
		break;
	case FWD_FAR_WAIT:
		rc = sy_msg_send_wait(fwd.far, nowhere, m, 1000000);
		break;
	default:
		rc = sy_msg_call(fwd.far, nowhere, m, &reply, 1000000);
		break;
	}
	atomic_store(&fwd.fwd[way], rc);
	atomic_store(&fwd.is_request[way], sy_msg_is_request(m));
	atomic_store(&fwd.reply[way], sy_msg_reply(m, m));
	return 0;
}

Test(core_contract, a_refused_forward_leaves_the_request_answerable)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t route = t_direct(eng, "fwd", forwarding_handler, NULL, 0, NULL);

	fwd.far = t_engine_at(1, NULL, 0);
	cr_assert_eq(sy_engine_start(fwd.far), 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t way = 0; way < FWD_WAYS; way++) {
		sy_msg *reply = NULL;

		cr_expect_eq(sy_msg_call(eng, route, t_msg(eng, way), &reply,
					 T_WAIT_MS * 1000000ull), 0, "way %d",
			     (int)way);
		cr_expect_eq(atomic_load(&fwd.fwd[way]), -ENOENT, "way %d",
			     (int)way);
		cr_expect(atomic_load(&fwd.is_request[way]), "way %d", (int)way);
		cr_expect_eq(atomic_load(&fwd.reply[way]), 0, "way %d", (int)way);
		if (reply) {
			cr_expect_eq(sy_msg_tag(reply), way);
			cr_expect_eq(sy_msg_status(reply), 0);
			sy_msg_free(reply);
		}
	}
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(sy_engine_stop(fwd.far), 0);
	t_expect_balanced(eng);
	sy_engine_destroy(eng);
	sy_engine_destroy(fwd.far);
}

/*
 * A request is answered once: after a reply with another message, a
 * second reply (with another message or the request itself) is refused,
 * the request is no longer one, and a failure of the handler after it
 * sends no failure reply (SY_FAIL_RETURN) on top.
 */
static struct {
	_Atomic int first, second, in_place;
	_Atomic bool still_request;
} once;

static int answering_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	sy_msg *r1 = t_msg(eng, 1), *r2 = t_msg(eng, 2);

	(void)ctx;
	atomic_store(&once.first, sy_msg_reply(m, r1));
	atomic_store(&once.second, sy_msg_reply(m, r2));
	atomic_store(&once.in_place, sy_msg_reply(m, m));
	atomic_store(&once.still_request, sy_msg_is_request(m));
	sy_msg_free(r2);
	return -EIO;
}

Test(core_contract, a_request_is_answered_once)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid = t_add_server(eng, "answer", answering_handler, NULL, 0);
	uint32_t route = t_add_route(eng, "answer", (struct sy_route_opts){
		.on_failure = SY_FAIL_RETURN }, &sid, 1);
	sy_msg *out[4];
	int n;

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_msg_request(eng, route, t_msg(eng, 7)), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&once.first), 0);
	cr_expect_eq(atomic_load(&once.second), -EINVAL);
	cr_expect_eq(atomic_load(&once.in_place), -EINVAL);
	cr_expect_not(atomic_load(&once.still_request));
	n = sy_producer_poll_replies(eng, out, 4);
	cr_expect_eq(n, 1, "one reply, not %d", n);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(sy_msg_status(out[i]), 0);
		sy_msg_free(out[i]);
	}
	sy_engine_destroy(eng);
}

/*
 * A message allocated from one engine and sent through another goes back
 * to its own engine's pool when the other engine's worker frees it (it
 * had gone onto a return chain indexed by the other engine's slots: out
 * of their array when its engine has more workers).
 */
Test(core_contract, a_message_of_another_engine_goes_back_to_its_pool)
{
	enum { MAX = 1 << 16 };
	static sy_msg *got[MAX];
	struct sy_config cfg;
	struct t_server s = { 0 };
	sy_engine *home, *through;
	uint32_t route;
	sy_msg *m;
	unsigned n = 0;
	bool back = false;

	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	home = t_create(&cfg);
	cfg.workers = 1;
	cfg.max_producers = 1;
	through = t_create(&cfg);
	route = t_direct(through, "through", t_server_handler, &s, 0, NULL);
	cr_assert_eq(sy_engine_start(home), 0);
	cr_assert_eq(sy_engine_start(through), 0);
	m = t_msg(home, 5);
	cr_assert_eq(sy_msg_send(through, route, m), 0);
	cr_assert_eq(sy_engine_stop(through), 0);
	cr_expect_eq(atomic_load(&s.handled), 1);
	/* Freed by the other engine's worker, it comes out of an allocation
	 * from its own pool again. */
	while (!back && n < MAX) {
		got[n] = t_msg(home, 0);
		back = got[n++] == m;
	}
	cr_expect(back, "the message did not come back to its pool");
	while (n)
		sy_msg_free(got[--n]);
	sy_engine_destroy(through);
	cr_assert_eq(sy_engine_stop(home), 0);
	sy_engine_destroy(home);
}

Test(core_contract, ids_out_of_range_are_refused_with_what_is_missing)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t route = t_direct(eng, "r", count_handler, NULL, 0, NULL);
	sy_msg *m = t_msg(eng, 1);

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_expect_eq(sy_msg_send(eng, 1000000, m), -ENOENT);
	cr_expect_str_eq(sy_last_error(),
			 "sy_msg_send: route 1000000: no such route, server, "
			 "dead letter or attachment (sy_last_error() names which)");
	cr_expect_eq(sy_route_remove(eng, 1000000), -ENOENT);
	cr_expect_str_eq(sy_last_error(), "sy_route_remove: no route with id 1000000");
	cr_expect_eq(sy_server_remove(eng, 1000000), -ENOENT);
	cr_expect_str_eq(sy_last_error(), "sy_server_remove: no server with id 1000000");
	cr_expect_eq(sy_server_is_healthy(eng, 1000000), -ENOENT);
	cr_expect_eq(sy_breaker_force(eng, 1000000, SY_BREAKER_CLOSED), -ENOENT);
	cr_expect_eq(sy_msg_set_size(m, 1u << 30), -EMSGSIZE);
	EXPECT_RECORDED("sy_msg_set_size", -EMSGSIZE);
	/* The message is still the caller's: it sends. */
	cr_expect_eq(sy_msg_send(eng, route, m), 0);
	sy_engine_destroy(eng);
}

Test(core_contract, the_last_error_is_the_last_failing_calls_own)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t id;

	cr_expect_str_eq(sy_last_error(), "", "no failure yet on this thread");
	cr_expect_eq(sy_last_error_code(), 0);
	cr_expect_eq(sy_route_find(eng, "nowhere", &id), -ENOENT);
	cr_expect_str_eq(sy_last_error(), "sy_route_find: no route named \"nowhere\"");
	cr_expect_eq(sy_server_find(eng, "nobody", &id), -ENOENT);
	cr_expect_str_eq(sy_last_error(), "sy_server_find: no server named \"nobody\"");
	/* A call that succeeds leaves it. */
	cr_expect_eq(sy_engine_start(eng), 0);
	cr_expect_str_eq(sy_last_error(), "sy_server_find: no server named \"nobody\"");
	/* A failure without more to say than its code. */
	cr_expect_eq(sy_engine_start(eng), -EALREADY);
	cr_expect_str_eq(sy_last_error(), "sy_engine_start: the engine is already running");
	cr_expect_eq(sy_producer_detach(eng), -ENOENT);
	EXPECT_RECORDED("sy_producer_detach", -ENOENT);
	sy_engine_destroy(eng);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
Test(core_contract, the_names_of_0_1_0_still_work)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	uint32_t sid, route = t_direct(eng, "r", count_handler, NULL, 0, &sid);
	sy_msg *burst[1] = { t_msg(eng, 2) }, *out[1];
	struct sy_dl_filter f;
	bool healthy = false;

	atomic_store(&runs, 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_expect_eq(sy_send(eng, route, t_msg(eng, 1)), 0);
	cr_expect_eq(sy_send_burst(eng, route, burst, 1), 1);
	cr_expect_eq(sy_request(eng, route, t_msg(eng, 3)), 0);
	cr_expect(t_wait_u64(&runs, 3, T_WAIT_MS));
	cr_expect_eq(sy_poll_replies(eng, out, 1), 0, "the handler did not reply");
	cr_expect_eq(sy_reply(NULL, NULL), -EINVAL);
	cr_expect_eq(sy_call(eng, route, NULL, out, 1), -EINVAL);
	sy_dl_filter_init(&f);
	cr_expect_eq(f.route, SY_ANY);
	cr_expect_eq(sy_server_healthy(eng, sid, &healthy), 0);
	cr_expect(healthy);
	cr_expect_eq(sy_server_healthy(eng, sid, NULL), -EINVAL);
	EXPECT_RECORDED("sy_server_healthy", -EINVAL);
	sy_engine_destroy(eng);
}
#pragma GCC diagnostic pop

/* ------------------------------------------------------------------ */
/* The waiting send                                                    */
/* ------------------------------------------------------------------ */

/* A started engine whose one server holds its first message, so that its
 * ring (16 entries) can be filled. */
static sy_engine *full_ring(struct t_server *s, uint32_t *route)
{
	struct sy_config cfg;
	sy_engine *eng;
	uint32_t sid;

	t_config(&cfg, 1, NULL);
	cfg.ring_size = 16;
	eng = t_create(&cfg);
	sid = t_add_counter(eng, "s", s, 0);
	*route = t_add_route(eng, "r", (struct sy_route_opts){ 0 }, &sid, 1);
	cr_assert_eq(sy_engine_start(eng), 0);
	t_hold(eng, *route, s, 0);
	for (uint64_t id = 1;; id++) {
		sy_msg *m = t_msg(eng, id);

		if (sy_msg_send(eng, *route, m) != 0) {
			sy_msg_free(m);
			break;
		}
	}
	return eng;
}

Test(core_send_wait, gives_up_after_its_timeout_and_counts_it_apart)
{
	struct t_server s = { 0 };
	uint32_t route;
	sy_engine *eng = full_ring(&s, &route);
	struct sy_stats before, after;
	sy_msg *m = t_msg(eng, 100);

	cr_assert_eq(sy_engine_stats(eng, &before), 0);
	cr_expect_eq(sy_msg_send_wait(eng, route, m, 1000000), -ETIMEDOUT);
	EXPECT_RECORDED("sy_msg_send_wait", -ETIMEDOUT);
	cr_expect(strstr(sy_last_error(), "still full after 1000000 ns") != NULL,
		  "%s", sy_last_error());
	cr_assert_eq(sy_engine_stats(eng, &after), 0);
	cr_expect_eq(after.send_wait_timeouts, before.send_wait_timeouts + 1);
	cr_expect_eq(after.rejected_full, before.rejected_full,
		     "its refused tries are not refusals");
	cr_expect_eq(after.accepted, before.accepted);
	/* The message is the caller's: sent once the server lets go. */
	atomic_fetch_add(&s.released, 1);
	cr_expect_eq(sy_msg_send_wait(eng, route, m, 60000000000ull), 0);
	sy_engine_destroy(eng);
}

struct releaser {
	struct t_server *s;
	pthread_t thread;
};

static void *release_soon(void *arg)
{
	struct releaser *r = arg;

	t_sleep_us(20000);
	atomic_fetch_add(&r->s->released, 1);
	return NULL;
}

Test(core_send_wait, waits_for_room_and_sends)
{
	struct t_server s = { 0 };
	struct releaser rel = { .s = &s };
	uint32_t route;
	sy_engine *eng = full_ring(&s, &route);
	struct sy_stats before, after;

	cr_assert_eq(sy_engine_stats(eng, &before), 0);
	cr_assert_eq(pthread_create(&rel.thread, NULL, release_soon, &rel), 0);
	cr_expect_eq(sy_msg_send_wait(eng, route, t_msg(eng, 100),
				      60000000000ull), 0);
	pthread_join(rel.thread, NULL);
	cr_assert_eq(sy_engine_stats(eng, &after), 0);
	cr_expect_leq(after.send_waits - before.send_waits, 1);
	cr_expect_eq(after.rejected_full, before.rejected_full);
	cr_expect_eq(after.accepted, before.accepted + 1);
	sy_engine_destroy(eng);
}

Test(core_send_wait, fails_at_once_on_an_unknown_route)
{
	sy_engine *eng = t_engine_at(1, NULL, 0);
	sy_msg *m = t_msg(eng, 1);

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_expect_eq(sy_msg_send_wait(eng, 4242, m, 60000000000ull), -ENOENT,
		     "an unknown route is not worth waiting for");
	EXPECT_RECORDED("sy_msg_send_wait", -ENOENT);
	sy_msg_free(m);
	sy_engine_destroy(eng);
}
