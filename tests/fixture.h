/*
 * Set-ups and checks shared by the Criterion suites: engines, servers and
 * routes that fail the test when they cannot be made, counting servers,
 * messages that carry an id, producer threads, bounded waits, and the
 * accounting checks.
 *
 * A function that asserts says so ("fails the test"); call it from the
 * test thread only. The others (handlers, producer threads, message
 * builders) never call Criterion and may run on any thread. Every wait
 * gives up after a bound; nothing here asserts how long anything took.
 * The helpers that the stress programs share too are in common.h.
 */
#ifndef SY_TESTS_FIXTURE_H
#define SY_TESTS_FIXTURE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard.h"
#include "tests/common.h"

/* Bound of every wait: generous enough for a loaded 2-CPU machine. */
#define T_WAIT_MS 60000u
/* Bound of the wait for counts that lag what a test saw by a moment. */
#define T_SETTLE_MS 10000u

/* ------------------------------------------------------------------ */
/* Engines, servers, routes                                            */
/* ------------------------------------------------------------------ */

/** sy_engine_create() from @p cfg; fails the test if it cannot. */
sy_engine *t_create(const struct sy_config *cfg);

/** t_config() and t_create(): @p workers workers, on the fake @p clock
 * (set to @p start_ns) unless it is NULL. Fails the test. */
sy_engine *t_engine_at(unsigned workers, struct t_clock *clock,
		       uint64_t start_ns);

/** Add server @p name on worker @p worker (-1: the engine's choice);
 * returns its id. Fails the test. */
uint32_t t_add_server(sy_engine *eng, const char *name, sy_handler_fn fn,
		      void *ctx, int worker);

/** Add @p n servers "server-<i>" (i in @p digits digits), server i on
 * worker i % workers with context @p ctxs + i * @p size; ids in @p ids.
 * Fails the test. */
void t_add_servers(sy_engine *eng, unsigned n, unsigned digits,
		   sy_handler_fn fn, void *ctxs, size_t size, uint32_t *ids);

/** Add route @p name over @p ids[0..n) with the options @p ro (servers
 * and n_servers are set here; policy NULL: "direct" for one server,
 * "round_robin" for more); returns its id. Fails the test. */
uint32_t t_add_route(sy_engine *eng, const char *name, struct sy_route_opts ro,
		     const uint32_t *ids, unsigned n);

/** A server with @p fn on worker @p worker and a direct route to it, both
 * named @p name; returns the route, the server in *server_id where not
 * NULL. Fails the test. */
uint32_t t_direct(sy_engine *eng, const char *name, sy_handler_fn fn,
		  void *ctx, int worker, uint32_t *server_id);

/* ------------------------------------------------------------------ */
/* Messages that carry an id                                           */
/* ------------------------------------------------------------------ */

/* Tag bits the counting server acts on; the rest of the tag is the id. */
#define T_HOLD (1ull << 63)    /* the handler waits on its gate first */
#define T_REPLY (1ull << 62)   /* the handler answers in place */
#define T_ID(tag) ((tag) & ~(T_HOLD | T_REPLY))

/** A message whose tag and 8-byte payload are @p tag, or NULL. Any thread. */
sy_msg *t_msg_try(sy_engine *eng, uint64_t tag);

/** t_msg_try(); fails the test when there is no message. */
sy_msg *t_msg(sy_engine *eng, uint64_t tag);

/** The first 8 bytes of @p m's payload. Any thread. */
uint64_t t_msg_value(sy_msg *m);

/** Send messages tagged @p first .. @p first + n - 1, each retried while a
 * full ring refuses it; every one must be accepted. Fails the test. */
void t_send_tags(sy_engine *eng, uint32_t route, uint64_t first, unsigned n);

/* ------------------------------------------------------------------ */
/* A counting server                                                   */
/* ------------------------------------------------------------------ */

#define T_MAX_IDS 4096u
#define T_FAIL_ALWAYS UINT_MAX

/*
 * The context of t_server_handler(). Zero-initialize, then set
 * fail_before. A run fails (returns -EIO) while failing is set, or when
 * its attempt is below fail_before; otherwise a T_REPLY message is
 * answered in place. A T_HOLD message first waits (bounded) until the
 * test releases it: held counts the blockers that started, the test
 * raises released to let them finish, in order.
 */
struct t_server {
	unsigned fail_before;       /* T_FAIL_ALWAYS: every run fails */
	_Atomic bool failing;
	_Atomic uint64_t held;
	_Atomic uint64_t released;
	_Atomic uint64_t handled;   /* runs; counted last */
	_Atomic uint64_t delivered; /* runs that succeeded */
	_Atomic uint64_t failed;    /* runs that returned an error */
	_Atomic uint64_t replied;   /* sy_msg_reply() calls that succeeded */
	_Atomic uint64_t reply_failed;
	_Atomic pthread_t thread;   /* the thread of the last run */
	_Atomic uint64_t by_attempt[8]; /* runs by sy_msg_attempts(), 7+ last */
	_Atomic uint32_t runs[T_MAX_IDS];    /* by id */
	_Atomic uint32_t attempt[T_MAX_IDS]; /* sy_msg_attempts() of the last run */
};

/** The handler of a struct t_server. Any worker. */
int t_server_handler(sy_engine *eng, sy_msg *msg, void *ctx);

/** Add @p s as server @p name on @p worker; returns its id. Fails the test. */
uint32_t t_add_counter(sy_engine *eng, const char *name, struct t_server *s,
		       int worker);

/** Send a blocker with id @p id to @p route and wait until @p s's handler
 * holds it. Fails the test. */
void t_hold(sy_engine *eng, uint32_t route, struct t_server *s, uint64_t id);

/** Every id in [first, first + n) ran exactly once on @p s. */
void t_expect_each_once(struct t_server *s, uint64_t first, uint64_t n);

/* ------------------------------------------------------------------ */
/* A ledger of the ids handled                                         */
/* ------------------------------------------------------------------ */

/* Ids 0 .. n - 1; shared by the handlers of several servers. */
struct t_ledger {
	uint64_t n;
	_Atomic uint64_t *bits;
	_Atomic uint64_t got;       /* handler runs, all servers */
	_Atomic uint64_t wrong;     /* duplicates and ids out of range */
};

/* The context of t_ledger_handler(): the id is the payload's first 8
 * bytes. */
struct t_ledger_server {
	struct t_ledger *ledger;
	_Atomic uint64_t got;       /* this server's runs */
	unsigned spin;              /* busy work per message */
};

/** An empty ledger of @p n ids. Fails the test. */
void t_ledger_init(struct t_ledger *l, uint64_t n);
void t_ledger_fini(struct t_ledger *l);
/** Whether @p id was handled. Any thread. */
bool t_ledger_has(const struct t_ledger *l, uint64_t id);
/** How many ids were never handled. Any thread. */
uint64_t t_ledger_missing(const struct t_ledger *l);
/** Marks the message's id in its server's ledger. Any worker. */
int t_ledger_handler(sy_engine *eng, sy_msg *msg, void *ctx);

/* ------------------------------------------------------------------ */
/* Producer threads of numbered notes                                  */
/* ------------------------------------------------------------------ */

/* The payload of a numbered message. */
struct t_note {
	uint32_t producer;
	uint32_t key;               /* the index of its route, or the test's */
	uint64_t seq;
};

/* A producer thread; the main thread reads the results after joining it. */
struct t_producer {
	pthread_t thread;
	sy_engine *eng;
	const uint32_t *routes;     /* note seq goes to routes[seq % n_routes] */
	unsigned n_routes;
	uint32_t id;
	uint64_t quota;             /* notes to send */
	uint64_t accepted;
	uint64_t sum;               /* of the numbers accepted */
	int error;                  /* the error that stopped it, or 0 */
};

/** The tag of note @p seq of producer @p producer. */
uint64_t t_note_tag(uint32_t producer, uint64_t seq);

/** A message holding @p n, tagged t_note_tag(), or NULL. Any thread. */
sy_msg *t_note_msg(sy_engine *eng, const struct t_note *n);

/** @p n producers ids 0 .. n - 1 over @p routes that share @p total notes. */
void t_producers_init(struct t_producer *ps, unsigned n, sy_engine *eng,
		      const uint32_t *routes, unsigned n_routes, uint64_t total);

/** Run @p fn on a thread per producer and join them all. Fails the test
 * when a thread cannot start. */
void t_producers_run(struct t_producer *ps, unsigned n, void *(*fn)(void *));

/** A producer's thread: notes 0 .. quota - 1, one sy_msg_send() each, retried
 * while a full ring refuses it (bounded); stops at the first error. */
void *t_produce_notes(void *arg);

/* ------------------------------------------------------------------ */
/* Accounting and dead letters                                         */
/* ------------------------------------------------------------------ */

/** Wait until the dead letter queue holds @p want entries. */
bool t_wait_dead_letters(sy_engine *eng, size_t want);

/** The accounting counts @p accepted, @p delivered, and @p dead ended in
 * the dead letter queue (evicted or not), none in flight: checked once
 * nothing is in flight, or after T_SETTLE_MS. */
void t_expect_accounting(sy_engine *eng, uint64_t accepted, uint64_t delivered,
			 uint64_t dead);

/** sy_engine_stats() counts @p requests, @p received replies handed to
 * their requesters and @p dropped replies. */
void t_expect_replies(sy_engine *eng, uint64_t requests, uint64_t received,
		      uint64_t dropped);

/** The accounting balances: the reasons add up, accepted = delivered +
 * dead-lettered + evicted, none in flight. */
void t_expect_balanced(sy_engine *eng);

/* What a drain of the dead letter queue handed over. */
struct t_letters {
	unsigned n;
	unsigned by_reason[SY_DL_REASONS];
	unsigned by_attempts[8];    /* 7+ last */
	unsigned bad_id;            /* ids out of range or seen twice */
	uint8_t seen[T_MAX_IDS];
	struct sy_dead_letter dl[16];   /* the first 16 */
	uint64_t value[16];             /* and their payloads' first 8 bytes */
};

/** Drain the whole queue into @p l (freeing the messages); no id may come
 * twice. Fails the test. */
void t_drain_letters(sy_engine *eng, struct t_letters *l);

#endif
