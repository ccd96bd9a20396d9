/*
 * adaptive: least load, where a server's load is the peak EWMA of its
 * service time times its messages in flight plus one (the "peak EWMA"
 * balancer of Finagle and linkerd).
 *
 * Cost estimate. Each server has a cost in nanoseconds, fed by observe()
 * with every handler run of the route's messages. A sample above the cost
 * replaces it at once (the peak); a lower one is averaged in with weight
 * 1 - exp(-dt / tau), where dt is the time since the server's previous
 * observation and tau is the parameter decay_ms. The estimate thus rises
 * at the first slow run and falls over a few tau of fast ones.
 *
 * Decay between observations. A pick sees a server's cost decayed toward
 * zero by exp(-dt / tau), dt the time since its last observation, as
 * Finagle's cost does when it is read. A server that got no traffic because
 * it was slow or failing becomes attractive again after a few tau, gets a
 * message, and is measured anew: no server is shut out for good.
 *
 * Load. A pick compares cost * (in flight + 1). A server never observed
 * costs 0 while nothing is in flight to it, so it is tried first, and
 * penalty * (in flight + 1) while its first messages are out: a new server
 * gets a probe, not a flood, until it has been measured.
 *
 * Errors. A run whose handler returns < 0 counts as a sample of
 * max(service time, penalty, 10 * the current cost), penalty from the
 * parameter penalty_ms: a server that fails fast never looks fast. Failures
 * in a row multiply the cost by 10 each, up to 1000 * penalty.
 *
 * Choice. A route of at most ADAPTIVE_SCAN_MAX servers is scanned: the
 * available server of least load wins, ties at random (reservoir sampling).
 * A larger route draws two distinct servers at random and takes the one of
 * lesser load (power of two choices), scanning only if neither is
 * available. Loads within 1/32 of each other count as tied (see lighter()).
 *
 * Time. observe() stamps each server's estimate with the engine clock at
 * the end of the run (the injectable config.clock); pick() decays it by the
 * time elapsed since, read from the same clock.

 * Parameters: decay_ms (tau), 1 to 3600000, default 10000; penalty_ms, 1 to
 * 3600000, default 1000.
 *
 * Estimate. For deadline-aware routes, estimate() gives a server's load in
 * nanoseconds: how long a message sent to it now would take until its
 * handler ends, its own service and the runs of those in flight before it.
 *
 * Cost per pick: one engine clock read; per candidate (up to
 * ADAPTIVE_SCAN_MAX, or 2) three relaxed loads and an exp() computed by a
 * polynomial; one random number per tie.
 *
 * Threads. pick() runs on every sending thread at once. It reads each
 * server's cost and stamp with relaxed loads and writes nothing shared.
 * observe() for server i runs
 * only on the worker that owns server i, so each server's state has a single
 * writer, and it sits alone on its cache line. A pick may read a cost and a
 * stamp from two different observations; it then decays one sample by a
 * wrong interval, once, which no invariant depends on.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policies_internal.h"

#define ADAPTIVE_SCAN_MAX 2u
#define ADAPTIVE_LINE 64
#define ADAPTIVE_MS_MAX 3600000u
#define ADAPTIVE_DECAY_MS 10000u
#define ADAPTIVE_PENALTY_MS 1000u
#define ADAPTIVE_FAIL_FACTOR 10.0 /* a failure costs at least this * cost */
#define ADAPTIVE_CAP_FACTOR 1000.0 /* cost ceiling, in penalties */
#define ADAPTIVE_TIE (1.0 / 32)    /* loads this close (relative) are equal */
#define NS_PER_MS 1000000u

/* One server's estimate; one writer, the worker that owns the server. */
struct adaptive_server {
	_Alignas(ADAPTIVE_LINE) _Atomic uint64_t cost; /* a double, ns; 0: never observed */
	_Atomic uint64_t stamp;                          /* clock at the last observation */
};
_Static_assert(sizeof(struct adaptive_server) == ADAPTIVE_LINE,
	       "one server's estimate per cache line");

struct adaptive {
	double inv_tau;           /* 1 / tau, per ns */
	double penalty;           /* ns */
	double cost_max;          /* ns */
	uint64_t tau_64;          /* tau / 64, ns */
	struct adaptive_server servers[];
};
_Static_assert(sizeof(struct adaptive) % ADAPTIVE_LINE == 0,
	       "aligned_alloc() needs a size that is a multiple of the line");

static double bits_double(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t double_bits(double d)
{
	uint64_t bits;

	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

/*
 * e^-x for x >= 0, to about 1e-5 relative (0 from x = 64 on): e^-n for the
 * integer part by repeated squaring, e^-f for the fraction by its Taylor
 * polynomial of degree 8, whose error is below f^9 / 9! < 3e-6. The library
 * links no libm.
 */
static double exp_neg(double x)
{
	static const double inv_fact[] = {
		1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720,
		1.0 / 5040, 1.0 / 40320,
	};
	double e1 = 0.36787944117144233; /* e^-1 */
	double r = 1.0, g, poly;
	unsigned n;

	if (!(x < 64.0))
		return 0.0;
	n = (unsigned)x;
	g = (double)n - x;
	poly = inv_fact[8];
	for (int k = 7; k >= 0; k--)
		poly = poly * g + inv_fact[k];
	for (; n; n >>= 1, e1 *= e1)
		if (n & 1)
			r *= e1;
	return r * poly;
}

static int adaptive_create(const struct sy_policy_route *route, void **state)
{
	static const char *const known[] = { "decay_ms", "penalty_ms", NULL };
	uint64_t decay_ms = ADAPTIVE_DECAY_MS, penalty_ms = ADAPTIVE_PENALTY_MS;
	uint64_t tau;
	struct adaptive *a;
	int rc;

	if (sy__params_check(route->params, known))
		return -EINVAL;
	rc = sy__param_u64(route->params, "decay_ms", 1, ADAPTIVE_MS_MAX, &decay_ms);
	if (rc && rc != -ENOENT)
		return rc;
	rc = sy__param_u64(route->params, "penalty_ms", 1, ADAPTIVE_MS_MAX, &penalty_ms);
	if (rc && rc != -ENOENT)
		return rc;
	/* The size is a multiple of the line: the header is one line. */
	a = aligned_alloc(ADAPTIVE_LINE,
			  sizeof(*a) + route->n * sizeof(a->servers[0]));
	if (!a)
		return -ENOMEM;
	tau = decay_ms * NS_PER_MS;
	a->inv_tau = 1.0 / (double)tau;
	a->penalty = (double)(penalty_ms * NS_PER_MS);
	a->cost_max = a->penalty * ADAPTIVE_CAP_FACTOR;
	a->tau_64 = tau / 64;
	for (unsigned i = 0; i < route->n; i++) {
		atomic_init(&a->servers[i].cost, double_bits(0.0));
		atomic_init(&a->servers[i].stamp, 0);
	}
	*state = a;
	return 0;
}

static void adaptive_destroy(void *state)
{
	free(state);
}

/* Server @p i's load at @p now: decayed cost * (in flight + 1). */
static double server_load(const struct adaptive *a, struct sy_pick *p,
			  unsigned i, uint64_t now)
{
	const struct adaptive_server *s = &a->servers[i];
	double cost = bits_double(atomic_load_explicit(&s->cost,
						       memory_order_relaxed));
	uint64_t stamp = atomic_load_explicit(&s->stamp, memory_order_relaxed);
	int64_t in = sy_pick_inflight(p, i);
	double waiting = (double)(in > 0 ? in : 0) + 1.0;

	if (cost == 0.0)
		return waiting > 1.0 ? a->penalty * waiting : 0.0;
	/* Under tau / 64 since the last observation the decay weight is
	 * above 0.984, closer to 1 than loads need to be to count as tied:
	 * skip the exponential, the common case while traffic flows. */
	if (now > stamp && now - stamp > a->tau_64)
		cost *= exp_neg((double)(now - stamp) * a->inv_tau);
	return cost * waiting;
}

/*
 * Whether @p load is clearly below @p than. Loads closer than ADAPTIVE_TIE
 * (relative) are equal: a strict minimum would hand every pick to a server
 * ahead by mere noise in the estimates, as a server recovering from a slow
 * spell always is.
 */
static bool lighter(double load, double than)
{
	return load < than * (1.0 - ADAPTIVE_TIE);
}

/* Every available server, least load, ties at random. */
static int adaptive_scan(const struct adaptive *a, struct sy_pick *p,
			 unsigned n, uint64_t now)
{
	double least = 0.0;
	unsigned ties = 0;
	int best = 0;

	for (unsigned i = 0; i < n; i++) {
		double load;

		if (!sy_pick_available(p, i))
			continue;
		load = server_load(a, p, i, now);
		if (ties == 0 || lighter(load, least)) {
			least = load;
			best = (int)i;
			ties = 1;
		} else if (!lighter(least, load) &&
			   sy__below((uint32_t)(sy_pick_random(p) >> 32), ++ties) == 0) {
			/* The k-th tied server replaces the choice with
			 * probability 1/k: each ends up chosen with
			 * probability 1/ties. */
			best = (int)i;
		}
	}
	return best;
}

/* Two distinct servers at random; the one of lesser load. */
static int adaptive_two_choices(const struct adaptive *a, struct sy_pick *p,
				unsigned n, uint64_t now)
{
	unsigned x, y;

	switch (sy__pick_two_available(p, n, &x, &y)) {
	case 2:
		return lighter(server_load(a, p, y, now),
			       server_load(a, p, x, now)) ? (int)y : (int)x;
	case 1:
		return (int)x;
	default:
		return adaptive_scan(a, p, n, now);
	}
}

static int adaptive_pick(const void *state, struct sy_pick *p)
{
	const struct adaptive *a = state;
	unsigned n = sy_pick_count(p);
	uint64_t now = sy_pick_now(p);

	if (n <= ADAPTIVE_SCAN_MAX)
		return adaptive_scan(a, p, n, now);
	return adaptive_two_choices(a, p, n, now);
}

static void adaptive_observe(void *state, unsigned index, int result,
			     uint64_t service_ns, uint64_t t)
{
	struct adaptive *a = state;
	struct adaptive_server *s = &a->servers[index];
	/* Relaxed loads of our own stores: this worker is the only writer. */
	uint64_t stamp = atomic_load_explicit(&s->stamp, memory_order_relaxed);
	double cost = bits_double(atomic_load_explicit(&s->cost,
						       memory_order_relaxed));
	double dt = t > stamp ? (double)(t - stamp) * a->inv_tau : 0.0;
	/* Under tau / 64, 1 - dt is within 1.2e-4 of exp(-dt). */
	double w = t - stamp <= a->tau_64 ? 1.0 - dt : exp_neg(dt);
	double sample = (double)service_ns;

	if (result < 0) {
		double worse = ADAPTIVE_FAIL_FACTOR * cost * w;

		if (sample < a->penalty)
			sample = a->penalty;
		if (sample < worse)
			sample = worse;
	}
	if (sample > cost)
		cost = sample;
	else
		cost = cost * w + sample * (1.0 - w);
	/* At least 1 ns: 0 means never observed. */
	if (cost < 1.0)
		cost = 1.0;
	if (cost > a->cost_max)
		cost = a->cost_max;
	/* Relaxed: picks read the two words independently (see the top). */
	atomic_store_explicit(&s->cost, double_bits(cost), memory_order_relaxed);
	if (t > stamp)
		atomic_store_explicit(&s->stamp, t, memory_order_relaxed);
}

/*
 * How long a message sent to server @p i now would take until its handler
 * ends: its load (cost * (in flight + 1), as pick() compares it). 0 while
 * it was never observed: unknown, not slow.
 */
static uint64_t adaptive_estimate(const void *state, struct sy_pick *p,
				  unsigned i)
{
	const struct adaptive *a = state;

	if (bits_double(atomic_load_explicit(&a->servers[i].cost,
					     memory_order_relaxed)) == 0.0)
		return 0;
	return (uint64_t)server_load(a, p, i, sy_pick_now(p));
}

const struct sy_policy sy__policy_adaptive = {
	.name = "adaptive",
	.flags = SY_POLICY_INFLIGHT | SY_POLICY_OBSERVE,
	.create = adaptive_create,
	.destroy = adaptive_destroy,
	.pick = adaptive_pick,
	.observe = adaptive_observe,
	.estimate = adaptive_estimate,
};
