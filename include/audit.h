/*
 * The vault's IPC log (design.md §5): one JSON object per line, each line
 * carrying the SHA-256 of the previous line, secrets only as HMAC-SHA256
 * fingerprints under a key only the vault knows. Library code: never exits,
 * never logs; errors come back as sentences.
 *
 * Line layout (keys always in this order, no spaces):
 *   {"seq":N,"time":"2026-11-26T22:47:52.123Z","prev":"<64 hex>",
 *    "peer":"http"|"worker"|"broker","job":N,"kind":"..."|null,"pid":N,
 *    "type":"...","connector":"..."|null,"remote":"..."|null,
 *    "outcome":"...","detail":"..."|null,"fp":{"name":"<32 hex>",...}}
 * "prev" of the first line of a log is 64 '0' characters; of every other
 * line it is the lowercase hex SHA-256 of the previous line's bytes without
 * its newline. "seq" starts at 1 and grows by one per line.
 *
 * Rotation: once the log has been renamed away, audit_reopen() starts the
 * new file with a line of type "LOG_REOPENED" whose seq and prev continue
 * the chain of the old file, so that a rotated series (ipc.log.2,
 * ipc.log.1, ipc.log) is one chain that audit_verify_next() checks file
 * by file, in order.
 */
#ifndef CD_AUDIT_H
#define CD_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AUDIT_KEY_LEN 32
#define AUDIT_FP_MAX 4
#define AUDIT_LINE_MAX 4096
/* A SHA-256 in lowercase hex, as "prev" holds it. */
#define AUDIT_HASH_HEX 64
/* The type of the first line of a file that continues a rotated log. */
#define AUDIT_TYPE_REOPENED "LOG_REOPENED"

struct audit;

/* One secret to fingerprint: a name ("token") and its bytes. */
struct audit_secret {
	const char	*name;
	const void	*data;
	size_t		 len;
};

struct audit_rec {
	const char	*peer;		/* "http", "worker", "broker" */
	uint32_t	 job;		/* 0 when not a worker */
	const char	*kind;		/* worker kind or NULL */
	pid_t		 pid;		/* peer pid, 0 if unknown */
	const char	*type;		/* message type name */
	const char	*connector;	/* or NULL */
	const char	*remote;	/* or NULL */
	const char	*outcome;	/* "ok", "denied", "error", ... */
	const char	*detail;	/* non-secret sentence or NULL */
	struct audit_secret fp[AUDIT_FP_MAX];
	size_t		 nfp;
};

/*
 * Open (creating 0600 if needed) the log at fd dirfd/name for appending.
 * Reads the existing tail to learn the next seq and the previous hash. A
 * final line without newline (torn by a crash) is cut off and a line of
 * type "LOG_RECOVERED" recording how many bytes were dropped is appended.
 * Returns NULL with a sentence in err on failure.
 */
struct audit *audit_open(int dirfd, const char *name, const uint8_t *key,
    size_t keylen, char *err, size_t errlen);

/*
 * Append one line and fsync it. Returns 0, or -1 with errno set: the
 * caller must then refuse the operation (fail closed).
 */
int audit_append(struct audit *a, const struct audit_rec *rec);

void audit_close(struct audit *a);

/*
 * Reopen the log at dirfd/name after it was renamed away (logrotate's
 * "rename, then SIGHUP"). When name is still the open file, nothing
 * happens (*rotated = 0). Otherwise name must be absent (it is created
 * 0600) or an empty regular file (logrotate's "create"): its first line,
 * of type AUDIT_TYPE_REOPENED, continues the seq and prev kept in memory,
 * and only then is the old file let go (*rotated = 1). On any failure the
 * old file stays open and in use, and -1 comes back with a sentence in
 * err: a rotation that cannot be completed must not cost a line.
 */
int audit_reopen(struct audit *a, int dirfd, const char *name, int *rotated,
    char *err, size_t errlen);

/* Lowercase hex HMAC-SHA256 of data, first 16 bytes (32 hex chars). */
void audit_fingerprint(const uint8_t *key, size_t keylen, const void *data,
    size_t len, char out[33]);

/*
 * Where the chain stands after the files verified so far: what the first
 * line of the next file must continue.
 */
struct audit_chain {
	unsigned long long seq;		/* of the last line; 0: no line yet */
	char		 prev[AUDIT_HASH_HEX + 1];	/* its SHA-256 */
	/* The first line seen had seq > 1: the series continues a file that
	 * was not given (rotated away). It is accepted only when that line
	 * is the AUDIT_TYPE_REOPENED line a rotation writes; first_seq is
	 * its seq. */
	int		 continued;
	unsigned long long first_seq;
};

void audit_chain_init(struct audit_chain *c);

/*
 * Verify one file of a series read from fd, its first line continuing the
 * chain c (a fresh chain for the first file), and leave c at its last
 * intact line. Returns 0 when every line is intact, 1 when a line is
 * broken (its 1-based number within this file in *bad_line and a sentence
 * in msg), -1 on read error. *nlines gets the number of intact lines.
 */
int audit_verify_next(int fd, struct audit_chain *c, unsigned long *nlines,
    unsigned long *bad_line, char *msg, size_t msglen);

/* audit_verify_next() of one file on a fresh chain. */
int audit_verify_fd(int fd, unsigned long *nlines, unsigned long *bad_line,
    char *msg, size_t msglen);

#endif
