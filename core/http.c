/*
 * The metrics endpoint: GET /metrics (Prometheus text) and GET /metrics.json
 * served by libmicrohttpd on a loopback address.
 *
 * The daemon runs its own polling thread. Each request takes a reference to
 * the latest snapshot (sy_metrics_snapshot(): no lock), formats it and drops
 * the reference, so a scrape never blocks the collector, a worker or a
 * sender, and never sees a snapshot change under it. The endpoint reads
 * nothing else of the engine.
 *
 * Start and stop are control calls: eng->http is set and cleared under
 * eng->lock. Stop takes the daemon out of the engine under the lock, then
 * stops it (joining its thread, which may be in a request) with the lock
 * released.
 *
 * Built without libmicrohttpd (meson -Dhttp=disabled), serving fails with
 * -ENOTSUP and stopping does nothing.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/engine.h"
#include "core/error.h"

#ifdef SY_HAVE_MICROHTTPD

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

/* enum MHD_Result replaced int as the callbacks' return type in 0.9.71. */
#if MHD_VERSION >= 0x00097100
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

#define HTTP_CONNECTIONS 16      /* scrapers served at once */
#define HTTP_IDLE_TIMEOUT_S 10   /* an idle connection is closed after this */

struct sy__http {
	struct MHD_Daemon *daemon;
	struct sy_engine *eng;
};

static mhd_result reply_text(struct MHD_Connection *c, unsigned status,
			     const char *text, const char *allow)
{
	struct MHD_Response *r;
	mhd_result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Runs on the daemon's thread, once per request (on its headers). */
static mhd_result handle_request(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **req_cls)
{
	struct sy__http *h = cls;
	struct MHD_Response *r;
	enum sy_format fmt;
	const char *type;
	sy_snapshot *snap;
	mhd_result ret;
	size_t len;
	char *buf;
	int rc;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(url, "/metrics") == 0) {
		fmt = SY_FORMAT_PROMETHEUS;
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strcmp(url, "/metrics.json") == 0) {
		fmt = SY_FORMAT_JSON;
		type = "application/json";
	} else {
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed\n", MHD_HTTP_METHOD_GET);

	snap = sy_metrics_snapshot(h->eng);
	if (!snap)
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "no metrics snapshot yet\n", NULL);
	rc = sy_snapshot_format(snap, fmt, &buf, &len);
	sy_snapshot_release(snap);
	if (rc)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "cannot format the snapshot\n", NULL);

	/* The response frees buf (malloc'd by sy_snapshot_format). */
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* A listening TCP socket on @p sa: its fd, or a negative errno. */
static int listen_on(const struct sockaddr_in *sa)
{
	int one = 1;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sy__fail(-ENOMEM, "metrics endpoint: socket: %s",
				strerror(errno));
	/* Rebind at once after a restart, past connections in TIME_WAIT;
	 * on Linux it still refuses a port another socket listens on. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		int err = errno;

		close(fd);
		return sy__fail(err == EADDRINUSE ? -EADDRINUSE : -EINVAL,
				"metrics endpoint: bind %s:%u: %s",
				inet_ntoa(sa->sin_addr), ntohs(sa->sin_port),
				strerror(err));
	}
	if (listen(fd, HTTP_CONNECTIONS) != 0) {
		int err = errno;

		close(fd);
		return sy__fail(err == EADDRINUSE ? -EADDRINUSE : -ENOMEM,
				"metrics endpoint: listen: %s", strerror(err));
	}
	return fd;
}

static unsigned bound_port(struct MHD_Daemon *d, int fd)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port)
		return info->port;
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0)
		return ntohs(sa.sin_port);
	return 0;
}

SY_API int sy_metrics_serve(sy_engine *eng, const char *addr, unsigned port,
			    unsigned *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct sy__http *h;
	int fd, rc = 0;

	if (!addr)
		addr = "127.0.0.1";
	if (port > 65535)
		return sy__fail(-EINVAL, "metrics endpoint: port %u above 65535",
				port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return sy__fail(-EINVAL,
				"metrics endpoint: \"%s\" is not an IPv4 address",
				addr);
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return sy__fail(-EINVAL,
				"metrics endpoint: %s is not a loopback address",
				addr);
	if (!eng->cfg.metrics)
		return sy__fail(-ENOTSUP, "metrics endpoint: metrics are off");
	sa.sin_port = htons((uint16_t)port);

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->eng = eng;
	pthread_mutex_lock(&eng->lock);
	if (eng->http) {
		rc = sy__fail(-EALREADY, "metrics endpoint: already serving");
		goto out_unlock;
	}
	fd = listen_on(&sa);
	if (fd < 0) {
		rc = fd;
		goto out_unlock;
	}
	/* A running daemon owns fd and closes it when it stops; one that
	 * fails to start leaves it to us. */
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_AUTO,
				     0, NULL, NULL, handle_request, h,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned)HTTP_CONNECTIONS,
				     MHD_OPTION_CONNECTION_TIMEOUT,
				     (unsigned)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_END);
	if (!h->daemon) {
		close(fd);
		rc = sy__fail(-ENOMEM,
			      "metrics endpoint: the HTTP daemon did not start");
		goto out_unlock;
	}
	if (bound)
		*bound = bound_port(h->daemon, fd);
	eng->http = h;
	h = NULL;
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	free(h);
	return rc;
}

SY_API void sy_metrics_serve_stop(sy_engine *eng)
{
	struct sy__http *h;

	pthread_mutex_lock(&eng->lock);
	h = eng->http;
	eng->http = NULL;
	pthread_mutex_unlock(&eng->lock);
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);
	free(h);
}

#else /* !SY_HAVE_MICROHTTPD */

SY_API int sy_metrics_serve(sy_engine *eng, const char *addr, unsigned port,
			    unsigned *bound)
{
	(void)eng;
	(void)addr;
	(void)port;
	(void)bound;
	return sy__fail(-ENOTSUP,
			"metrics endpoint: built without libmicrohttpd");
}

SY_API void sy_metrics_serve_stop(sy_engine *eng)
{
	(void)eng;
}

#endif /* SY_HAVE_MICROHTTPD */
