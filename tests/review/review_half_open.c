/*
 * Review: a half-open breaker admits exactly half_open_probes messages per
 * round, however many threads send at once.
 *
 * Server "probe" (worker 0) trips on its first failure; once open_ns has
 * passed on the engine's (fake) clock, SENDERS threads send through a
 * failover route [probe, backup] at the same time. The probes block in
 * their handler until every sender is done, so no result can close or
 * reopen the breaker meanwhile, and the clock stands still, so no new
 * round starts: the probe server must see exactly PROBES messages, and the
 * backup (worker 1) all the others.
 */
#include <errno.h>
#include <pthread.h>

#include "review.h"

#define SENDERS 4
#define SENDS 3000
#define PROBES 3
#define OPEN_NS 1000000

static _Atomic uint64_t fake_ns = 1;
static _Atomic int release, probe_runs, backup_runs;
static sy_engine *eng;
static uint32_t route;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&fake_ns);
}

static int probe(sy_engine *e, sy_msg *msg, void *ctx)
{
	uint64_t end = review_now_ms() + 20000;

	(void)e;
	(void)msg;
	(void)ctx;
	if (atomic_fetch_add(&probe_runs, 1) == 0)
		return -EIO; /* the trip */
	while (!atomic_load(&release) && review_now_ms() < end)
		review_sleep_us(100);
	return 0;
}

static int backup(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)msg;
	(void)ctx;
	atomic_fetch_add(&backup_runs, 1);
	return 0;
}

static void *sender(void *arg)
{
	(void)arg;
	for (int i = 0; i < SENDS; i++) {
		sy_msg *m = sy_msg_alloc(eng, 8);

		review_check(m && review_send(eng, route, m, 10000) == 0,
			     "send %d refused", i);
	}
	return NULL;
}

int main(void)
{
	struct sy_breaker_opts bo = {
		.consecutive_failures = 1, .open_ns = OPEN_NS,
		.half_open_probes = PROBES,
	};
	struct sy_server_opts po = { .worker = 0, .worker_set = true, .breaker = &bo };
	struct sy_server_opts bko = { .worker = 1, .worker_set = true };
	struct sy_route_opts ro = { .policy = "failover", .n_servers = 2 };
	enum sy_breaker_state st = SY_BREAKER_CLOSED;
	pthread_t t[SENDERS];
	struct sy_config cfg;
	uint32_t ids[2];
	uint64_t end;
	sy_msg *m;

	review_config(&cfg, 2);
	cfg.clock = fake_clock;
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "probe", probe, NULL, &po, &ids[0]) == 0 &&
		     sy_server_add(eng, "backup", backup, NULL, &bko, &ids[1]) == 0,
		     "%s", sy_last_error());
	ro.servers = ids;
	review_check(sy_route_add(eng, "r", &ro, &route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());

	m = sy_msg_alloc(eng, 8);
	review_check(review_send(eng, route, m, 1000) == 0, "first send");
	end = review_now_ms() + 5000;
	while (st != SY_BREAKER_OPEN && review_now_ms() < end) {
		sy_breaker_state(eng, ids[0], &st);
		review_sleep_us(100);
	}
	review_check(st == SY_BREAKER_OPEN, "the breaker did not open");
	atomic_fetch_add(&fake_ns, OPEN_NS + 1);

	for (int i = 0; i < SENDERS; i++)
		pthread_create(&t[i], NULL, sender, NULL);
	for (int i = 0; i < SENDERS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&release, 1);
	review_check(sy_engine_stop(eng) == 0, "stop");

	review_check(atomic_load(&probe_runs) == 1 + PROBES,
		     "%d probes admitted in one half-open round of %d",
		     atomic_load(&probe_runs) - 1, PROBES);
	review_check(atomic_load(&backup_runs) == SENDERS * SENDS - PROBES,
		     "backup ran %d, expected %d", atomic_load(&backup_runs),
		     SENDERS * SENDS - PROBES);
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	printf("half-open: %d probes admitted out of %d concurrent sends\n",
	       PROBES, SENDERS * SENDS);
	return 0;
}
