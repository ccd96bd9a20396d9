/*
 * UTF-8 well-formedness, name lists, failure messages and the table check.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

bool check_fail(char *why, size_t at, const char *fmt, ...)
{
	int n = snprintf(why, CHECK_WHY_MAX, "at byte %zu: ", at);
	va_list ap;

	if (n < 0 || n >= CHECK_WHY_MAX)
		return false;
	va_start(ap, fmt);
	vsnprintf(why + n, CHECK_WHY_MAX - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

void check_names_clear(struct check_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	names->n = 0;
	names->overflow = false;
}

void check_names_push(struct check_names *names, const char *s, size_t len)
{
	char *copy;

	if (names->n == CHECK_NAMES_MAX) {
		names->overflow = true;
		return;
	}
	copy = malloc(len + 1);
	if (!copy)
		abort();
	memcpy(copy, s, len);
	copy[len] = '\0';
	names->v[names->n++] = copy;
}

void check_put_utf8(char *buf, size_t *len, unsigned long cp)
{
	unsigned char *p = (unsigned char *)buf + *len;

	if (cp < 0x80) {
		p[0] = (unsigned char)cp;
		*len += 1;
	} else if (cp < 0x800) {
		p[0] = (unsigned char)(0xc0 | cp >> 6);
		p[1] = (unsigned char)(0x80 | (cp & 0x3f));
		*len += 2;
	} else if (cp < 0x10000) {
		p[0] = (unsigned char)(0xe0 | cp >> 12);
		p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		p[2] = (unsigned char)(0x80 | (cp & 0x3f));
		*len += 3;
	} else {
		p[0] = (unsigned char)(0xf0 | cp >> 18);
		p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		p[3] = (unsigned char)(0x80 | (cp & 0x3f));
		*len += 4;
	}
}

/*
 * Table 3-7 of the Unicode standard, row by row: the lead byte's range and
 * the allowed range of the second byte; later bytes are 80..BF.
 */
static const struct {
	unsigned char lead_lo, lead_hi, second_lo, second_hi, len;
} utf8_rows[] = {
	{ 0x00, 0x7f, 0, 0, 1 },
	{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
	{ 0xe0, 0xe0, 0xa0, 0xbf, 3 },
	{ 0xe1, 0xec, 0x80, 0xbf, 3 },
	{ 0xed, 0xed, 0x80, 0x9f, 3 },
	{ 0xee, 0xef, 0x80, 0xbf, 3 },
	{ 0xf0, 0xf0, 0x90, 0xbf, 4 },
	{ 0xf1, 0xf3, 0x80, 0xbf, 4 },
	{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
};

size_t check_utf8_seq(const unsigned char *s, size_t n)
{
	for (size_t r = 0; r < sizeof(utf8_rows) / sizeof(utf8_rows[0]); r++) {
		size_t len = utf8_rows[r].len;

		if (s[0] < utf8_rows[r].lead_lo || s[0] > utf8_rows[r].lead_hi)
			continue;
		if (len > n)
			return 0;
		if (len == 1)
			return 1;
		if (s[1] < utf8_rows[r].second_lo ||
		    s[1] > utf8_rows[r].second_hi)
			return 0;
		for (size_t i = 2; i < len; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		return len;
	}
	return 0;
}

bool check_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t len = check_utf8_seq(p + i, n - i);

		if (!len)
			return false;
		i += len;
	}
	return true;
}

void check_utf8_repair(const char *name, char *out)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t n = strlen(name), i = 0, o = 0;

	while (i < n) {
		size_t len = check_utf8_seq(p + i, n - i);

		if (len) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		} else {
			check_put_utf8(out, &o, 0xfffd);
			i++;
		}
	}
	out[o] = '\0';
}

bool check_table(const char *doc, size_t len, char *why)
{
	const unsigned char *p = (const unsigned char *)doc;

	if (!check_utf8(doc, len))
		return check_fail(why, 0, "not UTF-8");
	for (size_t i = 0; i < len; i++) {
		if ((p[i] < 0x20 && p[i] != '\n') || p[i] == 0x7f)
			return check_fail(why, i, "control byte 0x%02x", p[i]);
		/* C1 controls, U+0080 to U+009F: C2 80 to C2 9F. */
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] <= 0x9f)
			return check_fail(why, i, "control character U+%04X",
					  p[i + 1]);
	}
	return true;
}
