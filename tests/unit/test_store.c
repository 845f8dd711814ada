/*
 * Unit tests of lib/store.c in a fresh mkdtemp() directory: reads of
 * missing, oversized, non-regular and symlinked names, atomic replacement
 * (mode 0600, no temporary file left behind, the commit hook's veto),
 * store_json_load()'s refusals, the directory lock across two processes,
 * the sweep of stale temporary files and, as root, ENOSPC on a tiny tmpfs in a private mount namespace.
 */
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cd_limits.h"
#include "json.h"
#include "store.h"
#include "tap.h"

static char	 dir[] = "/tmp/test_store.XXXXXX";
static int	 dfd = -1;
static char	 err[512];

static void
put(const char *name, const char *data, size_t len)
{
	int fd;

	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* Whether name holds exactly data. */
static int
holds(int dirfd, const char *name, const char *data)
{
	char	 buf[256];
	ssize_t	 n;
	int	 fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)strlen(data) && memcmp(buf, data, (size_t)n) == 0;
}

/* Temporary files store_write() would leave: ".<name>.<hex>.tmp". */
static int
count_tmp(int dirfd)
{
	struct dirent	*e;
	DIR		*d;
	size_t		 len;
	int		 n = 0, fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		if (e->d_name[0] == '.' && len > 4 &&
		    strcmp(e->d_name + len - 4, ".tmp") == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
mode_of(const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	return (int)(st.st_mode & 07777);
}

static int
is_regular(const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode);
}

static int
mentions(const char *name)
{
	return strstr(err, name) != NULL;
}

static void
test_read_missing(void)
{
	char	*buf = err;
	size_t	 len = 7;

	is_int(store_read(dfd, "missing", &buf, &len, err, sizeof(err)),
	    STORE_OK, "missing file reads as STORE_OK");
	ok(buf == NULL && len == 0, "with no buffer and length 0");
}

static void
test_write_create(void)
{
	const char	*data = "{\"k\":\"v\"}\n";
	char		*buf = NULL;
	size_t		 len = 0;

	is_int(store_write(dfd, "new.json", data, strlen(data), NULL, NULL,
	    err, sizeof(err)), STORE_OK, "store_write creates a file");
	is_int(mode_of("new.json"), 0600, "created with mode 0600");
	is_int(store_read(dfd, "new.json", &buf, &len, err, sizeof(err)),
	    STORE_OK, "store_read reads it back");
	ok(buf != NULL && len == strlen(data) && memcmp(buf, data, len) == 0,
	    "content is exact");
	ok(buf != NULL && buf[len] == '\0', "buffer is NUL-terminated");
	free(buf);
}

static void
test_write_replace(void)
{
	put("old.json", "old", 3);
	fchmodat(dfd, "old.json", 0644, 0);
	is_int(store_write(dfd, "old.json", "replaced", 8, NULL, NULL, err,
	    sizeof(err)), STORE_OK, "replace an existing file");
	ok(holds(dfd, "old.json", "replaced"), "new content in place");
	is_int(mode_of("old.json"), 0600, "a 0644 file becomes 0600");
	is_int(count_tmp(dfd), 0, "no temporary file left behind");
	is_int(store_write(dfd, "old.json", "", 0, NULL, NULL, err,
	    sizeof(err)), STORE_OK, "replace with empty content");
	ok(holds(dfd, "old.json", ""), "file is now empty");
}

struct hook {
	int	 calls;
	int	 rc;
	int	 tmp_seen;	/* temporary files when the hook ran */
	int	 old_seen;	/* the target still held its old content */
};

static int
hook(void *arg)
{
	struct hook *h = arg;

	h->calls++;
	h->tmp_seen = count_tmp(dfd);
	h->old_seen = holds(dfd, "hook.json", "before");
	return h->rc;
}

static void
test_commit_hook(void)
{
	struct hook	 h = { 0, -1, 0, 0 };

	put("hook.json", "before", 6);
	is_int(store_write(dfd, "hook.json", "after", 5, hook, &h, err,
	    sizeof(err)), STORE_ERR_LOG, "hook returning -1 is STORE_ERR_LOG");
	ok(h.calls == 1 && h.tmp_seen == 1 && h.old_seen,
	    "hook ran once, with the new file written and the old in place");
	ok(mentions("hook.json"), "sentence names the file");
	ok(holds(dfd, "hook.json", "before"), "old content intact");
	is_int(count_tmp(dfd), 0, "refused write leaves no temporary file");
	h.rc = 0;
	is_int(store_write(dfd, "hook.json", "after", 5, hook, &h, err,
	    sizeof(err)), STORE_OK, "hook returning 0 lets the write through");
	ok(holds(dfd, "hook.json", "after"), "and the file is replaced");
}

static void
test_json_load(void)
{
	yajl_val	 v = NULL;

	put("bad.json", "{\"a\":", 5);
	is_int(store_json_load(dfd, "bad.json", &v, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "invalid JSON is STORE_ERR_CORRUPT");
	ok(v == NULL && mentions("bad.json") && mentions("untouched"),
	    "with a sentence naming the file");
	ok(holds(dfd, "bad.json", "{\"a\":"), "and the file untouched");
	put("arr.json", "[1,2]", 5);
	is_int(store_json_load(dfd, "arr.json", &v, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "a JSON array is STORE_ERR_CORRUPT");
	/* A crash can leave a file of NUL bytes; it is not an empty one. */
	put("nul.json", "\0\0\0\0", 4);
	is_int(store_json_load(dfd, "nul.json", &v, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "a file of NUL bytes is STORE_ERR_CORRUPT");
	put("empty.json", "", 0);
	is_int(store_json_load(dfd, "empty.json", &v, err, sizeof(err)),
	    STORE_OK, "empty file loads");
	ok(YAJL_IS_OBJECT(v) && v->u.object.len == 0, "as {}");
	json_free_secret(v);
	put("ws.json", " \r\n\t \n", 6);
	v = NULL;
	ok(store_json_load(dfd, "ws.json", &v, err, sizeof(err)) == STORE_OK &&
	    YAJL_IS_OBJECT(v) && v->u.object.len == 0, "whitespace file is {}");
	json_free_secret(v);
	v = NULL;
	ok(store_json_load(dfd, "absent.json", &v, err, sizeof(err)) ==
	    STORE_OK && YAJL_IS_OBJECT(v), "missing file is {}");
	json_free_secret(v);
	put("good.json", "{\"t\":\"x\"}", 9);
	v = NULL;
	ok(store_json_load(dfd, "good.json", &v, err, sizeof(err)) ==
	    STORE_OK && json_obj_str(v, "t") != NULL, "object loads");
	json_free_secret(v);
}

static void
test_symlink(void)
{
	char	*buf = NULL;
	size_t	 len = 0;
	yajl_val v = NULL;

	put("target.json", "{\"secret\":1}", 12);
	if (symlinkat("target.json", dfd, "link.json") == -1)
		abort();
	ok(store_read(dfd, "link.json", &buf, &len, err, sizeof(err)) !=
	    STORE_OK && buf == NULL, "store_read refuses a symlink");
	ok(mentions("link.json"), "with a sentence naming it");
	ok(store_json_load(dfd, "link.json", &v, err, sizeof(err)) !=
	    STORE_OK && v == NULL, "store_json_load refuses it too");
	is_int(store_write(dfd, "link.json", "{}", 2, NULL, NULL, err,
	    sizeof(err)), STORE_OK, "store_write over a symlink");
	ok(holds(dfd, "target.json", "{\"secret\":1}"),
	    "replaces the link, never writes through it");
	ok(is_regular("link.json"), "the link became a regular file");
}

static void
on_alarm(int sig)
{
	(void)sig;
}

static void
test_not_regular(void)
{
	struct sigaction	 sa;
	char			*buf = NULL;
	size_t			 len = 0;
	int			 fd;

	fd = openat(dfd, "huge.json", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1 || ftruncate(fd, CD_STORE_FILE_MAX + 1) == -1)
		abort();
	is_int(store_read(dfd, "huge.json", &buf, &len, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "a file over CD_STORE_FILE_MAX is CORRUPT");
	ok(buf == NULL && mentions("huge.json"), "named in the sentence");
	if (ftruncate(fd, CD_STORE_FILE_MAX) == -1)
		abort();
	close(fd);
	ok(store_read(dfd, "huge.json", &buf, &len, err, sizeof(err)) ==
	    STORE_OK && len == CD_STORE_FILE_MAX, "exactly the limit is read");
	free(buf);
	mkdirat(dfd, "adir", 0700);
	is_int(store_read(dfd, "adir", &buf, &len, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "a directory is CORRUPT");
	/* Opening a FIFO for reading waits for a writer: never let it. If
	 * it does, the alarm interrupts the open (no SA_RESTART) and the
	 * check fails instead of hanging. */
	mkfifoat(dfd, "fifo.json", 0600);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(5);
	is_int(store_read(dfd, "fifo.json", &buf, &len, err, sizeof(err)),
	    STORE_ERR_CORRUPT, "a FIFO is CORRUPT, without hanging");
	alarm(0);
}

static void
test_remove(void)
{
	struct hook	 h = { 0, -1, 0, 0 };

	is_int(store_remove(dfd, "never.json", NULL, NULL, err, sizeof(err)),
	    STORE_OK, "removing a missing file is OK");
	put("gone.json", "x", 1);
	is_int(store_remove(dfd, "gone.json", hook, &h, err, sizeof(err)),
	    STORE_ERR_LOG, "remove vetoed by the hook");
	ok(holds(dfd, "gone.json", "x"), "file still there");
	is_int(store_remove(dfd, "gone.json", NULL, NULL, err, sizeof(err)),
	    STORE_OK, "remove an existing file");
	ok(faccessat(dfd, "gone.json", F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT, "it is gone");
}

/*
 * The child, while the parent holds the lock: a non-blocking flock on a
 * fresh open of the directory must fail; then store_lock() must wait,
 * and when it returns the marker the parent creates just before it
 * unlocks must exist. Writes two result bytes to out.
 */
static void
lock_child(int held, int out)
{
	char	 r[2];
	int	 fd, lk;

	close(held);	/* the parent's description stays locked */
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r[0] = fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == -1 &&
	    errno == EWOULDBLOCK ? 'Y' : 'N';
	close(fd);
	if (write(out, r, 1) != 1)
		_exit(1);
	lk = store_lock(dfd);
	r[1] = lk != -1 && faccessat(dfd, "unlocked.marker", F_OK, 0) == 0 ?
	    'Y' : 'N';
	store_unlock(lk);
	_exit(write(out, r + 1, 1) == 1 ? 0 : 1);
}

static void
test_lock(void)
{
	char	 r[2] = { 0, 0 };
	int	 p[2], lk, st = -1;
	pid_t	 pid;

	lk = store_lock(dfd);
	ok(lk != -1, "store_lock");
	if (pipe(p) == -1 || (pid = fork()) == -1)
		abort();
	if (pid == 0)
		lock_child(lk, p[1]);
	close(p[1]);
	ok(read(p[0], r, 1) == 1 && r[0] == 'Y',
	    "another process cannot take the lock meanwhile");
	put("unlocked.marker", "", 0);
	store_unlock(lk);
	ok(read(p[0], r + 1, 1) == 1 && r[1] == 'Y',
	    "its store_lock waited until the unlock");
	close(p[0]);
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock child exited cleanly");
	lk = store_lock(dfd);
	ok(lk != -1, "lock free again once the child unlocked");
	store_unlock(lk);
}

/* What the ENOSPC child reports; 'Y' per passed check. */
struct nospace {
	char	 setup;		/* 'Y', or 'S' to skip */
	char	 result;	/* store_write gave STORE_ERR_NOSPACE */
	char	 intact;	/* the old file is untouched */
	char	 notmp;		/* no temporary file left */
	char	 why[120];
};

static void
fill(int dirfd)
{
	char	 block[4096];
	int	 fd;

	memset(block, 'f', sizeof(block));
	fd = openat(dirfd, "filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	while (fd != -1 && write(fd, block, sizeof(block)) > 0)
		;
	if (fd != -1)
		close(fd);
}

static void
nospace_child(const char *mnt, int out)
{
	struct nospace	 r;
	static char	 big[16384];
	int		 fd;

	memset(&r, 'N', sizeof(r));
	r.why[0] = '\0';
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700") == -1) {
		r.setup = 'S';
		snprintf(r.why, sizeof(r.why), "cannot mount a tmpfs: %s",
		    strerror(errno));
		goto out;
	}
	if ((fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    store_write(fd, "f.json", "old", 3, NULL, NULL, err,
	    sizeof(err)) != STORE_OK)
		goto out;
	r.setup = 'Y';
	fill(fd);
	memset(big, 'b', sizeof(big));
	r.result = store_write(fd, "f.json", big, sizeof(big), NULL, NULL,
	    err, sizeof(err)) == STORE_ERR_NOSPACE && strstr(err, "f.json") ?
	    'Y' : 'N';
	r.intact = holds(fd, "f.json", "old") ? 'Y' : 'N';
	r.notmp = count_tmp(fd) == 0 ? 'Y' : 'N';
out:
	_exit(write(out, &r, sizeof(r)) == sizeof(r) ? 0 : 1);
}

/* The vault's rewrite of mcp-tokens.json: put, delete, and a text that
 * indentation would grow past what store_read() takes back. */
static void
test_json_edit(void)
{
	yajl_val	 doc;
	char		*out, *big;
	size_t		 len, n = 0;

	ok(store_json_parse("{\"a\":1}", 7, "t.json", &doc, err,
	    sizeof(err)) == STORE_OK, "parse an object");
	ok(store_json_edit(doc, "b", json_new_int(2), &out, &len, err,
	    sizeof(err)) == STORE_OK && strcmp(out, "{\n  \"a\": 1,\n  "
	    "\"b\": 2\n}\n") == 0 && len == strlen(out), "put appends");
	free(out);
	ok(store_json_edit(doc, "a", NULL, &out, &len, err, sizeof(err)) ==
	    STORE_OK && strcmp(out, "{\n  \"b\": 2\n}\n") == 0, "delete");
	free(out);
	json_free_secret(doc);
	ok(store_json_parse(" \n", 2, "t.json", &doc, err, sizeof(err)) ==
	    STORE_OK && doc->u.object.len == 0, "white space is {}");
	json_free_secret(doc);
	ok(store_json_parse("[]", 2, "t.json", &doc, err, sizeof(err)) ==
	    STORE_ERR_CORRUPT && doc == NULL && strstr(err, "t.json") != NULL,
	    "an array is refused, naming the file");
	/* 31 levels deep, each "1," of the innermost array becomes a line
	 * of 64 bytes: far less than the limit compact, far more indented. */
	if ((big = malloc(CD_STORE_FILE_MAX / 16)) == NULL)
		abort();
	n += (size_t)snprintf(big, 16, "{\"a\":");
	for (int i = 0; i < 30; i++)
		big[n++] = '[';
	big[n++] = '[';
	while (n < CD_STORE_FILE_MAX / 16 - 64) {
		big[n++] = '1';
		big[n++] = ',';
	}
	big[n++] = '1';
	for (int i = 0; i < 31; i++)
		big[n++] = ']';
	big[n++] = '}';
	ok(store_json_parse(big, n, "t.json", &doc, err, sizeof(err)) ==
	    STORE_OK, "a deep file within the limit parses");
	ok(store_json_edit(doc, "b", json_new_int(2), &out, &len, err,
	    sizeof(err)) == STORE_ERR_TOO_LARGE && out == NULL,
	    "a rewrite past CD_STORE_FILE_MAX is refused");
	json_free_secret(doc);
	free(big);
}

static void
test_nospace(void)
{
	static const char	*names[] = {
		"ENOSPC: store_write gives STORE_ERR_NOSPACE, naming the file",
		"ENOSPC: the old file is intact",
		"ENOSPC: no temporary file left",
	};
	struct nospace		 r;
	char			 mnt[sizeof(dir) + 8];
	int			 p[2], st;
	pid_t			 pid;

	memset(&r, 'N', sizeof(r));
	snprintf(r.why, sizeof(r.why), "not running as root");
	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	if (geteuid() == 0) {
		if (mkdir(mnt, 0700) == -1 || pipe(p) == -1 ||
		    (pid = fork()) == -1)
			abort();
		if (pid == 0)
			nospace_child(mnt, p[1]);
		close(p[1]);
		if (read(p[0], &r, sizeof(r)) != sizeof(r))
			r.setup = 'N';
		close(p[0]);
		waitpid(pid, &st, 0);
		r.why[sizeof(r.why) - 1] = '\0';
	} else
		r.setup = 'S';
	if (r.setup == 'S') {
		for (size_t i = 0; i < 3; i++)
			printf("ok %d - %s # SKIP %s\n", ++tap_n, names[i],
			    r.why);
		return;
	}
	ok(r.setup == 'Y', "ENOSPC: tiny tmpfs mounted privately");
	ok(r.result == 'Y', names[0]);
	ok(r.intact == 'Y', names[1]);
	ok(r.notmp == 'Y', names[2]);
}

/* Remove the test directory (one level, plus adir and full). */
static void
cleanup(void)
{
	struct dirent	*e;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, e->d_name, 0) == -1)
			unlinkat(dfd, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	close(dfd);
	rmdir(dir);
}

/* store_sweep() removes exactly our stale temporary files for a name. */
static void
test_sweep(void)
{
	static const char *const gone[] = {
		".sweep.json.0123456789ab.tmp", ".sweep.json.ffffffffffff.tmp",
	};
	static const char *const kept[] = {
		"sweep.json", ".sweep.json.0123456789AB.tmp",
		".sweep.json.0123.tmp", ".sweep.json.0123456789ab.tmpx",
		".other.json.0123456789ab.tmp", ".sweep.json.0123456789abc.tmp",
		"sweep.json.0123456789ab.tmp",
	};
	int n = 0;

	for (size_t i = 0; i < 2; i++)
		put(gone[i], "secret", 6);
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		put(kept[i], "keep", 4);
	is_int(store_sweep(dfd, "sweep.json"), 2, "sweep removes two files");
	for (size_t i = 0; i < 2; i++)
		n += faccessat(dfd, gone[i], F_OK, 0) == 0;
	is_int(n, 0, "both stale temporary files are gone");
	n = 0;
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		n += holds(dfd, kept[i], "keep");
		unlinkat(dfd, kept[i], 0);
	}
	is_int(n, (int)(sizeof(kept) / sizeof(kept[0])),
	    "every other name is left alone");
	is_int(store_sweep(dfd, "sweep.json"), 0, "a second sweep finds none");
}

int
main(void)
{
	if (mkdtemp(dir) == NULL ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		perror("mkdtemp");
		return 1;
	}
	test_read_missing();
	test_write_create();
	test_write_replace();
	test_commit_hook();
	test_json_load();
	test_json_edit();
	test_symlink();
	test_not_regular();
	test_remove();
	test_lock();
	test_nospace();
	test_sweep();
	cleanup();
	return tap_done();
}
