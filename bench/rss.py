#!/usr/bin/python3
"""Resident memory of connectord's roles after 100 and 10,000 mixed requests.

Usage: bench/rss.py [--build DIR] [--requests 10000] [--first 100]
                    [--connections 16] [--bound-pct 25] [--bound-kib 2048]
                    [--json FILE]

Runs flows with the real rclone: on a machine where others run rclone
flows too, serialise on port 53682, e.g. flock /tmp/cd-rclone.lock ...

Starts the real daemon with the fake providers (as bench/load.py does)
and sends it a fixed mix of requests over --connections keep-alive
connections: status, list and remotes reads, valid and rejected token
saves, disconnects, reconnects, flow starts and cancels (Vercel OAuth,
gh device flows, rclone flows), and bad input: malformed and oversized
JSON bodies, missing fields, unknown paths, connectors and sessions,
wrong methods, a wrong API token, an invalid remote name, requests
that are not HTTP (the mix is MIX below, 100 requests a round, in a fixed
shuffled order).

After the first --first requests (one round, 100) and again after
--requests (10,000), once every request is answered and every worker and
tool it started has ended (Vercel OAuth workers wait for a callback until
session_ttl; there are about vercel_pending_max of them), it reads VmRSS
from /proc/<pid>/status for the broker (the daemon's own pid), http and
vault (found by their process titles "connectord: http" and
"connectord: vault"). It also samples after 10% and 50% of the requests,
to show the curve.

The bound: a role passes if its growth from the first sample to the last
is at most --bound-kib KiB (2 MiB) or --bound-pct percent (25%) of its
first sample, whichever is larger. The absolute part absorbs what the
allocator keeps after a burst (the arenas, freed chunks not given back,
libevent's buffers for 16 connections at once); a leak of a few hundred
bytes a request grows by megabytes over 10,000 requests and fails.

Exit status 1 if a role grows past its bound, a role restarted (its pid
changed: a crash would reset its memory), or any request failed (an
unexpected status, a reset, a timeout). Prints a table and writes JSON to
<build>/bench-rss.json.

Python 3 standard library only; talks to 127.0.0.1 only.
"""

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import call  # noqa: E402

API = "/api/connectors/"
TOKEN_CONNECTORS = ("manus", "github", "vercel")
ROLES = ("broker", "http", "vault")
SETTLE_TIMEOUT = 30     # seconds for workers and tools to end
SETTLE_PAUSE = 1.0      # seconds after that before reading VmRSS
VERCEL_PENDING_MAX = 32
POOL = 50               # valid tokens per connector (reused in turn)


class Mix:
    """The operations. Each takes (client, n) and issues its requests;
    n counts the operations of its kind, to vary the connector."""

    def __init__(self, stats, pools, args):
        self.s = stats
        self.pools = pools
        self.t = args.timeout
        self.ft = args.flow_timeout

    async def status(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        await call(self.s, cl, "GET <c>/status", "GET", API + c + "/status",
                   {200}, timeout=self.t)

    async def list(self, cl, n):
        await call(self.s, cl, "GET /api/connectors", "GET",
                   "/api/connectors", {200}, timeout=self.t)

    async def remotes(self, cl, n):
        c = ("gdrive", "onedrive")[n % 2]
        await call(self.s, cl, "GET <c>/remotes", "GET", API + c + "/remotes",
                   {200}, timeout=self.t)

    async def save(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        await call(self.s, cl, "POST <c>/token", "POST", API + c + "/token",
                   {200}, body={"token": self.pools.token(c, n // 3)},
                   timeout=self.ft)

    async def save_rejected(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        await call(self.s, cl, "POST <c>/token (422 rejected)", "POST",
                   API + c + "/token", {422},
                   body={"token": self.pools.bad[c]}, timeout=self.ft)

    async def disconnect(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        await call(self.s, cl, "POST <c>/disconnect", "POST",
                   API + c + "/disconnect", {200}, timeout=self.ft)

    async def reconnect(self, cl, n):
        # 404 when nothing is stored at that moment.
        await call(self.s, cl, "POST manus/reconnect", "POST",
                   API + "manus/reconnect", {200, 404}, timeout=self.ft)

    async def malformed_json(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        raw = (b'{"token": "abc"', b"{token: 1}", b"\xff\xfe{}",
               b'{"token": "a"}}')[n % 4]
        await call(self.s, cl, "POST <c>/token (400 malformed)", "POST",
                   API + c + "/token", {400}, raw=raw, timeout=self.t)

    async def missing_field(self, cl, n):
        c = TOKEN_CONNECTORS[n % 3]
        body = ({}, {"token": 5}, {"token": ""}, {"token": "has space"},
                [1, 2])[n % 5]
        await call(self.s, cl, "POST <c>/token (400 field)", "POST",
                   API + c + "/token", {400}, body=body, timeout=self.t)

    async def oversized(self, cl, n):
        body = {"token": "x" * (70 * 1024)}
        await call(self.s, cl, "POST manus/token (413)", "POST",
                   API + "manus/token", {413}, body=body, timeout=self.t)

    async def unknown_path(self, cl, n):
        path = ("/nope", "/api/connectors/manus/status/extra",
                "/api/v2/connectors", "/api/connectors/manus/nothing")[n % 4]
        await call(self.s, cl, "GET unknown path (404)", "GET", path, {404},
                   timeout=self.t)

    async def unknown_connector(self, cl, n):
        c = ("dropbox", "gdrive", "x" * 40)[n % 3]
        await call(self.s, cl, "GET <unknown>/status (404)", "GET",
                   API + c + "/status", {404}, timeout=self.t)

    async def wrong_method(self, cl, n):
        method, path = (("DELETE", API + "manus/status"),
                        ("PUT", API + "github/token"),
                        ("GET", API + "vercel/disconnect"))[n % 3]
        await call(self.s, cl, "wrong method (405)", method, path, {405},
                   timeout=self.t)

    async def bad_api_token(self, cl, n):
        await call(self.s, cl, "GET manus/status (401 token)", "GET",
                   API + "manus/status", {401}, timeout=self.t, auth=False,
                   extra_headers=(b"", b"Authorization: Bearer wrong\r\n",
                                  b"Authorization: Basic eA==\r\n")[n % 3])

    async def bad_remote_name(self, cl, n):
        c = ("gdrive", "onedrive")[n % 2]
        name = ("Bad Name", "../etc", "", "x" * 33)[n % 4]
        await call(self.s, cl, "POST <c>/remotes (400 name)", "POST",
                   API + c + "/remotes", {400}, body={"name": name},
                   timeout=self.t)

    async def unknown_session(self, cl, n):
        c = ("gdrive", "onedrive")[n % 2]
        await call(self.s, cl, "GET <c>/sessions/<unknown> (404)", "GET",
                   API + c + "/sessions/%s-nope%d" % (c, n), {404},
                   timeout=self.t)

    async def gh_poll_unknown(self, cl, n):
        await call(self.s, cl, "POST github/cli/poll (404)", "POST",
                   API + "github/cli/poll", {404},
                   body={"session_id": "gh-cli-nope%d" % n}, timeout=self.t)

    async def delete_unknown(self, cl, n):
        c = ("gdrive", "onedrive")[n % 2]
        # "work" is onedrive's: gdrive must not delete it.
        name = ("nothere", "work" if c == "gdrive" else "personal")[n % 2]
        await call(self.s, cl, "DELETE <c>/remotes/<absent> (404)", "DELETE",
                   API + c + "/remotes/" + name, {404}, timeout=self.t)

    async def vercel_start(self, cl, n):
        await call(self.s, cl, "GET vercel/oauth/start", "GET",
                   API + "vercel/oauth/start", {200}, timeout=self.ft)

    async def gh_flow(self, cl, n):
        """Two requests: start (409 when gh_flows_max flows run) and
        cancel (after a 409, a status read instead)."""
        r = await call(self.s, cl, "POST github/cli/start", "POST",
                       API + "github/cli/start",
                       {200: None, 409: "POST github/cli/start (409 busy)"},
                       timeout=self.ft)
        if r is not None and r[0] == 200 and isinstance(r[1], dict):
            await call(self.s, cl, "POST github/cli/cancel", "POST",
                       API + "github/cli/cancel", {200},
                       body={"session_id": r[1].get("session_id")},
                       timeout=self.ft)
        else:
            await self.status(cl, n)

    async def rclone_flow(self, cl, n):
        """Two requests: start (409 while another flow holds the port
        lock) and cancel (after a 409, a status read instead)."""
        c = ("gdrive", "onedrive")[n % 2]
        r = await call(self.s, cl, "POST <c>/remotes", "POST",
                       API + c + "/remotes",
                       {202: None, 409: "POST <c>/remotes (409 busy)"},
                       body={"name": "rss%d" % n}, timeout=self.ft)
        if r is not None and r[0] == 202 and isinstance(r[1], dict):
            await call(self.s, cl, "POST <c>/sessions/<id>/cancel", "POST",
                       "%s%s/sessions/%s/cancel" % (API, c,
                                                    r[1].get("session_id")),
                       {200}, timeout=self.ft)
        else:
            await self.status(cl, n)

    async def healthz(self, cl, n):
        await call(self.s, cl, "GET /healthz", "GET", "/healthz", {200},
                   timeout=self.t, auth=False)

    async def prm(self, cl, n):
        await call(self.s, cl, "GET /.well-known/oauth-protected-resource",
                   "GET", "/.well-known/oauth-protected-resource", {200},
                   timeout=self.t, auth=False)

    async def not_http(self, cl, n):
        """A request evhttp cannot parse: 400, and evhttp closes the
        connection, so this goes on a connection of its own."""
        wire = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
                b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
                b"\x16\x03\x01\x00\x05hello\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: -5\r\n\r\n")[n % 4]
        own = benchlib.Client(cl.port, None)
        try:
            await call(self.s, own, "not HTTP (400)", "GET", "/healthz",
                       {400}, timeout=self.t, wire=wire)
        finally:
            own.close()


# (operation, weight, requests per operation): weight * requests sums to
# 100 requests a round.
MIX = [
    ("status", 24, 1), ("list", 6, 1), ("remotes", 8, 1),
    ("save", 12, 1), ("save_rejected", 2, 1), ("disconnect", 6, 1),
    ("reconnect", 2, 1),
    ("malformed_json", 4, 1), ("missing_field", 2, 1), ("oversized", 2, 1),
    ("unknown_path", 4, 1), ("unknown_connector", 2, 1),
    ("wrong_method", 3, 1), ("bad_api_token", 3, 1),
    ("bad_remote_name", 2, 1), ("unknown_session", 2, 1),
    ("gh_poll_unknown", 2, 1), ("delete_unknown", 2, 1),
    ("vercel_start", 2, 1), ("gh_flow", 1, 2), ("rclone_flow", 1, 2),
    ("healthz", 2, 1), ("prm", 2, 1), ("not_http", 2, 1),
]
ROUND = sum(w * r for _, w, r in MIX)


def round_order(seed=1):
    """One round's operations in a fixed shuffled order."""
    ops = [(name, r) for name, w, r in MIX for _ in range(w)]
    random.Random(seed).shuffle(ops)
    return ops


class Driver:
    """Hands operations to the connections in round order until a given
    number of requests has been sent."""

    def __init__(self, mix, env, connections):
        self.mix = mix
        self.env = env
        self.order = round_order()
        self.next = 0           # index into the endless sequence of rounds
        self.sent = 0           # requests sent so far
        self.per_kind = {}
        self.clients = [benchlib.Client(env.port, env.token)
                        for _ in range(connections)]

    async def _conn(self, cl, upto):
        while self.sent < upto:
            name, nreq = self.order[self.next % len(self.order)]
            self.next += 1
            self.sent += nreq
            n = self.per_kind.get(name, 0)
            self.per_kind[name] = n + 1
            await getattr(self.mix, name)(cl, n)

    async def until(self, upto):
        await asyncio.gather(*[self._conn(cl, upto) for cl in self.clients])

    def close(self):
        for cl in self.clients:
            cl.close()


def leftovers(env, connections):
    """What still runs besides broker, http, vault and the pending Vercel
    OAuth workers: {"worker <c>": [pid, ...], "gh"/"rclone": [pid, ...]},
    empty when nothing. The daemon drops the oldest pending Vercel flow
    when a start finds vercel_pending_max of them, but starts in flight
    are not counted: concurrent starts may leave up to connections - 1
    more."""
    r = benchlib.role_pids(env.pid)
    out = {k: v for k, v in r.items() if k.startswith("worker ")
           and k != "worker vercel"}
    if len(r.get("worker vercel", [])) > VERCEL_PENDING_MAX + \
            connections - 1:
        out["worker vercel"] = r["worker vercel"]
    for pid, tool in benchlib.tool_pids(env.pid):
        out.setdefault(tool, []).append(pid)
    return out


def settle(env, connections):
    """Wait until leftovers() is empty; returns what is left then."""
    benchlib.cdtest.wait_for(lambda: not leftovers(env, connections),
                             SETTLE_TIMEOUT, 0.1)
    left = leftovers(env, connections)
    time.sleep(SETTLE_PAUSE)
    return left


def sample(env, pids):
    return {role: benchlib.vmrss_kib(pids[role]) for role in ROLES}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(benchlib.REPO, "build"))
    ap.add_argument("--requests", type=int, default=10000,
                    help="requests in all (default: 10000)")
    ap.add_argument("--first", type=int, default=ROUND,
                    help="requests before the first sample (default: %d)"
                    % ROUND)
    ap.add_argument("--connections", type=int, default=16,
                    help="keep-alive connections (default: 16)")
    ap.add_argument("--bound-pct", type=float, default=25.0,
                    help="allowed growth, percent of the first sample "
                    "(default: 25)")
    ap.add_argument("--bound-kib", type=int, default=2048,
                    help="allowed growth in KiB, whatever the percentage "
                    "(default: 2048)")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--flow-timeout", type=float, default=40)
    ap.add_argument("--json", help="default: <build>/bench-rss.json")
    args = ap.parse_args()
    if not 1 <= args.first < args.requests:
        ap.error("--first must be at least 1 and below --requests")
    if not 1 <= args.connections <= 256:
        ap.error("--connections must be between 1 and 256")
    args.build = os.path.abspath(args.build)
    args.json = args.json or os.path.join(args.build, "bench-rss.json")
    return args


def main():
    args = parse_args()
    if not os.access(os.path.join(args.build, "connectord"), os.X_OK):
        sys.exit("no %s/connectord: build first" % args.build)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    benchlib.reserve_oauth_port()
    checkpoints = sorted({args.first, args.requests // 10,
                          args.requests // 2, args.requests} - {0})
    checkpoints = [c for c in checkpoints if c >= args.first]

    tmp = benchlib.make_tmp("connectord-rss-")
    servers, fake, samples, problems = [], None, [], []
    stats = benchlib.Stats()
    try:
        fake = benchlib.cdtest.Fake()
        pools = benchlib.TokenPools(fake, POOL)
        env = benchlib.DaemonEnv(
            args.build, tmp, servers, fake,
            files={"mcp-tokens.json": benchlib.INITIAL_TOKENS,
                   "rclone.conf": benchlib.INITIAL_RCLONE})
        roles = benchlib.role_pids(env.pid)
        pids = {r: roles[r][0] for r in ROLES}
        driver = Driver(Mix(stats, pools, args), env, args.connections)
        loop = asyncio.new_event_loop()
        try:
            for cp in checkpoints:
                print("  %5d requests ..." % cp, flush=True)
                loop.run_until_complete(driver.until(cp))
                left = settle(env, args.connections)
                if left:
                    problems.append("still running %d s after %d requests: "
                                    "%s" % (SETTLE_TIMEOUT, driver.sent,
                                            ", ".join(
                                                "%s %s" % (k, v) for k, v in
                                                sorted(left.items()))))
                now = benchlib.role_pids(env.pid)
                for r in ROLES:
                    if now.get(r, [None])[0] != pids[r]:
                        problems.append("%s restarted (pid %s, then %s) "
                                        "before %d requests" % (
                                            r, pids[r], now.get(r),
                                            driver.sent))
                samples.append({"requests": driver.sent,
                                "rss_kib": sample(env, pids),
                                "vercel_workers": len(benchlib.role_pids(
                                    env.pid).get("worker vercel", []))})
        finally:
            driver.close()
            loop.close()
    finally:
        for s in reversed(servers):
            s.stop()
        if fake is not None:
            fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    first, last = samples[0], samples[-1]
    rows = []
    for r in ROLES:
        a, b = first["rss_kib"][r], last["rss_kib"][r]
        if a is None or b is None:
            problems.append("no VmRSS for %s" % r)
            continue
        bound = max(args.bound_kib, a * args.bound_pct / 100.0)
        rows.append({"role": r, "pid": pids[r], "first_kib": a,
                     "last_kib": b, "growth_kib": b - a,
                     "ratio": b / a if a else 0.0,
                     "bound_kib": round(bound), "ok": b - a <= bound})

    head = ("role", "pid", "VmRSS KiB after %d" % first["requests"],
            "after %d" % last["requests"], "growth KiB", "ratio",
            "bound KiB", "")
    lines = [head] + [(x["role"], str(x["pid"]), str(x["first_kib"]),
                       str(x["last_kib"]), "%+d" % x["growth_kib"],
                       "%.3f" % x["ratio"], str(x["bound_kib"]),
                       "ok" if x["ok"] else "OVER") for x in rows]
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    print()
    print("bound: growth <= max(%d KiB, %g%% of the first sample); %d "
          "connections; %d CPUs shared with the client and the fake "
          "providers" % (args.bound_kib, args.bound_pct, args.connections,
                         os.cpu_count()))
    print()
    for n, l in enumerate(lines):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(l, widths))))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    print()
    print("VmRSS KiB along the way: " + "; ".join(
        "%d: %s" % (s["requests"], ", ".join(
            "%s %s" % (r, s["rss_kib"][r]) for r in ROLES))
        for s in samples))
    eps = {label: e.summary(1.0) for label, e in stats.endpoints.items()}
    answered = sum(e["requests"] for e in eps.values())
    print("requests: %d answered as expected, %d failed; by endpoint: %s"
          % (answered, stats.nfailures, ", ".join(
              "%s %d" % (l, e["requests"] + e["failures"])
              for l, e in sorted(eps.items()))))
    for label, reason in stats.failures[:20]:
        print("failure: %s: %s" % (label, reason), file=sys.stderr)
    for p in problems:
        print("problem: %s" % p, file=sys.stderr)
    over = [x["role"] for x in rows if not x["ok"]]
    valid = not over and not problems and stats.nfailures == 0
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="seconds"),
        "requests": last["requests"], "first": first["requests"],
        "connections": args.connections,
        "bound": {"kib": args.bound_kib, "pct": args.bound_pct},
        "roles": rows, "samples": samples,
        "answered": answered, "failures": stats.nfailures,
        "failure_examples": [{"endpoint": l, "reason": r}
                             for l, r in stats.failures],
        "problems": problems,
        "endpoints": {l: {"requests": e["requests"],
                          "failures": e["failures"],
                          "statuses": e["statuses"]}
                      for l, e in eps.items()},
        "valid": valid,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("\nwritten: %s" % args.json)
    if not valid:
        print("FAILED: %s%s%s" % (
            "over the bound: %s; " % ", ".join(over) if over else "",
            "%d failed requests; " % stats.nfailures
            if stats.nfailures else "", "; ".join(problems)),
            file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
