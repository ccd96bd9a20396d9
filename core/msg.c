/*
 * The message accessors: a message's data, size, tag, key and deadline,
 * and what a handler may ask of the message it is running.
 */
#include <errno.h>

#include "core/error.h"
#include "core/msg.h"
#include "core/slot.h"
#include "core/worker.h"

int sy__msg_refuse(const char *call)
{
	sy__fail(-EINVAL, "the message is not the caller's: freed, sent, "
		 "or held by the engine (the dead letter queue, a ring)");
	return sy__failed(call, -EINVAL);
}

int sy__msg_check(const char *call, const struct sy_msg *m)
{
	if (!m)
		return sy__null(call, "msg");
	if (!m->held)
		return 0;
	return sy__worker_holds(m) ? 0 : sy__msg_refuse(call);
}

/* The setters change a message its caller owns only (sy__msg_check()):
 * one sent already is another thread's to read. */
SY_API void sy_msg_set_deadline(sy_msg *msg, uint64_t deadline_ns)
{
	if (sy__msg_check(__func__, msg))
		return;
	msg->deadline = deadline_ns;
	if (deadline_ns)
		msg->flags |= SY_MSG_DEADLINE;
	else
		msg->flags &= (uint8_t)~SY_MSG_DEADLINE;
}

SY_API uint64_t sy_msg_deadline(const sy_msg *msg)
{
	SY__NONNULL_OR(msg, 0);
	return (msg->flags & SY_MSG_DEADLINE) ? msg->deadline : 0;
}

SY_API unsigned sy_msg_attempts(const sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	SY__NONNULL_OR(msg, 0);
	/* msg->attempts counts the runs that failed; the run under way is
	 * one more. */
	return msg->attempts + (w && w->current == msg);
}

SY_API void *sy_msg_data(sy_msg *msg)
{
	SY__NONNULL_OR(msg, NULL);
	return msg->data;
}

SY_API size_t sy_msg_size(const sy_msg *msg)
{
	SY__NONNULL_OR(msg, 0);
	return msg->size;
}

SY_API size_t sy_msg_capacity(const sy_msg *msg)
{
	SY__NONNULL_OR(msg, 0);
	return msg->cap;
}

SY_API int sy_msg_set_size(sy_msg *msg, size_t size)
{
	int err = sy__msg_check(__func__, msg);

	if (err)
		return err;
	if (size > msg->cap)
		return sy__failed(__func__, sy__fail(-EMSGSIZE,
			"size %zu above the message's capacity %u", size, msg->cap));
	msg->size = (uint32_t)size;
	return 0;
}

SY_API uint64_t sy_msg_tag(const sy_msg *msg)
{
	SY__NONNULL_OR(msg, 0);
	return msg->tag;
}

SY_API void sy_msg_set_tag(sy_msg *msg, uint64_t tag)
{
	if (sy__msg_check(__func__, msg))
		return;
	msg->tag = tag;
}

SY_API uint64_t sy_msg_key(const sy_msg *msg)
{
	SY__NONNULL_OR(msg, 0);
	return msg->key;
}

SY_API void sy_msg_set_key(sy_msg *msg, uint64_t key)
{
	if (sy__msg_check(__func__, msg))
		return;
	msg->key = key;
}

SY_API bool sy_msg_is_request(const sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	SY__NONNULL_OR(msg, false);
	return w && w->current == msg && (msg->flags & SY_MSG_REQUEST);
}

SY_API int sy_msg_keep(sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	SY__NONNULL(msg);
	if (!sy__worker_holds(msg))
		return sy__failed(__func__, sy__fail(-EINVAL,
			"the message is not the one this handler runs, or it "
			"was passed on already"));
	w->taken = true;
	msg->held = 0; /* the handler's now */
	msg->status = 0;
	return 0;
}
