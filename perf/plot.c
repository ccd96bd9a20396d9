/* --plot DIR (docs/perf.md): gnuplot charts, their data and script. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

#define SCRIPT "sy-bench.gp"

enum chart { THROUGHPUT, LATENCY, SCALING, OVERHEAD, CHARTS };

static const char *const names[CHARTS] = { "throughput", "latency", "scaling", "overhead" };

/* The first line of each data file. */
static const char *const heads[CHARTS] = {
	"# variant  median  min  max  (M msg/s; policies rows: policy name)",
	"percentile",
	"# variant  threads  producers  workers  median  min  max  (M msg/s)",
	"# variant  ratio_vs_bare  runs_min  runs_max  target (0: none)",
};

static bool in_chart(const struct report_row *row, enum chart c)
{
	if (c == LATENCY)
		return row->has_latency;
	if (c == OVERHEAD) /* every configuration but bare */
		return row->paired_vs && !strcmp(row->scenario, "overhead");
	return row->has_rate && !row->has_latency &&
	       (c == SCALING ? !strcmp(row->scenario, "scaling")
			     : !strcmp(row->scenario, "throughput") ||
			       !strcmp(row->scenario, "policies"));
}

/* One line of data file @p c for @p r (latency.dat: a column). */
static void write_line(FILE *f, enum chart c, const struct report_row *r)
{
	double ratio = 0;

	fprintf(f, c == LATENCY ? " \"%s\"" : "\n\"%s\"", r->variant);
	if (c == LATENCY)
		return;
	if (c == SCALING)
		fprintf(f, " %u %u %u", r->producers + r->workers, r->producers, r->workers);
	if (c == OVERHEAD && report_ratio_of(r, r->paired_vs, &ratio))
		fprintf(f, " %.4f %.4f %.4f %.2f", ratio, r->paired.min, r->paired.max, r->target);
	else
		fprintf(f, " %.4f %.4f %.4f", r->rate.median / 1e6, r->rate.min / 1e6,
			r->rate.max / 1e6);
}

/* Data file @p c, if it has rows (throughput and latency: always). */
static int write_data(const struct report *rep, const char *dir, enum chart c, unsigned *count)
{
	static const char *const pct[] = { "p50", "p90", "p99", "p99.9", "max" };
	char file[PATH_MAX];
	FILE *f;

	*count = 0;
	for (unsigned i = 0; i < rep->n_rows; i++)
		*count += in_chart(&rep->rows[i], c);
	if (!*count && c > LATENCY)
		return 0;
	snprintf(file, sizeof(file), "%s/%s.dat", dir, names[c]);
	f = fopen(file, "w");
	if (!f)
		return -errno;
	fputs(heads[c], f);
	for (unsigned i = 0; i < rep->n_rows; i++)
		if (in_chart(&rep->rows[i], c))
			write_line(f, c, &rep->rows[i]);
	/* latency.dat: a line per percentile, a column per row. */
	for (unsigned p = 0; c == LATENCY && p < ARRAY_SIZE(pct); p++) {
		fprintf(f, "\n\"%s\"", pct[p]);
		for (unsigned i = 0; i < rep->n_rows; i++)
			if (rep->rows[i].has_latency)
				fprintf(f, " %" PRIu64, rep->rows[i].latency.pct[p]);
	}
	fputc('\n', f);
	return fclose(f) ? -errno : 0;
}

/* The commands of the bars of @p chart: median, and min to max. */
static void write_bars(FILE *f, const char *chart, unsigned rows, const char *title,
		       const char *errors)
{
	fprintf(f, "set style fill solid 0.5\nset boxwidth 0.6\nset xtics rotate by -30\n"
		"set xrange [-0.7:%u.7]\n", rows - 1);
	if (strcmp(chart, "throughput"))
		fprintf(f, "set yrange [0:*]\nset key outside right top\n");
	fprintf(f, "plot '%s.dat' using 0:2:xtic(1) with boxes title '%s', \\\n     '' using "
		"0:2:3:4 with yerrorbars lc rgb 'black' pt 0 title '%s'", chart, title, errors);
}

static void write_script(const struct report *rep, FILE *f, const unsigned counts[CHARTS])
{
	const char *sep = "";
	unsigned runs = 0;

	for (unsigned i = rep->n_rows; i-- > 0;)
		if (in_chart(&rep->rows[i], THROUGHPUT))
			runs = rep->rows[i].rate.runs;
	fprintf(f, "# Written by sy-bench --plot; run: gnuplot " SCRIPT "\n"
		"set terminal pngcairo size 1000,600 noenhanced\n"
		"set grid ytics\nset key top right\n");
	if (counts[THROUGHPUT]) {
		fprintf(f, "\nset output 'throughput.png'\n"
			"set title 'throughput: median of %u runs, bars: min to max (producer CPU "
			"%d, consumer CPU %d)'\nset ylabel 'M msg/s (log scale)'\nset logscale y\n",
			runs, rep->producer_cpu, rep->consumer_cpu);
		write_bars(f, "throughput", counts[THROUGHPUT], "median", "min / max");
		fprintf(f, "\nunset xrange\nset xtics norotate\n");
	}
	if (counts[LATENCY])
		fprintf(f, "\nset output 'latency.png'\n"
			"set title 'round-trip latency percentiles (median over runs; max: "
			"largest)'\nset ylabel 'ns (log scale)'\nset logscale y\n"
			"set style data linespoints\nset key below\nset offsets 0.2, 0.2, 0, 0\n"
			"plot for [i=2:%u] 'latency.dat' using i:xtic(1) title columnheader(i) "
			"lw 2\n", counts[LATENCY] + 1);
	if (counts[SCALING])
		fprintf(f, "\nset output 'scaling.png'\n"
			"set title 'throughput against threads (producers + workers), bars: min to "
			"max'\nset xlabel 'threads'\nset ylabel 'M msg/s'\nunset logscale\n"
			"unset offsets\nset xrange [0:*]\nset yrange [0:*]\nset key top left\n"
			"plot ");
	/* One line per variant, in order of first appearance. */
	for (unsigned i = 0; counts[SCALING] && i < rep->n_rows; i++) {
		const char *v = rep->rows[i].variant;
		bool seen = !in_chart(&rep->rows[i], SCALING);

		for (unsigned j = 0; j < i; j++)
			seen |= in_chart(&rep->rows[j], SCALING) &&
				!strcmp(rep->rows[j].variant, v);
		if (!seen)
			fprintf(f, "%s'scaling.dat' using (strcol(1) eq '%s' ? $2 : NaN):5:6:7 "
				"with yerrorlines title '%s'", sep, v, v);
		sep = seen ? sep : ", \\\n     ";
	}
	if (counts[SCALING])
		fputc('\n', f);
	if (counts[OVERHEAD]) {
		fprintf(f, "\nset output 'overhead.png'\n"
			"set title 'overhead: median rate / bare median, same send call; bars: "
			"per-run ratios, min to max'\nunset xlabel\nset ylabel 'ratio to bare'\n"
			"unset logscale\nunset offsets\n");
		write_bars(f, "overhead", counts[OVERHEAD], "vs bare", "runs: min / max");
		fprintf(f, ", \\\n     '' using 0:($5 > 0 ? $5 : NaN) with points pt 9 ps 1.5 lc "
			"rgb 'red' title 'target', \\\n     1 with lines lc rgb 'gray' title "
			"'bare'\n");
	}
}

int plot_report(const struct report *rep, const char *dir, FILE *out)
{
	char file[PATH_MAX + 32];
	unsigned counts[CHARTS];
	FILE *f = NULL;
	int rc = 0;

	if (!bench_have("gnuplot")) {
		fprintf(out, "\nplot: skipped (gnuplot not found)\n");
		return 0;
	}
	if (mkdir(dir, 0777) && errno != EEXIST)
		rc = -errno;
	for (unsigned c = 0; !rc && c < CHARTS; c++)
		rc = write_data(rep, dir, c, &counts[c]);
	snprintf(file, sizeof(file), "%s/" SCRIPT, dir);
	if (!rc && !(f = fopen(file, "w")))
		rc = -errno;
	if (f)
		write_script(rep, f, counts);
	if (f && fclose(f))
		rc = -errno;
	if (rc < 0)
		return bench_fail(rc, "--plot: writing in %s: %s", dir, strerror(-rc));
	if (strchr(dir, '\''))
		return bench_fail(-EINVAL, "--plot: a quote in %s", dir);
	snprintf(file, sizeof(file), "cd '%s' && gnuplot " SCRIPT, dir);
	if (system(file))
		return bench_fail(-EIO, "--plot: gnuplot " SCRIPT " in %s failed", dir);
	fprintf(out, "\nplot: in %s:", dir);
	for (unsigned c = 0; c < CHARTS; c++)
		if (counts[c])
			fprintf(out, " %s.png", names[c]);
	fprintf(out, " (data files and " SCRIPT " beside them)\n");
	return 0;
}
