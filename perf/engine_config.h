/*
 * Engine configurations of sy-bench: what an engine run switches on besides
 * routing. Every engine that sy-bench creates takes one of these, so that
 * each run states its metrics, breaker and backpressure settings instead of
 * inheriting whatever the library's defaults are at the time.
 *
 * The headline rows (throughput, latency, policies, scaling, memory) use
 * engine_config_default(): the library's default configuration, metrics on
 * with the default sampling, which is what a user gets. The overhead
 * scenario runs every configuration of the table against "bare" (metrics
 * off, no breaker, backpressure off: the engine before metrics existed).
 */
#ifndef SY_PERF_ENGINE_CONFIG_H
#define SY_PERF_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "switchyard.h"

/* The configuration that every other is compared with. */
#define ENGINE_CONFIG_BASELINE "bare"

/* Configurations in the table (engine_config_at()). */
#define ENGINE_CONFIGS 7

struct engine_config {
	const char *name;          /* "bare", "metrics", ... */
	int metrics;               /* sy_config.metrics: 1 on, -1 off */
	unsigned latency_sample;   /* sy_config.latency_sample; 0: the library's default */
	unsigned metrics_interval_ms; /* sy_config.metrics_interval_ms; 0: the library's default */
	bool breaker;              /* a breaker with default options (all zero) on every server */
	enum sy_backpressure backpressure; /* of every route, default threshold */
	/* Overhead scenario: the least acceptable ratio to bare; 0: no target. */
	double target;
};

/** The library's defaults: metrics on, default sampling. Any thread. */
const struct engine_config *engine_config_default(void);

/** The @p i-th configuration, i below ENGINE_CONFIGS, bare first. Any thread. */
const struct engine_config *engine_config_at(unsigned i);

/** The configuration called @p name, or NULL. Any thread. */
const struct engine_config *engine_config_find(const char *name);

/** Set the fields of @p cfg that @p e decides. Any thread. */
void engine_config_apply(const struct engine_config *e, struct sy_config *cfg);

/** The breaker options of every server of @p e: NULL for none. Any thread. */
const struct sy_breaker_opts *engine_config_breaker(
	const struct engine_config *e);

/** Set the fields of @p ropts that @p e decides. Any thread. */
void engine_config_route(const struct engine_config *e,
			 struct sy_route_opts *ropts);

/** The name of a backpressure mode ("off", "reject", ...). Any thread. */
const char *engine_config_bp_name(enum sy_backpressure bp);

/**
 * @p e in words ("metrics on, latency_sample default, no breaker,
 * backpressure off") into @p out. Any thread.
 */
void engine_config_describe(const struct engine_config *e, char *out,
			    size_t len);

#endif /* SY_PERF_ENGINE_CONFIG_H */
