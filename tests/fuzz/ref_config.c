/*
 * The reference configuration syntax of ref_config.h.
 */
#include <limits.h>
#include <string.h>

#include "ref_config.h"

/* Digits from *p up to a byte that is not one; false if none or overflow. */
static bool digits(const char **p, unsigned long *out)
{
	unsigned long v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++)
		if (__builtin_mul_overflow(v, 10ul, &v) ||
		    __builtin_add_overflow(v, (unsigned long)(*s - '0'), &v))
			return false;
	*p = s;
	*out = v;
	return true;
}

bool ref_number(const char *s, unsigned long lo, unsigned long hi,
		unsigned long *out)
{
	unsigned long v;

	if (!digits(&s, &v) || *s != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

bool ref_cpulist(const char *s, cpu_set_t *out)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (;;) {
		unsigned long lo, hi, stride = 1;

		if (!digits(&s, &lo))
			return false;
		hi = lo;
		if (*s == '-') {
			s++;
			if (!digits(&s, &hi))
				return false;
			if (*s == ':') {
				s++;
				if (!digits(&s, &stride) || stride == 0)
					return false;
			}
		}
		if (lo > hi || hi >= CPU_SETSIZE)
			return false;
		for (unsigned long cpu = lo; cpu <= hi; cpu += stride) {
			CPU_SET(cpu, &set);
			if (stride > hi)
				break;
		}
		if (*s == '\0')
			break;
		if (*s != ',')
			return false;
		s++;
	}
	*out = set;
	return true;
}
