/*
 * libFuzzer target for the configuration parser. Any input must be either
 * rejected with an error or accepted; an accepted configuration must
 * serialise to text that loads back and serialises to the same bytes, since
 * connectord relies on that form to pass its configuration around.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Large enough for every key at its longest value and CD_LISTEN_MAX lines. */
#define FUZZ_SER_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char s1[FUZZ_SER_MAX], s2[FUZZ_SER_MAX];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 a, b;
	char		 err[1024];
	ssize_t		 n1, n2;

	if (config_init(&a) == -1)
		return 0;
	if (config_load_buf(&a, "fuzz", (const char *)data, size, err,
	    sizeof(err)) == -1) {
		/* A rejection must come with a sentence. */
		if (err[0] == '\0')
			abort();
		config_free(&a);
		return 0;
	}
	if ((n1 = config_serialize(&a, s1, sizeof(s1))) == -1)
		abort();
	if (config_init(&b) == -1)
		abort();
	if (config_load_buf(&b, "serialised", s1, (size_t)n1, err,
	    sizeof(err)) == -1)
		abort();
	if ((n2 = config_serialize(&b, s2, sizeof(s2))) == -1)
		abort();
	if (n1 != n2 || memcmp(s1, s2, (size_t)n1) != 0)
		abort();
	config_free(&a);
	config_free(&b);
	return 0;
}
