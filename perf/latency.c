/* latency (docs/perf.md): ck-pingpong and engine-rtt round trips. */
#include "bench.h"

#define LATENCY_ROUND_TRIPS 100000u

static int produce_requests(void *arg)
{
	struct engine_run *run = arg;
	struct backoff b = { .limit = run->spin_limit };
	sy_msg *msg;
	uint64_t t0;
	int rc, k;

	rc = sy_producer_attach(run->eng);
	if (rc < 0)
		return engine_error(run, "sy_producer_attach", rc);
	msg = sy_msg_alloc(run->eng, run->payload);
	rc = msg ? 0 : -ENOMEM;
	run->t_start = bench_now_ns();
	for (uint64_t i = 0; !rc && i < run->n; i++) {
		t0 = bench_now_ns();
		sy_msg_set_tag(msg, i);
		rc = sy_msg_request(run->eng, run->route, msg);
		if (rc)
			rc = engine_resend(run, sy_msg_request, "sy_msg_request", msg, rc, &b);
		/* Sent (the one reply in flight is ours then), or freed. */
		msg = NULL;
		if (rc < 0)
			break;
		while ((k = sy_producer_poll_replies(run->eng, &msg, 1)) == 0)
			if ((k = backoff_wait(&b)) < 0)
				break;
		if (k < 0) {
			rc = engine_error(run, "sy_producer_poll_replies", k);
			break;
		}
		backoff_reset(&b);
		run->samples[i] = bench_now_ns() - t0;
		rc = sy_msg_tag(msg) == i ? 0 : -EPROTO;
	}
	run->t_end = bench_now_ns();
	sy_msg_free(msg);
	sy_producer_detach(run->eng);
	return rc;
}

int engine_rtt(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples, double *secs)
{
	struct engine_run run = { .n = n, .samples = samples };
	/* Spinning is only fair when the worker does not share a CPU (and B's threads and
	 * nats-server want the CPUs too). */
	enum sy_idle idle = ctx->producer_cpu != ctx->consumer_cpu && !ctx->remote_url
			    ? SY_IDLE_SPIN : SY_IDLE_DEFAULT;
	int rc;

	rc = engine_open(&run, ctx, ctx->remote_url ? "engine-remote-rtt" : "engine-rtt", idle,
			 engine_echo, NULL);
	if (!rc)
		rc = engine_drive(&run, ctx, produce_requests, &run, secs);
	return rc;
}

int scenario_latency(const struct bench_ctx *ctx, struct report *rep)
{
	struct variant v[] = {
		{ "ck-pingpong", *ctx, baseline_ck, 0, false },
		{ "engine-rtt", *ctx, engine_rtt, 0, true },
	};
	int first;

	for (unsigned i = 0; i < ARRAY_SIZE(v); i++) {
		v[i].n = ctx->messages < LATENCY_ROUND_TRIPS ? ctx->messages : LATENCY_ROUND_TRIPS;
		v[i].ctx.policy = "direct";
		v[i].ctx.producers = v[i].ctx.workers = 1;
	}
	first = bench_measure(ctx, rep, "latency", v, ARRAY_SIZE(v), true, NULL);
	return first < 0 ? first : 0;
}
