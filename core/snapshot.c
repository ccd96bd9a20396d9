/*
 * The public snapshot accessors and formats: the NULL and range checks of
 * the public contract around metrics/ (snapshot.h, export.c), which know
 * nothing of the calling thread's last error.
 *
 * Every accessor reads an immutable snapshot: any thread, no lock, never
 * blocks, as long as the caller holds a reference.
 */
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "metrics/hist.h"
#include "metrics/snapshot.h"

SY_API void sy_snapshot_release(sy_snapshot *snap)
{
	if (snap)
		sy__snapshot_put(snap);
}

SY_API uint64_t sy_snapshot_seq(const sy_snapshot *snap)
{
	SY__NONNULL_OR(snap, 0);
	return snap->seq;
}

SY_API uint64_t sy_snapshot_time_ns(const sy_snapshot *snap)
{
	SY__NONNULL_OR(snap, 0);
	return snap->time_ns;
}

SY_API uint64_t sy_snapshot_window_ns(const sy_snapshot *snap)
{
	SY__NONNULL_OR(snap, 0);
	return snap->window_ns;
}

/* Whether @p kind names a kind of series; recorded under @p call if not. */
static bool series_kind(const char *call, enum sy_series_kind kind)
{
	if ((unsigned)kind < SY_SERIES_KINDS)
		return true;
	sy__failed(call, sy__fail(-EINVAL, "no series kind %d", (int)kind));
	return false;
}

SY_API unsigned sy_snapshot_count(const sy_snapshot *snap,
				  enum sy_series_kind kind)
{
	SY__NONNULL_OR(snap, 0);
	return series_kind(__func__, kind) ? snap->count[kind] : 0;
}

SY_API const struct sy_series *sy_snapshot_series(const sy_snapshot *snap,
						  enum sy_series_kind kind,
						  unsigned i)
{
	SY__NONNULL_OR(snap, NULL);
	if (!series_kind(__func__, kind))
		return NULL;
	if (i >= snap->count[kind]) {
		sy__fail(-ENOENT, "no series %u: the snapshot has %u of that kind",
			 i, snap->count[kind]);
		return sy__failed_null(__func__, -ENOENT);
	}
	return &snap->series[kind][i];
}

SY_API const struct sy_series *sy_snapshot_find(const sy_snapshot *snap,
						enum sy_series_kind kind,
						const char *name)
{
	SY__NONNULL_OR(snap, NULL);
	SY__NONNULL_OR(name, NULL);
	if (!series_kind(__func__, kind))
		return NULL;
	for (unsigned i = 0; i < snap->count[kind]; i++)
		if (strcmp(snap->series[kind][i].name, name) == 0)
			return &snap->series[kind][i];
	sy__fail(-ENOENT, "no series named \"%s\"", name);
	return sy__failed_null(__func__, -ENOENT);
}

/* Whether @p kind names a histogram; recorded under @p call if not. */
static bool hist_kind(const char *call, enum sy_hist_kind kind)
{
	if ((unsigned)kind < SY_HIST_KINDS)
		return true;
	sy__failed(call, sy__fail(-EINVAL, "no histogram kind %d", (int)kind));
	return false;
}

SY_API int sy_snapshot_hist(const sy_snapshot *snap, enum sy_hist_kind kind,
			    bool recent, struct sy_hist_summary *out)
{
	SY__NONNULL(snap);
	SY__NONNULL(out);
	if (!hist_kind(__func__, kind))
		return sy__failed(__func__, -EINVAL);
	*out = recent ? snap->recent[kind] : snap->total[kind];
	return 0;
}

SY_API uint64_t sy_snapshot_hist_count_le(const sy_snapshot *snap,
					  enum sy_hist_kind kind, uint64_t ns)
{
	SY__NONNULL_OR(snap, 0);
	if (!hist_kind(__func__, kind))
		return 0;
	return sy_hist_count_le(&snap->hist[kind], ns);
}

SY_API unsigned sy_snapshot_workers(const sy_snapshot *snap)
{
	SY__NONNULL_OR(snap, 0);
	return snap->workers;
}

SY_API int sy_snapshot_queue(const sy_snapshot *snap, unsigned w,
			     struct sy_queue_depth *out)
{
	SY__NONNULL(snap);
	SY__NONNULL(out);
	if (w >= snap->workers)
		return sy__failed(__func__, sy__fail(-EINVAL,
			"no worker %u: the snapshot has %u", w, snap->workers));
	*out = snap->queue[w];
	return 0;
}

SY_API int sy_snapshot_format(const sy_snapshot *snap, enum sy_format fmt,
			      char **buf, size_t *len)
{
	SY__NONNULL(snap);
	SY__NONNULL(buf);
	return sy__ret(__func__, sy__snapshot_format(snap, fmt, buf, len));
}

SY_API int sy_snapshot_nats(const sy_snapshot *snap, struct sy_nats_stats *out)
{
	SY__NONNULL(snap);
	SY__NONNULL(out);
	*out = snap->nats;
	return 0;
}
