/*
 * libFuzzer target for the rclone.conf editor. Any input is either refused
 * by every function alike, with a sentence, or accepted; for an accepted
 * one, appending a fresh section only adds bytes and only adds that
 * remote, deleting it again gives back the original (exactly, except the
 * documented normalisation of a text that ends in an empty line or lacks
 * its final line ending), and replacing or deleting an existing remote
 * changes nothing outside its own extent. abort() on any violation.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ini.h"

/* Remotes deleted and replaced per input, and sections whose extents
 * are compared after each delete: enough to cover the first, the last
 * and some in between without making each run slow. */
#define FUZZ_EDITS 4
#define FUZZ_EXTENTS 32
/* Room left below CD_STORE_FILE_MAX for the sections added. */
#define FUZZ_ROOM 1024

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char err[1024];

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* The remotes of buf (which must parse); their number in *n. */
static struct ini_remote *
list(const char *buf, size_t len, size_t *n)
{
	size_t			 max = len / 3 + 2;
	struct ini_remote	*r = calloc(max, sizeof(*r));

	check(r != NULL);
	check(ini_list(buf, len, r, max, n, err, sizeof(err)) == 0);
	return r;
}

/* Whether the i-th of n remotes gets the costly checks (one parse or
 * more each): an even spread that includes the first and the last. */
static int
sampled(size_t i, size_t n)
{
	return i % (n / FUZZ_EXTENTS + 1) == 0 || i + 1 == n;
}

static int
same(const struct ini_remote *a, const struct ini_remote *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->type, b->type) == 0;
}

/* A refused text must be refused by every function, with a sentence. */
static void
refused(const char *buf, size_t len)
{
	size_t o;

	check(err[0] != '\0');
	err[0] = '\0';
	check(ini_find(buf, len, "fz-new", NULL, 0, err, sizeof(err)) == -1);
	check(ini_put(buf, len, "fz-new", "[fz-new]\n", &o, err,
	    sizeof(err)) == NULL && err[0] != '\0');
	check(ini_delete(buf, len, "fz-new", &o, err, sizeof(err)) == NULL);
}

/* What deleting a freshly appended section gives back (see ini_put()
 * and ini_delete()): the text with its last line ended, plus at most the
 * one separating empty line the append added when the text did not end
 * in a blank line. This is the base; the caller allows the separator. */
static char *
round_trip_model(const char *t, size_t len, size_t *mlen)
{
	size_t		 bom = len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0 ?
			    3 : 0, ls;
	const char	*nl = memrchr(t, '\n', len);
	const char	*eol = nl != NULL && nl > t && nl[-1] == '\r' ?
			    "\r\n" : "\n";
	char		*m = malloc(len + 3);

	check(m != NULL);
	memcpy(m, t, len);
	*mlen = len;
	if (len > bom && t[len - 1] != '\n') {
		memcpy(m + len, eol, strlen(eol));
		*mlen += strlen(eol);
	}
	(void)ls;
	return m;
}

static void
fresh(const char *t, size_t len, const struct ini_remote *old, size_t n)
{
	static const char *const keys[] = { "type", "token", NULL };
	static const char *const vals[] = { "fuzztype", "{\"a\":1}", NULL };
	struct ini_remote	*r;
	char			*sect, *a, *d, *m;
	size_t			 an, dn, mn, rn, s1, e1, s2, e2;

	check((sect = ini_section("fz-new", keys, vals, err,
	    sizeof(err))) != NULL);
	check((a = ini_put(t, len, "fz-new", sect, &an, err,
	    sizeof(err))) != NULL);
	free(sect);
	check(an > len && memcmp(a, t, len) == 0);
	r = list(a, an, &rn);
	check(rn == n + 1);
	for (size_t i = 0; i < n; i++)
		check(same(&r[i], &old[i]));
	for (size_t i = 0; i < n; i++) {
		if (!sampled(i, n))
			continue;
		check(ini_extent(t, len, old[i].name, &s1, &e1, err,
		    sizeof(err)) == 1);
		/* Only an unended last line gains its line ending. */
		check(ini_extent(a, an, old[i].name, &s2, &e2, err,
		    sizeof(err)) == 1 && s1 == s2 && (e1 == e2 ||
		    (e1 == len && t[len - 1] != '\n' && e2 > e1 &&
		    e2 - e1 <= 2 && a[e2 - 1] == '\n')));
	}
	check(strcmp(r[n].name, "fz-new") == 0 &&
	    strcmp(r[n].type, "fuzztype") == 0);
	free(r);
	check((d = ini_delete(a, an, "fz-new", &dn, err, sizeof(err))) != NULL);
	m = round_trip_model(t, len, &mn);
	check(dn >= mn && memcmp(d, m, mn) == 0 && (dn == mn ||
	    (dn == mn + 1 && d[mn] == '\n') ||
	    (dn == mn + 2 && d[mn] == '\r' && d[mn + 1] == '\n')));
	free(m);
	/* A second round trip changes nothing: no blank lines pile up. */
	{
		char	*a2, *d2, *sect2;
		size_t	 an2, dn2;

		check((sect2 = ini_section("fz-new", keys, vals, err,
		    sizeof(err))) != NULL);
		check((a2 = ini_put(d, dn, "fz-new", sect2, &an2, err,
		    sizeof(err))) != NULL);
		check((d2 = ini_delete(a2, an2, "fz-new", &dn2, err,
		    sizeof(err))) != NULL);
		check(dn2 == dn && memcmp(d2, d, dn) == 0);
		free(sect2);
		free(a2);
		free(d2);
	}
	free(a);
	free(d);
}

/* The extent of name in buf, which must exist. */
static void
extent(const char *buf, size_t len, const char *name, size_t *s, size_t *e)
{
	check(ini_extent(buf, len, name, s, e, err, sizeof(err)) == 1);
}

static void
delete_one(const char *t, size_t len, const struct ini_remote *old,
    size_t n, size_t x)
{
	struct ini_remote	*r;
	char			*d;
	size_t			 dn, rn, s, e, g, s2, e2;

	extent(t, len, old[x].name, &s, &e);
	check((d = ini_delete(t, len, old[x].name, &dn, err,
	    sizeof(err))) != NULL);
	/* Removed: the extent, and before it at most one empty line. */
	check(dn <= len - (e - s) && memcmp(d + dn - (len - e), t + e,
	    len - e) == 0);
	g = dn - (len - e);
	check(g <= s && memcmp(d, t, g) == 0);
	check(g == s || (s - g == 1 && t[g] == '\n') ||
	    (s - g == 2 && t[g] == '\r' && t[g + 1] == '\n'));
	check(g == s || g == 0 || t[g - 1] == '\n' || (g == 3 &&
	    memcmp(t, "\xef\xbb\xbf", 3) == 0));
	r = list(d, dn, &rn);
	check(rn == n - 1);
	for (size_t i = 0, j = 0; i < n; i++)
		if (i != x)
			check(same(&r[j++], &old[i]));
	for (size_t i = 0; i < n; i++) {
		if (i == x || !sampled(i, n))
			continue;
		extent(t, len, old[i].name, &s, &e);
		extent(d, dn, old[i].name, &s2, &e2);
		check(e - s == e2 - s2 && memcmp(t + s, d + s2, e - s) == 0);
	}
	free(r);
	free(d);
}

static void
replace_one(const char *t, size_t len, const struct ini_remote *old,
    size_t n, size_t x)
{
	struct ini_remote	*r;
	char			 sect[INI_NAME_MAX + 32], *p;
	size_t			 pn, rn, s, e;

	snprintf(sect, sizeof(sect), "[%s]\ntype = fz\n", old[x].name);
	extent(t, len, old[x].name, &s, &e);
	check((p = ini_put(t, len, old[x].name, sect, &pn, err,
	    sizeof(err))) != NULL);
	check(pn >= s + (len - e) && memcmp(p, t, s) == 0 &&
	    memcmp(p + pn - (len - e), t + e, len - e) == 0);
	r = list(p, pn, &rn);
	check(rn == n);
	for (size_t i = 0; i < n; i++)
		check(i == x ? strcmp(r[i].name, old[i].name) == 0 &&
		    strcmp(r[i].type, "fz") == 0 : same(&r[i], &old[i]));
	free(r);
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*t = (const char *)data;
	struct ini_remote	*old;
	size_t			 max = size / 3 + 2, n, o;
	char			 type[INI_TYPE_MAX + 1];

	if (size > CD_STORE_FILE_MAX - FUZZ_ROOM)
		return 0;
	check((old = calloc(max, sizeof(*old))) != NULL);
	err[0] = '\0';
	if (ini_list(t, size, old, max, &n, err, sizeof(err)) == -1) {
		refused(t, size);
		free(old);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		check(!sampled(i, n) || (ini_find(t, size, old[i].name, type, sizeof(type), err,
		    sizeof(err)) == 1 && strcmp(type, old[i].type) == 0));
	switch (ini_find(t, size, "fz-new", NULL, 0, err, sizeof(err))) {
	case 0:
		check(ini_delete(t, size, "fz-new", &o, err,
		    sizeof(err)) == NULL && err[0] != '\0');
		fresh(t, size, old, n);
		break;
	case 1:
		break;
	default:
		abort();
	}
	for (size_t k = 0; k < FUZZ_EDITS && k < n; k++) {
		size_t x = k == 0 ? 0 : k == 1 ? n - 1 : (n * k) / FUZZ_EDITS;

		delete_one(t, size, old, n, x);
		replace_one(t, size, old, n, x);
	}
	free(old);
	return 0;
}
