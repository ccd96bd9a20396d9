/*
 * Engine life cycle: create, start, stop (drain), destroy, and counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/collector.h"
#include "core/dlq.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/health.h"
#include "core/memory.h"
#include "core/parking.h"
#include "core/pool.h"
#include "core/rcu.h"
#include "core/remote.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/worker.h"
#include "core/wrap.h"
#include "core/health.h"

char sy__rcu_token;
_Atomic unsigned long sy__rcu_queued;
struct sy__wrap_start sy__wrap_start;

uint64_t sy__clock_monotonic(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

SY_API void sy_config_init(struct sy_config *cfg)
{
	SY__NONNULL_OR(cfg, );
	memset(cfg, 0, sizeof(*cfg));
	cfg->display_affinity = -1;
}

static int engine_alloc(struct sy_engine *eng)
{
	eng->nslots = eng->nworkers + eng->cfg.max_producers;
	eng->slots = calloc(eng->nslots, sizeof(*eng->slots));
	eng->workers = calloc(eng->nworkers, sizeof(*eng->workers));
	eng->routes = calloc(eng->cfg.max_routes, sizeof(*eng->routes));
	eng->direct = calloc(eng->cfg.max_routes, sizeof(*eng->direct));
	eng->servers = calloc(eng->cfg.max_servers, sizeof(*eng->servers));
	if (!eng->slots || !eng->workers || !eng->routes || !eng->direct ||
	    !eng->servers)
		return -ENOMEM;
	for (unsigned i = 0; i < eng->nslots; i++) {
		struct sy__slot *s = &eng->slots[i];

		s->id = i;
		s->pool.eng = eng;
		s->pool.slot = i;
		s->is_worker = i < eng->nworkers;
		s->stash_tail = &s->stash;
	}
	for (unsigned i = 0; i < eng->nworkers; i++) {
		eng->workers[i].inbox = calloc(eng->nslots,
					       sizeof(*eng->workers[i].inbox));
		if (!eng->workers[i].inbox)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < eng->nworkers; i++) {
		struct sy__worker *w = &eng->workers[i];

		w->eng = eng;
		w->idx = i;
		w->cpu = eng->cfg.worker_cpu[i];
		w->slot = &eng->slots[i];
		w->budget = calloc(eng->cfg.max_routes, sizeof(*w->budget));
		if (!w->budget || sy__slot_setup(eng, w->slot))
			return -ENOMEM;
		sy__slot_reset_picks(eng, w->slot);
		atomic_store(&w->slot->state, SY_SLOT_ATTACHED);
	}
	atomic_store(&eng->slots_used, eng->nworkers);
	if (sy__dlq_init(eng) || sy__collector_init(eng))
		return -ENOMEM;
	return sy__registry_init(eng);
}

static void engine_free(struct sy_engine *eng)
{
	sy__collector_destroy(eng);
	sy__registry_destroy(eng);
	sy__parking_destroy(eng);
	sy__dlq_destroy(eng);
	if (eng->slots) {
		for (unsigned i = 0; i < eng->nslots; i++)
			sy__slot_free(eng, &eng->slots[i]);
		for (unsigned i = 0; i < eng->nslots; i++)
			sy__pool_destroy(eng, &eng->slots[i].pool);
	}
	sy__huge_destroy(eng);
	sy__mem_fini(eng);
	for (unsigned i = 0; eng->workers && i < eng->nworkers; i++) {
		free(eng->workers[i].budget);
		free(eng->workers[i].inbox);
	}
	free(eng->slots);
	free(eng->workers);
	free(eng->routes);
	free(eng->direct);
	free(eng->servers);
	pthread_mutex_destroy(&eng->lock);
	pthread_mutex_destroy(&eng->slot_lock);
	pthread_mutex_destroy(&eng->servers_lock);
	pthread_mutex_destroy(&eng->huge_lock);
	free(eng);
}

SY_API int sy_engine_create(const struct sy_config *cfg, sy_engine **out)
{
	char why[400];
	struct sy_engine *eng;
	int rc;

	SY__NONNULL(out);
	sy__barrier_init();
	sy__prefetchw_init();
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return sy__failed(__func__, sy__fail(-ENOMEM, "no memory for an engine"));
	rc = sy__config_resolve(cfg, &eng->cfg, why, sizeof(why));
	if (rc) {
		free(eng);
		return sy__failed(__func__, sy__fail(rc, "%s", why));
	}
	if (!eng->cfg.clock)
		eng->cfg.clock = sy__clock_monotonic;
	if (!eng->cfg.seed)
		eng->cfg.seed = sy__clock_monotonic(NULL) | 1;
	pthread_mutex_init(&eng->lock, NULL);
	pthread_mutex_init(&eng->slot_lock, NULL);
	pthread_mutex_init(&eng->servers_lock, NULL);
	pthread_mutex_init(&eng->huge_lock, NULL);
	eng->nworkers = eng->cfg.workers;
	atomic_init(&eng->state, SY_ENGINE_CREATED);
	atomic_init(&eng->alloc_fast, SY_POOL_FAST_MAX + 1);
	atomic_init(&eng->send_limit, eng->cfg.max_routes);
	atomic_init(&eng->rcu_period, 1);
	sy__mem_init(eng);
	rc = engine_alloc(eng);
	if (!rc)
		rc = sy__engine_remember(eng);
	if (rc) {
		engine_free(eng);
		sy__fail(rc, rc == -ENOSPC ? "too many engines in this process"
					   : "no memory for the engine");
		return sy__failed(__func__, rc);
	}
	if (eng->cfg.warnings[0]) {
		if (eng->cfg.on_warning)
			eng->cfg.on_warning(eng->cfg.warnings,
					    eng->cfg.callback_ctx);
		else
			fprintf(stderr, "switchyard: warning: %s\n",
				eng->cfg.warnings);
	}
	*out = eng;
	return 0;
}

SY_API int sy_engine_start(sy_engine *eng)
{
	int rc;

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK,
			"called from a handler"));
	pthread_mutex_lock(&eng->lock);
	switch (atomic_load(&eng->state)) {
	case SY_ENGINE_CREATED:
		break;
	case SY_ENGINE_RUNNING:
		rc = sy__fail(-EALREADY, "the engine is already running");
		goto out_unlock;
	default:
		rc = sy__fail(-ESHUTDOWN, "the engine was stopped, "
			      "and an engine cannot be restarted: create a new one");
		goto out_unlock;
	}
	rc = sy__workers_start(eng);
	if (!rc)
		rc = sy__collector_start(eng);
	if (rc) {
		/* Stop the workers that started; they drain what was queued
		 * before the start. */
		sy__engine_set_stopping(eng);
		sy__slots_synchronize(eng);
		sy__workers_drain(eng);
		sy__parking_shutdown(eng);
		sy__engine_set_stopped(eng);
		goto out_unlock;
	}
	atomic_store(&eng->state, SY_ENGINE_RUNNING);
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

static uint64_t counter_sum(struct sy_engine *eng, enum sy__total c)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < eng->nslots; i++)
		sum += sy__counter_read(&eng->slots[i].totals.v[c]);
	return sum;
}

/* Stop @p eng: 0, -EALREADY (stopped before) or the error of a start
 * that draining needed. Not from one of its workers. */
static int engine_stop(struct sy_engine *eng)
{
	int rc = 0;

	pthread_mutex_lock(&eng->lock);
	switch (atomic_load(&eng->state)) {
	case SY_ENGINE_CREATED:
		sy__engine_set_stopping(eng);
		/* After the grace period every send that saw CREATED has
		 * enqueued (and counted it accepted); later ones fail. With
		 * nothing accepted the rings are empty and no worker needs to
		 * run; otherwise the workers start just to drain them. */
		sy__slots_synchronize(eng);
		if (counter_sum(eng, SY_T_ACCEPTED) != 0) {
			rc = sy__workers_start(eng);
			sy__workers_drain(eng);
			sy__parking_shutdown(eng);
		}
		sy__engine_set_stopped(eng);
		sy__collector_stop(eng);
		break;
	case SY_ENGINE_RUNNING:
		sy__engine_set_stopping(eng);
		/* After the grace period every send that saw RUNNING has
		 * enqueued; later ones see STOPPING and fail. */
		sy__slots_synchronize(eng);
		sy__remote_quiesce(eng);
		sy__workers_drain(eng);
		sy__parking_shutdown(eng);
		sy__remote_stop(eng);
		sy__engine_set_stopped(eng);
		sy__collector_stop(eng);
		break;
	default:
		rc = sy__fail(-EALREADY, "the engine is already stopped");
	}
	pthread_mutex_unlock(&eng->lock);
	return rc;
}

SY_API int sy_engine_stop(sy_engine *eng)
{
	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK,
			"called from a handler, it would wait for its own worker"));
	return sy__ret(__func__, engine_stop(eng));
}

SY_API void sy_engine_destroy(sy_engine *eng)
{
	if (!eng || sy__refused_in_worker(eng, __func__))
		return;
	sy_metrics_serve_stop(eng);
	engine_stop(eng);
	sy__health_shutdown(eng);
	sy__remote_destroy(eng);
	sy__engine_forget(eng);
	engine_free(eng);
}

SY_API unsigned sy_engine_workers(const sy_engine *eng)
{
	SY__NONNULL_OR(eng, 0);
	return eng->nworkers;
}

SY_API int sy_engine_worker_cpu(const sy_engine *eng, unsigned worker)
{
	SY__NONNULL(eng);
	if (worker >= eng->nworkers)
		return sy__failed(__func__, sy__fail(-EINVAL,
			"no worker %u: the engine has %u", worker, eng->nworkers));
	return eng->workers[worker].cpu;
}

SY_API int sy_engine_stats(sy_engine *eng, struct sy_stats *out)
{
	SY__NONNULL(eng);
	SY__NONNULL(out);
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < eng->nslots; i++) {
		const struct sy__slot *s = &eng->slots[i];

		sy__totals_add_to(&s->totals, out);
		out->pool_slabs += atomic_load_explicit(&s->pool.slab_count,
							memory_order_relaxed);
		out->pool_bytes += atomic_load_explicit(&s->pool.slab_bytes,
							memory_order_relaxed);
	}
	/* The totals count every run as delivered; the failed ones are
	 * handler_failed. Runs are read first: a failure seen without its run
	 * makes delivered short for a moment (clamped), never long. */
	out->handler_runs = out->delivered;
	out->delivered = out->handler_runs > out->handler_failed ?
			 out->handler_runs - out->handler_failed : 0;
	{
		struct sy_accounting a;

		sy_engine_accounting(eng, &a);
		out->in_flight = a.in_flight;
	}
	return 0;
}


/*
 * Outcomes are read before acceptances, and a sender counts a message as
 * accepted just before it enqueues it (taking the count back if the enqueue
 * fails): a reader never sees more messages ended than accepted.
 */
SY_API int sy_engine_accounting(sy_engine *eng, struct sy_accounting *out)
{
	uint64_t runs, handed_on, failed, ran, ended;

	SY__NONNULL(eng);
	SY__NONNULL(out);
	memset(out, 0, sizeof(*out));
	sy__dlq_accounting(eng, out);
	/* Like dead letters, the other ends of failed runs are read before
	 * the runs and the failures handed on, which are counted first. */
	out->dropped = counter_sum(eng, SY_T_DROPPED);
	out->returned = counter_sum(eng, SY_T_RETURNED);
	/* Runs before the failures handed on: a failure read without its run
	 * makes delivered short for a moment (clamped), never long. */
	runs = counter_sum(eng, SY_T_DELIVERED);
	handed_on = counter_sum(eng, SY_T_HANDED_ON);
	failed = counter_sum(eng, SY_T_HANDLER_FAILED);
	out->retried = counter_sum(eng, SY_T_RETRIED);
	out->accepted = counter_sum(eng, SY_T_ACCEPTED);
	/* Messages whose trip ended in a handler run: those that succeeded
	 * and those a failing handler kept. The split never makes the sum
	 * larger than the runs that were not handed on. */
	ran = runs > handed_on ? runs - handed_on : 0;
	out->failed_kept = failed > handed_on ? failed - handed_on : 0;
	if (out->failed_kept > ran)
		out->failed_kept = ran;
	out->delivered = ran - out->failed_kept;
	ended = ran + out->dead_lettered + out->evicted + out->dropped +
		out->returned;
	out->in_flight = out->accepted > ended ? out->accepted - ended : 0;
	return 0;
}
