/*
 * Snapshots (snapshot.c), private to the collector and the accessors: the
 * layout of struct sy_snapshot and its reference count.
 *
 * A snapshot is built by one thread, then published and never written
 * again, except for its reference count. It is one malloc() block (header,
 * series, queue depths, names), independent of the engine: a reference
 * keeps it readable after the engine is destroyed.
 *
 * References: the collector holds one for the published snapshot and each
 * reader one per sy_metrics_snapshot(). A reader takes its reference inside
 * an RCU read-side section; the collector drops its own only after a grace
 * period, so a reader never increments a count that has reached zero.
 */
#ifndef SY_METRICS_SNAPSHOT_H
#define SY_METRICS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include <urcu/urcu-memb.h>

#include "metrics/hist.h"
#include "switchyard.h"

struct sy_snapshot {
	struct rcu_head rcu;           /* the collector's reference, dropped late */
	_Atomic uint64_t refs;
	uint64_t seq;
	uint64_t time_ns;
	uint64_t window_ns;
	unsigned workers;
	unsigned count[SY_SERIES_KINDS];
	struct sy_series *series[SY_SERIES_KINDS]; /* into the same block */
	struct sy_queue_depth *queue;  /* [workers] */
	struct sy_hist_summary total[SY_HIST_KINDS];
	struct sy_hist_summary recent[SY_HIST_KINDS];
	struct sy_hist hist[SY_HIST_KINDS]; /* since the start, for count_le */
	struct sy_nats_stats nats;     /* the engine's remote counters */
};

/*
 * A zeroed snapshot with room for @p n[kind] series of each kind, @p
 * workers queue depths and @p name_bytes bytes of names (returned in
 * *names); one reference. NULL: no memory. Any thread.
 */
struct sy_snapshot *sy__snapshot_alloc(const unsigned n[SY_SERIES_KINDS],
				       unsigned workers, size_t name_bytes,
				       char **names);

/* Drop one reference; the last frees the snapshot. Any thread. */
void sy__snapshot_put(struct sy_snapshot *snap);

/* Write @p snap in format @p fmt (export.c): sy_snapshot_format() without
 * its argument checks. @return 0, -EINVAL (unknown format), -ENOMEM. */
int sy__snapshot_format(const sy_snapshot *snap, enum sy_format fmt,
			char **buf, size_t *len);

#endif /* SY_METRICS_SNAPSHOT_H */
