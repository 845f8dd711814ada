/*
 * What the broker tells about itself. It alone knows the roles, the jobs
 * and the OAuth port lock, so it answers `connectorctl status` on a unix
 * socket, and pushes the counters only it keeps (restarts, the lock) to
 * http, which exposes them in /metrics.
 *
 * The control socket: <state_dir>/connectord.sock or control_socket,
 * SOCK_STREAM, mode 0660, owner root, group the vault user's. Every
 * connection's SO_PEERCRED is checked at accept: only uid 0, the vault's
 * uid and the broker's own are answered; anyone else is logged and
 * closed. The protocol is one request line ("status\n") and one JSON
 * answer line, then the broker closes. Everything is bounded: the request
 * (CD_CTL_REQUEST_MAX bytes), the connections at once (CD_CTL_CONN_MAX;
 * more are closed at accept), the time one may take (CD_CTL_TIMEOUT_SEC)
 * and the answer. Sockets are non-blocking and served by the broker's
 * event loop, so a client that sends nothing or reads slowly costs one
 * slot until its timeout, never the loop.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "broker.h"
#include "json.h"
#include "log.h"

/* One client of the control socket. */
struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	int		 fd;
	struct event	*rev;		/* reads the request */
	struct event	*wev;		/* writes the answer */
	struct event	*timer;		/* ends it at CD_CTL_TIMEOUT_SEC */
	char		 in[CD_CTL_REQUEST_MAX];
	size_t		 inlen;
	char		*out;		/* the answer line, once known */
	size_t		 outlen;
	size_t		 outoff;
};

static TAILQ_HEAD(, ctl_conn) ctl_conns = TAILQ_HEAD_INITIALIZER(ctl_conns);
static size_t		 ctl_nconns;
static int		 ctl_fd = -1;
static struct event	*ctl_ev;
static char		 ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* Whole seconds from a CLOCK_MONOTONIC time to now. */
static long long
ctl_secs_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - t->tv_sec) -
	    (now.tv_nsec < t->tv_nsec ? 1 : 0);
}

/*
 * Bind the socket, as root, before the drop of any child and before
 * daemon(): a second daemon on the same state_dir is refused here, while
 * its error still reaches the terminal.
 */
void
ctl_open(void)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	char			 err[256];
	mode_t			 old;
	int			 probe;

	if (config_control_socket(&broker->conf, ctl_path, sizeof(ctl_path),
	    err, sizeof(err)) == -1)
		fatalx("%s", err);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, ctl_path, strlen(ctl_path) + 1);
	/* A socket that still answers belongs to a running daemon (one
	 * whose backlog is full still listens: EAGAIN, since the probe must
	 * not block). Anything but a socket is not ours to remove. */
	if (lstat(ctl_path, &st) == 0 && !S_ISSOCK(st.st_mode))
		fatalx("%s exists and is not a socket; remove it or set "
		    "control_socket", ctl_path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe != -1 && (connect(probe, (struct sockaddr *)&sun,
	    sizeof(sun)) == 0 || errno == EAGAIN))
		fatalx("%s answers: another connectord runs with this "
		    "state_dir or control_socket; stop it first", ctl_path);
	if (probe != -1)
		close(probe);
	if (unlink(ctl_path) == -1 && errno != ENOENT)
		fatal("cannot remove the stale control socket %s", ctl_path);
	if ((ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	/* Born 0660: no moment where others could connect. */
	old = umask(0117);
	if (bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("cannot bind the control socket %s", ctl_path);
	umask(old);
	if ((broker->change_ids && chown(ctl_path, 0, broker->vault_gid) == -1)
	    || chmod(ctl_path, 0660) == -1)
		fatal("cannot set the owner and mode of %s", ctl_path);
	if (listen(ctl_fd, CD_CTL_CONN_MAX) == -1)
		fatal("listen %s", ctl_path);
	log_info("control socket: %s", ctl_path);
}

static void
ctl_conn_free(struct ctl_conn *c)
{
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->timer != NULL)
		event_free(c->timer);
	close(c->fd);
	free(c->out);
	TAILQ_REMOVE(&ctl_conns, c, entry);
	ctl_nconns--;
	free(c);
}

static void
ctl_gen_uint(yajl_gen g, const char *key, long long v)
{
	json_gen_kint(g, key, v < 0 ? 0 : v);
}

static void
ctl_gen_role(yajl_gen g, const struct role_proc *rp)
{
	yajl_gen_map_open(g);
	json_gen_kstr(g, "role", rp->name);
	json_gen_kstr(g, "state", rp->pid <= 0 ? (broker->shutting_down ?
	    "stopped" : "restarting") : rp->ready ? "running" : "starting");
	if (rp->pid > 0) {
		json_gen_kint(g, "pid", rp->pid);
		json_gen_kint(g, "started", (long long)rp->started);
		ctl_gen_uint(g, "uptime", ctl_secs_since(&rp->started_mono));
	} else {
		json_gen_knull(g, "pid");
		json_gen_knull(g, "started");
		json_gen_knull(g, "uptime");
	}
	json_gen_kint(g, "restarts", rp->restarts);
	yajl_gen_map_close(g);
}

static void
ctl_gen_roles(yajl_gen g)
{
	json_gen_str(g, "roles");
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);
	json_gen_kstr(g, "role", "broker");
	json_gen_kstr(g, "state", broker->shutting_down ? "stopping" :
	    "running");
	json_gen_kint(g, "pid", getpid());
	json_gen_kint(g, "started", (long long)broker->started);
	ctl_gen_uint(g, "uptime", ctl_secs_since(&broker->started_mono));
	/* Nothing restarts the broker: it is the supervisor. */
	json_gen_kint(g, "restarts", 0);
	yajl_gen_map_close(g);
	ctl_gen_role(g, &broker->http);
	ctl_gen_role(g, &broker->vault);
	yajl_gen_array_close(g);
}

static const char *
ctl_reason_name(int reason)
{
	switch ((enum msg_exit_reason)reason) {
	case MSG_EXIT_NORMAL: return "normal";
	case MSG_EXIT_SIGNAL: return "signal";
	case MSG_EXIT_DEADLINE: return "deadline";
	case MSG_EXIT_CANCELLED: return "cancelled";
	case MSG_EXIT_SPAWN: return "spawn";
	}
	return "running";
}

static void
ctl_gen_flows(yajl_gen g)
{
	struct timespec	 now;
	const struct job *j;

	clock_gettime(CLOCK_MONOTONIC, &now);
	json_gen_str(g, "flows");
	yajl_gen_array_open(g);
	TAILQ_FOREACH(j, &broker->jobs, entry) {
		yajl_gen_map_open(g);
		json_gen_kint(g, "job", j->id);
		json_gen_kstr(g, "kind", j->kind);
		json_gen_kstr(g, "connector", j->connector);
		json_gen_kstr(g, "remote", j->remote[0] ? j->remote : NULL);
		json_gen_kint(g, "pid", j->pid);
		ctl_gen_uint(g, "age", ctl_secs_since(&j->started));
		/* Seconds left before the broker kills it. */
		ctl_gen_uint(g, "deadline", (long long)(j->deadline_at.tv_sec -
		    now.tv_sec));
		/* "running", or why it is being ended. */
		json_gen_kstr(g, "state", ctl_reason_name(j->kill_reason));
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void
ctl_gen_lock(yajl_gen g)
{
	struct lock_info	 li;
	const struct job	*j;

	lock_get(&li);
	json_gen_str(g, "lock");
	yajl_gen_map_open(g);
	json_gen_kint(g, "port", broker->conf.oauth_port);
	if (li.job == 0) {
		json_gen_kstr(g, "state", "free");
		yajl_gen_map_close(g);
		return;
	}
	/* A released lock waits for the port with its job already gone. */
	json_gen_kstr(g, "state", li.releasing ? "releasing" : "held");
	json_gen_kint(g, "job", li.job);
	TAILQ_FOREACH(j, &broker->jobs, entry)
		if (j->id == li.job)
			break;
	json_gen_kstr(g, "connector", j ? j->connector : NULL);
	json_gen_kstr(g, "remote", j && j->remote[0] ? j->remote : NULL);
	json_gen_kint(g, "since", (long long)li.since);
	ctl_gen_uint(g, "held_for", ctl_secs_since(&li.since_mono));
	yajl_gen_map_close(g);
}

/* The answer to "status": one JSON object. */
static char *
ctl_status(size_t *len)
{
	yajl_gen	 g;
	char		*out;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	yajl_gen_map_open(g);
	json_gen_kint(g, "time", (long long)time(NULL));
	ctl_gen_roles(g);
	ctl_gen_flows(g);
	ctl_gen_lock(g);
	yajl_gen_map_close(g);
	out = json_gen_take(g, len);
	yajl_gen_free(g);
	return out;
}

static char *
ctl_error(const char *sentence, size_t *len)
{
	yajl_gen	 g;
	char		*out;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	yajl_gen_map_open(g);
	json_gen_kstr(g, "error", sentence);
	yajl_gen_map_close(g);
	out = json_gen_take(g, len);
	yajl_gen_free(g);
	return out;
}

static void
ctl_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_conn	*c = arg;
	ssize_t		 n;

	(void)ev;
	while (c->outoff < c->outlen) {
		n = send(fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->wev == NULL && ((c->wev = event_new(broker->base,
			    c->fd, EV_WRITE | EV_PERSIST, ctl_write_cb, c)) ==
			    NULL || event_add(c->wev, NULL) == -1))
				break;
			return;
		}
		if (n <= 0)
			break;
		c->outoff += (size_t)n;
	}
	ctl_conn_free(c);
}

/* Answer the request line (without its newline), then close. */
static void
ctl_answer(struct ctl_conn *c, const char *line)
{
	char	*out;
	size_t	 len = 0;

	event_del(c->rev);
	if (strcmp(line, "status") == 0)
		out = ctl_status(&len);
	else
		out = ctl_error("Unknown command; the only one is 'status'.",
		    &len);
	if (out != NULL && len >= CD_CTL_ANSWER_MAX) {
		free(out);
		out = ctl_error("The answer is too large.", &len);
	}
	if (out == NULL) {
		ctl_conn_free(c);
		return;
	}
	out[len] = '\n';	/* json_gen_take left room for its NUL */
	c->out = out;
	c->outlen = len + 1;
	ctl_write_cb(c->fd, EV_WRITE, c);
}

static void
ctl_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_conn	*c = arg;
	char		*nl;
	ssize_t		 n;

	(void)ev;
	n = recv(fd, c->in + c->inlen, sizeof(c->in) - c->inlen,
	    MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		/* A request ended by EOF instead of a newline still counts;
		 * nothing at all is a client that changed its mind. */
		if (n == 0 && c->inlen > 0) {
			c->in[c->inlen < sizeof(c->in) ? c->inlen :
			    sizeof(c->in) - 1] = '\0';
			ctl_answer(c, c->in);
		} else
			ctl_conn_free(c);
		return;
	}
	c->inlen += (size_t)n;
	if ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
		*nl = '\0';
		if (nl > c->in && nl[-1] == '\r')
			nl[-1] = '\0';
		if (memchr(c->in, '\0', (size_t)(nl - c->in)) != NULL)
			c->in[0] = '\0';
		ctl_answer(c, c->in);
	} else if (c->inlen == sizeof(c->in)) {
		log_warnx("control: a request longer than %d bytes; refused",
		    CD_CTL_REQUEST_MAX);
		c->in[0] = '\0';
		event_del(c->rev);
		free(c->out);
		c->out = ctl_error("The request is too long; send 'status' "
		    "and a newline.", &c->outlen);
		if (c->out == NULL) {
			ctl_conn_free(c);
			return;
		}
		c->out[c->outlen++] = '\n';
		ctl_write_cb(c->fd, EV_WRITE, c);
	}
}

static void
ctl_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	log_info("control: a client took more than %d s; closing it",
	    CD_CTL_TIMEOUT_SEC);
	ctl_conn_free(arg);
}

/* Only root, the vault's user and the broker's own uid are answered. */
static int
ctl_peer_allowed(int fd)
{
	struct ucred	 cr;
	socklen_t	 len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1 ||
	    len != sizeof(cr)) {
		log_warn("control: cannot learn a client's identity; refused");
		return 0;
	}
	if (cr.uid == 0 || cr.uid == broker->vault_uid || cr.uid == geteuid())
		return 1;
	log_warnx("control: refused uid %u (pid %d): only root and the "
	    "vault's user may ask", (unsigned)cr.uid, (int)cr.pid);
	return 0;
}

static void
ctl_accept_cb(evutil_socket_t lfd, short ev, void *arg)
{
	struct timeval	 tv = { CD_CTL_TIMEOUT_SEC, 0 };
	struct ctl_conn	*c;
	int		 fd;

	(void)ev;
	(void)arg;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control: accept");
		return;
	}
	if (!ctl_peer_allowed(fd)) {
		close(fd);
		return;
	}
	if (ctl_nconns >= CD_CTL_CONN_MAX) {
		log_warnx("control: %d clients are already connected; closing "
		    "a new one", CD_CTL_CONN_MAX);
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	TAILQ_INSERT_TAIL(&ctl_conns, c, entry);
	ctl_nconns++;
	c->rev = event_new(broker->base, fd, EV_READ | EV_PERSIST, ctl_read_cb,
	    c);
	c->timer = evtimer_new(broker->base, ctl_timeout_cb, c);
	if (c->rev == NULL || c->timer == NULL || event_add(c->rev, NULL) ==
	    -1 || evtimer_add(c->timer, &tv) == -1)
		ctl_conn_free(c);
}

void
ctl_start(void)
{
	if (ctl_fd == -1)
		return;
	ctl_ev = event_new(broker->base, ctl_fd, EV_READ | EV_PERSIST,
	    ctl_accept_cb, NULL);
	if (ctl_ev == NULL || event_add(ctl_ev, NULL) == -1)
		fatalx("cannot watch the control socket");
}

/* At exit: no socket left that looks like a running daemon's. */
void
ctl_close(void)
{
	struct ctl_conn *c;

	while ((c = TAILQ_FIRST(&ctl_conns)) != NULL)
		ctl_conn_free(c);
	if (ctl_ev != NULL)
		event_free(ctl_ev);
	ctl_ev = NULL;
	if (ctl_fd != -1) {
		close(ctl_fd);
		ctl_fd = -1;
		unlink(ctl_path);
	}
}

/* The broker's counters for /metrics; MSG_STATS in msg.h. */
static struct timespec	 stats_last;
static struct event	*stats_ev;

void
ctl_stats_send(void)
{
	struct lock_info	 li;
	struct msg		 m;

	if (broker->http.pid <= 0 || broker->http.ctl == -1 ||
	    !broker->http.ready)
		return;
	clock_gettime(CLOCK_MONOTONIC, &stats_last);
	if (stats_ev != NULL)
		evtimer_del(stats_ev);
	lock_get(&li);
	msg_init(&m, MSG_STATS, 0);
	if (msg_put_u32(&m, broker->http.restarts) == -1 ||
	    msg_put_u32(&m, broker->vault.restarts) == -1 ||
	    msg_put_u32(&m, li.acquired) == -1 ||
	    msg_put_u32(&m, li.refusals) == -1 ||
	    msg_put_u32(&m, li.release_waits) == -1 ||
	    msg_put_u32(&m, li.job != 0) == -1 ||
	    msg_put_u32(&m, (uint32_t)broker->njobs) == -1 ||
	    msg_send(broker->http.ctl, &m) == -1)
		log_warn("cannot send the counters to http");
	msg_free(&m);
}

static void
ctl_stats_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	ctl_stats_send();
}

void
ctl_stats_changed(void)
{
	struct timeval	 tv;
	long long	 ms;
	struct timespec	 now;

	if (broker->base == NULL)
		return;
	if (stats_ev == NULL &&
	    (stats_ev = evtimer_new(broker->base, ctl_stats_cb, NULL)) == NULL)
		return;
	if (evtimer_pending(stats_ev, NULL))
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - stats_last.tv_sec) * 1000LL +
	    (now.tv_nsec - stats_last.tv_nsec) / 1000000;
	ms = ms >= CD_STATS_INTERVAL_MS ? 0 : CD_STATS_INTERVAL_MS - ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(stats_ev, &tv);
}
