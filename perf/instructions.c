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

struct callgrind {
	char self[PATH_MAX];
	char dir[PATH_MAX];        /* for the output files */
	char cpus[32];
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
	fprintf(stderr, "sy-bench: --fixed-variant: unknown variant '%s'\n",
		variant);
	return -EINVAL;
}

/* Ir of @p send through @p policy with @p config and @p n messages. */
static int callgrind_run(const struct callgrind *cg, const char *send,
			 const char *policy, const char *config, uint64_t n,
			 uint64_t *ir)
{
	char out_arg[PATH_MAX + 32], file[PATH_MAX], count[24], line[512];
	char *argv[] = {
		"valgrind", "--tool=callgrind", "-q", out_arg,
		(char *)cg->self, "--fixed-run", count, "--fixed-variant",
		(char *)send, "--fixed-policy", (char *)policy,
		"--fixed-config", (char *)config, "--cpus", (char *)cg->cpus,
		NULL,
	};
	int rc = -EPROTO;
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s-%s-%s-%" PRIu64 ".out", cg->dir,
		 send, policy, config, n);
	snprintf(out_arg, sizeof(out_arg), "--callgrind-out-file=%s", file);
	snprintf(count, sizeof(count), "%" PRIu64, n);
	if (bench_spawn(argv, NULL)) {
		fprintf(stderr, "sy-bench: instructions: the callgrind run of "
			"%s (policy %s, configuration %s) with %" PRIu64
			" messages failed\n", send, policy, config, n);
		unlink(file);
		return -ECHILD;
	}
	/* The "summary:" or "totals:" count. */
	f = fopen(file, "r");
	while (f && rc && fgets(line, sizeof(line), f))
		if (sscanf(line, "summary: %" SCNu64, ir) == 1 ||
		    sscanf(line, "totals: %" SCNu64, ir) == 1)
			rc = 0;
	if (f)
		fclose(f);
	if (rc < 0)
		fprintf(stderr, "sy-bench: instructions: %s: no summary or "
			"totals line\n", file);
	unlink(file);
	return rc;
}

/* (Ir(2N) - Ir(N)) / N into @p row. */
static int count_row(const struct bench_ctx *ctx, const struct callgrind *cg,
		     const char *send, const char *policy,
		     struct report_row *row)
{
	uint64_t ir1 = 0, ir2 = 0;
	int rc;

	bench_progress(ctx, "%s: instructions: %s", row->scenario,
		       row->variant);
	rc = callgrind_run(cg, send, policy, row->engine->name, MESSAGES,
			   &ir1);
	if (!rc)
		rc = callgrind_run(cg, send, policy, row->engine->name,
				   2 * MESSAGES, &ir2);
	bench_progress(ctx, NULL);
	row->has_instructions = !rc;
	row->instructions_per_msg = ((double)ir2 - (double)ir1) / MESSAGES;
	row->instructions_messages = MESSAGES;
	return rc;
}

/*
 * Find valgrind and this executable, make the output directory.
 * @return 0; -ENOENT (no valgrind on PATH); a negative errno (explained).
 */
static int callgrind_open(const struct bench_ctx *ctx, struct callgrind *cg)
{
	const char *tmp = getenv("TMPDIR");
	ssize_t len;

	if (!bench_have("valgrind"))
		return -ENOENT;
	/* Inside valgrind, /proc/self/exe would name valgrind's tool. */
	len = readlink("/proc/self/exe", cg->self, sizeof(cg->self) - 1);
	cg->self[len < 0 ? 0 : len] = '\0';
	snprintf(cg->cpus, sizeof(cg->cpus), "%d", ctx->producer_cpu);
	snprintf(cg->dir, sizeof(cg->dir), "%s/sy-bench.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (len >= 0 && mkdtemp(cg->dir))
		return 0;
	fprintf(stderr, "sy-bench: instructions: %s: %s\n",
		len < 0 ? "/proc/self/exe" : cg->dir, strerror(errno));
	return -errno;
}

int scenario_instructions(const struct bench_ctx *ctx, struct report *rep)
{
	static char detail[256];
	struct report_row *row, *base = NULL;
	struct callgrind cg;
	char name[64];
	int rc;

	rc = callgrind_open(ctx, &cg);
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
		rc = count_row(ctx, &cg, send, ctx->policy, row);
		base = c ? base : row;
		row->extra_vs = c ? base->engine->name : NULL;
		row->extra_instructions = row->instructions_per_msg -
					  base->instructions_per_msg;
	}
	rmdir(cg.dir);
	return rc;
}

int instructions_policies(const struct bench_ctx *ctx, struct report *rep)
{
	const struct report_row *base;
	struct callgrind cg;
	int rc;

	rc = callgrind_open(ctx, &cg);
	if (rc == -ENOENT)
		report_add_note(rep, "policies: instructions per pick skipped "
				"(valgrind not found)");
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	for (unsigned i = 0; !rc && i < rep->n_rows; i++)
		if (!strcmp(rep->rows[i].scenario, "policies"))
			rc = count_row(ctx, &cg, sends[1],
				       rep->rows[i].policy, &rep->rows[i]);
	rmdir(cg.dir);
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
