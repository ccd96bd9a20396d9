/*
 * The soak test: switchyard under mixed load for a number of minutes, with
 * failures, a slow server, server churn, route replacement, breakers, the
 * dead letter queue and metrics scrapes all at once (soak_threads.c).
 *
 *   soak MINUTES OUTPUT.csv
 *
 * Every few seconds it samples the process's RSS, the message pools, the
 * accounting and the progress of every thread into OUTPUT.csv. It fails
 * (exit 1, with a message saying which rule broke) if
 *  - RSS after the warm-up (the first minute; half the run when it is
 *    shorter than two minutes) rises more than 1 MB above its peak during
 *    the warm-up (the peak, not the last sample: the allocator returns idle
 *    pages and takes them again, so RSS swings by up to a megabyte),
 *  - a thread makes no progress for PROGRESS_WINDOW samples,
 *  - after sy_engine_stop() the accounting is not exact (accepted =
 *    delivered + dead-lettered + evicted, nothing in flight),
 *  - or the run did not exercise what it is meant to (breakers opening and
 *    closing, route replacement, server churn, DLQ drain and replay and
 *    eviction, calls answered, every scrape answered).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soak.h"

#define SAMPLE_MS 2000
#define PROGRESS_WINDOW 3         /* samples without progress = stalled */
#define RSS_GROWTH_MAX_KB 1024
#define WARMUP_MS 60000
#define PRODUCERS 2

struct soak soak;

static const char *const progress_names[P_COUNT] = {
	"producers", "worker 0", "worker 1", "control thread",
	"dead letter thread", "scraper", "short-lived producers",
};

static long rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "soak: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static void setup(void)
{
	static const struct sy_breaker_opts breaker = {
		.consecutive_failures = 5, .window = 20, .min_calls = 10,
		.failure_rate = 0.5, .open_ns = 100000000,
		.half_open_probes = 2,
	};
	uint32_t all[SOAK_FAST + 1];
	struct sy_config cfg;
	char name[16];

	sy_config_init(&cfg);
	cfg.workers = SOAK_WORKERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.max_dead_letters = 1024;
	cfg.seed = 42;
	cfg.on_breaker = soak_on_breaker;
	if (sy_engine_create(&cfg, &soak.eng) != 0)
		goto out_fail;
	for (unsigned i = 0; i < SOAK_FAST; i++) {
		struct sy_server_opts o = {
			.worker = (int)(i % SOAK_WORKERS), .worker_set = true,
			.breaker = &breaker,
		};

		snprintf(name, sizeof(name), "fast-%u", i);
		if (sy_server_add(soak.eng, name, soak_handle_fast,
				  (void *)(uintptr_t)(i % SOAK_WORKERS), &o,
				  &soak.fast[i]) != 0)
			goto out_fail;
		all[i] = soak.fast[i];
	}
	struct sy_server_opts slow_o = { .worker = 1, .worker_set = true };
	struct sy_server_opts flaky_o = { .worker = 0, .worker_set = true, .breaker = &breaker };
	if (sy_server_add(soak.eng, "slow", soak_handle_slow, (void *)1,
			  &slow_o, &soak.slow) != 0 ||
	    sy_server_add(soak.eng, "flaky", soak_handle_flaky, (void *)0,
			  &flaky_o, &soak.flaky) != 0)
		goto out_fail;
	all[SOAK_FAST] = soak.flaky;
	atomic_store(&soak.churn, UINT32_MAX);

	struct sy_route_opts main_o = {
		.policy = "round_robin", .servers = all,
		.n_servers = SOAK_FAST + 1, .max_attempts = 3,
		.retry_backoff_ns = 200000, .dead_letter_unreachable = true,
	};
	struct sy_route_opts noretry_o = {
		.policy = "round_robin", .servers = all, .n_servers = SOAK_FAST,
		.dead_letter_unreachable = true,
	};
	struct sy_route_opts slow_r = {
		.policy = "direct", .servers = &soak.slow, .n_servers = 1,
		.backpressure = SY_BP_DEAD_LETTER,
	};
	if (sy_route_add(soak.eng, "main", &main_o, &soak.r_main) != 0 ||
	    sy_route_add(soak.eng, "noretry", &noretry_o, &soak.r_noretry) != 0 ||
	    sy_route_add(soak.eng, "swap", &noretry_o, &soak.r_swap) != 0 ||
	    sy_route_add(soak.eng, "slow", &slow_r, &soak.r_slow) != 0 ||
	    sy_engine_start(soak.eng) != 0 ||
	    sy_metrics_refresh(soak.eng) != 0 ||
	    sy_metrics_serve(soak.eng, NULL, 0, &soak.port) != 0)
		goto out_fail;
	return;
out_fail:
	fprintf(stderr, "soak: set-up failed: %s\n", sy_last_error());
	exit(1);
}

struct sample {
	uint64_t t_ms;
	long rss_kb;
	struct sy_stats st;
	struct sy_accounting acc;
	uint64_t progress[P_COUNT];
};

static void take_sample(struct sample *s, uint64_t start)
{
	s->t_ms = soak_now_ms() - start;
	s->rss_kb = rss_kb();
	sy_engine_stats(soak.eng, &s->st);
	sy_engine_accounting(soak.eng, &s->acc);
	for (int p = 0; p < P_COUNT; p++)
		s->progress[p] = atomic_load(&soak.progress[p]);
}

static void write_sample(FILE *csv, const struct sample *s)
{
	fprintf(csv, "%.1f,%ld,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu",
		s->t_ms / 1000.0, s->rss_kb,
		(unsigned long long)s->st.pool_bytes,
		(unsigned long long)s->st.pool_slabs,
		(unsigned long long)s->acc.in_flight,
		(unsigned long long)s->acc.accepted,
		(unsigned long long)s->acc.delivered,
		(unsigned long long)s->acc.dead_lettered,
		(unsigned long long)s->acc.evicted,
		(unsigned long long)s->acc.dlq_held,
		(unsigned long long)s->acc.replayed,
		(unsigned long long)s->acc.retried);
	for (int p = 0; p < P_COUNT; p++)
		fprintf(csv, ",%llu", (unsigned long long)s->progress[p]);
	fputc('\n', csv);
	fflush(csv);
}

/* A thread whose counter did not move over the window has stalled. */
static int check_progress(const struct sample *now, const struct sample *then)
{
	for (int p = 0; p < P_COUNT; p++)
		if (now->progress[p] == then->progress[p])
			return fail("%s made no progress from %.0f s to %.0f s",
				    progress_names[p], then->t_ms / 1000.0,
				    now->t_ms / 1000.0);
	return 0;
}

static int check_exercised(void)
{
	static const char *const names[E_COUNT] = {
		"breaker openings", "breaker closings", "route replacements",
		"server re-adds", "dead letters drained",
		"dead letters replayed", "calls answered",
	};

	for (int e = 0; e < E_SCRAPE_FAILED; e++)
		if (atomic_load(&soak.events[e]) == 0)
			return fail("no %s in the run", names[e]);
	if (atomic_load(&soak.events[E_SCRAPE_FAILED]))
		return fail("%llu scrapes of /metrics failed (%llu answered)",
			    (unsigned long long)atomic_load(&soak.events[E_SCRAPE_FAILED]),
			    (unsigned long long)atomic_load(&soak.progress[P_SCRAPES]));
	return 0;
}

static int check_accounting(const struct sy_accounting *a)
{
	uint64_t ended = a->delivered + a->failed_kept + a->dead_lettered +
			 a->evicted + a->dropped + a->returned;

	if (a->in_flight)
		return fail("accounting: %llu in flight after stop (accepted %llu)",
			    (unsigned long long)a->in_flight,
			    (unsigned long long)a->accepted);
	if (a->accepted != ended)
		return fail("accounting: accepted %llu, but delivered + failed, kept + dead-lettered + evicted = %llu",
			    (unsigned long long)a->accepted,
			    (unsigned long long)ended);
	if (a->evicted == 0)
		return fail("the dead letter queue never filled up");
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t producers[PRODUCERS], others[4];
	void *(*const bodies[4])(void *) = {
		soak_spawner, soak_control, soak_dlq, soak_scraper,
	};
	struct sample *samples;
	uint64_t start, duration_ms, warmup_ms;
	size_t n = 0, cap, base = 0;
	long rss_warm = 0, rss_max = 0;
	double minutes;
	int rc = 0;
	FILE *csv;

	if (argc != 3 || (minutes = strtod(argv[1], NULL)) <= 0) {
		fprintf(stderr, "usage: %s MINUTES OUTPUT.csv\n", argv[0]);
		return 2;
	}
	csv = fopen(argv[2], "w");
	if (!csv) {
		perror(argv[2]);
		return 2;
	}
	duration_ms = (uint64_t)(minutes * 60000);
	warmup_ms = duration_ms >= 2 * WARMUP_MS ? WARMUP_MS : duration_ms / 2;
	cap = duration_ms / SAMPLE_MS + 2;
	samples = calloc(cap, sizeof(*samples));
	if (!samples)
		return 2;
	fprintf(csv, "t_s,rss_kb,pool_bytes,pool_slabs,in_flight,accepted,delivered,dead_lettered,evicted,dlq_held,replayed,retried");
	for (int p = 0; p < P_COUNT; p++)
		fprintf(csv, ",progress_%d", p);
	fputc('\n', csv);

	setup();
	atomic_store(&soak.running, true);
	for (uintptr_t i = 0; i < PRODUCERS; i++)
		pthread_create(&producers[i], NULL, soak_producer, (void *)(i + 1));
	for (int i = 0; i < 4; i++)
		pthread_create(&others[i], NULL, bodies[i], NULL);

	start = soak_now_ms();
	while (n < cap) {
		struct sample *s = &samples[n];

		soak_sleep_us(SAMPLE_MS * 1000);
		take_sample(s, start);
		write_sample(csv, s);
		n++;
		if (s->t_ms < warmup_ms) {
			base = n;
			if (s->rss_kb > rss_warm)
				rss_warm = s->rss_kb;
		} else if (s->rss_kb > rss_max)
			rss_max = s->rss_kb;
		if (!rc && n > PROGRESS_WINDOW)
			rc = check_progress(s, &samples[n - 1 - PROGRESS_WINDOW]);
		if (rc || s->t_ms >= duration_ms)
			break;
	}

	atomic_store(&soak.running, false);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(producers[i], NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(others[i], NULL);
	sy_engine_stop(soak.eng);

	struct sample last;
	take_sample(&last, start);
	write_sample(csv, &last);
	fclose(csv);
	printf("soak: %.1f min, accepted %llu, delivered %llu, dead-lettered %llu, evicted %llu, replayed %llu, retried %llu\n",
	       last.t_ms / 60000.0, (unsigned long long)last.acc.accepted,
	       (unsigned long long)last.acc.delivered,
	       (unsigned long long)last.acc.dead_lettered,
	       (unsigned long long)last.acc.evicted,
	       (unsigned long long)last.acc.replayed,
	       (unsigned long long)last.acc.retried);
	printf("soak: breakers opened %llu, closed %llu; routes replaced %llu; server re-added %llu; DLQ drained %llu, replayed %llu; calls answered %llu; sends refused %llu; scrapes %llu\n",
	       (unsigned long long)soak.events[E_BREAKER_OPENED],
	       (unsigned long long)soak.events[E_BREAKER_CLOSED],
	       (unsigned long long)soak.events[E_ROUTE_REPLACED],
	       (unsigned long long)soak.events[E_SERVER_READDED],
	       (unsigned long long)soak.events[E_DLQ_DRAINED],
	       (unsigned long long)soak.events[E_DLQ_REPLAYED],
	       (unsigned long long)soak.events[E_CALLS_ANSWERED],
	       (unsigned long long)soak.events[E_SEND_REFUSED],
	       (unsigned long long)soak.progress[P_SCRAPES]);
	if (base > 0 && base <= n)
		printf("soak: RSS at most %ld kB in the warm-up (%.0f s), at most %ld kB after it; pool %llu kB at the end\n",
		       rss_warm, samples[base - 1].t_ms / 1000.0,
		       rss_max, (unsigned long long)last.st.pool_bytes / 1024);

	if (!rc && base > 0 && rss_max > rss_warm + RSS_GROWTH_MAX_KB)
		rc = fail("RSS rose %ld kB above its warm-up peak (limit %d kB)",
			  rss_max - rss_warm, RSS_GROWTH_MAX_KB);
	if (!rc)
		rc = check_accounting(&last.acc);
	if (!rc)
		rc = check_exercised();
	sy_engine_destroy(soak.eng);
	free(samples);
	if (!rc)
		printf("soak: passed\n");
	return rc;
}
