/*
 * Running an external tool (gh, later rclone) from a worker: found on a
 * fixed PATH or at the configured path, started without a shell with an
 * environment built from an allow-list, stdin from /dev/null, stdout and
 * stderr on pipes, and killed if the worker dies (PR_SET_PDEATHSIG; the
 * broker also kills the worker's whole process group). Output is read in
 * bounded lines with a deadline.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tool.h"

static long
tool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* In the child: plumbing, then exec. Never returns. */
static void
tool_exec(const char *path, char *const argv[], char *const envp[],
    int out, int err)
{
	int null;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if ((null = open("/dev/null", O_RDONLY)) == -1 ||
	    dup2(null, STDIN_FILENO) == -1 || dup2(out, STDOUT_FILENO) == -1 ||
	    dup2(err, STDERR_FILENO) == -1)
		_exit(126);
	signal(SIGPIPE, SIG_DFL);
	execve(path, argv, envp);
	_exit(127);
}

int
tool_start(struct tool *t, const char *path, char *const argv[],
    char *const envp[])
{
	int	 op[2], ep[2];

	memset(t, 0, sizeof(*t));
	t->out = t->err = -1;
	if (pipe2(op, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(ep, O_CLOEXEC) == -1) {
		close(op[0]);
		close(op[1]);
		return -1;
	}
	if ((t->pid = fork()) == 0)
		tool_exec(path, argv, envp, op[1], ep[1]);
	close(op[1]);
	close(ep[1]);
	if (t->pid == -1) {
		close(op[0]);
		close(ep[0]);
		return -1;
	}
	t->out = op[0];
	t->err = ep[0];
	return 0;
}

/* Append what fd has to buf (bounded); 0 at EOF, 1 if data, -1 error. */
static int
tool_fill(int *fd, struct tool_buf *b)
{
	char	 chunk[4096];
	ssize_t	 n;

	n = read(*fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	/* Past the cap the oldest bytes go: we need the last lines. */
	if (b->len + (size_t)n > sizeof(b->data) - 1) {
		size_t drop = b->len + (size_t)n - (sizeof(b->data) - 1);

		if (drop > b->len)
			drop = b->len;
		memmove(b->data, b->data + drop, b->len - drop);
		b->len -= drop;
		if ((size_t)n > sizeof(b->data) - 1)
			n = (ssize_t)(sizeof(b->data) - 1);
	}
	memcpy(b->data + b->len, chunk, (size_t)n);
	b->len += (size_t)n;
	b->data[b->len] = '\0';
	return 1;
}

int
tool_poll(struct tool *t, int extra, int timeout_ms)
{
	struct pollfd	 pfd[3];
	long		 deadline = tool_now_ms() + timeout_ms, left;
	int		 n, rc;

	for (;;) {
		n = 0;
		if (t->out != -1)
			pfd[n++] = (struct pollfd){ .fd = t->out, .events = POLLIN };
		if (t->err != -1)
			pfd[n++] = (struct pollfd){ .fd = t->err, .events = POLLIN };
		if (n == 0)
			return 0;
		if (extra != -1)
			pfd[n++] = (struct pollfd){ .fd = extra, .events = POLLIN };
		left = deadline - tool_now_ms();
		rc = poll(pfd, (nfds_t)n, timeout_ms < 0 ? -1 :
		    (int)(left > 0 ? left : 0));
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc == 0 ? -1 : -2;
		for (int i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == extra)
				return 2;
			if (pfd[i].fd == t->out)
				tool_fill(&t->out, &t->outbuf);
			else
				tool_fill(&t->err, &t->errbuf);
		}
		return 1;
	}
}

int
tool_read(struct tool *t, int timeout_ms)
{
	return tool_poll(t, -1, timeout_ms);
}

int
tool_wait(struct tool *t)
{
	int	 status;
	pid_t	 r;

	if (t->out != -1)
		close(t->out);
	if (t->err != -1)
		close(t->err);
	t->out = t->err = -1;
	do {
		r = waitpid(t->pid, &status, 0);
	} while (r == -1 && errno == EINTR);
	t->pid = 0;
	if (r == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 +
	    (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void
tool_kill(struct tool *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		(void)tool_wait(t);
	}
	explicit_bzero(t->outbuf.data, sizeof(t->outbuf.data));
	explicit_bzero(t->errbuf.data, sizeof(t->errbuf.data));
}
