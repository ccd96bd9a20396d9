#include "metrics/counters.h"

static uint64_t get(const struct sy__counters *c, enum sy__counter i)
{
	return atomic_load_explicit(&c->v[i], memory_order_relaxed);
}

void sy__counters_add_to(const struct sy__counters *c, struct sy_stats *out)
{
	out->accepted += get(c, SY_C_ACCEPTED);
	out->delivered += get(c, SY_C_DELIVERED);
	out->handler_failed += get(c, SY_C_HANDLER_FAILED);
	out->rejected_noroute += get(c, SY_C_REJ_NOROUTE);
	out->rejected_unreachable += get(c, SY_C_REJ_UNREACHABLE);
	out->rejected_full += get(c, SY_C_REJ_FULL);
	out->rejected_shutdown += get(c, SY_C_REJ_SHUTDOWN);
	out->requests += get(c, SY_C_REQUESTS);
	out->replies_sent += get(c, SY_C_REPLIES_SENT);
	out->replies_received += get(c, SY_C_REPLIES_RECEIVED);
	out->replies_dropped += get(c, SY_C_REPLIES_DROPPED);
	out->rejected_backpressure += get(c, SY_C_REJ_BACKPRESSURE);
	out->retried += get(c, SY_C_RETRIED);
}
