/*
 * Running an external tool from a worker (tool.c).
 */
#ifndef CD_TOOL_H
#define CD_TOOL_H

#include <stddef.h>
#include <sys/types.h>

/* The last bytes a tool wrote on one stream (older bytes are dropped). */
struct tool_buf {
	char	 data[16384];
	size_t	 len;
};

struct tool {
	pid_t		 pid;
	int		 out;	/* read end of stdout, -1 at EOF */
	int		 err;	/* read end of stderr, -1 at EOF */
	struct tool_buf	 outbuf;
	struct tool_buf	 errbuf;
};

/* Start path with argv and envp, stdin /dev/null. 0 or -1. */
int tool_start(struct tool *t, const char *path, char *const argv[],
    char *const envp[]);
/* Read what is available within timeout_ms (-1: no limit) into the
 * buffers. 1 data read, 0 both streams at EOF, -1 timeout, -2 error. */
int tool_read(struct tool *t, int timeout_ms);
/* As tool_read, also watching extra (-1: none): 2 when extra is
 * readable (nothing else read). */
int tool_poll(struct tool *t, int extra, int timeout_ms);
/* Close the pipes and reap: the exit code, 128+signal, or -1. */
int tool_wait(struct tool *t);
/* Kill, reap and wipe the buffers. */
void tool_kill(struct tool *t);

#endif
