/*
 * failover: every message to the first server of the route that can take
 * it, in the route's order (the priority order). A removed or draining
 * server is passed over; when it is taken out of the route, the next one
 * gets its traffic. With none available the pick returns 0, which the
 * engine then finds unavailable too, and the send fails with -EHOSTUNREACH.
 *
 * Cost: pick() is O(k) for the k-th server being the first available,
 * one relaxed load of a server's state per server passed over; O(1) while
 * the first server is up.
 *
 * Threads: stateless; pick() runs on every sending thread at once and
 * writes nothing.
 */
#include "policies/policies_internal.h"

static int failover_pick(const void *state, struct sy_pick *p)
{
	unsigned n = sy_pick_count(p);

	(void)state;
	for (unsigned i = 0; i < n; i++)
		if (sy_pick_available(p, i))
			return (int)i;
	return 0;
}

const struct sy_policy sy__policy_failover = {
	.name = "failover",
	.pick = failover_pick,
};
