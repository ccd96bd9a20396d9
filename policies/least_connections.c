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

/* Every available server, fewest in flight, ties at random. */
/* Any size of route, rarely: the first available server of least load. */
static int lc_first_least(struct sy_pick *p, unsigned n)
{
	int64_t least = INT64_MAX;
	int best = 0;

	for (unsigned i = 0; i < n; i++) {
		int64_t in;

		if (!sy_pick_available(p, i))
			continue;
		in = sy_pick_inflight(p, i);
		if (in < least) {
			least = in;
			best = (int)i;
		}
	}
	return best;
}

/* A route of at most LC_SCAN_MAX servers. */
static int lc_scan(struct sy_pick *p, unsigned n)
{
	int64_t least = INT64_MAX;
	unsigned tied[LC_SCAN_MAX], ties = 0;

	for (unsigned i = 0; i < n; i++) {
		int64_t in;

		if (!sy_pick_available(p, i))
			continue;
		in = sy_pick_inflight(p, i);
		if (in < least) {
			least = in;
			ties = 0;
		}
		if (in == least)
			tied[ties++] = i;
	}
	if (ties <= 1)
		return ties ? (int)tied[0] : 0;
	/* One of the tied servers, each with probability 1/ties. */
	return (int)tied[sy__below((uint32_t)(sy_pick_random(p) >> 32), ties)];
}

/* Two distinct servers at random; the one with fewer in flight. */
static int lc_two_choices(struct sy_pick *p, unsigned n)
{
	unsigned a, b;
	bool a_ok, b_ok;

	sy__pick_two(p, n, &a, &b);
	a_ok = sy_pick_available(p, a);
	b_ok = sy_pick_available(p, b);
	if (a_ok && b_ok)
		return sy_pick_inflight(p, b) < sy_pick_inflight(p, a) ?
		       (int)b : (int)a;
	if (a_ok)
		return (int)a;
	if (b_ok)
		return (int)b;
	return lc_first_least(p, n);
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
