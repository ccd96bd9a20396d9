/*
 * A balanced route with a failing server: "round_robin" spreads messages
 * over three servers, one of which fails every message. The route has no
 * retries, so each failure ends in the engine's dead letter queue, where
 * the program lists the entries, reads a payload back, and purges them.
 * The accounting shows where every message went.
 *
 *   cc balanced.c $(pkg-config --cflags --libs switchyard)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <switchyard.h>

#define MESSAGES 30

static int work(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

static int fail(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return -1;                  /* the engine dead-letters the message */
}

static int setup(sy_engine *eng, uint32_t *route)
{
	uint32_t servers[3];

	if (sy_server_add(eng, "good-1", work, NULL, NULL, &servers[0]) < 0 ||
	    sy_server_add(eng, "good-2", work, NULL, NULL, &servers[1]) < 0 ||
	    sy_server_add(eng, "flaky", fail, NULL, NULL, &servers[2]) < 0)
		return -1;
	return sy_route_add(eng, "jobs", &(struct sy_route_opts){
			    .policy = "round_robin", .servers = servers,
			    .n_servers = 3 }, route);
}

int main(void)
{
	struct sy_dead_letter dl[MESSAGES];
	struct sy_accounting acc;
	struct sy_config cfg;
	sy_engine *eng;
	uint32_t route;
	char payload[16];
	int n;

	sy_config_init(&cfg);
	if (sy_engine_create(&cfg, &eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		return 1;
	}
	if (setup(eng, &route) < 0 || sy_engine_start(eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		sy_engine_destroy(eng);
		return 1;
	}
	for (int i = 0; i < MESSAGES; i++) {
		sy_msg *m = sy_msg_alloc(eng, sizeof(payload));

		if (!m) {
			fprintf(stderr, "%s\n", sy_last_error());
			break;
		}
		snprintf(sy_msg_data(m), sizeof(payload), "job %d", i);
		sy_msg_set_tag(m, (uint64_t)i);
		if (sy_msg_send(eng, route, m) < 0) {
			fprintf(stderr, "%s\n", sy_last_error());
			sy_msg_free(m);
		}
	}
	sy_engine_stop(eng);        /* drains: every handler has run */

	n = sy_dlq_list(eng, NULL, dl, MESSAGES);
	printf("dead letters: %d\n", n);
	for (int i = 0; i < n && i < 3; i++) {
		sy_dlq_peek(eng, dl[i].id, payload, sizeof(payload));
		printf("  #%" PRIu64 " tag %" PRIu64 " \"%s\": reason %s, server %u\n",
		       dl[i].id, dl[i].tag, payload,
		       dl[i].reason == SY_DL_HANDLER_FAILED ? "handler_failed"
							    : "other",
		       (unsigned)dl[i].server);
	}
	sy_engine_accounting(eng, &acc);
	printf("accepted %" PRIu64 " = delivered %" PRIu64
	       " + dead-lettered %" PRIu64 " + evicted %" PRIu64
	       " + in flight %" PRIu64 "\n", acc.accepted, acc.delivered,
	       acc.dead_lettered, acc.evicted, acc.in_flight);
	printf("purged %d\n", sy_dlq_purge(eng, NULL));
	sy_engine_destroy(eng);
	return n == MESSAGES / 3 && acc.accepted == MESSAGES &&
	       acc.delivered + acc.dead_lettered == MESSAGES ? 0 : 1;
}
