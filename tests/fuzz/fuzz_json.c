/*
 * libFuzzer target for the JSON helpers. Any input must be refused with a
 * sentence or parsed into a tree no deeper than CD_JSON_DEPTH_MAX. A
 * parsed tree must serialise to text that parses back and serialises to
 * the same bytes (the vault rewrites files it loaded, so a second rewrite
 * must change nothing); its deep copy and its pretty form must give the
 * same compact text too. Every tree is freed with json_free_secret().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"

/* What json_parse() accepts from a peer in the tests below. */
#define FUZZ_JSON_MAX (64 * 1024)
/* Room for the pretty form of an accepted input when parsed again. */
#define FUZZ_PRETTY_MAX (16 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether v nests deeper than left levels; recursion stays bounded. */
static int
too_deep(yajl_val v, int left)
{
	size_t		 n = 0;
	yajl_val	*vals = NULL;

	if (!YAJL_IS_OBJECT(v) && !YAJL_IS_ARRAY(v))
		return 0;
	if (left == 0)
		return 1;
	if (YAJL_IS_OBJECT(v)) {
		n = v->u.object.len;
		vals = v->u.object.values;
	} else {
		n = v->u.array.len;
		vals = v->u.array.values;
	}
	for (size_t i = 0; i < n; i++)
		if (too_deep(vals[i], left - 1))
			return 1;
	return 0;
}

/* Parse text that we produced ourselves: it must be accepted. */
static yajl_val
reparse(const char *text, size_t len, size_t max)
{
	char		 err[256];
	yajl_val	 v;

	if ((v = json_parse(text, len, max, err, sizeof(err))) == NULL)
		abort();
	return v;
}

static void
same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (a == NULL || b == NULL || alen != blen || memcmp(a, b, alen) != 0)
		abort();
}

static void
check_copy(yajl_val v, const char *d1, size_t l1)
{
	yajl_val	 c;
	char		*dc;
	size_t		 lc = 0;

	if ((c = json_copy(v)) == NULL)
		abort();
	dc = json_dump(c, 0, &lc);
	same(d1, l1, dc, lc);
	free(dc);
	json_free_secret(c);
}

static void
check_pretty(yajl_val v, const char *d1, size_t l1)
{
	yajl_val	 p;
	char		*pretty, *dp;
	size_t		 lp = 0, ld = 0;

	if ((pretty = json_dump(v, 1, &lp)) == NULL)
		abort();
	if (lp == 0 || pretty[lp - 1] != '\n' || strlen(pretty) != lp)
		abort();
	p = reparse(pretty, lp, FUZZ_PRETTY_MAX);
	dp = json_dump(p, 0, &ld);
	same(d1, l1, dp, ld);
	free(dp);
	free(pretty);
	json_free_secret(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	yajl_val	 v, v2;
	char		 err[256], *d1, *d2;
	size_t		 l1 = 0, l2 = 0;

	err[0] = '\0';
	v = json_parse((const char *)data, size, FUZZ_JSON_MAX, err,
	    sizeof(err));
	if (v == NULL) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	if (too_deep(v, CD_JSON_DEPTH_MAX))
		abort();
	if ((d1 = json_dump(v, 0, &l1)) == NULL || strlen(d1) != l1)
		abort();
	v2 = reparse(d1, l1, FUZZ_PRETTY_MAX);
	d2 = json_dump(v2, 0, &l2);
	same(d1, l1, d2, l2);
	check_copy(v, d1, l1);
	check_pretty(v, d1, l1);
	free(d2);
	json_free_secret(v2);
	free(d1);
	json_free_secret(v);
	return 0;
}
