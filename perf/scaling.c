/* scaling (docs/perf.md): k producers x k workers, k = 1, 2, 4, ... */
#include "bench.h"

int scenario_scaling(const struct bench_ctx *ctx, struct report *rep)
{
	const unsigned cpus = (unsigned)CPU_COUNT(&ctx->cpus);
	struct variant v[8];
	unsigned ns = 0;
	int first;

	for (unsigned k = 1; k <= BENCH_MAX_THREADS; k *= 2) {
		bool fits = k == 1 || k <= cpus / 2;

		if (!fits && !ctx->oversubscribe)
			break;
		v[ns] = (struct variant){ "engine-burst32", *ctx, engine_throughput,
					  ctx->messages * k, true };
		v[ns].ctx.policy = NULL;
		v[ns].ctx.burst = BENCH_DEFAULT_BURST;
		v[ns].ctx.producers = v[ns].ctx.workers = k;
		ns++;
		/* --oversubscribe: one step beyond the CPUs, no more. */
		if (!fits)
			break;
	}
	first = bench_measure(ctx, rep, "scaling", v, ns, false, NULL);
	for (int s = first; s >= 0 && s < (int)rep->n_rows; s++) {
		struct report_row *row = &rep->rows[s];

		row->has_scaling = true;
		row->speedup = row->rate.median / rep->rows[first].rate.median;
		row->efficiency = row->speedup / row->producers;
		if (2 * row->producers > cpus)
			report_add_note(rep, "scaling: %ux%u is oversubscribed: %u threads on %u "
					"CPUs", row->producers, row->producers, 2 * row->producers,
					cpus);
	}
	if (first >= 0)
		rep->rows[first].detail = "k producers x k workers, --messages per producer, "
			"round_robin over one server per worker; producer and worker j on the CPUs "
			"2j and 2j+1 of the set; efficiency = speedup / k";
	return first < 0 ? first : 0;
}
