/* PLACEHOLDER: replaced by the health probe implementation. */
#include <errno.h>
#include "core/health.h"
#include "core/engine_internal.h"

int sy__health_attach(struct sy_engine *eng, struct sy__server *srv,
		      const struct sy_health_opts *o)
{ (void)eng; (void)srv; (void)o; return -ENOTSUP; }
void sy__health_detach(struct sy_engine *eng, struct sy__server *srv) { (void)eng; (void)srv; }
void sy__health_shutdown(struct sy_engine *eng) { (void)eng; }
