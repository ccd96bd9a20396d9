/*
 * Circuit breaker tests.
 *
 * Most tests drive one breaker through its internal functions: the test
 * thread plays the server's worker (sy__breaker_record()) and the senders
 * (sy__breaker_admit()), and moves an injected engine clock, so no test
 * depends on how long anything takes. The end-to-end tests route real
 * messages and check where they went.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "core/breaker.h"
#include "core/engine.h"
#include "core/route.h"
#include "tests/fixture.h"

#define OPEN_NS 1000000u

/* ------------------------------------------------------------------ */
/* Fixture: an engine with a fake clock and a transition log          */
/* ------------------------------------------------------------------ */

struct transition {
	uint32_t server;
	int from, to;
};

struct rig {
	struct t_clock clock;
	pthread_mutex_t mu;
	unsigned ntr;
	struct transition tr[64];
	sy_engine *eng;
	struct sy__server *srv;
};

static void on_breaker(sy_engine *eng, uint32_t server, int from, int to,
		       void *ctx)
{
	struct rig *r = ctx;

	(void)eng;
	pthread_mutex_lock(&r->mu);
	if (r->ntr < 64)
		r->tr[r->ntr++] = (struct transition){ server, from, to };
	pthread_mutex_unlock(&r->mu);
}

static void rig_engine(struct rig *r, unsigned workers)
{
	struct sy_config cfg;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	atomic_init(&r->clock.ns, 1000);
	t_config(&cfg, workers, &r->clock);
	cfg.on_breaker = on_breaker;
	cfg.callback_ctx = r;
	r->eng = t_create(&cfg);
}

/* A server built by hand (id 7), with a breaker of options @p o. */
static void rig_init(struct rig *r, const struct sy_breaker_opts *o)
{
	rig_engine(r, 1);
	r->srv = calloc(1, sizeof(*r->srv));
	cr_assert_not_null(r->srv);
	r->srv->id = 7;
	strcpy(r->srv->name, "hand-made");
	atomic_init(&r->srv->gate, 0u);
	cr_assert_eq(sy__breaker_create(r->eng, o, &r->srv->breaker), 0,
		     "%s", sy_last_error());
}

static void rig_fini(struct rig *r)
{
	if (r->srv) {
		sy__breaker_destroy(r->eng, r->srv->breaker);
		free(r->srv);
	}
	sy_engine_destroy(r->eng);
	pthread_mutex_destroy(&r->mu);
}

static void advance(struct rig *r, uint64_t ns)
{
	atomic_fetch_add(&r->clock.ns, ns);
}

static enum sy_breaker_state state_of(struct rig *r)
{
	return sy__breaker_get(r->srv->breaker);
}

static unsigned gate_of(struct rig *r)
{
	return atomic_load(&r->srv->gate);
}

static uint64_t transitions_of(struct rig *r)
{
	return atomic_load(&r->srv->transitions);
}

static void record_n(struct rig *r, bool ok, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		sy__breaker_record(r->srv, ok);
}

/* Record results from a pattern: 'F' a failure, 'S' a success. */
static void record_pattern(struct rig *r, const char *p)
{
	for (; *p; p++)
		sy__breaker_record(r->srv, *p == 'S');
}

static void assert_logged(struct rig *r, unsigned i, int from, int to)
{
	pthread_mutex_lock(&r->mu);
	cr_assert_gt(r->ntr, i, "transition %u not logged", i);
	cr_assert_eq(r->tr[i].server, r->srv->id);
	cr_assert_eq(r->tr[i].from, from, "transition %u: from %d, not %d", i,
		     r->tr[i].from, from);
	cr_assert_eq(r->tr[i].to, to, "transition %u: to %d, not %d", i,
		     r->tr[i].to, to);
	pthread_mutex_unlock(&r->mu);
}

static unsigned logged(struct rig *r)
{
	unsigned n;

	pthread_mutex_lock(&r->mu);
	n = r->ntr;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* Trip a breaker whose consecutive_failures is @p n, at the current time. */
static void trip(struct rig *r, unsigned n)
{
	record_n(r, false, n);
	cr_assert_eq(state_of(r), SY_BREAKER_OPEN);
}

/* A closed breaker that opens for OPEN_NS after @p failures in a row. */
static void rig_closed(struct rig *r, unsigned failures)
{
	rig_init(r, &(struct sy_breaker_opts){ .consecutive_failures = failures,
						.open_ns = OPEN_NS });
}

/* A closed breaker that opens only by its failure rate: @p rate of the
 * last @p window calls, once @p min_calls (0: window) are in. */
static void rig_rate(struct rig *r, unsigned window, unsigned min_calls,
		     double rate)
{
	rig_init(r, &(struct sy_breaker_opts){ .consecutive_failures = 100,
						.window = window,
						.min_calls = min_calls,
						.failure_rate = rate });
}

/* A breaker that opens for OPEN_NS after @p failures in a row and then
 * admits @p probes (0: the default), tripped now. */
static void rig_tripped(struct rig *r, unsigned failures, unsigned probes,
			unsigned successes)
{
	rig_init(r, &(struct sy_breaker_opts){ .consecutive_failures = failures,
						.open_ns = OPEN_NS,
						.half_open_probes = probes,
						.success_threshold = successes });
	trip(r, failures);
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static int create_rc(sy_engine *eng, struct sy_breaker_opts o)
{
	struct sy__breaker *b = NULL;
	int rc = sy__breaker_create(eng, &o, &b);

	if (rc == 0)
		sy__breaker_destroy(eng, b);
	return rc;
}

Test(reliability_breaker, bad_options_are_refused_with_a_message)
{
	struct rig r;

	rig_engine(&r, 1);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ 0 }), 0);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ .window = 1024 }), 0);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ .window = 1025 }), -EINVAL);
	cr_assert_str_neq(sy_last_error(), "");
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){
		.window = 10, .min_calls = 11 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ .min_calls = 3 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ .failure_rate = 0.5 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){
		.window = 10, .failure_rate = 1.5 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){
		.window = 10, .failure_rate = -0.1 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){
		.half_open_probes = 2, .success_threshold = 3 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){ .success_threshold = 2 }), -EINVAL);
	cr_assert_eq(create_rc(r.eng, (struct sy_breaker_opts){
		.half_open_probes = 65536 }), -EINVAL);
	rig_fini(&r);
}

Test(reliability_breaker, default_options_trip_after_five_failures_in_a_row)
{
	struct rig r;

	rig_init(&r, &(struct sy_breaker_opts){ 0 });
	record_n(&r, false, 4);
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	record_n(&r, false, 1);
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	/* Default open time: one second of engine time. */
	advance(&r, 999999999);
	cr_assert_not(sy__breaker_admit(r.srv));
	advance(&r, 1);
	cr_assert(sy__breaker_admit(r.srv));
	cr_assert_not(sy__breaker_admit(r.srv), "one probe by default");
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Closed -> open                                                     */
/* ------------------------------------------------------------------ */

Test(reliability_breaker, consecutive_failures_open_it)
{
	struct rig r;

	rig_closed(&r, 3);
	record_pattern(&r, "FFSFF");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED, "a success resets the run");
	cr_assert_eq(gate_of(&r), 0u);
	cr_assert(sy__breaker_would_admit(r.srv));
	record_pattern(&r, "F");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	cr_assert_eq(gate_of(&r), (unsigned)SY_GATE_BREAKER);
	cr_assert_not(sy__breaker_admit(r.srv));
	cr_assert_not(sy__breaker_would_admit(r.srv));
	cr_assert_eq(transitions_of(&r), 1);
	assert_logged(&r, 0, SY_BREAKER_CLOSED, SY_BREAKER_OPEN);
	rig_fini(&r);
}

Test(reliability_breaker, failure_rate_opens_it_once_min_calls_are_in)
{
	struct rig r;

	rig_rate(&r, 10, 10, 0.5);
	/* 5 of 9 failed: above the rate, but fewer calls than min_calls. */
	record_pattern(&r, "FSFSFSFSF");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	/* The tenth call: 5 of 10 is the rate. */
	record_pattern(&r, "S");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	cr_assert_eq(transitions_of(&r), 1);
	rig_fini(&r);
}

Test(reliability_breaker, failure_rate_below_the_threshold_does_not_trip_it)
{
	struct rig r;

	rig_rate(&r, 10, 5, 0.5);
	/* At most 4 failures in any 10 calls in a row. */
	for (unsigned i = 0; i < 100; i++)
		record_pattern(&r, "FSS");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	cr_assert_eq(transitions_of(&r), 0);
	rig_fini(&r);
}

Test(reliability_breaker, failures_leave_the_window_as_it_slides)
{
	struct rig r;

	rig_rate(&r, 4, 0, 0.75);
	/* Two failures, then four successes push them out of the window. */
	record_pattern(&r, "FFSSSS");
	/* [S S F F]: 0.5. */
	record_pattern(&r, "FF");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	/* [S F F F]: 0.75. */
	record_pattern(&r, "F");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	rig_fini(&r);
}

Test(reliability_breaker, a_result_that_arrives_while_open_is_ignored)
{
	struct rig r;

	rig_tripped(&r, 2, 0, 0);
	/* Messages admitted before the trip finish: nothing changes. */
	record_pattern(&r, "SSSFFF");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	cr_assert_eq(transitions_of(&r), 1);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Open -> half-open -> closed or open                                */
/* ------------------------------------------------------------------ */

Test(reliability_breaker, stays_open_until_open_ns_then_admits_a_probe)
{
	struct rig r;

	rig_tripped(&r, 1, 0, 0);
	advance(&r, OPEN_NS - 1);
	cr_assert_not(sy__breaker_would_admit(r.srv));
	cr_assert_not(sy__breaker_admit(r.srv));
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	advance(&r, 1);
	cr_assert(sy__breaker_would_admit(r.srv));
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN, "would_admit changes nothing");
	cr_assert(sy__breaker_admit(r.srv));
	cr_assert_eq(state_of(&r), SY_BREAKER_HALF_OPEN);
	cr_assert_eq(gate_of(&r), (unsigned)SY_GATE_BREAKER);
	cr_assert_not(sy__breaker_admit(r.srv), "one probe, taken");
	cr_assert_not(sy__breaker_would_admit(r.srv));
	assert_logged(&r, 1, SY_BREAKER_OPEN, SY_BREAKER_HALF_OPEN);
	cr_assert_eq(transitions_of(&r), 2);
	rig_fini(&r);
}

Test(reliability_breaker, half_open_success_threshold_closes_it)
{
	struct rig r;

	rig_tripped(&r, 2, 3, 2);
	advance(&r, OPEN_NS);
	for (unsigned i = 0; i < 3; i++)
		cr_assert(sy__breaker_admit(r.srv), "probe %u", i);
	cr_assert_not(sy__breaker_admit(r.srv));
	record_pattern(&r, "S");
	cr_assert_eq(state_of(&r), SY_BREAKER_HALF_OPEN);
	record_pattern(&r, "S");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	cr_assert_eq(gate_of(&r), 0u);
	assert_logged(&r, 2, SY_BREAKER_HALF_OPEN, SY_BREAKER_CLOSED);
	cr_assert_eq(transitions_of(&r), 3);
	/* Closed again with fresh counts: one failure does not trip it. */
	record_pattern(&r, "F");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	rig_fini(&r);
}

Test(reliability_breaker, half_open_failed_probe_reopens_it_for_open_ns_more)
{
	struct rig r;

	rig_tripped(&r, 1, 2, 0);
	advance(&r, OPEN_NS);
	cr_assert(sy__breaker_admit(r.srv));
	advance(&r, 500);
	record_pattern(&r, "S");
	record_pattern(&r, "F");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	cr_assert_eq(gate_of(&r), (unsigned)SY_GATE_BREAKER);
	assert_logged(&r, 2, SY_BREAKER_HALF_OPEN, SY_BREAKER_OPEN);
	/* The open time starts again at the failure. */
	advance(&r, OPEN_NS - 1);
	cr_assert_not(sy__breaker_admit(r.srv));
	advance(&r, 1);
	cr_assert(sy__breaker_admit(r.srv));
	cr_assert_eq(state_of(&r), SY_BREAKER_HALF_OPEN);
	rig_fini(&r);
}

Test(reliability_breaker, half_open_probes_whose_results_never_come_are_renewed)
{
	struct rig r;

	rig_tripped(&r, 1, 0, 0);
	advance(&r, OPEN_NS);
	cr_assert(sy__breaker_admit(r.srv));
	/* The probe was lost (a full ring refused it after the pick). */
	advance(&r, OPEN_NS - 1);
	cr_assert_not(sy__breaker_admit(r.srv));
	advance(&r, 1);
	cr_assert(sy__breaker_would_admit(r.srv));
	cr_assert(sy__breaker_admit(r.srv), "a new round of probes");
	cr_assert_not(sy__breaker_admit(r.srv));
	cr_assert_eq(state_of(&r), SY_BREAKER_HALF_OPEN);
	cr_assert_eq(transitions_of(&r), 2, "a new round is no transition");
	record_pattern(&r, "S");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Racing senders in half-open                                        */
/* ------------------------------------------------------------------ */

#define RACERS 8
#define TRIES 4

struct race {
	struct rig *rig;
	pthread_barrier_t start;
	_Atomic unsigned admitted;
};

static void *racer(void *arg)
{
	struct race *race = arg;
	unsigned mine = 0;

	pthread_barrier_wait(&race->start);
	for (unsigned i = 0; i < TRIES; i++)
		mine += sy__breaker_admit(race->rig->srv);
	atomic_fetch_add(&race->admitted, mine);
	return NULL;
}

Test(reliability_breaker, half_open_racing_senders_get_exactly_the_probes)
{
	const unsigned probes = 3, rounds = 50;
	pthread_t t[RACERS];
	struct race race;
	struct rig r;

	rig_tripped(&r, 1, probes, 0);
	race.rig = &r;
	for (unsigned round = 0; round < rounds; round++) {
		atomic_init(&race.admitted, 0);
		pthread_barrier_init(&race.start, NULL, RACERS);
		advance(&r, OPEN_NS);
		for (unsigned i = 0; i < RACERS; i++)
			cr_assert_eq(pthread_create(&t[i], NULL, racer, &race), 0);
		for (unsigned i = 0; i < RACERS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&race.start);
		cr_assert_eq(atomic_load(&race.admitted), probes,
			     "round %u: %u admitted", round,
			     atomic_load(&race.admitted));
		cr_assert_eq(state_of(&r), SY_BREAKER_HALF_OPEN);
		/* A failed probe opens it again for the next round. */
		record_pattern(&r, "F");
		cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	}
	/* Each round: open -> half-open (one winner) -> open. */
	cr_assert_eq(transitions_of(&r), 1 + 2 * rounds);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Operators                                                          */
/* ------------------------------------------------------------------ */

Test(reliability_breaker, forced_open_refuses_and_forced_closed_restores)
{
	struct rig r;

	rig_closed(&r, 3);
	record_pattern(&r, "FF");
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_FORCED_OPEN), 0);
	cr_assert_eq(state_of(&r), SY_BREAKER_FORCED_OPEN);
	cr_assert_eq(gate_of(&r), (unsigned)SY_GATE_BREAKER);
	advance(&r, 100 * (uint64_t)OPEN_NS);
	cr_assert_not(sy__breaker_admit(r.srv), "no time reopens it");
	cr_assert_not(sy__breaker_would_admit(r.srv));
	record_pattern(&r, "SSSFFFFF");
	cr_assert_eq(state_of(&r), SY_BREAKER_FORCED_OPEN, "results are ignored");
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_CLOSED), 0);
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	cr_assert_eq(gate_of(&r), 0u);
	cr_assert(sy__breaker_admit(r.srv));
	/* The counts were cleared: two more failures do not trip it. */
	record_pattern(&r, "FF");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	record_pattern(&r, "F");
	cr_assert_eq(state_of(&r), SY_BREAKER_OPEN);
	rig_fini(&r);
}

Test(reliability_breaker, forced_closed_clears_the_counts_of_a_closed_breaker)
{
	struct rig r;

	rig_init(&r, &(struct sy_breaker_opts){ .consecutive_failures = 3 });
	record_pattern(&r, "FF");
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_CLOSED), 0);
	cr_assert_eq(transitions_of(&r), 0, "closed to closed is no transition");
	cr_assert_eq(logged(&r), 0);
	record_pattern(&r, "FF");
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	rig_fini(&r);
}

Test(reliability_breaker, forced_disabled_ignores_failures)
{
	struct rig r;

	rig_init(&r, &(struct sy_breaker_opts){ .consecutive_failures = 1,
						 .window = 8 });
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_DISABLED), 0);
	record_n(&r, false, 100);
	cr_assert_eq(state_of(&r), SY_BREAKER_DISABLED);
	cr_assert_eq(gate_of(&r), 0u);
	cr_assert(sy__breaker_admit(r.srv));
	cr_assert(sy__breaker_would_admit(r.srv));
	rig_fini(&r);
}

Test(reliability_breaker, forcing_other_states_is_refused)
{
	struct rig r;

	rig_init(&r, &(struct sy_breaker_opts){ 0 });
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_OPEN), -EINVAL);
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_HALF_OPEN), -EINVAL);
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, (enum sy_breaker_state)42), -EINVAL);
	cr_assert_eq(state_of(&r), SY_BREAKER_CLOSED);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* The callback and the transition count                              */
/* ------------------------------------------------------------------ */

Test(reliability_breaker, callback_sees_each_transition_once)
{
	static const int want[][2] = {
		{ SY_BREAKER_CLOSED, SY_BREAKER_OPEN },
		{ SY_BREAKER_OPEN, SY_BREAKER_HALF_OPEN },
		{ SY_BREAKER_HALF_OPEN, SY_BREAKER_OPEN },
		{ SY_BREAKER_OPEN, SY_BREAKER_HALF_OPEN },
		{ SY_BREAKER_HALF_OPEN, SY_BREAKER_CLOSED },
		{ SY_BREAKER_CLOSED, SY_BREAKER_FORCED_OPEN },
		{ SY_BREAKER_FORCED_OPEN, SY_BREAKER_DISABLED },
		{ SY_BREAKER_DISABLED, SY_BREAKER_CLOSED },
	};
	const unsigned n = sizeof(want) / sizeof(want[0]);
	struct rig r;

	rig_tripped(&r, 1, 0, 0);
	advance(&r, OPEN_NS);
	cr_assert(sy__breaker_admit(r.srv));
	cr_assert_not(sy__breaker_admit(r.srv));
	record_pattern(&r, "F");
	advance(&r, OPEN_NS);
	cr_assert(sy__breaker_admit(r.srv));
	record_pattern(&r, "S");
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_FORCED_OPEN), 0);
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_FORCED_OPEN), 0);
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_DISABLED), 0);
	cr_assert_eq(sy__breaker_force(r.eng, r.srv, SY_BREAKER_CLOSED), 0);
	cr_assert_eq(logged(&r), n);
	for (unsigned i = 0; i < n; i++)
		assert_logged(&r, i, want[i][0], want[i][1]);
	cr_assert_eq(transitions_of(&r), n);
	cr_assert_eq(gate_of(&r), 0u);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Public functions and routing                                       */
/* ------------------------------------------------------------------ */

Test(reliability_breaker, state_and_force_by_server_id)
{
	struct sy_breaker_opts bo = { 0 };
	struct sy_server_opts so = { .worker = 0, .worker_set = true };
	enum sy_breaker_state st = SY_BREAKER_OPEN;
	struct t_server c = { 0 };
	uint32_t plain, guarded;
	struct rig r;

	rig_engine(&r, 1);
	plain = t_add_counter(r.eng, "plain", &c, 0);
	so.breaker = &bo;
	cr_assert_eq(sy_server_add(r.eng, "guarded", t_server_handler, &c, &so,
				   &guarded), 0);

	cr_assert_eq(sy_breaker_state(r.eng, plain, &st), 0);
	cr_assert_eq(st, SY_BREAKER_CLOSED, "no breaker reads as closed");
	cr_assert_eq(sy_breaker_force(r.eng, plain, SY_BREAKER_FORCED_OPEN), -EINVAL);
	cr_assert_eq(sy_breaker_state(r.eng, 999, &st), -ENOENT);
	cr_assert_eq(sy_breaker_force(r.eng, 999, SY_BREAKER_CLOSED), -ENOENT);

	cr_assert_eq(sy_breaker_force(r.eng, guarded, SY_BREAKER_FORCED_OPEN), 0);
	cr_assert_eq(sy_breaker_state(r.eng, guarded, &st), 0);
	cr_assert_eq(st, SY_BREAKER_FORCED_OPEN);
	cr_assert_eq(sy_breaker_force(r.eng, guarded, SY_BREAKER_OPEN), -EINVAL);
	cr_assert_eq(sy_breaker_force(r.eng, guarded, SY_BREAKER_CLOSED), 0);
	cr_assert_eq(sy_breaker_state(r.eng, guarded, &st), 0);
	cr_assert_eq(st, SY_BREAKER_CLOSED);
	cr_assert_eq(logged(&r), 2);

	bo.window = 2000;
	cr_assert_eq(sy_server_add(r.eng, "bad", t_server_handler, &c, &so, &plain),
		     -EINVAL, "sy_server_add checks the breaker options");
	r.srv = NULL;
	rig_fini(&r);
}

/* Wait (bounded) until server @p id's breaker is in state @p want. */
static bool wait_state(sy_engine *eng, uint32_t id, enum sy_breaker_state want)
{
	for (unsigned i = 0; i < T_WAIT_MS; i++) {
		enum sy_breaker_state st;

		cr_assert_eq(sy_breaker_state(eng, id, &st), 0);
		if (st == want)
			return true;
		usleep(1000);
	}
	return false;
}

Test(reliability_breaker, open_circuit_sends_everything_to_the_other_server)
{
	struct sy_breaker_opts bo = { .consecutive_failures = 3, .open_ns = OPEN_NS };
	struct sy_server_opts so = { .worker = 0, .worker_set = true, .breaker = &bo };
	struct t_server a = { .failing = true }, b = { 0 };
	const struct sy_route_opts plain = { 0 };
	uint32_t ids[2], pair, only_a;
	struct rig r;

	rig_engine(&r, 2);
	cr_assert_eq(sy_server_add(r.eng, "a", t_server_handler, &a, &so, &ids[0]), 0);
	ids[1] = t_add_counter(r.eng, "b", &b, 1);
	pair = t_add_route(r.eng, "pair", plain, ids, 2);
	only_a = t_add_route(r.eng, "only-a", plain, ids, 1);
	cr_assert_eq(sy_engine_start(r.eng), 0);

	/* Three failed handler runs on a's worker trip its breaker. */
	t_send_tags(r.eng, only_a, 0, 3);
	cr_assert(wait_state(r.eng, ids[0], SY_BREAKER_OPEN));
	cr_assert_eq(atomic_load(&a.handled), 3);

	t_send_tags(r.eng, pair, 0, 100);
	cr_assert(t_wait_u64(&b.handled, 100, T_WAIT_MS));
	cr_assert_eq(atomic_load(&a.handled), 3, "an open circuit gets nothing");

	/* After open_ns one probe goes to a; it succeeds and closes it. */
	atomic_store(&a.failing, false);
	advance(&r, OPEN_NS);
	t_send_tags(r.eng, pair, 0, 2);
	cr_assert(wait_state(r.eng, ids[0], SY_BREAKER_CLOSED));
	cr_assert_eq(atomic_load(&a.handled), 4, "exactly one probe");
	t_send_tags(r.eng, pair, 0, 10);
	cr_assert(t_wait_u64(&a.handled, 5, T_WAIT_MS), "a is back in the route");

	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(logged(&r), 3);
	pthread_mutex_lock(&r.mu);
	cr_assert_eq(r.tr[0].server, ids[0]);
	cr_assert_eq(r.tr[0].from, SY_BREAKER_CLOSED);
	cr_assert_eq(r.tr[0].to, SY_BREAKER_OPEN);
	cr_assert_eq(r.tr[1].to, SY_BREAKER_HALF_OPEN);
	cr_assert_eq(r.tr[2].to, SY_BREAKER_CLOSED);
	pthread_mutex_unlock(&r.mu);
	cr_assert_eq(atomic_load(&r.eng->servers[ids[0]]->transitions), 3);
	r.srv = NULL;
	rig_fini(&r);
}
