/* PLACEHOLDER: replaced by the breaker implementation. */
#include <errno.h>
#include "core/breaker.h"
#include "core/engine_internal.h"

int sy__breaker_create(struct sy_engine *eng, const struct sy_breaker_opts *o,
		       struct sy__breaker **out)
{ (void)eng; (void)o; *out = NULL; return -ENOTSUP; }
void sy__breaker_destroy(struct sy_engine *eng, struct sy__breaker *b) { (void)eng; (void)b; }
bool sy__breaker_admit(struct sy__server *srv) { (void)srv; return true; }
bool sy__breaker_would_admit(const struct sy__server *srv) { (void)srv; return true; }
void sy__breaker_record(struct sy__server *srv, bool ok) { (void)srv; (void)ok; }
enum sy_breaker_state sy__breaker_get(const struct sy__breaker *b) { (void)b; return SY_BREAKER_CLOSED; }
int sy__breaker_force(struct sy_engine *eng, struct sy__server *srv, enum sy_breaker_state to)
{ (void)eng; (void)srv; (void)to; return -ENOTSUP; }
