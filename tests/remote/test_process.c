/*
 * Two engines in two processes over NATS, and a three-node NATS cluster:
 * the far process killed with SIGKILL mid-stream, a NATS node killed
 * mid-stream. Whatever dies, every message accepted on A ends on A as
 * delivered (acknowledged), dead-lettered or evicted, exactly; delivery is
 * at least once, and the duplicates are counted.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/common.h"
#include "tests/fixture.h"
#include "tests/remote/natsd.h"

#define N_MSGS 6000u

static struct t_natsd natsd;

static void start_natsd(void)
{
	cr_assert_eq(t_natsd_start(&natsd, NULL), 0, "nats-server did not start");
}

static void stop_natsd(void)
{
	t_natsd_stop(&natsd);
}

static sy_engine *engine_on(const char *const *urls, unsigned n)
{
	struct sy_nats_opts no = { .urls = urls, .n_urls = n,
				   .reconnect_wait_ns = 20000000 };
	struct sy_config cfg;
	sy_engine *eng;

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.max_dead_letters = 2 * N_MSGS; /* none evicted: all listed */
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(sy_nats_connect(eng, &no), 0, "%s", sy_last_error());
	return eng;
}

/* A's route to "sy.work": retries enough to ride out a restart. */
static uint32_t work_route(sy_engine *a)
{
	struct sy_remote_opts opts = { .ack_timeout_ns = 250000000 };
	struct sy_route_opts ro = {
		.max_attempts = 12,
		.retry_backoff_ns = 20000000,
		.retry_backoff_max_ns = 200000000,
		.retry_budget = 1000,
		.retry_budget_min = 100000,
	};
	uint32_t sid, rid;

	cr_assert_eq(sy_server_add_remote(a, "far", "sy.work", &opts, &sid), 0,
		     "%s", sy_last_error());
	ro.servers = &sid;
	ro.n_servers = 1;
	cr_assert_eq(sy_route_add(a, "work", &ro, &rid), 0);
	return rid;
}

/* What the peers' log and A's dead letter queue say about ids 0..n. */
struct outcome {
	uint32_t runs[N_MSGS];      /* handler runs on a peer, by id */
	uint8_t dead[N_MSGS];       /* dead-lettered on A */
	uint64_t records, distinct, duplicates, dead_letters, ran_and_dead;
};

static void take_dead(sy_engine *eng, const struct sy_dead_letter *dl,
		      sy_msg *msg, void *ctx)
{
	struct outcome *o = ctx;
	uint64_t id = t_msg_value(msg);

	(void)eng;
	(void)dl;
	cr_assert_lt(id, N_MSGS);
	cr_expect_eq(o->dead[id], 0, "id %llu dead-lettered twice",
		     (unsigned long long)id);
	o->dead[id] = 1;
	o->dead_letters++;
	sy_msg_free(msg);
}

static void read_log(const char *path, struct outcome *o)
{
	FILE *f = fopen(path, "rb");
	uint64_t id;

	cr_assert_not_null(f);
	while (fread(&id, sizeof(id), 1, f) == 1) {
		cr_assert_lt(id, N_MSGS, "a record out of range");
		o->records++;
		o->runs[id]++;
	}
	fclose(f);
	for (unsigned i = 0; i < N_MSGS; i++) {
		o->distinct += o->runs[i] != 0;
		o->duplicates += o->runs[i] > 1 ? o->runs[i] - 1 : 0;
	}
}

/*
 * After A stopped: accepted = delivered + dead-lettered + evicted exactly;
 * every id ran on a peer or is in A's queue; every acknowledged message
 * ran on a peer (distinct ids that ran >= delivered).
 */
static void expect_nothing_lost(sy_engine *a, const char *log,
				struct outcome *o)
{
	struct sy_accounting acc;
	struct sy_nats_stats st;

	cr_assert_eq(sy_engine_accounting(a, &acc), 0);
	cr_assert_eq(sy_nats_stats(a, &st), 0);
	cr_expect_eq(acc.accepted, N_MSGS);
	cr_expect_eq(acc.in_flight, 0);
	cr_expect_eq(acc.accepted, acc.delivered + acc.dead_lettered +
		     acc.evicted);
	cr_expect_eq(acc.delivered, st.acked);
	cr_assert_eq(sy_dlq_drain(a, NULL, take_dead, o), (int)acc.dead_lettered);
	read_log(log, o);
	for (unsigned i = 0; i < N_MSGS; i++) {
		cr_expect(o->runs[i] || o->dead[i], "id %u lost", i);
		o->ran_and_dead += o->runs[i] && o->dead[i];
	}
	cr_expect_geq(o->distinct, acc.delivered);
	cr_log_info("accepted %llu: delivered %llu, dead-lettered %llu; "
		    "peer runs %llu (distinct %llu, duplicates %llu), ran but "
		    "dead-lettered %llu, late acks %llu, timeouts %llu, "
		    "no responders %llu, connection failures %llu",
		    (unsigned long long)acc.accepted,
		    (unsigned long long)acc.delivered,
		    (unsigned long long)acc.dead_lettered,
		    (unsigned long long)o->records,
		    (unsigned long long)o->distinct,
		    (unsigned long long)o->duplicates,
		    (unsigned long long)o->ran_and_dead,
		    (unsigned long long)st.late_acks,
		    (unsigned long long)st.timeouts,
		    (unsigned long long)st.no_responders,
		    (unsigned long long)st.conn_failures);
}

static void send_one(sy_engine *a, uint32_t route, uint64_t id)
{
	cr_assert_eq(t_send_retry(a, route, t_msg(a, id), 10000), 0);
}

TestSuite(remote_process, .init = start_natsd, .fini = stop_natsd);

Test(remote_process, a_peer_killed_mid_stream_loses_nothing)
{
	char log[96];
	char *argv[] = { "remote_peer", natsd.url, "sy.work", "q", log, NULL };
	const char *urls[1] = { natsd.url };
	struct t_peer p1, p2;
	static struct outcome o;
	sy_engine *a;
	uint32_t route;

	snprintf(log, sizeof(log), "/tmp/sy-remote-%d.log", (int)getpid());
	unlink(log);
	cr_assert_eq(t_peer_start(&p1, argv), 0, "remote_peer did not start");
	a = engine_on(urls, 1);
	route = work_route(a);
	for (uint64_t i = 0; i < N_MSGS; i++) {
		if (i == N_MSGS / 3)
			t_peer_kill(&p1);   /* mid-stream: some in flight */
		if (i == N_MSGS / 2)
			cr_assert_eq(t_peer_start(&p2, argv), 0);
		send_one(a, route, i);
	}
	t_quiet_stop(a);
	cr_expect_eq(t_peer_stop(&p2), 0, "the peer's clean stop");
	expect_nothing_lost(a, log, &o);
	sy_engine_destroy(a);
	unlink(log);
}

static struct t_natsd nodes[3];

static void stop_nodes(void)
{
	for (unsigned i = 0; i < 3; i++)
		if (nodes[i].pid > 0)
			t_natsd_stop(&nodes[i]);
}

TestSuite(remote_cluster, .fini = stop_nodes);

Test(remote_cluster, a_node_killed_mid_stream_traffic_continues)
{
	unsigned cports[3] = { t_free_port(), t_free_port(), t_free_port() };
	char log[96];
	char *argv[] = { "remote_peer", NULL, "sy.work", "q", log, NULL };
	const char *urls[3];
	struct t_peer peer;
	static struct outcome o;
	struct sy_nats_stats st;
	sy_engine *a;
	uint32_t route;

	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(t_natsd_start_node(&nodes[i], cports, 3, i), 0);
		urls[i] = nodes[i].url;
	}
	snprintf(log, sizeof(log), "/tmp/sy-remote-cluster-%d.log",
		 (int)getpid());
	unlink(log);
	/* The peer on node 2; A on node 0, falling over to 1 and 2. */
	argv[1] = nodes[2].url;
	cr_assert_eq(t_peer_start(&peer, argv), 0);
	a = engine_on(urls, 3);
	route = work_route(a);
	/* Until the routes between the nodes carry the peer's interest,
	 * node 0 may answer "no responders": retries cover it. */
	for (uint64_t i = 0; i < N_MSGS; i++) {
		if (i == N_MSGS / 2)
			t_natsd_kill(&nodes[0]);
		send_one(a, route, i);
	}
	t_quiet_stop(a);
	cr_assert_eq(sy_nats_stats(a, &st), 0);
	cr_expect_geq(st.reconnects, 1);
	cr_expect_eq(t_peer_stop(&peer), 0);
	expect_nothing_lost(a, log, &o);
	/* Traffic continued: most messages were delivered after the kill. */
	cr_expect_gt(st.acked, N_MSGS / 2);
	sy_engine_destroy(a);
	unlink(log);
}
