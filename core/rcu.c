/*
 * The engine's read-side domain, the writer's side (rcu.h): a grace period
 * over every slot in use.
 */
#include <sched.h>
#include <time.h>

#include "core/engine.h"
#include "core/rcu.h"
#include "core/slot.h"

/* Wait a little for a reader: spin, then yield, then sleep. */
static void reader_wait(unsigned round)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };

	if (round < 64)
		__builtin_ia32_pause();
	else if (round < 128)
		sched_yield();
	else
		nanosleep(&ts, NULL);
}

void sy__slots_synchronize(struct sy_engine *eng)
{
	uint64_t period = atomic_fetch_add_explicit(&eng->rcu_period, 1,
						    memory_order_relaxed) + 1;
	unsigned used;

	SY_YIELD_POINT();
	sy__barrier_heavy(); /* E1 */
	used = atomic_load_explicit(&eng->slots_used, memory_order_acquire);
	for (unsigned i = 0; i < used; i++) {
		struct sy__rcu_reader *r = &eng->slots[i].rcu;

		for (unsigned round = 0;; round++) {
			/* E2: pairs with the release in sy__slot_read_unlock(). */
			uint64_t v = atomic_load_explicit(&r->period,
							  memory_order_acquire);

			if (v == 0 || v >= period)
				break;
			reader_wait(round);
		}
	}
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}
