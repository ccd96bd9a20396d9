/*
 * Helpers shared by every test, the stress programs included: a fake
 * clock, bounded waits, a small engine set-up, and reads of the accounting.
 * Nothing here calls Criterion, so every helper may run on any thread.
 * Every wait gives up after a bound and reports failure, so a test can
 * never hang; no helper asserts how long anything took. The set-ups that
 * fail a Criterion test are in fixture.h.
 */
#ifndef SY_TESTS_COMMON_H
#define SY_TESTS_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

/** A fake engine clock that only the test moves; set it with atomic ops on ns. */
struct t_clock {
	_Atomic uint64_t ns;
};

/** sy_config.clock for a struct t_clock passed as clock_ctx (@p ctx). */
uint64_t t_clock_now(void *ctx);

/** Milliseconds on CLOCK_MONOTONIC, for the bounds of waits only. */
uint64_t t_now_ms(void);

/** Sleep about @p us microseconds (nanosleep). */
void t_sleep_us(unsigned us);

/** Take the next ticket of *held and wait, in 20 us sleeps, until *released
 * passes it; gives up after about @p max_ms ms. For handlers that block. */
void t_gate_wait(_Atomic uint64_t *held, _Atomic uint64_t *released,
		 unsigned max_ms);

/** sy_config_init() @p cfg for @p workers workers, SY_IDLE_SLEEP, no pinning,
 * on the fake clock @p clock where not NULL (it is not reset). */
void t_config(struct sy_config *cfg, unsigned workers, struct t_clock *clock);

/** Wait until *v >= want, yielding; false after about @p max_ms milliseconds. */
bool t_wait_u64(_Atomic uint64_t *v, uint64_t want, unsigned max_ms);

/** Send, retrying -EAGAIN with a yield, at most about @p max_ms ms; returns the last rc. */
int t_send_retry(sy_engine *eng, uint32_t route, sy_msg *m, unsigned max_ms);

/** Send msgs[0..n) with sy_msg_send_burst() until all are accepted,
 * retrying -EAGAIN with a yield, at most about @p max_ms ms; returns 0, or
 * the last refusal (the messages from there on are still the caller's). */
int t_send_burst_retry(sy_engine *eng, uint32_t route, sy_msg **msgs,
		       unsigned n, unsigned max_ms);

/** Create an engine with @p workers workers and @p idle, no env influence on CPUs. */
sy_engine *t_engine(unsigned workers, enum sy_idle idle);

/** What reads of the accounting saw while traffic flowed. */
struct t_watch {
	uint64_t reads;
	uint64_t ahead;           /* reads where outcomes exceeded acceptances */
	uint64_t unbalanced;      /* reads where the reasons did not add up */
	uint64_t worst;           /* the largest excess seen */
};

/** Read the accounting once into @p w: outcomes may lag behind acceptances,
 * never run ahead of them, and the reasons add up. Returns
 * sy_engine_accounting()'s code. Any thread. */
int t_watch_once(sy_engine *eng, struct t_watch *w);

#endif
