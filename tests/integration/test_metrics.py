#!/usr/bin/python3
"""GET /metrics: the API token guards it, the body is Prometheus text
exposition format 0.0.4 (checked by a strict parser below), and its
counters move as requests are made: per route pattern (never the raw
path), flows by outcome, worker exits by reason, vault operations, the
OAuth port lock, and child restarts, which the broker keeps across an http
restart while http's own counters start again from zero.

One daemon and one fake for the whole file; the checks build on each
other's counts.
"""

import contextlib
import math
import os
import re
import secrets
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RCLONE = "/usr/bin/rclone"
OAUTH_PORT = 53682
STATUS_ROUTE = "/api/connectors/*/status"
TOKEN_ROUTE = "/api/connectors/*/token"
KEY = "manus_" + secrets.token_hex(16)
BAD_KEY = "manus_" + secrets.token_hex(16)

# Every route pattern of lib/route.c, and the label of a path with none.
ROUTES = {
    "/healthz", "/metrics", "/", "/console.css", "/console.js", "/login",
    "/api/console/session", "/api/console/login", "/api/console/logout",
    "/.well-known/oauth-protected-resource", "/callback",
    "/api/connectors/vercel/oauth/start",
    "/api/connectors/vercel/oauth/exchange", "/api/connectors",
    TOKEN_ROUTE, STATUS_ROUTE, "/api/connectors/*/disconnect",
    "/api/connectors/*/reconnect", "/api/connectors/*/remotes",
    "/api/connectors/*/remotes/*", "/api/connectors/*/sessions/*",
    "/api/connectors/*/sessions/*/submit",
    "/api/connectors/*/sessions/*/cancel",
    "/api/connectors/github/cli/start", "/api/connectors/github/cli/poll",
    "/api/connectors/github/cli/cancel", "unmatched",
}

FAMILIES = {
    "connectord_http_requests_total": "counter",
    "connectord_http_request_duration_seconds": "histogram",
    "connectord_flows_started_total": "counter",
    "connectord_flows_ended_total": "counter",
    "connectord_flows_refused_total": "counter",
    "connectord_worker_exits_total": "counter",
    "connectord_vault_operations_total": "counter",
    "connectord_child_restarts_total": "counter",
    "connectord_oauth_lock_acquired_total": "counter",
    "connectord_oauth_lock_refusals_total": "counter",
    "connectord_oauth_lock_release_waits_total": "counter",
    "connectord_oauth_lock_held": "gauge",
    "connectord_workers_running": "gauge",
    "connectord_http_start_time_seconds": "gauge",
}

# ---------------------------------------------------------------------------
# A strict parser of the text format 0.0.4

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|"
                   r"[+-]Inf|NaN")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count")}


class FormatError(Exception):
    pass


def parse_labels(text, pos, lineno):
    """Labels from text[pos] == '{' to its '}': (dict, position after)."""
    labels = {}
    pos += 1
    while True:
        if text[pos:pos + 1] == "}":
            return labels, pos + 1
        m = LABEL_NAME.match(text, pos)
        if not m:
            raise FormatError("line %d: bad label name at %r"
                              % (lineno, text[pos:pos + 20]))
        name = m.group(0)
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise FormatError("line %d: label %s without =\"" % (lineno,
                                                                name))
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise FormatError("line %d: unterminated label value"
                                  % lineno)
            c = text[pos]
            if c == "\\":
                esc = text[pos + 1:pos + 2]
                if esc not in ("\\", '"', "n"):
                    raise FormatError("line %d: bad escape \\%s"
                                      % (lineno, esc))
                value.append("\n" if esc == "n" else esc)
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise FormatError("line %d: newline in a label" % lineno)
            else:
                value.append(c)
                pos += 1
        if name in labels:
            raise FormatError("line %d: label %s twice" % (lineno, name))
        labels[name] = "".join(value)
        if text[pos:pos + 1] == ",":
            pos += 1
        elif text[pos:pos + 1] != "}":
            raise FormatError("line %d: expected , or } after label %s"
                              % (lineno, name))


def parse_value(s, lineno):
    if not FLOAT.fullmatch(s):
        raise FormatError("line %d: bad value %r" % (lineno, s))
    return float(s)


def family_of(name, families):
    """The family a sample name belongs to (histogram suffixes)."""
    if name in families and families[name]["type"] not in SUFFIXES:
        return name
    for fam, info in families.items():
        for suffix in SUFFIXES.get(info["type"], ()):
            if suffix and name == fam + suffix:
                return fam
    return None


def parse(body):
    """{family: {"help", "type", "samples": [(name, labels, value)]}};
    raises FormatError on anything the format does not allow."""
    if not body.endswith("\n"):
        raise FormatError("the body does not end with a newline")
    families = {}
    done = set()        # families whose lines are over
    current = None
    for lineno, line in enumerate(body[:-1].split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.fullmatch(name):
                    raise FormatError("line %d: bad metric name %r"
                                      % (lineno, name))
                if name in done:
                    raise FormatError("line %d: %s again after other "
                                      "families" % (lineno, name))
                if current is not None and current != name:
                    done.add(current)
                current = name
                fam = families.setdefault(name, {"help": None, "type": None,
                                                 "samples": []})
                if fam["samples"]:
                    raise FormatError("line %d: %s %s after its samples"
                                      % (lineno, parts[1], name))
                key = parts[1].lower()
                if fam[key] is not None:
                    raise FormatError("line %d: a second %s for %s"
                                      % (lineno, parts[1], name))
                text = parts[3] if len(parts) > 3 else ""
                if key == "type" and text not in TYPES:
                    raise FormatError("line %d: unknown type %r"
                                      % (lineno, text))
                fam[key] = text
            continue
        m = METRIC_NAME.match(line)
        if not m:
            raise FormatError("line %d: no metric name" % lineno)
        name, pos = m.group(0), m.end()
        labels = {}
        if line[pos:pos + 1] == "{":
            labels, pos = parse_labels(line, pos, lineno)
        rest = line[pos:]
        if not rest.startswith(" "):
            raise FormatError("line %d: no space before the value" % lineno)
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2):
            raise FormatError("line %d: junk after the value" % lineno)
        value = parse_value(fields[0], lineno)
        fam = family_of(name, families)
        if fam is None:
            raise FormatError("line %d: %s has no HELP/TYPE" % (lineno,
                                                              name))
        if fam != current:
            raise FormatError("line %d: %s outside its family's group"
                              % (lineno, name))
        families[fam]["samples"].append((name, labels, value))
    for name, fam in families.items():
        if fam["help"] is None or fam["type"] is None:
            raise FormatError("%s lacks HELP or TYPE" % name)
        seen = set()
        for sname, labels, value in fam["samples"]:
            key = (sname, tuple(sorted(labels.items())))
            if key in seen:
                raise FormatError("%s%r twice" % (sname, labels))
            seen.add(key)
            if fam["type"] == "counter" and (value < 0 or math.isnan(value)):
                raise FormatError("counter %s%r is %r" % (sname, labels,
                                                        value))
        if fam["type"] == "counter" and not name.endswith("_total"):
            raise FormatError("counter %s does not end in _total" % name)
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    """Per label set: buckets by increasing le, cumulative, +Inf present
    and equal to _count, and a _sum."""
    groups = {}
    for sname, labels, value in samples:
        base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(base, {"buckets": [], "sum": None,
                                     "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise FormatError("%s_bucket without le" % name)
            g["buckets"].append((parse_value(labels["le"], 0), value))
        elif sname == name + "_sum":
            g["sum"] = value
        else:
            g["count"] = value
    for base, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            raise FormatError("%s%r: le not increasing" % (name, base))
        if not les or les[-1] != math.inf:
            raise FormatError("%s%r: no +Inf bucket" % (name, base))
        if counts != sorted(counts):
            raise FormatError("%s%r: buckets not cumulative" % (name, base))
        if g["count"] is None or g["sum"] is None:
            raise FormatError("%s%r: no _count or _sum" % (name, base))
        if counts[-1] != g["count"]:
            raise FormatError("%s%r: +Inf %r != _count %r"
                              % (name, base, counts[-1], g["count"]))


def selftest():
    """The parser refuses what it must (so that its passing means
    something)."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\n"
            'a_total{x="1",y="q\\"\\\\\\n"} 3\n'
            "# HELP h H.\n# TYPE h histogram\n"
            'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\n'
            "h_sum 0.7\nh_count 2\n")
    ok(parse(good)["a_total"]["samples"][0][1]["y"] == 'q"\\\n',
       "parser: escapes in label values")
    bad = {
        "no TYPE": "# HELP a_total A.\na_total 1\n",
        "counter without _total": "# HELP a A.\n# TYPE a counter\na 1\n",
        "bad name": "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
        "bad value": "# HELP a A.\n# TYPE a gauge\na one\n",
        "bad escape": '# HELP a A.\n# TYPE a gauge\na{x="\\t"} 1\n',
        "no newline at end": "# HELP a A.\n# TYPE a gauge\na 1",
        "duplicate series": "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
        "+Inf != count": "# HELP h H.\n# TYPE h histogram\n"
                         'h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
        "not cumulative": "# HELP h H.\n# TYPE h histogram\n"
                          'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n'
                          "h_sum 1\nh_count 1\n",
        "family split": "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n"
                        "# TYPE b gauge\nb 1\na{x=\"1\"} 1\n",
    }
    for what, text in bad.items():
        try:
            parse(text)
            ok(False, "parser refuses: %s" % what)
        except FormatError:
            ok(True, "parser refuses: %s" % what)


# ---------------------------------------------------------------------------
# The daemon's /metrics


class Scenario:
    def __init__(self, fake, d):
        self.fake = fake
        self.d = d

    def scrape(self):
        """GET /metrics with the token, parsed; raises on any fault."""
        status, hdrs, _, raw = self.d.api("GET", "/metrics")
        if status != 200:
            raise RuntimeError("GET /metrics answered %d %r" % (status,
                                                               raw[:200]))
        self.last_headers = hdrs
        self.last_body = raw.decode("utf-8")
        return parse(self.last_body)

    def value(self, fams, name, **labels):
        """The sample's value, 0 when absent."""
        fam = family_of(name, fams)
        for sname, lbl, value in (fams[fam]["samples"] if fam else []):
            if sname == name and lbl == labels:
                return value
        return 0

    def wait_value(self, name, want, timeout=5, **labels):
        """Scrape until the sample equals want (the broker's counters come
        at most once a second); returns the last value."""
        got = cdtest.wait_for(lambda: self.value(
            self.scrape(), name, **labels) == want, timeout, 0.1)
        return want if got else self.value(self.scrape(), name, **labels)


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(fake) as d:
        yield Scenario(fake, d)


def needs_token(s):
    """401 without the token or with a wrong one; 200 and the exact
    content type with it."""
    for token, what in ((False, "no token"), ("wrong-" + secrets.token_hex(8),
                                              "a wrong token")):
        status, hdrs, body, _ = s.d.api("GET", "/metrics", token=token)
        ok(status == 401 and isinstance(body, dict) and
           isinstance(body.get("error"), str) and
           hdrs.get("www-authenticate") == "Bearer",
           "%s: 401 with a JSON error" % what)
    fams = s.scrape()
    is_(s.last_headers.get("content-type"), CONTENT_TYPE,
        "Content-Type: text/plain; version=0.0.4; charset=utf-8")
    for name, kind in FAMILIES.items():
        ok(name in fams and fams[name]["type"] == kind and
           fams[name]["help"], "%s: HELP and TYPE %s" % (name, kind))
    is_(s.value(fams, "connectord_http_requests_total",
                route="/metrics", method="GET", code="401"), 2,
        "the two refused scrapes are counted as 401s")


def format_strict(s):
    """The parser's own refusals, then the live body: only known route
    patterns in route labels, buckets sorted, nothing unexpected."""
    selftest()
    s.d.api("GET", "/api/connectors/manus/status")
    fams = s.scrape()
    routes = {lbl.get("route") for fam in ("connectord_http_requests_total",
                                           "connectord_http_request_"
                                           "duration_seconds")
              for _, lbl, _ in fams[fam]["samples"]}
    ok(routes and routes <= ROUTES, "route labels are patterns of the "
       "route table (%r)" % sorted(routes - ROUTES))
    for fam in fams:
        ok(fam.startswith("connectord_"), "%s: in the connectord_ "
           "namespace" % fam)


def requests_counted(s):
    """N status requests move the status route's counter and histogram by
    N; a 404 is counted under "unmatched", its path nowhere."""
    n = 7
    key = dict(route=STATUS_ROUTE, method="GET", code="200")
    before = s.scrape()
    for _ in range(n):
        s.d.api("GET", "/api/connectors/manus/status")
    after = s.scrape()
    name = "connectord_http_requests_total"
    is_(s.value(after, name, **key) - s.value(before, name, **key), n,
        "%d status requests: +%d" % (n, n))
    hist = "connectord_http_request_duration_seconds_count"
    is_(s.value(after, hist, route=STATUS_ROUTE, method="GET") -
        s.value(before, hist, route=STATUS_ROUTE, method="GET"), n,
        "the status route's histogram counted %d more" % n)
    secret_path = "/no/such/" + secrets.token_hex(8)
    status = s.d.api("GET", secret_path)[0]
    after2 = s.scrape()
    key404 = dict(route="unmatched", method="GET", code="404")
    is_((status, s.value(after2, name, **key404) -
         s.value(after, name, **key404)), (404, 1), "a 404 is counted")
    ok(secret_path.split("/")[-1] not in s.last_body,
       "the raw path appears nowhere in the body")
    status = s.d.api("DELETE", "/api/connectors/manus/status")[0]
    key405 = dict(route="unmatched", method="DELETE", code="405")
    is_((status, s.value(s.scrape(), name, **key405)), (405, 1),
        "a 405 is counted with its method")


def token_flows(s):
    """A saved token: a flow started and ended ok, a vault put ok, a
    normal worker exit. A rejected one: ended rejected, no put."""
    s.fake.reset()
    s.fake.add_manus_key(KEY)
    before = s.scrape()
    put = dict(op="put", outcome="ok")
    ops = "connectord_vault_operations_total"
    started = "connectord_flows_started_total"
    ended = "connectord_flows_ended_total"
    exits = "connectord_worker_exits_total"
    st = s.d.api("POST", "/api/connectors/manus/token", {"token": KEY})[0]
    after = s.scrape()
    is_(st, 200, "a manus key is saved")
    is_(s.value(after, ops, **put) - s.value(before, ops, **put), 1,
        "vault put ok +1 by the time the save is answered")
    is_(s.value(after, started, connector="manus", kind="token") -
        s.value(before, started, connector="manus", kind="token"), 1,
        "a manus token flow started")
    is_(s.value(after, ended, connector="manus", kind="token",
                outcome="ok"), 1, "and ended ok")
    normal = s.value(before, exits, reason="normal")
    is_(s.wait_value(exits, normal + 1, reason="normal"), normal + 1,
        "its worker's exit is counted as normal")
    st = s.d.api("POST", "/api/connectors/manus/token",
                 {"token": BAD_KEY})[0]
    after2 = s.scrape()
    is_(st, 422, "an unknown key is rejected")
    is_(s.value(after2, ended, connector="manus", kind="token",
                outcome="rejected"), 1, "the flow ended rejected")
    is_(s.value(after2, ops, **put), s.value(after, ops, **put),
        "no vault put for it")
    is_(s.wait_value(exits, normal + 2, reason="normal"), normal + 2,
        "its worker's exit is counted")
    st = s.d.api("POST", "/api/connectors/manus/disconnect", {})[0]
    is_((st, s.value(s.scrape(), ops, op="delete", outcome="ok")), (200, 1),
        "a disconnect: vault delete ok +1")
    cdtest.scrub_check(s.last_body + s.d.log_text(), [KEY, BAD_KEY,
                                                      s.d.token],
                       "no key or API token in /metrics or the log")


def lock_counted(s):
    """A Drive flow takes the lock, a OneDrive start meanwhile is refused
    (409): acquired, refusals, held and the refused start are counted; a
    cancel frees it and ends the flow as cancelled."""
    if not os.access(RCLONE, os.X_OK):
        cdtest.skip("the OAuth port lock's counters", "no rclone")
        return
    if not cdtest.wait_port_free(OAUTH_PORT, 20):
        ok(False, "port %d is free within 20 s" % OAUTH_PORT)
        return
    status, _, body, raw = s.d.api("POST", "/api/connectors/gdrive/remotes",
                                   {"name": "metrics"})
    if not ok(status == 202, "a gdrive flow starts"):
        diag(raw[:300])
        return
    try:
        is_(s.d.api("POST", "/api/connectors/onedrive/remotes",
                    {"name": "other"})[0], 409,
            "a onedrive start meanwhile: 409")
        is_(s.wait_value("connectord_oauth_lock_held", 1), 1, "lock held 1")
        fams = s.scrape()
        is_((s.value(fams, "connectord_oauth_lock_acquired_total"),
             s.value(fams, "connectord_oauth_lock_refusals_total")), (1, 1),
            "acquired 1, refusals 1")
        is_(s.value(fams, "connectord_flows_refused_total",
                    connector="onedrive", kind="rclone", code="409"), 1,
            "the refused start by connector, kind and code")
        ok(s.value(fams, "connectord_workers_running") >= 1,
           "a worker is running")
    finally:
        s.d.api("POST", "/api/connectors/gdrive/sessions/%s/cancel"
                % body["session_id"])
    is_(s.wait_value("connectord_oauth_lock_held", 0, timeout=10), 0,
        "lock held 0 after the cancel")
    fams = s.scrape()
    is_(s.value(fams, "connectord_flows_ended_total", connector="gdrive",
                kind="rclone", outcome="cancelled"), 1,
        "the flow ended cancelled")
    ok(s.value(fams, "connectord_worker_exits_total", reason="cancelled")
       >= 1, "its worker's exit counted as cancelled")


def http_restart(s):
    """kill -9 of http: its counters start from zero, the broker's count
    of its restart is 1, the vault's counters live on."""
    before = s.scrape()
    start = s.value(before, "connectord_http_start_time_seconds")
    puts = s.value(before, "connectord_vault_operations_total", op="put",
                   outcome="ok")
    old = s.d.pid_of("http")
    time.sleep(1.1)         # a start time one second later
    os.kill(old, signal.SIGKILL)
    ok(s.d.wait_role("http", not_pid=old) and s.d.wait_healthy(10),
       "a new http answers")
    fams = s.scrape()
    is_(s.value(fams, "connectord_child_restarts_total", role="http"), 1,
        "child restarts for http: 1, at the first scrape")
    is_(s.value(fams, "connectord_child_restarts_total", role="vault"), 0,
        "child restarts for vault: 0")
    is_(s.value(fams, "connectord_http_requests_total", route=STATUS_ROUTE,
                method="GET", code="200"), 0,
        "http's request counters start from zero")
    ok(s.value(fams, "connectord_http_start_time_seconds") > start,
       "its start time is later")
    is_(s.value(fams, "connectord_vault_operations_total", op="put",
                outcome="ok"), puts, "the vault's counters are kept")
    old = s.d.pid_of("vault")
    os.kill(old, signal.SIGKILL)
    ok(s.d.wait_role("vault", not_pid=old) and s.d.wait_healthy(10),
       "a new vault answers")
    is_(s.wait_value("connectord_child_restarts_total", 1, role="vault"), 1,
        "child restarts for vault: 1")
    is_(s.value(s.scrape(), "connectord_vault_operations_total", op="put",
                outcome="ok"), 0, "a new vault counts from zero")


def main():
    cdtest.run([needs_token, format_strict, requests_counted, token_flows,
                lock_counted, http_restart], fixture=scenario)


if __name__ == "__main__":
    main()
