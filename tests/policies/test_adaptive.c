/*
 * Tests of the adaptive (peak EWMA) policy.
 *
 * The engine runs on a fake clock (config.clock): a counter of nanoseconds
 * that only the handlers move, each by its server's step per message. A
 * server's service time, as the engine measures it around the handler, is
 * then exactly its step, and time passes only as messages are handled: what
 * the policy learns does not depend on how fast the machine is. One worker
 * runs every server, so no two handlers move the clock at once.
 *
 * The sender keeps a window of messages in flight and waits (bounded) for
 * the handlers to catch up. Handlers count in their contexts (atomics) and
 * never call Criterion's assertions. No test asserts how long anything took.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define MAX_SERVERS 8u
#define WINDOW 64u
#define FAST_NS 1000u
#define SLOW_NS 10000u

struct server {
	_Atomic uint64_t *clock;    /* the rig's fake clock */
	_Atomic uint64_t *handled;  /* the rig's, all servers */
	_Atomic uint64_t step_ns;   /* fake time one run takes */
	_Atomic int result;         /* what the handler returns */
	_Atomic uint64_t got;
};

struct rig {
	sy_engine *eng;
	uint32_t route;
	unsigned n;
	uint64_t sent;
	struct t_clock clock;
	_Atomic uint64_t handled;
	uint32_t ids[MAX_SERVERS];
	struct server servers[MAX_SERVERS];
};

static int step_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;

	(void)eng;
	(void)msg;
	atomic_fetch_add(s->clock, atomic_load(&s->step_ns));
	atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
	/* Pairs with the acquire loads of handled: got is visible. */
	atomic_fetch_add_explicit(s->handled, 1, memory_order_release);
	return atomic_load(&s->result);
}

/* A started one-worker engine on the fake clock; @p n servers taking
 * FAST_NS each; one adaptive route over them with @p params. */
static void rig_start(struct rig *r, unsigned n, const char *params)
{
	cr_assert_leq(n, MAX_SERVERS);
	r->n = n;
	r->sent = 0;
	atomic_init(&r->handled, 0);
	r->eng = t_engine_at(1, &r->clock, 1000000000u);
	for (unsigned i = 0; i < n; i++) {
		r->servers[i].clock = &r->clock.ns;
		r->servers[i].handled = &r->handled;
		atomic_init(&r->servers[i].step_ns, FAST_NS);
		atomic_init(&r->servers[i].result, 0);
		atomic_init(&r->servers[i].got, 0);
	}
	t_add_servers(r->eng, n, 1, step_handler, r->servers,
		      sizeof(r->servers[0]), r->ids);
	r->route = t_add_route(r->eng, "adaptive", (struct sy_route_opts){
		.policy = "adaptive", .params = params }, r->ids, n);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* Wait until at most @p outstanding of the messages sent are unhandled. */
static void rig_wait(struct rig *r, uint64_t outstanding)
{
	uint64_t end = t_now_ms() + RIG_WAIT_MS;

	while (r->sent - atomic_load_explicit(&r->handled, memory_order_acquire) >
	       outstanding) {
		cr_assert_leq(t_now_ms(), end, "%llu of %llu messages not handled",
			      (unsigned long long)(r->sent - atomic_load(&r->handled)),
			      (unsigned long long)r->sent);
		sched_yield();
	}
}

/*
 * Send @p count messages, at most WINDOW unhandled at once, and wait for
 * all of them. On return got[i] holds server i's share of them.
 */
static void rig_phase(struct rig *r, uint64_t count, uint64_t *got)
{
	uint64_t before[MAX_SERVERS];

	for (unsigned i = 0; i < r->n; i++)
		before[i] = atomic_load(&r->servers[i].got);
	for (uint64_t k = 0; k < count; k++) {
		rig_wait(r, WINDOW - 1);
		t_send_tags(r->eng, r->route, k, 1);
		r->sent++;
	}
	rig_wait(r, 0);
	for (unsigned i = 0; i < r->n; i++)
		got[i] = atomic_load(&r->servers[i].got) - before[i];
}

static void set_step(struct rig *r, unsigned i, uint64_t ns)
{
	atomic_store(&r->servers[i].step_ns, ns);
}

static unsigned long long ull(uint64_t x)
{
	return (unsigned long long)x;
}

Test(policies_adaptive, follows_a_server_whose_latency_rises_and_falls)
{
	const uint64_t phase = 20000;
	uint64_t got[2];
	struct rig r;

	/* tau = 1 ms: a phase is about 20 tau of fake time. */
	rig_start(&r, 2, "decay_ms=1");

	rig_phase(&r, phase, got);
	for (unsigned i = 0; i < 2; i++)
		cr_expect_gt(got[i] * 10, phase * 3,
			     "both fast: server %u got %llu of %llu", i,
			     ull(got[i]), ull(phase));

	set_step(&r, 1, SLOW_NS);
	rig_phase(&r, phase, got);
	cr_expect_geq(got[0] * 10, phase * 8,
		      "b ten times slower: a got only %llu of %llu",
		      ull(got[0]), ull(phase));

	set_step(&r, 1, FAST_NS);
	rig_phase(&r, phase, got);
	cr_expect_gt(got[1] * 10, phase * 2,
		     "b fast again: b got only %llu of %llu", ull(got[1]),
		     ull(phase));
	sy_engine_destroy(r.eng);
}

Test(policies_adaptive, server_failing_fast_gets_little_traffic)
{
	const uint64_t total = 20000;
	struct sy_stats st;
	uint64_t got[2];
	struct rig r;

	rig_start(&r, 2, "decay_ms=1");
	/* Server 1 fails in 10 ns, a hundredth of server 0's time. */
	set_step(&r, 1, 10);
	atomic_store(&r.servers[1].result, -EIO);
	rig_phase(&r, total, got);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(sy_engine_stats(r.eng, &st), 0);
	cr_expect_eq(st.handler_failed, got[1]);
	cr_expect_gt(got[1], 0, "the failing server was never retried");
	/* Least connections would give it over half: it is the quickest. */
	cr_expect_lt(got[1] * 20, total,
		     "the failing server got %llu of %llu", ull(got[1]),
		     ull(total));
	sy_engine_destroy(r.eng);
}

Test(policies_adaptive, large_route_avoids_a_slow_server)
{
	const uint64_t total = 30000;
	const unsigned n = 6;
	uint64_t got[6];
	struct rig r;

	/* More than four servers: two random choices per pick. */
	rig_start(&r, n, "decay_ms=1");
	set_step(&r, 0, SLOW_NS);
	rig_phase(&r, total, got);
	cr_expect_lt(got[0] * n * 2, total,
		     "the slow server got %llu of %llu, over half its share",
		     ull(got[0]), ull(total));
	for (unsigned i = 1; i < n; i++)
		cr_expect_gt(got[i] * n * 2, total, "fast server %u got %llu of %llu",
			     i, ull(got[i]), ull(total));
	sy_engine_destroy(r.eng);
}

Test(policies_adaptive, refuses_bad_parameters)
{
	static const char *const bad[] = {
		"decay", "tau_ms=5", "decay_ms=0", "decay_ms=3600001",
		"penalty_ms=0", "penalty_ms=1s", "decay_ms=5,bogus=1",
	};
	static const char *const good[] = {
		"", "decay_ms=1", "penalty_ms=3600000", "decay_ms=250,penalty_ms=20",
	};
	struct sy_route_opts ro = { .policy = "adaptive", .n_servers = 2 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t ids[2], route;

	cr_assert_not_null(eng);
	cr_assert_eq(sy_server_add(eng, "a", step_handler, NULL, NULL, &ids[0]), 0);
	cr_assert_eq(sy_server_add(eng, "b", step_handler, NULL, NULL, &ids[1]), 0);
	ro.servers = ids;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ro.params = bad[i];
		cr_expect_eq(sy_route_add(eng, "r", &ro, &route), -EINVAL,
			     "params \"%s\" accepted", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ro.params = good[i];
		cr_expect_eq(sy_route_add(eng, "r", &ro, &route), 0,
			     "params \"%s\": %s", good[i], sy_last_error());
		cr_expect_eq(sy_route_remove(eng, route), 0);
	}
	sy_engine_destroy(eng);
}
