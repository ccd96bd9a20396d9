/*
 * The dead letter queue.
 *
 * Design. A circular array of entries, oldest first, under one mutex. Only
 * failure paths (a worker or sender dead-lettering a message) and the admin
 * functions take it; the send and handler fast paths never do. Each entry
 * owns its message and a copy of what the admin functions report about it.
 * The array starts small and doubles up to max_dead_letters; when it holds
 * max_dead_letters entries, a new one evicts the oldest, whose message is
 * freed and counted.
 *
 * Invariants (under the lock):
 *  1. Entries are in increasing id order, oldest at `head`; ids are never
 *     reused.
 *  2. For every reason r: admitted[r] - evicted[r] messages ended here (the
 *     queue may no longer hold them: drained, purged or replayed ones still
 *     count, since their send ended in the queue; a replay is a new send).
 *  3. A message taken out by replay or drain belongs to the thread that took
 *     it until it is sent, put back or handed over; nothing else can evict
 *     or free it meanwhile.
 *
 * Callbacks (sy_dlq_drain()) and sends (sy_dlq_replay()) run without the
 * lock held; they see each entry that was in the queue when they started at
 * most once, so a message that is dead-lettered again while it is replayed
 * waits for the next call.
 *
 * With a durable store set (sy__dlq_copy_to()), each dead letter is also
 * copied, under the same lock and in id order, onto a list the store takes
 * whole (dlq.h). The copy is allocated before the lock is taken; `wake` is
 * read and woken under the lock, so the store can stop (NULL) and go away
 * once it has taken the lock after that.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dlq.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/msg.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "core/slot.h"
#include "core/worker.h"
#include "metrics/shard.h"
#include "queues/park.h"

#define INITIAL_SIZE 64u

struct dl_entry {
	struct sy_msg *m;
	struct sy_dead_letter dl;
};

struct sy__dlq {
	pthread_mutex_t lock;
	struct dl_entry *ring;         /* [size] */
	unsigned size;                 /* slots allocated, <= cap */
	unsigned cap;                  /* max_dead_letters */
	unsigned head;                 /* the oldest entry */
	unsigned n;                    /* entries held */
	uint64_t next_id;
	uint64_t admitted[SY_DL_REASONS];
	uint64_t evicted[SY_DL_REASONS];
	uint64_t replayed;
	/* The durable store's copies (under lock, but for the hints). */
	_Atomic(struct sy__parker *) wake;  /* NULL: no store */
	struct sy__dl_copy *copies, **copies_tail;
	_Atomic bool copies_waiting;
	_Atomic uint64_t copies_lost;
};

/* ---- the array (all under q->lock) ---- */

/* The @p i-th oldest entry. */
static inline struct dl_entry *at(struct sy__dlq *q, unsigned i)
{
	return &q->ring[(q->head + i) % q->size];
}

/* Double the array (up to cap), oldest first at 0. False: no memory. */
static bool grow(struct sy__dlq *q)
{
	unsigned size = q->size * 2 < q->cap ? q->size * 2 : q->cap;
	struct dl_entry *ring = malloc(size * sizeof(*ring));

	if (!ring)
		return false;
	for (unsigned i = 0; i < q->n; i++)
		ring[i] = *at(q, i);
	free(q->ring);
	q->ring = ring;
	q->size = size;
	q->head = 0;
	return true;
}

/* Remove the oldest entry, counted as evicted; its message is returned for
 * the caller to free once the lock is dropped. */
static struct sy_msg *evict_oldest(struct sy__dlq *q)
{
	struct dl_entry *e = at(q, 0);

	q->evicted[e->dl.reason]++;
	q->head = (q->head + 1) % q->size;
	q->n--;
	return e->m;
}

/* Make room for one more entry: grow, else evict. The evicted message or
 * NULL. */
static struct sy_msg *make_room(struct sy__dlq *q)
{
	if (q->n < q->size || (q->size < q->cap && grow(q)))
		return NULL;
	return evict_oldest(q);
}

/* Remove the @p i-th oldest entry, moving the shorter side up. */
static void remove_at(struct sy__dlq *q, unsigned i)
{
	if (i < q->n / 2) {
		for (unsigned j = i; j > 0; j--)
			*at(q, j) = *at(q, j - 1);
		q->head = (q->head + 1) % q->size;
	} else {
		for (unsigned j = i; j + 1 < q->n; j++)
			*at(q, j) = *at(q, j + 1);
	}
	q->n--;
}

/* Put @p e back in id order (a replay whose send was refused). Returns a
 * message evicted to make room, or NULL. */
static struct sy_msg *put_back(struct sy__dlq *q, const struct dl_entry *e)
{
	struct sy_msg *victim = make_room(q);
	unsigned p = q->n;

	while (p > 0 && at(q, p - 1)->dl.id > e->dl.id)
		p--;
	for (unsigned j = q->n; j > p; j--)
		*at(q, j) = *at(q, j - 1);
	*at(q, p) = *e;
	q->n++;
	return victim;
}

/* ---- filters ---- */

int sy__dl_filter_check(const struct sy_dl_filter *f)
{
	if (!f)
		return 0;
	if (f->reasons >> SY_DL_REASONS)
		return sy__fail(-EINVAL, "dead letter filter: reasons 0x%x has bits for no reason",
				f->reasons);
	if (f->until_ns && f->since_ns > f->until_ns)
		return sy__fail(-EINVAL, "dead letter filter: since_ns is after until_ns");
	return 0;
}

bool sy__dl_matches(const struct sy_dl_filter *f, const struct sy_dead_letter *d)
{
	if (!f)
		return true;
	if (f->reasons && !(f->reasons & (1u << d->reason)))
		return false;
	if (f->route != SY_ANY && f->route != d->route)
		return false;
	if (f->server != SY_ANY && f->server != d->server)
		return false;
	return d->last_ns >= f->since_ns && (!f->until_ns || d->last_ns <= f->until_ns);
}

/*
 * Take the oldest matching entry whose id is below @p bound (it was there
 * when the caller started) out of the queue into *@p out. False: none.
 */
static bool take_next(struct sy__dlq *q, const struct sy_dl_filter *f,
		      uint64_t bound, struct dl_entry *out)
{
	bool found = false;

	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->n && at(q, i)->dl.id < bound; i++) {
		if (sy__dl_matches(f, &at(q, i)->dl)) {
			*out = *at(q, i);
			remove_at(q, i);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return found;
}

static uint64_t next_id(struct sy__dlq *q)
{
	uint64_t id;

	pthread_mutex_lock(&q->lock);
	id = q->next_id;
	pthread_mutex_unlock(&q->lock);
	return id;
}

/* ---- life cycle ---- */

int sy__dlq_init(struct sy_engine *eng)
{
	struct sy__dlq *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->cap = eng->cfg.max_dead_letters;
	q->size = q->cap < INITIAL_SIZE ? q->cap : INITIAL_SIZE;
	q->ring = malloc(q->size * sizeof(*q->ring));
	if (!q->ring) {
		free(q);
		return -ENOMEM;
	}
	q->next_id = 1;
	q->copies_tail = &q->copies;
	pthread_mutex_init(&q->lock, NULL);
	eng->dlq = q;
	return 0;
}

void sy__dlq_destroy(struct sy_engine *eng)
{
	struct sy__dlq *q = eng->dlq;

	if (!q)
		return;
	/* The messages held go with the engine's pools (sy__pool_destroy,
	 * sy__huge_destroy): freeing them here would depend on the order. */
	while (q->copies) {
		struct sy__dl_copy *c = q->copies;

		q->copies = c->next;
		free(c);
	}
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
	eng->dlq = NULL;
}

/* ---- taking a message in ---- */

/* Count a dead letter in the calling thread's metrics shard. */
static void shard_count(struct sy_engine *eng, struct sy__slot *self,
			uint32_t route, uint32_t server,
			enum sy_dl_reason reason)
{
	struct sy__shard *sh = self ? self->shard : NULL;

	if (!sh)
		return;
	if (route < eng->cfg.max_routes)
		sy__sc_add(&sh->route[route], SY_SC_DL + reason, 1);
	if (server < eng->cfg.max_servers)
		sy__sc_add(&sh->server[server], SY_SC_DL + reason, 1);
}

/* What the admin functions report about @p m. */
static void describe(struct sy_msg *m, enum sy_dl_reason reason,
		     uint32_t server, uint64_t now, struct sy_dead_letter *d)
{
	if (!(m->flags & SY_MSG_DEAD)) {
		m->flags |= SY_MSG_DEAD;
		m->dl_first_ns = now;
	}
	d->reason = reason;
	d->route = m->route_id;
	d->server = server;
	d->attempts = m->attempts;
	d->first_ns = m->dl_first_ns;
	d->last_ns = now;
	d->tag = m->tag;
	d->key = m->key;
	d->size = m->size;
}

/* A copy of dead letter @p d (its id still to come) for the store, or NULL
 * (counted lost). */
static struct sy__dl_copy *copy_of(struct sy_engine *eng,
				   const struct sy_msg *m,
				   const struct sy_dead_letter *d)
{
	struct sy__dl_copy *c = malloc(sizeof(*c) + m->size);
	struct sy__route *r;

	if (!c) {
		atomic_fetch_add_explicit(&eng->dlq->copies_lost, 1,
					  memory_order_relaxed);
		return NULL;
	}
	c->next = NULL;
	c->dl = *d;
	memcpy(c->data, m->data, m->size);
	c->route[0] = c->server[0] = '\0';
	sy__rcu_thread_get();
	sy__read_lock();
	if (d->route < eng->cfg.max_routes &&
	    (r = atomic_load_explicit(&eng->routes[d->route],
				      memory_order_acquire))) /* pairs with R1 */
		snprintf(c->route, sizeof(c->route), "%s", r->name);
	sy__read_unlock();
	sy__rcu_thread_put();
	pthread_mutex_lock(&eng->servers_lock);
	if (d->server < eng->cfg.max_servers && eng->servers[d->server])
		snprintf(c->server, sizeof(c->server), "%s",
			 eng->servers[d->server]->name);
	pthread_mutex_unlock(&eng->servers_lock);
	return c;
}

/* Under q->lock: queue @p c (may be NULL) for the store, if one is set. */
static void copy_queue(struct sy__dlq *q, struct sy__dl_copy *c, uint64_t id)
{
	struct sy__parker *wake = atomic_load_explicit(&q->wake,
						       memory_order_relaxed);

	if (!c)
		return;
	if (!wake) {
		free(c);
		return;
	}
	c->dl.id = id;
	*q->copies_tail = c;
	q->copies_tail = &c->next;
	atomic_store_explicit(&q->copies_waiting, true, memory_order_relaxed);
	sy__wake(wake);
}

void sy__dead_letter(struct sy_engine *eng, struct sy__slot *self,
		     struct sy_msg *m, enum sy_dl_reason reason,
		     uint32_t server)
{
	struct sy__dlq *q = eng->dlq;
	struct dl_entry e = { .m = m };
	struct sy__dl_copy *copy = NULL;
	struct sy_msg *victim;

	assert(reason < SY_DL_REASONS);
	m->held = 1;
	describe(m, reason, server, sy__now(eng), &e.dl);
	shard_count(eng, self, e.dl.route, server, reason);
	if (atomic_load_explicit(&q->wake, memory_order_relaxed))
		copy = copy_of(eng, m, &e.dl);
	pthread_mutex_lock(&q->lock);
	victim = make_room(q);
	e.dl.id = q->next_id++;
	*at(q, q->n) = e;
	q->n++;
	q->admitted[reason]++;
	copy_queue(q, copy, e.dl.id);
	pthread_mutex_unlock(&q->lock);
	if (victim)
		sy__msg_release(self, victim);
}

void sy__dlq_accounting(struct sy_engine *eng, struct sy_accounting *out)
{
	struct sy__dlq *q = eng->dlq;

	pthread_mutex_lock(&q->lock);
	out->dead_lettered = 0;
	out->evicted = 0;
	for (unsigned r = 0; r < SY_DL_REASONS; r++) {
		out->dead_lettered_by[r] = q->admitted[r] - q->evicted[r];
		out->dead_lettered += out->dead_lettered_by[r];
		out->evicted += q->evicted[r];
	}
	out->dlq_held = q->n;
	out->replayed = q->replayed;
	pthread_mutex_unlock(&q->lock);
}

void sy__dlq_copy_to(struct sy_engine *eng, struct sy__parker *wake)
{
	struct sy__dlq *q = eng->dlq;

	pthread_mutex_lock(&q->lock);
	atomic_store_explicit(&q->wake, wake, memory_order_relaxed);
	pthread_mutex_unlock(&q->lock);
}

struct sy__dl_copy *sy__dlq_copies_take(struct sy_engine *eng)
{
	struct sy__dlq *q = eng->dlq;
	struct sy__dl_copy *c;

	if (!atomic_load_explicit(&q->copies_waiting, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&q->lock);
	c = q->copies;
	q->copies = NULL;
	q->copies_tail = &q->copies;
	atomic_store_explicit(&q->copies_waiting, false, memory_order_relaxed);
	pthread_mutex_unlock(&q->lock);
	return c;
}

bool sy__dlq_copies_waiting(struct sy_engine *eng)
{
	return atomic_load_explicit(&eng->dlq->copies_waiting,
				    memory_order_relaxed);
}

uint64_t sy__dlq_copies_lost(struct sy_engine *eng)
{
	return atomic_load_explicit(&eng->dlq->copies_lost,
				    memory_order_relaxed);
}

/* ---- admin functions ---- */

SY_API void sy_dlq_filter_init(struct sy_dl_filter *f)
{
	SY__NONNULL_OR(f, );
	memset(f, 0, sizeof(*f));
	f->route = SY_ANY;
	f->server = SY_ANY;
}

SY_API size_t sy_dlq_count(sy_engine *eng, const struct sy_dl_filter *f)
{
	struct sy__dlq *q;
	size_t n = 0;

	SY__NONNULL_OR(eng, 0);
	if (sy__dl_filter_check(f)) {
		sy__failed(__func__, -EINVAL);
		return 0;
	}
	q = eng->dlq;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->n; i++)
		n += sy__dl_matches(f, &at(q, i)->dl);
	pthread_mutex_unlock(&q->lock);
	return n;
}

SY_API int sy_dlq_list(sy_engine *eng, const struct sy_dl_filter *f,
		       struct sy_dead_letter *out, unsigned max)
{
	struct sy__dlq *q;
	unsigned k = 0;
	int rc;

	SY__NONNULL(eng);
	if (max)
		SY__NONNULL(out);
	if ((rc = sy__dl_filter_check(f)) != 0)
		return sy__ret(__func__, rc);
	if (max > INT_MAX)
		max = INT_MAX;
	q = eng->dlq;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->n && k < max; i++)
		if (sy__dl_matches(f, &at(q, i)->dl))
			out[k++] = at(q, i)->dl;
	pthread_mutex_unlock(&q->lock);
	return (int)k;
}

SY_API long sy_dlq_peek(sy_engine *eng, uint64_t id, void *buf, size_t cap)
{
	struct sy__dlq *q;
	long rc = -ENOENT;

	SY__NONNULL(eng);
	if (cap)
		SY__NONNULL(buf);
	q = eng->dlq;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->n; i++) {
		struct dl_entry *e = at(q, i);

		if (e->dl.id == id) {
			if (cap)
				memcpy(buf, e->m->data,
				       cap < e->m->size ? cap : e->m->size);
			rc = (long)e->m->size;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	if (rc == -ENOENT)
		sy__fail(-ENOENT, "no dead letter with id %" PRIu64
			 " is held", id);
	return sy__ret(__func__, rc);
}

/* The replay pace: sleep until @p *next (CLOCK_MONOTONIC), then step it. */
static void pace(struct timespec *next, long step_ns)
{
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
	next->tv_nsec += step_ns;
	while (next->tv_nsec >= 1000000000l) {
		next->tv_nsec -= 1000000000l;
		next->tv_sec++;
	}
}

/* A replay's send was refused: the entry goes back where it was. */
static void replay_refused(struct sy_engine *eng, const struct dl_entry *e)
{
	struct sy__dlq *q = eng->dlq;
	struct sy_msg *victim;

	pthread_mutex_lock(&q->lock);
	victim = put_back(q, e);
	pthread_mutex_unlock(&q->lock);
	if (victim)
		sy__msg_release(sy__slot_self(eng), victim);
}

SY_API int sy_dlq_replay(sy_engine *eng, const struct sy_dl_filter *f,
			 unsigned max, unsigned per_second)
{
	long step_ns = per_second ? (long)(1000000000ull / per_second) : 0;
	struct timespec next;
	struct dl_entry e;
	uint64_t bound;
	int rc, k = 0;

	SY__NONNULL(eng);
	if ((rc = sy__dl_filter_check(f)) != 0)
		return sy__ret(__func__, rc);
	if (sy__worker_self())
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a worker thread"));
	bound = next_id(eng->dlq);
	clock_gettime(CLOCK_MONOTONIC, &next);
	while ((!max || (unsigned)k < max) && k < INT_MAX &&
	       take_next(eng->dlq, f, bound, &e)) {
		if (step_ns)
			pace(&next, step_ns);
		e.m->attempts = 0;
		e.m->held = 0; /* the replay sends it as its caller */
		if (sy_msg_send(eng, e.dl.route, e.m) != 0) {
			e.m->held = 1;
			replay_refused(eng, &e);
			break;
		}
		pthread_mutex_lock(&eng->dlq->lock);
		eng->dlq->replayed++;
		pthread_mutex_unlock(&eng->dlq->lock);
		k++;
	}
	return k;
}

SY_API int sy_dlq_drain(sy_engine *eng, const struct sy_dl_filter *f,
			sy_dlq_fn fn, void *ctx)
{
	struct dl_entry e;
	uint64_t bound;
	int rc, k = 0;

	SY__NONNULL(eng);
	SY__NONNULL(fn);
	if ((rc = sy__dl_filter_check(f)) != 0)
		return sy__ret(__func__, rc);
	bound = next_id(eng->dlq);
	while (k < INT_MAX && take_next(eng->dlq, f, bound, &e)) {
		e.m->held = 0; /* fn's now */
		fn(eng, &e.dl, e.m, ctx);
		k++;
	}
	return k;
}

/* The names of 0.1.0 (include/switchyard.h), the same functions. */
SY__ALIAS(sy_dl_filter_init, sy_dlq_filter_init);

SY_API int sy_dlq_purge(sy_engine *eng, const struct sy_dl_filter *f)
{
	struct sy_msg *freed = NULL;
	struct sy__dlq *q;
	unsigned kept = 0;
	int rc, k = 0;

	SY__NONNULL(eng);
	if ((rc = sy__dl_filter_check(f)) != 0)
		return sy__ret(__func__, rc);
	q = eng->dlq;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->n; i++) {
		struct dl_entry *e = at(q, i);

		if (sy__dl_matches(f, &e->dl)) {
			e->m->next = freed;
			freed = e->m;
			k++;
		} else {
			*at(q, kept++) = *e;
		}
	}
	q->n = kept;
	pthread_mutex_unlock(&q->lock);
	while (freed) {
		struct sy_msg *m = freed;

		freed = m->next;
		sy__msg_release(sy__slot_self(eng), m);
	}
	return k;
}
