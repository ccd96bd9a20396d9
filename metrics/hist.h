/*
 * Log-linear latency histograms, in nanoseconds.
 *
 * Values below 128 have a bucket each. Above, every power of two [2^e,
 * 2^(e+1)) is split into 64 equal buckets, so a bucket is at most 1/64 of
 * its lower bound wide and its midpoint is within 1/128 (0.78%) of any value
 * in it. The last octave starts at 2^41 ns (36 minutes); values from 2^42 ns
 * (73 minutes) up land in the last bucket. 2368 buckets in all.
 *
 * A shard's histogram has one writer (its thread): a record is a few
 * counter adds (counter.h) and relaxed loads and stores, no locked
 * instruction. The collector reads it with relaxed
 * loads; a merged view is exact once the writer is quiet, and otherwise off
 * by the records in progress (count and buckets are read separately).
 */
#ifndef SY_METRICS_HIST_H
#define SY_METRICS_HIST_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "metrics/counter.h"
#include "switchyard.h"

#define SY_HIST_LINEAR 128u        /* values with a bucket each */
#define SY_HIST_SUB 64u            /* buckets per octave above */
#define SY_HIST_FIRST_EXP 7u       /* 2^7 = SY_HIST_LINEAR */
#define SY_HIST_LAST_EXP 41u       /* the last octave's exponent */
#define SY_HIST_BUCKETS (SY_HIST_LINEAR + \
			 (SY_HIST_LAST_EXP - SY_HIST_FIRST_EXP + 1) * SY_HIST_SUB)

/* One thread's histogram. */
struct sy__hist {
	_Atomic uint64_t count;
	_Atomic uint64_t sum;          /* ns */
	_Atomic uint64_t sumsq;        /* a double's bits: sum of ns^2 */
	_Atomic uint64_t min;          /* UINT64_MAX when empty */
	_Atomic uint64_t max;
	_Atomic uint64_t b[SY_HIST_BUCKETS];
};

/* A merged histogram (plain numbers; owned by one thread or immutable). */
struct sy_hist {
	uint64_t count;
	uint64_t sum;
	double sumsq;
	uint64_t min;                  /* UINT64_MAX when empty */
	uint64_t max;
	uint64_t b[SY_HIST_BUCKETS];
};

/* The position of @p v's highest set bit, v > 0 (one bsr or lzcnt: the
 * xor, unlike 63 minus the count, folds into it). */
static inline unsigned sy__hist_top_bit(uint64_t v)
{
	return 63u ^ (unsigned)__builtin_clzll(v);
}

static inline unsigned sy__hist_index(uint64_t v)
{
	unsigned k;

	if (v < SY_HIST_LINEAR)
		return (unsigned)v;
	if (v >> (SY_HIST_LAST_EXP + 1))
		return SY_HIST_BUCKETS - 1;
	/* The octave [2^e, 2^(e+1)) starts at bucket LINEAR + (e - 7) * 64,
	 * which is 64 * (e - 6) + 64; v's top 7 bits, v >> (e - 6), are 64
	 * to 127: their value is the start's 64 plus the bucket in it. */
	k = sy__hist_top_bit(v) - 6;
	return (k << 6) + (unsigned)(v >> k);
}

static inline void sy__hist_bump(_Atomic uint64_t *a, uint64_t n)
{
	sy__counter_add(a, n);
}

/* Record @p ns. The owning thread only. */
static inline void sy__hist_record(struct sy__hist *h, uint64_t ns)
{
	double sq;
	uint64_t bits;

	sy__hist_bump(&h->b[sy__hist_index(ns)], 1);
	sy__hist_bump(&h->count, 1);
	sy__hist_bump(&h->sum, ns);
	bits = atomic_load_explicit(&h->sumsq, memory_order_relaxed);
	memcpy(&sq, &bits, sizeof(sq));
	sq += (double)ns * (double)ns;
	memcpy(&bits, &sq, sizeof(bits));
	atomic_store_explicit(&h->sumsq, bits, memory_order_relaxed);
	if (ns < atomic_load_explicit(&h->min, memory_order_relaxed))
		atomic_store_explicit(&h->min, ns, memory_order_relaxed);
	if (ns > atomic_load_explicit(&h->max, memory_order_relaxed))
		atomic_store_explicit(&h->max, ns, memory_order_relaxed);
}

/*
 * Coarse histograms: a route's latency in every worker's shard, where
 * thousands of them must fit. Four buckets per power of two from 2^6 to
 * 2^36 ns; below and above, one bucket each. A bucket's midpoint is within
 * 12.5% of any value in it. Plain counters (metrics/counter.h) record them.
 */
#define SY_COARSE_FIRST_EXP 6u
#define SY_COARSE_LAST_EXP 35u      /* the last octave: [2^35, 2^36) */
#define SY_COARSE_BUCKETS (2u + 4u * (SY_COARSE_LAST_EXP - SY_COARSE_FIRST_EXP + 1u))

static inline unsigned sy__coarse_index(uint64_t v)
{
	unsigned e;

	if (v < ((uint64_t)1 << SY_COARSE_FIRST_EXP))
		return 0;
	if (v >> (SY_COARSE_LAST_EXP + 1))
		return SY_COARSE_BUCKETS - 1;
	e = sy__hist_top_bit(v);
	return 1u + 4u * (e - SY_COARSE_FIRST_EXP) + (unsigned)((v >> (e - 2)) & 3u);
}

/* hist.c */
void sy__hist_init(struct sy__hist *h);                 /* empty */
void sy_hist_clear(struct sy_hist *h);                  /* empty */
void sy__hist_merge(struct sy_hist *into, const struct sy__hist *h); /* any thread */
void sy_hist_add(struct sy_hist *into, const struct sy_hist *h);
void sy_hist_sub(struct sy_hist *into, const struct sy_hist *h); /* into -= h (windows) */
/* Lower and upper bound (inclusive) of bucket @p i, and its midpoint. */
uint64_t sy_hist_bucket_low(unsigned i);
uint64_t sy_hist_bucket_high(unsigned i);
uint64_t sy_hist_bucket_mid(unsigned i);
/* The value at quantile @p q in [0, 1] (nearest rank), as its bucket's
 * midpoint clamped to [min, max]; 0 when empty. */
uint64_t sy_hist_quantile(const struct sy_hist *h, double q);
void sy_hist_summary(const struct sy_hist *h, struct sy_hist_summary *out);
uint64_t sy_hist_count_le(const struct sy_hist *h, uint64_t ns);
/* The midpoint of coarse bucket @p i (the outer ones: their bound). */
uint64_t sy_coarse_mid(unsigned i);
/* Samples and quantiles of the coarse counts @p b[SY_COARSE_BUCKETS]. */
void sy_coarse_latency(const uint64_t *b, struct sy_latency *out);

#endif /* SY_METRICS_HIST_H */
