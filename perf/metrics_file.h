/*
 * --metrics FILE: the engine's own metrics of a run, exported by the
 * library (sy_snapshot_format()) in the format that FILE's extension names:
 * .json, .csv, .prom (Prometheus text) or .erl (terms for file:consult/1).
 *
 * The snapshot comes from a dedicated run after the scenarios, not from one
 * of theirs: an engine in the default configuration (metrics on, default
 * sampling), one producer and one worker placed as in the throughput
 * scenario, the route of --policy, engine-single with
 * min(--messages, METRICS_FILE_MESSAGES) messages. Once the handler has
 * counted all of them, sy_metrics_refresh() makes the collector publish a
 * snapshot, which is taken with sy_metrics_snapshot(), formatted and
 * written before the engine is destroyed.
 */
#ifndef SY_PERF_METRICS_FILE_H
#define SY_PERF_METRICS_FILE_H

#include <stdio.h>

#include "bench.h"
#include "report.h"
#include "switchyard.h"

/* Most messages of the dedicated run. */
#define METRICS_FILE_MESSAGES 1000000u

/**
 * The export format that the extension of @p path names.
 * Any thread. @return 0; -EINVAL (no such extension).
 */
int metrics_file_format(const char *path, enum sy_format *fmt);

/**
 * Run the dedicated engine run and write its final snapshot in @p fmt to
 * @p f (opened on @p path; closed here, whatever happens); add a note that
 * says what was written. Control thread; blocks.
 * @return 0; a negative errno (explained on stderr).
 */
int metrics_file_write(const struct bench_ctx *ctx, const char *path,
		       FILE *f, enum sy_format fmt, struct report *rep);

#endif /* SY_PERF_METRICS_FILE_H */
