/* Replies (reply.c): what other files of core/ need of them. */
#ifndef SY_CORE_REPLY_H
#define SY_CORE_REPLY_H

struct sy_msg;
struct sy__slot;

/* A reply nobody waits for any more: count it and free it from @p s. */
void sy__reply_drop(struct sy__slot *s, struct sy_msg *m);

#endif /* SY_CORE_REPLY_H */
