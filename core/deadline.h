/*
 * Deadline-aware picks (deadline.c): on a route with
 * sy_route_opts.deadline_aware, a message with a deadline goes to a server
 * that its policy's estimate() says can finish in the time left, or fails
 * at once when none can.
 *
 * The route's pick function is sy__deadline_pick() instead of the policy's
 * (r->pick), so routes without it pay nothing: not a load, not a branch.
 * Its verdict "none in time" is SY__PICK_LATE, which the engine's pick()
 * turns into a NULL server with the message marked (sy__late()).
 */
#ifndef SY_CORE_DEADLINE_H
#define SY_CORE_DEADLINE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/msg.h"

struct sy_pick;

/* sy__deadline_pick(): no server can finish the message in time. */
#define SY__PICK_LATE INT_MIN
/* msg->pick of a message that pick() found late: no server was assigned. */
#define SY__PICK_LATE_MARK UINT16_MAX

/*
 * A deadline-aware route's pick: the policy's pick when that server can
 * finish @p p's message in time (or the message has no deadline), else the
 * available server of least estimate that can, else SY__PICK_LATE. When no
 * server is available at all, the policy's pick (the engine then finds
 * none, as without it). A sender, inside its read-side section.
 */
int sy__deadline_pick(const void *state, struct sy_pick *p);

/* Did pick() find @p m late (instead of no server available)? */
static inline bool sy__late(const struct sy_msg *m)
{
	return m->pick == SY__PICK_LATE_MARK;
}

#endif /* SY_CORE_DEADLINE_H */
