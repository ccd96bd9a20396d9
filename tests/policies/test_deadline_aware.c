/*
 * Tests of deadline-aware picks (sy_route_opts.deadline_aware) with the
 * adaptive policy.
 *
 * The engine runs on a fake clock that handlers move: a run of a slowed
 * server adds SLOW_NS, a run of a fast one FAST_NS. One worker runs every
 * server, in the order the messages were sent. A warm-up without deadlines
 * teaches the policy each server's service time. Then a blocker holds the
 * worker while the test sends messages that have DEADLINE_NS left: their
 * picks see the in-flight counts grow as they would under load. Released,
 * the worker runs them in order, and every run of a slowed server pushes
 * the clock past the deadlines of all the messages behind it, which the
 * worker then dead-letters as expired. Handlers never assert; no test
 * asserts how long anything took.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define SERVERS 4u
#define SLOWED 2u                  /* servers 0 and 1 */
#define FAST_NS 1000u
#define SLOW_NS 10000000u          /* 10 ms */
#define DEADLINE_NS 5000000u       /* 5 ms */
#define WARM_UP 400u
#define SENT 300u
#define START_NS 1000000000ull

struct server {
	struct t_clock *clock;
	uint64_t step_ns;
	_Atomic uint64_t got;
};

struct rig {
	sy_engine *eng;
	struct t_clock clock;
	struct server servers[SERVERS];
	uint32_t ids[SERVERS], route, slowed_route, hold_route;
	struct t_server holder;
};

static int step_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;

	(void)eng;
	(void)msg;
	atomic_fetch_add(&s->clock->ns, s->step_ns);
	atomic_fetch_add(&s->got, 1);
	return 0;
}

static uint64_t timed_out(sy_engine *eng)
{
	struct sy_accounting acc;

	cr_assert_eq(sy_engine_accounting(eng, &acc), 0);
	return acc.dead_lettered_by[SY_DL_TIMEOUT];
}

static uint64_t delivered(struct rig *r)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < SERVERS; i++)
		n += atomic_load(&r->servers[i].got);
	return n;
}

/* Wait until the servers have run @p n messages in all. */
static void wait_delivered(struct rig *r, uint64_t n)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;

	while (delivered(r) < n) {
		cr_assert_leq(t_now_ms(), end, "%llu of %llu delivered",
			      (unsigned long long)delivered(r),
			      (unsigned long long)n);
		t_sleep_us(100);
	}
}

/* Send @p n messages to @p route, each with @p deadline (0: none). */
static void send_n(struct rig *r, uint32_t route, unsigned n,
		   uint64_t deadline)
{
	for (unsigned i = 0; i < n; i++) {
		sy_msg *m = t_msg(r->eng, i);

		sy_msg_set_deadline(m, deadline);
		cr_assert_eq(sy_msg_send(r->eng, route, m), 0, "%s", sy_last_error());
	}
}

/*
 * A started one-worker engine: SERVERS step servers, the first SLOWED of
 * them slowed, an adaptive route over all of them and one over the slowed
 * ones (both deadline-aware when @p aware), a holder with a direct route;
 * warmed up, so that the policy knows every server's service time.
 */
static void rig_start(struct rig *r, bool aware)
{
	struct sy_route_opts ro = {
		.policy = "adaptive", .deadline_aware = aware,
	};

	r->eng = t_engine_at(1, &r->clock, START_NS);
	for (unsigned i = 0; i < SERVERS; i++) {
		r->servers[i].clock = &r->clock;
		r->servers[i].step_ns = i < SLOWED ? SLOW_NS : FAST_NS;
		atomic_init(&r->servers[i].got, 0);
	}
	t_add_servers(r->eng, SERVERS, 1, step_handler, r->servers,
		      sizeof(r->servers[0]), r->ids);
	r->route = t_add_route(r->eng, "all", ro, r->ids, SERVERS);
	r->slowed_route = t_add_route(r->eng, "slowed", ro, r->ids, SLOWED);
	r->hold_route = t_direct(r->eng, "holder", t_server_handler, &r->holder,
				 0, NULL);
	cr_assert_eq(sy_engine_start(r->eng), 0);
	send_n(r, r->route, WARM_UP, 0);
	wait_delivered(r, WARM_UP);
	/* Through the slowed route too, nothing in flight: its first pick
	 * finds both servers unmeasured and idle, its second the other one
	 * (the first is in flight or measured), so both get measured. */
	send_n(r, r->slowed_route, SLOWED, 0);
	wait_delivered(r, WARM_UP + SLOWED);
}

/* Hold the worker, send SENT messages with DEADLINE_NS left, release it,
 * wait until each was delivered or expired. @return how many expired. */
static uint64_t burst_with_deadlines(struct rig *r, uint32_t route)
{
	uint64_t before = delivered(r), expired = timed_out(r->eng);
	uint64_t end = t_now_ms() + T_WAIT_MS;

	t_hold(r->eng, r->hold_route, &r->holder, 1);
	send_n(r, route, SENT, atomic_load(&r->clock.ns) + DEADLINE_NS);
	atomic_fetch_add(&r->holder.released, 1);
	while (delivered(r) - before + timed_out(r->eng) - expired < SENT) {
		cr_assert_leq(t_now_ms(), end, "messages neither delivered nor expired");
		t_sleep_us(100);
	}
	return timed_out(r->eng) - expired;
}

static void rig_stop(struct rig *r)
{
	cr_assert_eq(sy_engine_stop(r->eng), 0);
	t_expect_balanced(r->eng);
	sy_engine_destroy(r->eng);
}

Test(policies_deadline_aware, fewer_messages_expire_than_without_it)
{
	struct rig plain = { 0 }, aware = { 0 };
	uint64_t lost_plain, lost_aware;

	rig_start(&plain, false);
	lost_plain = burst_with_deadlines(&plain, plain.route);
	rig_stop(&plain);
	rig_start(&aware, true);
	lost_aware = burst_with_deadlines(&aware, aware.route);
	rig_stop(&aware);
	/* Without it, power of two choices sometimes draws the two slowed
	 * servers and queues a message behind 10 ms of work: it and every
	 * message behind it expire. With it, they go to a fast server. */
	cr_expect_gt(lost_plain, SENT / 10, "without: %llu expired",
		     (unsigned long long)lost_plain);
	cr_expect_eq(lost_aware, 0, "with: %llu expired",
		     (unsigned long long)lost_aware);
}

Test(policies_deadline_aware, a_message_no_server_can_finish_is_shed_at_the_sender)
{
	struct rig r = { 0 };
	uint64_t before, got;

	rig_start(&r, true);
	before = timed_out(r.eng);
	got = delivered(&r);
	t_hold(r.eng, r.hold_route, &r.holder, 1);
	/* Both slowed servers take 10 ms; the deadline is 5 ms away: each
	 * message is dead-lettered by the send, while the worker is held. */
	send_n(&r, r.slowed_route, SENT, atomic_load(&r.clock.ns) + DEADLINE_NS);
	cr_expect_eq(timed_out(r.eng) - before, SENT);
	atomic_fetch_add(&r.holder.released, 1);
	/* Without a deadline they still go. */
	send_n(&r, r.slowed_route, 2, 0);
	wait_delivered(&r, got + 2);
	cr_expect_eq(delivered(&r), got + 2);
	rig_stop(&r);
}

Test(policies_deadline_aware, a_call_no_server_can_answer_in_time_is_refused)
{
	struct rig r = { 0 };
	struct sy_stats st;
	sy_msg *req, *reply = NULL;

	rig_start(&r, true);
	req = t_msg(r.eng, 7);
	sy_msg_set_deadline(req, atomic_load(&r.clock.ns) + DEADLINE_NS);
	cr_expect_eq(sy_msg_call(r.eng, r.slowed_route, req, &reply, 1000000000u),
		     -ETIME);
	cr_expect_null(reply);
	cr_assert_eq(sy_engine_stats(r.eng, &st), 0);
	cr_expect_eq(st.rejected_deadline, 1);
	sy_msg_free(req); /* still the caller's */
	rig_stop(&r);
}

Test(policies_deadline_aware, a_policy_without_estimates_is_refused)
{
	struct sy_route_opts ro = {
		.policy = "round_robin", .n_servers = 2, .deadline_aware = true,
	};
	struct rig r = { 0 };
	uint32_t id;

	r.eng = t_engine_at(1, &r.clock, START_NS);
	t_add_servers(r.eng, 2, 1, step_handler, r.servers,
		      sizeof(r.servers[0]), r.ids);
	ro.servers = r.ids;
	cr_expect_eq(sy_route_add(r.eng, "rr", &ro, &id), -EINVAL);
	sy_engine_destroy(r.eng);
}
