/*
 * A strict JSON (RFC 8259) checker: one value, surrounded by whitespace
 * only; strings of well-formed UTF-8 with no raw control character and
 * only the escapes the RFC lists (surrogates in pairs); numbers in the
 * RFC's grammar; no key twice in one object.
 */
#include <stdint.h>
#include <string.h>

#include "check_internal.h"

#define JSON_DEPTH_MAX 32
#define JSON_KEYS_MAX 64
#define JSON_TEXT_MAX 1024     /* decoded string bytes kept for names */

struct json {
	const unsigned char *s;
	size_t n, i;
	struct check_names *names;
	char *why;
	char text[JSON_TEXT_MAX + 4]; /* the string last decoded */
};

static bool fail(struct json *j, const char *what)
{
	return check_fail(j->why, j->i, "%s", what);
}

static void skip_ws(struct json *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
			       j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static bool literal(struct json *j, const char *word)
{
	size_t len = strlen(word);

	if (j->n - j->i < len || memcmp(j->s + j->i, word, len) != 0)
		return fail(j, "unknown literal");
	j->i += len;
	return true;
}

static int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits after "\u". */
static bool hex4(struct json *j, unsigned long *cp)
{
	*cp = 0;
	if (j->n - j->i < 4)
		return fail(j, "short \\u escape");
	for (int k = 0; k < 4; k++) {
		int d = hex_digit(j->s[j->i + (size_t)k]);

		if (d < 0)
			return fail(j, "bad hex digit in \\u escape");
		*cp = *cp << 4 | (unsigned long)d;
	}
	j->i += 4;
	return true;
}

/* A string; its decoded text (cut at JSON_TEXT_MAX) into @p text. */
static bool string(struct json *j, char *text, size_t *tlen)
{
	*tlen = 0;
	if (j->i >= j->n || j->s[j->i] != '"')
		return fail(j, "expected a string");
	j->i++;
	for (;;) {
		unsigned char c;
		unsigned long cp;
		size_t len;

		if (j->i >= j->n)
			return fail(j, "unterminated string");
		c = j->s[j->i];
		if (c == '"') {
			j->i++;
			return true;
		}
		if (c < 0x20)
			return fail(j, "raw control character in a string");
		if (c != '\\') {
			len = check_utf8_seq(j->s + j->i, j->n - j->i);
			if (!len)
				return fail(j, "not UTF-8 in a string");
			if (*tlen + len <= JSON_TEXT_MAX) {
				memcpy(text + *tlen, j->s + j->i, len);
				*tlen += len;
			}
			j->i += len;
			continue;
		}
		if (++j->i >= j->n)
			return fail(j, "unterminated escape");
		switch (j->s[j->i++]) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (!hex4(j, &cp))
				return false;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(j, "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned long lo;

				if (j->n - j->i < 2 || j->s[j->i] != '\\' ||
				    j->s[j->i + 1] != 'u')
					return fail(j, "lone high surrogate");
				j->i += 2;
				if (!hex4(j, &lo))
					return false;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(j, "high surrogate without a low one");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			break;
		default:
			j->i--;
			return fail(j, "unknown escape");
		}
		if (*tlen + 4 <= JSON_TEXT_MAX)
			check_put_utf8(text, tlen, cp);
	}
}

static bool digits(struct json *j)
{
	size_t start = j->i;

	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
		j->i++;
	return j->i > start;
}

static bool number(struct json *j)
{
	if (j->s[j->i] == '-')
		j->i++;
	if (j->i < j->n && j->s[j->i] == '0') {
		j->i++;
	} else if (!digits(j)) {
		return fail(j, "expected a digit");
	}
	if (j->i < j->n && j->s[j->i] == '.') {
		j->i++;
		if (!digits(j))
			return fail(j, "expected a digit after the point");
	}
	if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		j->i++;
		if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
			j->i++;
		if (!digits(j))
			return fail(j, "expected a digit in the exponent");
	}
	return true;
}

static uint64_t text_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static bool value(struct json *j, int depth);

static bool object(struct json *j, int depth)
{
	char *text = j->text;
	uint64_t keys[JSON_KEYS_MAX];
	size_t nkeys = 0, tlen;
	bool is_name;

	j->i++;
	skip_ws(j);
	if (j->i < j->n && j->s[j->i] == '}') {
		j->i++;
		return true;
	}
	for (;;) {
		uint64_t h;

		skip_ws(j);
		if (!string(j, text, &tlen))
			return false;
		h = text_hash(text, tlen);
		for (size_t k = 0; k < nkeys; k++)
			if (keys[k] == h)
				return fail(j, "a key twice in one object");
		if (nkeys < JSON_KEYS_MAX)
			keys[nkeys++] = h;
		is_name = tlen == 4 && memcmp(text, "name", 4) == 0;
		skip_ws(j);
		if (j->i >= j->n || j->s[j->i] != ':')
			return fail(j, "expected ':'");
		j->i++;
		skip_ws(j);
		if (is_name && j->i < j->n && j->s[j->i] == '"') {
			if (!string(j, text, &tlen))
				return false;
			check_names_push(j->names, text, tlen);
		} else if (!value(j, depth + 1)) {
			return false;
		}
		skip_ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->n && j->s[j->i] == '}') {
			j->i++;
			return true;
		}
		return fail(j, "expected ',' or '}'");
	}
}

static bool array(struct json *j, int depth)
{
	j->i++;
	skip_ws(j);
	if (j->i < j->n && j->s[j->i] == ']') {
		j->i++;
		return true;
	}
	for (;;) {
		if (!value(j, depth + 1))
			return false;
		skip_ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->n && j->s[j->i] == ']') {
			j->i++;
			return true;
		}
		return fail(j, "expected ',' or ']'");
	}
}

static bool value(struct json *j, int depth)
{
	size_t tlen;

	if (depth > JSON_DEPTH_MAX)
		return fail(j, "nested too deep");
	skip_ws(j);
	if (j->i >= j->n)
		return fail(j, "expected a value");
	switch (j->s[j->i]) {
	case '{': return object(j, depth);
	case '[': return array(j, depth);
	case '"': return string(j, j->text, &tlen);
	case 't': return literal(j, "true");
	case 'f': return literal(j, "false");
	case 'n': return literal(j, "null");
	default:
		if (j->s[j->i] == '-' || (j->s[j->i] >= '0' && j->s[j->i] <= '9'))
			return number(j);
		return fail(j, "expected a value");
	}
}

bool check_json(const char *doc, size_t len, struct check_names *names,
		char *why)
{
	struct json j = {
		.s = (const unsigned char *)doc, .n = len, .names = names,
		.why = why,
	};

	if (!value(&j, 0))
		return false;
	skip_ws(&j);
	if (j.i != j.n)
		return fail(&j, "text after the value");
	return true;
}
