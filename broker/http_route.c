/*
 * Routing, authentication and answers of the http role. The route table
 * and the matching are lib/route.c; a path that matches a pattern with
 * another method gets 405 and an Allow header, a path that matches none
 * gets 404. Every answer is JSON (an error is {"error": "<sentence>"}),
 * and the access log names the method, the path without its query
 * string, the status and the time taken, never a header or a body: in
 * the access log file when one is configured (http_access.c), else in the
 * daemon log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cd_limits.h"
#include "ctcmp.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "route.h"

/* A handler gets the request and the path's wildcard segments. */
static void route_healthz(struct evhttp_request *, char **);
static void route_connectors(struct evhttp_request *, char **);
static void route_token(struct evhttp_request *, char **);
static void route_status(struct evhttp_request *, char **);
static void route_disconnect(struct evhttp_request *, char **);
static void route_reconnect(struct evhttp_request *, char **);
static void route_rc_list(struct evhttp_request *, char **);
static void route_rc_add(struct evhttp_request *, char **);
static void route_rc_delete(struct evhttp_request *, char **);
static void route_rc_session(struct evhttp_request *, char **);
static void route_rc_submit(struct evhttp_request *, char **);
static void route_rc_cancel(struct evhttp_request *, char **);
static void route_gh_start(struct evhttp_request *, char **);
static void route_prm(struct evhttp_request *, char **);
static void route_vc_start(struct evhttp_request *, char **);
static void route_vc_exchange(struct evhttp_request *, char **);
static void route_vc_callback(struct evhttp_request *, char **);
static void route_gh_poll(struct evhttp_request *, char **);
static void route_gh_cancel(struct evhttp_request *, char **);
static void route_console_asset(struct evhttp_request *, char **);
static void route_metrics(struct evhttp_request *, char **);

/* The router's name for libevent's method. */
static enum route_method
http_method(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return ROUTE_GET;
	case EVHTTP_REQ_POST: return ROUTE_POST;
	case EVHTTP_REQ_HEAD: return ROUTE_HEAD;
	case EVHTTP_REQ_PUT: return ROUTE_PUT;
	case EVHTTP_REQ_DELETE: return ROUTE_DELETE;
	case EVHTTP_REQ_OPTIONS: return ROUTE_OPTIONS;
	case EVHTTP_REQ_TRACE: return ROUTE_TRACE;
	case EVHTTP_REQ_CONNECT: return ROUTE_CONNECT;
	case EVHTTP_REQ_PATCH: return ROUTE_PATCH;
	}
	return ROUTE_OTHER;
}

void
http_access_log(struct evhttp_request *req, int code)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char		*method;
	char			 safe[128];
	size_t			 i;

	metrics_request_end(req, code);
	/* The path only, cut and made printable: never a query string,
	 * which could carry an authorization code. */
	for (i = 0; path != NULL && path[i] != '\0' && i < sizeof(safe) - 1;
	    i++)
		safe[i] = path[i] > 0x20 && path[i] < 0x7f ? path[i] : '?';
	safe[i] = '\0';
	method = route_method_name(http_method(
	    evhttp_request_get_command(req)));
	if (http_access_write(req, method, safe, code) == 0)
		return;
	log_info("%s %s %d", method, safe, code);
}

void
http_reply(struct evhttp_request *req, int code, const char *json)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b = evbuffer_new();
	const char		*reason;

	if (b == NULL)
		fatalx("out of memory");
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evbuffer_add(b, json, strlen(json));
	evbuffer_add(b, "\n", 1);
	switch (code) {
	case 200: reason = "OK"; break;
	case 202: reason = "Accepted"; break;
	case 204: reason = "No Content"; break;
	case 400: reason = "Bad Request"; break;
	case 401: reason = "Unauthorized"; break;
	case 403: reason = "Forbidden"; break;
	case 404: reason = "Not Found"; break;
	case 405: reason = "Method Not Allowed"; break;
	case 409: reason = "Conflict"; break;
	case 413: reason = "Payload Too Large"; break;
	case 422: reason = "Unprocessable Entity"; break;
	case 502: reason = "Bad Gateway"; break;
	case 503: reason = "Service Unavailable"; break;
	case 507: reason = "Insufficient Storage"; break;
	default: reason = "Error"; break;
	}
	http_access_log(req, code);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

void
http_reply_gen(struct evhttp_request *req, int code, yajl_gen g)
{
	char *out;

	if ((out = json_gen_take(g, NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_free(g);
	http_reply(req, code, out);
	free(out);
}

void
http_fail_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	(void)ident;
	http_error(p->req, status == 200 ? 502 : (int)status, "%s",
	    sentence && *sentence ? sentence : "The flow could not start; "
	    "see the daemon's log.");
}

void
http_reply_empty(struct evhttp_request *req, int code)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	http_access_log(req, code);
	evhttp_send_reply(req, code, code == 204 ? "No Content" : "OK", NULL);
}

void
http_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	va_list		 ap;
	char		 sentence[512], *out;
	yajl_gen	 g;

	va_start(ap, fmt);
	vsnprintf(sentence, sizeof(sentence), fmt, ap);
	va_end(ap);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "error", sentence);
	yajl_gen_map_close(g);
	if ((out = json_gen_take(g, NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_free(g);
	http_reply(req, code, out);
	free(out);
}

yajl_val
http_body_json(struct evhttp_request *req)
{
	struct evbuffer	*b = evhttp_request_get_input_buffer(req);
	size_t		 len = evbuffer_get_length(b);
	char		 err[128];
	unsigned char	*data;
	yajl_val	 v;

	if (len > CD_HTTP_BODY_MAX) {
		http_error(req, 413, "The request body is larger than %d KiB.",
		    CD_HTTP_BODY_MAX / 1024);
		return NULL;
	}
	if (len == 0) {
		http_error(req, 400, "The request needs a JSON object body.");
		return NULL;
	}
	data = evbuffer_pullup(b, (ev_ssize_t)len);
	v = json_parse((const char *)data, len, CD_HTTP_BODY_MAX, err,
	    sizeof(err));
	/* The body may hold a token: wipe libevent's copy now. */
	explicit_bzero(data, len);
	evbuffer_drain(b, len);
	if (v == NULL) {
		http_error(req, 400, "The request body is not valid JSON (%s).",
		    err);
		return NULL;
	}
	if (!YAJL_IS_OBJECT(v)) {
		json_free_secret(v);
		http_error(req, 400, "The request body must be a JSON object.");
		return NULL;
	}
	return v;
}

/*
 * The API token in an Authorization header, or else the web console's
 * cookie. A request that sends the header is judged by it alone.
 */
static int
http_authorized(struct evhttp_request *req)
{
	const char *h;

	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL)
		(void)console_authenticate(req);
	else
		console_authenticate_none();
	if (http.api_token == NULL)
		return 1;
	if (h == NULL)
		return console_signed_in();
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return ct_streq(h, http.api_token);
}

/* One handler call per route. */
static void
http_dispatch(struct evhttp_request *req, enum route_id id, char **args)
{
	switch (id) {
	case ROUTE_HEALTHZ: route_healthz(req, args); break;
	case ROUTE_PRM: route_prm(req, args); break;
	case ROUTE_VC_CALLBACK: route_vc_callback(req, args); break;
	case ROUTE_VC_START: route_vc_start(req, args); break;
	case ROUTE_VC_EXCHANGE: route_vc_exchange(req, args); break;
	case ROUTE_CONNECTORS: route_connectors(req, args); break;
	case ROUTE_TOKEN: route_token(req, args); break;
	case ROUTE_STATUS: route_status(req, args); break;
	case ROUTE_DISCONNECT: route_disconnect(req, args); break;
	case ROUTE_RECONNECT: route_reconnect(req, args); break;
	case ROUTE_RC_LIST: route_rc_list(req, args); break;
	case ROUTE_RC_ADD: route_rc_add(req, args); break;
	case ROUTE_RC_DELETE: route_rc_delete(req, args); break;
	case ROUTE_RC_SESSION: route_rc_session(req, args); break;
	case ROUTE_RC_SUBMIT: route_rc_submit(req, args); break;
	case ROUTE_RC_CANCEL: route_rc_cancel(req, args); break;
	case ROUTE_GH_START: route_gh_start(req, args); break;
	case ROUTE_GH_POLL: route_gh_poll(req, args); break;
	case ROUTE_GH_CANCEL: route_gh_cancel(req, args); break;
	case ROUTE_CONSOLE_ASSET: route_console_asset(req, args); break;
	case ROUTE_CONSOLE_LOGIN: console_login(req); break;
	case ROUTE_CONSOLE_SESSION: console_session_info(req); break;
	case ROUTE_CONSOLE_LINK: console_link_mint(req); break;
	case ROUTE_CONSOLE_LOGOUT: console_logout(req); break;
	case ROUTE_METRICS: route_metrics(req, args); break;
	}
}

void
http_route_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	enum route_method	 m = http_method(evhttp_request_get_command(req));
	struct route_match	 rm;
	const char		*why;
	int			 found;

	(void)arg;
	http_access_begin(req);
	found = route_find(uri ? evhttp_uri_get_path(uri) : NULL, m, &rm);
	metrics_request_begin(req, found ? rm.route->pattern : NULL,
	    route_method_name(m));
	if (!found) {
		if (rm.allow[0] == '\0') {
			http_error(req, 404, "There is no such path in the API.");
			return;
		}
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", rm.allow);
		http_error(req, 405, "This path does not accept %s; use %s.",
		    route_method_name(m), rm.allow);
		return;
	}
	if (!rm.route->public && !http_authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		http_error(req, 401, "A valid API token is required: send "
		    "'Authorization: Bearer <token>' with the content of "
		    "<state_dir>/api-token.");
		return;
	}
	/* A browser's request from another site must not change anything
	 * (with api_auth = none, or riding on the console's cookie); the
	 * console's own page proves itself with its CSRF token. */
	if (!rm.route->public && m != ROUTE_GET && m != ROUTE_HEAD &&
	    (why = console_cross_site(req)) != NULL) {
		http_error(req, 403, "%s", why);
		return;
	}
	http_dispatch(req, rm.route->id, rm.args);
}

/* The console's files by the path they are served at. */
static void
route_console_asset(struct evhttp_request *req, char **args)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);

	(void)args;
	console_asset(req, uri ? evhttp_uri_get_path(uri) : "/");
}

static void
route_metrics(struct evhttp_request *req, char **args)
{
	(void)args;
	http_metrics(req);
}

static void
route_healthz(struct evhttp_request *req, char **args)
{
	(void)args;
	if (http.vaultfd == -1 || http.meta == NULL) {
		http_reply(req, 503, "{\"ok\":false,\"error\":\"The credential "
		    "vault is not running yet; try again in a few seconds.\"}");
		return;
	}
	http_reply(req, 200, "{\"ok\":true}");
}

static void
route_connectors(struct evhttp_request *req, char **args)
{
	(void)args;
	http_connectors_list(req);
}

/* The token routes exist for the token connectors only. */
static int
route_token_connector(struct evhttp_request *req, const char *name)
{
	if (http_token_connector(name))
		return 1;
	http_error(req, 404, "There is no token connector named '%.32s'.",
	    name);
	return 0;
}

static void
route_token(struct evhttp_request *req, char **args)
{
	if (route_token_connector(req, args[0]))
		http_token_save(req, args[0]);
}

static void
route_status(struct evhttp_request *req, char **args)
{
	if (route_token_connector(req, args[0]))
		http_token_status(req, args[0]);
}

static void
route_disconnect(struct evhttp_request *req, char **args)
{
	if (route_token_connector(req, args[0]))
		http_token_disconnect(req, args[0]);
}

static void
route_reconnect(struct evhttp_request *req, char **args)
{
	if (route_token_connector(req, args[0]))
		http_token_reconnect(req, args[0]);
}

static void
route_gh_start(struct evhttp_request *req, char **args)
{
	(void)args;
	http_gh_start(req);
}

static void
route_gh_poll(struct evhttp_request *req, char **args)
{
	(void)args;
	http_gh_poll(req);
}

static void
route_gh_cancel(struct evhttp_request *req, char **args)
{
	(void)args;
	http_gh_cancel(req);
}

/* The rclone routes exist for gdrive and onedrive only. */
static int
route_rc_connector(struct evhttp_request *req, const char *name)
{
	if (http_rclone_connector(name))
		return 1;
	http_error(req, 404, "There is no rclone connector named '%.32s'; use "
	    "gdrive or onedrive.", name);
	return 0;
}

static void
route_rc_list(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_list(req, args[0]);
}

static void
route_rc_add(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_add(req, args[0]);
}

static void
route_rc_delete(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_delete(req, args[0], args[1]);
}

static void
route_rc_session(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_session(req, args[0], args[1]);
}

static void
route_rc_submit(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_submit(req, args[0], args[1]);
}

static void
route_rc_cancel(struct evhttp_request *req, char **args)
{
	if (route_rc_connector(req, args[0]))
		http_rc_cancel(req, args[0], args[1]);
}

/*
 * RFC 9728 protected-resource metadata. "resource" is the configured
 * public URL, never derived from the Host header (§3.3); the document is
 * public and readable cross-origin, and never cached.
 */
static void
route_prm(struct evhttp_request *req, char **args)
{
	const struct config	*conf = &http.ci.conf;
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	char			 issuer[1100], reg[1100];
	const char		*p;
	yajl_gen		 g;

	(void)args;
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, OPTIONS");
	evhttp_add_header(h, "Access-Control-Allow-Headers",
	    "Content-Type, Authorization");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS) {
		http_reply(req, 200, "{}");
		return;
	}
	/* The issuer is the authorize URL's origin (https://vercel.com). */
	p = strstr(conf->vercel_authorize_url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	snprintf(issuer, sizeof(issuer), "%.*s", p ? (int)(p -
	    conf->vercel_authorize_url) : (int)strlen(conf->vercel_authorize_url),
	    conf->vercel_authorize_url);
	snprintf(reg, sizeof(reg), "%s/login/oauth/register",
	    conf->vercel_api_url);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "resource", conf->public_url);
	json_gen_str(g, "authorization_servers");
	yajl_gen_array_open(g);
	json_gen_str(g, issuer);
	yajl_gen_array_close(g);
	json_gen_str(g, "scopes_supported");
	yajl_gen_array_open(g);
	json_gen_str(g, "openid");
	json_gen_str(g, "email");
	json_gen_str(g, "profile");
	json_gen_str(g, "offline_access");
	yajl_gen_array_close(g);
	json_gen_str(g, "bearer_methods_supported");
	yajl_gen_array_open(g);
	json_gen_str(g, "header");
	yajl_gen_array_close(g);
	json_gen_kstr(g, "registration_endpoint", reg);
	json_gen_kstr(g, "resource_name", "connectord");
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

static void
route_vc_start(struct evhttp_request *req, char **args)
{
	(void)args;
	http_vc_start(req);
}

static void
route_vc_exchange(struct evhttp_request *req, char **args)
{
	(void)args;
	http_vc_exchange(req);
}

static void
route_vc_callback(struct evhttp_request *req, char **args)
{
	(void)args;
	http_vc_callback(req);
}
