/*
 * Reading and editing rclone.conf in place, without running rclone. The
 * vault lists, adds, replaces and removes one remote's section at a time
 * and keeps every other byte of the file as it was: comments, the other
 * remotes and their order, blank lines, CRLF line endings. The parsing
 * rules, which follow rclone 1.60 (goconfig), are listed in lib/ini.c.
 * Library code: errors are sentences in the caller's buffer.
 */
#ifndef CD_INI_H
#define CD_INI_H

#include <stddef.h>

/* Longest section name accepted (rclone's own names are far shorter). */
#define INI_NAME_MAX 128
/* Longest "type" value accepted: rclone backend names are short words. */
#define INI_TYPE_MAX 32
/* Longest line, its line ending excluded (an OAuth token fits easily). */
#define INI_LINE_MAX (64 * 1024)

struct ini_remote {
	char	name[INI_NAME_MAX + 1];
	char	type[INI_TYPE_MAX + 1];	/* "" for a section without type */
};

/*
 * List the remotes (sections) of rclone.conf text in file order, each with
 * its "type" value. Keys before the first section, which rclone shows as a
 * remote named DEFAULT, are not listed. 0, or -1 with a sentence in err
 * (a duplicate section, a header that does not close, a NUL byte, more
 * than max sections, ...).
 */
int ini_list(const char *buf, size_t len, struct ini_remote *out, size_t max,
    size_t *n, char *err, size_t errlen);

/*
 * 1 if a section named name exists (its type, "" if none, copied into
 * type unless type is NULL), 0 if not, -1 on a parse error (err).
 */
int ini_find(const char *buf, size_t len, const char *name, char *type,
    size_t typelen, char *err, size_t errlen);

/*
 * Where the section named name lies: [*start, *end) runs from the first
 * byte of its header line to the end of its last key line (blank lines
 * and comments after it belong to what follows). 1 if found, 0 if not,
 * -1 on a parse error (err).
 */
int ini_extent(const char *buf, size_t len, const char *name, size_t *start,
    size_t *end, char *err, size_t errlen);

/*
 * Build the text "[name]\n" followed by one "key = value\n" line per entry
 * of the NULL-terminated parallel arrays keys and values, for ini_put().
 * NULL with err if the name or any key or value could not be read back
 * unchanged by rclone: a line break or a NUL, brackets in the name,
 * leading or trailing white space, a key other than [A-Za-z0-9_.-]+, a
 * value rclone would unquote (starting with ` or """), a key given twice.
 * Returns malloc'd text.
 */
char *ini_section(const char *name, const char *const keys[],
    const char *const values[], char *err, size_t errlen);

/*
 * Replace the section named name by section (one complete section whose
 * header is "[name]", as ini_section() builds it), or append it after a
 * separating blank line if the text does not already end with a blank
 * line (ending the last line first if it lacks a line break). The new
 * section takes the line ending (LF or CRLF) of the text around it.
 * malloc'd result of *outlen bytes, or NULL with err on a parse error, an
 * invalid section or a result larger than CD_STORE_FILE_MAX.
 */
char *ini_put(const char *buf, size_t len, const char *name,
    const char *section, size_t *outlen, char *err, size_t errlen);

/*
 * Remove the section named name (its extent, see ini_extent()) and one
 * empty line directly before its header if there is one. malloc'd result
 * of *outlen bytes, or NULL with err if it is absent or on a parse error.
 */
char *ini_delete(const char *buf, size_t len, const char *name,
    size_t *outlen, char *err, size_t errlen);

#endif
