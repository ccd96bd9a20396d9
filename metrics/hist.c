/* PLACEHOLDER: replaced by the histogram implementation. */
#include "metrics/hist.h"
void sy__hist_init(struct sy__hist *h) { memset(h, 0, sizeof(*h)); atomic_store(&h->min, UINT64_MAX); }
