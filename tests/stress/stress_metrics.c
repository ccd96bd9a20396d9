/*
 * Stress: snapshot readers while traffic flows and the collector publishes
 * every millisecond.
 *
 * Two producers that never attach send (single sends, and a burst of 8
 * every fifth id) over three routes: "rr" round_robin over four servers on
 * two workers, "d0" and "d3" direct to one of them; one handler run in
 * seven fails, and its message is dead-lettered. Three readers take
 * snapshots without pause, hold up to eight at once (so that references
 * outlive newer publications) and check each one (stress.c: sums, windows,
 * rates, depths, ordered statistics, progress), and here that every
 * histogram's count is the sum of its buckets. A refresher asks for a
 * snapshot every 3 ms, so requests and ticks mix. After the producers,
 * the readers go on until they have checked 1000 snapshots; after the stop
 * the last snapshot must equal what the threads counted.
 *
 * The producers send 4,000,000 * scale ids between them.
 * AddressSanitizer catches a snapshot freed while held.
 */
#include "metrics/snapshot.h"
#include "tests/stress/stress.h"

static void check_buckets(const sy_snapshot *snap)
{
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		const struct sy_hist *h = &snap->hist[k];
		struct sy_hist_summary total;
		uint64_t n = 0;

		for (unsigned i = 0; i < SY_HIST_BUCKETS; i++)
			n += h->b[i];
		sy_snapshot_hist(snap, k, false, &total);
		if (n != h->count || total.count != n)
			stress_fail("histogram %u: count %lu, buckets %lu", k,
				    total.count, n);
	}
}

#define SERVER(n, w) { n, w, .fail_per_mille = 143 }

static const struct stress_server servers[] = {
	SERVER("s0", 0), SERVER("s1", 1), SERVER("s2", 0), SERVER("s3", 1),
};

static const struct stress_scenario metrics = {
	.name = "stress_metrics",
	.engine = { .workers = 2, .max_servers = 8, .max_routes = 8,
		    .metrics_interval_ms = 1, .latency_sample = 4 },
	.n_servers = 4,
	.servers = servers,
	.n_routes = 3,
	.routes = {
		{ "rr", { .policy = "round_robin" }, .weight = 1,
		  .n_members = 4, .members = { 0, 1, 2, 3 } },
		{ "d0", { .policy = "direct" }, .weight = 1,
		  .n_members = 1, .members = { 0 } },
		{ "d3", { .policy = "direct" }, .weight = 1,
		  .n_members = 1, .members = { 3 } },
	},
	.n_producers = 2,
	.producers = { { STRESS_LAZY, STRESS_MIXED },
		       { STRESS_LAZY, STRESS_MIXED } },
	.messages = 4000000,
	.payload_min = 16,
	.payload_max = 16,
	.burst_max = 8,
	.refusals = STRESS_FULL,
	.retried = STRESS_FULL,
	.send_tries = 1000,
	.readers = 3,
	.refresh_ms = 3,
	.linger_snapshots = 1000,
	.check_snapshot = check_buckets,
};

int main(int argc, char **argv)
{
	return stress_main(&metrics, argc, argv);
}
