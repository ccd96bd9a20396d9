/*
 * Tests of the round_robin policy as a user sees it: how the messages of one
 * producer spread over a route's servers.
 *
 * Each server's handler counts its messages in its context (atomics); the
 * test thread sends through the engine, then stops it (which drains every
 * accepted message and joins the workers) and only then reads the counts.
 * Handlers never call Criterion's assertions.
 *
 * The engine picks a server when it takes a send, and a send refused for a
 * full ring has used up its pick: sent again, the message is picked anew.
 * So that each message is picked exactly once, the sender keeps fewer
 * messages in flight than a ring has entries, and no send is refused.
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
#define CHI2_P001_DF2 13.816
#define CHI2_P001_DF3 16.266
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
	/* Pairs with the load in rig_wait(): the count above is visible. */
	atomic_fetch_add_explicit(s->delivered, 1, memory_order_release);
	return 0;
}

/* A started engine of two workers, @p n servers spread over them, one route. */
static void rig_start(struct rig *r, unsigned n)
{
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = n };

	cr_assert_leq(n, MAX_SERVERS);
	r->n = n;
	r->sent = 0;
	atomic_init(&r->delivered, 0);
	r->eng = t_engine(2, SY_IDLE_SLEEP);
	cr_assert_not_null(r->eng, "%s", sy_last_error());
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
	cr_assert_eq(sy_route_add(r->eng, "spread", &ro, &r->route), 0, "%s",
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

/* Send @p total messages in bursts, none refused (see the top). */
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

static double chi_square_uniform(const struct rig *r, uint64_t total)
{
	double expected = (double)total / r->n, chi2 = 0;

	for (unsigned i = 0; i < r->n; i++) {
		double d = (double)atomic_load(&r->servers[i].got) - expected;

		chi2 += d * d / expected;
	}
	return chi2;
}

static void check_uniform(unsigned n, double critical)
{
	const uint64_t total = 1000000;
	struct rig r;
	double chi2;

	rig_start(&r, n);
	send_many(&r, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	chi2 = chi_square_uniform(&r, total);
	cr_expect_lt(chi2, critical, "%u servers: chi-square %.3f >= %.3f", n,
		     chi2, critical);
	sy_engine_destroy(r.eng);
}

Test(policies_round_robin, one_producer_spreads_a_million_messages_uniformly)
{
	check_uniform(3, CHI2_P001_DF2);
	check_uniform(4, CHI2_P001_DF3);
	check_uniform(10, CHI2_P001_DF9);
}

Test(policies_round_robin, each_server_gets_exactly_its_share_over_a_multiple_of_n)
{
	const unsigned n = 7;
	const uint64_t total = 7 * 100000;
	struct rig r;

	rig_start(&r, n);
	send_many(&r, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (unsigned i = 0; i < n; i++)
		cr_expect_eq(atomic_load(&r.servers[i].got), total / n,
			     "server %u got %llu of %llu", i,
			     (unsigned long long)atomic_load(&r.servers[i].got),
			     (unsigned long long)total);
	sy_engine_destroy(r.eng);
}

Test(policies_round_robin, every_window_of_n_messages_visits_each_server_once)
{
	const unsigned n = 5;
	struct rig r;

	rig_start(&r, n);
	for (unsigned window = 1; window <= 200; window++) {
		send_many(&r, n);
		rig_wait(&r, 0);
		for (unsigned i = 0; i < n; i++)
			cr_assert_eq(atomic_load(&r.servers[i].got), window,
				     "window %u: server %u", window, i);
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	sy_engine_destroy(r.eng);
}
