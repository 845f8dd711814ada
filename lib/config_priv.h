/*
 * What lib/config.c, lib/config_check.c and lib/config_reload.c share, and
 * nothing else sees.
 */
#ifndef CD_CONFIG_PRIV_H
#define CD_CONFIG_PRIV_H

#include <stddef.h>

/* Longest error sentence built while parsing or checking. */
#define CONFIG_ERR_MAX 2048

/* Index of key name in the key table (and in conf->origin), or -1. */
int config_key_find(const char *name);

struct config;

/* The VERCEL_OAUTH_REDIRECT_URI check (needs the key table). 0 or -1. */
int config_check_env(const struct config *conf, char *err, size_t errlen);

/* Per-key primitives for config_reload(), by index in the key table. */
int config_key_reloadable_at(size_t i);
const char *config_key_name(size_t i);
int config_key_equal(const struct config *a, const struct config *b,
    size_t i);
/* A string or number key; 0, or -1 (allocation, or a key that cannot be
 * copied at run time). */
int config_key_copy(struct config *dst, const struct config *src, size_t i);
void config_key_text(const struct config *conf, size_t i, char *buf,
    size_t len);

#endif
