/*
 * config_check(): the checks of a configuration that need the file
 * system (directories exist, state_dir is not inside the workspace, the
 * CA bundle is readable, the access log's directory exists), each naming
 * the file and line its key came from. Split from config.c, which parses
 * and serialises.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_priv.h"

/*
 * Fail with an error that names the file and line the key came from, if
 * it came from a file, so the person knows which line to fix.
 */
static int
config_fail(const struct config *conf, const char *key, char *err,
    size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
config_fail(const struct config *conf, const char *key, char *err,
    size_t errlen, const char *fmt, ...)
{
	const struct config_origin	*o;
	char				 msg[CONFIG_ERR_MAX];
	va_list				 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = &conf->origin[config_key_find(key)];
	if (o->file != NULL)
		snprintf(err, errlen, "%s:%zu: %s", o->file, o->line, msg);
	else
		snprintf(err, errlen, "%s", msg);
	return -1;
}

/* An existing directory named by key (workspace, home). */
static int
config_check_dir(const struct config *conf, const char *key,
    const char *path, char *err, size_t errlen)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			return config_fail(conf, key, err, errlen, "%s '%s' "
			    "does not exist; create it or set %s", key, path,
			    key);
		return config_fail(conf, key, err, errlen, "cannot use %s "
		    "'%s': %s", key, path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return config_fail(conf, key, err, errlen, "%s '%s' is not a "
		    "directory; set %s to a directory", key, path, key);
	return 0;
}

/*
 * The absolute, symlink-free form of a path that may not exist yet: the
 * real path of its parent plus its last component. Fails with errno.
 */
static int
config_resolve(const char *path, char *out)
{
	char		 dir[PATH_MAX], pdir[PATH_MAX];
	const char	*base;
	char		*slash;
	size_t		 len;
	struct stat	 st;

	if (realpath(path, out) != NULL)
		return 0;
	if (errno != ENOENT || lstat(path, &st) == 0) {
		/* A dangling symlink could point anywhere once created. */
		if (errno == ENOENT)
			errno = ELOOP;
		return -1;
	}
	if ((len = strlen(path)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, len + 1);
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL) {
		base = dir;
		snprintf(pdir, sizeof(pdir), ".");
	} else {
		base = slash + 1;
		*slash = '\0';
		snprintf(pdir, sizeof(pdir), "%s", slash == dir ? "/" : dir);
	}
	if (realpath(pdir, out) == NULL)
		return -1;
	len = strlen(out);
	if (snprintf(out + len, PATH_MAX - len, "%s%s",
	    strcmp(out, "/") == 0 ? "" : "/", base) >= (int)(PATH_MAX - len)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
config_path_within(const char *path, const char *dir)
{
	size_t	 len = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return 1;
	return strncmp(path, dir, len) == 0 &&
	    (path[len] == '\0' || path[len] == '/');
}

/*
 * Agents read the workspace, so the vault's own state (the IPC log key,
 * the API token) must live outside it, whatever symlinks say.
 */
static int
config_check_state(const struct config *conf, char *err, size_t errlen)
{
	char		 ws[PATH_MAX], sd[PATH_MAX];
	struct stat	 st;

	if (realpath(conf->workspace, ws) == NULL)
		return config_fail(conf, "workspace", err, errlen, "cannot "
		    "resolve workspace '%s': %s", conf->workspace,
		    strerror(errno));
	if (config_resolve(conf->state_dir, sd) == -1) {
		if (errno == ENOENT)
			return config_fail(conf, "state_dir", err, errlen,
			    "the parent of state_dir '%s' does not exist; "
			    "create it or set state_dir", conf->state_dir);
		if (errno == ELOOP)
			return config_fail(conf, "state_dir", err, errlen,
			    "state_dir '%s' is a broken or looping symbolic "
			    "link; point it at a directory or set state_dir",
			    conf->state_dir);
		return config_fail(conf, "state_dir", err, errlen, "cannot "
		    "use state_dir '%s': %s", conf->state_dir,
		    strerror(errno));
	}
	if (config_path_within(sd, ws))
		return config_fail(conf, "state_dir", err, errlen, "state_dir "
		    "'%s' is inside workspace '%s', which agents can read; "
		    "set state_dir outside it", conf->state_dir,
		    conf->workspace);
	if (stat(sd, &st) == 0 && !S_ISDIR(st.st_mode))
		return config_fail(conf, "state_dir", err, errlen, "state_dir "
		    "'%s' is not a directory; set state_dir to a directory",
		    conf->state_dir);
	return 0;
}

static int
config_check_ca(const struct config *conf, char *err, size_t errlen)
{
	struct stat	 st;
	int		 fd, rc = 0;

	if ((fd = open(conf->ca_file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) ==
	    -1) {
		if (errno == ENOENT)
			return config_fail(conf, "ca_file", err, errlen,
			    "ca_file '%s' does not exist; create it or unset "
			    "ca_file", conf->ca_file);
		return config_fail(conf, "ca_file", err, errlen, "cannot read "
		    "ca_file '%s': %s", conf->ca_file, strerror(errno));
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		rc = config_fail(conf, "ca_file", err, errlen, "ca_file '%s' "
		    "is not a regular file; name a PEM bundle", conf->ca_file);
	close(fd);
	return rc;
}

/*
 * The access log names request paths, and a session's id is part of some:
 * keep it out of the workspace that agents read, as state_dir is. Its
 * directory must exist; the file is created by the broker when missing.
 */
static int
config_check_access(const struct config *conf, char *err, size_t errlen)
{
	char		 ws[PATH_MAX], al[PATH_MAX];
	struct stat	 st;

	if (config_resolve(conf->access_log, al) == -1) {
		if (errno == ENOENT)
			return config_fail(conf, "access_log", err, errlen,
			    "the directory of access_log '%s' does not exist; "
			    "create it or set access_log", conf->access_log);
		return config_fail(conf, "access_log", err, errlen, "cannot "
		    "use access_log '%s': %s", conf->access_log,
		    strerror(errno));
	}
	if (realpath(conf->workspace, ws) != NULL &&
	    config_path_within(al, ws))
		return config_fail(conf, "access_log", err, errlen,
		    "access_log '%s' is inside workspace '%s', which agents "
		    "can read; set access_log outside it", conf->access_log,
		    conf->workspace);
	if (stat(al, &st) == 0 && !S_ISREG(st.st_mode))
		return config_fail(conf, "access_log", err, errlen,
		    "access_log '%s' is not a regular file; name a file",
		    conf->access_log);
	return 0;
}

/*
 * Without control_socket, connectorctl's socket is made in state_dir once
 * that is resolved: its path must fit in a socket address.
 */
static int
config_check_ctl(const struct config *conf, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	char			 sd[PATH_MAX];

	if (conf->control_socket != NULL ||
	    config_resolve(conf->state_dir, sd) == -1)
		return 0;
	if (strlen(sd) + 1 + strlen(CONFIG_CONTROL_SOCKET) >=
	    sizeof(sun.sun_path))
		return config_fail(conf, "state_dir", err, errlen, "the control "
		    "socket %s/%s would be longer than 107 bytes, too long for "
		    "a socket address; set control_socket to a shorter path",
		    sd, CONFIG_CONTROL_SOCKET);
	return 0;
}

int
config_check(const struct config *conf, char *err, size_t errlen)
{
	if (config_check_env(conf, err, errlen) == -1)
		return -1;
	if (config_check_dir(conf, "workspace", conf->workspace, err,
	    errlen) == -1)
		return -1;
	if (conf->home != NULL && config_check_dir(conf, "home", conf->home,
	    err, errlen) == -1)
		return -1;
	if (config_check_state(conf, err, errlen) == -1 ||
	    config_check_ctl(conf, err, errlen) == -1)
		return -1;
	if (conf->ca_file != NULL && config_check_ca(conf, err, errlen) == -1)
		return -1;
	if (conf->access_log != NULL &&
	    config_check_access(conf, err, errlen) == -1)
		return -1;
	return 0;
}

