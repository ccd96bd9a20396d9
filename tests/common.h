/*
 * Helpers shared by the tests: bounded waits and a small engine set-up.
 * Every wait here gives up after a bound and reports failure, so a test can
 * never hang; no helper asserts how long anything took.
 */
#ifndef SY_TESTS_COMMON_H
#define SY_TESTS_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

/** Wait until *v >= want, yielding; false after about @p max_ms milliseconds. */
bool t_wait_u64(_Atomic uint64_t *v, uint64_t want, unsigned max_ms);

/** Send, retrying -EAGAIN with a yield, at most about @p max_ms ms; returns the last rc. */
int t_send_retry(sy_engine *eng, uint32_t route, sy_msg *m, unsigned max_ms);

/** Create an engine with @p workers workers and @p idle, no env influence on CPUs. */
sy_engine *t_engine(unsigned workers, enum sy_idle idle);

/** Add a server with @p fn on worker @p worker (-1 auto) and a direct route to it. */
uint32_t t_direct(sy_engine *eng, const char *name, sy_handler_fn fn,
		  void *ctx, int worker, uint32_t *server_id);

#endif
