/*
 * Fuzz target: the CPU list parser (sy__cpulist_parse) and worker placement
 * (sy__place_workers).
 *
 * The input is one byte of options, then the list. Checked: the parser
 * accepts exactly the lists the reference grammar accepts, with the same
 * CPUs; a refusal is -EINVAL with a NUL-terminated message that names the
 * source and fits the buffer; placement puts every worker on a CPU of the
 * set (close: the (i mod n)-th, spread: non-decreasing), or nowhere (none).
 */
#include <errno.h>
#include <string.h>

#include "core/config_internal.h"
#include "fuzz.h"
#include "ref_config.h"

#define LIST_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void check_placement(const cpu_set_t *set, unsigned workers)
{
	static const enum sy_pin pins[] = {
		SY_PIN_CLOSE, SY_PIN_SPREAD, SY_PIN_NONE,
	};
	int cpus[CPU_SETSIZE], placed[SY_MAX_WORKERS];
	unsigned n = 0;

	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, set))
			cpus[n++] = cpu;
	for (size_t p = 0; p < sizeof(pins) / sizeof(pins[0]); p++) {
		sy__place_workers(set, pins[p], workers, placed);
		for (unsigned i = 0; i < workers; i++) {
			if (pins[p] == SY_PIN_NONE) {
				fuzz_check(placed[i] == -1,
					   "pin none placed worker %u on %d",
					   i, placed[i]);
				continue;
			}
			fuzz_check(placed[i] >= 0 && placed[i] < CPU_SETSIZE &&
				   CPU_ISSET(placed[i], set),
				   "worker %u placed on CPU %d, not in the set",
				   i, placed[i]);
			if (pins[p] == SY_PIN_CLOSE)
				fuzz_check(placed[i] == cpus[i % n],
					   "close placed worker %u on %d, not %d",
					   i, placed[i], cpus[i % n]);
			else if (i > 0)
				fuzz_check(placed[i] >= placed[i - 1],
					   "spread placement goes back at worker %u",
					   i);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t why_sizes[] = { 1, 7, 40, 400 };
	struct fuzz_in in = { data, size };
	uint8_t opts = fuzz_u8(&in);
	const char *name = opts & 1 ? "config.cpus" : "SY_CPUS";
	size_t whylen = why_sizes[(opts >> 1) & 3];
	unsigned workers = 1 + (opts >> 3) % SY_MAX_WORKERS;
	char list[LIST_MAX + 1], why[400];
	cpu_set_t got, want;
	bool valid;
	int rc;

	fuzz_rest(&in, list, LIST_MAX);
	memset(why, 'x', sizeof(why));
	CPU_ZERO(&got);
	rc = sy__cpulist_parse(name, list, &got, why, whylen);
	valid = ref_cpulist(list, &want);
	if (!valid) {
		fuzz_check(rc == -EINVAL, "\"%s\" is not a CPU list, yet rc %d",
			   list, rc);
		fuzz_check(memchr(why, '\0', whylen) != NULL,
			   "the message overruns its %zu bytes", whylen);
		fuzz_check(strncmp(why, name, strlen(name) < whylen - 1 ?
				   strlen(name) : whylen - 1) == 0,
			   "the message \"%.*s\" does not start with %s",
			   (int)whylen, why, name);
		return 0;
	}
	fuzz_check(rc == 0, "\"%s\" is a CPU list, yet rc %d: %s", list, rc,
		   why);
	fuzz_check(CPU_EQUAL(&got, &want), "\"%s\": the CPUs differ", list);
	fuzz_check(CPU_COUNT(&got) > 0, "\"%s\": an empty set", list);
	check_placement(&got, workers);
	return 0;
}
