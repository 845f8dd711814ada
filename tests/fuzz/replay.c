/*
 * Replays a fuzz target's committed corpus without libFuzzer, so that
 * make test runs every seed (and every crash ever found and added) with
 * the ordinary compiler. Each file is one TAP test point: a crash or an
 * abort() from the target's invariant checks fails the whole run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE	*f;
	uint8_t	*buf;
	long	 len;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) == -1 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) == -1 ||
	    (buf = malloc((size_t)len + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

int
main(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[4096];
	int		 n = 0;

	if ((d = opendir(CORPUS_DIR)) == NULL) {
		ok(0, "open corpus " CORPUS_DIR);
		return tap_done();
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, de->d_name);
		ok(replay_file(path) == 0, de->d_name);
		n++;
	}
	closedir(d);
	ok(n > 0, "the corpus is not empty");
	return tap_done();
}
