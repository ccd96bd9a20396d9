/*
 * Stress: traffic while the routing table churns.
 *
 * Three sender threads (one attached explicitly that detaches and
 * re-attaches now and then, one never attached so that its first send
 * attaches it lazily, one attached explicitly that sends bursts) send
 * messages to a few routes. Each message carries its producer id and
 * sequence number in its first 8 bytes and a canary over the rest of a
 * payload of 8 to 512 bytes. Meanwhile a churn thread adds and removes
 * servers, replaces the routes' server sets (round_robin), and removes and
 * re-adds routes.
 *
 * Handlers check the canary and set the message's bit in a per-producer
 * bitmap (a bit found set already is a duplicate), and check that their
 * server has not been removed. A send that fails (-ENOENT, -EHOSTUNREACH,
 * -EAGAIN after a few retries) leaves the message with the sender, who
 * frees it and does not count it. After sy_engine_stop() the delivered
 * bitmaps must equal the accepted ones exactly, and the engine's counters
 * must agree with the senders'.
 *
 * A plain executable, not a Criterion suite, so that it also runs under
 * ThreadSanitizer; it uses C11 atomics only. Every wait is bounded.
 * Usage: stress_churn [scale]. The churn thread makes CHURN_OPS * scale
 * changes (scale > 0, default 1); the senders send until it is done.
 * Exit status 0 on success, 1 on failure; one summary line on stdout.
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

#define N_SENDERS 3
#define N_ROUTES 4
#define N_SERVERS 12
#define WORKERS 2
#define CHURN_OPS 4000u      /* at scale 1 */
#define SEQ_CAP (1u << 25)   /* messages per sender at most */
#define BURST_MAX 16u
#define PAYLOAD_MIN 8u
#define PAYLOAD_MAX 512u
#define EAGAIN_TRIES 200u
#define REATTACH_EVERY 40000u
#define SEQ_BITS 56

enum sender_mode { SEND_EXPLICIT, SEND_LAZY, SEND_BURST };

struct server_slot {
	struct run *run;
	_Atomic bool alive;        /* its handler may run */
	bool present;              /* churn thread only */
	uint32_t id;               /* churn thread only */
};

struct run {
	sy_engine *eng;
	uint64_t nseq;             /* sequence numbers per sender, at most */
	uint64_t churn_ops;
	_Atomic uint32_t route_ids[N_ROUTES]; /* latest id, stale once removed */
	struct server_slot servers[N_SERVERS];
	_Atomic uint64_t *delivered[N_SENDERS];  /* bitmaps, nseq bits */
	_Atomic uint64_t duplicates;
	_Atomic uint64_t bad_canary;
	_Atomic uint64_t bad_size;
	_Atomic uint64_t bad_header;
	_Atomic uint64_t after_remove;
	_Atomic bool churning;     /* senders send while it is true */
};

struct sender {
	struct run *run;
	unsigned id;
	enum sender_mode mode;
	uint64_t rng;
	uint64_t *accepted_bits;   /* nseq bits; this thread only */
	uint64_t accepted;
	uint64_t refused;          /* refused message-attempts, retries included */
	uint64_t gave_up;          /* messages freed unsent */
	uint64_t reattaches;
	int fatal;                 /* an unexpected return code, 0 if none */
	const char *fatal_what;
};

struct churn {
	struct run *run;
	uint64_t rng;
	bool route_present[N_ROUTES];
	uint64_t servers_added, servers_removed;
	uint64_t routes_added, routes_removed, routes_replaced, finds;
	int fatal;
	const char *fatal_what;
};

/* ---- payloads ---- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *state)
{
	*state = mix(*state);
	return *state;
}

static uint64_t header_of(unsigned producer, uint64_t seq)
{
	return (uint64_t)producer << SEQ_BITS | seq;
}

static size_t payload_size(unsigned producer, uint64_t seq)
{
	return PAYLOAD_MIN + mix(header_of(producer, seq)) %
	       (PAYLOAD_MAX - PAYLOAD_MIN + 1);
}

static unsigned char canary(unsigned producer, uint64_t seq, size_t i)
{
	return (unsigned char)(seq * 131u + producer * 29u + i * 7u + (i >> 8));
}

static sy_msg *message_new(sy_engine *eng, unsigned producer, uint64_t seq)
{
	size_t size = payload_size(producer, seq);
	uint64_t header = header_of(producer, seq);
	sy_msg *m = sy_msg_alloc(eng, size);
	unsigned char *d;

	if (!m)
		return NULL;
	d = sy_msg_data(m);
	memcpy(d, &header, sizeof(header));
	for (size_t i = sizeof(header); i < size; i++)
		d[i] = canary(producer, seq, i);
	sy_msg_set_tag(m, header);
	return m;
}

/* ---- the handler every server runs ---- */

static int check_handler(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct server_slot *sv = ctx;
	struct run *run = sv->run;
	const unsigned char *d = sy_msg_data(m);
	size_t size = sy_msg_size(m);
	uint64_t header, seq, bit, old;
	unsigned producer;

	(void)eng;
	/* Acquire pairs with the churn thread's release store of alive. */
	if (!atomic_load_explicit(&sv->alive, memory_order_acquire))
		atomic_fetch_add_explicit(&run->after_remove, 1, memory_order_relaxed);
	if (size < PAYLOAD_MIN || size > PAYLOAD_MAX) {
		atomic_fetch_add_explicit(&run->bad_size, 1, memory_order_relaxed);
		return -EINVAL;
	}
	memcpy(&header, d, sizeof(header));
	producer = (unsigned)(header >> SEQ_BITS);
	seq = header & ((1ull << SEQ_BITS) - 1);
	if (producer >= N_SENDERS || seq >= run->nseq || sy_msg_tag(m) != header) {
		atomic_fetch_add_explicit(&run->bad_header, 1, memory_order_relaxed);
		return -EINVAL;
	}
	if (size != payload_size(producer, seq))
		atomic_fetch_add_explicit(&run->bad_size, 1, memory_order_relaxed);
	for (size_t i = sizeof(header); i < size; i++) {
		if (d[i] != canary(producer, seq, i)) {
			atomic_fetch_add_explicit(&run->bad_canary, 1,
						  memory_order_relaxed);
			break;
		}
	}
	bit = 1ull << (seq % 64);
	/* Relaxed: main reads the bitmaps after joining the workers. */
	old = atomic_fetch_or_explicit(&run->delivered[producer][seq / 64], bit,
				       memory_order_relaxed);
	if (old & bit)
		atomic_fetch_add_explicit(&run->duplicates, 1, memory_order_relaxed);
	return 0;
}

/* ---- senders ---- */

static void sender_fail(struct sender *s, const char *what, int rc)
{
	if (!s->fatal) {
		s->fatal = rc ? rc : -1;
		s->fatal_what = what;
	}
}

static void mark_accepted(struct sender *s, uint64_t seq)
{
	s->accepted_bits[seq / 64] |= 1ull << (seq % 64);
	s->accepted++;
}

static bool expected_refusal(int rc)
{
	return rc == -ENOENT || rc == -EHOSTUNREACH || rc == -EAGAIN;
}

static uint32_t pick_route(struct sender *s)
{
	unsigned slot = (unsigned)(rnd(&s->rng) % N_ROUTES);

	return atomic_load_explicit(&s->run->route_ids[slot], memory_order_relaxed);
}

static void send_single(struct sender *s, uint64_t seq)
{
	struct run *run = s->run;
	sy_msg *m = message_new(run->eng, s->id, seq);
	uint32_t route = pick_route(s);
	int rc;

	if (!m) {
		sender_fail(s, "sy_msg_alloc", -ENOMEM);
		return;
	}
	for (unsigned tries = 0;; tries++) {
		rc = sy_send(run->eng, route, m);
		if (rc == 0) {
			mark_accepted(s, seq);
			return;
		}
		s->refused++;
		if (!expected_refusal(rc)) {
			sender_fail(s, "sy_send", rc);
			break;
		}
		if (rc != -EAGAIN || tries == EAGAIN_TRIES)
			break;
		sched_yield();
	}
	s->gave_up++;
	sy_msg_free(m);
}

/* Send seq .. seq + n - 1 as one burst; retry what the engine refuses. */
static void send_burst(struct sender *s, uint64_t seq, unsigned n)
{
	struct run *run = s->run;
	sy_msg *msgs[BURST_MAX], *sent_as[BURST_MAX];
	uint32_t route = pick_route(s);
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		msgs[i] = message_new(run->eng, s->id, seq + i);
		if (!msgs[i]) {
			sender_fail(s, "sy_msg_alloc", -ENOMEM);
			n = i;
			break;
		}
		sent_as[i] = msgs[i];
	}
	for (unsigned tries = 0; done < n; tries++) {
		int rc = sy_send_burst(run->eng, route, msgs + done, n - done);
		unsigned k = rc > 0 ? (unsigned)rc : 0;

		/* An accepted message is the engine's: identify it by its
		 * address alone, never by reading it. */
		for (unsigned a = done; a < done + k; a++)
			for (unsigned j = 0; j < n; j++)
				if (sent_as[j] == msgs[a])
					mark_accepted(s, seq + j);
		done += k;
		s->refused += n - done;
		if (rc < 0 && !expected_refusal(rc)) {
			sender_fail(s, "sy_send_burst", rc);
			break;
		}
		if (done == n || tries == EAGAIN_TRIES || (rc < 0 && rc != -EAGAIN))
			break;
		sched_yield();
	}
	for (unsigned i = done; i < n; i++) {
		s->gave_up++;
		sy_msg_free(msgs[i]);
	}
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct run *run = s->run;
	int rc;

	if (s->mode != SEND_LAZY && (rc = sy_producer_attach(run->eng)) != 0)
		sender_fail(s, "sy_producer_attach", rc);
	/* Relaxed: the flag only says when to stop, it publishes nothing. */
	for (uint64_t seq = 0; seq < run->nseq && !s->fatal &&
	     atomic_load_explicit(&run->churning, memory_order_relaxed);) {
		if (s->mode == SEND_BURST) {
			uint64_t n = 1 + rnd(&s->rng) % BURST_MAX;

			if (n > run->nseq - seq)
				n = run->nseq - seq;
			send_burst(s, seq, (unsigned)n);
			seq += n;
			continue;
		}
		send_single(s, seq++);
		if (s->mode == SEND_EXPLICIT && seq % REATTACH_EVERY == 0) {
			if ((rc = sy_producer_detach(run->eng)) != 0)
				sender_fail(s, "sy_producer_detach", rc);
			if ((rc = sy_producer_attach(run->eng)) != 0)
				sender_fail(s, "sy_producer_attach (again)", rc);
			s->reattaches++;
		}
	}
	if (s->mode != SEND_LAZY && (rc = sy_producer_detach(run->eng)) != 0)
		sender_fail(s, "sy_producer_detach", rc);
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

static void server_name(char *buf, size_t len, unsigned slot)
{
	snprintf(buf, len, "s%u", slot);
}

static void route_name(char *buf, size_t len, unsigned slot)
{
	snprintf(buf, len, "r%u", slot);
}

/* A random slot whose presence is @p present, or -1 if there is none. */
static int pick_server_slot(struct churn *c, bool present)
{
	unsigned start = (unsigned)(rnd(&c->rng) % N_SERVERS);

	for (unsigned i = 0; i < N_SERVERS; i++) {
		unsigned k = (start + i) % N_SERVERS;

		if (c->run->servers[k].present == present)
			return (int)k;
	}
	return -1;
}

static int pick_route_slot(struct churn *c, bool present)
{
	unsigned start = (unsigned)(rnd(&c->rng) % N_ROUTES);

	for (unsigned i = 0; i < N_ROUTES; i++) {
		unsigned k = (start + i) % N_ROUTES;

		if (c->route_present[k] == present)
			return (int)k;
	}
	return -1;
}

/* Fill @p ids with 1 to 4 distinct present servers; returns how many (0 if none). */
static unsigned pick_server_set(struct churn *c, uint32_t *ids)
{
	unsigned want = 1 + (unsigned)(rnd(&c->rng) % 4), n = 0;
	unsigned start = (unsigned)(rnd(&c->rng) % N_SERVERS);

	for (unsigned i = 0; i < N_SERVERS && n < want; i++) {
		struct server_slot *sv = &c->run->servers[(start + i) % N_SERVERS];

		if (sv->present)
			ids[n++] = sv->id;
	}
	return n;
}

static void churn_add_server(struct churn *c)
{
	struct run *run = c->run;
	int k = pick_server_slot(c, false);
	struct sy_server_opts opts = { .worker = -1 };
	struct server_slot *sv;
	char name[16];
	int rc;

	if (k < 0)
		return;
	sv = &run->servers[k];
	opts.worker = (int)(rnd(&c->rng) % (WORKERS + 1)) - 1;
	server_name(name, sizeof(name), (unsigned)k);
	/* Release pairs with the handler's acquire load. */
	atomic_store_explicit(&sv->alive, true, memory_order_release);
	rc = sy_server_add(run->eng, name, check_handler, sv, &opts, &sv->id);
	if (rc) {
		churn_fail(c, "sy_server_add", rc);
		return;
	}
	sv->present = true;
	c->servers_added++;
}

static void churn_remove_server(struct churn *c)
{
	int k = pick_server_slot(c, true);
	struct server_slot *sv;
	int rc;

	if (k < 0)
		return;
	sv = &c->run->servers[k];
	rc = sy_server_remove(c->run->eng, sv->id);
	if (rc) {
		churn_fail(c, "sy_server_remove", rc);
		return;
	}
	/* Every message for it has been handled: no handler may run now. */
	atomic_store_explicit(&sv->alive, false, memory_order_release);
	sv->present = false;
	c->servers_removed++;
}

static void churn_replace_route(struct churn *c)
{
	struct sy_route_opts opts = { .policy = "round_robin" };
	int k = pick_route_slot(c, true);
	uint32_t ids[4];
	int rc;

	if (k < 0)
		return;
	opts.servers = ids;
	opts.n_servers = pick_server_set(c, ids);
	if (!opts.n_servers)
		return;
	rc = sy_route_replace(c->run->eng,
			      atomic_load(&c->run->route_ids[k]), &opts);
	if (rc) {
		churn_fail(c, "sy_route_replace", rc);
		return;
	}
	c->routes_replaced++;
}

static void churn_add_route(struct churn *c)
{
	struct sy_route_opts opts = { .policy = "round_robin" };
	int k = pick_route_slot(c, false);
	uint32_t ids[4], id;
	char name[16];
	int rc;

	if (k < 0)
		return;
	opts.servers = ids;
	opts.n_servers = pick_server_set(c, ids);
	if (!opts.n_servers)
		return;
	route_name(name, sizeof(name), (unsigned)k);
	rc = sy_route_add(c->run->eng, name, &opts, &id);
	if (rc) {
		churn_fail(c, "sy_route_add", rc);
		return;
	}
	atomic_store_explicit(&c->run->route_ids[k], id, memory_order_relaxed);
	c->route_present[k] = true;
	c->routes_added++;
}

static void churn_remove_route(struct churn *c)
{
	int k = pick_route_slot(c, true);
	int rc;

	if (k < 0)
		return;
	/* The id stays in route_ids: senders that use it get -ENOENT. */
	rc = sy_route_remove(c->run->eng, atomic_load(&c->run->route_ids[k]));
	if (rc) {
		churn_fail(c, "sy_route_remove", rc);
		return;
	}
	c->route_present[k] = false;
	c->routes_removed++;
}

/* Names and ids agree with what the churn thread did. */
static void churn_check_names(struct churn *c)
{
	unsigned k = (unsigned)(rnd(&c->rng) % N_ROUTES);
	char name[16];
	uint32_t id;
	int rc;

	route_name(name, sizeof(name), k);
	rc = sy_route_find(c->run->eng, name, &id);
	if (c->route_present[k] ? rc != 0 || id != atomic_load(&c->run->route_ids[k])
				: rc != -ENOENT)
		churn_fail(c, "sy_route_find disagrees", rc);
	k = (unsigned)(rnd(&c->rng) % N_SERVERS);
	server_name(name, sizeof(name), k);
	rc = sy_server_find(c->run->eng, name, &id);
	if (c->run->servers[k].present ? rc != 0 || id != c->run->servers[k].id
				       : rc != -ENOENT)
		churn_fail(c, "sy_server_find disagrees", rc);
	c->finds++;
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;

	for (uint64_t op = 0; op < c->run->churn_ops && !c->fatal; op++) {
		unsigned r = (unsigned)(rnd(&c->rng) % 100);

		if (r < 18)
			churn_add_server(c);
		else if (r < 33)
			churn_remove_server(c);
		else if (r < 73)
			churn_replace_route(c);
		else if (r < 79)
			churn_remove_route(c);
		else if (r < 92)
			churn_add_route(c);
		else
			churn_check_names(c);
		sched_yield();
	}
	atomic_store_explicit(&c->run->churning, false, memory_order_relaxed);
	return NULL;
}

/* ---- set-up and checks ---- */

static bool failed;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	failed = true;
	fputs("stress_churn: FAIL: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int setup(struct run *run, struct churn *c)
{
	struct sy_config cfg;
	int rc;

	sy_config_init(&cfg);
	cfg.workers = WORKERS;
	cfg.pin = SY_PIN_NONE;
	cfg.idle = SY_IDLE_SLEEP;
	cfg.max_producers = 8;
	cfg.max_servers = 32;
	cfg.max_routes = 16;
	rc = sy_engine_create(&cfg, &run->eng);
	if (rc) {
		fprintf(stderr, "stress_churn: create: %s\n", sy_last_error());
		return rc;
	}
	for (unsigned k = 0; k < N_SERVERS; k++) {
		run->servers[k].run = run;
		atomic_init(&run->servers[k].alive, false);
	}
	for (unsigned k = 0; k < N_SERVERS / 2; k++)
		churn_add_server(c);
	for (unsigned k = 0; k < N_ROUTES; k++)
		churn_add_route(c);
	if (c->fatal) {
		fprintf(stderr, "stress_churn: setup: %s: %s (%s)\n", c->fatal_what,
			sy_strerror(c->fatal), sy_last_error());
		return c->fatal;
	}
	return sy_engine_start(run->eng);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Compare what the handlers saw with what the senders had accepted. */
static void check_bitmaps(struct run *run, struct sender *senders,
			  uint64_t *delivered_total)
{
	size_t words = (size_t)(run->nseq + 63) / 64;

	*delivered_total = 0;
	for (unsigned p = 0; p < N_SENDERS; p++) {
		uint64_t lost = 0, extra = 0, first_lost = UINT64_MAX;

		for (size_t w = 0; w < words; w++) {
			uint64_t got = atomic_load_explicit(&run->delivered[p][w],
							    memory_order_relaxed);
			uint64_t want = senders[p].accepted_bits[w];

			*delivered_total += (uint64_t)__builtin_popcountll(got);
			lost += (uint64_t)__builtin_popcountll(want & ~got);
			extra += (uint64_t)__builtin_popcountll(got & ~want);
			if ((want & ~got) && first_lost == UINT64_MAX)
				first_lost = w * 64 + (uint64_t)__builtin_ctzll(want & ~got);
		}
		check(lost == 0, "producer %u: %lu accepted messages never handled (first seq %lu)",
		      p, (unsigned long)lost, (unsigned long)first_lost);
		check(extra == 0, "producer %u: %lu messages handled that were never accepted",
		      p, (unsigned long)extra);
	}
}

struct totals {
	uint64_t accepted, refused, gave_up, delivered;
};

/* Bitmaps and sender states; false when out of memory. */
static bool run_init(struct run *run, struct sender *senders, double scale)
{
	size_t words;

	run->nseq = SEQ_CAP;
	run->churn_ops = (uint64_t)(CHURN_OPS * scale);
	if (run->churn_ops < 50)
		run->churn_ops = 50;
	words = (size_t)(run->nseq + 63) / 64;
	atomic_init(&run->duplicates, 0);
	atomic_init(&run->bad_canary, 0);
	atomic_init(&run->bad_size, 0);
	atomic_init(&run->bad_header, 0);
	atomic_init(&run->after_remove, 0);
	atomic_init(&run->churning, true);
	for (unsigned p = 0; p < N_SENDERS; p++) {
		run->delivered[p] = calloc(words, sizeof(run->delivered[p][0]));
		senders[p] = (struct sender){
			.run = run,
			.id = p,
			.mode = (enum sender_mode)p,
			.rng = mix(p + 1),
			.accepted_bits = calloc(words, sizeof(uint64_t)),
		};
		if (!run->delivered[p] || !senders[p].accepted_bits)
			return false;
		for (size_t w = 0; w < words; w++)
			atomic_init(&run->delivered[p][w], 0);
	}
	return true;
}

static void run_free(struct run *run, struct sender *senders)
{
	if (run->eng)
		sy_engine_destroy(run->eng);
	for (unsigned p = 0; p < N_SENDERS; p++) {
		free(run->delivered[p]);
		free(senders[p].accepted_bits);
	}
}

/* Start the senders and the churn thread, wait for all, stop the engine. */
static void run_threads(struct run *run, struct sender *senders, struct churn *c)
{
	pthread_t sender_threads[N_SENDERS], churn_thread;
	bool churn_started;
	unsigned started;

	for (started = 0; started < N_SENDERS; started++) {
		if (pthread_create(&sender_threads[started], NULL, sender_main,
				   &senders[started])) {
			check(false, "cannot start sender %u", started);
			break;
		}
	}
	churn_started = pthread_create(&churn_thread, NULL, churn_main, c) == 0;
	if (!churn_started) {
		check(false, "cannot start the churn thread");
		atomic_store(&run->churning, false);
	}
	for (unsigned p = 0; p < started; p++)
		pthread_join(sender_threads[p], NULL);
	if (churn_started)
		pthread_join(churn_thread, NULL);
	check(sy_engine_stop(run->eng) == 0, "sy_engine_stop failed");
}

static void verify(struct run *run, struct sender *senders,
		   const struct churn *c, const struct sy_stats *st,
		   struct totals *t)
{
	for (unsigned p = 0; p < N_SENDERS; p++) {
		check(!senders[p].fatal, "sender %u: %s returned %d (%s)", p,
		      senders[p].fatal_what ? senders[p].fatal_what : "?",
		      senders[p].fatal, sy_strerror(senders[p].fatal));
		t->accepted += senders[p].accepted;
		t->refused += senders[p].refused;
		t->gave_up += senders[p].gave_up;
	}
	check(!c->fatal, "churn: %s returned %d (%s)",
	      c->fatal_what ? c->fatal_what : "?", c->fatal, sy_strerror(c->fatal));
	check_bitmaps(run, senders, &t->delivered);
	check(atomic_load(&run->duplicates) == 0, "%lu duplicate deliveries",
	      (unsigned long)atomic_load(&run->duplicates));
	check(atomic_load(&run->bad_canary) == 0, "%lu damaged payloads",
	      (unsigned long)atomic_load(&run->bad_canary));
	check(atomic_load(&run->bad_size) == 0, "%lu wrong payload sizes",
	      (unsigned long)atomic_load(&run->bad_size));
	check(atomic_load(&run->bad_header) == 0, "%lu unreadable headers",
	      (unsigned long)atomic_load(&run->bad_header));
	check(atomic_load(&run->after_remove) == 0,
	      "%lu handler runs after sy_server_remove() returned",
	      (unsigned long)atomic_load(&run->after_remove));
	check(t->accepted > 0, "nothing was accepted");
	check(st->accepted == st->delivered, "stats: accepted %lu != delivered %lu",
	      (unsigned long)st->accepted, (unsigned long)st->delivered);
	check(st->accepted == t->accepted, "stats: accepted %lu, senders counted %lu",
	      (unsigned long)st->accepted, (unsigned long)t->accepted);
	check(st->delivered == t->delivered, "stats: delivered %lu, handlers saw %lu",
	      (unsigned long)st->delivered, (unsigned long)t->delivered);
	check(st->handler_failed == 0, "stats: %lu handler failures",
	      (unsigned long)st->handler_failed);
	check(st->rejected_noroute + st->rejected_unreachable +
	      st->rejected_full == t->refused && st->rejected_shutdown == 0,
	      "stats: refused %lu/%lu/%lu/%lu (noroute/unreachable/full/shutdown), "
	      "senders counted %lu",
	      (unsigned long)st->rejected_noroute,
	      (unsigned long)st->rejected_unreachable,
	      (unsigned long)st->rejected_full,
	      (unsigned long)st->rejected_shutdown, (unsigned long)t->refused);
}

static void report(const struct churn *c, const struct sy_stats *st,
		   const struct totals *t, double seconds)
{
	printf("stress_churn: %s: %lu accepted = %lu delivered, %lu refused "
	       "(%lu noroute, %lu unreachable, %lu full), %lu given up; churn: "
	       "servers +%lu -%lu, routes +%lu -%lu ~%lu, %lu finds; %.1f s\n",
	       failed ? "FAIL" : "ok", (unsigned long)t->accepted,
	       (unsigned long)t->delivered, (unsigned long)t->refused,
	       (unsigned long)st->rejected_noroute,
	       (unsigned long)st->rejected_unreachable,
	       (unsigned long)st->rejected_full, (unsigned long)t->gave_up,
	       (unsigned long)c->servers_added, (unsigned long)c->servers_removed,
	       (unsigned long)c->routes_added, (unsigned long)c->routes_removed,
	       (unsigned long)c->routes_replaced, (unsigned long)c->finds,
	       seconds);
}

int main(int argc, char **argv)
{
	static struct run run;
	static struct sender senders[N_SENDERS];
	struct churn c = { .run = &run, .rng = 0x5eed };
	double scale = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	struct totals t = { 0 };
	struct sy_stats st;
	struct timespec t0;

	if (!(scale > 0) || scale > 1000) {
		fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!run_init(&run, senders, scale)) {
		fprintf(stderr, "stress_churn: out of memory\n");
		run_free(&run, senders);
		return 1;
	}
	if (setup(&run, &c) != 0) {
		fprintf(stderr, "stress_churn: setup failed: %s\n", sy_last_error());
		run_free(&run, senders);
		return 1;
	}
	run_threads(&run, senders, &c);
	sy_engine_stats(run.eng, &st);
	verify(&run, senders, &c, &st, &t);
	report(&c, &st, &t, seconds_since(&t0));
	run_free(&run, senders);
	return failed ? 1 : 0;
}
