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

	if (sy__likely(!s->is_worker))
		return;
	w = sy__worker_self();
	if (w && w->current == m)
		w->taken = true;
}

/* Dispatch @p msg, a request or a plain message, from the calling
 * thread's slot. */
static inline __attribute__((always_inline)) int
send_msg(sy_engine *eng, uint32_t route, sy_msg *msg, bool request)
{
	int err = 0;
	struct sy__slot *s = sy__slot_get(eng, &err);

	if (sy__unlikely(!s))
		return err;
	if (request) {
		msg->flags = (uint8_t)((msg->flags & ~SY_MSG_CALL) |
				       SY_MSG_REQUEST);
		msg->reply_slot = (uint16_t)s->id;
		msg->reply_gen = (uint16_t)atomic_load_explicit(&s->gen,
								memory_order_relaxed);
	} else {
		msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	}
	err = sy__dispatch(eng, route, msg, s);
	if (err == 0) {
		if (request)
			sy__total_add(&s->totals, SY_T_REQUESTS, 1);
		mark_taken(s, msg);
	}
	return err;
}

SY_API int sy_send(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	return send_msg(eng, route, msg, false);
}

SY_API int sy_request(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	return send_msg(eng, route, msg, true);
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
