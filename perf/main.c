/*
 * sy-bench: the performance harness of switchyard.
 *
 * Usage: sy-bench [options]
 *                 [throughput | latency | overhead | instructions |
 *                  policies | scaling | memory | all]
 *
 *   throughput    one producer thread to one consumer, --messages per run:
 *                 the raw baselines ck-spsc (ck_ring, one pointer at a time),
 *                 batched-limit (a ring that caches indices and publishes
 *                 every 32: the practical limit) and mutex-queue (mutex and
 *                 condition variables), zmq-inproc (ZeroMQ inproc
 *                 PUSH/PULL, one zmq_msg of --size bytes per message; only
 *                 in a build with libzmq, meson option zmq), then
 *                 engine-single (sy_send) and engine-burst32
 *                 (sy_send_burst) through the route of --policy, with the
 *                 engine's ratio to each baseline.
 *   latency       round trips with one request outstanding: ck-pingpong over
 *                 two ck rings, engine-rtt with sy_request()/sy_reply()
 *                 (always policy direct); 100,000 round trips per run (fewer
 *                 if --messages is lower). Then engine-open-loop: as many
 *                 requests, sent on a fixed schedule at --rate-fraction of
 *                 engine-rtt's median rate (request i due at t0 + i / rate,
 *                 at most 512 outstanding), replies polled between sends,
 *                 each latency counted from the request's intended send
 *                 time (coordinated omission corrected, as wrk2); its
 *                 worker spins like engine-rtt's unless SY_IDLE is set.
 *   overhead      what metrics, a circuit breaker and backpressure cost:
 *                 engine-single and engine-burst<B> (as in throughput)
 *                 with each engine configuration, interleaved: bare
 *                 (metrics off, no breaker, backpressure off), metrics
 *                 (the library's defaults), metrics-every, metrics-1in16,
 *                 metrics-1in256 (latency_sample 1, 16, 256), reliability
 *                 (metrics off, a default breaker on the server,
 *                 backpressure reject on the route) and all (metrics,
 *                 breaker and backpressure); each row's median rate over
 *                 bare's with the same send call, the spread of the
 *                 per-run ratios, the best run over bare's best, and the
 *                 target (metrics rows >= 0.90, reliability >= 0.85).
 *                 2,000,000 messages per run unless --messages is given.
 *   instructions  instructions per routed message of the engine variants,
 *                 through the route of --policy, from callgrind:
 *                 (Ir(2N) - Ir(N)) / N, N = 100,000; each send call in
 *                 the default configuration (engine-single,
 *                 engine-burst32) and as <send>/bare, /metrics-every,
 *                 /reliability and /all, with the difference to bare.
 *   policies      engine-burst32 through a route of each built-in policy
 *                 that picks among servers (round_robin, weighted,
 *                 least_connections, adaptive, hash, random, failover: all
 *                 but direct), 4 servers of the one worker, --messages per
 *                 run, with each policy's ratio to round_robin. With
 *                 --instructions, also each policy's instructions per
 *                 message from callgrind as above, and the difference to
 *                 round_robin's ("extra/pick"). A policy this build lacks
 *                 is skipped with a note. Not part of "all"; ignores
 *                 --policy.
 *   scaling       k producers x k workers for k = 1, 2, 4, ... up to half
 *                 the allowed CPUs (--cpus or SY_CPUS; at least k = 1),
 *                 producer and worker j on the CPUs 2j and 2j+1 of the
 *                 set; one more step, oversubscribed, with --oversubscribe.
 *                 engine-burst32 through round_robin over one server per
 *                 worker, each producer sending --messages per run; each
 *                 k's median rate, speedup over k = 1 and efficiency
 *                 (speedup / k). Not part of "all".
 *   memory        one producer, one worker, a counting sy_allocator in the
 *                 engine's configuration: after a warm-up of 10,000,000
 *                 messages, --messages (here default 100,000,000: about
 *                 2 s per 100 M at 80 M/s) with engine-burst<B>, then as
 *                 many with engine-single; RSS (/proc/self/statm), pool
 *                 counters (sy_engine_stats) and allocator calls before
 *                 and after each phase: growth per million messages and
 *                 allocator calls per message (0 in steady state). Runs
 *                 once, whatever --runs says. Not part of "all".
 *   all           throughput, latency and overhead (the default), plus
 *                 instructions with --instructions.
 *
 * Every engine states its configuration (perf/engine_config.h); all but the
 * overhead scenario's use the library's defaults, metrics on, as a user
 * gets them.
 *
 * Variants run interleaved (A B C A B C ...) --runs times; the table shows
 * the median, min and max. Compare figures only inside one invocation: the
 * host moves virtual CPUs, which is why a core-to-core round trip between
 * the two CPUs is probed before and after and reported with the results.
 *
 * Options:
 *   --runs R        repeats of each variant (1 to 1000; default 5)
 *   --messages N    messages per throughput run (default 10000000)
 *   --cpus LIST     CPUs to use, taskset syntax ("0-3,8,10-14:2"); the
 *                   producer runs on the lowest allowed CPU of the set,
 *                   the consumer (the engine's one worker) on the next one,
 *                   both on the same CPU if the set has one. Default:
 *                   SY_CPUS, else the allowed CPUs.
 *   --json FILE     write the results as JSON
 *   --csv FILE      write the results as CSV, one line per result
 *   --policy NAME   the policy of engine-single's and engine-burst32's route:
 *                   direct (the default: one server, figures comparable
 *                   with earlier runs), or round_robin, weighted (weights
 *                   4,3,2,1), least_connections, adaptive, hash (each
 *                   message keyed with its sequence number), random or
 *                   failover over 4 servers, all owned by the one worker
 *                   (so the messages still go from the producer's CPU to
 *                   the consumer's). An unknown name, or one this build of
 *                   the library lacks, is a bad option.
 *   --instructions  include the instructions scenario in "all" (slow); with
 *                   "policies", count each policy's instructions instead
 *   --producers P   throughput: producer threads of the engine rows
 *                   (1 to 64, default 1)
 *   --workers W     throughput: engine workers, one server each (1 to 64,
 *                   default 1). With P or W above 1 the engine rows route
 *                   round_robin over the W servers (--policy must be
 *                   direct or round_robin), each producer sends N/P
 *                   messages, and the threads are spread over the allowed
 *                   CPUs (producer and worker j on the CPUs 2j and 2j+1,
 *                   the rest after them, wrapping around; more threads
 *                   than CPUs is allowed). The baselines stay 1x1.
 *   --size BYTES    payload of every engine message (0 to 1048576,
 *                   default 16)
 *   --burst B       messages per sy_send_burst() of the throughput and
 *                   memory scenarios (1 to 512, default 32); the variant
 *                   is named engine-burst<B>
 *   --oversubscribe scaling: add one step with twice the pairs of the last
 *   --rate-fraction F  latency: the rate engine-open-loop offers, as a
 *                   fraction of engine-rtt's median rate (0 < F <= 1,
 *                   default 0.5)
 *   --plot DIR      after the table, write PNG charts with gnuplot into DIR
 *                   (created if missing): throughput.png (throughput and
 *                   policies rows: median, min/max bars, log y),
 *                   latency.png (percentiles of every latency row, log y),
 *                   scaling.png (with scaling rows: rate against producers
 *                   + workers), overhead.png (with overhead rows: ratio to
 *                   bare, per-run spread, targets), with their data files
 *                   and sy-bench.gp; "plot: skipped (gnuplot not found)"
 *                   without gnuplot
 *   --metrics FILE  after the scenarios, a dedicated engine-single run
 *                   (default configuration, route of --policy, 1x1,
 *                   min(--messages, 1000000) messages); its final snapshot
 *                   (sy_metrics_refresh, sy_metrics_snapshot) written by
 *                   sy_snapshot_format in the format of FILE's extension:
 *                   .json, .csv, .prom (Prometheus text), .erl (Erlang
 *                   terms); any other is a bad option
 *   --quiet         no progress on stderr (shown only on a terminal)
 *   --help          this text
 *
 * Output: a table on stdout, then the probe. --json writes
 *   {"tool", "version", "machine": {"cpus", "model", "probe_rtt_ns":
 *   {"before", "after"}, ...}, "results": [{"scenario", "variant",
 *   "policy", "producers", "workers", "messages", "msgs_per_sec":
 *   {"median", "min", "max", "runs"}, "latency_ns": {"p50", "p90", "p99",
 *   "p999", "max"}, "instructions_per_msg", "extra_instructions_vs":
 *   {"round_robin": difference}, "ratio_vs": {"<baseline>": median /
 *   median}}], "notes": ["what was skipped, and why"]}
 * with each part only where measured (policy is on engine rows only, the
 * policy of their route; msgs_per_sec counts round trips in latency rows;
 * ratio_vs is on engine rows only; in policies rows it is to round_robin,
 * and extra_instructions_vs is there only). Keys may be added, never
 * renamed. --csv has the same fields, one line per result.
 * Scaling rows add "speedup" and "efficiency"; memory rows add
 * "warmup_messages", "rss_kib": {"before", "after"}, "growth_kib",
 * "growth_kib_per_million", "allocs_per_msg", "frees_per_msg",
 * "alloc_bytes", "pool_bytes", "pool_bytes_before", "pool_slabs".
 * engine-open-loop rows add "offered_per_sec" and "rate_fraction". Engine
 * rows add "engine": {"config", "metrics", "latency_sample", "breaker",
 * "backpressure"}; overhead rows "ratio_vs": {"bare"}, "paired_ratio":
 * {"vs", "median", "min", "max"}, "best_ratio_vs": {"bare"} and, where
 * there is one, "target": {"ratio_vs", "min", "met"}; instructions rows
 * other than bare's "extra_instructions_vs": {"bare": difference}. Every
 * report ends its results with two rows that are NOT measured: the seed's
 * published figures, {"scenario": "reference", "variant":
 * "seed-reference", "reference": true, "producers" (1 or 50),
 * "msgs_per_sec" (runs 0), "latency_bound_ns": {"p99"} (p99 below it),
 * "informative_ratios": {"<scenario>/<variant>": engine median / figure},
 * "informative_p99_vs_bound": {"<scenario>/<variant>": p99 / bound}};
 * the table shows them in a section of their own. They are not in --csv.
 *
 * --fixed-run N --fixed-variant V [--fixed-policy P] [--fixed-config C] is
 * internal: the child that the instructions and policies scenarios run
 * under callgrind.
 *
 * SY_DISPLAY_AFFINITY=1 also makes sy-bench print its own threads' CPUs
 * (producer, consumer, control) on stderr at start.
 * Other SY_* variables (SY_IDLE, ...) reach the engine as usual; a bad one
 * stops sy-bench before it measures anything. Exit status: 0; 1 when a run
 * or the environment fails; 2 for bad options.
 *
 * Examples: sy-bench --runs 3 --messages 2000000 --json results.json
 *           sy-bench --policy weighted throughput
 *           sy-bench --runs 3 --instructions policies
 *           sy-bench --rate-fraction 0.25 --plot charts latency
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "affinity.h"
#include "bench.h"
#include "engine_runs.h"
#include "instructions.h"
#include "memory_scenario.h"
#include "metrics_file.h"
#include "multi_runs.h"
#include "open_loop.h"
#include "overhead.h"
#include "plot.h"
#include "probe.h"
#include "report.h"
#include "scaling.h"
#include "scenarios.h"
#include "stats.h"
#include "thread_map.h"

/* Pauses before a waiter yields, when producer and consumer have a CPU each. */
#define SPIN_LIMIT 256

/* Messages in flight in a fixed run: whole bursts, far below a ring's 1023. */
#define FIXED_RUN_WINDOW 512

/*
 * The metrics collector's period in a fixed run: a minute (the longest the
 * default retention allows), so that it does not wake during the run; its
 * work is per period, not per message, and the time a callgrind run takes
 * would make its count vary.
 */
#define FIXED_RUN_METRICS_INTERVAL_MS 60000u

#define DEFAULT_RUNS 5
#define DEFAULT_MESSAGES 10000000ull
#define MEMORY_DEFAULT_MESSAGES 100000000ull
#define MAX_MESSAGES 1000000000000ull

enum exit_status { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

enum scenario_bits {
	RUN_THROUGHPUT = 1 << 0,
	RUN_LATENCY = 1 << 1,
	RUN_INSTRUCTIONS = 1 << 2,
	RUN_POLICIES = 1 << 3,
	RUN_SCALING = 1 << 4,
	RUN_MEMORY = 1 << 5,
	RUN_OVERHEAD = 1 << 6,
	RUN_ALL = RUN_THROUGHPUT | RUN_LATENCY | RUN_OVERHEAD,
};

/* Options without a short form. */
enum long_only {
	OPT_CSV = 256,
	OPT_INSTRUCTIONS,
	OPT_POLICY,
	OPT_FIXED_RUN,
	OPT_FIXED_VARIANT,
	OPT_FIXED_POLICY,
	OPT_PRODUCERS,
	OPT_WORKERS,
	OPT_SIZE,
	OPT_BURST,
	OPT_OVERSUBSCRIBE,
	OPT_RATE_FRACTION,
	OPT_PLOT,
	OPT_METRICS,
	OPT_FIXED_CONFIG,
};

struct options {
	unsigned runs;
	uint64_t messages;
	const char *cpus;
	const char *json;
	const char *csv;
	bool quiet;
	bool instructions;
	unsigned scenarios;
	const char *policy;          /* --policy, NULL: not given */
	uint64_t fixed_run;          /* messages of a fixed run, 0: none */
	const char *fixed_variant;
	const char *fixed_policy;    /* NULL: direct */
	const char *fixed_config;    /* NULL: the default configuration */
	bool messages_set;           /* --messages given */
	unsigned producers;
	unsigned workers;
	unsigned payload;            /* --size */
	unsigned burst;
	bool oversubscribe;
	double rate_fraction;        /* of engine-open-loop */
	const char *plot;            /* --plot DIR, NULL: none */
	const char *metrics;         /* --metrics FILE, NULL: none */
	enum sy_format metrics_format; /* from its extension */
};

static const struct option long_options[] = {
	{ "runs", required_argument, NULL, 'r' },
	{ "messages", required_argument, NULL, 'n' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "json", required_argument, NULL, 'j' },
	{ "csv", required_argument, NULL, OPT_CSV },
	{ "instructions", no_argument, NULL, OPT_INSTRUCTIONS },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "producers", required_argument, NULL, OPT_PRODUCERS },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "burst", required_argument, NULL, OPT_BURST },
	{ "oversubscribe", no_argument, NULL, OPT_OVERSUBSCRIBE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	/* Internal: the child side of the instructions scenario. */
	{ "rate-fraction", required_argument, NULL, OPT_RATE_FRACTION },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "fixed-run", required_argument, NULL, OPT_FIXED_RUN },
	{ "fixed-variant", required_argument, NULL, OPT_FIXED_VARIANT },
	{ "fixed-policy", required_argument, NULL, OPT_FIXED_POLICY },
	{ "fixed-config", required_argument, NULL, OPT_FIXED_CONFIG },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: sy-bench [options]\n"
		"                [throughput | latency | overhead | instructions |\n"
		"                 policies | scaling | memory | all]\n"
		"\n"
		"Measure switchyard against raw baselines in the same run.\n"
		"\"all\" (the default) is throughput, latency and overhead (each\n"
		"engine configuration against bare: metrics off, no breaker, no\n"
		"backpressure); \"policies\" compares the built-in policies\n"
		"(engine-burst32, 4 servers, ratio to round_robin) and runs only\n"
		"when named.\n"
		"\n"
		"  -r, --runs R        repeats of each variant (1-%u, default %u)\n"
		"  -n, --messages N    messages per throughput run (default %llu;\n"
		"                      overhead: %u)\n"
		"  -c, --cpus LIST     CPUs in taskset syntax: producer on the lowest,\n"
		"                      consumer on the next (default: SY_CPUS, else\n"
		"                      the allowed CPUs)\n"
		"  -j, --json FILE     write the results as JSON\n"
		"      --csv FILE      write the results as CSV\n"
		"      --policy NAME   route engine-single and engine-burst32 with NAME:\n"
		"                      direct (default, one server), round_robin,\n"
		"                      weighted (4,3,2,1), least_connections, adaptive,\n"
		"                      hash (key: sequence number), random or failover\n"
		"                      (4 servers, all on the one worker)\n"
		"      --instructions  add instructions per message (callgrind) to all;\n"
		"                      with policies, count each policy's extra\n"
		"                      instructions per pick against round_robin\n"
		"      --rate-fraction F  engine-open-loop (latency) offers F (0 < F\n"
		"                      <= 1, default 0.5) of engine-rtt's rate\n"
		"      --plot DIR      write PNG charts (gnuplot) and their data to DIR\n"
		"      --metrics FILE  write the final metrics snapshot of a dedicated\n"
		"                      engine run to FILE: .json, .csv, .prom\n"
		"                      (Prometheus) or .erl (Erlang terms)\n"
		"      --producers P   producer threads of the engine rows (1-64, default 1)\n"
		"      --workers W     engine workers, one server each (1-64, default 1);\n"
		"                      above 1x1 the route is round_robin over them\n"
		"      --size BYTES    payload of engine messages (default 16)\n"
		"      --burst B       messages per sy_send_burst (1-512, default 32)\n"
		"      --oversubscribe scaling: one step beyond the CPUs\n"
		"\"scaling\" (k x k pairs up to the CPUs) and \"memory\" (RSS and\n"
		"allocations around 100,000,000 messages by default) run only when\n"
		"named.\n"
		"  -q, --quiet         no progress on stderr\n"
		"  -h, --help          show this help\n",
		STATS_MAX_RUNS, DEFAULT_RUNS, DEFAULT_MESSAGES,
		OVERHEAD_DEFAULT_MESSAGES);
#ifdef SY_BENCH_HAVE_ZMQ
	fprintf(out, "\nBuilt with libzmq: throughput includes the zmq-inproc "
		"baseline.\n");
#endif
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sy-bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'sy-bench --help'.\n");
	return -EINVAL;
}

/* @p name of @p option if it is a built-in policy, else a usage error. */
static int parse_policy(const char *option, const char *name,
			const char **out)
{
	if (engine_policy_known(name)) {
		*out = name;
		return 0;
	}
	fprintf(stderr, "sy-bench: %s: unknown policy '%s' (built in: direct",
		option, name);
	for (unsigned i = 0; i < ENGINE_PICKING_POLICIES; i++)
		fprintf(stderr, ", %s", engine_picking_policy(i));
	fprintf(stderr, ")\nTry 'sy-bench --help'.\n");
	return -EINVAL;
}

/* A decimal number in [min, max], nothing else. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min)
		return false;
	*out = v;
	return true;
}

/* A decimal fraction in (0, 1], nothing else. */
static bool parse_fraction(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0 && v <= 1))
		return false;
	*out = v;
	return true;
}

static int parse_scenario(const char *name, struct options *o)
{
	if (!strcmp(name, "throughput"))
		o->scenarios = RUN_THROUGHPUT;
	else if (!strcmp(name, "latency"))
		o->scenarios = RUN_LATENCY;
	else if (!strcmp(name, "instructions"))
		o->scenarios = RUN_INSTRUCTIONS;
	else if (!strcmp(name, "policies"))
		o->scenarios = RUN_POLICIES;
	else if (!strcmp(name, "scaling"))
		o->scenarios = RUN_SCALING;
	else if (!strcmp(name, "memory"))
		o->scenarios = RUN_MEMORY;
	else if (!strcmp(name, "overhead"))
		o->scenarios = RUN_OVERHEAD;
	else if (!strcmp(name, "all"))
		o->scenarios = RUN_ALL;
	else
		return usage_error("unknown scenario '%s'", name);
	return 0;
}

/* @return 0; 1 for --help; -EINVAL (explained on stderr). */
static int parse_options(int argc, char **argv, struct options *o)
{
	uint64_t v;
	int opt;

	*o = (struct options){
		.runs = DEFAULT_RUNS,
		.rate_fraction = OPEN_LOOP_DEFAULT_FRACTION,
		.messages = DEFAULT_MESSAGES,
		.scenarios = RUN_ALL,
		.producers = 1,
		.workers = 1,
		.payload = BENCH_DEFAULT_PAYLOAD,
		.burst = BENCH_DEFAULT_BURST,
	};
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":r:n:c:j:qh", long_options,
				  NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (!parse_u64(optarg, 1, STATS_MAX_RUNS, &v))
				return usage_error("--runs: '%s' is not a "
						   "number from 1 to 1000",
						   optarg);
			o->runs = (unsigned)v;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, MAX_MESSAGES, &o->messages))
				return usage_error("--messages: '%s' is not a "
						   "number from 1 to 10^12",
						   optarg);
			o->messages_set = true;
			break;
		case 'c':
			o->cpus = optarg;
			break;
		case 'j':
			o->json = optarg;
			break;
		case OPT_CSV:
			o->csv = optarg;
			break;
		case OPT_INSTRUCTIONS:
			o->instructions = true;
			break;
		case OPT_RATE_FRACTION:
			if (!parse_fraction(optarg, &o->rate_fraction))
				return usage_error("--rate-fraction: '%s' is "
						   "not a number in (0, 1]",
						   optarg);
			break;
		case OPT_PLOT:
			o->plot = optarg;
			break;
		case OPT_METRICS:
			if (metrics_file_format(optarg, &o->metrics_format) < 0)
				return usage_error("--metrics %s: the name must "
						   "end in .json, .csv, .prom or "
						   ".erl (the export format)",
						   optarg);
			o->metrics = optarg;
			break;
		case OPT_PRODUCERS:
		case OPT_WORKERS:
			if (!parse_u64(optarg, 1, MULTI_MAX_THREADS, &v))
				return usage_error("%s: not a number from 1 "
						   "to 64", argv[optind - 1]);
			*(opt == OPT_PRODUCERS ? &o->producers : &o->workers) =
				(unsigned)v;
			break;
		case OPT_SIZE:
			if (!parse_u64(optarg, 0, SY_MSG_MAX_SIZE, &v))
				return usage_error("--size: '%s' is not a "
						   "number from 0 to 1048576",
						   optarg);
			o->payload = (unsigned)v;
			break;
		case OPT_BURST:
			if (!parse_u64(optarg, 1, BENCH_MAX_BURST, &v))
				return usage_error("--burst: '%s' is not a "
						   "number from 1 to 512",
						   optarg);
			o->burst = (unsigned)v;
			break;
		case OPT_OVERSUBSCRIBE:
			o->oversubscribe = true;
			break;
		case OPT_POLICY:
			if (parse_policy("--policy", optarg, &o->policy) < 0)
				return -EINVAL;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			return 1;
		case OPT_FIXED_RUN:
			if (!parse_u64(optarg, 1, MAX_MESSAGES, &o->fixed_run))
				return usage_error("--fixed-run: bad count "
						   "'%s'", optarg);
			break;
		case OPT_FIXED_VARIANT:
			o->fixed_variant = optarg;
			break;
		case OPT_FIXED_CONFIG:
			if (!engine_config_find(optarg))
				return usage_error("--fixed-config: unknown "
						   "configuration '%s'", optarg);
			o->fixed_config = optarg;
			break;
		case OPT_FIXED_POLICY:
			if (parse_policy("--fixed-policy", optarg,
					 &o->fixed_policy) < 0)
				return -EINVAL;
			break;
		case ':':
			return usage_error("%s needs a value",
					   argv[optind - 1]);
		default:
			return usage_error("bad option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind < argc && parse_scenario(argv[optind++], o) < 0)
		return -EINVAL;
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* The policies scenario counts its own instructions. */
	if (o->instructions && !(o->scenarios & RUN_POLICIES))
		o->scenarios |= RUN_INSTRUCTIONS;
	if (!o->fixed_run != !o->fixed_variant)
		return usage_error("%s", "--fixed-run and --fixed-variant go "
				   "together");
	if (o->fixed_policy && !o->fixed_run)
		return usage_error("%s", "--fixed-policy needs --fixed-run");
	if (o->fixed_config && !o->fixed_run)
		return usage_error("%s", "--fixed-config needs --fixed-run");
	if ((o->producers > 1 || o->workers > 1) && o->policy &&
	    strcmp(o->policy, "direct") && strcmp(o->policy, MULTI_POLICY))
		return usage_error("--policy %s: with --producers or --workers "
				   "above 1 the route is round_robin",
				   o->policy);
	return 0;
}

/*
 * Place the producer and the consumer on the two lowest CPUs of @p list
 * (named @p source in messages; NULL: all allowed) that the process may use.
 */
static int choose_cpus(const char *source, const char *list,
		       struct bench_ctx *ctx, unsigned *n_allowed)
{
	cpu_set_t allowed, wanted;
	char why[256];
	int rc;

	rc = affinity_allowed(&allowed);
	if (rc < 0) {
		fprintf(stderr, "sy-bench: sched_getaffinity: %s\n",
			strerror(-rc));
		return rc;
	}
	*n_allowed = (unsigned)CPU_COUNT(&allowed);
	if (list) {
		rc = affinity_parse_cpulist(list, &wanted, why, sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "sy-bench: %s: %s\n", source, why);
			return rc;
		}
		CPU_AND(&wanted, &wanted, &allowed);
		if (!CPU_COUNT(&wanted)) {
			fprintf(stderr, "sy-bench: %s: none of the CPUs in "
				"\"%s\" is allowed to this process\n", source,
				list);
			return -EINVAL;
		}
	} else {
		wanted = allowed;
	}
	ctx->cpus = wanted;
	ctx->producer_cpu = affinity_nth(&wanted, 0);
	ctx->consumer_cpu = affinity_nth(&wanted, 1);
	if (ctx->consumer_cpu < 0)
		ctx->consumer_cpu = ctx->producer_cpu;
	/* Sharing one CPU, a waiter only delays the thread it waits for. */
	ctx->spin_limit = ctx->producer_cpu == ctx->consumer_cpu ? 0
								   : SPIN_LIMIT;
	return 0;
}

static FILE *open_output(const char *option, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		fprintf(stderr, "sy-bench: %s %s: %s\n", option, path,
			strerror(errno));
	return f;
}

/* Write @p rep to @p f with @p write, and close @p f. */
static int write_output(const char *path, FILE *f,
			int (*write)(const struct report *, FILE *),
			const struct report *rep)
{
	int rc = write(rep, f);

	if (fclose(f) && !rc)
		rc = -errno;
	if (rc < 0)
		fprintf(stderr, "sy-bench: writing %s: %s\n", path,
			strerror(-rc));
	return rc;
}

/*
 * Fixed runs are counted, not timed: no spinning, sleeping workers, and a
 * window that keeps the ring from filling, so that every instruction counted
 * belongs to a message routed once.
 */
static int fixed_run(const struct options *o)
{
	const struct engine_config *base = o->fixed_config
		? engine_config_find(o->fixed_config) : engine_config_default();
	struct engine_config engine = *base;
	struct bench_ctx ctx = {
		.engine = &engine,
		.engine_idle = SY_IDLE_SLEEP,
		.engine_window = FIXED_RUN_WINDOW,
		.policy = o->fixed_policy ? o->fixed_policy : "direct",
		.payload = BENCH_DEFAULT_PAYLOAD,
		.burst = BENCH_DEFAULT_BURST,
	};
	unsigned n_allowed;
	int rc;

	engine.metrics_interval_ms = FIXED_RUN_METRICS_INTERVAL_MS;
	rc = choose_cpus("--cpus", o->cpus, &ctx, &n_allowed);
	if (rc < 0)
		return EXIT_USAGE;
	ctx.spin_limit = 0;
	if (!instructions_fixed_variant_known(o->fixed_variant)) {
		fprintf(stderr, "sy-bench: --fixed-variant: unknown variant "
			"'%s'\n", o->fixed_variant);
		return EXIT_USAGE;
	}
	rc = instructions_fixed_run(&ctx, o->fixed_variant, o->fixed_run);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

static int probe(const struct bench_ctx *ctx, double *median_ns)
{
	int rc = probe_round_trip(ctx, median_ns);

	if (rc < 0)
		fprintf(stderr, "sy-bench: core-to-core probe: %s\n",
			strerror(-rc));
	return rc;
}

static int run_scenarios(const struct options *o, const struct bench_ctx *ctx,
			 struct report *rep)
{
	int rc;

	rc = probe(ctx, &rep->probe_before_ns);
	if (!rc && (o->scenarios & RUN_THROUGHPUT))
		rc = scenario_throughput(ctx, rep);
	if (!rc && (o->scenarios & RUN_LATENCY))
		rc = scenario_latency(ctx, rep);
	if (!rc && (o->scenarios & RUN_LATENCY))
		rc = scenario_open_loop(ctx, o->rate_fraction, rep);
	if (!rc && (o->scenarios & RUN_OVERHEAD))
		rc = scenario_overhead(ctx, rep);
	if (!rc && (o->scenarios & RUN_POLICIES))
		rc = scenario_policies(ctx, rep);
	if (!rc && (o->scenarios & RUN_SCALING))
		rc = scenario_scaling(ctx, rep);
	if (!rc && (o->scenarios & RUN_MEMORY))
		rc = scenario_memory(ctx, rep);
	if (!rc)
		rc = probe(ctx, &rep->probe_after_ns);
	rep->has_probe = !rc;
	if (!rc && (o->scenarios & RUN_INSTRUCTIONS))
		rc = scenario_instructions(ctx, rep);
	if (!rc && (o->scenarios & RUN_POLICIES) && o->instructions)
		rc = instructions_policies(ctx, rep);
	else if (!rc && (o->scenarios & RUN_POLICIES))
		report_add_note(rep, "policies: instructions per pick skipped "
				"(add --instructions to count them with "
				"callgrind)");
	return rc;
}

/*
 * Whether this build of the library has the policy of --policy.
 * @return EXIT_OK; EXIT_USAGE (it lacks it); EXIT_FAILED.
 */
static int check_policy(const char *name)
{
	int rc = engine_policy_check(name);

	if (rc == -ENOENT) {
		fprintf(stderr, "sy-bench: --policy: policy '%s' is not in this "
			"build of switchyard (sy_route_add refused it with "
			"-EINVAL)\n", name);
		return EXIT_USAGE;
	}
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

int main(int argc, char **argv)
{
	struct bench_ctx ctx = {
		.engine_idle = SY_IDLE_DEFAULT,
		.engine = engine_config_default(),
	};
	char burst_variant[32];
	FILE *json = NULL, *csv = NULL, *metrics = NULL;
	struct report rep;
	struct options o;
	unsigned n_allowed;
	const char *env;
	int rc;

	rc = parse_options(argc, argv, &o);
	if (rc > 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (rc < 0)
		return EXIT_USAGE;
	if (o.fixed_run)
		return fixed_run(&o);
	if (o.cpus && choose_cpus("--cpus", o.cpus, &ctx, &n_allowed) < 0)
		return EXIT_USAGE;
	if (engine_preflight() < 0)
		return EXIT_FAILED;
	if (o.policy && (rc = check_policy(o.policy)) != EXIT_OK)
		return rc;
	if (!o.cpus) {
		env = getenv("SY_CPUS");
		if (choose_cpus("SY_CPUS", env && *env ? env : NULL, &ctx,
				&n_allowed) < 0)
			return EXIT_FAILED;
	}
	if (o.json && !(json = open_output("--json", o.json)))
		return EXIT_USAGE;
	if (o.csv && !(csv = open_output("--csv", o.csv))) {
		if (json)
			fclose(json);
		return EXIT_USAGE;
	}
	if (o.metrics && !(metrics = open_output("--metrics", o.metrics))) {
		if (json)
			fclose(json);
		if (csv)
			fclose(csv);
		return EXIT_USAGE;
	}
	ctx.runs = o.runs;
	ctx.messages = o.messages;
	ctx.overhead_messages = o.messages_set ? o.messages
					       : OVERHEAD_DEFAULT_MESSAGES;
	if (o.scenarios == RUN_MEMORY && !o.messages_set)
		ctx.messages = MEMORY_DEFAULT_MESSAGES;
	ctx.producers = o.producers;
	ctx.workers = o.workers;
	ctx.payload = o.payload;
	ctx.burst = o.burst;
	ctx.oversubscribe = o.oversubscribe;
	snprintf(burst_variant, sizeof(burst_variant), "engine-burst%u",
		 o.burst);
	ctx.burst_variant = burst_variant;
	ctx.policy = o.policy ? o.policy : "direct";
	ctx.progress = !o.quiet && isatty(STDERR_FILENO);
	thread_map_print(&ctx);
	report_init(&rep, n_allowed, ctx.producer_cpu, ctx.consumer_cpu);
	rc = run_scenarios(&o, &ctx, &rep);
	if (metrics && rc)
		fclose(metrics);
	else if (metrics)
		rc = metrics_file_write(&ctx, o.metrics, metrics,
					o.metrics_format, &rep);
	if (!rc)
		rc = report_print_table(&rep, stdout);
	if (!rc && o.plot)
		rc = plot_report(&rep, o.plot, stdout);
	if (json && rc)
		fclose(json);
	else if (json)
		rc = write_output(o.json, json, report_write_json, &rep);
	if (csv && rc)
		fclose(csv);
	else if (csv)
		rc = write_output(o.csv, csv, report_write_csv, &rep);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}
