/*
 * The engine's allocator (memory.c): a jemalloc arena of the engine's own
 * in the default build, malloc otherwise, or the user's sy_allocator.
 * Memory comes back zeroed and cache-line aligned.
 */
#ifndef SY_CORE_MEMORY_H
#define SY_CORE_MEMORY_H

#include <stddef.h>

struct sy_engine;

void *sy__mem_alloc(struct sy_engine *eng, size_t size);
void sy__mem_free(struct sy_engine *eng, void *p, size_t size);
void sy__mem_init(struct sy_engine *eng);
void sy__mem_fini(struct sy_engine *eng);

#endif /* SY_CORE_MEMORY_H */
