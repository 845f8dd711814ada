/*
 * The web console, in the http role: its static files (embedded at build
 * time, see scripts/embed.py), the one-time sign-in links, the cookie
 * sessions they open, and the cross-site request checks those sessions
 * need.
 *
 * A sign-in link carries 256 random bits, is valid once and for
 * CD_CONSOLE_LINK_TTL seconds; the broker makes one at start in the
 * foreground (make run prints it) and a holder of the API token can mint
 * more (POST /api/console/login). Opening it sets the cookie
 * "cd_console": 256 random bits, HttpOnly, SameSite=Strict, Path=/, for
 * CD_CONSOLE_SESSION_TTL seconds. With that cookie the page uses the API
 * like any client, except that a request other than GET or HEAD must
 * also carry the session's CSRF token in X-CSRF-Token, and is refused if
 * its Origin (or Sec-Fetch-Site) says another site sent it. Links and
 * sessions live in this process's memory: an http restart signs everyone
 * out, and a restart does not bring back a used link.
 */
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cd_limits.h"
#include "console.h"
#include "ctcmp.h"
#include "http.h"
#include "json.h"
#include "log.h"

#define CONSOLE_COOKIE		"cd_console"
#define CONSOLE_SECRET_HEX	64	/* 256 bits as lowercase hex */
#define CONSOLE_CSP	"default-src 'none'; script-src 'self'; " \
	"style-src 'self'; img-src 'self'; connect-src 'self'; " \
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
#define CONSOLE_PAGE_CSP "default-src 'none'; style-src 'self'; " \
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

struct console_secret {
	char		 value[CONSOLE_SECRET_HEX + 1];	/* "" when free */
	time_t		 expires;
	unsigned long	 made;		/* order of making: the oldest goes */
};

struct console_sess {
	struct console_secret id;	/* the cookie */
	char	 csrf[CONSOLE_SECRET_HEX + 1];
};

static struct console_secret	links[CD_CONSOLE_LINKS_MAX];
static struct console_sess	sessions[CD_CONSOLE_SESSIONS_MAX];
/* The session of the request being dispatched, when it came by cookie. */
static struct console_sess	*current;
static unsigned long		 console_made;

static void
console_random_hex(char *out)
{
	unsigned char r[CONSOLE_SECRET_HEX / 2];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatalx("no randomness for the console");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	explicit_bzero(r, sizeof(r));
}

static int
console_live(const struct console_secret *s, time_t now)
{
	return s->value[0] != '\0' && now < s->expires;
}

static void
console_forget(struct console_secret *s)
{
	explicit_bzero(s->value, sizeof(s->value));
	s->expires = 0;
}

/* A free or expired slot, else the oldest. */
static size_t
console_slot(struct console_secret *const *slots, size_t n, time_t now)
{
	size_t best = 0;

	for (size_t i = 0; i < n; i++) {
		if (!console_live(slots[i], now))
			return i;
		if (slots[i]->made < slots[best]->made)
			best = i;
	}
	return best;
}

/* Add a one-time link; value may be given (the broker's) or made here. */
static void
console_link_add(const char *value, char *out)
{
	struct console_secret	*slots[CD_CONSOLE_LINKS_MAX];
	struct console_secret	*l;
	time_t			 now = time(NULL);

	for (size_t i = 0; i < CD_CONSOLE_LINKS_MAX; i++)
		slots[i] = &links[i];
	l = slots[console_slot(slots, CD_CONSOLE_LINKS_MAX, now)];
	if (value != NULL)
		snprintf(l->value, sizeof(l->value), "%s", value);
	else
		console_random_hex(l->value);
	l->expires = now + CD_CONSOLE_LINK_TTL;
	l->made = ++console_made;
	if (out != NULL)
		memcpy(out, l->value, sizeof(l->value));
}

void
console_init(const char *startup_link)
{
	if (startup_link != NULL && strlen(startup_link) == CONSOLE_SECRET_HEX)
		console_link_add(startup_link, NULL);
}

/* The cd_console cookie's value if well formed, copied into out. */
static int
console_cookie(struct evhttp_request *req, char *out)
{
	const char	*h, *p;
	size_t		 nl = strlen(CONSOLE_COOKIE);

	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Cookie");
	for (p = h; p != NULL && *p != '\0'; ) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, CONSOLE_COOKIE, nl) == 0 && p[nl] == '=') {
			size_t n = strspn(p + nl + 1, "0123456789abcdef");

			if (n != CONSOLE_SECRET_HEX || (p[nl + 1 + n] != '\0' &&
			    p[nl + 1 + n] != ';'))
				return 0;
			memcpy(out, p + nl + 1, n);
			out[n] = '\0';
			return 1;
		}
		if ((p = strchr(p, ';')) != NULL)
			p++;
	}
	return 0;
}

int
console_authenticate(struct evhttp_request *req)
{
	char		 v[CONSOLE_SECRET_HEX + 1];
	time_t		 now = time(NULL);
	struct console_sess *found = NULL;

	current = NULL;
	if (!console_cookie(req, v))
		return 0;
	/* Compare with every live session, in constant time each. */
	for (size_t i = 0; i < CD_CONSOLE_SESSIONS_MAX; i++)
		if (console_live(&sessions[i].id, now) &&
		    ct_streq(v, sessions[i].id.value))
			found = &sessions[i];
	explicit_bzero(v, sizeof(v));
	current = found;
	return found != NULL;
}

/*
 * Whether a request that changes something came from another site. A
 * browser says where a request comes from (Origin, Sec-Fetch-Site); a
 * program such as curl sends neither. This holds for every client,
 * signed in or not, and matters most with api_auth = none, where a form
 * on any web page could otherwise post to the API from the operator's
 * browser. ui_origin, the configured web UI, may call the API across
 * origins. A cookie session must also prove, with its CSRF token, that
 * the request came from the console's own page.
 */
const char *
console_cross_site(struct evhttp_request *req)
{
	struct evkeyvalq	*in = evhttp_request_get_input_headers(req);
	const char		*tok = evhttp_find_header(in, "X-CSRF-Token");
	const char		*origin = evhttp_find_header(in, "Origin");
	const char		*site = evhttp_find_header(in, "Sec-Fetch-Site");
	const char		*host = evhttp_find_header(in, "Host");
	const char		*ui = http.ci.conf.ui_origin;
	char			 self[300];
	int			 from_ui;

	from_ui = current == NULL && origin != NULL && ui != NULL &&
	    strcmp(origin, ui) == 0;
	if (site != NULL && strcmp(site, "same-origin") != 0 &&
	    strcmp(site, "none") != 0 && !from_ui)
		return "This request came from another site and was refused.";
	if (origin != NULL && !from_ui) {
		snprintf(self, sizeof(self), "http://%s", host ? host : "");
		if (strcmp(origin, self) != 0 &&
		    strcmp(origin, http.ci.conf.public_url) != 0)
			return "This request came from another origin and was "
			    "refused.";
	}
	if (current == NULL)
		return NULL;
	if (tok == NULL || !ct_streq(tok, current->csrf))
		return "The console's CSRF token is missing or wrong: reload "
		    "the page and try again.";
	return NULL;
}

void
console_authenticate_none(void)
{
	current = NULL;
}

int
console_signed_in(void)
{
	return current != NULL;
}

/* The headers every console answer carries. */
static void
console_headers(struct evhttp_request *req, const char *type,
    const char *csp)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Content-Security-Policy", csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
}

/* A short page for the sign-in link's outcomes; text is our own. */
static void
console_page(struct evhttp_request *req, int code, const char *title,
    const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatalx("out of memory");
	console_headers(req, "text/html; charset=utf-8", CONSOLE_PAGE_CSP);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	evbuffer_add_printf(b, "<!doctype html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\""
	    "width=device-width, initial-scale=1\"><title>%s</title>"
	    "<link rel=\"stylesheet\" href=\"/console.css\"></head>\n<body>"
	    "<main><h1>%s</h1>\n<p>%s</p></main></body></html>\n", title,
	    title, text);
	http_access_log(req, code);
	evhttp_send_reply(req, code, code == 403 ? "Forbidden" : "OK", b);
	evbuffer_free(b);
}

void
console_asset(struct evhttp_request *req, const char *path)
{
	const struct console_asset	*a = NULL;
	const char			*inm;
	struct evbuffer			*b;

	for (size_t i = 0; i < console_asset_count; i++)
		if (strcmp(console_assets[i].path, path) == 0)
			a = &console_assets[i];
	if (a == NULL) {
		http_error(req, 404, "There is no such path in the API.");
		return;
	}
	console_headers(req, a->type, CONSOLE_CSP);
	evhttp_add_header(evhttp_request_get_output_headers(req), "ETag",
	    a->etag);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-cache");
	inm = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "If-None-Match");
	if (inm != NULL && strcmp(inm, a->etag) == 0) {
		http_access_log(req, 304);
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	http_access_log(req, 200);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

void
console_login(struct evhttp_request *req)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq	 params;
	struct console_secret	*slots[CD_CONSOLE_SESSIONS_MAX], *found = NULL;
	struct console_sess	*s;
	const char		*tok;
	time_t			 now = time(NULL);
	char			 cookie[160];

	TAILQ_INIT(&params);
	tok = q != NULL && evhttp_parse_query_str(q, &params) == 0 ?
	    evhttp_find_header(&params, "token") : NULL;
	for (size_t i = 0; tok != NULL && i < CD_CONSOLE_LINKS_MAX; i++)
		if (console_live(&links[i], now) &&
		    ct_streq(tok, links[i].value))
			found = &links[i];
	evhttp_clear_headers(&params);
	if (found == NULL) {
		console_page(req, 403, "This sign-in link does not work",
		    "It was already used, has expired, or was never valid. "
		    "Ask for a new one: restart <code>make run</code>, or "
		    "POST /api/console/login with the API token.");
		return;
	}
	console_forget(found);		/* one use */
	for (size_t i = 0; i < CD_CONSOLE_SESSIONS_MAX; i++)
		slots[i] = &sessions[i].id;
	s = &sessions[console_slot(slots, CD_CONSOLE_SESSIONS_MAX, now)];
	console_random_hex(s->id.value);
	console_random_hex(s->csrf);
	s->id.expires = now + CD_CONSOLE_SESSION_TTL;
	s->id.made = ++console_made;
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; "
	    "SameSite=Strict; Max-Age=%d", CONSOLE_COOKIE, s->id.value,
	    CD_CONSOLE_SESSION_TTL);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Set-Cookie", cookie);
	explicit_bzero(cookie, sizeof(cookie));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Location", "/");
	log_info("console: a browser signed in");
	console_page(req, 303, "Signed in", "<a href=\"/\">Open the "
	    "console</a>.");
}

void
console_session_info(struct evhttp_request *req)
{
	yajl_gen g;

	if (current == NULL) {
		http_error(req, 400, "This path is for the web console's "
		    "cookie session; API clients do not need it.");
		return;
	}
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "csrf", current->csrf);
	json_gen_kint(g, "expires_at", (long long)current->id.expires);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

void
console_link_mint(struct evhttp_request *req)
{
	char		 tok[CONSOLE_SECRET_HEX + 1], url[512];
	yajl_gen	 g;

	if (current != NULL) {
		http_error(req, 403, "A signed-in browser cannot make sign-in "
		    "links; use the API token.");
		return;
	}
	console_link_add(NULL, tok);
	snprintf(url, sizeof(url), "%s/login?token=%s",
	    http.ci.conf.public_url, tok);
	explicit_bzero(tok, sizeof(tok));
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "url", url);
	json_gen_kint(g, "expires_in", CD_CONSOLE_LINK_TTL);
	yajl_gen_map_close(g);
	explicit_bzero(url, sizeof(url));
	http_reply_gen(req, 200, g);
}

void
console_logout(struct evhttp_request *req)
{
	if (current == NULL) {
		http_error(req, 400, "Only a signed-in browser can sign out.");
		return;
	}
	console_forget(&current->id);
	explicit_bzero(current->csrf, sizeof(current->csrf));
	current = NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Set-Cookie", CONSOLE_COOKIE "=; Path=/; HttpOnly; "
	    "SameSite=Strict; Max-Age=0");
	http_reply(req, 200, "{\"ok\":true}");
}
