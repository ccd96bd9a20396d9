/*
 * A worker's retries (retry.c), the worker's thread only: failed messages
 * wait on the worker's own list, ordered by due time, and go through the
 * route again (dispatch.h) when due.
 */
#ifndef SY_CORE_RETRY_H
#define SY_CORE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct sy_msg;
struct sy__budget;
struct sy__route;
struct sy__worker;

/* May @p m be retried: attempts left and room in the budget @p b? */
bool sy__retry_allowed(const struct sy__route *r, const struct sy_msg *m,
		       const struct sy__budget *b);
/* Put @p m on the worker's list with the route's backoff. */
void sy__retry_schedule(struct sy__worker *w, const struct sy__route *r,
			struct sy_msg *m);
/* Send the retries that are due; inside a read-side section. @return how many. */
unsigned sy__retries_due(struct sy__worker *w);
/* When the next retry is due, 0: none. */
uint64_t sy__retries_next(const struct sy__worker *w);
/* Dead-letter every pending retry (shutdown). */
void sy__retries_shutdown(struct sy__worker *w);

#endif /* SY_CORE_RETRY_H */
