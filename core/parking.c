/*
 * Poison-key parking.
 *
 * Where it happens. A message with a key that always fails (a "poison"
 * message) blocks nothing by itself, but on a route that keeps order per
 * key, every later message with that key fails the same way, and a retry
 * storm or a dead letter queue full of them follows. Parking holds the
 * key's messages instead, in order, until an operator has fixed what made
 * them fail and releases them.
 *
 * The hold is on the worker, not at the sender's pick. Order per key is
 * order per (producer, server): the hash policy sends every message of a
 * key to one server, and each producer's ring to that server's worker
 * keeps them in the order sent. When a key is parked some of its messages
 * are already in those rings; a sender that held the next ones itself
 * would put them ahead of those. The worker sees every message of the key
 * in ring order, so the messages it holds, and the ones it runs after a
 * release, keep exactly the order they would have run in.
 *
 * How. A route with park_after gives its messages SY_MSG_INFLIGHT, which
 * sends them to the worker's slow path (run_msgs() in worker.c); there
 * sy__parking_admit() looks the key up when any key is parked. A failure
 * for good (give_up() in worker.c: no retry left) counts against the key;
 * park_after of them in a row park it, a success in between ends the run.
 * A held message keeps counting in its server's in-flight count, and goes
 * to the server its key was parked on: a retry of the key that the policy
 * sent elsewhere is held, and later run, with the others.
 *
 * Release takes the oldest held message out of the queue and puts it on
 * the caller's own ring to the server's worker, as the key's "token". The
 * key stays parked: messages that reach the worker meanwhile are held
 * behind the others. When the worker takes the token, it unparks the key,
 * takes the rest of the queue and runs the token, then the rest, in order,
 * before it returns to its rings: nothing newer with that key can run
 * before them. Each of them goes through the check again, so a key that
 * fails park_after times in a row again is parked again, and the rest of
 * the queue is held again, still in order.
 *
 * Every held message ends exactly once: run after a release, dead-lettered
 * with SY_DL_PARKED (its queue full, a purge, its route or server removed)
 * or, at stop, once the workers have drained (a token in flight has run by
 * then), with SY_DL_SHUTDOWN. Until then it counts as in flight.
 *
 * Threads and cost. One table per engine, under one mutex: workers take it
 * when a key of a parking route is parked (every message of such a route
 * then), or failed last time (every success then), and on failures for
 * good; the admin functions take it too. Each kind of check starts with a
 * relaxed load of a count, so a route with nothing parked or failing pays
 * that load and nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/dlq.h"
#include "core/error.h"
#include "core/msg.h"
#include "core/parking.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/worker.h"
#include "queues/ring.h"

#define PARK_BUCKETS 256u      /* chains of keys, a power of two */
#define PARK_TRACK_MAX 4096u   /* keys with failures counted, not parked */

/* A key that failed last time, or is parked. */
struct park_key {
	struct park_key *next;      /* its bucket's chain */
	uint64_t key;
	uint32_t route;
	unsigned fails;             /* failures in a row */
	bool parked;
	/* Parked: */
	uint16_t pick;              /* server's index in the route */
	struct sy__server *server;  /* where its held messages run */
	unsigned capacity;          /* messages it may hold */
	unsigned held;              /* in the queue, and the token */
	uint64_t since_ns;
	uint64_t dead;              /* dead-lettered, its queue full */
	struct sy_msg *head, *tail; /* held, oldest first (msg->next) */
	struct sy_msg *token;       /* released, on its way to the worker */
};

struct sy__parking {
	pthread_mutex_t lock;
	_Atomic unsigned nkeys;     /* entries */
	_Atomic unsigned nparked;   /* of them, parked */
	unsigned ntracked;          /* nkeys - nparked, under lock */
	struct park_key *bucket[PARK_BUCKETS];
};

int sy__parking_enable(struct sy_engine *eng)
{
	struct sy__parking *t;

	if (sy__parking_of(eng))
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return sy__fail(-ENOMEM, "no memory for the parking table");
	pthread_mutex_init(&t->lock, NULL);
	/* Pairs with the acquire in sy__parking_of(). */
	atomic_store_explicit(&eng->parking, t, memory_order_release);
	return 0;
}

/* Where (route, key) is, or would be linked, in its chain. Under lock. */
static struct park_key **find(struct sy__parking *t, uint32_t route,
			      uint64_t key)
{
	uint64_t h = (key ^ ((uint64_t)route << 40)) * 0x9e3779b97f4a7c15ull;
	struct park_key **at = &t->bucket[h >> 56 & (PARK_BUCKETS - 1)];

	while (*at && ((*at)->key != key || (*at)->route != route))
		at = &(*at)->next;
	return at;
}

/* Unlink the entry at @p at; the caller frees it. Under lock. */
static struct park_key *unlink_key(struct sy__parking *t,
				   struct park_key **at)
{
	struct park_key *e = *at;

	*at = e->next;
	if (e->parked)
		atomic_fetch_sub_explicit(&t->nparked, 1, memory_order_relaxed);
	else
		t->ntracked--;
	atomic_fetch_sub_explicit(&t->nkeys, 1, memory_order_relaxed);
	return e;
}

/* Held message @p m goes to @p e's server: its in-flight count too. */
static void follow(const struct park_key *e, struct sy_msg *m)
{
	if (m->server == e->server)
		return;
	if (m->flags & SY_MSG_INFLIGHT) {
		atomic_fetch_sub_explicit(&m->server->inflight, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&e->server->inflight, 1,
					  memory_order_relaxed);
	}
	m->server = e->server;
	m->pick = e->pick;
}

enum sy__park_verdict sy__parking_admit(struct sy__parking *t,
					struct sy_msg *m,
					struct sy_msg **released)
{
	enum sy__park_verdict v = SY__PARK_RUN;
	struct park_key **at, *e, *gone = NULL;

	if (!atomic_load_explicit(&t->nparked, memory_order_relaxed))
		return SY__PARK_RUN;
	pthread_mutex_lock(&t->lock);
	at = find(t, m->route_id, m->key);
	e = *at;
	if (!e || !e->parked) {
		/* not parked */
	} else if (e->token == m) {
		*released = e->head;
		gone = unlink_key(t, at);
	} else if (e->held >= e->capacity) {
		e->dead++;
		v = SY__PARK_FULL;
	} else {
		follow(e, m);
		m->next = NULL;
		if (e->tail)
			e->tail->next = m;
		else
			e->head = m;
		e->tail = m;
		e->held++;
		v = SY__PARK_HELD;
	}
	pthread_mutex_unlock(&t->lock);
	free(gone);
	return v;
}

void sy__parking_ok(struct sy__parking *t, uint32_t route, uint64_t key)
{
	struct park_key **at, *gone = NULL;

	if (!atomic_load_explicit(&t->nkeys, memory_order_relaxed))
		return;
	pthread_mutex_lock(&t->lock);
	at = find(t, route, key);
	if (*at && !(*at)->parked)
		gone = unlink_key(t, at);
	pthread_mutex_unlock(&t->lock);
	free(gone);
}

void sy__parking_failed(struct sy_engine *eng, const struct sy__route *r,
			const struct sy_msg *m, struct sy__server *srv)
{
	struct sy__parking *t = sy__parking_of(eng);
	struct park_key **at, *e;

	pthread_mutex_lock(&t->lock);
	at = find(t, r->id, m->key);
	e = *at;
	if (!e) {
		/* Untracked keys fail without being counted until there is room. */
		if (t->ntracked >= PARK_TRACK_MAX ||
		    !(e = calloc(1, sizeof(*e))))
			goto out;
		e->key = m->key;
		e->route = r->id;
		*at = e;
		t->ntracked++;
		atomic_fetch_add_explicit(&t->nkeys, 1, memory_order_relaxed);
	}
	if (e->parked || ++e->fails < r->park_after)
		goto out;
	e->parked = true;
	e->server = srv;
	e->pick = m->pick;
	e->capacity = r->park_capacity;
	e->since_ns = sy__now(eng);
	t->ntracked--;
	atomic_fetch_add_explicit(&t->nparked, 1, memory_order_relaxed);
out:
	pthread_mutex_unlock(&t->lock);
}

/* Dead-letter the chain @p m with @p why; @return how many. */
static int dead_letter_chain(struct sy_engine *eng, struct sy_msg *m,
			     enum sy_dl_reason why)
{
	int n = 0;

	while (m) {
		struct sy_msg *next = m->next;
		struct sy__server *srv = m->server;

		if (m->flags & SY_MSG_INFLIGHT)
			atomic_fetch_sub_explicit(&srv->inflight, 1,
						  memory_order_relaxed);
		m->last_server = srv->id;
		sy__dead_letter(eng, sy__slot_self(eng), m, why, srv->id);
		m = next;
		n++;
	}
	return n;
}

/* Unpark the keys of @p route (SY_ANY: all) parked on @p srv (NULL: any),
 * forget their failures, and dead-letter what they hold with @p why. */
static void drop_matching(struct sy_engine *eng, uint32_t route,
			  const struct sy__server *srv, enum sy_dl_reason why)
{
	struct sy__parking *t = sy__parking_of(eng);
	struct sy_msg *chain = NULL, **end = &chain;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < PARK_BUCKETS; b++) {
		struct park_key **at = &t->bucket[b];

		while (*at) {
			struct park_key *e = *at;

			if ((route != SY_ANY && e->route != route) ||
			    (srv && (!e->parked || e->server != srv))) {
				at = &e->next;
				continue;
			}
			*end = e->head;
			if (e->tail)
				end = &e->tail->next;
			free(unlink_key(t, at));
		}
	}
	pthread_mutex_unlock(&t->lock);
	dead_letter_chain(eng, chain, why);
}

void sy__parking_drop(struct sy_engine *eng, uint32_t route,
		      const struct sy__server *srv)
{
	drop_matching(eng, route, srv, SY_DL_PARKED);
}

void sy__parking_shutdown(struct sy_engine *eng)
{
	drop_matching(eng, SY_ANY, NULL, SY_DL_SHUTDOWN);
}

void sy__parking_destroy(struct sy_engine *eng)
{
	struct sy__parking *t = sy__parking_of(eng);

	if (!t)
		return;
	/* After stop nothing is held (its servers may be freed already):
	 * only keys with failures counted are left. */
	for (unsigned b = 0; b < PARK_BUCKETS; b++)
		while (t->bucket[b])
			free(unlink_key(t, &t->bucket[b]));
	pthread_mutex_destroy(&t->lock);
	free(t);
	atomic_store_explicit(&eng->parking, NULL, memory_order_relaxed);
}

/* ---- admin functions ---- */

SY_API int sy_parked_list(sy_engine *eng, uint32_t route,
			  struct sy_parked_key *out, unsigned max)
{
	struct sy__parking *t;
	int k = 0;

	SY__NONNULL(eng);
	if (max && !out)
		return sy__null(__func__, "out");
	t = sy__parking_of(eng);
	if (!t || !max)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < PARK_BUCKETS && (unsigned)k < max; b++) {
		for (const struct park_key *e = t->bucket[b];
		     e && (unsigned)k < max; e = e->next) {
			if (!e->parked || (route != SY_ANY && e->route != route))
				continue;
			out[k++] = (struct sy_parked_key){
				.route = e->route, .server = e->server->id,
				.key = e->key, .parked_ns = e->since_ns,
				.held = e->held, .failures = e->fails,
				.dead_lettered = e->dead,
				.releasing = e->token != NULL,
			};
		}
	}
	pthread_mutex_unlock(&t->lock);
	return k;
}

/* Take parked @p key of @p route out of the table for the caller:
 * release (-EALREADY if it is being released) or purge. Under eng->lock.
 * @return its entry, still linked at *@p atp; NULL with *err set. */
static struct park_key *take_parked(struct sy__parking *t, uint32_t route,
				    uint64_t key, struct park_key ***atp,
				    int *err)
{
	struct park_key **at = find(t, route, key), *e = *at;

	*atp = at;
	if (!e || !e->parked) {
		*err = sy__fail(-ENOENT, "route %u has no parked key %llu",
				route, (unsigned long long)key);
		return NULL;
	}
	if (e->token) {
		*err = sy__fail(-EALREADY, "key %llu of route %u is being released",
				(unsigned long long)key, route);
		return NULL;
	}
	return e;
}

/* Put @p tok on the caller's ring to its server's worker, waiting while
 * that ring is full (the worker empties it; it never waits for us). */
static void hand_token(struct sy_engine *eng, struct sy__slot *s,
		       struct sy_msg *tok)
{
	unsigned w = tok->server->worker;
	struct sy__ring *ring = &sy__slot_out(s)[w];
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 10000 };

	while (!sy__ring_enqueue_spsc(ring, tok)) {
		sy__unpark(&eng->workers[w].parker);
		nanosleep(&pause, NULL);
	}
	if (sy__idle_sleeps(eng))
		sy__wake(&eng->workers[w].parker);
}

static int release(struct sy_engine *eng, uint32_t route, uint64_t key)
{
	struct sy__parking *t = sy__parking_of(eng);
	struct park_key **at, *e, *gone = NULL;
	struct sy_msg *tok = NULL;
	struct sy__slot *s;
	int rc;

	if (atomic_load(&eng->state) != SY_ENGINE_RUNNING)
		return sy__fail(-ESHUTDOWN, "the engine is not running");
	if (!t)
		return sy__fail(-ENOENT, "no key is parked");
	if (!(s = sy__slot_get(eng, &rc)))
		return rc;
	pthread_mutex_lock(&t->lock);
	e = take_parked(t, route, key, &at, &rc);
	if (e && !e->head) {
		gone = unlink_key(t, at);
		rc = 0;
	} else if (e) {
		tok = e->head;
		e->head = tok->next;
		if (!e->head)
			e->tail = NULL;
		e->token = tok;
		rc = (int)e->held;
	}
	pthread_mutex_unlock(&t->lock);
	free(gone);
	if (tok)
		hand_token(eng, s, tok);
	return rc;
}

SY_API int sy_parked_release(sy_engine *eng, uint32_t route, uint64_t key)
{
	int rc;

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	/* Stop and a server's removal wait for the workers under the same
	 * lock: the token is in a ring before they look. */
	pthread_mutex_lock(&eng->lock);
	rc = release(eng, route, key);
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

SY_API int sy_parked_purge(sy_engine *eng, uint32_t route, uint64_t key)
{
	struct sy__parking *t;
	struct park_key **at, *e = NULL;
	int rc = -ENOENT;

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	t = sy__parking_of(eng);
	if (t) {
		pthread_mutex_lock(&t->lock);
		e = take_parked(t, route, key, &at, &rc);
		if (e)
			unlink_key(t, at);
		pthread_mutex_unlock(&t->lock);
	} else {
		sy__fail(rc, "no key is parked");
	}
	if (e) {
		rc = dead_letter_chain(eng, e->head, SY_DL_PARKED);
		free(e);
	}
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}
