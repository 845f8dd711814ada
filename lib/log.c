/*
 * Logging shared by every role: stderr in the foreground (-d), syslog
 * otherwise. On stderr each line is prefixed with the time, the role and
 * the calling function; in syslog the role is the ident
 * ("connectord-http[pid]: function: message"), so that syslog filters and
 * journalctl -t can pick one role, and a worker's connector leads the
 * message ("connectord-worker[pid]: gdrive: function: message").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

/* The syslog ident prefix; the role's first word follows a '-'. */
#define LOG_IDENT_PREFIX "connectord"

static int	 log_foreground = 1;
static int	 log_verbose;
static char	 log_role[32] = LOG_IDENT_PREFIX;
/* openlog() keeps this pointer: it must outlive every syslog() call. */
static char	 log_ident[48] = LOG_IDENT_PREFIX;
/* What of the role does not fit in the ident ("gdrive"), else "". */
static char	 log_detail[32];

void
log_init(int foreground, int verbose)
{
	log_foreground = foreground;
	log_verbose = verbose;
	/* LOG_NDELAY: connect to /dev/log now, before a chroot hides it and
	 * a seccomp filter forbids socket(). */
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

/*
 * "http" gives the ident "connectord-http"; "worker gdrive" gives
 * "connectord-worker" and the detail "gdrive", since a syslog tag is one
 * word. Called before log_init() by every role, and by nobody after.
 */
void
log_set_role(const char *role)
{
	size_t	 len = strcspn(role, " ");

	snprintf(log_role, sizeof(log_role), "%s", role);
	snprintf(log_ident, sizeof(log_ident), "%s-%.*s", LOG_IDENT_PREFIX,
	    (int)len, role);
	snprintf(log_detail, sizeof(log_detail), "%s",
	    role[len] != '\0' ? role + len + 1 : "");
}

int
log_get_verbose(void)
{
	return log_verbose;
}

static void
log_vwrite(int pri, const char *func, const char *fmt, va_list ap,
    const char *suffix)
{
	char	 msg[1024];
	int	 saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_foreground) {
		struct timespec ts;
		struct tm	tm;
		char		tbuf[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s: %s%s%s\n", tbuf,
		    ts.tv_nsec / 1000000, log_role, func, msg,
		    suffix ? ": " : "", suffix ? suffix : "");
		fflush(stderr);
	} else
		syslog(pri, "%s%s%s: %s%s%s", log_detail,
		    log_detail[0] != '\0' ? ": " : "", func, msg,
		    suffix ? ": " : "", suffix ? suffix : "");
	errno = saved;
}

void
log_warn_(const char *func, const char *fmt, ...)
{
	va_list	 ap;
	char	 ebuf[128];
	int	 saved = errno;

	snprintf(ebuf, sizeof(ebuf), "%s", strerror(saved));
	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, func, fmt, ap, ebuf);
	va_end(ap);
	errno = saved;
}

void
log_warnx_(const char *func, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, func, fmt, ap, NULL);
	va_end(ap);
}

void
log_info_(const char *func, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_INFO, func, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug_(const char *func, const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, func, fmt, ap, NULL);
	va_end(ap);
}

void
fatal_(const char *func, const char *fmt, ...)
{
	va_list	 ap;
	char	 ebuf[128];

	snprintf(ebuf, sizeof(ebuf), "%s", strerror(errno));
	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, func, fmt, ap, ebuf);
	va_end(ap);
	exit(1);
}

void
fatalx_(const char *func, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, func, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
