/* Asymmetric barriers (barrier.h): membarrier where the kernel has it. */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "queues/barrier.h"
#include "queues/tsan.h"

bool sy__barrier_asymmetric;
static pthread_once_t barrier_once = PTHREAD_ONCE_INIT;

static void barrier_probe(void)
{
#if SY_NO_MEMBARRIER
	/* Built with -Dmembarrier=false: the fences of a kernel without it. */
	return;
#endif
	long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		return;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		    0, 0) != 0)
		return;
	sy__barrier_asymmetric = true;
}

void sy__barrier_init(void)
{
	pthread_once(&barrier_once, barrier_probe);
}

void sy__barrier_heavy(void)
{
	if (sy__barrier_asymmetric)
		syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else
		sy__fence();
}

#if SY_YIELD_POINTS
void sy__yield_point(void)
{
	static __thread uint32_t x;

	if (!x)
		x = (uint32_t)(uintptr_t)&x | 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	if ((x & 15) == 0)
		sched_yield();
}
#endif
