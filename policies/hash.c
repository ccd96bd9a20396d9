/*
 * hash: Maglev consistent hashing on the message's key (sy_msg_set_key()).
 *
 * create() fills a lookup table of M entries, M a prime (parameter
 * "table=M", at least the number of servers and at most 1048573; default
 * 65537). The more entries per server, the closer a removal comes to moving
 * only the removed server's keys: about 6,500 entries per server keep it
 * within 1.2/n of the keys, 650 (100 servers in the default table) give
 * about 1.6/n. Each server has its own permutation of the entries, from two
 * independent hashes of its server id: offset = h1(id) mod M,
 * skip = h2(id) mod (M - 1) + 1 (M prime makes every skip a generator).
 * Taking turns, each server claims the next entry of its permutation that is
 * still free, until the table is full; the servers take turns in order of
 * id, so the table is a function of the set of servers alone. Every server
 * then owns M/n entries give or take one, and removing a server moves its
 * own keys plus few others (Eisenbud et al., "Maglev", NSDI 2016).
 * pick() maps a mixed key onto an entry by multiply-shift and returns that
 * entry's server: one key, one server, as long as the set does not change.
 *
 * Cost: pick() is O(1), a 64-bit mix, a multiply and one load from a table
 * of 2 * M bytes (128 KiB by default, 2 MiB at most). create() takes about M ln M probes.
 *
 * Threads: the table is written only by create(), before the route is
 * published; pick() reads it from every sending thread at once and writes
 * nothing. A changed server set comes with a new route object, hence a new
 * table.
 */
#include <errno.h>
#include <stdlib.h>

#include "policies/policies_internal.h"

#define HASH_TABLE_DEFAULT 65537u
#define HASH_TABLE_MAX 1048573u
#define HASH_EMPTY 0xffffu

struct hash_table {
	uint32_t size;
	uint16_t entry[];
};

/* One server's walk along its permutation of the table. */
struct hash_walk {
	uint32_t id;
	uint32_t index;  /* in the route */
	uint32_t pos;    /* next entry of the permutation to try */
	uint32_t skip;
};

/* splitmix64's output function: the server's offset, and the key. */
static inline uint64_t mix_splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* MurmurHash3's 64-bit finalizer: the server's skip. */
static inline uint64_t mix_murmur(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static bool is_prime(uint32_t m)
{
	if (m < 2)
		return false;
	for (uint32_t d = 2; d * d <= m; d++)
		if (m % d == 0)
			return false;
	return true;
}

static int walk_by_id(const void *a, const void *b)
{
	const struct hash_walk *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static void hash_fill(struct hash_table *t, struct hash_walk *walk, unsigned n)
{
	uint32_t m = t->size, filled = 0;

	for (uint32_t i = 0; i < m; i++)
		t->entry[i] = HASH_EMPTY;
	for (;;) {
		for (unsigned i = 0; i < n; i++) {
			struct hash_walk *w = &walk[i];
			uint32_t c = w->pos;

			while (t->entry[c] != HASH_EMPTY)
				c = c + w->skip >= m ? c + w->skip - m : c + w->skip;
			t->entry[c] = (uint16_t)w->index;
			w->pos = c + w->skip >= m ? c + w->skip - m : c + w->skip;
			if (++filled == m)
				return;
		}
	}
}

static int hash_create(const struct sy_policy_route *route, void **state)
{
	const char *const known[] = { "table", NULL };
	uint64_t m = HASH_TABLE_DEFAULT;
	struct hash_walk *walk;
	struct hash_table *t;
	int rc;

	if (sy__params_check(route->params, known) != 0)
		return -EINVAL;
	rc = sy__param_u64(route->params, "table", 2, HASH_TABLE_MAX, &m);
	if (rc == -EINVAL || !is_prime((uint32_t)m) || m < route->n)
		return -EINVAL;
	walk = malloc(route->n * sizeof(*walk));
	t = malloc(sizeof(*t) + (size_t)m * sizeof(t->entry[0]));
	if (!walk || !t) {
		free(walk);
		free(t);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < route->n; i++) {
		uint32_t id = route->servers[i].id;

		walk[i] = (struct hash_walk){
			.id = id,
			.index = i,
			.pos = (uint32_t)(mix_splitmix(id) % m),
			.skip = (uint32_t)(mix_murmur(id) % (m - 1) + 1),
		};
	}
	qsort(walk, route->n, sizeof(*walk), walk_by_id);
	t->size = (uint32_t)m;
	hash_fill(t, walk, route->n);
	free(walk);
	*state = t;
	return 0;
}

static void hash_destroy(void *state)
{
	free(state);
}

static int hash_pick(const void *state, struct sy_pick *p)
{
	const struct hash_table *t = state;
	uint64_t h = mix_splitmix(sy_pick_key(p));

	/* Multiply-shift: the high 32 bits of h scaled onto [0, size). */
	return t->entry[((h >> 32) * t->size) >> 32];
}

const struct sy_policy sy__policy_hash = {
	.name = "hash",
	.max_servers = 65535,
	.create = hash_create,
	.destroy = hash_destroy,
	.pick = hash_pick,
};
