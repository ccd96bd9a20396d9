/* The calling thread's last error message (error.c, sy_last_error()). */
#ifndef SY_CORE_ERROR_H
#define SY_CORE_ERROR_H

/* Record a message for sy_last_error() and return @p err (negative). */
int sy__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* SY_CORE_ERROR_H */
