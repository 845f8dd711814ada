/*
 * config_reload(): what a SIGHUP's re-read configuration changes in the
 * running daemon. Keys read afresh for every flow, request or reopen take
 * their new value; keys acted on once at start (listeners, directories,
 * identities, authentication, the OAuth port) keep theirs until the next
 * start, and the caller is told which. Library code: never exits, never
 * logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_priv.h"

/* Room for every key serialised: each line fits CD_CONF_LINE_MAX. */
#define CONFIG_DUP_MAX ((CONFIG_NKEYS + CD_LISTEN_MAX) * \
	(CD_CONF_LINE_MAX + 2))

int
config_key_reloadable(const char *key)
{
	int i;

	return (i = config_key_find(key)) != -1 &&
	    config_key_reloadable_at((size_t)i);
}

/* A deep copy, through the serialised form that every child reads. */
int
config_copy(struct config *dst, const struct config *src, char *err,
    size_t errlen)
{
	char	*buf;
	ssize_t	 len;
	int	 rc = -1;

	if ((buf = malloc(CONFIG_DUP_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((len = config_serialize(src, buf, CONFIG_DUP_MAX)) < 0)
		snprintf(err, errlen, "the configuration does not serialise");
	else if (config_init(dst) == -1)
		snprintf(err, errlen, "out of memory");
	else if (config_load_buf(dst, "running", buf, (size_t)len, err,
	    errlen) == -1)
		config_free(dst);
	else
		rc = 0;
	free(buf);
	return rc;
}

int
config_reload(struct config *running, struct config *loaded,
    const struct config *fresh, config_reload_fn report, void *arg,
    char *err, size_t errlen)
{
	struct config	 nrun, nload;
	char		 kept[CD_CONF_LINE_MAX];
	size_t		 i, ntaken = 0, taken[CONFIG_NKEYS];

	if (config_copy(&nrun, running, err, errlen) == -1)
		return -1;
	if (config_copy(&nload, loaded, err, errlen) == -1) {
		config_free(&nrun);
		return -1;
	}
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_key_equal(loaded, fresh, i) ||
		    !config_key_reloadable_at(i))
			continue;
		if (config_key_copy(&nrun, fresh, i) == -1 ||
		    config_key_copy(&nload, fresh, i) == -1) {
			snprintf(err, errlen, "cannot take the new %s: %s",
			    config_key_name(i), strerror(errno));
			config_free(&nrun);
			config_free(&nload);
			return -1;
		}
		taken[ntaken++] = i;
	}
	config_free(running);
	config_free(loaded);
	*running = nrun;
	*loaded = nload;
	/* Reported once both are in place, so that no report is undone. */
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_key_equal(loaded, fresh, i))
			continue;
		config_key_text(running, i, kept, sizeof(kept));
		report(config_key_name(i), 0, kept, arg);
	}
	for (i = 0; i < ntaken; i++)
		report(config_key_name(taken[i]), 1, NULL, arg);
	return (int)ntaken;
}
