/*
 * Remote servers and exported routes over NATS (remote.c; docs/remote.md).
 *
 * A message crosses between a worker and the engine's remote thread in two
 * places, and each crossing is told apart from every other run by a mark
 * in the message's second header line: the message's address xor a key.
 * Memory that held anything else matches a key only by a 2^-64 accident,
 * and the side that reads a mark clears it.
 *
 *  - SY_REMOTE_DONE: a message a remote server's worker published comes
 *    back from the remote thread with the far engine's result (in due_ns)
 *    and, for a request, the reply (in next). The remote server's handler
 *    sees the mark and returns the result: the worker counts the run, tells
 *    the breaker, retries or dead-letters it as for a local server.
 *  - SY_REMOTE_ORIGIN: a message that arrived on an exported subject; its
 *    call_seq names the sender's acknowledgement. Such a message always
 *    carries a deadline (the sender's ack timeout), so the worker handles
 *    it on its slow path, takes the mark before the handler runs, and after
 *    the run posts the result to the remote thread (sy__remote_ended()).
 *
 * Each engine with a NATS connection has one remote thread, attached as a
 * producer: it takes acknowledgements and exported messages from the NATS
 * client's callbacks, times out unacknowledged messages, hands results back
 * to workers on its own rings and publishes the acknowledgements of the
 * messages its workers ran for other engines.
 */
#ifndef SY_CORE_REMOTE_H
#define SY_CORE_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/msg.h"

struct sy_engine;
struct sy__worker;

#define SY_REMOTE_DONE 0x9e3779b97f4a7c15ull
#define SY_REMOTE_ORIGIN 0xc2b2ae3d27d4eb4full

static inline uint64_t sy__remote_mark_of(const struct sy_msg *m, uint64_t key)
{
	return (uint64_t)(uintptr_t)m ^ key;
}

/*
 * On the worker, before an exported message's handler runs (its deadline
 * flag is set): the sequence number of its acknowledgement, taking the
 * mark, or 0 for any other message.
 */
static inline uint32_t sy__remote_origin_take(struct sy_msg *m)
{
	if (m->remote_mark != sy__remote_mark_of(m, SY_REMOTE_ORIGIN))
		return 0;
	m->remote_mark = 0;
	return m->call_seq;
}

/*
 * The worker ran (or dead-lettered, @p rc -ETIMEDOUT) exported message
 * @p seq: tell the remote thread, after any reply the handler sent.
 * Never fails; waits only while the remote thread's ring is full.
 */
void sy__remote_ended(struct sy__worker *w, uint32_t seq, int rc);

/*
 * The end of a worker's pass: publish the open batches of its remote
 * servers (w->remote_flush), one NATS message each: all of them if the
 * pass found nothing to do (@p idle), else those open for
 * SY_REMOTE_BATCH_WAIT_NS (remote.c) or longer. Worker @p w's thread
 * only; each batch is one socket write on the prompt connection.
 */
void sy__remote_flush(struct sy__worker *w, bool idle);

/* The remote thread's ring from a worker carries these besides replies. */
static inline bool sy__remote_is_end(const void *e)
{
	return ((uintptr_t)e & 1u) != 0;
}

/* registry.c, removing remote server @p srv (no route lists it any more,
 * its worker has run what its rings held): wait until every message it
 * published or holds has come back and run its result. */
struct sy__server;
void sy__remote_server_drain(struct sy_engine *eng, struct sy__server *srv);

/* collector.c: the remote counters for a snapshot (zero, SY_NATS_NONE,
 * without a connection). Any thread; takes no engine lock. */
struct sy_nats_stats;
void sy__remote_stats(struct sy_engine *eng, struct sy_nats_stats *out);

/* engine.c: stop (after the grace period, before the workers drain: no new
 * exported message, every published one acknowledged or failed and back on
 * its worker's ring), then after the workers have drained (the last
 * acknowledgements go out, the connection closes), then destroy. */
void sy__remote_quiesce(struct sy_engine *eng);
void sy__remote_stop(struct sy_engine *eng);
void sy__remote_destroy(struct sy_engine *eng);

#endif /* SY_CORE_REMOTE_H */
