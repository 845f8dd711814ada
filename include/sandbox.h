/*
 * Privilege drop and syscall filters, in the fixed order of SECURITY.md:
 * (resources already acquired by the caller) -> chroot -> capability
 * bounding set emptied (needs CAP_SETPCAP, so while still uid 0) ->
 * setgroups, setresgid, setresuid and a check that the old ids cannot be
 * regained -> every capability set emptied -> non-dumpable, resource limits -> no-new-privs ->
 * seccomp. Every step fails closed: sandbox_enter() returns -1 and the
 * caller exits.
 */
#ifndef CD_SANDBOX_H
#define CD_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

enum sandbox_role {
	SANDBOX_HTTP,		/* allowlist: no open, no socket, no exec */
	SANDBOX_VAULT,		/* allowlist: files, no network, no exec */
	SANDBOX_WORKER,		/* allowlist: network, read-only opens */
	SANDBOX_EXEC,		/* denylist, installed just before execve */
	SANDBOX_BROKER,		/* denylist: the supervisor itself */
};

struct sandbox {
	enum sandbox_role role;
	const char	*chroot_dir;	/* NULL: none */
	int		 change_ids;	/* 0 when not started as root */
	uid_t		 uid;
	gid_t		 gid;
	unsigned long	 nofile;	/* RLIMIT_NOFILE */
	unsigned long	 as;		/* RLIMIT_AS, 0: unchanged */
	/* Called as the role's own user, just before seccomp, to open what
	 * the role needs (so files it creates are its own). 0 or -1. */
	int		(*acquire)(void *arg, char *err, size_t errlen);
	void		*arg;
};

/* Apply every step. 0, or -1 with a sentence in err. */
int sandbox_enter(const struct sandbox *sb, char *err, size_t errlen);

/* Only the seccomp step (used by tests that try syscalls). */
int sandbox_seccomp(enum sandbox_role role, char *err, size_t errlen);

/* Name of a role for messages. */
const char *sandbox_role_name(enum sandbox_role role);

#endif
