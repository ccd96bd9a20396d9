/* The results as a table, JSON and CSV (docs/perf.md, "Output"). */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_BASELINES 8      /* distinct baselines of one report */
#define VARIANT_WIDTH 16     /* the narrowest variant column */
#define PAIRED_WIDTH 13      /* the column "runs": "0.912-0.987" */
#define VERSION SY_VERSION_MAJOR, SY_VERSION_MINOR, SY_VERSION_PATCH

void report_init(struct report *rep, const struct bench_ctx *ctx)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	memset(rep, 0, sizeof(*rep));
	strcpy(rep->model, "unknown");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "model name : %127[^\n]", rep->model) == 1)
			break;
	if (f)
		fclose(f);
	rep->cpus_allowed = (unsigned)CPU_COUNT(&ctx->cpus);
	rep->cpus = online > 0 ? (unsigned)online : rep->cpus_allowed;
	rep->producer_cpu = ctx->producer_cpu;
	rep->consumer_cpu = ctx->consumer_cpu;
}

struct report_row *report_add_row(struct report *rep, const char *scenario, const char *variant)
{
	struct report_row *row = &rep->rows[rep->n_rows];

	assert(rep->n_rows < REPORT_MAX_ROWS);
	rep->n_rows++;
	*row = (struct report_row){ .scenario = scenario };
	snprintf(row->variant, sizeof(row->variant), "%s", variant);
	return row;
}

void report_add_ratio(struct report_row *row, const char *baseline, double value)
{
	assert(row->n_ratios < REPORT_MAX_RATIOS);
	row->ratios[row->n_ratios++] = (struct report_ratio){ baseline, value };
}

void report_add_note(struct report *rep, const char *fmt, ...)
{
	va_list ap;

	assert(rep->n_notes < REPORT_MAX_NOTES);
	va_start(ap, fmt);
	vsnprintf(rep->notes[rep->n_notes++], REPORT_NOTE_LEN, fmt, ap);
	va_end(ap);
}

struct report_row *report_find(struct report *rep, const char *scenario, const char *variant)
{
	for (unsigned i = 0; i < rep->n_rows; i++)
		if (!strcmp(rep->rows[i].scenario, scenario) &&
		    !strcmp(rep->rows[i].variant, variant))
			return &rep->rows[i];
	return NULL;
}

bool report_ratio_of(const struct report_row *row, const char *baseline, double *value)
{
	for (unsigned r = 0; r < row->n_ratios; r++)
		if (!strcmp(row->ratios[r].baseline, baseline))
			return *value = row->ratios[r].value, true;
	return false;
}

bool report_target_met(const struct report_row *row)
{
	double v;

	return row->target > 0 && row->paired_vs && report_ratio_of(row, row->paired_vs, &v) &&
	       v >= row->target;
}

/* The baselines of @p scenario's rows (NULL: all), in order: how many. */
static unsigned baselines_of(const struct report *rep, const char *scenario, const char **names)
{
	unsigned n = 0, k;

	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];

		for (unsigned r = 0; r < row->n_ratios; r++) {
			for (k = 0; k < n && strcmp(names[k], row->ratios[r].baseline);)
				k++;
			if (k == n && n < MAX_BASELINES &&
			    (!scenario || !strcmp(row->scenario, scenario)))
				names[n++] = row->ratios[r].baseline;
		}
	}
	return n;
}

/* @p fmt with its values if @p has, else @p cells empty CSV cells. */
static void __attribute__((format(printf, 4, 5)))
print_if(FILE *out, bool has, unsigned cells, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (has)
		vfprintf(out, fmt, ap);
	while (!has && cells--)
		fputc(',', out);
	va_end(ap);
}

/* @p pre, then @p s as a JSON string. */
static void json_string(FILE *out, const char *pre, const char *s)
{
	fprintf(out, "%s\"", pre);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static const struct reference_figure {
	unsigned producers;
	double msgs_per_sec;
	uint64_t p99_bound_ns; /* 0: none published */
	const char *bound;     /* the same, in the table */
} figures[] = { { 1, 10000, 1000000, "< 1 ms" }, { 50, 280000, 0, "-" } };

#define MAX_RELATED 4 /* engine rows shown per figure in the table */

/* Whether an engine row (not overhead's) compares with @p fig: its rate
 * with as many producers (one, or more), or its p99 with a bound; @p v. */
static bool related(const struct report_row *row, const struct reference_figure *fig, bool p99,
		    double *v)
{
	if (strncmp(row->variant, "engine-", 7) || !strcmp(row->scenario, "overhead"))
		return false;
	if (p99 && fig->p99_bound_ns && row->has_latency) {
		*v = (double)row->latency.p99 / (double)fig->p99_bound_ns;
		return true;
	}
	if (p99 || !row->has_rate || row->has_latency ||
	    (fig->producers == 1) != (row->producers == 1))
		return false;
	*v = row->rate.median / fig->msgs_per_sec;
	return true;
}

static void reference_print_table(const struct report *rep, FILE *out)
{
	fprintf(out, "\nreference: the seed's published figures, NOT measured in this run;\n"
		"ratios of this run's engine rows to them are informative only\n"
		"%-16s %9s %9s %9s  %s\n", "variant", "producers", "msg/s", "p99 bound",
		"informative");
	for (unsigned f = 0; f < ARRAY_SIZE(figures); f++) {
		const struct reference_figure *fig = &figures[f];
		unsigned shown = 0;
		double v;

		fprintf(out, "%-16s %9u %9.0f %9s ", "seed-reference", fig->producers,
			fig->msgs_per_sec, fig->bound);
		for (unsigned i = 0; i < rep->n_rows && shown < MAX_RELATED; i++) {
			const struct report_row *row = &rep->rows[i];
			bool p99 = !related(row, fig, false, &v);

			if (!p99 || related(row, fig, true, &v))
				fprintf(out, p99 ? "%s %s p99/bound %.4f" : "%s %s x%.0f",
					shown++ ? "," : " ", row->variant, v);
		}
		if (!shown)
			fprintf(out, " no engine row with %s in this run",
				fig->producers == 1 ? "one producer" : "more than one producer");
		fputc('\n', out);
	}
}

static void reference_write_json(const struct report *rep, FILE *out)
{
	static const char *const keys[] = { "informative_ratios", "informative_p99_vs_bound" };

	for (unsigned f = 0; f < ARRAY_SIZE(figures); f++) {
		const struct reference_figure *fig = &figures[f];
		const double rate = fig->msgs_per_sec;

		fprintf(out, "%s\n  {\"scenario\":\"reference\",\"variant\":\"seed-reference\","
			"\"reference\":true,\"producers\":%u,\n   \"msgs_per_sec\":{"
			"\"median\":%.0f,\"min\":%.0f,\"max\":%.0f,\"runs\":0}",
			rep->n_rows || f ? "," : "", fig->producers, rate, rate, rate);
		print_if(out, fig->p99_bound_ns, 0, ",\n   \"latency_bound_ns\":{\"p99\":%"
			 PRIu64 "}", fig->p99_bound_ns);
		for (unsigned k = 0; k < ARRAY_SIZE(keys); k++) {
			unsigned written = 0;
			char open[64];
			double v;

			snprintf(open, sizeof(open), ",\n   \"%s\":{", keys[k]);
			for (unsigned i = 0; i < rep->n_rows; i++)
				if (related(&rep->rows[i], fig, k, &v))
					fprintf(out, "%s\"%s/%s\":%.4f", written++ ? "," : open,
						rep->rows[i].scenario, rep->rows[i].variant, v);
			print_if(out, written, 0, "}");
		}
		fputc('}', out);
	}
}
/* Columns of numbers: a section shows a group if one of its rows has it. */
enum group { G_LATENCY, G_RATE, G_SPREAD, G_SCALING, G_MEMORY, G_INSTR, G_EXTRA, GROUPS };

static const struct column {
	enum group group;
	const char *head;   /* NULL: the section's label */
	int width, precision;
} columns[] = {
	{ G_LATENCY, "p50 ns", 9, 0 }, { G_LATENCY, "p90 ns", 9, 0 },
	{ G_LATENCY, "p99 ns", 9, 0 }, { G_LATENCY, "p99.9 ns", 9, 0 },
	{ G_LATENCY, "max ns", 9, 0 }, { G_RATE, NULL, 9, 2 },
	{ G_SPREAD, "min", 9, 2 }, { G_SPREAD, "max", 9, 2 },
	{ G_SCALING, "speedup", 8, 2 }, { G_SCALING, "efficiency", 10, 2 },
	{ G_MEMORY, "RSS0 KiB", 10, 0 }, { G_MEMORY, "RSS1 KiB", 10, 0 },
	{ G_MEMORY, "KiB/M msg", 10, 2 }, { G_MEMORY, "allocs/msg", 11, 6 },
	{ G_MEMORY, "frees/msg", 10, 6 }, { G_MEMORY, "pool KiB", 10, 0 },
	{ G_INSTR, "instr/msg", 12, 1 }, { G_EXTRA, NULL, 11, 1 },
};

/* The value of column @p c of @p r. @return false: @p r has none. */
static bool cell(const struct report_row *r, unsigned c, double *v)
{
	const struct report_memory *m = &r->memory;
	const double values[ARRAY_SIZE(columns)] = {
		r->latency.p50, r->latency.p90, r->latency.p99, r->latency.p999, r->latency.max,
		r->rate.median / 1e6, r->rate.min / 1e6, r->rate.max / 1e6, r->speedup,
		r->efficiency, m->rss_before_kib, m->rss_after_kib, m->growth_kib_per_million,
		m->allocs_per_msg, m->frees_per_msg, (double)(m->pool_bytes / 1024),
		r->instructions_per_msg, r->extra_instructions,
	};
	const bool has[GROUPS] = {
		r->has_latency, r->has_rate, r->has_rate, r->has_scaling, r->has_memory,
		r->has_instructions, r->extra_vs != NULL,
	};

	*v = values[c];
	return has[columns[c].group];
}

/* Which columns a section of the table has. */
struct section {
	int variant_width;
	bool group[GROUPS];
	const char *extra_vs;     /* extra instructions relative to it */
	const char *extra_label;  /* "extra/pick", "extra/msg" */
	bool threads, paired, target; /* PxW, per-run ratios, target */
	const struct engine_config *engine; /* of every engine row, or NULL */
	unsigned n_baselines;
	const char *baselines[MAX_BASELINES];
};

static void section_of(const struct report *rep, const char *scenario, struct section *s)
{
	bool mixed = false;
	double v;

	*s = (struct section){ .variant_width = VARIANT_WIDTH };
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];
		int len = (int)strlen(row->variant);

		if (strcmp(row->scenario, scenario))
			continue;
		s->variant_width = len > s->variant_width ? len : s->variant_width;
		for (unsigned c = 0; c < ARRAY_SIZE(columns); c++)
			s->group[columns[c].group] |= cell(row, c, &v);
		s->extra_vs = row->extra_vs ? row->extra_vs : s->extra_vs;
		s->threads |= row->producers > 1 || row->workers > 1 || row->has_scaling;
		s->paired |= row->paired_vs != NULL;
		s->target |= row->target > 0;
		mixed |= row->engine && s->engine && row->engine != s->engine;
		s->engine = row->engine ? row->engine : s->engine;
	}
	s->engine = mixed ? NULL : s->engine;
	/* A policy's extra is per pick; a configuration's per message. */
	s->extra_label = strcmp(scenario, "policies") ? "extra/msg" : "extra/pick";
	s->group[G_SPREAD] &= !s->group[G_LATENCY];
	s->n_baselines = baselines_of(rep, scenario, s->baselines);
}

/* The width of the column "vs <baseline>". */
static int ratio_width(const char *baseline)
{
	return 3 + (strlen(baseline) < 8 ? 8 : (int)strlen(baseline));
}

static void print_header(const struct report_row *first, const struct section *s, FILE *out)
{
	bool latency = s->group[G_LATENCY];
	char engine[160];

	fprintf(out, "\n%s", first->scenario);
	print_if(out, first->has_rate && first->messages, 0, ": %" PRIu64 " %s per run",
		 first->messages, latency ? "round trips" : "messages");
	print_if(out, first->has_rate, 0, ", median of %u runs", first->rate.runs);
	print_if(out, s->group[G_INSTR], 0, "%s callgrind, (Ir(2N) - Ir(N)) / N, N = %" PRIu64
		 " messages", s->group[G_RATE] ? "\ninstr/msg:" : ":",
		 first->instructions_messages);
	print_if(out, s->extra_vs, 0, "; %s: instr/msg minus %s's", s->extra_label, s->extra_vs);
	print_if(out, first->detail, 0, "\n%s", first->detail);
	if (s->engine)
		engine_config_describe(s->engine, engine, sizeof(engine));
	print_if(out, s->engine, 0, "\nengine: %s", engine);
	fprintf(out, "\n%-*s", s->variant_width, "variant");
	print_if(out, s->threads, 0, " %7s", "PxW");
	for (unsigned c = 0; c < ARRAY_SIZE(columns); c++)
		if (s->group[columns[c].group])
			fprintf(out, " %*s", columns[c].width, columns[c].head ? columns[c].head
				: columns[c].group == G_EXTRA ? s->extra_label
				: latency ? "M rt/s" : "M/s");
	for (unsigned b = 0; b < s->n_baselines; b++)
		fprintf(out, "  vs %-*s", ratio_width(s->baselines[b]) - 3, s->baselines[b]);
	print_if(out, s->paired, 0, "  %-*s  %6s", PAIRED_WIDTH, "runs", "best");
	fprintf(out, "%s\n", s->target ? "  target" : "");
}

static void print_row(const struct report_row *row, const struct section *s, FILE *out)
{
	char text[32];
	int blank = 0;
	double v;

	fprintf(out, "%-*s", s->variant_width, row->variant);
	snprintf(text, sizeof(text), "%ux%u", row->producers, row->workers);
	print_if(out, s->threads, 0, " %7s", text);
	for (unsigned c = 0; c < ARRAY_SIZE(columns); c++) {
		if (!s->group[columns[c].group])
			continue;
		if (cell(row, c, &v))
			fprintf(out, columns[c].group == G_EXTRA ? " %+*.*f" : " %*.*f",
				columns[c].width, columns[c].precision, v);
		else
			fprintf(out, " %*s", columns[c].width, "-");
	}
	/* Blank cells are written only when a value follows them. */
	for (unsigned b = 0; b < s->n_baselines; b++) {
		blank += 2 + ratio_width(s->baselines[b]);
		if (!report_ratio_of(row, s->baselines[b], &v))
			continue;
		fprintf(out, "%*.3f", blank, v);
		blank = 0;
	}
	if (s->paired && row->paired_vs) {
		snprintf(text, sizeof(text), "%.3f-%.3f", row->paired.min, row->paired.max);
		fprintf(out, "%*s%-*s  %6.3f", blank + 2, "", PAIRED_WIDTH, text, row->best_ratio);
		blank = 0;
	} else if (s->paired) {
		blank += 2 + PAIRED_WIDTH + 2 + 6;
	}
	if (s->target && row->target > 0)
		fprintf(out, "%*s>= %.2f %s", blank + 2, "", row->target,
			report_target_met(row) ? "ok" : "MISSED");
	fputc('\n', out);
}

int report_print_table(const struct report *rep, FILE *out)
{
	fprintf(out, "sy-bench %d.%d.%d: %s, %u CPUs (%u allowed), producer on CPU %d, consumer "
		"on CPU %d\n", VERSION, rep->model, rep->cpus, rep->cpus_allowed,
		rep->producer_cpu, rep->consumer_cpu);
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];
		struct section s;

		section_of(rep, row->scenario, &s);
		/* A section starts at the first row of its scenario. */
		if (!i || strcmp(rep->rows[i - 1].scenario, row->scenario))
			print_header(row, &s, out);
		print_row(row, &s, out);
	}
	reference_print_table(rep, out);
	for (unsigned i = 0; i < rep->n_notes; i++)
		fprintf(out, "%s%s\n", i ? "" : "\n", rep->notes[i]);
	print_if(out, rep->instructions_skipped, 0, "\ninstructions: skipped (valgrind not "
		 "found)\n");
	print_if(out, rep->has_probe, 0, "\nprobe: core-to-core round trip, CPU %d <-> CPU %d, "
		 "median: before %.0f ns, after %.0f ns\n", rep->producer_cpu, rep->consumer_cpu,
		 rep->probe_before_ns, rep->probe_after_ns);
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
/* Row @p r, after a comma unless @p first. */
static void json_row(const struct report_row *r, bool first, FILE *out)
{
	const struct report_memory *m = &r->memory;
	const struct engine_config *e = r->engine;
	const struct stats_latency *l = &r->latency;

	/* The names are sy-bench's own: nothing to escape. */
	fprintf(out, "%s\n  {\"scenario\":\"%s\",\"variant\":\"%s\"", first ? "" : ",",
		r->scenario, r->variant);
	print_if(out, r->policy, 0, ",\"policy\":\"%s\"", r->policy);
	fprintf(out, ",\"producers\":%u,\"workers\":%u", r->producers, r->workers);
	if (e)
		fprintf(out, ",\n   \"engine\":{\"config\":\"%s\",\"metrics\":%s,"
			"\"latency_sample\":%u,\"breaker\":%s,\"backpressure\":\"%s\"}", e->name,
			e->metrics != -1 ? "true" : "false", e->latency_sample,
			e->breaker ? "true" : "false", engine_bp_name(e->backpressure));
	print_if(out, r->messages, 0, ",\"messages\":%" PRIu64, r->messages);
	print_if(out, r->has_rate, 0, ",\n   \"msgs_per_sec\":{\"median\":%.0f,\"min\":%.0f,"
		 "\"max\":%.0f,\"runs\":%u}", r->rate.median, r->rate.min, r->rate.max,
		 r->rate.runs);
	print_if(out, r->has_latency, 0, ",\n   \"latency_ns\":{\"p50\":%" PRIu64 ",\"p90\":%"
		 PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}", l->p50,
		 l->p90, l->p99, l->p999, l->max);
	print_if(out, r->has_instructions, 0, ",\n   \"instructions_per_msg\":%.1f",
		 r->instructions_per_msg);
	print_if(out, r->extra_vs, 0, ",\n   \"extra_instructions_vs\":{\"%s\":%.1f}", r->extra_vs,
		 r->extra_instructions);
	print_if(out, r->offered_rate > 0, 0, ",\n   \"offered_per_sec\":%.0f,\"rate_fraction\":"
		 "%.3f", r->offered_rate, r->rate_fraction);
	for (unsigned i = 0; i < r->n_ratios; i++)
		fprintf(out, "%s\"%s\":%.4f%s", i ? "," : ",\n   \"ratio_vs\":{",
			r->ratios[i].baseline, r->ratios[i].value, i + 1 == r->n_ratios ? "}" : "");
	print_if(out, r->paired_vs, 0, ",\n   \"paired_ratio\":{\"vs\":\"%s\",\"median\":%.4f,"
		 "\"min\":%.4f,\"max\":%.4f},\"best_ratio_vs\":{\"%s\":%.4f}", r->paired_vs,
		 r->paired.median, r->paired.min, r->paired.max, r->paired_vs, r->best_ratio);
	print_if(out, r->target > 0, 0, ",\n   \"target\":{\"ratio_vs\":\"%s\",\"min\":%.2f,"
		 "\"met\":%s}", ENGINE_CONFIG_BARE->name, r->target,
		 report_target_met(r) ? "true" : "false");
	print_if(out, r->has_scaling, 0, ",\n   \"speedup\":%.4f,\"efficiency\":%.4f", r->speedup,
		 r->efficiency);
	print_if(out, r->has_memory, 0, ",\n   \"warmup_messages\":%" PRIu64 ",\"rss_kib\":{"
		 "\"before\":%" PRIu64 ",\"after\":%" PRIu64 "},\"growth_kib\":%" PRId64
		 ",\"growth_kib_per_million\":%.4f,\n   \"allocs_per_msg\":%.9f,\"frees_per_msg\":"
		 "%.9f,\"alloc_bytes\":%" PRIu64 ",\"pool_bytes\":%" PRIu64
		 ",\"pool_bytes_before\":%" PRIu64 ",\"pool_slabs\":%" PRIu64, m->warmup_messages,
		 m->rss_before_kib, m->rss_after_kib,
		 (int64_t)(m->rss_after_kib - m->rss_before_kib), m->growth_kib_per_million,
		 m->allocs_per_msg, m->frees_per_msg, m->alloc_bytes, m->pool_bytes,
		 m->pool_bytes_before, m->pool_slabs);
	fputc('}', out);
}

int report_write_json(const struct report *rep, FILE *out)
{
	fprintf(out, "{\"tool\":\"sy-bench\",\"version\":\"%d.%d.%d\",\n \"machine\":{\"cpus\":%u",
		VERSION, rep->cpus);
	json_string(out, ",\"model\":", rep->model);
	fprintf(out, ",\"cpus_allowed\":%u,\"producer_cpu\":%d,\"consumer_cpu\":%d",
		rep->cpus_allowed, rep->producer_cpu, rep->consumer_cpu);
	print_if(out, rep->has_probe, 0, ",\"probe_rtt_ns\":{\"before\":%.0f,\"after\":%.0f}",
		 rep->probe_before_ns, rep->probe_after_ns);
	fprintf(out, "},\n \"results\":[");
	for (unsigned i = 0; i < rep->n_rows; i++)
		json_row(&rep->rows[i], !i, out);
	reference_write_json(rep, out);
	fputc(']', out);
	for (unsigned i = 0; i < rep->n_notes; i++)
		json_string(out, i ? ",\n  " : ",\n \"notes\":[\n  ", rep->notes[i]);
	fprintf(out, "%s}\n", rep->n_notes ? "]" : "");
	fflush(out);
	return ferror(out) ? -EIO : 0;
}

int report_write_csv(const struct report *rep, FILE *out)
{
	const char *baselines[MAX_BASELINES];
	unsigned n_baselines = baselines_of(rep, NULL, baselines);
	double v = 0;

	fprintf(out, "scenario,variant,producers,workers,messages,runs,msgs_per_sec_median,"
		"msgs_per_sec_min,msgs_per_sec_max,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,"
		"instructions_per_msg,probe_rtt_before_ns,probe_rtt_after_ns,policy,"
		"extra_instructions,extra_instructions_vs,speedup,efficiency,rss_before_kib,"
		"rss_after_kib,growth_kib_per_million,allocs_per_msg,pool_bytes,config,metrics,"
		"latency_sample,breaker,backpressure,paired_ratio_median,paired_ratio_min,"
		"paired_ratio_max,best_ratio,target_ratio,target_met");
	for (unsigned b = 0; b < n_baselines; b++)
		fprintf(out, ",ratio_vs_%s", baselines[b]);
	fputc('\n', out);
	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *r = &rep->rows[i];
		const struct report_memory *m = &r->memory;
		const struct stats_latency *l = &r->latency;
		const struct engine_config *e = r->engine;

		fprintf(out, "%s,%s,%u,%u,", r->scenario, r->variant, r->producers, r->workers);
		print_if(out, r->messages, 0, "%" PRIu64, r->messages);
		print_if(out, r->has_rate, 4, ",%u,%.0f,%.0f,%.0f", r->rate.runs, r->rate.median,
			 r->rate.min, r->rate.max);
		print_if(out, r->has_latency, 5, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
			 ",%" PRIu64, l->p50, l->p90, l->p99, l->p999, l->max);
		print_if(out, r->has_instructions, 1, ",%.1f", r->instructions_per_msg);
		print_if(out, rep->has_probe, 2, ",%.0f,%.0f", rep->probe_before_ns,
			 rep->probe_after_ns);
		fprintf(out, ",%s", r->policy ? r->policy : "");
		print_if(out, r->extra_vs, 2, ",%.1f,%s", r->extra_instructions, r->extra_vs);
		print_if(out, r->has_scaling, 2, ",%.4f,%.4f", r->speedup, r->efficiency);
		print_if(out, r->has_memory, 5, ",%" PRIu64 ",%" PRIu64 ",%.4f,%.9f,%" PRIu64,
			 m->rss_before_kib, m->rss_after_kib, m->growth_kib_per_million,
			 m->allocs_per_msg, m->pool_bytes);
		if (e)
			fprintf(out, ",%s,%d,%u,%d,%s", e->name, e->metrics != -1,
				e->latency_sample, e->breaker, engine_bp_name(e->backpressure));
		else
			fputs(",,,,,", out);
		print_if(out, r->paired_vs, 4, ",%.4f,%.4f,%.4f,%.4f", r->paired.median,
			 r->paired.min, r->paired.max, r->best_ratio);
		print_if(out, r->target > 0, 2, ",%.2f,%d", r->target, report_target_met(r));
		for (unsigned b = 0; b < n_baselines; b++) {
			bool has = report_ratio_of(r, baselines[b], &v);

			print_if(out, has, 1, ",%.4f", has ? v : 0);
		}
		fputc('\n', out);
	}
	fflush(out);
	return ferror(out) ? -EIO : 0;
}
