/*
 * The shared worker skeleton (worker.c) and what each kind of worker
 * provides. A worker is one short-lived process per job: it receives one
 * MSG_JOB_REQ from http, talks to the provider, delivers any credential
 * straight to the vault, answers http with one MSG_JOB_RESULT, and exits.
 */
#ifndef CD_WORKER_H
#define CD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "cd_limits.h"
#include "child.h"
#include "msg.h"

struct worker {
	struct child_init ci;
	int		 httpfd;	/* channel to http */
	int		 vaultfd;	/* channel to the vault */
	uint32_t	 job;
};

extern struct worker worker;

/* An outcome for http: status, sentence, identity JSON (may be NULL). */
struct worker_result {
	uint32_t	 status;
	char		 sentence[CD_SENTENCE_MAX];
	char		*identity;	/* malloc'd JSON object or NULL */
};

/* Send the result to http (once). */
void worker_answer(const struct worker_result *r);
/* Answer http with a failure: a status and our own sentence. */
void worker_fail(uint32_t status, const char *sentence);

/* Vault requests within the grant; each returns the vault's status. */
uint32_t worker_vault_put(const char *connector, const char *entry_json,
    const char *identity, char *sentence, size_t len);
uint32_t worker_vault_get(const char *connector, char **entry_json,
    char *sentence, size_t len);
uint32_t worker_vault_mark(const char *connector, int valid,
    const char *sentence, const char *identity);

/* check.c: validate and store or revalidate a token. */
void check_run(uint32_t op, const char *secret);
/* Validate secret with the connector's provider and store it with the
 * given auth_method. 0, or -1 with r filled. */
int check_store(const char *connector, const char *secret,
    const char *method, struct worker_result *r);

/* ghdevice.c: the GitHub device flow through the real gh. */
void ghdevice_run(uint32_t op);

/* vercel.c: the Vercel OAuth flow with PKCE. */
void vercel_run(uint32_t op);
/* Refresh the stored Vercel OAuth token (refresh_token grant). */
void vercel_refresh_run(uint32_t op);
/* Revoke the stored Vercel OAuth token upstream (needs a client secret);
 * answers {"revoked": bool}. */
void vercel_revoke_run(uint32_t op);

/* rclone.c: the Drive / OneDrive flow through the real rclone. */
void rclone_run(uint32_t op);

/* Report progress to http: a JSON object. */
void worker_progress(const char *json);
/* The same, from the document built in g (freed). */
void worker_progress_gen(yajl_gen g);

/* curl.c: one bounded HTTPS GET. */
struct curl_answer {
	long		 code;		/* HTTP status, 0 on transport error */
	char		*body;		/* NUL-terminated, may be NULL */
	size_t		 len;
	char		*scopes;	/* X-OAuth-Scopes header, or NULL */
	char		*location;	/* Location of a redirect, or NULL */
	char		 error[256];	/* transport error sentence */
	int		 timed_out;
};
int curl_get(const char *url, const char *const *headers,
    struct curl_answer *a);
/* A POST of body (NUL-terminated; its Content-Type among headers). */
int curl_post(const char *url, const char *const *headers, const char *body,
    struct curl_answer *a);
void curl_answer_free(struct curl_answer *a);

#endif
