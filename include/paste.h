/*
 * What a person pastes to finish an OAuth flow: the whole redirect URL
 * ("http://localhost:53682/?code=...&state=...", any host) or the bare
 * code. Library code: parses untrusted text with limits, never exits.
 */
#ifndef CD_PASTE_H
#define CD_PASTE_H

#include <stddef.h>

/* Longest code or state accepted, and longest paste. */
#define PASTE_FIELD_MAX	2048
#define PASTE_MAX	8192

struct paste {
	char	code[PASTE_FIELD_MAX + 1];
	char	state[PASTE_FIELD_MAX + 1];
	int	is_url;		/* a redirect URL, not a bare code */
	int	has_state;
};

/*
 * Parse in: surrounding white space is ignored; code and state are
 * percent-decoded exactly once and must then be printable ASCII without
 * spaces. A URL whose query carries "error=" is refused with the
 * provider's refusal in mind. 0, or -1 with a sentence in err.
 */
int paste_parse(const char *in, struct paste *p, char *err, size_t errlen);

/* Percent-encode s for a query string into out. 0, or -1 if too long. */
int paste_encode(const char *s, char *out, size_t outlen);

#endif
