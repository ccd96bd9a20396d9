/*
 * A reference reading of the configuration syntax, written from the
 * documentation (README.md, include/switchyard.h, core/config_internal.h)
 * and not from core/config.c, for differential fuzzing against it.
 */
#ifndef SY_TESTS_FUZZ_REF_CONFIG_H
#define SY_TESTS_FUZZ_REF_CONFIG_H

#include <sched.h>
#include <stdbool.h>

/**
 * A CPU list in taskset syntax: items N, N-M or N-M:S separated by single
 * commas, decimal digits only (no sign, no blank), N <= M, S >= 1, every
 * CPU below CPU_SETSIZE, every number fitting an unsigned long.
 * @return true with @p out filled, false for a list that is not valid.
 */
bool ref_cpulist(const char *s, cpu_set_t *out);

/** A decimal number of digits only, at least one, within [lo, hi]. */
bool ref_number(const char *s, unsigned long lo, unsigned long hi,
		unsigned long *out);

#endif
