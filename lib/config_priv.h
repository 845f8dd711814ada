/*
 * What lib/config.c and lib/config_check.c share, and nothing else sees.
 */
#ifndef CD_CONFIG_PRIV_H
#define CD_CONFIG_PRIV_H

/* Longest error sentence built while parsing or checking. */
#define CONFIG_ERR_MAX 2048

/* Index of key name in the key table (and in conf->origin), or -1. */
int config_key_find(const char *name);

/* The VERCEL_OAUTH_REDIRECT_URI check (needs the key table). 0 or -1. */
struct config;
int config_check_env(const struct config *conf, char *err, size_t errlen);

#endif
