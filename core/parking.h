/*
 * Poison-key parking (parking.c): on a route with park_after, a key whose
 * messages failed park_after times in a row is parked, and its worker
 * holds the key's later messages, in order, until an operator releases or
 * purges it.
 *
 * A route with parking adds SY_MSG_INFLIGHT to its messages' flags, so
 * that they take the worker's slow path (run_msgs() in worker.c), where the
 * check is; a message of any other route pays nothing, and on an engine
 * where no route ever parked, an in-flight message pays one load of
 * eng->parking.
 */
#ifndef SY_CORE_PARKING_H
#define SY_CORE_PARKING_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/engine.h"

struct sy_msg;
struct sy__route;
struct sy__server;

/* What the worker does with a message of a parking route. */
enum sy__park_verdict {
	SY__PARK_RUN = 0,  /* run it: its key is not parked */
	SY__PARK_HELD,     /* held for its parked key: the table's now */
	SY__PARK_FULL,     /* its parked key's queue is full: dead-letter it */
};

/* The engine's parking table, or NULL while no route has parked keys. */
static inline struct sy__parking *sy__parking_of(struct sy_engine *eng)
{
	/* Pairs with the release in sy__parking_enable(). */
	return atomic_load_explicit(&eng->parking, memory_order_acquire);
}

/* A route with park_after is about to be published: make sure the table
 * exists. Control thread, under eng->lock. @return 0; -ENOMEM. */
int sy__parking_enable(struct sy_engine *eng);

/*
 * Before @p m (a parking route's message) runs on its server's worker:
 * run it, hold it, or dead-letter it (its queue is full). When @p m is
 * the first message of a released key, the key is unparked and *released
 * gets the rest of its held messages (chained by msg->next, in order),
 * which the worker runs right after @p m.
 */
enum sy__park_verdict sy__parking_admit(struct sy__parking *t,
					struct sy_msg *m,
					struct sy_msg **released);

/* A run of @p route with @p key succeeded: its failures in a row end. */
void sy__parking_ok(struct sy__parking *t, uint32_t route, uint64_t key);

/* @p m, of route @p r with parking, failed on @p srv for good (no retry
 * left): count it against its key, and park the key at park_after. */
void sy__parking_failed(struct sy_engine *eng, const struct sy__route *r,
			const struct sy_msg *m, struct sy__server *srv);

/* Route @p route is removed, or server @p srv (NULL: any) is: dead-letter
 * the messages held for it (SY_DL_PARKED). Control, under eng->lock. */
void sy__parking_drop(struct sy_engine *eng, uint32_t route,
		      const struct sy__server *srv);

/* The workers have drained (stop): dead-letter every held message
 * (SY_DL_SHUTDOWN). Control, under eng->lock. */
void sy__parking_shutdown(struct sy_engine *eng);

/* Free the table (destroy, after stop's sy__parking_shutdown()). */
void sy__parking_destroy(struct sy_engine *eng);

#endif /* SY_CORE_PARKING_H */
