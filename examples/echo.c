/*
 * Request and reply: a server answers each request with its payload in
 * capitals; the main thread sends requests two ways, one at a time with
 * sy_msg_call() and several at once with sy_msg_request() and sy_producer_poll_replies(),
 * and matches replies to requests by their tag.
 *
 *   cc echo.c $(pkg-config --cflags --libs switchyard)
 */
#define _POSIX_C_SOURCE 200809L /* sched_yield() under -std=c11 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>

#include <switchyard.h>

#define SECOND_NS 1000000000ull

static int shout(sy_engine *eng, sy_msg *msg, void *ctx)
{
	char *text = sy_msg_data(msg);

	(void)eng;
	(void)ctx;
	if (!sy_msg_is_request(msg))
		return 0;                   /* nobody waits for an answer */
	for (size_t i = 0; i < sy_msg_size(msg); i++)
		text[i] = (char)toupper((unsigned char)text[i]);
	return sy_msg_reply(msg, msg);          /* the request becomes the reply */
}

static sy_msg *text_msg(sy_engine *eng, const char *text, uint64_t tag)
{
	sy_msg *m = sy_msg_alloc(eng, strlen(text) + 1);

	if (m) {
		memcpy(sy_msg_data(m), text, strlen(text) + 1);
		sy_msg_set_tag(m, tag);
	}
	return m;
}

int main(void)
{
	static const char *words[] = { "one", "two", "three" };
	struct sy_config cfg;
	sy_engine *eng;
	uint32_t server, route;
	sy_msg *req, *rep, *got[3];
	unsigned answered = 0;
	int rc;

	sy_config_init(&cfg);
	if (sy_engine_create(&cfg, &eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		return 1;
	}
	if (sy_server_add(eng, "shout", shout, NULL, NULL, &server) < 0 ||
	    sy_route_add(eng, "shout", &(struct sy_route_opts){
			 .policy = "direct", .servers = &server,
			 .n_servers = 1 }, &route) < 0 ||
	    sy_engine_start(eng) < 0) {
		fprintf(stderr, "%s\n", sy_last_error());
		sy_engine_destroy(eng);
		return 1;
	}

	/* One request, and wait for its reply. */
	req = text_msg(eng, "hello", 0);
	if (!req) {
		fprintf(stderr, "%s\n", sy_last_error());
		sy_engine_destroy(eng);
		return 1;
	}
	rc = sy_msg_call(eng, route, req, &rep, SECOND_NS);
	if (rc < 0) {
		fprintf(stderr, "sy_msg_call: %s\n", sy_strerror(rc));
		if (rc != -ETIMEDOUT)
			sy_msg_free(req);   /* not sent: still ours */
		sy_engine_destroy(eng);
		return 1;
	}
	printf("%s\n", (char *)sy_msg_data(rep));
	sy_msg_free(rep);

	/* Three requests in flight at once; the tag says which is which. */
	for (uint64_t i = 0; i < 3; i++) {
		req = text_msg(eng, words[i], i);
		if (!req || sy_msg_request(eng, route, req) < 0) {
			fprintf(stderr, "%s\n", sy_last_error());
			sy_msg_free(req);
			sy_engine_destroy(eng);
			return 1;
		}
	}
	for (int spins = 0; answered < 3 && spins < 10000000; spins++) {
		int n = sy_producer_poll_replies(eng, got, 3 - answered);

		for (int i = 0; i < n; i++) {
			printf("%s: %s\n", words[sy_msg_tag(got[i])],
			       (char *)sy_msg_data(got[i]));
			sy_msg_free(got[i]);
		}
		answered += n > 0 ? (unsigned)n : 0;
		if (n == 0)
			sched_yield();
	}

	sy_engine_stop(eng);
	sy_engine_destroy(eng);
	return answered == 3 ? 0 : 1;
}
