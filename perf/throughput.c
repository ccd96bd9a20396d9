/* throughput (docs/perf.md): the baselines, then the engine's send calls. */
#include "bench.h"

int scenario_throughput(const struct bench_ctx *ctx, struct report *rep)
{
	struct variant v[] = {
		{ "ck-spsc", *ctx, baseline_ck, ctx->messages, false },
		{ "batched-limit", *ctx, baseline_batched_limit, ctx->messages, false },
		{ "message-ring", *ctx, baseline_message_ring, ctx->messages, false },
		{ "mutex-queue", *ctx, baseline_mutex_queue, ctx->messages, false },
#ifdef SY_BENCH_HAVE_ZMQ
		{ "zmq-inproc", *ctx, baseline_zmq_inproc, ctx->messages, false },
#endif
		{ "engine-single", *ctx, engine_throughput, ctx->messages, true },
		{ "", *ctx, engine_throughput, ctx->messages, true },
	};
	const unsigned nv = ARRAY_SIZE(v);
	int first;

	/* Above one producer and one worker: a server per worker. */
	for (unsigned i = 0; i < nv && (ctx->producers > 1 || ctx->workers > 1); i++)
		v[i].ctx.policy = NULL;
	v[nv - 2].ctx.burst = 0;
	snprintf(v[nv - 1].name, sizeof(v[nv - 1].name), "engine-burst%u", ctx->burst);
	first = bench_measure(ctx, rep, "throughput", v, nv, false, NULL);
	if (first < 0)
		return first;
	rep->rows[first].detail = engine_policy_route(ctx->policy);
	return 0;
}
