/*
 * The connectord message layer: every channel between two processes is a
 * socketpair(AF_UNIX, SOCK_SEQPACKET), so that one recvmsg() yields exactly
 * one message. A message is a fixed header followed by a payload of typed
 * fields written with msg_put_*() and read back with msg_get_*(). Lengths
 * are checked before any allocation, strings may not hold NUL bytes, and a
 * reader must consume a payload exactly (msg_get_end()).
 *
 * Library code: never exits, never logs a payload.
 */
#ifndef CD_MSG_H
#define CD_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cd_limits.h"

/* 'C' 'D' in the high half, protocol version in the low half. A peer built
 * from other sources speaks another version and is refused. */
#define MSG_MAGIC_VERSION 0x43440001u

/* The fixed header, in host byte order (both ends are the same binary). */
struct msg_hdr {
	uint32_t	magic;	/* MSG_MAGIC_VERSION */
	uint16_t	type;	/* enum msg_type */
	uint16_t	flags;	/* must be zero for now */
	uint32_t	len;	/* payload length, checked against the cap */
	uint32_t	job;	/* job id the message is about, or 0 */
};

/*
 * Every message type, numbered in blocks per channel. Each comment gives
 * the direction, the payload fields in order, and any descriptor passed.
 */
enum msg_type {
	/* 0x01xx: broker <-> every child, on the child's control channel. */
	MSG_INIT = 0x0101,	  /* broker->child: u32 log flags, u32
				     change ids, u32 uid, u32 gid,
				     str config, str kind,
				     str connector, str remote, str extra;
				     fds: role resources (listeners for
				     http, job channels for a worker) */
	MSG_READY = 0x0102,	  /* child->broker: nothing */
	MSG_CONFIG = 0x0103,	  /* broker->http, broker->vault: str config
				     re-read on SIGHUP, to replace the one
				     of MSG_INIT (never sent to a worker) */

	/* 0x02xx: http <-> broker. */
	MSG_SPAWN_REQ = 0x0201,	  /* http->broker: u32 req, str kind,
				     str connector, str remote; the broker
				     derives the grant and TTL from kind */
	MSG_SPAWN_ANS = 0x0202,	  /* broker->http: u32 req, u32 err,
				     str sentence; job = new job id;
				     fd: worker<->http channel */
	MSG_JOB_CANCEL = 0x0203,  /* http->broker: job = the job */
	MSG_JOB_EXIT = 0x0204,	  /* broker->http: u32 reason, i32 status;
				     job = the job */
	MSG_VAULT_CHANNEL = 0x0205, /* broker->http: u32 up; fd when up:
				     http<->vault channel */
	MSG_ACCESS_LOG = 0x0206,  /* broker->http: u32 on; fd when on: the
				     access log, opened for appending (sent
				     at start and on SIGHUP; off: access
				     lines go to the daemon log) */
	MSG_STATS = 0x0207,	  /* broker->http, for /metrics, at most once
				     a second and when http is ready:
				     u32 http restarts, u32 vault restarts,
				     u32 lock taken, u32 lock refusals (409),
				     u32 lock release waits, u32 lock held
				     (0/1), u32 workers running */

	/* 0x03xx: vault <-> broker. */
	MSG_GRANT = 0x0301,	  /* broker->vault: str kind, str connector,
				     str remote, u32 ops, u32 pid;
				     job = the job; fd: worker<->vault */
	MSG_GRANT_END = 0x0302,	  /* broker->vault: job = the job */
	MSG_HTTP_CHANNEL = 0x0303, /* broker->vault: fd: http<->vault */
	MSG_LOG_REOPEN = 0x0304,  /* broker->vault: nothing; reopen
				     <state_dir>/ipc.log (SIGHUP) */

	/* 0x04xx: http <-> vault (metadata and deletes, never secrets). */
	MSG_META_REQ = 0x0401,	  /* http->vault: nothing */
	MSG_META_PUSH = 0x0402,	  /* vault->http: str JSON metadata */
	MSG_DELETE_REQ = 0x0403,  /* http->vault: u32 req, str connector,
				     str remote */
	MSG_DELETE_ANS = 0x0404,  /* vault->http: u32 req, u32 status,
				     str sentence */

	/* 0x05xx: worker <-> http, on the job channel. */
	MSG_JOB_REQ = 0x0501,	  /* http->worker: u32 op, str secret
				     (wiped on free), str argument */
	MSG_JOB_PROGRESS = 0x0502, /* worker->http: str JSON progress */
	MSG_JOB_RESULT = 0x0503,  /* worker->http: u32 status, str sentence,
				     str JSON identity */

	/* 0x06xx: worker <-> vault, scoped by the job's grant. */
	MSG_CRED_PUT_REQ = 0x0601, /* worker->vault: str connector,
				     str JSON entry (secret), str JSON
				     account identity or "" */
	MSG_CRED_PUT_ANS = 0x0602, /* vault->worker: u32 status, str sentence */
	MSG_CRED_GET_REQ = 0x0603, /* worker->vault: str connector */
	MSG_CRED_GET_ANS = 0x0604, /* vault->worker: u32 status, str sentence,
				     str JSON entry (secret) */
	MSG_CRED_MARK_REQ = 0x0605, /* worker->vault: str connector,
				     u32 valid, str sentence, str identity */
	MSG_CRED_MARK_ANS = 0x0606, /* vault->worker: u32 status */
};

/* Operations in MSG_JOB_REQ: what http asks of a worker. */
#define JOB_OP_SAVE		1	/* validate the secret, then store it */
#define JOB_OP_REVALIDATE	2	/* validate the stored credential */
#define JOB_OP_DEVICE		3	/* run the GitHub device flow */
#define JOB_OP_RCLONE		4	/* run rclone authorize for a remote */
#define JOB_OP_SUBMIT		5	/* the pasted code (secret), state */
#define JOB_OP_OAUTH		6	/* start a Vercel OAuth (PKCE) flow */
#define JOB_OP_REFRESH		7	/* refresh the stored Vercel token */
#define JOB_OP_REVOKE		8	/* revoke the stored Vercel token */

/* Grant operations: what a worker may ask of the vault. */
#define GRANT_OP_PUT	0x01u	/* store the credential of its connector */
#define GRANT_OP_GET	0x02u	/* read the one credential it names */
#define GRANT_OP_MARK	0x04u	/* record a revalidation outcome */
#define GRANT_OP_CLIENT	0x08u	/* read and store the Vercel OAuth client
				   (vercel_client), once each */

/* Why a job ended, as the broker reports it in MSG_JOB_EXIT. */
enum msg_exit_reason {
	MSG_EXIT_NORMAL = 1,	/* exited; status is the exit code */
	MSG_EXIT_SIGNAL = 2,	/* killed by a signal it did not get from us */
	MSG_EXIT_DEADLINE = 3,	/* killed by the broker at its TTL */
	MSG_EXIT_CANCELLED = 4,	/* killed by the broker on request */
	MSG_EXIT_SPAWN = 5,	/* could not be started */
};

/* A message being built or read. */
struct msg {
	struct msg_hdr	 hdr;
	uint8_t		*data;		/* payload */
	size_t		 cap;		/* allocated bytes of data */
	size_t		 off;		/* read offset */
	int		 fds[CD_MSG_FDS_MAX];
	size_t		 nfds;
	int		 secret;	/* wipe payload when freed */
	int		 fds_owned;	/* received fds: close untaken ones */
};

/* Start an empty message of a type. */
void msg_init(struct msg *m, uint16_t type, uint32_t job);
/* Wipe (if secret) and free the payload; close received fds not taken
 * (descriptors attached for sending stay the caller's). */
void msg_free(struct msg *m);

int msg_put_u32(struct msg *m, uint32_t v);
int msg_put_str(struct msg *m, const char *s);
int msg_put_strn(struct msg *m, const char *s, size_t len);
/* Attach a descriptor (the message does not take ownership). */
int msg_put_fd(struct msg *m, int fd);
size_t msg_type_fds_max(uint16_t type);

/* Typed readers: -1 on short data, over-long or NUL-holding strings. */
int msg_get_u32(struct msg *m, uint32_t *v);
/* Allocates *s (NUL-terminated); *len may be NULL. */
int msg_get_str(struct msg *m, char **s, size_t *len);
/* Takes ownership of the next passed descriptor. */
int msg_get_fd(struct msg *m, int *fd);
/* 0 if the payload was consumed exactly and every fd taken. */
int msg_get_end(struct msg *m);

/* Send a whole message. 0, or -1 with errno. */
int msg_send(int sock, const struct msg *m);
/*
 * Receive one message of at most cap payload bytes. Returns 1 with *m
 * filled, 0 on EOF (or a reset by a peer that died), -1 with errno:
 * EAGAIN; EMSGSIZE for a record or length over the cap; EBADMSG for a
 * descriptor on a type that carries none (msg_type_fds_max); EPROTO for
 * a malformed frame (bad magic, truncated record, length mismatch, flags).
 */
int msg_recv(int sock, struct msg *m, size_t cap);
const char *msg_recv_error(int err);

/* Outcomes of msg_recv_permit(). */
#define MSG_RECV_OK		1	/* a permitted message is in *m */
#define MSG_RECV_EOF		0	/* the peer is gone */
#define MSG_RECV_AGAIN		(-1)	/* nothing to read yet */
#define MSG_RECV_VIOLATION	(-2)	/* *why says what the peer did */

struct msg_permit;
/*
 * msg_recv() followed by the permit check every dispatcher makes: one
 * place decides what counts as a protocol violation.
 */
int msg_recv_permit(int sock, struct msg *m, size_t cap,
    const struct msg_permit *p, const char **why);

/* Name of a message type for logs ("CRED_PUT_REQ"), "UNKNOWN" otherwise. */
const char *msg_type_name(uint16_t type);

/*
 * A permit table: the message types one process accepts from one peer.
 * Anything else is a protocol violation.
 */
struct msg_permit {
	const uint16_t	*types;
	size_t		 ntypes;
};
int msg_permitted(const struct msg_permit *p, uint16_t type);

/* Wipe and free a secret string. */
void msg_free_secret(char *s);

#endif
