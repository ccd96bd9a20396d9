/*
 * What a policy's pick() may read: the route, the message's key, and the
 * sending thread's private word and random generator.
 */
#include "core/breaker.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/msg.h"
#include "core/route.h"
#include "core/slot.h"

SY_API unsigned sy_pick_count(const struct sy_pick *p)
{
	SY__NONNULL_OR(p, 0);
	return p->route->n;
}

SY_API uint64_t sy_pick_key(const struct sy_pick *p)
{
	SY__NONNULL_OR(p, 0);
	return p->msg->key;
}

SY_API uint64_t *sy_pick_word(struct sy_pick *p)
{
	SY__NONNULL_OR(p, NULL);
	return &p->slot->policy_words[p->route->id];
}

SY_API uint64_t sy_pick_random(struct sy_pick *p)
{
	SY__NONNULL_OR(p, 0);
	return sy__slot_random(p->slot);
}

SY_API uint64_t sy_pick_now(struct sy_pick *p)
{
	SY__NONNULL_OR(p, 0);
	/* Once per send call: every pick of a burst sees the same time. */
	if (!p->now)
		p->now = sy__now(p->eng);
	return p->now;
}

SY_API bool sy_pick_available(const struct sy_pick *p, unsigned i)
{
	SY__NONNULL_OR(p, false);
	return i < p->route->n && sy__server_usable(p->route->servers[i]);
}

SY_API int64_t sy_pick_inflight(const struct sy_pick *p, unsigned i)
{
	SY__NONNULL_OR(p, 0);
	if (i >= p->route->n)
		return 0;
	return atomic_load_explicit(&p->route->servers[i]->inflight,
				    memory_order_relaxed);
}

bool sy__server_usable_slow(const struct sy__server *srv, unsigned gate)
{
	gate &= ~(unsigned)SY_GATE_WARMING;
	return gate == 0 || (gate == SY_GATE_BREAKER && srv->breaker &&
			     sy__breaker_would_admit(srv));
}
