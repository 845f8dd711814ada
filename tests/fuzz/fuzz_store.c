/*
 * libFuzzer target for mcp-tokens.json as the vault reads and rewrites
 * it (store_json_parse() and store_json_edit() in lib/store.c). The
 * input is the file's text.
 *
 * Invariants: a text is refused with a sentence or parsed into an
 * object (white space alone is {}); the vault's rewrite of an accepted
 * file parses again to the same members in the same order, and a second
 * rewrite gives the same bytes; for each connector the vault stores,
 * a put leaves exactly one member of that name holding the new entry
 * and a delete leaves none, and every other member is kept as it was,
 * in order; every rewrite is one the vault can read back (at most
 * CD_STORE_FILE_MAX bytes), or is refused with a sentence. abort() on
 * any violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"
#include "store.h"

/* Inputs larger than this only slow the run; the size checks below
 * hold for any size. */
#define FUZZ_STORE_MAX (64 * 1024)
/* A member name no file holds: a control character leads it. */
#define FUZZ_ABSENT "\001absent"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const conns[] = { "github", "vercel", "manus",
    "vercel_client" };

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* The compact text of v, for comparisons. */
static char *
text(yajl_val v)
{
	char *t = json_dump(v, 0, NULL);

	check(t != NULL);
	return t;
}

static int
same(yajl_val a, yajl_val b)
{
	char	*ta = text(a), *tb = text(b);
	int	 eq = strcmp(ta, tb) == 0;

	free(ta);
	free(tb);
	return eq;
}

/* Parse a rewrite as the vault reads it back. */
static yajl_val
reread(const char *buf, size_t len)
{
	yajl_val	 v;
	char		 err[256];

	check(len <= CD_STORE_FILE_MAX);
	check(store_json_parse(buf, len, "mcp-tokens.json", &v, err,
	    sizeof(err)) == STORE_OK);
	return v;
}

/* The members of a other than key, in order, must be those of b. */
static void
others_kept(yajl_val a, yajl_val b, const char *key)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < a->u.object.len &&
		    strcmp(a->u.object.keys[i], key) == 0)
			i++;
		while (j < b->u.object.len &&
		    strcmp(b->u.object.keys[j], key) == 0)
			j++;
		if (i == a->u.object.len || j == b->u.object.len)
			break;
		check(strcmp(a->u.object.keys[i], b->u.object.keys[j]) == 0 &&
		    same(a->u.object.values[i], b->u.object.values[j]));
		i++;
		j++;
	}
	check(i == a->u.object.len && j == b->u.object.len);
}

static size_t
count(yajl_val v, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < v->u.object.len; i++)
		n += strcmp(v->u.object.keys[i], key) == 0;
	return n;
}

/* Put (entry != NULL) or delete key on a copy of doc. */
static void
edit(yajl_val doc, const char *key, int put)
{
	static const char ejson[] = "{\"access_token\":\"gho_fz\","
	    "\"refresh_token\":null,\"expires_at\":0,\"token_type\":\"Bearer\"}";
	yajl_val	 d = json_copy(doc), entry = NULL, after;
	char		 err[256], *out;
	size_t		 len = 0;

	check(d != NULL);
	if (put)
		check((entry = json_parse(ejson, strlen(ejson), sizeof(ejson),
		    err, sizeof(err))) != NULL);
	if (store_json_edit(d, key, put ? json_copy(entry) : NULL, &out, &len,
	    err, sizeof(err)) != STORE_OK) {
		/* Refused, with a sentence: the file stays as it was. */
		check(out == NULL && err[0] != '\0');
	} else {
		check(strlen(out) == len);
		after = reread(out, len);
		check(count(after, key) == (put ? 1u : 0u));
		if (put)
			check(same(json_obj_get(after, key), entry));
		others_kept(doc, after, key);
		json_free_secret(after);
		free(out);
	}
	if (entry != NULL)
		json_free_secret(entry);
	json_free_secret(d);
}

/* The rewrite of an unchanged file parses to the same and is stable.
 * 0, or -1 when it is refused as too large. */
static int
round_trip(yajl_val doc)
{
	yajl_val	 d = json_copy(doc), again;
	char		 err[256], *out, *out2;
	size_t		 len = 0, len2 = 0;

	check(d != NULL);
	/* Deleting a member no file has rewrites the file unchanged. */
	if (store_json_edit(d, FUZZ_ABSENT, NULL, &out, &len, err,
	    sizeof(err)) != STORE_OK) {
		check(out == NULL && err[0] != '\0');
		json_free_secret(d);
		return -1;
	}
	again = reread(out, len);
	check(again->u.object.len == doc->u.object.len);
	others_kept(doc, again, FUZZ_ABSENT);
	check(store_json_edit(again, FUZZ_ABSENT, NULL, &out2, &len2, err,
	    sizeof(err)) == STORE_OK);
	check(len2 == len && memcmp(out, out2, len) == 0);
	free(out2);
	json_free_secret(again);
	free(out);
	json_free_secret(d);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	yajl_val	 doc;
	char		 err[256];

	if (size > FUZZ_STORE_MAX)
		return 0;
	err[0] = '\0';
	if (store_json_parse((const char *)data, size, "mcp-tokens.json", &doc,
	    err, sizeof(err)) != STORE_OK) {
		check(err[0] != '\0' && doc == NULL);
		return 0;
	}
	check(YAJL_IS_OBJECT(doc));
	/* A file whose rewrite is already refused as too large gets no
	 * edits: a put is refused the same way, and the deletes cost a
	 * megabyte each; smaller inputs cover them. */
	if (round_trip(doc) == 0) {
		for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
			edit(doc, conns[i], 1);
			edit(doc, conns[i], 0);
		}
	}
	json_free_secret(doc);
	return 0;
}
