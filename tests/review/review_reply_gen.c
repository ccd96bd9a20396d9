/*
 * Review: a reply for a thread that detached is dropped, even when its
 * producer slot has been attached and detached many times since.
 *
 * A request carries the low 16 bits of its sender's slot generation, and a
 * slot's generation moves by one at each attach and each detach. After
 * 32,767 attach/detach cycles of that slot and one more attach, the slot
 * is at the same 16 bits again, and a late reply to the first thread's
 * request is handed to the thread attached now, which never sent it.
 */
#include <errno.h>
#include <string.h>

#include "review.h"

#define CYCLES 32767

static _Atomic int entered, release;

static int blocking_echo(sy_engine *eng, sy_msg *msg, void *ctx)
{
	uint64_t end = review_now_ms() + 30000;

	(void)eng;
	(void)ctx;
	atomic_store(&entered, 1);
	while (!atomic_load(&release) && review_now_ms() < end)
		review_sleep_us(100);
	sy_msg_reply(msg, msg);
	return 0;
}

int main(void)
{
	struct sy_route_opts ro = { .policy = "direct", .n_servers = 1 };
	uint64_t end;
	struct sy_config cfg;
	uint32_t server, route;
	sy_engine *eng;
	sy_msg *req, *got[4];
	int n = 0;

	review_config(&cfg, 1);
	review_check(sy_engine_create(&cfg, &eng) == 0, "%s", sy_last_error());
	review_check(sy_server_add(eng, "echo", blocking_echo, NULL, NULL,
				   &server) == 0, "%s", sy_last_error());
	ro.servers = &server;
	review_check(sy_route_add(eng, "echo", &ro, &route) == 0, "%s",
		     sy_last_error());
	review_check(sy_engine_start(eng) == 0, "%s", sy_last_error());

	review_check(sy_producer_attach(eng) == 0, "attach");
	req = sy_msg_alloc(eng, 8);
	sy_msg_set_tag(req, 0xfeed);
	review_check(sy_msg_request(eng, route, req) == 0, "request");
	end = review_now_ms() + 5000;
	while (!atomic_load(&entered) && review_now_ms() < end)
		review_sleep_us(100);
	review_check(atomic_load(&entered), "the handler never ran");
	review_check(sy_producer_detach(eng) == 0, "detach");

	/* The same slot (the only producer slot in use) over and over. */
	for (int i = 0; i < CYCLES; i++)
		review_check(sy_producer_attach(eng) == 0 &&
			     sy_producer_detach(eng) == 0, "cycle %d", i);
	review_check(sy_producer_attach(eng) == 0, "attach");
	atomic_store(&release, 1);

	end = review_now_ms() + 500;
	while (review_now_ms() < end && n == 0) {
		n = sy_producer_poll_replies(eng, got, 4);
		review_sleep_us(1000);
	}
	review_check(n == 0,
		     "a reply (tag %#llx) to a request sent before %d attach/detach cycles was handed to a thread that never sent it",
		     (unsigned long long)sy_msg_tag(got[0]), CYCLES);
	sy_producer_detach(eng);
	sy_engine_stop(eng);
	sy_engine_destroy(eng);
	printf("reply generation: a late reply to a detached thread was dropped\n");
	return 0;
}
