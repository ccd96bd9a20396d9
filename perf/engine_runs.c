/*
 * Engine variants: the same one-producer, one-consumer runs as the baselines,
 * with the engine in the middle.
 *
 * The producer never drops a message: -EAGAIN (the worker's ring is full)
 * and -ENOBUFS (past the route's backpressure threshold) mean back off and
 * send the same message again, as the API asks. A run whose handler count
 * stops moving for BENCH_STALL_NS fails with -ETIMEDOUT rather than hang.
 *
 * Every engine takes ctx->engine (engine_config.h): its metrics setting,
 * the breaker of its servers and the backpressure of its route.
 *
 * The servers of a route all run the same counting handler with the same
 * counter: they belong to the one worker, which is then the counter's only
 * writer whichever server a policy picks.
 */
#include "engine_runs.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pinned.h"
#include "switchyard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* How the route of one built-in policy is built. */
struct route_setup {
	const char *policy;
	unsigned n_servers;
	const uint32_t *weights;  /* NULL: all 1 */
	bool keyed;               /* each message's key is its sequence number */
	const char *description;  /* for the table */
};

static const uint32_t bench_weights[] = { 4, 3, 2, 1 };

/* The picking policies first, ENGINE_BASELINE_POLICY leading; then direct. */
static const struct route_setup route_setups[] = {
	{ "round_robin", ENGINE_ROUTE_SERVERS, NULL, false,
	  "engine route: round_robin over 4 servers of the one worker" },
	{ "weighted", ENGINE_ROUTE_SERVERS, bench_weights, false,
	  "engine route: weighted over 4 servers of the one worker, "
	  "weights 4,3,2,1" },
	{ "least_connections", ENGINE_ROUTE_SERVERS, NULL, false,
	  "engine route: least_connections over 4 servers of the one worker" },
	{ "adaptive", ENGINE_ROUTE_SERVERS, NULL, false,
	  "engine route: adaptive over 4 servers of the one worker" },
	{ "hash", ENGINE_ROUTE_SERVERS, NULL, true,
	  "engine route: hash over 4 servers of the one worker, key = "
	  "sequence number" },
	{ "random", ENGINE_ROUTE_SERVERS, NULL, false,
	  "engine route: random over 4 servers of the one worker" },
	{ "failover", ENGINE_ROUTE_SERVERS, NULL, false,
	  "engine route: failover over 4 servers of the one worker" },
	{ "direct", 1, NULL, false, "engine route: direct to one server" },
};

_Static_assert(ARRAY_SIZE(route_setups) == ENGINE_PICKING_POLICIES + 1,
	       "every picking policy, then direct");
_Static_assert(ARRAY_SIZE(bench_weights) == ENGINE_ROUTE_SERVERS,
	       "one weight per server");

struct counter {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t handled;
};

/* One run: an engine with its route, and the producer's view of it. */
struct engine_run {
	const char *variant;
	sy_engine *eng;
	uint32_t route;
	bool keyed;              /* set each message's key (see route_setup) */
	uint64_t n;
	unsigned spin_limit;
	unsigned window;         /* see struct bench_ctx */
	unsigned payload;        /* bytes per message */
	unsigned burst;          /* messages per sy_send_burst() */
	struct counter *counter; /* throughput runs */
	uint64_t *samples;       /* round-trip runs */
	uint64_t t_start;
	uint64_t t_end;
	engine_inspect_fn inspect; /* NULL, or called before the engine goes */
	void *inspect_arg;
};

typedef int (*send_fn)(sy_engine *eng, uint32_t route, sy_msg *msg);

static void engine_error(const struct engine_run *run, const char *call,
			 int err)
{
	fprintf(stderr, "sy-bench: %s: %s: %s\n", run->variant, call,
		sy_strerror(err));
}

/* For the calls that leave a detailed message in sy_last_error(). */
static void engine_error_detail(const char *variant, const char *call,
				int err)
{
	const char *why = sy_last_error();

	if (!why || !*why)
		why = sy_strerror(err);
	fprintf(stderr, "sy-bench: %s: %s: %s\n", variant, call, why);
}

/* A wait that timed out: what stalled, and the engine's view of it. */
static void stall_error(const struct engine_run *run, const char *what)
{
	struct sy_stats st;

	sy_engine_stats(run->eng, &st);
	fprintf(stderr, "sy-bench: %s: %s for %llu s (engine: accepted %ju, "
		"delivered %ju, in flight %ju, refused as full %ju, by "
		"backpressure %ju)\n", run->variant, what,
		BENCH_STALL_NS / 1000000000ull, (uintmax_t)st.accepted,
		(uintmax_t)st.delivered, (uintmax_t)st.in_flight,
		(uintmax_t)st.rejected_full,
		(uintmax_t)st.rejected_backpressure);
}

/*
 * A send call failed: -ETIMEDOUT means it kept refusing with -EAGAIN or
 * -ENOBUFS.
 */
static void send_error(const struct engine_run *run, const char *call,
		       int err)
{
	char what[64];

	if (err != -ETIMEDOUT) {
		engine_error(run, call, err);
		return;
	}
	snprintf(what, sizeof(what), "%s kept returning -EAGAIN or -ENOBUFS",
		 call);
	stall_error(run, what);
}

int engine_preflight(void)
{
	sy_engine *eng;
	int rc;

	rc = sy_engine_create(NULL, &eng);
	if (rc < 0) {
		engine_error_detail("engine configuration", "sy_engine_create",
				    rc);
		return rc;
	}
	sy_engine_destroy(eng);
	return 0;
}

static const struct route_setup *find_setup(const char *policy)
{
	for (unsigned i = 0; i < ARRAY_SIZE(route_setups); i++) {
		if (!strcmp(route_setups[i].policy, policy))
			return &route_setups[i];
	}
	return NULL;
}

const char *engine_picking_policy(unsigned i)
{
	assert(i < ENGINE_PICKING_POLICIES);
	return route_setups[i].policy;
}

bool engine_policy_known(const char *name)
{
	return find_setup(name) != NULL;
}

const char *engine_policy_route(const char *name)
{
	const struct route_setup *setup = find_setup(name);

	assert(setup);
	return setup->description;
}

/*
 * Add the servers of @p setup, all on worker 0 and running @p fn, and the
 * route "bench" over them, with the breaker and backpressure of @p e.
 * @p call: the call that failed, if one did.
 */
static int add_route(sy_engine *eng, const struct engine_config *e,
		     const struct route_setup *setup, sy_handler_fn fn,
		     void *fn_arg, uint32_t *route, const char **call)
{
	struct sy_server_opts sopts = {
		.worker = 0, .breaker = engine_config_breaker(e),
	};
	struct sy_route_opts ropts = {
		.policy = setup->policy, .n_servers = setup->n_servers,
		.weights = setup->weights,
	};
	uint32_t servers[ENGINE_ROUTE_SERVERS];
	char name[32];
	int rc;

	for (unsigned i = 0; i < setup->n_servers; i++) {
		/* The one server of "direct" keeps the name it always had. */
		if (setup->n_servers == 1)
			snprintf(name, sizeof(name), "bench");
		else
			snprintf(name, sizeof(name), "bench-%u", i);
		rc = sy_server_add(eng, name, fn, fn_arg, &sopts, &servers[i]);
		if (rc < 0) {
			*call = "sy_server_add";
			return rc;
		}
	}
	ropts.servers = servers;
	engine_config_route(e, &ropts);
	rc = sy_route_add(eng, "bench", &ropts, route);
	if (rc < 0)
		*call = "sy_route_add";
	return rc;
}

/* The handler of the throughput runs: count, nothing else. */
static int count_handler(sy_engine *eng, sy_msg *msg, void *arg)
{
	struct counter *c = arg;
	uint_fast64_t v;

	(void)eng;
	(void)msg;
	/*
	 * Only the one worker writes the count, so a load and a store make
	 * the increment; relaxed, as the count publishes nothing else.
	 */
	v = atomic_load_explicit(&c->handled, memory_order_relaxed);
	atomic_store_explicit(&c->handled, v + 1, memory_order_relaxed);
	return 0;
}

/* The handler of the round-trip runs: answer in place. */
static int echo_handler(sy_engine *eng, sy_msg *msg, void *arg)
{
	(void)eng;
	(void)arg;
	return sy_reply(msg, msg);
}

int engine_policy_check(const char *name)
{
	/* Never started: nothing to measure, so no metrics. */
	const struct engine_config *bare =
		engine_config_find(ENGINE_CONFIG_BASELINE);
	const struct route_setup *setup = find_setup(name);
	const char *call = NULL;
	struct sy_config cfg;
	sy_engine *eng;
	uint32_t route;
	int rc;

	assert(setup);
	sy_config_init(&cfg);
	cfg.workers = 1;
	engine_config_apply(bare, &cfg);
	rc = sy_engine_create(&cfg, &eng);
	if (rc < 0) {
		engine_error_detail(name, "sy_engine_create", rc);
		return rc;
	}
	rc = add_route(eng, bare, setup, count_handler, NULL, &route, &call);
	sy_engine_destroy(eng);
	/* The route is valid for every built-in policy of this build. */
	if (rc == -EINVAL && !strcmp(call, "sy_route_add"))
		return -ENOENT;
	if (rc < 0)
		fprintf(stderr, "sy-bench: policy %s: %s: %s\n", name, call,
			sy_strerror(rc));
	return rc;
}

/*
 * Create, configure (ctx->engine) and start the engine of @p run, routing
 * by @p policy.
 */
static int engine_open(struct engine_run *run, const struct bench_ctx *ctx,
		       enum sy_idle idle, const char *policy, sy_handler_fn fn,
		       void *fn_arg)
{
	const struct route_setup *setup = find_setup(policy);
	const char *call = NULL;
	struct sy_config cfg;
	char cpu[16];
	int rc;

	assert(setup);
	run->keyed = setup->keyed;
	snprintf(cpu, sizeof(cpu), "%d", ctx->consumer_cpu);
	sy_config_init(&cfg);
	cfg.workers = 1;
	cfg.cpus = cpu;
	cfg.pin = SY_PIN_CLOSE;
	cfg.idle = idle;
	engine_config_apply(ctx->engine, &cfg);
	rc = sy_engine_create(&cfg, &run->eng);
	if (rc < 0) {
		engine_error_detail(run->variant, "sy_engine_create", rc);
		return rc;
	}
	rc = add_route(run->eng, ctx->engine, setup, fn, fn_arg, &run->route,
		       &call);
	if (rc < 0) {
		engine_error(run, call, rc);
		goto out_destroy;
	}
	rc = sy_engine_start(run->eng);
	if (rc < 0) {
		engine_error_detail(run->variant, "sy_engine_start", rc);
		goto out_destroy;
	}
	return 0;
out_destroy:
	sy_engine_destroy(run->eng);
	return rc;
}

/*
 * Run @p produce on the producer CPU against the open engine, let
 * run->inspect look at the engine if the run succeeded, then close it.
 */
static int engine_drive(struct engine_run *run, const struct bench_ctx *ctx,
			int (*produce)(void *), double *secs)
{
	struct pinned_thread producer = {
		.cpu = ctx->producer_cpu, .fn = produce, .arg = run,
	};
	int rc;

	rc = pinned_run(&producer, 1, ctx->spin_limit);
	/* The producer explains its own failures; this is one of the thread. */
	if (rc < 0 && !producer.rc)
		engine_error(run, "starting the producer thread", rc);
	if (!rc)
		*secs = (double)(run->t_end - run->t_start) / 1e9;
	if (!rc && run->inspect)
		rc = run->inspect(run->eng, run->inspect_arg);
	sy_engine_destroy(run->eng);
	return rc;
}

static sy_msg *alloc_msg(const struct engine_run *run)
{
	sy_msg *msg = sy_msg_alloc(run->eng, run->payload);

	if (!msg)
		engine_error_detail(run->variant, "sy_msg_alloc", -ENOMEM);
	return msg;
}

/*
 * Send @p msg, again and again while the worker's ring is full or past the
 * backpressure threshold.
 * @return 0 (the engine owns @p msg); a negative errno (the caller does).
 */
static int send_retry(const struct engine_run *run, send_fn send,
		      sy_msg *msg, struct backoff *b)
{
	int rc;

	while (bench_send_retryable(rc = send(run->eng, run->route, msg))) {
		rc = backoff_wait(b);
		if (rc < 0)
			return rc;
	}
	backoff_reset(b);
	return rc;
}

int bench_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
		     unsigned n, struct backoff *b)
{
	unsigned done = 0;
	int k;

	while (done < n) {
		k = sy_send_burst(eng, route, msgs + done, n - done);
		if (k > 0) {
			done += (unsigned)k;
			backoff_reset(b);
			continue;
		}
		/* None accepted: a full or congested ring is worth waiting for. */
		if (bench_send_retryable(k))
			k = backoff_wait(b);
		if (k < 0) {
			while (done < n)
				sy_msg_free(msgs[done++]);
			return k;
		}
	}
	return 0;
}

static int send_burst_retry(const struct engine_run *run, sy_msg **msgs,
			    unsigned n, struct backoff *b)
{
	int rc = bench_send_burst(run->eng, run->route, msgs, n, b);

	if (rc < 0)
		send_error(run, "sy_send_burst", rc);
	return rc;
}

/* Wait until the handler has counted @p target messages. */
static int await_handled(struct engine_run *run, uint64_t target,
			 struct backoff *b)
{
	uint_fast64_t seen = 0, handled;
	int rc;

	for (;;) {
		handled = atomic_load_explicit(&run->counter->handled,
					       memory_order_relaxed);
		if (handled >= target)
			break;
		if (handled != seen) {
			seen = handled;
			backoff_reset(b);
		}
		rc = backoff_wait(b);
		if (rc < 0) {
			stall_error(run, "the handler count stopped moving");
			return rc;
		}
	}
	backoff_reset(b);
	return 0;
}

/* With a window, wait for the handler after each window of @p sent. */
static int pace(struct engine_run *run, uint64_t sent, struct backoff *b)
{
	if (!run->window || sent % run->window)
		return 0;
	return await_handled(run, sent, b);
}

static int attach(const struct engine_run *run)
{
	int rc = sy_producer_attach(run->eng);

	if (rc < 0)
		engine_error(run, "sy_producer_attach", rc);
	return rc;
}

static int produce_single(void *arg)
{
	struct engine_run *run = arg;
	struct backoff b;
	sy_msg *msg;
	int rc;

	rc = attach(run);
	if (rc < 0)
		return rc;
	backoff_init(&b, run->spin_limit);
	run->t_start = bench_now_ns();
	for (uint64_t i = 0; i < run->n; i++) {
		msg = alloc_msg(run);
		if (!msg) {
			rc = -ENOMEM;
			goto out_detach;
		}
		if (run->keyed)
			sy_msg_set_key(msg, i);
		rc = send_retry(run, sy_send, msg, &b);
		if (rc < 0) {
			send_error(run, "sy_send", rc);
			sy_msg_free(msg);
			goto out_detach;
		}
		rc = pace(run, i + 1, &b);
		if (rc < 0)
			goto out_detach;
	}
	rc = await_handled(run, run->n, &b);
	run->t_end = bench_now_ns();
out_detach:
	sy_producer_detach(run->eng);
	return rc;
}

static int produce_burst(void *arg)
{
	struct engine_run *run = arg;
	sy_msg *msgs[BENCH_MAX_BURST];
	struct backoff b;
	unsigned count;
	int rc;

	rc = attach(run);
	if (rc < 0)
		return rc;
	backoff_init(&b, run->spin_limit);
	run->t_start = bench_now_ns();
	for (uint64_t sent = 0; sent < run->n; sent += count) {
		count = run->n - sent < run->burst ? (unsigned)(run->n - sent)
						   : run->burst;
		for (unsigned i = 0; i < count; i++) {
			msgs[i] = alloc_msg(run);
			if (!msgs[i]) {
				while (i)
					sy_msg_free(msgs[--i]);
				rc = -ENOMEM;
				goto out_detach;
			}
			if (run->keyed)
				sy_msg_set_key(msgs[i], sent + i);
		}
		rc = send_burst_retry(run, msgs, count, &b);
		if (!rc)
			rc = pace(run, sent + count, &b);
		if (rc < 0)
			goto out_detach;
	}
	rc = await_handled(run, run->n, &b);
	run->t_end = bench_now_ns();
out_detach:
	sy_producer_detach(run->eng);
	return rc;
}

static int engine_throughput(const struct bench_ctx *ctx, const char *variant,
			     int (*produce)(void *), uint64_t n,
			     engine_inspect_fn inspect, void *inspect_arg,
			     double *secs)
{
	struct engine_run run = {
		.variant = variant, .n = n, .spin_limit = ctx->spin_limit,
		.window = ctx->engine_window, .payload = ctx->payload,
		.burst = ctx->burst, .inspect = inspect,
		.inspect_arg = inspect_arg,
	};
	int rc;

	run.counter = aligned_alloc(BENCH_CACHELINE, sizeof(*run.counter));
	if (!run.counter)
		return -ENOMEM;
	atomic_init(&run.counter->handled, 0);
	rc = engine_open(&run, ctx, ctx->engine_idle, ctx->policy,
			 count_handler, run.counter);
	if (!rc)
		rc = engine_drive(&run, ctx, produce, secs);
	free(run.counter);
	return rc;
}

int engine_single(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	return engine_throughput(ctx, "engine-single", produce_single, n, NULL,
				 NULL, secs);
}

int engine_burst32(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	return engine_throughput(ctx, "engine-burst32", produce_burst, n, NULL,
				 NULL, secs);
}

int engine_single_inspect(const struct bench_ctx *ctx, uint64_t n,
			  engine_inspect_fn inspect, void *arg)
{
	double secs;

	return engine_throughput(ctx, "engine-single", produce_single, n,
				 inspect, arg, &secs);
}

/* Wait for the reply to the one request in flight; the caller owns it then. */
static int await_reply(const struct engine_run *run, sy_msg **reply,
		       struct backoff *b)
{
	int k;

	while ((k = sy_poll_replies(run->eng, reply, 1)) == 0) {
		k = backoff_wait(b);
		if (k < 0)
			break;
	}
	if (k == -ETIMEDOUT)
		stall_error(run, "no reply came");
	else if (k < 0)
		engine_error(run, "sy_poll_replies", k);
	if (k < 0)
		return k;
	backoff_reset(b);
	return 0;
}

static int produce_requests(void *arg)
{
	struct engine_run *run = arg;
	struct backoff b;
	sy_msg *msg;
	uint64_t t0;
	int rc;

	rc = attach(run);
	if (rc < 0)
		return rc;
	backoff_init(&b, run->spin_limit);
	msg = alloc_msg(run);
	if (!msg) {
		rc = -ENOMEM;
		goto out_detach;
	}
	run->t_start = bench_now_ns();
	for (uint64_t i = 0; i < run->n; i++) {
		t0 = bench_now_ns();
		sy_msg_set_tag(msg, i);
		rc = send_retry(run, sy_request, msg, &b);
		if (rc < 0) {
			send_error(run, "sy_request", rc);
			goto out_free;
		}
		msg = NULL;
		rc = await_reply(run, &msg, &b);
		if (rc < 0)
			goto out_free;
		run->samples[i] = bench_now_ns() - t0;
		if (sy_msg_tag(msg) != i) {
			rc = -EPROTO;
			engine_error(run, "reply tag", rc);
			goto out_free;
		}
	}
	run->t_end = bench_now_ns();
out_free:
	sy_msg_free(msg);
out_detach:
	sy_producer_detach(run->eng);
	return rc;
}

int engine_rtt(const struct bench_ctx *ctx, uint64_t n, uint64_t *samples,
	       double *secs)
{
	struct engine_run run = {
		.variant = "engine-rtt", .n = n, .spin_limit = ctx->spin_limit,
		.samples = samples, .payload = ctx->payload,
	};
	enum sy_idle idle = SY_IDLE_DEFAULT;
	int rc;

	/* Spinning is only fair when the worker does not share a CPU. */
	if (ctx->producer_cpu != ctx->consumer_cpu)
		idle = SY_IDLE_SPIN;
	rc = engine_open(&run, ctx, idle, "direct", echo_handler, NULL);
	if (!rc)
		rc = engine_drive(&run, ctx, produce_requests, secs);
	return rc;
}
