/*
 * Where an external tool (rclone, gh) lives: the configured path, the
 * configured name or the default name on a fixed PATH (never the
 * caller's environment). Shared by the broker, which refuses a flow at
 * once when the tool is missing, and by the worker that runs it.
 */
#ifndef CD_TOOLPATH_H
#define CD_TOOLPATH_H

#include <stddef.h>

/* The fixed PATH given to tools and searched here. */
#define TOOLPATH_PATH "/usr/local/bin:/usr/bin:/bin"

/* 0 with the executable's path in out, or -1 if none is runnable. */
int toolpath_find(const char *configured, const char *name, char *out,
    size_t len);

#endif
