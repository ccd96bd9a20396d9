/* The built-in policies, one file each. */
#ifndef SY_POLICIES_INTERNAL_H
#define SY_POLICIES_INTERNAL_H

#include "policies/policy.h"

extern const struct sy_policy sy__policy_direct;
extern const struct sy_policy sy__policy_round_robin;

#endif /* SY_POLICIES_INTERNAL_H */
