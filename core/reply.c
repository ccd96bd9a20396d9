/*
 * Replies and calls: a handler's reply (the worker's side), polling for
 * replies and the blocking call (the requester's side).
 *
 * A reply goes back on the requester slot's reply ring from the worker.
 * The requester's slot generation, copied into the request, tells a reply
 * for an earlier owner of the slot (dropped and counted). A call waits by
 * the engine's idle strategy: spin, yield, then park until the worker's
 * sy_msg_reply() wakes it.
 */
#include <errno.h>
#include <sched.h>
#include <time.h>

#include "core/compiler.h"
#include "core/dispatch.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/hedge.h"
#include "core/msg.h"
#include "core/pool.h"
#include "core/reply.h"
#include "core/slot.h"
#include "core/worker.h"
#include "metrics/shard.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


void sy__reply_drop(struct sy__slot *s, struct sy_msg *m)
{
	sy__total_add(&s->totals, SY_T_REPLIES_DROPPED, 1);
	if (m->hedge)
		sy__total_add(&s->totals, SY_T_HEDGE_DISCARDS, 1);
	sy__msg_release(s, m);
}

/* The requester's fields of @p request, with @p status, into @p reply,
 * another message, which becomes held. */
static void reply_copy(const struct sy_msg *request, struct sy_msg *reply,
		       int status)
{
	reply->tag = request->tag;
	reply->reply_gen = request->reply_gen;
	reply->call_seq = request->call_seq;
	reply->hedge = request->hedge;
	reply->status = status;
	reply->flags = request->flags & (SY_MSG_REQUEST | SY_MSG_CALL | SY_MSG_TIMED);
	if (sy__unlikely(request->flags & SY_MSG_TIMED))
		reply->sent_ns = request->sent_ns; /* the round trip's start */
	reply->held = 1;
}

/*
 * A request @p m that goes back as its own reply, with @p status: it holds
 * the requester's fields already (and is held), so only what differs is
 * written, and a plain reply writes nothing of the header: the requester,
 * which reads the reply next, then waits for no line the worker wrote
 * (docs/results.md, the ninth round).
 */
static void reply_in_place(struct sy_msg *m, int status)
{
	const uint8_t flags = m->flags & (SY_MSG_REQUEST | SY_MSG_CALL | SY_MSG_TIMED);

	if (m->status != status)
		m->status = status;
	if (m->flags != flags)
		m->flags = flags;
}

/*
 * Send @p reply, with @p status, to the thread that sent @p request (the
 * message worker @p w runs or ran). @return 0; -ECONNRESET (the requester
 * detached); -EAGAIN (its reply ring is full). On failure the reply is
 * still the worker's.
 */
static int reply_deliver(struct sy__worker *w, const struct sy_msg *request,
			 struct sy_msg *reply, int status)
{
	struct sy_engine *eng = w->eng;
	struct sy__slot *to = &eng->slots[request->reply_slot];
	struct sy__shard *sh = w->slot->shard;

	if (atomic_load_explicit(&to->gen, memory_order_relaxed) !=
	    request->reply_gen) {
		sy__total_add(&w->slot->totals, SY_T_REPLIES_DROPPED, 1);
		return -ECONNRESET;
	}
	if (reply == request)
		reply_in_place(reply, status);
	else
		reply_copy(request, reply, status);
	if (!sy__ring_enqueue_spsc(&to->replies[w->idx], reply)) {
		if (reply != w->current)
			reply->held = 0;
		sy__total_add(&w->slot->totals, SY_T_REPLIES_DROPPED, 1);
		if (sh)
			sy__sc_add(&sh->transport[SY_TRANSPORT_REPLY],
				   SY_SC_REJECTED, 1);
		return -EAGAIN;
	}
	if (sh)
		sy__sc_add(&sh->transport[SY_TRANSPORT_REPLY], SY_SC_SENT, 1);
	sy__total_add(&w->slot->totals, SY_T_REPLIES_SENT, 1);
	if (sy__idle_sleeps(eng))
		sy__wake(&to->parker);
	return 0;
}

SY_API int sy_msg_reply(sy_msg *request, sy_msg *reply)
{
	struct sy__worker *w = sy__worker_self();
	int rc;

	SY__NONNULL(request);
	SY__NONNULL(reply);
	if (!sy__worker_holds(request) || !(request->flags & SY_MSG_REQUEST))
		return sy__failed(__func__, sy__fail(-EINVAL, "%s",
			!sy__worker_holds(request) ?
			"the request is not the message this handler runs, "
			"or it was passed on already" :
			"the message is not a request (sy_msg_is_request()), "
			"or it was answered already"));
	if (reply != request && reply->held)
		return sy__msg_refuse(__func__);
	rc = reply_deliver(w, request, reply, 0);
	if (rc)
		return sy__failed(__func__, rc);
	if (reply == w->current)
		w->taken = true;
	else /* answered: no second reply, nor a failure's (SY_FAIL_RETURN) */
		request->flags &= (uint8_t)~SY_MSG_REQUEST;
	return 0;
}

int sy__reply_failure(struct sy__worker *w, struct sy_msg *m, int status)
{
	int rc = reply_deliver(w, m, m, status);

	if (rc == 0)
		sy__total_add(&w->slot->totals, SY_T_RETURNED, 1);
	return rc;
}

/*
 * Take one reply for @p s from its rings, dropping stale ones (for an earlier
 * owner of the slot, or for a call that timed out). NULL when none is ready.
 */
static struct sy_msg *reply_take(struct sy_engine *eng, struct sy__slot *s,
				 unsigned *cursor)
{
	uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);

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

/* Whether reply @p m, taken for sy_producer_poll_replies(), is the
 * caller's; if not, it is dropped and counted. */
static bool poll_keeps(struct sy__slot *s, struct sy_msg *m)
{
	if (m->flags & SY_MSG_CALL) {
		/* The call that wanted it has returned. */
		sy__reply_drop(s, m);
		return false;
	}
	return !m->hedge || sy__hedge_take(s, m);
}

SY_API int sy_producer_poll_replies(sy_engine *eng, sy_msg **out, unsigned max)
{
	struct sy__slot *s;
	unsigned n = 0, cursor = 0;

	SY__NONNULL(eng);
	if (max)
		SY__NONNULL(out);
	s = sy__slot_self(eng);
	if (!s)
		return sy__failed(__func__, sy__fail(-ENOENT, "the calling thread is "
				"not attached to this engine (no request sent)"));
	sy__hedge_poll(eng, s);
	while (n < max && s->stash) {
		struct sy_msg *m = s->stash;

		s->stash = m->next;
		if (!s->stash)
			s->stash_tail = &s->stash;
		if (poll_keeps(s, m))
			out[n++] = m;
	}
	while (n < max) {
		struct sy_msg *m = reply_take(eng, s, &cursor);

		if (!m)
			break;
		if (poll_keeps(s, m))
			out[n++] = m;
	}
	for (unsigned i = 0; i < n; i++)
		out[i]->held = 0; /* the caller's now */
	sy__total_add(&s->totals, SY_T_REPLIES_RECEIVED, n);
	return (int)n;
}

static bool reply_ready(struct sy_engine *eng, struct sy__slot *s)
{
	for (unsigned w = 0; w < eng->nworkers; w++)
		if (sy__ring_count(&s->replies[w]))
			return true;
	return false;
}

/* Wait a little for a reply: spin, then yield, then sleep until woken,
 * or until the hedge @p h is due. */
static void call_wait(struct sy_engine *eng, struct sy__slot *s,
		      unsigned round, uint64_t deadline,
		      const struct sy__hedge *h)
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
	sy__park_wait(&s->parker, sy__hedge_sleep(eng, h, deadline - now));
}

SY_API int sy_msg_call(sy_engine *eng, uint32_t route, sy_msg *req,
		   sy_msg **reply, uint64_t timeout_ns)
{
	struct sy__worker *w = sy__worker_self();
	struct sy__hedge h = { .copy = NULL };
	struct sy__msg_route saved, *own;
	struct sy__slot *s;
	uint64_t deadline;
	unsigned cursor = 0;
	bool hedge_due;
	uint32_t seq;
	int rc = 0;

	SY__NONNULL(eng);
	SY__NONNULL(reply);
	if ((rc = sy__msg_check(__func__, req)) != 0)
		return rc;
	if (w && w->eng == eng)
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler, it would wait on its own worker"));
	s = sy__slot_get(eng, &rc);
	if (!s)
		return sy__ret(__func__, rc);
	/* A handler of another engine may call with the message it runs. */
	own = sy__msg_route_own(req, &saved);
	seq = ++s->call_seq & SY_CALL_SEQ_MASK;
	req->flags = (uint8_t)((req->flags & (SY_MSG_DEADLINE | SY_MSG_DEAD)) |
			       SY_MSG_REQUEST | SY_MSG_CALL);
	req->call_seq = seq;
	req->hedge = 0;
	sy__reply_address(req, s);
	req->held = 1;
	rc = sy__dispatch_request(eng, route, req, s, &h);
	sy__hedge_start(eng, s, &h, rc);
	hedge_due = h.copy != NULL;
	if (rc) {
		if (own) {
			sy__msg_route_restore(req, own); /* still held */
		} else {
			req->held = 0;
			req->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
		}
		return sy__refused(__func__, rc, route);
	}
	if (own)
		sy__worker_passed_on();
	sy__total_add(&s->totals, SY_T_REQUESTS, 1);
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
				sy__total_add(&s->totals, SY_T_REPLIES_RECEIVED, 1);
				if (m->hedge)
					sy__hedge_won(s, &h, m);
				m->held = 0;
				*reply = m;
				if (m->status < 0)
					return sy__failed(__func__, sy__fail(-EREMOTEIO,
						"the handler failed with %d (%s); *reply is the request",
						m->status, sy_strerror(m->status)));
				return 0;
			}
			round = 0;
			continue;
		}
		if (hedge_due && ((round & 63) == 63 || round >= 128))
			hedge_due = sy__hedge_due(eng, s, &h);
		if ((round & 63) == 63 && now_ns() >= deadline) {
			sy__hedge_cancel(s, &h);
			return sy__failed(__func__, -ETIMEDOUT);
		}
		call_wait(eng, s, round, deadline, &h);
	}
}

/* The names of 0.1.0 (include/switchyard.h), the same functions. */
SY_API int sy_msg_status(const sy_msg *msg)
{
	SY__NONNULL(msg);
	return (msg->flags & SY_MSG_REQUEST) && !msg->held ? msg->status : 0;
}

SY__ALIAS(sy_reply, sy_msg_reply);
SY__ALIAS(sy_call, sy_msg_call);
SY__ALIAS(sy_poll_replies, sy_producer_poll_replies);
