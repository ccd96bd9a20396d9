/*
 * Unit tests of core/config.c: CPU list parsing, worker placement, and the
 * resolution of struct sy_config against the environment.
 *
 * Criterion runs each test in its own process, so environment variables set
 * here cannot leak into other tests; each test still unsets what it set.
 * Expectations that depend on the machine come from sched_getaffinity(), so
 * the tests pass on any machine with at least one CPU.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/config_internal.h"

#define WHY_MAX 512

static const char *const sy_env_vars[] = {
	"SY_WORKERS", "SY_CPUS", "SY_PIN", "SY_IDLE", "SY_DISPLAY_AFFINITY",
	"SY_METRICS_INTERVAL_MS", "SY_COLLECTOR_CPU",
};

/* Run each resolve test without whatever SY_* the test runner inherited. */
static void unset_sy_env(void)
{
	size_t i;

	for (i = 0; i < sizeof(sy_env_vars) / sizeof(sy_env_vars[0]); i++)
		unsetenv(sy_env_vars[i]);
}

static cpu_set_t set_of(const int *cpus, size_t n)
{
	cpu_set_t set;
	size_t i;

	CPU_ZERO(&set);
	for (i = 0; i < n; i++)
		CPU_SET(cpus[i], &set);
	return set;
}

static cpu_set_t allowed_cpus(void)
{
	cpu_set_t set;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	return set;
}

/* The allowed CPUs in increasing order; returns how many there are. */
static int allowed_list(int *cpus)
{
	cpu_set_t set = allowed_cpus();
	int cpu, n = 0;

	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[n++] = cpu;
	return n;
}

/* The lowest CPU the process may not run on, or -1 if it may run on all. */
static int first_disallowed_cpu(void)
{
	cpu_set_t set = allowed_cpus();
	int cpu;

	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (!CPU_ISSET(cpu, &set))
			return cpu;
	return -1;
}

static void expect_cpulist(const char *list, const int *cpus, size_t n)
{
	cpu_set_t got, want = set_of(cpus, n);
	char why[WHY_MAX] = "";
	int ret;

	ret = sy__cpulist_parse("SY_CPUS", list, &got, why, sizeof(why));
	cr_assert_eq(ret, 0, "\"%s\": returned %d: %s", list, ret, why);
	cr_expect(CPU_EQUAL(&got, &want), "\"%s\": wrong CPU set", list);
	cr_expect_eq(CPU_COUNT(&got), (int)n, "\"%s\": %d CPUs, expected %zu",
		     list, CPU_COUNT(&got), n);
}

/* @why must name @source and quote @value, and say @reason. */
static void expect_message(const char *why, const char *source,
			   const char *value, const char *reason)
{
	char quoted[WHY_MAX];

	snprintf(quoted, sizeof(quoted), "%s=\"%s\"", source, value);
	cr_expect(strstr(why, quoted) != NULL,
		  "message '%s' does not contain '%s'", why, quoted);
	cr_expect(strstr(why, reason) != NULL,
		  "message '%s' does not say '%s'", why, reason);
}

static void expect_cpulist_rejected(const char *list, const char *reason)
{
	cpu_set_t out;
	char why[WHY_MAX] = "";
	int ret;

	ret = sy__cpulist_parse("SY_CPUS", list, &out, why, sizeof(why));
	cr_expect_eq(ret, -EINVAL, "\"%s\": returned %d, expected -EINVAL",
		     list, ret);
	expect_message(why, "SY_CPUS", list, reason);
}

/* Resolve with only @var=@value set; it must fail, naming both. */
static void expect_env_rejected(const char *var, const char *value,
				const char *reason)
{
	struct sy__config out;
	char why[WHY_MAX] = "";
	int ret;

	cr_assert_eq(setenv(var, value, 1), 0);
	ret = sy__config_resolve(NULL, &out, why, sizeof(why));
	unsetenv(var);
	cr_expect_eq(ret, -EINVAL, "%s=\"%s\": returned %d, expected -EINVAL",
		     var, value, ret);
	expect_message(why, var, value, reason);
}

/* Resolve @cfg; it must fail with a message naming @field and @value. */
static void expect_config_rejected(const struct sy_config *cfg,
				   const char *field, const char *value)
{
	struct sy__config out;
	char why[WHY_MAX] = "";
	int ret;

	ret = sy__config_resolve(cfg, &out, why, sizeof(why));
	cr_expect_eq(ret, -EINVAL, "%s=%s: returned %d, expected -EINVAL",
		     field, value, ret);
	cr_expect(strstr(why, field) != NULL,
		  "message '%s' does not name %s", why, field);
	cr_expect(strstr(why, value) != NULL,
		  "message '%s' does not show %s", why, value);
}

static struct sy_config unset_config(void)
{
	struct sy_config cfg = { .display_affinity = -1 };

	return cfg;
}

static struct sy__config resolve_ok(const struct sy_config *cfg)
{
	struct sy__config out;
	char why[WHY_MAX] = "";
	int ret;

	ret = sy__config_resolve(cfg, &out, why, sizeof(why));
	cr_assert_eq(ret, 0, "returned %d: %s", ret, why);
	return out;
}

/* ------------------------------------------------------------------ */
/* CPU lists                                                          */
/* ------------------------------------------------------------------ */

Test(core_cpulist, parses_a_single_cpu)
{
	expect_cpulist("5", (const int[]){ 5 }, 1);
	expect_cpulist("0", (const int[]){ 0 }, 1);
}

Test(core_cpulist, parses_a_one_cpu_range)
{
	expect_cpulist("0-0", (const int[]){ 0 }, 1);
}

Test(core_cpulist, parses_ranges_singles_and_strides_together)
{
	expect_cpulist("0-3,8,10-14:2",
		       (const int[]){ 0, 1, 2, 3, 8, 10, 12, 14 }, 8);
}

Test(core_cpulist, stride_stops_at_the_range_end)
{
	expect_cpulist("0-7:3", (const int[]){ 0, 3, 6 }, 3);
	expect_cpulist("2-3:100", (const int[]){ 2 }, 1);
}

Test(core_cpulist, huge_stride_takes_only_the_first_cpu)
{
	expect_cpulist("0-1023:18446744073709551615", (const int[]){ 0 }, 1);
}

Test(core_cpulist, overlapping_items_merge)
{
	expect_cpulist("0-3,2-5,3", (const int[]){ 0, 1, 2, 3, 4, 5 }, 6);
}

Test(core_cpulist, accepts_leading_zeros)
{
	expect_cpulist("007", (const int[]){ 7 }, 1);
}

Test(core_cpulist, accepts_the_last_cpu_below_cpu_setsize)
{
	char list[32];

	snprintf(list, sizeof(list), "%d", CPU_SETSIZE - 1);
	expect_cpulist(list, (const int[]){ CPU_SETSIZE - 1 }, 1);
}

Test(core_cpulist, failure_leaves_the_output_untouched)
{
	cpu_set_t out, before;
	char why[WHY_MAX];

	CPU_ZERO(&out);
	CPU_SET(42, &out);
	before = out;
	cr_assert_eq(sy__cpulist_parse("SY_CPUS", "1,x", &out, why,
				       sizeof(why)), -EINVAL);
	cr_expect(CPU_EQUAL(&out, &before));
}

Test(core_cpulist, messages_name_the_given_source)
{
	cpu_set_t out;
	char why[WHY_MAX] = "";

	cr_assert_eq(sy__cpulist_parse("config.cpus", "5-3", &out, why,
				       sizeof(why)), -EINVAL);
	expect_message(why, "config.cpus", "5-3", "reversed range");
}

Test(core_cpulist, message_has_the_documented_form)
{
	cpu_set_t out;
	char why[WHY_MAX] = "";

	cr_assert_eq(sy__cpulist_parse("SY_CPUS", "0-3:0", &out, why,
				       sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "SY_CPUS=\"0-3:0\": zero stride in \"0-3:0\"");
}

Test(core_cpulist, rejects_an_empty_list)
{
	expect_cpulist_rejected("", "empty");
}

Test(core_cpulist, rejects_leading_trailing_and_doubled_commas)
{
	expect_cpulist_rejected(",1", "leading comma");
	expect_cpulist_rejected(",", "leading comma");
	expect_cpulist_rejected("1,", "trailing comma");
	expect_cpulist_rejected("1,,2", "empty item");
}

Test(core_cpulist, rejects_reversed_ranges)
{
	expect_cpulist_rejected("5-3", "reversed range");
	expect_cpulist_rejected("0,5-3:1", "reversed range");
}

Test(core_cpulist, rejects_zero_strides)
{
	expect_cpulist_rejected("0-3:0", "zero stride");
	expect_cpulist_rejected("1,0-3:00", "zero stride");
}

Test(core_cpulist, rejects_numbers_that_overflow)
{
	expect_cpulist_rejected("99999999999999999999", "too large");
	expect_cpulist_rejected("0-99999999999999999999", "too large");
	expect_cpulist_rejected("0-3:99999999999999999999", "too large");
}

Test(core_cpulist, rejects_cpus_at_or_above_cpu_setsize)
{
	char list[64], reason[64];

	snprintf(list, sizeof(list), "%d", CPU_SETSIZE);
	snprintf(reason, sizeof(reason), "CPU %d is too large", CPU_SETSIZE);
	expect_cpulist_rejected(list, reason);
	snprintf(list, sizeof(list), "0-%d", CPU_SETSIZE);
	expect_cpulist_rejected(list, reason);
	expect_cpulist_rejected("4294967296", "too large");
}

Test(core_cpulist, rejects_signs)
{
	expect_cpulist_rejected("-1", "signs are not allowed");
	expect_cpulist_rejected("+1", "signs are not allowed");
	expect_cpulist_rejected("1-+3", "signs are not allowed");
	expect_cpulist_rejected("0-3:-1", "signs are not allowed");
	expect_cpulist_rejected("1--3", "signs are not allowed");
}

Test(core_cpulist, rejects_whitespace)
{
	expect_cpulist_rejected(" 1", "whitespace");
	expect_cpulist_rejected("1 ", "whitespace");
	expect_cpulist_rejected("1, 2", "whitespace");
	expect_cpulist_rejected("1 -3", "whitespace");
	expect_cpulist_rejected("\t1", "whitespace");
	expect_cpulist_rejected("1\n", "whitespace");
}

Test(core_cpulist, rejects_words_and_garbage)
{
	expect_cpulist_rejected("abc", "expected a number, found 'a'");
	expect_cpulist_rejected("all", "expected a number");
	expect_cpulist_rejected("1x", "found 'x'");
	expect_cpulist_rejected("0x1", "found 'x'");
	expect_cpulist_rejected("1.5", "found '.'");
	expect_cpulist_rejected("0-3,z", "found 'z'");
	expect_cpulist_rejected("\x01", "byte 0x01");
}

Test(core_cpulist, rejects_incomplete_and_overlong_items)
{
	expect_cpulist_rejected("3-", "missing range end");
	expect_cpulist_rejected("3-,4", "missing range end");
	expect_cpulist_rejected("0-3:", "missing stride");
	expect_cpulist_rejected("3:2", "stride without a range");
	expect_cpulist_rejected("0-3:2:1", "found ':'");
	expect_cpulist_rejected("0-3-5", "found '-'");
}

/* ------------------------------------------------------------------ */
/* Worker placement                                                   */
/* ------------------------------------------------------------------ */

static void expect_placement(const cpu_set_t *allowed, enum sy_pin pin,
			     const int *want, unsigned workers)
{
	int got[SY_MAX_WORKERS];
	unsigned i;

	sy__place_workers(allowed, pin, workers, got);
	for (i = 0; i < workers; i++)
		cr_expect_eq(got[i], want[i], "worker %u on CPU %d, expected %d",
			     i, got[i], want[i]);
}

Test(core_placement, close_puts_workers_on_the_first_cpus)
{
	cpu_set_t set = set_of((const int[]){ 0, 1, 2, 3 }, 4);

	expect_placement(&set, SY_PIN_CLOSE, (const int[]){ 0, 1 }, 2);
}

Test(core_placement, spread_spaces_workers_evenly)
{
	cpu_set_t four = set_of((const int[]){ 0, 1, 2, 3 }, 4);
	cpu_set_t eight = set_of((const int[]){ 0, 1, 2, 3, 4, 5, 6, 7 }, 8);

	expect_placement(&four, SY_PIN_SPREAD, (const int[]){ 0, 2 }, 2);
	expect_placement(&eight, SY_PIN_SPREAD, (const int[]){ 0, 2, 4, 6 },
			 4);
	expect_placement(&eight, SY_PIN_SPREAD, (const int[]){ 0, 2, 5 }, 3);
}

Test(core_placement, close_wraps_when_workers_outnumber_cpus)
{
	cpu_set_t set = set_of((const int[]){ 0, 1, 2, 3 }, 4);

	expect_placement(&set, SY_PIN_CLOSE,
			 (const int[]){ 0, 1, 2, 3, 0, 1 }, 6);
}

Test(core_placement, spread_shares_cpus_when_workers_outnumber_them)
{
	cpu_set_t set = set_of((const int[]){ 0, 1, 2, 3 }, 4);

	expect_placement(&set, SY_PIN_SPREAD,
			 (const int[]){ 0, 0, 1, 2, 2, 3 }, 6);
}

Test(core_placement, none_leaves_every_worker_unpinned)
{
	cpu_set_t set = set_of((const int[]){ 0, 1, 2, 3 }, 4);

	expect_placement(&set, SY_PIN_NONE, (const int[]){ -1, -1, -1 }, 3);
}

Test(core_placement, uses_the_cpus_of_a_sparse_set)
{
	cpu_set_t set = set_of((const int[]){ 1, 5, 9, 13 }, 4);

	expect_placement(&set, SY_PIN_CLOSE,
			 (const int[]){ 1, 5, 9, 13, 1 }, 5);
	expect_placement(&set, SY_PIN_SPREAD, (const int[]){ 1, 9 }, 2);
}

/* ------------------------------------------------------------------ */
/* Resolution against the environment                                 */
/* ------------------------------------------------------------------ */

TestSuite(core_config, .init = unset_sy_env);

Test(core_config, null_config_gives_the_defaults)
{
	int cpus[CPU_SETSIZE];
	int n = allowed_list(cpus);
	struct sy__config out = resolve_ok(NULL);
	unsigned i, workers = n < SY_MAX_WORKERS ? (unsigned)n : SY_MAX_WORKERS;

	cr_expect_eq(out.workers, workers);
	for (i = 0; i < workers; i++)
		cr_expect_eq(out.worker_cpu[i], cpus[i]);
	cr_expect_eq(out.pin, SY_PIN_CLOSE);
	cr_expect_eq(out.idle, SY_IDLE_SLEEP);
	cr_expect_eq(out.display_affinity, 0);
	cr_expect_eq(out.ring_size, 1024);
	cr_expect_eq(out.burst, 32);
	cr_expect_eq(out.max_producers, 64);
	cr_expect_eq(out.max_servers, 256);
	cr_expect_eq(out.max_routes, 1024);
	cr_expect_null(out.allocator);
}

Test(core_config, unset_config_resolves_like_null)
{
	struct sy_config cfg = unset_config();
	struct sy__config a = resolve_ok(NULL), b = resolve_ok(&cfg);
	unsigned i;

	cr_expect_eq(a.workers, b.workers);
	for (i = 0; i < SY_MAX_WORKERS; i++)
		cr_expect_eq(a.worker_cpu[i], b.worker_cpu[i]);
	cr_expect_eq(a.pin, b.pin);
	cr_expect_eq(a.idle, b.idle);
	cr_expect_eq(a.display_affinity, b.display_affinity);
	cr_expect_eq(a.ring_size, b.ring_size);
	cr_expect_eq(a.burst, b.burst);
	cr_expect_eq(a.max_producers, b.max_producers);
	cr_expect_eq(a.max_servers, b.max_servers);
	cr_expect_eq(a.max_routes, b.max_routes);
	cr_expect_eq(a.allocator, b.allocator);
}

Test(core_config, workers_past_the_count_are_unpinned)
{
	struct sy_config cfg = unset_config();
	struct sy__config out;
	unsigned i;

	cfg.workers = 1;
	out = resolve_ok(&cfg);
	for (i = 1; i < SY_MAX_WORKERS; i++)
		cr_expect_eq(out.worker_cpu[i], -1);
}

Test(core_config, environment_beats_the_defaults)
{
	struct sy__config out;

	setenv("SY_WORKERS", "3", 1);
	setenv("SY_PIN", "none", 1);
	setenv("SY_IDLE", "spin", 1);
	setenv("SY_DISPLAY_AFFINITY", "1", 1);
	out = resolve_ok(NULL);
	unset_sy_env();
	cr_expect_eq(out.workers, 3);
	cr_expect_eq(out.pin, SY_PIN_NONE);
	cr_expect_eq(out.idle, SY_IDLE_SPIN);
	cr_expect_eq(out.display_affinity, 1);
	cr_expect_eq(out.worker_cpu[0], -1);
}

Test(core_config, every_word_of_each_variable_is_understood)
{
	static const struct {
		const char *word;
		enum sy_pin pin;
	} pins[] = {
		{ "close", SY_PIN_CLOSE },
		{ "spread", SY_PIN_SPREAD },
		{ "none", SY_PIN_NONE },
	};
	static const struct {
		const char *word;
		enum sy_idle idle;
	} idles[] = {
		{ "spin", SY_IDLE_SPIN },
		{ "yield", SY_IDLE_YIELD },
		{ "sleep", SY_IDLE_SLEEP },
	};
	struct sy__config out;
	size_t i;

	for (i = 0; i < 3; i++) {
		setenv("SY_PIN", pins[i].word, 1);
		setenv("SY_IDLE", idles[i].word, 1);
		setenv("SY_DISPLAY_AFFINITY", i % 2 ? "1" : "0", 1);
		out = resolve_ok(NULL);
		cr_expect_eq(out.pin, pins[i].pin, "SY_PIN=%s", pins[i].word);
		cr_expect_eq(out.idle, idles[i].idle, "SY_IDLE=%s",
			     idles[i].word);
		cr_expect_eq(out.display_affinity, (int)(i % 2));
	}
	unset_sy_env();
}

Test(core_config, explicit_config_beats_the_environment)
{
	struct sy_config cfg = unset_config();
	struct sy__config out;

	cfg.workers = 2;
	cfg.pin = SY_PIN_SPREAD;
	cfg.idle = SY_IDLE_YIELD;
	cfg.display_affinity = 0;
	setenv("SY_WORKERS", "5", 1);
	setenv("SY_PIN", "none", 1);
	setenv("SY_IDLE", "spin", 1);
	setenv("SY_DISPLAY_AFFINITY", "1", 1);
	out = resolve_ok(&cfg);
	unset_sy_env();
	cr_expect_eq(out.workers, 2);
	cr_expect_eq(out.pin, SY_PIN_SPREAD);
	cr_expect_eq(out.idle, SY_IDLE_YIELD);
	cr_expect_eq(out.display_affinity, 0);
}

Test(core_config, explicit_config_ignores_malformed_variables)
{
	int cpus[CPU_SETSIZE];
	struct sy_config cfg = unset_config();
	char list[32];
	size_t i;

	allowed_list(cpus);
	snprintf(list, sizeof(list), "%d", cpus[0]);
	cfg.workers = 1;
	cfg.cpus = list;
	cfg.pin = SY_PIN_CLOSE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.display_affinity = 1;
	cfg.metrics_interval_ms = 100;
	cfg.collector_cpu = "none";
	for (i = 0; i < sizeof(sy_env_vars) / sizeof(sy_env_vars[0]); i++)
		setenv(sy_env_vars[i], "garbage", 1);
	resolve_ok(&cfg);
	unset_sy_env();
}

Test(core_config, sy_cpus_sets_the_cpus_and_the_worker_count)
{
	int cpus[CPU_SETSIZE];
	struct sy__config out;
	char list[32];

	allowed_list(cpus);
	snprintf(list, sizeof(list), "%d", cpus[0]);
	setenv("SY_CPUS", list, 1);
	out = resolve_ok(NULL);
	unsetenv("SY_CPUS");
	cr_expect_eq(out.workers, 1);
	cr_expect_eq(out.worker_cpu[0], cpus[0]);
}

Test(core_config, config_cpus_beats_sy_cpus)
{
	int cpus[CPU_SETSIZE];
	int n = allowed_list(cpus);
	struct sy_config cfg = unset_config();
	struct sy__config out;
	char list[32];

	snprintf(list, sizeof(list), "%d", cpus[n - 1]);
	cfg.cpus = list;
	setenv("SY_CPUS", "not a list", 1);
	out = resolve_ok(&cfg);
	unsetenv("SY_CPUS");
	cr_expect_eq(out.workers, 1);
	cr_expect_eq(out.worker_cpu[0], cpus[n - 1]);
}

Test(core_config, more_workers_than_cpus_wrap_around)
{
	int cpus[CPU_SETSIZE];
	int n = allowed_list(cpus);
	struct sy__config out;
	char count[16];
	unsigned i, workers = n + 2 <= SY_MAX_WORKERS ? (unsigned)n + 2 :
			      SY_MAX_WORKERS;

	snprintf(count, sizeof(count), "%u", workers);
	setenv("SY_WORKERS", count, 1);
	out = resolve_ok(NULL);
	unsetenv("SY_WORKERS");
	cr_expect_eq(out.workers, workers);
	for (i = 0; i < workers; i++)
		cr_expect_eq(out.worker_cpu[i], cpus[i % (unsigned)n],
			     "worker %u", i);
}

Test(core_config, rejects_sy_cpus_outside_the_allowed_cpus)
{
	int cpu = first_disallowed_cpu();
	char list[32];

	if (cpu < 0)
		cr_skip_test("the process may run on every CPU");
	snprintf(list, sizeof(list), "%d", cpu);
	expect_env_rejected("SY_CPUS", list,
			    "is not in the process's allowed CPUs");
}

Test(core_config, rejects_config_cpus_outside_the_allowed_cpus)
{
	cpu_set_t allowed = allowed_cpus();
	struct sy_config cfg = unset_config();
	struct sy__config out;
	char list[32], why[WHY_MAX] = "", reason[64];

	snprintf(list, sizeof(list), "%d", CPU_SETSIZE - 1);
	if (CPU_ISSET(CPU_SETSIZE - 1, &allowed))
		cr_skip_test("the process may run on CPU %d", CPU_SETSIZE - 1);
	cfg.cpus = list;
	cr_assert_eq(sy__config_resolve(&cfg, &out, why, sizeof(why)),
		     -EINVAL);
	snprintf(reason, sizeof(reason), "CPU %d is not in", CPU_SETSIZE - 1);
	expect_message(why, "config.cpus", list, reason);
}

Test(core_config, sy_cpus_errors_come_from_the_list_parser)
{
	expect_env_rejected("SY_CPUS", "0-3:0", "zero stride");
	expect_env_rejected("SY_CPUS", "", "empty");
	expect_env_rejected("SY_CPUS", "1,", "trailing comma");
}

Test(core_config, accepts_sy_workers_at_its_bounds)
{
	struct sy__config out;

	setenv("SY_WORKERS", "1", 1);
	out = resolve_ok(NULL);
	cr_expect_eq(out.workers, 1);
	setenv("SY_WORKERS", "256", 1);
	out = resolve_ok(NULL);
	cr_expect_eq(out.workers, 256);
	unsetenv("SY_WORKERS");
}

Test(core_config, rejects_bad_sy_workers)
{
	expect_env_rejected("SY_WORKERS", "", "empty");
	expect_env_rejected("SY_WORKERS", "abc", "not a number");
	expect_env_rejected("SY_WORKERS", "0x10", "not a number");
	expect_env_rejected("SY_WORKERS", "4x", "not a number");
	expect_env_rejected("SY_WORKERS", "0", "expected 1 to 256");
	expect_env_rejected("SY_WORKERS", "257", "expected 1 to 256");
	expect_env_rejected("SY_WORKERS", "99999999999999999999",
			    "expected 1 to 256");
	expect_env_rejected("SY_WORKERS", "-1", "signs are not allowed");
	expect_env_rejected("SY_WORKERS", "+1", "signs are not allowed");
	expect_env_rejected("SY_WORKERS", " 1", "whitespace");
	expect_env_rejected("SY_WORKERS", "1 ", "whitespace");
}

Test(core_config, rejects_bad_sy_pin)
{
	expect_env_rejected("SY_PIN", "", "empty");
	expect_env_rejected("SY_PIN", "sideways",
			    "expected close, spread or none");
	expect_env_rejected("SY_PIN", "Close", "expected close, spread or none");
	expect_env_rejected("SY_PIN", "close ", "expected close, spread or none");
}

Test(core_config, rejects_bad_sy_idle)
{
	expect_env_rejected("SY_IDLE", "", "empty");
	expect_env_rejected("SY_IDLE", "busy", "expected spin, yield or sleep");
	expect_env_rejected("SY_IDLE", "SPIN", "expected spin, yield or sleep");
}

Test(core_config, rejects_bad_sy_display_affinity)
{
	expect_env_rejected("SY_DISPLAY_AFFINITY", "", "empty");
	expect_env_rejected("SY_DISPLAY_AFFINITY", "2", "expected 0 or 1");
	expect_env_rejected("SY_DISPLAY_AFFINITY", "yes", "expected 0 or 1");
	expect_env_rejected("SY_DISPLAY_AFFINITY", "01", "expected 0 or 1");
}

Test(core_config, sizes_default_when_zero)
{
	struct sy_config cfg = unset_config();
	struct sy__config out = resolve_ok(&cfg);

	cr_expect_eq(out.ring_size, 1024);
	cr_expect_eq(out.burst, 32);
	cr_expect_eq(out.max_producers, 64);
	cr_expect_eq(out.max_servers, 256);
	cr_expect_eq(out.max_routes, 1024);
}

Test(core_config, accepts_sizes_at_their_bounds)
{
	struct sy_config cfg = unset_config();
	struct sy__config out;

	cfg.ring_size = 16;
	cfg.burst = 1;
	cfg.max_producers = 1;
	cfg.max_servers = 1;
	cfg.max_routes = 1;
	cfg.workers = 1;
	out = resolve_ok(&cfg);
	cr_expect_eq(out.ring_size, 16);
	cr_expect_eq(out.burst, 1);
	cr_expect_eq(out.max_producers, 1);
	cr_expect_eq(out.max_servers, 1);
	cr_expect_eq(out.max_routes, 1);
	cr_expect_eq(out.workers, 1);

	cfg.ring_size = 1u << 20;
	cfg.burst = 1024;
	cfg.max_producers = 4096;
	cfg.max_servers = 65535;
	cfg.max_routes = 1u << 20;
	cfg.workers = 256;
	out = resolve_ok(&cfg);
	cr_expect_eq(out.ring_size, 1u << 20);
	cr_expect_eq(out.burst, 1024);
	cr_expect_eq(out.max_producers, 4096);
	cr_expect_eq(out.max_servers, 65535);
	cr_expect_eq(out.max_routes, 1u << 20);
	cr_expect_eq(out.workers, 256);
}

Test(core_config, passes_the_allocator_through)
{
	static const struct sy_allocator alloc = { .ctx = NULL };
	struct sy_config cfg = unset_config();

	cfg.allocator = &alloc;
	cr_expect_eq(resolve_ok(&cfg).allocator, &alloc);
}

Test(core_config, rejects_out_of_range_config_fields)
{
	struct sy_config cfg;

	cfg = unset_config();
	cfg.workers = 257;
	expect_config_rejected(&cfg, "config.workers", "257");
	cfg = unset_config();
	cfg.ring_size = 1000;
	expect_config_rejected(&cfg, "config.ring_size", "1000");
	cfg.ring_size = 8;
	expect_config_rejected(&cfg, "config.ring_size", "8");
	cfg.ring_size = 1u << 21;
	expect_config_rejected(&cfg, "config.ring_size", "2097152");
	cfg = unset_config();
	cfg.burst = 1025;
	expect_config_rejected(&cfg, "config.burst", "1025");
	cfg = unset_config();
	cfg.max_producers = 4097;
	expect_config_rejected(&cfg, "config.max_producers", "4097");
	cfg = unset_config();
	cfg.max_servers = 65536;
	expect_config_rejected(&cfg, "config.max_servers", "65536");
	cfg = unset_config();
	cfg.max_routes = (1u << 20) + 1;
	expect_config_rejected(&cfg, "config.max_routes", "1048577");
	cfg = unset_config();
	cfg.pin = (enum sy_pin)9;
	expect_config_rejected(&cfg, "config.pin", "9");
	cfg = unset_config();
	cfg.idle = (enum sy_idle)9;
	expect_config_rejected(&cfg, "config.idle", "9");
	cfg = unset_config();
	cfg.display_affinity = 2;
	expect_config_rejected(&cfg, "config.display_affinity", "2");
	cfg.display_affinity = -2;
	expect_config_rejected(&cfg, "config.display_affinity", "-2");
}

Test(core_config, retention_defaults_to_a_minute)
{
	struct sy__config out = resolve_ok(NULL);

	cr_expect_eq(out.metrics_interval_ms, 100);
	cr_expect_eq(out.retention_ms, 60000);
}

/* SY_METRICS_INTERVAL_MS goes to an hour; a retention the user did not
 * set grows to a few intervals rather than refusing the interval. */
Test(core_config, a_long_interval_lengthens_the_default_retention)
{
	static const char *const intervals[] = { "60001", "120000", "3600000" };
	struct sy_config cfg = unset_config();
	struct sy__config out;

	for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
		const char *v = intervals[i];

		cr_assert_eq(setenv("SY_METRICS_INTERVAL_MS", v, 1), 0);
		out = resolve_ok(NULL);
		unsetenv("SY_METRICS_INTERVAL_MS");
		cr_expect_eq(out.metrics_interval_ms, strtoul(v, NULL, 10));
		cr_expect_geq(out.retention_ms, 4 * out.metrics_interval_ms,
			      "interval %u ms, retention %u ms",
			      out.metrics_interval_ms, out.retention_ms);
	}
	cfg.metrics_interval_ms = 3600000;
	out = resolve_ok(&cfg);
	cr_expect_geq(out.retention_ms, 4 * out.metrics_interval_ms);
}

/* A retention the user set is kept as set; shorter than the interval, it
 * is refused, and the message names both settings with their values. */
Test(core_config, explicit_retention_shorter_than_the_interval_names_both)
{
	struct sy_config cfg = unset_config();
	struct sy__config out;
	char why[WHY_MAX] = "";

	cfg.retention_ms = 120000;
	cr_assert_eq(setenv("SY_METRICS_INTERVAL_MS", "100000", 1), 0);
	out = resolve_ok(&cfg);
	cr_expect_eq(out.retention_ms, 120000);

	cfg.retention_ms = 1000;
	cr_assert_eq(setenv("SY_METRICS_INTERVAL_MS", "5000", 1), 0);
	cr_expect_eq(sy__config_resolve(&cfg, &out, why, sizeof(why)), -EINVAL);
	unsetenv("SY_METRICS_INTERVAL_MS");
	cr_expect(strstr(why, "config.retention_ms=1000") != NULL, "%s", why);
	expect_message(why, "SY_METRICS_INTERVAL_MS", "5000", "shorter");

	cfg.metrics_interval_ms = 5000;
	cr_expect_eq(sy__config_resolve(&cfg, &out, why, sizeof(why)), -EINVAL);
	cr_expect(strstr(why, "config.retention_ms=1000") != NULL, "%s", why);
	cr_expect(strstr(why, "config.metrics_interval_ms=5000") != NULL,
		  "%s", why);
}

Test(core_config, rejects_a_bad_config_cpus_list)
{
	struct sy_config cfg = unset_config();
	struct sy__config out;
	char why[WHY_MAX] = "";

	cfg.cpus = "";
	cr_assert_eq(sy__config_resolve(&cfg, &out, why, sizeof(why)),
		     -EINVAL);
	expect_message(why, "config.cpus", "", "empty");
}

Test(core_config, failure_leaves_the_output_untouched)
{
	struct sy__config out, before;
	char why[WHY_MAX];

	memset(&out, 0xa5, sizeof(out));
	before = out;
	setenv("SY_IDLE", "busy", 1);
	cr_assert_eq(sy__config_resolve(NULL, &out, why, sizeof(why)),
		     -EINVAL);
	unsetenv("SY_IDLE");
	cr_expect_eq(memcmp(&out, &before, sizeof(out)), 0);
}

/* ------------------------------------------------------------------ */
/* Legal but suspicious values: warnings, and an error at create for a  */
/* collector CPU the process may not use.                               */
/* ------------------------------------------------------------------ */

Test(core_config, warns_of_a_stride_that_steps_past_its_range)
{
	struct sy__config out;

	setenv("SY_CPUS", "0-1:99", 1);
	out = resolve_ok(NULL);
	unsetenv("SY_CPUS");
	cr_expect_eq(out.workers, 1);
	cr_expect(strstr(out.warnings, "SY_CPUS=\"0-1:99\": stride 99 steps "
			 "past the end of 0-1, which gives CPU 0 alone") != NULL,
		  "warnings: %s", out.warnings);
}

Test(core_config, warns_of_cpus_listed_more_than_once)
{
	static char list[100000];
	struct sy__config out;
	size_t n = 0;

	for (unsigned i = 0; i < 50000; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, i ? ",0" : "0");
	setenv("SY_CPUS", list, 1);
	out = resolve_ok(NULL);
	unsetenv("SY_CPUS");
	cr_expect_eq(out.workers, 1);
	cr_expect(strstr(out.warnings, "49999 CPUs are listed more than once "
			 "(CPU 0 first), each used once") != NULL,
		  "warnings: %s", out.warnings);
}

Test(core_config, warns_of_more_pinned_workers_than_cpus)
{
	cpu_set_t allowed = allowed_cpus();
	struct sy__config out;
	char want[128];

	setenv("SY_WORKERS", "256", 1);
	out = resolve_ok(NULL);
	snprintf(want, sizeof(want), "256 workers pinned to %d CPU",
		 CPU_COUNT(&allowed));
	cr_expect(strstr(out.warnings, want) != NULL, "warnings: %s",
		  out.warnings);
	/* Unpinned, the scheduler places them: nothing to warn of. */
	setenv("SY_PIN", "none", 1);
	out = resolve_ok(NULL);
	unsetenv("SY_PIN");
	unsetenv("SY_WORKERS");
	cr_expect_str_eq(out.warnings, "");
}

Test(core_config, plain_values_give_no_warning)
{
	struct sy__config out;

	setenv("SY_CPUS", "0", 1);
	out = resolve_ok(NULL);
	unsetenv("SY_CPUS");
	cr_expect_str_eq(out.warnings, "");
}

Test(core_config, rejects_a_collector_cpu_outside_the_allowed_cpus)
{
	cpu_set_t allowed = allowed_cpus();
	char value[32];

	if (CPU_ISSET(CPU_SETSIZE - 1, &allowed))
		cr_skip_test("the process may run on CPU %d", CPU_SETSIZE - 1);
	snprintf(value, sizeof(value), "%d", CPU_SETSIZE - 1);
	expect_env_rejected("SY_COLLECTOR_CPU", value,
			    "is not in the process's allowed CPUs");
}

static void keep_warning(const char *message, void *ctx)
{
	snprintf(ctx, 512, "%s", message);
}

Test(core_config, create_hands_its_warnings_to_on_warning)
{
	struct sy_config cfg;
	char got[512] = "";
	sy_engine *eng = NULL;

	sy_config_init(&cfg);
	cfg.cpus = "0,0";
	cfg.on_warning = keep_warning;
	cfg.callback_ctx = got;
	cr_assert_eq(sy_engine_create(&cfg, &eng), 0);
	sy_engine_destroy(eng);
	cr_expect_str_eq(got, "config.cpus=\"0,0\": 1 CPU is listed more "
			 "than once (CPU 0 first), each used once");
}
