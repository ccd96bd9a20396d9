/*
 * What every fuzz target shares: the libFuzzer entry points and a reader
 * that turns the fuzzer's bytes into choices, numbers and strings.
 *
 * A target is built twice: with clang's libFuzzer (meson -Dfuzz=enabled),
 * and with any compiler against replay.c, which runs the seed corpus as a
 * regression test in every build. A target reports a broken property with
 * fuzz_fail(), which prints the reason and aborts, so that libFuzzer saves
 * the input.
 */
#ifndef SY_TESTS_FUZZ_H
#define SY_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** Print "fuzz: <what>" and abort. */
_Noreturn void fuzz_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/** Abort with @p what unless @p cond holds. */
#define fuzz_check(cond, ...) \
	do { if (!(cond)) fuzz_fail(__VA_ARGS__); } while (0)

/** The fuzzer's input, consumed from the front. Past its end every read
 *  returns zeros and empty strings, so a short input is still a case. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/** One byte, 0 past the end. */
uint8_t fuzz_u8(struct fuzz_in *in);

/** A little-endian number of @p bytes bytes (1 to 8). */
uint64_t fuzz_uint(struct fuzz_in *in, unsigned bytes);

/** A number in [0, n) for n >= 1, from one byte (two when n > 256). */
unsigned fuzz_pick(struct fuzz_in *in, unsigned n);

/**
 * A string of at most @p max bytes into @p buf (room for max + 1): a length
 * byte, then that many bytes. NUL bytes are kept out (they would end the
 * string early); the result is NUL-terminated. Returns its length.
 */
size_t fuzz_str(struct fuzz_in *in, char *buf, size_t max);

/** Everything left of the input as a string (NULs dropped), at most @p max. */
size_t fuzz_rest(struct fuzz_in *in, char *buf, size_t max);

/** An interesting unsigned value: one of the edges in @p edges (n of them),
 *  or a raw 32-bit number, as the input chooses. */
unsigned fuzz_edge(struct fuzz_in *in, const unsigned *edges, unsigned n);

#endif
