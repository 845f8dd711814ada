/*
 * The configuration of connectord (design.md §6). Every key is one row of
 * config_keys[]: its name, how its value is stored, where in struct config,
 * the function that validates it and its default. Setting a key from a file,
 * from -o or from config_init() all go through config_assign(), so a value
 * is validated the same way whatever its source, and config_serialize()
 * walks the same table so that nothing can be forgotten on the way out.
 *
 * This is library code: it never exits and never prints. Every error is a
 * sentence in the caller's buffer that says what is wrong and what to do.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

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
 * Longest value of any key. It is well below CD_CONF_LINE_MAX so that
 * every value, quoted and after its key, still fits on one line when
 * serialised.
 */
#define CONFIG_VALUE_MAX 1024
/* Largest configuration file read; a real one is a few hundred bytes. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* Most bytes of an offending value quoted back in an error. */
#define CONFIG_SHOW_MAX 64
/* Room for one error sentence before the location is prepended. */
/* Longest host name, from RFC 1035. */
#define CONFIG_HOST_MAX 253
/* Longest user name accepted, as useradd(8) allows by default. */
#define CONFIG_USER_MAX 32

/* How a key's value is kept in struct config. */
enum config_store {
	CONFIG_STORE_STR,	/* char *, NULL when unset */
	CONFIG_STORE_UINT,	/* unsigned int within [min, max] */
	CONFIG_STORE_AUTH,	/* enum config_auth */
	CONFIG_STORE_LIST,	/* the listen array */
};

/* An empty value unsets the key instead of being an error. */
#define CONFIG_F_UNSET	0x01
/* Trailing '/' are dropped, so callers can append "/path" safely. */
#define CONFIG_F_SLASH	0x02
/* A URL may carry "user:password@", as proxies often need. */
#define CONFIG_F_USERINFO 0x04
/* The value may not name root: these identities must be unprivileged. */
#define CONFIG_F_NOROOT	0x08
/*
 * A new value takes effect when the running daemon re-reads its file
 * (SIGHUP). Only keys read afresh for each flow, request or reopen carry
 * it; the others (listeners, directories, identities, authentication, the
 * OAuth port) were acted on once, before the privileges were dropped.
 */
#define CONFIG_F_RELOAD	0x10

struct config_key {
	const char	*name;
	enum config_store store;
	size_t		 offset;	/* of the field in struct config */
	int		 flags;
	/* Validates a value; on error writes a sentence naming the key. */
	int		(*check)(const struct config_key *, const char *,
			    char *, size_t);
	const char	*def;		/* default as text; NULL: unset */
	unsigned int	 min, max;	/* range of a CONFIG_STORE_UINT */
	const char	*what;		/* what a number means, for errors */
};

/* The environment variable that gives vercel_redirect_uri its default. */
#define CONFIG_ENV_REDIRECT "VERCEL_OAUTH_REDIRECT_URI"

static int
config_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
config_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* Printable ASCII without spaces, as URLs and identifiers must be. */
static int
config_is_graph(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int
config_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if (config_is_ctl((unsigned char)*s))
			return 1;
	return 0;
}

/*
 * Copy a value into out for quoting in an error: cut to CONFIG_SHOW_MAX
 * bytes and with control characters replaced, so that a hostile file
 * cannot flood or drive the terminal that shows the error.
 */
static const char *
config_show(const char *v, char *out, size_t outlen)
{
	size_t	 i;

	for (i = 0; v[i] != '\0' && i < CONFIG_SHOW_MAX && i + 4 < outlen;
	    i++)
		out[i] = config_is_ctl((unsigned char)v[i]) ? '?' : v[i];
	out[i] = '\0';
	if (v[i] != '\0')
		snprintf(out + i, outlen - i, "...");
	return out;
}

/* Write "<key> <must>, not '<value>'[: <why>]" and fail. */
static int
config_bad(const struct config_key *key, const char *v, const char *must,
    const char *why, char *err, size_t errlen)
{
	char	 show[CONFIG_SHOW_MAX + 4];

	snprintf(err, errlen, "%s %s, not '%s'%s%s", key->name, must,
	    config_show(v, show, sizeof(show)), why != NULL ? ": " : "",
	    why != NULL ? why : "");
	return -1;
}

/*
 * Parse a decimal number with no sign, no spaces and no trailing junk.
 * Stopping as soon as the value passes max means no input can overflow.
 */
static int
config_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long	 v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static int
config_port_ok(const char *s)
{
	unsigned long	 port;

	return config_parse_uint(s, 65535, &port) == 0 && port >= 1;
}

/*
 * A host name of letters, digits, '.' and '-'. One made only of digits and
 * dots must be a dotted quad, so that "256.1.1.1" is not taken for a name.
 */
static int
config_hostname_ok(const char *s, size_t len)
{
	char		 buf[CONFIG_HOST_MAX + 1];
	struct in_addr	 in;
	size_t		 i;
	int		 numeric = 1;

	if (len == 0 || len > CONFIG_HOST_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if (!config_is_alnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-')
			return 0;
		if (s[i] != '.' && (s[i] < '0' || s[i] > '9'))
			numeric = 0;
	}
	if (!numeric)
		return 1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, &in) == 1;
}

/* An IPv6 literal as it appears between brackets. */
static int
config_ipv6_ok(const char *s, size_t len)
{
	char		 buf[INET6_ADDRSTRLEN];
	struct in6_addr	 in6;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &in6) == 1;
}

/*
 * "host:port" or "[v6]:port" as listen and URLs spell them. With portreq
 * unset the ":port" may be left out. Returns 0 if well formed.
 */
static int
config_hostport_ok(const char *s, size_t len, int portreq)
{
	char		 port[8];
	const char	*rb, *colon;
	size_t		 hlen;

	if (len > 0 && s[0] == '[') {
		if ((rb = memchr(s, ']', len)) == NULL ||
		    !config_ipv6_ok(s + 1, (size_t)(rb - s - 1)))
			return -1;
		colon = rb + 1;
		if (colon == s + len)
			return portreq ? -1 : 0;
		if (*colon != ':')
			return -1;
	} else {
		for (colon = s + len; colon > s && colon[-1] != ':'; colon--)
			;
		if (colon == s) {
			if (portreq)
				return -1;
			return config_hostname_ok(s, len) ? 0 : -1;
		}
		colon--;
		hlen = (size_t)(colon - s);
		if (!config_hostname_ok(s, hlen))
			return -1;
	}
	hlen = (size_t)(s + len - colon - 1);
	if (hlen >= sizeof(port))
		return -1;
	memcpy(port, colon + 1, hlen);
	port[hlen] = '\0';
	return config_port_ok(port) ? 0 : -1;
}

static int
config_check_listen(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	struct sockaddr_un	 sun;
	const char		*path;

	if (strncmp(v, "unix:", 5) == 0) {
		path = v + 5;
		if (path[0] != '/' || config_has_ctl(path))
			return config_bad(key, v, "must name a socket by an "
			    "absolute path, like 'unix:/run/connectord.sock'",
			    NULL, err, errlen);
		if (strlen(path) >= sizeof(sun.sun_path))
			return config_bad(key, v, "must name a socket path "
			    "shorter than 108 bytes", "longer ones do not fit "
			    "in a socket address", err, errlen);
		return 0;
	}
	if (config_hostport_ok(v, strlen(v), 1) == -1)
		return config_bad(key, v, "must be 'host:port', '[v6]:port' "
		    "or 'unix:/absolute/path' with a port from 1 to 65535",
		    NULL, err, errlen);
	return 0;
}

/* A unix socket named by an absolute path that fits in sun_path. */
static int
config_check_socket(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	struct sockaddr_un	 sun;

	if (v[0] != '/' || config_has_ctl(v))
		return config_bad(key, v, "must be an absolute path without "
		    "control characters, like '/run/connectord/ctl.sock'", NULL,
		    err, errlen);
	if (strlen(v) >= sizeof(sun.sun_path))
		return config_bad(key, v, "must be shorter than 108 bytes",
		    "longer ones do not fit in a socket address", err, errlen);
	return 0;
}

static int
config_check_path(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (config_has_ctl(v))
		return config_bad(key, v, "must be a path without control "
		    "characters", NULL, err, errlen);
	return 0;
}

/* A tool is a bare name looked up on PATH later, or a path to it. */
static int
config_check_tool(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (config_has_ctl(v) || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return config_bad(key, v, "must be a command name found on "
		    "PATH or a path to the program", NULL, err, errlen);
	return 0;
}

/* A file the broker opens by name at start and on every SIGHUP. */
static int
config_check_abspath(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (v[0] != '/' || config_has_ctl(v) || v[strlen(v) - 1] == '/')
		return config_bad(key, v, "must be the absolute path of a "
		    "file, without control characters",
		    "the daemon changes to / when it detaches", err, errlen);
	return 0;
}

static int
config_check_auth(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (strcmp(v, "token") != 0 && strcmp(v, "none") != 0)
		return config_bad(key, v, "must be 'token' or 'none'", NULL,
		    err, errlen);
	return 0;
}

/* A user name as [a-z_][a-z0-9_-]{0,31}. */
static int
config_username_ok(const char *v)
{
	size_t	 i;

	if (strlen(v) > CONFIG_USER_MAX ||
	    !((v[0] >= 'a' && v[0] <= 'z') || v[0] == '_'))
		return 0;
	for (i = 1; v[i] != '\0'; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') ||
		    (v[i] >= '0' && v[i] <= '9') || v[i] == '_' ||
		    v[i] == '-'))
			return 0;
	return 1;
}

/* A user name or a numeric uid; (uid_t)-1 means "no change", not a uid. */
static int
config_check_user(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	unsigned long	 uid;
	int		 root;

	if (config_parse_uint(v, (uid_t)-1 - 1, &uid) == 0)
		root = uid == 0;
	else if (config_username_ok(v))
		root = strcmp(v, "root") == 0;
	else
		return config_bad(key, v, "must be a user name of at most 32 "
		    "characters from [a-z0-9_-] not starting with a digit or "
		    "'-', or a numeric uid", NULL, err, errlen);
	if ((key->flags & CONFIG_F_NOROOT) && root)
		return config_bad(key, v, "must be an unprivileged user",
		    "the http role and the workers run as this user", err,
		    errlen);
	return 0;
}

static int
config_check_uint(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	char		 must[128];
	unsigned long	 n;

	if (config_parse_uint(v, key->max, &n) == 0 && n >= key->min)
		return 0;
	snprintf(must, sizeof(must), "must be %s from %u to %u", key->what,
	    key->min, key->max);
	return config_bad(key, v, must, NULL, err, errlen);
}

/*
 * Check an http:// or https:// URL up to the end of its authority, and
 * return what follows it (path, query, fragment), or NULL with a reason.
 */
static const char *
config_url_rest(const char *v, int userinfo, const char **why)
{
	const char	*host, *at;
	size_t		 alen;

	if (!config_is_graph(v)) {
		*why = "it contains a space, a control character or a "
		    "non-ASCII byte";
		return NULL;
	}
	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else {
		*why = "it does not start with https:// or http://";
		return NULL;
	}
	alen = strcspn(host, "/?#");
	while ((at = memchr(host, '@', alen)) != NULL) {
		if (!userinfo) {
			*why = "it carries a user name or password";
			return NULL;
		}
		alen -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	if (alen == 0) {
		*why = "it has no host";
		return NULL;
	}
	if (config_hostport_ok(host, alen, 0) == -1) {
		*why = "its host or port is not valid";
		return NULL;
	}
	return host + alen;
}

static int
config_check_url(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	char		 must[256];
	const char	*why;

	if (config_url_rest(v, key->flags & CONFIG_F_USERINFO, &why) != NULL)
		return 0;
	snprintf(must, sizeof(must), "must be a URL like '%s'",
	    key->def != NULL ? key->def : "http://proxy.example:3128");
	return config_bad(key, v, must, why, err, errlen);
}

/*
 * The web UI origin is compared byte for byte with the Origin header, so
 * it must be exactly scheme://host[:port], and one origin, never '*'.
 */
static int
config_check_origin(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	const char	*rest, *why;

	if (strchr(v, '*') != NULL)
		return config_bad(key, v, "must name a single origin",
		    "a wildcard would let any web page drive the API", err,
		    errlen);
	if ((rest = config_url_rest(v, 0, &why)) == NULL || *rest != '\0')
		return config_bad(key, v, "must be scheme://host[:port] with "
		    "no path or query, like 'https://ui.example.com'", NULL,
		    err, errlen);
	return 0;
}

static int
config_check_host(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (!config_hostname_ok(v, strlen(v)))
		return config_bad(key, v, "must be a host name like "
		    "'github.example.com', without scheme, port or path",
		    NULL, err, errlen);
	return 0;
}

/* An OAuth client id is opaque, but goes into URLs and JSON unescaped. */
static int
config_check_id(const struct config_key *key, const char *v, char *err,
    size_t errlen)
{
	if (v[strcspn(v, "\"\\")] != '\0' || !config_is_graph(v))
		return config_bad(key, v, "must be a client id without "
		    "spaces, quotes, backslashes or non-ASCII bytes", NULL,
		    err, errlen);
	return 0;
}

#define CONFIG_OFF(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
	{ .name = "listen", .store = CONFIG_STORE_LIST,
	  .check = config_check_listen, .def = "127.0.0.1:8700" },
	{ .name = "workspace", .offset = CONFIG_OFF(workspace),
	  .check = config_check_path, .def = "./var/workspace" },
	{ .name = "home", .offset = CONFIG_OFF(home),
	  .check = config_check_path },
	{ .name = "state_dir", .offset = CONFIG_OFF(state_dir),
	  .check = config_check_path, .def = "./var/state" },
	{ .name = "api_auth", .store = CONFIG_STORE_AUTH,
	  .offset = CONFIG_OFF(api_auth), .check = config_check_auth,
	  .def = "token" },
	{ .name = "user", .offset = CONFIG_OFF(user),
	  .flags = CONFIG_F_NOROOT, .check = config_check_user },
	{ .name = "vault_user", .offset = CONFIG_OFF(vault_user),
	  .check = config_check_user },
	{ .name = "rclone", .offset = CONFIG_OFF(rclone),
	  .flags = CONFIG_F_RELOAD, .check = config_check_tool },
	{ .name = "gh", .offset = CONFIG_OFF(gh), .flags = CONFIG_F_RELOAD,
	  .check = config_check_tool },
	{ .name = "https_proxy", .offset = CONFIG_OFF(https_proxy),
	  .flags = CONFIG_F_UNSET | CONFIG_F_USERINFO | CONFIG_F_RELOAD,
	  .check = config_check_url },
	{ .name = "ca_file", .offset = CONFIG_OFF(ca_file),
	  .flags = CONFIG_F_UNSET | CONFIG_F_RELOAD,
	  .check = config_check_path },
	{ .name = "session_ttl", .store = CONFIG_STORE_UINT,
	  .offset = CONFIG_OFF(session_ttl), .flags = CONFIG_F_RELOAD,
	  .check = config_check_uint,
	  .def = "600", .min = 30, .max = 86400,
	  .what = "a whole number of seconds" },
	{ .name = "oauth_port", .store = CONFIG_STORE_UINT,
	  .offset = CONFIG_OFF(oauth_port), .check = config_check_uint,
	  .def = "53682", .min = 1, .max = 65535, .what = "a port number" },
	{ .name = "gh_flows_max", .store = CONFIG_STORE_UINT,
	  .offset = CONFIG_OFF(gh_flows_max), .flags = CONFIG_F_RELOAD,
	  .check = config_check_uint,
	  .def = "8", .min = 1, .max = 64, .what = "a whole number" },
	{ .name = "vercel_pending_max", .store = CONFIG_STORE_UINT,
	  .offset = CONFIG_OFF(vercel_pending_max),
	  .flags = CONFIG_F_RELOAD, .check = config_check_uint, .def = "32",
	  .min = 1, .max = 1024,
	  .what = "a whole number" },
	{ .name = "github_api_url", .offset = CONFIG_OFF(github_api_url),
	  .flags = CONFIG_F_SLASH | CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "https://api.github.com" },
	{ .name = "github_host", .offset = CONFIG_OFF(github_host),
	  .flags = CONFIG_F_RELOAD, .check = config_check_host,
	  .def = "github.com" },
	{ .name = "vercel_api_url", .offset = CONFIG_OFF(vercel_api_url),
	  .flags = CONFIG_F_SLASH | CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "https://api.vercel.com" },
	{ .name = "vercel_authorize_url",
	  .offset = CONFIG_OFF(vercel_authorize_url),
	  .flags = CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "https://vercel.com/oauth/authorize" },
	{ .name = "vercel_client_id", .offset = CONFIG_OFF(vercel_client_id),
	  .flags = CONFIG_F_UNSET | CONFIG_F_RELOAD, .check = config_check_id },
	{ .name = "vercel_redirect_uri",
	  .offset = CONFIG_OFF(vercel_redirect_uri),
	  .flags = CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "http://127.0.0.1:8700/callback" },
	{ .name = "manus_api_url", .offset = CONFIG_OFF(manus_api_url),
	  .flags = CONFIG_F_SLASH | CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "https://api.manus.ai" },
	{ .name = "public_url", .offset = CONFIG_OFF(public_url),
	  .flags = CONFIG_F_SLASH | CONFIG_F_RELOAD, .check = config_check_url,
	  .def = "http://127.0.0.1:8700" },
	{ .name = "ui_origin", .offset = CONFIG_OFF(ui_origin),
	  .flags = CONFIG_F_UNSET | CONFIG_F_RELOAD,
	  .check = config_check_origin },
	{ .name = "access_log", .offset = CONFIG_OFF(access_log),
	  .flags = CONFIG_F_UNSET | CONFIG_F_RELOAD,
	  .check = config_check_abspath },
	{ .name = "control_socket", .offset = CONFIG_OFF(control_socket),
	  .flags = CONFIG_F_UNSET, .check = config_check_socket },
};

#define CONFIG_NITEMS (sizeof(config_keys) / sizeof(config_keys[0]))

_Static_assert(CONFIG_NITEMS == CONFIG_NKEYS,
    "CONFIG_NKEYS in config.h must match the key table");

int
config_key_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < CONFIG_NITEMS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static char **
config_str_field(struct config *conf, const struct config_key *key)
{
	return (char **)(void *)((char *)conf + key->offset);
}

/*
 * Add one listen address. The first one named by a file or -o replaces
 * the built-in default instead of adding to it, since nobody who writes
 * "listen" expects 127.0.0.1:8700 to stay open as well.
 */
static int
config_listen_add(struct config *conf, const struct config_key *key,
    const char *v, char *err, size_t errlen)
{
	size_t	 i;

	if (!conf->listen_explicit) {
		for (i = 0; i < conf->nlisten; i++)
			free(conf->listen[i]);
		conf->nlisten = 0;
		conf->listen_explicit = 1;
	}
	for (i = 0; i < conf->nlisten; i++) {
		if (strcmp(conf->listen[i], v) == 0)
			return config_bad(key, v, "must name each address "
			    "once", "this one is already listed", err,
			    errlen);
	}
	if (conf->nlisten == CD_LISTEN_MAX) {
		snprintf(err, errlen, "listen may be given at most %d times; "
		    "remove some addresses", CD_LISTEN_MAX);
		return -1;
	}
	if ((conf->listen[conf->nlisten] = strdup(v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	conf->nlisten++;
	return 0;
}

/* Store a value already validated by key->check. */
static int
config_store(struct config *conf, const struct config_key *key,
    const char *v, char *err, size_t errlen)
{
	unsigned long	 n;
	char		*s, **field;

	switch (key->store) {
	case CONFIG_STORE_LIST:
		return config_listen_add(conf, key, v, err, errlen);
	case CONFIG_STORE_UINT:
		if (config_parse_uint(v, key->max, &n) == -1)
			return -1;
		*(unsigned int *)(void *)((char *)conf + key->offset) =
		    (unsigned int)n;
		return 0;
	case CONFIG_STORE_AUTH:
		conf->api_auth = strcmp(v, "none") == 0 ? CONFIG_AUTH_NONE :
		    CONFIG_AUTH_TOKEN;
		return 0;
	case CONFIG_STORE_STR:
		if ((s = strdup(v)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		field = config_str_field(conf, key);
		free(*field);
		*field = s;
		return 0;
	}
	return -1;
}

/* Validate, normalise and store one value; the heart of every setter. */
static int
config_assign(struct config *conf, const struct config_key *key,
    const char *value, char *err, size_t errlen)
{
	char	 norm[CONFIG_VALUE_MAX + 1];
	size_t	 len;

	if (value == NULL)
		value = "";
	if (*value == '\0' && (key->flags & CONFIG_F_UNSET)) {
		free(*config_str_field(conf, key));
		*config_str_field(conf, key) = NULL;
		return 0;
	}
	if (*value == '\0') {
		snprintf(err, errlen, "%s must not be empty; remove the line "
		    "to use the default", key->name);
		return -1;
	}
	if ((len = strlen(value)) > CONFIG_VALUE_MAX) {
		snprintf(err, errlen, "%s is longer than %d bytes",
		    key->name, CONFIG_VALUE_MAX);
		return -1;
	}
	if (key->check(key, value, err, errlen) == -1)
		return -1;
	/* A valid URL stays valid without its trailing '/'. */
	memcpy(norm, value, len + 1);
	while ((key->flags & CONFIG_F_SLASH) && len > 0 &&
	    norm[len - 1] == '/')
		norm[--len] = '\0';
	return config_store(conf, key, norm, err, errlen);
}

/* Set a key by name and remember where its value came from. */
static int
config_set_at(struct config *conf, const char *name, const char *value,
    const char *file, size_t line, char *err, size_t errlen)
{
	struct config_origin	*o;
	char			*copy = NULL;
	char			 show[CONFIG_SHOW_MAX + 4];
	int			 i;

	if ((i = config_key_find(name)) == -1) {
		snprintf(err, errlen, "unknown key '%s'",
		    config_show(name, show, sizeof(show)));
		return -1;
	}
	if (file != NULL && (copy = strdup(file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (config_assign(conf, &config_keys[i], value, err, errlen) == -1) {
		free(copy);
		return -1;
	}
	o = &conf->origin[i];
	free(o->file);
	o->file = copy;
	o->line = line;
	o->set = 1;
	return 0;
}

int
config_set(struct config *conf, const char *key, const char *value,
    char *err, size_t errlen)
{
	return config_set_at(conf, key, value, NULL, 0, err, errlen);
}

static char *
config_trim(char *s)
{
	size_t	 len;

	while (*s != '\0' && strchr(" \t\r\n\v\f", *s) != NULL)
		s++;
	len = strlen(s);
	while (len > 0 && strchr(" \t\r\n\v\f", s[len - 1]) != NULL)
		s[--len] = '\0';
	return s;
}

/*
 * Split "key = value" in place: both sides trimmed, and one pair of double
 * quotes around the value removed, which is how a value keeps leading or
 * trailing spaces. There are no escapes.
 */
static int
config_split(char *s, char **key, char **value)
{
	char	*eq, *v;
	size_t	 len;

	if ((eq = strchr(s, '=')) == NULL)
		return -1;
	*eq = '\0';
	*key = config_trim(s);
	v = config_trim(eq + 1);
	len = strlen(v);
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
		v[len - 1] = '\0';
		v++;
	}
	*value = v;
	return **key == '\0' ? -1 : 0;
}

int
config_set_option(struct config *conf, const char *kv, char *err,
    size_t errlen)
{
	char	 buf[CD_CONF_LINE_MAX + 1], show[CONFIG_SHOW_MAX + 4];
	char	*key, *value;

	if (strlen(kv) > CD_CONF_LINE_MAX) {
		snprintf(err, errlen, "option is longer than %d bytes",
		    CD_CONF_LINE_MAX);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", kv);
	if (config_split(buf, &key, &value) == -1) {
		snprintf(err, errlen, "expected 'key=value', not '%s'",
		    config_show(kv, show, sizeof(show)));
		return -1;
	}
	return config_set(conf, key, value, err, errlen);
}

/* One line of a file, NUL-terminated and without its newline. */
static int
config_parse_line(struct config *conf, const char *name, size_t lineno,
    char *line, char *err, size_t errlen)
{
	char	*key, *value;

	line = config_trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	if (config_split(line, &key, &value) == -1) {
		snprintf(err, errlen, "expected 'key = value'");
		return -1;
	}
	return config_set_at(conf, key, value, name, lineno, err, errlen);
}

int
config_load_buf(struct config *conf, const char *name, const char *buf,
    size_t len, char *err, size_t errlen)
{
	char		 line[CD_CONF_LINE_MAX + 1], msg[CONFIG_ERR_MAX];
	const char	*p, *nl;
	size_t		 n, off, lineno = 0;
	int		 rc = 0;

	if (name == NULL)
		name = "-";
	for (off = 0; rc == 0 && off < len; off += n + 1) {
		lineno++;
		p = buf + off;
		nl = memchr(p, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - p) : len - off;
		if (n > CD_CONF_LINE_MAX) {
			snprintf(msg, sizeof(msg), "line is longer than %d "
			    "bytes", CD_CONF_LINE_MAX);
			rc = -1;
		} else if (memchr(p, '\0', n) != NULL) {
			snprintf(msg, sizeof(msg), "line contains a NUL byte; "
			    "the file must be text");
			rc = -1;
		} else {
			memcpy(line, p, n);
			line[n] = '\0';
			rc = config_parse_line(conf, name, lineno, line, msg,
			    sizeof(msg));
		}
	}
	if (rc == -1)
		snprintf(err, errlen, "%s:%zu: %s", name, lineno, msg);
	return rc;
}

/* Read a whole regular file of at most CONFIG_FILE_MAX bytes. */
static int
config_read_fd(int fd, char **bufp, size_t *lenp)
{
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, cap = 0;
	ssize_t	 n;

	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nbuf;
		}
		if ((n = read(fd, buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			errno = EFBIG;
			goto fail;
		}
	}
	*bufp = buf;
	*lenp = len;
	return 0;
fail:
	free(buf);
	return -1;
}

int
config_load_file(struct config *conf, const char *path, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len;
	int		 fd, rc = -1;

	/* O_NONBLOCK keeps a FIFO named by mistake from hanging us. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s: not a regular file", path);
	else if (config_read_fd(fd, &buf, &len) == -1)
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
	else
		rc = config_load_buf(conf, path, buf, len, err, errlen);
	free(buf);
	close(fd);
	return rc;
}

/*
 * Take VERCEL_OAUTH_REDIRECT_URI as the default of vercel_redirect_uri.
 * An invalid value is kept aside for config_check() to report, since
 * config_init() only fails for lack of memory.
 */
static int
config_init_env(struct config *conf)
{
	const struct config_key	*key;
	const char		*env;
	char			 err[CONFIG_ERR_MAX];

	env = getenv(CONFIG_ENV_REDIRECT);
	if (env == NULL || *env == '\0')
		return 0;
	key = &config_keys[config_key_find("vercel_redirect_uri")];
	if (strlen(env) <= CONFIG_VALUE_MAX &&
	    key->check(key, env, err, sizeof(err)) == 0)
		return config_store(conf, key, env, err, sizeof(err));
	if ((conf->env_redirect_bad = strdup(env)) == NULL)
		return -1;
	return 0;
}

int
config_init(struct config *conf)
{
	char	 err[CONFIG_ERR_MAX];
	size_t	 i;

	memset(conf, 0, sizeof(*conf));
	for (i = 0; i < CONFIG_NITEMS; i++) {
		if (config_keys[i].def == NULL)
			continue;
		if (config_assign(conf, &config_keys[i], config_keys[i].def,
		    err, sizeof(err)) == -1)
			goto fail;
	}
	conf->listen_explicit = 0;
	if (config_init_env(conf) == -1)
		goto fail;
	return 0;
fail:
	config_free(conf);
	return -1;
}

void
config_free(struct config *conf)
{
	size_t	 i;

	for (i = 0; i < conf->nlisten; i++)
		free(conf->listen[i]);
	for (i = 0; i < CONFIG_NITEMS; i++) {
		if (config_keys[i].store == CONFIG_STORE_STR)
			free(*config_str_field(conf, &config_keys[i]));
		free(conf->origin[i].file);
	}
	free(conf->env_redirect_bad);
	memset(conf, 0, sizeof(*conf));
}

/*
 * An invalid VERCEL_OAUTH_REDIRECT_URI matters only while no file or -o
 * has set vercel_redirect_uri. The error names the variable, since no line
 * of any file holds the value.
 */
int
config_check_env(const struct config *conf, char *err, size_t errlen)
{
	const struct config_key	*key;
	char			 why[CONFIG_ERR_MAX];
	int			 i;

	i = config_key_find("vercel_redirect_uri");
	key = &config_keys[i];
	if (conf->env_redirect_bad == NULL || conf->origin[i].set)
		return 0;
	if (strlen(conf->env_redirect_bad) > CONFIG_VALUE_MAX)
		snprintf(why, sizeof(why), "it is longer than %d bytes",
		    CONFIG_VALUE_MAX);
	else
		key->check(key, conf->env_redirect_bad, why, sizeof(why));
	snprintf(err, errlen, "%s from the environment is not valid: %s; "
	    "fix or unset it, or set %s", CONFIG_ENV_REDIRECT, why,
	    key->name);
	return -1;
}


/* The per-key primitives of config_reload() (config_priv.h). */
int
config_key_reloadable_at(size_t i)
{
	return i < CONFIG_NITEMS && (config_keys[i].flags & CONFIG_F_RELOAD);
}

const char *
config_key_name(size_t i)
{
	return i < CONFIG_NITEMS ? config_keys[i].name : NULL;
}

static const char *
config_str_get(const struct config *conf, const struct config_key *key)
{
	return *(char *const *)(const void *)((const char *)conf +
	    key->offset);
}

static unsigned int
config_uint_get(const struct config *conf, const struct config_key *key)
{
	return *(const unsigned int *)(const void *)((const char *)conf +
	    key->offset);
}

int
config_key_equal(const struct config *a, const struct config *b, size_t i)
{
	const struct config_key	*key = &config_keys[i];
	const char		*sa, *sb;
	size_t			 j;

	switch (key->store) {
	case CONFIG_STORE_LIST:
		if (a->nlisten != b->nlisten)
			return 0;
		for (j = 0; j < a->nlisten; j++)
			if (strcmp(a->listen[j], b->listen[j]) != 0)
				return 0;
		return 1;
	case CONFIG_STORE_UINT:
		return config_uint_get(a, key) == config_uint_get(b, key);
	case CONFIG_STORE_AUTH:
		return a->api_auth == b->api_auth;
	case CONFIG_STORE_STR:
		sa = config_str_get(a, key);
		sb = config_str_get(b, key);
		if (sa == NULL || sb == NULL)
			return sa == sb;
		return strcmp(sa, sb) == 0;
	}
	return 0;
}

/* Copy one reloadable key (a string or a number) from src into dst. */
int
config_key_copy(struct config *dst, const struct config *src, size_t i)
{
	const struct config_key	*key = &config_keys[i];
	const char		*v;
	char			*copy = NULL, **field;

	switch (key->store) {
	case CONFIG_STORE_UINT:
		*(unsigned int *)(void *)((char *)dst + key->offset) =
		    config_uint_get(src, key);
		break;
	case CONFIG_STORE_STR:
		if ((v = config_str_get(src, key)) != NULL &&
		    (copy = strdup(v)) == NULL)
			return -1;
		field = config_str_field(dst, key);
		free(*field);
		*field = copy;
		break;
	case CONFIG_STORE_AUTH:
	case CONFIG_STORE_LIST:
		/* Never reloadable: acted on once, at start. */
		errno = EINVAL;
		return -1;
	}
	dst->origin[i].set = src->origin[i].set;
	return 0;
}

/* The value of a key as a person reads it, for "keeping X" messages. */
void
config_key_text(const struct config *conf, size_t i, char *buf, size_t len)
{
	const struct config_key	*key = &config_keys[i];
	const char		*v;
	size_t			 j, off = 0;
	int			 n;

	buf[0] = '\0';
	switch (key->store) {
	case CONFIG_STORE_LIST:
		for (j = 0; j < conf->nlisten && off < len; j++) {
			n = snprintf(buf + off, len - off, "%s%s",
			    j > 0 ? ", " : "", conf->listen[j]);
			off += n > 0 ? (size_t)n : 0;
		}
		break;
	case CONFIG_STORE_UINT:
		snprintf(buf, len, "%u", config_uint_get(conf, key));
		break;
	case CONFIG_STORE_AUTH:
		snprintf(buf, len, "%s", conf->api_auth == CONFIG_AUTH_NONE ?
		    "none" : "token");
		break;
	case CONFIG_STORE_STR:
		v = config_str_get(conf, key);
		snprintf(buf, len, "%s", v != NULL ? v : "the default");
		break;
	}
}

/*
 * Append "key = value\n", quoting a value whose first or last byte would
 * otherwise be trimmed or taken for a quote when read back.
 */
static int
config_put(char *buf, size_t len, size_t *off, const char *key,
    const char *v)
{
	size_t	 vlen = strlen(v);
	int	 n, quote;

	quote = vlen == 0 || v[0] == ' ' || v[0] == '"' || v[vlen - 1] == ' ' ||
	    v[vlen - 1] == '"';
	if (*off >= len)
		return -1;
	n = snprintf(buf + *off, len - *off, quote ? "%s = \"%s\"\n" :
	    "%s = %s\n", key, v);
	if (n < 0 || (size_t)n >= len - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

/* Append every value of one key; an unset key writes nothing. */
static int
config_put_key(const struct config *conf, const struct config_key *key,
    char *buf, size_t len, size_t *off)
{
	char		 num[16];
	const char	*s;
	size_t		 i;

	switch (key->store) {
	case CONFIG_STORE_LIST:
		for (i = 0; i < conf->nlisten; i++)
			if (config_put(buf, len, off, key->name,
			    conf->listen[i]) == -1)
				return -1;
		return 0;
	case CONFIG_STORE_UINT:
		snprintf(num, sizeof(num), "%u", *(const unsigned int *)(const
		    void *)((const char *)conf + key->offset));
		return config_put(buf, len, off, key->name, num);
	case CONFIG_STORE_AUTH:
		return config_put(buf, len, off, key->name,
		    conf->api_auth == CONFIG_AUTH_NONE ? "none" : "token");
	case CONFIG_STORE_STR:
		s = *(char *const *)(const void *)((const char *)conf +
		    key->offset);
		return s == NULL ? 0 : config_put(buf, len, off, key->name, s);
	}
	return -1;
}

ssize_t
config_serialize(const struct config *conf, char *buf, size_t len)
{
	size_t	 i, off = 0;

	for (i = 0; i < CONFIG_NITEMS; i++)
		if (config_put_key(conf, &config_keys[i], buf, len, &off) == -1)
			return -1;
	if (off >= len)
		return -1;
	buf[off] = '\0';
	return (ssize_t)off;
}

int
config_control_socket(const struct config *conf, char *buf, size_t len,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	int			 n;

	if (conf->control_socket != NULL)
		n = snprintf(buf, len, "%s", conf->control_socket);
	else
		n = snprintf(buf, len, "%s/%s", conf->state_dir,
		    CONFIG_CONTROL_SOCKET);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "the control socket %s/%s is longer than "
		    "107 bytes and does not fit in a socket address; set "
		    "control_socket to a shorter path", conf->state_dir,
		    CONFIG_CONTROL_SOCKET);
		return -1;
	}
	return 0;
}
