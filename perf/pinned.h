/*
 * Run a few threads, each pinned to its CPU, that start their work together
 * once all of them exist, and collect their results.
 */
#ifndef SY_PERF_PINNED_H
#define SY_PERF_PINNED_H

#include <pthread.h>

/* Enough for the producers of a many-thread run (multi_runs.h). */
#define PINNED_MAX 64

/** One thread of a run: filled by the caller except @p tid and @p rc. */
struct pinned_thread {
	int cpu;
	int (*fn)(void *arg); /* returns 0 or a negative errno */
	void *arg;
	pthread_t tid;
	int rc;
};

/**
 * Start @p n threads (at most PINNED_MAX), each pinned to its CPU from
 * birth, release them together once all run, and join them.
 * @p spin_limit bounds the spinning of the start gate (see struct backoff).
 * Blocks until every thread returned.
 * @return 0; the first thread's error; -errno if a thread could not be
 *         created (the others then return without running their function).
 */
int pinned_run(struct pinned_thread *threads, unsigned n, unsigned spin_limit);

#endif /* SY_PERF_PINNED_H */
