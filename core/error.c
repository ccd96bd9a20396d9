/* Error codes and the per-thread message that explains the last failure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "switchyard.h"

static __thread char last_error[512];

int sy__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

SY_API const char *sy_last_error(void)
{
	return last_error;
}

static const struct {
	int err;
	const char *text;
} errors[] = {
	{ 0, "success" },
	{ EINVAL, "invalid argument or configuration" },
	{ ENOMEM, "out of memory" },
	{ ENOENT, "no such route, server, dead letter or attachment "
		  "(sy_last_error() names which)" },
	{ EEXIST, "name already in use" },
	{ ENOSPC, "limit reached (servers, routes or producer slots)" },
	{ EAGAIN, "destination ring full, try again" },
	{ EHOSTUNREACH, "no server of the route is available" },
	{ ESHUTDOWN, "engine is stopping or stopped" },
	{ ETIMEDOUT, "timed out waiting for a reply" },
	{ ETIME, "no server of the route can finish it before its deadline" },
	{ EDEADLK, "not allowed from a worker thread of this engine" },
	{ EALREADY, "already in that state" },
	{ EMSGSIZE, "message size above capacity" },
	{ ECONNRESET, "the requester is no longer attached" },
	{ EBUSY, "busy: messages are queued and the engine is not running" },
	{ ENOBUFS, "destination inbox past its backpressure threshold" },
	{ ENOTSUP, "not supported by this engine or build" },
	{ EADDRINUSE, "address already in use" },
};

SY_API const char *sy_strerror(int err)
{
	const char *text;

	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].err == err)
			return errors[i].text;
	/* Codes the library does not return itself (from a handler, a
	 * probe, the system): the C library's static text. */
	text = strerrordesc_np(err);
	return text ? text : "unknown error";
}
