/*
 * Message pools.
 *
 * Every slot (thread) has a pool with one set of free messages per size
 * class, kept in groups (pool.h): a leader lists up to SY_GROUP_MAX more.
 * The owner opens one group at a time and hands out its messages from
 * the list, the leader last, so an allocation reads no free message to
 * find the next: a free message's line may still be on the core that
 * freed it, and a walk from link to link would wait for each in turn.
 *
 * A thread allocates from its own pool and frees into it without atomics.
 * A message freed by another thread goes back to the pool it came from:
 * the freeing thread groups it with others for the same pool and class,
 * and pushes the chain of groups, about SY_RETURN_BATCH messages, with one
 * compare-and-swap onto the pool's remote stack. A message of another
 * engine, sent through this one, is pushed onto its pool's remote stack at
 * once: the chains a slot keeps are indexed by its own engine's slots.
 * When the owner's groups run out it takes the whole remote stack with one
 * exchange. A pool grows by a slab when both are empty; in steady state
 * nothing is allocated.
 *
 * Messages above the largest class are allocated alone and freed straight
 * to the allocator.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/engine.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/pool.h"
#include "core/slot.h"

/* What precedes an unpooled (huge) message: the engine's list of them. */
struct sy__huge {
	struct sy__huge *prev;
	struct sy__huge *next;
	size_t bytes;
} __attribute__((aligned(64)));

#define SY_SLAB_BYTES (64u * 1024)

static const uint32_t class_bytes[SY_CLASSES] = {
	SY_CLASS0_BYTES, 256, 512, 2048, 8192, 65536,
};
_Static_assert(sizeof(struct sy_msg) + sizeof(struct sy__burst) > 256 &&
	       sizeof(struct sy_msg) + sizeof(struct sy__burst) <= 512,
	       "a burst descriptor is of class SY_BURST_CLASS (512 bytes)");

static inline unsigned class_of(size_t size)
{
	if (sy__likely(size + sizeof(struct sy_msg) <= class_bytes[0]))
		return 0;
	for (unsigned k = 1; k < SY_CLASSES; k++)
		if (size + sizeof(struct sy_msg) <= class_bytes[k])
			return k;
	return SY_CLASS_HUGE;
}

static struct sy_msg *pool_grow(struct sy__pool *p, unsigned k)
{
	size_t obj = class_bytes[k];
	size_t count = SY_SLAB_BYTES / obj < 8 ? 8 : SY_SLAB_BYTES / obj;
	size_t bytes = SY_CACHELINE + count * obj;
	char *slab = sy__mem_alloc(p->eng, bytes);
	struct sy_msg *head = NULL, *tail = NULL;

	if (!slab)
		return NULL;
	/* The slab's first cache line links the pool's slabs for destroy. */
	((void **)slab)[0] = p->slabs;
	((size_t *)slab)[1] = bytes;
	p->slabs = slab;
	for (size_t i = count; i-- > 0;) {
		struct sy_msg *m = (struct sy_msg *)(slab + SY_CACHELINE + i * obj);

		m->home = sy__home(p, k);
		m->held = 1;
		m->cap = (uint32_t)(obj - sizeof(struct sy_msg));
		sy__groups_push(&head, &tail, m);
	}
	atomic_store_explicit(&p->slab_count,
			      atomic_load_explicit(&p->slab_count, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_store_explicit(&p->slab_bytes,
			      atomic_load_explicit(&p->slab_bytes, memory_order_relaxed) + bytes,
			      memory_order_relaxed);
	return head;
}

/*
 * A message as an allocation hands it out: no tag, key, call or flags, not
 * held. (One 16-byte store of reply_slot to flags is one instruction
 * fewer, but single sends measured a tenth fewer messages per second with
 * it: the send reads held, one byte inside that store, right after;
 * docs/results.md, the seventh round.)
 */
static inline void msg_init(struct sy_msg *m, size_t size)
{
	m->tag = 0;
	m->key = 0;
	m->size = (uint32_t)size;
	m->call_seq = 0;
	m->held = 0;
	m->attempts = 0;
	m->flags = 0;
}

/*
 * Messages above the largest class are allocated alone, behind a struct
 * sy__huge that links them into the engine's list (under huge_lock), so that
 * destroy frees those a caller still holds too.
 */
static __attribute__((noinline)) struct sy_msg *alloc_huge(struct sy__slot *s,
							    size_t size)
{
	struct sy_engine *eng = s->pool.eng;
	size_t bytes = sizeof(struct sy__huge) + sizeof(struct sy_msg) + size;
	struct sy__huge *h = sy__mem_alloc(eng, bytes);
	struct sy_msg *m;

	if (!h)
		return NULL;
	h->bytes = bytes;
	pthread_mutex_lock(&eng->huge_lock);
	h->next = eng->huge;
	if (h->next)
		h->next->prev = h;
	eng->huge = h;
	pthread_mutex_unlock(&eng->huge_lock);
	m = (struct sy_msg *)(h + 1);
	m->home = sy__home(&s->pool, SY_CLASS_HUGE);
	m->cap = (uint32_t)size;
	msg_init(m, size);
	return m;
}

static void free_huge(struct sy_engine *eng, struct sy_msg *m)
{
	struct sy__huge *h = (struct sy__huge *)m - 1;

	pthread_mutex_lock(&eng->huge_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		eng->huge = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&eng->huge_lock);
	sy__mem_free(eng, h, h->bytes);
}

void sy__huge_destroy(struct sy_engine *eng)
{
	while (eng->huge) {
		struct sy__huge *h = eng->huge;

		eng->huge = h->next;
		sy__mem_free(eng, h, h->bytes);
	}
}

/* Open @p g, a group off the owner's list, as class @p k's: its leader
 * lists itself last. */
static inline void group_open(struct sy__pool *p, unsigned k, struct sy_msg *g)
{
	struct sy_msg **list = sy__group(g);

	p->free[k] = g->next;
	if (sy__unlikely(sy__home_class(g->home) != k)) {
		/* A burst descriptor listing its messages. */
		struct sy__burst *b = (struct sy__burst *)g->data;

		p->desc[k] = g;
		p->at[k] = (struct sy_msg **)b->msgs;
		p->end[k] = p->at[k] + b->n;
		return;
	}
	list[g->tag] = g;
	p->at[k] = list;
	p->end[k] = list + g->tag + 1;
}

/* Class @p k's open group, led by a burst descriptor, is handed out: free
 * the descriptor, most likely into this pool's own groups. */
static inline void group_close_desc(struct sy__pool *p, unsigned k)
{
	struct sy_msg *desc = p->desc[k];

	p->desc[k] = NULL;
	if (sy__likely(sy__home_pool(desc->home) == p))
		sy__groups_push(&p->free[sy__home_class(desc->home)], NULL,
				desc);
	else
		sy__msg_release(sy__container_of(p, struct sy__slot, pool),
				desc);
}

bool sy__prefetchw;
static pthread_once_t prefetchw_once = PTHREAD_ONCE_INIT;

static void prefetchw_probe(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d;

	/* CPUID 0x80000001: ECX bit 8, PREFETCHW. */
	sy__prefetchw = __get_cpuid(0x80000001u, &a, &b, &c, &d) &&
			(c & (1u << 8));
#endif
}

void sy__prefetchw_init(void)
{
	pthread_once(&prefetchw_once, prefetchw_probe);
}

/*
 * Ask for the line at @p p to write it: PREFETCHW, which takes the line
 * from the core that holds it, where the CPU has it (sy__prefetchw; the
 * compiler's prefetch for writing is a plain one unless built for such a
 * CPU only), a plain prefetch elsewhere. @p w: sy__prefetchw, as the caller
 * read it for a run of them.
 */
static inline void prefetch_write(const void *p, bool w)
{
#if defined(__x86_64__) || defined(__i386__)
	if (w) {
		/* The address in a register: nothing here reads *p. */
		__asm__ volatile("prefetchw (%0)" : : "r"(p));
		return;
	}
#endif
	(void)w;
	__builtin_prefetch(p, 1);
}

/*
 * Ask for the first line of each message of the group whose list is
 * @p list, all at once: the whole list, SY_GROUP_MAX + 1 entries, a loop
 * the compiler unrolls. A short group's last entries are stale, and a
 * prefetch of any address is harmless.
 */
static inline void group_prefetch(struct sy_msg *const *list)
{
	const bool w = sy__prefetchw;

	for (unsigned i = 0; i <= SY_GROUP_MAX; i++)
		prefetch_write(list[i], w);
}

/*
 * Ask for the lines of @p lead, the leader of the group that opens next,
 * that its opening reads: its link and home, and its list. Opening it
 * then waits for neither, where it would wait for the link and then for
 * the list, each last written by the worker that freed the group. NULL
 * (no next group yet) needs no test: a prefetch of any address is
 * harmless.
 */
static inline void leader_prefetch(const struct sy_msg *lead)
{
	const bool w = sy__prefetchw;

	prefetch_write(lead, w);
	prefetch_write((const char *)lead + SY_CACHELINE, w);
	prefetch_write((const char *)lead + 2 * SY_CACHELINE, w);
}

/*
 * Class @p k's open group is handed out: open the next one (the owner's,
 * else the remote stack's, else a new slab's) and hand out its first
 * message. NULL: no memory.
 */
static __attribute__((noinline)) struct sy_msg *pool_refill(struct sy__pool *p,
							     unsigned k)
{
	struct sy_msg *g;

	if (p->desc[k])
		group_close_desc(p, k);
	g = p->free[k];
	/* Acquire pairs with the release in push_chain(): the groups' links
	 * and lists are visible. */
	if (!g)
		g = atomic_exchange_explicit(&p->remote[k], NULL,
					     memory_order_acquire);
	if (!g && !(g = pool_grow(p, k)))
		return NULL;
	group_open(p, k, g);
	group_prefetch(p->at[k]);
	leader_prefetch(p->free[k]);
	return *p->at[k]++;
}

/* The next message of class @p k, from the open group or the next one. */
static inline struct sy_msg *pool_take(struct sy__pool *p, unsigned k)
{
	struct sy_msg **at = p->at[k];

	if (sy__likely(at != p->end[k])) {
		p->at[k] = at + 1;
		return *at;
	}
	return pool_refill(p, k);
}

struct sy_msg *sy__msg_alloc(struct sy__slot *s, size_t size)
{
	unsigned k = class_of(size);
	struct sy_msg *m;

	if (sy__unlikely(k == SY_CLASS_HUGE))
		return alloc_huge(s, size);
	m = pool_take(&s->pool, k);
	if (sy__unlikely(!m))
		return NULL;
	msg_init(m, size);
	return m;
}

static __attribute__((noinline)) struct sy_msg *
alloc_slow(struct sy_engine *eng, size_t size, const char *call)
{
	int err = 0;
	struct sy__slot *s;
	struct sy_msg *m;

	if (!eng) {
		sy__null(call, "eng");
		return NULL;
	}
	if (size > SY_MSG_MAX_SIZE) {
		sy__fail(-EMSGSIZE, "message size %zu above %u", size,
			 SY_MSG_MAX_SIZE);
		return sy__failed_null(call, -EMSGSIZE);
	}
	/* Workers draining during a stop still allocate; after it, nobody. */
	if (atomic_load_explicit(&eng->state, memory_order_relaxed) ==
	    SY_ENGINE_STOPPED) {
		sy__fail(-ESHUTDOWN, "the engine is stopped");
		return sy__failed_null(call, -ESHUTDOWN);
	}
	s = sy__slot_get(eng, &err);
	if (!s)
		return sy__failed_null(call, err);
	m = sy__msg_alloc(s, size);
	if (!m) {
		sy__fail(-ENOMEM, "no memory for a message of %zu bytes", size);
		return sy__failed_null(call, -ENOMEM);
	}
	return m;
}

/* sy_msg_alloc()'s common case, but the open group is handed out. */
static __attribute__((noinline)) struct sy_msg *
alloc_refill(sy_engine *eng, struct sy__pool *p, size_t size)
{
	struct sy_msg *m = pool_refill(p, 0);

	if (sy__unlikely(!m))
		return alloc_slow(eng, size, "sy_msg_alloc");
	msg_init(m, size);
	return m;
}

SY_API sy_msg *sy_msg_alloc(sy_engine *eng, size_t size)
{
	/* The common case: an attached thread, the smallest class, an engine
	 * not stopped (one compare for both: alloc_fast), and a message left
	 * in the thread's open group. */
	if (sy__likely(sy__tls_hot.eng == eng &&
		       size < atomic_load_explicit(&eng->alloc_fast,
						   memory_order_relaxed))) {
		struct sy__pool *p = &sy__tls_hot.slot->pool;
		struct sy_msg **at = p->at[0];

		if (sy__likely(at != p->end[0])) {
			struct sy_msg *m = *at;

			p->at[0] = at + 1;
			msg_init(m, size);
			return m;
		}
		return alloc_refill(eng, p, size);
	}
	return alloc_slow(eng, size, __func__);
}

/*
 * sy_msg_alloc_burst() past its fast path (a check failed, the size is
 * above the smallest class, or the thread's free list ran out after @p have
 * messages): the first of the rest through sy_msg_alloc()'s checks and
 * attachment, the others from the calling thread's pool directly. All or
 * none: on a failure, what was taken goes back.
 */
static __attribute__((noinline)) int
alloc_burst_slow(sy_engine *eng, size_t size, sy_msg **msgs, unsigned n,
		 unsigned have)
{
	const char *call = "sy_msg_alloc_burst";
	struct sy__slot *s = NULL;
	unsigned i = have;
	int err = -ENOMEM;

	if ((msgs[i] = alloc_slow(eng, size, call)) != NULL) {
		s = sy__slot_self(eng); /* attached by alloc_slow() */
		for (i++; i < n; i++) {
			msgs[i] = sy__msg_alloc(s, size);
			if (sy__unlikely(!msgs[i])) {
				sy__fail(-ENOMEM, "no memory for a message of %zu bytes",
					 size);
				break;
			}
		}
		if (i == n)
			return (int)n;
	} else {
		err = sy_last_error_code();
	}
	while (i-- > 0)
		sy_msg_free(msgs[i]);
	return sy__failed(call, err);
}

/*
 * Hand out messages of class 0 as allocations into *@p out, up to @p end:
 * the open group's, then those of the owner's next groups, opened here.
 * Stops early when the owner's groups run out. No prefetch of the
 * messages: the walk knows every address from the lists, so no line it
 * asks for waits for another. The next group's leader is asked for as
 * each group opens: its link says where the walk goes next.
 */
static inline void take_groups(struct sy__pool *p, sy_msg ***out, sy_msg **end,
			       size_t size)
{
	struct sy_msg **at = p->at[0], **last = p->end[0];
	sy_msg **o = *out;

	for (;;) {
		size_t k = (size_t)(last - at) < (size_t)(end - o) ?
			   (size_t)(last - at) : (size_t)(end - o);

		for (size_t i = 0; i < k; i++) {
			o[i] = at[i];
			msg_init(at[i], size);
		}
		at += k;
		o += k;
		if (o == end)
			break;
		if (sy__unlikely(p->desc[0] != NULL))
			group_close_desc(p, 0);
		if (!p->free[0])
			break;
		group_open(p, 0, p->free[0]);
		leader_prefetch(p->free[0]);
		at = p->at[0];
		last = p->end[0];
	}
	p->at[0] = at;
	*out = o;
}

/*
 * sy_msg_alloc_burst()'s fast path ran out of groups after @p have
 * messages: the rest from the ones handed back to the calling thread's
 * pool, or a slab, else through alloc_burst_slow().
 */
static __attribute__((noinline)) int
alloc_burst_refill(sy_engine *eng, size_t size, sy_msg **msgs, unsigned n,
		   unsigned have)
{
	struct sy__pool *p = &sy__tls_hot.slot->pool;
	sy_msg **out = msgs + have, **end = msgs + n;
	struct sy_msg *m;

	while (out != end) {
		if (!(m = pool_refill(p, 0)))
			return alloc_burst_slow(eng, size, msgs, n,
						(unsigned)(out - msgs));
		msg_init(m, size);
		*out++ = m;
		take_groups(p, &out, end, size);
	}
	return (int)n;
}

SY_API int sy_msg_alloc_burst(sy_engine *eng, size_t size, sy_msg **msgs,
			      unsigned n)
{
	SY__NONNULL(eng);
	if (n == 0)
		return 0;
	SY__NONNULL(msgs);
	if (sy__unlikely(n > INT_MAX)) {
		sy__fail(-EINVAL, "burst of %u messages above INT_MAX", n);
		return sy__failed(__func__, -EINVAL);
	}
	/* sy_msg_alloc()'s fast path, once for the burst: the groups' lists
	 * are walked, and the cursor written back once. It makes no call but
	 * a tail call when the groups run out, so it keeps no register across
	 * one. */
	if (sy__likely(sy__tls_hot.eng == eng &&
		       size < atomic_load_explicit(&eng->alloc_fast,
						   memory_order_relaxed))) {
		sy_msg **out = msgs, **end = msgs + n;

		take_groups(&sy__tls_hot.slot->pool, &out, end, size);
		if (sy__likely(out == end))
			return (int)n;
		return alloc_burst_refill(eng, size, msgs, n,
					  (unsigned)(out - msgs));
	}
	return alloc_burst_slow(eng, size, msgs, n, 0);
}

static void push_chain(struct sy__pool *p, unsigned k, struct sy_msg *head,
		       struct sy_msg *tail)
{
	struct sy_msg *old = atomic_load_explicit(&p->remote[k],
						  memory_order_relaxed);

	/* Release pairs with the owner's acquire exchange in pool_refill(). */
	do {
		tail->next = old;
	} while (!atomic_compare_exchange_weak_explicit(&p->remote[k], &old,
							head,
							memory_order_release,
							memory_order_relaxed));
}

/* The chain @p self keeps for pool @p p (of its engine) and class @p k,
 * listed as dirty. */
static struct sy__chain *pending_of(struct sy__slot *self,
				    const struct sy__pool *p, unsigned k)
{
	uint32_t idx = p->slot * SY_CLASSES + k;
	struct sy__chain *c = &self->pending[idx];

	if (!c->listed) {
		c->listed = true;
		self->dirty[self->ndirty++] = idx;
	}
	return c;
}

/* @p c holds @p n more messages for pool @p p, class @p k: push it once
 * it holds a return's worth. */
static void pending_added(struct sy__chain *c, struct sy__pool *p, unsigned k,
			  uint32_t n)
{
	c->n += n;
	if (c->n >= SY_RETURN_BATCH) {
		push_chain(p, k, c->head, c->tail);
		c->head = NULL;
		c->n = 0;
	}
}

void sy__msg_release(struct sy__slot *self, struct sy_msg *m)
{
	struct sy__pool *p = sy__home_pool(m->home);
	unsigned k = sy__home_class(m->home);
	struct sy__chain *c;

	if (sy__unlikely(k == SY_CLASS_HUGE)) {
		free_huge(p->eng, m);
		return;
	}
	if (self && &self->pool == p) {
		sy__groups_push(&p->free[k], NULL, m);
		return;
	}
	if (!self || sy__unlikely(p->eng != self->pool.eng)) {
		m->tag = 0; /* a group of its own */
		push_chain(p, k, m, m);
		return;
	}
	c = pending_of(self, p, k);
	sy__groups_push(&c->head, &c->tail, m);
	pending_added(c, p, k, 1);
}

void sy__release_batch_switch(struct sy__slot *self,
			      struct sy__release_batch *b, struct sy_msg *m)
{
	sy__release_batch_flush(self, b);
	if (sy__home_class(m->home) == SY_CLASS_HUGE) {
		sy__msg_release(self, m);
		return;
	}
	m->tag = 0;
	m->next = NULL;
	b->home = m->home;
	b->head = b->tail = m;
}

void sy__release_batch_flush(struct sy__slot *self, struct sy__release_batch *b)
{
	struct sy__pool *p = sy__home_pool(b->home);
	unsigned k = sy__home_class(b->home);
	struct sy_msg *head = b->head, *tail = b->tail;
	struct sy__chain *c;
	uint32_t n = 0;

	if (!b->home)
		return;
	b->home = 0;
	b->head = b->tail = NULL;
	if (p == &self->pool) {
		tail->next = p->free[k];
		p->free[k] = head;
		return;
	}
	if (sy__unlikely(p->eng != self->pool.eng)) {
		push_chain(p, k, head, tail);
		return;
	}
	c = pending_of(self, p, k);
	if (head == tail && c->head) {
		/* One group, most likely short (a drain of a few): its
		 * messages fill the chain's first group instead. */
		struct sy_msg **list = sy__group(head);

		n = (uint32_t)head->tag + 1;
		for (uint32_t i = 0; i + 1 < n; i++)
			sy__groups_push(&c->head, &c->tail, list[i]);
		sy__groups_push(&c->head, &c->tail, head);
	} else {
		for (struct sy_msg *g = head; g; g = g->next)
			n += (uint32_t)g->tag + 1;
		tail->next = c->head;
		if (!c->head)
			c->tail = tail;
		c->head = head;
	}
	pending_added(c, p, k, n);
}

void sy__release_whole(struct sy__slot *self, struct sy_msg *desc,
		       uintptr_t home)
{
	struct sy__pool *p = sy__home_pool(home);
	unsigned k = sy__home_class(home);
	struct sy__chain *c;

	desc->tag = SY_GROUP_MAX; /* full: a release adds nothing to it */
	if (p == &self->pool) {
		desc->next = p->free[k];
		p->free[k] = desc;
		return;
	}
	if (sy__unlikely(p->eng != self->pool.eng)) {
		push_chain(p, k, desc, desc);
		return;
	}
	c = pending_of(self, p, k);
	desc->next = c->head;
	if (!c->head)
		c->tail = desc;
	c->head = desc;
	pending_added(c, p, k, ((struct sy__burst *)desc->data)->n);
}

void sy__pending_flush(struct sy__slot *self)
{
	struct sy_engine *eng = self->pool.eng;

	for (unsigned i = 0; i < self->ndirty; i++) {
		uint32_t idx = self->dirty[i];
		struct sy__chain *c = &self->pending[idx];

		if (c->head)
			push_chain(&eng->slots[idx / SY_CLASSES].pool,
				   idx % SY_CLASSES, c->head, c->tail);
		c->head = NULL;
		c->n = 0;
		c->listed = false;
	}
	self->ndirty = 0;
}

void sy__pool_destroy(struct sy_engine *eng, struct sy__pool *p)
{
	void *slab = p->slabs;

	while (slab) {
		void *next = ((void **)slab)[0];

		sy__mem_free(eng, slab, ((size_t *)slab)[1]);
		slab = next;
	}
	p->slabs = NULL;
}

SY_API void sy_msg_free(sy_msg *msg)
{
	if (!msg)
		return;
	if (msg->held) {
		sy__msg_refuse(__func__);
		return;
	}
	msg->held = 1;
	sy__msg_release(sy__slot_self(sy__home_pool(msg->home)->eng), msg);
}
