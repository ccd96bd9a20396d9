/* Error codes and the per-thread message that explains the last failure. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "switchyard.h"

/* The calling thread's last failure. The text is built when asked for, so
 * recording one costs a few stores. */
static __thread struct {
	const char *call;   /* the public function that failed */
	int code;           /* its negative errno */
	int detail_code;    /* the code detail[] was recorded for, or 0 */
	uint32_t route;     /* a refused send's route, else SY_ANY */
	bool stale;         /* text[] is to be rebuilt */
	char detail[400];
	char text[512];
} last;

int sy__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last.detail, sizeof(last.detail), fmt, ap);
	va_end(ap);
	last.detail_code = err;
	/* Until a public function claims it, the detail stands alone. */
	last.call = NULL;
	last.code = err;
	last.route = SY_ANY;
	last.stale = true;
	return err;
}

/* Public function @p call failed with @p err, about @p route (SY_ANY:
 * none); the detail recorded for the same code stays. */
static int record(const char *call, int err, uint32_t route)
{
	if (last.detail_code != err)
		last.detail[0] = '\0';
	last.detail_code = 0;
	last.call = call;
	last.code = err;
	last.route = route;
	last.stale = true;
	return err;
}

int sy__failed(const char *call, int err)
{
	return record(call, err, SY_ANY);
}

void *sy__failed_null(const char *call, int err)
{
	sy__failed(call, err);
	return NULL;
}

int sy__refused(const char *call, int err, uint32_t route)
{
	last.detail_code = 0; /* a refusal's text is its code's */
	return record(call, err, route);
}

int sy__null(const char *call, const char *what)
{
	sy__fail(-EINVAL, "%s is NULL", what);
	return sy__failed(call, -EINVAL);
}

SY_API const char *sy_last_error(void)
{
	size_t n = 0;

	if (!last.stale)
		return last.text;
	last.stale = false;
	if (last.call)
		n = (size_t)snprintf(last.text, sizeof(last.text), "%s: ",
				     last.call);
	if (last.route != SY_ANY && n < sizeof(last.text))
		n += (size_t)snprintf(last.text + n, sizeof(last.text) - n,
				      "route %u: ", last.route);
	if (n < sizeof(last.text))
		snprintf(last.text + n, sizeof(last.text) - n, "%s",
			 last.detail[0] ? last.detail : sy_strerror(last.code));
	return last.text;
}

SY_API int sy_last_error_code(void)
{
	return last.code;
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
