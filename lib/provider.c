/*
 * The providers' answers read apart from the HTTP client (provider.h).
 * Sentences name the provider and the HTTP status, never anything the
 * provider wrote.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "provider.h"

int
pv_secret_ok(const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > CD_SECRET_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* The body as JSON, or NULL. */
static yajl_val
pv_body(const struct pv_answer *a)
{
	char err[128];

	if (a->body == NULL || a->len == 0)
		return NULL;
	return json_parse(a->body, a->len, CD_CURL_BODY_MAX, err, sizeof(err));
}

static void
pv_fail(struct pv_verdict *v, uint32_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
pv_fail(struct pv_verdict *v, uint32_t status, const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	va_start(ap, fmt);
	vsnprintf(v->sentence, sizeof(v->sentence), fmt, ap);
	va_end(ap);
}

/* The provider answered something we cannot use: 502, in our words. */
static void
pv_unusable(struct pv_verdict *v, const char *name, long code, int json,
    const char *missing)
{
	if (json)
		pv_fail(v, 502, "%s answered HTTP %ld without %s; try again "
		    "later.", name, code, missing);
	else
		pv_fail(v, 502, "%s answered HTTP %ld with something that is not "
		    "JSON; try again later.", name, code);
}

/* Serialise e (freed) if the vault takes that much; else NULL. */
static char *
pv_dump_bounded(yajl_val e)
{
	char	*out;
	size_t	 len = 0;

	out = json_dump(e, 0, &len);
	json_free_secret(e);
	if (out != NULL && len > CD_VAULT_ENTRY_MAX) {
		explicit_bzero(out, len);
		free(out);
		return NULL;
	}
	return out;
}

/* Printable ASCII, spaces allowed: a header value we may keep. */
static int
pv_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Copy s, 1 to len - 1 printable characters without spaces. 0 or -1. */
static int
pv_copy_word(const char *s, char *out, size_t len)
{
	if (s == NULL || *s == '\0' || strlen(s) >= len)
		return -1;
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -1;
	snprintf(out, len, "%s", s);
	return 0;
}

int
pv_manus_interpret(const struct pv_answer *a, struct pv_verdict *v)
{
	yajl_val	 body = pv_body(a), ok;
	const char	*code;
	int		 rc = -1;

	code = json_obj_str(json_obj_get(body, "error"), "code");
	ok = json_obj_get(body, "ok");
	if (a->code == 401 || a->code == 403 ||
	    (code != NULL && strcmp(code, "permission_denied") == 0)) {
		pv_fail(v, 422, "Manus rejected the API key: it is invalid or "
		    "has been revoked.");
		rc = 0;
	} else if (a->code == 200 && body != NULL &&
	    (YAJL_IS_TRUE(ok) || (YAJL_IS_INTEGER(ok) && ok->u.number.i != 0)))
		rc = 1;
	else
		pv_unusable(v, "Manus", a->code, body != NULL,
		    "confirming the key");
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

char *
pv_manus_entry(const char *secret, const struct pv_answer *a,
    const char *method)
{
	yajl_val e;

	(void)a;
	(void)method;
	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "api_key", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(0)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("api_key")) == -1) {
		json_free_secret(e);
		return NULL;
	}
	return pv_dump_bounded(e);
}

/* The account identity kept for status: login, id, name, avatar URL. */
static char *
pv_github_identity(yajl_val body)
{
	static const char *const keys[] = { "login", "id", "name",
	    "avatar_url" };
	yajl_val	 id, v;

	if ((id = json_new_obj()) == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_obj_get(body, keys[i]);
		if (YAJL_IS_STRING(v) || YAJL_IS_INTEGER(v) || YAJL_IS_NULL(v))
			json_obj_set(id, keys[i], json_copy(v));
		else
			json_obj_set(id, keys[i], json_new_null());
	}
	return pv_dump_bounded(id);
}

int
pv_github_interpret(const struct pv_answer *a, struct pv_verdict *v)
{
	yajl_val	 body = pv_body(a);
	int		 rc = -1;

	if (a->code == 401 || a->code == 403) {
		pv_fail(v, 422, "GitHub rejected the token: it is invalid, "
		    "expired or revoked.");
		rc = 0;
	} else if (a->code == 200 && json_obj_str(body, "login") != NULL) {
		/* The scopes go into the entry: a byte that is not ASCII
		 * would make it JSON the vault refuses. */
		if (a->scopes != NULL && !pv_printable(a->scopes))
			pv_fail(v, 502, "GitHub answered HTTP 200 with an "
			    "X-OAuth-Scopes header connectord cannot keep; try "
			    "again later.");
		else if ((v->identity = pv_github_identity(body)) == NULL)
			pv_fail(v, 502, "GitHub answered HTTP 200 with an account "
			    "too large to keep; try again later.");
		else
			rc = 1;
	} else
		pv_unusable(v, "GitHub", a->code, body != NULL, "an account");
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

char *
pv_github_entry(const char *secret, const struct pv_answer *a,
    const char *method)
{
	yajl_val e;

	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "access_token", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "refresh_token", json_new_null()) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(0)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("Bearer")) == -1 ||
	    json_obj_set(e, "scope", json_new_str(a->scopes ? a->scopes :
	    "")) == -1 ||
	    json_obj_set(e, "auth_method", json_new_str(method)) == -1) {
		json_free_secret(e);
		return NULL;
	}
	return pv_dump_bounded(e);
}

char *
pv_vercel_identity(yajl_val body)
{
	static const char *const keys[][2] = {
		{ "username", "username" }, { "name", "name" },
		{ "email", "email" }, { "avatar", "avatar" },
		{ "preferred_username", "username" }, { "picture", "avatar" },
	};
	yajl_val	 u = json_obj_get(body, "user"), id, v;

	if (!YAJL_IS_OBJECT(u))
		u = body;
	if ((id = json_new_obj()) == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_obj_get(u, keys[i][0]);
		if ((YAJL_IS_STRING(v) || YAJL_IS_NULL(v)) &&
		    json_obj_get(id, keys[i][1]) == NULL)
			json_obj_set(id, keys[i][1], json_copy(v));
	}
	return pv_dump_bounded(id);
}

char *
pv_vercel_account(const struct pv_answer *a)
{
	yajl_val	 body = a->code == 200 ? pv_body(a) : NULL;
	char		*id = NULL;

	/* An object that names an account; anything else (an empty
	 * object, an error document) is not one. */
	if (YAJL_IS_OBJECT(body) && (YAJL_IS_OBJECT(json_obj_get(body,
	    "user")) || json_obj_str(body, "username") != NULL ||
	    json_obj_str(body, "preferred_username") != NULL))
		id = pv_vercel_identity(body);
	if (body != NULL)
		yajl_tree_free(body);
	return id;
}

int
pv_vercel_interpret(const struct pv_answer *a, struct pv_verdict *v)
{
	yajl_val	 body = pv_body(a), u;
	int		 rc = -1;

	u = json_obj_get(body, "user");
	if (a->code == 401 || a->code == 403) {
		pv_fail(v, 422, "Vercel rejected the token: it is invalid, "
		    "expired or revoked.");
		rc = 0;
	} else if (a->code == 200 && YAJL_IS_OBJECT(body) &&
	    (YAJL_IS_OBJECT(u) || json_obj_get(body, "username") != NULL)) {
		if ((v->identity = pv_vercel_identity(body)) == NULL)
			pv_fail(v, 502, "Vercel answered HTTP 200 with an account "
			    "too large to keep; try again later.");
		else
			rc = 1;
	} else
		pv_unusable(v, "Vercel", a->code, body != NULL, "an account");
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

char *
pv_vercel_entry(const char *secret, const struct pv_answer *a,
    const char *method)
{
	struct pv_verdict	 v;
	yajl_val		 e, id = NULL;
	char			 err[64];

	memset(&v, 0, sizeof(v));
	(void)pv_vercel_interpret(a, &v);
	if (v.identity != NULL)
		id = json_parse(v.identity, strlen(v.identity),
		    CD_VAULT_ENTRY_MAX, err, sizeof(err));
	free(v.identity);
	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "access_token", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("Bearer")) == -1 ||
	    json_obj_set(e, "auth_method", json_new_str(method)) == -1 ||
	    json_obj_set(e, "username", json_new_str(json_obj_str(id,
	    "username"))) == -1 ||
	    json_obj_set(e, "name", json_new_str(json_obj_str(id, "name"))) ==
	    -1)
		e = NULL;
	if (id != NULL)
		yajl_tree_free(id);
	return e == NULL ? NULL : pv_dump_bounded(e);
}

int
pv_vercel_client(yajl_val client, char *id, size_t idlen, char *secret,
    size_t slen)
{
	const char *sec = json_obj_str(client, "client_secret");

	if (pv_copy_word(json_obj_str(client, "client_id"), id, idlen) == -1)
		return -1;
	if (sec == NULL || *sec == '\0') {
		if (slen > 0)
			secret[0] = '\0';
		return 0;
	}
	return pv_copy_word(sec, secret, slen);
}

int
pv_vercel_client_usable(yajl_val client, const char *redirect)
{
	yajl_val uris = json_obj_get(client, "redirect_uris");

	if (json_obj_str(client, "client_id") == NULL || !YAJL_IS_ARRAY(uris))
		return 0;
	for (size_t i = 0; i < uris->u.array.len; i++) {
		const char *u = YAJL_GET_STRING(uris->u.array.values[i]);

		if (u != NULL && strcmp(u, redirect) == 0)
			return 1;
	}
	return 0;
}

int
pv_vercel_registered(const struct pv_answer *a, const char *redirect,
    char *id, size_t idlen, char *secret, size_t slen, char **keep)
{
	yajl_val	 v = NULL, uris;

	*keep = NULL;
	if (a->code == 200 || a->code == 201)
		v = pv_body(a);
	if (pv_vercel_client(v, id, idlen, secret, slen) == -1) {
		if (v != NULL)
			json_free_secret(v);
		return -1;
	}
	/* Keep what Vercel returned, with the redirect we registered. */
	if (!YAJL_IS_ARRAY(json_obj_get(v, "redirect_uris")) &&
	    ((uris = json_new_arr()) == NULL ||
	    json_arr_push(uris, json_new_str(redirect)) == -1 ||
	    json_obj_set(v, "redirect_uris", uris) == -1)) {
		json_free_secret(v);
		return 0;
	}
	*keep = pv_dump_bounded(v);
	return 0;
}

yajl_val
pv_vercel_token(const struct pv_answer *a, struct pv_verdict *v)
{
	yajl_val	 tok = pv_body(a);
	const char	*rt = json_obj_str(tok, "refresh_token");

	if (a->code == 200 && json_obj_str(tok, "access_token") != NULL) {
		if (pv_secret_ok(json_obj_str(tok, "access_token")) &&
		    (rt == NULL || pv_secret_ok(rt)))
			return tok;
		pv_fail(v, 502, "Vercel's token endpoint answered with a token "
		    "connectord cannot use; try again later.");
	} else if (a->code == 400 || a->code == 401)
		pv_fail(v, 422, "Vercel did not accept the authorization code "
		    "(expired, used already, or the PKCE check failed); start "
		    "again.");
	else if (a->code == 200)
		pv_fail(v, 502, "Vercel's token endpoint answered HTTP 200 %s; "
		    "try again later.", tok == NULL ? "with something that is "
		    "not JSON" : "without an access token");
	else
		pv_fail(v, 502, "Vercel's token endpoint answered HTTP %ld; try "
		    "again later.", a->code);
	if (tok != NULL)
		json_free_secret(tok);
	return NULL;
}

/* When a token answer's access token expires, counted from now. The
 * lifetime is cut to [0, CD_OAUTH_EXPIRES_MAX]: yajl takes any 64-bit
 * integer, and now + INT64_MAX overflows. */
static long long
pv_expires_at(yajl_val tok, time_t now)
{
	yajl_val	 exp = json_obj_get(tok, "expires_in");
	long long	 in = YAJL_IS_INTEGER(exp) ? exp->u.number.i : 3600;

	if (in < 0)
		in = 0;
	if (in > CD_OAUTH_EXPIRES_MAX)
		in = CD_OAUTH_EXPIRES_MAX;
	return (long long)now + in;
}

char *
pv_vercel_oauth_entry(yajl_val tok, const char *ident, time_t now)
{
	yajl_val	 e, id;
	const char	*rt = json_obj_str(tok, "refresh_token");
	char		 err[64];

	id = ident ? json_parse(ident, strlen(ident), CD_VAULT_ENTRY_MAX, err,
	    sizeof(err)) : NULL;
	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "access_token",
	    json_new_str(json_obj_str(tok, "access_token"))) == -1 ||
	    json_obj_set(e, "refresh_token", rt ? json_new_str(rt) :
	    json_new_null()) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(pv_expires_at(tok,
	    now))) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("Bearer")) == -1 ||
	    json_obj_set(e, "auth_method", json_new_str("oauth")) == -1 ||
	    json_obj_set(e, "username", json_new_str(json_obj_str(id,
	    "username"))) == -1 ||
	    json_obj_set(e, "name", json_new_str(json_obj_str(id,
	    "name"))) == -1 ||
	    json_obj_set(e, "email", json_new_str(json_obj_str(id,
	    "email"))) == -1)
		e = NULL;
	if (id != NULL)
		yajl_tree_free(id);
	return e == NULL ? NULL : pv_dump_bounded(e);
}

char *
pv_vercel_refreshed(yajl_val old, yajl_val tok, time_t now)
{
	yajl_val	 e;
	const char	*rt = json_obj_str(tok, "refresh_token");

	if ((e = json_copy(old)) == NULL ||
	    json_obj_set(e, "access_token",
	    json_new_str(json_obj_str(tok, "access_token"))) == -1 ||
	    (rt != NULL && json_obj_set(e, "refresh_token",
	    json_new_str(rt)) == -1) ||
	    json_obj_set(e, "expires_at", json_new_int(pv_expires_at(tok,
	    now))) == -1)
		return NULL;
	return pv_dump_bounded(e);
}

/* The drive's id and type become rclone.conf values, which rclone would
 * unquote if they started with ` or """: no quote characters at all. */
int
pv_onedrive_drive(const struct pv_answer *a, char *id, size_t idlen,
    char *type, size_t tlen, struct pv_verdict *v)
{
	yajl_val	 body = a->code == 200 ? pv_body(a) : NULL;
	const char	*i = json_obj_str(body, "id");
	const char	*t = json_obj_str(body, "driveType");
	int		 rc = -1;

	if (a->code == 0)
		pv_fail(v, 502, "Microsoft Graph could not be reached to look up "
		    "your OneDrive; start again later.");
	else if (a->code != 200)
		pv_fail(v, 502, "Could not look up your OneDrive with Microsoft "
		    "Graph (HTTP %ld); start again.", a->code);
	else if (i == NULL || *i == '\0')
		pv_fail(v, 502, "Microsoft Graph answered the lookup of your "
		    "OneDrive with something that is not a drive; start again "
		    "later.");
	else if (pv_copy_word(i, id, idlen) == -1 ||
	    pv_copy_word(t && *t ? t : "personal", type, tlen) == -1 ||
	    strpbrk(id, "\"'`") != NULL || strpbrk(type, "\"'`") != NULL)
		pv_fail(v, 502, "Could not look up your OneDrive: Microsoft "
		    "Graph answered with a drive connectord cannot keep; start "
		    "again.");
	else
		rc = 0;
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}
