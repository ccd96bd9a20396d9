/*
 * Metrics shards (shard.h): one block per slot, laid out as the shard
 * itself, then its per-server counters, its per-route counters and, in a
 * worker's, its per-route latency histograms.
 */
#include "metrics/shard.h"

size_t sy__shard_bytes(const struct sy__shard_dims *d)
{
	return sizeof(struct sy__shard) +
	       ((size_t)d->max_servers + d->max_routes) * sizeof(struct sy__sctr) +
	       (size_t)d->route_lats * sizeof(struct sy__route_lat);
}

struct sy__shard *sy__shard_init(void *mem, const struct sy__shard_dims *d)
{
	struct sy__shard *sh = mem;

	/* The memory is zeroed: every counter starts at 0. */
	sh->server = (struct sy__sctr *)(sh + 1);
	sh->route = sh->server + d->max_servers;
	sh->route_lat = (struct sy__route_lat *)(sh->route + d->max_routes);
	sh->route_lats = d->route_lats;
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy__hist_init(&sh->hist[k]);
	return sh;
}

void sy__shard_id_add(const struct sy__shard *sh, bool server, uint32_t id,
		      uint64_t out[SY_SC_COUNT])
{
	const struct sy__sctr *c = server ? &sh->server[id] : &sh->route[id];

	for (unsigned f = 0; f < SY_SC_COUNT; f++)
		out[f] += sy__counter_read(&c->v[f]);
}

void sy__shard_lat_add(const struct sy__shard *sh, uint32_t id,
		       uint64_t out[SY_COARSE_BUCKETS])
{
	if (id >= sh->route_lats)
		return;
	for (unsigned i = 0; i < SY_COARSE_BUCKETS; i++)
		out[i] += sy__counter_read(&sh->route_lat[id].b[i]);
}
