/*
 * --metrics FILE: a dedicated engine run whose final snapshot the library
 * formats and sy-bench writes.
 */
#include "metrics_file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine_config.h"
#include "engine_runs.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct extension {
	const char *ext;
	enum sy_format fmt;
	const char *name;
};

static const struct extension extensions[] = {
	{ ".json", SY_FORMAT_JSON, "JSON" },
	{ ".csv", SY_FORMAT_CSV, "CSV" },
	{ ".prom", SY_FORMAT_PROMETHEUS, "Prometheus text" },
	{ ".erl", SY_FORMAT_ERLANG, "Erlang terms" },
};

/* What the inspection needs and what it found. */
struct export {
	const char *path;
	FILE *f;
	enum sy_format fmt;
	uint64_t seq;
	uint64_t delivered;        /* the engine series' total */
	struct sy_hist_summary latency;
};

static const struct extension *find_extension(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return NULL;
	for (unsigned i = 0; i < ARRAY_SIZE(extensions); i++) {
		if (!strcmp(dot, extensions[i].ext))
			return &extensions[i];
	}
	return NULL;
}

int metrics_file_format(const char *path, enum sy_format *fmt)
{
	const struct extension *e = find_extension(path);

	if (!e)
		return -EINVAL;
	*fmt = e->fmt;
	return 0;
}

/* Format @p snap, write it, and note what it says. */
static int write_snapshot(struct export *x, const sy_snapshot *snap)
{
	const struct sy_series *engine;
	size_t len = 0;
	char *buf = NULL;
	int rc;

	rc = sy_snapshot_format(snap, x->fmt, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "sy-bench: --metrics: sy_snapshot_format: %s\n",
			sy_strerror(rc));
		return rc;
	}
	if (fwrite(buf, 1, len, x->f) != len) {
		rc = -errno;
		fprintf(stderr, "sy-bench: --metrics: writing %s: %s\n",
			x->path, strerror(-rc));
	}
	free(buf);
	x->seq = sy_snapshot_seq(snap);
	engine = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	x->delivered = engine ? engine->total.delivered : 0;
	sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &x->latency);
	return rc;
}

/* engine_inspect_fn: the final snapshot of the run, into the file. */
static int export_snapshot(sy_engine *eng, void *arg)
{
	struct export *x = arg;
	sy_snapshot *snap;
	int rc;

	rc = sy_metrics_refresh(eng);
	if (rc < 0) {
		fprintf(stderr, "sy-bench: --metrics: sy_metrics_refresh: %s\n",
			sy_strerror(rc));
		return rc;
	}
	snap = sy_metrics_snapshot(eng);
	if (!snap) {
		fprintf(stderr, "sy-bench: --metrics: sy_metrics_snapshot "
			"gave no snapshot after a refresh\n");
		return -ENODATA;
	}
	rc = write_snapshot(x, snap);
	sy_snapshot_release(snap);
	return rc;
}

int metrics_file_write(const struct bench_ctx *ctx, const char *path,
		       FILE *f, enum sy_format fmt, struct report *rep)
{
	struct export x = { .path = path, .f = f, .fmt = fmt };
	struct bench_ctx run_ctx = *ctx;
	uint64_t n;
	int rc;

	n = ctx->messages < METRICS_FILE_MESSAGES ? ctx->messages
						  : METRICS_FILE_MESSAGES;
	run_ctx.engine = engine_config_default();
	if (ctx->progress)
		fprintf(stderr, "\r\033[Kmetrics: engine-single, %" PRIu64
			" messages", n);
	rc = engine_single_inspect(&run_ctx, n, export_snapshot, &x);
	if (ctx->progress)
		fprintf(stderr, "\r\033[K");
	if (fclose(f) && !rc) {
		rc = -errno;
		fprintf(stderr, "sy-bench: --metrics: writing %s: %s\n", path,
			strerror(-rc));
	}
	if (rc < 0)
		return rc;
	report_add_note(rep, "metrics: %s (%s): snapshot %" PRIu64 " of a "
			"dedicated engine-single run of %" PRIu64 " messages; "
			"delivered %" PRIu64 ", latency p50 %" PRIu64 " ns, "
			"p99 %" PRIu64 " ns (%" PRIu64 " samples)", path,
			find_extension(path)->name, x.seq, n, x.delivered,
			x.latency.p50, x.latency.p99, x.latency.count);
	return 0;
}
