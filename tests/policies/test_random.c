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
#include <stdatomic.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

/* A started, seeded engine of two workers, @p n servers, a random route. */
static void rig_start(struct rig_fleet *r, unsigned n, uint64_t seed)
{
	struct sy_config cfg;

	t_config(&cfg, 2, NULL);
	cfg.seed = seed;
	rig_fleet_init(r, t_create(&cfg), n, 2);
	r->route = t_add_route(r->eng, "random",
			       (struct sy_route_opts){ .policy = "random" },
			       r->ids, n);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

static void check_uniform(unsigned n, uint64_t seed, double critical)
{
	const uint64_t total = 1000000;
	struct rig_fleet r;
	double chi2;

	rig_start(&r, n, seed);
	rig_fleet_send(&r, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	chi2 = rig_fleet_chi_square_uniform(&r, total);
	cr_expect_lt(chi2, critical, "%u servers, seed %llu: chi-square %.3f >= %.3f",
		     n, (unsigned long long)seed, chi2, critical);
	sy_engine_destroy(r.eng);
}

Test(policies_random, a_million_seeded_picks_are_uniform_by_chi_square)
{
	check_uniform(2, 42, RIG_CHI2_P001_DF1);
	check_uniform(5, 42, RIG_CHI2_P001_DF4);
	check_uniform(10, 42, RIG_CHI2_P001_DF9);
}

Test(policies_random, other_seeds_are_uniform_too)
{
	check_uniform(5, 1, RIG_CHI2_P001_DF4);
	check_uniform(5, 0x9e3779b97f4a7c15ull, RIG_CHI2_P001_DF4);
	check_uniform(10, 123456789, RIG_CHI2_P001_DF9);
}
