/* --metrics FILE (docs/perf.md): the snapshot of a dedicated run. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MESSAGES 1000000u /* most messages of the dedicated run */

static const struct extension {
	const char *ext;
	enum sy_format fmt;
	const char *name;
} extensions[] = {
	{ ".json", SY_FORMAT_JSON, "JSON" }, { ".csv", SY_FORMAT_CSV, "CSV" },
	{ ".prom", SY_FORMAT_PROMETHEUS, "Prometheus text" },
	{ ".erl", SY_FORMAT_ERLANG, "Erlang terms" },
};

/* What the inspection needs and what it found. */
struct export {
	FILE *f;
	enum sy_format fmt;
	uint64_t seq, delivered;   /* delivered: the engine series' total */
	struct sy_hist_summary latency;
};

static const struct extension *find_extension(const char *path)
{
	const char *dot = strrchr(path, '.');

	for (unsigned i = 0; dot && !strchr(dot, '/') && i < ARRAY_SIZE(extensions); i++)
		if (!strcmp(dot, extensions[i].ext))
			return &extensions[i];
	return NULL;
}

bool metrics_file_known(const char *path)
{
	return find_extension(path);
}

/* engine_inspect_fn: the final snapshot of the run, into the file. */
static int export_snapshot(sy_engine *eng, void *arg)
{
	const struct sy_series *engine;
	struct export *x = arg;
	sy_snapshot *snap;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = sy_metrics_refresh(eng);
	if (rc < 0)
		return bench_fail(rc, "--metrics: sy_metrics_refresh: %s", sy_strerror(rc));
	snap = sy_metrics_snapshot(eng);
	if (!snap)
		return bench_fail(-ENODATA, "--metrics: no snapshot");
	rc = sy_snapshot_format(snap, x->fmt, &buf, &len);
	if (rc < 0)
		bench_fail(rc, "--metrics: sy_snapshot_format: %s", sy_strerror(rc));
	else if (fwrite(buf, 1, len, x->f) != len)
		rc = -EIO;
	free(buf);
	x->seq = sy_snapshot_seq(snap);
	engine = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	x->delivered = engine ? engine->total.delivered : 0;
	sy_snapshot_hist(snap, SY_HIST_LATENCY, false, &x->latency);
	sy_snapshot_release(snap);
	return rc;
}

int metrics_file_write(const struct bench_ctx *ctx, const char *path, FILE *f,
		       struct report *rep)
{
	struct export x = { .f = f, .fmt = find_extension(path)->fmt };
	struct bench_ctx one = *ctx;
	uint64_t n = ctx->messages < MESSAGES ? ctx->messages : MESSAGES;
	double secs;
	int rc;

	one.engine = ENGINE_CONFIG_DEFAULT;
	one.producers = one.workers = 1;
	one.burst = 0;
	bench_progress(ctx, "metrics: engine-single, %" PRIu64 " messages", n);
	rc = engine_run(&one, n, export_snapshot, &x, &secs);
	bench_progress(ctx, NULL);
	if ((fclose(f) && !rc) || rc == -EIO)
		rc = bench_fail(-EIO, "--metrics: writing %s failed", path);
	if (rc < 0)
		return rc;
	report_add_note(rep, "metrics: %s (%s): snapshot %" PRIu64 " of a dedicated engine-single "
			"run of %" PRIu64 " messages; delivered %" PRIu64 ", latency p50 %" PRIu64
			" ns, p99 %" PRIu64 " ns (%" PRIu64 " samples)", path,
			find_extension(path)->name, x.seq, n, x.delivered, x.latency.p50,
			x.latency.p99, x.latency.count);
	return 0;
}
