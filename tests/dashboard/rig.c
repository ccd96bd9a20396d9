/*
 * The dashboard tests' engine and helpers (rig.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>

#include "rig.h"

#define READY_MS 20000u          /* rig_wait_ready() gives up after */
#define TRAFFIC_MAX_MS 600000u   /* the traffic thread stops by itself after */
#define SLOW_NS 300000L          /* slow-fail's handler sleeps this long */
#define FLAKY_EVERY 4u           /* flaky fails tags divisible by this */

static void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- handlers and probes ---- */

static int handle_ok(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)m;
	(void)ctx;
	return 0;
}

static int handle_slow_fail(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct timespec ts = { 0, SLOW_NS };

	(void)eng;
	(void)m;
	(void)ctx;
	nanosleep(&ts, NULL);
	return -EIO;
}

static int handle_flaky(sy_engine *eng, sy_msg *m, void *ctx)
{
	(void)eng;
	(void)ctx;
	return sy_msg_tag(m) % FLAKY_EVERY == 0 ? -EIO : 0;
}

static int probe_fails(sy_engine *eng, uint32_t server, void *ctx)
{
	(void)eng;
	(void)server;
	(void)ctx;
	return -ECONNREFUSED;
}

/* ---- the engine ---- */

static void *traffic_main(void *arg)
{
	struct rig *r = arg;
	uint64_t end = now_ms() + TRAFFIC_MAX_MS, tag = 0;

	while (!atomic_load(&r->stop) && now_ms() < end) {
		for (unsigned i = 0; i < r->n_routes; i++) {
			sy_msg *m = sy_msg_alloc(r->eng, 32);

			if (!m)
				continue;
			sy_msg_set_tag(m, ++tag);
			if (sy_msg_send(r->eng, r->route[i], m) == 0)
				atomic_fetch_add(&r->sent, 1);
			else
				sy_msg_free(m);
		}
		sleep_us(r->pause_us);
	}
	return NULL;
}

static void make_dir(struct rig *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/sy-dashboard-XXXXXX");
	cr_assert_not_null(mkdtemp(r->dir), "mkdtemp: %s", strerror(errno));
}

static void create_engine(struct rig *r)
{
	struct sy_config cfg;

	sy_config_init(&cfg);
	cfg.workers = 2;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.metrics_interval_ms = 100;
	cfg.latency_sample = 1; /* each route's window has latency samples */
	cr_assert_eq(sy_engine_create(&cfg, &r->eng), 0, "%s", sy_last_error());
}

static void serve(struct rig *r)
{
	int rc = sy_metrics_serve(r->eng, NULL, 0, &r->port);

	if (rc == -ENOTSUP) {
		/* A skipped test does not run its fini. */
		rig_stop(r);
		cr_skip_test("built without libmicrohttpd (-Dhttp=disabled)");
	}
	cr_assert_eq(rc, 0, "sy_metrics_serve: %s", sy_last_error());
	cr_assert_gt(r->port, 0u);
}

static void add_server(struct rig *r, const char *name, sy_handler_fn fn,
		       const struct sy_server_opts *opts)
{
	unsigned i = r->n_servers++;

	snprintf(r->server_name[i], RIG_NAME_MAX, "%s", name);
	cr_assert_eq(sy_server_add(r->eng, name, fn, NULL, opts, &r->server[i]),
		     0, "server %s: %s", name, sy_last_error());
}

/* @p bp_high: refuse at that fraction of a ring (0: no backpressure). */
static void add_route(struct rig *r, const char *name, const char *policy,
		      const unsigned *idx, unsigned n, bool dl_unreachable,
		      double bp_high)
{
	unsigned i = r->n_routes++;
	uint32_t ids[2];

	for (unsigned k = 0; k < n; k++)
		ids[k] = r->server[idx[k]];
	snprintf(r->route_name[i], RIG_NAME_MAX, "%s", name);
	cr_assert_eq(sy_route_add(r->eng, name, &(struct sy_route_opts){
		.policy = policy, .servers = ids, .n_servers = n,
		.dead_letter_unreachable = dl_unreachable,
		.backpressure = bp_high ? SY_BP_REJECT : SY_BP_OFF,
		.bp_high = bp_high }, &r->route[i]),
		0, "route %s: %s", name, sy_last_error());
}

void rig_start(struct rig *r, unsigned servers, unsigned routes)
{
	static const struct sy_breaker_opts breaker = {
		.consecutive_failures = 3,
		.open_ns = 3600ull * 1000000000ull,  /* stays open */
	};
	static const struct sy_health_opts health = {
		.probe = probe_fails,
		.interval_ns = 10000000ull,
		.unhealthy_threshold = 1,
	};
	char name[RIG_NAME_MAX];
	unsigned ok;

	cr_assert(servers > RIG_SPECIAL_SERVERS && servers <= RIG_MAX_SERVERS);
	cr_assert(routes >= RIG_SPECIAL_ROUTES && routes <= RIG_MAX_ROUTES);
	make_dir(r);
	create_engine(r);
	r->pause_us = 1000u * (1 + routes / 10);

	add_server(r, "slow-fail", handle_slow_fail,
		   &(struct sy_server_opts){ .worker = 0, .worker_set = true, .breaker = &breaker });
	add_server(r, "probe-down", handle_ok,
		   &(struct sy_server_opts){ .worker = -1, .health = &health });
	add_server(r, "flaky", handle_flaky, NULL);
	add_server(r, RIG_MARKUP_SERVER, handle_ok, NULL);
	while (r->n_servers < servers) {
		snprintf(name, sizeof(name), "srv-%03u", r->n_servers);
		add_server(r, name, handle_ok, NULL);
	}

	/* Servers from index 4 on always succeed. */
	ok = servers - 4;
	add_route(r, "payments", "direct", (unsigned[]){ 0 }, 1, true, 0);
	add_route(r, "orders", "round_robin", (unsigned[]){ 3, 4 }, 2, false,
		  0.5);
	add_route(r, "inventory", "round_robin", (unsigned[]){ 1, 4 }, 2,
		  false, 0.25);
	add_route(r, "audit", "direct", (unsigned[]){ 2 }, 1, false, 0);
	add_route(r, RIG_MARKUP_ROUTE, "round_robin", (unsigned[]){ 4, 5 }, 2,
		  false, 0);
	while (r->n_routes < routes) {
		unsigned i = r->n_routes;
		unsigned k = i - RIG_SPECIAL_ROUTES;

		snprintf(name, sizeof(name), "route-%02u", i);
		add_route(r, name, "round_robin", (unsigned[]){
			4 + (2 * k) % ok, 4 + (2 * k + 1) % ok }, 2, false, 0);
	}

	cr_assert_eq(sy_engine_start(r->eng), 0, "%s", sy_last_error());
	serve(r);
	atomic_store(&r->stop, false);
	cr_assert_eq(pthread_create(&r->traffic, NULL, traffic_main, r), 0);
	r->traffic_on = true;
}

void rig_start_idle(struct rig *r)
{
	make_dir(r);
	create_engine(r);
	serve(r);
}

void rig_wait_ready(struct rig *r)
{
	uint64_t end = now_ms() + READY_MS;
	enum sy_breaker_state state = SY_BREAKER_CLOSED;
	struct sy_dl_filter failed;
	bool healthy = true, flowing = false;
	size_t held = 0, handler_failed = 0;

	sy_dlq_filter_init(&failed);
	failed.reasons = 1u << SY_DL_HANDLER_FAILED;
	while (now_ms() < end) {
		sy_snapshot *snap = sy_metrics_snapshot(r->eng);

		if (snap) {
			const struct sy_series *s;

			s = sy_snapshot_find(snap, SY_SERIES_ROUTE, "orders");
			flowing = s && s->sent_per_s > 0;
			sy_snapshot_release(snap);
		}
		sy_breaker_state(r->eng, r->server[0], &state);
		sy_server_healthy(r->eng, r->server[1], &healthy);
		held = sy_dlq_count(r->eng, NULL);
		handler_failed = sy_dlq_count(r->eng, &failed);
		if (state == SY_BREAKER_OPEN && !healthy && held &&
		    handler_failed && flowing)
			return;
		sleep_us(10000);
	}
	cr_assert_fail("not ready after %u ms: breaker %d, healthy %d, %zu dead "
		"letters (%zu handler_failed), traffic %s", READY_MS,
		(int)state, healthy, held, handler_failed,
		flowing ? "flowing" : "not seen");
}

void rig_stop_traffic(struct rig *r)
{
	if (!r->traffic_on)
		return;
	atomic_store(&r->stop, true);
	pthread_join(r->traffic, NULL);
	r->traffic_on = false;
}

void rig_stop(struct rig *r)
{
	rig_stop_traffic(r);
	if (r->eng) {
		sy_metrics_serve_stop(r->eng);
		sy_engine_destroy(r->eng);
		r->eng = NULL;
	}
	if (r->dir[0])
		rig_run("rm -rf '%s'", r->dir);
	r->dir[0] = '\0';
}

/* ---- files and programs ---- */

const char *rig_path(const struct rig *r, const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", r->dir, name);
	return buf;
}

const char *rig_out_path(const struct rig *r, const char *name)
{
	static char buf[1024];
	const char *out = getenv("SY_DASHBOARD_OUT");

	snprintf(buf, sizeof(buf), "%s/%s", out && *out ? out : r->dir, name);
	return buf;
}

const char *rig_source_dir(void)
{
	return RIG_SOURCE_DIR;
}

int rig_run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st, n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof(cmd), "command too long");
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void rig_need(const char *program, const char *package)
{
	if (rig_run("command -v %s >/dev/null 2>&1", program) != 0)
		cr_assert_fail("%s is not installed (Debian package %s; .ci/deps "
			"installs it)", program, package);
}

void rig_browse(struct rig *r, const char *query, unsigned budget_ms,
		const char *dom, const char *png)
{
	static unsigned runs;
	char profile[256], log[256], what[1100];
	struct stat st;
	const char *out = dom ? dom : png;
	int rc;

	cr_assert((dom == NULL) != (png == NULL));
	rig_need("chromium", "chromium");
	snprintf(profile, sizeof(profile), "%s", rig_path(r, "profile"));
	snprintf(log, sizeof(log), "%s", rig_path(r, "chromium.log"));
	snprintf(what, sizeof(what), dom ? "--dump-dom" : "--screenshot='%s'",
		 png);
	rig_run("rm -rf '%s'", profile);
	/* The flags that keep it off the network: no background requests,
	 * no component updates, no sync, no QUIC. */
	rc = rig_run("timeout -k 5 120 chromium --headless --no-sandbox "
		     "--disable-gpu --disable-quic --no-first-run "
		     "--disable-background-networking "
		     "--disable-component-update --disable-sync "
		     "--hide-scrollbars --mute-audio --user-data-dir='%s' "
		     "--window-size=1400,1900 --virtual-time-budget=%u %s "
		     "'http://127.0.0.1:%u/%s' >'%s' 2>'%s'",
		     profile, budget_ms, what, r->port, query,
		     dom ? dom : "/dev/null", log);
	runs++;
	if (rc != 0)
		rig_run("tail -n 20 '%s' >&2", log);
	cr_assert_eq(rc, 0, "chromium run %u exited with %d (log above)",
		     runs, rc);
	cr_assert_eq(stat(out, &st), 0, "chromium wrote no %s", out);
	cr_assert_gt(st.st_size, 0, "chromium wrote an empty %s", out);
}

/* @p s as a JSON string; the names here are ASCII. */
static void put_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void put_names(FILE *f, const char *key, char names[][RIG_NAME_MAX],
		      unsigned n)
{
	fprintf(f, "\"%s\":[", key);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		put_json_string(f, names[i]);
	}
	fputs("]", f);
}

/* Each inbox's threshold as the snapshot gives it (the metrics suite
 * checks the snapshot; here, that the page shows it); none before the
 * first snapshot. */
static void put_thresholds(FILE *f, sy_engine *eng)
{
	sy_snapshot *snap = sy_metrics_snapshot(eng);
	struct sy_queue_depth q;

	fputs(",\"thresholds\":[", f);
	for (unsigned w = 0; snap && w < sy_snapshot_workers(snap); w++) {
		cr_assert_eq(sy_snapshot_queue(snap, w, &q), 0);
		fprintf(f, "%s%llu", w ? "," : "",
			(unsigned long long)q.bp_threshold);
	}
	fputc(']', f);
	sy_snapshot_release(snap);
}

void rig_write_expectations(const struct rig *r)
{
	FILE *f = fopen(rig_path(r, "expect.json"), "w");

	cr_assert_not_null(f, "expect.json: %s", strerror(errno));
	fputc('{', f);
	put_names(f, "routes", (char (*)[RIG_NAME_MAX])r->route_name,
		  r->n_routes);
	fputc(',', f);
	put_names(f, "servers", (char (*)[RIG_NAME_MAX])r->server_name,
		  r->n_servers);
	fputs(",\"open_server\":\"slow-fail\",\"down_server\":\"probe-down\""
	      ",\"markup_server\":", f);
	put_json_string(f, RIG_MARKUP_SERVER);
	fputs(",\"markup_route\":", f);
	put_json_string(f, RIG_MARKUP_ROUTE);
	put_thresholds(f, r->eng);
	fputs("}\n", f);
	cr_assert_eq(fclose(f), 0);
}
