/*
 * A strict CSV (RFC 4180) checker: records end with CRLF, the last one
 * too; a field is either bare (no quote, comma, CR or LF in it) or quoted,
 * with "" for a quote inside, and a closing quote is followed by a comma or
 * the record's end; every record has as many fields as the header; the
 * text is UTF-8.
 */
#include <string.h>

#include "check_internal.h"

#define CSV_FIELD_MAX 1024     /* decoded field bytes kept */

struct csv {
	const char *s;
	size_t n, i;
	char *why;
	char field[CSV_FIELD_MAX + 1];
	size_t flen;
};

/* One field into c->field; stops before the comma or the CR. */
static bool field(struct csv *c)
{
	c->flen = 0;
	if (c->i < c->n && c->s[c->i] == '"') {
		c->i++;
		for (;;) {
			if (c->i >= c->n)
				return check_fail(c->why, c->i, "unterminated quoted field");
			if (c->s[c->i] == '"') {
				if (c->i + 1 < c->n && c->s[c->i + 1] == '"') {
					c->i++;
				} else {
					c->i++;
					break;
				}
			}
			if (c->flen < CSV_FIELD_MAX)
				c->field[c->flen++] = c->s[c->i];
			c->i++;
		}
		if (c->i < c->n && c->s[c->i] != ',' && c->s[c->i] != '\r')
			return check_fail(c->why, c->i,
					  "text after a closing quote");
	} else {
		while (c->i < c->n && c->s[c->i] != ',' && c->s[c->i] != '\r') {
			if (c->s[c->i] == '"' || c->s[c->i] == '\n')
				return check_fail(c->why, c->i,
						  "quote or LF in a bare field");
			if (c->flen < CSV_FIELD_MAX)
				c->field[c->flen++] = c->s[c->i];
			c->i++;
		}
	}
	c->field[c->flen] = '\0';
	return true;
}

static bool is_series_kind(const char *kind)
{
	return strcmp(kind, "engine") == 0 || strcmp(kind, "server") == 0 ||
	       strcmp(kind, "route") == 0 || strcmp(kind, "transport") == 0;
}

bool check_csv(const char *doc, size_t len, struct check_names *names,
	       char *why)
{
	struct csv c = { .s = doc, .n = len, .why = why };
	long name_col = -1, kind_col = -1;
	size_t header_fields = 0, records = 0;
	char kind[16], name[CSV_FIELD_MAX + 1];

	if (!check_utf8(doc, len))
		return check_fail(why, 0, "not UTF-8");
	if (len == 0)
		return check_fail(why, 0, "empty");
	while (c.i < c.n) {
		size_t fields = 0;

		kind[0] = name[0] = '\0';
		for (;;) {
			if (!field(&c))
				return false;
			if (records == 0) {
				if (strcmp(c.field, "name") == 0)
					name_col = (long)fields;
				if (strcmp(c.field, "kind") == 0)
					kind_col = (long)fields;
			} else if ((long)fields == kind_col) {
				size_t k = c.flen < sizeof(kind) - 1 ?
					   c.flen : sizeof(kind) - 1;

				memcpy(kind, c.field, k);
				kind[k] = '\0';
			} else if ((long)fields == name_col) {
				memcpy(name, c.field, c.flen + 1);
			}
			fields++;
			if (c.i < c.n && c.s[c.i] == ',') {
				c.i++;
				continue;
			}
			break;
		}
		if (c.n - c.i < 2 || c.s[c.i] != '\r' || c.s[c.i + 1] != '\n')
			return check_fail(why, c.i, "record not ended by CRLF");
		c.i += 2;
		if (records == 0) {
			header_fields = fields;
			if (name_col < 0 || kind_col < 0)
				return check_fail(why, 0, "no name or kind column");
		} else if (fields != header_fields) {
			return check_fail(why, c.i, "record %zu has %zu fields, the header %zu",
					  records, fields, header_fields);
		} else if (is_series_kind(kind)) {
			check_names_push(names, name, strlen(name));
		}
		records++;
	}
	return true;
}
