/*
 * try-role: enter one role's real sandbox (the same sandbox_enter() call,
 * identities, chroot and seccomp filter as the daemon's role) and try one
 * operation, reporting what the kernel said. Each attempt runs in a child
 * so that a trapped syscall, which ends the process, is reported too.
 *
 * usage: try-role http|vault|worker <config-file> <op> [arg]
 *   ops: open PATH, open-write PATH, socket, exec PATH, ptrace, mount,
 *        setuid, chroot
 * prints "allowed", "denied: <errno name>" or "denied: seccomp".
 */
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "config.h"
#include "roles.h"
#include "sandbox.h"

static int
try_op(const char *op, const char *arg)
{
	char *const argv[] = { (char *)arg, NULL };
	int fd = -1;

	if (strcmp(op, "open") == 0)
		fd = open(arg, O_RDONLY);
	else if (strcmp(op, "open-write") == 0)
		fd = open(arg, O_WRONLY);
	else if (strcmp(op, "socket") == 0)
		fd = socket(AF_INET, SOCK_STREAM, 0);
	else if (strcmp(op, "exec") == 0)
		fd = execve(arg, argv, NULL);
	else if (strcmp(op, "ptrace") == 0)
		fd = (int)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	else if (strcmp(op, "mount") == 0)
		fd = mount("none", "/mnt", "tmpfs", 0, NULL);
	else if (strcmp(op, "setuid") == 0)
		fd = setuid(0);
	else if (strcmp(op, "chroot") == 0)
		fd = chroot("/");
	else {
		fprintf(stderr, "try-role: unknown op %s\n", op);
		return 2;
	}
	if (fd == -1) {
		printf("denied: %s\n", strerrorname_np(errno));
		return 0;
	}
	printf("allowed\n");
	return 0;
}

static void
try_enter(const char *role, const struct config *conf)
{
	struct role_ids	 ids;
	struct sandbox	 sb;
	char		 err[256];

	if (roles_resolve(conf, &ids, err, sizeof(err)) == -1) {
		fprintf(stderr, "try-role: %s\n", err);
		exit(2);
	}
	memset(&sb, 0, sizeof(sb));
	sb.change_ids = ids.change_ids;
	sb.uid = ids.svc_uid;
	sb.gid = ids.svc_gid;
	if (strcmp(role, "http") == 0) {
		sb.role = SANDBOX_HTTP;
		sb.chroot_dir = CHILD_HTTP_CHROOT;
		if (ids.change_ids) {
			mkdir("/run/connectord", 0755);
			mkdir(CHILD_HTTP_CHROOT, 0555);
		}
	} else if (strcmp(role, "vault") == 0) {
		sb.role = SANDBOX_VAULT;
		sb.uid = ids.vault_uid;
		sb.gid = ids.vault_gid;
	} else if (strcmp(role, "worker") == 0)
		sb.role = SANDBOX_WORKER;
	else {
		fprintf(stderr, "try-role: unknown role %s\n", role);
		exit(2);
	}
	if (sandbox_enter(&sb, err, sizeof(err)) == -1) {
		fprintf(stderr, "try-role: %s\n", err);
		exit(2);
	}
}

int
main(int argc, char *argv[])
{
	struct config	 conf;
	char		 err[512];
	pid_t		 pid;
	int		 status;

	if (argc < 4) {
		fprintf(stderr, "usage: try-role http|vault|worker config op "
		    "[arg]\n");
		return 2;
	}
	if (config_init(&conf) == -1 ||
	    config_load_file(&conf, argv[2], err, sizeof(err)) == -1) {
		fprintf(stderr, "try-role: %s\n", err);
		return 2;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		try_enter(argv[1], &conf);
		status = try_op(argv[3], argc > 4 ? argv[4] : "");
		fflush(stdout);
		_exit(status);
	}
	if (pid == -1 || waitpid(pid, &status, 0) == -1)
		return 2;
	/* 159 is the sandbox's SIGSYS handler: the filter trapped it. */
	if ((WIFEXITED(status) && WEXITSTATUS(status) == 159) ||
	    (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)) {
		printf("denied: seccomp\n");
		return 0;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
