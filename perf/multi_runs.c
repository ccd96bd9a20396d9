/*
 * Many-thread engine runs: P producers, W workers, one round_robin route.
 *
 * The producers start together behind the gate of pinned_run(). Each sends
 * its share and checks out; the last to check out waits until every message
 * is handled and takes the end time, so that only one thread polls the
 * counters while the workers may still need the CPUs.
 */
#include "multi_runs.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "engine_runs.h"
#include "pinned.h"

/* Pauses before a waiter yields, when every thread has a CPU of its own. */
#define MULTI_SPIN_LIMIT 256

/* Room for a list of distinct CPU numbers below CPU_SETSIZE. */
#define CPU_LIST_LEN (MULTI_MAX_THREADS * 6)

struct multi_counter {
	_Alignas(BENCH_CACHELINE) atomic_uint_fast64_t handled;
};

/* One timed run, shared by its producers. */
struct multi_run_state {
	struct multi_engine m;
	unsigned producers;
	unsigned burst;
	unsigned payload;
	unsigned spin_limit;
	uint64_t n;
	atomic_uint checked_out; /* producers done sending */
	atomic_bool failed;      /* a producer failed: nobody waits for all */
	uint64_t t_end;          /* written by the last producer out */
};

struct multi_producer {
	struct multi_run_state *run;
	uint64_t n;
	uint64_t t_start;
};

static void multi_error(const struct multi_engine *m, const char *call,
			int err)
{
	const char *why = sy_last_error();

	if (err != -ENOMEM || !why || !*why)
		why = sy_strerror(err);
	fprintf(stderr, "sy-bench: %s: %s: %s\n", m->variant, call, why);
}

static void stall_error(const struct multi_engine *m, const char *what)
{
	struct sy_stats st;

	sy_engine_stats(m->eng, &st);
	fprintf(stderr, "sy-bench: %s: %s for %llu s (engine: accepted %ju, "
		"delivered %ju, in flight %ju, refused as full %ju, by "
		"backpressure %ju)\n", m->variant, what,
		BENCH_STALL_NS / 1000000000ull, (uintmax_t)st.accepted,
		(uintmax_t)st.delivered, (uintmax_t)st.in_flight,
		(uintmax_t)st.rejected_full,
		(uintmax_t)st.rejected_backpressure);
}

int multi_slot_cpu(const struct bench_ctx *ctx, unsigned slot)
{
	unsigned n = (unsigned)CPU_COUNT(&ctx->cpus);

	assert(n > 0);
	return affinity_nth(&ctx->cpus, slot % n);
}

bool multi_oversubscribed(const struct bench_ctx *ctx)
{
	return ctx->producers + ctx->workers >
	       (unsigned)CPU_COUNT(&ctx->cpus);
}

static unsigned pairs_of(unsigned producers, unsigned workers)
{
	return producers < workers ? producers : workers;
}

static unsigned producer_slot(unsigned j, unsigned producers,
			      unsigned workers)
{
	unsigned pairs = pairs_of(producers, workers);

	return j < pairs ? 2 * j : 2 * pairs + (j - pairs);
}

static unsigned worker_slot(unsigned i, unsigned producers, unsigned workers)
{
	unsigned pairs = pairs_of(producers, workers);

	return i < pairs ? 2 * i + 1
			 : 2 * pairs + (producers - pairs) + (i - pairs);
}

/* The worker CPUs of @p workers workers, as a CPU list in @p out. */
static void worker_cpu_list(const struct bench_ctx *ctx, unsigned workers,
			    char *out, size_t len)
{
	size_t used = 0;
	cpu_set_t set;

	CPU_ZERO(&set);
	for (unsigned i = 0; i < workers; i++)
		CPU_SET(multi_slot_cpu(ctx, worker_slot(i, ctx->producers,
							 workers)), &set);
	out[0] = '\0';
	for (int cpu = 0; cpu < CPU_SETSIZE && used < len; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%d",
					 used ? "," : "", cpu);
	}
}

/* The handler: count in the server's own counter, which its worker alone writes. */
static int count_handler(sy_engine *eng, sy_msg *msg, void *arg)
{
	struct multi_counter *c = arg;
	uint_fast64_t v;

	(void)eng;
	(void)msg;
	/* Relaxed: the count publishes nothing else. */
	v = atomic_load_explicit(&c->handled, memory_order_relaxed);
	atomic_store_explicit(&c->handled, v + 1, memory_order_relaxed);
	return 0;
}

static int add_servers_and_route(struct multi_engine *m,
				 const struct engine_config *e)
{
	struct sy_route_opts ropts = {
		.policy = MULTI_POLICY, .n_servers = m->workers,
	};
	uint32_t servers[MULTI_MAX_THREADS];
	char name[32];
	int rc;

	for (unsigned i = 0; i < m->workers; i++) {
		struct sy_server_opts sopts = {
			.worker = (int)i, .breaker = engine_config_breaker(e),
		};

		snprintf(name, sizeof(name), "bench-%u", i);
		rc = sy_server_add(m->eng, name, count_handler,
				   &m->counters[i], &sopts, &servers[i]);
		if (rc < 0) {
			multi_error(m, "sy_server_add", rc);
			return rc;
		}
	}
	ropts.servers = servers;
	engine_config_route(e, &ropts);
	rc = sy_route_add(m->eng, "bench", &ropts, &m->route);
	if (rc < 0)
		multi_error(m, "sy_route_add", rc);
	return rc;
}

int multi_engine_open(struct multi_engine *m, const struct bench_ctx *ctx,
		      unsigned workers, const struct sy_allocator *allocator,
		      const char *variant)
{
	char cpus[CPU_LIST_LEN];
	struct sy_config cfg;
	int rc;

	assert(workers >= 1 && workers <= MULTI_MAX_THREADS);
	memset(m, 0, sizeof(*m));
	m->workers = workers;
	m->variant = variant;
	m->counters = aligned_alloc(BENCH_CACHELINE,
				    workers * sizeof(*m->counters));
	if (!m->counters)
		return -ENOMEM;
	for (unsigned i = 0; i < workers; i++)
		atomic_init(&m->counters[i].handled, 0);
	worker_cpu_list(ctx, workers, cpus, sizeof(cpus));
	sy_config_init(&cfg);
	cfg.workers = workers;
	cfg.cpus = cpus;
	cfg.pin = SY_PIN_CLOSE;
	cfg.idle = ctx->engine_idle;
	cfg.allocator = allocator;
	engine_config_apply(ctx->engine, &cfg);
	rc = sy_engine_create(&cfg, &m->eng);
	if (rc < 0) {
		multi_error(m, "sy_engine_create", rc);
		goto out_free;
	}
	rc = add_servers_and_route(m, ctx->engine);
	if (!rc)
		rc = sy_engine_start(m->eng);
	if (!rc)
		return 0;
	multi_error(m, "starting the engine", rc);
	sy_engine_destroy(m->eng);
out_free:
	free(m->counters);
	return rc;
}

void multi_engine_close(struct multi_engine *m)
{
	sy_engine_destroy(m->eng);
	free(m->counters);
}

uint64_t multi_engine_handled(const struct multi_engine *m)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < m->workers; i++)
		sum += atomic_load_explicit(&m->counters[i].handled,
					    memory_order_relaxed);
	return sum;
}

int multi_engine_await(const struct multi_engine *m, uint64_t target,
		       unsigned spin_limit)
{
	uint64_t seen = 0, handled;
	struct backoff b;

	backoff_init(&b, spin_limit);
	while ((handled = multi_engine_handled(m)) < target) {
		if (handled != seen) {
			seen = handled;
			backoff_reset(&b);
		}
		if (backoff_wait(&b) < 0) {
			stall_error(m, "the handler count stopped moving");
			return -ETIMEDOUT;
		}
	}
	if (handled > target) {
		fprintf(stderr, "sy-bench: %s: %ju messages handled, %ju "
			"sent\n", m->variant, (uintmax_t)handled,
			(uintmax_t)target);
		return -EPROTO;
	}
	return 0;
}

static int send_single(const struct multi_engine *m, uint64_t n,
		       unsigned payload, struct backoff *b)
{
	sy_msg *msg;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		msg = sy_msg_alloc(m->eng, payload);
		if (!msg) {
			multi_error(m, "sy_msg_alloc", -ENOMEM);
			return -ENOMEM;
		}
		while (bench_send_retryable(rc = sy_send(m->eng, m->route,
							 msg))) {
			rc = backoff_wait(b);
			if (rc < 0)
				break;
		}
		if (rc < 0) {
			if (rc == -ETIMEDOUT)
				stall_error(m, "sy_send kept returning -EAGAIN "
					    "or -ENOBUFS");
			else
				multi_error(m, "sy_send", rc);
			sy_msg_free(msg);
			return rc;
		}
		backoff_reset(b);
	}
	return 0;
}

static int send_burst_retry(const struct multi_engine *m, sy_msg **msgs,
			    unsigned n, struct backoff *b)
{
	int k = bench_send_burst(m->eng, m->route, msgs, n, b);

	if (k == -ETIMEDOUT)
		stall_error(m, "sy_send_burst kept returning -EAGAIN or "
			    "-ENOBUFS");
	else if (k < 0)
		multi_error(m, "sy_send_burst", k);
	return k;
}

int multi_send(const struct multi_engine *m, uint64_t n, unsigned payload,
	       unsigned burst, unsigned spin_limit)
{
	sy_msg *msgs[BENCH_MAX_BURST];
	struct backoff b;
	unsigned count;
	int rc;

	assert(burst <= BENCH_MAX_BURST);
	backoff_init(&b, spin_limit);
	if (!burst)
		return send_single(m, n, payload, &b);
	for (uint64_t sent = 0; sent < n; sent += count) {
		count = n - sent < burst ? (unsigned)(n - sent) : burst;
		for (unsigned i = 0; i < count; i++) {
			msgs[i] = sy_msg_alloc(m->eng, payload);
			if (msgs[i])
				continue;
			multi_error(m, "sy_msg_alloc", -ENOMEM);
			while (i)
				sy_msg_free(msgs[--i]);
			return -ENOMEM;
		}
		rc = send_burst_retry(m, msgs, count, &b);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int produce(void *arg)
{
	struct multi_producer *p = arg;
	struct multi_run_state *run = p->run;
	int rc;

	rc = sy_producer_attach(run->m.eng);
	if (rc < 0)
		multi_error(&run->m, "sy_producer_attach", rc);
	p->t_start = bench_now_ns();
	if (!rc)
		rc = multi_send(&run->m, p->n, run->payload, run->burst,
				run->spin_limit);
	if (rc < 0)
		atomic_store_explicit(&run->failed, true, memory_order_relaxed);
	/*
	 * Acq_rel: the last producer out sees every "failed" stored before
	 * the other producers checked out (their release, its acquire).
	 */
	if (atomic_fetch_add_explicit(&run->checked_out, 1,
				      memory_order_acq_rel) + 1 ==
		    run->producers &&
	    !atomic_load_explicit(&run->failed, memory_order_relaxed)) {
		rc = multi_engine_await(&run->m, run->n, run->spin_limit);
		run->t_end = bench_now_ns();
		if (rc < 0)
			atomic_store_explicit(&run->failed, true,
					      memory_order_relaxed);
	}
	sy_producer_detach(run->m.eng);
	return rc;
}

int multi_run(const struct bench_ctx *ctx, unsigned burst, uint64_t n,
	      double *secs)
{
	struct pinned_thread threads[MULTI_MAX_THREADS];
	struct multi_producer producers[MULTI_MAX_THREADS];
	struct multi_run_state run = {
		.producers = ctx->producers, .burst = burst,
		.payload = ctx->payload, .n = n,
		.spin_limit = multi_oversubscribed(ctx) ? 0 : MULTI_SPIN_LIMIT,
	};
	const char *variant = burst ? ctx->burst_variant : "engine-single";
	uint64_t t_start = UINT64_MAX;
	int rc;

	assert(ctx->producers >= 1 && ctx->producers <= MULTI_MAX_THREADS);
	atomic_init(&run.checked_out, 0);
	atomic_init(&run.failed, false);
	rc = multi_engine_open(&run.m, ctx, ctx->workers, NULL, variant);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < ctx->producers; j++) {
		producers[j] = (struct multi_producer){
			.run = &run,
			.n = n / ctx->producers + (j < n % ctx->producers),
		};
		threads[j] = (struct pinned_thread){
			.cpu = multi_slot_cpu(ctx, producer_slot(j,
					ctx->producers, ctx->workers)),
			.fn = produce, .arg = &producers[j],
		};
	}
	rc = pinned_run(threads, ctx->producers, run.spin_limit);
	/* The producers explain their own failures; this is one of a thread. */
	if (rc < 0 && !atomic_load_explicit(&run.failed, memory_order_relaxed))
		multi_error(&run.m, "starting the producer threads", rc);
	for (unsigned j = 0; !rc && j < ctx->producers; j++)
		if (producers[j].t_start < t_start)
			t_start = producers[j].t_start;
	if (!rc)
		*secs = (double)(run.t_end - t_start) / 1e9;
	multi_engine_close(&run.m);
	return rc;
}

int multi_engine_single(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	if (ctx->producers == 1 && ctx->workers == 1)
		return engine_single(ctx, n, secs);
	return multi_run(ctx, 0, n, secs);
}

int multi_engine_burst(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	if (ctx->producers == 1 && ctx->workers == 1)
		return engine_burst32(ctx, n, secs);
	return multi_run(ctx, ctx->burst, n, secs);
}
