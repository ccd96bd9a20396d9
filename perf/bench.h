/*
 * What sy-bench's files share (docs/perf.md, "The source"). Unless said otherwise, a function
 * is called from the control thread and returns 0 or a negative errno; a waiter gives up after
 * BENCH_STALL_NS.
 */
#ifndef SY_PERF_BENCH_H
#define SY_PERF_BENCH_H

#include <ck_pr.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "switchyard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BENCH_CACHELINE 64
#define BENCH_STALL_NS (10ull * 1000 * 1000 * 1000)
#define BENCH_SPIN_LIMIT 256      /* pauses before a waiter yields */
#define BENCH_DEFAULT_PAYLOAD 16
#define BENCH_DEFAULT_BURST 32
#define BENCH_MAX_BURST 512       /* half a ring */
#define BENCH_MAX_THREADS 64      /* producers, workers */
#define STATS_MAX_RUNS 1000

/* What an engine switches on besides routing (engine.c). */
struct engine_config {
	const char *name;             /* "bare", "metrics", ... */
	int metrics;                  /* sy_config.metrics: 1 on, -1 off */
	unsigned latency_sample;      /* 0: the library's default */
	unsigned metrics_interval_ms; /* 0: the library's default */
	bool breaker;                 /* default breaker on every server */
	enum sy_backpressure backpressure; /* of the route */
	double target;                /* overhead: least ratio to bare */
};

/* bare first (the overhead scenario's baseline), the default second. */
#define ENGINE_CONFIGS 7
extern const struct engine_config engine_configs[ENGINE_CONFIGS];
#define ENGINE_CONFIG_BARE (&engine_configs[0])
#define ENGINE_CONFIG_DEFAULT (&engine_configs[1])

const struct engine_config *engine_config_find(const char *name);
void engine_config_describe(const struct engine_config *e, char *out, size_t len);
const char *engine_bp_name(enum sy_backpressure bp);

/* Policies that pick among ROUTE_SERVERS servers of one worker. */
#define PICKING_POLICIES 12
#define ROUTE_SERVERS 4
#define BASELINE_POLICY "round_robin"
#define SPREAD_POLICY "round_robin" /* over one server per worker */

const char *engine_picking_policy(unsigned i);
/* How the route of policy @p name is built, in words; NULL: no policy. */
const char *engine_policy_route(const char *name);

/** Parameters of one invocation and of each variant's runs. */
struct bench_ctx {
	cpu_set_t cpus;           /* --cpus, else SY_CPUS, else all allowed */
	int producer_cpu, consumer_cpu; /* the lowest, the next (or same) */
	const struct engine_config *engine;
	enum sy_idle engine_idle; /* of the throughput engines */
	unsigned engine_window;   /* 0, or most messages in flight */
	const char *policy;       /* over one worker's servers; NULL: spread */
	unsigned producers, workers;
	unsigned payload;         /* bytes per message */
	unsigned burst;           /* per sy_msg_send_burst(); 0: sy_msg_send() */
	unsigned runs;
	uint64_t messages, overhead_messages; /* per run */
	bool oversubscribe;
	double rate_fraction, offered_rate; /* open loop */
	unsigned serve_port;      /* --serve, 0: none */
	const char *remote_url;   /* the engine's server on engine B via NATS */
	bool progress;            /* on stderr */
};

static inline const char *bench_policy(const struct bench_ctx *ctx)
{
	return ctx->policy ? ctx->policy : SPREAD_POLICY;
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One wait: reset it whenever the awaited thing progresses. */
struct backoff {
	unsigned spins, limit;
	uint64_t deadline; /* 0 until the waiter first yields */
};

static inline void backoff_reset(struct backoff *b)
{
	b->spins = 0;
	b->deadline = 0;
}

/** Wait a little. @return 0; -ETIMEDOUT after BENCH_STALL_NS. */
static inline int backoff_wait(struct backoff *b)
{
	uint64_t now;

	if (b->spins < b->limit) {
		b->spins++;
		ck_pr_stall();
		return 0;
	}
	sched_yield();
	now = bench_now_ns();
	if (!b->deadline)
		b->deadline = now + BENCH_STALL_NS;
	return now > b->deadline ? -ETIMEDOUT : 0;
}

/* harness.c */
int bench_parse_cpus(const char *s, cpu_set_t *out, char *why, size_t len);
int bench_nth_cpu(const cpu_set_t *set, unsigned n);
/* The CPU of producer or worker @p i (docs/perf.md, "Threads"). */
int bench_cpu(const struct bench_ctx *ctx, bool worker, unsigned i);
/* A waiter's spin limit among @p threads: 0 if they outnumber the CPUs. */
unsigned bench_spin_limit(const struct bench_ctx *ctx, unsigned threads);
void bench_print_thread_map(const struct bench_ctx *ctx);
/* "sy-bench: " and @p fmt on a line of stderr. @return @p err. */
int bench_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "\r\033[K" and @p fmt on stderr, if ctx->progress; NULL: clear. */
void bench_progress(const struct bench_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct pinned_thread {
	int cpu;
	int (*fn)(void *arg);
	void *arg;
	pthread_t tid;            /* set by pinned_run(), as the two below */
	int rc;
	struct gate *gate;
};

/* Start @p n threads pinned to their CPUs, release them all together. */
int pinned_run(struct pinned_thread *threads, unsigned n, unsigned spin_limit);
/** The median round trip (ns) of a cache line between the two CPUs. */
int probe_round_trip(const struct bench_ctx *ctx, double *median_ns);
/* Whether the shell finds @p prog on PATH. */
bool bench_have(const char *prog);

struct stats_summary {
	double median, min, max;
	unsigned runs;
};

/* Latency percentiles in ns (nearest rank), by name or in pct[]. */
struct stats_latency {
	union {
		struct { uint64_t p50, p90, p99, p999, max; };
		uint64_t pct[5];
	};
};

void stats_summarize(const double *values, unsigned n, struct stats_summary *out);

/* engine.c: an engine with its route, and what its producers share. */
struct engine_run {
	const char *variant;      /* for messages */
	sy_engine *eng, *far;     /* far: engine B of ctx->remote_url */
	uint32_t route;
	bool keyed;               /* each message's key: its sequence number */
	unsigned workers;
	struct engine_counter *counters; /* one per worker, its only writer */
	unsigned spin_limit, payload, burst, producers;
	unsigned window;          /* a multiple of burst */
	uint64_t n;               /* messages of all producers */
	atomic_uint checked_out;  /* producers done sending */
	atomic_bool failed;       /* a producer failed: nobody waits for all */
	uint64_t t_start, t_end;
	uint64_t *samples;        /* round trips, in ns */
};

/* Create, start (and with --serve, serve) an engine; NULL handler: count. */
int engine_open(struct engine_run *run, const struct bench_ctx *ctx, const char *variant,
		enum sy_idle idle, sy_handler_fn handler, const struct sy_allocator *allocator);
/* remote.c: serve @p handler on engine B, @p id on run->eng leads there. */
int remote_serve(struct engine_run *run, const char *url, sy_handler_fn handler, void *arg,
		 uint32_t *id);
/** Run @p fn(@p arg) on a thread pinned to slot 0, then close the engine; @p secs (or NULL):
 * from run->t_start to run->t_end. */
int engine_drive(struct engine_run *run, const struct bench_ctx *ctx, int (*fn)(void *),
		 void *arg, double *secs);
/* The producers send @p n; @p secs until all are handled; @p inspect. */
int engine_run(const struct bench_ctx *ctx, uint64_t n,
	       int (*inspect)(sy_engine *eng, void *arg), void *arg, double *secs);
/** Send @p n messages as engine_run()'s producers do. Attached thread. */
int engine_send(struct engine_run *run, uint64_t n, struct backoff *b);
/** Wait until the servers have handled exactly @p target messages. */
int engine_await(struct engine_run *run, uint64_t target, struct backoff *b);
int engine_echo(sy_engine *eng, sy_msg *msg, void *arg);
/** Whether this build has policy @p name. @return 0; -ENOENT; -errno. */
int engine_policy_check(const struct bench_ctx *ctx, const char *name);
/** Create and destroy an engine: a bad SY_* variable fails here. */
int engine_preflight(void);
/* Explain a failed call (-ETIMEDOUT: no progress). @return @p err. */
int engine_error(const struct engine_run *run, const char *call, int err);

/* -EAGAIN (ring full), -ENOBUFS (backpressure): send it again later. */
static inline bool bench_send_retryable(int rc)
{
	return rc == -EAGAIN || rc == -ENOBUFS;
}

typedef int engine_send_fn(sy_engine *eng, uint32_t route, sy_msg *msg);
/* Slow path (attached thread): @p send refused @p msg with @p rc; send it again while refused
 * for now. On failure, explained and @p msg freed. */
int engine_resend(const struct engine_run *run, engine_send_fn *send, const char *call,
		  sy_msg *msg, int rc, struct backoff *b);

/* report.c: the results of one invocation. */
#define REPORT_MAX_ROWS 64
#define REPORT_MAX_RATIOS 6
#define REPORT_MAX_NOTES 16
#define REPORT_NOTE_LEN 256

struct report_ratio {
	const char *baseline;
	double value;             /* median / the baseline's median */
};

struct report_memory {            /* one phase of the memory scenario */
	uint64_t warmup_messages;
	uint64_t rss_before_kib, rss_after_kib;
	double growth_kib_per_million, allocs_per_msg, frees_per_msg;
	uint64_t alloc_bytes, pool_bytes_before, pool_bytes, pool_slabs;
};

/* One result: a variant of a scenario. Only measured parts are set. */
struct report_row {
	const char *scenario;
	char variant[64];
	const char *policy;       /* engine rows: their route's */
	const struct engine_config *engine; /* engine rows */
	const char *detail;       /* a line under the section's title */
	unsigned producers, workers;
	uint64_t messages;        /* per run */
	bool has_rate;
	struct stats_summary rate; /* messages (round trips) per second */
	bool has_latency;
	struct stats_latency latency;
	bool has_instructions;
	double instructions_per_msg;
	uint64_t instructions_messages;
	const char *extra_vs;     /* instructions minus this row's */
	double extra_instructions;
	double offered_rate, rate_fraction; /* open loop */
	unsigned n_ratios;
	struct report_ratio ratios[REPORT_MAX_RATIOS];
	const char *paired_vs;    /* overhead: per-run ratios to it */
	struct stats_summary paired;
	double best_ratio;        /* max / its max */
	double target;
	bool has_scaling;
	double speedup, efficiency;
	bool has_memory;
	struct report_memory memory;
};

struct report {
	char model[128];
	unsigned cpus, cpus_allowed; /* online, allowed */
	int producer_cpu, consumer_cpu;
	bool has_probe;
	double probe_before_ns, probe_after_ns;
	bool instructions_skipped; /* no valgrind */
	unsigned n_rows, n_notes;
	struct report_row rows[REPORT_MAX_ROWS];
	char notes[REPORT_MAX_NOTES][REPORT_NOTE_LEN];
};

void report_init(struct report *rep, const struct bench_ctx *ctx);
struct report_row *report_add_row(struct report *rep, const char *scenario, const char *variant);
void report_add_ratio(struct report_row *row, const char *baseline, double value);
bool report_ratio_of(const struct report_row *row, const char *baseline, double *value);
bool report_target_met(const struct report_row *row);
struct report_row *report_find(struct report *rep, const char *scenario, const char *variant);
void report_add_note(struct report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int report_print_table(const struct report *rep, FILE *out);
int report_write_json(const struct report *rep, FILE *out);
int report_write_csv(const struct report *rep, FILE *out);
/** --plot DIR: data, a gnuplot script and the charts it draws. */
int plot_report(const struct report *rep, const char *dir, FILE *out);

/* @p n messages (round trips): @p secs, latency's @p samples; -EPROTO. */
typedef int bench_run_fn(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
			 double *secs);
/* The raw baselines (baselines.c), and engine_run() as a variant. */
bench_run_fn baseline_ck, baseline_batched_limit, baseline_message_ring, baseline_mutex_queue,
	baseline_zmq_inproc, engine_throughput, engine_rtt;

struct variant {
	char name[64];
	struct bench_ctx ctx;     /* what it runs with */
	bench_run_fn *run;
	uint64_t n;               /* per run */
	bool engine;              /* a row with policy, configuration, PxW */
};

/*
 * Run @p v[0..nv) interleaved ctx->runs times and add a row each, an engine row with its
 * ratio to each other row; each run's rate in @p rates[v * runs + r] (or NULL).
 * @return the first row.
 */
int bench_measure(const struct bench_ctx *ctx, struct report *rep, const char *scenario,
		  const struct variant *v, unsigned nv, bool latency, double *rates);

/* One file each: the scenarios add their rows to @p rep. */
typedef int scenario_fn(const struct bench_ctx *ctx, struct report *rep);
scenario_fn scenario_throughput, scenario_latency, scenario_open_loop, scenario_overhead,
	scenario_policies, scenario_scaling, scenario_memory, scenario_remote,
	scenario_instructions, instructions_policies; /* --instructions: the policies rows' */
/** The child of a callgrind run: @p variant once, @p n messages. */
int instructions_fixed_run(const struct bench_ctx *ctx, const char *variant, uint64_t n);
/* metrics_file.c: --metrics FILE. */
bool metrics_file_known(const char *path); /* its extension: a format */
int metrics_file_write(const struct bench_ctx *ctx, const char *path, FILE *f,
		       struct report *rep);

#endif /* SY_PERF_BENCH_H */
