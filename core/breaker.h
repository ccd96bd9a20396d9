/*
 * Circuit breakers (breaker.c).
 *
 * A server's breaker has shared state that senders read (the state and, in
 * half-open, a token count they take with a compare-and-swap) and counts
 * that only the server's worker writes (consecutive failures and the
 * sliding window of results), because every handler run of a server happens
 * on its worker. While the breaker is anything but closed or disabled the
 * server's gate has SY_GATE_BREAKER set, so the pick fast path reads one
 * word and calls sy__breaker_admit() only then.
 */
#ifndef SY_CORE_BREAKER_H
#define SY_CORE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

struct sy_engine;
struct sy__server;
struct sy__breaker;

/* Check the options and allocate a closed breaker for a server of @p eng
 * (it keeps eng for the clock and the on_breaker callback). 0; -EINVAL (with
 * sy__fail's message); -ENOMEM. */
int sy__breaker_create(struct sy_engine *eng, const struct sy_breaker_opts *o,
		       struct sy__breaker **out);
void sy__breaker_destroy(struct sy_engine *eng, struct sy__breaker *b);

/*
 * A sender picked @p srv while its gate has SY_GATE_BREAKER set: may it
 * send? Open: no, unless open_ns has passed, then it moves to half-open
 * (one thread wins the CAS). Half-open: yes if it takes a token. Forced
 * open: no. Any thread; lock-free.
 */
bool sy__breaker_admit(struct sy__server *srv);

/* Would sy__breaker_admit() say yes, without taking a token? */
bool sy__breaker_would_admit(const struct sy__server *srv);

/* The result of one handler run of @p srv. Its worker only. */
void sy__breaker_record(struct sy__server *srv, bool ok);

enum sy_breaker_state sy__breaker_get(const struct sy__breaker *b);

/* Operator transitions (sy_breaker_force()). */
int sy__breaker_force(struct sy_engine *eng, struct sy__server *srv,
		      enum sy_breaker_state to);

#endif /* SY_CORE_BREAKER_H */
