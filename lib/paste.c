/*
 * Parsing a pasted OAuth redirect. The original service searched for
 * "code=" with a regular expression, never decoded it and ignored the
 * pasted state (reference/seed-service.md §10 items 4 and 5); here the
 * query is split properly, each value is decoded once, and the state is
 * returned so the caller can compare it with the flow's own.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "paste.h"

static int
paste_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode len bytes of s once into out; '+' is a space only inside a
 * query string. -1 on a bad escape or overflow. */
static int
paste_decode(const char *s, size_t len, int plus, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len || (hi = paste_hex(s[i + 1])) < 0 ||
			    (lo = paste_hex(s[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+' && plus)
			c = ' ';
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* Printable ASCII, no spaces, not empty. */
static int
paste_clean(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Find key in an '&'-separated query; the raw value in *v, *vlen. */
static int
paste_query_get(const char *q, size_t qlen, const char *key, const char **v,
    size_t *vlen)
{
	size_t klen = strlen(key), i = 0;

	while (i < qlen) {
		size_t end = i;

		while (end < qlen && q[end] != '&' && q[end] != '#')
			end++;
		if (end - i > klen && strncmp(q + i, key, klen) == 0 &&
		    q[i + klen] == '=') {
			*v = q + i + klen + 1;
			*vlen = end - i - klen - 1;
			return 1;
		}
		if (end < qlen && q[end] == '#')
			break;
		i = end + 1;
	}
	return 0;
}

static int
paste_url(const char *s, size_t len, struct paste *p, char *err,
    size_t errlen)
{
	const char	*q = memchr(s, '?', len), *v;
	size_t		 qlen, vlen;

	p->is_url = 1;
	if (q == NULL) {
		snprintf(err, errlen, "The pasted URL has no query string.");
		return -1;
	}
	q++;
	qlen = len - (size_t)(q - s);
	if (paste_query_get(q, qlen, "error", &v, &vlen)) {
		snprintf(err, errlen, "The provider refused the authorization "
		    "(the pasted URL carries an error); start again.");
		return -1;
	}
	if (!paste_query_get(q, qlen, "code", &v, &vlen) ||
	    paste_decode(v, vlen, 1, p->code, sizeof(p->code)) == -1 ||
	    !paste_clean(p->code)) {
		snprintf(err, errlen, "The pasted URL has no usable code.");
		return -1;
	}
	if (paste_query_get(q, qlen, "state", &v, &vlen)) {
		if (paste_decode(v, vlen, 1, p->state, sizeof(p->state)) == -1 ||
		    !paste_clean(p->state)) {
			snprintf(err, errlen, "The pasted URL has a malformed "
			    "state.");
			return -1;
		}
		p->has_state = 1;
	}
	return 0;
}

int
paste_parse(const char *in, struct paste *p, char *err, size_t errlen)
{
	size_t	 len;

	memset(p, 0, sizeof(*p));
	if (in == NULL) {
		snprintf(err, errlen, "Paste the redirect URL or the code.");
		return -1;
	}
	while (isspace((unsigned char)*in))
		in++;
	len = strnlen(in, PASTE_MAX + 1);
	if (len > PASTE_MAX) {
		snprintf(err, errlen, "The pasted text is longer than %d "
		    "characters.", PASTE_MAX);
		return -1;
	}
	while (len > 0 && isspace((unsigned char)in[len - 1]))
		len--;
	if (len == 0) {
		snprintf(err, errlen, "Paste the redirect URL or the code.");
		return -1;
	}
	if (memchr(in, '?', len) != NULL || memmem(in, len, "://", 3) != NULL)
		return paste_url(in, len, p, err, errlen);
	if (paste_decode(in, len, 0, p->code, sizeof(p->code)) == -1 ||
	    !paste_clean(p->code)) {
		snprintf(err, errlen, "The pasted code holds characters a code "
		    "cannot have.");
		return -1;
	}
	return 0;
}

int
paste_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}
