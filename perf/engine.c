/*
 * Engine runs: configurations, routes, and producers that send through
 * them. An engine has one route "bench": a policy over servers of the one
 * worker (the messages still move between the same two CPUs), or
 * round_robin over one server per worker. A worker's servers count in
 * its own counter, which it alone writes. A producer never drops a
 * message: -EAGAIN and -ENOBUFS mean back off and send it again. The last
 * producer to finish waits until every message is handled and takes the
 * end time, so that only one thread polls while the workers work.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/*
 * The sampled configurations are there to choose latency_sample's default
 * from measured overhead, so they carry the metrics target too.
 */
const struct engine_config engine_configs[ENGINE_CONFIGS] = {
	/* The engine before metrics, breakers and backpressure. */
	{ .name = "bare", .metrics = -1, .backpressure = SY_BP_OFF },
	/* The library's defaults: what a user gets. */
	{ .name = "metrics", .metrics = 1, .target = 0.90 },
	/* Every send call timed: the upper bound of sampling's cost. */
	{ .name = "metrics-every", .metrics = 1, .latency_sample = 1,
	  .target = 0.90 },
	{ .name = "metrics-1in16", .metrics = 1, .latency_sample = 16,
	  .target = 0.90 },
	{ .name = "metrics-1in256", .metrics = 1, .latency_sample = 256,
	  .target = 0.90 },
	{ .name = "reliability", .metrics = -1, .breaker = true,
	  .backpressure = SY_BP_REJECT, .target = 0.85 },
	{ .name = "all", .metrics = 1, .breaker = true,
	  .backpressure = SY_BP_REJECT },
};

/* Every field zero: the breaker's defaults. */
static const struct sy_breaker_opts default_breaker;
static const uint32_t route_weights[ROUTE_SERVERS] = { 4, 3, 2, 1 };

/* The picking policies, BASELINE_POLICY first; then direct. */
static const struct route_setup {
	const char *policy;
	const uint32_t *weights;  /* NULL: all 1 */
	bool keyed;               /* each message's key: its sequence number */
	const char *note;         /* for the description */
} route_setups[PICKING_POLICIES + 1] = {
	{ .policy = "round_robin" },
	{ "weighted", route_weights, false, ", weights 4,3,2,1" },
	{ .policy = "least_connections" }, { .policy = "adaptive" },
	{ "hash", NULL, true, ", key = sequence number" },
	{ .policy = "random" }, { .policy = "failover" },
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
	static const char *const names[] = {
		[SY_BP_OFF] = "off", [SY_BP_REJECT] = "reject",
		[SY_BP_SPILL] = "spill", [SY_BP_BLOCK] = "block",
		[SY_BP_DEAD_LETTER] = "dead_letter",
	};

	return (unsigned)bp < ARRAY_SIZE(names) ? names[bp] : "unknown";
}

void engine_config_describe(const struct engine_config *e, char *out,
			    size_t len)
{
	char sample[32] = "default";

	if (e->latency_sample)
		snprintf(sample, sizeof(sample), "%u", e->latency_sample);
	snprintf(out, len, "metrics %s%s%s, %s, backpressure %s",
		 e->metrics == -1 ? "off" : "on",
		 e->metrics == -1 ? "" : ", latency_sample ",
		 e->metrics == -1 ? "" : sample,
		 e->breaker ? "breaker" : "no breaker",
		 engine_bp_name(e->backpressure));
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
	const struct route_setup *setup = find_setup(name);
	char *t = setup ? text[setup - route_setups] : NULL;

	if (t && strcmp(name, "direct"))
		snprintf(t, sizeof(text[0]), "engine route: %s over 4 servers "
			 "of the one worker%s", name, setup->note ? setup->note
								  : "");
	else if (t)
		snprintf(t, sizeof(text[0]), "engine route: direct to one "
			 "server");
	return t;
}

void engine_error(const struct engine_run *run, const char *call, int err)
{
	const char *why = sy_last_error();
	struct sy_stats st;

	if (err != -ETIMEDOUT) {
		fprintf(stderr, "sy-bench: %s: %s: %s\n", run->variant, call,
			why && *why ? why : sy_strerror(err));
		return;
	}
	/* A wait that timed out: what stalled, and the engine's view. */
	sy_engine_stats(run->eng, &st);
	fprintf(stderr, "sy-bench: %s: %s: no progress for %llu s (engine: "
		"accepted %ju, delivered %ju, in flight %ju, refused as full "
		"%ju, by backpressure %ju)\n", run->variant, call,
		BENCH_STALL_NS / 1000000000ull, (uintmax_t)st.accepted,
		(uintmax_t)st.delivered, (uintmax_t)st.in_flight,
		(uintmax_t)st.rejected_full,
		(uintmax_t)st.rejected_backpressure);
}

/* The handler of the throughput runs: count, nothing else. */
static int count_handler(sy_engine *eng, sy_msg *msg, void *arg)
{
	struct engine_counter *c = arg;
	uint_fast64_t v;

	(void)eng;
	(void)msg;
	/*
	 * Only the counter's worker writes it, so a load and a store make
	 * the increment; relaxed, as the count publishes nothing else.
	 */
	v = atomic_load_explicit(&c->handled, memory_order_relaxed);
	atomic_store_explicit(&c->handled, v + 1, memory_order_relaxed);
	return 0;
}

int engine_echo(sy_engine *eng, sy_msg *msg, void *arg)
{
	(void)eng;
	(void)arg;
	return sy_reply(msg, msg);
}

static void engine_close(struct engine_run *run)
{
	sy_engine_destroy(run->eng);
	free(run->counters);
}

/*
 * Create the engine of @p run with its servers and route, not started.
 * @return 0; a negative errno, the call that failed in @p call.
 */
static int engine_build(struct engine_run *run, const struct bench_ctx *ctx,
			enum sy_idle idle, sy_handler_fn handler,
			const struct sy_allocator *allocator,
			const char **call)
{
	const struct route_setup *setup = ctx->policy ? find_setup(ctx->policy)
						      : NULL;
	struct sy_server_opts sopts = {
		.breaker = ctx->engine->breaker ? &default_breaker : NULL,
	};
	struct sy_route_opts ropts = {
		.policy = bench_policy(ctx), .n_servers = ctx->workers,
		.backpressure = ctx->engine->backpressure,
	};
	char cpus[BENCH_MAX_THREADS * 6] = "", name[32];
	uint32_t servers[BENCH_MAX_THREADS];
	struct sy_config cfg;
	size_t used = 0;
	cpu_set_t set;
	int rc;

	assert(!setup || (ctx->producers == 1 && ctx->workers == 1));
	handler = handler ? handler : count_handler;
	if (setup && strcmp(setup->policy, "direct"))
		ropts.n_servers = ROUTE_SERVERS;
	ropts.weights = setup ? setup->weights : NULL;
	run->keyed = setup && setup->keyed;
	run->workers = ctx->workers;
	run->counters = aligned_alloc(BENCH_CACHELINE,
				      run->workers * sizeof(*run->counters));
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
			used += (size_t)snprintf(cpus + used, sizeof(cpus) - used,
						 "%s%d", used ? "," : "", cpu);
	sy_config_init(&cfg);
	cfg.workers = run->workers;
	cfg.cpus = cpus;
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
		snprintf(name, sizeof(name), ropts.n_servers == 1 && setup
			 ? "bench" : "bench-%u", i);
		sopts.worker = setup ? 0 : (int)i;
		rc = sy_server_add(run->eng, name, handler,
				   &run->counters[sopts.worker], &sopts,
				   &servers[i]);
	}
	ropts.servers = servers;
	if (!rc)
		*call = "sy_route_add";
	if (!rc)
		rc = sy_route_add(run->eng, "bench", &ropts, &run->route);
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
	if (rc < 0)
		engine_error(&run, call, rc);
	return rc;
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

int engine_open(struct engine_run *run, const struct bench_ctx *ctx,
		const char *variant, enum sy_idle idle, sy_handler_fn handler,
		const struct sy_allocator *allocator)
{
	static bool served;
	const char *call;
	bool built;
	int rc;

	run->variant = variant;
	run->payload = ctx->payload;
	run->burst = ctx->burst;
	run->window = ctx->engine_window;
	run->spin_limit = bench_spin_limit(ctx, ctx->producers + ctx->workers);
	rc = engine_build(run, ctx, idle, handler, allocator, &call);
	built = !rc;
	if (built) {
		call = "sy_engine_start";
		rc = sy_engine_start(run->eng);
	}
	/* --serve: -ENOTSUP without libmicrohttpd, or without metrics. */
	if (!rc && ctx->serve_port) {
		call = "sy_metrics_serve";
		rc = sy_metrics_serve(run->eng, "127.0.0.1", ctx->serve_port,
				      NULL);
		if (!rc && !served)
			fprintf(stderr, "sy-bench: --serve: metrics of the "
				"running engine at http://127.0.0.1:%u/metrics"
				"\n", ctx->serve_port);
		served |= !rc;
		rc = rc == -ENOTSUP ? 0 : rc;
	}
	if (rc < 0)
		engine_error(run, call, rc);
	if (rc < 0 && built)
		engine_close(run);
	return rc;
}

int engine_drive(struct engine_run *run, const struct bench_ctx *ctx,
		 int (*fn)(void *), void *arg)
{
	struct pinned_thread producer = {
		.cpu = bench_cpu(ctx, false, 0), .fn = fn, .arg = arg,
	};
	int rc = pinned_run(&producer, 1, run->spin_limit);

	/* The producer explains its own failures; this is one of the thread. */
	if (rc < 0 && !producer.rc)
		engine_error(run, "starting the producer", rc);
	engine_close(run);
	return rc;
}

static sy_msg *alloc_msg(const struct engine_run *run)
{
	sy_msg *msg = sy_msg_alloc(run->eng, run->payload);

	if (!msg)
		engine_error(run, "sy_msg_alloc", -ENOMEM);
	return msg;
}

int engine_await(struct engine_run *run, uint64_t target, struct backoff *b)
{
	uint_fast64_t seen = 0, handled;

	for (;;) {
		handled = atomic_load_explicit(&run->counters[0].handled,
					       memory_order_relaxed);
		for (unsigned i = 1; i < run->workers; i++)
			handled += atomic_load_explicit(
				&run->counters[i].handled,
				memory_order_relaxed);
		if (handled >= target)
			break;
		if (handled != seen) {
			seen = handled;
			backoff_reset(b);
		}
		if (backoff_wait(b) < 0) {
			engine_error(run, "the handler count",
				     -ETIMEDOUT);
			return -ETIMEDOUT;
		}
	}
	backoff_reset(b);
	if (handled == target)
		return 0;
	fprintf(stderr, "sy-bench: %s: %ju messages handled, %ju sent\n",
		run->variant, (uintmax_t)handled, (uintmax_t)target);
	return -EPROTO;
}

/* With a window, wait for the handler after each window of @p sent. */
static int pace(struct engine_run *run, uint64_t sent, struct backoff *b)
{
	if (!run->window || sent % run->window)
		return 0;
	return engine_await(run, sent, b);
}

static inline __attribute__((always_inline)) int
send_single(struct engine_run *run, const uint64_t *n, struct backoff *b)
{
	sy_msg *msg;
	int rc;

	for (uint64_t i = 0; i < *n; i++) {
		msg = alloc_msg(run);
		if (!msg)
			return -ENOMEM;
		if (run->keyed)
			sy_msg_set_key(msg, i);
		rc = engine_send_retry(run, sy_send, msg, b);
		if (rc < 0) {
			engine_error(run, "sy_send", rc);
			sy_msg_free(msg);
			return rc;
		}
		rc = pace(run, i + 1, b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Send msgs[0..n) in order; on an error, free those not sent. */
static int send_burst(struct engine_run *run, sy_msg **msgs, unsigned n,
		      struct backoff *b)
{
	unsigned done = 0;
	int k;

	while (done < n) {
		k = sy_send_burst(run->eng, run->route, msgs + done, n - done);
		if (k > 0) {
			done += (unsigned)k;
			backoff_reset(b);
			continue;
		}
		/* None accepted: a full or congested ring is worth waiting for. */
		if (bench_send_retryable(k))
			k = backoff_wait(b);
		if (k < 0) {
			engine_error(run, "sy_send_burst", k);
			while (done < n)
				sy_msg_free(msgs[done++]);
			return k;
		}
	}
	return 0;
}

/*
 * The send loops are inlined into each caller and read the count through
 * @p n: the producers' copy is the loop that the instructions scenario
 * counts, and this shape keeps its cost per message what it was (measured
 * with callgrind before and after).
 */
static inline __attribute__((always_inline)) int
send_all(struct engine_run *run, const uint64_t *n, struct backoff *b)
{
	sy_msg *msgs[BENCH_MAX_BURST];
	const uint64_t total = *n;
	unsigned count;
	int rc;

	assert(run->burst <= BENCH_MAX_BURST);
	if (!run->burst)
		return send_single(run, n, b);
	for (uint64_t sent = 0; sent < total; sent += count) {
		count = total - sent < run->burst ? (unsigned)(total - sent)
						  : run->burst;
		for (unsigned i = 0; i < count; i++) {
			msgs[i] = alloc_msg(run);
			if (!msgs[i]) {
				while (i)
					sy_msg_free(msgs[--i]);
				return -ENOMEM;
			}
			if (run->keyed)
				sy_msg_set_key(msgs[i], sent + i);
		}
		rc = send_burst(run, msgs, count, b);
		if (!rc)
			rc = pace(run, sent + count, b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int engine_send(struct engine_run *run, uint64_t n, struct backoff *b)
{
	return send_all(run, &n, b);
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
	struct backoff b;
	int rc;

	rc = sy_producer_attach(run->eng);
	if (rc < 0)
		engine_error(run, "sy_producer_attach", rc);
	backoff_init(&b, run->spin_limit);
	p->t_start = bench_now_ns();
	if (!rc)
		rc = send_all(run, &p->n, &b);
	if (rc < 0)
		atomic_store_explicit(&run->failed, true, memory_order_relaxed);
	/*
	 * Acq_rel: the last producer out sees every "failed" stored before
	 * the others checked out (their release, its acquire).
	 */
	if (atomic_fetch_add_explicit(&run->checked_out, 1,
				      memory_order_acq_rel) + 1 ==
		    run->producers &&
	    !atomic_load_explicit(&run->failed, memory_order_relaxed)) {
		rc = engine_await(run, run->n, &b);
		run->t_end = bench_now_ns();
		if (rc < 0)
			atomic_store_explicit(&run->failed, true,
					      memory_order_relaxed);
	}
	sy_producer_detach(run->eng);
	return rc;
}

int engine_run(const struct bench_ctx *ctx, uint64_t n,
	       int (*inspect)(sy_engine *eng, void *arg), void *arg,
	       double *secs)
{
	struct pinned_thread threads[BENCH_MAX_THREADS];
	struct producer producers[BENCH_MAX_THREADS];
	struct engine_run run = { .n = n, .producers = ctx->producers };
	char variant[32] = "engine-single";
	uint64_t t_start = UINT64_MAX;
	int rc;

	assert(ctx->producers >= 1 && ctx->producers <= BENCH_MAX_THREADS);
	if (ctx->burst)
		snprintf(variant, sizeof(variant), "engine-burst%u",
			 ctx->burst);
	atomic_init(&run.checked_out, 0);
	atomic_init(&run.failed, false);
	rc = engine_open(&run, ctx, variant, ctx->engine_idle, NULL, NULL);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < ctx->producers; j++) {
		producers[j] = (struct producer){
			.run = &run,
			.n = n / ctx->producers + (j < n % ctx->producers),
		};
		threads[j] = (struct pinned_thread){
			.cpu = bench_cpu(ctx, false, j),
			.fn = produce, .arg = &producers[j],
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

int engine_throughput(const struct bench_ctx *ctx, uint64_t n,
		      uint64_t *samples, double *secs)
{
	(void)samples;
	return engine_run(ctx, n, NULL, NULL, secs);
}
