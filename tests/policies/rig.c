#include <sched.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

void rig_wait_handled(uint64_t sent, _Atomic uint64_t *delivered,
		      uint64_t in_flight)
{
	uint64_t end = t_now_ms() + RIG_WAIT_MS;

	while (sent - atomic_load(delivered) > in_flight) {
		cr_assert_leq(t_now_ms(), end, "%llu messages not handled",
			      (unsigned long long)(sent - atomic_load(delivered)));
		sched_yield();
	}
}

void rig_send(sy_engine *eng, uint32_t route, uint64_t *sent,
	      _Atomic uint64_t *delivered, uint64_t total, rig_label_fn *label,
	      void *ctx)
{
	sy_msg *msgs[RIG_BATCH];

	for (uint64_t done = 0; done < total;) {
		unsigned n = total - done < RIG_BATCH ? (unsigned)(total - done) :
							RIG_BATCH;
		int k;

		rig_wait_handled(*sent, delivered, RIG_IN_FLIGHT_MAX - RIG_BATCH);
		for (unsigned i = 0; i < n; i++) {
			msgs[i] = sy_msg_alloc(eng, 8);
			cr_assert_not_null(msgs[i], "%s", sy_last_error());
			if (label)
				label(msgs[i], done + i, ctx);
		}
		k = sy_msg_send_burst(eng, route, msgs, n);
		cr_assert_eq(k, (int)n, "sy_msg_send_burst took %d of %u", k, n);
		*sent += n;
		done += n;
	}
}

double rig_chi_square(const uint64_t *observed, const double *expected,
		      unsigned n)
{
	double chi2 = 0;

	for (unsigned i = 0; i < n; i++) {
		double d = (double)observed[i] - expected[i];

		chi2 += d * d / expected[i];
	}
	return chi2;
}

int rig_count_handler(sy_engine *eng, sy_msg *msg, void *ctx)
{
	struct rig_server *s = ctx;

	(void)eng;
	(void)msg;
	atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
	/* Pairs with the acquire loads of delivered: the count above is visible. */
	atomic_fetch_add_explicit(s->delivered, 1, memory_order_release);
	return 0;
}

void rig_fleet_init(struct rig_fleet *f, sy_engine *eng, unsigned n,
		    unsigned digits)
{
	cr_assert_not_null(eng, "%s", sy_last_error());
	cr_assert_leq(n, RIG_MAX_SERVERS);
	f->eng = eng;
	f->n = n;
	f->sent = 0;
	atomic_init(&f->delivered, 0);
	for (unsigned i = 0; i < n; i++) {
		atomic_init(&f->servers[i].got, 0);
		f->servers[i].delivered = &f->delivered;
	}
	t_add_servers(eng, n, digits, rig_count_handler, f->servers,
		      sizeof(f->servers[0]), f->ids);
}

void rig_fleet_send(struct rig_fleet *f, uint64_t total)
{
	rig_send(f->eng, f->route, &f->sent, &f->delivered, total, NULL, NULL);
}

void rig_fleet_wait(struct rig_fleet *f, uint64_t in_flight)
{
	rig_wait_handled(f->sent, &f->delivered, in_flight);
}

uint64_t rig_fleet_got(struct rig_fleet *f, unsigned i)
{
	return atomic_load(&f->servers[i].got);
}

double rig_fleet_chi_square_uniform(struct rig_fleet *f, uint64_t total)
{
	uint64_t got[RIG_MAX_SERVERS];
	double expected[RIG_MAX_SERVERS];

	for (unsigned i = 0; i < f->n; i++) {
		got[i] = rig_fleet_got(f, i);
		expected[i] = (double)total / f->n;
	}
	return rig_chi_square(got, expected, f->n);
}
