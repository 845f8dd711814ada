/*
 * Durable, atomic replacement of the files the vault owns: a lock, a
 * temporary file in the same directory, fsync, a commit hook (the IPC
 * log line), rename, fsync of the directory, mode 0600. A file that
 * cannot be parsed is never overwritten. Library code.
 */
#ifndef CD_STORE_H
#define CD_STORE_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

/* Outcome classes, mapped to HTTP status codes by the caller. */
enum store_err {
	STORE_OK = 0,
	STORE_ERR_CORRUPT,	/* the file exists but cannot be parsed */
	STORE_ERR_IO,		/* read, write or sync failed */
	STORE_ERR_NOSPACE,	/* the file system is full */
	STORE_ERR_LOG,		/* the commit hook (IPC log) refused */
	STORE_ERR_TOO_LARGE,	/* the new text would pass CD_STORE_FILE_MAX */
};

/*
 * Remove the temporary files a writer killed before its rename left beside
 * name (".<name>.<random>.tmp"; they may hold a secret). Only for a
 * directory no live writer uses. Returns how many were removed, or -1.
 */
int store_sweep(int dirfd, const char *name);

/* Take the directory's exclusive lock (blocking). fd or -1. */
int store_lock(int dirfd);
void store_unlock(int lockfd);

/*
 * Read name below dirfd (no symlinks, at most CD_STORE_FILE_MAX bytes).
 * A missing file gives *buf = NULL, *len = 0 and STORE_OK.
 */
enum store_err store_read(int dirfd, const char *name, char **buf,
    size_t *len, char *err, size_t errlen);

/* Parse name as a JSON object; a missing or empty file is {}. */
enum store_err store_json_load(int dirfd, const char *name, yajl_val *out,
    char *err, size_t errlen);

/*
 * The parse of store_json_load() on len bytes already read: text of
 * white space only is {}; anything but a JSON object is
 * STORE_ERR_CORRUPT with a sentence naming name.
 */
enum store_err store_json_parse(const char *buf, size_t len,
    const char *name, yajl_val *out, char *err, size_t errlen);

/*
 * Set member key of the object doc to entry (taking it), or remove it
 * when entry is NULL, and make the file's new text (indented, with a
 * final newline) in *out (malloc'd) and *len. STORE_ERR_TOO_LARGE when
 * the text would be larger than store_read() takes back.
 */
enum store_err store_json_edit(yajl_val doc, const char *key,
    yajl_val entry, char **out, size_t *len, char *err, size_t errlen);

/*
 * Replace name with data. commit (may be NULL) runs after the temporary
 * file is durable and before the rename; if it fails nothing changes.
 */
enum store_err store_write(int dirfd, const char *name, const char *data,
    size_t len, int (*commit)(void *), void *arg, char *err, size_t errlen);

/* Remove name (no error if absent) and sync the directory. */
enum store_err store_remove(int dirfd, const char *name,
    int (*commit)(void *), void *arg, char *err, size_t errlen);

#endif
