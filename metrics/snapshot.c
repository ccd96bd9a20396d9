/*
 * Snapshots: allocation, references and the public accessors.
 *
 * Every accessor reads an immutable snapshot: any thread, no lock, never
 * blocks, as long as the caller holds a reference.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics/snapshot.h"

/* Round @p n up to a multiple of 16 bytes, the block's alignment. */
static size_t align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

struct sy_snapshot *sy__snapshot_alloc(const unsigned n[SY_SERIES_KINDS],
				       unsigned workers, size_t name_bytes,
				       char **names)
{
	size_t off = align16(sizeof(struct sy_snapshot)), series_off, queue_off;
	struct sy_snapshot *snap;
	unsigned total = 0;
	char *p;

	for (unsigned k = 0; k < SY_SERIES_KINDS; k++)
		total += n[k];
	series_off = off;
	off = align16(off + (size_t)total * sizeof(struct sy_series));
	queue_off = off;
	off = align16(off + (size_t)workers * sizeof(struct sy_queue_depth));
	p = calloc(1, off + name_bytes);
	if (!p)
		return NULL;
	snap = (struct sy_snapshot *)p;
	atomic_init(&snap->refs, 1);
	snap->workers = workers;
	snap->queue = (struct sy_queue_depth *)(p + queue_off);
	for (unsigned k = 0, at = 0; k < SY_SERIES_KINDS; at += n[k], k++) {
		snap->count[k] = n[k];
		snap->series[k] = (struct sy_series *)(p + series_off) + at;
	}
	*names = p + off;
	return snap;
}

void sy__snapshot_put(struct sy_snapshot *snap)
{
	/* acq_rel: the release orders this holder's reads before the free;
	 * the acquire, on the last reference, orders the free after every
	 * other holder's release. (A fence would do, but ThreadSanitizer
	 * does not model fences.) */
	if (atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
		free(snap);
}

SY_API void sy_snapshot_release(sy_snapshot *snap)
{
	if (snap)
		sy__snapshot_put(snap);
}

SY_API uint64_t sy_snapshot_seq(const sy_snapshot *snap)
{
	return snap->seq;
}

SY_API uint64_t sy_snapshot_time_ns(const sy_snapshot *snap)
{
	return snap->time_ns;
}

SY_API uint64_t sy_snapshot_window_ns(const sy_snapshot *snap)
{
	return snap->window_ns;
}

SY_API unsigned sy_snapshot_count(const sy_snapshot *snap,
				  enum sy_series_kind kind)
{
	if ((unsigned)kind >= SY_SERIES_KINDS)
		return 0;
	return snap->count[kind];
}

SY_API const struct sy_series *sy_snapshot_series(const sy_snapshot *snap,
						  enum sy_series_kind kind,
						  unsigned i)
{
	if ((unsigned)kind >= SY_SERIES_KINDS || i >= snap->count[kind])
		return NULL;
	return &snap->series[kind][i];
}

SY_API const struct sy_series *sy_snapshot_find(const sy_snapshot *snap,
						enum sy_series_kind kind,
						const char *name)
{
	if ((unsigned)kind >= SY_SERIES_KINDS || !name)
		return NULL;
	for (unsigned i = 0; i < snap->count[kind]; i++)
		if (strcmp(snap->series[kind][i].name, name) == 0)
			return &snap->series[kind][i];
	return NULL;
}

SY_API int sy_snapshot_hist(const sy_snapshot *snap, enum sy_hist_kind kind,
			    bool recent, struct sy_hist_summary *out)
{
	if ((unsigned)kind >= SY_HIST_KINDS || !out)
		return -EINVAL;
	*out = recent ? snap->recent[kind] : snap->total[kind];
	return 0;
}

SY_API uint64_t sy_snapshot_hist_count_le(const sy_snapshot *snap,
					  enum sy_hist_kind kind, uint64_t ns)
{
	if ((unsigned)kind >= SY_HIST_KINDS)
		return 0;
	return sy_hist_count_le(&snap->hist[kind], ns);
}

SY_API unsigned sy_snapshot_workers(const sy_snapshot *snap)
{
	return snap->workers;
}

SY_API int sy_snapshot_queue(const sy_snapshot *snap, unsigned w,
			     struct sy_queue_depth *out)
{
	if (w >= snap->workers || !out)
		return -EINVAL;
	*out = snap->queue[w];
	return 0;
}
