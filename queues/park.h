/*
 * Parking a thread until another one has work for it.
 *
 * The sleeper announces itself, re-checks for work, then sleeps on a futex:
 *
 *   sleeper                          waker
 *   S1 parked = 1 (seq_cst)          W1 publish work (ring p_tail store)
 *   S2 barrier (see below)           W2 barrier (see below)
 *   S3 look for work                 W3 if parked: parked = 0, futex_wake
 *   S4 futex_wait(parked == 1)
 *
 * Either the sleeper sees the work at S3, or the waker sees parked == 1 at
 * W3 and wakes it. The futex_wait returns at once if the waker already reset
 * the word, so no wake-up is lost. A waker makes a system call only when the
 * sleeper really sleeps.
 *
 * The barriers are asymmetric (barrier.h): S2 is the heavy side,
 * membarrier(PRIVATE_EXPEDITED) where the kernel has it, which makes every
 * thread of the process execute a full barrier, so W2 is only a compiler
 * barrier and the send path pays no fence. Either W1 happened before that barrier ran on the waker's
 * CPU (the sleeper sees the work at S3) or W3 ran after it (the waker sees
 * parked == 1). Without membarrier, S2 and W2 are both seq_cst fences.
 */
#ifndef SY_QUEUES_PARK_H
#define SY_QUEUES_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "queues/barrier.h"
#include "queues/tsan.h"

struct sy__parker {
	_Atomic uint32_t parked;
} __attribute__((aligned(64)));

/** S1 + S2: announce that the caller is about to sleep. */
void sy__park_prepare(struct sy__parker *p);

/** The caller found work after S1: withdraw. */
static inline void sy__park_cancel(struct sy__parker *p)
{
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
}

/**
 * S3: sleep until woken or @p timeout_ns (0: no limit) passes. Returns with
 * parked reset to 0.
 */
void sy__park_wait(struct sy__parker *p, uint64_t timeout_ns);

/** W3 slow path: wake the sleeper. Never inlined: a waker's common path
 * makes no call. */
void sy__unpark(struct sy__parker *p);

/** sy__unpark(), then 0: what a caller that returns 0 after a wake-up
 * reaches by a tail call, needing no frame of its own for it. */
int sy__unpark_rc(struct sy__parker *p);

/** W2 + W3, after publishing work the sleeper will look for, with
 * @p asymmetric the barriers' mode as the caller read it. @return 0. */
static inline int sy__wake_rc_as(struct sy__parker *p, bool asymmetric)
{
	SY_YIELD_POINT();
	/* W2: order the ring store before the parked load (pairs with S2). */
	sy__barrier_light_as(asymmetric);
	if (atomic_load_explicit(&p->parked, memory_order_relaxed))
		return sy__unpark_rc(p);
	return 0;
}

static inline int sy__wake_rc(struct sy__parker *p)
{
	return sy__wake_rc_as(p, sy__barrier_asymmetric);
}

static inline void sy__wake(struct sy__parker *p)
{
	(void)sy__wake_rc(p);
}

#endif /* SY_QUEUES_PARK_H */
