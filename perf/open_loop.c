/*
 * engine-open-loop: a producer that sends on a schedule and polls replies
 * between sends, against one worker that answers in place.
 *
 * Latency is reply arrival minus intended send time, so time a request
 * spent waiting to be sent (behind a slow reply, a full ring or the bound
 * on outstanding requests) is counted, as a user arriving on schedule would
 * see it. Replies are matched by tag (the request's sequence number); each
 * tag must come back exactly once.
 */
#include "open_loop.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pinned.h"
#include "switchyard.h"

#define POLL_BURST 32

struct open_run {
	sy_engine *eng;
	uint32_t route;
	uint64_t n;
	size_t payload;       /* bytes per request */
	double interval_ns;   /* between intended send times */
	unsigned spin_limit;  /* 0: the worker shares our CPU, yield when idle */
	uint64_t *samples;    /* zeroed: 0 marks a reply not yet seen */
	uint64_t t_start;     /* t0 of the schedule */
	uint64_t t_end;       /* arrival of the last reply */
};

static void open_error(const char *call, int err)
{
	const char *why = sy_last_error();

	if (!why || !*why)
		why = sy_strerror(err);
	fprintf(stderr, "sy-bench: engine-open-loop: %s: %s\n", call, why);
}

static uint64_t intended_ns(const struct open_run *run, uint64_t i)
{
	return run->t_start + (uint64_t)((double)i * run->interval_ns);
}

/* Record the replies in @p msgs[0..k) and free them, all of them. */
static int take_replies(struct open_run *run, sy_msg **msgs, int k,
			uint64_t now)
{
	uint64_t tag, lat;
	int rc = 0;

	for (int j = 0; j < k; j++) {
		tag = sy_msg_tag(msgs[j]);
		sy_msg_free(msgs[j]);
		if (tag >= run->n || run->samples[tag]) {
			rc = -EPROTO;
			continue;
		}
		lat = now - intended_ns(run, tag);
		run->samples[tag] = lat ? lat : 1;
	}
	if (rc < 0)
		fprintf(stderr, "sy-bench: engine-open-loop: a reply with an "
			"unknown or repeated tag\n");
	return rc;
}

/*
 * Send every request that is due (and allowed by the bound on outstanding
 * requests). A full or congested ring ends the round: the request is sent
 * later, late.
 */
static int send_due(struct open_run *run, uint64_t now, uint64_t *sent,
		    uint64_t received, sy_msg **spare)
{
	int rc;

	while (*sent < run->n && *sent - received < OPEN_LOOP_MAX_OUTSTANDING &&
	       now >= intended_ns(run, *sent)) {
		if (!*spare)
			*spare = sy_msg_alloc(run->eng, run->payload);
		if (!*spare) {
			open_error("sy_msg_alloc", -ENOMEM);
			return -ENOMEM;
		}
		sy_msg_set_tag(*spare, *sent);
		rc = sy_request(run->eng, run->route, *spare);
		if (bench_send_retryable(rc))
			return 0;
		if (rc < 0) {
			open_error("sy_request", rc);
			return rc;
		}
		*spare = NULL;
		(*sent)++;
	}
	return 0;
}

static int open_produce(void *arg)
{
	struct open_run *run = arg;
	sy_msg *replies[POLL_BURST], *spare = NULL;
	uint64_t sent = 0, received = 0, now, progress;
	int rc, k;

	rc = sy_producer_attach(run->eng);
	if (rc < 0) {
		open_error("sy_producer_attach", rc);
		return rc;
	}
	run->t_start = progress = bench_now_ns();
	while (received < run->n) {
		now = bench_now_ns();
		rc = send_due(run, now, &sent, received, &spare);
		if (rc < 0)
			break;
		k = sy_poll_replies(run->eng, replies, POLL_BURST);
		if (k < 0) {
			open_error("sy_poll_replies", k);
			rc = k;
			break;
		}
		if (k > 0) {
			progress = run->t_end = bench_now_ns();
			received += (uint64_t)k;
			rc = take_replies(run, replies, k, run->t_end);
			if (rc < 0)
				break;
		} else if (sent == received) {
			progress = now;
		} else if (now - progress > BENCH_STALL_NS) {
			fprintf(stderr, "sy-bench: engine-open-loop: no reply "
				"for %llu s (%ju of %ju answered)\n",
				BENCH_STALL_NS / 1000000000ull,
				(uintmax_t)received, (uintmax_t)run->n);
			rc = -ETIMEDOUT;
			break;
		}
		if (!k && !run->spin_limit)
			sched_yield();
	}
	sy_msg_free(spare);
	sy_producer_detach(run->eng);
	return rc;
}

/* Echo the request in place. */
static int echo(sy_engine *eng, sy_msg *msg, void *arg)
{
	(void)eng;
	(void)arg;
	return sy_reply(msg, msg);
}

/* One worker, one echo server and a direct route, configured by ctx->engine. */
static int open_engine(const struct bench_ctx *ctx, struct open_run *run)
{
	struct sy_server_opts sopts = {
		.worker = 0, .breaker = engine_config_breaker(ctx->engine),
	};
	struct sy_route_opts ropts = { .policy = "direct", .n_servers = 1 };
	struct sy_config cfg;
	uint32_t server;
	char cpu[16];
	int rc;

	snprintf(cpu, sizeof(cpu), "%d", ctx->consumer_cpu);
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.cpus = cpu;
	cfg.pin = SY_PIN_CLOSE;
	/* As engine-rtt: spin on a CPU of its own, unless SY_IDLE decides. */
	cfg.idle = SY_IDLE_DEFAULT;
	if (!getenv("SY_IDLE") && ctx->producer_cpu != ctx->consumer_cpu)
		cfg.idle = SY_IDLE_SPIN;
	engine_config_apply(ctx->engine, &cfg);
	rc = sy_engine_create(&cfg, &run->eng);
	if (rc < 0) {
		open_error("sy_engine_create", rc);
		return rc;
	}
	rc = sy_server_add(run->eng, "bench", echo, NULL, &sopts, &server);
	if (rc < 0) {
		open_error("sy_server_add", rc);
		goto out_destroy;
	}
	ropts.servers = &server;
	engine_config_route(ctx->engine, &ropts);
	rc = sy_route_add(run->eng, "bench", &ropts, &run->route);
	if (rc < 0) {
		open_error("sy_route_add", rc);
		goto out_destroy;
	}
	rc = sy_engine_start(run->eng);
	if (rc < 0) {
		open_error("sy_engine_start", rc);
		goto out_destroy;
	}
	return 0;
out_destroy:
	sy_engine_destroy(run->eng);
	return rc;
}

int engine_open_loop(const struct bench_ctx *ctx, double rate, uint64_t n,
		     uint64_t *samples, double *secs)
{
	struct open_run run = {
		.n = n, .interval_ns = 1e9 / rate,
		.payload = ctx->payload ? ctx->payload : BENCH_DEFAULT_PAYLOAD,
		.spin_limit = ctx->spin_limit, .samples = samples,
	};
	struct pinned_thread producer = {
		.cpu = ctx->producer_cpu, .fn = open_produce, .arg = &run,
	};
	int rc;

	memset(samples, 0, n * sizeof(*samples));
	rc = open_engine(ctx, &run);
	if (rc < 0)
		return rc;
	rc = pinned_run(&producer, 1, ctx->spin_limit);
	if (rc < 0 && !producer.rc)
		fprintf(stderr, "sy-bench: engine-open-loop: starting the "
			"producer thread: %s\n", strerror(-rc));
	if (!rc)
		*secs = (double)(run.t_end - run.t_start) / 1e9;
	sy_engine_destroy(run.eng);
	return rc;
}

static const struct report_row *find_row(const struct report *rep,
					 const char *scenario,
					 const char *variant)
{
	for (unsigned i = 0; i < rep->n_rows; i++) {
		if (!strcmp(rep->rows[i].scenario, scenario) &&
		    !strcmp(rep->rows[i].variant, variant))
			return &rep->rows[i];
	}
	return NULL;
}

int scenario_open_loop(const struct bench_ctx *ctx, double fraction,
		       struct report *rep)
{
	const struct report_row *rtt = find_row(rep, "latency", "engine-rtt");
	struct stats_latency *lat;
	struct report_row *row;
	uint64_t n, *samples;
	double rate, *rates, secs;
	int rc = -ENOMEM;

	if (!rtt || !rtt->has_rate || rtt->rate.median <= 0)
		return 0;
	n = rtt->messages;
	rate = fraction * rtt->rate.median;
	samples = calloc(n, sizeof(*samples));
	rates = calloc(ctx->runs, sizeof(*rates));
	lat = calloc(ctx->runs, sizeof(*lat));
	if (!samples || !rates || !lat)
		goto out_free;
	for (unsigned r = 0; r < ctx->runs; r++) {
		if (ctx->progress)
			fprintf(stderr, "\r\033[Klatency: run %u/%u: "
				"engine-open-loop", r + 1, ctx->runs);
		rc = engine_open_loop(ctx, rate, n, samples, &secs);
		if (rc < 0)
			goto out_free;
		stats_percentiles(samples, n, &lat[r]);
		rates[r] = (double)n / (secs > 1e-9 ? secs : 1e-9);
	}
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	row = report_add_row(rep, "latency", "engine-open-loop");
	row->policy = "direct";
	row->engine = ctx->engine;
	row->producers = 1;
	row->workers = 1;
	row->messages = n;
	row->has_rate = true;
	stats_summarize(rates, ctx->runs, &row->rate);
	row->has_latency = true;
	stats_latency_median(lat, ctx->runs, &row->latency);
	row->offered_rate = rate;
	row->rate_fraction = fraction;
	report_add_note(rep, "latency: engine-open-loop offers %.0f round "
			"trips/s (%.2f x engine-rtt's median) on a fixed "
			"schedule; latency counts from each intended send time",
			rate, fraction);
out_free:
	free(lat);
	free(rates);
	free(samples);
	return rc;
}
