/*
 * Workers.
 *
 * A worker polls, in turn, its inbound ring from every slot in use (the
 * producers' and the other workers'), taking up to `burst` entries from each,
 * and runs the handler of each message's server. One RCU read-side section
 * covers a whole pass, so handlers that send pay only a nested lock.
 *
 * When a pass finds nothing the worker idles by its strategy: spin; spin then
 * yield; or spin, yield, then park until a sender wakes it (park.h). Before
 * it idles it hands back the messages it freed for other threads' pools.
 *
 * Stop: once the engine is STOPPING and a grace period has passed, no send
 * can enqueue; the control thread then sets `drain` (release, D1). A worker
 * that read `drain` (acquire, pairs with D1) before a pass that found every
 * inbox empty has nothing more to do and exits.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "core/breaker.h"
#include "core/codel.h"
#include "core/compiler.h"
#include "core/dlq.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/msg.h"
#include "core/parking.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "core/remote.h"
#include "core/reply.h"
#include "core/retry.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/worker.h"
#include "metrics/shard.h"

/* Tell the route's policy how a handler run went, if the route still holds
 * the server at the index it was picked from. */
static void observe(struct sy__worker *w, uint32_t route_id, unsigned pick,
		    struct sy__server *srv, int rc, uint64_t start_ns,
		    uint64_t end_ns)
{
	struct sy__route *r;

	/* Inside the pass's read-side section; pairs with R1 in registry.c. */
	r = atomic_load_explicit(&w->eng->routes[route_id], memory_order_acquire);
	if (r && pick < r->n && r->servers[pick] == srv && r->policy->observe)
		r->policy->observe(r->pstate, pick, rc, end_ns - start_ns, end_ns);
}

/* What one sy__worker_drain_ring() call carries from message to message. */
struct drain {
	struct sy__release_batch done; /* freed messages, handed back together */
	struct sy__release_batch descs;/* burst descriptors, the same way */
	uint64_t clock;                /* end of the previous observed run, or 0 */
	unsigned clock_runs;           /* runs_of() then: none since, if equal */
	uint64_t now;                  /* clock read for deadlines in this batch, or 0 */
	uint64_t taken_ns;             /* when the batch was taken, if it holds a sample */
	struct sy__server *handled_srv;/* in-flight count not yet given back: */
	int64_t handled;               /* this many runs of handled_srv */
	unsigned runs;                 /* handler runs, counted at runs_flush() */
	/* Runs not yet counted, of one server (NULL: none yet) and route: */
	const struct sy__server *m_srv;
	uint32_t m_route;
	uint32_t ok, failed, again;    /* again: runs that were not the first */
};

/* Handler runs counted so far in @p d, whatever their outcome. */
static inline unsigned runs_of(const struct drain *d)
{
	return d->runs + d->ok + d->failed;
}

/* Give back the in-flight count of the runs handled so far. */
static void drain_settle(struct drain *d)
{
	if (d->handled) {
		atomic_fetch_sub_explicit(&d->handled_srv->inflight, d->handled,
					  memory_order_relaxed);
		d->handled = 0;
	}
}

/* One more message of @p srv is no longer in flight. */
static inline void settle_one(struct drain *d, struct sy__server *srv)
{
	if (d->handled_srv != srv) {
		drain_settle(d);
		d->handled_srv = srv;
	}
	d->handled++;
}

/* Has @p m's deadline passed? One clock read per batch. */
static bool expired(struct sy__worker *w, const struct sy_msg *m,
		    struct drain *d)
{
	if (!d->now)
		d->now = sy__now(w->eng);
	return d->now >= m->deadline;
}

/* @p m expired before its handler ran: dead-letter it. */
static __attribute__((noinline)) void expire(struct sy__worker *w,
					     struct sy_msg *m, struct drain *d)
{
	struct sy__server *srv = m->server;

	if (m->flags & SY_MSG_INFLIGHT)
		settle_one(d, srv);
	m->last_server = srv->id;
	sy__dead_letter(w->eng, w->slot, m, SY_DL_TIMEOUT, srv->id);
}

/*
 * Count the handler runs gathered in @p d: the first runs in the route's
 * retry budget, the results in the worker's metrics shard.
 */
static void runs_flush(struct sy__worker *w, struct drain *d)
{
	struct sy__shard *sh = w->slot->shard;

	d->runs += d->ok + d->failed;
	if (d->ok + d->failed > d->again)
		w->budget[d->m_route].runs += d->ok + d->failed - d->again;
	d->again = 0;
	if (sh && d->ok) {
		sy__sc_add(&sh->server[d->m_srv->id], SY_SC_DELIVERED, d->ok);
		sy__sc_add(&sh->route[d->m_route], SY_SC_DELIVERED, d->ok);
	}
	if (sh && d->failed) {
		sy__sc_add(&sh->server[d->m_srv->id], SY_SC_FAILED, d->failed);
		sy__sc_add(&sh->route[d->m_route], SY_SC_FAILED, d->failed);
	}
	d->ok = d->failed = 0;
}

/* Gather a handler run while its server and route repeat. */
static inline void count_run(struct sy__worker *w, struct drain *d,
			     const struct sy__server *server, uint32_t route,
			     int rc, bool first)
{
	if (d->m_srv != server || d->m_route != route) {
		runs_flush(w, d);
		d->m_srv = server;
		d->m_route = route;
	}
	d->again += !first;
	if (rc >= 0)
		d->ok++;
	else
		d->failed++;
}

/* Why a failed run is dead-lettered: a remote server's failures have their
 * own reason, whatever the retries did. */
static enum sy_dl_reason failure_reason(const struct sy__server *srv,
					enum sy_dl_reason why)
{
	return srv->remote ? SY_DL_REMOTE : why;
}

/*
 * @p m failed with @p rc and will not be retried: what its route says
 * (SY_FAIL_*). A plain message, or a request that cannot go back to its
 * requester, is dead-lettered with @p why.
 */
static void give_up(struct sy__worker *w, const struct sy__route *r,
		    struct sy_msg *m, struct sy__server *srv, int rc,
		    enum sy_dl_reason why)
{
	if (r && sy__unlikely(r->park_after) && !srv->remote)
		sy__parking_failed(w->eng, r, m, srv);
	switch (r ? r->on_failure : SY_FAIL_DEAD_LETTER) {
	case SY_FAIL_DROP:
		sy__total_add(&w->slot->totals, SY_T_DROPPED, 1);
		sy__msg_release(w->slot, m);
		return;
	case SY_FAIL_RETURN:
		if ((m->flags & SY_MSG_REQUEST) && sy__reply_failure(w, m, rc) == 0)
			return;
		break;
	default:
		break;
	}
	sy__dead_letter(w->eng, w->slot, m, why, srv->id);
}

/*
 * The handler of @p m failed with @p rc and left the message to the engine:
 * retry it if its route allows and the budget has room, else give it up as
 * the route says; if the engine is stopping, a retry it would have had is
 * dead-lettered as shutdown.
 */
static __attribute__((noinline)) void failed(struct sy__worker *w,
					     struct sy_msg *m,
					     struct sy__server *srv, int rc,
					     struct drain *d)
{
	struct sy_engine *eng = w->eng;
	struct sy__route *r;
	struct sy__budget *b = &w->budget[m->route_id];

	runs_flush(w, d); /* the budget counts this run */
	sy__total_add(&w->slot->totals, SY_T_HANDED_ON, 1);
	m->attempts++;
	m->last_server = srv->id;
	/* Inside the pass's read-side section; pairs with R1 in registry.c. */
	r = atomic_load_explicit(&eng->routes[m->route_id], memory_order_acquire);
	if (!r || r->max_attempts <= 1) {
		give_up(w, r, m, srv, rc,
			failure_reason(srv, SY_DL_HANDLER_FAILED));
		return;
	}
	if (!sy__retry_allowed(r, m, b)) {
		give_up(w, r, m, srv, rc,
			failure_reason(srv, SY_DL_RETRIES_EXHAUSTED));
		return;
	}
	if (atomic_load_explicit(&eng->state, memory_order_relaxed) >=
	    SY_ENGINE_STOPPING) {
		sy__dead_letter(eng, w->slot, m, SY_DL_SHUTDOWN, srv->id);
		return;
	}
	b->retries++;
	sy__total_add(&w->slot->totals, SY_T_RETRIED, 1);
	if (w->slot->shard) {
		sy__sc_add(&w->slot->shard->route[m->route_id], SY_SC_RETRIED, 1);
		sy__sc_add(&w->slot->shard->server[srv->id], SY_SC_RETRIED, 1);
	}
	sy__retry_schedule(w, r, m);
}

/* A latency sample starts its handler run: record how long it waited. */
static __attribute__((noinline)) uint64_t timed_start(struct sy__worker *w,
						      const struct sy_msg *m,
						      const struct drain *d)
{
	uint64_t now = sy__now(w->eng);
	struct sy__shard *sh = w->slot->shard;

	if (sh) {
		sy__hist_record(&sh->hist[SY_HIST_LATENCY], now - m->sent_ns);
		sy__shard_route_lat(sh, m->route_id, now - m->sent_ns);
		if (d->taken_ns >= m->sent_ns)
			sy__hist_record(&sh->hist[SY_HIST_SOJOURN],
					d->taken_ns - m->sent_ns);
	}
	return now;
}

static void timed_end(struct sy__worker *w, uint64_t start)
{
	struct sy__shard *sh = w->slot->shard;

	if (sh)
		sy__hist_record(&sh->hist[SY_HIST_SERVICE],
				sy__now(w->eng) - start);
}

/* Whether a success has nothing to tell @p srv's breaker now. */
static inline bool breaker_quiet(const struct sy__server *srv)
{
	return srv->breaker_quiet &&
	       !(atomic_load_explicit(&srv->gate, memory_order_relaxed) &
		 SY_GATE_BREAKER);
}

/* Tell @p srv's breaker how a run went; a success while it is closed and
 * has nothing counted changes nothing, and costs no call. */
static inline void breaker_result(struct sy__server *srv, bool ok)
{
	if (ok && breaker_quiet(srv))
		return;
	sy__breaker_record(srv, ok);
}

void sy__worker_defer(struct sy__worker *w)
{
	w->taken = true;
	w->deferred = true;
}

/* What follows a handler run that failed, kept its message or has a
 * breaker to tell: the general case of a run's end. @return true when the
 * run was deferred (sy__worker_defer()): nothing is counted now, the
 * message comes back with its result. */
static bool run_end(struct sy__worker *w, struct sy_msg *m,
		    struct sy__server *srv, uint32_t route_id, int rc,
		    bool first, struct drain *d)
{
	if (sy__unlikely(w->taken && w->deferred)) {
		w->deferred = false;
		return true;
	}
	if (sy__unlikely(srv->breaker != NULL))
		breaker_result(srv, rc >= 0);
	count_run(w, d, srv, route_id, rc, first);
	if (sy__unlikely(rc < 0)) {
		sy__total_add(&w->slot->totals, SY_T_HANDLER_FAILED, 1);
		if (!w->taken)
			failed(w, m, srv, rc, d);
	} else if (!w->taken) {
		sy__release_batch_add(&w->slot, &d->done, m);
	}
	return false;
}

/* When a run observed by its policy started: for a remote server's result
 * coming back, when the message was published (the round trip); right
 * after an observed run, when that one ended, unless another run came
 * between them (a plain run does not reset d->clock: it is counted). */
static uint64_t observe_start(struct sy__worker *w, const struct sy_msg *m,
			      const struct sy__server *srv,
			      const struct drain *d)
{
	if (sy__unlikely(srv->remote) &&
	    m->remote_mark == sy__remote_mark_of(m, SY_REMOTE_DONE))
		return m->sent_ns;
	if (d->clock && d->clock_runs == runs_of(d))
		return d->clock;
	return sy__now(w->eng);
}

/*
 * Run @p m's handler. Timed runs back to back cost one clock read each (the
 * end of one is the start of the next); in-flight counts are given back once
 * per run of messages to one server. @return the handler's result; negative
 * when it did not run (expired), or its run was deferred. Inlined in
 * handle(), which drops the result, and in handle_parking().
 */
static inline __attribute__((always_inline)) int run_one(struct sy__worker *w,
							 struct sy_msg *m,
							 struct drain *d)
{
	struct sy__server *srv = m->server;
	uint8_t flags = m->flags;
	uint32_t route_id = m->route_id;
	unsigned pick = m->pick;
	uint64_t t0 = 0, start = 0;
	uint32_t origin = 0;
	bool first, drop = false, deferred;
	int rc;

	if (flags & (SY_MSG_DEADLINE | SY_MSG_TIMED)) {
		if (flags & SY_MSG_DEADLINE) {
			origin = sy__remote_origin_take(m);
			if (expired(w, m, d)) {
				expire(w, m, d);
				if (sy__unlikely(origin))
					sy__remote_ended(w, origin, -ETIMEDOUT);
				return -ETIMEDOUT;
			}
		}
		if (flags & SY_MSG_TIMED)
			start = timed_start(w, m, d);
	}
	/* The handler may give the message away: read it before. */
	if (flags & SY_MSG_OBSERVE) {
		t0 = observe_start(w, m, srv, d);
		if (sy__unlikely(m->codel))
			sy__codel_dequeue(w, m, srv, t0);
	}
	d->clock = 0;
	first = m->attempts == 0; /* failed runs so far */
	w->current = m;
	rc = srv->fn(w->eng, m, srv->ctx);
	w->current = NULL;
	/* A message from another engine that failed here ends here (counted
	 * as kept): its sender retries or dead-letters it. */
	if (sy__unlikely(origin) && rc < 0 && !w->taken)
		drop = w->taken = true;
	deferred = run_end(w, m, srv, route_id, rc, first, d);
	w->taken = false;
	if (deferred) {
		if (sy__unlikely(origin))
			sy__remote_ended(w, origin, rc);
		return -EINPROGRESS;
	}
	if (sy__unlikely(drop))
		sy__msg_release(w->slot, m);
	if (sy__unlikely(origin))
		sy__remote_ended(w, origin, rc);
	if (flags & SY_MSG_TIMED)
		timed_end(w, start);
	if (flags & SY_MSG_INFLIGHT)
		settle_one(d, srv);
	if (flags & SY_MSG_OBSERVE) {
		d->clock = sy__now(w->eng);
		d->clock_runs = runs_of(d); /* this run's count included */
		observe(w, route_id, pick, srv, rc, t0, d->clock);
	}
	return rc;
}

/* Flags that need more than a handler run and a count. */
#define SY_MSG_SLOW (SY_MSG_BURST | SY_MSG_DEADLINE | SY_MSG_TIMED | \
		     SY_MSG_OBSERVE | SY_MSG_INFLIGHT)

/*
 * A uniform burst whose messages may go back whole: while every run so
 * far was plain and freed its message, of one pool and class (home), the
 * freed messages stay listed in the descriptor (msgs), which goes back to
 * their pool as one group of them (sy__release_whole()). home is 0 once
 * that stopped.
 */
struct whole {
	uintptr_t home;
	void *const *msgs;
};

/* The burst does not go back whole after all: the messages its plain
 * runs freed so far, those listed before @p end, are counted and released
 * one by one, as other runs' are. */
static __attribute__((noinline, cold)) void
whole_end(struct sy__worker *w, struct whole *whole, void *const *end,
	  struct drain *d)
{
	whole->home = 0;
	d->ok += (uint32_t)(end - whole->msgs);
	for (void *const *at = whole->msgs; at != end; at++)
		sy__release_batch_add(&w->slot, &d->done, *at);
}

/*
 * Run the handler of @p m, a first run that needs no more than a count
 * and freeing (or its end timed by the caller), on @p srv through
 * @p route_id; a run that fails or keeps its message takes run_end().
 * @p keyed: the run's key (server and route) may differ from the last
 * run's; @p breaker: @p srv may have a circuit breaker; @p unset: m's
 * server and route are not written yet (a failed run's handling reads
 * them). Leaves w->current set: the caller clears it. @return false when
 * the run was deferred (sy__worker_defer()).
 */
static inline __attribute__((always_inline)) bool
run_plain(struct sy__worker *w, struct sy_engine *eng, struct sy_msg *m,
	  struct sy__server *srv, uint32_t route_id, bool keyed, bool breaker,
	  bool unset, struct drain *d, struct whole *whole, void *const *at)
{
	int rc;

	w->current = m;
	rc = srv->fn(eng, m, srv->ctx);
	if (sy__unlikely(rc < 0 || w->taken)) {
		bool deferred;

		if (whole)
			whole_end(w, whole, at, d);

		/* Still the worker's (not kept, not passed on): it failed. */
		if (unset && !w->taken) {
			m->server = srv;
			m->route_id = route_id;
		}
		w->current = NULL;
		deferred = run_end(w, m, srv, route_id, rc, true, d);
		w->taken = false;
		if (deferred)
			d->clock = 0; /* not counted: the next run is not observed from here */
		return !deferred && !whole;
	}
	if (breaker && sy__unlikely(srv->breaker != NULL))
		breaker_result(srv, true);
	if (keyed && sy__unlikely(d->m_srv != srv ||
				  d->m_route != route_id)) {
		runs_flush(w, d);
		d->m_srv = srv;
		d->m_route = route_id;
	}
	if (whole) {
		/* Leave the line modified here, as a release does (pool.h). */
		m->next = NULL;
		if (sy__likely(m->home == whole->home))
			return true;
		whole_end(w, whole, at + 1, d);
		return false;
	}
	d->ok++;
	sy__release_batch_add(&w->slot, &d->done, m);
	return true;
}

static __attribute__((noinline)) void handle(struct sy__worker *w,
					     struct sy_msg *m,
					     struct drain *d)
{
	uint64_t start;

	/* A latency sample and nothing else: a plain run between two clock
	 * reads, without the general case's checks. */
	if (sy__msg_plain(m, SY_MSG_SLOW & ~SY_MSG_TIMED)) {
		start = timed_start(w, m, d);
		if (run_plain(w, w->eng, m, m->server, m->route_id, true, true,
			      false, d, NULL, NULL))
			timed_end(w, start);
		w->current = NULL;
		return;
	}
	run_one(w, m, d);
}

/*
 * @p m's route parks keys (parking.c): hold it if its key is parked (or
 * dead-letter it when the key's queue is full), else run it; when it is
 * the first of a released key's messages, run the others after it, in
 * order, before anything newer with that key. Each goes through the check
 * again: a key that fails again is parked again, the rest held again.
 */
static __attribute__((noinline)) void handle_parking(struct sy__worker *w,
						     struct sy__parking *t,
						     struct sy_msg *m,
						     struct drain *d)
{
	struct sy_msg *rest = NULL;
	struct sy__server *srv;
	uint32_t route = m->route_id;
	uint64_t key = m->key;

	/* A remote server's run comes back to handle() with its result
	 * (remote.c): its keys are not parked. */
	switch (m->server->remote ? SY__PARK_RUN :
		sy__parking_admit(t, m, &rest)) {
	case SY__PARK_HELD:
		return; /* still in flight, on its server's count */
	case SY__PARK_FULL:
		srv = m->server;
		if (m->flags & SY_MSG_INFLIGHT)
			settle_one(d, srv);
		m->last_server = srv->id;
		sy__dead_letter(w->eng, w->slot, m, SY_DL_PARKED, srv->id);
		return;
	case SY__PARK_RUN:
		break;
	}
	if (run_one(w, m, d) >= 0)
		sy__parking_ok(t, route, key);
	while (rest) {
		struct sy_msg *next = rest->next;

		handle_parking(w, t, rest, d);
		rest = next;
	}
}

static void handle_burst(struct sy__worker *w, struct sy_msg *desc,
			 struct drain *d);

/* run_msgs()'s step: the entry at @p at. @return false when it ends
 * @p whole (the burst does not go back whole), true otherwise. */
static inline __attribute__((always_inline)) bool
run_entry(struct sy__worker *w, void *const *at, struct sy__server *one,
	  uint32_t one_route, bool breaker, bool lazy, struct drain *d,
	  struct whole *whole)
{
	struct sy_msg *m = *at;
	struct sy__server *srv = one ? one : m->server;
	uint32_t route_id = one ? one_route : m->route_id;

	if (one && !lazy) {
		m->server = one;
		m->route_id = one_route;
	}
	/* A retry (attempts) or a flag: the general case. */
	if (sy__unlikely(!sy__msg_plain(m, SY_MSG_SLOW))) {
		struct sy__parking *t;

		if (whole)
			whole_end(w, whole, at, d);
		if (lazy) {
			m->server = one;
			m->route_id = one_route;
		}
		/* One test for the two that are not handle()'s. */
		if (!(m->flags & (SY_MSG_BURST | SY_MSG_INFLIGHT)))
			handle(w, m, d);
		else if (!one && (m->flags & SY_MSG_BURST))
			handle_burst(w, m, d);
		/* An in-flight count: a parking route's, perhaps. */
		else if ((m->flags & SY_MSG_INFLIGHT) &&
			 sy__unlikely((t = sy__parking_of(w->eng)) != NULL))
			handle_parking(w, t, m, d);
		else
			handle(w, m, d);
		return !whole;
	}
	return run_plain(w, w->eng, m, srv, route_id, !one, breaker, lazy, d,
			 whole, at) || !whole;
}

/*
 * Run the messages (and burst descriptors) in e[0..n). The common message
 * needs no more than its handler run, a count and freeing: no deadline,
 * latency sample, observing policy or in-flight count; a run that fails
 * or keeps its message takes run_end(). The others take handle().
 * @p one: every message goes to this server through route @p one_route
 * (a uniform burst), so the server and the run's key are known, and the
 * worker writes them into each message (the send left them unset): before
 * its run, or, with @p lazy (@p one runs here, not remote), only where
 * they are read: before the general case, after a run that failed. A
 * handler that passes its message on or keeps it reads neither, and the
 * next send writes its own. NULL: each message names its own.
 * @p breaker: the servers may have a circuit breaker (false only with
 * @p one, when it has none). @p whole: the burst may go back whole (its
 * home 0 after this call if it may not), and @p one's breaker, if any, was
 * quiet when the burst began; its loop runs until it may not, and the
 * common loop runs the rest.
 */
static inline __attribute__((always_inline)) void
run_msgs(struct sy__worker *w, void *const *e, unsigned n,
	 struct sy__server *one, uint32_t one_route, bool breaker, bool lazy,
	 struct drain *d, struct whole *whole)
{
	void *const *at = e, *const *end = e + n;

	/* Known for the whole batch: the run's key is set once. */
	if (one && (d->m_srv != one || d->m_route != one_route)) {
		runs_flush(w, d);
		d->m_srv = one;
		d->m_route = one_route;
	}
	if (whole) {
		/* Each run's success leaves the breaker as it is: the caller
		 * found it quiet. A failure ends this loop. */
		for (; at != end; at++) {
			if (sy__unlikely(!run_entry(w, at, one, one_route,
						    false, lazy, d, whole))) {
				at++;
				break;
			}
		}
		if (whole->home) {
			d->ok += n;
			w->current = NULL;
			return;
		}
	}
	for (; at != end; at++)
		run_entry(w, at, one, one_route, breaker, lazy, d, NULL);
	w->current = NULL;
}

static void handle_msgs(struct sy__worker *w, void *const *e, unsigned n,
			struct drain *d)
{
	run_msgs(w, e, n, NULL, 0, true, false, d, NULL);
}

/* A burst's descriptor is done with: it goes back with the drain's others
 * (@p b). Out of line, so that a drain's loop holds nothing for it. */
static __attribute__((noinline)) void desc_done(struct sy__slot *self,
						struct sy__release_batch *b,
						struct sy_msg *desc)
{
	if (!sy__release_batch_join(b, desc))
		sy__release_batch_switch(self, b, desc);
}

static void handle_burst(struct sy__worker *w, struct sy_msg *desc,
			 struct drain *d)
{
	struct sy__burst *b = (struct sy__burst *)desc->data;
	struct sy__server *one = desc->server;
	struct whole whole = { .home = 0, .msgs = b->msgs };

	/* A descriptor that names a server and route holds messages for them
	 * only (dispatch.c): they are checked once for the burst. A remote
	 * server's handler reads the message's server at once. */
	if (!one) {
		handle_msgs(w, b->msgs, b->n, d);
	} else if (one->remote) {
		run_msgs(w, b->msgs, b->n, one, desc->route_id, true, false, d,
			 NULL);
	} else {
		/* A local server's uniform burst may go back whole, while
		 * the server's breaker, if any, has nothing to record of a
		 * success (checked once for the burst: a change during it is
		 * the next burst's to see). */
		if (!one->breaker || breaker_quiet(one))
			whole.home = sy__whole_home(desc);
		if (!whole.home)
			run_msgs(w, b->msgs, b->n, one, desc->route_id, true,
				 true, d, NULL);
		else if (one->breaker)
			run_msgs(w, b->msgs, b->n, one, desc->route_id, true,
				 true, d, &whole);
		else
			run_msgs(w, b->msgs, b->n, one, desc->route_id, false,
				 true, d, &whole);
		if (sy__likely(whole.home != 0)) {
			sy__release_whole(w->slot, desc, whole.home);
			return;
		}
	}
	desc_done(w->slot, &d->descs, desc);
}

#define SY_DEQUEUE_MAX 32

/*
 * Take up to @p want entries off @p r into @p e (copied whole, each one's
 * header line asked for, nothing read), hand their slots back, and run
 * them: a message that runs has left its ring, as a depth or a threshold
 * counts it. A sample among them (the ring's mark says there may be one)
 * reads the clock now, for its time in the ring. @return the number.
 */
static inline unsigned take_batch(struct sy__worker *w, struct sy__ring *r,
				  void **e, unsigned want, struct drain *d)
{
	unsigned c, n = sy__ring_peek_spsc(r, want, &c);

	if (!n)
		return 0;
	sy__ring_copy(r, e, c, n);
	/* Ask for each entry's header line at once: the runs below find them
	 * on their way, where each would wait for its own in turn. */
#pragma GCC unroll 4
	for (unsigned i = 0; i < n; i++)
		__builtin_prefetch(e[i], 0);
	d->now = 0;
	d->taken_ns = sy__unlikely(sy__ring_sample_pending(r, c)) ?
		      sy__now(w->eng) : 0;
	sy__ring_taken_spsc(r, c, n);
	handle_msgs(w, e, n, d);
	return n;
}

__attribute__((noinline)) unsigned sy__worker_drain_ring(struct sy__worker *w,
						   struct sy__ring *r)
{
	unsigned burst = w->eng->cfg.burst;
	unsigned want = burst < SY_DEQUEUE_MAX ? burst : SY_DEQUEUE_MAX;
	void *e[SY_DEQUEUE_MAX];
	unsigned n, taken = 0;
	struct drain d = { .m_srv = NULL, .m_route = UINT32_MAX };

	while ((n = take_batch(w, r, e, want, &d)) != 0) {
		taken += n;
		if (n < want || taken >= burst)
			break;
		want = burst - taken < SY_DEQUEUE_MAX ? burst - taken :
		       SY_DEQUEUE_MAX;
	}
	if (!taken)
		return 0;
	drain_settle(&d);
	runs_flush(w, &d);
	sy__release_batch_flush(w->slot, &d.done);
	if (d.descs.home)
		sy__release_batch_flush(w->slot, &d.descs);
	if (d.runs)
		sy__total_add(&w->slot->totals, SY_T_DELIVERED, d.runs);
	return taken;
}

/* on_backpressure: has the ring from @p s drained below its low mark? */
static __attribute__((noinline)) void check_congested(struct sy__worker *w,
						      struct sy__slot *s,
						      const struct sy__ring *r)
{
	uint32_t v = atomic_load_explicit(&s->congested[w->idx],
					  memory_order_acquire);

	if (v && sy__ring_count(r) < v &&
	    atomic_compare_exchange_strong(&s->congested[w->idx], &v, 0))
		w->eng->cfg.on_backpressure(w->eng, w->idx, false,
					    w->eng->cfg.callback_ctx);
}

/* on_backpressure: check_congested() for each slot's ring. */
static __attribute__((noinline)) void check_all_congested(struct sy__worker *w)
{
	struct sy_engine *eng = w->eng;
	unsigned used = atomic_load_explicit(&eng->slots_used,
					     memory_order_acquire);

	for (unsigned i = 0; i < used; i++) {
		struct sy__ring *out = sy__slot_out(&eng->slots[i]);

		if (out)
			check_congested(w, &eng->slots[i], &out[w->idx]);
	}
}

static unsigned poll_pass(struct sy__worker *w)
{
	unsigned nin = atomic_load_explicit(&w->ninbox, memory_order_acquire);
	unsigned n = 0;

	for (unsigned i = 0; i < nin; i++)
		/* Most rings of a pass are empty: look before the call. */
		if (sy__ring_waiting(w->inbox[i]))
			n += sy__worker_drain_ring(w, w->inbox[i]);
	if (sy__unlikely(w->eng->cfg.on_backpressure != NULL))
		check_all_congested(w);
	return n;
}

/* Whether a ring of in[0..end) has an entry. */
static inline bool rings_waiting(struct sy__ring *const *in,
				 struct sy__ring *const *end)
{
	for (; in != end; in++)
		if (sy__ring_waiting(*in))
			return true;
	return false;
}

/* Whether a ring into @p w has an entry (I1 in slot.c: the list of them). */
static bool inbox_has_work(struct sy__worker *w)
{
	unsigned n = atomic_load_explicit(&w->ninbox, memory_order_acquire);

	return rings_waiting(w->inbox, w->inbox + n);
}

#define SY_SPIN_ROUNDS 64
#define SY_YIELD_ROUNDS 64

#define SY_RETRY_PARK_MAX_NS 1000000u

/* How long a parked worker may sleep: until its next retry is due (at most
 * 1 ms, since the engine's clock may not be the system's), or 0: forever. */
static uint64_t retry_wait(struct sy__worker *w)
{
	uint64_t due = sy__retries_next(w), now;

	if (!due)
		return 0;
	now = sy__now(w->eng);
	if (due <= now)
		return 1;
	return due - now < SY_RETRY_PARK_MAX_NS ? due - now : SY_RETRY_PARK_MAX_NS;
}

/*
 * Spin up to @p rounds pauses, until a ring has entries: an idle worker
 * looks at the rings' indices only, with no read-side section and no pass
 * (a pass that finds every inbox empty would change nothing but `passes`).
 * The rings are those set up when it starts: a slot set up while it spins
 * is seen by the next pass. @return the rounds spun, at least one.
 */
static unsigned spin_for_work(struct sy__worker *w, unsigned rounds)
{
	unsigned n = atomic_load_explicit(&w->ninbox, memory_order_acquire);
	struct sy__ring *const *in = w->inbox, *const *end = in + n;
	unsigned spun = 0;

	do {
		__builtin_ia32_pause();
		spun++;
	} while (spun < rounds && !rings_waiting(in, end));
	return spun;
}

/* Idle after a pass that found nothing. @return the next round. */
static unsigned idle(struct sy__worker *w, unsigned round)
{
	enum sy_idle how = w->eng->cfg.idle;

	if (round == 0)
		sy__pending_flush(w->slot);
	if (how == SY_IDLE_SPIN || round < SY_SPIN_ROUNDS) {
		/* Retries waiting: a pass each round, so that they go when due. */
		unsigned left = w->retries ? 1 :
				round < SY_SPIN_ROUNDS ? SY_SPIN_ROUNDS - round :
				SY_SPIN_ROUNDS;

		return round + spin_for_work(w, left);
	}
	if (how == SY_IDLE_YIELD || round < SY_SPIN_ROUNDS + SY_YIELD_ROUNDS) {
		sched_yield();
		return round + 1;
	}
	sy__park_prepare(&w->parker);
	if (inbox_has_work(w) ||
	    atomic_load_explicit(&w->drain, memory_order_acquire)) {
		sy__park_cancel(&w->parker);
		return round + 1;
	}
	sy__park_wait(&w->parker, retry_wait(w));
	return round + 1;
}

static void *worker_main(void *arg)
{
	struct sy__worker *w = arg;
	unsigned round = 0;
	char name[16];

	/* Named for top -H, perf and debuggers. */
	snprintf(name, sizeof(name), "sy-worker-%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	sy__worker_bind(w);
	for (;;) {
		/* D1: pairs with the release store in sy__workers_drain(). */
		bool draining = atomic_load_explicit(&w->drain,
						     memory_order_acquire);
		uint64_t outer;
		unsigned n;

		outer = sy__slot_read_lock(&w->slot->rcu, &w->eng->rcu_period);
		n = poll_pass(w);
		if (sy__unlikely(w->retries != NULL))
			n += sy__retries_due(w);
		if (sy__unlikely(w->remote_flush != NULL))
			sy__remote_flush(w, n == 0);
		sy__slot_read_unlock(&w->slot->rcu, outer);
		/* P1: pairs with the acquire in sy__worker_wait_handled(). The
		 * worker is the count's one writer: a compiler barrier and an
		 * unlocked add (metrics/counter.h), no locked instruction. */
		atomic_signal_fence(memory_order_release);
		sy__counter_add(&w->passes, 1);
		if (n) {
			round = 0;
			continue;
		}
		if (draining) {
			sy__retries_shutdown(w);
			break;
		}
		round = idle(w, round);
	}
	sy__pending_flush(w->slot);
	sy__worker_unbind(w);
	return NULL;
}

int sy__workers_start(struct sy_engine *eng)
{
	for (unsigned i = 0; i < eng->nworkers; i++) {
		struct sy__worker *w = &eng->workers[i];
		pthread_attr_t attr;
		int rc;

		pthread_attr_init(&attr);
		if (w->cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(w->cpu, &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		rc = pthread_create(&w->thread, &attr, worker_main, w);
		pthread_attr_destroy(&attr);
		if (rc) {
			sy__fail(-rc, "cannot start worker %u on CPU %d: %s", i,
				 w->cpu, sy_strerror(rc));
			eng->nstarted = i;
			return -rc;
		}
		if (eng->cfg.display_affinity)
			fprintf(stderr, "switchyard: worker %u -> cpu %d\n", i,
				w->cpu);
	}
	eng->nstarted = eng->nworkers;
	return 0;
}

void sy__workers_drain(struct sy_engine *eng)
{
	for (unsigned i = 0; i < eng->nstarted; i++) {
		struct sy__worker *w = &eng->workers[i];

		/* D1 */
		atomic_store_explicit(&w->drain, true, memory_order_release);
		sy__unpark(&w->parker);
	}
	for (unsigned i = 0; i < eng->nstarted; i++)
		pthread_join(eng->workers[i].thread, NULL);
	eng->nstarted = 0;
}

static void pause_briefly(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };

	nanosleep(&ts, NULL);
}

void sy__worker_wait_handled(struct sy_engine *eng, unsigned wi)
{
	struct sy__worker *w = &eng->workers[wi];
	unsigned used = atomic_load_explicit(&eng->slots_used,
					     memory_order_acquire);
	uint64_t pass;

	for (unsigned i = 0; i < used; i++) {
		struct sy__ring *out = sy__slot_out(&eng->slots[i]);
		unsigned mark;

		if (!out)
			continue;
		mark = sy__ring_produced(&out[wi]);
		while (!sy__ring_passed(&out[wi], mark)) {
			sy__unpark(&w->parker);
			pause_briefly();
		}
	}
	/* The last marked entry was taken in the pass under way now or in an
	 * earlier one: once one more pass completes, it has been handled. */
	pass = atomic_load_explicit(&w->passes, memory_order_acquire);
	while (atomic_load_explicit(&w->passes, memory_order_acquire) <= pass) {
		sy__unpark(&w->parker);
		pause_briefly();
	}
}
