/* engine-open-loop (docs/perf.md): each latency counts from the request's intended send
 * time; every tag must come back exactly once. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define OUTSTANDING 512u      /* below a reply ring's size */
#define POLL_BURST 32

struct open_run {
	struct engine_run e;
	double interval_ns;   /* between intended send times */
	uint64_t sent, received;
	sy_msg *spare;        /* allocated, refused for now: sent later */
};

static uint64_t intended_ns(const struct open_run *run, uint64_t i)
{
	return run->e.t_start + (uint64_t)((double)i * run->interval_ns);
}

/* Send every request that is due; a refused one ends the round, late. */
static int send_due(struct open_run *run, uint64_t now)
{
	int rc;

	while (run->sent < run->e.n && now >= intended_ns(run, run->sent) &&
	       run->sent - run->received < OUTSTANDING) {
		if (!run->spare)
			run->spare = sy_msg_alloc(run->e.eng, run->e.payload);
		if (!run->spare)
			return -ENOMEM;
		sy_msg_set_tag(run->spare, run->sent);
		rc = sy_msg_request(run->e.eng, run->e.route, run->spare);
		if (rc)
			return bench_send_retryable(rc) ? 0 : rc;
		run->spare = NULL;
		run->sent++;
	}
	return 0;
}

/* Record the replies in @p msgs[0..k) and free them, all of them. */
static int take_replies(struct open_run *run, sy_msg **msgs, int k)
{
	uint64_t tag, lat, *samples = run->e.samples;
	int rc = 0;

	for (int j = 0; j < k; j++) {
		tag = sy_msg_tag(msgs[j]);
		sy_msg_free(msgs[j]);
		lat = run->e.t_end - intended_ns(run, tag);
		if (tag >= run->e.n || samples[tag])
			rc = -EPROTO;
		else
			samples[tag] = lat ? lat : 1;
	}
	run->received += (uint64_t)k;
	return rc;
}

static int open_produce(void *arg)
{
	struct open_run *run = arg;
	sy_msg *replies[POLL_BURST];
	uint64_t now, progress;
	int rc, k = 0;

	rc = sy_producer_attach(run->e.eng);
	run->e.t_start = progress = bench_now_ns();
	while (!rc && run->received < run->e.n) {
		now = bench_now_ns();
		rc = send_due(run, now);
		k = rc ? 0 : sy_producer_poll_replies(run->e.eng, replies, POLL_BURST);
		if (k < 0) {
			rc = k;
		} else if (k > 0) {
			progress = run->e.t_end = bench_now_ns();
			rc = take_replies(run, replies, k);
		} else if (run->sent == run->received) {
			progress = now;
		} else if (now - progress > BENCH_STALL_NS) {
			rc = -ETIMEDOUT;
		}
		if (!k && !run->e.spin_limit)
			sched_yield();
	}
	if (rc < 0)
		engine_error(&run->e, "sending requests and polling replies", rc);
	sy_msg_free(run->spare);
	sy_producer_detach(run->e.eng);
	return rc;
}

static int engine_open_loop(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			    double *secs)
{
	struct open_run run = {
		.e = { .n = n, .samples = samples },
		.interval_ns = 1e9 / ctx->offered_rate,
	};
	struct bench_ctx open = *ctx;
	/* As engine-rtt: spin on a CPU of its own, unless SY_IDLE decides. */
	enum sy_idle idle = !getenv("SY_IDLE") && ctx->producer_cpu != ctx->consumer_cpu
			    ? SY_IDLE_SPIN : SY_IDLE_DEFAULT;
	int rc;

	open.payload = ctx->payload ? ctx->payload : BENCH_DEFAULT_PAYLOAD;
	memset(samples, 0, n * sizeof(*samples));
	rc = engine_open(&run.e, &open, "engine-open-loop", idle, engine_echo, NULL);
	if (!rc)
		rc = engine_drive(&run.e, ctx, open_produce, &run, secs);
	return rc;
}

int scenario_open_loop(const struct bench_ctx *ctx, struct report *rep)
{
	const struct report_row *rtt = report_find(rep, "latency", "engine-rtt");
	struct variant v = { "engine-open-loop", *ctx, engine_open_loop, 0, true };
	int first;

	if (!rtt || rtt->rate.median <= 0)
		return 0;
	v.n = rtt->messages;
	v.ctx.policy = "direct";
	v.ctx.producers = v.ctx.workers = 1;
	v.ctx.offered_rate = ctx->rate_fraction * rtt->rate.median;
	first = bench_measure(ctx, rep, "latency", &v, 1, true, NULL);
	if (first < 0)
		return first;
	rep->rows[first].offered_rate = v.ctx.offered_rate;
	rep->rows[first].rate_fraction = ctx->rate_fraction;
	report_add_note(rep, "latency: engine-open-loop offers %.0f round trips/s (%.2f x "
			"engine-rtt's median) on a fixed schedule; latency counts from each "
			"intended send time", v.ctx.offered_rate, ctx->rate_fraction);
	return 0;
}
