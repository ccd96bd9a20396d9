/*
 * RCU, memb flavor, for the route table and the metrics snapshots.
 *
 * Every thread that reads registers first: attached slots and workers do
 * it through slot.c; other readers (a snapshot reader, a control thread
 * that merges) through sy__rcu_reader_ensure().
 *
 * liburcu is not built for ThreadSanitizer, so under it the grace period is
 * annotated: every read-side section releases a token when it ends (G1) and
 * a waiter acquires it after synchronize_rcu() or at the start of a
 * call_rcu callback (G2, pairs with G1).
 */
#ifndef SY_CORE_RCU_H
#define SY_CORE_RCU_H

#include <urcu/urcu-memb.h>

#include "queues/tsan.h"

extern char sy__rcu_token;

static inline void sy__read_lock(void)
{
	urcu_memb_read_lock();
}

static inline void sy__read_unlock(void)
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1 */
	urcu_memb_read_unlock();
}

static inline void sy__synchronize(void)
{
	urcu_memb_synchronize_rcu();
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* Free @p head's object with @p fn after a grace period. */
static inline void sy__call_rcu(struct rcu_head *head,
				void (*fn)(struct rcu_head *head))
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1: what we did with it before */
	urcu_memb_call_rcu(head, fn);
}

/* At the start of a call_rcu callback. */
static inline void sy__rcu_callback_start(void)
{
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* slot.c: counted registrations of the calling thread. */
void sy__rcu_thread_get(void);
void sy__rcu_thread_put(void);
/* Register the calling thread as an RCU reader until it exits (readers
 * that are not attached to an engine). */
void sy__rcu_reader_ensure(void);

#endif /* SY_CORE_RCU_H */
