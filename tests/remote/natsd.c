/* nats-server, helper processes and waits for the remote tests (natsd.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "switchyard.h"
#include "tests/remote/natsd.h"

static void nap_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

unsigned t_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool t_port_open(unsigned port, unsigned max_ms)
{
	for (unsigned waited = 0; waited <= max_ms; waited += 10) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		bool ok;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
		nap_ms(10);
	}
	return false;
}

static const char *server_path(void)
{
	const char *p = getenv("SY_NATS_SERVER");

	return p && *p ? p : "nats-server";
}

/* Fork and exec nats-server with @p argv; stdout and stderr to /dev/null. */
static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* A test that crashes takes its servers with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int start(struct t_natsd *d, char **argv)
{
	d->pid = spawn(argv);
	if (d->pid < 0)
		return -1;
	if (!t_port_open(d->port, 10000)) {
		t_natsd_kill(d);
		return -1;
	}
	return 0;
}

int t_natsd_start(struct t_natsd *d, const char *conf_text)
{
	char port[16];
	char *argv[8];
	int n = 0;

	memset(d, 0, sizeof(*d));
	d->port = t_free_port();
	snprintf(port, sizeof(port), "%u", d->port);
	snprintf(d->url, sizeof(d->url), "nats://127.0.0.1:%u", d->port);
	argv[n++] = (char *)server_path();
	argv[n++] = "-a";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = port;
	if (conf_text) {
		FILE *f;

		snprintf(d->conf, sizeof(d->conf), "/tmp/sy-natsd-%d-%u.conf",
			 (int)getpid(), d->port);
		f = fopen(d->conf, "w");
		if (!f)
			return -1;
		fprintf(f, "%s\n", conf_text);
		fclose(f);
		argv[n++] = "-c";
		argv[n++] = d->conf;
	}
	argv[n] = NULL;
	return start(d, argv);
}

int t_natsd_start_node(struct t_natsd *d, const unsigned *cports, unsigned n,
		       unsigned i)
{
	char port[16], cluster[64], routes[256] = "";
	char *argv[12];
	int k = 0;

	memset(d, 0, sizeof(*d));
	d->port = t_free_port();
	d->cport = cports[i];
	snprintf(port, sizeof(port), "%u", d->port);
	snprintf(d->url, sizeof(d->url), "nats://127.0.0.1:%u", d->port);
	snprintf(cluster, sizeof(cluster), "nats://127.0.0.1:%u", d->cport);
	for (unsigned j = 0; j < n; j++) {
		size_t len = strlen(routes);

		if (j != i)
			snprintf(routes + len, sizeof(routes) - len,
				 "%snats://127.0.0.1:%u", len ? "," : "",
				 cports[j]);
	}
	argv[k++] = (char *)server_path();
	argv[k++] = "-a";
	argv[k++] = "127.0.0.1";
	argv[k++] = "-p";
	argv[k++] = port;
	argv[k++] = "--cluster_name";
	argv[k++] = "sy";
	argv[k++] = "--cluster";
	argv[k++] = cluster;
	argv[k++] = "--routes";
	argv[k++] = routes;
	argv[k] = NULL;
	return start(d, argv);
}

/* Signal @p pid and reap it, SIGKILL after @p max_ms. */
static int end_process(pid_t pid, int sig, unsigned max_ms)
{
	int status = 0;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	for (unsigned waited = 0; waited < max_ms; waited += 5) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		nap_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

void t_natsd_stop(struct t_natsd *d)
{
	end_process(d->pid, SIGTERM, 5000);
	d->pid = 0;
	if (d->conf[0])
		unlink(d->conf);
}

void t_natsd_kill(struct t_natsd *d)
{
	end_process(d->pid, SIGKILL, 5000);
	d->pid = 0;
	if (d->conf[0])
		unlink(d->conf);
}

int t_peer_start(struct t_peer *p, char *const argv[])
{
	const char *path = getenv("SY_REMOTE_PEER");
	int fds[2];
	char line[64];
	size_t got = 0;

	p->pid = -1;
	p->out = -1;
	if (!path || pipe(fds))
		return -1;
	p->pid = fork();
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(path, argv);
		_exit(127);
	}
	close(fds[1]);
	p->out = fds[0];
	if (p->pid < 0)
		return -1;
	while (got < sizeof(line) - 1) {
		struct pollfd pf = { .fd = p->out, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, 10000) <= 0)
			return -1;
		r = read(p->out, line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		line[got] = '\0';
		if (strstr(line, "ready"))
			return 0;
	}
	return -1;
}

int t_peer_stop(struct t_peer *p)
{
	int status = end_process(p->pid, SIGTERM, 20000);

	if (p->out >= 0)
		close(p->out);
	p->pid = -1;
	return status;
}

void t_peer_kill(struct t_peer *p)
{
	end_process(p->pid, SIGKILL, 5000);
	if (p->out >= 0)
		close(p->out);
	p->pid = -1;
}

void t_quiet_stop(struct sy_engine *eng)
{
	struct sy_accounting acc;

	for (unsigned ms = 0; ms < 20000; ms++) {
		if (sy_engine_accounting(eng, &acc) || !acc.in_flight)
			break;
		nap_ms(1);
	}
	sy_engine_stop(eng);
}
