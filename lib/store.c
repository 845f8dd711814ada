/*
 * Atomic, durable file replacement for the vault. Readers (rclone, MCP
 * servers) either see the old file or the new one, never a torn mix, and
 * a crash at any step leaves the old file intact.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cd_limits.h"
#include "json.h"
#include "store.h"

int
store_lock(int dirfd)
{
	int fd;

	/* The directory itself carries the lock: no lock file litters a
	 * workspace that agents read. */
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

void
store_unlock(int lockfd)
{
	if (lockfd != -1)
		close(lockfd);
}

static enum store_err
store_errno_class(void)
{
	return errno == ENOSPC || errno == EDQUOT ? STORE_ERR_NOSPACE :
	    STORE_ERR_IO;
}

enum store_err
store_read(int dirfd, const char *name, char **bufp, size_t *lenp, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	*bufp = NULL;
	*lenp = 0;
	/* O_NONBLOCK: a FIFO planted at name must not hang the open; the
	 * S_ISREG check below then refuses it. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return STORE_OK;
		snprintf(err, errlen, "%s cannot be opened: %s", name,
		    strerror(errno));
		return STORE_ERR_IO;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > CD_STORE_FILE_MAX) {
		snprintf(err, errlen, "%s is not a regular file of at most %d "
		    "bytes; repair or move it away", name, CD_STORE_FILE_MAX);
		close(fd);
		return STORE_ERR_CORRUPT;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto ioerr;
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off != (size_t)st.st_size)
		goto ioerr;
	buf[off] = '\0';
	close(fd);
	*bufp = buf;
	*lenp = off;
	return STORE_OK;
ioerr:
	snprintf(err, errlen, "%s cannot be read: %s", name, strerror(errno));
	free(buf);
	close(fd);
	return STORE_ERR_IO;
}

enum store_err
store_json_parse(const char *buf, size_t len, const char *name, yajl_val *out,
    char *err, size_t errlen)
{
	char	 jerr[128];
	size_t	 i;

	/* strchr() finds the terminator too: test NUL bytes apart, or a
	 * file of NULs would pass for an empty one and be overwritten. */
	for (i = 0; i < len && buf[i] != '\0' &&
	    strchr(" \t\r\n", buf[i]) != NULL; i++)
		;
	if (i == len)
		*out = json_new_obj();
	else
		*out = json_parse(buf, len, CD_STORE_FILE_MAX, jerr,
		    sizeof(jerr));
	if (*out == NULL || !YAJL_IS_OBJECT(*out)) {
		if (*out != NULL)
			json_free_secret(*out);
		*out = NULL;
		snprintf(err, errlen, "%s is not a valid JSON object, so it "
		    "was left untouched; repair it or move it away", name);
		return STORE_ERR_CORRUPT;
	}
	return STORE_OK;
}

enum store_err
store_json_load(int dirfd, const char *name, yajl_val *out, char *err,
    size_t errlen)
{
	enum store_err	 e;
	char		*buf;
	size_t		 len;

	*out = NULL;
	if ((e = store_read(dirfd, name, &buf, &len, err, errlen)) != STORE_OK)
		return e;
	e = store_json_parse(buf ? buf : "", len, name, out, err, errlen);
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	return e;
}

enum store_err
store_json_edit(yajl_val doc, const char *key, yajl_val entry, char **out,
    size_t *len, char *err, size_t errlen)
{
	*out = NULL;
	if (entry != NULL ? json_obj_set(doc, key, entry) == -1 :
	    json_obj_del(doc, key) == -1) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR_IO;
	}
	if ((*out = json_dump(doc, 1, len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERR_IO;
	}
	/* store_read() refuses a larger file: writing one would lock
	 * every credential in it out. Indenting alone can make a file
	 * that was within the limit outgrow it. */
	if (*len > CD_STORE_FILE_MAX) {
		explicit_bzero(*out, *len);
		free(*out);
		*out = NULL;
		snprintf(err, errlen, "the credential file would grow past %d "
		    "bytes, so it was left as it is", CD_STORE_FILE_MAX);
		return STORE_ERR_TOO_LARGE;
	}
	return STORE_OK;
}

static int
store_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

#define STORE_TMP_RAND 12	/* hex digits in a temporary file's name */

/* Whether entry is a temporary file of ours for name:
 * ".<name>.<12 lowercase hex>.tmp". */
static int
store_is_tmp(const char *entry, const char *name)
{
	size_t nl = strlen(name);

	if (entry[0] != '.' || strncmp(entry + 1, name, nl) != 0 ||
	    entry[1 + nl] != '.')
		return 0;
	entry += 2 + nl;
	for (int i = 0; i < STORE_TMP_RAND; i++)
		if (!((entry[i] >= '0' && entry[i] <= '9') ||
		    (entry[i] >= 'a' && entry[i] <= 'f')))
			return 0;
	return strcmp(entry + STORE_TMP_RAND, ".tmp") == 0;
}

int
store_sweep(int dirfd, const char *name)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, n = 0;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (store_is_tmp(de->d_name, name) &&
		    unlinkat(dirfd, de->d_name, 0) == 0)
			n++;
	closedir(d);
	if (n > 0)
		fsync(dirfd);
	return n;
}

/* Open a fresh temporary file ".<name>.<random>" next to name. */
static int
store_tmp_open(int dirfd, const char *name, char *tmp, size_t tmplen)
{
	unsigned char	 r[6];
	int		 fd;

	for (int tries = 0; tries < 8; tries++) {
		if (RAND_bytes(r, sizeof(r)) != 1)
			return -1;
		snprintf(tmp, tmplen, ".%s.%02x%02x%02x%02x%02x%02x.tmp", name,
		    r[0], r[1], r[2], r[3], r[4], r[5]);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	return -1;
}

enum store_err
store_write(int dirfd, const char *name, const char *data, size_t len,
    int (*commit)(void *), void *arg, char *err, size_t errlen)
{
	char		 tmp[300];
	enum store_err	 e;
	int		 fd;

	if ((fd = store_tmp_open(dirfd, name, tmp, sizeof(tmp))) == -1) {
		e = store_errno_class();
		snprintf(err, errlen, "cannot create a temporary file beside "
		    "%s: %s", name, strerror(errno));
		return e;
	}
	if (fchmod(fd, 0600) == -1 || store_write_all(fd, data, len) == -1 ||
	    fsync(fd) == -1) {
		e = store_errno_class();
		snprintf(err, errlen, "cannot write %s: %s; the old file is "
		    "intact", name, strerror(errno));
		goto fail;
	}
	if (commit != NULL && commit(arg) == -1) {
		e = STORE_ERR_LOG;
		snprintf(err, errlen, "the IPC log cannot be written, so %s "
		    "was not changed", name);
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, name) == -1) {
		e = store_errno_class();
		snprintf(err, errlen, "cannot replace %s: %s", name,
		    strerror(errno));
		goto fail;
	}
	close(fd);
	if (fsync(dirfd) == -1) {
		snprintf(err, errlen, "cannot sync the directory of %s: %s",
		    name, strerror(errno));
		return STORE_ERR_IO;
	}
	return STORE_OK;
fail:
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return e;
}

enum store_err
store_remove(int dirfd, const char *name, int (*commit)(void *), void *arg,
    char *err, size_t errlen)
{
	if (commit != NULL && commit(arg) == -1) {
		snprintf(err, errlen, "the IPC log cannot be written, so %s "
		    "was not removed", name);
		return STORE_ERR_LOG;
	}
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove %s: %s", name,
		    strerror(errno));
		return STORE_ERR_IO;
	}
	if (fsync(dirfd) == -1) {
		snprintf(err, errlen, "cannot sync the directory of %s", name);
		return STORE_ERR_IO;
	}
	return STORE_OK;
}
