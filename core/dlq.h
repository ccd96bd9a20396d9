/*
 * The dead letter queue (dlq.c): bounded, oldest evicted first (and
 * counted), under one mutex that is taken only on failure paths and by the
 * admin functions. It also keeps the engine-wide dead letter counts that
 * sy_engine_accounting() reports.
 */
#ifndef SY_CORE_DLQ_H
#define SY_CORE_DLQ_H

#include <stdint.h>

#include "switchyard.h"

struct sy_engine;
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

/* Dead letter counts, consistent with each other (one lock). */
void sy__dlq_accounting(struct sy_engine *eng, struct sy_accounting *out);

#endif /* SY_CORE_DLQ_H */
