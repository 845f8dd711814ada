/*
 * connectorctl: offline checks of a connectord installation. One command
 * so far:
 *
 *	connectorctl audit verify [path]
 *
 * checks the hash chain of the vault's IPC log (default: ipc.log in the
 * default state_dir). Exit status as diff(1): 0 intact, 1 broken, 2 when
 * the log could not be checked at all (usage, open or read error), so a
 * script never mistakes "could not look" for "found damage".
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
	fprintf(stderr, "usage: connectorctl audit verify [path]\n");
	exit(2);
}

static int
audit_verify_path(const char *path)
{
	char msg[512];
	unsigned long n = 0, bad = 0;
	int fd, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path,
		    strerror(errno));
		return 2;
	}
	rv = audit_verify_fd(fd, &n, &bad, msg, sizeof(msg));
	close(fd);
	if (rv == -1) {
		fprintf(stderr, "connectorctl: %s: %s\n", path, msg);
		return 2;
	}
	if (rv == 1)
		printf("broken: %s\n", msg);
	else
		printf("ok: %lu lines verified\n", n);
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
	if (argc < 3 || argc > 4 || strcmp(argv[1], "audit") != 0 ||
	    strcmp(argv[2], "verify") != 0)
		usage();
	/* No options yet; a file named "-x" can be given as "./-x". */
	if (argc == 4 && argv[3][0] == '-')
		usage();
	return audit_verify_path(argc == 4 ? argv[3] : AUDIT_LOG_DEFAULT);
}
