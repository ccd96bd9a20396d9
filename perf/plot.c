/*
 * Charts with gnuplot: a bar chart of the throughput rows (median, with
 * min and max as error bars), the latency percentiles of every latency row
 * on a log scale, when scaling rows exist, throughput against threads
 * (producers + workers), one line per variant, and, when overhead rows
 * exist, each configuration's ratio to bare with the spread of its per-run
 * ratios and the targets as lines.
 */
#include "plot.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SCRIPT "sy-bench.gp"

/* The charts, in the order of the counts of write_data(). */
enum chart { CHART_THROUGHPUT, CHART_LATENCY, CHART_SCALING, CHART_OVERHEAD,
	     CHARTS };

/* Whether an executable gnuplot is in a directory of PATH. */
static bool gnuplot_on_path(void)
{
	const char *path = getenv("PATH");
	char file[PATH_MAX];

	while (path && *path) {
		size_t len = strcspn(path, ":");

		snprintf(file, sizeof(file), "%.*s/gnuplot",
			 len ? (int)len : 1, len ? path : ".");
		if (!access(file, X_OK))
			return true;
		path += len + (path[len] == ':');
	}
	return false;
}

/* Open @p dir/@p name for writing; NULL with a message on stderr. */
static FILE *open_in(const char *dir, const char *name)
{
	char file[PATH_MAX];
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s", dir, name);
	f = fopen(file, "w");
	if (!f)
		fprintf(stderr, "sy-bench: --plot: %s: %s\n", file,
			strerror(errno));
	return f;
}

static int close_checked(FILE *f, const char *dir, const char *name)
{
	int rc = ferror(f) ? -EIO : 0;

	if (fclose(f) && !rc)
		rc = -errno;
	if (rc < 0)
		fprintf(stderr, "sy-bench: --plot: writing %s/%s: %s\n", dir,
			name, strerror(-rc));
	return rc;
}

static bool in_throughput_chart(const struct report_row *row)
{
	return row->has_rate && !row->has_latency &&
	       (!strcmp(row->scenario, "throughput") ||
		!strcmp(row->scenario, "policies"));
}

static bool in_scaling_chart(const struct report_row *row)
{
	return row->has_rate && !strcmp(row->scenario, "scaling");
}

/* Overhead rows with a ratio (every configuration but bare). */
static bool in_overhead_chart(const struct report_row *row)
{
	return row->paired_vs && !strcmp(row->scenario, "overhead");
}

/* overhead.dat: variant, ratio of medians, per-run min and max, target. */
static int write_overhead(const struct report *rep, const char *dir)
{
	FILE *f = open_in(dir, "overhead.dat");
	double ratio;

	if (!f)
		return -errno;
	fprintf(f, "# variant  ratio_vs_bare  runs_min  runs_max  target "
		"(0: none)\n");
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		if (in_overhead_chart(row) &&
		    report_ratio_of(row, row->paired_vs, &ratio))
			fprintf(f, "\"%s\" %.4f %.4f %.4f %.2f\n", row->variant,
				ratio, row->paired.min, row->paired.max,
				row->target);
	}
	return close_checked(f, dir, "overhead.dat");
}

/* scaling.dat: variant, threads, producers, workers, median, min, max. */
static int write_scaling(const struct report *rep, const char *dir)
{
	FILE *f = open_in(dir, "scaling.dat");

	if (!f)
		return -errno;
	fprintf(f, "# variant  threads  producers  workers  median  min  max"
		"  (M msg/s)\n");
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		if (in_scaling_chart(row))
			fprintf(f, "\"%s\" %u %u %u %.4f %.4f %.4f\n",
				row->variant, row->producers + row->workers,
				row->producers, row->workers,
				row->rate.median / 1e6, row->rate.min / 1e6,
				row->rate.max / 1e6);
	}
	return close_checked(f, dir, "scaling.dat");
}

/* The data files. @p counts: rows of each chart (enum chart). */
static int write_data(const struct report *rep, const char *dir,
		      unsigned counts[CHARTS])
{
	static const char *const pct[] = { "p50", "p90", "p99", "p99.9",
					   "max" };
	FILE *f;
	int rc;

	memset(counts, 0, CHARTS * sizeof(*counts));
	f = open_in(dir, "throughput.dat");
	if (!f)
		return -errno;
	fprintf(f, "# variant  median  min  max  (M msg/s; policies rows: "
		"policy name)\n");
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		if (!in_throughput_chart(row))
			continue;
		fprintf(f, "\"%s\" %.4f %.4f %.4f\n", row->variant,
			row->rate.median / 1e6, row->rate.min / 1e6,
			row->rate.max / 1e6);
		counts[CHART_THROUGHPUT]++;
	}
	rc = close_checked(f, dir, "throughput.dat");
	if (rc < 0)
		return rc;

	f = open_in(dir, "latency.dat");
	if (!f)
		return -errno;
	fprintf(f, "percentile");
	for (unsigned i = 0; i < rep->n_rows; i++) {
		if (rep->rows[i].has_latency) {
			fprintf(f, " \"%s\"", rep->rows[i].variant);
			counts[CHART_LATENCY]++;
		}
	}
	fputc('\n', f);
	for (unsigned p = 0; p < sizeof(pct) / sizeof(pct[0]); p++) {
		fprintf(f, "\"%s\"", pct[p]);
		for (unsigned i = 0; i < rep->n_rows; i++) {
			const struct stats_latency *l = &rep->rows[i].latency;
			const uint64_t v[] = { l->p50, l->p90, l->p99, l->p999,
					       l->max };

			if (rep->rows[i].has_latency)
				fprintf(f, " %" PRIu64, v[p]);
		}
		fputc('\n', f);
	}
	rc = close_checked(f, dir, "latency.dat");
	if (rc < 0)
		return rc;

	for (unsigned i = 0; i < rep->n_rows; i++) {
		counts[CHART_SCALING] += in_scaling_chart(&rep->rows[i]);
		counts[CHART_OVERHEAD] += in_overhead_chart(&rep->rows[i]);
	}
	if (counts[CHART_SCALING])
		rc = write_scaling(rep, dir);
	if (!rc && counts[CHART_OVERHEAD])
		rc = write_overhead(rep, dir);
	return rc;
}

/* Whether @p variant appears in a scaling row before row @p before. */
static bool seen_before(const struct report *rep, unsigned before,
			const char *variant)
{
	for (unsigned i = 0; i < before; i++) {
		if (in_scaling_chart(&rep->rows[i]) &&
		    !strcmp(rep->rows[i].variant, variant))
			return true;
	}
	return false;
}

/* The runs of the first row of the throughput chart. */
static unsigned first_runs(const struct report *rep)
{
	for (unsigned i = 0; i < rep->n_rows; i++) {
		if (in_throughput_chart(&rep->rows[i]))
			return rep->rows[i].rate.runs;
	}
	return 0;
}

static int write_script(const struct report *rep, const char *dir,
			const unsigned counts[CHARTS])
{
	FILE *f = open_in(dir, SCRIPT);
	bool first = true;

	if (!f)
		return -errno;
	fprintf(f, "# Written by sy-bench --plot; run: gnuplot " SCRIPT "\n"
		"set terminal pngcairo size 1000,600 noenhanced\n"
		"set grid ytics\n"
		"set key top right\n");
	if (counts[CHART_THROUGHPUT])
		fprintf(f, "\nset output 'throughput.png'\n"
			"set title 'throughput: median of %u runs, bars: min "
			"to max (producer CPU %d, consumer CPU %d)'\n"
			"set ylabel 'M msg/s (log scale)'\n"
			"set logscale y\n"
			"set style fill solid 0.5\n"
			"set boxwidth 0.6\n"
			"set xtics rotate by -30\n"
			"set xrange [-0.7:%u.7]\n"
			"plot 'throughput.dat' using 0:2:xtic(1) with boxes "
			"title 'median', \\\n"
			"     '' using 0:2:3:4 with yerrorbars lc rgb 'black' "
			"pt 0 title 'min / max'\n"
			"unset xrange\nset xtics norotate\n",
			first_runs(rep), rep->producer_cpu,
			rep->consumer_cpu, counts[CHART_THROUGHPUT] - 1);
	if (counts[CHART_LATENCY])
		fprintf(f, "\nset output 'latency.png'\n"
			"set title 'round-trip latency percentiles (median "
			"over runs; max: largest)'\n"
			"set ylabel 'ns (log scale)'\n"
			"set logscale y\n"
			"set style data linespoints\n"
			"set key below\n"
			"set offsets 0.2, 0.2, 0, 0\n"
			"plot for [i=2:%u] 'latency.dat' using i:xtic(1) "
			"title columnheader(i) lw 2\n",
			counts[CHART_LATENCY] + 1);
	if (counts[CHART_SCALING]) {
		fprintf(f, "\nset output 'scaling.png'\n"
			"set title 'throughput against threads (producers + "
			"workers), bars: min to max'\n"
			"set xlabel 'threads'\n"
			"set ylabel 'M msg/s'\n"
			"unset logscale\n"
			"unset offsets\n"
			"set xrange [0:*]\n"
			"set yrange [0:*]\n"
			"set key top left\n"
			"plot ");
		for (unsigned i = 0; i < rep->n_rows; i++) {
			const char *v = rep->rows[i].variant;

			if (!in_scaling_chart(&rep->rows[i]) ||
			    seen_before(rep, i, v))
				continue;
			fprintf(f, "%s'scaling.dat' using (strcol(1) eq '%s' ? "
				"$2 : NaN):5:6:7 with yerrorlines title '%s'",
				first ? "" : ", \\\n     ", v, v);
			first = false;
		}
		fputc('\n', f);
	}
	if (counts[CHART_OVERHEAD])
		fprintf(f, "\nset output 'overhead.png'\n"
			"set title 'overhead: median rate / bare median, same "
			"send call; bars: per-run ratios, min to max'\n"
			"unset xlabel\n"
			"set ylabel 'ratio to bare'\n"
			"unset logscale\n"
			"unset offsets\n"
			"set style fill solid 0.5\n"
			"set boxwidth 0.6\n"
			"set xtics rotate by -30\n"
			"set xrange [-0.7:%u.7]\n"
			"set yrange [0:*]\n"
			"set key outside right top\n"
			"plot 'overhead.dat' using 0:2:xtic(1) with boxes "
			"title 'vs bare', \\\n"
			"     '' using 0:2:3:4 with yerrorbars lc rgb 'black' "
			"pt 0 title 'runs: min / max', \\\n"
			"     '' using 0:($5 > 0 ? $5 : NaN) with points pt 9 "
			"ps 1.5 lc rgb 'red' title 'target', \\\n"
			"     1 with lines lc rgb 'gray' title 'bare'\n",
			counts[CHART_OVERHEAD] - 1);
	return close_checked(f, dir, SCRIPT);
}

/* Run gnuplot on the script, in @p dir. @return 0; -EIO; -errno. */
static int run_gnuplot(const char *dir)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		if (chdir(dir))
			_exit(126);
		execlp("gnuplot", "gnuplot", SCRIPT, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "sy-bench: --plot: gnuplot %s in %s failed\n",
			SCRIPT, dir);
		return -EIO;
	}
	return 0;
}

int plot_report(const struct report *rep, const char *dir, FILE *out)
{
	unsigned counts[CHARTS];
	int rc;

	if (!gnuplot_on_path()) {
		fprintf(out, "\nplot: skipped (gnuplot not found)\n");
		return 0;
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "sy-bench: --plot: %s: %s\n", dir,
			strerror(-rc));
		return rc;
	}
	rc = write_data(rep, dir, counts);
	if (!rc)
		rc = write_script(rep, dir, counts);
	if (!rc)
		rc = run_gnuplot(dir);
	if (rc < 0)
		return rc;
	fprintf(out, "\nplot: in %s:%s%s%s%s (data files and %s beside "
		"them)\n", dir,
		counts[CHART_THROUGHPUT] ? " throughput.png" : "",
		counts[CHART_LATENCY] ? " latency.png" : "",
		counts[CHART_SCALING] ? " scaling.png" : "",
		counts[CHART_OVERHEAD] ? " overhead.png" : "", SCRIPT);
	return 0;
}
