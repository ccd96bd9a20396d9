/*
 * The format checkers' own test: each accepts well-formed documents (with
 * the names decoded) and refuses each kind of malformed one. A checker
 * that accepted everything would make the export fuzzer useless.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"

typedef bool (*checker)(const char *doc, size_t len,
			struct check_names *names, char *why);

static int failures;

static void expect(checker fn, const char *label, const char *doc,
		   bool ok, const char *first_name)
{
	struct check_names names = { 0 };
	char why[CHECK_WHY_MAX] = "";
	bool got = fn(doc, strlen(doc), &names, why);

	if (got != ok) {
		printf("FAIL %s: %s (%s)\n", label,
		       ok ? "refused" : "accepted", why);
		failures++;
	} else if (ok && first_name &&
		   (names.n == 0 || strcmp(names.v[0], first_name) != 0)) {
		printf("FAIL %s: first name \"%s\", expected \"%s\"\n", label,
		       names.n ? names.v[0] : "(none)", first_name);
		failures++;
	}
	check_names_clear(&names);
}

static bool table(const char *doc, size_t len, struct check_names *names,
		  char *why)
{
	(void)names;
	return check_table(doc, len, why);
}

static void test_json(void)
{
	expect(check_json, "json object", "{\"name\":\"a\\\"b\\\\c\\nd\",\"x\":[1,-0.5e+3,true,null]}\n", true, "a\"b\\c\nd");
	expect(check_json, "json surrogates", "{\"name\":\"\\ud83d\\ude00\"}", true, "\xf0\x9f\x98\x80");
	expect(check_json, "json lone surrogate", "{\"name\":\"\\ud83d\"}", false, NULL);
	expect(check_json, "json raw control", "{\"name\":\"a\x01\"}", false, NULL);
	expect(check_json, "json bad utf-8", "{\"name\":\"\xff\"}", false, NULL);
	expect(check_json, "json bad escape", "{\"name\":\"\\x41\"}", false, NULL);
	expect(check_json, "json leading zero", "[01]", false, NULL);
	expect(check_json, "json trailing comma", "[1,]", false, NULL);
	expect(check_json, "json duplicate key", "{\"a\":1,\"a\":2}", false, NULL);
	expect(check_json, "json trailing text", "{} x", false, NULL);
	expect(check_json, "json NaN", "[NaN]", false, NULL);
}

static void test_csv(void)
{
	expect(check_csv, "csv quoted", "kind,name\r\nserver,\"a,\"\"b\r\nc\"\r\n", true, "a,\"b\r\nc");
	expect(check_csv, "csv bare", "kind,name\r\nroute,r1\r\n", true, "r1");
	expect(check_csv, "csv LF only", "kind,name\nroute,r1\n", false, NULL);
	expect(check_csv, "csv quote in bare field", "kind,name\r\nroute,a\"b\r\n", false, NULL);
	expect(check_csv, "csv text after quote", "kind,name\r\nroute,\"a\"b\r\n", false, NULL);
	expect(check_csv, "csv field count", "kind,name\r\nroute,a,b\r\n", false, NULL);
	expect(check_csv, "csv no final CRLF", "kind,name\r\nroute,a", false, NULL);
	expect(check_csv, "csv bad utf-8", "kind,name\r\nroute,\xc0\xaf\r\n", false, NULL);
}

static void test_prometheus(void)
{
	const char *good =
		"# HELP switchyard_messages_sent_total Sent \\\\ \\n.\n"
		"# TYPE switchyard_messages_sent_total counter\n"
		"switchyard_messages_sent_total{kind=\"server\",name=\"a\\\"b\\\\c\\nd\"} 3\n"
		"# HELP h_seconds H.\n"
		"# TYPE h_seconds histogram\n"
		"h_seconds_bucket{le=\"1e-06\"} 1\n"
		"h_seconds_bucket{le=\"+Inf\"} 2\n"
		"h_seconds_sum 0.5\n"
		"h_seconds_count 2\n";

	expect(check_prometheus, "prom good", good, true, "a\"b\\c\nd");
	expect(check_prometheus, "prom no TYPE", "m 1\n", false, NULL);
	expect(check_prometheus, "prom bad escape",
	       "# TYPE m gauge\nm{a=\"\\t\"} 1\n", false, NULL);
	expect(check_prometheus, "prom raw newline in label",
	       "# TYPE m gauge\nm{a=\"x\ny\"} 1\n", false, NULL);
	expect(check_prometheus, "prom duplicate series",
	       "# TYPE m gauge\nm{a=\"x\"} 1\nm{a=\"x\"} 2\n", false, NULL);
	expect(check_prometheus, "prom duplicate label",
	       "# TYPE m gauge\nm{a=\"x\",a=\"y\"} 1\n", false, NULL);
	expect(check_prometheus, "prom split family",
	       "# TYPE m gauge\n# TYPE n gauge\nm 1\n", false, NULL);
	expect(check_prometheus, "prom TYPE twice",
	       "# TYPE m gauge\n# TYPE m gauge\nm 1\n", false, NULL);
	expect(check_prometheus, "prom bad name", "# TYPE 1m gauge\n", false, NULL);
	expect(check_prometheus, "prom bad value", "# TYPE m gauge\nm 1x\n", false, NULL);
	expect(check_prometheus, "prom negative counter",
	       "# TYPE m_total counter\nm_total -1\n", false, NULL);
	expect(check_prometheus, "prom buckets not cumulative",
	       "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
	       false, NULL);
	expect(check_prometheus, "prom count not +Inf",
	       "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", false, NULL);
	expect(check_prometheus, "prom no final LF", "# TYPE m gauge\nm 1", false, NULL);
	expect(check_prometheus, "prom bad utf-8",
	       "# TYPE m gauge\nm{a=\"\xed\xa0\x80\"} 1\n", false, NULL);
}

static void test_erlang(void)
{
	expect(check_erlang, "erl good",
	       "#{seq => 3, x => -1.5e+3, l => [a, 'B c', {1, \"s\"}],\n"
	       "  servers => [#{name => <<\"a\\\"b\\\\c\\012d\\377\">>}]}.\n",
	       true, "a\"b\\c\nd\xff");
	expect(check_erlang, "erl no full stop", "#{a => 1}", false, NULL);
	expect(check_erlang, "erl reserved atom", "#{end => 1}.\n", false, NULL);
	expect(check_erlang, "erl float without point digit", "#{a => 1.e5}.\n", false, NULL);
	expect(check_erlang, "erl exponent without point", "#{a => 1e5}.\n", false, NULL);
	expect(check_erlang, "erl raw byte", "#{name => <<\"\xc3\xa9\">>}.\n", false, NULL);
	expect(check_erlang, "erl byte above 255", "#{name => <<\"\\400\">>}.\n", false, NULL);
	expect(check_erlang, "erl duplicate key", "#{a => 1, a => 2}.\n", false, NULL);
	expect(check_erlang, "erl variable", "#{a => X}.\n", false, NULL);
	expect(check_erlang, "erl name not binary", "#{name => \"s\"}.\n", false, NULL);
	expect(check_erlang, "erl text after", "#{a => 1}. x\n", false, NULL);
}

static void test_table(void)
{
	expect(table, "table good", "NAME\n a\\n\xe2\x82\xac\n", true, NULL);
	expect(table, "table control", "NAME\x1b[2J\n", false, NULL);
	expect(table, "table C1 control", "NAME \xc2\x9b" "2J\n", false, NULL);
	expect(table, "table last C1", "NAME \xc2\x9f\n", false, NULL);
	expect(table, "table after C1", "NAME \xc2\xa0\xc2\xbf\n", true, NULL);
	expect(table, "table bad utf-8", "NAME \xff\n", false, NULL);
}

int main(void)
{
	char out[64];

	test_json();
	test_csv();
	test_prometheus();
	test_erlang();
	test_table();
	check_utf8_repair("a\xff\xe2\x82\xac\xe2\x82", out);
	if (strcmp(out, "a\xef\xbf\xbd\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbd") != 0) {
		printf("FAIL utf8 repair\n");
		failures++;
	}
	printf("%d failed\n", failures);
	return failures ? 1 : 0;
}
