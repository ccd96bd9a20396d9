/*
 * End-to-end tests of poison-key parking (sy_route_opts.park_after): on a
 * hash route, a key whose messages fail park_after times in a row is
 * parked; its later messages are held in order while every other key
 * flows, and sy_parked_release() runs them in order, ahead of newer ones;
 * sy_parked_purge() and a full queue dead-letter them (SY_DL_PARKED), and
 * stop dead-letters what is still held (SY_DL_SHUTDOWN).
 *
 * One test thread sends every message, so per-key order is the order of
 * its sends: the handler checks that each key's sequence numbers (the tag)
 * only grow. The engine runs on a fake clock; nothing here depends on
 * wall time except the bounds of waits.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define T0 10000000000ull  /* the fake clock: 10 s */
#define KEYS 10000u
#define ROUNDS 3u
#define POISON 4242u       /* the key that fails */

struct keyed {
	_Atomic bool poisoned;      /* POISON's runs fail */
	_Atomic uint64_t ok;        /* runs that succeeded */
	_Atomic uint64_t failed;
	_Atomic uint64_t out_of_order; /* a key's sequence number went back */
	_Atomic int64_t last[KEYS]; /* the sequence number a key ran last */
	_Atomic uint64_t poison_runs[64]; /* POISON's sequence numbers, in run order */
	_Atomic uint64_t poison_n;
};

/* Runs on the workers: counts, checks order per key, fails POISON. */
static int keyed_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct keyed *k = ctx;
	uint64_t key = sy_msg_key(msg);
	int64_t seq = (int64_t)sy_msg_tag(msg);

	(void)eng;
	if (key >= KEYS)
		return -EINVAL;
	if (atomic_load(&k->last[key]) >= seq)
		atomic_fetch_add(&k->out_of_order, 1);
	atomic_store(&k->last[key], seq);
	if (key == POISON) {
		uint64_t i = atomic_fetch_add(&k->poison_n, 1);

		if (i < 64)
			atomic_store(&k->poison_runs[i], (uint64_t)seq);
		if (atomic_load(&k->poisoned)) {
			atomic_fetch_add(&k->failed, 1);
			return -EIO;
		}
	}
	atomic_fetch_add(&k->ok, 1);
	return 0;
}

struct rig {
	struct t_clock clock;
	sy_engine *eng;
	uint32_t route;
	struct keyed *k;
};

/* Four servers on two workers behind a hash route that parks a key after
 * three failures in a row and holds @p capacity of its messages. */
static void rig_up(struct rig *r, unsigned capacity)
{
	struct sy_route_opts ro = {
		.policy = "hash", .park_after = 3, .park_capacity = capacity,
	};
	uint32_t sids[4];

	r->k = calloc(1, sizeof(*r->k));
	cr_assert_not_null(r->k);
	for (unsigned i = 0; i < KEYS; i++)
		atomic_init(&r->k->last[i], -1);
	atomic_init(&r->k->poisoned, true);
	r->eng = t_engine_at(2, &r->clock, T0);
	for (unsigned i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%u", i);
		sids[i] = t_add_server(r->eng, name, keyed_handler, r->k,
				       (int)(i % 2));
	}
	r->route = t_add_route(r->eng, "keyed", ro, sids, 4);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

static void rig_down(struct rig *r)
{
	sy_engine_destroy(r->eng);
	free(r->k);
}

static void send_keyed(struct rig *r, uint64_t key, uint64_t seq)
{
	sy_msg *m = t_msg(r->eng, seq);

	sy_msg_set_key(m, key);
	cr_assert_eq(t_send_retry(r->eng, r->route, m, T_WAIT_MS), 0,
		     "key %llu seq %llu refused", (unsigned long long)key,
		     (unsigned long long)seq);
}

/* POISON's entry in the parked list, once it holds @p held messages. */
static bool wait_parked(struct rig *r, unsigned held, struct sy_parked_key *pk)
{
	uint64_t until = t_now_ms() + T_WAIT_MS;

	do {
		if (sy_parked_list(r->eng, r->route, pk, 1) == 1 &&
		    pk->held == held)
			return true;
		t_sleep_us(200);
	} while (t_now_ms() < until);
	return false;
}

/* Park POISON: three of its messages fail (seq 0..2); then @p held more
 * (seq 3..) reach the worker and wait. */
static void park_poison(struct rig *r, unsigned sent, unsigned held,
			struct sy_parked_key *pk)
{
	for (unsigned s = 0; s < 3; s++)
		send_keyed(r, POISON, s);
	cr_assert(t_wait_u64(&r->k->failed, 3, T_WAIT_MS), "3 failures");
	for (unsigned s = 3; s < 3 + sent; s++)
		send_keyed(r, POISON, s);
	cr_assert(wait_parked(r, held, pk), "POISON holds %u messages", held);
}

/* Wait until @p in_flight messages are in flight: the counts of handler
 * runs are published after the runs. */
static void wait_in_flight(sy_engine *eng, uint64_t in_flight)
{
	uint64_t until = t_now_ms() + T_WAIT_MS;
	struct sy_accounting a;

	do {
		cr_assert_eq(sy_engine_accounting(eng, &a), 0);
		if (a.in_flight == in_flight)
			return;
		t_sleep_us(200);
	} while (t_now_ms() < until);
	cr_assert_fail("%llu in flight, not %llu",
		       (unsigned long long)a.in_flight,
		       (unsigned long long)in_flight);
}

static void expect_accounting(sy_engine *eng, uint64_t accepted,
			      uint64_t delivered, uint64_t in_flight,
			      uint64_t failed, uint64_t parked,
			      uint64_t shutdown)
{
	struct sy_accounting a;

	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, accepted, "accepted %llu",
		     (unsigned long long)a.accepted);
	cr_expect_eq(a.delivered, delivered, "delivered %llu",
		     (unsigned long long)a.delivered);
	cr_expect_eq(a.in_flight, in_flight, "in flight %llu",
		     (unsigned long long)a.in_flight);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], failed);
	cr_expect_eq(a.dead_lettered_by[SY_DL_PARKED], parked, "parked %llu",
		     (unsigned long long)a.dead_lettered_by[SY_DL_PARKED]);
	cr_expect_eq(a.dead_lettered_by[SY_DL_SHUTDOWN], shutdown);
	cr_expect_eq(a.accepted, a.delivered + a.failed_kept + a.dead_lettered +
		     a.evicted + a.dropped + a.returned + a.in_flight);
}

Test(reliability_parking, a_poisoned_key_among_10000_is_held_and_released_in_order)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 0);
	park_poison(&r, 20, 20, &pk);
	cr_expect_eq(pk.key, POISON);
	cr_expect_eq(pk.route, r.route);
	cr_expect_eq(pk.failures, 3);
	cr_expect_eq(pk.parked_ns, T0);
	cr_expect(!pk.releasing);
	/* Every other key flows, in order, around the parked one. */
	for (unsigned round = 0; round < ROUNDS; round++)
		for (unsigned key = 0; key < KEYS; key++)
			if (key != POISON)
				send_keyed(&r, key, round);
	cr_assert(t_wait_u64(&r.k->ok, (uint64_t)(KEYS - 1) * ROUNDS,
			     T_WAIT_MS), "%llu delivered",
		  (unsigned long long)atomic_load(&r.k->ok));
	for (unsigned key = 0; key < KEYS; key++)
		if (key != POISON)
			cr_assert_eq(atomic_load(&r.k->last[key]), ROUNDS - 1,
				     "key %u", key);
	cr_assert_eq(atomic_load(&r.k->poison_n), 3, "POISON ran while parked");
	cr_assert(wait_parked(&r, 20, &pk));
	wait_in_flight(r.eng, 20);
	expect_accounting(r.eng, 3 + 20 + (KEYS - 1) * ROUNDS,
			  (KEYS - 1) * ROUNDS, 20, 3, 0, 0);

	/* Fixed: release it, and send newer messages right behind. */
	atomic_store(&r.k->poisoned, false);
	cr_assert_eq(sy_parked_release(r.eng, r.route, POISON), 20);
	for (unsigned s = 23; s < 33; s++)
		send_keyed(&r, POISON, s);
	cr_assert(t_wait_u64(&r.k->poison_n, 33, T_WAIT_MS), "%llu runs of POISON",
		  (unsigned long long)atomic_load(&r.k->poison_n));
	for (unsigned i = 0; i < 33; i++)
		cr_expect_eq(atomic_load(&r.k->poison_runs[i]), i, "run %u", i);
	cr_expect_eq(atomic_load(&r.k->out_of_order), 0);
	cr_expect_eq(sy_parked_list(r.eng, SY_ANY, &pk, 1), 0);
	cr_expect_eq(sy_parked_release(r.eng, r.route, POISON), -ENOENT);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 33 + (KEYS - 1) * ROUNDS,
			  30 + (KEYS - 1) * ROUNDS, 0, 3, 0, 0);
	rig_down(&r);
}

Test(reliability_parking, purge_dead_letters_the_held_messages)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 0);
	park_poison(&r, 7, 7, &pk);
	cr_assert_eq(sy_parked_purge(r.eng, r.route, POISON), 7);
	cr_expect_eq(sy_parked_purge(r.eng, r.route, POISON), -ENOENT);
	cr_expect_eq(sy_parked_list(r.eng, SY_ANY, &pk, 1), 0);
	/* Unparked: the next ones run (and count towards parking again). */
	atomic_store(&r.k->poisoned, false);
	send_keyed(&r, POISON, 10);
	cr_assert(t_wait_u64(&r.k->ok, 1, T_WAIT_MS));
	cr_expect_eq(atomic_load(&r.k->out_of_order), 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 11, 1, 0, 3, 7, 0);
	rig_down(&r);
}

Test(reliability_parking, a_full_queue_dead_letters_the_overflow)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 4);
	park_poison(&r, 10, 4, &pk);
	/* The held count settles at 4 before the last are refused: wait. */
	cr_assert(t_wait_dead_letters(r.eng, 3 + 6), "%zu dead letters",
		  sy_dlq_count(r.eng, NULL));
	cr_assert_eq(sy_parked_list(r.eng, r.route, &pk, 1), 1);
	cr_expect_eq(pk.held, 4);
	cr_expect_eq(pk.dead_lettered, 6);
	wait_in_flight(r.eng, 4);
	expect_accounting(r.eng, 13, 0, 4, 3, 6, 0);
	atomic_store(&r.k->poisoned, false);
	cr_assert_eq(sy_parked_release(r.eng, r.route, POISON), 4);
	cr_assert(t_wait_u64(&r.k->ok, 4, T_WAIT_MS));
	for (unsigned i = 0; i < 7; i++)
		cr_expect_eq(atomic_load(&r.k->poison_runs[i]), i, "run %u", i);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 13, 4, 0, 3, 6, 0);
	rig_down(&r);
}

Test(reliability_parking, stop_dead_letters_what_is_held_as_shutdown)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 0);
	park_poison(&r, 5, 5, &pk);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 8, 0, 0, 3, 0, 5);
	cr_expect_eq(sy_parked_list(r.eng, SY_ANY, &pk, 1), 0);
	cr_expect_eq(sy_parked_release(r.eng, r.route, POISON), -ESHUTDOWN);
	rig_down(&r);
}

Test(reliability_parking, a_key_that_fails_again_after_release_is_parked_again)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 0);
	park_poison(&r, 6, 6, &pk);
	/* Still poisoned: the first three released fail and park it again;
	 * the other three are held again, in order. */
	cr_assert_eq(sy_parked_release(r.eng, r.route, POISON), 6);
	cr_assert(t_wait_u64(&r.k->failed, 6, T_WAIT_MS));
	cr_assert(wait_parked(&r, 3, &pk), "held again: %u", pk.held);
	atomic_store(&r.k->poisoned, false);
	cr_assert_eq(sy_parked_release(r.eng, r.route, POISON), 3);
	cr_assert(t_wait_u64(&r.k->poison_n, 9, T_WAIT_MS));
	for (unsigned i = 0; i < 9; i++)
		cr_expect_eq(atomic_load(&r.k->poison_runs[i]), i, "run %u", i);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 9, 3, 0, 6, 0, 0);
	rig_down(&r);
}

Test(reliability_parking, removing_the_route_dead_letters_what_it_holds)
{
	struct sy_parked_key pk;
	struct rig r;

	rig_up(&r, 0);
	park_poison(&r, 4, 4, &pk);
	cr_assert_eq(sy_route_remove(r.eng, r.route), 0);
	cr_expect_eq(sy_parked_list(r.eng, SY_ANY, &pk, 1), 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	expect_accounting(r.eng, 7, 0, 0, 3, 4, 0);
	rig_down(&r);
}

Test(reliability_parking, options_are_checked)
{
	struct sy_route_opts ro = { .policy = "hash", .park_after = 1,
				    .park_capacity = 1048577 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t sid = t_add_server(eng, "s", keyed_handler, NULL, 0), id;

	ro.servers = &sid;
	ro.n_servers = 1;
	cr_expect_eq(sy_route_add(eng, "r", &ro, &id), -EINVAL);
	cr_expect_eq(sy_parked_purge(eng, 0, 1), -ENOENT);
	cr_expect_eq(sy_parked_release(eng, 0, 1), -ESHUTDOWN);
	sy_engine_destroy(eng);
}
