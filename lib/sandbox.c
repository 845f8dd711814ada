/*
 * Privilege drop and seccomp filters for every role. The order of the
 * steps is fixed (see sandbox.h and SECURITY.md) and each one fails
 * closed. The allowlists name what our own code and the libraries it
 * links (libevent, yajl, OpenSSL, libcurl, glibc) need at run time;
 * everything else traps, and the SIGSYS handler reports the syscall
 * number before the process exits, so that a missing entry is diagnosed
 * rather than guessed.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

/* Syscalls every role of ours makes: memory, time, signals, I/O on
 * descriptors it already holds, the event loop, and exiting. */
static const int sb_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(close), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
	SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(shutdown),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
	SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(brk),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(fcntl), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(lseek), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigaction), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(getrandom), SCMP_SYS(eventfd2),
	SCMP_SYS(pipe2), SCMP_SYS(futex), SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(sched_yield),
	SCMP_SYS(dup), SCMP_SYS(dup3), SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime), SCMP_SYS(prlimit64), SCMP_SYS(uname),
	SCMP_SYS(sysinfo), SCMP_SYS(sigaltstack),
};

/* The http role: accept on the listening sockets it was given. */
static const int sb_http[] = {
	SCMP_SYS(accept), SCMP_SYS(accept4),
};

/* The vault: files in the directories it holds, nothing else. */
static const int sb_vault[] = {
	SCMP_SYS(openat), SCMP_SYS(mkdirat), SCMP_SYS(unlinkat),
	SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(fsync),
	SCMP_SYS(fdatasync), SCMP_SYS(flock), SCMP_SYS(ftruncate),
	SCMP_SYS(fchmod), SCMP_SYS(fchown), SCMP_SYS(getdents64),
	SCMP_SYS(statx), SCMP_SYS(umask), SCMP_SYS(pread64),
	SCMP_SYS(pwrite64), SCMP_SYS(faccessat), SCMP_SYS(faccessat2),
	SCMP_SYS(readlinkat),
};

/* A worker of ours: outbound connections through libcurl (whose
 * resolver runs in a thread), read-only opens (CA bundle, resolver
 * files). */
static const int sb_worker[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind),
	SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg),
	SCMP_SYS(socketpair), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(statx),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(access),
	SCMP_SYS(readlinkat), SCMP_SYS(getdents64), SCMP_SYS(pread64),
	SCMP_SYS(ioctl), SCMP_SYS(wait4), SCMP_SYS(getppid),
};

/* Never, in any process of ours, the broker included. */
static const int sb_deny[] = {
	SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev), SCMP_SYS(mount), SCMP_SYS(umount2),
	SCMP_SYS(pivot_root), SCMP_SYS(swapon),
	SCMP_SYS(swapoff), SCMP_SYS(reboot), SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load), SCMP_SYS(init_module),
	SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(keyctl), SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	SCMP_SYS(userfaultfd), SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at), SCMP_SYS(kcmp), SCMP_SYS(acct),
	SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(iopl),
	SCMP_SYS(ioperm), SCMP_SYS(fanotify_init), SCMP_SYS(pidfd_getfd),
	SCMP_SYS(io_uring_setup),
};

/* Identity changes: the broker needs them for its children; nothing
 * below it does, least of all the programs a worker execs. */
static const int sb_deny_ids[] = {
	SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setreuid),
	SCMP_SYS(setregid), SCMP_SYS(setresuid), SCMP_SYS(setresgid),
	SCMP_SYS(setgroups), SCMP_SYS(capset), SCMP_SYS(chroot),
	SCMP_SYS(unshare), SCMP_SYS(setns),
};

const char *
sandbox_role_name(enum sandbox_role role)
{
	switch (role) {
	case SANDBOX_HTTP: return "http";
	case SANDBOX_VAULT: return "vault";
	case SANDBOX_WORKER: return "worker";
	case SANDBOX_EXEC: return "exec";
	case SANDBOX_BROKER: return "broker";
	}
	return "unknown";
}

/* Report the trapped syscall with async-signal-safe calls, then exit. */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *ctx)
{
	char	 buf[96], num[16];
	int	 n = si->si_syscall, i = (int)sizeof(num);
	size_t	 len;

	(void)sig;
	(void)ctx;
	num[--i] = '\0';
	do {
		num[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0 && i > 0);
	len = 0;
	for (const char *p = "connectord: seccomp: forbidden syscall ";
	    *p != '\0'; p++)
		buf[len++] = *p;
	for (const char *p = num + i; *p != '\0' && len < sizeof(buf) - 1;
	    p++)
		buf[len++] = *p;
	buf[len++] = '\n';
	(void)!write(STDERR_FILENO, buf, len);
	_exit(159);
}

static int
sb_add_list(scmp_filter_ctx ctx, uint32_t action, const int *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* A syscall this architecture lacks resolves negative. */
		if (list[i] < 0)
			continue;
		if (seccomp_rule_add(ctx, action, list[i], 0) < 0)
			return -1;
	}
	return 0;
}

#define SB_ADD(ctx, act, list) \
	sb_add_list((ctx), (act), (list), sizeof(list) / sizeof((list)[0]))

/*
 * Rules that look at arguments: memory may never become executable,
 * clone may only make threads (clone3 hides its flags in memory, so it
 * answers ENOSYS and glibc falls back to clone), and a worker may open
 * files only for reading.
 */
static int
sb_add_arg_rules(scmp_filter_ctx ctx, enum sandbox_role role)
{
	int rc = 0;

	rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* libevent sizes its reads with FIONREAD; no other ioctl. */
	if (role != SANDBOX_WORKER)
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		    SCMP_A1(SCMP_CMP_EQ, FIONREAD, 0));
	if (role == SANDBOX_WORKER) {
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
		    SCMP_SYS(clone3), 0);
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
		    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC,
		    O_RDONLY));
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(openat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ,
		    O_ACCMODE | O_CREAT | O_TRUNC, O_WRONLY));
	}
	if (role == SANDBOX_HTTP) {
		/* Lazy library opens (locale, time zone) fail cleanly
		 * rather than killing the front end. */
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(openat), 0);
		rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
		    SCMP_SYS(socket), 0);
	}
	return rc < 0 ? -1 : 0;
}

int
sandbox_seccomp(enum sandbox_role role, char *err, size_t errlen)
{
	scmp_filter_ctx		 ctx;
	struct sigaction	 sa;
	uint32_t		 def;
	int			 rc = -1;

	def = role == SANDBOX_EXEC || role == SANDBOX_BROKER ?
	    SCMP_ACT_ALLOW : SCMP_ACT_TRAP;
	if ((ctx = seccomp_init(def)) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	/* The broker's filter is a denylist: it forks, execs, changes ids
	 * and serves the control socket (accept4, SO_PEERCRED through
	 * getsockopt), none of which sb_deny names. */
	if (role == SANDBOX_EXEC || role == SANDBOX_BROKER) {
		if (SB_ADD(ctx, SCMP_ACT_ERRNO(EPERM), sb_deny) == -1 ||
		    (role == SANDBOX_EXEC &&
		    SB_ADD(ctx, SCMP_ACT_ERRNO(EPERM), sb_deny_ids) == -1))
			goto out;
	} else {
		if (SB_ADD(ctx, SCMP_ACT_ALLOW, sb_common) == -1 ||
		    (role == SANDBOX_HTTP && SB_ADD(ctx, SCMP_ACT_ALLOW,
		    sb_http) == -1) ||
		    (role == SANDBOX_VAULT && SB_ADD(ctx, SCMP_ACT_ALLOW,
		    sb_vault) == -1) ||
		    (role == SANDBOX_WORKER && SB_ADD(ctx, SCMP_ACT_ALLOW,
		    sb_worker) == -1) ||
		    sb_add_arg_rules(ctx, role) == -1)
			goto out;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sandbox_sigsys;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) == -1)
			goto out;
	}
	if (seccomp_load(ctx) < 0)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		snprintf(err, errlen, "cannot install the %s seccomp filter",
		    sandbox_role_name(role));
	seccomp_release(ctx);
	return rc;
}

/* Change to uid/gid and prove that the old ids cannot be regained. */
static int
sandbox_ids(const struct sandbox *sb, char *err, size_t errlen)
{
	if (setgroups(1, &sb->gid) == -1 ||
	    setresgid(sb->gid, sb->gid, sb->gid) == -1 ||
	    setresuid(sb->uid, sb->uid, sb->uid) == -1) {
		snprintf(err, errlen, "cannot change to uid %u gid %u: %s",
		    (unsigned)sb->uid, (unsigned)sb->gid, strerror(errno));
		return -1;
	}
	if (sb->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		snprintf(err, errlen, "uid 0 could be regained after the drop");
		return -1;
	}
	if (sb->gid != 0 && sb->uid != 0 && setgid(0) != -1) {
		snprintf(err, errlen, "gid 0 could be regained after the drop");
		return -1;
	}
	return 0;
}

/*
 * Empty the capability bounding set, so that nothing the process or its
 * descendants execute can ever hold a capability again. This needs
 * CAP_SETPCAP, which a process loses with its uid 0: it runs before the
 * uid change. A capability that cannot be dropped fails the start rather
 * than being left behind (a bounding set without CAP_SETPCAP, such as a
 * service unit that forgot it, cannot be emptied).
 */
static int
sandbox_bounding(char *err, size_t errlen)
{
	for (int c = 0; c <= CAP_LAST_CAP; c++) {
		/* EINVAL: a capability this kernel does not know. */
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == -1) {
			snprintf(err, errlen, "cannot drop capability %d from "
			    "the bounding set (the broker needs CAP_SETPCAP): "
			    "%s", c, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Empty every capability set. A vault that stays uid 0 (a workspace
 * owned by root) thus keeps no power beyond the ownership of root's
 * files; for any other uid the change of uid has emptied them already,
 * and this makes sure (the ambient set goes with the permitted one). */
static int
sandbox_caps(char *err, size_t errlen)
{
	struct __user_cap_header_struct	 hdr;
	struct __user_cap_data_struct	 data[2];

	memset(&hdr, 0, sizeof(hdr));
	memset(data, 0, sizeof(data));
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capset, &hdr, data) == -1) {
		snprintf(err, errlen, "cannot clear capabilities: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
sandbox_limits(const struct sandbox *sb, char *err, size_t errlen)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		goto fail;
	if (sb->nofile > 0) {
		rl.rlim_cur = rl.rlim_max = sb->nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			goto fail;
	}
	/* AddressSanitizer reserves terabytes of shadow address space: an
	 * instrumented build keeps every limit but this one. */
#if !defined(__SANITIZE_ADDRESS__)
	if (sb->as > 0) {
		rl.rlim_cur = rl.rlim_max = sb->as;
		if (setrlimit(RLIMIT_AS, &rl) == -1)
			goto fail;
	}
#endif
	if (sb->role == SANDBOX_HTTP) {
		/* The front end never creates processes. */
		rl.rlim_cur = rl.rlim_max = 0;
		if (setrlimit(RLIMIT_NPROC, &rl) == -1)
			goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot set resource limits: %s",
	    strerror(errno));
	return -1;
}

int
sandbox_enter(const struct sandbox *sb, char *err, size_t errlen)
{
	if (sb->chroot_dir != NULL && sb->change_ids) {
		if (chroot(sb->chroot_dir) == -1 || chdir("/") == -1) {
			snprintf(err, errlen, "cannot chroot to %s: %s",
			    sb->chroot_dir, strerror(errno));
			return -1;
		}
	}
	if (sb->change_ids && sandbox_bounding(err, errlen) == -1)
		return -1;
	if (sb->change_ids && sandbox_ids(sb, err, errlen) == -1)
		return -1;
	if (sb->change_ids && sandbox_caps(err, errlen) == -1)
		return -1;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		snprintf(err, errlen, "cannot become non-dumpable");
		return -1;
	}
	if (sandbox_limits(sb, err, errlen) == -1)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "cannot set no-new-privs");
		return -1;
	}
	if (sb->acquire != NULL && sb->acquire(sb->arg, err, errlen) == -1)
		return -1;
	return sandbox_seccomp(sb->role, err, errlen);
}
