/*
 * Google Drive (gdrive) and OneDrive (onedrive), api.md's first section:
 * list and delete remotes from the metadata the vault reads out of
 * rclone.conf, and run the OAuth flow as a session: 202 at once, the
 * provider URL once the worker has it, the pasted redirect checked here
 * (state compared in constant time) before it reaches the worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctcmp.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "paste.h"

/* rclone's backend type for each connector. */
static const char *
rc_type(const char *c)
{
	if (strcmp(c, "gdrive") == 0)
		return "drive";
	if (strcmp(c, "onedrive") == 0)
		return "onedrive";
	return NULL;
}

int
http_rclone_connector(const char *name)
{
	return rc_type(name) != NULL;
}

/* A remote name must fully match [a-z0-9_-]{1,32}. */
static int
rc_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len < 1 || len > 32)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' &&
		    n[i] <= '9') || n[i] == '_' || n[i] == '-'))
			return 0;
	return 1;
}

/* The vault's list of remotes; answers 500/503 itself when unusable. */
static yajl_val
rc_remotes(struct evhttp_request *req)
{
	const char	*e;
	yajl_val	 r;

	if (http.meta == NULL) {
		http_error(req, 503, "The credential vault is not available "
		    "yet; try again in a few seconds.");
		return NULL;
	}
	if ((e = json_obj_str(http.meta, "rclone_error")) != NULL) {
		http_error(req, 500, "%s", e);
		return NULL;
	}
	r = json_obj_get(http.meta, "remotes");
	return YAJL_IS_ARRAY(r) ? r : NULL;
}

/* The type of remote name, or NULL if there is none. */
static const char *
rc_remote_type(yajl_val remotes, const char *name)
{
	for (size_t i = 0; remotes && i < remotes->u.array.len; i++) {
		yajl_val r = remotes->u.array.values[i];
		const char *n = json_obj_str(r, "name");

		if (n != NULL && strcmp(n, name) == 0) {
			const char *t = json_obj_str(r, "type");

			return t ? t : "";
		}
	}
	return NULL;
}

void
http_rc_list(struct evhttp_request *req, const char *c)
{
	yajl_val	 remotes;
	yajl_gen	 g;

	if (http.meta == NULL || json_obj_str(http.meta, "rclone_error")) {
		(void)rc_remotes(req);
		return;
	}
	remotes = rc_remotes(req);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_str(g, "remotes");
	yajl_gen_array_open(g);
	for (size_t i = 0; remotes && i < remotes->u.array.len; i++) {
		yajl_val r = remotes->u.array.values[i];
		const char *t = json_obj_str(r, "type");

		if (t == NULL || strcmp(t, rc_type(c)) != 0)
			continue;
		yajl_gen_map_open(g);
		json_gen_kstr(g, "name", json_obj_str(r, "name"));
		json_gen_kstr(g, "type", t);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

/* The session exists: answer 202 now; the flow goes on. */
static void
rc_spawned(struct preq *p)
{
	struct evhttp_request	*req = p->req;
	struct session		*s;
	char			 out[160];

	if ((s = preq_to_session(p, strcmp(p->connector, "gdrive") == 0 ?
	    "gdrive-" : "onedrive-")) == NULL) {
		http_error(req, 503, "The daemon is out of memory.");
		return;
	}
	snprintf(out, sizeof(out), "{\"session_id\":\"%s\",\"status\":"
	    "\"pending\"}", s->id);
	http_reply(req, 202, out);
}

/* Name checks against what exists: 400 or 409, answered here. */
static int
rc_add_refused(struct evhttp_request *req, const char *c, const char *name,
    yajl_val force)
{
	yajl_val	 remotes;
	const char	*type;

	if (force != NULL && !YAJL_IS_TRUE(force) && !YAJL_IS_FALSE(force)) {
		http_error(req, 400, "\"force\" must be true or false.");
		return 1;
	}
	if (http.meta == NULL || json_obj_str(http.meta, "rclone_error")) {
		(void)rc_remotes(req);
		return 1;
	}
	remotes = rc_remotes(req);
	if ((type = rc_remote_type(remotes, name)) == NULL)
		return 0;
	if (strcmp(type, rc_type(c)) != 0) {
		http_error(req, 409, "The remote name '%s' is already used by a "
		    "remote of type '%s'; choose another name.", name, type);
		return 1;
	}
	if (!YAJL_IS_TRUE(force)) {
		http_error(req, 409, "A remote named '%s' already exists; send "
		    "\"force\": true to authorise it again.", name);
		return 1;
	}
	return 0;
}

void
http_rc_add(struct evhttp_request *req, const char *c)
{
	yajl_val	 body;
	const char	*name;
	struct preq	*p;

	if ((body = http_body_json(req)) == NULL)
		return;
	name = json_obj_str(body, "name");
	if (name == NULL || !rc_name_ok(name)) {
		http_error(req, 400, "The remote name must be 1 to 32 "
		    "characters: lowercase letters, digits, '_' or '-'.");
		goto out;
	}
	if (rc_add_refused(req, c, name, json_obj_get(body, "force")))
		goto out;
	if ((p = preq_new(req, c, http_fail_done)) == NULL)
		goto out;
	p->spawned = rc_spawned;
	preq_spawn(p, "rclone", name, JOB_OP_RCLONE, NULL);
out:
	yajl_tree_free(body);
}

static void
rc_delete_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	(void)ident;
	if (status == 200 || status == 204)
		http_reply_empty(p->req, 204);
	else
		http_error(p->req, (int)status, "%s", sentence && *sentence ?
		    sentence : "The remote could not be deleted.");
}

void
http_rc_delete(struct evhttp_request *req, const char *c, const char *name)
{
	yajl_val	 remotes;
	const char	*type;
	struct preq	*p;

	if (!rc_name_ok(name)) {
		http_error(req, 400, "The remote name must be 1 to 32 "
		    "characters: lowercase letters, digits, '_' or '-'.");
		return;
	}
	if (http.meta == NULL || json_obj_str(http.meta, "rclone_error")) {
		(void)rc_remotes(req);
		return;
	}
	remotes = rc_remotes(req);
	type = rc_remote_type(remotes, name);
	if (type == NULL || strcmp(type, rc_type(c)) != 0) {
		http_error(req, 404, "There is no %s remote named '%s'.",
		    c, name);
		return;
	}
	if ((p = preq_new(req, c, rc_delete_done)) != NULL)
		preq_vault_delete(p, name);
}

static struct session *
rc_session(struct evhttp_request *req, const char *c, const char *id)
{
	struct session *s = session_find(c, id);

	if (s == NULL)
		http_error(req, 404, "Unknown or expired session; start a new "
		    "one.");
	return s;
}

void
http_rc_session(struct evhttp_request *req, const char *c, const char *id)
{
	struct session	*s;
	yajl_gen	 g;

	if ((s = rc_session(req, c, id)) == NULL)
		return;
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "status", s->status);
	json_gen_kstr(g, "auth_url", json_obj_str(s->info, "auth_url"));
	json_gen_kbool(g, "needs_manual_code", 1);
	json_gen_kstr(g, "remote_name", s->remote);
	json_gen_kstr(g, "error", s->error);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

void
http_rc_submit(struct evhttp_request *req, const char *c, const char *id)
{
	struct session	*s;
	struct paste	 paste;
	yajl_val	 body;
	const char	*code, *state;
	char		 err[256];

	if ((s = rc_session(req, c, id)) == NULL ||
	    (body = http_body_json(req)) == NULL)
		return;
	code = json_obj_str(body, "code");
	state = json_obj_str(s->info, "state");
	if (strcmp(s->status, "awaiting_oauth") != 0 || s->submitted)
		http_error(req, 409, "This session is not waiting for a code "
		    "(it is %s%s).", s->status, s->submitted ?
		    ", and a code was already submitted" : "");
	else if (code == NULL)
		http_error(req, 400, "The body needs a \"code\" string: the "
		    "redirect URL or the code.");
	else if (paste_parse(code, &paste, err, sizeof(err)) == -1)
		http_error(req, 400, "%s", err);
	else if (paste.is_url && !paste.has_state)
		http_error(req, 400, "The pasted URL has no state; paste the "
		    "whole URL from the browser's address bar.");
	else if (paste.has_state && !ct_streq(paste.state, state))
		http_error(req, 400, "The pasted URL belongs to another "
		    "authorization (its state does not match this session); "
		    "paste the URL this session's link led to.");
	else if (session_submit(s, paste.code, state) == -1)
		http_error(req, 503, "The flow's worker is gone; start again.");
	else
		http_reply(req, 200, "{\"ok\":true}");
	explicit_bzero(&paste, sizeof(paste));
	json_free_secret(body);
}

static void
rc_cancel_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	(void)status;
	(void)sentence;
	(void)ident;
	http_reply(p->req, 200, "{\"ok\":true}");
}

/* Cancel answers once the worker and rclone are gone and the lock is
 * free, so that a new flow may start right after the answer. */
void
http_rc_cancel(struct evhttp_request *req, const char *c, const char *id)
{
	struct session	*s;
	struct preq	*p;
	struct msg	 m;

	if ((s = rc_session(req, c, id)) == NULL)
		return;
	if (s->job == 0) {
		session_free(s, 1);
		http_reply(req, 200, "{\"ok\":true}");
		return;
	}
	if ((p = preq_new(req, c, rc_cancel_done)) == NULL) {
		session_free(s, 1);	/* preq_new answered 503 */
		return;
	}
	p->owner = s;
	s->waiter = p;
	s->cancelling = 1;
	msg_init(&m, MSG_JOB_CANCEL, s->job);
	if (msg_send(CHILD_CTL_FD, &m) == -1)
		log_warn("cannot cancel job %u", s->job);
	msg_free(&m);
}
