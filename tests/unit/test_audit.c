/*
 * Unit tests for the IPC log (lib/audit.c): line layout and escaping,
 * fingerprints, the hash chain across reopen, what the verifier reports
 * for each kind of tampering, repair of a torn tail, and failing closed
 * when the log cannot be written.
 *
 * Which line the verifier names: it reports the first line that does not
 * fit the lines before it. An edited line N still parses and still has
 * the right seq and prev, so it is line N+1 whose prev no longer matches
 * that is reported. A removed or reordered line shows first as a seq gap
 * at its position. Limits of a hash chain on its own, pinned down by
 * checks below so that nobody relies on more: an edit of the last line
 * that keeps it well formed is not detected (nothing follows it to carry
 * its hash), and neither is cutting whole lines off the end, or whole
 * rotated files off the start of a series. Cutting lines off the start of
 * a file is detected unless the cut ends at the LOG_REOPENED line a
 * rotation writes. Catching the rest needs the last seq and hash kept
 * elsewhere; within a rotated series, the next file keeps them for the
 * file before it.
 *
 * Set TEST_AUDIT_KEEP=1 to keep the temporary directory (its path is
 * printed) and run connectorctl on the logs left in it.
 */

#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "tap.h"

#define LOGBUF_MAX (64 * 1024)

static int dirfd_;
static char dir_[] = "/tmp/test_audit.XXXXXX";
static const uint8_t key_[AUDIT_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static char buf_[LOGBUF_MAX];

static void
rec_init(struct audit_rec *r, const char *type, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->peer = "http";
	r->pid = 4242;
	r->type = type;
	r->connector = "github";
	r->outcome = "ok";
	r->detail = detail;
}

static size_t
file_read(const char *name)
{
	ssize_t n = 0;
	int fd;

	buf_[0] = '\0';
	if ((fd = openat(dirfd_, name, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf_, sizeof(buf_) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf_[n] = '\0';
	return n;
}

static void
file_write(const char *name, const char *p, size_t len)
{
	int fd;

	fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1 || write(fd, p, len) != (ssize_t)len)
		printf("# cannot write %s\n", name);
	if (fd != -1)
		close(fd);
}

static int
verify(const char *name, unsigned long *n, unsigned long *bad, char *msg,
    size_t msglen)
{
	int fd, rv;

	if ((fd = openat(dirfd_, name, O_RDONLY)) == -1)
		return -2;
	rv = audit_verify_fd(fd, n, bad, msg, msglen);
	close(fd);
	if (rv != 0)
		printf("# %s: %s\n", name, msg);
	return rv;
}

/* Offset of the start of line no (1-based) in buf_, or -1. */
static long
line_start(int no)
{
	char *p = buf_;

	while (--no > 0)
		if ((p = strchr(p, '\n')) == NULL)
			return -1;
		else
			p++;
	return p - buf_;
}

static int
lines_count(void)
{
	int n = 0;
	char *p;

	for (p = buf_; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	return n;
}

static struct audit *
log_open(const char *name)
{
	char err[256];
	struct audit *a;

	if ((a = audit_open(dirfd_, name, key_, sizeof(key_), err,
	    sizeof(err))) == NULL)
		printf("# %s\n", err);
	return a;
}

/* The descriptor audit_open keeps for appending, found by inode. */
static int
log_fd_find(const char *name)
{
	struct stat want, st;
	int fd, fl;

	if (fstatat(dirfd_, name, &want, 0) == -1)
		return -1;
	for (fd = 3; fd < 256; fd++) {
		if (fstat(fd, &st) == -1 || st.st_ino != want.st_ino ||
		    st.st_dev != want.st_dev)
			continue;
		if ((fl = fcntl(fd, F_GETFL)) != -1 && (fl & O_APPEND))
			return fd;
	}
	return -1;
}

static void
test_basic(void)
{
	static const char line1[] = "\",\"prev\":\"00000000000000000000"
	    "00000000000000000000000000000000000000000000\",\"peer\":\"http\","
	    "\"job\":0,\"kind\":null,\"pid\":4242,\"type\":\"CONNECTOR_LIST\","
	    "\"connector\":null,\"remote\":null,\"outcome\":\"ok\","
	    "\"detail\":null,\"fp\":{}}\n";
	struct audit_rec r;
	struct audit *a;
	struct stat st;
	char fp1[33], fp2[33], want[512], msg[256];
	unsigned long n, bad;
	long o;

	ok((a = log_open("good.log")) != NULL, "open creates an empty log");
	ok(fstatat(dirfd_, "good.log", &st, 0) == 0 &&
	    (st.st_mode & 0777) == 0600, "log is created mode 0600");
	rec_init(&r, "CONNECTOR_LIST", NULL);
	r.connector = NULL;
	is_int(audit_append(a, &r), 0, "append line 1");
	rec_init(&r, "TOKEN_SAVE", "say \"hi\" \\ then\n\t\x01\x7f end");
	r.peer = "worker";
	r.job = 7;
	r.kind = "check";
	r.remote = "gdrive";
	r.fp[0] = (struct audit_secret){ "token", "ghp_SECRETSECRET", 16 };
	r.fp[1] = (struct audit_secret){ "refresh", "rt_HIDDENVALUE", 14 };
	r.nfp = 2;
	is_int(audit_append(a, &r), 0, "append line 2 with fingerprints");
	rec_init(&r, "TOKEN_DELETE", "bad \xff byte and caf\xc3\xa9");
	r.outcome = "denied";
	is_int(audit_append(a, &r), 0, "append line 3 (invalid UTF-8)");
	audit_close(a);

	is_int(verify("good.log", &n, &bad, msg, sizeof(msg)), 0,
	    "three fresh lines verify");
	is_int(n, 3, "verify counts three lines");
	file_read("good.log");
	ok(strncmp(buf_, "{\"seq\":1,\"time\":\"", 17) == 0 &&
	    strncmp(buf_ + 41, line1, sizeof(line1) - 1) == 0,
	    "line 1 has the documented layout, prev zeros, empty fp");
	ok(buf_[27] == 'T' && buf_[40] == 'Z' && buf_[36] == '.',
	    "time is ISO-8601 UTC with milliseconds");
	audit_fingerprint(key_, sizeof(key_), "ghp_SECRETSECRET", 16, fp1);
	audit_fingerprint(key_, sizeof(key_), "rt_HIDDENVALUE", 14, fp2);
	snprintf(want, sizeof(want), "\"outcome\":\"ok\",\"detail\":\"say "
	    "\\\"hi\\\" \\\\ then\\u000a\\u0009\\u0001\\u007f end\","
	    "\"fp\":{\"token\":\"%s\",\"refresh\":\"%s\"}}\n", fp1, fp2);
	ok(strstr(buf_, want) != NULL, "detail escaped, fingerprints in order");
	ok(strstr(buf_, "\"peer\":\"worker\",\"job\":7,\"kind\":\"check\","
	    "\"pid\":4242,\"type\":\"TOKEN_SAVE\",\"connector\":\"github\","
	    "\"remote\":\"gdrive\"") != NULL, "worker fields in order");
	ok(strstr(buf_, "SECRETSECRET") == NULL &&
	    strstr(buf_, "HIDDENVALUE") == NULL, "no raw secret in the file");
	ok(strstr(buf_, "\"detail\":\"bad \\ufffd byte and caf\xc3\xa9\"") !=
	    NULL, "invalid UTF-8 replaced, valid UTF-8 kept");
	o = line_start(2);
	ok(o > 0 && strncmp(buf_ + o, "{\"seq\":2,", 9) == 0, "seq grows");
}

static void
test_reopen(void)
{
	struct audit_rec r;
	struct audit *a, *b;
	char err[256], msg[256];
	unsigned long n, bad;
	long o;

	ok((a = log_open("good.log")) != NULL, "reopen an existing log");
	b = audit_open(dirfd_, "good.log", key_, sizeof(key_), err,
	    sizeof(err));
	ok(b == NULL && strstr(err, "another process") != NULL,
	    "a second writer is locked out");
	audit_close(b);
	rec_init(&r, "SESSION_START", "after reopen");
	is_int(audit_append(a, &r), 0, "append after reopen");
	audit_close(a);
	file_read("good.log");
	o = line_start(4);
	ok(o > 0 && strncmp(buf_ + o, "{\"seq\":4,", 9) == 0,
	    "reopen continues seq");
	is_int(verify("good.log", &n, &bad, msg, sizeof(msg)), 0,
	    "reopen continues the chain");
	is_int(n, 4, "four lines verified");
}

/* good.log has four lines here; each case damages a copy. */
static void
test_tamper(void)
{
	char orig[LOGBUF_MAX], tmp[LOGBUF_MAX], msg[256];
	size_t len, l2, l3, l4;
	unsigned long n, bad;
	char *d;

	len = file_read("good.log");
	memcpy(orig, buf_, len + 1);
	l2 = line_start(2);
	l3 = line_start(3);
	l4 = line_start(4);

	/* An edit inside line 2 shows as line 3's prev mismatch. */
	memcpy(tmp, orig, len);
	if ((d = strstr(tmp + l2, "say")) != NULL)
		d[0] = 'S';
	file_write("edit2.log", tmp, len);
	is_int(verify("edit2.log", &n, &bad, msg, sizeof(msg)), 1,
	    "edited line 2 is detected");
	ok(bad == 3 && n == 2 && strcmp(msg, "line 3: prev does not match "
	    "the SHA-256 of line 2 (a line was edited, removed or reordered)")
	    == 0, "edited line 2 is reported at line 3");

	/* The documented limit: an edit of the last line goes unseen. */
	memcpy(tmp, orig, len);
	if ((d = strstr(tmp + l4, "after")) != NULL)
		d[0] = 'A';
	file_write("editlast.log", tmp, len);
	is_int(verify("editlast.log", &n, &bad, msg, sizeof(msg)), 0,
	    "limit: a well-formed edit of the last line is not detected");

	/* Remove line 2. */
	memcpy(tmp, orig, l2);
	memcpy(tmp + l2, orig + l3, len - l3);
	file_write("del2.log", tmp, len - (l3 - l2));
	is_int(verify("del2.log", &n, &bad, msg, sizeof(msg)), 1,
	    "removed line is detected");
	ok(bad == 2 && strcmp(msg, "line 2: seq is 3, expected 2") == 0,
	    "removed line 2 is reported as a seq gap at line 2");

	/* Swap lines 2 and 3. */
	memcpy(tmp, orig, l2);
	memcpy(tmp + l2, orig + l3, l4 - l3);
	memcpy(tmp + l2 + (l4 - l3), orig + l2, l3 - l2);
	memcpy(tmp + l4, orig + l4, len - l4);
	file_write("swap.log", tmp, len);
	is_int(verify("swap.log", &n, &bad, msg, sizeof(msg)), 1,
	    "reordered lines are detected");
	is_int(bad, 2, "reordered lines are reported at line 2");

	/* The documented limits: cutting lines off either end. */
	file_write("trunc.log", orig, l3);
	is_int(verify("trunc.log", &n, &bad, msg, sizeof(msg)), 0,
	    "limit: lines cut off the end are not detected");
	file_write("headcut.log", orig + l2, len - l2);
	ok(verify("headcut.log", &n, &bad, msg, sizeof(msg)) == 1 &&
	    bad == 1 && strstr(msg, "cut off the start") != NULL,
	    "lines cut off the start are detected (no LOG_REOPENED line)");

}

/* Lines that are damaged in themselves, not just out of chain. */
static void
test_tamper_form(void)
{
	char orig[LOGBUF_MAX], tmp[LOGBUF_MAX], msg[256];
	unsigned long n, bad;
	size_t len, l2, l3;

	len = file_read("good.log");
	memcpy(orig, buf_, len + 1);
	l2 = line_start(2);
	l3 = line_start(3);

	/* Line 1 with seq 1 must have a zero prev. */
	memcpy(tmp, orig, len);
	tmp[51] = tmp[51] == '1' ? '2' : '1';
	file_write("prev1.log", tmp, len);
	ok(verify("prev1.log", &n, &bad, msg, sizeof(msg)) == 1 && bad == 1,
	    "seq 1 with a non-zero prev is broken at line 1");

	/* A comment after the object: valid to a lax parser, not to us. */
	memcpy(tmp, orig, l2 - 1);
	memcpy(tmp + l2 - 1, "/**/\n", 5);
	memcpy(tmp + l2 + 4, orig + l2, len - l2);
	file_write("comment.log", tmp, len + 4);
	ok(verify("comment.log", &n, &bad, msg, sizeof(msg)) == 1 &&
	    bad == 1 && strstr(msg, "not valid JSON") != NULL,
	    "strict JSON: a comment breaks the line");

	/* A NUL byte hides the rest of the line from a C string parser. */
	memcpy(tmp, orig, len);
	tmp[l2 - 2] = '\0';
	file_write("nul.log", tmp, len);
	ok(verify("nul.log", &n, &bad, msg, sizeof(msg)) == 1 && bad == 1,
	    "a NUL byte breaks the line");

	memcpy(tmp, orig, len);
	memcpy(tmp + l3, "{\"seq\":3,\"prev\":", 16);
	file_write("order.log", tmp, len);
	ok(verify("order.log", &n, &bad, msg, sizeof(msg)) == 1 && bad == 3,
	    "keys out of order break the line");
}

static void
test_verify_edges(void)
{
	char tmp[AUDIT_LINE_MAX + 16], msg[256];
	unsigned long n = 99, bad = 99;
	int fd;

	file_read("good.log");
	file_write("empty.log", "", 0);
	ok(verify("empty.log", &n, &bad, msg, sizeof(msg)) == 0 && n == 0,
	    "an empty log verifies with 0 lines");
	file_write("torn.log", buf_, strlen(buf_) - 1);
	ok(verify("torn.log", &n, &bad, msg, sizeof(msg)) == 1 && bad == 4 &&
	    strstr(msg, "torn") != NULL, "a missing final newline is torn");
	memset(tmp, 'x', sizeof(tmp));
	tmp[sizeof(tmp) - 1] = '\n';
	file_write("long.log", tmp, sizeof(tmp));
	ok(verify("long.log", &n, &bad, msg, sizeof(msg)) == 1 && bad == 1 &&
	    strstr(msg, "longer than") != NULL, "an overlong line is broken");
	fd = open(dir_, O_RDONLY | O_DIRECTORY);
	is_int(audit_verify_fd(fd, &n, &bad, msg, sizeof(msg)), -1,
	    "a read error returns -1");
	close(fd);
}

static void
test_torn(void)
{
	static const char half[] = "{\"seq\":5,\"time\":\"2026-";
	char msg[256], err[256], want[128];
	unsigned long n, bad;
	struct audit *a;
	size_t len;
	long o;

	snprintf(want, sizeof(want), "\"detail\":\"dropped %zu bytes of a "
	    "torn final line\"", sizeof(half) - 1);
	len = file_read("good.log");
	memcpy(buf_ + len, half, sizeof(half) - 1);
	file_write("repair.log", buf_, len + sizeof(half) - 1);
	ok((a = log_open("repair.log")) != NULL, "open a log with torn tail");
	audit_close(a);
	file_read("repair.log");
	o = line_start(5);
	ok(lines_count() == 5 && o > 0 &&
	    strncmp(buf_ + o, "{\"seq\":5,", 9) == 0 &&
	    strstr(buf_ + o, "\"peer\":\"vault\"") != NULL &&
	    strstr(buf_ + o, "\"type\":\"LOG_RECOVERED\"") != NULL &&
	    strstr(buf_ + o, want) != NULL,
	    "torn tail replaced by LOG_RECOVERED");
	ok(verify("repair.log", &n, &bad, msg, sizeof(msg)) == 0 && n == 5,
	    "repaired log verifies");

	file_write("onlytorn.log", half, sizeof(half) - 1);
	ok((a = log_open("onlytorn.log")) != NULL, "open a lone torn line");
	audit_close(a);
	file_read("onlytorn.log");
	ok(strncmp(buf_, "{\"seq\":1,", 9) == 0 && lines_count() == 1 &&
	    verify("onlytorn.log", &n, &bad, msg, sizeof(msg)) == 0,
	    "lone torn line becomes a fresh log");

	len = file_read("good.log");
	memcpy(buf_ + len, "garbage\n", 8);
	file_write("badtail.log", buf_, len + 8);
	a = audit_open(dirfd_, "badtail.log", key_, sizeof(key_), err,
	    sizeof(err));
	printf("# %s\n", err);
	ok(a == NULL && strstr(err, "badtail.log") != NULL &&
	    strstr(err, "not valid JSON") != NULL,
	    "an unparsable last line fails the open, naming the file");
	audit_close(a);
	len = file_read("badtail.log");
	ok(len > 0 && strstr(buf_, "garbage\n") != NULL,
	    "a log refused is left untouched");
}

static void
test_fail_closed(void)
{
	struct rlimit saved, rl;
	struct audit_rec r;
	struct stat st0, st1;
	char msg[256];
	unsigned long n, bad;
	struct audit *a;
	int err, fd, keep, ro, rv;

	if ((a = log_open("full.log")) == NULL)
		return;
	rec_init(&r, "PING", NULL);
	is_int(audit_append(a, &r), 0, "append before the failures");

	/* A short write then EFBIG: exercises the cut-back of half a line.
	 * RLIMIT_FSIZE holds for root too, unlike permissions. */
	fstatat(dirfd_, "full.log", &st0, 0);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &saved);
	rl = saved;
	rl.rlim_cur = st0.st_size + 40;
	setrlimit(RLIMIT_FSIZE, &rl);
	errno = 0;
	rv = audit_append(a, &r);
	err = errno;
	/* Restore first: stdout may be a file under the same limit. */
	setrlimit(RLIMIT_FSIZE, &saved);
	ok(rv == -1 && err == EFBIG, "append past RLIMIT_FSIZE fails");
	fstatat(dirfd_, "full.log", &st1, 0);
	is_int(st1.st_size, st0.st_size, "the half-written line is cut off");

	/* A descriptor that cannot be written at all. */
	fd = log_fd_find("full.log");
	keep = dup(fd);
	ro = openat(dirfd_, "full.log", O_RDONLY);
	dup2(ro, fd);
	errno = 0;
	rv = audit_append(a, &r);
	ok(fd != -1 && rv == -1 && errno == EBADF,
	    "append on a read-only descriptor fails with EBADF");
	dup2(keep, fd);
	close(keep);
	close(ro);

	r.type = "AFTER";
	is_int(audit_append(a, &r), 0, "append works again afterwards");
	audit_close(a);
	file_read("full.log");
	ok(lines_count() == 2 && strncmp(buf_ + line_start(2),
	    "{\"seq\":2,", 9) == 0, "failed appends did not advance seq");
	ok(verify("full.log", &n, &bad, msg, sizeof(msg)) == 0 && n == 2,
	    "log verifies after failed appends");
}

static void
test_too_long(void)
{
	char big[10000], msg[256];
	struct audit_rec r;
	struct audit *a;
	unsigned long n, bad;
	size_t i, len;
	char *nl;

	if ((a = log_open("long.log2")) == NULL)
		return;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rec_init(&r, "LONG", big);
	is_int(audit_append(a, &r), 0, "an overlong detail is cut, not failed");
	for (i = 0; i + 2 < sizeof(big); i += 2) {
		big[i] = '\x01';
		big[i + 1] = 'y';
	}
	is_int(audit_append(a, &r), 0, "cut between escapes");
	for (i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	is_int(audit_append(a, &r), 0, "cut between UTF-8 characters");
	memset(big, 'c', 5000);
	big[5000] = '\0';
	rec_init(&r, "LONG", NULL);
	r.connector = big;
	errno = 0;
	ok(audit_append(a, &r) == -1 && errno == EMSGSIZE,
	    "an overlong other field fails with EMSGSIZE");
	r.connector = NULL;
	r.peer = NULL;
	errno = 0;
	ok(audit_append(a, &r) == -1 && errno == EINVAL,
	    "a record without peer fails with EINVAL");
	rec_init(&r, "SHORT", "fine");
	is_int(audit_append(a, &r), 0, "append after the refusals");
	audit_close(a);

	len = file_read("long.log2");
	nl = strchr(buf_, '\n');
	ok(nl != NULL && nl - buf_ + 1 == AUDIT_LINE_MAX &&
	    strncmp(nl - 16, "xxx...\",\"fp\":{}}", 16) == 0,
	    "the cut line is exactly AUDIT_LINE_MAX bytes and ends in ...");
	ok(lines_count() == 4 && len > 0 &&
	    strncmp(buf_ + line_start(4), "{\"seq\":4,", 9) == 0,
	    "refused appends did not advance seq");
	ok(verify("long.log2", &n, &bad, msg, sizeof(msg)) == 0 && n == 4,
	    "cut lines verify (no split escape or character)");
}

/*
 * long.log2 is longer than the tail window now. A maximal line followed by
 * the longest torn line we could leave is the most the tail must hold.
 */
static void
test_big_tail(void)
{
	char big[10000], msg[256];
	struct audit_rec r;
	struct audit *a;
	unsigned long n, bad;
	int fd;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rec_init(&r, "LONG", big);
	if ((a = log_open("long.log2")) == NULL)
		return;
	is_int(audit_append(a, &r), 0, "append a full line after reopen");
	audit_close(a);
	if ((fd = openat(dirfd_, "long.log2", O_WRONLY | O_APPEND)) != -1) {
		memset(big, 'z', AUDIT_LINE_MAX - 1);
		if (write(fd, big, AUDIT_LINE_MAX - 1) == -1)
			printf("# write: %s\n", strerror(errno));
		close(fd);
	}
	ok((a = log_open("long.log2")) != NULL,
	    "a torn line of AUDIT_LINE_MAX - 1 bytes after a full line");
	audit_close(a);
	ok(verify("long.log2", &n, &bad, msg, sizeof(msg)) == 0 && n == 6,
	    "large log with repaired tail verifies");
}

static void
test_open_refusals(void)
{
	char err[256], big[3 * AUDIT_LINE_MAX];
	struct audit *a;

	symlinkat("good.log", dirfd_, "link.log");
	a = audit_open(dirfd_, "link.log", key_, sizeof(key_), err,
	    sizeof(err));
	ok(a == NULL, "a symlink is refused");
	audit_close(a);
	a = audit_open(dirfd_, "short.log", key_, 16, err, sizeof(err));
	ok(a == NULL && strstr(err, "key") != NULL, "a short key is refused");
	audit_close(a);

	/* More bytes without a newline than we ever write at once: not a
	 * torn line of ours, so not ours to cut off. */
	memset(big, 'y', sizeof(big));
	file_write("bigtorn.log", big, AUDIT_LINE_MAX);
	a = audit_open(dirfd_, "bigtorn.log", key_, sizeof(key_), err,
	    sizeof(err));
	ok(a == NULL && strstr(err, "without a newline") != NULL &&
	    file_read("bigtorn.log") == AUDIT_LINE_MAX,
	    "a tail too long to be torn is refused and left alone");
	audit_close(a);
	big[sizeof(big) - 1] = '\n';
	file_write("biglast.log", big, sizeof(big));
	a = audit_open(dirfd_, "biglast.log", key_, sizeof(key_), err,
	    sizeof(err));
	ok(a == NULL && strstr(err, "longer than") != NULL,
	    "an overlong last line is refused");
	audit_close(a);
}

/*
 * Verify files in order as one series; returns like audit_verify_next,
 * with the index of the file that broke (or failed) in *which and the
 * chain as the series left it in *c.
 */
static int
verify_series(const char *const *names, size_t count, struct audit_chain *c,
    size_t *which, unsigned long *bad, char *msg, size_t msglen)
{
	unsigned long n;
	size_t i;
	int fd, rv = 0;

	audit_chain_init(c);
	for (i = 0; i < count && rv == 0; i++) {
		*which = i;
		if ((fd = openat(dirfd_, names[i], O_RDONLY)) == -1)
			return -2;
		rv = audit_verify_next(fd, c, &n, bad, msg, msglen);
		close(fd);
	}
	if (rv != 0)
		printf("# %s: %s\n", names[*which], msg);
	return rv;
}

static struct audit *
rot_append(struct audit *a, const char *type, int count)
{
	struct audit_rec r;

	rec_init(&r, type, NULL);
	while (a != NULL && count-- > 0)
		if (audit_append(a, &r) == -1)
			printf("# append: %s\n", strerror(errno));
	return a;
}

/* The last line of name, without its newline, into out. */
static void
last_line(const char *name, char *out, size_t outlen)
{
	size_t len = file_read(name);
	char *p;

	out[0] = '\0';
	if (len == 0)
		return;
	buf_[len - 1] = '\0';
	p = strrchr(buf_, '\n');
	p = p != NULL ? p + 1 : buf_;
	if (strlen(p) < outlen)
		memcpy(out, p, strlen(p) + 1);
}

/* rename, then reopen: the new file continues the chain in memory. */
static void
test_rotate(void)
{
	static const char *const series[] = { "rot.log.2", "rot.log.1",
	    "rot.log" };
	static const char *const pair[] = { "rot.log.1", "rot.log" };
	static const char *const wrong[] = { "rot.log", "rot.log.1" };
	char err[256], msg[256], want[128];
	struct audit_chain c;
	struct audit *a;
	struct stat st0, st1;
	unsigned long n, bad;
	size_t which;
	int rotated = -1;

	if ((a = rot_append(log_open("rot.log"), "FIRST", 3)) == NULL)
		return;
	fstatat(dirfd_, "rot.log", &st0, 0);
	is_int(audit_reopen(a, dirfd_, "rot.log", &rotated, err,
	    sizeof(err)), 0, "reopen without a rotation succeeds");
	fstatat(dirfd_, "rot.log", &st1, 0);
	ok(rotated == 0 && st1.st_size == st0.st_size,
	    "and does nothing (rotated 0, no line written)");
	renameat(dirfd_, "rot.log", dirfd_, "rot.log.2");
	is_int(audit_reopen(a, dirfd_, "rot.log", &rotated, err,
	    sizeof(err)), 0, "reopen after a rename succeeds");
	is_int(rotated, 1, "and says it rotated");
	rot_append(a, "SECOND", 2);
	file_read("rot.log");
	snprintf(want, sizeof(want), "\"type\":\"%s\"", AUDIT_TYPE_REOPENED);
	ok(lines_count() == 3 && strncmp(buf_, "{\"seq\":4,", 9) == 0 &&
	    strstr(buf_, want) != NULL && strstr(buf_, "\"peer\":\"vault\"")
	    != NULL && strstr(buf_, "at seq 4") != NULL,
	    "the new file starts with LOG_REOPENED at the next seq");
	ok(strncmp(buf_ + line_start(3), "{\"seq\":6,", 9) == 0,
	    "and the lines after it go on from there");
	ok(fstatat(dirfd_, "rot.log", &st1, 0) == 0 &&
	    (st1.st_mode & 0777) == 0600, "the new file is mode 0600");

	/* logrotate's "create": an empty file already in place. */
	renameat(dirfd_, "rot.log", dirfd_, "rot.log.1");
	file_write("rot.log", "", 0);
	is_int(audit_reopen(a, dirfd_, "rot.log", &rotated, err,
	    sizeof(err)), 0, "reopen onto an empty file put in place");
	rot_append(a, "THIRD", 1);
	audit_close(a);

	is_int(verify_series(series, 3, &c, &which, &bad, msg, sizeof(msg)), 0,
	    "the series of three files verifies as one chain");
	ok(c.seq == 8 && !c.continued && c.first_seq == 1,
	    "the chain ends at seq 8 and started at seq 1");
	is_int(verify_series(pair, 2, &c, &which, &bad, msg, sizeof(msg)), 0,
	    "a series whose first file was rotated away verifies");
	ok(c.continued && c.first_seq == 4,
	    "and says it continues an earlier file, from seq 4");
	is_int(verify("rot.log.1", &n, &bad, msg, sizeof(msg)), 0,
	    "a rotated file checked alone verifies");
	is_int(verify_series(wrong, 2, &c, &which, &bad, msg, sizeof(msg)), 1,
	    "files given out of order break the chain");
	ok(which == 1 && bad == 1 && strstr(msg, "expected 9") != NULL,
	    "at line 1 of the second file");
}

/* What a series shows when one of its files was edited or replaced. */
static void
test_rotate_tamper(void)
{
	static const char *const pair[] = { "rot.log.1", "rot.log" };
	static const char *const fresh[] = { "rot.log.2", "fresh.log" };
	char msg[256], last[AUDIT_LINE_MAX], *p;
	struct audit_chain c;
	struct audit *a;
	unsigned long n, bad;
	size_t len, which;

	len = file_read("rot.log.1");
	if (len == 0 || (p = strstr(buf_ + line_start(3), "SECOND")) == NULL)
		return;
	p[0] = 's';
	file_write("rot.log.1", buf_, len);
	is_int(verify("rot.log.1", &n, &bad, msg, sizeof(msg)), 0,
	    "limit: an edit of a file's last line goes unseen in that file");
	is_int(verify_series(pair, 2, &c, &which, &bad, msg, sizeof(msg)), 1,
	    "but the next file of the series catches it");
	ok(which == 1 && bad == 1 && strstr(msg, "previous file") != NULL,
	    "at line 1 of the next file");
	p[0] = 'S';
	file_write("rot.log.1", buf_, len);
	is_int(verify_series(pair, 2, &c, &which, &bad, msg, sizeof(msg)), 0,
	    "undoing the edit makes the series whole again");

	/* A vault started while the log was renamed away begins anew. */
	if ((a = rot_append(log_open("fresh.log"), "NEW", 1)) != NULL)
		audit_close(a);
	is_int(verify_series(fresh, 2, &c, &which, &bad, msg, sizeof(msg)), 1,
	    "a new chain in a later file breaks the series");
	ok(strstr(msg, "starts a new chain") != NULL, "and says so");
	last_line("rot.log", last, sizeof(last));
	ok(strstr(last, "THIRD") != NULL, "(the last file ends as written)");
}

/* A reopen that cannot complete keeps writing the old file. */
static void
test_rotate_refusals(void)
{
	struct rlimit saved, rl;
	char err[256], msg[256], last[AUDIT_LINE_MAX];
	struct audit *a;
	unsigned long n, bad;
	int rotated = -1, rv;

	if ((a = rot_append(log_open("keep.log"), "ONE", 2)) == NULL)
		return;
	renameat(dirfd_, "keep.log", dirfd_, "keep.log.1");
	file_write("keep.log", "somebody else's line\n", 21);
	rv = audit_reopen(a, dirfd_, "keep.log", &rotated, err, sizeof(err));
	printf("# %s\n", err);
	ok(rv == -1 && rotated == 0 && strstr(err, "empty") != NULL,
	    "a non-empty file in the log's place is refused");
	ok(file_read("keep.log") == 21, "and left alone");
	rot_append(a, "STILL_OLD", 1);
	last_line("keep.log.1", last, sizeof(last));
	ok(strstr(last, "STILL_OLD") != NULL,
	    "the old file stays in use after a refused reopen");

	unlinkat(dirfd_, "keep.log", 0);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &saved);
	rl = saved;
	rl.rlim_cur = 10;
	setrlimit(RLIMIT_FSIZE, &rl);
	rv = audit_reopen(a, dirfd_, "keep.log", &rotated, err, sizeof(err));
	setrlimit(RLIMIT_FSIZE, &saved);
	printf("# %s\n", err);
	ok(rv == -1 && rotated == 0, "a reopen whose first line cannot be "
	    "written fails");
	ok(file_read("keep.log") == 0, "and leaves the new file empty");
	rot_append(a, "OLD_AGAIN", 1);
	last_line("keep.log.1", last, sizeof(last));
	ok(strstr(last, "OLD_AGAIN") != NULL, "the old file is still in use");
	is_int(audit_reopen(a, dirfd_, "keep.log", &rotated, err,
	    sizeof(err)), 0, "a later reopen takes the empty file");
	rot_append(a, "NEW", 1);
	audit_close(a);
	ok(verify("keep.log.1", &n, &bad, msg, sizeof(msg)) == 0 && n == 4,
	    "the old file verifies with every line");
	ok(verify("keep.log", &n, &bad, msg, sizeof(msg)) == 0 && n == 2,
	    "the new file verifies on its own");
}

static void
test_fingerprint(void)
{
	char out[33];

	/* RFC 4231 test case 2, truncated to 16 bytes. */
	audit_fingerprint((const uint8_t *)"Jefe", 4,
	    "what do ya want for nothing?", 28, out);
	is_str(out, "5bdcc146bf60754e6a042426089575c7",
	    "fingerprint is truncated HMAC-SHA256");
	audit_fingerprint(key_, sizeof(key_), NULL, 0, out);
	ok(strlen(out) == 32, "fingerprint of empty data");
}

static void
dir_cleanup(void)
{
	struct dirent *de;
	DIR *d;

	if (getenv("TEST_AUDIT_KEEP") != NULL) {
		printf("# logs kept in %s\n", dir_);
		return;
	}
	if ((d = opendir(dir_)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd_, de->d_name, 0);
	closedir(d);
	rmdir(dir_);
}

int
main(void)
{
	if (mkdtemp(dir_) == NULL ||
	    (dirfd_ = open(dir_, O_RDONLY | O_DIRECTORY)) == -1) {
		printf("Bail out! cannot make a temporary directory\n");
		return 1;
	}
	test_fingerprint();
	test_basic();
	test_reopen();
	test_tamper();
	test_tamper_form();
	test_verify_edges();
	test_torn();
	test_fail_closed();
	test_too_long();
	test_big_tail();
	test_open_refusals();
	test_rotate();
	test_rotate_tamper();
	test_rotate_refusals();
	dir_cleanup();
	close(dirfd_);
	return tap_done();
}
