/*
 * Workers: one short-lived process per flow or validation job. The
 * broker creates the job's three channels (its own control channel, the
 * worker's channel to http and to the vault), a private directory for
 * HOME and TMPDIR, registers the job's grant with the vault, hands http
 * its end, and enforces the deadline. Whatever way a worker ends, the
 * broker reaps it, reports the ending to http, ends its grant at the
 * vault and removes its directory.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
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
#include "toolpath.h"

/* What each kind of job may do at the vault, and how long it may live.
 * The grant follows from the kind: http cannot ask for more. */
struct job_kind {
	const char	*kind;
	uint32_t	 ops;
	unsigned int	 ttl;	/* seconds; 0: session_ttl */
	const char	*tool;	/* the program it runs, or NULL */
	int		 lock;	/* needs the OAuth callback port lock */
	const char	*conns;	/* ",connector,..." it may serve */
};

static const struct job_kind job_kinds[] = {
	{ "token", GRANT_OP_PUT, CD_JOB_TTL_CHECK, NULL, 0,
	    ",manus,github,vercel," },
	{ "revalidate", GRANT_OP_GET | GRANT_OP_MARK, CD_JOB_TTL_CHECK, NULL,
	    0, ",manus,github,vercel," },
	{ "ghdevice", GRANT_OP_PUT, 0, "gh", 0, ",github," },
	{ "rclone", GRANT_OP_PUT, 0, "rclone", 1, ",gdrive,onedrive," },
	{ "oauth", GRANT_OP_PUT | GRANT_OP_CLIENT, 0, NULL, 0, ",vercel," },
	{ "refresh", GRANT_OP_GET | GRANT_OP_PUT | GRANT_OP_MARK |
	    GRANT_OP_CLIENT, CD_JOB_TTL_CHECK, NULL, 0, ",vercel," },
	{ "revoke", GRANT_OP_GET | GRANT_OP_CLIENT, CD_JOB_TTL_CHECK, NULL, 0,
	    ",vercel," },
};

static const struct job_kind *
jobs_find_kind(const char *kind, const char *connector)
{
	char key[24];

	if (strlen(connector) > 16 || strchr(connector, ',') != NULL)
		return NULL;
	snprintf(key, sizeof(key), ",%s,", connector);
	for (size_t i = 0; i < sizeof(job_kinds) / sizeof(job_kinds[0]); i++)
		if (strcmp(kind, job_kinds[i].kind) == 0 &&
		    strstr(job_kinds[i].conns, key) != NULL)
			return &job_kinds[i];
	return NULL;
}

static void
jobs_answer(uint32_t req, uint32_t job, uint32_t err, const char *sentence,
    int fd)
{
	struct msg m;

	if (broker->http.pid <= 0 || broker->http.ctl == -1)
		return;
	msg_init(&m, MSG_SPAWN_ANS, job);
	if (msg_put_u32(&m, req) == -1 || msg_put_u32(&m, err) == -1 ||
	    msg_put_str(&m, sentence) == -1 ||
	    (fd != -1 && msg_put_fd(&m, fd) == -1) ||
	    msg_send(broker->http.ctl, &m) == -1)
		log_warn("cannot answer http's spawn request");
	msg_free(&m);
}

/* Remove a tree below dirfd without following any symbolic link. */
static void
jobs_rmtree_at(int dirfd, const char *name, int depth)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if (depth > 32)
		return;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		unlinkat(dirfd, name, 0);
		return;
	}
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1 && (errno == EISDIR ||
		    errno == EPERM))
			jobs_rmtree_at(fd, de->d_name, depth + 1);
	}
	closedir(d);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void
jobs_free(struct job *j)
{
	if (j->privdir[0] != '\0')
		jobs_rmtree_at(AT_FDCWD, j->privdir, 0);
	if (j->ev != NULL)
		event_free(j->ev);
	if (j->deadline != NULL)
		event_free(j->deadline);
	if (j->ctl != -1)
		close(j->ctl);
	TAILQ_REMOVE(&broker->jobs, j, entry);
	broker->njobs--;
	free(j);
	ctl_stats_changed();
}

/* A worker leads its own process group (proc_exec calls setsid), so
 * whatever tool it started dies with it. */
static void
jobs_kill(struct job *j)
{
	if (j->pid > 0 && kill(-j->pid, SIGKILL) == -1)
		kill(j->pid, SIGKILL);
}

static void
jobs_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct job *j = arg;

	(void)fd;
	(void)ev;
	log_info("job %u (%s %s) reached its deadline; killing it", j->id,
	    j->connector, j->kind);
	j->kill_reason = MSG_EXIT_DEADLINE;
	jobs_kill(j);
}

/*
 * A worker has nothing to say to the broker: its control channel carries
 * INIT down and then only its end (EOF at exit). Any frame up it, even a
 * well-formed one, is a protocol violation and ends the worker.
 */
static void
jobs_ctl_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct job	*j = arg;
	struct msg	 m;
	int		 rc;

	(void)ev;
	rc = msg_recv(fd, &m, 64);
	if (rc == -1 && errno == EAGAIN)
		return;
	if (rc != 0)
		log_warnx("protocol violation by worker %u: %s on its control "
		    "channel; killing it", j->id, rc == 1 ?
		    msg_type_name(m.hdr.type) : msg_recv_error(errno));
	if (rc == 1)
		msg_free(&m);
	event_del(j->ev);
	if (j->kill_reason == 0 && rc != 0)
		j->kill_reason = MSG_EXIT_SIGNAL;
	jobs_kill(j);
}

/*
 * Copy the configured CA bundle into the job's directory: the worker runs
 * as the service user, who may not be able to read the operator's file
 * (a root-only directory), and gh and rclone need a path to it.
 */
static int
jobs_copy_ca(struct job *j)
{
	char	 path[PATH_MAX + 16], buf[65536];
	ssize_t	 n;
	size_t	 total = 0;
	int	 in, out, rc = -1;

	if (broker->conf.ca_file == NULL)
		return 0;
	if ((in = open(broker->conf.ca_file, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/ca.pem", j->privdir);
	out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	while (out != -1 && (n = read(in, buf, sizeof(buf))) > 0 &&
	    (total += (size_t)n) <= CD_CA_FILE_MAX)
		if (write(out, buf, (size_t)n) != n)
			goto done;
	if (out != -1 && total <= CD_CA_FILE_MAX && (!broker->change_ids ||
	    fchown(out, broker->svc_uid, broker->svc_gid) == 0))
		rc = 0;
done:
	if (out != -1)
		close(out);
	close(in);
	return rc;
}

/* Create the job's private directory, owned by the worker's user. */
static int
jobs_make_privdir(struct job *j)
{
	snprintf(j->privdir, sizeof(j->privdir), "/tmp/connectord-job%u.XXXXXX",
	    j->id);
	if (mkdtemp(j->privdir) == NULL) {
		j->privdir[0] = '\0';
		return -1;
	}
	if (broker->change_ids && chown(j->privdir, broker->svc_uid,
	    broker->svc_gid) == -1)
		return -1;
	return jobs_copy_ca(j);
}

static int
jobs_send_grant(struct job *j, int fd)
{
	struct msg	 m;
	int		 rc;

	msg_init(&m, MSG_GRANT, j->id);
	rc = msg_put_str(&m, j->kind) == -1 ||
	    msg_put_str(&m, j->connector) == -1 ||
	    msg_put_str(&m, j->remote) == -1 || msg_put_u32(&m, j->ops) == -1 ||
	    msg_put_u32(&m, (uint32_t)j->pid) == -1 || msg_put_fd(&m, fd) == -1 ||
	    msg_send(broker->vault.ctl, &m) == -1 ? -1 : 0;
	msg_free(&m);
	return rc;
}

/* Fork the worker and hand every party its end. */
static int
jobs_start(struct job *j, const struct job_kind *k, uint32_t req)
{
	int		 ctl[2] = { -1, -1 }, wh[2] = { -1, -1 };
	int		 wv[2] = { -1, -1 }, wfds[2], rc = -1;
	char		 title[64];
	struct timeval	 tv;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, wh) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, wv) ||
	    jobs_make_privdir(j) == -1)
		goto out;
	snprintf(title, sizeof(title), "connectord: worker %s", j->connector);
	if ((j->pid = proc_exec(broker->exe_worker, title, ctl[1], 1)) == -1)
		goto out;
	j->ctl = ctl[0];
	ctl[0] = -1;
	wfds[0] = wh[1];
	wfds[1] = wv[1];
	if (proc_send_init(j->ctl, j->kind, j->connector, j->remote,
	    j->privdir, broker->change_ids, broker->svc_uid, broker->svc_gid,
	    wfds, 2) == -1 || jobs_send_grant(j, wv[0]) == -1)
		goto out;
	jobs_answer(req, j->id, 0, "", wh[0]);
	j->ev = event_new(broker->base, j->ctl, EV_READ | EV_PERSIST,
	    jobs_ctl_cb, j);
	j->deadline = evtimer_new(broker->base, jobs_deadline_cb, j);
	tv.tv_sec = k->ttl ? k->ttl : broker->conf.session_ttl;
	tv.tv_usec = 0;
	j->deadline_at = j->started;
	j->deadline_at.tv_sec += tv.tv_sec;
	if (j->ev == NULL || j->deadline == NULL || event_add(j->ev, NULL) ||
	    evtimer_add(j->deadline, &tv))
		goto out;
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (ctl[i] != -1)
			close(ctl[i]);
		if (wh[i] != -1)
			close(wh[i]);
		if (wv[i] != -1)
			close(wv[i]);
	}
	return rc;
}

/* 503 at once when the tool a job runs is missing. */
static int
jobs_refuse_tool(uint32_t req, const struct job_kind *k)
{
	const char	*conf = NULL;
	char		 path[PATH_MAX], sentence[256];

	if (k->tool == NULL)
		return 0;
	conf = strcmp(k->tool, "gh") == 0 ? broker->conf.gh :
	    broker->conf.rclone;
	if (toolpath_find(conf, k->tool, path, sizeof(path)) == 0)
		return 0;
	snprintf(sentence, sizeof(sentence), "%s is not installed or not "
	    "runnable on the server; install it or set %s in the "
	    "configuration.", k->tool, k->tool);
	jobs_answer(req, 0, 503, sentence, -1);
	return 1;
}

/* 409 while another flow holds the OAuth callback port. */
static int
jobs_refuse_lock(uint32_t req, const struct job_kind *k)
{
	if (!k->lock || lock_holder() == 0)
		return 0;
	lock_refused();
	jobs_answer(req, 0, 409, "Another Google Drive or OneDrive connection "
	    "is being set up; finish or cancel it first.", -1);
	return 1;
}

void
jobs_spawn(uint32_t req, const char *kind, const char *connector,
    const char *remote)
{
	const struct job_kind	*k;
	struct job		*j;

	if ((k = jobs_find_kind(kind, connector)) == NULL) {
		jobs_answer(req, 0, 400, "unknown kind of job", -1);
		return;
	}
	if (!broker->vault.ready) {
		jobs_answer(req, 0, 503, "The credential vault is restarting; "
		    "try again in a few seconds.", -1);
		return;
	}
	if (broker->njobs >= CD_WORKERS_MAX) {
		jobs_answer(req, 0, 503, "Too many flows are in progress; try "
		    "again when one has finished.", -1);
		return;
	}
	if (jobs_refuse_tool(req, k) || jobs_refuse_lock(req, k))
		return;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		jobs_answer(req, 0, 503, "The daemon is out of memory.", -1);
		return;
	}
	j->id = broker->next_job++;
	j->ctl = -1;
	j->ops = k->ops;
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	snprintf(j->connector, sizeof(j->connector), "%s", connector);
	snprintf(j->remote, sizeof(j->remote), "%s", remote);
	clock_gettime(CLOCK_MONOTONIC, &j->started);
	TAILQ_INSERT_TAIL(&broker->jobs, j, entry);
	broker->njobs++;
	ctl_stats_changed();
	if (k->lock)
		lock_take(j->id);
	if (jobs_start(j, k, req) == -1) {
		log_warn("cannot start a worker for %s", connector);
		jobs_answer(req, 0, 503, "A worker could not be started; see "
		    "the daemon's log.", -1);
		if (j->pid > 0) {
			j->kill_reason = MSG_EXIT_SPAWN;
			jobs_kill(j);
		} else
			jobs_free(j);
		return;
	}
	log_info("job %u: worker %s %s started (pid %d)", j->id, connector,
	    kind, (int)j->pid);
}

void
jobs_cancel(uint32_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, &broker->jobs, entry) {
		if (j->id == id) {
			if (j->kill_reason == 0)
				j->kill_reason = MSG_EXIT_CANCELLED;
			jobs_kill(j);
			return;
		}
	}
}

static void
jobs_report_exit(struct job *j, uint32_t reason, int32_t code)
{
	struct msg	 m;

	if (broker->http.ctl != -1 && broker->http.pid > 0) {
		msg_init(&m, MSG_JOB_EXIT, j->id);
		if (msg_put_u32(&m, reason) == -1 ||
		    msg_put_u32(&m, (uint32_t)code) == -1 ||
		    msg_send(broker->http.ctl, &m) == -1)
			log_warn("cannot report job %u's end to http", j->id);
		msg_free(&m);
	}
	if (broker->vault.ctl != -1 && broker->vault.pid > 0) {
		msg_init(&m, MSG_GRANT_END, j->id);
		if (msg_send(broker->vault.ctl, &m) == -1)
			log_warn("cannot end job %u's grant", j->id);
		msg_free(&m);
	}
}

int
jobs_reaped(pid_t pid, int status)
{
	struct job	*j;
	uint32_t	 reason;
	int32_t		 code = 0;

	TAILQ_FOREACH(j, &broker->jobs, entry)
		if (j->pid == pid)
			break;
	if (j == NULL)
		return 0;
	if (j->kill_reason != 0)
		reason = (uint32_t)j->kill_reason;
	else if (WIFEXITED(status)) {
		reason = MSG_EXIT_NORMAL;
		code = WEXITSTATUS(status);
	} else {
		reason = MSG_EXIT_SIGNAL;
		code = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
	}
	if (reason == MSG_EXIT_NORMAL && code == 0)
		log_debug("job %u: worker exited", j->id);
	else
		log_info("job %u: worker %s %s ended: reason %u, status %d",
		    j->id, j->connector, j->kind, reason, code);
	/* The tool died with the worker's process group; make sure, and
	 * free the lock before http hears of the end. */
	kill(-j->pid, SIGKILL);
	lock_release(j->id);
	jobs_report_exit(j, reason, code);
	jobs_free(j);
	return 1;
}

void
jobs_kill_all(void)
{
	struct job *j;

	TAILQ_FOREACH(j, &broker->jobs, entry) {
		if (j->kill_reason == 0)
			j->kill_reason = MSG_EXIT_CANCELLED;
		jobs_kill(j);
	}
}
