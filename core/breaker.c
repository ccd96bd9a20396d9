/*
 * Circuit breakers.
 *
 * Design. A breaker's shared state is one 64-bit word: the state (low 8
 * bits), the half-open tokens left (next 24 bits) and a generation (high 32
 * bits) that every change of state bumps. Every change is a compare-and-swap
 * on that word, so exactly one thread makes each transition and no token is
 * handed out twice. Who changes what:
 *
 *   worker:    CLOSED -> OPEN (a trip), HALF_OPEN -> OPEN (a failed probe),
 *              HALF_OPEN -> CLOSED (enough successful probes);
 *   senders:   OPEN -> HALF_OPEN once open_ns has passed (the winner of the
 *              CAS takes the first token), HALF_OPEN tokens -1 per probe,
 *              and a new round of tokens when a half-open round has waited
 *              open_ns without a decision (probes may be lost: a full ring
 *              refuses the message after the pick, a deadline expires);
 *   operators: anything -> FORCED_OPEN, DISABLED or CLOSED.
 *
 * The counts (failures in a row, the sliding window of results, successful
 * probes) belong to the server's worker alone: only sy__breaker_record()
 * reads or writes them. When it sees a generation it has not seen, the state
 * changed under it (a trip, a probe round, an operator) and it starts its
 * counts afresh; so nobody else ever needs to clear them.
 *
 * Ordering guarantees:
 *  1. A sender that sees OPEN (acquire, B2) sees the opened_ns that the
 *     worker stored before the CAS that published OPEN (release, B1).
 *  2. A sender that finds probe_gen equal to the word's generation (acquire,
 *     B4) sees the probe_since stored before it (release, B3).
 *  3. SY_GATE_BREAKER in the server's gate is set exactly while the state
 *     blocks or limits calls (OPEN, HALF_OPEN, FORCED_OPEN) once the threads
 *     changing it have returned: each of them, after its CAS, sets the gate
 *     from the state it reads and reads the state again, until the
 *     generation is the one it acted on (see sync_gate()).
 *
 * Progress: sy__breaker_admit() and sy__breaker_record() are lock-free; a
 * closed breaker costs a sender nothing (its gate is 0 and admit is never
 * called). Results are attributed to the state in which they arrive: a
 * message admitted while closed whose result comes back half-open counts as
 * a probe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/breaker.h"
#include "core/compiler.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/route.h"
#include "core/slow_start.h"
#include "core/wrap.h"

#define WINDOW_MAX 1024u
#define PROBES_MAX 65535u
#define RATE_SCALE 1000000u /* failure_rate in millionths */

#define DEFAULT_CONSECUTIVE 5u
#define DEFAULT_RATE 0.5
#define DEFAULT_OPEN_NS 1000000000ull

struct sy__breaker {
	/* Shared: read by senders, changed by CAS (see the top). */
	_Atomic uint64_t word;
	_Atomic uint64_t opened_ns;   /* the worker's, before it publishes OPEN */
	_Atomic uint64_t probe_since; /* when the current half-open round began */
	_Atomic uint32_t probe_gen;   /* the generation probe_since belongs to */
	/* Read-only after create. */
	struct sy_engine *eng;
	uint64_t open_ns;
	uint32_t consecutive_max;
	uint32_t window;              /* 0: no rate rule */
	uint32_t min_calls;
	uint32_t rate_ppm;            /* trip at fails * 1e6 >= rate_ppm * calls */
	uint32_t probes;
	uint32_t success_threshold;
	/* The worker's counts, on their own cache line. */
	_Alignas(SY_CACHELINE) uint32_t seen_gen;
	uint32_t consecutive;         /* failures in a row */
	uint32_t half_ok;             /* successful probes this round */
	uint32_t win_n;               /* results in the window */
	uint32_t win_pos;             /* where the next result goes */
	uint32_t win_fail;            /* failures in the window */
	uint64_t win_bits[WINDOW_MAX / 64]; /* 1: that result was a failure */
};

/* ---- the state word ---- */

static inline unsigned w_state(uint64_t w)
{
	return (unsigned)(w & 0xff);
}

static inline uint32_t w_tokens(uint64_t w)
{
	return (uint32_t)((w >> 8) & 0xffffff);
}

static inline uint32_t w_gen(uint64_t w)
{
	return (uint32_t)(w >> 32);
}

static inline uint64_t w_make(uint32_t gen, uint32_t tokens, unsigned state)
{
	return (uint64_t)gen << 32 | (uint64_t)tokens << 8 | state;
}

#define W_TOKEN (1ull << 8)

/* Does @p state keep the pick fast path out (gate bit set)? */
static inline bool state_gates(unsigned state)
{
	return state == SY_BREAKER_OPEN || state == SY_BREAKER_HALF_OPEN ||
	       state == SY_BREAKER_FORCED_OPEN;
}

/* ---- create, destroy ---- */

static int check_opts(const struct sy_breaker_opts *o)
{
	if (o->window > WINDOW_MAX)
		return sy__fail(-EINVAL, "breaker: window=%u is above %u",
				o->window, WINDOW_MAX);
	if (o->window == 0 && (o->min_calls || o->failure_rate != 0))
		return sy__fail(-EINVAL, "breaker: min_calls and failure_rate need a window (window=0)");
	if (o->min_calls > o->window)
		return sy__fail(-EINVAL, "breaker: min_calls=%u is above window=%u",
				o->min_calls, o->window);
	if (!(o->failure_rate >= 0 && o->failure_rate <= 1)) /* NaN too */
		return sy__fail(-EINVAL, "breaker: failure_rate=%g is not in (0, 1]",
				o->failure_rate);
	if (o->half_open_probes > PROBES_MAX)
		return sy__fail(-EINVAL, "breaker: half_open_probes=%u is above %u",
				o->half_open_probes, PROBES_MAX);
	if (o->success_threshold >
	    (o->half_open_probes ? o->half_open_probes : 1))
		return sy__fail(-EINVAL, "breaker: success_threshold=%u is above half_open_probes=%u",
				o->success_threshold,
				o->half_open_probes ? o->half_open_probes : 1);
	return 0;
}

int sy__breaker_create(struct sy_engine *eng, const struct sy_breaker_opts *o,
		       struct sy__breaker **out)
{
	struct sy__breaker *b;
	double rate;
	int rc;

	if (!o)
		return sy__fail(-EINVAL, "breaker: no options");
	if ((rc = check_opts(o)) != 0)
		return rc;
	b = aligned_alloc(SY_CACHELINE, sizeof(*b));
	if (!b)
		return sy__fail(-ENOMEM, "no memory for a circuit breaker");
	memset(b, 0, sizeof(*b));
	rate = o->failure_rate != 0 ? o->failure_rate : DEFAULT_RATE;
	b->eng = eng;
	b->open_ns = o->open_ns ? o->open_ns : DEFAULT_OPEN_NS;
	b->consecutive_max = o->consecutive_failures ? o->consecutive_failures :
			     DEFAULT_CONSECUTIVE;
	b->window = o->window;
	b->min_calls = o->min_calls ? o->min_calls : o->window;
	/* At least 1: a tiny rate still needs one failure. */
	b->rate_ppm = (uint32_t)(rate * RATE_SCALE + 0.5);
	if (!b->rate_ppm)
		b->rate_ppm = 1;
	b->probes = o->half_open_probes ? o->half_open_probes : 1;
	b->success_threshold = o->success_threshold ? o->success_threshold :
			       b->probes;
	atomic_init(&b->word, w_make(sy__wrap_start.breaker_gen, 0,
				     SY_BREAKER_CLOSED));
	b->seen_gen = sy__wrap_start.breaker_gen;
	*out = b;
	return 0;
}

void sy__breaker_destroy(struct sy_engine *eng, struct sy__breaker *b)
{
	(void)eng;
	free(b);
}

/* ---- transitions ---- */

/*
 * Make SY_GATE_BREAKER agree with the state. The gate RMWs are acq_rel: if
 * another thread's gate write (after its own transition) came before ours,
 * we acquire it, so our re-read of the word sees its transition and we go
 * round again; the last thread to act leaves the gate right.
 */
static void sync_gate(struct sy__server *srv, struct sy__breaker *b)
{
	uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
	uint64_t acted;

	do {
		acted = w;
		if (state_gates(w_state(w)))
			atomic_fetch_or_explicit(&srv->gate, SY_GATE_BREAKER,
						 memory_order_acq_rel);
		else
			atomic_fetch_and_explicit(&srv->gate, ~(unsigned)SY_GATE_BREAKER,
						  memory_order_acq_rel);
		w = atomic_load_explicit(&b->word, memory_order_acquire);
	} while (w_gen(w) != w_gen(acted));
}

/*
 * Publish the start of half-open round @p gen while it is the current
 * round: once the word has moved on, a later round may have published its
 * own start, which a late publisher must not overwrite. Generations are
 * only compared for equality: they wrap, and the one published last may be
 * any distance behind (operators force states without a half-open round).
 */
static void probe_round_publish(struct sy__breaker *b, uint32_t gen,
				uint64_t now)
{
	uint32_t cur = atomic_load_explicit(&b->probe_gen, memory_order_relaxed);

	atomic_store_explicit(&b->probe_since, now, memory_order_relaxed);
	/* B3: pairs with B4 in probe_round_expired(). A later round's
	 * publisher changes probe_gen, which fails our CAS: we then see the
	 * word moved on and stop. */
	while (cur != gen &&
	       w_gen(atomic_load_explicit(&b->word, memory_order_relaxed)) == gen &&
	       !atomic_compare_exchange_weak_explicit(&b->probe_gen, &cur, gen,
						      memory_order_release,
						      memory_order_relaxed))
		;
}

/* Has the half-open round of generation @p gen waited open_ns? */
static bool probe_round_expired(const struct sy__breaker *b, uint32_t gen)
{
	/* B4: pairs with B3 in probe_round_publish(). Another generation:
	 * the round has not published its start yet, so it has just begun. */
	if (atomic_load_explicit(&b->probe_gen, memory_order_acquire) != gen)
		return false;
	return sy__now(b->eng) -
	       atomic_load_explicit(&b->probe_since, memory_order_relaxed) >=
	       b->open_ns;
}

static bool open_expired(const struct sy__breaker *b)
{
	return sy__now(b->eng) -
	       atomic_load_explicit(&b->opened_ns, memory_order_relaxed) >=
	       b->open_ns;
}

/* Tell the world about a transition this thread made. */
static void announce(struct sy__server *srv, struct sy__breaker *b,
		     unsigned from, unsigned to)
{
	struct sy_engine *eng = b->eng;

	sync_gate(srv, b);
	if (from == to)
		return;
	atomic_fetch_add_explicit(&srv->transitions, 1, memory_order_relaxed);
	if (eng->cfg.on_breaker)
		eng->cfg.on_breaker(eng, srv->id, (int)from, (int)to,
				    eng->cfg.callback_ctx);
}

/*
 * Move from the state in *@p w to @p to with @p tokens, as one CAS. On
 * failure *@p w holds the word found instead. @p now is the engine clock
 * (used by OPEN and HALF_OPEN).
 */
static bool transition(struct sy__server *srv, struct sy__breaker *b,
		       uint64_t *w, unsigned to, uint32_t tokens, uint64_t now)
{
	uint32_t gen = w_gen(*w) + 1;
	unsigned from = w_state(*w);

	/* Only the worker opens the breaker, so opened_ns has one writer,
	 * and nobody reads it until the CAS below publishes OPEN. */
	if (to == SY_BREAKER_OPEN)
		atomic_store_explicit(&b->opened_ns, now, memory_order_relaxed);
	/* B1: release pairs with B2 (the acquire loads of the word). */
	if (!atomic_compare_exchange_strong_explicit(&b->word, w,
						     w_make(gen, tokens, to),
						     memory_order_acq_rel,
						     memory_order_acquire))
		return false;
	if (to == SY_BREAKER_HALF_OPEN)
		probe_round_publish(b, gen, now);
	/* Back from an open circuit: the ramp's bit goes up before
	 * announce() takes the breaker's down (the gate's modification
	 * order), so no sender sees the server at full share meanwhile. */
	if (to == SY_BREAKER_CLOSED && state_gates(from))
		sy__slow_start_recovered(srv, sy__now(b->eng));
	announce(srv, b, from, to);
	return true;
}

/* ---- senders ---- */

enum admit { ADMIT, REFUSE, RETRY };

/* Half-open: take a token, or start a new round if this one expired. RETRY:
 * the word moved, and *@p w holds the new one. */
static enum admit admit_half_open(struct sy__server *srv,
				  struct sy__breaker *b, uint64_t *w)
{
	if (w_tokens(*w) > 0)
		return atomic_compare_exchange_weak_explicit(&b->word, w,
							     *w - W_TOKEN,
							     memory_order_acq_rel,
							     memory_order_acquire) ?
		       ADMIT : RETRY;
	if (!probe_round_expired(b, w_gen(*w)))
		return REFUSE;
	/* The winner takes the new round's first token. */
	return transition(srv, b, w, SY_BREAKER_HALF_OPEN, b->probes - 1,
			  sy__now(b->eng)) ? ADMIT : RETRY;
}

/* Open: refuse until open_ns has passed, then one sender wins the move to
 * half-open and takes its first token; the others retry with its word. */
static enum admit admit_open(struct sy__server *srv, struct sy__breaker *b,
			     uint64_t *w)
{
	if (!open_expired(b))
		return REFUSE;
	return transition(srv, b, w, SY_BREAKER_HALF_OPEN, b->probes - 1,
			  sy__now(b->eng)) ? ADMIT : RETRY;
}

bool sy__breaker_admit(struct sy__server *srv)
{
	struct sy__breaker *b = srv->breaker;
	enum admit a = RETRY;
	uint64_t w;

	if (!b)
		return true;
	/* B2: pairs with B1. */
	w = atomic_load_explicit(&b->word, memory_order_acquire);
	while (a == RETRY) {
		switch (w_state(w)) {
		case SY_BREAKER_OPEN:
			a = admit_open(srv, b, &w);
			break;
		case SY_BREAKER_HALF_OPEN:
			a = admit_half_open(srv, b, &w);
			break;
		case SY_BREAKER_FORCED_OPEN:
			a = REFUSE;
			break;
		default: /* closed or disabled: the gate was stale */
			a = ADMIT;
		}
	}
	return a == ADMIT;
}

bool sy__breaker_would_admit(const struct sy__server *srv)
{
	const struct sy__breaker *b = srv->breaker;
	uint64_t w;

	if (!b)
		return true;
	/* B2 */
	w = atomic_load_explicit(&b->word, memory_order_acquire);
	switch (w_state(w)) {
	case SY_BREAKER_OPEN:
		return open_expired(b);
	case SY_BREAKER_HALF_OPEN:
		return w_tokens(w) > 0 || probe_round_expired(b, w_gen(w));
	case SY_BREAKER_FORCED_OPEN:
		return false;
	default:
		return true;
	}
}

/* ---- the worker ---- */

static void counts_reset(struct sy__breaker *b, uint32_t gen)
{
	b->seen_gen = gen;
	b->consecutive = 0;
	b->half_ok = 0;
	b->win_n = 0;
	b->win_pos = 0;
	b->win_fail = 0;
	memset(b->win_bits, 0, sizeof(b->win_bits));
}

/* Count one result in the closed state; true when it should trip. */
static bool closed_count(struct sy__breaker *b, bool ok)
{
	uint32_t i = b->win_pos;
	uint64_t bit = 1ull << (i % 64);

	b->consecutive = ok ? 0 : b->consecutive + 1;
	if (b->consecutive >= b->consecutive_max)
		return true;
	if (!b->window)
		return false;
	/* The window's oldest result leaves as this one comes in. */
	if (b->win_n == b->window)
		b->win_fail -= (b->win_bits[i / 64] & bit) != 0;
	else
		b->win_n++;
	if (ok) {
		b->win_bits[i / 64] &= ~bit;
	} else {
		b->win_bits[i / 64] |= bit;
		b->win_fail++;
	}
	b->win_pos = i + 1 == b->window ? 0 : i + 1;
	return b->win_n >= b->min_calls &&
	       (uint64_t)b->win_fail * RATE_SCALE >=
	       (uint64_t)b->rate_ppm * b->win_n;
}

void sy__breaker_record(struct sy__server *srv, bool ok)
{
	struct sy__breaker *b = srv->breaker;
	uint64_t w;

	if (!b)
		return;
	/* B2 */
	w = atomic_load_explicit(&b->word, memory_order_acquire);
	if (w_gen(w) != b->seen_gen)
		counts_reset(b, w_gen(w));
	switch (w_state(w)) {
	case SY_BREAKER_CLOSED:
		if (closed_count(b, ok))
			transition(srv, b, &w, SY_BREAKER_OPEN, 0, sy__now(b->eng));
		break;
	case SY_BREAKER_HALF_OPEN:
		if (!ok)
			transition(srv, b, &w, SY_BREAKER_OPEN, 0, sy__now(b->eng));
		else if (++b->half_ok >= b->success_threshold)
			transition(srv, b, &w, SY_BREAKER_CLOSED, 0, 0);
		break;
	default:
		/* Open (admitted before it tripped), forced open, disabled:
		 * not counted. */
		break;
	}
	/* A lost CAS means the state moved under us: the result belongs to
	 * a state that is gone and is dropped. */
	srv->breaker_quiet = b->consecutive == 0 && b->window == 0;
}

/* ---- operators ---- */

enum sy_breaker_state sy__breaker_get(const struct sy__breaker *b)
{
	/* B2 */
	return (enum sy_breaker_state)w_state(
		atomic_load_explicit(&b->word, memory_order_acquire));
}

int sy__breaker_force(struct sy_engine *eng, struct sy__server *srv,
		      enum sy_breaker_state to)
{
	struct sy__breaker *b = srv->breaker;
	uint64_t w;

	(void)eng;
	if (to != SY_BREAKER_CLOSED && to != SY_BREAKER_FORCED_OPEN &&
	    to != SY_BREAKER_DISABLED)
		return sy__fail(-EINVAL, "breaker: a server can be forced to closed, forced open or disabled, not state %d",
				(int)to);
	if (!b)
		return sy__fail(-EINVAL, "server \"%s\" has no circuit breaker",
				srv->name);
	/* A new generation even when the state stays: the worker clears its
	 * counts at its next result. */
	w = atomic_load_explicit(&b->word, memory_order_acquire);
	while (!transition(srv, b, &w, to, 0, 0))
		;
	return 0;
}

/* The server @p id, or NULL. Under eng->servers_lock. */
static struct sy__server *server_get(struct sy_engine *eng, uint32_t id)
{
	return id < eng->cfg.max_servers ? eng->servers[id] : NULL;
}

SY_API int sy_breaker_force(sy_engine *eng, uint32_t server,
			    enum sy_breaker_state state)
{
	struct sy__server *srv;
	int rc;

	SY__NONNULL(eng);
	pthread_mutex_lock(&eng->servers_lock);
	srv = server_get(eng, server);
	rc = srv ? sy__breaker_force(eng, srv, state) :
		   sy__fail(-ENOENT, "no server with id %u", server);
	pthread_mutex_unlock(&eng->servers_lock);
	return sy__ret(__func__, rc);
}

SY_API int sy_breaker_state(sy_engine *eng, uint32_t server,
			    enum sy_breaker_state *state)
{
	struct sy__server *srv;
	int rc = 0;

	SY__NONNULL(eng);
	SY__NONNULL(state);
	pthread_mutex_lock(&eng->servers_lock);
	srv = server_get(eng, server);
	if (!srv)
		rc = sy__fail(-ENOENT, "no server with id %u", server);
	else
		*state = srv->breaker ? sy__breaker_get(srv->breaker) :
					SY_BREAKER_CLOSED;
	pthread_mutex_unlock(&eng->servers_lock);
	return sy__ret(__func__, rc);
}
