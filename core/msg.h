/*
 * The message header, its flags, and the burst descriptor.
 *
 * A header is two cache lines. The first is what every send and every
 * handler run touches; the second is read and written only when a flag
 * says so (a deadline, a latency sample, a retry, a dead letter), so the
 * common path touches one line of header.
 */
#ifndef SY_CORE_MSG_H
#define SY_CORE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "switchyard.h"

#define SY_BURST_MAX 32 /* messages per burst descriptor */
#define SY_CALL_SEQ_MASK ((1u << 23) - 1) /* msg->call_seq's bits */
/* msg->hedge (hedge.h), copied to replies with call_seq: a request that
 * may be hedged, and the hedge's copy. */
#define SY_HEDGE_REQUEST 1u
#define SY_HEDGE_COPY 2u

enum {
	SY_CLASSES = 6,           /* pooled size classes */
	SY_CLASS_HUGE = 7,        /* allocated alone, freed to the allocator */
};

enum sy__msg_flags {
	SY_MSG_REQUEST = 1u << 0, /* a reply goes back to reply_slot */
	SY_MSG_CALL = 1u << 1,    /* the request of a sy_msg_call(); call_seq matches */
	SY_MSG_BURST = 1u << 2,   /* an internal burst descriptor, not a message */
	SY_MSG_INFLIGHT = 1u << 3,/* counted in server->inflight until handled */
	SY_MSG_OBSERVE = 1u << 4, /* the route's policy observes its handler run */
	SY_MSG_DEADLINE = 1u << 5,/* deadline is set */
	SY_MSG_TIMED = 1u << 6,   /* sent_ns is set: a latency sample */
	SY_MSG_DEAD = 1u << 7,    /* dead-lettered before: dl_first_ns is set */
};

/* Flags a send keeps; the others come from the route, and SY_MSG_TIMED
 * from this send's own sampling (a forwarded or retried message does not
 * carry an earlier send's sample). */
#define SY_MSG_KEEP_FLAGS (SY_MSG_REQUEST | SY_MSG_CALL | SY_MSG_DEADLINE | \
			   SY_MSG_DEAD)

struct sy__pool;
struct sy__server;

/* A call given a message that is not its caller's (msg->held): -EINVAL,
 * recorded for sy_last_error() under @p call's name. */
int sy__msg_refuse(const char *call) __attribute__((cold));

/* Whether @p m may be passed on by the calling thread: the caller's own
 * (not held), or the message its handler runs. 0, or -EINVAL recorded
 * under @p call's name (NULL, or not the caller's). */
int sy__msg_check(const char *call, const struct sy_msg *m);

struct sy_msg {
	struct sy_msg *next;       /* free lists, return chains, retry lists */
	/* Where it goes back to: its pool's address with its size class in
	 * the low 3 bits (pool.h), so that one compare tells whether two
	 * messages go back to the same free list. */
	uintptr_t home;
	struct sy__server *server; /* destination, set by the send */
	uint64_t tag;
	uint64_t key;              /* for key-based policies */
	uint32_t size;
	uint32_t cap;
	uint32_t reply_slot;       /* requester's slot */
	uint32_t call_seq : 23;    /* sy_msg_call() sequence (wraps) */
	/* Not the caller's: in a free list, a ring or the dead letter queue.
	 * Set by a send, a reply and a free; cleared by an allocation and by
	 * the calls that hand a message out (poll, call, drain, keep). A
	 * handler's own message keeps it set: the handler may pass it on. */
	uint32_t held : 1;
	/* Stamped by a CoDel route's send (enq_ns is set); the worker that
	 * measures it clears it (codel.c). */
	uint32_t codel : 1;
	uint32_t hedge : 2;        /* SY_HEDGE_ marks; after held, which stays bit 23 */
	uint32_t route_id;         /* route it was sent through */
	uint16_t pick;             /* index of server in that route */
	/* Handler runs that failed so far. Beside flags: a worker checks both
	 * with one load (sy__msg_plain()). */
	uint8_t attempts;
	uint8_t flags;
	/* Second line. */
	_Alignas(64) uint64_t deadline; /* SY_MSG_DEADLINE: engine clock */
	uint64_t sent_ns;          /* SY_MSG_TIMED: clock at the send call */
	uint64_t dl_first_ns;      /* SY_MSG_DEAD: first dead-lettered */
	uint64_t due_ns;           /* a retry waiting on its worker: when it goes */
	uint32_t last_server;      /* id of the server of its last handler run */
	/* SY_MSG_REQUEST: the requester's slot generation. All 32 bits: a
	 * slot attached and detached 65,536 times must not take a reply meant
	 * for its first owner. */
	uint32_t reply_gen;
	/* A reply's status: 0 from sy_msg_reply(), the handler's code for a
	 * failed request its route returned (SY_FAIL_RETURN). */
	int32_t status;
	/* Remote messages (remote.h): the message's address xor a key while
	 * it crosses between a worker and the engine's remote thread. */
	uint64_t remote_mark;
	uint64_t enq_ns;           /* codel: clock at the send (codel.c) */
	_Alignas(16) unsigned char data[];
};
_Static_assert(sizeof(struct sy_msg) == 128, "message header is two cache lines");
_Static_assert(offsetof(struct sy_msg, data) == sizeof(struct sy_msg),
	       "the payload follows the header");
_Static_assert(offsetof(struct sy_msg, flags) ==
	       offsetof(struct sy_msg, attempts) + 1, "attempts, then flags");

/* Is @p m a first run with none of the flags @p slow? One 16-bit load
 * of attempts and flags. */
static inline int sy__msg_plain(const struct sy_msg *m, uint8_t slow)
{
	uint16_t w;

	__builtin_memcpy(&w, &m->attempts, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (w & (uint16_t)(0xffu | (unsigned)slow << 8)) == 0;
#else
	return (w & (uint16_t)(0xff00u | slow)) == 0;
#endif
}

/*
 * What a send may change in a message's header before it is refused. The
 * message a handler runs stays the handler's after a refused send, and
 * stays what it was: a request answerable with sy_msg_reply(), through the
 * route and server it came by (a retry and a failure reply read them). A
 * send of it saves these first and puts them back when refused.
 */
struct sy__msg_route {
	struct sy__server *server;
	uint32_t route_id;
	uint32_t reply_slot;
	uint32_t reply_gen;
	uint32_t call_seq;
	uint16_t pick;
	uint8_t flags;
	uint8_t hedge;
};

static inline void sy__msg_route_save(const struct sy_msg *m,
				      struct sy__msg_route *r)
{
	*r = (struct sy__msg_route){
		.server = m->server, .route_id = m->route_id,
		.reply_slot = m->reply_slot, .reply_gen = m->reply_gen,
		.call_seq = m->call_seq, .pick = m->pick, .flags = m->flags,
		.hedge = m->hedge,
	};
}

static inline void sy__msg_route_restore(struct sy_msg *m,
					 const struct sy__msg_route *r)
{
	m->server = r->server;
	m->route_id = r->route_id;
	m->reply_slot = r->reply_slot;
	m->reply_gen = r->reply_gen;
	m->call_seq = r->call_seq & SY_CALL_SEQ_MASK;
	m->pick = r->pick;
	m->flags = r->flags;
	m->hedge = r->hedge & 3u;
}

/* @p m, checked (sy__msg_check()), is the message the calling handler runs
 * if it is held: save its header in @p saved and return @p saved; else
 * NULL. */
static inline struct sy__msg_route *
sy__msg_route_own(const struct sy_msg *m, struct sy__msg_route *saved)
{
	if (!m->held)
		return NULL;
	sy__msg_route_save(m, saved);
	return saved;
}

/* A burst descriptor: SY_BURST_MAX messages for one worker in one ring
 * entry. It travels as the data of a message flagged SY_MSG_BURST. */
struct sy__burst {
	uint32_t n;
	void *msgs[SY_BURST_MAX];  /* struct sy_msg *, as ring entries are */
};

/* Make @p d, a message off a free list, the descriptor of @p n messages
 * for @p one through @p route (NULL: each message names its own). */
static inline void sy__msg_init_burst(struct sy_msg *d, struct sy__server *one,
				      uint32_t route, unsigned n)
{
	d->attempts = 0;
	d->flags = SY_MSG_BURST;
	d->server = one;
	d->route_id = route;
	((struct sy__burst *)d->data)->n = n;
}

#endif /* SY_CORE_MSG_H */
