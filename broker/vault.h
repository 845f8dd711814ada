/*
 * The vault's internal state, shared by vault.c (start, channels) and
 * vault_creds.c (grants, credential operations, metadata).
 */
#ifndef CD_VAULT_H
#define CD_VAULT_H

#include <sys/queue.h>

#include <event2/event.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "audit.h"
#include "child.h"
#include "msg.h"
#include "store.h"

/* The files the vault alone writes, below the workspace (wsfd), the state
 * directory (statefd) and the home directory (homefd). */
#define TOKENS_FILE	"mcp-tokens.json"
#define RCLONE_FILE	"rclone.conf"
#define STATUS_FILE	"status.json"
#define XO_DIR		".xo-cowork"
#define GITHUB_FILE	"github_token.json"
#define IPC_LOG_FILE	"ipc.log"

/* What one worker may do, registered by the broker with its channel. */
struct grant {
	TAILQ_ENTRY(grant) entry;
	uint32_t	 job;
	char		 kind[16];
	char		 connector[16];
	char		 remote[40];
	uint32_t	 ops;	/* GRANT_OP_* allowed */
	uint32_t	 used;	/* GRANT_OP_* already done: each once */
#define VAULT_USED_CLIENT_GET	0x100u	/* vercel_client read */
#define VAULT_USED_CLIENT_PUT	0x200u	/* vercel_client stored */
	uint32_t	 pid;
	int		 fd;
	struct event	*ev;
};

struct vault {
	struct child_init ci;
	struct event_base *base;
	int		 wsfd;		/* workspace */
	int		 statefd;	/* state_dir */
	int		 homefd;	/* home */
	struct audit	*audit;
	uint8_t		 key[AUDIT_KEY_LEN];
	int		 httpfd;
	struct event	*httpev;
	struct event	*ctlev;
	TAILQ_HEAD(, grant) grants;
	yajl_val	 status;	/* status.json: identities, errors */
	/* Answers given since start, by operation (VAULT_OP_*) and outcome
	 * (VAULT_OUT_*), pushed to http in the metadata for /metrics. */
	uint64_t	 ops[4][5];
};

#define VAULT_OP_PUT	0
#define VAULT_OP_GET	1
#define VAULT_OP_MARK	2
#define VAULT_OP_DELETE	3

extern struct vault vault;

void vault_violation(const char *peer, const char *what)
    __attribute__((noreturn));
int vault_log(const struct audit_rec *rec);

/* vault_creds.c */
uint32_t vault_store_status(enum store_err e);
/* A store commit hook: the IPC log line rec (a struct audit_rec *). */
int vault_log_cb(void *rec);
void vault_status_load(void);
void vault_meta_push(void);
/* Count one answer of an operation by its status. */
void vault_count(int op, uint32_t status);
void vault_handle_delete(struct msg *m);
void vault_grant_add(struct msg *m);
void vault_grant_end(uint32_t job);

/* vault_rclone.c: remotes in <workspace>/rclone.conf. */
const char *vault_rclone_type(const char *connector);
void vault_rclone_meta(yajl_gen g);
uint32_t vault_rclone_put(struct grant *gr, yajl_val entry,
    struct audit_rec *rec, char *err, size_t errlen);
uint32_t vault_rclone_delete(const char *connector, const char *remote,
    struct audit_rec *rec, char *err, size_t errlen);

/* vault_github.c: <home>/.xo-cowork/github_token.json, written from a
 * device-flow ("cli") entry, removed for anything else (entry NULL). */
enum store_err vault_github_file(yajl_val entry, yajl_val user, char *err,
    size_t errlen);

#endif
