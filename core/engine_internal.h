/*
 * The engine's internal structures, shared by the files of core/.
 *
 * Threads. A *slot* is the state of one sending thread: slots [0, workers)
 * belong to the workers, slots [workers, workers + max_producers) to attached
 * application threads. Each slot has an SPSC ring to every worker (out[w]),
 * an SPSC ring from every worker for replies (replies[w]), a message pool,
 * and counters. Only the thread attached to a slot produces on its out rings,
 * consumes its reply rings, allocates from its pool and writes its counters.
 *
 * Routing. Routes live in an RCU-protected array indexed by id (the fast
 * path) and in a cds_lfht keyed by name. A route object is immutable once
 * published; updates publish a new object and free the old one with
 * call_rcu. Senders hold one read-side section per send call (per burst);
 * workers hold one per pass over their rings.
 *
 * Servers are reached through routes, and through the messages sent to them
 * (msg->server). Removing a server first rebuilds every route without it,
 * waits for a grace period (no sender can pick it any more), then waits until
 * its worker has handled every message enqueued before that point.
 */
#ifndef SY_CORE_ENGINE_INTERNAL_H
#define SY_CORE_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "core/config_internal.h"
#include "metrics/counters.h"
#include "metrics/shard.h"
#include "policies/policy.h"
#include "queues/park.h"
#include "queues/ring.h"
#include "switchyard.h"

#define SY_CACHELINE 64
#define SY_NAME_MAX 64
#define SY_BURST_MAX 32 /* messages per burst descriptor */

/* ---- messages and pools (pool.c) ---- */

enum {
	SY_CLASSES = 6,           /* pooled size classes */
	SY_CLASS_HUGE = 0xff,     /* allocated alone, freed to the allocator */
};

enum sy__msg_flags {
	SY_MSG_REQUEST = 1u << 0, /* a reply goes back to reply_slot */
	SY_MSG_CALL = 1u << 1,    /* the request of a sy_call(); call_seq matches */
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

/*
 * A message header is two cache lines. The first is what every send and
 * every handler run touches; the second is read and written only when a
 * flag says so (a deadline, a latency sample, a retry, a dead letter), so
 * the common path still touches one line of header.
 */
struct sy_msg {
	struct sy_msg *next;       /* free lists, return chains, retry lists */
	struct sy__pool *pool;     /* where it goes back to */
	struct sy__server *server; /* destination, set by the send */
	uint64_t tag;
	uint64_t key;              /* for key-based policies */
	uint32_t size;
	uint32_t cap;
	uint16_t reply_slot;       /* requester's slot */
	uint16_t reply_gen;        /* requester's slot generation (low bits) */
	uint32_t call_seq : 24;    /* sy_call() sequence (wraps) */
	uint32_t attempts : 8;     /* handler runs that failed so far */
	uint32_t route_id;         /* route it was sent through */
	uint16_t pick;             /* index of server in that route */
	uint8_t klass;
	uint8_t flags;
	/* Second line. */
	_Alignas(64) uint64_t deadline; /* SY_MSG_DEADLINE: engine clock */
	uint64_t sent_ns;          /* SY_MSG_TIMED: clock at the send call */
	uint64_t dl_first_ns;      /* SY_MSG_DEAD: first dead-lettered */
	uint64_t due_ns;           /* a retry waiting on its worker: when it goes */
	uint32_t last_server;      /* id of the server of its last handler run */
	_Alignas(16) unsigned char data[];
};
_Static_assert(sizeof(struct sy_msg) == 128, "message header is two cache lines");

/* What precedes an unpooled (huge) message: the engine's list of them. */
struct sy__huge {
	struct sy__huge *prev;
	struct sy__huge *next;
	size_t bytes;
} __attribute__((aligned(64)));

/* A burst descriptor: SY_BURST_MAX messages for one worker in one ring entry. */
struct sy__burst {
	uint32_t n;
	struct sy_msg *msgs[SY_BURST_MAX];
};

/* Messages freed by a thread for another thread's pool, returned 32 at once. */
struct sy__chain {
	struct sy_msg *head;
	struct sy_msg *tail;
	uint32_t n;
	bool listed;               /* its index is in the slot's dirty list */
};

struct sy__pool {
	/* Read-only after create; other threads read them. */
	struct sy_engine *eng;
	uint32_t slot;
	/* Owner side: only the slot's thread writes these, on their own line. */
	_Alignas(SY_CACHELINE) struct sy_msg *free[SY_CLASSES];
	void *slabs;               /* singly linked through the slab's first word */
	_Atomic uint64_t slab_count;
	_Atomic uint64_t slab_bytes;
	/* Remote side: other threads push chains here (Treiber stacks; the
	 * owner takes a whole stack at once, so there is no ABA). */
	_Alignas(SY_CACHELINE) _Atomic(struct sy_msg *) remote[SY_CLASSES];
};

/* ---- slots ---- */

enum sy__slot_state { SY_SLOT_FREE, SY_SLOT_ATTACHED };

struct sy__slot {
	struct sy__counters counters;
	struct sy__pool pool;
	struct sy__parker parker;  /* a thread waiting in sy_call() */
	struct sy__ring *_Atomic out; /* [workers], published once */
	struct sy__ring *replies;  /* [workers] */
	struct sy__chain *pending; /* [slots * SY_CLASSES] return chains */
	uint32_t *dirty;           /* indices of non-empty pending chains */
	unsigned ndirty;
	uint64_t *policy_words;    /* [max_routes] */
	uint64_t rng;              /* sy_pick_random() state (xorshift64*) */
	struct sy_msg *stash;      /* replies taken by sy_call() for sy_poll_replies() */
	struct sy_msg **stash_tail;
	struct sy__shard *shard;   /* NULL: metrics off */
	/* congested[w]: 0, or 1 + the low mark of the route whose threshold
	 * the ring to worker w passed; cleared (on_backpressure) once the
	 * ring has drained below it. */
	_Atomic uint32_t *congested;
	uint32_t id;
	uint32_t call_seq;
	_Atomic uint32_t gen;      /* changes at every attach */
	_Atomic int state;
	bool is_worker;
};

/* ---- workers (worker.c) ---- */

struct sy__worker {
	struct sy__parker parker;
	_Atomic uint64_t passes;   /* loop passes completed */
	_Atomic bool drain;        /* stop: exit once every inbox is empty */
	struct sy_engine *eng;
	struct sy__slot *slot;
	pthread_t thread;
	unsigned idx;
	int cpu;
	unsigned nservers;         /* placement; under eng->lock */
	sy_msg *current;           /* message being handled */
	bool taken;                /* the handler passed current on */
	/* Retries waiting for their backoff, soonest first (msg->next). */
	struct sy_msg *retries;
	unsigned nretries;
	/* Per route: first runs and retries on this worker (the budget). */
	struct sy__budget *budget; /* [max_routes] */
};

struct sy__budget {
	uint64_t runs;         /* first runs (attempt 1) */
	uint64_t retries;
};

/* ---- servers and routes (registry.c) ---- */

/*
 * Why a server cannot take messages now: 0 means it can. Senders read it
 * on every pick; it changes only on state changes.
 */
enum sy__gate {
	SY_GATE_DRAINING = 1u << 0,  /* being removed */
	SY_GATE_UNHEALTHY = 1u << 1, /* its health probe marked it down */
	SY_GATE_BREAKER = 1u << 2,   /* its breaker is open, half-open or forced */
};

struct sy__breaker;
struct sy__health;

struct sy__server {
	sy_handler_fn fn;
	void *ctx;
	unsigned worker;
	uint32_t id;
	_Atomic unsigned gate;      /* enum sy__gate bits */
	/* The worker's: a success while closed changes nothing in the
	 * breaker (no failures in a row, no window). Set by breaker.c. */
	bool breaker_quiet;
	struct sy__breaker *breaker; /* NULL: none */
	struct sy__health *health;  /* NULL: no probe */
	char name[SY_NAME_MAX];
	/* Messages sent and not yet handled, for SY_POLICY_INFLIGHT routes:
	 * senders add, the owning worker subtracts. */
	_Alignas(SY_CACHELINE) _Atomic int64_t inflight;
	_Atomic uint64_t transitions; /* breaker transitions */
};

struct sy__route {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	const struct sy_policy *policy;
	void *pstate;
	uint32_t id;
	uint8_t msg_flags;          /* SY_MSG_INFLIGHT, SY_MSG_OBSERVE */
	uint8_t bp_mode;            /* enum sy_backpressure */
	uint8_t max_attempts;       /* 1: no retries */
	bool dl_unreachable;
	uint32_t bp_high;           /* ring entries at which it is congested */
	uint32_t bp_low;            /* ring entries it must drain below */
	uint64_t bp_block_ns;
	uint64_t backoff_ns;
	uint64_t backoff_max_ns;
	uint32_t budget_milli;      /* retries per 1000 first runs */
	uint32_t budget_min;
	unsigned n;
	char name[SY_NAME_MAX];
	char *params;               /* as given, "" if none */
	struct sy_policy_server *info; /* [n] ids and weights */
	struct sy__server *servers[];
};

/* Could a sender pick @p srv now (without taking a half-open token)? */
bool sy__server_usable_slow(const struct sy__server *srv);

static inline bool sy__server_usable(const struct sy__server *srv)
{
	unsigned gate = atomic_load_explicit(&srv->gate, memory_order_relaxed);

	return gate == 0 || (gate == SY_GATE_BREAKER && sy__server_usable_slow(srv));
}

/* One pick in progress (public as an opaque type). */
struct sy_pick {
	const struct sy__route *route;
	struct sy__slot *slot;
	struct sy_engine *eng;
	uint64_t key;
	uint64_t now;               /* 0: not read yet */
};

/* ---- the engine ---- */

enum sy__engine_state {
	SY_ENGINE_CREATED,
	SY_ENGINE_RUNNING,
	SY_ENGINE_STOPPING,
	SY_ENGINE_STOPPED,
};

struct sy_engine {
	struct sy__config cfg;
	_Atomic int state;
	unsigned nworkers;
	unsigned nstarted;               /* worker threads running */
	unsigned nslots;
	_Atomic unsigned slots_used;     /* slots [0, slots_used) may have rings */
	struct sy__slot *slots;
	struct sy__worker *workers;
	_Atomic(struct sy__route *) *routes;   /* [max_routes] */
	struct sy__server **servers;           /* [max_servers], under lock */
	struct cds_lfht *route_names;
	pthread_mutex_t lock;            /* servers, routes, start, stop */
	pthread_mutex_t slot_lock;       /* attach, detach */
	pthread_mutex_t huge_lock;
	struct sy__huge *huge;           /* unpooled messages, for destroy */
	struct sy__dlq *dlq;
	struct sy__metrics *metrics;     /* NULL: metrics off */
	struct sy__http *http;           /* NULL: not serving; under lock */
	struct sy__health_thread *health;/* NULL until a server has a probe */
	uint64_t uid;
	unsigned je_arena;
	bool je_arena_valid;
};

/* ---- functions shared inside core/ ---- */

/* error.c */
int sy__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* memory.c: the engine's allocator */
void *sy__mem_alloc(struct sy_engine *eng, size_t size);
void sy__mem_free(struct sy_engine *eng, void *p, size_t size);
void sy__mem_init(struct sy_engine *eng);
void sy__mem_fini(struct sy_engine *eng);

/* pool.c */

#define SY_RETURN_BATCH 32 /* messages returned to another pool at once */

/*
 * Messages freed one after another by one thread, chained while they belong
 * to the same pool and class, then handed back together.
 */
struct sy__release_batch {
	struct sy__pool *pool;
	struct sy_msg *head;
	struct sy_msg *tail;
	uint32_t n;
	uint8_t klass;
};

void sy__msg_release(struct sy__slot *self, struct sy_msg *m);
void sy__release_batch_flush(struct sy__slot *self, struct sy__release_batch *b);

static inline void sy__release_batch_add(struct sy__slot *self,
					 struct sy__release_batch *b,
					 struct sy_msg *m)
{
	if (__builtin_expect(m->pool == b->pool && m->klass == b->klass, 1)) {
		m->next = b->head;
		b->head = m;
		b->n++;
		return;
	}
	sy__release_batch_flush(self, b);
	if (m->klass == SY_CLASS_HUGE) {
		sy__msg_release(self, m);
		return;
	}
	m->next = NULL;
	b->pool = m->pool;
	b->klass = m->klass;
	b->head = b->tail = m;
	b->n = 1;
}

struct sy_msg *sy__msg_alloc(struct sy__slot *s, size_t size);
void sy__pending_flush(struct sy__slot *self);
void sy__pool_destroy(struct sy_engine *eng, struct sy__pool *p);
void sy__huge_destroy(struct sy_engine *eng);

/* slot.c */

/* The calling thread's slot for the engine it used last, and its worker. */
struct sy__tls_hot {
	struct sy_engine *eng;
	struct sy__slot *slot;
	struct sy__worker *worker;
};
extern __thread struct sy__tls_hot sy__tls_hot
	__attribute__((tls_model("initial-exec")));

struct sy__slot *sy__slot_lookup(struct sy_engine *eng);
struct sy__slot *sy__slot_attach_lazy(struct sy_engine *eng, int *err);

/** The calling thread's slot for @p eng, or NULL if it is not attached. */
static inline struct sy__slot *sy__slot_self(struct sy_engine *eng)
{
	if (__builtin_expect(sy__tls_hot.eng == eng, 1))
		return sy__tls_hot.slot;
	return sy__slot_lookup(eng);
}

/** The calling thread's slot for @p eng, attaching it if needed. */
static inline struct sy__slot *sy__slot_get(struct sy_engine *eng, int *err)
{
	if (__builtin_expect(sy__tls_hot.eng == eng, 1))
		return sy__tls_hot.slot;
	return sy__slot_attach_lazy(eng, err);
}

static inline struct sy__worker *sy__worker_self(void)
{
	return sy__tls_hot.worker;
}

int sy__slot_setup(struct sy_engine *eng, struct sy__slot *s);
void sy__slot_reset_picks(struct sy_engine *eng, struct sy__slot *s);
void sy__slot_free(struct sy_engine *eng, struct sy__slot *s);
void sy__worker_bind(struct sy__worker *w);
void sy__worker_unbind(struct sy__worker *w);
int sy__engine_remember(struct sy_engine *eng);
void sy__rcu_thread_get(void);
void sy__rcu_thread_put(void);
void sy__engine_forget(struct sy_engine *eng);
/* Register the calling thread as an RCU reader until it exits (snapshot
 * readers that are not attached to the engine). */
void sy__rcu_reader_ensure(void);

/* send.c */
void sy__reply_drop(struct sy__slot *s, struct sy_msg *m);
int sy__resend(struct sy__worker *w, struct sy_msg *m, enum sy_dl_reason *why);

/* worker.c */
int sy__workers_start(struct sy_engine *eng);
void sy__workers_drain(struct sy_engine *eng);
void sy__worker_wait_handled(struct sy_engine *eng, unsigned w);
unsigned sy__worker_drain_ring(struct sy__worker *w, struct sy__ring *r);

/* retry.c: a worker's retries (the worker only) */
bool sy__retry_allowed(const struct sy__route *r, const struct sy_msg *m,
		       const struct sy__budget *b);
void sy__retry_schedule(struct sy__worker *w, const struct sy__route *r,
			struct sy_msg *m);
unsigned sy__retries_due(struct sy__worker *w); /* inside a read-side section */
uint64_t sy__retries_next(const struct sy__worker *w); /* 0: none */
void sy__retries_shutdown(struct sy__worker *w);

/* registry.c */
int sy__registry_init(struct sy_engine *eng);
void sy__registry_destroy(struct sy_engine *eng);

/*
 * RCU, memb flavor. liburcu is not built for ThreadSanitizer, so under it
 * the grace period is annotated: every read-side section releases a token
 * when it ends (G1) and a waiter acquires it after synchronize_rcu() or at
 * the start of a call_rcu callback (G2, pairs with G1).
 */
extern char sy__rcu_token;

static inline void sy__read_lock(void)
{
	urcu_memb_read_lock();
}

static inline void sy__read_unlock(void)
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1 */
	urcu_memb_read_unlock();
}

static inline void sy__synchronize(void)
{
	urcu_memb_synchronize_rcu();
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* Free @p head's object with @p fn after a grace period. */
static inline void sy__call_rcu(struct rcu_head *head,
				void (*fn)(struct rcu_head *head))
{
	SY_TSAN_RELEASE(&sy__rcu_token); /* G1: what we did with it before */
	urcu_memb_call_rcu(head, fn);
}

/* At the start of a call_rcu callback. */
static inline void sy__rcu_callback_start(void)
{
	SY_TSAN_ACQUIRE(&sy__rcu_token); /* G2 */
}

/* The slot's xorshift64* generator: its thread only, no shared line. */
static inline uint64_t sy__slot_random(struct sy__slot *s)
{
	uint64_t x = s->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline struct sy__ring *sy__slot_out(struct sy__slot *s)
{
	return atomic_load_explicit(&s->out, memory_order_acquire);
}

uint64_t sy__clock_monotonic(void *ctx);

/** The engine's clock in nanoseconds. Any thread. */
static inline uint64_t sy__now(const struct sy_engine *eng)
{
	return eng->cfg.clock(eng->cfg.clock_ctx);
}

static inline bool sy__idle_sleeps(const struct sy_engine *eng)
{
	return eng->cfg.idle == SY_IDLE_SLEEP;
}

#define sy__likely(x) __builtin_expect(!!(x), 1)
#define sy__unlikely(x) __builtin_expect(!!(x), 0)

#endif /* SY_CORE_ENGINE_INTERNAL_H */
