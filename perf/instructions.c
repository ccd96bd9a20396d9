/*
 * Callgrind runs of sy-bench by sy-bench.
 *
 * The child is the same executable, found through /proc/self/exe in the
 * parent (inside valgrind that link names valgrind's own tool), started
 * with --fixed-run. Valgrind runs one thread at a time anyway, so the child
 * puts producer and worker on one CPU: there, a waiter's sched_yield()
 * hands the CPU to the thread it waits for, whereas on two CPUs it returns
 * at once and the waiter spins through instructions that would be counted.
 * Callgrind's output goes to a private temporary directory that is removed
 * afterwards. A child is told the policy of its route with the internal
 * option --fixed-policy, and its engine configuration with --fixed-config.
 *
 * Each send call is counted with several engine configurations
 * (engine_config.h): the default one (rows "engine-single",
 * "engine-burst32"), bare, and the others of measured_configs[] (rows
 * "<send>/<configuration>"); every row but bare's gets its difference to
 * bare's row of the same send call, the instructions that metrics, the
 * breaker or backpressure add per message.
 */
#include "instructions.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_runs.h"

/* N of the fixed workload: runs of N and 2N messages. */
#define INSTRUCTIONS_MESSAGES 100000u

extern char **environ;

struct fixed_variant {
	const char *name;
	int (*run)(const struct bench_ctx *ctx, uint64_t n, double *secs);
};

static const struct fixed_variant fixed_variants[] = {
	{ "engine-single", engine_single },
	{ "engine-burst32", engine_burst32 },
};

#define N_FIXED (sizeof(fixed_variants) / sizeof(fixed_variants[0]))

/* The configurations counted, bare first; "metrics" is the default. */
static const char *const measured_configs[] = {
	ENGINE_CONFIG_BASELINE, "metrics", "metrics-every", "reliability",
	"all",
};

#define N_CONFIGS (sizeof(measured_configs) / sizeof(measured_configs[0]))

/* Rows' variant names; the report keeps pointers to them. */
static char variant_names[N_FIXED][N_CONFIGS][64];

static const struct fixed_variant *find_fixed(const char *variant)
{
	for (unsigned i = 0; i < N_FIXED; i++) {
		if (!strcmp(fixed_variants[i].name, variant))
			return &fixed_variants[i];
	}
	return NULL;
}

bool instructions_fixed_variant_known(const char *variant)
{
	return find_fixed(variant) != NULL;
}

int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant,
			   uint64_t n)
{
	const struct fixed_variant *v = find_fixed(variant);
	double secs;

	assert(v);
	return v->run(ctx, n, &secs);
}

/* The path of @p prog in a directory of PATH, or false. */
static bool find_in_path(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");

	while (path && *path) {
		size_t dirlen = strcspn(path, ":");

		if (dirlen && (size_t)snprintf(out, len, "%.*s/%s", (int)dirlen,
					       path, prog) < len &&
		    access(out, X_OK) == 0)
			return true;
		path += dirlen;
		if (*path == ':')
			path++;
	}
	return false;
}

/* The "summary:" or "totals:" count of a callgrind output file. */
static int read_total(const char *file, uint64_t *ir)
{
	char line[512];
	int rc = -EPROTO;
	FILE *f;

	f = fopen(file, "r");
	if (!f) {
		rc = -errno;
		fprintf(stderr, "sy-bench: instructions: %s: %s\n", file,
			strerror(-rc));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "summary: %" SCNu64, ir) == 1 ||
		    sscanf(line, "totals: %" SCNu64, ir) == 1) {
			rc = 0;
			break;
		}
	}
	fclose(f);
	if (rc < 0)
		fprintf(stderr, "sy-bench: instructions: %s: no summary or "
			"totals line\n", file);
	return rc;
}

/* Everything a callgrind run needs to know. */
struct callgrind {
	char valgrind[PATH_MAX];
	char self[PATH_MAX];
	char dir[PATH_MAX];
	char cpus[32];
};

/*
 * Run @p variant through the route of @p policy, with the engine
 * configuration @p config and @p n messages, under callgrind; store its Ir
 * count.
 */
static int callgrind_run(const struct callgrind *cg, const char *variant,
			 const char *policy, const char *config, uint64_t n,
			 uint64_t *ir)
{
	char out_arg[PATH_MAX + 32], file[PATH_MAX], count[24];
	char *argv[] = {
		(char *)cg->valgrind, "--tool=callgrind", "-q", out_arg,
		(char *)cg->self, "--fixed-run", count, "--fixed-variant",
		(char *)variant, "--fixed-policy", (char *)policy,
		"--fixed-config", (char *)config, "--cpus", (char *)cg->cpus,
		NULL,
	};
	pid_t pid;
	int rc, status;

	if ((size_t)snprintf(file, sizeof(file), "%s/%s-%s-%s-%" PRIu64
			     ".out", cg->dir, variant, policy, config, n) >=
	    sizeof(file))
		return -ENAMETOOLONG;
	snprintf(out_arg, sizeof(out_arg), "--callgrind-out-file=%s", file);
	snprintf(count, sizeof(count), "%" PRIu64, n);
	rc = posix_spawn(&pid, cg->valgrind, NULL, NULL, argv, environ);
	if (rc) {
		fprintf(stderr, "sy-bench: instructions: starting %s: %s\n",
			cg->valgrind, strerror(rc));
		return -rc;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "sy-bench: instructions: the callgrind run of "
			"%s (policy %s, configuration %s) with %" PRIu64
			" messages failed\n", variant, policy, config, n);
		unlink(file);
		return -ECHILD;
	}
	rc = read_total(file, ir);
	unlink(file);
	return rc;
}

/*
 * (Ir(2N) - Ir(N)) / N of @p variant through the route of @p policy, with
 * the engine configuration @p config.
 */
static int per_message(const struct callgrind *cg, const char *variant,
		       const char *policy, const char *config, double *out)
{
	const uint64_t n = INSTRUCTIONS_MESSAGES;
	uint64_t ir1, ir2;
	int rc;

	rc = callgrind_run(cg, variant, policy, config, n, &ir1);
	if (!rc)
		rc = callgrind_run(cg, variant, policy, config, 2 * n, &ir2);
	if (!rc)
		*out = ((double)ir2 - (double)ir1) / (double)n;
	return rc;
}

static void fill_row(struct report_row *row, double per_msg)
{
	row->has_instructions = true;
	row->instructions_per_msg = per_msg;
	row->instructions_messages = INSTRUCTIONS_MESSAGES;
}

/* The row name of send @p i with configuration @p c: no suffix for the default. */
static const char *row_name(unsigned i, unsigned c)
{
	const char *send = fixed_variants[i].name;
	const char *config = measured_configs[c];

	if (!strcmp(config, engine_config_default()->name))
		return send;
	snprintf(variant_names[i][c], sizeof(variant_names[i][c]), "%s/%s",
		 send, config);
	return variant_names[i][c];
}

static int measure(const struct bench_ctx *ctx, const struct callgrind *cg,
		   struct report *rep)
{
	static char detail[256];
	struct report_row *row, *base = NULL;
	double per_msg = 0;
	int rc = 0;

	snprintf(detail, sizeof(detail), "%s\nengine-single, engine-burst32: "
		 "the default configuration (%s); /<configuration>: see "
		 "overhead", engine_policy_route(ctx->policy),
		 engine_config_default()->name);
	for (unsigned i = 0; !rc && i < N_FIXED; i++) {
		for (unsigned c = 0; c < N_CONFIGS; c++) {
			const char *name = row_name(i, c);

			if (ctx->progress)
				fprintf(stderr, "\r\033[Kinstructions: %s",
					name);
			rc = per_message(cg, fixed_variants[i].name,
					 ctx->policy, measured_configs[c],
					 &per_msg);
			if (rc < 0)
				break;
			row = report_add_row(rep, "instructions", name);
			row->policy = ctx->policy;
			row->engine = engine_config_find(measured_configs[c]);
			row->detail = i || c ? NULL : detail;
			row->producers = 1;
			row->workers = 1;
			row->messages = INSTRUCTIONS_MESSAGES;
			fill_row(row, per_msg);
			if (!c) {
				base = row;
				continue;
			}
			row->extra_vs = base->engine->name;
			row->extra_instructions = per_msg -
						  base->instructions_per_msg;
		}
	}
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	return rc;
}

/* Count the rows of the "policies" scenario; set their differences. */
static int measure_policies(const struct bench_ctx *ctx,
			    const struct callgrind *cg, struct report *rep)
{
	const struct report_row *base = NULL;
	double per_msg = 0;
	int rc = 0;

	for (unsigned i = 0; i < rep->n_rows; i++) {
		struct report_row *row = &rep->rows[i];

		if (strcmp(row->scenario, "policies"))
			continue;
		if (ctx->progress)
			fprintf(stderr, "\r\033[Kpolicies: instructions: %s",
				row->policy);
		rc = per_message(cg, "engine-burst32", row->policy,
				 row->engine->name, &per_msg);
		if (rc < 0)
			break;
		fill_row(row, per_msg);
		if (!strcmp(row->policy, ENGINE_BASELINE_POLICY))
			base = row;
	}
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	for (unsigned i = 0; !rc && base && i < rep->n_rows; i++) {
		struct report_row *row = &rep->rows[i];

		if (strcmp(row->scenario, "policies"))
			continue;
		row->extra_vs = base->policy;
		row->extra_instructions = row->instructions_per_msg -
					  base->instructions_per_msg;
	}
	return rc;
}

/*
 * Find valgrind and this executable and make the output directory.
 * @return 0; -ENOENT (valgrind is not on PATH); a negative errno
 *         (explained on stderr).
 */
static int callgrind_open(const struct bench_ctx *ctx, struct callgrind *cg)
{
	const char *tmp = getenv("TMPDIR");
	ssize_t len;
	int rc;

	if (!find_in_path("valgrind", cg->valgrind, sizeof(cg->valgrind)))
		return -ENOENT;
	len = readlink("/proc/self/exe", cg->self, sizeof(cg->self) - 1);
	if (len < 0) {
		rc = -errno;
		fprintf(stderr, "sy-bench: instructions: /proc/self/exe: %s\n",
			strerror(-rc));
		return rc;
	}
	cg->self[len] = '\0';
	snprintf(cg->cpus, sizeof(cg->cpus), "%d", ctx->producer_cpu);
	snprintf(cg->dir, sizeof(cg->dir), "%s/sy-bench.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(cg->dir)) {
		rc = -errno;
		fprintf(stderr, "sy-bench: instructions: %s: %s\n", cg->dir,
			strerror(-rc));
		return rc;
	}
	return 0;
}

int scenario_instructions(const struct bench_ctx *ctx, struct report *rep)
{
	struct callgrind cg;
	int rc;

	rc = callgrind_open(ctx, &cg);
	if (rc == -ENOENT) {
		rep->instructions_skipped = true;
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = measure(ctx, &cg, rep);
	rmdir(cg.dir);
	return rc;
}

int instructions_policies(const struct bench_ctx *ctx, struct report *rep)
{
	struct callgrind cg;
	int rc;

	rc = callgrind_open(ctx, &cg);
	if (rc == -ENOENT) {
		report_add_note(rep, "policies: instructions per pick skipped "
				"(valgrind not found)");
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = measure_policies(ctx, &cg, rep);
	rmdir(cg.dir);
	return rc;
}
