/*
 * GET /metrics: the http role's counters in the Prometheus text
 * exposition format 0.0.4. http is the front end, so it counts what it
 * sees: requests and their latency per route pattern (never the raw
 * path), flows from their start to their outcome, worker exits by the
 * reason the broker reports. What only others know arrives by message:
 * restarts and the OAuth port lock from the broker (MSG_STATS), vault
 * operations by outcome in the vault's metadata push ("vault_ops").
 *
 * Everything here lives in http's memory: an http restart starts its own
 * counters from zero (connectord_http_start_time_seconds says when),
 * while the broker's and the vault's keep counting in their processes.
 * Every table is bounded (cd_limits.h): a label combination past a cap is
 * dropped, never allocated. No label carries a secret: label values are
 * route patterns, method names, status codes, connector and job kind
 * names, and fixed outcome words.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cd_limits.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "route.h"

/* Latency buckets, seconds: an answer from memory, a token check, a
 * provider that takes its time, a request that waits for its timeout. */
static const double metrics_bounds[] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};
#define METRICS_NBOUNDS (sizeof(metrics_bounds) / sizeof(metrics_bounds[0]))
#define METRICS_LABELS_MAX 3

/* One label combination of a counter family and its value. */
struct mseries {
	char		 v[METRICS_LABELS_MAX][CD_METRICS_LABEL_MAX];
	uint64_t	 n;
};

/* A counter with labels; its series grow up to CD_METRICS_SERIES_MAX. */
struct mfamily {
	const char	*name;
	const char	*help;
	const char	*labels[METRICS_LABELS_MAX];
	size_t		 nlabels;
	struct mseries	*s;
	size_t		 n, cap;
};

/* The latency of one route pattern and method. */
struct hseries {
	const char	*route;		/* a pattern of the route table */
	const char	*method;
	uint64_t	 bucket[METRICS_NBOUNDS];	/* not cumulative */
	uint64_t	 count;
	double		 sum;
};

/* A request being answered: when it came and which route it took. */
struct inflight {
	struct evhttp_request *req;	/* NULL: free slot */
	const char	*route;
	const char	*method;
	struct timespec	 start;
};

/* A flow followed from its start to its outcome. */
struct mflow {
	uint32_t	 job;		/* 0: free slot */
	char		 connector[16];
	char		 kind[16];
	int		 ended;		/* its outcome is counted */
	uint32_t	 exit_reason;	/* MSG_EXIT_*, 0 before the broker's
					   report */
	uint64_t	 seq;		/* order of starts, for eviction */
};

/* What the broker last pushed (MSG_STATS). */
struct bstats {
	uint32_t	 http_restarts, vault_restarts;
	uint32_t	 lock_acquired, lock_refusals, lock_release_waits;
	uint32_t	 lock_held, workers;
};

static struct mfamily m_requests = {
	"connectord_http_requests_total",
	"API requests answered, by route pattern, method and status code.",
	{ "route", "method", "code" }, 3, NULL, 0, 0,
};
static struct mfamily m_flows_started = {
	"connectord_flows_started_total",
	"Flows and token checks whose worker started, by connector and kind.",
	{ "connector", "kind" }, 2, NULL, 0, 0,
};
static struct mfamily m_flows_ended = {
	"connectord_flows_ended_total",
	"Flows and token checks that ended, by connector, kind and outcome.",
	{ "connector", "kind", "outcome" }, 3, NULL, 0, 0,
};
static struct mfamily m_flows_refused = {
	"connectord_flows_refused_total",
	"Flow starts the broker refused (409: the OAuth port lock is held; "
	"503: a tool is missing, too many workers, the vault restarting), "
	"by connector, kind and status code.",
	{ "connector", "kind", "code" }, 3, NULL, 0, 0,
};

static struct hseries	*m_latency;
static size_t		 m_nlatency, m_caplatency;
static struct inflight	 m_inflight[CD_METRICS_INFLIGHT_MAX];
static struct mflow	 m_flows[CD_METRICS_FLOWS_MAX];
static uint64_t		 m_flow_seq;
static struct bstats	 m_broker;
static time_t		 m_started;

/* Worker exits by the broker's reason, indexed by MSG_EXIT_* - 1. */
static const char *const m_exit_names[] = {
	"normal", "signal", "deadline", "cancelled", "spawn",
};
static uint64_t		 m_exits[5];

void
metrics_init(void)
{
	m_started = time(NULL);
}

/* Grow an array of size elements to hold one more, up to max. */
static int
metrics_grow(void **arr, size_t *cap, size_t n, size_t size, size_t max)
{
	size_t	 ncap;
	void	*p;

	if (n < *cap)
		return 0;
	if (n >= max)
		return -1;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > max)
		ncap = max;
	if ((p = realloc(*arr, ncap * size)) == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Add one to the series of a family with these label values. */
static void
metrics_count(struct mfamily *f, const char *a, const char *b,
    const char *c)
{
	const char	*vals[METRICS_LABELS_MAX] = { a, b, c };
	struct mseries	*s;
	size_t		 i, k;

	for (i = 0; i < f->n; i++) {
		for (k = 0; k < f->nlabels; k++)
			if (strncmp(f->s[i].v[k], vals[k],
			    CD_METRICS_LABEL_MAX - 1) != 0)
				break;
		if (k == f->nlabels) {
			f->s[i].n++;
			return;
		}
	}
	if (metrics_grow((void **)&f->s, &f->cap, f->n, sizeof(*f->s),
	    CD_METRICS_SERIES_MAX) == -1)
		return;
	s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	for (k = 0; k < f->nlabels; k++)
		snprintf(s->v[k], sizeof(s->v[k]), "%s", vals[k]);
	s->n = 1;
}

/* ------------------------------------------------------------------ */
/* Requests and their latency. */

void
metrics_request_begin(struct evhttp_request *req, const char *route,
    const char *method)
{
	struct inflight	*slot = NULL;
	size_t		 i;

	for (i = 0; i < CD_METRICS_INFLIGHT_MAX; i++) {
		struct inflight *f = &m_inflight[i];

		/* libevent reuses a freed request's memory: same slot. */
		if (f->req == req || f->req == NULL) {
			slot = f;
			break;
		}
		/* Else the oldest goes: its client left long ago. */
		if (slot == NULL || f->start.tv_sec < slot->start.tv_sec ||
		    (f->start.tv_sec == slot->start.tv_sec &&
		    f->start.tv_nsec < slot->start.tv_nsec))
			slot = f;
	}
	slot->req = req;
	slot->route = route != NULL ? route : "unmatched";
	slot->method = method;
	clock_gettime(CLOCK_MONOTONIC, &slot->start);
}

static void
metrics_observe(const char *route, const char *method, double secs)
{
	struct hseries	*h = NULL;
	size_t		 i;

	for (i = 0; i < m_nlatency; i++)
		if (m_latency[i].route == route &&
		    m_latency[i].method == method) {
			h = &m_latency[i];
			break;
		}
	if (h == NULL) {
		if (metrics_grow((void **)&m_latency, &m_caplatency,
		    m_nlatency, sizeof(*m_latency), CD_METRICS_SERIES_MAX))
			return;
		h = &m_latency[m_nlatency++];
		memset(h, 0, sizeof(*h));
		h->route = route;
		h->method = method;
	}
	for (i = 0; i < METRICS_NBOUNDS && secs > metrics_bounds[i]; i++)
		;
	if (i < METRICS_NBOUNDS)
		h->bucket[i]++;
	h->count++;
	h->sum += secs;
}

void
metrics_request_end(struct evhttp_request *req, int code)
{
	struct inflight	*f = NULL;
	struct timespec	 now;
	char		 cs[16];
	double		 secs;

	for (size_t i = 0; i < CD_METRICS_INFLIGHT_MAX; i++)
		if (m_inflight[i].req == req) {
			f = &m_inflight[i];
			break;
		}
	/* Evicted by newer requests: nothing is known about it. */
	if (f == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - f->start.tv_sec) +
	    (double)(now.tv_nsec - f->start.tv_nsec) / 1e9;
	snprintf(cs, sizeof(cs), "%d", code);
	metrics_count(&m_requests, f->route, f->method, cs);
	metrics_observe(f->route, f->method, secs < 0 ? 0 : secs);
	f->req = NULL;
}

/* ------------------------------------------------------------------ */
/* Flows: started, refused, ended by outcome; worker exits. */

static struct mflow *
metrics_flow_find(uint32_t job)
{
	for (size_t i = 0; job != 0 && i < CD_METRICS_FLOWS_MAX; i++)
		if (m_flows[i].job == job)
			return &m_flows[i];
	return NULL;
}

void
metrics_flow_start(uint32_t job, const char *connector, const char *kind)
{
	struct mflow	*slot = NULL;

	metrics_count(&m_flows_started, connector, kind, NULL);
	for (size_t i = 0; i < CD_METRICS_FLOWS_MAX; i++) {
		struct mflow *f = &m_flows[i];

		if (f->job == 0) {
			slot = f;
			break;
		}
		if (slot == NULL || f->seq < slot->seq)
			slot = f;
	}
	memset(slot, 0, sizeof(*slot));
	slot->job = job;
	slot->seq = ++m_flow_seq;
	snprintf(slot->connector, sizeof(slot->connector), "%s", connector);
	snprintf(slot->kind, sizeof(slot->kind), "%s", kind);
}

void
metrics_flow_refused(const char *connector, const char *kind, uint32_t code)
{
	char cs[16];

	snprintf(cs, sizeof(cs), "%u", code);
	metrics_count(&m_flows_refused, connector, kind, cs);
}

/* The outcome of a worker's result, by its status. */
static const char *
metrics_outcome(uint32_t status)
{
	switch (status) {
	case 200: return "ok";
	case 400: return "bad_input";
	case 403: return "denied";
	case 404: return "not_found";
	case 409: return "conflict";
	case 410: return "expired";
	case 422: return "rejected";
	case 502: return "provider_error";
	case 503: return "unavailable";
	case 504: return "timeout";
	case 507: return "storage_full";
	default: return "error";
	}
}

/* The outcome of a worker that ended without a result, by why. */
static const char *
metrics_exit_outcome(uint32_t reason)
{
	switch (reason) {
	case MSG_EXIT_SIGNAL: return "crashed";
	case MSG_EXIT_DEADLINE: return "deadline";
	case MSG_EXIT_CANCELLED: return "cancelled";
	case MSG_EXIT_SPAWN: return "spawn_failed";
	default: return "no_result";
	}
}

static void
metrics_flow_end(struct mflow *f, const char *outcome)
{
	if (!f->ended)
		metrics_count(&m_flows_ended, f->connector, f->kind, outcome);
	f->ended = 1;
	if (f->exit_reason != 0)
		memset(f, 0, sizeof(*f));
}

void
metrics_flow_result(uint32_t job, uint32_t status)
{
	struct mflow *f;

	if ((f = metrics_flow_find(job)) != NULL)
		metrics_flow_end(f, metrics_outcome(status));
}

void
metrics_flow_exit(uint32_t job, uint32_t reason)
{
	struct mflow *f;

	if (reason >= 1 && reason <= 5)
		m_exits[reason - 1]++;
	if ((f = metrics_flow_find(job)) == NULL)
		return;
	f->exit_reason = reason ? reason : MSG_EXIT_NORMAL;
	if (f->ended)
		memset(f, 0, sizeof(*f));
}

void
metrics_flow_settle(uint32_t job)
{
	struct mflow *f;

	if ((f = metrics_flow_find(job)) != NULL && f->exit_reason != 0)
		metrics_flow_end(f, metrics_exit_outcome(f->exit_reason));
}

/* ------------------------------------------------------------------ */
/* What the broker pushes. */

int
metrics_broker_stats(struct msg *m)
{
	struct bstats b;

	if (msg_get_u32(m, &b.http_restarts) == -1 ||
	    msg_get_u32(m, &b.vault_restarts) == -1 ||
	    msg_get_u32(m, &b.lock_acquired) == -1 ||
	    msg_get_u32(m, &b.lock_refusals) == -1 ||
	    msg_get_u32(m, &b.lock_release_waits) == -1 ||
	    msg_get_u32(m, &b.lock_held) == -1 ||
	    msg_get_u32(m, &b.workers) == -1 || msg_get_end(m) == -1 ||
	    b.lock_held > 1)
		return -1;
	m_broker = b;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The exposition. */

/* A label value with \, " and newline escaped, as the format says. */
static void
metrics_put_value(struct evbuffer *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

static void
metrics_head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
metrics_put_family(struct evbuffer *b, const struct mfamily *f)
{
	metrics_head(b, f->name, "counter", f->help);
	for (size_t i = 0; i < f->n; i++) {
		evbuffer_add_printf(b, "%s{", f->name);
		for (size_t k = 0; k < f->nlabels; k++) {
			evbuffer_add_printf(b, "%s%s=\"", k ? "," : "",
			    f->labels[k]);
			metrics_put_value(b, f->s[i].v[k]);
			evbuffer_add(b, "\"", 1);
		}
		evbuffer_add_printf(b, "} %llu\n",
		    (unsigned long long)f->s[i].n);
	}
}

static void
metrics_put_latency(struct evbuffer *b)
{
	static const char name[] = "connectord_http_request_duration_seconds";

	metrics_head(b, name, "histogram", "Time from a request's routing to "
	    "its answer, by route pattern and method.");
	for (size_t i = 0; i < m_nlatency; i++) {
		const struct hseries *h = &m_latency[i];
		uint64_t	 cum = 0;
		char		 lbl[256];

		snprintf(lbl, sizeof(lbl), "route=\"%s\",method=\"%s\"",
		    h->route, h->method);
		for (size_t k = 0; k < METRICS_NBOUNDS; k++) {
			cum += h->bucket[k];
			evbuffer_add_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n",
			    name, lbl, metrics_bounds[k],
			    (unsigned long long)cum);
		}
		evbuffer_add_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name,
		    lbl, (unsigned long long)h->count);
		evbuffer_add_printf(b, "%s_sum{%s} %.6f\n", name, lbl, h->sum);
		evbuffer_add_printf(b, "%s_count{%s} %llu\n", name, lbl,
		    (unsigned long long)h->count);
	}
}

static void
metrics_put_exits(struct evbuffer *b)
{
	static const char name[] = "connectord_worker_exits_total";

	metrics_head(b, name, "counter", "Workers that ended, by the reason "
	    "the broker reports: normal (exited), signal (killed, not by the "
	    "broker), deadline, cancelled, spawn (could not start).");
	for (size_t i = 0; i < 5; i++)
		evbuffer_add_printf(b, "%s{reason=\"%s\"} %llu\n", name,
		    m_exit_names[i], (unsigned long long)m_exits[i]);
}

/* The vault's own counters, from its last metadata push. */
static void
metrics_put_vault(struct evbuffer *b)
{
	static const char name[] = "connectord_vault_operations_total";
	static const char *const ops[] = { "put", "get", "mark", "delete" };
	static const char *const outcomes[] = {
		"ok", "not_found", "storage_full", "log_unwritable", "error",
	};
	yajl_val	 all = json_obj_get(http.meta, "vault_ops"), op, v;

	metrics_head(b, name, "counter", "Credential operations the vault "
	    "answered since it started, by operation and outcome.");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		op = json_obj_get(all, ops[i]);
		for (size_t k = 0; k < sizeof(outcomes) / sizeof(outcomes[0]);
		    k++) {
			v = json_obj_get(op, outcomes[k]);
			evbuffer_add_printf(b, "%s{op=\"%s\",outcome=\"%s\"} "
			    "%lld\n", name, ops[i], outcomes[k],
			    YAJL_IS_INTEGER(v) && v->u.number.i > 0 ?
			    v->u.number.i : 0LL);
		}
	}
}

static void
metrics_put_broker(struct evbuffer *b)
{
	const struct bstats *s = &m_broker;

	metrics_head(b, "connectord_child_restarts_total", "counter",
	    "Times the broker restarted a long-lived child since it started.");
	evbuffer_add_printf(b, "connectord_child_restarts_total{role=\"http\"} "
	    "%u\nconnectord_child_restarts_total{role=\"vault\"} %u\n",
	    s->http_restarts, s->vault_restarts);
	metrics_head(b, "connectord_oauth_lock_acquired_total", "counter",
	    "Flows that took the OAuth callback port lock.");
	evbuffer_add_printf(b, "connectord_oauth_lock_acquired_total %u\n",
	    s->lock_acquired);
	metrics_head(b, "connectord_oauth_lock_refusals_total", "counter",
	    "Flow starts refused with 409 because the OAuth callback port "
	    "lock was held.");
	evbuffer_add_printf(b, "connectord_oauth_lock_refusals_total %u\n",
	    s->lock_refusals);
	metrics_head(b, "connectord_oauth_lock_release_waits_total", "counter",
	    "Lock releases that had to wait for the callback port to be "
	    "free again.");
	evbuffer_add_printf(b, "connectord_oauth_lock_release_waits_total "
	    "%u\n", s->lock_release_waits);
	metrics_head(b, "connectord_oauth_lock_held", "gauge",
	    "1 while a flow holds the OAuth callback port lock.");
	evbuffer_add_printf(b, "connectord_oauth_lock_held %u\n", s->lock_held);
	metrics_head(b, "connectord_workers_running", "gauge",
	    "Workers the broker is running.");
	evbuffer_add_printf(b, "connectord_workers_running %u\n", s->workers);
}

void
http_metrics(struct evhttp_request *req)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	metrics_put_family(b, &m_requests);
	metrics_put_latency(b);
	metrics_put_family(b, &m_flows_started);
	metrics_put_family(b, &m_flows_ended);
	metrics_put_family(b, &m_flows_refused);
	metrics_put_exits(b);
	metrics_put_vault(b);
	metrics_put_broker(b);
	metrics_head(b, "connectord_http_start_time_seconds", "gauge",
	    "When this http process started (its counters start at zero).");
	evbuffer_add_printf(b, "connectord_http_start_time_seconds %lld\n",
	    (long long)m_started);
	evhttp_add_header(h, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	http_access_log(req, 200);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
