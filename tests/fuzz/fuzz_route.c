/*
 * libFuzzer target for the http role's router and the OAuth callback's
 * query string (lib/route.c). The first byte picks the method; the rest
 * is a request target, path and query split at the first '?'.
 *
 * Routing invariants, checked against a model written here apart from
 * route_split(): the path's segments are its non-empty '/'-separated
 * parts, never percent-decoded; a match is the first table entry whose
 * pattern has as many segments, equal literals, and the method (HEAD
 * takes a GET route); its arguments are exactly the segments under the
 * pattern's "*", each non-empty, without '/', pointing into the match's
 * own copy of the path; no match gives the Allow list of every other
 * method whose pattern fits, in table order, or an empty one for a 404;
 * a second lookup gives the same answer.
 *
 * Query invariants, against a model of evhttp_parse_query_str(): a
 * query is refused exactly when a member (before a trailing '&') has no
 * '=' or an empty name; otherwise code, state, error and
 * error_description are the first member with that name (ASCII case
 * ignored), its value decoded once ("%xx" with two hex digits, '+' as a
 * space, and cut at a decoded NUL). abort() on any violation.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cd_limits.h"
#include "route.h"

/* The longest target tried: past the path limit, so that limit is hit. */
#define FUZZ_TARGET_MAX (2 * CD_ROUTE_PATH_MAX)

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* The model's segments: offsets and lengths of the non-empty parts. */
struct segs {
	size_t	 n;
	size_t	 off[FUZZ_TARGET_MAX];
	size_t	 len[FUZZ_TARGET_MAX];
};

static void
model_split(const char *s, struct segs *g)
{
	size_t i = 0, start;

	g->n = 0;
	while (s[i] != '\0') {
		while (s[i] == '/')
			i++;
		if (s[i] == '\0')
			break;
		start = i;
		while (s[i] != '\0' && s[i] != '/')
			i++;
		g->off[g->n] = start;
		g->len[g->n++] = i - start;
	}
}

static int
seg_is(const char *s, const struct segs *g, size_t k, const char *lit)
{
	return strlen(lit) == g->len[k] &&
	    memcmp(s + g->off[k], lit, g->len[k]) == 0;
}

/* Whether pattern fits path's segments; "*" takes any one segment. */
static int
model_fits(const char *pattern, const char *path, const struct segs *ps)
{
	static struct segs	 pp;

	model_split(pattern, &pp);
	if (pp.n != ps->n)
		return 0;
	for (size_t k = 0; k < pp.n; k++) {
		if (seg_is(pattern, &pp, k, "*"))
			continue;
		if (pp.len[k] != ps->len[k] || memcmp(pattern + pp.off[k],
		    path + ps->off[k], pp.len[k]) != 0)
			return 0;
	}
	return 1;
}

static int
method_ok(enum route_method want, enum route_method have)
{
	return want == have || (have == ROUTE_HEAD && want == ROUTE_GET);
}

/* The arguments must be the segments under the pattern's "*". */
static void
check_args(const char *path, const struct segs *ps, const struct route_match *rm)
{
	static struct segs	 pp;
	const char		*pat = rm->route->pattern;
	size_t			 a = 0;

	model_split(pat, &pp);
	for (size_t k = 0; k < pp.n; k++) {
		if (!seg_is(pat, &pp, k, "*"))
			continue;
		check(a < rm->nargs);
		check(rm->args[a] >= rm->path &&
		    rm->args[a] < rm->path + sizeof(rm->path));
		check(strlen(rm->args[a]) == ps->len[k] && ps->len[k] > 0 &&
		    memcmp(rm->args[a], path + ps->off[k], ps->len[k]) == 0 &&
		    strchr(rm->args[a], '/') == NULL);
		a++;
	}
	check(a == rm->nargs);
}

static void
check_route(const char *path, enum route_method m)
{
	static struct segs	 ps;
	static struct route_match rm, again;
	char			 allow[sizeof(rm.allow)] = "";
	size_t			 first = route_count;
	int			 found;

	found = route_find(path, m, &rm);
	check(found == (rm.route != NULL));
	model_split(path, &ps);
	if (strlen(path) >= CD_ROUTE_PATH_MAX || ps.n > CD_ROUTE_SEGS_MAX) {
		check(!found && rm.allow[0] == '\0' && rm.nargs == 0);
		return;
	}
	for (size_t i = 0; i < route_count; i++) {
		if (!model_fits(route_table[i].pattern, path, &ps))
			continue;
		if (method_ok(route_table[i].method, m)) {
			first = i;
			break;
		}
		if (allow[0] != '\0')
			strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
		strncat(allow, route_method_name(route_table[i].method),
		    sizeof(allow) - strlen(allow) - 1);
	}
	if (first < route_count) {
		check(found && rm.route == &route_table[first]);
		check_args(path, &ps, &rm);
		/* Only the three public routes skip the API token. */
		check(!rm.route->public || rm.route->id == ROUTE_HEALTHZ ||
		    rm.route->id == ROUTE_PRM || rm.route->id == ROUTE_VC_CALLBACK);
	} else
		check(!found && rm.nargs == 0 && strcmp(rm.allow, allow) == 0);
	check(route_find(path, m, &again) == found && again.route == rm.route &&
	    again.nargs == rm.nargs && strcmp(again.allow, rm.allow) == 0);
	for (size_t a = 0; a < rm.nargs; a++)
		check(strcmp(again.args[a], rm.args[a]) == 0);
}

/* evhttp's decoding of one value; out has room for strlen(v) + 1. */
static void
model_decode(const char *v, size_t len, char *out)
{
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		char c = v[i];

		if (c == '+')
			c = ' ';
		else if (c == '%' && i + 2 < len && isxdigit((unsigned char)v[i + 1]) &&
		    isxdigit((unsigned char)v[i + 2])) {
			char hex[3] = { v[i + 1], v[i + 2], '\0' };

			c = (char)strtol(hex, NULL, 16);
			i += 2;
		}
		out[j++] = c;
	}
	out[j] = '\0';
}

/* The model's value of name in q: 1 found (decoded into out), 0 absent,
 * -1 when the query is malformed. */
static int
model_param(const char *q, const char *name, char *out)
{
	const char	*p = q, *amp, *eq;
	size_t		 len;
	int		 found = 0;

	while (*p != '\0') {
		amp = strchr(p, '&');
		len = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', len);
		if (eq == NULL || eq == p)
			return -1;
		if (!found && (size_t)(eq - p) == strlen(name) &&
		    strncasecmp(p, name, strlen(name)) == 0) {
			model_decode(eq + 1, len - (size_t)(eq - p) - 1, out);
			found = 1;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return found;
}

static void
check_param(const char *q, const char *name, const char *got, int parsed)
{
	static char	 want[FUZZ_TARGET_MAX + 1];
	int		 rc = model_param(q, name, want);

	check((rc == -1) == !parsed);
	if (rc == 1)
		check(got != NULL && strcmp(got, want) == 0);
	else
		check(got == NULL);
}

static void
check_query(const char *q)
{
	struct route_callback	 cb;
	int			 parsed;

	parsed = route_callback_parse(q, &cb) == 0;
	if (q == NULL)
		check(!parsed);
	else {
		check_param(q, "code", cb.code, parsed);
		check_param(q, "state", cb.state, parsed);
		check_param(q, "error", cb.error, parsed);
		check_param(q, "error_description", cb.error_description,
		    parsed);
	}
	route_callback_clear(&cb);
	check(cb.code == NULL && cb.state == NULL && TAILQ_EMPTY(&cb.params));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 target[FUZZ_TARGET_MAX + 1];
	char		*q;

	if (size == 0)
		return 0;
	if (size - 1 > FUZZ_TARGET_MAX)
		size = FUZZ_TARGET_MAX + 1;
	memcpy(target, data + 1, size - 1);
	target[size - 1] = '\0';
	if ((q = strchr(target, '?')) != NULL)
		*q++ = '\0';
	check_route(target, (enum route_method)(data[0] % (ROUTE_OTHER + 1)));
	check_query(q);
	return 0;
}
