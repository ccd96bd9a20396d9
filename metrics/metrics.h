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

struct sy_engine;
struct sy__metrics;

/* At engine create (cfg resolved): 0; -ENOMEM. Nothing when metrics are off. */
int sy__metrics_init(struct sy_engine *eng);
/* At engine start / stop: the collector thread. Stop publishes a last
 * snapshot after the workers have drained. */
int sy__metrics_start(struct sy_engine *eng);
void sy__metrics_stop(struct sy_engine *eng);
/* At destroy, after stop: the endpoint, the snapshots, everything. */
void sy__metrics_destroy(struct sy_engine *eng);

#endif /* SY_METRICS_METRICS_H */
