/*
 * Tests of slow start (sy_route_opts.slow_start_ns): a server that joins a
 * route, or whose breaker closes again, takes a share that ramps up.
 *
 * The engine runs on a fake clock that only the test moves, so the ramp is
 * at a point the test chooses while it sends: at step k of STEPS the clock
 * is k * WINDOW / STEPS past the ramp's start, and the ramping server must
 * take f(k) = MIN + (1 - MIN) * k / STEPS of the share the policy gives it
 * (for the policies that spread by weight: round_robin, weighted, random),
 * and never more than f(k) of all messages (every policy). One worker runs
 * every server. The sender keeps fewer messages in flight than a ring holds
 * and waits until each step's messages are handled, so every message is
 * picked once and counted before the clock moves.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define SERVERS 4u
#define WINDOW_NS 1000000000ull    /* the ramp: 1 s of the fake clock */
#define MIN 0.1
#define STEPS 10u
#define PER_STEP 20000u
/* Binomial noise of a share over PER_STEP messages is below 0.0035. */
#define TOLERANCE 0.015
#define START_NS 1000000000ull

struct slow_rig {
	struct rig_fleet f;
	struct t_clock clock;
};

/* A started one-worker engine on the fake clock with SERVERS counting
 * servers and a route of @p policy over the first SERVERS - 1. */
static void slow_start_rig(struct slow_rig *r, const char *policy,
			   uint64_t window_ns, const uint32_t *weights)
{
	struct sy_route_opts ro = {
		.policy = policy, .n_servers = SERVERS - 1,
		.weights = weights, .slow_start_ns = window_ns,
		.slow_start_min = MIN,
	};

	rig_fleet_init(&r->f, t_engine_at(1, &r->clock, START_NS), SERVERS, 1);
	ro.servers = r->f.ids;
	cr_assert_eq(sy_route_add(r->f.eng, "shaped", &ro, &r->f.route), 0,
		     "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(r->f.eng), 0);
}

/* Replace the route with all SERVERS: the last one joins it. */
static void join_last(struct slow_rig *r, const char *policy,
		      uint64_t window_ns, const uint32_t *weights)
{
	struct sy_route_opts ro = {
		.policy = policy, .servers = r->f.ids, .n_servers = SERVERS,
		.weights = weights, .slow_start_ns = window_ns,
		.slow_start_min = MIN,
	};

	cr_assert_eq(sy_route_replace(r->f.eng, r->f.route, &ro), 0, "%s",
		     sy_last_error());
}

/* The share of PER_STEP messages sent now that server @p i took. */
static double step_share(struct slow_rig *r, unsigned i)
{
	uint64_t before = rig_fleet_got(&r->f, i);

	rig_fleet_send(&r->f, PER_STEP);
	rig_fleet_wait(&r->f, 0);
	return (double)(rig_fleet_got(&r->f, i) - before) / PER_STEP;
}

static double ramp(unsigned k)
{
	return k >= STEPS ? 1 : MIN + (1 - MIN) * k / STEPS;
}

/*
 * From @p start on the fake clock, step through the ramp of server
 * SERVERS - 1: its share is @p full times f(k) when @p full > 0, and at
 * most f(k) whatever the policy. One step past the window it is back to
 * its full share.
 */
static void check_ramp(struct slow_rig *r, const char *policy,
		       uint64_t start, double full)
{
	for (unsigned k = 0; k <= STEPS + 1; k++) {
		double share;

		atomic_store(&r->clock.ns, start + k * (WINDOW_NS / STEPS));
		share = step_share(r, SERVERS - 1);
		cr_expect_leq(share, ramp(k) + TOLERANCE,
			      "%s, step %u: share %.4f over f = %.3f", policy,
			      k, share, ramp(k));
		if (full > 0)
			cr_expect(share > full * ramp(k) - TOLERANCE &&
				  share < full * ramp(k) + TOLERANCE,
				  "%s, step %u: share %.4f, expected %.4f",
				  policy, k, share, full * ramp(k));
	}
}

static void check_join(const char *policy, const uint32_t *weights,
		       double full)
{
	struct slow_rig r;

	slow_start_rig(&r, policy, WINDOW_NS, weights);
	join_last(&r, policy, WINDOW_NS, weights);
	check_ramp(&r, policy, START_NS, full);
	cr_assert_eq(sy_engine_stop(r.f.eng), 0);
	cr_assert_eq(atomic_load(&r.f.delivered), r.f.sent);
	sy_engine_destroy(r.f.eng);
}

Test(policies_slow_start, a_joining_server_ramps_from_min_to_its_share)
{
	static const uint32_t weights[SERVERS] = { 1, 1, 1, 2 };

	check_join("round_robin", NULL, 1.0 / SERVERS);
	check_join("random", NULL, 1.0 / SERVERS);
	check_join("weighted", weights, 2.0 / 5);
}

Test(policies_slow_start, no_policy_gives_a_ramping_server_more_than_f)
{
	check_join("least_connections", NULL, 0);
	check_join("adaptive", NULL, 0);
	check_join("failover", NULL, 0);
}

Test(policies_slow_start, without_it_a_joining_server_takes_its_share_at_once)
{
	struct slow_rig r;
	double share;

	slow_start_rig(&r, "round_robin", 0, NULL);
	join_last(&r, "round_robin", 0, NULL);
	share = step_share(&r, SERVERS - 1);
	cr_expect(share > 0.25 - TOLERANCE && share < 0.25 + TOLERANCE,
		  "share %.4f", share);
	cr_assert_eq(sy_engine_stop(r.f.eng), 0);
	sy_engine_destroy(r.f.eng);
}

Test(policies_slow_start, the_servers_a_route_starts_with_do_not_ramp)
{
	struct slow_rig r;
	double share;

	slow_start_rig(&r, "round_robin", WINDOW_NS, NULL);
	share = step_share(&r, 0);
	cr_expect(share > 1.0 / 3 - TOLERANCE && share < 1.0 / 3 + TOLERANCE,
		  "share %.4f", share);
	cr_assert_eq(sy_engine_stop(r.f.eng), 0);
	sy_engine_destroy(r.f.eng);
}

/* The server whose runs fail (-EIO), or NULL. */
static struct rig_server *_Atomic failing;

static int flaky_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	int rc = ctx == atomic_load(&failing) ? -EIO : 0;

	rig_count_handler(eng, msg, ctx);
	return rc;
}

/* slow_start_rig()'s engine and route, over SERVERS servers that each
 * have a breaker of @p bo and fail while they are *failing. */
static void breaker_rig(struct slow_rig *r, const struct sy_breaker_opts *bo)
{
	struct sy_server_opts so = { .breaker = bo };
	struct sy_route_opts ro = {
		.policy = "round_robin", .n_servers = SERVERS,
		.slow_start_ns = WINDOW_NS, .slow_start_min = MIN,
	};

	rig_fleet_init(&r->f, t_engine_at(1, &r->clock, START_NS), 0, 1);
	r->f.n = SERVERS;
	for (unsigned i = 0; i < SERVERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "breaker-%u", i);
		atomic_init(&r->f.servers[i].got, 0);
		r->f.servers[i].delivered = &r->f.delivered;
		cr_assert_eq(sy_server_add(r->f.eng, name, flaky_handler,
					   &r->f.servers[i], &so, &r->f.ids[i]),
			     0, "%s", sy_last_error());
	}
	ro.servers = r->f.ids;
	cr_assert_eq(sy_route_add(r->f.eng, "shaped", &ro, &r->f.route), 0,
		     "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(r->f.eng), 0);
	/* At full share before its circuit opens. */
	cr_expect_gt(step_share(r, SERVERS - 1), 0.25 - TOLERANCE);
}

static void breaker_rig_stop(struct slow_rig *r)
{
	cr_assert_eq(sy_engine_stop(r->f.eng), 0);
	cr_assert_eq(atomic_load(&r->f.delivered), r->f.sent);
	sy_engine_destroy(r->f.eng);
}

Test(policies_slow_start, a_server_an_operator_closes_again_ramps)
{
	static const struct sy_breaker_opts bo = { .consecutive_failures = 5 };
	uint64_t closed = START_NS + 5 * WINDOW_NS;
	struct slow_rig r;

	breaker_rig(&r, &bo);
	cr_assert_eq(sy_breaker_force(r.f.eng, r.f.ids[SERVERS - 1],
				      SY_BREAKER_FORCED_OPEN), 0);
	cr_expect_eq(step_share(&r, SERVERS - 1), 0);
	atomic_store(&r.clock.ns, closed);
	cr_assert_eq(sy_breaker_force(r.f.eng, r.f.ids[SERVERS - 1],
				      SY_BREAKER_CLOSED), 0);
	check_ramp(&r, "round_robin", closed, 1.0 / SERVERS);
	breaker_rig_stop(&r);
}

Test(policies_slow_start, a_server_whose_probe_closes_its_breaker_ramps)
{
	static const struct sy_breaker_opts bo = {
		.consecutive_failures = 5, .open_ns = 1000000,
		.half_open_probes = 1,
	};
	enum sy_breaker_state st;
	uint64_t closed = START_NS + 5 * WINDOW_NS;
	struct slow_rig r;

	breaker_rig(&r, &bo);
	atomic_store(&failing, &r.f.servers[SERVERS - 1]);
	step_share(&r, SERVERS - 1);
	cr_assert_eq(sy_breaker_state(r.f.eng, r.f.ids[SERVERS - 1], &st), 0);
	cr_assert_eq(st, SY_BREAKER_OPEN);
	atomic_store(&failing, NULL);
	/* Past open_ns: the next pick sends the probe, whose success closes
	 * the breaker at this time on the fake clock. */
	atomic_store(&r.clock.ns, closed);
	step_share(&r, SERVERS - 1);
	cr_assert_eq(sy_breaker_state(r.f.eng, r.f.ids[SERVERS - 1], &st), 0);
	cr_assert_eq(st, SY_BREAKER_CLOSED);
	check_ramp(&r, "round_robin", closed, 1.0 / SERVERS);
	breaker_rig_stop(&r);
}

Test(policies_slow_start, a_minimum_out_of_range_is_refused)
{
	struct slow_rig r;
	struct sy_route_opts ro = {
		.n_servers = 2, .slow_start_ns = WINDOW_NS,
		.slow_start_min = 1.5,
	};
	uint32_t id;

	rig_fleet_init(&r.f, t_engine_at(1, &r.clock, START_NS), 2, 1);
	ro.servers = r.f.ids;
	cr_expect_eq(sy_route_add(r.f.eng, "shaped", &ro, &id), -EINVAL);
	ro.slow_start_min = -0.5;
	cr_expect_eq(sy_route_add(r.f.eng, "shaped", &ro, &id), -EINVAL);
	sy_engine_destroy(r.f.eng);
}
