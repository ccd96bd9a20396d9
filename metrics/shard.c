/*
 * Metrics shards (shard.h): one block per slot, laid out as the shard
 * itself, then its per-server counters, then its per-route counters.
 */
#include "metrics/shard.h"

size_t sy__shard_bytes(const struct sy__shard_dims *d)
{
	return sizeof(struct sy__shard) +
	       ((size_t)d->max_servers + d->max_routes) * sizeof(struct sy__sctr);
}

struct sy__shard *sy__shard_init(void *mem, const struct sy__shard_dims *d)
{
	struct sy__shard *sh = mem;

	/* The memory is zeroed: every counter starts at 0. */
	sh->server = (struct sy__sctr *)(sh + 1);
	sh->route = sh->server + d->max_servers;
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
