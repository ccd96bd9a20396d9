/*
 * Review: sy_server_remove() that runs out of memory while it rebuilds the
 * routes listing the server.
 *
 * The engine's allocator (struct sy_allocator) fails on demand: the control
 * thread lets k allocations through, then fails the rest of the call, for
 * k = 0, 1, 2... until a removal succeeds. Server "a", with a health probe,
 * is on two routes: "only" lists it alone, "both" lists it and "b". After
 * each removal that fails (-ENOMEM) the server must be as it was before
 * the call: found by its name, picked by both routes (messages sent
 * through "only" and "both" reach it, and "both" still reaches "b"), its
 * health probe still running. The removal that succeeds frees it. Then
 * the accounting is exact, and once the engine is destroyed every byte
 * the allocator handed out is back.
 */
#include <errno.h>
#include <stdlib.h>

#include "review.h"

#define TRIES_MAX 32
#define WAIT_MS 5000
#define PROBE_NS 1000000u         /* 1 ms between probes */

/* Allocations this thread lets through before failing; -1: no limit. */
static _Thread_local long allocs_left = -1;
static _Atomic size_t bytes_out, blocks_out;

static void *alloc_fn(size_t size, size_t align, void *ctx)
{
	void *p;

	(void)ctx;
	if (allocs_left == 0)
		return NULL;
	if (allocs_left > 0)
		allocs_left--;
	if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align,
			   size) != 0)
		return NULL;
	atomic_fetch_add(&bytes_out, size);
	atomic_fetch_add(&blocks_out, 1);
	return p;
}

static void free_fn(void *p, size_t size, void *ctx)
{
	(void)ctx;
	atomic_fetch_sub(&bytes_out, size);
	atomic_fetch_sub(&blocks_out, 1);
	free(p);
}

static _Atomic uint64_t handled_a, handled_b, probes;

static int handle(sy_engine *eng, sy_msg *msg, void *ctx)
{
	(void)eng;
	(void)msg;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	return 0;
}

static int probe(sy_engine *eng, uint32_t server, void *ctx)
{
	(void)eng;
	(void)server;
	(void)ctx;
	atomic_fetch_add(&probes, 1);
	return 0;
}

/* Wait (bounded) until *@p counter is past @p before. */
static bool grows(_Atomic uint64_t *counter, uint64_t before)
{
	uint64_t end = review_now_ms() + WAIT_MS;

	while (atomic_load(counter) <= before && review_now_ms() < end)
		review_sleep_us(200);
	return atomic_load(counter) > before;
}

/* Send @p n messages through @p route; the first error, or 0. */
static int send_some(sy_engine *eng, uint32_t route, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sy_msg *m = sy_msg_alloc(eng, 16);
		int rc;

		review_check(m != NULL, "no message: %s", sy_last_error());
		rc = review_send(eng, route, m, WAIT_MS);
		if (rc) {
			sy_msg_free(m);
			return rc;
		}
	}
	return 0;
}

/* Server "a" is in place: found, picked by both routes, probed. */
static void check_in_place(sy_engine *eng, uint32_t a, uint32_t only,
			   uint32_t both, unsigned k)
{
	uint64_t before_a = atomic_load(&handled_a);
	uint64_t before_b = atomic_load(&handled_b);
	uint64_t before_probes = atomic_load(&probes);
	uint32_t found;
	int rc;

	review_check(sy_server_find(eng, "a", &found) == 0 && found == a,
		     "after a failed removal (k=%u), \"a\" is no longer found", k);
	rc = send_some(eng, only, 4);
	review_check(rc == 0, "after a failed removal (k=%u), route \"only\" "
		     "refuses messages: %d", k, rc);
	review_check(grows(&handled_a, before_a + 3),
		     "after a failed removal (k=%u), route \"only\" no longer "
		     "reaches \"a\"", k);
	before_a = atomic_load(&handled_a);
	rc = send_some(eng, both, 8);
	review_check(rc == 0, "after a failed removal (k=%u), route \"both\" "
		     "refuses messages: %d", k, rc);
	review_check(grows(&handled_a, before_a) && grows(&handled_b, before_b),
		     "after a failed removal (k=%u), route \"both\" does not "
		     "reach both servers", k);
	review_check(grows(&probes, before_probes),
		     "after a failed removal (k=%u), the health probe of \"a\" "
		     "no longer runs", k);
}

int main(void)
{
	const struct sy_allocator allocator = {
		.alloc = alloc_fn, .free = free_fn,
	};
	const struct sy_health_opts health = {
		.probe = probe, .interval_ns = PROBE_NS,
	};
	const struct sy_server_opts with_probe = { .worker = 0, .health = &health };
	const struct sy_server_opts plain = { .worker = -1 };
	struct sy_route_opts ropts = { .policy = "round_robin" };
	uint32_t a, b, only, both, pair[2], found;
	struct sy_config cfg;
	sy_engine *eng;
	unsigned k;
	int rc;

	review_config(&cfg, 2);
	cfg.allocator = &allocator;
	review_check(sy_engine_create(&cfg, &eng) == 0, "create: %s",
		     sy_last_error());
	review_check(sy_server_add(eng, "a", handle, &handled_a, &with_probe,
				   &a) == 0 &&
		     sy_server_add(eng, "b", handle, &handled_b, &plain, &b) == 0,
		     "servers: %s", sy_last_error());
	ropts.servers = &a;
	ropts.n_servers = 1;
	review_check(sy_route_add(eng, "only", &ropts, &only) == 0, "route: %s",
		     sy_last_error());
	pair[0] = a;
	pair[1] = b;
	ropts.servers = pair;
	ropts.n_servers = 2;
	review_check(sy_route_add(eng, "both", &ropts, &both) == 0, "route: %s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "start: %s", sy_last_error());
	check_in_place(eng, a, only, both, 0);

	for (k = 0; k < TRIES_MAX; k++) {
		allocs_left = k;
		rc = sy_server_remove(eng, a);
		allocs_left = -1;
		if (rc == 0)
			break;
		review_check(rc == -ENOMEM, "removal with %u allocations: %d (%s)",
			     k, rc, sy_last_error());
		check_in_place(eng, a, only, both, k);
	}
	review_check(k > 0, "the removal never asked the engine's allocator for "
		     "memory, so it could not fail here");
	review_check(k < TRIES_MAX, "no removal succeeded in %u tries", k);
	review_check(sy_server_find(eng, "a", &found) == -ENOENT,
		     "\"a\" still found after its removal");
	{
		uint64_t before_b = atomic_load(&handled_b);

		review_check(send_some(eng, both, 4) == 0,
			     "route \"both\" refuses messages after the removal");
		review_check(grows(&handled_b, before_b + 3),
			     "route \"both\" does not reach \"b\" after the removal");
	}
	review_check(sy_engine_stop(eng) == 0, "stop: %s", sy_last_error());
	review_check_accounting(eng);
	sy_engine_destroy(eng);
	review_check(atomic_load(&bytes_out) == 0 && atomic_load(&blocks_out) == 0,
		     "%zu bytes in %zu blocks of the allocator not given back",
		     atomic_load(&bytes_out), atomic_load(&blocks_out));
	printf("review_remove_nomem: removal failed %u times, then succeeded; "
	       "the server stayed in place each time\n", k);
	return 0;
}
