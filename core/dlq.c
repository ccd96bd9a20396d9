/* PLACEHOLDER: replaced by the dead letter queue implementation. */
#include <errno.h>
#include "core/dlq.h"
#include "core/engine_internal.h"

int sy__dlq_init(struct sy_engine *eng) { (void)eng; return 0; }
void sy__dlq_destroy(struct sy_engine *eng) { (void)eng; }
void sy__dead_letter(struct sy_engine *eng, struct sy__slot *self,
		     struct sy_msg *m, enum sy_dl_reason reason, uint32_t server)
{ (void)eng; (void)reason; (void)server; sy__msg_release(self, m); }
void sy__dlq_accounting(struct sy_engine *eng, struct sy_accounting *out) { (void)eng; (void)out; }
