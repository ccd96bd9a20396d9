/*
 * Remote servers and exported routes over NATS (docs/remote.md).
 *
 * Sending side. A remote server is an ordinary server whose handler
 * (remote_run) publishes the message to the server's subject with a reply
 * subject of the engine's own (<inbox>.<id>), records it in the pending
 * table and defers its run (sy__worker_defer()): the worker counts nothing
 * yet. The engine has two connections to NATS. On the first, which also
 * holds the subscriptions, the client buffers what is published and its
 * flusher thread writes the buffer about 1 ms later; the second (prompt)
 * writes each publish at once. A message that goes out while none of its
 * server's is in flight is published alone on the prompt one. The others
 * join the server's batch, one NATS message on the prompt connection,
 * which the worker publishes once one of its passes finds nothing else to
 * do (sy__remote_flush()), or once the batch holds half the window or
 * 64 KiB, or has been open SY_REMOTE_BATCH_WAIT_NS: under load a batch
 * takes what several passes bring. The far engine acknowledges a batch's
 * messages in batches too. A lone acknowledgement takes the prompt
 * connection when it is the last of its worker's ring, else the buffered
 * one. Each connection has its own inbox, since the server answers "no
 * responders" to the connection that published. The remote thread then
 * matches the acknowledgement to the pending entry, or times the entry
 * out, or fails it when a connection drops, and hands the message back to
 * its worker on the remote thread's own ring, marked SY_REMOTE_DONE with
 * the result (remote.h). The handler runs again, sees the mark and
 * returns the result: from there the worker counts, breaks, retries and
 * dead-letters as for a local server.
 *
 * Serving side. An exported route's subscription hands each message to the
 * remote thread, which copies it into an engine message with the sender's
 * key, tag and a deadline (the sender's remaining ack time), marks it
 * SY_REMOTE_ORIGIN with a sequence number and sends it through the route
 * (sy_msg_request() for a request). The worker that runs it posts the result
 * on its reply ring to the remote thread after the handler's reply, if
 * any (sy__remote_ended()); the remote thread publishes the acknowledgement
 * with the result and the reply. A run that fails ends on this engine:
 * the sender retries or dead-letters it.
 *
 * Delivery is at least once: an acknowledgement lost with a connection or
 * a process makes the sender run the message again elsewhere (or
 * dead-letter it) although its handler ran; late_acks counts the
 * acknowledgements that arrive for messages already failed.
 *
 * Durable dead letters. With a stream (sy_nats_opts.dlq_stream), the dead
 * letter queue copies each dead letter (dlq.h) and wakes the remote thread,
 * which publishes the copies to JetStream asynchronously, at most
 * SY_DL_MAX_PENDING unacknowledged, so that neither a sender nor a worker
 * ever waits on the network for them and the remote thread never stalls
 * in the client. Each stored message is the payload with the dead letter's
 * description in headers (docs/remote.md); Nats-Msg-Id (instance and id)
 * lets JetStream drop a copy sent twice. The admin functions read the
 * stream with direct gets, and a replay deletes each message it has sent.
 *
 * Locks: `lock` guards the pending table and the queue of messages from
 * the NATS client's callbacks, taken by workers (publish), callbacks and
 * the remote thread, never on a path without a remote server or export.
 * `dl_admin` makes the stream's admin calls take turns. Everything else of
 * the serving side belongs to the remote thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dlq.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/msg.h"
#include "core/remote.h"
#include "core/slot.h"
#include "core/worker.h"

#ifdef SY_HAVE_NATS

#include <nats/nats.h>

#include "core/route.h"
#include "metrics/hist.h"

#define SY_REMOTE_BUCKETS 4096u          /* pending and served hash buckets */
#define SY_REMOTE_TICK_NS 1000000u       /* timeout scan while messages wait */
#define SY_REMOTE_IDLE_NS 100000000u     /* nap with nothing in flight */
#define SY_REMOTE_ACK_TIMEOUT_NS 1000000000ull
#define SY_REMOTE_MAX_IN_FLIGHT 1024u
#define SY_REMOTE_QUEUE_FACTOR 16u      /* waiting: at most this many windows */
#define SY_REMOTE_BATCH_WAIT_NS 100000u  /* a busy worker's batch, at most */
#define SY_REMOTE_IDLE_YIELDS 16u       /* the remote thread's, then it parks */
#define SY_SUBJECT_MAX 200
#define SY_STREAM_MAX 64
#define SY_DL_MAX_PENDING 1024u         /* stream writes awaiting their ack */
#define SY_DL_WAIT_MS 5000              /* a stream write's ack, the final flush */

enum rcount {
	RC_RECONNECTS, RC_PUBLISHED, RC_ACKED, RC_NACKED, RC_TIMEOUTS,
	RC_NO_RESPONDERS, RC_CONN_FAILURES, RC_TOO_LARGE, RC_LATE_ACKS,
	RC_SERVED, RC_SERVED_FAILED, RC_MALFORMED, RC_DL_STORED,
	RC_DL_STORE_FAILED, RC_COUNT
};

/* A published message waiting for its acknowledgement. */
struct pending {
	struct pending *hnext;          /* bucket chain */
	struct pending *prev, *next;    /* every pending entry, oldest first */
	uint64_t id;
	struct sy_msg *m;
	struct sy__rserver *rs;
	uint64_t sent_ns, expires_ns;
	int fail_rc;                    /* on expiry: -ETIMEDOUT, or why it failed */
	unsigned span;                  /* the first of a batch: its messages */
};

/* A remote server: its handler's context. */
struct sy__rserver {
	struct sy__remote *rm;
	struct sy__rserver *next;       /* rm->rservers, under eng->lock */
	uint64_t ack_timeout_ns;
	unsigned max_in_flight;
	_Atomic unsigned in_flight;     /* published, result not yet back */
	_Atomic unsigned away;          /* published, not yet back on a ring */
	/* The window is full: messages wait here, on the server's worker
	 * (msg->next), until results come back. That worker only. */
	struct sy_msg *queue, **queue_tail;
	unsigned queued;
	/* The batch this pass builds (docs/remote.md, "Batches"): its records
	 * in buf, their pending entries in order (pending.next), published
	 * at the pass's end or when full. That worker only. */
	struct sy__rserver *flush_next; /* on the worker's remote_flush list */
	bool listed;
	struct pending *batch, **batch_tail;
	unsigned nbatch;
	unsigned char *buf;
	size_t len, cap;
	char subject[SY_SUBJECT_MAX + 1];
};

/* An exported message being run here, until its worker's result. */
struct served {
	struct served *hnext;
	uint32_t seq;
	bool request;
	bool batched;                   /* acknowledged in a batch, by id */
	uint64_t id;                    /* the sender's id (batched) */
	struct sy_msg *reply;           /* the handler's reply, if any */
	char reply_to[];                /* the sender's acknowledgement subject */
};

struct export {
	struct export *next;
	struct sy__remote *rm;
	natsSubscription *sub;
	uint32_t route;
};

/* A message from a callback: an acknowledgement (ex NULL) or for an export. */
struct inmsg {
	natsMsg *msg;
	struct export *ex;
};

/* Acknowledgements of batched messages to one reply subject, built by the
 * remote thread and published at the end of its pass. */
struct ackbuf {
	char to[SY_SUBJECT_MAX + 1];
	unsigned char *buf;
	size_t len, cap;
	unsigned n;
};

#define SY_ACK_BUFS 8

struct sy__remote {
	struct sy_engine *eng;
	natsOptions *opts;
	natsConnection *nc;             /* subscriptions; publishes that batch */
	natsOptions *prompt_opts;
	natsConnection *prompt;         /* publishes written at once */
	natsSubscription *acks, *prompt_acks;
	char inbox[96];                 /* acknowledgements: <inbox>.<id> */
	char prompt_inbox[96];          /* of messages sent on `prompt` */
	pthread_t thread;
	bool thread_started;
	struct sy__slot *slot;          /* the remote thread's, once attached */
	_Atomic int ready;              /* 1 attached, -1 failed */
	_Atomic bool quit;              /* stop: leave once nothing is left */
	_Atomic bool closing;           /* stopping: exports unsubscribed */
	_Atomic bool dropped;           /* the connection dropped: fail pending */
	_Atomic int state;              /* enum sy_nats_state */
	_Atomic bool closed;            /* the client's closed callback ran */
	_Atomic uint64_t next_id;
	_Atomic uint64_t outstanding;   /* published, not yet back on a ring */
	_Atomic unsigned nin;           /* entries in `in` (a hint, for parking) */
	uint64_t instance;              /* random: names this engine in Sy-Id */
	size_t batch_max;               /* bytes of records in one batch */
	pthread_mutex_t lock;
	struct pending *buckets[SY_REMOTE_BUCKETS];
	struct pending *oldest, *newest;
	struct inmsg *in;
	unsigned in_cap;
	/* The remote thread's own. */
	struct served *served[SY_REMOTE_BUCKETS];
	uint32_t serve_seq;
	struct sy_msg **waiting;        /* results whose ring was full */
	unsigned nwaiting, waiting_cap;
	struct ackbuf acks_out[SY_ACK_BUFS];
	unsigned nacks_out;
	struct sy__hist ack_hist;
	/* The dead letter stream: set at connect, then read-only. */
	jsCtx *js;                      /* NULL: no stream */
	char dl_stream[SY_STREAM_MAX + 1];
	char dl_subject[SY_STREAM_MAX + 8];
	_Atomic unsigned dl_pending;    /* written, not yet acknowledged */
	pthread_mutex_t dl_admin;
	struct sy__dl_copy *dl_todo, **dl_todo_tail; /* the remote thread's */
	/* Under eng->lock. */
	struct export *exports;
	struct sy__rserver *rservers;
	_Atomic uint64_t c[RC_COUNT];
};

static void count(struct sy__remote *rm, enum rcount c)
{
	atomic_fetch_add_explicit(&rm->c[c], 1, memory_order_relaxed);
}

static int state_of(struct sy__remote *rm)
{
	return atomic_load_explicit(&rm->state, memory_order_acquire);
}

/* ---- the pending table (under rm->lock) ---- */

static void pending_insert(struct sy__remote *rm, struct pending *p)
{
	struct pending **b = &rm->buckets[p->id % SY_REMOTE_BUCKETS];

	p->hnext = *b;
	*b = p;
	p->next = NULL;
	p->prev = rm->newest;
	if (rm->newest)
		rm->newest->next = p;
	else
		rm->oldest = p;
	rm->newest = p;
}

static void pending_unlink(struct sy__remote *rm, struct pending *p)
{
	struct pending **at = &rm->buckets[p->id % SY_REMOTE_BUCKETS];

	while (*at != p)
		at = &(*at)->hnext;
	*at = p->hnext;
	if (p->prev)
		p->prev->next = p->next;
	else
		rm->oldest = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		rm->newest = p->prev;
}

static struct pending *pending_find(struct sy__remote *rm, uint64_t id)
{
	struct pending *p = rm->buckets[id % SY_REMOTE_BUCKETS];

	while (p && p->id != id)
		p = p->hnext;
	return p;
}

/* ---- sending: the remote server's handler, on its worker ---- */

static natsStatus set_header_u64(natsMsg *nm, const char *key, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return natsMsgHeader_Set(nm, key, buf);
}

/* The run that brings the far engine's result back: return it. */
static int remote_result(struct sy_msg *m)
{
	int rc = (int)(int32_t)(uint32_t)m->due_ns;
	struct sy_msg *reply = m->next;

	m->remote_mark = 0;
	m->next = NULL;
	if (m->due_ns >> 32)
		m->flags |= SY_MSG_DEADLINE;
	if (reply && (rc < 0 || !sy_msg_is_request(m) || sy_msg_reply(m, reply)))
		sy_msg_free(reply);
	return rc;
}

/* The route's name, for the Sy-Route header. Inside the pass's section. */
static const char *route_name(struct sy_engine *eng, uint32_t id)
{
	/* Pairs with R1 in registry.c. */
	struct sy__route *r = atomic_load_explicit(&eng->routes[id],
						   memory_order_acquire);

	return r ? r->name : "";
}

static natsStatus build(struct sy__remote *rm, struct sy__rserver *rs,
			struct sy_msg *m, uint64_t id, uint64_t wait_ns,
			const char *inbox, natsMsg **out)
{
	char reply[sizeof(rm->inbox) + 24], sid[48];
	natsMsg *nm = NULL;
	natsStatus s;

	snprintf(reply, sizeof(reply), "%s.%" PRIu64, inbox, id);
	snprintf(sid, sizeof(sid), "%016" PRIx64 "-%" PRIu64, rm->instance, id);
	s = natsMsg_Create(&nm, rs->subject, reply, (const char *)m->data,
			   (int)m->size);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Sy-Id", sid);
	if (s == NATS_OK)
		s = set_header_u64(nm, "Sy-Key", m->key);
	if (s == NATS_OK)
		s = set_header_u64(nm, "Sy-Tag", m->tag);
	if (s == NATS_OK)
		s = set_header_u64(nm, "Sy-Deadline-In", wait_ns);
	if (s == NATS_OK)
		s = set_header_u64(nm, "Sy-Attempt", m->attempts + 1u);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Sy-Route",
				      route_name(rm->eng, m->route_id));
	if (s == NATS_OK && (m->flags & SY_MSG_REQUEST))
		s = natsMsgHeader_Set(nm, "Sy-Reply", "1");
	if (s != NATS_OK) {
		natsMsg_Destroy(nm);
		return s;
	}
	*out = nm;
	return NATS_OK;
}

/* How long the sender waits for @p m's acknowledgement from @p now: the
 * far engine gets no longer. */
static uint64_t wait_for(const struct sy__rserver *rs, const struct sy_msg *m,
			 uint64_t now)
{
	if ((m->flags & SY_MSG_DEADLINE) && m->deadline < now + rs->ack_timeout_ns)
		return m->deadline > now ? m->deadline - now : 1;
	return rs->ack_timeout_ns;
}

/* @p m leaves: its window slot is taken, the sample was taken at the
 * first run and the field now times the trip. */
static void leaving(struct sy__rserver *rs, struct sy_msg *m, uint64_t now)
{
	m->flags &= (uint8_t)~SY_MSG_TIMED;
	m->sent_ns = now;
	atomic_fetch_add_explicit(&rs->in_flight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rs->away, 1, memory_order_relaxed);
}

/*
 * Publish @p m alone. @return 0: it is the remote thread's now (published,
 * or failed by a connection that dropped meanwhile); a negative errno: it
 * was not published and is still the caller's.
 */
static int publish(struct sy__rserver *rs, struct sy_msg *m)
{
	struct sy__remote *rm = rs->rm;
	uint64_t now, wait_ns;
	struct pending *p;
	natsMsg *nm;
	natsStatus s;
	bool idle;

	if (state_of(rm) != SY_NATS_CONNECTED) {
		count(rm, RC_CONN_FAILURES);
		return -ENOTCONN;
	}
	now = sy__now(rm->eng);
	wait_ns = wait_for(rs, m, now);
	/* Alone in flight, it is written at once, on the connection that
	 * sends promptly; behind others (too large for a batch) it joins
	 * the flusher's write. Each connection has its inbox: the server
	 * sends "no responders" to the connection that published. */
	idle = !atomic_load_explicit(&rs->in_flight, memory_order_relaxed);
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = atomic_fetch_add_explicit(&rm->next_id, 1, memory_order_relaxed);
	if (build(rm, rs, m, p->id, wait_ns,
		  idle ? rm->prompt_inbox : rm->inbox, &nm) != NATS_OK) {
		free(p);
		return -ENOMEM;
	}
	p->m = m;
	p->rs = rs;
	p->sent_ns = now;
	p->expires_ns = now + wait_ns;
	p->fail_rc = -ETIMEDOUT;
	p->span = 1;
	leaving(rs, m, now);
	/* From here the remote thread may complete the message at any time:
	 * it is not touched again. */
	pthread_mutex_lock(&rm->lock);
	pending_insert(rm, p);
	pthread_mutex_unlock(&rm->lock);
	s = natsConnection_PublishMsg(idle ? rm->prompt : rm->nc, nm);
	natsMsg_Destroy(nm);
	if (s == NATS_OK) {
		count(rm, RC_PUBLISHED);
		return 0;
	}
	pthread_mutex_lock(&rm->lock);
	if (pending_find(rm, p->id) != p) {
		/* The connection dropped and the remote thread failed it
		 * already: it comes back with that result. */
		pthread_mutex_unlock(&rm->lock);
		return 0;
	}
	pending_unlink(rm, p);
	pthread_mutex_unlock(&rm->lock);
	free(p);
	atomic_fetch_sub_explicit(&rs->in_flight, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&rs->away, 1, memory_order_relaxed);
	if (s == NATS_MAX_PAYLOAD) {
		count(rm, RC_TOO_LARGE);
		return -EMSGSIZE;
	}
	count(rm, RC_CONN_FAILURES);
	return -ENOTCONN;
}

/* ---- batches: a pass's messages to one server in one NATS message ---- */

/* A record: key, tag, Sy-Deadline-In, attempt (8, 8, 8, 4 bytes), flags
 * (1: bit 0 a request), the route name's length (1), the payload's (4),
 * then the name and the payload; integers little-endian. */
#define SY_REC_HEAD 34u
#define SY_REC_REQUEST 1u
/* An acknowledgement's record: the message's id (8), the result (4, two's
 * complement), flags (1: bit 0 a reply follows), the reply's length (4),
 * then the reply. */
#define SY_ACK_HEAD 17u
#define SY_ACK_REPLIED 1u
#define SY_BATCH_MAX_BYTES 65536u

static void put_le(unsigned char *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The bytes of the message record and of the acknowledgement record
 * that start at @p r (their heads read). */
static uint64_t rec_size(const unsigned char *r)
{
	return SY_REC_HEAD + r[29] + get_le(r + 30, 4);
}

static uint64_t ack_rec_size(const unsigned char *r)
{
	return SY_ACK_HEAD + get_le(r + 13, 4);
}

/* Room for @p more bytes at the end of @p *buf (@p len used of @p *cap). */
static bool reserve(unsigned char **buf, size_t *cap, size_t len, size_t more)
{
	size_t want = *cap ? *cap : 4096;
	unsigned char *n;

	if (len + more <= *cap)
		return true;
	while (want < len + more)
		want *= 2;
	n = realloc(*buf, want);
	if (!n)
		return false;
	*buf = n;
	*cap = want;
	return true;
}

/* Publish @p rs's batch, if it has one, on the connection that writes at
 * once: one write for the pass's messages. The reply subject names the
 * batch's first id; the acknowledgements come in batches too. */
static void batch_flush(struct sy__rserver *rs)
{
	struct sy__remote *rm = rs->rm;
	struct pending *p = rs->batch, *next;
	unsigned n = rs->nbatch, i = 0;
	char reply[sizeof(rm->inbox) + 24], sid[48], count_s[16];
	natsMsg *nm = NULL;
	natsStatus s;
	uint64_t base;
	int rc;

	if (!n)
		return;
	base = atomic_fetch_add_explicit(&rm->next_id, n, memory_order_relaxed);
	snprintf(reply, sizeof(reply), "%s.%" PRIu64, rm->prompt_inbox, base);
	snprintf(sid, sizeof(sid), "%016" PRIx64 "-%" PRIu64, rm->instance,
		 base);
	snprintf(count_s, sizeof(count_s), "%u", n);
	s = natsMsg_Create(&nm, rs->subject, reply, (const char *)rs->buf,
			   (int)rs->len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Sy-Id", sid);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Sy-Batch", count_s);
	p->span = n;
	/* From here the remote thread may complete them at any time. */
	pthread_mutex_lock(&rm->lock);
	for (; p; p = next) {
		next = p->next;
		p->id = base + i++;
		pending_insert(rm, p);
	}
	pthread_mutex_unlock(&rm->lock);
	rs->batch = NULL;
	rs->batch_tail = &rs->batch;
	rs->nbatch = 0;
	rs->len = 0;
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(rm->prompt, nm);
	natsMsg_Destroy(nm);
	if (s == NATS_OK) {
		atomic_fetch_add_explicit(&rm->c[RC_PUBLISHED], n,
					  memory_order_relaxed);
		return;
	}
	/* Not published: the remote thread fails each at its next pass,
	 * unless a dropped connection failed it already. */
	rc = s == NATS_NO_MEMORY ? -ENOMEM : s == NATS_MAX_PAYLOAD ? -EMSGSIZE :
	     -ENOTCONN;
	pthread_mutex_lock(&rm->lock);
	for (i = 0; i < n; i++) {
		p = pending_find(rm, base + i);
		if (!p)
			continue;
		p->expires_ns = 0;
		p->fail_rc = rc;
		if (rc != -ENOMEM)
			count(rm, rc == -EMSGSIZE ? RC_TOO_LARGE :
						    RC_CONN_FAILURES);
	}
	pthread_mutex_unlock(&rm->lock);
	sy__wake(&rm->slot->parker);
}

/* Add @p m, whose record takes @p rec bytes, to @p rs's batch. Same
 * contract as publish(). */
static int batch_add(struct sy__rserver *rs, struct sy__worker *w,
		     struct sy_msg *m, const char *route, size_t rec)
{
	struct sy__remote *rm = rs->rm;
	size_t rlen = strlen(route);
	struct pending *p;
	unsigned char *at;
	uint64_t now;

	if (state_of(rm) != SY_NATS_CONNECTED) {
		count(rm, RC_CONN_FAILURES);
		return -ENOTCONN;
	}
	if (!reserve(&rs->buf, &rs->cap, rs->len, rec) ||
	    !(p = malloc(sizeof(*p))))
		return -ENOMEM;
	now = sy__now(rm->eng);
	*p = (struct pending){ .m = m, .rs = rs, .sent_ns = now,
			       .fail_rc = -ETIMEDOUT, .span = 1 };
	p->expires_ns = now + wait_for(rs, m, now);
	at = rs->buf + rs->len;
	put_le(at, m->key, 8);
	put_le(at + 8, m->tag, 8);
	put_le(at + 16, p->expires_ns - now, 8);
	put_le(at + 24, m->attempts + 1u, 4);
	at[28] = (m->flags & SY_MSG_REQUEST) ? SY_REC_REQUEST : 0;
	at[29] = (unsigned char)rlen;
	put_le(at + 30, m->size, 4);
	memcpy(at + SY_REC_HEAD, route, rlen);
	memcpy(at + SY_REC_HEAD + rlen, m->data, m->size);
	rs->len += rec;
	*rs->batch_tail = p;
	rs->batch_tail = &p->next;
	rs->nbatch++;
	leaving(rs, m, now);
	if (!rs->listed) {
		rs->listed = true;
		rs->flush_next = w->remote_flush;
		w->remote_flush = rs;
	}
	return 0;
}

/*
 * Send @p m to @p rs: at once and alone while none of the server's
 * messages is in flight (a lone message does not wait), else in the
 * server's open batch. Same contract as publish().
 */
static int send_one(struct sy__rserver *rs, struct sy__worker *w,
		    struct sy_msg *m)
{
	const char *route;
	size_t rec;
	int rc;

	if (!rs->nbatch && !atomic_load_explicit(&rs->in_flight,
						 memory_order_relaxed))
		return publish(rs, m);
	route = route_name(rs->rm->eng, m->route_id);
	rec = SY_REC_HEAD + strlen(route) + m->size;
	if (rs->len + rec > rs->rm->batch_max)
		batch_flush(rs);
	/* Too large for any batch: alone, as the server's limit decides. */
	if (rec > rs->rm->batch_max)
		return publish(rs, m);
	rc = batch_add(rs, w, m, route, rec);
	/* Half the window: the other half can fill while this one travels. */
	if (!rc && rs->nbatch >= (rs->max_in_flight + 1) / 2)
		batch_flush(rs);
	return rc;
}

void sy__remote_flush(struct sy__worker *w, bool idle)
{
	struct sy__rserver *rs = w->remote_flush, **keep = &w->remote_flush;
	/* One clock read per busy pass while a batch is open (batch_add()
	 * takes one per message anyway): a batch waits at most
	 * SY_REMOTE_BATCH_WAIT_NS and one pass. */
	uint64_t now = idle ? 0 : sy__now(w->eng);

	while (rs) {
		struct sy__rserver *next = rs->flush_next;

		if (idle || !rs->batch ||
		    now - rs->batch->sent_ns >= SY_REMOTE_BATCH_WAIT_NS) {
			rs->listed = false;
			batch_flush(rs);
		} else {
			*keep = rs;
			keep = &rs->flush_next;
		}
		rs = next;
	}
	*keep = NULL;
}

/*
 * A message that waited for the window could not be published: the remote
 * thread fails it with @p rc at its next pass, so that it comes back to
 * this worker like any result.
 */
static void fail_later(struct sy__rserver *rs, struct sy_msg *m, int rc)
{
	struct sy__remote *rm = rs->rm;
	struct pending *p;

	while (!(p = malloc(sizeof(*p))))
		sched_yield();
	*p = (struct pending){ .m = m, .rs = rs, .fail_rc = rc, .span = 1,
			       .id = atomic_fetch_add_explicit(&rm->next_id, 1,
							       memory_order_relaxed) };
	atomic_fetch_add_explicit(&rs->in_flight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rs->away, 1, memory_order_relaxed);
	pthread_mutex_lock(&rm->lock);
	pending_insert(rm, p);
	pthread_mutex_unlock(&rm->lock);
	sy__wake(&rm->slot->parker);
}

/* Results came back: send what waits, while the window has room. */
static void publish_waiting(struct sy__rserver *rs, struct sy__worker *w)
{
	while (rs->queue && atomic_load_explicit(&rs->in_flight,
						 memory_order_relaxed) <
				    rs->max_in_flight) {
		struct sy_msg *m = rs->queue;
		int rc;

		rs->queue = m->next;
		if (!rs->queue)
			rs->queue_tail = &rs->queue;
		rs->queued--;
		m->next = NULL;
		rc = send_one(rs, w, m);
		if (rc)
			fail_later(rs, m, rc);
	}
}

static int remote_run(sy_engine *eng, sy_msg *m, void *ctx)
{
	struct sy__rserver *rs = ctx;
	struct sy__worker *w = sy__worker_self();
	int rc;

	(void)eng;
	if (m->remote_mark == sy__remote_mark_of(m, SY_REMOTE_DONE)) {
		rc = remote_result(m);
		publish_waiting(rs, w);
		return rc;
	}
	if (rs->queue || atomic_load_explicit(&rs->in_flight,
					      memory_order_relaxed) >=
			 rs->max_in_flight) {
		if (rs->queued >= rs->max_in_flight * SY_REMOTE_QUEUE_FACTOR)
			return -ENOBUFS;
		m->next = NULL;
		*rs->queue_tail = m;
		rs->queue_tail = &m->next;
		rs->queued++;
		atomic_fetch_add_explicit(&rs->rm->outstanding, 1,
					  memory_order_relaxed);
		sy__worker_defer(w);
		return 0;
	}
	/* Counted before the remote thread can hand it back. */
	atomic_fetch_add_explicit(&rs->rm->outstanding, 1, memory_order_relaxed);
	rc = send_one(rs, w, m);
	if (rc) {
		atomic_fetch_sub_explicit(&rs->rm->outstanding, 1,
					  memory_order_relaxed);
		return rc;
	}
	sy__worker_defer(w);
	return 0;
}

/* ---- the durable dead letter queue: writing (the remote thread) ---- */

static void dl_store_failed(struct sy__remote *rm, const char *why)
{
	count(rm, RC_DL_STORE_FAILED);
	fprintf(stderr, "switchyard: a dead letter was not stored in stream "
		"%s: %s\n", rm->dl_stream, why);
}

static natsStatus dl_headers(struct sy__remote *rm, natsMsg *nm,
			     const struct sy__dl_copy *c)
{
	const struct { const char *key; uint64_t v; } nums[] = {
		{ "Sy-Dl-Id", c->dl.id }, { "Sy-Dl-Reason", c->dl.reason },
		{ "Sy-Route-Id", c->dl.route }, { "Sy-Server-Id", c->dl.server },
		{ "Sy-Attempts", c->dl.attempts }, { "Sy-Key", c->dl.key },
		{ "Sy-Tag", c->dl.tag }, { "Sy-Dl-First", c->dl.first_ns },
		{ "Sy-Dl-Last", c->dl.last_ns },
	};
	char id[48];
	natsStatus s;

	snprintf(id, sizeof(id), "%016" PRIx64 "-%" PRIu64, rm->instance,
		 c->dl.id);
	s = natsMsgHeader_Set(nm, "Nats-Msg-Id", id);
	for (size_t i = 0; s == NATS_OK && i < sizeof(nums) / sizeof(*nums); i++)
		s = set_header_u64(nm, nums[i].key, nums[i].v);
	if (s == NATS_OK && c->route[0])
		s = natsMsgHeader_Set(nm, "Sy-Route", c->route);
	if (s == NATS_OK && c->server[0])
		s = natsMsgHeader_Set(nm, "Sy-Server", c->server);
	return s;
}

static void dl_store(struct sy__remote *rm, const struct sy__dl_copy *c)
{
	jsPubOptions po;
	natsMsg *nm = NULL;
	natsStatus s;

	jsPubOptions_Init(&po);
	po.MaxWait = SY_DL_WAIT_MS;
	s = natsMsg_Create(&nm, rm->dl_subject, NULL, (const char *)c->data,
			   (int)c->dl.size);
	if (s == NATS_OK)
		s = dl_headers(rm, nm, c);
	if (s == NATS_OK) {
		atomic_fetch_add_explicit(&rm->dl_pending, 1,
					  memory_order_relaxed);
		/* On success the client owns nm (and sets it to NULL). */
		s = js_PublishMsgAsync(rm->js, &nm, &po);
		if (s != NATS_OK)
			atomic_fetch_sub_explicit(&rm->dl_pending, 1,
						  memory_order_relaxed);
	}
	natsMsg_Destroy(nm);
	if (s != NATS_OK)
		dl_store_failed(rm, natsStatus_GetText(s));
}

/* The client's thread: JetStream stored a dead letter, or did not. */
static void on_dl_stored(jsCtx *js, natsMsg *nm, jsPubAck *pa,
			 jsPubAckErr *pae, void *closure)
{
	struct sy__remote *rm = closure;

	(void)js;
	if (pa)
		count(rm, RC_DL_STORED);
	else
		dl_store_failed(rm, pae && pae->ErrText ? pae->ErrText :
				pae ? natsStatus_GetText(pae->Err) : "no reply");
	natsMsg_Destroy(nm);
	atomic_fetch_sub_explicit(&rm->dl_pending, 1, memory_order_relaxed);
	sy__wake(&rm->slot->parker);
}

/* Take the dead letter queue's copies and write what the window allows;
 * while the connection is down they wait (closed: they fail). */
static unsigned store_dead_letters(struct sy__remote *rm)
{
	/* Copies come only once rm->js is set (sy__dlq_copy_to() after it):
	 * the queue's lock orders that store before this thread's reads. */
	struct sy__dl_copy *c = sy__dlq_copies_take(rm->eng);
	unsigned n = 0;

	if (c) {
		*rm->dl_todo_tail = c;
		while (c->next)
			c = c->next;
		rm->dl_todo_tail = &c->next;
	}
	while ((c = rm->dl_todo) && state_of(rm) != SY_NATS_RECONNECTING &&
	       atomic_load_explicit(&rm->dl_pending, memory_order_relaxed) <
		       SY_DL_MAX_PENDING) {
		rm->dl_todo = c->next;
		if (!rm->dl_todo)
			rm->dl_todo_tail = &rm->dl_todo;
		if (state_of(rm) == SY_NATS_CONNECTED)
			dl_store(rm, c);
		else
			dl_store_failed(rm, "the connection is closed");
		free(c);
		n++;
	}
	return n;
}

/* ---- the remote thread ---- */

/* Hand @p m back to its worker; a full ring keeps it for the next pass. */
static bool hand_back(struct sy__remote *rm, struct sy_msg *m)
{
	unsigned w = m->server->worker;
	struct sy__rserver *rs = m->server->ctx;
	struct sy__ring *ring = &sy__slot_out(rm->slot)[w];

	sy__ring_mark_msg(ring, m);
	if (!sy__ring_enqueue_spsc(ring, m))
		return false;
	/* Pairs with the acquires of sy__remote_quiesce() and
	 * sy__remote_server_drain(): the message is on the ring. */
	atomic_fetch_sub_explicit(&rs->away, 1, memory_order_release);
	atomic_fetch_sub_explicit(&rm->outstanding, 1, memory_order_release);
	if (sy__idle_sleeps(rm->eng))
		sy__wake(&rm->eng->workers[w].parker);
	return true;
}

static void wait_for_room(struct sy__remote *rm, struct sy_msg *m)
{
	if (rm->nwaiting == rm->waiting_cap) {
		unsigned cap = rm->waiting_cap ? rm->waiting_cap * 2 : 64;
		struct sy_msg **n = realloc(rm->waiting, cap * sizeof(*n));

		/* Without memory, wait here for the ring: never drop it. */
		while (!n && !hand_back(rm, m))
			sched_yield();
		if (!n)
			return;
		rm->waiting = n;
		rm->waiting_cap = cap;
	}
	rm->waiting[rm->nwaiting++] = m;
}

/* Give @p p's message its result @p rc (and @p reply) and send it back. */
static void complete(struct sy__remote *rm, struct pending *p, int rc,
		     struct sy_msg *reply)
{
	struct sy_msg *m = p->m;

	m->due_ns = (uint32_t)rc |
		    ((m->flags & SY_MSG_DEADLINE) ? (uint64_t)1 << 32 : 0);
	/* The result decides, not a deadline that passed meanwhile: the
	 * flag is back when the handler takes the result. */
	m->flags &= (uint8_t)~SY_MSG_DEADLINE;
	m->next = reply;
	m->remote_mark = sy__remote_mark_of(m, SY_REMOTE_DONE);
	atomic_fetch_sub_explicit(&p->rs->in_flight, 1, memory_order_relaxed);
	free(p);
	if (rm->nwaiting || !hand_back(rm, m))
		wait_for_room(rm, m);
}

static unsigned resend_waiting(struct sy__remote *rm)
{
	unsigned i = 0;

	while (i < rm->nwaiting && hand_back(rm, rm->waiting[i]))
		i++;
	if (!i)
		return 0;
	memmove(rm->waiting, rm->waiting + i,
		(rm->nwaiting - i) * sizeof(*rm->waiting));
	rm->nwaiting -= i;
	return i;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool parse_int(const char *s, int *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < INT32_MIN || v > INT32_MAX)
		return false;
	*out = (int)v;
	return true;
}

static const char *header(natsMsg *nm, const char *key)
{
	const char *v = NULL;

	return natsMsgHeader_Get(nm, key, &v) == NATS_OK ? v : NULL;
}

/* Message @p id was acknowledged with @p rc (and the reply @p data of
 * @p len bytes, if @p replied), taken at @p now. */
static void acked(struct sy__remote *rm, uint64_t id, int rc, bool replied,
		  const void *data, size_t len, uint64_t now)
{
	struct sy_msg *reply = NULL;
	struct pending *p;

	pthread_mutex_lock(&rm->lock);
	p = pending_find(rm, id);
	if (p)
		pending_unlink(rm, p);
	pthread_mutex_unlock(&rm->lock);
	if (!p) {
		count(rm, RC_LATE_ACKS);
		return;
	}
	count(rm, rc >= 0 ? RC_ACKED : RC_NACKED);
	sy__hist_record(&rm->ack_hist, now - p->sent_ns);
	if (rc >= 0 && replied) {
		reply = sy_msg_alloc(rm->eng, len);
		if (reply)
			memcpy(sy_msg_data(reply), data, len);
	}
	complete(rm, p, rc, reply);
}

/* Nobody serves the subject of the message (or batch) whose first id is
 * @p id: fail each of them. */
static void no_responders(struct sy__remote *rm, uint64_t id)
{
	struct pending *gone = NULL, **tail = &gone, *p;
	unsigned span;

	pthread_mutex_lock(&rm->lock);
	p = pending_find(rm, id);
	span = p ? p->span : 0;
	for (unsigned i = 0; i < span; i++) {
		p = pending_find(rm, id + i);
		if (!p)
			continue;
		pending_unlink(rm, p);
		*tail = p;
		tail = &p->next;
	}
	*tail = NULL;
	pthread_mutex_unlock(&rm->lock);
	if (!span)
		count(rm, RC_LATE_ACKS);
	while ((p = gone)) {
		gone = p->next;
		count(rm, RC_NO_RESPONDERS);
		complete(rm, p, -EHOSTUNREACH, NULL);
	}
}

/* A batch of acknowledgements: checked whole, then each taken. */
static void take_acks(struct sy__remote *rm, natsMsg *nm)
{
	const unsigned char *d = (const unsigned char *)natsMsg_GetData(nm);
	size_t len = (size_t)natsMsg_GetDataLength(nm), off = 0;
	uint64_t now;

	while (off < len) {
		if (len - off < SY_ACK_HEAD || len - off < ack_rec_size(d + off)) {
			/* Their messages time out. */
			count(rm, RC_MALFORMED);
			return;
		}
		off += ack_rec_size(d + off);
	}
	now = sy__now(rm->eng);
	for (const unsigned char *r = d; r < d + len; r += ack_rec_size(r))
		acked(rm, get_le(r, 8), (int)(int32_t)(uint32_t)get_le(r + 8, 4),
		      r[12] & SY_ACK_REPLIED, r + SY_ACK_HEAD,
		      get_le(r + 13, 4), now);
}

/* An acknowledgement on <inbox>.<id>, of either connection's inbox: of
 * one message, or of some messages of the batch that starts at id. */
static void take_ack(struct sy__remote *rm, natsMsg *nm)
{
	const char *subj = strrchr(natsMsg_GetSubject(nm), '.');
	uint64_t id;
	int rc;

	if (!subj || !parse_u64(subj + 1, &id))
		return;
	if (natsMsg_IsNoResponders(nm)) {
		no_responders(rm, id);
	} else if (header(nm, "Sy-Batch")) {
		take_acks(rm, nm);
	} else if (!parse_int(header(nm, "Sy-Status"), &rc)) {
		struct pending *p;

		count(rm, RC_MALFORMED);
		pthread_mutex_lock(&rm->lock);
		if ((p = pending_find(rm, id)))
			pending_unlink(rm, p);
		pthread_mutex_unlock(&rm->lock);
		if (p)
			complete(rm, p, -EPROTO, NULL);
	} else {
		acked(rm, id, rc, header(nm, "Sy-Replied") != NULL,
		      natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
		      sy__now(rm->eng));
	}
}

/* Fail every pending message that has expired by @p now (all of them,
 * with @p all: the connection dropped). */
static unsigned expire_pending(struct sy__remote *rm, uint64_t now, bool all)
{
	struct pending *gone = NULL, *p, *next;
	unsigned n = 0;

	pthread_mutex_lock(&rm->lock);
	for (p = rm->oldest; p; p = next) {
		next = p->next;
		if (!all && p->expires_ns > now)
			continue;
		pending_unlink(rm, p);
		p->next = gone;
		gone = p;
	}
	pthread_mutex_unlock(&rm->lock);
	for (p = gone; p; p = next, n++) {
		int rc = all ? -ECONNRESET : p->fail_rc;

		next = p->next;
		/* fail_later() failures were counted when they happened. */
		if (rc == -ETIMEDOUT || rc == -ECONNRESET)
			count(rm, rc == -ETIMEDOUT ? RC_TIMEOUTS :
						     RC_CONN_FAILURES);
		complete(rm, p, rc, NULL);
	}
	return n;
}

/* Publish an acknowledgement of an exported message; @p now: written at
 * once (no other result waits), else with the flusher's batch. */
static void ack(struct sy__remote *rm, const char *to, int rc,
		struct sy_msg *reply, bool now)
{
	char status[16];
	natsMsg *nm = NULL;
	natsStatus s;

	snprintf(status, sizeof(status), "%d", rc);
	s = natsMsg_Create(&nm, to, NULL,
			   reply ? (const char *)sy_msg_data(reply) : NULL,
			   reply ? (int)sy_msg_size(reply) : 0);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(nm, "Sy-Status", status);
	if (s == NATS_OK && reply)
		s = natsMsgHeader_Set(nm, "Sy-Replied", "1");
	/* A lost acknowledgement makes the sender time out and try again:
	 * at least once. */
	if (s == NATS_OK)
		natsConnection_PublishMsg(now ? rm->prompt : rm->nc, nm);
	natsMsg_Destroy(nm);
	if (reply)
		sy_msg_free(reply);
}

static struct served **served_at(struct sy__remote *rm, uint32_t seq)
{
	struct served **at = &rm->served[seq % SY_REMOTE_BUCKETS];

	while (*at && (*at)->seq != seq)
		at = &(*at)->hnext;
	return at;
}

static void malformed(struct sy__remote *rm, natsMsg *nm, const char *why)
{
	count(rm, RC_MALFORMED);
	fprintf(stderr, "switchyard: dropped a malformed message on %s: %s\n",
		natsMsg_GetSubject(nm), why);
}

/* Publish the acknowledgements gathered for batched messages. */
static void acks_flush(struct sy__remote *rm)
{
	for (unsigned i = 0; i < rm->nacks_out; i++) {
		struct ackbuf *a = &rm->acks_out[i];
		char count_s[16];
		natsMsg *nm = NULL;
		natsStatus s;

		snprintf(count_s, sizeof(count_s), "%u", a->n);
		s = natsMsg_Create(&nm, a->to, NULL, (const char *)a->buf,
				   (int)a->len);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(nm, "Sy-Batch", count_s);
		/* Lost, the sender times out and tries again: at least once. */
		if (s == NATS_OK)
			natsConnection_PublishMsg(rm->prompt, nm);
		natsMsg_Destroy(nm);
		a->len = 0;
		a->n = 0;
	}
	rm->nacks_out = 0;
}

/* Add message @p id's acknowledgement to those for @p to. */
static void ack_add(struct sy__remote *rm, const char *to, uint64_t id,
		    int rc, struct sy_msg *reply)
{
	size_t size = reply ? sy_msg_size(reply) : 0, rec = SY_ACK_HEAD + size;
	struct ackbuf *a = NULL;
	unsigned char *at;

	for (unsigned i = 0; i < rm->nacks_out && !a; i++)
		if (!strcmp(rm->acks_out[i].to, to))
			a = &rm->acks_out[i];
	if (!a) {
		if (rm->nacks_out == SY_ACK_BUFS)
			acks_flush(rm);
		a = &rm->acks_out[rm->nacks_out++];
		snprintf(a->to, sizeof(a->to), "%s", to);
	}
	if (a->n && a->len + rec > rm->batch_max) {
		acks_flush(rm);
		rm->nacks_out = 1;
		a = &rm->acks_out[0];
		snprintf(a->to, sizeof(a->to), "%s", to);
	}
	if (reserve(&a->buf, &a->cap, a->len, rec)) {
		at = a->buf + a->len;
		put_le(at, id, 8);
		put_le(at + 8, (uint32_t)rc, 4);
		at[12] = reply ? SY_ACK_REPLIED : 0;
		put_le(at + 13, size, 4);
		if (reply)
			memcpy(at + SY_ACK_HEAD, sy_msg_data(reply), size);
		a->len += rec;
		a->n++;
	}
	if (reply)
		sy_msg_free(reply);
}

/* Answer the sender of a message served here: alone on @p to, or by its
 * @p id among the batch's acknowledgements. */
static void answer(struct sy__remote *rm, const char *to, bool batched,
		   uint64_t id, int rc, struct sy_msg *reply, bool now)
{
	if (batched)
		ack_add(rm, to, id, rc, reply);
	else
		ack(rm, to, rc, reply, now);
}

static unsigned take_results(struct sy__remote *rm);

/* What a served message carries besides its payload. */
struct far {
	const char *to;                 /* the acknowledgement's subject */
	uint64_t id, key, tag, wait_ns;
	bool request, batched;
};

/* Send a message from another engine through the route. */
static void serve_one(struct sy__remote *rm, struct export *ex,
		      const struct far *f, const void *data, size_t len)
{
	struct served *sv, **at;
	struct sy_msg *m;
	uint64_t until;
	int rc;

	if (atomic_load_explicit(&rm->closing, memory_order_relaxed)) {
		count(rm, RC_SERVED_FAILED);
		answer(rm, f->to, f->batched, f->id, -ESHUTDOWN, NULL, false);
		return;
	}
	m = sy_msg_alloc(rm->eng, len);
	sv = malloc(sizeof(*sv) + strlen(f->to) + 1);
	if (!m || !sv) {
		sy_msg_free(m);
		free(sv);
		count(rm, RC_SERVED_FAILED);
		answer(rm, f->to, f->batched, f->id, -ENOMEM, NULL, false);
		return;
	}
	memcpy(sy_msg_data(m), data, len);
	sy_msg_set_key(m, f->key);
	sy_msg_set_tag(m, f->tag);
	until = sy__now(rm->eng) + f->wait_ns;
	sy_msg_set_deadline(m, until);
	do {
		rm->serve_seq = (rm->serve_seq + 1) & 0xffffffu;
	} while (!rm->serve_seq || *served_at(rm, rm->serve_seq));
	sv->seq = rm->serve_seq;
	sv->request = f->request;
	sv->batched = f->batched;
	sv->id = f->id;
	sv->reply = NULL;
	strcpy(sv->reply_to, f->to);
	at = served_at(rm, sv->seq);
	sv->hnext = NULL;
	*at = sv;
	m->call_seq = sv->seq;
	m->remote_mark = sy__remote_mark_of(m, SY_REMOTE_ORIGIN);
	/* A full ring: wait for room while the sender still waits. */
	for (;;) {
		rc = f->request ? sy_msg_request(rm->eng, ex->route, m) :
				  sy_msg_send(rm->eng, ex->route, m);
		if (rc != -EAGAIN || sy__now(rm->eng) >= until)
			break;
		/* The worker may wait for room on this thread's ring. */
		if (!take_results(rm))
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	if (rc == 0)
		return;
	*served_at(rm, sv->seq) = NULL;
	free(sv);
	m->remote_mark = 0;
	sy_msg_free(m);
	count(rm, RC_SERVED_FAILED);
	answer(rm, f->to, f->batched, f->id, rc, NULL, false);
}

/* The batch @p nm of @p n records: checked whole, then each sent. */
static void serve_batch(struct sy__remote *rm, struct export *ex,
			natsMsg *nm, struct far *f, unsigned n)
{
	const unsigned char *d = (const unsigned char *)natsMsg_GetData(nm);
	size_t len = (size_t)natsMsg_GetDataLength(nm), off = 0;
	const char *sid = header(nm, "Sy-Id"), *dash = sid ? strchr(sid, '-') : NULL;
	uint64_t base;

	if (!dash || !parse_u64(dash + 1, &base)) {
		malformed(rm, nm, "a batch without a good Sy-Id header");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		if (len - off < SY_REC_HEAD || len - off < rec_size(d + off) ||
		    !get_le(d + off + 16, 8)) {
			malformed(rm, nm, "a batch record is cut short or "
				  "has no deadline");
			return;
		}
		off += rec_size(d + off);
	}
	if (off != len) {
		malformed(rm, nm, "bytes after a batch's last record");
		return;
	}
	f->batched = true;
	for (const unsigned char *r = d; r < d + len; r += rec_size(r)) {
		f->id = base++;
		f->key = get_le(r, 8);
		f->tag = get_le(r + 8, 8);
		f->wait_ns = get_le(r + 16, 8);
		f->request = r[28] & SY_REC_REQUEST;
		serve_one(rm, ex, f, r + SY_REC_HEAD + r[29], get_le(r + 30, 4));
	}
}

/* A message on an exported subject: send it (or each of a batch)
 * through the route. */
static void serve(struct sy__remote *rm, struct export *ex, natsMsg *nm)
{
	struct far f = { .to = natsMsg_GetReply(nm) };
	const char *v;
	uint64_t n;

	if (!f.to || !*f.to) {
		malformed(rm, nm, "no reply subject");
		return;
	}
	if ((v = header(nm, "Sy-Batch"))) {
		if (!parse_u64(v, &n) || !n || n > UINT32_MAX)
			malformed(rm, nm, "a bad Sy-Batch header");
		else
			serve_batch(rm, ex, nm, &f, (unsigned)n);
		return;
	}
	if (!parse_u64(header(nm, "Sy-Deadline-In"), &f.wait_ns) ||
	    !f.wait_ns) {
		malformed(rm, nm, "no Sy-Deadline-In header");
		return;
	}
	if (((v = header(nm, "Sy-Key")) && !parse_u64(v, &f.key)) ||
	    ((v = header(nm, "Sy-Tag")) && !parse_u64(v, &f.tag))) {
		malformed(rm, nm, "a bad Sy-Key or Sy-Tag header");
		return;
	}
	f.request = header(nm, "Sy-Reply") != NULL;
	serve_one(rm, ex, &f, natsMsg_GetData(nm),
		  (size_t)natsMsg_GetDataLength(nm));
}

/* A result or a reply from a worker's ring; @p last: the ring is empty. */
static void take_result(struct sy__remote *rm, void *e, bool last)
{
	struct served **at, *sv;

	if (!sy__remote_is_end(e)) {
		struct sy_msg *reply = e;

		at = served_at(rm, reply->call_seq);
		sy__total_add(&rm->slot->totals, SY_T_REPLIES_RECEIVED, 1);
		if (*at && (*at)->request && !(*at)->reply)
			(*at)->reply = reply;
		else
			sy_msg_free(reply);
		return;
	}
	at = served_at(rm, (uint32_t)((uintptr_t)e >> 40));
	sv = *at;
	if (!sv)
		return;
	*at = sv->hnext;
	{
		int rc = (int)(int32_t)(uint32_t)((uintptr_t)e >> 8);

		count(rm, rc >= 0 ? RC_SERVED : RC_SERVED_FAILED);
		answer(rm, sv->reply_to, sv->batched, sv->id, rc,
		       rc >= 0 ? sv->reply : NULL, last);
		if (rc < 0 && sv->reply)
			sy_msg_free(sv->reply);
	}
	free(sv);
}

static unsigned take_results(struct sy__remote *rm)
{
	struct sy_engine *eng = rm->eng;
	unsigned n = 0;

	for (unsigned w = 0; w < eng->nworkers; w++) {
		void *e;

		while (sy__ring_dequeue_spsc(&rm->slot->replies[w], &e)) {
			take_result(rm, e,
				    !sy__ring_count(&rm->slot->replies[w]));
			n++;
		}
	}
	return n;
}

static unsigned take_incoming(struct sy__remote *rm)
{
	struct inmsg *batch;
	unsigned n;

	pthread_mutex_lock(&rm->lock);
	n = atomic_load_explicit(&rm->nin, memory_order_relaxed);
	batch = rm->in;
	rm->in = NULL;
	rm->in_cap = 0;
	atomic_store_explicit(&rm->nin, 0, memory_order_relaxed);
	pthread_mutex_unlock(&rm->lock);
	for (unsigned i = 0; i < n; i++) {
		if (batch[i].ex)
			serve(rm, batch[i].ex, batch[i].msg);
		else
			take_ack(rm, batch[i].msg);
		natsMsg_Destroy(batch[i].msg);
	}
	free(batch);
	return n;
}

static bool has_work(struct sy__remote *rm)
{
	if (atomic_load_explicit(&rm->nin, memory_order_relaxed) ||
	    atomic_load_explicit(&rm->dropped, memory_order_relaxed) ||
	    atomic_load_explicit(&rm->quit, memory_order_relaxed) ||
	    sy__dlq_copies_waiting(rm->eng))
		return true;
	for (unsigned w = 0; w < rm->eng->nworkers; w++)
		if (sy__ring_count(&rm->slot->replies[w]))
			return true;
	return false;
}

static void *remote_main(void *arg)
{
	struct sy__remote *rm = arg;
	struct sy_engine *eng = rm->eng;

	pthread_setname_np(pthread_self(), "sy-remote");
	if (sy_producer_attach(eng)) {
		atomic_store_explicit(&rm->ready, -1, memory_order_release);
		return NULL;
	}
	rm->slot = sy__slot_self(eng);
	atomic_store_explicit(&rm->ready, 1, memory_order_release);
	for (;;) {
		bool waits;
		unsigned y, n = take_incoming(rm);

		n += take_results(rm);
		acks_flush(rm);
		n += resend_waiting(rm);
		n += store_dead_letters(rm);
		if (atomic_exchange_explicit(&rm->dropped, false,
					     memory_order_acq_rel))
			n += expire_pending(rm, 0, true);
		else
			n += expire_pending(rm, sy__now(eng), false);
		if (n)
			continue;
		if (atomic_load_explicit(&rm->quit, memory_order_acquire) &&
		    !rm->nwaiting &&
		    (!rm->dl_todo || state_of(rm) != SY_NATS_CONNECTED))
			break;
		/* Out of work: yield a few rounds before parking. The next
		 * batch or result is usually this close, and a park costs a
		 * barrier on every CPU and its waker a system call. */
		for (y = 0; y < SY_REMOTE_IDLE_YIELDS && !has_work(rm); y++)
			sched_yield();
		if (y < SY_REMOTE_IDLE_YIELDS)
			continue;
		waits = rm->nwaiting || rm->dl_todo ||
			atomic_load_explicit(&rm->outstanding,
					     memory_order_relaxed);
		sy__park_prepare(&rm->slot->parker);
		if (has_work(rm)) {
			sy__park_cancel(&rm->slot->parker);
			continue;
		}
		sy__park_wait(&rm->slot->parker,
			      waits ? SY_REMOTE_TICK_NS : SY_REMOTE_IDLE_NS);
	}
	while (rm->dl_todo) {
		struct sy__dl_copy *c = rm->dl_todo;

		rm->dl_todo = c->next;
		dl_store_failed(rm, "the engine stopped while reconnecting");
		free(c);
	}
	rm->dl_todo_tail = &rm->dl_todo;
	sy__pending_flush(rm->slot);
	sy_producer_detach(eng);
	return NULL;
}

/* ---- the NATS client's callbacks (its threads) ---- */

static void push(struct sy__remote *rm, natsMsg *nm, struct export *ex)
{
	unsigned n;

	pthread_mutex_lock(&rm->lock);
	n = atomic_load_explicit(&rm->nin, memory_order_relaxed);
	if (n == rm->in_cap) {
		unsigned cap = rm->in_cap ? rm->in_cap * 2 : 64;
		struct inmsg *in = realloc(rm->in, cap * sizeof(*in));

		if (!in) {
			/* Lost: an ack times out, an export's sender retries. */
			pthread_mutex_unlock(&rm->lock);
			natsMsg_Destroy(nm);
			return;
		}
		rm->in = in;
		rm->in_cap = cap;
	}
	rm->in[n] = (struct inmsg){ .msg = nm, .ex = ex };
	atomic_store_explicit(&rm->nin, n + 1, memory_order_relaxed);
	pthread_mutex_unlock(&rm->lock);
	sy__wake(&rm->slot->parker);
}

static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *nm,
		   void *closure)
{
	(void)nc;
	(void)sub;
	push(closure, nm, NULL);
}

static void on_export(natsConnection *nc, natsSubscription *sub, natsMsg *nm,
		      void *closure)
{
	struct export *ex = closure;

	(void)nc;
	(void)sub;
	push(ex->rm, nm, ex);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct sy__remote *rm = closure;

	(void)nc;
	atomic_store_explicit(&rm->state, SY_NATS_RECONNECTING,
			      memory_order_release);
	atomic_store_explicit(&rm->dropped, true, memory_order_release);
	if (atomic_load_explicit(&rm->ready, memory_order_acquire) == 1)
		sy__wake(&rm->slot->parker);
}

/* The prompt connection dropped: what it sent gets no acknowledgement. */
static void on_prompt_disconnected(natsConnection *nc, void *closure)
{
	struct sy__remote *rm = closure;

	(void)nc;
	atomic_store_explicit(&rm->dropped, true, memory_order_release);
	if (atomic_load_explicit(&rm->ready, memory_order_acquire) == 1)
		sy__wake(&rm->slot->parker);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct sy__remote *rm = closure;

	(void)nc;
	count(rm, RC_RECONNECTS);
	atomic_store_explicit(&rm->state, SY_NATS_CONNECTED,
			      memory_order_release);
}

static void on_closed(natsConnection *nc, void *closure)
{
	struct sy__remote *rm = closure;

	(void)nc;
	atomic_store_explicit(&rm->state, SY_NATS_CLOSED, memory_order_release);
	atomic_store_explicit(&rm->dropped, true, memory_order_release);
	if (atomic_load_explicit(&rm->ready, memory_order_acquire) == 1)
		sy__wake(&rm->slot->parker);
	/* Last: remote_free() may free rm once it sees this. */
	atomic_store_explicit(&rm->closed, true, memory_order_release);
}

/* ---- control ---- */

static int64_t ms_of(uint64_t ns, int64_t dflt)
{
	return ns ? (int64_t)((ns + 999999u) / 1000000u) : dflt;
}

/* The options both connections share. */
static natsStatus set_options(natsOptions *no, const struct sy_nats_opts *o)
{
	natsStatus s;

	s = natsOptions_SetServers(no, (const char **)o->urls, (int)o->n_urls);
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(no, true);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, o->name ? o->name : "switchyard");
	if (s == NATS_OK && (o->user || o->password))
		s = natsOptions_SetUserInfo(no, o->user, o->password);
	if (s == NATS_OK && o->token)
		s = natsOptions_SetToken(no, o->token);
	if (s == NATS_OK && o->creds_file)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds_file,
							    NULL);
	if (s == NATS_OK && o->tls)
		s = natsOptions_SetSecure(no, true);
	if (s == NATS_OK && o->ca_file)
		s = natsOptions_LoadCATrustedCertificates(no, o->ca_file);
	if (s == NATS_OK && (o->cert_file || o->key_file))
		s = natsOptions_LoadCertificatesChain(no, o->cert_file,
						      o->key_file);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, ms_of(o->connect_timeout_ns, 2000));
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no,
						 ms_of(o->reconnect_wait_ns, 100));
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, o->max_reconnect ?
						    o->max_reconnect : 60);
	return s;
}

/* The subscribing connection's: its events are the engine's state. */
static natsStatus set_callbacks(struct sy__remote *rm)
{
	natsOptions *no = rm->opts;
	natsStatus s;

	s = natsOptions_SetDisconnectedCB(no, on_disconnected, rm);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(no, on_reconnected, rm);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(no, on_closed, rm);
	return s;
}

/* Stop the remote thread (it finishes what its rings hold). */
static void thread_stop(struct sy__remote *rm)
{
	if (!rm->thread_started)
		return;
	atomic_store_explicit(&rm->quit, true, memory_order_release);
	sy__unpark(&rm->slot->parker);
	pthread_join(rm->thread, NULL);
	rm->thread_started = false;
	if (rm->js)
		sy__dlq_copy_to(rm->eng, NULL);
}

/* The client calls on_closed() from its own thread after a close: wait
 * for it (up to 5 s) before rm goes away. */
static void close_connection(struct sy__remote *rm)
{
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 1000000 };

	if (!rm->nc)
		return;
	if (rm->js && state_of(rm) == SY_NATS_CONNECTED) {
		jsPubOptions po;

		jsPubOptions_Init(&po);
		po.MaxWait = SY_DL_WAIT_MS;
		js_PublishAsyncComplete(rm->js, &po);
	}
	/* First: the client runs connection callbacks on one thread in
	 * order, so the prompt one's disconnected callback has run when the
	 * first's closed callback has. */
	if (rm->prompt)
		natsConnection_Close(rm->prompt);
	natsConnection_Close(rm->nc);
	for (int i = 0; i < 5000 &&
	     !atomic_load_explicit(&rm->closed, memory_order_acquire); i++)
		nanosleep(&nap, NULL);
}

static void remote_free(struct sy__remote *rm)
{
	thread_stop(rm);
	close_connection(rm);
	while (rm->exports) {
		struct export *ex = rm->exports;

		rm->exports = ex->next;
		natsSubscription_Destroy(ex->sub);
		free(ex);
	}
	natsSubscription_Destroy(rm->prompt_acks);
	natsSubscription_Destroy(rm->acks);
	jsCtx_Destroy(rm->js);
	natsConnection_Destroy(rm->prompt);
	natsConnection_Destroy(rm->nc);
	natsOptions_Destroy(rm->prompt_opts);
	natsOptions_Destroy(rm->opts);
	for (unsigned i = 0; i < rm->nwaiting; i++)
		sy_msg_free(rm->waiting[i]);
	free(rm->waiting);
	for (unsigned i = 0; i < atomic_load(&rm->nin); i++)
		natsMsg_Destroy(rm->in[i].msg);
	free(rm->in);
	for (unsigned b = 0; b < SY_REMOTE_BUCKETS; b++)
		while (rm->served[b]) {
			struct served *sv = rm->served[b];

			rm->served[b] = sv->hnext;
			sy_msg_free(sv->reply);
			free(sv);
		}
	for (unsigned i = 0; i < SY_ACK_BUFS; i++)
		free(rm->acks_out[i].buf);
	while (rm->rservers) {
		struct sy__rserver *rs = rm->rservers;

		rm->rservers = rs->next;
		free(rs->buf);
		free(rs);
	}
	pthread_mutex_destroy(&rm->dl_admin);
	pthread_mutex_destroy(&rm->lock);
	free(rm);
}

static int nats_fail(int err, const char *what, natsStatus s)
{
	const char *detail = nats_GetLastError(NULL);

	return sy__fail(err, "%s: %s%s%s", what, natsStatus_GetText(s),
			detail && *detail ? ": " : "", detail ? detail : "");
}

/* A stream name: 1 to 64 letters, digits, '-' or '_'. */
static bool stream_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > SY_STREAM_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/* Find the dead letter stream @p name, or create it. */
static int dl_stream_open(struct sy__remote *rm, const char *name)
{
	const char *subjects[1] = { rm->dl_subject };
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsOptions jo;
	natsStatus s;

	snprintf(rm->dl_stream, sizeof(rm->dl_stream), "%s", name);
	snprintf(rm->dl_subject, sizeof(rm->dl_subject), "sy.dlq.%s", name);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = SY_DL_MAX_PENDING;
	jo.PublishAsync.AckHandler = on_dl_stored;
	jo.PublishAsync.AckHandlerClosure = rm;
	s = natsConnection_JetStream(&rm->js, rm->nc, &jo);
	if (s == NATS_OK)
		s = js_GetStreamInfo(&si, rm->js, name, NULL, NULL);
	if (s == NATS_NOT_FOUND) {
		jsStreamConfig_Init(&sc);
		sc.Name = name;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.AllowDirect = true;
		s = js_AddStream(&si, rm->js, &sc, NULL, NULL);
	}
	if (s == NATS_OK && !si->Config->AllowDirect)
		s = NATS_INVALID_ARG;
	jsStreamInfo_Destroy(si);
	if (s == NATS_INVALID_ARG)
		return sy__fail(-EINVAL, "sy_nats_connect: stream %s exists "
				"without allow_direct", name);
	if (s != NATS_OK)
		return nats_fail(-EIO, "sy_nats_connect: cannot open the dead "
				 "letter stream (is JetStream on?)", s);
	return 0;
}

/* A new inbox @p box (sizeof(rm->inbox)) and @p nc's subscription to its
 * acknowledgements, <box>.* */
static natsStatus subscribe_acks(struct sy__remote *rm, natsConnection *nc,
				 char *box, natsSubscription **sub)
{
	natsInbox *inbox = NULL;
	char subj[sizeof(rm->inbox) + 2];
	natsStatus s = natsInbox_Create(&inbox);

	if (s != NATS_OK)
		return s;
	snprintf(box, sizeof(rm->inbox), "%s", (const char *)inbox);
	natsInbox_Destroy(inbox);
	snprintf(subj, sizeof(subj), "%s.*", box);
	s = natsConnection_Subscribe(sub, nc, subj, on_ack, rm);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(*sub, -1, -1);
	return s;
}

/* A batch's records leave room for its headers within the server's
 * @p max_payload (which counts them). */
static size_t batch_max(int64_t max_payload)
{
	int64_t room = max_payload - 512;

	if (room < (int64_t)SY_REC_HEAD)
		return SY_REC_HEAD;
	return room < (int64_t)SY_BATCH_MAX_BYTES ? (size_t)room :
						    SY_BATCH_MAX_BYTES;
}

static int connect_locked(struct sy_engine *eng, const struct sy_nats_opts *o,
			  struct sy__remote *rm)
{
	natsStatus s;

	s = natsOptions_Create(&rm->opts);
	if (s == NATS_OK)
		s = set_options(rm->opts, o);
	if (s == NATS_OK)
		s = set_callbacks(rm);
	if (s == NATS_OK)
		s = natsOptions_Create(&rm->prompt_opts);
	if (s == NATS_OK)
		s = set_options(rm->prompt_opts, o);
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(rm->prompt_opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(rm->prompt_opts,
						  on_prompt_disconnected, rm);
	if (s != NATS_OK)
		return nats_fail(-EINVAL, "sy_nats_connect: an option was refused",
				 s);
	if (pthread_create(&rm->thread, NULL, remote_main, rm))
		return sy__fail(-EAGAIN, "cannot start the "
				"remote thread");
	rm->thread_started = true;
	while (!atomic_load_explicit(&rm->ready, memory_order_acquire))
		sched_yield();
	if (atomic_load(&rm->ready) < 0) {
		pthread_join(rm->thread, NULL);
		rm->thread_started = false;
		return sy__fail(-ENOSPC, "no producer slot "
				"for the remote thread");
	}
	s = natsConnection_Connect(&rm->nc, rm->opts);
	if (s == NATS_OK)
		s = natsConnection_Connect(&rm->prompt, rm->prompt_opts);
	if (s != NATS_OK)
		return nats_fail(-ECONNREFUSED, "sy_nats_connect: no server of "
				 "the list could be reached", s);
	rm->batch_max = batch_max(natsConnection_GetMaxPayload(rm->prompt));
	s = subscribe_acks(rm, rm->nc, rm->inbox, &rm->acks);
	if (s == NATS_OK)
		s = subscribe_acks(rm, rm->prompt, rm->prompt_inbox,
				   &rm->prompt_acks);
	if (s != NATS_OK)
		return nats_fail(-EIO, "sy_nats_connect: cannot subscribe to "
				 "acknowledgements", s);
	atomic_store_explicit(&rm->state, SY_NATS_CONNECTED,
			      memory_order_release);
	if (o->dlq_stream) {
		int rc = dl_stream_open(rm, o->dlq_stream);

		if (rc)
			return rc;
		sy__dlq_copy_to(eng, &rm->slot->parker);
	}
	return 0;
}

SY_API int sy_nats_connect(sy_engine *eng, const struct sy_nats_opts *opts)
{
	struct sy__remote *rm;
	int rc;

	SY__NONNULL(eng);
	SY__NONNULL(opts);
	if (!opts->urls || !opts->n_urls)
		return sy__failed(__func__, sy__fail(-EINVAL, "no URL given"));
	for (unsigned i = 0; i < opts->n_urls; i++)
		if (!opts->urls[i] || !*opts->urls[i])
			return sy__failed(__func__, sy__fail(-EINVAL, "URL %u is "
					"empty", i));
	if (opts->dlq_stream && !stream_name_ok(opts->dlq_stream))
		return sy__failed(__func__, sy__fail(-EINVAL, "a stream name is "
				"1 to 64 letters, digits, '-' or '_'"));
	pthread_mutex_lock(&eng->lock);
	if (eng->remote) {
		pthread_mutex_unlock(&eng->lock);
		return sy__failed(__func__, sy__fail(-EALREADY, "connected already"));
	}
	if (atomic_load(&eng->state) >= SY_ENGINE_STOPPING) {
		pthread_mutex_unlock(&eng->lock);
		return sy__failed(__func__, sy__fail(-ESHUTDOWN, "the engine is "
				"stopped"));
	}
	rm = calloc(1, sizeof(*rm));
	if (!rm) {
		pthread_mutex_unlock(&eng->lock);
		return sy__failed(__func__, -ENOMEM);
	}
	rm->eng = eng;
	rm->next_id = 1;
	rm->instance = (uint64_t)(uintptr_t)rm ^ sy__clock_monotonic(NULL) ^
		       ((uint64_t)getpid() << 32);
	pthread_mutex_init(&rm->lock, NULL);
	pthread_mutex_init(&rm->dl_admin, NULL);
	rm->dl_todo_tail = &rm->dl_todo;
	sy__hist_init(&rm->ack_hist);
	rc = connect_locked(eng, opts, rm);
	if (rc) {
		remote_free(rm);
		pthread_mutex_unlock(&eng->lock);
		return sy__ret(__func__, rc);
	}
	eng->remote = rm;
	atomic_store_explicit(&eng->remote_seen, rm, memory_order_release);
	pthread_mutex_unlock(&eng->lock);
	return 0;
}

/* A subject: 1 to 200 bytes, dot-separated tokens, no wildcards or spaces. */
static bool subject_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > SY_SUBJECT_MAX || s[0] == '.' || s[n - 1] == '.' ||
	    strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] == '*' || s[i] == '>' || s[i] == 0x7f)
			return false;
	return true;
}

SY_API int sy_server_add_remote(sy_engine *eng, const char *name,
				const char *subject,
				const struct sy_remote_opts *opts, uint32_t *id)
{
	struct sy_server_opts so = { 0 };
	struct sy__rserver *rs;
	struct sy__remote *rm;
	int rc;

	SY__NONNULL(eng);
	SY__NONNULL(subject);
	SY__NONNULL(id);
	if (!subject_ok(subject))
		return sy__failed(__func__, sy__fail(-EINVAL, "a subject is 1 "
				"to 200 bytes of dot-separated tokens without "
				"spaces or wildcards"));
	pthread_mutex_lock(&eng->lock);
	rm = eng->remote;
	pthread_mutex_unlock(&eng->lock);
	if (!rm)
		return sy__failed(__func__, sy__fail(-ENOTCONN, "call "
				"sy_nats_connect() first"));
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return sy__failed(__func__, -ENOMEM);
	rs->rm = rm;
	rs->ack_timeout_ns = opts && opts->ack_timeout_ns ?
			     opts->ack_timeout_ns : SY_REMOTE_ACK_TIMEOUT_NS;
	rs->max_in_flight = opts && opts->max_in_flight ?
			    opts->max_in_flight : SY_REMOTE_MAX_IN_FLIGHT;
	strcpy(rs->subject, subject);
	rs->queue_tail = &rs->queue;
	rs->batch_tail = &rs->batch;
	if (opts) {
		so.worker = opts->worker;
		so.worker_set = opts->worker_set;
		so.breaker = opts->breaker;
	}
	rc = sy_server_add(eng, name, remote_run, rs, &so, id);
	if (rc) {
		free(rs);
		return sy__ret(__func__, rc);
	}
	pthread_mutex_lock(&eng->lock);
	eng->servers[*id]->remote = true;
	rs->next = rm->rservers;
	rm->rservers = rs;
	pthread_mutex_unlock(&eng->lock);
	return 0;
}

SY_API int sy_route_export(sy_engine *eng, uint32_t route, const char *subject,
			   const char *queue)
{
	struct sy__remote *rm;
	struct export *ex;
	natsStatus s;
	int rc = 0;

	SY__NONNULL(eng);
	SY__NONNULL(subject);
	if (!subject_ok(subject) || (queue && !subject_ok(queue)))
		return sy__failed(__func__, sy__fail(-EINVAL, "a subject or queue "
				"is 1 to 200 bytes of dot-separated tokens "
				"without spaces or wildcards"));
	pthread_mutex_lock(&eng->lock);
	rm = eng->remote;
	if (!rm) {
		rc = sy__fail(-ENOTCONN, "call "
			      "sy_nats_connect() first");
		goto out_unlock;
	}
	if (route >= eng->cfg.max_routes ||
	    !atomic_load_explicit(&eng->routes[route], memory_order_acquire)) {
		rc = sy__fail(-ENOENT, "no route %u", route);
		goto out_unlock;
	}
	ex = calloc(1, sizeof(*ex));
	if (!ex) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	ex->rm = rm;
	ex->route = route;
	s = queue ? natsConnection_QueueSubscribe(&ex->sub, rm->nc, subject,
						  queue, on_export, ex) :
		    natsConnection_Subscribe(&ex->sub, rm->nc, subject,
					     on_export, ex);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(ex->sub, -1, -1);
	/* The server knows the subscription before the call returns. */
	if (s == NATS_OK)
		s = natsConnection_FlushTimeout(rm->nc, 2000);
	if (s != NATS_OK) {
		natsSubscription_Destroy(ex->sub);
		free(ex);
		rc = nats_fail(-EIO, "sy_route_export: cannot subscribe", s);
		goto out_unlock;
	}
	ex->next = rm->exports;
	rm->exports = ex;
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

void sy__remote_stats(struct sy_engine *eng, struct sy_nats_stats *out)
{
	/* Pairs with the release in sy_nats_connect(): rm is complete. */
	struct sy__remote *rm = atomic_load_explicit(&eng->remote_seen,
						     memory_order_acquire);
	struct sy_hist *h;

	memset(out, 0, sizeof(*out));
	if (!rm)
		return;
	out->state = (enum sy_nats_state)state_of(rm);
	out->reconnects = atomic_load(&rm->c[RC_RECONNECTS]);
	out->published = atomic_load(&rm->c[RC_PUBLISHED]);
	out->acked = atomic_load(&rm->c[RC_ACKED]);
	out->nacked = atomic_load(&rm->c[RC_NACKED]);
	out->timeouts = atomic_load(&rm->c[RC_TIMEOUTS]);
	out->no_responders = atomic_load(&rm->c[RC_NO_RESPONDERS]);
	out->conn_failures = atomic_load(&rm->c[RC_CONN_FAILURES]);
	out->too_large = atomic_load(&rm->c[RC_TOO_LARGE]);
	out->late_acks = atomic_load(&rm->c[RC_LATE_ACKS]);
	out->served = atomic_load(&rm->c[RC_SERVED]);
	out->served_failed = atomic_load(&rm->c[RC_SERVED_FAILED]);
	out->malformed = atomic_load(&rm->c[RC_MALFORMED]);
	out->dl_stored = atomic_load(&rm->c[RC_DL_STORED]);
	out->dl_store_failed = atomic_load(&rm->c[RC_DL_STORE_FAILED]) +
			       (rm->js ? sy__dlq_copies_lost(eng) : 0);
	out->in_flight = atomic_load(&rm->outstanding);
	h = malloc(sizeof(*h));
	if (h) {
		sy_hist_clear(h);
		sy__hist_merge(h, &rm->ack_hist);
		sy_hist_summary(h, &out->ack_latency);
		free(h);
	}
}

SY_API int sy_nats_stats(sy_engine *eng, struct sy_nats_stats *out)
{
	SY__NONNULL(eng);
	SY__NONNULL(out);
	sy__remote_stats(eng, out);
	return 0;
}

/* ---- the durable dead letter queue: the admin functions ---- */

/* The engine's stream, its admin turn taken; or an error. */
static int dl_admin_begin(struct sy_engine *eng, struct sy__remote **out)
{
	struct sy__remote *rm;

	if (sy__worker_self())
		return sy__fail(-EDEADLK, "called from a worker thread");
	pthread_mutex_lock(&eng->lock);
	rm = eng->remote;
	pthread_mutex_unlock(&eng->lock);
	if (!rm || !rm->js)
		return sy__fail(-ENOTCONN, "no dead letter stream "
				"(sy_nats_opts.dlq_stream)");
	if (state_of(rm) != SY_NATS_CONNECTED)
		return sy__fail(-ENOTCONN, "not connected to NATS");
	pthread_mutex_lock(&rm->dl_admin);
	*out = rm;
	return 0;
}

/*
 * The stored dead letter at @p seq (with @p next: the first at or after
 * it) into *@p out. @return 0; -ENOENT (none); -EIO.
 */
static int dl_get(struct sy__remote *rm, uint64_t seq, bool next,
		  natsMsg **out)
{
	jsDirectGetMsgOptions o;
	natsStatus s;

	jsDirectGetMsgOptions_Init(&o);
	o.Sequence = seq;
	o.NextBySubject = next ? rm->dl_subject : NULL;
	s = js_DirectGetMsg(out, rm->js, rm->dl_stream, NULL, &o);
	if (s == NATS_NOT_FOUND)
		return -ENOENT;
	if (s != NATS_OK)
		return nats_fail(-EIO, "reading the dead letter stream", s);
	return 0;
}

static uint64_t header_u64(natsMsg *nm, const char *key, bool *ok)
{
	uint64_t v = 0;

	*ok = *ok && parse_u64(header(nm, key), &v);
	return v;
}

/* Describe stored dead letter @p nm in this engine's ids. False: it is
 * not one of ours (it stays, unlisted). */
static bool dl_parse(struct sy_engine *eng, natsMsg *nm,
		     struct sy_dead_letter *d)
{
	const char *route = header(nm, "Sy-Route");
	const char *server = header(nm, "Sy-Server");
	bool ok = true;

	memset(d, 0, sizeof(*d));
	d->id = natsMsg_GetSequence(nm);
	d->reason = (enum sy_dl_reason)header_u64(nm, "Sy-Dl-Reason", &ok);
	d->attempts = (unsigned)header_u64(nm, "Sy-Attempts", &ok);
	d->key = header_u64(nm, "Sy-Key", &ok);
	d->tag = header_u64(nm, "Sy-Tag", &ok);
	d->first_ns = header_u64(nm, "Sy-Dl-First", &ok);
	d->last_ns = header_u64(nm, "Sy-Dl-Last", &ok);
	d->size = (size_t)natsMsg_GetDataLength(nm);
	if (!route || sy_route_find(eng, route, &d->route))
		d->route = SY_ANY;
	if (!server || sy_server_find(eng, server, &d->server))
		d->server = SY_ANY;
	return ok && d->id && (unsigned)d->reason < SY_DL_REASONS;
}

/*
 * Call @p fn with each stored dead letter that matches @p f, oldest first,
 * until it returns non-zero. @return what @p fn returned to stop (> 0:
 * done), 0 at the end of the stream, or a negative errno.
 */
static int dl_each(struct sy__remote *rm, const struct sy_dl_filter *f,
		   int (*fn)(struct sy__remote *rm, natsMsg *nm,
			     const struct sy_dead_letter *d, void *ctx),
		   void *ctx)
{
	struct sy_dead_letter d;
	uint64_t seq = 1;
	natsMsg *nm;
	int rc;

	while ((rc = dl_get(rm, seq, true, &nm)) == 0) {
		seq = natsMsg_GetSequence(nm) + 1;
		if (dl_parse(rm->eng, nm, &d) && sy__dl_matches(f, &d))
			rc = fn(rm, nm, &d, ctx);
		natsMsg_Destroy(nm);
		if (rc || seq == 1)
			break;
	}
	return rc == -ENOENT ? 0 : rc;
}

struct dl_list { struct sy_dead_letter *out; unsigned max, n; };

static int dl_list_one(struct sy__remote *rm, natsMsg *nm,
		       const struct sy_dead_letter *d, void *ctx)
{
	struct dl_list *l = ctx;

	(void)rm;
	(void)nm;
	l->out[l->n++] = *d;
	return l->n == l->max;
}

SY_API int sy_nats_dlq_list(sy_engine *eng, const struct sy_dl_filter *f,
			    struct sy_dead_letter *out, unsigned max)
{
	struct dl_list l = { .out = out, .max = max > INT_MAX ? INT_MAX : max };
	struct sy__remote *rm;
	int rc;

	SY__NONNULL(eng);
	if (max)
		SY__NONNULL(out);
	if ((rc = sy__dl_filter_check(f)) || !max ||
	    (rc = dl_admin_begin(eng, &rm)))
		return sy__ret(__func__, rc);
	rc = dl_each(rm, f, dl_list_one, &l);
	pthread_mutex_unlock(&rm->dl_admin);
	return sy__ret(__func__, rc < 0 ? rc : (int)l.n);
}

SY_API long sy_nats_dlq_peek(sy_engine *eng, uint64_t id, void *buf,
			     size_t cap)
{
	struct sy__remote *rm;
	natsMsg *nm;
	long rc;

	SY__NONNULL(eng);
	if (cap)
		SY__NONNULL(buf);
	if ((rc = dl_admin_begin(eng, &rm)))
		return sy__ret(__func__, (int)rc);
	rc = dl_get(rm, id, false, &nm);
	pthread_mutex_unlock(&rm->dl_admin);
	if (rc == -ENOENT)
		sy__fail(-ENOENT, "no dead letter %" PRIu64 " in stream %s", id,
			 rm->dl_stream);
	if (rc)
		return sy__ret(__func__, (int)rc);
	rc = natsMsg_GetDataLength(nm);
	if (cap)
		memcpy(buf, natsMsg_GetData(nm), cap < (size_t)rc ? cap : (size_t)rc);
	natsMsg_Destroy(nm);
	return rc;
}

struct dl_replay { unsigned max, n; };

/* Send one stored dead letter to its route, then delete it. */
static int dl_replay_one(struct sy__remote *rm, natsMsg *nm,
			 const struct sy_dead_letter *d, void *ctx)
{
	struct dl_replay *r = ctx;
	struct sy_msg *m;
	natsStatus s;

	if (d->route == SY_ANY)
		return 0;
	m = sy_msg_alloc(rm->eng, d->size);
	if (!m)
		return -ENOMEM;
	memcpy(sy_msg_data(m), natsMsg_GetData(nm), d->size);
	sy_msg_set_key(m, d->key);
	sy_msg_set_tag(m, d->tag);
	if (sy_msg_send(rm->eng, d->route, m)) {
		sy_msg_free(m);
		return 1;
	}
	r->n++;
	s = js_DeleteMsg(rm->js, rm->dl_stream, d->id, NULL, NULL);
	if (s != NATS_OK)
		return nats_fail(-EIO, "sy_nats_dlq_replay: sent, but not "
				 "deleted from the stream", s);
	return r->n == r->max;
}

SY_API int sy_nats_dlq_replay(sy_engine *eng, const struct sy_dl_filter *f,
			      unsigned max)
{
	struct dl_replay r = { .max = max && max < INT_MAX ? max : INT_MAX };
	struct sy__remote *rm;
	int rc;

	SY__NONNULL(eng);
	if ((rc = sy__dl_filter_check(f)) || (rc = dl_admin_begin(eng, &rm)))
		return sy__ret(__func__, rc);
	rc = dl_each(rm, f, dl_replay_one, &r);
	pthread_mutex_unlock(&rm->dl_admin);
	return sy__ret(__func__, rc < 0 && !r.n ? rc : (int)r.n);
}

void sy__remote_ended(struct sy__worker *w, uint32_t seq, int rc)
{
	struct sy__remote *rm = w->eng->remote;
	struct sy__ring *r = &rm->slot->replies[w->idx];
	void *e = (void *)(((uintptr_t)seq << 40) |
			   ((uintptr_t)(uint32_t)rc << 8) | 1u);

	/* The remote thread outlives the workers (sy__remote_stop()). */
	while (!sy__ring_enqueue_spsc(r, e))
		sched_yield();
	sy__wake(&rm->slot->parker);
}

void sy__remote_server_drain(struct sy_engine *eng, struct sy__server *srv)
{
	struct sy__rserver *rs = srv->ctx;
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 1000000 };

	/* queued is the worker's: read once nothing is away and the worker
	 * has run every result handed back (wait_handled's acquire). */
	do {
		while (atomic_load_explicit(&rs->away, memory_order_acquire))
			nanosleep(&nap, NULL);
		sy__worker_wait_handled(eng, srv->worker);
	} while (atomic_load_explicit(&rs->away, memory_order_acquire) ||
		 rs->queued);
}

void sy__remote_quiesce(struct sy_engine *eng)
{
	struct sy__remote *rm = eng->remote;
	struct timespec nap = { .tv_sec = 0, .tv_nsec = 1000000 };

	if (!rm)
		return;
	atomic_store_explicit(&rm->closing, true, memory_order_relaxed);
	for (struct export *ex = rm->exports; ex; ex = ex->next)
		natsSubscription_Unsubscribe(ex->sub);
	/* Every message published comes back to its worker: acknowledged,
	 * timed out or failed by the connection. No new one is published
	 * once every worker has run what it had: nothing sends any more. */
	for (;;) {
		for (unsigned w = 0; w < eng->nstarted; w++)
			sy__worker_wait_handled(eng, w);
		if (!atomic_load_explicit(&rm->outstanding, memory_order_acquire))
			break;
		sy__unpark(&rm->slot->parker);
		nanosleep(&nap, NULL);
	}
}

void sy__remote_stop(struct sy_engine *eng)
{
	struct sy__remote *rm = eng->remote;

	if (!rm)
		return;
	thread_stop(rm);
	if (state_of(rm) == SY_NATS_CONNECTED)
		natsConnection_FlushTimeout(rm->nc, 1000);
	close_connection(rm);
	atomic_store_explicit(&rm->state, SY_NATS_CLOSED, memory_order_release);
}

void sy__remote_destroy(struct sy_engine *eng)
{
	if (!eng->remote)
		return;
	atomic_store_explicit(&eng->remote_seen, NULL, memory_order_relaxed);
	remote_free(eng->remote);
	eng->remote = NULL;
}

#else /* !SY_HAVE_NATS */

SY_API int sy_nats_connect(sy_engine *eng, const struct sy_nats_opts *opts)
{
	SY__NONNULL(eng);
	SY__NONNULL(opts);
	return sy__failed(__func__, sy__fail(-ENOTSUP, "built without libnats "
			"(meson -Dnats=enabled)"));
}

SY_API int sy_server_add_remote(sy_engine *eng, const char *name,
				const char *subject,
				const struct sy_remote_opts *opts, uint32_t *id)
{
	(void)name;
	(void)opts;
	SY__NONNULL(eng);
	SY__NONNULL(subject);
	SY__NONNULL(id);
	return sy__failed(__func__, sy__fail(-ENOTCONN, "built without "
			"libnats"));
}

SY_API int sy_route_export(sy_engine *eng, uint32_t route, const char *subject,
			   const char *queue)
{
	(void)route;
	(void)queue;
	SY__NONNULL(eng);
	SY__NONNULL(subject);
	return sy__failed(__func__, sy__fail(-ENOTCONN, "built without libnats"));
}

void sy__remote_stats(struct sy_engine *eng, struct sy_nats_stats *out)
{
	(void)eng;
	memset(out, 0, sizeof(*out));
}

SY_API int sy_nats_stats(sy_engine *eng, struct sy_nats_stats *out)
{
	SY__NONNULL(eng);
	SY__NONNULL(out);
	sy__remote_stats(eng, out);
	return 0;
}

SY_API int sy_nats_dlq_list(sy_engine *eng, const struct sy_dl_filter *f,
			    struct sy_dead_letter *out, unsigned max)
{
	(void)f;
	SY__NONNULL(eng);
	if (max)
		SY__NONNULL(out);
	return sy__failed(__func__, sy__fail(-ENOTCONN, "built without "
			"libnats"));
}

SY_API long sy_nats_dlq_peek(sy_engine *eng, uint64_t id, void *buf,
			     size_t cap)
{
	(void)id;
	SY__NONNULL(eng);
	if (cap)
		SY__NONNULL(buf);
	return sy__failed(__func__, sy__fail(-ENOTCONN, "built without "
			"libnats"));
}

SY_API int sy_nats_dlq_replay(sy_engine *eng, const struct sy_dl_filter *f,
			      unsigned max)
{
	(void)f;
	(void)max;
	SY__NONNULL(eng);
	return sy__failed(__func__, sy__fail(-ENOTCONN, "built without "
			"libnats"));
}

void sy__remote_server_drain(struct sy_engine *eng, struct sy__server *srv)
{
	(void)eng;
	(void)srv;
}

/* No message is ever marked without a connection. */
void sy__remote_ended(struct sy__worker *w, uint32_t seq, int rc)
{
	(void)w;
	(void)seq;
	(void)rc;
}

void sy__remote_flush(struct sy__worker *w, bool idle)
{
	(void)idle;
	(void)w;
}

void sy__remote_quiesce(struct sy_engine *eng)
{
	(void)eng;
}

void sy__remote_stop(struct sy_engine *eng)
{
	(void)eng;
}

void sy__remote_destroy(struct sy_engine *eng)
{
	(void)eng;
}

#endif /* SY_HAVE_NATS */
