/*
 * Core-to-core round trip of one cache line.
 *
 * The pinger writes an odd value, the ponger answers with the next even one.
 * The value is the whole message, so relaxed loads and stores suffice: no
 * other memory is published through it.
 */
#include "probe.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "pinned.h"
#include "stats.h"

struct probe {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t ball;
	_Alignas(BENCH_CACHELINE) unsigned spin_limit;
	uint64_t *samples;
};

/* Wait until the ball holds @p value. */
static int await_ball(struct probe *p, uint64_t value, struct backoff *b)
{
	int rc;

	while (atomic_load_explicit(&p->ball, memory_order_relaxed) != value) {
		rc = backoff_wait(b);
		if (rc < 0)
			return rc;
	}
	backoff_reset(b);
	return 0;
}

static int probe_ping(void *arg)
{
	struct probe *p = arg;
	struct backoff b;
	uint64_t t0, t1;
	int rc;

	backoff_init(&b, p->spin_limit);
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < PROBE_ROUND_TRIPS; i++) {
		atomic_store_explicit(&p->ball, 2 * i + 1,
				      memory_order_relaxed);
		rc = await_ball(p, 2 * i + 2, &b);
		if (rc < 0)
			return rc;
		t1 = bench_now_ns();
		p->samples[i] = t1 - t0;
		t0 = t1;
	}
	return 0;
}

static int probe_pong(void *arg)
{
	struct probe *p = arg;
	struct backoff b;
	int rc;

	backoff_init(&b, p->spin_limit);
	for (uint64_t i = 0; i < PROBE_ROUND_TRIPS; i++) {
		rc = await_ball(p, 2 * i + 1, &b);
		if (rc < 0)
			return rc;
		atomic_store_explicit(&p->ball, 2 * i + 2,
				      memory_order_relaxed);
	}
	return 0;
}

int probe_round_trip(const struct bench_ctx *ctx, double *median_ns)
{
	struct pinned_thread threads[2] = {
		{ .cpu = ctx->producer_cpu, .fn = probe_ping },
		{ .cpu = ctx->consumer_cpu, .fn = probe_pong },
	};
	struct stats_latency lat;
	struct probe *p;
	int rc = -ENOMEM;

	p = aligned_alloc(BENCH_CACHELINE, sizeof(*p));
	if (!p)
		return -ENOMEM;
	atomic_init(&p->ball, 0);
	p->spin_limit = ctx->spin_limit;
	p->samples = calloc(PROBE_ROUND_TRIPS, sizeof(*p->samples));
	if (!p->samples)
		goto out_free_probe;
	threads[0].arg = p;
	threads[1].arg = p;
	rc = pinned_run(threads, 2, ctx->spin_limit);
	if (!rc) {
		stats_percentiles(p->samples, PROBE_ROUND_TRIPS, &lat);
		*median_ns = (double)lat.p50;
	}
	free(p->samples);
out_free_probe:
	free(p);
	return rc;
}
