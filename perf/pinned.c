/*
 * Pinned threads behind a start gate.
 *
 * The gate keeps a thread from starting its timed work while its partner
 * does not exist yet: each thread checks in, then waits until the control
 * thread opens the gate (or aborts the run because a creation failed).
 */
#include "pinned.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>

#include "affinity.h"
#include "bench.h"

enum gate_state { GATE_CLOSED, GATE_OPEN, GATE_ABORT };

struct gate {
	atomic_uint arrived;
	atomic_int state;
	unsigned spin_limit;
};

struct pinned_start {
	struct pinned_thread *thread;
	struct gate *gate;
};

static void *pinned_main(void *arg)
{
	struct pinned_start *start = arg;
	struct gate *gate = start->gate;
	struct backoff b;
	int state;

	atomic_fetch_add_explicit(&gate->arrived, 1, memory_order_relaxed);
	backoff_init(&b, gate->spin_limit);
	/*
	 * Acquire pairs with the release that opens the gate: the thread sees
	 * every setup its control thread did before it.
	 */
	for (;;) {
		state = atomic_load_explicit(&gate->state,
					     memory_order_acquire);
		if (state != GATE_CLOSED)
			break;
		if (backoff_wait(&b) < 0) {
			start->thread->rc = -ETIMEDOUT;
			return NULL;
		}
	}
	if (state == GATE_OPEN)
		start->thread->rc = start->thread->fn(start->thread->arg);
	return NULL;
}

static int start_one(struct pinned_start *start)
{
	pthread_attr_t attr;
	int rc;

	rc = -pthread_attr_init(&attr);
	if (rc < 0)
		return rc;
	rc = affinity_attr_pin(&attr, start->thread->cpu);
	if (!rc)
		rc = -pthread_create(&start->thread->tid, &attr, pinned_main,
				     start);
	pthread_attr_destroy(&attr);
	return rc;
}

int pinned_run(struct pinned_thread *threads, unsigned n, unsigned spin_limit)
{
	struct pinned_start starts[PINNED_MAX];
	struct gate gate = { .spin_limit = spin_limit };
	struct backoff b;
	unsigned started = 0;
	int rc = 0;

	assert(n >= 1 && n <= PINNED_MAX);
	atomic_init(&gate.arrived, 0);
	atomic_init(&gate.state, GATE_CLOSED);
	for (; started < n; started++) {
		starts[started].thread = &threads[started];
		starts[started].gate = &gate;
		threads[started].rc = 0;
		rc = start_one(&starts[started]);
		if (rc < 0)
			break;
	}
	backoff_init(&b, spin_limit);
	while (!rc && atomic_load_explicit(&gate.arrived,
					   memory_order_relaxed) < n)
		rc = backoff_wait(&b);
	/* Release pairs with the acquire in pinned_main(). */
	atomic_store_explicit(&gate.state, rc ? GATE_ABORT : GATE_OPEN,
			      memory_order_release);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(threads[i].tid, NULL);
		if (!rc)
			rc = threads[i].rc;
	}
	return rc;
}
