/*
 * Fuzz target: the export writers' escaping. Servers and routes with fuzzed
 * names (any bytes but NUL, 1 to 63 of them) and breaker states go into an
 * engine; a snapshot of it is rendered in every format of
 * sy_snapshot_format() and each rendering is checked by its format's own
 * rules (check.h): JSON, CSV, Prometheus text and Erlang terms must parse
 * strictly and carry every series name back, decoded, in the documented
 * order (invalid UTF-8 replaced by U+FFFD, except in Erlang, which keeps
 * the bytes); the table must hold no control character (C0 or C1) and
 * show every name escaped as documented. Names that differ only in bytes
 * that are not UTF-8 ("a\xff", "a\xfe") share a label value in Prometheus,
 * where the id label keeps their series apart: the checker refuses a
 * series exported twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz.h"
#include "switchyard.h"

#define SERVERS_MAX 6
#define ROUTES_MAX 6
#define NAME_MAX_BYTES 63
#define SERIES_MAX (1 + SERVERS_MAX + ROUTES_MAX + 3)

static sy_engine *eng;

static int handler(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)msg;
	(void)ctx;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sy_config cfg;

	(void)argc;
	(void)argv;
	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	cfg.max_producers = 2;
	cfg.max_servers = 16;
	cfg.max_routes = 16;
	cfg.ring_size = 16;
	if (sy_engine_create(&cfg, &eng) != 0)
		fuzz_fail("engine: %s", sy_last_error());
	return 0;
}

/* A named series of the engine, for the expected lists. */
struct named {
	uint32_t id;
	char name[NAME_MAX_BYTES + 1];
};

struct expected {
	struct named servers[SERVERS_MAX], routes[ROUTES_MAX];
	unsigned nservers, nroutes;
};

static int by_id(const void *a, const void *b)
{
	const struct named *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The names a format carries, in order; @p raw keeps the bytes. */
static unsigned expected_names(const struct expected *x, bool engine,
			       bool raw, char out[][3 * NAME_MAX_BYTES + 1])
{
	static const char *const transports[] = { "producer", "worker", "reply" };
	unsigned n = 0;

	if (engine)
		strcpy(out[n++], "engine");
	for (unsigned i = 0; i < x->nservers; i++, n++)
		raw ? (void)strcpy(out[n], x->servers[i].name) :
		      check_utf8_repair(x->servers[i].name, out[n]);
	for (unsigned i = 0; i < x->nroutes; i++, n++)
		raw ? (void)strcpy(out[n], x->routes[i].name) :
		      check_utf8_repair(x->routes[i].name, out[n]);
	for (unsigned i = 0; i < 3; i++)
		strcpy(out[n++], transports[i]);
	return n;
}

static void same_names(const char *fmt, const struct check_names *got,
		       char want[][3 * NAME_MAX_BYTES + 1], unsigned n)
{
	fuzz_check(!got->overflow && got->n == n,
		   "%s: %zu names, expected %u", fmt, got->n, n);
	for (unsigned i = 0; i < n; i++)
		fuzz_check(strcmp(got->v[i], want[i]) == 0,
			   "%s: name %u is \"%s\", expected \"%s\"", fmt, i,
			   got->v[i], want[i]);
}

/* The table's escaping of a name, as docs/metrics.md states it, into
 * @p out (room for 4 * NAME_MAX_BYTES + 1: no byte takes more than 4). */
static void table_escape(const char *name, char *out)
{
	char repaired[3 * NAME_MAX_BYTES + 1];
	size_t o = 0;

	check_utf8_repair(name, repaired);
	for (const unsigned char *s = (const unsigned char *)repaired; *s; s++) {
		if (*s == '\\')
			o += (size_t)sprintf(out + o, "\\\\");
		else if (*s == '\n')
			o += (size_t)sprintf(out + o, "\\n");
		else if (*s == '\t')
			o += (size_t)sprintf(out + o, "\\t");
		else if (*s < 0x20 || *s == 0x7f)
			o += (size_t)sprintf(out + o, "\\x%02x", *s);
		else if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
			o += (size_t)sprintf(out + o, "\\u%04x", *++s);
		else
			out[o++] = (char)*s;
	}
	out[o] = '\0';
}

static void check_formats(const struct expected *x)
{
	static char want[SERIES_MAX][3 * NAME_MAX_BYTES + 1];
	char shown[4 * NAME_MAX_BYTES + 1];
	struct check_names got = { 0 };
	char why[CHECK_WHY_MAX];
	sy_snapshot *snap;
	unsigned n;
	size_t len;
	char *doc;

	fuzz_check(sy_metrics_refresh(eng) == 0, "refresh failed");
	snap = sy_metrics_snapshot(eng);
	fuzz_check(snap != NULL, "no snapshot after a refresh");

	fuzz_check(sy_snapshot_format(snap, SY_FORMAT_JSON, &doc, &len) == 0,
		   "JSON export failed");
	fuzz_check(strlen(doc) == len, "JSON: length %zu, text %zu", len,
		   strlen(doc));
	fuzz_check(check_json(doc, len, &got, why), "JSON: %s", why);
	n = expected_names(x, true, false, want);
	same_names("JSON", &got, want, n);
	check_names_clear(&got);
	free(doc);

	fuzz_check(sy_snapshot_format(snap, SY_FORMAT_CSV, &doc, &len) == 0,
		   "CSV export failed");
	fuzz_check(check_csv(doc, len, &got, why), "CSV: %s", why);
	same_names("CSV", &got, want, n);
	check_names_clear(&got);
	free(doc);

	fuzz_check(sy_snapshot_format(snap, SY_FORMAT_PROMETHEUS, &doc, &len) == 0,
		   "Prometheus export failed");
	fuzz_check(check_prometheus(doc, len, &got, why), "Prometheus: %s", why);
	same_names("Prometheus", &got, want, n);
	check_names_clear(&got);
	free(doc);

	fuzz_check(sy_snapshot_format(snap, SY_FORMAT_ERLANG, &doc, &len) == 0,
		   "Erlang export failed");
	fuzz_check(check_erlang(doc, len, &got, why), "Erlang: %s", why);
	n = expected_names(x, false, true, want);
	same_names("Erlang", &got, want, n);
	check_names_clear(&got);
	free(doc);

	fuzz_check(sy_snapshot_format(snap, SY_FORMAT_TABLE, &doc, &len) == 0,
		   "table export failed");
	fuzz_check(check_table(doc, len, why), "table: %s", why);
	for (unsigned i = 0; i < x->nservers + x->nroutes; i++) {
		const char *name = i < x->nservers ? x->servers[i].name :
				   x->routes[i - x->nservers].name;

		table_escape(name, shown);
		fuzz_check(strstr(doc, shown) != NULL,
			   "table: the name \"%s\" is not shown as \"%s\"",
			   name, shown);
	}
	free(doc);

	fuzz_check(sy_snapshot_format(snap, (enum sy_format)99, &doc, &len) ==
		   -EINVAL, "an unknown format was not refused");
	sy_snapshot_release(snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum sy_breaker_state forced[] = {
		SY_BREAKER_CLOSED, SY_BREAKER_FORCED_OPEN, SY_BREAKER_DISABLED,
	};
	struct fuzz_in in = { data, size };
	struct sy_breaker_opts breaker = { .consecutive_failures = 3 };
	struct expected x = { .nservers = 0 };
	char name[NAME_MAX_BYTES + 1];
	unsigned want_servers = fuzz_pick(&in, SERVERS_MAX + 1);
	unsigned want_routes = fuzz_pick(&in, ROUTES_MAX + 1);
	uint32_t id;

	for (unsigned i = 0; i < want_servers; i++) {
		uint8_t how = fuzz_u8(&in);
		struct sy_server_opts opts = {
			.worker = -1, .breaker = how & 1 ? &breaker : NULL,
		};

		fuzz_str(&in, name, NAME_MAX_BYTES);
		if (sy_server_add(eng, name, handler, NULL, &opts, &id) != 0)
			continue;
		if (how & 1)
			sy_breaker_force(eng, id, forced[(how >> 1) % 3]);
		x.servers[x.nservers].id = id;
		strcpy(x.servers[x.nservers++].name, name);
	}
	for (unsigned i = 0; x.nservers && i < want_routes; i++) {
		struct sy_route_opts opts = {
			.policy = "direct", .n_servers = 1,
			.servers = &x.servers[fuzz_pick(&in, x.nservers)].id,
		};

		fuzz_str(&in, name, NAME_MAX_BYTES);
		if (sy_route_add(eng, name, &opts, &id) != 0)
			continue;
		x.routes[x.nroutes].id = id;
		strcpy(x.routes[x.nroutes++].name, name);
	}
	qsort(x.servers, x.nservers, sizeof(x.servers[0]), by_id);
	qsort(x.routes, x.nroutes, sizeof(x.routes[0]), by_id);

	check_formats(&x);

	for (unsigned i = 0; i < x.nroutes; i++)
		fuzz_check(sy_route_remove(eng, x.routes[i].id) == 0,
			   "route %u not removed", x.routes[i].id);
	for (unsigned i = 0; i < x.nservers; i++)
		fuzz_check(sy_server_remove(eng, x.servers[i].id) == 0,
			   "server %u not removed", x.servers[i].id);
	return 0;
}
