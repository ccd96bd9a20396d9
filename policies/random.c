/*
 * random: each pick a server drawn uniformly from the sending thread's own
 * generator (sy_pick_random(), seeded from config.seed when it is set).
 * The 64-bit draw is scaled onto [0, n) by multiply-shift on its high 32
 * bits: no division, and a bias of at most n / 2^32.
 *
 * Cost: pick() is O(1), one xorshift64* step and one multiply.
 *
 * Threads: stateless; pick() runs on every sending thread at once and
 * writes only that thread's generator state.
 */
#include "policies/policies_internal.h"

static int random_pick(const void *state, struct sy_pick *p)
{
	uint64_t r = sy_pick_random(p);

	(void)state;
	return (int)sy__below((uint32_t)(r >> 32), sy_pick_count(p));
}

const struct sy_policy sy__policy_random = {
	.name = "random",
	.pick = random_pick,
};
