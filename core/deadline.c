/*
 * Deadline-aware picks. A message that cannot finish before its deadline
 * still takes a server's time when it is sent: it waits in the inbox, and
 * the worker dead-letters it when its turn comes, after the messages behind
 * it have waited for it too. Here the route's policy estimates, for each
 * server, how long a message sent now would take until its handler ends
 * (adaptive: its service time's peak EWMA times its messages in flight plus
 * one), and a message goes only where that fits in the time it has left.
 *
 * The policy's own pick stands when it fits: the policy keeps balancing
 * among the servers that are in time. Otherwise the available server of
 * least estimate that fits takes it; with none, the message is late and
 * fails at the sender, before it occupies any server. A server whose
 * estimate is unknown (0) always fits.
 *
 * Threads: runs on senders inside their read-side sections; reads the
 * route, the message and the policy's estimates, writes nothing shared.
 */
#include "core/deadline.h"
#include "core/engine.h"
#include "core/route.h"

int sy__deadline_pick(const void *state, struct sy_pick *p)
{
	const struct sy__route *r = p->route;
	const struct sy_msg *m = p->msg;
	uint64_t (*estimate)(const void *, struct sy_pick *, unsigned) =
		r->policy->estimate;
	int k = r->policy->pick(state, p), best = -1;
	uint64_t now, left, least = UINT64_MAX;
	bool any = false;

	/* The policy's INT_MIN is an index out of range, not this verdict. */
	if (sy__unlikely(k == SY__PICK_LATE))
		k = -1;

	if (!(m->flags & SY_MSG_DEADLINE))
		return k;
	now = sy_pick_now(p);
	left = m->deadline > now ? m->deadline - now : 0;
	if (k >= 0 && (unsigned)k < r->n && sy__server_usable(r->servers[k]) &&
	    estimate(state, p, (unsigned)k) <= left)
		return k;
	for (unsigned i = 0; i < r->n; i++) {
		uint64_t e;

		if (!sy__server_usable(r->servers[i]))
			continue;
		any = true;
		e = estimate(state, p, i);
		if (e <= left && e < least) {
			least = e;
			best = (int)i;
		}
	}
	if (best >= 0)
		return best;
	return any ? SY__PICK_LATE : k;
}
