/*
 * Checking aids at the labelled ordering points (P1, C1, S2, W2, E1...).
 *
 * ThreadSanitizer annotations for hand-offs it cannot see (Concurrency Kit's
 * inline assembly, liburcu's grace periods). Outside TSan builds they
 * compile to nothing.
 *
 * Yield points (meson -Dyield_points=true): SY_YIELD_POINT() sometimes
 * gives up the CPU, so that the stress tests see the other thread run at
 * the worst moments (on one CPU, a pre-emption there). Elsewhere it
 * compiles to nothing.
 */
#ifndef SY_QUEUES_TSAN_H
#define SY_QUEUES_TSAN_H

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SY_TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define SY_TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define SY_TSAN_RELEASE(addr) ((void)(addr))
#define SY_TSAN_ACQUIRE(addr) ((void)(addr))
#endif

#if SY_YIELD_POINTS
/* sched_yield() at one call in 16, from a per-thread generator. */
void sy__yield_point(void);
#define SY_YIELD_POINT() sy__yield_point()
#else
#define SY_YIELD_POINT() ((void)0)
#endif

#endif /* SY_QUEUES_TSAN_H */
