/*
 * weighted: smooth weighted round robin, as nginx does it, computed once.
 *
 * create() runs nginx's algorithm for one full period and keeps the
 * sequence of server indexes in a read-only table: at each step every
 * server's current weight grows by its weight, the server with the largest
 * current weight (the first of equals) is picked and its current weight
 * drops by the sum of the weights. After sum steps every current weight is
 * back to zero, so the sequence repeats: in every window of sum consecutive
 * picks of one producer, server i is picked exactly weight_i times, spread
 * out (weights 5,1,1 give a a b a c a a). Weights with a common divisor give
 * the same sequence with a shorter period, so the table is built for the
 * weights divided by their greatest common divisor.
 *
 * Cost: pick() is O(1), one load from the table at the producer's cursor
 * (its private word) and one store to that word. create() takes
 * O(period * n) time and 2 bytes per step of the period; the sum of the
 * weights is limited to 1 << 20 (else -EINVAL), where 256 servers take
 * about 0.3 s of the control thread.
 *
 * Threads: the table is written only by create(), before the route is
 * published; pick() runs on every sending thread at once and writes only the
 * producer-private word. New weights come with a new route object
 * (sy_route_replace()), hence a new table; a producer's cursor carries over
 * and restarts at 0 when it lies beyond the new period.
 */
#include <errno.h>
#include <stdlib.h>

#include "policies/policies_internal.h"

#define WEIGHTED_MAX_SUM (1u << 20)
#define WEIGHTED_MAX_SERVERS 65536u

struct weighted {
	uint32_t period;
	uint16_t seq[];
};

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Fill w->seq with one period of nginx's smooth WRR over @p weight. Two
 * passes a step, the first of which the compiler vectorizes: raise every
 * current weight and find the largest; then pick the first server there.
 */
static void weighted_fill(struct weighted *w, const int64_t *weight,
			  int64_t *current, unsigned n)
{
	for (uint32_t step = 0; step < w->period; step++) {
		int64_t top = INT64_MIN;
		unsigned best = 0;

		for (unsigned i = 0; i < n; i++) {
			current[i] += weight[i];
			top = current[i] > top ? current[i] : top;
		}
		while (current[best] != top)
			best++;
		current[best] -= w->period;
		w->seq[step] = (uint16_t)best;
	}
}

static int weighted_create(const struct sy_policy_route *route, void **state)
{
	const char *const known[] = { NULL };
	int64_t *weight = NULL, *current = NULL;
	uint32_t g = 0;
	struct weighted *w = NULL;
	uint64_t sum = 0;
	int rc = -ENOMEM;

	if (sy__params_check(route->params, known) != 0 ||
	    route->n > WEIGHTED_MAX_SERVERS)
		return -EINVAL;
	for (unsigned i = 0; i < route->n; i++) {
		if (route->servers[i].weight == 0)
			return -EINVAL;
		sum += route->servers[i].weight;
		g = gcd_u32(g, route->servers[i].weight);
	}
	if (sum > WEIGHTED_MAX_SUM)
		return -EINVAL;
	weight = malloc(route->n * sizeof(*weight));
	current = calloc(route->n, sizeof(*current));
	w = malloc(sizeof(*w) + (size_t)(sum / g) * sizeof(w->seq[0]));
	if (!weight || !current || !w)
		goto out_free;
	for (unsigned i = 0; i < route->n; i++)
		weight[i] = route->servers[i].weight / g;
	w->period = (uint32_t)(sum / g);
	weighted_fill(w, weight, current, route->n);
	*state = w;
	w = NULL;
	rc = 0;
out_free:
	free(w);
	free(current);
	free(weight);
	return rc;
}

static void weighted_destroy(void *state)
{
	free(state);
}

static int weighted_pick(const void *state, struct sy_pick *p)
{
	const struct weighted *w = state;
	uint64_t *cursor = sy_pick_word(p);
	uint64_t cur = *cursor;

	if (cur >= w->period)
		cur = 0;
	*cursor = cur + 1;
	return w->seq[cur];
}

const struct sy_policy sy__policy_weighted = {
	.name = "weighted",
	.create = weighted_create,
	.destroy = weighted_destroy,
	.pick = weighted_pick,
};
