/*
 * libFuzzer target for the providers' answers (lib/provider.c). The
 * first byte picks what is read, the second the HTTP status, the third
 * whether an X-OAuth-Scopes header came (its value is then the body's
 * first line) and whether the body is missing; the rest is the body.
 *
 * Invariants: every verdict is valid (1), rejected (422) or unusable
 * (502, or 422 for a refused grant) with a sentence of our own
 * (printable ASCII, ending in '.', naming the provider, quoting nothing
 * of the body); 401 and 403 always reject; only a 200 is valid. What a
 * worker would hand on is what the vault and http take without ending
 * the worker as hostile: an identity is a JSON object within
 * CD_VAULT_ENTRY_MAX holding only the account's fields; an entry is a
 * JSON object within CD_VAULT_ENTRY_MAX whose secret member is a
 * non-empty string, and every secret taken from a provider (access and
 * refresh tokens, client id and secret) is 1 to CD_SECRET_MAX printable
 * ASCII characters without spaces, copied whole; a token's expiry lies
 * within CD_OAUTH_EXPIRES_MAX of now; a refresh keeps every other
 * member of the old entry; a OneDrive drive makes an rclone.conf
 * section the vault accepts; a refused token answer or drive says which
 * failure it was (not JSON, no access token, an HTTP status, no answer,
 * not a drive); an OAuth login's account comes only from a 200 object
 * that names one. abort() on any violation, and the fuzzer
 * build stops on any undefined behaviour (an overflowing expiry).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ini.h"
#include "json.h"
#include "provider.h"
#include "rcout.h"

/* The one answer a worker reads is at most CD_CURL_BODY_MAX. */
#define FUZZ_BODY_MAX CD_CURL_BODY_MAX
#define FUZZ_SECRET "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
#define FUZZ_REDIRECT "https://cd.example.com/callback"
#define FUZZ_NOW ((time_t)1714650000)

enum fuzz_op {
	FUZZ_MANUS,
	FUZZ_GITHUB,
	FUZZ_VERCEL,
	FUZZ_TOKEN,
	FUZZ_REGISTER,
	FUZZ_CLIENT,
	FUZZ_DRIVE,
	FUZZ_USERINFO,
	FUZZ_OPS
};

static const long codes[] = { 200, 201, 400, 401, 403, 404, 429, 500, 502,
    0, 302, 204 };

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* A JSON text we would hand on: parsed as the vault parses it. */
static yajl_val
vault_parse(const char *json)
{
	char		 err[128];
	yajl_val	 v;

	check(json != NULL);
	v = json_parse(json, strlen(json), CD_VAULT_ENTRY_MAX, err,
	    sizeof(err));
	check(YAJL_IS_OBJECT(v));
	return v;
}

static void
check_sentence(const struct pv_verdict *v, const struct pv_answer *a)
{
	size_t n = strlen(v->sentence);

	check(n > 0 && n < sizeof(v->sentence) && v->sentence[n - 1] == '.');
	for (size_t i = 0; i < n; i++)
		check(v->sentence[i] >= 0x20 && v->sentence[i] < 0x7f &&
		    v->sentence[i] != '"' && v->sentence[i] != '{');
	check(strncmp(v->sentence, "Manus ", 6) == 0 ||
	    strncmp(v->sentence, "GitHub ", 7) == 0 ||
	    strncmp(v->sentence, "Vercel", 6) == 0 ||
	    strncmp(v->sentence, "Microsoft Graph ", 16) == 0 ||
	    strncmp(v->sentence, "Could not look up your OneDrive", 31) == 0);
	(void)a;
}

/* An identity holds only keys, each a string, an integer or null. */
static void
check_identity(const char *ident, const char *const *keys, size_t nkeys)
{
	yajl_val v = vault_parse(ident);

	for (size_t i = 0; i < v->u.object.len; i++) {
		size_t k;

		for (k = 0; k < nkeys; k++)
			if (strcmp(v->u.object.keys[i], keys[k]) == 0)
				break;
		check(k < nkeys);
		check(YAJL_IS_STRING(v->u.object.values[i]) ||
		    YAJL_IS_INTEGER(v->u.object.values[i]) ||
		    YAJL_IS_NULL(v->u.object.values[i]));
	}
	yajl_tree_free(v);
}

static const char *const gh_keys[] = { "login", "id", "name", "avatar_url" };
static const char *const vc_keys[] = { "username", "name", "email",
    "avatar" };

/* A token check: the verdict, the identity and the entry. */
static void
check_interpret(enum fuzz_op op, const struct pv_answer *a)
{
	struct pv_verdict	 v;
	yajl_val		 e;
	char			*entry;
	const char		*key;
	int			 rc;

	memset(&v, 0, sizeof(v));
	rc = op == FUZZ_MANUS ? pv_manus_interpret(a, &v) : op == FUZZ_GITHUB ?
	    pv_github_interpret(a, &v) : pv_vercel_interpret(a, &v);
	check(rc >= -1 && rc <= 1);
	if (a->code == 401 || a->code == 403)
		check(rc == 0);
	if (rc != 1) {
		check(v.status == (rc == 0 ? 422u : 502u) && v.identity == NULL);
		check_sentence(&v, a);
		return;
	}
	check(a->code == 200 && v.status == 0);
	if (op == FUZZ_MANUS)
		check(v.identity == NULL);
	else if (v.identity != NULL)
		check_identity(v.identity, op == FUZZ_GITHUB ? gh_keys : vc_keys,
		    4);
	free(v.identity);
	entry = op == FUZZ_MANUS ? pv_manus_entry(FUZZ_SECRET, a, NULL) :
	    op == FUZZ_GITHUB ? pv_github_entry(FUZZ_SECRET, a, "pat") :
	    pv_vercel_entry(FUZZ_SECRET, a, "api_token");
	if (entry == NULL)
		return;		/* too large to store: a 502 */
	key = op == FUZZ_MANUS ? "api_key" : "access_token";
	e = vault_parse(entry);
	check(strcmp(json_obj_str(e, key), FUZZ_SECRET) == 0);
	if (op == FUZZ_GITHUB)
		check(strcmp(json_obj_str(e, "scope"), a->scopes ? a->scopes :
		    "") == 0);
	json_free_secret(e);
	free(entry);
}

/* A provider's secret member of v, if any, must be usable. */
static void
secret_member(yajl_val v, const char *key, int required)
{
	yajl_val	 s = json_obj_get(v, key);
	const char	*t = YAJL_GET_STRING(s);
	size_t		 n;

	if (!required && !YAJL_IS_STRING(s))
		return;
	check(t != NULL);
	n = strlen(t);
	check(n > 0 && n <= CD_SECRET_MAX);
	for (size_t i = 0; i < n; i++)
		check(t[i] > 0x20 && t[i] < 0x7f);
}

static void
check_expiry(yajl_val e)
{
	yajl_val x = json_obj_get(e, "expires_at");

	check(YAJL_IS_INTEGER(x) && x->u.number.i >= FUZZ_NOW &&
	    x->u.number.i <= FUZZ_NOW + CD_OAUTH_EXPIRES_MAX);
}

/* A refresh keeps every member but the three it sets. */
static void
check_refreshed(yajl_val tok)
{
	static const char old_json[] = "{\"access_token\":\"old_at\","
	    "\"refresh_token\":\"old_rt\",\"expires_at\":1714000000,"
	    "\"token_type\":\"Bearer\",\"auth_method\":\"oauth\","
	    "\"username\":\"fz\",\"name\":\"F Z\",\"email\":\"fz@example.com\"}";
	char		 err[64], *out;
	yajl_val	 old, e;

	old = json_parse(old_json, strlen(old_json), sizeof(old_json), err,
	    sizeof(err));
	check(old != NULL);
	if ((out = pv_vercel_refreshed(old, tok, FUZZ_NOW)) == NULL) {
		json_free_secret(old);
		return;
	}
	e = vault_parse(out);
	check(strcmp(json_obj_str(e, "access_token"),
	    json_obj_str(tok, "access_token")) == 0);
	check(strcmp(json_obj_str(e, "refresh_token"),
	    json_obj_str(tok, "refresh_token") ? json_obj_str(tok,
	    "refresh_token") : "old_rt") == 0);
	secret_member(e, "refresh_token", 1);
	check_expiry(e);
	for (size_t i = 0; i < old->u.object.len; i++) {
		const char *k = old->u.object.keys[i];

		if (strcmp(k, "access_token") == 0 ||
		    strcmp(k, "refresh_token") == 0 ||
		    strcmp(k, "expires_at") == 0)
			continue;
		check(strcmp(json_obj_str(e, k), json_obj_str(old, k)) == 0);
	}
	json_free_secret(e);
	json_free_secret(old);
	free(out);
}

static void
check_token(const struct pv_answer *a, yajl_val body)
{
	struct pv_verdict	 v;
	yajl_val		 tok, e;
	char			*ident, *out;

	memset(&v, 0, sizeof(v));
	if (a->code == 0)
		return;		/* the worker says "could not be reached" */
	if ((tok = pv_vercel_token(a, &v)) == NULL) {
		check(v.status == 422 || v.status == 502);
		check(v.status != 422 || a->code == 400 || a->code == 401);
		check_sentence(&v, a);
		/* A 200 says what was wrong with it. */
		if (a->code == 200)
			check(strstr(v.sentence, body == NULL ? "not JSON" :
			    json_obj_str(body, "access_token") == NULL ?
			    "without an access token" : "cannot use") != NULL);
		else if (v.status == 502)
			check(strstr(v.sentence, "HTTP") != NULL);
		return;
	}
	check(a->code == 200 && v.status == 0);
	secret_member(tok, "access_token", 1);
	secret_member(tok, "refresh_token", 0);
	/* The identity the worker looks up: this same body will do. */
	ident = YAJL_IS_OBJECT(body) ? pv_vercel_identity(body) : NULL;
	if (ident != NULL)
		check_identity(ident, vc_keys, 4);
	if ((out = pv_vercel_oauth_entry(tok, ident, FUZZ_NOW)) != NULL) {
		e = vault_parse(out);
		secret_member(e, "access_token", 1);
		check(strcmp(json_obj_str(e, "access_token"),
		    json_obj_str(tok, "access_token")) == 0);
		check_expiry(e);
		json_free_secret(e);
		free(out);
	}
	check_refreshed(tok);
	free(ident);
	json_free_secret(tok);
}

/* A client copied from c must be exactly c's, and usable as a secret. */
static void
check_client_copy(yajl_val c, const char *id, const char *sec)
{
	const char *cs = json_obj_str(c, "client_secret");

	check(strcmp(id, json_obj_str(c, "client_id")) == 0);
	check(strcmp(sec, cs ? cs : "") == 0);
	check(pv_secret_ok(id) && (*sec == '\0' || pv_secret_ok(sec)));
}

static void
check_register(const struct pv_answer *a, yajl_val body)
{
	char		 id[CD_OAUTH_CLIENT_MAX], sec[CD_OAUTH_CLIENT_MAX];
	char		*keep = NULL;
	yajl_val	 k;

	if (pv_vercel_registered(a, FUZZ_REDIRECT, id, sizeof(id), sec,
	    sizeof(sec), &keep) == -1) {
		check(keep == NULL);
		return;
	}
	check(a->code == 200 || a->code == 201);
	check_client_copy(body, id, sec);
	if (keep == NULL)
		return;		/* too large for the vault: not kept */
	k = vault_parse(keep);
	check(strcmp(json_obj_str(k, "client_id"), id) == 0);
	if (!YAJL_IS_ARRAY(json_obj_get(body, "redirect_uris")))
		check(pv_vercel_client_usable(k, FUZZ_REDIRECT));
	json_free_secret(k);
	free(keep);
}

static void
check_client(yajl_val body)
{
	char		 id[CD_OAUTH_CLIENT_MAX], sec[CD_OAUTH_CLIENT_MAX];
	yajl_val	 uris = json_obj_get(body, "redirect_uris");
	int		 found = 0;

	if (pv_vercel_client_usable(body, FUZZ_REDIRECT)) {
		check(YAJL_IS_ARRAY(uris));
		for (size_t i = 0; i < uris->u.array.len; i++) {
			const char *u = YAJL_GET_STRING(uris->u.array.values[i]);

			found |= u != NULL && strcmp(u, FUZZ_REDIRECT) == 0;
		}
		check(found);
	}
	if (pv_vercel_client(body, id, sizeof(id), sec, sizeof(sec)) == 0)
		check_client_copy(body, id, sec);
}

static void
check_drive(const struct pv_answer *a, yajl_val body)
{
	struct pv_verdict	 v;
	char			 id[CD_DRIVE_ID_MAX], type[CD_DRIVE_ID_MAX];
	char			*json, err[256], *section;
	const char		*keys[5] = { "type", "token", "drive_id",
				    "drive_type", NULL };
	const char		*vals[5];
	size_t			 len;
	yajl_val		 e;

	memset(&v, 0, sizeof(v));
	if (pv_onedrive_drive(a, id, sizeof(id), type, sizeof(type), &v) ==
	    -1) {
		const char *i = json_obj_str(body, "id");

		check(v.status == 502);
		check_sentence(&v, a);
		/* No answer, an HTTP failure, a 200 that is no drive, and
		 * a drive we cannot keep are told apart. */
		snprintf(err, sizeof(err), "(HTTP %ld)", a->code);
		check(strstr(v.sentence, a->code == 0 ? "could not be reached" :
		    a->code != 200 ? err : i == NULL || *i == '\0' ?
		    "not a drive" : "cannot keep") != NULL);
		return;
	}
	check(a->code == 200);
	json = rcout_entry("onedrive", "{\"access_token\":\"x\"}", id, type,
	    &len);
	check(json != NULL);
	e = vault_parse(json);
	for (size_t i = 0; i < 4; i++)
		vals[i] = json_obj_str(e, keys[i]);
	vals[4] = NULL;
	section = ini_section("fz", keys, vals, err, sizeof(err));
	check(section != NULL);
	free(section);
	json_free_secret(e);
	free(json);
}

/*
 * An OAuth login's account lookup: an identity only from a 200 whose
 * body is an object naming an account ("user" object, "username" or
 * "preferred_username" string), and then exactly the identity of that
 * body; nothing for anything else.
 */
static void
check_account(const struct pv_answer *a, yajl_val body)
{
	char	*ident = NULL, *acct = pv_vercel_account(a);
	int	 names;

	names = a->code == 200 && YAJL_IS_OBJECT(body) &&
	    (YAJL_IS_OBJECT(json_obj_get(body, "user")) ||
	    json_obj_str(body, "username") != NULL ||
	    json_obj_str(body, "preferred_username") != NULL);
	if (YAJL_IS_OBJECT(body)) {
		ident = pv_vercel_identity(body);
		if (ident != NULL)
			check_identity(ident, vc_keys, 4);
	}
	if (!names)
		check(acct == NULL);
	else
		check((acct == NULL) == (ident == NULL) && (acct == NULL ||
		    strcmp(acct, ident) == 0));
	free(ident);
	free(acct);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pv_answer	 a;
	enum fuzz_op		 op;
	char			*body, *scopes = NULL, *nl, err[64];
	yajl_val		 parsed;

	if (size < 3 || size - 3 > FUZZ_BODY_MAX)
		return 0;
	op = (enum fuzz_op)(data[0] % FUZZ_OPS);
	a.code = data[1] < sizeof(codes) / sizeof(codes[0]) ? codes[data[1]] :
	    100 + data[1];
	check((body = malloc(size - 3 + 1)) != NULL);
	memcpy(body, data + 3, size - 3);
	body[size - 3] = '\0';
	a.body = body;
	a.len = size - 3;
	if ((data[2] & 1) && (nl = memchr(body, '\n', a.len)) != NULL) {
		*nl = '\0';
		scopes = body;
		a.body = nl + 1;
		a.len -= (size_t)(nl + 1 - body);
	}
	a.scopes = scopes;
	if (data[2] & 2)
		a.body = NULL;
	parsed = a.body != NULL && a.len > 0 ? json_parse(a.body, a.len,
	    FUZZ_BODY_MAX, err, sizeof(err)) : NULL;
	switch (op) {
	case FUZZ_MANUS:
	case FUZZ_GITHUB:
	case FUZZ_VERCEL:
		check_interpret(op, &a);
		break;
	case FUZZ_TOKEN:
		check_token(&a, parsed);
		break;
	case FUZZ_REGISTER:
		check_register(&a, parsed);
		break;
	case FUZZ_CLIENT:
		check_client(parsed);
		break;
	case FUZZ_DRIVE:
		check_drive(&a, parsed);
		break;
	case FUZZ_USERINFO:
		check_account(&a, parsed);
		break;
	case FUZZ_OPS:
		abort();
	}
	if (parsed != NULL)
		json_free_secret(parsed);
	free(body);
	return 0;
}
