/*
 * Throughput, latency and policies scenarios: run the variants interleaved,
 * summarize each over its runs, and relate the engine to the baselines
 * measured in the same invocation.
 */
#include "scenarios.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "engine_runs.h"
#include "multi_runs.h"
#ifdef SY_BENCH_HAVE_ZMQ
#include "zmq_baseline.h"
#endif

/* Round trips per latency run, fewer if --messages asks for fewer. */
#define LATENCY_ROUND_TRIPS 100000u

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct throughput_variant {
	const char *name;         /* NULL: ctx->burst_variant */
	int (*run)(const struct bench_ctx *ctx, uint64_t n, double *secs);
	bool engine;
};

static const struct throughput_variant throughput_variants[] = {
	{ "ck-spsc", baseline_ck_spsc, false },
	{ "batched-limit", baseline_batched_limit, false },
	{ "mutex-queue", baseline_mutex_queue, false },
#ifdef SY_BENCH_HAVE_ZMQ
	{ "zmq-inproc", baseline_zmq_inproc, false },
#endif
	{ "engine-single", multi_engine_single, true },
	{ NULL, multi_engine_burst, true },
};

static const char *variant_name(const struct bench_ctx *ctx,
				const struct throughput_variant *tv)
{
	return tv->name ? tv->name : ctx->burst_variant;
}

/* An engine row: --producers x --workers, and the policy of its route. */
static void engine_row(const struct bench_ctx *ctx, struct report_row *row)
{
	row->producers = ctx->producers;
	row->workers = ctx->workers;
	row->policy = ctx->producers == 1 && ctx->workers == 1 ? ctx->policy
							       : MULTI_POLICY;
	row->engine = ctx->engine;
}

struct latency_variant {
	const char *name;
	int (*run)(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
		   double *secs);
	bool engine;
};

static const struct latency_variant latency_variants[] = {
	{ "ck-pingpong", baseline_ck_pingpong, false },
	{ "engine-rtt", engine_rtt, true },
};

static void show_progress(const struct bench_ctx *ctx, const char *scenario,
			  unsigned run, const char *variant)
{
	if (ctx->progress)
		fprintf(stderr, "\r\033[K%s: run %u/%u: %s", scenario, run + 1,
			ctx->runs, variant);
}

static void clear_progress(const struct bench_ctx *ctx)
{
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
}

static void run_failed(const struct bench_ctx *ctx, const char *scenario,
		       const char *variant, int err)
{
	clear_progress(ctx);
	fprintf(stderr, "sy-bench: %s: %s failed: %s\n", scenario, variant,
		err == -EPROTO ? "messages lost or out of order"
			       : strerror(-err));
}

/* Events per second; a run too short for the clock counts as 1 ns. */
static double rate_of(uint64_t events, double secs)
{
	return (double)events / (secs > 1e-9 ? secs : 1e-9);
}

static struct report_row *add_row(struct report *rep, const char *scenario,
				  const char *variant, uint64_t messages,
				  const double *rates, unsigned runs)
{
	struct report_row *row = report_add_row(rep, scenario, variant);

	row->producers = 1;
	row->workers = 1;
	row->messages = messages;
	row->has_rate = true;
	stats_summarize(rates, runs, &row->rate);
	return row;
}

int scenario_throughput(const struct bench_ctx *ctx, struct report *rep)
{
	const unsigned nv = ARRAY_SIZE(throughput_variants);
	struct report_row *rows[ARRAY_SIZE(throughput_variants)];
	double *rates, secs;
	int rc = 0;

	/* rates[v * runs + r]: variant v, run r */
	rates = calloc((size_t)nv * ctx->runs, sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	for (unsigned r = 0; r < ctx->runs; r++) {
		for (unsigned v = 0; v < nv; v++) {
			const struct throughput_variant *tv =
				&throughput_variants[v];

			show_progress(ctx, "throughput", r,
				      variant_name(ctx, tv));
			rc = tv->run(ctx, ctx->messages, &secs);
			if (rc < 0) {
				run_failed(ctx, "throughput",
					   variant_name(ctx, tv), rc);
				goto out_free;
			}
			rates[v * ctx->runs + r] = rate_of(ctx->messages, secs);
		}
	}
	clear_progress(ctx);
	for (unsigned v = 0; v < nv; v++) {
		rows[v] = add_row(rep, "throughput",
				  variant_name(ctx, &throughput_variants[v]),
				  ctx->messages,
				  &rates[v * ctx->runs], ctx->runs);
		if (throughput_variants[v].engine)
			engine_row(ctx, rows[v]);
	}
	rows[0]->detail = engine_policy_route(ctx->policy);
	for (unsigned v = 0; v < nv; v++) {
		if (!throughput_variants[v].engine)
			continue;
		for (unsigned b = 0; b < nv; b++) {
			if (throughput_variants[b].engine)
				continue;
			report_add_ratio(rows[v], throughput_variants[b].name,
					 rows[v]->rate.median /
					 rows[b]->rate.median);
		}
	}
out_free:
	free(rates);
	return rc;
}

int scenario_latency(const struct bench_ctx *ctx, struct report *rep)
{
	const unsigned nv = ARRAY_SIZE(latency_variants);
	struct report_row *rows[ARRAY_SIZE(latency_variants)];
	struct stats_latency *lat;
	uint64_t n, *samples;
	double *rates, secs;
	int rc = -ENOMEM;

	n = ctx->messages < LATENCY_ROUND_TRIPS ? ctx->messages
						: LATENCY_ROUND_TRIPS;
	samples = calloc(n, sizeof(*samples));
	/* rates[v * runs + r] and lat[v * runs + r]: variant v, run r */
	rates = calloc((size_t)nv * ctx->runs, sizeof(*rates));
	lat = calloc((size_t)nv * ctx->runs, sizeof(*lat));
	if (!samples || !rates || !lat)
		goto out_free;
	for (unsigned r = 0; r < ctx->runs; r++) {
		for (unsigned v = 0; v < nv; v++) {
			const struct latency_variant *lv = &latency_variants[v];

			show_progress(ctx, "latency", r, lv->name);
			rc = lv->run(ctx, n, samples, &secs);
			if (rc < 0) {
				run_failed(ctx, "latency", lv->name, rc);
				goto out_free;
			}
			stats_percentiles(samples, n, &lat[v * ctx->runs + r]);
			rates[v * ctx->runs + r] = rate_of(n, secs);
		}
	}
	clear_progress(ctx);
	for (unsigned v = 0; v < nv; v++) {
		rows[v] = add_row(rep, "latency", latency_variants[v].name, n,
				  &rates[v * ctx->runs], ctx->runs);
		if (latency_variants[v].engine) {
			rows[v]->policy = "direct";
			rows[v]->engine = ctx->engine;
		}
		rows[v]->has_latency = true;
		stats_latency_median(&lat[v * ctx->runs], ctx->runs,
				     &rows[v]->latency);
	}
	for (unsigned v = 0; v < nv; v++) {
		if (!latency_variants[v].engine)
			continue;
		for (unsigned b = 0; b < nv; b++) {
			if (latency_variants[b].engine)
				continue;
			report_add_ratio(rows[v], latency_variants[b].name,
					 rows[v]->rate.median /
					 rows[b]->rate.median);
		}
	}
out_free:
	free(lat);
	free(rates);
	free(samples);
	return rc;
}

/*
 * The picking policies this build has, into @p names; a note for each one
 * it lacks. @return their number; a negative errno.
 */
static int available_policies(struct report *rep, const char **names)
{
	unsigned n = 0;
	int rc;

	for (unsigned i = 0; i < ENGINE_PICKING_POLICIES; i++) {
		const char *name = engine_picking_policy(i);

		rc = engine_policy_check(name);
		if (rc == -ENOENT) {
			report_add_note(rep, "policies: %s skipped: not in this "
					"build (sy_route_add refused it with "
					"-EINVAL)", name);
			continue;
		}
		if (rc < 0)
			return rc;
		names[n++] = name;
	}
	return (int)n;
}

int scenario_policies(const struct bench_ctx *ctx, struct report *rep)
{
	const char *names[ENGINE_PICKING_POLICIES];
	struct report_row *rows[ENGINE_PICKING_POLICIES];
	struct report_row *base = NULL;
	struct bench_ctx run_ctx = *ctx;
	double *rates, secs;
	unsigned np;
	int rc;

	rc = available_policies(rep, names);
	if (rc < 0)
		return rc;
	np = (unsigned)rc;
	if (!np)
		return 0;
	/* rates[p * runs + r]: policy p, run r */
	rates = calloc((size_t)np * ctx->runs, sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	rc = 0;
	for (unsigned r = 0; r < ctx->runs; r++) {
		for (unsigned p = 0; p < np; p++) {
			run_ctx.policy = names[p];
			show_progress(ctx, "policies", r, names[p]);
			rc = engine_burst32(&run_ctx, ctx->messages, &secs);
			if (rc < 0) {
				run_failed(ctx, "policies", names[p], rc);
				goto out_free;
			}
			rates[p * ctx->runs + r] = rate_of(ctx->messages, secs);
		}
	}
	clear_progress(ctx);
	for (unsigned p = 0; p < np; p++) {
		rows[p] = add_row(rep, "policies", names[p], ctx->messages,
				  &rates[p * ctx->runs], ctx->runs);
		rows[p]->policy = names[p];
		rows[p]->engine = ctx->engine;
		if (!strcmp(names[p], ENGINE_BASELINE_POLICY))
			base = rows[p];
	}
	rows[0]->detail = "engine-burst32 through a route of 4 servers of "
			  "the one worker (weighted: 4,3,2,1; hash: key = "
			  "sequence number)";
	for (unsigned p = 0; base && p < np; p++)
		report_add_ratio(rows[p], base->variant,
				 rows[p]->rate.median / base->rate.median);
out_free:
	free(rates);
	return rc;
}
