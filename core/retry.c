/*
 * Retries of failed handler runs.
 *
 * A worker whose handler fails a message on a route with max_attempts > 1
 * keeps the message on its own list, soonest first, until its backoff has
 * passed: base << (attempts - 1), capped, with "equal jitter" (half fixed,
 * half random) so that retries of a burst of failures spread out. Each pass
 * of the worker sends the due ones through the route again, avoiding the
 * server that failed; a full or congested ring puts the retry back for a
 * moment, never blocks the worker and never drops it.
 *
 * The budget keeps a failing server from multiplying the load: per worker
 * and route, retries may not exceed budget_milli / 1000 of the first runs,
 * plus budget_min. A retry over budget is dead-lettered
 * (retries_exhausted).
 *
 * Once the engine is stopping a retry is not sent (the worker it would go
 * to may have exited): it is dead-lettered with reason shutdown.
 */
#include <errno.h>

#include "core/dispatch.h"
#include "core/dlq.h"
#include "core/engine.h"
#include "core/msg.h"
#include "core/retry.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/worker.h"

#define SY_RETRY_RECHECK_NS 50000u /* a retry that found no room waits this long */

/* Insert @p m into the worker's list by due time (stable for equal times). */
static void insert(struct sy__worker *w, struct sy_msg *m)
{
	struct sy_msg **at = &w->retries;

	while (*at && (*at)->due_ns <= m->due_ns)
		at = &(*at)->next;
	m->next = *at;
	*at = m;
	w->nretries++;
}

static struct sy_msg *pop(struct sy__worker *w)
{
	struct sy_msg *m = w->retries;

	w->retries = m->next;
	w->nretries--;
	return m;
}

bool sy__retry_allowed(const struct sy__route *r, const struct sy_msg *m,
		       const struct sy__budget *b)
{
	return m->attempts < r->max_attempts &&
	       b->retries < b->runs * r->budget_milli / 1000 + r->budget_min;
}

void sy__retry_schedule(struct sy__worker *w, const struct sy__route *r,
			struct sy_msg *m)
{
	unsigned shift = m->attempts > 1 ? m->attempts - 1u : 0u;
	uint64_t backoff = r->backoff_ns;

	while (shift-- && backoff < r->backoff_max_ns)
		backoff <<= 1;
	if (backoff > r->backoff_max_ns)
		backoff = r->backoff_max_ns;
	backoff = backoff / 2 + sy__slot_random(w->slot) % (backoff / 2 + 1);
	m->due_ns = sy__now(w->eng) + backoff;
	insert(w, m);
}

/* Dead-letter @p m from the worker's list. */
static void give_up(struct sy__worker *w, struct sy_msg *m,
		    enum sy_dl_reason why)
{
	m->next = NULL;
	sy__dead_letter(w->eng, w->slot, m, why, m->last_server);
}

unsigned sy__retries_due(struct sy__worker *w)
{
	struct sy_engine *eng = w->eng;
	uint64_t now = sy__now(eng);
	unsigned sent = 0;

	while (w->retries && w->retries->due_ns <= now) {
		struct sy_msg *m = pop(w);
		enum sy_dl_reason why;
		int rc;

		if (atomic_load_explicit(&eng->state, memory_order_relaxed) >=
		    SY_ENGINE_STOPPING) {
			give_up(w, m, SY_DL_SHUTDOWN);
			continue;
		}
		rc = sy__dispatch_retry(w, m, &why);
		if (rc == 0) {
			sent++;
			continue;
		}
		if (rc == -EAGAIN) {
			/* No room now: later, behind the others due. */
			m->due_ns = now + SY_RETRY_RECHECK_NS;
			insert(w, m);
			break;
		}
		give_up(w, m, why);
	}
	return sent;
}

uint64_t sy__retries_next(const struct sy__worker *w)
{
	return w->retries ? w->retries->due_ns : 0;
}

void sy__retries_shutdown(struct sy__worker *w)
{
	while (w->retries)
		give_up(w, pop(w), SY_DL_SHUTDOWN);
}
