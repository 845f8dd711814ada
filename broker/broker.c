/*
 * connectord: the broker, the process an operator starts.
 *
 * Contract. Runs as the user that started it (root in production). Reads
 * the configuration, creates the state directory and the API token, binds
 * the listening sockets, then starts the vault and the http front end and
 * restarts either with backoff when it dies. At http's request it spawns
 * one worker per job, with a deadline, and reaps it. It owns the
 * lifecycle state (job ids, deadlines) and never parses HTTP, provider
 * JSON or tool output, and never sees a credential. It answers
 * `connectorctl status` on its control socket, for root and the vault's
 * user only (ctl.c).
 *
 * SIGHUP reads the configuration again and reopens the IPC log and the
 * access log (reload.c).
 *
 * Peers and what it accepts: from http MSG_READY, MSG_SPAWN_REQ,
 * MSG_JOB_CANCEL; from the vault MSG_READY; from a worker MSG_READY.
 * Anything else ends the child that sent it; the broker carries on.
 *
 * The same binary is every role: a child is started with argv[0]
 * "connectord: <role>" and dispatched from main().
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "broker.h"
#include "child.h"
#include "log.h"
#include "roles.h"
#include "sandbox.h"

struct broker	*broker;

static void	 usage(void) __attribute__((noreturn));
static void	 setproctitle_init(int argc, char **argv);
static void	 broker_console_link(struct broker *b);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: connectord [-dnv] [-f file] [-o key=value ...]\n");
	exit(1);
}

/* Load the file, the -o overrides and check the result. */
int
broker_load_config(struct config *conf, const char *file, char **opts,
    size_t nopts, char *err, size_t errlen)
{
	struct stat st;

	if (config_init(conf) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (file == NULL && stat(CONFIG_DEFAULT_PATH, &st) == 0)
		file = CONFIG_DEFAULT_PATH;
	if (file != NULL && config_load_file(conf, file, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < nopts; i++)
		if (config_set_option(conf, opts[i], err, errlen) == -1)
			return -1;
	return config_check(conf, err, errlen);
}

/* Make a path absolute and canonical, replacing it in place. */
static void
broker_realpath(char **path)
{
	char	*rp;

	if ((rp = realpath(*path, NULL)) == NULL)
		fatal("%s", *path);
	free(*path);
	*path = rp;
}

/* Decide who http, workers and the vault run as. */
static void
broker_resolve_users(struct broker *b)
{
	struct role_ids	 ids;
	struct passwd	*pw;
	char		 err[256];

	if (roles_resolve(&b->conf, &ids, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (ids.svc_fallback)
		log_warnx("user %s does not exist; running http and workers "
		    "as nobody (make run creates %s)", CONFIG_DEFAULT_USER,
		    CONFIG_DEFAULT_USER);
	if (ids.change_ids && ids.vault_uid == 0)
		log_warnx("the workspace belongs to root, so the vault runs as "
		    "root (without capabilities); set vault_user or chown the "
		    "workspace");
	b->change_ids = ids.change_ids;
	b->svc_uid = ids.svc_uid;
	b->svc_gid = ids.svc_gid;
	b->vault_uid = ids.vault_uid;
	b->vault_gid = ids.vault_gid;
	if (b->conf.home == NULL) {
		if ((pw = getpwuid(b->vault_uid)) == NULL || pw->pw_dir == NULL)
			fatalx("the vault's user has no home; set home");
		if ((b->conf.home = strdup(pw->pw_dir)) == NULL)
			fatal("strdup");
	}
}

/* Create state_dir (0700, the vault's) and resolve every path. */
static void
broker_prepare_dirs(struct broker *b)
{
	if (mkdir(b->conf.state_dir, 0700) == -1 && errno != EEXIST)
		fatal("cannot create state_dir %s", b->conf.state_dir);
	broker_realpath(&b->conf.workspace);
	broker_realpath(&b->conf.state_dir);
	if (b->change_ids && chown(b->conf.state_dir, b->vault_uid,
	    b->vault_gid) == -1)
		fatal("chown %s", b->conf.state_dir);
	if (chmod(b->conf.state_dir, 0700) == -1)
		fatal("chmod %s", b->conf.state_dir);
	if (b->change_ids) {
		if (mkdir("/run/connectord", 0755) == -1 && errno != EEXIST)
			fatal("mkdir /run/connectord");
		if (mkdir(CHILD_HTTP_CHROOT, 0555) == -1 && errno != EEXIST)
			fatal("mkdir %s", CHILD_HTTP_CHROOT);
		if (chown(CHILD_HTTP_CHROOT, 0, 0) == -1 ||
		    chmod(CHILD_HTTP_CHROOT, 0555) == -1)
			fatal("%s", CHILD_HTTP_CHROOT);
	}
}

/* Read <state_dir>/api-token, creating it (0600, 256 random bits) on the
 * first start. */
static void
broker_api_token(struct broker *b)
{
	unsigned char	 raw[32], enc[64];
	char		 path[PATH_MAX], buf[128];
	ssize_t		 n;
	int		 fd, len;

	if (b->conf.api_auth == CONFIG_AUTH_NONE) {
		log_warnx("api_auth is none: anyone who reaches the listening "
		    "sockets may use the API");
		return;
	}
	snprintf(path, sizeof(path), "%s/api-token", b->conf.state_dir);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno != ENOENT)
			fatal("%s", path);
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			fatalx("no randomness for the API token");
		len = EVP_EncodeBlock(enc, raw, sizeof(raw));
		explicit_bzero(raw, sizeof(raw));
		/* base64url without padding, safe in a header and a URL. */
		for (int i = 0; i < len; i++)
			enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' :
			    enc[i];
		while (len > 0 && enc[len - 1] == '=')
			len--;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 || write(fd, enc, len) != len ||
		    write(fd, "\n", 1) != 1 || fsync(fd) == -1)
			fatal("cannot write %s", path);
		if (b->change_ids && fchown(fd, b->vault_uid, b->vault_gid))
			fatal("chown %s", path);
		close(fd);
		log_info("created the API token in %s", path);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			fatal("%s", path);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		fatalx("%s is empty; delete it to have a new one made", path);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) < 16)
		fatalx("%s holds a token shorter than 16 characters", path);
	if ((b->api_token = strdup(buf)) == NULL)
		fatal("strdup");
	explicit_bzero(buf, sizeof(buf));
	log_info("API token: %s (send it as 'Authorization: Bearer <token>')",
	    path);
}

/*
 * Where the role executables are looked for, in order: beside the broker
 * (the build tree), at the installed libexec directory relative to the
 * broker (an installed tree, also when moved or run from a DESTDIR
 * staging copy), and at the installed libexec directory itself.
 */
#ifndef CD_ROLES_RELDIR
#define CD_ROLES_RELDIR "../libexec/connectord"
#endif
#ifndef CD_ROLES_DIR
#define CD_ROLES_DIR "/usr/local/libexec/connectord"
#endif

/*
 * Open the role executables now, so that an upgrade of the files on disk
 * never mixes versions in one running daemon.
 */
static void
broker_open_roles(struct broker *b)
{
	static const char *const names[] = {
		"connectord-http", "connectord-vault", "connectord-worker",
	};
	int	*fds[] = { &b->exe_http, &b->exe_vault, &b->exe_worker };
	char	 self[PATH_MAX], path[2 * PATH_MAX], *slash;
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		fatal("/proc/self/exe");
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	for (size_t i = 0; i < 3; i++) {
		const char *const dirs[] = { self, self, CD_ROLES_DIR };
		const char *const subs[] = { "", "/" CD_ROLES_RELDIR, "" };

		*fds[i] = -1;
		for (size_t d = 0; d < 3 && *fds[i] == -1; d++) {
			snprintf(path, sizeof(path), "%s%s/%s", dirs[d],
			    subs[d], names[i]);
			*fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		}
		if (*fds[i] == -1)
			fatal("cannot find %s beside %s, in %s/%s or in %s",
			    names[i], self, self, CD_ROLES_RELDIR,
			    CD_ROLES_DIR);
	}
}

/* Bind one "host:port", "[v6]:port" or "unix:/path" listener. */
static int
broker_listen_one(const char *spec)
{
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_un	 sun;
	char			 host[256], *port;
	int			 fd, one = 1;

	if (strncmp(spec, "unix:", 5) == 0) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", spec + 5);
		unlink(sun.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1 || bind(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1 || chmod(sun.sun_path, 0660) == -1)
			fatal("cannot listen on %s", spec);
	} else {
		snprintf(host, sizeof(host), "%s", spec);
		if ((port = strrchr(host, ':')) == NULL)
			fatalx("bad listen address %s", spec);
		*port++ = '\0';
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strcspn(host, "]")] = '\0';
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
			fatalx("cannot resolve listen address %s", spec);
		fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == -1 ||
		    bind(fd, res->ai_addr, res->ai_addrlen) == -1)
			fatal("cannot listen on %s", spec);
		freeaddrinfo(res);
	}
	if (listen(fd, 128) == -1)
		fatal("listen %s", spec);
	return fd;
}

static void broker_shutdown_timeout_cb(evutil_socket_t, short, void *);

static void
broker_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	(void)ev;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (broker->shutting_down)
			break;
		log_info("shutting down on signal %d", (int)sig);
		broker->shutting_down = 1;
		{
			struct timeval tv = { CD_SHUTDOWN_GRACE_SEC, 0 };

			event_base_once(broker->base, -1, EV_TIMEOUT,
			    broker_shutdown_timeout_cb, NULL, &tv);
		}
		jobs_kill_all();
		proc_kill(&broker->http, NULL);
		proc_kill(&broker->vault, NULL);
		break;
	case SIGHUP:
		if (!broker->shutting_down)
			reload_run(broker);
		return;
	case SIGCHLD:
		break;
	default:
		return;
	}
	/* Reap whatever ended; a child may have ended before we asked. */
	for (;;) {
		int	 status;
		pid_t	 pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			break;
		if (pid == broker->http.pid)
			proc_exited(&broker->http, status);
		else if (pid == broker->vault.pid)
			proc_exited(&broker->vault, status);
		else
			jobs_reaped(pid, status);
	}
	if (broker->shutting_down && broker->http.pid == 0 &&
	    broker->vault.pid == 0 && broker->njobs == 0)
		event_base_loopexit(broker->base, NULL);
}

static void
broker_shutdown_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	log_warnx("children did not exit in %d s; killing them",
	    CD_SHUTDOWN_GRACE_SEC);
	jobs_kill_all();
	if (broker->http.pid > 0)
		kill(broker->http.pid, SIGKILL);
	if (broker->vault.pid > 0)
		kill(broker->vault.pid, SIGKILL);
}

static void
broker_loop(struct broker *b)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGCHLD, SIGHUP };
	struct event	*ev;
	char		 err[256];

	if ((b->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev = evsignal_new(b->base, sigs[i], broker_signal_cb, NULL);
		if (ev == NULL || evsignal_add(ev, NULL) == -1)
			fatalx("cannot watch signal %d", sigs[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	if (sandbox_seccomp(SANDBOX_BROKER, err, sizeof(err)) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatalx("%s", err);
	b->vault.name = "vault";
	b->http.name = "http";
	ctl_start();
	proc_start(&b->vault);
	proc_start(&b->http);
	event_base_dispatch(b->base);
}

int
main(int argc, char *argv[])
{
	static struct broker b;
	char	*file = NULL, *opts[64], err[1024];
	size_t	 nopts = 0;
	int	 ch, check = 0;

	broker = &b;
	b.foreground = 0;
	while ((ch = getopt(argc, argv, "dnvf:o:")) != -1) {
		switch (ch) {
		case 'd': b.foreground = 1; break;
		case 'n': check = 1; break;
		case 'v': b.verbose++; break;
		case 'f': file = optarg; break;
		case 'o':
			if (nopts == sizeof(opts) / sizeof(opts[0]))
				fatalx("too many -o options");
			opts[nopts++] = optarg;
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_init(1, b.verbose);
	log_set_role("broker");
	if (broker_load_config(&b.conf, file, opts, nopts, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "connectord: %s\n", err);
		return 1;
	}
	if (check) {
		fprintf(stderr, "configuration OK\n");
		return 0;
	}
	reload_init(&b, file, opts, nopts);
	setproctitle_init(argc, argv);
	broker_resolve_users(&b);
	broker_prepare_dirs(&b);
	ctl_open();
	broker_api_token(&b);
	if (b.foreground)
		broker_console_link(&b);
	for (size_t i = 0; i < b.conf.nlisten; i++) {
		b.listen_fds[b.nlisten++] = broker_listen_one(b.conf.listen[i]);
		log_info("listening on %s", b.conf.listen[i]);
	}
	broker_open_roles(&b);
	TAILQ_INIT(&b.jobs);
	b.next_job = 1;
	if (!b.foreground) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(0, b.verbose);
	}
	b.started = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &b.started_mono);
	broker_loop(&b);
	ctl_close();
	log_info("stopped");
	return 0;
}

/*
 * Let ps show "connectord: broker": argv and environ are contiguous, so
 * once environ is copied elsewhere their whole span may hold the title.
 */
/*
 * In the foreground (make run), print a one-time sign-in link for the web
 * console on the terminal. Never through the log: without -d that is
 * syslog, and the link is a credential until it is used.
 */
static void
broker_console_link(struct broker *b)
{
	unsigned char	 r[32];
	char		 hex[65];

	if (b->api_token == NULL)
		return;
	if (RAND_bytes(r, sizeof(r)) != 1)
		fatalx("no randomness for the console link");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	explicit_bzero(r, sizeof(r));
	if ((b->console_link = strdup(hex)) == NULL)
		fatal("strdup");
	fprintf(stderr, "connectord: web console sign-in link (one use, "
	    "within %d minutes):\n\n    %s/login?token=%s\n\n",
	    CD_CONSOLE_LINK_TTL / 60, b->conf.public_url, hex);
	explicit_bzero(hex, sizeof(hex));
}

static void
setproctitle_init(int argc, char **argv)
{
	extern char	**environ;
	static const char title[] = "connectord: broker";
	char		*end = argv[argc - 1] + strlen(argv[argc - 1]);
	size_t		 n = 0, avail;

	for (char **e = environ; *e != NULL; e++, n++)
		if (*e == end + 1)
			end = *e + strlen(*e);
	if (n > 0) {
		char **copy = calloc(n + 1, sizeof(char *));

		for (size_t i = 0; copy != NULL && i < n; i++)
			copy[i] = strdup(environ[i]);
		if (copy != NULL)
			environ = copy;
	}
	avail = (size_t)(end - argv[0]);
	memset(argv[0], 0, avail);
	memcpy(argv[0], title, sizeof(title) - 1 < avail ? sizeof(title) - 1 :
	    avail);
	prctl(PR_SET_NAME, "connectord", 0, 0, 0);
}
