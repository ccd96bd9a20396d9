/*
 * The engine object (engine.c): its configuration, threads, slots, route
 * table and the modules hung on it.
 *
 * Locks: `lock` serializes the control functions (servers, routes, start,
 * stop); `slot_lock` attach and detach; `huge_lock` the list of unpooled
 * messages. The hot paths take none of them.
 */
#ifndef SY_CORE_ENGINE_H
#define SY_CORE_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config_internal.h"

enum sy__engine_state {
	SY_ENGINE_CREATED,
	SY_ENGINE_RUNNING,
	SY_ENGINE_STOPPING,
	SY_ENGINE_STOPPED,
};

struct sy__dlq;
struct sy__collector;
struct sy__health_thread;
struct sy__http;
struct sy__huge;
struct sy__parking;
struct sy__remote;
struct sy__route;
struct sy__server;
struct sy__slot;
struct sy__worker;

struct sy_engine {
	struct sy__config cfg;
	_Atomic int state;
	/* sy_msg_alloc() sizes below this take its fast path: the smallest
	 * class's payload + 1 until the engine is stopped, then 0, so that one
	 * compare checks both the size and the state (pool.c). */
	_Atomic uint32_t alloc_fast;
	/* Route ids below this may be sent to: max_routes until the engine is
	 * stopping, then 0, so that one compare checks a send's route id and
	 * the state (dispatch.c). */
	_Atomic uint32_t send_limit;
	unsigned nworkers;
	unsigned nstarted;               /* worker threads running */
	unsigned nslots;
	_Atomic unsigned slots_used;     /* slots [0, slots_used) may have rings */
	struct sy__slot *slots;
	struct sy__worker *workers;
	_Atomic(struct sy__route *) *routes;   /* [max_routes] */
	/* [max_routes]: routes[id] where that route is direct, else NULL;
	 * stored with it (registry.c). The common send's one load. */
	_Atomic(struct sy__route *) *direct;
	_Atomic uint64_t rcu_period;     /* the slots' domain (rcu.h), from 1 */
	struct sy__route *retired;       /* replaced or removed, under lock */
	unsigned nretired;
	struct sy__server **servers;           /* [max_servers], under lock */
	struct cds_lfht *route_names;
	pthread_mutex_t lock;            /* servers, routes, start, stop */
	pthread_mutex_t slot_lock;       /* attach, detach */
	/* Changes of servers[] (under lock too), and the lookups by id or
	 * name that any thread makes: never held while waiting for a
	 * worker, so a handler may look a server up while a control call
	 * holding lock waits for its worker (stop, a removal). */
	pthread_mutex_t servers_lock;
	pthread_mutex_t huge_lock;
	struct sy__huge *huge;           /* unpooled messages, for destroy */
	struct sy__dlq *dlq;
	struct sy__collector *collector; /* NULL: metrics off */
	struct sy__http *http;           /* NULL: not serving; under lock */
	struct sy__health_thread *health;/* NULL until a server has a probe */
	struct sy__remote *remote;       /* NULL until sy_nats_connect(); under lock */
	/* NULL until a route with park_after is added (parking.c); set under
	 * lock, read by workers. */
	_Atomic(struct sy__parking *) parking;
	/* The same for the collector, which never takes lock: set once
	 * connected, cleared before it is freed (remote.c). */
	_Atomic(struct sy__remote *) remote_seen;
	uint64_t uid;
	unsigned je_arena;
	bool je_arena_valid;
};

uint64_t sy__clock_monotonic(void *ctx);

/** The engine's clock in nanoseconds. Any thread. */
static inline uint64_t sy__now(const struct sy_engine *eng)
{
	return eng->cfg.clock(eng->cfg.clock_ctx);
}

/* Set the state to STOPPING: no more sends (release pairs with the
 * acquire load of send_limit in dispatch.c, which then sees the state). */
static inline void sy__engine_set_stopping(struct sy_engine *eng)
{
	atomic_store(&eng->state, SY_ENGINE_STOPPING);
	atomic_store_explicit(&eng->send_limit, 0, memory_order_release);
}

/* Set the state to STOPPED: no more allocation. */
static inline void sy__engine_set_stopped(struct sy_engine *eng)
{
	atomic_store(&eng->state, SY_ENGINE_STOPPED);
	atomic_store_explicit(&eng->alloc_fast, 0, memory_order_relaxed);
}

static inline bool sy__idle_sleeps(const struct sy_engine *eng)
{
	return eng->cfg.idle == SY_IDLE_SLEEP;
}

#endif /* SY_CORE_ENGINE_H */
