/*
 * Read-copy-update, two kinds of readers.
 *
 * Slots (senders and workers: the hot readers of the route table by id)
 * read through the engine's own domain below: a section is two stores to
 * the slot's own word and a compiler barrier, inline, with no call and no
 * thread-local lookup. A writer waits for them with
 * sy__slots_synchronize().
 *
 * Everything else reads under liburcu, memb flavor: the route names' hash
 * table (sy_route_find()), the collector's walk of the route table and the
 * metrics snapshots. Every thread that reads there registers first:
 * attached slots and workers do it through slot.c; other readers (a
 * snapshot reader, a control thread that merges) through
 * sy__rcu_reader_ensure(). A route object is freed only after both kinds
 * of grace period (registry.c).
 *
 * liburcu is not built for ThreadSanitizer, so under it the grace period is
 * annotated: every read-side section releases a token when it ends (G1) and
 * a waiter acquires it after synchronize_rcu() or at the start of a
 * call_rcu callback (G2, pairs with G1).
 */
#ifndef SY_CORE_RCU_H
#define SY_CORE_RCU_H

#include <urcu/urcu-memb.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/compiler.h"
#include "queues/barrier.h"
#include "queues/tsan.h"

extern char sy__rcu_token;

/*
 * A slot's reader word. Ordering of the engine's domain:
 *  E1 a reader stores its period, then (light barrier) loads the table; a
 *     writer unpublishes, then (heavy barrier, sy__slots_synchronize())
 *     reads the readers' words: either the writer sees the reader's period
 *     and waits for its section to end, or the reader sees the table
 *     without what was unpublished.
 *  E2 a reader ends its section with a release store of 0; the writer
 *     reads the word with acquire: every access of the section happens
 *     before what the writer does once it stops waiting.
 * A writer waits only for sections that began in an earlier period, so a
 * reader that enters sections back to back cannot starve it.
 */
struct sy__rcu_reader {
	_Atomic uint64_t period;  /* 0: outside; else the period it entered in */
};

/*
 * Enter a section of the engine's domain (@p period: the engine's), with
 * @p asymmetric the barriers' mode as the caller read it. The slot's own
 * thread only. Sections nest: a nonzero word means this thread
 * is inside one already, and then the call changes nothing. @return the
 * word as it was, for sy__slot_read_unlock() to put back.
 */
static inline uint64_t sy__slot_read_lock_as(struct sy__rcu_reader *r,
					     _Atomic uint64_t *period,
					     bool asymmetric)
{
	uint64_t outer = atomic_load_explicit(&r->period, memory_order_relaxed);

	if (sy__likely(outer == 0)) {
		atomic_store_explicit(&r->period,
				      atomic_load_explicit(period,
							   memory_order_relaxed),
				      memory_order_relaxed);
		SY_YIELD_POINT();
		sy__barrier_light_as(asymmetric); /* E1 */
	}
	return outer;
}

/* sy__slot_read_lock_as() where the caller has not read the barriers'
 * mode (barrier.h). */
static inline uint64_t sy__slot_read_lock(struct sy__rcu_reader *r,
					  _Atomic uint64_t *period)
{
	return sy__slot_read_lock_as(r, period, sy__barrier_asymmetric);
}

/* Leave the section that sy__slot_read_lock() entered: put back @p outer,
 * what it returned (nonzero: an outer section goes on, unchanged). No
 * branch: a nested section stores the word it found. */
static inline void sy__slot_read_unlock(struct sy__rcu_reader *r,
					uint64_t outer)
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1 */
	atomic_store_explicit(&r->period, outer, memory_order_release); /* E2 */
}

struct sy_engine;

/* Wait until every slot's section that began before the call has ended
 * (rcu.c). A control thread, outside any section of its own. */
void sy__slots_synchronize(struct sy_engine *eng);

static inline void sy__read_lock(void)
{
	urcu_memb_read_lock();
}

static inline void sy__read_unlock(void)
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1 */
	urcu_memb_read_unlock();
}

/*
 * Our call_rcu callbacks queued and not yet finished, every engine's
 * together (engine.c). liburcu's call_rcu thread waits about 10 ms between
 * batches, so rcu_barrier() costs that much even with nothing queued:
 * sy__rcu_barrier() calls it only when some callback of ours is pending.
 *  B1 a callback's last act is a release decrement; pairs with B2.
 *  B2 sy__rcu_barrier() loads the count with acquire: at 0, every free a
 *     callback did happens before what follows.
 * The increment needs no ordering of its own: whoever waits at destroy
 * already happens after the call that queued (eng->lock, thread joins).
 */
extern _Atomic unsigned long sy__rcu_queued;

/* Free @p head's object with @p fn after a grace period; @p fn ends with
 * sy__rcu_callback_end(). */
static inline void sy__call_rcu(struct rcu_head *head,
				void (*fn)(struct rcu_head *head))
{
	atomic_fetch_add_explicit(&sy__rcu_queued, 1, memory_order_relaxed);
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1: what we did with it before */
	urcu_memb_call_rcu(head, fn);
}

/* At the start of a call_rcu callback. */
static inline void sy__rcu_callback_start(void)
{
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* At the end of a call_rcu callback, after its last access to anything. */
static inline void sy__rcu_callback_end(void)
{
	/* B1: pairs with B2 in sy__rcu_barrier(). */
	atomic_fetch_sub_explicit(&sy__rcu_queued, 1, memory_order_release);
}

/* Wait until every callback queued before the call has run. Not inside a
 * read-side section, nor in a callback. */
static inline void sy__rcu_barrier(void)
{
	/* B2: pairs with B1. */
	if (atomic_load_explicit(&sy__rcu_queued, memory_order_acquire))
		urcu_memb_barrier();
}

/* Wait for a grace period of liburcu's readers; then free directly what
 * they may have held. Not inside a read-side section. */
static inline void sy__synchronize_rcu(void)
{
	urcu_memb_synchronize_rcu();
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* slot.c: counted registrations of the calling thread. */
void sy__rcu_thread_get(void);
void sy__rcu_thread_put(void);
/* Register the calling thread as an RCU reader until it exits (readers
 * that are not attached to an engine). */
void sy__rcu_reader_ensure(void);

#endif /* SY_CORE_RCU_H */
