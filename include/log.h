/*
 * Logging for every role. Lines carry the role and the function name:
 * "vault: store_write: rename: Permission denied" on stderr; in syslog the
 * role is the ident: "connectord-vault[pid]: store_write: rename: ...".
 * Nothing secret may be passed to these functions; callers log message
 * types and lengths, never payloads.
 */
#ifndef CD_LOG_H
#define CD_LOG_H

#include <stdarg.h>

/*
 * Start logging: to stderr when foreground, else to syslog (facility
 * daemon). verbose 0 logs warnings and information, 1 or more (-v, -vv)
 * adds debug lines. The role must be set first.
 */
void log_init(int foreground, int verbose);
/* Name the role ("broker", "http", "worker gdrive"): the prefix of every
 * line on stderr, the syslog ident ("connectord-http"). */
void log_set_role(const char *role);
int log_get_verbose(void);

void log_warn_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_warnx_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_info_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_debug_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fatal_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
void fatalx_(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#define log_warn(...) log_warn_(__func__, __VA_ARGS__)
#define log_warnx(...) log_warnx_(__func__, __VA_ARGS__)
#define log_info(...) log_info_(__func__, __VA_ARGS__)
#define log_debug(...) log_debug_(__func__, __VA_ARGS__)
#define fatal(...) fatal_(__func__, __VA_ARGS__)
#define fatalx(...) fatalx_(__func__, __VA_ARGS__)

#endif
