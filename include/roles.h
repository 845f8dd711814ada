/*
 * Who each role runs as (design.md §3), decided once from the
 * configuration: http and workers as the unprivileged service user, the
 * vault as the workspace owner. Shared by the broker and by the test
 * helper that enters a role's sandbox. Library code.
 */
#ifndef CD_ROLES_H
#define CD_ROLES_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct role_ids {
	int	 change_ids;	/* started as root */
	uid_t	 svc_uid;
	gid_t	 svc_gid;
	uid_t	 vault_uid;
	gid_t	 vault_gid;
	int	 svc_fallback;	/* the default user was missing: nobody */
};

/* 0, or -1 with a sentence in err. */
int roles_resolve(const struct config *conf, struct role_ids *ids,
    char *err, size_t errlen);

#endif
