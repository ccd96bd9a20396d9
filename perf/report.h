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

#include "engine_config.h"
#include "stats.h"

#define REPORT_MAX_ROWS 64
#define REPORT_MAX_RATIOS 6
#define REPORT_MAX_NOTES 16
#define REPORT_NOTE_LEN 256

/** A variant's median rate divided by a baseline's, measured in one run. */
struct report_ratio {
	const char *baseline;
	double value;
};

/** Memory of one phase of the memory scenario, before and after it. */
struct report_memory {
	uint64_t warmup_messages;  /* sent before "before" */
	uint64_t rss_before_kib;
	uint64_t rss_after_kib;
	double growth_kib_per_million;
	double allocs_per_msg;     /* allocator calls per message in the phase */
	double frees_per_msg;
	uint64_t alloc_bytes;      /* bytes the allocator gave in the phase */
	uint64_t pool_bytes_before;
	uint64_t pool_bytes;       /* after */
	uint64_t pool_slabs;       /* after */
};

/** One result: a variant of a scenario. Only measured parts are set. */
struct report_row {
	const char *scenario;
	const char *variant;
	const char *policy;       /* the route's policy on engine rows, else NULL */
	/* engine rows: the configuration the engine ran with, else NULL */
	const struct engine_config *engine;
	const char *detail;       /* a line under the section's title (first row) */
	unsigned producers;
	unsigned workers;         /* consuming threads: the engine's workers */
	uint64_t messages;        /* per run */
	bool has_rate;
	struct stats_summary rate; /* messages (or round trips) per second */
	bool has_latency;
	struct stats_latency latency;
	bool has_instructions;
	double instructions_per_msg;
	uint64_t instructions_messages; /* N of the callgrind runs */
	/* instructions_per_msg minus that of the row of extra_vs */
	const char *extra_vs;
	double extra_instructions;
	/* open-loop rows: the offered rate, and its share of engine-rtt's */
	double offered_rate;
	double rate_fraction;
	unsigned n_ratios;
	struct report_ratio ratios[REPORT_MAX_RATIOS];
	/*
	 * overhead rows: each run's rate over the baseline's in the same
	 * round (paired_vs), summarized; the best run's rate over the
	 * baseline's best; and the least acceptable ratio of medians to it
	 * (0: no target)
	 */
	const char *paired_vs;
	struct stats_summary paired;
	double best_ratio;
	double target;
	/* scaling rows: median rate / that of k = 1, and speedup / k */
	bool has_scaling;
	double speedup;
	double efficiency;
	bool has_memory;
	struct report_memory memory;
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
	unsigned n_notes;          /* what was skipped, and why */
	char notes[REPORT_MAX_NOTES][REPORT_NOTE_LEN];
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

/** The ratio of @p row to @p baseline; false if it has none. Any thread. */
bool report_ratio_of(const struct report_row *row, const char *baseline,
		     double *value);

/**
 * Whether @p row has a target and its ratio to the baseline of its paired
 * ratios reaches it. Any thread.
 */
bool report_target_met(const struct report_row *row);

/** Add a line to print after the table and to write in JSON's "notes". */
void report_add_note(struct report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/** The readable table. @return 0; -EIO. */
int report_print_table(const struct report *rep, FILE *out);

/** The JSON document. @return 0; -EIO. */
int report_write_json(const struct report *rep, FILE *out);

/** CSV: a header, then one line per row. @return 0; -EIO. */
int report_write_csv(const struct report *rep, FILE *out);

#endif /* SY_PERF_REPORT_H */
