/*
 * Dead letter queue tests.
 *
 * Messages come from sy_msg_alloc() on the test thread and enter the queue
 * through sy__dead_letter(), as a worker or sender would put them there,
 * with the route, server, reason and attempts each test chooses. The engine
 * runs on a fake clock, so first_ns and last_ns are what the test set. The
 * replay tests run a real engine and count what the handler receives.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/dlq.h"
#include "core/engine.h"
#include "core/msg.h"
#include "core/slot.h"
#include "metrics/shard.h"
#include "tests/fixture.h"

#define CAP 8u

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

struct rig {
	struct t_clock clock;
	sy_engine *eng;
	bool own_dlq;              /* the test made the queue, not the engine */
};

static void rig_init(struct rig *r, unsigned cap)
{
	struct sy_config cfg;

	atomic_init(&r->clock.ns, 1000);
	t_config(&cfg, 1, &r->clock);
	cfg.max_dead_letters = cap;
	r->eng = t_create(&cfg);
	r->own_dlq = !r->eng->dlq;
	if (r->own_dlq)
		cr_assert_eq(sy__dlq_init(r->eng), 0);
}

static void rig_fini(struct rig *r)
{
	if (r->own_dlq) {
		sy_engine_stop(r->eng);
		sy__dlq_destroy(r->eng);
	}
	sy_engine_destroy(r->eng);
}

/* A message of 8 bytes carrying @p tag in its payload and its tag, and
 * key tag * 10. */
static sy_msg *tagged(sy_engine *eng, uint64_t tag)
{
	sy_msg *m = t_msg(eng, tag);

	sy_msg_set_key(m, tag * 10);
	return m;
}

/* Dead-letter a new message as a worker would after @p attempts runs. */
static void push(struct rig *r, uint64_t tag, enum sy_dl_reason reason,
		 uint32_t route, uint32_t server, unsigned attempts)
{
	sy_msg *m = tagged(r->eng, tag);

	m->route_id = route;
	m->attempts = attempts & 0xff;
	sy__dead_letter(r->eng, sy__slot_self(r->eng), m, reason, server);
}

static struct sy_accounting accounting(struct rig *r)
{
	struct sy_accounting a;

	memset(&a, 0, sizeof(a));
	sy__dlq_accounting(r->eng, &a);
	return a;
}

static unsigned list_all(struct rig *r, const struct sy_dl_filter *f,
			 struct sy_dead_letter *out, unsigned max)
{
	int n = sy_dlq_list(r->eng, f, out, max);

	cr_assert_geq(n, 0, "sy_dlq_list: %d", n);
	return (unsigned)n;
}

/* ------------------------------------------------------------------ */
/* Capacity, eviction and counts                                      */
/* ------------------------------------------------------------------ */

Test(reliability_dlq, keeps_the_newest_and_counts_what_it_evicts)
{
	const unsigned pushed = 20;
	uint64_t held_by[SY_DL_REASONS] = { 0 };
	struct sy_dead_letter dl[CAP + 1];
	struct sy_accounting a;
	uint64_t sum = 0;
	struct rig r;

	rig_init(&r, CAP);
	for (unsigned i = 0; i < pushed; i++)
		push(&r, i, (enum sy_dl_reason)(i % SY_DL_REASONS), 3, 1, 1);
	for (unsigned i = pushed - CAP; i < pushed; i++)
		held_by[i % SY_DL_REASONS]++;

	cr_assert_eq(sy_dlq_count(r.eng, NULL), CAP);
	cr_assert_eq(list_all(&r, NULL, dl, CAP + 1), CAP);
	for (unsigned i = 0; i < CAP; i++) {
		cr_assert_eq(dl[i].tag, pushed - CAP + i, "oldest evicted first");
		if (i)
			cr_assert_gt(dl[i].id, dl[i - 1].id, "ids increase");
	}
	a = accounting(&r);
	cr_assert_eq(a.evicted, pushed - CAP);
	cr_assert_eq(a.dead_lettered, CAP);
	cr_assert_eq(a.dead_lettered + a.evicted, pushed);
	cr_assert_eq(a.dlq_held, CAP);
	cr_assert_eq(a.replayed, 0);
	for (unsigned k = 0; k < SY_DL_REASONS; k++) {
		cr_assert_eq(a.dead_lettered_by[k], held_by[k], "reason %u", k);
		sum += a.dead_lettered_by[k];
	}
	cr_assert_eq(sum, a.dead_lettered);
	rig_fini(&r);
}

Test(reliability_dlq, counts_in_the_senders_metrics_shard)
{
	struct sy__slot *self;
	struct rig r;

	rig_init(&r, CAP);
	push(&r, 1, SY_DL_TIMEOUT, 3, 2, 1);
	push(&r, 2, SY_DL_TIMEOUT, 3, SY_ANY, 1);
	push(&r, 3, SY_DL_BACKPRESSURE, 4, 2, 1);
	self = sy__slot_self(r.eng);
	cr_assert_not_null(self);
	if (self->shard) {
		struct sy__shard *sh = self->shard;

		cr_assert_eq(atomic_load(&sh->route[3].v[SY_SC_DL + SY_DL_TIMEOUT]), 2);
		cr_assert_eq(atomic_load(&sh->route[4].v[SY_SC_DL + SY_DL_BACKPRESSURE]), 1);
		cr_assert_eq(atomic_load(&sh->server[2].v[SY_SC_DL + SY_DL_TIMEOUT]), 1,
			     "SY_ANY is no server");
		cr_assert_eq(atomic_load(&sh->server[2].v[SY_SC_DL + SY_DL_BACKPRESSURE]), 1);
	}
	rig_fini(&r);
}

Test(reliability_dlq, entry_records_what_happened_to_the_message)
{
	struct sy_dead_letter dl[2];
	struct rig r;

	rig_init(&r, CAP);
	atomic_store(&r.clock.ns, 5000);
	push(&r, 42, SY_DL_RETRIES_EXHAUSTED, 6, 2, 3);
	cr_assert_eq(list_all(&r, NULL, dl, 2), 1);
	cr_assert_eq(dl[0].reason, SY_DL_RETRIES_EXHAUSTED);
	cr_assert_eq(dl[0].route, 6);
	cr_assert_eq(dl[0].server, 2);
	cr_assert_eq(dl[0].attempts, 3);
	cr_assert_eq(dl[0].first_ns, 5000);
	cr_assert_eq(dl[0].last_ns, 5000);
	cr_assert_eq(dl[0].tag, 42);
	cr_assert_eq(dl[0].key, 420);
	cr_assert_eq(dl[0].size, sizeof(uint64_t));
	rig_fini(&r);
}

struct taken {
	sy_msg *msgs[32];
	struct sy_dead_letter dl[32];
	unsigned n;
};

static void take(sy_engine *eng, const struct sy_dead_letter *dl, sy_msg *m,
		 void *ctx)
{
	struct taken *t = ctx;

	(void)eng;
	cr_assert_lt(t->n, 32);
	t->dl[t->n] = *dl;
	t->msgs[t->n++] = m;
}

Test(reliability_dlq, message_dead_lettered_again_keeps_its_first_time)
{
	struct taken t = { .n = 0 };
	struct sy_dead_letter dl[2];
	struct rig r;

	rig_init(&r, CAP);
	atomic_store(&r.clock.ns, 5000);
	push(&r, 1, SY_DL_TIMEOUT, 0, 0, 1);
	cr_assert_eq(sy_dlq_drain(r.eng, NULL, take, &t), 1);
	atomic_store(&r.clock.ns, 9000);
	sy__dead_letter(r.eng, sy__slot_self(r.eng), t.msgs[0],
			SY_DL_HANDLER_FAILED, 0);
	cr_assert_eq(list_all(&r, NULL, dl, 2), 1);
	cr_assert_eq(dl[0].first_ns, 5000);
	cr_assert_eq(dl[0].last_ns, 9000);
	cr_assert_gt(dl[0].id, t.dl[0].id, "a new entry, a new id");
	cr_assert_eq(accounting(&r).dead_lettered, 2);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Filters, list, count, peek                                         */
/* ------------------------------------------------------------------ */

/* Six entries at times 1000..6000: tags 0..5. */
static void push_mix(struct rig *r)
{
	static const struct {
		enum sy_dl_reason reason;
		uint32_t route, server;
	} mix[] = {
		{ SY_DL_TIMEOUT, 1, 10 },
		{ SY_DL_BACKPRESSURE, 1, 11 },
		{ SY_DL_TIMEOUT, 2, 10 },
		{ SY_DL_UNREACHABLE, 2, SY_ANY },
		{ SY_DL_HANDLER_FAILED, 1, 11 },
		{ SY_DL_TIMEOUT, 2, 11 },
	};

	for (unsigned i = 0; i < 6; i++) {
		atomic_store(&r->clock.ns, 1000 * (i + 1));
		push(r, i, mix[i].reason, mix[i].route, mix[i].server, 1);
	}
}

/* The tags that @p f lists, as a bit mask. */
static unsigned listed(struct rig *r, const struct sy_dl_filter *f)
{
	struct sy_dead_letter dl[CAP];
	unsigned n = list_all(r, f, dl, CAP), mask = 0;

	cr_assert_eq(sy_dlq_count(r->eng, f), n);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			cr_assert_gt(dl[i].id, dl[i - 1].id, "oldest first");
		mask |= 1u << dl[i].tag;
	}
	return mask;
}

Test(reliability_dlq, list_filters_by_reason_route_server_and_time)
{
	struct sy_dl_filter f;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	cr_assert_eq(listed(&r, NULL), 0x3f);
	sy_dlq_filter_init(&f);
	cr_assert_eq(listed(&r, &f), 0x3f);

	f.reasons = 1u << SY_DL_TIMEOUT;
	cr_assert_eq(listed(&r, &f), 0x25);
	f.reasons |= 1u << SY_DL_UNREACHABLE;
	cr_assert_eq(listed(&r, &f), 0x2d);

	sy_dlq_filter_init(&f);
	f.route = 1;
	cr_assert_eq(listed(&r, &f), 0x13);
	f.server = 11;
	cr_assert_eq(listed(&r, &f), 0x12);

	sy_dlq_filter_init(&f);
	f.server = SY_ANY - 1;
	cr_assert_eq(listed(&r, &f), 0);
	f.server = 10;
	cr_assert_eq(listed(&r, &f), 0x05);

	sy_dlq_filter_init(&f);
	f.since_ns = 2000;
	f.until_ns = 4000;
	cr_assert_eq(listed(&r, &f), 0x0e);
	f.until_ns = 0;
	cr_assert_eq(listed(&r, &f), 0x3e, "until 0: no bound");

	sy_dlq_filter_init(&f);
	f.reasons = 1u << SY_DL_TIMEOUT;
	f.route = 2;
	f.since_ns = 4000;
	cr_assert_eq(listed(&r, &f), 0x20);
	rig_fini(&r);
}

Test(reliability_dlq, list_copies_at_most_max_oldest_first_and_checks_arguments)
{
	struct sy_dead_letter dl[CAP];
	struct sy_dl_filter f;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	cr_assert_eq(list_all(&r, NULL, dl, 2), 2);
	cr_assert_eq(dl[0].tag, 0);
	cr_assert_eq(dl[1].tag, 1);
	cr_assert_eq(sy_dlq_list(r.eng, NULL, NULL, 0), 0);
	cr_assert_eq(sy_dlq_list(r.eng, NULL, NULL, 1), -EINVAL);
	sy_dlq_filter_init(&f);
	f.reasons = 1u << SY_DL_REASONS;
	cr_assert_eq(sy_dlq_list(r.eng, &f, dl, CAP), -EINVAL);
	cr_assert_eq(sy_dlq_count(r.eng, &f), 0);
	cr_assert_eq(sy_dlq_purge(r.eng, &f), -EINVAL);
	sy_dlq_filter_init(&f);
	f.since_ns = 5;
	f.until_ns = 4;
	cr_assert_eq(sy_dlq_list(r.eng, &f, dl, CAP), -EINVAL);
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 6, "nothing was taken");
	rig_fini(&r);
}

Test(reliability_dlq, peek_copies_the_payload_of_an_entry_still_held)
{
	struct sy_dead_letter dl[CAP];
	unsigned char small[3];
	uint64_t v = 0;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	cr_assert_eq(list_all(&r, NULL, dl, CAP), 6);
	cr_assert_eq(sy_dlq_peek(r.eng, dl[4].id, &v, sizeof(v)), (long)sizeof(v));
	cr_assert_eq(v, 4);
	cr_assert_eq(sy_dlq_peek(r.eng, dl[5].id, small, sizeof(small)),
		     (long)sizeof(v), "the size, not what was copied");
	v = 5;
	cr_assert_eq(memcmp(small, &v, sizeof(small)), 0);
	cr_assert_eq(sy_dlq_peek(r.eng, dl[5].id, NULL, 0), (long)sizeof(v));
	cr_assert_eq(sy_dlq_peek(r.eng, dl[5].id + 100, &v, sizeof(v)), -ENOENT);
	cr_assert_eq(sy_dlq_peek(r.eng, dl[5].id, NULL, 4), -EINVAL);
	cr_assert_eq(sy_dlq_purge(r.eng, NULL), 6);
	cr_assert_eq(sy_dlq_peek(r.eng, dl[0].id, &v, sizeof(v)), -ENOENT);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Purge and drain                                                    */
/* ------------------------------------------------------------------ */

Test(reliability_dlq, purge_frees_the_matching_entries_only)
{
	struct sy_dl_filter f;
	struct sy_accounting a;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	sy_dlq_filter_init(&f);
	f.reasons = 1u << SY_DL_TIMEOUT;
	cr_assert_eq(sy_dlq_purge(r.eng, &f), 3);
	cr_assert_eq(listed(&r, NULL), 0x1a, "the others in their order");
	cr_assert_eq(sy_dlq_purge(r.eng, &f), 0);
	a = accounting(&r);
	cr_assert_eq(a.dlq_held, 3);
	cr_assert_eq(a.dead_lettered, 6, "purged messages still ended here");
	cr_assert_eq(a.evicted, 0);
	/* The order survives new entries after the purge. */
	push(&r, 6, SY_DL_SHUTDOWN, 1, 1, 1);
	cr_assert_eq(listed(&r, NULL), 0x5a);
	cr_assert_eq(sy_dlq_purge(r.eng, NULL), 4);
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 0);
	rig_fini(&r);
}

static void take_and_free(sy_engine *eng, const struct sy_dead_letter *dl,
			  sy_msg *m, void *ctx)
{
	struct taken *t = ctx;
	uint64_t v;

	(void)eng;
	memcpy(&v, sy_msg_data(m), sizeof(v));
	cr_assert_eq(v, dl->tag, "the entry's own message");
	cr_assert_lt(t->n, 32);
	t->dl[t->n++] = *dl;
	sy_msg_free(m);
}

Test(reliability_dlq, drain_hands_each_matching_message_over_oldest_first)
{
	struct taken t = { .n = 0 };
	struct sy_dl_filter f;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	cr_assert_eq(sy_dlq_drain(r.eng, NULL, NULL, NULL), -EINVAL);
	sy_dlq_filter_init(&f);
	f.route = 2;
	cr_assert_eq(sy_dlq_drain(r.eng, &f, take_and_free, &t), 3);
	cr_assert_eq(t.n, 3);
	cr_assert_eq(t.dl[0].tag, 2);
	cr_assert_eq(t.dl[1].tag, 3);
	cr_assert_eq(t.dl[2].tag, 5);
	cr_assert_eq(listed(&r, NULL), 0x13);
	cr_assert_eq(sy_dlq_drain(r.eng, NULL, take_and_free, &t), 3);
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 0);
	cr_assert_eq(accounting(&r).dead_lettered, 6);
	rig_fini(&r);
}

/* A drain callback that dead-letters its message again: each entry is seen
 * once per call. */
static void bounce(sy_engine *eng, const struct sy_dead_letter *dl, sy_msg *m,
		   void *ctx)
{
	unsigned *n = ctx;

	(*n)++;
	sy__dead_letter(eng, sy__slot_self(eng), m, dl->reason, dl->server);
}

Test(reliability_dlq, drain_sees_only_what_was_there_when_it_started)
{
	unsigned n = 0;
	struct rig r;

	rig_init(&r, CAP);
	push_mix(&r);
	cr_assert_eq(sy_dlq_drain(r.eng, NULL, bounce, &n), 6);
	cr_assert_eq(n, 6);
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 6);
	rig_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Replay                                                             */
/* ------------------------------------------------------------------ */

struct sink {
	_Atomic uint64_t got;
	_Atomic uint64_t tags;     /* bit per tag received */
	_Atomic uint64_t not_dead; /* messages that lost their SY_MSG_DEAD */
	_Atomic int replay_rc;     /* sy_dlq_replay() from the handler */
	bool try_replay;
};

static int sink_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct sink *s = ctx;
	uint64_t v;

	memcpy(&v, sy_msg_data(msg), sizeof(v));
	if (v < 64)
		atomic_fetch_or(&s->tags, 1ull << v);
	if (!(msg->flags & SY_MSG_DEAD))
		atomic_fetch_add(&s->not_dead, 1);
	if (s->try_replay)
		atomic_store(&s->replay_rc, sy_dlq_replay(eng, NULL, 0, 0));
	atomic_fetch_add(&s->got, 1);
	return 0;
}

Test(reliability_dlq, replay_sends_matching_entries_to_their_route_up_to_max)
{
	struct sink s = { .got = 0 };
	struct sy_dl_filter f;
	struct sy_accounting a;
	uint32_t route, other;
	struct rig r;

	rig_init(&r, CAP);
	route = t_direct(r.eng, "sink", sink_handler, &s, 0, NULL);
	other = t_direct(r.eng, "other", sink_handler, &s, 0, NULL);
	for (unsigned i = 0; i < 5; i++)
		push(&r, i, SY_DL_TIMEOUT, route, 0, 3);
	push(&r, 5, SY_DL_TIMEOUT, other, 0, 3);
	cr_assert_eq(sy_engine_start(r.eng), 0);

	sy_dlq_filter_init(&f);
	f.route = route;
	cr_assert_eq(sy_dlq_replay(r.eng, &f, 3, 0), 3);
	cr_assert(t_wait_u64(&s.got, 3, T_WAIT_MS));
	cr_assert_eq(atomic_load(&s.tags), 0x07, "the oldest three");
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 3);

	/* At most 1000 a second: the caller sleeps between sends. */
	cr_assert_eq(sy_dlq_replay(r.eng, &f, 0, 1000), 2);
	cr_assert(t_wait_u64(&s.got, 5, T_WAIT_MS));
	cr_assert_eq(atomic_load(&s.tags), 0x1f);
	cr_assert_eq(atomic_load(&s.not_dead), 0, "replays stay marked");
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 1, "the other route's entry");
	cr_assert_eq(sy_dlq_replay(r.eng, &f, 0, 0), 0, "nothing left to match");

	a = accounting(&r);
	cr_assert_eq(a.replayed, 5);
	cr_assert_eq(a.dlq_held, 1);
	cr_assert_eq(a.dead_lettered, 6, "their first sends ended here");
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(atomic_load(&s.got), 5);
	rig_fini(&r);
}

Test(reliability_dlq, replay_refused_by_a_send_keeps_the_entry_and_stops)
{
	struct sy_dead_letter before[CAP], after[CAP];
	struct sink s = { .got = 0 };
	uint32_t route;
	struct rig r;

	rig_init(&r, CAP);
	route = t_direct(r.eng, "sink", sink_handler, &s, 0, NULL);
	push(&r, 0, SY_DL_UNREACHABLE, route, 0, 1);
	push(&r, 1, SY_DL_UNREACHABLE, 500, 0, 1); /* no such route */
	push(&r, 2, SY_DL_UNREACHABLE, route, 0, 1);
	cr_assert_eq(sy_engine_start(r.eng), 0);
	cr_assert_eq(list_all(&r, NULL, before, CAP), 3);

	cr_assert_eq(sy_dlq_replay(r.eng, NULL, 0, 0), 1);
	cr_assert(t_wait_u64(&s.got, 1, T_WAIT_MS));
	cr_assert_eq(list_all(&r, NULL, after, CAP), 2);
	cr_assert_eq(after[0].id, before[1].id, "back where it was");
	cr_assert_eq(after[1].id, before[2].id);
	cr_assert_eq(after[0].route, 500);
	cr_assert_eq(sy_dlq_replay(r.eng, NULL, 0, 0), 0);
	cr_assert_eq(sy_dlq_count(r.eng, NULL), 2);
	cr_assert_eq(accounting(&r).replayed, 1);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	rig_fini(&r);
}

Test(reliability_dlq, replay_is_refused_on_a_worker_thread)
{
	struct sink s = { .got = 0, .try_replay = true };
	uint32_t route;
	struct rig r;

	rig_init(&r, CAP);
	route = t_direct(r.eng, "sink", sink_handler, &s, 0, NULL);
	cr_assert_eq(sy_engine_start(r.eng), 0);
	cr_assert_eq(t_send_retry(r.eng, route, tagged(r.eng, 1), T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&s.got, 1, T_WAIT_MS));
	cr_assert_eq(atomic_load(&s.replay_rc), -EDEADLK);
	cr_assert_eq(sy_dlq_replay(NULL, NULL, 0, 0), -EINVAL);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	rig_fini(&r);
}

Test(reliability_dlq, replayed_failures_go_through_once_the_handler_is_fixed)
{
	struct t_server fl = { .failing = true };
	struct sy_dead_letter dl[CAP];
	struct sy_accounting a;
	uint32_t route, sid;
	struct rig r;

	rig_init(&r, CAP);
	route = t_direct(r.eng, "flaky", t_server_handler, &fl, 0, &sid);
	cr_assert_eq(sy_engine_start(r.eng), 0);
	t_send_tags(r.eng, route, 0, 5);
	cr_assert(t_wait_u64(&fl.handled, 5, T_WAIT_MS));
	cr_assert(t_wait_dead_letters(r.eng, 5));
	cr_assert_eq(list_all(&r, NULL, dl, CAP), 5);
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_eq(dl[i].reason, SY_DL_HANDLER_FAILED);
		cr_assert_eq(dl[i].route, route);
		cr_assert_eq(dl[i].server, sid);
		cr_assert_eq(dl[i].attempts, 1);
		cr_assert_eq(dl[i].tag, i, "in the order they failed");
	}

	atomic_store(&fl.failing, false);
	cr_assert_eq(sy_dlq_replay(r.eng, NULL, 0, 0), 5);
	cr_assert(t_wait_u64(&fl.delivered, 5, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_assert_eq(sy_engine_accounting(r.eng, &a), 0);
	cr_assert_eq(a.accepted, 10, "five sends and five replays");
	cr_assert_eq(a.delivered, 5);
	cr_assert_eq(a.dead_lettered, 5);
	cr_assert_eq(a.dead_lettered_by[SY_DL_HANDLER_FAILED], 5);
	cr_assert_eq(a.evicted, 0);
	cr_assert_eq(a.in_flight, 0);
	cr_assert_eq(a.replayed, 5);
	cr_assert_eq(a.dlq_held, 0);
	rig_fini(&r);
}

/*
 * A burst through a direct route whose handler fails: each message is
 * retried by that route's policy and dead-lettered under its id and server,
 * whatever the messages' headers named before (the burst's send leaves
 * them to the worker; fresh messages name nothing, or route 0).
 */
Test(reliability_dlq, a_failed_burst_is_retried_and_dead_lettered_by_its_route)
{
	struct t_server ok = { 0 }, fails = { .fail_before = T_FAIL_ALWAYS };
	struct sy_route_opts ro = { .max_attempts = 2 };
	struct sy_dead_letter dl[8];
	struct sy_accounting a;
	uint32_t ok_id, fails_id, before, route;
	sy_engine *eng = t_engine_at(1, NULL, 0);
	sy_msg *m[8];

	ok_id = t_add_counter(eng, "ok", &ok, 0);
	before = t_add_route(eng, "before", (struct sy_route_opts){ 0 }, &ok_id, 1);
	fails_id = t_add_counter(eng, "fails", &fails, 0);
	route = t_add_route(eng, "fails", ro, &fails_id, 1);
	cr_assert_neq(route, before);
	cr_assert_eq(sy_engine_start(eng), 0);
	for (unsigned round = 0; round < 2; round++) {
		cr_assert_eq(sy_msg_alloc_burst(eng, 8, m, 8), 8);
		for (unsigned i = 0; i < 8; i++)
			sy_msg_set_tag(m[i], round * 8 + i);
		cr_assert_eq(t_send_burst_retry(eng, round ? route : before, m, 8,
						T_WAIT_MS), 0);
		cr_assert(t_wait_u64(round ? &fails.handled : &ok.handled,
				     round ? 16 : 8, T_WAIT_MS));
	}
	cr_assert(t_wait_dead_letters(eng, 8));
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_assert_eq(sy_dlq_list(eng, NULL, dl, 8), 8);
	for (unsigned i = 0; i < 8; i++) {
		cr_expect_eq(dl[i].route, route, "entry %u: route %u", i,
			     dl[i].route);
		cr_expect_eq(dl[i].server, fails_id);
		cr_expect_eq(dl[i].attempts, 2, "retried once, as the route says");
		cr_expect_eq(dl[i].reason, SY_DL_RETRIES_EXHAUSTED);
	}
	cr_assert_eq(sy_engine_accounting(eng, &a), 0);
	cr_expect_eq(a.accepted, 16);
	cr_expect_eq(a.delivered, 8);
	cr_expect_eq(a.retried, 8);
	cr_expect_eq(a.dead_lettered, 8);
	cr_expect_eq(a.in_flight, 0);
	sy_engine_destroy(eng);
}
