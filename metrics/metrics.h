/*
 * The engine's metrics (collector.c, snapshot.c): the collector thread, the
 * published snapshot and the HTTP endpoint.
 *
 * The collector wakes every interval, merges every slot's shard (its
 * counters and histograms), reads the inbox depths and the servers' breaker
 * and health states, and publishes an immutable snapshot: readers load the
 * pointer inside an RCU read-side section and take a reference; the
 * collector drops its own reference to the previous snapshot after a grace
 * period (call_rcu), and the last reference frees it.
 */
#ifndef SY_METRICS_METRICS_H
#define SY_METRICS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct sy_engine;
struct sy__metrics;

/* At engine create (cfg resolved, clock set): 0; -ENOMEM (then call
 * sy__metrics_destroy(), which frees a partial set-up). Nothing when
 * metrics are off. */
int sy__metrics_init(struct sy_engine *eng);
/*
 * At engine start / stop, with eng->lock held (the collector never blocks
 * on it, so stop can join it): start the collector thread (0; -EAGAIN or
 * -EINVAL with sy__fail's message when it cannot be created or pinned);
 * stop it, then publish a last snapshot, exact once the workers have
 * drained. The calling thread is registered with RCU if it is not.
 */
int sy__metrics_start(struct sy_engine *eng);
void sy__metrics_stop(struct sy_engine *eng);
/* At destroy, after stop and before the slots (and their shards) are
 * freed: the snapshots (after an RCU barrier), everything. */
void sy__metrics_destroy(struct sy_engine *eng);

/* A server (@p server) or route id was just added; under eng->lock. */
void sy__metrics_id_added(struct sy_engine *eng, bool server, uint32_t id);

#endif /* SY_METRICS_METRICS_H */
