/*
 * connectorctl: offline checks of a connectord installation. One command
 * so far:
 *
 *	connectorctl audit verify [path ...]
 *
 * checks the hash chain of the vault's IPC log (default: ipc.log in the
 * default state_dir). Several paths are one rotated series, oldest first
 * (ipc.log.2 ipc.log.1 ipc.log): each file must continue the chain where
 * the one before it ended. A series whose first file starts past seq 1
 * continues files that were rotated away; that is accepted, and said, when
 * the file starts with the LOG_REOPENED line a rotation writes.
 *
 * Exit status as diff(1): 0 intact, 1 broken, 2 when the log could not be
 * checked at all (usage, open or read error), so a script never mistakes
 * "could not look" for "found damage".
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

#define AUDIT_LOG_DEFAULT	"./var/state/ipc.log"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: connectorctl audit verify [path ...]\n");
	exit(2);
}

/*
 * One file of the series. Prints its verdict (prefixed with the path when
 * the series has several files) and returns 0, 1 or 2 as the exit status.
 */
static int
audit_verify_one(const char *path, struct audit_chain *c, int named,
    unsigned long *total)
{
	char msg[512];
	unsigned long n = 0, bad = 0;
	int fd, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path,
		    strerror(errno));
		return 2;
	}
	rv = audit_verify_next(fd, c, &n, &bad, msg, sizeof(msg));
	close(fd);
	if (rv == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path, msg);
		return 2;
	}
	if (rv == 1)
		printf("broken: %s%s%s\n", named ? path : "", named ? ": " : "",
		    msg);
	else if (named)
		printf("ok: %s: %lu lines verified\n", path, n);
	*total += n;
	return rv;
}

static int
audit_verify_paths(char **paths, int count)
{
	struct audit_chain c;
	unsigned long total = 0;
	int i, rv = 0;

	audit_chain_init(&c);
	for (i = 0; i < count && rv == 0; i++)
		rv = audit_verify_one(paths[i], &c, count > 1, &total);
	if (rv == 0 && count > 1)
		printf("ok: %lu lines verified in %d files, one chain\n", total,
		    count);
	else if (rv == 0)
		printf("ok: %lu lines verified\n", total);
	if (rv == 0 && c.continued)
		printf("note: %s starts at seq %llu with a %s line: it "
		    "continues a file rotated before it, whose lines are not "
		    "checked here (give the older files first to check "
		    "them too)\n", paths[0], c.first_seq, AUDIT_TYPE_REOPENED);
	/* A verdict that never reached stdout must not look like success. */
	if (fflush(stdout) == EOF) {
		fprintf(stderr, "connectorctl: stdout: %s\n", strerror(errno));
		return 2;
	}
	return rv;
}

int
main(int argc, char *argv[])
{
	static char *fallback[] = { AUDIT_LOG_DEFAULT };

	if (argc < 3 || strcmp(argv[1], "audit") != 0 ||
	    strcmp(argv[2], "verify") != 0)
		usage();
	/* No options yet; a file named "-x" can be given as "./-x". */
	for (int i = 3; i < argc; i++)
		if (argv[i][0] == '-')
			usage();
	if (argc == 3)
		return audit_verify_paths(fallback, 1);
	return audit_verify_paths(argv + 3, argc - 3);
}
