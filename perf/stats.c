/*
 * Medians and percentiles for sy-bench.
 */
#include "stats.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

void stats_summarize(const double *values, unsigned n,
		     struct stats_summary *out)
{
	double sorted[STATS_MAX_RUNS];

	assert(n >= 1 && n <= STATS_MAX_RUNS);
	memcpy(sorted, values, n * sizeof(*values));
	qsort(sorted, n, sizeof(*sorted), cmp_double);
	out->min = sorted[0];
	out->max = sorted[n - 1];
	out->median = n % 2 ? sorted[n / 2]
			    : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
	out->runs = n;
}

/* The sample at or below which @p per of @p of sorted samples lie. */
static uint64_t nearest_rank(const uint64_t *sorted, size_t n, unsigned per,
			     unsigned of)
{
	size_t rank = (n * per + of - 1) / of;

	return sorted[rank ? rank - 1 : 0];
}

void stats_percentiles(uint64_t *samples, size_t n, struct stats_latency *out)
{
	assert(n >= 1);
	qsort(samples, n, sizeof(*samples), cmp_u64);
	out->p50 = nearest_rank(samples, n, 50, 100);
	out->p90 = nearest_rank(samples, n, 90, 100);
	out->p99 = nearest_rank(samples, n, 99, 100);
	out->p999 = nearest_rank(samples, n, 999, 1000);
	out->max = samples[n - 1];
}

/* The median of @p n values, as an integer number of nanoseconds. */
static uint64_t median_ns(const double *values, unsigned n)
{
	struct stats_summary s;

	stats_summarize(values, n, &s);
	return (uint64_t)s.median;
}

void stats_latency_median(const struct stats_latency *runs, unsigned n,
			  struct stats_latency *out)
{
	double p50[STATS_MAX_RUNS], p90[STATS_MAX_RUNS];
	double p99[STATS_MAX_RUNS], p999[STATS_MAX_RUNS];

	assert(n >= 1 && n <= STATS_MAX_RUNS);
	out->max = 0;
	for (unsigned i = 0; i < n; i++) {
		p50[i] = (double)runs[i].p50;
		p90[i] = (double)runs[i].p90;
		p99[i] = (double)runs[i].p99;
		p999[i] = (double)runs[i].p999;
		if (runs[i].max > out->max)
			out->max = runs[i].max;
	}
	out->p50 = median_ns(p50, n);
	out->p90 = median_ns(p90, n);
	out->p99 = median_ns(p99, n);
	out->p999 = median_ns(p999, n);
}
