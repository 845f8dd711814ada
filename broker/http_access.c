/*
 * The access log of the http role: one line per answered request,
 *
 *	2026-11-26T22:47:52.123Z POST /api/connectors/manus/token 200 41
 *
 * (UTC time of the answer, method, path without its query string, status,
 * milliseconds since the request was routed), written to the file the
 * broker opened and passed with MSG_ACCESS_LOG: http is chrooted into an
 * empty directory and cannot open it itself. On SIGHUP the broker passes
 * the reopened file and the old one is let go here, so that logrotate
 * loses no line. Without a file, http_access_log() keeps writing the
 * daemon log as before.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

/* The access log, or -1: lines go to the daemon log. */
static int	 access_fd = -1;
/* A write failed since the last file came: warn once, not per line. */
static int	 access_failing;
/* The request being routed now, and when its routing began: most
 * answers are given before http_route_cb returns. */
static struct evhttp_request *access_req;
static struct timespec access_start;

void
http_access_begin(struct evhttp_request *req)
{
	access_req = req;
	clock_gettime(CLOCK_MONOTONIC, &access_start);
}

void
http_access_set(int fd)
{
	if (access_fd != -1)
		close(access_fd);
	access_fd = fd;
	access_failing = 0;
	log_debug("access lines now go to %s", fd != -1 ? "the access log" :
	    "the daemon log");
}

/*
 * When req began: an answer given later (a worker's or the vault's) is
 * for a pending request, which noted its own start.
 */
static long long
access_ms(struct evhttp_request *req)
{
	const struct timespec	*t0 = NULL;
	struct timespec		 now;
	struct preq		*p;

	if (req == access_req)
		t0 = &access_start;
	else
		TAILQ_FOREACH(p, &http.preqs, entry)
			if (p->req == req) {
				t0 = &p->start;
				break;
			}
	if (t0 == NULL || clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return 0;
	return (long long)(now.tv_sec - t0->tv_sec) * 1000 +
	    (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int
http_access_write(struct evhttp_request *req, const char *method,
    const char *path, int code)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 when[32], line[256];
	ssize_t		 n;
	int		 len;

	if (access_fd == -1)
		return -1;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(when, 20, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
		return -1;
	snprintf(when + 19, sizeof(when) - 19, ".%03dZ",
	    (int)(ts.tv_nsec / 1000000) % 1000);
	len = snprintf(line, sizeof(line), "%s %s %s %d %lld\n", when, method,
	    path, code, access_ms(req));
	if (len < 0 || (size_t)len >= sizeof(line))
		return -1;
	/* One write of a whole line on an O_APPEND file: lines never mix. */
	do {
		n = write(access_fd, line, (size_t)len);
	} while (n == -1 && errno == EINTR);
	if (n == len) {
		access_failing = 0;
		return 0;
	}
	if (!access_failing)
		log_warnx("cannot write the access log (%s); access lines go "
		    "to the daemon log until a write succeeds", n == -1 ?
		    strerror(errno) : "short write");
	access_failing = 1;
	return -1;
}
