/*
 * Engine configuration: struct sy_config resolved against the environment.
 *
 * Precedence: an explicit field of struct sy_config, then the environment
 * variable, then the built-in default. The environment is read once, by
 * sy__config_resolve(), when an engine is created. Every failure names the
 * variable (or config field), the value and the reason, and returns -EINVAL;
 * nothing here exits or prints.
 */
#ifndef SY_CORE_CONFIG_INTERNAL_H
#define SY_CORE_CONFIG_INTERNAL_H

#include <sched.h>
#include <stddef.h>

#include "switchyard.h"

#define SY_MAX_WORKERS 256

/** A configuration with every field decided. */
struct sy__config {
	unsigned workers;
	int worker_cpu[SY_MAX_WORKERS]; /* -1: not pinned */
	enum sy_pin pin;
	enum sy_idle idle;
	int display_affinity;
	unsigned ring_size;
	unsigned burst;
	unsigned max_producers;
	unsigned max_servers;
	unsigned max_routes;
	const struct sy_allocator *allocator;
	uint64_t seed;                   /* 0: the engine picks one */
	uint64_t (*clock)(void *ctx);    /* NULL: the engine's default */
	void *clock_ctx;
	unsigned max_dead_letters;
	/* The callbacks, as struct sy_config declares them. */
	__typeof__(((struct sy_config *)0)->on_breaker) on_breaker;
	__typeof__(((struct sy_config *)0)->on_backpressure) on_backpressure;
	void *callback_ctx;
	bool metrics;
	unsigned metrics_interval_ms;
	int collector_cpu;               /* -1: not pinned */
	unsigned latency_sample;
	unsigned retention_ms;
	__typeof__(((struct sy_config *)0)->on_warning) on_warning;
	/* What is legal but suspicious, "; "-separated; "" if nothing. */
	char warnings[512];
};

/**
 * Resolve @p in (NULL: all unset) against the environment and the process's
 * allowed CPUs (sched_getaffinity).
 * @return 0; -EINVAL with a message in @p why.
 */
int sy__config_resolve(const struct sy_config *in, struct sy__config *out,
		       char *why, size_t whylen);

/**
 * Parse a CPU list in taskset syntax: comma-separated items, each N, N-M or
 * N-M:S (stride S >= 1), N <= M, every CPU < CPU_SETSIZE. Whitespace around
 * items is not allowed. @p name names the source in messages ("SY_CPUS").
 * @return 0 with @p out filled (never empty); -EINVAL with a message in @p why.
 */
int sy__cpulist_parse(const char *name, const char *s, cpu_set_t *out,
		      char *why, size_t whylen);

/**
 * Choose a CPU for each of @p workers workers from @p allowed (non-empty):
 * close: worker i on the (i mod n)-th allowed CPU; spread: spaced evenly
 * (i * n / workers); none: -1 for every worker.
 */
void sy__place_workers(const cpu_set_t *allowed, enum sy_pin pin,
		       unsigned workers, int *cpu_out);

#endif /* SY_CORE_CONFIG_INTERNAL_H */
