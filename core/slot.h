/*
 * Slots: the state of one sending thread (slot.c).
 *
 * Slots [0, workers) belong to the workers, slots [workers, workers +
 * max_producers) to attached application threads. Each slot has an SPSC
 * ring to every worker (out[w]), an SPSC ring from every worker for replies
 * (replies[w]), a message pool, its engine totals and its metrics shard.
 * Only the thread attached to a slot produces on its out rings, consumes
 * its reply rings, allocates from its pool and writes its counters.
 *
 * A thread finds its slot through thread-local state: a one-entry cache
 * (sy__tls_hot) for the engine it used last, then a small table.
 */
#ifndef SY_CORE_SLOT_H
#define SY_CORE_SLOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "metrics/counter.h"
#include "queues/park.h"
#include "queues/ring.h"

struct sy_engine;
struct sy__shard;
struct sy__worker;
struct sy__hedge_table;

enum sy__slot_state { SY_SLOT_FREE, SY_SLOT_ATTACHED };

struct sy__slot {
	struct sy__rcu_reader rcu; /* the route table's read side (rcu.h) */
	struct sy__totals totals;
	struct sy__pool pool;
	struct sy__parker parker;  /* a thread waiting in sy_msg_call() */
	/* What a worker reads to reply, on a line of its own: written at
	 * attach and detach only, it stays in the workers' caches while the
	 * slot's thread sends (which writes sample_left, rng, call_seq...). */
	_Alignas(SY_CACHELINE) struct sy__ring *_Atomic out; /* [workers], published once */
	struct sy__ring *replies;  /* [workers] */
	uint32_t id;
	_Atomic uint32_t gen;      /* changes at every attach */
	_Atomic int state;
	_Alignas(SY_CACHELINE) struct sy__chain *pending; /* [slots * SY_CLASSES] return chains */
	uint32_t *dirty;           /* indices of non-empty pending chains */
	unsigned ndirty;
	uint64_t *policy_words;    /* [max_routes] */
	uint16_t *hedge_debt;      /* [max_routes] hedge budget spent (hedge.c) */
	struct sy__hedge_table *hedges; /* sy_msg_request()'s armed hedges; NULL: none yet */
	uint64_t rng;              /* sy_pick_random() state (xorshift64*) */
	struct sy_msg *stash;      /* replies taken by sy_msg_call() for sy_producer_poll_replies() */
	struct sy_msg **stash_tail;
	struct sy__shard *shard;   /* NULL: metrics off */
	/* Latency samples: sends until the next one, counted down by the
	 * slot's thread; one send call in sample_every is timed (0: metrics
	 * off, and sample_left, from 0, comes back to 1 once in 2^32 sends,
	 * which sy__slot_sample() answers with no). */
	uint32_t sample_left;
	uint32_t sample_every;
	/* congested[w]: 0, or 1 + the low mark of the route whose threshold
	 * the ring to worker w passed; cleared (on_backpressure) once the
	 * ring has drained below it. */
	_Atomic uint32_t *congested;
	uint32_t call_seq;
	bool is_worker;
	bool quiet;                /* refusals now are a waiting send's: not counted */
};
_Static_assert(offsetof(struct sy__slot, pending) -
	       offsetof(struct sy__slot, out) == SY_CACHELINE,
	       "a worker's reply reads a line of its own (out to state)");

/* What sy__tls_hot.eng holds while the thread has no engine: no engine's
 * address and not NULL, so that a NULL engine never matches it. */
#define SY__NO_ENGINE ((struct sy_engine *)(uintptr_t)1)

/* The calling thread's slot for the engine it used last, and its worker. */
struct sy__tls_hot {
	struct sy_engine *eng;
	struct sy__slot *slot;
	struct sy__worker *worker;
};
extern __thread struct sy__tls_hot sy__tls_hot
	__attribute__((tls_model("initial-exec")));

struct sy__slot *sy__slot_lookup(struct sy_engine *eng);
struct sy__slot *sy__slot_attach_lazy(struct sy_engine *eng, int *err);

/** The calling thread's slot for @p eng, or NULL if it is not attached. */
static inline struct sy__slot *sy__slot_self(struct sy_engine *eng)
{
	if (sy__likely(sy__tls_hot.eng == eng))
		return sy__tls_hot.slot;
	return sy__slot_lookup(eng);
}

/** The calling thread's slot for @p eng, attaching it if needed. */
static inline struct sy__slot *sy__slot_get(struct sy_engine *eng, int *err)
{
	if (sy__likely(sy__tls_hot.eng == eng))
		return sy__tls_hot.slot;
	return sy__slot_attach_lazy(eng, err);
}

/** The worker the calling thread is, or NULL. */
static inline struct sy__worker *sy__worker_self(void)
{
	return sy__tls_hot.worker;
}

static inline struct sy__ring *sy__slot_out(struct sy__slot *s)
{
	/* Pairs with the release that publishes the rings in sy__slot_setup(). */
	return atomic_load_explicit(&s->out, memory_order_acquire);
}

/* Before @p m (or the burst it leads) goes on @p ring: a latency sample's
 * index tells the worker to read the clock when it takes it (ring.h). */
static inline void sy__ring_mark_msg(struct sy__ring *ring,
				     const struct sy_msg *m)
{
	if (sy__unlikely(m->flags & SY_MSG_TIMED))
		sy__ring_mark_sample(ring);
}

/* The slot's xorshift64* generator: its thread only, no shared line. */
static inline uint64_t sy__slot_random(struct sy__slot *s)
{
	uint64_t x = s->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Should this send call be timed (a latency sample)? The slot's thread. */
static inline bool sy__slot_sample(struct sy__slot *s)
{
	if (--s->sample_left)
		return false;
	s->sample_left = s->sample_every;
	return s->sample_every != 0;
}

/* Control paths (engine create, destroy, attach). */
int sy__slot_setup(struct sy_engine *eng, struct sy__slot *s);
/* Route ids whose latency a worker's shard keeps (metrics/shard.h). */
unsigned sy__slot_route_lats(const struct sy_engine *eng);
void sy__slot_reset_picks(struct sy_engine *eng, struct sy__slot *s);
void sy__slot_free(struct sy_engine *eng, struct sy__slot *s);
void sy__worker_bind(struct sy__worker *w);
void sy__worker_unbind(struct sy__worker *w);
/* The table of live engines that thread-exit destructors check. */
int sy__engine_remember(struct sy_engine *eng);
void sy__engine_forget(struct sy_engine *eng);

#endif /* SY_CORE_SLOT_H */
