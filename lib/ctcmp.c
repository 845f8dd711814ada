/* Constant-time string comparison; see ctcmp.h. */
#include <string.h>

#include "ctcmp.h"

int
ct_streq(const char *a, const char *b)
{
	size_t		 la = strlen(a), lb = strlen(b);
	unsigned char	 diff = la != lb;

	/* Walk the presented string whatever happens; index the expected
	 * one modulo its length so that neither length leaks early. */
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}
