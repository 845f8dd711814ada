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
	/* 1 valid, 0 rejected (r filled), -1 unusable answer (r filled). */
	int		(*interpret)(const struct curl_answer *a,
			    struct worker_result *r);
	/* The mcp-tokens.json entry for a valid secret (malloc'd). */
	char		*(*entry)(const char *secret);
	/* The member of the stored entry that holds the secret. */
	const char	*secret_key;
};

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
		r->status = 502;
		snprintf(r->sentence, sizeof(r->sentence), body == NULL ?
		    "Manus answered HTTP %ld with something that is not JSON; "
		    "try again later." : "Manus answered HTTP %ld without "
		    "confirming the key; try again later.", a->code);
	}
	if (body != NULL)
		yajl_tree_free(body);
	return rc;
}

static char *
manus_entry(const char *secret)
{
	yajl_val	 e;
	char		*out;

	if ((e = json_new_obj()) == NULL ||
	    json_obj_set(e, "api_key", json_new_str(secret)) == -1 ||
	    json_obj_set(e, "expires_at", json_new_int(0)) == -1 ||
	    json_obj_set(e, "token_type", json_new_str("api_key")) == -1)
		fatalx("out of memory");
	out = json_dump(e, 0, NULL);
	json_free_secret(e);
	return out;
}

static const struct provider providers[] = {
	{ "manus", "Manus", manus_request, manus_interpret, manus_entry,
	    "api_key" },
};

static const struct provider *
provider_find(const char *connector)
{
	for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i].connector, connector) == 0)
			return &providers[i];
	return NULL;
}

/* Ask the provider. 1 valid, 0 rejected, -1 unusable (r filled). */
static int
check_validate(const struct provider *pv, const char *secret,
    struct worker_result *r)
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
	explicit_bzero(hdrs, sizeof(hdrs));
	curl_answer_free(&a);
	return rc;
}

static void
check_save(const struct provider *pv, const char *secret,
    struct worker_result *r)
{
	char	*entry;

	if (check_validate(pv, secret, r) != 1)
		return;
	if ((entry = pv->entry(secret)) == NULL)
		fatalx("out of memory");
	r->status = worker_vault_put(pv->connector, entry, r->sentence,
	    sizeof(r->sentence));
	msg_free_secret(entry);
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
	rc = check_validate(pv, secret, r);
	json_free_secret(e);
	if (rc == -1)
		goto out;
	/* Record the outcome; a failed record is a failed reconnect. */
	if (worker_vault_mark(pv->connector, rc, rc ? "" : r->sentence,
	    NULL) != 200 && rc == 1) {
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
		check_save(pv, secret, &r);
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
