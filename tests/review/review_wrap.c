/*
 * Review: the 32-bit counters that wrap (ring indices, slot generations,
 * sy_msg_call() sequence numbers, breaker generations) keep every invariant
 * across the wrap. Each scenario starts its counters just below the limit
 * through the internal hook of core/wrap.h, then runs traffic across it:
 *
 *  rings      two producers, two workers, rings 16 entries deep starting
 *             300 entries below 2^32: nothing lost, nothing duplicated,
 *             each producer's order kept at each server, backpressure
 *             refuses at the threshold and not before, a server removed
 *             with messages in flight has handled every one when the
 *             removal returns, the accounting exact;
 *  generation a slot whose generation crosses 2^32 while it is attached
 *             and detached: a reply to the thread attached now arrives,
 *             a late reply to the thread before it is dropped and counted;
 *  sequence   sy_msg_call() numbers crossing 2^24 (the message's field) and
 *             2^32 (the slot's): each call gets its own reply, never the
 *             late reply of the call before it, which timed out;
 *  breaker    the generation crossing 2^31 and 2^32 from an initial
 *             half-open round at 0: every round whose probe was lost (a
 *             deadline that expired) gives way to a new one after open_ns,
 *             and a successful probe closes the breaker.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "core/wrap.h"
#include "review.h"

#define RING 16
#define RING_START (UINT32_MAX - 300u)
#define PRODUCERS 2
#define PER_PRODUCER 20000
#define SERVERS 4
#define WAIT_MS 20000

static uint64_t wait_end(void)
{
	return review_now_ms() + WAIT_MS;
}

/* ---- rings ---- */

struct seen {
	_Atomic uint64_t count;
	/* The last sequence number from each producer; the server's worker
	 * alone writes it. */
	uint64_t last[PRODUCERS];
	_Atomic int disorder, duplicate;
};

static struct seen seen[SERVERS];
static _Atomic int hold;            /* handlers of server 0 wait while set */
static _Atomic int entered;         /* a handler of server 0 has started */
static _Atomic int slow_handler;    /* handlers of server 0 take 2 ms */
static uint64_t next_seq = PER_PRODUCER + 1; /* the main thread's, after traffic */

struct payload {
	uint32_t producer;
	uint64_t seq;                   /* from 1 */
};

static int order_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct seen *s = ctx;
	const struct payload *p = sy_msg_data(msg);
	uint64_t end = wait_end();

	(void)eng;
	if (s == &seen[0])
		atomic_store(&entered, 1);
	while (s == &seen[0] && atomic_load(&hold) && review_now_ms() < end)
		review_sleep_us(50);
	if (s == &seen[0] && atomic_load(&slow_handler))
		review_sleep_us(2000);
	if (p->seq == s->last[p->producer])
		atomic_store(&s->duplicate, 1);
	else if (p->seq < s->last[p->producer])
		atomic_store(&s->disorder, 1);
	s->last[p->producer] = p->seq;
	atomic_fetch_add(&s->count, 1);
	return 0;
}

struct producer {
	sy_engine *eng;
	uint32_t route;
	uint32_t id;
	uint64_t sent;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;

	for (uint64_t seq = 1; seq <= PER_PRODUCER; seq++) {
		sy_msg *m = sy_msg_alloc(pr->eng, sizeof(struct payload));
		struct payload p = { pr->id, seq };

		review_check(m, "no message");
		memcpy(sy_msg_data(m), &p, sizeof(p));
		sy_msg_set_key(m, seq);
		review_check(review_send(pr->eng, pr->route, m, WAIT_MS) == 0,
			     "producer %u: send %llu refused", pr->id,
			     (unsigned long long)seq);
		pr->sent++;
	}
	sy_producer_detach(pr->eng);
	return NULL;
}

static void rings_traffic(sy_engine *eng, uint32_t route)
{
	struct producer pr[PRODUCERS];
	pthread_t t[PRODUCERS];
	uint64_t got = 0;

	for (unsigned i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){ eng, route, i, 0 };
		review_check(pthread_create(&t[i], NULL, produce, &pr[i]) == 0,
			     "thread");
	}
	for (unsigned i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	for (uint64_t end = wait_end(); review_now_ms() < end;) {
		got = 0;
		for (unsigned s = 0; s < SERVERS; s++)
			got += atomic_load(&seen[s].count);
		if (got == PRODUCERS * (uint64_t)PER_PRODUCER)
			break;
		review_sleep_us(1000);
	}
	review_check(got == PRODUCERS * (uint64_t)PER_PRODUCER,
		     "%llu of %u messages handled across the ring wrap",
		     (unsigned long long)got, PRODUCERS * PER_PRODUCER);
	for (unsigned s = 0; s < SERVERS; s++) {
		review_check(!atomic_load(&seen[s].duplicate),
			     "server %u ran a message twice", s);
		review_check(!atomic_load(&seen[s].disorder),
			     "server %u saw a producer's messages out of order", s);
	}
}

/* With server 0's handler held on one message, a route with backpressure
 * "reject" at 8 entries of a 15-entry ring takes exactly 8 more (each one's
 * enqueue moves the producer's index across 2^32 at some point), then
 * refuses. */
static void rings_backpressure(sy_engine *eng, uint32_t server0)
{
	struct sy_route_opts ro = {
		.policy = "direct", .n_servers = 1, .servers = &server0,
		.backpressure = SY_BP_REJECT, .bp_high = 8.0 / (RING - 1),
	};
	uint32_t route;
	int accepted = 0, rc = 0;

	review_check(sy_route_add(eng, "bp", &ro, &route) == 0, "%s",
		     sy_last_error());
	for (unsigned round = 0; round < 40; round++) {
		uint64_t before = atomic_load(&seen[0].count), end;

		atomic_store(&hold, 1);
		atomic_store(&entered, 0);
		/* One message to occupy the handler; once it runs, the ring is
		 * empty and nothing leaves it: fill it behind the handler. */
		for (accepted = 0; accepted < RING; accepted++) {
			sy_msg *m = sy_msg_alloc(eng, sizeof(struct payload));
			struct payload p = { 0, next_seq++ };

			memcpy(sy_msg_data(m), &p, sizeof(p));
			rc = sy_msg_send(eng, route, m);
			if (rc) {
				sy_msg_free(m);
				break;
			}
			end = wait_end();
			while (accepted == 0 && !atomic_load(&entered) &&
			       review_now_ms() < end)
				review_sleep_us(50);
		}
		review_check(rc == -ENOBUFS && accepted == 9,
			     "round %u: %d accepted before the threshold of 8 refused (rc %d)",
			     round, accepted - 1, rc);
		atomic_store(&hold, 0);
		end = wait_end();
		while (atomic_load(&seen[0].count) - before < (uint64_t)accepted &&
		       review_now_ms() < end)
			review_sleep_us(100);
		review_check(atomic_load(&seen[0].count) - before ==
			     (uint64_t)accepted, "round %u: messages lost", round);
	}
	review_check(sy_route_remove(eng, route) == 0, "route remove");
}

/* A server removed with messages in its ring, the ring's producer index
 * past 2^32 and its consumer's not: when the removal returns, the handler
 * has run for every one of them. */
static void *release_later(void *arg)
{
	(void)arg;
	review_sleep_us(50000);
	atomic_store(&hold, 0);
	return NULL;
}

static void scenario_remove(void)
{
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	struct sy_server_opts so = { .worker = 0 };
	uint32_t server, route;
	struct sy_config cfg;
	sy_engine *eng;
	pthread_t t;

	memset(&seen[0], 0, sizeof(seen[0]));
	sy__wrap_start = (struct sy__wrap_start){ .ring = UINT32_MAX - 7 };
	review_config(&cfg, 1);
	cfg.ring_size = RING;
	cfg.burst = 4; /* a pass takes 4 of the 11 waiting: several passes */
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "held", order_handler, &seen[0], &so,
				   &server) == 0, "%s", sy_last_error());
	ro.servers = &server;
	review_check(sy_route_add(eng, "held", &ro, &route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());
	review_check(sy_producer_attach(eng) == 0, "attach");
	atomic_store(&hold, 1);
	atomic_store(&entered, 0);
	atomic_store(&slow_handler, 1); /* so that the removal's wait has to count */
	for (unsigned i = 0; i < 12; i++) {
		sy_msg *m = sy_msg_alloc(eng, sizeof(struct payload));
		struct payload p = { 0, i + 1 };
		uint64_t end = wait_end();

		memcpy(sy_msg_data(m), &p, sizeof(p));
		review_check(sy_msg_send(eng, route, m) == 0, "send %u", i);
		/* The first in the handler, alone: the others wait in the
		 * ring for a later pass of the worker. */
		while (!atomic_load(&entered) && review_now_ms() < end)
			review_sleep_us(100);
	}
	review_check(sy_route_remove(eng, route) == 0, "route remove");
	review_check(pthread_create(&t, NULL, release_later, NULL) == 0, "thread");
	review_check(sy_server_remove(eng, server) == 0, "%s", sy_last_error());
	review_check(atomic_load(&seen[0].count) == 12,
		     "the server was removed with %llu of 12 messages handled",
		     (unsigned long long)atomic_load(&seen[0].count));
	review_check(!atomic_load(&seen[0].duplicate) &&
		     !atomic_load(&seen[0].disorder), "order not kept");
	pthread_join(t, NULL);
	atomic_store(&slow_handler, 0);
	sy_producer_detach(eng);
	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	sy__wrap_start = (struct sy__wrap_start){ 0 };
}

static void scenario_rings(void)
{
	struct sy_route_opts ro = { .policy = "hash", .n_servers = SERVERS };
	uint32_t servers[SERVERS], route;
	struct sy_config cfg;
	sy_engine *eng;

	sy__wrap_start = (struct sy__wrap_start){ .ring = RING_START };
	review_config(&cfg, 2);
	cfg.ring_size = RING;
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	for (unsigned s = 0; s < SERVERS; s++) {
		struct sy_server_opts so = { .worker = (int)(s % 2) };
		char name[8] = "s0";

		name[1] = (char)('0' + s);
		review_check(sy_server_add(eng, name, order_handler, &seen[s],
					   &so, &servers[s]) == 0, "%s",
			     sy_last_error());
	}
	ro.servers = servers;
	review_check(sy_route_add(eng, "all", &ro, &route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());

	/* This thread's slot first, so that its rings start at RING_START
	 * too and the backpressure rounds cross the wrap. */
	review_check(sy_producer_attach(eng) == 0, "attach");
	rings_traffic(eng, route);
	rings_backpressure(eng, servers[0]);
	review_check(sy_route_remove(eng, route) == 0, "route remove");
	sy_producer_detach(eng);

	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	sy__wrap_start = (struct sy__wrap_start){ 0 };
}

/* ---- slot generations and sy_msg_call() sequence numbers ---- */

static _Atomic int late;               /* the echo handler waits while set */

static int echo(sy_engine *eng, sy_msg *msg, void *ctx)
{
	uint64_t end = wait_end();

	(void)eng;
	(void)ctx;
	while (sy_msg_tag(msg) & 1 && atomic_load(&late) &&
	       review_now_ms() < end)
		review_sleep_us(100);
	sy_msg_reply(msg, msg);
	return 0;
}

static sy_engine *echo_engine(uint32_t *route)
{
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	struct sy_config cfg;
	uint32_t server;
	sy_engine *eng;

	review_config(&cfg, 1);
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "echo", echo, NULL, NULL, &server) == 0,
		     "%s", sy_last_error());
	ro.servers = &server;
	review_check(sy_route_add(eng, "echo", &ro, route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());
	return eng;
}

static void wait_handled(sy_engine *eng, uint64_t runs)
{
	struct sy_stats st;

	for (uint64_t end = wait_end(); review_now_ms() < end;) {
		sy_engine_stats(eng, &st);
		if (st.handler_runs >= runs)
			return;
		review_sleep_us(100);
	}
	review_check(0, "%llu handler runs of %llu", (unsigned long long)
		     st.handler_runs, (unsigned long long)runs);
}

/* Each cycle: attach, one request answered at once (delivered to this
 * thread), one request answered only after the thread detached (dropped);
 * 6 cycles move the generation by 12, across 2^32. */
static void scenario_generation(void)
{
	uint64_t runs = 0, dropped_before;
	struct sy_stats st;
	uint32_t route;
	sy_engine *eng;

	sy__wrap_start = (struct sy__wrap_start){ .slot_gen = UINT32_MAX - 5 };
	eng = echo_engine(&route);
	sy_engine_stats(eng, &st);
	dropped_before = st.replies_dropped;
	for (unsigned cycle = 0; cycle < 6; cycle++) {
		sy_msg *now = sy_msg_alloc(eng, 8), *slow, *got[4] = { 0 };
		int n = 0;

		review_check(sy_producer_attach(eng) == 0, "attach");
		sy_msg_set_tag(now, 2 * (uint64_t)cycle + 2);
		review_check(sy_msg_request(eng, route, now) == 0, "request");
		for (uint64_t end = wait_end(); n == 0 && review_now_ms() < end;) {
			n = sy_producer_poll_replies(eng, got, 4);
			if (n == 0)
				review_sleep_us(100);
		}
		review_check(n == 1 && sy_msg_tag(got[0]) == 2 * (uint64_t)cycle + 2,
			     "cycle %u: the reply to the attached thread did not arrive (%d)",
			     cycle, n);
		sy_msg_free(got[0]);
		runs++;

		atomic_store(&late, 1);
		slow = sy_msg_alloc(eng, 8);
		sy_msg_set_tag(slow, 2 * (uint64_t)cycle + 1);
		review_check(sy_msg_request(eng, route, slow) == 0, "request");
		review_check(sy_producer_detach(eng) == 0, "detach");
		atomic_store(&late, 0);
		wait_handled(eng, ++runs);
	}
	review_check(sy_engine_stop(eng) == 0, "stop");
	sy_engine_stats(eng, &st);
	review_check(st.replies_dropped - dropped_before == 6,
		     "%llu late replies dropped across the generation wrap, expected 6",
		     (unsigned long long)(st.replies_dropped - dropped_before));
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	sy__wrap_start = (struct sy__wrap_start){ 0 };
}

/* Calls alternate: one that times out (its reply comes late, during the
 * next call), one answered at once, which must get its own reply. */
static void calls_across(uint32_t start)
{
	uint32_t route;
	sy_engine *eng;

	sy__wrap_start = (struct sy__wrap_start){ .call_seq = start };
	eng = echo_engine(&route);
	review_check(sy_producer_attach(eng) == 0, "attach");
	for (unsigned i = 0; i < 8; i++) {
		sy_msg *req = sy_msg_alloc(eng, 8), *reply = NULL;
		bool slow = i % 2 == 0;
		int rc;

		atomic_store(&late, slow);
		sy_msg_set_tag(req, slow ? 2 * (uint64_t)i + 1 : 2 * (uint64_t)i);
		rc = sy_msg_call(eng, route, req, &reply, slow ? 2000000 : 10000000000ull);
		atomic_store(&late, 0);
		if (slow) {
			review_check(rc == -ETIMEDOUT, "call %u from %#x: %d", i,
				     start, rc);
			continue;
		}
		review_check(rc == 0, "call %u from %#x: %d", i, start, rc);
		review_check(sy_msg_tag(reply) == 2 * (uint64_t)i,
			     "call %u from %#x got the reply to tag %llu", i,
			     start, (unsigned long long)sy_msg_tag(reply));
		sy_msg_free(reply);
	}
	sy_producer_detach(eng);
	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	sy__wrap_start = (struct sy__wrap_start){ 0 };
}

/* ---- breaker generations ---- */

#define OPEN_NS 1000000u

static _Atomic uint64_t fake_ns = 1;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&fake_ns);
}

static int fail_odd(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)ctx;
	return sy_msg_tag(msg) & 1 ? -EIO : 0;
}

static void wait_state(sy_engine *eng, uint32_t server,
		       enum sy_breaker_state want, const char *what)
{
	enum sy_breaker_state st = SY_BREAKER_CLOSED;

	for (uint64_t end = wait_end(); review_now_ms() < end;) {
		review_check(sy_breaker_state(eng, server, &st) == 0, "state");
		if (st == want)
			return;
		review_sleep_us(100);
	}
	review_check(0, "%s: breaker in state %d, expected %d", what, st, want);
}

static int send_tagged(sy_engine *eng, uint32_t route, uint64_t tag,
		       uint64_t deadline)
{
	sy_msg *m = sy_msg_alloc(eng, 8);
	int rc;

	sy_msg_set_tag(m, tag);
	sy_msg_set_deadline(m, deadline);
	rc = sy_msg_send(eng, route, m);
	if (rc)
		sy_msg_free(m);
	return rc;
}

static void breaker_across(uint32_t start)
{
	struct sy_breaker_opts bo = { .consecutive_failures = 1,
				      .open_ns = OPEN_NS };
	struct sy_server_opts so = { .worker = -1, .breaker = &bo };
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	struct sy_config cfg;
	uint32_t server, route;
	sy_engine *eng;
	int rc;

	sy__wrap_start = (struct sy__wrap_start){ .breaker_gen = start };
	review_config(&cfg, 1);
	cfg.clock = fake_clock;
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "b", fail_odd, NULL, &so, &server) == 0,
		     "%s", sy_last_error());
	ro.servers = &server;
	review_check(sy_route_add(eng, "b", &ro, &route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());
	review_check(sy_producer_attach(eng) == 0, "attach");
	/* Five transitions a round, ten rounds. */
	for (unsigned round = 0; round < 10; round++) {
		review_check(send_tagged(eng, route, 1, 0) == 0, "trip");
		wait_state(eng, server, SY_BREAKER_OPEN, "after the trip");
		review_check(send_tagged(eng, route, 2, 0) == -EHOSTUNREACH,
			     "round %u (from %#x): open, yet a send passed",
			     round, start);
		/* Half-open: the probe expires before its handler runs. */
		atomic_fetch_add(&fake_ns, OPEN_NS);
		review_check(send_tagged(eng, route, 2, 1) == 0,
			     "round %u (from %#x): no probe admitted", round,
			     start);
		review_check(send_tagged(eng, route, 2, 0) == -EHOSTUNREACH,
			     "round %u (from %#x): a second probe admitted",
			     round, start);
		/* The lost probe's round ends after open_ns: a new one. */
		atomic_fetch_add(&fake_ns, OPEN_NS);
		rc = send_tagged(eng, route, 2, 0);
		review_check(rc == 0,
			     "round %u (from %#x): the round whose probe was lost never ended (%d)",
			     round, start, rc);
		wait_state(eng, server, SY_BREAKER_CLOSED, "after a good probe");
		/* A forced open and close: two more transitions. */
		review_check(sy_breaker_force(eng, server, SY_BREAKER_FORCED_OPEN) == 0 &&
			     sy_breaker_force(eng, server, SY_BREAKER_CLOSED) == 0,
			     "force");
	}
	sy_producer_detach(eng);
	review_check(sy_engine_stop(eng) == 0, "stop");
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	sy__wrap_start = (struct sy__wrap_start){ 0 };
}

int main(void)
{
	scenario_rings();
	printf("wrap: rings from 2^32 - 300: nothing lost or duplicated, order and backpressure kept\n");
	scenario_remove();
	printf("wrap: a server removed with its ring across 2^32 had handled everything\n");
	scenario_generation();
	printf("wrap: slot generation across 2^32: late replies dropped, current ones delivered\n");
	calls_across(0xfffffc);
	calls_across(UINT32_MAX - 3);
	printf("wrap: sy_msg_call() sequence across 2^24 and 2^32: each call got its own reply\n");
	breaker_across(0x7fffffff);
	breaker_across(UINT32_MAX - 20);
	printf("wrap: breaker generation across 2^31 and 2^32: lost probes give way to new rounds\n");
	return 0;
}
