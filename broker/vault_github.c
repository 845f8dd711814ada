/*
 * <home>/.xo-cowork/github_token.json: the token from the gh device flow,
 * for tools that read it there. Written (0600, directory 0700) when the
 * stored GitHub credential came from the device flow, removed when it is
 * disconnected or replaced by a pasted token, so that the file never
 * holds a token the connection no longer uses.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "vault.h"


/* Open (creating 0700) <home>/.xo-cowork, refusing a symbolic link. */
static int
vault_xo_dir(int create, char *err, size_t errlen)
{
	int fd;

	if (create && mkdirat(vault.homefd, XO_DIR, 0700) == -1 &&
	    errno != EEXIST)
		goto fail;
	fd = openat(vault.homefd, XO_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && !create && errno == ENOENT)
		return -2;
	if (fd == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot open %s/%s: %s", vault.ci.conf.home,
	    XO_DIR, strerror(errno));
	return -1;
}

static char *
vault_github_doc(yajl_val entry, yajl_val user, size_t *len)
{
	yajl_val	 doc;
	const char	*scope = json_obj_str(entry, "scope");
	char		 when[32], *out;
	time_t		 now = time(NULL);
	struct tm	 tm;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((doc = json_new_obj()) == NULL ||
	    json_obj_set(doc, "access_token",
	    json_new_str(json_obj_str(entry, "access_token"))) == -1 ||
	    json_obj_set(doc, "token_type", json_new_str("bearer")) == -1 ||
	    json_obj_set(doc, "scope", json_new_str(scope ? scope : "")) ||
	    json_obj_set(doc, "user", user ? json_copy(user) :
	    json_new_obj()) == -1 ||
	    json_obj_set(doc, "created_at", json_new_str(when)) == -1)
		fatalx("out of memory");
	out = json_dump(doc, 1, len);
	json_free_secret(doc);
	return out;
}

enum store_err
vault_github_file(yajl_val entry, yajl_val user, char *err, size_t errlen)
{
	const char	*method = json_obj_str(entry, "auth_method");
	enum store_err	 e;
	char		*doc;
	size_t		 len;
	int		 dfd, cli = method != NULL && strcmp(method, "cli") == 0;

	if ((dfd = vault_xo_dir(cli, err, errlen)) == -2)
		return STORE_OK;	/* nothing to remove */
	if (dfd == -1)
		return STORE_ERR_IO;
	if (!cli) {
		e = store_remove(dfd, GITHUB_FILE, NULL, NULL, err, errlen);
		close(dfd);
		return e;
	}
	if (fchmod(dfd, 0700) == -1)
		log_warn("chmod %s", XO_DIR);
	if ((doc = vault_github_doc(entry, user, &len)) == NULL)
		fatalx("out of memory");
	e = store_write(dfd, GITHUB_FILE, doc, len, NULL, NULL, err, errlen);
	explicit_bzero(doc, len);
	free(doc);
	close(dfd);
	return e;
}
