/*
 * The producer's entry points: send, request and burst send. Each finds
 * the calling thread's slot (attaching it on first use), sets the
 * message's kind, and hands it to the dispatch (dispatch.h), which routes
 * it onto a worker's ring.
 *
 * A handler that sends the message it is handling gives it away: the
 * worker must not free it after the handler returns.
 */
#include <errno.h>
#include <stdbool.h>

#include "core/compiler.h"
#include "core/dispatch.h"
#include "core/msg.h"
#include "core/slot.h"
#include "core/worker.h"

static inline void mark_taken(struct sy__slot *s, struct sy_msg *m)
{
	struct sy__worker *w;

	if (!s->is_worker)
		return;
	w = sy__worker_self();
	if (w && w->current == m)
		w->taken = true;
}

/* A handler's send: the message it handles goes with it. */
static __attribute__((noinline)) int send_from_worker(sy_engine *eng,
						      uint32_t route,
						      sy_msg *msg,
						      struct sy__slot *s)
{
	int rc = sy__dispatch(eng, route, msg, s);

	if (rc == 0)
		mark_taken(s, msg);
	return rc;
}

/* A send from a thread whose slot for @p eng is not the cached one. */
static __attribute__((noinline)) int send_attach(sy_engine *eng,
						 uint32_t route, sy_msg *msg)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);

	if (!s)
		return err;
	if (s->is_worker)
		return send_from_worker(eng, route, msg, s);
	return sy__dispatch(eng, route, msg, s);
}

/* Every call but a tail call is off the common path, which therefore
 * needs no stack frame. */
SY_API int sy_send(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	struct sy__slot *s;

	msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	if (sy__unlikely(sy__tls_hot.eng != eng))
		return send_attach(eng, route, msg);
	s = sy__tls_hot.slot;
	if (sy__unlikely(s->is_worker))
		return send_from_worker(eng, route, msg, s);
	return sy__dispatch(eng, route, msg, s);
}

SY_API int sy_request(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);

	if (sy__unlikely(!s))
		return err;
	msg->flags = (uint8_t)((msg->flags & ~SY_MSG_CALL) | SY_MSG_REQUEST);
	msg->reply_slot = s->id;
	msg->reply_gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
	err = s->is_worker ? send_from_worker(eng, route, msg, s) :
			     sy__dispatch(eng, route, msg, s);
	if (err == 0)
		sy__total_add(&s->totals, SY_T_REQUESTS, 1);
	return err;
}

SY_API int sy_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			 unsigned n)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);
	int rc;

	if (sy__unlikely(!s))
		return err;
	rc = sy__dispatch_burst(eng, route, msgs, n, s);
	if (s->is_worker)
		for (int i = 0; i < rc; i++)
			mark_taken(s, msgs[i]);
	return rc;
}
