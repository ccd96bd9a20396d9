/*
 * Tests of the random policy as a user sees it: how the messages of one
 * producer spread over a route's servers, with the engine seeded
 * (config.seed) so that each run sees the same draws.
 *
 * Each server's handler counts its messages in its context (atomics); the
 * test thread stops the engine (which drains every accepted message and
 * joins the workers) before it reads the counts. Handlers never assert.
 * The sender keeps fewer messages in flight than a ring has entries, so no
 * send is refused and each message is drawn for exactly once.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <criterion/criterion.h>

#include "tests/common.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define WAIT_MS 60000u
#define MAX_SERVERS 16u
#define BATCH 256u
/* Messages in flight at most; with BATCH, below a ring's 1024 entries. */
#define IN_FLIGHT_MAX 512u

/*
 * Chi-square critical values at p = 0.001 by degrees of freedom, from the
 * standard table (NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.4).
 */
#define CHI2_P001_DF1 10.828
#define CHI2_P001_DF4 18.467
#define CHI2_P001_DF9 27.877

struct server {
	_Atomic uint64_t got;
	_Atomic uint64_t *delivered; /* the rig's, all servers */
};

struct rig {
	sy_engine *eng;
	uint32_t route;
	unsigned n;
	uint64_t sent;
	_Atomic uint64_t delivered;
	uint32_t ids[MAX_SERVERS];
	struct server servers[MAX_SERVERS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int count_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;

	(void)eng;
	(void)msg;
	atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
	/* Pairs with the load in rig_wait(). */
	atomic_fetch_add_explicit(s->delivered, 1, memory_order_release);
	return 0;
}

/* A started, seeded engine of two workers, @p n servers, a random route. */
static void rig_start(struct rig *r, unsigned n, uint64_t seed)
{
	struct sy_route_opts ro = { .policy = "random", .n_servers = n };
	struct sy_config cfg;

	cr_assert_leq(n, MAX_SERVERS);
	r->n = n;
	r->sent = 0;
	atomic_init(&r->delivered, 0);
	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.seed = seed;
	r->eng = NULL;
	cr_assert_eq(sy_engine_create(&cfg, &r->eng), 0, "%s", sy_last_error());
	for (unsigned i = 0; i < n; i++) {
		struct sy_server_opts so = { .worker = (int)(i % 2) };
		char name[] = "server-00";

		name[7] = (char)('0' + i / 10);
		name[8] = (char)('0' + i % 10);
		atomic_init(&r->servers[i].got, 0);
		r->servers[i].delivered = &r->delivered;
		cr_assert_eq(sy_server_add(r->eng, name, count_handler,
					   &r->servers[i], &so, &r->ids[i]), 0);
	}
	ro.servers = r->ids;
	cr_assert_eq(sy_route_add(r->eng, "random", &ro, &r->route), 0, "%s",
		     sy_last_error());
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* Wait until at most @p in_flight of the messages sent are not handled. */
static void rig_wait(struct rig *r, uint64_t in_flight)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (r->sent - atomic_load(&r->delivered) > in_flight) {
		cr_assert_leq(now_ms(), end, "%llu messages not handled",
			      (unsigned long long)(r->sent - atomic_load(&r->delivered)));
		sched_yield();
	}
}

/* Send @p total messages in bursts, none refused. */
static void send_many(struct rig *r, uint64_t total)
{
	sy_msg *msgs[BATCH];

	for (uint64_t left = total; left > 0;) {
		unsigned n = left < BATCH ? (unsigned)left : BATCH;
		int k;

		rig_wait(r, IN_FLIGHT_MAX - BATCH);
		for (unsigned i = 0; i < n; i++) {
			msgs[i] = sy_msg_alloc(r->eng, 8);
			cr_assert_not_null(msgs[i], "%s", sy_last_error());
		}
		k = sy_send_burst(r->eng, r->route, msgs, n);
		cr_assert_eq(k, (int)n, "sy_send_burst took %d of %u", k, n);
		r->sent += n;
		left -= n;
	}
}

static void check_uniform(unsigned n, uint64_t seed, double critical)
{
	const uint64_t total = 1000000;
	double expected = (double)total / n, chi2 = 0;
	struct rig r;

	rig_start(&r, n, seed);
	send_many(&r, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	for (unsigned i = 0; i < n; i++) {
		double d = (double)atomic_load(&r.servers[i].got) - expected;

		chi2 += d * d / expected;
	}
	cr_expect_lt(chi2, critical, "%u servers, seed %llu: chi-square %.3f >= %.3f",
		     n, (unsigned long long)seed, chi2, critical);
	sy_engine_destroy(r.eng);
}

Test(policies_random, a_million_seeded_picks_are_uniform_by_chi_square)
{
	check_uniform(2, 42, CHI2_P001_DF1);
	check_uniform(5, 42, CHI2_P001_DF4);
	check_uniform(10, 42, CHI2_P001_DF9);
}

Test(policies_random, other_seeds_are_uniform_too)
{
	check_uniform(5, 1, CHI2_P001_DF4);
	check_uniform(5, 0x9e3779b97f4a7c15ull, CHI2_P001_DF4);
	check_uniform(10, 123456789, CHI2_P001_DF9);
}
