/*
 * The send paths: send, burst, request, reply, poll, call, and the workers'
 * retries.
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
 *
 * Backpressure: a route with a mode checks the ring's depth against its
 * threshold before it enqueues (sy__ring_over(): the producer's cached
 * consumer index, refreshed only near the threshold). Past it the mode
 * decides: refuse (-ENOBUFS), spill to another server, wait outside the
 * read-side section, or dead-letter. Every path is off the fast path.
 *
 * Metrics: a send counts what it sent per route, per server and per
 * transport in the sending slot's shard, and times one send call in
 * `latency_sample` (one clock read, for one message of a burst).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core/breaker.h"
#include "core/dlq.h"
#include "core/engine_internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline enum sy__transport transport_of(const struct sy__slot *s)
{
	return s->is_worker ? SY_TRANSPORT_WORKER : SY_TRANSPORT_PRODUCER;
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
	case -ENOBUFS:
		return SY_C_REJ_BACKPRESSURE;
	default:
		return SY_C_REJ_SHUTDOWN;
	}
}

/* Count @p n sends through @p route refused with @p err; returns err. */
static int reject(struct sy__slot *s, int err, uint64_t n, uint32_t route)
{
	struct sy__shard *sh = s->shard;

	sy__count(&s->counters, reject_counter(err), n);
	if (sh) {
		sy__sc_add(&sh->transport[transport_of(s)], SY_SC_REJECTED, n);
		if (route < s->pool.eng->cfg.max_routes)
			sy__sc_add(&sh->route[route], SY_SC_REJECTED, n);
	}
	return err;
}

/* A refusal after @p server was picked: count it against the server too. */
static int reject_at(struct sy__slot *s, int err, uint64_t n, uint32_t route,
		     uint32_t server)
{
	if (s->shard)
		sy__sc_add(&s->shard->server[server], SY_SC_REJECTED, n);
	return reject(s, err, n, route);
}

/* Count a message sent to @p server through @p route. (The collector sums
 * a shard's routes for its transport's count.) */
static inline void count_sent(struct sy__slot *s, uint32_t route,
			      uint32_t server)
{
	struct sy__shard *sh = s->shard;

	sy__sc_add(&sh->server[server], SY_SC_SENT, 1);
	sy__sc_add(&sh->route[route], SY_SC_SENT, 1);
}

/* Count msgs[i] sent to sid[i] through @p route, i < n: the route once,
 * the servers once per run of one server. */
static void count_sent_burst(struct sy__slot *s, uint32_t route,
			     const uint32_t *sid, unsigned n)
{
	struct sy__shard *sh = s->shard;

	sy__sc_add(&sh->route[route], SY_SC_SENT, n);
	for (unsigned i = 0, k; i < n; i += k) {
		for (k = 1; i + k < n && sid[i + k] == sid[i]; k++)
			;
		sy__sc_add(&sh->server[sid[i]], SY_SC_SENT, k);
	}
}

/*
 * Count @p n messages as accepted just before they are enqueued: a reader
 * of sy_engine_accounting() that sees one of them end then sees it
 * accepted too. An enqueue that fails takes the count back (withdraw()).
 */
static inline void count_accepted(struct sy__slot *s, uint64_t n)
{
	sy__count(&s->counters, SY_C_ACCEPTED, n);
}

static inline void withdraw(struct sy__slot *s, uint64_t n)
{
	sy__count(&s->counters, SY_C_ACCEPTED, (uint64_t)0 - n);
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

/* May a message go to @p srv now? Takes a half-open probe token if needed. */
static inline bool admit(struct sy__server *srv)
{
	unsigned gate = atomic_load_explicit(&srv->gate, memory_order_relaxed);

	return sy__likely(gate == 0) ||
	       (gate == SY_GATE_BREAKER && sy__breaker_admit(srv));
}

/* Record in @p m that it goes to server @p i of @p r. */
static inline void assign(const struct sy__route *r, unsigned i,
			  struct sy_msg *m)
{
	struct sy__server *srv = r->servers[i];

	m->server = srv;
	m->route_id = r->id;
	m->pick = (uint16_t)i;
	m->flags = (uint8_t)((m->flags & SY_MSG_KEEP_FLAGS) | r->msg_flags);
	if (r->msg_flags & SY_MSG_INFLIGHT)
		atomic_fetch_add_explicit(&srv->inflight, 1, memory_order_relaxed);
}

/*
 * The policy's pick, or the next available server after it; records the
 * choice in the message. A retry passes the id of the server that failed
 * as @p avoid: the pick moves past it if the route has another. NULL when
 * no server of the route is available.
 */
static inline struct sy__server *pick(struct sy_pick *ctx, struct sy_msg *m,
				      uint32_t avoid)
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
		if (sy__unlikely(r->servers[i]->id == avoid))
			i = i + 1 == n ? 0 : i + 1;
	}
	for (unsigned tries = 0; tries < n; tries++) {
		struct sy__server *srv = r->servers[i];

		if (admit(srv)) {
			assign(r, i, m);
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

/* Mark @p m as a latency sample: the send call's time. */
static inline void stamp(struct sy_engine *eng, struct sy_msg *m)
{
	m->sent_ns = sy__now(eng);
	m->flags |= SY_MSG_TIMED;
}

/* Why no server of @p r was available: all that are left have open circuits? */
static enum sy_dl_reason unreachable_reason(const struct sy__route *r)
{
	bool breaker = false;

	for (unsigned i = 0; i < r->n; i++) {
		unsigned gate = atomic_load_explicit(&r->servers[i]->gate,
						     memory_order_relaxed);

		if (gate & (SY_GATE_DRAINING | SY_GATE_UNHEALTHY))
			continue;
		breaker = true;
	}
	return breaker ? SY_DL_CIRCUIT_OPEN : SY_DL_UNREACHABLE;
}

/* Dead-letter messages refused as a send instead (the route says so). */
static inline bool dead_letters(const struct sy_msg *m)
{
	return !(m->flags & SY_MSG_CALL); /* a call's caller waits for it */
}

/* Accept @p m and dead-letter it. */
static void accept_dead(struct sy_engine *eng, struct sy__slot *s,
			const struct sy__route *r, struct sy_msg *m,
			enum sy_dl_reason why, uint32_t server)
{
	m->route_id = r->id;
	m->flags &= (uint8_t)SY_MSG_KEEP_FLAGS;
	count_accepted(s, 1);
	sy__dead_letter(eng, s, m, why, server);
}

/* on_backpressure: the ring to worker @p w has passed @p r's threshold. */
static void note_congested(struct sy_engine *eng, struct sy__slot *s,
			   unsigned w, const struct sy__route *r)
{
	if (!eng->cfg.on_backpressure ||
	    atomic_load_explicit(&s->congested[w], memory_order_relaxed))
		return;
	/* Called back before the flag is set: the worker clears it (and calls
	 * back "drained") once below the low mark, so it cannot report the end
	 * of this crossing before its start. Release pairs with the worker's
	 * acquire in check_congested(). */
	eng->cfg.on_backpressure(eng, w, true, eng->cfg.callback_ctx);
	atomic_store_explicit(&s->congested[w], r->bp_low + 1,
			      memory_order_release);
}

/* Move @p m to another admitted server of @p r whose ring is below the
 * threshold. false when there is none (m keeps its pick). */
static bool spill(struct sy__slot *s, const struct sy__route *r,
		  struct sy_msg *m)
{
	struct sy__ring *out = sy__slot_out(s);
	unsigned n = r->n, from = m->pick;

	for (unsigned t = 1; t < n; t++) {
		unsigned j = (from + t) % n;
		struct sy__server *srv = r->servers[j];

		if (sy__ring_over(&out[srv->worker], r->bp_high) || !admit(srv))
			continue;
		unpick(m);
		assign(r, j, m);
		return true;
	}
	return false;
}

enum {
	SY_GO = 0,       /* enqueue to m->server */
	SY_TAKEN = 1,    /* accepted and dead-lettered */
	SY_WAIT = 2,     /* SY_BP_BLOCK: wait outside the section and retry */
};

/*
 * The ring to @p m's server is past the route's threshold: apply the mode.
 * @return SY_GO (spilled: m->server changed), SY_TAKEN, SY_WAIT, or
 *         -ENOBUFS (refused; the message is the caller's).
 */
static __attribute__((noinline)) int congested(struct sy_engine *eng,
					       struct sy__slot *s,
					       const struct sy__route *r,
					       struct sy_msg *m)
{
	note_congested(eng, s, m->server->worker, r);
	switch (r->bp_mode) {
	case SY_BP_SPILL:
		if (spill(s, r, m))
			return SY_GO;
		break;
	case SY_BP_BLOCK:
		unpick(m);
		return SY_WAIT;
	case SY_BP_DEAD_LETTER:
		if (dead_letters(m)) {
			uint32_t server = m->server->id;

			unpick(m);
			accept_dead(eng, s, r, m, SY_DL_BACKPRESSURE, server);
			return SY_TAKEN;
		}
		break;
	default:
		break;
	}
	unpick(m);
	return -ENOBUFS;
}

/* How long SY_BP_BLOCK may wait for @p m: its deadline, else bp_block_ns. */
static uint64_t block_until(struct sy_engine *eng, const struct sy__route *r,
			    const struct sy_msg *m)
{
	if (m->flags & SY_MSG_DEADLINE)
		return m->deadline;
	return sy__now(eng) + r->bp_block_ns;
}

/* Wait a little for rings to drain; false once @p until has passed. */
static bool block_wait(struct sy_engine *eng, uint64_t until)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 10000 };

	if (sy__now(eng) >= until)
		return false;
	nanosleep(&ts, NULL);
	return true;
}

/*
 * No server was available: dead-letter @p m if the route says so (0), else
 * refuse it (-EHOSTUNREACH).
 */
static __attribute__((noinline)) int unreachable(struct sy_engine *eng,
						 struct sy__slot *s,
						 const struct sy__route *r,
						 struct sy_msg *m)
{
	if (r->dl_unreachable && dead_letters(m)) {
		accept_dead(eng, s, r, m, unreachable_reason(r), SY_ANY);
		return 0;
	}
	return reject(s, -EHOSTUNREACH, 1, r->id);
}

static inline __attribute__((always_inline)) int
send_one(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
	 struct sy__slot *s)
{
	struct sy__server *srv;
	struct sy_pick ctx;
	struct sy__route *r;
	uint64_t until = 0;
	unsigned w;
	int err = 0;

again:
	sy__read_lock();
	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r)) {
		sy__read_unlock();
		return reject(s, err, 1, route);
	}
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	srv = pick(&ctx, m, SY_ANY);
	if (sy__unlikely(!srv)) {
		err = unreachable(eng, s, r, m);
		sy__read_unlock();
		return err;
	}
	if (sy__unlikely(r->bp_mode != SY_BP_OFF) &&
	    sy__ring_over(&sy__slot_out(s)[srv->worker], r->bp_high)) {
		err = congested(eng, s, r, m);
		if (err == SY_WAIT) {
			if (!until)
				until = block_until(eng, r, m);
			sy__read_unlock();
			if (block_wait(eng, until))
				goto again;
			return reject(s, -ENOBUFS, 1, route);
		}
		if (err) {
			sy__read_unlock();
			return err == SY_TAKEN ? 0 :
			       reject_at(s, err, 1, route, srv->id);
		}
		srv = m->server;
	}
	w = srv->worker; /* srv may be freed once the section ends */
	if (sy__unlikely(sy__shard_sample(s->shard)))
		stamp(eng, m);
	count_accepted(s, 1);
	if (sy__unlikely(!sy__ring_enqueue_spsc(&sy__slot_out(s)[w], m))) {
		withdraw(s, 1);
		unpick(m);
		err = reject_at(s, -EAGAIN, 1, route, srv->id);
		sy__read_unlock();
		return err;
	}
	if (s->shard)
		count_sent(s, route, srv->id);
	sy__read_unlock();
	wake_worker(eng, w);
	return 0;
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
	/* A worker that sees TIMED reads the clock when it takes the entry. */
	d->flags = SY_MSG_BURST | (msgs[0]->flags & SY_MSG_TIMED);
	b = (struct sy__burst *)d->data;
	b->n = n;
	memcpy(b->msgs, msgs, n * sizeof(msgs[0]));
	if (sy__likely(sy__ring_enqueue_spsc(ring, d)))
		return 0;
	sy__msg_release(s, d);
	return -EAGAIN;
}

/* worker_of[] marks: refused; accepted and dead-lettered; accepted and
 * already enqueued to another worker (spilled). */
enum { REFUSED = USHRT_MAX, TAKEN = USHRT_MAX - 1, SPILLED = USHRT_MAX - 2 };

/*
 * The group of a chunk's messages for worker @p w found the ring past the
 * route's threshold: apply the mode to each (worker_of[] becomes REFUSED,
 * TAKEN or SPILLED). SY_BP_BLOCK refusals are added to *waiting, not
 * counted: the caller counts them if it stops waiting. @return the error of
 * the first refused message, or 0.
 */
static __attribute__((noinline)) int
congested_group(struct sy_engine *eng, struct sy__slot *s,
		const struct sy__route *r, struct sy_msg **msgs,
		unsigned short *worker_of, uint32_t *sid, unsigned w,
		unsigned n, uint64_t *until, unsigned *waiting)
{
	struct sy__ring *out = sy__slot_out(s);
	int err = 0;

	note_congested(eng, s, w, r);
	for (unsigned j = 0; j < n; j++) {
		struct sy_msg *m = msgs[j];
		int rc = -ENOBUFS;

		if (worker_of[j] != w)
			continue;
		if (r->bp_mode == SY_BP_DEAD_LETTER) {
			unpick(m);
			accept_dead(eng, s, r, m, SY_DL_BACKPRESSURE, sid[j]);
			worker_of[j] = TAKEN;
			continue;
		}
		if (r->bp_mode == SY_BP_SPILL && spill(s, r, m)) {
			struct sy__server *srv = m->server;

			count_accepted(s, 1);
			if (sy__ring_enqueue_spsc(&out[srv->worker], m)) {
				worker_of[j] = SPILLED;
				sid[j] = srv->id;
				wake_worker(eng, srv->worker);
				if (s->shard)
					count_sent(s, r->id, srv->id);
				continue;
			}
			withdraw(s, 1);
			rc = -EAGAIN;
		}
		if (r->bp_mode == SY_BP_BLOCK) {
			if (!*until)
				*until = block_until(eng, r, m);
			(*waiting)++;
		} else {
			reject_at(s, rc, 1, r->id, sid[j]);
		}
		unpick(m);
		worker_of[j] = REFUSED;
		if (!err)
			err = rc;
	}
	return err;
}

/*
 * Send msgs[0..n), n <= SY_BURST_MAX, inside one read-side section. Accepted
 * messages move to the front of @p msgs, refused ones to the back in order.
 * Sets *until when SY_BP_BLOCK refused some (*waiting of them, not yet
 * counted as refused): the caller may wait and retry.
 */
static int send_chunk(struct sy_engine *eng, uint32_t route,
		      struct sy_msg **msgs, unsigned n, struct sy__slot *s,
		      uint64_t *until, unsigned *waiting)
{
	struct sy_msg *group[SY_BURST_MAX];
	struct sy_msg *refused[SY_BURST_MAX];
	unsigned short worker_of[SY_BURST_MAX];
	uint32_t sid[SY_BURST_MAX];
	uint64_t done[SY_MAX_WORKERS / 64] = { 0 };
	unsigned accepted = 0, nrefused = 0;
	struct sy__ring *out = sy__slot_out(s);
	bool mixed = false, timed = false;
	struct sy_pick ctx;
	struct sy__route *r;
	int err = 0;

	sy__read_lock();
	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r)) {
		sy__read_unlock();
		return reject(s, err, n, route);
	}
	/* One pick context for the chunk: a policy reads the clock once. */
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	for (unsigned i = 0; i < n; i++) {
		struct sy__server *srv;

		msgs[i]->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
		srv = pick(&ctx, msgs[i], SY_ANY);
		if (sy__likely(srv)) {
			worker_of[i] = (unsigned short)srv->worker;
			sid[i] = srv->id;
		} else if (unreachable(eng, s, r, msgs[i]) == 0) {
			worker_of[i] = TAKEN;
		} else {
			worker_of[i] = REFUSED;
			if (!err)
				err = -EHOSTUNREACH;
		}
		mixed |= worker_of[i] != worker_of[0];
	}
	if (sy__unlikely(sy__shard_sample(s->shard)))
		timed = true;
	if (!mixed && worker_of[0] < TAKEN &&
	    !(r->bp_mode != SY_BP_OFF && sy__ring_over(&out[worker_of[0]], r->bp_high))) {
		/* The common case: every message for one worker. */
		if (timed)
			stamp(eng, msgs[0]);
		count_accepted(s, n);
		err = enqueue_group(s, worker_of[0], msgs, n);
		if (err) {
			withdraw(s, n);
			for (unsigned i = 0; i < n; i++)
				unpick(msgs[i]);
			err = reject_at(s, err, n, route, sid[0]);
			sy__read_unlock();
			return err;
		}
		if (s->shard)
			count_sent_burst(s, route, sid, n);
		sy__read_unlock();
		wake_worker(eng, worker_of[0]);
		return (int)n;
	}
	/* One ring entry per worker, each worker's messages in order. */
	for (unsigned i = 0; i < n; i++) {
		unsigned w = worker_of[i], k = 0;
		int rc;

		if (w >= SPILLED || (done[w / 64] & (1ull << (w % 64))))
			continue;
		done[w / 64] |= 1ull << (w % 64);
		if (r->bp_mode != SY_BP_OFF && sy__ring_over(&out[w], r->bp_high)) {
			rc = congested_group(eng, s, r, msgs, worker_of, sid, w,
					     n, until, waiting);
			if (rc && !err)
				err = rc;
			continue;
		}
		for (unsigned j = i; j < n; j++)
			if (worker_of[j] == w)
				group[k++] = msgs[j];
		if (timed) {
			stamp(eng, group[0]);
			timed = false;
		}
		count_accepted(s, k);
		rc = enqueue_group(s, w, group, k);
		if (rc == 0) {
			if (s->shard)
				for (unsigned j = i; j < n; j++)
					if (worker_of[j] == w)
						count_sent(s, route, sid[j]);
			wake_worker(eng, w);
			continue;
		}
		withdraw(s, k);
		for (unsigned j = i; j < n; j++) {
			if (worker_of[j] == w) {
				reject_at(s, rc, 1, route, sid[j]);
				worker_of[j] = REFUSED;
				unpick(msgs[j]);
			}
		}
		if (!err)
			err = rc;
	}
	sy__read_unlock();
	/* Stable partition: accepted first, refused after, both in order. */
	for (unsigned i = 0; i < n; i++) {
		if (worker_of[i] == REFUSED) {
			refused[nrefused++] = msgs[i];
			continue;
		}
		msgs[accepted++] = msgs[i];
	}
	memcpy(msgs + accepted, refused, nrefused * sizeof(msgs[0]));
	return accepted ? (int)accepted : err;
}

SY_API int sy_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);
	uint64_t until = 0;
	unsigned done = 0;

	if (sy__unlikely(!s))
		return err;
	while (done < n) {
		unsigned chunk = n - done < SY_BURST_MAX ? n - done : SY_BURST_MAX;
		unsigned waiting = 0;
		int rc = send_chunk(eng, route, msgs + done, chunk, s, &until,
				    &waiting);

		if (rc > 0 && s->is_worker)
			for (int i = 0; i < rc; i++)
				mark_taken(msgs[done + (unsigned)i]);
		if (rc > 0)
			done += (unsigned)rc;
		if (rc >= 0 && (unsigned)rc == chunk)
			continue;
		/* Some were refused; they stay in place, in their order:
		 * msgs[done..n) are the caller's. SY_BP_BLOCK waits for room. */
		if (until && block_wait(eng, until))
			continue;
		if (waiting)
			reject(s, -ENOBUFS, waiting, route);
		return done ? (int)done : rc;
	}
	return (int)done;
}

/*
 * A worker's retry of @p m through its route, avoiding the server that
 * failed (m->last_server) where the route has another. Inside the worker's
 * read-side section. @return 0 (enqueued); -EAGAIN or -ENOBUFS (the ring is
 * full or past the threshold: try later); -EHOSTUNREACH (no server, or the
 * route is gone; the reason in *why).
 */
int sy__resend(struct sy__worker *w, struct sy_msg *m, enum sy_dl_reason *why)
{
	struct sy_engine *eng = w->eng;
	struct sy__slot *s = w->slot;
	struct sy__server *srv;
	struct sy__ring *ring;
	struct sy_pick ctx;
	struct sy__route *r;

	/* A1: pairs with R1 in registry.c. */
	r = atomic_load_explicit(&eng->routes[m->route_id], memory_order_acquire);
	*why = SY_DL_UNREACHABLE;
	if (!r)
		return -EHOSTUNREACH;
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	srv = pick(&ctx, m, m->last_server);
	if (!srv) {
		*why = unreachable_reason(r);
		return -EHOSTUNREACH;
	}
	ring = &sy__slot_out(s)[srv->worker];
	if ((r->bp_mode != SY_BP_OFF && sy__ring_over(ring, r->bp_high)) ||
	    !sy__ring_enqueue_spsc(ring, m)) {
		unpick(m);
		return -EAGAIN;
	}
	wake_worker(eng, srv->worker);
	return 0;
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
	reply->flags = request->flags & (SY_MSG_REQUEST | SY_MSG_CALL | SY_MSG_TIMED);
	if (sy__unlikely(request->flags & SY_MSG_TIMED))
		reply->sent_ns = request->sent_ns; /* the round trip's start */
	if (!sy__ring_enqueue_spsc(&to->replies[w->idx], reply)) {
		sy__count(&w->slot->counters, SY_C_REPLIES_DROPPED, 1);
		if (w->slot->shard)
			sy__sc_add(&w->slot->shard->transport[SY_TRANSPORT_REPLY],
				   SY_SC_REJECTED, 1);
		return -EAGAIN;
	}
	if (w->slot->shard)
		sy__sc_add(&w->slot->shard->transport[SY_TRANSPORT_REPLY],
			   SY_SC_SENT, 1);
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
			if (sy__unlikely(m->flags & SY_MSG_TIMED) && s->shard)
				sy__hist_record(&s->shard->hist[SY_HIST_RTT],
						sy__now(eng) - m->sent_ns);
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
	req->flags = (uint8_t)((req->flags & (SY_MSG_DEADLINE | SY_MSG_DEAD)) |
			       SY_MSG_REQUEST | SY_MSG_CALL);
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
