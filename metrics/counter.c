#include "metrics/counter.h"

void sy__totals_add_to(const struct sy__totals *t, struct sy_stats *out)
{
#define ADD(total, field) out->field += sy__counter_read(&t->v[SY_T_##total]);
	ADD(ACCEPTED, accepted) ADD(DELIVERED, delivered)
	ADD(HANDLER_FAILED, handler_failed) ADD(REQUESTS, requests)
	ADD(REJ_NOROUTE, rejected_noroute) ADD(REJ_FULL, rejected_full)
	ADD(REJ_UNREACHABLE, rejected_unreachable)
	ADD(REJ_SHUTDOWN, rejected_shutdown) ADD(RETRIED, retried)
	ADD(REJ_BACKPRESSURE, rejected_backpressure)
	ADD(REPLIES_SENT, replies_sent) ADD(REPLIES_RECEIVED, replies_received)
	ADD(REPLIES_DROPPED, replies_dropped)
	ADD(SEND_WAITS, send_waits) ADD(SEND_WAIT_TIMEOUTS, send_wait_timeouts)
	ADD(DROPPED, dropped) ADD(RETURNED, returned)
	ADD(REJ_DEADLINE, rejected_deadline) ADD(CODEL_SHED, codel_shed)
	ADD(HEDGES_SENT, hedges_sent) ADD(HEDGE_WINS, hedge_wins)
	ADD(HEDGE_DISCARDS, hedge_replies_discarded)
#undef ADD
}
