/* Policy parameters: "name=value,name=value". */
#include <errno.h>
#include <string.h>

#include "policies/policy.h"

/* Find @p key as a whole name; returns its value's start or NULL. */
static const char *find_value(const char *params, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = params; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return p + klen + 1;
	return NULL;
}

int sy__param_u64(const char *params, const char *key, uint64_t min,
		  uint64_t max, uint64_t *out)
{
	const char *v = find_value(params, key);
	uint64_t x = 0;

	if (!v)
		return -ENOENT;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (x > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*v - '0');
	}
	if ((*v && *v != ',') || x < min || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

int sy__params_check(const char *params, const char *const *known)
{
	for (const char *p = params; p && *p;) {
		const char *eq = strchr(p, '='), *comma = strchr(p, ',');
		bool ok = false;

		if (!eq || (comma && comma < eq))
			return -EINVAL;
		for (const char *const *k = known; *k; k++)
			if ((size_t)(eq - p) == strlen(*k) &&
			    strncmp(p, *k, (size_t)(eq - p)) == 0)
				ok = true;
		if (!ok)
			return -EINVAL;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}
