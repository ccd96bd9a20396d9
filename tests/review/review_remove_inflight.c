/*
 * Review: servers removed and routes replaced while messages are in
 * flight, retries wait on a worker's list and replies are pending.
 *
 * A producer sends requests through route "r" (retries on) and takes the
 * replies; server "flaky" fails half of its runs, so retries are always
 * waiting. Meanwhile the control thread, ROUNDS times, replaces the route
 * without "flaky", removes it (waiting for its messages), adds it back
 * under the same name and replaces the route again with another policy.
 * Checked: every reply answers a request that was sent, at most once; the
 * accounting is exact after stop; no message is lost or handled after its
 * server was freed (the ASan build sees that).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "review.h"

#define ROUNDS 60
#define SENT_MAX 8000000

static sy_engine *eng;
static uint32_t route, stable[2];
static _Atomic uint32_t flaky_id;
static _Atomic int done;
static uint8_t replied[SENT_MAX];
static _Atomic uint64_t sent;

static int echo(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)ctx;
	sy_msg_reply(msg, msg);
	return 0;
}

static int flaky(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)ctx;
	if ((sy_msg_tag(msg) + sy_msg_attempts(msg)) % 2)
		return -EIO;
	sy_msg_reply(msg, msg);
	return 0;
}

static void take_replies(void)
{
	sy_msg *r[32];
	int n = sy_producer_poll_replies(eng, r, 32);

	for (int i = 0; i < n; i++) {
		uint64_t tag = sy_msg_tag(r[i]);

		review_check(tag < atomic_load(&sent),
			     "a reply with tag %llu, never sent",
			     (unsigned long long)tag);
		review_check(!replied[tag], "two replies to request %llu",
			     (unsigned long long)tag);
		replied[tag] = 1;
		sy_msg_free(r[i]);
	}
}

static void *producer(void *arg)
{
	(void)arg;
	review_check(sy_producer_attach(eng) == 0, "attach");
	while (!atomic_load(&done) && atomic_load(&sent) < SENT_MAX) {
		sy_msg *m = sy_msg_alloc(eng, 16);
		int rc;

		sy_msg_set_tag(m, atomic_load(&sent));
		rc = sy_msg_request(eng, route, m);
		if (rc == 0)
			atomic_fetch_add(&sent, 1);
		else
			sy_msg_free(m);
		if (rc == -EAGAIN || atomic_load(&sent) % 64 == 0)
			review_sleep_us(20);
		take_replies();
	}
	/* The last replies; later ones are dropped at detach. */
	for (uint64_t end = review_now_ms() + 200; review_now_ms() < end;)
		take_replies();
	sy_producer_detach(eng);
	return NULL;
}

static void set_route(const char *policy, bool with_flaky)
{
	uint32_t ids[3] = { stable[0], stable[1], atomic_load(&flaky_id) };
	struct sy_route_opts ro = {
		.policy = policy, .servers = ids, .n_servers = with_flaky ? 3 : 2,
		.max_attempts = 4, .retry_backoff_ns = 500000,
		.retry_budget = 1.0, .retry_budget_min = 1000,
		.dead_letter_unreachable = true,
	};

	review_check(sy_route_replace(eng, route, &ro) == 0, "replace: %s",
		     sy_last_error());
}

int main(void)
{
	static const char *const policies[] = {
		"round_robin", "least_connections", "random", "hash",
	};
	struct sy_server_opts o0 = { .worker = 0, .worker_set = true }, o1 = { .worker = 1 };
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = 2 };
	struct sy_config cfg;
	pthread_t p;
	uint32_t id;

	review_config(&cfg, 2);
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "a", echo, NULL, &o0, &stable[0]) == 0 &&
		     sy_server_add(eng, "b", echo, NULL, &o1, &stable[1]) == 0 &&
		     sy_server_add(eng, "flaky", flaky, NULL, &o0, &id) == 0,
		     "%s", sy_last_error());
	atomic_store(&flaky_id, id);
	ro.servers = stable;
	review_check(sy_route_add(eng, "r", &ro, &route) == 0, "%s",
		     sy_last_error());
	set_route("round_robin", true);
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());
	pthread_create(&p, NULL, producer, NULL);

	for (int i = 0; i < ROUNDS; i++) {
		struct sy_server_opts fo = { .worker = i % 2, .worker_set = true };

		review_sleep_us(2000);
		set_route(policies[i % 4], false);
		review_check(sy_server_remove(eng, atomic_load(&flaky_id)) == 0,
			     "remove: %s", sy_last_error());
		review_check(sy_server_add(eng, "flaky", flaky, NULL, &fo, &id) == 0,
			     "add: %s", sy_last_error());
		atomic_store(&flaky_id, id);
		set_route(policies[(i + 1) % 4], true);
	}
	review_check(atomic_load(&sent) < SENT_MAX,
		     "the producer stopped before the last round");
	atomic_store(&done, 1);
	pthread_join(p, NULL);
	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	review_check(atomic_load(&sent) > 0, "nothing was sent");
	sy_engine_destroy(eng);
	printf("removal and replacement in flight: %llu requests, accounting exact\n",
	       (unsigned long long)atomic_load(&sent));
	return 0;
}
