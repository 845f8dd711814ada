/*
 * One bounded HTTPS request with libcurl: HTTPS only (plain HTTP only to
 * a loopback address, for local fakes), no redirects, a total timeout,
 * a cap on the body, the configured proxy and CA bundle and nothing from
 * the environment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cd_limits.h"
#include "worker.h"

static size_t
curl_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct curl_answer	*a = arg;
	size_t			 len = size * n;
	char			*p;

	if (a->len + len > CD_CURL_BODY_MAX)
		return 0;	/* aborts the transfer */
	if ((p = realloc(a->body, a->len + len + 1)) == NULL)
		return 0;
	a->body = p;
	memcpy(a->body + a->len, data, len);
	a->len += len;
	a->body[a->len] = '\0';
	return len;
}

static size_t
curl_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct curl_answer	*a = arg;
	size_t			 len = size * n;
	static const char	 name[] = "x-oauth-scopes:";

	if (len > sizeof(name) - 1 && len < 1024 &&
	    strncasecmp(data, name, sizeof(name) - 1) == 0 && a->scopes == NULL) {
		const char *v = data + sizeof(name) - 1;
		size_t vl = len - (sizeof(name) - 1);

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
		    v[vl - 1] == ' '))
			vl--;
		a->scopes = strndup(v, vl);
	}
	return len;
}

/* The options every request gets. */
static void
curl_setup(CURL *c, const char *url, struct curl_slist *hl,
    struct curl_answer *a, char *errbuf)
{
	const struct config *conf = &worker.ci.conf;
	int loopback_http = strncmp(url, "http://127.0.0.1", 16) == 0 ||
	    strncmp(url, "http://[::1]", 12) == 0 ||
	    strncmp(url, "http://localhost", 16) == 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, loopback_http ? "http" :
	    "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CD_CURL_TIMEOUT_SEC);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)CD_CURL_BODY_MAX);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "connectord/0.1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, curl_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	/* An empty proxy string disables the environment's proxies. */
	curl_easy_setopt(c, CURLOPT_PROXY, conf->https_proxy && !loopback_http ?
	    conf->https_proxy : "");
	if (conf->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, conf->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
}

int
curl_get(const char *url, const char *const *headers, struct curl_answer *a)
{
	return curl_post(url, headers, NULL, a);
}

int
curl_post(const char *url, const char *const *headers, const char *body,
    struct curl_answer *a)
{
	CURL			*c;
	struct curl_slist	*hl = NULL, *t;
	char			 errbuf[CURL_ERROR_SIZE] = "";
	CURLcode		 rc;

	memset(a, 0, sizeof(*a));
	if ((c = curl_easy_init()) == NULL) {
		snprintf(a->error, sizeof(a->error), "libcurl failed to start");
		return -1;
	}
	for (size_t i = 0; headers[i] != NULL; i++) {
		if ((t = curl_slist_append(hl, headers[i])) == NULL)
			break;
		hl = t;
	}
	curl_setup(c, url, hl, a, errbuf);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->code);
	{
		char *loc = NULL;

		if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc) ==
		    CURLE_OK && loc != NULL)
			a->location = strdup(loc);
	}
	/* Headers may hold the secret: wipe libcurl's copies. */
	for (t = hl; t != NULL; t = t->next)
		explicit_bzero(t->data, strlen(t->data));
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		a->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
		snprintf(a->error, sizeof(a->error), "%s",
		    errbuf[0] ? errbuf : curl_easy_strerror(rc));
		a->code = 0;
		return -1;
	}
	return 0;
}

void
curl_answer_free(struct curl_answer *a)
{
	if (a->body != NULL)
		explicit_bzero(a->body, a->len);
	free(a->body);
	free(a->scopes);
	free(a->location);
	a->body = a->scopes = a->location = NULL;
}
