/*
 * What every sy-bench run shares: where its threads run, how long it is,
 * how a waiting thread backs off, and the clock.
 *
 * The harness runs on small machines (two cores) where the thread a waiter
 * waits for may share its CPU. A waiter therefore pauses a bounded number of
 * times, then yields the CPU on every further attempt; and it gives up after
 * BENCH_STALL_NS without progress, so that a broken engine ends a run with an
 * error instead of hanging it.
 */
#ifndef SY_PERF_BENCH_H
#define SY_PERF_BENCH_H

#include <ck_pr.h>
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine_config.h"
#include "switchyard.h"

#define BENCH_CACHELINE 64

/* A waiter that made no progress for this long reports -ETIMEDOUT. */
#define BENCH_STALL_NS (10ull * 1000 * 1000 * 1000)

/* Defaults of --size and --burst, and the largest burst (half a ring). */
#define BENCH_DEFAULT_PAYLOAD 16
#define BENCH_DEFAULT_BURST 32
#define BENCH_MAX_BURST 512

/** Parameters of one invocation, shared by every scenario and variant. */
struct bench_ctx {
	int producer_cpu;
	int consumer_cpu;
	unsigned spin_limit;    /* pauses before a waiter starts yielding */
	enum sy_idle engine_idle; /* idle strategy of the throughput engines */
	/*
	 * Metrics, breaker and backpressure of every engine the runs create
	 * (engine_config.h); main() sets engine_config_default().
	 */
	const struct engine_config *engine;
	/*
	 * 0, or the most messages a throughput engine may have in flight: a
	 * fixed run keeps its ring from filling, so it counts no retries.
	 */
	unsigned engine_window;
	/*
	 * Built-in policy of the throughput engines' route (engine_runs.h):
	 * "direct", the default, keeps the one-server route.
	 */
	const char *policy;
	unsigned runs;          /* repeats of each variant */
	uint64_t messages;      /* messages per throughput run */
	uint64_t overhead_messages; /* messages per overhead run */
	bool progress;          /* show progress on stderr */
	/*
	 * The allowed CPUs (--cpus, SY_CPUS, else the process's): where the
	 * threads of many-thread runs are spread (multi_runs.h).
	 */
	cpu_set_t cpus;
	unsigned producers;     /* producer threads of the engine rows */
	unsigned workers;       /* engine workers, one server each */
	unsigned payload;       /* payload bytes per message */
	unsigned burst;         /* messages per sy_send_burst(), <= BENCH_MAX_BURST */
	const char *burst_variant; /* "engine-burst<burst>" */
	bool oversubscribe;     /* scaling: one step beyond the CPUs */
};

/**
 * Whether a send call's error means "not now, retry the same message": the
 * worker's ring is full (-EAGAIN) or past the route's backpressure threshold
 * (-ENOBUFS, with SY_BP_REJECT). A producer backs off and sends again.
 */
static inline bool bench_send_retryable(int rc)
{
	return rc == -EAGAIN || rc == -ENOBUFS;
}

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** The state of one wait: reset it whenever the awaited thing progresses. */
struct backoff {
	unsigned spins;
	unsigned limit;
	uint64_t deadline; /* 0 until the waiter first yields */
};

static inline void backoff_init(struct backoff *b, unsigned limit)
{
	b->spins = 0;
	b->limit = limit;
	b->deadline = 0;
}

static inline void backoff_reset(struct backoff *b)
{
	b->spins = 0;
	b->deadline = 0;
}

/**
 * Wait a little before the caller tries again.
 * @return 0; -ETIMEDOUT once the wait has lasted BENCH_STALL_NS.
 */
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
	else if (now > b->deadline)
		return -ETIMEDOUT;
	return 0;
}

#endif /* SY_PERF_BENCH_H */
