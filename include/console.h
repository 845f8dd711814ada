/*
 * The web console (console/ in the source tree): static files embedded
 * into the http role at build time by scripts/embed.py, and the limits of
 * its sign-in and cookie sessions.
 */
#ifndef CD_CONSOLE_H
#define CD_CONSOLE_H

#include <stddef.h>

struct console_asset {
	const char		*path;	/* "/", "/console.js", ... */
	const char		*type;	/* Content-Type */
	const unsigned char	*data;
	size_t			 len;
	const char		*etag;	/* quoted strong ETag */
};

extern const struct console_asset console_assets[];
extern const size_t console_asset_count;

#endif
