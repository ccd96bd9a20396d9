/*
 * The dispatch (dispatch.c): the one way a message goes from a sender to a
 * worker's ring. Each call takes its own RCU read-side section, except
 * sy__dispatch_retry(), which runs inside the worker's.
 */
#ifndef SY_CORE_DISPATCH_H
#define SY_CORE_DISPATCH_H

#include <stdint.h>

#include "switchyard.h"

struct sy_engine;
struct sy_msg;
struct sy__hedge;
struct sy__slot;
struct sy__worker;

/*
 * Route @p m (its kind flags set by the caller) through @p route from slot
 * @p s, the calling thread's. @return 0 (enqueued, or accepted and
 * dead-lettered as the route says); -ENOENT, -ESHUTDOWN, -EHOSTUNREACH,
 * -EAGAIN, -ENOBUFS (refused and counted: the message is the caller's).
 */
int sy__dispatch(struct sy_engine *eng, uint32_t route, struct sy_msg *m,
		 struct sy__slot *s);

/*
 * The two halves of sy__dispatch(). The direct one takes the common case
 * only (inline, it changes nothing unless it succeeds): 0 (enqueued), or
 * SY_DISPATCH_GENERAL: nothing was done, the general one must decide, and
 * returns what sy__dispatch() returns.
 */
#define SY_DISPATCH_GENERAL 1
int sy__dispatch_direct(struct sy_engine *eng, uint32_t route,
			struct sy_msg *m, struct sy__slot *s);

/* sy__dispatch_direct(), which for every case but the common one returns
 * what @p general returns (a tail call; NULL: SY_DISPATCH_GENERAL), and
 * keeps of m's flags those in @p keep (SY_MSG_KEEP_FLAGS, or fewer where
 * the caller left clearing them to this one write). */
typedef int sy__dispatch_fn(struct sy_engine *eng, uint32_t route,
			    struct sy_msg *m, struct sy__slot *s);
int sy__dispatch_direct_or(struct sy_engine *eng, uint32_t route,
			   struct sy_msg *m, struct sy__slot *s,
			   sy__dispatch_fn *general, uint8_t keep);
int sy__dispatch_general(struct sy_engine *eng, uint32_t route,
			 struct sy_msg *m, struct sy__slot *s);

/* sy__dispatch() for a request: on a hedging route, arms @p h (hedge.h)
 * and records in it the server the request went to. */
int sy__dispatch_request(struct sy_engine *eng, uint32_t route,
			 struct sy_msg *m, struct sy__slot *s,
			 struct sy__hedge *h);

/* Send a hedge's @p copy through @p route to a server other than @p avoid
 * (SY_ANY: any), quietly: @return 0 (enqueued), or a refusal that is not
 * counted (-EHOSTUNREACH: no other server, or past the backpressure
 * threshold; -EAGAIN, -ENOENT, -ESHUTDOWN); the copy is still the
 * caller's. */
int sy__dispatch_hedge(struct sy_engine *eng, uint32_t route,
		       struct sy_msg *copy, struct sy__slot *s, uint32_t avoid);

/* sy__dispatch() for a waiting send: a refusal is not counted. */
int sy__dispatch_quiet(struct sy_engine *eng, uint32_t route,
		       struct sy_msg *m, struct sy__slot *s);

/*
 * Route plain messages msgs[0..n) through @p route, in chunks of
 * SY_BURST_MAX, one read-side section each. Accepted messages move to the
 * front of @p msgs in order; the refused ones stay behind them, in order.
 * @return how many were accepted, or the first refusal's error if none.
 */
int sy__dispatch_burst(struct sy_engine *eng, uint32_t route,
		       struct sy_msg **msgs, unsigned n, struct sy__slot *s);
/* sy__dispatch_burst()'s common case alone (inline, it changes nothing
 * unless it succeeds): @p n, or SY_DISPATCH_GENERAL. */
int sy__dispatch_burst_direct(struct sy_engine *eng, uint32_t route,
			      struct sy_msg **msgs, unsigned n,
			      struct sy__slot *s);

/*
 * A worker's retry of @p m through its route, avoiding the server that
 * failed (m->last_server) where the route has another. Inside the worker's
 * read-side section. @return 0 (enqueued); -EAGAIN (the ring is full or
 * past the threshold: try later); -EHOSTUNREACH (no server, or the route
 * is gone; the reason in *why).
 */
int sy__dispatch_retry(struct sy__worker *w, struct sy_msg *m,
		       enum sy_dl_reason *why);

#endif /* SY_CORE_DISPATCH_H */
