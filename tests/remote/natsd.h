/*
 * nats-server processes for the remote tests: started on 127.0.0.1 on free
 * ports, stopped (or killed) by the test that started them, and helper
 * processes (remote_peer) that run an engine of their own.
 */
#ifndef SY_TESTS_REMOTE_NATSD_H
#define SY_TESTS_REMOTE_NATSD_H

#include <stdbool.h>
#include <sys/types.h>

struct t_natsd {
	pid_t pid;
	unsigned port;             /* clients */
	unsigned cport;            /* cluster routes, 0: no cluster */
	char url[64];              /* nats://127.0.0.1:port */
	char conf[128];            /* a config file written for it, or "" */
};

/** A free TCP port on 127.0.0.1 (bound, read and released). */
unsigned t_free_port(void);

/**
 * Start nats-server on a free port; @p conf_text, if not NULL, is written to
 * a config file it reads (e.g. "max_payload: 1024"). Waits until it accepts
 * connections. @return 0; -1 (the test should fail).
 */
int t_natsd_start(struct t_natsd *d, const char *conf_text);

/**
 * Start node @p i of an @p n-node cluster whose cluster ports are
 * cports[0..n), routing to the others. Waits until it accepts clients.
 */
int t_natsd_start_node(struct t_natsd *d, const unsigned *cports, unsigned n,
		       unsigned i);

/** SIGTERM and reap it (SIGKILL after 5 s). */
void t_natsd_stop(struct t_natsd *d);

/** SIGKILL and reap it. */
void t_natsd_kill(struct t_natsd *d);

/** Wait until a TCP connect to 127.0.0.1:@p port succeeds, up to @p max_ms. */
bool t_port_open(unsigned port, unsigned max_ms);

/**
 * Wait until nothing is in flight on @p eng, retries included (up to 20 s),
 * then stop it: a stop dead-letters the retries still waiting.
 */
struct sy_engine;
void t_quiet_stop(struct sy_engine *eng);

/* A helper process (remote_peer) and the pipe its "ready" line comes on. */
struct t_peer {
	pid_t pid;
	int out;                   /* read end of its stdout */
};

/**
 * Run remote_peer (path in $SY_REMOTE_PEER) with @p argv (NULL-terminated,
 * argv[0] ignored) and wait, up to 10 s, for it to print "ready".
 * @return 0; -1.
 */
int t_peer_start(struct t_peer *p, char *const argv[]);

/** SIGTERM (a clean stop: the peer drains) and reap it; its exit status. */
int t_peer_stop(struct t_peer *p);

/** SIGKILL and reap it. */
void t_peer_kill(struct t_peer *p);

#endif
