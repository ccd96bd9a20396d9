/*
 * Metrics shards (shard.h): one allocation per slot from the engine's
 * allocator, laid out as the shard itself, then its per-server counters,
 * then its per-route counters.
 */
#include "core/engine_internal.h"

/* Bytes of one shard with its counter arrays. */
static size_t shard_bytes(const struct sy_engine *eng)
{
	return sizeof(struct sy__shard) +
	       ((size_t)eng->cfg.max_servers + eng->cfg.max_routes) *
	       sizeof(struct sy__sctr);
}

/* An empty shard for one slot. Control paths (slot set-up); may block on
 * allocation. @return the shard, or NULL for -ENOMEM. */
struct sy__shard *sy__shard_create(struct sy_engine *eng)
{
	struct sy__shard *sh = sy__mem_alloc(eng, shard_bytes(eng));

	/* sy__mem_alloc() zeroes: every counter starts at 0. */
	if (!sh)
		return NULL;
	sh->server = (struct sy__sctr *)(sh + 1);
	sh->route = sh->server + eng->cfg.max_servers;
	for (unsigned k = 0; k < SY_HIST_KINDS; k++)
		sy__hist_init(&sh->hist[k]);
	sh->sample_every = eng->cfg.latency_sample;
	sh->sample_left = sh->sample_every;
	return sh;
}

/* Free @p sh (NULL is ignored). Nobody may read or write it any more: the
 * collector has stopped and its slot's thread is gone. */
void sy__shard_destroy(struct sy_engine *eng, struct sy__shard *sh)
{
	if (sh)
		sy__mem_free(eng, sh, shard_bytes(eng));
}
