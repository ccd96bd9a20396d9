/*
 * Tests of the failover policy as a user sees it: every message goes to the
 * first server of the route's order that can take it; removing that server
 * moves the traffic to the next; with no server left a send is refused and
 * the message stays the caller's.
 *
 * Each server's handler counts its messages in its context (atomics). The
 * test thread waits, bounded, for the total it sent before it reads the
 * counts (an acquire load pairing with the handlers' release), or stops the
 * engine first. Handlers never assert.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tests/fixture.h"
#include "tests/policies/rig.h"

#define SERVERS 3u

/* A started engine of two workers and SERVERS servers over them. */
static void rig_start(struct rig_fleet *r)
{
	rig_fleet_init(r, t_engine(2, SY_IDLE_SLEEP), SERVERS, 1);
	cr_assert_eq(sy_engine_start(r->eng), 0);
}

/* A failover route over the servers at @p order (indexes into r->ids). */
static uint32_t rig_route(struct rig_fleet *r, const char *name,
			  const unsigned *order, unsigned n)
{
	struct sy_route_opts ro = { .policy = "failover", .n_servers = n };
	uint32_t servers[SERVERS], id;

	for (unsigned i = 0; i < n; i++)
		servers[i] = r->ids[order[i]];
	ro.servers = servers;
	cr_assert_eq(sy_route_add(r->eng, name, &ro, &id), 0, "%s",
		     sy_last_error());
	return id;
}

/* Send @p n messages one by one and wait until every one is handled. */
static void send_and_wait(struct rig_fleet *r, uint32_t route, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sy_msg *m = sy_msg_alloc(r->eng, 8);
		int rc;

		cr_assert_not_null(m, "%s", sy_last_error());
		rc = t_send_retry(r->eng, route, m, RIG_WAIT_MS);
		if (rc)
			sy_msg_free(m);
		cr_assert_eq(rc, 0, "sy_msg_send: %d", rc);
	}
	r->sent += n;
	cr_assert(t_wait_u64(&r->delivered, r->sent, RIG_WAIT_MS),
		  "%llu of %llu messages handled",
		  (unsigned long long)atomic_load(&r->delivered),
		  (unsigned long long)r->sent);
}

static uint64_t got(struct rig_fleet *r, unsigned server)
{
	return rig_fleet_got(r, server);
}

/* All of 10,000 messages reach order[0], the first of the route's order. */
static void check_all_to_first(const char *name, const unsigned *order)
{
	struct rig_fleet r;
	uint32_t route;

	rig_start(&r);
	route = rig_route(&r, name, order, SERVERS);
	send_and_wait(&r, route, 10000);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, order[0]), 10000);
	cr_expect_eq(got(&r, order[1]), 0);
	cr_expect_eq(got(&r, order[2]), 0);
	sy_engine_destroy(r.eng);
}

Test(policies_failover, all_traffic_goes_to_the_first_server)
{
	check_all_to_first("first", (const unsigned[SERVERS]){ 0, 1, 2 });
}

Test(policies_failover, the_first_is_the_first_of_the_route_order_not_of_ids)
{
	check_all_to_first("reversed", (const unsigned[SERVERS]){ 2, 0, 1 });
}

Test(policies_failover, removing_the_first_server_moves_traffic_to_the_next)
{
	const unsigned order[SERVERS] = { 0, 1, 2 };
	struct rig_fleet r;
	uint32_t route;

	rig_start(&r);
	route = rig_route(&r, "chain", order, SERVERS);
	send_and_wait(&r, route, 1000);
	cr_assert_eq(sy_server_remove(r.eng, r.ids[0]), 0, "%s", sy_last_error());
	send_and_wait(&r, route, 2000);
	cr_expect_eq(got(&r, 0), 1000);
	cr_expect_eq(got(&r, 1), 2000);
	cr_expect_eq(got(&r, 2), 0);
	cr_assert_eq(sy_server_remove(r.eng, r.ids[1]), 0, "%s", sy_last_error());
	send_and_wait(&r, route, 3000);
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 0), 1000);
	cr_expect_eq(got(&r, 1), 2000);
	cr_expect_eq(got(&r, 2), 3000);
	sy_engine_destroy(r.eng);
}

Test(policies_failover, with_its_only_server_removed_a_route_refuses_and_the_message_stays_the_callers)
{
	const unsigned only[1] = { 0 }, other[1] = { 1 };
	const char text[] = "still mine";
	sy_msg *m, *burst[2];
	uint32_t lonely, spare;
	struct sy_stats st;
	struct rig_fleet r;

	rig_start(&r);
	lonely = rig_route(&r, "lonely", only, 1);
	spare = rig_route(&r, "spare", other, 1);
	send_and_wait(&r, lonely, 100);
	cr_assert_eq(sy_server_remove(r.eng, r.ids[0]), 0, "%s", sy_last_error());

	m = sy_msg_alloc(r.eng, sizeof(text));
	cr_assert_not_null(m);
	memcpy(sy_msg_data(m), text, sizeof(text));
	cr_expect_eq(sy_msg_send(r.eng, lonely, m), -EHOSTUNREACH);
	burst[0] = m;
	burst[1] = sy_msg_alloc(r.eng, 8);
	cr_assert_not_null(burst[1]);
	cr_expect_eq(sy_msg_send_burst(r.eng, lonely, burst, 2), -EHOSTUNREACH);
	cr_expect_eq(burst[0], m);
	sy_msg_free(burst[1]);

	/* Refused twice, the message is intact and the caller's to send on. */
	cr_expect_eq(sy_msg_size(m), sizeof(text));
	cr_expect_str_eq((const char *)sy_msg_data(m), text);
	cr_assert_eq(t_send_retry(r.eng, spare, m, RIG_WAIT_MS), 0);
	r.sent++;
	cr_assert(t_wait_u64(&r.delivered, r.sent, RIG_WAIT_MS));
	cr_assert_eq(sy_engine_stop(r.eng), 0);
	cr_expect_eq(got(&r, 0), 100);
	cr_expect_eq(got(&r, 1), 1);
	sy_engine_stats(r.eng, &st);
	cr_expect_eq(st.rejected_unreachable, 3);
	sy_engine_destroy(r.eng);
}
