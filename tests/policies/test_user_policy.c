/*
 * Tests of user-written policies: registered with sy_policy_register(),
 * then named by routes like the built-in ones.
 *
 * The policies here record what the engine hands them (the route's servers
 * and parameters in create(), the handler's result and service time in
 * observe()) in the global `seen`. Registrations are process-wide and
 * cannot be undone; Criterion runs each test in a process of its own, and
 * each test registers names of its own all the same.
 *
 * Handlers and policy callbacks count with atomics and never call
 * Criterion's assertions; the test thread asserts after the engine has
 * stopped. No test asserts how long anything took.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define MAX_SERVERS 4u
#define STEP_NS 123u

/* What the engine showed the policies. */
struct seen {
	/* create(): control thread only, read after it returns. */
	unsigned creates;
	char route_name[64];
	char params[64];
	unsigned n;
	struct sy_policy_server servers[MAX_SERVERS];
	/* destroy(): after an RCU grace period, on liburcu's thread. */
	_Atomic unsigned destroys;
	/* observe(): on the worker. */
	_Atomic uint64_t observed;
	_Atomic uint64_t observed_failed;  /* result -EIO */
	_Atomic uint64_t observed_odd;     /* any other result, index or time */
};

static struct seen seen;

/* ---- always_last: every message to the last server ---- */

struct last_state {
	unsigned n;
};

static int last_create(const struct sy_policy_route *route, void **state)
{
	struct last_state *s;

	if (strstr(route->params, "refuse=1"))
		return -EINVAL;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n = route->n;
	seen.creates++;
	strncpy(seen.route_name, route->name, sizeof(seen.route_name) - 1);
	strncpy(seen.params, route->params, sizeof(seen.params) - 1);
	seen.n = route->n;
	for (unsigned i = 0; i < route->n && i < MAX_SERVERS; i++)
		seen.servers[i] = route->servers[i];
	*state = s;
	return 0;
}

static void last_destroy(void *state)
{
	free(state);
	atomic_fetch_add(&seen.destroys, 1);
}

static int last_pick(const void *state, struct sy_pick *p)
{
	const struct last_state *s = state;

	(void)p;
	return (int)s->n - 1;
}

static void last_observe(void *state, unsigned index, int result,
			 uint64_t service_ns, uint64_t now_ns)
{
	const struct last_state *s = state;

	atomic_fetch_add(&seen.observed, 1);
	if (index != s->n - 1 || service_ns != STEP_NS || now_ns < service_ns ||
	    (result != 0 && result != -EIO))
		atomic_fetch_add(&seen.observed_odd, 1);
	else if (result == -EIO)
		atomic_fetch_add(&seen.observed_failed, 1);
}

static const struct sy_policy always_last = {
	.name = "always_last",
	.flags = SY_POLICY_OBSERVE,
	.create = last_create,
	.destroy = last_destroy,
	.pick = last_pick,
	.observe = last_observe,
};

/* The same callbacks, without asking for observe(). */
static const struct sy_policy always_last_unobserved = {
	.name = "always_last_unobserved",
	.create = last_create,
	.destroy = last_destroy,
	.pick = last_pick,
	.observe = last_observe,
};

/* ---- even_keys: the key's parity picks the server ---- */

static int parity_pick(const void *state, struct sy_pick *p)
{
	(void)state;
	return (int)(sy_pick_key(p) % 2);
}

static const struct sy_policy even_keys = {
	.name = "even_keys",
	.min_servers = 2,
	.max_servers = 2,
	.pick = parity_pick,
};

/* ------------------------------------------------------------------ */
/* The engine                                                         */
/* ------------------------------------------------------------------ */

struct server {
	_Atomic uint64_t *clock;
	unsigned index;
	_Atomic uint64_t got;
	_Atomic uint64_t wrong_key;  /* keys of the other parity */
};

struct rig {
	sy_engine *eng;
	struct t_clock clock;
	uint32_t ids[MAX_SERVERS];
	struct server servers[MAX_SERVERS];
};

/* Takes STEP_NS of fake time; fails the messages with an odd tag. */
static int step_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;

	(void)eng;
	atomic_fetch_add(s->clock, STEP_NS);
	if (sy_msg_key(msg) % 2 != s->index % 2)
		atomic_fetch_add(&s->wrong_key, 1);
	atomic_fetch_add(&s->got, 1);
	return sy_msg_tag(msg) % 2 ? -EIO : 0;
}

/* An engine of one worker on a fake clock, with @p n servers. */
static void rig_start(struct rig *r, unsigned n)
{
	r->eng = t_engine_at(1, &r->clock, 1);
	for (unsigned i = 0; i < n; i++) {
		r->servers[i].clock = &r->clock.ns;
		r->servers[i].index = i;
		atomic_init(&r->servers[i].got, 0);
		atomic_init(&r->servers[i].wrong_key, 0);
	}
	t_add_servers(r->eng, n, 1, step_handler, r->servers,
		      sizeof(r->servers[0]), r->ids);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* Register @p policy, start a rig of @p n servers and add route @p name
 * over them with the options @p ro. */
static uint32_t rig_route(struct rig *r, const struct sy_policy *policy,
			  unsigned n, const char *name, struct sy_route_opts ro)
{
	cr_assert_eq(sy_policy_register(policy), 0);
	rig_start(r, n);
	return t_add_route(r->eng, name, ro, r->ids, n);
}

/* Send @p count messages with tag and key i, then stop the engine. */
static void rig_send_and_stop(struct rig *r, uint32_t route, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		sy_msg *m = t_msg(r->eng, i);

		sy_msg_set_key(m, i);
		cr_assert_eq(t_send_retry(r->eng, route, m, RIG_WAIT_MS), 0);
	}
	/* Drains: every accepted message is handled and observed. */
	cr_assert_eq(sy_engine_stop(r->eng), 0);
}

static uint64_t got(struct rig *r, unsigned i)
{
	return atomic_load(&r->servers[i].got);
}

Test(policies_user, route_uses_a_registered_policy_by_name)
{
	const uint32_t weights[] = { 3, 1, 7 };
	struct sy_route_opts ro = {
		.policy = "always_last", .weights = weights, .params = "answer=42",
	};
	struct rig r;
	uint32_t route = rig_route(&r, &always_last, 3, "to-last", ro);

	cr_expect_eq(seen.creates, 1);
	cr_expect_str_eq(seen.route_name, "to-last");
	cr_expect_str_eq(seen.params, "answer=42");
	cr_expect_eq(seen.n, 3);
	for (unsigned i = 0; i < 3; i++) {
		cr_expect_eq(seen.servers[i].id, r.ids[i]);
		cr_expect_eq(seen.servers[i].weight, weights[i]);
	}

	rig_send_and_stop(&r, route, 100);
	cr_expect_eq(got(&r, 0), 0);
	cr_expect_eq(got(&r, 1), 0);
	cr_expect_eq(got(&r, 2), 100);
	sy_engine_destroy(r.eng);
	/* Destroying the engine frees the route after a grace period. */
	cr_expect_eq(atomic_load(&seen.destroys), 1);
}

Test(policies_user, observe_gets_each_result_and_service_time)
{
	struct sy_route_opts ro = { .policy = "always_last" };
	struct sy_stats st;
	struct rig r;
	uint32_t route = rig_route(&r, &always_last, 2, "observed", ro);
	rig_send_and_stop(&r, route, 100);
	cr_assert_eq(sy_engine_stats(r.eng, &st), 0);
	cr_expect_eq(st.handler_failed, 50);
	cr_expect_eq(atomic_load(&seen.observed), 100);
	cr_expect_eq(atomic_load(&seen.observed_failed), 50);
	cr_expect_eq(atomic_load(&seen.observed_odd), 0,
		     "%llu observations with a wrong index, result or time",
		     (unsigned long long)atomic_load(&seen.observed_odd));
	sy_engine_destroy(r.eng);
}

Test(policies_user, observe_is_not_called_without_its_flag)
{
	struct sy_route_opts ro = { .policy = "always_last_unobserved" };
	struct rig r;
	uint32_t route = rig_route(&r, &always_last_unobserved, 2, "unobserved", ro);
	rig_send_and_stop(&r, route, 50);
	cr_expect_eq(got(&r, 1), 50);
	cr_expect_eq(atomic_load(&seen.observed), 0);
	sy_engine_destroy(r.eng);
}

/* ---- first_timed: one server, and the service time of each run ---- */

#define SLOW_NS 1000000u

static struct {
	_Atomic unsigned n;
	_Atomic uint64_t service_ns[4];
} timed;

static int first_pick(const void *state, struct sy_pick *p)
{
	(void)state;
	(void)p;
	return 0;
}

static void timed_observe(void *state, unsigned index, int result,
			  uint64_t service_ns, uint64_t now_ns)
{
	unsigned i = atomic_fetch_add(&timed.n, 1);

	(void)state;
	(void)index;
	(void)result;
	(void)now_ns;
	if (i < 4)
		atomic_store(&timed.service_ns[i], service_ns);
}

static const struct sy_policy first_timed = {
	.name = "first_timed",
	.flags = SY_POLICY_OBSERVE,
	.pick = first_pick,
	.observe = timed_observe,
};

struct mixed {
	struct t_clock clock;
	uint32_t observed, plain;  /* routes */
	_Atomic unsigned refused;
	_Atomic uint64_t runs;      /* of the quick and the slow server */
};

/* A server that takes @p ns of the fake clock of @p x. */
struct stepper {
	struct mixed *x;
	uint64_t ns;
};

static int stepper_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	const struct stepper *s = ctx;

	(void)eng;
	(void)msg;
	atomic_fetch_add(&s->x->clock.ns, s->ns);
	atomic_fetch_add(&s->x->runs, 1);
	return 0;
}

/* Send to the observed route, the plain one and the observed one again
 * from the worker: the three wait in its ring to itself until this run
 * ends, and its next look at that ring takes them together. */
static int kick_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct mixed *x = ctx;
	const uint32_t to[] = { x->observed, x->plain, x->observed };

	(void)msg;
	for (unsigned i = 0; i < 3; i++) {
		sy_msg *m = sy_msg_alloc(eng, 8);

		if (!m || sy_msg_send(eng, to[i], m) != 0) {
			sy_msg_free(m);
			atomic_fetch_add(&x->refused, 1);
		}
	}
	return 0;
}

Test(policies_user, observe_times_its_own_run_not_the_runs_between)
{
	struct sy_route_opts ro = { .policy = "first_timed" };
	struct mixed x = { .refused = 0, .runs = 0 };
	struct stepper quick_run = { &x, STEP_NS }, slow_run = { &x, SLOW_NS };
	uint32_t quick, kick;
	sy_engine *eng;

	cr_assert_eq(sy_policy_register(&first_timed), 0);
	eng = t_engine_at(1, &x.clock, 1);
	quick = t_add_server(eng, "quick", stepper_handler, &quick_run, 0);
	x.observed = t_add_route(eng, "observed", ro, &quick, 1);
	x.plain = t_direct(eng, "plain", stepper_handler, &slow_run, 0, NULL);
	kick = t_direct(eng, "kick", kick_handler, &x, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);
	cr_assert_eq(t_send_retry(eng, kick, t_msg(eng, 0), RIG_WAIT_MS), 0);
	/* The kick's sends are refused once the engine stops: wait first. */
	cr_assert(t_wait_u64(&x.runs, 3, RIG_WAIT_MS),
		  "%u of the three sends refused", atomic_load(&x.refused));
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(atomic_load(&timed.n), 2);
	/* The slow run between the two observed ones is not the second's. */
	for (unsigned i = 0; i < 2; i++)
		cr_expect_eq(atomic_load(&timed.service_ns[i]), STEP_NS,
			     "observed run %u: %llu ns, not %u", i,
			     (unsigned long long)atomic_load(&timed.service_ns[i]),
			     STEP_NS);
	sy_engine_destroy(eng);
}

Test(policies_user, pick_sees_the_message_key)
{
	struct sy_route_opts ro = { .policy = "even_keys" };
	struct rig r;
	uint32_t route = rig_route(&r, &even_keys, 2, "parity", ro);
	rig_send_and_stop(&r, route, 200);
	for (unsigned i = 0; i < 2; i++) {
		cr_expect_eq(got(&r, i), 100, "server %u got %llu", i,
			     (unsigned long long)got(&r, i));
		cr_expect_eq(atomic_load(&r.servers[i].wrong_key), 0);
	}
	sy_engine_destroy(r.eng);
}

Test(policies_user, route_build_honours_create_and_server_limits)
{
	struct sy_route_opts ro = { .n_servers = 2 };
	struct rig r;
	uint32_t route;

	cr_assert_eq(sy_policy_register(&always_last), 0);
	cr_assert_eq(sy_policy_register(&even_keys), 0);
	rig_start(&r, 3);
	ro.servers = r.ids;

	ro.policy = "always_last";
	ro.params = "refuse=1";
	cr_expect_eq(sy_route_add(r.eng, "refused", &ro, &route), -EINVAL);
	cr_expect_eq(seen.creates, 0);

	ro.policy = "even_keys";
	ro.params = NULL;
	ro.n_servers = 3;
	cr_expect_eq(sy_route_add(r.eng, "three", &ro, &route), -EINVAL);
	ro.n_servers = 1;
	cr_expect_eq(sy_route_add(r.eng, "one", &ro, &route), -EINVAL);

	ro.policy = "no_such_policy";
	ro.n_servers = 2;
	cr_expect_eq(sy_route_add(r.eng, "unknown", &ro, &route), -EINVAL);
	sy_engine_destroy(r.eng);
}

Test(policies_user, register_refuses_bad_and_duplicate_policies)
{
	static const struct sy_policy nameless = { .pick = parity_pick };
	static const struct sy_policy empty = { .name = "", .pick = parity_pick };
	static const struct sy_policy no_pick = { .name = "no_pick" };
	static const struct sy_policy too_long = {
		.name = "a_policy_name_of_32_bytes_______", .pick = parity_pick,
	};
	static const struct sy_policy longest = {
		.name = "a_policy_name_of_31_bytes______", .pick = parity_pick,
	};
	static const struct sy_policy builtin = {
		.name = "round_robin", .pick = parity_pick,
	};
	static const struct sy_policy twin = {
		.name = "twice_registered", .pick = parity_pick,
	};
	static const struct sy_policy twin_again = {
		.name = "twice_registered", .pick = last_pick,
	};

	cr_expect_eq(sy_policy_register(NULL), -EINVAL);
	cr_expect_eq(sy_policy_register(&nameless), -EINVAL);
	cr_expect_eq(sy_policy_register(&empty), -EINVAL);
	cr_expect_eq(sy_policy_register(&no_pick), -EINVAL);
	cr_expect_eq(sy_policy_register(&too_long), -EINVAL);
	cr_expect_eq(sy_policy_register(&longest), 0);
	cr_expect_eq(sy_policy_register(&builtin), -EEXIST);
	cr_expect_eq(sy_policy_register(&twin), 0);
	cr_expect_eq(sy_policy_register(&twin), -EEXIST);
	cr_expect_eq(sy_policy_register(&twin_again), -EEXIST);
}

/* ---- out_of_range: pick() returns what the test says ---- */

static _Atomic int out_of_range_index;

static int out_of_range_pick(const void *state, struct sy_pick *p)
{
	(void)state;
	(void)p;
	return atomic_load(&out_of_range_index);
}

static uint64_t no_estimate(const void *state, struct sy_pick *p,
			    unsigned index)
{
	(void)state;
	(void)p;
	(void)index;
	return 0;
}

/*
 * An index out of range picks the first server, INT_MIN too (it had been
 * taken for a deadline-aware route's "no server in time": a message with
 * no deadline dead-lettered as late, a call refused with -ETIME), on a
 * plain route and on a deadline-aware one.
 */
Test(policies_user, a_pick_out_of_range_takes_the_first_server)
{
	static const struct sy_policy out_of_range = {
		.name = "out_of_range", .pick = out_of_range_pick,
		.estimate = no_estimate,
	};
	const int picks[] = { INT_MIN, -1, 2, INT_MAX };
	struct rig r;
	uint32_t plain = rig_route(&r, &out_of_range, 2, "plain",
				   (struct sy_route_opts){ .policy = "out_of_range" });
	uint32_t aware = t_add_route(r.eng, "aware", (struct sy_route_opts){
		.policy = "out_of_range", .deadline_aware = true }, r.ids, 2);
	struct sy_accounting a;
	unsigned sent = 0;

	for (unsigned i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
		atomic_store(&out_of_range_index, picks[i]);
		for (int k = 0; k < 2; k++) {
			uint32_t route = k ? aware : plain;
			sy_msg *reply = NULL;

			cr_expect_eq(sy_msg_send(r.eng, route, t_msg(r.eng, 0)),
				     0, "pick %d", picks[i]);
			/* The counting handler does not answer: the call
			 * waits out a short timeout, it is not refused. */
			cr_expect_eq(sy_msg_call(r.eng, route, t_msg(r.eng, 0),
						 &reply, 1000000), -ETIMEDOUT,
				     "pick %d", picks[i]);
			sent += 2;
		}
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 0), sent);
	cr_expect_eq(got(&r, 1), 0);
	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_expect_eq(a.dead_lettered, 0);
	sy_engine_destroy(r.eng);
}

/* ---- refusing: create() returns what the test says ---- */

static int refusing_code;

static int refusing_create(const struct sy_policy_route *route, void **state)
{
	(void)route;
	*state = NULL;
	return refusing_code;
}

/*
 * create() documents 0, -EINVAL and -ENOMEM: a route it refuses with any
 * other code is not added, with -EINVAL (its -EEXIST had said the route's
 * name was taken, INT_MIN was no errno at all); -ENOMEM stays -ENOMEM.
 */
Test(policies_user, a_create_refusal_is_einval_unless_out_of_memory)
{
	static const struct sy_policy refusing = {
		.name = "refusing", .create = refusing_create,
		.pick = out_of_range_pick,
	};
	const int codes[] = { INT_MIN, -EEXIST, -EIO, 1, INT_MAX, -ENOMEM };
	struct sy_route_opts ro = { .policy = "refusing", .n_servers = 2 };
	struct rig r;
	uint32_t route;

	cr_assert_eq(sy_policy_register(&refusing), 0);
	rig_start(&r, 2);
	ro.servers = r.ids;
	for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		refusing_code = codes[i];
		cr_expect_eq(sy_route_add(r.eng, "refused", &ro, &route),
			     codes[i] == -ENOMEM ? -ENOMEM : -EINVAL,
			     "create() returned %d", codes[i]);
	}
	refusing_code = 0;
	cr_expect_eq(sy_route_add(r.eng, "refused", &ro, &route), 0,
		     "the refusals left the name free");
	sy_engine_destroy(r.eng);
}
