/*
 * What the dashboard tests share: an engine with traffic flowing and the
 * metrics endpoint on a free loopback port, a scratch directory, and the
 * programs the tests run (headless Chromium, curl, jq, python3).
 *
 * The engine: two workers; a server "slow-fail" that sleeps in its handler
 * and always fails, behind a breaker that opens after a few failures and
 * stays open for an hour; a server "probe-down" whose health probe always
 * fails; a server "flaky" that fails one message in four; a server whose
 * name is HTML markup (RIG_MARKUP_SERVER); the rest "srv-NNN". Routes:
 * "payments" to slow-fail (dead-lettering what finds the circuit open),
 * "orders", "inventory" (probe-down and another), "audit" (flaky, no
 * retries: its failures are dead letters), a route named with markup
 * (RIG_MARKUP_ROUTE), the rest "route-NN". A thread sends one message to
 * every route per round until the rig stops.
 *
 * Every wait is bounded; a helper that fails fails the test (cr_assert).
 */
#ifndef SY_TESTS_DASHBOARD_RIG_H
#define SY_TESTS_DASHBOARD_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard.h"

#define RIG_MAX_ROUTES 64
#define RIG_MAX_SERVERS 128
#define RIG_NAME_MAX 64
#define RIG_SPECIAL_SERVERS 5    /* slow-fail, probe-down, flaky, markup, srv-004 */
#define RIG_SPECIAL_ROUTES 5     /* payments, orders, inventory, audit, markup */

#define RIG_MARKUP_SERVER "<img src=x onerror=alert(1)>"
#define RIG_MARKUP_ROUTE "r&d \"quoted\" <b>bold</b>"

struct rig {
	sy_engine *eng;
	unsigned port;
	char dir[64];                    /* scratch; removed by rig_stop() */
	unsigned n_servers, n_routes;
	uint32_t server[RIG_MAX_SERVERS];
	uint32_t route[RIG_MAX_ROUTES];
	char server_name[RIG_MAX_SERVERS][RIG_NAME_MAX];
	char route_name[RIG_MAX_ROUTES][RIG_NAME_MAX];
	unsigned pause_us;               /* between two rounds of sends */
	pthread_t traffic;
	bool traffic_on;
	_Atomic bool stop;
	_Atomic uint64_t sent;           /* sends accepted by the traffic thread */
};

/*
 * Make the scratch directory and, with @p servers > 0, start the engine
 * (at least RIG_SPECIAL_SERVERS + 1 servers and RIG_SPECIAL_ROUTES routes),
 * the traffic and the endpoint. Skips the test where the library was built
 * without the endpoint.
 */
void rig_start(struct rig *r, unsigned servers, unsigned routes);

/* An engine created but never started: no snapshot yet; serving. */
void rig_start_idle(struct rig *r);

/* Wait (bounded) until slow-fail's breaker is open, probe-down is marked
 * down, dead letters are held and a snapshot shows traffic on "orders". */
void rig_wait_ready(struct rig *r);

/* Stop the traffic (joined), the endpoint and the engine; remove the
 * scratch directory. Safe to call twice. */
void rig_stop(struct rig *r);

/* Stop the traffic thread only (joined). */
void rig_stop_traffic(struct rig *r);

/* A path in the scratch directory (a static buffer: use it at once). */
const char *rig_path(const struct rig *r, const char *name);

/* Where screenshots go: $SY_DASHBOARD_OUT (the build directory, set by
 * meson), else the scratch directory. A static buffer. */
const char *rig_out_path(const struct rig *r, const char *name);

/* Run a shell command; its exit status, or -1 when it did not exit. */
int rig_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fail the test, naming @p package, when @p program is not installed. */
void rig_need(const char *program, const char *package);

/*
 * Load http://127.0.0.1:PORT/@p query in headless Chromium and let the
 * page run for @p budget_ms of virtual time, then write its DOM (@p dom)
 * or a PNG screenshot (@p png) to the path given; the other is NULL.
 * Fails the test if Chromium fails or writes nothing.
 */
void rig_browse(struct rig *r, const char *query, unsigned budget_ms,
		const char *dom, const char *png);

/* Write the names the checks expect, as JSON, to rig_path("expect.json"). */
void rig_write_expectations(const struct rig *r);

/* The source directory of these tests (for check_dom.py). */
const char *rig_source_dir(void);

#endif /* SY_TESTS_DASHBOARD_RIG_H */
