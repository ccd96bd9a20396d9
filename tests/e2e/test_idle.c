/*
 * End-to-end tests of the idle strategies with more threads than CPUs: four
 * workers and four producer threads, whatever the machine has. Under each
 * strategy every message must arrive; a worker that spins must not keep the
 * others (or the producers) from making progress, and a worker that sleeps
 * must be woken by every send that needs it.
 *
 * Every wait is bounded; nothing here measures how long anything took.
 * Handlers never call Criterion's assertions.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define WORKERS 4u
#define PRODUCERS 4u
#define PER_PRODUCER 200000u

struct server {
	_Atomic uint64_t *total;   /* shared by all servers */
	uint64_t from[PRODUCERS];  /* this server's worker only */
	uint64_t strangers;
};

static int idle_test_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct server *s = ctx;
	struct t_note n;

	(void)eng;
	memcpy(&n, sy_msg_data(msg), sizeof(n));
	if (n.producer < PRODUCERS)
		s->from[n.producer]++;
	else
		s->strangers++;
	atomic_fetch_add(s->total, 1);
	return 0;
}

static void run_idle(enum sy_idle idle)
{
	struct server servers[WORKERS];
	struct t_producer producers[PRODUCERS];
	sy_engine *eng = t_engine(WORKERS, idle);
	_Atomic uint64_t total = 0;
	uint32_t ids[WORKERS], route;
	struct sy_stats st;

	cr_assert_not_null(eng);
	memset(servers, 0, sizeof(servers));
	for (unsigned i = 0; i < WORKERS; i++)
		servers[i].total = &total;
	t_add_servers(eng, WORKERS, 1, idle_test_handler, servers,
		      sizeof(servers[0]), ids);
	route = t_add_route(eng, "all", (struct sy_route_opts){ 0 }, ids, WORKERS);
	cr_assert_eq(sy_engine_start(eng), 0);

	t_producers_init(producers, PRODUCERS, eng, &route, 1,
			 PRODUCERS * PER_PRODUCER);
	t_producers_run(producers, PRODUCERS, t_produce_notes);
	for (uint32_t p = 0; p < PRODUCERS; p++)
		cr_assert_eq(producers[p].error, 0, "producer %u stopped: %d",
			     p, producers[p].error);
	/* Delivered while running: sleeping workers were woken by the sends. */
	cr_assert(t_wait_u64(&total, PRODUCERS * PER_PRODUCER, T_WAIT_MS),
		  "delivered %llu of %u before stop",
		  (unsigned long long)atomic_load(&total),
		  PRODUCERS * PER_PRODUCER);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&total), PRODUCERS * PER_PRODUCER);
	for (uint32_t p = 0; p < PRODUCERS; p++) {
		uint64_t from = 0;

		for (unsigned i = 0; i < WORKERS; i++)
			from += servers[i].from[p];
		cr_expect_eq(from, PER_PRODUCER, "producer %u: %llu handled",
			     p, (unsigned long long)from);
	}
	for (unsigned i = 0; i < WORKERS; i++) {
		uint64_t got = 0;

		for (uint32_t p = 0; p < PRODUCERS; p++)
			got += servers[i].from[p];
		cr_expect_gt(got, 0, "server %u got nothing", i);
		cr_expect_eq(servers[i].strangers, 0);
	}
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, PRODUCERS * PER_PRODUCER);
	cr_expect_eq(st.delivered, PRODUCERS * PER_PRODUCER);
	sy_engine_destroy(eng);
}

Test(queues_idle, spin_with_more_threads_than_cpus_delivers_everything)
{
	run_idle(SY_IDLE_SPIN);
}

Test(queues_idle, yield_with_more_threads_than_cpus_delivers_everything)
{
	run_idle(SY_IDLE_YIELD);
}

Test(queues_idle, sleep_with_more_threads_than_cpus_delivers_everything)
{
	run_idle(SY_IDLE_SLEEP);
}
