/*
 * The GitHub device flow routes (api.md "GitHub", cli/start, poll, cancel): start a worker
 * that runs gh, answer with the code gh printed, then let clients poll
 * the session and cancel it. Flows are independent (no shared lock) and
 * bounded in number by gh_flows_max.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "json.h"
#include "log.h"

/* The code and URL are shown to a person: check their shape. */
static int
gh_progress_ok(yajl_val v)
{
	const char	*code = json_obj_str(v, "user_code");
	const char	*uri = json_obj_str(v, "verification_uri");
	yajl_val	 exp = json_obj_get(v, "expires_in");

	return code != NULL && strlen(code) <= 16 && uri != NULL &&
	    strncmp(uri, "https://", 8) == 0 && strlen(uri) < 512 &&
	    YAJL_IS_INTEGER(exp) && exp->u.number.i > 0;
}

static void
gh_start_progress(struct preq *p, yajl_val v)
{
	struct evhttp_request	*req = p->req;
	struct session		*s;
	yajl_gen		 g;

	if (!gh_progress_ok(v))
		fatalx("protocol violation by worker: malformed device code");
	if ((s = preq_to_session(p, "gh-cli-")) == NULL) {
		http_error(req, 503, "The daemon is out of memory.");
		return;
	}
	if ((s->info = json_copy(v)) == NULL)
		fatalx("out of memory");
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "session_id", s->id);
	json_gen_kstr(g, "user_code", json_obj_str(v, "user_code"));
	json_gen_kstr(g, "verification_uri", json_obj_str(v,
	    "verification_uri"));
	json_gen_kint(g, "expires_in", json_obj_get(v, "expires_in")->u.number.i);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

void
http_gh_start(struct evhttp_request *req)
{
	struct preq	*p;
	unsigned int	 max = http.ci.conf.gh_flows_max;

	if (session_count_active("github") >= max) {
		http_error(req, 409, "%u GitHub device flows are already in "
		    "progress; finish or cancel one first.", max);
		return;
	}
	if ((p = preq_new(req, "github", http_fail_done)) == NULL)
		return;
	p->progress = gh_start_progress;
	preq_spawn(p, "ghdevice", "", JOB_OP_DEVICE, NULL);
}

void
http_gh_poll(struct evhttp_request *req)
{
	struct session	*s;
	yajl_gen	 g;

	if ((s = session_from_body(req, "github")) == NULL)
		return;
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "status", s->status);
	if (s->error != NULL)
		json_gen_kstr(g, "error", s->error);
	if (s->user != NULL) {
		json_gen_str(g, "user");
		json_gen_val(g, s->user);
	}
	if (strcmp(s->status, "pending") == 0 && s->info != NULL) {
		json_gen_kstr(g, "user_code", json_obj_str(s->info,
		    "user_code"));
		json_gen_kstr(g, "verification_uri", json_obj_str(s->info,
		    "verification_uri"));
	}
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

void
http_gh_cancel(struct evhttp_request *req)
{
	struct session *s;

	if ((s = session_from_body(req, "github")) == NULL)
		return;
	session_free(s, 1);
	http_reply(req, 200, "{\"ok\":true}");
}
