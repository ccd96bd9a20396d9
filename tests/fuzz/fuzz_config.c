/*
 * Fuzz target: configuration validation, sy_engine_create() on a fuzzed
 * struct sy_config and a fuzzed environment.
 *
 * Each field takes an edge of its valid range (0, the limits, one past
 * them) or a raw value; the environment comes from env_input.h. Checked:
 *  - sy_engine_create() agrees with sy__config_resolve(): the same error
 *    and message (sy_last_error()), or an engine whose workers and CPUs
 *    are the resolved ones (created only when it stays small in memory);
 *  - an explicit field wins: garbage in the variable it overrides changes
 *    nothing, not even the message;
 *  - every resolved size is the field, or its default, and in its range;
 *  - with the allocator hook, every byte the engine allocates is freed by
 *    sy_engine_destroy(), with the size and alignment it was allocated with.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_internal.h"
#include "env_input.h"
#include "fuzz.h"

#define CPUS_MAX 64

#define N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

static const unsigned workers_edges[] = { 0, 1, 2, 3, 256, 257, UINT32_MAX };
static const unsigned pin_edges[] = { 0, 1, 2, 3, 4, 0xffffffffu };
static const unsigned display_edges[] = { 0, 1, 2, 0xffffffffu, 0xfffffffeu };
static const unsigned ring_edges[] = { 0, 15, 16, 17, 64, 1024, 4096,
				       1u << 20, (1u << 20) + 1, 1u << 31 };
static const unsigned burst_edges[] = { 0, 1, 32, 1024, 1025 };
static const unsigned producers_edges[] = { 0, 1, 64, 4096, 4097 };
static const unsigned servers_edges[] = { 0, 1, 256, 65535, 65536 };
static const unsigned routes_edges[] = { 0, 1, 1024, 1u << 20, (1u << 20) + 1 };
static const unsigned dl_edges[] = { 0, 1, 4096, 1u << 24, (1u << 24) + 1 };
static const unsigned metrics_edges[] = { 0, 1, 2, 0xffffffffu, 0xfffffffeu };
static const unsigned interval_edges[] = { 0, 1, 100, 60000, 60001,
					   3600000, 3600001 };
static const unsigned sample_edges[] = { 0, 1, 64, 1u << 30, (1u << 30) + 1 };
static const unsigned retention_edges[] = { 0, 1, 99, 100, 60000,
					    86400000, 86400001 };
static const char *const cpu_words[] = {
	"0", "1", "0-1", "0,1", "1-0", "", "0-1023:7", "1024", "none", "x",
};

/* ---- an allocator that keeps count ---- */

struct counting {
	size_t bytes, blocks;
};

/* Block layout: padding, then the size and the alignment just before the
 * pointer handed out. */
static void *count_alloc(size_t size, size_t align, void *ctx)
{
	struct counting *c = ctx;
	size_t head = align < 16 ? 16 : align;
	unsigned char *base;

	fuzz_check(align && !(align & (align - 1)),
		   "allocation aligned to %zu, not a power of two", align);
	if (posix_memalign((void **)&base, head, head + size) != 0)
		return NULL;
	((size_t *)(base + head))[-1] = size;
	((size_t *)(base + head))[-2] = head;
	c->bytes += size;
	c->blocks++;
	return base + head;
}

static void count_free(void *ptr, size_t size, void *ctx)
{
	struct counting *c = ctx;
	size_t head;

	if (!ptr)
		return;
	fuzz_check(((size_t *)ptr)[-1] == size,
		   "freed %zu bytes of a block of %zu", size,
		   ((size_t *)ptr)[-1]);
	head = ((size_t *)ptr)[-2];
	c->bytes -= size;
	c->blocks--;
	free((unsigned char *)ptr - head);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	env_input_clear();
	return 0;
}

/* Small enough to create: rings grow with workers squared. */
static bool small(const struct sy__config *c)
{
	return c->workers <= 4 && c->ring_size <= 4096 &&
	       c->max_servers <= 4096 && c->max_routes <= 4096 &&
	       c->max_producers <= 4096;
}

static void read_config(struct fuzz_in *in, struct sy_config *cfg,
			char *cpus, char *collector)
{
	uint8_t strings = fuzz_u8(in);

	sy_config_init(cfg);
	cfg->workers = fuzz_edge(in, workers_edges, N(workers_edges));
	cfg->pin = (enum sy_pin)fuzz_edge(in, pin_edges, N(pin_edges));
	cfg->idle = (enum sy_idle)fuzz_edge(in, pin_edges, N(pin_edges));
	/* Shifted down by one in unsigned arithmetic: the edges become -1
	 * and its neighbours, a raw value anything, with no overflow. */
	cfg->display_affinity = (int)(fuzz_edge(in, display_edges,
						N(display_edges)) - 1u);
	cfg->ring_size = fuzz_edge(in, ring_edges, N(ring_edges));
	cfg->burst = fuzz_edge(in, burst_edges, N(burst_edges));
	cfg->max_producers = fuzz_edge(in, producers_edges, N(producers_edges));
	cfg->max_servers = fuzz_edge(in, servers_edges, N(servers_edges));
	cfg->max_routes = fuzz_edge(in, routes_edges, N(routes_edges));
	cfg->max_dead_letters = fuzz_edge(in, dl_edges, N(dl_edges));
	cfg->metrics = (int)(fuzz_edge(in, metrics_edges,
				       N(metrics_edges)) - 1u);
	cfg->metrics_interval_ms = fuzz_edge(in, interval_edges,
					     N(interval_edges));
	cfg->latency_sample = fuzz_edge(in, sample_edges, N(sample_edges));
	cfg->retention_ms = fuzz_edge(in, retention_edges,
				      N(retention_edges));
	cfg->seed = fuzz_uint(in, 8);
	if (strings & 1) {
		if (strings & 2)
			strcpy(cpus, cpu_words[fuzz_pick(in, N(cpu_words))]);
		else
			fuzz_str(in, cpus, CPUS_MAX);
		cfg->cpus = cpus;
	}
	if (strings & 4) {
		if (strings & 8)
			strcpy(collector, cpu_words[fuzz_pick(in, N(cpu_words))]);
		else
			fuzz_str(in, collector, CPUS_MAX);
		cfg->collector_cpu = collector;
	}
}

/* The variables that explicit fields of @p cfg override. */
static void overridden(const struct sy_config *cfg, bool *garbage)
{
	garbage[V_CPUS] = cfg->cpus != NULL;
	garbage[V_WORKERS] = cfg->workers != 0;
	garbage[V_PIN] = cfg->pin != SY_PIN_DEFAULT;
	garbage[V_IDLE] = cfg->idle != SY_IDLE_DEFAULT;
	garbage[V_DISPLAY] = cfg->display_affinity != -1;
	garbage[V_INTERVAL] = cfg->metrics_interval_ms != 0;
	garbage[V_COLLECTOR] = cfg->collector_cpu != NULL;
}

static void same_config(const struct sy__config *a, const struct sy__config *b)
{
	fuzz_check(a->workers == b->workers && a->pin == b->pin &&
		   a->idle == b->idle &&
		   a->display_affinity == b->display_affinity &&
		   a->metrics_interval_ms == b->metrics_interval_ms &&
		   a->collector_cpu == b->collector_cpu &&
		   memcmp(a->worker_cpu, b->worker_cpu,
			  sizeof(a->worker_cpu)) == 0,
		   "an overridden variable changed the configuration");
}

static void check_size(const char *what, unsigned field, unsigned got,
		       unsigned def, unsigned max)
{
	fuzz_check(got == (field ? field : def) && got >= 1 && got <= max,
		   "%s: field %u resolved to %u (default %u, max %u)", what,
		   field, got, def, max);
}

static void check_sizes(const struct sy_config *in, const struct sy__config *c)
{
	fuzz_check(c->ring_size >= 16 && c->ring_size <= (1u << 20) &&
		   !(c->ring_size & (c->ring_size - 1)) &&
		   c->ring_size == (in->ring_size ? in->ring_size : 1024),
		   "ring_size %u resolved to %u", in->ring_size, c->ring_size);
	check_size("burst", in->burst, c->burst, 32, 1024);
	check_size("max_producers", in->max_producers, c->max_producers, 64,
		   4096);
	check_size("max_servers", in->max_servers, c->max_servers, 256, 65535);
	check_size("max_routes", in->max_routes, c->max_routes, 1024, 1u << 20);
	check_size("max_dead_letters", in->max_dead_letters,
		   c->max_dead_letters, 4096, 1u << 24);
	check_size("latency_sample", in->latency_sample, c->latency_sample, 64,
		   1u << 30);
	/* Left at 0, the retention is a minute, or four intervals if longer. */
	check_size("retention_ms", in->retention_ms, c->retention_ms,
		   c->metrics_interval_ms > 15000 ? 4 * c->metrics_interval_ms :
		   60000, 86400000);
	fuzz_check(c->workers >= 1 && c->workers <= SY_MAX_WORKERS &&
		   (!in->workers || c->workers == in->workers),
		   "workers %u resolved to %u", in->workers, c->workers);
	fuzz_check(c->metrics == (in->metrics != -1), "metrics %d resolved to %d",
		   in->metrics, c->metrics);
	fuzz_check(c->retention_ms >= c->metrics_interval_ms,
		   "retention %u below the interval %u", c->retention_ms,
		   c->metrics_interval_ms);
	fuzz_check(c->seed == in->seed, "the seed changed");
}

static void check_engine(const struct sy_config *cfg,
			 const struct sy__config *want, struct counting *count)
{
	struct sy_accounting acc;
	sy_engine *eng = NULL;
	int rc;

	rc = sy_engine_create(cfg, &eng);
	fuzz_check(rc == 0, "resolved, yet sy_engine_create failed (%d): %s",
		   rc, sy_last_error());
	fuzz_check(sy_engine_workers(eng) == want->workers,
		   "%u workers, resolved %u", sy_engine_workers(eng),
		   want->workers);
	for (unsigned w = 0; w < want->workers; w++)
		fuzz_check(sy_engine_worker_cpu(eng, w) == want->worker_cpu[w],
			   "worker %u on CPU %d, resolved %d", w,
			   sy_engine_worker_cpu(eng, w), want->worker_cpu[w]);
	fuzz_check(sy_engine_worker_cpu(eng, want->workers) == -EINVAL,
		   "a worker past the last has a CPU");
	fuzz_check(sy_engine_accounting(eng, &acc) == 0 && acc.accepted == 0 &&
		   acc.in_flight == 0, "a new engine's accounting is not zero");
	sy_engine_destroy(eng);
	if (cfg->allocator)
		fuzz_check(count->bytes == 0 && count->blocks == 0,
			   "the engine left %zu bytes in %zu blocks allocated",
			   count->bytes, count->blocks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	char cpus[CPUS_MAX + 1], collector[CPUS_MAX + 1];
	char why[400], why2[400];
	struct counting count = { 0, 0 };
	struct sy_allocator alloc = {
		.alloc = count_alloc, .free = count_free, .ctx = &count,
	};
	struct sy__config out, out2;
	struct env_input env;
	struct sy_config cfg;
	bool garbage[V_COUNT];
	sy_engine *eng = NULL;
	int rc, rc2;

	read_config(&in, &cfg, cpus, collector);
	if (fuzz_u8(&in) & 1)
		cfg.allocator = &alloc;
	env_input_read(&in, &env);

	env_input_apply(&env, NULL);
	why[0] = '\0';
	rc = sy__config_resolve(&cfg, &out, why, sizeof(why));

	overridden(&cfg, garbage);
	env_input_apply(&env, garbage);
	why2[0] = '\0';
	rc2 = sy__config_resolve(&cfg, &out2, why2, sizeof(why2));
	fuzz_check(rc == rc2 && strcmp(why, why2) == 0,
		   "an overridden variable changed the outcome: %d \"%s\" / %d \"%s\"",
		   rc, why, rc2, why2);
	if (rc == 0)
		same_config(&out, &out2);

	env_input_apply(&env, NULL);
	if (rc != 0) {
		fuzz_check(rc == -EINVAL, "resolve returned %d", rc);
		rc2 = sy_engine_create(&cfg, &eng);
		fuzz_check(rc2 == rc &&
			   strncmp(sy_last_error(), "sy_engine_create: ", 18) == 0 &&
			   strcmp(sy_last_error() + 18, why) == 0,
			   "create: %d \"%s\", resolve: %d \"%s\"", rc2,
			   sy_last_error(), rc, why);
		fuzz_check(count.blocks == 0, "a refused create left memory");
	} else {
		check_sizes(&cfg, &out);
		if (small(&out))
			check_engine(&cfg, &out, &count);
	}
	env_input_clear();
	return 0;
}
