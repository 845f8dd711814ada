/*
 * Unit tests of lib/ini.c: listing a realistic rclone.conf (comments,
 * blank lines, a key before any section, CRLF lines, goconfig's quoting),
 * appending to empty and unterminated files, replacing and deleting with
 * every other byte compared, the refusals, ini_section()'s checks, and
 * add-then-delete round trips. If /usr/bin/rclone exists, files made by
 * ini_put() and ini_delete() are also listed by rclone itself, which must
 * see the same remotes with the same types.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cd_limits.h"
#include "ini.h"
#include "tap.h"

#ifndef RCLONE
#define RCLONE "/usr/bin/rclone"
#endif
#define LIST_MAX 64

static char err[512];

/* The parts of a realistic file, so that expected edits are spelt out
 * as the parts they keep. */
#define P0 "; rclone.conf for the test workspace\n" \
	"# written by hand, partly on Windows\n" \
	"default_key = yes\n"
#define B "\n"
#define G "[gdrive]\n" \
	"type = drive\n" \
	"scope = drive\n" \
	"token = {\"access_token\":\"ya29.a0\",\"token_type\":\"Bearer\"," \
	"\"refresh_token\":\"1//0g\",\"expiry\":\"2024-05-01T10:00:00Z\"}\n" \
	"team_drive = \n"
#define C1 "\n# OneDrive for work\r\n"
#define W "[work od]\r\n" \
	"type = onedrive\r\n" \
	"drive_id = b!XYZ\r\n" \
	"drive_type = business\r\n"
#define C2 "\r\n"
#define N "[notype]\n" \
	"; a section without a type\n" \
	"key = value\n"
#define C3 "\n"
#define S3 "  [ s3.backup ]  \n" \
	"\ttype   =   s3  \n" \
	"provider: AWS\n"
#define C4 "\n# trailing comment\n"
#define REALISTIC P0 B G C1 W C2 N C3 S3 C4

/* Whether got (n bytes) is exactly want; prints both if not. */
static void
is_mem(const char *got, size_t n, const char *want, const char *name)
{
	int same = got != NULL && n == strlen(want) &&
	    memcmp(got, want, n) == 0;

	if (!ok(same, name)) {
		printf("# got (%zu bytes): ", n);
		for (size_t i = 0; got != NULL && i < n; i++)
			printf(got[i] == '\n' ? "\\n" : got[i] == '\r' ? "\\r" :
			    "%c", got[i]);
		printf("\n# err: %s\n", err);
	}
}

static char *
put(const char *text, const char *name, const char *sect, size_t *n)
{
	err[0] = '\0';
	return ini_put(text, strlen(text), name, sect, n, err, sizeof(err));
}

static char *
del(const char *text, const char *name, size_t *n)
{
	err[0] = '\0';
	return ini_delete(text, strlen(text), name, n, err, sizeof(err));
}

/* ini_list's verdict on text: -1, or the number of remotes. */
static long
count(const char *text, size_t len)
{
	struct ini_remote	r[LIST_MAX];
	size_t			n;

	err[0] = '\0';
	if (ini_list(text, len, r, LIST_MAX, &n, err, sizeof(err)) == -1)
		return -1;
	return (long)n;
}

/* The text is refused with a sentence that mentions what. */
static void
refused(const char *text, size_t len, const char *what, const char *name)
{
	long n = count(text, len);

	if (!ok(n == -1 && strstr(err, what) != NULL, name))
		printf("# got %ld, err '%s'\n", n, err);
}

static void
test_list(void)
{
	struct ini_remote	r[LIST_MAX];
	const char		*text = REALISTIC;
	char			 type[INI_TYPE_MAX + 1];
	size_t			 n, s, e;

	is_int(ini_list(text, strlen(text), r, LIST_MAX, &n, err,
	    sizeof(err)), 0, "list a realistic file");
	is_int(n, 4, "four remotes; the key before any section is none");
	is_str(r[0].name, "gdrive", "first name");
	is_str(r[0].type, "drive", "first type");
	is_str(r[1].name, "work od", "CRLF section name, with its space");
	is_str(r[1].type, "onedrive", "CRLF section type without the \\r");
	is_str(r[2].name, "notype", "section without type");
	is_str(r[2].type, "", "its type is empty");
	is_str(r[3].name, "s3.backup", "header with spaces around and inside");
	is_str(r[3].type, "s3", "type with tab and spaces trimmed");
	is_int(ini_list(text, strlen(text), r, 3, &n, err, sizeof(err)), -1,
	    "more remotes than max is refused");
	is_int(ini_find(text, strlen(text), "work od", type, sizeof(type), err,
	    sizeof(err)), 1, "find an existing remote");
	is_str(type, "onedrive", "find copies its type");
	is_int(ini_find(text, strlen(text), "Gdrive", type, sizeof(type), err,
	    sizeof(err)), 0, "names are case-sensitive, as in rclone");
	is_int(ini_extent(text, strlen(text), "notype", &s, &e, err,
	    sizeof(err)), 1, "extent of a middle section");
	is_mem(text + s, e - s, N, "the extent ends at the last key line");
	is_int(ini_list(NULL, 0, r, LIST_MAX, &n, err, sizeof(err)), 0,
	    "a missing file (NULL, 0) lists as empty");
}

/* goconfig's less known readings, as rclone 1.60 showed them. */
static void
test_goconfig(void)
{
	static const char	 text[] = "\xef\xbb\xbf[q1]\ntype: x\n"
	    "[q2]\n`type` = `y`\n[q3]\ntype = \"z\"\n[q4]\xc2\xa0\n"
	    "type = \"\"\"w\"\"\"\n[q5]\ntype = a\ntype = b\n";
	struct ini_remote	 r[LIST_MAX];
	size_t			 n;

	is_int(ini_list(text, strlen(text), r, LIST_MAX, &n, err,
	    sizeof(err)), 0, "goconfig oddities parse");
	ok(n == 5 && strcmp(r[0].name, "q1") == 0 &&
	    strcmp(r[3].name, "q4") == 0, "BOM and U+00A0 are skipped");
	ok(strcmp(r[0].type, "x") == 0 && strcmp(r[1].type, "y") == 0,
	    "':' separates too; backquotes are removed");
	ok(strcmp(r[2].type, "\"z\"") == 0 && strcmp(r[3].type, "w") == 0,
	    "double quotes are kept, triple ones removed");
	is_str(r[4].type, "b", "the last type key wins");
}

/* A literal refused; its length includes any NUL inside. */
#define REFUSED(lit, what, name) refused(lit, sizeof(lit) - 1, what, name)

static void
test_refusals(void)
{
	char	*big;
	size_t	 len;

	REFUSED("[a]\ntype = x\n[b]\n[a]\nk = v\n", "[a] appears twice",
	    "a duplicate section is named");
	REFUSED("[a\ntype = x\n", "']'", "a header that does not close");
	REFUSED("[a]\ntype = x\0y\n", "NUL", "a NUL byte");
	REFUSED("[]\n", "section name", "an empty section name");
	REFUSED("[a]\nbare\n", "line 2", "a line that is no key");
	REFUSED("# c\nRCLONE_ENCRYPT_V0:\nabc\n", "encrypted",
	    "an encrypted file");
	REFUSED("k = v\n[DEFAULT]\n", "DEFAULT",
	    "[DEFAULT] beside keys before any section");
	REFUSED("[a]\ntype = `x\n", "line 2", "an unclosed backquote");
	REFUSED("[a]\ntype = abcdefghijklmnopqrstuvwxyzabcdefg\n",
	    "longer than", "a type of 33 bytes");
	len = CD_STORE_FILE_MAX + 1;
	if ((big = malloc(len)) == NULL)
		abort();
	memset(big, '#', len);
	refused(big, len, "larger", "a file over CD_STORE_FILE_MAX");
	memcpy(big, "[a]\n", 4);
	refused(big, INI_LINE_MAX + 6, "longer than", "a line over 64 KiB");
	big[0] = '[';
	memset(big + 1, 'n', INI_NAME_MAX);
	memcpy(big + 1 + INI_NAME_MAX, "]\n", 2);
	is_int(count(big, INI_NAME_MAX + 3), 1, "a name of 128 bytes");
	memcpy(big + 1 + INI_NAME_MAX, "n]\n", 3);
	refused(big, INI_NAME_MAX + 4, "section name", "a name of 129 bytes");
	free(big);
}

static void
test_section(void)
{
	const char *const	 k[] = { "type", "token", "team_drive", NULL };
	const char *const	 v[] = { "drive", "{\"a\":\"b c\"}", "", NULL };
	char			*s;

	s = ini_section("my drive", k, v, err, sizeof(err));
	is_str(s, "[my drive]\ntype = drive\ntoken = {\"a\":\"b c\"}\n"
	    "team_drive = \n", "ini_section builds rclone's layout");
	free(s);
#define REJECT(name, keys, vals, why) do {				\
	const char *const rk_[] = keys, *const rv_[] = vals;		\
	ok(ini_section(name, rk_, rv_, err, sizeof(err)) == NULL &&	\
	    err[0] != '\0', why);					\
} while (0)
#define L(...) { __VA_ARGS__, NULL }
	REJECT("a\nb", L("type"), L("x"), "newline in the name");
	REJECT("a[b", L("type"), L("x"), "'[' in the name");
	REJECT("a]b", L("type"), L("x"), "']' in the name");
	REJECT(" a", L("type"), L("x"), "leading space in the name");
	REJECT("", L("type"), L("x"), "empty name");
	REJECT("a", L("type"), L("x\ny"), "newline in a value");
	REJECT("a", L("type"), L("x\r"), "CR in a value");
	REJECT("a", L("type"), L("x "), "trailing space in a value");
	REJECT("a", L("type"), L("`x`"), "a value goconfig would unquote");
	REJECT("a", L("ty=pe"), L("x"), "'=' in a key");
	REJECT("a", L("ty:pe"), L("x"), "':' in a key");
	REJECT("a", L("#k"), L("x"), "a key that reads as a comment");
	REJECT("a", L("-"), L("x"), "the key goconfig renumbers");
	REJECT("a", L("k", "k"), L("x", "y"), "a key given twice");
#undef L
#undef REJECT
}

static void
test_append(void)
{
	const char	*sect = "[b]\ntype = y\n";
	char		*o;
	size_t		 n;

	o = put("", "b", sect, &n);
	is_mem(o, n, sect, "append to an empty file");
	free(o);
	o = ini_put(NULL, 0, "b", sect, &n, err, sizeof(err));
	is_mem(o, n, sect, "append to a missing file (NULL)");
	free(o);
	o = put("[a]\ntype = x", "b", sect, &n);
	is_mem(o, n, "[a]\ntype = x\n\n[b]\ntype = y\n",
	    "append ends the last line, then a blank line");
	free(o);
	o = put("[a]\ntype = x\n\n", "b", sect, &n);
	is_mem(o, n, "[a]\ntype = x\n\n[b]\ntype = y\n",
	    "no second blank line after one");
	free(o);
	o = put("[a]\ntype = x\n", "b", sect, &n);
	is_mem(o, n, "[a]\ntype = x\n\n[b]\ntype = y\n",
	    "a blank line after a key line");
	free(o);
	o = put("[a]\r\ntype = x\r\n", "b", sect, &n);
	is_mem(o, n, "[a]\r\ntype = x\r\n\r\n[b]\r\ntype = y\r\n",
	    "a CRLF file gets a CRLF section");
	free(o);
	o = put(REALISTIC, "new", "[new]\ntype = local\n", &n);
	is_mem(o, n, REALISTIC "\n[new]\ntype = local\n",
	    "append after a trailing comment");
	free(o);
}

static void
test_replace(void)
{
	char	*o;
	size_t	 n;

	o = put(REALISTIC, "notype", "[notype]\ntype = local\n", &n);
	is_mem(o, n, P0 B G C1 W C2 "[notype]\ntype = local\n" C3 S3 C4,
	    "replace in the middle keeps every byte before and after");
	ok(o != NULL && memcmp(o, P0 B G C1 W C2, strlen(P0 B G C1 W C2)) ==
	    0 && strcmp(o + n - strlen(C3 S3 C4), C3 S3 C4) == 0,
	    "prefix and suffix are the old ones");
	free(o);
	o = put(REALISTIC, "work od", "[work od]\ntype = onedrive\n"
	    "drive_id = b!NEW\n", &n);
	is_mem(o, n, P0 B G C1 "[work od]\r\ntype = onedrive\r\n"
	    "drive_id = b!NEW\r\n" C2 N C3 S3 C4,
	    "a replaced CRLF section stays CRLF");
	free(o);
	o = put("[a]\ntype = x", "a", "[a]\ntype = y\n", &n);
	is_mem(o, n, "[a]\ntype = y\n", "replace the unterminated last one");
	free(o);
	ok(put(REALISTIC, "notype", "[other]\ntype = x\n", &n) == NULL &&
	    n == 0, "a section named otherwise is refused");
	ok(put(REALISTIC, "x", "[x]\ntype = a\n# note\n", &n) == NULL,
	    "a section with a trailing comment is refused");
	ok(put(REALISTIC, "x", "k = v\n[x]\n", &n) == NULL,
	    "a section with a preamble is refused");
	ok(put(REALISTIC, "x", "[x]\n[y]\n", &n) == NULL,
	    "two sections are refused");
	ok(put(REALISTIC, "DEFAULT", "[DEFAULT]\ntype = a\n", &n) == NULL,
	    "DEFAULT beside keys before any section is refused");
	ok(put("[a]\n[a]\n", "b", "[b]\n", &n) == NULL && strstr(err,
	    "twice") != NULL, "put refuses a file with duplicates");
}

static void
test_delete(void)
{
	char	*o;
	size_t	 n;

	o = del(REALISTIC, "gdrive", &n);
	is_mem(o, n, P0 C1 W C2 N C3 S3 C4,
	    "delete the first with the blank line above it");
	free(o);
	o = del(REALISTIC, "work od", &n);
	is_mem(o, n, P0 B G C1 C2 N C3 S3 C4,
	    "delete a middle one; a comment above it is not a blank line");
	free(o);
	o = del(REALISTIC, "notype", &n);
	is_mem(o, n, P0 B G C1 W C3 S3 C4, "delete one after a CRLF blank");
	free(o);
	o = del(REALISTIC, "s3.backup", &n);
	is_mem(o, n, P0 B G C1 W C2 N C4,
	    "delete the last; the trailing comment stays");
	free(o);
	o = del("[a]\ntype = x\n\n[b]\ntype = y\n\n", "a", &n);
	is_mem(o, n, "\n[b]\ntype = y\n\n", "the blank line below stays");
	free(o);
	o = del(REALISTIC, "missing", &n);
	ok(o == NULL && n == 0 && strstr(err, "no remote named missing") !=
	    NULL, "deleting a missing remote is an error");
	ok(del("[a\n", "a", &n) == NULL && strstr(err, "']'") != NULL,
	    "delete reports a parse error");
}

/*
 * Adding a section then deleting it gives back the same bytes, or, for a
 * text that did not end in an empty line, the same bytes plus the one
 * separating empty line the append added (which cannot be told from one
 * the user wrote); a second round trip then changes nothing.
 */
static int
round_trip_ok(const char *f, const char *d, size_t dn)
{
	size_t fl = strlen(f);

	if (d == NULL)
		return 0;
	if (dn == fl && memcmp(d, f, fl) == 0)
		return 1;
	return memcmp(d, f, fl) == 0 && ((dn == fl + 1 && d[fl] == '\n') ||
	    (dn == fl + 2 && d[fl] == '\r' && d[fl + 1] == '\n') ||
	    (dn == fl + 2 && d[fl] == '\n' && d[fl + 1] == '\n'));
}

static void
test_round_trip(void)
{
	static const char *const files[] = {
		"", "k = v\n", "[a]\ntype = x\n", REALISTIC,
		"[a]\r\ntype = x\r\n\r\n[b]\r\ntype = y\r\n",
		"\xef\xbb\xbf", "\xef\xbb\xbf[a]\ntype = x\n",
		"# only a comment\n", "[a]\ntype = x\n  \n", NULL,
	};
	const char	*sect = "[rt]\ntype = drive\ntoken = {}\n";
	char		*a, *d, name[64];
	size_t		 an, dn;
	int		 all = 1;

	for (int i = 0; files[i] != NULL; i++) {
		a = put(files[i], "rt", sect, &an);
		d = a != NULL ? ini_delete(a, an, "rt", &dn, err,
		    sizeof(err)) : NULL;
		snprintf(name, sizeof(name), "add then delete, file %d", i);
		ok(round_trip_ok(files[i], d, dn), name);
		if (d != NULL) {
			char *a2, *d2;
			size_t an2, dn2;

			a2 = put(d, "rt", sect, &an2);
			d2 = a2 != NULL ? ini_delete(a2, an2, "rt", &dn2, err,
			    sizeof(err)) : NULL;
			snprintf(name, sizeof(name), "and again, file %d: stable",
			    i);
			ok(d2 != NULL && dn2 == dn && memcmp(d2, d, dn) == 0,
			    name);
			free(a2);
			free(d2);
		}
		all &= a != NULL && an >= strlen(files[i]) && memcmp(a,
		    files[i], strlen(files[i])) == 0;
		free(a);
		free(d);
	}
	ok(all, "appending only ever adds bytes");
	/* A file ending in an empty line (as rclone writes it) gets no
	 * separator, and deleting leaves that line alone: exact. */
	a = put("[a]\ntype = x\n\n", "rt", sect, &an);
	d = ini_delete(a, an, "rt", &dn, err, sizeof(err));
	is_mem(d, dn, "[a]\ntype = x\n\n", "a trailing empty line is kept");
	free(a);
	a = put(d, "rt", sect, &an);
	free(d);
	d = ini_delete(a, an, "rt", &dn, err, sizeof(err));
	is_mem(d, dn, "[a]\ntype = x\n\n", "and then the text is stable");
	free(a);
	free(d);
}

static int
remote_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ini_remote *)a)->name,
	    ((const struct ini_remote *)b)->name);
}

static void
trim_to(char *dst, size_t size, const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		n--;
	snprintf(dst, size, "%.*s", (int)n, s);
}

/* Run "rclone listremotes --long" on path; its remotes in *got. */
static int
rclone_list(const char *dir, const char *path, struct ini_remote *got,
    size_t *n)
{
	char	 cmd[1024], line[512], *c;
	FILE	*p;

	snprintf(cmd, sizeof(cmd), "env -i HOME=%s PATH=/usr/bin:/bin "
	    RCLONE " listremotes --long --config %s 2>/dev/null", dir, path);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	*n = 0;
	while (fgets(line, sizeof(line), p) != NULL && *n < LIST_MAX) {
		if ((c = strchr(line, ':')) == NULL)
			continue;
		trim_to(got[*n].name, sizeof(got[*n].name), line,
		    (size_t)(c - line));
		trim_to(got[*n].type, sizeof(got[*n].type), c + 1,
		    strlen(c + 1));
		(*n)++;
	}
	return pclose(p) == 0 ? 0 : -1;
}

/* rclone lists text's remotes as ini_list() does (plus DEFAULT, with
 * type deftype, if deftype is not NULL: keys before any section). */
static void
cross_check(const char *dir, const char *text, size_t len,
    const char *deftype, const char *what)
{
	struct ini_remote	 want[LIST_MAX], got[LIST_MAX];
	char			 path[512], name[128];
	size_t			 n, m = 0, i;
	FILE			*f;

	snprintf(path, sizeof(path), "%s/rclone.conf", dir);
	if ((f = fopen(path, "wb")) == NULL || fwrite(text, 1, len, f) != len ||
	    fclose(f) != 0)
		abort();
	if (ini_list(text, len, want, LIST_MAX - 1, &n, err,
	    sizeof(err)) == -1)
		n = 0;
	if (deftype != NULL) {
		snprintf(want[n].name, sizeof(want[n].name), "DEFAULT");
		snprintf(want[n].type, sizeof(want[n].type), "%s", deftype);
		n++;
	}
	qsort(want, n, sizeof(*want), remote_cmp);
	snprintf(name, sizeof(name), "rclone lists %s", what);
	ok(rclone_list(dir, path, got, &m) == 0, name);
	for (i = 0; i < n && i < m; i++)
		if (strcmp(want[i].name, got[i].name) != 0 ||
		    strcmp(want[i].type, got[i].type) != 0)
			break;
	snprintf(name, sizeof(name), "rclone and ini_list agree on %s", what);
	if (!ok(n > 0 && n == m && i == n, name))
		for (i = 0; i < m; i++)
			printf("# rclone: '%s' '%s'\n", got[i].name,
			    got[i].type);
}

static void
test_rclone(void)
{
	static const char	*what[] = { "a file built by put and delete",
	    "the realistic file", "the realistic file after edits",
	    "goconfig oddities" };
	char			 dir[] = "/tmp/test_ini.XXXXXX", path[600];
	char			*t, *u;
	size_t			 n, i;

	if (access(RCLONE, X_OK) != 0) {
		for (i = 0; i < 2 * sizeof(what) / sizeof(what[0]); i++)
			ok(1, "rclone cross-check # SKIP " RCLONE
			    " is not installed");
		return;
	}
	if (mkdtemp(dir) == NULL)
		abort();
	t = put("", "gdrive", "[gdrive]\ntype = drive\ntoken = {}\n", &n);
	u = ini_put(t, n, "work od", "[work od]\ntype = onedrive\n", &n, err,
	    sizeof(err));
	free(t);
	t = ini_put(u, n, "notype", "[notype]\nkey = value\n", &n, err,
	    sizeof(err));
	free(u);
	u = ini_put(t, n, "s3.backup", "[s3.backup]\ntype = s3\n", &n, err,
	    sizeof(err));
	free(t);
	t = ini_delete(u, n, "work od", &n, err, sizeof(err));
	free(u);
	cross_check(dir, t ? t : "", t ? n : 0, NULL, what[0]);
	free(t);
	cross_check(dir, REALISTIC, strlen(REALISTIC), "", what[1]);
	t = put(REALISTIC, "notype", "[notype]\ntype = local\n", &n);
	u = ini_delete(t, n, "gdrive", &n, err, sizeof(err));
	free(t);
	t = ini_put(u, n, "new one", "[new one]\ntype = sftp\n", &n, err,
	    sizeof(err));
	free(u);
	cross_check(dir, t ? t : "", t ? n : 0, "", what[2]);
	free(t);
	t = "\xef\xbb\xbf[q1]\ntype: x\n[q2]\n`type` = `y`\n[q4]\xc2\xa0\n"
	    "type = \"\"\"w\"\"\"\n";
	cross_check(dir, t, strlen(t), NULL, what[3]);
	snprintf(path, sizeof(path), "%s/rclone.conf", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.config/rclone", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/.config", dir);
	rmdir(path);
	rmdir(dir);
}

int
main(void)
{
	test_list();
	test_goconfig();
	test_refusals();
	test_section();
	test_append();
	test_replace();
	test_delete();
	test_round_trip();
	test_rclone();
	return tap_done();
}
