/* direct: a route with exactly one server. */
#include "policies/policies_internal.h"

static unsigned direct_pick(const void *state, unsigned n, uint64_t *word,
			    const sy_msg *msg)
{
	(void)state;
	(void)n;
	(void)word;
	(void)msg;
	return 0;
}

const struct sy__policy sy__policy_direct = {
	.name = "direct",
	.min_servers = 1,
	.max_servers = 1,
	.pick = direct_pick,
};
