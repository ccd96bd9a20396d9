/*
 * Engine runs (docs/perf.md, "Routes", "Engine configurations"): each worker counts its
 * servers' messages in a counter it alone writes; the last producer out waits until all are
 * handled and takes the end time.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Name, metrics, latency_sample, metrics_interval_ms, breaker,
 * backpressure, target; "metrics" is the library's defaults. */
const struct engine_config engine_configs[ENGINE_CONFIGS] = {
	{ "bare", -1, 0, 0, false, SY_BP_OFF, 0 },
	{ "metrics", 1, 0, 0, false, SY_BP_OFF, 0.90 },
	{ "metrics-every", 1, 1, 0, false, SY_BP_OFF, 0.90 },
	{ "metrics-1in16", 1, 16, 0, false, SY_BP_OFF, 0.90 },
	{ "metrics-1in256", 1, 256, 0, false, SY_BP_OFF, 0.90 },
	{ "reliability", -1, 0, 0, true, SY_BP_REJECT, 0.85 },
	{ "all", 1, 0, 0, true, SY_BP_REJECT, 0 },
};

static const struct sy_breaker_opts default_breaker; /* zero: defaults */
static const uint32_t route_weights[ROUTE_SERVERS] = { 4, 3, 2, 1 };

/* The picking policies, BASELINE_POLICY first, then shaped; then direct. */
static const struct route_setup {
	const char *policy;
	const uint32_t *weights;  /* NULL: all 1 */
	bool keyed;               /* each message's key: its sequence number */
	const char *note, *base; /* for the description; the policy shaped */
} route_setups[PICKING_POLICIES + 1] = {
	{ .policy = "round_robin" },
	{ "weighted", route_weights, false, ", weights 4,3,2,1", NULL },
	{ .policy = "least_connections" }, { .policy = "adaptive" },
	{ "hash", NULL, true, ", key = sequence number", NULL },
	{ .policy = "random" }, { .policy = "failover" },
	{ "round_robin+slow_start", NULL, false, ", the last ramping for 1 h", "round_robin" },
	{ "adaptive+deadline_aware", NULL, false, ", no deadlines on the messages", "adaptive" },
	{ "round_robin+codel", NULL, false, ", CoDel at 5 ms", "round_robin" },
	{ "hash+park_after", NULL, true, ", park_after 3", "hash" },
	{ "round_robin+hedge", NULL, false, ", hedge delay 1 ms, plain sends", "round_robin" },
	{ .policy = "direct" },
};

struct engine_counter {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t handled;
};

const struct engine_config *engine_config_find(const char *name)
{
	for (unsigned i = 0; i < ENGINE_CONFIGS; i++)
		if (!strcmp(engine_configs[i].name, name))
			return &engine_configs[i];
	return NULL;
}

const char *engine_bp_name(enum sy_backpressure bp)
{
	assert(bp == SY_BP_OFF || bp == SY_BP_REJECT); /* all that are used */
	return bp == SY_BP_OFF ? "off" : "reject";
}

void engine_config_describe(const struct engine_config *e, char *out, size_t len)
{
	char sample[32] = "default";

	if (e->latency_sample)
		snprintf(sample, sizeof(sample), "%u", e->latency_sample);
	snprintf(out, len, "metrics %s%s%s, %s, backpressure %s", e->metrics == -1 ? "off" : "on",
		 e->metrics == -1 ? "" : ", latency_sample ", e->metrics == -1 ? "" : sample,
		 e->breaker ? "breaker" : "no breaker", engine_bp_name(e->backpressure));
}

static const struct route_setup *find_setup(const char *policy)
{
	for (unsigned i = 0; i < ARRAY_SIZE(route_setups); i++)
		if (!strcmp(route_setups[i].policy, policy))
			return &route_setups[i];
	return NULL;
}

const char *engine_picking_policy(unsigned i)
{
	assert(i < PICKING_POLICIES);
	return route_setups[i].policy;
}

const char *engine_policy_route(const char *name)
{
	static char text[ARRAY_SIZE(route_setups)][96];
	const struct route_setup *s = find_setup(name);
	char *t = s ? text[s - route_setups] : NULL;

	if (t)
		snprintf(t, sizeof(text[0]), "engine route: %s %s%s", name,
			 strcmp(name, "direct") ? "over 4 servers of the one worker"
			 : "to one server", s->note ? s->note : "");
	return t;
}

__attribute__((cold)) int engine_error(const struct engine_run *run, const char *call, int err)
{
	const char *why = sy_last_error();
	struct sy_stats st;

	if (err != -ETIMEDOUT)
		return bench_fail(err, "%s: %s: %s", run->variant, call,
				  why && *why ? why : sy_strerror(err));
	sy_engine_stats(run->eng, &st);
	return bench_fail(err, "%s: %s: no progress for %llu s (engine: accepted %ju, delivered "
			  "%ju, in flight %ju, refused as full %ju, by backpressure %ju)",
			  run->variant, call, BENCH_STALL_NS / 1000000000ull,
			  (uintmax_t)st.accepted, (uintmax_t)st.delivered, (uintmax_t)st.in_flight,
			  (uintmax_t)st.rejected_full, (uintmax_t)st.rejected_backpressure);
}

/* The handler of the throughput runs: count, nothing else. */
static int count_handler(sy_engine *eng, sy_msg *msg, void *arg)
{
	struct engine_counter *c = arg;
	uint_fast64_t v;

	(void)eng;
	(void)msg;
	/* Relaxed: its worker alone writes it, and it publishes nothing. */
	v = atomic_load_explicit(&c->handled, memory_order_relaxed);
	atomic_store_explicit(&c->handled, v + 1, memory_order_relaxed);
	return 0;
}

int engine_echo(sy_engine *eng, sy_msg *msg, void *arg)
{
	(void)eng;
	(void)arg;
	return sy_msg_reply(msg, msg);
}

static void engine_close(struct engine_run *run)
{
	sy_engine_destroy(run->eng); /* waits for B's acknowledgements */
	if (run->far)
		sy_engine_destroy(run->far);
	free(run->counters);
}

/* The engine of @p run, its servers and route; on failure, @p call's. */
static int engine_build(struct engine_run *run, const struct bench_ctx *ctx,
			enum sy_idle idle, sy_handler_fn handler,
			const struct sy_allocator *allocator, const char **call)
{
	const struct route_setup *setup = ctx->policy ? find_setup(ctx->policy) : NULL;
	bool ramp = setup && strstr(setup->policy, "+slow_start");
	struct sy_server_opts sopts = {
		.breaker = ctx->engine->breaker ? &default_breaker : NULL,
	};
	uint32_t servers[BENCH_MAX_THREADS];
	struct sy_route_opts ropts = {
		.policy = setup && setup->base ? setup->base : bench_policy(ctx),
		.n_servers = ctx->workers, .servers = servers,
		.backpressure = ctx->engine->backpressure,
		.weights = setup ? setup->weights : NULL,
		.deadline_aware = setup && strstr(setup->policy, "+deadline"),
		.codel = setup && strstr(setup->policy, "+codel"),
		.park_after = setup && strstr(setup->policy, "+park") ? 3 : 0,
		.hedge_delay_ns = setup && strstr(setup->policy, "+hedge") ? 1000000 : 0, /* 1 ms */
	};
	char list[BENCH_MAX_THREADS * 6] = "", name[32];
	struct sy_config cfg;
	size_t used = 0;
	cpu_set_t set;
	int rc;

	assert(!setup || (ctx->producers == 1 && ctx->workers == 1));
	assert(!ctx->remote_url || (setup && !strcmp(setup->policy, "direct")));
	handler = handler ? handler : count_handler;
	if (setup && strcmp(setup->policy, "direct"))
		ropts.n_servers = ROUTE_SERVERS;
	run->keyed = setup && setup->keyed;
	run->workers = ctx->workers;
	run->counters = aligned_alloc(BENCH_CACHELINE, run->workers * sizeof(*run->counters));
	if (!run->counters)
		return -ENOMEM;
	/* The engine places worker i on the i-th CPU of its list. */
	CPU_ZERO(&set);
	for (unsigned i = 0; i < run->workers; i++) {
		atomic_init(&run->counters[i].handled, 0);
		CPU_SET(bench_cpu(ctx, true, i), &set);
	}
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%d",
						 used ? "," : "", cpu);
	sy_config_init(&cfg);
	cfg.workers = run->workers;
	cfg.cpus = list;
	cfg.pin = SY_PIN_CLOSE;
	cfg.idle = idle;
	cfg.allocator = allocator;
	cfg.metrics = ctx->engine->metrics;
	cfg.latency_sample = ctx->engine->latency_sample;
	cfg.metrics_interval_ms = ctx->engine->metrics_interval_ms;
	*call = "sy_engine_create";
	rc = sy_engine_create(&cfg, &run->eng);
	if (rc < 0) {
		free(run->counters);
		return rc;
	}
	*call = "sy_server_add";
	for (unsigned i = 0; !rc && i < ropts.n_servers; i++) {
		/* The one server of "direct" keeps the name it always had. */
		snprintf(name, sizeof(name), setup && ropts.n_servers == 1 ? "bench" : "bench-%u",
			 i);
		sopts.worker = setup ? 0 : (int)i;
		rc = ctx->remote_url
		     ? remote_serve(run, ctx->remote_url, handler, &run->counters[0], &servers[i])
		     : sy_server_add(run->eng, name, handler, &run->counters[sopts.worker], &sopts,
				     &servers[i]);
	}
	*call = rc ? *call : "sy_route_add";
	ropts.n_servers -= ramp; /* the last joins below */
	if (!rc)
		rc = sy_route_add(run->eng, "bench", &ropts, &run->route);
	ropts.slow_start_ns = 3600000000000ull; /* 1 h: it ramps all along */
	if (!rc && ramp && (ropts.n_servers = ROUTE_SERVERS))
		rc = sy_route_replace(run->eng, run->route, &ropts);
	if (rc < 0)
		engine_close(run);
	return rc;
}

int engine_policy_check(const struct bench_ctx *ctx, const char *name)
{
	/* Never started: nothing to measure, so no metrics. */
	struct bench_ctx check = *ctx;
	struct engine_run run = { .variant = name };
	const char *call;
	int rc;

	check.engine = ENGINE_CONFIG_BARE;
	check.policy = name;
	check.producers = check.workers = 1;
	rc = engine_build(&run, &check, SY_IDLE_DEFAULT, NULL, NULL, &call);
	if (!rc)
		engine_close(&run);
	/* The route is valid for every built-in policy of this build. */
	if (rc == -EINVAL && !strcmp(call, "sy_route_add"))
		return -ENOENT;
	return rc < 0 ? engine_error(&run, call, rc) : 0;
}

int engine_preflight(void)
{
	struct engine_run run = { .variant = "engine configuration" };
	int rc = sy_engine_create(NULL, &run.eng);

	if (rc < 0)
		engine_error(&run, "sy_engine_create", rc);
	else
		sy_engine_destroy(run.eng);
	return rc;
}

int engine_open(struct engine_run *run, const struct bench_ctx *ctx, const char *variant,
		enum sy_idle idle, sy_handler_fn handler, const struct sy_allocator *allocator)
{
	static bool served;
	const char *call;
	int rc;

	run->variant = variant;
	run->payload = ctx->payload;
	run->burst = ctx->burst;
	run->window = ctx->engine_window;
	run->spin_limit = bench_spin_limit(ctx, ctx->producers + ctx->workers);
	rc = engine_build(run, ctx, idle, handler, allocator, &call);
	if (rc < 0)
		return engine_error(run, call, rc);
	call = "sy_engine_start";
	rc = sy_engine_start(run->eng);
	/* --serve: -ENOTSUP without libmicrohttpd, or without metrics. */
	if (!rc && ctx->serve_port) {
		call = "sy_metrics_serve";
		rc = sy_metrics_serve(run->eng, "127.0.0.1", ctx->serve_port, NULL);
		if (!rc && !served)
			bench_fail(0, "--serve: metrics of the running engine at "
				   "http://127.0.0.1:%u/metrics", ctx->serve_port);
		served |= !rc;
		rc = rc == -ENOTSUP ? 0 : rc;
	}
	if (rc < 0) {
		engine_error(run, call, rc);
		engine_close(run);
	}
	return rc;
}

int engine_drive(struct engine_run *run, const struct bench_ctx *ctx, int (*fn)(void *),
		 void *arg, double *secs)
{
	struct pinned_thread producer = { .cpu = bench_cpu(ctx, false, 0), .fn = fn, .arg = arg };
	int rc = pinned_run(&producer, 1, run->spin_limit);

	/* The producer explains its own failures; this is one of the thread. */
	if (rc < 0 && !producer.rc)
		engine_error(run, "starting the producer", rc);
	if (!rc && secs)
		*secs = (double)(run->t_end - run->t_start) / 1e9;
	engine_close(run);
	return rc;
}

int engine_await(struct engine_run *run, uint64_t target, struct backoff *b)
{
	const struct engine_counter *c = run->counters;
	uint_fast64_t seen = 0, handled;

	for (;;) {
		handled = 0;
		for (unsigned i = 0; i < run->workers; i++)
			handled += atomic_load_explicit(&c[i].handled, memory_order_relaxed);
		if (handled >= target)
			break;
		if (handled != seen) {
			seen = handled;
			backoff_reset(b);
		}
		if (backoff_wait(b) < 0)
			return engine_error(run, "the handler count", -ETIMEDOUT);
	}
	backoff_reset(b);
	if (handled == target)
		return 0;
	return bench_fail(-EPROTO, "%s: %ju messages handled, %ju sent", run->variant,
			  (uintmax_t)handled, (uintmax_t)target);
}

/* Per message, the send loops do what a user's would: allocate, key if the
 * route hashes (a test the compiler takes out of the loop), send; what
 * follows a refusal is out of line, and the window is paced per window. */
__attribute__((noinline, cold)) int
engine_resend(const struct engine_run *run, engine_send_fn *send,
	      const char *call, sy_msg *msg, int rc, struct backoff *b)
{
	while (bench_send_retryable(rc)) {
		rc = backoff_wait(b);
		if (!rc)
			rc = send(run->eng, run->route, msg);
	}
	backoff_reset(b);
	if (rc < 0) {
		engine_error(run, call, rc);
		sy_msg_free(msg);
	}
	return rc;
}

/* sy_msg_send_burst() took @p k of msgs[0..n): send the rest as resend does. */
static __attribute__((noinline, cold)) int
resend_burst(const struct engine_run *run, sy_msg **msgs, unsigned n, int k,
	     struct backoff *b)
{
	unsigned done = 0;

	for (;;) {
		if (k > 0) {
			done += (unsigned)k;
			backoff_reset(b);
		} else if (bench_send_retryable(k)) {
			k = backoff_wait(b);
		}
		if (k < 0) {
			engine_error(run, "sy_msg_send_burst", k);
			while (done < n)
				sy_msg_free(msgs[done++]);
			return k;
		}
		if (done == n)
			return 0;
		k = sy_msg_send_burst(run->eng, run->route, msgs + done, n - done);
	}
}

/* Messages [first, end) with sy_msg_send(). */
static __attribute__((noinline)) int
send_single(const struct engine_run *run, uint64_t first, uint64_t end,
	    struct backoff *b)
{
	sy_engine *const eng = run->eng;
	const uint32_t route = run->route;
	const size_t size = run->payload;
	const bool keyed = run->keyed;
	sy_msg *msg;
	int rc;

	for (uint64_t i = first; i < end; i++) {
		msg = sy_msg_alloc(eng, size);
		if (__builtin_expect(!msg, 0))
			return engine_error(run, "sy_msg_alloc", -ENOMEM);
		if (keyed)
			sy_msg_set_key(msg, i);
		rc = sy_msg_send(eng, route, msg);
		if (__builtin_expect(rc != 0, 0)) {
			rc = engine_resend(run, sy_msg_send, "sy_msg_send", msg, rc, b);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Messages [first, end) with sy_msg_alloc_burst() and sy_msg_send_burst(),
 * run->burst at a time. */
static __attribute__((noinline)) int
send_bursts(const struct engine_run *run, uint64_t first, uint64_t end,
	    struct backoff *b)
{
	sy_msg *msgs[BENCH_MAX_BURST];
	const unsigned size = run->payload, burst = run->burst;
	sy_engine *const eng = run->eng;
	const uint32_t route = run->route;
	const bool keyed = run->keyed;
	unsigned count;
	int k;

	for (uint64_t sent = first; sent < end; sent += count) {
		count = end - sent < burst ? (unsigned)(end - sent) : burst;
		k = sy_msg_alloc_burst(eng, size, msgs, count);
		if (__builtin_expect(k < 0, 0))
			return engine_error(run, "sy_msg_alloc_burst", k);
		if (keyed)
			for (unsigned i = 0; i < count; i++)
				sy_msg_set_key(msgs[i], sent + i);
		k = sy_msg_send_burst(eng, route, msgs, count);
		if (__builtin_expect(k != (int)count, 0)) {
			k = resend_burst(run, msgs, count, k, b);
			if (k < 0)
				return k;
		}
	}
	return 0;
}

int engine_send(struct engine_run *run, uint64_t n, struct backoff *b)
{
	/* With a window, wait for the handlers after each whole window. */
	const uint64_t step = run->window ? run->window : n;
	uint64_t end;
	int rc = 0;

	assert(run->burst <= BENCH_MAX_BURST);
	assert(!run->window || !run->burst || run->window % run->burst == 0);
	for (uint64_t sent = 0; !rc && sent < n; sent = end) {
		end = n - sent < step ? n : sent + step;
		rc = run->burst ? send_bursts(run, sent, end, b)
				: send_single(run, sent, end, b);
		if (!rc && run->window && end % run->window == 0)
			rc = engine_await(run, end, b);
	}
	return rc;
}

struct producer {
	struct engine_run *run;
	uint64_t n;
	uint64_t t_start;
};

static int produce(void *arg)
{
	struct producer *p = arg;
	struct engine_run *run = p->run;
	struct backoff b = { .limit = run->spin_limit };
	int rc;

	pthread_setname_np(pthread_self(), "bench-producer");
	rc = sy_producer_attach(run->eng);
	if (rc < 0)
		engine_error(run, "sy_producer_attach", rc);
	p->t_start = bench_now_ns();
	if (!rc)
		rc = engine_send(run, p->n, &b);
	if (rc < 0)
		atomic_store_explicit(&run->failed, true, memory_order_relaxed);
	/*
	 * Acq_rel: the last producer out sees every "failed" stored before
	 * the others checked out (their release, its acquire).
	 */
	if (atomic_fetch_add_explicit(&run->checked_out, 1, memory_order_acq_rel) + 1 ==
		    run->producers &&
	    !atomic_load_explicit(&run->failed, memory_order_relaxed)) {
		rc = engine_await(run, run->n, &b);
		run->t_end = bench_now_ns();
		if (rc < 0)
			atomic_store_explicit(&run->failed, true, memory_order_relaxed);
	}
	sy_producer_detach(run->eng);
	return rc;
}

int engine_run(const struct bench_ctx *ctx, uint64_t n,
	       int (*inspect)(sy_engine *eng, void *arg), void *arg, double *secs)
{
	struct pinned_thread threads[BENCH_MAX_THREADS];
	struct producer producers[BENCH_MAX_THREADS];
	struct engine_run run = { .n = n, .producers = ctx->producers };
	char variant[32] = "engine-single";
	uint64_t t_start = UINT64_MAX;
	int rc;

	assert(ctx->producers >= 1 && ctx->producers <= BENCH_MAX_THREADS);
	if (ctx->burst)
		snprintf(variant, sizeof(variant), "engine-burst%u", ctx->burst);
	rc = engine_open(&run, ctx, variant, ctx->engine_idle, NULL, NULL);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < ctx->producers; j++) {
		producers[j] = (struct producer){ .run = &run };
		producers[j].n = n / ctx->producers + (j < n % ctx->producers);
		threads[j] = (struct pinned_thread){
			.cpu = bench_cpu(ctx, false, j), .fn = produce, .arg = &producers[j],
		};
	}
	rc = pinned_run(threads, ctx->producers, run.spin_limit);
	/* The producers explain their own failures; this is one of a thread. */
	if (rc < 0 && !atomic_load_explicit(&run.failed, memory_order_relaxed))
		engine_error(&run, "starting the producer threads", rc);
	for (unsigned j = 0; !rc && j < ctx->producers; j++)
		if (producers[j].t_start < t_start)
			t_start = producers[j].t_start;
	if (!rc)
		*secs = (double)(run.t_end - t_start) / 1e9;
	if (!rc && inspect)
		rc = inspect(run.eng, arg);
	engine_close(&run);
	return rc;
}

int engine_throughput(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples, double *secs)
{
	(void)samples;
	return engine_run(ctx, n, NULL, NULL, secs);
}
