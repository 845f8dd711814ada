/*
 * connectord: http, the REST front end.
 *
 * Contract. Runs as the unprivileged service user, chrooted in an empty
 * directory, under a seccomp allowlist that forbids opening files,
 * creating sockets and exec. It holds only the listening sockets the
 * broker passed it and its channels. It routes and authenticates API
 * requests, parses their JSON, keeps the requests that wait for a worker
 * or the vault, and answers status questions from the metadata the vault
 * pushes. It receives user-supplied secrets (a pasted token) and hands
 * them to a worker; it never receives a stored credential back.
 *
 * Peers and what it accepts:
 *   broker: MSG_SPAWN_ANS (with the worker's channel), MSG_JOB_EXIT,
 *           MSG_VAULT_CHANNEL, MSG_ACCESS_LOG (the access log file, at
 *           start and on SIGHUP), MSG_CONFIG (the configuration re-read
 *           on SIGHUP; sessions and pending requests carry on).
 *           MSG_STATS: the broker's counters, for /metrics.
 *   vault:  MSG_META_PUSH, MSG_DELETE_ANS.
 *   worker: MSG_JOB_PROGRESS, MSG_JOB_RESULT.
 * Anything else is a protocol violation and ends this process; the
 * broker restarts it.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cd_limits.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "sandbox.h"

struct http_state http;

static const uint16_t permit_broker[] = {
	MSG_SPAWN_ANS, MSG_JOB_EXIT, MSG_VAULT_CHANNEL, MSG_ACCESS_LOG,
	MSG_CONFIG, MSG_STATS,
};
static const uint16_t permit_vault[] = {
	MSG_META_PUSH, MSG_DELETE_ANS,
};
static const uint16_t permit_worker[] = {
	MSG_JOB_PROGRESS, MSG_JOB_RESULT,
};

#define PERMIT(t) { (t), sizeof(t) / sizeof((t)[0]) }

static void http_violation(const char *, const char *)
    __attribute__((noreturn));

static void
http_violation(const char *peer, const char *what)
{
	fatalx("protocol violation by %s: %s", peer, what);
}

static void preq_timeout_cb(evutil_socket_t, short, void *);

/* The answer to a request whose worker ended without a result. */
static const char *
preq_exit_sentence(uint32_t reason)
{
	return reason == MSG_EXIT_DEADLINE ? "The worker did not finish in "
	    "time and was stopped; try again." : "The worker ended before it "
	    "answered; see the daemon's log.";
}

/* The client went away: forget its requests and stop their workers. */
static void
http_conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct preq *p, *tmp;

	(void)arg;
	TAILQ_FOREACH_SAFE(p, &http.preqs, entry, tmp) {
		if (p->evcon != evcon)
			continue;
		p->req = NULL;
		/* A held answer is freed when the metadata arrives. */
		if (!p->meta_wait)
			preq_finish(p);
	}
}

struct preq *
preq_new(struct evhttp_request *req, const char *connector,
    preq_done_fn done)
{
	struct preq	*p;
	struct timeval	 tv = { CD_JOB_TTL_CHECK + 5, 0 };

	if (http.npreqs >= CD_HTTP_PENDING_MAX) {
		http_error(req, 503, "Too many requests are in progress; try "
		    "again in a moment.");
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		http_error(req, 503, "The daemon is out of memory.");
		return NULL;
	}
	p->id = ++http.next_id;
	p->req = req;
	p->evcon = evhttp_request_get_connection(req);
	p->jobfd = -1;
	p->done = done;
	snprintf(p->connector, sizeof(p->connector), "%s", connector);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->timer = evtimer_new(http.base, preq_timeout_cb, p);
	if (p->timer == NULL || evtimer_add(p->timer, &tv) == -1)
		fatalx("evtimer_add");
	if (p->evcon != NULL)
		evhttp_connection_set_closecb(p->evcon, http_conn_close_cb,
		    NULL);
	TAILQ_INSERT_TAIL(&http.preqs, p, entry);
	http.npreqs++;
	return p;
}

/* Done with a request: answered, abandoned or failed. */
void
preq_finish(struct preq *p)
{
	struct msg m;

	/* Whatever ends a request ends its flow, if its worker is gone. */
	metrics_flow_settle(p->job);
	if (p->job != 0 && p->jobfd != -1 && !p->answered) {
		/* The worker may still run: ask the broker to end it. */
		msg_init(&m, MSG_JOB_CANCEL, p->job);
		if (msg_send(CHILD_CTL_FD, &m) == -1)
			log_warn("cannot cancel job %u", p->job);
		msg_free(&m);
	}
	if (p->owner != NULL)
		p->owner->waiter = NULL;
	if (p->jobev != NULL)
		event_free(p->jobev);
	if (p->jobfd != -1)
		close(p->jobfd);
	if (p->timer != NULL)
		event_free(p->timer);
	msg_free_secret(p->secret);
	TAILQ_REMOVE(&http.preqs, p, entry);
	http.npreqs--;
	free(p);
}

/* Deliver an outcome to the handler (if the client is still there). */
static void
preq_complete(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	if (p->req != NULL)
		p->done(p, status, sentence, ident);
	p->req = NULL;
	preq_finish(p);
}

void
preq_complete_public(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	preq_complete(p, status, sentence, ident);
}

static void
preq_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct preq *p = arg;

	(void)fd;
	(void)ev;
	if (p->exit_reason != 0)
		preq_complete(p, 503, preq_exit_sentence(p->exit_reason), NULL);
	else if (p->worker_gone)
		preq_complete(p, 503, preq_exit_sentence(MSG_EXIT_NORMAL), NULL);
	else
		preq_complete(p, 503, "The request took too long; no worker "
		    "answered in time. Try again.", NULL);
}

struct session *
preq_to_session(struct preq *p, const char *prefix)
{
	struct session *s;

	if ((s = session_new(p, prefix)) == NULL)
		return NULL;
	/* The channel now belongs to the session. */
	event_free(p->jobev);
	p->jobev = NULL;
	p->jobfd = -1;
	p->req = NULL;
	preq_finish(p);
	return s;
}

static struct preq *
preq_find(uint32_t id, uint32_t job)
{
	struct preq *p;

	TAILQ_FOREACH(p, &http.preqs, entry)
		if ((id != 0 && p->id == id) || (job != 0 && p->job == job))
			return p;
	return NULL;
}

int
preq_spawn(struct preq *p, const char *kind, const char *remote,
    uint32_t op, char *secret)
{
	struct msg	 m;
	int		 rc;

	p->secret = secret;
	p->op = op;
	snprintf(p->remote, sizeof(p->remote), "%s", remote);
	snprintf(p->kind, sizeof(p->kind), "%s", kind);
	msg_init(&m, MSG_SPAWN_REQ, 0);
	rc = msg_put_u32(&m, p->id) == -1 || msg_put_str(&m, kind) == -1 ||
	    msg_put_str(&m, p->connector) == -1 ||
	    msg_put_str(&m, remote) == -1 || msg_send(CHILD_CTL_FD, &m) == -1 ?
	    -1 : 0;
	msg_free(&m);
	if (rc == -1)
		preq_complete(p, 503, "The broker cannot be reached.", NULL);
	return rc;
}

int
preq_vault_delete(struct preq *p, const char *remote)
{
	struct msg	 m;
	int		 rc;

	if (http.vaultfd == -1) {
		preq_complete(p, 503, "The credential vault is restarting; try "
		    "again in a few seconds.", NULL);
		return -1;
	}
	p->at_vault = 1;
	msg_init(&m, MSG_DELETE_REQ, 0);
	rc = msg_put_u32(&m, p->id) == -1 ||
	    msg_put_str(&m, p->connector) == -1 ||
	    msg_put_str(&m, remote) == -1 || msg_send(http.vaultfd, &m) == -1 ?
	    -1 : 0;
	msg_free(&m);
	if (rc == -1)
		preq_complete(p, 503, "The credential vault cannot be reached.",
		    NULL);
	return rc;
}

static void
preq_release_cb(void *arg)
{
	struct preq	*p = arg;
	yajl_val	 id = p->held_ident;

	p->held_ident = NULL;
	preq_complete(p, p->held_status, "", id);
	if (id != NULL)
		yajl_tree_free(id);
}

/* Callbacks waiting for the next metadata push. */
struct meta_waiter {
	void	(*fn)(void *);
	void	*arg;
};
static struct meta_waiter meta_waiters[CD_HTTP_PENDING_MAX * 2];
static size_t		  meta_nwaiters;

static void
http_meta_run_waiters(void)
{
	struct meta_waiter	 w[sizeof(meta_waiters) /
				    sizeof(meta_waiters[0])];
	size_t			 n = meta_nwaiters;

	memcpy(w, meta_waiters, n * sizeof(w[0]));
	meta_nwaiters = 0;
	for (size_t i = 0; i < n; i++)
		w[i].fn(w[i].arg);
}

void
http_meta_sync(void (*fn)(void *), void *arg)
{
	struct msg m;

	if (http.vaultfd == -1 ||
	    meta_nwaiters == sizeof(meta_waiters) / sizeof(meta_waiters[0])) {
		fn(arg);
		return;
	}
	meta_waiters[meta_nwaiters].fn = fn;
	meta_waiters[meta_nwaiters++].arg = arg;
	msg_init(&m, MSG_META_REQ, 0);
	if (msg_send(http.vaultfd, &m) == -1)
		log_warn("cannot ask the vault for metadata");
	msg_free(&m);
}

static void
http_job_result(struct preq *p, struct msg *m)
{
	uint32_t	 status;
	char		*sentence = NULL, *ident = NULL, err[128];
	size_t		 ilen;
	yajl_val	 id = NULL;

	if (msg_get_u32(m, &status) == -1 ||
	    msg_get_str(m, &sentence, NULL) == -1 ||
	    msg_get_str(m, &ident, &ilen) == -1 || msg_get_end(m) == -1 ||
	    status < 200 || status > 599)
		http_violation("worker", "malformed JOB_RESULT");
	if (ilen > 0 && ((id = json_parse(ident, ilen, CD_MSG_STR_MAX, err,
	    sizeof(err))) == NULL || !YAJL_IS_OBJECT(id)))
		http_violation("worker", "JOB_RESULT with bad identity");
	p->answered = 1;
	metrics_flow_result(p->job, status);
	if (status == 200 && http.vaultfd != -1) {
		/* The vault changed something: answer once http's copy of
		 * its metadata shows it. */
		p->meta_wait = 1;
		evtimer_del(p->timer);
		p->held_status = status;
		p->held_ident = id;
		http_meta_sync(preq_release_cb, p);
		free(sentence);
		free(ident);
		return;
	}
	preq_complete(p, status, sentence, id);
	if (id != NULL)
		yajl_tree_free(id);
	free(sentence);
	free(ident);
}

/* Progress is for flows only; a token check that sends it is hostile. */
static void
http_job_progress(struct preq *p, struct msg *m)
{
	char		*json, err[128];
	size_t		 len;
	yajl_val	 v;

	if (p->progress == NULL)
		http_violation("worker", "JOB_PROGRESS for a token check");
	if (msg_get_str(m, &json, &len) == -1 || msg_get_end(m) == -1)
		http_violation("worker", "malformed JOB_PROGRESS");
	v = json_parse(json, len, CD_MSG_STR_MAX, err, sizeof(err));
	free(json);
	if (!YAJL_IS_OBJECT(v))
		http_violation("worker", "JOB_PROGRESS is not a JSON object");
	p->progress(p, v);
	yajl_tree_free(v);
}

static void
http_job_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = PERMIT(permit_worker);
	struct preq	*p = arg;
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	rc = msg_recv_permit(fd, &m, CD_MSG_PAYLOAD_MAX, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_VIOLATION)
		http_violation("worker", why);
	if (rc == MSG_RECV_EOF) {
		/* A worker that ends without answering has crashed or been
		 * killed: the daemon, not the provider, failed. The broker's
		 * MSG_JOB_EXIT says why; wait a moment for it. */
		struct timeval tv = { 2, 0 };

		event_free(p->jobev);
		p->jobev = NULL;
		close(p->jobfd);
		p->jobfd = -1;
		/* After its result the worker simply exits. */
		if (p->answered)
			return;
		/* The broker's report of its end came first: now we know
		 * there was no result. */
		if (p->exit_reason != 0) {
			preq_complete(p, 503, preq_exit_sentence(p->exit_reason),
			    NULL);
			return;
		}
		p->worker_gone = 1;
		evtimer_add(p->timer, &tv);
		return;
	}
	switch (m.hdr.type) {
	case MSG_JOB_RESULT:
		/* The worker is done; closing our end lets it exit. */
		http_job_result(p, &m);
		break;
	case MSG_JOB_PROGRESS:
		http_job_progress(p, &m);
		break;
	default:
		http_violation("worker", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

/* The broker started our worker: give it the request. */
static void
http_spawn_ans(struct msg *m)
{
	struct preq	*p;
	struct msg	 j;
	uint32_t	 req, err;
	char		*sentence = NULL;
	int		 fd = -1;

	if (msg_get_u32(m, &req) == -1 || msg_get_u32(m, &err) == -1 ||
	    msg_get_str(m, &sentence, NULL) == -1 ||
	    (err == 0 && msg_get_fd(m, &fd) == -1) || msg_get_end(m) == -1)
		http_violation("broker", "malformed SPAWN_ANS");
	if ((p = preq_find(req, 0)) == NULL || p->job != 0) {
		/* The client left meanwhile: stop the worker. */
		if (fd != -1)
			close(fd);
		free(sentence);
		return;
	}
	if (err != 0) {
		metrics_flow_refused(p->connector, p->kind, err);
		preq_complete(p, err, sentence, NULL);
		free(sentence);
		return;
	}
	free(sentence);
	p->job = m->hdr.job;
	p->jobfd = fd;
	metrics_flow_start(p->job, p->connector, p->kind);
	p->jobev = event_new(http.base, fd, EV_READ | EV_PERSIST, http_job_cb,
	    p);
	if (p->jobev == NULL || event_add(p->jobev, NULL) == -1)
		fatalx("event_add");
	msg_init(&j, MSG_JOB_REQ, p->job);
	j.secret = 1;
	if (msg_put_u32(&j, p->op) == -1 || msg_put_str(&j, p->secret) == -1 ||
	    msg_put_str(&j, p->remote) == -1 || msg_send(fd, &j) == -1)
		preq_complete(p, 502, "The worker could not be reached.", NULL);
	else if (p->spawned != NULL)
		p->spawned(p);
	msg_free(&j);
}

static void
http_job_exit(struct msg *m)
{
	struct preq	*p;
	uint32_t	 reason, status;

	if (msg_get_u32(m, &reason) == -1 || msg_get_u32(m, &status) == -1 ||
	    msg_get_end(m) == -1)
		http_violation("broker", "malformed JOB_EXIT");
	metrics_flow_exit(m->hdr.job, reason);
	if ((p = preq_find(0, m->hdr.job)) == NULL) {
		session_job_exit(m->hdr.job, reason);
		metrics_flow_settle(m->hdr.job);
		return;
	}
	if (p->answered)
		return;		/* its result is being delivered */
	if (p->jobfd != -1) {
		/*
		 * The worker's channel is still open: its result may be
		 * waiting there unread, because this report, sent by the
		 * broker once it reaped the worker, can reach the front of
		 * our event loop first. Let the channel end the request: its
		 * result answers, its EOF (or, failing that, the timer)
		 * answers 503.
		 */
		struct timeval tv = { 2, 0 };

		p->exit_reason = reason ? reason : MSG_EXIT_NORMAL;
		evtimer_add(p->timer, &tv);
		return;
	}
	preq_complete(p, 503, preq_exit_sentence(reason), NULL);
}

static void http_vault_cb(evutil_socket_t, short, void *);

/* The vault went away: answer whoever waited for it. */
static void
http_vault_lost(void)
{
	struct preq *p, *tmp;

	if (http.vaultev != NULL)
		event_free(http.vaultev);
	http.vaultev = NULL;
	if (http.vaultfd != -1)
		close(http.vaultfd);
	http.vaultfd = -1;
	TAILQ_FOREACH_SAFE(p, &http.preqs, entry, tmp)
		if (p->at_vault)
			preq_complete(p, 503, "The credential vault restarted "
			    "while answering; try again.", NULL);
	/* Acknowledged writes are durable: answer those held for a push. */
	http_meta_run_waiters();
}

static void
http_vault_channel(struct msg *m)
{
	uint32_t up;
	int	 fd = -1;

	if (msg_get_u32(m, &up) == -1 || (up && msg_get_fd(m, &fd) == -1) ||
	    msg_get_end(m) == -1)
		http_violation("broker", "malformed VAULT_CHANNEL");
	http_vault_lost();
	if (!up)
		return;
	http.vaultfd = fd;
	http.vaultev = event_new(http.base, fd, EV_READ | EV_PERSIST,
	    http_vault_cb, NULL);
	if (http.vaultev == NULL || event_add(http.vaultev, NULL) == -1)
		fatalx("event_add");
}

static void
http_meta_push(struct msg *m)
{
	char		*json, err[128];
	size_t		 len;
	yajl_val	 v;

	if (msg_get_str(m, &json, &len) == -1 || msg_get_end(m) == -1)
		http_violation("vault", "malformed META_PUSH");
	v = json_parse(json, len, CD_MSG_STR_MAX, err, sizeof(err));
	free(json);
	if (!YAJL_IS_OBJECT(v))
		http_violation("vault", "META_PUSH is not a JSON object");
	if (http.meta != NULL)
		yajl_tree_free(http.meta);
	http.meta = v;
	http_meta_run_waiters();
}

static void
http_delete_ans(struct msg *m)
{
	struct preq	*p;
	uint32_t	 req, status;
	char		*sentence = NULL;

	if (msg_get_u32(m, &req) == -1 || msg_get_u32(m, &status) == -1 ||
	    msg_get_str(m, &sentence, NULL) == -1 || msg_get_end(m) == -1)
		http_violation("vault", "malformed DELETE_ANS");
	if ((p = preq_find(req, 0)) != NULL)
		preq_complete(p, status, sentence, NULL);
	free(sentence);
}

static void
http_vault_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = PERMIT(permit_vault);
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	(void)arg;
	rc = msg_recv_permit(fd, &m, CD_MSG_PAYLOAD_MAX, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_EOF) {
		http_vault_lost();
		return;
	}
	if (rc == MSG_RECV_VIOLATION)
		http_violation("vault", why);
	switch (m.hdr.type) {
	case MSG_META_PUSH:
		http_meta_push(&m);
		break;
	case MSG_DELETE_ANS:
		http_delete_ans(&m);
		break;
	default:
		http_violation("vault", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

/* The access log the broker opened (or none): lines go there from now. */
static void
http_access_log_fd(struct msg *m)
{
	struct stat	 st;
	uint32_t	 on;
	int		 fd = -1, fl;

	if (msg_get_u32(m, &on) == -1 || (on && msg_get_fd(m, &fd) == -1) ||
	    msg_get_end(m) == -1)
		http_violation("broker", "malformed ACCESS_LOG");
	if (fd != -1 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (fl = fcntl(fd, F_GETFL)) == -1 || (fl & O_ACCMODE) == O_RDONLY ||
	    !(fl & O_APPEND)))
		http_violation("broker", "ACCESS_LOG with a descriptor that is "
		    "not a file open for appending");
	http_access_set(fd);
}

/* Keys are read where they are used, so a new value holds from the next
 * request or flow on; what is in flight keeps what it started with. */
static void
http_take_config(struct msg *m)
{
	if (child_take_config(&http.ci, m) == -1)
		http_violation("broker", "malformed CONFIG");
	log_debug("configuration reloaded");
}

static void
http_ctl_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = PERMIT(permit_broker);
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	(void)arg;
	rc = msg_recv_permit(fd, &m, CD_MSG_CTL_MAX, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_EOF)
		fatalx("the broker went away");
	if (rc == MSG_RECV_VIOLATION)
		http_violation("broker", why);
	switch (m.hdr.type) {
	case MSG_SPAWN_ANS:
		http_spawn_ans(&m);
		break;
	case MSG_JOB_EXIT:
		http_job_exit(&m);
		break;
	case MSG_VAULT_CHANNEL:
		http_vault_channel(&m);
		break;
	case MSG_ACCESS_LOG:
		http_access_log_fd(&m);
		break;
	case MSG_CONFIG:
		http_take_config(&m);
		break;
	case MSG_STATS:
		if (metrics_broker_stats(&m) == -1)
			http_violation("broker", "malformed STATS");
		break;
	default:
		http_violation("broker", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

/* The evhttp server on the listening sockets the broker passed. */
static void
http_server_setup(void)
{
	if ((http.evh = evhttp_new(http.base)) == NULL)
		fatalx("evhttp_new");
	evhttp_set_max_headers_size(http.evh, CD_HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(http.evh, CD_HTTP_BODY_HARD_MAX);
	evhttp_set_timeout(http.evh, CD_HTTP_TIMEOUT_SEC);
	evhttp_set_allowed_methods(http.evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(http.evh, http_route_cb, NULL);
	for (size_t i = 0; i < http.ci.nfds; i++) {
		evutil_make_socket_nonblocking(http.ci.fds[i]);
		if (evhttp_accept_socket(http.evh, http.ci.fds[i]) == -1)
			fatalx("cannot serve listener %zu", i);
		http.ci.fds[i] = -1;
	}
}

int
main(int argc, char *argv[])
{
	struct sandbox	 sb;
	struct msg	 m;
	char		 err[512], *login;

	(void)argc;
	(void)argv;
	log_set_role("http");
	child_read_init(&http.ci);
	/* extra: the API token, and after a newline the console's sign-in
	 * link the broker printed at start (first http only). */
	if ((login = strchr(http.ci.extra, '\n')) != NULL)
		*login++ = '\0';
	if (http.ci.extra[0] != '\0' &&
	    (http.api_token = strdup(http.ci.extra)) == NULL)
		fatal("strdup");
	console_init(login);
	if (login != NULL)
		explicit_bzero(login, strlen(login));
	http.vaultfd = -1;
	metrics_init();
	TAILQ_INIT(&http.preqs);
	session_init();
	signal(SIGPIPE, SIG_IGN);
	memset(&sb, 0, sizeof(sb));
	sb.role = SANDBOX_HTTP;
	sb.chroot_dir = CHILD_HTTP_CHROOT;
	sb.change_ids = http.ci.change_ids;
	sb.uid = http.ci.uid;
	sb.gid = http.ci.gid;
	sb.nofile = CD_RLIMIT_NOFILE;
	if ((http.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (sandbox_enter(&sb, err, sizeof(err)) == -1)
		fatalx("%s", err);
	child_stop_on_term(http.base);
	http_server_setup();
	http.ctlev = event_new(http.base, CHILD_CTL_FD, EV_READ | EV_PERSIST,
	    http_ctl_cb, NULL);
	if (http.ctlev == NULL || event_add(http.ctlev, NULL) == -1)
		fatalx("event_add");
	msg_init(&m, MSG_READY, 0);
	if (msg_send(CHILD_CTL_FD, &m) == -1)
		fatal("cannot tell the broker we are ready");
	msg_free(&m);
	event_base_dispatch(http.base);
	return 0;
}
