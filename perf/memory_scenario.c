/*
 * Memory: RSS, pool and allocator counters around long runs of one engine.
 *
 * The allocator counts with relaxed atomics: the engine may call it from
 * any thread, and the counts are read only after the awaited messages are
 * handled, when the engine is quiet.
 */
#include "memory_scenario.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "multi_runs.h"
#include "pinned.h"

struct counting_allocator {
	atomic_uint_fast64_t allocs;
	atomic_uint_fast64_t frees;
	atomic_uint_fast64_t alloc_bytes;
	atomic_uint_fast64_t free_bytes;
};

/* What is measured before and after a phase. */
struct memory_snapshot {
	uint64_t rss_kib;
	uint64_t pool_bytes;
	uint64_t pool_slabs;
	uint64_t allocs;
	uint64_t frees;
	uint64_t alloc_bytes;
	uint64_t t_ns;
};

enum { PHASE_BURST, PHASE_SINGLE, PHASES };

struct memory_run {
	struct multi_engine m;
	struct counting_allocator *counts;
	uint64_t n;
	unsigned payload;
	unsigned burst;
	unsigned spin_limit;
	struct memory_snapshot snap[PHASES + 1]; /* before each phase, after the last */
};

static void *counting_alloc(size_t size, size_t align, void *ctx)
{
	struct counting_allocator *c = ctx;
	void *p;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size))
		return NULL;
	atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->alloc_bytes, size, memory_order_relaxed);
	return p;
}

static void counting_free(void *ptr, size_t size, void *ctx)
{
	struct counting_allocator *c = ctx;

	atomic_fetch_add_explicit(&c->frees, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->free_bytes, size, memory_order_relaxed);
	free(ptr);
}

/* The resident set of the process in KiB. @return 0; a negative errno. */
static int read_rss_kib(uint64_t *out)
{
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (n != 2 || page <= 0)
		return -EIO;
	*out = (uint64_t)resident * (uint64_t)page / 1024;
	return 0;
}

static int snapshot(const struct memory_run *run, struct memory_snapshot *s)
{
	struct sy_stats st;
	int rc;

	s->t_ns = bench_now_ns();
	rc = read_rss_kib(&s->rss_kib);
	if (rc < 0) {
		fprintf(stderr, "sy-bench: memory: /proc/self/statm: %s\n",
			strerror(-rc));
		return rc;
	}
	sy_engine_stats(run->m.eng, &st);
	s->pool_bytes = st.pool_bytes;
	s->pool_slabs = st.pool_slabs;
	s->allocs = atomic_load_explicit(&run->counts->allocs,
					 memory_order_relaxed);
	s->frees = atomic_load_explicit(&run->counts->frees,
					memory_order_relaxed);
	s->alloc_bytes = atomic_load_explicit(&run->counts->alloc_bytes,
					      memory_order_relaxed);
	return 0;
}

/* Send @p n messages (@p burst 0: one at a time) and wait for all of them. */
static int send_all(struct memory_run *run, uint64_t n, unsigned burst,
		    uint64_t *handled)
{
	int rc = multi_send(&run->m, n, run->payload, burst, run->spin_limit);

	if (rc < 0)
		return rc;
	*handled += n;
	return multi_engine_await(&run->m, *handled, run->spin_limit);
}

static int produce(void *arg)
{
	struct memory_run *run = arg;
	uint64_t handled = 0;
	int rc;

	rc = sy_producer_attach(run->m.eng);
	if (rc < 0) {
		fprintf(stderr, "sy-bench: memory: sy_producer_attach: %s\n",
			sy_strerror(rc));
		return rc;
	}
	rc = send_all(run, MEMORY_WARMUP, run->burst, &handled);
	if (!rc)
		rc = snapshot(run, &run->snap[PHASE_BURST]);
	if (!rc)
		rc = send_all(run, run->n, run->burst, &handled);
	if (!rc)
		rc = snapshot(run, &run->snap[PHASE_SINGLE]);
	if (!rc)
		rc = send_all(run, run->n, 0, &handled);
	if (!rc)
		rc = snapshot(run, &run->snap[PHASES]);
	sy_producer_detach(run->m.eng);
	return rc;
}

static void add_phase_row(struct report *rep, const struct bench_ctx *ctx,
			  const struct memory_run *run, const char *variant,
			  unsigned phase)
{
	const struct memory_snapshot *a = &run->snap[phase];
	const struct memory_snapshot *b = &run->snap[phase + 1];
	struct report_row *row = report_add_row(rep, "memory", variant);
	double rate, millions = (double)run->n / 1e6;

	row->policy = MULTI_POLICY;
	row->engine = ctx->engine;
	row->producers = row->workers = 1;
	row->messages = run->n;
	row->has_rate = true;
	rate = (double)run->n / ((double)(b->t_ns - a->t_ns) / 1e9);
	stats_summarize(&rate, 1, &row->rate);
	row->has_memory = true;
	row->memory = (struct report_memory){
		.warmup_messages = MEMORY_WARMUP,
		.rss_before_kib = a->rss_kib,
		.rss_after_kib = b->rss_kib,
		.growth_kib_per_million =
			((double)b->rss_kib - (double)a->rss_kib) / millions,
		.allocs_per_msg = (double)(b->allocs - a->allocs) /
				  (double)run->n,
		.frees_per_msg = (double)(b->frees - a->frees) /
				 (double)run->n,
		.alloc_bytes = b->alloc_bytes - a->alloc_bytes,
		.pool_bytes_before = a->pool_bytes,
		.pool_bytes = b->pool_bytes,
		.pool_slabs = b->pool_slabs,
	};
}

int scenario_memory(const struct bench_ctx *ctx, struct report *rep)
{
	struct bench_ctx run_ctx = *ctx;
	struct memory_run run = {
		.n = ctx->messages, .payload = ctx->payload,
		.burst = ctx->burst,
	};
	struct sy_allocator allocator = {
		.alloc = counting_alloc, .free = counting_free,
	};
	struct pinned_thread producer = { .fn = produce, .arg = &run };
	uint64_t left;
	int rc;

	run.counts = calloc(1, sizeof(*run.counts));
	if (!run.counts)
		return -ENOMEM;
	allocator.ctx = run.counts;
	run_ctx.producers = run_ctx.workers = 1;
	run.spin_limit = ctx->spin_limit;
	producer.cpu = multi_slot_cpu(&run_ctx, 0);
	if (ctx->progress)
		fprintf(stderr, "\r\033[Kmemory: %ju + 2 x %ju messages",
			(uintmax_t)MEMORY_WARMUP, (uintmax_t)run.n);
	rc = multi_engine_open(&run.m, &run_ctx, 1, &allocator,
			       ctx->burst_variant);
	if (rc < 0)
		goto out_free;
	rc = pinned_run(&producer, 1, run.spin_limit);
	if (rc < 0 && !producer.rc)
		fprintf(stderr, "sy-bench: memory: starting the producer: "
			"%s\n", strerror(-rc));
	multi_engine_close(&run.m);
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	if (rc < 0)
		goto out_free;
	add_phase_row(rep, ctx, &run, ctx->burst_variant, PHASE_BURST);
	add_phase_row(rep, ctx, &run, "engine-single", PHASE_SINGLE);
	rep->rows[rep->n_rows - 2].detail =
		"one producer, one worker; RSS from /proc/self/statm, pool "
		"from sy_engine_stats, allocs: calls of a counting "
		"sy_allocator, per message of the phase";
	left = atomic_load_explicit(&run.counts->alloc_bytes,
				    memory_order_relaxed) -
	       atomic_load_explicit(&run.counts->free_bytes,
				    memory_order_relaxed);
	if (left)
		report_add_note(rep, "memory: %ju bytes from the allocator "
				"not returned by sy_engine_destroy",
				(uintmax_t)left);
out_free:
	free(run.counts);
	return rc;
}
