#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

/* ------------------------------------------------------------------ */
/* Engines, servers, routes                                            */
/* ------------------------------------------------------------------ */

sy_engine *t_create(const struct sy_config *cfg)
{
	sy_engine *eng = NULL;

	cr_assert_eq(sy_engine_create(cfg, &eng), 0, "sy_engine_create: %s",
		     sy_last_error());
	return eng;
}

sy_engine *t_engine_at(unsigned workers, struct t_clock *clock,
		       uint64_t start_ns)
{
	struct sy_config cfg;

	if (clock)
		atomic_init(&clock->ns, start_ns);
	t_config(&cfg, workers, clock);
	return t_create(&cfg);
}

uint32_t t_add_server(sy_engine *eng, const char *name, sy_handler_fn fn,
		      void *ctx, int worker)
{
	struct sy_server_opts so = { .worker = worker, .worker_set = true };
	uint32_t id;

	cr_assert_eq(sy_server_add(eng, name, fn, ctx, &so, &id), 0,
		     "sy_server_add(%s): %s", name, sy_last_error());
	return id;
}

void t_add_servers(sy_engine *eng, unsigned n, unsigned digits,
		   sy_handler_fn fn, void *ctxs, size_t size, uint32_t *ids)
{
	unsigned workers = sy_engine_workers(eng);

	for (unsigned i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "server-%0*u", (int)digits, i);
		ids[i] = t_add_server(eng, name, fn, (char *)ctxs + i * size,
				      (int)(i % workers));
	}
}

uint32_t t_add_route(sy_engine *eng, const char *name, struct sy_route_opts ro,
		     const uint32_t *ids, unsigned n)
{
	uint32_t id;

	ro.servers = ids;
	ro.n_servers = n;
	if (!ro.policy)
		ro.policy = n > 1 ? "round_robin" : "direct";
	cr_assert_eq(sy_route_add(eng, name, &ro, &id), 0, "sy_route_add(%s): %s",
		     name, sy_last_error());
	return id;
}

uint32_t t_direct(sy_engine *eng, const char *name, sy_handler_fn fn,
		  void *ctx, int worker, uint32_t *server_id)
{
	uint32_t sid = t_add_server(eng, name, fn, ctx, worker);

	if (server_id)
		*server_id = sid;
	return t_add_route(eng, name, (struct sy_route_opts){ 0 }, &sid, 1);
}

/* ------------------------------------------------------------------ */
/* Messages that carry an id                                           */
/* ------------------------------------------------------------------ */

sy_msg *t_msg_try(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(tag));

	if (m) {
		memcpy(sy_msg_data(m), &tag, sizeof(tag));
		sy_msg_set_tag(m, tag);
	}
	return m;
}

sy_msg *t_msg(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = t_msg_try(eng, tag);

	cr_assert_not_null(m, "sy_msg_alloc: %s", sy_last_error());
	return m;
}

uint64_t t_msg_value(sy_msg *m)
{
	uint64_t v;

	memcpy(&v, sy_msg_data(m), sizeof(v));
	return v;
}

void t_send_tags(sy_engine *eng, uint32_t route, uint64_t first, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(t_send_retry(eng, route, t_msg(eng, first + i),
					  T_WAIT_MS), 0, "message %llu refused",
			     (unsigned long long)(first + i));
}

/* ------------------------------------------------------------------ */
/* A counting server                                                   */
/* ------------------------------------------------------------------ */

int t_server_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct t_server *s = ctx;
	uint64_t tag = sy_msg_tag(msg), id = T_ID(tag);
	unsigned a = sy_msg_attempts(msg);
	int rc = 0;

	(void)eng;
	atomic_store(&s->thread, pthread_self());
	if (tag & T_HOLD)
		t_gate_wait(&s->held, &s->released, T_WAIT_MS);
	if (id < T_MAX_IDS) {
		atomic_store(&s->attempt[id], a);
		atomic_fetch_add(&s->runs[id], 1);
	}
	atomic_fetch_add(&s->by_attempt[a < 7 ? a : 7], 1);
	if (atomic_load(&s->failing) || a < s->fail_before) {
		rc = -EIO;
	} else if (tag & T_REPLY) {
		/* Once sent back the message is no longer ours to read. */
		rc = sy_msg_reply(msg, msg);
		atomic_fetch_add(rc ? &s->reply_failed : &s->replied, 1);
	}
	atomic_fetch_add(rc ? &s->failed : &s->delivered, 1);
	/* Last: the test reads the counts above once it sees handled. */
	atomic_fetch_add(&s->handled, 1);
	return rc;
}

uint32_t t_add_counter(sy_engine *eng, const char *name, struct t_server *s,
		       int worker)
{
	return t_add_server(eng, name, t_server_handler, s, worker);
}

void t_hold(sy_engine *eng, uint32_t route, struct t_server *s, uint64_t id)
{
	uint64_t before = atomic_load(&s->held);

	cr_assert_eq(sy_msg_send(eng, route, t_msg(eng, id | T_HOLD)), 0);
	cr_assert(t_wait_u64(&s->held, before + 1, T_WAIT_MS),
		  "the blocker never reached its handler");
}

void t_expect_each_once(struct t_server *s, uint64_t first, uint64_t n)
{
	for (uint64_t id = first; id < first + n; id++)
		cr_expect_eq(atomic_load(&s->runs[id]), 1, "id %llu ran %u times",
			     (unsigned long long)id, atomic_load(&s->runs[id]));
}

/* ------------------------------------------------------------------ */
/* A ledger of the ids handled                                         */
/* ------------------------------------------------------------------ */

void t_ledger_init(struct t_ledger *l, uint64_t n)
{
	l->n = n;
	l->bits = calloc((n + 63) / 64, sizeof(*l->bits));
	cr_assert_not_null(l->bits);
	atomic_init(&l->got, 0);
	atomic_init(&l->wrong, 0);
}

void t_ledger_fini(struct t_ledger *l)
{
	free(l->bits);
}

bool t_ledger_has(const struct t_ledger *l, uint64_t id)
{
	return atomic_load(&l->bits[id / 64]) & (1ull << (id % 64));
}

uint64_t t_ledger_missing(const struct t_ledger *l)
{
	uint64_t missing = 0;

	for (uint64_t id = 0; id < l->n; id++)
		missing += !t_ledger_has(l, id);
	return missing;
}

int t_ledger_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct t_ledger_server *s = ctx;
	struct t_ledger *l = s->ledger;
	uint64_t id = t_msg_value(msg), bit = 1ull << (id % 64);
	volatile unsigned work = 0;

	(void)eng;
	for (unsigned i = 0; i < s->spin; i++)
		work = work + i;
	/* A second sighting, or an id out of range, is wrong. */
	if (id >= l->n || (atomic_fetch_or(&l->bits[id / 64], bit) & bit))
		atomic_fetch_add(&l->wrong, 1);
	atomic_fetch_add(&s->got, 1);
	atomic_fetch_add(&l->got, 1);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Producer threads of numbered notes                                  */
/* ------------------------------------------------------------------ */

uint64_t t_note_tag(uint32_t producer, uint64_t seq)
{
	return (uint64_t)producer << 32 | seq;
}

sy_msg *t_note_msg(sy_engine *eng, const struct t_note *n)
{
	sy_msg *m = sy_msg_alloc(eng, sizeof(*n));

	if (m) {
		memcpy(sy_msg_data(m), n, sizeof(*n));
		sy_msg_set_tag(m, t_note_tag(n->producer, n->seq));
	}
	return m;
}

void t_producers_init(struct t_producer *ps, unsigned n, sy_engine *eng,
		      const uint32_t *routes, unsigned n_routes, uint64_t total)
{
	for (unsigned p = 0; p < n; p++)
		ps[p] = (struct t_producer){
			.eng = eng, .routes = routes, .n_routes = n_routes,
			.id = p, .quota = total / n + (p < total % n),
		};
}

void t_producers_run(struct t_producer *ps, unsigned n, void *(*fn)(void *))
{
	unsigned started;
	int rc = 0;

	for (started = 0; started < n && rc == 0; started++)
		rc = pthread_create(&ps[started].thread, NULL, fn, &ps[started]);
	if (rc)
		started--;
	for (unsigned p = 0; p < started; p++)
		pthread_join(ps[p].thread, NULL);
	cr_assert_eq(rc, 0, "pthread_create: %s", strerror(rc));
}

void *t_produce_notes(void *arg)
{
	struct t_producer *p = arg;

	for (uint64_t seq = 0; seq < p->quota; seq++) {
		struct t_note n = {
			.producer = p->id,
			.key = (uint32_t)(seq % p->n_routes),
			.seq = seq,
		};
		sy_msg *m = t_note_msg(p->eng, &n);
		int rc;

		if (!m) {
			p->error = -ENOMEM;
			break;
		}
		rc = t_send_retry(p->eng, p->routes[n.key], m, T_WAIT_MS);
		if (rc) {
			sy_msg_free(m);
			p->error = rc;
			break;
		}
		p->accepted++;
		p->sum += seq;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Accounting and dead letters                                         */
/* ------------------------------------------------------------------ */

bool t_wait_dead_letters(sy_engine *eng, size_t want)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;

	while (sy_dlq_count(eng, NULL) < want) {
		if (t_now_ms() > end)
			return false;
		t_sleep_us(20);
	}
	return true;
}

void t_expect_accounting(sy_engine *eng, uint64_t accepted, uint64_t delivered,
			 uint64_t dead)
{
	uint64_t end = t_now_ms() + T_SETTLE_MS;
	struct sy_accounting a;

	/* A worker counts a run after its handler returns: a test that saw
	 * the handler's own count may look a moment before the engine's. */
	do {
		cr_assert_eq(sy_engine_accounting(eng, &a), 0);
		if (a.in_flight == 0)
			break;
		t_sleep_us(50);
	} while (t_now_ms() < end);
	cr_expect_eq(a.accepted, accepted, "accepted %llu, want %llu",
		     (unsigned long long)a.accepted, (unsigned long long)accepted);
	cr_expect_eq(a.delivered, delivered, "delivered %llu, want %llu",
		     (unsigned long long)a.delivered, (unsigned long long)delivered);
	cr_expect_eq(a.dead_lettered + a.evicted, dead,
		     "dead-lettered %llu + evicted %llu, want %llu",
		     (unsigned long long)a.dead_lettered,
		     (unsigned long long)a.evicted, (unsigned long long)dead);
	cr_expect_eq(a.in_flight, 0);
}

void t_expect_replies(sy_engine *eng, uint64_t requests, uint64_t received,
		      uint64_t dropped)
{
	struct sy_stats st;

	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	cr_expect(st.requests == requests && st.replies_received == received &&
		  st.replies_dropped == dropped,
		  "requests, replies received and dropped: %llu, %llu and %llu; "
		  "want %llu, %llu and %llu", (unsigned long long)st.requests,
		  (unsigned long long)st.replies_received,
		  (unsigned long long)st.replies_dropped,
		  (unsigned long long)requests, (unsigned long long)received,
		  (unsigned long long)dropped);
}

void t_expect_balanced(sy_engine *eng)
{
	struct sy_accounting a;
	uint64_t by = 0;

	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	for (unsigned r = 0; r < SY_DL_REASONS; r++)
		by += a.dead_lettered_by[r];
	cr_expect_eq(by, a.dead_lettered);
	cr_expect_eq(a.accepted, a.delivered + a.failed_kept + a.dead_lettered +
		     a.evicted + a.dropped + a.returned,
		     "accepted %llu != delivered %llu + failed, kept %llu + "
		     "dead-lettered %llu + evicted %llu + dropped %llu + "
		     "returned %llu",
		     (unsigned long long)a.accepted,
		     (unsigned long long)a.delivered,
		     (unsigned long long)a.failed_kept,
		     (unsigned long long)a.dead_lettered,
		     (unsigned long long)a.evicted,
		     (unsigned long long)a.dropped,
		     (unsigned long long)a.returned);
	cr_expect_eq(a.in_flight, 0);
}

static void take_letter(sy_engine *eng, const struct sy_dead_letter *dl,
			sy_msg *msg, void *ctx)
{
	struct t_letters *l = ctx;
	uint64_t id = T_ID(dl->tag);

	(void)eng;
	if (l->n < 16) {
		l->dl[l->n] = *dl;
		l->value[l->n] = t_msg_value(msg);
	}
	l->n++;
	if (dl->reason < SY_DL_REASONS)
		l->by_reason[dl->reason]++;
	l->by_attempts[dl->attempts < 7 ? dl->attempts : 7]++;
	if (id >= T_MAX_IDS || l->seen[id]++)
		l->bad_id++;
	sy_msg_free(msg);
}

void t_drain_letters(sy_engine *eng, struct t_letters *l)
{
	int n;

	memset(l, 0, sizeof(*l));
	n = sy_dlq_drain(eng, NULL, take_letter, l);
	cr_assert_geq(n, 0, "sy_dlq_drain: %d", n);
	cr_assert_eq((unsigned)n, l->n);
	cr_expect_eq(l->bad_id, 0, "%u dead letters with a stray or repeated id",
		     l->bad_id);
}
