/*
 * The GitHub device flow through the real gh (reference/gh.md): run
 * "gh auth login --hostname H --git-protocol https --web" with stdin from
 * /dev/null, a private GH_CONFIG_DIR inside the job's directory and an
 * environment built from an allow-list, so that the user's own gh login
 * is never read, changed or logged out. The one-time code and the URL gh
 * prints on stderr go to http as progress; when gh exits 0 the token is
 * read with "gh auth token", checked with GET /user and stored by the
 * vault with auth_method "cli" (which also writes github_token.json).
 *
 * gh's output is untrusted: lines are bounded, ANSI-stripped and matched
 * against fixed patterns (lib/ghout.c); nothing of it is logged or
 * returned except the code and URL, which are checked for shape first.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cd_limits.h"
#include "ghout.h"
#include "json.h"
#include "log.h"
#include "msg.h"
#include "tool.h"
#include "toolpath.h"
#include "worker.h"

/* Seconds gh has to print the one-time code (else: GitHub did not
 * answer). Below the shortest session_ttl (30), so that this sentence,
 * not the job deadline's, is the answer. */
#define GH_CODE_WAIT_SEC	20
/* Seconds "gh auth token" may take. */
#define GH_TOKEN_WAIT_SEC	10
/* The device code's lifetime when gh does not say (GitHub's default). */
#define GH_EXPIRES_DEFAULT	900

struct gh_env {
	char	*envp[13];
	char	 buf[12][1200];
	size_t	 n;
};

static void
gh_env_add(struct gh_env *e, const char *k, const char *v)
{
	if (e->n >= sizeof(e->buf) / sizeof(e->buf[0]))
		fatalx("gh environment too large");
	snprintf(e->buf[e->n], sizeof(e->buf[e->n]), "%s=%s", k, v);
	e->envp[e->n] = e->buf[e->n];
	e->n++;
	e->envp[e->n] = NULL;
}

/* Only what gh needs; never GH_TOKEN, GITHUB_TOKEN, GH_DEBUG, GH_HOST. */
static void
gh_env_build(struct gh_env *e, const char *dir, const char *confdir)
{
	const struct config *conf = &worker.ci.conf;

	memset(e, 0, sizeof(*e));
	gh_env_add(e, "PATH", TOOLPATH_PATH);
	gh_env_add(e, "HOME", dir);
	gh_env_add(e, "TMPDIR", dir);
	gh_env_add(e, "GH_CONFIG_DIR", confdir);
	gh_env_add(e, "GH_PROMPT_DISABLED", "1");
	gh_env_add(e, "GH_NO_UPDATE_NOTIFIER", "1");
	gh_env_add(e, "NO_COLOR", "1");
	if (conf->https_proxy != NULL)
		gh_env_add(e, "HTTPS_PROXY", conf->https_proxy);
	if (conf->ca_file != NULL)
		gh_env_add(e, "SSL_CERT_FILE", conf->ca_file);
}

static void
gh_report_code(const char *code, const char *url)
{
	yajl_gen	 g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		fatalx("out of memory");
	yajl_gen_map_open(g);
	json_gen_kstr(g, "user_code", code);
	json_gen_kstr(g, "verification_uri", url);
	json_gen_kint(g, "expires_in", GH_EXPIRES_DEFAULT);
	yajl_gen_map_close(g);
	worker_progress_gen(g);
}

/* Read "gh auth token" into tok. 0 or -1. */
static int
gh_read_token(const char *gh, char *const envp[], char *tok, size_t len)
{
	const char	*host = worker.ci.conf.github_host;
	char		*argv[] = { "gh", "auth", "token", "--hostname",
			    (char *)host, NULL };
	struct tool	 t;
	int		 rc, code;

	if (tool_start(&t, gh, argv, envp) == -1)
		return -1;
	while ((rc = tool_read(&t, GH_TOKEN_WAIT_SEC * 1000)) == 1)
		;
	if (rc != 0) {
		tool_kill(&t);
		return -1;
	}
	code = tool_wait(&t);
	rc = code == 0 ? ghout_token(t.outbuf.data, tok, len) : -1;
	explicit_bzero(t.outbuf.data, sizeof(t.outbuf.data));
	return rc;
}

/* gh exited non-zero: say why in our own words. */
static void
gh_explain_failure(struct tool *t, int code)
{
	char sentence[128];

	/* Killed: whatever it printed last is not why it ended. */
	if (code > 128) {
		snprintf(sentence, sizeof(sentence), "gh was stopped (signal "
		    "%d) before the login completed; start again.", code - 128);
		worker_fail(502, sentence);
		return;
	}
	switch (ghout_failure(t->errbuf.data)) {
	case GHOUT_FAIL_DENIED:
		worker_fail(403, "The authorization was denied on GitHub.");
		return;
	case GHOUT_FAIL_EXPIRED:
		worker_fail(410, "The device code expired before it was approved; "
		    "start again.");
		return;
	case GHOUT_FAIL_SLOW_DOWN:
		worker_fail(502, "GitHub asked gh to slow down, which gh 2.23 treats "
		    "as fatal; start again in a minute.");
		return;
	case GHOUT_FAIL_HTTP:
		snprintf(sentence, sizeof(sentence), "GitHub answered HTTP %d "
		    "during the login; try again later.",
		    ghout_http_status(t->errbuf.data));
		worker_fail(502, sentence);
		return;
	case GHOUT_FAIL_UNREADABLE:
		worker_fail(502, "GitHub answered the login with something gh "
		    "could not read; try again later.");
		return;
	case GHOUT_FAIL_OTHER:
		break;
	}
	snprintf(sentence, sizeof(sentence), "gh could not complete the login "
	    "(exit status %d); see the daemon's log.", code);
	worker_fail(502, sentence);
	log_warnx("gh auth login exited with status %d", code);
}

/* Wait for gh to print the code; report it. 0, or -1 (answered). */
static int
gh_wait_code(struct tool *t)
{
	char	 code[GHOUT_CODE_LEN + 1], url[CD_GH_URL_MAX];
	char	 text[sizeof(t->errbuf.data)];
	int	 rc, fallback = 0, silent;

	for (int waited = 0; waited < GH_CODE_WAIT_SEC * 10; waited++) {
		rc = tool_read(t, 100);
		memcpy(text, t->errbuf.data, sizeof(text));
		if (ghout_code(text, code, sizeof(code), url, sizeof(url))) {
			explicit_bzero(text, sizeof(text));
			gh_report_code(code, url);
			return 0;
		}
		/* The browser login gh falls back to never ends: no need
		 * to wait for the code any longer. */
		if (ghout_browser_only(text)) {
			fallback = 1;
			break;
		}
		if (rc == 0 || rc == -2)
			break;
	}
	silent = ghout_blank(t->errbuf.data) && t->outbuf.len == 0;
	explicit_bzero(text, sizeof(text));
	if (t->out == -1 && t->err == -1) {
		gh_explain_failure(t, tool_wait(t));
		return -1;
	}
	tool_kill(t);
	if (fallback)
		snprintf(text, sizeof(text), "GitHub's device flow is not "
		    "available for this host: gh offered a browser login "
		    "instead, which the daemon cannot complete.");
	else
		snprintf(text, sizeof(text), "%s within %d seconds; try again "
		    "later.", silent ? "GitHub did not answer gh's request for "
		    "a device code" : "gh did not show a device code",
		    GH_CODE_WAIT_SEC);
	worker_fail(502, text);
	return -1;
}

static void
gh_finish(const char *gh, char *const envp[])
{
	struct worker_result	 r;
	char			 tok[CD_SECRET_MAX + 1];

	memset(&r, 0, sizeof(r));
	if (gh_read_token(gh, envp, tok, sizeof(tok)) == -1) {
		worker_fail(502, "gh logged in but its token could not be read.");
		return;
	}
	if (check_store("github", tok, "cli", &r) == 0)
		r.status = 200;
	explicit_bzero(tok, sizeof(tok));
	worker_answer(&r);
	free(r.identity);
}

void
ghdevice_run(uint32_t op)
{
	const char	*dir = worker.ci.extra;
	char		 gh[512], confdir[600];
	char		*argv[] = { "gh", "auth", "login", "--hostname",
			    worker.ci.conf.github_host, "--git-protocol", "https",
			    "--web", NULL };
	struct gh_env	 env;
	struct tool	 t;
	int		 code;

	if (op != JOB_OP_DEVICE)
		fatalx("protocol violation by http: op %u for a device flow", op);
	if (toolpath_find(worker.ci.conf.gh, "gh", gh, sizeof(gh)) == -1) {
		worker_fail(503, "The GitHub CLI (gh) is not installed or not "
		    "runnable; install it or set gh in the configuration.");
		return;
	}
	snprintf(confdir, sizeof(confdir), "%s/gh", dir);
	if (mkdir(confdir, 0700) == -1)
		fatal("mkdir %s", confdir);
	gh_env_build(&env, dir, confdir);
	if (tool_start(&t, gh, argv, env.envp) == -1) {
		worker_fail(503, "gh could not be started.");
		return;
	}
	if (gh_wait_code(&t) == -1)
		return;
	/* The broker's deadline bounds this wait. */
	while (tool_read(&t, -1) == 1)
		;
	code = tool_wait(&t);
	if (code != 0)
		gh_explain_failure(&t, code);
	else
		gh_finish(gh, env.envp);
	explicit_bzero(t.errbuf.data, sizeof(t.errbuf.data));
}
