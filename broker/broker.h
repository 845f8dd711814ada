/*
 * The broker's state, shared by its files: broker.c (start, signals,
 * shutdown), proc.c (the long-lived http and vault children), jobs.c
 * (one short-lived worker per flow or validation job) and reload.c
 * (SIGHUP: the configuration read again, the logs reopened).
 */
#ifndef CD_BROKER_H
#define CD_BROKER_H

#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "cd_limits.h"
#include "config.h"
#include "msg.h"

/* One long-lived child: http or vault. */
struct role_proc {
	const char	*name;		/* "http" or "vault" */
	pid_t		 pid;		/* 0 when not running */
	int		 ctl;		/* broker end of the control channel */
	struct event	*ev;		/* reads ctl */
	struct event	*restart_ev;	/* backoff timer */
	int		 ready;		/* sent MSG_READY */
	unsigned int	 restarts;	/* times restarted since start */
	unsigned int	 backoff_ms;	/* next restart delay */
	time_t		 started;
	struct timespec	 started_mono;	/* for its uptime */
};

/* One worker: a single flow or validation job. */
struct job {
	TAILQ_ENTRY(job) entry;
	uint32_t	 id;
	pid_t		 pid;
	char		 kind[16];	/* "token", "revalidate", ... */
	char		 connector[16];
	char		 remote[40];
	uint32_t	 ops;		/* GRANT_OP_* derived from kind */
	int		 ctl;		/* broker end of its control channel */
	struct event	*ev;
	struct event	*deadline;	/* kills it at its TTL */
	char		 privdir[PATH_MAX];	/* HOME and TMPDIR, removed at end */
	int		 kill_reason;	/* enum msg_exit_reason, 0 if none */
	struct timespec	 started;	/* CLOCK_MONOTONIC, for its age */
	struct timespec	 deadline_at;	/* CLOCK_MONOTONIC, when it is killed */
};

struct broker {
	struct config	 conf;
	/* The configuration as read, before any path in it was resolved:
	 * what a re-read file is compared with on SIGHUP. */
	struct config	 conf_loaded;
	int		 access_fd;	/* access_log, open for http; or -1 */
	struct event_base *base;
	int		 exe_http;	/* role executables, for execveat */
	int		 exe_vault;
	int		 exe_worker;
	int		 listen_fds[CD_LISTEN_MAX];
	size_t		 nlisten;
	char		*api_token;	/* NULL when api_auth is none */
	/* The console sign-in link printed at start, for the first http
	 * only (a used link must not come back with a restarted http). */
	char		*console_link;
	int		 change_ids;	/* started as root */
	uid_t		 svc_uid;	/* http and workers */
	gid_t		 svc_gid;
	uid_t		 vault_uid;
	gid_t		 vault_gid;
	int		 foreground;
	int		 verbose;
	struct role_proc http;
	struct role_proc vault;
	TAILQ_HEAD(, job) jobs;
	size_t		 njobs;
	uint32_t	 next_job;
	int		 shutting_down;
	time_t		 started;	/* the broker's own start */
	struct timespec	 started_mono;
};

extern struct broker *broker;

/* broker.c: read the file (or the default one) and -o overrides, check. */
int broker_load_config(struct config *conf, const char *file, char **opts,
    size_t nopts, char *err, size_t errlen);

/* reload.c */
/* Remember how the configuration was read (before anything in b->conf
 * is resolved) and open the access log. */
void reload_init(struct broker *b, const char *file, char **opts,
    size_t nopts);
/* SIGHUP. */
void reload_run(struct broker *b);
/* Pass the access log (or none) to http; at each start of http. */
void reload_access_send(void);

/* proc.c */
void proc_start(struct role_proc *rp);
void proc_exited(struct role_proc *rp, int status);
void proc_kill(struct role_proc *rp, const char *why);
pid_t proc_exec(int exe, const char *title, int ctl, int keep_stderr);
int proc_send_init(int ctl, const char *kind, const char *connector,
    const char *remote, const char *extra, int change_ids, uid_t uid,
    gid_t gid, const int *fds, size_t nfds);
void proc_link_channels(void);

/* lock.c: the single-flight lock on the OAuth callback port. */
int lock_take(uint32_t job);
void lock_release(uint32_t job);
uint32_t lock_holder(void);
/* A spawn was refused (409) because the lock was held. */
void lock_refused(void);

/* The lock as connectorctl status and /metrics show it. */
struct lock_info {
	uint32_t	 job;		/* holder, 0 when free */
	int		 releasing;	/* its job ended; waiting for the port */
	time_t		 since;		/* when the holder took it */
	struct timespec	 since_mono;
	uint32_t	 acquired;	/* times taken since the broker started */
	uint32_t	 refusals;	/* spawns refused with 409 */
	uint32_t	 release_waits;	/* releases that waited for the port */
};
void lock_get(struct lock_info *li);

/* ctl.c: the control socket (connectorctl status) and the counters the
 * broker pushes to http (MSG_STATS) for /metrics. */
void ctl_open(void);
void ctl_start(void);
void ctl_close(void);
/* A counter changed: push them to http, at most once per interval. */
void ctl_stats_changed(void);
/* Push them now (a new http is ready). */
void ctl_stats_send(void);

/* jobs.c */
void jobs_spawn(uint32_t req, const char *kind, const char *connector,
    const char *remote);
void jobs_cancel(uint32_t id);
int jobs_reaped(pid_t pid, int status);
void jobs_kill_all(void);

#endif
