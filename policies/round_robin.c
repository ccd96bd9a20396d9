/*
 * round_robin: each producer cycles through the servers in order, from its
 * own cursor (the producer-private word), so producers never share a cache
 * line to pick. Over any n consecutive picks of one producer every server is
 * picked once.
 */
#include "policies/policies_internal.h"

static int rr_pick(const void *state, struct sy_pick *p)
{
	uint64_t *cursor = sy_pick_word(p);
	uint64_t cur = *cursor;

	(void)state;
	if (cur >= sy_pick_count(p))
		cur = 0;
	*cursor = cur + 1;
	return (int)cur;
}

const struct sy_policy sy__policy_round_robin = {
	.name = "round_robin",
	.pick = rr_pick,
};
