/*
 * What every child role (http, vault, worker) receives from the broker at
 * start: the control channel on descriptor CHILD_CTL_FD and one MSG_INIT
 * message on it with the configuration and the role's resources.
 */
#ifndef CD_CHILD_H
#define CD_CHILD_H

#include "cd_limits.h"
#include "config.h"

/* The control channel to the broker, placed here by the spawner. */
#define CHILD_CTL_FD 3

/* Logging flags carried in MSG_INIT. */
#define CHILD_LOG_FOREGROUND 0x01u
#define CHILD_LOG_VERBOSE1 0x02u
#define CHILD_LOG_VERBOSE2 0x04u

/* The empty, root-owned directory the http role is chrooted into. */
#define CHILD_HTTP_CHROOT "/run/connectord/empty"

struct child_init {
	struct config	 conf;
	int		 change_ids;	/* started as root: drop to uid/gid */
	uid_t		 uid;
	gid_t		 gid;
	char		*kind;		/* worker kind, else "" */
	char		*connector;	/* worker connector, else "" */
	char		*remote;	/* remote name, else "" */
	char		*extra;		/* role-specific (API token, dir) */
	int		 fds[CD_MSG_FDS_MAX];
	size_t		 nfds;
};

/* Read MSG_INIT (blocking, bounded wait). Exits on any error. */
void child_read_init(struct child_init *ci);
void child_free_init(struct child_init *ci);

struct msg;
/*
 * Replace ci->conf with the configuration a MSG_CONFIG carries (the broker
 * re-read its file on SIGHUP). 0, or -1 when the message is malformed or
 * its configuration does not parse, with ci->conf unchanged.
 */
int child_take_config(struct child_init *ci, struct msg *m);

struct event_base;
/* End the event loop on SIGTERM or SIGINT, so the role exits 0. */
void child_stop_on_term(struct event_base *base);

#endif
