/* Asymmetric barriers (barrier.h): membarrier where the kernel has it. */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "queues/barrier.h"

bool sy__barrier_asymmetric;
static pthread_once_t barrier_once = PTHREAD_ONCE_INIT;

static void barrier_probe(void)
{
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
