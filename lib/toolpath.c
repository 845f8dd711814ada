/* Finding an external tool's executable; see toolpath.h. */
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "toolpath.h"

static int
toolpath_usable(const char *path)
{
	struct stat st;

	return access(path, X_OK) == 0 && stat(path, &st) == 0 &&
	    S_ISREG(st.st_mode);
}

int
toolpath_find(const char *configured, const char *name, char *out,
    size_t len)
{
	const char	*p, *end;

	if (configured != NULL && strchr(configured, '/') != NULL) {
		snprintf(out, len, "%s", configured);
		return toolpath_usable(out) ? 0 : -1;
	}
	if (configured != NULL)
		name = configured;
	for (p = TOOLPATH_PATH; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL)
			end = p + strlen(p);
		snprintf(out, len, "%.*s/%s", (int)(end - p), p, name);
		if (toolpath_usable(out))
			return 0;
	}
	return -1;
}
