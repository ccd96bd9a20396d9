/*
 * Helpers for the concurrency review tests (review.h).
 */
#include <errno.h>
#include <sched.h>
#include <time.h>

#include "review.h"

uint64_t review_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void review_sleep_us(unsigned us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000,
	};

	nanosleep(&ts, NULL);
}

void review_config(struct sy_config *cfg, unsigned workers)
{
	sy_config_init(cfg);
	cfg->workers = workers;
	cfg->pin = SY_PIN_NONE;
	cfg->idle = SY_IDLE_SLEEP;
}

int review_send(sy_engine *eng, uint32_t route, sy_msg *m, unsigned max_ms)
{
	uint64_t end = review_now_ms() + max_ms;
	int rc;

	while ((rc = sy_msg_send(eng, route, m)) == -EAGAIN &&
	       review_now_ms() < end)
		sched_yield();
	return rc;
}

void review_check_accounting(sy_engine *eng)
{
	struct sy_accounting a;

	review_check(sy_engine_accounting(eng, &a) == 0, "accounting failed");
	review_check(a.in_flight == 0, "%llu messages in flight after stop",
		     (unsigned long long)a.in_flight);
	review_check(a.accepted == a.delivered + a.failed_kept +
		     a.dead_lettered + a.evicted + a.dropped + a.returned,
		     "accepted %llu != delivered %llu + failed, kept %llu + "
		     "dead-lettered %llu + evicted %llu + dropped %llu + "
		     "returned %llu",
		     (unsigned long long)a.accepted,
		     (unsigned long long)a.delivered,
		     (unsigned long long)a.failed_kept,
		     (unsigned long long)a.dead_lettered,
		     (unsigned long long)a.evicted,
		     (unsigned long long)a.dropped,
		     (unsigned long long)a.returned);
}
