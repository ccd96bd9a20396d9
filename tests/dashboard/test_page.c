/*
 * The dashboard in a real browser: headless Chromium loads the page from
 * the endpoint of an engine with traffic flowing, lets it refresh for a few
 * seconds of virtual time, and dumps its DOM, which check_dom.py reads the
 * way an operator would: the routes, a rate above 0, the failing server's
 * breaker open, the server whose probe fails down, dead letters by reason
 * and the newest of them, the accounting invariant, each inbox's
 * threshold, a route's latency in its row and (chosen by the address) in
 * the latency chart, and names made of markup shown as text. A screenshot of each page goes to
 * the build directory (dashboard.png, dashboard-large.png).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rig.h"

#define BUDGET_MS 8000u          /* virtual time the page runs */
/* Refresh every 100 ms of virtual time: the page's fetches take real time,
 * so that the collector publishes several snapshots meanwhile. */
#define QUERY "?refresh=100"

static struct rig rig;

static void teardown(void)
{
	rig_stop(&rig);
}

static void check_dom(const char *mode, const char *dom, const char *arg)
{
	rig_need("python3", "python3");
	cr_assert_eq(rig_run("python3 '%s/check_dom.py' %s '%s' '%s' %s",
			     rig_source_dir(), mode, dom,
			     rig_path(&rig, "expect.json"), arg), 0,
		     "check_dom.py %s %s (its complaints are above)", mode, arg);
}

static void screenshot(const char *name)
{
	unsigned char head[8];
	static const unsigned char png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n',
					      0x1a, '\n' };
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s", rig_out_path(&rig, name));
	remove(path);
	rig_browse(&rig, QUERY, BUDGET_MS, NULL, path);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fread(head, 1, sizeof(head), f), sizeof(head));
	fclose(f);
	cr_assert_eq(memcmp(head, png, sizeof(png)), 0, "%s is not a PNG",
		     path);
	cr_log_info("screenshot: %s", path);
}

Test(dashboard_page, shows_routes_rates_breakers_and_dead_letters,
     .fini = teardown)
{
	char dom[256];

	rig_start(&rig, 6, 5);
	rig_wait_ready(&rig);
	rig_write_expectations(&rig);
	snprintf(dom, sizeof(dom), "%s", rig_path(&rig, "page.html"));
	rig_browse(&rig, QUERY "&latency=orders", BUDGET_MS, dom, NULL);
	check_dom("page", dom, "");
	screenshot("dashboard.png");
}

Test(dashboard_page, stays_readable_with_100_servers_and_50_routes,
     .fini = teardown)
{
	char dom[256];

	rig_start(&rig, 100, 50);
	rig_wait_ready(&rig);
	rig_write_expectations(&rig);
	snprintf(dom, sizeof(dom), "%s", rig_path(&rig, "all.html"));
	rig_browse(&rig, QUERY, BUDGET_MS, dom, NULL);
	check_dom("all", dom, "");

	/* The search box, filled from the address: q= */
	snprintf(dom, sizeof(dom), "%s", rig_path(&rig, "filtered.html"));
	rig_browse(&rig, QUERY "&q=route-1", BUDGET_MS, dom, NULL);
	check_dom("filter", dom, "route-1");
	screenshot("dashboard-large.png");
}
