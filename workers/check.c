/*
 * The token-check worker: validate a pasted token with the provider and
 * hand it to the vault, or revalidate the stored one and record the
 * outcome. Provider answers are untrusted input: bounded by curl.c,
 * parsed with limits, and never echoed to the client (a sentence of our
 * own says what happened).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "worker.h"

/* A provider's validation: request, interpretation, stored entry. */
struct provider {
	const char	*connector;
	const char	*name;		/* for sentences */
	/* Build the URL and headers for validating secret. */
	void		(*request)(const char *secret, char *url, size_t ulen,
			    char hdrs[][CD_SECRET_MAX + 64], size_t *nhdrs);
	/* 1 valid (r->identity may be set), 0 rejected (r filled), -1
	 * unusable answer (r filled). */
	int		(*interpret)(const struct curl_answer *a,
			    struct worker_result *r);
	/* The mcp-tokens.json entry for a valid secret (malloc'd). */
	char		*(*entry)(const char *secret,
			    const struct curl_answer *a, const char *method);
	/* The member of the stored entry that holds the secret. */
	const char	*secret_key;
	/* auth_method of a pasted token ("pat"), NULL if none. */
	const char	*paste_method;
};

/* The provider answered something we cannot use: 502, in our words. */
static void
check_unusable(struct worker_result *r, const char *name, long code,
    int json, const char *missing)
{
	r->status = 502;
	if (json)
		snprintf(r->sentence, sizeof(r->sentence), "%s answered HTTP %ld "
		    "without %s; try again later.", name, code, missing);
	else
		snprintf(r->sentence, sizeof(r->sentence), "%s answered HTTP %ld "
		    "with something that is not JSON; try again later.", name,
		    code);
}

static void
manus_request(const char *secret, char *url, size_t ulen,
    char hdrs[][CD_SECRET_MAX + 64], size_t *nhdrs)
{
	snprintf(url, ulen, "%s/v2/task.list?limit=1",
	    worker.ci.conf.manus_api_url);
	snprintf(hdrs[0], CD_SECRET_MAX + 64, "x-manus-api-key: %s", secret);
	snprintf(hdrs[1], CD_SECRET_MAX + 64, "Content-Type: application/json");
	snprintf(hdrs[2], CD_SECRET_MAX + 64, "Accept: application/json");
	*nhdrs = 3;
}

static int
manus_interpret(const struct curl_answer *a, struct worker_result *r)
{
	yajl_val	 body = NULL, ok;
	const char	*code;
	char		 err[128];
	int		 rc = -1;

	if (a->body != NULL && a->len > 0)
		body = json_parse(a->body, a->len, CD_CURL_BODY_MAX, err,
		    sizeof(err));
	code = json_obj_str(json_obj_get(body, "error"), "code");
	ok = json_obj_get(body, "ok");
	if (a->code == 401 || a->code == 403 ||
	    (code != NULL && strcmp(code, "permission_denied") == 0)) {
		r->status = 422;
		snprintf(r->sentence, sizeof(r->sentence), "Manus rejected the "
		    "API key: it is invalid or has been revoked.");
		rc = 0;
	} else if (a->code == 200 && body != NULL &&
	    (YAJL_IS_TRUE(ok) || (YAJL_IS_INTEGER(ok) && ok->u.number.i != 0)))
		rc = 1;
	else {
		check_unusable(r, "Manus", a->code, body != NULL,
		    "confirming the key");
	}
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

static char *
manus_entry(const char *secret, const struct curl_answer *a,
    const char *method)
{
	yajl_val	 e;
	char		*out;

	(void)a;
	(void)method;
	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "api_key", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(0)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("api_key")) == -1)
		fatalx("out of memory");
	out = json_dump(e, 0, NULL);
	json_free_secret(e);
	return out;
}

static void
github_request(const char *secret, char *url, size_t ulen,
    char hdrs[][CD_SECRET_MAX + 64], size_t *nhdrs)
{
	snprintf(url, ulen, "%s/user", worker.ci.conf.github_api_url);
	snprintf(hdrs[0], CD_SECRET_MAX + 64, "Authorization: Bearer %s",
	    secret);
	snprintf(hdrs[1], CD_SECRET_MAX + 64,
	    "Accept: application/vnd.github+json");
	snprintf(hdrs[2], CD_SECRET_MAX + 64,
	    "X-GitHub-Api-Version: 2022-11-28");
	*nhdrs = 3;
}

/* The account identity kept for status: login, id, name, avatar URL. */
static char *
github_identity(yajl_val body)
{
	static const char *const keys[] = { "login", "id", "name",
	    "avatar_url" };
	yajl_val	 id, v;
	char		*out;

	if ((id = json_new_obj()) == NULL)
		fatalx("out of memory");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_obj_get(body, keys[i]);
		if (YAJL_IS_STRING(v) || YAJL_IS_INTEGER(v) || YAJL_IS_NULL(v))
			json_obj_set(id, keys[i], json_copy(v));
		else
			json_obj_set(id, keys[i], json_new_null());
	}
	out = json_dump(id, 0, NULL);
	yajl_tree_free(id);
	return out;
}

static int
github_interpret(const struct curl_answer *a, struct worker_result *r)
{
	yajl_val	 body = NULL;
	char		 err[128];
	int		 rc = -1;

	if (a->body != NULL && a->len > 0)
		body = json_parse(a->body, a->len, CD_CURL_BODY_MAX, err,
		    sizeof(err));
	if (a->code == 401 || a->code == 403) {
		r->status = 422;
		snprintf(r->sentence, sizeof(r->sentence), "GitHub rejected "
		    "the token: it is invalid, expired or revoked.");
		rc = 0;
	} else if (a->code == 200 && json_obj_str(body, "login") != NULL) {
		r->identity = github_identity(body);
		rc = 1;
	} else {
		check_unusable(r, "GitHub", a->code, body != NULL, "an account");
	}
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

static char *
github_entry(const char *secret, const struct curl_answer *a,
    const char *method)
{
	yajl_val	 e;
	char		*out;

	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "access_token", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "refresh_token", json_new_null()) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(0)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("Bearer")) == -1 ||
	    json_obj_set(e, "scope", json_new_str(a->scopes ? a->scopes :
	    "")) == -1 ||
	    json_obj_set(e, "auth_method", json_new_str(method)) == -1)
		fatalx("out of memory");
	out = json_dump(e, 0, NULL);
	json_free_secret(e);
	return out;
}

static void
vercel_request(const char *secret, char *url, size_t ulen,
    char hdrs[][CD_SECRET_MAX + 64], size_t *nhdrs)
{
	snprintf(url, ulen, "%s/v2/user", worker.ci.conf.vercel_api_url);
	snprintf(hdrs[0], CD_SECRET_MAX + 64, "Authorization: Bearer %s",
	    secret);
	snprintf(hdrs[1], CD_SECRET_MAX + 64, "Accept: application/json");
	*nhdrs = 2;
}

/* The Vercel account: /v2/user answers {"user": {...}} (or the user). */
char *
vercel_identity(yajl_val body)
{
	static const char *const keys[][2] = {
		{ "username", "username" }, { "name", "name" },
		{ "email", "email" }, { "avatar", "avatar" },
		{ "preferred_username", "username" }, { "picture", "avatar" },
	};
	yajl_val	 u = json_obj_get(body, "user"), id, v;
	char		*out;

	if (!YAJL_IS_OBJECT(u))
		u = body;
	if ((id = json_new_obj()) == NULL)
		fatalx("out of memory");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_obj_get(u, keys[i][0]);
		if ((YAJL_IS_STRING(v) || YAJL_IS_NULL(v)) &&
		    json_obj_get(id, keys[i][1]) == NULL)
			json_obj_set(id, keys[i][1], json_copy(v));
	}
	out = json_dump(id, 0, NULL);
	yajl_tree_free(id);
	return out;
}

static int
vercel_interpret(const struct curl_answer *a, struct worker_result *r)
{
	yajl_val	 body = NULL, u;
	char		 err[128];
	int		 rc = -1;

	if (a->body != NULL && a->len > 0)
		body = json_parse(a->body, a->len, CD_CURL_BODY_MAX, err,
		    sizeof(err));
	u = json_obj_get(body, "user");
	if (a->code == 401 || a->code == 403) {
		r->status = 422;
		snprintf(r->sentence, sizeof(r->sentence), "Vercel rejected "
		    "the token: it is invalid, expired or revoked.");
		rc = 0;
	} else if (a->code == 200 && YAJL_IS_OBJECT(body) &&
	    (YAJL_IS_OBJECT(u) || json_obj_get(body, "username") != NULL)) {
		r->identity = vercel_identity(body);
		rc = 1;
	} else {
		check_unusable(r, "Vercel", a->code, body != NULL, "an account");
	}
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

static char *
vercel_entry(const char *secret, const struct curl_answer *a,
    const char *method)
{
	yajl_val	 e, id = NULL;
	char		*out, err[64];
	struct worker_result r;

	memset(&r, 0, sizeof(r));
	(void)vercel_interpret(a, &r);
	if (r.identity != NULL)
		id = json_parse(r.identity, strlen(r.identity), CD_MSG_STR_MAX,
		    err, sizeof(err));
	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "access_token", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("Bearer")) == -1 ||
	    json_obj_set(e, "auth_method", json_new_str(method)) == -1 ||
	    json_obj_set(e, "username", json_new_str(json_obj_str(id,
	    "username"))) == -1 ||
	    json_obj_set(e, "name", json_new_str(json_obj_str(id, "name"))) ==
	    -1)
		fatalx("out of memory");
	out = json_dump(e, 0, NULL);
	json_free_secret(e);
	if (id != NULL)
		yajl_tree_free(id);
	free(r.identity);
	return out;
}

static const struct provider providers[] = {
	{ "manus", "Manus", manus_request, manus_interpret, manus_entry,
	    "api_key", NULL },
	{ "github", "GitHub", github_request, github_interpret, github_entry,
	    "access_token", "pat" },
	{ "vercel", "Vercel", vercel_request, vercel_interpret, vercel_entry,
	    "access_token", "api_token" },
};

static const struct provider *
provider_find(const char *connector)
{
	for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i].connector, connector) == 0)
			return &providers[i];
	return NULL;
}

/* Ask the provider. 1 valid, 0 rejected, -1 unusable (r filled). On 1
 * with entry != NULL, *entry is the credential entry to store. */
static int
check_validate(const struct provider *pv, const char *secret,
    const char *method, struct worker_result *r, char **entry)
{
	char			 url[2048], hdrs[4][CD_SECRET_MAX + 64];
	const char		*hp[5];
	struct curl_answer	 a;
	size_t			 n = 0;
	int			 rc;

	pv->request(secret, url, sizeof(url), hdrs, &n);
	for (size_t i = 0; i < n; i++)
		hp[i] = hdrs[i];
	hp[n] = NULL;
	if (curl_get(url, hp, &a) == -1) {
		r->status = 502;
		if (a.timed_out)
			snprintf(r->sentence, sizeof(r->sentence), "%s did not "
			    "answer within %d seconds; try again later.",
			    pv->name, CD_CURL_TIMEOUT_SEC);
		else
			snprintf(r->sentence, sizeof(r->sentence), "%s could "
			    "not be reached (%s); try again later.", pv->name,
			    a.error);
		rc = -1;
	} else
		rc = pv->interpret(&a, r);
	if (rc == 1 && entry != NULL &&
	    (*entry = pv->entry(secret, &a, method)) == NULL)
		fatalx("out of memory");
	explicit_bzero(hdrs, sizeof(hdrs));
	curl_answer_free(&a);
	return rc;
}

int
check_store(const char *connector, const char *secret, const char *method,
    struct worker_result *r)
{
	const struct provider	*pv = provider_find(connector);
	char			*entry = NULL;

	if (pv == NULL)
		fatalx("no token check for connector %s", connector);
	if (check_validate(pv, secret, method, r, &entry) != 1)
		return -1;
	r->status = worker_vault_put(pv->connector, entry, r->identity,
	    r->sentence, sizeof(r->sentence));
	msg_free_secret(entry);
	return r->status == 200 ? 0 : -1;
}

static void
check_revalidate(const struct provider *pv, struct worker_result *r)
{
	yajl_val	 e;
	char		*entry = NULL, err[128];
	const char	*secret;
	int		 rc;

	r->status = worker_vault_get(pv->connector, &entry, r->sentence,
	    sizeof(r->sentence));
	if (r->status != 200)
		goto out;
	e = json_parse(entry, strlen(entry), CD_STORE_FILE_MAX, err,
	    sizeof(err));
	if ((secret = json_obj_str(e, pv->secret_key)) == NULL)
		fatalx("protocol violation by vault: entry without secret");
	rc = check_validate(pv, secret, NULL, r, NULL);
	json_free_secret(e);
	if (rc == -1)
		goto out;
	/* Record the outcome; a failed record is a failed reconnect. */
	if (worker_vault_mark(pv->connector, rc, rc ? "" : r->sentence,
	    r->identity) != 200 && rc == 1) {
		r->status = 503;
		snprintf(r->sentence, sizeof(r->sentence), "The credential "
		    "vault could not record the check; try again.");
		goto out;
	}
	if (rc == 1)
		r->status = 200;
out:
	msg_free_secret(entry);
}

void
check_run(uint32_t op, const char *secret)
{
	const struct provider	*pv = provider_find(worker.ci.connector);
	struct worker_result	 r;

	memset(&r, 0, sizeof(r));
	if (pv == NULL)
		fatalx("no token check for connector %s", worker.ci.connector);
	if (op == JOB_OP_SAVE && strcmp(worker.ci.kind, "token") == 0)
		check_store(pv->connector, secret, pv->paste_method, &r);
	else if (op == JOB_OP_REVALIDATE &&
	    strcmp(worker.ci.kind, "revalidate") == 0)
		check_revalidate(pv, &r);
	else
		fatalx("protocol violation by http: op %u for a %s job", op,
		    worker.ci.kind);
	if (r.status == 200)
		r.sentence[0] = '\0';
	worker_answer(&r);
	free(r.identity);
}
