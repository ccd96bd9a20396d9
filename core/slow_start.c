/*
 * Slow start: a server new to a route, or back from an open circuit, takes
 * a fraction f(t) of the messages its route's policy picks it for, f rising
 * linearly from the route's slow_start_min to 1 over slow_start_ns: each
 * time the policy picks it, it takes the message after a draw against
 * f(t). A message it refuses goes to another server of the route, drawn in
 * proportion to the route's weights (up to OTHER_DRAWS draws, each subject to
 * that server's own gate and ramp), so the load it sheds spreads as the
 * weights do and the policy's own state (a cursor) moves as without slow
 * start. When no other server takes it, the ramping server does: a ramp
 * never makes a message unreachable.
 *
 * State: each route object keeps when each of its servers joined it
 * (r->joined[], immutable like the rest of the route); each server keeps
 * when its breaker last closed (warm_from), the end of the longest ramp any
 * route may still give it (warm_until), and the longest ramp of the routes
 * that list it (warm_window, written under eng->lock).
 *
 * SY_GATE_WARMING in the gate is set while warm_until lies ahead, so that
 * picks of a ramping server leave the pick's fast path (gate == 0). The
 * first sender that finds the ramp over clears it. Ordering (all seq_cst):
 * a ramp stores warm_until (W1), then sets the bit (W2); the sender that
 * ends one clears the bit (C1), then loads warm_until again (C2) and sets
 * the bit back if a ramp began meanwhile. If W2 precedes C1, W1 precedes
 * C2, which sees the new end; otherwise W2 sets the bit after C1 cleared
 * it. Either way a ramp that began keeps its bit.
 *
 * Progress: senders take no lock; the CAS loop that raises warm_until
 * retries only while another thread raised it.
 */
#include <stdatomic.h>

#include "core/breaker.h"
#include "core/engine.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/slow_start.h"

#define OTHER_DRAWS 3

/* Make @p srv ramp until at least @p until. */
static void warm_until(struct sy__server *srv, uint64_t until)
{
	uint64_t cur = atomic_load(&srv->warm_until);

	/* W1 */
	while (cur < until &&
	       !atomic_compare_exchange_weak(&srv->warm_until, &cur, until))
		;
	/* W2 */
	atomic_fetch_or(&srv->gate, SY_GATE_WARMING);
}

/* No route ramps @p srv any more at @p now: clear its bit (see above). */
static void warm_end(struct sy__server *srv, uint64_t now)
{
	if (now < atomic_load(&srv->warm_until))
		return;
	atomic_fetch_and(&srv->gate, ~(unsigned)SY_GATE_WARMING); /* C1 */
	if (now < atomic_load(&srv->warm_until))                  /* C2 */
		atomic_fetch_or(&srv->gate, SY_GATE_WARMING);
}

/* When server @p i of @p r started its ramp there (0: it does not ramp). */
static uint64_t ramp_start(const struct sy__route *r, unsigned i)
{
	uint64_t from = atomic_load_explicit(&r->servers[i]->warm_from,
					     memory_order_relaxed);

	return r->joined[i] > from ? r->joined[i] : from;
}

/* Does server @p i, ramping, refuse this message (a draw against f(t))? */
static bool ramp_refuses(struct sy_pick *ctx, unsigned i)
{
	const struct sy__route *r = ctx->route;
	struct sy__server *srv = r->servers[i];
	uint64_t now = sy_pick_now(ctx), since, elapsed;
	double f, u;

	/* Acquire: pairs with W2, so that the ramp's start is seen. */
	(void)atomic_load_explicit(&srv->gate, memory_order_acquire);
	since = ramp_start(r, i);
	elapsed = now > since ? now - since : 0;
	if (!r->slow_start_ns || !since || elapsed >= r->slow_start_ns) {
		warm_end(srv, now);
		return false;
	}
	f = r->slow_start_min + (1 - r->slow_start_min) *
	    (double)elapsed / (double)r->slow_start_ns;
	u = (double)(sy__slot_random(ctx->slot) >> 11) * 0x1p-53;
	return u >= f;
}

/* The gate bits but the ramp's: may a message go to @p srv? */
static bool admit_plain(struct sy__server *srv, unsigned gate)
{
	gate &= ~(unsigned)SY_GATE_WARMING;
	return gate == 0 || (gate == SY_GATE_BREAKER && sy__breaker_admit(srv));
}

/* Another server of the route than @p i, at random in proportion to the
 * route's weights. */
static unsigned other_by_weight(struct sy_pick *ctx, unsigned i)
{
	const struct sy__route *r = ctx->route;
	uint64_t total = 0, u;
	unsigned j;

	for (j = 0; j < r->n; j++)
		total += j == i ? 0 : r->info[j].weight;
	u = sy__slot_random(ctx->slot) % total;
	for (j = 0; j < r->n; j++) {
		uint64_t w = j == i ? 0 : r->info[j].weight;

		if (u < w)
			break;
		u -= w;
	}
	return j;
}

int sy__admit_gated(struct sy_pick *ctx, unsigned i, unsigned gate)
{
	const struct sy__route *r = ctx->route;

	/* A route of one has nowhere else to send: only end a ramp. */
	if ((gate & SY_GATE_WARMING) && r->n == 1)
		warm_end(r->servers[i], sy_pick_now(ctx));
	else if ((gate & SY_GATE_WARMING) && ramp_refuses(ctx, i)) {
		for (unsigned t = 0; t < OTHER_DRAWS; t++) {
			unsigned j = other_by_weight(ctx, i);
			struct sy__server *srv = r->servers[j];
			unsigned g = atomic_load_explicit(&srv->gate,
							  memory_order_relaxed);

			if (g == 0 || (!((g & SY_GATE_WARMING) &&
					 ramp_refuses(ctx, j)) &&
				       admit_plain(srv, g)))
				return (int)j;
		}
	}
	return admit_plain(r->servers[i], gate) ? (int)i : -1;
}

void sy__slow_start_join(struct sy_engine *eng, struct sy__route *r,
			 const struct sy__route *old)
{
	uint64_t now = sy__now(eng);

	for (unsigned i = 0; i < r->n; i++) {
		struct sy__server *srv = r->servers[i];
		uint64_t since;

		r->joined[i] = old ? (now ? now : 1) : 0;
		for (unsigned j = 0; old && j < old->n; j++)
			if (old->servers[j] == srv)
				r->joined[i] = old->joined[j];
		if (!r->slow_start_ns)
			continue;
		if (atomic_load(&srv->warm_window) < r->slow_start_ns)
			atomic_store(&srv->warm_window, r->slow_start_ns);
		since = ramp_start(r, i);
		if (since && now - since < r->slow_start_ns)
			warm_until(srv, since + r->slow_start_ns);
	}
}

void sy__slow_start_recovered(struct sy__server *srv, uint64_t now)
{
	uint64_t window = atomic_load(&srv->warm_window);

	if (!window)
		return;
	atomic_store(&srv->warm_from, now ? now : 1);
	warm_until(srv, now + window);
}
