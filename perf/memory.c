/* memory (docs/perf.md). The allocator counts with relaxed atomics: they are read only once
 * the engine is quiet. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* Before the first phase: pools grow to the most a producer has in flight. */
#define WARMUP 10000000u

enum { ALLOCS, FREES, ALLOC_BYTES, FREE_BYTES, COUNTS };

struct memory_snapshot {
	uint64_t t_ns, rss_kib;
	struct sy_stats stats;
	uint64_t counts[COUNTS];
};

struct memory_run {
	struct engine_run e;
	atomic_uint_fast64_t counts[COUNTS];
	uint64_t n;
	unsigned burst;
	struct memory_snapshot snap[3]; /* before each phase, after the last */
};

static void *counting_alloc(size_t size, size_t align, void *ctx)
{
	atomic_uint_fast64_t *counts = ctx;
	void *p;

	if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size))
		return NULL;
	atomic_fetch_add_explicit(&counts[ALLOCS], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&counts[ALLOC_BYTES], size, memory_order_relaxed);
	return p;
}

static void counting_free(void *ptr, size_t size, void *ctx)
{
	atomic_uint_fast64_t *counts = ctx;

	atomic_fetch_add_explicit(&counts[FREES], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&counts[FREE_BYTES], size, memory_order_relaxed);
	free(ptr);
}

static int snapshot(struct memory_run *run, struct memory_snapshot *s)
{
	unsigned long long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	s->t_ns = bench_now_ns();
	if (!f || fscanf(f, "%llu %llu", &size, &resident) != 2) {
		bench_fail(0, "memory: /proc/self/statm is not readable");
		resident = 0;
	}
	if (f)
		fclose(f);
	s->rss_kib = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
	sy_engine_stats(run->e.eng, &s->stats);
	for (unsigned i = 0; i < COUNTS; i++)
		s->counts[i] = atomic_load_explicit(&run->counts[i], memory_order_relaxed);
	return s->rss_kib ? 0 : -EIO;
}

static int produce(void *arg)
{
	struct memory_run *run = arg;
	const uint64_t sends[] = { WARMUP, run->n, run->n };
	const unsigned bursts[] = { run->burst, run->burst, 0 };
	uint64_t handled = 0;
	struct backoff b = { .limit = run->e.spin_limit };
	int rc;

	rc = sy_producer_attach(run->e.eng);
	if (rc < 0)
		return engine_error(&run->e, "sy_producer_attach", rc);
	/* The warm-up, then each phase, with a snapshot after each. */
	for (unsigned i = 0; !rc && i < ARRAY_SIZE(sends); i++) {
		run->e.burst = bursts[i];
		rc = engine_send(&run->e, sends[i], &b);
		handled += sends[i];
		if (!rc)
			rc = engine_await(&run->e, handled, &b);
		if (!rc)
			rc = snapshot(run, &run->snap[i]);
	}
	sy_producer_detach(run->e.eng);
	return rc;
}

static void add_phase_row(struct report *rep, const struct bench_ctx *ctx,
			  const struct memory_run *run, const char *variant, unsigned phase)
{
	const struct memory_snapshot *a = &run->snap[phase];
	const struct memory_snapshot *b = &run->snap[phase + 1];
	struct report_row *row = report_add_row(rep, "memory", variant);
	double n = (double)run->n;
	double rate = n / ((double)(b->t_ns - a->t_ns) / 1e9);

	row->policy = SPREAD_POLICY;
	row->engine = ctx->engine;
	row->producers = row->workers = 1;
	row->messages = run->n;
	row->has_rate = row->has_memory = true;
	stats_summarize(&rate, 1, &row->rate);
	row->memory = (struct report_memory){
		.warmup_messages = WARMUP,
		.rss_before_kib = a->rss_kib,
		.rss_after_kib = b->rss_kib,
		.growth_kib_per_million = ((double)b->rss_kib - (double)a->rss_kib) / (n / 1e6),
		.allocs_per_msg = (b->counts[ALLOCS] - a->counts[ALLOCS]) / n,
		.frees_per_msg = (b->counts[FREES] - a->counts[FREES]) / n,
		.alloc_bytes = b->counts[ALLOC_BYTES] - a->counts[ALLOC_BYTES],
		.pool_bytes_before = a->stats.pool_bytes,
		.pool_bytes = b->stats.pool_bytes,
		.pool_slabs = b->stats.pool_slabs,
	};
}

int scenario_memory(const struct bench_ctx *ctx, struct report *rep)
{
	struct memory_run *run = calloc(1, sizeof(*run));
	struct sy_allocator allocator = { counting_alloc, counting_free, NULL };
	struct bench_ctx one = *ctx;
	char variant[32];
	uint64_t left;
	int rc;

	if (!run)
		return -ENOMEM;
	run->n = ctx->messages;
	run->burst = ctx->burst;
	allocator.ctx = run->counts;
	one.producers = one.workers = 1;
	one.policy = NULL;
	snprintf(variant, sizeof(variant), "engine-burst%u", ctx->burst);
	bench_progress(ctx, "memory: %ju + 2 x %ju messages", (uintmax_t)WARMUP, (uintmax_t)run->n);
	rc = engine_open(&run->e, &one, variant, ctx->engine_idle, NULL, &allocator);
	if (!rc)
		rc = engine_drive(&run->e, &one, produce, run, NULL);
	bench_progress(ctx, NULL);
	if (!rc) {
		add_phase_row(rep, ctx, run, variant, 0);
		add_phase_row(rep, ctx, run, "engine-single", 1);
		rep->rows[rep->n_rows - 2].detail = "one producer, one worker; RSS from "
			"/proc/self/statm, pool from sy_engine_stats, allocs: calls of a counting "
			"sy_allocator, per message of the phase";
		left = atomic_load(&run->counts[ALLOC_BYTES]) -
		       atomic_load(&run->counts[FREE_BYTES]);
		if (left)
			report_add_note(rep, "memory: %ju bytes from the allocator not returned by "
					"sy_engine_destroy", (uintmax_t)left);
	}
	free(run);
	return rc;
}
