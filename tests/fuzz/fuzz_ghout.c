/*
 * libFuzzer target for reading gh's output (lib/ghout.c). The first
 * byte picks the size of the URL buffer (the worker's, or 1 to 128 bytes
 * to reach its bounds); the rest is gh's stderr or stdout.
 *
 * Invariants: stripping ANSI keeps a subsequence of the text and never
 * lengthens it; a found code is exactly XXXX-XXXX (upper-case letters or
 * digits) and follows "one-time code: " in the stripped text; a found
 * URL starts with https://, is printable without spaces, quotes or
 * backslashes, fits its buffer with its NUL, and follows the URL prompt;
 * nothing is written past either buffer; the failure class is the one
 * a model of gh's markers gives for the stripped text (denied, expired,
 * slow_down, an HTTP status other than 200, an answer gh could not read:
 * "HTTP 200", "unexpected EOF", "invalid character", "unexpected end of
 * JSON"), and the status read is the three digits the text holds; the
 * browser fallback is the URL prompt without a code line and never
 * comes with a found code; blank text is only spaces and line ends; a
 * token is the first line, 1 to len - 1 printable characters. abort()
 * on any violation.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ghout.h"

/* More than the worker's tool buffer (16 KiB) is never looked at. */
#define FUZZ_TEXT_MAX 16384
/* Bytes after each output buffer that must stay untouched. */
#define FUZZ_GUARD 16

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* A buffer of len bytes followed by a guard of 0xA5 bytes. */
static char *
guarded(size_t len)
{
	char *b = malloc(len + FUZZ_GUARD);

	check(b != NULL);
	memset(b, 0xa5, len + FUZZ_GUARD);
	return b;
}

static void
guard_intact(const char *b, size_t len)
{
	for (size_t i = 0; i < FUZZ_GUARD; i++)
		check((unsigned char)b[len + i] == 0xa5);
}

/* Whether out is in (both NUL-terminated) with some bytes left out. */
static int
subsequence(const char *out, const char *in)
{
	for (; *out != '\0'; out++) {
		while (*in != '\0' && *in != *out)
			in++;
		if (*in == '\0')
			return 0;
		in++;
	}
	return 1;
}

static void
check_strip(const char *text)
{
	char *s = strdup(text);

	check(s != NULL);
	ghout_strip_ansi(s);
	check(strlen(s) <= strlen(text) && subsequence(s, text));
	/* No colour sequence survives that the text did not build from
	 * two halves around a removed one. */
	if (strstr(text, "\x1b[") == NULL)
		check(strcmp(s, text) == 0);
	free(s);
}

static void
check_code(const char *text, size_t ulen)
{
	char	*t = strdup(text), *code = guarded(GHOUT_CODE_LEN + 1);
	char	*url = guarded(ulen), *stripped = strdup(text), *at;
	char	 prompt[CD_GH_URL_MAX + 64];

	check(t != NULL && stripped != NULL);
	ghout_strip_ansi(stripped);
	if (ghout_code(t, code, GHOUT_CODE_LEN + 1, url, ulen)) {
		check(strcmp(t, stripped) == 0);
		check(strlen(code) == GHOUT_CODE_LEN && code[4] == '-');
		for (size_t i = 0; i < GHOUT_CODE_LEN; i++)
			check(i == 4 || isupper((unsigned char)code[i]) ||
			    isdigit((unsigned char)code[i]));
		at = strstr(stripped, "one-time code: ");
		check(at != NULL && strncmp(at + 15, code, GHOUT_CODE_LEN) == 0);
		check(memchr(url, '\0', ulen) != NULL && strlen(url) > 8 &&
		    strncmp(url, "https://", 8) == 0);
		for (size_t i = 0; url[i] != '\0'; i++)
			check(isgraph((unsigned char)url[i]) && url[i] != '"' &&
			    url[i] != '\\');
		strcpy(prompt, "Open this URL to continue in your web browser: ");
		strcat(prompt, url);
		at = strstr(stripped, "Open this URL to continue in your web "
		    "browser: ");
		check(at != NULL && strncmp(at, prompt, strlen(prompt)) == 0 &&
		    strchr(" \t\r\n", at[strlen(prompt)]) != NULL);
	}
	guard_intact(code, GHOUT_CODE_LEN + 1);
	guard_intact(url, ulen);
	free(stripped);
	free(url);
	free(code);
	free(t);
}

/* The status gh's failure line names, read another way than the
 * library does: three digits exactly, after the first such prefix. */
static int
model_http(const char *s)
{
	static const char	 key[] = "failed to authenticate via web "
				    "browser: HTTP ";
	const char		*p = strstr(s, key);

	if (p == NULL)
		return 0;
	p += strlen(key);
	if (strspn(p, "0123456789") != 3)
		return 0;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* The class each marker stands for, first match winning. */
static enum ghout_failure
model_failure(const char *s)
{
	int http = model_http(s);

	if (strstr(s, "(access_denied)") != NULL)
		return GHOUT_FAIL_DENIED;
	if (strstr(s, "(expired_token)") != NULL ||
	    strstr(s, "context deadline exceeded") != NULL)
		return GHOUT_FAIL_EXPIRED;
	if (strstr(s, "(slow_down)") != NULL)
		return GHOUT_FAIL_SLOW_DOWN;
	if (http != 0 && http != 200)
		return GHOUT_FAIL_HTTP;
	if (http == 200 || strstr(s, "unexpected EOF") != NULL ||
	    strstr(s, "invalid character") != NULL ||
	    strstr(s, "unexpected end of JSON") != NULL)
		return GHOUT_FAIL_UNREADABLE;
	return GHOUT_FAIL_OTHER;
}

static void
check_failure(const char *text)
{
	char			*t = strdup(text), *s = strdup(text);
	enum ghout_failure	 f;
	int			 http;
	char			 digits[16];

	check(t != NULL && s != NULL);
	f = ghout_failure(t);
	ghout_strip_ansi(s);
	check(strcmp(t, s) == 0);
	check(f == model_failure(s));
	http = ghout_http_status(s);
	check(http == model_http(s) && http >= 0 && http <= 999);
	/* The status named in a sentence is the one in the text. */
	if (http != 0) {
		snprintf(digits, sizeof(digits), "HTTP %03d", http);
		check(strstr(s, digits) != NULL);
	}
	switch (f) {
	case GHOUT_FAIL_HTTP:
		check(http != 0 && http != 200);
		break;
	case GHOUT_FAIL_UNREADABLE:
		check(http == 0 || http == 200);
		break;
	case GHOUT_FAIL_DENIED:
	case GHOUT_FAIL_EXPIRED:
	case GHOUT_FAIL_SLOW_DOWN:
	case GHOUT_FAIL_OTHER:
		break;
	}
	free(s);
	free(t);
}

/* The browser fallback: the URL prompt without a code line, never
 * together with a code found; silence: only blanks. */
static void
check_waiting(const char *text, size_t ulen)
{
	char	*t = strdup(text), *s = strdup(text), *c = strdup(text);
	char	 code[GHOUT_CODE_LEN + 1], *url = guarded(ulen);
	int	 only, found;

	check(t != NULL && s != NULL && c != NULL);
	ghout_strip_ansi(s);
	only = ghout_browser_only(t);
	check(strcmp(t, s) == 0);
	check(only == (strstr(s, "Open this URL to continue in your web "
	    "browser: ") != NULL && strstr(s, "one-time code: ") == NULL));
	found = ghout_code(c, code, sizeof(code), url, ulen);
	check(!(only && found));
	check(ghout_blank(text) == (strspn(text, " \r\n") == strlen(text)));
	if (ghout_blank(text))
		check(!found && !only && ghout_failure(c) == GHOUT_FAIL_OTHER);
	guard_intact(url, ulen);
	free(url);
	free(c);
	free(s);
	free(t);
}

static void
check_token(const char *text, size_t len)
{
	char	*tok = guarded(len);
	size_t	 n;

	if (ghout_token(text, tok, len) == 0) {
		n = strlen(tok);
		check(n > 0 && n < len && strncmp(tok, text, n) == 0 &&
		    (text[n] == '\0' || text[n] == '\r' || text[n] == '\n'));
		for (size_t i = 0; i < n; i++)
			check(isgraph((unsigned char)tok[i]));
	}
	guard_intact(tok, len);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 text[FUZZ_TEXT_MAX + 1];
	size_t		 ulen;

	if (size == 0)
		return 0;
	ulen = data[0] < 128 ? CD_GH_URL_MAX : (size_t)data[0] - 127;
	size--;
	if (size > FUZZ_TEXT_MAX)
		size = FUZZ_TEXT_MAX;
	memcpy(text, data + 1, size);
	text[size] = '\0';
	check_strip(text);
	check_code(text, ulen);
	check_failure(text);
	check_waiting(text, ulen);
	check_token(text, CD_SECRET_MAX + 1);
	check_token(text, ulen);
	return 0;
}
