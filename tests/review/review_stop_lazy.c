/*
 * Review: sy_engine_stop() and sy_engine_destroy() against threads that
 * attach lazily (by sending) and detach in their thread-exit destructor.
 *
 * Round 1: short-lived threads keep starting, each sending until the
 * engine refuses, then exiting, while the main thread stops the engine in
 * the middle. Afterwards the accounting is exact and no send was accepted
 * after stop returned.
 * Round 2: a thread attached to an engine stays alive while that engine is
 * destroyed and a new one is created (it may reuse the memory), then exits:
 * its destructor must leave the new engine alone, whose producer slot and
 * accounting stay intact.
 */
#include <errno.h>
#include <pthread.h>

#include "review.h"

#define SPAWNS 200
#define SENDS_MAX 2000

static sy_engine *eng;
static uint32_t route;
static _Atomic int stopped, late_accepts;
static _Atomic uint64_t handled;

static int count(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)msg;
	(void)ctx;
	atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
	return 0;
}

static void *short_lived(void *arg)
{
	(void)arg;
	for (int i = 0; i < SENDS_MAX; i++) {
		int after = atomic_load(&stopped);
		sy_msg *m = sy_msg_alloc(eng, 16);
		int rc;

		if (!m)
			break; /* stopped: no slot any more */
		rc = sy_msg_send(eng, route, m);
		if (rc == 0 && after)
			atomic_fetch_add(&late_accepts, 1);
		if (rc != 0) {
			sy_msg_free(m);
			if (rc == -ESHUTDOWN)
				break;
		}
	}
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	for (int i = 0; i < SPAWNS; i++) {
		pthread_t t[3];

		for (int k = 0; k < 3; k++)
			pthread_create(&t[k], NULL, short_lived, NULL);
		for (int k = 0; k < 3; k++)
			pthread_join(t[k], NULL);
	}
	return NULL;
}

static sy_engine *new_engine(uint32_t *r)
{
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	struct sy_config cfg;
	uint32_t server;
	sy_engine *e;

	review_config(&cfg, 2);
	cfg.max_producers = 8;
	review_check(sy_engine_create(&cfg, &e) == 0, "%s", sy_last_error());
	review_check(sy_server_add(e, "count", count, NULL, NULL, &server) == 0,
		     "%s", sy_last_error());
	ro.servers = &server;
	review_check(sy_route_add(e, "count", &ro, r) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(e) == 0, "%s", sy_last_error());
	return e;
}

static void round_stop(void)
{
	pthread_t sp;

	eng = new_engine(&route);
	pthread_create(&sp, NULL, spawner, NULL);
	review_sleep_us(50000);
	review_check(sy_engine_stop(eng) == 0, "stop");
	atomic_store(&stopped, 1);
	pthread_join(sp, NULL);
	review_check(atomic_load(&late_accepts) == 0,
		     "%d sends accepted after sy_engine_stop() returned",
		     atomic_load(&late_accepts));
	review_check_accounting(eng);
	sy_engine_destroy(eng);
}

static _Atomic int phase;

static void *lingering(void *arg)
{
	sy_msg *m = sy_msg_alloc(eng, 16);
	uint64_t end = review_now_ms() + 10000;

	(void)arg;
	review_check(m && review_send(eng, route, m, 1000) == 0, "send");
	atomic_store(&phase, 1);
	while (atomic_load(&phase) != 2 && review_now_ms() < end)
		review_sleep_us(100);
	return NULL; /* the destructor runs now */
}

static void round_destroy(void)
{
	struct sy_accounting before, after;
	uint32_t route2;
	sy_engine *second;
	pthread_t t;
	uint64_t end = review_now_ms() + 5000;

	eng = new_engine(&route);
	pthread_create(&t, NULL, lingering, NULL);
	while (atomic_load(&phase) != 1 && review_now_ms() < end)
		review_sleep_us(100);
	review_check(atomic_load(&phase) == 1, "the thread never sent");
	sy_engine_destroy(eng);
	second = new_engine(&route2);
	/* Fill the new engine's first producer slot from this thread. */
	review_check(sy_producer_attach(second) == 0, "attach");
	sy_engine_accounting(second, &before);
	atomic_store(&phase, 2);
	pthread_join(t, NULL);
	for (int i = 0; i < 100; i++) {
		sy_msg *m = sy_msg_alloc(second, 16);

		review_check(m && review_send(second, route2, m, 1000) == 0,
			     "send %d after the other thread's exit", i);
	}
	sy_producer_detach(second);
	review_check(sy_engine_stop(second) == 0, "stop");
	sy_engine_accounting(second, &after);
	review_check(after.accepted == before.accepted + 100,
		     "accepted %llu, expected %llu",
		     (unsigned long long)after.accepted,
		     (unsigned long long)before.accepted + 100);
	review_check_accounting(second);
	sy_engine_destroy(second);
}

int main(void)
{
	round_stop();
	round_destroy();
	printf("stop and destroy against lazily attached threads: exact\n");
	return 0;
}
