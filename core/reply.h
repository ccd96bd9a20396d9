/* Replies (reply.c): what other files of core/ need of them. */
#ifndef SY_CORE_REPLY_H
#define SY_CORE_REPLY_H

struct sy_msg;
struct sy__slot;

struct sy__worker;

/* A reply nobody waits for any more: count it and free it from @p s. */
void sy__reply_drop(struct sy__slot *s, struct sy_msg *m);

/* Hand request @p m, whose handler failed with @p status, back to its
 * requester as the reply (SY_FAIL_RETURN). @return 0; -ECONNRESET or
 * -EAGAIN (not handed back: the message is still the worker's). */
int sy__reply_failure(struct sy__worker *w, struct sy_msg *m, int status);

#endif /* SY_CORE_REPLY_H */
