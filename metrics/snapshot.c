/*
 * Snapshots: allocation and references. The public accessors are in
 * core/snapshot.c.
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
