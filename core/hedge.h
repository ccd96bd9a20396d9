/*
 * Hedged requests (hedge.c; docs/reliability.md): on a route with a hedge
 * delay, a request from sy_msg_call() or sy_msg_request() is copied before
 * it goes, and when no reply has come after the delay the copy goes to
 * another server of the route. The first reply is the requester's, the
 * other is discarded and counted.
 *
 * The request and its copy are two messages: each is accepted by its own
 * send and ends on its own (delivered, dead-lettered, ...), so the
 * accounting needs nothing more. Their replies tell themselves apart by
 * the marks in msg->hedge (msg.h), which a reply carries back from its
 * request with its call_seq.
 *
 * Threads: everything here runs on the requester's thread, on its slot's
 * private state (its budget, its table of armed requests); the dispatch
 * arms a hedge inside the requester's read-side section.
 */
#ifndef SY_CORE_HEDGE_H
#define SY_CORE_HEDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/compiler.h"
#include "core/route.h"

struct sy_engine;
struct sy_msg;
struct sy__slot;

/* One hedged request: its copy, when the copy may go, where the request
 * went. seq 0: a free entry of the table. */
struct sy__hedge {
	struct sy_msg *copy;   /* NULL: not armed, or the copy was refused */
	uint64_t at;           /* engine clock: when armed, then, once
	                        * started, when the copy may go */
	uint64_t delay_ns;     /* the route's fixed delay */
	uint32_t route;
	uint32_t first;        /* id of the server the request went to; SY_ANY */
	uint32_t seq;          /* the request's call_seq, with a live bit */
	bool p95;              /* delay from the round trip's p95 */
	bool sent;             /* the copy went: two replies may come */
	bool answered;         /* the first reply came; the loser's may follow */
};

/* Does route @p r hedge? Two servers or more and a delay. */
static inline bool sy__route_hedges(const struct sy__route *r)
{
	return sy__unlikely(r->hedge_delay_ns != 0 || r->hedge_p95) && r->n > 1;
}

/*
 * In the dispatch of request @p m through hedging route @p r, before it is
 * enqueued: if the slot's budget allows (and, for sy_msg_request(), its
 * table has room), copy @p m into h->copy and mark both. Nothing when the
 * copy cannot be had. Inside the requester's read-side section.
 */
void sy__hedge_arm(struct sy__slot *s, const struct sy__route *r,
		   struct sy_msg *m, struct sy__hedge *h);

/* After the dispatch of the request of @p h: sent (@p rc 0), start the
 * delay from when @p h was armed (before the request was enqueued, so
 * that an answer which moves the clock cannot come first) and, for
 * sy_msg_request(), keep @p h in the table; refused, free the copy. */
void sy__hedge_start(struct sy_engine *eng, struct sy__slot *s,
		     struct sy__hedge *h, int rc);

/* sy_msg_call(): send the copy of @p h if its time has come. @return
 * whether a copy still waits to go. */
bool sy__hedge_due(struct sy_engine *eng, struct sy__slot *s,
		   struct sy__hedge *h);

/* sy_msg_call(): @p reply answered the hedged call of @p h first. */
void sy__hedge_won(struct sy__slot *s, struct sy__hedge *h,
		   const struct sy_msg *reply);

/* sy_msg_call(): the call of @p h gave up waiting; free an unsent copy. */
void sy__hedge_cancel(struct sy__slot *s, struct sy__hedge *h);

/* sy_producer_poll_replies(): send the copies of the table whose time has
 * come. */
void sy__hedge_poll(struct sy_engine *eng, struct sy__slot *s);

/* sy_producer_poll_replies(): @p reply is a hedged sy_msg_request()'s.
 * @return true if it is the first (the requester's); false if it lost and
 * was discarded, counted and freed. */
bool sy__hedge_take(struct sy__slot *s, struct sy_msg *reply);

/* How long a waiting call may sleep before the copy of @p h is due, at
 * most @p ns. */
uint64_t sy__hedge_sleep(struct sy_engine *eng, const struct sy__hedge *h,
			 uint64_t ns);

/* The slot's thread detaches: free the copies its table holds. */
void sy__hedge_detach(struct sy__slot *s);
/* The slot is freed (engine destroy). */
void sy__hedge_free(struct sy_engine *eng, struct sy__slot *s);

#endif /* SY_CORE_HEDGE_H */
