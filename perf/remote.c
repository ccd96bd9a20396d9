/*
 * remote (docs/perf.md, docs/remote.md): raw libnats beside engine A ->
 * NATS -> engine B, on one nats-server that the scenario starts on
 * 127.0.0.1 on a free port (tests/remote/natsd.c) and stops. The engine
 * rows are engine-single's and engine-rtt's runs with A's one server on B.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#ifdef SY_HAVE_NATS
#include <nats/nats.h>

#include "tests/remote/natsd.h"

#define MESSAGES 100000u      /* per throughput run, at most */
#define ROUND_TRIPS 5000u     /* per latency run, at most */
#define WINDOW 2048u          /* a sender waits for its receiver after each */
#define TIMEOUT_MS 5000
#define SUBJECT "sy.bench"
#define RTT_BASE "raw-nats-reqrep-p50"

static struct t_natsd natsd;  /* the scenario's, while it runs */

/* Two raw connections: [0] sends, [1] receives (and answers). */
struct raw_run {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t received;
	natsConnection *nc[2];
	natsSubscription *sub;
	char payload[SY_MSG_MAX_SIZE];
};

/* Count (relaxed: the sender paces itself by it, it publishes nothing);
 * answer a request. */
static void raw_receive(natsConnection *nc, natsSubscription *sub,
			natsMsg *m, void *arg)
{
	struct raw_run *run = arg;
	const char *to = natsMsg_GetReply(m);

	(void)sub;
	atomic_fetch_add_explicit(&run->received, 1, memory_order_relaxed);
	if (to)
		natsConnection_Publish(nc, to, natsMsg_GetData(m),
				       natsMsg_GetDataLength(m));
	natsMsg_Destroy(m);
}

/* Wait until the receiver is at @p n (BENCH_STALL_NS at most without
 * progress); @return how far it is. */
static uint64_t raw_await(struct raw_run *run, uint64_t n, struct backoff *b)
{
	uint64_t seen = 0, now;

	while ((now = atomic_load_explicit(&run->received,
					   memory_order_relaxed)) < n) {
		if (now != seen)
			backoff_reset(b);
		seen = now;
		if (backoff_wait(b) < 0)
			break;
	}
	backoff_reset(b);
	return now;
}

/* raw-nats-pubsub: @p n received; with @p samples, raw-nats-reqrep. */
static int raw_measure(const struct bench_ctx *ctx, uint64_t n,
		       uint64_t *samples, double *secs)
{
	struct raw_run *run = aligned_alloc(BENCH_CACHELINE, sizeof(*run));
	struct backoff b = { .limit = 0 };
	natsStatus s = run ? NATS_OK : NATS_NO_MEMORY;
	const int size = (int)ctx->payload;
	uint64_t start = 0, t0, i;
	natsMsg *reply = NULL;

	if (run)
		memset(run, 0, sizeof(*run));
	for (unsigned k = 0; s == NATS_OK && k < 2; k++)
		s = natsConnection_ConnectTo(&run->nc[k], natsd.url);
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&run->sub, run->nc[1], SUBJECT,
					     raw_receive, run);
	if (s == NATS_OK) /* no slow consumer: the window bounds it */
		s = natsSubscription_SetPendingLimits(run->sub, -1, -1);
	if (s == NATS_OK)
		s = natsConnection_Flush(run->nc[1]);
	start = t0 = bench_now_ns();
	for (i = 0; s == NATS_OK && i < n; i++) {
		if (samples) {
			s = natsConnection_Request(&reply, run->nc[0], SUBJECT,
						   run->payload, size,
						   TIMEOUT_MS);
			natsMsg_Destroy(reply);
			t0 += (samples[i] = bench_now_ns() - t0);
		} else if (!i || i % WINDOW || raw_await(run, i, &b) == i) {
			s = natsConnection_Publish(run->nc[0], SUBJECT,
						   run->payload, size);
		} else {
			s = NATS_TIMEOUT; /* as engine_send() paces */
		}
	}
	if (s == NATS_OK && !samples && raw_await(run, n, &b) != n)
		s = NATS_TIMEOUT;
	*secs = (double)((samples ? t0 : bench_now_ns()) - start) / 1e9;
	if (s != NATS_OK)
		bench_fail(0, "remote: %s", natsStatus_GetText(s));
	natsSubscription_Destroy(run ? run->sub : NULL);
	for (unsigned k = 0; run && k < 2; k++)
		natsConnection_Destroy(run->nc[k]);
	free(run);
	return s == NATS_OK ? 0 : -EIO;
}

int remote_serve(struct engine_run *run, const char *url,
		 sy_handler_fn handler, void *arg, uint32_t *id)
{
	const char *urls[1] = { url };
	struct sy_nats_opts no = { .urls = urls, .n_urls = 1 };
	uint32_t sid, rid;
	struct sy_route_opts ro = { .servers = &sid, .n_servers = 1 };
	struct sy_config cfg;
	int rc;

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE; /* more threads than CPUs: the scheduler's */
	rc = sy_nats_connect(run->eng, &no);
	if (!rc)
		rc = sy_engine_create(&cfg, &run->far);
	if (!rc)
		rc = sy_engine_start(run->far);
	if (!rc)
		rc = sy_nats_connect(run->far, &no);
	if (!rc)
		rc = sy_server_add(run->far, "near", handler, arg, NULL, &sid);
	if (!rc)
		rc = sy_route_add(run->far, "bench", &ro, &rid);
	/* It returns once B's subscription is on the server. */
	if (!rc)
		rc = sy_route_export(run->far, rid, SUBJECT, "q");
	return rc ? rc : sy_server_add_remote(run->eng, "far", SUBJECT, NULL,
					      id);
}

/* Once A is quiet: each message delivered or dead-lettered, none lost. */
static int engine_settle(sy_engine *eng, void *arg)
{
	struct sy_accounting a;

	(void)arg;
	t_quiet_stop(eng);
	sy_engine_accounting(eng, &a);
	if (!a.in_flight && a.accepted == a.delivered + a.dead_lettered)
		return 0;
	return bench_fail(-EPROTO, "remote: engine A: accepted %ju, delivered "
			  "%ju, dead-lettered %ju", (uintmax_t)a.accepted,
			  (uintmax_t)a.delivered, (uintmax_t)a.dead_lettered);
}

static int engine_remote(const struct bench_ctx *ctx, uint64_t n,
			 uint64_t *samples, double *secs)
{
	(void)samples;
	return engine_run(ctx, n, engine_settle, NULL, secs);
}

int scenario_remote(const struct bench_ctx *ctx, struct report *rep)
{
	struct variant v[] = {
		{ "raw-nats-pubsub", *ctx, raw_measure, MESSAGES, false },
		{ "engine-remote", *ctx, engine_remote, MESSAGES, true },
		{ "raw-nats-reqrep", *ctx, raw_measure, ROUND_TRIPS, false },
		{ "engine-remote-rtt", *ctx, engine_rtt, ROUND_TRIPS, true },
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
		v[i].ctx.burst = 0;
		v[i].ctx.engine_window = WINDOW;
		v[i].ctx.remote_url = natsd.url;
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
	rep->rows[first].detail = "nats-server on 127.0.0.1; each sender waits "
		"for the receiver every 2048; A's accounting exact each run";
	rep->rows[second].detail = "vs " RTT_BASE ": p50 / raw-nats-reqrep's";
	report_add_note(rep, "remote: engine-remote %.2f x raw-nats-pubsub "
			"(target >= 0.80: %s); engine-remote-rtt p50 %.2f x "
			"raw-nats-reqrep's (target <= 1.20: %s)", tp,
			tp >= 0.8 ? "met" : "MISSED", p50,
			p50 <= 1.2 ? "met" : "MISSED");
	return 0;
}
#else
int remote_serve(struct engine_run *run, const char *url,
		 sy_handler_fn handler, void *arg, uint32_t *id)
{
	(void)run, (void)url, (void)handler, (void)arg, (void)id;
	return -ENOTSUP;
}

int scenario_remote(const struct bench_ctx *ctx, struct report *rep)
{
	(void)ctx;
	report_add_note(rep, "remote: skipped, not built in (no libnats)");
	return 0;
}
#endif /* SY_HAVE_NATS */
