/*
 * bare-evhttp: the baseline of bench/run.py. A minimal libevent evhttp
 * server that answers every GET the way connectord's http role answers
 * GET /api/connectors/<name>/status for a connector that is not
 * connected: same libevent, same single-threaded event loop, same
 * evhttp limits, same headers and the same body bytes. It also checks
 * the bearer token with the same constant-time compare, so that the
 * difference the benchmark measures is what connectord adds on top
 * (routing, JSON generation, access log), not libevent itself.
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
	(void)arg;
	/* Report a bad token rather than hide it: run.py counts non-2xx. */
	if (!authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		reply(req, 401, "Unauthorized", body_unauth,
		    sizeof(body_unauth) - 1);
		return;
	}
	reply(req, 200, "OK", body_ok, sizeof(body_ok) - 1);
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
	evhttp_set_allowed_methods(evh, EVHTTP_REQ_GET);
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
