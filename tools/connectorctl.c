/*
 * connectorctl: the operator's tool for a connectord installation.
 *
 *	connectorctl audit verify [path ...]
 *
 * checks the hash chain of the vault's IPC log (default: ipc.log in the
 * default state_dir). Several paths are one rotated series, oldest first
 * (ipc.log.2 ipc.log.1 ipc.log): each file must continue the chain where
 * the one before it ended. A series whose first file starts past seq 1
 * continues files that were rotated away; that is accepted, and said, when
 * the file starts with the LOG_REOPENED line a rotation writes.
 *
 * Exit status as diff(1): 0 intact, 1 broken, 2 when the log could not be
 * checked at all (usage, open or read error), so a script never mistakes
 * "could not look" for "found damage".
 *
 *	connectorctl status [--json] [-s socket] [-f config]
 *
 * asks the running daemon, over its control socket, for its roles (pid,
 * uptime, restarts), the flows in progress and the holder of the OAuth
 * port lock, and prints a table (--json: the daemon's JSON answer as it
 * came). The socket is -s, or control_socket from the configuration
 * (-f, else the installed default file, else the built-in defaults),
 * else connectord.sock in its state_dir. Only root and the vault's user
 * are answered. Exit status: 0 answered, 1 the daemon is not running or
 * refused or did not answer, 2 usage or an unreadable configuration.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cd_limits.h"
#include "config.h"
#include "json.h"

#define AUDIT_LOG_DEFAULT	"./var/state/ipc.log"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: connectorctl audit verify [path ...]\n"
	    "       connectorctl status [--json] [-s socket] [-f config]\n");
	exit(2);
}

/*
 * One file of the series. Prints its verdict (prefixed with the path when
 * the series has several files) and returns 0, 1 or 2 as the exit status.
 */
static int
audit_verify_one(const char *path, struct audit_chain *c, int named,
    unsigned long *total)
{
	char msg[512];
	unsigned long n = 0, bad = 0;
	int fd, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path,
		    strerror(errno));
		return 2;
	}
	rv = audit_verify_next(fd, c, &n, &bad, msg, sizeof(msg));
	close(fd);
	if (rv == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path, msg);
		return 2;
	}
	if (rv == 1)
		printf("broken: %s%s%s\n", named ? path : "", named ? ": " : "",
		    msg);
	else if (named)
		printf("ok: %s: %lu lines verified\n", path, n);
	*total += n;
	return rv;
}

static int
audit_verify_paths(char **paths, int count)
{
	struct audit_chain c;
	unsigned long total = 0;
	int i, rv = 0;

	audit_chain_init(&c);
	for (i = 0; i < count && rv == 0; i++)
		rv = audit_verify_one(paths[i], &c, count > 1, &total);
	if (rv == 0 && count > 1)
		printf("ok: %lu lines verified in %d files, one chain\n", total,
		    count);
	else if (rv == 0)
		printf("ok: %lu lines verified\n", total);
	if (rv == 0 && c.continued)
		printf("note: %s starts at seq %llu with a %s line: it "
		    "continues a file rotated before it, whose lines are not "
		    "checked here (give the older files first to check "
		    "them too)\n", paths[0], c.first_seq, AUDIT_TYPE_REOPENED);
	/* A verdict that never reached stdout must not look like success. */
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "connectorctl: stdout: %s\n", strerror(errno));
		return 2;
	}
	return rv;
}

/* Where the daemon's control socket is, from -s or the configuration. */
static void
status_socket_path(const char *sock, const char *file, char *out,
    size_t outlen)
{
	struct config	 conf;
	struct stat	 st;
	char		 err[1024];

	if (sock != NULL) {
		if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			fprintf(stderr, "connectorctl: %s: too long for a socket "
			    "address\n", sock);
			exit(2);
		}
		snprintf(out, outlen, "%s", sock);
		return;
	}
	if (config_init(&conf) == -1) {
		fprintf(stderr, "connectorctl: out of memory\n");
		exit(2);
	}
	if (file == NULL && stat(CONFIG_DEFAULT_PATH, &st) == 0)
		file = CONFIG_DEFAULT_PATH;
	if ((file != NULL && config_load_file(&conf, file, err,
	    sizeof(err)) == -1) || config_control_socket(&conf, out, outlen,
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "connectorctl: %s\n", err);
		config_free(&conf);
		exit(2);
	}
	config_free(&conf);
}

/* Connect, ask, and read the whole answer. NULL (and a sentence on
 * stderr) when the daemon cannot be reached, refuses or does not say. */
static char *
status_ask(const char *path, size_t *lenp)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { CD_CTL_TIMEOUT_SEC + 1, 0 };
	char			*buf;
	size_t			 len = 0;
	ssize_t			 n;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1) {
		fprintf(stderr, "connectorctl: socket: %s\n", strerror(errno));
		exit(1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "connectorctl: connectord is not running "
			    "(nothing answers on %s)\n", path);
		else if (errno == EACCES || errno == EPERM)
			fprintf(stderr, "connectorctl: %s: permission denied; "
			    "only root and the vault's user may ask\n", path);
		else
			fprintf(stderr, "connectorctl: %s: %s\n", path,
			    strerror(errno));
		close(fd);
		return NULL;
	}
	if ((buf = malloc(CD_CTL_ANSWER_MAX + 1)) == NULL ||
	    send(fd, "status\n", 7, MSG_NOSIGNAL) != 7) {
		n = -1;
		goto out;
	}
	while (len < CD_CTL_ANSWER_MAX &&
	    (n = read(fd, buf + len, CD_CTL_ANSWER_MAX - len)) > 0)
		len += (size_t)n;
out:
	if (len == 0) {
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			fprintf(stderr, "connectorctl: connectord did not answer "
			    "within %d s\n", CD_CTL_TIMEOUT_SEC + 1);
		else
			fprintf(stderr, "connectorctl: connectord closed the "
			    "connection without an answer (it answers root and "
			    "the vault's user only, %d clients at a time)\n",
			    CD_CTL_CONN_MAX);
		free(buf);
		buf = NULL;
	} else
		buf[len] = '\0';
	close(fd);
	*lenp = len;
	return buf;
}

/* A string from the daemon, made safe for a terminal and cut. */
static const char *
status_str(yajl_val obj, const char *key, char *buf, size_t len)
{
	const char	*s = json_obj_str(obj, key);
	size_t		 i;

	if (s == NULL || *s == '\0')
		return "-";
	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* A number of seconds as "12s", "3m05s", "1h02m", "2d03h"; "-" if none. */
static const char *
status_dur(yajl_val obj, const char *key, char *buf, size_t len)
{
	yajl_val	 v = json_obj_get(obj, key);
	long long	 s;

	if (!YAJL_IS_INTEGER(v))
		return "-";
	s = v->u.number.i < 0 ? 0 : v->u.number.i;
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	return buf;
}

static long long
status_int(yajl_val obj, const char *key)
{
	yajl_val v = json_obj_get(obj, key);

	return YAJL_IS_INTEGER(v) ? v->u.number.i : -1;
}

static const char *
status_num(yajl_val obj, const char *key, char *buf, size_t len)
{
	long long n = status_int(obj, key);

	if (n < 0)
		return "-";
	snprintf(buf, len, "%lld", n);
	return buf;
}

static void
status_print_roles(yajl_val roles)
{
	char	 a[24], b[24], c[24], d[24], e[24];

	printf("%-8s %-8s %-11s %-9s %s\n", "ROLE", "PID", "STATE", "UPTIME",
	    "RESTARTS");
	for (size_t i = 0; YAJL_IS_ARRAY(roles) && i < roles->u.array.len;
	    i++) {
		yajl_val r = roles->u.array.values[i];

		printf("%-8s %-8s %-11s %-9s %s\n",
		    status_str(r, "role", a, sizeof(a)), status_num(r, "pid", b,
		    sizeof(b)), status_str(r, "state", c, sizeof(c)),
		    status_dur(r, "uptime", d, sizeof(d)),
		    status_num(r, "restarts", e, sizeof(e)));
	}
}

static void
status_print_flows(yajl_val flows)
{
	char	 k[24], cn[24], rm[48], st[16], n1[24], n2[24], d1[32], d2[32];
	size_t	 n = YAJL_IS_ARRAY(flows) ? flows->u.array.len : 0;

	printf("\nFLOWS %zu\n", n);
	if (n == 0)
		return;
	printf("%-6s %-11s %-10s %-20s %-8s %-7s %-9s %s\n", "JOB", "KIND",
	    "CONNECTOR", "REMOTE", "PID", "AGE", "DEADLINE", "STATE");
	for (size_t i = 0; i < n; i++) {
		yajl_val f = flows->u.array.values[i];

		printf("%-6s %-11s %-10s %-20s %-8s %-7s %-9s %s\n",
		    status_num(f, "job", n1, sizeof(n1)),
		    status_str(f, "kind", k, sizeof(k)),
		    status_str(f, "connector", cn, sizeof(cn)),
		    status_str(f, "remote", rm, sizeof(rm)),
		    status_num(f, "pid", n2, sizeof(n2)),
		    status_dur(f, "age", d1, sizeof(d1)),
		    status_dur(f, "deadline", d2, sizeof(d2)),
		    status_str(f, "state", st, sizeof(st)));
	}
}

static void
status_print_lock(yajl_val lock)
{
	char	 st[16], cn[24], rm[48], d[32];

	printf("\nLOCK port %lld: %s", status_int(lock, "port"),
	    status_str(lock, "state", st, sizeof(st)));
	if (status_int(lock, "job") > 0) {
		printf(" by job %lld (%s", status_int(lock, "job"),
		    status_str(lock, "connector", cn, sizeof(cn)));
		if (json_obj_str(lock, "remote") != NULL)
			printf(", remote %s", status_str(lock, "remote", rm,
			    sizeof(rm)));
		printf(") for %s", status_dur(lock, "held_for", d, sizeof(d)));
	}
	printf("\n");
}

static int
status_main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*sock = NULL, *file = NULL, *e;
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char		*answer, err[256];
	size_t		 len;
	yajl_val	 v;
	int		 ch, raw = 0;

	while ((ch = getopt_long(argc, argv, "js:f:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': raw = 1; break;
		case 's': sock = optarg; break;
		case 'f': file = optarg; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	status_socket_path(sock, file, path, sizeof(path));
	if ((answer = status_ask(path, &len)) == NULL)
		return 1;
	v = json_parse(answer, len, CD_CTL_ANSWER_MAX, err, sizeof(err));
	if (!YAJL_IS_OBJECT(v)) {
		fprintf(stderr, "connectorctl: the daemon's answer is not a JSON "
		    "object (%s)\n", v == NULL ? err : "another value");
		free(answer);
		return 1;
	}
	if ((e = json_obj_str(v, "error")) != NULL) {
		fprintf(stderr, "connectorctl: connectord: %s\n", e);
		yajl_tree_free(v);
		free(answer);
		return 1;
	}
	if (raw)
		fputs(answer, stdout);
	else {
		status_print_roles(json_obj_get(v, "roles"));
		status_print_flows(json_obj_get(v, "flows"));
		status_print_lock(json_obj_get(v, "lock"));
	}
	yajl_tree_free(v);
	free(answer);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "connectorctl: stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static char *fallback[] = { AUDIT_LOG_DEFAULT };

	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	if (argc < 3 || strcmp(argv[1], "audit") != 0 ||
	    strcmp(argv[2], "verify") != 0)
		usage();
	/* No options yet; a file named "-x" can be given as "./-x". */
	for (int i = 3; i < argc; i++)
		if (argv[i][0] == '-')
			usage();
	if (argc == 3)
		return audit_verify_paths(fallback, 1);
	return audit_verify_paths(argv + 3, argc - 3);
}
