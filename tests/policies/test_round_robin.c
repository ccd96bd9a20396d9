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
#include <stdatomic.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

/* A started engine of two workers, @p n servers spread over them, one route. */
static void rig_start(struct rig_fleet *r, unsigned n)
{
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = n };

	rig_fleet_init(r, t_engine(2, SY_IDLE_SLEEP), n, 2);
	ro.servers = r->ids;
	cr_assert_eq(sy_route_add(r->eng, "spread", &ro, &r->route), 0, "%s",
		     sy_last_error());
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

static void check_uniform(unsigned n, double critical)
{
	const uint64_t total = 1000000;
	struct rig_fleet r;
	double chi2;

	rig_start(&r, n);
	rig_fleet_send(&r, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	chi2 = rig_fleet_chi_square_uniform(&r, total);
	cr_expect_lt(chi2, critical, "%u servers: chi-square %.3f >= %.3f", n,
		     chi2, critical);
	sy_engine_destroy(r.eng);
}

Test(policies_round_robin, one_producer_spreads_a_million_messages_uniformly)
{
	check_uniform(3, RIG_CHI2_P001_DF2);
	check_uniform(4, RIG_CHI2_P001_DF3);
	check_uniform(10, RIG_CHI2_P001_DF9);
}

Test(policies_round_robin, each_server_gets_exactly_its_share_over_a_multiple_of_n)
{
	const unsigned n = 7;
	const uint64_t total = 7 * 100000;
	struct rig_fleet r;

	rig_start(&r, n);
	rig_fleet_send(&r, total);
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
	struct rig_fleet r;

	rig_start(&r, n);
	for (unsigned window = 1; window <= 200; window++) {
		rig_fleet_send(&r, n);
		rig_fleet_wait(&r, 0);
		for (unsigned i = 0; i < n; i++)
			cr_assert_eq(atomic_load(&r.servers[i].got), window,
				     "window %u: server %u", window, i);
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	sy_engine_destroy(r.eng);
}
