/* Unit tests for the pasted-redirect parser (lib/paste.c). */
#include <stdio.h>
#include <string.h>

#include "paste.h"
#include "tap.h"

static int
parses(const char *in, const char *code, const char *state)
{
	struct paste	 p;
	char		 err[256];

	if (paste_parse(in, &p, err, sizeof(err)) == -1) {
		printf("# refused: %s\n", err);
		return 0;
	}
	if (strcmp(p.code, code) != 0) {
		printf("# code '%s'\n", p.code);
		return 0;
	}
	if (state == NULL)
		return !p.has_state;
	return p.has_state && strcmp(p.state, state) == 0;
}

static int
refuses(const char *in)
{
	struct paste	 p;
	char		 err[256] = "";

	return paste_parse(in, &p, err, sizeof(err)) == -1 && err[0] != '\0';
}

int
main(void)
{
	char	 big[PASTE_MAX + 16], enc[64];

	ok(parses("http://localhost:53682/?code=abc&state=xyz", "abc", "xyz"),
	    "a full redirect URL");
	ok(parses("  http://127.0.0.1:53682/?state=S1&code=C1  \n", "C1", "S1"),
	    "any order, white space around");
	ok(parses("https://example.test/cb?code=4%2F0AbC&state=a%2Db", "4/0AbC",
	    "a-b"), "values are percent-decoded once");
	ok(parses("http://x/?code=4%252F&state=s", "4%2F", "s"),
	    "decoded exactly once, not twice");
	ok(parses("http://x/?code=c&scope=a+b&state=s#frag", "c", "s"),
	    "other parameters and a fragment are ignored");
	ok(parses("http://x/?codex=1&code=real&state=s", "real", "s"),
	    "a parameter that only starts with code is not the code");
	ok(parses("4/0AbCdEf", "4/0AbCdEf", NULL), "a bare code");
	ok(parses("4%2F0AbC", "4/0AbC", NULL), "a bare code is decoded once");
	ok(parses("a+b", "a+b", NULL), "a bare code keeps a plus sign");
	ok(parses("http://x/?code=only", "only", NULL),
	    "a URL without state is parsed (the caller decides)");
	ok(refuses(""), "empty paste");
	ok(refuses("   \n"), "white space only");
	ok(refuses("http://x/?state=s"), "URL without code");
	ok(refuses("http://x/?error=access_denied&state=s"),
	    "a provider refusal");
	ok(refuses("http://x/?code=&state=s"), "empty code");
	ok(refuses("http://x/?code=a%2&state=s"), "truncated escape");
	ok(refuses("http://x/?code=a%zz&state=s"), "bad escape");
	ok(refuses("http://x/?code=a%0Ab&state=s"), "a decoded newline");
	ok(refuses("http://x/?code=a+b&state=s"), "a space in a code");
	ok(refuses("two words"), "a bare code with a space");
	ok(refuses("http://x/?code=c&state=%00"), "a NUL in the state");
	ok(refuses("http://x"), "a URL without a query");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ok(refuses(big), "a paste over the limit");
	ok(paste_encode("4/0A b&c=d", enc, sizeof(enc)) == 0 &&
	    strcmp(enc, "4%2F0A%20b%26c%3Dd") == 0, "encoding for a query");
	ok(paste_encode("abcdef", enc, 4) == -1, "encoding refuses overflow");
	return tap_done();
}
