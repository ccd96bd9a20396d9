/*
 * Overhead: every engine configuration against bare, interleaved.
 *
 * One round runs every send call with every configuration once; --runs
 * rounds. A row's ratio to bare is the ratio of the two medians (as every
 * ratio_vs of sy-bench); the paired ratios divide each run by bare's run of
 * the same round, at most a few seconds earlier, and show how far the
 * machine moved the figures from round to round. On a host whose vCPUs
 * switch between a fast and a slow state during the invocation, the
 * median can fall in either; the ratio of the best runs (max over max)
 * then says more about the engine, and is reported beside it.
 */
#include "overhead.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_config.h"
#include "multi_runs.h"

#define SCENARIO "overhead"

/* The send calls: engine-single, engine-burst<B>. */
#define SENDS 2

/* Room for "<send>/<configuration>". */
#define NAME_LEN 64

struct overhead_send {
	const char *name;         /* NULL: ctx->burst_variant */
	int (*run)(const struct bench_ctx *ctx, uint64_t n, double *secs);
};

static const struct overhead_send sends[SENDS] = {
	{ "engine-single", multi_engine_single },
	{ NULL, multi_engine_burst },
};

/* The rows' variant names; the report keeps pointers to them. */
static char variant_names[SENDS][ENGINE_CONFIGS][NAME_LEN];

static const char *send_name(const struct bench_ctx *ctx, unsigned s)
{
	return sends[s].name ? sends[s].name : ctx->burst_variant;
}

/* Events per second; a run too short for the clock counts as 1 ns. */
static double rate_of(uint64_t events, double secs)
{
	return (double)events / (secs > 1e-9 ? secs : 1e-9);
}

/* rates[] index of send @p s, configuration @p c, run @p r. */
static size_t at(const struct bench_ctx *ctx, unsigned s, unsigned c,
		 unsigned r)
{
	return ((size_t)s * ENGINE_CONFIGS + c) * ctx->runs + r;
}

/* Run send @p s with configuration @p c once, into rates[]. */
static int run_once(const struct bench_ctx *ctx, unsigned s, unsigned c,
		    unsigned r, double *rates)
{
	struct bench_ctx run_ctx = *ctx;
	const char *name = variant_names[s][c];
	double secs;
	int rc;

	run_ctx.engine = engine_config_at(c);
	if (ctx->progress)
		fprintf(stderr, "\r\033[K" SCENARIO ": run %u/%u: %s", r + 1,
			ctx->runs, name);
	rc = sends[s].run(&run_ctx, ctx->overhead_messages, &secs);
	if (rc < 0) {
		if (ctx->progress)
			fprintf(stderr, "\r\033[K");
		fprintf(stderr, "sy-bench: " SCENARIO ": %s failed: %s\n", name,
			strerror(-rc));
		return rc;
	}
	rates[at(ctx, s, c, r)] = rate_of(ctx->overhead_messages, secs);
	return 0;
}

static int run_rounds(const struct bench_ctx *ctx, double *rates)
{
	int rc;

	for (unsigned r = 0; r < ctx->runs; r++) {
		for (unsigned s = 0; s < SENDS; s++) {
			for (unsigned c = 0; c < ENGINE_CONFIGS; c++) {
				rc = run_once(ctx, s, c, r, rates);
				if (rc < 0)
					return rc;
			}
		}
	}
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	return 0;
}

/* The row of send @p s with configuration @p c, its baseline's @p base. */
static void add_row(const struct bench_ctx *ctx, struct report *rep,
		    const double *rates, unsigned s, unsigned c,
		    const struct report_row *base)
{
	const struct engine_config *e = engine_config_at(c);
	struct report_row *row;
	double paired[STATS_MAX_RUNS];

	row = report_add_row(rep, SCENARIO, variant_names[s][c]);
	row->producers = ctx->producers;
	row->workers = ctx->workers;
	row->policy = ctx->producers == 1 && ctx->workers == 1 ? ctx->policy
							       : MULTI_POLICY;
	row->engine = e;
	row->messages = ctx->overhead_messages;
	row->has_rate = true;
	stats_summarize(&rates[at(ctx, s, c, 0)], ctx->runs, &row->rate);
	if (!base)
		return;
	report_add_ratio(row, ENGINE_CONFIG_BASELINE,
			 row->rate.median / base->rate.median);
	for (unsigned r = 0; r < ctx->runs; r++)
		paired[r] = rates[at(ctx, s, c, r)] / rates[at(ctx, s, 0, r)];
	row->paired_vs = ENGINE_CONFIG_BASELINE;
	stats_summarize(paired, ctx->runs, &row->paired);
	row->best_ratio = row->rate.max / base->rate.max;
	row->target = e->target;
}

int scenario_overhead(const struct bench_ctx *ctx, struct report *rep)
{
	const unsigned first = rep->n_rows;
	const struct report_row *base;
	double *rates;
	int rc;

	assert(!strcmp(engine_config_at(0)->name, ENGINE_CONFIG_BASELINE));
	for (unsigned s = 0; s < SENDS; s++)
		for (unsigned c = 0; c < ENGINE_CONFIGS; c++)
			snprintf(variant_names[s][c], NAME_LEN, "%s/%s",
				 send_name(ctx, s), engine_config_at(c)->name);
	rates = calloc((size_t)SENDS * ENGINE_CONFIGS * ctx->runs,
		       sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	rc = run_rounds(ctx, rates);
	for (unsigned s = 0; !rc && s < SENDS; s++) {
		base = NULL;
		for (unsigned c = 0; c < ENGINE_CONFIGS; c++) {
			add_row(ctx, rep, rates, s, c, base);
			if (!c)
				base = &rep->rows[rep->n_rows - 1];
		}
	}
	if (!rc)
		rep->rows[first].detail = "vs bare: median / bare's median "
					  "with the same send call; runs: each "
					  "run / bare's run of the same round; "
					  "best: max / bare's max";
	free(rates);
	return rc;
}
