/*
 * The vault's operations on credentials: grants registered by the broker,
 * the scoped requests of workers (store, read, mark), deletes asked by
 * http, and the non-secret metadata pushed to http after every change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cd_limits.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "vault.h"

/* Connectors stored in mcp-tokens.json and the member holding the
 * secret, which must be a non-empty string for "connected". */
struct vault_conn {
	const char	*name;
	const char	*secret;
};

static const struct vault_conn vault_conns[] = {
	{ "github", "access_token" },
	{ "vercel", "access_token" },
	{ "manus", "api_key" },
	{ "vercel_client", "client_id" },
};

static const uint16_t permit_worker[] = {
	MSG_CRED_PUT_REQ, MSG_CRED_GET_REQ, MSG_CRED_MARK_REQ,
};

static const struct vault_conn *
vault_conn_find(const char *name)
{
	for (size_t i = 0; i < sizeof(vault_conns) / sizeof(vault_conns[0]);
	    i++)
		if (strcmp(vault_conns[i].name, name) == 0)
			return &vault_conns[i];
	return NULL;
}

/*
 * The grant check of every worker request, once its connector is known:
 * the operation must be granted and not used yet. The Vercel OAuth
 * worker may also read and store the OAuth client ("vercel_client"),
 * each once, tracked apart from its token.
 */
static void
vault_grant_use(struct grant *gr, uint16_t type, const char *conn)
{
	uint32_t op, used;

	op = type == MSG_CRED_PUT_REQ ? GRANT_OP_PUT : type ==
	    MSG_CRED_GET_REQ ? GRANT_OP_GET : GRANT_OP_MARK;
	used = op;
	if (strcmp(conn, "vercel_client") == 0 && type != MSG_CRED_MARK_REQ) {
		op = GRANT_OP_CLIENT;
		used = type == MSG_CRED_PUT_REQ ? VAULT_USED_CLIENT_PUT :
		    VAULT_USED_CLIENT_GET;
	} else if (strcmp(conn, gr->connector) != 0)
		vault_violation("worker", "a request for another connector");
	if (!(gr->ops & op) || (gr->used & used))
		vault_violation("worker", "a request outside its grant");
	gr->used |= used;
}

/* Map a store error to the HTTP status the API reports. */
uint32_t
vault_store_status(enum store_err e)
{
	switch (e) {
	case STORE_OK: return 200;
	case STORE_ERR_NOSPACE:
	case STORE_ERR_TOO_LARGE: return 507;
	case STORE_ERR_LOG: return 503;
	case STORE_ERR_CORRUPT:
	case STORE_ERR_IO:
		break;
	}
	return 500;
}

void
vault_status_load(void)
{
	char err[256];

	if (store_json_load(vault.statefd, STATUS_FILE, &vault.status, err,
	    sizeof(err)) != STORE_OK) {
		log_warnx("%s; starting with empty status", err);
		vault.status = json_new_obj();
	}
	if (vault.status == NULL)
		fatalx("out of memory");
}

static void
vault_status_save(void)
{
	char	*buf, err[256];
	size_t	 len;

	if ((buf = json_dump(vault.status, 1, &len)) == NULL) {
		log_warnx("cannot serialise the status");
		return;
	}
	if (store_write(vault.statefd, STATUS_FILE, buf, len, NULL, NULL, err,
	    sizeof(err)) != STORE_OK)
		log_warnx("%s", err);
	free(buf);
}

/* Set status[connector][key] = v (v may be NULL to delete). */
static void
vault_status_set(const char *connector, const char *key, yajl_val v)
{
	yajl_val c = json_obj_get(vault.status, connector);

	if (c == NULL) {
		if (v == NULL)
			return;
		if ((c = json_new_obj()) == NULL ||
		    json_obj_set(vault.status, connector, c) == -1)
			fatalx("out of memory");
	}
	if (v == NULL)
		json_obj_del(c, key);
	else if (json_obj_set(c, key, v) == -1)
		fatalx("out of memory");
}

static const char *const vault_op_names[] = { "put", "get", "mark", "delete" };
static const char *const vault_outcome_names[] = {
	"ok", "not_found", "storage_full", "log_unwritable", "error",
};

void
vault_count(int op, uint32_t status)
{
	int out;

	switch (status) {
	case 200: out = 0; break;
	case 404: out = 1; break;
	case 507: out = 2; break;
	case 503: out = 3; break;
	default: out = 4; break;
	}
	vault.ops[op][out]++;
}

/* "vault_ops": {"put": {"ok": n, ...}, ...}: counts, nothing secret. */
static void
vault_ops_gen(yajl_gen g)
{
	json_gen_str(g, "vault_ops");
	yajl_gen_map_open(g);
	for (size_t i = 0; i < 4; i++) {
		json_gen_str(g, vault_op_names[i]);
		yajl_gen_map_open(g);
		for (size_t k = 0; k < 5; k++)
			json_gen_kint(g, vault_outcome_names[k],
			    (long long)vault.ops[i][k]);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
}

/* Build {"connectors": {name: {connected, error, user}}, "store_error",
 * "remotes", "vault_ops"}. */
static char *
vault_meta_build(size_t *len)
{
	yajl_gen	 g;
	yajl_val	 tokens = NULL, entry, st;
	char		 err[256], *out;
	enum store_err	 e;

	e = store_json_load(vault.wsfd, TOKENS_FILE, &tokens, err, sizeof(err));
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "store_error", e == STORE_OK ? NULL : err);
	json_gen_str(g, "connectors");
	yajl_gen_map_open(g);
	for (size_t i = 0; i < sizeof(vault_conns) / sizeof(vault_conns[0]);
	    i++) {
		const char *sec;

		entry = json_obj_get(tokens, vault_conns[i].name);
		sec = json_obj_str(entry, vault_conns[i].secret);
		st = json_obj_get(vault.status, vault_conns[i].name);
		json_gen_str(g, vault_conns[i].name);
		yajl_gen_map_open(g);
		json_gen_kbool(g, "stored", sec != NULL && *sec != '\0');
		json_gen_kstr(g, "auth_method", json_obj_str(entry,
		    "auth_method"));
		json_gen_kstr(g, "error", json_obj_str(st, "error"));
		/* When an OAuth token expires is not a secret, and lets
		 * http refresh it before reporting it. */
		if (YAJL_IS_INTEGER(json_obj_get(entry, "expires_at")))
			json_gen_kint(g, "expires_at",
			    json_obj_get(entry, "expires_at")->u.number.i);
		json_gen_str(g, "user");
		if (json_obj_get(st, "user") != NULL)
			json_gen_val(g, json_obj_get(st, "user"));
		else
			yajl_gen_null(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	vault_rclone_meta(g);
	vault_ops_gen(g);
	yajl_gen_map_close(g);
	out = json_gen_take(g, len);
	yajl_gen_free(g);
	if (tokens != NULL)
		json_free_secret(tokens);
	return out;
}

void
vault_meta_push(void)
{
	struct msg	 m;
	char		*meta;
	size_t		 len;

	if (vault.httpfd == -1)
		return;
	if ((meta = vault_meta_build(&len)) == NULL)
		fatalx("out of memory");
	msg_init(&m, MSG_META_PUSH, 0);
	if (msg_put_strn(&m, meta, len) == -1 ||
	    msg_send(vault.httpfd, &m) == -1)
		log_warn("cannot push metadata to http");
	msg_free(&m);
	free(meta);
}

static void
vault_answer(int fd, uint16_t type, uint32_t job, uint32_t status,
    const char *sentence, const char *secret)
{
	struct msg m;

	vault_count(type == MSG_CRED_PUT_ANS ? VAULT_OP_PUT :
	    type == MSG_CRED_GET_ANS ? VAULT_OP_GET : VAULT_OP_MARK, status);
	msg_init(&m, type, job);
	m.secret = secret != NULL;
	if (msg_put_u32(&m, status) == -1 ||
	    (type != MSG_CRED_MARK_ANS && msg_put_str(&m, sentence) == -1) ||
	    (type == MSG_CRED_GET_ANS && msg_put_str(&m, secret) == -1) ||
	    msg_send(fd, &m) == -1)
		log_warn("cannot answer %s", msg_type_name(type));
	msg_free(&m);
	/* A success is followed by a push (http syncs before it answers);
	 * a failure is not, so push its count now. */
	if (status != 200)
		vault_meta_push();
}

/* The commit hook of a write: its IPC log line. */
int
vault_log_cb(void *arg)
{
	return vault_log(arg);
}

static void
vault_rec_worker(struct audit_rec *rec, const struct grant *gr,
    uint16_t type)
{
	memset(rec, 0, sizeof(*rec));
	rec->peer = "worker";
	rec->job = gr->job;
	rec->kind = gr->kind;
	rec->pid = (pid_t)gr->pid;
	rec->type = msg_type_name(type);
	rec->connector = gr->connector;
	rec->remote = gr->remote[0] ? gr->remote : NULL;
}

/* Replace mcp-tokens.json[connector] with entry, under the lock. */
static enum store_err
vault_tokens_update(const char *connector, yajl_val entry,
    struct audit_rec *rec, char *err, size_t errlen)
{
	yajl_val	 tokens;
	enum store_err	 e;
	char		*buf = NULL;
	size_t		 len;
	int		 lock;

	if ((lock = store_lock(vault.wsfd)) == -1) {
		snprintf(err, errlen, "cannot lock the workspace: %s",
		    strerror(errno));
		json_free_secret(entry);
		return STORE_ERR_IO;
	}
	e = store_json_load(vault.wsfd, TOKENS_FILE, &tokens, err, errlen);
	if (e != STORE_OK) {
		json_free_secret(entry);
		goto out;
	}
	if (entry == NULL && json_obj_get(tokens, connector) == NULL) {
		/* Nothing to remove: log the request, leave the file be. */
		json_free_secret(tokens);
		e = vault_log_cb(rec) == 0 ? STORE_OK : STORE_ERR_LOG;
		if (e == STORE_ERR_LOG)
			snprintf(err, errlen, "the IPC log cannot be written");
		goto out;
	}
	if ((e = store_json_edit(tokens, connector, entry, &buf, &len, err,
	    errlen)) == STORE_OK)
		e = store_write(vault.wsfd, TOKENS_FILE, buf, len,
		    vault_log_cb, rec, err, errlen);
	json_free_secret(tokens);
out:
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	store_unlock(lock);
	return e;
}

/* Log a refusal; the log failing too changes nothing for the caller. */
static void
vault_log_outcome(struct audit_rec *rec, const char *outcome,
    const char *detail)
{
	rec->outcome = outcome;
	rec->detail = detail;
	rec->nfp = 0;
	(void)vault_log(rec);
}

/* A remote's keys for rclone.conf. */
static void
vault_put_remote(struct grant *gr, uint16_t type, const char *json,
    size_t len)
{
	struct audit_rec	 rec;
	yajl_val		 entry;
	char			 err[256] = "";
	uint32_t		 status;

	entry = json_parse(json, len, CD_VAULT_ENTRY_MAX, err, sizeof(err));
	if (!YAJL_IS_OBJECT(entry))
		vault_violation("worker", "CRED_PUT_REQ with a malformed entry");
	vault_rec_worker(&rec, gr, type);
	rec.outcome = "ok";
	status = vault_rclone_put(gr, entry, &rec, err, sizeof(err));
	if (status != 200) {
		log_warnx("%s", err);
		if (status != 503)
			vault_log_outcome(&rec, "error", err);
	}
	/* Metadata first: http has it before the worker can report. */
	if (status == 200)
		vault_meta_push();
	vault_answer(gr->fd, MSG_CRED_PUT_ANS, gr->job, status,
	    status == 200 ? "" : err, NULL);
	json_free_secret(entry);
}

static void
vault_put(struct grant *gr, struct msg *m)
{
	const struct vault_conn	*vc;
	struct audit_rec	 rec;
	yajl_val		 entry, user = NULL, kept;
	char			*conn = NULL, *json = NULL, *ident = NULL;
	char			 err[256];
	const char		*sec;
	size_t			 len = 0, ilen = 0;
	enum store_err		 e;

	if (msg_get_str(m, &conn, NULL) == -1 ||
	    msg_get_str(m, &json, &len) == -1 ||
	    msg_get_str(m, &ident, &ilen) == -1 || msg_get_end(m) == -1)
		vault_violation("worker", "malformed CRED_PUT_REQ");
	vault_grant_use(gr, m->hdr.type, conn);
	if (vault_rclone_type(conn) != NULL) {
		vault_put_remote(gr, m->hdr.type, json, len);
		free(conn);
		free(ident);
		msg_free_secret(json);
		return;
	}
	if ((vc = vault_conn_find(conn)) == NULL)
		vault_violation("worker", "CRED_PUT_REQ for an unknown connector");
	entry = json_parse(json, len, CD_VAULT_ENTRY_MAX, err, sizeof(err));
	sec = json_obj_str(entry, vc->secret);
	if (!YAJL_IS_OBJECT(entry) || sec == NULL || *sec == '\0')
		vault_violation("worker", "CRED_PUT_REQ with a malformed entry");
	if (ilen > 0 && ((user = json_parse(ident, ilen, CD_VAULT_ENTRY_MAX, err,
	    sizeof(err))) == NULL || !YAJL_IS_OBJECT(user)))
		vault_violation("worker", "CRED_PUT_REQ with a bad identity");
	/* The entry goes into the tokens tree; keep a copy for the files
	 * that derive from it. */
	if ((kept = json_copy(entry)) == NULL)
		fatalx("out of memory");
	vault_rec_worker(&rec, gr, m->hdr.type);
	rec.outcome = "ok";
	rec.fp[0].name = vc->secret;
	rec.fp[0].data = sec;
	rec.fp[0].len = strlen(sec);
	rec.nfp = 1;
	e = vault_tokens_update(conn, entry, &rec, err, sizeof(err));
	if (e != STORE_OK) {
		log_warnx("%s", err);
		if (e != STORE_ERR_LOG)
			vault_log_outcome(&rec, "error", err);
		vault_answer(gr->fd, MSG_CRED_PUT_ANS, gr->job,
		    vault_store_status(e), err, NULL);
	} else {
		if (strcmp(conn, "github") == 0)
			e = vault_github_file(kept, user, err, sizeof(err));
		vault_status_set(conn, "error", NULL);
		vault_status_set(conn, "user", user ? json_copy(user) : NULL);
		vault_status_save();
		vault_meta_push();
		vault_answer(gr->fd, MSG_CRED_PUT_ANS, gr->job,
		    vault_store_status(e), e == STORE_OK ? "" : err, NULL);
	}
	json_free_secret(kept);
	if (user != NULL)
		yajl_tree_free(user);
	free(conn);
	free(ident);
	msg_free_secret(json);
}

static void
vault_get(struct grant *gr, struct msg *m)
{
	const struct vault_conn	*vc;
	struct audit_rec	 rec;
	yajl_val		 tokens, entry;
	char			*conn = NULL, *out = NULL, err[256];
	const char		*sec;
	enum store_err		 e;

	if (msg_get_str(m, &conn, NULL) == -1 || msg_get_end(m) == -1)
		vault_violation("worker", "malformed CRED_GET_REQ");
	vault_grant_use(gr, m->hdr.type, conn);
	if ((vc = vault_conn_find(conn)) == NULL)
		vault_violation("worker", "CRED_GET_REQ for an unknown connector");
	vault_rec_worker(&rec, gr, m->hdr.type);
	e = store_json_load(vault.wsfd, TOKENS_FILE, &tokens, err, sizeof(err));
	entry = json_obj_get(tokens, conn);
	sec = json_obj_str(entry, vc->secret);
	if (e != STORE_OK || sec == NULL || *sec == '\0') {
		vault_log_outcome(&rec, e != STORE_OK ? "error" : "not_found",
		    e != STORE_OK ? err : NULL);
		vault_answer(gr->fd, MSG_CRED_GET_ANS, gr->job,
		    e != STORE_OK ? vault_store_status(e) : 404, e != STORE_OK ?
		    err : "Nothing is stored for this connector.", "");
		goto out;
	}
	rec.outcome = "ok";
	rec.fp[0].name = vc->secret;
	rec.fp[0].data = sec;
	rec.fp[0].len = strlen(sec);
	rec.nfp = 1;
	if (vault_log(&rec) == -1) {
		vault_answer(gr->fd, MSG_CRED_GET_ANS, gr->job, 503,
		    "The IPC log cannot be written, so the credential was not "
		    "read.", "");
		goto out;
	}
	out = json_dump(entry, 0, NULL);
	vault_answer(gr->fd, MSG_CRED_GET_ANS, gr->job, out ? 200 : 500, "",
	    out ? out : "");
out:
	msg_free_secret(out);
	if (tokens != NULL)
		json_free_secret(tokens);
	free(conn);
}

static void
vault_mark(struct grant *gr, struct msg *m)
{
	struct audit_rec	 rec;
	char			*conn = NULL, *sentence = NULL, *ident = NULL;
	char			 err[128];
	uint32_t		 valid;
	size_t			 ilen;
	yajl_val		 user = NULL;

	if (msg_get_str(m, &conn, NULL) == -1 || msg_get_u32(m, &valid) == -1 ||
	    msg_get_str(m, &sentence, NULL) == -1 ||
	    msg_get_str(m, &ident, &ilen) == -1 || msg_get_end(m) == -1 ||
	    vault_conn_find(conn) == NULL)
		vault_violation("worker", "malformed CRED_MARK_REQ");
	vault_grant_use(gr, m->hdr.type, conn);
	if (ilen > 0 && ((user = json_parse(ident, ilen, CD_VAULT_ENTRY_MAX, err,
	    sizeof(err))) == NULL || !YAJL_IS_OBJECT(user)))
		vault_violation("worker", "CRED_MARK_REQ with bad identity");
	vault_rec_worker(&rec, gr, m->hdr.type);
	rec.outcome = valid ? "valid" : "invalid";
	rec.detail = valid ? NULL : sentence;
	if (vault_log(&rec) == -1) {
		if (user != NULL)
			yajl_tree_free(user);
		vault_answer(gr->fd, MSG_CRED_MARK_ANS, gr->job, 503, NULL, NULL);
		goto out;
	}
	vault_status_set(conn, "error", valid ? NULL : json_new_str(sentence));
	if (user != NULL)
		vault_status_set(conn, "user", user);
	vault_status_save();
	vault_meta_push();
	vault_answer(gr->fd, MSG_CRED_MARK_ANS, gr->job, 200, NULL, NULL);
out:
	free(conn);
	free(sentence);
	free(ident);
}

/* Remove a token connector's entry (and github_token.json for GitHub). */
static uint32_t
vault_delete_token(const char *conn, struct audit_rec *rec, char *err,
    size_t errlen)
{
	enum store_err e;

	e = vault_tokens_update(conn, NULL, rec, err, errlen);
	if (e != STORE_OK) {
		if (e != STORE_ERR_LOG)
			vault_log_outcome(rec, "error", err);
		return vault_store_status(e);
	}
	if (strcmp(conn, "github") == 0 &&
	    (e = vault_github_file(NULL, NULL, err, errlen)) != STORE_OK)
		return vault_store_status(e);
	vault_status_set(conn, "error", NULL);
	vault_status_set(conn, "user", NULL);
	vault_status_save();
	return 200;
}

void
vault_handle_delete(struct msg *m)
{
	struct audit_rec	 rec;
	struct msg		 a;
	char			*conn = NULL, *remote = NULL, err[256] = "";
	uint32_t		 req, status;

	if (msg_get_u32(m, &req) == -1 || msg_get_str(m, &conn, NULL) == -1 ||
	    msg_get_str(m, &remote, NULL) == -1 || msg_get_end(m) == -1 ||
	    (vault_conn_find(conn) == NULL && vault_rclone_type(conn) == NULL))
		vault_violation("http", "malformed DELETE_REQ");
	memset(&rec, 0, sizeof(rec));
	rec.peer = "http";
	rec.type = msg_type_name(m->hdr.type);
	rec.connector = conn;
	rec.outcome = "ok";
	if (vault_rclone_type(conn) != NULL) {
		status = vault_rclone_delete(conn, remote, &rec, err,
		    sizeof(err));
		if (status != 200 && status != 503)
			vault_log_outcome(&rec, status == 404 ? "not_found" :
			    "error", err);
	} else
		status = vault_delete_token(conn, &rec, err, sizeof(err));
	/* The push goes first on the same channel, so http's copy of the
	 * metadata (and its count of deletes) is current when it answers
	 * the client. */
	vault_count(VAULT_OP_DELETE, status);
	vault_meta_push();
	msg_init(&a, MSG_DELETE_ANS, 0);
	if (msg_put_u32(&a, req) == -1 || msg_put_u32(&a, status) == -1 ||
	    msg_put_str(&a, status == 200 ? "" : err) == -1 ||
	    msg_send(vault.httpfd, &a) == -1)
		log_warn("cannot answer http");
	msg_free(&a);
	free(conn);
	free(remote);
}

static struct grant *
vault_grant_find(uint32_t job)
{
	struct grant *gr;

	TAILQ_FOREACH(gr, &vault.grants, entry)
		if (gr->job == job)
			return gr;
	return NULL;
}

static void
vault_grant_close(struct grant *gr)
{
	if (gr->ev != NULL) {
		event_free(gr->ev);
		gr->ev = NULL;
	}
	if (gr->fd != -1) {
		close(gr->fd);
		gr->fd = -1;
	}
}

/* One request per operation a grant allows, each at most once. */
static void
vault_worker_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = {
		permit_worker, sizeof(permit_worker) / sizeof(permit_worker[0])
	};
	struct grant	*gr = arg;
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	rc = msg_recv_permit(fd, &m, CD_VAULT_ENTRY_MAX + 1024, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_EOF) {
		vault_grant_close(gr);
		return;
	}
	if (rc == MSG_RECV_VIOLATION)
		vault_violation("worker", why);
	m.secret = 1;
	if (m.hdr.job != gr->job)
		vault_violation("worker", "a message for another job");
	switch (m.hdr.type) {
	case MSG_CRED_PUT_REQ:
		vault_put(gr, &m);
		break;
	case MSG_CRED_GET_REQ:
		vault_get(gr, &m);
		break;
	case MSG_CRED_MARK_REQ:
		vault_mark(gr, &m);
		break;
	default:
		vault_violation("worker", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

void
vault_grant_add(struct msg *m)
{
	struct grant	*gr;
	char		*kind = NULL, *conn = NULL, *remote = NULL;

	if ((gr = calloc(1, sizeof(*gr))) == NULL)
		fatalx("out of memory");
	gr->fd = -1;
	gr->job = m->hdr.job;
	if (msg_get_str(m, &kind, NULL) == -1 ||
	    msg_get_str(m, &conn, NULL) == -1 ||
	    msg_get_str(m, &remote, NULL) == -1 ||
	    msg_get_u32(m, &gr->ops) == -1 || msg_get_u32(m, &gr->pid) == -1 ||
	    msg_get_fd(m, &gr->fd) == -1 || msg_get_end(m) == -1 ||
	    vault_grant_find(gr->job) != NULL)
		vault_violation("broker", "malformed GRANT");
	snprintf(gr->kind, sizeof(gr->kind), "%s", kind);
	snprintf(gr->connector, sizeof(gr->connector), "%s", conn);
	snprintf(gr->remote, sizeof(gr->remote), "%s", remote);
	free(kind);
	free(conn);
	free(remote);
	gr->ev = event_new(vault.base, gr->fd, EV_READ | EV_PERSIST,
	    vault_worker_cb, gr);
	if (gr->ev == NULL || event_add(gr->ev, NULL) == -1)
		fatalx("event_add");
	TAILQ_INSERT_TAIL(&vault.grants, gr, entry);
}

void
vault_grant_end(uint32_t job)
{
	struct grant *gr;

	if ((gr = vault_grant_find(job)) == NULL)
		return;
	vault_grant_close(gr);
	TAILQ_REMOVE(&vault.grants, gr, entry);
	free(gr);
}
