/*
 * Summaries of repeated measurements: median, min and max of a few runs,
 * percentiles of many latency samples.
 */
#ifndef SY_PERF_STATS_H
#define SY_PERF_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Most repeats of one variant (--runs). */
#define STATS_MAX_RUNS 1000

struct stats_summary {
	double median;
	double min;
	double max;
	unsigned runs;
};

/** Latency percentiles, in nanoseconds (nearest rank). */
struct stats_latency {
	uint64_t p50;
	uint64_t p90;
	uint64_t p99;
	uint64_t p999;
	uint64_t max;
};

/** Summarize @p n (1 to STATS_MAX_RUNS) values; @p values is left as is. */
void stats_summarize(const double *values, unsigned n,
		     struct stats_summary *out);

/** Percentiles of @p n (>= 1) samples; sorts @p samples in place. */
void stats_percentiles(uint64_t *samples, size_t n, struct stats_latency *out);

/**
 * Combine the percentiles of @p n (1 to STATS_MAX_RUNS) runs: the median of
 * each percentile, and the largest maximum.
 */
void stats_latency_median(const struct stats_latency *runs, unsigned n,
			  struct stats_latency *out);

#endif /* SY_PERF_STATS_H */
