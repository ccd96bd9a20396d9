/*
 * End-to-end tests of sy_engine_accounting(): every accepted message ends
 * delivered, dead-lettered or evicted from the dead letter queue, and the
 * engine can say where each one went.
 *
 * One mixed workload exercises every way a message can end: handlers that
 * succeed, fail without retries, fail once and succeed on a retry, fail on
 * every attempt; deadlines that have passed; a route past its backpressure
 * threshold in dead-letter mode; routes whose servers are gone or whose
 * circuit is forced open, with dead_letter_unreachable. The dead letter
 * queue holds only a few entries, so most dead letters are evicted. While
 * two producer threads send, the test thread reads the accounting over and
 * over: outcomes may lag behind acceptances but never run ahead of them.
 * After the traffic has settled and the engine has stopped, the totals
 * match what the producers sent exactly.
 *
 * Handlers and producers run on their own threads, where Criterion's
 * assertions must not be called: they count (atomics, or fields the test
 * thread reads after joining them) and the test thread asserts.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define RING_SIZE 64u
/* bp_high 0.8 (the default) of the 63 entries a ring holds: ceil(50.4). */
#define BP_LIMIT 51u
#define MAX_DEAD_LETTERS 16u
#define PRODUCERS 2u
#define PER_PRODUCER 12000u

/* ids % 3 == 0 fail every attempt, ids % 3 == 1 fail the first attempt
 * only, the rest succeed. */
static int flaky_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	uint64_t id = sy_msg_tag(msg);

	(void)eng;
	(void)ctx;
	if (id % 3 == 0 || (id % 3 == 1 && sy_msg_attempts(msg) == 1))
		return -EIO;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The workload                                                        */
/* ------------------------------------------------------------------ */

/* Kinds of message, one route each (EXPIRED goes through OK). */
enum kind { OK, EXPIRED, FLAKY_KIND, FAILING, CONGESTED, GONE, OPEN, KINDS };

struct rig {
	sy_engine *eng;
	uint32_t route[KINDS];
	struct t_server ok[2], failing, slow, gone, open;
};

struct producer {
	struct rig *rig;
	unsigned id;
	uint64_t accepted[KINDS];
	uint64_t gave_up;          /* -EAGAIN for too long: freed, not accepted */
	int fatal;                 /* an unexpected return code */
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	sy_engine *eng = p->rig->eng;

	for (uint64_t i = 0; i < PER_PRODUCER && !p->fatal; i++) {
		enum kind k = (enum kind)(i % KINDS);
		uint64_t id = (uint64_t)p->id << 32 | i;
		sy_msg *m = t_msg_try(eng, id);
		uint64_t end = t_now_ms() + T_WAIT_MS;
		int rc;

		if (!m) {
			p->fatal = -ENOMEM;
			break;
		}
		if (k == EXPIRED)
			sy_msg_set_deadline(m, 1);
		while ((rc = sy_msg_send(eng, p->rig->route[k], m)) == -EAGAIN &&
		       t_now_ms() < end)
			sched_yield();
		if (rc == 0) {
			p->accepted[k]++;
			continue;
		}
		sy_msg_free(m);
		if (rc == -EAGAIN)
			p->gave_up++;
		else
			p->fatal = rc;
	}
	return NULL;
}

/* A direct route @p name to a new counting server @p s on @p worker with
 * breaker @p breaker; the server's id in *sid. */
static uint32_t add_direct(struct rig *rig, const char *name, struct t_server *s,
			   int worker, const struct sy_breaker_opts *breaker,
			   struct sy_route_opts ro, uint32_t *sid)
{
	struct sy_server_opts so = { .worker = worker, .worker_set = true, .breaker = breaker };

	cr_assert_eq(sy_server_add(rig->eng, name, t_server_handler, s, &so, sid),
		     0, "sy_server_add(%s): %s", name, sy_last_error());
	return t_add_route(rig->eng, name, ro, sid, 1);
}

/* Three workers: the gated server has worker 2 to itself, so holding it
 * holds nothing else. The dead letter queue holds @p max_dead_letters.
 * The slow server holds a blocker: its route is congested past BP_LIMIT. */
static void rig_setup(struct rig *rig, unsigned max_dead_letters)
{
	const struct sy_breaker_opts breaker = { .consecutive_failures = 5 };
	const struct sy_route_opts none = { 0 };
	struct sy_config cfg;
	uint32_t ok[2], flaky[2], id;

	memset(rig, 0, sizeof(*rig));
	rig->failing.fail_before = T_FAIL_ALWAYS;
	t_config(&cfg, 3, NULL);
	cfg.ring_size = RING_SIZE;
	cfg.max_dead_letters = max_dead_letters;
	rig->eng = t_create(&cfg);

	ok[0] = t_add_counter(rig->eng, "ok0", &rig->ok[0], 0);
	ok[1] = t_add_counter(rig->eng, "ok1", &rig->ok[1], 1);
	flaky[0] = t_add_server(rig->eng, "flaky0", flaky_handler, NULL, 0);
	flaky[1] = t_add_server(rig->eng, "flaky1", flaky_handler, NULL, 1);
	rig->route[OK] = rig->route[EXPIRED] = t_add_route(rig->eng, "ok", none, ok, 2);
	rig->route[FLAKY_KIND] = t_add_route(rig->eng, "flaky",
		(struct sy_route_opts){ .max_attempts = 2, .retry_budget = 1000,
					.retry_budget_min = 1000000 },
		flaky, 2);
	rig->route[FAILING] = add_direct(rig, "failing", &rig->failing, 1, NULL,
					 none, &id);
	rig->route[CONGESTED] = add_direct(rig, "slow", &rig->slow, 2, NULL,
		(struct sy_route_opts){ .backpressure = SY_BP_DEAD_LETTER }, &id);
	rig->route[GONE] = add_direct(rig, "gone", &rig->gone, 0, NULL,
		(struct sy_route_opts){ .dead_letter_unreachable = true }, &id);
	cr_assert_eq(sy_server_remove(rig->eng, id), 0);
	rig->route[OPEN] = add_direct(rig, "open", &rig->open, 1, &breaker,
		(struct sy_route_opts){ .dead_letter_unreachable = true }, &id);
	cr_assert_eq(sy_breaker_force(rig->eng, id, SY_BREAKER_FORCED_OPEN), 0);
	cr_assert_eq(sy_engine_start(rig->eng), 0);
	t_hold(rig->eng, rig->route[CONGESTED], &rig->slow, 0);
}

static bool wait_settled(sy_engine *eng)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	struct sy_accounting a;

	for (;;) {
		sy_engine_accounting(eng, &a);
		if (a.in_flight == 0)
			return true;
		if (t_now_ms() > end)
			return false;
		t_sleep_us(20);
	}
}

Test(reliability_accounting, every_accepted_message_of_a_mixed_workload_is_accounted_for)
{
	struct rig rig;
	struct producer prod[PRODUCERS];
	pthread_t threads[PRODUCERS];
	struct t_watch w = { 0 };
	uint64_t sent[KINDS] = { 0 }, accepted = 0, delivered, dead;
	struct sy_accounting a;
	struct sy_stats st;

	rig_setup(&rig, MAX_DEAD_LETTERS);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		prod[i] = (struct producer){ .rig = &rig, .id = i + 1 };
		cr_assert_eq(pthread_create(&threads[i], NULL, producer_main,
					    &prod[i]), 0);
	}
	/* Read while the producers send: a bounded number of reads, then
	 * keep reading until they are done. */
	for (unsigned i = 0; i < 20000; i++) {
		t_watch_once(rig.eng, &w);
		if (i % 64 == 0)
			sched_yield();
	}
	for (unsigned i = 0; i < PRODUCERS; i++)
		pthread_join(threads[i], NULL);
	atomic_store(&rig.slow.released, 1);
	cr_assert(wait_settled(rig.eng), "messages still in flight");
	cr_assert_eq(sy_engine_stop(rig.eng), 0);

	cr_expect_eq(w.ahead, 0, "%llu of %llu reads showed more messages ended "
		     "than accepted (by up to %llu)", (unsigned long long)w.ahead,
		     (unsigned long long)w.reads, (unsigned long long)w.worst);
	cr_expect_eq(w.unbalanced, 0, "%llu reads where the reasons did not add up",
		     (unsigned long long)w.unbalanced);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		cr_assert_eq(prod[i].fatal, 0, "producer %u: %s", i,
			     sy_strerror(prod[i].fatal));
		cr_assert_eq(prod[i].gave_up, 0);
		for (unsigned k = 0; k < KINDS; k++)
			sent[k] += prod[i].accepted[k];
	}
	for (unsigned k = 0; k < KINDS; k++)
		accepted += sent[k];
	accepted += 1; /* the blocker */
	/* Delivered: the blocker, the OK kind, the congested messages that
	 * fit in each producer's ring before the threshold, and the flaky
	 * ones whose id is not a multiple of 3. */
	delivered = 1 + sent[OK] + (uint64_t)PRODUCERS * BP_LIMIT;
	for (unsigned i = 0; i < PRODUCERS; i++)
		for (uint64_t n = FLAKY_KIND; n < PER_PRODUCER; n += KINDS)
			delivered += ((uint64_t)prod[i].id << 32 | n) % 3 != 0;
	dead = accepted - delivered;

	t_expect_balanced(rig.eng);
	t_expect_accounting(rig.eng, accepted, delivered, dead);
	cr_assert_eq(sy_engine_accounting(rig.eng, &a), 0);
	cr_expect_gt(a.evicted, 0);
	cr_expect_leq(a.dlq_held, MAX_DEAD_LETTERS);
	cr_expect_eq(a.dlq_held, a.dead_lettered);
	sy_engine_stats(rig.eng, &st);
	cr_expect_eq(st.accepted, a.accepted);
	cr_expect_eq(st.in_flight, 0);
	cr_expect_eq(st.rejected_backpressure, 0);
	cr_expect_eq(st.rejected_unreachable, 0);
	sy_engine_destroy(rig.eng);
}

/* Each way to end, alone, with room in the queue: the reason is the one the
 * user would expect. */
Test(reliability_accounting, each_outcome_is_counted_under_its_reason)
{
	enum { EACH = 40 };
	struct rig rig;
	struct sy_accounting a;
	uint64_t flaky_dead = 0, flaky_ok = 0;

	rig_setup(&rig, 4096);
	for (unsigned k = 0; k < KINDS; k++) {
		unsigned n = k == CONGESTED ? BP_LIMIT + EACH : EACH;

		for (uint64_t i = 0; i < n; i++) {
			sy_msg *m = t_msg(rig.eng, i);

			if (k == EXPIRED)
				sy_msg_set_deadline(m, 1);
			cr_assert_eq(t_send_retry(rig.eng, rig.route[k], m, T_WAIT_MS),
				     0, "kind %u, message %llu", k,
				     (unsigned long long)i);
			if (k == FLAKY_KIND && i % 3)
				flaky_ok++;
			else if (k == FLAKY_KIND)
				flaky_dead++;
		}
	}
	atomic_store(&rig.slow.released, 1);
	cr_assert(wait_settled(rig.eng), "messages still in flight");
	cr_assert_eq(sy_engine_stop(rig.eng), 0);
	cr_assert_eq(sy_engine_accounting(rig.eng, &a), 0);
	cr_expect_eq(a.evicted, 0);
	cr_expect_eq(a.dead_lettered_by[SY_DL_TIMEOUT], EACH);
	cr_expect_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], EACH);
	cr_expect_eq(a.dead_lettered_by[SY_DL_RETRIES_EXHAUSTED], flaky_dead);
	cr_expect_eq(a.dead_lettered_by[SY_DL_BACKPRESSURE], EACH);
	cr_expect_eq(a.dead_lettered_by[SY_DL_UNREACHABLE], EACH);
	cr_expect_eq(a.dead_lettered_by[SY_DL_CIRCUIT_OPEN], EACH);
	cr_expect_eq(a.dead_lettered_by[SY_DL_SHUTDOWN], 0);
	cr_expect_eq(a.delivered, 1 + EACH + flaky_ok + BP_LIMIT);
	cr_expect_eq(a.accepted, a.delivered + a.dead_lettered);
	cr_expect_eq(a.in_flight, 0);
	sy_engine_destroy(rig.eng);
}

/* Fails every message it gets: keeps and frees odd tags, leaves even
 * ones to the engine. */
static int fail_keeping_odd(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)ctx;
	if (sy_msg_tag(msg) % 2) {
		if (sy_msg_keep(msg) == 0)
			sy_msg_free(msg);
	}
	return -1;
}

static int succeed(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	(void)ctx;
	return 0;
}

Test(reliability_accounting, delivered_means_a_successful_handler_run_everywhere)
{
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t bad = t_direct(eng, "bad", fail_keeping_odd, NULL, -1, NULL);
	uint32_t good = t_direct(eng, "good", succeed, NULL, -1, NULL);
	const struct sy_series *engine_series;
	struct sy_accounting a;
	struct sy_stats st;
	sy_snapshot *snap;

	cr_assert_eq(sy_engine_start(eng), 0);
	for (uint64_t tag = 0; tag < 4; tag++)
		cr_assert_eq(sy_msg_send(eng, bad, t_msg(eng, tag)), 0);
	for (uint64_t tag = 0; tag < 3; tag++)
		cr_assert_eq(sy_msg_send(eng, good, t_msg(eng, tag)), 0);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	cr_expect_eq(st.handler_runs, 7);
	cr_expect_eq(st.handler_failed, 4);
	cr_expect_eq(st.delivered, 3);
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 7);
	cr_expect_eq(a.delivered, 3);
	cr_expect_eq(a.failed_kept, 2, "failed runs that kept their message");
	cr_expect_eq(a.dead_lettered, 2);
	t_expect_balanced(eng);
	cr_assert_eq(sy_metrics_refresh(eng), 0);
	snap = sy_metrics_snapshot(eng);
	cr_assert_not_null(snap);
	engine_series = sy_snapshot_series(snap, SY_SERIES_ENGINE, 0);
	cr_assert_not_null(engine_series);
	cr_expect_eq(engine_series->total.delivered, 3);
	cr_expect_eq(engine_series->total.failed, 4);
	sy_snapshot_release(snap);
	sy_engine_destroy(eng);
}
