/* Replies (reply.c): what other files of core/ need of them. */
#ifndef SY_CORE_REPLY_H
#define SY_CORE_REPLY_H

#include <stdatomic.h>

#include "core/msg.h"
#include "core/slot.h"

struct sy__worker;

/* A reply nobody waits for any more: count it and free it from @p s. */
void sy__reply_drop(struct sy__slot *s, struct sy_msg *m);

/* Hand request @p m, whose handler failed with @p status, back to its
 * requester as the reply (SY_FAIL_RETURN). @return 0; -ECONNRESET or
 * -EAGAIN (not handed back: the message is still the worker's). */
int sy__reply_failure(struct sy__worker *w, struct sy_msg *m, int status);

/* Address request @p m's reply to slot @p s. The generation lies in the
 * header's second line, which a round trip's other steps do not write: it
 * is written only when it changes, so that a message sent as request after
 * request leaves that line alone (docs/results.md, the ninth round). */
static inline void sy__reply_address(struct sy_msg *m, const struct sy__slot *s)
{
	uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);

	m->reply_slot = s->id;
	if (m->reply_gen != gen)
		m->reply_gen = gen;
}

#endif /* SY_CORE_REPLY_H */
