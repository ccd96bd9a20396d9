/* Statistics, CPU placement, pinned threads behind a start gate, the core-to-core probe, and
 * the interleaved measurement of variants. */
#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* qsort()'s comparison of two values of @p type. */
#define CMP_FN(name, type) static int name(const void *a, const void *b) \
	{ return (*(const type *)a > *(const type *)b) - \
		 (*(const type *)a < *(const type *)b); }
CMP_FN(cmp_double, double)
CMP_FN(cmp_u64, uint64_t)

void stats_summarize(const double *values, unsigned n, struct stats_summary *out)
{
	double sorted[STATS_MAX_RUNS];

	assert(n >= 1 && n <= STATS_MAX_RUNS);
	memcpy(sorted, values, n * sizeof(*values));
	qsort(sorted, n, sizeof(*sorted), cmp_double);
	out->min = sorted[0];
	out->max = sorted[n - 1];
	out->median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
	out->runs = n;
}

#define STATS_PCTS 4 /* of struct stats_latency, its max excluded */

/* Nearest rank: the sample at or below which per mille lie. Sorts. */
static void stats_percentiles(uint64_t *samples, size_t n, struct stats_latency *out)
{
	static const unsigned per_mille[STATS_PCTS] = { 500, 900, 990, 999 };

	qsort(samples, n, sizeof(*samples), cmp_u64);
	for (unsigned p = 0; p < STATS_PCTS; p++) {
		size_t rank = (n * per_mille[p] + 999) / 1000;

		out->pct[p] = samples[rank ? rank - 1 : 0];
	}
	out->max = samples[n - 1];
}

/* The median of each percentile over @p n runs, and the largest max. */
static void stats_latency_median(const struct stats_latency *runs, unsigned n,
				 struct stats_latency *out)
{
	double values[STATS_MAX_RUNS];
	struct stats_summary s;

	out->max = 0;
	for (unsigned i = 0; i < n; i++)
		out->max = runs[i].max > out->max ? runs[i].max : out->max;
	for (unsigned p = 0; p < STATS_PCTS; p++) {
		for (unsigned i = 0; i < n; i++)
			values[i] = (double)runs[i].pct[p];
		stats_summarize(values, n, &s);
		out->pct[p] = (uint64_t)s.median;
	}
}

/* Read a CPU number at *p, advance past it. */
static bool parse_cpu(const char **p, unsigned *out)
{
	char *end = NULL;
	unsigned long v = isdigit((unsigned char)**p) ? strtoul(*p, &end, 10) : CPU_SETSIZE;

	*p = v < CPU_SETSIZE ? end : *p;
	*out = (unsigned)v;
	return v < CPU_SETSIZE;
}

int bench_parse_cpus(const char *s, cpu_set_t *out, char *why, size_t len)
{
	const char *p = s;
	unsigned first, last, stride;

	CPU_ZERO(out);
	while (parse_cpu(&p, &first)) {
		last = first;
		stride = 1;
		if (*p == '-') {
			p++;
			if (!parse_cpu(&p, &last) || last < first)
				break;
			if (*p == ':') {
				p++;
				if (!parse_cpu(&p, &stride) || !stride)
					break;
			}
		}
		for (unsigned cpu = first; cpu <= last; cpu += stride)
			CPU_SET(cpu, out);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			break;
		p++;
	}
	snprintf(why, len, "bad CPU list \"%s\" at offset %td: expected N, N-M or N-M:S items "
		 "separated by commas, N <= M < %d, S >= 1", s, p - s, CPU_SETSIZE);
	return -EINVAL;
}

int bench_nth_cpu(const cpu_set_t *set, unsigned n)
{
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, set) && n-- == 0)
			return cpu;
	return -1;
}

int bench_cpu(const struct bench_ctx *ctx, bool worker, unsigned i)
{
	unsigned pairs = ctx->producers < ctx->workers ? ctx->producers : ctx->workers;
	unsigned slot = i < pairs ? 2 * i + worker : worker ? ctx->producers + i : pairs + i;

	return bench_nth_cpu(&ctx->cpus, slot % CPU_COUNT(&ctx->cpus));
}

unsigned bench_spin_limit(const struct bench_ctx *ctx, unsigned threads)
{
	return threads > (unsigned)CPU_COUNT(&ctx->cpus) ? 0 : BENCH_SPIN_LIMIT;
}

void bench_print_thread_map(const struct bench_ctx *ctx)
{
	const char *env = getenv("SY_DISPLAY_AFFINITY");
	cpu_set_t allowed;
	int n = 0;

	if (!env || strcmp(env, "1"))
		return;
	fprintf(stderr, "sy-bench: producer -> cpu %d (baselines, engine producer, probe)\n"
		"sy-bench: consumer -> cpu %d (baselines, probe; the engine's one worker is pinned "
		"there too)\n", ctx->producer_cpu, ctx->consumer_cpu);
	if (!sched_getaffinity(0, sizeof(allowed), &allowed))
		n = CPU_COUNT(&allowed);
	if (n == 1)
		fprintf(stderr, "sy-bench: control -> cpu %d (not pinned: the only allowed CPU)\n",
			bench_nth_cpu(&allowed, 0));
	else
		fprintf(stderr, "sy-bench: control -> not pinned (%d allowed CPUs; it starts, then "
			"waits for the others)\n", n);
}

/* No timed work starts before its partner exists: each thread checks in
 * and waits until the control thread opens the gate (or aborts the run). */
enum gate_state { GATE_CLOSED, GATE_OPEN, GATE_ABORT };

struct gate {
	atomic_uint arrived;
	atomic_int state;
	unsigned spin_limit;
};

static void *pinned_main(void *arg)
{
	struct pinned_thread *t = arg;
	struct gate *gate = t->gate;
	struct backoff b = { .limit = gate->spin_limit };
	int state;

	atomic_fetch_add_explicit(&gate->arrived, 1, memory_order_relaxed);
	/* G1 (acquire) pairs with G0: the setup done before the gate opened. */
	while ((state = atomic_load_explicit(&gate->state, memory_order_acquire)) == GATE_CLOSED) {
		if (backoff_wait(&b) < 0) {
			t->rc = -ETIMEDOUT;
			return NULL;
		}
	}
	if (state == GATE_OPEN)
		t->rc = t->fn(t->arg);
	return NULL;
}

int pinned_run(struct pinned_thread *threads, unsigned n, unsigned spin_limit)
{
	struct gate gate = { .spin_limit = spin_limit };
	unsigned started;
	pthread_attr_t attr;
	struct backoff b = { .limit = spin_limit };
	cpu_set_t set;
	int rc = 0;

	assert(n >= 1 && n <= BENCH_MAX_THREADS);
	atomic_init(&gate.arrived, 0);
	atomic_init(&gate.state, GATE_CLOSED);
	for (started = 0; !rc && started < n; started++) {
		threads[started].rc = 0;
		threads[started].gate = &gate;
		CPU_ZERO(&set);
		CPU_SET(threads[started].cpu, &set);
		rc = -pthread_attr_init(&attr);
		if (rc)
			continue;
		rc = -pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		if (!rc)
			rc = -pthread_create(&threads[started].tid, &attr,
					     pinned_main, &threads[started]);
		pthread_attr_destroy(&attr);
	}
	/* The thread whose creation failed does not exist. */
	started -= rc != 0;
	while (!rc && atomic_load_explicit(&gate.arrived, memory_order_relaxed) < n)
		rc = backoff_wait(&b);
	/* G0 (release): pairs with G1 in pinned_main(). */
	atomic_store_explicit(&gate.state, rc ? GATE_ABORT : GATE_OPEN, memory_order_release);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(threads[i].tid, NULL);
		rc = rc ? rc : threads[i].rc;
	}
	return rc;
}

#define PROBE_ROUND_TRIPS 10000u

/*
 * The ball goes 0, 1, 2, ...: the pinger takes the even values, the ponger the odd ones, and
 * each passes it on with the next; the pinger times each return. Relaxed: the value is the
 * whole message, it publishes nothing.
 */
struct probe {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t ball;
	_Alignas(BENCH_CACHELINE) unsigned spin_limit;
	uint64_t samples[PROBE_ROUND_TRIPS];
};

struct probe_side {
	struct probe *p;
	unsigned pong;     /* 0: the pinger, 1: the ponger */
};

static int probe_play(void *arg)
{
	const struct probe_side *side = arg;
	const uint64_t last = 2 * PROBE_ROUND_TRIPS - side->pong;
	struct probe *p = side->p;
	uint64_t t0 = bench_now_ns(), t1;
	struct backoff b = { .limit = p->spin_limit };

	for (uint64_t v = side->pong; v <= last; v += 2) {
		while (atomic_load_explicit(&p->ball, memory_order_relaxed) != v)
			if (backoff_wait(&b) < 0)
				return -ETIMEDOUT;
		backoff_reset(&b);
		if (!side->pong && v) {
			t1 = bench_now_ns();
			p->samples[v / 2 - 1] = t1 - t0;
			t0 = t1;
		}
		atomic_store_explicit(&p->ball, v + 1, memory_order_relaxed);
	}
	return 0;
}

int probe_round_trip(const struct bench_ctx *ctx, double *median_ns)
{
	struct probe *p = aligned_alloc(BENCH_CACHELINE, sizeof(*p));
	struct probe_side ping = { p, 0 }, pong = { p, 1 };
	struct pinned_thread threads[2] = {
		{ .cpu = ctx->producer_cpu, .fn = probe_play, .arg = &ping },
		{ .cpu = ctx->consumer_cpu, .fn = probe_play, .arg = &pong },
	};
	struct stats_latency lat;
	int rc;

	if (!p)
		return -ENOMEM;
	atomic_init(&p->ball, 0);
	p->spin_limit = bench_spin_limit(ctx, 2);
	rc = pinned_run(threads, 2, p->spin_limit);
	if (!rc) {
		stats_percentiles(p->samples, PROBE_ROUND_TRIPS, &lat);
		*median_ns = (double)lat.p50;
	} else {
		bench_fail(rc, "core-to-core probe: %s", strerror(-rc));
	}
	free(p);
	return rc;
}

bool bench_have(const char *prog)
{
	char command[128];

	snprintf(command, sizeof(command), "command -v %s >/dev/null", prog);
	return system(command) == 0;
}

int bench_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sy-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return err;
}

void bench_progress(const struct bench_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (!ctx->progress)
		return;
	fprintf(stderr, "\r\033[K");
	va_start(ap, fmt);
	if (fmt)
		vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* Every variant once per round, ctx->runs rounds. */
static int run_rounds(const struct bench_ctx *ctx, const char *scenario, const struct variant *v,
		      unsigned nv, uint64_t *samples, double *rates, struct stats_latency *lat)
{
	double secs;
	int rc = 0;

	for (unsigned r = 0; !rc && r < ctx->runs; r++) {
		for (unsigned i = 0; !rc && i < nv; i++) {
			bench_progress(ctx, "%s: run %u/%u: %s", scenario, r + 1, ctx->runs,
				       v[i].name);
			rc = v[i].run(&v[i].ctx, v[i].n, samples, &secs);
			if (rc < 0) {
				bench_progress(ctx, NULL);
				bench_fail(rc, "%s: %s failed: %s", scenario, v[i].name,
					   rc == -EPROTO ? "messages lost or out of order"
					   : strerror(-rc));
				break;
			}
			/* A run too short for the clock counts as 1 ns. */
			rates[i * ctx->runs + r] = (double)v[i].n / (secs > 1e-9 ? secs : 1e-9);
			if (lat)
				stats_percentiles(samples, v[i].n, &lat[i * ctx->runs + r]);
		}
	}
	bench_progress(ctx, NULL);
	return rc;
}

int bench_measure(const struct bench_ctx *ctx, struct report *rep,
		  const char *scenario, const struct variant *v, unsigned nv,
		  bool latency, double *rates)
{
	double *own = rates ? NULL : calloc((size_t)nv * ctx->runs, sizeof(*own));
	struct stats_latency *lat = NULL;
	const int first = (int)rep->n_rows;
	uint64_t *samples = NULL, most = 0;
	int rc = -ENOMEM;

	for (unsigned i = 0; latency && i < nv; i++)
		most = v[i].n > most ? v[i].n : most;
	if (latency) {
		samples = calloc(most, sizeof(*samples));
		lat = calloc((size_t)nv * ctx->runs, sizeof(*lat));
	}
	rates = rates ? rates : own;
	if (rates && (!latency || (samples && lat)))
		rc = run_rounds(ctx, scenario, v, nv, samples, rates, lat);
	for (unsigned i = 0; !rc && i < nv; i++) {
		struct report_row *row = report_add_row(rep, scenario, v[i].name);

		row->producers = v[i].engine ? v[i].ctx.producers : 1;
		row->workers = v[i].engine ? v[i].ctx.workers : 1;
		row->policy = v[i].engine ? bench_policy(&v[i].ctx) : NULL;
		row->engine = v[i].engine ? v[i].ctx.engine : NULL;
		row->messages = v[i].n;
		row->has_rate = true;
		row->has_latency = latency;
		stats_summarize(&rates[i * ctx->runs], ctx->runs, &row->rate);
		if (latency)
			stats_latency_median(&lat[i * ctx->runs], ctx->runs, &row->latency);
	}
	/* Each engine row: its ratio to each baseline (a row without one). */
	for (unsigned i = first; !rc && i < rep->n_rows; i++) {
		struct report_row *row = &rep->rows[i];

		for (unsigned b = first; row->engine && b < rep->n_rows; b++)
			if (!rep->rows[b].engine)
				report_add_ratio(row, rep->rows[b].variant,
						 row->rate.median / rep->rows[b].rate.median);
	}
	free(lat);
	free(samples);
	free(own);
	return rc < 0 ? rc : first;
}
