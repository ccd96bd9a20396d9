/*
 * Servers and routes (registry.c), and the context of one pick.
 *
 * A route object is immutable once published: it lives in an RCU-protected
 * array indexed by id (the fast path) and in a cds_lfht keyed by name;
 * updates publish a new object and free the old one with call_rcu. Servers
 * are reached through routes, and through the messages sent to them
 * (msg->server). Removing a server first rebuilds every route without it,
 * waits for a grace period (no sender can pick it any more), then waits
 * until its worker has handled every message enqueued before that point.
 */
#ifndef SY_CORE_ROUTE_H
#define SY_CORE_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "core/codel.h"
#include "core/compiler.h"
#include "switchyard.h"

#define SY_NAME_MAX 64

/*
 * Why a server cannot take messages now: 0 means it can. Senders read it
 * on every pick; it changes only on state changes.
 */
enum sy__gate {
	SY_GATE_DRAINING = 1u << 0,  /* being removed */
	SY_GATE_UNHEALTHY = 1u << 1, /* its health probe marked it down */
	SY_GATE_BREAKER = 1u << 2,   /* its breaker is open, half-open or forced */
	SY_GATE_WARMING = 1u << 3,   /* a route may ramp it up (slow_start.c):
				      * it takes messages, after a draw */
};

struct sy_engine;
struct sy__breaker;
struct sy__health;
struct sy__slot;

struct sy__server {
	sy_handler_fn fn;
	void *ctx;
	unsigned worker;
	uint32_t id;
	uint32_t sc_at;             /* its series in a shard: sy__shard_server_at() */
	_Atomic unsigned gate;      /* enum sy__gate bits */
	/* The worker's: a success while closed changes nothing in the
	 * breaker (no failures in a row, no window). Set by breaker.c. */
	bool breaker_quiet;
	bool remote;                /* reached over NATS (remote.c); set at add */
	struct sy__breaker *breaker; /* NULL: none */
	struct sy__health *health;  /* NULL: no probe */
	char name[SY_NAME_MAX];
	/* Messages sent and not yet handled, for SY_POLICY_INFLIGHT routes:
	 * senders add, the owning worker subtracts. */
	_Alignas(SY_CACHELINE) _Atomic int64_t inflight;
	_Atomic uint64_t transitions; /* breaker transitions */
	/* Slow start (slow_start.c): when its breaker last closed (engine
	 * clock, 0: never), until when some route may ramp it, and the longest
	 * ramp of the routes that list it (control thread only). */
	_Atomic uint64_t warm_from;
	_Atomic uint64_t warm_until;
	_Atomic uint64_t warm_window;
	/* CoDel (codel.c): sheds due to its senders, its worker's state. */
	struct sy__codel codel;
};

struct sy__route {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	struct sy__route *retired_next; /* eng->retired */
	const struct sy_policy *policy;
	void *pstate;
	uint32_t id;
	uint32_t sc_at;             /* its series in a shard: sy__shard_route_at() */
	uint8_t msg_flags;          /* SY_MSG_INFLIGHT, SY_MSG_OBSERVE */
	uint8_t bp_mode;            /* enum sy_backpressure */
	uint8_t max_attempts;       /* 1: no retries */
	bool dl_unreachable;
	uint8_t on_failure;         /* enum sy_on_failure */
	/* One server and no message flags: a send needs no pick and sets no
	 * more than the message's server and route (dispatch.c). */
	bool direct;
	uint32_t bp_high;           /* ring entries at which it is congested */
	uint32_t bp_low;            /* ring entries it must drain below */
	uint64_t bp_block_ns;
	uint64_t backoff_ns;
	uint64_t backoff_max_ns;
	uint32_t budget_milli;      /* retries per 1000 first runs */
	uint32_t budget_min;
	uint64_t slow_start_ns;     /* 0: no slow start */
	double slow_start_min;      /* the fraction a ramp starts at */
	uint64_t *joined;           /* [n] when each server joined (0: with the route) */
	/* policy->pick, or sy__deadline_pick() for a deadline-aware route */
	int (*pick)(const void *state, struct sy_pick *p);
	bool deadline_aware;
	uint64_t codel_target;      /* ns; 0: no CoDel (codel.c) */
	uint64_t codel_interval;    /* ns */
	uint32_t park_after;        /* 0: no parking (parking.c) */
	uint32_t park_capacity;     /* messages held per parked key */
	bool hedge_p95;             /* the delay: the round trip's p95 (hedge.c) */
	uint32_t hedge_budget_milli;/* hedges per 1000 hedgeable requests */
	uint64_t hedge_delay_ns;    /* 0 and no hedge_p95: no hedging */
	unsigned n;
	char name[SY_NAME_MAX];
	char *params;               /* as given, "" if none */
	struct sy_policy_server *info; /* [n] ids and weights */
	struct sy__server *servers[];
};

/* One pick in progress (public as an opaque type; pick.c). */
struct sy_pick {
	const struct sy__route *route;
	struct sy__slot *slot;
	struct sy_engine *eng;
	const struct sy_msg *msg;   /* the message picked for */
	uint64_t now;               /* 0: not read yet */
};

/* Could a sender pick @p srv now (without taking a half-open token)? Its
 * gate is @p gate, not 0. A ramping server is usable. */
bool sy__server_usable_slow(const struct sy__server *srv, unsigned gate);

static inline bool sy__server_usable(const struct sy__server *srv)
{
	unsigned gate = atomic_load_explicit(&srv->gate, memory_order_relaxed);

	return gate == 0 || sy__server_usable_slow(srv, gate);
}

/* registry.c, at engine create and destroy. */
int sy__registry_init(struct sy_engine *eng);
void sy__registry_destroy(struct sy_engine *eng);

#endif /* SY_CORE_ROUTE_H */
