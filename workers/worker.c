/*
 * connectord: worker <connector>, the shared worker skeleton.
 *
 * Contract. Runs as the unprivileged service user (never the vault's
 * user), in a private directory used as HOME and TMPDIR that the broker
 * removes when it ends, with a scrubbed environment, no-new-privs, and a
 * seccomp allowlist that permits outbound sockets and read-only opens.
 * It lives one job, and the broker kills it at the job's deadline.
 *
 * Peers and what it accepts:
 *   broker: MSG_INIT only (then nothing).
 *   http:   one MSG_JOB_REQ (the pasted secret, if any).
 *   vault:  the answer to each request it made (CRED_*_ANS), in turn.
 * Anything else is a protocol violation and ends the worker.
 *
 * It must never send a credential to http or to the broker; the only
 * credential-bearing messages it sends go to the vault.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cd_limits.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "sandbox.h"
#include "worker.h"

struct worker	 worker;

/* Wait (bounded) for one message of the expected type on fd. */
static void
worker_recv(int fd, uint16_t want, struct msg *m, const char *peer)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	int		 rc;

	do {
		rc = poll(&pfd, 1, CD_JOB_TTL_CHECK * 1000);
	} while (rc == -1 && errno == EINTR);
	if (rc != 1)
		fatalx("no answer from %s in time", peer);
	if ((rc = msg_recv(fd, m, CD_MSG_PAYLOAD_MAX)) == 0)
		fatalx("%s went away", peer);
	if (rc == -1)
		fatalx("protocol violation by %s: %s", peer,
		    msg_recv_error(errno));
	m->secret = 1;
	if (m->hdr.type != want || m->hdr.job != worker.job)
		fatalx("protocol violation by %s: %s (0x%04x) not expected", peer,
		    msg_type_name(m->hdr.type), m->hdr.type);
}

void
worker_answer(const struct worker_result *r)
{
	struct msg m;

	msg_init(&m, MSG_JOB_RESULT, worker.job);
	if (msg_put_u32(&m, r->status) == -1 ||
	    msg_put_str(&m, r->sentence) == -1 ||
	    msg_put_str(&m, r->identity ? r->identity : "") == -1 ||
	    msg_send(worker.httpfd, &m) == -1)
		log_warn("cannot answer http");
	msg_free(&m);
}

void
worker_fail(uint32_t status, const char *sentence)
{
	struct worker_result r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	snprintf(r.sentence, sizeof(r.sentence), "%s", sentence);
	worker_answer(&r);
}

static uint32_t
worker_vault_call(struct msg *req, uint16_t ans, char *sentence, size_t len,
    char **secret)
{
	struct msg	 m;
	uint32_t	 status;
	char		*s = NULL;

	if (msg_send(worker.vaultfd, req) == -1) {
		snprintf(sentence, len, "The credential vault cannot be "
		    "reached; try again.");
		return 503;
	}
	worker_recv(worker.vaultfd, ans, &m, "vault");
	if (msg_get_u32(&m, &status) == -1 ||
	    (ans != MSG_CRED_MARK_ANS && msg_get_str(&m, &s, NULL) == -1) ||
	    (ans == MSG_CRED_GET_ANS && msg_get_str(&m, secret, NULL) == -1) ||
	    msg_get_end(&m) == -1)
		fatalx("protocol violation by vault: malformed %s",
		    msg_type_name(ans));
	if (s != NULL)
		snprintf(sentence, len, "%s", s);
	free(s);
	msg_free(&m);
	return status;
}

void
worker_progress(const char *json)
{
	struct msg m;

	msg_init(&m, MSG_JOB_PROGRESS, worker.job);
	if (msg_put_str(&m, json) == -1 || msg_send(worker.httpfd, &m) == -1)
		log_warn("cannot report progress to http");
	msg_free(&m);
}

void
worker_progress_gen(yajl_gen g)
{
	char *out;

	if ((out = json_gen_take(g, NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_free(g);
	worker_progress(out);
	free(out);
}

uint32_t
worker_vault_put(const char *connector, const char *entry,
    const char *identity, char *sentence, size_t len)
{
	struct msg	 m;
	uint32_t	 st;

	msg_init(&m, MSG_CRED_PUT_REQ, worker.job);
	m.secret = 1;
	if (msg_put_str(&m, connector) == -1 || msg_put_str(&m, entry) == -1 ||
	    msg_put_str(&m, identity ? identity : "") == -1)
		fatalx("credential too large");
	st = worker_vault_call(&m, MSG_CRED_PUT_ANS, sentence, len, NULL);
	msg_free(&m);
	return st;
}

uint32_t
worker_vault_get(const char *connector, char **entry, char *sentence,
    size_t len)
{
	struct msg	 m;
	uint32_t	 st;

	msg_init(&m, MSG_CRED_GET_REQ, worker.job);
	if (msg_put_str(&m, connector) == -1)
		fatalx("msg_put_str");
	*entry = NULL;
	st = worker_vault_call(&m, MSG_CRED_GET_ANS, sentence, len, entry);
	msg_free(&m);
	return st;
}

uint32_t
worker_vault_mark(const char *connector, int valid, const char *sentence,
    const char *identity)
{
	struct msg	 m;
	uint32_t	 st;
	char		 ignored[8];

	msg_init(&m, MSG_CRED_MARK_REQ, worker.job);
	if (msg_put_str(&m, connector) == -1 || msg_put_u32(&m, valid) == -1 ||
	    msg_put_str(&m, sentence) == -1 ||
	    msg_put_str(&m, identity ? identity : "") == -1)
		fatalx("msg_put");
	st = worker_vault_call(&m, MSG_CRED_MARK_ANS, ignored, sizeof(ignored),
	    NULL);
	msg_free(&m);
	return st;
}

static int
worker_runs_tool(void)
{
	return strcmp(worker.ci.kind, "ghdevice") == 0 ||
	    strcmp(worker.ci.kind, "rclone") == 0;
}

/* Set up the sandbox. libcurl is initialised first: it reads nothing
 * later that the filter forbids. */
static void
worker_sandbox(void)
{
	struct sandbox	 sb;
	char		 err[512];

	if (chdir(worker.ci.extra) == -1)
		fatal("chdir %s", worker.ci.extra);
	/* The broker copied the CA bundle here, readable by us. */
	if (worker.ci.conf.ca_file != NULL) {
		char ca[PATH_MAX];

		snprintf(ca, sizeof(ca), "%s/ca.pem", worker.ci.extra);
		free(worker.ci.conf.ca_file);
		if ((worker.ci.conf.ca_file = strdup(ca)) == NULL)
			fatal("strdup");
	}
	setenv("HOME", worker.ci.extra, 1);
	setenv("TMPDIR", worker.ci.extra, 1);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init");
	memset(&sb, 0, sizeof(sb));
	/* A worker that runs gh or rclone cannot exec under the allowlist:
	 * it gets the denylist, which the tool then inherits. */
	sb.role = worker_runs_tool() ? SANDBOX_EXEC : SANDBOX_WORKER;
	sb.change_ids = worker.ci.change_ids;
	sb.uid = worker.ci.uid;
	sb.gid = worker.ci.gid;
	sb.nofile = CD_RLIMIT_NOFILE_WORKER;
	sb.as = worker_runs_tool() ? CD_RLIMIT_AS_TOOL : CD_RLIMIT_AS_WORKER;
	if (sandbox_enter(&sb, err, sizeof(err)) == -1)
		fatalx("%s", err);
}

int
main(int argc, char *argv[])
{
	struct msg	 m;
	uint32_t	 op;
	char		*secret = NULL, *arg = NULL, role[48];

	(void)argc;
	snprintf(role, sizeof(role), "worker %s",
	    strncmp(argv[0], "connectord: worker ", 19) == 0 ? argv[0] + 19 :
	    "?");
	log_set_role(role);
	child_read_init(&worker.ci);
	if (worker.ci.nfds != 2)
		fatalx("protocol violation by broker: INIT without channels");
	worker.httpfd = worker.ci.fds[0];
	worker.vaultfd = worker.ci.fds[1];
	worker.ci.fds[0] = worker.ci.fds[1] = -1;
	worker_sandbox();
	/* The job id is the one http's request carries; learn it there. */
	worker.job = 0;
	{
		struct pollfd pfd = { .fd = worker.httpfd, .events = POLLIN };

		if (poll(&pfd, 1, CD_JOB_TTL_CHECK * 1000) != 1 ||
		    msg_recv(worker.httpfd, &m, CD_MSG_PAYLOAD_MAX) != 1)
			fatalx("no job from http");
	}
	m.secret = 1;
	if (m.hdr.type != MSG_JOB_REQ || m.hdr.job == 0 ||
	    msg_get_u32(&m, &op) == -1 || msg_get_str(&m, &secret, NULL) == -1 ||
	    msg_get_str(&m, &arg, NULL) == -1 || msg_get_end(&m) == -1)
		fatalx("protocol violation by http: malformed JOB_REQ");
	worker.job = m.hdr.job;
	msg_free(&m);
	if (strcmp(worker.ci.kind, "ghdevice") == 0)
		ghdevice_run(op);
	else if (strcmp(worker.ci.kind, "rclone") == 0)
		rclone_run(op);
	else if (strcmp(worker.ci.kind, "oauth") == 0)
		vercel_run(op);
	else if (strcmp(worker.ci.kind, "refresh") == 0)
		vercel_refresh_run(op);
	else if (strcmp(worker.ci.kind, "revoke") == 0)
		vercel_revoke_run(op);
	else
		check_run(op, secret);
	msg_free_secret(secret);
	free(arg);
	return 0;
}
