/*
 * Constant-time comparison of secrets presented by peers (the API token,
 * OAuth states, pasted codes): the time taken depends on the length of
 * the presented string only, never on where it first differs.
 */
#ifndef CD_CTCMP_H
#define CD_CTCMP_H

/* 1 if equal, else 0. */
int ct_streq(const char *presented, const char *expected);

#endif
