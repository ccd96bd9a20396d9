/*
 * Tests of the hash policy (Maglev consistent hashing on the message key) as
 * a user sees it: one key reaches one server; keys spread evenly; removing a
 * server moves few keys besides its own; per-key order survives several
 * producers and workers; a bad table size is refused.
 *
 * A message carries its phase and its key's number in its tag. A server's
 * handler counts its messages per phase and claims each numbered key it
 * sees in the phase's owner map (a compare-and-swap, so that a key reaching
 * two servers is counted, not raced on). The test thread stops the engine,
 * or waits (bounded) for the count it sent, before it reads what the
 * handlers wrote. Handlers never assert.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define MAX_SERVERS 100u
#define PHASES 3u
/* The tag's key number of a message whose key is in no owner map. */
#define UNMAPPED 0xffffffffu

struct rig;

struct server {
	uint16_t index;               /* in the rig, not in the route */
	_Atomic uint64_t got[PHASES];
	struct rig *rig;
};

struct rig {
	sy_engine *eng;
	uint32_t route;
	unsigned n;
	uint64_t sent;
	_Atomic uint64_t delivered;
	uint32_t map_keys;            /* keys numbered 0 .. map_keys - 1 */
	_Atomic uint16_t *owner[PHASES]; /* [map_keys]: server index + 1, 0: none */
	_Atomic uint64_t conflicts;   /* a key that reached a second server */
	uint32_t ids[MAX_SERVERS];
	struct server servers[MAX_SERVERS];
};

/* The test's own generator (splitmix64), independent of the engine's. */
static uint64_t test_random(uint64_t *state)
{
	uint64_t x = (*state += 0x9e3779b97f4a7c15ull);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int claim_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	struct rig *r = s->rig;
	uint64_t tag = sy_msg_tag(msg);
	uint32_t key = (uint32_t)tag;
	unsigned phase = (unsigned)(tag >> 32);

	(void)eng;
	if (phase < PHASES) {
		atomic_fetch_add_explicit(&s->got[phase], 1, memory_order_relaxed);
		if (key < r->map_keys && r->owner[phase]) {
			uint16_t none = 0, me = (uint16_t)(s->index + 1);

			/* Relaxed: read only after the handlers are done. */
			if (!atomic_compare_exchange_strong_explicit(
				    &r->owner[phase][key], &none, me,
				    memory_order_relaxed, memory_order_relaxed) &&
			    none != me)
				atomic_fetch_add_explicit(&r->conflicts, 1,
							  memory_order_relaxed);
		}
	}
	/* Pairs with the load in rig_wait_handled(): everything above is visible. */
	atomic_fetch_add_explicit(&r->delivered, 1, memory_order_release);
	return 0;
}

/* An engine of two workers with @p n servers over them, and owner maps. */
static void rig_init(struct rig *r, unsigned n, uint32_t map_keys)
{
	cr_assert_leq(n, MAX_SERVERS);
	memset(r, 0, sizeof(*r));
	r->n = n;
	atomic_init(&r->delivered, 0);
	atomic_init(&r->conflicts, 0);
	r->map_keys = map_keys;
	for (unsigned p = 0; p < PHASES && map_keys; p++) {
		r->owner[p] = calloc(map_keys, sizeof(r->owner[p][0]));
		cr_assert_not_null(r->owner[p]);
		for (uint32_t k = 0; k < map_keys; k++)
			atomic_init(&r->owner[p][k], 0);
	}
	r->eng = t_engine(2, SY_IDLE_SLEEP);
	cr_assert_not_null(r->eng, "%s", sy_last_error());
	for (unsigned i = 0; i < n; i++) {
		r->servers[i].index = (uint16_t)i;
		r->servers[i].rig = r;
		for (unsigned p = 0; p < PHASES; p++)
			atomic_init(&r->servers[i].got[p], 0);
	}
	t_add_servers(r->eng, n, 3, claim_handler, r->servers,
		      sizeof(r->servers[0]), r->ids);
}

/* Route options of a hash route over r->ids[0..n) less server @p skip. */
static struct sy_route_opts rig_opts(struct rig *r, uint32_t *servers,
				     unsigned skip, const char *params)
{
	struct sy_route_opts ro = { .policy = "hash", .servers = servers,
				    .params = params };

	for (unsigned i = 0; i < r->n; i++)
		if (i != skip)
			servers[ro.n_servers++] = r->ids[i];
	return ro;
}

static void rig_start(struct rig *r, const char *params)
{
	uint32_t servers[MAX_SERVERS];
	struct sy_route_opts ro = rig_opts(r, servers, UINT32_MAX, params);

	cr_assert_eq(sy_route_add(r->eng, "hashed", &ro, &r->route), 0, "%s",
		     sy_last_error());
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

static void rig_destroy(struct rig *r)
{
	sy_engine_destroy(r->eng);
	for (unsigned p = 0; p < PHASES; p++)
		free(r->owner[p]);
}

struct key_label {
	unsigned phase;
	uint32_t keys;
	uint64_t seed;
};

/* With keys, message i has key i % keys, numbered in its tag; without, a
 * random key from the seed, unnumbered. */
static void label_key(sy_msg *msg, uint64_t i, void *ctx)
{
	struct key_label *l = ctx;
	uint32_t number = l->keys ? (uint32_t)(i % l->keys) : UNMAPPED;

	sy_msg_set_key(msg, l->keys ? number : test_random(&l->seed));
	sy_msg_set_tag(msg, (uint64_t)l->phase << 32 | number);
}

/*
 * Send @p total messages of @p phase in bursts, none refused. With @p keys,
 * message i has key i % keys, numbered in its tag; without, a random key
 * from @p seed, unnumbered.
 */
static void send_keys(struct rig *r, unsigned phase, uint64_t total,
		      uint32_t keys, uint64_t seed)
{
	struct key_label l = { .phase = phase, .keys = keys, .seed = seed };

	rig_send(r->eng, r->route, &r->sent, &r->delivered, total, label_key, &l);
}

static uint64_t got(const struct rig *r, unsigned server, unsigned phase)
{
	return atomic_load(&r->servers[server].got[phase]);
}

static uint16_t owner(const struct rig *r, unsigned phase, uint32_t key)
{
	return atomic_load_explicit(&r->owner[phase][key], memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* One key, one server                                                */
/* ------------------------------------------------------------------ */

Test(policies_hash, the_same_key_always_reaches_the_same_server)
{
	const uint32_t keys = 10000;
	uint64_t unclaimed = 0, used[4] = { 0 };
	struct rig r;

	rig_init(&r, 4, keys);
	rig_start(&r, NULL);
	/* Fifty rounds over every key, the rounds interleaved. */
	send_keys(&r, 0, 50ull * keys, keys, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), 50ull * keys);
	cr_expect_eq(atomic_load(&r.conflicts), 0,
		     "%llu messages reached another server than their key's first",
		     (unsigned long long)atomic_load(&r.conflicts));
	for (uint32_t k = 0; k < keys; k++) {
		uint16_t o = owner(&r, 0, k);

		if (o == 0 || o > 4)
			unclaimed++;
		else
			used[o - 1]++;
	}
	cr_expect_eq(unclaimed, 0);
	for (unsigned i = 0; i < 4; i++)
		cr_expect_gt(used[i], 0, "server %u owns no key", i);
	rig_destroy(&r);
}

Test(policies_hash, the_same_servers_in_another_order_keep_every_key)
{
	const uint32_t keys = 20000;
	uint32_t servers[4];
	struct sy_route_opts ro;
	uint64_t moved = 0;
	struct rig r;

	rig_init(&r, 4, keys);
	rig_start(&r, NULL);
	send_keys(&r, 0, keys, keys, 0);
	ro = rig_opts(&r, servers, UINT32_MAX, NULL);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t t = servers[i];

		servers[i] = servers[3 - i];
		servers[3 - i] = t;
	}
	cr_assert_eq(sy_route_replace(r.eng, r.route, &ro), 0, "%s",
		     sy_last_error());
	send_keys(&r, 1, keys, keys, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (uint32_t k = 0; k < keys; k++)
		moved += owner(&r, 0, k) != owner(&r, 1, k);
	cr_expect_eq(moved, 0, "%llu of %u keys moved",
		     (unsigned long long)moved, keys);
	rig_destroy(&r);
}

/* ------------------------------------------------------------------ */
/* Balance and disruption                                             */
/* ------------------------------------------------------------------ */

Test(policies_hash, a_million_random_keys_spread_evenly_by_chi_square)
{
	const uint64_t total = 1000000;
	double expected[4], chi2;
	uint64_t counts[4];
	struct rig r;

	rig_init(&r, 4, 0);
	rig_start(&r, NULL);
	send_keys(&r, 0, total, 0, 2026);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	for (unsigned i = 0; i < 4; i++) {
		counts[i] = got(&r, i, 0);
		expected[i] = total / 4.0;
	}
	chi2 = rig_chi_square(counts, expected, 4);
	cr_expect_lt(chi2, RIG_CHI2_P001_DF3, "chi-square %.3f >= %.3f", chi2,
		     RIG_CHI2_P001_DF3);
	rig_destroy(&r);
}

/*
 * Over @p n servers: each server's share of a million random keys is within
 * 5% of 1/n; then, for 100,000 numbered keys, a replacement of the route
 * without one server moves at most @p moved_max / n of the keys, none to it.
 *
 * Maglev moves more than the removed server's own 1/n when the table has few
 * entries per server, because the freed entries change which entries the
 * others claim later in the fill. The default table (65537) has 650 entries
 * per server at n = 100, where a removal moves about 1.56/n; with about
 * 6,500 per server (table=655373) it stays within 1.2/n, as at n = 3 and 10
 * with the default table.
 */
static void check_maglev(unsigned n, const char *params, double moved_max)
{
	const uint64_t total = 1000000;
	const uint32_t keys = 100000;
	const unsigned gone = n / 2;
	uint32_t servers[MAX_SERVERS];
	uint64_t moved = 0, to_gone = 0;
	struct sy_route_opts ro;
	struct rig r;

	rig_init(&r, n, keys);
	rig_start(&r, params);
	send_keys(&r, 0, total, 0, 7 + n);
	send_keys(&r, 1, keys, keys, 0);
	ro = rig_opts(&r, servers, gone, params);
	cr_assert_eq(sy_route_replace(r.eng, r.route, &ro), 0, "%s",
		     sy_last_error());
	send_keys(&r, 2, keys, keys, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total + 2ull * keys);
	cr_expect_eq(atomic_load(&r.conflicts), 0);

	for (unsigned i = 0; i < n; i++) {
		double share = (double)got(&r, i, 0) / (double)total;

		cr_expect(share > 0.95 / n && share < 1.05 / n,
			  "%u servers: server %u has %.5f of the keys, not within 5%% of %.5f",
			  n, i, share, 1.0 / n);
	}
	for (uint32_t k = 0; k < keys; k++) {
		moved += owner(&r, 1, k) != owner(&r, 2, k);
		to_gone += owner(&r, 2, k) == gone + 1;
	}
	cr_expect_eq(to_gone, 0);
	cr_expect_leq((double)moved, moved_max * keys / n,
		      "%u servers, one removed: %llu of %u keys moved, above %.2f/n",
		      n, (unsigned long long)moved, keys, moved_max);
	rig_destroy(&r);
}

Test(policies_hash, maglev_balances_and_a_removal_moves_few_keys_over_3_servers)
{
	check_maglev(3, NULL, 1.2);
}

Test(policies_hash, maglev_balances_and_a_removal_moves_few_keys_over_10_servers)
{
	check_maglev(10, NULL, 1.2);
}

Test(policies_hash, maglev_balances_and_a_removal_moves_few_keys_over_100_servers)
{
	check_maglev(100, "table=655373", 1.2);
}

/* ------------------------------------------------------------------ */
/* Table size                                                         */
/* ------------------------------------------------------------------ */

Test(policies_hash, a_table_size_that_is_no_prime_or_out_of_range_is_refused)
{
	const char *const bad[] = {
		"table=4", "table=65536", "table=1048576", "table=1048583", "table=1", "table=0",
		"table=3", "table=", "table=abc", "table=251x", "tabel=251",
		"table=251,bogus=1",
	};
	const char *const good[] = { "table=5", "table=251", "table=1021",
				     "table=4093", "table=65537", "table=1048573" };
	uint32_t servers[4], id;
	struct sy_route_opts ro;
	struct rig r;

	rig_init(&r, 4, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ro = rig_opts(&r, servers, UINT32_MAX, bad[i]);
		cr_expect_eq(sy_route_add(r.eng, "bad", &ro, &id), -EINVAL,
			     "params \"%s\"", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ro = rig_opts(&r, servers, UINT32_MAX, good[i]);
		cr_expect_eq(sy_route_add(r.eng, "good", &ro, &id), 0,
			     "params \"%s\": %s", good[i], sy_last_error());
		cr_expect_eq(sy_route_remove(r.eng, id), 0);
	}
	rig_destroy(&r);
}

Test(policies_hash, a_small_table_still_maps_each_key_to_one_server)
{
	const uint32_t keys = 5000;
	uint64_t used[4] = { 0 };
	struct rig r;

	rig_init(&r, 4, keys);
	rig_start(&r, "table=251");
	send_keys(&r, 0, 20ull * keys, keys, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(atomic_load(&r.conflicts), 0);
	for (uint32_t k = 0; k < keys; k++)
		if (owner(&r, 0, k) >= 1 && owner(&r, 0, k) <= 4)
			used[owner(&r, 0, k) - 1]++;
	/* 251 entries over 4 servers: 62 or 63 each, about a quarter of the keys. */
	for (unsigned i = 0; i < 4; i++)
		cr_expect(used[i] > keys / 5 && used[i] < keys * 3 / 10,
			  "server %u owns %llu of %u keys", i,
			  (unsigned long long)used[i], keys);
	rig_destroy(&r);
}

/* ------------------------------------------------------------------ */
/* Per-key order from several producers                               */
/* ------------------------------------------------------------------ */

#define ORDER_PRODUCERS 3u
#define ORDER_SERVERS 4u
#define ORDER_KEYS 1000u
#define ORDER_TOTAL 1000000u
/* Bursts span more than one internal chunk: refused ones come back in order. */
#define ORDER_BURST 48u
/* Small rings: producers outrun the workers and get refused often. */
#define ORDER_RING 64u

/* Written only by the server's worker; read after the workers are joined. */
struct order_server {
	uint64_t next[ORDER_PRODUCERS][ORDER_KEYS]; /* lowest seq still in order */
	uint8_t seen[ORDER_KEYS];
	uint64_t got;
	uint64_t violations;
	uint64_t strangers;  /* unknown producer, key, or a key that differs */
};

/* The key a message with key number @p k carries: spread over 64 bits. */
static uint64_t order_key(uint32_t k)
{
	return (uint64_t)k * 0xd1342543de82ef95ull + 0x632be59bd9b4e019ull;
}

static int order_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct order_server *s = ctx;
	struct t_note n;	/* key: its number, 0 .. ORDER_KEYS - 1 */

	(void)eng;
	memcpy(&n, sy_msg_data(msg), sizeof(n));
	s->got++;
	if (n.producer >= ORDER_PRODUCERS || n.key >= ORDER_KEYS ||
	    sy_msg_key(msg) != order_key(n.key)) {
		s->strangers++;
		return 0;
	}
	if (n.seq < s->next[n.producer][n.key])
		s->violations++;
	s->next[n.producer][n.key] = n.seq + 1;
	s->seen[n.key] = 1;
	return 0;
}

static void *order_produce(void *arg)
{
	struct t_producer *p = arg;
	uint64_t rng = 1000 + p->id, seq = 0, stall_end = t_now_ms() + RIG_WAIT_MS;
	sy_msg *msgs[ORDER_BURST];
	unsigned held = 0;

	while (p->accepted < p->quota) {
		int k;

		while (held < ORDER_BURST && p->accepted + held < p->quota) {
			struct t_note n = {
				.producer = p->id,
				.key = (uint32_t)(test_random(&rng) % ORDER_KEYS),
				.seq = seq++,
			};
			sy_msg *m = t_note_msg(p->eng, &n);

			if (!m) {
				p->error = -ENOMEM;
				goto out_free;
			}
			sy_msg_set_key(m, order_key(n.key));
			msgs[held++] = m;
		}
		k = sy_msg_send_burst(p->eng, p->routes[0], msgs, held);
		if (k < 0) {
			if (k != -EAGAIN || t_now_ms() > stall_end) {
				p->error = k;
				goto out_free;
			}
			sched_yield();
			continue;
		}
		/* msgs[0..k) are the engine's; the rest go again, in order. */
		p->accepted += (unsigned)k;
		held -= (unsigned)k;
		memmove(msgs, msgs + k, held * sizeof(msgs[0]));
		stall_end = t_now_ms() + RIG_WAIT_MS;
	}
out_free:
	for (unsigned i = 0; i < held; i++)
		sy_msg_free(msgs[i]);
	return NULL;
}

Test(policies_hash, per_key_order_holds_from_three_producers_over_two_workers)
{
	struct t_producer producers[ORDER_PRODUCERS];
	struct order_server *servers;
	uint64_t accepted = 0, delivered = 0, shared_keys = 0;
	uint32_t ids[ORDER_SERVERS], route;
	struct sy_config cfg;
	struct sy_stats st;
	sy_engine *eng;

	servers = calloc(ORDER_SERVERS, sizeof(*servers));
	cr_assert_not_null(servers);
	t_config(&cfg, 2, NULL);
	cfg.ring_size = ORDER_RING;
	eng = t_create(&cfg);
	t_add_servers(eng, ORDER_SERVERS, 1, order_handler, servers,
		      sizeof(servers[0]), ids);
	route = t_add_route(eng, "keyed", (struct sy_route_opts){ .policy = "hash" },
			    ids, ORDER_SERVERS);
	cr_assert_eq(sy_engine_start(eng), 0);

	t_producers_init(producers, ORDER_PRODUCERS, eng, &route, 1, ORDER_TOTAL);
	t_producers_run(producers, ORDER_PRODUCERS, order_produce);
	for (uint32_t p = 0; p < ORDER_PRODUCERS; p++)
		accepted += producers[p].accepted;
	/* Stop drains every accepted message and joins the workers. */
	cr_assert_eq(sy_engine_stop(eng), 0);

	for (uint32_t p = 0; p < ORDER_PRODUCERS; p++)
		cr_expect_eq(producers[p].error, 0, "producer %u stopped: %d", p,
			     producers[p].error);
	cr_expect_eq(accepted, ORDER_TOTAL);
	for (unsigned i = 0; i < ORDER_SERVERS; i++) {
		delivered += servers[i].got;
		cr_expect_eq(servers[i].violations, 0,
			     "server %u: %llu messages out of key order", i,
			     (unsigned long long)servers[i].violations);
		cr_expect_eq(servers[i].strangers, 0);
		cr_expect_gt(servers[i].got, 0, "server %u got nothing", i);
	}
	for (unsigned k = 0; k < ORDER_KEYS; k++) {
		unsigned owners = 0;

		for (unsigned i = 0; i < ORDER_SERVERS; i++)
			owners += servers[i].seen[k];
		shared_keys += owners > 1;
	}
	cr_expect_eq(shared_keys, 0, "%llu keys reached more than one server",
		     (unsigned long long)shared_keys);
	cr_expect_eq(delivered, ORDER_TOTAL, "handled %llu of %u",
		     (unsigned long long)delivered, ORDER_TOTAL);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, ORDER_TOTAL);
	cr_expect_eq(st.delivered, ORDER_TOTAL);
	sy_engine_destroy(eng);
	free(servers);
}
