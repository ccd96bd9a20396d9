/*
 * Remote servers and exported routes over NATS: every test starts its own
 * nats-server on 127.0.0.1 on a free port and stops it. Engine A sends
 * through a route whose server is remote; engine B (in this process, or a
 * remote_peer process) serves it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/common.h"
#include "tests/fixture.h"
#include "tests/remote/natsd.h"

static struct t_natsd natsd;

static void start_natsd(void)
{
	cr_assert_eq(t_natsd_start(&natsd, NULL), 0, "nats-server did not start");
}

static void stop_natsd(void)
{
	t_natsd_stop(&natsd);
}

/* An engine connected to @p url. */
static sy_engine *engine_on(const char *url)
{
	struct sy_nats_opts no = { 0 };
	const char *urls[1] = { url };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	int rc;

	cr_assert_not_null(eng);
	cr_assert_eq(sy_engine_start(eng), 0);
	no.urls = urls;
	no.n_urls = 1;
	rc = sy_nats_connect(eng, &no);
	cr_assert_eq(rc, 0, "sy_nats_connect: %s", sy_last_error());
	return eng;
}

/* A route of A over one remote server at @p subject. */
static uint32_t remote_route(sy_engine *a, const char *subject,
			     struct sy_route_opts ro,
			     const struct sy_remote_opts *opts, uint32_t *server)
{
	uint32_t sid, rid;
	int rc = sy_server_add_remote(a, subject, subject, opts, &sid);

	cr_assert_eq(rc, 0, "sy_server_add_remote: %s", sy_last_error());
	ro.servers = &sid;
	ro.n_servers = 1;
	cr_assert_eq(sy_route_add(a, subject, &ro, &rid), 0);
	if (server)
		*server = sid;
	return rid;
}

/* Serve a route of B over @p fn on @p subject in queue group "q". */
static void serve(sy_engine *b, const char *subject, sy_handler_fn fn,
		  void *ctx)
{
	uint32_t rid = t_direct(b, subject, fn, ctx, -1, NULL);

	cr_assert_eq(sy_route_export(b, rid, subject, "q"), 0,
		     "sy_route_export: %s", sy_last_error());
}

static void send_ids(sy_engine *eng, uint32_t route, uint64_t first,
		     uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		cr_assert_eq(t_send_retry(eng, route, t_msg(eng, i), 5000), 0);
}

static struct sy_nats_stats nats_stats(sy_engine *eng)
{
	struct sy_nats_stats st;

	cr_assert_eq(sy_nats_stats(eng, &st), 0);
	return st;
}

TestSuite(remote_connect, .init = start_natsd, .fini = stop_natsd);

Test(remote_connect, an_unreachable_url_fails_with_a_clear_error)
{
	struct sy_nats_opts no = { 0 };
	char url[64];
	const char *urls[1] = { url };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	struct sy_nats_stats st;
	uint32_t id;

	snprintf(url, sizeof(url), "nats://127.0.0.1:%u", t_free_port());
	no.urls = urls;
	no.n_urls = 1;
	no.connect_timeout_ns = 200000000;
	no.max_reconnect = 1;
	cr_assert_eq(sy_nats_connect(eng, &no), -ECONNREFUSED);
	cr_expect_not_null(strstr(sy_last_error(), "could be reached"),
			   "%s", sy_last_error());
	cr_expect_eq(sy_server_add_remote(eng, "r", "sy.r", NULL, &id),
		     -ENOTCONN);
	cr_assert_eq(sy_nats_stats(eng, &st), 0);
	cr_expect_eq(st.state, SY_NATS_NONE);
	/* A second URL that answers: the connection falls through to it. */
	{
		const char *two[2] = { url, natsd.url };

		no.urls = two;
		no.n_urls = 2;
		cr_assert_eq(sy_nats_connect(eng, &no), 0, "%s", sy_last_error());
		cr_expect_eq(nats_stats(eng).state, SY_NATS_CONNECTED);
	}
	sy_engine_destroy(eng);
}

Test(remote_connect, bad_subjects_are_refused)
{
	sy_engine *eng = engine_on(natsd.url);
	uint32_t id;

	cr_expect_eq(sy_server_add_remote(eng, "a", "", NULL, &id), -EINVAL);
	cr_expect_eq(sy_server_add_remote(eng, "b", "sy.*", NULL, &id), -EINVAL);
	cr_expect_eq(sy_server_add_remote(eng, "c", "sy. x", NULL, &id), -EINVAL);
	cr_expect_eq(sy_server_add_remote(eng, "d", "sy..x", NULL, &id), -EINVAL);
	cr_expect_eq(sy_route_export(eng, 7, "sy.x", NULL), -ENOENT);
	sy_engine_destroy(eng);
}

TestSuite(remote_send, .init = start_natsd, .fini = stop_natsd);

/* A plain subscriber beside the queue group: counts NATS messages. */
static void count_nats(natsConnection *nc, natsSubscription *sub, natsMsg *m,
		       void *ctx)
{
	(void)nc;
	(void)sub;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	natsMsg_Destroy(m);
}

Test(remote_send, every_message_runs_once_on_the_other_engine)
{
	static _Atomic uint64_t nats_msgs;
	natsConnection *watch;
	natsSubscription *sub;
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct t_ledger ledger;
	struct t_ledger_server ls = { .ledger = &ledger };
	struct sy_accounting acc;
	uint64_t n = 3000;
	uint32_t route;
	struct sy_nats_stats st;

	t_ledger_init(&ledger, n);
	serve(b, "sy.work", t_ledger_handler, &ls);
	cr_assert_eq(natsConnection_ConnectTo(&watch, natsd.url), NATS_OK);
	cr_assert_eq(natsConnection_Subscribe(&sub, watch, "sy.work",
					      count_nats, &nats_msgs), NATS_OK);
	cr_assert_eq(natsSubscription_SetPendingLimits(sub, -1, -1), NATS_OK);
	cr_assert_eq(natsConnection_Flush(watch), NATS_OK);
	route = remote_route(a, "sy.work", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	send_ids(a, route, 0, n);
	/* Stop waits for every acknowledgement. */
	t_quiet_stop(a);
	/* Messages sent while others were in flight left in batches. */
	cr_assert_eq(natsConnection_Flush(watch), NATS_OK);
	cr_expect_lt(atomic_load(&nats_msgs), n / 2,
		     "%llu NATS messages for %llu engine messages",
		     (unsigned long long)atomic_load(&nats_msgs),
		     (unsigned long long)n);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(watch);
	t_expect_accounting(a, n, n, 0);
	st = nats_stats(a);
	cr_expect_eq(st.published, n);
	cr_expect_eq(st.acked, n);
	cr_expect_eq(st.in_flight, 0);
	cr_expect_eq(st.ack_latency.count, n);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	cr_expect_eq(atomic_load(&ledger.wrong), 0);
	cr_assert_eq(sy_engine_stop(b), 0);
	cr_assert_eq(sy_engine_accounting(b, &acc), 0);
	cr_expect_eq(acc.accepted, n);
	cr_expect_eq(acc.delivered, n);
	cr_expect_eq(nats_stats(b).served, n);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
	t_ledger_fini(&ledger);
}

/* Answers with the payload doubled; checks the key crossed over. */
static int doubler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	uint64_t v = t_msg_value(msg) * 2;
	sy_msg *r = sy_msg_alloc(eng, sizeof(v));

	(void)ctx;
	if (!r || sy_msg_key(msg) != 77)
		return -EINVAL;
	memcpy(sy_msg_data(r), &v, sizeof(v));
	if (sy_msg_reply(msg, r)) {
		sy_msg_free(r);
		return -EIO;
	}
	return 0;
}

Test(remote_send, a_call_gets_the_far_handlers_reply)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	uint32_t route;

	serve(b, "sy.double", doubler, NULL);
	route = remote_route(a, "sy.double", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	for (uint64_t i = 1; i <= 50; i++) {
		sy_msg *req = t_msg(a, i), *reply = NULL;
		int rc;

		sy_msg_set_key(req, 77);
		rc = sy_msg_call(a, route, req, &reply, 5000000000ull);
		cr_assert_eq(rc, 0, "call %llu: %s", (unsigned long long)i,
			     sy_strerror(rc));
		cr_expect_eq(t_msg_value(reply), 2 * i);
		cr_expect_eq(sy_msg_tag(reply), i);
		sy_msg_free(reply);
	}
	t_quiet_stop(a);
	t_expect_accounting(a, 50, 50, 0);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}

static void expect_all_remote(sy_engine *eng, uint64_t n, unsigned attempts)
{
	struct t_letters l;

	t_drain_letters(eng, &l);
	cr_expect_eq(l.n, n);
	cr_expect_eq(l.by_reason[SY_DL_REMOTE], n);
	cr_expect_eq(l.by_attempts[attempts], n, "attempts %u", attempts);
}

TestSuite(remote_failure, .init = start_natsd, .fini = stop_natsd);

Test(remote_failure, no_responders_are_retried_then_dead_lettered)
{
	sy_engine *a = engine_on(natsd.url);
	struct sy_route_opts ro = { .max_attempts = 3,
				    .retry_backoff_ns = 1000000,
				    .retry_budget_min = 1000 };
	uint32_t route = remote_route(a, "sy.nobody", ro, NULL, NULL);

	send_ids(a, route, 0, 20);
	t_quiet_stop(a);
	t_expect_accounting(a, 20, 0, 20);
	cr_expect_eq(nats_stats(a).no_responders, 60);
	expect_all_remote(a, 20, 3);
	sy_engine_destroy(a);
}

static int refuse(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	return -EPERM;
}

Test(remote_failure, a_failing_far_handler_fails_the_run_here)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct sy_route_opts ro = { .max_attempts = 2,
				    .retry_backoff_ns = 1000000 };
	_Atomic uint64_t runs = 0;
	struct sy_accounting acc;
	uint32_t route;

	serve(b, "sy.refuse", refuse, &runs);
	route = remote_route(a, "sy.refuse", ro, NULL, NULL);
	send_ids(a, route, 0, 10);
	t_quiet_stop(a);
	t_expect_accounting(a, 10, 0, 10);
	cr_expect_eq(nats_stats(a).nacked, 20);
	expect_all_remote(a, 10, 2);
	/* On B each failed run ended there: nothing retried or
	 * dead-lettered twice. */
	cr_assert_eq(sy_engine_stop(b), 0);
	cr_assert_eq(sy_engine_accounting(b, &acc), 0);
	cr_expect_eq(atomic_load(&runs), 20);
	cr_expect_eq(acc.accepted, 20);
	cr_expect_eq(acc.failed_kept, 20);
	cr_expect_eq(acc.dead_lettered, 0);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}

Test(remote_failure, remote_failures_open_the_breaker)
{
	sy_engine *a = engine_on(natsd.url);
	struct sy_breaker_opts bo = { .consecutive_failures = 3,
				      .open_ns = 60000000000ull };
	struct sy_remote_opts opts = { .breaker = &bo };
	struct sy_route_opts ro = { .dead_letter_unreachable = true };
	enum sy_breaker_state state;
	uint32_t server, route = remote_route(a, "sy.nobody", ro, &opts,
					      &server);
	struct sy_accounting acc;

	send_ids(a, route, 0, 3);
	cr_assert(t_wait_dead_letters(a, 3));
	cr_assert_eq(sy_breaker_state(a, server, &state), 0);
	cr_expect_eq(state, SY_BREAKER_OPEN);
	/* Open: the next ones find no server and are dead-lettered at once. */
	send_ids(a, route, 3, 5);
	t_quiet_stop(a);
	cr_assert_eq(sy_engine_accounting(a, &acc), 0);
	cr_expect_eq(acc.dead_lettered_by[SY_DL_REMOTE], 3);
	cr_expect_eq(acc.dead_lettered_by[SY_DL_CIRCUIT_OPEN], 5);
	cr_expect_eq(nats_stats(a).published, 3);
	sy_engine_destroy(a);
}

static int sleepy(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	t_sleep_us(300000);
	return 0;
}

Test(remote_failure, no_ack_in_time_is_a_timeout)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct sy_remote_opts opts = { .ack_timeout_ns = 50000000 };
	uint32_t route;

	serve(b, "sy.sleepy", sleepy, NULL);
	route = remote_route(a, "sy.sleepy", (struct sy_route_opts){ 0 },
			     &opts, NULL);
	send_ids(a, route, 0, 2);
	t_quiet_stop(a);
	t_expect_accounting(a, 2, 0, 2);
	cr_expect_eq(nats_stats(a).timeouts, 2);
	expect_all_remote(a, 2, 1);
	sy_engine_destroy(a);
	/* B ran the first one (or both) although A gave up: at least once. */
	sy_engine_destroy(b);
}

TestSuite(remote_limits, .fini = stop_natsd);

Test(remote_limits, a_message_above_max_payload_is_dead_lettered_whole)
{
	sy_engine *a, *b;
	struct t_ledger ledger;
	struct t_ledger_server ls = { .ledger = &ledger };
	uint32_t route;
	sy_msg *big;
	long size;

	cr_assert_eq(t_natsd_start(&natsd, "max_payload: 1024"), 0);
	a = engine_on(natsd.url);
	b = engine_on(natsd.url);
	t_ledger_init(&ledger, 8);
	serve(b, "sy.small", t_ledger_handler, &ls);
	route = remote_route(a, "sy.small", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	big = sy_msg_alloc(a, 4096);
	cr_assert_not_null(big);
	memset(sy_msg_data(big), 0xab, 4096);
	cr_assert_eq(sy_msg_send(a, route, big), 0);
	send_ids(a, route, 1, 1);
	t_quiet_stop(a);
	t_expect_accounting(a, 2, 1, 1);
	cr_expect_eq(nats_stats(a).too_large, 1);
	{
		struct sy_dead_letter dl;

		cr_assert_eq(sy_dlq_list(a, NULL, &dl, 1), 1);
		cr_expect_eq(dl.reason, SY_DL_REMOTE);
		size = sy_dlq_peek(a, dl.id, NULL, 0);
		cr_expect_eq(size, 4096, "kept whole: %ld bytes", size);
	}
	sy_engine_destroy(a);
	sy_engine_destroy(b);
	t_ledger_fini(&ledger);
}

TestSuite(remote_export, .init = start_natsd, .fini = stop_natsd);

Test(remote_export, a_malformed_message_is_counted_and_dropped)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct t_ledger ledger;
	struct t_ledger_server ls = { .ledger = &ledger };
	natsConnection *nc;
	uint32_t route;

	t_ledger_init(&ledger, 10);
	serve(b, "sy.work", t_ledger_handler, &ls);
	cr_assert_eq(natsConnection_ConnectTo(&nc, natsd.url), NATS_OK);
	/* No headers and no reply subject; then headers but no reply. */
	cr_assert_eq(natsConnection_PublishString(nc, "sy.work", "junk"), NATS_OK);
	{
		natsMsg *m;

		cr_assert_eq(natsMsg_Create(&m, "sy.work", "x.y", "j", 1), NATS_OK);
		natsMsgHeader_Set(m, "Sy-Deadline-In", "not a number");
		cr_assert_eq(natsConnection_PublishMsg(nc, m), NATS_OK);
		natsMsg_Destroy(m);
		/* A batch of two whose body holds less than one record. */
		cr_assert_eq(natsMsg_Create(&m, "sy.work", "x.y", "short", 5),
			     NATS_OK);
		natsMsgHeader_Set(m, "Sy-Batch", "2");
		natsMsgHeader_Set(m, "Sy-Id", "0-1");
		cr_assert_eq(natsConnection_PublishMsg(nc, m), NATS_OK);
		natsMsg_Destroy(m);
	}
	cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
	natsConnection_Destroy(nc);
	/* B keeps serving. */
	route = remote_route(a, "sy.work", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	send_ids(a, route, 0, 10);
	t_quiet_stop(a);
	t_expect_accounting(a, 10, 10, 0);
	cr_assert_eq(sy_engine_stop(b), 0);
	cr_expect_eq(nats_stats(b).malformed, 3);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
	t_ledger_fini(&ledger);
}

Test(remote_export, a_queue_group_shares_the_messages)
{
	enum { ROUNDS = 40 };
	sy_engine *a = engine_on(natsd.url);
	sy_engine *b1 = engine_on(natsd.url), *b2 = engine_on(natsd.url);
	struct t_ledger ledger;
	struct t_ledger_server s1 = { .ledger = &ledger }, s2 = { .ledger = &ledger };
	uint64_t n = 2000;
	uint32_t route;

	t_ledger_init(&ledger, n);
	serve(b1, "sy.shared", t_ledger_handler, &s1);
	serve(b2, "sy.shared", t_ledger_handler, &s2);
	route = remote_route(a, "sy.shared", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	/* A's worker batches what it sends at once into few NATS messages,
	 * and the group takes each whole: rounds that each wait for their
	 * runs make ROUNDS messages at least, so that both members getting
	 * some is all but certain. */
	for (uint64_t k = 0; k < ROUNDS; k++) {
		uint64_t end = t_now_ms() + T_WAIT_MS, want = (k + 1) * n / ROUNDS;

		send_ids(a, route, k * n / ROUNDS, n / ROUNDS);
		while (atomic_load(&s1.got) + atomic_load(&s2.got) < want) {
			cr_assert_lt(t_now_ms(), end, "round %llu not run",
				     (unsigned long long)k);
			t_sleep_us(100);
		}
	}
	t_quiet_stop(a);
	t_expect_accounting(a, n, n, 0);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	cr_expect_eq(atomic_load(&ledger.wrong), 0);
	cr_expect_gt(atomic_load(&s1.got), 0);
	cr_expect_gt(atomic_load(&s2.got), 0);
	sy_engine_destroy(a);
	sy_engine_destroy(b1);
	sy_engine_destroy(b2);
	t_ledger_fini(&ledger);
}

Test(remote_send, removing_a_remote_server_waits_for_its_messages)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct t_ledger ledger;
	struct t_ledger_server far = { .ledger = &ledger },
			       near = { .ledger = &ledger };
	uint32_t ids[2], route;
	struct sy_route_opts ro = { .servers = ids, .n_servers = 2 };
	uint64_t n = 2000;

	t_ledger_init(&ledger, n);
	serve(b, "sy.work", t_ledger_handler, &far);
	cr_assert_eq(sy_server_add_remote(a, "far", "sy.work", NULL, &ids[0]), 0);
	cr_assert_eq(sy_server_add(a, "near", t_ledger_handler, &near, NULL,
				   &ids[1]), 0);
	cr_assert_eq(sy_route_add(a, "work", &ro, &route), 0);
	send_ids(a, route, 0, n);
	/* Many are published or waiting for the window now. */
	cr_assert_eq(sy_server_remove(a, ids[0]), 0);
	t_quiet_stop(a);
	t_expect_accounting(a, n, n, 0);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	cr_expect_eq(atomic_load(&ledger.wrong), 0);
	cr_expect_gt(atomic_load(&far.got), 0);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
	t_ledger_fini(&ledger);
}

/* A local server that keeps its worker busy: each run sends the next
 * message to its own route until told to stop. */
struct busy {
	uint32_t route;
	_Atomic bool stop;
	_Atomic uint64_t runs;
};

static int keep_busy(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct busy *b = ctx;
	sy_msg *next;

	(void)msg;
	atomic_fetch_add(&b->runs, 1);
	if (atomic_load(&b->stop) || !(next = sy_msg_alloc(eng, 8)))
		return 0;
	if (sy_msg_send(eng, b->route, next))
		sy_msg_free(next);
	return 0;
}

/* A worker that never finds its rings empty still publishes the batch it
 * holds (docs/remote.md, "Batches"): the batch goes once it has been open
 * 100 us, not only when the worker has nothing else to do. */
Test(remote_send, a_worker_that_never_idles_still_publishes_its_batches)
{
	static struct t_server far;
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	struct busy busy = { .stop = false };
	uint64_t n = 200, runs;
	sy_msg *first;
	uint32_t route;

	serve(b, "sy.busy", t_server_handler, &far);
	route = remote_route(a, "sy.busy", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	busy.route = t_direct(a, "busy", keep_busy, &busy, 0, NULL);
	first = sy_msg_alloc(a, 8);
	cr_assert_eq(sy_msg_send(a, busy.route, first), 0);
	cr_assert(t_wait_u64(&busy.runs, 1000, 10000), "the busy loop runs");
	/* The first goes alone; the rest, sent while it is in flight, join
	 * a batch far below half the window. */
	send_ids(a, route, 0, n);
	cr_expect(t_wait_u64(&far.handled, n, 20000),
		  "%llu of %llu ran on B while A's worker stayed busy",
		  (unsigned long long)atomic_load(&far.handled),
		  (unsigned long long)n);
	runs = atomic_load(&busy.runs);
	cr_expect(t_wait_u64(&busy.runs, runs + 1, 10000),
		  "the worker was still busy");
	atomic_store(&busy.stop, true);
	t_quiet_stop(a);
	cr_expect_eq(nats_stats(a).acked, n);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}

static int succeed(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

/* @p eng's latest snapshot in format @p fmt (the caller frees it). */
static char *exported(sy_engine *eng, enum sy_format fmt)
{
	sy_snapshot *snap;
	char *buf = NULL;

	cr_assert_eq(sy_metrics_refresh(eng), 0, "%s", sy_last_error());
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap);
	cr_assert_eq(sy_snapshot_format(snap, fmt, &buf, NULL), 0);
	sy_snapshot_release(snap);
	return buf;
}

/* The line of @p text that contains @p what ends with @p tail. */
static bool line_ends(const char *text, const char *what, const char *tail)
{
	const char *at = strstr(text, what), *end;

	if (!at)
		return false;
	end = strchr(at, '\n');
	end = end ? end : at + strlen(at);
	if (end > at && end[-1] == '\r')
		end--;
	return (size_t)(end - at) >= strlen(tail) &&
	       strncmp(end - strlen(tail), tail, strlen(tail)) == 0;
}

TestSuite(remote_metrics, .init = start_natsd, .fini = stop_natsd);

Test(remote_metrics, every_export_carries_the_nats_counters)
{
	sy_engine *a = engine_on(natsd.url), *b = engine_on(natsd.url);
	sy_engine *plain = t_engine(1, SY_IDLE_SLEEP);
	struct sy_nats_stats st;
	sy_snapshot *snap;
	uint32_t route;
	char *text, path[64];
	FILE *f;

	serve(b, "sy.metrics", succeed, NULL);
	route = remote_route(a, "sy.metrics", (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	send_ids(a, route, 0, 50);
	for (uint64_t t0 = t_now_ms(); t_now_ms() - t0 < 10000 &&
	     nats_stats(a).acked < 50;)
		t_sleep_us(1000);
	cr_assert_eq(sy_metrics_refresh(a), 0);
	snap = sy_metrics_snapshot(a);
	cr_assert_not_null(snap);
	cr_assert_eq(sy_snapshot_nats(snap, &st), 0);
	sy_snapshot_release(snap);
	cr_expect_eq(st.state, SY_NATS_CONNECTED);
	cr_expect_eq(st.published, 50);
	cr_expect_eq(st.acked, 50);
	cr_expect_eq(st.in_flight, 0);
	cr_expect_eq(st.ack_latency.count, 50);

	text = exported(a, SY_FORMAT_JSON);
	cr_expect(strstr(text, "\"nats\":{\"state\":\"connected\""), "%s", text);
	cr_expect(strstr(text, "\"acked\":50,"), "%s", text);
	free(text);
	text = exported(a, SY_FORMAT_CSV);
	cr_expect(line_ends(text, ",nats,acked,", ",50"), "%s", text);
	cr_expect(line_ends(text, ",nats,state_connected,", ",1"), "%s", text);
	cr_expect(strstr(text, ",hist,nats_ack_latency,"), "%s", text);
	free(text);
	text = exported(a, SY_FORMAT_PROMETHEUS);
	cr_expect(strstr(text, "\nswitchyard_nats_acked_total 50\n"), "%s", text);
	cr_expect(strstr(text, "\nswitchyard_nats_state{state=\"connected\"} 1\n"));
	cr_expect(strstr(text, "\nswitchyard_nats_ack_latency_seconds_count 50\n"));
	snprintf(path, sizeof(path), "/tmp/sy-nats-%d.prom", (int)getpid());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	if (system("command -v promtool >/dev/null") == 0) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
		cr_expect_eq(system(cmd), 0, "%s", cmd);
	}
	unlink(path);
	free(text);
	text = exported(a, SY_FORMAT_ERLANG);
	cr_expect(strstr(text, "nats => #{state => connected"), "%s", text);
	cr_expect(strstr(text, "acked => 50,"), "%s", text);
	free(text);
	text = exported(a, SY_FORMAT_TABLE);
	cr_expect(line_ends(text, "NATS", "connected"), "%s", text);
	cr_expect(line_ends(text, "acked", " 50"), "%s", text);
	free(text);
	/* An engine without NATS exports no NATS section. */
	cr_assert_not_null(plain);
	cr_assert_eq(sy_engine_start(plain), 0);
	text = exported(plain, SY_FORMAT_JSON);
	cr_expect_null(strstr(text, "\"nats\""));
	free(text);
	text = exported(plain, SY_FORMAT_PROMETHEUS);
	cr_expect_null(strstr(text, "switchyard_nats_"));
	free(text);
	sy_engine_destroy(plain);
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}

/* ---- TLS and credentials ---- */

static char tls_dir[64];

/* A CA and a server certificate for 127.0.0.1, made with openssl in a
 * fresh directory. */
static void make_certs(void)
{
	char cmd[1024];

	snprintf(tls_dir, sizeof(tls_dir), "/tmp/sy-tls-%d-XXXXXX",
		 (int)getpid());
	cr_assert_not_null(mkdtemp(tls_dir));
	snprintf(cmd, sizeof(cmd),
		 "cd %s && k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
		 "openssl req -x509 $k -keyout ca.key -out ca.pem -days 2 "
		 "-subj /CN=sy-test-ca && "
		 "openssl req $k -keyout server.key -out server.csr "
		 "-subj /CN=127.0.0.1 && "
		 "echo subjectAltName=IP:127.0.0.1 > ext && "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		 "-CAcreateserial -out server.pem -days 2 -extfile ext",
		 tls_dir);
	cr_assert_eq(system(cmd), 0, "openssl could not make the certificates");
}

static void remove_certs(void)
{
	char cmd[128];

	if (natsd.pid > 0)
		t_natsd_stop(&natsd);
	if (tls_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
		cr_expect_eq(system(cmd), 0);
	}
}

/* An engine connected with @p no to natsd, or the error code. */
static int connect_with(struct sy_nats_opts no, sy_engine **out)
{
	const char *urls[1] = { natsd.url };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	int rc;

	cr_assert_not_null(eng);
	cr_assert_eq(sy_engine_start(eng), 0);
	no.urls = urls;
	no.n_urls = 1;
	no.connect_timeout_ns = 2000000000;
	no.max_reconnect = 1;
	rc = sy_nats_connect(eng, &no);
	if (rc)
		sy_engine_destroy(eng);
	else
		*out = eng;
	return rc;
}

/* 20 messages from @p from to @p to over @p subject, each run once. */
static void send_across(sy_engine *from, sy_engine *to, const char *subject)
{
	static struct t_server got[2];
	struct t_server *s = &got[subject[3] == 'b'];
	uint32_t route;

	serve(to, subject, t_server_handler, s);
	route = remote_route(from, subject, (struct sy_route_opts){ 0 }, NULL,
			     NULL);
	send_ids(from, route, 0, 20);
	cr_assert(t_wait_u64(&s->delivered, 20, 10000), "%s: %llu delivered",
		  subject, (unsigned long long)atomic_load(&s->delivered));
	t_expect_each_once(s, 0, 20);
}

TestSuite(remote_auth, .init = make_certs, .fini = remove_certs);

Test(remote_auth, tls_with_a_password_carries_messages_both_ways)
{
	char conf[512], ca[96];
	struct sy_nats_opts no = { .tls = true, .ca_file = ca, .user = "sy",
				   .password = "s3cret" };
	sy_engine *a, *b, *c = NULL;

	snprintf(conf, sizeof(conf),
		 "tls { cert_file: \"%s/server.pem\", key_file: "
		 "\"%s/server.key\", timeout: 2 }\n"
		 "authorization { user: sy, password: s3cret }",
		 tls_dir, tls_dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", tls_dir);
	cr_assert_eq(t_natsd_start(&natsd, conf), 0);
	cr_assert_eq(connect_with(no, &a), 0, "%s", sy_last_error());
	cr_assert_eq(connect_with(no, &b), 0, "%s", sy_last_error());
	send_across(a, b, "sy.ab");
	send_across(b, a, "sy.ba");
	/* A wrong password, and no CA to check the server's certificate
	 * (the client still goes TLS, as the server requires it): refused,
	 * and the error says why. */
	no.password = "wrong";
	cr_expect_eq(connect_with(no, &c), -ECONNREFUSED);
	cr_expect(strstr(sy_last_error(), "uthorization"), "%s",
		  sy_last_error());
	no.password = "s3cret";
	no.tls = false;
	no.ca_file = NULL;
	cr_expect_eq(connect_with(no, &c), -ECONNREFUSED);
	cr_expect(strstr(sy_last_error(), "SSL"), "%s", sy_last_error());
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}

Test(remote_auth, a_token_is_checked)
{
	struct sy_nats_opts no = { .token = "t0k3n" };
	sy_engine *a, *b, *c = NULL;

	cr_assert_eq(t_natsd_start(&natsd, "authorization { token: t0k3n }"), 0);
	cr_assert_eq(connect_with(no, &a), 0, "%s", sy_last_error());
	cr_assert_eq(connect_with(no, &b), 0, "%s", sy_last_error());
	send_across(a, b, "sy.ab");
	no.token = "wrong";
	cr_expect_eq(connect_with(no, &c), -ECONNREFUSED);
	cr_expect(strstr(sy_last_error(), "uthorization"), "%s",
		  sy_last_error());
	sy_engine_destroy(a);
	sy_engine_destroy(b);
}
