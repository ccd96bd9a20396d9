/*
 * --plot DIR: PNG charts of a report, drawn by gnuplot. The data files and
 * the script stay in DIR next to the charts, so that a chart can be redrawn
 * or restyled by hand: throughput.dat, latency.dat, scaling.dat (only with
 * scaling rows), sy-bench.gp, and throughput.png, latency.png, scaling.png.
 */
#ifndef SY_PERF_PLOT_H
#define SY_PERF_PLOT_H

#include <stdio.h>

#include "report.h"

/**
 * Write the data and the script of @p rep's charts into @p dir (created if
 * missing) and run gnuplot there; say on @p out what was written, or
 * "plot: skipped (gnuplot not found)" when gnuplot is not on PATH.
 * Control thread; blocks until gnuplot exits.
 * @return 0 (also when skipped); a negative errno (explained on stderr).
 */
int plot_report(const struct report *rep, const char *dir, FILE *out);

#endif /* SY_PERF_PLOT_H */
