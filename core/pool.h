/*
 * Message pools (pool.c): one per slot, in SY_CLASSES size classes, carved
 * from slabs of the engine's allocator.
 *
 * Free messages are kept in groups: a leader, a free message whose own
 * bytes list up to SY_GROUP_MAX more free messages of its pool and class
 * (its members). The owner hands out a group's members by their listed
 * addresses, then the leader: it never waits for one free message's link
 * to learn where the next one is, and may fetch them all at once.
 *
 * The owner allocates and frees without atomics. Messages freed on another
 * thread go back to their origin pool in chains of groups of about
 * SY_RETURN_BATCH messages, pushed with one CAS each on the pool's remote
 * stacks; the owner takes a whole stack at once when its groups run out.
 */
#ifndef SY_CORE_POOL_H
#define SY_CORE_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/compiler.h"
#include "core/msg.h"

#define SY_RETURN_BATCH 32 /* messages returned to another pool at once */
#define SY_CLASS0_BYTES 192u /* the smallest class, header included */
/* The largest payload of the smallest class: sy_msg_alloc()'s fast path. */
#define SY_POOL_FAST_MAX (SY_CLASS0_BYTES - (uint32_t)sizeof(struct sy_msg))

/* The class of a burst descriptor (msg.h): its header and struct sy__burst
 * fit 512 bytes, not 256 (pool.c checks). */
#define SY_BURST_CLASS 2u

struct sy_engine;
struct sy__slot;

/* Whether the CPU has PREFETCHW (pool.c): set by sy__prefetchw_init(),
 * once per process, before an engine's first allocation. */
extern bool sy__prefetchw;
void sy__prefetchw_init(void);

/* Members a group's leader lists, at most: from its second cache line to
 * the end of the smallest class, with a place left for the leader itself
 * (the owner lists it last when it opens the group). */
#define SY_GROUP_MAX 15u
_Static_assert(offsetof(struct sy_msg, deadline) +
	       (SY_GROUP_MAX + 1) * sizeof(struct sy_msg *) <= SY_CLASS0_BYTES,
	       "a group's list fits a message of the smallest class");

struct sy__pool {
	/* Read-only after create; other threads read them. */
	struct sy_engine *eng;
	uint32_t slot;
	/* Owner side: only the slot's thread writes these, on their own
	 * lines. Per class: the open group's messages not yet handed out,
	 * [at, end), its leader last; the other groups, linked by their
	 * leaders' next. */
	_Alignas(SY_CACHELINE) struct sy_msg **at[SY_CLASSES];
	struct sy_msg **end[SY_CLASSES];
	struct sy_msg *free[SY_CLASSES];
	/* The open group's leader where it is a burst descriptor that went
	 * back whole (sy__release_whole()): not one of the group's, freed
	 * once its list is handed out. NULL: none. */
	struct sy_msg *desc[SY_CLASSES];
	void *slabs;               /* singly linked through the slab's first word */
	_Atomic uint64_t slab_count;
	_Atomic uint64_t slab_bytes;
	/* Remote side: other threads push chains here (Treiber stacks; the
	 * owner takes a whole stack at once, so there is no ABA). */
	_Alignas(SY_CACHELINE) _Atomic(struct sy_msg *) remote[SY_CLASSES];
};

/* Messages freed by a thread for another thread's pool, in groups,
 * returned about SY_RETURN_BATCH at once. */
struct sy__chain {
	struct sy_msg *head;       /* the group filling, then the others */
	struct sy_msg *tail;
	uint32_t n;                /* messages */
	bool listed;               /* its index is in the slot's dirty list */
};

/* The list of the group @p lead leads; its count is in lead->tag (a free
 * message has no tag: an allocation clears it). */
static inline struct sy_msg **sy__group(struct sy_msg *lead)
{
	return (struct sy_msg **)(void *)&lead->deadline;
}

/*
 * Add @p m, free, to the chain of groups *@p head (its last group
 * *@p tail, or NULL where no tail is kept): into the first group if it has
 * room, else as the leader of a new first group.
 */
static inline void sy__groups_push(struct sy_msg **head, struct sy_msg **tail,
				   struct sy_msg *m)
{
	struct sy_msg *g = *head;

	if (g && g->tag < SY_GROUP_MAX) {
		sy__group(g)[g->tag++] = m;
		return;
	}
	m->tag = 0;
	m->next = g;
	*head = m;
	if (!g && tail)
		*tail = m;
}

/*
 * A message's home word (msg.h): its pool and its size class. A pool lives
 * in a slot, in an array from calloc(), so only the allocator's alignment
 * can be counted on, not the struct's: 8 bytes, 3 bits for the class.
 */
#define SY_HOME_CLASS_MASK ((uintptr_t)7)
_Static_assert(_Alignof(struct sy__pool) >= 8 && SY_CLASSES <= 7 &&
	       SY_CLASS_HUGE <= 7,
	       "a message's home word keeps its class in its pool's low bits");

static inline uintptr_t sy__home(struct sy__pool *p, unsigned klass)
{
	return (uintptr_t)p | klass;
}

static inline struct sy__pool *sy__home_pool(uintptr_t home)
{
	return (struct sy__pool *)(home & ~SY_HOME_CLASS_MASK);
}

static inline unsigned sy__home_class(uintptr_t home)
{
	return (unsigned)(home & SY_HOME_CLASS_MASK);
}

/*
 * Messages freed one after another by one thread, grouped while they go
 * back to the same pool and class (home), then handed back together.
 */
struct sy__release_batch {
	uintptr_t home;            /* 0: empty */
	struct sy_msg *head;       /* the group filling, then the others */
	struct sy_msg *tail;
};

/*
 * The home of the messages burst descriptor @p desc lists, if they may go
 * back as one group listed in the descriptor (sy__release_whole()): 0 for
 * the descriptors' own class, whose groups' leaders are their own.
 */
static inline uintptr_t sy__whole_home(const struct sy_msg *desc)
{
	const struct sy__burst *b = (const struct sy__burst *)desc->data;
	uintptr_t home = ((const struct sy_msg *)b->msgs[0])->home;
	unsigned k = sy__home_class(home);

	return k != SY_BURST_CLASS && k != SY_CLASS_HUGE ? home : 0;
}

/* @p desc, a burst descriptor whose messages are freed from slot @p self's
 * thread, all of home @p home (sy__whole_home()), goes back to their pool
 * as one group: the descriptor leads it, and is freed in turn once the
 * pool has handed out its list. */
void sy__release_whole(struct sy__slot *self, struct sy_msg *desc,
		       uintptr_t home);

/* Allocate from @p s's pool (its thread only). NULL: -ENOMEM. */
struct sy_msg *sy__msg_alloc(struct sy__slot *s, size_t size);
/* Free @p m from the thread of slot @p self (NULL: a thread without one). */
void sy__msg_release(struct sy__slot *self, struct sy_msg *m);
void sy__release_batch_flush(struct sy__slot *self, struct sy__release_batch *b);
/* Hand back every chain @p self holds for other pools. */
void sy__pending_flush(struct sy__slot *self);
void sy__pool_destroy(struct sy_engine *eng, struct sy__pool *p);
/* Free the unpooled messages still allocated (engine destroy). */
void sy__huge_destroy(struct sy_engine *eng);

/* sy__release_batch_add() for a message of another pool than the batch's:
 * flush the batch, start one with @p m. */
void sy__release_batch_switch(struct sy__slot *self,
			      struct sy__release_batch *b, struct sy_msg *m);

/*
 * Add @p m to @p b if it goes back where the batch's do: @return false if
 * it does not (sy__release_batch_switch() then). A member's next is
 * written too, though no one reads it: the store leaves the line modified
 * in this core's cache, and the owner's allocation, which writes the
 * line, gets a modified line from the other core much sooner than one
 * only read there (docs/results.md, the eighth round).
 */
static inline bool sy__release_batch_join(struct sy__release_batch *b,
					  struct sy_msg *m)
{
	if (sy__likely(m->home == b->home)) {
		struct sy_msg *g = b->head;
		uint64_t n = g->tag;

		m->next = g;
		if (sy__likely(n < SY_GROUP_MAX)) {
			sy__group(g)[n] = m;
			g->tag = n + 1;
		} else {
			m->tag = 0;
			b->head = m;
		}
		return true;
	}
	return false;
}

/* Add @p m to @p b; *@p self (the caller's slot) is read only when @p m
 * comes from another pool than the batch's. */
static inline void sy__release_batch_add(struct sy__slot *const *self,
					 struct sy__release_batch *b,
					 struct sy_msg *m)
{
	if (!sy__release_batch_join(b, m))
		sy__release_batch_switch(*self, b, m);
}

#endif /* SY_CORE_POOL_H */
