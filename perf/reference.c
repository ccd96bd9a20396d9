/*
 * The seed's published figures: 10,000 msg/s with one producer, p99 below
 * 1 ms, and 280,000 msg/s with 50 producer processes.
 */
#include "reference.h"

#include <inttypes.h>
#include <string.h>

#define REFERENCE_VARIANT "seed-reference"

/* Most engine rows that one reference figure is related to in the table. */
#define MAX_RELATED 4

struct reference_figure {
	unsigned producers;
	double msgs_per_sec;
	uint64_t p99_bound_ns; /* 0: none published */
};

static const struct reference_figure figures[] = {
	{ 1, 10000, 1000000 },
	{ 50, 280000, 0 },
};

#define N_FIGURES (sizeof(figures) / sizeof(figures[0]))

/*
 * An engine row, outside the overhead scenario: its rows compare engine
 * configurations with each other, and the throughput rows already relate
 * the default one to the figures.
 */
static bool is_engine(const struct report_row *row)
{
	return !strncmp(row->variant, "engine-", 7) &&
	       strcmp(row->scenario, "overhead");
}

/*
 * Whether the rate of @p row compares with @p fig: an engine row of
 * messages (not round trips) with one producer for the one-producer
 * figure, with more than one for the other.
 */
static bool rate_related(const struct report_row *row,
			 const struct reference_figure *fig)
{
	if (!is_engine(row) || !row->has_rate || row->has_latency)
		return false;
	return fig->producers == 1 ? row->producers == 1 : row->producers > 1;
}

static bool p99_related(const struct report_row *row,
			const struct reference_figure *fig)
{
	return fig->p99_bound_ns && is_engine(row) && row->has_latency;
}

void reference_print_table(const struct report *rep, FILE *out)
{
	fprintf(out, "\nreference: the seed's published figures, NOT measured "
		"in this run;\nratios of this run's engine rows to them are "
		"informative only\n%-16s %9s %9s %9s  %s\n", "variant",
		"producers", "msg/s", "p99 bound", "informative");
	for (unsigned f = 0; f < N_FIGURES; f++) {
		const struct reference_figure *fig = &figures[f];
		unsigned shown = 0;
		char bound[16];

		fprintf(out, "%-16s %9u %9.0f", REFERENCE_VARIANT,
			fig->producers, fig->msgs_per_sec);
		if (fig->p99_bound_ns)
			snprintf(bound, sizeof(bound), "< %.0f ms",
				 fig->p99_bound_ns / 1e6);
		else
			snprintf(bound, sizeof(bound), "-");
		fprintf(out, " %9s ", bound);
		for (unsigned i = 0; i < rep->n_rows && shown < MAX_RELATED;
		     i++) {
			const struct report_row *row = &rep->rows[i];

			if (rate_related(row, fig))
				fprintf(out, "%s %s x%.0f", shown++ ? "," : " ",
					row->variant,
					row->rate.median / fig->msgs_per_sec);
			else if (p99_related(row, fig))
				fprintf(out, "%s %s p99/bound %.4f",
					shown++ ? "," : " ", row->variant,
					(double)row->latency.p99 /
					(double)fig->p99_bound_ns);
		}
		if (!shown)
			fprintf(out, " no engine row with %s in this run",
				fig->producers == 1 ? "one producer"
						    : "more than one producer");
		fputc('\n', out);
	}
}

/*
 * ,"key":{"<scenario>/<variant>":value,...} over the rows that @p related
 * picks: engine median rate over the figure's, or engine p99 over the
 * figure's bound. Nothing when no row is related.
 */
static void json_related(const struct report *rep,
			 const struct reference_figure *fig, const char *key,
			 bool (*related)(const struct report_row *,
					 const struct reference_figure *),
			 FILE *out)
{
	unsigned written = 0;

	for (unsigned i = 0; i < rep->n_rows; i++) {
		const struct report_row *row = &rep->rows[i];
		double v;

		if (!related(row, fig))
			continue;
		if (row->has_latency)
			v = (double)row->latency.p99 /
			    (double)fig->p99_bound_ns;
		else
			v = row->rate.median / fig->msgs_per_sec;
		if (!written++)
			fprintf(out, ",\n   \"%s\":{", key);
		else
			fputc(',', out);
		fprintf(out, "\"%s/%s\":%.4f", row->scenario, row->variant, v);
	}
	if (written)
		fputc('}', out);
}

void reference_write_json(const struct report *rep, bool after_row, FILE *out)
{
	for (unsigned f = 0; f < N_FIGURES; f++) {
		const struct reference_figure *fig = &figures[f];

		fprintf(out, "%s\n  {\"scenario\":\"reference\",\"variant\":\""
			REFERENCE_VARIANT "\",\"reference\":true,"
			"\"producers\":%u,\n   \"msgs_per_sec\":{\"median\":"
			"%.0f,\"min\":%.0f,\"max\":%.0f,\"runs\":0}",
			after_row || f ? "," : "", fig->producers,
			fig->msgs_per_sec, fig->msgs_per_sec,
			fig->msgs_per_sec);
		if (fig->p99_bound_ns)
			fprintf(out, ",\n   \"latency_bound_ns\":{\"p99\":%"
				PRIu64 "}", fig->p99_bound_ns);
		json_related(rep, fig, "informative_ratios", rate_related,
			     out);
		json_related(rep, fig, "informative_p99_vs_bound",
			     p99_related, out);
		fputc('}', out);
	}
}
