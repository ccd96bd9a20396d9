/*
 * A strict checker of the Prometheus text exposition format 0.0.4.
 *
 * Lines end with LF (the last one too). A line is empty, a comment, a
 * "# HELP name text" or "# TYPE name type" line, or a sample:
 *   name [ "{" label="value" { "," label="value" } [ "," ] "}" ] value [ timestamp ]
 * with metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__"), label values of UTF-8
 * with \\, \" and \n as the only escapes, values in Go's float syntax.
 * Beyond the grammar it checks what promtool and the server's parser
 * refuse: HELP and TYPE at most once per family and before its samples,
 * each family in one block, no series (name and label set) twice, a label
 * at most once per sample, histograms with an le label on each bucket,
 * buckets increasing and cumulative, and _count equal to the +Inf bucket;
 * counters never negative.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

#define PROM_FAMILIES_MAX 128
#define PROM_NAME_MAX 200
#define PROM_LABELS_MAX 16
#define PROM_VALUE_MAX 1024

enum prom_type { T_NONE, T_COUNTER, T_GAUGE, T_HISTOGRAM, T_SUMMARY, T_UNTYPED };

struct family {
	char name[PROM_NAME_MAX + 1];
	enum prom_type type;
	bool help, typed, samples, closed;
	/* histogram: the bucket series being read */
	uint64_t bucket_labels;   /* hash of the labels other than le */
	double last_le, last_count, inf_count;
	bool in_buckets, have_inf;
};

struct label {
	char name[PROM_NAME_MAX + 1];
	char value[PROM_VALUE_MAX + 1];
	size_t vlen;
};

struct prom {
	const char *s;
	size_t n, i;
	char *why;
	struct family fam[PROM_FAMILIES_MAX];
	size_t nfam;
	struct family *current;
	uint64_t *seen;             /* open addressing set of series hashes */
	size_t seen_cap, seen_n;
	struct label labels[PROM_LABELS_MAX];
	size_t nlabels;
};

static bool fail(struct prom *p, const char *what)
{
	return check_fail(p->why, p->i, "%s", what);
}

static bool at(const struct prom *p, char c)
{
	return p->i < p->n && p->s[p->i] == c;
}

static bool is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A metric name (colons allowed) or a label name into @p out. */
static bool name(struct prom *p, bool metric, char *out)
{
	size_t start = p->i, len;

	if (p->i >= p->n ||
	    !(is_alpha_(p->s[p->i]) || (metric && p->s[p->i] == ':')))
		return fail(p, metric ? "expected a metric name" :
				 "expected a label name");
	while (p->i < p->n && (is_alpha_(p->s[p->i]) || is_digit(p->s[p->i]) ||
			       (metric && p->s[p->i] == ':')))
		p->i++;
	len = p->i - start;
	if (len > PROM_NAME_MAX)
		return fail(p, "name too long for the checker");
	memcpy(out, p->s + start, len);
	out[len] = '\0';
	return true;
}

static void skip_blanks(struct prom *p)
{
	while (at(p, ' ') || at(p, '\t'))
		p->i++;
}

static uint64_t hash_add(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull;
}

/* Add @p h to the set; false if it was there. */
static bool seen_add(struct prom *p, uint64_t h)
{
	size_t k;

	if (2 * (p->seen_n + 1) > p->seen_cap) {
		size_t cap = p->seen_cap ? 2 * p->seen_cap : 1024;
		uint64_t *old = p->seen, *set = calloc(cap, sizeof(*set));

		if (!set)
			abort();
		p->seen = set;
		p->seen_cap = cap;
		p->seen_n = 0;
		for (size_t i = 0; old && i < cap / 2; i++)
			if (old[i])
				seen_add(p, old[i]);
		free(old);
	}
	h |= 1;
	for (k = h % p->seen_cap; p->seen[k]; k = (k + 1) % p->seen_cap)
		if (p->seen[k] == h)
			return false;
	p->seen[k] = h;
	p->seen_n++;
	return true;
}

static struct family *family_find(struct prom *p, const char *fname)
{
	/* A family's lines are one block: most lines are the current one's. */
	if (p->current && strcmp(p->current->name, fname) == 0)
		return p->current;
	for (size_t i = 0; i < p->nfam; i++)
		if (strcmp(p->fam[i].name, fname) == 0)
			return &p->fam[i];
	return NULL;
}

/* Make @p f the family being read; the one before it is then closed. */
static bool family_enter(struct prom *p, struct family *f)
{
	if (f == p->current)
		return true;
	if (f->closed)
		return fail(p, "a family's lines are not in one block");
	if (p->current)
		p->current->closed = true;
	p->current = f;
	return true;
}

/* "# HELP name text" or "# TYPE name type"; other comments pass. */
static bool comment(struct prom *p, size_t end)
{
	char fname[PROM_NAME_MAX + 1];
	struct family *f;
	bool help;

	if (end - p->i >= 7 && memcmp(p->s + p->i, "# HELP ", 7) == 0)
		help = true;
	else if (end - p->i >= 7 && memcmp(p->s + p->i, "# TYPE ", 7) == 0)
		help = false;
	else {
		p->i = end;
		return true;
	}
	p->i += 7;
	skip_blanks(p);
	if (!name(p, true, fname))
		return false;
	f = family_find(p, fname);
	if (!f) {
		if (p->nfam == PROM_FAMILIES_MAX)
			return fail(p, "too many families for the checker");
		f = &p->fam[p->nfam++];
		memset(f, 0, sizeof(*f));
		strcpy(f->name, fname);
	}
	if (!family_enter(p, f))
		return false;
	if (help) {
		if (f->help)
			return fail(p, "HELP twice");
		f->help = true;
		if (p->i < end && p->s[p->i] != ' ' && p->s[p->i] != '\t')
			return fail(p, "expected a blank after the name");
		for (; p->i < end; p->i++)
			if (p->s[p->i] == '\\' &&
			    (p->i + 1 >= end || (p->s[p->i + 1] != '\\' &&
						 p->s[p->i + 1] != 'n')))
				return fail(p, "bad escape in HELP");
			else if (p->s[p->i] == '\\')
				p->i++;
		return true;
	}
	if (f->typed)
		return fail(p, "TYPE twice");
	if (f->samples)
		return fail(p, "TYPE after the family's samples");
	f->typed = true;
	skip_blanks(p);
	static const struct { const char *word; enum prom_type type; } types[] = {
		{ "counter", T_COUNTER }, { "gauge", T_GAUGE },
		{ "histogram", T_HISTOGRAM }, { "summary", T_SUMMARY },
		{ "untyped", T_UNTYPED },
	};
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		size_t len = strlen(types[t].word);

		if (end - p->i >= len &&
		    memcmp(p->s + p->i, types[t].word, len) == 0) {
			p->i += len;
			skip_blanks(p);
			if (p->i != end)
				return fail(p, "text after the type");
			f->type = types[t].type;
			return true;
		}
	}
	return fail(p, "unknown type");
}

static bool label_value(struct prom *p, struct label *l)
{
	l->vlen = 0;
	if (!at(p, '"'))
		return fail(p, "expected '\"'");
	p->i++;
	for (;;) {
		size_t len;
		char c;

		if (p->i >= p->n || p->s[p->i] == '\n')
			return fail(p, "unterminated label value");
		c = p->s[p->i];
		if (c == '"') {
			p->i++;
			l->value[l->vlen] = '\0';
			return true;
		}
		if (c == '\\') {
			p->i++;
			if (at(p, '\\'))
				c = '\\';
			else if (at(p, '"'))
				c = '"';
			else if (at(p, 'n'))
				c = '\n';
			else
				return fail(p, "bad escape in a label value");
			p->i++;
			if (l->vlen < PROM_VALUE_MAX)
				l->value[l->vlen++] = c;
			continue;
		}
		len = check_utf8_seq((const unsigned char *)p->s + p->i,
				     p->n - p->i);
		if (!len)
			return fail(p, "not UTF-8 in a label value");
		if (l->vlen + len <= PROM_VALUE_MAX) {
			memcpy(l->value + l->vlen, p->s + p->i, len);
			l->vlen += len;
		}
		p->i += len;
	}
}

static bool labels(struct prom *p)
{
	p->nlabels = 0;
	if (!at(p, '{'))
		return true;
	p->i++;
	skip_blanks(p);
	while (!at(p, '}')) {
		struct label *l;

		if (p->nlabels == PROM_LABELS_MAX)
			return fail(p, "too many labels for the checker");
		l = &p->labels[p->nlabels];
		if (!name(p, false, l->name))
			return false;
		if (l->name[0] == '_' && l->name[1] == '_')
			return fail(p, "reserved label name");
		for (size_t k = 0; k < p->nlabels; k++)
			if (strcmp(p->labels[k].name, l->name) == 0)
				return fail(p, "a label twice in one sample");
		skip_blanks(p);
		if (!at(p, '='))
			return fail(p, "expected '='");
		p->i++;
		skip_blanks(p);
		if (!label_value(p, l))
			return false;
		p->nlabels++;
		skip_blanks(p);
		if (at(p, ',')) {
			p->i++;
			skip_blanks(p);
			continue;
		}
		if (!at(p, '}'))
			return fail(p, "expected ',' or '}'");
	}
	p->i++;
	return true;
}

/* A float in Go's ParseFloat syntax, as the text format allows it. */
static bool parse_float(const char *s, size_t n, double *v)
{
	static const struct { const char *word; double v; } words[] = {
		{ "NaN", NAN }, { "+Inf", INFINITY }, { "-Inf", -INFINITY },
		{ "Inf", INFINITY },
	};
	char buf[64];
	size_t i = 0, d = 0;

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (n == strlen(words[w].word) &&
		    memcmp(s, words[w].word, n) == 0) {
			*v = words[w].v;
			return true;
		}
	if (n == 0 || n >= sizeof(buf))
		return false;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < n && is_digit(s[i]))
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, d++;
	}
	if (d == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && is_digit(s[i]))
			i++, e++;
		if (e == 0)
			return false;
	}
	if (i != n)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*v = strtod(buf, NULL);
	return true;
}

static const struct label *label_find(const struct prom *p, const char *lname)
{
	for (size_t k = 0; k < p->nlabels; k++)
		if (strcmp(p->labels[k].name, lname) == 0)
			return &p->labels[k];
	return NULL;
}

/* The labels other than le, in name order, hashed. */
static uint64_t labels_hash(const struct prom *p, uint64_t h, bool skip_le)
{
	const char *last = "";

	for (size_t done = 0; done < p->nlabels; done++) {
		const struct label *next = NULL;

		for (size_t k = 0; k < p->nlabels; k++)
			if (strcmp(p->labels[k].name, last) > 0 &&
			    (!next || strcmp(p->labels[k].name, next->name) < 0))
				next = &p->labels[k];
		if (!next)
			break;
		last = next->name;
		if (skip_le && strcmp(next->name, "le") == 0)
			continue;
		h = hash_add(h, next->name, strlen(next->name));
		h = hash_add(h, next->value, next->vlen);
	}
	return h;
}

static bool ends_with(const char *s, const char *suffix, size_t *stem)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (n <= m || strcmp(s + n - m, suffix) != 0)
		return false;
	*stem = n - m;
	return true;
}

/* The family a sample named @p sname belongs to, and its suffix. */
static struct family *sample_family(struct prom *p, const char *sname,
				    const char **suffix)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	char stem[PROM_NAME_MAX + 1];
	struct family *f = p->current;
	size_t len;

	/* Most samples are the current histogram's or summary's. */
	if (f && (f->type == T_HISTOGRAM || f->type == T_SUMMARY) &&
	    strncmp(sname, f->name, len = strlen(f->name)) == 0)
		for (size_t k = 0; k < 3; k++)
			if (strcmp(sname + len, suffixes[k]) == 0) {
				*suffix = suffixes[k];
				return f;
			}
	f = family_find(p, sname);
	*suffix = "";
	if (f && f->type != T_HISTOGRAM && f->type != T_SUMMARY)
		return f;
	for (size_t k = 0; k < 3; k++) {
		if (!ends_with(sname, suffixes[k], &len))
			continue;
		memcpy(stem, sname, len);
		stem[len] = '\0';
		f = family_find(p, stem);
		if (f && (f->type == T_HISTOGRAM || f->type == T_SUMMARY)) {
			*suffix = suffixes[k];
			return f;
		}
	}
	return NULL;
}

static bool histogram_sample(struct prom *p, struct family *f,
			     const char *suffix, double v)
{
	uint64_t other = labels_hash(p, 1, true);
	const struct label *le = label_find(p, "le");
	double bound;

	if (strcmp(suffix, "_bucket") == 0) {
		if (!le || !parse_float(le->value, le->vlen, &bound) ||
		    isnan(bound))
			return fail(p, "bucket without a numeric le label");
		if (f->in_buckets && f->bucket_labels == other) {
			if (!(bound > f->last_le))
				return fail(p, "bucket bounds not increasing");
			if (v < f->last_count)
				return fail(p, "bucket counts not cumulative");
		} else {
			f->in_buckets = true;
			f->have_inf = false;
			f->bucket_labels = other;
		}
		f->last_le = bound;
		f->last_count = v;
		if (isinf(bound) && bound > 0) {
			f->have_inf = true;
			f->inf_count = v;
		}
		return true;
	}
	if (le)
		return fail(p, "le label outside a bucket");
	if (strcmp(suffix, "_count") == 0 && f->type == T_HISTOGRAM) {
		if (!f->in_buckets || f->bucket_labels != other || !f->have_inf)
			return fail(p, "histogram _count without a +Inf bucket");
		if (v != f->inf_count)
			return fail(p, "histogram _count differs from its +Inf bucket");
	}
	return true;
}

static bool sample(struct prom *p, size_t end, struct check_names *names)
{
	char sname[PROM_NAME_MAX + 1];
	const char *suffix;
	struct family *f;
	size_t vstart;
	double v;

	if (!name(p, true, sname) || !labels(p))
		return false;
	f = sample_family(p, sname, &suffix);
	if (!f || !f->typed)
		return fail(p, "a sample of a family without TYPE");
	if (!family_enter(p, f))
		return false;
	f->samples = true;
	if (!at(p, ' ') && !at(p, '\t'))
		return fail(p, "expected a blank before the value");
	skip_blanks(p);
	vstart = p->i;
	while (p->i < end && p->s[p->i] != ' ' && p->s[p->i] != '\t')
		p->i++;
	if (!parse_float(p->s + vstart, p->i - vstart, &v))
		return check_fail(p->why, vstart, "bad value \"%.*s\"",
				  (int)(p->i - vstart), p->s + vstart);
	skip_blanks(p);
	if (p->i < end) {
		size_t t = p->i;

		if (at(p, '-'))
			p->i++;
		while (p->i < end && is_digit(p->s[p->i]))
			p->i++;
		if (p->i == t || p->i != end)
			return fail(p, "bad timestamp");
	}
	if (!seen_add(p, labels_hash(p, hash_add(1469598103934665603ull,
						 sname, strlen(sname)), false)))
		return check_fail(p->why, vstart, "series %s{...} twice", sname);
	if (f->type == T_COUNTER && !(v >= 0))
		return fail(p, "counter below zero or NaN");
	if ((f->type == T_HISTOGRAM || f->type == T_SUMMARY) &&
	    !histogram_sample(p, f, suffix, v))
		return false;
	if (strcmp(sname, "switchyard_messages_sent_total") == 0) {
		const struct label *l = label_find(p, "name");

		if (!l)
			return fail(p, "sent sample without a name label");
		check_names_push(names, l->value, l->vlen);
	}
	return true;
}

bool check_prometheus(const char *doc, size_t len, struct check_names *names,
		      char *why)
{
	struct prom *p = calloc(1, sizeof(*p));
	bool ok = true;

	if (!p)
		abort();
	p->s = doc;
	p->n = len;
	p->why = why;
	if (!check_utf8(doc, len))
		ok = check_fail(why, 0, "not UTF-8");
	else if (len == 0 || doc[len - 1] != '\n')
		ok = check_fail(why, len, "the last line does not end with LF");
	while (ok && p->i < p->n) {
		const char *nl = memchr(p->s + p->i, '\n', p->n - p->i);
		size_t end = (size_t)(nl - p->s);

		if (p->s[p->i] == '#')
			ok = comment(p, end);
		else if (p->i != end)
			ok = sample(p, end, names);
		if (ok && p->i != end)
			ok = fail(p, "text after the line's end");
		p->i = end + 1;
	}
	free(p->seen);
	free(p);
	return ok;
}
