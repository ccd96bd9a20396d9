/*
 * Fuzz target: the metrics endpoint's request handling. A live engine
 * serves sy_metrics_serve() on 127.0.0.1; each input becomes one HTTP
 * request sent over a real TCP connection, and the answer is read back
 * until the server closes.
 *
 * A request is built from pieces: a method, a path and a version, up to
 * eight header lines, a body that no header announces, CRLF or bare LF
 * line ends. Each piece is an entry of a table below, raw bytes, or (for
 * a header) a line of 1 to 80 KiB. A table entry says what it means
 * under the rules of docs/metrics.md ("The HTTP endpoint"), and the oracle
 * derives from the entries the status the endpoint owes, rule by rule in
 * the order they apply:
 *   1. libmicrohttpd, at the request line: one it cannot split into a
 *      method, a path and a version gets 400, 505 or no answer; a version
 *      HTTP/d.d other than 1.0 and 1.1 gets 505, any other version 400;
 *   2. libmicrohttpd, at each header line in turn: one without a colon
 *      gets 400, a head past a connection's memory (32 KiB) 431;
 *   3. libmicrohttpd, at the end of the head: HTTP/1.1 without Host gets
 *      400; without Transfer-Encoding, a first Content-Length that is not
 *      a number gets 400, and one past 2^64 413;
 *   4. the endpoint: a first Host that does not name the loopback gets
 *      400, an unknown path (the query string cut off, percent escapes
 *      decoded, a decoded NUL ending it) 404, a method other than GET and
 *      HEAD 405 with "Allow: GET, HEAD", a body announced (Content-Length
 *      above 0, or Transfer-Encoding) 413, and the rest 200.
 * The answer's status must be the one the rules give. A few pieces widen
 * that to a set, where libmicrohttpd may refuse (400) or pass what HTTP
 * forbids: bytes no token allows in a method or a path, Host or
 * Content-Length twice, both Transfer-Encoding and Content-Length; where
 * it takes a header line in ways no rule describes: a folded line (the
 * header it continues may be dropped, and the memory left for the head
 * halved), an empty header name (which may end the head, or hide the
 * headers after it); and a head between 30 and 32 KiB (431 or not). A
 * request with raw bytes in it may get any documented status. No answer
 * at all is right only where a rule says so, and where the request
 * carries bytes that the server does not read (a body, a head past its
 * memory, the lines after an early end of the head): closing a
 * connection with bytes unread resets it, which may discard the answer
 * on its way.
 *
 * Checked beyond the status: whatever the server sends starts with a
 * valid status line; a 200 carries the resource's Content-Type and a
 * Content-Length, and to GET that many bytes of body, which pass the
 * strict checker of their format (check.h), to HEAD none; anything after
 * them must be another answer (to bytes that followed the request); a 405
 * carries "Allow: GET, HEAD". The server answers within a bound and stays
 * up (the next input connects again).
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
#define HEADERS_MAX 8
#define ALL_LINES ((1u << HEADERS_MAX) - 1)
#define BODY_MAX 8192
/* libmicrohttpd gives a connection 32 KiB for the head and its own
 * records: a head of up to HEAD_FITS bytes fits (HEAD_FITS_FOLDED after a
 * folded line), one past HEAD_LIMIT never does. */
#define HEAD_FITS (30 * 1024)
#define HEAD_FITS_FOLDED (14 * 1024)
#define HEAD_LIMIT (32 * 1024)

#define N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

/* ---- what the pieces of a request mean ---- */

enum method_kind {
	M_GET,
	M_HEAD,
	M_OTHER,        /* any other method: 405 on a known path */
	M_SPLIT,        /* the request line no longer splits in three */
};

enum resource {
	R_PAGE,         /* / */
	R_DASHBOARD,    /* /dashboard.json */
	R_PROMETHEUS,   /* /metrics */
	R_JSON,         /* /metrics.json */
	R_NONE,         /* any other path: 404 */
	R_SPLIT,        /* the request line no longer splits in three */
};

enum version_kind {
	V_11,
	V_10,
	V_505,          /* HTTP/d.d, not 1.0 or 1.1 */
	V_400,          /* not a version */
};

enum header_kind {
	H_OTHER,        /* no rule reads it */
	H_HOST_OK,      /* names the loopback */
	H_HOST_BAD,     /* names something else */
	H_LENGTH_ZERO,  /* Content-Length of 0 */
	H_LENGTH,       /* Content-Length above 0 */
	H_LENGTH_BAD,   /* Content-Length that is not a number */
	H_LENGTH_HUGE,  /* Content-Length past 2^64 */
	H_CHUNKED,      /* Transfer-Encoding */
	H_NO_COLON,
	H_FOLD,         /* a line that continues the header before it */
	H_NO_NAME,      /* a colon with nothing before it */
};

/* lax: outside HTTP's grammar, so libmicrohttpd may refuse it (400). */
static const struct method {
	const char *text;
	enum method_kind kind;
	bool lax;
} methods[] = {
	{ "GET", M_GET, false }, { "HEAD", M_HEAD, false },
	{ "POST", M_OTHER, false }, { "PUT", M_OTHER, false },
	{ "DELETE", M_OTHER, false }, { "OPTIONS", M_OTHER, false },
	{ "PATCH", M_OTHER, false }, { "TRACE", M_OTHER, false },
	{ "CONNECT", M_OTHER, false }, { "get", M_OTHER, false },
	{ "M-SEARCH", M_OTHER, false }, { "GET\t", M_OTHER, true },
	{ "\xff", M_OTHER, true }, { "G ET", M_SPLIT, false },
	{ "", M_SPLIT, false },
};

static const struct path {
	const char *text;
	enum resource res;
	bool lax;
} paths[] = {
	{ "/", R_PAGE, false }, { "/dashboard.json", R_DASHBOARD, false },
	{ "/metrics", R_PROMETHEUS, false }, { "/metrics.json", R_JSON, false },
	{ "/?", R_PAGE, false },
	{ "/dashboard.json?q=a&problems=1", R_DASHBOARD, false },
	{ "/metrics?x=1", R_PROMETHEUS, false },
	{ "/metrics.json?", R_JSON, false },
	{ "/metric%73", R_PROMETHEUS, false },
	{ "/dashboard%2Ejson", R_DASHBOARD, false },
	{ "/%00", R_PAGE, false }, { "/metrics.json%00.txt", R_JSON, false },
	{ "/nope", R_NONE, false }, { "/metrics/", R_NONE, false },
	{ "/METRICS", R_NONE, false }, { "/index.html", R_NONE, false },
	{ "*", R_NONE, false }, { "http://127.0.0.1/metrics", R_NONE, false },
	{ "/..%2f..", R_NONE, false }, { "//metrics", R_NONE, false },
	{ "/metrics.json#f", R_NONE, true }, { "/metrics%", R_NONE, true },
	{ "/\xc3\xa9", R_NONE, true }, { "", R_SPLIT, false },
};

static const struct version {
	const char *text;
	enum version_kind kind;
} versions[] = {
	{ "HTTP/1.1", V_11 }, { "HTTP/1.0", V_10 }, { "HTTP/2.0", V_505 },
	{ "HTTP/9.9", V_505 }, { "HTTP/1.1 x", V_400 }, { "HTTP/1", V_400 },
	{ "http/1.1", V_400 }, { "", V_400 }, { "HTTP/1.10", V_400 },
};

static const struct header {
	const char *text;
	enum header_kind kind;
} headers[] = {
	{ "Host: 127.0.0.1", H_HOST_OK }, { "Host: localhost:9464", H_HOST_OK },
	{ "Host: LOCALHOST", H_HOST_OK }, { "Host: 127.1.2.3:80", H_HOST_OK },
	{ "Host: example.com", H_HOST_BAD }, { "Host: 128.0.0.1", H_HOST_BAD },
	{ "Host: [::1]", H_HOST_BAD }, { "Host: localhost:", H_HOST_BAD },
	{ "Host: 127.0.0.1:123456", H_HOST_BAD }, { "Host:", H_HOST_BAD },
	{ "Accept: */*", H_OTHER }, { "Connection: close", H_OTHER },
	{ "Connection: keep-alive", H_OTHER }, { "Connection: upgrade", H_OTHER },
	{ "Upgrade: h2c", H_OTHER }, { "User-Agent: fuzz/1", H_OTHER },
	{ "X-Fuzz: a b c", H_OTHER }, { "Accept-Encoding: gzip", H_OTHER },
	{ "Expect: 100-continue", H_OTHER },
	{ "Content-Length: 0", H_LENGTH_ZERO },
	{ "Content-Length: 000", H_LENGTH_ZERO },
	{ "Content-Length: 10", H_LENGTH }, { "Content-Length: 5", H_LENGTH },
	{ "Content-Length: -1", H_LENGTH_BAD },
	{ "Content-Length: abc", H_LENGTH_BAD },
	{ "Content-Length: 99999999999999999999", H_LENGTH_HUGE },
	{ "Transfer-Encoding: chunked", H_CHUNKED },
	{ "Transfer-Encoding: gzip, chunked", H_CHUNKED },
	{ "NoColon", H_NO_COLON }, { " Folded: line", H_FOLD },
	{ ": empty", H_NO_NAME },
};

/* ---- statuses, as sets ---- */

enum {
	ST_CLOSED = 1u << 0,    /* no answer */
	ST_200 = 1u << 1,
	ST_400 = 1u << 2,
	ST_404 = 1u << 3,
	ST_405 = 1u << 4,
	ST_413 = 1u << 5,
	ST_414 = 1u << 6,
	ST_431 = 1u << 7,
	ST_505 = 1u << 8,
	ST_ANY = (1u << 9) - 1, /* every documented outcome */
};

static const unsigned status_codes[] = {
	0, 200, 400, 404, 405, 413, 414, 431, 505,
};

/* The set that holds @p code alone; 0 for a code no rule gives. */
static unsigned status_set(unsigned code)
{
	for (unsigned i = 1; i < N(status_codes); i++)
		if (status_codes[i] == code)
			return 1u << i;
	return 0;
}

static void set_text(unsigned set, char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < N(status_codes) && used < cap; i++) {
		if (!(set & (1u << i)))
			continue;
		if (i)
			used += (size_t)snprintf(buf + used, cap - used, "%s%u",
						 used ? " or " : "",
						 status_codes[i]);
		else
			used += (size_t)snprintf(buf + used, cap - used,
						 "no answer");
	}
}

/* ---- the engine ---- */

static sy_engine *eng;
static unsigned port;
static bool serving;

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

		if (!m || sy_msg_send(eng, route, m) != 0)
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

/* ---- building a request ---- */

struct request {
	char *text;
	size_t len;
	bool raw;                       /* raw bytes in some piece */
	const struct method *method;    /* NULL where raw */
	const struct path *path;
	const struct version *version;
	unsigned nheaders;
	struct {
		const struct header *header; /* NULL: raw, or a big line */
		size_t end;             /* offset past the line's end */
	} lines[HEADERS_MAX];
	size_t head_len;                /* up to the empty line's end */
	size_t body_len;                /* bytes after the head */
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

static void fill(struct request *r, size_t n, bool letters)
{
	while (n-- && r->len < REQUEST_MAX)
		r->text[r->len++] = letters ? (char)('a' + n % 26) : 'b';
}

/* A table entry (its index), or raw bytes into @p raw (-1). */
static int choose(struct fuzz_in *in, unsigned n, char *raw)
{
	unsigned k = fuzz_pick(in, n + 1);

	if (k < n)
		return (int)k;
	fuzz_str(in, raw, RAW_MAX);
	return -1;
}

static void build(struct fuzz_in *in, struct request *r)
{
	char raw[RAW_MAX + 1];
	const char *eol;
	int k;

	eol = fuzz_u8(in) % 8 == 7 ? "\n" : "\r\n";
	k = choose(in, N(methods), raw);
	r->method = k < 0 ? NULL : &methods[k];
	adds(r, k < 0 ? raw : methods[k].text);
	adds(r, " ");
	k = choose(in, N(paths), raw);
	r->path = k < 0 ? NULL : &paths[k];
	adds(r, k < 0 ? raw : paths[k].text);
	adds(r, " ");
	k = choose(in, N(versions), raw);
	r->version = k < 0 ? NULL : &versions[k];
	adds(r, k < 0 ? raw : versions[k].text);
	adds(r, eol);
	r->raw = !r->method || !r->path || !r->version;
	r->nheaders = fuzz_pick(in, HEADERS_MAX + 1);
	for (unsigned h = 0; h < r->nheaders; h++) {
		r->lines[h].header = NULL;
		if (fuzz_u8(in) % 16 == 15) {
			/* Past the server's memory for one request, or near. */
			adds(r, "X-Big: ");
			fill(r, 1024 * (1 + (size_t)fuzz_pick(in, 80)), false);
		} else if ((k = choose(in, N(headers), raw)) >= 0) {
			r->lines[h].header = &headers[k];
			adds(r, headers[k].text);
		} else {
			r->raw = true;
			adds(r, raw);
		}
		adds(r, eol);
		r->lines[h].end = r->len;
	}
	adds(r, eol);
	r->head_len = r->len;
	fill(r, fuzz_uint(in, 2) % BODY_MAX, true);
	r->body_len = r->len - r->head_len;
}

/* ---- the oracle ---- */

/*
 * The status once libmicrohttpd has the whole head (rules 3 and 4), with
 * the headers whose bit is set in @p dropped left out.
 */
static unsigned end_of_head(const struct request *r, unsigned dropped)
{
	const struct header *host = NULL, *length = NULL;
	bool chunked = false;

	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct header *h = r->lines[i].header;

		if (!h || (dropped >> i) & 1)
			continue;
		switch (h->kind) {
		case H_HOST_OK:
		case H_HOST_BAD:
			if (!host)
				host = h;
			break;
		case H_LENGTH_ZERO:
		case H_LENGTH:
		case H_LENGTH_BAD:
		case H_LENGTH_HUGE:
			if (!length)
				length = h;
			break;
		case H_CHUNKED:
			chunked = true;
			break;
		default:
			break;
		}
	}
	if (r->version->kind == V_11 && !host)
		return ST_400;
	if (!chunked && length && length->kind == H_LENGTH_BAD)
		return ST_400;
	if (!chunked && length && length->kind == H_LENGTH_HUGE)
		return ST_413;
	if (host && host->kind == H_HOST_BAD)
		return ST_400;
	if (r->path->res == R_NONE)
		return ST_404;
	if (r->method->kind == M_OTHER)
		return ST_405;
	if (chunked || (length && length->kind != H_LENGTH_ZERO))
		return ST_413;
	return ST_200;
}

/*
 * The statuses at the end of the head, with the headers in @p gone left
 * out, and each of those in @p unsure kept or left out.
 */
static unsigned outcomes(const struct request *r, unsigned gone,
			 unsigned unsure)
{
	unsigned set = 0;

	for (unsigned d = unsure;; d = (d - 1) & unsure) {
		set |= end_of_head(r, gone | d);
		if (!d)
			break;
	}
	return set;
}

/* The statuses the rules allow for @p r (a set of ST_ bits). */
static unsigned expected(const struct request *r)
{
	unsigned set = 0, lax = 0, unsure = 0, last = HEADERS_MAX;
	unsigned hosts = 0, lengths = 0;
	size_t fits = HEAD_FITS;
	bool chunked = false;

	if (r->raw)
		return ST_ANY;
	/* The answer may be lost to a reset where bytes stay unread. */
	if (r->body_len)
		set |= ST_CLOSED;
	if (r->method->lax || r->path->lax)
		lax |= ST_400;
	if (r->method->kind == M_SPLIT || r->path->res == R_SPLIT)
		return set | ST_400 | ST_505 | ST_CLOSED;
	if (r->version->kind == V_505)
		return set | lax | ST_505;
	if (r->version->kind == V_400)
		return set | ST_400;
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct header *h = r->lines[i].header;

		/* A folded line takes a copy of what it continues from the
		 * connection's memory, which may keep the head to half of
		 * it. */
		if (h && h->kind == H_FOLD)
			fits = HEAD_FITS_FOLDED;
		if (r->lines[i].end > HEAD_LIMIT)
			return set | lax | ST_431 | ST_CLOSED;
		if (r->lines[i].end > fits)
			set |= ST_431 | ST_CLOSED;
		if (!h) {
			last = i;
			continue;
		}
		switch (h->kind) {
		case H_NO_COLON:
			return set | lax | ST_400;
		case H_FOLD:
			/* Not a header of its own: the one before may go. */
			if (last < HEADERS_MAX)
				unsure |= 1u << last;
			lax |= ST_400;
			continue;
		case H_NO_NAME:
			/* libmicrohttpd may take it for the end of the head,
			 * leaving the rest unread as such, or go on, any
			 * header after it then perhaps unseen. */
			set |= outcomes(r, ~0u << i & ALL_LINES, unsure) |
			       ST_CLOSED;
			unsure |= ~0u << (i + 1) & ALL_LINES;
			lax |= ST_400;
			break;
		case H_HOST_OK:
		case H_HOST_BAD:
			if (++hosts > 1)
				lax |= ST_400;
			break;
		case H_LENGTH_ZERO:
		case H_LENGTH:
		case H_LENGTH_BAD:
		case H_LENGTH_HUGE:
			if (++lengths > 1)
				lax |= ST_400;
			break;
		case H_CHUNKED:
			chunked = true;
			break;
		case H_OTHER:
			break;
		}
		last = i;
	}
	if (chunked && lengths)
		lax |= ST_400;
	if (r->head_len > HEAD_LIMIT)
		return set | lax | ST_431 | ST_CLOSED;
	if (r->head_len > fits)
		set |= ST_431 | ST_CLOSED;
	return set | lax | outcomes(r, 0, unsure);
}

/* ---- the exchange ---- */

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

/* ---- checking the answer ---- */

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

static bool value_is(const char *v, size_t vlen, const char *want)
{
	return v && vlen == strlen(want) && strncmp(v, want, vlen) == 0;
}

static const char *const content_types[] = {
	[R_PAGE] = "text/html; charset=utf-8",
	[R_DASHBOARD] = "application/json",
	[R_PROMETHEUS] = "text/plain; version=0.0.4; charset=utf-8",
	[R_JSON] = "application/json",
};

/* A request of raw bytes: the resource its 200 says it is. */
static enum resource resource_of(const char *type, size_t tlen,
				 const char *body, size_t body_len)
{
	static const char dash[] = "{\"version\":";

	if (value_is(type, tlen, content_types[R_PAGE]))
		return R_PAGE;
	if (value_is(type, tlen, content_types[R_PROMETHEUS]))
		return R_PROMETHEUS;
	if (!value_is(type, tlen, content_types[R_JSON]))
		fuzz_fail("200 with Content-Type \"%.*s\"", (int)tlen, type);
	return body_len >= sizeof(dash) - 1 &&
	       memcmp(body, dash, sizeof(dash) - 1) == 0 ? R_DASHBOARD : R_JSON;
}

static void check_body(enum resource res, const char *body, size_t len)
{
	static const char doctype[] = "<!doctype html>";
	struct check_names names = { 0 };
	char why[CHECK_WHY_MAX];
	bool ok;

	switch (res) {
	case R_PAGE:
		fuzz_check(len > sizeof(doctype) &&
			   memcmp(body, doctype, sizeof(doctype) - 1) == 0 &&
			   check_utf8(body, len),
			   "the page is not UTF-8 HTML: \"%.40s\"", body);
		return;
	case R_PROMETHEUS:
		ok = check_prometheus(body, len, &names, why);
		break;
	default:
		ok = check_json(body, len, &names, why);
		break;
	}
	check_names_clear(&names);
	fuzz_check(ok, "the body of a 200 (%s): %s",
		   res == R_PROMETHEUS ? "Prometheus" : "JSON", why);
}

/* Whether @p s (@p n bytes) is empty or begins another answer: what a
 * request's trailing bytes, read as a request of their own, may get. */
static bool nothing_or_answer(const char *s, size_t n)
{
	return n == 0 || (n >= 9 && memcmp(s, "HTTP/1.", 7) == 0);
}

/* A 200 whose head is at @p head; @p rest_len bytes follow it. */
static void check_ok(const struct request *r, const char *head,
		     const char *rest, size_t rest_len)
{
	unsigned long long length;
	const char *type, *v;
	enum resource res;
	size_t tlen, vlen;
	bool head_only;

	type = header(head, rest, "Content-Type", &tlen);
	fuzz_check(type, "200 without Content-Type");
	v = header(head, rest, "Content-Length", &vlen);
	fuzz_check(v, "200 without Content-Length");
	length = strtoull(v, NULL, 10);
	if (r->raw) {
		res = resource_of(type, tlen, rest, rest_len);
		head_only = nothing_or_answer(rest, rest_len);
	} else {
		res = r->path->res;
		head_only = r->method->kind == M_HEAD;
	}
	fuzz_check(value_is(type, tlen, content_types[res]),
		   "200 for %s with Content-Type \"%.*s\"", r->path ?
		   r->path->text : "a raw path", (int)tlen, type);
	if (head_only) {
		fuzz_check(nothing_or_answer(rest, rest_len),
			   "a body in a 200 to HEAD: \"%.20s\"", rest);
		return;
	}
	fuzz_check(length > 0 && length <= rest_len,
		   "200 with Content-Length %llu, %zu bytes after its head",
		   length, rest_len);
	fuzz_check(nothing_or_answer(rest + length, rest_len - length),
		   "200 with Content-Length %llu, then \"%.20s\"", length,
		   rest + length);
	check_body(res, rest, (size_t)length);
}

/* The request line, printable, for messages. */
static const char *request_line(const struct request *r)
{
	static char line[100];
	size_t o = 0;

	for (size_t i = 0; i < r->len && r->text[i] != '\r' &&
	     r->text[i] != '\n' && o + 5 < sizeof(line); i++) {
		unsigned char c = (unsigned char)r->text[i];

		if (c >= 0x20 && c < 0x7f)
			line[o++] = (char)c;
		else
			o += (size_t)snprintf(line + o, sizeof(line) - o,
					      "\\x%02x", c);
	}
	line[o] = '\0';
	return line;
}

static void check_answer(const struct request *r, char *answer, size_t len)
{
	unsigned want = expected(r), status;
	const char *body_at, *v;
	char text[100];
	size_t vlen;

	set_text(want, text, sizeof(text));
	if (len == 0) {
		fuzz_check(want & ST_CLOSED, "\"%s\": no answer, expected %s",
			   request_line(r), text);
		return;
	}
	fuzz_check(len >= 13 && (strncmp(answer, "HTTP/1.1 ", 9) == 0 ||
				 strncmp(answer, "HTTP/1.0 ", 9) == 0) &&
		   answer[9] >= '1' && answer[9] <= '5' &&
		   answer[10] >= '0' && answer[10] <= '9' &&
		   answer[11] >= '0' && answer[11] <= '9' && answer[12] == ' ',
		   "not a status line: \"%.40s\"", answer);
	status = (unsigned)strtoul(answer + 9, NULL, 10);
	fuzz_check(status_set(status) & want, "\"%s\": answered %u, expected %s",
		   request_line(r), status, text);
	body_at = strstr(answer, "\r\n\r\n");
	fuzz_check(body_at != NULL, "an answer without the end of its head");
	body_at += 4;
	if (status == 200)
		check_ok(r, answer, body_at, len - (size_t)(body_at - answer));
	if (status == 405) {
		v = header(answer, body_at, "Allow", &vlen);
		fuzz_check(value_is(v, vlen, "GET, HEAD"),
			   "405 without \"Allow: GET, HEAD\"");
	}
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
