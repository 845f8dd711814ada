/*
 * Every size, count and time limit of connectord lives here, so that a
 * reviewer can see in one place how much any peer can make us allocate or
 * how long any wait can last.
 */
#ifndef CD_LIMITS_H
#define CD_LIMITS_H

/* Largest request body the API accepts; larger bodies get a JSON 413. */
#define CD_HTTP_BODY_MAX (64 * 1024)
/* Hard cap evhttp enforces itself (its own 413 page) for bodies it will
 * not even buffer; between CD_HTTP_BODY_MAX and this we answer JSON. */
#define CD_HTTP_BODY_HARD_MAX (1024 * 1024)
/* Total size of all request headers. */
#define CD_HTTP_HEADERS_MAX (16 * 1024)
/* Longest request path the router looks at (a longer one is a 404). */
#define CD_ROUTE_PATH_MAX 512
/* Most segments a routed path has ("/api/connectors/x/sessions/y/submit"
 * has six); a path with more is a 404. */
#define CD_ROUTE_SEGS_MAX 8
/* Seconds a client has to send a request or read an answer. */
#define CD_HTTP_TIMEOUT_SEC 30
/* Concurrent client connections served at once by the http role. */
#define CD_HTTP_CONN_MAX 1024
/* Requests waiting for a worker or the vault at once. */
#define CD_HTTP_PENDING_MAX 256

/* Web console: unused one-time sign-in links kept at once (the oldest is
 * dropped), and how long one stays valid. */
#define CD_CONSOLE_LINKS_MAX 8
#define CD_CONSOLE_LINK_TTL 600
/* Signed-in browsers at once (the oldest is signed out), and how long a
 * sign-in lasts (absolute, not renewed by use). */
#define CD_CONSOLE_SESSIONS_MAX 16
#define CD_CONSOLE_SESSION_TTL (12 * 3600)

/* Deepest JSON nesting accepted from any peer or file. */
#define CD_JSON_DEPTH_MAX 32
/* Largest credential file (mcp-tokens.json, rclone.conf) the vault reads. */
#define CD_STORE_FILE_MAX (1024 * 1024)
/* Largest secret (token, API key) accepted anywhere. */
#define CD_SECRET_MAX 4096

/* Largest credential entry (and account identity) a worker may hand the
 * vault; a worker that sends more is ended as hostile. */
#define CD_VAULT_ENTRY_MAX (16 * 1024)

/* IPC: largest payload of one message on any channel. */
#define CD_MSG_PAYLOAD_MAX (256 * 1024)
/* IPC: largest string inside a payload. */
#define CD_MSG_STR_MAX (192 * 1024)
/* IPC: largest frame http and the vault take from the broker once they
 * run (a MSG_CONFIG holds the whole configuration, well under this). */
#define CD_MSG_CTL_MAX (64 * 1024)
/* IPC: most descriptors passed with one message. */
#define CD_MSG_FDS_MAX 8

/* Listening addresses a configuration may name. */
#define CD_LISTEN_MAX 8
/* Longest line of the configuration file. */
#define CD_CONF_LINE_MAX 4096

/* Workers alive at once (all kinds). */
#define CD_WORKERS_MAX 64
/* Seconds a token-validation worker may live. */
#define CD_JOB_TTL_CHECK 30
/* Seconds an outbound provider request may take, connection included. */
#define CD_CURL_TIMEOUT_SEC 15
/* Largest CA bundle (ca_file) copied into a job's directory. */
#define CD_CA_FILE_MAX (4 * 1024 * 1024)
/* Largest provider response body a worker reads. */
#define CD_CURL_BODY_MAX (256 * 1024)
/* Longest sentence a worker reports to http (with its NUL). */
#define CD_SENTENCE_MAX 512
/* Longest OneDrive drive id or type kept from Microsoft Graph (with its
 * NUL); they become rclone.conf values. */
#define CD_DRIVE_ID_MAX 256
/* Longest lifetime (seconds) taken from a token answer's expires_in:
 * ten years; a longer one is cut to this. */
#define CD_OAUTH_EXPIRES_MAX (10LL * 366 * 24 * 3600)
/* Longest Vercel OAuth client id or secret kept (with its NUL). */
#define CD_OAUTH_CLIENT_MAX 256

/* Longest OAuth state taken from rclone's local URL (with its NUL). */
#define CD_RCLONE_STATE_MAX 64
/* Longest line of rclone's output read as its token (a JSON object). */
#define CD_RCLONE_TOKEN_MAX (4 * CD_SECRET_MAX)
/* Longest verification URL taken from gh's output (with its NUL). */
#define CD_GH_URL_MAX 512

/* The broker's control socket (connectorctl status): longest request
 * line, connections served at once (more are closed at accept), seconds
 * one connection may last from accept to the last byte of its answer,
 * and the largest answer (every field of every job is bounded, and there
 * are at most CD_WORKERS_MAX jobs). */
#define CD_CTL_REQUEST_MAX 64
#define CD_CTL_CONN_MAX 8
#define CD_CTL_TIMEOUT_SEC 5
#define CD_CTL_ANSWER_MAX (64 * 1024)
/* The broker pushes its counters to http (MSG_STATS) at most once per
 * this many milliseconds, however often they change. */
#define CD_STATS_INTERVAL_MS 1000

/* /metrics in http: most series one labelled counter family keeps (a
 * label combination past it is dropped, never allocated), requests
 * timed at once (the oldest entry goes first), flows followed at once
 * from their start to their outcome, and the longest label value. */
#define CD_METRICS_SERIES_MAX 512
#define CD_METRICS_INFLIGHT_MAX (CD_HTTP_PENDING_MAX * 2)
#define CD_METRICS_FLOWS_MAX (CD_WORKERS_MAX * 4)
#define CD_METRICS_LABEL_MAX 48

/* Restart backoff for a crashed http or vault: first delay and ceiling, ms. */
#define CD_RESTART_BACKOFF_MIN_MS 100
#define CD_RESTART_BACKOFF_MAX_MS 5000
/* Seconds children get to exit on SIGTERM before SIGKILL. */
#define CD_SHUTDOWN_GRACE_SEC 3

/* Resource limits applied to every child. */
#define CD_RLIMIT_NOFILE 4096
#define CD_RLIMIT_NOFILE_WORKER 256
#define CD_RLIMIT_AS_WORKER (1024UL * 1024 * 1024)
/* Go programs (gh, rclone) reserve address space far beyond what they
 * use; 1 GiB makes the Go runtime abort, so tool workers get more. */
#define CD_RLIMIT_AS_TOOL (8UL * 1024 * 1024 * 1024)
#define CD_RLIMIT_FSIZE (16UL * 1024 * 1024)

#endif
