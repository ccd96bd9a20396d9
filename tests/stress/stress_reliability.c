/*
 * Stress: every accepted message ends exactly once, under failures, retries,
 * backpressure and churn.
 *
 * Three producer threads (two sending one message at a time, one sending
 * bursts) send messages with unique ids over three routes of four servers
 * on two workers, through rings of 64 entries:
 *  - "main": round_robin, max_attempts 3 (failed runs are retried on
 *    another server);
 *  - "spill": failover over [slow, another], SY_BP_SPILL: past the
 *    threshold of the slow server's ring, messages go to the other one;
 *  - "reject": round_robin over servers of the slow server's worker,
 *    SY_BP_REJECT: past the threshold, sends are refused.
 * One server is slow (it spins about 1.5 us per message); every handler
 * fails 5% of its runs at random. One message in a hundred carries a
 * deadline that has already passed. A churn thread replaces the routes'
 * server lists and now and then removes a server and adds it back.
 *
 * Producers retry a send refused with -EAGAIN or -ENOBUFS a bounded number
 * of times, then free the message and count it as given up: it was never
 * accepted. Handlers set the id's bit in the "delivered" bitmap on success
 * (a bit found set already is a duplicate). A watcher thread drains the
 * dead letter queue every few milliseconds, setting bits in the "dead"
 * bitmap; the queue holds few entries, so some dead letters are evicted
 * first. Meanwhile it reads the engine's accounting over and over: it must
 * never show more messages ended than accepted. The on_backpressure
 * callback keeps, per worker, the number of rings into it past their
 * threshold: it must never leave [0, threads that send], and must be 0
 * once the engine has stopped.
 *
 * After sy_engine_stop() the test drains what is left and checks:
 * every accepted id was delivered once or dead-lettered once (or evicted
 * from the queue: then it is in neither bitmap, and the number of such ids
 * equals the evictions counted), nothing else was, and
 * accepted == delivered + dead_lettered + evicted with none in flight.
 *
 * A plain executable, not a Criterion suite, so that it also runs under
 * ThreadSanitizer; it uses C11 atomics only. Every wait is bounded.
 * Usage: stress_reliability [scale]. The producers send MESSAGES * scale
 * messages between them (scale > 0, default 1). Exit status 0 on success,
 * 1 on failure; one summary line on stdout.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchyard.h"

#define MESSAGES 10000000.0  /* at scale 1 */
#define PRODUCERS 3u
#define WORKERS 2u
#define RING_SIZE 64u
#define MAX_ATTEMPTS 3u
#define MAX_DEAD_LETTERS 128u   /* small: some dead letters are evicted */
#define FAIL_PER_MILLE 50u     /* 5% of handler runs fail */
#define EXPIRED_PER_MILLE 10u  /* 1% of messages carry a past deadline */
#define SLOW_NS 1500u
#define SEND_TRIES 64u         /* sends of one message before giving up */
#define BURST_MAX 16u
#define CHURN_PAUSE_NS 500000  /* between two route replacements */
#define REMOVE_EVERY 25u       /* replacements between server removals */
#define DRAIN_NS 4000000u      /* between two drains of the DLQ */

enum { A, B, C, SLOW, SERVERS };
enum { MAIN, SPILL, REJECT, ROUTES };

static const char *const server_names[SERVERS] = { "a", "b", "c", "slow" };
static const int server_worker[SERVERS] = { 0, 1, 0, 1 };

struct run;

/* A server's handler context; only the server's worker touches rng. */
struct server {
	struct run *run;
	uint64_t rng;
	bool slow;
	_Atomic bool alive;        /* its handler may run */
	_Atomic uint64_t runs;
	_Atomic uint64_t failed;
};

struct run {
	sy_engine *eng;
	uint64_t total;            /* ids 0 .. total-1 */
	uint64_t per_producer;     /* a multiple of 64: producers share no word */
	uint32_t route[ROUTES];
	_Atomic uint32_t server_id[SERVERS];
	struct server servers[SERVERS];
	uint64_t *accepted;        /* bitmap; each producer writes its own words */
	_Atomic uint64_t *delivered; /* bitmap, set by handlers */
	_Atomic uint64_t *dead;    /* bitmap, set by whoever drains the DLQ */
	_Atomic uint64_t duplicates;
	_Atomic uint64_t dead_twice;
	_Atomic uint64_t bad_id;
	_Atomic uint64_t bad_attempts;
	_Atomic uint64_t after_remove;
	_Atomic int64_t congested[WORKERS]; /* on_backpressure: on - off */
	_Atomic uint64_t congested_events;
	_Atomic uint64_t congested_bad;
	_Atomic uint64_t dl_by_reason[SY_DL_REASONS];
	_Atomic bool sending;      /* producers are still sending */
};

struct producer {
	struct run *run;
	unsigned id;
	bool bursts;
	uint64_t rng;
	uint64_t accepted;
	uint64_t refused;          /* refused send attempts, retries included */
	uint64_t gave_up;          /* messages freed unsent */
	int fatal;
	const char *fatal_what;
};

struct churn {
	struct run *run;
	uint64_t rng;
	bool present[SERVERS];
	uint64_t replaced, removed, added;
	int fatal;
	const char *fatal_what;
};

struct watcher {
	struct run *run;
	uint64_t reads, ahead, unbalanced, worst, drains;
	int fatal;
};

static bool failed;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	failed = true;
	fputs("stress_reliability: FAIL: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool bit_set(_Atomic uint64_t *map, uint64_t id)
{
	uint64_t bit = 1ull << (id % 64);

	/* Relaxed: main reads the bitmaps after joining every thread. */
	return atomic_fetch_or_explicit(&map[id / 64], bit,
					memory_order_relaxed) & bit;
}

static bool bit_get(_Atomic uint64_t *map, uint64_t id)
{
	return atomic_load_explicit(&map[id / 64], memory_order_relaxed) &
	       (1ull << (id % 64));
}

/* ---- handlers ---- */

static uint64_t id_of(sy_msg *m)
{
	uint64_t id;

	memcpy(&id, sy_msg_data(m), sizeof(id));
	return id;
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

static int handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct server *sv = ctx;
	struct run *run = sv->run;
	uint64_t id = id_of(m);

	(void)eng;
	/* Acquire pairs with the churn thread's release store of alive. */
	if (!atomic_load_explicit(&sv->alive, memory_order_acquire))
		atomic_fetch_add_explicit(&run->after_remove, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sv->runs, 1, memory_order_relaxed);
	if (id >= run->total || sy_msg_tag(m) != id) {
		atomic_fetch_add_explicit(&run->bad_id, 1, memory_order_relaxed);
		return 0;
	}
	if (sy_msg_attempts(m) < 1 || sy_msg_attempts(m) > MAX_ATTEMPTS)
		atomic_fetch_add_explicit(&run->bad_attempts, 1, memory_order_relaxed);
	if (sv->slow)
		spin_ns(SLOW_NS);
	if (xorshift(&sv->rng) % 1000 < FAIL_PER_MILLE) {
		atomic_fetch_add_explicit(&sv->failed, 1, memory_order_relaxed);
		return -EIO;
	}
	if (bit_set(run->delivered, id))
		atomic_fetch_add_explicit(&run->duplicates, 1, memory_order_relaxed);
	return 0;
}

/* Keeps, per worker, how many rings into it are past their threshold. */
static void on_backpressure(sy_engine *eng, unsigned worker, bool congested,
			    void *ctx)
{
	struct run *run = ctx;
	int64_t level;

	(void)eng;
	atomic_fetch_add_explicit(&run->congested_events, 1, memory_order_relaxed);
	if (worker >= WORKERS) {
		atomic_fetch_add_explicit(&run->congested_bad, 1, memory_order_relaxed);
		return;
	}
	level = atomic_fetch_add_explicit(&run->congested[worker],
					  congested ? 1 : -1,
					  memory_order_relaxed) + (congested ? 1 : -1);
	if (level < 0 || level > (int64_t)(PRODUCERS + WORKERS))
		atomic_fetch_add_explicit(&run->congested_bad, 1, memory_order_relaxed);
}

/* ---- dead letters ---- */

static void take_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			sy_msg *m, void *ctx)
{
	struct run *run = ctx;
	uint64_t id = id_of(m);

	(void)eng;
	if (dl->reason < SY_DL_REASONS)
		atomic_fetch_add_explicit(&run->dl_by_reason[dl->reason], 1,
					  memory_order_relaxed);
	if (id >= run->total || dl->tag != id)
		atomic_fetch_add_explicit(&run->bad_id, 1, memory_order_relaxed);
	else if (bit_set(run->dead, id))
		atomic_fetch_add_explicit(&run->dead_twice, 1, memory_order_relaxed);
	sy_msg_free(m);
}

static int drain_dead_letters(struct run *run)
{
	return sy_dlq_drain(run->eng, NULL, take_letter, run);
}

static void watch_once(struct watcher *w)
{
	struct sy_accounting a;
	uint64_t ended, by = 0;

	if (sy_engine_accounting(w->run->eng, &a) != 0) {
		w->fatal = -EINVAL;
		return;
	}
	w->reads++;
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		by += a.dead_lettered_by[r];
	ended = a.delivered + a.dead_lettered + a.evicted;
	if (ended > a.accepted) {
		w->ahead++;
		if (ended - a.accepted > w->worst)
			w->worst = ended - a.accepted;
	}
	if (by != a.dead_lettered)
		w->unbalanced++;
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	uint64_t next_drain = now_ns() + DRAIN_NS;

	/* Relaxed: the flag only says when to stop, it publishes nothing. */
	while (atomic_load_explicit(&w->run->sending, memory_order_relaxed) &&
	       !w->fatal) {
		watch_once(w);
		if (w->reads % 64 == 0)
			sched_yield();
		if (now_ns() >= next_drain) {
			int n = drain_dead_letters(w->run);

			if (n < 0)
				w->fatal = n;
			w->drains++;
			next_drain = now_ns() + DRAIN_NS;
		}
	}
	return NULL;
}

/* ---- producers ---- */

static void producer_fail(struct producer *p, const char *what, int rc)
{
	if (!p->fatal) {
		p->fatal = rc ? rc : -1;
		p->fatal_what = what;
	}
}

static bool retryable(int rc)
{
	return rc == -EAGAIN || rc == -ENOBUFS;
}

static bool expected_refusal(int rc)
{
	return retryable(rc) || rc == -EHOSTUNREACH;
}

static uint32_t pick_route(struct producer *p)
{
	unsigned r = (unsigned)(xorshift(&p->rng) % 10);

	return p->run->route[r < 6 ? MAIN : r < 8 ? SPILL : REJECT];
}

static sy_msg *message_new(struct producer *p, uint64_t id)
{
	sy_msg *m = sy_msg_alloc(p->run->eng, sizeof(id));

	if (!m) {
		producer_fail(p, "sy_msg_alloc", -ENOMEM);
		return NULL;
	}
	memcpy(sy_msg_data(m), &id, sizeof(id));
	sy_msg_set_tag(m, id);
	if (xorshift(&p->rng) % 1000 < EXPIRED_PER_MILLE)
		sy_msg_set_deadline(m, 1);
	return m;
}

static void mark_accepted(struct producer *p, uint64_t id)
{
	p->run->accepted[id / 64] |= 1ull << (id % 64);
	p->accepted++;
}

static void send_single(struct producer *p, uint64_t id)
{
	sy_msg *m = message_new(p, id);
	uint32_t route = pick_route(p);
	int rc;

	if (!m)
		return;
	for (unsigned tries = 0;; tries++) {
		rc = sy_send(p->run->eng, route, m);
		if (rc == 0) {
			mark_accepted(p, id);
			return;
		}
		p->refused++;
		if (!expected_refusal(rc))
			producer_fail(p, "sy_send", rc);
		if (!retryable(rc) || tries + 1 == SEND_TRIES)
			break;
		sched_yield();
	}
	p->gave_up++;
	sy_msg_free(m);
}

/* Send ids first .. first + n - 1 as bursts, retrying what is refused. */
static void send_burst(struct producer *p, uint64_t first, unsigned n)
{
	sy_msg *msgs[BURST_MAX], *sent_as[BURST_MAX];
	uint32_t route = pick_route(p);
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		msgs[i] = sent_as[i] = message_new(p, first + i);
		if (!msgs[i]) {
			n = i;
			break;
		}
	}
	for (unsigned tries = 0; done < n; tries++) {
		int rc = sy_send_burst(p->run->eng, route, msgs + done, n - done);
		unsigned k = rc > 0 ? (unsigned)rc : 0;

		/* An accepted message is the engine's: know it by its address,
		 * never by reading it. */
		for (unsigned a = done; a < done + k; a++)
			for (unsigned j = 0; j < n; j++)
				if (sent_as[j] == msgs[a])
					mark_accepted(p, first + j);
		done += k;
		if (done == n)
			break;
		p->refused += n - done;
		if (rc < 0 && !expected_refusal(rc))
			producer_fail(p, "sy_send_burst", rc);
		if ((rc < 0 && !retryable(rc)) || tries + 1 == SEND_TRIES)
			break;
		sched_yield();
	}
	for (unsigned i = done; i < n; i++) {
		p->gave_up++;
		sy_msg_free(msgs[i]);
	}
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct run *run = p->run;
	uint64_t first = p->id * run->per_producer;
	uint64_t end = first + run->per_producer;
	int rc;

	if ((rc = sy_producer_attach(run->eng)) != 0) {
		producer_fail(p, "sy_producer_attach", rc);
		return NULL;
	}
	for (uint64_t id = first; id < end && !p->fatal;) {
		if (p->bursts) {
			uint64_t n = 1 + xorshift(&p->rng) % BURST_MAX;

			if (n > end - id)
				n = end - id;
			send_burst(p, id, (unsigned)n);
			id += n;
		} else {
			send_single(p, id++);
		}
	}
	if ((rc = sy_producer_detach(run->eng)) != 0)
		producer_fail(p, "sy_producer_detach", rc);
	return NULL;
}

/* ---- churn ---- */

static void churn_fail(struct churn *c, const char *what, int rc)
{
	if (!c->fatal) {
		c->fatal = rc ? rc : -1;
		c->fatal_what = what;
	}
}

static uint32_t sid(struct churn *c, unsigned k)
{
	return atomic_load_explicit(&c->run->server_id[k], memory_order_relaxed);
}

static void route_opts(unsigned route, struct sy_route_opts *ro)
{
	memset(ro, 0, sizeof(*ro));
	switch (route) {
	case MAIN:
		ro->policy = "round_robin";
		ro->max_attempts = MAX_ATTEMPTS;
		break;
	case SPILL:
		ro->policy = "failover";
		ro->backpressure = SY_BP_SPILL;
		break;
	default:
		ro->policy = "round_robin";
		ro->backpressure = SY_BP_REJECT;
		break;
	}
}

/* The server lists: main, 1 to 4 present servers; spill, the slow one and
 * one present server of the other worker; reject, the present servers of
 * the slow one's worker. */
static unsigned server_list(struct churn *c, unsigned route, uint32_t *ids)
{
	unsigned n = 0;

	if (route == MAIN) {
		unsigned want = 1 + (unsigned)(xorshift(&c->rng) % SERVERS);
		unsigned start = (unsigned)(xorshift(&c->rng) % SERVERS);

		for (unsigned i = 0; i < SERVERS && n < want; i++)
			if (c->present[(start + i) % SERVERS])
				ids[n++] = sid(c, (start + i) % SERVERS);
		return n;
	}
	ids[n++] = sid(c, SLOW);
	for (unsigned k = 0; k < SERVERS; k++) {
		bool same = server_worker[k] == server_worker[SLOW];

		if (k == SLOW || !c->present[k] || same != (route == REJECT))
			continue;
		ids[n++] = sid(c, k);
		if (route == SPILL)
			break;
	}
	return n;
}

static void churn_replace(struct churn *c, unsigned route)
{
	struct sy_route_opts ro;
	uint32_t ids[SERVERS];
	int rc;

	route_opts(route, &ro);
	ro.servers = ids;
	ro.n_servers = server_list(c, route, ids);
	if (!ro.n_servers)
		return;
	rc = sy_route_replace(c->run->eng, c->run->route[route], &ro);
	if (rc)
		churn_fail(c, "sy_route_replace", rc);
	else
		c->replaced++;
}

static int server_add(struct run *run, unsigned k)
{
	struct sy_server_opts so = { .worker = server_worker[k] };
	uint32_t id;
	int rc;

	/* Release pairs with the handler's acquire load. */
	atomic_store_explicit(&run->servers[k].alive, true, memory_order_release);
	rc = sy_server_add(run->eng, server_names[k], handler, &run->servers[k],
			   &so, &id);
	if (rc == 0)
		atomic_store_explicit(&run->server_id[k], id, memory_order_relaxed);
	return rc;
}

/* Take server C out (the engine drops it from every route), then add it
 * back and put it in the routes again. */
static void churn_remove_and_add(struct churn *c)
{
	struct run *run = c->run;
	int rc;

	rc = sy_server_remove(run->eng, sid(c, C));
	if (rc) {
		churn_fail(c, "sy_server_remove", rc);
		return;
	}
	/* Every message for it has been handled: no handler may run now. */
	atomic_store_explicit(&run->servers[C].alive, false, memory_order_release);
	c->present[C] = false;
	c->removed++;
	for (unsigned r = 0; r < ROUTES; r++)
		churn_replace(c, r);
	rc = server_add(run, C);
	if (rc) {
		churn_fail(c, "sy_server_add", rc);
		return;
	}
	c->present[C] = true;
	c->added++;
	for (unsigned r = 0; r < ROUTES; r++)
		churn_replace(c, r);
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct timespec pause = { .tv_sec = 0, .tv_nsec = CHURN_PAUSE_NS };

	/* Relaxed: the flag only says when to stop, it publishes nothing. */
	for (uint64_t op = 1; !c->fatal &&
	     atomic_load_explicit(&c->run->sending, memory_order_relaxed); op++) {
		if (op % REMOVE_EVERY == 0)
			churn_remove_and_add(c);
		else
			churn_replace(c, (unsigned)(op % ROUTES));
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* ---- set-up ---- */

static int setup(struct run *run, struct churn *c)
{
	struct sy_config cfg;
	int rc;

	sy_config_init(&cfg);
	cfg.workers = WORKERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.ring_size = RING_SIZE;
	cfg.max_producers = 8;
	cfg.max_dead_letters = MAX_DEAD_LETTERS;
	cfg.on_backpressure = on_backpressure;
	cfg.callback_ctx = run;
	rc = sy_engine_create(&cfg, &run->eng);
	if (rc) {
		fprintf(stderr, "stress_reliability: create: %s\n", sy_last_error());
		return rc;
	}
	for (unsigned k = 0; k < SERVERS; k++) {
		struct server *sv = &run->servers[k];

		sv->run = run;
		sv->rng = 0x9e3779b97f4a7c15ull * (k + 1);
		sv->slow = k == SLOW;
		if ((rc = server_add(run, k)) != 0) {
			fprintf(stderr, "stress_reliability: server: %s\n",
				sy_last_error());
			return rc;
		}
		c->present[k] = true;
	}
	for (unsigned r = 0; r < ROUTES; r++) {
		static const char *const names[ROUTES] = { "main", "spill", "reject" };
		struct sy_route_opts ro;
		uint32_t ids[SERVERS];

		route_opts(r, &ro);
		ro.servers = ids;
		ro.n_servers = server_list(c, r, ids);
		if (r == MAIN) {
			for (unsigned k = 0; k < SERVERS; k++)
				ids[k] = sid(c, k);
			ro.n_servers = SERVERS;
		}
		rc = sy_route_add(run->eng, names[r], &ro, &run->route[r]);
		if (rc) {
			fprintf(stderr, "stress_reliability: route: %s\n",
				sy_last_error());
			return rc;
		}
	}
	return sy_engine_start(run->eng);
}

static bool run_init(struct run *run, struct producer *prod, double scale)
{
	size_t words;

	run->per_producer = ((uint64_t)(MESSAGES * scale / PRODUCERS) + 63) / 64 * 64;
	if (run->per_producer < 64)
		run->per_producer = 64;
	run->total = run->per_producer * PRODUCERS;
	words = (size_t)(run->total / 64);
	run->accepted = calloc(words, sizeof(*run->accepted));
	run->delivered = calloc(words, sizeof(*run->delivered));
	run->dead = calloc(words, sizeof(*run->dead));
	if (!run->accepted || !run->delivered || !run->dead)
		return false;
	for (size_t w = 0; w < words; w++) {
		atomic_init(&run->delivered[w], 0);
		atomic_init(&run->dead[w], 0);
	}
	atomic_init(&run->sending, true);
	for (unsigned p = 0; p < PRODUCERS; p++)
		prod[p] = (struct producer){
			.run = run,
			.id = p,
			.bursts = p == PRODUCERS - 1,
			.rng = 0x2545f4914f6cdd1dull * (p + 3),
		};
	return true;
}

static void run_free(struct run *run)
{
	if (run->eng)
		sy_engine_destroy(run->eng);
	free(run->accepted);
	free((void *)run->delivered);
	free((void *)run->dead);
}

/* ---- checks ---- */

struct totals {
	uint64_t accepted, refused, gave_up;
	uint64_t delivered, dead, missing, both, stray;
};

static void check_ids(struct run *run, struct totals *t)
{
	for (uint64_t id = 0; id < run->total; id++) {
		bool acc = run->accepted[id / 64] & (1ull << (id % 64));
		bool del = bit_get(run->delivered, id);
		bool dead = bit_get(run->dead, id);

		t->delivered += del;
		t->dead += dead;
		if (!acc && (del || dead))
			t->stray++;
		else if (acc && del && dead)
			t->both++;
		else if (acc && !del && !dead)
			t->missing++;
	}
}

static void verify(struct run *run, const struct producer *prod,
		   const struct churn *c, const struct watcher *w,
		   const struct sy_accounting *a, const struct sy_stats *st,
		   struct totals *t)
{
	uint64_t runs = 0, fails = 0;

	for (unsigned p = 0; p < PRODUCERS; p++) {
		check(!prod[p].fatal, "producer %u: %s returned %d (%s)", p,
		      prod[p].fatal_what ? prod[p].fatal_what : "?",
		      prod[p].fatal, sy_strerror(prod[p].fatal));
		t->accepted += prod[p].accepted;
		t->refused += prod[p].refused;
		t->gave_up += prod[p].gave_up;
	}
	check(!c->fatal, "churn: %s returned %d (%s)",
	      c->fatal_what ? c->fatal_what : "?", c->fatal, sy_strerror(c->fatal));
	check(!w->fatal, "watcher: %s", sy_strerror(w->fatal));
	check_ids(run, t);
	check(t->stray == 0, "%lu ids delivered or dead-lettered but never accepted",
	      (unsigned long)t->stray);
	check(t->both == 0, "%lu ids both delivered and dead-lettered",
	      (unsigned long)t->both);
	check(t->missing == a->evicted, "%lu accepted ids neither delivered nor "
	      "dead-lettered, %lu evictions counted", (unsigned long)t->missing,
	      (unsigned long)a->evicted);
	check(atomic_load(&run->duplicates) == 0, "%lu duplicate deliveries",
	      (unsigned long)atomic_load(&run->duplicates));
	check(atomic_load(&run->dead_twice) == 0, "%lu ids dead-lettered twice",
	      (unsigned long)atomic_load(&run->dead_twice));
	check(atomic_load(&run->bad_id) == 0, "%lu messages with a wrong id",
	      (unsigned long)atomic_load(&run->bad_id));
	check(atomic_load(&run->bad_attempts) == 0,
	      "%lu handler runs with attempts out of [1, %u]",
	      (unsigned long)atomic_load(&run->bad_attempts), MAX_ATTEMPTS);
	check(atomic_load(&run->after_remove) == 0,
	      "%lu handler runs after sy_server_remove() returned",
	      (unsigned long)atomic_load(&run->after_remove));
	check(t->accepted > 0, "nothing was accepted");
	check(a->accepted == t->accepted, "accounting: accepted %lu, producers "
	      "counted %lu", (unsigned long)a->accepted, (unsigned long)t->accepted);
	check(a->accepted == a->delivered + a->dead_lettered + a->evicted,
	      "accounting: accepted %lu != delivered %lu + dead-lettered %lu + "
	      "evicted %lu", (unsigned long)a->accepted,
	      (unsigned long)a->delivered, (unsigned long)a->dead_lettered,
	      (unsigned long)a->evicted);
	check(a->in_flight == 0, "accounting: %lu in flight after stop",
	      (unsigned long)a->in_flight);
	check(a->delivered == t->delivered, "accounting: delivered %lu, handlers "
	      "marked %lu", (unsigned long)a->delivered,
	      (unsigned long)t->delivered);
	check(a->dead_lettered == t->dead, "accounting: dead-lettered %lu, drained "
	      "%lu", (unsigned long)a->dead_lettered, (unsigned long)t->dead);
	check(a->dlq_held == 0, "%lu dead letters left after the last drain",
	      (unsigned long)a->dlq_held);
	/* Every dead letter not evicted has been drained. */
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		check(a->dead_lettered_by[r] == atomic_load(&run->dl_by_reason[r]),
		      "accounting: %lu dead letters for reason %u, drained %lu",
		      (unsigned long)a->dead_lettered_by[r], r,
		      (unsigned long)atomic_load(&run->dl_by_reason[r]));
	for (unsigned k = 0; k < SERVERS; k++) {
		runs += atomic_load(&run->servers[k].runs);
		fails += atomic_load(&run->servers[k].failed);
	}
	check(st->delivered == runs, "stats: %lu handler runs, handlers saw %lu",
	      (unsigned long)st->delivered, (unsigned long)runs);
	check(st->handler_failed == fails, "stats: %lu failed runs, handlers "
	      "failed %lu", (unsigned long)st->handler_failed, (unsigned long)fails);
	check(st->rejected_full + st->rejected_backpressure +
	      st->rejected_unreachable + st->rejected_noroute == t->refused &&
	      st->rejected_shutdown == 0,
	      "stats: refused %lu full + %lu backpressure + %lu unreachable + "
	      "%lu noroute + %lu shutdown, producers counted %lu",
	      (unsigned long)st->rejected_full,
	      (unsigned long)st->rejected_backpressure,
	      (unsigned long)st->rejected_unreachable,
	      (unsigned long)st->rejected_noroute,
	      (unsigned long)st->rejected_shutdown, (unsigned long)t->refused);
	check(w->ahead == 0, "%lu of %lu accounting reads showed more messages "
	      "ended than accepted (by up to %lu)", (unsigned long)w->ahead,
	      (unsigned long)w->reads, (unsigned long)w->worst);
	check(w->unbalanced == 0, "%lu accounting reads where the reasons did "
	      "not add up", (unsigned long)w->unbalanced);
	check(atomic_load(&run->congested_bad) == 0, "%lu on_backpressure calls "
	      "left a worker's congested count out of range",
	      (unsigned long)atomic_load(&run->congested_bad));
	for (unsigned i = 0; i < WORKERS; i++)
		check(atomic_load(&run->congested[i]) == 0, "worker %u: %ld rings "
		      "still congested after stop", i,
		      (long)atomic_load(&run->congested[i]));
}

static void report(const struct run *run, const struct churn *c,
		   const struct watcher *w, const struct sy_accounting *a,
		   const struct sy_stats *st, const struct totals *t,
		   double seconds)
{
	printf("stress_reliability: %s: %lu ids, %lu accepted = %lu delivered + "
	       "%lu dead-lettered (timeout %lu, failed %lu, exhausted %lu, "
	       "unreachable %lu, shutdown %lu) + %lu evicted; %lu runs, %lu "
	       "retried; refused %lu (full %lu, backpressure %lu, unreachable "
	       "%lu), %lu given up; %lu congestion events; churn ~%lu -%lu +%lu; "
	       "%lu accounting reads, %lu drains; %.1f s\n",
	       failed ? "FAIL" : "ok", (unsigned long)run->total,
	       (unsigned long)a->accepted, (unsigned long)a->delivered,
	       (unsigned long)a->dead_lettered,
	       (unsigned long)a->dead_lettered_by[SY_DL_TIMEOUT],
	       (unsigned long)a->dead_lettered_by[SY_DL_HANDLER_FAILED],
	       (unsigned long)a->dead_lettered_by[SY_DL_RETRIES_EXHAUSTED],
	       (unsigned long)a->dead_lettered_by[SY_DL_UNREACHABLE],
	       (unsigned long)a->dead_lettered_by[SY_DL_SHUTDOWN],
	       (unsigned long)a->evicted, (unsigned long)st->delivered,
	       (unsigned long)st->retried, (unsigned long)t->refused,
	       (unsigned long)st->rejected_full,
	       (unsigned long)st->rejected_backpressure,
	       (unsigned long)st->rejected_unreachable, (unsigned long)t->gave_up,
	       (unsigned long)atomic_load(&run->congested_events),
	       (unsigned long)c->replaced, (unsigned long)c->removed,
	       (unsigned long)c->added, (unsigned long)w->reads,
	       (unsigned long)w->drains, seconds);
}

static double seconds_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	static struct run run;
	static struct producer prod[PRODUCERS];
	struct churn c = { .run = &run, .rng = 0x5eed };
	struct watcher w = { .run = &run };
	pthread_t producers[PRODUCERS], churn_thread, watcher_thread;
	double scale = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	bool churn_started, watcher_started;
	struct totals t = { 0 };
	struct sy_accounting a;
	struct sy_stats st;
	unsigned started;
	uint64_t t0 = now_ns();
	int n;

	if (!(scale > 0) || scale > 1000) {
		fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
		return 1;
	}
	if (!run_init(&run, prod, scale)) {
		fprintf(stderr, "stress_reliability: out of memory\n");
		run_free(&run);
		return 1;
	}
	if (setup(&run, &c) != 0) {
		fprintf(stderr, "stress_reliability: setup failed: %s\n",
			sy_last_error());
		run_free(&run);
		return 1;
	}
	for (started = 0; started < PRODUCERS; started++) {
		if (pthread_create(&producers[started], NULL, producer_main,
				   &prod[started])) {
			check(false, "cannot start producer %u", started);
			break;
		}
	}
	churn_started = pthread_create(&churn_thread, NULL, churn_main, &c) == 0;
	check(churn_started, "cannot start the churn thread");
	watcher_started = pthread_create(&watcher_thread, NULL, watcher_main, &w) == 0;
	check(watcher_started, "cannot start the watcher thread");
	for (unsigned p = 0; p < started; p++)
		pthread_join(producers[p], NULL);
	atomic_store(&run.sending, false);
	if (churn_started)
		pthread_join(churn_thread, NULL);
	if (watcher_started)
		pthread_join(watcher_thread, NULL);
	check(sy_engine_stop(run.eng) == 0, "sy_engine_stop failed");
	n = drain_dead_letters(&run);
	check(n >= 0, "sy_dlq_drain: %s", sy_strerror(n));
	sy_engine_accounting(run.eng, &a);
	sy_engine_stats(run.eng, &st);
	verify(&run, prod, &c, &w, &a, &st, &t);
	report(&run, &c, &w, &a, &st, &t, seconds_since(t0));
	run_free(&run);
	return failed ? 1 : 0;
}
