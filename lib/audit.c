/*
 * The vault's IPC log (design.md §5, layout in audit.h). Every line carries
 * the SHA-256 of the line before it, so that "connectorctl audit verify"
 * notices a line that was edited, removed or reordered. Library code: no
 * exits, no output; failures come back as errno or as sentences.
 *
 * A line, its newline included, is at most AUDIT_LINE_MAX bytes. The
 * writer never produces more, and the verifier treats more as damage.
 */

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "audit.h"

#define AUDIT_FP_HEX	32
/* HMAC-SHA256 hashes keys longer than its block; nothing gained above. */
#define AUDIT_KEY_MAX	64
/* "2026-11-26T22:47:52.123Z" */
#define AUDIT_TIME_LEN	24
/* Enough to see a torn line (< AUDIT_LINE_MAX) and a whole line before it. */
#define AUDIT_TAIL_MAX	(2 * AUDIT_LINE_MAX)
#define AUDIT_WHY_MAX	256

#define LB_LIT(lb, s)	lb_add((lb), (s), sizeof(s) - 1)

static const char audit_zeros[AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct audit {
	int			 fd;
	unsigned long long	 seq;		/* of the next line */
	char			 prev[AUDIT_HASH_HEX + 1];
	uint8_t			 key[AUDIT_KEY_MAX];
	size_t			 keylen;
	/* A failed write could not be undone: the file and our idea of its
	 * tail may disagree, so only a fresh audit_open may write again. */
	int			 poisoned;
};

/* A bounded output buffer; "full" sticks so callers check once. */
struct linebuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 full;
};

/* Verifier state: lines of this file so far, and the chain they extend. */
struct verify {
	unsigned long		 n;	/* lines of this file found intact */
	struct audit_chain	*c;	/* what the next line must chain to */
};

static void
hex_encode(const unsigned char *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int
hex_valid(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
sha256_hex(const void *p, size_t len, char out[AUDIT_HASH_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != AUDIT_HASH_HEX / 2) {
		errno = EIO;
		return -1;
	}
	hex_encode(md, mdlen, out);
	return 0;
}

void
audit_fingerprint(const uint8_t *key, size_t keylen, const void *data,
    size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	/* An empty string is the failure signal: the signature leaves no
	 * other, and a made-up fingerprint would look like a real one. */
	out[0] = '\0';
	if (keylen > INT_MAX)
		return;
	if (key == NULL)
		key = (const uint8_t *)"";
	if (data == NULL)
		data = "";
	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, md,
	    &mdlen) == NULL || mdlen < AUDIT_FP_HEX / 2)
		return;
	hex_encode(md, AUDIT_FP_HEX / 2, out);
	explicit_bzero(md, sizeof(md));
}

static void
lb_add(struct linebuf *lb, const char *s, size_t n)
{
	if (lb->full || n > lb->cap - lb->len) {
		lb->full = 1;
		return;
	}
	memcpy(lb->p + lb->len, s, n);
	lb->len += n;
}

static void __attribute__((format(printf, 2, 3)))
lb_printf(struct linebuf *lb, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		lb->full = 1;
		return;
	}
	lb_add(lb, tmp, n);
}

/* Length of the well-formed UTF-8 sequence at s, 0 if there is none. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t i, n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		lo = s[0] == 0xe0 ? 0xa0 : 0x80;	/* overlong */
		hi = s[0] == 0xed ? 0x9f : 0xbf;	/* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		lo = s[0] == 0xf0 ? 0x90 : 0x80;	/* overlong */
		hi = s[0] == 0xf4 ? 0x8f : 0xbf;	/* > U+10FFFF */
	} else
		return 0;
	/* Each test stops at the terminating NUL, so no over-read. */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * The JSON form of the character at s and how many bytes it used. Invalid
 * UTF-8 becomes U+FFFD: the verifier (rightly) rejects invalid UTF-8, and a
 * log line nobody can verify is worse than one replaced character.
 */
static size_t
json_char(const unsigned char *s, size_t *used, char out[8])
{
	size_t n;

	if ((n = utf8_len(s)) == 0) {
		*used = 1;
		memcpy(out, "\\ufffd", 6);
		return 6;
	}
	*used = n;
	if (n > 1) {
		memcpy(out, s, n);
		return n;
	}
	if (*s == '"' || *s == '\\') {
		out[0] = '\\';
		out[1] = *s;
		return 2;
	}
	if (*s < 0x20 || *s == 0x7f) {
		snprintf(out, 8, "\\u%04x", *s);
		return 6;
	}
	out[0] = *s;
	return 1;
}

static void
lb_str(struct linebuf *lb, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	char out[8];
	size_t n, used;

	if (s == NULL) {
		LB_LIT(lb, "null");
		return;
	}
	LB_LIT(lb, "\"");
	for (; *u != '\0'; u += used) {
		n = json_char(u, &used, out);
		lb_add(lb, out, n);
	}
	LB_LIT(lb, "\"");
}

/*
 * Add s as a JSON string of at most room bytes, cut at a character
 * boundary and marked with "..." when it does not fit: a long detail
 * should shorten the record, not cost it.
 */
static void
lb_str_cut(struct linebuf *lb, const char *s, size_t room)
{
	const unsigned char *u = (const unsigned char *)s;
	char out[8];
	size_t n, need, used;

	if (s == NULL) {
		LB_LIT(lb, "null");
		return;
	}
	for (need = 2; *u != '\0'; u += used)
		need += json_char(u, &used, out);
	if (need <= room) {
		lb_str(lb, s);
		return;
	}
	if (room < sizeof("\"...\"") - 1) {
		lb->full = 1;
		return;
	}
	LB_LIT(lb, "\"");
	need = sizeof("\"...\"") - 1;
	for (u = (const unsigned char *)s; *u != '\0'; u += used) {
		n = json_char(u, &used, out);
		if (need + n > room)
			break;
		lb_add(lb, out, n);
		need += n;
	}
	LB_LIT(lb, "...\"");
}

static int
time_format(char out[AUDIT_TIME_LEN + 1])
{
	struct timespec ts;
	struct tm tm;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(out, 20, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
		errno = EOVERFLOW;
		return -1;
	}
	snprintf(out + 19, 6, ".%03uZ",
	    (unsigned)(ts.tv_nsec / 1000000) % 1000);
	return 0;
}

static int
rec_valid(const struct audit_rec *r)
{
	size_t i;

	if (r->peer == NULL || r->type == NULL || r->outcome == NULL ||
	    r->nfp > AUDIT_FP_MAX)
		return 0;
	for (i = 0; i < r->nfp; i++)
		if (r->fp[i].name == NULL ||
		    (r->fp[i].data == NULL && r->fp[i].len != 0))
			return 0;
	return 1;
}

/* The end of a line: ',"fp":{...}}' and the newline. */
static int
line_tail(const struct audit *a, const struct audit_rec *r,
    struct linebuf *t)
{
	char hex[AUDIT_FP_HEX + 1];
	size_t i;

	LB_LIT(t, ",\"fp\":{");
	for (i = 0; i < r->nfp; i++) {
		audit_fingerprint(a->key, a->keylen, r->fp[i].data,
		    r->fp[i].len, hex);
		if (hex[0] == '\0') {
			errno = EIO;
			return -1;
		}
		if (i > 0)
			LB_LIT(t, ",");
		lb_str(t, r->fp[i].name);
		LB_LIT(t, ":\"");
		lb_add(t, hex, AUDIT_FP_HEX);
		LB_LIT(t, "\"");
	}
	LB_LIT(t, "}}\n");
	if (t->full) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/*
 * Build the whole line, newline included, into line (AUDIT_LINE_MAX
 * bytes). The tail is built first so that whatever room is left can go to
 * the detail, the only field we cut rather than refuse.
 */
static int
line_build(const struct audit *a, const struct audit_rec *r, char *line,
    size_t *lenp)
{
	char tail[AUDIT_LINE_MAX], when[AUDIT_TIME_LEN + 1];
	struct linebuf t = { tail, 0, sizeof(tail), 0 };
	struct linebuf h = { line, 0, 0, 0 };

	if (!rec_valid(r)) {
		errno = EINVAL;
		return -1;
	}
	if (line_tail(a, r, &t) == -1 || time_format(when) == -1)
		return -1;
	h.cap = AUDIT_LINE_MAX - t.len;
	lb_printf(&h, "{\"seq\":%llu,\"time\":\"%s\",\"prev\":\"%s\","
	    "\"peer\":", a->seq, when, a->prev);
	lb_str(&h, r->peer);
	lb_printf(&h, ",\"job\":%lu,\"kind\":", (unsigned long)r->job);
	lb_str(&h, r->kind);
	lb_printf(&h, ",\"pid\":%ld,\"type\":", (long)r->pid);
	lb_str(&h, r->type);
	LB_LIT(&h, ",\"connector\":");
	lb_str(&h, r->connector);
	LB_LIT(&h, ",\"remote\":");
	lb_str(&h, r->remote);
	LB_LIT(&h, ",\"outcome\":");
	lb_str(&h, r->outcome);
	LB_LIT(&h, ",\"detail\":");
	if (!h.full)
		lb_str_cut(&h, r->detail, h.cap - h.len);
	if (h.full) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(line + h.len, tail, t.len);
	*lenp = h.len + t.len;
	return 0;
}

/*
 * Write the line and make it durable. On failure cut the file back to its
 * old size: neither half a line nor a line for an operation the caller is
 * about to refuse may stay in the chain.
 */
static int
line_write(struct audit *a, const char *line, size_t len)
{
	struct stat st;
	size_t off = 0;
	ssize_t n;
	int saved;

	if (fstat(a->fd, &st) == -1)
		return -1;
	while (off < len) {
		if ((n = write(a->fd, line + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0) {
			errno = EIO;
			goto fail;
		}
		off += n;
	}
	if (fdatasync(a->fd) == -1)
		goto fail;
	return 0;
 fail:
	saved = errno;
	if (off > 0 && (ftruncate(a->fd, st.st_size) == -1 ||
	    fdatasync(a->fd) == -1))
		a->poisoned = 1;
	errno = saved;
	return -1;
}

int
audit_append(struct audit *a, const struct audit_rec *rec)
{
	char line[AUDIT_LINE_MAX], hash[AUDIT_HASH_HEX + 1];
	size_t len;

	if (a == NULL || rec == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (a->poisoned) {
		errno = EIO;
		return -1;
	}
	if (a->seq > LLONG_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	/* Hash before writing, so nothing can fail after the write. */
	if (line_build(a, rec, line, &len) == -1 ||
	    sha256_hex(line, len - 1, hash) == -1 ||
	    line_write(a, line, len) == -1)
		return -1;
	a->seq++;
	memcpy(a->prev, hash, sizeof(hash));
	return 0;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd != -1)
		close(a->fd);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* Syntax only, strictly: no comments, valid UTF-8, nothing after. */
static int
json_strict(const char *p, size_t len, char *why, size_t whylen)
{
	yajl_handle h;
	unsigned char *e;
	size_t elen;
	int good;

	if ((h = yajl_alloc(NULL, NULL, NULL)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	good = yajl_parse(h, (const unsigned char *)p, len) ==
	    yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
	if (!good) {
		e = yajl_get_error(h, 0, (const unsigned char *)p, len);
		elen = e != NULL ? strcspn((char *)e, "\n") : 0;
		snprintf(why, whylen, "is not valid JSON (%.*s)", (int)elen,
		    e != NULL ? (char *)e : "");
		if (e != NULL)
			yajl_free_error(h, e);
	}
	yajl_free(h);
	return good ? 0 : 1;
}

static int
time_valid(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	if (strlen(s) != AUDIT_TIME_LEN)
		return 0;
	for (i = 0; i < AUDIT_TIME_LEN; i++)
		if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') :
		    s[i] != form[i])
			return 0;
	return 1;
}

/* Whether the object's "type" is the line a rotated file starts with. */
static int
line_is_reopened(yajl_val v)
{
	const char *type;
	size_t i;

	for (i = 0; i < v->u.object.len; i++) {
		if (strcmp(v->u.object.keys[i], "type") != 0)
			continue;
		type = YAJL_GET_STRING(v->u.object.values[i]);
		return type != NULL && strcmp(type, AUDIT_TYPE_REOPENED) == 0;
	}
	return 0;
}

static int
line_fields(yajl_val v, unsigned long long *seq,
    char prev[AUDIT_HASH_HEX + 1], int *reopened, char *why, size_t whylen)
{
	const char **k, *hex;
	yajl_val *val;

	if (!YAJL_IS_OBJECT(v) || v->u.object.len < 3) {
		snprintf(why, whylen, "is not a JSON object starting with "
		    "seq, time and prev");
		return 1;
	}
	k = v->u.object.keys;
	val = v->u.object.values;
	if (strcmp(k[0], "seq") != 0 || strcmp(k[1], "time") != 0 ||
	    strcmp(k[2], "prev") != 0) {
		snprintf(why, whylen, "does not start with the keys seq, "
		    "time and prev in that order");
		return 1;
	}
	if (!YAJL_IS_INTEGER(val[0]) || YAJL_GET_INTEGER(val[0]) < 1) {
		snprintf(why, whylen, "seq is not a positive integer");
		return 1;
	}
	if (!YAJL_IS_STRING(val[1]) || !time_valid(YAJL_GET_STRING(val[1]))) {
		snprintf(why, whylen, "time is not a UTC time like "
		    "2026-11-26T22:47:52.123Z");
		return 1;
	}
	if ((hex = YAJL_GET_STRING(val[2])) == NULL ||
	    !hex_valid(hex, AUDIT_HASH_HEX)) {
		snprintf(why, whylen, "prev is not 64 lowercase hex "
		    "characters");
		return 1;
	}
	*seq = (unsigned long long)YAJL_GET_INTEGER(val[0]);
	memcpy(prev, hex, AUDIT_HASH_HEX + 1);
	if (reopened != NULL)
		*reopened = line_is_reopened(v);
	return 0;
}

/*
 * Check one line (without its newline) on its own and extract seq, prev
 * and (unless reopened is NULL) whether it is a LOG_REOPENED line.
 * Returns 0 when good, 1 when broken (reason in why, a phrase to follow
 * "line N: "), -1 on an internal error with errno set.
 */
static int
line_check(const char *p, size_t len, unsigned long long *seq,
    char prev[AUDIT_HASH_HEX + 1], int *reopened, char *why, size_t whylen)
{
	char buf[AUDIT_LINE_MAX];
	yajl_val v;
	int rv;

	if (len > AUDIT_LINE_MAX - 1) {
		snprintf(why, whylen, "is longer than %d bytes",
		    AUDIT_LINE_MAX - 1);
		return 1;
	}
	/* The tree parser stops at a NUL and would miss what follows. */
	if (memchr(p, '\0', len) != NULL) {
		snprintf(why, whylen, "contains a NUL byte");
		return 1;
	}
	if ((rv = json_strict(p, len, why, whylen)) != 0)
		return rv;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if ((v = yajl_tree_parse(buf, NULL, 0)) == NULL) {
		/* It passed the strict parse: only memory can be short. */
		errno = ENOMEM;
		return -1;
	}
	rv = line_fields(v, seq, prev, reopened, why, whylen);
	yajl_tree_free(v);
	return rv;
}

/*
 * The first line of a series: a fresh chain starts at seq 1 with a zero
 * prev; a later seq is accepted only on the LOG_REOPENED line that starts
 * a rotated file, since anything else means lines were cut off the start.
 */
static int
verify_first(struct verify *vs, unsigned long long seq, const char *prev,
    int reopened, char *msg, size_t msglen)
{
	if (seq == 1 && strcmp(prev, audit_zeros) != 0) {
		snprintf(msg, msglen, "line 1: seq is 1 but prev is not 64 "
		    "zeros (the first line of a log was replaced)");
		return 1;
	}
	if (seq > 1 && !reopened) {
		snprintf(msg, msglen, "line 1: seq is %llu, so lines before it "
		    "are missing, and it is not the %s line a rotated log "
		    "starts with (lines were cut off the start of the log)",
		    seq, AUDIT_TYPE_REOPENED);
		return 1;
	}
	vs->c->continued = seq > 1;
	vs->c->first_seq = seq;
	return 0;
}

/* The first line of a later file of a series: it continues the last. */
static int
verify_join(struct verify *vs, unsigned long long seq, const char *prev,
    char *msg, size_t msglen)
{
	if (seq == 1 && strcmp(prev, audit_zeros) == 0) {
		snprintf(msg, msglen, "line 1: starts a new chain at seq 1 "
		    "instead of continuing the previous file at seq %llu (the "
		    "file was replaced, or the vault started while the log was "
		    "renamed away)", vs->c->seq + 1);
		return 1;
	}
	if (seq != vs->c->seq + 1) {
		snprintf(msg, msglen, "line 1: seq is %llu, expected %llu to "
		    "continue the previous file", seq, vs->c->seq + 1);
		return 1;
	}
	if (strcmp(prev, vs->c->prev) != 0) {
		snprintf(msg, msglen, "line 1: prev does not match the SHA-256 "
		    "of the last line of the previous file (a line was edited, "
		    "removed or reordered, or the files are out of order)");
		return 1;
	}
	return 0;
}

/* Check a complete line against the one before it. */
static int
verify_line(struct verify *vs, const char *p, size_t len, char *msg,
    size_t msglen)
{
	char why[AUDIT_WHY_MAX], prev[AUDIT_HASH_HEX + 1];
	unsigned long long seq;
	unsigned long no = vs->n + 1;
	int rv, reopened;

	if ((rv = line_check(p, len, &seq, prev, &reopened, why,
	    sizeof(why))) != 0) {
		if (rv == 1)
			snprintf(msg, msglen, "line %lu: %s", no, why);
		return rv;
	}
	if (vs->c->seq == 0) {
		if ((rv = verify_first(vs, seq, prev, reopened, msg,
		    msglen)) != 0)
			return rv;
	} else if (vs->n == 0) {
		if ((rv = verify_join(vs, seq, prev, msg, msglen)) != 0)
			return rv;
	} else if (seq != vs->c->seq + 1) {
		snprintf(msg, msglen, "line %lu: seq is %llu, expected %llu",
		    no, seq, vs->c->seq + 1);
		return 1;
	} else if (strcmp(prev, vs->c->prev) != 0) {
		snprintf(msg, msglen, "line %lu: prev does not match the "
		    "SHA-256 of line %lu (a line was edited, removed or "
		    "reordered)", no, no - 1);
		return 1;
	}
	if (sha256_hex(p, len, vs->c->prev) == -1)
		return -1;
	vs->c->seq = seq;
	vs->n++;
	return 0;
}

/*
 * Feed a chunk of the stream: complete lines are checked, the rest waits
 * in line for the next chunk. Returns like verify_line.
 */
static int
verify_chunk(struct verify *vs, const char *p, size_t n, char *line,
    size_t *llen, char *msg, size_t msglen)
{
	const char *end = p + n, *nl;
	size_t take;
	int rv;

	while (p < end) {
		nl = memchr(p, '\n', end - p);
		take = (nl != NULL ? nl : end) - p;
		if (take > AUDIT_LINE_MAX - 1 - *llen) {
			snprintf(msg, msglen, "line %lu: is longer than %d "
			    "bytes", vs->n + 1, AUDIT_LINE_MAX - 1);
			return 1;
		}
		memcpy(line + *llen, p, take);
		*llen += take;
		if (nl == NULL)
			break;
		if ((rv = verify_line(vs, line, *llen, msg, msglen)) != 0)
			return rv;
		*llen = 0;
		p = nl + 1;
	}
	return 0;
}

void
audit_chain_init(struct audit_chain *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->prev, audit_zeros, sizeof(audit_zeros));
}

int
audit_verify_fd(int fd, unsigned long *nlines, unsigned long *bad_line,
    char *msg, size_t msglen)
{
	struct audit_chain c;

	audit_chain_init(&c);
	return audit_verify_next(fd, &c, nlines, bad_line, msg, msglen);
}

int
audit_verify_next(int fd, struct audit_chain *c, unsigned long *nlines,
    unsigned long *bad_line, char *msg, size_t msglen)
{
	char chunk[8192], line[AUDIT_LINE_MAX], dummy[1];
	struct verify vs;
	size_t llen = 0;
	ssize_t n;
	int rv = 0, saved;

	if (msg == NULL || msglen == 0) {
		msg = dummy;
		msglen = sizeof(dummy);
	}
	msg[0] = '\0';
	memset(&vs, 0, sizeof(vs));
	vs.c = c;
	while (rv == 0) {
		if ((n = read(fd, chunk, sizeof(chunk))) == -1) {
			if (errno == EINTR)
				continue;
			rv = -1;
			break;
		}
		if (n == 0)
			break;
		rv = verify_chunk(&vs, chunk, n, line, &llen, msg, msglen);
	}
	if (rv == 0 && llen > 0) {
		snprintf(msg, msglen, "line %lu: has no newline at the end "
		    "(a torn final line)", vs.n + 1);
		rv = 1;
	}
	if (rv == -1) {
		saved = errno;
		snprintf(msg, msglen, "after line %lu: %s", vs.n,
		    strerror(saved));
		errno = saved;
	}
	if (nlines != NULL)
		*nlines = vs.n;
	if (bad_line != NULL)
		*bad_line = rv == 1 ? vs.n + 1 : 0;
	return rv;
}

/*
 * Open the log twice, to append and to read its tail, and make sure both
 * are the same regular file. The lock keeps a second vault (a restart
 * racing a slow exit) from interleaving lines and breaking the chain.
 */
static int
log_files_open(struct audit *a, int dirfd, const char *name, int *rfd,
    char *err, size_t errlen)
{
	struct stat ws, rs;

	a->fd = openat(dirfd, name,
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (flock(a->fd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "%s: %s", name, errno == EWOULDBLOCK ?
		    "another process is writing this log" : strerror(errno));
		return -1;
	}
	if ((*rfd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW))
	    == -1 || fstat(a->fd, &ws) == -1 || fstat(*rfd, &rs) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISREG(ws.st_mode) || ws.st_dev != rs.st_dev ||
	    ws.st_ino != rs.st_ino) {
		snprintf(err, errlen, "%s: not a regular file, or replaced "
		    "while being opened", name);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Read len bytes at off, insisting on all of them. */
static int
pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, off + got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			errno = EIO;	/* the file shrank under us */
			return -1;
		}
		got += n;
	}
	return 0;
}

/*
 * In buf, the last len bytes of the file (from offset start), find the
 * bytes after the last newline (a line torn by a crash: our lines are
 * shorter than AUDIT_LINE_MAX, so anything longer was not written by us
 * and is not ours to delete) and the last complete line [*ls, *le).
 * Returns 1 with a line, 0 without one, -1 with a reason in why.
 */
static int
tail_split(const char *buf, size_t len, off_t start, size_t *torn,
    size_t *ls, size_t *le, char *why, size_t whylen)
{
	const char *nl;
	size_t end = len;

	*torn = 0;
	if (len > 0 && buf[len - 1] != '\n') {
		nl = memrchr(buf, '\n', len);
		end = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
		if (len - end >= AUDIT_LINE_MAX) {
			snprintf(why, whylen, "it ends in %d or more bytes "
			    "without a newline, too many for a torn line",
			    AUDIT_LINE_MAX);
			return -1;
		}
		*torn = len - end;
	}
	if (end == 0)
		return 0;
	nl = memrchr(buf, '\n', end - 1);
	*ls = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
	*le = end - 1;
	if ((nl == NULL && start > 0) || *le - *ls > AUDIT_LINE_MAX - 1) {
		snprintf(why, whylen, "its last line is longer than %d bytes",
		    AUDIT_LINE_MAX - 1);
		return -1;
	}
	return 1;
}

/* Cut off a torn final line and say so in the log itself. */
static int
tail_repair(struct audit *a, const char *name, off_t size, size_t torn,
    char *err, size_t errlen)
{
	struct audit_rec rec;
	char detail[64];

	if (ftruncate(a->fd, size - (off_t)torn) == -1) {
		snprintf(err, errlen, "%s: cannot cut off its torn final "
		    "line: %s", name, strerror(errno));
		return -1;
	}
	snprintf(detail, sizeof(detail), "dropped %zu bytes of a torn final "
	    "line", torn);
	memset(&rec, 0, sizeof(rec));
	rec.peer = "vault";
	rec.pid = getpid();
	rec.type = "LOG_RECOVERED";
	rec.outcome = "ok";
	rec.detail = detail;
	if (audit_append(a, &rec) == -1) {
		snprintf(err, errlen, "%s: cut off a torn final line but "
		    "cannot record it: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Learn the next seq and prev from the last complete line. A last line we
 * cannot parse fails the open: chaining onto a tail we cannot trust would
 * hide whatever damaged it.
 */
static int
tail_load(struct audit *a, int rfd, const char *name, char *err,
    size_t errlen)
{
	char buf[AUDIT_TAIL_MAX], why[AUDIT_WHY_MAX];
	unsigned long long seq;
	size_t len, torn, ls = 0, le = 0;
	struct stat st;
	off_t start;
	int rv, crv;

	if (fstat(rfd, &st) == -1)
		goto syserr;
	start = st.st_size > AUDIT_TAIL_MAX ? st.st_size - AUDIT_TAIL_MAX : 0;
	len = st.st_size - start;
	if (pread_full(rfd, buf, len, start) == -1)
		goto syserr;
	rv = tail_split(buf, len, start, &torn, &ls, &le, why, sizeof(why));
	if (rv == -1) {
		snprintf(err, errlen, "%s: %s; refusing to chain onto a tail "
		    "that cannot be trusted", name, why);
		errno = EINVAL;
		return -1;
	}
	if (rv == 1 && (crv = line_check(buf + ls, le - ls, &seq, a->prev,
	    NULL, why, sizeof(why))) != 0) {
		if (crv == -1)
			goto syserr;
		snprintf(err, errlen, "%s: the last line %s; refusing to "
		    "chain onto a tail that cannot be trusted", name, why);
		errno = EINVAL;
		return -1;
	}
	a->seq = 1;
	memcpy(a->prev, audit_zeros, sizeof(audit_zeros));
	if (rv == 1) {
		if (seq >= LLONG_MAX || sha256_hex(buf + ls, le - ls,
		    a->prev) == -1)
			goto syserr;
		a->seq = seq + 1;
	}
	if (torn > 0)
		return tail_repair(a, name, st.st_size, torn, err, errlen);
	return 0;
 syserr:
	snprintf(err, errlen, "%s: %s", name, strerror(errno));
	return -1;
}

struct audit *
audit_open(int dirfd, const char *name, const uint8_t *key, size_t keylen,
    char *err, size_t errlen)
{
	struct audit *a;
	int rfd = -1, saved;

	if (key == NULL || keylen < AUDIT_KEY_LEN || keylen > AUDIT_KEY_MAX) {
		snprintf(err, errlen, "%s: the fingerprint key must be %d to "
		    "%d bytes", name, AUDIT_KEY_LEN, AUDIT_KEY_MAX);
		errno = EINVAL;
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return NULL;
	}
	a->fd = -1;
	memcpy(a->key, key, keylen);
	a->keylen = keylen;
	if (log_files_open(a, dirfd, name, &rfd, err, errlen) == -1 ||
	    tail_load(a, rfd, name, err, errlen) == -1) {
		saved = errno;
		if (rfd != -1)
			close(rfd);
		audit_close(a);
		errno = saved;
		return NULL;
	}
	close(rfd);
	return a;
}

/*
 * Open the file that takes the place of a rotated log: created if absent,
 * locked, and empty, since the chain we continue lives in memory and a
 * file that already holds lines holds some other chain.
 */
static int
reopen_file(int dirfd, const char *name, const struct stat *cur, int *fdp,
    char *err, size_t errlen)
{
	struct stat st;
	int fd;

	*fdp = -1;
	fd = openat(dirfd, name,
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		goto fail;
	}
	if (st.st_dev == cur->st_dev && st.st_ino == cur->st_ino) {
		close(fd);
		return 0;	/* not rotated: nothing to do */
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", name);
		errno = EINVAL;
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "%s: %s", name, errno == EWOULDBLOCK ?
		    "another process is writing this log" : strerror(errno));
		goto fail;
	}
	if (st.st_size != 0) {
		snprintf(err, errlen, "%s: a different file of %lld bytes is "
		    "in the log's place, and the chain can only continue in "
		    "an empty one; move it away and reopen again", name,
		    (long long)st.st_size);
		errno = EEXIST;
		goto fail;
	}
	*fdp = fd;
	return 0;
 fail:
	if (fd != -1)
		close(fd);
	return -1;
}

int
audit_reopen(struct audit *a, int dirfd, const char *name, int *rotated,
    char *err, size_t errlen)
{
	struct audit_rec rec;
	struct stat cur;
	char detail[128];
	int fd, oldfd, saved;

	*rotated = 0;
	if (a->poisoned) {
		snprintf(err, errlen, "%s: a failed write could not be undone; "
		    "only a restart of the vault writes the log again", name);
		errno = EIO;
		return -1;
	}
	if (fstat(a->fd, &cur) == -1) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (reopen_file(dirfd, name, &cur, &fd, err, errlen) == -1)
		return -1;
	if (fd == -1)
		return 0;
	snprintf(detail, sizeof(detail), "the log was rotated; this file "
	    "continues the chain of the previous one at seq %llu", a->seq);
	memset(&rec, 0, sizeof(rec));
	rec.peer = "vault";
	rec.pid = getpid();
	rec.type = AUDIT_TYPE_REOPENED;
	rec.outcome = "ok";
	rec.detail = detail;
	oldfd = a->fd;
	a->fd = fd;
	if (audit_append(a, &rec) == -1) {
		/* Back to the old file, which nothing has touched. */
		saved = errno;
		snprintf(err, errlen, "%s: cannot write its first line: %s",
		    name, strerror(saved));
		a->fd = oldfd;
		a->poisoned = 0;
		close(fd);
		errno = saved;
		return -1;
	}
	close(oldfd);
	/* The new name is only as durable as its directory entry. */
	(void)fsync(dirfd);
	*rotated = 1;
	return 0;
}
