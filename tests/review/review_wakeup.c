/*
 * Review: no lost wake-up in the idle path (queues/park.c, the worker's
 * idle()). With SY_IDLE_SLEEP a worker spins, yields, then parks on a futex
 * with no time limit when it has no retry waiting; a wake-up lost between
 * its last look at the inbox and the futex wait would leave a message
 * unhandled for good.
 *
 * Two threads make sy_msg_call() round trips to a server on worker 0, with
 * gaps that land in each idle phase (none, spinning, yielding, parked);
 * each handler run also sends a message to a server on worker 1
 * (worker-to-worker wake-up). Every call must be answered well within its
 * timeout, and worker 1 must handle every message it was sent.
 */
#include <errno.h>
#include <pthread.h>

#include "review.h"

#define CALLERS 2
#define CALLS 1500
#define CALL_TIMEOUT_NS 2000000000ull

static sy_engine *eng;
static uint32_t r_front, r_back;
static _Atomic uint64_t forwarded, back_runs;

static int back(sy_engine *e, sy_msg *msg, void *ctx)
{
	(void)e;
	(void)msg;
	(void)ctx;
	atomic_fetch_add(&back_runs, 1);
	return 0;
}

static int front(sy_engine *e, sy_msg *msg, void *ctx)
{
	sy_msg *m = sy_msg_alloc(e, 8);

	(void)ctx;
	if (m && sy_msg_send(e, r_back, m) == 0)
		atomic_fetch_add(&forwarded, 1);
	else
		sy_msg_free(m);
	sy_msg_reply(msg, msg);
	return 0;
}

static void *caller(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < CALLS; i++) {
		sy_msg *req = sy_msg_alloc(eng, 8), *rep = NULL;
		/* Gaps from 0 to ~400 us: every idle phase of the worker. */
		unsigned gap = (seed = seed * 1103515245u + 12345u) >> 23;
		int rc;

		rc = sy_msg_call(eng, r_front, req, &rep, CALL_TIMEOUT_NS);
		review_check(rc == 0, "call %d: %d (%s)", i, rc, sy_strerror(rc));
		sy_msg_free(rep);
		if (gap > 16)
			review_sleep_us(gap);
	}
	return NULL;
}

int main(void)
{
	struct sy_server_opts o0 = { .worker = 0, .worker_set = true }, o1 = { .worker = 1 };
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	pthread_t t[CALLERS];
	struct sy_config cfg;
	uint32_t s_front, s_back;
	uint64_t end;

	review_config(&cfg, 2);
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "front", front, NULL, &o0, &s_front) == 0 &&
		     sy_server_add(eng, "back", back, NULL, &o1, &s_back) == 0,
		     "%s", sy_last_error());
	ro.servers = &s_front;
	review_check(sy_route_add(eng, "front", &ro, &r_front) == 0, "%s",
		     sy_last_error());
	ro.servers = &s_back;
	review_check(sy_route_add(eng, "back", &ro, &r_back) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());

	for (uintptr_t i = 0; i < CALLERS; i++)
		pthread_create(&t[i], NULL, caller, (void *)(i + 1));
	for (int i = 0; i < CALLERS; i++)
		pthread_join(t[i], NULL);
	/* Worker 1 gets no other traffic: only its wake-ups bring it back. */
	end = review_now_ms() + 2000;
	while (atomic_load(&back_runs) < atomic_load(&forwarded) &&
	       review_now_ms() < end)
		review_sleep_us(1000);
	review_check(atomic_load(&back_runs) == atomic_load(&forwarded),
		     "worker 1 handled %llu of %llu messages: a lost wake-up",
		     (unsigned long long)atomic_load(&back_runs),
		     (unsigned long long)atomic_load(&forwarded));
	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	printf("wake-ups: %d calls and %llu forwards, none lost\n",
	       CALLERS * CALLS, (unsigned long long)atomic_load(&forwarded));
	return 0;
}
