/*
 * Fuzz target: the environment, every SY_* variable, as sy_engine_create()
 * reads it (sy__config_resolve() with nothing set in the config).
 *
 * The input says, for each variable in turn, whether it is set and to
 * what: a word from a list of valid and nearly valid values, or raw bytes.
 * The expected outcome comes from the documented syntax (ref_config.h):
 * the first bad variable, in the order the engine reads them, fails the
 * call with -EINVAL and a message that starts with that variable's name;
 * otherwise every setting is what the variables say, or its default, and
 * the retention (left at its default) is 60 s or four intervals, whichever
 * is longer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "fuzz.h"
#include "env_input.h"
#include "ref_config.h"

#define RETENTION_DEFAULT_MS 60000u
#define RETENTION_INTERVALS 4u

static cpu_set_t allowed;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		fuzz_fail("sched_getaffinity failed");
	env_input_clear();
	return 0;
}

/* One of @p n words, or -1 when @p s is none of them. */
static int word_index(const char *s, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return i;
	return -1;
}

/* What the documentation says the environment gives. */
struct expect {
	int bad;                      /* the variable that fails, or -1 */
	cpu_set_t cpus;
	unsigned workers;
	enum sy_pin pin;
	enum sy_idle idle;
	int display;
	unsigned interval;
	unsigned retention;
	int collector;
};

static void expect_env(const char *const *val, struct expect *x)
{
	static const char *const pins[] = { "close", "spread", "none" };
	static const char *const idles[] = { "spin", "yield", "sleep" };
	static const char *const displays[] = { "0", "1" };
	unsigned long v;
	int k;

	memset(x, 0, sizeof(*x));
	x->bad = -1;
	x->cpus = allowed;
	if (val[V_CPUS]) {
		cpu_set_t both;

		if (!ref_cpulist(val[V_CPUS], &x->cpus))
			goto bad_cpus;
		CPU_AND(&both, &x->cpus, &allowed);
		if (!CPU_EQUAL(&both, &x->cpus))
			goto bad_cpus;
	}
	x->workers = (unsigned)CPU_COUNT(&x->cpus);
	if (x->workers > SY_MAX_WORKERS)
		x->workers = SY_MAX_WORKERS;
	if (val[V_WORKERS]) {
		if (!ref_number(val[V_WORKERS], 1, SY_MAX_WORKERS, &v))
			return (void)(x->bad = V_WORKERS);
		x->workers = (unsigned)v;
	}
	x->pin = SY_PIN_CLOSE;
	if (val[V_PIN]) {
		if ((k = word_index(val[V_PIN], pins, 3)) < 0)
			return (void)(x->bad = V_PIN);
		x->pin = (enum sy_pin)(SY_PIN_CLOSE + k);
	}
	x->idle = SY_IDLE_SLEEP;
	if (val[V_IDLE]) {
		if ((k = word_index(val[V_IDLE], idles, 3)) < 0)
			return (void)(x->bad = V_IDLE);
		x->idle = (enum sy_idle)(SY_IDLE_SPIN + k);
	}
	if (val[V_DISPLAY]) {
		if ((k = word_index(val[V_DISPLAY], displays, 2)) < 0)
			return (void)(x->bad = V_DISPLAY);
		x->display = k;
	}
	x->interval = 100;
	if (val[V_INTERVAL]) {
		if (!ref_number(val[V_INTERVAL], 1, 3600000, &v))
			return (void)(x->bad = V_INTERVAL);
		x->interval = (unsigned)v;
	}
	x->collector = -1;
	if (val[V_COLLECTOR] && strcmp(val[V_COLLECTOR], "none") != 0) {
		/* A number of a CPU the process may run on. */
		if (!ref_number(val[V_COLLECTOR], 0, CPU_SETSIZE - 1, &v) ||
		    !CPU_ISSET((int)v, &allowed))
			return (void)(x->bad = V_COLLECTOR);
		x->collector = (int)v;
	}
	x->retention = RETENTION_DEFAULT_MS;
	if (x->retention < RETENTION_INTERVALS * x->interval)
		x->retention = RETENTION_INTERVALS * x->interval;
	return;
bad_cpus:
	x->bad = V_CPUS;
}

static void check_resolved(const struct sy__config *c, const struct expect *x)
{
	fuzz_check(c->workers == x->workers, "workers %u, expected %u",
		   c->workers, x->workers);
	fuzz_check(c->pin == x->pin, "pin %d, expected %d", c->pin, x->pin);
	fuzz_check(c->idle == x->idle, "idle %d, expected %d", c->idle,
		   x->idle);
	fuzz_check(c->display_affinity == x->display,
		   "display_affinity %d, expected %d", c->display_affinity,
		   x->display);
	fuzz_check(c->metrics_interval_ms == x->interval,
		   "metrics interval %u, expected %u", c->metrics_interval_ms,
		   x->interval);
	fuzz_check(c->retention_ms == x->retention,
		   "retention %u ms at an interval of %u ms, expected %u",
		   c->retention_ms, c->metrics_interval_ms, x->retention);
	fuzz_check(c->collector_cpu == x->collector,
		   "collector CPU %d, expected %d", c->collector_cpu,
		   x->collector);
	for (unsigned i = 0; i < SY_MAX_WORKERS; i++) {
		int cpu = c->worker_cpu[i];

		if (i >= c->workers || x->pin == SY_PIN_NONE)
			fuzz_check(cpu == -1, "worker %u on CPU %d, expected none",
				   i, cpu);
		else
			fuzz_check(cpu >= 0 && cpu < CPU_SETSIZE &&
				   CPU_ISSET(cpu, &x->cpus),
				   "worker %u on CPU %d, outside the list", i, cpu);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct env_input env;
	const char *const *val = env.val;
	char why[400];
	struct sy_config cfg;
	struct sy__config out;
	struct expect x;
	bool null_cfg;
	int rc;

	null_cfg = fuzz_u8(&in) & 1;
	env_input_read(&in, &env);
	env_input_apply(&env, NULL);
	sy_config_init(&cfg);
	memset(why, 0, sizeof(why));
	rc = sy__config_resolve(null_cfg ? NULL : &cfg, &out, why, sizeof(why));
	env_input_clear();

	expect_env(val, &x);
	if (x.bad >= 0) {
		size_t len = strlen(env_var_names[x.bad]);

		fuzz_check(rc == -EINVAL, "%s=\"%s\" is bad, yet rc %d",
			   env_var_names[x.bad], val[x.bad], rc);
		fuzz_check(strncmp(why, env_var_names[x.bad], len) == 0 &&
			   why[len] == '=',
			   "%s=\"%s\" is bad, yet the message is \"%s\"",
			   env_var_names[x.bad], val[x.bad], why);
		return 0;
	}
	fuzz_check(rc == 0, "a valid environment refused (%d): %s", rc, why);
	check_resolved(&out, &x);
	return 0;
}
