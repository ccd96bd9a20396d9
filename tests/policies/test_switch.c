/*
 * Tests of route changes under live traffic: while two sender threads send
 * numbered messages through one route, the test thread replaces the route
 * over and over, cycling through every policy there is, new weights and a
 * smaller set of servers. No message may be lost or delivered twice.
 *
 * Each message carries its sender and sequence number. A sender marks what
 * the engine accepted in a bitmap of its own; handlers mark what arrived in
 * shared bitmaps (an atomic test-and-set per message, counting repeats).
 * After the engine has stopped, the two sets must be equal.
 *
 * Handlers never call Criterion's assertions; every wait is bounded; no
 * test asserts how long anything took.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define SENDERS 2u
#define SERVERS 3u
#define SEQ_MAX (1u << 21)      /* messages per sender at most */
#define BURST 16u
#define ROUNDS 20u              /* times through the cycle of policies */
#define TRAFFIC_PER_ROUTE 1000u /* messages handled under each route */

struct note {
	uint32_t sender;
	uint32_t pad;
	uint64_t seq;
};

/* What arrived: one bitmap per sender, set by the handlers. */
struct ledger {
	_Atomic uint64_t *bits[SENDERS];
	_Atomic uint64_t handled;
	_Atomic uint64_t repeats;
	_Atomic uint64_t wrong;   /* unreadable notes */
};

struct sender {
	pthread_t thread;
	sy_engine *eng;
	uint32_t route;
	uint32_t id;
	_Atomic bool *stop;
	uint64_t *accepted;       /* bitmap; this thread's until joined */
	_Atomic uint64_t sent;    /* accepted so far */
	uint64_t failed;
};

static bool bit_test(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] & (1ull << (i % 64));
}

static bool bit_test_atomic(_Atomic uint64_t *bits, uint64_t i)
{
	return atomic_load_explicit(&bits[i / 64], memory_order_relaxed) &
	       (1ull << (i % 64));
}

static int ledger_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct ledger *l = ctx;
	struct note note;
	uint64_t bit;

	(void)eng;
	memcpy(&note, sy_msg_data(msg), sizeof(note));
	if (sy_msg_size(msg) != sizeof(note) || note.sender >= SENDERS ||
	    note.seq >= SEQ_MAX ||
	    sy_msg_tag(msg) != ((uint64_t)note.sender << 32 | note.seq)) {
		atomic_fetch_add(&l->wrong, 1);
	} else {
		bit = 1ull << (note.seq % 64);
		if (atomic_fetch_or(&l->bits[note.sender][note.seq / 64], bit) & bit)
			atomic_fetch_add(&l->repeats, 1);
	}
	/* Pairs with the acquire loads of handled. */
	atomic_fetch_add_explicit(&l->handled, 1, memory_order_release);
	return 0;
}

static sy_msg *note_msg(struct sender *s, uint64_t seq)
{
	struct note note = { .sender = s->id, .seq = seq };
	sy_msg *m = sy_msg_alloc(s->eng, sizeof(note));

	if (!m)
		return NULL;
	memcpy(sy_msg_data(m), &note, sizeof(note));
	sy_msg_set_tag(m, (uint64_t)s->id << 32 | seq);
	sy_msg_set_key(m, seq);
	return m;
}

static void mark_accepted(struct sender *s, uint64_t seq)
{
	s->accepted[seq / 64] |= 1ull << (seq % 64);
	atomic_fetch_add(&s->sent, 1);
}

/* Sender 0: one message per call. */
static void *send_one_by_one(void *arg)
{
	struct sender *s = arg;

	for (uint64_t seq = 0; seq < SEQ_MAX && !atomic_load(s->stop); seq++) {
		sy_msg *m = note_msg(s, seq);

		if (!m || t_send_retry(s->eng, s->route, m, RIG_WAIT_MS)) {
			sy_msg_free(m);
			s->failed++;
			continue;
		}
		mark_accepted(s, seq);
	}
	return NULL;
}

/* Sender 1: bursts; the refused tail of a burst is sent again. */
static void *send_in_bursts(void *arg)
{
	struct sender *s = arg;

	for (uint64_t base = 0; base + BURST <= SEQ_MAX && !atomic_load(s->stop);
	     base += BURST) {
		sy_msg *msgs[BURST];
		uint64_t end = t_now_ms() + RIG_WAIT_MS;
		unsigned done = 0, made = 0;

		while (made < BURST && (msgs[made] = note_msg(s, base + made)))
			made++;
		while (done < made) {
			int k = sy_msg_send_burst(s->eng, s->route, msgs + done,
					      made - done);

			if (k > 0) {
				/* msgs[done, done + k) were taken, in order. */
				for (int i = 0; i < k; i++)
					mark_accepted(s, base + done + (unsigned)i);
				done += (unsigned)k;
				continue;
			}
			if (k != -EAGAIN || t_now_ms() > end)
				break;
			sched_yield();
		}
		for (unsigned i = done; i < made; i++)
			sy_msg_free(msgs[i]);
		s->failed += BURST - done;
	}
	return NULL;
}

/* One way to set the route. */
struct shape {
	const char *policy;
	const uint32_t *weights;
	unsigned n;               /* the first n servers */
};

static const uint32_t weights_123[] = { 1, 2, 3 };
static const uint32_t weights_511[] = { 5, 1, 1 };

static const struct shape cycle[] = {
	{ "round_robin", NULL, SERVERS },
	{ "random", NULL, SERVERS },
	{ "least_connections", NULL, SERVERS },
	{ "adaptive", NULL, SERVERS },
	{ "failover", NULL, SERVERS },
	{ "hash", NULL, SERVERS },
	{ "weighted", weights_123, SERVERS },
	{ "weighted", weights_511, SERVERS },
	{ "least_connections", NULL, 2 },
};

#define SHAPES (sizeof(cycle) / sizeof(cycle[0]))

/* Wait until the handlers have run @p want messages in all. */
static void wait_handled(struct ledger *l, uint64_t want)
{
	uint64_t end = t_now_ms() + RIG_WAIT_MS;

	while (atomic_load_explicit(&l->handled, memory_order_acquire) < want) {
		cr_assert_leq(t_now_ms(), end, "handled %llu of %llu",
			      (unsigned long long)atomic_load(&l->handled),
			      (unsigned long long)want);
		sched_yield();
	}
}

Test(policies_switch, replacing_policies_under_traffic_loses_and_repeats_nothing)
{
	void *(*const send_fn[SENDERS])(void *) = { send_one_by_one, send_in_bursts };
	struct sender senders[SENDERS];
	struct ledger ledger = { .handled = 0, .repeats = 0, .wrong = 0 };
	struct sy_route_opts ro = { .policy = "round_robin", .n_servers = SERVERS };
	bool skip[SHAPES] = { false };
	unsigned replaced = 0;
	_Atomic bool stop = false;
	uint32_t ids[SERVERS], route;
	uint64_t total = 0;
	struct sy_stats st;
	sy_engine *eng = t_engine(2, SY_IDLE_SLEEP);

	cr_assert_not_null(eng, "%s", sy_last_error());
	for (unsigned i = 0; i < SERVERS; i++) {
		char name[] = "server-0";

		name[7] = (char)('0' + i);
		cr_assert_eq(sy_server_add(eng, name, ledger_handler, &ledger,
					   NULL, &ids[i]), 0);
	}
	ro.servers = ids;
	cr_assert_eq(sy_route_add(eng, "live", &ro, &route), 0, "%s",
		     sy_last_error());
	cr_assert_eq(sy_engine_start(eng), 0);

	for (unsigned p = 0; p < SENDERS; p++) {
		ledger.bits[p] = calloc(SEQ_MAX / 64, sizeof(*ledger.bits[p]));
		senders[p] = (struct sender){
			.eng = eng, .route = route, .id = p, .stop = &stop,
			.accepted = calloc(SEQ_MAX / 64, sizeof(uint64_t)),
			.sent = 0, .failed = 0,
		};
		cr_assert(ledger.bits[p] && senders[p].accepted);
		cr_assert_eq(pthread_create(&senders[p].thread, NULL, send_fn[p],
					    &senders[p]), 0);
	}
	for (unsigned p = 0; p < SENDERS; p++)
		cr_assert(t_wait_u64(&senders[p].sent, 1000, RIG_WAIT_MS),
			  "sender %u did not start", p);

	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned k = 0; k < SHAPES; k++) {
			struct sy_route_opts next = {
				.policy = cycle[k].policy, .servers = ids,
				.n_servers = cycle[k].n, .weights = cycle[k].weights,
			};
			uint64_t mark;
			int rc;

			if (skip[k])
				continue;
			rc = sy_route_replace(eng, route, &next);
			if (rc == -EINVAL && round == 0) {
				/* A policy this build does not have. */
				cr_log_warn("policy %s skipped: %s", cycle[k].policy,
					    sy_last_error());
				skip[k] = true;
				continue;
			}
			cr_assert_eq(rc, 0, "replace with %s: %s", cycle[k].policy,
				     sy_last_error());
			replaced++;
			mark = atomic_load(&ledger.handled);
			wait_handled(&ledger, mark + TRAFFIC_PER_ROUTE);
		}
	}
	atomic_store(&stop, true);
	for (unsigned p = 0; p < SENDERS; p++) {
		pthread_join(senders[p].thread, NULL);
		cr_expect_eq(senders[p].failed, 0, "sender %u: %llu sends failed",
			     p, (unsigned long long)senders[p].failed);
		total += atomic_load(&senders[p].sent);
	}
	cr_expect_geq(replaced, ROUNDS * 4, "only %u replacements", replaced);
	wait_handled(&ledger, total);
	cr_assert_eq(sy_engine_stop(eng), 0);

	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	cr_expect_eq(st.accepted, total, "accepted %llu, senders counted %llu",
		     (unsigned long long)st.accepted, (unsigned long long)total);
	cr_expect_eq(st.delivered, st.accepted, "delivered %llu of %llu",
		     (unsigned long long)st.delivered,
		     (unsigned long long)st.accepted);
	cr_expect_eq(atomic_load(&ledger.repeats), 0, "%llu messages delivered twice",
		     (unsigned long long)atomic_load(&ledger.repeats));
	cr_expect_eq(atomic_load(&ledger.wrong), 0, "%llu unreadable messages",
		     (unsigned long long)atomic_load(&ledger.wrong));
	for (unsigned p = 0; p < SENDERS; p++) {
		uint64_t lost = 0, extra = 0;

		for (uint64_t seq = 0; seq < SEQ_MAX; seq++) {
			bool sent = bit_test(senders[p].accepted, seq);
			bool got = bit_test_atomic(ledger.bits[p], seq);

			lost += sent && !got;
			extra += got && !sent;
		}
		cr_expect_eq(lost, 0, "sender %u: %llu accepted messages lost", p,
			     (unsigned long long)lost);
		cr_expect_eq(extra, 0, "sender %u: %llu messages never accepted arrived",
			     p, (unsigned long long)extra);
		free(senders[p].accepted);
		free(ledger.bits[p]);
	}
	sy_engine_destroy(eng);
}
