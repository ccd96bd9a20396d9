/*
 * remote_peer: a second engine in a process of its own, for the remote
 * tests. It serves route "work" on a NATS subject in a queue group: each
 * message's first 8 bytes (its id) are appended to a log file before the
 * handler returns (one write(2), so a SIGKILL leaves whole records), and
 * a request is answered with its own payload. It prints "ready" once it
 * serves, and stops cleanly (draining) on SIGTERM.
 *
 *   remote_peer URL SUBJECT QUEUE LOGFILE
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "switchyard.h"

static int log_fd = -1;

static int work(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)ctx;
	if (sy_msg_size(msg) < 8 || write(log_fd, sy_msg_data(msg), 8) != 8)
		return -EIO;
	if (sy_msg_is_request(msg))
		sy_msg_reply(msg, msg);
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "remote_peer: %s: %s (%s)\n", what, sy_strerror(rc),
		sy_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	struct sy_config cfg;
	struct sy_nats_opts no = { 0 };
	struct sy_route_opts ro = { 0 };
	const char *urls[1];
	sy_engine *eng;
	uint32_t server, route;
	sigset_t set;
	int rc, sig;

	if (argc != 5) {
		fprintf(stderr, "usage: remote_peer URL SUBJECT QUEUE LOGFILE\n");
		return 2;
	}
	log_fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (log_fd < 0)
		return 1;
	/* Every thread the engine starts inherits the blocked signal. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.metrics = -1;
	if ((rc = sy_engine_create(&cfg, &eng)))
		return fail("create", rc);
	urls[0] = argv[1];
	no.urls = urls;
	no.n_urls = 1;
	no.name = "remote_peer";
	if ((rc = sy_server_add(eng, "work", work, NULL, NULL, &server)))
		return fail("server", rc);
	ro.servers = &server;
	ro.n_servers = 1;
	if ((rc = sy_route_add(eng, "work", &ro, &route)))
		return fail("route", rc);
	if ((rc = sy_engine_start(eng)))
		return fail("start", rc);
	if ((rc = sy_nats_connect(eng, &no)))
		return fail("connect", rc);
	if ((rc = sy_route_export(eng, route, argv[2], argv[3])))
		return fail("export", rc);
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
	sy_engine_destroy(eng);
	close(log_fd);
	return 0;
}
