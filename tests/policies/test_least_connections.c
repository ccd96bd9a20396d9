/*
 * Tests of the least_connections policy.
 *
 * The pick tests call the policy's pick() on a route built by hand, whose
 * servers' in-flight counters and states the test sets: what the policy
 * chooses for a given load is then exact, not a matter of thread timing.
 * The route tests run an engine: a server ten times slower than its peer
 * must get less than its even share, equal idle servers must both get
 * traffic, and a removed server must get nothing more.
 *
 * Handlers count in their contexts (atomics) and never call Criterion's
 * assertions; the test thread asserts after bounded waits. No test asserts
 * how long anything took.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/engine.h"
#include "core/route.h"
#include "core/slot.h"
#include "policies/policy.h"
#include "tests/fixture.h"

#define FAKE_MAX 8u

/* ------------------------------------------------------------------ */
/* pick() on a hand-built route                                       */
/* ------------------------------------------------------------------ */

/* A route of n servers as pick() sees it, with no engine behind it. */
struct fake {
	struct sy__server servers[FAKE_MAX];
	struct sy__slot slot;
	uint64_t word;
	struct sy__route *route;
	struct sy_pick pick;
	const struct sy_policy *policy;
};

static struct fake fake;

static void fake_init(unsigned n, const int64_t *inflight)
{
	cr_assert_leq(n, FAKE_MAX);
	fake.policy = sy__policy_find("least_connections");
	cr_assert_not_null(fake.policy);
	cr_assert_eq(fake.policy->flags, SY_POLICY_INFLIGHT);
	fake.route = calloc(1, sizeof(*fake.route) + n * sizeof(fake.route->servers[0]));
	cr_assert_not_null(fake.route);
	fake.route->n = n;
	fake.route->policy = fake.policy;
	for (unsigned i = 0; i < n; i++) {
		atomic_init(&fake.servers[i].gate, 0u);
		atomic_init(&fake.servers[i].inflight, inflight[i]);
		fake.route->servers[i] = &fake.servers[i];
	}
	fake.slot.rng = 0x9e3779b97f4a7c15ull;
	fake.slot.policy_words = &fake.word;
	fake.pick = (struct sy_pick){ .route = fake.route, .slot = &fake.slot };
}

#define ALL 0xffu

/*
 * On a route of @p n servers with @p inflight messages in flight, of which
 * only those in the bit mask @p available are not draining, pick @p rounds
 * times; count each server's picks in @p got[n].
 */
static void fake_picks(unsigned n, const int64_t *inflight, unsigned available,
		       unsigned rounds, uint64_t *got)
{
	fake_init(n, inflight);
	for (unsigned i = 0; i < n; i++)
		if (!(available & (1u << i)))
			atomic_store(&fake.servers[i].gate,
				     (unsigned)SY_GATE_DRAINING);
	memset(got, 0, n * sizeof(*got));
	for (unsigned r = 0; r < rounds; r++) {
		int k = fake.policy->pick(NULL, &fake.pick);

		cr_assert(k >= 0 && (unsigned)k < n, "pick returned %d", k);
		got[k]++;
	}
	free(fake.route);
}

Test(policies_least_connections, small_route_takes_the_fewest_in_flight)
{
	const int64_t inflight[] = { 3, 1, 2, 5 };
	uint64_t got[4];

	fake_picks(4, inflight, ALL, 1000, got);
	cr_expect_eq(got[1], 1000, "server 1 (1 in flight) got %llu of 1000",
		     (unsigned long long)got[1]);
}

Test(policies_least_connections, small_route_breaks_ties_at_random)
{
	const int64_t inflight[] = { 2, 0, 0, 0 };
	const unsigned rounds = 30000;
	uint64_t got[4];

	fake_picks(4, inflight, ALL, rounds, got);
	cr_expect_eq(got[0], 0, "the busier server was picked %llu times",
		     (unsigned long long)got[0]);
	/* Each tied server expects 10000; 9000 is over 12 sigmas away. */
	for (unsigned i = 1; i < 4; i++)
		cr_expect(got[i] > 9000 && got[i] < 11000,
			  "tied server %u got %llu of %u", i,
			  (unsigned long long)got[i], rounds);
}

Test(policies_least_connections, small_route_skips_unavailable_servers)
{
	const int64_t inflight[] = { 0, 4, 4, 4 };
	uint64_t got[4];

	fake_picks(4, inflight, ALL & ~1u, 3000, got);
	cr_expect_eq(got[0], 0, "the draining server was picked %llu times",
		     (unsigned long long)got[0]);
	for (unsigned i = 1; i < 4; i++)
		cr_expect_gt(got[i], 0, "available server %u never picked", i);
}

Test(policies_least_connections, large_route_never_takes_the_most_loaded)
{
	/* Power of two choices: the unique maximum loses every pair, the
	 * unique minimum wins every pair it is in (2 of 8 draws). */
	const int64_t inflight[] = { 4, 9, 3, 0, 5, 6, 2, 7 };
	const unsigned rounds = 40000;
	uint64_t got[8];

	fake_picks(8, inflight, ALL, rounds, got);
	cr_expect_eq(got[1], 0, "the most loaded server was picked %llu times",
		     (unsigned long long)got[1]);
	cr_expect_gt(got[3], rounds / 5, "the least loaded server got %llu of %u",
		     (unsigned long long)got[3], rounds);
	for (unsigned i = 0; i < 8; i++)
		if (i != 3)
			cr_expect_lt(got[i], got[3], "server %u (%lld in flight) got %llu, more than the least loaded",
				     i, (long long)inflight[i],
				     (unsigned long long)got[i]);
}

Test(policies_least_connections, large_route_spreads_equal_load_evenly)
{
	const int64_t inflight[] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	const unsigned rounds = 80000;
	uint64_t got[8];

	fake_picks(8, inflight, ALL, rounds, got);
	/* 10000 expected each; 9000 is over 10 sigmas away. */
	for (unsigned i = 0; i < 8; i++)
		cr_expect(got[i] > 9000 && got[i] < 11000,
			  "server %u got %llu of %u", i,
			  (unsigned long long)got[i], rounds);
}

Test(policies_least_connections, large_route_skips_unavailable_servers)
{
	const int64_t inflight[] = { 0, 0, 0, 0, 9, 0, 0, 0 };
	uint64_t got[8];

	fake_picks(8, inflight, 1u << 4, 2000, got);
	cr_expect_eq(got[4], 2000, "the only available server got %llu of 2000",
		     (unsigned long long)got[4]);
}

/* ------------------------------------------------------------------ */
/* Routes on a running engine                                         */
/* ------------------------------------------------------------------ */

/*
 * A slow server must be slow in a way that survives a crowded machine (two
 * CPUs for two workers and a sender): a busy loop is not, since the
 * scheduler may stall the fast server's worker for a whole time slice. So a
 * paced server finishes a message only once its pace server has handled
 * PACE_FACTOR more messages: it is ten times slower, in its peer's units.
 */
#define PACE_FACTOR 10u
#define PACE_WAIT_MS 1000u

struct server {
	_Atomic uint64_t got;
	_Atomic uint64_t stalls;    /* paced runs that gave up waiting */
	struct server *pace;        /* NULL, or the server that paces this one */
	_Atomic bool *done;         /* the rig's: no more messages come */
	_Atomic uint64_t *handled;  /* the rig's, all servers */
};

struct rig {
	sy_engine *eng;
	uint32_t route;
	uint32_t ids[2];
	_Atomic uint64_t handled;
	_Atomic bool done;
	struct server servers[2];
};

/* Wait (bounded) until @p pace has handled PACE_FACTOR more messages. */
static void pace_wait(struct server *s)
{
	uint64_t want = atomic_load(&s->pace->got) + PACE_FACTOR;
	uint64_t end = t_now_ms() + PACE_WAIT_MS;

	while (atomic_load(&s->pace->got) < want && !atomic_load(s->done)) {
		if (t_now_ms() > end) {
			atomic_fetch_add(&s->stalls, 1);
			return;
		}
		sched_yield();
	}
}

static int count_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;

	(void)eng;
	(void)msg;
	if (s->pace)
		pace_wait(s);
	atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
	/* Pairs with the acquire loads of handled: got is visible. */
	atomic_fetch_add_explicit(s->handled, 1, memory_order_release);
	return 0;
}

/* Two servers, one per worker, b paced by a if @p paced; one route. */
static void rig_start(struct rig *r, bool paced)
{
	atomic_init(&r->handled, 0);
	atomic_init(&r->done, false);
	r->eng = t_engine(2, SY_IDLE_SLEEP);
	cr_assert_not_null(r->eng, "%s", sy_last_error());
	for (unsigned i = 0; i < 2; i++) {
		atomic_init(&r->servers[i].got, 0);
		atomic_init(&r->servers[i].stalls, 0);
		r->servers[i].pace = paced && i == 1 ? &r->servers[0] : NULL;
		r->servers[i].done = &r->done;
		r->servers[i].handled = &r->handled;
	}
	r->ids[0] = t_add_server(r->eng, "a", count_handler, &r->servers[0], 0);
	r->ids[1] = t_add_server(r->eng, "b", count_handler, &r->servers[1], 1);
	r->route = t_add_route(r->eng, "lc", (struct sy_route_opts){
		.policy = "least_connections" }, r->ids, 2);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* Wait until at most @p outstanding of @p sent messages are unhandled. */
static void rig_wait(struct rig *r, uint64_t sent, uint64_t outstanding)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;

	while (sent - atomic_load_explicit(&r->handled, memory_order_acquire) >
	       outstanding) {
		cr_assert_leq(t_now_ms(), end, "%llu of %llu messages not handled",
			      (unsigned long long)(sent - atomic_load(&r->handled)),
			      (unsigned long long)sent);
		sched_yield();
	}
}

static void rig_send(struct rig *r)
{
	t_send_tags(r->eng, r->route, 0, 1);
}

static uint64_t got(struct rig *r, unsigned i)
{
	return atomic_load(&r->servers[i].got);
}

Test(policies_least_connections, slow_server_gets_less_than_its_share)
{
	const uint64_t total = 200000, window = 64;
	struct rig r;

	rig_start(&r, true);
	for (uint64_t sent = 0; sent < total; sent++) {
		rig_wait(&r, sent, window - 1);
		rig_send(&r);
	}
	atomic_store(&r.done, true);
	rig_wait(&r, total, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 0) + got(&r, 1), total);
	/* A policy blind to load would pile messages on b until a had none
	 * and b could only give up waiting. */
	cr_expect_eq(atomic_load(&r.servers[1].stalls), 0,
		     "the slow server waited in vain %llu times",
		     (unsigned long long)atomic_load(&r.servers[1].stalls));
	/* Least connections gives b about 1/11; an even split is 1/2. */
	cr_expect_lt(got(&r, 1) * 10, total * 4,
		     "the slow server got %llu of %llu messages",
		     (unsigned long long)got(&r, 1), (unsigned long long)total);
	sy_engine_destroy(r.eng);
}

Test(policies_least_connections, equal_idle_servers_both_get_traffic)
{
	const uint64_t total = 2000;
	struct rig r;

	rig_start(&r, false);
	/* One message at a time: nothing is in flight at each pick, except
	 * at most the one just handled, whose count the worker drops right
	 * after its handler returns. */
	for (uint64_t sent = 0; sent < total; sent++) {
		rig_wait(&r, sent, 0);
		rig_send(&r);
	}
	rig_wait(&r, total, 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (unsigned i = 0; i < 2; i++)
		cr_expect_gt(got(&r, i), total / 10, "server %u got %llu of %llu",
			     i, (unsigned long long)got(&r, i),
			     (unsigned long long)total);
	sy_engine_destroy(r.eng);
}

struct sender {
	struct rig *rig;
	pthread_t thread;
	_Atomic bool stop;
	_Atomic uint64_t sent;
	uint64_t failed;
};

#define SENDER_MAX 5000000u

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	for (uint64_t i = 0; i < SENDER_MAX && !atomic_load(&s->stop); i++) {
		sy_msg *m = t_msg_try(s->rig->eng, i);

		if (!m || t_send_retry(s->rig->eng, s->rig->route, m, T_WAIT_MS)) {
			sy_msg_free(m);
			s->failed++;
			continue;
		}
		atomic_fetch_add(&s->sent, 1);
	}
	return NULL;
}

Test(policies_least_connections, removed_server_gets_nothing_more)
{
	struct sender s = { .stop = false, .sent = 0, .failed = 0 };
	uint64_t b_final, sent_at_remove, end;
	struct rig r;

	rig_start(&r, false);
	s.rig = &r;
	cr_assert_eq(pthread_create(&s.thread, NULL, sender_main, &s), 0);
	cr_assert(t_wait_u64(&r.servers[1].got, 100, T_WAIT_MS),
		  "server b never got traffic");
	/* Returns once every message sent to b has been handled. */
	cr_assert_eq(sy_server_remove(r.eng, r.ids[1]), 0, "%s", sy_last_error());
	b_final = got(&r, 1);
	sent_at_remove = atomic_load(&s.sent);
	end = t_now_ms() + T_WAIT_MS;
	while (atomic_load(&s.sent) < sent_at_remove + 20000 && t_now_ms() < end &&
	       atomic_load(&s.sent) < SENDER_MAX)
		sched_yield();
	atomic_store(&s.stop, true);
	pthread_join(s.thread, NULL);
	cr_assert_eq(s.failed, 0, "%llu sends failed", (unsigned long long)s.failed);
	cr_assert_geq(atomic_load(&s.sent), sent_at_remove + 20000,
		      "the sender stalled after the removal");
	rig_wait(&r, atomic_load(&s.sent), 0);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 1), b_final, "b got %llu messages after its removal",
		     (unsigned long long)(got(&r, 1) - b_final));
	cr_expect_eq(got(&r, 0) + got(&r, 1), atomic_load(&s.sent));
	sy_engine_destroy(r.eng);
}
