/*
 * Hedged requests: the copy, the delay, the budget, and which reply wins.
 *
 * The copy is made before the request goes, because once sent the request
 * is its server's (a handler may answer in place, rewriting the payload):
 * one message from the requester's pool and a memcpy of the request's size,
 * paid by every request the budget lets hedge, whether or not the copy
 * goes. A request the budget would not let hedge is not copied.
 *
 * Budget: per sending thread and route, a bucket of one hedge. Each
 * hedgeable request adds hedge_budget of a hedge to it, each copy sent
 * takes one whole hedge, and a request is armed only while the bucket is
 * full. So a thread sends at most 1 + hedge_budget x its hedgeable requests
 * of copies on a route. It is kept as what was spent (hedge_debt, in
 * thousandths of a hedge), 0 when full, so a slot's zeroed table starts
 * full.
 *
 * Which reply wins: a call takes the first reply whose sequence is its own
 * and drops every later one as it drops any stale reply (reply.c); the
 * hedge marks tell the dropped ones apart for the count. sy_msg_request()'s
 * requests are remembered in a table of the slot until their first reply
 * (and then until the loser's, if the copy went), so that
 * sy_producer_poll_replies() hands one reply per request: a marked reply
 * with no entry, or with an answered one, lost. A full table arms no more
 * requests; an answered entry gives its place to a new request (its
 * loser, if it ever comes, then finds no entry and is discarded as well).
 *
 * Threads: the requester's thread only, on its slot's private state.
 */
#include <errno.h>
#include <string.h>

#include "core/collector.h"
#include "core/dispatch.h"
#include "core/engine.h"
#include "core/hedge.h"
#include "core/memory.h"
#include "core/msg.h"
#include "core/pool.h"
#include "core/remote.h"
#include "core/reply.h"
#include "core/slot.h"

#define HEDGE_WHOLE 1000u          /* one hedge, in hedge_debt's units */
#define HEDGE_TABLE 64u            /* sy_msg_request()s armed per thread */
#define HEDGE_SLEEP_MAX_NS 1000000u /* a waiting call looks at the clock */
#define HEDGE_LIVE (1u << 31)      /* in sy__hedge.seq: a live entry */

struct sy__hedge_table {
	unsigned waiting;          /* entries not answered yet */
	struct sy__hedge e[HEDGE_TABLE];
};

/* The table's entry for the reply of sequence @p seq, or NULL. */
static struct sy__hedge *table_find(struct sy__hedge_table *t, uint32_t seq)
{
	seq |= HEDGE_LIVE;
	for (unsigned i = 0; i < HEDGE_TABLE; i++)
		if (t->e[i].seq == seq)
			return &t->e[i];
	return NULL;
}

/* A place for a new entry: a free one, else an answered one. */
static struct sy__hedge *table_place(struct sy__hedge_table *t)
{
	struct sy__hedge *answered = NULL;

	for (unsigned i = 0; i < HEDGE_TABLE; i++) {
		if (!t->e[i].seq)
			return &t->e[i];
		if (t->e[i].answered)
			answered = &t->e[i];
	}
	return answered;
}

static bool table_room(struct sy_engine *eng, struct sy__slot *s)
{
	if (!s->hedges) {
		s->hedges = sy__mem_alloc(eng, sizeof(*s->hedges));
		if (!s->hedges)
			return false;
		memset(s->hedges, 0, sizeof(*s->hedges));
	}
	return s->hedges->waiting < HEDGE_TABLE;
}

void sy__hedge_arm(struct sy__slot *s, const struct sy__route *r,
		   struct sy_msg *m, struct sy__hedge *h)
{
	uint16_t *debt = &s->hedge_debt[r->id];
	struct sy_msg *c;

	/* An exported message's call_seq names its acknowledgement. */
	if (m->remote_mark == sy__remote_mark_of(m, SY_REMOTE_ORIGIN))
		return;
	*debt = *debt > r->hedge_budget_milli ?
		(uint16_t)(*debt - r->hedge_budget_milli) : 0;
	if (*debt)
		return;
	if (!(m->flags & SY_MSG_CALL) &&
	    (s->is_worker || !table_room(s->pool.eng, s)))
		return;
	c = sy__msg_alloc(s, m->size);
	if (!c)
		return;
	if (!(m->flags & SY_MSG_CALL))
		m->call_seq = ++s->call_seq & SY_CALL_SEQ_MASK;
	m->hedge = SY_HEDGE_REQUEST;
	memcpy(c->data, m->data, m->size);
	c->tag = m->tag;
	c->key = m->key;
	c->deadline = m->deadline;
	c->flags = m->flags & (SY_MSG_REQUEST | SY_MSG_CALL | SY_MSG_DEADLINE);
	c->reply_slot = m->reply_slot;
	c->reply_gen = m->reply_gen;
	c->call_seq = m->call_seq;
	c->hedge = SY_HEDGE_REQUEST | SY_HEDGE_COPY;
	h->copy = c;
	h->route = r->id;
	h->first = SY_ANY;
	h->seq = m->call_seq | HEDGE_LIVE;
	/* The delay counts from here: before the request is enqueued, so
	 * before its server can answer or move the clock. */
	h->at = sy__now(s->pool.eng);
	h->delay_ns = r->hedge_delay_ns;
	h->p95 = r->hedge_p95;
	h->sent = false;
	h->answered = false;
}

/* Free the copy of @p h that did not go. */
static void drop_copy(struct sy__slot *s, struct sy__hedge *h)
{
	if (h->copy && !h->sent)
		sy__msg_release(s, h->copy);
	h->copy = NULL;
}

void sy__hedge_start(struct sy_engine *eng, struct sy__slot *s,
		     struct sy__hedge *h, int rc)
{
	uint64_t delay = h->delay_ns;
	struct sy__hedge *e;

	if (!h->copy)
		return;
	if (rc) {
		drop_copy(s, h);
		return;
	}
	if (h->p95) {
		uint64_t p95 = sy__collector_rtt_p95(eng);

		delay = p95 ? p95 : delay;
	}
	h->at += delay; /* from the arming (sy__hedge_arm()) */
	if (h->copy->flags & SY_MSG_CALL)
		return;
	/* table_room() saw a place when the request was armed. */
	e = table_place(s->hedges);
	*e = *h; /* over an answered entry: its loser, if it comes, is discarded */
	s->hedges->waiting++;
}

/* Send the copy of @p h now if the budget still allows (another request
 * armed at the same time may have taken it); else free it. */
static void send_copy(struct sy_engine *eng, struct sy__slot *s,
		      struct sy__hedge *h)
{
	uint16_t *debt = &s->hedge_debt[h->route];

	h->copy->held = 1;
	if (*debt == 0 &&
	    sy__dispatch_hedge(eng, h->route, h->copy, s, h->first) == 0) {
		h->sent = true;
		*debt = HEDGE_WHOLE;
		sy__total_add(&s->totals, SY_T_HEDGES_SENT, 1);
		sy__total_add(&s->totals, SY_T_REQUESTS, 1);
		return;
	}
	drop_copy(s, h);
}

bool sy__hedge_due(struct sy_engine *eng, struct sy__slot *s,
		   struct sy__hedge *h)
{
	if (!h->copy || h->sent)
		return false;
	if (sy__now(eng) < h->at)
		return true;
	send_copy(eng, s, h);
	return false;
}

void sy__hedge_won(struct sy__slot *s, struct sy__hedge *h,
		   const struct sy_msg *reply)
{
	if (reply->hedge & SY_HEDGE_COPY)
		sy__total_add(&s->totals, SY_T_HEDGE_WINS, 1);
	drop_copy(s, h);
}

void sy__hedge_cancel(struct sy__slot *s, struct sy__hedge *h)
{
	drop_copy(s, h);
}

uint64_t sy__hedge_sleep(struct sy_engine *eng, const struct sy__hedge *h,
			 uint64_t ns)
{
	uint64_t now;

	if (!h->copy || h->sent)
		return ns;
	now = sy__now(eng);
	if (ns > HEDGE_SLEEP_MAX_NS)
		ns = HEDGE_SLEEP_MAX_NS;
	return h->at > now && h->at - now < ns ? h->at - now : ns;
}

void sy__hedge_poll(struct sy_engine *eng, struct sy__slot *s)
{
	struct sy__hedge_table *t = s->hedges;
	uint64_t now;

	if (!t || !t->waiting)
		return;
	now = sy__now(eng);
	for (unsigned i = 0; i < HEDGE_TABLE; i++) {
		struct sy__hedge *h = &t->e[i];

		if (h->seq && h->copy && !h->sent && now >= h->at)
			send_copy(eng, s, h);
	}
}

bool sy__hedge_take(struct sy__slot *s, struct sy_msg *reply)
{
	struct sy__hedge *h = s->hedges ? table_find(s->hedges, reply->call_seq) :
			      NULL;

	if (h && !h->answered) {
		if (reply->hedge & SY_HEDGE_COPY)
			sy__total_add(&s->totals, SY_T_HEDGE_WINS, 1);
		s->hedges->waiting--;
		drop_copy(s, h);
		if (h->sent)
			h->answered = true; /* the loser's reply may follow */
		else
			*h = (struct sy__hedge){ 0 };
		return true;
	}
	if (h)
		*h = (struct sy__hedge){ 0 };
	sy__reply_drop(s, reply);
	return false;
}

void sy__hedge_detach(struct sy__slot *s)
{
	if (!s->hedges)
		return;
	for (unsigned i = 0; i < HEDGE_TABLE; i++)
		drop_copy(s, &s->hedges->e[i]);
	memset(s->hedges, 0, sizeof(*s->hedges));
}

void sy__hedge_free(struct sy_engine *eng, struct sy__slot *s)
{
	sy__mem_free(eng, s->hedges, sizeof(*s->hedges));
	s->hedges = NULL;
}
