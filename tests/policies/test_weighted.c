/*
 * Tests of the weighted policy as a user sees it: the order in which one
 * producer's messages reach the servers (nginx's smooth weighted round
 * robin), the shares over many messages, new weights at run time, and the
 * weights a route refuses.
 *
 * Each message carries its phase and its number in the phase in its tag.
 * A server's handler counts its messages per phase and writes its index
 * into a log at the message's number, so the log reads the sequence of
 * picks whatever order the two workers run in. The test thread reads the
 * counts and the log after the handlers are done (a bounded wait on an
 * acquire count, or sy_engine_stop()). Handlers never assert.
 *
 * The engine picks a server when it takes a send, and a send refused for a
 * full ring has used up its pick. So that each message is picked exactly
 * once, the sender keeps fewer messages in flight than a ring has entries,
 * and no send is refused.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define MAX_SERVERS 20u
#define PHASES 3u

struct rig;

struct server {
	uint8_t index;                /* in the route */
	_Atomic uint64_t got[PHASES];
	struct rig *rig;
};

struct rig {
	sy_engine *eng;
	uint32_t route;
	unsigned n;
	uint64_t sent;
	_Atomic uint64_t delivered;
	uint8_t *log;                 /* [log_len]: server index by message number */
	uint64_t log_len;
	uint32_t ids[MAX_SERVERS];
	struct server servers[MAX_SERVERS];
};

static uint64_t tag_of(unsigned phase, uint64_t number)
{
	return (uint64_t)phase << 32 | number;
}

static int log_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	uint64_t tag = sy_msg_tag(msg), number = tag & 0xffffffffu;
	unsigned phase = (unsigned)(tag >> 32);

	(void)eng;
	if (phase < PHASES)
		atomic_fetch_add_explicit(&s->got[phase], 1, memory_order_relaxed);
	if (number < s->rig->log_len)
		s->rig->log[number] = s->index;
	/* Pairs with the load in rig_wait_handled(): the count and log above are visible. */
	atomic_fetch_add_explicit(&s->rig->delivered, 1, memory_order_release);
	return 0;
}

/* Servers over two workers; the route is added by the test. */
static void rig_init(struct rig *r, unsigned n, uint64_t log_len)
{
	cr_assert_leq(n, MAX_SERVERS);
	r->n = n;
	r->sent = 0;
	atomic_init(&r->delivered, 0);
	r->log_len = log_len;
	r->log = log_len ? calloc(log_len, 1) : NULL;
	cr_assert(!log_len || r->log);
	r->eng = t_engine(2, SY_IDLE_SLEEP);
	cr_assert_not_null(r->eng, "%s", sy_last_error());
	for (unsigned i = 0; i < n; i++) {
		r->servers[i].index = (uint8_t)i;
		r->servers[i].rig = r;
		for (unsigned p = 0; p < PHASES; p++)
			atomic_init(&r->servers[i].got[p], 0);
	}
	t_add_servers(r->eng, n, 2, log_handler, r->servers,
		      sizeof(r->servers[0]), r->ids);
}

static int rig_route(struct rig *r, const uint32_t *weights, unsigned n)
{
	struct sy_route_opts ro = {
		.policy = "weighted", .servers = r->ids, .n_servers = n,
		.weights = weights,
	};

	return sy_route_add(r->eng, "weighted", &ro, &r->route);
}

static void rig_start(struct rig *r, const uint32_t *weights)
{
	cr_assert_eq(rig_route(r, weights, r->n), 0, "%s", sy_last_error());
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

static void rig_destroy(struct rig *r)
{
	sy_engine_destroy(r->eng);
	free(r->log);
}

/* Message i of a phase carries the phase and i in its tag. */
static void label_number(sy_msg *msg, uint64_t i, void *ctx)
{
	const unsigned *phase = ctx;

	sy_msg_set_tag(msg, tag_of(*phase, i));
}

/* Send @p total messages of @p phase, numbered from 0, none refused. */
static void send_many(struct rig *r, unsigned phase, uint64_t total)
{
	rig_send(r->eng, r->route, &r->sent, &r->delivered, total, label_number,
		 &phase);
}

static uint64_t got(const struct rig *r, unsigned server, unsigned phase)
{
	return atomic_load(&r->servers[server].got[phase]);
}

/* Every window of seven in the log reads a a b a c a a. */
static void check_nginx_sequence(const uint32_t *weights)
{
	const uint8_t expected[7] = { 0, 0, 1, 0, 2, 0, 0 };
	const uint64_t windows = 20000, total = 7 * windows;
	uint64_t wrong = 0, first_wrong = 0;
	struct rig r;

	rig_init(&r, 3, total);
	rig_start(&r, weights);
	send_many(&r, 0, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	for (uint64_t i = 0; i < total; i++) {
		if (r.log[i] != expected[i % 7] && wrong++ == 0)
			first_wrong = i;
	}
	cr_expect_eq(wrong, 0,
		     "weights %u,%u,%u: %llu picks out of sequence, the first at %llu (server %u)",
		     weights[0], weights[1], weights[2],
		     (unsigned long long)wrong, (unsigned long long)first_wrong,
		     r.log[first_wrong]);
	rig_destroy(&r);
}

Test(policies_weighted, nginx_sequence_a_a_b_a_c_a_a_in_every_window_of_seven)
{
	check_nginx_sequence((const uint32_t[]){ 5, 1, 1 });
}

Test(policies_weighted, weights_with_a_common_divisor_give_the_same_sequence)
{
	check_nginx_sequence((const uint32_t[]){ 500, 100, 100 });
}

/* One step of nginx's smooth weighted round robin (ngx_http_upstream_get_peer). */
static unsigned nginx_step(const uint32_t *weight, int64_t *current, unsigned n)
{
	int64_t total = 0;
	unsigned best = 0;

	for (unsigned i = 0; i < n; i++) {
		current[i] += weight[i];
		total += weight[i];
		if (current[i] > current[best])
			best = i;
	}
	current[best] -= total;
	return best;
}

/* Three periods of picks read exactly as nginx's algorithm steps. */
static void check_against_nginx(const uint32_t *weights, unsigned n)
{
	int64_t current[MAX_SERVERS] = { 0 };
	uint64_t total = 0, wrong = 0, first_wrong = 0;
	struct rig r;

	for (unsigned i = 0; i < n; i++)
		total += weights[i];
	total *= 3;
	rig_init(&r, n, total);
	rig_start(&r, weights);
	send_many(&r, 0, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (uint64_t i = 0; i < total; i++) {
		if (r.log[i] != nginx_step(weights, current, n) && wrong++ == 0)
			first_wrong = i;
	}
	cr_expect_eq(wrong, 0, "%u servers: %llu of %llu picks differ, the first at %llu",
		     n, (unsigned long long)wrong, (unsigned long long)total,
		     (unsigned long long)first_wrong);
	rig_destroy(&r);
}

Test(policies_weighted, the_sequence_is_nginx_smooth_weighted_round_robin)
{
	check_against_nginx((const uint32_t[]){ 2, 2, 3 }, 3);
	check_against_nginx((const uint32_t[]){ 3, 7, 1, 12, 5 }, 5);
	check_against_nginx((const uint32_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1, 50 }, 10);
	check_against_nginx((const uint32_t[]){ 65535, 1, 30000, 977 }, 4);
}

Test(policies_weighted, a_million_messages_match_the_weights_by_chi_square)
{
	const uint32_t weights[] = { 1, 10, 100, 1000 };
	const uint64_t total = 1000000;
	double expected[4], chi2;
	uint64_t counts[4];
	struct rig r;

	rig_init(&r, 4, 0);
	rig_start(&r, weights);
	send_many(&r, 0, total);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&r.delivered), total);
	for (unsigned i = 0; i < 4; i++) {
		counts[i] = got(&r, i, 0);
		expected[i] = (double)total * weights[i] / 1111;
	}
	chi2 = rig_chi_square(counts, expected, 4);
	cr_expect_lt(chi2, RIG_CHI2_P001_DF3, "chi-square %.3f >= %.3f", chi2,
		     RIG_CHI2_P001_DF3);
	rig_destroy(&r);
}

Test(policies_weighted, new_weights_by_route_replace_change_the_shares)
{
	const uint32_t phase_weights[PHASES][3] = { { 1, 1, 1 }, { 4, 2, 1 },
						    { 1, 3, 6 } };
	/* Multiples of each phase's period: exact shares from any cursor. */
	const uint64_t phase_total[PHASES] = { 30000, 70000, 100000 };
	struct rig r;

	rig_init(&r, 3, 0);
	rig_start(&r, phase_weights[0]);
	for (unsigned p = 0; p < PHASES; p++) {
		struct sy_route_opts ro = {
			.policy = "weighted", .servers = r.ids, .n_servers = 3,
			.weights = phase_weights[p],
		};

		if (p > 0)
			cr_assert_eq(sy_route_replace(r.eng, r.route, &ro), 0, "%s",
				     sy_last_error());
		send_many(&r, p, phase_total[p]);
	}
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	for (unsigned p = 0; p < PHASES; p++) {
		uint32_t sum = 0;

		for (unsigned i = 0; i < 3; i++)
			sum += phase_weights[p][i];
		for (unsigned i = 0; i < 3; i++)
			cr_expect_eq(got(&r, i, p), phase_total[p] / sum * phase_weights[p][i],
				     "phase %u, server %u: %llu messages", p, i,
				     (unsigned long long)got(&r, i, p));
	}
	rig_destroy(&r);
}

Test(policies_weighted, weights_out_of_range_are_refused)
{
	const uint32_t zero[] = { 1, 0, 1 }, too_big[] = { 1, 70000, 1 };
	const uint32_t good[] = { 2, 1, 1 };
	struct sy_route_opts ro = {
		.policy = "weighted", .n_servers = 3, .weights = zero,
	};
	uint32_t id;
	struct rig r;

	rig_init(&r, 3, 0);
	ro.servers = r.ids;
	cr_expect_eq(sy_route_add(r.eng, "zero", &ro, &id), -EINVAL);
	ro.weights = too_big;
	cr_expect_eq(sy_route_add(r.eng, "too-big", &ro, &id), -EINVAL);
	ro.params = "bogus=1";
	ro.weights = good;
	cr_expect_eq(sy_route_add(r.eng, "bad-param", &ro, &id), -EINVAL);

	/* A refused replacement leaves the route as it was. */
	rig_start(&r, good);
	ro.params = NULL;
	ro.weights = zero;
	cr_expect_eq(sy_route_replace(r.eng, r.route, &ro), -EINVAL);
	ro.weights = too_big;
	cr_expect_eq(sy_route_replace(r.eng, r.route, &ro), -EINVAL);
	send_many(&r, 0, 4000);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 0, 0), 2000);
	cr_expect_eq(got(&r, 1, 0), 1000);
	cr_expect_eq(got(&r, 2, 0), 1000);
	rig_destroy(&r);
}

Test(policies_weighted, a_sum_of_weights_above_two_to_the_twentieth_is_refused)
{
	uint32_t weights[17];
	struct rig r;

	/* 16 * 65535 + 16 == 1 << 20: the largest sum, without a common divisor. */
	for (unsigned i = 0; i < 16; i++)
		weights[i] = 65535;
	weights[16] = 16;
	rig_init(&r, 17, 0);
	cr_expect_eq(rig_route(&r, weights, 17), 0, "%s", sy_last_error());
	cr_expect_eq(sy_route_remove(r.eng, r.route), 0);
	weights[16] = 17;
	cr_expect_eq(rig_route(&r, weights, 17), -EINVAL);
	rig_destroy(&r);
}
