/*
 * Deciding the identities of the roles. Started by an ordinary user,
 * every role keeps that user's ids (development); started as root, http
 * and workers get the service user and the vault the workspace owner,
 * and the two must differ so that http can never read a credential file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roles.h"

/* A user name or a decimal uid; -1 if unknown. */
static int
roles_lookup(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd	*pw;
	char		*end;
	unsigned long	 n;

	if ((pw = getpwnam(name)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(name, &end, 10);
	if (*name == '\0' || *end != '\0' || errno != 0 || n > 0x7fffffff)
		return -1;
	*uid = (uid_t)n;
	*gid = (pw = getpwuid(*uid)) != NULL ? pw->pw_gid : (gid_t)n;
	return 0;
}

static int
roles_service(const struct config *conf, struct role_ids *ids, char *err,
    size_t errlen)
{
	const char *user = conf->user ? conf->user : CONFIG_DEFAULT_USER;

	if (roles_lookup(user, &ids->svc_uid, &ids->svc_gid) == -1) {
		if (conf->user != NULL) {
			snprintf(err, errlen, "user '%s' does not exist; "
			    "create it or set user", user);
			return -1;
		}
		/* Without the dedicated user, nobody is the least bad. */
		if (roles_lookup("nobody", &ids->svc_uid, &ids->svc_gid)) {
			snprintf(err, errlen, "neither %s nor nobody exists; "
			    "create %s or set user", user, user);
			return -1;
		}
		ids->svc_fallback = 1;
	}
	if (ids->svc_uid == 0) {
		snprintf(err, errlen, "user must not be root");
		return -1;
	}
	return 0;
}

int
roles_resolve(const struct config *conf, struct role_ids *ids, char *err,
    size_t errlen)
{
	struct stat	 st;
	struct passwd	*pw;

	memset(ids, 0, sizeof(*ids));
	ids->change_ids = geteuid() == 0;
	if (!ids->change_ids) {
		ids->svc_uid = ids->vault_uid = getuid();
		ids->svc_gid = ids->vault_gid = getgid();
		return 0;
	}
	if (roles_service(conf, ids, err, errlen) == -1)
		return -1;
	if (conf->vault_user != NULL) {
		if (roles_lookup(conf->vault_user, &ids->vault_uid,
		    &ids->vault_gid) == -1) {
			snprintf(err, errlen, "vault_user '%s' does not exist",
			    conf->vault_user);
			return -1;
		}
	} else {
		if (stat(conf->workspace, &st) == -1) {
			snprintf(err, errlen, "%s: %s", conf->workspace,
			    strerror(errno));
			return -1;
		}
		ids->vault_uid = st.st_uid;
		ids->vault_gid = (pw = getpwuid(st.st_uid)) != NULL ?
		    pw->pw_gid : st.st_gid;
	}
	if (ids->vault_uid == ids->svc_uid) {
		snprintf(err, errlen, "the vault's user must differ from user, "
		    "or http could read credential files");
		return -1;
	}
	return 0;
}
