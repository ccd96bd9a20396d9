/*
 * Snapshot exports: sy_snapshot_format() renders one snapshot as JSON, CSV,
 * Prometheus text, Erlang terms or an aligned table (docs/metrics.md has
 * the schemas and an example of each).
 *
 * Everything here reads the snapshot through the public accessors only, so
 * an export says exactly what a caller of sy_snapshot_series() and
 * sy_snapshot_hist() would see. A snapshot is immutable while it is held:
 * formatting takes no lock and may run on any thread, concurrently with the
 * collector publishing the next one.
 *
 * Names are arbitrary bytes (1 to 63 of them). Each format escapes them its
 * own way: JSON and Prometheus need valid UTF-8, so a byte that does not
 * start a valid sequence becomes U+FFFD there (and in CSV and the table);
 * Erlang binaries keep the bytes exactly, as octal escapes. Floating-point
 * values are made finite before they are written (NaN as 0, infinities and
 * magnitudes above 1e300 as +-1e300), since not every format can carry
 * NaN or infinity.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/snapshot.h"
#include "switchyard.h"

_Static_assert(SY_DL_REASONS == 10, "a dead letter reason needs a name below");
_Static_assert(SY_HIST_KINDS == 4, "a histogram kind needs a name below");
_Static_assert(SY_SERIES_KINDS == 4, "a series kind needs a name below");

static const char *const reason_names[SY_DL_REASONS] = {
	"unreachable", "circuit_open", "backpressure", "timeout",
	"handler_failed", "retries_exhausted", "shutdown", "remote",
	"overload", "parked",
};

static const char *const hist_names[SY_HIST_KINDS] = {
	"latency", "service", "rtt", "sojourn",
};

/* Singular (CSV, Prometheus, table) and plural (JSON, Erlang) kind names. */
static const char *const kind_names[SY_SERIES_KINDS] = {
	"engine", "server", "route", "transport",
};
static const char *const kind_plurals[SY_SERIES_KINDS] = {
	"engine", "servers", "routes", "transports",
};

#define BREAKER_STATES (SY_BREAKER_DISABLED + 1)
static const char *const breaker_names[BREAKER_STATES] = {
	"closed", "open", "half_open", "forced_open", "disabled",
};

static const char *breaker_name(enum sy_breaker_state s)
{
	return (unsigned)s < BREAKER_STATES ? breaker_names[s] : "unknown";
}

/*
 * The engine's NATS counters (sy_snapshot_nats()), in every format when
 * the engine has a connection (state other than SY_NATS_NONE): the
 * state, these fields, and the acknowledgement latency.
 */
_Static_assert(SY_NATS_CLOSED == 3, "a NATS state needs a name below");
static const char *const nats_state_names[] = {
	"none", "connected", "reconnecting", "closed",
};

static const struct nats_field {
	const char *name;
	size_t offset;          /* of the uint64_t in struct sy_nats_stats */
	bool gauge;             /* a level, not a count since the start */
	const char *help;
} nats_fields[] = {
#define NATS_FIELD(f, gauge, help) \
	{ #f, offsetof(struct sy_nats_stats, f), gauge, help }
	NATS_FIELD(reconnects, false, "NATS connections re-established."),
	NATS_FIELD(published, false, "Messages published to remote servers."),
	NATS_FIELD(in_flight, true, "Remote messages published and not yet acknowledged or failed."),
	NATS_FIELD(acked, false, "Remote runs acknowledged as succeeded."),
	NATS_FIELD(nacked, false, "Remote runs acknowledged as failed."),
	NATS_FIELD(timeouts, false, "Remote messages without an acknowledgement in time."),
	NATS_FIELD(no_responders, false, "Remote messages that nobody served."),
	NATS_FIELD(conn_failures, false, "Remote messages failed by a lost or absent connection."),
	NATS_FIELD(too_large, false, "Remote messages above the server's maximum payload."),
	NATS_FIELD(late_acks, false, "Acknowledgements of messages already failed."),
	NATS_FIELD(served, false, "Messages of exported routes run here."),
	NATS_FIELD(served_failed, false, "Messages of exported routes that failed or were refused here."),
	NATS_FIELD(malformed, false, "Malformed messages dropped on exported subjects."),
	NATS_FIELD(dl_stored, false, "Dead letters stored in the JetStream stream."),
	NATS_FIELD(dl_store_failed, false, "Dead letters that could not be stored in the stream."),
#undef NATS_FIELD
};

#define NATS_FIELDS (sizeof(nats_fields) / sizeof(nats_fields[0]))

static uint64_t u64_at(const void *p, size_t offset)
{
	uint64_t v;

	memcpy(&v, (const char *)p + offset, sizeof(v));
	return v;
}

/* The snapshot's NATS counters; false when the engine had no connection. */
static bool read_nats(const sy_snapshot *snap, struct sy_nats_stats *st)
{
	return sy_snapshot_nats(snap, st) == 0 && st->state != SY_NATS_NONE &&
	       (unsigned)st->state < sizeof(nats_state_names) /
					 sizeof(nats_state_names[0]);
}

/* ---- output buffer ---- */

struct out {
	char *buf;
	size_t len;
	size_t cap;
	int err;                /* the first failure; later writes do nothing */
};

static bool reserve(struct out *o, size_t more)
{
	size_t cap;
	char *p;

	if (o->err)
		return false;
	if (o->len + more < o->cap)
		return true;
	cap = o->cap ? o->cap : 4096;
	while (cap <= o->len + more)
		cap *= 2;
	p = realloc(o->buf, cap);
	if (!p) {
		o->err = -ENOMEM;
		return false;
	}
	o->buf = p;
	o->cap = cap;
	return true;
}

static void put(struct out *o, const char *s, size_t n)
{
	if (!reserve(o, n))
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putc_(struct out *o, char c)
{
	put(o, &c, 1);
}

static void putf(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Formats straight into the free space; a second pass only when it grows. */
static void putf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!reserve(o, 64))
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->err = -EINVAL;
		o->buf[o->len] = '\0';
		return;
	}
	if ((size_t)n >= o->cap - o->len) {
		if (!reserve(o, (size_t)n + 1))
			return;
		va_start(ap, fmt);
		vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	o->len += (size_t)n;
}

/* ---- numbers and names ---- */

/* The largest magnitude written. Not DBL_MAX: at 10 digits it rounds up
 * past the largest double, which readers then take as infinite. */
#define FLOAT_LIMIT 1e300

static double clamp(double v)
{
	if (isnan(v))
		return 0.0;
	if (v > FLOAT_LIMIT)
		return FLOAT_LIMIT;
	if (v < -FLOAT_LIMIT)
		return -FLOAT_LIMIT;
	return v;
}

/*
 * A finite double in at most 32 bytes, shortest of %.10g. Erlang wants a
 * digit on both sides of the point ("1.0e+20", not "1e+20"); JSON,
 * Prometheus and CSV read either.
 */
static void fmt_double(char *dst, size_t cap, double v, bool erlang)
{
	char tmp[32];
	char *e;

	snprintf(tmp, sizeof(tmp), "%.10g", clamp(v));
	if (!erlang || strchr(tmp, '.')) {
		snprintf(dst, cap, "%s", tmp);
		return;
	}
	e = strchr(tmp, 'e');
	if (!e) {
		snprintf(dst, cap, "%s.0", tmp);
		return;
	}
	snprintf(dst, cap, "%.*s.0%s", (int)(e - tmp), tmp, e);
}

static void put_double(struct out *o, double v)
{
	char s[40];

	fmt_double(s, sizeof(s), v, false);
	puts_(o, s);
}

/* Length of the valid UTF-8 sequence at @p s, or 0 if it does not start one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* Overlong forms, surrogates and code points above U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static const char *series_name(const struct sy_series *s)
{
	return s->name ? s->name : "";
}

/*
 * @p open, then each worker's inbox depth as a map, separated by @p sep:
 * @p head is the map up to the trend's value, a format of the worker,
 * current and max; @p put_trend writes the trend in the format's syntax.
 */
static void put_queues(struct out *o, const sy_snapshot *snap,
		      const char *open, const char *sep, const char *head,
		      void (*put_trend)(struct out *o, double v),
		      const char *tail)
{
	unsigned nw = sy_snapshot_workers(snap);
	struct sy_queue_depth q;

	puts_(o, open);
	/* sy_snapshot_queue() fails only for a worker past nw. */
	for (unsigned w = 0; w < nw && sy_snapshot_queue(snap, w, &q) == 0; w++) {
		if (w)
			puts_(o, sep);
		putf(o, head, w, q.current, q.max);
		put_trend(o, q.trend);
		putf(o, tail, q.bp_threshold);
	}
}

/* ---- JSON ---- */

/*
 * @p str in double quotes: each single byte that @p escape maps (to a
 * string in @p buf or a constant) is replaced by its escape, and each byte
 * that does not start valid UTF-8 by @p bad.
 */
static void put_quoted(struct out *o, const char *str,
		       const char *(*escape)(unsigned char c, char buf[8]),
		       const char *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	char buf[8];

	putc_(o, '"');
	while (*s) {
		size_t n = utf8_len(s);
		const char *e = n == 1 ? escape(*s, buf) : NULL;

		if (n == 0)
			puts_(o, bad);
		else if (e)
			puts_(o, e);
		else
			put(o, (const char *)s, n);
		s += n ? n : 1;
	}
	putc_(o, '"');
}

static const char *json_escape(unsigned char c, char buf[8])
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\b': return "\\b";
	case '\f': return "\\f";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	default:
		if (c >= 0x20)
			return NULL;
		snprintf(buf, 8, "\\u%04x", c);
		return buf;
	}
}

static void json_string(struct out *o, const char *str)
{
	put_quoted(o, str, json_escape, "\\ufffd");
}

static void json_counters(struct out *o, const struct sy_counters *c)
{
	putf(o, "{\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
	     ",\"failed\":%" PRIu64 ",\"retried\":%" PRIu64
	     ",\"rejected\":%" PRIu64 ",\"dead_lettered\":{",
	     c->sent, c->delivered, c->failed, c->retried, c->rejected);
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		putf(o, "%s\"%s\":%" PRIu64, r ? "," : "", reason_names[r],
		     c->dead_lettered[r]);
	putf(o, "},\"transitions\":%" PRIu64 "}", c->transitions);
}

static void json_latency(struct out *o, const struct sy_latency *l)
{
	putf(o, "{\"samples\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p99\":%"
	     PRIu64 ",\"p999\":%" PRIu64 "}", l->samples, l->p50_ns,
	     l->p99_ns, l->p999_ns);
}

static void json_series(struct out *o, const struct sy_series *s)
{
	puts_(o, "{\"name\":");
	json_string(o, series_name(s));
	putf(o, ",\"id\":%" PRIu32 ",\"counters\":{\"total\":", s->id);
	json_counters(o, &s->total);
	puts_(o, ",\"recent\":");
	json_counters(o, &s->recent);
	puts_(o, "},\"rates\":{\"sent_per_s\":");
	put_double(o, s->sent_per_s);
	puts_(o, ",\"delivered_per_s\":");
	put_double(o, s->delivered_per_s);
	puts_(o, "},\"error_rate\":{\"total\":");
	put_double(o, s->error_rate);
	puts_(o, ",\"recent\":");
	put_double(o, s->error_rate_recent);
	putc_(o, '}');
	if (s->kind == SY_SERIES_SERVER)
		putf(o, ",\"breaker\":\"%s\",\"healthy\":%s,\"worker\":%u",
		     breaker_name(s->breaker), s->healthy ? "true" : "false",
		     s->worker);
	if (s->kind == SY_SERIES_ROUTE) {
		puts_(o, ",\"latency\":{\"total\":");
		json_latency(o, &s->latency_total);
		puts_(o, ",\"recent\":");
		json_latency(o, &s->latency_recent);
		putc_(o, '}');
	}
	putc_(o, '}');
}

static void json_summary(struct out *o, const struct sy_hist_summary *h)
{
	putf(o, "{\"count\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
	     ",\"mean\":", h->count, h->min, h->max);
	put_double(o, h->mean);
	puts_(o, ",\"stddev\":");
	put_double(o, h->stddev);
	putf(o, ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64 ",\"p95\":%" PRIu64
	     ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 "}",
	     h->p50, h->p90, h->p95, h->p99, h->p999);
}

static int read_hist(const sy_snapshot *snap, unsigned k, bool recent,
		     struct sy_hist_summary *h)
{
	memset(h, 0, sizeof(*h));
	return sy_snapshot_hist(snap, (enum sy_hist_kind)k, recent, h);
}

static void json_nats(struct out *o, const sy_snapshot *snap)
{
	struct sy_nats_stats st;

	if (!read_nats(snap, &st))
		return;
	putf(o, ",\"nats\":{\"state\":\"%s\"", nats_state_names[st.state]);
	for (size_t i = 0; i < NATS_FIELDS; i++)
		putf(o, ",\"%s\":%" PRIu64, nats_fields[i].name,
		     u64_at(&st, nats_fields[i].offset));
	puts_(o, ",\"ack_latency\":");
	json_summary(o, &st.ack_latency);
	putc_(o, '}');
}

static int format_json(const sy_snapshot *snap, struct out *o)
{
	struct sy_hist_summary h;
	int rc;

	putf(o, "{\"seq\":%" PRIu64 ",\"time_ns\":%" PRIu64
	     ",\"window_ns\":%" PRIu64, sy_snapshot_seq(snap),
	     sy_snapshot_time_ns(snap), sy_snapshot_window_ns(snap));
	/* The engine is one series: an object; the other kinds are arrays. */
	puts_(o, ",\"engine\":");
	if (sy_snapshot_count(snap, SY_SERIES_ENGINE))
		json_series(o, sy_snapshot_series(snap, SY_SERIES_ENGINE, 0));
	else
		puts_(o, "null");
	for (unsigned k = SY_SERIES_SERVER; k < SY_SERIES_KINDS; k++) {
		unsigned n = sy_snapshot_count(snap, (enum sy_series_kind)k);

		putf(o, ",\"%s\":[", kind_plurals[k]);
		for (unsigned i = 0; i < n; i++) {
			if (i)
				putc_(o, ',');
			json_series(o, sy_snapshot_series(snap,
							  (enum sy_series_kind)k, i));
		}
		putc_(o, ']');
	}
	puts_(o, ",\"histograms\":{");
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		putf(o, "%s\"%s\":{\"total\":", k ? "," : "", hist_names[k]);
		if ((rc = read_hist(snap, k, false, &h)) < 0)
			return rc;
		json_summary(o, &h);
		puts_(o, ",\"recent\":");
		if ((rc = read_hist(snap, k, true, &h)) < 0)
			return rc;
		json_summary(o, &h);
		putc_(o, '}');
	}
	put_queues(o, snap, "},\"queues\":[", ",",
		   "{\"worker\":%u,\"current\":%" PRIu64 ",\"max\":%" PRIu64
		   ",\"trend\":", put_double,
		   ",\"bp_threshold\":%" PRIu64 "}");
	putc_(o, ']');
	json_nats(o, snap);
	puts_(o, "}\n");
	return 0;
}

/* ---- CSV (RFC 4180) ---- */

/* Counter columns, once for the totals and once (prefixed) for the window. */
#define CSV_COUNTERS (5 + SY_DL_REASONS + 1)

enum csv_col {
	COL_SEQ, COL_TIME, COL_WINDOW, COL_KIND, COL_NAME, COL_ID,
	COL_TOTAL,
	COL_RECENT = COL_TOTAL + CSV_COUNTERS,
	COL_SENT_PER_S = COL_RECENT + CSV_COUNTERS,
	COL_DELIVERED_PER_S, COL_ERROR_RATE, COL_ERROR_RATE_RECENT,
	COL_BREAKER, COL_HEALTHY, COL_WORKER,
	COL_PERIOD, COL_COUNT, COL_MIN, COL_MAX, COL_MEAN, COL_STDDEV,
	COL_P50, COL_P90, COL_P95, COL_P99, COL_P999,
	COL_QUEUE_CURRENT, COL_QUEUE_MAX, COL_QUEUE_TREND, COL_VALUE,
	CSV_COLS
};

static const char *const csv_counter_names[] = {
	"sent", "delivered", "failed", "retried", "rejected",
	"dl_unreachable", "dl_circuit_open", "dl_backpressure", "dl_timeout",
	"dl_handler_failed", "dl_retries_exhausted", "dl_shutdown",
	"dl_remote", "dl_overload", "dl_parked",
	"transitions",
};
_Static_assert(sizeof(csv_counter_names) / sizeof(csv_counter_names[0]) ==
	       CSV_COUNTERS, "a counter column without a name");

static const char *const csv_tail_names[] = {
	"sent_per_s", "delivered_per_s", "error_rate", "error_rate_recent",
	"breaker", "healthy", "worker",
	"period", "count", "min_ns", "max_ns", "mean_ns", "stddev_ns",
	"p50_ns", "p90_ns", "p95_ns", "p99_ns", "p999_ns",
	"queue_current", "queue_max", "queue_trend", "value",
};
_Static_assert(sizeof(csv_tail_names) / sizeof(csv_tail_names[0]) ==
	       CSV_COLS - COL_SENT_PER_S, "a column without a name");

/* One row: cell text, empty where NULL. Numbers live in num. */
struct csv_row {
	const char *cell[CSV_COLS];
	char num[CSV_COLS][40];
};

static void csv_row_init(struct csv_row *r, const sy_snapshot *snap,
			 const char *kind)
{
	memset(r->cell, 0, sizeof(r->cell));
	snprintf(r->num[COL_SEQ], sizeof(r->num[0]), "%" PRIu64,
		 sy_snapshot_seq(snap));
	snprintf(r->num[COL_TIME], sizeof(r->num[0]), "%" PRIu64,
		 sy_snapshot_time_ns(snap));
	snprintf(r->num[COL_WINDOW], sizeof(r->num[0]), "%" PRIu64,
		 sy_snapshot_window_ns(snap));
	r->cell[COL_SEQ] = r->num[COL_SEQ];
	r->cell[COL_TIME] = r->num[COL_TIME];
	r->cell[COL_WINDOW] = r->num[COL_WINDOW];
	r->cell[COL_KIND] = kind;
}

static void csv_u64(struct csv_row *r, unsigned col, uint64_t v)
{
	snprintf(r->num[col], sizeof(r->num[col]), "%" PRIu64, v);
	r->cell[col] = r->num[col];
}

static void csv_double(struct csv_row *r, unsigned col, double v)
{
	fmt_double(r->num[col], sizeof(r->num[col]), v, false);
	r->cell[col] = r->num[col];
}

static void csv_field(struct out *o, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	if (!strpbrk(str, ",\"\r\n")) {
		while (*s) {
			size_t n = utf8_len(s);

			if (n)
				put(o, (const char *)s, n);
			else
				puts_(o, replacement);
			s += n ? n : 1;
		}
		return;
	}
	putc_(o, '"');
	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0)
			puts_(o, replacement);
		else if (*s == '"')
			puts_(o, "\"\"");
		else
			put(o, (const char *)s, n);
		s += n ? n : 1;
	}
	putc_(o, '"');
}

static void csv_emit(struct out *o, const struct csv_row *r)
{
	for (unsigned c = 0; c < CSV_COLS; c++) {
		if (c)
			putc_(o, ',');
		if (r->cell[c])
			csv_field(o, r->cell[c]);
	}
	puts_(o, "\r\n");
}

static void csv_counters(struct csv_row *r, unsigned col,
			 const struct sy_counters *c)
{
	csv_u64(r, col + 0, c->sent);
	csv_u64(r, col + 1, c->delivered);
	csv_u64(r, col + 2, c->failed);
	csv_u64(r, col + 3, c->retried);
	csv_u64(r, col + 4, c->rejected);
	for (unsigned i = 0; i < SY_DL_REASONS; i++)
		csv_u64(r, col + 5 + i, c->dead_lettered[i]);
	csv_u64(r, col + 5 + SY_DL_REASONS, c->transitions);
}

static void csv_header(struct out *o)
{
	puts_(o, "seq,time_ns,window_ns,kind,name,id");
	for (unsigned i = 0; i < CSV_COUNTERS; i++)
		putf(o, ",%s", csv_counter_names[i]);
	for (unsigned i = 0; i < CSV_COUNTERS; i++)
		putf(o, ",recent_%s", csv_counter_names[i]);
	for (unsigned i = 0; i < CSV_COLS - COL_SENT_PER_S; i++)
		putf(o, ",%s", csv_tail_names[i]);
	puts_(o, "\r\n");
}

/* The histogram columns of @p r from @p h. */
static void csv_summary(struct csv_row *r, const struct sy_hist_summary *h)
{
	csv_u64(r, COL_COUNT, h->count);
	csv_u64(r, COL_MIN, h->min);
	csv_u64(r, COL_MAX, h->max);
	csv_double(r, COL_MEAN, h->mean);
	csv_double(r, COL_STDDEV, h->stddev);
	csv_u64(r, COL_P50, h->p50);
	csv_u64(r, COL_P90, h->p90);
	csv_u64(r, COL_P95, h->p95);
	csv_u64(r, COL_P99, h->p99);
	csv_u64(r, COL_P999, h->p999);
}

/* Rows of kind "nats", each with its number in the value column: the
 * state (1 for the one it is in, as in Prometheus), each counter; then the
 * acknowledgement latency as a "hist" row. */
static void csv_nats(struct out *o, const sy_snapshot *snap)
{
	struct sy_nats_stats st;
	struct csv_row r;

	if (!read_nats(snap, &st))
		return;
	for (unsigned i = 1; i < sizeof(nats_state_names) /
				 sizeof(nats_state_names[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "state_%s", nats_state_names[i]);
		csv_row_init(&r, snap, "nats");
		r.cell[COL_NAME] = name;
		csv_u64(&r, COL_VALUE, (unsigned)st.state == i);
		csv_emit(o, &r);
	}
	for (size_t i = 0; i < NATS_FIELDS; i++) {
		csv_row_init(&r, snap, "nats");
		r.cell[COL_NAME] = nats_fields[i].name;
		csv_u64(&r, COL_VALUE, u64_at(&st, nats_fields[i].offset));
		csv_emit(o, &r);
	}
	csv_row_init(&r, snap, "hist");
	r.cell[COL_NAME] = "nats_ack_latency";
	r.cell[COL_PERIOD] = "total";
	csv_summary(&r, &st.ack_latency);
	csv_emit(o, &r);
}

static int format_csv(const sy_snapshot *snap, struct out *o)
{
	struct csv_row r;
	unsigned nw;
	int rc;

	csv_header(o);
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		unsigned n = sy_snapshot_count(snap, (enum sy_series_kind)k);

		for (unsigned i = 0; i < n; i++) {
			const struct sy_series *s =
				sy_snapshot_series(snap, (enum sy_series_kind)k, i);

			csv_row_init(&r, snap, kind_names[k]);
			r.cell[COL_NAME] = series_name(s);
			csv_u64(&r, COL_ID, s->id);
			csv_counters(&r, COL_TOTAL, &s->total);
			csv_counters(&r, COL_RECENT, &s->recent);
			csv_double(&r, COL_SENT_PER_S, s->sent_per_s);
			csv_double(&r, COL_DELIVERED_PER_S, s->delivered_per_s);
			csv_double(&r, COL_ERROR_RATE, s->error_rate);
			csv_double(&r, COL_ERROR_RATE_RECENT, s->error_rate_recent);
			if (s->kind == SY_SERIES_SERVER) {
				r.cell[COL_BREAKER] = breaker_name(s->breaker);
				r.cell[COL_HEALTHY] = s->healthy ? "1" : "0";
				csv_u64(&r, COL_WORKER, s->worker);
			}
			csv_emit(o, &r);
		}
	}
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		for (int recent = 0; recent < 2; recent++) {
			struct sy_hist_summary h;

			if ((rc = read_hist(snap, k, recent, &h)) < 0)
				return rc;
			csv_row_init(&r, snap, "hist");
			r.cell[COL_NAME] = hist_names[k];
			r.cell[COL_PERIOD] = recent ? "recent" : "total";
			csv_summary(&r, &h);
			csv_emit(o, &r);
		}
	}
	nw = sy_snapshot_workers(snap);
	for (unsigned w = 0; w < nw; w++) {
		struct sy_queue_depth q;

		if ((rc = sy_snapshot_queue(snap, w, &q)) < 0)
			return rc;
		csv_row_init(&r, snap, "queue");
		csv_u64(&r, COL_ID, w);
		csv_u64(&r, COL_QUEUE_CURRENT, q.current);
		csv_u64(&r, COL_QUEUE_MAX, q.max);
		csv_double(&r, COL_QUEUE_TREND, q.trend);
		csv_emit(o, &r);
	}
	csv_nats(o, snap);
	return 0;
}

/* ---- Prometheus text exposition format 0.0.4 ---- */

static const char *prom_escape(unsigned char c, char buf[8])
{
	(void)buf;
	switch (c) {
	case '\\': return "\\\\";
	case '"': return "\\\"";
	case '\n': return "\\n";
	default: return NULL;
	}
}

/* A label value: \, " and newline escaped; invalid UTF-8 replaced. */
static void prom_label(struct out *o, const char *str)
{
	put_quoted(o, str, prom_escape, replacement);
}

static void prom_family(struct out *o, const char *name, const char *type,
			const char *help)
{
	putf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * metric{kind="...",name="..."[,id="..."]  (the caller closes the braces).
 * Server and route series carry their id: two names that differ only in
 * bytes that are not UTF-8 ("a\xff", "a\xfe") both become "a\uFFFD"
 * here, and the id keeps their series apart. The engine and the
 * transports have fixed, distinct names.
 */
static void prom_series_labels(struct out *o, const char *metric,
			       unsigned kind, const struct sy_series *s)
{
	putf(o, "%s{kind=\"%s\",name=", metric, kind_names[kind]);
	prom_label(o, series_name(s));
	if (kind == SY_SERIES_SERVER || kind == SY_SERIES_ROUTE)
		putf(o, ",id=\"%" PRIu32 "\"", s->id);
}

/* A counter family: one sample per series, from its totals. */
struct prom_counter {
	const char *name;
	const char *help;
	size_t offset;          /* of the uint64_t in struct sy_counters */
};

#define PROM_COUNTER(field, help) \
	{ "switchyard_messages_" #field "_total", help, \
	  offsetof(struct sy_counters, field) }
static const struct prom_counter prom_counters[] = {
	PROM_COUNTER(sent, "Messages accepted for the series since the start."),
	PROM_COUNTER(delivered, "Handler runs that succeeded."),
	PROM_COUNTER(failed, "Handler runs that returned an error."),
	PROM_COUNTER(retried, "Retries sent."),
	PROM_COUNTER(rejected, "Sends refused."),
};
#undef PROM_COUNTER

static void prom_each_series(struct out *o, const sy_snapshot *snap,
			     const struct prom_counter *pc)
{
	prom_family(o, pc->name, "counter", pc->help);
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		unsigned n = sy_snapshot_count(snap, (enum sy_series_kind)k);

		for (unsigned i = 0; i < n; i++) {
			const struct sy_series *s =
				sy_snapshot_series(snap, (enum sy_series_kind)k, i);

			prom_series_labels(o, pc->name, k, s);
			putf(o, "} %" PRIu64 "\n",
			     u64_at(&s->total, pc->offset));
		}
	}
}

/* Fixed bucket bounds for every latency histogram, in seconds and ns. */
static const struct {
	const char *le;
	uint64_t ns;
} prom_buckets[] = {
	{ "1e-06", 1000u }, { "2.5e-06", 2500u }, { "5e-06", 5000u },
	{ "1e-05", 10000u }, { "2.5e-05", 25000u }, { "5e-05", 50000u },
	{ "0.0001", 100000u }, { "0.00025", 250000u }, { "0.0005", 500000u },
	{ "0.001", 1000000u }, { "0.0025", 2500000u }, { "0.005", 5000000u },
	{ "0.01", 10000000u }, { "0.025", 25000000u }, { "0.05", 50000000u },
	{ "0.1", 100000000u }, { "0.25", 250000000u }, { "0.5", 500000000u },
	{ "1", 1000000000u }, { "2.5", 2500000000u }, { "5", 5000000000u },
	{ "10", 10000000000u },
};

static const char *const hist_help[SY_HIST_KINDS] = {
	"Send call to handler start, sampled, since the start.",
	"Handler run time, sampled, since the start.",
	"Request to reply received, sampled, since the start.",
	"Send call to the worker taking the message off its ring, sampled, since the start.",
};

static int prom_hist(struct out *o, const sy_snapshot *snap, unsigned k)
{
	struct sy_hist_summary h;
	char name[64];
	uint64_t prev = 0;
	int rc;

	if ((rc = read_hist(snap, k, false, &h)) < 0)
		return rc;
	snprintf(name, sizeof(name), "switchyard_%s_seconds", hist_names[k]);
	prom_family(o, name, "histogram", hist_help[k]);
	for (size_t b = 0; b < sizeof(prom_buckets) / sizeof(prom_buckets[0]); b++) {
		uint64_t v = sy_snapshot_hist_count_le(snap, (enum sy_hist_kind)k,
						       prom_buckets[b].ns);

		/* Buckets are cumulative: never below the last, never above
		 * the count, even if a sample landed between the reads. */
		v = v < prev ? prev : v > h.count ? h.count : v;
		putf(o, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
		     prom_buckets[b].le, v);
		prev = v;
	}
	putf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum ", name, h.count,
	     name);
	put_double(o, clamp(h.mean) * (double)h.count / 1e9);
	putf(o, "\n%s_count %" PRIu64 "\n", name, h.count);
	return 0;
}

/* A family of one or more samples per server, each written by @p sample. */
static void prom_servers(struct out *o, const sy_snapshot *snap,
			 const char *metric, const char *type, const char *help,
			 void (*sample)(struct out *o, const char *metric,
					const struct sy_series *s))
{
	unsigned n = sy_snapshot_count(snap, SY_SERIES_SERVER);

	prom_family(o, metric, type, help);
	for (unsigned i = 0; i < n; i++)
		sample(o, metric, sy_snapshot_series(snap, SY_SERIES_SERVER, i));
}

/* A server's sample up to its name and id labels. */
static void prom_server_name(struct out *o, const char *metric,
			     const struct sy_series *s)
{
	puts_(o, metric);
	puts_(o, "{name=");
	prom_label(o, series_name(s));
	putf(o, ",id=\"%" PRIu32 "\"", s->id);
}

static void transitions_sample(struct out *o, const char *metric,
			       const struct sy_series *s)
{
	prom_server_name(o, metric, s);
	putf(o, "} %" PRIu64 "\n", s->total.transitions);
}

static void breaker_sample(struct out *o, const char *metric,
			   const struct sy_series *s)
{
	for (unsigned b = 0; b < BREAKER_STATES; b++) {
		prom_server_name(o, metric, s);
		putf(o, ",state=\"%s\"} %d\n", breaker_names[b],
		     (unsigned)s->breaker == b);
	}
}

static void healthy_sample(struct out *o, const char *metric,
			   const struct sy_series *s)
{
	prom_server_name(o, metric, s);
	putf(o, "} %d\n", s->healthy ? 1 : 0);
}

/* The NATS families: the state (1 for the one it is in), each counter or
 * gauge, and the acknowledgement latency as a summary. */
static void prom_nats(struct out *o, const sy_snapshot *snap)
{
	static const struct { const char *q; size_t offset; } quantiles[] = {
		{ "0.5", offsetof(struct sy_hist_summary, p50) },
		{ "0.9", offsetof(struct sy_hist_summary, p90) },
		{ "0.95", offsetof(struct sy_hist_summary, p95) },
		{ "0.99", offsetof(struct sy_hist_summary, p99) },
		{ "0.999", offsetof(struct sy_hist_summary, p999) },
	};
	const char *lat = "switchyard_nats_ack_latency_seconds";
	struct sy_nats_stats st;
	char name[64];

	if (!read_nats(snap, &st))
		return;
	prom_family(o, "switchyard_nats_state", "gauge",
		    "The NATS connection's state: 1 for the state it is in.");
	for (unsigned i = 1; i < sizeof(nats_state_names) /
				 sizeof(nats_state_names[0]); i++)
		putf(o, "switchyard_nats_state{state=\"%s\"} %d\n",
		     nats_state_names[i], (unsigned)st.state == i);
	for (size_t i = 0; i < NATS_FIELDS; i++) {
		const struct nats_field *f = &nats_fields[i];

		snprintf(name, sizeof(name), "switchyard_nats_%s%s", f->name,
			 f->gauge ? "" : "_total");
		prom_family(o, name, f->gauge ? "gauge" : "counter", f->help);
		putf(o, "%s %" PRIu64 "\n", name, u64_at(&st, f->offset));
	}
	prom_family(o, lat, "summary",
		    "Remote message publish to acknowledgement, since the start.");
	for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++) {
		putf(o, "%s{quantile=\"%s\"} ", lat, quantiles[i].q);
		put_double(o, (double)u64_at(&st.ack_latency,
					     quantiles[i].offset) / 1e9);
		putc_(o, '\n');
	}
	putf(o, "%s_sum ", lat);
	put_double(o, clamp(st.ack_latency.mean) *
		      (double)st.ack_latency.count / 1e9);
	putf(o, "\n%s_count %" PRIu64 "\n", lat, st.ack_latency.count);
}

static int format_prometheus(const sy_snapshot *snap, struct out *o)
{
	unsigned nw = sy_snapshot_workers(snap);
	struct sy_queue_depth q;
	int rc;

	prom_family(o, "switchyard_snapshot_seq", "gauge",
		    "Sequence number of the exported snapshot (1 for the first).");
	putf(o, "switchyard_snapshot_seq %" PRIu64 "\n", sy_snapshot_seq(snap));
	prom_family(o, "switchyard_snapshot_window_seconds", "gauge",
		    "Length of the snapshot's last window.");
	puts_(o, "switchyard_snapshot_window_seconds ");
	put_double(o, (double)sy_snapshot_window_ns(snap) / 1e9);
	putc_(o, '\n');

	for (size_t c = 0; c < sizeof(prom_counters) / sizeof(prom_counters[0]); c++)
		prom_each_series(o, snap, &prom_counters[c]);

	prom_family(o, "switchyard_messages_dead_lettered_total", "counter",
		    "Messages dead-lettered, by reason.");
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		unsigned n = sy_snapshot_count(snap, (enum sy_series_kind)k);

		for (unsigned i = 0; i < n; i++) {
			const struct sy_series *s =
				sy_snapshot_series(snap, (enum sy_series_kind)k, i);

			for (unsigned r = 0; r < SY_DL_REASONS; r++) {
				prom_series_labels(o,
					"switchyard_messages_dead_lettered_total", k, s);
				putf(o, ",reason=\"%s\"} %" PRIu64 "\n",
				     reason_names[r], s->total.dead_lettered[r]);
			}
		}
	}

	prom_servers(o, snap, "switchyard_breaker_transitions_total", "counter",
		     "Circuit breaker transitions of a server.",
		     transitions_sample);
	prom_servers(o, snap, "switchyard_breaker_state", "gauge",
		     "A server's circuit breaker state: 1 for the state it is in.",
		     breaker_sample);
	prom_servers(o, snap, "switchyard_server_healthy", "gauge",
		     "1 when the server's health probe last marked it up (or it has none).",
		     healthy_sample);

	for (unsigned f = 0; f < 3; f++) {
		static const char *const family[3][2] = {
			{ "switchyard_queue_depth",
			  "Ring entries waiting in a worker's inbox at the snapshot (a burst is one)." },
			{ "switchyard_queue_depth_max",
			  "Highest inbox depth seen in the retained windows." },
			{ "switchyard_queue_depth_trend",
			  "Least-squares slope of the inbox depth, ring entries per window." },
		};

		prom_family(o, family[f][0], "gauge", family[f][1]);
		for (unsigned w = 0; w < nw; w++) {
			if ((rc = sy_snapshot_queue(snap, w, &q)) < 0)
				return rc;
			putf(o, "%s{worker=\"%u\"} ", family[f][0], w);
			if (f == 2)
				put_double(o, q.trend);
			else
				putf(o, "%" PRIu64, f == 0 ? q.current : q.max);
			putc_(o, '\n');
		}
	}

	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		if ((rc = prom_hist(o, snap, k)) < 0)
			return rc;
	prom_nats(o, snap);
	return 0;
}

/* ---- Erlang terms (file:consult/1) ---- */

static void erl_double(struct out *o, double v)
{
	char s[40];

	fmt_double(s, sizeof(s), v, true);
	puts_(o, s);
}

/* A binary <<"...">>: printable ASCII as is, every other byte in octal. */
static void erl_binary(struct out *o, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	puts_(o, "<<\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putf(o, "\\%c", *s);
		else if (*s >= 0x20 && *s < 0x7f)
			putc_(o, (char)*s);
		else
			putf(o, "\\%03o", *s);
	}
	puts_(o, "\">>");
}

/* A counters map; @p in is the indentation of its continuation lines. */
static void erl_counters(struct out *o, const struct sy_counters *c,
			 const char *in)
{
	putf(o, "#{sent => %" PRIu64 ", delivered => %" PRIu64
	     ", failed => %" PRIu64 ", retried => %" PRIu64
	     ", rejected => %" PRIu64 ",\n%s  dead_lettered => #{",
	     c->sent, c->delivered, c->failed, c->retried, c->rejected, in);
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		putf(o, "%s%s => %" PRIu64, r ? ", " : "", reason_names[r],
		     c->dead_lettered[r]);
	putf(o, "},\n%s  transitions => %" PRIu64 "}", in, c->transitions);
}

/* The keys every series has, without the braces, each line after the
 * first indented by @p in. */
static void erl_series_body(struct out *o, const struct sy_series *s,
			    const char *in)
{
	puts_(o, "counters => ");
	erl_counters(o, &s->total, in);
	putf(o, ",\n%srecent => ", in);
	erl_counters(o, &s->recent, in);
	putf(o, ",\n%srates => #{sent_per_s => ", in);
	erl_double(o, s->sent_per_s);
	puts_(o, ", delivered_per_s => ");
	erl_double(o, s->delivered_per_s);
	putf(o, "},\n%serrors => #{total_count => %" PRIu64
	     ", recent_count => %" PRIu64 ", error_rate => ", in,
	     s->total.failed, s->recent.failed);
	erl_double(o, s->error_rate);
	puts_(o, ", recent_error_rate => ");
	erl_double(o, s->error_rate_recent);
	putc_(o, '}');
}

static void erl_series(struct out *o, const struct sy_series *s)
{
	static const char in[] = "     ";

	puts_(o, "#{name => ");
	erl_binary(o, series_name(s));
	putf(o, ", id => %" PRIu32 ",\n%s", s->id, in);
	erl_series_body(o, s, in);
	if (s->kind == SY_SERIES_SERVER)
		putf(o, ",\n%sbreaker => %s, healthy => %s, worker => %u", in,
		     breaker_name(s->breaker), s->healthy ? "true" : "false",
		     s->worker);
	putc_(o, '}');
}

/* A histogram summary in microseconds (floats). */
static void erl_summary(struct out *o, const struct sy_hist_summary *h)
{
	const struct {
		const char *key;
		double ns;
	} v[] = {
		{ "p50", (double)h->p50 }, { "p90", (double)h->p90 },
		{ "p95", (double)h->p95 }, { "p99", (double)h->p99 },
		{ "p999", (double)h->p999 }, { "min", (double)h->min },
		{ "max", (double)h->max }, { "mean", h->mean },
		{ "stddev", h->stddev },
	};

	putf(o, "#{count => %" PRIu64, h->count);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		putf(o, ", %s => ", v[i].key);
		erl_double(o, clamp(v[i].ns) / 1e3);
	}
	putc_(o, '}');
}

static void erl_list(struct out *o, const sy_snapshot *snap,
		     enum sy_series_kind k)
{
	unsigned n = sy_snapshot_count(snap, k);

	putf(o, ",\n  %s => [", kind_plurals[k]);
	for (unsigned i = 0; i < n; i++) {
		puts_(o, i ? ",\n   " : "\n   ");
		erl_series(o, sy_snapshot_series(snap, k, i));
	}
	putc_(o, ']');
}

static void erl_nats(struct out *o, const sy_snapshot *snap)
{
	struct sy_nats_stats st;

	if (!read_nats(snap, &st))
		return;
	putf(o, ",\n  nats => #{state => %s", nats_state_names[st.state]);
	for (size_t i = 0; i < NATS_FIELDS; i++)
		putf(o, ",%s%s => %" PRIu64, i % 4 ? " " : "\n    ",
		     nats_fields[i].name, u64_at(&st, nats_fields[i].offset));
	puts_(o, ",\n    ack_latency => ");
	erl_summary(o, &st.ack_latency);
	putc_(o, '}');
}

static int format_erlang(const sy_snapshot *snap, struct out *o)
{
	const struct sy_series *eng = NULL;
	struct sy_hist_summary h;
	int rc;

	putf(o, "#{seq => %" PRIu64 ", time_ns => %" PRIu64
	     ", window_ns => %" PRIu64 ",\n  ", sy_snapshot_seq(snap),
	     sy_snapshot_time_ns(snap), sy_snapshot_window_ns(snap));
	if (sy_snapshot_count(snap, SY_SERIES_ENGINE))
		eng = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	if (eng) {
		erl_series_body(o, eng, "  ");
	} else {
		static const struct sy_series none = { .kind = SY_SERIES_ENGINE };

		erl_series_body(o, &none, "  ");
	}
	/* latencies: send to handler start; the other kinds by name. */
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		if ((rc = read_hist(snap, k, false, &h)) < 0)
			return rc;
		putf(o, ",\n  %s => ", k == SY_HIST_LATENCY ? "latencies" :
		     hist_names[k]);
		erl_summary(o, &h);
	}
	put_queues(o, snap, ",\n  queues => [", ", ",
		   "#{worker => %u, current => %" PRIu64 ", max => %" PRIu64
		   ", trend => ", erl_double,
		   ", bp_threshold => %" PRIu64 "}");
	putc_(o, ']');
	erl_list(o, snap, SY_SERIES_SERVER);
	erl_list(o, snap, SY_SERIES_ROUTE);
	erl_list(o, snap, SY_SERIES_TRANSPORT);
	erl_nats(o, snap);
	puts_(o, "}.\n");
	return 0;
}

/* ---- aligned table ---- */

#define TABLE_MAX_COLS 16

/*
 * Rows of cells, rendered once every column's width is known. Columns whose
 * bit is set in text are left-aligned, the others right-aligned.
 */
struct table {
	unsigned ncols;
	unsigned text;
	unsigned ncells;
	struct out cells;       /* each cell's text and its NUL, in order */
	size_t width[TABLE_MAX_COLS];
};

static void table_init(struct table *t, unsigned ncols, unsigned text)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->text = text;
}

/* Columns a string takes on a terminal: one per UTF-8 sequence. */
static size_t display_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void table_cell(struct table *t, const char *s)
{
	unsigned col = t->ncells % t->ncols;
	size_t w = display_width(s);

	if (w > t->width[col])
		t->width[col] = w;
	put(&t->cells, s, strlen(s) + 1);
	t->ncells++;
}

static void table_cellf(struct table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void table_cellf(struct table *t, const char *fmt, ...)
{
	char s[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	table_cell(t, s);
}

/*
 * A name fit for a terminal: control characters and backslashes escaped
 * C-style, invalid UTF-8 replaced. The C1 controls (U+0080 to U+009F,
 * two bytes C2 80 to C2 9F) are escaped as well as the C0 ones: a terminal
 * may act on them (U+009B is CSI, which starts an escape sequence).
 */
static void table_name(struct table *t, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	struct out e = { 0 };

	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0)
			puts_(&e, replacement);
		else if (*s == '\\')
			puts_(&e, "\\\\");
		else if (*s == '\n')
			puts_(&e, "\\n");
		else if (*s == '\t')
			puts_(&e, "\\t");
		else if (*s < 0x20 || *s == 0x7f)
			putf(&e, "\\x%02x", *s);
		else if (n == 2 && s[0] == 0xc2 && s[1] <= 0x9f)
			putf(&e, "\\u%04x", s[1]);
		else
			put(&e, (const char *)s, n);
		s += n ? n : 1;
	}
	if (e.err)
		t->cells.err = e.err;
	else
		table_cell(t, e.buf ? e.buf : "");
	free(e.buf);
}

static void table_render(struct table *t, struct out *o)
{
	const char *cell = t->cells.buf;

	if (t->cells.err) {
		o->err = o->err ? o->err : t->cells.err;
		t->ncells = 0;
	}
	for (unsigned i = 0; i < t->ncells; i++) {
		unsigned col = i % t->ncols;
		size_t pad = t->width[col] - display_width(cell);
		bool left = t->text & (1u << col);
		bool last = col == t->ncols - 1;

		if (col)
			puts_(o, "  ");
		if (!left)
			putf(o, "%*s", (int)pad, "");
		puts_(o, cell);
		if (left && !last)
			putf(o, "%*s", (int)pad, "");
		if (last)
			putc_(o, '\n');
		cell += strlen(cell) + 1;
	}
	free(t->cells.buf);
	t->cells.buf = NULL;
}

static uint64_t dead_total(const struct sy_counters *c)
{
	uint64_t dead = 0;

	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		dead += c->dead_lettered[r];
	return dead;
}

/* Call @p row for each series of @p snap, kind by kind. */
static void each_series(const sy_snapshot *snap, struct table *t,
			void (*row)(struct table *t, unsigned kind,
				    const struct sy_series *s))
{
	for (unsigned k = 0; k < SY_SERIES_KINDS; k++) {
		unsigned n = sy_snapshot_count(snap, (enum sy_series_kind)k);

		for (unsigned i = 0; i < n; i++)
			row(t, k, sy_snapshot_series(snap,
						     (enum sy_series_kind)k, i));
	}
}

static void series_row(struct table *t, unsigned kind,
		       const struct sy_series *s)
{
	table_cell(t, kind_names[kind]);
	table_name(t, series_name(s));
	table_cellf(t, "%" PRIu32, s->id);
	table_cellf(t, "%" PRIu64, s->total.sent);
	table_cellf(t, "%" PRIu64, s->total.delivered);
	table_cellf(t, "%" PRIu64, s->total.failed);
	table_cellf(t, "%" PRIu64, s->total.retried);
	table_cellf(t, "%" PRIu64, s->total.rejected);
	table_cellf(t, "%" PRIu64, dead_total(&s->total));
	table_cellf(t, "%.1f", clamp(s->sent_per_s));
	table_cellf(t, "%.1f", clamp(s->delivered_per_s));
	table_cellf(t, "%.2f%%", clamp(s->error_rate) * 100);
	table_cellf(t, "%.2f%%", clamp(s->error_rate_recent) * 100);
	if (s->kind == SY_SERIES_SERVER) {
		table_cell(t, breaker_name(s->breaker));
		table_cell(t, s->healthy ? "yes" : "no");
		table_cellf(t, "%u", s->worker);
	} else {
		table_cell(t, "-");
		table_cell(t, "-");
		table_cell(t, "-");
	}
}

/* Dead letters by reason, for a series that has any. */
static void dead_letter_row(struct table *t, unsigned kind,
			    const struct sy_series *s)
{
	if (!dead_total(&s->total))
		return;
	table_cell(t, kind_names[kind]);
	table_name(t, series_name(s));
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		table_cellf(t, "%" PRIu64, s->total.dead_lettered[r]);
}

static void table_series(struct out *o, const sy_snapshot *snap)
{
	static const char *const head[] = {
		"KIND", "NAME", "ID", "SENT", "DELIVERED", "FAILED", "RETRIED",
		"REJECTED", "DEAD", "SENT/S", "DELIVERED/S", "ERRORS",
		"RECENT ERRORS", "BREAKER", "HEALTHY", "WORKER",
	};
	const unsigned ncols = sizeof(head) / sizeof(head[0]);
	struct table t;

	_Static_assert(sizeof(head) / sizeof(head[0]) <= TABLE_MAX_COLS,
		       "table too wide");
	table_init(&t, ncols, 1u << 0 | 1u << 1 | 1u << 13 | 1u << 14);
	for (unsigned c = 0; c < ncols; c++)
		table_cell(&t, head[c]);
	each_series(snap, &t, series_row);
	table_render(&t, o);
}

/* Dead letters by reason, for the series that have any. */
static void table_dead_letters(struct out *o, const sy_snapshot *snap)
{
	struct table t;

	table_init(&t, 2 + SY_DL_REASONS, 1u << 0 | 1u << 1);
	table_cell(&t, "DEAD LETTERS");
	table_cell(&t, "NAME");
	for (unsigned r = 0; r < SY_DL_REASONS; r++) {
		char head[32];
		size_t i;

		for (i = 0; reason_names[r][i] && i < sizeof(head) - 1; i++)
			head[i] = (char)toupper((unsigned char)reason_names[r][i]);
		head[i] = '\0';
		table_cell(&t, head);
	}
	each_series(snap, &t, dead_letter_row);
	if (t.ncells > t.ncols) {
		putc_(o, '\n');
		table_render(&t, o);
	}
	free(t.cells.buf);
}

static int table_hists(struct out *o, const sy_snapshot *snap)
{
	static const char *const head[] = {
		"HISTOGRAM (us)", "PERIOD", "COUNT", "MIN", "MEAN", "STDDEV",
		"P50", "P90", "P95", "P99", "P99.9", "MAX",
	};
	const unsigned ncols = sizeof(head) / sizeof(head[0]);
	struct sy_hist_summary h;
	struct table t;
	int rc;

	table_init(&t, ncols, 1u << 0 | 1u << 1);
	for (unsigned c = 0; c < ncols; c++)
		table_cell(&t, head[c]);
	for (unsigned k = 0; k < SY_HIST_KINDS; k++) {
		for (int recent = 0; recent < 2; recent++) {
			if ((rc = read_hist(snap, k, recent, &h)) < 0) {
				free(t.cells.buf);
				return rc;
			}
			table_cell(&t, hist_names[k]);
			table_cell(&t, recent ? "recent" : "total");
			table_cellf(&t, "%" PRIu64, h.count);
			table_cellf(&t, "%.3f", (double)h.min / 1e3);
			table_cellf(&t, "%.3f", clamp(h.mean) / 1e3);
			table_cellf(&t, "%.3f", clamp(h.stddev) / 1e3);
			table_cellf(&t, "%.3f", (double)h.p50 / 1e3);
			table_cellf(&t, "%.3f", (double)h.p90 / 1e3);
			table_cellf(&t, "%.3f", (double)h.p95 / 1e3);
			table_cellf(&t, "%.3f", (double)h.p99 / 1e3);
			table_cellf(&t, "%.3f", (double)h.p999 / 1e3);
			table_cellf(&t, "%.3f", (double)h.max / 1e3);
		}
	}
	putc_(o, '\n');
	table_render(&t, o);
	return 0;
}

static int table_queues(struct out *o, const sy_snapshot *snap)
{
	unsigned nw = sy_snapshot_workers(snap);
	struct sy_queue_depth q;
	struct table t;
	int rc;

	table_init(&t, 4, 0);
	table_cell(&t, "WORKER");
	table_cell(&t, "QUEUE");
	table_cell(&t, "MAX");
	table_cell(&t, "TREND");
	for (unsigned w = 0; w < nw; w++) {
		if ((rc = sy_snapshot_queue(snap, w, &q)) < 0) {
			free(t.cells.buf);
			return rc;
		}
		table_cellf(&t, "%u", w);
		table_cellf(&t, "%" PRIu64, q.current);
		table_cellf(&t, "%" PRIu64, q.max);
		table_cellf(&t, "%+.2f", clamp(q.trend));
	}
	putc_(o, '\n');
	table_render(&t, o);
	return 0;
}

/* The NATS counters, and the acknowledgement latency in microseconds. */
static void table_nats(struct out *o, const sy_snapshot *snap)
{
	struct sy_nats_stats st;
	const struct sy_hist_summary *h = &st.ack_latency;
	struct table t;

	if (!read_nats(snap, &st))
		return;
	table_init(&t, 2, 1u << 0);
	table_cell(&t, "NATS");
	table_cell(&t, nats_state_names[st.state]);
	for (size_t i = 0; i < NATS_FIELDS; i++) {
		table_cell(&t, nats_fields[i].name);
		table_cellf(&t, "%" PRIu64, u64_at(&st, nats_fields[i].offset));
	}
	table_cell(&t, "ack latency (us)");
	table_cellf(&t, "n %" PRIu64 ", p50 %.3f, p99 %.3f, max %.3f",
		    h->count, (double)h->p50 / 1e3, (double)h->p99 / 1e3,
		    (double)h->max / 1e3);
	putc_(o, '\n');
	table_render(&t, o);
}

static int format_table(const sy_snapshot *snap, struct out *o)
{
	int rc;

	putf(o, "switchyard snapshot %" PRIu64 " at %.6f s, window %.3f ms\n\n",
	     sy_snapshot_seq(snap), (double)sy_snapshot_time_ns(snap) / 1e9,
	     (double)sy_snapshot_window_ns(snap) / 1e6);
	table_series(o, snap);
	table_dead_letters(o, snap);
	if ((rc = table_hists(o, snap)) < 0)
		return rc;
	if ((rc = table_queues(o, snap)) < 0)
		return rc;
	table_nats(o, snap);
	return 0;
}

/* ---- entry point ---- */

/*
 * The buffer is NUL-terminated; *len (when @p len is not NULL) excludes the
 * NUL. It comes from malloc(): free() it. On failure *buf is left alone.
 */
int sy__snapshot_format(const sy_snapshot *snap, enum sy_format fmt,
			char **buf, size_t *len)
{
	struct out o = { 0 };
	int rc;

	switch (fmt) {
	case SY_FORMAT_JSON: rc = format_json(snap, &o); break;
	case SY_FORMAT_CSV: rc = format_csv(snap, &o); break;
	case SY_FORMAT_PROMETHEUS: rc = format_prometheus(snap, &o); break;
	case SY_FORMAT_ERLANG: rc = format_erlang(snap, &o); break;
	case SY_FORMAT_TABLE: rc = format_table(snap, &o); break;
	default: return -EINVAL;
	}
	if (!rc)
		rc = o.err;
	if (rc) {
		free(o.buf);
		return rc;
	}
	*buf = o.buf;
	if (len)
		*len = o.len;
	return 0;
}
