/*
 * The metrics endpoint: libmicrohttpd on a loopback address, serving
 *
 *   GET /                the dashboard page (core/dashboard.html, embedded)
 *   GET /dashboard.json  what the page shows: the latest snapshot, the
 *                        accounting, the dead letter queue, a few settings
 *   GET /metrics         the latest snapshot as Prometheus text
 *   GET /metrics.json    the latest snapshot as JSON
 *
 * Read-only. Every request reads; none changes the engine. Only GET and
 * HEAD are served, and neither may carry a body. The snapshot comes from
 * sy_metrics_snapshot() (no lock: a request never blocks the collector, a
 * worker or a sender); /dashboard.json also calls sy_engine_accounting() and
 * the dead letter queue's count and list functions, which take the queue's
 * lock for one pass each: the failure paths that dead-letter a message wait
 * for it, the send and handler paths never do. Those, and the immutable
 * configuration in eng->cfg, are all the endpoint reads of the engine.
 *
 * Requests, in this order (docs/metrics.md has the table):
 *  1. a Host that does not name the loopback: 400 (DNS rebinding defence);
 *  2. an unknown path: 404;
 *  3. a method other than GET or HEAD: 405, with Allow;
 *  4. a body (Content-Length above 0, or Transfer-Encoding): 413;
 *  5. else the resource; 503 for a snapshot before the first one.
 * Requests that libmicrohttpd cannot parse never reach handle_request(): it
 * answers them itself (400; 414 for a request line and 431 for headers too
 * large for a connection's memory; 505 for an HTTP version it does not
 * speak), or closes the connection without a response (a request line it
 * cannot split into method, path and version; a request cut short).
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
#include "core/worker.h"

#ifdef SY_HAVE_MICROHTTPD

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/dashboard.h"

/* enum MHD_Result replaced int as the callbacks' return type in 0.9.71. */
#if MHD_VERSION >= 0x00097100
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

#ifndef MHD_HTTP_CONTENT_TOO_LARGE /* named so from 0.9.74 */
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

#define HTTP_CONNECTIONS 16      /* scrapers served at once */
#define HTTP_IDLE_TIMEOUT_S 10   /* an idle connection is closed after this */

#define DASH_VERSION 1           /* of the /dashboard.json document */
#define DASH_REFRESH_MIN_MS 500  /* the page refreshes at most this often */
#define DASH_BP_HIGH 0.8         /* sy_route_opts.bp_high's default */
#define DL_NEWEST 20             /* dead letters listed, newest first */
#define DL_SCAN 16384u           /* dead letters one request copies, at most */

struct sy__http {
	struct MHD_Daemon *daemon;
	struct sy_engine *eng;
};

enum resource {
	RES_PAGE,
	RES_DASHBOARD_JSON,
	RES_PROMETHEUS,
	RES_JSON,
};

static const struct {
	const char *path;
	enum resource res;
} resources[] = {
	{ "/", RES_PAGE },
	{ "/dashboard.json", RES_DASHBOARD_JSON },
	{ "/metrics", RES_PROMETHEUS },
	{ "/metrics.json", RES_JSON },
};

_Static_assert(SY_DL_REASONS == 10, "a dead letter reason needs a name below");

/* The names the JSON export gives the reasons (docs/metrics.md). */
static const char *const reason_names[SY_DL_REASONS] = {
	"unreachable", "circuit_open", "backpressure", "timeout",
	"handler_failed", "retries_exhausted", "shutdown", "remote",
	"overload", "parked",
};

/* ---- responses ---- */

/* Queue @p r with @p status and the headers every response carries. */
static mhd_result send_response(struct MHD_Connection *c, unsigned status,
				struct MHD_Response *r, const char *type)
{
	mhd_result ret;

	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS,
				"nosniff");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static mhd_result reply_text(struct MHD_Connection *c, unsigned status,
			     const char *text, const char *allow)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	return send_response(c, status, r, "text/plain; charset=utf-8");
}

/* 200 with @p buf (malloc'd), which the response frees. */
static mhd_result reply_data(struct MHD_Connection *c, char *buf, size_t len,
			     const char *type)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return send_response(c, MHD_HTTP_OK, r, type);
}

static mhd_result reply_page(struct MHD_Connection *c)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(sy__dashboard_page_len,
					    (void *)sy__dashboard_page,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Security-Policy",
				sy__dashboard_csp);
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return send_response(c, MHD_HTTP_OK, r, "text/html; charset=utf-8");
}

/* ---- /dashboard.json ---- */

static void put_reasons(FILE *f, const uint64_t v[SY_DL_REASONS])
{
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		fprintf(f, "%s\"%s\":%" PRIu64, r ? "," : "{", reason_names[r],
			v[r]);
	fputc('}', f);
}

static int newest_first(const void *a, const void *b)
{
	const struct sy_dead_letter *x = a, *y = b;

	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

/*
 * The earliest time since which (last_ns >= it) at most DL_SCAN dead
 * letters are held: a bisection with sy_dlq_count(), for queues that hold
 * more than one request should copy.
 */
static uint64_t dlq_recent_since(struct sy_engine *eng)
{
	struct sy_dl_filter f;
	uint64_t lo = 0, hi = UINT64_MAX;

	sy_dlq_filter_init(&f);
	while (lo < hi) {
		f.since_ns = lo + (hi - lo) / 2;
		if (sy_dlq_count(eng, &f) > DL_SCAN)
			lo = f.since_ns + 1;
		else
			hi = f.since_ns;
	}
	return lo;
}

/*
 * Up to DL_NEWEST of the newest dead letters (by id), newest first, of the
 * @p held the queue holds. The admin functions list oldest first, so this
 * copies every entry (at most DL_SCAN of the newest) and keeps the last.
 * @return entries written to @p out; -ENOMEM.
 */
static int dlq_newest(struct sy_engine *eng, size_t held,
		      struct sy_dead_letter out[DL_NEWEST])
{
	unsigned max = held < DL_SCAN ? (unsigned)held : DL_SCAN;
	struct sy_dead_letter *all;
	struct sy_dl_filter f;
	int n;

	if (!max)
		return 0;
	sy_dlq_filter_init(&f);
	if (held > DL_SCAN)
		f.since_ns = dlq_recent_since(eng);
	all = malloc(max * sizeof(*all));
	if (!all)
		return -ENOMEM;
	n = sy_dlq_list(eng, &f, all, max);
	if (n > 0) {
		qsort(all, (size_t)n, sizeof(*all), newest_first);
		if (n > DL_NEWEST)
			n = DL_NEWEST;
		memcpy(out, all, (size_t)n * sizeof(*all));
	}
	free(all);
	return n;
}

static int put_dlq(FILE *f, struct sy_engine *eng)
{
	struct sy_dead_letter newest[DL_NEWEST];
	uint64_t by_reason[SY_DL_REASONS];
	struct sy_dl_filter filter;
	uint64_t held = 0;
	int n;

	sy_dlq_filter_init(&filter);
	for (unsigned r = 0; r < SY_DL_REASONS; r++) {
		filter.reasons = 1u << r;
		by_reason[r] = sy_dlq_count(eng, &filter);
		held += by_reason[r];
	}
	n = dlq_newest(eng, held, newest);
	if (n < 0)
		return n;
	fprintf(f, ",\"dlq\":{\"held\":%" PRIu64 ",\"capacity\":%u,"
		"\"by_reason\":", held, eng->cfg.max_dead_letters);
	put_reasons(f, by_reason);
	fputs(",\"newest\":[", f);
	for (int i = 0; i < n; i++) {
		const struct sy_dead_letter *d = &newest[i];

		fprintf(f, "%s{\"id\":%" PRIu64 ",\"reason\":\"%s\","
			"\"route\":%" PRIu32 ",", i ? "," : "", d->id,
			reason_names[d->reason], d->route);
		if (d->server == SY_ANY)
			fputs("\"server\":null,", f);
		else
			fprintf(f, "\"server\":%" PRIu32 ",", d->server);
		/* tag and key as strings: JSON readers hold numbers in
		 * doubles, exact only up to 2^53. */
		fprintf(f, "\"attempts\":%u,\"first_ns\":%" PRIu64 ","
			"\"last_ns\":%" PRIu64 ",\"tag\":\"%" PRIu64 "\","
			"\"key\":\"%" PRIu64 "\",\"size\":%zu}", d->attempts,
			d->first_ns, d->last_ns, d->tag, d->key, d->size);
	}
	fputs("]}", f);
	return 0;
}

static void put_accounting(FILE *f, struct sy_engine *eng)
{
	struct sy_accounting a;

	sy_engine_accounting(eng, &a);
	fprintf(f, ",\"accounting\":{\"accepted\":%" PRIu64 ",\"delivered\":%"
		PRIu64 ",\"dead_lettered\":%" PRIu64 ",\"dead_lettered_by\":",
		a.accepted, a.delivered, a.dead_lettered);
	put_reasons(f, a.dead_lettered_by);
	fprintf(f, ",\"evicted\":%" PRIu64 ",\"in_flight\":%" PRIu64
		",\"retried\":%" PRIu64 ",\"dlq_held\":%" PRIu64
		",\"replayed\":%" PRIu64 ",\"failed_kept\":%" PRIu64
		",\"dropped\":%" PRIu64 ",\"returned\":%" PRIu64
		",\"holds\":%s}", a.evicted, a.in_flight, a.retried,
		a.dlq_held, a.replayed, a.failed_kept, a.dropped, a.returned,
		a.accepted == a.delivered + a.failed_kept + a.dead_lettered +
		a.evicted + a.dropped + a.returned + a.in_flight ?
		"true" : "false");
}

/*
 * The document /dashboard.json serves (docs/metrics.md, "The dashboard"),
 * into a new buffer (free() it). The snapshot is the JSON export, verbatim.
 * @return 0; -ENOMEM; an error of sy_snapshot_format().
 */
static int dashboard_json(struct sy_engine *eng, char **buf, size_t *len)
{
	unsigned interval = eng->cfg.metrics_interval_ms;
	sy_snapshot *snap;
	char *snap_json = NULL;
	size_t snap_len = 0;
	FILE *f;
	int rc;

	snap = sy_metrics_snapshot(eng);
	if (snap) {
		rc = sy_snapshot_format(snap, SY_FORMAT_JSON, &snap_json,
					&snap_len);
		sy_snapshot_release(snap);
		if (rc)
			return rc;
	}
	f = open_memstream(buf, len);
	if (!f) {
		free(snap_json);
		return -ENOMEM;
	}
	fprintf(f, "{\"version\":%d,\"refresh_ms\":%u,\"config\":{"
		"\"workers\":%u,\"interval_ms\":%u,\"ring_capacity\":%u,"
		"\"bp_high\":%g}", DASH_VERSION,
		interval > DASH_REFRESH_MIN_MS ? interval : DASH_REFRESH_MIN_MS,
		sy_engine_workers(eng), interval, eng->cfg.ring_size - 1,
		DASH_BP_HIGH);
	put_accounting(f, eng);
	rc = put_dlq(f, eng);
	fputs(",\"snapshot\":", f);
	if (snap_json)
		fwrite(snap_json, 1, snap_len, f);
	else
		fputs("null", f);
	fputs("}\n", f);
	free(snap_json);
	if (ferror(f) && !rc)
		rc = -ENOMEM;
	if (fclose(f) != 0 && !rc)
		rc = -ENOMEM;
	if (rc) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

/* ---- requests ---- */

/*
 * Whether the request's Host names the loopback: "localhost" or an IPv4
 * literal in 127.0.0.0/8, with or without a port. A page of another site
 * that points its own name at 127.0.0.1 (DNS rebinding) sends that name,
 * and is refused. Without Host (HTTP/1.0) it passes; libmicrohttpd itself
 * refuses HTTP/1.1 without one.
 */
static bool host_is_loopback(struct MHD_Connection *c)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_HOST);
	const char *colon;
	struct in_addr a;
	char name[32];
	size_t n;

	if (!host)
		return true;
	colon = strchr(host, ':');
	n = colon ? (size_t)(colon - host) : strlen(host);
	if (colon && (colon[1] == '\0' || strlen(colon + 1) > 5 ||
		      strspn(colon + 1, "0123456789") != strlen(colon + 1)))
		return false;
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, name, &a) == 1 &&
	       (ntohl(a.s_addr) >> 24) == 127;
}

/* Whether the request announces a body: GET and HEAD take none. */
static bool has_body(struct MHD_Connection *c)
{
	const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return len && len[strspn(len, "0")] != '\0';
}

static mhd_result serve_snapshot(struct sy__http *h, struct MHD_Connection *c,
				 enum sy_format fmt, const char *type)
{
	sy_snapshot *snap;
	size_t len;
	char *buf;
	int rc;

	snap = sy_metrics_snapshot(h->eng);
	if (!snap)
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "no metrics snapshot yet\n", NULL);
	rc = sy_snapshot_format(snap, fmt, &buf, &len);
	sy_snapshot_release(snap);
	if (rc)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "cannot format the snapshot\n", NULL);
	return reply_data(c, buf, len, type);
}

/*
 * Runs on the daemon's thread: once when a request's headers are in (it
 * answers then), and again for each piece of a body that came anyway,
 * which is discarded.
 */
static mhd_result handle_request(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **req_cls)
{
	static int answered;
	struct sy__http *h = cls;
	size_t len;
	char *buf;
	size_t i;

	(void)version;
	(void)upload_data;
	if (*req_cls) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	*req_cls = &answered;
	if (!host_is_loopback(c))
		return reply_text(c, MHD_HTTP_BAD_REQUEST,
				  "Host must name the loopback\n", NULL);
	/* url comes without its query string and percent-decoded: a decoded
	 * NUL ends it (docs/metrics.md states both). */
	for (i = 0; i < sizeof(resources) / sizeof(resources[0]); i++)
		if (strcmp(url, resources[i].path) == 0)
			break;
	if (i == sizeof(resources) / sizeof(resources[0]))
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed: the endpoint is read-only\n",
				  "GET, HEAD");
	if (has_body(c))
		return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE,
				  "a request body is not accepted\n", NULL);

	switch (resources[i].res) {
	case RES_PAGE:
		return reply_page(c);
	case RES_DASHBOARD_JSON:
		if (dashboard_json(h->eng, &buf, &len))
			return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "cannot build the dashboard data\n",
					  NULL);
		return reply_data(c, buf, len, "application/json");
	case RES_PROMETHEUS:
		return serve_snapshot(h, c, SY_FORMAT_PROMETHEUS,
				      "text/plain; version=0.0.4; charset=utf-8");
	case RES_JSON:
		return serve_snapshot(h, c, SY_FORMAT_JSON, "application/json");
	}
	return MHD_NO;
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

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK,
			"called from a handler"));
	if (!addr)
		addr = "127.0.0.1";
	if (port > 65535)
		return sy__failed(__func__, sy__fail(-EINVAL, "metrics endpoint: port %u above 65535",
				port));
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return sy__failed(__func__, sy__fail(-EINVAL,
				"metrics endpoint: \"%s\" is not an IPv4 address",
				addr));
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return sy__failed(__func__, sy__fail(-EINVAL,
				"metrics endpoint: %s is not a loopback address",
				addr));
	if (!eng->cfg.metrics)
		return sy__failed(__func__, sy__fail(-ENOTSUP, "metrics endpoint: metrics are off"));
	sa.sin_port = htons((uint16_t)port);

	h = calloc(1, sizeof(*h));
	if (!h)
		return sy__failed(__func__, -ENOMEM);
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
	 * fails to start leaves it to us. poll(), not epoll: with epoll,
	 * libmicrohttpd 0.9.75 keeps a connection whose client closed in the
	 * middle of a request until the idle timeout, so a few such clients
	 * would hold every connection slot. Strict parsing refuses HTTP/1.1
	 * without Host, among others. */
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_POLL,
				     0, NULL, NULL, handle_request, h,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned)HTTP_CONNECTIONS,
				     MHD_OPTION_CONNECTION_TIMEOUT,
				     (unsigned)HTTP_IDLE_TIMEOUT_S,
				     MHD_OPTION_STRICT_FOR_CLIENT, 1,
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
	return sy__ret(__func__, rc);
}

SY_API void sy_metrics_serve_stop(sy_engine *eng)
{
	struct sy__http *h;

	if (!eng || sy__refused_in_worker(eng, __func__))
		return;
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
	return sy__failed(__func__, sy__fail(-ENOTSUP,
			"metrics endpoint: built without libmicrohttpd"));
}

SY_API void sy_metrics_serve_stop(sy_engine *eng)
{
	(void)eng;
}

#endif /* SY_HAVE_MICROHTTPD */
