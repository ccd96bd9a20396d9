/*
 * The results of one sy-bench invocation and their three forms: a table on
 * stdout, JSON (the schema other tools read: keys may be added, never
 * renamed) and CSV (one row per result).
 */
#ifndef SY_PERF_REPORT_H
#define SY_PERF_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "stats.h"

#define REPORT_MAX_ROWS 16
#define REPORT_MAX_RATIOS 4

/** A variant's median rate divided by a baseline's, measured in one run. */
struct report_ratio {
	const char *baseline;
	double value;
};

/** One result: a variant of a scenario. Only measured parts are set. */
struct report_row {
	const char *scenario;
	const char *variant;
	unsigned producers;
	unsigned workers;         /* consuming threads: the engine's workers */
	uint64_t messages;        /* per run */
	bool has_rate;
	struct stats_summary rate; /* messages (or round trips) per second */
	bool has_latency;
	struct stats_latency latency;
	bool has_instructions;
	double instructions_per_msg;
	unsigned n_ratios;
	struct report_ratio ratios[REPORT_MAX_RATIOS];
};

struct report {
	char model[128];          /* from /proc/cpuinfo */
	unsigned cpus;            /* CPUs online */
	unsigned cpus_allowed;    /* CPUs the process may run on */
	int producer_cpu;
	int consumer_cpu;
	bool has_probe;
	double probe_before_ns;
	double probe_after_ns;
	bool instructions_skipped; /* valgrind not found */
	unsigned n_rows;
	struct report_row rows[REPORT_MAX_ROWS];
};

/** Fill the machine part of @p rep; no rows. */
void report_init(struct report *rep, unsigned cpus_allowed,
		 int producer_cpu, int consumer_cpu);

/** Append a zeroed row for @p variant of @p scenario and return it. */
struct report_row *report_add_row(struct report *rep, const char *scenario,
				  const char *variant);

/** Add a ratio to @p row. */
void report_add_ratio(struct report_row *row, const char *baseline,
		      double value);

/** The readable table. @return 0; -EIO. */
int report_print_table(const struct report *rep, FILE *out);

/** The JSON document. @return 0; -EIO. */
int report_write_json(const struct report *rep, FILE *out);

/** CSV: a header, then one line per row. @return 0; -EIO. */
int report_write_csv(const struct report *rep, FILE *out);

#endif /* SY_PERF_REPORT_H */
