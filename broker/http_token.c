/*
 * The token connectors (api.md: Manus; GitHub and Vercel share the
 * shape): save a pasted token through a validating worker, report status
 * from the metadata the vault pushed (never calling the provider),
 * disconnect through the vault, and revalidate through a worker that may
 * read the one stored credential.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cd_limits.h"
#include "http.h"
#include "json.h"
#include "log.h"

struct token_conn {
	const char	*name;
	const char	*what;		/* for sentences: "Manus API key" */
	int		 enabled;	/* served by this build */
	int		 with_user;	/* answers carry the account */
};

static const struct token_conn token_conns[] = {
	{ "github", "GitHub token", 1, 1 },
	{ "vercel", "Vercel token", 1, 1 },
	{ "manus", "Manus API key", 1, 0 },
};

static const struct token_conn *
token_conn_find(const char *name)
{
	for (size_t i = 0; i < sizeof(token_conns) / sizeof(token_conns[0]);
	    i++)
		if (token_conns[i].enabled &&
		    strcmp(token_conns[i].name, name) == 0)
			return &token_conns[i];
	return NULL;
}

int
http_token_connector(const char *name)
{
	return token_conn_find(name) != NULL;
}

yajl_val
http_meta_connector(const char *connector)
{
	return json_obj_get(json_obj_get(http.meta, "connectors"), connector);
}

/* 503 when the vault has not told us anything yet. */
static yajl_val
token_meta(struct evhttp_request *req, const char *connector)
{
	yajl_val c = http_meta_connector(connector);

	if (http.meta == NULL || c == NULL) {
		http_error(req, 503, "The credential vault is not available "
		    "yet; try again in a few seconds.");
		return NULL;
	}
	return c;
}

/* Answer a worker's or the vault's failure with its sentence. */
static void
token_fail(struct evhttp_request *req, uint32_t status, const char *sentence)
{
	http_error(req, (int)status, "%s", sentence && *sentence ? sentence :
	    "The request failed; see the daemon's log.");
}

/* 200 {"ok": true[, "connected": true][, "user": {...}]}. */
static void
token_reply_ok(struct preq *p, int with_connected, yajl_val ident)
{
	const struct token_conn	*tc = token_conn_find(p->connector);
	yajl_gen		 g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kbool(g, "ok", 1);
	if (with_connected)
		json_gen_kbool(g, "connected", 1);
	if (tc != NULL && tc->with_user && ident != NULL) {
		json_gen_str(g, "user");
		json_gen_val(g, ident);
	}
	yajl_gen_map_close(g);
	http_reply_gen(p->req, 200, g);
}

static void
token_save_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	if (status != 200)
		token_fail(p->req, status, sentence);
	else
		token_reply_ok(p, 0, ident);
}

/* A token must be one line of printable ASCII without spaces. */
static int
token_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > CD_SECRET_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return 0;
	return 1;
}

void
http_token_save(struct evhttp_request *req, const char *connector)
{
	const struct token_conn	*tc = token_conn_find(connector);
	yajl_val		 body, t;
	struct preq		*p;
	char			*secret;

	if ((body = http_body_json(req)) == NULL)
		return;
	t = json_obj_get(body, "token");
	if (t == NULL || !YAJL_IS_STRING(t)) {
		http_error(req, 400, "The body needs a \"token\" string field "
		    "holding the %s.", tc->what);
		goto out;
	}
	if (!token_valid(t->u.string)) {
		http_error(req, 400, "The %s must be 1 to %d printable "
		    "characters without spaces.", tc->what, CD_SECRET_MAX);
		goto out;
	}
	if ((secret = strdup(t->u.string)) == NULL)
		fatalx("out of memory");
	if ((p = preq_new(req, connector, token_save_done)) == NULL) {
		msg_free_secret(secret);
		goto out;
	}
	preq_spawn(p, "token", "", JOB_OP_SAVE, secret);
out:
	json_free_secret(body);
}

/* Seconds before expiry at which a stored OAuth token is refreshed. */
#define TOKEN_REFRESH_AHEAD 120

/* An OAuth token (Vercel) due to expire soon? */
static int
token_refresh_due(const char *connector, yajl_val c)
{
	const char	*method = json_obj_str(c, "auth_method");
	yajl_val	 exp = json_obj_get(c, "expires_at");

	return strcmp(connector, "vercel") == 0 && method != NULL &&
	    strcmp(method, "oauth") == 0 && YAJL_IS_INTEGER(exp) &&
	    exp->u.number.i != 0 &&
	    exp->u.number.i - (long long)time(NULL) <= TOKEN_REFRESH_AHEAD &&
	    json_obj_str(c, "error") == NULL;
}

static void token_status_reply(struct evhttp_request *, const char *);

/* After a refresh (whatever came of it), report what is stored now. */
static void
token_refreshed(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	(void)status;
	(void)sentence;
	(void)ident;
	token_status_reply(p->req, p->connector);
}

void
http_token_status(struct evhttp_request *req, const char *connector)
{
	yajl_val	 c;
	struct preq	*p;

	if ((c = token_meta(req, connector)) == NULL)
		return;
	if (YAJL_IS_TRUE(json_obj_get(c, "stored")) &&
	    token_refresh_due(connector, c)) {
		if ((p = preq_new(req, connector, token_refreshed)) != NULL)
			preq_spawn(p, "refresh", "", JOB_OP_REFRESH, NULL);
		return;
	}
	token_status_reply(req, connector);
}

static void
token_status_reply(struct evhttp_request *req, const char *connector)
{
	const struct token_conn	*tc = token_conn_find(connector);
	yajl_val		 c, user;
	const char		*error, *method;
	int			 stored;
	yajl_gen		 g;

	if ((c = token_meta(req, connector)) == NULL)
		return;
	stored = YAJL_IS_TRUE(json_obj_get(c, "stored"));
	error = json_obj_str(c, "error");
	method = json_obj_str(c, "auth_method");
	user = json_obj_get(c, "user");
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kbool(g, "connected", stored && error == NULL);
	if (stored && error != NULL)
		json_gen_kstr(g, "error", error);
	if (stored && tc->with_user && YAJL_IS_OBJECT(user)) {
		json_gen_str(g, "user");
		json_gen_val(g, user);
	}
	if (stored && method != NULL)
		json_gen_kstr(g, "auth_method", method);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}

static void
token_disconnect_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	(void)ident;
	if (status != 200)
		token_fail(p->req, status, sentence);
	else if (strcmp(p->connector, "vercel") == 0)
		http_reply(p->req, 200, p->op ? "{\"ok\":true,\"revoked\":true}" :
		    "{\"ok\":true,\"revoked\":false}");
	else
		http_reply(p->req, 200, "{\"ok\":true}");
}

/* The revocation attempt is over (done or not): now forget the token. */
static void
token_revoked(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	struct preq	*d;
	yajl_val	 r = json_obj_get(ident, "revoked");

	(void)sentence;
	if ((d = preq_new(p->req, p->connector, token_disconnect_done)) ==
	    NULL)
		return;
	d->op = status == 200 && YAJL_IS_TRUE(r);
	preq_vault_delete(d, "");
}

void
http_token_disconnect(struct evhttp_request *req, const char *connector)
{
	struct preq	*p;
	yajl_val	 c = http_meta_connector(connector);
	const char	*method = json_obj_str(c, "auth_method");

	/* A Vercel OAuth token is revoked upstream first (when the client
	 * has a secret to authenticate the revocation with). */
	if (strcmp(connector, "vercel") == 0 && method != NULL &&
	    strcmp(method, "oauth") == 0 &&
	    YAJL_IS_TRUE(json_obj_get(c, "stored"))) {
		if ((p = preq_new(req, connector, token_revoked)) != NULL)
			preq_spawn(p, "revoke", "", JOB_OP_REVOKE, NULL);
		return;
	}
	if ((p = preq_new(req, connector, token_disconnect_done)) != NULL)
		preq_vault_delete(p, "");
}

static void
token_reconnect_done(struct preq *p, uint32_t status, const char *sentence,
    yajl_val ident)
{
	if (status != 200)
		token_fail(p->req, status, sentence);
	else
		token_reply_ok(p, 1, ident);
}

void
http_token_reconnect(struct evhttp_request *req, const char *connector)
{
	const struct token_conn	*tc = token_conn_find(connector);
	yajl_val		 c;
	struct preq		*p;

	if ((c = token_meta(req, connector)) == NULL)
		return;
	if (!YAJL_IS_TRUE(json_obj_get(c, "stored"))) {
		http_error(req, 404, "No %s is stored; save one first with "
		    "POST /api/connectors/%s/token.", tc->what, connector);
		return;
	}
	if ((p = preq_new(req, connector, token_reconnect_done)) != NULL)
		preq_spawn(p, "revalidate", "", JOB_OP_REVALIDATE, NULL);
}

/* Remotes of a connector's rclone type in the vault's list. */
static long long
token_count_remotes(yajl_val remotes, const char *connector)
{
	const char	*want = strcmp(connector, "gdrive") == 0 ? "drive" :
			    "onedrive";
	long long	 n = 0;

	for (size_t i = 0; YAJL_IS_ARRAY(remotes) && i < remotes->u.array.len;
	    i++) {
		const char *t = json_obj_str(remotes->u.array.values[i],
		    "type");

		if (t != NULL && strcmp(t, want) == 0)
			n++;
	}
	return n;
}

/* GET /api/connectors: every connector in one answer, from stored state. */
void
http_connectors_list(struct evhttp_request *req)
{
	static const char *const all[] = {
		"gdrive", "onedrive", "github", "vercel", "manus",
	};
	yajl_gen	 g;
	yajl_val	 c, remotes;

	if (http.meta == NULL) {
		http_error(req, 503, "The credential vault is not available "
		    "yet; try again in a few seconds.");
		return;
	}
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_str(g, "connectors");
	yajl_gen_array_open(g);
	remotes = json_obj_get(http.meta, "remotes");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		c = http_meta_connector(all[i]);
		yajl_gen_map_open(g);
		json_gen_kstr(g, "name", all[i]);
		if (http_rclone_connector(all[i])) {
			long long n = token_count_remotes(remotes, all[i]);

			json_gen_kbool(g, "connected", n > 0);
			json_gen_kint(g, "remotes", n);
		} else
			json_gen_kbool(g, "connected",
			    YAJL_IS_TRUE(json_obj_get(c, "stored")) &&
			    json_obj_str(c, "error") == NULL);
		if (YAJL_IS_OBJECT(json_obj_get(c, "user"))) {
			json_gen_str(g, "user");
			json_gen_val(g, json_obj_get(c, "user"));
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	http_reply_gen(req, 200, g);
}
