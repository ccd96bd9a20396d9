/* sy-bench (docs/perf.md): options, thread placement, the scenarios. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define DEFAULT_MESSAGES 10000000ull
/* Per overhead run unless --messages is given: 14 variants fit in "all". */
#define OVERHEAD_DEFAULT_MESSAGES 2000000u
#define MEMORY_DEFAULT_MESSAGES 100000000ull
#define MAX_MESSAGES 1000000000000ull

enum exit_status { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

enum scenario_bits {
	RUN_THROUGHPUT = 1 << 0, RUN_LATENCY = 1 << 1, RUN_INSTRUCTIONS = 1 << 2,
	RUN_POLICIES = 1 << 3, RUN_SCALING = 1 << 4, RUN_MEMORY = 1 << 5, RUN_OVERHEAD = 1 << 6,
	RUN_REMOTE = 1 << 7,
	RUN_ALL = RUN_THROUGHPUT | RUN_LATENCY | RUN_OVERHEAD,
};

/* By name; the timed ones (a run function) in the order they run. */
static const struct {
	const char *name;
	unsigned bits;
	scenario_fn *run;
} scenarios[] = {
	{ "throughput", RUN_THROUGHPUT, scenario_throughput },
	{ "latency", RUN_LATENCY, scenario_latency },
	{ "latency", RUN_LATENCY, scenario_open_loop },
	{ "overhead", RUN_OVERHEAD, scenario_overhead },
	{ "policies", RUN_POLICIES, scenario_policies },
	{ "scaling", RUN_SCALING, scenario_scaling },
	{ "memory", RUN_MEMORY, scenario_memory },
	{ "remote", RUN_REMOTE, scenario_remote },
	{ "instructions", RUN_INSTRUCTIONS, NULL }, { "all", RUN_ALL, NULL },
};

/* The options, in the order of specs[]. */
enum opt {
	O_RUNS, O_MESSAGES, O_CPUS, O_JSON, O_CSV, O_INSTRUCTIONS, O_POLICY, O_PRODUCERS,
	O_WORKERS, O_SIZE, O_BURST, O_OVERSUBSCRIBE, O_RATE_FRACTION, O_PLOT, O_METRICS, O_SERVE,
	O_QUIET, O_HELP,
	/* Internal: the child of a callgrind run (instructions.c). */
	O_FIXED_RUN, O_FIXED_VARIANT, O_FIXED_POLICY, O_FIXED_CONFIG, O_N
};

/* Each option: a short form, an argument, and a whole number's range. */
static const struct opt_spec {
	const char *name;
	char letter;
	bool has_arg;
	uint64_t min, max, def;  /* max 0: not a whole number */
} specs[O_N] = {
	[O_RUNS] = { "runs", 'r', true, 1, STATS_MAX_RUNS, 5 },
	[O_MESSAGES] = { "messages", 'n', true, 1, MAX_MESSAGES, DEFAULT_MESSAGES },
	[O_CPUS] = { "cpus", 'c', true }, [O_JSON] = { "json", 'j', true },
	[O_CSV] = { "csv", 0, true }, [O_POLICY] = { "policy", 0, true },
	[O_INSTRUCTIONS] = { "instructions", 0, false },
	[O_PRODUCERS] = { "producers", 0, true, 1, BENCH_MAX_THREADS, 1 },
	[O_WORKERS] = { "workers", 0, true, 1, BENCH_MAX_THREADS, 1 },
	[O_SIZE] = { "size", 0, true, 0, SY_MSG_MAX_SIZE, 16 },
	[O_BURST] = { "burst", 0, true, 1, BENCH_MAX_BURST, 32 },
	[O_OVERSUBSCRIBE] = { "oversubscribe", 0, false },
	[O_RATE_FRACTION] = { "rate-fraction", 0, true },
	[O_PLOT] = { "plot", 0, true }, [O_METRICS] = { "metrics", 0, true },
	[O_SERVE] = { "serve", 0, true, 1, 65535, 0 },
	[O_QUIET] = { "quiet", 'q', false }, [O_HELP] = { "help", 'h', false },
	[O_FIXED_RUN] = { "fixed-run", 0, true, 1, MAX_MESSAGES, 0 },
	[O_FIXED_VARIANT] = { "fixed-variant", 0, true },
	[O_FIXED_POLICY] = { "fixed-policy", 0, true },
	[O_FIXED_CONFIG] = { "fixed-config", 0, true },
};

/* What the command line says: each option's argument ("" for a flag). */
struct options {
	const char *arg[O_N];     /* NULL: not given */
	uint64_t num[O_N];        /* whole numbers, or their defaults */
	double rate_fraction;
	unsigned scenarios;
};

static const char usage_text[] =
"Usage: sy-bench [options] [throughput | latency | overhead | instructions |\n"
"                policies | scaling | memory | remote | all]\n"
"Measure switchyard against raw baselines in the same run. \"all\" (the\n"
"default): throughput, latency, overhead (and instructions with\n"
"--instructions). docs/perf.md has the details.\n\n"
"  -r, --runs R          repeats of each variant (1-%u, default %u)\n"
"  -n, --messages N      messages per run (default %llu; overhead %u;\n"
"                        memory %llu)\n"
"  -c, --cpus LIST       CPUs in taskset syntax (default SY_CPUS, else all)\n"
"  -j, --json FILE       write the results as JSON\n"
"      --csv FILE        write the results as CSV\n"
"      --plot DIR        write PNG charts (gnuplot) and their data\n"
"      --metrics FILE    write a dedicated run's metrics: .json, .csv, .prom,\n"
"                        or .erl\n"
"      --serve PORT      serve each engine's metrics on 127.0.0.1:PORT\n"
"      --policy NAME     route of the engine rows: direct (default) or, over\n"
"                        4 servers of one worker, round_robin, weighted,\n"
"                        least_connections, adaptive, hash, random, failover\n"
"      --producers P     producer threads of the engine rows (1-64)\n"
"      --workers W       engine workers, a server each (1-64)\n"
"      --size BYTES      payload of engine messages (default 16)\n"
"      --burst B         messages per sy_msg_send_burst (1-512, default 32)\n"
"      --instructions    count instructions per message (callgrind)\n"
"      --rate-fraction F engine-open-loop's share of engine-rtt's rate\n"
"                        (0 < F <= 1, default 0.5)\n"
"      --oversubscribe   scaling: one step beyond the CPUs\n"
"  -q, --quiet           no progress on stderr\n"
"  -h, --help            show this help\n"
#ifdef SY_BENCH_HAVE_ZMQ
"\nBuilt with libzmq: throughput includes the zmq-inproc baseline.\n"
#endif
;

static int usage_error(const char *fmt, const char *arg)
{
	char what[256];

	snprintf(what, sizeof(what), fmt, arg);
	return bench_fail(-EINVAL, "%s\nTry 'sy-bench --help'.", what);
}

/* Whether @p name of --@p option is a built-in policy; else say so. */
static bool policy_ok(const char *option, const char *name)
{
	if (!name || engine_policy_route(name))
		return true;
	fprintf(stderr, "sy-bench: --%s: unknown policy '%s' (built in: direct", option, name);
	for (unsigned i = 0; i < PICKING_POLICIES; i++)
		fprintf(stderr, ", %s", engine_picking_policy(i));
	fprintf(stderr, ")\nTry 'sy-bench --help'.\n");
	return false;
}

/* The options that need more than a range. @return 0; -EINVAL. */
static int check_options(struct options *o)
{
	const char **a = o->arg, *f = a[O_RATE_FRACTION];
	char *end = NULL;

	if (f) {
		errno = 0;
		o->rate_fraction = strtod(f, &end);
		if (errno || end == f || *end || !(o->rate_fraction > 0 && o->rate_fraction <= 1))
			return usage_error("--rate-fraction: '%s' is not a number in (0, 1]", f);
	}
	if (a[O_METRICS] && !metrics_file_known(a[O_METRICS]))
		return usage_error("--metrics %s: the name must end in .json, .csv, .prom or .erl "
				   "(the export format)", a[O_METRICS]);
	if (!policy_ok("policy", a[O_POLICY]) || !policy_ok("fixed-policy", a[O_FIXED_POLICY]))
		return -EINVAL;
	if (a[O_FIXED_CONFIG] && !engine_config_find(a[O_FIXED_CONFIG]))
		return usage_error("--fixed-config: unknown configuration '%s'", a[O_FIXED_CONFIG]);
	if (!a[O_FIXED_RUN] != !a[O_FIXED_VARIANT])
		return usage_error("%s", "--fixed-run and --fixed-variant go together");
	if ((a[O_FIXED_POLICY] || a[O_FIXED_CONFIG]) && !a[O_FIXED_RUN])
		return usage_error("%s", "--fixed-policy and --fixed-config need --fixed-run");
	if ((o->num[O_PRODUCERS] > 1 || o->num[O_WORKERS] > 1) && a[O_POLICY] &&
	    strcmp(a[O_POLICY], "direct") && strcmp(a[O_POLICY], SPREAD_POLICY))
		return usage_error("--policy %s: with --producers or --workers above 1 the route "
				   "is round_robin", a[O_POLICY]);
	return 0;
}

/* @return 0; 1 for --help; -EINVAL (explained on stderr). */
static int parse_options(int argc, char **argv, struct options *o)
{
	struct option longs[O_N + 1] = { { NULL, 0, NULL, 0 } };
	char shorts[32] = ":", *end;
	const struct opt_spec *s;
	unsigned k = 0;
	int opt;

	*o = (struct options){ .rate_fraction = 0.5, .scenarios = RUN_ALL };
	for (unsigned i = 0; i < O_N; i++) {
		o->num[i] = specs[i].def;
		/* getopt returns the letter, or 256 + the option's index. */
		longs[i] = (struct option){ specs[i].name, specs[i].has_arg, NULL, 256 + (int)i };
		if (!specs[i].letter)
			continue;
		longs[i].val = specs[i].letter;
		snprintf(shorts + strlen(shorts), 3, "%c%s", specs[i].letter,
			 specs[i].has_arg ? ":" : "");
	}
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (opt == ':')
			return usage_error("%s needs a value", argv[optind - 1]);
		if (opt == '?')
			return usage_error("bad option '%s'", argv[optind - 1]);
		/* A short form's letter, else 256 + the option. */
		for (k = opt < 256 ? 0 : (unsigned)opt - 256;
		     opt < 256 && specs[k].letter != opt; k++)
			continue;
		s = &specs[k];
		o->arg[k] = optarg ? optarg : "";
		if (!s->max)
			continue;
		/* A whole number: decimal digits only, in range. */
		errno = 0;
		o->num[k] = strtoull(optarg, &end, 10);
		if (*optarg < '0' || *optarg > '9' || *end || errno || o->num[k] < s->min ||
		    o->num[k] > s->max)
			return bench_fail(-EINVAL, "--%s: '%s' is not a number from %" PRIu64
					  " to %" PRIu64 "\nTry 'sy-bench --help'.", s->name,
					  optarg, s->min, s->max);
	}
	if (o->arg[O_HELP])
		return 1;
	for (k = 0; optind < argc && k < ARRAY_SIZE(scenarios); k++)
		if (!strcmp(scenarios[k].name, argv[optind]))
			o->scenarios = scenarios[k].bits;
	if (optind < argc && o->scenarios == RUN_ALL && strcmp(argv[optind], "all"))
		return usage_error("unknown scenario '%s'", argv[optind]);
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	/* The policies scenario counts its own instructions. */
	if (o->arg[O_INSTRUCTIONS] && !(o->scenarios & RUN_POLICIES))
		o->scenarios |= RUN_INSTRUCTIONS;
	return check_options(o);
}

/* Place the producer and the consumer on the two lowest CPUs of @p list
 * (named @p source in messages; NULL: all allowed) that the process may use. */
static int choose_cpus(const char *source, const char *list, struct bench_ctx *ctx)
{
	cpu_set_t allowed, wanted;
	char why[256];

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return bench_fail(-errno, "sched_getaffinity: %s", strerror(errno));
	wanted = allowed;
	if (list && bench_parse_cpus(list, &wanted, why, sizeof(why)) < 0)
		return bench_fail(-EINVAL, "%s: %s", source, why);
	CPU_AND(&wanted, &wanted, &allowed);
	if (!CPU_COUNT(&wanted))
		return bench_fail(-EINVAL, "%s: none of the CPUs in \"%s\" is allowed to this "
				  "process", source, list);
	ctx->cpus = wanted;
	ctx->producer_cpu = bench_nth_cpu(&wanted, 0);
	ctx->consumer_cpu = CPU_COUNT(&wanted) > 1 ? bench_nth_cpu(&wanted, 1) : ctx->producer_cpu;
	return 0;
}

/* Open the file of option @p i, if given; @return false if it failed. */
static bool open_output(const struct options *o, enum opt i, FILE **f)
{
	*f = o->arg[i] ? fopen(o->arg[i], "w") : NULL;
	if (o->arg[i] && !*f)
		bench_fail(0, "--%s %s: %s", specs[i].name, o->arg[i], strerror(errno));
	return !o->arg[i] || *f;
}

/* Unless @p rc says the run failed, write @p rep to @p f; close @p f. */
static int write_output(int rc, const char *path, FILE *f,
			int (*write)(const struct report *, FILE *), const struct report *rep)
{
	if (f && !rc)
		rc = write(rep, f);
	if (f && fclose(f) && !rc)
		rc = -errno;
	if (f && rc < 0)
		bench_fail(rc, "writing %s: %s", path, strerror(-rc));
	return rc;
}

static int run_scenarios(const struct options *o, const struct bench_ctx *ctx, struct report *rep)
{
	int rc;

	rc = probe_round_trip(ctx, &rep->probe_before_ns);
	for (unsigned i = 0; !rc && scenarios[i].run; i++)
		if (o->scenarios & scenarios[i].bits)
			rc = scenarios[i].run(ctx, rep);
	if (!rc)
		rc = probe_round_trip(ctx, &rep->probe_after_ns);
	rep->has_probe = !rc;
	/* Counted, not timed: after the probe. */
	if (!rc && (o->scenarios & RUN_INSTRUCTIONS))
		rc = scenario_instructions(ctx, rep);
	if (!rc && (o->scenarios & RUN_POLICIES) && o->arg[O_INSTRUCTIONS])
		rc = instructions_policies(ctx, rep);
	else if (!rc && (o->scenarios & RUN_POLICIES))
		report_add_note(rep, "policies: instructions per pick skipped (add --instructions "
				"to count them with callgrind)");
	return rc;
}

int main(int argc, char **argv)
{
	struct bench_ctx ctx = { .engine = ENGINE_CONFIG_DEFAULT };
	const char *env = getenv("SY_CPUS"), **a;
	FILE *json = NULL, *csv = NULL, *metrics = NULL;
	static struct report rep;
	struct options o;
	int rc;

	rc = parse_options(argc, argv, &o);
	if (rc > 0)
		printf(usage_text, STATS_MAX_RUNS, (unsigned)specs[O_RUNS].def, DEFAULT_MESSAGES,
		       OVERHEAD_DEFAULT_MESSAGES, MEMORY_DEFAULT_MESSAGES);
	if (rc)
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	a = o.arg;
	ctx.policy = a[O_POLICY] ? a[O_POLICY] : "direct";
	if (a[O_CPUS] && choose_cpus("--cpus", a[O_CPUS], &ctx) < 0)
		return EXIT_USAGE;
	if (a[O_FIXED_RUN]) {
		/* The child of a callgrind run: counted, not timed. */
		if (a[O_FIXED_CONFIG])
			ctx.engine = engine_config_find(a[O_FIXED_CONFIG]);
		ctx.policy = a[O_FIXED_POLICY] ? a[O_FIXED_POLICY] : "direct";
		if (!a[O_CPUS] && choose_cpus("--cpus", NULL, &ctx) < 0)
			return EXIT_USAGE;
		rc = instructions_fixed_run(&ctx, a[O_FIXED_VARIANT], o.num[O_FIXED_RUN]);
		return rc < 0 ? EXIT_FAILED : EXIT_OK;
	}
	if (engine_preflight() < 0 ||
	    (!a[O_CPUS] && choose_cpus("SY_CPUS", env && *env ? env : NULL, &ctx) < 0))
		return EXIT_FAILED;
	rc = a[O_POLICY] ? engine_policy_check(&ctx, a[O_POLICY]) : 0;
	if (rc == -ENOENT)
		bench_fail(rc, "--policy: policy '%s' is not in this build of switchyard "
			   "(sy_route_add refused it with -EINVAL)", a[O_POLICY]);
	if (rc < 0)
		return rc == -ENOENT ? EXIT_USAGE : EXIT_FAILED;
	/* Exiting closes the files opened before a failed one. */
	if (!open_output(&o, O_JSON, &json) || !open_output(&o, O_CSV, &csv) ||
	    !open_output(&o, O_METRICS, &metrics))
		return EXIT_USAGE;
	ctx.runs = (unsigned)o.num[O_RUNS];
	ctx.messages = o.num[O_MESSAGES];
	ctx.overhead_messages = a[O_MESSAGES] ? ctx.messages : OVERHEAD_DEFAULT_MESSAGES;
	if (o.scenarios == RUN_MEMORY && !a[O_MESSAGES])
		ctx.messages = MEMORY_DEFAULT_MESSAGES;
	ctx.producers = (unsigned)o.num[O_PRODUCERS];
	ctx.workers = (unsigned)o.num[O_WORKERS];
	ctx.payload = (unsigned)o.num[O_SIZE];
	ctx.burst = (unsigned)o.num[O_BURST];
	ctx.serve_port = (unsigned)o.num[O_SERVE];
	ctx.oversubscribe = a[O_OVERSUBSCRIBE];
	ctx.rate_fraction = o.rate_fraction;
	ctx.progress = !a[O_QUIET] && isatty(STDERR_FILENO);
	bench_print_thread_map(&ctx);
	report_init(&rep, &ctx);
	rc = run_scenarios(&o, &ctx, &rep);
	/* It closes the file; exiting does after a failed run. */
	if (metrics && !rc)
		rc = metrics_file_write(&ctx, a[O_METRICS], metrics, &rep);
	if (!rc)
		rc = report_print_table(&rep, stdout);
	if (!rc && a[O_PLOT])
		rc = plot_report(&rep, a[O_PLOT], stdout);
	rc = write_output(rc, a[O_JSON], json, report_write_json, &rep);
	rc = write_output(rc, a[O_CSV], csv, report_write_csv, &rep);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}
