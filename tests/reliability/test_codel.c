/*
 * Tests of CoDel per destination (sy_route_opts.codel): a server's inbox
 * managed on the time its messages wait.
 *
 * The engine runs on a fake clock that only the test thread moves, in
 * steps of STEP_NS, and the slowed server finishes exactly one message per
 * step: its handler records how long its message waited (the clock when
 * it starts minus the send time in the payload), then blocks until the
 * test grants its run. Each step the test sets the clock, sends that
 * step's arrivals, grants one more run and waits until the worker has
 * started every run it can (the next one blocks, or the inbox is empty),
 * so every measure and every shed falls at a known step and a run repeats
 * exactly. Arrivals come at 1.1 per step (overload: the queue of a route
 * without CoDel grows by one message every ten steps), then at 0.5 per
 * step (calm: every queue drains). Handlers never assert.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"

#define STEP_NS 1000000ull         /* 1 ms: one run of the slowed server */
#define START_NS 1000000000ull
#define TARGET_NS 5000000ull       /* the default target */
#define OVERLOAD_STEPS 8000u
#define CALM_STEPS 2000u
#define STEPS (OVERLOAD_STEPS + CALM_STEPS)
#define RING_SIZE 2048u
#define MAX_RUNS (2u * STEPS)

/* The slowed server: one run per step, as the test grants them. */
struct slowed {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct t_clock *clock;
	uint64_t started;          /* runs begun */
	uint64_t grant;            /* runs [0, grant) may end */
	bool open;                 /* teardown: every run may end */
	uint64_t wait[MAX_RUNS];   /* by run: ns its message waited */
	uint64_t at[MAX_RUNS];     /* by run: the step it began in */
};

static int slowed_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct slowed *s = ctx;
	uint64_t now = atomic_load(&s->clock->ns);
	uint64_t k;

	(void)eng;
	pthread_mutex_lock(&s->lock);
	k = s->started++;
	if (k < MAX_RUNS) {
		s->wait[k] = now - t_msg_value(msg);
		s->at[k] = (now - START_NS) / STEP_NS;
	}
	pthread_cond_broadcast(&s->cond);
	while (!s->open && s->grant <= k)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* A server that takes what CoDel spills. */
static int count_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	return 0;
}

struct rig {
	sy_engine *eng;
	struct t_clock clock;
	struct slowed *slowed;
	_Atomic uint64_t spilled;  /* runs of the spill server */
	uint32_t route;
	bool burst;                /* send each step's arrivals in one burst */
	bool spill;                /* a second server takes what spills */
	/* What the run saw. */
	uint64_t sent, refused;    /* refused: -ENOBUFS */
	uint64_t shed_steps[STEPS];/* sheds (any mode) by step */
};

static void rig_init(struct rig *r, struct sy_route_opts ro, bool spill_server)
{
	struct sy_config cfg;
	uint32_t ids[2];

	memset(r, 0, sizeof(*r));
	r->spill = spill_server;
	r->slowed = calloc(1, sizeof(*r->slowed));
	cr_assert(r->slowed);
	pthread_mutex_init(&r->slowed->lock, NULL);
	pthread_cond_init(&r->slowed->cond, NULL);
	r->slowed->clock = &r->clock;
	atomic_store(&r->clock.ns, START_NS);
	t_config(&cfg, 2, &r->clock);
	cfg.ring_size = RING_SIZE;
	cfg.max_dead_letters = 4096;
	r->eng = t_create(&cfg);
	ids[0] = t_add_server(r->eng, "slowed", slowed_handler, r->slowed, 0);
	if (spill_server)
		ids[1] = t_add_server(r->eng, "spill", count_handler,
				      &r->spilled, 1);
	/* failover: every pick is the slowed server while it is up. */
	ro.policy = spill_server ? "failover" : NULL;
	r->route = t_add_route(r->eng, "r", ro, ids, spill_server ? 2 : 1);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* Let every run end, stop the engine: the accounting balances. */
static void rig_stop(struct rig *r)
{
	pthread_mutex_lock(&r->slowed->lock);
	r->slowed->open = true;
	pthread_cond_broadcast(&r->slowed->cond);
	pthread_mutex_unlock(&r->slowed->lock);
	cr_assert_eq(sy_engine_stop(r->eng), 0);
	t_expect_balanced(r->eng);
}

static void rig_fini(struct rig *r)
{
	if (!r->slowed->open)
		rig_stop(r);
	sy_engine_destroy(r->eng);
	pthread_cond_destroy(&r->slowed->cond);
	pthread_mutex_destroy(&r->slowed->lock);
	free(r->slowed);
}

static uint64_t codel_shed(sy_engine *eng)
{
	struct sy_stats st;

	cr_assert_eq(sy_engine_stats(eng, &st), 0);
	return st.codel_shed;
}

/* Arrivals at step @p t: 11 per 10 steps, then 1 per 2 steps. */
static unsigned arrivals(unsigned t)
{
	if (t < OVERLOAD_STEPS)
		return t % 10 == 9 ? 2 : 1;
	return t % 2 == 0;
}

/* Send step @p t's arrivals, stamped with the clock in their payload. */
static void send_step(struct rig *r, unsigned t)
{
	uint64_t now = atomic_load(&r->clock.ns);
	unsigned n = arrivals(t);
	sy_msg *m[2];
	int rc;

	for (unsigned i = 0; i < n; i++)
		m[i] = t_msg(r->eng, now);
	r->sent += n;
	if (r->burst && n) {
		rc = sy_msg_send_burst(r->eng, r->route, m, n);
		cr_assert(rc > 0 || rc == -ENOBUFS, "burst: %d", rc);
		for (unsigned i = rc > 0 ? (unsigned)rc : 0; i < n; i++) {
			sy_msg_free(m[i]);
			r->refused++;
		}
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		rc = sy_msg_send(r->eng, r->route, m[i]);
		if (rc == -ENOBUFS) {
			sy_msg_free(m[i]);
			r->refused++;
			continue;
		}
		cr_assert_eq(rc, 0, "send: %d", rc);
	}
}

/* Grant the slowed server one more run and wait until the worker has begun
 * every run it can: @p queued messages reached its inbox. */
static void serve_step(struct rig *r, uint64_t queued)
{
	struct slowed *s = r->slowed;
	uint64_t end = t_now_ms() + T_WAIT_MS;

	pthread_mutex_lock(&s->lock);
	s->grant++;
	pthread_cond_broadcast(&s->cond);
	while (s->started < (queued < s->grant + 1 ? queued : s->grant + 1)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		cr_assert(t_now_ms() < end, "the worker stopped at run %llu",
			  (unsigned long long)s->started);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Run every step. The slowed server's inbox gets what was sent, less what
 * CoDel shed, less what spilled (counted in the spill server). */
static void run(struct rig *r)
{
	uint64_t shed = 0;

	for (unsigned t = 0; t < STEPS; t++) {
		uint64_t now_shed;

		atomic_store(&r->clock.ns, START_NS + t * STEP_NS);
		send_step(r, t);
		now_shed = codel_shed(r->eng);
		r->shed_steps[t] = now_shed - shed;
		shed = now_shed;
		/* What spilled ran at this step's time too. */
		if (r->spill)
			cr_assert(t_wait_u64(&r->spilled, shed, T_WAIT_MS));
		serve_step(r, r->sent - shed);
	}
}

/* Mean and largest wait of the runs that began in steps [from, to). */
static void waits(const struct rig *r, unsigned from, unsigned to,
		  double *mean, uint64_t *max)
{
	const struct slowed *s = r->slowed;
	uint64_t sum = 0, n = 0;

	*max = 0;
	for (uint64_t k = 0; k < s->started && k < MAX_RUNS; k++) {
		if (s->at[k] < from || s->at[k] >= to)
			continue;
		sum += s->wait[k];
		n++;
		if (s->wait[k] > *max)
			*max = s->wait[k];
	}
	cr_assert_gt(n, 0);
	*mean = (double)sum / (double)n;
}

static struct sy_route_opts codel_opts(enum sy_backpressure mode)
{
	return (struct sy_route_opts){ .backpressure = mode, .codel = true };
}

TestSuite(reliability_codel, .timeout = 600);

/*
 * The same overload on a route without CoDel, on one with a depth
 * threshold (SY_BP_REJECT at the default 80 % of the ring) and on one with
 * CoDel (refusing the shed sends): without CoDel the queue grows all along
 * and the wait with it, the threshold too far away to help; with it, the
 * standing wait of the second half stays within a few targets. The
 * refusals are exactly the sheds, and the backpressure refusals.
 */
Test(reliability_codel, keeps_the_standing_delay_near_target)
{
	struct rig *plain = calloc(1, sizeof(*plain));
	struct rig *codel = calloc(1, sizeof(*codel));
	struct rig *depth = calloc(1, sizeof(*depth));
	double pmean, cmean, pearly, dmean;
	uint64_t pmax, cmax, dmax;
	struct sy_stats st;

	cr_assert(plain && codel && depth);
	rig_init(depth, (struct sy_route_opts){ .backpressure = SY_BP_REJECT },
		 false);
	run(depth);
	waits(depth, OVERLOAD_STEPS / 2, OVERLOAD_STEPS, &dmean, &dmax);
	cr_expect_gt(dmean, 200e6, "threshold: mean wait %.1f ms", dmean / 1e6);
	rig_fini(depth);

	rig_init(plain, (struct sy_route_opts){ 0 }, false);
	run(plain);
	waits(plain, OVERLOAD_STEPS / 4, OVERLOAD_STEPS / 2, &pearly, &pmax);
	waits(plain, OVERLOAD_STEPS / 2, OVERLOAD_STEPS, &pmean, &pmax);
	cr_expect_eq(codel_shed(plain->eng), 0);
	cr_expect_eq(plain->refused, 0);
	rig_fini(plain);

	rig_init(codel, codel_opts(SY_BP_REJECT), false);
	run(codel);
	waits(codel, OVERLOAD_STEPS / 2, OVERLOAD_STEPS, &cmean, &cmax);
	cr_assert_eq(sy_engine_stats(codel->eng, &st), 0);
	cr_expect_gt(st.codel_shed, 0);
	cr_expect_eq(st.codel_shed, codel->refused);
	cr_expect_eq(st.rejected_backpressure, codel->refused);
	cr_expect_eq(st.accepted, codel->sent - codel->refused);
	cr_log_info("wait in the second half of the overload: without CoDel mean %.1f ms, max %.1f ms; with: mean %.1f ms, max %.1f ms; %llu of %llu shed",
		    pmean / 1e6, (double)pmax / 1e6, cmean / 1e6,
		    (double)cmax / 1e6, (unsigned long long)st.codel_shed,
		    (unsigned long long)codel->sent);
	/* Without: hundreds of ms, and growing. */
	cr_expect_gt(pmean, 200e6);
	cr_expect_gt(pmean, 1.5 * pearly);
	/* With: near the target. */
	cr_expect_lt(cmean, 6.0 * TARGET_NS, "mean wait %.1f ms", cmean / 1e6);
	cr_expect_lt(cmax, 10 * TARGET_NS, "longest wait %.1f ms", cmax / 1e6);
	rig_fini(codel);
	free(plain);
	free(codel);
	free(depth);
}

/*
 * The shedding rate: the gaps between the sheds of the first dropping
 * spell shrink (interval / sqrt(count), measured in whole steps); once
 * the load falls and a run waited less than the target, nothing more is
 * shed.
 */
Test(reliability_codel, sheds_faster_while_above_and_stops_below)
{
	struct rig *r = calloc(1, sizeof(*r));
	const struct slowed *s;
	unsigned prev = 0, gaps = 0, first_gap = 0, last_gap = 0;
	unsigned below = STEPS;

	cr_assert(r);
	rig_init(r, codel_opts(SY_BP_REJECT), false);
	run(r);
	s = r->slowed;
	/* The first spell: until a run waited less than the target. */
	for (unsigned t = 0; t < STEPS && gaps < 40; t++) {
		if (!r->shed_steps[t])
			continue;
		if (prev) {
			unsigned gap = t - prev;

			if (!first_gap)
				first_gap = gap;
			cr_expect_leq(gap, last_gap ? last_gap + 1 : gap,
				      "shed %u: gap %u after %u", gaps, gap,
				      last_gap);
			last_gap = gap;
			gaps++;
		}
		prev = t;
	}
	cr_expect_eq(gaps, 40);
	cr_expect_lt(last_gap * 3, first_gap, "gaps %u then %u", first_gap,
		     last_gap);
	/* Calm: the first run below target ends the shedding for good. */
	for (uint64_t k = 0; k < s->started && k < MAX_RUNS; k++)
		if (s->at[k] >= OVERLOAD_STEPS && s->wait[k] < TARGET_NS) {
			below = (unsigned)s->at[k];
			break;
		}
	cr_assert_lt(below, STEPS);
	cr_log_info("first dropping spell: gaps between sheds from %u to %u steps; calm: below target at step %u",
		    first_gap, last_gap, below);
	for (unsigned t = below + 1; t < STEPS; t++)
		cr_expect_eq(r->shed_steps[t], 0, "shed at step %u", t);
	rig_fini(r);
	free(r);
}

/*
 * SY_BP_DEAD_LETTER, sending in bursts: every shed message is accepted and
 * dead-lettered as overload, one for one with the sheds; the rest is
 * delivered.
 */
Test(reliability_codel, dead_letters_sheds_as_overload)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct sy_accounting acc;
	double mean;
	uint64_t max;

	cr_assert(r);
	rig_init(r, codel_opts(SY_BP_DEAD_LETTER), false);
	r->burst = true;
	run(r);
	waits(r, OVERLOAD_STEPS / 2, OVERLOAD_STEPS, &mean, &max);
	cr_expect_lt(mean, 6.0 * TARGET_NS, "mean wait %.1f ms", mean / 1e6);
	cr_expect_lt(max, 10 * TARGET_NS, "longest wait %.1f ms", max / 1e6);
	cr_expect_eq(r->refused, 0);
	rig_stop(r);
	cr_assert_eq(sy_engine_accounting(r->eng, &acc), 0);
	cr_expect_gt(acc.dead_lettered_by[SY_DL_OVERLOAD], 0);
	cr_expect_eq(acc.dead_lettered_by[SY_DL_OVERLOAD], codel_shed(r->eng));
	cr_expect_eq(acc.dead_lettered, acc.dead_lettered_by[SY_DL_OVERLOAD]);
	cr_expect_eq(acc.evicted, 0);
	cr_expect_eq(acc.accepted, r->sent);
	cr_expect_eq(acc.delivered, r->slowed->started);
	cr_expect_eq(acc.delivered + acc.dead_lettered, r->sent);
	rig_fini(r);
	free(r);
}

/*
 * SY_BP_SPILL: a shed message goes to the route's other server, which is
 * not shedding; nothing is refused and the slowed server's wait stays near
 * the target.
 */
Test(reliability_codel, spills_sheds_to_a_server_not_shedding)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct sy_accounting acc;
	uint64_t shed, max;
	double mean;

	cr_assert(r);
	rig_init(r, codel_opts(SY_BP_SPILL), true);
	run(r);
	waits(r, OVERLOAD_STEPS / 2, OVERLOAD_STEPS, &mean, &max);
	cr_expect_lt(mean, 6.0 * TARGET_NS, "mean wait %.1f ms", mean / 1e6);
	cr_expect_lt(max, 10 * TARGET_NS, "longest wait %.1f ms", max / 1e6);
	cr_expect_eq(r->refused, 0);
	rig_stop(r);
	shed = codel_shed(r->eng);
	cr_expect_gt(shed, 0);
	cr_expect_eq(atomic_load(&r->spilled), shed);
	cr_assert_eq(sy_engine_accounting(r->eng, &acc), 0);
	cr_expect_eq(acc.accepted, r->sent);
	cr_expect_eq(acc.delivered, r->sent);
	cr_expect_eq(acc.delivered, r->slowed->started + shed);
	rig_fini(r);
	free(r);
}

/* CoDel sheds; SY_BP_BLOCK would only make the wait longer. */
Test(reliability_codel, refuses_block)
{
	struct t_clock clock = { 0 };
	sy_engine *eng = t_engine_at(1, &clock, START_NS);
	struct sy_route_opts ro = codel_opts(SY_BP_BLOCK);
	uint32_t id, route;

	id = t_add_server(eng, "s", count_handler, NULL, 0);
	ro.servers = &id;
	ro.n_servers = 1;
	cr_expect_eq(sy_route_add(eng, "r", &ro, &route), -EINVAL);
	ro.backpressure = SY_BP_REJECT;
	cr_expect_eq(sy_route_add(eng, "r", &ro, &route), 0);
	sy_engine_destroy(eng);
}
