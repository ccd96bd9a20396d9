/*
 * Tests of deterministic mode (config.seed): with the same seed, the same
 * routes and the same sends from one thread, an engine makes the same
 * choices, run after run.
 *
 * Each run creates an engine of one worker with four servers and one route
 * per policy under test (random, least_connections, hash), and a sender
 * thread that sends the same numbered messages, round robin over the
 * routes, before the engine starts. The workers are not running yet, so no
 * message is handled while the sender picks: least_connections sees the
 * same counts in flight in every run, and only the seed decides its ties.
 * Then the engine starts; its one worker handles the messages in the order
 * sent, and the handlers log which server got each message.
 *
 * Handlers never call Criterion's assertions; every wait is bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define SERVERS 4u
#define MAX_ROUTES 3u
#define PER_ROUTE 1000u
#define TOTAL (MAX_ROUTES * PER_ROUTE)
#define RING 4096u /* holds every message sent before the start */

static const char *const policies[MAX_ROUTES] = {
	"random", "least_connections", "hash",
};

/* What one run saw, in the order the worker handled it. */
struct log {
	_Atomic uint64_t n;
	uint64_t seq[TOTAL];
	uint8_t server[TOTAL];
};

struct server {
	struct log *log;
	unsigned index;
};

struct sender {
	sy_engine *eng;
	const uint32_t *routes;
	unsigned nroutes;
	unsigned sent;
	int first_error;
};

/* The one worker is the only writer of the log. */
static int log_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	uint64_t i = atomic_load_explicit(&s->log->n, memory_order_relaxed);

	(void)eng;
	if (i < TOTAL) {
		memcpy(&s->log->seq[i], sy_msg_data(msg), sizeof(uint64_t));
		s->log->server[i] = (uint8_t)s->index;
	}
	/* Pairs with the acquire load in t_wait_u64(): the entry is visible. */
	atomic_store_explicit(&s->log->n, i + 1, memory_order_release);
	return 0;
}

/* Message j goes to route j % nroutes, with key j * 0x9e3779b97f4a7c15. */
static void *sender_main(void *arg)
{
	struct sender *s = arg;
	unsigned total = s->nroutes * PER_ROUTE;

	for (uint64_t j = 0; j < total; j++) {
		sy_msg *m = sy_msg_alloc(s->eng, sizeof(j));
		int rc;

		if (!m) {
			s->first_error = -ENOMEM;
			break;
		}
		memcpy(sy_msg_data(m), &j, sizeof(j));
		sy_msg_set_key(m, j * 0x9e3779b97f4a7c15ull);
		rc = sy_msg_send(s->eng, s->routes[j % s->nroutes], m);
		if (rc) {
			sy_msg_free(m);
			s->first_error = rc;
			break;
		}
		s->sent++;
	}
	return NULL;
}

struct run {
	unsigned nroutes;
	const char *names[MAX_ROUTES]; /* the policies this build has */
	struct server servers[SERVERS];
	struct log log;
};

static void run_once(struct run *r, uint64_t seed)
{
	struct sender s = { .first_error = 0 };
	uint32_t ids[SERVERS], routes[MAX_ROUTES];
	struct sy_config cfg;
	pthread_t thread;
	sy_engine *eng;

	atomic_init(&r->log.n, 0);
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.pin = SY_PIN_NONE;
	cfg.ring_size = RING;
	cfg.seed = seed;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	for (unsigned i = 0; i < SERVERS; i++) {
		char name[] = "server-0";

		name[7] = (char)('0' + i);
		r->servers[i] = (struct server){ .log = &r->log, .index = i };
		cr_assert_eq(sy_server_add(eng, name, log_handler, &r->servers[i],
					   NULL, &ids[i]), 0);
	}
	r->nroutes = 0;
	for (unsigned k = 0; k < MAX_ROUTES; k++) {
		struct sy_route_opts ro = {
			.policy = policies[k], .servers = ids, .n_servers = SERVERS,
		};
		int rc = sy_route_add(eng, policies[k], &ro, &routes[r->nroutes]);

		if (rc == -EINVAL) {
			cr_log_warn("policy %s skipped: %s", policies[k],
				    sy_last_error());
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", policies[k], sy_last_error());
		r->names[r->nroutes++] = policies[k];
	}
	cr_assert_gt(r->nroutes, 0);

	s.eng = eng;
	s.routes = routes;
	s.nroutes = r->nroutes;
	cr_assert_eq(pthread_create(&thread, NULL, sender_main, &s), 0);
	pthread_join(thread, NULL);
	cr_assert_eq(s.first_error, 0, "send %u failed: %s", s.sent,
		     sy_strerror(s.first_error));

	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert(t_wait_u64(&r->log.n, s.sent, RIG_WAIT_MS), "handled %llu of %u",
		  (unsigned long long)atomic_load(&r->log.n), s.sent);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(atomic_load(&r->log.n), r->nroutes * PER_ROUTE);
	for (uint64_t i = 0; i < r->nroutes * PER_ROUTE; i++)
		cr_assert_eq(r->log.seq[i], i, "entry %llu is message %llu",
			     (unsigned long long)i,
			     (unsigned long long)r->log.seq[i]);
	sy_engine_destroy(eng);
}

/* The index of @p name among the run's routes, or -1. */
static int route_of(const struct run *r, const char *name)
{
	for (unsigned k = 0; k < r->nroutes; k++)
		if (strcmp(r->names[k], name) == 0)
			return (int)k;
	return -1;
}

/* Whether runs @p a and @p b chose alike for route @p k. */
static bool same_choices(const struct run *a, const struct run *b, unsigned k)
{
	for (unsigned j = k; j < a->nroutes * PER_ROUTE; j += a->nroutes)
		if (a->log.server[j] != b->log.server[j])
			return false;
	return true;
}

static struct run first, second;

Test(policies_deterministic, same_seed_same_choices)
{
	run_once(&first, 42);
	run_once(&second, 42);
	cr_assert_eq(first.nroutes, second.nroutes);
	for (unsigned k = 0; k < first.nroutes; k++)
		cr_expect(same_choices(&first, &second, k),
			  "%s chose differently with the same seed",
			  first.names[k]);
}

Test(policies_deterministic, other_seed_other_random_choices)
{
	int rnd, lc;

	run_once(&first, 42);
	run_once(&second, 43);
	rnd = route_of(&first, "random");
	lc = route_of(&first, "least_connections");
	cr_assert_geq(lc, 0);
	/* Its ties are broken at random: in the same order twice in a
	 * thousand picks by chance is out of the question. */
	cr_expect(!same_choices(&first, &second, (unsigned)lc),
		  "least_connections broke its ties alike under two seeds");
	if (rnd >= 0)
		cr_expect(!same_choices(&first, &second, (unsigned)rnd),
			  "random chose alike under two seeds");
}

Test(policies_deterministic, least_connections_spreads_before_any_is_handled)
{
	unsigned n, stride, lc;
	int k;

	run_once(&first, 7);
	k = route_of(&first, "least_connections");
	cr_assert_geq(k, 0);
	n = first.nroutes;
	lc = (unsigned)k;
	stride = n * SERVERS;
	/* Nothing is handled while sending: every SERVERS consecutive picks
	 * of the route take each server once. */
	for (unsigned base = lc; base + (SERVERS - 1) * n < PER_ROUTE * n;
	     base += stride) {
		unsigned mask = 0;

		for (unsigned i = 0; i < SERVERS; i++)
			mask |= 1u << first.log.server[base + i * n];
		cr_expect_eq(mask, (1u << SERVERS) - 1,
			     "picks from %u do not cover every server", base);
	}
}
