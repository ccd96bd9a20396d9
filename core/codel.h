/*
 * CoDel per destination (codel.c): on a route with sy_route_opts.codel, a
 * server's inbox is managed on the time its messages wait in it (sojourn)
 * instead of its depth.
 *
 * The work is split so that a route without CoDel pays nothing: a CoDel
 * route is never direct, its sends stamp each message (msg->enq_ns and the
 * codel bit) and its messages carry SY_MSG_OBSERVE, so that the owning
 * worker, which reads the clock when their run starts, measures the
 * sojourn there and runs the control law (sy__codel_dequeue()). What the
 * law decides is published in one word per server, `shed`: a "dropping"
 * bit and the number of sheds now due. A sender on a CoDel route reads it
 * after its pick and takes one due shed with a compare-and-swap; the
 * message it takes it for is shed by the route's backpressure mode.
 *
 * Threads: `shed` is written by the owning worker (store, add) and by
 * senders (CAS that only decrements a nonzero count); everything else in
 * struct sy__codel is the owning worker's alone. Nothing is published
 * through `shed`: relaxed order throughout.
 */
#ifndef SY_CORE_CODEL_H
#define SY_CORE_CODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/compiler.h"

struct sy__server;
struct sy__worker;
struct sy_msg;

#define SY_CODEL_DROPPING (1u << 31) /* `shed`: delay above target for an interval */
#define SY_CODEL_DUE (SY_CODEL_DROPPING - 1) /* `shed`: sheds due, not yet taken */

struct sy__codel {
	/* Senders read it on every send of a CoDel route: its own line. */
	_Alignas(SY_CACHELINE) _Atomic uint32_t shed;
	/* The owning worker's: the control law's state (RFC 8289 names). */
	bool dropping;
	uint32_t count;            /* sheds scheduled since dropping began */
	uint32_t lastcount;        /* count when dropping last began */
	uint64_t first_above;      /* when the delay may count as standing; 0: below target */
	uint64_t drop_next;        /* when the next shed falls due */
};

/*
 * May a message go to the server of @p c now, or is a shed due? Takes one
 * due shed if there is one (@return true: shed this message). A sender on
 * a CoDel route, after its pick. Lock-free: the CAS fails only when
 * another sender took a shed or the worker changed the word.
 */
static inline bool sy__codel_take(struct sy__codel *c)
{
	uint32_t v = atomic_load_explicit(&c->shed, memory_order_relaxed);

	while (sy__unlikely(v & SY_CODEL_DUE))
		if (atomic_compare_exchange_weak_explicit(&c->shed, &v, v - 1,
							  memory_order_relaxed,
							  memory_order_relaxed))
			return true;
	return false;
}

/* Is the server of @p c shedding (its delay stood above target)? Spill
 * looks for one that is not. Any thread. */
static inline bool sy__codel_dropping(struct sy__codel *c)
{
	return atomic_load_explicit(&c->shed, memory_order_relaxed) &
	       SY_CODEL_DROPPING;
}

/*
 * The control law: a message of a server's inbox waited @p sojourn ns and
 * leaves at @p now. Below @p target, shedding stops; above it for
 * @p interval, it starts with one shed due, then more fall due at
 * interval / sqrt(count) apart while the delay stays above target.
 * The server's owning worker only.
 */
void sy__codel_update(struct sy__codel *c, uint64_t sojourn, uint64_t now,
		      uint64_t target, uint64_t interval);

/*
 * @p m, stamped by a CoDel route's send (m->codel), starts its run on
 * @p srv at @p now: measure its sojourn against its route's settings.
 * The owning worker, inside its pass's read-side section, before the run.
 */
void sy__codel_dequeue(struct sy__worker *w, struct sy_msg *m,
		       struct sy__server *srv, uint64_t now);

#endif /* SY_CORE_CODEL_H */
