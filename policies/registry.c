/* Built-in policies by name. */
#include <string.h>

#include "policies/policies_internal.h"

static const struct sy__policy *const builtin[] = {
	&sy__policy_direct,
	&sy__policy_round_robin,
};

const struct sy__policy *sy__policy_find(const char *name)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (strcmp(builtin[i]->name, name) == 0)
			return builtin[i];
	return NULL;
}
