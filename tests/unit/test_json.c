/*
 * Unit tests of lib/json.c: json_parse()'s limits (size, emptiness, NUL
 * bytes, depth, including depth hidden behind comments), key order kept
 * through edits, copies and dumps, numbers and strings that must come back
 * byte for byte, yajl's pretty format pinned, and freeing of nested trees
 * (run under ASan for leaks and double frees).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"
#include "tap.h"

static char err[256];

static yajl_val
parse_n(const char *s, size_t len)
{
	err[0] = '\0';
	return json_parse(s, len, 64 * 1024, err, sizeof(err));
}

static yajl_val
parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* Parse s and report whether it was refused (freeing what was not). */
static int
refused(const char *s)
{
	yajl_val v = parse(s);

	json_free_secret(v);
	return v == NULL;
}

/* The compact dump of v, in a static buffer for easy comparison. */
static const char *
dump(yajl_val v)
{
	static char	 out[4096];
	char		*d;

	if (v == NULL || (d = json_dump(v, 0, NULL)) == NULL)
		return "(dump failed)";
	snprintf(out, sizeof(out), "%s", d);
	free(d);
	return out;
}

/* Parse s and dump it compactly again; "" if refused. */
static const char *
roundtrip(const char *s)
{
	static char	 out[4096];
	yajl_val	 v;

	out[0] = '\0';
	if ((v = parse(s)) != NULL)
		snprintf(out, sizeof(out), "%s", dump(v));
	json_free_secret(v);
	return out;
}

/* n levels of open then close brackets, optionally around a prefix. */
static char *
nested(int n, const char *open, const char *close)
{
	size_t	 lo = strlen(open), lc = strlen(close);
	char	*s, *p;

	if ((s = malloc((size_t)n * (lo + lc) + 1)) == NULL)
		abort();
	p = s;
	for (int i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	for (int i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void
test_refusals(void)
{
	char	*d;

	err[0] = '\0';
	ok(json_parse("{}", 2, 1, err, sizeof(err)) == NULL,
	    "refuses more than max bytes");
	ok(strstr(err, "larger than 1 bytes") != NULL, "size sentence");
	ok(parse_n("", 0) == NULL && strstr(err, "empty") != NULL,
	    "refuses an empty body");
	ok(parse_n("{\"a\":\"x\0y\"}", 11) == NULL && strstr(err, "NUL"),
	    "refuses a NUL byte inside");
	d = nested(CD_JSON_DEPTH_MAX + 1, "[", "]");
	ok(refused(d) && strstr(err, "deeper than 32"),
	    "refuses 33 levels of arrays");
	free(d);
	d = nested(CD_JSON_DEPTH_MAX, "[", "]");
	ok(!refused(d), "accepts 32 levels of arrays");
	free(d);
	d = nested(CD_JSON_DEPTH_MAX + 1, "{\"k\":", "}");
	ok(refused(d), "refuses 33 levels of objects");
	free(d);
	ok(refused("{\"a\":}") && strstr(err, "not valid JSON"),
	    "refuses invalid JSON");
	ok(refused("{} x"), "refuses trailing garbage");
	ok(refused("{}{}"), "refuses a second document");
	ok(refused("\"\xff\""), "refuses invalid UTF-8");
	ok(refused("[1,]"), "refuses a trailing comma");
}

/* yajl_tree_parse() allows comments; json_parse() refuses them, and
 * depth counting must skip them anyway (defence in depth). */
static void
test_depth_and_comments(void)
{
	char	*d, *s;

	d = nested(CD_JSON_DEPTH_MAX + 3, "[", "]");
	if (d == NULL || (s = malloc(strlen(d) + 16)) == NULL)
		abort();
	snprintf(s, strlen(d) + 16, "[/*\"*/%s]", d);
	ok(refused(s), "a quote in a block comment hides no depth");
	snprintf(s, strlen(d) + 16, "[//\"\n%s]", d);
	ok(refused(s), "a quote in a line comment hides no depth");
	free(s);
	free(d);
	ok(refused("{/* c */\"a\":1 // x\n}"),
	    "comments are refused: the JSON must be plain JSON");
	is_str(roundtrip("[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\",\"/*\"]"),
	    "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\",\"/*\"]",
	    "brackets and comment openers in strings do not count");
	is_str(roundtrip("[\"\\\"[[[\"]"), "[\"\\\"[[[\"]",
	    "an escaped quote does not end the string");
}

static void
test_order_and_edits(void)
{
	yajl_val	 v, s;

	v = parse("{\"z\":1,\"a\":2,\"m\":3}");
	is_str(dump(v), "{\"z\":1,\"a\":2,\"m\":3}", "key order preserved");
	is_str(v->u.object.keys[1], "a", "keys stay in document order");
	ok(json_obj_set(v, "a", json_new_str("new")) == 0, "set existing key");
	is_str(dump(v), "{\"z\":1,\"a\":\"new\",\"m\":3}", "replaced in place");
	is_str(json_obj_str(v, "a"), "new", "json_obj_str finds it");
	ok(json_obj_str(v, "z") == NULL, "json_obj_str of a number is NULL");
	ok(json_obj_set(v, "b", json_new_int(-5)) == 0, "set a new key");
	is_str(dump(v), "{\"z\":1,\"a\":\"new\",\"m\":3,\"b\":-5}",
	    "new key appended at the end");
	is_int(json_obj_del(v, "a"), 1, "del present key");
	is_str(dump(v), "{\"z\":1,\"m\":3,\"b\":-5}", "others keep order");
	is_int(json_obj_del(v, "a"), 0, "del absent key");
	is_int(json_obj_del(v, "b"), 1, "del last key");
	is_str(dump(v), "{\"z\":1,\"m\":3}", "last key gone");
	s = json_new_str("x");
	is_int(json_obj_set(s, "k", json_new_null()), -1,
	    "set on a non-object fails (and frees the value)");
	is_int(json_obj_set(v, "k", NULL), -1, "set of NULL fails");
	is_int(json_obj_del(s, "k"), 0, "del on a non-object");
	ok(json_obj_get(s, "k") == NULL, "get on a non-object");
	json_free_secret(s);
	json_free_secret(v);
}

static void
test_build(void)
{
	yajl_val	 v = json_new_obj();
	yajl_gen	 g;
	char		*out;

	json_obj_set(v, "i", json_new_int(-9007199254740993LL));
	json_obj_set(v, "t", json_new_bool(1));
	json_obj_set(v, "f", json_new_bool(0));
	json_obj_set(v, "n", json_new_null());
	json_obj_set(v, "s", json_new_str(NULL));
	is_str(dump(v), "{\"i\":-9007199254740993,\"t\":true,\"f\":false,"
	    "\"n\":null,\"s\":\"\"}", "built tree dumps as expected");
	json_free_secret(v);

	g = yajl_gen_alloc(NULL);
	yajl_gen_map_open(g);
	json_gen_kstr(g, "k", "v");
	json_gen_kstr(g, "z", NULL);
	json_gen_kbool(g, "b", 1);
	json_gen_kint(g, "i", 3);
	json_gen_knull(g, "n");
	yajl_gen_map_close(g);
	out = json_gen_take(g, NULL);
	is_str(out, "{\"k\":\"v\",\"z\":null,\"b\":true,\"i\":3,\"n\":null}",
	    "generator shorthands");
	free(out);
	yajl_gen_free(g);
}

static void
test_copy(void)
{
	const char	*doc = "{\"a\":[1,2.5,\"s\",true,false,null,{}],"
	    "\"b\":{\"c\":{\"d\":[]}},\"e\":\"\\u00e9\"}";
	yajl_val	 v, c;
	char		 orig[512];

	v = parse(doc);
	c = json_copy(v);
	snprintf(orig, sizeof(orig), "%s", dump(v));
	is_str(dump(c), orig, "copy dumps like the original");
	ok(c != v && c->u.object.values[0] != v->u.object.values[0],
	    "copy shares no nodes");
	json_obj_set(json_obj_get(c, "b"), "c", json_new_null());
	is_str(dump(v), orig, "editing the copy leaves the original alone");
	json_free_secret(c);
	json_free_secret(v);
	ok(json_copy(NULL) == NULL, "copy of NULL is NULL");

	/* yajl keeps duplicate keys; get() finds the first one. */
	v = parse("{\"a\":1,\"b\":\"first\",\"b\":\"second\"}");
	c = json_copy(v);
	is_str(dump(c), "{\"a\":1,\"b\":\"first\",\"b\":\"second\"}",
	    "copy keeps duplicate keys");
	is_str(json_obj_str(c, "b"), json_obj_str(v, "b"),
	    "and finds the same value for them");
	json_free_secret(c);
	json_free_secret(v);

	/* Set and delete act on every member of a duplicated key. */
	v = parse("{\"b\":1,\"a\":2,\"b\":3,\"c\":4,\"b\":5}");
	json_obj_set(v, "b", json_new_int(9));
	is_str(dump(v), "{\"b\":9,\"a\":2,\"c\":4}",
	    "set replaces the first duplicate and drops the rest");
	json_free_secret(v);
	v = parse("{\"b\":1,\"a\":2,\"b\":3}");
	is_int(json_obj_del(v, "b"), 1, "delete of a duplicated key");
	is_str(dump(v), "{\"a\":2}", "removes every member of that name");
	ok(json_obj_get(v, "b") == NULL, "and none is found after");
	json_free_secret(v);
}

static void
test_pretty(void)
{
	yajl_val	 v = parse("{\"a\":1,\"b\":{\"c\":\"x\"}}");
	size_t		 len = 0;
	char		*out = json_dump(v, 1, &len);

	is_str(out, "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": \"x\"\n  }\n}\n",
	    "pretty dump is yajl's 2-space format");
	is_int(len, strlen(out ? out : ""), "reported length matches");
	ok(len >= 2 && out[len - 1] == '\n' && out[len - 2] != '\n',
	    "ends in exactly one newline");
	free(out);
	json_free_secret(v);
	v = parse("7");
	out = json_dump(v, 1, NULL);
	is_str(out, "7\n", "a pretty scalar also ends in one newline");
	free(out);
	json_free_secret(v);
}

static void
test_numbers_strings(void)
{
	const char	*nums = "[1.50,12345678901234567890,-0,1e5,-1.25E-3,0]";
	const char	*str = "\"q\\\"b\\\\c\\u0001\\n\\t\\u00e9"
	    "\\ud83d\\ude00/\"";
	yajl_val	 v;
	char		 once[256];

	is_str(roundtrip(nums), nums, "numbers keep their original text");
	v = parse("12345678901234567890");
	ok(YAJL_IS_NUMBER(v) && strcmp(v->u.number.r,
	    "12345678901234567890") == 0, "huge integer kept as text");
	json_free_secret(v);
	v = parse(str);
	is_str(YAJL_GET_STRING(v), "q\"b\\c\x01\n\t\xc3\xa9\xf0\x9f\x98\x80/",
	    "escapes decode to the right bytes");
	snprintf(once, sizeof(once), "%s", dump(v));
	is_str(once, "\"q\\\"b\\\\c\\u0001\\n\\t\xc3\xa9\xf0\x9f\x98\x80/\"",
	    "quotes, backslashes, controls escaped; UTF-8 kept");
	json_free_secret(v);
	is_str(roundtrip(once), once, "escaped string round-trips unchanged");
	v = json_new_str("\x1f\x7f\r");
	is_str(dump(v), "\"\\u001F\x7f\\r\"", "controls of a built string");
	json_free_secret(v);
}

/* Nested trees from the parser and from edits are freed whole. */
static void
test_free_secret(void)
{
	yajl_val	 v, o;
	char		*d;

	/* Each level is an object and an array: 32 deep in all. */
	d = nested(CD_JSON_DEPTH_MAX / 2, "{\"s\":\"x\",\"k\":[", "]}");
	v = parse(d);
	ok(v != NULL, "parse a 32-deep mixed tree");
	free(d);
	o = json_new_obj();
	json_obj_set(o, "tree", v);
	json_obj_set(o, "copy", json_copy(v));
	json_obj_set(o, "copy", json_copy(v));	/* frees the first copy */
	json_obj_del(json_obj_get(o, "copy"), "k");
	json_free_secret(o);
	json_free_secret(NULL);
	ok(1, "nested trees freed (ASan checks for leaks and double frees)");
}

int
main(void)
{
	test_refusals();
	test_depth_and_comments();
	test_order_and_edits();
	test_build();
	test_copy();
	test_pretty();
	test_numbers_strings();
	test_free_secret();
	return tap_done();
}
