/*
 * The engine configurations that sy-bench runs, and how each one becomes a
 * sy_config, server options and route options.
 */
#include "engine_config.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Targets of the overhead scenario: least ratio to bare. */
#define TARGET_METRICS 0.90
#define TARGET_RELIABILITY 0.85

/* The default configuration: the second entry, "metrics". */
#define DEFAULT_INDEX 1

/*
 * bare first (the baseline), the default second. The sampled variants are
 * there to choose latency_sample's default from measured overhead, so they
 * carry the metrics target too.
 */
static const struct engine_config configs[] = {
	/* The engine as it was before metrics, breakers and backpressure. */
	{ .name = "bare", .metrics = -1, .backpressure = SY_BP_OFF },
	/* The library's defaults: what a user gets. */
	{ .name = "metrics", .metrics = 1, .target = TARGET_METRICS },
	/* Every send call timed: the upper bound of sampling's cost. */
	{ .name = "metrics-every", .metrics = 1, .latency_sample = 1,
	  .target = TARGET_METRICS },
	{ .name = "metrics-1in16", .metrics = 1, .latency_sample = 16,
	  .target = TARGET_METRICS },
	{ .name = "metrics-1in256", .metrics = 1, .latency_sample = 256,
	  .target = TARGET_METRICS },
	/* Metrics off; a default breaker and backpressure reject. */
	{ .name = "reliability", .metrics = -1, .breaker = true,
	  .backpressure = SY_BP_REJECT, .target = TARGET_RELIABILITY },
	/* Everything on; no target of its own. */
	{ .name = "all", .metrics = 1, .breaker = true,
	  .backpressure = SY_BP_REJECT },
};

_Static_assert(ARRAY_SIZE(configs) == ENGINE_CONFIGS,
	       "ENGINE_CONFIGS counts the table");

/* Every field zero: the breaker's defaults. */
static const struct sy_breaker_opts default_breaker;

const struct engine_config *engine_config_default(void)
{
	return &configs[DEFAULT_INDEX];
}

const struct engine_config *engine_config_at(unsigned i)
{
	assert(i < ENGINE_CONFIGS);
	return &configs[i];
}

const struct engine_config *engine_config_find(const char *name)
{
	for (unsigned i = 0; i < ENGINE_CONFIGS; i++) {
		if (!strcmp(configs[i].name, name))
			return &configs[i];
	}
	return NULL;
}

void engine_config_apply(const struct engine_config *e, struct sy_config *cfg)
{
	cfg->metrics = e->metrics;
	cfg->latency_sample = e->latency_sample;
	cfg->metrics_interval_ms = e->metrics_interval_ms;
}

const struct sy_breaker_opts *engine_config_breaker(
	const struct engine_config *e)
{
	return e->breaker ? &default_breaker : NULL;
}

void engine_config_route(const struct engine_config *e,
			 struct sy_route_opts *ropts)
{
	ropts->backpressure = e->backpressure;
}

const char *engine_config_bp_name(enum sy_backpressure bp)
{
	switch (bp) {
	case SY_BP_OFF:
		return "off";
	case SY_BP_REJECT:
		return "reject";
	case SY_BP_SPILL:
		return "spill";
	case SY_BP_BLOCK:
		return "block";
	case SY_BP_DEAD_LETTER:
		return "dead_letter";
	}
	return "unknown";
}

void engine_config_describe(const struct engine_config *e, char *out,
			    size_t len)
{
	char sample[32];

	if (e->latency_sample)
		snprintf(sample, sizeof(sample), "%u", e->latency_sample);
	else
		snprintf(sample, sizeof(sample), "default");
	if (e->metrics == -1)
		snprintf(out, len, "metrics off, %s, backpressure %s",
			 e->breaker ? "breaker" : "no breaker",
			 engine_config_bp_name(e->backpressure));
	else
		snprintf(out, len, "metrics on, latency_sample %s, %s, "
			 "backpressure %s", sample,
			 e->breaker ? "breaker" : "no breaker",
			 engine_config_bp_name(e->backpressure));
}
