/*
 * <workspace>/rclone.conf, read and edited by the vault itself (no
 * rclone process): list remotes for metadata, merge one remote's section
 * when a flow completes, delete one on request. Every other byte of the
 * file is preserved (lib/ini.c), and every write is the store's
 * lock-tmp-fsync-log-rename sequence, re-reading the file under the lock
 * so that an edit made meanwhile is not lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "ini.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "vault.h"

/* Remotes listed in the metadata pushed to http. */
#define RCLONE_REMOTES_MAX 256

const char *
vault_rclone_type(const char *connector)
{
	if (strcmp(connector, "gdrive") == 0)
		return "drive";
	if (strcmp(connector, "onedrive") == 0)
		return "onedrive";
	return NULL;
}

void
vault_rclone_meta(yajl_gen g)
{
	static struct ini_remote r[RCLONE_REMOTES_MAX];
	char		*buf = NULL, err[256];
	size_t		 len = 0, n = 0;
	int		 ok;

	ok = store_read(vault.wsfd, RCLONE_FILE, &buf, &len, err,
	    sizeof(err)) == STORE_OK && ini_list(buf ? buf : "", len, r,
	    RCLONE_REMOTES_MAX, &n, err, sizeof(err)) == 0;
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	json_gen_kstr(g, "rclone_error", ok ? NULL : err);
	json_gen_str(g, "remotes");
	yajl_gen_array_open(g);
	for (size_t i = 0; ok && i < n; i++) {
		yajl_gen_map_open(g);
		json_gen_kstr(g, "name", r[i].name);
		json_gen_kstr(g, "type", r[i].type);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

/* Under the lock: read rclone.conf, let edit() make the new text,
 * write it with the audit line as the commit. */
static enum store_err
vault_rclone_edit(char *(*edit)(const char *, size_t, void *, size_t *,
    char *, size_t, uint32_t *), void *arg, struct audit_rec *rec,
    uint32_t *status, char *err, size_t errlen)
{
	char		*buf = NULL, *out = NULL;
	size_t		 len = 0, olen = 0;
	enum store_err	 e;
	int		 lock;

	if ((lock = store_lock(vault.wsfd)) == -1) {
		snprintf(err, errlen, "cannot lock the workspace: %s",
		    strerror(errno));
		return STORE_ERR_IO;
	}
	e = store_read(vault.wsfd, RCLONE_FILE, &buf, &len, err, errlen);
	if (e == STORE_OK && (out = edit(buf ? buf : "", len, arg, &olen, err,
	    errlen, status)) == NULL)
		e = STORE_ERR_CORRUPT;
	if (e == STORE_OK)
		e = store_write(vault.wsfd, RCLONE_FILE, out, olen,
		    vault_log_cb, rec, err, errlen);
	if (out != NULL) {
		explicit_bzero(out, olen);
		free(out);
	}
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	store_unlock(lock);
	return e;
}

struct rc_put {
	const char	*name;
	const char	*type;
	const char	*section;
};

static char *
vault_rclone_put_edit(const char *buf, size_t len, void *arg, size_t *olen,
    char *err, size_t errlen, uint32_t *status)
{
	struct rc_put	*p = arg;
	char		 type[64];
	int		 found;

	found = ini_find(buf, len, p->name, type, sizeof(type), err, errlen);
	if (found == -1) {
		*status = 500;
		return NULL;
	}
	if (found == 1 && strcmp(type, p->type) != 0) {
		snprintf(err, errlen, "rclone.conf now has a remote '%s' of "
		    "type '%s'; it was left as it is.", p->name, type);
		*status = 409;
		return NULL;
	}
	return ini_put(buf, len, p->name, p->section, olen, err, errlen);
}

/* Build the section from the worker's keys, in rclone's own order. */
static char *
vault_rclone_section(const char *name, yajl_val entry, char *err,
    size_t errlen)
{
	static const char *const order[] = { "type", "token", "drive_id",
	    "drive_type" };
	const char	*keys[5], *vals[5];
	size_t		 n = 0;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *v = json_obj_str(entry, order[i]);

		if (v == NULL)
			continue;
		keys[n] = order[i];
		vals[n++] = v;
	}
	keys[n] = vals[n] = NULL;
	return ini_section(name, keys, vals, err, errlen);
}

uint32_t
vault_rclone_put(struct grant *gr, yajl_val entry, struct audit_rec *rec,
    char *err, size_t errlen)
{
	struct rc_put	 p;
	const char	*type = json_obj_str(entry, "type");
	const char	*token = json_obj_str(entry, "token");
	char		*section;
	uint32_t	 status = 200;
	enum store_err	 e;

	if (type == NULL || token == NULL || *token == '\0' ||
	    strcmp(type, vault_rclone_type(gr->connector)) != 0 ||
	    gr->remote[0] == '\0')
		vault_violation("worker", "CRED_PUT_REQ with a bad remote");
	if ((section = vault_rclone_section(gr->remote, entry, err, errlen)) ==
	    NULL)
		vault_violation("worker", "CRED_PUT_REQ with unusable keys");
	rec->fp[0].name = "token";
	rec->fp[0].data = token;
	rec->fp[0].len = strlen(token);
	rec->nfp = 1;
	p.name = gr->remote;
	p.type = type;
	p.section = section;
	e = vault_rclone_edit(vault_rclone_put_edit, &p, rec, &status, err,
	    errlen);
	explicit_bzero(section, strlen(section));
	free(section);
	return e == STORE_OK ? 200 : status != 200 ? status :
	    vault_store_status(e);
}

static char *
vault_rclone_del_edit(const char *buf, size_t len, void *arg, size_t *olen,
    char *err, size_t errlen, uint32_t *status)
{
	struct rc_put	*p = arg;
	char		 type[64];
	int		 found;

	found = ini_find(buf, len, p->name, type, sizeof(type), err, errlen);
	if (found != 1 || strcmp(type, p->type) != 0) {
		if (found != -1)
			snprintf(err, errlen, "There is no %s remote named "
			    "'%s'.", p->type, p->name);
		*status = found == -1 ? 500 : 404;
		return NULL;
	}
	return ini_delete(buf, len, p->name, olen, err, errlen);
}

uint32_t
vault_rclone_delete(const char *connector, const char *remote,
    struct audit_rec *rec, char *err, size_t errlen)
{
	struct rc_put	 p;
	uint32_t	 status = 200;
	enum store_err	 e;

	p.name = remote;
	p.type = vault_rclone_type(connector);
	p.section = NULL;
	rec->remote = remote;
	e = vault_rclone_edit(vault_rclone_del_edit, &p, rec, &status, err,
	    errlen);
	return e == STORE_OK ? 200 : status != 200 ? status :
	    vault_store_status(e);
}
