/*
 * Sessions: flows that outlive the request that started them, polled by
 * an unguessable id. A session owns its worker's channel; the worker
 * reports progress (the device code) and one result, and the broker
 * reports the worker's end. A session lives session_ttl seconds from its
 * creation; after that, or after a cancel, its id answers 404.
 *
 * The GitHub device flow (api.md "GitHub", cli/start, poll, cancel) is the first user.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cd_limits.h"
#include "http.h"
#include "json.h"
#include "log.h"

void
session_init(void)
{
	TAILQ_INIT(&http.sessions);
}

/* "<prefix>" + 32 hex digits of 128 random bits. */
static int
session_make_id(char *id, size_t len, const char *prefix)
{
	unsigned char	 r[16];
	size_t		 n;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	n = (size_t)snprintf(id, len, "%s", prefix);
	for (size_t i = 0; i < sizeof(r) && n + 2 < len; i++, n += 2)
		snprintf(id + n, len - n, "%02x", r[i]);
	explicit_bzero(r, sizeof(r));
	return 0;
}

static int
session_terminal(const struct session *s)
{
	return strcmp(s->status, "pending") != 0 &&
	    strcmp(s->status, "awaiting_oauth") != 0;
}

static void
session_set(struct session *s, const char *status, const char *error)
{
	snprintf(s->status, sizeof(s->status), "%s", status);
	free(s->error);
	s->error = error != NULL ? strdup(error) : NULL;
}

static void
session_close_job(struct session *s)
{
	if (s->jobev != NULL)
		event_free(s->jobev);
	s->jobev = NULL;
	if (s->jobfd != -1)
		close(s->jobfd);
	s->jobfd = -1;
}

void
session_free(struct session *s, int cancel)
{
	struct msg m;

	if (s->waiter != NULL) {
		struct preq *w = s->waiter;

		s->waiter = NULL;
		w->owner = NULL;
		preq_complete_public(w, 503, "The flow ended before it "
		    "completed; start again.", NULL);
	}
	if (cancel && s->job != 0) {
		msg_init(&m, MSG_JOB_CANCEL, s->job);
		if (msg_send(CHILD_CTL_FD, &m) == -1)
			log_warn("cannot cancel job %u", s->job);
		msg_free(&m);
	}
	session_close_job(s);
	if (s->expiry != NULL)
		event_free(s->expiry);
	if (s->info != NULL)
		yajl_tree_free(s->info);
	if (s->user != NULL)
		yajl_tree_free(s->user);
	free(s->error);
	free(s->held_sentence);
	TAILQ_REMOVE(&http.sessions, s, entry);
	free(s);
}

/* A worker's result, in the words of the flow's states. */
static void
session_result(struct session *s, uint32_t status, const char *sentence,
    yajl_val ident)
{
	if (s->rclone) {
		session_set(s, status == 200 ? "completed" : "error",
		    status == 200 ? NULL : sentence);
		return;
	}
	if (status == 200) {
		session_set(s, "approved", NULL);
		if (ident != NULL && (s->user = json_copy(ident)) == NULL)
			fatalx("out of memory");
	} else if (status == 403)
		session_set(s, "denied", sentence);
	else if (status == 410)
		session_set(s, "expired", sentence);
	else
		session_set(s, "error", sentence);
}

/* rclone flows report their provider URL once; anything else is
 * hostile. */
static void
session_progress(struct session *s, struct msg *m)
{
	char		*json, err[128];
	size_t		 len;
	yajl_val	 v;
	const char	*url, *state, *st;

	if (!s->rclone || strcmp(s->status, "pending") != 0 || s->info != NULL)
		fatalx("protocol violation by worker: unexpected JOB_PROGRESS");
	if (msg_get_str(m, &json, &len) == -1 || msg_get_end(m) == -1)
		fatalx("protocol violation by worker: malformed JOB_PROGRESS");
	v = json_parse(json, len, CD_MSG_STR_MAX, err, sizeof(err));
	free(json);
	url = json_obj_str(v, "auth_url");
	state = json_obj_str(v, "state");
	st = json_obj_str(v, "status");
	if (url == NULL || strncmp(url, "https://", 8) != 0 || state == NULL ||
	    *state == '\0' || st == NULL || strcmp(st, "awaiting_oauth") != 0)
		fatalx("protocol violation by worker: malformed progress");
	s->info = v;
	session_set(s, "awaiting_oauth", NULL);
}

#define SESSION_FREED 2	/* beside the MSG_RECV_* outcomes */

/* Handle one message from the flow's worker. 1 if it freed s. */
static int
session_job_msg(struct session *s, struct msg *m)
{
	uint32_t	 status;
	char		*a = NULL, *b = NULL, err[128];
	size_t		 blen = 0;
	yajl_val	 v = NULL;

	if (m->hdr.type == MSG_JOB_RESULT) {
		if (msg_get_u32(m, &status) == -1 ||
		    msg_get_str(m, &a, NULL) == -1 ||
		    msg_get_str(m, &b, &blen) == -1 || msg_get_end(m) == -1 ||
		    status < 200 || status > 599 || (blen > 0 &&
		    !YAJL_IS_OBJECT(v = json_parse(b, blen, CD_MSG_STR_MAX,
		    err, sizeof(err)))))
			fatalx("protocol violation by worker: bad JOB_RESULT");
		metrics_flow_result(s->flow, status);
		if (s->rclone && s->job != 0) {
			s->held = 1;
			s->held_code = status;
			s->held_sentence = a;
			a = NULL;
		} else
			session_result(s, status, a, v);
		session_close_job(s);
		if (s->waiter != NULL) {
			struct preq *w = s->waiter;

			/* A Vercel flow ends with its answer: its state is
			 * single-use. */
			s->waiter = NULL;
			w->owner = NULL;
			preq_complete_public(w, status, a, v);
			if (v != NULL)
				yajl_tree_free(v);
			free(a);
			free(b);
			session_free(s, 0);
			return 1;
		}
	} else
		session_progress(s, m);
	if (v != NULL)
		yajl_tree_free(v);
	free(a);
	free(b);
	return 0;
}

/* Read one message from the flow's worker: MSG_RECV_AGAIN when there is
 * none, MSG_RECV_EOF at its end (channel closed), SESSION_FREED if
 * handling it freed the session, else MSG_RECV_OK. */
static int
session_job_read(struct session *s)
{
	static const uint16_t types[] = { MSG_JOB_PROGRESS, MSG_JOB_RESULT };
	static const struct msg_permit permit = { types, 2 };
	struct msg	 m;
	const char	*why;
	int		 rc, freed;

	rc = msg_recv_permit(s->jobfd, &m, CD_MSG_PAYLOAD_MAX, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return rc;
	if (rc == MSG_RECV_VIOLATION)
		fatalx("protocol violation by worker: %s", why);
	if (rc == MSG_RECV_EOF) {
		/* Its end comes from the broker (MSG_JOB_EXIT). */
		session_close_job(s);
		return rc;
	}
	freed = session_job_msg(s, &m);
	msg_free(&m);
	return freed ? SESSION_FREED : MSG_RECV_OK;
}

static void
session_job_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	session_job_read(arg);
}

static void
session_expiry_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	session_free(arg, 1);
}

struct session *
session_new(struct preq *p, const char *prefix)
{
	struct session	*s;
	struct timeval	 tv = { http.ci.conf.session_ttl, 0 };

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if (session_make_id(s->id, sizeof(s->id), prefix) == -1) {
		free(s);
		return NULL;
	}
	snprintf(s->connector, sizeof(s->connector), "%s", p->connector);
	snprintf(s->remote, sizeof(s->remote), "%s", p->remote);
	s->rclone = http_rclone_connector(p->connector);
	snprintf(s->status, sizeof(s->status), "pending");
	s->job = p->job;
	s->flow = p->job;
	s->jobfd = p->jobfd;
	s->jobev = event_new(http.base, s->jobfd, EV_READ | EV_PERSIST,
	    session_job_cb, s);
	s->expiry = evtimer_new(http.base, session_expiry_cb, s);
	if (s->jobev == NULL || s->expiry == NULL ||
	    event_add(s->jobev, NULL) == -1 || evtimer_add(s->expiry, &tv))
		fatalx("event_add");
	TAILQ_INSERT_TAIL(&http.sessions, s, entry);
	return s;
}

void
session_job_exit(uint32_t job, uint32_t reason)
{
	struct session *s;

	TAILQ_FOREACH(s, &http.sessions, entry) {
		if (s->job != job)
			continue;
		s->job = 0;
		/* The broker's report can overtake the worker's last message
		 * (both channels ready in one pass of the loop): read what the
		 * worker left before closing its channel. */
		while (s->jobfd != -1) {
			int rc = session_job_read(s);

			if (rc == SESSION_FREED)
				return;
			if (rc != MSG_RECV_OK)
				break;
		}
		session_close_job(s);
		if (s->cancelling) {
			/* The worker and its tool are gone and the lock is
			 * free: now the cancel is answered. */
			struct preq *w = s->waiter;

			s->waiter = NULL;
			if (w != NULL) {
				w->owner = NULL;
				preq_complete_public(w, 200, "", NULL);
			}
			session_free(s, 0);
			return;
		}
		if (s->held) {
			s->held = 0;
			session_result(s, s->held_code, s->held_sentence, NULL);
			free(s->held_sentence);
			s->held_sentence = NULL;
			return;
		}
		if (s->waiter != NULL) {
			/* A request waits on this worker (a Vercel exchange
			 * or callback) and it ended without a result: answer
			 * in a moment (a result still in its channel goes
			 * first), not at the request's own timeout. */
			struct timeval tv = { 2, 0 };

			s->waiter->worker_gone = 1;
			evtimer_add(s->waiter->timer, &tv);
		}
		if (session_terminal(s))
			return;
		if (reason == MSG_EXIT_DEADLINE)
			session_set(s, "expired", "The session expired before "
			    "the flow completed; start again.");
		else
			session_set(s, "error", "The worker ended before the "
			    "flow completed; see the daemon's log.");
		return;
	}
}

size_t
session_count_active(const char *connector)
{
	struct session	*s;
	size_t		 n = 0;

	TAILQ_FOREACH(s, &http.sessions, entry)
		if (strcmp(s->connector, connector) == 0 && !session_terminal(s))
			n++;
	return n;
}

struct session *
session_from_body(struct evhttp_request *req, const char *connector)
{
	struct session	*found;
	yajl_val	 body;
	const char	*id;

	if ((body = http_body_json(req)) == NULL)
		return NULL;
	if ((id = json_obj_str(body, "session_id")) == NULL || *id == '\0') {
		http_error(req, 400, "The body needs a \"session_id\" string.");
		yajl_tree_free(body);
		return NULL;
	}
	found = session_find(connector, id);
	yajl_tree_free(body);
	if (found == NULL)
		http_error(req, 404, "Unknown or expired session; start a new "
		    "one.");
	return found;
}

struct session *
session_find(const char *connector, const char *id)
{
	struct session *s;

	TAILQ_FOREACH(s, &http.sessions, entry)
		if (strcmp(s->connector, connector) == 0 &&
		    strcmp(s->id, id) == 0 && !s->cancelling)
			return s;
	return NULL;
}

int
session_submit(struct session *s, const char *code, const char *state)
{
	struct msg	 m;
	int		 rc;

	if (s->jobfd == -1)
		return -1;
	msg_init(&m, MSG_JOB_REQ, s->job);
	m.secret = 1;
	rc = msg_put_u32(&m, JOB_OP_SUBMIT) == -1 ||
	    msg_put_str(&m, code) == -1 || msg_put_str(&m, state) == -1 ||
	    msg_send(s->jobfd, &m) == -1 ? -1 : 0;
	msg_free(&m);
	if (rc == 0)
		s->submitted = 1;
	return rc;
}
