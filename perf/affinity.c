/*
 * CPU lists and thread pinning for sy-bench.
 */
#include "affinity.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

/* Read a CPU number at *p, advance past it. */
static bool parse_cpu(const char **p, unsigned *out)
{
	unsigned v = 0;

	if (!isdigit((unsigned char)**p))
		return false;
	while (isdigit((unsigned char)**p)) {
		v = v * 10 + (unsigned)(**p - '0');
		if (v >= CPU_SETSIZE)
			return false;
		(*p)++;
	}
	*out = v;
	return true;
}

int affinity_parse_cpulist(const char *s, cpu_set_t *out, char *why,
			   size_t whylen)
{
	const char *p = s;

	CPU_ZERO(out);
	for (;;) {
		unsigned first, last, stride = 1;

		if (!parse_cpu(&p, &first))
			goto bad;
		last = first;
		if (*p == '-') {
			p++;
			if (!parse_cpu(&p, &last) || last < first)
				goto bad;
			if (*p == ':') {
				p++;
				if (!parse_cpu(&p, &stride) || stride == 0)
					goto bad;
			}
		}
		for (unsigned cpu = first; cpu <= last; cpu += stride)
			CPU_SET(cpu, out);
		if (*p == '\0')
			return 0;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	snprintf(why, whylen,
		 "bad CPU list \"%s\" at offset %td: expected N, N-M or N-M:S "
		 "items separated by commas, N <= M < %d, S >= 1",
		 s, p - s, CPU_SETSIZE);
	return -EINVAL;
}

int affinity_allowed(cpu_set_t *out)
{
	if (sched_getaffinity(0, sizeof(*out), out) < 0)
		return -errno;
	return 0;
}

int affinity_nth(const cpu_set_t *set, unsigned n)
{
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, set) && n-- == 0)
			return cpu;
	}
	return -1;
}

int affinity_attr_pin(pthread_attr_t *attr, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_attr_setaffinity_np(attr, sizeof(set), &set);
}
