/*
 * Unit tests of lib/config.c: defaults, every key with good and bad values,
 * the file syntax, error sentences with their line numbers, -o overrides,
 * the serialise/load round trip and the file-system checks of
 * config_check() against temporary directories.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char err[4096];

static int
load(struct config *conf, const char *name, const char *text)
{
	err[0] = '\0';
	return config_load_buf(conf, name, text, strlen(text), err,
	    sizeof(err));
}

/* Set one key on fresh defaults and report whether it was accepted. */
static int
try_set(const char *key, const char *value)
{
	struct config	 conf;
	int		 rc;

	if (config_init(&conf) == -1)
		return -2;
	rc = config_set(&conf, key, value, err, sizeof(err));
	config_free(&conf);
	return rc;
}

static int
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
test_defaults(void)
{
	struct config	 c;

	unsetenv("VERCEL_OAUTH_REDIRECT_URI");
	ok(config_init(&c) == 0, "config_init succeeds");
	is_int(c.nlisten, 1, "one default listen address");
	is_str(c.listen[0], "127.0.0.1:8700", "default listen");
	is_int(c.listen_explicit, 0, "default listen is not explicit");
	is_str(c.workspace, "./var/workspace", "default workspace");
	is_str(c.state_dir, "./var/state", "default state_dir");
	is_int(c.api_auth, CONFIG_AUTH_TOKEN, "default api_auth");
	is_int(c.session_ttl, 600, "default session_ttl");
	is_int(c.oauth_port, 53682, "default oauth_port");
	is_int(c.gh_flows_max, 8, "default gh_flows_max");
	is_int(c.vercel_pending_max, 32, "default vercel_pending_max");
	is_str(c.github_api_url, "https://api.github.com", "default github");
	is_str(c.github_host, "github.com", "default github_host");
	is_str(c.vercel_api_url, "https://api.vercel.com", "default vercel");
	is_str(c.vercel_authorize_url, "https://vercel.com/oauth/authorize",
	    "default vercel_authorize_url");
	is_str(c.vercel_redirect_uri, "http://127.0.0.1:8700/callback",
	    "default vercel_redirect_uri");
	is_str(c.manus_api_url, "https://api.manus.ai", "default manus");
	is_str(c.public_url, "http://127.0.0.1:8700", "default public_url");
	ok(c.home == NULL && c.user == NULL && c.vault_user == NULL &&
	    c.rclone == NULL && c.gh == NULL && c.https_proxy == NULL &&
	    c.ca_file == NULL && c.vercel_client_id == NULL &&
	    c.ui_origin == NULL && c.access_log == NULL,
	    "keys without a default are unset");
	config_free(&c);
}

struct case_row {
	const char	*key;
	const char	*value;
	int		 good;
};

static const struct case_row cases[] = {
	{ "listen", "0.0.0.0:80", 1 },
	{ "listen", "localhost:8700", 1 },
	{ "listen", "[::1]:8700", 1 },
	{ "listen", "unix:/run/connectord.sock", 1 },
	{ "listen", "127.0.0.1", 0 },
	{ "listen", "127.0.0.1:0", 0 },
	{ "listen", "127.0.0.1:65536", 0 },
	{ "listen", "127.0.0.1:0x50", 0 },
	{ "listen", "127.0.0.1:+80", 0 },
	{ "listen", "256.1.1.1:80", 0 },
	{ "listen", "host_x:80", 0 },
	{ "listen", "[::g]:80", 0 },
	{ "listen", "[::1]80", 0 },
	{ "listen", "::1:80", 0 },
	{ "listen", "unix:relative.sock", 0 },
	{ "listen", "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
	{ "workspace", "/srv/work space", 1 },
	{ "workspace", "relative/dir", 1 },
	{ "workspace", "/srv/a\tb", 0 },
	{ "home", "/home/u", 1 },
	{ "home", "", 0 },
	{ "state_dir", "/var/lib/connectord", 1 },
	{ "state_dir", "/x\033[31m", 0 },
	{ "ca_file", "/etc/ssl/ca.pem", 1 },
	{ "ca_file", "/etc/\x7f", 0 },
	{ "rclone", "rclone", 1 },
	{ "rclone", "/usr/bin/rclone", 1 },
	{ "rclone", "..", 0 },
	{ "gh", "gh", 1 },
	{ "gh", "g\nh", 0 },
	{ "api_auth", "token", 1 },
	{ "api_auth", "none", 1 },
	{ "api_auth", "TOKEN", 0 },
	{ "user", "_connectord", 1 },
	{ "user", "www-data", 1 },
	{ "user", "1000", 1 },
	{ "user", "root", 0 },
	{ "user", "0", 0 },
	{ "user", "Bob", 0 },
	{ "user", "-x", 0 },
	{ "user", "a23456789012345678901234567890123", 0 },
	{ "user", "4294967295", 0 },
	{ "vault_user", "root", 1 },
	{ "vault_user", "0", 1 },
	{ "vault_user", "9abc", 0 },
	{ "session_ttl", "30", 1 },
	{ "session_ttl", "86400", 1 },
	{ "session_ttl", "29", 0 },
	{ "session_ttl", "86401", 0 },
	{ "session_ttl", "-60", 0 },
	{ "session_ttl", "60s", 0 },
	{ "session_ttl", "99999999999999999999999999", 0 },
	{ "oauth_port", "1", 1 },
	{ "oauth_port", "65535", 1 },
	{ "oauth_port", "0", 0 },
	{ "oauth_port", "65536", 0 },
	{ "gh_flows_max", "64", 1 },
	{ "gh_flows_max", "65", 0 },
	{ "vercel_pending_max", "1024", 1 },
	{ "vercel_pending_max", "0", 0 },
	{ "github_api_url", "https://ghe.example.com/api/v3", 1 },
	{ "github_api_url", "http://127.0.0.1:9000", 1 },
	{ "github_api_url", "http://[::1]:9000/", 1 },
	{ "github_api_url", "ftp://example.com", 0 },
	{ "github_api_url", "https://", 0 },
	{ "github_api_url", "https:///path", 0 },
	{ "github_api_url", "https://a b", 0 },
	{ "github_api_url", "https://user@example.com", 0 },
	{ "github_api_url", "https://example.com:99999", 0 },
	{ "vercel_api_url", "https://api.vercel.com/", 1 },
	{ "vercel_authorize_url", "example.com/authorize", 0 },
	{ "manus_api_url", "https://api.manus.ai", 1 },
	{ "public_url", "http://connector.local:8700", 1 },
	{ "public_url", "mailto:x@y", 0 },
	{ "vercel_redirect_uri", "https://app.example/cb?x=1", 1 },
	{ "vercel_redirect_uri", "/callback", 0 },
	{ "https_proxy", "http://127.0.0.1:3128", 1 },
	{ "https_proxy", "http://u:p@proxy:3128", 1 },
	{ "https_proxy", "socks5://proxy:1080", 0 },
	{ "ui_origin", "https://ui.example.com", 1 },
	{ "ui_origin", "http://localhost:5173", 1 },
	{ "ui_origin", "https://ui.example.com/", 0 },
	{ "ui_origin", "https://ui.example.com/app", 0 },
	{ "ui_origin", "https://ui.example.com?x", 0 },
	{ "ui_origin", "*", 0 },
	{ "ui_origin", "https://*.example.com", 0 },
	{ "github_host", "github.example.com", 1 },
	{ "github_host", "github.com:443", 0 },
	{ "github_host", "github.com/x", 0 },
	{ "github_host", "https://github.com", 0 },
	{ "vercel_client_id", "cl_abc123", 1 },
	{ "vercel_client_id", "cl abc", 0 },
	{ "access_log", "/var/log/connectord/access.log", 1 },
	{ "access_log", "", 1 },
	{ "access_log", "access.log", 0 },
	{ "access_log", "./var/access.log", 0 },
	{ "access_log", "/var/log/", 0 },
	{ "access_log", "/var/log/a\tb", 0 },
	{ "control_socket", "/run/connectord/ctl.sock", 1 },
	{ "control_socket", "", 1 },
	{ "control_socket", "run/ctl.sock", 0 },
	{ "control_socket", "/run/ctl\tsock", 0 },
	{ "control_socket", "/run/connectord/this-path-is-much-too-long-to-be-"
	    "a-socket-address-because-sun-path-holds-only-108-bytes.sock", 0 },
	{ "nosuchkey", "1", 0 },
};

/* Where connectorctl and the broker find the control socket. */
static void
test_control_socket(void)
{
	struct config	 c;
	char		 path[256];

	ok(config_init(&c) == 0, "config_init for control_socket");
	ok(config_control_socket(&c, path, sizeof(path), err,
	    sizeof(err)) == 0, "default control socket fits");
	is_str(path, "./var/state/connectord.sock",
	    "default control socket is in state_dir");
	ok(config_set(&c, "control_socket", "/run/c.sock", err,
	    sizeof(err)) == 0, "control_socket set");
	ok(config_control_socket(&c, path, sizeof(path), err,
	    sizeof(err)) == 0, "set control socket fits");
	is_str(path, "/run/c.sock", "control_socket is used as given");
	ok(config_set(&c, "control_socket", "", err, sizeof(err)) == 0 &&
	    c.control_socket == NULL, "an empty control_socket unsets it");
	ok(config_set(&c, "state_dir", "/var/lib/connectord/a-state-directory-"
	    "whose-name-goes-on-and-on-and-on-until-no-socket-fits-in-it", err,
	    sizeof(err)) == 0, "a long state_dir is a valid path");
	ok(config_control_socket(&c, path, sizeof(path), err,
	    sizeof(err)) == -1 && strstr(err, "control_socket") != NULL,
	    "a socket path that cannot fit says to set control_socket");
	config_free(&c);
}

static void
test_keys(void)
{
	char	 name[256];
	size_t	 i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "%s '%.40s' is %s", cases[i].key,
		    cases[i].value, cases[i].good ? "accepted" : "rejected");
		/* A control byte in a name would break the TAP stream. */
		for (j = 0; name[j] != '\0'; j++)
			if ((unsigned char)name[j] < 0x20 || name[j] == 0x7f)
				name[j] = '?';
		if (!ok((try_set(cases[i].key, cases[i].value) == 0) ==
		    cases[i].good, name))
			printf("# %s\n", err);
		else if (!cases[i].good && !starts_with(err, cases[i].key) &&
		    !starts_with(err, "unknown key"))
			ok(0, "error names the key");
	}
}

static void
test_normalise(void)
{
	struct config	 c;

	config_init(&c);
	config_set(&c, "github_api_url", "https://ghe.example/api/v3//", err,
	    sizeof(err));
	is_str(c.github_api_url, "https://ghe.example/api/v3",
	    "trailing '/' of github_api_url stripped");
	config_set(&c, "public_url", "http://h:1/", err, sizeof(err));
	is_str(c.public_url, "http://h:1",
	    "trailing '/' of public_url stripped");
	config_set(&c, "vercel_redirect_uri", "http://h/cb/", err, sizeof(err));
	is_str(c.vercel_redirect_uri, "http://h/cb/",
	    "vercel_redirect_uri keeps its '/'");
	config_set(&c, "workspace", "ws/", err, sizeof(err));
	is_str(c.workspace, "ws/", "paths are stored as given");
	config_free(&c);
}

static void
test_errors(void)
{
	struct config	 c;

	config_init(&c);
	ok(load(&c, "/etc/c.conf", "# a\n\n#\n\n\n\n\n\n\n\n\n"
	    "session_ttl = 5\n") == -1, "bad session_ttl fails");
	is_str(err, "/etc/c.conf:12: session_ttl must be a whole number of "
	    "seconds from 30 to 86400, not '5'", "error names file and line");
	ok(load(&c, "t.conf", "session_ttl = 60\nbogus = 1\n") == -1,
	    "unknown key fails");
	is_str(err, "t.conf:2: unknown key 'bogus'", "unknown key error");
	ok(load(&c, "t.conf", "\n\njust words\n") == -1, "line without '='");
	is_str(err, "t.conf:3: expected 'key = value'", "missing '=' error");
	ok(load(&c, "t.conf", "= value\n") == -1, "line without a key fails");
	ok(load(&c, "t.conf", "workspace =\n") == -1, "empty workspace fails");
	ok(starts_with(err, "t.conf:1: workspace must not be empty"),
	    "empty value error");
	ok(load(&c, "t.conf", "oauth_port = 8\033[2J\n") == -1 &&
	    strstr(err, "'8?[2J'") != NULL, "control bytes are not echoed");
	config_free(&c);
}

static void
test_syntax(void)
{
	struct config	 c;

	config_init(&c);
	ok(load(&c, "t.conf", "# comment\n\n   # indented comment\n"
	    "\t\n  session_ttl\t=\t45  \r\n"
	    "vercel_client_id = cl_a#b\n") == 0, "comments and blanks load");
	is_int(c.session_ttl, 45, "value around tabs and CR is trimmed");
	is_str(c.vercel_client_id, "cl_a#b", "'#' inside a value is kept");
	ok(load(&c, "t.conf", "workspace = \" /srv/a b \"\n") == 0,
	    "quoted value loads");
	is_str(c.workspace, " /srv/a b ", "quotes stripped, spaces kept");
	ok(load(&c, "t.conf", "workspace=\"/srv/x\"y\"\n") == 0,
	    "inner quote loads");
	is_str(c.workspace, "/srv/x\"y", "only the outer quotes are stripped");
	ok(load(&c, "t.conf", "ui_origin = https://a.example\n") == 0 &&
	    c.ui_origin != NULL, "ui_origin set");
	ok(load(&c, "t.conf", "ui_origin = \"\"\nca_file=\nhttps_proxy =\n"
	    "vercel_client_id =\n") == 0, "empty optional keys load");
	ok(c.ui_origin == NULL && c.ca_file == NULL && c.https_proxy == NULL &&
	    c.vercel_client_id == NULL, "empty value unsets optional keys");
	ok(load(&c, "t.conf", "gh_flows_max = 3") == 0 && c.gh_flows_max == 3,
	    "last line without newline");
	config_free(&c);
}

static void
test_limits(void)
{
	struct config	 c;
	char		 buf[CD_CONF_LINE_MAX + 64];
	const char	 nul[] = "session_ttl = 60\nsession_ttl = 6\0 0\n";

	config_init(&c);
	memset(buf, ' ', sizeof(buf));
	buf[0] = '#';
	buf[CD_CONF_LINE_MAX] = '\n';
	buf[CD_CONF_LINE_MAX + 1] = '\0';
	ok(load(&c, "t.conf", buf) == 0, "line of CD_CONF_LINE_MAX is fine");
	buf[CD_CONF_LINE_MAX] = ' ';
	buf[CD_CONF_LINE_MAX + 1] = '\n';
	buf[CD_CONF_LINE_MAX + 2] = '\0';
	ok(load(&c, "t.conf", buf) == -1, "longer line fails");
	ok(starts_with(err, "t.conf:1: line is longer than"),
	    "long line error");
	ok(config_load_buf(&c, "t.conf", nul, sizeof(nul) - 1, err,
	    sizeof(err)) == -1, "NUL byte fails");
	ok(starts_with(err, "t.conf:2: line contains a NUL byte"),
	    "NUL byte error names the line");
	config_free(&c);
}

static void
test_listen(void)
{
	struct config	 c;
	char		 text[1024];
	size_t		 i, off = 0;

	config_init(&c);
	ok(load(&c, "t.conf", "listen = 127.0.0.1:9000\n") == 0, "listen");
	ok(c.nlisten == 1 && strcmp(c.listen[0], "127.0.0.1:9000") == 0,
	    "first listen replaces the default");
	ok(c.listen_explicit, "listen is explicit");
	ok(load(&c, "t.conf", "listen = unix:/tmp/c.sock\n") == 0 &&
	    c.nlisten == 2 && strcmp(c.listen[1], "unix:/tmp/c.sock") == 0,
	    "second listen appends");
	ok(load(&c, "t.conf", "listen = unix:/tmp/c.sock\n") == -1 &&
	    strstr(err, "already listed") != NULL, "duplicate listen fails");
	config_free(&c);

	config_init(&c);
	for (i = 0; i <= CD_LISTEN_MAX; i++)
		off += snprintf(text + off, sizeof(text) - off,
		    "listen = 127.0.0.1:%zu\n", 9000 + i);
	ok(load(&c, "t.conf", text) == -1, "too many listen fails");
	ok(starts_with(err, "t.conf:9: listen may be given at most 8"),
	    "overflow error names the ninth line");
	is_int(c.nlisten, CD_LISTEN_MAX, "eight addresses kept");
	config_free(&c);
}

static void
test_option(void)
{
	struct config	 c;

	config_init(&c);
	ok(config_set_option(&c, "listen=[::1]:8701", err, sizeof(err)) == 0 &&
	    c.nlisten == 1 && strcmp(c.listen[0], "[::1]:8701") == 0,
	    "-o listen replaces the default");
	config_free(&c);

	config_init(&c);
	load(&c, "t.conf", "session_ttl = 100\nlisten = 127.0.0.1:1\n");
	ok(config_set_option(&c, "session_ttl=45", err, sizeof(err)) == 0 &&
	    c.session_ttl == 45, "-o overrides a file value");
	ok(config_set_option(&c, "listen = 127.0.0.1:2", err, sizeof(err)) ==
	    0 && c.nlisten == 2, "-o listen appends to a file's listen");
	ok(config_set_option(&c, "session_ttl", err, sizeof(err)) == -1,
	    "-o without '=' fails");
	is_str(err, "expected 'key=value', not 'session_ttl'", "-o error");
	ok(config_set_option(&c, "nope=1", err, sizeof(err)) == -1 &&
	    strcmp(err, "unknown key 'nope'") == 0, "-o unknown key");
	ok(config_set_option(&c, "api_auth=nobody", err, sizeof(err)) == -1 &&
	    strcmp(err, "api_auth must be 'token' or 'none', not 'nobody'") ==
	    0, "-o bad value has no location");
	config_free(&c);
}

static void
test_roundtrip(void)
{
	struct config	 a, b;
	char		 s1[16384], s2[16384], tiny[32];
	ssize_t		 n1, n2;

	config_init(&a);
	ok(load(&a, "t.conf", "listen = 127.0.0.1:1\nlisten = [::1]:2\n"
	    "listen = unix:/run/c.sock\nworkspace = \" /w s \"\n"
	    "home = /home/x\nstate_dir = \"quoted\"\"\napi_auth = none\n"
	    "user = _cd\nvault_user = 1001\nrclone = rclone\ngh = /bin/gh\n"
	    "https_proxy = http://p:3128\nca_file = /ca.pem\n"
	    "session_ttl = 0030\noauth_port = 1\ngh_flows_max = 64\n"
	    "vercel_pending_max = 1\ngithub_api_url = http://g/api/\n"
	    "github_host = g.example\nvercel_client_id = cl_1\n"
	    "ui_origin = http://ui:3000\naccess_log = /var/log/a.log\n") == 0,
	    "full config loads");
	n1 = config_serialize(&a, s1, sizeof(s1));
	ok(n1 > 0 && (size_t)n1 == strlen(s1), "serialise returns length");
	config_init(&b);
	ok(config_load_buf(&b, "ser", s1, (size_t)n1, err, sizeof(err)) == 0,
	    "serialised form loads");
	n2 = config_serialize(&b, s2, sizeof(s2));
	ok(n1 == n2 && strcmp(s1, s2) == 0, "round trip is exact");
	ok(b.nlisten == 3 && strcmp(b.listen[2], "unix:/run/c.sock") == 0,
	    "every listen entry survives");
	is_str(b.workspace, " /w s ", "spaces survive via quotes");
	is_str(b.state_dir, "quoted\"", "trailing quote survives");
	is_int(b.api_auth, CONFIG_AUTH_NONE, "api_auth survives");
	is_int(b.session_ttl, 30, "session_ttl survives");
	ok(strstr(s1, "listen = 127.0.0.1:1\nlisten = [::1]:2\n") != NULL,
	    "one line per listen entry");
	ok(config_serialize(&a, tiny, sizeof(tiny)) == -1,
	    "small buffer gives -1");
	ok(config_serialize(&a, s2, (size_t)n1) == -1,
	    "no room for the NUL gives -1");
	config_free(&a);
	config_free(&b);

	config_init(&a);
	n1 = config_serialize(&a, s1, sizeof(s1));
	ok(n1 > 0 && strstr(s1, "home") == NULL && strstr(s1, "ui_origin") ==
	    NULL && strstr(s1, "\nuser") == NULL, "unset keys are omitted");
	config_free(&a);
}

static void
make_file(const char *path, const char *text)
{
	FILE	*fp;

	if ((fp = fopen(path, "w")) != NULL) {
		fputs(text, fp);
		fclose(fp);
	}
}

static int
check_with(const char *dir, const char *text)
{
	struct config	 c;
	char		 path[512];
	int		 rc;

	snprintf(path, sizeof(path), "%s/c.conf", dir);
	make_file(path, text);
	config_init(&c);
	rc = config_load_file(&c, path, err, sizeof(err));
	if (rc == 0)
		rc = config_check(&c, err, sizeof(err));
	config_free(&c);
	return rc;
}

static void
test_check(void)
{
	char	 tmpl[] = "/tmp/test_config.XXXXXX", text[2048], want[1024];
	char	 path[1024];
	char	*d;

	if ((d = mkdtemp(tmpl)) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/ws", d);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/ws/ca.pem", d);
	make_file(path, "pem\n");
	snprintf(path, sizeof(path), "%s/link", d);
	if (symlink("ws", path) == -1)
		ok(0, "symlink");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "ca_file = %s/ws/ca.pem\nhome = %s\n", d, d, d, d);
	if (!ok(check_with(d, text) == 0, "state_dir beside workspace is fine"))
		printf("# %s\n", err);

	snprintf(text, sizeof(text), "workspace = %s/ws\n"
	    "state_dir = %s/ws/state\n", d, d);
	ok(check_with(d, text) == -1, "state_dir inside workspace fails");
	snprintf(want, sizeof(want), "%s/c.conf:2: state_dir '%s/ws/state' is "
	    "inside workspace", d, d);
	ok(starts_with(err, want), "inside-workspace error names line 2");

	snprintf(text, sizeof(text), "workspace = %s/ws/\nstate_dir = %s/ws\n",
	    d, d);
	ok(check_with(d, text) == -1, "state_dir equal to workspace fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\n"
	    "state_dir = %s/ws/../ws/new\n", d, d);
	ok(check_with(d, text) == -1 && strstr(err, "inside") != NULL,
	    "new state_dir inside workspace via .. fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/link\n",
	    d, d);
	ok(check_with(d, text) == -1 && strstr(err, "inside") != NULL,
	    "state_dir symlinked into workspace fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\n"
	    "state_dir = %s/link/new\n", d, d);
	ok(check_with(d, text) == -1 && strstr(err, "inside") != NULL,
	    "new state_dir under a symlink into workspace fails");

	snprintf(text, sizeof(text), "workspace = %s/nowhere\n"
	    "state_dir = %s/st\n", d, d);
	ok(check_with(d, text) == -1, "missing workspace fails");
	snprintf(want, sizeof(want), "%s/c.conf:1: workspace '%s/nowhere' does "
	    "not exist; create it or set workspace", d, d);
	is_str(err, want, "missing workspace error names the line");

	snprintf(text, sizeof(text), "# c\nworkspace = %s/ws\nstate_dir = "
	    "%s/no/st\n", d, d);
	ok(check_with(d, text) == -1 && strstr(err, ":3: the parent of "
	    "state_dir") != NULL, "state_dir with missing parent fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "home = %s/c.conf\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, ":3: home '") != NULL &&
	    strstr(err, "is not a directory") != NULL, "home not a directory");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "ca_file = %s/ws\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, ":3: ca_file") != NULL,
	    "ca_file directory fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "ca_file = %s/none.pem\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, "does not exist") != NULL,
	    "missing ca_file fails");

	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "access_log = %s/access.log\n", d, d, d);
	if (!ok(check_with(d, text) == 0, "access_log beside workspace is "
	    "fine"))
		printf("# %s\n", err);
	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "access_log = %s/link/access.log\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, ":3: access_log") != NULL &&
	    strstr(err, "inside workspace") != NULL,
	    "access_log inside workspace (through a symlink) fails");
	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "access_log = %s/no/access.log\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, "does not exist") != NULL,
	    "access_log in a missing directory fails");
	snprintf(text, sizeof(text), "workspace = %s/ws\nstate_dir = %s/st\n"
	    "access_log = %s\n", d, d, d);
	ok(check_with(d, text) == -1 && strstr(err, "not a regular file") !=
	    NULL, "access_log naming a directory fails");

	snprintf(path, sizeof(path), "%s/c.conf", d);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ws/ca.pem", d);
	unlink(path);
	snprintf(path, sizeof(path), "%s/link", d);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ws", d);
	rmdir(path);
	rmdir(d);
}

static void
test_env_file(void)
{
	struct config	 c;

	setenv("VERCEL_OAUTH_REDIRECT_URI", "https://app.example/cb", 1);
	config_init(&c);
	is_str(c.vercel_redirect_uri, "https://app.example/cb",
	    "VERCEL_OAUTH_REDIRECT_URI gives the default");
	config_free(&c);

	setenv("VERCEL_OAUTH_REDIRECT_URI", "not a url", 1);
	config_init(&c);
	config_set(&c, "workspace", "/", err, sizeof(err));
	config_set(&c, "state_dir", "/tmp", err, sizeof(err));
	ok(config_check(&c, err, sizeof(err)) == -1 &&
	    starts_with(err, "VERCEL_OAUTH_REDIRECT_URI from the environment"),
	    "invalid VERCEL_OAUTH_REDIRECT_URI is reported");
	config_set(&c, "vercel_redirect_uri", "http://h/cb", err, sizeof(err));
	config_set(&c, "workspace", "/tmp", err, sizeof(err));
	config_set(&c, "state_dir", "/var/tmp", err, sizeof(err));
	ok(config_check(&c, err, sizeof(err)) == 0,
	    "setting vercel_redirect_uri overrides a bad environment");
	config_free(&c);
	unsetenv("VERCEL_OAUTH_REDIRECT_URI");

	config_init(&c);
	ok(config_load_file(&c, "/nonexistent/c.conf", err, sizeof(err)) ==
	    -1 && starts_with(err, "/nonexistent/c.conf: cannot open"),
	    "missing file is an error");
	ok(config_load_file(&c, "/tmp", err, sizeof(err)) == -1 &&
	    strstr(err, "not a regular file") != NULL, "directory is refused");
	config_free(&c);
}

/* What config_reload() was told, one "key:taken:kept" line per call. */
static char reported[4096];

static void
report_cb(const char *key, int taken, const char *kept, void *arg)
{
	size_t len = strlen(reported);

	(void)arg;
	snprintf(reported + len, sizeof(reported) - len, "%s:%d:%s\n", key,
	    taken, kept != NULL ? kept : "-");
}

static void
test_reload(void)
{
	struct config	 run, loaded, fresh;
	int		 n;

	ok(config_key_reloadable("session_ttl") &&
	    config_key_reloadable("manus_api_url") &&
	    config_key_reloadable("access_log") &&
	    config_key_reloadable("https_proxy"), "URLs, TTL, proxy and the "
	    "access log are reloadable");
	ok(!config_key_reloadable("listen") &&
	    !config_key_reloadable("workspace") &&
	    !config_key_reloadable("state_dir") &&
	    !config_key_reloadable("home") &&
	    !config_key_reloadable("user") &&
	    !config_key_reloadable("vault_user") &&
	    !config_key_reloadable("api_auth") &&
	    !config_key_reloadable("oauth_port") &&
	    !config_key_reloadable("nosuchkey"), "listeners, directories, "
	    "users, auth and the OAuth port are not");

	config_init(&loaded);
	load(&loaded, "a", "listen = 127.0.0.1:1\nworkspace = ws\n"
	    "session_ttl = 60\nrclone = /bin/rclone\n");
	config_init(&run);
	load(&run, "a", "listen = 127.0.0.1:1\nworkspace = /abs/ws\n"
	    "session_ttl = 60\nrclone = /bin/rclone\nhome = /home/v\n");
	config_init(&fresh);
	load(&fresh, "b", "listen = 127.0.0.1:2\nworkspace = ws\n"
	    "session_ttl = 120\nmanus_api_url = https://m.example/\n"
	    "access_log = /var/log/a.log\n");
	reported[0] = '\0';
	n = config_reload(&run, &loaded, &fresh, report_cb, NULL, err,
	    sizeof(err));
	printf("# %s", reported);
	is_int(n, 4, "four reloadable keys taken (ttl, url, log, rclone)");
	is_int(run.session_ttl, 120, "session_ttl takes its new value");
	is_str(run.manus_api_url, "https://m.example", "manus_api_url too, "
	    "normalised");
	is_str(run.access_log, "/var/log/a.log", "access_log too");
	ok(run.rclone == NULL, "a key removed from the file goes back to its "
	    "default");
	is_str(run.listen[0], "127.0.0.1:1", "listen keeps its running value");
	is_str(run.workspace, "/abs/ws", "a resolved path is kept as resolved");
	is_str(run.home, "/home/v", "and so is the home found at start");
	is_int(loaded.session_ttl, 120, "the loaded copy follows the reload");
	is_str(loaded.listen[0], "127.0.0.1:1", "but not for kept keys");
	ok(strstr(reported, "listen:0:127.0.0.1:1\n") != NULL,
	    "listen is reported as kept, with the running value");
	ok(strstr(reported, "workspace") == NULL, "an unchanged key (as "
	    "written) is not reported, even when resolved at start");
	ok(strstr(reported, "session_ttl:1:-\n") != NULL &&
	    strstr(reported, "manus_api_url:1:-\n") != NULL,
	    "taken keys are reported as taken");

	reported[0] = '\0';
	n = config_reload(&run, &loaded, &fresh, report_cb, NULL, err,
	    sizeof(err));
	ok(n == 0 && strcmp(reported, "listen:0:127.0.0.1:1\n") == 0,
	    "a second reload of the same file takes nothing new and reports "
	    "the kept key again");
	config_free(&run);
	config_free(&loaded);
	config_free(&fresh);
}

int
main(void)
{
	test_defaults();
	test_keys();
	test_control_socket();
	test_normalise();
	test_errors();
	test_syntax();
	test_limits();
	test_listen();
	test_option();
	test_roundtrip();
	test_check();
	test_env_file();
	test_reload();
	return tap_done();
}
