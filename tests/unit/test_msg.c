/*
 * Unit tests of proto/msg.c: typed fields built and read back over a real
 * socketpair(AF_UNIX, SOCK_SEQPACKET), the writer's and the reader's
 * limits, every malformed frame msg_recv() must refuse (sent as raw bytes,
 * since msg_send() cannot produce them), descriptor passing and the
 * small lookup helpers.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "tap.h"

/* Room for every payload the tests send on purpose. */
#define CAP 1024

static int
seqpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* Send one record as raw bytes: a frame msg_send() would never build. */
static int
send_raw(int sock, const void *buf, size_t len)
{
	return send(sock, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* A header followed by n payload bytes of 'x', sent as one record. */
static int
send_frame(int sock, const struct msg_hdr *h, size_t n)
{
	uint8_t	 buf[sizeof(*h) + 64];

	if (n > 64)
		return -1;
	memcpy(buf, h, sizeof(*h));
	memset(buf + sizeof(*h), 'x', n);
	return send_raw(sock, buf, sizeof(*h) + n);
}

static void
good_hdr(struct msg_hdr *h, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->magic = MSG_MAGIC_VERSION;
	h->type = MSG_READY;
	h->len = len;
}

/* Descriptors open in this process, to prove nothing leaked. */
static int
count_fds(void)
{
	DIR		*d;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* A payload assembled by hand, as a peer could send it. */
static void
crafted(struct msg *m, const void *bytes, size_t len)
{
	msg_init(m, MSG_META_PUSH, 0);
	m->data = malloc(len ? len : 1);
	memcpy(m->data, bytes, len);
	m->cap = len;
	m->hdr.len = (uint32_t)len;
}

/* Receive into m and report the errno of a failure (0 on success). */
static int
recv_errno(int sock, struct msg *m, size_t cap)
{
	int rc;

	errno = 0;
	rc = msg_recv(sock, m, cap);
	if (rc == 1)
		msg_free(m);
	return rc == -1 ? errno : 0;
}

static void
test_roundtrip(void)
{
	struct msg	 m, r;
	int		 sv[2];
	uint32_t	 u = 0;
	char		*s = NULL;
	size_t		 len = 99;

	if (seqpair(sv) == -1)
		abort();
	msg_init(&m, MSG_JOB_RESULT, 42);
	ok(msg_put_u32(&m, 7) == 0 && msg_put_str(&m, "hello") == 0 &&
	    msg_put_str(&m, "") == 0 && msg_put_str(&m, NULL) == 0 &&
	    msg_put_u32(&m, UINT32_MAX) == 0, "put u32, str, empty, NULL");
	is_int(m.hdr.len, 4 + 4 + 5 + 4 + 4 + 4, "payload length adds up");
	ok(msg_send(sv[0], &m) == 0, "msg_send");
	msg_free(&m);
	is_int(msg_recv(sv[1], &r, CAP), 1, "msg_recv returns 1");
	is_int(r.hdr.type, MSG_JOB_RESULT, "type survives");
	is_int(r.hdr.job, 42, "job survives");
	ok(msg_get_u32(&r, &u) == 0 && u == 7, "u32 read back");
	ok(msg_get_str(&r, &s, &len) == 0, "string read back");
	is_str(s, "hello", "string content");
	is_int(len, 5, "string length");
	free(s);
	ok(msg_get_str(&r, &s, NULL) == 0 && s[0] == '\0', "empty string");
	free(s);
	ok(msg_get_str(&r, &s, &len) == 0 && len == 0, "NULL sent as empty");
	free(s);
	ok(msg_get_u32(&r, &u) == 0 && u == UINT32_MAX, "UINT32_MAX read");
	is_int(msg_get_end(&r), 0, "payload consumed exactly");
	errno = 0;
	ok(msg_get_u32(&r, &u) == -1 && errno == EPROTO,
	    "reading past the end is EPROTO");
	msg_free(&r);
	close(sv[0]);
	close(sv[1]);
}

static void
test_empty(void)
{
	struct msg	 m, r;
	int		 sv[2];
	uint32_t	 u;

	if (seqpair(sv) == -1)
		abort();
	msg_init(&m, MSG_READY, 0);
	ok(msg_send(sv[0], &m) == 0, "send an empty payload");
	is_int(msg_recv(sv[1], &r, 0), 1, "receive it with cap 0");
	is_int(r.hdr.len, 0, "empty payload has length 0");
	is_int(msg_get_end(&r), 0, "empty payload is consumed");
	errno = 0;
	ok(msg_get_u32(&r, &u) == -1 && errno == EPROTO,
	    "no u32 in an empty payload");
	msg_free(&r);
	close(sv[0]);
	close(sv[1]);
}

/* The biggest string must fit in one record on a default socket. */
static void
test_largest_string(void)
{
	struct msg	 m, r;
	char		*big, *s = NULL;
	size_t		 len = 0;
	int		 sv[2];

	if (seqpair(sv) == -1 || (big = malloc(CD_MSG_STR_MAX)) == NULL)
		abort();
	memset(big, 'b', CD_MSG_STR_MAX);
	msg_init(&m, MSG_META_PUSH, 0);
	ok(msg_put_strn(&m, big, CD_MSG_STR_MAX) == 0,
	    "a string of CD_MSG_STR_MAX bytes is accepted");
	ok(msg_send(sv[0], &m) == 0, "and can be sent");
	msg_free(&m);
	/* A cap above the protocol's is clamped, not trusted. */
	is_int(msg_recv(sv[1], &r, SIZE_MAX), 1, "received with a huge cap");
	ok(msg_get_str(&r, &s, &len) == 0 && len == CD_MSG_STR_MAX &&
	    memcmp(s, big, len) == 0, "largest string read back intact");
	free(s);
	msg_free(&r);
	free(big);
	close(sv[0]);
	close(sv[1]);
}

static void
test_put_limits(void)
{
	struct msg	 m;
	char		*big;

	if ((big = malloc(CD_MSG_STR_MAX + 1)) == NULL)
		abort();
	memset(big, 'a', CD_MSG_STR_MAX + 1);
	msg_init(&m, MSG_META_PUSH, 0);
	errno = 0;
	ok(msg_put_strn(&m, "a\0b", 3) == -1 && errno == EINVAL,
	    "put refuses an embedded NUL");
	is_int(m.hdr.len, 0, "a refused string adds nothing");
	errno = 0;
	ok(msg_put_strn(&m, big, CD_MSG_STR_MAX + 1) == -1 && errno == EINVAL,
	    "put refuses a string over CD_MSG_STR_MAX");
	ok(msg_put_strn(&m, big, CD_MSG_STR_MAX) == 0, "at the limit it fits");
	errno = 0;
	ok(msg_put_strn(&m, big, CD_MSG_STR_MAX) == -1 && errno == EMSGSIZE,
	    "payload over CD_MSG_PAYLOAD_MAX is EMSGSIZE");
	is_int(m.hdr.len, 4 + CD_MSG_STR_MAX, "overflowing put adds nothing");
	errno = 0;
	ok(msg_put_fd(&m, -1) == -1 && errno == EINVAL, "put_fd refuses -1");
	for (int i = 0; i < CD_MSG_FDS_MAX; i++)
		msg_put_fd(&m, 0);
	errno = 0;
	ok(msg_put_fd(&m, 0) == -1 && errno == EINVAL,
	    "put_fd refuses more than CD_MSG_FDS_MAX");
	m.nfds = 0;	/* stdin is not ours to close */
	msg_free(&m);
	free(big);
}

static void
test_get_str_crafted(void)
{
	static const uint8_t	 lies[] = { 0xf0, 0xff, 0xff, 0xff, 'a', 'b' };
	static const uint8_t	 nul[] = { 3, 0, 0, 0, 'a', 0, 'b' };
	static char		 untouched[] = "untouched";
	uint8_t			 over[4 + 1000] = { 0 };
	struct msg		 m;
	struct mallinfo2	 before, after;
	char			*s = untouched;
	uint32_t		 n;

	crafted(&m, lies, sizeof(lies));
	before = mallinfo2();
	errno = 0;
	ok(msg_get_str(&m, &s, NULL) == -1 && errno == EPROTO,
	    "length prefix beyond the data is EPROTO");
	after = mallinfo2();
	/* A 4 GiB allocation would show as an mmapped block (ASan keeps
	 * its own books and reports zeros here, which is fine). */
	ok(after.hblkhd <= before.hblkhd + 1024 * 1024,
	    "no huge allocation for a lying length");
	is_str(s, "untouched", "output left alone on failure");
	msg_free(&m);

	crafted(&m, nul, sizeof(nul));
	errno = 0;
	ok(msg_get_str(&m, &s, NULL) == -1 && errno == EPROTO,
	    "received string holding a NUL is EPROTO");
	msg_free(&m);

	/* 1000 claimed, 999 present. */
	n = 1000;
	memcpy(over, &n, sizeof(n));
	crafted(&m, over, sizeof(over) - 1);
	errno = 0;
	ok(msg_get_str(&m, &s, NULL) == -1 && errno == EPROTO,
	    "one byte short is EPROTO");
	msg_free(&m);
}

/* The reader's own cap on strings, whatever the payload holds. */
static void
test_get_str_overlong(void)
{
	size_t		 len = 4 + (size_t)CD_MSG_STR_MAX + 1;
	uint8_t		*buf;
	uint32_t	 n = CD_MSG_STR_MAX + 1;
	struct msg	 m;
	char		*s = NULL;

	if ((buf = malloc(len)) == NULL)
		abort();
	memcpy(buf, &n, sizeof(n));
	memset(buf + 4, 'a', len - 4);
	crafted(&m, buf, len);
	errno = 0;
	ok(msg_get_str(&m, &s, NULL) == -1 && errno == EPROTO && s == NULL,
	    "reader refuses a string over CD_MSG_STR_MAX");
	msg_free(&m);
	free(buf);
}

static void
test_get_end(void)
{
	struct msg	 m;
	uint32_t	 u;

	msg_init(&m, MSG_JOB_EXIT, 1);
	msg_put_u32(&m, 1);
	msg_put_u32(&m, 2);
	msg_get_u32(&m, &u);
	errno = 0;
	ok(msg_get_end(&m) == -1 && errno == EPROTO,
	    "get_end fails while bytes remain");
	msg_get_u32(&m, &u);
	is_int(msg_get_end(&m), 0, "get_end succeeds once consumed");
	msg_free(&m);
}

/* An oversize record is consumed whole, its fds closed, and the next
 * record stays readable. */
static void
test_recv_cap(void)
{
	struct msg	 m, r;
	int		 sv[2], p[2], before;
	uint32_t	 u = 0;

	if (seqpair(sv) == -1 || pipe2(p, O_CLOEXEC) == -1)
		abort();
	msg_init(&m, MSG_META_PUSH, 0);
	for (int i = 0; i < 25; i++)
		msg_put_u32(&m, (uint32_t)i);
	msg_put_fd(&m, p[0]);
	msg_send(sv[0], &m);
	m.nfds = 0;
	msg_free(&m);
	msg_init(&m, MSG_JOB_EXIT, 9);
	msg_put_u32(&m, 77);
	msg_send(sv[0], &m);
	msg_free(&m);
	before = count_fds();
	is_int(recv_errno(sv[1], &r, 50), EMSGSIZE,
	    "payload over cap is EMSGSIZE");
	is_int(count_fds(), before, "its descriptor is not leaked");
	is_int(msg_recv(sv[1], &r, CAP), 1, "next record still readable");
	ok(r.hdr.job == 9 && msg_get_u32(&r, &u) == 0 && u == 77,
	    "and it is the next message");
	msg_free(&r);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_bad_frames(void)
{
	struct msg_hdr	 h;
	struct msg	 r;
	int		 sv[2];

	if (seqpair(sv) == -1)
		abort();
	good_hdr(&h, 0);
	h.magic = 0x43440002u;
	send_frame(sv[0], &h, 0);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "other version is EPROTO");
	good_hdr(&h, 0);
	h.flags = 1;
	send_frame(sv[0], &h, 0);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "nonzero flags is EPROTO");
	send_raw(sv[0], "C", 1);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "1-byte record is EPROTO");
	good_hdr(&h, 0);
	send_raw(sv[0], &h, sizeof(h) - 1);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "15-byte header is EPROTO");
	good_hdr(&h, 8);
	send_frame(sv[0], &h, 4);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "len > received: EPROTO");
	good_hdr(&h, 4);
	send_frame(sv[0], &h, 8);
	is_int(recv_errno(sv[1], &r, CAP), EPROTO, "len < received: EPROTO");
	good_hdr(&h, 8);
	send_frame(sv[0], &h, 8);
	is_int(recv_errno(sv[1], &r, 4), EMSGSIZE, "len above cap is EMSGSIZE");
	good_hdr(&h, 4);
	send_frame(sv[0], &h, 5);
	is_int(recv_errno(sv[1], &r, 4), EMSGSIZE,
	    "a record one byte over the cap is EMSGSIZE, not EPROTO");
	good_hdr(&h, 4);
	send_frame(sv[0], &h, 6);
	is_int(recv_errno(sv[1], &r, 4), EMSGSIZE,
	    "a record two bytes over the cap is EMSGSIZE");
	good_hdr(&h, 4);
	send_frame(sv[0], &h, 4);
	is_int(recv_errno(sv[1], &r, CAP), 0, "a good raw frame still passes");
	close(sv[0]);
	close(sv[1]);
}

static void
test_eof_eagain(void)
{
	struct msg	 r;
	int		 sv[2];

	if (seqpair(sv) == -1)
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	is_int(recv_errno(sv[1], &r, CAP), EAGAIN, "nothing to read: EAGAIN");
	close(sv[0]);
	is_int(msg_recv(sv[1], &r, CAP), 0, "peer closed: 0");
	close(sv[1]);
}

static int
is_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	return flags != -1 && (flags & FD_CLOEXEC);
}

/* A descriptor on a frame whose type carries none (or one too many) is a
 * violation (EBADMSG), and the descriptors are closed, not leaked. */
static void
test_unexpected_fds(void)
{
	struct msg	 m, r;
	int		 sv[2], p[2], before;
	char		 name[80];
	const struct {
		uint16_t type;
		int	 nfds;
		int	 want;
	} cases[] = {
		{ MSG_META_PUSH, 1, EBADMSG },
		{ MSG_READY, 1, EBADMSG },
		{ MSG_JOB_RESULT, 2, EBADMSG },
		{ MSG_GRANT, 2, EBADMSG },
		{ MSG_GRANT, 1, 0 },
		{ MSG_SPAWN_ANS, 1, 0 },
		{ MSG_ACCESS_LOG, 1, 0 },
		{ MSG_ACCESS_LOG, 2, EBADMSG },
		{ MSG_CONFIG, 1, EBADMSG },
		{ MSG_LOG_REOPEN, 1, EBADMSG },
		{ MSG_INIT, CD_MSG_FDS_MAX, 0 },
		{ 0x7777, 1, EBADMSG },
	};

	if (seqpair(sv) == -1 || pipe2(p, O_CLOEXEC) == -1)
		abort();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg_init(&m, cases[i].type, 1);
		for (int k = 0; k < cases[i].nfds; k++)
			msg_put_fd(&m, p[0]);
		msg_send(sv[0], &m);
		m.nfds = 0;
		msg_free(&m);
		before = count_fds();
		errno = 0;
		snprintf(name, sizeof(name), "%s (0x%04x) with %d "
		    "descriptor(s): %s", msg_type_name(cases[i].type),
		    cases[i].type, cases[i].nfds,
		    cases[i].want ? "EBADMSG" : "accepted");
		if (msg_recv(sv[1], &r, CAP) == 1) {
			msg_free(&r);
			is_int(0, cases[i].want, name);
		} else
			is_int(errno, cases[i].want, name);
		is_int(count_fds(), before, "no descriptor left open after it");
	}
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_fd_passing(void)
{
	struct msg	 m, r;
	int		 sv[2], p[2], a = -1, b = -1, c;
	char		 ch = 0;

	/* A pipe without CLOEXEC: the receiver must set it itself. */
	if (seqpair(sv) == -1 || pipe(p) == -1)
		abort();
	msg_init(&m, MSG_INIT, 3);
	msg_put_fd(&m, p[0]);
	msg_put_fd(&m, p[1]);
	ok(msg_send(sv[0], &m) == 0, "send two descriptors");
	m.nfds = 0;
	msg_free(&m);
	is_int(msg_recv(sv[1], &r, CAP), 1, "receive them");
	is_int(r.nfds, 2, "two descriptors arrived");
	errno = 0;
	ok(msg_get_end(&r) == -1 && errno == EPROTO,
	    "get_end fails while a descriptor is not taken");
	ok(msg_get_fd(&r, &a) == 0 && msg_get_fd(&r, &b) == 0,
	    "take both");
	ok(a != p[0] && a != p[1] && b != p[0] && b != p[1],
	    "they are new descriptors");
	ok(is_cloexec(a) && is_cloexec(b), "received descriptors are CLOEXEC");
	ok(write(b, "z", 1) == 1 && read(p[0], &ch, 1) == 1 && ch == 'z',
	    "received write end feeds the original pipe");
	errno = 0;
	ok(msg_get_fd(&r, &c) == -1 && errno == EPROTO, "no third descriptor");
	is_int(msg_get_end(&r), 0, "get_end succeeds once all are taken");
	msg_free(&r);
	ok(fcntl(a, F_GETFD) != -1, "msg_free leaves taken descriptors open");
	close(a);
	close(b);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_free_closes(void)
{
	struct msg	 m, r;
	int		 sv[2], fd;

	if (seqpair(sv) == -1)
		abort();
	msg_init(&m, MSG_HTTP_CHANNEL, 0);
	msg_put_fd(&m, sv[0]);
	msg_send(sv[0], &m);
	m.nfds = 0;
	msg_free(&m);
	if (msg_recv(sv[1], &r, CAP) != 1)
		abort();
	fd = r.fds[0];
	ok(fcntl(fd, F_GETFD) != -1, "received descriptor is open");
	msg_free(&r);
	errno = 0;
	ok(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
	    "msg_free closes a descriptor never taken");
	close(sv[0]);
	close(sv[1]);
}

static void
test_names_permits(void)
{
	static const uint16_t	 types[] = { MSG_META_REQ, MSG_DELETE_REQ };
	struct msg_permit	 p = { types, 2 }, none = { NULL, 0 };

	is_str(msg_type_name(MSG_CRED_PUT_REQ), "CRED_PUT_REQ", "known name");
	is_str(msg_type_name(MSG_INIT), "INIT", "first type's name");
	is_str(msg_type_name(0x0999), "UNKNOWN", "unknown type");
	is_str(msg_type_name(0), "UNKNOWN", "type 0 is unknown");
	ok(msg_permitted(&p, MSG_META_REQ), "permitted type");
	ok(msg_permitted(&p, MSG_DELETE_REQ), "last permitted type");
	ok(!msg_permitted(&p, MSG_CRED_GET_REQ), "type not in the table");
	ok(!msg_permitted(&none, MSG_META_REQ), "empty table permits nothing");
}

int
main(void)
{
	test_roundtrip();
	test_empty();
	test_largest_string();
	test_put_limits();
	test_get_str_crafted();
	test_get_str_overlong();
	test_get_end();
	test_recv_cap();
	test_bad_frames();
	test_eof_eagain();
	test_fd_passing();
	test_unexpected_fds();
	test_free_closes();
	test_names_permits();
	return tap_done();
}
