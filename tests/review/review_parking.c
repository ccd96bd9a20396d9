/*
 * Review: poison-key parking under concurrent senders (core/parking.c).
 *
 * Two producer threads send keyed messages (1000 keys, each producer its
 * own sequence numbers) to a hash route over four servers on two workers
 * that parks a key after two failures in a row. One key fails until the
 * main thread cures it; meanwhile it releases the key again and again
 * (each release runs the held messages, which fail and park it again, the
 * rest held again). Then it cures the key and releases it once more, and
 * stops the engine while the producers may still be sending.
 *
 * The property: for every (producer, key) the handler runs see sequence
 * numbers that only grow (held messages run in order and ahead of newer
 * ones, none twice), and the accounting is exact after stop (held
 * messages end exactly once). Under ThreadSanitizer it also checks the
 * hand-offs between the workers, the table's lock and the release token.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "review.h"

#define KEYS 1000u
#define PER_PRODUCER 20000u
#define POISON 77u

struct shared {
	_Atomic bool poisoned;
	_Atomic uint64_t bad_order;
	_Atomic uint64_t runs;
	_Atomic int64_t last[2][KEYS]; /* per producer and key: seq run last */
};

struct producer {
	pthread_t thread;
	sy_engine *eng;
	uint32_t route;
	unsigned id;
};

/* The tag: producer in bit 32, sequence number below. */
static int handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct shared *s = ctx;
	uint64_t key = sy_msg_key(msg), tag = sy_msg_tag(msg);
	unsigned p = (unsigned)(tag >> 32) & 1;
	int64_t seq = (int64_t)(tag & 0xffffffffu);

	(void)eng;
	atomic_fetch_add(&s->runs, 1);
	if (atomic_load(&s->last[p][key]) >= seq)
		atomic_fetch_add(&s->bad_order, 1);
	atomic_store(&s->last[p][key], seq);
	return key == POISON && atomic_load(&s->poisoned) ? -EIO : 0;
}

static void *produce(void *arg)
{
	struct producer *pr = arg;

	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		sy_msg *m = sy_msg_alloc(pr->eng, 8);

		if (!m)
			break;
		sy_msg_set_key(m, i % 10 == 0 ? POISON : (i * 7919) % KEYS);
		sy_msg_set_tag(m, (uint64_t)pr->id << 32 | i);
		if (review_send(pr->eng, pr->route, m, 10000) != 0) {
			sy_msg_free(m); /* the engine stopped */
			break;
		}
	}
	return NULL;
}

int main(void)
{
	struct sy_route_opts ro = { .policy = "hash", .park_after = 2,
				    .park_capacity = 100000 };
	static struct shared s;
	struct producer pr[2];
	struct sy_config cfg;
	uint32_t sids[4], route;
	unsigned releases = 0;
	sy_engine *eng;

	atomic_init(&s.poisoned, true);
	for (unsigned p = 0; p < 2; p++)
		for (unsigned k = 0; k < KEYS; k++)
			atomic_init(&s.last[p][k], -1);
	review_config(&cfg, 2);
	review_check(sy_engine_create(&cfg, &eng) == 0, "create");
	for (unsigned i = 0; i < 4; i++) {
		struct sy_server_opts so = { .worker = i % 2, .worker_set = true };
		char name[8];

		snprintf(name, sizeof(name), "s%u", i);
		review_check(sy_server_add(eng, name, handler, &s, &so,
					   &sids[i]) == 0, "server");
	}
	ro.servers = sids;
	ro.n_servers = 4;
	review_check(sy_route_add(eng, "keyed", &ro, &route) == 0, "route");
	review_check(sy_engine_start(eng) == 0, "start");
	for (unsigned p = 0; p < 2; p++) {
		pr[p] = (struct producer){ .eng = eng, .route = route, .id = p };
		review_check(pthread_create(&pr[p].thread, NULL, produce,
					    &pr[p]) == 0, "thread");
	}
	for (uint64_t end = review_now_ms() + 2000;
	     releases < 50 && review_now_ms() < end;) {
		int rc = sy_parked_release(eng, route, POISON);

		review_check(rc >= 0 || rc == -ENOENT || rc == -EALREADY,
			     "release: %d", rc);
		releases += rc > 0;
		review_sleep_us(500);
	}
	atomic_store(&s.poisoned, false);
	for (int rc = -EALREADY; rc == -EALREADY; review_sleep_us(100))
		rc = sy_parked_release(eng, route, POISON);
	review_check(sy_engine_stop(eng) == 0, "stop");
	for (unsigned p = 0; p < 2; p++)
		pthread_join(pr[p].thread, NULL);
	review_check(atomic_load(&s.bad_order) == 0,
		     "%llu runs out of order per (producer, key)",
		     (unsigned long long)atomic_load(&s.bad_order));
	review_check(atomic_load(&s.runs) > 0, "nothing ran");
	review_check_accounting(eng);
	printf("review_parking: %u releases, %llu runs, order and accounting hold\n",
	       releases, (unsigned long long)atomic_load(&s.runs));
	sy_engine_destroy(eng);
	return 0;
}
