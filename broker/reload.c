/*
 * SIGHUP: re-read the configuration and reopen the logs, without
 * restarting http or the vault (a restart would drop http's flow sessions
 * and console sign-ins, and fail requests in flight).
 *
 * - The file (the same -f, or the default path) and the same -o overrides
 *   are read and checked as at start. A file that does not load is
 *   reported with its line and nothing changes. Otherwise the keys that
 *   may change at run time take their new values (config_reload()) and
 *   reach http and the vault in a MSG_CONFIG; workers started afterwards
 *   get them in their MSG_INIT. Every other changed key is reported and
 *   keeps its value until the next start.
 * - The access log, which http cannot open from its empty chroot, is
 *   opened again here (O_APPEND, 0640) and passed to http, which lets the
 *   old file go: logrotate's rename-then-HUP loses no line.
 * - The vault is asked to reopen the IPC log; it continues the hash chain
 *   in the new file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"

/* How the configuration was read at start, to read it the same way
 * (copies: the process title is written over argv). */
static char		 *reload_file;
static char		**reload_opts;
static size_t		  reload_nopts;
/* The directory the broker started in: relative paths in the file are
 * read from there, although a detached broker now sits in /. */
static int		  reload_cwd = -1;

/* Open the access log for http, as root, appending: -1 with errno. */
static int
reload_access_open(const char *path)
{
	struct stat	 st;
	int		 fd;

	/* O_NONBLOCK: a FIFO put in its place must not hang the broker. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0640);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

void
reload_init(struct broker *b, const char *file, char **opts, size_t nopts)
{
	char	 err[1024];

	if ((file != NULL && (reload_file = strdup(file)) == NULL) ||
	    (reload_opts = calloc(nopts + 1, sizeof(char *))) == NULL)
		fatal("strdup");
	for (reload_nopts = 0; reload_nopts < nopts; reload_nopts++)
		if ((reload_opts[reload_nopts] = strdup(opts[reload_nopts])) ==
		    NULL)
			fatal("strdup");
	reload_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (config_copy(&b->conf_loaded, &b->conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	b->access_fd = -1;
	if (b->conf.access_log != NULL &&
	    (b->access_fd = reload_access_open(b->conf.access_log)) == -1)
		fatal("cannot open access_log %s", b->conf.access_log);
}

/* Tell http where access lines go: the file (on) or the daemon log. */
void
reload_access_send(void)
{
	struct msg	 m;

	if (broker->http.pid <= 0 || broker->http.ctl == -1)
		return;
	msg_init(&m, MSG_ACCESS_LOG, 0);
	if (msg_put_u32(&m, broker->access_fd != -1) == -1 ||
	    (broker->access_fd != -1 &&
	    msg_put_fd(&m, broker->access_fd) == -1) ||
	    msg_send(broker->http.ctl, &m) == -1)
		log_warn("cannot pass the access log to http");
	msg_free(&m);
}

/* A file that cannot be opened keeps the one already open in use. */
static void
reload_access_reopen(struct broker *b)
{
	int	 fd = -1;

	if (b->conf.access_log != NULL &&
	    (fd = reload_access_open(b->conf.access_log)) == -1) {
		log_warn("cannot open access_log %s; the file already open "
		    "stays in use", b->conf.access_log);
		return;
	}
	if (b->access_fd != -1)
		close(b->access_fd);
	b->access_fd = fd;
	reload_access_send();
}

static void
reload_send(struct role_proc *rp, uint16_t type, const char *text,
    size_t len)
{
	struct msg	 m;

	if (rp->pid <= 0 || rp->ctl == -1)
		return;	/* a new one gets it all in its MSG_INIT */
	msg_init(&m, type, 0);
	if ((text != NULL && msg_put_strn(&m, text, len) == -1) ||
	    msg_send(rp->ctl, &m) == -1)
		log_warn("cannot send %s to %s", msg_type_name(type),
		    rp->name);
	msg_free(&m);
}

/* The new configuration to http and the vault. */
static void
reload_send_config(struct broker *b)
{
	char	*text;
	ssize_t	 len;

	/* Room for the string's length in the payload, under the cap. */
	if ((text = malloc(CD_MSG_CTL_MAX - 64)) == NULL ||
	    (len = config_serialize(&b->conf, text, CD_MSG_CTL_MAX - 64)) < 0)
		log_warnx("cannot pass the new configuration on (out of memory "
		    "or too large); http and the vault keep the old one");
	else {
		reload_send(&b->http, MSG_CONFIG, text, (size_t)len);
		reload_send(&b->vault, MSG_CONFIG, text, (size_t)len);
	}
	free(text);
}

static void
reload_report(const char *key, int taken, const char *kept, void *arg)
{
	(void)arg;
	if (taken)
		log_info("reload: %s changed; the new value is in effect", key);
	else
		log_warnx("reload: key %s changed in the file; it takes effect "
		    "at the next start; keeping %s", key, kept);
}

/* Read the file again as at start; -1 with err set when it fails. */
static int
reload_read(struct broker *b, struct config *fresh, char *err,
    size_t errlen)
{
	int	 rc;

	if (reload_cwd != -1 && fchdir(reload_cwd) == -1)
		log_warn("cannot return to the start directory; relative "
		    "paths are read from /");
	rc = broker_load_config(fresh, reload_file, reload_opts, reload_nopts,
	    err, errlen);
	if (!b->foreground && chdir("/") == -1)
		log_warn("chdir /");
	return rc;
}

static void
reload_config(struct broker *b)
{
	struct config	 fresh;
	char		 err[1024];
	int		 n;

	if (reload_read(b, &fresh, err, sizeof(err)) == -1) {
		log_warnx("reload: %s; the running configuration stays in "
		    "force", err);
		config_free(&fresh);
		return;
	}
	n = config_reload(&b->conf, &b->conf_loaded, &fresh, reload_report,
	    NULL, err, sizeof(err));
	config_free(&fresh);
	if (n == -1) {
		log_warnx("reload: %s; the running configuration stays in "
		    "force", err);
		return;
	}
	if (n > 0)
		reload_send_config(b);
	log_info("reload: configuration read again, %d key(s) now in effect",
	    n);
}

void
reload_run(struct broker *b)
{
	log_info("SIGHUP: reading the configuration again and reopening the "
	    "logs");
	reload_config(b);
	reload_access_reopen(b);
	reload_send(&b->vault, MSG_LOG_REOPEN, NULL, 0);
}
