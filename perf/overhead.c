/* overhead (docs/perf.md): both send calls in every configuration. */
#include <stdlib.h>

#include "bench.h"

#define SENDS 2 /* engine-single, engine-burst<B> */

int scenario_overhead(const struct bench_ctx *ctx, struct report *rep)
{
	const unsigned nv = SENDS * ENGINE_CONFIGS, runs = ctx->runs;
	struct variant v[SENDS * ENGINE_CONFIGS];
	double paired[STATS_MAX_RUNS], *rates;
	char send[2][32] = { "engine-single" };
	int first;

	rates = calloc((size_t)nv * runs, sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	snprintf(send[1], sizeof(send[1]), "engine-burst%u", ctx->burst);
	for (unsigned i = 0; i < nv; i++) {
		const struct engine_config *e = engine_configs + i % ENGINE_CONFIGS;

		v[i] = (struct variant){ "", *ctx, engine_throughput, ctx->overhead_messages,
					 true };
		v[i].ctx.engine = e;
		/* engine-single first: no bursts. */
		v[i].ctx.burst = i < ENGINE_CONFIGS ? 0 : ctx->burst;
		if (ctx->producers > 1 || ctx->workers > 1)
			v[i].ctx.policy = NULL;
		snprintf(v[i].name, sizeof(v[i].name), "%s/%s", send[i / ENGINE_CONFIGS], e->name);
	}
	first = bench_measure(ctx, rep, "overhead", v, nv, false, rates);
	for (unsigned i = 0; first >= 0 && i < nv; i++) {
		struct report_row *row = &rep->rows[first + (int)i];
		const unsigned bare = i - i % ENGINE_CONFIGS;
		const struct report_row *base = &rep->rows[first + (int)bare];

		if (i == bare)
			continue;
		report_add_ratio(row, base->engine->name, row->rate.median / base->rate.median);
		for (unsigned r = 0; r < runs; r++)
			paired[r] = rates[i * runs + r] / rates[bare * runs + r];
		row->paired_vs = base->engine->name;
		stats_summarize(paired, runs, &row->paired);
		row->best_ratio = row->rate.max / base->rate.max;
		row->target = v[i].ctx.engine->target;
	}
	if (first >= 0)
		rep->rows[first].detail = "vs bare: median / bare's median with the same send "
					  "call; runs: each run / bare's run of the same round; "
					  "best: max / bare's max";
	free(rates);
	return first < 0 ? first : 0;
}
