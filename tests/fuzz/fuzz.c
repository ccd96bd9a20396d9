/*
 * The input reader of fuzz.h and the failure report.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

_Noreturn void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t b;

	if (!in->n)
		return 0;
	b = *in->p++;
	in->n--;
	return b;
}

uint64_t fuzz_uint(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && i < 8; i++)
		v |= (uint64_t)fuzz_u8(in) << (8 * i);
	return v;
}

unsigned fuzz_pick(struct fuzz_in *in, unsigned n)
{
	uint64_t v = n > 256 ? fuzz_uint(in, 2) : fuzz_u8(in);

	return n ? (unsigned)(v % n) : 0;
}

static size_t take(struct fuzz_in *in, char *buf, size_t len, size_t max)
{
	size_t out = 0;

	if (len > in->n)
		len = in->n;
	for (size_t i = 0; i < len; i++)
		if (in->p[i] && out < max)
			buf[out++] = (char)in->p[i];
	in->p += len;
	in->n -= len;
	buf[out] = '\0';
	return out;
}

size_t fuzz_str(struct fuzz_in *in, char *buf, size_t max)
{
	return take(in, buf, fuzz_u8(in), max);
}

size_t fuzz_rest(struct fuzz_in *in, char *buf, size_t max)
{
	return take(in, buf, in->n, max);
}

unsigned fuzz_edge(struct fuzz_in *in, const unsigned *edges, unsigned n)
{
	unsigned k = fuzz_pick(in, n + 1);

	if (k < n)
		return edges[k];
	return (unsigned)fuzz_uint(in, 4);
}
