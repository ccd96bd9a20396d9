/*
 * instructions: instructions per routed message. sy-bench runs itself
 * under callgrind with N and 2N messages and reports (Ir(2N) - Ir(N)) / N,
 * which cancels the cost of starting the process and the engine. The
 * child (--fixed-run) is untimed: workers sleep when idle, at most
 * FIXED_WINDOW messages are in flight so that the ring never fills, and
 * producer and worker share one CPU, where a waiter's sched_yield() hands
 * the CPU to the thread it waits for instead of spinning through counted
 * instructions. Its metrics collector wakes once a minute, not during the
 * run: its work is per period, not per message.
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
static const char *const configs[] = {
	"bare", "metrics", "metrics-every", "reliability", "all",
};

int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant,
			   uint64_t n)
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
	for (unsigned i = 0; i < ARRAY_SIZE(sends); i++) {
		fixed.burst = i ? BENCH_DEFAULT_BURST : 0;
		if (!strcmp(variant, sends[i]))
			return engine_run(&fixed, n, NULL, NULL, &secs);
	}
	return bench_fail(-EINVAL, "--fixed-variant: unknown '%s'", variant);
}

/*
 * Ir of @p send through @p policy with @p config and @p n messages, run
 * by @p self (this executable) on @p cpu: the "summary:" or "totals:" line
 * of the callgrind output, which comes through a pipe.
 */
static int callgrind_run(const char *self, int cpu, const char *send,
			 const char *policy, const char *config, uint64_t n,
			 uint64_t *ir)
{
	char command[PATH_MAX + 256], line[512];
	int rc = -EPROTO;
	FILE *f;

	snprintf(command, sizeof(command), "valgrind --tool=callgrind -q "
		 "--callgrind-out-file=/dev/stdout '%s' --fixed-run %" PRIu64
		 " --fixed-variant %s --fixed-policy %s --fixed-config %s "
		 "--cpus %d", self, n, send, policy, config, cpu);
	fflush(NULL);
	f = popen(command, "r");
	/* Read it all: the child blocks while its output waits. */
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "summary: %" SCNu64, ir) == 1 ||
		    sscanf(line, "totals: %" SCNu64, ir) == 1)
			rc = 0;
	if (!f || pclose(f))
		return bench_fail(-ECHILD, "instructions: the callgrind run of "
				  "%s (policy %s, configuration %s) with %"
				  PRIu64 " messages failed", send, policy,
				  config, n);
	return rc ? bench_fail(rc, "instructions: no callgrind total") : 0;
}

/* (Ir(2N) - Ir(N)) / N of @p send through @p policy, into @p row. */
static int count_row(const struct bench_ctx *ctx, const char *self,
		     const char *send, const char *policy,
		     struct report_row *row)
{
	uint64_t ir1 = 0, ir2 = 0;
	int rc;

	bench_progress(ctx, "%s: instructions: %s", row->scenario,
		       row->variant);
	rc = callgrind_run(self, ctx->producer_cpu, send, policy,
			   row->engine->name, MESSAGES, &ir1);
	if (!rc)
		rc = callgrind_run(self, ctx->producer_cpu, send, policy,
				   row->engine->name, 2 * MESSAGES, &ir2);
	bench_progress(ctx, NULL);
	row->has_instructions = !rc;
	row->instructions_per_msg = ((double)ir2 - (double)ir1) / MESSAGES;
	row->instructions_messages = MESSAGES;
	return rc;
}

/*
 * This executable, found here: inside valgrind, /proc/self/exe names
 * valgrind's tool. @return 0; -ENOENT (no valgrind); -errno.
 */
static int find_self(char *self, size_t len)
{
	ssize_t n;

	if (!bench_have("valgrind"))
		return -ENOENT;
	n = readlink("/proc/self/exe", self, len - 1);
	if (n < 0 || memchr(self, '\'', (size_t)n))
		return bench_fail(-EINVAL, "instructions: /proc/self/exe: %s",
				  n < 0 ? strerror(errno) : "a quote in the "
				  "path");
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
	snprintf(detail, sizeof(detail), "%s\nengine-single, engine-burst32: "
		 "the default configuration (%s); /<configuration>: see "
		 "overhead", engine_policy_route(ctx->policy),
		 ENGINE_CONFIG_DEFAULT->name);
	for (unsigned i = 0; !rc && i < ARRAY_SIZE(sends) * ARRAY_SIZE(configs);
	     i++) {
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
		row->extra_instructions = row->instructions_per_msg -
					  base->instructions_per_msg;
	}
	return rc;
}

int instructions_policies(const struct bench_ctx *ctx, struct report *rep)
{
	const struct report_row *base;
	char self[PATH_MAX];
	int rc;

	rc = find_self(self, sizeof(self));
	if (rc == -ENOENT)
		report_add_note(rep, "policies: instructions per pick skipped "
				"(valgrind not found)");
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	for (unsigned i = 0; !rc && i < rep->n_rows; i++)
		if (!strcmp(rep->rows[i].scenario, "policies"))
			rc = count_row(ctx, self, sends[1],
				       rep->rows[i].policy, &rep->rows[i]);
	base = report_find(rep, "policies", BASELINE_POLICY);
	for (unsigned i = 0; !rc && base && i < rep->n_rows; i++) {
		if (strcmp(rep->rows[i].scenario, "policies"))
			continue;
		rep->rows[i].extra_vs = base->policy;
		rep->rows[i].extra_instructions =
			rep->rows[i].instructions_per_msg -
			base->instructions_per_msg;
	}
	return rc;
}
