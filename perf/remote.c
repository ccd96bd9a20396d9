/*
 * remote (docs/perf.md, docs/remote.md): engine A -> NATS -> engine B
 * beside raw libnats on one nats-server, which the scenario starts on
 * 127.0.0.1 on a free port (tests/remote/natsd.c) and stops. A run's
 * variant has an engine (A and B) or not (two raw connections).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#ifdef SY_HAVE_NATS
#include <nats/nats.h>

#include "tests/remote/natsd.h"

#define MESSAGES 100000u      /* per throughput run, at most */
#define ROUND_TRIPS 5000u     /* per latency run, at most */
#define WINDOW 2048u          /* sent, not yet received (both senders) */
#define TIMEOUT_MS 5000
#define SUBJECT "sy.bench"
#define RTT_BASE "raw-nats-reqrep-p50"

static struct t_natsd natsd;  /* the scenario's, while it runs */

/* [0] sends (engine A), [1] receives (engine B): one or the other pair. */
struct remote_run {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t received;
	natsConnection *nc[2];
	natsSubscription *sub;
	sy_engine *eng[2];
	uint32_t route;
	unsigned size;
	char payload[SY_MSG_MAX_SIZE];
};

/* Relaxed: a count, read by the sender to pace itself; it publishes nothing. */
static uint64_t received(struct remote_run *run, bool add)
{
	if (add)
		atomic_fetch_add_explicit(&run->received, 1,
					  memory_order_relaxed);
	return atomic_load_explicit(&run->received, memory_order_relaxed);
}

/* On B, or on the second connection: count, answer a request. */
static void raw_receive(natsConnection *nc, natsSubscription *sub,
			natsMsg *m, void *arg)
{
	const char *to = natsMsg_GetReply(m);

	(void)sub;
	received(arg, true);
	if (to)
		natsConnection_Publish(nc, to, natsMsg_GetData(m),
				       natsMsg_GetDataLength(m));
	natsMsg_Destroy(m);
}

static int engine_receive(sy_engine *eng, sy_msg *msg, void *arg)
{
	(void)eng;
	received(arg, true);
	return sy_msg_is_request(msg) ? sy_msg_reply(msg, msg) : 0;
}

/* Wait until @p n are received, BENCH_STALL_NS at most without progress. */
static int await_received(struct remote_run *run, uint64_t n,
			  struct backoff *b)
{
	uint64_t seen = received(run, false), now;

	while ((now = received(run, false)) < n) {
		if (now != seen)
			backoff_reset(b);
		seen = now;
		if (backoff_wait(b) < 0)
			return bench_fail(-ETIMEDOUT, "remote: %ju of %ju "
					  "messages received, no progress",
					  (uintmax_t)now, (uintmax_t)n);
	}
	return now == n ? 0 : -EPROTO;
}

static int raw_open(struct remote_run *run)
{
	natsStatus s = NATS_OK;

	for (unsigned i = 0; s == NATS_OK && i < 2; i++)
		s = natsConnection_ConnectTo(&run->nc[i], natsd.url);
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&run->sub, run->nc[1], SUBJECT,
					     raw_receive, run);
	if (s == NATS_OK) /* no slow consumer: the window bounds it */
		s = natsSubscription_SetPendingLimits(run->sub, -1, -1);
	if (s == NATS_OK)
		s = natsConnection_Flush(run->nc[1]);
	return s == NATS_OK ? 0 : bench_fail(-EIO, "remote: connecting: %s",
					     natsStatus_GetText(s));
}

/* A's route over remote server "far"; B exports a route to "near". */
static int engine_pair_open(struct remote_run *run)
{
	const char *urls[1] = { natsd.url }, *call = "sy_engine_create";
	struct sy_nats_opts no = { .urls = urls, .n_urls = 1 };
	uint32_t sid[2], rid[2];
	struct sy_config cfg;
	int rc = 0;

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE; /* more threads than CPUs: the scheduler's */
	for (unsigned i = 0; !rc && i < 2; i++) {
		struct sy_route_opts ro = { .servers = &sid[i],
					    .n_servers = 1 };

		rc = sy_engine_create(&cfg, &run->eng[i]);
		if (!rc && (call = "sy_engine_start"))
			rc = sy_engine_start(run->eng[i]);
		if (!rc && (call = "sy_nats_connect"))
			rc = sy_nats_connect(run->eng[i], &no);
		if (!rc && (call = "sy_server_add"))
			rc = i ? sy_server_add(run->eng[1], "near",
					       engine_receive, run, NULL,
					       &sid[1])
			       : sy_server_add_remote(run->eng[0], "far",
						      SUBJECT, NULL, &sid[0]);
		if (!rc && (call = "sy_route_add"))
			rc = sy_route_add(run->eng[i], "bench", &ro, &rid[i]);
	}
	run->route = rid[0];
	/* It returns once B's subscription is on the server. */
	if (!rc && (call = "sy_route_export"))
		rc = sy_route_export(run->eng[1], rid[1], SUBJECT, "q");
	if (!rc && (call = "sy_producer_attach"))
		rc = sy_producer_attach(run->eng[0]);
	return rc ? bench_fail(rc, "remote: %s: %s", call, sy_last_error())
		  : 0;
}

/* Message @p i, no more than WINDOW ahead of the receiver. */
static int send_one(struct remote_run *run, uint64_t i, struct backoff *b)
{
	sy_msg *msg;
	int rc;

	while (i - received(run, false) >= WINDOW)
		if (backoff_wait(b) < 0)
			return await_received(run, i, b);
	backoff_reset(b);
	if (!run->eng[0])
		return natsConnection_Publish(run->nc[0], SUBJECT, run->payload,
					      (int)run->size) ? -EIO : 0;
	msg = sy_msg_alloc(run->eng[0], run->size);
	if (!msg)
		return -ENOMEM;
	while (bench_send_retryable(rc = sy_msg_send(run->eng[0], run->route,
						     msg)) &&
	       backoff_wait(b) == 0)
		continue;
	if (rc)
		sy_msg_free(msg);
	return rc;
}

/* Round trip @p i: natsConnection_Request(), or sy_msg_call() through A. */
static int call_one(struct remote_run *run)
{
	natsMsg *reply = NULL;
	sy_msg *msg;
	int rc;

	if (!run->eng[0]) {
		rc = natsConnection_Request(&reply, run->nc[0], SUBJECT,
					    run->payload, (int)run->size,
					    TIMEOUT_MS) ? -EIO : 0;
		natsMsg_Destroy(reply);
		return rc;
	}
	msg = sy_msg_alloc(run->eng[0], run->size);
	rc = msg ? sy_msg_call(run->eng[0], run->route, msg, &msg,
			       TIMEOUT_MS * 1000000ull) : -ENOMEM;
	sy_msg_free(msg);
	return rc;
}

/* Once A is quiet: each message delivered or dead-lettered, none lost. */
static int engine_settle(struct remote_run *run)
{
	struct sy_accounting a;

	sy_producer_detach(run->eng[0]);
	t_quiet_stop(run->eng[0]);
	sy_engine_accounting(run->eng[0], &a);
	if (!a.in_flight && a.accepted == a.delivered + a.dead_lettered)
		return 0;
	return bench_fail(-EPROTO, "remote: engine A: accepted %ju, delivered "
			  "%ju, dead-lettered %ju", (uintmax_t)a.accepted,
			  (uintmax_t)a.delivered, (uintmax_t)a.dead_lettered);
}

/* @p n received (timed: the first send to the last receive), or with
 * @p samples @p n round trips, each timed. */
static int remote_measure(const struct bench_ctx *ctx, uint64_t n,
			  uint64_t *samples, double *secs)
{
	struct remote_run *run = aligned_alloc(BENCH_CACHELINE, sizeof(*run));
	struct backoff b = { .limit = 0 };
	uint64_t start, t0;
	int rc = -ENOMEM;

	if (run) {
		memset(run, 0, sizeof(*run));
		atomic_init(&run->received, 0);
		run->size = ctx->payload;
		rc = ctx->engine ? engine_pair_open(run) : raw_open(run);
	}
	start = t0 = bench_now_ns();
	for (uint64_t i = 0; !rc && i < n; i++) {
		rc = samples ? call_one(run) : send_one(run, i, &b);
		if (samples)
			t0 += (samples[i] = bench_now_ns() - t0);
	}
	if (!rc && !samples)
		rc = await_received(run, n, &b);
	*secs = (double)((samples ? t0 : bench_now_ns()) - start) / 1e9;
	if (!rc && ctx->engine)
		rc = engine_settle(run); /* detaches */
	else if (run && run->eng[0])
		sy_producer_detach(run->eng[0]);
	natsSubscription_Destroy(run ? run->sub : NULL);
	for (unsigned i = 0; run && i < 2; i++) {
		natsConnection_Destroy(run->nc[i]);
		if (run->eng[i])
			sy_engine_destroy(run->eng[i]);
	}
	free(run);
	return rc;
}

int scenario_remote(const struct bench_ctx *ctx, struct report *rep)
{
	struct variant v[] = {
		{ "raw-nats-pubsub", *ctx, remote_measure, MESSAGES, false },
		{ "engine-remote", *ctx, remote_measure, MESSAGES, true },
		{ "raw-nats-reqrep", *ctx, remote_measure, ROUND_TRIPS, false },
		{ "engine-remote-rtt", *ctx, remote_measure, ROUND_TRIPS, true },
	};
	double tp = 0, p50 = 0;
	int first, second = -1;

	if (!bench_have("\"${SY_NATS_SERVER:-nats-server}\"")) {
		report_add_note(rep, "remote: skipped, nats-server not found "
				"(on PATH, or SY_NATS_SERVER)");
		return 0;
	}
	if (t_natsd_start(&natsd, NULL))
		return bench_fail(-EIO, "remote: nats-server did not start");
	for (unsigned i = 0; i < ARRAY_SIZE(v); i++) {
		v[i].n = ctx->messages < v[i].n ? ctx->messages : v[i].n;
		v[i].ctx.policy = "direct";
		v[i].ctx.producers = v[i].ctx.workers = 1;
		v[i].ctx.engine = v[i].engine ? ctx->engine : NULL;
	}
	first = bench_measure(ctx, rep, "remote", v, 2, false, NULL);
	if (first >= 0)
		second = bench_measure(ctx, rep, "remote-rtt", v + 2, 2, true,
				       NULL);
	t_natsd_stop(&natsd);
	if (second < 0)
		return first < 0 ? first : second;
	p50 = (double)rep->rows[second + 1].latency.p50 /
	      (double)rep->rows[second].latency.p50;
	report_add_ratio(&rep->rows[second + 1], RTT_BASE, p50);
	report_ratio_of(&rep->rows[first + 1], v[0].name, &tp);
	rep->rows[first].detail = "nats-server on 127.0.0.1; at most 2048 "
		"sent, not yet received; A's accounting exact each run";
	rep->rows[second].detail = "vs " RTT_BASE ": p50 / raw-nats-reqrep's";
	report_add_note(rep, "remote: engine-remote %.2f x raw-nats-pubsub "
			"(target >= 0.80: %s); engine-remote-rtt p50 %.2f x "
			"raw-nats-reqrep's (target <= 1.20: %s)", tp,
			tp >= 0.8 ? "met" : "MISSED", p50,
			p50 <= 1.2 ? "met" : "MISSED");
	return 0;
}
#else
int scenario_remote(const struct bench_ctx *ctx, struct report *rep)
{
	(void)ctx;
	report_add_note(rep, "remote: skipped, not built in (no libnats)");
	return 0;
}
#endif /* SY_HAVE_NATS */
