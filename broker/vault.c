/*
 * connectord: vault, the token vault.
 *
 * Contract. Runs as the workspace owner (vault_user), with no network and
 * no exec (seccomp allowlist). It is the only process that opens the
 * credential files: <workspace>/mcp-tokens.json, <workspace>/rclone.conf
 * and <home>/.xo-cowork/github_token.json, and its own state in
 * <state_dir>: the IPC log, the log's HMAC key, status.json.
 *
 * Peers and what it accepts:
 *   broker: MSG_GRANT (with the worker's channel), MSG_GRANT_END,
 *           MSG_HTTP_CHANNEL, and on SIGHUP MSG_CONFIG (the re-read
 *           configuration) and MSG_LOG_REOPEN (follow a rotated IPC log;
 *           the hash chain continues in the new file).
 *   http:   MSG_META_REQ, MSG_DELETE_REQ. http never receives a secret:
 *           it gets metadata pushes (connected or not, identity, errors).
 *   worker: MSG_CRED_PUT_REQ, MSG_CRED_GET_REQ, MSG_CRED_MARK_REQ, each
 *           only within the worker's grant and at most once.
 * Any other message, or one outside a grant, is a protocol violation:
 * the vault exits and the broker restarts it.
 *
 * Every request is written to the IPC log before its effect becomes
 * visible; if the log cannot be written, the request is refused.
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "audit.h"
#include "child.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "sandbox.h"
#include "store.h"
#include "vault.h"

struct vault	 vault;

static const uint16_t permit_broker[] = {
	MSG_GRANT, MSG_GRANT_END, MSG_HTTP_CHANNEL, MSG_CONFIG, MSG_LOG_REOPEN,
};
static const uint16_t permit_http[] = {
	MSG_META_REQ, MSG_DELETE_REQ,
};

#define PERMIT(t) { (t), sizeof(t) / sizeof((t)[0]) }

void
vault_violation(const char *peer, const char *what)
{
	fatalx("protocol violation by %s: %s", peer, what);
}

/* Open (or create, 0600) the log's HMAC key: 32 random bytes. */
static int
vault_load_key(char *err, size_t errlen)
{
	int	 fd;
	ssize_t	 n;

	fd = openat(vault.statefd, "ipc-log.key", O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (RAND_bytes(vault.key, sizeof(vault.key)) != 1)
			goto fail;
		fd = openat(vault.statefd, "ipc-log.key", O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 || write(fd, vault.key, sizeof(vault.key)) !=
		    (ssize_t)sizeof(vault.key) || fsync(fd) == -1)
			goto fail;
		close(fd);
		return fsync(vault.statefd) == -1 ? -1 : 0;
	}
	if (fd == -1)
		goto fail;
	n = read(fd, vault.key, sizeof(vault.key));
	close(fd);
	if (n == (ssize_t)sizeof(vault.key))
		return 0;
fail:
	snprintf(err, errlen, "cannot read or create ipc-log.key in state_dir: "
	    "%s", strerror(errno));
	return -1;
}

static int
vault_open_dir(const char *path, int *fd, char *err, size_t errlen)
{
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A vault killed between creating a temporary file and renaming it over
 * the real one leaves the temporary file, which may hold a secret. The
 * broker starts a vault only once the last one is reaped, so at start
 * every such file is stale: remove them, under each directory's lock.
 */
static void
vault_sweep_dir(int dirfd, const char *where, const char *const *names)
{
	int lock, n;

	if ((lock = store_lock(dirfd)) == -1)
		return;
	for (; *names != NULL; names++)
		if ((n = store_sweep(dirfd, *names)) > 0)
			log_warnx("removed %d temporary file(s) of %s in %s left by "
			    "an interrupted write", n, *names, where);
	store_unlock(lock);
}

static void
vault_sweep(void)
{
	static const char *const ws[] = { TOKENS_FILE, RCLONE_FILE, NULL };
	static const char *const st[] = { STATUS_FILE, NULL };
	static const char *const gh[] = { GITHUB_FILE, NULL };
	int xo;

	vault_sweep_dir(vault.wsfd, "the workspace", ws);
	vault_sweep_dir(vault.statefd, "the state directory", st);
	xo = openat(vault.homefd, XO_DIR, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (xo != -1) {
		vault_sweep_dir(xo, "~/.xo-cowork", gh);
		close(xo);
	}
}

/* Runs as the vault's user before seccomp: open everything we hold. */
static int
vault_acquire(void *arg, char *err, size_t errlen)
{
	const struct config *conf = &vault.ci.conf;

	(void)arg;
	umask(077);
	if (vault_open_dir(conf->workspace, &vault.wsfd, err, errlen) == -1 ||
	    vault_open_dir(conf->state_dir, &vault.statefd, err, errlen) == -1 ||
	    vault_open_dir(conf->home, &vault.homefd, err, errlen) == -1 ||
	    vault_load_key(err, errlen) == -1)
		return -1;
	vault.audit = audit_open(vault.statefd, IPC_LOG_FILE, vault.key,
	    sizeof(vault.key), err, errlen);
	if (vault.audit == NULL)
		return -1;
	vault_sweep();
	vault_status_load();
	return 0;
}

int
vault_log(const struct audit_rec *rec)
{
	if (audit_append(vault.audit, rec) == -1) {
		log_warn("cannot write the IPC log");
		return -1;
	}
	return 0;
}

static void
vault_http_close(void)
{
	if (vault.httpev != NULL) {
		event_free(vault.httpev);
		vault.httpev = NULL;
	}
	if (vault.httpfd != -1) {
		close(vault.httpfd);
		vault.httpfd = -1;
	}
}

static void
vault_http_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = PERMIT(permit_http);
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	(void)arg;
	rc = msg_recv_permit(fd, &m, 4096, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_EOF) {
		/* http died; the broker will link its successor. */
		vault_http_close();
		return;
	}
	if (rc == MSG_RECV_VIOLATION)
		vault_violation("http", why);
	switch (m.hdr.type) {
	case MSG_META_REQ:
		if (msg_get_end(&m) == -1)
			vault_violation("http", "malformed META_REQ");
		vault_meta_push();
		break;
	case MSG_DELETE_REQ:
		vault_handle_delete(&m);
		break;
	default:
		vault_violation("http", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

static void
vault_take_http(struct msg *m)
{
	int fd;

	if (msg_get_fd(m, &fd) == -1 || msg_get_end(m) == -1)
		vault_violation("broker", "malformed HTTP_CHANNEL");
	vault_http_close();
	vault.httpfd = fd;
	vault.httpev = event_new(vault.base, fd, EV_READ | EV_PERSIST,
	    vault_http_cb, NULL);
	if (vault.httpev == NULL || event_add(vault.httpev, NULL) == -1)
		fatalx("event_add");
	vault_meta_push();
}

/*
 * logrotate renamed ipc.log and the broker passed on its SIGHUP. A reopen
 * that cannot complete leaves the old file in use: the chain goes on
 * there, and the next SIGHUP tries again.
 */
static void
vault_log_reopen(struct msg *m)
{
	char	 err[512];
	int	 rotated;

	if (msg_get_end(m) == -1)
		vault_violation("broker", "malformed LOG_REOPEN");
	if (audit_reopen(vault.audit, vault.statefd, IPC_LOG_FILE, &rotated,
	    err, sizeof(err)) == -1)
		log_warnx("cannot reopen the IPC log: %s; the file already "
		    "open stays in use", err);
	else if (rotated)
		log_info("reopened %s: the hash chain continues in the new "
		    "file", IPC_LOG_FILE);
	else
		log_debug("%s was not rotated; nothing to reopen",
		    IPC_LOG_FILE);
}

/*
 * The vault acts on no key that may change at run time (its directories
 * and the log were opened at start), but keeps its copy current so that
 * nothing it reads is staler than what the broker runs with.
 */
static void
vault_take_config(struct msg *m)
{
	if (child_take_config(&vault.ci, m) == -1)
		vault_violation("broker", "malformed CONFIG");
	log_debug("configuration reloaded");
}

static void
vault_ctl_cb(evutil_socket_t fd, short ev, void *arg)
{
	static const struct msg_permit permit = PERMIT(permit_broker);
	struct msg	 m;
	const char	*why;
	int		 rc;

	(void)ev;
	(void)arg;
	rc = msg_recv_permit(fd, &m, CD_MSG_CTL_MAX, &permit, &why);
	if (rc == MSG_RECV_AGAIN)
		return;
	if (rc == MSG_RECV_EOF)
		fatalx("the broker went away");
	if (rc == MSG_RECV_VIOLATION)
		vault_violation("broker", why);
	switch (m.hdr.type) {
	case MSG_GRANT:
		vault_grant_add(&m);
		break;
	case MSG_GRANT_END:
		if (msg_get_end(&m) == -1)
			vault_violation("broker", "malformed GRANT_END");
		vault_grant_end(m.hdr.job);
		break;
	case MSG_HTTP_CHANNEL:
		vault_take_http(&m);
		break;
	case MSG_CONFIG:
		vault_take_config(&m);
		break;
	case MSG_LOG_REOPEN:
		vault_log_reopen(&m);
		break;
	default:
		vault_violation("broker", msg_type_name(m.hdr.type));
	}
	msg_free(&m);
}

int
main(int argc, char *argv[])
{
	struct sandbox	 sb;
	struct msg	 m;
	char		 err[512];

	(void)argc;
	(void)argv;
	log_set_role("vault");
	child_read_init(&vault.ci);
	vault.httpfd = -1;
	TAILQ_INIT(&vault.grants);
	memset(&sb, 0, sizeof(sb));
	sb.role = SANDBOX_VAULT;
	sb.change_ids = vault.ci.change_ids;
	sb.uid = vault.ci.uid;
	sb.gid = vault.ci.gid;
	sb.nofile = CD_RLIMIT_NOFILE;
	sb.acquire = vault_acquire;
	if (sandbox_enter(&sb, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if ((vault.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	child_stop_on_term(vault.base);
	vault.ctlev = event_new(vault.base, CHILD_CTL_FD, EV_READ | EV_PERSIST,
	    vault_ctl_cb, NULL);
	if (vault.ctlev == NULL || event_add(vault.ctlev, NULL) == -1)
		fatalx("event_add");
	msg_init(&m, MSG_READY, 0);
	if (msg_send(CHILD_CTL_FD, &m) == -1)
		fatal("cannot tell the broker we are ready");
	msg_free(&m);
	log_debug("ready");
	event_base_dispatch(vault.base);
	return 0;
}
