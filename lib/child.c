/*
 * The start of every child role: wait (bounded) for MSG_INIT from the
 * broker on CHILD_CTL_FD, set up logging, and rebuild the configuration
 * from its serialised form. Any deviation is fatal: a child that cannot
 * trust its start has nothing to do.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "child.h"
#include "log.h"
#include "msg.h"

void
child_read_init(struct child_init *ci)
{
	struct msg	 m;
	struct pollfd	 pfd = { .fd = CHILD_CTL_FD, .events = POLLIN };
	char		*cfg = NULL, err[512];
	uint32_t	 flags, change, uid, gid;
	size_t		 cfglen;
	int		 rc;

	memset(ci, 0, sizeof(*ci));
	if (poll(&pfd, 1, 10000) != 1)
		fatalx("no configuration from the broker within 10 s");
	if ((rc = msg_recv(CHILD_CTL_FD, &m, CD_MSG_PAYLOAD_MAX)) != 1)
		fatalx("cannot read the start message from the broker");
	if (m.hdr.type != MSG_INIT)
		fatalx("protocol violation: %s instead of INIT",
		    msg_type_name(m.hdr.type));
	if (msg_get_u32(&m, &flags) == -1 ||
	    msg_get_u32(&m, &change) == -1 ||
	    msg_get_u32(&m, &uid) == -1 ||
	    msg_get_u32(&m, &gid) == -1 ||
	    msg_get_str(&m, &cfg, &cfglen) == -1 ||
	    msg_get_str(&m, &ci->kind, NULL) == -1 ||
	    msg_get_str(&m, &ci->connector, NULL) == -1 ||
	    msg_get_str(&m, &ci->remote, NULL) == -1 ||
	    msg_get_str(&m, &ci->extra, NULL) == -1)
		fatalx("protocol violation: malformed INIT");
	while (ci->nfds < CD_MSG_FDS_MAX &&
	    msg_get_fd(&m, &ci->fds[ci->nfds]) == 0)
		ci->nfds++;
	if (msg_get_end(&m) == -1)
		fatalx("protocol violation: malformed INIT");
	msg_free(&m);
	ci->change_ids = change != 0;
	ci->uid = (uid_t)uid;
	ci->gid = (gid_t)gid;
	log_init(flags & CHILD_LOG_FOREGROUND, (flags & CHILD_LOG_VERBOSE2) ?
	    2 : (flags & CHILD_LOG_VERBOSE1) ? 1 : 0);
	if (config_init(&ci->conf) == -1 ||
	    config_load_buf(&ci->conf, "broker", cfg, cfglen, err,
	    sizeof(err)) == -1)
		fatalx("configuration from the broker: %s", err);
	free(cfg);
}

int
child_take_config(struct child_init *ci, struct msg *m)
{
	struct config	 conf;
	char		*text = NULL, err[512];
	size_t		 len;
	int		 rc = -1;

	if (msg_get_str(m, &text, &len) == -1 || msg_get_end(m) == -1)
		goto out;
	if (config_init(&conf) == -1)
		fatalx("out of memory");
	if (config_load_buf(&conf, "broker", text, len, err,
	    sizeof(err)) == -1) {
		log_warnx("configuration from the broker: %s", err);
		config_free(&conf);
		goto out;
	}
	config_free(&ci->conf);
	ci->conf = conf;
	rc = 0;
out:
	free(text);
	return rc;
}

void
child_free_init(struct child_init *ci)
{
	config_free(&ci->conf);
	free(ci->kind);
	free(ci->connector);
	free(ci->remote);
	if (ci->extra != NULL)
		explicit_bzero(ci->extra, strlen(ci->extra));
	free(ci->extra);
	for (size_t i = 0; i < ci->nfds; i++)
		if (ci->fds[i] != -1)
			close(ci->fds[i]);
}

static void
child_term_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)ev;
	log_debug("stopping on signal %d", (int)sig);
	event_base_loopexit(arg, NULL);
}

void
child_stop_on_term(struct event_base *base)
{
	static const int sigs[] = { SIGTERM, SIGINT };
	struct event	*ev;

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev = evsignal_new(base, sigs[i], child_term_cb, base);
		if (ev == NULL || evsignal_add(ev, NULL) == -1)
			fatalx("cannot watch signal %d", sigs[i]);
	}
}
