/*
 * Routing policies: the registry of built-in and user policies, and helpers
 * the built-in policies share. The policy interface itself is public
 * (struct sy_policy in switchyard.h).
 */
#ifndef SY_POLICIES_POLICY_H
#define SY_POLICIES_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

/** A uniform integer in [0, n) from 32 random bits (multiply-shift). */
static inline unsigned sy__below(uint32_t bits, unsigned n)
{
	return (unsigned)(((uint64_t)bits * n) >> 32);
}

/** Two distinct indices in [0, n), n >= 2, drawn with one random number. */
static inline void sy__pick_two(struct sy_pick *p, unsigned n, unsigned *a,
				unsigned *b)
{
	uint64_t r = sy_pick_random(p);

	*a = sy__below((uint32_t)r, n);
	*b = sy__below((uint32_t)(r >> 32), n - 1);
	if (*b >= *a)
		(*b)++;
}

/**
 * Two distinct servers at random (sy__pick_two()), and which of them are
 * available: @return 2, both (*a and *b); 1, one, now in *a; 0, neither.
 */
static inline unsigned sy__pick_two_available(struct sy_pick *p, unsigned n,
					      unsigned *a, unsigned *b)
{
	bool a_ok, b_ok;

	sy__pick_two(p, n, a, b);
	a_ok = sy_pick_available(p, *a);
	b_ok = sy_pick_available(p, *b);
	if (!a_ok)
		*a = *b;
	return (unsigned)a_ok + (unsigned)b_ok;
}

/** The policy named @p name, built-in or registered, or NULL. Any thread. */
const struct sy_policy *sy__policy_find(const char *name);

/* Add a user policy (sy_policy_register() without its recording).
 * @return 0; -EINVAL (no name, a name of 32 bytes or more, no pick);
 *         -EEXIST; -ENOSPC (64 registered). */
int sy__policy_add(const struct sy_policy *policy);

/**
 * Read the unsigned parameter @p key from a "name=value,name=value" string.
 * @return 0 with *out set; -ENOENT if absent (*out untouched); -EINVAL if
 *         the value is not a decimal number in [min, max].
 */
int sy__param_u64(const char *params, const char *key, uint64_t min,
		  uint64_t max, uint64_t *out);

/**
 * Check that @p params names only keys in @p known (NULL-terminated).
 * @return 0 or -EINVAL.
 */
int sy__params_check(const char *params, const char *const *known);

#endif /* SY_POLICIES_POLICY_H */
