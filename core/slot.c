/*
 * Slots and the threads attached to them.
 *
 * A thread finds its slot for an engine through thread-local state: a
 * one-entry cache for the engine it used last, then a small table. Attaching
 * takes eng->slot_lock; the mutex hands a slot (its rings' producer side, its
 * pool, its counters) from one thread to the next with a happens-before edge.
 *
 * A thread attached lazily (by its first send) is detached by a thread-exit
 * destructor. The destructor checks, under live_lock, that the engine still
 * exists: an engine destroyed first has already reclaimed the slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "core/reply.h"
#include "core/hedge.h"
#include "core/slot.h"
#include "core/worker.h"
#include "core/wrap.h"
#include "metrics/shard.h"

#define SY_TLS_ENGINES 8

struct tls_entry {
	struct sy_engine *eng;
	uint64_t uid;
	struct sy__slot *slot;
	int refs;               /* explicit attaches; 0 for a lazy attach */
};

struct tls_state {
	unsigned rcu_refs;
	bool exit_hook;
	bool reader;            /* registered by sy__rcu_reader_ensure() */
	struct tls_entry e[SY_TLS_ENGINES];
};

static __thread struct tls_state tls __attribute__((tls_model("initial-exec")));
__thread struct sy__tls_hot sy__tls_hot __attribute__((tls_model("initial-exec"))) = {
	.eng = SY__NO_ENGINE,
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sy_engine *live[64];
static uint64_t live_uid[64];
static uint64_t next_uid = 1;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg);

static void make_exit_key(void)
{
	if (pthread_key_create(&exit_key, thread_exit) != 0)
		abort();
}

void sy__rcu_thread_get(void)
{
	if (tls.rcu_refs++ == 0)
		urcu_memb_register_thread();
}

void sy__rcu_thread_put(void)
{
	if (--tls.rcu_refs == 0)
		urcu_memb_unregister_thread();
}

int sy__engine_remember(struct sy_engine *eng)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&live_lock);
	for (unsigned i = 0; i < 64; i++) {
		if (!live[i]) {
			live[i] = eng;
			live_uid[i] = eng->uid = next_uid++;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	return rc;
}

void sy__engine_forget(struct sy_engine *eng)
{
	pthread_mutex_lock(&live_lock);
	for (unsigned i = 0; i < 64; i++)
		if (live[i] == eng)
			live[i] = NULL;
	pthread_mutex_unlock(&live_lock);
	if (sy__tls_hot.eng == eng)
		sy__tls_hot.eng = SY__NO_ENGINE;
	for (unsigned i = 0; i < SY_TLS_ENGINES; i++)
		if (tls.e[i].eng == eng && tls.e[i].uid == eng->uid)
			tls.e[i].eng = NULL;
}

static bool engine_alive(struct sy_engine *eng, uint64_t uid)
{
	for (unsigned i = 0; i < 64; i++)
		if (live[i] == eng && live_uid[i] == uid)
			return true;
	return false;
}

/* The entry for @p eng; NULL: a free entry, if one is left. */
static struct tls_entry *tls_entry_of(struct sy_engine *eng)
{
	for (unsigned i = 0; i < SY_TLS_ENGINES; i++)
		if (tls.e[i].eng == eng)
			return &tls.e[i];
	return NULL;
}

/* The calling thread's entry for engine @p eng (not NULL), if attached. */
static struct tls_entry *tls_find(struct sy_engine *eng)
{
	return eng ? tls_entry_of(eng) : NULL;
}

struct sy__slot *sy__slot_lookup(struct sy_engine *eng)
{
	struct tls_entry *e = tls_find(eng);

	if (!e)
		return NULL;
	sy__tls_hot.eng = eng;
	sy__tls_hot.slot = e->slot;
	return e->slot;
}

static size_t ring_bytes(const struct sy_engine *eng)
{
	return sy__ring_buffer_bytes(eng->cfg.ring_size);
}

static int rings_alloc(struct sy_engine *eng, struct sy__ring **out)
{
	struct sy__ring *r = sy__mem_alloc(eng, eng->nworkers * sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (unsigned w = 0; w < eng->nworkers; w++) {
		void *buf = sy__mem_alloc(eng, ring_bytes(eng));

		if (!buf) {
			while (w-- > 0)
				sy__mem_free(eng, r[w].buf, ring_bytes(eng));
			sy__mem_free(eng, r, eng->nworkers * sizeof(*r));
			return -ENOMEM;
		}
		sy__ring_init(&r[w], buf, eng->cfg.ring_size, sy__wrap_start.ring);
	}
	*out = r;
	return 0;
}

static void rings_free(struct sy_engine *eng, struct sy__ring *r)
{
	if (!r)
		return;
	for (unsigned w = 0; w < eng->nworkers; w++)
		sy__mem_free(eng, r[w].buf, ring_bytes(eng));
	sy__mem_free(eng, r, eng->nworkers * sizeof(*r));
}

unsigned sy__slot_route_lats(const struct sy_engine *eng)
{
	return eng->cfg.max_routes < SY_ROUTE_LATENCY_MAX ?
	       eng->cfg.max_routes : SY_ROUTE_LATENCY_MAX;
}

/* Workers time messages (worker.c), so only their shards keep latencies. */
static struct sy__shard_dims shard_dims(const struct sy_engine *eng,
					const struct sy__slot *s)
{
	return (struct sy__shard_dims){
		.max_servers = eng->cfg.max_servers,
		.max_routes = eng->cfg.max_routes,
		.route_lats = s->is_worker ? sy__slot_route_lats(eng) : 0,
	};
}

/* The slot's metrics shard, from the engine's allocator (zeroed). */
static int shard_create(struct sy_engine *eng, struct sy__slot *s)
{
	struct sy__shard_dims d = shard_dims(eng, s);
	void *mem = sy__mem_alloc(eng, sy__shard_bytes(&d));

	if (!mem)
		return -ENOMEM;
	s->shard = sy__shard_init(mem, &d);
	return 0;
}

int sy__slot_setup(struct sy_engine *eng, struct sy__slot *s)
{
	size_t chains = (size_t)eng->nslots * SY_CLASSES;
	struct sy__ring *out = NULL;

	s->pending = sy__mem_alloc(eng, chains * sizeof(*s->pending));
	s->dirty = sy__mem_alloc(eng, chains * sizeof(*s->dirty));
	s->policy_words = sy__mem_alloc(eng, eng->cfg.max_routes *
					sizeof(*s->policy_words));
	s->hedge_debt = sy__mem_alloc(eng, eng->cfg.max_routes *
				      sizeof(*s->hedge_debt));
	s->congested = sy__mem_alloc(eng, eng->nworkers * sizeof(*s->congested));
	if (!s->pending || !s->dirty || !s->policy_words || !s->hedge_debt ||
	    !s->congested)
		goto out_free;
	for (unsigned w = 0; w < eng->nworkers; w++)
		atomic_init(&s->congested[w], 0u);
	if (eng->cfg.metrics && !s->shard && shard_create(eng, s))
		goto out_free;
	s->sample_every = eng->cfg.metrics ? eng->cfg.latency_sample : 0;
	s->sample_left = s->sample_every;
	if (rings_alloc(eng, &s->replies))
		goto out_free;
	if (rings_alloc(eng, &out))
		goto out_free;
	/* A worker that never sleeps never sets its parker's word: a
	 * sender looks at it all the same, and finds nothing to do. */
	for (unsigned w = 0; w < eng->nworkers; w++)
		out[w].wake = &eng->workers[w].parker;
	s->stash_tail = &s->stash;
	atomic_store_explicit(&s->gen, sy__wrap_start.slot_gen,
			      memory_order_relaxed);
	s->call_seq = sy__wrap_start.call_seq;
	/* Release pairs with the workers' acquire in sy__slot_out(): a
	 * worker that sees the rings sees them initialized. */
	atomic_store_explicit(&s->out, out, memory_order_release);
	/* I1: each worker's list of its rings gets this slot's, published
	 * by the count (release; a worker's spin acquires it). One writer:
	 * slots are set up at create, or under slot_lock. */
	for (unsigned w = 0; w < eng->nworkers; w++) {
		struct sy__worker *wk = &eng->workers[w];
		unsigned k = atomic_load_explicit(&wk->ninbox,
						  memory_order_relaxed);

		wk->inbox[k] = &out[w];
		atomic_store_explicit(&wk->ninbox, k + 1, memory_order_release);
	}
	return 0;

out_free:
	sy__slot_free(eng, s);
	return -ENOMEM;
}

void sy__slot_free(struct sy_engine *eng, struct sy__slot *s)
{
	size_t chains = (size_t)eng->nslots * SY_CLASSES;

	rings_free(eng, atomic_load_explicit(&s->out, memory_order_relaxed));
	rings_free(eng, s->replies);
	sy__mem_free(eng, s->pending, chains * sizeof(*s->pending));
	sy__mem_free(eng, s->dirty, chains * sizeof(*s->dirty));
	sy__mem_free(eng, s->policy_words,
		     eng->cfg.max_routes * sizeof(*s->policy_words));
	sy__mem_free(eng, s->hedge_debt,
		     eng->cfg.max_routes * sizeof(*s->hedge_debt));
	sy__hedge_free(eng, s);
	sy__mem_free(eng, s->congested, eng->nworkers * sizeof(*s->congested));
	if (s->shard) {
		struct sy__shard_dims d = shard_dims(eng, s);

		sy__mem_free(eng, s->shard, sy__shard_bytes(&d));
	}
	s->shard = NULL;
	s->congested = NULL;
	atomic_store_explicit(&s->out, NULL, memory_order_relaxed);
	s->replies = NULL;
	s->pending = NULL;
	s->dirty = NULL;
	s->policy_words = NULL;
	s->hedge_debt = NULL;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void sy__slot_reset_picks(struct sy_engine *eng, struct sy__slot *s)
{
	/* The same seed and slot give the same sequence of random picks. */
	s->rng = splitmix64(eng->cfg.seed ^ ((uint64_t)s->id << 32)) | 1;
	memset(s->policy_words, 0,
	       eng->cfg.max_routes * sizeof(*s->policy_words));
	memset(s->hedge_debt, 0, eng->cfg.max_routes * sizeof(*s->hedge_debt));
}

static void set_exit_hook(void)
{
	if (!tls.exit_hook) {
		pthread_once(&exit_once, make_exit_key);
		pthread_setspecific(exit_key, &tls);
		tls.exit_hook = true;
	}
}

static void tls_add(struct sy_engine *eng, struct tls_entry *e,
		    struct sy__slot *s, int refs)
{
	e->eng = eng;
	e->uid = eng->uid;
	e->slot = s;
	e->refs = refs;
	sy__tls_hot.eng = eng;
	sy__tls_hot.slot = s;
	set_exit_hook();
}

void sy__rcu_reader_ensure(void)
{
	if (tls.reader)
		return;
	sy__rcu_thread_get();
	tls.reader = true;
	set_exit_hook();
}

static int attach(struct sy_engine *eng, int refs, struct sy__slot **out)
{
	struct tls_entry *e = tls_entry_of(NULL);
	struct sy__slot *s = NULL;
	int rc = 0;

	if (!e)
		return sy__fail(-ENOSPC, "thread attached to too many engines (%d)",
				SY_TLS_ENGINES);
	pthread_mutex_lock(&eng->slot_lock);
	if (atomic_load(&eng->state) == SY_ENGINE_STOPPED) {
		rc = sy__fail(-ESHUTDOWN, "engine is stopped");
		goto out_unlock;
	}
	for (unsigned i = eng->nworkers; i < eng->nslots; i++) {
		if (atomic_load_explicit(&eng->slots[i].state,
					 memory_order_relaxed) == SY_SLOT_FREE) {
			s = &eng->slots[i];
			break;
		}
	}
	if (!s) {
		rc = sy__fail(-ENOSPC, "all %u producer slots are attached",
			      eng->cfg.max_producers);
		goto out_unlock;
	}
	if (!sy__slot_out(s) && (rc = sy__slot_setup(eng, s)) != 0) {
		sy__fail(rc, "no memory for a producer slot");
		goto out_unlock;
	}
	sy__slot_reset_picks(eng, s);
	atomic_fetch_add_explicit(&s->gen, 1, memory_order_relaxed);
	atomic_store_explicit(&s->state, SY_SLOT_ATTACHED, memory_order_relaxed);
	if (atomic_load(&eng->slots_used) < s->id + 1)
		atomic_store(&eng->slots_used, s->id + 1);
out_unlock:
	pthread_mutex_unlock(&eng->slot_lock);
	if (rc)
		return rc;
	sy__rcu_thread_get();
	tls_add(eng, e, s, refs);
	*out = s;
	return 0;
}

struct sy__slot *sy__slot_attach_lazy(struct sy_engine *eng, int *err)
{
	struct sy__slot *s = sy__slot_lookup(eng);

	if (s)
		return s;
	if (!eng) {
		*err = sy__fail(-EINVAL, "eng is NULL");
		return NULL;
	}
	*err = attach(eng, 0, &s);
	return *err ? NULL : s;
}

static void detach(struct sy_engine *eng, struct tls_entry *e)
{
	struct sy__slot *s = e->slot;

	for (struct sy_msg *m = s->stash, *next; m; m = next) {
		next = m->next;
		sy__reply_drop(s, m);
	}
	s->stash = NULL;
	s->stash_tail = &s->stash;
	sy__hedge_detach(s);
	sy__pending_flush(s);
	pthread_mutex_lock(&eng->slot_lock);
	/* A new generation: replies still on their way are dropped. */
	atomic_fetch_add_explicit(&s->gen, 1, memory_order_relaxed);
	atomic_store_explicit(&s->state, SY_SLOT_FREE, memory_order_relaxed);
	pthread_mutex_unlock(&eng->slot_lock);
	e->eng = NULL;
	if (sy__tls_hot.eng == eng)
		sy__tls_hot.eng = SY__NO_ENGINE;
	sy__rcu_thread_put();
}

void sy__worker_bind(struct sy__worker *w)
{
	sy__tls_hot.worker = w;
	sy__rcu_thread_get();
	tls_add(w->eng, tls_entry_of(NULL), w->slot, 1);
}

static void thread_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&live_lock);
	for (unsigned i = 0; i < SY_TLS_ENGINES; i++) {
		struct tls_entry *e = &tls.e[i];

		if (e->eng && engine_alive(e->eng, e->uid) && !sy__tls_hot.worker)
			detach(e->eng, e);
	}
	pthread_mutex_unlock(&live_lock);
	while (tls.rcu_refs > 0)
		sy__rcu_thread_put();
	tls.reader = false;
}

SY_API int sy_producer_attach(sy_engine *eng)
{
	struct tls_entry *e;
	struct sy__slot *s;

	SY__NONNULL(eng);
	e = tls_find(eng);
	if (e) {
		e->refs++;
		return 0;
	}
	return sy__ret(__func__, attach(eng, 1, &s));
}

SY_API int sy_producer_detach(sy_engine *eng)
{
	struct tls_entry *e;

	SY__NONNULL(eng);
	e = tls_find(eng);
	if (!e || sy__tls_hot.worker)
		return sy__failed(__func__, sy__fail(-ENOENT, "the calling thread "
				"is not attached to this engine"));
	if (--e->refs > 0)
		return 0;
	detach(eng, e);
	return 0;
}

void sy__worker_unbind(struct sy__worker *w)
{
	struct tls_entry *e = tls_find(w->eng);

	if (e)
		e->eng = NULL;
	sy__tls_hot.eng = SY__NO_ENGINE;
	sy__tls_hot.worker = NULL;
	sy__rcu_thread_put();
}
