/*
 * A strict checker of Erlang terms as file:consult/1 reads them: one term
 * (here: a map) and a full stop followed by whitespace or the end.
 *
 * Terms: maps #{K => V, ...}, tuples, lists (with an optional | tail),
 * binaries <<"text", 0..255, ...>>, strings, atoms (unquoted ones of
 * [a-z][a-zA-Z0-9_@]* that are not reserved words, or quoted), integers
 * (with an optional base#), floats with digits on both sides of the point,
 * and a sign before a number. Escapes are Erlang's: \b \d \e \f \n \r \s
 * \t \v, one to three octal digits, \xHH, \x{H...}, \^c, and a backslash
 * before any other character for that character. Raw bytes in strings must
 * be printable ASCII (a file's encoding would change any other). A map's
 * atom keys appear once; binary elements fit a byte.
 */
#include <stdint.h>
#include <string.h>

#include "check_internal.h"

#define ERL_DEPTH_MAX 32
#define ERL_TEXT_MAX 512
#define ERL_KEYS_MAX 64

enum term_kind { K_OTHER, K_ATOM, K_BINARY };

/* What a term was, as far as the caller needs it. */
struct term {
	enum term_kind kind;
	char text[ERL_TEXT_MAX];   /* an atom's name, a binary's bytes */
	size_t len;
};

struct erl {
	const unsigned char *s;
	size_t n, i;
	struct check_names *names;
	char *why;
};

static bool fail(struct erl *e, const char *what)
{
	return check_fail(e->why, e->i, "%s", what);
}

static bool at(const struct erl *e, char c)
{
	return e->i < e->n && e->s[e->i] == (unsigned char)c;
}

static bool is_lower(int c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_name_char(int c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z') || is_digit(c) ||
	       c == '_' || c == '@';
}

static void skip_ws(struct erl *e)
{
	while (e->i < e->n) {
		unsigned char c = e->s[e->i];

		if (c == '%') {
			while (e->i < e->n && e->s[e->i] != '\n')
				e->i++;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			e->i++;
		} else {
			break;
		}
	}
}

static int digit_value(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* The character after a backslash; moves past it. */
static bool escape(struct erl *e, unsigned long *cp)
{
	unsigned char c;

	if (e->i >= e->n)
		return fail(e, "unterminated escape");
	c = e->s[e->i++];
	if (c >= '0' && c <= '7') {
		*cp = c - '0';
		for (int k = 0; k < 2 && e->i < e->n &&
				e->s[e->i] >= '0' && e->s[e->i] <= '7'; k++)
			*cp = *cp * 8 + (e->s[e->i++] - '0');
		return true;
	}
	switch (c) {
	case 'b': *cp = 8; return true;
	case 'd': *cp = 127; return true;
	case 'e': *cp = 27; return true;
	case 'f': *cp = 12; return true;
	case 'n': *cp = 10; return true;
	case 'r': *cp = 13; return true;
	case 's': *cp = 32; return true;
	case 't': *cp = 9; return true;
	case 'v': *cp = 11; return true;
	case '^':
		if (e->i >= e->n || e->s[e->i] < 0x20 || e->s[e->i] >= 0x7f)
			return fail(e, "bad \\^ escape");
		*cp = e->s[e->i++] & 31u;
		return true;
	case 'x':
		*cp = 0;
		if (at(e, '{')) {
			size_t start = ++e->i;

			while (e->i < e->n && digit_value(e->s[e->i]) < 16) {
				*cp = *cp * 16 + (unsigned long)digit_value(e->s[e->i++]);
				if (*cp > 0x10ffff)
					return fail(e, "\\x{} escape too large");
			}
			if (e->i == start || !at(e, '}'))
				return fail(e, "bad \\x{} escape");
			e->i++;
			return true;
		}
		for (int k = 0; k < 2; k++) {
			if (e->i >= e->n || digit_value(e->s[e->i]) >= 16)
				return fail(e, "bad \\x escape");
			*cp = *cp * 16 + (unsigned long)digit_value(e->s[e->i++]);
		}
		return true;
	default:
		if (c < 0x20 || c >= 0x7f)
			return fail(e, "escape of a byte that is not printable");
		*cp = c;
		return true;
	}
}

/* A quoted string or atom; code points into t (as bytes when < 256). */
static bool quoted(struct erl *e, char quote, struct term *t, bool bytes)
{
	e->i++;
	for (;;) {
		unsigned long cp = 0;
		unsigned char c;

		if (e->i >= e->n)
			return fail(e, "unterminated string");
		c = e->s[e->i];
		if (c == (unsigned char)quote) {
			e->i++;
			return true;
		}
		if (c < 0x20 || c >= 0x7f)
			return fail(e, "raw byte that is not printable ASCII");
		e->i++;
		if (c == '\\') {
			if (!escape(e, &cp))
				return false;
		} else {
			cp = c;
		}
		if (bytes && cp > 255)
			return fail(e, "character above 255 in a binary");
		if (t->len < ERL_TEXT_MAX)
			t->text[t->len++] = (char)(unsigned char)cp;
	}
}

static bool atom(struct erl *e, struct term *t)
{
	static const char *const reserved[] = {
		"after", "and", "andalso", "band", "begin", "bnot", "bor",
		"bsl", "bsr", "bxor", "case", "catch", "cond", "div", "else",
		"end", "fun", "if", "let", "maybe", "not", "of", "or",
		"orelse", "query", "receive", "rem", "try", "when", "xor",
	};
	size_t start = e->i;

	while (e->i < e->n && is_name_char(e->s[e->i]))
		e->i++;
	t->kind = K_ATOM;
	t->len = e->i - start < ERL_TEXT_MAX ? e->i - start : ERL_TEXT_MAX;
	memcpy(t->text, e->s + start, t->len);
	for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++)
		if (strlen(reserved[r]) == t->len &&
		    memcmp(reserved[r], t->text, t->len) == 0)
			return check_fail(e->why, start,
					  "reserved word %s as an atom",
					  reserved[r]);
	return true;
}

/* An integer or a float; @p value gets an integer's value (capped). */
static bool number(struct erl *e, uint64_t *value)
{
	size_t start = e->i;

	*value = 0;
	while (e->i < e->n && is_digit(e->s[e->i])) {
		if (*value < UINT64_MAX / 16)
			*value = *value * 10 + (e->s[e->i] - '0');
		e->i++;
	}
	if (at(e, '#')) {
		unsigned base = (unsigned)*value;
		size_t d = ++e->i;

		if (base < 2 || base > 36 || e->i - start > 4)
			return fail(e, "bad integer base");
		*value = 0;
		while (e->i < e->n && digit_value(e->s[e->i]) < (int)base) {
			if (*value < UINT64_MAX / 64)
				*value = *value * base +
					 (unsigned)digit_value(e->s[e->i]);
			e->i++;
		}
		if (e->i == d)
			return fail(e, "no digits after the base");
	} else if (e->n - e->i >= 2 && e->s[e->i] == '.' &&
		   is_digit(e->s[e->i + 1])) {
		*value = UINT64_MAX;
		e->i++;
		while (e->i < e->n && is_digit(e->s[e->i]))
			e->i++;
		if (at(e, 'e') || at(e, 'E')) {
			size_t d;

			e->i++;
			if (at(e, '+') || at(e, '-'))
				e->i++;
			d = e->i;
			while (e->i < e->n && is_digit(e->s[e->i]))
				e->i++;
			if (e->i == d)
				return fail(e, "no digits in the exponent");
		}
	}
	if (e->i < e->n && (is_name_char(e->s[e->i]) || e->s[e->i] == '.') &&
	    !(e->s[e->i] == '.' && (e->i + 1 == e->n ||
				    !is_digit(e->s[e->i + 1]))))
		return fail(e, "bad number");
	return true;
}

static bool term(struct erl *e, struct term *t, int depth);

/* Terms separated by commas up to @p close; a list may have a | tail. */
static bool sequence(struct erl *e, char close, bool list, int depth)
{
	struct term item;

	skip_ws(e);
	if (at(e, close)) {
		e->i++;
		return true;
	}
	for (;;) {
		if (!term(e, &item, depth + 1))
			return false;
		skip_ws(e);
		if (at(e, ',')) {
			e->i++;
			continue;
		}
		if (list && at(e, '|')) {
			e->i++;
			if (!term(e, &item, depth + 1))
				return false;
			skip_ws(e);
			if (!at(e, close))
				return fail(e, "expected the list's end after its tail");
		}
		if (at(e, close)) {
			e->i++;
			return true;
		}
		return fail(e, "expected ',' or the closing bracket");
	}
}

static bool binary(struct erl *e, struct term *t)
{
	e->i += 2;
	t->kind = K_BINARY;
	skip_ws(e);
	if (e->n - e->i >= 2 && e->s[e->i] == '>' && e->s[e->i + 1] == '>') {
		e->i += 2;
		return true;
	}
	for (;;) {
		uint64_t v;

		skip_ws(e);
		if (at(e, '"')) {
			if (!quoted(e, '"', t, true))
				return false;
		} else if (e->i < e->n && is_digit(e->s[e->i])) {
			if (!number(e, &v))
				return false;
			if (v > 255)
				return fail(e, "binary element above 255");
			if (t->len < ERL_TEXT_MAX)
				t->text[t->len++] = (char)v;
		} else {
			return fail(e, "expected a string or a byte in a binary");
		}
		skip_ws(e);
		if (at(e, ',')) {
			e->i++;
			continue;
		}
		if (e->n - e->i >= 2 && e->s[e->i] == '>' && e->s[e->i + 1] == '>') {
			e->i += 2;
			return true;
		}
		return fail(e, "expected ',' or '>>'");
	}
}

static uint64_t key_hash(const struct term *t)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < t->len; i++)
		h = (h ^ (unsigned char)t->text[i]) * 1099511628211ull;
	return h;
}

static bool map(struct erl *e, int depth)
{
	uint64_t keys[ERL_KEYS_MAX];
	size_t nkeys = 0;
	struct term key, val;

	e->i += 2;
	skip_ws(e);
	if (at(e, '}')) {
		e->i++;
		return true;
	}
	for (;;) {
		if (!term(e, &key, depth + 1))
			return false;
		if (key.kind == K_ATOM) {
			uint64_t h = key_hash(&key);

			for (size_t k = 0; k < nkeys; k++)
				if (keys[k] == h)
					return fail(e, "a key twice in one map");
			if (nkeys < ERL_KEYS_MAX)
				keys[nkeys++] = h;
		}
		skip_ws(e);
		if (e->n - e->i < 2 || e->s[e->i] != '=' || e->s[e->i + 1] != '>')
			return fail(e, "expected '=>'");
		e->i += 2;
		if (!term(e, &val, depth + 1))
			return false;
		if (key.kind == K_ATOM && key.len == 4 &&
		    memcmp(key.text, "name", 4) == 0) {
			if (val.kind != K_BINARY)
				return fail(e, "a name that is not a binary");
			check_names_push(e->names, val.text, val.len);
		}
		skip_ws(e);
		if (at(e, ',')) {
			e->i++;
			continue;
		}
		if (at(e, '}')) {
			e->i++;
			return true;
		}
		return fail(e, "expected ',' or '}'");
	}
}

static bool term(struct erl *e, struct term *t, int depth)
{
	uint64_t v;
	int c;

	t->kind = K_OTHER;
	t->len = 0;
	if (depth > ERL_DEPTH_MAX)
		return fail(e, "nested too deep");
	skip_ws(e);
	if (e->i >= e->n)
		return fail(e, "expected a term");
	c = e->s[e->i];
	if (c == '#' && e->n - e->i >= 2 && e->s[e->i + 1] == '{')
		return map(e, depth);
	if (c == '{') {
		e->i++;
		return sequence(e, '}', false, depth);
	}
	if (c == '[') {
		e->i++;
		return sequence(e, ']', true, depth);
	}
	if (c == '<' && e->n - e->i >= 2 && e->s[e->i + 1] == '<')
		return binary(e, t);
	if (c == '"')
		return quoted(e, '"', t, false);
	if (c == '\'') {
		t->kind = K_ATOM;
		return quoted(e, '\'', t, false);
	}
	if ((c == '-' || c == '+') && e->n - e->i >= 2 &&
	    is_digit(e->s[e->i + 1])) {
		e->i++;
		return number(e, &v);
	}
	if (is_digit(c))
		return number(e, &v);
	if (is_lower(c))
		return atom(e, t);
	return fail(e, "expected a term");
}

bool check_erlang(const char *doc, size_t len, struct check_names *names,
		  char *why)
{
	struct erl e = {
		.s = (const unsigned char *)doc, .n = len, .names = names,
		.why = why,
	};
	struct term t;

	skip_ws(&e);
	if (!(e.n - e.i >= 2 && e.s[e.i] == '#' && e.s[e.i + 1] == '{'))
		return fail(&e, "expected a map");
	if (!term(&e, &t, 0))
		return false;
	skip_ws(&e);
	if (!at(&e, '.'))
		return fail(&e, "expected a full stop");
	e.i++;
	if (e.i < e.n && e.s[e.i] != ' ' && e.s[e.i] != '\t' &&
	    e.s[e.i] != '\n' && e.s[e.i] != '\r' && e.s[e.i] != '%')
		return fail(&e, "a full stop not followed by whitespace");
	skip_ws(&e);
	if (e.i != e.n)
		return fail(&e, "text after the term");
	return true;
}
