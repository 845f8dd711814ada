/*
 * Unit tests of lib/route.c: matches with arguments, HEAD on a GET
 * route, the Allow list of a 405, the 404s (unknown path, too many
 * segments, too long), no percent-decoding of segments, and the OAuth
 * callback's query as libevent decodes it.
 */
#include <string.h>

#include "route.h"
#include "tap.h"

static void
test_find(void)
{
	struct route_match	 rm;
	char			 longp[CD_ROUTE_PATH_MAX + 8];

	ok(route_find("/healthz", ROUTE_GET, &rm) == 1 &&
	    rm.route->id == ROUTE_HEALTHZ && rm.nargs == 0, "GET /healthz");
	ok(route_find("/healthz", ROUTE_HEAD, &rm) == 1 &&
	    rm.route->id == ROUTE_HEALTHZ, "HEAD takes a GET route");
	ok(route_find("/metrics", ROUTE_GET, &rm) == 1 &&
	    rm.route->id == ROUTE_METRICS && !rm.route->public,
	    "GET /metrics needs the token");
	ok(route_find("/metrics", ROUTE_POST, &rm) == 0 &&
	    strcmp(rm.allow, "GET") == 0, "POST /metrics: 405, Allow: GET");
	ok(route_find("/api/connectors/gdrive/sessions/rc-1/submit",
	    ROUTE_POST, &rm) == 1 && rm.route->id == ROUTE_RC_SUBMIT &&
	    rm.nargs == 2, "two arguments");
	is_str(rm.args[0], "gdrive", "first argument");
	is_str(rm.args[1], "rc-1", "second argument");
	ok(route_find("//api//connectors/manus/token/", ROUTE_POST, &rm) == 1 &&
	    rm.route->id == ROUTE_TOKEN, "empty segments are skipped");
	ok(route_find("/api/connectors/a%2Fb/remotes/c", ROUTE_DELETE, &rm) ==
	    1, "a %2F is not a separator");
	is_str(rm.args[0], "a%2Fb", "and is not decoded");
	ok(route_find("/api/connectors/x/remotes", ROUTE_PUT, &rm) == 0 &&
	    rm.route == NULL, "wrong method");
	is_str(rm.allow, "GET, POST", "Allow lists both methods in order");
	ok(route_find("/.well-known/oauth-protected-resource", ROUTE_POST,
	    &rm) == 0, "POST on the metadata");
	is_str(rm.allow, "GET, OPTIONS", "Allow for the metadata");
	ok(route_find("/nope", ROUTE_GET, &rm) == 0 && rm.allow[0] == '\0',
	    "unknown path: 404");
	ok(route_find("/a/b/c/d/e/f/g/h/i", ROUTE_GET, &rm) == 0 &&
	    rm.allow[0] == '\0', "nine segments: 404");
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ok(route_find(longp, ROUTE_GET, &rm) == 0 && rm.allow[0] == '\0',
	    "a path past the limit: 404");
	ok(route_find(NULL, ROUTE_GET, &rm) == 0, "no path: 404");
	is_str(route_method_name(ROUTE_OTHER), "OTHER", "method name");
}

static void
test_callback(void)
{
	struct route_callback cb;

	ok(route_callback_parse("code=a%2Bb+c&state=s&CODE=2", &cb) == 0,
	    "a callback query parses");
	is_str(cb.code, "a+b c", "code decoded once, '+' is a space");
	is_str(cb.state, "s", "state");
	ok(cb.error == NULL && cb.error_description == NULL, "no error");
	route_callback_clear(&cb);
	ok(route_callback_parse("Error=access_denied&error_description=No%21",
	    &cb) == 0, "an error query parses");
	is_str(cb.error, "access_denied", "names ignore case");
	is_str(cb.error_description, "No!", "error_description");
	route_callback_clear(&cb);
	ok(route_callback_parse("code", &cb) == -1, "a member without '='");
	route_callback_clear(&cb);
	ok(route_callback_parse("=x", &cb) == -1, "an empty name");
	route_callback_clear(&cb);
	ok(route_callback_parse(NULL, &cb) == -1, "no query");
	route_callback_clear(&cb);
	ok(route_callback_parse("", &cb) == 0 && cb.code == NULL,
	    "an empty query has nothing");
	route_callback_clear(&cb);
}

int
main(void)
{
	test_find();
	test_callback();
	return tap_done();
}
