/*
 * bare-evhttp: the baseline of bench/run.py and bench/load.py. A minimal
 * libevent evhttp server: same libevent, same single-threaded event loop,
 * same evhttp limits, same headers, and the same constant-time bearer
 * token check as connectord's http role, so that the difference the
 * benchmarks measure is what connectord adds on top (routing, JSON
 * parsing and generation, workers, the vault, the access log), not
 * libevent itself.
 *
 * Every request gets a fixed answer chosen by method and path shape
 * (table "answers" below): the status route answers exactly what the
 * daemon answers for a connector that is not connected (bench/run.py
 * compares those bytes), and every other path bench/load.py uses gets a
 * fixed JSON body of the daemon's shape and success status. Request
 * bodies are read by evhttp (it must, to find the next request on a
 * keep-alive connection) but never parsed. A GET of any other path
 * answers like the status route; anything else gets a JSON 404.
 *
 * Usage: bare-evhttp <port> <token>
 * Listens on 127.0.0.1 only; SIGTERM or SIGINT stops it cleanly.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cd_limits.h"
#include "ctcmp.h"

/* Exactly what http_token_status() sends for {"connected": false}. */
static const char	 body_ok[] = "{\"connected\":false}\n";
static const char	 body_unauth[] =
    "{\"error\":\"A valid API token is required.\"}\n";
static const char	 body_notfound[] =
    "{\"error\":\"There is no such path in the API.\"}\n";

/*
 * The fixed answers of bench/load.py's paths, in the daemon's shapes.
 * A pattern's "*" matches one path segment; the first match wins.
 */
struct answer {
	enum evhttp_cmd_type	 method;
	const char		*pattern;
	int			 code;
	const char		*reason;
	const char		*body;
};

static const struct answer answers[] = {
	{ EVHTTP_REQ_GET, "/api/connectors/*/status", 200, "OK",
	    "{\"connected\":false}\n" },
	{ EVHTTP_REQ_GET, "/api/connectors", 200, "OK",
	    "{\"connectors\":[{\"name\":\"gdrive\",\"connected\":true,"
	    "\"remotes\":1},{\"name\":\"onedrive\",\"connected\":true,"
	    "\"remotes\":1},{\"name\":\"github\",\"connected\":false},"
	    "{\"name\":\"vercel\",\"connected\":false},{\"name\":"
	    "\"manus\",\"connected\":false}]}\n" },
	{ EVHTTP_REQ_GET, "/api/connectors/*/remotes", 200, "OK",
	    "{\"remotes\":[{\"name\":\"personal\",\"type\":\"drive\"}]}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/*/token", 200, "OK",
	    "{\"ok\":true}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/*/disconnect", 200, "OK",
	    "{\"ok\":true}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/*/remotes", 202, "Accepted",
	    "{\"session_id\":\"gdrive-bare0000\",\"status\":\"pending\"}\n" },
	{ EVHTTP_REQ_GET, "/api/connectors/*/sessions/*", 200, "OK",
	    "{\"status\":\"awaiting_oauth\",\"auth_url\":"
	    "\"https://accounts.google.com/o/oauth2/auth?bare\","
	    "\"needs_manual_code\":true,\"remote_name\":\"bare\","
	    "\"error\":null}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/*/sessions/*/cancel", 200, "OK",
	    "{\"ok\":true}\n" },
	{ EVHTTP_REQ_GET, "/api/connectors/vercel/oauth/start", 200, "OK",
	    "{\"authorize_url\":\"https://vercel.com/oauth/authorize?bare\","
	    "\"state\":\"bare\",\"code_verifier_id\":\"bare\"}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/github/cli/start", 200, "OK",
	    "{\"session_id\":\"gh-cli-bare0000\",\"user_code\":\"BARE-0000\","
	    "\"verification_uri\":\"https://github.com/login/device\","
	    "\"expires_in\":900}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/github/cli/poll", 200, "OK",
	    "{\"status\":\"pending\",\"user_code\":\"BARE-0000\","
	    "\"verification_uri\":\"https://github.com/login/device\"}\n" },
	{ EVHTTP_REQ_POST, "/api/connectors/github/cli/cancel", 200, "OK",
	    "{\"ok\":true}\n" },
};

/* Does path match pattern, segment by segment ("*": any one segment)? */
static int
path_match(const char *pattern, const char *path)
{
	const char *p = pattern, *s = path;

	while (*p != '\0' && *s != '\0') {
		if (*p == '*') {
			p++;
			while (*s != '\0' && *s != '/')
				s++;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

static const char	*api_token;

/* Same parsing as the daemon: "Bearer", any spaces, then the token. */
static int
authorized(struct evhttp_request *req)
{
	const char *h;

	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return ct_streq(h, api_token);
}

/* The daemon's http_reply(): three headers, a fresh buffer per answer. */
static void
reply(struct evhttp_request *req, int code, const char *reason,
    const char *body, size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b;

	if ((b = evbuffer_new()) == NULL) {
		fprintf(stderr, "bare-evhttp: out of memory\n");
		exit(1);
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evbuffer_add(b, body, len);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri;
	const struct answer	*a;
	const char		*path;
	enum evhttp_cmd_type	 cmd;

	(void)arg;
	/* Report a bad token rather than hide it: run.py counts non-2xx. */
	if (!authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		reply(req, 401, "Unauthorized", body_unauth,
		    sizeof(body_unauth) - 1);
		return;
	}
	cmd = evhttp_request_get_command(req);
	uri = evhttp_request_get_evhttp_uri(req);
	path = uri ? evhttp_uri_get_path(uri) : NULL;
	for (size_t i = 0; path != NULL &&
	    i < sizeof(answers) / sizeof(answers[0]); i++) {
		a = &answers[i];
		if (a->method == cmd && path_match(a->pattern, path)) {
			reply(req, a->code, a->reason, a->body,
			    strlen(a->body));
			return;
		}
	}
	if (cmd == EVHTTP_REQ_GET)
		reply(req, 200, "OK", body_ok, sizeof(body_ok) - 1);
	else
		reply(req, 404, "Not Found", body_notfound,
		    sizeof(body_notfound) - 1);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	event_base_loopbreak(arg);
}

int
main(int argc, char *argv[])
{
	struct event_base	*base;
	struct evhttp		*evh;
	struct event		*sigterm, *sigint;
	char			*end;
	long			 port;
	int			 rc = 1;

	if (argc != 3 || argv[2][0] == '\0') {
		fprintf(stderr, "usage: bare-evhttp port token\n");
		return 2;
	}
	errno = 0;
	port = strtol(argv[1], &end, 10);
	if (errno != 0 || end == argv[1] || *end != '\0' || port < 1 ||
	    port > 65535) {
		fprintf(stderr, "bare-evhttp: bad port '%s'\n", argv[1]);
		return 2;
	}
	api_token = argv[2];
	/* A client that goes away mid-answer must not kill the server. */
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL ||
	    (evh = evhttp_new(base)) == NULL) {
		fprintf(stderr, "bare-evhttp: cannot set up libevent\n");
		return 1;
	}
	/* The daemon's limits, so both servers parse requests alike. */
	evhttp_set_max_headers_size(evh, CD_HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(evh, CD_HTTP_BODY_HARD_MAX);
	evhttp_set_timeout(evh, CD_HTTP_TIMEOUT_SEC);
	evhttp_set_allowed_methods(evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(evh, request_cb, NULL);
	/* Same backlog (128) and SO_REUSEADDR as the broker's listener. */
	if (evhttp_bind_socket(evh, "127.0.0.1", (ev_uint16_t)port) == -1) {
		fprintf(stderr, "bare-evhttp: cannot listen on 127.0.0.1:%ld\n",
		    port);
		goto out;
	}

	sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
	sigint = evsignal_new(base, SIGINT, signal_cb, base);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL)) {
		fprintf(stderr, "bare-evhttp: cannot watch signals\n");
		goto out;
	}
	rc = event_base_dispatch(base) == -1;
	event_free(sigterm);
	event_free(sigint);
out:
	evhttp_free(evh);
	event_base_free(base);
	return rc;
}
