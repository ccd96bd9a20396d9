/*
 * Fuzz target: the metrics endpoint's request handling. A live engine
 * serves sy_metrics_serve() on 127.0.0.1; each input becomes one HTTP
 * request (method, path, version, headers, body, line endings, sizes up to
 * past the server's limits) sent over a real TCP connection, and the answer
 * is read back until the server closes.
 *
 * Checked for every request: the server answers within a bound and stays
 * up (the next input connects again), and whatever it sends starts with a
 * valid status line; a 200 carries a Content-Length that matches its body,
 * the documented Content-Type, and a body that passes the strict checker of
 * its format (check.h). For a well-formed request the status is the
 * documented one: 200 for GET /metrics and /metrics.json, 405 with
 * "Allow: GET" for another method on them, 404 for any other path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fuzz.h"
#include "switchyard.h"

#define REQUEST_MAX (96 * 1024)
#define ANSWER_MAX (1024 * 1024)
#define ANSWER_WAIT_MS 10000
#define RAW_MAX 200

static sy_engine *eng;
static unsigned port;
static bool serving;

static const char *const methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
};
#define WELL_FORMED_METHODS 7
static const char *const odd_methods[] = {
	"get", "TRACE", "CONNECT", "G ET", "", "GET\t", "\xff",
};
static const char *const paths[] = {
	"/metrics", "/metrics.json", "/", "/nope", "/metrics/",
};
#define WELL_FORMED_PATHS 5
static const char *const odd_paths[] = {
	"/metrics?x=1", "/metric%73", "/metrics.json#f", "*",
	"http://127.0.0.1/metrics", "/%00", "/..%2f..", "//metrics", "",
	"/metrics%", "/\xc3\xa9",
};
static const char *const odd_versions[] = {
	"HTTP/2.0", "HTTP/1.1 x", "HTTP/1", "http/1.1", "", "HTTP/1.10",
	"HTTP/9.9",
};
/* Headers that leave a request well formed. */
static const char *const plain_headers[] = {
	"Host: 127.0.0.1", "Accept: */*", "Connection: close",
	"User-Agent: fuzz/1", "X-Fuzz: a b c", "Accept-Encoding: gzip",
};
static const char *const odd_headers[] = {
	"Content-Length: 10", "Content-Length: -1",
	"Content-Length: 99999999999999999999", "Content-Length: 0",
	"Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
	"Expect: 100-continue", "Host:", ": empty", "NoColon",
	" Folded: line", "Content-Length: 5\r\nContent-Length: 6",
	"Connection: keep-alive", "Connection: upgrade\r\nUpgrade: h2c",
};

static int handler(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)ctx;
	return sy_msg_size(msg) % 4 == 3 ? -EIO : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sy_route_opts ropts = { .policy = "direct", .n_servers = 1 };
	struct sy_config cfg;
	uint32_t server, route;
	int rc;

	(void)argc;
	(void)argv;
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.pin = SY_PIN_NONE;
	cfg.metrics_interval_ms = 50;
	cfg.max_producers = 4;
	cfg.max_servers = 4;
	cfg.max_routes = 4;
	if (sy_engine_create(&cfg, &eng) != 0 ||
	    sy_server_add(eng, "s\"1\\\n\xff", handler, NULL, NULL, &server) != 0)
		fuzz_fail("engine: %s", sy_last_error());
	ropts.servers = &server;
	if (sy_route_add(eng, "r,1", &ropts, &route) != 0 ||
	    sy_engine_start(eng) != 0)
		fuzz_fail("engine: %s", sy_last_error());
	for (size_t size = 1; size <= 64; size++) {
		sy_msg *m = sy_msg_alloc(eng, size);

		if (!m || sy_send(eng, route, m) != 0)
			fuzz_fail("send: %s", sy_last_error());
	}
	if (sy_metrics_refresh(eng) != 0)
		fuzz_fail("no snapshot");
	rc = sy_metrics_serve(eng, NULL, 0, &port);
	if (rc == -ENOTSUP) {
		fprintf(stderr, "fuzz_http: built without the endpoint, nothing to fuzz\n");
		return 0;
	}
	if (rc != 0)
		fuzz_fail("serve: %s", sy_last_error());
	serving = true;
	return 0;
}

/* A request being built, and whether it stays well formed. */
struct request {
	char *text;
	size_t len;
	bool well_formed;
	bool head;
	const char *path;     /* a well-formed path, or NULL */
	const char *method;
};

static void add(struct request *r, const char *s, size_t n)
{
	if (n > REQUEST_MAX - r->len)
		n = REQUEST_MAX - r->len;
	memcpy(r->text + r->len, s, n);
	r->len += n;
}

static void adds(struct request *r, const char *s)
{
	add(r, s, strlen(s));
}

#define N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

/* One of @p good, @p odd or raw bytes, as the input chooses. */
static const char *choose(struct fuzz_in *in, const char *const *good,
			  unsigned ngood, const char *const *odd, unsigned nodd,
			  char *raw, bool *well_formed)
{
	unsigned k = fuzz_pick(in, ngood + nodd + 1);

	if (k < ngood)
		return good[k];
	*well_formed = false;
	if (k < ngood + nodd)
		return odd[k - ngood];
	fuzz_str(in, raw, RAW_MAX);
	return raw;
}

static void build(struct fuzz_in *in, struct request *r)
{
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0" };
	char raw[RAW_MAX + 1];
	const char *eol;
	unsigned nheaders;
	size_t body;

	r->well_formed = true;
	eol = fuzz_u8(in) % 8 == 7 ? (r->well_formed = false, "\n") : "\r\n";
	r->method = choose(in, methods, N(methods), odd_methods,
			   N(odd_methods), raw, &r->well_formed);
	r->head = strcmp(r->method, "HEAD") == 0;
	adds(r, r->method);
	adds(r, " ");
	r->path = choose(in, paths, N(paths), odd_paths, N(odd_paths), raw,
			 &r->well_formed);
	adds(r, r->path);
	adds(r, " ");
	adds(r, choose(in, versions, N(versions), odd_versions,
		       N(odd_versions), raw, &r->well_formed));
	adds(r, eol);
	nheaders = fuzz_pick(in, 9);
	for (unsigned h = 0; h < nheaders; h++) {
		uint8_t how = fuzz_u8(in);

		if (how % 16 == 15) {
			/* A header past the server's memory for one request. */
			size_t big = 1024 * (1 + fuzz_pick(in, 80));

			r->well_formed = false;
			adds(r, "X-Big: ");
			while (big-- && r->len < REQUEST_MAX)
				r->text[r->len++] = 'b';
		} else {
			adds(r, choose(in, plain_headers, N(plain_headers),
				       odd_headers, N(odd_headers), raw,
				       &r->well_formed));
		}
		adds(r, eol);
	}
	adds(r, eol);
	body = fuzz_uint(in, 2) % 8192;
	if (body) {
		r->well_formed = false;
		while (body-- && r->len < REQUEST_MAX)
			r->text[r->len++] = (char)('a' + body % 26);
	}
}

static int connect_server(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fuzz_check(fd >= 0, "socket: %s", strerror(errno));
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Close with a reset: no TIME_WAIT left behind per input. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		/* libFuzzer's timer signal may interrupt the wait for the
		 * server's accept; the connection goes on regardless. */
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		socklen_t len = sizeof(int);
		int err = errno, rc;

		fuzz_check(err == EINTR, "the endpoint refuses connections: %s",
			   strerror(err));
		while ((rc = poll(&p, 1, ANSWER_WAIT_MS)) < 0 && errno == EINTR)
			;
		fuzz_check(rc == 1, "no connection after %d ms", ANSWER_WAIT_MS);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		fuzz_check(err == 0, "the endpoint refuses connections: %s",
			   strerror(err));
	}
	return fd;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Send what the server takes (it may answer and close early), then read
 * until it closes. Returns the answer's length. */
static size_t exchange(const struct request *r, char *answer)
{
	uint64_t end = now_ms() + ANSWER_WAIT_MS;
	size_t sent = 0, got = 0;
	int fd = connect_server();

	while (sent < r->len) {
		ssize_t n = send(fd, r->text + sent, r->len - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ms();
		ssize_t n;

		fuzz_check(now < end, "no end to the answer after %d ms (%zu bytes)",
			   ANSWER_WAIT_MS, got);
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		n = recv(fd, answer + got, ANSWER_MAX - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		fuzz_check(got < ANSWER_MAX, "an answer above %d bytes",
			   ANSWER_MAX);
	}
	close(fd);
	answer[got] = '\0';
	return got;
}

/* The value of header @p name in the head [head, end), or NULL. */
static const char *header(const char *head, const char *end,
			  const char *name, size_t *vlen)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l + 2 < end;
	     l = strstr(l + 2, "\r\n")) {
		const char *v = l + 2;

		if (strncasecmp(v, name, n) == 0 && v[n] == ':') {
			const char *e = strstr(v, "\r\n");

			v += n + 1;
			while (*v == ' ')
				v++;
			*vlen = (size_t)(e - v);
			return v;
		}
	}
	return NULL;
}

static void check_ok_body(const struct request *r, const char *head,
			  const char *body_at, size_t body_len)
{
	bool json = strcmp(r->path, "/metrics.json") == 0;
	const char *want = json ? "application/json" :
			   "text/plain; version=0.0.4; charset=utf-8";
	struct check_names names = { 0 };
	char why[CHECK_WHY_MAX];
	const char *v;
	size_t vlen;

	v = header(head, body_at, "Content-Type", &vlen);
	fuzz_check(v && vlen == strlen(want) && strncmp(v, want, vlen) == 0,
		   "200 for %s with Content-Type \"%.*s\"", r->path,
		   v ? (int)vlen : 0, v ? v : "");
	v = header(head, body_at, "Content-Length", &vlen);
	fuzz_check(v && strtoul(v, NULL, 10) == body_len,
		   "200 with Content-Length %.*s, body %zu bytes",
		   v ? (int)vlen : 0, v ? v : "", body_len);
	fuzz_check(json ? check_json(body_at, body_len, &names, why) :
		   check_prometheus(body_at, body_len, &names, why),
		   "%s: %s", r->path, why);
	check_names_clear(&names);
}

static void check_answer(const struct request *r, char *answer, size_t len)
{
	const char *body_at, *v;
	unsigned status;
	size_t vlen;

	if (len == 0) {
		fuzz_check(!r->well_formed, "no answer to a well-formed request");
		return;
	}
	fuzz_check(len >= 13 && (strncmp(answer, "HTTP/1.1 ", 9) == 0 ||
				 strncmp(answer, "HTTP/1.0 ", 9) == 0) &&
		   answer[9] >= '1' && answer[9] <= '5' &&
		   answer[10] >= '0' && answer[10] <= '9' &&
		   answer[11] >= '0' && answer[11] <= '9' && answer[12] == ' ',
		   "not a status line: \"%.40s\"", answer);
	status = (unsigned)strtoul(answer + 9, NULL, 10);
	body_at = strstr(answer, "\r\n\r\n");
	fuzz_check(body_at != NULL, "an answer without the end of its head");
	body_at += 4;
	if (status == 200) {
		fuzz_check(r->well_formed || !r->head,
			   "200 to a HEAD request");
		if (!r->head)
			check_ok_body(r, answer, body_at,
				      len - (size_t)(body_at - answer));
	}
	if (!r->well_formed)
		return;
	if (strcmp(r->path, "/metrics") == 0 ||
	    strcmp(r->path, "/metrics.json") == 0) {
		if (strcmp(r->method, "GET") == 0) {
			fuzz_check(status == 200, "GET %s answered %u", r->path,
				   status);
			return;
		}
		fuzz_check(status == 405, "%s %s answered %u", r->method,
			   r->path, status);
		v = header(answer, body_at, "Allow", &vlen);
		fuzz_check(v && vlen == 3 && strncmp(v, "GET", 3) == 0,
			   "405 without \"Allow: GET\"");
		return;
	}
	fuzz_check(status == 404, "%s %s answered %u", r->method, r->path,
		   status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[REQUEST_MAX], answer[ANSWER_MAX + 1];
	struct fuzz_in in = { data, size };
	struct request r = { .text = text };
	size_t len;

	if (!serving)
		return 0;
	build(&in, &r);
	len = exchange(&r, answer);
	check_answer(&r, answer, len);
	return 0;
}
