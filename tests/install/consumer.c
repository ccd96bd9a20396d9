/* A program built only against the installed header and switchyard.pc. */
#include <stdio.h>
#include <string.h>

#include <switchyard.h>

static int echo(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)ctx;
	return sy_msg_reply(msg, msg);
}

int main(void)
{
	struct sy_config cfg;
	uint32_t server, route;
	sy_engine *eng;
	sy_msg *req, *rep = NULL;
	int rc;

	sy_config_init(&cfg);
	cfg.workers = 1;
	if ((rc = sy_engine_create(&cfg, &eng)) != 0) {
		fprintf(stderr, "create: %s\n", sy_last_error());
		return 1;
	}
	sy_server_add(eng, "echo", echo, NULL, NULL, &server);
	sy_route_add(eng, "echo", &(struct sy_route_opts){
		.policy = "direct", .servers = &server, .n_servers = 1 }, &route);
	sy_engine_start(eng);
	req = sy_msg_alloc(eng, 6);
	memcpy(sy_msg_data(req), "hello", 6);
	rc = sy_msg_call(eng, route, req, &rep, 5000000000u);
	if (rc == 0 && strcmp(sy_msg_data(rep), "hello") == 0)
		printf("installed library answers: %s\n", (char *)sy_msg_data(rep));
	else
		fprintf(stderr, "call: %s\n", sy_strerror(rc));
	sy_msg_free(rep);
	sy_engine_destroy(eng);
	return rc ? 1 : 0;
}
