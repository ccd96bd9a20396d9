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
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define WAIT_MS 60000u
#define PRODUCERS 3u
#define SERVERS 2u
#define TOTAL 1000000u
/* Messages per sy_send_burst() call: more than one 32-message chunk. */
#define BURST 48u
#define RING_SIZE 64u

struct note {
	uint32_t producer;
	uint32_t pad;
	uint64_t seq;
};

/* Written only by the server's worker; read after the workers are joined. */
struct server {
	uint64_t next[PRODUCERS];  /* lowest number still in order */
	uint64_t sum[PRODUCERS];
	uint64_t got;
	uint64_t violations;
	uint64_t strangers;        /* unknown producer id */
};

struct producer {
	pthread_t thread;
	sy_engine *eng;
	uint32_t route;
	uint32_t id;
	uint64_t quota;
	uint64_t accepted;
	uint64_t sum;              /* of the numbers accepted */
	int error;                 /* the send error that stopped it, or 0 */
};

static int order_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	struct note n;

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

static sy_msg *numbered(struct producer *p, uint64_t seq)
{
	struct note n = { .producer = p->id, .seq = seq };
	sy_msg *m = sy_msg_alloc(p->eng, sizeof(n));

	if (m)
		memcpy(sy_msg_data(m), &n, sizeof(n));
	return m;
}

static void renumber(sy_msg *m, uint64_t seq)
{
	struct note n;

	memcpy(&n, sy_msg_data(m), sizeof(n));
	n.seq = seq;
	memcpy(sy_msg_data(m), &n, sizeof(n));
}

static uint64_t seq_of(sy_msg *m)
{
	struct note n;

	memcpy(&n, sy_msg_data(m), sizeof(n));
	return n.seq;
}

/* One message per sy_send(); a refused message is retried as it is. */
static void *produce_singly(void *arg)
{
	struct producer *p = arg;

	for (uint64_t seq = 0; seq < p->quota; seq++) {
		sy_msg *m = numbered(p, seq);
		int rc;

		if (!m) {
			p->error = -ENOMEM;
			break;
		}
		rc = t_send_retry(p->eng, p->route, m, WAIT_MS);
		if (rc) {
			sy_msg_free(m);
			p->error = rc;
			break;
		}
		p->accepted++;
		p->sum += seq;
	}
	return NULL;
}

/* BURST messages per sy_send_burst(); refused ones go again, renumbered. */
static void *produce_in_bursts(void *arg)
{
	struct producer *p = arg;
	uint64_t next = 0, stall_end = t_now_ms() + WAIT_MS;
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
		k = sy_send_burst(p->eng, p->route, msgs, held);
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
		stall_end = t_now_ms() + WAIT_MS;
	}
out_free:
	for (unsigned i = 0; i < held; i++)
		sy_msg_free(msgs[i]);
	return NULL;
}

static void run_order(void *(*produce)(void *))
{
	struct server servers[SERVERS];
	struct producer producers[PRODUCERS];
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = SERVERS };
	uint64_t accepted = 0, got = 0;
	uint32_t ids[SERVERS], route;
	sy_engine *eng = NULL;
	struct sy_config cfg;
	struct sy_stats st;

	/* Small rings: producers outrun the workers and get refused often. */
	sy_config_init(&cfg);
	cfg.workers = SERVERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.ring_size = RING_SIZE;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0, "%s", sy_last_error());
	memset(servers, 0, sizeof(servers));
	for (unsigned i = 0; i < SERVERS; i++) {
		struct sy_server_opts so = { .worker = (int)i };
		char name[] = "server-0";

		name[7] = (char)('0' + i);
		cr_assert_eq(sy_server_add(eng, name, order_handler, &servers[i],
					   &so, &ids[i]), 0);
	}
	ro.servers = ids;
	cr_assert_eq(sy_route_add(eng, "ordered", &ro, &route), 0);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint32_t p = 0; p < PRODUCERS; p++) {
		producers[p] = (struct producer){
			.eng = eng, .route = route, .id = p,
			.quota = TOTAL / PRODUCERS + (p < TOTAL % PRODUCERS),
		};
		cr_assert_eq(pthread_create(&producers[p].thread, NULL, produce,
					    &producers[p]), 0);
	}
	for (uint32_t p = 0; p < PRODUCERS; p++) {
		pthread_join(producers[p].thread, NULL);
		accepted += producers[p].accepted;
	}
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

Test(order_fifo, each_producer_to_each_server_in_send_order)
{
	run_order(produce_singly);
}

Test(order_fifo, each_producer_to_each_server_in_send_order_with_bursts)
{
	run_order(produce_in_bursts);
}
