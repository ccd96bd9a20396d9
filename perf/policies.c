/* policies (docs/perf.md): engine-burst32 through each picking policy. */
#include "bench.h"

int scenario_policies(const struct bench_ctx *ctx, struct report *rep)
{
	struct variant v[PICKING_POLICIES];
	const struct report_row *base;
	unsigned nv = 0;
	int rc;

	for (unsigned i = 0; i < PICKING_POLICIES; i++) {
		const char *name = engine_picking_policy(i);

		rc = engine_policy_check(ctx, name);
		if (rc == -ENOENT)
			report_add_note(rep, "policies: %s skipped: not in this build", name);
		else if (rc < 0)
			return rc;
		if (rc)
			continue;
		v[nv] = (struct variant){ "", *ctx, engine_throughput, ctx->messages, true };
		snprintf(v[nv].name, sizeof(v[nv].name), "%s", name);
		v[nv].ctx.policy = name;
		v[nv].ctx.producers = v[nv].ctx.workers = 1;
		v[nv++].ctx.burst = BENCH_DEFAULT_BURST;
	}
	if (!nv)
		return 0;
	rc = bench_measure(ctx, rep, "policies", v, nv, false, NULL);
	if (rc < 0)
		return rc;
	rep->rows[rc].detail = "engine-burst32 through a route of 4 servers of one worker "
			       "(weighted: 4,3,2,1; hash: key = sequence number; +slow_start: "
			       "the 4th ramps; +hedge: plain sends, nothing to copy)";
	base = report_find(rep, "policies", BASELINE_POLICY);
	for (unsigned i = (unsigned)rc; base && i < rep->n_rows; i++)
		report_add_ratio(&rep->rows[i], base->variant, rep->rows[i].rate.median /
				 base->rate.median);
	return 0;
}
