/*
 * Metrics shards: one per slot (per producer thread and per worker), written
 * only by the slot's thread with relaxed loads and stores, read by the
 * collector with relaxed loads. Counters per server, per route and per
 * transport, and the four latency histograms.
 *
 * Latency is sampled: a sender times one send call in `sample_every` (one
 * clock read for a whole burst), marks that message SY_MSG_TIMED, and the
 * worker reads the clock for timed messages only.
 */
#ifndef SY_METRICS_SHARD_H
#define SY_METRICS_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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

struct sy__sctr {
	_Atomic uint64_t v[SY_SC_COUNT];
};

enum sy__transport {
	SY_TRANSPORT_PRODUCER,        /* application thread -> worker rings */
	SY_TRANSPORT_WORKER,          /* worker -> worker rings */
	SY_TRANSPORT_REPLY,           /* worker -> requester reply rings */
	SY_TRANSPORTS
};

struct sy__shard {
	struct sy__sctr *server;      /* [max_servers] */
	struct sy__sctr *route;       /* [max_routes] */
	struct sy__sctr transport[SY_TRANSPORTS];
	uint32_t sample_left;         /* owner: sends until the next sample */
	uint32_t sample_every;
	struct sy__hist hist[SY_HIST_KINDS];
} __attribute__((aligned(64)));

static inline void sy__sc_add(struct sy__sctr *c, enum sy__sc i, uint64_t n)
{
	atomic_store_explicit(&c->v[i],
			      atomic_load_explicit(&c->v[i], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Should this send call be timed? The owner only; NULL shard: no. */
static inline bool sy__shard_sample(struct sy__shard *sh)
{
	if (!sh || --sh->sample_left)
		return false;
	sh->sample_left = sh->sample_every;
	return true;
}

/* shard.c */
struct sy_engine;
struct sy__shard *sy__shard_create(struct sy_engine *eng); /* NULL: -ENOMEM */
void sy__shard_destroy(struct sy_engine *eng, struct sy__shard *sh);

#endif /* SY_METRICS_SHARD_H */
