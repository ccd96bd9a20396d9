/*
 * End-to-end test of the ordering guarantee: messages from one thread to one
 * server are handled in the order sent.
 *
 * Producer threads number their messages and send them round robin to two
 * servers on two workers. Each server remembers, per producer, the last
 * number it handled; a number not above it is an order violation. A message
 * a full ring refused is sent again later, so it is renumbered first: the
 * numbers then follow the order of the send calls that were accepted, which
 * is the order the guarantee speaks of. Each producer also sums the numbers
 * it had accepted; the servers' sums must match (nothing lost or doubled).
 * The rings are small so that refusals, and the resends, happen often.
 *
 * Handlers never call Criterion's assertions; the test thread checks their
 * state after sy_engine_stop() has joined the workers.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define PRODUCERS 3u
#define SERVERS 2u
#define TOTAL 1000000u
/* Messages per sy_msg_send_burst() call: more than one 32-message chunk. */
#define BURST 48u
#define RING_SIZE 64u

/* Written only by the server's worker; read after the workers are joined. */
struct server {
	uint64_t next[PRODUCERS];  /* lowest number still in order */
	uint64_t sum[PRODUCERS];
	uint64_t got;
	uint64_t violations;
	uint64_t strangers;        /* unknown producer id */
};

static int order_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	struct t_note n;

	(void)eng;
	memcpy(&n, sy_msg_data(msg), sizeof(n));
	s->got++;
	if (n.producer >= PRODUCERS) {
		s->strangers++;
		return 0;
	}
	if (n.seq < s->next[n.producer])
		s->violations++;
	s->next[n.producer] = n.seq + 1;
	s->sum[n.producer] += n.seq;
	return 0;
}

static sy_msg *numbered(struct t_producer *p, uint64_t seq)
{
	struct t_note n = { .producer = p->id, .seq = seq };

	return t_note_msg(p->eng, &n);
}

static void renumber(sy_msg *m, uint64_t seq)
{
	struct t_note n;

	memcpy(&n, sy_msg_data(m), sizeof(n));
	n.seq = seq;
	memcpy(sy_msg_data(m), &n, sizeof(n));
}

static uint64_t seq_of(sy_msg *m)
{
	struct t_note n;

	memcpy(&n, sy_msg_data(m), sizeof(n));
	return n.seq;
}

/* BURST messages per sy_msg_send_burst(); refused ones go again, renumbered. */
static void *produce_in_bursts(void *arg)
{
	struct t_producer *p = arg;
	uint64_t next = 0, stall_end = t_now_ms() + T_WAIT_MS;
	sy_msg *msgs[BURST];
	unsigned held = 0;

	while (p->accepted < p->quota) {
		uint64_t batch_sum = 0, refused_sum = 0;
		int k;

		for (unsigned i = 0; i < held; i++)
			renumber(msgs[i], next++);
		while (held < BURST && p->accepted + held < p->quota) {
			sy_msg *m = numbered(p, next++);

			if (!m) {
				p->error = -ENOMEM;
				goto out_free;
			}
			msgs[held++] = m;
		}
		for (unsigned i = 0; i < held; i++)
			batch_sum += seq_of(msgs[i]);
		k = sy_msg_send_burst(p->eng, p->routes[0], msgs, held);
		if (k < 0) {
			if (k != -EAGAIN || t_now_ms() > stall_end) {
				p->error = k;
				goto out_free;
			}
			sched_yield();
			continue;
		}
		/* msgs[0..k) are the engine's now; only the rest may be read. */
		for (unsigned i = (unsigned)k; i < held; i++)
			refused_sum += seq_of(msgs[i]);
		p->accepted += (unsigned)k;
		p->sum += batch_sum - refused_sum;
		held -= (unsigned)k;
		memmove(msgs, msgs + k, held * sizeof(msgs[0]));
		stall_end = t_now_ms() + T_WAIT_MS;
	}
out_free:
	for (unsigned i = 0; i < held; i++)
		sy_msg_free(msgs[i]);
	return NULL;
}

static void run_order(void *(*produce)(void *))
{
	struct server servers[SERVERS];
	struct t_producer producers[PRODUCERS];
	uint64_t accepted = 0, got = 0;
	uint32_t ids[SERVERS], route;
	struct sy_config cfg;
	struct sy_stats st;
	sy_engine *eng;

	/* Small rings: producers outrun the workers and get refused often. */
	t_config(&cfg, SERVERS, NULL);
	cfg.ring_size = RING_SIZE;
	eng = t_create(&cfg);
	memset(servers, 0, sizeof(servers));
	t_add_servers(eng, SERVERS, 1, order_handler, servers, sizeof(servers[0]),
		      ids);
	route = t_add_route(eng, "ordered", (struct sy_route_opts){ 0 }, ids,
			    SERVERS);
	cr_assert_eq(sy_engine_start(eng), 0);

	t_producers_init(producers, PRODUCERS, eng, &route, 1, TOTAL);
	t_producers_run(producers, PRODUCERS, produce);
	for (uint32_t p = 0; p < PRODUCERS; p++)
		accepted += producers[p].accepted;
	/* Stop drains every accepted message and joins the workers. */
	cr_assert_eq(sy_engine_stop(eng), 0);

	for (uint32_t p = 0; p < PRODUCERS; p++)
		cr_expect_eq(producers[p].error, 0, "producer %u stopped: %d",
			     p, producers[p].error);
	cr_expect_eq(accepted, TOTAL);
	for (unsigned i = 0; i < SERVERS; i++) {
		got += servers[i].got;
		cr_expect_eq(servers[i].violations, 0,
			     "server %u: %llu messages out of order", i,
			     (unsigned long long)servers[i].violations);
		cr_expect_eq(servers[i].strangers, 0);
		cr_expect_gt(servers[i].got, 0, "server %u got nothing", i);
	}
	cr_expect_eq(got, TOTAL, "handled %llu of %u", (unsigned long long)got,
		     TOTAL);
	for (uint32_t p = 0; p < PRODUCERS; p++) {
		uint64_t sum = 0;

		for (unsigned i = 0; i < SERVERS; i++)
			sum += servers[i].sum[p];
		cr_expect_eq(sum, producers[p].sum,
			     "producer %u: handled numbers do not add up", p);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, TOTAL);
	cr_expect_eq(st.delivered, TOTAL);
	sy_engine_destroy(eng);
}

Test(core_order, each_producer_to_each_server_in_send_order)
{
	run_order(t_produce_notes);
}

Test(core_order, each_producer_to_each_server_in_send_order_with_bursts)
{
	run_order(produce_in_bursts);
}
