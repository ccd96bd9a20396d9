/*
 * The soak's load: handlers that fail 5% of their runs, a slow one, one
 * that fails in phases (its breaker opens and closes); producers that send,
 * request and call; short-lived producer threads that attach lazily and
 * exit; a control thread that replaces a route every 2 ms, removes and
 * adds back a server, and flips the flaky phase; a dead letter thread that
 * drains and replays; a scraper of /metrics.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "soak.h"

#define MSG_SIZE 32
#define PRODUCER_RATE 15000       /* messages a second per producer */
#define SHORT_LIVED_SENDS 1000
#define SLOW_US 50                /* the slow server's handler time */
#define SLOW_DEADLINE_NS 2000000  /* slow route messages expire after */
#define CONTROL_PERIOD_US 2000
#define CHURN_EVERY 250           /* control passes between server churns */
#define FLAKY_PHASE_MS 1500
#define DLQ_PERIOD_US 500000
#define DLQ_REPLAY_MAX 40

/* 5% of runs fail, independently per attempt. */
static bool unlucky(const sy_msg *msg)
{
	uint64_t h = (sy_msg_tag(msg) + sy_msg_attempts(msg)) *
		     0x9e3779b97f4a7c15ull;

	return (h >> 40) % 100 < 5;
}

static void count_run(void *ctx)
{
	soak_count((uintptr_t)ctx ? P_RUNS_W1 : P_RUNS_W0);
}

int soak_handle_fast(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	count_run(ctx);
	if (unlucky(msg))
		return -EIO;
	/* Requests get their answer in place; -EINVAL for plain messages. */
	sy_msg_reply(msg, msg);
	return 0;
}

int soak_handle_slow(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	count_run(ctx);
	soak_sleep_us(SLOW_US);
	return unlucky(msg) ? -EIO : 0;
}

int soak_handle_flaky(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	count_run(ctx);
	if (atomic_load_explicit(&soak.flaky_bad, memory_order_relaxed) ||
	    unlucky(msg))
		return -EIO;
	sy_msg_reply(msg, msg);
	return 0;
}

void soak_on_breaker(sy_engine *eng, uint32_t server, int from, int to,
		     void *ctx)
{
	(void)eng;
	(void)server;
	(void)from;
	(void)ctx;
	if (to == SY_BREAKER_OPEN)
		soak_event(E_BREAKER_OPENED, 1);
	else if (to == SY_BREAKER_CLOSED)
		soak_event(E_BREAKER_CLOSED, 1);
}

static uint64_t engine_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Send one message of @p seq to one of the routes; false if refused. */
static bool send_one(uint64_t seq)
{
	uint32_t route;
	sy_msg *m;
	int rc;

	switch (seq % 20) {
	case 0: route = soak.r_slow; break;
	case 1: case 2: route = soak.r_noretry; break;
	case 3: case 4: case 5: case 6: route = soak.r_swap; break;
	default: route = soak.r_main; break;
	}
	m = sy_msg_alloc(soak.eng, MSG_SIZE);
	if (!m)
		return false;
	sy_msg_set_tag(m, seq);
	sy_msg_set_key(m, seq * 31);
	memset(sy_msg_data(m), (int)seq, MSG_SIZE);
	if (route == soak.r_slow)
		sy_msg_set_deadline(m, engine_now() + SLOW_DEADLINE_NS);
	rc = seq % 97 == 0 ? sy_msg_request(soak.eng, route, m) :
	     sy_msg_send(soak.eng, route, m);
	if (rc == 0) {
		soak_count(P_SENT);
		return true;
	}
	sy_msg_free(m);
	soak_event(E_SEND_REFUSED, 1);
	return false;
}

/* Replies to sy_msg_request() come back here; sy_msg_call() waits for its own. */
static void take_replies(void)
{
	sy_msg *replies[32];
	int n = sy_producer_poll_replies(soak.eng, replies, 32);

	for (int i = 0; i < n; i++)
		sy_msg_free(replies[i]);
}

static void call_once(uint64_t seq)
{
	sy_msg *req = sy_msg_alloc(soak.eng, MSG_SIZE), *rep = NULL;
	int rc;

	if (!req)
		return;
	sy_msg_set_tag(req, seq);
	rc = sy_msg_call(soak.eng, soak.r_main, req, &rep, 50000000);
	if (rc == 0) {
		soak_event(E_CALLS_ANSWERED, 1);
		sy_msg_free(rep);
	} else if (rc != -ETIMEDOUT) {
		sy_msg_free(req);
	}
}

void *soak_producer(void *arg)
{
	uint64_t seq = (uint64_t)(uintptr_t)arg << 48;
	uint64_t start = soak_now_ms(), sent = 0;

	while (atomic_load(&soak.running)) {
		for (int i = 0; i < 64; i++, seq++) {
			if (!send_one(seq))
				soak_sleep_us(50);
			sent++;
		}
		take_replies();
		if (seq % 4096 < 64)
			call_once(seq);
		/* Hold the rate: sleep while ahead of it. */
		while (atomic_load(&soak.running) &&
		       sent * 1000 > (soak_now_ms() - start) * PRODUCER_RATE)
			soak_sleep_us(1000);
	}
	take_replies();
	sy_producer_detach(soak.eng);
	return NULL;
}

/* Attached lazily by its first send, detached by its exit. */
static void *short_lived(void *arg)
{
	uint64_t seq = (uint64_t)(uintptr_t)arg << 32 | 1ull << 63;

	for (int i = 0; i < SHORT_LIVED_SENDS && atomic_load(&soak.running);
	     i++, seq++)
		if (!send_one(seq))
			soak_sleep_us(50);
	return NULL;
}

void *soak_spawner(void *arg)
{
	uintptr_t n = 0;
	pthread_t t;

	(void)arg;
	while (atomic_load(&soak.running)) {
		if (pthread_create(&t, NULL, short_lived, (void *)++n) == 0) {
			pthread_join(t, NULL);
			soak_count(P_SHORT_LIVED);
		}
		soak_sleep_us(200000);
	}
	return NULL;
}

static const char *const swap_policies[] = {
	"round_robin", "random", "least_connections", "weighted", "hash",
	"adaptive", "failover",
};

static void replace_swap(unsigned pass)
{
	uint32_t ids[SOAK_FAST + 1], weights[SOAK_FAST + 1];
	uint32_t churn = atomic_load(&soak.churn);
	unsigned n = 0;

	for (unsigned i = 0; i < SOAK_FAST; i++)
		if ((pass >> i) & 1 || i == pass % SOAK_FAST)
			ids[n++] = soak.fast[i];
	if (churn != UINT32_MAX && pass % 3 == 0)
		ids[n++] = churn;
	for (unsigned i = 0; i < n; i++)
		weights[i] = 1 + (pass + i) % 5;
	struct sy_route_opts o = {
		.policy = swap_policies[pass % 7], .servers = ids,
		.n_servers = n, .weights = weights, .max_attempts = 2,
		.dead_letter_unreachable = true,
	};
	if (sy_route_replace(soak.eng, soak.r_swap, &o) == 0)
		soak_event(E_ROUTE_REPLACED, 1);
}

/* The main route: every fast server, the flaky one, and churn if there. */
static void replace_main(uint32_t churn)
{
	uint32_t ids[SOAK_FAST + 2];
	unsigned n = 0;

	for (unsigned i = 0; i < SOAK_FAST; i++)
		ids[n++] = soak.fast[i];
	ids[n++] = soak.flaky;
	if (churn != UINT32_MAX)
		ids[n++] = churn;
	struct sy_route_opts o = {
		.policy = "round_robin", .servers = ids, .n_servers = n,
		.max_attempts = 3, .retry_backoff_ns = 200000,
		.dead_letter_unreachable = true,
	};
	sy_route_replace(soak.eng, soak.r_main, &o);
}

static void churn_server(unsigned pass)
{
	static const struct sy_breaker_opts breaker = {
		.consecutive_failures = 5, .open_ns = 100000000,
	};
	struct sy_server_opts opts = {
		.worker = (int)(pass % SOAK_WORKERS), .worker_set = true,
		.breaker = &breaker,
	};
	uint32_t old = atomic_exchange(&soak.churn, UINT32_MAX), id;

	/* Out of the routes first, then removed: sends that picked it
	 * already are drained by the remove. */
	replace_main(UINT32_MAX);
	if (old != UINT32_MAX)
		sy_server_remove(soak.eng, old);
	if (sy_server_add(soak.eng, "churn", soak_handle_fast,
			  (void *)(uintptr_t)(pass % SOAK_WORKERS), &opts,
			  &id) != 0)
		return;
	atomic_store(&soak.churn, id);
	replace_main(id);
	soak_event(E_SERVER_READDED, 1);
}

void *soak_control(void *arg)
{
	uint64_t phase_end = soak_now_ms() + FLAKY_PHASE_MS;
	unsigned pass = 0;

	(void)arg;
	while (atomic_load(&soak.running)) {
		replace_swap(pass);
		if (pass % CHURN_EVERY == CHURN_EVERY - 1)
			churn_server(pass / CHURN_EVERY);
		if (soak_now_ms() >= phase_end) {
			atomic_store(&soak.flaky_bad, !atomic_load(&soak.flaky_bad));
			phase_end = soak_now_ms() + FLAKY_PHASE_MS;
		}
		pass++;
		soak_count(P_CONTROL);
		soak_sleep_us(CONTROL_PERIOD_US);
	}
	return NULL;
}

static void free_dead_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			     sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)dl;
	(void)ctx;
	sy_msg_free(msg);
}

void *soak_dlq(void *arg)
{
	struct sy_dl_filter replay, drain;
	unsigned pass = 0;
	int n;

	(void)arg;
	sy_dlq_filter_init(&replay);
	replay.reasons = 1u << SY_DL_HANDLER_FAILED |
			 1u << SY_DL_RETRIES_EXHAUSTED |
			 1u << SY_DL_CIRCUIT_OPEN | 1u << SY_DL_UNREACHABLE;
	sy_dlq_filter_init(&drain);
	drain.reasons = 1u << SY_DL_TIMEOUT;
	while (atomic_load(&soak.running)) {
		/* Replay a little each pass (the queue still fills and
		 * evicts); every tenth pass drain what timed out. */
		n = sy_dlq_replay(soak.eng, &replay, DLQ_REPLAY_MAX, 0);
		if (n > 0)
			soak_event(E_DLQ_REPLAYED, (uint64_t)n);
		if (pass % 10 == 9) {
			n = sy_dlq_drain(soak.eng, &drain, free_dead_letter, NULL);
			if (n > 0)
				soak_event(E_DLQ_DRAINED, (uint64_t)n);
		}
		pass++;
		soak_count(P_DLQ);
		soak_sleep_us(DLQ_PERIOD_US);
	}
	sy_producer_detach(soak.eng);
	return NULL;
}

void *soak_scraper(void *arg)
{
	(void)arg;
	while (atomic_load(&soak.running)) {
		if (soak_scrape(soak.port))
			soak_count(P_SCRAPES);
		else
			soak_event(E_SCRAPE_FAILED, 1);
		soak_sleep_us(1000000);
	}
	return NULL;
}
