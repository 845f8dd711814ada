/*
 * rclone.conf, read the way rclone 1.60 reads it (goconfig v1.0.0 behind
 * rclone's own encryption check) and edited one section at a time so that
 * every other byte stays as it was. Each rule below was checked against
 * the rclone binary with "rclone listremotes --long"; where rclone accepts
 * something odd we either follow it or refuse the file, but never read it
 * differently, because the vault must see the remotes that rclone sees.
 *
 *  1. The text is at most CD_STORE_FILE_MAX bytes and holds no NUL byte
 *     (rclone accepts NULs; nobody writes them on purpose). A UTF-8 byte
 *     order mark at the very start is skipped, as goconfig does, and is
 *     never removed by an edit.
 *  2. Lines end at "\n"; a "\r" just before it is part of the line ending
 *     and is kept. A last line without "\n" is still a line. A line holds
 *     at most INI_LINE_MAX bytes besides its "\n".
 *  3. Every line is trimmed of white space as Go's strings.TrimSpace does:
 *     \t \n \v \f \r and space, and the Unicode spaces U+0085, U+00A0,
 *     U+1680, U+2000 to U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 *  4. A line whose trimmed text is empty is blank; one starting with "#"
 *     or ";" is a comment. Nothing else is a comment: "type = x # y" has
 *     the type "x # y".
 *  5. A trimmed line starting with "[" and ending with "]" is a header;
 *     the section name is the trimmed text between them, brackets inside
 *     included ("[a]b]" names "a]b", as in goconfig). Names are compared
 *     byte for byte, as rclone does. An empty name (rclone turns "[]" into
 *     a remote "DEFAULT"), a name longer than INI_NAME_MAX, and a trimmed
 *     line starting with "[" but not ending with "]" (rclone reads
 *     "[a = b" as a key) are errors.
 *  6. Any other line is "key = value", split at the first "=" or ":"
 *     (goconfig takes both), which may not be its first byte; key and
 *     value are trimmed. As in goconfig, a key starting with ", """ (in a
 *     line of at least 6 bytes) or ` ends at the next such quote and is
 *     not trimmed; a value of at least 2 bytes starting with `, or of at
 *     least 6 starting with """, is the text between that quote and its
 *     last occurrence. A quote that does not close, and a line with no
 *     "=" or ":", are errors, as in rclone. Other quotes are data:
 *     'type = "drive"' has the type "drive" with its quotes.
 *  7. A section's type is the value of its last "type" key, "" if it has
 *     none, and may be at most INI_TYPE_MAX bytes.
 *  8. Lines before the first header belong to no section and are never
 *     edited. rclone shows their keys as a remote "DEFAULT" and merges a
 *     "[DEFAULT]" section into it, so a file with both is an error, and
 *     adding a section DEFAULT to a file with such keys is refused.
 *  9. A first line that is neither blank nor a comment and starts with
 *     "RCLONE_ENCRYPT_V" means rclone would decrypt the file first: an
 *     error, as an edit would destroy it.
 * 10. A second section with a name already seen is an error naming it:
 *     rclone would merge the two, and an edit of one of them would do
 *     something else than the user asked.
 * 11. A section's extent runs from the first byte of its header line to
 *     the end of its last key line (line ending included; the header line
 *     if it has no key). Blank lines and comments after that belong to
 *     what follows, so a comment above a header moves with that header,
 *     and comments at the end of the file outlive the last section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ini.h"

/* The UTF-8 byte order mark that goconfig skips at the start. */
#define INI_BOM "\xef\xbb\xbf"
#define INI_BOM_LEN 3
/* rclone's marker of an encrypted configuration. */
#define INI_ENCRYPTED "RCLONE_ENCRYPT_V"
/* Longest quoted name in an error, after replacing unprintable bytes. */
#define INI_SHOW_MAX (INI_NAME_MAX + 1)
/* Room for a sentence about the new section before it is prefixed. */
#define INI_ERR_MAX 512

enum ini_kind {
	INI_BLANK,
	INI_COMMENT,
	INI_HEADER,
	INI_KEY,
};

/* One line of the text as the parser sees it. */
struct ini_line {
	size_t		 start;		/* first byte */
	size_t		 end;		/* end of its text, before the "\n" */
	size_t		 next;		/* first byte of the next line */
	unsigned long	 no;		/* line number, from 1 */
	const char	*t;		/* the trimmed text */
	size_t		 tlen;
	enum ini_kind	 kind;
	const char	*key;		/* the key, or a header's name */
	size_t		 keylen;
	const char	*val;		/* INI_KEY: the value */
	size_t		 vallen;
};

struct ini_sect {
	const char	*name;		/* into the parsed text */
	size_t		 namelen;
	const char	*type;		/* NULL while no "type" key was seen */
	size_t		 typelen;
	size_t		 start;		/* first byte of the header line */
	size_t		 end;		/* end of the extent */
	size_t		 gap;		/* start of an empty line just above
					 * the header, else start */
	int		 crlf;		/* the header line ends with "\r\n" */
	unsigned long	 no;		/* line number of the header */
};

struct ini_doc {
	struct ini_sect	*sect;
	size_t		 n, cap;
	size_t		 bom;		/* bytes of byte order mark skipped */
	int		 defkeys;	/* keys before the first header */
};

/* Length of the white space character (Go's unicode.IsSpace) at p. */
static size_t
ini_space_at(const unsigned char *p, size_t n)
{
	if (n >= 1 && (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r')))
		return 1;
	if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
		return 2;
	if (n < 3)
		return 0;
	if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) ||
	    (p[0] == 0xe2 && p[1] == 0x80 && ((p[2] >= 0x80 && p[2] <= 0x8a) ||
	    p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf)) ||
	    (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) ||
	    (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80))
		return 3;
	return 0;
}

/*
 * Length of the white space character that ends p. Go decodes the last
 * rune from its lead byte, so a whole space sequence at the end is one.
 */
static size_t
ini_space_end(const unsigned char *p, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++)
		if (ini_space_at(p + n - k, k) == k)
			return k;
	return 0;
}

static void
ini_trim(const char **p, size_t *n)
{
	const unsigned char	*u = (const unsigned char *)*p;
	size_t			 k;

	while (*n > 0 && (k = ini_space_at(u, *n)) > 0) {
		u += k;
		*n -= k;
	}
	while (*n > 0 && (k = ini_space_end(u, *n)) > 0)
		*n -= k;
	*p = (const char *)u;
}

/* Copy a name for an error message, unprintable bytes as '?'. */
static const char *
ini_show(const char *s, size_t n, char *out)
{
	size_t i;

	if (n > INI_SHOW_MAX - 1)
		n = INI_SHOW_MAX - 1;
	for (i = 0; i < n; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = '\0';
	return out;
}

/* The offset of the first of the n bytes of q in p[0..plen), or -1. */
static long
ini_index(const char *p, size_t plen, const char *q, size_t n)
{
	for (size_t i = 0; i + n <= plen; i++)
		if (memcmp(p + i, q, n) == 0)
			return (long)i;
	return -1;
}

/* The offset of the last occurrence of q (n bytes) in p, or -1. */
static long
ini_last_index(const char *p, size_t plen, const char *q, size_t n)
{
	for (size_t i = plen; i >= n; i--)
		if (memcmp(p + i - n, q, n) == 0)
			return (long)(i - n);
	return -1;
}

/* The offset of the first '=' or ':' in p, or -1 (strings.IndexAny). */
static long
ini_index_sep(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '=' || p[i] == ':')
			return (long)i;
	return -1;
}

/* goconfig's reading of "key = value" (rule 6). */
static int
ini_key_parse(struct ini_line *l, char *err, size_t errlen)
{
	const char	*t = l->t, *r;
	size_t		 n = l->tlen, q = 0, rlen;
	long		 i, pos;

	if (t[0] == '"')
		q = n >= 6 && memcmp(t, "\"\"\"", 3) == 0 ? 3 : 1;
	else if (t[0] == '`')
		q = 1;
	if (q > 0) {
		if ((pos = ini_index(t + q, n - q, t, q)) == -1 ||
		    (i = ini_index_sep(t + q + pos, n - q - (size_t)pos)) == -1)
			goto bad;
		l->key = t + q;
		l->keylen = (size_t)pos;
		i += (long)q + pos;
	} else {
		if ((i = ini_index_sep(t, n)) <= 0)
			goto bad;
		l->key = t;
		l->keylen = (size_t)i;
		ini_trim(&l->key, &l->keylen);
	}
	r = t + i + 1;
	rlen = n - (size_t)i - 1;
	ini_trim(&r, &rlen);
	q = rlen >= 2 && r[0] == '`' ? 1 :
	    rlen >= 6 && memcmp(r, "\"\"\"", 3) == 0 ? 3 : 0;
	l->val = r + q;
	l->vallen = rlen - q;
	if (q > 0) {
		if ((pos = ini_last_index(r + q, rlen - q, r, q)) == -1)
			goto bad;
		l->vallen = (size_t)pos;
	}
	l->kind = INI_KEY;
	return 0;
bad:
	snprintf(err, errlen, "line %lu is neither a section header, a "
	    "comment nor a \"key = value\" line (rclone cannot parse it "
	    "either)", l->no);
	return -1;
}

/* Classify a trimmed line (rules 4 to 6). */
static int
ini_line_parse(struct ini_line *l, char *err, size_t errlen)
{
	if (l->tlen == 0) {
		l->kind = INI_BLANK;
		return 0;
	}
	if (l->t[0] == '#' || l->t[0] == ';') {
		l->kind = INI_COMMENT;
		return 0;
	}
	if (l->t[0] != '[')
		return ini_key_parse(l, err, errlen);
	if (l->tlen < 2 || l->t[l->tlen - 1] != ']') {
		snprintf(err, errlen, "line %lu starts a section header with "
		    "'[' but does not end with ']'", l->no);
		return -1;
	}
	l->key = l->t + 1;
	l->keylen = l->tlen - 2;
	ini_trim(&l->key, &l->keylen);
	if (l->keylen == 0 || l->keylen > INI_NAME_MAX) {
		snprintf(err, errlen, "line %lu: a section name must have 1 to "
		    "%d bytes", l->no, INI_NAME_MAX);
		return -1;
	}
	l->kind = INI_HEADER;
	return 0;
}

/* Find the line at off, trim it, and check rules 1 and 2. */
static int
ini_line_read(const char *buf, size_t len, size_t off, struct ini_line *l,
    char *err, size_t errlen)
{
	const char *nl = memchr(buf + off, '\n', len - off);

	l->start = off;
	l->end = nl != NULL ? (size_t)(nl - buf) : len;
	l->next = nl != NULL ? l->end + 1 : len;
	if (memchr(buf + off, '\0', l->end - off) != NULL) {
		snprintf(err, errlen, "line %lu holds a NUL byte", l->no);
		return -1;
	}
	if (l->end - off > INI_LINE_MAX) {
		snprintf(err, errlen, "line %lu is longer than %d bytes", l->no,
		    INI_LINE_MAX);
		return -1;
	}
	l->t = buf + off;
	l->tlen = l->end - off;
	ini_trim(&l->t, &l->tlen);
	return 0;
}

/* A line with nothing but its line ending, as ini_put() adds them. */
static int
ini_line_empty(const char *buf, const struct ini_line *l)
{
	return l->next > l->end && (l->end == l->start ||
	    (l->end == l->start + 1 && buf[l->start] == '\r'));
}

static int
ini_doc_add(struct ini_doc *doc, const char *buf, const struct ini_line *l,
    size_t gap, char *err, size_t errlen)
{
	struct ini_sect *s;

	if (doc->n == doc->cap) {
		size_t cap = doc->cap == 0 ? 16 : doc->cap * 2;

		if ((s = reallocarray(doc->sect, cap, sizeof(*s))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		doc->sect = s;
		doc->cap = cap;
	}
	s = &doc->sect[doc->n++];
	s->name = l->key;
	s->namelen = l->keylen;
	s->type = NULL;
	s->typelen = 0;
	s->start = l->start;
	s->end = l->next;
	s->gap = gap;
	s->crlf = l->next > l->end && l->end > l->start &&
	    buf[l->end - 1] == '\r';
	s->no = l->no;
	return 0;
}

static int
ini_sect_cmp(const void *a, const void *b)
{
	const struct ini_sect	*x = *(const struct ini_sect *const *)a;
	const struct ini_sect	*y = *(const struct ini_sect *const *)b;
	size_t			 n = x->namelen < y->namelen ? x->namelen :
				    y->namelen;
	int			 c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->namelen != y->namelen)
		return x->namelen < y->namelen ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Rules 7, 8 and 10, which need every section. */
static int
ini_doc_check(struct ini_doc *doc, char *err, size_t errlen)
{
	const struct ini_sect	**v;
	char			  show[INI_SHOW_MAX];
	size_t			  i;

	for (i = 0; i < doc->n; i++) {
		if (doc->sect[i].typelen > INI_TYPE_MAX) {
			snprintf(err, errlen, "the type of section [%s] (line "
			    "%lu) is longer than %d bytes", ini_show(
			    doc->sect[i].name, doc->sect[i].namelen, show),
			    doc->sect[i].no, INI_TYPE_MAX);
			return -1;
		}
		if (doc->defkeys && doc->sect[i].namelen == 7 &&
		    memcmp(doc->sect[i].name, "DEFAULT", 7) == 0) {
			snprintf(err, errlen, "the keys before the first "
			    "section and section [DEFAULT] (line %lu) would "
			    "be merged by rclone; keep only one of them",
			    doc->sect[i].no);
			return -1;
		}
	}
	/* Sorting finds duplicates in n log n: a 1 MiB file can hold
	 * a quarter of a million sections. */
	if ((v = calloc(doc->n + 1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < doc->n; i++)
		v[i] = &doc->sect[i];
	qsort(v, doc->n, sizeof(*v), ini_sect_cmp);
	for (i = 1; i < doc->n; i++) {
		if (v[i]->namelen != v[i - 1]->namelen || memcmp(v[i]->name,
		    v[i - 1]->name, v[i]->namelen) != 0)
			continue;
		snprintf(err, errlen, "section [%s] appears twice, on lines "
		    "%lu and %lu; rclone would merge the two, so keep only one",
		    ini_show(v[i]->name, v[i]->namelen, show), v[i - 1]->no,
		    v[i]->no);
		free(v);
		return -1;
	}
	free(v);
	return 0;
}

/* Follow a line into the document: a new section, or a key of one. */
static int
ini_doc_line(struct ini_doc *doc, const char *buf, const struct ini_line *l,
    size_t gap, char *err, size_t errlen)
{
	struct ini_sect *s;

	switch (l->kind) {
	case INI_HEADER:
		return ini_doc_add(doc, buf, l, gap, err, errlen);
	case INI_KEY:
		if (doc->n == 0) {
			doc->defkeys = 1;
			break;
		}
		s = &doc->sect[doc->n - 1];
		s->end = l->next;
		if (l->keylen == 4 && memcmp(l->key, "type", 4) == 0) {
			s->type = l->val;
			s->typelen = l->vallen;
		}
		break;
	case INI_BLANK:
	case INI_COMMENT:
		break;
	}
	return 0;
}

static void
ini_doc_free(struct ini_doc *doc)
{
	free(doc->sect);
	doc->sect = NULL;
	doc->n = doc->cap = 0;
}

/* Parse the whole text into doc (freed by the caller even on error). */
static int
ini_parse(const char *buf, size_t len, struct ini_doc *doc, char *err,
    size_t errlen)
{
	struct ini_line	 l;
	size_t		 gap = (size_t)-1;
	int		 seen = 0;

	memset(doc, 0, sizeof(*doc));
	/* store_read() gives NULL for a missing file: an empty one. */
	if (buf == NULL && len == 0)
		return 0;
	if (buf == NULL) {
		snprintf(err, errlen, "no text to parse");
		return -1;
	}
	if (len > CD_STORE_FILE_MAX) {
		snprintf(err, errlen, "the file is larger than %d bytes",
		    CD_STORE_FILE_MAX);
		return -1;
	}
	if (len >= INI_BOM_LEN && memcmp(buf, INI_BOM, INI_BOM_LEN) == 0)
		doc->bom = INI_BOM_LEN;
	l.no = 0;
	for (size_t off = doc->bom; off < len; off = l.next) {
		l.no++;
		if (ini_line_read(buf, len, off, &l, err, errlen) == -1)
			return -1;
		if (!seen && l.tlen > 0 && l.t[0] != '#' && l.t[0] != ';') {
			seen = 1;
			if (l.tlen >= strlen(INI_ENCRYPTED) && memcmp(l.t,
			    INI_ENCRYPTED, strlen(INI_ENCRYPTED)) == 0) {
				snprintf(err, errlen, "the file is encrypted "
				    "by rclone (line %lu), which connectord "
				    "cannot read or edit", l.no);
				return -1;
			}
		}
		if (ini_line_parse(&l, err, errlen) == -1 ||
		    ini_doc_line(doc, buf, &l, gap == (size_t)-1 ? l.start :
		    gap, err, errlen) == -1)
			return -1;
		gap = ini_line_empty(buf, &l) ? l.start : (size_t)-1;
	}
	for (size_t i = 0; i < doc->n; i++)
		if (doc->sect[i].type == NULL)
			doc->sect[i].type = "";
	return ini_doc_check(doc, err, errlen);
}

static struct ini_sect *
ini_doc_find(const struct ini_doc *doc, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < doc->n; i++)
		if (doc->sect[i].namelen == n &&
		    memcmp(doc->sect[i].name, name, n) == 0)
			return &doc->sect[i];
	return NULL;
}

int
ini_list(const char *buf, size_t len, struct ini_remote *out, size_t max,
    size_t *n, char *err, size_t errlen)
{
	struct ini_doc doc;

	*n = 0;
	if (ini_parse(buf, len, &doc, err, errlen) == -1) {
		ini_doc_free(&doc);
		return -1;
	}
	if (doc.n > max) {
		snprintf(err, errlen, "the file has %zu remotes, more than the "
		    "%zu connectord can list", doc.n, max);
		ini_doc_free(&doc);
		return -1;
	}
	for (size_t i = 0; i < doc.n; i++) {
		memcpy(out[i].name, doc.sect[i].name, doc.sect[i].namelen);
		out[i].name[doc.sect[i].namelen] = '\0';
		memcpy(out[i].type, doc.sect[i].type, doc.sect[i].typelen);
		out[i].type[doc.sect[i].typelen] = '\0';
	}
	*n = doc.n;
	ini_doc_free(&doc);
	return 0;
}

/* Parse and look name up: the section, NULL if absent, or -1 in *rc. */
static struct ini_sect *
ini_lookup(const char *buf, size_t len, const char *name,
    struct ini_doc *doc, int *rc, char *err, size_t errlen)
{
	struct ini_sect *s;

	*rc = -1;
	if (ini_parse(buf, len, doc, err, errlen) == -1)
		return NULL;
	s = ini_doc_find(doc, name);
	*rc = s != NULL;
	return s;
}

int
ini_find(const char *buf, size_t len, const char *name, char *type,
    size_t typelen, char *err, size_t errlen)
{
	struct ini_doc	 doc;
	struct ini_sect	*s;
	int		 rc;

	if ((s = ini_lookup(buf, len, name, &doc, &rc, err, errlen)) != NULL &&
	    type != NULL) {
		if (s->typelen >= typelen) {
			snprintf(err, errlen, "no room for the type of a "
			    "remote");
			rc = -1;
		} else {
			memcpy(type, s->type, s->typelen);
			type[s->typelen] = '\0';
		}
	}
	ini_doc_free(&doc);
	return rc;
}

int
ini_extent(const char *buf, size_t len, const char *name, size_t *start,
    size_t *end, char *err, size_t errlen)
{
	struct ini_doc	 doc;
	struct ini_sect	*s;
	int		 rc;

	if ((s = ini_lookup(buf, len, name, &doc, &rc, err, errlen)) != NULL) {
		*start = s->start;
		*end = s->end;
	}
	ini_doc_free(&doc);
	return rc;
}

/* Whether s starts or ends with white space that a parser would trim. */
static int
ini_untrimmed(const char *s, size_t n)
{
	return n > 0 && (ini_space_at((const unsigned char *)s, n) > 0 ||
	    ini_space_end((const unsigned char *)s, n) > 0);
}

static int
ini_name_check(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);

	if (n == 0 || n > INI_NAME_MAX) {
		snprintf(err, errlen, "a remote name must have 1 to %d bytes",
		    INI_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f ||
		    name[i] == '[' || name[i] == ']') {
			snprintf(err, errlen, "a remote name must not hold "
			    "brackets, line breaks or control characters");
			return -1;
		}
	}
	if (ini_untrimmed(name, n)) {
		snprintf(err, errlen, "a remote name must not start or end "
		    "with white space, which rclone would drop");
		return -1;
	}
	return 0;
}

/*
 * Keys are limited to what rclone's options look like, which also keeps
 * out every character goconfig treats specially ("=", ":", quotes,
 * comment and header starts) and the key "-" it renumbers.
 */
static int
ini_key_check(const char *key, char *err, size_t errlen)
{
	size_t n = strlen(key);

	if (n == 0 || strspn(key, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n ||
	    strcmp(key, "-") == 0) {
		snprintf(err, errlen, "a key must be made of letters, digits, "
		    "'_', '.' and '-' (and not be \"-\" alone)");
		return -1;
	}
	return 0;
}

static int
ini_value_check(const char *key, const char *val, char *err, size_t errlen)
{
	size_t n = strlen(val);

	if (strpbrk(val, "\r\n") != NULL) {
		snprintf(err, errlen, "the value of %s holds a line break",
		    key);
		return -1;
	}
	if (ini_untrimmed(val, n) || (n >= 2 && val[0] == '`') ||
	    (n >= 6 && strncmp(val, "\"\"\"", 3) == 0)) {
		snprintf(err, errlen, "the value of %s would need quoting "
		    "(white space at an end, or a leading ` or \"\"\")", key);
		return -1;
	}
	if (strlen(key) + 3 + n > INI_LINE_MAX) {
		snprintf(err, errlen, "the value of %s is too long for one "
		    "line of %d bytes", key, INI_LINE_MAX);
		return -1;
	}
	if (strcmp(key, "type") == 0 && n > INI_TYPE_MAX) {
		snprintf(err, errlen, "a type must have at most %d bytes",
		    INI_TYPE_MAX);
		return -1;
	}
	return 0;
}

/* Check every key and value; the number of bytes they take, or -1. */
static long
ini_pairs_check(const char *const keys[], const char *const values[],
    char *err, size_t errlen)
{
	size_t total = 0;

	for (size_t i = 0; keys[i] != NULL; i++) {
		if (values[i] == NULL) {
			snprintf(err, errlen, "key %s has no value", keys[i]);
			return -1;
		}
		if (ini_key_check(keys[i], err, errlen) == -1 ||
		    ini_value_check(keys[i], values[i], err, errlen) == -1)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(keys[i], keys[j]) == 0) {
				snprintf(err, errlen, "key %s is given twice",
				    keys[i]);
				return -1;
			}
		}
		total += strlen(keys[i]) + strlen(values[i]) + 4;
		if (total > CD_STORE_FILE_MAX) {
			snprintf(err, errlen, "the section would be larger "
			    "than %d bytes", CD_STORE_FILE_MAX);
			return -1;
		}
	}
	return (long)total;
}

char *
ini_section(const char *name, const char *const keys[],
    const char *const values[], char *err, size_t errlen)
{
	char	*out;
	size_t	 cap, off;
	long	 pairs;

	if (ini_name_check(name, err, errlen) == -1 ||
	    (pairs = ini_pairs_check(keys, values, err, errlen)) == -1)
		return NULL;
	cap = strlen(name) + 4 + (size_t)pairs;
	if ((out = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* cap counts every byte written below, the final NUL included. */
	off = (size_t)snprintf(out, cap, "[%s]\n", name);
	for (size_t i = 0; keys[i] != NULL && off < cap; i++)
		off += (size_t)snprintf(out + off, cap - off, "%s = %s\n",
		    keys[i], values[i]);
	return out;
}

/*
 * The section given to ini_put() must be exactly one section headed
 * "[name]" whose extent is all of it: trailing blank lines or comments
 * would not belong to it, so a later delete would leave them behind.
 */
static int
ini_section_valid(const char *section, const char *name, char *err,
    size_t errlen)
{
	struct ini_doc	 d;
	char		 why[INI_ERR_MAX];
	size_t		 n = strlen(section), nl = strlen(name);
	int		 ok;

	if (ini_parse(section, n, &d, why, sizeof(why)) == -1) {
		ini_doc_free(&d);
		snprintf(err, errlen, "the new section is invalid: %s", why);
		return -1;
	}
	/* The header must be "[name]" exactly, then a line ending or the end
	 * of the text (ini_join() ends an unfinished last line). */
	ok = d.n == 1 && d.sect[0].start == 0 && d.sect[0].end == n &&
	    d.sect[0].namelen == nl && memcmp(d.sect[0].name, name, nl) == 0 &&
	    section[0] == '[' && strncmp(section + 1, name, nl) == 0 &&
	    section[nl + 1] == ']' && (section[nl + 2] == '\0' ||
	    section[nl + 2] == '\r' || section[nl + 2] == '\n');
	ini_doc_free(&d);
	if (!ok) {
		snprintf(err, errlen, "the new section must be one section "
		    "that starts with its header and ends with its last key");
		return -1;
	}
	return 0;
}

/* Whether text added at the end should use "\r\n", like the last line. */
static int
ini_tail_crlf(const char *buf, size_t len)
{
	const char *nl = memrchr(buf, '\n', len);

	return nl != NULL && nl > buf && nl[-1] == '\r';
}

/*
 * Line endings to add before a section appended to the text: one to end
 * a last line that lacks it, one more for a blank line unless the text
 * already ends with one or is empty.
 */
static int
ini_append_eols(const char *buf, size_t len, size_t bom)
{
	const char	*nl, *t;
	size_t		 e = len, tlen;
	int		 n = 0;

	if (len == bom)
		return 0;
	if (buf[len - 1] != '\n')
		n = 1;
	else
		e = len - 1;
	nl = memrchr(buf + bom, '\n', e - bom);
	t = nl != NULL ? nl + 1 : buf + bom;
	tlen = (size_t)(buf + e - t);
	ini_trim(&t, &tlen);
	return tlen > 0 ? n + 1 : n;
}

/* The pieces of an edited text: kept head, added line endings, the new
 * section (converted to CRLF if crlf), kept tail. */
struct ini_edit {
	const char	*head, *sect, *tail;
	size_t		 headlen, sectlen, taillen;
	int		 eols, crlf;
};

static char *
ini_join(const struct ini_edit *e, size_t *outlen, char *err, size_t errlen)
{
	const char	*eol = e->crlf ? "\r\n" : "\n";
	size_t		 el = strlen(eol), lines = 0, size;
	char		*out, *p;
	int		 conv, fin;

	/* A section that already has CRs is taken as it is. */
	conv = e->crlf && memchr(e->sect, '\r', e->sectlen) == NULL;
	fin = e->sectlen > 0 && e->sect[e->sectlen - 1] != '\n';
	for (size_t i = 0; conv && i < e->sectlen; i++)
		lines += e->sect[i] == '\n';
	size = e->headlen + (size_t)e->eols * el + e->sectlen + lines +
	    (fin ? el : 0) + e->taillen;
	if (size > CD_STORE_FILE_MAX) {
		snprintf(err, errlen, "the file would grow beyond %d bytes",
		    CD_STORE_FILE_MAX);
		return NULL;
	}
	if ((out = malloc(size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p = mempcpy(out, e->head, e->headlen);
	for (int i = 0; i < e->eols; i++)
		p = mempcpy(p, eol, el);
	for (size_t i = 0; i < e->sectlen; i++) {
		if (conv && e->sect[i] == '\n')
			*p++ = '\r';
		*p++ = e->sect[i];
	}
	if (fin)
		p = mempcpy(p, eol, el);
	p = mempcpy(p, e->tail, e->taillen);
	*p = '\0';
	*outlen = size;
	return out;
}

/*
 * Replacing keeps the bytes before the old header and after its extent;
 * appending keeps all of the text and adds ini_append_eols() line
 * endings. Either way the new section takes the surrounding line ending.
 */
char *
ini_put(const char *buf, size_t len, const char *name, const char *section,
    size_t *outlen, char *err, size_t errlen)
{
	struct ini_doc	 doc;
	struct ini_sect	*s;
	struct ini_edit	 e;
	char		*out = NULL;
	int		 rc;

	*outlen = 0;
	if (ini_section_valid(section, name, err, errlen) == -1)
		return NULL;
	s = ini_lookup(buf, len, name, &doc, &rc, err, errlen);
	if (rc == -1)
		goto done;
	if (doc.defkeys && strcmp(name, "DEFAULT") == 0) {
		snprintf(err, errlen, "rclone would merge a section DEFAULT "
		    "with the keys before the first section");
		goto done;
	}
	memset(&e, 0, sizeof(e));
	if (buf == NULL)
		buf = "";
	e.head = buf;
	e.sect = section;
	e.sectlen = strlen(section);
	if (s != NULL) {
		e.headlen = s->start;
		e.tail = buf + s->end;
		e.taillen = len - s->end;
		e.crlf = s->crlf;
	} else {
		e.headlen = len;
		e.tail = "";
		e.eols = ini_append_eols(buf, len, doc.bom);
		e.crlf = ini_tail_crlf(buf, len);
	}
	out = ini_join(&e, outlen, err, errlen);
done:
	ini_doc_free(&doc);
	return out;
}

/*
 * Deleting drops the extent and one empty line right before the header,
 * the blank line ini_put() adds, so that adding and deleting again does
 * not pile up blank lines. A line of spaces is left: only bytes that
 * carry nothing are removed.
 */
char *
ini_delete(const char *buf, size_t len, const char *name, size_t *outlen,
    char *err, size_t errlen)
{
	struct ini_doc	 doc;
	struct ini_sect	*s;
	char		*out = NULL, show[INI_SHOW_MAX];
	size_t		 cut;
	int		 rc;

	*outlen = 0;
	s = ini_lookup(buf, len, name, &doc, &rc, err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "there is no remote named %s",
		    ini_show(name, strlen(name), show));
	if (s == NULL)
		goto done;
	/*
	 * The empty line above the header goes too only when an empty line
	 * also follows the extent: two separators would otherwise meet. At
	 * the end of the file it stays, so a file that ended in a blank line
	 * (as rclone writes it) still does after an add and a delete.
	 */
	cut = s->gap;
	if (s->end >= len || !(buf[s->end] == '\n' || (buf[s->end] == '\r' &&
	    s->end + 1 < len && buf[s->end + 1] == '\n')))
		cut = s->start;
	*outlen = cut + len - s->end;
	if ((out = malloc(*outlen + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		*outlen = 0;
		goto done;
	}
	memcpy(out, buf, cut);
	memcpy(out + cut, buf + s->end, len - s->end);
	out[*outlen] = '\0';
done:
	ini_doc_free(&doc);
	return out;
}
