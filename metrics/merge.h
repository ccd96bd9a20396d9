/*
 * Merging shards into snapshots (merge.c).
 *
 * A merge knows shards, histograms and snapshots, and nothing of the
 * engine: its owner (the collector, in core/) feeds it plain data, one
 * merge at a time, and publishes what it builds:
 *
 *   sy__merge_begin()
 *   sy__merge_shard() for every shard, sy__merge_depth() for every inbox
 *   sy__merge_thresholds_clear() and sy__merge_threshold() with the
 *     servers, or neither (keep the last)
 *   sy__merge_server() for every server id (or for none: keep the last)
 *   sy__merge_route() for every route id
 *   sy__merge_finish()  -> a snapshot with one reference
 *
 * Every shard has one writer, so nothing is ever zeroed: a merge (a *raw*)
 * is the sum of every shard's counters and histograms at one moment, per
 * server id, per route id and per transport. Three raws are kept: the
 * current merge, the previous one (the start of the window) and the
 * baseline (the totals' zero: the state at the last reset, per id the
 * state when the id last changed owner). Totals are current - baseline,
 * the window is current - previous, both saturating at 0.
 *
 * Not thread-safe: the owner serializes every call.
 */
#ifndef SY_METRICS_MERGE_H
#define SY_METRICS_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics/shard.h"
#include "switchyard.h"

#define SY_METRICS_NAME_MAX 64

struct sy__merge;

struct sy__merge_dims {
	unsigned max_servers;
	unsigned max_routes;
	unsigned workers;                 /* inboxes with a depth */
	unsigned route_lats;              /* route ids with a latency histogram */
	unsigned retention_ms;
	unsigned metrics_interval_ms;
};

/* What a merge is told about a live server. */
struct sy__server_view {
	bool live;
	bool healthy;
	enum sy_breaker_state breaker;
	unsigned worker;
	uint64_t transitions;             /* breaker transitions so far */
	char name[SY_METRICS_NAME_MAX];
};

/* A merger whose first window starts at @p now_ns. NULL: no memory. */
struct sy__merge *sy__merge_create(const struct sy__merge_dims *d,
				   uint64_t now_ns);
void sy__merge_destroy(struct sy__merge *m);

void sy__merge_begin(struct sy__merge *m);
/* Add a shard of a worker's (@p worker) or a producer's thread. */
void sy__merge_shard(struct sy__merge *m, const struct sy__shard *sh,
		     bool worker);
/* Add @p depth entries waiting in worker @p w's inboxes. */
void sy__merge_depth(struct sy__merge *m, unsigned w, uint64_t depth);
/* Forget the thresholds, then tell each backpressure threshold (ring
 * entries) of a route with a server on worker @p w: snapshots show the
 * lowest per worker, until the next clear. */
void sy__merge_thresholds_clear(struct sy__merge *m);
void sy__merge_threshold(struct sy__merge *m, unsigned w, uint64_t entries);
/* Server @p id as it is now; @p v NULL: no server has the id. */
void sy__merge_server(struct sy__merge *m, uint32_t id,
		      const struct sy__server_view *v);
/* Route @p id's name now, NULL: no route has the id. */
void sy__merge_route(struct sy__merge *m, uint32_t id, const char *name);
/*
 * End the merge at @p now_ns (the engine clock). @p servers_read: every
 * server id was given this merge (else the last views are kept). @p reset:
 * the totals start again here. @return the snapshot, with one reference,
 * or NULL (no memory: the merge is still taken).
 */
struct sy_snapshot *sy__merge_finish(struct sy__merge *m, uint64_t now_ns,
				     bool servers_read, bool reset);

/*
 * Server or route @p id just got a new owner, whose totals start now;
 * @p now holds the counts every shard keeps for the id at this moment
 * (sy__shard_id_add() over the shards), @p lat a route's latency counts
 * (sy__shard_lat_add()).
 */
void sy__merge_id_added(struct sy__merge *m, bool server, uint32_t id,
			const uint64_t now[SY_SC_COUNT],
			const uint64_t lat[SY_COARSE_BUCKETS]);

#endif /* SY_METRICS_MERGE_H */
