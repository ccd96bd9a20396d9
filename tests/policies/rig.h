/*
 * Set-up shared by the policy tests: an engine's servers that count their
 * messages, a sender that keeps fewer messages in flight than a ring has
 * entries (so no send is refused and each message is picked exactly once),
 * bounded waits, and the chi-square statistic with its critical values.
 *
 * Every helper runs on the test thread and may fail the test through
 * Criterion's assertions; every wait gives up after RIG_WAIT_MS. Handlers
 * never assert.
 */
#ifndef SY_TESTS_POLICIES_RIG_H
#define SY_TESTS_POLICIES_RIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define RIG_WAIT_MS 60000u
#define RIG_MAX_SERVERS 16u
#define RIG_BATCH 256u
/* Messages in flight at most; with RIG_BATCH, below a ring's 1024 entries. */
#define RIG_IN_FLIGHT_MAX 512u

/*
 * Chi-square critical values at p = 0.001 by degrees of freedom, from the
 * standard table (NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.4).
 */
#define RIG_CHI2_P001_DF1 10.828
#define RIG_CHI2_P001_DF2 13.816
#define RIG_CHI2_P001_DF3 16.266
#define RIG_CHI2_P001_DF4 18.467
#define RIG_CHI2_P001_DF9 27.877

/** A server that counts its messages, and the fleet's total. */
struct rig_server {
	_Atomic uint64_t got;
	_Atomic uint64_t *delivered; /* the fleet's, all servers */
};

/** An engine and @c n counting servers spread over its two workers. */
struct rig_fleet {
	sy_engine *eng;
	uint32_t route;
	unsigned n;
	uint64_t sent;
	_Atomic uint64_t delivered;
	uint32_t ids[RIG_MAX_SERVERS];
	struct rig_server servers[RIG_MAX_SERVERS];
};

/** The handler of a struct rig_server (its context): counts, succeeds. */
int rig_count_handler(sy_engine *eng, sy_msg *msg, void *ctx);

/** Labels message number @p i of a send (its tag, its key); may be NULL. */
typedef void rig_label_fn(sy_msg *msg, uint64_t i, void *ctx);

/** Wait until at most @p in_flight of @p sent messages are not handled. */
void rig_wait_handled(uint64_t sent, _Atomic uint64_t *delivered,
		      uint64_t in_flight);

/**
 * Send @p total messages on @p route in bursts, none refused, each labelled
 * by @p label; adds them to *sent. @p delivered counts the handled ones.
 */
void rig_send(sy_engine *eng, uint32_t route, uint64_t *sent,
	      _Atomic uint64_t *delivered, uint64_t total, rig_label_fn *label,
	      void *ctx);

/** Chi-square of @p n observed counts against their expected values. */
double rig_chi_square(const uint64_t *observed, const double *expected,
		      unsigned n);

/**
 * Add @p n counting servers, named with @p digits digits, to the stopped
 * engine @p eng, on its workers in turn; no route, not started.
 */
void rig_fleet_init(struct rig_fleet *f, sy_engine *eng, unsigned n,
		    unsigned digits);

/** rig_send() on the fleet's route, unlabelled. */
void rig_fleet_send(struct rig_fleet *f, uint64_t total);

/** Wait until at most @p in_flight of the fleet's sent messages are not handled. */
void rig_fleet_wait(struct rig_fleet *f, uint64_t in_flight);

/** Server @p i's count. */
uint64_t rig_fleet_got(struct rig_fleet *f, unsigned i);

/** Chi-square of the servers' counts against a uniform share of @p total. */
double rig_fleet_chi_square_uniform(struct rig_fleet *f, uint64_t total);

#endif
