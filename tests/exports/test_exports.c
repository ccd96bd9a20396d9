/*
 * Snapshot exports and the metrics endpoint, checked by the parsers their
 * readers use: jq for JSON, Python's csv module for CSV, promtool and a
 * small exposition-format reader for Prometheus text, file:consult/1 for
 * Erlang terms, curl for HTTP.
 *
 * Each test runs a real engine: a server whose handler fails every
 * FAIL_EVERY-th message, a route to it, N_MSGS messages; it stops the
 * engine (every message handled, the last snapshot exact) and exports that
 * snapshot. Expected values come from the traffic itself (sent, failed) and
 * from the snapshot's accessors (everything else), so a check says "the
 * export reads what sy_snapshot_*() says". One test builds a snapshot by
 * hand instead, for values the collector never produces (NaN, infinities).
 *
 * The checks run as child processes over files in a directory of their own
 * that the test's fini removes. Their programs are written there too, so no
 * name or value passes through a shell: numbers go on the command line,
 * names in files. A missing tool fails the test and names the package.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "metrics/snapshot.h"
#include "tests/fixture.h"

#define N_MSGS 200u
#define FAIL_EVERY 4u            /* tags divisible by this fail */
#define N_FAILED (N_MSGS / FAIL_EVERY)
#define WORKERS 2u
#define SEND_MS 30000u

/* A name with everything that needs escaping somewhere. */
static const char tricky_name[] = "q\"b\\n\n,x\ty'z";

static sy_engine *eng;
static sy_snapshot *snap;
static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sy-exports-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void teardown(void)
{
	if (snap)
		sy_snapshot_release(snap);
	snap = NULL;
	if (eng) {
		sy_metrics_serve_stop(eng);
		sy_engine_destroy(eng);
	}
	eng = NULL;
	if (dir[0])
		run("rm -rf '%s'", dir);
	dir[0] = '\0';
}

/* Run a shell command; its exit status, or -1 if it did not exit. */
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The first line a command prints (without its newline), into @p out. */
static void run_read(char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void run_read(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	p = popen(cmd, "r");
	cr_assert_not_null(p, "popen %s", cmd);
	if (!fgets(out, (int)cap, p))
		out[0] = '\0';
	pclose(p);
	out[strcspn(out, "\n")] = '\0';
}

static void need(const char *tool, const char *package)
{
	cr_assert_eq(run("command -v %s >/dev/null 2>&1", tool), 0,
		     "%s not found: the exports tests need it (Debian package "
		     "%s, installed by .ci/deps)", tool, package);
}

static const char *path(const char *name)
{
	static char buf[4][128];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static void write_file(const char *name, const char *data, size_t len)
{
	FILE *f = fopen(path(name), "wb");

	cr_assert_not_null(f, "fopen %s: %s", path(name), strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void write_text(const char *name, const char *text)
{
	write_file(name, text, strlen(text));
}

static int flaky(sy_engine *e, sy_msg *m, void *ctx)
{
	(void)e;
	(void)ctx;
	return sy_msg_tag(m) % FAIL_EVERY == 0 ? -EIO : 0;
}

/* An engine with one server (@p server_name) and a route "r1" to it. */
static uint32_t start_engine(const char *server_name, int metrics)
{
	struct sy_server_opts so = { .worker = -1 };
	struct sy_route_opts ro = { .n_servers = 1 };
	struct sy_config cfg;
	uint32_t sid, rid;

	sy_config_init(&cfg);
	cfg.workers = WORKERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.metrics = metrics;
	cfg.metrics_interval_ms = 10;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	cr_assert_eq(sy_server_add(eng, server_name, flaky, NULL, &so, &sid), 0,
		     "%s", sy_last_error());
	ro.servers = &sid;
	cr_assert_eq(sy_route_add(eng, "r1", &ro, &rid), 0, "%s",
		     sy_last_error());
	cr_assert_eq(sy_engine_start(eng), 0, "%s", sy_last_error());
	return rid;
}

static void send_n(uint32_t route, uint64_t n)
{
	for (uint64_t tag = 1; tag <= n; tag++) {
		sy_msg *m = sy_msg_alloc(eng, 16);

		cr_assert_not_null(m, "%s", sy_last_error());
		sy_msg_set_tag(m, tag);
		cr_assert_eq(t_send_retry(eng, route, m, SEND_MS), 0,
			     "send %llu", (unsigned long long)tag);
	}
}

static void send_all(uint32_t route)
{
	send_n(route, N_MSGS);
}

/* Run the traffic, stop (drained), and hold the last snapshot. */
static void traffic(const char *server_name)
{
	send_all(start_engine(server_name, 1));
	cr_assert_eq(sy_engine_stop(eng), 0);
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap, "no snapshot after the engine stopped");
}

static char *export(enum sy_format fmt, size_t *len)
{
	char *buf = NULL;

	cr_assert_eq(sy_snapshot_format(snap, fmt, &buf, len), 0);
	cr_assert_not_null(buf);
	cr_assert_eq(strlen(buf), *len, "the export has a NUL inside");
	return buf;
}

static void export_to(enum sy_format fmt, const char *name)
{
	size_t len;
	char *buf = export(fmt, &len);

	write_file(name, buf, len);
	free(buf);
}

static const struct sy_series *server(const char *name)
{
	const struct sy_series *s = sy_snapshot_find(snap, SY_SERIES_SERVER, name);

	cr_assert_not_null(s, "no server series \"%s\"", name);
	return s;
}

/* ---- the checkers ---- */

/*
 * jq: the engine's totals; one server, found by its name (read raw from a
 * file), with its totals and state as the accessors give them; every
 * histogram and queue present. Exit status 0 only if all of it holds.
 */
static const char jq_check[] =
	"(.engine.counters.total.sent == $sent)\n"
	"and (.engine.counters.total.failed == $failed)\n"
	"and ((.engine.counters.total.dead_lettered | keys) ==\n"
	"     [\"backpressure\", \"circuit_open\", \"handler_failed\", \"overload\",\n"
	"      \"parked\", \"remote\", \"retries_exhausted\", \"shutdown\", \"timeout\",\n"
	"      \"unreachable\"])\n"
	"and (([.servers[] | select(.name == $name)] | length) == 1)\n"
	"and (.servers[] | select(.name == $name) |\n"
	"     (.counters.total.sent == $ssent)\n"
	"     and (.counters.total.delivered == $sdelivered)\n"
	"     and (.counters.total.failed == $sfailed)\n"
	"     and (.counters.total.dead_lettered.handler_failed == $sdlhf)\n"
	"     and (.counters.recent | has(\"sent\"))\n"
	"     and (.error_rate.total | numbers) != null\n"
	"     and (.breaker == \"closed\") and (.healthy == true)\n"
	"     and (.worker == $sworker))\n"
	"and ((.routes | map(.name) | index(\"r1\")) != null)\n"
	"and ((.histograms | keys) == [\"latency\", \"rtt\", \"service\", \"sojourn\"])\n"
	"and (([.histograms[][] | .count, .min, .max, .mean, .stddev, .p50,\n"
	"       .p90, .p95, .p99, .p999 | numbers] | length) == 80)\n"
	"and ((.queues | length) == $workers)\n"
	"and (.seq == $seq) and (.time_ns == $time) and (.window_ns == $window)\n";

/* Python: strict UTF-8 and JSON, and a server of exactly that name (after
 * the U+FFFD replacement the export applies to invalid UTF-8). */
static const char json_name_check[] =
	"import json, sys\n"
	"doc = json.load(open(sys.argv[1], encoding='utf-8'))\n"
	"name = open(sys.argv[2], 'rb').read().decode('utf-8', 'replace')\n"
	"hit = [s for s in doc['servers'] if s['name'] == name]\n"
	"if len(hit) != 1:\n"
	"    sys.exit(f'{len(hit)} servers named {name!r}')\n";

/*
 * Python: every row has the header's field count, every numeric column
 * parses, every kind of row is there, and the row of (kind, name) has the
 * expected sent and failed totals.
 */
static const char csv_check[] =
	"import csv, sys\n"
	"path, kind, name_file, sent, failed = sys.argv[1:6]\n"
	"name = open(name_file, 'rb').read().decode('utf-8', 'replace')\n"
	"with open(path, encoding='utf-8', newline='') as f:\n"
	"    rows = list(csv.reader(f, strict=True))\n"
	"head = rows[0]\n"
	"text = {'kind', 'name', 'breaker', 'period'}\n"
	"for i, r in enumerate(rows[1:], 2):\n"
	"    if len(r) != len(head):\n"
	"        sys.exit(f'record {i}: {len(r)} fields, the header has {len(head)}')\n"
	"    for col, v in zip(head, r):\n"
	"        if v and col not in text:\n"
	"            float(v)\n"
	"recs = [dict(zip(head, r)) for r in rows[1:]]\n"
	"kinds = {r['kind'] for r in recs}\n"
	"want = {'engine', 'server', 'route', 'transport', 'hist', 'queue'}\n"
	"if kinds != want:\n"
	"    sys.exit(f'row kinds {sorted(kinds)}, expected {sorted(want)}')\n"
	"hit = [r for r in recs if r['kind'] == kind and r['name'] == name]\n"
	"if len(hit) != 1:\n"
	"    sys.exit(f'{len(hit)} rows for {kind} {name!r}')\n"
	"if (int(hit[0]['sent']), int(hit[0]['failed'])) != (int(sent), int(failed)):\n"
	"    sys.exit(f'{kind} {name!r}: {hit[0]}')\n"
	"eng = [r for r in recs if r['kind'] == 'engine']\n"
	"if len(eng) != 1 or int(eng[0]['sent']) != int(sent):\n"
	"    sys.exit(f'engine rows: {eng}')\n";

/*
 * Python: a reader of the text exposition format (metric, labels with their
 * escapes, value) over the whole file, strict UTF-8. No series (metric and
 * label set) is there twice, and every server and route sample has a
 * numeric id label. Counters end in _total; the engine's totals and those of
 * the series of the given kind, name and id (sent, failed, handler_failed
 * dead letters; for a server, its breaker state set) are as expected; every
 * histogram's buckets rise with le up to +Inf, which equals _count.
 */
static const char prom_check[] =
	"import math, re, sys\n"
	"path, kind, name_file, series_id, sent, failed, dlhf = sys.argv[1:8]\n"
	"engine_sent, engine_failed = sys.argv[8:10]\n"
	"name = open(name_file, 'rb').read().decode('utf-8', 'replace')\n"
	"ident = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')\n"
	"unescape = {'\\\\': '\\\\', '\"': '\"', 'n': '\\n'}\n"
	"def labels(s, i):\n"
	"    out = {}\n"
	"    i += 1\n"
	"    while s[i] != '}':\n"
	"        m = ident.match(s, i)\n"
	"        key, i = m.group(0), m.end()\n"
	"        assert s[i:i + 2] == '=\"', s\n"
	"        i += 2\n"
	"        v = []\n"
	"        while s[i] != '\"':\n"
	"            if s[i] == '\\\\':\n"
	"                v.append(unescape[s[i + 1]])\n"
	"                i += 2\n"
	"            else:\n"
	"                v.append(s[i])\n"
	"                i += 1\n"
	"        out[key] = ''.join(v)\n"
	"        i += 1\n"
	"        if s[i] == ',':\n"
	"            i += 1\n"
	"    return out, i + 1\n"
	"samples, types = [], {}\n"
	"for line in open(path, encoding='utf-8'):\n"
	"    line = line.rstrip('\\n')\n"
	"    if line.startswith('# TYPE '):\n"
	"        _, _, fam, t = line.split(' ')\n"
	"        types[fam] = t\n"
	"        continue\n"
	"    if not line or line.startswith('#'):\n"
	"        continue\n"
	"    m = ident.match(line)\n"
	"    metric, i, lab = m.group(0), m.end(), {}\n"
	"    if line[i] == '{':\n"
	"        lab, i = labels(line, i)\n"
	"    assert line[i] == ' ', line\n"
	"    samples.append((metric, lab, float(line[i + 1:])))\n"
	"seen = set()\n"
	"for m, l, v in samples:\n"
	"    key = (m, tuple(sorted(l.items())))\n"
	"    if key in seen:\n"
	"        sys.exit(f'{m} {l}: a series exported twice')\n"
	"    seen.add(key)\n"
	"for m, l, v in samples:\n"
	"    per_server = (m.startswith('switchyard_breaker_') or\n"
	"                  m == 'switchyard_server_healthy')\n"
	"    if ((l.get('kind') in ('server', 'route') or per_server) and\n"
	"            not l.get('id', '').isdigit()):\n"
	"        sys.exit(f'{m} {l}: no id label')\n"
	"def one(metric, **want):\n"
	"    hit = [v for m, l, v in samples if m == metric and\n"
	"           all(l.get(k) == w for k, w in want.items())]\n"
	"    if len(hit) != 1:\n"
	"        sys.exit(f'{len(hit)} samples of {metric} {want}')\n"
	"    return hit[0]\n"
	"for fam, t in types.items():\n"
	"    if (t == 'counter') != fam.endswith('_total'):\n"
	"        sys.exit(f'{fam} is a {t}')\n"
	"for metric, lab, want in (\n"
	"        ('switchyard_messages_sent_total', {'kind': 'engine'}, engine_sent),\n"
	"        ('switchyard_messages_failed_total', {'kind': 'engine'}, engine_failed),\n"
	"        ('switchyard_messages_sent_total',\n"
	"         {'kind': kind, 'name': name, 'id': series_id}, sent),\n"
	"        ('switchyard_messages_failed_total',\n"
	"         {'kind': kind, 'name': name, 'id': series_id}, failed)):\n"
	"    if one(metric, **lab) != float(want):\n"
	"        sys.exit(f'{metric} {lab}: {one(metric, **lab)}, expected {want}')\n"
	"got = one('switchyard_messages_dead_lettered_total', kind=kind, name=name,\n"
	"          id=series_id, reason='handler_failed')\n"
	"if got != float(dlhf):\n"
	"    sys.exit(f'dead letters {got}, expected {dlhf}')\n"
	"if kind == 'server':\n"
	"    states = [(l['state'], v) for m, l, v in samples\n"
	"              if m == 'switchyard_breaker_state' and l['name'] == name\n"
	"              and l['id'] == series_id]\n"
	"    if sorted(states)[0] != ('closed', 1.0) or sum(v for _, v in states) != 1:\n"
	"        sys.exit(f'breaker states {states}')\n"
	"hists = [f for f, t in types.items() if t == 'histogram']\n"
	"if len(hists) != 4:\n"
	"    sys.exit(f'histograms {hists}')\n"
	"for h in hists:\n"
	"    b = [(float(l['le']), v) for m, l, v in samples if m == h + '_bucket']\n"
	"    les, counts = [le for le, _ in b], [v for _, v in b]\n"
	"    if (les != sorted(les) or counts != sorted(counts) or\n"
	"            les[-1] != math.inf or counts[-1] != one(h + '_count')):\n"
	"        sys.exit(f'{h} buckets {b}')\n"
	"    one(h + '_sum')\n";

/*
 * Erlang, evaluated by file:script/1 from erl -noshell -eval: the file
 * consults to one map; the engine's counters, error counts and latencies
 * (floats) are there; the server's entry, found by its exact bytes, has the
 * expected totals.
 */
static const char erl_check[] =
	"[_, Data, NameFile, SentS, FailedS, SSentS] = init:get_plain_arguments(),\n"
	"Sent = list_to_integer(SentS),\n"
	"Failed = list_to_integer(FailedS),\n"
	"SSent = list_to_integer(SSentS),\n"
	"{ok, [T]} = file:consult(Data),\n"
	"{ok, Name} = file:read_file(NameFile),\n"
	"#{counters := #{sent := Sent, failed := Failed, delivered := D,\n"
	"                dead_lettered := #{handler_failed := _}},\n"
	"  errors := #{total_count := Failed, recent_count := _, error_rate := Rate},\n"
	"  latencies := #{p50 := P50, p95 := P95, p99 := P99, p999 := P999},\n"
	"  servers := Servers, routes := Routes, transports := _,\n"
	"  queues := Queues} = T,\n"
	"true = is_integer(D),\n"
	"true = lists:all(fun erlang:is_float/1, [Rate, P50, P95, P99, P999]),\n"
	"#{rtt := Rtt, service := Service, sojourn := Sojourn} = T,\n"
	"[true = lists:all(fun erlang:is_float/1, maps:values(maps:remove(count, H)))\n"
	" || H <- [maps:get(latencies, T), Rtt, Service, Sojourn]],\n"
	"[#{counters := #{sent := SSent}, breaker := closed, healthy := true}] =\n"
	"    [S || S = #{name := N} <- Servers, N =:= Name],\n"
	"[_] = [R || R = #{name := <<\"r1\">>} <- Routes],\n"
	"true = length(Queues) > 0,\n"
	"ok.\n";

static void check_json(const char *file, const char *name)
{
	const struct sy_series *s = server(name);

	need("jq", "jq");
	need("python3", "python3");
	write_text("check.jq", jq_check);
	write_text("name.bin", name);
	cr_assert_eq(run("jq -e --rawfile name %s --argjson sent %u "
			 "--argjson failed %u --argjson ssent %llu "
			 "--argjson sdelivered %llu --argjson sfailed %llu "
			 "--argjson sdlhf %llu --argjson sworker %u "
			 "--argjson workers %u --argjson seq %llu "
			 "--argjson time %llu --argjson window %llu "
			 "-f %s %s >/dev/null",
			 path("name.bin"), N_MSGS, N_FAILED,
			 (unsigned long long)s->total.sent,
			 (unsigned long long)s->total.delivered,
			 (unsigned long long)s->total.failed,
			 (unsigned long long)s->total.dead_lettered[SY_DL_HANDLER_FAILED],
			 s->worker, sy_snapshot_workers(snap),
			 (unsigned long long)sy_snapshot_seq(snap),
			 (unsigned long long)sy_snapshot_time_ns(snap),
			 (unsigned long long)sy_snapshot_window_ns(snap),
			 path("check.jq"), path(file)), 0,
		     "jq: %s does not hold for %s", path("check.jq"), path(file));
	write_text("json_name.py", json_name_check);
	cr_assert_eq(run("python3 %s %s %s", path("json_name.py"), path(file),
			 path("name.bin")), 0, "JSON names in %s", path(file));
}

static void check_csv(const char *file, const char *name)
{
	const struct sy_series *s = server(name);

	need("python3", "python3");
	write_text("check_csv.py", csv_check);
	write_text("name.bin", name);
	cr_assert_eq(run("python3 %s %s server %s %llu %llu",
			 path("check_csv.py"), path(file), path("name.bin"),
			 (unsigned long long)s->total.sent,
			 (unsigned long long)s->total.failed), 0,
		     "CSV check of %s", path(file));
}

static void check_prometheus(const char *file, const char *name)
{
	const struct sy_series *s = server(name);
	const struct sy_series *e;

	e = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	cr_assert_not_null(e, "no engine series");
	need("promtool", "prometheus");
	need("python3", "python3");
	cr_assert_eq(run("promtool check metrics < %s", path(file)), 0,
		     "promtool check metrics < %s", path(file));
	write_text("check_prom.py", prom_check);
	write_text("name.bin", name);
	cr_assert_eq(run("python3 %s %s server %s %u %llu %llu %llu %llu %llu",
			 path("check_prom.py"), path(file), path("name.bin"),
			 s->id, (unsigned long long)s->total.sent,
			 (unsigned long long)s->total.failed,
			 (unsigned long long)s->total.dead_lettered[SY_DL_HANDLER_FAILED],
			 (unsigned long long)e->total.sent,
			 (unsigned long long)e->total.failed),
		     0, "Prometheus values in %s", path(file));
}

static void check_erlang(const char *file, const char *name)
{
	const struct sy_series *s = server(name);

	need("erl", "erlang-base");
	write_text("check.script", erl_check);
	write_text("name.bin", name);
	/* No crash dump: a failed match is reported on stderr. */
	cr_assert_eq(run("ERL_CRASH_DUMP_SECONDS=0 erl -noshell -eval "
			 "'{ok, ok} = file:script(hd(init:get_plain_arguments())), "
			 "halt(0).' -extra %s %s %s %u %u %llu",
			 path("check.script"), path(file), path("name.bin"),
			 N_MSGS, N_FAILED, (unsigned long long)s->total.sent), 0,
		     "Erlang check of %s", path(file));
}

/* ---- formats ---- */

Test(exports_json, is_valid_json_with_the_snapshot_values, .init = setup,
     .fini = teardown)
{
	traffic("s1");
	cr_assert_eq(server("s1")->total.sent, N_MSGS);
	cr_assert_eq(server("s1")->total.failed, N_FAILED);
	export_to(SY_FORMAT_JSON, "snap.json");
	check_json("snap.json", "s1");
}

Test(exports_csv, has_one_header_and_rows_of_its_width, .init = setup,
     .fini = teardown)
{
	traffic("s1");
	export_to(SY_FORMAT_CSV, "snap.csv");
	check_csv("snap.csv", "s1");
}

Test(exports_csv, ends_records_with_crlf, .init = setup, .fini = teardown)
{
	size_t len;
	char *buf;

	traffic("s1");
	buf = export(SY_FORMAT_CSV, &len);
	for (char *nl = strchr(buf, '\n'); nl; nl = strchr(nl + 1, '\n'))
		cr_assert(nl > buf && nl[-1] == '\r', "bare LF at byte %zu",
			  (size_t)(nl - buf));
	free(buf);
}

Test(exports_prometheus, passes_promtool_with_the_snapshot_values,
     .init = setup, .fini = teardown)
{
	traffic("s1");
	export_to(SY_FORMAT_PROMETHEUS, "snap.prom");
	check_prometheus("snap.prom", "s1");
}

Test(exports_prometheus, describes_each_family_once, .init = setup,
     .fini = teardown)
{
	size_t len;
	char *buf, *line, *save = NULL;
	char seen[64][80];
	unsigned n = 0;

	traffic("s1");
	buf = export(SY_FORMAT_PROMETHEUS, &len);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char fam[80];

		if (sscanf(line, "# TYPE %79s", fam) != 1)
			continue;
		for (unsigned i = 0; i < n; i++)
			cr_assert_str_neq(seen[i], fam, "%s typed twice", fam);
		cr_assert_lt(n, 64u);
		snprintf(seen[n++], sizeof(seen[0]), "%s", fam);
	}
	cr_assert_gt(n, 10u);
	free(buf);
}

/*
 * Two servers, and two routes, whose names differ only in bytes that are
 * not UTF-8: both names become "a\uFFFD" in the labels, and the id label
 * keeps the series apart, each with its own counts.
 */
Test(exports_prometheus, keeps_apart_names_that_differ_only_in_invalid_utf8,
     .init = setup, .fini = teardown)
{
	static const char *const servers[] = { "a\xff", "a\xfe" };
	static const char *const routes[] = { "r\xff", "r\xfe" };
	struct sy_server_opts so = { .worker = -1 };
	struct sy_route_opts ro = { .n_servers = 1 };
	uint32_t sid[2], rid[2];
	struct sy_config cfg;

	sy_config_init(&cfg);
	cfg.workers = WORKERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.metrics_interval_ms = 10;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	for (unsigned i = 0; i < 2; i++) {
		cr_assert_eq(sy_server_add(eng, servers[i], flaky, NULL, &so,
					   &sid[i]), 0, "%s", sy_last_error());
		ro.servers = &sid[i];
		cr_assert_eq(sy_route_add(eng, routes[i], &ro, &rid[i]), 0,
			     "%s", sy_last_error());
	}
	cr_assert_eq(sy_engine_start(eng), 0, "%s", sy_last_error());
	send_n(rid[0], N_MSGS);
	send_n(rid[1], N_MSGS / 2);
	cr_assert_eq(sy_engine_stop(eng), 0);
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap);
	cr_assert_neq(server(servers[0])->total.sent,
		      server(servers[1])->total.sent);
	export_to(SY_FORMAT_PROMETHEUS, "snap.prom");
	check_prometheus("snap.prom", servers[0]);
	check_prometheus("snap.prom", servers[1]);
}

Test(exports_erlang, consults_to_one_map_with_the_snapshot_values,
     .init = setup, .fini = teardown)
{
	traffic("s1");
	export_to(SY_FORMAT_ERLANG, "snap.erl");
	check_erlang("snap.erl", "s1");
}

Test(exports_erlang, writes_no_float_erlang_cannot_read, .init = setup,
     .fini = teardown)
{
	size_t len;
	char *buf;

	traffic("s1");
	buf = export(SY_FORMAT_ERLANG, &len);
	cr_assert_null(strstr(buf, "nan"));
	cr_assert_null(strstr(buf, "inf"));
	cr_assert_eq(strcmp(buf + len - 2, ".\n"), 0, "ends with a dot");
	free(buf);
}

/* The lines of the first table, up to the blank line that ends it. */
Test(exports_table, aligns_the_series_columns, .init = setup,
     .fini = teardown)
{
	size_t len, width = 0;
	unsigned rows = 0;
	char *buf, *line;

	traffic(tricky_name);
	buf = export(SY_FORMAT_TABLE, &len);
	line = strstr(buf, "\n\n");
	cr_assert_not_null(line);
	line += 2;
	cr_assert_eq(strncmp(line, "KIND", 4), 0, "%s", line);
	while (*line && *line != '\n') {
		size_t w = strcspn(line, "\n");

		if (!width)
			width = w;
		cr_assert_eq(w, width, "row %u is %zu wide, the header %zu:\n%s",
			     rows, w, width, buf);
		rows++;
		line += w + 1;
	}
	/* engine, the server, the route, three transports at least. */
	cr_assert_geq(rows, 1 + 1 + 1 + 1, "%s", buf);
	cr_assert_not_null(strstr(buf, "q\"b\\\\n\\n,x\\ty'z"),
			   "the name escaped C-style:\n%s", buf);
	cr_assert_not_null(strstr(buf, "HISTOGRAM"));
	cr_assert_not_null(strstr(buf, "WORKER"));
	free(buf);
}

/* U+009B is CSI: a terminal would take the "[2J" after it for "clear the
 * screen". The table shows it, and every C1 control, escaped. */
Test(exports_table, escapes_c1_control_characters, .init = setup,
     .fini = teardown)
{
	static const char name[] = "a\xc2\x9b[2Jb\xc2\x80" "c\xc2\x9f";
	size_t len;
	char *buf;

	traffic(name);
	buf = export(SY_FORMAT_TABLE, &len);
	for (size_t i = 0; i + 1 < len; i++)
		cr_assert(!((unsigned char)buf[i] == 0xc2 &&
			    (unsigned char)buf[i + 1] >= 0x80 &&
			    (unsigned char)buf[i + 1] <= 0x9f),
			  "a C1 control (U+%04X) at byte %zu of the table",
			  (unsigned char)buf[i + 1], i);
	cr_assert_not_null(strstr(buf, "a\\u009b[2Jb\\u0080c\\u009f"),
			   "the name escaped C-style:\n%s", buf);
	free(buf);
}

Test(exports_format, refuses_bad_arguments, .init = setup, .fini = teardown)
{
	char *buf = NULL;
	size_t len;

	traffic("s1");
	cr_assert_eq(sy_snapshot_format(NULL, SY_FORMAT_JSON, &buf, &len),
		     -EINVAL);
	cr_assert_eq(sy_snapshot_format(snap, SY_FORMAT_JSON, NULL, &len),
		     -EINVAL);
	cr_assert_eq(sy_snapshot_format(snap, (enum sy_format)99, &buf, &len),
		     -EINVAL);
	cr_assert_null(buf);
	cr_assert_eq(sy_snapshot_format(snap, SY_FORMAT_TABLE, &buf, NULL), 0);
	free(buf);
}

/* ---- numbers ---- */

/* Python: strict JSON, where NaN and Infinity are not numbers. */
static const char json_finite_check[] =
	"import json, sys\n"
	"def refuse(word):\n"
	"    sys.exit(f'{word} is not JSON')\n"
	"json.load(open(sys.argv[1], encoding='utf-8'), parse_constant=refuse)\n";

/*
 * A snapshot built by hand (the collector never produces these values):
 * every double NaN, an infinity or huge, no engine series. Every format
 * must still write numbers its reader takes.
 */
Test(exports_numbers, non_finite_values_are_written_finite, .init = setup,
     .fini = teardown)
{
	static const double odd[] = { NAN, INFINITY, -INFINITY, DBL_MAX };
	const unsigned n[SY_SERIES_KINDS] = { 0, 4, 0, 0 };
	struct sy_snapshot *fake;
	char *names;

	fake = sy__snapshot_alloc(n, 1, 4 * 8, &names);
	cr_assert_not_null(fake);
	fake->seq = 1;
	for (unsigned i = 0; i < 4; i++) {
		struct sy_series *s = &fake->series[SY_SERIES_SERVER][i];

		snprintf(names + 8 * i, 8, "s%u", i);
		s->kind = SY_SERIES_SERVER;
		s->id = i;
		s->name = names + 8 * i;
		s->sent_per_s = s->delivered_per_s = odd[i];
		s->error_rate = s->error_rate_recent = odd[i];
		fake->total[i].mean = fake->total[i].stddev = odd[i];
		fake->total[i].count = 1;
	}
	fake->queue[0].trend = NAN;
	snap = fake;

	export_to(SY_FORMAT_JSON, "odd.json");
	need("python3", "python3");
	write_text("finite.py", json_finite_check);
	cr_assert_eq(run("python3 %s %s", path("finite.py"), path("odd.json")), 0);
	need("jq", "jq");
	cr_assert_eq(run("jq -e '.engine == null and (.servers | length) == 4' "
			 "%s >/dev/null", path("odd.json")), 0);

	export_to(SY_FORMAT_ERLANG, "odd.erl");
	need("erl", "erlang-base");
	cr_assert_eq(run("ERL_CRASH_DUMP_SECONDS=0 erl -noshell -eval "
			 "'{ok, [#{servers := [_, _, _, _]}]} = file:consult(\"%s\"), "
			 "halt(0).'", path("odd.erl")), 0);

	export_to(SY_FORMAT_PROMETHEUS, "odd.prom");
	need("promtool", "prometheus");
	cr_assert_eq(run("promtool check metrics < %s", path("odd.prom")), 0);
	cr_assert_eq(run("grep -v 'le=\"+Inf\"' %s | grep -Eiq 'nan|inf[^o]'",
			 path("odd.prom")), 1, "NaN or Inf in %s", path("odd.prom"));

	export_to(SY_FORMAT_CSV, "odd.csv");
	cr_assert_eq(run("grep -Eiq 'nan|inf' %s", path("odd.csv")), 1);
	export_to(SY_FORMAT_TABLE, "odd.txt");
	cr_assert_eq(run("grep -Eiq 'nan|inf[^o]' %s", path("odd.txt")), 1);
}

/* ---- escaping ---- */

Test(exports_escaping, quote_backslash_and_newline_in_a_name,
     .init = setup, .fini = teardown)
{
	traffic(tricky_name);
	export_to(SY_FORMAT_JSON, "snap.json");
	check_json("snap.json", tricky_name);
	export_to(SY_FORMAT_CSV, "snap.csv");
	check_csv("snap.csv", tricky_name);
	export_to(SY_FORMAT_PROMETHEUS, "snap.prom");
	check_prometheus("snap.prom", tricky_name);
	export_to(SY_FORMAT_ERLANG, "snap.erl");
	check_erlang("snap.erl", tricky_name);
}

Test(exports_escaping, bytes_that_are_not_utf8_in_a_name, .init = setup,
     .fini = teardown)
{
	static const char name[] = "bad\xff\xfe\xc3name\x01";

	traffic(name);
	export_to(SY_FORMAT_JSON, "snap.json");
	need("python3", "python3");
	write_text("json_name.py", json_name_check);
	write_text("name.bin", name);
	cr_assert_eq(run("python3 %s %s %s", path("json_name.py"),
			 path("snap.json"), path("name.bin")), 0);
	need("jq", "jq");
	cr_assert_eq(run("jq -e '.servers | length == 1' %s >/dev/null",
			 path("snap.json")), 0);
	export_to(SY_FORMAT_CSV, "snap.csv");
	check_csv("snap.csv", name);
	export_to(SY_FORMAT_PROMETHEUS, "snap.prom");
	check_prometheus("snap.prom", name);
	/* Erlang binaries keep the exact bytes. */
	export_to(SY_FORMAT_ERLANG, "snap.erl");
	check_erlang("snap.erl", name);
}

/* ---- the HTTP endpoint ---- */

/* Serve on any free port; skip where the library has no endpoint. */
static unsigned serve_any(void)
{
	unsigned port = 0;
	int rc = sy_metrics_serve(eng, NULL, 0, &port);

	if (rc == -ENOTSUP) {
		/* A skipped test does not run its fini. */
		teardown();
		cr_skip_test("built without libmicrohttpd (-Dhttp=disabled)");
	}
	cr_assert_eq(rc, 0, "sy_metrics_serve: %s", sy_last_error());
	cr_assert_gt(port, 0u);
	return port;
}

static void status_is(unsigned port, const char *method, const char *url,
		      const char *want)
{
	char got[64];

	run_read(got, sizeof(got), "curl -s -o /dev/null -X %s "
		 "-w '%%{http_code}' http://127.0.0.1:%u%s", method, port, url);
	cr_assert_str_eq(got, want, "%s %s", method, url);
}

Test(exports_http, serves_prometheus_and_json, .init = setup,
     .fini = teardown)
{
	unsigned port;
	char type[128];

	need("curl", "curl");
	traffic("s1");
	port = serve_any();
	cr_assert_eq(run("curl -sf -o %s http://127.0.0.1:%u/metrics",
			 path("http.prom"), port), 0, "GET /metrics");
	check_prometheus("http.prom", "s1");
	run_read(type, sizeof(type), "curl -s -o /dev/null -w "
		 "'%%{content_type}' http://127.0.0.1:%u/metrics", port);
	cr_assert_str_eq(type, "text/plain; version=0.0.4; charset=utf-8");

	cr_assert_eq(run("curl -sf -o %s http://127.0.0.1:%u/metrics.json",
			 path("http.json"), port), 0, "GET /metrics.json");
	check_json("http.json", "s1");
	run_read(type, sizeof(type), "curl -s -o /dev/null -w "
		 "'%%{content_type}' http://127.0.0.1:%u/metrics.json", port);
	cr_assert_str_eq(type, "application/json");

	status_is(port, "GET", "/nope", "404");
	status_is(port, "GET", "/metrics/x", "404");
	status_is(port, "POST", "/metrics", "405");
	status_is(port, "DELETE", "/metrics.json", "405");
}

Test(exports_http, answers_503_before_the_first_snapshot, .init = setup,
     .fini = teardown)
{
	struct sy_config cfg;
	unsigned port;

	need("curl", "curl");
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.metrics_interval_ms = 10;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	/* Never started: no collector, no snapshot. */
	cr_assert_null(sy_metrics_snapshot(eng));
	port = serve_any();
	status_is(port, "GET", "/metrics", "503");
	status_is(port, "GET", "/metrics.json", "503");
}

Test(exports_http, scrapes_while_traffic_flows, .init = setup,
     .fini = teardown)
{
	uint32_t route;
	unsigned port;

	need("curl", "curl");
	need("promtool", "prometheus");
	route = start_engine("s1", 1);
	cr_assert_eq(sy_metrics_refresh(eng), 0);
	port = serve_any();
	for (unsigned i = 0; i < 5; i++) {
		send_all(route);
		cr_assert_eq(run("curl -sf http://127.0.0.1:%u/metrics | "
				 "promtool check metrics", port), 0,
			     "scrape %u", i);
	}
}

Test(exports_http, refuses_bad_addresses_and_a_second_daemon,
     .init = setup, .fini = teardown)
{
	static const char *const bad[] = {
		"10.0.0.1", "0.0.0.0", "localhost", "127.0.0", "127.0.0.1 ",
		"::1", "",
	};
	sy_engine *other = NULL;
	struct sy_config cfg;
	unsigned port, again = 0;

	traffic("s1");
	port = serve_any();
	cr_assert_eq(sy_metrics_serve(eng, NULL, 0, NULL), -EALREADY);

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cr_assert_eq(sy_engine_create(&cfg, &other), 0);
	cr_assert_eq(sy_metrics_serve(other, "127.0.0.1", port, NULL),
		     -EADDRINUSE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sy_metrics_serve(other, bad[i], 0, NULL), -EINVAL,
			     "address \"%s\"", bad[i]);
	cr_assert_eq(sy_metrics_serve(other, NULL, 65536, NULL), -EINVAL);
	sy_engine_destroy(other);

	/* Stopped, its port is free again, for this engine or another. */
	sy_metrics_serve_stop(eng);
	sy_metrics_serve_stop(eng);
	cr_assert_eq(sy_metrics_serve(eng, "127.0.0.1", port, &again), 0,
		     "%s", sy_last_error());
	cr_assert_eq(again, port);
}

Test(exports_http, needs_metrics, .init = setup, .fini = teardown)
{
	struct sy_config cfg;
	unsigned port = 0;

	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.metrics = -1;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0);
	cr_assert_eq(sy_metrics_serve(eng, NULL, 0, &port), -ENOTSUP);
	cr_assert_null(sy_metrics_snapshot(eng));
}
