/*
 * Reading the output of "rclone authorize" (rclone 1.60,
 * reference/rclone.md): the local URL on stderr, the token between the
 * paste markers on stdout, and why a run failed; and the remote's entry
 * built from that token for the vault. rclone's output is untrusted and
 * can hold a token: it is matched against fixed patterns, never logged.
 * Library code: never exits.
 */
#ifndef CD_RCOUT_H
#define CD_RCOUT_H

#include <stddef.h>

/* Why rclone authorize exited non-zero, from its stderr. */
enum rcout_failure {
	RCOUT_FAIL_OTHER,
	RCOUT_FAIL_PORT_IN_USE,	/* its callback port is taken */
	RCOUT_FAIL_BAD_CODE,	/* the provider refused the code */
	RCOUT_FAIL_REFUSED,	/* the user refused at the provider */
	RCOUT_FAIL_PROVIDER,	/* the token endpoint answered HTTP 5xx */
	RCOUT_FAIL_UNREACHABLE,	/* no answer from the token endpoint */
	RCOUT_FAIL_UNREADABLE,	/* an answer without a status that did not
				 * parse or held no access token */
};

/*
 * Find "http://127.0.0.1:<port>/auth?state=<state>" in text (the first
 * "http://127.0.0.1:"): port in plain decimal digits without a leading
 * zero, 1 to 65535; state 1 to slen - 2
 * characters of [A-Za-z0-9_-], followed by a line end, a space or the
 * end. 1 with *port and state filled, else 0.
 */
int rcout_url(const char *text, int *port, char *state, size_t slen);

/*
 * The token rclone printed: the first line of text that starts with '{',
 * is at most CD_RCLONE_TOKEN_MAX bytes and is a JSON object holding an
 * "access_token" string, without its trailing white space. malloc'd, or NULL.
 */
char *rcout_token(const char *text);

/*
 * Classify a failed run's stderr. "address already in use" is
 * PORT_IN_USE; then a token status (rcout_token_status) of 500 or more
 * is PROVIDER; then "failed to get token" is UNREACHABLE with no status
 * and "dial tcp", "proxyconnect" or "Client.Timeout", UNREADABLE with no
 * status otherwise, BAD_CODE with a status below 500; then "No code
 * returned" is REFUSED; else OTHER.
 */
enum rcout_failure rcout_failure(const char *text);

/*
 * The HTTP status of the token endpoint in rclone's "cannot fetch token:
 * <n> <reason>" line (the first one): exactly three digits followed by a
 * space. 0 when there is no such line.
 */
int rcout_token_status(const char *text);

/*
 * The remote's entry for the vault, {"type", "token"} and, when drive_id
 * is not NULL, "drive_id" and "drive_type". malloc'd JSON and its length
 * in *len, or NULL when it would be larger than CD_VAULT_ENTRY_MAX (the
 * vault ends a worker that sends more) or memory ran out.
 */
char *rcout_entry(const char *backend, const char *token,
    const char *drive_id, const char *drive_type, size_t *len);

#endif
