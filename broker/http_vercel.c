/*
 * Vercel OAuth (api.md "Vercel"): oauth/start asks for a worker that makes
 * the state and the PKCE verifier; GET /callback (public) and POST
 * oauth/exchange hand the code back to that worker. Each state is
 * single-use, compared in constant time, lives session_ttl seconds, and
 * pending flows are bounded (the oldest is dropped). The redirect URI
 * comes from the configuration only; a caller's redirect_uri is ignored.
 *
 * The callback page is the one place that answers HTML: every value it
 * shows is HTML-escaped, it carries a Content-Security-Policy that allows
 * only its own nonce'd script, and that script posts a message only to
 * the configured ui_origin (without one there is no script at all).
 */
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "ctcmp.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "paste.h"
#include "route.h"

/*
 * Keep pending flows under vercel_pending_max: drop the oldest. Checked
 * when a start arrives (so that its worker has room) and again when its
 * session is made, since starts in flight are not sessions yet: without
 * the second check, concurrent starts each saw room and overshot.
 */
static void
vc_bound_pending(void)
{
	struct session	*s, *oldest = NULL;
	size_t		 n = 0;

	TAILQ_FOREACH(s, &http.sessions, entry) {
		if (strcmp(s->connector, "vercel") != 0)
			continue;
		if (oldest == NULL)
			oldest = s;
		n++;
	}
	if (oldest != NULL && n >= http.ci.conf.vercel_pending_max)
		session_free(oldest, 1);
}

static void
vc_start_progress(struct preq *p, yajl_val v)
{
	struct evhttp_request	*req = p->req;
	struct session		*s;
	const char		*url = json_obj_str(v, "authorize_url");
	const char		*state = json_obj_str(v, "state");
	const char		*vid = json_obj_str(v, "code_verifier_id");
	yajl_gen		 g;

	if (url == NULL || strncmp(url, "http", 4) != 0 || state == NULL ||
	    strlen(state) < 32 || vid == NULL)
		fatalx("protocol violation by worker: malformed OAuth start");
	vc_bound_pending();
	if ((s = preq_to_session(p, "vercel-")) == NULL) {
		http_error(req, 503, "The daemon is out of memory.");
		return;
	}
	if ((s->info = json_copy(v)) == NULL)
		fatalx("out of memory");
	snprintf(s->status, sizeof(s->status), "awaiting_oauth");
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "authorize_url", url);
	json_gen_kstr(g, "state", state);
	json_gen_kstr(g, "code_verifier_id", vid);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

void
http_vc_start(struct evhttp_request *req)
{
	struct preq *p;

	vc_bound_pending();
	if ((p = preq_new(req, "vercel", http_fail_done)) == NULL)
		return;
	p->progress = vc_start_progress;
	preq_spawn(p, "oauth", "", JOB_OP_OAUTH, NULL);
}

/* The pending flow whose state this is (constant-time comparisons). */
static struct session *
vc_find_state(const char *state)
{
	struct session	*s, *found = NULL;

	TAILQ_FOREACH(s, &http.sessions, entry) {
		const char *st = json_obj_str(s->info, "state");

		if (strcmp(s->connector, "vercel") == 0 && st != NULL &&
		    ct_streq(state, st))
			found = s;
	}
	return found;
}

/* Escape s for HTML text or a quoted attribute into the buffer. */
static void
vc_html_escape(struct evbuffer *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '&': evbuffer_add_printf(b, "&amp;"); break;
		case '<': evbuffer_add_printf(b, "&lt;"); break;
		case '>': evbuffer_add_printf(b, "&gt;"); break;
		case '"': evbuffer_add_printf(b, "&quot;"); break;
		case '\'': evbuffer_add_printf(b, "&#39;"); break;
		default:
			evbuffer_add(b, s, 1);
		}
	}
}

/* JSON that is safe inside <script>: no <, >, & left as themselves. */
static void
vc_script_json(struct evbuffer *b, const char *json)
{
	for (; *json != '\0'; json++) {
		if (*json == '<')
			evbuffer_add_printf(b, "\\u003c");
		else if (*json == '>')
			evbuffer_add_printf(b, "\\u003e");
		else if (*json == '&')
			evbuffer_add_printf(b, "\\u0026");
		else
			evbuffer_add(b, json, 1);
	}
}

/* The message for the opener: {"type", "username"|"error"}. */
static char *
vc_message(int ok, const char *text)
{
	yajl_gen	 g;
	char		*out;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "type", ok ? "vercel_oauth_success" :
	    "vercel_oauth_error");
	json_gen_kstr(g, ok ? "username" : "error", text ? text : "");
	yajl_gen_map_close(g);
	out = json_gen_take(g, NULL);
	yajl_gen_free(g);
	return out;
}

/* Post the message to the configured UI origin, and nowhere else. */
static void
vc_page_script(struct evbuffer *b, const char *nonce, const char *msg)
{
	const char	*origin = http.ci.conf.ui_origin;
	yajl_gen	 g;
	char		*o;

	if (origin == NULL || msg == NULL)
		return;
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	json_gen_str(g, origin);
	o = json_gen_take(g, NULL);
	yajl_gen_free(g);
	evbuffer_add_printf(b, "<script type=\"application/json\" id=\"m\">");
	vc_script_json(b, msg);
	evbuffer_add_printf(b, "</script>\n<script nonce=\"%s\">try{var m="
	    "JSON.parse(document.getElementById('m').textContent);if("
	    "window.opener){window.opener.postMessage(m,", nonce);
	vc_script_json(b, o ? o : "\"\"");
	evbuffer_add_printf(b, ");}}catch(e){}</script>\n");
	free(o);
}

/* The callback's page: escaped text, strict CSP, nonce'd script. */
static void
vc_page(struct evhttp_request *req, int code, const char *title,
    const char *text, const char *msg)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b = evbuffer_new();
	unsigned char		 r[16];
	char			 nonce[40], csp[200];

	if (b == NULL || getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatalx("cannot build the callback page");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(nonce + 2 * i, 3, "%02x", r[i]);
	snprintf(csp, sizeof(csp), "default-src 'none'; script-src "
	    "'nonce-%s'; base-uri 'none'; form-action 'none'; "
	    "frame-ancestors 'none'", nonce);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Content-Security-Policy", csp);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evbuffer_add_printf(b, "<!doctype html>\n<html><head><meta charset="
	    "\"utf-8\"><title>");
	vc_html_escape(b, title);
	evbuffer_add_printf(b, "</title></head>\n<body><h1>");
	vc_html_escape(b, title);
	evbuffer_add_printf(b, "</h1>\n<p>");
	vc_html_escape(b, text);
	evbuffer_add_printf(b, "</p>\n");
	vc_page_script(b, nonce, msg);
	evbuffer_add_printf(b, "</body></html>\n");
	http_access_log(req, code);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Bad Request", b);
	evbuffer_free(b);
}

static void
vc_done_html(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	const char	*who = json_obj_str(ident, "name");
	char		 text[600], *msg;

	if (who == NULL || *who == '\0')
		who = json_obj_str(ident, "username");
	if (status == 200) {
		snprintf(text, sizeof(text), "Signed in as %s. You can close "
		    "this window.", who ? who : "your Vercel account");
		msg = vc_message(1, json_obj_str(ident, "username"));
		vc_page(p->req, 200, "Vercel connected", text, msg);
	} else {
		msg = vc_message(0, sentence);
		vc_page(p->req, status == 422 || status == 400 ? 400 : 502,
		    "Vercel authorization failed", sentence, msg);
	}
	free(msg);
}

static void
vc_done_json(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	yajl_gen	 g;

	if (status != 200) {
		http_error(p->req, (int)status, "%s", sentence && *sentence ?
		    sentence : "The exchange failed; start again.");
		return;
	}
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kbool(g, "ok", 1);
	json_gen_str(g, "user");
	if (ident != NULL)
		json_gen_val(g, ident);
	else
		yajl_gen_map_open(g), yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	http_reply_gen(p->req, 200, g);
}

/* Hand the code to the flow that owns state; the answer comes later.
 * Returns a sentence for a 400, or NULL when handed over. */
static const char *
vc_handover(struct evhttp_request *req, const char *code, const char *state,
    int html)
{
	struct session	*s;
	struct preq	*p;
	struct paste	 check;
	char		 err[128];

	if (state == NULL || *state == '\0' || (s = vc_find_state(state)) ==
	    NULL)
		return "The authorization link expired or was already used; "
		    "start again.";
	if (s->submitted || s->job == 0)
		return "This authorization was already completed or failed; "
		    "start again.";
	if (code == NULL || paste_parse(code, &check, err, sizeof(err)) == -1 ||
	    check.is_url) {
		session_free(s, 1);
		return "The callback carries no usable code; start again.";
	}
	if ((p = preq_new(req, "vercel", html ? vc_done_html :
	    vc_done_json)) == NULL)
		return NULL;	/* answered (503) */
	p->html = html;
	p->owner = s;
	s->waiter = p;
	if (session_submit(s, check.code, json_obj_str(s->info, "state")))
		preq_complete_public(p, 503, "The flow's worker is gone; "
		    "start again.", NULL);
	explicit_bzero(&check, sizeof(check));
	return NULL;
}

void
http_vc_callback(struct evhttp_request *req)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	struct route_callback	 cb;
	const char		*why;
	struct session		*s;

	if (route_callback_parse(uri ? evhttp_uri_get_query(uri) : NULL,
	    &cb) == -1) {
		route_callback_clear(&cb);
		vc_page(req, 400, "Vercel authorization failed", "The callback "
		    "has no code or state; start again.", NULL);
		return;
	}
	if (cb.error != NULL) {
		/* A refusal ends the flow it names; the text is shown
		 * escaped, never trusted. */
		if (cb.state != NULL && (s = vc_find_state(cb.state)) != NULL)
			session_free(s, 1);
		vc_page(req, 400, "Vercel authorization failed",
		    cb.error_description ? cb.error_description : cb.error,
		    NULL);
	} else if ((why = vc_handover(req, cb.code, cb.state, 1)) != NULL)
		vc_page(req, 400, "Vercel authorization failed", why, NULL);
	route_callback_clear(&cb);
}

void
http_vc_exchange(struct evhttp_request *req)
{
	yajl_val	 body;
	const char	*why;

	if ((body = http_body_json(req)) == NULL)
		return;
	if (json_obj_str(body, "code") == NULL ||
	    json_obj_str(body, "state") == NULL)
		http_error(req, 400, "The body needs \"code\" and \"state\" "
		    "strings.");
	else if ((why = vc_handover(req, json_obj_str(body, "code"),
	    json_obj_str(body, "state"), 0)) != NULL)
		http_error(req, 400, "%s", why);
	json_free_secret(body);
}
