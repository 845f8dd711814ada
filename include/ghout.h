/*
 * Reading the output of gh 2.23 (reference/gh.md): the one-time code and
 * verification URL of "gh auth login --web" on stderr, why a login
 * failed, and the token line of "gh auth token". gh's output is
 * untrusted: everything is matched against fixed patterns and checked
 * for shape before any of it is used. Library code: never exits.
 */
#ifndef CD_GHOUT_H
#define CD_GHOUT_H

#include <stddef.h>

/* "XXXX-XXXX": four upper-case letters or digits, a dash, four more. */
#define GHOUT_CODE_LEN 9

/* Why gh auth login exited non-zero, from the end of its stderr. */
enum ghout_failure {
	GHOUT_FAIL_OTHER,
	GHOUT_FAIL_DENIED,	/* (access_denied) */
	GHOUT_FAIL_EXPIRED,	/* (expired_token) or the context deadline */
	GHOUT_FAIL_SLOW_DOWN,	/* (slow_down), fatal in gh 2.23 */
	GHOUT_FAIL_HTTP,	/* "...: HTTP <n>", n not 200: GitHub failed */
	GHOUT_FAIL_UNREADABLE,	/* an answer gh could not read: "HTTP 200"
				 * without its fields, or one that did not
				 * parse ("unexpected EOF", "invalid
				 * character", "unexpected end of JSON") */
};

/* Remove ANSI colour sequences (ESC '[' digits and ';', then one final
 * byte) in place. */
void ghout_strip_ansi(char *s);

/*
 * Find "one-time code: XXXX-XXXX" and "Open this URL to continue in your
 * web browser: https://..." in text (NUL-terminated, ANSI-stripped in
 * place). 1 with code (clen > GHOUT_CODE_LEN) and url ("https://" and
 * more, printable, no quote or backslash, shorter than ulen) filled,
 * else 0.
 */
int ghout_code(char *text, char *code, size_t clen, char *url, size_t ulen);

/*
 * Classify a failed login's stderr (ANSI-stripped in place). The first
 * class whose marker is found wins, in the order of the enum (denied,
 * expired, slow_down, HTTP, unreadable), else GHOUT_FAIL_OTHER.
 */
enum ghout_failure ghout_failure(char *text);

/*
 * The HTTP status of gh's "failed to authenticate via web browser: HTTP
 * <n>" line (the first one): exactly three digits, not followed by a
 * fourth. 0 when there is no such line.
 */
int ghout_http_status(const char *text);

/*
 * Whether text (ANSI-stripped in place) holds the URL prompt but no
 * "one-time code: ": gh prints the code first, so a URL alone is the
 * browser login it falls back to when the device flow is unavailable
 * (reference/gh.md section 5), which never ends.
 */
int ghout_browser_only(char *text);

/* Whether text is only spaces, CRs and LFs (gh's stderr starts with an
 * empty line): gh has not heard back from GitHub yet. */
int ghout_blank(const char *text);

/*
 * The token of "gh auth token": the first line of out, 1 to len - 1
 * printable characters without spaces. 0 with tok filled, else -1.
 */
int ghout_token(const char *out, char *tok, size_t len);

#endif
