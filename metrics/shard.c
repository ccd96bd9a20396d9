/* PLACEHOLDER: replaced by the shard implementation. */
#include <stdlib.h>
#include "core/engine_internal.h"
struct sy__shard *sy__shard_create(struct sy_engine *eng) { (void)eng; return NULL; }
void sy__shard_destroy(struct sy_engine *eng, struct sy__shard *sh) { (void)eng; free(sh); }
