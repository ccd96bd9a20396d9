/*
 * The calling thread's last failure (error.c): what sy_last_error() and
 * sy_last_error_code() report.
 *
 * A public function that fails names itself: it returns through
 * sy__ret(__func__, rc) (or calls sy__failed() on its failure paths). Code
 * below it that knows more than the code calls sy__fail() with the detail
 * first; sy__failed() then keeps that detail when the codes agree, and
 * otherwise describes the code alone.
 */
#ifndef SY_CORE_ERROR_H
#define SY_CORE_ERROR_H

#include <stdint.h>

#include "core/compiler.h"

/* Record the detail of a failure with code @p err (negative); returns err. */
int sy__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Public function @p call fails with @p err: record it; returns err. */
int sy__failed(const char *call, int err) __attribute__((cold));

/* The same for a function that returns a pointer: returns NULL. */
void *sy__failed_null(const char *call, int err) __attribute__((cold));

/* A send through @p route refused with @p err: recorded without formatting
 * (a sender may retry a full ring many times); returns err. */
int sy__refused(const char *call, int err, uint32_t route) __attribute__((cold));

/* @p call was passed a NULL @p what: -EINVAL, recorded. */
int sy__null(const char *call, const char *what) __attribute__((cold));

static inline int sy__ret(const char *call, int rc)
{
	return sy__unlikely(rc < 0) ? sy__failed(call, rc) : rc;
}

/* The NULL rule (include/switchyard.h): refuse before touching anything. */
#define SY__NONNULL(p)                                             \
	do {                                                       \
		if (sy__unlikely(!(p)))                            \
			return sy__null(__func__, #p);             \
	} while (0)

/* The same in a function whose result is not an error code. */
#define SY__NONNULL_OR(p, result)                                  \
	do {                                                       \
		if (sy__unlikely(!(p))) {                          \
			sy__null(__func__, #p);                    \
			return result;                             \
		}                                                  \
	} while (0)

#endif /* SY_CORE_ERROR_H */
