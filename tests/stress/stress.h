/*
 * The stress machinery that every stress scenario shares (stress.c), and the
 * description a scenario gives of itself (struct stress_scenario).
 *
 * A scenario is a plain executable, not a Criterion suite, so that it also
 * runs under ThreadSanitizer; its main() is one call to stress_main(). The
 * machinery builds the engine, its servers and routes, and runs:
 *  - producers that send unique ids (sy_msg_send(), sy_msg_send_burst() or both),
 *    retry refusals the scenario expects a bounded number of times, and
 *    mark in a bitmap the ids the engine accepted;
 *  - one handler for every server: it checks the message (id, tag, size, a
 *    canary over the payload, attempts), may spin or fail as its server
 *    says, and marks the id delivered (a second mark is a duplicate);
 *  - optionally a churn thread that adds, removes and replaces servers and
 *    routes; a watcher that reads the accounting over and over and drains
 *    the dead letter queue; snapshot readers and a refresher.
 * After sy_engine_stop() it drains the dead letter queue and checks that
 * nothing was lost, nothing duplicated, nothing ran on a removed server, and
 * that the accounting and the counters agree exactly with what the threads
 * counted themselves (stress.c lists every check).
 *
 * Usage of a scenario: NAME [scale], scale > 0 (default 1) multiplies the
 * number of messages (or of churn operations, see struct stress_churn).
 * Exit status 0 on success, 1 on failure; one summary line on stdout, each
 * failure on stderr. Every wait is bounded; every thread is joined.
 */
#ifndef SY_TESTS_STRESS_H
#define SY_TESTS_STRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard.h"

#define STRESS_MAX_SERVERS 16u
#define STRESS_MAX_ROUTES 8u
#define STRESS_MAX_PRODUCERS 4u
#define STRESS_MAX_READERS 4u
#define STRESS_MAX_BURST 16u
/* A server spec's worker: a random one (or none: the engine picks) each
 * time the server is added. */
#define STRESS_ANY_WORKER (-2)

/** Refusals of a send, as a set. */
enum stress_refusal {
	STRESS_NOROUTE = 1u << 0,      /* -ENOENT */
	STRESS_UNREACHABLE = 1u << 1,  /* -EHOSTUNREACH */
	STRESS_FULL = 1u << 2,         /* -EAGAIN */
	STRESS_BACKPRESSURE = 1u << 3, /* -ENOBUFS */
};

/** How a producer thread attaches to the engine. */
enum stress_attach {
	STRESS_ATTACH,      /* sy_producer_attach() first, detach at the end */
	STRESS_LAZY,        /* never: its first send attaches it */
	STRESS_REATTACH,    /* as STRESS_ATTACH, and detaches and attaches
			     * again every 40000 sends */
};

/** Which send calls a producer makes. */
enum stress_sends {
	STRESS_SINGLE,      /* sy_msg_send() */
	STRESS_BURSTS,      /* sy_msg_send_burst() of 1 to burst_max messages */
	STRESS_MIXED,       /* every fifth id starts a burst of burst_max,
			     * the others go with sy_msg_send() */
};

struct stress_producer {
	enum stress_attach attach;
	enum stress_sends sends;
};

struct stress_server {
	const char *name;
	int worker;                 /* STRESS_ANY_WORKER, -1 (the engine's
				     * choice) or a worker index */
	unsigned fail_per_mille;    /* handler runs that fail, at random */
	unsigned slow_ns;           /* busy time per handler run */
	bool churn;                 /* the churn thread may remove it */
};

struct stress_route {
	const char *name;
	struct sy_route_opts opts;  /* all but servers and n_servers */
	unsigned weight;            /* share of the producers' sends */
	/* Its servers, by index into the scenario's servers; those removed
	 * at the time are left out. n_members 0: 1 to max_members present
	 * servers picked at random each time it is built. */
	unsigned n_members;
	unsigned members[STRESS_MAX_SERVERS];
	unsigned max_members;
};

/** What the churn thread does, by weight. */
enum stress_op {
	STRESS_ADD_SERVER,      /* add a removed server back */
	STRESS_REMOVE_SERVER,   /* remove a churn server */
	STRESS_CYCLE_SERVER,    /* remove a churn server, rebuild every
				 * route, add it back, rebuild them again */
	STRESS_REPLACE_ROUTE,   /* rebuild a route (sy_route_replace()) */
	STRESS_REMOVE_ROUTE,    /* senders to its id get -ENOENT */
	STRESS_ADD_ROUTE,       /* a removed route back, under a new id */
	STRESS_FIND,            /* names and ids agree with the churn's view */
	STRESS_OPS
};

struct stress_churn {
	unsigned weight[STRESS_OPS];  /* all 0: no churn thread */
	/* Operations at scale 1. 0: until the producers are done; else the
	 * run ends after ops * scale operations (at least 50), and the
	 * producers' ids are only a bound (not scaled). */
	uint64_t ops;
	unsigned pause_us;            /* between operations; 0: a yield */
};

struct stress_scenario {
	const char *name;
	/* Engine configuration; the machinery sets pin (none), idle (sleep)
	 * and the callbacks. */
	struct sy_config engine;
	unsigned n_servers;
	/* NULL: n_servers churn servers "s0", "s1"... on any worker. */
	const struct stress_server *servers;
	unsigned start_servers;       /* present at the start; 0: all */
	unsigned n_routes;
	struct stress_route routes[STRESS_MAX_ROUTES];
	unsigned n_producers;
	struct stress_producer producers[STRESS_MAX_PRODUCERS];
	uint64_t messages;            /* ids at scale 1, all producers */
	unsigned payload_min, payload_max; /* bytes, >= 8: id, then canary */
	unsigned expired_per_mille;   /* messages whose deadline has passed */
	unsigned burst_max;           /* <= STRESS_MAX_BURST */
	unsigned refusals;            /* enum stress_refusal: expected */
	unsigned retried;             /* of those, the ones sent again */
	unsigned send_tries;          /* sends of one message at most */
	bool no_dead_letters;         /* every accepted message is delivered */
	bool track_backpressure;      /* check the on_backpressure calls */
	unsigned drain_ms;            /* watcher: DLQ drains; 0: no watcher */
	struct stress_churn churn;
	unsigned readers;             /* snapshot readers */
	unsigned refresh_ms;          /* sy_metrics_refresh() period; 0: none */
	uint64_t linger_snapshots;    /* readers go on until they checked this
				       * many, after the producers are done */
	/* More checks of every snapshot a reader takes; may be NULL. */
	void (*check_snapshot)(const sy_snapshot *snap);
};

/** Run @p sc with the arguments of main(); returns main()'s status. */
int stress_main(const struct stress_scenario *sc, int argc, char **argv);

/** Record a failure (any thread): print it, fail the run, stop the threads. */
void stress_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
