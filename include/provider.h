/*
 * What the providers' JSON answers mean, apart from the HTTP client that
 * fetched them: the token checks of Manus, GitHub and Vercel, the Vercel
 * OAuth client, token and refresh answers, and the OneDrive drive. Every
 * answer is untrusted: it is parsed with limits, never echoed (sentences
 * are our own), and what is kept from it is checked so that the vault
 * takes it (a worker whose entry or identity the vault refuses is ended
 * as hostile, and the vault with it: a provider must never cause that).
 * Library code: never exits.
 */
#ifndef CD_PROVIDER_H
#define CD_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <yajl/yajl_tree.h>

#include "cd_limits.h"

/* What a provider answered, as the worker's HTTP client got it. */
struct pv_answer {
	long		 code;		/* HTTP status, 0 when none came */
	const char	*body;		/* NUL-terminated, or NULL */
	size_t		 len;
	const char	*scopes;	/* X-OAuth-Scopes, or NULL */
};

/* Our reading of an answer, for http. */
struct pv_verdict {
	uint32_t	 status;	/* 0 while nothing went wrong */
	char		 sentence[CD_SENTENCE_MAX];
	/* The account: a malloc'd JSON object of at most
	 * CD_VAULT_ENTRY_MAX bytes, or NULL. */
	char		*identity;
};

/*
 * Whether s is a secret we keep or send on: 1 to CD_SECRET_MAX
 * printable ASCII characters without spaces (so it is valid UTF-8, has
 * no control character and cannot break a header line).
 */
int pv_secret_ok(const char *s);

/*
 * A token check's answer (GET task.list, /user, /v2/user). 1 valid, with
 * v->identity set for GitHub and Vercel; 0 rejected (v->status 422); -1
 * unusable (v->status 502): among others an account larger than the
 * vault takes, or GitHub scopes that are not printable ASCII.
 * v->sentence is set unless 1.
 */
int pv_manus_interpret(const struct pv_answer *a, struct pv_verdict *v);
int pv_github_interpret(const struct pv_answer *a, struct pv_verdict *v);
int pv_vercel_interpret(const struct pv_answer *a, struct pv_verdict *v);

/*
 * The mcp-tokens.json entry for a secret the check found valid, with
 * auth_method method (may be NULL). malloc'd JSON, or NULL when it would
 * be larger than CD_VAULT_ENTRY_MAX or memory ran out.
 */
char *pv_manus_entry(const char *secret, const struct pv_answer *a,
    const char *method);
char *pv_github_entry(const char *secret, const struct pv_answer *a,
    const char *method);
char *pv_vercel_entry(const char *secret, const struct pv_answer *a,
    const char *method);

/* The Vercel account of a /v2/user ({"user": {...}}) or OIDC userinfo
 * answer: username, name, email, avatar. malloc'd JSON, or NULL when it
 * is larger than CD_VAULT_ENTRY_MAX or memory ran out. */
char *pv_vercel_identity(yajl_val body);

/*
 * The account of an OAuth login's lookup (OIDC userinfo, else /v2/user):
 * pv_vercel_identity() of a 200 answer that is a JSON object naming an
 * account (a "user" object, or a "username" or "preferred_username"
 * string); NULL for anything else (an empty object, an error document,
 * HTML), so that no token is stored for an account nobody can name.
 */
char *pv_vercel_account(const struct pv_answer *a);

/*
 * A stored or registered Vercel OAuth client: 0 with its client_id (1 to
 * idlen - 1 printable characters without spaces) and client_secret (""
 * for a public client, else the same) copied whole, or -1.
 */
int pv_vercel_client(yajl_val client, char *id, size_t idlen, char *secret,
    size_t slen);
/* Whether client's redirect_uris holds redirect. */
int pv_vercel_client_usable(yajl_val client, const char *redirect);

/*
 * A registration answer (RFC 7591, HTTP 200 or 201): 0 with the client
 * as pv_vercel_client() gives it and *keep the JSON for the vault (what
 * Vercel returned, with redirect_uris [redirect] when it sent none), or
 * NULL when that is larger than CD_VAULT_ENTRY_MAX; -1 if unusable.
 */
int pv_vercel_registered(const struct pv_answer *a, const char *redirect,
    char *id, size_t idlen, char *secret, size_t slen, char **keep);

/*
 * A token endpoint's answer (authorization_code or refresh_token grant;
 * a->code is not 0). The parsed answer, whose access_token and any
 * refresh_token string pass pv_secret_ok(); or NULL with v->status
 * 422 (HTTP 400 or 401: the code or refresh token was refused) or 502
 * (a 200 that is not JSON, one without an access token, one with a
 * token connectord cannot use, any other status).
 */
yajl_val pv_vercel_token(const struct pv_answer *a, struct pv_verdict *v);

/*
 * The Vercel entry of an OAuth login: the token answer's tokens, when
 * they expire (expires_in from now, cut to 0 to CD_OAUTH_EXPIRES_MAX;
 * 3600 when absent), and the account's names from ident (JSON, may be
 * NULL). malloc'd JSON, or NULL when larger than CD_VAULT_ENTRY_MAX.
 */
char *pv_vercel_oauth_entry(yajl_val tok, const char *ident, time_t now);

/*
 * The stored entry old with a refresh's answer tok: the new access
 * token and expiry (as above), the new refresh token if one came.
 * malloc'd JSON, or NULL when larger than CD_VAULT_ENTRY_MAX.
 */
char *pv_vercel_refreshed(yajl_val old, yajl_val tok, time_t now);

/*
 * Microsoft Graph's me/drive answer: 0 with the drive's id and type
 * ("personal" when none is given) copied, each 1 to len - 1 printable
 * characters without spaces or quotes (they become rclone.conf values);
 * or -1 with v->status 502 and a sentence that tells no answer (code 0),
 * an HTTP failure, a 200 that is not a drive (no "id") and a drive
 * connectord cannot keep apart.
 */
int pv_onedrive_drive(const struct pv_answer *a, char *id, size_t idlen,
    char *type, size_t tlen, struct pv_verdict *v);

#endif
