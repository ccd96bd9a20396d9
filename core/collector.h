/*
 * The metrics collector (collector.c): a thread that merges every slot's
 * shard into a snapshot each interval and publishes it under RCU; readers
 * load the pointer inside a read-side section and take a reference. The
 * merging itself is metrics/merge.h's; this module reads the engine.
 */
#ifndef SY_CORE_COLLECTOR_H
#define SY_CORE_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>

struct sy_engine;

/* At engine create (cfg resolved, clock set): 0; -ENOMEM (then call
 * sy__collector_destroy(), which frees a partial set-up). Nothing when
 * metrics are off. */
int sy__collector_init(struct sy_engine *eng);
/*
 * At engine start / stop, with eng->lock held (the collector never blocks
 * on it, so stop can join it): start the collector thread (0; -EAGAIN or
 * -EINVAL with sy__fail's message when it cannot be created or pinned);
 * stop it, then publish a last snapshot, exact once the workers have
 * drained. The calling thread is registered with RCU if it is not.
 */
int sy__collector_start(struct sy_engine *eng);
void sy__collector_stop(struct sy_engine *eng);
/* At destroy, after stop and before the slots (and their shards) are
 * freed: the snapshots (after an RCU barrier), everything. */
void sy__collector_destroy(struct sy_engine *eng);

/* A server (@p server) or route id was just added; under eng->lock. */
void sy__collector_id_added(struct sy_engine *eng, bool server, uint32_t id);

/* The request round trip's p95 (SY_HIST_RTT) in the latest snapshot: its
 * window's, else since the start; 0 with none. Any registered thread that
 * is not in a read-side section; wait-free, writes nothing shared. */
uint64_t sy__collector_rtt_p95(struct sy_engine *eng);

#endif /* SY_CORE_COLLECTOR_H */
