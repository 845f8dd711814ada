/*
 * Framing, typed fields and descriptor passing for every channel. See
 * msg.h for the contract. Nothing here trusts the peer: every length is
 * checked against what was received before it is used, and a malformed
 * frame is reported as EPROTO so that the caller can end the peer.
 */
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

void
msg_init(struct msg *m, uint16_t type, uint32_t job)
{
	memset(m, 0, sizeof(*m));
	m->hdr.magic = MSG_MAGIC_VERSION;
	m->hdr.type = type;
	m->hdr.job = job;
	for (size_t i = 0; i < CD_MSG_FDS_MAX; i++)
		m->fds[i] = -1;
}

void
msg_free(struct msg *m)
{
	if (m->data != NULL && m->secret)
		explicit_bzero(m->data, m->cap);
	free(m->data);
	m->data = NULL;
	m->cap = 0;
	/* Descriptors received but never taken would otherwise leak. */
	for (size_t i = 0; m->fds_owned && i < m->nfds; i++)
		if (m->fds[i] != -1)
			close(m->fds[i]);
	m->nfds = 0;
}

static int
msg_reserve(struct msg *m, size_t more)
{
	size_t	 need, ncap;
	uint8_t	*p;

	if (more > CD_MSG_PAYLOAD_MAX ||
	    m->hdr.len > CD_MSG_PAYLOAD_MAX - more) {
		errno = EMSGSIZE;
		return -1;
	}
	need = m->hdr.len + more;
	if (need <= m->cap)
		return 0;
	ncap = m->cap ? m->cap : 256;
	while (ncap < need)
		ncap *= 2;
	if ((p = malloc(ncap)) == NULL)
		return -1;
	if (m->data != NULL) {
		memcpy(p, m->data, m->hdr.len);
		/* A growing secret must not leave copies in freed memory. */
		explicit_bzero(m->data, m->cap);
		free(m->data);
	}
	m->data = p;
	m->cap = ncap;
	return 0;
}

int
msg_put_u32(struct msg *m, uint32_t v)
{
	if (msg_reserve(m, sizeof(v)) == -1)
		return -1;
	memcpy(m->data + m->hdr.len, &v, sizeof(v));
	m->hdr.len += sizeof(v);
	return 0;
}

int
msg_put_strn(struct msg *m, const char *s, size_t len)
{
	if (s == NULL)
		len = 0;
	if (len > CD_MSG_STR_MAX || (len > 0 && memchr(s, '\0', len))) {
		errno = EINVAL;
		return -1;
	}
	if (msg_reserve(m, sizeof(uint32_t) + len) == -1)
		return -1;
	if (msg_put_u32(m, (uint32_t)len) == -1)
		return -1;
	if (len > 0)
		memcpy(m->data + m->hdr.len, s, len);
	m->hdr.len += len;
	return 0;
}

int
msg_put_str(struct msg *m, const char *s)
{
	return msg_put_strn(m, s, s ? strlen(s) : 0);
}

int
msg_put_fd(struct msg *m, int fd)
{
	if (m->nfds >= CD_MSG_FDS_MAX || fd < 0) {
		errno = EINVAL;
		return -1;
	}
	m->fds[m->nfds++] = fd;
	return 0;
}

int
msg_get_u32(struct msg *m, uint32_t *v)
{
	if (m->hdr.len - m->off < sizeof(*v)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(v, m->data + m->off, sizeof(*v));
	m->off += sizeof(*v);
	return 0;
}

int
msg_get_str(struct msg *m, char **s, size_t *lenp)
{
	uint32_t len;
	char	*p;

	if (msg_get_u32(m, &len) == -1)
		return -1;
	/* The length is checked against what arrived before allocating. */
	if (len > CD_MSG_STR_MAX || len > m->hdr.len - m->off ||
	    (len > 0 && memchr(m->data + m->off, '\0', len) != NULL)) {
		errno = EPROTO;
		return -1;
	}
	if ((p = malloc((size_t)len + 1)) == NULL)
		return -1;
	memcpy(p, m->data + m->off, len);
	p[len] = '\0';
	m->off += len;
	*s = p;
	if (lenp != NULL)
		*lenp = len;
	return 0;
}

int
msg_get_fd(struct msg *m, int *fd)
{
	for (size_t i = 0; i < m->nfds; i++) {
		if (m->fds[i] != -1) {
			*fd = m->fds[i];
			m->fds[i] = -1;
			return 0;
		}
	}
	errno = EPROTO;
	return -1;
}

int
msg_get_end(struct msg *m)
{
	if (m->off != m->hdr.len) {
		errno = EPROTO;
		return -1;
	}
	for (size_t i = 0; i < m->nfds; i++) {
		if (m->fds[i] != -1) {
			errno = EPROTO;
			return -1;
		}
	}
	return 0;
}

int
msg_send(int sock, const struct msg *m)
{
	struct msghdr	 mh;
	struct iovec	 iov[2];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * CD_MSG_FDS_MAX)];
	} cm;
	struct cmsghdr	*c;
	ssize_t		 n;

	memset(&mh, 0, sizeof(mh));
	iov[0].iov_base = (void *)&m->hdr;
	iov[0].iov_len = sizeof(m->hdr);
	iov[1].iov_base = m->data;
	iov[1].iov_len = m->hdr.len;
	mh.msg_iov = iov;
	mh.msg_iovlen = m->hdr.len ? 2 : 1;
	if (m->nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
		memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != sizeof(m->hdr) + m->hdr.len) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* Take the descriptors of a received control message into m. */
static int
msg_take_fds(struct msg *m, struct msghdr *mh)
{
	struct cmsghdr	*c;
	int		 bad = 0;

	for (c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = 1;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nfds < CD_MSG_FDS_MAX)
				m->fds[m->nfds++] = fd;
			else {
				close(fd);
				bad = 1;
			}
		}
	}
	return bad ? -1 : 0;
}

/*
 * How many descriptors a message type may carry: a descriptor on any other
 * frame is a protocol violation (a peer smuggling a file or socket into a
 * process that never asked for one), not something to close and ignore.
 */
size_t
msg_type_fds_max(uint16_t type)
{
	if (type == MSG_INIT)
		return CD_MSG_FDS_MAX;
	if (type == MSG_SPAWN_ANS || type == MSG_VAULT_CHANNEL ||
	    type == MSG_GRANT || type == MSG_HTTP_CHANNEL ||
	    type == MSG_ACCESS_LOG)
		return 1;
	return 0;
}

int
msg_recv(int sock, struct msg *m, size_t cap)
{
	struct msghdr	 mh;
	struct iovec	 iov[2];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * CD_MSG_FDS_MAX)];
	} cm;
	struct msg_hdr	 peek;
	ssize_t		 n, want;
	int		 bad;

	if (cap > CD_MSG_PAYLOAD_MAX)
		cap = CD_MSG_PAYLOAD_MAX;
	msg_init(m, 0, 0);
	/* Learn the record's true size first, so that we allocate exactly
	 * what arrived and never more than the channel's cap. */
	do {
		want = recv(sock, &peek, sizeof(peek), MSG_PEEK | MSG_TRUNC);
	} while (want == -1 && errno == EINTR);
	/* A peer that died with data unread resets: that is its EOF. */
	if (want == -1 && errno == ECONNRESET)
		return 0;
	if (want <= 0)
		return (int)want;
	if ((size_t)want > sizeof(peek) + cap)
		want = (ssize_t)(sizeof(peek) + cap + 1);
	if ((size_t)want > sizeof(peek)) {
		m->cap = (size_t)want - sizeof(peek);
		if ((m->data = malloc(m->cap)) == NULL)
			return -1;
	}
	memset(&mh, 0, sizeof(mh));
	iov[0].iov_base = &m->hdr;
	iov[0].iov_len = sizeof(m->hdr);
	iov[1].iov_base = m->data;
	iov[1].iov_len = m->cap;
	mh.msg_iov = iov;
	mh.msg_iovlen = m->cap ? 2 : 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n <= 0) {
		msg_free(m);
		return n == -1 && errno == ECONNRESET ? 0 : (int)n;
	}
	m->fds_owned = 1;
	bad = msg_take_fds(m, &mh) == -1;
	if (bad || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(m->hdr) || m->hdr.magic != MSG_MAGIC_VERSION ||
	    m->hdr.flags != 0 || m->hdr.len > cap ||
	    (size_t)n != sizeof(m->hdr) + m->hdr.len) {
		/* Over the cap (the record was cut, or filled the one byte
		 * past the cap that the buffer has to see it), or
		 * malformed. */
		errno = (mh.msg_flags & MSG_TRUNC) ||
		    (size_t)n > sizeof(m->hdr) + cap || m->hdr.len > cap ?
		    EMSGSIZE : EPROTO;
		msg_free(m);
		return -1;
	}
	if (m->nfds > msg_type_fds_max(m->hdr.type)) {
		msg_free(m);
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

const char *
msg_type_name(uint16_t type)
{
	switch ((enum msg_type)type) {
	case MSG_INIT: return "INIT";
	case MSG_READY: return "READY";
	case MSG_CONFIG: return "CONFIG";
	case MSG_SPAWN_REQ: return "SPAWN_REQ";
	case MSG_SPAWN_ANS: return "SPAWN_ANS";
	case MSG_JOB_CANCEL: return "JOB_CANCEL";
	case MSG_JOB_EXIT: return "JOB_EXIT";
	case MSG_VAULT_CHANNEL: return "VAULT_CHANNEL";
	case MSG_ACCESS_LOG: return "ACCESS_LOG";
	case MSG_STATS: return "STATS";
	case MSG_GRANT: return "GRANT";
	case MSG_GRANT_END: return "GRANT_END";
	case MSG_HTTP_CHANNEL: return "HTTP_CHANNEL";
	case MSG_LOG_REOPEN: return "LOG_REOPEN";
	case MSG_META_REQ: return "META_REQ";
	case MSG_META_PUSH: return "META_PUSH";
	case MSG_DELETE_REQ: return "DELETE_REQ";
	case MSG_DELETE_ANS: return "DELETE_ANS";
	case MSG_JOB_REQ: return "JOB_REQ";
	case MSG_JOB_PROGRESS: return "JOB_PROGRESS";
	case MSG_JOB_RESULT: return "JOB_RESULT";
	case MSG_CRED_PUT_REQ: return "CRED_PUT_REQ";
	case MSG_CRED_PUT_ANS: return "CRED_PUT_ANS";
	case MSG_CRED_GET_REQ: return "CRED_GET_REQ";
	case MSG_CRED_GET_ANS: return "CRED_GET_ANS";
	case MSG_CRED_MARK_REQ: return "CRED_MARK_REQ";
	case MSG_CRED_MARK_ANS: return "CRED_MARK_ANS";
	}
	return "UNKNOWN";
}

int
msg_permitted(const struct msg_permit *p, uint16_t type)
{
	for (size_t i = 0; i < p->ntypes; i++)
		if (p->types[i] == type)
			return 1;
	return 0;
}

void
msg_free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* What a failed msg_recv() says about the peer, for the log. */
const char *
msg_recv_error(int err)
{
	return err == EPROTO ? "a malformed frame" : err == EMSGSIZE ?
	    "a frame over the channel's size limit" : err == EBADMSG ?
	    "a descriptor on a frame that carries none" : "a broken channel";
}

int
msg_recv_permit(int sock, struct msg *m, size_t cap,
    const struct msg_permit *p, const char **why)
{
	int rc;

	rc = msg_recv(sock, m, cap);
	if (rc == 1 && !msg_permitted(p, m->hdr.type)) {
		*why = msg_type_name(m->hdr.type);
		if (strcmp(*why, "UNKNOWN") == 0)
			*why = "an unknown message type";
		msg_free(m);
		return MSG_RECV_VIOLATION;
	}
	if (rc == 1)
		return MSG_RECV_OK;
	if (rc == 0)
		return MSG_RECV_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MSG_RECV_AGAIN;
	*why = msg_recv_error(errno);
	return MSG_RECV_VIOLATION;
}
