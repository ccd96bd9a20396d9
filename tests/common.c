#include <sched.h>
#include <string.h>
#include <time.h>

#include "tests/common.h"

uint64_t t_clock_now(void *ctx)
{
	struct t_clock *c = ctx;

	return atomic_load(&c->ns);
}

uint64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void t_sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000,
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

void t_gate_wait(_Atomic uint64_t *held, _Atomic uint64_t *released,
		 unsigned max_ms)
{
	uint64_t k = atomic_fetch_add(held, 1);
	uint64_t end = t_now_ms() + max_ms;

	while (atomic_load(released) <= k && t_now_ms() < end)
		t_sleep_us(20);
}

void t_config(struct sy_config *cfg, unsigned workers, struct t_clock *clock)
{
	sy_config_init(cfg);
	cfg->workers = workers;
	cfg->pin = SY_PIN_NONE;
	cfg->idle = SY_IDLE_SLEEP;
	if (clock) {
		cfg->clock = t_clock_now;
		cfg->clock_ctx = clock;
	}
}

bool t_wait_u64(_Atomic uint64_t *v, uint64_t want, unsigned max_ms)
{
	uint64_t end = t_now_ms() + max_ms;

	while (atomic_load(v) < want) {
		if (t_now_ms() > end)
			return false;
		sched_yield();
	}
	return true;
}

int t_send_retry(sy_engine *eng, uint32_t route, sy_msg *m, unsigned max_ms)
{
	uint64_t end = t_now_ms() + max_ms;
	int rc;

	while ((rc = sy_msg_send(eng, route, m)) == -EAGAIN && t_now_ms() < end)
		sched_yield();
	return rc;
}

int t_send_burst_retry(sy_engine *eng, uint32_t route, sy_msg **msgs,
		       unsigned n, unsigned max_ms)
{
	uint64_t end = t_now_ms() + max_ms;
	unsigned done = 0;

	while (done < n) {
		int rc = sy_msg_send_burst(eng, route, msgs + done, n - done);

		if (rc > 0) {
			done += (unsigned)rc;
			continue;
		}
		if (rc != -EAGAIN || t_now_ms() >= end)
			return rc;
		sched_yield();
	}
	return 0;
}

sy_engine *t_engine(unsigned workers, enum sy_idle idle)
{
	struct sy_config cfg;
	sy_engine *eng = NULL;

	sy_config_init(&cfg);
	cfg.workers = workers;
	cfg.idle = idle;
	cfg.pin = SY_PIN_NONE;
	if (sy_engine_create(&cfg, &eng) != 0)
		return NULL;
	return eng;
}

int t_watch_once(sy_engine *eng, struct t_watch *w)
{
	struct sy_accounting a;
	uint64_t ended, by = 0;
	int rc = sy_engine_accounting(eng, &a);

	if (rc)
		return rc;
	w->reads++;
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		by += a.dead_lettered_by[r];
	ended = a.delivered + a.dead_lettered + a.evicted;
	if (ended > a.accepted) {
		w->ahead++;
		if (ended - a.accepted > w->worst)
			w->worst = ended - a.accepted;
	}
	if (by != a.dead_lettered)
		w->unbalanced++;
	return 0;
}
