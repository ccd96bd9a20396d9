/*
 * Scaling: the same many-thread run with more and more producer/worker
 * pairs, each pair on two CPUs of its own while there are enough.
 */
#include "scaling.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "multi_runs.h"

#define SCALING_BURST 32
#define SCALING_VARIANT "engine-burst32"

/* Most steps: k = 1, 2, 4, ... MULTI_MAX_THREADS. */
#define MAX_STEPS 8

/* The values of k, into @p ks. @return their number. */
static unsigned scaling_steps(const struct bench_ctx *ctx, unsigned *ks)
{
	unsigned half = (unsigned)CPU_COUNT(&ctx->cpus) / 2;
	unsigned n = 0;

	for (unsigned k = 1; n < MAX_STEPS && k <= MULTI_MAX_THREADS &&
			     (k == 1 || k <= half); k *= 2)
		ks[n++] = k;
	if (ctx->oversubscribe && n < MAX_STEPS &&
	    ks[n - 1] * 2 <= MULTI_MAX_THREADS) {
		ks[n] = ks[n - 1] * 2;
		n++;
	}
	return n;
}

int scenario_scaling(const struct bench_ctx *ctx, struct report *rep)
{
	struct report_row *rows[MAX_STEPS];
	struct bench_ctx run_ctx = *ctx;
	unsigned ks[MAX_STEPS], ns;
	double *rates, secs;
	uint64_t n;
	int rc = 0;

	ns = scaling_steps(ctx, ks);
	/* rates[s * runs + r]: step s, run r */
	rates = calloc((size_t)ns * ctx->runs, sizeof(*rates));
	if (!rates)
		return -ENOMEM;
	run_ctx.burst = SCALING_BURST;
	run_ctx.burst_variant = SCALING_VARIANT;
	for (unsigned r = 0; r < ctx->runs; r++) {
		for (unsigned s = 0; s < ns; s++) {
			run_ctx.producers = run_ctx.workers = ks[s];
			n = ctx->messages * ks[s];
			if (ctx->progress)
				fprintf(stderr, "\r\033[Kscaling: run %u/%u: "
					"%ux%u", r + 1, ctx->runs, ks[s],
					ks[s]);
			rc = multi_run(&run_ctx, SCALING_BURST, n, &secs);
			if (rc < 0) {
				fprintf(stderr, "\nsy-bench: scaling: %ux%u "
					"failed\n", ks[s], ks[s]);
				goto out_free;
			}
			rates[s * ctx->runs + r] =
				(double)n / (secs > 1e-9 ? secs : 1e-9);
		}
	}
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	for (unsigned s = 0; s < ns; s++) {
		rows[s] = report_add_row(rep, "scaling", SCALING_VARIANT);
		rows[s]->policy = MULTI_POLICY;
		rows[s]->engine = ctx->engine;
		rows[s]->producers = rows[s]->workers = ks[s];
		rows[s]->messages = ctx->messages * ks[s];
		rows[s]->has_rate = true;
		stats_summarize(&rates[s * ctx->runs], ctx->runs,
				&rows[s]->rate);
		rows[s]->has_scaling = true;
		rows[s]->speedup = rows[s]->rate.median / rows[0]->rate.median;
		rows[s]->efficiency = rows[s]->speedup / ks[s];
		run_ctx.producers = run_ctx.workers = ks[s];
		if (multi_oversubscribed(&run_ctx))
			report_add_note(rep, "scaling: %ux%u is oversubscribed: "
					"%u threads on %d CPUs", ks[s], ks[s],
					2 * ks[s], CPU_COUNT(&ctx->cpus));
	}
	rows[0]->detail = "k producers x k workers, --messages per producer, "
			  "round_robin over one server per worker; producer "
			  "and worker j on the CPUs 2j and 2j+1 of the set; "
			  "efficiency = speedup / k";
out_free:
	free(rates);
	return rc;
}
