/*
 * The registry: servers and routes.
 *
 * Writers (add, replace, remove) serialize on eng->lock. Readers never lock:
 * senders load eng->routes[id] inside an RCU read-side section; sy_route_find
 * looks the name up in a cds_lfht. A route object is never modified after it
 * is published: a change builds a new object, publishes it in both places,
 * and frees the old one with call_rcu once no reader can hold it.
 *
 * Ordering: the release store of eng->routes[id] (R1) pairs with the
 * acquire load on the send path (A1 in send.c): a sender that sees a route
 * sees it complete, its policy state and server pointers included.
 *
 * A route object is one block from the engine's allocator (memory.h): the
 * route, its server pointers, its ids and weights, its parameters. So
 * struct sy_allocator sees route memory, and a control call that runs out
 * of it fails with -ENOMEM having changed nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/breaker.h"
#include "core/collector.h"
#include "core/deadline.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/health.h"
#include "core/memory.h"
#include "core/parking.h"
#include "core/rcu.h"
#include "core/remote.h"
#include "core/route.h"
#include "core/slot.h"
#include "core/slow_start.h"
#include "core/worker.h"
#include "metrics/shard.h"
#include "policies/policy.h"

#define SY_RETIRE_BATCH 64 /* routes freed after one grace period */

static unsigned long name_hash(const char *s)
{
	unsigned long h = 1469598103934665603ul;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ul;
	return h;
}

static int route_match(struct cds_lfht_node *node, const void *key)
{
	const struct sy__route *r = caa_container_of(node, struct sy__route, node);

	return strcmp(r->name, key) == 0;
}

static int check_name(const char *what, const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len >= SY_NAME_MAX)
		return sy__fail(-EINVAL, "%s name must be 1 to %d bytes", what,
				SY_NAME_MAX - 1);
	return 0;
}

/*
 * What precedes a route in its block: the engine whose allocator gave the
 * block, and the block's size, for route_free() (a call_rcu callback, with
 * nothing but the route). A cache line, so the route starts on one.
 */
struct route_head {
	struct sy_engine *eng;
	size_t bytes;
};
#define ROUTE_HEAD_BYTES SY_CACHELINE
_Static_assert(sizeof(struct route_head) <= ROUTE_HEAD_BYTES,
	       "the head must fit before the route");

static struct route_head *route_head(struct sy__route *r)
{
	return (struct route_head *)((char *)r - ROUTE_HEAD_BYTES);
}

/*
 * A zeroed route block for @p n servers, named @p name, with @p params
 * copied: its info[] is for the caller to fill, then route_init(). Under
 * eng->lock. NULL (with the error set) when the allocator has no memory.
 */
static struct sy__route *route_alloc(struct sy_engine *eng, const char *name,
				     unsigned n, const char *params)
{
	size_t plen = strlen(params ? params : "") + 1;
	size_t bytes = ROUTE_HEAD_BYTES + sizeof(struct sy__route) +
		       n * (sizeof(struct sy__server *) +
			    sizeof(struct sy_policy_server) + sizeof(uint64_t)) +
		       plen;
	struct route_head *h = sy__mem_alloc(eng, bytes);
	struct sy__route *r;

	if (!h) {
		sy__fail(-ENOMEM, "no memory for route \"%s\"", name);
		return NULL;
	}
	h->eng = eng;
	h->bytes = bytes;
	r = (struct sy__route *)((char *)h + ROUTE_HEAD_BYTES);
	r->n = n;
	strcpy(r->name, name);
	r->info = (struct sy_policy_server *)&r->servers[n];
	r->joined = (uint64_t *)&r->info[n];
	r->params = (char *)&r->joined[n];
	memcpy(r->params, params ? params : "", plen);
	return r;
}

/* A block that route_alloc() gave, never published. */
static void route_release(struct sy__route *r)
{
	struct route_head *h = route_head(r);

	sy__mem_free(h->eng, h, h->bytes);
}

static void route_free(struct sy__route *r)
{
	if (r->policy->destroy)
		r->policy->destroy(r->pstate);
	route_release(r);
}

static void route_free_rcu(struct rcu_head *head)
{
	sy__rcu_callback_start();
	route_free(caa_container_of(head, struct sy__route, rcu));
	sy__rcu_callback_end();
}

/*
 * Free the retired routes once no reader can hold them: a grace period of
 * the slots now, then liburcu's for the name table's readers: through
 * call_rcu, or (@p wait, at destroy) by waiting for it here.
 * Under eng->lock, or at destroy.
 */
static void routes_reclaim(struct sy_engine *eng, bool wait)
{
	struct sy__route *r;

	if (!eng->retired)
		return;
	sy__slots_synchronize(eng);
	if (wait)
		sy__synchronize_rcu();
	else
		sy__rcu_thread_get();
	while ((r = eng->retired)) {
		eng->retired = r->retired_next;
		if (wait)
			route_free(r);
		else
			sy__call_rcu(&r->rcu, route_free_rcu);
	}
	if (!wait)
		sy__rcu_thread_put();
	eng->nretired = 0;
}

/* @p r is out of the table: free it later, with others (one grace period
 * for SY_RETIRE_BATCH routes). Under eng->lock. */
static void route_retire(struct sy_engine *eng, struct sy__route *r)
{
	r->retired_next = eng->retired;
	eng->retired = r;
	if (++eng->nretired >= SY_RETIRE_BATCH)
		routes_reclaim(eng, false);
}

/*
 * Finish a route from route_alloc() whose info[] the caller filled: its
 * server pointers, flags and policy state. Under eng->lock. On failure
 * (the policy refused) the block is released.
 * @return 0; the policy's error.
 */
static int route_init(struct sy_engine *eng, struct sy__route *r,
		      const struct sy_policy *policy, uint32_t id)
{
	int rc;

	r->policy = policy;
	r->pick = policy->pick;
	r->id = id;
	r->sc_at = sy__shard_route_at(eng->cfg.max_servers, id);
	for (unsigned i = 0; i < r->n; i++)
		r->servers[i] = eng->servers[r->info[i].id];
	r->msg_flags = (uint8_t)(((policy->flags & SY_POLICY_INFLIGHT) ? SY_MSG_INFLIGHT : 0) |
				 ((policy->flags & SY_POLICY_OBSERVE) && policy->observe ?
				  SY_MSG_OBSERVE : 0));
	r->direct = r->n == 1 && r->msg_flags == 0;
	cds_lfht_node_init(&r->node);
	if (policy->create && r->n > 0) {
		struct sy_policy_route view = {
			.name = r->name, .params = r->params, .n = r->n,
			.servers = r->info,
		};

		rc = policy->create(&view, &r->pstate);
		if (rc) {
			/* 0, -EINVAL or -ENOMEM (struct sy_policy): any
			 * other code is a refusal, not an error of the
			 * call (-EEXIST would say the name is taken). */
			rc = sy__fail(rc == -ENOMEM ? -ENOMEM : -EINVAL,
				      "route \"%s\": policy %s refused its servers or parameters \"%s\"",
				      r->name, policy->name, r->params);
			route_release(r);
			return rc;
		}
	}
	return 0;
}

/* Build a route from user options. Under eng->lock. */
/* Defaults of the reliability settings (docs/reliability.md). */
#define BP_HIGH_DEFAULT 0.8
#define BP_BLOCK_NS_DEFAULT 1000000ull
#define BACKOFF_NS_DEFAULT 100000ull
#define BACKOFF_MAX_NS_DEFAULT 100000000ull
#define RETRY_BUDGET_DEFAULT 0.2
#define RETRY_BUDGET_MIN_DEFAULT 10u
#define SLOW_START_MIN_DEFAULT 0.1
#define CODEL_TARGET_NS_DEFAULT 5000000ull
#define CODEL_INTERVAL_NS_DEFAULT 100000000ull

/* A CoDel route's messages are stamped at the send and measured when their
 * run starts, where the worker reads the clock for SY_MSG_OBSERVE (codel.c):
 * never direct. */
static void codel_flags(struct sy__route *r)
{
	if (!r->codel_target)
		return;
	r->msg_flags |= SY_MSG_OBSERVE;
	r->direct = false;
}

#define PARK_CAPACITY_DEFAULT 1024u
#define PARK_CAPACITY_MAX 1048576u

/* Parking (parking.c): its messages take the worker's slow path. */
static void park_settings(struct sy__route *r, uint32_t after,
			  uint32_t capacity)
{
	r->park_after = after;
	r->park_capacity = capacity;
	if (after) {
		r->msg_flags |= SY_MSG_INFLIGHT;
		r->direct = false;
	}
}

#define HEDGE_BUDGET_DEFAULT 0.1

/* The route's reliability settings from @p opts, checked. */
static int route_settings(struct sy_engine *eng, const char *name,
			  const struct sy_route_opts *o, struct sy__route *r)
{
	unsigned cap = eng->cfg.ring_size - 1; /* entries a ring holds */
	double high = o->bp_high ? o->bp_high : BP_HIGH_DEFAULT;
	double low = o->bp_low ? o->bp_low : high / 2;
	double budget = o->retry_budget ? o->retry_budget : RETRY_BUDGET_DEFAULT;
	double slow_min = o->slow_start_min ? o->slow_start_min :
			  SLOW_START_MIN_DEFAULT;
	double hedge_budget = o->hedge_budget ? o->hedge_budget :
			      HEDGE_BUDGET_DEFAULT;

	if ((unsigned)o->backpressure > SY_BP_DEAD_LETTER)
		return sy__fail(-EINVAL, "route \"%s\": backpressure %d is not an enum sy_backpressure value",
				name, (int)o->backpressure);
	if (!(high > 0 && high <= 1))
		return sy__fail(-EINVAL, "route \"%s\": bp_high %g is not in (0, 1]",
				name, high);
	if (!(low >= 0 && low < high))
		return sy__fail(-EINVAL, "route \"%s\": bp_low %g is not in [0, bp_high %g)",
				name, low, high);
	if (o->max_attempts > 255)
		return sy__fail(-EINVAL, "route \"%s\": max_attempts %u is over 255",
				name, o->max_attempts);
	if ((unsigned)o->on_failure > SY_FAIL_RETURN)
		return sy__fail(-EINVAL, "route \"%s\": on_failure %d is not an enum sy_on_failure value",
				name, (int)o->on_failure);
	if (!(budget > 0 && budget <= 1000))
		return sy__fail(-EINVAL, "route \"%s\": retry_budget %g is not in (0, 1000]",
				name, budget);
	if (!(slow_min > 0 && slow_min <= 1))
		return sy__fail(-EINVAL, "route \"%s\": slow_start_min %g is not in (0, 1]",
				name, slow_min);
	r->bp_mode = (uint8_t)o->backpressure;
	r->bp_high = (uint32_t)(high * cap + 0.999999);
	if (r->bp_high < 1)
		r->bp_high = 1;
	r->bp_low = (uint32_t)(low * cap);
	r->bp_block_ns = o->bp_block_ns ? o->bp_block_ns : BP_BLOCK_NS_DEFAULT;
	r->max_attempts = (uint8_t)(o->max_attempts ? o->max_attempts : 1);
	r->backoff_ns = o->retry_backoff_ns ? o->retry_backoff_ns : BACKOFF_NS_DEFAULT;
	r->backoff_max_ns = o->retry_backoff_max_ns ? o->retry_backoff_max_ns :
			    BACKOFF_MAX_NS_DEFAULT;
	if (r->backoff_max_ns < r->backoff_ns)
		return sy__fail(-EINVAL, "route \"%s\": retry_backoff_max_ns %llu is below retry_backoff_ns %llu",
				name, (unsigned long long)r->backoff_max_ns,
				(unsigned long long)r->backoff_ns);
	r->budget_milli = (uint32_t)(budget * 1000 + 0.5);
	r->budget_min = o->retry_budget_min ? o->retry_budget_min :
			RETRY_BUDGET_MIN_DEFAULT;
	r->dl_unreachable = o->dead_letter_unreachable;
	r->on_failure = (uint8_t)o->on_failure;
	if (!(hedge_budget > 0 && hedge_budget <= 1))
		return sy__fail(-EINVAL, "route \"%s\": hedge_budget %g is not in (0, 1]",
				name, hedge_budget);
	r->slow_start_ns = o->slow_start_ns;
	r->slow_start_min = slow_min;
	r->hedge_delay_ns = o->hedge_delay_ns;
	r->hedge_p95 = o->hedge_p95;
	r->hedge_budget_milli = (uint32_t)(hedge_budget * 1000 + 0.5);
	if (o->deadline_aware && !r->policy->estimate)
		return sy__fail(-EINVAL, "route \"%s\": deadline_aware needs a policy with estimates; %s has none",
				name, r->policy->name);
	r->deadline_aware = o->deadline_aware;
	if (r->deadline_aware)
		r->pick = sy__deadline_pick;
	if (o->codel && o->backpressure == SY_BP_BLOCK)
		return sy__fail(-EINVAL, "route \"%s\": codel sheds by refusing, spilling or dead-lettering; SY_BP_BLOCK would only add to the wait",
				name);
	r->codel_target = !o->codel ? 0 : o->codel_target_ns ?
			  o->codel_target_ns : CODEL_TARGET_NS_DEFAULT;
	r->codel_interval = o->codel_interval_ns ? o->codel_interval_ns :
			    CODEL_INTERVAL_NS_DEFAULT;
	codel_flags(r);
	if (o->park_capacity > PARK_CAPACITY_MAX)
		return sy__fail(-EINVAL, "route \"%s\": park_capacity %u is over %u",
				name, o->park_capacity, PARK_CAPACITY_MAX);
	park_settings(r, o->park_after, o->park_capacity ? o->park_capacity :
		      PARK_CAPACITY_DEFAULT);
	return o->park_after ? sy__parking_enable(eng) : 0;
}

/* A rebuilt route keeps the settings of the one it replaces. */
static void route_settings_copy(struct sy__route *r, const struct sy__route *old)
{
	r->bp_mode = old->bp_mode;
	r->bp_high = old->bp_high;
	r->bp_low = old->bp_low;
	r->bp_block_ns = old->bp_block_ns;
	r->max_attempts = old->max_attempts;
	r->backoff_ns = old->backoff_ns;
	r->backoff_max_ns = old->backoff_max_ns;
	r->budget_milli = old->budget_milli;
	r->budget_min = old->budget_min;
	r->dl_unreachable = old->dl_unreachable;
	r->on_failure = old->on_failure;
	r->slow_start_ns = old->slow_start_ns;
	r->slow_start_min = old->slow_start_min;
	r->deadline_aware = old->deadline_aware;
	r->hedge_delay_ns = old->hedge_delay_ns;
	r->hedge_p95 = old->hedge_p95;
	r->hedge_budget_milli = old->hedge_budget_milli;
	r->pick = old->pick;
	r->codel_target = old->codel_target;
	r->codel_interval = old->codel_interval;
	codel_flags(r);
	park_settings(r, old->park_after, old->park_capacity);
}

static struct sy__route *route_build(struct sy_engine *eng, const char *name,
				     uint32_t id,
				     const struct sy_route_opts *opts, int *err)
{
	const char *pname = opts && opts->policy ? opts->policy : "round_robin";
	const struct sy_policy *policy = sy__policy_find(pname);
	struct sy__route *r;
	unsigned n, min, max;

	if (!opts || !opts->servers || opts->n_servers == 0) {
		*err = sy__fail(-EINVAL, "route \"%s\": no servers", name);
		return NULL;
	}
	if (!policy) {
		*err = sy__fail(-EINVAL, "route \"%s\": unknown policy \"%s\"",
				name, pname);
		return NULL;
	}
	n = opts->n_servers;
	min = policy->min_servers ? policy->min_servers : 1;
	max = policy->max_servers ? policy->max_servers : eng->cfg.max_servers;
	if (n < min || n > max || n > eng->cfg.max_servers) {
		*err = sy__fail(-EINVAL, "route \"%s\": policy %s takes %u to %u servers, not %u",
				name, pname, min, max, n);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		uint32_t sid = opts->servers[i];

		if (sid >= eng->cfg.max_servers || !eng->servers[sid]) {
			*err = sy__fail(-ENOENT, "route \"%s\": no server with id %u",
					name, sid);
			return NULL;
		}
		for (unsigned j = 0; j < i; j++) {
			if (opts->servers[j] == sid) {
				*err = sy__fail(-EINVAL, "route \"%s\": server %u listed twice",
						name, sid);
				return NULL;
			}
		}
		if (opts->weights && (opts->weights[i] < 1 || opts->weights[i] > 65535)) {
			*err = sy__fail(-EINVAL, "route \"%s\": weight %u of server %u is not in 1..65535",
					name, opts->weights[i], sid);
			return NULL;
		}
	}
	r = route_alloc(eng, name, n, opts->params);
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		r->info[i].id = opts->servers[i];
		r->info[i].weight = opts->weights ? opts->weights[i] : 1;
	}
	if ((*err = route_init(eng, r, policy, id)) != 0)
		return NULL;
	if ((*err = route_settings(eng, name, opts, r)) != 0) {
		route_free(r);
		return NULL;
	}
	return r;
}

/* Publish @p r in place of @p old (NULL: a new route). Under eng->lock. */
static void route_publish(struct sy_engine *eng, struct sy__route *old,
			  struct sy__route *r)
{
	sy__rcu_thread_get();
	sy__read_lock();
	if (old) {
		struct cds_lfht_iter iter;

		cds_lfht_lookup(eng->route_names, name_hash(old->name),
				route_match, old->name, &iter);
		cds_lfht_replace(eng->route_names, &iter, name_hash(r->name),
				 route_match, r->name, &r->node);
	} else {
		cds_lfht_add(eng->route_names, name_hash(r->name), &r->node);
	}
	sy__read_unlock();
	/* R1: pairs with A1 in dispatch.c. */
	atomic_store_explicit(&eng->routes[r->id], r, memory_order_release);
	atomic_store_explicit(&eng->direct[r->id], r->direct ? r : NULL,
			      memory_order_release);
	sy__rcu_thread_put();
	if (old)
		route_retire(eng, old);
}

static struct sy__route *route_lookup(struct sy_engine *eng, const char *name)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *node;

	cds_lfht_lookup(eng->route_names, name_hash(name), route_match, name,
			&iter);
	node = cds_lfht_iter_get_node(&iter);
	return node ? caa_container_of(node, struct sy__route, node) : NULL;
}

SY_API int sy_policy_register(const struct sy_policy *policy)
{
	int rc;

	SY__NONNULL(policy);
	rc = sy__policy_add(policy);
	if (rc == -EINVAL)
		sy__fail(rc, "a policy needs a name of 1 to 31 bytes and a pick function");
	else if (rc == -EEXIST)
		sy__fail(rc, "a policy named \"%s\" exists", policy->name);
	return sy__ret(__func__, rc);
}

SY_API int sy_route_find(sy_engine *eng, const char *name, uint32_t *id)
{
	struct sy__route *r;
	int rc;

	SY__NONNULL(eng);
	SY__NONNULL(name);
	SY__NONNULL(id);
	rc = -ENOENT;
	sy__rcu_thread_get();
	sy__read_lock();
	r = route_lookup(eng, name);
	if (r) {
		*id = r->id;
		rc = 0;
	}
	sy__read_unlock();
	sy__rcu_thread_put();
	if (rc)
		sy__fail(rc, "no route named \"%s\"", name);
	return sy__ret(__func__, rc);
}

SY_API int sy_route_add(sy_engine *eng, const char *name,
			const struct sy_route_opts *opts, uint32_t *id)
{
	struct sy__route *r;
	uint32_t rid;
	int rc;

	SY__NONNULL(eng);
	SY__NONNULL(opts);
	SY__NONNULL(id);
	if ((rc = check_name("route", name)) != 0)
		return sy__ret(__func__, rc);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	for (rid = 0; rid < eng->cfg.max_routes; rid++) {
		struct sy__route *cur = atomic_load_explicit(&eng->routes[rid],
							     memory_order_relaxed);

		if (cur && strcmp(cur->name, name) == 0) {
			rc = sy__fail(-EEXIST, "route \"%s\" exists", name);
			goto out_unlock;
		}
	}
	for (rid = 0; rid < eng->cfg.max_routes; rid++)
		if (!atomic_load_explicit(&eng->routes[rid], memory_order_relaxed))
			break;
	if (rid == eng->cfg.max_routes) {
		rc = sy__fail(-ENOSPC, "all %u route ids in use", eng->cfg.max_routes);
		goto out_unlock;
	}
	r = route_build(eng, name, rid, opts, &rc);
	if (!r)
		goto out_unlock;
	sy__collector_id_added(eng, false, rid);
	sy__slow_start_join(eng, r, NULL);
	route_publish(eng, NULL, r);
	*id = rid;
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

static struct sy__route *route_get(struct sy_engine *eng, uint32_t id)
{
	if (id >= eng->cfg.max_routes)
		return NULL;
	return atomic_load_explicit(&eng->routes[id], memory_order_relaxed);
}

SY_API int sy_route_replace(sy_engine *eng, uint32_t id,
			    const struct sy_route_opts *opts)
{
	struct sy__route *old, *r;
	int rc = 0;

	SY__NONNULL(eng);
	SY__NONNULL(opts);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	old = route_get(eng, id);
	if (!old) {
		rc = sy__fail(-ENOENT, "no route with id %u", id);
		goto out_unlock;
	}
	r = route_build(eng, old->name, id, opts, &rc);
	if (r) {
		sy__slow_start_join(eng, r, old);
		route_publish(eng, old, r);
	}
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

static void route_unpublish(struct sy_engine *eng, struct sy__route *r)
{
	sy__rcu_thread_get();
	sy__read_lock();
	cds_lfht_del(eng->route_names, &r->node);
	sy__read_unlock();
	atomic_store_explicit(&eng->routes[r->id], NULL, memory_order_release);
	atomic_store_explicit(&eng->direct[r->id], NULL, memory_order_release);
	sy__rcu_thread_put();
	route_retire(eng, r);
}

SY_API int sy_route_remove(sy_engine *eng, uint32_t id)
{
	struct sy__route *r;
	int rc = 0;

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	r = route_get(eng, id);
	if (r) {
		route_unpublish(eng, r);
		/* Later messages of the route run unchecked: what it holds
		 * would never be released. */
		sy__parking_drop(eng, id, NULL);
	} else {
		rc = sy__fail(-ENOENT, "no route with id %u", id);
	}
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

/* ---- servers ---- */

static struct sy__server *server_by_name(struct sy_engine *eng,
					 const char *name)
{
	for (unsigned i = 0; i < eng->cfg.max_servers; i++)
		if (eng->servers[i] && strcmp(eng->servers[i]->name, name) == 0)
			return eng->servers[i];
	return NULL;
}

static unsigned least_loaded_worker(struct sy_engine *eng)
{
	unsigned best = 0;

	for (unsigned w = 1; w < eng->nworkers; w++)
		if (eng->workers[w].nservers < eng->workers[best].nservers)
			best = w;
	return best;
}

/* The worker that @p opts ask for, or -1 for "the engine places it": zero
 * options mean automatic placement, worker 0 needs worker_set. */
static int server_worker(const struct sy_server_opts *opts)
{
	if (!opts || opts->worker == -1)
		return -1;
	if (opts->worker == SY_WORKER_AUTO && !opts->worker_set)
		return -1;
	return opts->worker; /* below -1: refused by the caller */
}

/* Free a server no route lists and no message references. Under eng->lock. */
static void server_free(struct sy_engine *eng, struct sy__server *s)
{
	if (s->health)
		sy__health_detach(eng, s);
	if (s->breaker)
		sy__breaker_destroy(eng, s->breaker);
	free(s);
}

SY_API int sy_server_add(sy_engine *eng, const char *name, sy_handler_fn fn,
			 void *ctx, const struct sy_server_opts *opts,
			 uint32_t *id)
{
	int worker = server_worker(opts);
	struct sy__server *s;
	uint32_t sid;
	int rc;

	SY__NONNULL(eng);
	SY__NONNULL(id);
	if ((rc = check_name("server", name)) != 0)
		return sy__ret(__func__, rc);
	if (!fn)
		return sy__failed(__func__, sy__fail(-EINVAL, "server \"%s\": no handler", name));
	if (worker < -1 || worker >= (int)eng->nworkers)
		return sy__failed(__func__, sy__fail(-EINVAL, "server \"%s\": worker %d out of range 0..%u",
				name, worker, eng->nworkers - 1));
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	if (server_by_name(eng, name)) {
		rc = sy__fail(-EEXIST, "server \"%s\" exists", name);
		goto out_unlock;
	}
	for (sid = 0; sid < eng->cfg.max_servers; sid++)
		if (!eng->servers[sid])
			break;
	if (sid == eng->cfg.max_servers) {
		rc = sy__fail(-ENOSPC, "all %u server ids in use", eng->cfg.max_servers);
		goto out_unlock;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	s->fn = fn;
	s->ctx = ctx;
	s->id = sid;
	s->sc_at = sy__shard_server_at(sid);
	s->worker = worker < 0 ? least_loaded_worker(eng) : (unsigned)worker;
	strcpy(s->name, name);
	atomic_init(&s->gate, 0u);
	if (opts && opts->breaker &&
	    (rc = sy__breaker_create(eng, opts->breaker, &s->breaker)) != 0) {
		free(s);
		goto out_unlock;
	}
	if (opts && opts->health &&
	    (rc = sy__health_attach(eng, s, opts->health)) != 0) {
		server_free(eng, s);
		goto out_unlock;
	}
	eng->workers[s->worker].nservers++;
	sy__collector_id_added(eng, true, sid);
	pthread_mutex_lock(&eng->servers_lock);
	eng->servers[sid] = s;
	pthread_mutex_unlock(&eng->servers_lock);
	*id = sid;
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

SY_API int sy_server_find(sy_engine *eng, const char *name, uint32_t *id)
{
	struct sy__server *s;

	SY__NONNULL(eng);
	SY__NONNULL(name);
	SY__NONNULL(id);
	pthread_mutex_lock(&eng->servers_lock);
	s = server_by_name(eng, name);
	if (s)
		*id = s->id;
	pthread_mutex_unlock(&eng->servers_lock);
	if (!s)
		return sy__failed(__func__, sy__fail(-ENOENT,
			"no server named \"%s\"", name));
	return 0;
}

/* Whether route @p r lists server @p s. */
static bool route_lists(const struct sy__route *r, const struct sy__server *s)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->servers[i] == s)
			return true;
	return false;
}

/*
 * Build, without publishing any, a copy of every route that lists @p s,
 * without it, into a new array (*@p built, *@p nbuilt of them; free() it).
 * Under eng->lock. On failure nothing is left built.
 * @return 0; -ENOMEM; the error of a policy that refused the smaller set.
 */
static int routes_without(struct sy_engine *eng, struct sy__server *s,
			  struct sy__route ***built, unsigned *nbuilt)
{
	struct sy__route **v = NULL, *old, *r;
	unsigned n = 0, k = 0;
	int rc = 0;

	for (uint32_t id = 0; id < eng->cfg.max_routes; id++)
		if ((old = route_get(eng, id)) && route_lists(old, s))
			n++;
	if (n && !(v = calloc(n, sizeof(*v))))
		return sy__fail(-ENOMEM, "no memory to remove server \"%s\"",
				s->name);
	for (uint32_t id = 0; id < eng->cfg.max_routes && k < n; id++) {
		unsigned j = 0;

		old = route_get(eng, id);
		if (!old || !route_lists(old, s))
			continue;
		r = route_alloc(eng, old->name, old->n - 1, old->params);
		if (!r) {
			rc = -ENOMEM;
			goto out_free_built;
		}
		for (unsigned i = 0; i < old->n; i++)
			if (old->servers[i] != s)
				r->info[j++] = old->info[i];
		if ((rc = route_init(eng, r, old->policy, id)) != 0)
			goto out_free_built;
		route_settings_copy(r, old);
		sy__slow_start_join(eng, r, old);
		v[k++] = r;
	}
	*built = v;
	*nbuilt = k;
	return 0;

out_free_built:
	while (k)
		route_free(v[--k]);
	free(v);
	return rc;
}

static bool worker_has_queued(struct sy_engine *eng, unsigned w)
{
	unsigned used = atomic_load(&eng->slots_used);

	for (unsigned i = 0; i < used; i++) {
		struct sy__ring *out = sy__slot_out(&eng->slots[i]);

		if (out && sy__ring_count(&out[w]))
			return true;
	}
	return false;
}

SY_API int sy_server_remove(sy_engine *eng, uint32_t id)
{
	struct sy__route **built = NULL;
	struct sy__server *s;
	unsigned nbuilt = 0;
	int rc;

	SY__NONNULL(eng);
	if (sy__in_worker(eng))
		return sy__failed(__func__, sy__fail(-EDEADLK, "called from a handler"));
	pthread_mutex_lock(&eng->lock);
	s = id < eng->cfg.max_servers ? eng->servers[id] : NULL;
	if (!s) {
		rc = sy__fail(-ENOENT, "no server with id %u", id);
		goto out_unlock;
	}
	if (atomic_load(&eng->state) == SY_ENGINE_CREATED &&
	    worker_has_queued(eng, s->worker)) {
		rc = sy__fail(-EBUSY, "server \"%s\": messages are queued and the engine is not started",
			      s->name);
		goto out_unlock;
	}
	/* Everything that can fail comes first: a removal that fails leaves
	 * the server as it was, in every route, not draining, probed. */
	rc = routes_without(eng, s, &built, &nbuilt);
	if (rc)
		goto out_unlock;
	atomic_fetch_or_explicit(&s->gate, SY_GATE_DRAINING, memory_order_relaxed);
	if (s->health)
		sy__health_detach(eng, s);
	for (unsigned i = 0; i < nbuilt; i++)
		route_publish(eng, route_get(eng, built[i]->id), built[i]);
	free(built);
	pthread_mutex_lock(&eng->servers_lock);
	eng->servers[id] = NULL;
	pthread_mutex_unlock(&eng->servers_lock);
	eng->workers[s->worker].nservers--;
	/* After the grace period no sender holds a route that lists s, so
	 * every message for s is in its worker's rings or being handled. */
	sy__slots_synchronize(eng);
	if (atomic_load(&eng->state) == SY_ENGINE_RUNNING) {
		sy__worker_wait_handled(eng, s->worker);
		if (s->remote)
			sy__remote_server_drain(eng, s);
	}
	sy__parking_drop(eng, SY_ANY, s);
	server_free(eng, s);
out_unlock:
	pthread_mutex_unlock(&eng->lock);
	return sy__ret(__func__, rc);
}

int sy__registry_init(struct sy_engine *eng)
{
	eng->route_names = cds_lfht_new_flavor(16, 16, 0,
					       CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					       &urcu_memb_flavor, NULL);
	return eng->route_names ? 0 : -ENOMEM;
}

void sy__registry_destroy(struct sy_engine *eng)
{
	if (eng->routes) {
		for (uint32_t id = 0; id < eng->cfg.max_routes; id++) {
			struct sy__route *r = route_get(eng, id);

			if (r)
				route_unpublish(eng, r);
		}
	}
	/* Every route is out of the table: free them after a grace period,
	 * wait for the callbacks queued before, then destroy the empty
	 * table. Never inside a read-side section. */
	routes_reclaim(eng, true);
	sy__rcu_barrier();
	if (eng->route_names)
		cds_lfht_destroy(eng->route_names, NULL);
	if (eng->servers) {
		pthread_mutex_lock(&eng->lock);
		for (unsigned i = 0; i < eng->cfg.max_servers; i++)
			if (eng->servers[i])
				server_free(eng, eng->servers[i]);
		pthread_mutex_unlock(&eng->lock);
	}
}
