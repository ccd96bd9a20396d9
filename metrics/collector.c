/* PLACEHOLDER */
#include "metrics/metrics.h"
int sy__metrics_init(struct sy_engine *eng) { (void)eng; return 0; }
int sy__metrics_start(struct sy_engine *eng) { (void)eng; return 0; }
void sy__metrics_stop(struct sy_engine *eng) { (void)eng; }
void sy__metrics_destroy(struct sy_engine *eng) { (void)eng; }
