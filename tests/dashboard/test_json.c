/*
 * GET /dashboard.json, read with jq: the document the dashboard page draws
 * (docs/metrics.md, "The dashboard"). The expected names come from the
 * test's own engine (expect.json, read by jq with --slurpfile, so no name
 * passes through a shell); counts are checked against each other, and
 * against sy_engine_accounting() once the engine has stopped and nothing
 * moves. Also: the page itself with its headers, HEAD, and that no method
 * but GET and HEAD is served.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rig.h"

static struct rig rig;

static void teardown(void)
{
	rig_stop(&rig);
}

/* GET @p path into the scratch file @p name; returns its path. */
static const char *get(const char *path, const char *name)
{
	static char file[256];

	snprintf(file, sizeof(file), "%s", rig_path(&rig, name));
	cr_assert_eq(rig_run("curl -sf -o '%s' 'http://127.0.0.1:%u%s'", file,
			     rig.port, path), 0, "GET %s", path);
	return file;
}

/* jq -e @p expr over @p file, with the expectations as $exp[0]. */
static void jq_true(const char *file, const char *expr)
{
	cr_assert_eq(rig_run("jq -e --slurpfile exp '%s' '%s' '%s' >/dev/null",
			     rig_path(&rig, "expect.json"), expr, file), 0,
		     "jq -e '%s' is not true", expr);
}

/* The first line that @p cmd prints, without its newline. */
static void read_line(char *out, size_t cap, const char *cmd)
{
	FILE *p = popen(cmd, "r");

	cr_assert_not_null(p, "%s", cmd);
	if (!fgets(out, (int)cap, p))
		out[0] = '\0';
	pclose(p);
	out[strcspn(out, "\r\n")] = '\0';
}

static uint64_t jq_u64(const char *file, const char *expr)
{
	char cmd[1024], line[64];

	snprintf(cmd, sizeof(cmd), "jq -e '%s' '%s'", expr, file);
	read_line(line, sizeof(line), cmd);
	cr_assert(line[0], "jq '%s' printed nothing", expr);
	return strtoull(line, NULL, 10);
}

/* The status code of @p method @p path, with extra curl arguments. */
static unsigned status_of(const char *method, const char *path,
			  const char *extra)
{
	char cmd[1024], line[16];

	snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -w '%%{http_code}' "
		 "-X %s %s 'http://127.0.0.1:%u%s'", method, extra, rig.port,
		 path);
	read_line(line, sizeof(line), cmd);
	return (unsigned)atoi(line);
}

/* The value of response header @p name to GET @p path ("" if none). */
static void header_of(const char *path, const char *name, char *out,
		      size_t cap)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "curl -s -D - -o /dev/null "
		 "'http://127.0.0.1:%u%s' | sed -n 's/^%s: //Ip'", rig.port,
		 path, name);
	read_line(out, cap, cmd);
}

static void need_tools(void)
{
	rig_need("curl", "curl");
	rig_need("jq", "jq");
}

Test(dashboard_json, reads_the_engine_with_jq, .fini = teardown)
{
	struct sy_accounting a;
	const char *f;
	char value[256];

	need_tools();
	rig_start(&rig, 6, 5);
	rig_wait_ready(&rig);
	rig_write_expectations(&rig);
	f = get("/dashboard.json", "live.json");

	jq_true(f, ".version == 1 and .refresh_ms >= 500");
	jq_true(f, ".config | .workers == 2 and .interval_ms == 100 and "
		".ring_capacity == 1023 and .bp_high > 0 and .bp_high <= 1");
	jq_true(f, "(.snapshot.routes | map(.name) | sort) == "
		"($exp[0].routes | sort)");
	jq_true(f, "(.snapshot.servers | map(.name) | sort) == "
		"($exp[0].servers | sort)");
	jq_true(f, ".snapshot.servers[] | select(.name == $exp[0].open_server)"
		" | .breaker == \"open\"");
	jq_true(f, ".snapshot.servers[] | select(.name == $exp[0].down_server)"
		" | .healthy == false");
	jq_true(f, ".snapshot.routes[] | select(.name == \"orders\") | "
		".counters.total.sent > 0");
	jq_true(f, ".snapshot.queues | length == 2");
	/* orders (bp_high 0.5) and inventory (0.25) have backpressure. */
	jq_true(f, ".config.ring_capacity as $cap | "
		"[.snapshot.queues[].bp_threshold] | any(. > 0) and "
		"all(. == 0 or . == ($cap * 0.25 | ceil) or "
		". == ($cap * 0.5 | ceil))");
	jq_true(f, ".snapshot.routes[] | select(.name == \"orders\") | "
		".latency.total | .samples > 0 and .p50 > 0 and "
		".p50 <= .p99 and .p99 <= .p999");

	jq_true(f, ".dlq | .held > 0 and .held == (.by_reason | add) and "
		".held <= .capacity and .capacity == 4096");
	jq_true(f, ".dlq.by_reason | .circuit_open > 0 and "
		".handler_failed > 0 and (keys | length) == 10");
	jq_true(f, ".dlq.newest | length > 0 and length <= 20");
	jq_true(f, "[.dlq.newest[].id] == ([.dlq.newest[].id] | sort | reverse)");
	jq_true(f, "(.dlq.by_reason | keys) as $r | .dlq.newest | "
		"all(.reason as $x | $r | index($x) != null)");
	jq_true(f, "(.snapshot.routes | map(.id)) as $ids | .dlq.newest | "
		"all(.route as $x | $ids | index($x) != null)");
	jq_true(f, ".dlq.newest | all((.tag | type) == \"string\" and "
		"(.key | type) == \"string\" and .size == 32 and "
		".last_ns >= .first_ns)");
	jq_true(f, ".dlq.newest | map(select(.reason == \"circuit_open\")) | "
		"all(.server == null)");

	jq_true(f, ".accounting | .holds and .accepted > 0 and .accepted == "
		".delivered + .failed_kept + .dead_lettered + .evicted + .dropped + "
		".returned + .in_flight");
	jq_true(f, ".accounting | .dead_lettered == (.dead_lettered_by | add)");

	header_of("/dashboard.json", "Content-Type", value, sizeof(value));
	cr_assert_str_eq(value, "application/json");
	header_of("/dashboard.json", "Cache-Control", value, sizeof(value));
	cr_assert_str_eq(value, "no-store");

	/* Quiet, the document agrees with the engine exactly. */
	rig_stop_traffic(&rig);
	cr_assert_eq(sy_engine_stop(rig.eng), 0);
	f = get("/dashboard.json", "stopped.json");
	cr_assert_eq(sy_engine_accounting(rig.eng, &a), 0);
	jq_true(f, ".accounting | .holds and .in_flight == 0");
	cr_assert_eq(jq_u64(f, ".accounting.accepted"), a.accepted);
	cr_assert_eq(jq_u64(f, ".accounting.delivered"), a.delivered);
	cr_assert_eq(jq_u64(f, ".accounting.dead_lettered"), a.dead_lettered);
	cr_assert_eq(jq_u64(f, ".dlq.held"), sy_dlq_count(rig.eng, NULL));
	cr_assert_eq(jq_u64(f, ".snapshot.engine.counters.total.sent"),
		     jq_u64(f, "[.snapshot.routes[].counters.total.sent] | add"));
}

Test(dashboard_json, answers_before_the_first_snapshot, .fini = teardown)
{
	const char *f;

	need_tools();
	rig_start_idle(&rig);
	rig_write_expectations(&rig);
	f = get("/dashboard.json", "idle.json");
	jq_true(f, ".snapshot == null and .accounting.accepted == 0 and "
		".accounting.holds and .dlq.held == 0 and .dlq.newest == []");
	cr_assert_eq(status_of("GET", "/metrics.json", ""), 503u);
}

Test(dashboard_json, serves_the_page_and_nothing_that_writes,
     .fini = teardown)
{
	static const char *const paths[] = {
		"/", "/dashboard.json", "/metrics", "/metrics.json",
	};
	static const char *const methods[] = {
		"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PURGE",
	};
	struct sy_accounting before, after;
	char value[1024];

	need_tools();
	rig_start(&rig, 6, 5);
	rig_wait_ready(&rig);
	rig_stop_traffic(&rig);
	rig_write_expectations(&rig);

	cr_assert_eq(rig_run("curl -sf -o '%s' http://127.0.0.1:%u/ && "
			     "cmp -s '%s' '%s/../../core/dashboard.html'",
			     rig_path(&rig, "page"), rig.port,
			     rig_path(&rig, "page"), rig_source_dir()), 0,
		     "GET / is not core/dashboard.html");
	header_of("/", "Content-Type", value, sizeof(value));
	cr_assert_str_eq(value, "text/html; charset=utf-8");
	header_of("/", "X-Content-Type-Options", value, sizeof(value));
	cr_assert_str_eq(value, "nosniff");
	header_of("/", "Content-Security-Policy", value, sizeof(value));
	cr_assert(strstr(value, "default-src 'none'"), "CSP: %s", value);
	cr_assert(strstr(value, "script-src 'sha256-"), "CSP: %s", value);
	cr_assert(strstr(value, "connect-src 'self'"), "CSP: %s", value);
	cr_assert_null(strstr(value, "unsafe"), "CSP: %s", value);
	cr_assert_eq(rig_run("test \"$(curl -s -I http://127.0.0.1:%u/ | "
			     "head -n 1 | tr -d '\\r')\" = 'HTTP/1.1 200 OK'",
			     rig.port), 0, "HEAD /");

	cr_assert_eq(status_of("GET", "/", "-H 'Host: localhost:80'"), 200u);
	cr_assert_eq(status_of("GET", "/", "-H 'Host: 127.1.2.3'"), 200u);
	cr_assert_eq(status_of("GET", "/dashboard.json",
			       "-H 'Host: rebound.example:8080'"), 400u);
	cr_assert_eq(status_of("GET", "/metrics", "-H 'Host: 10.0.0.1'"), 400u);
	cr_assert_eq(status_of("GET", "/admin", ""), 404u);
	cr_assert_eq(status_of("GET", "/dashboard.json", "--data-raw x -X GET"),
		     413u);

	/* No request changes the engine: the same accounting after every
	 * method on every path as before (the traffic has stopped). */
	cr_assert_eq(sy_engine_accounting(rig.eng, &before), 0);
	for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
			cr_assert_eq(status_of(methods[m], paths[p],
					       "--data-raw '{\"replay\":true}'"),
				     405u, "%s %s", methods[m], paths[p]);
	}
	cr_assert_eq(sy_engine_accounting(rig.eng, &after), 0);
	cr_assert_eq(memcmp(&before, &after, sizeof(before)), 0,
		     "a request changed the accounting");
	cr_assert_eq(rig_run("curl -s -X POST -D - -o /dev/null "
			     "http://127.0.0.1:%u/ | grep -qi '^Allow: GET, HEAD'",
			     rig.port), 0, "405 without Allow: GET, HEAD");
}
