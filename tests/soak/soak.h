/*
 * The soak test's shared state: the engine, its servers and routes, the
 * progress counters that the sampler watches, and the threads' entry
 * points. docs/results.md ("Fuzzing and soak") has the figures.
 */
#ifndef SY_TESTS_SOAK_H
#define SY_TESTS_SOAK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

#define SOAK_FAST 4               /* servers failing 5% of runs */
#define SOAK_WORKERS 2

/* Progress that the sampler expects to see move. */
enum soak_progress {
	P_SENT,                   /* messages accepted from the producers */
	P_RUNS_W0,                /* handler runs on worker 0 */
	P_RUNS_W1,                /* handler runs on worker 1 */
	P_CONTROL,                /* control loop passes */
	P_DLQ,                    /* dead letter queue passes */
	P_SCRAPES,                /* successful scrapes of /metrics */
	P_SHORT_LIVED,            /* short-lived producer threads finished */
	P_COUNT
};

/* What the run must have exercised by its end. */
enum soak_event {
	E_BREAKER_OPENED,
	E_BREAKER_CLOSED,
	E_ROUTE_REPLACED,
	E_SERVER_READDED,
	E_DLQ_DRAINED,
	E_DLQ_REPLAYED,
	E_CALLS_ANSWERED,
	E_SCRAPE_FAILED,          /* must stay 0 */
	E_SEND_REFUSED,           /* ring full or backpressure: informative */
	E_COUNT
};

struct soak {
	sy_engine *eng;
	unsigned port;
	_Atomic bool running;     /* producers, control, DLQ, scraper */
	uint32_t fast[SOAK_FAST], slow, flaky;
	uint32_t r_main, r_noretry, r_swap, r_slow;
	_Atomic uint32_t churn;   /* the server removed and added again */
	_Atomic bool flaky_bad;   /* the flaky server fails every run */
	_Atomic uint64_t progress[P_COUNT];
	_Atomic uint64_t events[E_COUNT];
};

extern struct soak soak;

static inline void soak_count(enum soak_progress p)
{
	atomic_fetch_add_explicit(&soak.progress[p], 1, memory_order_relaxed);
}

static inline void soak_event(enum soak_event e, uint64_t n)
{
	atomic_fetch_add_explicit(&soak.events[e], n, memory_order_relaxed);
}

/** Milliseconds on CLOCK_MONOTONIC. */
uint64_t soak_now_ms(void);

/** Sleep @p us microseconds. */
void soak_sleep_us(unsigned us);

/** One GET /metrics over a plain socket: true for a 200 with a body. */
bool soak_scrape(unsigned port);

/* Thread bodies (soak_threads.c); @p arg is the producer's index. */
void *soak_producer(void *arg);
void *soak_spawner(void *arg);
void *soak_control(void *arg);
void *soak_dlq(void *arg);
void *soak_scraper(void *arg);

/** The handlers and the breaker callback (soak_threads.c). */
int soak_handle_fast(sy_engine *eng, sy_msg *msg, void *ctx);
int soak_handle_slow(sy_engine *eng, sy_msg *msg, void *ctx);
int soak_handle_flaky(sy_engine *eng, sy_msg *msg, void *ctx);
void soak_on_breaker(sy_engine *eng, uint32_t server, int from, int to,
		     void *ctx);

#endif
