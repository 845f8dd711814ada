/*
 * libFuzzer target for the message layer. The input is used three ways:
 *
 * 1. As a received payload, read with a sequence of typed reads that its
 *    first two bytes choose (bit clear: u32, bit set: str). No read may
 *    go past the payload, a string must hold exactly its length in
 *    non-NUL bytes, and a payload consumed exactly must re-encode to the
 *    same bytes.
 * 2. As a payload of strings only: if it decodes fully that way,
 *    msg_put_strn() of the strings must give back identical bytes, since
 *    the encoding has one form per value.
 * 3. As a raw SEQPACKET record handed to msg_recv(): it must either be
 *    refused with EPROTO, or with EMSGSIZE exactly when it is over the
 *    cap (the record longer than a header and cap bytes, or a header
 *    length above cap), or come out as exactly the frame that was sent,
 *    and msg_send() of what came out must put the same record back on
 *    the wire.
 *
 * The payload is copied into a buffer of exactly its size so that ASan
 * sees any read past it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

/* Reads chosen by the first two bytes. */
#define FUZZ_OPS 16

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct field {
	int	 is_str;
	uint32_t u;
	char	*s;
	size_t	 len;
};

/* A message whose payload is a fresh, exactly sized copy of data. */
static void
payload(struct msg *m, const uint8_t *data, size_t size)
{
	msg_init(m, MSG_META_PUSH, 0);
	if (size == 0)
		return;
	if ((m->data = malloc(size)) == NULL)
		abort();
	memcpy(m->data, data, size);
	m->cap = size;
	m->hdr.len = (uint32_t)size;
}

/* One typed read with the checks every read must pass. 0 or -1. */
static int
read_field(struct msg *m, struct field *f)
{
	size_t	 before = m->off;
	int	 rc;

	f->s = NULL;
	f->len = 0;
	rc = f->is_str ? msg_get_str(m, &f->s, &f->len) :
	    msg_get_u32(m, &f->u);
	if (m->off > m->hdr.len)
		abort();
	if (rc == -1) {
		if (errno != EPROTO || f->s != NULL)
			abort();
		return -1;
	}
	if (f->is_str && (f->len > CD_MSG_STR_MAX ||
	    strlen(f->s) != f->len || m->off != before + 4 + f->len))
		abort();
	if (!f->is_str && m->off != before + 4)
		abort();
	return 0;
}

/* Encode fields again and compare with the payload they came from. */
static void
reencode(const struct field *f, size_t n, const uint8_t *data, size_t size)
{
	struct msg	 m;
	int		 rc = 0;

	msg_init(&m, MSG_META_PUSH, 0);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = f[i].is_str ? msg_put_strn(&m, f[i].s, f[i].len) :
		    msg_put_u32(&m, f[i].u);
	if (rc == -1 || m.hdr.len != size ||
	    (size > 0 && memcmp(m.data, data, size) != 0))
		abort();
	msg_free(&m);
}

static void
typed_reads(const uint8_t *data, size_t size)
{
	struct field	 f[FUZZ_OPS];
	struct msg	 m;
	unsigned	 ops;
	size_t		 n = 0, good = 0;
	int		 fd;

	ops = size >= 2 ? (unsigned)data[0] | (unsigned)data[1] << 8 : 0;
	payload(&m, data, size);
	m.secret = size > 0 && (data[0] & 1);
	for (; n < FUZZ_OPS; n++) {
		f[n].is_str = (ops >> n) & 1;
		if (read_field(&m, &f[n]) == -1)
			break;
		good = m.off;
	}
	if ((msg_get_end(&m) == 0) != (m.off == m.hdr.len))
		abort();
	if (msg_get_fd(&m, &fd) != -1)
		abort();
	/* Where the successful reads ended, not where a failed one left
	 * the offset: a string's length prefix may be read and refused. */
	if (good == size)
		reencode(f, n, data, size);
	for (size_t i = 0; i < n; i++)
		free(f[i].s);
	msg_free(&m);
}

static void
strings_only(const uint8_t *data, size_t size)
{
	struct msg	 m, out;
	char		*s;
	size_t		 len;
	int		 rc = 0;

	payload(&m, data, size);
	msg_init(&out, MSG_META_PUSH, 0);
	while (m.off < m.hdr.len && rc == 0) {
		if ((rc = msg_get_str(&m, &s, &len)) == 0) {
			if (msg_put_strn(&out, s, len) == -1)
				abort();
			free(s);
		}
	}
	if (rc == 0 && (msg_get_end(&m) != 0 || out.hdr.len != size ||
	    (size > 0 && memcmp(out.data, data, size) != 0)))
		abort();
	msg_free(&out);
	msg_free(&m);
}

/* A frame that decoded must encode to the record it came from. */
static void
resend(const int sv[2], const struct msg *m, const uint8_t *data,
    size_t size)
{
	static uint8_t	 back[CD_MSG_PAYLOAD_MAX + sizeof(struct msg_hdr) + 1];
	ssize_t		 n;

	if (msg_send(sv[1], m) == -1)
		abort();
	n = recv(sv[0], back, sizeof(back), MSG_DONTWAIT);
	if (n != (ssize_t)size || memcmp(back, data, size) != 0)
		abort();
}

static void
raw_record(const uint8_t *data, size_t size)
{
	static int	 sv[2] = { -1, -1 };
	struct msg_hdr	 h;
	struct msg	 m;
	size_t		 cap;
	int		 rc, over;

	/* An empty record reads as EOF and stays queued: leave it out. */
	if (size == 0)
		return;
	if (sv[0] == -1 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC,
	    0, sv) == -1)
		abort();
	if (sv[0] == -1 || fcntl(sv[1], F_SETFL, O_NONBLOCK) == -1)
		abort();
	if (send(sv[0], data, size, MSG_NOSIGNAL) != (ssize_t)size)
		return;		/* larger than the socket buffer */
	cap = (size_t)data[size - 1] * 8;
	errno = 0;
	rc = msg_recv(sv[1], &m, cap);
	if (rc == -1) {
		/* The header as far as it arrived, the rest as msg_init()
		 * left it: a record cut short of len reads len as 0 bytes. */
		memset(&h, 0, sizeof(h));
		memcpy(&h, data, size < sizeof(h) ? size : sizeof(h));
		over = size > sizeof(h) + cap || h.len > cap;
		if (errno != EPROTO && errno != EMSGSIZE)
			abort();
		if ((errno == EMSGSIZE) != over)
			abort();
		return;
	}
	if (rc != 1 || size < sizeof(h))
		abort();
	memcpy(&h, data, sizeof(h));
	if (h.magic != MSG_MAGIC_VERSION || h.flags != 0 || h.len > cap ||
	    size != sizeof(h) + h.len || m.hdr.type != h.type ||
	    m.hdr.job != h.job || m.hdr.len != h.len || m.nfds != 0 ||
	    (h.len > 0 && memcmp(m.data, data + sizeof(h), h.len) != 0))
		abort();
	resend(sv, &m, data, size);
	msg_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > CD_MSG_PAYLOAD_MAX)
		return 0;
	typed_reads(data, size);
	strings_only(data, size);
	raw_record(data, size);
	return 0;
}
