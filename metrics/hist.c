/*
 * Log-linear histograms: bucket bounds, merging, and the statistics the
 * snapshots report (hist.h describes the bucket scheme).
 *
 * Accuracy. A quantile is the midpoint of the bucket that holds the sample
 * of that rank, clamped to [min, max]: exact below 128 ns, within 1/128 of
 * the true sample up to 2^42 ns. Mean and standard deviation come from the
 * exact sum and sum of squares, not from the buckets.
 *
 * Consistency. A merged histogram's count is the sum of its buckets (the
 * merge adds the buckets it read, never a shard's separate count), so count
 * and buckets always agree. Its sum, sum of squares, min and max are read
 * apart from the buckets and may lag them while the shards are written;
 * min and max are therefore clamped into the lowest and highest non-empty
 * buckets before use.
 */
#include <math.h>

#include "metrics/hist.h"

void sy__hist_init(struct sy__hist *h)
{
	atomic_init(&h->count, 0);
	atomic_init(&h->sum, 0);
	atomic_init(&h->sumsq, 0);       /* the bits of 0.0 */
	atomic_init(&h->min, UINT64_MAX);
	atomic_init(&h->max, 0);
	for (unsigned i = 0; i < SY_HIST_BUCKETS; i++)
		atomic_init(&h->b[i], 0);
}

void sy_hist_clear(struct sy_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static uint64_t load(const _Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* Add a shard's histogram, read with relaxed loads while its owner may be
 * writing it. Any thread. */
void sy__hist_merge(struct sy_hist *into, const struct sy__hist *h)
{
	uint64_t n = 0, bits, v;
	double sq;

	/* Most shards never record some kinds (a producer runs no handler).
	 * A first record still in progress is left for the next merge. */
	if (!load(&h->count))
		return;
	for (unsigned i = 0; i < SY_HIST_BUCKETS; i++) {
		v = load(&h->b[i]);
		into->b[i] += v;
		n += v;
	}
	into->count += n;
	into->sum += load(&h->sum);
	bits = load(&h->sumsq);
	memcpy(&sq, &bits, sizeof(sq));
	into->sumsq += sq;
	v = load(&h->min);
	if (v < into->min)
		into->min = v;
	v = load(&h->max);
	if (v > into->max)
		into->max = v;
}

void sy_hist_add(struct sy_hist *into, const struct sy_hist *h)
{
	for (unsigned i = 0; i < SY_HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	into->sum += h->sum;
	into->sumsq += h->sumsq;
	if (h->min < into->min)
		into->min = h->min;
	if (h->max > into->max)
		into->max = h->max;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Lowest and highest non-empty buckets; false when empty. */
static bool bucket_range(const struct sy_hist *h, unsigned *lo, unsigned *hi)
{
	unsigned i = 0, j = SY_HIST_BUCKETS;

	while (i < SY_HIST_BUCKETS && !h->b[i])
		i++;
	if (i == SY_HIST_BUCKETS)
		return false;
	while (!h->b[j - 1])
		j--;
	*lo = i;
	*hi = j - 1;
	return true;
}

/* min and max, clamped into the lowest and highest non-empty buckets (a
 * lagging or reset min/max field cannot lie outside the samples). */
static void effective_bounds(const struct sy_hist *h, uint64_t *min,
			     uint64_t *max)
{
	unsigned lo, hi;

	if (!bucket_range(h, &lo, &hi)) {
		*min = 0;
		*max = 0;
		return;
	}
	*min = clamp_u64(h->min, sy_hist_bucket_low(lo), sy_hist_bucket_high(lo));
	*max = clamp_u64(h->max, sy_hist_bucket_low(hi), sy_hist_bucket_high(hi));
}

/*
 * into -= h, where h is an earlier state of the same counts (the start of a
 * window, or a reset's baseline). Subtractions saturate at 0. min and max
 * of what is left are not known exactly: they become into's bounds clamped
 * into the lowest and highest buckets left.
 */
void sy_hist_sub(struct sy_hist *into, const struct sy_hist *h)
{
	uint64_t n = 0;

	/* Counts are the sums of the buckets: nothing to take away, or
	 * (h being an earlier state) nothing left. Idle windows cost no scan. */
	if (!h->count)
		return;
	if (into->count == h->count) {
		sy_hist_clear(into);
		return;
	}
	for (unsigned i = 0; i < SY_HIST_BUCKETS; i++) {
		into->b[i] = sub_sat(into->b[i], h->b[i]);
		n += into->b[i];
	}
	into->count = n;
	if (!n) {
		sy_hist_clear(into);
		return;
	}
	into->sum = sub_sat(into->sum, h->sum);
	into->sumsq = into->sumsq > h->sumsq ? into->sumsq - h->sumsq : 0.0;
	effective_bounds(into, &into->min, &into->max);
}

/* The exponent and sub-bucket of a bucket above the linear range. */
static unsigned octave(unsigned i, unsigned *sub)
{
	unsigned j = i - SY_HIST_LINEAR;

	*sub = j % SY_HIST_SUB;
	return SY_HIST_FIRST_EXP + j / SY_HIST_SUB;
}

uint64_t sy_hist_bucket_low(unsigned i)
{
	unsigned e, s;

	if (i < SY_HIST_LINEAR)
		return i;
	e = octave(i, &s);
	return (uint64_t)(SY_HIST_SUB + s) << (e - 6);
}

uint64_t sy_hist_bucket_high(unsigned i)
{
	unsigned e, s;

	if (i < SY_HIST_LINEAR)
		return i;
	if (i == SY_HIST_BUCKETS - 1)
		return UINT64_MAX;       /* everything from 2^42 - 2^35 up */
	e = octave(i, &s);
	return sy_hist_bucket_low(i) + ((uint64_t)1 << (e - 6)) - 1;
}

/* The midpoint of the bucket's nominal width (the last bucket's too, whose
 * real range is open-ended). */
uint64_t sy_hist_bucket_mid(unsigned i)
{
	unsigned e, s;

	if (i < SY_HIST_LINEAR)
		return i;
	e = octave(i, &s);
	return sy_hist_bucket_low(i) + ((((uint64_t)1 << (e - 6)) - 1) >> 1);
}

/* The nearest rank of quantile @p q among @p count samples (1-based). */
static uint64_t rank_of(uint64_t count, double q)
{
	double r;

	q = q < 0.0 ? 0.0 : q > 1.0 ? 1.0 : q;
	/* The smallest sample with at least q of them at or below it. The
	 * epsilon keeps 0.999 * 1000 from rounding up to 1000. */
	r = ceil(q * (double)count - 1e-9);
	if (r < 1.0)
		return 1;
	return r > (double)count ? count : (uint64_t)r;
}

/*
 * The values at quantiles @p q[0..n) (ascending) in one pass: each its
 * bucket's midpoint clamped to [min, max]. @p h is not empty.
 */
static void quantiles(const struct sy_hist *h, const double *q, unsigned n,
		      uint64_t *out)
{
	uint64_t seen = 0, min, max;
	unsigned i = 0;

	effective_bounds(h, &min, &max);
	for (unsigned k = 0; k < n; k++) {
		uint64_t rank = rank_of(h->count, q[k]);

		while (i < SY_HIST_BUCKETS - 1 && seen + h->b[i] < rank)
			seen += h->b[i++];
		out[k] = clamp_u64(sy_hist_bucket_mid(i), min, max);
	}
}

uint64_t sy_hist_quantile(const struct sy_hist *h, double q)
{
	uint64_t v;

	if (!h->count)
		return 0;
	quantiles(h, &q, 1, &v);
	return v;
}

void sy_hist_summary(const struct sy_hist *h, struct sy_hist_summary *out)
{
	static const double qs[5] = { 0.50, 0.90, 0.95, 0.99, 0.999 };
	uint64_t p[5];
	double mean, var;

	memset(out, 0, sizeof(*out));
	if (!h->count)
		return;
	out->count = h->count;
	effective_bounds(h, &out->min, &out->max);
	mean = (double)h->sum / (double)h->count;
	if (mean < (double)out->min)
		mean = (double)out->min;
	if (mean > (double)out->max)
		mean = (double)out->max;
	out->mean = mean;
	/* E[x^2] - mean^2 cancels badly when the spread is small: one value
	 * repeated has no spread at all. */
	var = h->sumsq / (double)h->count - mean * mean;
	out->stddev = out->min == out->max || var <= 0.0 ? 0.0 : sqrt(var);
	quantiles(h, qs, 5, p);
	out->p50 = p[0];
	out->p90 = p[1];
	out->p95 = p[2];
	out->p99 = p[3];
	out->p999 = p[4];
}

/*
 * Samples at or below @p ns: every bucket below the one that holds it, plus
 * a linear share of that bucket (over the part of it between min and max).
 * Exact below 128 ns, at a bucket's upper bound, below min and at or above
 * max; otherwise off by less than the samples of that one bucket.
 * Monotonic in @p ns.
 */
uint64_t sy_hist_count_le(const struct sy_hist *h, uint64_t ns)
{
	uint64_t min, max, n = 0, low, high;
	unsigned i, k, hi;

	if (!h->count)
		return 0;
	effective_bounds(h, &min, &max);
	if (ns < min)
		return 0;
	if (ns >= max)
		return h->count;
	/* Sum the shorter side of bucket k: below it, or up to max's. */
	k = sy__hist_index(ns);
	hi = sy__hist_index(max);
	if (hi - k < k) {
		for (i = k + 1; i <= hi; i++)
			n += h->b[i];
		n = h->count - n - h->b[k];
	} else {
		for (i = 0; i < k; i++)
			n += h->b[i];
	}
	/* min <= ns < max, so low <= ns <= high. */
	low = sy_hist_bucket_low(k) > min ? sy_hist_bucket_low(k) : min;
	high = sy_hist_bucket_high(k) < max ? sy_hist_bucket_high(k) : max;
	if (ns == high)
		return n + h->b[k];
	return n + (uint64_t)((double)h->b[k] * (double)(ns - low + 1) /
			      (double)(high - low + 1));
}

uint64_t sy_coarse_mid(unsigned i)
{
	unsigned e, s;

	if (i == 0)
		return (uint64_t)1 << SY_COARSE_FIRST_EXP;
	if (i >= SY_COARSE_BUCKETS - 1)
		return (uint64_t)1 << (SY_COARSE_LAST_EXP + 1);
	e = SY_COARSE_FIRST_EXP + (i - 1) / 4;
	s = (i - 1) % 4;
	/* [2^e + s 2^(e-2), 2^e + (s+1) 2^(e-2)): the middle is s + 1/2 in. */
	return ((uint64_t)1 << e) + ((uint64_t)(2 * s + 1) << (e - 3));
}

void sy_coarse_latency(const uint64_t *b, struct sy_latency *out)
{
	static const double q[3] = { 0.5, 0.99, 0.999 };
	uint64_t *at[3] = { &out->p50_ns, &out->p99_ns, &out->p999_ns };
	uint64_t n = 0, seen = 0;
	unsigned k = 0;

	for (unsigned i = 0; i < SY_COARSE_BUCKETS; i++)
		n += b[i];
	memset(out, 0, sizeof(*out));
	out->samples = n;
	for (unsigned i = 0; n && i < SY_COARSE_BUCKETS && k < 3; i++) {
		seen += b[i];
		while (k < 3 && seen >= rank_of(n, q[k]))
			*at[k++] = sy_coarse_mid(i);
	}
}
