/* Branch hints, the cache line size and container_of, for the files of the
 * hot path. */
#ifndef SY_CORE_COMPILER_H
#define SY_CORE_COMPILER_H

#include <stddef.h>

#define SY_CACHELINE 64

#define sy__likely(x) __builtin_expect(!!(x), 1)
#define sy__unlikely(x) __builtin_expect(!!(x), 0)

/* The @p type whose member @p member is at @p ptr. */
#define sy__container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Export @p old as another name of function @p new (a deprecated name). */
#define SY__ALIAS(old, new) \
	extern __typeof__(new) old __attribute__((alias(#new)))

#endif /* SY_CORE_COMPILER_H */
