/*
 * Malformed, oversized and fuzzed requests over raw sockets, while traffic
 * flows through the engine. Every request gets a status from the set the
 * endpoint documents (docs/metrics.md), or, for bytes that cannot begin a
 * request, a closed connection; none hangs, none crashes the process, and
 * afterwards the endpoint still serves and the engine still routes.
 *
 * The fuzzed requests come from a fixed seed, so a failure repeats; the
 * failing request's bytes are written to the scratch directory's
 * failed-request file and their length and case are in the message.
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

#include <criterion/criterion.h>

#include "rig.h"

#define REPLY_WAIT_MS 8000       /* a reply must come before the idle timeout (10 s) */
#define MUTATED 240u             /* mutations of valid requests */
#define GARBAGE 60u              /* random bytes */
#define LONG_PATHS 40u           /* random paths of random length */
#define SEED 0x5eedf00dULL

#define CLOSED 0                 /* status: closed without a response */

static struct rig rig;
static uint64_t rnd_state = SEED;

static void teardown(void)
{
	rig_stop(&rig);
}

static uint64_t rnd(void)
{
	/* xorshift64 */
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* A growable request. */
struct req {
	char *b;
	size_t len, cap;
};

static void req_add(struct req *q, const void *p, size_t n)
{
	if (q->len + n > q->cap) {
		q->cap = (q->len + n) * 2 + 64;
		q->b = realloc(q->b, q->cap);
		cr_assert_not_null(q->b);
	}
	memcpy(q->b + q->len, p, n);
	q->len += n;
}

static void req_str(struct req *q, const char *s)
{
	req_add(q, s, strlen(s));
}

static void req_fill(struct req *q, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		req_add(q, &c, 1);
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_endpoint(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	sa.sin_port = htons((uint16_t)rig.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect: %s", strerror(errno));
	return fd;
}

/*
 * Send @p len bytes on a new connection, close our side, and read until the
 * server closes. The status code of the (first) response; CLOSED if the
 * server closed without one; -1 if nothing came within REPLY_WAIT_MS.
 */
static int exchange(const void *req, size_t len)
{
	uint64_t end = ms_now() + REPLY_WAIT_MS;
	const char *p = req;
	char head[64];
	size_t got = 0;
	int fd = connect_endpoint();
	int status = CLOSED;

	/* The server may answer (414, 431) and close before taking it all. */
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		p += n;
		len -= (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = ms_now();
		char buf[4096];
		ssize_t n;

		if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0) {
			status = -1;
			break;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		if (got < sizeof(head) - 1) {
			size_t k = (size_t)n < sizeof(head) - 1 - got ?
				   (size_t)n : sizeof(head) - 1 - got;

			memcpy(head + got, buf, k);
			got += k;
		}
	}
	close(fd);
	head[got] = '\0';
	if (status == -1)
		return -1;
	if (got >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && head[8] == ' ')
		return atoi(head + 9);
	return got ? -2 : CLOSED;
}

static unsigned tally[600];

static bool documented(int status)
{
	static const int allowed[] = {
		200, 400, 404, 405, 413, 414, 431, 505, CLOSED,
	};

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (status == allowed[i])
			return true;
	return false;
}

static void keep_failed(const struct req *q)
{
	FILE *f = fopen(rig_path(&rig, "failed-request"), "wb");

	if (f) {
		fwrite(q->b, 1, q->len, f);
		fclose(f);
	}
}

/* Send @p q; its status must be @p want (or, with want < 0, documented). */
static void expect(struct req *q, int want, const char *what, unsigned i)
{
	int got = exchange(q->b, q->len);

	if (got >= 0 && got < 600)
		tally[got]++;
	if ((want >= 0 && got != want) || !documented(got))
		keep_failed(q);
	if (want >= 0)
		cr_assert_eq(got, want, "%s #%u (%zu bytes): status %d, "
			     "expected %d", what, i, q->len, got, want);
	else
		cr_assert(documented(got), "%s #%u (%zu bytes): status %d "
			  "(-1: no reply, -2: not HTTP)", what, i, q->len, got);
	q->len = 0;
}

static void line(struct req *q, const char *method, const char *path,
		 const char *version)
{
	req_str(q, method);
	req_str(q, " ");
	req_str(q, path);
	req_str(q, " ");
	req_str(q, version);
	req_str(q, "\r\n");
}

static void simple(struct req *q, const char *method, const char *path)
{
	line(q, method, path, "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\n\r\n");
}

static void fixed_cases(struct req *q)
{
	static const char *const paths[] = {
		"/", "/dashboard.json", "/metrics", "/metrics.json",
	};
	static const char *const unknown[] = {
		"/x", "/metrics/", "/METRICS", "/dashboard.json/../metrics",
		"/%7e", "//", "/index.html", "/dashboard.json%20",
		"http://127.0.0.1/admin", "*",
	};
	static const char *const methods[] = {
		"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
		"get", "FOO", "M-SEARCH",
	};
	unsigned i = 0;

	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		simple(q, "GET", paths[k]);
		expect(q, 200, "GET", i++);
	}
	for (size_t k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
		simple(q, "GET", unknown[k]);
		expect(q, 404, "unknown path", i++);
	}
	for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
		simple(q, methods[k], paths[k % 4]);
		expect(q, 405, "method", i++);
	}

	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello");
	expect(q, 413, "GET with a body", i++);
	line(q, "GET", "/dashboard.json", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n");
	expect(q, 413, "GET chunked", i++);
	line(q, "GET", "/", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nContent-Length: 1000000000000\r\n\r\n");
	expect(q, 413, "GET announcing a huge body", i++);
	line(q, "POST", "/metrics", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n");
	req_fill(q, 'x', 100000);
	expect(q, 405, "POST with a large body", i++);

	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "\r\n");
	expect(q, 400, "HTTP/1.1 without Host", i++);
	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "Host: rebound.example\r\n\r\n");
	expect(q, 400, "Host not the loopback", i++);
	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1:99999999\r\n\r\n");
	expect(q, 400, "Host with a bad port", i++);
	req_str(q, "GET /metrics\r\n\r\n");
	expect(q, 400, "HTTP/0.9", i++);
	line(q, "GET", "/metrics", "FOO/1.1");
	req_str(q, "Host: 127.0.0.1\r\n\r\n");
	expect(q, 400, "unknown protocol", i++);
	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nNoColon\r\n\r\n");
	expect(q, 400, "header without a colon", i++);
	line(q, "GET", "/metrics", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nContent-Length: abc\r\n\r\n");
	expect(q, 400, "bad Content-Length", i++);
	line(q, "GET", "/metrics", "HTTP/2.0");
	req_str(q, "Host: 127.0.0.1\r\n\r\n");
	expect(q, 505, "HTTP/2.0", i++);

	req_str(q, "GET /");
	req_fill(q, 'a', 100000);
	req_str(q, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	expect(q, 414, "100 kB path", i++);
	line(q, "GET", "/", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\nX-Big: ");
	req_fill(q, 'b', 100000);
	req_str(q, "\r\n\r\n");
	expect(q, 431, "100 kB header", i++);
	line(q, "GET", "/", "HTTP/1.1");
	req_str(q, "Host: 127.0.0.1\r\n");
	for (unsigned h = 0; h < 5000; h++) {
		char hdr[32];

		snprintf(hdr, sizeof(hdr), "X-%u: y\r\n", h);
		req_str(q, hdr);
	}
	req_str(q, "\r\n");
	expect(q, 431, "5000 headers", i++);

	simple(q, "GET", "/metrics");
	simple(q, "DELETE", "/metrics");
	expect(q, 200, "pipelined GET then DELETE", i++);
	req_str(q, "");
	expect(q, CLOSED, "nothing", i++);
	req_str(q, "garbage\r\n\r\n");
	expect(q, CLOSED, "a request line without path and version", i++);
	req_str(q, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	expect(q, CLOSED, "a request cut short", i++);
}

static const char *const bases[] = {
	"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n",
	"GET /dashboard.json HTTP/1.1\r\nHost: localhost:9464\r\n"
	"Accept: application/json\r\nConnection: close\r\n\r\n",
	"GET /metrics HTTP/1.0\r\nUser-Agent: fuzz\r\n\r\n",
	"POST /metrics.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	"Content-Length: 4\r\n\r\nabcd",
};

static void mutate(struct req *q)
{
	const char *base = bases[rnd_below(sizeof(bases) / sizeof(bases[0]))];
	unsigned ops = 1 + (unsigned)rnd_below(8);

	req_str(q, base);
	for (unsigned o = 0; o < ops && q->len; o++) {
		size_t at = rnd_below(q->len);
		char c = (char)rnd();

		switch (rnd_below(5)) {
		case 0: /* change a byte */
			q->b[at] = c;
			break;
		case 1: /* insert one */
			req_add(q, &c, 1);
			memmove(q->b + at + 1, q->b + at, q->len - at - 1);
			q->b[at] = c;
			break;
		case 2: /* delete one */
			memmove(q->b + at, q->b + at + 1, q->len - at - 1);
			q->len--;
			break;
		case 3: { /* repeat a stretch */
			size_t n = 1 + rnd_below(q->len - at < 64 ? q->len - at : 64);
			char tmp[64];

			memcpy(tmp, q->b + at, n);
			for (unsigned k = rnd_below(200); k; k--)
				req_add(q, tmp, n);
			break;
		}
		default: /* cut it short */
			q->len = at;
			break;
		}
	}
}

static void fuzzed_cases(struct req *q)
{
	for (unsigned i = 0; i < MUTATED; i++) {
		mutate(q);
		expect(q, -1, "mutated request", i);
	}
	for (unsigned i = 0; i < GARBAGE; i++) {
		size_t n = 1 + rnd_below(2000);

		for (size_t k = 0; k < n; k++) {
			char c = (char)rnd();

			req_add(q, &c, 1);
		}
		if (i % 2)
			req_str(q, "\r\n\r\n");
		expect(q, -1, "random bytes", i);
	}
	for (unsigned i = 0; i < LONG_PATHS; i++) {
		size_t n = 1 + rnd_below(i % 2 ? 40000 : 200);

		req_str(q, "GET /");
		for (size_t k = 0; k < n; k++) {
			char c = (char)(0x21 + rnd_below(0x5e));

			req_add(q, &c, 1);
		}
		req_str(q, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
		expect(q, -1, "random path", i);
	}
}

/* Clients that give up in the middle of a request free their connection
 * slots at once: more of them than the endpoint serves at a time, then a
 * request that must be answered before the idle timeout. */
static void abandoned_requests(struct req *q)
{
	for (unsigned i = 0; i < 40; i++) {
		int fd = connect_endpoint();

		send(fd, "GET /metrics HTTP/1.1\r\nHost: 127", 32, MSG_NOSIGNAL);
		close(fd);
	}
	simple(q, "GET", "/dashboard.json");
	expect(q, 200, "after 40 abandoned requests", 0);
}

Test(dashboard_http, answers_malformed_requests_and_keeps_serving,
     .fini = teardown)
{
	struct req q = { 0 };
	struct sy_accounting a;
	uint64_t sent_before;
	char summary[512];
	size_t used = 0;

	rig_start(&rig, 6, 5);
	rig_wait_ready(&rig);
	fixed_cases(&q);
	fuzzed_cases(&q);
	abandoned_requests(&q);

	/* Still serving, still routing. */
	sent_before = atomic_load(&rig.sent);
	simple(&q, "GET", "/metrics");
	expect(&q, 200, "GET /metrics at the end", 0);
	simple(&q, "GET", "/");
	expect(&q, 200, "GET / at the end", 0);
	for (unsigned i = 0; i < 500 && atomic_load(&rig.sent) == sent_before; i++)
		usleep(10000);
	cr_assert_gt(atomic_load(&rig.sent), sent_before,
		     "the engine stopped accepting messages");
	rig_stop_traffic(&rig);
	cr_assert_eq(sy_engine_stop(rig.eng), 0);
	cr_assert_eq(sy_engine_accounting(rig.eng, &a), 0);
	cr_assert_eq(a.in_flight, 0u);
	cr_assert_eq(a.accepted, a.delivered + a.dead_lettered + a.evicted);
	free(q.b);

	for (int s = 0; s < 600; s++)
		if (tally[s])
			used += (size_t)snprintf(summary + used,
						 sizeof(summary) - used,
						 " %d:%u", s, tally[s]);
	summary[used] = '\0';
	cr_log_info("statuses (code:count, 0 closed):%s", summary);
}
