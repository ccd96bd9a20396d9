/*
 * Workers (worker.c): threads pinned to CPUs that own servers and run
 * their handlers, polling their inbound ring from every slot in turn.
 */
#ifndef SY_CORE_WORKER_H
#define SY_CORE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/slot.h"
#include "queues/park.h"
#include "switchyard.h"

struct sy_engine;
struct sy__ring;
struct sy__slot;

/* Per route: first runs and retries on one worker (the retry budget). */
struct sy__budget {
	uint64_t runs;             /* first runs (attempt 1) */
	uint64_t retries;
};

struct sy__worker {
	struct sy__parker parker;
	_Atomic uint64_t passes;   /* loop passes completed */
	_Atomic bool drain;        /* stop: exit once every inbox is empty */
	struct sy_engine *eng;
	struct sy__slot *slot;
	pthread_t thread;
	unsigned idx;
	int cpu;
	unsigned nservers;         /* placement; under eng->lock */
	sy_msg *current;           /* message being handled */
	bool taken;                /* the handler passed current on; false
	                            * outside a run (each run that sets it
	                            * clears it after) */
	bool deferred;             /* ...to a remote server: its run ends later */
	/* Retries waiting for their backoff, soonest first (msg->next). */
	struct sy_msg *retries;
	unsigned nretries;
	struct sy__budget *budget; /* [max_routes] */
	/* Remote servers with a batch open: published once a pass finds
	 * nothing else to do, or the batch is old (sy__remote_flush()). */
	struct sy__rserver *remote_flush;
	/* The rings into this worker, one per slot set up so far, for its
	 * passes and its idle spin (I1 in slot.c publishes them). */
	struct sy__ring **inbox;   /* [nslots] */
	_Atomic unsigned ninbox;
};

/*
 * Is the calling thread a worker of @p eng (in a handler, or a callback or
 * policy hook a worker runs)? Control calls refuse it with -EDEADLK: they
 * wait for the workers, or for eng->lock, which a control call holds while
 * it waits for the workers (stop's drain, a server's removal).
 */
static inline bool sy__in_worker(const struct sy_engine *eng)
{
	const struct sy__worker *w = sy__worker_self();

	return w && w->eng == eng;
}

/*
 * Is @p m the message the calling handler runs, still its to pass on? Once
 * the handler has sent, replied with or kept it (w->taken), it is not: a
 * second send would put one message on two rings.
 */
static inline bool sy__worker_holds(const struct sy_msg *m)
{
	const struct sy__worker *w = sy__worker_self();

	return w && w->current == m && !w->taken;
}

/*
 * A send, request or call accepted the message the calling handler runs
 * (sy__worker_holds() said so before): the handler passed it on, and the
 * worker must not free it when the handler returns. Through any engine:
 * a handler may pass its message to another engine's route.
 */
static inline void sy__worker_passed_on(void)
{
	sy__worker_self()->taken = true;
}

/* For a control call that returns nothing: from a worker of @p eng, record
 * -EDEADLK under @p call's name and say so (the call then does nothing). */
static inline bool sy__refused_in_worker(const struct sy_engine *eng,
					 const char *call)
{
	if (!sy__in_worker(eng))
		return false;
	sy__failed(call, sy__fail(-EDEADLK, "called from a handler, nothing done"));
	return true;
}

/* Start every worker thread: 0, or a negative errno with sy__fail's message. */
int sy__workers_start(struct sy_engine *eng);
/* Let every worker empty its inboxes, then join them (stop). */
void sy__workers_drain(struct sy_engine *eng);
/* Wait until worker @p w has handled everything enqueued to it so far. */
void sy__worker_wait_handled(struct sy_engine *eng, unsigned w);
/*
 * Inside a handler: the message being handled went to a remote server
 * (remote.c), which owns it now; its run is not counted until it comes
 * back with the far engine's result. The handling worker only.
 */
void sy__worker_defer(struct sy__worker *w);
/* Take and handle up to the burst size of entries from @p r. */
unsigned sy__worker_drain_ring(struct sy__worker *w, struct sy__ring *r);

#endif /* SY_CORE_WORKER_H */
