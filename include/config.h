/*
 * The configuration of connectord (design.md §6): "key = value" lines with
 * '#' comments, overridden by -o key=value. The parser is library code: it
 * never exits and never logs; every error comes back as a sentence in the
 * caller's buffer, prefixed with "file:line: " when it came from a file.
 */
#ifndef CD_CONFIG_H
#define CD_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "cd_limits.h"

/*
 * The file read when -f is not given, if it exists: meson defines it as
 * <sysconfdir>/connectord/connectord.conf of the build's prefix.
 */
#ifndef CONFIG_DEFAULT_PATH
#define CONFIG_DEFAULT_PATH "/etc/connectord/connectord.conf"
#endif
/* Name of the dedicated unprivileged user when none is configured. */
#define CONFIG_DEFAULT_USER "_connectord"

/* The control socket's name in state_dir when control_socket is unset. */
#define CONFIG_CONTROL_SOCKET "connectord.sock"

enum config_auth {
	CONFIG_AUTH_TOKEN,	/* bearer token from <state_dir>/api-token */
	CONFIG_AUTH_NONE,	/* no API authentication (development only) */
};

/* Number of keys in the key table of config.c (checked at compile time). */
#define CONFIG_NKEYS 26

/*
 * Where a key got its value, so that config_check() can name the line to
 * fix. Private to config.c.
 */
struct config_origin {
	char	*file;	/* NULL: built-in default or -o */
	size_t	 line;
	int	 set;	/* set by a file, -o or config_set() */
};

struct config {
	/* listen: "host:port", "[v6]:port" or "unix:/path"; repeatable. */
	char	*listen[CD_LISTEN_MAX];
	size_t	 nlisten;
	/* Set once a file or -o named listen, so the default is replaced. */
	int	 listen_explicit;
	char	*workspace;	/* rclone.conf, mcp-tokens.json */
	char	*home;		/* NULL: home of the vault's user */
	char	*state_dir;	/* IPC log, its key, the API token */
	enum config_auth api_auth;
	char	*user;		/* NULL: CONFIG_DEFAULT_USER */
	char	*vault_user;	/* NULL: owner of workspace */
	char	*rclone;	/* NULL: found on PATH */
	char	*gh;		/* NULL: found on PATH */
	char	*https_proxy;	/* NULL: none */
	char	*ca_file;	/* NULL: system store */
	unsigned int session_ttl;	/* seconds */
	unsigned int oauth_port;
	unsigned int gh_flows_max;	/* device flows at once */
	unsigned int vercel_pending_max;	/* pending OAuth states */
	char	*github_api_url;
	char	*github_host;
	char	*vercel_api_url;
	char	*vercel_authorize_url;
	char	*vercel_client_id;	/* NULL: dynamic registration */
	char	*vercel_redirect_uri;
	char	*manus_api_url;
	char	*public_url;
	char	*ui_origin;	/* NULL: none */
	/* NULL: access lines go to the daemon log; else the file the broker
	 * opens (O_APPEND, 0640) and hands to http, reopened on SIGHUP. */
	char	*access_log;
	/* connectorctl's unix socket; NULL: <state_dir>/connectord.sock. */
	char	*control_socket;

	/* Private to config.c: the origin of each key, in key table order. */
	struct config_origin origin[CONFIG_NKEYS];
	/*
	 * Private to config.c: an invalid VERCEL_OAUTH_REDIRECT_URI, kept so
	 * that config_check() can report it, since config_init() can only
	 * fail for lack of memory.
	 */
	char	*env_redirect_bad;
};

/* Fill with the built-in defaults. Returns 0, or -1 on allocation failure. */
int config_init(struct config *conf);
void config_free(struct config *conf);

/*
 * Set one key from its text value, validating it. Returns 0, or -1 with a
 * sentence in err (without location).
 */
int config_set(struct config *conf, const char *key, const char *value,
    char *err, size_t errlen);

/* Parse "key=value" as given to -o. */
int config_set_option(struct config *conf, const char *kv, char *err,
    size_t errlen);

/*
 * Read a file of "key = value" lines. On error returns -1 and err holds
 * "path:line: sentence". A missing file is an error.
 */
int config_load_file(struct config *conf, const char *path, char *err,
    size_t errlen);

/*
 * Checks that need the file system: workspace and home exist and are
 * directories, state_dir is not inside workspace, ca_file is readable.
 * Errors name the line the key came from when it came from a file.
 */
int config_check(const struct config *conf, char *err, size_t errlen);

/*
 * Serialise as "key = value\n" lines that config_load_buf() reads back to
 * an equal configuration. Returns the length, or -1 if buf is too small.
 * The text is NUL-terminated; the NUL is not counted in the length.
 */
ssize_t config_serialize(const struct config *conf, char *buf, size_t len);

/*
 * The control socket's path (connectorctl status): control_socket, or
 * CONFIG_CONTROL_SOCKET in state_dir. 0, or -1 with a sentence in err when
 * it does not fit in a socket address.
 */
int config_control_socket(const struct config *conf, char *buf, size_t len,
    char *err, size_t errlen);

/* Parse lines from memory (the serialised form, or a file's content). */
int config_load_buf(struct config *conf, const char *name, const char *buf,
    size_t len, char *err, size_t errlen);

/* A deep copy of src into dst (uninitialised). 0, or -1 with err set. */
int config_copy(struct config *dst, const struct config *src, char *err,
    size_t errlen);

/* Whether a new value of key takes effect on a reload (SIGHUP). */
int config_key_reloadable(const char *key);

/*
 * Called by config_reload() once per key whose value changed: taken says
 * whether the new value is now in effect; when it is not, kept is the
 * running value, which stays until the next start.
 */
typedef void (*config_reload_fn)(const char *key, int taken,
    const char *kept, void *arg);

/*
 * Apply a re-read configuration (fresh, already checked) to a running one.
 * loaded is the configuration as it was read, before the caller resolved
 * anything in it (paths, the vault user's home), and is what fresh is
 * compared with; running is what the daemon uses. Reloadable keys that
 * differ are copied into both; the others stay and are reported. All or
 * nothing: returns the number of keys taken, or -1 with a sentence in err
 * and both configurations unchanged.
 */
int config_reload(struct config *running, struct config *loaded,
    const struct config *fresh, config_reload_fn report, void *arg,
    char *err, size_t errlen);

#endif
