/*
 * Stress: every accepted message ends exactly once, under failures, retries,
 * backpressure and churn.
 *
 * Three attached producers (two sending one message at a time, one sending
 * bursts) send over four routes of four servers on two workers, through
 * rings of 64 entries:
 *  - "main": round_robin over one to four servers, max_attempts 3 (failed
 *    runs are retried on another server);
 *  - "spill": failover over [slow, a], SY_BP_SPILL: past the threshold of
 *    the slow server's ring, messages go to the other one;
 *  - "reject": round_robin over [slow, b] (one worker), SY_BP_REJECT: past
 *    the threshold, sends are refused with -ENOBUFS.
 *  - "codel": round_robin over [slow, c], CoDel with a 2 us target and a
 *    50 us interval, SY_BP_DEAD_LETTER: while the wait at a server stands
 *    above the target, sends to it are dead-lettered as overload.
 * The slow server spins 1.5 us per message; every handler fails 5% of its
 * runs at random; one message in a hundred carries a deadline that has
 * already passed. The churn thread replaces the routes' server lists every
 * half millisecond and now and then removes server c, rebuilds the routes,
 * adds it back and rebuilds them again. A watcher drains the dead letter
 * queue every 4 ms; the queue holds 128 entries, so some dead letters are
 * evicted first. Meanwhile it reads the accounting over and over: it must
 * never show more messages ended than accepted. on_backpressure must keep
 * each worker's count of congested rings in range and end at 0.
 *
 * The producers send 10,000,000 * scale ids between them.
 */
#include "tests/stress/stress.h"

enum { A, B, C, SLOW, SERVERS };

static const struct stress_server servers[SERVERS] = {
	[A] = { "a", 0, .fail_per_mille = 50 },
	[B] = { "b", 1, .fail_per_mille = 50 },
	[C] = { "c", 0, .fail_per_mille = 50, .churn = true },
	[SLOW] = { "slow", 1, .fail_per_mille = 50, .slow_ns = 1500 },
};

static const struct stress_scenario reliability = {
	.name = "stress_reliability",
	.engine = { .workers = 2, .ring_size = 64, .max_producers = 8,
		    .max_dead_letters = 128 },
	.n_servers = SERVERS,
	.servers = servers,
	.n_routes = 4,
	.routes = {
		{ "main", { .policy = "round_robin", .max_attempts = 3 },
		  .weight = 6, .max_members = SERVERS },
		{ "spill", { .policy = "failover", .backpressure = SY_BP_SPILL },
		  .weight = 2, .n_members = 2, .members = { SLOW, A } },
		{ "reject", { .policy = "round_robin", .backpressure = SY_BP_REJECT },
		  .weight = 2, .n_members = 2, .members = { SLOW, B } },
		{ "codel", { .policy = "round_robin",
			     .backpressure = SY_BP_DEAD_LETTER, .codel = true,
			     .codel_target_ns = 2000, .codel_interval_ns = 50000 },
		  .weight = 2, .n_members = 2, .members = { SLOW, C } },
	},
	.n_producers = 3,
	.producers = { { STRESS_ATTACH, STRESS_SINGLE },
		       { STRESS_ATTACH, STRESS_SINGLE },
		       { STRESS_ATTACH, STRESS_BURSTS } },
	.messages = 10000000,
	.payload_min = 8,
	.payload_max = 8,
	.expired_per_mille = 10,
	.burst_max = 16,
	.refusals = STRESS_FULL | STRESS_BACKPRESSURE | STRESS_UNREACHABLE,
	.retried = STRESS_FULL | STRESS_BACKPRESSURE,
	.send_tries = 64,
	.track_backpressure = true,
	.drain_ms = 4,
	.churn = {
		.weight = { [STRESS_REPLACE_ROUTE] = 24, [STRESS_CYCLE_SERVER] = 1 },
		.pause_us = 500,
	},
};

int main(int argc, char **argv)
{
	return stress_main(&reliability, argc, argv);
}
