/*
 * ZeroMQ inproc PUSH/PULL, one message per zmq_msg.
 *
 * The control thread creates both sockets (bind before connect) and hands
 * them to the pinned threads; ZeroMQ allows a socket to move to another
 * thread across a full memory barrier, which the start gate of pinned_run()
 * provides (its release/acquire pair). The sockets go back to the control
 * thread, to be closed, through pthread_join().
 */
#include "zmq_baseline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "pinned.h"

#define ENDPOINT "inproc://sy-bench"

struct zmq_run {
	uint64_t n;
	size_t payload;   /* bytes per message */
	size_t seq_bytes; /* of them, the sequence number's (host order) */
	void *push;
	void *pull;
	uint64_t t_start; /* written by the producer before its first send */
	uint64_t t_end;   /* written by the consumer after its last receive */
};

/* A failed ZeroMQ call: say which, return its negative errno. */
static int zmq_failed(const char *call)
{
	int err = zmq_errno();

	fprintf(stderr, "sy-bench: zmq-inproc: %s: %s\n", call,
		zmq_strerror(err));
	return err > 0 ? -err : -EIO;
}

static int zmq_produce(void *arg)
{
	struct zmq_run *run = arg;
	zmq_msg_t msg;

	run->t_start = bench_now_ns();
	for (uint64_t i = 1; i <= run->n; i++) {
		if (zmq_msg_init_size(&msg, run->payload))
			return zmq_failed("zmq_msg_init_size");
		memset(zmq_msg_data(&msg), 0, run->payload);
		memcpy(zmq_msg_data(&msg), &i, run->seq_bytes);
		/* On success ZeroMQ owns the message; on failure we do. */
		if (zmq_msg_send(&msg, run->push, 0) < 0) {
			zmq_msg_close(&msg);
			return zmq_failed("zmq_msg_send");
		}
	}
	return 0;
}

static int zmq_consume(void *arg)
{
	struct zmq_run *run = arg;
	zmq_msg_t msg;
	uint64_t seq, want;
	int rc = 0;

	if (zmq_msg_init(&msg))
		return zmq_failed("zmq_msg_init");
	/* After a bad message, keep draining: the producer may wait on us. */
	for (uint64_t i = 1; i <= run->n; i++) {
		if (zmq_msg_recv(&msg, run->pull, 0) < 0) {
			rc = zmq_failed("zmq_msg_recv");
			break;
		}
		seq = want = 0;
		memcpy(&seq, zmq_msg_data(&msg), run->seq_bytes);
		memcpy(&want, &i, run->seq_bytes);
		if (zmq_msg_size(&msg) != run->payload || seq != want)
			rc = -EPROTO;
	}
	run->t_end = bench_now_ns();
	zmq_msg_close(&msg);
	return rc;
}

/* Both ends of the pipe, connected; NULL sockets on failure. */
static int open_pair(void *zctx, struct zmq_run *run)
{
	int linger = 0;

	run->pull = zmq_socket(zctx, ZMQ_PULL);
	if (!run->pull)
		return zmq_failed("zmq_socket(ZMQ_PULL)");
	run->push = zmq_socket(zctx, ZMQ_PUSH);
	if (!run->push)
		return zmq_failed("zmq_socket(ZMQ_PUSH)");
	/* Nothing is left unsent at close in a complete run; never wait. */
	if (zmq_setsockopt(run->push, ZMQ_LINGER, &linger, sizeof(linger)))
		return zmq_failed("zmq_setsockopt(ZMQ_LINGER)");
	if (zmq_bind(run->pull, ENDPOINT))
		return zmq_failed("zmq_bind");
	if (zmq_connect(run->push, ENDPOINT))
		return zmq_failed("zmq_connect");
	return 0;
}

int baseline_zmq_inproc(const struct bench_ctx *ctx, uint64_t n, double *secs)
{
	struct zmq_run run = { .n = n };
	struct pinned_thread threads[2] = {
		{ .cpu = ctx->producer_cpu, .fn = zmq_produce, .arg = &run },
		{ .cpu = ctx->consumer_cpu, .fn = zmq_consume, .arg = &run },
	};
	void *zctx;
	int rc;

	run.payload = ctx->payload ? ctx->payload : BENCH_DEFAULT_PAYLOAD;
	run.seq_bytes = run.payload < sizeof(uint64_t) ? run.payload
						       : sizeof(uint64_t);
	zctx = zmq_ctx_new();
	if (!zctx)
		return zmq_failed("zmq_ctx_new");
	rc = open_pair(zctx, &run);
	if (!rc)
		rc = pinned_run(threads, 2, ctx->spin_limit);
	if (!rc)
		*secs = (double)(run.t_end - run.t_start) / 1e9;
	if (run.push)
		zmq_close(run.push);
	if (run.pull)
		zmq_close(run.pull);
	zmq_ctx_term(zctx);
	return rc;
}
