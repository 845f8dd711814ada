/*
 * libFuzzer target for the pasted-redirect parser. Invariants: a parse
 * never crashes; an accepted code and state are printable ASCII without
 * spaces; encoding them and parsing "http://h/?code=..&state=.." gives
 * them back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "paste.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_clean(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	 in[PASTE_MAX + 2], url[3 * 2 * PASTE_FIELD_MAX + 64];
	static struct paste p, q;
	char		 ec[3 * PASTE_FIELD_MAX + 1], es[3 * PASTE_FIELD_MAX + 1];
	char		 err[256];

	if (size > PASTE_MAX + 1)
		size = PASTE_MAX + 1;
	memcpy(in, data, size);
	in[size] = '\0';
	if (paste_parse(in, &p, err, sizeof(err)) == -1)
		return 0;
	check_clean(p.code);
	if (p.has_state)
		check_clean(p.state);
	if (paste_encode(p.code, ec, sizeof(ec)) == -1 ||
	    paste_encode(p.has_state ? p.state : "s", es, sizeof(es)) == -1)
		abort();
	strcpy(url, "http://h/?code=");
	strcat(url, ec);
	strcat(url, "&state=");
	strcat(url, es);
	if (paste_parse(url, &q, err, sizeof(err)) == -1 ||
	    strcmp(q.code, p.code) != 0 ||
	    strcmp(q.state, p.has_state ? p.state : "s") != 0)
		abort();
	return 0;
}
