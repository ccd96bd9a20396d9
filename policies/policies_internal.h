/* The built-in policies, one file each. */
#ifndef SY_POLICIES_INTERNAL_H
#define SY_POLICIES_INTERNAL_H

#include "policies/policy.h"

extern const struct sy_policy sy__policy_direct;
extern const struct sy_policy sy__policy_round_robin;
extern const struct sy_policy sy__policy_weighted;
extern const struct sy_policy sy__policy_least_connections;
extern const struct sy_policy sy__policy_adaptive;
extern const struct sy_policy sy__policy_hash;
extern const struct sy_policy sy__policy_random;
extern const struct sy_policy sy__policy_failover;

#endif /* SY_POLICIES_INTERNAL_H */
