/*
 * The http role's internal interface, shared by http.c (server, channels,
 * pending requests), http_route.c (routing, authentication, answers) and
 * http_token.c (the token connectors: manus, and later github, vercel).
 */
#ifndef CD_HTTP_H
#define CD_HTTP_H

#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <stdint.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "child.h"
#include "msg.h"

/* glibc's sys/queue.h lacks the deletion-safe iterator. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

struct preq;

/* Called once with the worker's or vault's answer; ident may be NULL. */
typedef void (*preq_done_fn)(struct preq *p, uint32_t status,
    const char *sentence, yajl_val ident);
/* Called with a worker's progress (a JSON object) while it runs. */
typedef void (*preq_progress_fn)(struct preq *p, yajl_val progress);

/* A flow that outlives the request that started it (a device flow, an
 * OAuth session), polled by id. */
struct session {
	TAILQ_ENTRY(session) entry;
	char		 id[48];	/* "gh-cli-<random>", ... */
	char		 connector[16];
	uint32_t	 job;		/* 0 once the worker is gone */
	int		 jobfd;
	struct event	*jobev;
	struct event	*expiry;	/* removes it at session_ttl */
	char		 status[16];	/* pending, approved, ... */
	char		*error;		/* a sentence, or NULL */
	yajl_val	 info;		/* progress the worker reported */
	yajl_val	 user;		/* the account, once known */
	char		 remote[40];	/* rclone flows: the remote's name */
	int		 rclone;	/* an rclone flow (gdrive, onedrive) */
	int		 submitted;	/* a code went to the worker */
	/* The request waiting for this flow's result (Vercel's callback or
	 * exchange); the session ends with it, its state used once. */
	struct preq	*waiter;
	int		 cancelling;	/* answers 404; freed at the job's end */
	uint32_t	 flow;		/* its job id for /metrics, kept when
					   job becomes 0 */
	/* An rclone flow's result, shown only once the broker reports the
	 * worker's end (and so the port lock's release). */
	int		 held;
	uint32_t	 held_code;
	char		*held_sentence;
};

/* A client request waiting for a worker or the vault. */
struct preq {
	TAILQ_ENTRY(preq) entry;
	uint32_t	 id;		/* our request id (SPAWN_REQ, DELETE) */
	struct evhttp_request *req;	/* NULL once the client is gone */
	struct evhttp_connection *evcon;
	uint32_t	 job;		/* worker job id, 0 before SPAWN_ANS */
	int		 jobfd;		/* channel to the worker, or -1 */
	struct event	*jobev;
	struct event	*timer;		/* answers 503 if nothing came */
	char		*secret;	/* sent to the worker, then wiped */
	uint32_t	 op;		/* JOB_REQ op */
	int		 at_vault;	/* waiting for a vault answer */
	int		 answered;	/* the worker sent its result */
	int		 worker_gone;	/* its channel closed without a result */
	/* The broker reported the worker's end (MSG_EXIT_*) while its
	 * channel was still open, so its result may yet be read there. */
	uint32_t	 exit_reason;
	/* A successful result held until the vault's metadata reflects it,
	 * so that a status asked right after the answer is not stale. */
	int		 meta_wait;
	uint32_t	 held_status;
	yajl_val	 held_ident;
	char		 connector[16];
	char		 kind[16];	/* the job kind asked for, for /metrics */
	preq_done_fn	 done;
	preq_progress_fn progress;	/* NULL: progress is a violation */
	/* Called once the worker has its JOB_REQ (flows that answer at
	 * once, like 202 for an rclone flow). */
	void		(*spawned)(struct preq *p);
	char		 remote[40];
	struct session	*owner;		/* the session it waits on */
	int		 html;		/* answer with a page (/callback) */
	struct timespec	 start;
};

struct http_state {
	struct child_init ci;
	struct event_base *base;
	struct evhttp	*evh;
	char		*api_token;	/* NULL: api_auth none */
	int		 vaultfd;	/* -1 while the vault is down */
	struct event	*vaultev;
	struct event	*ctlev;
	yajl_val	 meta;		/* last metadata pushed by the vault */
	TAILQ_HEAD(, preq) preqs;
	size_t		 npreqs;
	TAILQ_HEAD(, session) sessions;
	uint32_t	 next_id;
};

extern struct http_state http;

/* http.c */
struct preq *preq_new(struct evhttp_request *req, const char *connector,
    preq_done_fn done);
int preq_spawn(struct preq *p, const char *kind, const char *remote,
    uint32_t op, char *secret);
int preq_vault_delete(struct preq *p, const char *remote);
void preq_finish(struct preq *p);
/* Deliver an outcome to the request's handler and free it. */
void preq_complete_public(struct preq *p, uint32_t status,
    const char *sentence, yajl_val ident);

/* http_console.c: the web console's files, sign-in and cookie sessions */
void console_init(const char *startup_link);
/* Whether the request carries a live console cookie (and remember it for
 * the handlers below). */
int console_authenticate(struct evhttp_request *req);
void console_authenticate_none(void);
int console_signed_in(void);
/* NULL, or why a request that changes something must be refused as
 * cross-site (another Origin or site; for a cookie session, no CSRF
 * token). */
const char *console_cross_site(struct evhttp_request *req);
void console_asset(struct evhttp_request *req, const char *path);
void console_login(struct evhttp_request *req);
void console_session_info(struct evhttp_request *req);
void console_link_mint(struct evhttp_request *req);
void console_logout(struct evhttp_request *req);

/* http_route.c */
void http_route_cb(struct evhttp_request *req, void *arg);
void http_reply(struct evhttp_request *req, int code, const char *json);
/* Answer with the JSON document built in g, and free g. */
void http_reply_gen(struct evhttp_request *req, int code, yajl_gen g);
/* A preq_done_fn for starts that can only fail before they answer:
 * the worker's status and sentence as a JSON error. */
void http_fail_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident);
/* An answer without a body (204). */
void http_reply_empty(struct evhttp_request *req, int code);
void http_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parse the body as a JSON object; answers 400/413 itself on failure. */
yajl_val http_body_json(struct evhttp_request *req);
void http_access_log(struct evhttp_request *req, int code);

/* http_access.c: the access log file passed by the broker. */
/* Note the start of a request being routed (for its duration). */
void http_access_begin(struct evhttp_request *req);
/* Use fd (a file open for appending), or -1 for the daemon log. */
void http_access_set(int fd);
/* Write one line to the access log; -1 when there is none or the write
 * failed, and the caller logs the line to the daemon log instead. */
int http_access_write(struct evhttp_request *req, const char *method,
    const char *path, int code);

/* Hand a preq's worker channel over to a new session and free the preq
 * (its request must have been answered). */
struct session *preq_to_session(struct preq *p, const char *prefix);

/*
 * Run fn(arg) once the vault has pushed metadata that reflects every
 * write acknowledged so far (a MSG_META_REQ round trip); at once when the
 * vault is down.
 */
void http_meta_sync(void (*fn)(void *), void *arg);

/* http_metrics.c: GET /metrics and the counters behind it. */
void metrics_init(void);
/* A request was routed (route: its pattern, NULL for none; method: its
 * name); it is answered through http_access_log(). */
void metrics_request_begin(struct evhttp_request *req, const char *route,
    const char *method);
void metrics_request_end(struct evhttp_request *req, int code);
void metrics_flow_start(uint32_t job, const char *connector,
    const char *kind);
void metrics_flow_refused(const char *connector, const char *kind,
    uint32_t code);
/* The worker's result: the flow's outcome follows from its status. */
void metrics_flow_result(uint32_t job, uint32_t status);
/* The broker reported the worker's end (MSG_JOB_EXIT): counts the exit;
 * a flow without a result may still get one from the worker's channel,
 * so its outcome waits for metrics_flow_settle(). */
void metrics_flow_exit(uint32_t job, uint32_t reason);
/* No result will come any more: a flow that ended without one gets the
 * outcome of its exit reason. */
void metrics_flow_settle(uint32_t job);
/* MSG_STATS from the broker: 0, or -1 if malformed. */
int metrics_broker_stats(struct msg *m);
void http_metrics(struct evhttp_request *req);

/* http_session.c */
void session_init(void);
struct session *session_new(struct preq *p, const char *prefix);
/* The session named by the body's "session_id"; answers 400/404 itself. */
struct session *session_from_body(struct evhttp_request *req,
    const char *connector);
void session_free(struct session *s, int cancel);
void session_job_exit(uint32_t job, uint32_t reason);
size_t session_count_active(const char *connector);
/* Send a follow-up JOB_REQ (a pasted code) to a session's worker. */
int session_submit(struct session *s, const char *code, const char *state);
struct session *session_find(const char *connector, const char *id);
void http_gh_start(struct evhttp_request *req);
void http_gh_poll(struct evhttp_request *req);
void http_gh_cancel(struct evhttp_request *req);

/* http_rclone.c: gdrive and onedrive. */
int http_rclone_connector(const char *name);
void http_rc_list(struct evhttp_request *req, const char *c);
void http_rc_add(struct evhttp_request *req, const char *c);
void http_rc_delete(struct evhttp_request *req, const char *c,
    const char *name);
void http_rc_session(struct evhttp_request *req, const char *c,
    const char *id);
void http_rc_submit(struct evhttp_request *req, const char *c,
    const char *id);
void http_rc_cancel(struct evhttp_request *req, const char *c,
    const char *id);

/* http_vercel.c: Vercel OAuth (PKCE) and the callback page. */
void http_vc_start(struct evhttp_request *req);
void http_vc_exchange(struct evhttp_request *req);
void http_vc_callback(struct evhttp_request *req);

/* http_token.c */
void http_token_save(struct evhttp_request *req, const char *connector);
void http_token_status(struct evhttp_request *req, const char *connector);
void http_token_disconnect(struct evhttp_request *req, const char *connector);
void http_token_reconnect(struct evhttp_request *req, const char *connector);
void http_connectors_list(struct evhttp_request *req);
int http_token_connector(const char *name);
/* The metadata object of one connector, NULL if none yet. */
yajl_val http_meta_connector(const char *connector);

#endif
