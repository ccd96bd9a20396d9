/*
 * instructions (docs/perf.md): sy-bench under callgrind with N and 2N messages. The child
 * (--fixed-run) shares one CPU with its worker, which sleeps when idle, so that waiting yields
 * instead of spinning through counted instructions; FIXED_WINDOW keeps the ring from filling.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MESSAGES 100000u           /* N */
#define FIXED_WINDOW 512           /* whole bursts, far below a ring */
#define FIXED_METRICS_INTERVAL_MS 60000u

static const char *const sends[] = { "engine-single", "engine-burst32" };
/* bare first; "metrics" is the default. */
static const char *const configs[] = { "bare", "metrics", "metrics-every", "reliability", "all" };

int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant, uint64_t n)
{
	struct engine_config engine = *ctx->engine;
	struct bench_ctx fixed = *ctx;
	double secs;

	engine.metrics_interval_ms = FIXED_METRICS_INTERVAL_MS;
	fixed.engine = &engine;
	fixed.engine_idle = SY_IDLE_SLEEP;
	fixed.engine_window = FIXED_WINDOW;
	fixed.producers = fixed.workers = 1;
	fixed.payload = BENCH_DEFAULT_PAYLOAD;
	fixed.burst = strcmp(variant, sends[1]) ? 0 : BENCH_DEFAULT_BURST;
	if (fixed.burst || !strcmp(variant, sends[0]))
		return engine_run(&fixed, n, NULL, NULL, &secs);
	return bench_fail(-EINVAL, "--fixed-variant: unknown '%s'", variant);
}

/* (Ir(2N) - Ir(N)) / N of @p send through @p policy into @p row, from the "summary:" or
 * "totals:" line of two runs of @p self (this program). */
static int count_row(const struct bench_ctx *ctx, const char *self, const char *send,
		     const char *policy, struct report_row *row)
{
	char command[PATH_MAX + 256], line[512];
	uint64_t ir[2] = { 0, 0 };
	int rc = 0;
	FILE *f;

	bench_progress(ctx, "%s: instructions: %s", row->scenario, row->variant);
	for (unsigned k = 0; !rc && k < 2; k++) {
		snprintf(command, sizeof(command), "valgrind --tool=callgrind -q "
			 "--callgrind-out-file=/dev/stdout '%s' --fixed-run %u --fixed-variant %s "
			 "--fixed-policy %s --fixed-config %s --cpus %d", self, (k + 1) * MESSAGES,
			 send, policy, row->engine->name, ctx->producer_cpu);
		fflush(NULL);
		f = popen(command, "r");
		rc = -EPROTO;
		/* Read it all: the child blocks while its output waits. */
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "summary: %" SCNu64, &ir[k]) == 1 ||
			    sscanf(line, "totals: %" SCNu64, &ir[k]) == 1)
				rc = 0;
		if (!f || pclose(f))
			rc = bench_fail(-ECHILD, "instructions: the callgrind run of %s (policy "
					"%s, configuration %s) with %u messages failed", send,
					policy, row->engine->name, (k + 1) * MESSAGES);
		else if (rc)
			bench_fail(rc, "instructions: no callgrind total");
	}
	bench_progress(ctx, NULL);
	row->has_instructions = !rc;
	row->instructions_per_msg = ((double)ir[1] - (double)ir[0]) / MESSAGES;
	row->instructions_messages = MESSAGES;
	return rc;
}

/* This executable (in valgrind, /proc/self/exe is valgrind's); -ENOENT. */
static int find_self(char *self, size_t len)
{
	ssize_t n;

	if (!bench_have("valgrind"))
		return -ENOENT;
	n = readlink("/proc/self/exe", self, len - 1);
	if (n < 0 || memchr(self, '\'', (size_t)n))
		return bench_fail(-EINVAL, "instructions: /proc/self/exe: %s",
				  n < 0 ? strerror(errno) : "a quote in the path");
	self[n] = '\0';
	return 0;
}

int scenario_instructions(const struct bench_ctx *ctx, struct report *rep)
{
	static char detail[256];
	struct report_row *row, *base = NULL;
	char self[PATH_MAX], name[64];
	int rc;

	rc = find_self(self, sizeof(self));
	rep->instructions_skipped = rc == -ENOENT;
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	snprintf(detail, sizeof(detail), "%s\nengine-single, engine-burst32: the default "
		 "configuration (%s); /<configuration>: see overhead",
		 engine_policy_route(ctx->policy), ENGINE_CONFIG_DEFAULT->name);
	for (unsigned i = 0; !rc && i < ARRAY_SIZE(sends) * ARRAY_SIZE(configs); i++) {
		const char *send = sends[i / ARRAY_SIZE(configs)];
		unsigned c = i % ARRAY_SIZE(configs);

		snprintf(name, sizeof(name), "%s/%s", send, configs[c]);
		row = report_add_row(rep, "instructions", c == 1 ? send : name);
		row->policy = ctx->policy;
		row->engine = engine_config_find(configs[c]);
		row->detail = i ? NULL : detail;
		row->producers = row->workers = 1;
		row->messages = MESSAGES;
		rc = count_row(ctx, self, send, ctx->policy, row);
		base = c ? base : row;
		row->extra_vs = c ? base->engine->name : NULL;
		row->extra_instructions = row->instructions_per_msg - base->instructions_per_msg;
	}
	return rc;
}

int instructions_policies(const struct bench_ctx *ctx, struct report *rep)
{
	/* Counted first: the first row of the policies. */
	const struct report_row *base = report_find(rep, "policies", BASELINE_POLICY);
	char self[PATH_MAX];
	int rc;

	rc = find_self(self, sizeof(self));
	if (rc == -ENOENT)
		report_add_note(rep, "policies: instructions per pick skipped (valgrind not "
				"found)");
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	for (unsigned i = 0; !rc && i < rep->n_rows; i++) {
		struct report_row *row = &rep->rows[i];

		if (strcmp(row->scenario, "policies"))
			continue;
		rc = count_row(ctx, self, sends[1], row->policy, row);
		row->extra_vs = base ? base->policy : NULL;
		row->extra_instructions = row->instructions_per_msg -
			(base ? base->instructions_per_msg : 0);
	}
	return rc;
}
