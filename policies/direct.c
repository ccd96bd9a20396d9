/* direct: a route with exactly one server. */
#include "policies/policies_internal.h"

static int direct_pick(const void *state, struct sy_pick *p)
{
	(void)state;
	(void)p;
	return 0;
}

const struct sy_policy sy__policy_direct = {
	.name = "direct",
	.min_servers = 1,
	.max_servers = 1,
	.pick = direct_pick,
};
