/*
 * Metrics export: some traffic through a route, then the engine's latest
 * metrics snapshot as Prometheus text on standard output, and the route's
 * counters read from the snapshot directly. Pass "json", "csv", "erlang"
 * or "table" for another format.
 *
 *   cc metrics.c $(pkg-config --cflags --libs switchyard)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchyard.h>

static int work(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

static enum sy_format format_named(const char *name)
{
	if (!name || strcmp(name, "prometheus") == 0)
		return SY_FORMAT_PROMETHEUS;
	if (strcmp(name, "json") == 0)
		return SY_FORMAT_JSON;
	if (strcmp(name, "csv") == 0)
		return SY_FORMAT_CSV;
	if (strcmp(name, "erlang") == 0)
		return SY_FORMAT_ERLANG;
	return SY_FORMAT_TABLE;
}

int main(int argc, char **argv)
{
	const struct sy_series *series;
	struct sy_config cfg;
	sy_snapshot *snap;
	sy_engine *eng;
	uint32_t server, route;
	char *text;
	size_t len;

	sy_config_init(&cfg);
	cfg.latency_sample = 1;     /* time every message */
	if (sy_engine_create(&cfg, &eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		return 1;
	}
	if (sy_server_add(eng, "worker", work, NULL, NULL, &server) < 0 ||
	    sy_route_add(eng, "orders", &(struct sy_route_opts){
			 .servers = &server, .n_servers = 1 }, &route) < 0 ||
	    sy_engine_start(eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		sy_engine_destroy(eng);
		return 1;
	}
	for (int i = 0; i < 1000; i++) {
		sy_msg *m = sy_msg_alloc(eng, 16);

		if (m && sy_msg_send(eng, route, m) < 0)
			sy_msg_free(m);
	}
	sy_engine_stop(eng);
	/* A snapshot now, rather than at the collector's next interval. */
	if (sy_metrics_refresh(eng) < 0 || !(snap = sy_metrics_snapshot(eng))) {
		fprintf(stderr, "%s\n", sy_last_error());
		sy_engine_destroy(eng);
		return 1;
	}
	series = sy_snapshot_find(snap, SY_SERIES_ROUTE, "orders");
	if (series)
		fprintf(stderr, "orders: %" PRIu64 " sent, %" PRIu64
			" delivered\n", series->total.sent,
			series->total.delivered);
	if (sy_snapshot_format(snap, format_named(argc > 1 ? argv[1] : NULL),
			       &text, &len) == 0) {
		fwrite(text, 1, len, stdout);
		free(text);
	}
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
	return 0;
}
