/*
 * The single-flight lock on rclone's OAuth callback port (53682), shared
 * by gdrive and onedrive flows: rclone binds that fixed port for the
 * whole flow, so only one flow can run at a time. The broker takes the
 * lock when it spawns such a worker (a flow still "pending" holds it
 * too) and gives it back only once the worker has been reaped and the
 * port can be bound again, so that a flow never starts while a dying
 * rclone may still hold it.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"

/* How long a port held by someone else keeps the lock, in tries. */
#define LOCK_RETRY_MS	20
#define LOCK_RETRIES	1500

static uint32_t		 lock_job;	/* holder, 0 when free */
static int		 lock_releasing;
static unsigned int	 lock_tries;
static struct event	*lock_ev;
/* When the holder took it, and what connectorctl and /metrics report. */
static struct timespec	 lock_since_mono;
static time_t		 lock_since;
static uint32_t		 lock_acquired, lock_refusals, lock_release_waits;

int
lock_take(uint32_t job)
{
	if (lock_job != 0)
		return -1;
	lock_job = job;
	lock_releasing = 0;
	lock_since = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &lock_since_mono);
	lock_acquired++;
	ctl_stats_changed();
	return 0;
}

void
lock_refused(void)
{
	lock_refusals++;
	ctl_stats_changed();
}

void
lock_get(struct lock_info *li)
{
	li->job = lock_job;
	li->releasing = lock_releasing;
	li->since = lock_since;
	li->since_mono = lock_since_mono;
	li->acquired = lock_acquired;
	li->refusals = lock_refusals;
	li->release_waits = lock_release_waits;
}

uint32_t
lock_holder(void)
{
	return lock_job;
}

/* Can the callback port be bound right now? */
static int
lock_port_free(void)
{
	struct sockaddr_in	 sin;
	int			 fd, one = 1, ok;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)broker->conf.oauth_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* rclone binds with SO_REUSEADDR too: TIME_WAIT does not count. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ||
	    errno != EADDRINUSE;
	close(fd);
	return ok;
}

static void
lock_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval tv = { 0, LOCK_RETRY_MS * 1000 };

	(void)fd;
	(void)ev;
	(void)arg;
	if (lock_port_free() || ++lock_tries >= LOCK_RETRIES) {
		if (lock_tries >= LOCK_RETRIES)
			log_warnx("port %u is still in use by another program; "
			    "releasing the OAuth lock anyway",
			    broker->conf.oauth_port);
		log_debug("OAuth lock released by job %u", lock_job);
		lock_job = 0;
		lock_releasing = 0;
		ctl_stats_changed();
		return;
	}
	/* The port is still bound (a dying rclone): this release waits. */
	if (lock_tries == 1) {
		lock_release_waits++;
		ctl_stats_changed();
	}
	evtimer_add(lock_ev, &tv);
}

void
lock_release(uint32_t job)
{
	if (lock_job != job || lock_releasing)
		return;
	lock_releasing = 1;
	lock_tries = 0;
	if (lock_ev == NULL &&
	    (lock_ev = evtimer_new(broker->base, lock_retry_cb, NULL)) == NULL)
		fatalx("evtimer_new");
	lock_retry_cb(-1, 0, NULL);
}
