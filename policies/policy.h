/*
 * Routing policies: how a route picks one of its servers.
 *
 * A policy is a small table of functions. create() builds the policy's
 * shared state for one route object (immutable after that, like the route);
 * pick() chooses a server index for one message. pick() runs on the send
 * path of any producer, concurrently, inside an RCU read-side section: it
 * must not block, and it should write only @p word, a 64-bit value private
 * to the calling producer and the route id (zero the first time), so that
 * the hot path writes no shared cache line.
 *
 * The engine checks that the picked server is available; if it is not, it
 * tries the next index in order, so a policy need not know about draining
 * servers.
 */
#ifndef SY_POLICIES_POLICY_H
#define SY_POLICIES_POLICY_H

#include <stdint.h>

#include "switchyard.h"

struct sy__policy {
	const char *name;
	unsigned min_servers;
	unsigned max_servers;
	/** Shared state for a route over @p n servers; NULL out if none. 0 or -ENOMEM. */
	int (*create)(unsigned n, void **state);
	void (*destroy)(void *state);
	/** An index in [0, n). */
	unsigned (*pick)(const void *state, unsigned n, uint64_t *word,
			 const sy_msg *msg);
};

/** The built-in policy named @p name, or NULL. */
const struct sy__policy *sy__policy_find(const char *name);

#endif /* SY_POLICIES_POLICY_H */
