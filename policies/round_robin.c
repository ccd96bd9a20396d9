/*
 * round_robin: each producer cycles through the servers in order, from its
 * own cursor, so producers never share a cache line to pick. Over any n
 * consecutive picks of one producer every server is picked once.
 */
#include "policies/policies_internal.h"

static unsigned rr_pick(const void *state, unsigned n, uint64_t *word,
			const sy_msg *msg)
{
	uint64_t cur = *word;

	(void)state;
	(void)msg;
	if (cur >= n)
		cur = 0;
	*word = cur + 1;
	return (unsigned)cur;
}

const struct sy__policy sy__policy_round_robin = {
	.name = "round_robin",
	.min_servers = 1,
	.max_servers = UINT32_MAX,
	.pick = rr_pick,
};
