/*
 * libFuzzer target for reading rclone authorize's output (lib/rcout.c).
 * The first byte picks the size of the state buffer (the worker's, or 1
 * to 128 bytes); the rest is rclone's stderr or stdout.
 *
 * Invariants: a found local URL is literally in the text, at the first
 * "http://127.0.0.1:", as "http://127.0.0.1:<port>/auth?state=<state>"
 * with the port printed plainly (1 to 65535) and the state 1 to slen - 2
 * characters of [A-Za-z0-9_-] followed by a line end, a space or the
 * end, and nothing is written past the state buffer; a found token is a
 * whole line of the text without its trailing white space, the first one
 * that is a JSON object with an "access_token" string within
 * CD_RCLONE_TOKEN_MAX bytes; the entry built from it, for Drive and for
 * OneDrive, is one the vault takes (within CD_VAULT_ENTRY_MAX, a JSON
 * object with the backend and the token, whose keys make an rclone.conf
 * section: vault_rclone.c ends a worker whose entry does not), or is
 * refused only for its size; the failure class is the one a model of
 * rclone's markers gives (port in use; a token endpoint status of 500 or
 * more; "failed to get token" with a lower status, or without one and a
 * transport error, or without one and an answer rclone could not read;
 * "No code returned"), and the status read is the three digits the
 * text holds. abort() on any violation.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ini.h"
#include "json.h"
#include "rcout.h"

/* More than the worker's tool buffer (16 KiB) is never looked at. */
#define FUZZ_TEXT_MAX 16384
/* Bytes after the state buffer that must stay untouched. */
#define FUZZ_GUARD 16

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

static int
state_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void
check_url(const char *text, size_t slen)
{
	char	*state = malloc(slen + FUZZ_GUARD), want[128];
	char	*at;
	int	 port = 0;
	size_t	 n;

	check(state != NULL);
	memset(state, 0xa5, slen + FUZZ_GUARD);
	if (rcout_url(text, &port, state, slen)) {
		n = strnlen(state, slen);
		check(n > 0 && n < slen - 1 && port >= 1 && port <= 65535);
		for (size_t i = 0; i < n; i++)
			check(state_char(state[i]));
		snprintf(want, sizeof(want), "http://127.0.0.1:%d/auth?state=",
		    port);
		at = strstr(text, "http://127.0.0.1:");
		check(at != NULL && strncmp(at, want, strlen(want)) == 0 &&
		    strncmp(at + strlen(want), state, n) == 0 &&
		    strchr("\r\n ", at[strlen(want) + n]) != NULL);
	}
	for (size_t i = slen; i < slen + FUZZ_GUARD; i++)
		check((unsigned char)state[i] == 0xa5);
	free(state);
}

/* The model: whether the n bytes at s make a token line. */
static int
token_line(const char *s, size_t n)
{
	yajl_val	 v;
	char		 err[64];
	int		 yes;

	if (n == 0 || s[0] != '{' || n > CD_RCLONE_TOKEN_MAX)
		return 0;
	v = json_parse(s, n, n, err, sizeof(err));
	yes = YAJL_IS_OBJECT(v) && json_obj_str(v, "access_token") != NULL;
	if (v != NULL)
		json_free_secret(v);
	return yes;
}

/* The vault's checks of a remote's entry (vault_put_remote(),
 * vault_rclone_put(), vault_rclone_section()). */
static void
vault_takes(const char *json, size_t len, const char *backend,
    const char *token, const char *drive_id)
{
	static const char *const order[] = { "type", "token", "drive_id",
	    "drive_type" };
	const char	*keys[5], *vals[5];
	char		 err[256], *section;
	yajl_val	 e;
	size_t		 n = 0;

	e = json_parse(json, len, CD_VAULT_ENTRY_MAX, err, sizeof(err));
	check(YAJL_IS_OBJECT(e));
	check(strcmp(json_obj_str(e, "type"), backend) == 0 &&
	    strcmp(json_obj_str(e, "token"), token) == 0 && *token != '\0');
	check((json_obj_str(e, "drive_id") != NULL) == (drive_id != NULL));
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if ((vals[n] = json_obj_str(e, order[i])) != NULL)
			keys[n++] = order[i];
	}
	keys[n] = vals[n] = NULL;
	section = ini_section("remote", keys, vals, err, sizeof(err));
	check(section != NULL);
	free(section);
	json_free_secret(e);
}

/* Whether the entry would be larger than the vault takes. */
static int
too_large(const char *backend, const char *token, const char *drive_id,
    const char *drive_type)
{
	yajl_val	 e = json_new_obj();
	char		*out;
	size_t		 len = 0;

	check(json_obj_set(e, "type", json_new_str(backend)) == 0 &&
	    json_obj_set(e, "token", json_new_str(token)) == 0);
	if (drive_id != NULL)
		check(json_obj_set(e, "drive_id", json_new_str(drive_id)) == 0 &&
		    json_obj_set(e, "drive_type", json_new_str(drive_type)) == 0);
	check((out = json_dump(e, 0, &len)) != NULL);
	free(out);
	json_free_secret(e);
	return len > CD_VAULT_ENTRY_MAX;
}

static void
check_entry(const char *token, const char *backend, const char *drive_id,
    const char *drive_type)
{
	char	*json;
	size_t	 len = 0;

	json = rcout_entry(backend, token, drive_id, drive_type, &len);
	if (json == NULL) {
		check(too_large(backend, token, drive_id, drive_type));
		return;
	}
	check(strlen(json) == len);
	vault_takes(json, len, backend, token, drive_id);
	free(json);
}

static void
check_token(const char *text)
{
	char		*tok = rcout_token(text);
	const char	*s = text, *first = NULL;
	size_t		 n = 0;

	for (; *s != '\0' && first == NULL; s += n) {
		s += strspn(s, "\r\n");
		n = strcspn(s, "\r\n");
		if (token_line(s, n))
			first = s;
	}
	if (first == NULL) {
		check(tok == NULL);
		return;
	}
	while (n > 0 && isspace((unsigned char)first[n - 1]))
		n--;
	check(tok != NULL && strlen(tok) == n && memcmp(tok, first, n) == 0);
	check_entry(tok, "drive", NULL, NULL);
	check_entry(tok, "onedrive", "b!Q2xpZW50RHJpdmVfSWQ", "business");
	free(tok);
}

/* The token endpoint's status, read another way than the library
 * does: three digits and a space after the first such prefix. */
static int
model_status(const char *s)
{
	const char *p = strstr(s, "cannot fetch token: ");

	if (p == NULL)
		return 0;
	p += strlen("cannot fetch token: ");
	if (strspn(p, "0123456789") < 3 || p[3] != ' ')
		return 0;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* The class each marker stands for, first match winning. */
static enum rcout_failure
model_failure(const char *s)
{
	int http = model_status(s);

	if (strstr(s, "address already in use") != NULL)
		return RCOUT_FAIL_PORT_IN_USE;
	if (http >= 500)
		return RCOUT_FAIL_PROVIDER;
	if (strstr(s, "failed to get token") != NULL) {
		if (http != 0)
			return RCOUT_FAIL_BAD_CODE;
		if (strstr(s, "dial tcp") != NULL ||
		    strstr(s, "proxyconnect") != NULL ||
		    strstr(s, "Client.Timeout") != NULL)
			return RCOUT_FAIL_UNREACHABLE;
		return RCOUT_FAIL_UNREADABLE;
	}
	if (strstr(s, "No code returned") != NULL)
		return RCOUT_FAIL_REFUSED;
	return RCOUT_FAIL_OTHER;
}

static void
check_failure(const char *text)
{
	enum rcout_failure	 f = rcout_failure(text);
	int			 http = rcout_token_status(text);
	char			 named[32];

	check(f == model_failure(text));
	check(http == model_status(text) && http >= 0 && http <= 999);
	/* The status a sentence names is the one in the text. */
	if (http != 0) {
		snprintf(named, sizeof(named), "cannot fetch token: %03d ", http);
		check(strstr(text, named) != NULL);
	}
	switch (f) {
	case RCOUT_FAIL_PROVIDER:
		check(http >= 500);
		break;
	case RCOUT_FAIL_BAD_CODE:
		check(http > 0 && http < 500 &&
		    strstr(text, "failed to get token") != NULL);
		break;
	case RCOUT_FAIL_UNREACHABLE:
	case RCOUT_FAIL_UNREADABLE:
		check(http == 0 && strstr(text, "failed to get token") != NULL);
		break;
	case RCOUT_FAIL_PORT_IN_USE:
		check(strstr(text, "address already in use") != NULL);
		break;
	case RCOUT_FAIL_REFUSED:
		check(strstr(text, "No code returned") != NULL &&
		    strstr(text, "failed to get token") == NULL);
		break;
	case RCOUT_FAIL_OTHER:
		check(strstr(text, "address already in use") == NULL &&
		    strstr(text, "failed to get token") == NULL &&
		    strstr(text, "No code returned") == NULL && http < 500);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 text[FUZZ_TEXT_MAX + 1];
	size_t		 slen;

	if (size == 0)
		return 0;
	slen = data[0] < 128 ? CD_RCLONE_STATE_MAX : (size_t)data[0] - 127;
	size--;
	if (size > FUZZ_TEXT_MAX)
		size = FUZZ_TEXT_MAX;
	memcpy(text, data + 1, size);
	text[size] = '\0';
	check_url(text, slen);
	check_token(text);
	check_failure(text);
	return 0;
}
