/*
 * The broker's long-lived children, http and vault: spawning them with a
 * scrubbed environment, handing them their resources, linking them to
 * each other, and restarting either with backoff when it dies. A child
 * that breaks the protocol is killed and restarted; the broker itself
 * never dies because of a child.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "child.h"
#include "log.h"

/* Whether the current http and vault have been given their channel. */
static int proc_linked;

static const uint16_t permit_http[] = {
	MSG_READY, MSG_SPAWN_REQ, MSG_JOB_CANCEL,
};
static const uint16_t permit_vault[] = {
	MSG_READY,
};

/* Environment variables a child may inherit: only sanitizer settings,
 * so that instrumented builds keep working. Nothing else crosses. */
static const char *const proc_env_keep[] = {
	"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
};

static void
proc_child_env(char **envp, size_t max)
{
	size_t	 n = 0;

	envp[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
	for (size_t i = 0; i < sizeof(proc_env_keep) / sizeof(*proc_env_keep);
	    i++) {
		extern char **environ;
		size_t klen = strlen(proc_env_keep[i]);

		for (char **e = environ; *e != NULL && n < max - 1; e++)
			if (strncmp(*e, proc_env_keep[i], klen) == 0 &&
			    (*e)[klen] == '=')
				envp[n++] = *e;
	}
	envp[n] = NULL;
}

pid_t
proc_exec(int exe, const char *title, int ctl, int keep_stderr)
{
	char		*argv[2], *envp[8];
	sigset_t	 none;
	pid_t		 pid;
	int		 null;

	if ((pid = fork()) != 0)
		return pid;
	/* Child: from here on only async-signal-safe work until exec. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Its own session and process group: the broker can end a worker
	 * together with any tool it runs. */
	(void)setsid();
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (ctl == CHILD_CTL_FD) {
		if (fcntl(ctl, F_SETFD, 0) == -1)
			_exit(127);
	} else if (dup2(ctl, CHILD_CTL_FD) == -1)
		_exit(127);
	if ((null = open("/dev/null", O_RDWR)) == -1 ||
	    dup2(null, STDIN_FILENO) == -1 || dup2(null, STDOUT_FILENO) == -1 ||
	    (!keep_stderr && dup2(null, STDERR_FILENO) == -1))
		_exit(127);
	/* Nothing but the control channel and stdio survives exec. */
	if (close_range(CHILD_CTL_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) == -1)
		_exit(127);
	argv[0] = (char *)title;
	argv[1] = NULL;
	proc_child_env(envp, sizeof(envp) / sizeof(envp[0]));
	execveat(exe, "", argv, envp, AT_EMPTY_PATH);
	_exit(127);
}

int
proc_send_init(int ctl, const char *kind, const char *connector,
    const char *remote, const char *extra, int change_ids, uid_t uid,
    gid_t gid, const int *fds, size_t nfds)
{
	struct msg	 m;
	char		*cfg;
	ssize_t		 len;
	uint32_t	 flags = 0;
	int		 rc = -1;

	if ((cfg = malloc(CD_MSG_STR_MAX)) == NULL)
		return -1;
	if ((len = config_serialize(&broker->conf, cfg, CD_MSG_STR_MAX)) < 0)
		goto out;
	if (broker->foreground)
		flags |= CHILD_LOG_FOREGROUND;
	if (broker->verbose > 0)
		flags |= CHILD_LOG_VERBOSE1;
	if (broker->verbose > 1)
		flags |= CHILD_LOG_VERBOSE2;
	msg_init(&m, MSG_INIT, 0);
	/* The API token travels here for http; wipe the copy afterwards. */
	m.secret = 1;
	if (msg_put_u32(&m, flags) == 0 && msg_put_u32(&m, change_ids) == 0 &&
	    msg_put_u32(&m, uid) == 0 && msg_put_u32(&m, gid) == 0 &&
	    msg_put_strn(&m, cfg, (size_t)len) == 0 &&
	    msg_put_str(&m, kind) == 0 && msg_put_str(&m, connector) == 0 &&
	    msg_put_str(&m, remote) == 0 && msg_put_str(&m, extra) == 0) {
		rc = 0;
		for (size_t i = 0; i < nfds && rc == 0; i++)
			rc = msg_put_fd(&m, fds[i]);
		if (rc == 0)
			rc = msg_send(ctl, &m);
	}

	msg_free(&m);
out:
	free(cfg);
	return rc;
}

static void proc_ctl_cb(evutil_socket_t, short, void *);

/* Message from a long-lived child on its control channel. */
static void
proc_dispatch(struct role_proc *rp, struct msg *m)
{
	char	*kind = NULL, *conn = NULL, *remote = NULL;
	uint32_t req;

	switch (m->hdr.type) {
	case MSG_READY:
		if (msg_get_end(m) == -1)
			goto violation;
		if (rp->ready) {
			proc_kill(rp, "protocol violation (READY a second time)");
			return;
		}
		rp->ready = 1;
		rp->backoff_ms = CD_RESTART_BACKOFF_MIN_MS;
		log_info("%s is ready (pid %d)", rp->name, (int)rp->pid);
		/* A new http starts its counters at zero but must see the
		 * broker's (its own restart included) before it answers
		 * healthz, which waits for the vault channel sent next. */
		if (rp == &broker->http)
			ctl_stats_send();
		proc_link_channels();
		return;
	case MSG_SPAWN_REQ:
		if (msg_get_u32(m, &req) == -1 ||
		    msg_get_str(m, &kind, NULL) == -1 ||
		    msg_get_str(m, &conn, NULL) == -1 ||
		    msg_get_str(m, &remote, NULL) == -1 || msg_get_end(m) == -1)
			break;
		jobs_spawn(req, kind, conn, remote);
		free(kind);
		free(conn);
		free(remote);
		return;
	case MSG_JOB_CANCEL:
		if (msg_get_end(m) == -1)
			goto violation;
		jobs_cancel(m->hdr.job);
		return;
	default:
		break;
	}
	free(kind);
	free(conn);
	free(remote);
violation:
	proc_kill(rp, m->hdr.type == MSG_SPAWN_REQ ? "protocol violation "
	    "(malformed SPAWN_REQ)" : m->hdr.type == MSG_READY ? "protocol "
	    "violation (malformed READY)" : "protocol violation (malformed "
	    "JOB_CANCEL)");
}

static void
proc_ctl_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct role_proc	*rp = arg;
	struct msg		 m;
	const struct msg_permit	 permit = rp == &broker->http ?
	    (struct msg_permit){ permit_http,
	    sizeof(permit_http) / sizeof(permit_http[0]) } :
	    (struct msg_permit){ permit_vault,
	    sizeof(permit_vault) / sizeof(permit_vault[0]) };
	const char		*why;
	int			 rc;

	(void)ev;
	rc = msg_recv_permit(fd, &m, 4096, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc != MSG_RECV_OK) {
		/* EOF: the child is gone or going; SIGCHLD restarts it. */
		if (rc == MSG_RECV_VIOLATION)
			log_warnx("protocol violation by %s: %s on its control "
			    "channel; killing it", rp->name, why);
		event_del(rp->ev);
		if (rp->pid > 0)
			kill(rp->pid, SIGKILL);
		return;
	}
	proc_dispatch(rp, &m);
	msg_free(&m);
}

static void
proc_restart_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	if (!broker->shutting_down)
		proc_start(arg);
}

void
proc_start(struct role_proc *rp)
{
	int	 sv[2];
	int	 is_http = rp == &broker->http;
	char	 title[32], extra[256];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		fatal("socketpair");
	snprintf(title, sizeof(title), "connectord: %s", rp->name);
	if ((rp->pid = proc_exec(is_http ? broker->exe_http :
	    broker->exe_vault, title, sv[1], 1)) == -1)
		fatal("fork");
	close(sv[1]);
	rp->ctl = sv[0];
	rp->ready = 0;
	rp->started = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &rp->started_mono);
	proc_linked = 0;
	if (rp->backoff_ms == 0)
		rp->backoff_ms = CD_RESTART_BACKOFF_MIN_MS;
	if (is_http && broker->api_token != NULL) {
		/* "<API token>[\n<console link>]": the link for the first
		 * http only. */
		snprintf(extra, sizeof(extra), "%s%s%s", broker->api_token,
		    broker->console_link ? "\n" : "",
		    broker->console_link ? broker->console_link : "");
		if (broker->console_link != NULL) {
			explicit_bzero(broker->console_link,
			    strlen(broker->console_link));
			free(broker->console_link);
			broker->console_link = NULL;
		}
	} else
		extra[0] = '\0';
	if (proc_send_init(rp->ctl, "", "", "", extra, broker->change_ids,
	    is_http ? broker->svc_uid : broker->vault_uid,
	    is_http ? broker->svc_gid : broker->vault_gid,
	    is_http ? broker->listen_fds : NULL,
	    is_http ? broker->nlisten : 0) == -1)
		log_warn("cannot send INIT to %s", rp->name);
	explicit_bzero(extra, sizeof(extra));
	if (is_http)
		reload_access_send();
	rp->ev = event_new(broker->base, rp->ctl, EV_READ | EV_PERSIST,
	    proc_ctl_cb, rp);
	if (rp->ev == NULL || event_add(rp->ev, NULL) == -1)
		fatalx("event_add");
	log_debug("started %s (pid %d)", rp->name, (int)rp->pid);
}

static void
proc_describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (status 0x%x)", status);
}

void
proc_exited(struct role_proc *rp, int status)
{
	struct timeval	 tv;
	char		 how[96];

	proc_describe_exit(status, how, sizeof(how));
	if (rp->ev != NULL) {
		event_free(rp->ev);
		rp->ev = NULL;
	}
	close(rp->ctl);
	rp->ctl = -1;
	rp->pid = 0;
	rp->ready = 0;
	proc_linked = 0;
	if (broker->shutting_down) {
		log_info("%s %s", rp->name, how);
		return;
	}
	rp->restarts++;
	ctl_stats_changed();
	log_warnx("%s %s; restarting in %u ms (restart %u)", rp->name, how,
	    rp->backoff_ms, rp->restarts);
	/* Every worker held a channel to the dead child: none can finish
	 * its job, so end them now (this also frees the OAuth port lock
	 * at once instead of at the flows' deadlines). */
	if (broker->njobs > 0) {
		log_info("ending %zu worker(s) whose %s channel is gone",
		    broker->njobs, rp->name);
		jobs_kill_all();
	}
	tv.tv_sec = rp->backoff_ms / 1000;
	tv.tv_usec = (rp->backoff_ms % 1000) * 1000;
	if (rp->restart_ev == NULL)
		rp->restart_ev = evtimer_new(broker->base, proc_restart_cb, rp);
	evtimer_add(rp->restart_ev, &tv);
	rp->backoff_ms *= 2;
	if (rp->backoff_ms > CD_RESTART_BACKOFF_MAX_MS)
		rp->backoff_ms = CD_RESTART_BACKOFF_MAX_MS;
}

void
proc_kill(struct role_proc *rp, const char *why)
{
	if (rp->pid <= 0)
		return;
	if (why != NULL)
		log_warnx("%s by %s; killing it", why, rp->name);
	kill(rp->pid, why != NULL || rp->ready == 0 ? SIGKILL : SIGTERM);
	if (broker->shutting_down && rp->ev != NULL)
		event_del(rp->ev);
}

/* Once both are ready, give http and the vault a channel of their own. */
void
proc_link_channels(void)
{
	struct msg	 m;
	int		 sv[2];

	if (proc_linked || !broker->http.ready || !broker->vault.ready)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		return;
	}
	msg_init(&m, MSG_HTTP_CHANNEL, 0);
	if (msg_put_fd(&m, sv[1]) == -1 || msg_send(broker->vault.ctl, &m))
		log_warn("cannot pass the channel to the vault");
	msg_free(&m);
	msg_init(&m, MSG_VAULT_CHANNEL, 0);
	if (msg_put_u32(&m, 1) == -1 || msg_put_fd(&m, sv[0]) == -1 ||
	    msg_send(broker->http.ctl, &m) == -1)
		log_warn("cannot pass the channel to http");
	msg_free(&m);
	close(sv[0]);
	close(sv[1]);
	proc_linked = 1;
}
