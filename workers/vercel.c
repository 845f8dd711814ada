/*
 * The Vercel OAuth flow (authorization code with PKCE S256). This worker
 * makes the state and the code verifier and never lets the verifier out:
 * http gets the authorize URL, the state and an opaque verifier id, and
 * later hands back the code with its state; the exchange, the identity
 * lookup (userinfo, falling back to /v2/user) and the handover to the
 * vault all happen here. Without a configured client id, a client is
 * registered once (RFC 7591) for the configured redirect URI and kept by
 * the vault under "vercel_client"; a client registered for another
 * redirect URI is registered again.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cd_limits.h"
#include "ctcmp.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "paste.h"
#include "provider.h"
#include "worker.h"

#define VC_SCOPE	"openid email profile offline_access"

struct vc_flow {
	char	 client_id[CD_OAUTH_CLIENT_MAX];
	/* "" for a public client */
	char	 client_secret[CD_OAUTH_CLIENT_MAX];
	char	 state[64];
	char	 verifier[64];
	char	 verifier_id[40];
};

/* n random bytes as unpadded base64url. */
static void
vc_random_b64url(char *out, size_t outlen, size_t n)
{
	unsigned char	 raw[48], enc[80];
	int		 len;

	if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
		fatalx("no randomness");
	len = EVP_EncodeBlock(enc, raw, (int)n);
	explicit_bzero(raw, sizeof(raw));
	for (int i = 0; i < len; i++)
		enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
	while (len > 0 && enc[len - 1] == '=')
		len--;
	snprintf(out, outlen, "%.*s", len, enc);
	explicit_bzero(enc, sizeof(enc));
}

/* S256: base64url(SHA-256(verifier)), unpadded. */
static void
vc_challenge(const char *verifier, char *out, size_t outlen)
{
	unsigned char	 md[32], enc[64];
	unsigned int	 mdlen = 0;
	int		 len;

	if (EVP_Digest(verifier, strlen(verifier), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != sizeof(md))
		fatalx("SHA-256 failed");
	len = EVP_EncodeBlock(enc, md, (int)mdlen);
	for (int i = 0; i < len; i++)
		enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
	while (len > 0 && enc[len - 1] == '=')
		len--;
	snprintf(out, outlen, "%.*s", len, enc);
}

static char *
vc_register_body(const char *redirect)
{
	yajl_gen	 g;
	char		*out;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "client_name", "connectord");
	json_gen_str(g, "redirect_uris");
	yajl_gen_array_open(g);
	json_gen_str(g, redirect);
	yajl_gen_array_close(g);
	json_gen_kstr(g, "token_endpoint_auth_method", "none");
	json_gen_str(g, "grant_types");
	yajl_gen_array_open(g);
	json_gen_str(g, "authorization_code");
	json_gen_str(g, "refresh_token");
	yajl_gen_array_close(g);
	json_gen_str(g, "response_types");
	yajl_gen_array_open(g);
	json_gen_str(g, "code");
	yajl_gen_array_close(g);
	json_gen_kstr(g, "scope", VC_SCOPE);
	yajl_gen_map_close(g);
	out = json_gen_take(g, NULL);
	yajl_gen_free(g);
	return out;
}

/* RFC 7591 registration; the vault keeps the client. 0 or -1 (answered). */
static int
vc_register(struct vc_flow *f, const char *redirect)
{
	const struct config	*conf = &worker.ci.conf;
	const char		*hdrs[] = { "Content-Type: application/json",
				    "Accept: application/json", NULL };
	struct curl_answer	 a;
	struct pv_answer	 pa;
	char			 url[1100], sentence[256];
	char			*body, *entry = NULL;
	int			 rc;

	snprintf(url, sizeof(url), "%s/login/oauth/register",
	    conf->vercel_api_url);
	if ((body = vc_register_body(redirect)) == NULL)
		fatalx("out of memory");
	rc = curl_post(url, hdrs, body, &a);
	pa = (struct pv_answer){ a.code, rc == 0 ? a.body : NULL, a.len, NULL };
	rc = pv_vercel_registered(&pa, redirect, f->client_id,
	    sizeof(f->client_id), f->client_secret, sizeof(f->client_secret),
	    &entry);
	free(body);
	curl_answer_free(&a);
	if (rc == -1) {
		worker_fail(502, "Vercel did not register an OAuth client for "
		    "connectord; try again later or set vercel_client_id.");
		return -1;
	}
	if (entry == NULL)
		log_warnx("the registered client is too large to keep");
	else if (worker_vault_put("vercel_client", entry, NULL, sentence,
	    sizeof(sentence)) != 200)
		log_warnx("the registered client could not be kept: %s",
		    sentence);
	msg_free_secret(entry);
	return 0;
}

/*
 * The client: configured, kept by the vault, or (only when starting a
 * flow, register != 0) registered now. A refresh or a revocation uses the
 * stored client as it is: its tokens are bound to it, whatever redirect
 * URI is configured today. 0, or -1 (answered when registering).
 */
static int
vc_client(struct vc_flow *f, int register_ok)
{
	const struct config	*conf = &worker.ci.conf;
	char			*entry = NULL, sentence[256], err[64];
	yajl_val		 c = NULL;

	if (conf->vercel_client_id != NULL) {
		snprintf(f->client_id, sizeof(f->client_id), "%s",
		    conf->vercel_client_id);
		return 0;
	}
	if (worker_vault_get("vercel_client", &entry, sentence,
	    sizeof(sentence)) == 200 && entry != NULL)
		c = json_parse(entry, strlen(entry), CD_MSG_STR_MAX, err,
		    sizeof(err));
	msg_free_secret(entry);
	if ((pv_vercel_client_usable(c, conf->vercel_redirect_uri) ||
	    (!register_ok && json_obj_str(c, "client_id") != NULL)) &&
	    pv_vercel_client(c, f->client_id, sizeof(f->client_id),
	    f->client_secret, sizeof(f->client_secret)) == 0) {
		json_free_secret(c);
		return 0;
	}
	if (c != NULL)
		json_free_secret(c);
	if (!register_ok)
		return -1;
	return vc_register(f, conf->vercel_redirect_uri);
}

/* Tell http the authorize URL, the state and the verifier's id. */
static void
vc_report(struct vc_flow *f)
{
	const struct config	*conf = &worker.ci.conf;
	char			 challenge[64], url[8192];
	char			 eid[800], ered[3200], esc[200];
	yajl_gen		 g;

	vc_challenge(f->verifier, challenge, sizeof(challenge));
	if (paste_encode(f->client_id, eid, sizeof(eid)) == -1 ||
	    paste_encode(conf->vercel_redirect_uri, ered, sizeof(ered)) == -1 ||
	    paste_encode(VC_SCOPE, esc, sizeof(esc)) == -1)
		fatalx("client id or redirect URI too long");
	snprintf(url, sizeof(url), "%s?client_id=%s&response_type=code&"
	    "redirect_uri=%s&state=%s&code_challenge=%s&"
	    "code_challenge_method=S256&scope=%s", conf->vercel_authorize_url,
	    eid, ered, f->state, challenge, esc);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "authorize_url", url);
	json_gen_kstr(g, "state", f->state);
	json_gen_kstr(g, "code_verifier_id", f->verifier_id);
	yajl_gen_map_close(g);
	worker_progress_gen(g);
}

/* Wait (until the deadline kills us) for http's code; malloc'd. */
static char *
vc_wait_code(struct vc_flow *f)
{
	struct msg	 m;
	uint32_t	 op;
	char		*code = NULL, *state = NULL;
	int		 rc;

	rc = msg_recv(worker.httpfd, &m, CD_MSG_PAYLOAD_MAX);
	if (rc == 0)
		fatalx("http went away");
	if (rc != 1)
		fatalx("protocol violation by http: malformed frame");
	m.secret = 1;
	if (m.hdr.type != MSG_JOB_REQ || m.hdr.job != worker.job ||
	    msg_get_u32(&m, &op) == -1 || op != JOB_OP_SUBMIT ||
	    msg_get_str(&m, &code, NULL) == -1 ||
	    msg_get_str(&m, &state, NULL) == -1 || msg_get_end(&m) == -1 ||
	    !ct_streq(state, f->state))
		fatalx("protocol violation by http: malformed code handover");
	msg_free(&m);
	free(state);
	return code;
}

/* The token request's form body. malloc'd. */
static char *
vc_token_form(struct vc_flow *f, const char *code)
{
	const struct config	*conf = &worker.ci.conf;
	char			 ec[3 * PASTE_FIELD_MAX + 1], eid[800];
	char			 ered[3200], esec[800], *out;
	size_t			 len;

	if (paste_encode(code, ec, sizeof(ec)) == -1 ||
	    paste_encode(f->client_id, eid, sizeof(eid)) == -1 ||
	    paste_encode(conf->vercel_redirect_uri, ered, sizeof(ered)) == -1 ||
	    paste_encode(f->client_secret, esec, sizeof(esec)) == -1)
		return NULL;
	len = strlen(ec) + strlen(eid) + strlen(ered) + strlen(esec) + 256;
	if ((out = malloc(len)) == NULL)
		fatalx("out of memory");
	snprintf(out, len, "grant_type=authorization_code&code=%s&client_id=%s"
	    "&redirect_uri=%s&code_verifier=%s%s%s", ec, eid, ered,
	    f->verifier, esec[0] ? "&client_secret=" : "", esec);
	explicit_bzero(ec, sizeof(ec));
	explicit_bzero(esec, sizeof(esec));
	return out;
}

/* Exchange the code. The token answer (parsed) or NULL (r filled). */
static yajl_val
vc_exchange(struct vc_flow *f, const char *code, struct worker_result *r)
{
	const char	*hdrs[] = { "Content-Type: "
			    "application/x-www-form-urlencoded",
			    "Accept: application/json", NULL };
	struct curl_answer a;
	struct pv_answer pa;
	struct pv_verdict v;
	char		 url[1100], *form;
	yajl_val	 tok = NULL;
	int		 rc;

	snprintf(url, sizeof(url), "%s/login/oauth/token",
	    worker.ci.conf.vercel_api_url);
	if ((form = vc_token_form(f, code)) == NULL) {
		r->status = 400;
		snprintf(r->sentence, sizeof(r->sentence), "The code is too "
		    "long.");
		return NULL;
	}
	rc = curl_post(url, hdrs, form, &a);
	msg_free_secret(form);
	memset(&v, 0, sizeof(v));
	pa = (struct pv_answer){ a.code, rc == 0 ? a.body : NULL, a.len, NULL };
	if (a.code == 0) {
		r->status = 502;
		snprintf(r->sentence, sizeof(r->sentence), "Vercel could not be "
		    "reached (%s); try again later.", a.error);
	} else if ((tok = pv_vercel_token(&pa, &v)) == NULL) {
		r->status = v.status;
		snprintf(r->sentence, sizeof(r->sentence), "%s", v.sentence);
	}
	curl_answer_free(&a);
	return tok;
}

/* The account: OIDC userinfo, else /v2/user (pv_vercel_account()).
 * malloc'd JSON or NULL. */
static char *
vc_identity(const char *token)
{
	static const char *const paths[] = { "/login/oauth/userinfo",
	    "/v2/user" };
	struct curl_answer	 a;
	struct pv_answer	 pa;
	char			 url[1100], auth[CD_SECRET_MAX + 64];
	const char		*hdrs[] = { auth, "Accept: application/json",
				    NULL };
	char			*id = NULL;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	for (size_t i = 0; i < 2 && id == NULL; i++) {
		snprintf(url, sizeof(url), "%s%s",
		    worker.ci.conf.vercel_api_url, paths[i]);
		if (curl_get(url, hdrs, &a) == 0) {
			pa = (struct pv_answer){ a.code, a.body, a.len, NULL };
			id = pv_vercel_account(&pa);
		}
		curl_answer_free(&a);
	}
	explicit_bzero(auth, sizeof(auth));
	return id;
}

void
vercel_run(uint32_t op)
{
	static struct vc_flow	 f;
	struct worker_result	 r;
	yajl_val		 tok;
	char			*code, *entry;

	if (op != JOB_OP_OAUTH)
		fatalx("protocol violation by http: op %u for Vercel OAuth", op);
	memset(&r, 0, sizeof(r));
	if (vc_client(&f, 1) == -1)
		return;
	vc_random_b64url(f.state, sizeof(f.state), 32);
	vc_random_b64url(f.verifier, sizeof(f.verifier), 32);
	vc_random_b64url(f.verifier_id, sizeof(f.verifier_id), 16);
	vc_report(&f);
	code = vc_wait_code(&f);
	tok = vc_exchange(&f, code, &r);
	msg_free_secret(code);
	explicit_bzero(f.verifier, sizeof(f.verifier));
	if (tok != NULL &&
	    (r.identity = vc_identity(json_obj_str(tok, "access_token"))) ==
	    NULL) {
		/* Never store a token for an account nobody can name: the
		 * same rule as a pasted token's check. */
		r.status = 502;
		snprintf(r.sentence, sizeof(r.sentence), "Vercel answered the "
		    "account lookup (userinfo and /v2/user) with something "
		    "unusable; start again later.");
	} else if (tok != NULL) {
		if ((entry = pv_vercel_oauth_entry(tok, r.identity,
		    time(NULL))) == NULL) {
			r.status = 502;
			snprintf(r.sentence, sizeof(r.sentence), "Vercel's "
			    "answer is too large to store; start again.");
		} else
			r.status = worker_vault_put("vercel", entry, r.identity,
			    r.sentence, sizeof(r.sentence));
		msg_free_secret(entry);
	}
	if (tok != NULL)
		json_free_secret(tok);
	if (r.status == 200)
		r.sentence[0] = '\0';
	worker_answer(&r);
	free(r.identity);
	explicit_bzero(&f, sizeof(f));
}

/* The refresh grant's form body. malloc'd, or NULL if too long. */
static char *
vc_refresh_form(struct vc_flow *f, const char *refresh)
{
	char	 er[3 * CD_SECRET_MAX + 1], eid[800], esec[800], *out;
	size_t	 len;

	if (paste_encode(refresh, er, sizeof(er)) == -1 ||
	    paste_encode(f->client_id, eid, sizeof(eid)) == -1 ||
	    paste_encode(f->client_secret, esec, sizeof(esec)) == -1)
		return NULL;
	len = strlen(er) + strlen(eid) + strlen(esec) + 128;
	if ((out = malloc(len)) == NULL)
		fatalx("out of memory");
	snprintf(out, len, "grant_type=refresh_token&refresh_token=%s&"
	    "client_id=%s%s%s", er, eid, esec[0] ? "&client_secret=" : "",
	    esec);
	explicit_bzero(er, sizeof(er));
	explicit_bzero(esec, sizeof(esec));
	return out;
}

/* POST the refresh grant. 1 new tokens in *tok, 0 refused, -1 failed. */
static int
vc_refresh_post(struct vc_flow *f, const char *refresh, yajl_val *tok)
{
	const char	*hdrs[] = { "Content-Type: "
			    "application/x-www-form-urlencoded",
			    "Accept: application/json", NULL };
	struct curl_answer a;
	struct pv_answer pa;
	struct pv_verdict v;
	char		 url[1100], *form;
	int		 rc;

	*tok = NULL;
	snprintf(url, sizeof(url), "%s/login/oauth/token",
	    worker.ci.conf.vercel_api_url);
	if ((form = vc_refresh_form(f, refresh)) == NULL)
		return 0;
	rc = curl_post(url, hdrs, form, &a);
	msg_free_secret(form);
	memset(&v, 0, sizeof(v));
	pa = (struct pv_answer){ a.code, rc == 0 ? a.body : NULL, a.len, NULL };
	if (a.code == 0)
		rc = -1;
	else if ((*tok = pv_vercel_token(&pa, &v)) != NULL)
		rc = 1;
	else
		rc = v.status == 422 ? 0 : -1;
	curl_answer_free(&a);
	return rc;
}

/* Refresh with the stored refresh token; r gets the outcome. */
static void
vc_refresh(struct vc_flow *f, yajl_val old, struct worker_result *r)
{
	const char	*refresh = json_obj_str(old, "refresh_token");
	yajl_val	 tok;
	char		*entry;
	int		 rc;

	if (refresh == NULL || *refresh == '\0')
		rc = 0;
	else
		rc = vc_refresh_post(f, refresh, &tok);
	if (rc == 1) {
		entry = pv_vercel_refreshed(old, tok, time(NULL));
		json_free_secret(tok);
		if (entry == NULL) {
			r->status = 502;
			snprintf(r->sentence, sizeof(r->sentence), "Vercel's "
			    "answer is too large to store; try again later.");
			return;
		}
		r->status = worker_vault_put("vercel", entry, NULL, r->sentence,
		    sizeof(r->sentence));
		msg_free_secret(entry);
		return;
	}
	r->status = rc == 0 ? 422 : 502;
	snprintf(r->sentence, sizeof(r->sentence), rc == 0 ? "Vercel refused "
	    "to refresh the token; connect Vercel again." : "Vercel could not "
	    "refresh the token now; try again later.");
	if (rc == 0 && worker_vault_mark("vercel", 0, r->sentence, NULL) != 200)
		log_warnx("the refused refresh could not be recorded");
}

void
vercel_refresh_run(uint32_t op)
{
	static struct vc_flow	 f;
	struct worker_result	 r;
	char			*entry = NULL, err[64];
	yajl_val		 old = NULL;

	if (op != JOB_OP_REFRESH)
		fatalx("protocol violation by http: op %u for a refresh", op);
	memset(&r, 0, sizeof(r));
	r.status = worker_vault_get("vercel", &entry, r.sentence,
	    sizeof(r.sentence));
	if (r.status == 200 && entry != NULL)
		old = json_parse(entry, strlen(entry), CD_MSG_STR_MAX, err,
		    sizeof(err));
	msg_free_secret(entry);
	if (r.status == 200 && old == NULL) {
		r.status = 500;
		snprintf(r.sentence, sizeof(r.sentence), "The stored Vercel "
		    "entry cannot be read.");
	}
	if (old != NULL && vc_client(&f, 0) == 0)
		vc_refresh(&f, old, &r);
	else if (old != NULL) {
		r.status = 422;
		snprintf(r.sentence, sizeof(r.sentence), "The Vercel OAuth "
		    "client is gone, so the token cannot be refreshed; connect "
		    "Vercel again.");
	}
	if (old != NULL)
		json_free_secret(old);
	if (r.status != 0) {
		if (r.status == 200)
			r.sentence[0] = '\0';
		worker_answer(&r);
	}
	explicit_bzero(&f, sizeof(f));
}

/* POST one revocation (RFC 7009) with HTTP Basic client credentials. */
static int
vc_revoke_post(struct vc_flow *f, const char *token, const char *hint)
{
	struct curl_answer	 a;
	char			 url[1100], basic[600], auth[1000];
	char			 et[3 * CD_SECRET_MAX + 1], *form;
	unsigned char		 enc[900];
	const char		*hdrs[] = { auth, "Content-Type: "
				    "application/x-www-form-urlencoded", NULL };
	size_t			 len;
	int			 ok;

	snprintf(basic, sizeof(basic), "%s:%s", f->client_id, f->client_secret);
	EVP_EncodeBlock(enc, (const unsigned char *)basic, (int)strlen(basic));
	snprintf(auth, sizeof(auth), "Authorization: Basic %s", enc);
	if (paste_encode(token, et, sizeof(et)) == -1)
		return 0;
	len = strlen(et) + 64;
	if ((form = malloc(len)) == NULL)
		fatalx("out of memory");
	snprintf(form, len, "token=%s&token_type_hint=%s", et, hint);
	snprintf(url, sizeof(url), "%s/login/oauth/token/revoke",
	    worker.ci.conf.vercel_api_url);
	ok = curl_post(url, hdrs, form, &a) == 0 && a.code == 200;
	curl_answer_free(&a);
	msg_free_secret(form);
	explicit_bzero(basic, sizeof(basic));
	explicit_bzero(auth, sizeof(auth));
	explicit_bzero(enc, sizeof(enc));
	explicit_bzero(et, sizeof(et));
	return ok;
}

void
vercel_revoke_run(uint32_t op)
{
	static struct vc_flow	 f;
	struct worker_result	 r;
	char			*entry = NULL, err[64], sentence[256];
	yajl_val		 e = NULL, c = NULL;
	int			 revoked = 0;

	if (op != JOB_OP_REVOKE)
		fatalx("protocol violation by http: op %u for a revoke", op);
	memset(&r, 0, sizeof(r));
	if (worker_vault_get("vercel", &entry, sentence, sizeof(sentence)) ==
	    200 && entry != NULL)
		e = json_parse(entry, strlen(entry), CD_MSG_STR_MAX, err,
		    sizeof(err));
	msg_free_secret(entry);
	entry = NULL;
	if (worker_vault_get("vercel_client", &entry, sentence,
	    sizeof(sentence)) == 200 && entry != NULL)
		c = json_parse(entry, strlen(entry), CD_MSG_STR_MAX, err,
		    sizeof(err));
	msg_free_secret(entry);
	if (pv_vercel_client(c, f.client_id, sizeof(f.client_id),
	    f.client_secret, sizeof(f.client_secret)) == 0 &&
	    json_obj_str(c, "client_secret") != NULL &&
	    json_obj_str(e, "access_token") != NULL) {
		/* The refresh token outlives the access token: revoke it
		 * too; "revoked" reports the access token's fate. */
		if (json_obj_str(e, "refresh_token") != NULL)
			(void)vc_revoke_post(&f, json_obj_str(e,
			    "refresh_token"), "refresh_token");
		revoked = vc_revoke_post(&f, json_obj_str(e, "access_token"),
		    "access_token");
	}
	if (e != NULL)
		json_free_secret(e);
	if (c != NULL)
		json_free_secret(c);
	r.status = 200;
	r.identity = strdup(revoked ? "{\"revoked\":true}" :
	    "{\"revoked\":false}");
	worker_answer(&r);
	free(r.identity);
	explicit_bzero(&f, sizeof(f));
}
