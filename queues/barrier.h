/*
 * Asymmetric barriers: a light side that runs often and a heavy side that
 * runs rarely, which together order a store before a load on both sides.
 *
 * Where the kernel has membarrier(PRIVATE_EXPEDITED), the heavy side is
 * that system call, which makes every thread of the process execute a full
 * barrier, and the light side is only a compiler barrier. Elsewhere both
 * sides are full fences. The fast paths (a send's wake-up check, a
 * read-side section of the route table) take the light side.
 */
#ifndef SY_QUEUES_BARRIER_H
#define SY_QUEUES_BARRIER_H

#include <stdatomic.h>
#include <stdbool.h>

/*
 * A full fence. ThreadSanitizer does not support atomic_thread_fence; its
 * builds use a seq_cst read-modify-write on a private word instead, which is
 * as strong on every architecture we run on.
 */
static inline void sy__fence(void)
{
#if defined(__SANITIZE_THREAD__)
	static _Atomic int word;

	atomic_fetch_add_explicit(&word, 0, memory_order_seq_cst);
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

/** True when the heavy side is a membarrier and the light side free. */
extern bool sy__barrier_asymmetric;

/** Probe and register membarrier once per process. Any thread. */
void sy__barrier_init(void);

/** The heavy side. */
void sy__barrier_heavy(void);

/**
 * The light side, where the caller read sy__barrier_asymmetric as
 * @p asymmetric: a path with several light sides tests the mode once (it is
 * set before any engine exists and never changes).
 */
static inline void sy__barrier_light_as(bool asymmetric)
{
	if (asymmetric)
		atomic_signal_fence(memory_order_seq_cst);
	else
		sy__fence();
}

/** The light side. */
static inline void sy__barrier_light(void)
{
	sy__barrier_light_as(sy__barrier_asymmetric);
}

#endif /* SY_QUEUES_BARRIER_H */
