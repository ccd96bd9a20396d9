/*
 * Engine configuration: struct sy_config resolved against the environment.
 *
 * Each setting is decided in one place, in the order of precedence: the
 * explicit config field, then the environment variable, then the built-in
 * default. A variable is not read at all when its field is explicit, so a
 * malformed variable cannot break a program that sets the field itself.
 *
 * Everything is checked before @out is written: a caller gets either a
 * configuration with every field decided, or -EINVAL and one message of the
 * form `SOURCE="value": reason`, where SOURCE is the variable ("SY_CPUS") or
 * the field ("config.cpus"). Numbers are parsed digit by digit rather than
 * with strtoul(), which accepts leading whitespace and a sign, and turns
 * "-1" into ULONG_MAX.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"

#define RING_SIZE_DEFAULT	1024u
#define RING_SIZE_MIN		16u
#define RING_SIZE_MAX		(1u << 20)
#define BURST_DEFAULT		32u
#define BURST_MAX		1024u
#define MAX_PRODUCERS_DEFAULT	64u
#define MAX_PRODUCERS_MAX	4096u
#define MAX_SERVERS_DEFAULT	256u
#define MAX_SERVERS_MAX		65535u
#define MAX_ROUTES_DEFAULT	1024u
#define MAX_ROUTES_MAX		(1u << 20)
#define MAX_DEAD_LETTERS_DEFAULT 4096u
#define MAX_DEAD_LETTERS_MAX	(1u << 24)
#define METRICS_INTERVAL_DEFAULT 100u
#define METRICS_INTERVAL_MAX	3600000u
#define LATENCY_SAMPLE_DEFAULT	64u
#define RETENTION_DEFAULT	60000u
#define RETENTION_MAX		(24u * 3600 * 1000)
/* A retention left at its default keeps at least this many intervals. */
#define RETENTION_INTERVALS	4u
_Static_assert(RETENTION_INTERVALS * (unsigned long long)METRICS_INTERVAL_MAX
	       <= RETENTION_MAX, "a default retention must stay in range");

/* Room for the allowed CPUs in a message; longer lists end in "...". */
#define CPULIST_TEXT_MAX	128

__attribute__((format(printf, 3, 4)))
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Locale-independent, unlike isspace() and isprint() from <ctype.h>. */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool is_print(char c)
{
	return c >= 0x20 && c < 0x7f;
}

/*
 * Read the decimal digits at *@p (there is at least one) into *@val and move
 * *@p past them. Returns false if the number does not fit an unsigned long.
 */
static bool read_digits(const char **p, unsigned long *val)
{
	const char *s = *p;
	unsigned long v = 0;

	for (; is_digit(*s); s++) {
		unsigned long d = (unsigned long)(*s - '0');

		if (v > (ULONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*p = s;
	*val = v;
	return true;
}

/* One item of a CPU list, and what a message about it needs. */
struct cpulist_item {
	const char *name;	/* the source: "SY_CPUS" or "config.cpus" */
	const char *list;	/* the whole list, as given */
	const char *start;	/* the item, up to the next comma */
	int len;
	char *why;
	size_t whylen;
	/* What is legal but suspicious, found so far. */
	unsigned long lone_stride_lo;	/* a stride past its range's end: lo-hi:stride */
	unsigned long lone_stride_hi, lone_stride;
	bool lone_stride_seen;
	unsigned long repeats;		/* CPUs listed again */
	int first_repeat;		/* the first of them */
};

__attribute__((format(printf, 2, 3)))
static int item_fail(const struct cpulist_item *it, const char *fmt, ...)
{
	char reason[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return fail(it->why, it->whylen, "%s=\"%s\": %s in \"%.*s\"",
		    it->name, it->list, reason, it->len, it->start);
}

/* @c stands where the grammar wants @expected. */
static int item_unexpected(const struct cpulist_item *it, char c,
			   const char *expected)
{
	if (is_space(c))
		return item_fail(it, "whitespace is not allowed");
	if (is_print(c))
		return item_fail(it, "expected %s, found '%c'", expected, c);
	return item_fail(it, "expected %s, found byte 0x%02x", expected,
			 (unsigned char)c);
}

/* Read the number that must start at *@p; @what names it if it is missing. */
static int item_number(const struct cpulist_item *it, const char **p,
		       const char *what, unsigned long *val)
{
	char c = **p;

	if (c == '\0' || c == ',')
		return item_fail(it, "missing %s", what);
	if (c == '+' || c == '-')
		return item_fail(it, "signs are not allowed");
	if (!is_digit(c))
		return item_unexpected(it, c, "a number");
	if (!read_digits(p, val))
		return item_fail(it, "number too large");
	return 0;
}

/* Read a CPU number, which must be below CPU_SETSIZE. */
static int item_cpu(const struct cpulist_item *it, const char **p,
		    const char *what, unsigned long *cpu)
{
	int err = item_number(it, p, what, cpu);

	if (err)
		return err;
	if (*cpu >= CPU_SETSIZE)
		return item_fail(it, "CPU %lu is too large (CPU_SETSIZE is %d)",
				 *cpu, CPU_SETSIZE);
	return 0;
}

/* Parse one item, N, N-M or N-M:S, and add its CPUs to @set. */
static int item_parse(struct cpulist_item *it, cpu_set_t *set)
{
	const char *p = it->start, *end = it->start + it->len;
	const char *expected = "'-' or ','";  /* what may follow so far */
	unsigned long lo, hi, stride = 1, cpu;
	bool range = false;
	int err = item_cpu(it, &p, "CPU", &lo);

	hi = lo;
	if (!err && *p == '-') {
		p++;
		err = item_cpu(it, &p, "range end", &hi);
		if (!err && hi < lo)
			err = item_fail(it, "reversed range %lu-%lu", lo, hi);
		expected = "':' or ','";
		range = true;
	} else if (!err && *p == ':') {
		err = item_fail(it, "stride without a range");
	}
	if (!err && range && *p == ':') {
		p++;
		err = item_number(it, &p, "stride", &stride);
		if (!err && stride == 0)
			err = item_fail(it, "zero stride");
		expected = "','";
	}
	if (!err && p != end)
		err = item_unexpected(it, *p, expected);
	if (err)
		return err;
	if (range && hi > lo && stride > hi - lo && !it->lone_stride_seen) {
		it->lone_stride_seen = true;
		it->lone_stride_lo = lo;
		it->lone_stride_hi = hi;
		it->lone_stride = stride;
	}
	/* Stop before stepping past hi: cpu + stride may not fit. */
	for (cpu = lo;; cpu += stride) {
		if (CPU_ISSET(cpu, set) && it->repeats++ == 0)
			it->first_repeat = (int)cpu;
		CPU_SET(cpu, set);
		if (hi - cpu < stride)
			break;
	}
	return 0;
}

/* Append a warning to @p buf (of @p len bytes), after any already there. */
__attribute__((format(printf, 3, 4)))
static void warn(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 2 >= len)
		return;
	if (n) {
		memcpy(buf + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/* sy__cpulist_parse(), with what is legal but suspicious in @p warnings. */
static int cpulist_parse(const char *name, const char *s, cpu_set_t *out,
			 char *why, size_t whylen, char *warnings,
			 size_t warnlen)
{
	struct cpulist_item it = {
		.name = name, .list = s, .why = why, .whylen = whylen,
	};
	const char *p = s;
	cpu_set_t set;
	int err;

	if (*s == '\0')
		return fail(why, whylen, "%s=\"\": empty", name);
	CPU_ZERO(&set);
	for (;;) {
		size_t len = strcspn(p, ",");

		it.start = p;
		it.len = len > INT_MAX ? INT_MAX : (int)len;
		if (len == 0)
			return fail(why, whylen, "%s=\"%s\": %s", name, s,
				    p == s ? "leading comma" :
				    "empty item between commas");
		err = item_parse(&it, &set);
		if (err)
			return err;
		p += len;
		if (*p == '\0')
			break;
		p++;
		if (*p == '\0')
			return fail(why, whylen, "%s=\"%s\": trailing comma",
				    name, s);
	}
	if (it.lone_stride_seen)
		warn(warnings, warnlen,
		     "%s=\"%.40s\": stride %lu steps past the end of %lu-%lu, "
		     "which gives CPU %lu alone", name, s, it.lone_stride,
		     it.lone_stride_lo, it.lone_stride_hi, it.lone_stride_lo);
	if (it.repeats)
		warn(warnings, warnlen,
		     "%s=\"%.40s\": %lu CPU%s listed more than once "
		     "(CPU %d first), each used once", name, s, it.repeats,
		     it.repeats == 1 ? " is" : "s are", it.first_repeat);
	*out = set;
	return 0;
}

int sy__cpulist_parse(const char *name, const char *s, cpu_set_t *out,
		      char *why, size_t whylen)
{
	char warnings[1];

	warnings[0] = '\0';
	return cpulist_parse(name, s, out, why, whylen, warnings,
			     sizeof(warnings));
}

/* Write @set as a CPU list ("0-3,8") into @buf, cut short with "...". */
static void cpulist_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t pos = 0;
	int cpu, first, n;

	assert(len >= 4);
	buf[0] = '\0';
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set))
			continue;
		first = cpu;
		while (cpu + 1 < CPU_SETSIZE && CPU_ISSET(cpu + 1, set))
			cpu++;
		if (first == cpu)
			n = snprintf(buf + pos, len - pos, "%s%d",
				     pos ? "," : "", cpu);
		else
			n = snprintf(buf + pos, len - pos, "%s%d-%d",
				     pos ? "," : "", first, cpu);
		if (n < 0 || (size_t)n >= len - pos) {
			strcpy(buf + len - 4, "...");
			return;
		}
		pos += (size_t)n;
	}
}

/*
 * The CPUs workers may use: config.cpus, else SY_CPUS, else every CPU the
 * process may run on. A listed CPU outside that last set is an error, not
 * something to drop silently.
 */
static int resolve_cpus(const char *cfg_cpus, cpu_set_t *cpus,
			char *why, size_t whylen, char *warnings,
			size_t warnlen)
{
	const char *name = "config.cpus", *list = cfg_cpus;
	char allowed_text[CPULIST_TEXT_MAX];
	cpu_set_t allowed;
	int cpu, err;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		err = errno;
		snprintf(why, whylen,
			 "sched_getaffinity() failed: errno %d", err);
		return -err;
	}
	if (!list) {
		name = "SY_CPUS";
		list = getenv(name);
	}
	if (!list) {
		*cpus = allowed;
		return 0;
	}
	err = cpulist_parse(name, list, cpus, why, whylen, warnings, warnlen);
	if (err)
		return err;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, cpus) && !CPU_ISSET(cpu, &allowed)) {
			cpulist_format(&allowed, allowed_text,
				       sizeof(allowed_text));
			return fail(why, whylen,
				    "%s=\"%s\": CPU %d is not in the process's allowed CPUs (%s)",
				    name, list, cpu, allowed_text);
		}
	}
	return 0;
}

/*
 * The number of workers: config.workers, else SY_WORKERS, else one per CPU
 * of @ncpus (capped at SY_MAX_WORKERS).
 */
static int resolve_workers(unsigned cfg_workers, int ncpus, unsigned *workers,
			   char *why, size_t whylen)
{
	const char *s, *p;
	unsigned long val;

	if (cfg_workers) {
		if (cfg_workers > SY_MAX_WORKERS)
			return fail(why, whylen,
				    "config.workers=%u: expected 1 to %d",
				    cfg_workers, SY_MAX_WORKERS);
		*workers = cfg_workers;
		return 0;
	}
	s = getenv("SY_WORKERS");
	if (!s) {
		*workers = ncpus < SY_MAX_WORKERS ? (unsigned)ncpus :
			   SY_MAX_WORKERS;
		return 0;
	}
	if (*s == '\0')
		return fail(why, whylen, "SY_WORKERS=\"\": empty");
	for (p = s; *p; p++) {
		if (is_space(*p))
			return fail(why, whylen,
				    "SY_WORKERS=\"%s\": whitespace is not allowed",
				    s);
		if (*p == '+' || *p == '-')
			return fail(why, whylen,
				    "SY_WORKERS=\"%s\": signs are not allowed",
				    s);
		if (!is_digit(*p))
			return fail(why, whylen,
				    "SY_WORKERS=\"%s\": not a number", s);
	}
	p = s;
	if (!read_digits(&p, &val) || val == 0 || val > SY_MAX_WORKERS)
		return fail(why, whylen,
			    "SY_WORKERS=\"%s\": expected 1 to %d",
			    s, SY_MAX_WORKERS);
	*workers = (unsigned)val;
	return 0;
}

/* A word an environment variable may hold, and the value it stands for. */
struct env_word {
	const char *word;
	int value;
};

/*
 * Look up the variable @var in @words (@n of them, listed for messages as
 * @expected). Leaves *@value alone when @var is not set.
 */
static int env_word(const char *var, const struct env_word *words, size_t n,
		    const char *expected, int *value, char *why, size_t whylen)
{
	const char *s = getenv(var);
	size_t i;

	if (!s)
		return 0;
	if (*s == '\0')
		return fail(why, whylen, "%s=\"\": empty", var);
	for (i = 0; i < n; i++) {
		if (strcmp(s, words[i].word) == 0) {
			*value = words[i].value;
			return 0;
		}
	}
	return fail(why, whylen, "%s=\"%s\": expected %s", var, s, expected);
}

/* An enum field of the config and the variable that sets it when the
 * field is 0 (its DEFAULT value). */
struct enum_setting {
	const char *field;
	const char *var;
	const char *expected;        /* the words, for messages */
	const struct env_word *words;
	size_t nwords;
	int max;                     /* highest valid value of the field */
	int dflt;                    /* when neither sets it */
};

static int resolve_enum(const struct enum_setting *e, int cfg_value,
			int *out, char *why, size_t whylen)
{
	if (cfg_value < 0 || cfg_value > e->max)
		return fail(why, whylen, "config.%s=%d: not an enum sy_%s value",
			    e->field, cfg_value, e->field);
	*out = cfg_value ? cfg_value : e->dflt;
	if (cfg_value)
		return 0;
	return env_word(e->var, e->words, e->nwords, e->expected, out, why,
			whylen);
}

static const struct env_word pin_words[] = {
	{ "close", SY_PIN_CLOSE },
	{ "spread", SY_PIN_SPREAD },
	{ "none", SY_PIN_NONE },
};
static const struct enum_setting pin_setting = {
	"pin", "SY_PIN", "close, spread or none", pin_words, 3, SY_PIN_NONE,
	SY_PIN_CLOSE,
};

static const struct env_word idle_words[] = {
	{ "spin", SY_IDLE_SPIN },
	{ "yield", SY_IDLE_YIELD },
	{ "sleep", SY_IDLE_SLEEP },
};
static const struct enum_setting idle_setting = {
	"idle", "SY_IDLE", "spin, yield or sleep", idle_words, 3,
	SY_IDLE_SLEEP, SY_IDLE_SLEEP,
};

static int resolve_display_affinity(int cfg_display, int *display,
				    char *why, size_t whylen)
{
	static const struct env_word words[] = {
		{ "0", 0 },
		{ "1", 1 },
	};

	if (cfg_display < -1 || cfg_display > 1)
		return fail(why, whylen,
			    "config.display_affinity=%d: expected -1, 0 or 1",
			    cfg_display);
	if (cfg_display != -1) {
		*display = cfg_display;
		return 0;
	}
	*display = 0;
	return env_word("SY_DISPLAY_AFFINITY", words,
			sizeof(words) / sizeof(words[0]), "0 or 1", display,
			why, whylen);
}

/* A size field: 0 means @def, anything else must lie in [1, @max]. */
static int resolve_size(const char *field, unsigned val, unsigned def,
			unsigned max, unsigned *out, char *why, size_t whylen)
{
	if (val > max)
		return fail(why, whylen, "config.%s=%u: expected 1 to %u",
			    field, val, max);
	*out = val ? val : def;
	return 0;
}

static int resolve_ring_size(unsigned val, unsigned *out,
			     char *why, size_t whylen)
{
	if (val == 0) {
		*out = RING_SIZE_DEFAULT;
		return 0;
	}
	if (val < RING_SIZE_MIN || val > RING_SIZE_MAX || (val & (val - 1)))
		return fail(why, whylen,
			    "config.ring_size=%u: expected a power of two from %u to %u",
			    val, RING_SIZE_MIN, RING_SIZE_MAX);
	*out = val;
	return 0;
}

/* A whole number from @p s in [lo, hi], named @p name in messages. */
static int parse_uint(const char *name, const char *s, unsigned long lo,
		      unsigned long hi, unsigned long *out, char *why,
		      size_t whylen)
{
	char *end;
	unsigned long v;

	if (*s == '\0')
		return fail(why, whylen, "%s=\"\": empty", name);
	if (*s < '0' || *s > '9')
		return fail(why, whylen, "%s=\"%s\": expected a number from %lu to %lu",
			    name, s, lo, hi);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v < lo || v > hi)
		return fail(why, whylen, "%s=\"%s\": expected a number from %lu to %lu",
			    name, s, lo, hi);
	*out = v;
	return 0;
}

static int resolve_collector_cpu(const char *cfg_cpu, int *cpu, char *why,
				 size_t whylen)
{
	const char *name = "config.collector_cpu";
	const char *s = cfg_cpu;
	char allowed_text[CPULIST_TEXT_MAX];
	cpu_set_t allowed;
	unsigned long v;
	int err;

	*cpu = -1;
	if (!s) {
		name = "SY_COLLECTOR_CPU";
		s = getenv(name);
		if (!s)
			return 0;
	}
	if (strcmp(s, "none") == 0)
		return 0;
	err = parse_uint(name, s, 0, CPU_SETSIZE - 1, &v, why, whylen);
	if (err)
		return err;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
	    !CPU_ISSET((int)v, &allowed)) {
		cpulist_format(&allowed, allowed_text, sizeof(allowed_text));
		return fail(why, whylen,
			    "%s=\"%s\": CPU %lu is not in the process's allowed CPUs (%s)",
			    name, s, v, allowed_text);
	}
	*cpu = (int)v;
	return 0;
}

/*
 * The retention: the field, else the default, lengthened to
 * RETENTION_INTERVALS intervals where the interval is long (it goes to an
 * hour, so to 4 h, below RETENTION_MAX). A retention the caller set is kept
 * as set, and refused if shorter than the interval, with a message that
 * names both: @p interval_src says where the interval came from
 * (`SY_METRICS_INTERVAL_MS="120000"`, `config.metrics_interval_ms=120000`).
 */
static int resolve_retention(unsigned field, const char *interval_src,
			     struct sy__config *cfg, char *why, size_t whylen)
{
	unsigned interval = cfg->metrics_interval_ms;
	int err;

	err = resolve_size("retention_ms", field, RETENTION_DEFAULT,
			   RETENTION_MAX, &cfg->retention_ms, why, whylen);
	if (err)
		return err;
	if (!field) {
		if (cfg->retention_ms < RETENTION_INTERVALS * interval)
			cfg->retention_ms = RETENTION_INTERVALS * interval;
		return 0;
	}
	if (cfg->retention_ms >= interval)
		return 0;
	return fail(why, whylen,
		    "config.retention_ms=%u: shorter than the metrics interval, %s",
		    field, interval_src);
}

static int resolve_metrics(const struct sy_config *in, struct sy__config *cfg,
			   char *why, size_t whylen)
{
	char interval_src[64];
	unsigned long v;
	const char *s;
	int err;

	if (in->metrics < -1 || in->metrics > 1)
		return fail(why, whylen, "config.metrics=%d: expected -1, 0 or 1",
			    in->metrics);
	cfg->metrics = in->metrics != -1;
	cfg->metrics_interval_ms = METRICS_INTERVAL_DEFAULT;
	snprintf(interval_src, sizeof(interval_src), "%u ms by default",
		 METRICS_INTERVAL_DEFAULT);
	if (in->metrics_interval_ms) {
		if (in->metrics_interval_ms > METRICS_INTERVAL_MAX)
			return fail(why, whylen,
				    "config.metrics_interval_ms=%u: expected 1 to %u",
				    in->metrics_interval_ms, METRICS_INTERVAL_MAX);
		cfg->metrics_interval_ms = in->metrics_interval_ms;
		snprintf(interval_src, sizeof(interval_src),
			 "config.metrics_interval_ms=%u",
			 in->metrics_interval_ms);
	} else if ((s = getenv("SY_METRICS_INTERVAL_MS")) != NULL) {
		err = parse_uint("SY_METRICS_INTERVAL_MS", s, 1,
				 METRICS_INTERVAL_MAX, &v, why, whylen);
		if (err)
			return err;
		cfg->metrics_interval_ms = (unsigned)v;
		snprintf(interval_src, sizeof(interval_src),
			 "SY_METRICS_INTERVAL_MS=\"%lu\"", v);
	}
	err = resolve_collector_cpu(in->collector_cpu, &cfg->collector_cpu,
				    why, whylen);
	if (!err)
		err = resolve_size("latency_sample", in->latency_sample,
				   LATENCY_SAMPLE_DEFAULT, 1u << 30,
				   &cfg->latency_sample, why, whylen);
	if (!err)
		err = resolve_retention(in->retention_ms, interval_src, cfg,
					why, whylen);
	return err;
}

/* The size fields, 0 for their default. */
#define SIZE(f, dflt, max) { #f, offsetof(struct sy_config, f), \
			     offsetof(struct sy__config, f), dflt, max }
static const struct {
	const char *field;
	size_t in, out;
	unsigned dflt, max;
} sizes[] = {
	SIZE(burst, BURST_DEFAULT, BURST_MAX),
	SIZE(max_producers, MAX_PRODUCERS_DEFAULT, MAX_PRODUCERS_MAX),
	SIZE(max_servers, MAX_SERVERS_DEFAULT, MAX_SERVERS_MAX),
	SIZE(max_routes, MAX_ROUTES_DEFAULT, MAX_ROUTES_MAX),
	SIZE(max_dead_letters, MAX_DEAD_LETTERS_DEFAULT, MAX_DEAD_LETTERS_MAX),
};
#undef SIZE

int sy__config_resolve(const struct sy_config *in, struct sy__config *out,
		       char *why, size_t whylen)
{
	static const struct sy_config unset = { .display_affinity = -1 };
	struct sy__config cfg = { .allocator = NULL };
	cpu_set_t cpus;
	int pin = 0, idle = 0;
	unsigned i;
	int err;

	if (!in)
		in = &unset;
	cfg.warnings[0] = '\0';
	err = resolve_cpus(in->cpus, &cpus, why, whylen, cfg.warnings,
			   sizeof(cfg.warnings));
	if (!err)
		err = resolve_workers(in->workers, CPU_COUNT(&cpus),
				      &cfg.workers, why, whylen);
	if (!err)
		err = resolve_enum(&pin_setting, (int)in->pin, &pin, why, whylen);
	if (!err)
		err = resolve_enum(&idle_setting, (int)in->idle, &idle, why,
				   whylen);
	cfg.pin = (enum sy_pin)pin;
	cfg.idle = (enum sy_idle)idle;
	if (!err)
		err = resolve_display_affinity(in->display_affinity,
					       &cfg.display_affinity,
					       why, whylen);
	if (!err)
		err = resolve_ring_size(in->ring_size, &cfg.ring_size,
					why, whylen);
	for (i = 0; !err && i < sizeof(sizes) / sizeof(sizes[0]); i++)
		err = resolve_size(sizes[i].field,
				   *(const unsigned *)((const char *)in + sizes[i].in),
				   sizes[i].dflt, sizes[i].max,
				   (unsigned *)((char *)&cfg + sizes[i].out),
				   why, whylen);
	if (!err)
		err = resolve_metrics(in, &cfg, why, whylen);
	if (err)
		return err;

	cfg.allocator = in->allocator;
	cfg.seed = in->seed;
	cfg.clock = in->clock;
	cfg.clock_ctx = in->clock_ctx;
	cfg.on_breaker = in->on_breaker;
	cfg.on_backpressure = in->on_backpressure;
	cfg.on_warning = in->on_warning;
	cfg.callback_ctx = in->callback_ctx;
	if (cfg.pin != SY_PIN_NONE && cfg.workers > (unsigned)CPU_COUNT(&cpus))
		warn(cfg.warnings, sizeof(cfg.warnings),
		     "%u workers pinned to %d CPU%s: workers share CPUs and wait "
		     "for each other (SY_PIN=none leaves it to the scheduler)",
		     cfg.workers, CPU_COUNT(&cpus),
		     CPU_COUNT(&cpus) == 1 ? "" : "s");
	sy__place_workers(&cpus, cfg.pin, cfg.workers, cfg.worker_cpu);
	for (i = cfg.workers; i < SY_MAX_WORKERS; i++)
		cfg.worker_cpu[i] = -1;
	*out = cfg;
	return 0;
}

void sy__place_workers(const cpu_set_t *allowed, enum sy_pin pin,
		       unsigned workers, int *cpu_out)
{
	int cpus[CPU_SETSIZE];
	unsigned n = 0, i;
	int cpu;

	assert(pin == SY_PIN_CLOSE || pin == SY_PIN_SPREAD ||
	       pin == SY_PIN_NONE);
	if (pin == SY_PIN_NONE) {
		for (i = 0; i < workers; i++)
			cpu_out[i] = -1;
		return;
	}
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, allowed))
			cpus[n++] = cpu;
	assert(n > 0);
	for (i = 0; i < workers; i++) {
		if (pin == SY_PIN_SPREAD)
			cpu_out[i] = cpus[(unsigned long)i * n / workers];
		else
			cpu_out[i] = cpus[i % n];
	}
}
