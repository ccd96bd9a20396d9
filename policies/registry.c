/*
 * Policies by name: the built-in ones, then those registered by the user.
 * Registration appends to a fixed table under a mutex and publishes the new
 * count with a release store; lookups load it with acquire and never lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "policies/policies_internal.h"

#define SY_POLICY_NAME_MAX 32
#define SY_USER_POLICIES 64

static const struct sy_policy *const builtin[] = {
	&sy__policy_direct,
	&sy__policy_round_robin,
	&sy__policy_weighted,
	&sy__policy_least_connections,
	&sy__policy_adaptive,
	&sy__policy_hash,
	&sy__policy_random,
	&sy__policy_failover,
};

static const struct sy_policy *user[SY_USER_POLICIES];
static _Atomic unsigned nuser;
static pthread_mutex_t user_lock = PTHREAD_MUTEX_INITIALIZER;

const struct sy_policy *sy__policy_find(const char *name)
{
	unsigned n = atomic_load_explicit(&nuser, memory_order_acquire);

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (strcmp(builtin[i]->name, name) == 0)
			return builtin[i];
	for (unsigned i = 0; i < n; i++)
		if (strcmp(user[i]->name, name) == 0)
			return user[i];
	return NULL;
}

int sy__policy_add(const struct sy_policy *policy)
{
	size_t len = policy->name ? strlen(policy->name) : 0;
	unsigned n;
	int rc = 0;

	if (len == 0 || len >= SY_POLICY_NAME_MAX || !policy->pick)
		return -EINVAL;
	pthread_mutex_lock(&user_lock);
	n = atomic_load_explicit(&nuser, memory_order_relaxed);
	if (sy__policy_find(policy->name)) {
		rc = -EEXIST;
	} else if (n == SY_USER_POLICIES) {
		rc = -ENOSPC;
	} else {
		user[n] = policy;
		/* Pairs with the acquire in sy__policy_find(). */
		atomic_store_explicit(&nuser, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&user_lock);
	return rc;
}
