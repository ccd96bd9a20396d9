/*
 * The soak's metrics scraper: GET /metrics over a plain TCP socket, as a
 * Prometheus server would, reading until the endpoint closes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"

#define SCRAPE_WAIT_MS 5000

uint64_t soak_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void soak_sleep_us(unsigned us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000,
	};

	nanosleep(&ts, NULL);
}

bool soak_scrape(unsigned port)
{
	static const char request[] =
		"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Connection: close\r\n\r\n";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	uint64_t end = soak_now_ms() + SCRAPE_WAIT_MS;
	char head[32], buf[16384];
	size_t got = 0, total = 0;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)(sizeof(request) - 1)) {
		close(fd);
		return false;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = soak_now_ms();
		ssize_t n;

		if (now >= end || poll(&p, 1, (int)(end - now)) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		if (got < sizeof(head)) {
			size_t k = (size_t)n < sizeof(head) - got ?
				   (size_t)n : sizeof(head) - got;

			memcpy(head + got, buf, k);
			got += k;
		}
		total += (size_t)n;
	}
	close(fd);
	return got >= 12 && memcmp(head, "HTTP/1.1 200", 12) == 0 &&
	       total > 1000;
}
