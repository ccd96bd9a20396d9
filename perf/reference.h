/*
 * The seed's published figures, printed with every report as a fixed
 * reference: not measured, never a baseline. The ratios of this run's
 * engine rows to them are informative only (other machine, other workload);
 * the ratios that mean something are those to baselines measured in the
 * same run (ratio_vs).
 */
#ifndef SY_PERF_REFERENCE_H
#define SY_PERF_REFERENCE_H

#include <stdio.h>

#include "report.h"

/** The table section "reference", after the measured sections. */
void reference_print_table(const struct report *rep, FILE *out);

/**
 * The reference rows of the JSON "results" array, each with
 * "reference": true; @p after_row: a row was written before them.
 */
void reference_write_json(const struct report *rep, bool after_row, FILE *out);

#endif /* SY_PERF_REFERENCE_H */
