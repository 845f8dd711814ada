/*
 * The Google Drive / OneDrive flow through the real rclone
 * (reference/rclone.md §1): run "rclone authorize <backend>
 * --auth-no-open-browser --config /dev/null", read rclone's local
 * /auth?state=... URL from stderr, resolve it to the provider's URL (the
 * 307 Location), report it to http, forward the pasted code to rclone's
 * callback port, and when rclone exits 0 hand the token to the vault,
 * which merges the remote's section into rclone.conf. rclone's exit
 * status is the only truth; its output (read by lib/rcout.c) is never
 * returned or logged, since it can hold a token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cd_limits.h"
#include "ctcmp.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "paste.h"
#include "provider.h"
#include "rcout.h"
#include "tool.h"
#include "toolpath.h"
#include "worker.h"

/* Seconds rclone has to print its local URL. Below the shortest
 * session_ttl (30), so that this sentence, not the job deadline's, is
 * the answer. */
#define RC_URL_WAIT_SEC	20
/* Seconds rclone has, once the pasted code reached it, to redeem it (one
 * token request) and exit. Without it a token endpoint that never answers
 * kept the flow, and the port lock, until the session's end. */
#define RC_EXCHANGE_WAIT_SEC	20

struct rc_flow {
	const char	*backend;	/* "drive" or "onedrive" */
	char		 rclone[512];
	struct tool	 t;
	int		 port;		/* rclone's callback port */
	int		 stuck;		/* killed: the exchange took too long */
	char		 state[CD_RCLONE_STATE_MAX];	/* rclone's OAuth state */
	char		*envp[8];
	char		 envbuf[6][1200];
};

static void
rc_env(struct rc_flow *f)
{
	const struct config	*conf = &worker.ci.conf;
	size_t			 n = 0;

	snprintf(f->envbuf[n], sizeof(f->envbuf[n]), "PATH=%s", TOOLPATH_PATH);
	f->envp[n] = f->envbuf[n], n++;
	snprintf(f->envbuf[n], sizeof(f->envbuf[n]), "HOME=%s",
	    worker.ci.extra);
	f->envp[n] = f->envbuf[n], n++;
	snprintf(f->envbuf[n], sizeof(f->envbuf[n]), "TMPDIR=%s",
	    worker.ci.extra);
	f->envp[n] = f->envbuf[n], n++;
	if (conf->https_proxy != NULL) {
		snprintf(f->envbuf[n], sizeof(f->envbuf[n]), "HTTPS_PROXY=%s",
		    conf->https_proxy);
		f->envp[n] = f->envbuf[n], n++;
	}
	if (conf->ca_file != NULL) {
		snprintf(f->envbuf[n], sizeof(f->envbuf[n]), "SSL_CERT_FILE=%s",
		    conf->ca_file);
		f->envp[n] = f->envbuf[n], n++;
	}
	f->envp[n] = NULL;
}

/* GET rclone's local /auth URL: its 307 Location is the provider's. */
static int
rc_provider_url(struct rc_flow *f, char *out, size_t len)
{
	struct curl_answer	 a;
	const char		*hdrs[] = { NULL };
	char			 url[128];
	int			 rc = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/auth?state=%s",
	    f->port, f->state);
	if (curl_get(url, hdrs, &a) == 0 && (a.code == 307 || a.code == 302) &&
	    a.location != NULL && strncmp(a.location, "https://", 8) == 0 &&
	    strlen(a.location) < len && strpbrk(a.location, " \r\n\"") == NULL) {
		snprintf(out, len, "%s", a.location);
		rc = 0;
	}
	curl_answer_free(&a);
	return rc;
}

static void
rc_progress(const char *auth_url, const char *state)
{
	yajl_gen	 g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "status", "awaiting_oauth");
	json_gen_kstr(g, "auth_url", auth_url);
	json_gen_kstr(g, "state", state);
	yajl_gen_map_close(g);
	worker_progress_gen(g);
}

static void rc_explain(struct rc_flow *, int, struct worker_result *);

/* Wait for the local URL and report the provider's. 0 or -1 (answered). */
static int
rc_wait_url(struct rc_flow *f)
{
	struct worker_result	 r;
	char			 auth_url[4096];
	int			 rc = 1;

	for (int i = 0; i < RC_URL_WAIT_SEC * 10 && rc != 0; i++) {
		rc = tool_read(&f->t, 100);
		if (rcout_url(f->t.errbuf.data, &f->port, f->state,
		    sizeof(f->state)))
			break;
	}
	if (f->port == 0 && rc == 0) {
		/* rclone gave up at once (its port taken, ...): say why. */
		memset(&r, 0, sizeof(r));
		rc_explain(f, tool_wait(&f->t), &r);
		worker_answer(&r);
		return -1;
	}
	if (f->port == 0) {
		tool_kill(&f->t);
		worker_fail(502, "rclone did not start its authorization in time.");
		return -1;
	}
	if (rc_provider_url(f, auth_url, sizeof(auth_url)) == -1) {
		tool_kill(&f->t);
		worker_fail(502, "rclone's authorization page did not lead to the "
		    "provider.");
		return -1;
	}
	rc_progress(auth_url, f->state);
	return 0;
}

/* A paste from http: forward code and state to rclone's callback. */
static void
rc_forward(struct rc_flow *f, struct msg *m)
{
	struct curl_answer	 a;
	const char		*hdrs[] = { NULL };
	char			*code = NULL, *state = NULL;
	char			 ec[3 * PASTE_FIELD_MAX + 1];
	char			 es[3 * PASTE_FIELD_MAX + 1];
	char			 url[sizeof(ec) + sizeof(es) + 64];
	uint32_t		 op;

	if (msg_get_u32(m, &op) == -1 || op != JOB_OP_SUBMIT ||
	    msg_get_str(m, &code, NULL) == -1 ||
	    msg_get_str(m, &state, NULL) == -1 || msg_get_end(m) == -1)
		fatalx("protocol violation by http: malformed submit");
	/* http compared the state already; a second look costs nothing. */
	if (!ct_streq(state, f->state) ||
	    paste_encode(code, ec, sizeof(ec)) == -1 ||
	    paste_encode(state, es, sizeof(es)) == -1)
		fatalx("protocol violation by http: submit for another state");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/?code=%s&state=%s",
	    f->port, ec, es);
	/* The answer does not matter: rclone may close before replying.
	 * Its exit status tells whether the code worked. */
	(void)curl_get(url, hdrs, &a);
	curl_answer_free(&a);
	explicit_bzero(url, sizeof(url));
	explicit_bzero(ec, sizeof(ec));
	msg_free_secret(code);
	free(state);
}

static long
rc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Until rclone exits, accept pastes from http; once one went to rclone,
 * it has RC_EXCHANGE_WAIT_SEC to finish. */
static int
rc_wait_exit(struct rc_flow *f)
{
	struct msg	 m;
	int		 rc, httpfd = worker.httpfd;
	long		 deadline = -1, left;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - rc_now_ms();
		if ((rc = tool_poll(&f->t, httpfd, deadline < 0 ? -1 :
		    left > 0 ? (int)left : 0)) == -1 && deadline >= 0) {
			f->stuck = 1;
			tool_kill(&f->t);
			return -1;
		}
		if (rc < 1)
			break;
		if (rc != 2)
			continue;
		if ((rc = msg_recv(httpfd, &m, CD_MSG_PAYLOAD_MAX)) == 1) {
			m.secret = 1;
			if (m.hdr.type != MSG_JOB_REQ || m.hdr.job != worker.job)
				fatalx("protocol violation by http: %s",
				    msg_type_name(m.hdr.type));
			rc_forward(f, &m);
			msg_free(&m);
			deadline = rc_now_ms() + RC_EXCHANGE_WAIT_SEC * 1000L;
		} else if (rc == 0)
			httpfd = -1;	/* http restarted: the deadline ends us */
		else
			fatalx("protocol violation by http: malformed frame");
	}
	return tool_wait(&f->t);
}

/* OneDrive needs the drive's id and type (Microsoft Graph me/drive).
 * 0 with them copied, or -1 with r filled. */
static int
rc_onedrive_drive(const char *token, char *id, char *type,
    struct worker_result *r)
{
	struct curl_answer	 a;
	struct pv_answer	 pa;
	struct pv_verdict	 v;
	char			 auth[CD_SECRET_MAX + 64], err[64];
	const char		*hdrs[] = { auth, "Accept: application/json",
				    NULL };
	yajl_val		 tok;
	int			 rc;

	tok = json_parse(token, strlen(token), CD_RCLONE_TOKEN_MAX, err,
	    sizeof(err));
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    json_obj_str(tok, "access_token"));
	if (tok != NULL)
		json_free_secret(tok);
	rc = curl_get("https://graph.microsoft.com/v1.0/me/drive", hdrs, &a);
	explicit_bzero(auth, sizeof(auth));
	memset(&v, 0, sizeof(v));
	pa = (struct pv_answer){ a.code, rc == 0 ? a.body : NULL, a.len, NULL };
	if (rc != 0 || a.code == 0) {
		/* No answer at all: the transport's words, not Graph's. */
		r->status = 502;
		snprintf(r->sentence, sizeof(r->sentence), "Microsoft Graph "
		    "could not be reached to look up your OneDrive (%s); start "
		    "again later.", a.error);
		rc = -1;
	} else if ((rc = pv_onedrive_drive(&pa, id, CD_DRIVE_ID_MAX, type,
	    CD_DRIVE_ID_MAX, &v)) == -1) {
		r->status = v.status;
		snprintf(r->sentence, sizeof(r->sentence), "%s", v.sentence);
	}
	curl_answer_free(&a);
	return rc;
}

/* rclone exited 0: build the remote's keys and have the vault store them. */
static void
rc_store(struct rc_flow *f, struct worker_result *r)
{
	char	*token, *json, id[CD_DRIVE_ID_MAX], type[CD_DRIVE_ID_MAX];
	size_t	 len;
	int	 od = strcmp(f->backend, "onedrive") == 0;

	token = rcout_token(f->t.outbuf.data);
	explicit_bzero(f->t.outbuf.data, sizeof(f->t.outbuf.data));
	if (token == NULL) {
		r->status = 502;
		snprintf(r->sentence, sizeof(r->sentence), "rclone finished "
		    "without printing a token; start again.");
		return;
	}
	if (!od || rc_onedrive_drive(token, id, type, r) == 0) {
		if ((json = rcout_entry(f->backend, token, od ? id : NULL,
		    od ? type : NULL, &len)) ==
		    NULL) {
			r->status = 502;
			snprintf(r->sentence, sizeof(r->sentence), "rclone "
			    "printed a token too large to store; start again.");
		} else {
			r->status = worker_vault_put(worker.ci.connector, json,
			    NULL, r->sentence, sizeof(r->sentence));
			msg_free_secret(json);
		}
	}
	msg_free_secret(token);
}

/* rclone failed: say why in our own words. */
static void
rc_explain(struct rc_flow *f, int code, struct worker_result *r)
{
	const char		*who = strcmp(f->backend, "onedrive") == 0 ?
				    "Microsoft" : "Google";
	enum rcout_failure	 why = rcout_failure(f->t.errbuf.data);

	r->status = 502;
	if (f->stuck)
		snprintf(r->sentence, sizeof(r->sentence), "%s did not answer "
		    "the exchange of the authorization code within %d seconds; "
		    "start again later.", who, RC_EXCHANGE_WAIT_SEC);
	else if (code > 128)
		snprintf(r->sentence, sizeof(r->sentence), "rclone was stopped "
		    "(signal %d) before the flow completed; start again.",
		    code - 128);
	else if (why == RCOUT_FAIL_PORT_IN_USE)
		snprintf(r->sentence, sizeof(r->sentence), "The OAuth callback "
		    "port %d is in use by another program; free it and start "
		    "again.", f->port ? f->port : 53682);
	else if (why == RCOUT_FAIL_PROVIDER)
		snprintf(r->sentence, sizeof(r->sentence), "%s failed while "
		    "redeeming the authorization code (HTTP %d); start again "
		    "later.", who, rcout_token_status(f->t.errbuf.data));
	else if (why == RCOUT_FAIL_UNREACHABLE)
		snprintf(r->sentence, sizeof(r->sentence), "%s could not be "
		    "reached to redeem the authorization code; start again "
		    "later.", who);
	else if (why == RCOUT_FAIL_UNREADABLE)
		snprintf(r->sentence, sizeof(r->sentence), "%s answered the "
		    "exchange of the authorization code with something rclone "
		    "could not read; start again later.", who);
	else if (why == RCOUT_FAIL_BAD_CODE)
		snprintf(r->sentence, sizeof(r->sentence), "The provider did not "
		    "accept the authorization code (it may have expired or "
		    "been used already); start again.");
	else if (why == RCOUT_FAIL_REFUSED)
		snprintf(r->sentence, sizeof(r->sentence), "The authorization "
		    "was refused at the provider; start again.");
	else
		snprintf(r->sentence, sizeof(r->sentence), "rclone authorize "
		    "failed (exit status %d); start again.", code);
	explicit_bzero(f->t.errbuf.data, sizeof(f->t.errbuf.data));
}

void
rclone_run(uint32_t op)
{
	static struct rc_flow	 f;
	struct worker_result	 r;
	char			*argv[8];
	int			 n = 0, code;

	if (op != JOB_OP_RCLONE)
		fatalx("protocol violation by http: op %u for rclone", op);
	memset(&r, 0, sizeof(r));
	f.backend = strcmp(worker.ci.connector, "onedrive") == 0 ? "onedrive" :
	    "drive";
	if (toolpath_find(worker.ci.conf.rclone, "rclone", f.rclone,
	    sizeof(f.rclone)) == -1) {
		worker_fail(503, "rclone is not installed or not runnable on the "
		    "server; install it or set rclone in the configuration.");
		return;
	}
	rc_env(&f);
	argv[n++] = "rclone";
	argv[n++] = "authorize";
	argv[n++] = (char *)f.backend;
	argv[n++] = "--auth-no-open-browser";
	argv[n++] = "--config=/dev/null";
	if (worker.ci.conf.ca_file != NULL)
		argv[n++] = "--ca-cert";
	if (worker.ci.conf.ca_file != NULL)
		argv[n++] = worker.ci.conf.ca_file;
	argv[n] = NULL;
	if (tool_start(&f.t, f.rclone, argv, f.envp) == -1) {
		worker_fail(503, "rclone could not be started.");
		return;
	}
	if (rc_wait_url(&f) == -1)
		return;
	if ((code = rc_wait_exit(&f)) == 0)
		rc_store(&f, &r);
	else
		rc_explain(&f, code, &r);
	if (r.status == 200)
		r.sentence[0] = '\0';
	worker_answer(&r);
}
