/*
 * The engine's allocator: the user's, else an arena of jemalloc's own (the
 * default build), else aligned malloc. Only slabs, rings and tables come from
 * here; messages come from the pools built on top.
 */
#include <stdlib.h>
#include <string.h>

#include "core/compiler.h"
#include "core/engine.h"
#include "core/memory.h"

#if SY_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

void sy__mem_init(struct sy_engine *eng)
{
#if SY_HAVE_JEMALLOC
	size_t len = sizeof(eng->je_arena);

	if (!eng->cfg.allocator &&
	    mallctl("arenas.create", &eng->je_arena, &len, NULL, 0) == 0)
		eng->je_arena_valid = true;
#else
	(void)eng;
#endif
}

void sy__mem_fini(struct sy_engine *eng)
{
	/* The arena stays with jemalloc: arenas cannot be destroyed while
	 * other threads may still hold cached pointers into them. */
	(void)eng;
}

void *sy__mem_alloc(struct sy_engine *eng, size_t size)
{
	const struct sy_allocator *a = eng->cfg.allocator;
	void *p;

	if (a) {
		p = a->alloc(size, SY_CACHELINE, a->ctx);
	} else {
#if SY_HAVE_JEMALLOC
		if (eng->je_arena_valid)
			p = mallocx(size, MALLOCX_ALIGN(SY_CACHELINE) |
				    MALLOCX_ARENA(eng->je_arena) |
				    MALLOCX_TCACHE_NONE);
		else
#endif
		if (posix_memalign(&p, SY_CACHELINE, size) != 0)
			p = NULL;
	}
	if (p)
		memset(p, 0, size);
	return p;
}

void sy__mem_free(struct sy_engine *eng, void *p, size_t size)
{
	const struct sy_allocator *a = eng->cfg.allocator;

	if (!p)
		return;
	if (a) {
		a->free(p, size, a->ctx);
		return;
	}
#if SY_HAVE_JEMALLOC
	if (eng->je_arena_valid) {
		dallocx(p, MALLOCX_TCACHE_NONE);
		return;
	}
#endif
	free(p);
}
