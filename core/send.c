/*
 * The producer's entry points: send, request, burst send and the waiting
 * send. Each checks that the message is the caller's to pass (msg.h,
 * msg->held), finds the calling thread's slot (attaching it on first use),
 * sets the message's kind, and hands it to the dispatch (dispatch.h), which
 * routes it onto a worker's ring.
 *
 * A handler that sends the message it is handling gives it away: the
 * worker must not free it after the handler returns. That message is still
 * marked held (it came off a ring); it is the one held message a send
 * takes.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "core/compiler.h"
#include "core/dispatch.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/hedge.h"
#include "core/msg.h"
#include "core/reply.h"
#include "core/slot.h"
#include "core/worker.h"

/* @p m, refused, is its caller's again (the handled message stays held). */
static void unhold(struct sy_msg *m)
{
	if (!sy__worker_holds(m)) {
		m->held = 0;
		/* Not a request any more: sy_msg_status() reads replies only. */
		m->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	}
}

/* A send of @p m refused with @p err. */
static __attribute__((cold)) int refused(const char *call, struct sy_msg *m,
					 int err, uint32_t route)
{
	unhold(m);
	return sy__refused(call, err, route);
}

/*
 * Route @p m from slot @p s and take the outcome: 0, or the refusal,
 * recorded under @p call's name, with the message the caller's again.
 * A request passes @p h, armed if its route hedges (hedge.h). @p own: the
 * header of the message the calling handler runs, as it was before this
 * send (NULL for any other message): a refusal puts it back, an acceptance
 * tells the worker that the handler passed its message on.
 */
static inline int send_from(const char *call, sy_engine *eng, uint32_t route,
			    struct sy_msg *m, struct sy__slot *s,
			    struct sy__hedge *h,
			    const struct sy__msg_route *own)
{
	int rc;

	m->held = 1;
	rc = h ? sy__dispatch_request(eng, route, m, s, h) :
		 sy__dispatch(eng, route, m, s);
	if (h)
		sy__hedge_start(eng, s, h, rc);
	if (sy__unlikely(rc)) {
		if (own)
			sy__msg_route_restore(m, own);
		return refused(call, m, rc, route);
	}
	if (own)
		sy__worker_passed_on();
	return 0;
}

/* A send that is not the common one: a NULL or held message (a handler's
 * send of the message it runs among them), or a thread whose cached slot
 * is for another engine. */
static __attribute__((noinline)) int send_slow(sy_engine *eng, uint32_t route,
					       sy_msg *msg)
{
	const char *call = "sy_msg_send";
	struct sy__msg_route saved, *own;
	struct sy__slot *s;
	int err;

	if ((err = sy__msg_check(call, msg)) != 0)
		return err;
	err = 0;
	s = sy__slot_get(eng, &err);
	if (!s)
		return sy__failed(call, err);
	own = sy__msg_route_own(msg, &saved);
	msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	return send_from(call, eng, route, msg, s, NULL, own);
}

/* sy_msg_send() past the direct dispatch: every other case. */
static __attribute__((noinline)) int send_general(struct sy_engine *eng,
						  uint32_t route,
						  struct sy_msg *msg,
						  struct sy__slot *s)
{
	int rc;

	msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	rc = sy__dispatch_general(eng, route, msg, s);
	if (sy__unlikely(rc))
		return refused("sy_msg_send", msg, rc, route);
	return 0;
}

/*
 * The common send makes no call but the dispatch's tail calls and a
 * refusal's. A worker's send takes it too: a message that is not held is
 * not the one its handler runs (that one is held, unless the handler kept
 * it, which marked it taken already), so there is nothing to mark taken.
 */
SY_API int sy_msg_send(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	struct sy__slot *s;

	if (sy__unlikely(!msg || msg->held || sy__tls_hot.eng != eng))
		return send_slow(eng, route, msg);
	s = sy__tls_hot.slot;
	msg->held = 1;
	/* A plain message: the direct send's one write of the flags clears
	 * an earlier use's request marks, send_general() its own. */
	return sy__dispatch_direct_or(eng, route, msg, s, send_general,
				      SY_MSG_KEEP_FLAGS &
				      ~(SY_MSG_REQUEST | SY_MSG_CALL));
}

SY_API int sy_msg_request(sy_engine *eng, uint32_t route, sy_msg *msg)
{
	struct sy__hedge h = { .copy = NULL };
	struct sy__msg_route saved, *own;
	int err = 0;
	struct sy__slot *s;

	if ((err = sy__msg_check(__func__, msg)) != 0)
		return err;
	s = sy__slot_get(eng, &err);
	if (sy__unlikely(!s))
		return sy__failed(__func__, err);
	own = sy__msg_route_own(msg, &saved);
	msg->flags = (uint8_t)((msg->flags & ~SY_MSG_CALL) | SY_MSG_REQUEST);
	sy__reply_address(msg, s);
	msg->hedge = 0; /* no marks from an earlier use */
	err = send_from(__func__, eng, route, msg, s, &h, own);
	if (err == 0)
		sy__total_add(&s->totals, SY_T_REQUESTS, 1);
	return err;
}

/*
 * A burst met @p m, held: whether it is the message the calling handler
 * runs, and the first time the burst meets it (@p own is NULL). If so,
 * its header goes to @p saved. Out of line: the common burst meets no held
 * message and reads no thread-local worker.
 */
static __attribute__((noinline, cold)) bool
burst_meets_own(const struct sy_msg *m, const struct sy_msg *own,
		struct sy__msg_route *saved)
{
	if (own || !sy__worker_holds(m))
		return false;
	sy__msg_route_save(m, saved);
	return true;
}

/*
 * The message the calling handler runs, @p m, after the burst's dispatch
 * returned @p rc: accepted (among msgs[0..rc), where the dispatch moved
 * the accepted ones, wherever @p m was), it was passed on; refused, it is
 * what it was (@p saved).
 */
static __attribute__((noinline, cold)) void
burst_own_end(struct sy_msg *m, struct sy_msg *const *msgs, int rc,
	      const struct sy__msg_route *saved)
{
	for (int i = 0; i < rc; i++) {
		if (msgs[i] == m) {
			sy__worker_passed_on();
			return;
		}
	}
	sy__msg_route_restore(m, saved);
}

/* @p m goes in a burst: held, with what a send keeps of its flags, the
 * request marks aside (the dispatch adds its route's). */
static inline void burst_hold(struct sy_msg *m)
{
	m->held = 1;
	m->flags &= SY_MSG_KEEP_FLAGS & ~(SY_MSG_REQUEST | SY_MSG_CALL);
}

/* The common case of a burst's message: the caller's, and not held (not
 * yet in this burst): hold it. false: the one-at-a-time check decides. */
static inline bool burst_take(struct sy_msg *m)
{
	if (!m || m->held)
		return false;
	burst_hold(m);
	return true;
}

/*
 * sy_msg_send_burst() past its common case, from msgs[@p start] on (those
 * before it are held already): the check one message at a time (a held
 * message, the handler's own among them, or NULL stops it), the dispatch,
 * and the refused messages given back.
 */
static __attribute__((noinline)) int send_burst_rest(sy_engine *eng,
						     uint32_t route,
						     sy_msg **msgs, unsigned n,
						     unsigned start)
{
	static const char call[] = "sy_msg_send_burst";
	struct sy__msg_route saved;
	struct sy_msg *own = NULL, **at;
	unsigned ok;
	int err = 0;
	struct sy__slot *s;
	int rc;

	for (at = msgs + start; at != msgs + n; at++) {
		struct sy_msg *m = *at;

		if (sy__unlikely(!m || m->held)) {
			if (!m || !burst_meets_own(m, own, &saved))
				break;
			own = m;
		}
		burst_hold(m);
	}
	ok = (unsigned)(at - msgs);
	s = ok ? sy__slot_get(eng, &err) : NULL;
	if (sy__unlikely(!s)) {
		for (unsigned i = 0; i < ok; i++)
			unhold(msgs[i]);
		if (own)
			sy__msg_route_restore(own, &saved);
		if (ok == 0)
			return sy__msg_check(call, msgs[0]);
		return sy__failed(call, err);
	}
	rc = sy__dispatch_burst(eng, route, msgs, ok, s);
	for (unsigned i = rc > 0 ? (unsigned)rc : 0; i < ok; i++)
		unhold(msgs[i]);
	if (sy__unlikely(own != NULL))
		burst_own_end(own, msgs, rc, &saved);
	if (rc < 0)
		return sy__refused(call, rc, route);
	if ((unsigned)rc == ok && ok < n)
		sy__msg_check(call, msgs[ok]); /* records why it stopped there */
	return rc;
}

/*
 * The messages up to the first that is not the caller's go; the message
 * the calling handler runs goes once (a second time in the array, it is
 * sent already). The common burst (its messages the caller's, four a step,
 * through a direct route) makes no call but send_burst_rest()'s, a tail
 * call, for everything else: a held or NULL message, a count that is not
 * a multiple of four, a thread not attached, a route that is not direct.
 */
SY_API int sy_msg_send_burst(sy_engine *eng, uint32_t route, sy_msg **msgs,
			     unsigned n)
{
	sy_msg **at = msgs;
	int rc;

	if (n == 0)
		return 0;
	SY__NONNULL(msgs);
	/* Four a step while each is the caller's, each held before the next
	 * is looked at (a message twice in the step is held in its second
	 * place). */
	for (unsigned left = n / 4; left; left--) {
		if (sy__unlikely(!burst_take(at[0])))
			break;
		if (sy__unlikely(!burst_take(at[1]))) {
			at += 1;
			break;
		}
		if (sy__unlikely(!burst_take(at[2]))) {
			at += 2;
			break;
		}
		if (sy__unlikely(!burst_take(at[3]))) {
			at += 3;
			break;
		}
		at += 4;
	}
	if (sy__likely(at == msgs + n && sy__tls_hot.eng == eng)) {
		rc = sy__dispatch_burst_direct(eng, route, msgs, n,
					       sy__tls_hot.slot);
		if (sy__likely(rc != SY_DISPATCH_GENERAL))
			return rc;
	}
	return send_burst_rest(eng, route, msgs, n, (unsigned)(at - msgs));
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One wait of a waiting send: spin, then yield, then sleep a little
 * longer each time, never past @p deadline. */
static void send_backoff(unsigned round, uint64_t deadline)
{
	uint64_t now, ns;

	if (round < 16) {
		__builtin_ia32_pause();
		return;
	}
	if (round < 32) {
		sched_yield();
		return;
	}
	now = now_ns();
	if (now >= deadline)
		return;
	ns = (uint64_t)1000 << (round - 32 < 6 ? round - 32 : 6); /* 1-64 us */
	if (ns > deadline - now)
		ns = deadline - now;
	nanosleep(&(struct timespec){ .tv_nsec = (long)ns }, NULL);
}

SY_API int sy_msg_send_wait(sy_engine *eng, uint32_t route, sy_msg *msg,
			    uint64_t timeout_ns)
{
	struct sy__msg_route saved, *own;
	int err = 0;
	struct sy__slot *s;
	uint64_t deadline = 0;
	int rc;

	if ((err = sy__msg_check(__func__, msg)) != 0)
		return err;
	s = sy__slot_get(eng, &err);
	if (sy__unlikely(!s))
		return sy__failed(__func__, err);
	if (s->is_worker)
		return sy__failed(__func__, sy__fail(-EDEADLK,
			"a handler must not wait for a ring its worker may drain"));
	/* A handler of another engine may send the message it runs. */
	own = sy__msg_route_own(msg, &saved);
	msg->flags &= (uint8_t)~(SY_MSG_REQUEST | SY_MSG_CALL);
	for (unsigned round = 0;; round++) {
		msg->held = 1;
		rc = sy__dispatch_quiet(eng, route, msg, s);
		if (sy__likely(rc == 0)) {
			if (round)
				sy__total_add(&s->totals, SY_T_SEND_WAITS, 1);
			if (own)
				sy__worker_passed_on();
			return 0;
		}
		if (rc != -EAGAIN && rc != -ENOBUFS)
			break;
		if (round == 0)
			deadline = now_ns() + timeout_ns;
		else if ((round & 15) == 0 && now_ns() >= deadline)
			break;
		send_backoff(round, deadline);
	}
	/* The caller's again; the handler's own message stays held. */
	msg->held = own != NULL;
	if (own)
		sy__msg_route_restore(msg, own);
	if (rc != -EAGAIN && rc != -ENOBUFS)
		return sy__refused(__func__, rc, route);
	sy__total_add(&s->totals, SY_T_SEND_WAIT_TIMEOUTS, 1);
	sy__fail(-ETIMEDOUT, "route %u: still %s after %llu ns", route,
		 rc == -EAGAIN ? "full" : "past its backpressure threshold",
		 (unsigned long long)timeout_ns);
	return sy__failed(__func__, -ETIMEDOUT);
}

/* The names of 0.1.0 (include/switchyard.h), the same functions. */
SY__ALIAS(sy_send, sy_msg_send);
SY__ALIAS(sy_request, sy_msg_request);
SY__ALIAS(sy_send_burst, sy_msg_send_burst);
