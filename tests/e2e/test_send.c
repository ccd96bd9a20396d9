/*
 * End-to-end tests of the send path: a producer thread sends a message to a
 * route, the registry picks a server, the server's worker runs its handler.
 *
 * Handlers run on worker threads, where Criterion's assertions must not be
 * called: they count what they see in their context (atomics), and the test
 * thread asserts on those counts after a bounded wait. Message ids travel in
 * the payload; a bitmap of ids seen tells a lost message from a duplicate.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/pool.h"
#include "core/slot.h"
#include "tests/fixture.h"

/*
 * Send msgs[0..n) in bursts of at most @p per, retrying what a full ring
 * refused. Returns how many were accepted; the rest are still the caller's,
 * at msgs[accepted..n).
 */
static unsigned send_in_bursts(sy_engine *eng, uint32_t route, sy_msg **msgs,
			       unsigned n, unsigned per)
{
	uint64_t end = t_now_ms() + T_WAIT_MS;
	unsigned done = 0;

	while (done < n) {
		unsigned want = n - done < per ? n - done : per;
		int k = sy_msg_send_burst(eng, route, msgs + done, want);

		if (k > 0) {
			done += (unsigned)k;
			continue;
		}
		if (k != -EAGAIN || t_now_ms() > end)
			break;
		sched_yield();
	}
	return done;
}

/* ------------------------------------------------------------------ */
/* One message, one server                                            */
/* ------------------------------------------------------------------ */

struct capture {
	_Atomic uint64_t seen;
	uint64_t tag;
	size_t size;
	bool intact;
};

static unsigned char pattern_byte(uint64_t tag, size_t i)
{
	return (unsigned char)((i * 31u + tag) & 0xff);
}

static void pattern_fill(sy_msg *m, uint64_t tag)
{
	unsigned char *p = sy_msg_data(m);

	for (size_t i = 0; i < sy_msg_size(m); i++)
		p[i] = pattern_byte(tag, i);
}

static bool pattern_intact(sy_msg *m, uint64_t tag)
{
	const unsigned char *p = sy_msg_data(m);

	for (size_t i = 0; i < sy_msg_size(m); i++)
		if (p[i] != pattern_byte(tag, i))
			return false;
	return true;
}

static int capture_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct capture *c = ctx;

	(void)eng;
	c->tag = sy_msg_tag(msg);
	c->size = sy_msg_size(msg);
	c->intact = pattern_intact(msg, c->tag);
	/* Publishes the fields above to the test thread's load of seen. */
	atomic_fetch_add(&c->seen, 1);
	return 0;
}

Test(core_send, payload_and_tag_reach_the_handler_intact)
{
	static const size_t sizes[] = {
		0, 1, 100, 4000, 70000, SY_MSG_MAX_SIZE,
	};
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	struct capture cap = { .seen = 0 };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint32_t route;

	cr_assert_not_null(eng);
	route = t_direct(eng, "sink", capture_handler, &cap, 1, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (size_t i = 0; i < nsizes; i++) {
		uint64_t tag = 0xfeedface00000000ull + i;
		sy_msg *m = sy_msg_alloc(eng, sizes[i]);

		cr_assert_not_null(m, "size %zu: %s", sizes[i], sy_last_error());
		cr_assert_eq(sy_msg_size(m), sizes[i]);
		cr_assert_geq(sy_msg_capacity(m), sizes[i]);
		sy_msg_set_tag(m, tag);
		pattern_fill(m, tag);
		cr_assert_eq(t_send_retry(eng, route, m, T_WAIT_MS), 0);
		cr_assert(t_wait_u64(&cap.seen, i + 1, T_WAIT_MS),
			  "size %zu never delivered", sizes[i]);
		cr_expect_eq(cap.tag, tag, "size %zu: tag %#llx", sizes[i],
			     (unsigned long long)cap.tag);
		cr_expect_eq(cap.size, sizes[i], "size %zu arrived as %zu",
			     sizes[i], cap.size);
		cr_expect(cap.intact, "size %zu: payload changed", sizes[i]);
	}
	sy_engine_destroy(eng);
}

Test(core_send, shrunk_payload_arrives_with_its_new_size)
{
	struct capture cap = { .seen = 0 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint32_t route;
	sy_msg *m;

	cr_assert_not_null(eng);
	route = t_direct(eng, "sink", capture_handler, &cap, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	m = sy_msg_alloc(eng, 300);
	cr_assert_not_null(m);
	cr_assert_eq(sy_msg_set_size(m, sy_msg_capacity(m) + 1), -EMSGSIZE);
	cr_assert_eq(sy_msg_set_size(m, 17), 0);
	sy_msg_set_tag(m, 99);
	pattern_fill(m, 99);
	cr_assert_eq(t_send_retry(eng, route, m, T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&cap.seen, 1, T_WAIT_MS));
	cr_expect_eq(cap.size, 17);
	cr_expect_eq(cap.tag, 99);
	cr_expect(cap.intact);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Several producer threads, several servers                          */
/* ------------------------------------------------------------------ */

#define MP_PRODUCERS 4u
#define MP_SERVERS 3u
#define MP_PER_PRODUCER 20000u

struct mp_server {
	unsigned index;
	_Atomic uint64_t *total;
	_Atomic uint64_t wrong;
	_Atomic uint64_t from[MP_PRODUCERS];
};

/* The note names the server its route leads to (its key). */
static int mp_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct mp_server *s = ctx;
	struct t_note note;

	(void)eng;
	memcpy(&note, sy_msg_data(msg), sizeof(note));
	if (sy_msg_size(msg) != sizeof(note) || note.key != s->index ||
	    note.producer >= MP_PRODUCERS ||
	    sy_msg_tag(msg) != t_note_tag(note.producer, note.seq))
		atomic_fetch_add(&s->wrong, 1);
	else
		atomic_fetch_add(&s->from[note.producer], 1);
	atomic_fetch_add(s->total, 1);
	return 0;
}

Test(core_send, producer_threads_reach_every_server_intact)
{
	struct mp_server servers[MP_SERVERS];
	struct t_producer producers[MP_PRODUCERS];
	_Atomic uint64_t total = 0;
	uint32_t routes[MP_SERVERS];
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);

	cr_assert_not_null(eng);
	memset(servers, 0, sizeof(servers));
	for (unsigned i = 0; i < MP_SERVERS; i++) {
		char name[16] = "server-0";

		name[7] = (char)('0' + i);
		servers[i].index = i;
		servers[i].total = &total;
		routes[i] = t_direct(eng, name, mp_handler, &servers[i], -1, NULL);
	}
	cr_assert_eq(sy_engine_start(eng), 0);

	/* Producer p sends note seq to server seq % MP_SERVERS. */
	t_producers_init(producers, MP_PRODUCERS, eng, routes, MP_SERVERS,
			 MP_PRODUCERS * MP_PER_PRODUCER);
	t_producers_run(producers, MP_PRODUCERS, t_produce_notes);
	for (uint32_t p = 0; p < MP_PRODUCERS; p++)
		cr_assert_eq(producers[p].error, 0, "producer %u: send failed: %d",
			     p, producers[p].error);
	cr_assert(t_wait_u64(&total, MP_PRODUCERS * MP_PER_PRODUCER, T_WAIT_MS),
		  "delivered %llu of %u", (unsigned long long)atomic_load(&total),
		  MP_PRODUCERS * MP_PER_PRODUCER);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&total), MP_PRODUCERS * MP_PER_PRODUCER);
	for (unsigned i = 0; i < MP_SERVERS; i++) {
		uint64_t want = MP_PER_PRODUCER / MP_SERVERS +
				(i < MP_PER_PRODUCER % MP_SERVERS);

		cr_expect_eq(atomic_load(&servers[i].wrong), 0,
			     "server %u saw %llu wrong messages", i,
			     (unsigned long long)atomic_load(&servers[i].wrong));
		for (unsigned p = 0; p < MP_PRODUCERS; p++)
			cr_expect_eq(atomic_load(&servers[i].from[p]), want,
				     "server %u got %llu from producer %u, want %llu",
				     i, (unsigned long long)atomic_load(&servers[i].from[p]),
				     p, (unsigned long long)want);
	}
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Refused sends                                                      */
/* ------------------------------------------------------------------ */

Test(core_send, unknown_route_is_refused_and_the_message_stays_the_callers)
{
	struct t_server delivered = { 0 };
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	sy_msg *burst[4];
	struct sy_stats st;
	uint32_t route;
	sy_msg *m;

	cr_assert_not_null(eng);
	route = t_direct(eng, "known", t_server_handler, &delivered, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	m = t_msg(eng, 7);
	cr_assert_eq(sy_msg_send(eng, route + 1, m), -ENOENT);
	cr_assert_eq(sy_msg_send(eng, UINT32_MAX, m), -ENOENT);
	/* Still the caller's: it may write the payload and send it again. */
	memset(sy_msg_data(m), 0x5a, sizeof(uint64_t));
	cr_assert_eq(sy_msg_request(eng, route + 1, m), -ENOENT);

	for (uint64_t i = 0; i < 4; i++)
		burst[i] = t_msg(eng, 100 + i);
	cr_assert_eq(sy_msg_send_burst(eng, route + 1, burst, 4), -ENOENT);
	for (uint64_t i = 0; i < 4; i++)
		cr_assert_eq(t_msg_value(burst[i]), 100 + i,
			     "refused burst reordered at %llu",
			     (unsigned long long)i);

	cr_assert_eq(sy_route_remove(eng, route), 0);
	cr_assert_eq(sy_msg_send(eng, route, m), -ENOENT);

	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_noroute, 4 + 4);
	cr_expect_eq(st.accepted, 0);
	sy_msg_free(m);
	for (unsigned i = 0; i < 4; i++)
		sy_msg_free(burst[i]);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&delivered.handled), 0);
	sy_engine_destroy(eng);
}

Test(core_send, route_whose_only_server_was_removed_is_unreachable)
{
	struct t_server delivered = { 0 };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	struct sy_stats st;
	uint32_t route, server;
	sy_msg *burst[3];
	sy_msg *m;

	cr_assert_not_null(eng);
	route = t_direct(eng, "lonely", t_server_handler, &delivered, 1, &server);
	cr_assert_eq(sy_engine_start(eng), 0);

	m = t_msg(eng, 1);
	cr_assert_eq(t_send_retry(eng, route, m, T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&delivered.handled, 1, T_WAIT_MS));
	cr_assert_eq(sy_server_remove(eng, server), 0);

	m = t_msg(eng, 2);
	cr_assert_eq(sy_msg_send(eng, route, m), -EHOSTUNREACH);
	for (uint64_t i = 0; i < 3; i++)
		burst[i] = t_msg(eng, 10 + i);
	cr_assert_eq(sy_msg_send_burst(eng, route, burst, 3), -EHOSTUNREACH);
	for (uint64_t i = 0; i < 3; i++)
		cr_assert_eq(t_msg_value(burst[i]), 10 + i);

	sy_engine_stats(eng, &st);
	cr_expect_eq(st.rejected_unreachable, 1 + 3);
	cr_expect_eq(st.accepted, 1);
	cr_expect_eq(t_msg_value(m), 2);
	sy_msg_free(m);
	for (unsigned i = 0; i < 3; i++)
		sy_msg_free(burst[i]);
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_expect_eq(atomic_load(&delivered.handled), 1);
	sy_engine_destroy(eng);
}

/* ------------------------------------------------------------------ */
/* Bursts                                                             */
/* ------------------------------------------------------------------ */

#define BURST_IDS 20000u

Test(core_send, burst_round_robin_over_two_workers_delivers_each_message_once)
{
	struct t_ledger ledger;
	struct t_ledger_server a = { .ledger = &ledger }, b = { .ledger = &ledger };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint32_t servers[2], route;
	uint64_t unsent = 0;

	cr_assert_not_null(eng);
	t_ledger_init(&ledger, BURST_IDS);
	servers[0] = t_add_server(eng, "a", t_ledger_handler, &a, 0);
	servers[1] = t_add_server(eng, "b", t_ledger_handler, &b, 1);
	route = t_add_route(eng, "both", (struct sy_route_opts){ 0 }, servers, 2);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t base = 0; base < BURST_IDS; base += 32) {
		sy_msg *msgs[32];
		unsigned n = 0, done;

		while (n < 32 && base + n < BURST_IDS) {
			msgs[n] = t_msg(eng, base + n);
			n++;
		}
		done = send_in_bursts(eng, route, msgs, n, 32);
		for (unsigned i = done; i < n; i++) {
			sy_msg_free(msgs[i]);
			unsent++;
		}
	}
	cr_assert_eq(unsent, 0, "%llu messages never accepted",
		     (unsigned long long)unsent);
	cr_assert(t_wait_u64(&ledger.got, BURST_IDS, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&ledger.got), BURST_IDS);
	cr_expect_eq(atomic_load(&ledger.wrong), 0);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	cr_expect_gt(atomic_load(&a.got), 0, "worker 0 got nothing");
	cr_expect_gt(atomic_load(&b.got), 0, "worker 1 got nothing");
	t_ledger_fini(&ledger);
	sy_engine_destroy(eng);
}

/* A server that records the ids it handles, in order. */
struct recorder {
	uint64_t ids[2048];
	_Atomic uint64_t n;
};

static int record_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct recorder *r = ctx;
	uint64_t n = atomic_load_explicit(&r->n, memory_order_relaxed);

	(void)eng;
	if (n < sizeof(r->ids) / sizeof(r->ids[0]))
		r->ids[n] = t_msg_value(msg);
	/* Publishes ids[n] to the test thread's load of n. */
	atomic_store(&r->n, n + 1);
	return 0;
}

Test(core_send, burst_of_more_than_32_messages_is_accepted_whole_and_in_order)
{
	static const unsigned sizes[] = { 33, 100, 1000 };
	struct recorder *rec = calloc(1, sizeof(*rec));
	sy_engine *eng = t_engine(1, SY_IDLE_SLEEP);
	uint64_t expect = 0;
	uint32_t route;

	cr_assert_not_null(rec);
	cr_assert_not_null(eng);
	route = t_direct(eng, "rec", record_handler, rec, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (unsigned s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		unsigned n = sizes[s];
		sy_msg **msgs = calloc(n, sizeof(*msgs));
		uint64_t first = atomic_load(&rec->n);

		cr_assert_not_null(msgs);
		for (unsigned i = 0; i < n; i++)
			msgs[i] = t_msg(eng, first + i);
		/* The ring is empty and far larger than n / 32 descriptors. */
		cr_assert_eq(sy_msg_send_burst(eng, route, msgs, n), (int)n);
		free(msgs);
		expect += n;
		cr_assert(t_wait_u64(&rec->n, expect, T_WAIT_MS),
			  "burst of %u: %llu delivered", n,
			  (unsigned long long)(atomic_load(&rec->n) - first));
	}
	cr_assert_eq(sy_engine_stop(eng), 0);
	cr_assert_eq(atomic_load(&rec->n), expect);
	for (uint64_t i = 0; i < expect; i++)
		cr_assert_eq(rec->ids[i], i, "position %llu holds id %llu",
			     (unsigned long long)i,
			     (unsigned long long)rec->ids[i]);
	sy_engine_destroy(eng);
	free(rec);
}

Test(core_send, burst_refused_in_part_leaves_the_rest_the_callers_in_order)
{
	struct t_server gate = { 0 };
	struct recorder *rec = calloc(1, sizeof(*rec));
	uint32_t servers[2], to_a, both;
	struct sy_config cfg;
	sy_msg *msgs[8];
	uint64_t fill = 0;
	struct sy_stats st;
	sy_engine *eng;
	int rc, k;

	cr_assert_not_null(rec);
	t_config(&cfg, 2, NULL);
	cfg.ring_size = 16;
	eng = t_create(&cfg);
	servers[0] = t_add_counter(eng, "a", &gate, 0);
	servers[1] = t_add_server(eng, "b", record_handler, rec, 1);
	to_a = t_add_route(eng, "to-a", (struct sy_route_opts){ 0 }, servers, 1);
	both = t_add_route(eng, "both", (struct sy_route_opts){ 0 }, servers, 2);
	cr_assert_eq(sy_engine_start(eng), 0);

	/* Hold worker 0 in a handler, then fill this thread's ring to it. */
	t_hold(eng, to_a, &gate, 1000);
	for (;;) {
		sy_msg *m = t_msg(eng, 2000 + fill);

		rc = sy_msg_send(eng, to_a, m);
		if (rc) {
			sy_msg_free(m);
			break;
		}
		cr_assert_lt(++fill, 1u << 20, "ring to worker 0 never fills");
	}
	cr_assert_eq(rc, -EAGAIN);

	/* Round robin gives each server 4 of 8: worker 1 takes its 4,
	 * worker 0 refuses its 4. */
	for (uint64_t i = 0; i < 8; i++)
		msgs[i] = t_msg(eng, i);
	k = sy_msg_send_burst(eng, both, msgs, 8);
	cr_assert_eq(k, 4, "accepted %d of 8", k);
	for (unsigned i = 5; i < 8; i++)
		cr_expect_lt(t_msg_value(msgs[i - 1]), t_msg_value(msgs[i]),
			     "refused messages out of order");

	atomic_store(&gate.released, 1);
	cr_assert(t_wait_u64(&rec->n, 4, T_WAIT_MS));
	cr_assert(t_wait_u64(&gate.handled, 1 + fill, T_WAIT_MS));
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&rec->n), 4);
	for (unsigned i = 0; i < 4; i++)
		for (unsigned j = 4; j < 8; j++)
			cr_expect_neq(rec->ids[i], t_msg_value(msgs[j]),
				      "id %llu both refused and delivered",
				      (unsigned long long)rec->ids[i]);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, 1 + fill + 4);
	cr_expect_eq(st.delivered, 1 + fill + 4);
	cr_expect_eq(st.rejected_full, 1 + 4);
	for (unsigned i = 4; i < 8; i++)
		sy_msg_free(msgs[i]);
	sy_engine_destroy(eng);
	free(rec);
}

/* ------------------------------------------------------------------ */
/* Handlers that forward                                              */
/* ------------------------------------------------------------------ */

#define FORWARD_IDS 20000u

struct relay {
	uint32_t onward;
	bool burst;               /* forward with sy_msg_send_burst() */
	_Atomic uint64_t handled;
	_Atomic uint64_t failed;
};

static int relay_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct relay *r = ctx;
	uint64_t end = t_now_ms() + T_WAIT_MS;
	int rc;

	if (!r->burst) {
		rc = t_send_retry(eng, r->onward, msg, T_WAIT_MS);
	} else {
		while ((rc = sy_msg_send_burst(eng, r->onward, &msg, 1)) == -EAGAIN &&
		       t_now_ms() < end)
			sched_yield();
		rc = rc == 1 ? 0 : rc;
	}
	/* On success the message is no longer ours; on failure the engine
	 * frees it when we return. */
	if (rc)
		atomic_fetch_add(&r->failed, 1);
	atomic_fetch_add(&r->handled, 1);
	return rc;
}

static int compare_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(sy_msg *const *)a;
	uintptr_t y = (uintptr_t)*(sy_msg *const *)b;

	return x < y ? -1 : x > y;
}

/*
 * Allocate @p n messages at once from the calling thread's pool and check
 * that no two are the same: a message freed twice would sit twice in a
 * free list and come out twice. The engine is stopped, where sy_msg_alloc()
 * refuses, so the pool is asked directly.
 */
static void expect_distinct_allocations(sy_engine *eng, unsigned n)
{
	sy_msg **all = calloc(n, sizeof(*all));
	struct sy__slot *self = sy__slot_self(eng);
	unsigned dups = 0;

	cr_assert_not_null(all);
	cr_assert_not_null(self);
	for (unsigned i = 0; i < n; i++) {
		all[i] = sy__msg_alloc(self, sizeof(uint64_t));
		cr_assert_not_null(all[i]);
	}
	qsort(all, n, sizeof(*all), compare_ptr);
	for (unsigned i = 1; i < n; i++)
		dups += all[i] == all[i - 1];
	cr_expect_eq(dups, 0, "%u messages handed out twice", dups);
	for (unsigned i = 0; i < n; i++)
		if (i == 0 || all[i] != all[i - 1])
			sy_msg_free(all[i]);
	free(all);
}

static void forward_across_workers(bool burst)
{
	struct t_ledger ledger;
	struct t_ledger_server sink = { .ledger = &ledger };
	struct relay relay = { .burst = burst };
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);
	uint32_t to_relay;
	struct sy_stats st;

	cr_assert_not_null(eng);
	t_ledger_init(&ledger, FORWARD_IDS);
	relay.onward = t_direct(eng, "sink", t_ledger_handler, &sink, 1, NULL);
	to_relay = t_direct(eng, "relay", relay_handler, &relay, 0, NULL);
	cr_assert_eq(sy_engine_start(eng), 0);

	for (uint64_t id = 0; id < FORWARD_IDS; id++)
		cr_assert_eq(t_send_retry(eng, to_relay, t_msg(eng, id),
					  T_WAIT_MS), 0);
	cr_assert(t_wait_u64(&ledger.got, FORWARD_IDS, T_WAIT_MS),
		  "sink got %llu of %u",
		  (unsigned long long)atomic_load(&ledger.got), FORWARD_IDS);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_expect_eq(atomic_load(&relay.handled), FORWARD_IDS);
	cr_expect_eq(atomic_load(&relay.failed), 0);
	cr_expect_eq(atomic_load(&sink.got), FORWARD_IDS);
	cr_expect_eq(atomic_load(&ledger.wrong), 0);
	cr_expect_eq(t_ledger_missing(&ledger), 0);
	sy_engine_stats(eng, &st);
	cr_expect_eq(st.accepted, 2 * FORWARD_IDS);
	cr_expect_eq(st.delivered, 2 * FORWARD_IDS);
	/* Every message has come back to this thread's pool exactly once. */
	expect_distinct_allocations(eng, FORWARD_IDS + 64);
	t_ledger_fini(&ledger);
	sy_engine_destroy(eng);
}

Test(core_send, handler_send_to_another_worker_arrives_once)
{
	forward_across_workers(false);
}

Test(core_send, handler_burst_to_another_worker_arrives_once)
{
	forward_across_workers(true);
}
