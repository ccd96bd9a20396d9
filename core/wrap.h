/*
 * Where the engine's wrapping counters start: a hook for tests.
 *
 * Ring indices, slot generations, sy_msg_call() sequence numbers (24 bits in a
 * message) and breaker generations are 32-bit counters that wrap; every
 * comparison of them is modular. So that a test can cross the wrap without
 * sending 2^32 messages, each starts from the value here when it is set up:
 * a slot's rings, generation and sequence when the slot is first set up
 * (engine creation for the workers, first attach for a producer), a
 * breaker's generation when its server is added. Never read on a send,
 * handler or reply path.
 *
 * All zero unless a test that links the internal libraries sets them
 * before sy_engine_create() (tests/review/review_wrap.c). The variable has
 * hidden visibility: the shared library does not export it.
 */
#ifndef SY_CORE_WRAP_H
#define SY_CORE_WRAP_H

#include <stdint.h>

struct sy__wrap_start {
	uint32_t ring;        /* every ring's producer and consumer index */
	uint32_t slot_gen;    /* a slot's generation (changes at attach, detach) */
	uint32_t call_seq;    /* a slot's last sy_msg_call() sequence number */
	uint32_t breaker_gen; /* a breaker's state generation */
};

extern struct sy__wrap_start sy__wrap_start;

#endif /* SY_CORE_WRAP_H */
