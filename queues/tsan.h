/*
 * ThreadSanitizer annotations for hand-offs it cannot see (Concurrency Kit's
 * inline assembly, liburcu's grace periods). Outside TSan builds they
 * compile to nothing.
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

#endif /* SY_QUEUES_TSAN_H */
