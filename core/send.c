/*
 * The send paths: send, burst, request, reply, poll, call.
 *
 * A send takes one RCU read-side section, loads the route by id (A1, pairs
 * with R1 in registry.c), lets the policy pick a server, and enqueues the
 * message on the sending slot's ring to the server's worker. A burst takes
 * one section for all its messages and puts the messages for one worker in a
 * burst descriptor: one ring entry for up to SY_BURST_MAX messages.
 *
 * The engine state is read inside the section: sy_engine_stop() sets
 * STOPPING and then waits for a grace period, after which no send can still
 * enqueue.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core/breaker.h"
#include "core/engine_internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static enum sy__counter reject_counter(int err)
{
	switch (err) {
	case -ENOENT:
		return SY_C_REJ_NOROUTE;
	case -EHOSTUNREACH:
		return SY_C_REJ_UNREACHABLE;
	case -EAGAIN:
		return SY_C_REJ_FULL;
	default:
		return SY_C_REJ_SHUTDOWN;
	}
}

static int reject(struct sy__slot *s, int err, uint64_t n)
{
	sy__count(&s->counters, reject_counter(err), n);
	return err;
}

/* Load a route for sending. Inside a read-side section. */
static inline struct sy__route *route_for_send(struct sy_engine *eng,
					       uint32_t id, int *err)
{
	struct sy__route *r;

	if (sy__unlikely(atomic_load_explicit(&eng->state, memory_order_relaxed) >=
			 SY_ENGINE_STOPPING)) {
		*err = -ESHUTDOWN;
		return NULL;
	}
	if (sy__unlikely(id >= eng->cfg.max_routes)) {
		*err = -ENOENT;
		return NULL;
	}
	/* A1: pairs with R1 in registry.c. */
	r = atomic_load_explicit(&eng->routes[id], memory_order_acquire);
	if (sy__unlikely(!r))
		*err = -ENOENT;
	return r;
}

/*
 * The policy's pick, or the next available server after it; records the
 * choice in the message. NULL when no server of the route is available.
 */
static inline struct sy__server *pick(struct sy_pick *ctx, struct sy_msg *m)
{
	struct sy__route *r = (struct sy__route *)ctx->route;
	unsigned n = r->n, i = 0;

	if (sy__unlikely(n == 0))
		return NULL;
	if (n > 1) {
		int k;

		ctx->key = m->key;
		k = r->policy->pick(r->pstate, ctx);
		i = k >= 0 && (unsigned)k < n ? (unsigned)k : 0;
	}
	for (unsigned tries = 0; tries < n; tries++) {
		struct sy__server *srv = r->servers[i];
		unsigned gate = atomic_load_explicit(&srv->gate,
						     memory_order_relaxed);

		if (sy__likely(gate == 0) ||
		    (gate == SY_GATE_BREAKER && sy__breaker_admit(srv))) {
			m->server = srv;
			m->route_id = r->id;
			m->pick = (uint16_t)i;
			m->flags = (uint8_t)((m->flags & SY_MSG_KEEP_FLAGS) |
					     r->msg_flags);
			if (r->msg_flags & SY_MSG_INFLIGHT)
				atomic_fetch_add_explicit(&srv->inflight, 1,
							  memory_order_relaxed);
			return srv;
		}
		i = i + 1 == n ? 0 : i + 1;
	}
	return NULL;
}

/* A message that did not go after all gives its in-flight count back. */
static inline void unpick(struct sy_msg *m)
{
	if (m->flags & SY_MSG_INFLIGHT) {
		atomic_fetch_sub_explicit(&m->server->inflight, 1,
					  memory_order_relaxed);
		m->flags &= (uint8_t)~SY_MSG_INFLIGHT;
	}
}

static inline void wake_worker(struct sy_engine *eng, unsigned w)
{
	if (sy__idle_sleeps(eng))
		sy__wake(&eng->workers[w].parker);
}

static inline __attribute__((always_inline)) int
send_one(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		    struct sy__slot *s)
{
	struct sy__server *srv;
	struct sy_pick ctx;
	struct sy__route *r;
	unsigned w;
	int err = 0;

	sy__read_lock();
	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r))
		goto out_reject;
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	srv = pick(&ctx, m);
	if (sy__unlikely(!srv)) {
		err = -EHOSTUNREACH;
		goto out_reject;
	}
	w = srv->worker; /* srv may be freed once the section ends */
	if (sy__unlikely(!sy__ring_enqueue_spsc(&sy__slot_out(s)[w], m))) {
		unpick(m);
		err = -EAGAIN;
		goto out_reject;
	}
	sy__read_unlock();
	sy__count(&s->counters, SY_C_ACCEPTED, 1);
	wake_worker(eng, w);
	return 0;

out_reject:
	sy__read_unlock();
	return reject(s, err, 1);
}

/* A handler that sends the message it is handling gives it away. */
static inline void mark_taken(struct sy_msg *m)
{
	struct sy__worker *w = sy__worker_self();

	if (w && w->current == m)
		w->taken = true;
}

SY_API int sy_send(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);
	int rc;

	if (sy__unlikely(!s))
		return err;
	msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	rc = send_one(eng, route, msg, s);
	if (rc == 0 && s->is_worker)
		mark_taken(msg);
	return rc;
}

SY_API int sy_request(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);
	int rc;

	if (sy__unlikely(!s))
		return err;
	msg->flags = (uint8_t)((msg->flags & ~SY_MSG_CALL) | SY_MSG_REQUEST);
	msg->reply_slot = (uint16_t)s->id;
	msg->reply_gen = (uint16_t)atomic_load_explicit(&s->gen, memory_order_relaxed);
	rc = send_one(eng, route, msg, s);
	if (rc == 0) {
		sy__count(&s->counters, SY_C_REQUESTS, 1);
		if (s->is_worker)
			mark_taken(msg);
	}
	return rc;
}

/*
 * Enqueue the messages picked for one worker: one message alone, more in a
 * burst descriptor. @return 0 or -EAGAIN (ring full) or -ENOMEM.
 */
static int enqueue_group(struct sy__slot *s, unsigned w, struct sy_msg **msgs,
			 unsigned n)
{
	struct sy__ring *ring = &sy__slot_out(s)[w];
	struct sy_msg *d;
	struct sy__burst *b;

	if (n == 1)
		return sy__ring_enqueue_spsc(ring, msgs[0]) ? 0 : -EAGAIN;
	d = sy__msg_alloc(s, sizeof(*b));
	if (sy__unlikely(!d))
		return -ENOMEM;
	d->flags = SY_MSG_BURST;
	b = (struct sy__burst *)d->data;
	b->n = n;
	memcpy(b->msgs, msgs, n * sizeof(msgs[0]));
	if (sy__likely(sy__ring_enqueue_spsc(ring, d)))
		return 0;
	sy__msg_release(s, d);
	return -EAGAIN;
}

/*
 * Send msgs[0..n), n <= SY_BURST_MAX, inside one read-side section. Accepted
 * messages move to the front of @p msgs, refused ones to the back in order.
 */
static int send_chunk(struct sy_engine *eng, uint32_t route,
		      struct sy_msg **msgs, unsigned n, struct sy__slot *s)
{
	enum { REFUSED = USHRT_MAX };
	struct sy_msg *group[SY_BURST_MAX];
	struct sy_msg *refused[SY_BURST_MAX];
	unsigned short worker_of[SY_BURST_MAX];
	uint64_t done[SY_MAX_WORKERS / 64] = { 0 };
	unsigned accepted = 0, nrefused = 0, first_refused = n;
	bool mixed = false;
	struct sy_pick ctx;
	struct sy__route *r;
	int err = 0;

	sy__read_lock();
	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r)) {
		sy__read_unlock();
		return reject(s, err, n);
	}
	/* One pick context for the chunk: a policy reads the clock once. */
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	for (unsigned i = 0; i < n; i++) {
		struct sy__server *srv;

		msgs[i]->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
		srv = pick(&ctx, msgs[i]);
		worker_of[i] = srv ? (unsigned short)srv->worker : REFUSED;
		mixed |= worker_of[i] != worker_of[0];
		if (!srv) {
			reject(s, -EHOSTUNREACH, 1);
			if (i < first_refused) {
				first_refused = i;
				err = -EHOSTUNREACH;
			}
		}
	}
	if (!mixed && worker_of[0] != REFUSED) {
		/* The common case: every message for one worker. */
		err = enqueue_group(s, worker_of[0], msgs, n);
		sy__read_unlock();
		if (err) {
			for (unsigned i = 0; i < n; i++)
				unpick(msgs[i]);
			return reject(s, err, n);
		}
		wake_worker(eng, worker_of[0]);
		sy__count(&s->counters, SY_C_ACCEPTED, n);
		return (int)n;
	}
	/* One ring entry per worker, each worker's messages in order. */
	for (unsigned i = 0; i < n; i++) {
		unsigned w = worker_of[i], k = 0;
		int rc;

		if (w == REFUSED || (done[w / 64] & (1ull << (w % 64))))
			continue;
		done[w / 64] |= 1ull << (w % 64);
		for (unsigned j = i; j < n; j++)
			if (worker_of[j] == w)
				group[k++] = msgs[j];
		rc = enqueue_group(s, w, group, k);
		if (rc == 0) {
			wake_worker(eng, w);
			continue;
		}
		reject(s, rc, k);
		if (i < first_refused) {
			first_refused = i;
			err = rc;
		}
		for (unsigned j = i; j < n; j++) {
			if (worker_of[j] == w) {
				worker_of[j] = REFUSED;
				unpick(msgs[j]);
			}
		}
	}
	sy__read_unlock();
	/* Stable partition: accepted first, refused after, both in order. */
	for (unsigned i = 0; i < n; i++) {
		if (worker_of[i] == REFUSED)
			refused[nrefused++] = msgs[i];
		else
			msgs[accepted++] = msgs[i];
	}
	memcpy(msgs + accepted, refused, nrefused * sizeof(msgs[0]));
	sy__count(&s->counters, SY_C_ACCEPTED, accepted);
	return accepted ? (int)accepted : err;
}

SY_API int sy_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);
	unsigned done = 0;

	if (sy__unlikely(!s))
		return err;
	while (done < n) {
		unsigned chunk = n - done < SY_BURST_MAX ? n - done : SY_BURST_MAX;
		int rc = send_chunk(eng, route, msgs + done, chunk, s);

		if (rc < 0)
			return done ? (int)done : rc;
		if (s->is_worker)
			for (int i = 0; i < rc; i++)
				mark_taken(msgs[done + (unsigned)i]);
		if ((unsigned)rc < chunk) {
			/* Refused ones stay in place: msgs[done + rc..n) are
			 * the caller's, in their original order. */
			return (int)(done + (unsigned)rc);
		}
		done += chunk;
	}
	return (int)done;
}

/* ---- replies ---- */

void sy__reply_drop(struct sy__slot *s, struct sy_msg *m)
{
	sy__count(&s->counters, SY_C_REPLIES_DROPPED, 1);
	sy__msg_release(s, m);
}

SY_API int sy_reply(sy_msg *request, sy_msg *reply)
{
	struct sy__worker *w = sy__worker_self();
	struct sy_engine *eng;
	struct sy__slot *to;

	if (!w || w->current != request || !(request->flags & SY_MSG_REQUEST))
		return -EINVAL;
	eng = w->eng;
	to = &eng->slots[request->reply_slot];
	if ((uint16_t)atomic_load_explicit(&to->gen, memory_order_relaxed) !=
	    request->reply_gen) {
		sy__count(&w->slot->counters, SY_C_REPLIES_DROPPED, 1);
		return -ECONNRESET;
	}
	reply->tag = request->tag;
	reply->reply_gen = request->reply_gen;
	reply->call_seq = request->call_seq;
	reply->flags = request->flags & (SY_MSG_REQUEST | SY_MSG_CALL);
	if (!sy__ring_enqueue_spsc(&to->replies[w->idx], reply)) {
		sy__count(&w->slot->counters, SY_C_REPLIES_DROPPED, 1);
		return -EAGAIN;
	}
	if (reply == w->current)
		w->taken = true;
	sy__count(&w->slot->counters, SY_C_REPLIES_SENT, 1);
	if (sy__idle_sleeps(eng))
		sy__wake(&to->parker);
	return 0;
}

/*
 * Take one reply for @p s from its rings, dropping stale ones (for an earlier
 * owner of the slot, or for a call that timed out). NULL when none is ready.
 */
static struct sy_msg *reply_take(struct sy_engine *eng, struct sy__slot *s,
				 unsigned *cursor)
{
	uint16_t gen = (uint16_t)atomic_load_explicit(&s->gen, memory_order_relaxed);

	for (unsigned tries = 0; tries < eng->nworkers; tries++) {
		unsigned w = (*cursor + tries) % eng->nworkers;
		void *e;

		while (sy__ring_dequeue_spsc(&s->replies[w], &e)) {
			struct sy_msg *m = e;

			if (m->reply_gen != gen) {
				sy__reply_drop(s, m);
				continue;
			}
			*cursor = w;
			return m;
		}
	}
	return NULL;
}

SY_API int sy_poll_replies(sy_engine *eng, sy_msg **out, unsigned max)
{
	struct sy__slot *s = sy__slot_self(eng);
	unsigned n = 0, cursor = 0;

	if (!s)
		return -ENOENT;
	while (n < max && s->stash) {
		out[n++] = s->stash;
		s->stash = s->stash->next;
		if (!s->stash)
			s->stash_tail = &s->stash;
	}
	while (n < max) {
		struct sy_msg *m = reply_take(eng, s, &cursor);

		if (!m)
			break;
		if (m->flags & SY_MSG_CALL) {
			/* The call that wanted it has returned. */
			sy__reply_drop(s, m);
			continue;
		}
		out[n++] = m;
	}
	sy__count(&s->counters, SY_C_REPLIES_RECEIVED, n);
	return (int)n;
}

static bool reply_ready(struct sy_engine *eng, struct sy__slot *s)
{
	for (unsigned w = 0; w < eng->nworkers; w++)
		if (sy__ring_count(&s->replies[w]))
			return true;
	return false;
}

/* Wait a little for a reply: spin, then yield, then sleep until woken. */
static void call_wait(struct sy_engine *eng, struct sy__slot *s,
		      unsigned round, uint64_t deadline)
{
	uint64_t now;

	if (round < 64 || eng->cfg.idle == SY_IDLE_SPIN) {
		__builtin_ia32_pause();
		return;
	}
	if (round < 128 || eng->cfg.idle == SY_IDLE_YIELD) {
		sched_yield();
		return;
	}
	now = now_ns();
	if (now >= deadline)
		return;
	sy__park_prepare(&s->parker);
	if (reply_ready(eng, s)) {
		sy__park_cancel(&s->parker);
		return;
	}
	sy__park_wait(&s->parker, deadline - now);
}

SY_API int sy_call(sy_engine *eng, uint32_t route, sy_msg *req,
		   sy_msg **reply, uint64_t timeout_ns)
{
	struct sy__worker *w = sy__worker_self();
	struct sy__slot *s;
	uint64_t deadline;
	unsigned cursor = 0;
	uint32_t seq;
	int rc = 0;

	if (w && w->eng == eng)
		return sy__fail(-EDEADLK, "sy_call from a handler would wait on its own worker");
	s = sy__slot_get(eng, &rc);
	if (!s)
		return rc;
	seq = ++s->call_seq & 0xffffffu; /* msg->call_seq has 24 bits */
	req->flags = SY_MSG_REQUEST | SY_MSG_CALL;
	req->call_seq = seq;
	req->reply_slot = (uint16_t)s->id;
	req->reply_gen = (uint16_t)atomic_load_explicit(&s->gen, memory_order_relaxed);
	rc = send_one(eng, route, req, s);
	if (rc)
		return rc;
	sy__count(&s->counters, SY_C_REQUESTS, 1);
	deadline = now_ns() + timeout_ns;
	for (unsigned round = 0;; round++) {
		struct sy_msg *m = reply_take(eng, s, &cursor);

		if (m) {
			if (!(m->flags & SY_MSG_CALL)) {
				/* An asynchronous reply: keep it for poll. */
				m->next = NULL;
				*s->stash_tail = m;
				s->stash_tail = &m->next;
			} else if (m->call_seq != seq) {
				sy__reply_drop(s, m);
			} else {
				sy__count(&s->counters, SY_C_REPLIES_RECEIVED, 1);
				*reply = m;
				return 0;
			}
			round = 0;
			continue;
		}
		if ((round & 63) == 63 && now_ns() >= deadline)
			return -ETIMEDOUT;
		call_wait(eng, s, round, deadline);
	}
}

SY_API int sy_msg_keep(sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	if (!w || w->current != msg)
		return -EINVAL;
	w->taken = true;
	return 0;
}
