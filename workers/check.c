/*
 * The token-check worker: validate a pasted token with the provider and
 * hand it to the vault, or revalidate the stored one and record the
 * outcome. Provider answers are untrusted input: bounded by curl.c,
 * read by lib/provider.c with limits, and never echoed to the client (a
 * sentence of our own says what happened).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "provider.h"
#include "worker.h"

/* A provider's validation: request, interpretation, stored entry. */
struct provider {
	const char	*connector;
	const char	*name;		/* for sentences */
	/* Build the URL and headers for validating secret. */
	void		(*request)(const char *secret, char *url, size_t ulen,
			    char hdrs[][CD_SECRET_MAX + 64], size_t *nhdrs);
	/* 1 valid (v->identity may be set), 0 rejected (v filled), -1
	 * unusable answer (v filled); lib/provider.c. */
	int		(*interpret)(const struct pv_answer *a,
			    struct pv_verdict *v);
	/* The mcp-tokens.json entry for a valid secret (malloc'd), or
	 * NULL if it cannot be stored. */
	char		*(*entry)(const char *secret, const struct pv_answer *a,
			    const char *method);
	/* The member of the stored entry that holds the secret. */
	const char	*secret_key;
	/* auth_method of a pasted token ("pat"), NULL if none. */
	const char	*paste_method;
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

static const struct provider providers[] = {
	{ "manus", "Manus", manus_request, pv_manus_interpret, pv_manus_entry,
	    "api_key", NULL },
	{ "github", "GitHub", github_request, pv_github_interpret,
	    pv_github_entry, "access_token", "pat" },
	{ "vercel", "Vercel", vercel_request, pv_vercel_interpret,
	    pv_vercel_entry, "access_token", "api_token" },
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
	struct pv_answer	 pa;
	struct pv_verdict	 v;
	size_t			 n = 0;
	int			 rc;

	pv->request(secret, url, sizeof(url), hdrs, &n);
	for (size_t i = 0; i < n; i++)
		hp[i] = hdrs[i];
	hp[n] = NULL;
	memset(&v, 0, sizeof(v));
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
	} else {
		pa = (struct pv_answer){ a.code, a.body, a.len, a.scopes };
		rc = pv->interpret(&pa, &v);
		r->status = v.status;
		snprintf(r->sentence, sizeof(r->sentence), "%s", v.sentence);
		r->identity = v.identity;
		if (rc == 1 && entry != NULL &&
		    (*entry = pv->entry(secret, &pa, method)) == NULL) {
			r->status = 502;
			snprintf(r->sentence, sizeof(r->sentence), "%s's answer "
			    "is too large to store; try again later.", pv->name);
			free(r->identity);
			r->identity = NULL;
			rc = -1;
		}
	}
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
