/*
 * CoDel per destination (Nichols and Jacobson's controlled delay, RFC 8289),
 * with the measuring on the worker and the shedding at the sender.
 *
 * A standing queue is one whose shortest wait over an interval stays above
 * the target: a burst that drains within the interval is good queue and is
 * left alone. The worker sees every stamped message leave the inbox (its
 * run starts) and keeps, per server, the state of RFC 8289's dequeue: when
 * the delay first stood above target (first_above), whether it is dropping,
 * and when the next shed falls due (drop_next, interval / sqrt(count)
 * after the last, so the rate rises while the delay stands). It does not
 * drop what it dequeues: a message in the inbox was accepted, and is
 * counted so. Instead it makes sheds due in the server's `shed` word, and
 * the next senders that pick the server take them: those messages are shed
 * by the route's backpressure mode before they are accepted (refused,
 * spilled or dead-lettered as overload), which lowers the arrival rate the
 * way dropping at the head lowers the queue. Dues not taken pile up (at
 * most SY_CODEL_DUE_MAX); all are cleared when the delay falls below the
 * target.
 *
 * Entering the dropping state soon after leaving it (within 16 intervals)
 * resumes at the rate it had reached, less the count of the visit before,
 * as RFC 8289 does, so a queue held near the target does not restart from
 * the slowest rate each time.
 */
#include <math.h>

#include "core/codel.h"
#include "core/engine.h"
#include "core/msg.h"
#include "core/route.h"
#include "core/worker.h"

/* Sheds due at most: what senders have not taken yet. */
#define SY_CODEL_DUE_MAX (1u << 20)

static uint64_t control_law(uint64_t t, uint64_t interval, uint32_t count)
{
	return t + (uint64_t)((double)interval / sqrt((double)count));
}

/* Make @p n more sheds due. */
static void due_add(struct sy__codel *c, uint32_t n)
{
	uint32_t v = atomic_load_explicit(&c->shed, memory_order_relaxed);

	if ((v & SY_CODEL_DUE) >= SY_CODEL_DUE_MAX)
		return;
	atomic_fetch_add_explicit(&c->shed, n, memory_order_relaxed);
}

void sy__codel_update(struct sy__codel *c, uint64_t sojourn, uint64_t now,
		      uint64_t target, uint64_t interval)
{
	bool standing = false;
	uint32_t due = 0;

	if (sojourn < target)
		c->first_above = 0;
	else if (!c->first_above)
		c->first_above = now + interval;
	else
		standing = now >= c->first_above;
	if (c->dropping) {
		if (!standing) {
			c->dropping = false;
			atomic_store_explicit(&c->shed, 0, memory_order_relaxed);
			return;
		}
		while (now >= c->drop_next && due < SY_CODEL_DUE_MAX) {
			due++;
			c->count++;
			c->drop_next = control_law(c->drop_next, interval, c->count);
		}
		if (due)
			due_add(c, due);
		return;
	}
	if (!standing)
		return;
	/* Back soon after the last visit: resume near the rate it reached. */
	due = c->count - c->lastcount;
	c->count = due > 1 && now < c->drop_next + 16 * interval ? due : 1;
	c->lastcount = c->count;
	c->drop_next = control_law(now, interval, c->count);
	c->dropping = true;
	atomic_store_explicit(&c->shed, SY_CODEL_DROPPING | 1u,
			      memory_order_relaxed);
}

void sy__codel_dequeue(struct sy__worker *w, struct sy_msg *m,
		       struct sy__server *srv, uint64_t now)
{
	const struct sy__route *r;

	m->codel = 0;
	/* Inside the pass's read-side section; pairs with R1 in registry.c.
	 * A route replaced without CoDel since the send stops measuring. */
	r = atomic_load_explicit(&w->eng->routes[m->route_id],
				 memory_order_acquire);
	if (!r || !r->codel_target || srv->remote)
		return;
	sy__codel_update(&srv->codel, now > m->enq_ns ? now - m->enq_ns : 0,
			 now, r->codel_target, r->codel_interval);
}
