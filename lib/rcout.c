/*
 * rclone authorize's output, read with fixed patterns (see rcout.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"
#include "rcout.h"

int
rcout_url(const char *text, int *port, char *state, size_t slen)
{
	static const char	 pre[] = "http://127.0.0.1:";
	const char		*p = strstr(text, pre), *s;
	long			 pn = 0;
	size_t			 n, d;

	if (p == NULL || slen < 2)
		return 0;
	/* The port as rclone prints it: plain digits, no sign, no space,
	 * no leading zero (strtol() would take all three). */
	p += sizeof(pre) - 1;
	for (d = 0; d < 5 && p[d] >= '0' && p[d] <= '9'; d++)
		pn = pn * 10 + (p[d] - '0');
	if (d == 0 || p[0] == '0' || pn > 65535 ||
	    strncmp(p + d, "/auth?state=", 12) != 0)
		return 0;
	s = p + d + 12;
	for (n = 0; n < slen - 1 && (isalnum((unsigned char)s[n]) ||
	    s[n] == '-' || s[n] == '_'); n++)
		;
	if (n == 0 || n == slen - 1 || (s[n] != '\n' && s[n] != '\r' &&
	    s[n] != ' ' && s[n] != '\0'))
		return 0;
	*port = (int)pn;
	snprintf(state, slen, "%.*s", (int)n, s);
	return 1;
}

/* Whether the line of n bytes at s is a token: a JSON object with an
 * "access_token" string. */
static int
rcout_is_token(const char *s, size_t n)
{
	yajl_val	 v;
	char		 err[64];
	int		 yes;

	if (n == 0 || s[0] != '{')
		return 0;
	v = json_parse(s, n, CD_RCLONE_TOKEN_MAX, err, sizeof(err));
	yes = json_obj_str(v, "access_token") != NULL;
	if (v != NULL)
		json_free_secret(v);
	return yes;
}

char *
rcout_token(const char *text)
{
	const char	*s = text;
	size_t		 n, t;

	for (; *s != '\0'; s += n) {
		s += strspn(s, "\r\n");
		n = strcspn(s, "\r\n");
		if (!rcout_is_token(s, n))
			continue;
		/* JSON allows white space (yajl: also \v and \f) after the
		 * object; an rclone.conf value must not end in any, or the
		 * vault refuses the remote. */
		for (t = n; t > 0 && isspace((unsigned char)s[t - 1]); t--)
			;
		return strndup(s, t);
	}
	return NULL;
}

enum rcout_failure
rcout_failure(const char *text)
{
	int http = rcout_token_status(text);

	if (strstr(text, "address already in use") != NULL)
		return RCOUT_FAIL_PORT_IN_USE;
	if (http >= 500)
		return RCOUT_FAIL_PROVIDER;
	if (strstr(text, "failed to get token") != NULL) {
		if (http != 0)
			return RCOUT_FAIL_BAD_CODE;
		/* No status: the request never got an answer, or got one
		 * that did not parse or held no access token. */
		if (strstr(text, "dial tcp") != NULL ||
		    strstr(text, "proxyconnect") != NULL ||
		    strstr(text, "Client.Timeout") != NULL)
			return RCOUT_FAIL_UNREACHABLE;
		return RCOUT_FAIL_UNREADABLE;
	}
	if (strstr(text, "No code returned") != NULL)
		return RCOUT_FAIL_REFUSED;
	return RCOUT_FAIL_OTHER;
}

int
rcout_token_status(const char *text)
{
	static const char	 key[] = "cannot fetch token: ";
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
	return *p == ' ' ? n : 0;
}

char *
rcout_entry(const char *backend, const char *token, const char *drive_id,
    const char *drive_type, size_t *len)
{
	yajl_val	 e;
	char		*out;

	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "type", json_new_str(backend)) == -1 ||
	    json_obj_set(e, "token", json_new_str(token)) == -1 ||
	    (drive_id != NULL && (json_obj_set(e, "drive_id",
	    json_new_str(drive_id)) == -1 || json_obj_set(e, "drive_type",
	    json_new_str(drive_type)) == -1))) {
		json_free_secret(e);
		return NULL;
	}
	out = json_dump(e, 0, len);
	json_free_secret(e);
	if (out != NULL && *len > CD_VAULT_ENTRY_MAX) {
		explicit_bzero(out, *len);
		free(out);
		return NULL;
	}
	return out;
}
