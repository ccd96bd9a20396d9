/*
 * Slow start (slow_start.c): a server that joins a route, or whose circuit
 * breaker closes again, takes a share of the route's messages that ramps up
 * over the route's slow_start_ns.
 *
 * Senders see a ramping server through SY_GATE_WARMING in its gate, so a
 * route where nothing ramps pays nothing: the bit sends the pick to
 * sy__admit_gated(), the pick's slow path, with the other gate bits.
 */
#ifndef SY_CORE_SLOW_START_H
#define SY_CORE_SLOW_START_H

#include <stdint.h>

struct sy_engine;
struct sy_pick;
struct sy__route;
struct sy__server;

/*
 * The pick chose server @p i of the route, whose gate is @p gate (not 0).
 * A ramping server takes the message after a draw, else another server of
 * the route drawn by weight does; a ramp never makes a message
 * unreachable. Then the other gate bits decide (a half-open breaker's
 * token is taken here).
 * A sender, inside its read-side section. @return the index that takes the
 * message, or -1 (server @p i cannot take it).
 */
int sy__admit_gated(struct sy_pick *ctx, unsigned i, unsigned gate);

/*
 * Route @p r, built and not yet published, replaces @p old (NULL: a new
 * route): carry over when each server joined, stamp the newcomers with now,
 * and start the ramps that @p r's slow start calls for. Control thread,
 * under eng->lock.
 */
void sy__slow_start_join(struct sy_engine *eng, struct sy__route *r,
			 const struct sy__route *old);

/* @p srv's breaker closed again at @p now: ramp it in the routes that say
 * so. The thread that made the transition. */
void sy__slow_start_recovered(struct sy__server *srv, uint64_t now);

#endif /* SY_CORE_SLOW_START_H */
