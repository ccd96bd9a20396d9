/*
 * The dispatch: routing one message, or a burst, onto a worker's ring. The
 * producer's sends (send.c), calls (reply.c) and a worker's retries
 * (retry.c) all go through here, so every message takes one way to its
 * worker.
 *
 * A dispatch takes one RCU read-side section, loads the route by id (A1,
 * pairs with R1 in registry.c), lets the policy pick a server, and
 * enqueues the message on the sending slot's ring to the server's worker. A
 * burst takes one section for all its messages and puts the messages for
 * one worker in a burst descriptor: one ring entry for up to SY_BURST_MAX
 * messages.
 *
 * The engine state is read inside the section: sy_engine_stop() sets
 * STOPPING and then waits for a grace period, after which no dispatch can
 * still enqueue.
 *
 * Backpressure: a route with a mode checks the ring's depth against its
 * threshold before it enqueues (sy__ring_over(): the producer's cached
 * consumer index, refreshed only near the threshold). Past it the mode
 * decides: refuse (-ENOBUFS), spill to another server, wait outside the
 * read-side section, or dead-letter. Every path is off the fast path.
 *
 * Accounting and metrics: a dispatch counts a message accepted just before
 * it enqueues it (and takes the count back if the enqueue fails), counts
 * what it sent per route and per server in the slot's shard, and times one
 * send call in `latency_sample` (one clock read, for one message of a
 * burst).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "core/breaker.h"
#include "core/codel.h"
#include "core/deadline.h"
#include "core/dispatch.h"
#include "core/dlq.h"
#include "core/engine.h"
#include "core/hedge.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/slow_start.h"
#include "core/worker.h"
#include "metrics/shard.h"

static inline enum sy__transport transport_of(const struct sy__slot *s)
{
	return s->is_worker ? SY_TRANSPORT_WORKER : SY_TRANSPORT_PRODUCER;
}

static enum sy__total reject_counter(int err)
{
	switch (err) {
	case -ENOENT:
		return SY_T_REJ_NOROUTE;
	case -EHOSTUNREACH:
		return SY_T_REJ_UNREACHABLE;
	case -EAGAIN:
		return SY_T_REJ_FULL;
	case -ENOBUFS:
		return SY_T_REJ_BACKPRESSURE;
	case -ETIME:
		return SY_T_REJ_DEADLINE;
	default:
		return SY_T_REJ_SHUTDOWN;
	}
}

/* Count @p n sends through @p route refused with @p err; returns err. */
static int reject(struct sy__slot *s, int err, uint64_t n, uint32_t route)
{
	struct sy__shard *sh = s->shard;

	if (s->quiet)
		return err;
	sy__total_add(&s->totals, reject_counter(err), n);
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
	if (s->shard && !s->quiet)
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
	sy__total_add(&s->totals, SY_T_ACCEPTED, n);
}

static inline void withdraw(struct sy__slot *s, uint64_t n)
{
	sy__total_add(&s->totals, SY_T_ACCEPTED, (uint64_t)0 - n);
}

/* Load a route for sending. Inside a read-side section. */
static inline struct sy__route *route_for_send(struct sy_engine *eng,
					       uint32_t id, int *err)
{
	struct sy__route *r;

	/* One compare for the id and the state (engine.h, send_limit). */
	if (sy__unlikely(id >= atomic_load_explicit(&eng->send_limit,
						    memory_order_acquire))) {
		*err = atomic_load_explicit(&eng->state, memory_order_relaxed) >=
		       SY_ENGINE_STOPPING ? -ESHUTDOWN : -ENOENT;
		return NULL;
	}
	/* A1: pairs with R1 in registry.c. */
	r = atomic_load_explicit(&eng->routes[id], memory_order_acquire);
	if (sy__unlikely(!r))
		*err = -ENOENT;
	return r;
}

/* route_for_send() for the common send: the route if it is direct, else
 * NULL (the general dispatch finds out why). */
static inline struct sy__route *direct_for_send(struct sy_engine *eng,
						uint32_t id)
{
	if (sy__unlikely(id >= atomic_load_explicit(&eng->send_limit,
						    memory_order_acquire)))
		return NULL;
	/* A1: pairs with R1 in registry.c. */
	return atomic_load_explicit(&eng->direct[id], memory_order_acquire);
}

/* May a message go to @p srv now? Takes a half-open probe token if needed;
 * a ramping server (slow start) takes it without a draw. */
static inline bool admit(struct sy__server *srv)
{
	unsigned gate = atomic_load_explicit(&srv->gate, memory_order_relaxed);

	return sy__likely(gate == 0) ||
	       ((gate & ~(unsigned)SY_GATE_WARMING) == SY_GATE_BREAKER &&
		sy__breaker_admit(srv)) ||
	       gate == SY_GATE_WARMING;
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

/* pick() found no server available (not late: see sy__late()). */
static inline struct sy__server *no_server(struct sy_msg *m)
{
	m->pick = 0;
	return NULL;
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
		return no_server(m);
	if (n > 1) {
		int k;

		ctx->msg = m;
		k = r->pick(r->pstate, ctx);
		/* A deadline-aware route's verdict: no server in time. From
		 * a policy's own pick, INT_MIN is an index out of range. */
		if (sy__unlikely(k == SY__PICK_LATE) &&
		    r->pick == sy__deadline_pick) {
			m->pick = SY__PICK_LATE_MARK;
			return NULL;
		}
		i = k >= 0 && (unsigned)k < n ? (unsigned)k : 0;
		if (sy__unlikely(r->servers[i]->id == avoid))
			i = i + 1 == n ? 0 : i + 1;
	}
	for (unsigned tries = 0; tries < n; tries++) {
		struct sy__server *srv = r->servers[i];
		unsigned gate = atomic_load_explicit(&srv->gate,
						     memory_order_relaxed);
		int k;

		if (sy__likely(gate == 0)) {
			assign(r, i, m);
			return srv;
		}
		/* Breaker, ramp (slow_start.c): k may be another server. */
		k = sy__admit_gated(ctx, i, gate);
		if (k >= 0) {
			assign(r, (unsigned)k, m);
			return r->servers[k];
		}
		i = i + 1 == n ? 0 : i + 1;
	}
	return no_server(m);
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
 * threshold (and, on a CoDel route, that is not shedding). false when
 * there is none (m keeps its pick). */
static bool spill(struct sy__slot *s, const struct sy__route *r,
		  struct sy_msg *m)
{
	struct sy__ring *out = sy__slot_out(s);
	unsigned n = r->n, from = m->pick;

	for (unsigned t = 1; t < n; t++) {
		unsigned j = (from + t) % n;
		struct sy__server *srv = r->servers[j];

		if (sy__ring_over(&out[srv->worker], r->bp_high) || !admit(srv) ||
		    (r->codel_target && sy__codel_dropping(&srv->codel)))
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

/*
 * A send on a CoDel route, after its pick: when a shed is due at @p m's
 * server (codel.c), shed @p m by the route's mode; otherwise (or once
 * spilled) stamp it for the worker's measure, with the pick's clock (one
 * read per send call). @return SY_GO (m->server may have changed),
 * SY_TAKEN (dead-lettered as overload), or -ENOBUFS (refused, not yet
 * counted; the message is the caller's).
 */
static __attribute__((noinline)) int codel_send(struct sy_engine *eng,
						struct sy__slot *s,
						struct sy_pick *ctx,
						struct sy_msg *m)
{
	const struct sy__route *r = ctx->route;

	if (sy__codel_take(&m->server->codel)) {
		if (r->bp_mode == SY_BP_SPILL && spill(s, r, m)) {
			sy__total_add(&s->totals, SY_T_CODEL_SHED, 1);
		} else if (r->bp_mode == SY_BP_DEAD_LETTER && dead_letters(m)) {
			uint32_t server = m->server->id;

			unpick(m);
			sy__total_add(&s->totals, SY_T_CODEL_SHED, 1);
			accept_dead(eng, s, r, m, SY_DL_OVERLOAD, server);
			return SY_TAKEN;
		} else {
			/* A waiting send counts neither: it tries again. */
			if (!s->quiet)
				sy__total_add(&s->totals, SY_T_CODEL_SHED, 1);
			unpick(m);
			return -ENOBUFS;
		}
	}
	if (!ctx->now)
		ctx->now = sy__now(eng);
	m->enq_ns = ctx->now;
	m->codel = 1;
	return SY_GO;
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
 * refuse it (-EHOSTUNREACH). A deadline-aware route found no server in time
 * (sy__late()): dead-letter it as late (0), or refuse a call (-ETIME).
 */
static __attribute__((noinline)) int unreachable(struct sy_engine *eng,
						 struct sy__slot *s,
						 const struct sy__route *r,
						 struct sy_msg *m)
{
	if (sy__late(m)) {
		if (!dead_letters(m))
			return reject(s, -ETIME, 1, r->id);
		accept_dead(eng, s, r, m, SY_DL_TIMEOUT, SY_ANY);
		return 0;
	}
	if (r->dl_unreachable && dead_letters(m)) {
		accept_dead(eng, s, r, m, unreachable_reason(r), SY_ANY);
		return 0;
	}
	return reject(s, -EHOSTUNREACH, 1, r->id);
}

/*
 * Every case of sy__dispatch(): policies, unusable servers, backpressure,
 * sampling, refusals. For a request that may be hedged, @p arm (hedge.h):
 * armed on a hedging route, told the server taken. For a hedge's @p copy:
 * never server @p avoid, never dead-lettered or waiting, refused instead.
 */
static __attribute__((always_inline)) inline int
dispatch_general(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		 struct sy__slot *s, struct sy__hedge *arm, uint32_t avoid,
		 bool copy)
{
	struct sy__server *srv;
	struct sy_pick ctx;
	struct sy__route *r;
	uint64_t until = 0;
	uint64_t outer;
	unsigned w;
	int err = 0;

again:
	outer = sy__slot_read_lock(&s->rcu, &eng->rcu_period);
	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r)) {
		sy__slot_read_unlock(&s->rcu, outer);
		return reject(s, err, 1, route);
	}
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	if (arm && !arm->copy && sy__route_hedges(r)) /* once, if it waits */
		sy__hedge_arm(s, r, m, arm);
	srv = pick(&ctx, m, avoid);
	if (copy && (!srv || srv->id == avoid))
		goto copy_refused;
	if (sy__unlikely(!srv)) {
		err = unreachable(eng, s, r, m);
		sy__slot_read_unlock(&s->rcu, outer);
		return err;
	}
	if (sy__unlikely(r->codel_target)) {
		err = codel_send(eng, s, &ctx, m);
		if (err) {
			sy__slot_read_unlock(&s->rcu, outer);
			return err == SY_TAKEN ? 0 :
			       reject_at(s, err, 1, route, srv->id);
		}
		srv = m->server;
	}
	if (sy__unlikely(r->bp_mode != SY_BP_OFF) &&
	    sy__ring_over(&sy__slot_out(s)[srv->worker], r->bp_high)) {
		if (copy)
			goto copy_refused;
		err = congested(eng, s, r, m);
		if (err == SY_WAIT) {
			if (!until)
				until = block_until(eng, r, m);
			sy__slot_read_unlock(&s->rcu, outer);
			if (block_wait(eng, until))
				goto again;
			return reject(s, -ENOBUFS, 1, route);
		}
		if (err) {
			sy__slot_read_unlock(&s->rcu, outer);
			return err == SY_TAKEN ? 0 :
			       reject_at(s, err, 1, route, srv->id);
		}
		srv = m->server;
	}
	w = srv->worker; /* srv may be freed once the section ends */
	if (sy__unlikely(sy__slot_sample(s)))
		stamp(eng, m);
	count_accepted(s, 1);
	sy__ring_mark_msg(&sy__slot_out(s)[w], m);
	if (sy__unlikely(!sy__ring_enqueue_spsc(&sy__slot_out(s)[w], m))) {
		withdraw(s, 1);
		unpick(m);
		err = reject_at(s, -EAGAIN, 1, route, srv->id);
		sy__slot_read_unlock(&s->rcu, outer);
		return err;
	}
	if (s->shard)
		count_sent(s, route, srv->id);
	if (arm)
		arm->first = srv->id;
	sy__slot_read_unlock(&s->rcu, outer);
	wake_worker(eng, w);
	return 0;

copy_refused:
	if (srv)
		unpick(m);
	sy__slot_read_unlock(&s->rcu, outer);
	return -EHOSTUNREACH;
}

__attribute__((noinline)) int
sy__dispatch_general(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		     struct sy__slot *s)
{
	return dispatch_general(eng, route, m, s, NULL, SY_ANY, false);
}

/* dispatch_general() for requests and hedges' copies: one instance. */
static __attribute__((noinline)) int
dispatch_hedged(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		struct sy__slot *s, struct sy__hedge *arm, uint32_t avoid,
		bool copy)
{
	return dispatch_general(eng, route, m, s, arm, avoid, copy);
}

int sy__dispatch_request(struct sy_engine *eng, uint32_t route,
			 struct sy_msg *m, struct sy__slot *s,
			 struct sy__hedge *h)
{
	if (sy__likely(sy__dispatch_direct(eng, route, m, s) == 0))
		return 0;
	return dispatch_hedged(eng, route, m, s, h, SY_ANY, false);
}

int sy__dispatch_hedge(struct sy_engine *eng, uint32_t route,
		       struct sy_msg *copy, struct sy__slot *s, uint32_t avoid)
{
	int rc;

	s->quiet = true;
	rc = dispatch_hedged(eng, route, copy, s, NULL, avoid, true);
	s->quiet = false;
	return rc;
}

/* Record in @p m that it goes to @p srv through the direct route @p route
 * (its id, which is the route's index in the table): no pick index (only
 * an observing policy reads it), no route flags. */
static inline void assign_direct(uint32_t route, struct sy__server *srv,
				 struct sy_msg *m, uint8_t keep)
{
	m->server = srv;
	m->route_id = route;
	m->flags &= keep;
}

/*
 * Inside a read-side section: whether a send through @p r, a direct route,
 * may take the direct way now: its server (*@p srv) takes messages, and the
 * ring from slot @p s to the server's worker (*@p ring) has room by the
 * producer's cached index and is below the route's threshold.
 */
static __attribute__((always_inline)) inline bool
direct_open(const struct sy__route *r, struct sy__slot *s,
	    struct sy__server **srv, struct sy__ring **ring)
{
	*srv = r->servers[0];
	*ring = &sy__slot_out(s)[(*srv)->worker];
	return atomic_load_explicit(&(*srv)->gate, memory_order_relaxed) == 0 &&
	       sy__ring_room_cached_spsc(*ring) &&
	       (r->bp_mode == SY_BP_OFF || !sy__ring_over_at(*ring, &r->bp_high));
}

/* The end of a direct send, once its checks have passed: accept, publish,
 * count, end the section, wake the worker. */
static __attribute__((always_inline)) inline int
direct_finish(struct sy__slot *s, const struct sy__route *r, struct sy_msg *m,
	      const struct sy__server *srv, struct sy__ring *ring, uint64_t outer)
{
	count_accepted(s, 1);
	sy__ring_put_spsc(ring, m);
	if (s->shard) {
		sy__shard_add_at(s->shard, srv->sc_at, SY_SC_SENT, 1);
		sy__shard_add_at(s->shard, r->sc_at, SY_SC_SENT, 1);
	}
	sy__slot_read_unlock(&s->rcu, outer);
	/* The direct send runs only where the light sides are free. */
	return sy__ring_wake_as(ring, true);
}

/* A direct send that is a latency sample (one in latency_sample): stamped,
 * out of the common send's way, which reaches it by a tail call (five
 * arguments, all in registers: the server is m's, assigned; the engine
 * is the slot's). */
static __attribute__((noinline, cold)) int
direct_sampled(struct sy__slot *s, struct sy_msg *m, const struct sy__route *r,
	       struct sy__ring *ring, uint64_t outer)
{
	stamp(s->pool.eng, m);
	sy__ring_mark_sample(ring);
	return direct_finish(s, r, m, m->server, ring, outer);
}

/*
 * The common send: a direct route (one server, no in-flight count, no
 * observing policy) whose server takes messages, with room in the ring by
 * the producer's cached index, below the route's backpressure threshold
 * (a latency sample among them, through direct_sampled()). Everything it
 * checks comes before anything it changes, so it cannot fail once it has
 * begun: every other case goes to @p general, by a tail call. Each of its
 * ends is a tail call (the general dispatch, a latency sample's, a
 * sleeping worker's wake-up) or a return of 0, so an entry point that
 * returns what it returns needs no stack frame. Inlined into each entry
 * point by link-time optimization (the default build).
 */
__attribute__((always_inline)) inline int
sy__dispatch_direct_or(struct sy_engine *eng, uint32_t route,
		       struct sy_msg *m, struct sy__slot *s,
		       sy__dispatch_fn *general, uint8_t keep)
{
	struct sy__server *srv;
	struct sy__route *r;
	struct sy__ring *ring;
	uint64_t outer;

	/* One test of the barriers' mode for the section's and the wake-up's
	 * light sides: without membarrier, the general path's fences. */
	if (sy__unlikely(!sy__barrier_asymmetric))
		goto general_unlocked;
	outer = sy__slot_read_lock_as(&s->rcu, &eng->rcu_period, true);
	r = direct_for_send(eng, route);
	if (sy__unlikely(!r || !direct_open(r, s, &srv, &ring)))
		goto general;
	assign_direct(route, srv, m, keep);
	if (sy__unlikely(sy__slot_sample(s)))
		return direct_sampled(s, m, r, ring, outer);
	return direct_finish(s, r, m, srv, ring, outer);

general:
	sy__slot_read_unlock(&s->rcu, outer);
general_unlocked:
	/* The slot's engine, @p eng: one register fewer held to here. */
	return general ? general(s->pool.eng, route, m, s) : SY_DISPATCH_GENERAL;
}

__attribute__((always_inline)) inline int
sy__dispatch_direct(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		    struct sy__slot *s)
{
	return sy__dispatch_direct_or(eng, route, m, s, NULL, SY_MSG_KEEP_FLAGS);
}

int sy__dispatch(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		 struct sy__slot *s)
{
	return sy__dispatch_direct_or(eng, route, m, s, sy__dispatch_general,
				      SY_MSG_KEEP_FLAGS);
}

int sy__dispatch_quiet(struct sy_engine *eng, uint32_t route,
		       struct sy_msg *m, struct sy__slot *s)
{
	int rc;

	s->quiet = true;
	rc = sy__dispatch(eng, route, m, s);
	s->quiet = false;
	return rc;
}

/*
 * Enqueue the messages picked for one worker: one message alone, more in a
 * burst descriptor. @p one: every message goes to this server through
 * @p route, and the descriptor says so: the messages' own server and route
 * need not be set (a message alone gets them here). NULL: each message has
 * its own, assigned. @return 0 or -EAGAIN (ring full) or -ENOMEM.
 */
static int enqueue_group(struct sy__slot *s, unsigned w, struct sy_msg **msgs,
			 unsigned n, struct sy__server *one, uint32_t route)
{
	struct sy__ring *ring = &sy__slot_out(s)[w];
	struct sy_msg *d;
	struct sy__burst *b;

	sy__ring_mark_msg(ring, msgs[0]);
	if (n == 1) {
		if (one) {
			msgs[0]->server = one;
			msgs[0]->route_id = route;
		}
		return sy__ring_enqueue_spsc(ring, msgs[0]) ? 0 : -EAGAIN;
	}
	d = sy__msg_alloc(s, sizeof(*b));
	if (sy__unlikely(!d))
		return -ENOMEM;
	sy__msg_init_burst(d, one, route, n);
	/* A worker that sees TIMED reads the clock when it takes the entry. */
	d->flags |= msgs[0]->flags & SY_MSG_TIMED;
	b = (struct sy__burst *)d->data;
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
			sy__ring_mark_msg(&out[srv->worker], m);
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
 * A chunk for a route of one server: when the server takes messages and
 * its ring is below the route's threshold, every message goes to it in one
 * ring entry, with one check for all of them. Ends the read-side section
 * and @return what send_chunk() returns; SY_GO: the general path must
 * decide (nothing was changed, the section is still held).
 */
static int chunk_to_one(struct sy_engine *eng, uint32_t route,
			struct sy_msg **msgs, unsigned n, struct sy__slot *s,
			struct sy__route *r, uint64_t outer)
{
	struct sy__server *srv = r->servers[0];
	unsigned w = srv->worker;
	uint32_t sid = srv->id;
	int err;

	if (atomic_load_explicit(&srv->gate, memory_order_relaxed) != 0 ||
	    (r->bp_mode != SY_BP_OFF &&
	     sy__ring_over(&sy__slot_out(s)[w], r->bp_high)))
		return SY_GO;
	/* A direct route's messages are left as they are: the worker gives
	 * each the server and route of the burst's descriptor (worker.c). */
	if (!r->direct)
		for (unsigned i = 0; i < n; i++)
			assign(r, 0, msgs[i]);
	if (sy__unlikely(sy__slot_sample(s)))
		stamp(eng, msgs[0]);
	count_accepted(s, n);
	err = enqueue_group(s, w, msgs, n, srv, route);
	if (sy__unlikely(err)) {
		withdraw(s, n);
		for (unsigned i = 0; i < n; i++)
			unpick(msgs[i]);
		err = reject_at(s, err, n, route, sid);
		sy__slot_read_unlock(&s->rcu, outer);
		return err;
	}
	if (s->shard) {
		sy__sc_add(&s->shard->route[route], SY_SC_SENT, n);
		sy__sc_add(&s->shard->server[sid], SY_SC_SENT, n);
	}
	sy__slot_read_unlock(&s->rcu, outer);
	wake_worker(eng, w);
	return (int)n;
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
	uint64_t outer = sy__slot_read_lock(&s->rcu, &eng->rcu_period);

	r = route_for_send(eng, route, &err);
	if (sy__unlikely(!r)) {
		sy__slot_read_unlock(&s->rcu, outer);
		return reject(s, err, n, route);
	}
	if (r->n == 1 && !r->codel_target) {
		err = chunk_to_one(eng, route, msgs, n, s, r, outer);
		if (err != SY_GO)
			return err;
	}
	/* One pick context for the chunk: a policy reads the clock once. */
	ctx.route = r;
	ctx.slot = s;
	ctx.eng = eng;
	ctx.now = 0;
	for (unsigned i = 0; i < n; i++) {
		struct sy__server *srv;
		int rc = SY_GO;

		srv = pick(&ctx, msgs[i], SY_ANY);
		if (srv && sy__unlikely(r->codel_target)) {
			rc = codel_send(eng, s, &ctx, msgs[i]);
			if (rc < 0)
				reject_at(s, rc, 1, route, srv->id);
			srv = msgs[i]->server;
		}
		if (sy__likely(srv) && rc == SY_GO) {
			worker_of[i] = (unsigned short)srv->worker;
			sid[i] = srv->id;
		} else if (rc == SY_TAKEN ||
			   (!srv && unreachable(eng, s, r, msgs[i]) == 0)) {
			worker_of[i] = TAKEN;
		} else {
			worker_of[i] = REFUSED;
			if (!err)
				err = srv ? rc : -EHOSTUNREACH;
		}
		mixed |= worker_of[i] != worker_of[0];
	}
	if (sy__unlikely(sy__slot_sample(s)))
		timed = true;
	if (!mixed && worker_of[0] < TAKEN &&
	    !(r->bp_mode != SY_BP_OFF && sy__ring_over(&out[worker_of[0]], r->bp_high))) {
		/* The common case: every message for one worker. */
		if (timed)
			stamp(eng, msgs[0]);
		count_accepted(s, n);
		err = enqueue_group(s, worker_of[0], msgs, n, NULL, route);
		if (err) {
			withdraw(s, n);
			for (unsigned i = 0; i < n; i++)
				unpick(msgs[i]);
			err = reject_at(s, err, n, route, sid[0]);
			sy__slot_read_unlock(&s->rcu, outer);
			return err;
		}
		if (s->shard)
			count_sent_burst(s, route, sid, n);
		sy__slot_read_unlock(&s->rcu, outer);
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
		rc = enqueue_group(s, w, group, k, NULL, route);
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
	sy__slot_read_unlock(&s->rcu, outer);
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

/*
 * A burst's common send, as sy__dispatch_direct_or() is a message's (inlined
 * into sy_msg_send_burst() by link-time optimization): 2 to
 * SY_BURST_MAX messages through a direct route whose server takes
 * messages, with room in the ring by the producer's cached index, below the
 * route's threshold, and a descriptor in the slot's open group. The
 * descriptor names the server and route, so the messages are left as they
 * are (the worker gives them both, worker.c). Everything it checks comes
 * before anything it changes: @return @p n, or SY_DISPATCH_GENERAL with
 * nothing done.
 */
__attribute__((always_inline)) inline int
sy__dispatch_burst_direct(struct sy_engine *eng, uint32_t route,
			  struct sy_msg **msgs, unsigned n, struct sy__slot *s)
{
	struct sy_msg **d_at = s->pool.at[SY_BURST_CLASS], *d;
	struct sy__server *srv;
	struct sy__route *r;
	struct sy__ring *ring;
	uint64_t outer;

	if (sy__unlikely(!sy__barrier_asymmetric || n < 2 ||
			 n > SY_BURST_MAX || d_at == s->pool.end[SY_BURST_CLASS]))
		return SY_DISPATCH_GENERAL;
	outer = sy__slot_read_lock_as(&s->rcu, &eng->rcu_period, true);
	r = direct_for_send(eng, route);
	if (sy__unlikely(!r || !direct_open(r, s, &srv, &ring)))
		goto general;
	d = *d_at;
	s->pool.at[SY_BURST_CLASS] = d_at + 1;
	sy__msg_init_burst(d, srv, route, n);
	if (sy__unlikely(sy__slot_sample(s))) {
		stamp(eng, msgs[0]);
		d->flags |= SY_MSG_TIMED;
		sy__ring_mark_sample(ring);
	}
	count_accepted(s, n);
	/* A whole burst's copy has a size the compiler knows: no call. */
	if (n == SY_BURST_MAX)
		memcpy(((struct sy__burst *)d->data)->msgs, msgs,
		       SY_BURST_MAX * sizeof(msgs[0]));
	else
		memcpy(((struct sy__burst *)d->data)->msgs, msgs,
		       n * sizeof(msgs[0]));
	sy__ring_put_spsc(ring, d);
	if (s->shard) {
		sy__shard_add_at(s->shard, srv->sc_at, SY_SC_SENT, n);
		sy__shard_add_at(s->shard, r->sc_at, SY_SC_SENT, n);
	}
	sy__slot_read_unlock(&s->rcu, outer);
	sy__ring_wake_as(ring, true);
	return (int)n;

general:
	sy__slot_read_unlock(&s->rcu, outer);
	return SY_DISPATCH_GENERAL;
}

int sy__dispatch_burst(struct sy_engine *eng, uint32_t route,
		       struct sy_msg **msgs, unsigned n, struct sy__slot *s)
{
	int direct = sy__dispatch_burst_direct(eng, route, msgs, n, s);
	uint64_t until = 0;
	unsigned done = 0;

	if (sy__likely(direct != SY_DISPATCH_GENERAL))
		return direct;

	while (done < n) {
		unsigned chunk = n - done < SY_BURST_MAX ? n - done : SY_BURST_MAX;
		unsigned waiting = 0;
		int rc = send_chunk(eng, route, msgs + done, chunk, s, &until,
				    &waiting);

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
int sy__dispatch_retry(struct sy__worker *w, struct sy_msg *m,
		       enum sy_dl_reason *why)
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
		*why = sy__late(m) ? SY_DL_TIMEOUT : unreachable_reason(r);
		return -EHOSTUNREACH;
	}
	ring = &sy__slot_out(s)[srv->worker];
	if (r->codel_target) { /* retries are stamped, never shed */
		m->enq_ns = sy__now(eng);
		m->codel = 1;
	}
	if (r->bp_mode != SY_BP_OFF && sy__ring_over(ring, r->bp_high)) {
		unpick(m);
		return -EAGAIN;
	}
	sy__ring_mark_msg(ring, m);
	if (!sy__ring_enqueue_spsc(ring, m)) {
		unpick(m);
		return -EAGAIN;
	}
	wake_worker(eng, srv->worker);
	return 0;
}

