/*
 * The http role's routing, apart from libevent's request object so that
 * it can be tested and fuzzed on plain strings: the route table, the
 * split of a request path into segments, the match against the table
 * (with the methods a path accepts, for a 405's Allow header), and the
 * query string of the public OAuth callback. Library code: it parses
 * untrusted text with limits and never exits.
 */
#ifndef CD_ROUTE_H
#define CD_ROUTE_H

#include <stddef.h>

#include <event2/keyvalq_struct.h>

#include "cd_limits.h"

/* Request methods, as the router and the access log name them. */
enum route_method {
	ROUTE_GET,
	ROUTE_POST,
	ROUTE_HEAD,
	ROUTE_PUT,
	ROUTE_DELETE,
	ROUTE_OPTIONS,
	ROUTE_TRACE,
	ROUTE_CONNECT,
	ROUTE_PATCH,
	ROUTE_OTHER,
};

/* What a matched route does; http's dispatcher has one handler each. */
enum route_id {
	ROUTE_HEALTHZ,
	ROUTE_PRM,
	ROUTE_VC_CALLBACK,
	ROUTE_VC_START,
	ROUTE_VC_EXCHANGE,
	ROUTE_CONNECTORS,
	ROUTE_TOKEN,
	ROUTE_STATUS,
	ROUTE_DISCONNECT,
	ROUTE_RECONNECT,
	ROUTE_RC_LIST,
	ROUTE_RC_ADD,
	ROUTE_RC_DELETE,
	ROUTE_RC_SESSION,
	ROUTE_RC_SUBMIT,
	ROUTE_RC_CANCEL,
	ROUTE_GH_START,
	ROUTE_GH_POLL,
	ROUTE_GH_CANCEL,
	ROUTE_CONSOLE_ASSET,
	ROUTE_CONSOLE_LOGIN,
	ROUTE_CONSOLE_SESSION,
	ROUTE_CONSOLE_LINK,
	ROUTE_CONSOLE_LOGOUT,
	ROUTE_METRICS,
};

struct route {
	enum route_method method;
	/* Literal segments, and "*" for one segment handed to the handler
	 * as an argument, in order. */
	const char	*pattern;
	int		 public;	/* no API token needed */
	enum route_id	 id;
};

/* The API's routes, in the order they are tried. */
extern const struct route route_table[];
extern const size_t route_count;

/* The outcome of route_find(). args point into path. */
struct route_match {
	const struct route *route;	/* NULL: none for this method */
	char		*args[CD_ROUTE_SEGS_MAX];
	size_t		 nargs;
	/* With no route: the methods that path accepts ("GET, OPTIONS"),
	 * for a 405's Allow header; empty when no pattern matches (404). */
	char		 allow[64];
	char		 path[CD_ROUTE_PATH_MAX];
};

/*
 * Split path in place at '/' into its non-empty segments (empty ones, as
 * in "//", are skipped). The count, or -1 when there are more than
 * CD_ROUTE_SEGS_MAX.
 */
int route_split(char *path, char **segs);

/*
 * Match path (the request path as sent, without its query string and not
 * percent-decoded) against the table for method m; HEAD matches a GET
 * route. 1 with rm->route set, or 0 with rm->allow filled or empty. A
 * path that is NULL, CD_ROUTE_PATH_MAX bytes or longer, or has too many
 * segments matches nothing.
 */
int route_find(const char *path, enum route_method m, struct route_match *rm);

/* "GET", "POST", ...; "OTHER" for ROUTE_OTHER. */
const char *route_method_name(enum route_method m);

/* GET /callback's parameters, decoded by evhttp_parse_query_str(). */
struct route_callback {
	struct evkeyvalq params;
	/* The first value of each, or NULL; they point into params. */
	const char	*code;
	const char	*state;
	const char	*error;
	const char	*error_description;
};

/*
 * Parse the callback's query string (NULL when the URL had none). 0, or
 * -1 if there is none or libevent refuses it (a member without '=' or
 * with an empty name). Call route_callback_clear() either way.
 */
int route_callback_parse(const char *query, struct route_callback *cb);
void route_callback_clear(struct route_callback *cb);

#endif
