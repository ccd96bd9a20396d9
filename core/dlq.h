/*
 * The dead letter queue (dlq.c): bounded, oldest evicted first (and
 * counted), under one mutex that is taken only on failure paths and by the
 * admin functions. It also keeps the engine-wide dead letter counts that
 * sy_engine_accounting() reports.
 */
#ifndef SY_CORE_DLQ_H
#define SY_CORE_DLQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/route.h"
#include "switchyard.h"

struct sy_engine;
struct sy__parker;
struct sy__slot;
struct sy_msg;

int sy__dlq_init(struct sy_engine *eng);      /* 0; -ENOMEM */
void sy__dlq_destroy(struct sy_engine *eng);  /* frees what it holds */

/*
 * Take @p m (the caller's) into the queue with @p reason; route and server
 * ids are the message's route_id and last_server (SY_ANY for none). @p self
 * is the calling thread's slot (NULL if it has none): an evicted message is
 * freed through it. Counts it in self's metrics shard too. Any thread.
 */
void sy__dead_letter(struct sy_engine *eng, struct sy__slot *self,
		     struct sy_msg *m, enum sy_dl_reason reason,
		     uint32_t server);

/* Filters (sy_dl_filter): 0 or -EINVAL (with sy_last_error()); whether
 * @p d matches @p f (NULL: all). */
int sy__dl_filter_check(const struct sy_dl_filter *f);
bool sy__dl_matches(const struct sy_dl_filter *f, const struct sy_dead_letter *d);

/* Dead letter counts, consistent with each other (one lock). */
void sy__dlq_accounting(struct sy_engine *eng, struct sy_accounting *out);

/*
 * Copies for a durable store (remote.c writes them to a JetStream stream).
 * While a store is set, every dead letter taken in is also copied, payload
 * included, with its route's and server's names, and the store's parker is
 * woken; the store takes the copies in id order. The copy is made on the
 * dead-lettering thread (a failure path, never a send that succeeds); the
 * store does the writing.
 */
struct sy__dl_copy {
	struct sy__dl_copy *next;
	struct sy_dead_letter dl;
	char route[SY_NAME_MAX];   /* "" when the route is gone */
	char server[SY_NAME_MAX];  /* "" for none */
	unsigned char data[];      /* dl.size bytes */
};

/* Start copying, waking @p wake on each copy; NULL stops it. Control. */
void sy__dlq_copy_to(struct sy_engine *eng, struct sy__parker *wake);

/* Every copy made so far, oldest first (the caller frees each), or NULL. */
struct sy__dl_copy *sy__dlq_copies_take(struct sy_engine *eng);

/* Whether copies wait to be taken (a hint, no lock). */
bool sy__dlq_copies_waiting(struct sy_engine *eng);

/* Dead letters that could not be copied (no memory). */
uint64_t sy__dlq_copies_lost(struct sy_engine *eng);

#endif /* SY_CORE_DLQ_H */
