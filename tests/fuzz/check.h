/*
 * Strict checkers for the export formats, written from the formats' own
 * rules (RFC 8259 JSON, RFC 4180 CSV, the Prometheus text exposition format
 * 0.0.4, Erlang term syntax as file:consult/1 reads it) rather than from
 * the exporter's code, so that they catch what the exporter gets wrong.
 *
 * Each checker parses a whole document, collects the series names it
 * carries (decoded from the format's escaping, in document order) and
 * returns true, or returns false with the reason and the byte offset in
 * @p why. They allocate nothing that outlives the call except the names,
 * which check_names_clear() frees. Single-threaded; no global state.
 */
#ifndef SY_TESTS_FUZZ_CHECK_H
#define SY_TESTS_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#define CHECK_NAMES_MAX 64
#define CHECK_WHY_MAX 200

/** Names found in a document, each a NUL-terminated malloc'd copy. */
struct check_names {
	size_t n;
	char *v[CHECK_NAMES_MAX];
	bool overflow;          /* more than CHECK_NAMES_MAX were found */
};

void check_names_clear(struct check_names *names);

/**
 * Length of the well-formed UTF-8 sequence at @p s (@p n bytes left), or 0
 * when the byte at @p s does not begin one (Unicode 15, table 3-7).
 */
size_t check_utf8_seq(const unsigned char *s, size_t n);

/** Whether all @p n bytes at @p s are well-formed UTF-8. */
bool check_utf8(const char *s, size_t n);

/** @p name with every byte that does not begin a well-formed UTF-8
 *  sequence replaced by U+FFFD, into @p out (room for 3 * len + 1). */
void check_utf8_repair(const char *name, char *out);

/** JSON: one value, RFC 8259, UTF-8, no duplicate keys in an object;
 *  collects the string values of "name" keys. */
bool check_json(const char *doc, size_t len, struct check_names *names,
		char *why);

/** CSV: RFC 4180, CRLF after every record, the same number of fields in
 *  every record; collects the "name" column of the series records (kind
 *  engine, server, route or transport). */
bool check_csv(const char *doc, size_t len, struct check_names *names,
	       char *why);

/** Prometheus text 0.0.4: names, labels, escapes, values, HELP and TYPE
 *  once and before the samples, families in one block, no series twice,
 *  histograms cumulative and complete; collects the "name" label of
 *  switchyard_messages_sent_total. */
bool check_prometheus(const char *doc, size_t len, struct check_names *names,
		      char *why);

/** Erlang: one term and a full stop, as file:consult/1 reads it: atoms
 *  (no reserved words unquoted), numbers, strings, binaries, tuples,
 *  lists and maps without repeated keys; collects the binaries under the
 *  key "name", as bytes. */
bool check_erlang(const char *doc, size_t len, struct check_names *names,
		  char *why);

/** The table: UTF-8, no control character (C0, DEL or C1) but newline. */
bool check_table(const char *doc, size_t len, char *why);

#endif
