/*
 * CPU sets for sy-bench: parse a CPU list in taskset syntax (the syntax of
 * --cpus and SY_CPUS), read the CPUs the process may run on, and pin the
 * threads the harness starts.
 */
#ifndef SY_PERF_AFFINITY_H
#define SY_PERF_AFFINITY_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>

/**
 * Parse a CPU list: comma-separated items, each N, N-M or N-M:S (stride
 * S >= 1), N <= M, every CPU below CPU_SETSIZE, no whitespace.
 * @return 0 with @p out filled (never empty); -EINVAL with a message in @p why.
 */
int affinity_parse_cpulist(const char *s, cpu_set_t *out, char *why,
			   size_t whylen);

/** The CPUs the calling thread may run on. @return 0; -errno. */
int affinity_allowed(cpu_set_t *out);

/** The @p n-th CPU (from 0) of @p set, or -1 when it has fewer. */
int affinity_nth(const cpu_set_t *set, unsigned n);

/**
 * Make threads created with @p attr start pinned to @p cpu.
 * @return 0; -errno.
 */
int affinity_attr_pin(pthread_attr_t *attr, int cpu);

#endif /* SY_PERF_AFFINITY_H */
