/*
 * A minimal TAP producer for the unit tests: each check prints "ok N - name"
 * or "not ok N - name", and tap_done() prints the plan and returns the exit
 * status (non-zero if anything failed).
 */
#ifndef CD_TAP_H
#define CD_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int
tap_ok(int cond, const char *name, const char *file, int line)
{
	tap_n++;
	if (cond)
		printf("ok %d - %s\n", tap_n, name);
	else {
		tap_failed++;
		printf("not ok %d - %s\n# at %s:%d\n", tap_n, name, file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, name) tap_ok(!!(cond), (name), __FILE__, __LINE__)
#define is_int(a, b, name) do {						\
	long long tap_a_ = (a), tap_b_ = (b);				\
	if (!ok(tap_a_ == tap_b_, name))				\
		printf("# got %lld, expected %lld\n", tap_a_, tap_b_);	\
} while (0)
#define is_str(a, b, name) do {						\
	const char *tap_a_ = (a), *tap_b_ = (b);			\
	if (!ok(tap_a_ && tap_b_ && strcmp(tap_a_, tap_b_) == 0, name))	\
		printf("# got '%s', expected '%s'\n",			\
		    tap_a_ ? tap_a_ : "(null)", tap_b_ ? tap_b_ : "(null)"); \
} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
