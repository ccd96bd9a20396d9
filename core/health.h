/*
 * Health probes (health.c): one thread per engine, started with the first
 * server that has a probe, runs each probe at its interval and sets or
 * clears the server's SY_GATE_UNHEALTHY after the configured number of
 * results in a row. Probes never run on a worker.
 */
#ifndef SY_CORE_HEALTH_H
#define SY_CORE_HEALTH_H

#include <stdint.h>

#include "switchyard.h"

struct sy_engine;
struct sy__server;

/* Under eng->lock, while the server is added (its id and name set): check
 * and copy the options, start the thread if needed; the first probe runs at
 * once. 0; -EINVAL; -ENOMEM; -EAGAIN (no thread). */
int sy__health_attach(struct sy_engine *eng, struct sy__server *srv,
		      const struct sy_health_opts *o);
/* Under eng->lock, when the server is removed (before it is freed): once
 * it returns the probe is not running and never runs again. Waits for a
 * probe that runs now. No-op for a server without a probe. */
void sy__health_detach(struct sy_engine *eng, struct sy__server *srv);
/* Stop the thread (sy_engine_destroy()), without eng->lock held, before
 * the servers are freed: servers still attached are detached. */
void sy__health_shutdown(struct sy_engine *eng);
/* Probes completed so far (results applied), 0 without a thread. Any
 * thread; takes the health thread's mutex. */
uint64_t sy__health_runs(struct sy_engine *eng);

#endif /* SY_CORE_HEALTH_H */
