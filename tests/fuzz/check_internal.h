/*
 * Helpers the format checkers share: failure messages and name lists.
 */
#ifndef SY_TESTS_FUZZ_CHECK_INTERNAL_H
#define SY_TESTS_FUZZ_CHECK_INTERNAL_H

#include "check.h"

/** Write "at byte @p at: <reason>" into @p why; returns false. */
bool check_fail(char *why, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Append a copy of @p len bytes at @p s to @p names. */
void check_names_push(struct check_names *names, const char *s, size_t len);

/** Append the UTF-8 encoding of code point @p cp to @p buf (room for 4
 *  more bytes past *@p len). */
void check_put_utf8(char *buf, size_t *len, unsigned long cp);

#endif
