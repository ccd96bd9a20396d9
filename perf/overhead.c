/*
 * overhead: what metrics, a circuit breaker and backpressure cost a
 * sender: engine-single and engine-burst<B> (as in throughput) with every
 * engine configuration, interleaved. Each row "<send>/<configuration>"
 * has its ratio of medians to bare with the same send call, the ratios of
 * each run to bare's run of the same round (how far the machine moved),
 * the best run over bare's best (when the host switches vCPUs between a
 * fast and a slow state, max / max says more), and its target.
 */
#include <stdlib.h>

#include "bench.h"

/* The send calls: engine-single, engine-burst<B>. */
#define SENDS 2

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
		const struct engine_config *e = &engine_configs[i % ENGINE_CONFIGS];

		v[i] = (struct variant){
			.ctx = *ctx, .run = engine_throughput,
			.n = ctx->overhead_messages, .engine = true,
		};
		v[i].ctx.engine = e;
		/* engine-single first: no bursts. */
		v[i].ctx.burst = i < ENGINE_CONFIGS ? 0 : ctx->burst;
		if (ctx->producers > 1 || ctx->workers > 1)
			v[i].ctx.policy = NULL;
		snprintf(v[i].name, sizeof(v[i].name), "%s/%s",
			 send[i / ENGINE_CONFIGS], e->name);
	}
	first = bench_measure(ctx, rep, "overhead", v, nv, false, rates);
	for (unsigned i = 0; first >= 0 && i < nv; i++) {
		struct report_row *row = &rep->rows[first + (int)i];
		const unsigned bare = i - i % ENGINE_CONFIGS;

		if (i == bare)
			continue;
		report_add_ratio(row, ENGINE_CONFIG_BARE->name,
				 row->rate.median /
				 rep->rows[first + (int)bare].rate.median);
		for (unsigned r = 0; r < runs; r++)
			paired[r] = rates[i * runs + r] / rates[bare * runs + r];
		row->paired_vs = ENGINE_CONFIG_BARE->name;
		stats_summarize(paired, runs, &row->paired);
		row->best_ratio = row->rate.max /
				  rep->rows[first + (int)bare].rate.max;
		row->target = v[i].ctx.engine->target;
	}
	if (first >= 0)
		rep->rows[first].detail = "vs bare: median / bare's median "
					  "with the same send call; runs: each "
					  "run / bare's run of the same round; "
					  "best: max / bare's max";
	free(rates);
	return first < 0 ? first : 0;
}
