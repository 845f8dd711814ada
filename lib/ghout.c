/*
 * gh's output, read with fixed patterns (see ghout.h). Nothing here is
 * logged: the text can hold a token.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ghout.h"

void
ghout_strip_ansi(char *s)
{
	char *w = s;

	while (*s != '\0') {
		if (s[0] == '\x1b' && s[1] == '[') {
			s += 2;
			while ((*s >= '0' && *s <= '9') || *s == ';')
				s++;
			if (*s != '\0')
				s++;
			continue;
		}
		*w++ = *s++;
	}
	*w = '\0';
}

/* The prompts of gh 2.23's device flow, in the order it prints them. */
static const char ghout_code_key[] = "one-time code: ";
static const char ghout_url_key[] = "Open this URL to continue in your web "
    "browser: ";

int
ghout_code(char *text, char *code, size_t clen, char *url, size_t ulen)
{
	char	*c, *u;
	size_t	 n;

	ghout_strip_ansi(text);
	if ((c = strstr(text, ghout_code_key)) == NULL ||
	    (u = strstr(text, ghout_url_key)) == NULL)
		return 0;
	c += sizeof(ghout_code_key) - 1;
	u += sizeof(ghout_url_key) - 1;
	for (n = 0; n < GHOUT_CODE_LEN && (isupper((unsigned char)c[n]) ||
	    isdigit((unsigned char)c[n]) || (n == 4 && c[n] == '-')); n++)
		;
	if (n != GHOUT_CODE_LEN || c[4] != '-' || clen <= GHOUT_CODE_LEN)
		return 0;
	snprintf(code, clen, "%.*s", GHOUT_CODE_LEN, c);
	/* "https://" and at least a host: the bare scheme is no page. */
	n = strcspn(u, " \t\r\n");
	if (n <= 8 || n >= ulen || strncmp(u, "https://", 8) != 0)
		return 0;
	snprintf(url, ulen, "%.*s", (int)n, u);
	for (size_t i = 0; url[i] != '\0'; i++)
		if (!isgraph((unsigned char)url[i]) || url[i] == '"' ||
		    url[i] == '\\')
			return 0;
	return 1;
}

enum ghout_failure
ghout_failure(char *text)
{
	int http;

	ghout_strip_ansi(text);
	if (strstr(text, "(access_denied)") != NULL)
		return GHOUT_FAIL_DENIED;
	if (strstr(text, "(expired_token)") != NULL ||
	    strstr(text, "context deadline exceeded") != NULL)
		return GHOUT_FAIL_EXPIRED;
	if (strstr(text, "(slow_down)") != NULL)
		return GHOUT_FAIL_SLOW_DOWN;
	http = ghout_http_status(text);
	if (http != 0 && http != 200)
		return GHOUT_FAIL_HTTP;
	/* An answer without the fields gh looks for, or one that does not
	 * parse (HTML, a cut-off document). */
	if (http == 200 || strstr(text, "unexpected EOF") != NULL ||
	    strstr(text, "invalid character") != NULL ||
	    strstr(text, "unexpected end of JSON") != NULL)
		return GHOUT_FAIL_UNREADABLE;
	return GHOUT_FAIL_OTHER;
}

int
ghout_http_status(const char *text)
{
	static const char	 key[] = "failed to authenticate via web "
				    "browser: HTTP ";
	const char		*p = strstr(text, key);
	int			 n = 0;

	if (p == NULL)
		return 0;
	p += sizeof(key) - 1;
	for (int i = 0; i < 3; i++, p++) {
		if (!isdigit((unsigned char)*p))
			return 0;
		n = n * 10 + (*p - '0');
	}
	return isdigit((unsigned char)*p) ? 0 : n;
}

int
ghout_browser_only(char *text)
{
	ghout_strip_ansi(text);
	return strstr(text, ghout_url_key) != NULL &&
	    strstr(text, ghout_code_key) == NULL;
}

int
ghout_blank(const char *text)
{
	return text[strspn(text, " \r\n")] == '\0';
}

int
ghout_token(const char *out, char *tok, size_t len)
{
	size_t n = strcspn(out, "\r\n");

	if (n == 0 || n >= len)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)out[i]))
			return -1;
	snprintf(tok, len, "%.*s", (int)n, out);
	return 0;
}
