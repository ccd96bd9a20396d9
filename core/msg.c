/*
 * The message accessors: a message's data, size, tag, key and deadline,
 * and what a handler may ask of the message it is running.
 */
#include <errno.h>

#include "core/msg.h"
#include "core/slot.h"
#include "core/worker.h"

SY_API void sy_msg_set_deadline(sy_msg *msg, uint64_t deadline_ns)
{
	msg->deadline = deadline_ns;
	if (deadline_ns)
		msg->flags |= SY_MSG_DEADLINE;
	else
		msg->flags &= (uint8_t)~SY_MSG_DEADLINE;
}

SY_API uint64_t sy_msg_deadline(const sy_msg *msg)
{
	return (msg->flags & SY_MSG_DEADLINE) ? msg->deadline : 0;
}

SY_API unsigned sy_msg_attempts(const sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	/* msg->attempts counts the runs that failed; the run under way is
	 * one more. */
	return msg->attempts + (w && w->current == msg);
}

SY_API void *sy_msg_data(sy_msg *msg)
{
	return msg->data;
}

SY_API size_t sy_msg_size(const sy_msg *msg)
{
	return msg->size;
}

SY_API size_t sy_msg_capacity(const sy_msg *msg)
{
	return msg->cap;
}

SY_API int sy_msg_set_size(sy_msg *msg, size_t size)
{
	if (size > msg->cap)
		return -EMSGSIZE;
	msg->size = (uint32_t)size;
	return 0;
}

SY_API uint64_t sy_msg_tag(const sy_msg *msg)
{
	return msg->tag;
}

SY_API void sy_msg_set_tag(sy_msg *msg, uint64_t tag)
{
	msg->tag = tag;
}

SY_API uint64_t sy_msg_key(const sy_msg *msg)
{
	return msg->key;
}

SY_API void sy_msg_set_key(sy_msg *msg, uint64_t key)
{
	msg->key = key;
}

SY_API bool sy_msg_is_request(const sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	return w && w->current == msg && (msg->flags & SY_MSG_REQUEST);
}

SY_API int sy_msg_keep(sy_msg *msg)
{
	struct sy__worker *w = sy__worker_self();

	if (!w || w->current != msg)
		return -EINVAL;
	w->taken = true;
	return 0;
}
