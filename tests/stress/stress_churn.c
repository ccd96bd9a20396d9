/*
 * Stress: traffic while the routing table churns.
 *
 * Three producers (one attached that detaches and re-attaches now and then,
 * one never attached so that its first send attaches it lazily, one
 * attached that sends bursts) send to four round_robin routes messages of 8
 * to 512 bytes; two of the routes ramp the servers that join them (slow
 * start, 2 ms), so senders draw against ramps and end them while the churn
 * thread starts new ones. Meanwhile the churn thread adds and removes twelve servers
 * (half of them there at the start), replaces the routes' server sets (one
 * to four servers), removes and re-adds routes (senders to a stale id get
 * -ENOENT), and checks that names and ids agree with what it did. A route
 * left without servers refuses sends with -EHOSTUNREACH; a full ring
 * refuses with -EAGAIN, retried a while. Nothing fails and nothing has a
 * deadline: every accepted message must be delivered exactly once, and
 * never by a server after its removal.
 *
 * The run lasts for the churn thread's 4000 * scale changes.
 */
#include "tests/stress/stress.h"

#define ROUTE(n) { .name = n, .opts = { .policy = "round_robin" }, \
		   .weight = 1, .max_members = 4 }
#define RAMPED(n) { .name = n, .opts = { .policy = "round_robin", \
		    .slow_start_ns = 2000000 }, .weight = 1, .max_members = 4 }

static const struct stress_scenario churn = {
	.name = "stress_churn",
	.engine = { .workers = 2, .max_producers = 8, .max_servers = 32,
		    .max_routes = 16 },
	.n_servers = 12,
	.start_servers = 6,
	.n_routes = 4,
	.routes = { ROUTE("r0"), ROUTE("r1"), RAMPED("r2"), RAMPED("r3") },
	.n_producers = 3,
	.producers = { { STRESS_REATTACH, STRESS_SINGLE },
		       { STRESS_LAZY, STRESS_SINGLE },
		       { STRESS_ATTACH, STRESS_BURSTS } },
	.messages = 3ull << 25,
	.payload_min = 8,
	.payload_max = 512,
	.burst_max = 16,
	.refusals = STRESS_NOROUTE | STRESS_UNREACHABLE | STRESS_FULL,
	.retried = STRESS_FULL,
	.send_tries = 201,
	.no_dead_letters = true,
	.churn = {
		.weight = { [STRESS_ADD_SERVER] = 18, [STRESS_REMOVE_SERVER] = 15,
			    [STRESS_REPLACE_ROUTE] = 40, [STRESS_REMOVE_ROUTE] = 6,
			    [STRESS_ADD_ROUTE] = 13, [STRESS_FIND] = 8 },
		.ops = 4000,
	},
};

int main(int argc, char **argv)
{
	return stress_main(&churn, argc, argv);
}
