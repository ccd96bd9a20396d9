/*
 * Table, JSON and CSV output of sy-bench.
 */
#include "report.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "reference.h"
#include "switchyard.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define BENCH_VERSION STR(SY_VERSION_MAJOR) "." STR(SY_VERSION_MINOR) "." \
		      STR(SY_VERSION_PATCH)

/* Most distinct baselines that ratios refer to in one report. */
#define MAX_BASELINES 8

/* The narrowest variant column of the table. */
#define VARIANT_WIDTH 16

/* The model name of the first CPU in /proc/cpuinfo, or "unknown". */
static void read_model(char *out, size_t len)
{
	char line[256];
	FILE *f;

	snprintf(out, len, "unknown");
	f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += strspn(colon + 1, " \t") + 1;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(out, len, "%s", colon);
		break;
	}
	fclose(f);
}

void report_init(struct report *rep, unsigned cpus_allowed,
		 int producer_cpu, int consumer_cpu)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	memset(rep, 0, sizeof(*rep));
	read_model(rep->model, sizeof(rep->model));
	rep->cpus = online > 0 ? (unsigned)online : cpus_allowed;
	rep->cpus_allowed = cpus_allowed;
	rep->producer_cpu = producer_cpu;
	rep->consumer_cpu = consumer_cpu;
}

struct report_row *report_add_row(struct report *rep, const char *scenario,
				  const char *variant)
{
	struct report_row *row;

	assert(rep->n_rows < REPORT_MAX_ROWS);
	row = &rep->rows[rep->n_rows++];
	memset(row, 0, sizeof(*row));
	row->scenario = scenario;
	row->variant = variant;
	return row;
}

void report_add_ratio(struct report_row *row, const char *baseline,
		      double value)
{
	assert(row->n_ratios < REPORT_MAX_RATIOS);
	row->ratios[row->n_ratios].baseline = baseline;
	row->ratios[row->n_ratios].value = value;
	row->n_ratios++;
}

void report_add_note(struct report *rep, const char *fmt, ...)
{
	va_list ap;

	assert(rep->n_notes < REPORT_MAX_NOTES);
	va_start(ap, fmt);
	vsnprintf(rep->notes[rep->n_notes++], REPORT_NOTE_LEN, fmt, ap);
	va_end(ap);
}

/*
 * The baselines that rows of @p scenario (NULL: every row) have ratios to,
 * in order of first appearance. @return their number.
 */
static unsigned baselines_of(const struct report *rep, const char *scenario,
			     const char **names)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		if (scenario && strcmp(row->scenario, scenario))
			continue;
		for (unsigned r = 0; r < row->n_ratios; r++) {
			const char *name = row->ratios[r].baseline;
			unsigned k = 0;

			while (k < n && strcmp(names[k], name))
				k++;
			if (k == n && n < MAX_BASELINES)
				names[n++] = name;
		}
	}
	return n;
}

bool report_ratio_of(const struct report_row *row, const char *baseline,
		     double *value)
{
	for (unsigned r = 0; r < row->n_ratios; r++) {
		if (!strcmp(row->ratios[r].baseline, baseline)) {
			*value = row->ratios[r].value;
			return true;
		}
	}
	return false;
}

bool report_target_met(const struct report_row *row)
{
	double v;

	return row->target > 0 && row->paired_vs &&
	       report_ratio_of(row, row->paired_vs, &v) && v >= row->target;
}

/* ------------------------------------------------------------------ */
/* table                                                              */
/* ------------------------------------------------------------------ */

/* Which columns a section of the table has. */
struct columns {
	int variant_width;
	bool latency;
	bool rate;
	bool rate_spread; /* min and max beside the median */
	bool instructions;
	const char *extra_vs; /* extra instructions relative to this variant */
	const char *extra_label; /* its column: "extra/pick", "extra/msg" */
	bool paired;          /* the spread of per-run ratios */
	bool target;          /* the least acceptable ratio, and whether met */
	/* the configuration of every engine row, NULL if none or mixed */
	const struct engine_config *engine;
	bool threads;         /* producers x workers */
	bool scaling;         /* speedup and efficiency */
	bool memory;          /* RSS, allocator calls, pool */
	unsigned n_baselines;
	const char *baselines[MAX_BASELINES];
};

static void section_columns(const struct report *rep, const char *scenario,
			    struct columns *c)
{
	bool mixed = false;

	memset(c, 0, sizeof(*c));
	c->variant_width = VARIANT_WIDTH;
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];
		int len = (int)strlen(row->variant);

		if (strcmp(row->scenario, scenario))
			continue;
		if (len > c->variant_width)
			c->variant_width = len;
		c->latency |= row->has_latency;
		c->rate |= row->has_rate;
		c->instructions |= row->has_instructions;
		if (row->extra_vs)
			c->extra_vs = row->extra_vs;
		c->threads |= row->producers > 1 || row->workers > 1 ||
			      row->has_scaling;
		c->scaling |= row->has_scaling;
		c->memory |= row->has_memory;
		c->paired |= row->paired_vs != NULL;
		c->target |= row->target > 0;
		if (row->engine && c->engine && row->engine != c->engine)
			mixed = true;
		else if (row->engine)
			c->engine = row->engine;
	}
	if (mixed)
		c->engine = NULL;
	/* A policy's extra is per pick; a configuration's per message. */
	c->extra_label = strcmp(scenario, "policies") ? "extra/msg"
						      : "extra/pick";
	c->rate_spread = c->rate && !c->latency;
	c->n_baselines = baselines_of(rep, scenario, c->baselines);
}

/* The width of the column "vs <baseline>". */
static int ratio_width(const char *baseline)
{
	int len = (int)strlen(baseline);

	return 3 + (len < 8 ? 8 : len);
}

/*
 * The width of the column "runs": per-run ratios, "0.912-0.987". The
 * target, the last column, needs no width.
 */
#define PAIRED_WIDTH 13

static void print_header(const struct report_row *first,
			 const struct columns *c, FILE *out)
{
	char engine[160];

	fprintf(out, "\n%s", first->scenario);
	if (first->has_rate && first->messages)
		fprintf(out, ": %" PRIu64 " %s per run", first->messages,
			c->latency ? "round trips" : "messages");
	if (first->has_rate)
		fprintf(out, ", median of %u runs", first->rate.runs);
	if (c->instructions)
		fprintf(out, "%s callgrind, (Ir(2N) - Ir(N)) / N, N = %" PRIu64
			" messages", c->rate ? "\ninstr/msg:" : ":",
			first->instructions_messages);
	if (c->extra_vs)
		fprintf(out, "; %s: instr/msg minus %s's", c->extra_label,
			c->extra_vs);
	if (first->detail)
		fprintf(out, "\n%s", first->detail);
	if (c->engine) {
		engine_config_describe(c->engine, engine, sizeof(engine));
		fprintf(out, "\nengine: %s", engine);
	}
	fprintf(out, "\n%-*s", c->variant_width, "variant");
	if (c->threads)
		fprintf(out, " %7s", "PxW");
	if (c->latency)
		fprintf(out, " %9s %9s %9s %9s %9s", "p50 ns", "p90 ns",
			"p99 ns", "p99.9 ns", "max ns");
	if (c->rate)
		fprintf(out, " %9s", c->latency ? "M rt/s" : "M/s");
	if (c->rate_spread)
		fprintf(out, " %9s %9s", "min", "max");
	if (c->scaling)
		fprintf(out, " %8s %10s", "speedup", "efficiency");
	if (c->memory)
		fprintf(out, " %10s %10s %10s %11s %10s %10s", "RSS0 KiB",
			"RSS1 KiB", "KiB/M msg", "allocs/msg", "frees/msg",
			"pool KiB");
	if (c->instructions)
		fprintf(out, " %12s", "instr/msg");
	if (c->extra_vs)
		fprintf(out, " %11s", c->extra_label);
	for (unsigned b = 0; b < c->n_baselines; b++)
		fprintf(out, "  vs %-*s", ratio_width(c->baselines[b]) - 3,
			c->baselines[b]);
	if (c->paired)
		fprintf(out, "  %-*s  %6s", PAIRED_WIDTH, "runs", "best");
	if (c->target)
		fprintf(out, "  target");
	fputc('\n', out);
}

static void print_threads(const struct report_row *row, FILE *out)
{
	char pw[24];

	snprintf(pw, sizeof(pw), "%ux%u", row->producers, row->workers);
	fprintf(out, " %7s", pw);
}

static void print_row(const struct report_row *row, const struct columns *c,
		      FILE *out)
{
	char cell[32];
	int blank = 0;
	double v;

	fprintf(out, "%-*s", c->variant_width, row->variant);
	if (c->threads)
		print_threads(row, out);
	if (c->latency && row->has_latency)
		fprintf(out, " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
			" %9" PRIu64 " %9" PRIu64, row->latency.p50,
			row->latency.p90, row->latency.p99,
			row->latency.p999, row->latency.max);
	else if (c->latency)
		fprintf(out, " %9s %9s %9s %9s %9s", "-", "-", "-", "-", "-");
	if (c->rate && row->has_rate)
		fprintf(out, " %9.2f", row->rate.median / 1e6);
	else if (c->rate)
		fprintf(out, " %9s", "-");
	if (c->rate_spread && row->has_rate)
		fprintf(out, " %9.2f %9.2f", row->rate.min / 1e6,
			row->rate.max / 1e6);
	else if (c->rate_spread)
		fprintf(out, " %9s %9s", "-", "-");
	if (c->scaling && row->has_scaling)
		fprintf(out, " %8.2f %10.2f", row->speedup, row->efficiency);
	else if (c->scaling)
		fprintf(out, " %8s %10s", "-", "-");
	if (c->memory && row->has_memory)
		fprintf(out, " %10" PRIu64 " %10" PRIu64 " %10.2f %11.6f "
			"%10.6f %10" PRIu64, row->memory.rss_before_kib,
			row->memory.rss_after_kib,
			row->memory.growth_kib_per_million,
			row->memory.allocs_per_msg, row->memory.frees_per_msg,
			row->memory.pool_bytes / 1024);
	else if (c->memory)
		fprintf(out, " %10s %10s %10s %11s %10s %10s", "-", "-", "-",
			"-", "-", "-");
	if (c->instructions && row->has_instructions)
		fprintf(out, " %12.1f", row->instructions_per_msg);
	else if (c->instructions)
		fprintf(out, " %12s", "-");
	if (c->extra_vs && row->extra_vs)
		fprintf(out, " %+11.1f", row->extra_instructions);
	else if (c->extra_vs)
		fprintf(out, " %11s", "-");
	/* Blank cells are written only when a value follows them. */
	for (unsigned b = 0; b < c->n_baselines; b++) {
		blank += 2 + ratio_width(c->baselines[b]);
		if (!report_ratio_of(row, c->baselines[b], &v))
			continue;
		fprintf(out, "%*.3f", blank, v);
		blank = 0;
	}
	if (c->paired && row->paired_vs) {
		snprintf(cell, sizeof(cell), "%.3f-%.3f", row->paired.min,
			 row->paired.max);
		fprintf(out, "%*s%-*s  %6.3f", blank + 2, "", PAIRED_WIDTH,
			cell, row->best_ratio);
		blank = 0;
	} else if (c->paired) {
		blank += 2 + PAIRED_WIDTH + 2 + 6;
	}
	if (c->target && row->target > 0)
		fprintf(out, "%*s>= %.2f %s", blank + 2, "", row->target,
			report_target_met(row) ? "ok" : "MISSED");
	fputc('\n', out);
}

int report_print_table(const struct report *rep, FILE *out)
{
	fprintf(out, "sy-bench %s: %s, %u CPUs (%u allowed), producer on CPU "
		"%d, consumer on CPU %d\n", BENCH_VERSION, rep->model,
		rep->cpus, rep->cpus_allowed, rep->producer_cpu,
		rep->consumer_cpu);
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];
		struct columns c;

		section_columns(rep, row->scenario, &c);
		/* A section starts at the first row of its scenario. */
		if (!i || strcmp(rep->rows[i - 1].scenario, row->scenario))
			print_header(row, &c, out);
		print_row(row, &c, out);
	}
	reference_print_table(rep, out);
	if (rep->n_notes)
		fputc('\n', out);
	for (unsigned i = 0; i < rep->n_notes; i++)
		fprintf(out, "%s\n", rep->notes[i]);
	if (rep->instructions_skipped)
		fprintf(out, "\ninstructions: skipped (valgrind not found)\n");
	if (rep->has_probe)
		fprintf(out, "\nprobe: core-to-core round trip, "
			"CPU %d <-> CPU %d, median: before %.0f ns, "
			"after %.0f ns\n",
			rep->producer_cpu, rep->consumer_cpu,
			rep->probe_before_ns, rep->probe_after_ns);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

/* ------------------------------------------------------------------ */
/* JSON                                                               */
/* ------------------------------------------------------------------ */

static void json_string(const char *s, FILE *out)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void json_memory(const struct report_memory *m, FILE *out)
{
	fprintf(out, ",\n   \"warmup_messages\":%" PRIu64 ",\"rss_kib\":"
		"{\"before\":%" PRIu64 ",\"after\":%" PRIu64 "},"
		"\"growth_kib\":%" PRId64 ",\"growth_kib_per_million\":%.4f,"
		"\n   \"allocs_per_msg\":%.9f,\"frees_per_msg\":%.9f,"
		"\"alloc_bytes\":%" PRIu64 ",\"pool_bytes\":%" PRIu64 ","
		"\"pool_bytes_before\":%" PRIu64 ",\"pool_slabs\":%" PRIu64,
		m->warmup_messages, m->rss_before_kib, m->rss_after_kib,
		(int64_t)(m->rss_after_kib - m->rss_before_kib),
		m->growth_kib_per_million, m->allocs_per_msg, m->frees_per_msg,
		m->alloc_bytes, m->pool_bytes, m->pool_bytes_before,
		m->pool_slabs);
}

static void json_engine(const struct engine_config *e, FILE *out)
{
	fprintf(out, ",\n   \"engine\":{\"config\":");
	json_string(e->name, out);
	fprintf(out, ",\"metrics\":%s,\"latency_sample\":%u,\"breaker\":%s,"
		"\"backpressure\":\"%s\"}", e->metrics == -1 ? "false" : "true",
		e->latency_sample, e->breaker ? "true" : "false",
		engine_config_bp_name(e->backpressure));
}

static void json_row(const struct report_row *row, FILE *out)
{
	fprintf(out, "{\"scenario\":");
	json_string(row->scenario, out);
	fprintf(out, ",\"variant\":");
	json_string(row->variant, out);
	if (row->policy) {
		fprintf(out, ",\"policy\":");
		json_string(row->policy, out);
	}
	fprintf(out, ",\"producers\":%u,\"workers\":%u", row->producers,
		row->workers);
	if (row->engine)
		json_engine(row->engine, out);
	if (row->messages)
		fprintf(out, ",\"messages\":%" PRIu64, row->messages);
	if (row->has_rate)
		fprintf(out, ",\n   \"msgs_per_sec\":{\"median\":%.0f,"
			"\"min\":%.0f,\"max\":%.0f,\"runs\":%u}",
			row->rate.median, row->rate.min, row->rate.max,
			row->rate.runs);
	if (row->has_latency)
		fprintf(out, ",\n   \"latency_ns\":{\"p50\":%" PRIu64
			",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64
			",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
			row->latency.p50, row->latency.p90, row->latency.p99,
			row->latency.p999, row->latency.max);
	if (row->has_instructions)
		fprintf(out, ",\n   \"instructions_per_msg\":%.1f",
			row->instructions_per_msg);
	if (row->extra_vs) {
		fprintf(out, ",\n   \"extra_instructions_vs\":{");
		json_string(row->extra_vs, out);
		fprintf(out, ":%.1f}", row->extra_instructions);
	}
	if (row->offered_rate > 0)
		fprintf(out, ",\n   \"offered_per_sec\":%.0f,"
			"\"rate_fraction\":%.3f", row->offered_rate,
			row->rate_fraction);
	if (row->n_ratios) {
		fprintf(out, ",\n   \"ratio_vs\":{");
		for (unsigned r = 0; r < row->n_ratios; r++) {
			if (r)
				fputc(',', out);
			json_string(row->ratios[r].baseline, out);
			fprintf(out, ":%.4f", row->ratios[r].value);
		}
		fputc('}', out);
	}
	if (row->paired_vs) {
		fprintf(out, ",\n   \"paired_ratio\":{\"vs\":");
		json_string(row->paired_vs, out);
		fprintf(out, ",\"median\":%.4f,\"min\":%.4f,\"max\":%.4f}",
			row->paired.median, row->paired.min, row->paired.max);
		fprintf(out, ",\"best_ratio_vs\":{");
		json_string(row->paired_vs, out);
		fprintf(out, ":%.4f}", row->best_ratio);
	}
	if (row->target > 0)
		fprintf(out, ",\n   \"target\":{\"ratio_vs\":\"%s\","
			"\"min\":%.2f,\"met\":%s}", ENGINE_CONFIG_BASELINE,
			row->target, report_target_met(row) ? "true" : "false");
	if (row->has_scaling)
		fprintf(out, ",\n   \"speedup\":%.4f,\"efficiency\":%.4f",
			row->speedup, row->efficiency);
	if (row->has_memory)
		json_memory(&row->memory, out);
	fputc('}', out);
}

int report_write_json(const struct report *rep, FILE *out)
{
	fprintf(out, "{\"tool\":\"sy-bench\",\"version\":\"%s\",\n"
		" \"machine\":{\"cpus\":%u,\"model\":", BENCH_VERSION,
		rep->cpus);
	json_string(rep->model, out);
	fprintf(out, ",\"cpus_allowed\":%u,\"producer_cpu\":%d,"
		"\"consumer_cpu\":%d", rep->cpus_allowed, rep->producer_cpu,
		rep->consumer_cpu);
	if (rep->has_probe)
		fprintf(out, ",\"probe_rtt_ns\":{\"before\":%.0f,"
			"\"after\":%.0f}", rep->probe_before_ns,
			rep->probe_after_ns);
	fprintf(out, "},\n \"results\":[");
	for (unsigned i = 0; i < rep->n_rows; i++) {
		fprintf(out, "%s\n  ", i ? "," : "");
		json_row(&rep->rows[i], out);
	}
	reference_write_json(rep, rep->n_rows > 0, out);
	fputc(']', out);
	if (rep->n_notes) {
		fprintf(out, ",\n \"notes\":[");
		for (unsigned i = 0; i < rep->n_notes; i++) {
			fprintf(out, "%s\n  ", i ? "," : "");
			json_string(rep->notes[i], out);
		}
		fputc(']', out);
	}
	fprintf(out, "}\n");
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

/* ------------------------------------------------------------------ */
/* CSV                                                                */
/* ------------------------------------------------------------------ */

/* The columns from config to target_met. */
static void csv_overhead(const struct report_row *row, FILE *out)
{
	const struct engine_config *e = row->engine;

	if (e)
		fprintf(out, ",%s,%d,%u,%d,%s", e->name, e->metrics != -1,
			e->latency_sample, e->breaker,
			engine_config_bp_name(e->backpressure));
	else
		fprintf(out, ",,,,,");
	if (row->paired_vs)
		fprintf(out, ",%.4f,%.4f,%.4f,%.4f", row->paired.median,
			row->paired.min, row->paired.max, row->best_ratio);
	else
		fprintf(out, ",,,,");
	if (row->target > 0)
		fprintf(out, ",%.2f,%d", row->target, report_target_met(row));
	else
		fprintf(out, ",,");
}

int report_write_csv(const struct report *rep, FILE *out)
{
	const char *baselines[MAX_BASELINES];
	unsigned n_baselines = baselines_of(rep, NULL, baselines);
	double v;

	fprintf(out, "scenario,variant,producers,workers,messages,runs,"
		"msgs_per_sec_median,msgs_per_sec_min,msgs_per_sec_max,"
		"p50_ns,p90_ns,p99_ns,p999_ns,max_ns,instructions_per_msg,"
		"probe_rtt_before_ns,probe_rtt_after_ns,policy,"
		"extra_instructions,extra_instructions_vs,speedup,efficiency,"
		"rss_before_kib,rss_after_kib,growth_kib_per_million,"
		"allocs_per_msg,pool_bytes,config,metrics,latency_sample,"
		"breaker,backpressure,paired_ratio_median,paired_ratio_min,"
		"paired_ratio_max,best_ratio,target_ratio,target_met");
	for (unsigned b = 0; b < n_baselines; b++)
		fprintf(out, ",ratio_vs_%s", baselines[b]);
	fputc('\n', out);
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		fprintf(out, "%s,%s,%u,%u,", row->scenario, row->variant,
			row->producers, row->workers);
		if (row->messages)
			fprintf(out, "%" PRIu64, row->messages);
		if (row->has_rate)
			fprintf(out, ",%u,%.0f,%.0f,%.0f", row->rate.runs,
				row->rate.median, row->rate.min,
				row->rate.max);
		else
			fprintf(out, ",,,,");
		if (row->has_latency)
			fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
				",%" PRIu64 ",%" PRIu64, row->latency.p50,
				row->latency.p90, row->latency.p99,
				row->latency.p999, row->latency.max);
		else
			fprintf(out, ",,,,,");
		if (row->has_instructions)
			fprintf(out, ",%.1f", row->instructions_per_msg);
		else
			fputc(',', out);
		if (rep->has_probe)
			fprintf(out, ",%.0f,%.0f", rep->probe_before_ns,
				rep->probe_after_ns);
		else
			fprintf(out, ",,");
		fprintf(out, ",%s", row->policy ? row->policy : "");
		if (row->extra_vs)
			fprintf(out, ",%.1f,%s", row->extra_instructions,
				row->extra_vs);
		else
			fprintf(out, ",,");
		if (row->has_scaling)
			fprintf(out, ",%.4f,%.4f", row->speedup,
				row->efficiency);
		else
			fprintf(out, ",,");
		if (row->has_memory)
			fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%.4f,%.9f,%" PRIu64,
				row->memory.rss_before_kib,
				row->memory.rss_after_kib,
				row->memory.growth_kib_per_million,
				row->memory.allocs_per_msg,
				row->memory.pool_bytes);
		else
			fprintf(out, ",,,,,");
		csv_overhead(row, out);
		for (unsigned b = 0; b < n_baselines; b++) {
			if (report_ratio_of(row, baselines[b], &v))
				fprintf(out, ",%.4f", v);
			else
				fputc(',', out);
		}
		fputc('\n', out);
	}
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
