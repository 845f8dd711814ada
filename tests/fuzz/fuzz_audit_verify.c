/*
 * libFuzzer target: arbitrary bytes as an IPC log for audit_verify_fd.
 * The verifier reads logs an attacker may have edited, so it must never
 * crash, read out of bounds or leak, and its answer must be consistent.
 *
 *	clang -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *	    lib/audit.c tests/fuzz/fuzz_audit_verify.c -lcrypto -lyajl
 *	./a.out -max_len=20000 tests/fuzz/corpus/audit
 */

#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	unsigned long n, bad;
	char msg[256];
	int rv;

	/* One memfd reused: a file, like the real log, and no pipe limit. */
	if (fd == -1 && (fd = memfd_create("audit", MFD_CLOEXEC)) == -1)
		abort();
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size || lseek(fd, 0, SEEK_SET) == -1)
		abort();
	rv = audit_verify_fd(fd, &n, &bad, msg, sizeof(msg));
	if (rv == 0 && bad != 0)
		abort();
	if (rv == 1 && (bad != n + 1 || msg[0] == '\0' ||
	    strnlen(msg, sizeof(msg)) == sizeof(msg)))
		abort();
	/* An empty input is the only way to get zero lines and success. */
	if (rv == 0 && n == 0 && size != 0)
		abort();
	if (rv == -1)
		abort();
	return 0;
}
