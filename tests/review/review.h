/*
 * Helpers for the concurrency review tests: each test is a plain program
 * (so that it also runs under ThreadSanitizer), exits 0 when the property
 * holds and 1 with a message when it does not, and bounds every wait.
 */
#ifndef SY_TESTS_REVIEW_H
#define SY_TESTS_REVIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "switchyard.h"

/** Print "FAIL: ..." and exit 1 unless @p cond holds. */
#define review_check(cond, ...)                                          \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                    \
			fputc('\n', stderr);                             \
			exit(1);                                         \
		}                                                        \
	} while (0)

/** Milliseconds on CLOCK_MONOTONIC. */
uint64_t review_now_ms(void);

/** Sleep about @p us microseconds. */
void review_sleep_us(unsigned us);

/** sy_config_init() for @p workers unpinned workers that sleep when idle. */
void review_config(struct sy_config *cfg, unsigned workers);

/** Send, retrying a full ring for up to @p max_ms; returns the last rc. */
int review_send(sy_engine *eng, uint32_t route, sy_msg *m, unsigned max_ms);

/** accepted = delivered + dead-lettered + evicted, nothing in flight. */
void review_check_accounting(sy_engine *eng);

#endif
