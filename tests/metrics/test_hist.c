/*
 * Histograms (metrics/hist.h): statistics against exact values computed
 * from the sorted samples, merging, window subtraction and count_le.
 *
 * Samples go through the path the engine uses: sy__hist_record() into a
 * thread's histogram, then sy__hist_merge() into a merged one.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "metrics/hist.h"

#define N 100000u
#define HOUR_NS 3600000000000ull

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* Uniform in [lo, hi]. */
static uint64_t uniform(uint64_t lo, uint64_t hi)
{
	return lo + rnd() % (hi - lo + 1);
}

static double unit(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A merged histogram of @p v[0..n), recorded one by one. */
static struct sy_hist *hist_of(const uint64_t *v, size_t n)
{
	struct sy__hist *shard = malloc(sizeof(*shard));
	struct sy_hist *h = malloc(sizeof(*h));

	cr_assert(shard && h);
	sy__hist_init(shard);
	for (size_t i = 0; i < n; i++)
		sy__hist_record(shard, v[i]);
	sy_hist_clear(h);
	sy__hist_merge(h, shard);
	free(shard);
	return h;
}

/* The nearest-rank quantile of sorted @p v. */
static uint64_t exact_quantile(const uint64_t *v, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n - 1e-9);

	return v[(rank ? rank : 1) - 1];
}

static void assert_near(double got, double want, double rel, const char *what)
{
	cr_assert(fabs(got - want) <= rel * fabs(want),
		  "%s: got %.6g, want %.6g (within %.2g%%)", what, got, want,
		  rel * 100);
}

/* Every statistic of sy_hist_summary() against the exact ones, within 1%. */
static void check_stats(uint64_t *v, size_t n)
{
	static const double qs[] = { 0.50, 0.90, 0.95, 0.99, 0.999 };
	struct sy_hist_summary s;
	struct sy_hist *h = hist_of(v, n);
	long double sum = 0, sq = 0, mean;
	uint64_t got[5];

	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	mean = sum / n;
	for (size_t i = 0; i < n; i++)
		sq += ((long double)v[i] - mean) * ((long double)v[i] - mean);
	sy_hist_summary(h, &s);
	cr_assert_eq(s.count, n);
	cr_assert_eq(s.min, v[0], "min %lu, want %lu", s.min, v[0]);
	cr_assert_eq(s.max, v[n - 1], "max %lu, want %lu", s.max, v[n - 1]);
	assert_near(s.mean, (double)mean, 0.01, "mean");
	assert_near(s.stddev, (double)sqrtl(sq / n), 0.01, "stddev");
	got[0] = s.p50;
	got[1] = s.p90;
	got[2] = s.p95;
	got[3] = s.p99;
	got[4] = s.p999;
	for (unsigned i = 0; i < 5; i++) {
		assert_near((double)got[i], (double)exact_quantile(v, n, qs[i]),
			    0.01, "percentile");
		assert_near((double)sy_hist_quantile(h, qs[i]),
			    (double)exact_quantile(v, n, qs[i]), 0.01,
			    "sy_hist_quantile");
	}
	free(h);
}

static uint64_t *samples(size_t n)
{
	uint64_t *v = malloc(n * sizeof(*v));

	cr_assert(v);
	rng_state = 0x9e3779b97f4a7c15ull;
	return v;
}

Test(metrics_hist, uniform_statistics_within_one_percent)
{
	uint64_t *v = samples(N);

	for (size_t i = 0; i < N; i++)
		v[i] = uniform(1000, 1000000);
	check_stats(v, N);
	free(v);
}

Test(metrics_hist, exponential_statistics_within_one_percent)
{
	uint64_t *v = samples(N);

	for (size_t i = 0; i < N; i++)
		v[i] = (uint64_t)(-50000.0 * log(1.0 - unit()));
	check_stats(v, N);
	free(v);
}

Test(metrics_hist, bimodal_statistics_within_one_percent)
{
	uint64_t *v = samples(N);

	/* 70% near 10 us, 30% near 5 ms: p50 in the first mode, p90 up in
	 * the second, no quantile at the boundary. */
	for (size_t i = 0; i < N; i++)
		v[i] = i % 10 < 7 ? uniform(9000, 11000) : uniform(4500000, 5500000);
	check_stats(v, N);
	free(v);
}

Test(metrics_hist, single_value_is_exact)
{
	uint64_t *v = samples(1000);
	struct sy_hist_summary s;
	struct sy_hist *h;

	for (size_t i = 0; i < 1000; i++)
		v[i] = 12345678;
	h = hist_of(v, 1000);
	sy_hist_summary(h, &s);
	cr_assert_eq(s.min, 12345678);
	cr_assert_eq(s.max, 12345678);
	cr_assert_eq(s.p50, 12345678);
	cr_assert_eq(s.p999, 12345678);
	cr_assert_eq(s.mean, 12345678.0);
	cr_assert_eq(s.stddev, 0.0);
	free(h);
	check_stats(v, 1000);
	free(v);
}

Test(metrics_hist, ends_of_the_range)
{
	uint64_t *v = samples(N);

	/* 40% at 1 to 10 ns, 60% within a minute of an hour. */
	for (size_t i = 0; i < N; i++)
		v[i] = i % 5 < 2 ? uniform(1, 10) :
		       uniform(HOUR_NS - 60000000000ull, HOUR_NS + 60000000000ull);
	check_stats(v, N);
	free(v);
}

Test(metrics_hist, one_nanosecond_and_one_hour_alone)
{
	uint64_t one = 1, hour = HOUR_NS;
	struct sy_hist_summary s;
	struct sy_hist *h = hist_of(&one, 1);

	sy_hist_summary(h, &s);
	cr_assert(s.count == 1 && s.min == 1 && s.max == 1 && s.p50 == 1 &&
		  s.p999 == 1);
	free(h);
	h = hist_of(&hour, 1);
	sy_hist_summary(h, &s);
	cr_assert(s.min == HOUR_NS && s.max == HOUR_NS && s.p99 == HOUR_NS);
	cr_assert_eq(s.mean, (double)HOUR_NS);
	free(h);
}

Test(metrics_hist, empty_summary_is_zero)
{
	struct sy_hist *h = malloc(sizeof(*h));
	struct sy_hist_summary s;

	sy_hist_clear(h);
	sy_hist_summary(h, &s);
	cr_assert(s.count == 0 && s.min == 0 && s.max == 0 && s.mean == 0 &&
		  s.stddev == 0 && s.p50 == 0 && s.p999 == 0);
	cr_assert_eq(sy_hist_quantile(h, 0.5), 0);
	cr_assert_eq(sy_hist_count_le(h, UINT64_MAX), 0);
	free(h);
}

Test(metrics_hist, buckets_tile_the_range)
{
	for (unsigned i = 0; i < SY_HIST_BUCKETS; i++) {
		uint64_t lo = sy_hist_bucket_low(i), hi = sy_hist_bucket_high(i);

		cr_assert(lo <= sy_hist_bucket_mid(i) && sy_hist_bucket_mid(i) <= hi);
		cr_assert_eq(sy__hist_index(lo), i, "low of %u", i);
		cr_assert_eq(sy__hist_index(hi), i, "high of %u", i);
		if (i + 1 < SY_HIST_BUCKETS) {
			cr_assert_eq(sy_hist_bucket_low(i + 1), hi + 1, "gap after %u", i);
			/* At most 1/64 of the lower bound wide. */
			cr_assert(lo < SY_HIST_LINEAR || (hi - lo + 1) * 64 <= lo);
		}
	}
	cr_assert_eq(sy_hist_bucket_low(0), 0);
	cr_assert_eq(sy_hist_bucket_high(SY_HIST_BUCKETS - 1), UINT64_MAX);
}

/* Two merged histograms are equal (sumsq to rounding). */
static void assert_same(const struct sy_hist *a, const struct sy_hist *b)
{
	cr_assert_eq(a->count, b->count);
	cr_assert_eq(a->sum, b->sum);
	cr_assert_eq(a->min, b->min);
	cr_assert_eq(a->max, b->max);
	cr_assert(fabs(a->sumsq - b->sumsq) <= 1e-12 * b->sumsq);
	cr_assert(memcmp(a->b, b->b, sizeof(a->b)) == 0);
}

Test(metrics_hist, merging_equals_one_histogram_of_all_samples)
{
	uint64_t *v = samples(N);
	struct sy_hist *a, *b, *all, *sum = malloc(sizeof(*sum));
	struct sy__hist *sa = malloc(sizeof(*sa)), *sb = malloc(sizeof(*sb));

	for (size_t i = 0; i < N; i++)
		v[i] = i < N / 2 ? uniform(1, 5000) : uniform(100000, 90000000000ull);
	a = hist_of(v, N / 3);
	b = hist_of(v + N / 3, N - N / 3);
	all = hist_of(v, N);
	/* Merged from the merged ones... */
	sy_hist_clear(sum);
	sy_hist_add(sum, a);
	sy_hist_add(sum, b);
	assert_same(sum, all);
	/* ...and from the threads' histograms. */
	sy__hist_init(sa);
	sy__hist_init(sb);
	for (size_t i = 0; i < N; i++)
		sy__hist_record(i % 2 ? sa : sb, v[i]);
	sy_hist_clear(sum);
	sy__hist_merge(sum, sa);
	sy__hist_merge(sum, sb);
	assert_same(sum, all);
	/* Subtracting a part leaves the other part's buckets and sums. */
	sy_hist_sub(sum, a);
	cr_assert_eq(sum->count, b->count);
	cr_assert_eq(sum->sum, b->sum);
	cr_assert(memcmp(sum->b, b->b, sizeof(b->b)) == 0);
	cr_assert(sum->min <= b->min + b->min / 64 && sum->min + sum->min / 64 >= b->min);
	cr_assert(sum->max >= b->max - b->max / 64 && sum->max <= b->max + b->max / 64);
	free(a);
	free(b);
	free(all);
	free(sum);
	free(sa);
	free(sb);
	free(v);
}

Test(metrics_hist, subtracting_everything_leaves_it_empty)
{
	uint64_t *v = samples(1000);
	struct sy_hist *h, *g;

	for (size_t i = 0; i < 1000; i++)
		v[i] = uniform(1, 1000000);
	h = hist_of(v, 1000);
	g = hist_of(v, 1000);
	sy_hist_sub(h, g);
	cr_assert(h->count == 0 && h->sum == 0 && h->min == UINT64_MAX &&
		  h->max == 0);
	/* Saturating: more than was there is still empty, not negative. */
	sy_hist_sub(h, g);
	cr_assert_eq(h->count, 0);
	free(h);
	free(g);
	free(v);
}

Test(metrics_hist, count_le_against_exact_counts)
{
	uint64_t *v = samples(N);
	struct sy_hist *h;
	uint64_t prev = 0;

	for (size_t i = 0; i < N; i++)
		v[i] = (uint64_t)(-200000.0 * log(1.0 - unit()));
	h = hist_of(v, N);
	qsort(v, N, sizeof(*v), cmp_u64);
	if (v[0] > 0)
		cr_assert_eq(sy_hist_count_le(h, v[0] - 1), 0);
	cr_assert_eq(sy_hist_count_le(h, v[N - 1]), N);
	cr_assert_eq(sy_hist_count_le(h, UINT64_MAX), N);
	for (uint64_t t = 1; t < 4000000; t = t * 5 / 4 + 1) {
		size_t exact = 0, lo = 0, hi = N;
		unsigned k = sy__hist_index(t);
		uint64_t got = sy_hist_count_le(h, t);

		/* exact = samples <= t (binary search). */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (v[mid] <= t)
				lo = mid + 1;
			else
				hi = mid;
		}
		exact = lo;
		cr_assert(got >= prev, "count_le not monotonic at %lu", t);
		prev = got;
		if (t == sy_hist_bucket_high(k) || t < SY_HIST_LINEAR)
			cr_assert_eq(got, exact, "at a bucket bound %lu", t);
		else
			cr_assert(got + h->b[k] >= exact && got <= exact + h->b[k],
				  "count_le(%lu) = %lu, exact %zu, bucket holds %lu",
				  t, got, exact, h->b[k]);
	}
	free(h);
	free(v);
}

Test(metrics_hist, count_le_at_bucket_bounds_is_exact)
{
	uint64_t *v = samples(N);
	struct sy_hist *h;
	size_t exact = 0;

	for (size_t i = 0; i < N; i++)
		v[i] = uniform(100, 10000000);
	h = hist_of(v, N);
	qsort(v, N, sizeof(*v), cmp_u64);
	for (unsigned i = 0; i < SY_HIST_BUCKETS - 1; i += 7) {
		uint64_t t = sy_hist_bucket_high(i);

		while (exact < N && v[exact] <= t)
			exact++;
		cr_assert_eq(sy_hist_count_le(h, t), exact, "bound %lu", t);
	}
	free(h);
	free(v);
}
