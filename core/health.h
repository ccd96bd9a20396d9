/*
 * Health probes (health.c): one thread per engine, started with the first
 * server that has a probe, runs each probe at its interval and sets or
 * clears the server's SY_GATE_UNHEALTHY after the configured number of
 * results in a row. Probes never run on a worker.
 */
#ifndef SY_CORE_HEALTH_H
#define SY_CORE_HEALTH_H

#include "switchyard.h"

struct sy_engine;
struct sy__server;

/* Under eng->lock, while the server is added: check and copy the options,
 * start the thread if needed. 0; -EINVAL; -ENOMEM; -EAGAIN (no thread). */
int sy__health_attach(struct sy_engine *eng, struct sy__server *srv,
		      const struct sy_health_opts *o);
/* Under eng->lock, when the server is removed (before it is freed). */
void sy__health_detach(struct sy_engine *eng, struct sy__server *srv);
/* Stop the thread (sy_engine_destroy()), without eng->lock held. */
void sy__health_shutdown(struct sy_engine *eng);

#endif /* SY_CORE_HEALTH_H */
