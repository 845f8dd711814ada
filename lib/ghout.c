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

int
ghout_code(char *text, char *code, size_t clen, char *url, size_t ulen)
{
	static const char ck[] = "one-time code: ";
	static const char uk[] = "Open this URL to continue in your web "
	    "browser: ";
	char	*c, *u;
	size_t	 n;

	ghout_strip_ansi(text);
	if ((c = strstr(text, ck)) == NULL || (u = strstr(text, uk)) == NULL)
		return 0;
	c += sizeof(ck) - 1;
	u += sizeof(uk) - 1;
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
	ghout_strip_ansi(text);
	if (strstr(text, "(access_denied)") != NULL)
		return GHOUT_FAIL_DENIED;
	if (strstr(text, "(expired_token)") != NULL ||
	    strstr(text, "context deadline exceeded") != NULL)
		return GHOUT_FAIL_EXPIRED;
	if (strstr(text, "(slow_down)") != NULL)
		return GHOUT_FAIL_SLOW_DOWN;
	return GHOUT_FAIL_OTHER;
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
