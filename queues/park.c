/* Futex wait and wake for struct sy__parker; see park.h for the protocol. */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "queues/park.h"
#include "queues/tsan.h"

static long futex(_Atomic uint32_t *word, int op, uint32_t val,
		  const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, 0);
}

void sy__park_prepare(struct sy__parker *p)
{
	/* S1 */
	atomic_store_explicit(&p->parked, 1, memory_order_seq_cst);
	SY_YIELD_POINT();
	/* S2: pairs with W2 in sy__wake(). */
	sy__barrier_heavy();
}

void sy__park_wait(struct sy__parker *p, uint64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / 1000000000u),
		.tv_nsec = (long)(timeout_ns % 1000000000u),
	};

	/* Returns at once with EAGAIN if a waker already cleared the word. */
	futex(&p->parked, FUTEX_WAIT_PRIVATE, 1, timeout_ns ? &ts : NULL);
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
}

__attribute__((noinline)) void sy__unpark(struct sy__parker *p)
{
	/* W3: only the waker that clears the word makes the system call. */
	if (atomic_exchange_explicit(&p->parked, 0, memory_order_seq_cst))
		futex(&p->parked, FUTEX_WAKE_PRIVATE, 1, NULL);
}

__attribute__((noinline)) int sy__unpark_rc(struct sy__parker *p)
{
	sy__unpark(p);
	return 0;
}
