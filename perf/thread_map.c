/*
 * sy-bench's thread -> CPU map, in the engine's format.
 */
#include "thread_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"

void thread_map_print(const struct bench_ctx *ctx)
{
	const char *env = getenv("SY_DISPLAY_AFFINITY");
	cpu_set_t allowed;
	int first = -1, n = 0;

	if (!env || strcmp(env, "1"))
		return;
	fprintf(stderr, "sy-bench: producer -> cpu %d (baselines, engine "
		"producer, probe)\n", ctx->producer_cpu);
	fprintf(stderr, "sy-bench: consumer -> cpu %d (baselines, probe; the "
		"engine's one worker is pinned there too)\n",
		ctx->consumer_cpu);
	if (!affinity_allowed(&allowed)) {
		n = CPU_COUNT(&allowed);
		first = affinity_nth(&allowed, 0);
	}
	if (n == 1)
		fprintf(stderr, "sy-bench: control -> cpu %d (not pinned: the "
			"only allowed CPU)\n", first);
	else
		fprintf(stderr, "sy-bench: control -> not pinned (%d allowed "
			"CPUs; it starts, then waits for the others)\n", n);
}
