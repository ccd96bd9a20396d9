/*
 * Metrics shards: one per slot (per producer thread and per worker), written
 * only by the slot's thread (counter.h), read by the collector. Counters
 * per server, per route and per transport, and the four latency
 * histograms. A shard knows sizes, not the engine: it is created from the
 * number of server and route ids.
 *
 * Latency is sampled: a sender times one send call in `latency_sample` (one
 * clock read for a whole burst; the count is the slot's, core/slot.h),
 * marks that message SY_MSG_TIMED, and the worker reads the clock for
 * timed messages only.
 */
#ifndef SY_METRICS_SHARD_H
#define SY_METRICS_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics/counter.h"
#include "metrics/hist.h"
#include "switchyard.h"

enum sy__sc {
	SY_SC_SENT,
	SY_SC_DELIVERED,
	SY_SC_FAILED,
	SY_SC_RETRIED,
	SY_SC_REJECTED,
	SY_SC_DL,                     /* SY_SC_DL + reason */
	SY_SC_COUNT = SY_SC_DL + SY_DL_REASONS
};

/* Room for 16 counters, a power of two: the send path finds a series
 * with a shift. (At 13 counters, 104 bytes, the two series a send counts
 * cost two instructions more.) */
#define SY_SC_ROOM 16
_Static_assert(SY_SC_COUNT <= SY_SC_ROOM, "a series' counters fit its room");

struct sy__sctr {
	sy__counter v[SY_SC_ROOM];
};

enum sy__transport {
	SY_TRANSPORT_PRODUCER,        /* application thread -> worker rings */
	SY_TRANSPORT_WORKER,          /* worker -> worker rings */
	SY_TRANSPORT_REPLY,           /* worker -> requester reply rings */
	SY_TRANSPORTS
};

/* One route's coarse latency histogram (hist.h). */
struct sy__route_lat {
	sy__counter b[SY_COARSE_BUCKETS];
};

struct sy__shard {
	struct sy__sctr *server;      /* [max_servers] */
	struct sy__sctr *route;       /* [max_routes] */
	struct sy__route_lat *route_lat; /* [route_lats]; workers' shards */
	unsigned route_lats;          /* route ids with one, from 0 */
	struct sy__sctr transport[SY_TRANSPORTS];
	struct sy__hist hist[SY_HIST_KINDS];
} __attribute__((aligned(64)));

static inline void sy__sc_add(struct sy__sctr *c, enum sy__sc i, uint64_t n)
{
	sy__counter_add(&c->v[i], n);
}

/* Where the series of server @p id, or of route @p id in shards made for
 * @p max_servers servers, lies in every shard: bytes from its start
 * (sy__shard_init()'s layout). A send path keeps these with the server and
 * the route, and reaches a counter with one load and one add. */
static inline uint32_t sy__shard_server_at(uint32_t id)
{
	return (uint32_t)(sizeof(struct sy__shard) + id * sizeof(struct sy__sctr));
}

static inline uint32_t sy__shard_route_at(unsigned max_servers, uint32_t id)
{
	return sy__shard_server_at(max_servers + id);
}

/* Add @p n to counter @p i of the series at @p at (above) of @p sh. */
static inline void sy__shard_add_at(struct sy__shard *sh, uint32_t at,
				    enum sy__sc i, uint64_t n)
{
	sy__sc_add((struct sy__sctr *)((char *)sh + at), i, n);
}

/* Record a timed message's latency for its route. The owner only. */
static inline void sy__shard_route_lat(struct sy__shard *sh, uint32_t route,
				       uint64_t ns)
{
	if (route < sh->route_lats)
		sy__counter_add(&sh->route_lat[route].b[sy__coarse_index(ns)], 1);
}

/* The sizes a shard is made for. */
struct sy__shard_dims {
	unsigned max_servers;
	unsigned max_routes;
	unsigned route_lats;          /* route latency histograms, 0: none */
};

/* shard.c */
/* Bytes of a shard with its counter arrays. */
size_t sy__shard_bytes(const struct sy__shard_dims *d);
/* Lay out an empty shard in @p mem: sy__shard_bytes(d) zeroed bytes,
 * 64-byte aligned. Returns @p mem as the shard. */
struct sy__shard *sy__shard_init(void *mem, const struct sy__shard_dims *d);
/* Add the counts @p sh keeps for server (or route) @p id into @p out. Any
 * thread. */
void sy__shard_id_add(const struct sy__shard *sh, bool server, uint32_t id,
		      uint64_t out[SY_SC_COUNT]);
/* Add the latency counts @p sh keeps for route @p id into @p out. */
void sy__shard_lat_add(const struct sy__shard *sh, uint32_t id,
		       uint64_t out[SY_COARSE_BUCKETS]);

#endif /* SY_METRICS_SHARD_H */
