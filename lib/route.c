/*
 * The http role's routing on plain strings (see route.h). A path that
 * matches a pattern with another method gets a 405 with the methods it
 * accepts; a path that matches none, a 404. Segments are compared as
 * sent: the router never percent-decodes, so "%2F" is never a '/'.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "route.h"

const struct route route_table[] = {
	{ ROUTE_GET, "/healthz", 1, ROUTE_HEALTHZ },
	/* Prometheus text format; needs the token like the API. */
	{ ROUTE_GET, "/metrics", 0, ROUTE_METRICS },
	/* The web console: its files, and the one-time sign-in link. */
	{ ROUTE_GET, "/", 1, ROUTE_CONSOLE_ASSET },
	{ ROUTE_GET, "/console.css", 1, ROUTE_CONSOLE_ASSET },
	{ ROUTE_GET, "/console.js", 1, ROUTE_CONSOLE_ASSET },
	{ ROUTE_GET, "/login", 1, ROUTE_CONSOLE_LOGIN },
	{ ROUTE_GET, "/api/console/session", 0, ROUTE_CONSOLE_SESSION },
	{ ROUTE_POST, "/api/console/login", 0, ROUTE_CONSOLE_LINK },
	{ ROUTE_POST, "/api/console/logout", 0, ROUTE_CONSOLE_LOGOUT },
	{ ROUTE_GET, "/.well-known/oauth-protected-resource", 1, ROUTE_PRM },
	{ ROUTE_OPTIONS, "/.well-known/oauth-protected-resource", 1,
	    ROUTE_PRM },
	{ ROUTE_GET, "/callback", 1, ROUTE_VC_CALLBACK },
	{ ROUTE_GET, "/api/connectors/vercel/oauth/start", 0, ROUTE_VC_START },
	{ ROUTE_POST, "/api/connectors/vercel/oauth/exchange", 0,
	    ROUTE_VC_EXCHANGE },
	{ ROUTE_GET, "/api/connectors", 0, ROUTE_CONNECTORS },
	{ ROUTE_POST, "/api/connectors/*/token", 0, ROUTE_TOKEN },
	{ ROUTE_GET, "/api/connectors/*/status", 0, ROUTE_STATUS },
	{ ROUTE_POST, "/api/connectors/*/disconnect", 0, ROUTE_DISCONNECT },
	{ ROUTE_POST, "/api/connectors/*/reconnect", 0, ROUTE_RECONNECT },
	{ ROUTE_GET, "/api/connectors/*/remotes", 0, ROUTE_RC_LIST },
	{ ROUTE_POST, "/api/connectors/*/remotes", 0, ROUTE_RC_ADD },
	{ ROUTE_DELETE, "/api/connectors/*/remotes/*", 0, ROUTE_RC_DELETE },
	{ ROUTE_GET, "/api/connectors/*/sessions/*", 0, ROUTE_RC_SESSION },
	{ ROUTE_POST, "/api/connectors/*/sessions/*/submit", 0,
	    ROUTE_RC_SUBMIT },
	{ ROUTE_POST, "/api/connectors/*/sessions/*/cancel", 0,
	    ROUTE_RC_CANCEL },
	{ ROUTE_POST, "/api/connectors/github/cli/start", 0, ROUTE_GH_START },
	{ ROUTE_POST, "/api/connectors/github/cli/poll", 0, ROUTE_GH_POLL },
	{ ROUTE_POST, "/api/connectors/github/cli/cancel", 0, ROUTE_GH_CANCEL },
};
const size_t route_count = sizeof(route_table) / sizeof(route_table[0]);

const char *
route_method_name(enum route_method m)
{
	switch (m) {
	case ROUTE_GET: return "GET";
	case ROUTE_POST: return "POST";
	case ROUTE_HEAD: return "HEAD";
	case ROUTE_PUT: return "PUT";
	case ROUTE_DELETE: return "DELETE";
	case ROUTE_OPTIONS: return "OPTIONS";
	case ROUTE_TRACE: return "TRACE";
	case ROUTE_CONNECT: return "CONNECT";
	case ROUTE_PATCH: return "PATCH";
	case ROUTE_OTHER: break;
	}
	return "OTHER";
}

int
route_split(char *path, char **segs)
{
	int	 n = 0;
	char	*s, *save = NULL;

	for (s = strtok_r(path, "/", &save); s != NULL;
	    s = strtok_r(NULL, "/", &save)) {
		if (n == CD_ROUTE_SEGS_MAX)
			return -1;
		segs[n++] = s;
	}
	return n;
}

/* Whether pattern matches the nsegs segments; its "*" ones go to args. */
static int
route_match_one(const char *pattern, char **segs, int nsegs, char **args,
    size_t *nargs)
{
	char	 pat[CD_ROUTE_PATH_MAX], *psegs[CD_ROUTE_SEGS_MAX];
	int	 np;

	snprintf(pat, sizeof(pat), "%s", pattern);
	if ((np = route_split(pat, psegs)) != nsegs)
		return 0;
	*nargs = 0;
	for (int i = 0; i < np; i++) {
		if (strcmp(psegs[i], "*") == 0)
			args[(*nargs)++] = segs[i];
		else if (strcmp(psegs[i], segs[i]) != 0)
			return 0;
	}
	return 1;
}

static void
route_allow_add(char *allow, size_t len, enum route_method m)
{
	if (allow[0] != '\0')
		strncat(allow, ", ", len - strlen(allow) - 1);
	strncat(allow, route_method_name(m), len - strlen(allow) - 1);
}

int
route_find(const char *path, enum route_method m, struct route_match *rm)
{
	char			*segs[CD_ROUTE_SEGS_MAX];
	const struct route	*r;
	int			 n;

	memset(rm, 0, sizeof(*rm));
	if (path == NULL || strlen(path) >= sizeof(rm->path))
		return 0;
	snprintf(rm->path, sizeof(rm->path), "%s", path);
	if ((n = route_split(rm->path, segs)) == -1)
		return 0;
	for (size_t i = 0; i < route_count; i++) {
		r = &route_table[i];
		if (!route_match_one(r->pattern, segs, n, rm->args, &rm->nargs))
			continue;
		if (r->method == m || (m == ROUTE_HEAD && r->method == ROUTE_GET)) {
			rm->route = r;
			rm->allow[0] = '\0';
			return 1;
		}
		route_allow_add(rm->allow, sizeof(rm->allow), r->method);
	}
	rm->nargs = 0;
	return 0;
}

int
route_callback_parse(const char *query, struct route_callback *cb)
{
	memset(cb, 0, sizeof(*cb));
	TAILQ_INIT(&cb->params);
	if (query == NULL || evhttp_parse_query_str(query, &cb->params) == -1)
		return -1;
	cb->code = evhttp_find_header(&cb->params, "code");
	cb->state = evhttp_find_header(&cb->params, "state");
	cb->error = evhttp_find_header(&cb->params, "error");
	cb->error_description = evhttp_find_header(&cb->params,
	    "error_description");
	return 0;
}

void
route_callback_clear(struct route_callback *cb)
{
	evhttp_clear_headers(&cb->params);
	cb->code = cb->state = cb->error = cb->error_description = NULL;
}
