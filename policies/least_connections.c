/*
 * least_connections: send to the server with the fewest messages in flight
 * (sent, not yet handled, over every route that counts them).
 *
 * Algorithm. A route of at most LC_SCAN_MAX servers is scanned in full: the
 * available server with the fewest in flight wins, ties broken uniformly at
 * random with one random number (only when there is a tie). A larger route uses the
 * power of two random choices: two distinct servers drawn at random, the one
 * with fewer in flight wins, a tie goes to the first drawn (itself a random
 * choice). When neither drawn server is available the route is scanned.
 * Unavailable servers (removed, draining) are never chosen while an
 * available one exists.
 *
 * Cost per pick: at most LC_SCAN_MAX relaxed loads of in-flight counters and
 * availability states, plus one random number when servers tie; with power of two
 * choices, one random number and two counter loads.
 *
 * Threads: pick() runs on any sending thread, concurrently; it keeps no
 * state and writes nothing shared (the random generator is the sender's).
 * The counters it reads are updated by senders and workers at the same
 * time, so a pick sees a recent, not an exact, view; that is all a load
 * balancer needs.
 */
#include "policies/policies_internal.h"

#define LC_SCAN_MAX 4u

/*
 * The first available server of fewest in flight (0 if none is); the
 * first @p cap servers tied with it go to @p tied, *ties counts them.
 */
static int lc_least(struct sy_pick *p, unsigned n, unsigned *tied,
		    unsigned cap, unsigned *ties)
{
	int64_t least = INT64_MAX;
	int best = 0;

	*ties = 0;
	for (unsigned i = 0; i < n; i++) {
		int64_t in;

		if (!sy_pick_available(p, i))
			continue;
		in = sy_pick_inflight(p, i);
		if (in < least) {
			least = in;
			best = (int)i;
			*ties = 0;
		}
		if (in == least && *ties < cap)
			tied[(*ties)++] = i;
	}
	return best;
}

/* Any size of route, rarely: the first available server of least load. */
static int lc_first_least(struct sy_pick *p, unsigned n)
{
	unsigned ties;

	return lc_least(p, n, NULL, 0, &ties);
}

/* A route of at most LC_SCAN_MAX servers: fewest in flight, ties at random. */
static int lc_scan(struct sy_pick *p, unsigned n)
{
	unsigned tied[LC_SCAN_MAX], ties;
	int best = lc_least(p, n, tied, LC_SCAN_MAX, &ties);

	if (ties <= 1)
		return best;
	/* One of the tied servers, each with probability 1/ties. */
	return (int)tied[sy__below((uint32_t)(sy_pick_random(p) >> 32), ties)];
}

/* Two distinct servers at random; the one with fewer in flight. */
static int lc_two_choices(struct sy_pick *p, unsigned n)
{
	unsigned a, b;

	switch (sy__pick_two_available(p, n, &a, &b)) {
	case 2:
		return sy_pick_inflight(p, b) < sy_pick_inflight(p, a) ?
		       (int)b : (int)a;
	case 1:
		return (int)a;
	default:
		return lc_first_least(p, n);
	}
}

static int lc_pick(const void *state, struct sy_pick *p)
{
	unsigned n = sy_pick_count(p);

	(void)state;
	if (n <= LC_SCAN_MAX)
		return lc_scan(p, n);
	return lc_two_choices(p, n);
}

const struct sy_policy sy__policy_least_connections = {
	.name = "least_connections",
	.flags = SY_POLICY_INFLIGHT,
	.pick = lc_pick,
};
