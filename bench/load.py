#!/usr/bin/python3
"""Mixed load on connectord, flows in the background, against a bare server.

Usage: bench/load.py [--build DIR] [--duration 60] [--connections 64]
                     [--writers 1] [--timeout 10] [--flow-timeout 40]
                     [--no-flows] [--targets daemon,bare] [--json FILE]
                     [-v] [--keep]

Runs flows with the real rclone: on a machine where others run rclone
flows too, serialise on port 53682, e.g. flock /tmp/cd-rclone.lock ...

What it does, for each target in turn (the real daemon, then
build/bench/bare-evhttp), with the same client and the same mix:

- --connections keep-alive connections (64) for --duration seconds (60):
  one writer per token connector (manus, github, vercel; --writers for
  more) that saves a new token (POST <c>/token; a disconnect every
  DISCONNECT_EVERY-th write) and reads its status right after each
  acknowledged write; every other connection reads, cycling through GET
  <c>/status for manus, github and vercel, GET gdrive/remotes, GET
  onedrive/remotes and GET /api/connectors. Each token saved is new and
  belongs to its own account at the fake provider.
- in the background, three more connections start and cancel flows in a
  loop: gdrive and onedrive in turn with the real rclone (POST
  <c>/remotes, every other time waiting for awaiting_oauth, then POST
  .../cancel and a GET of the session, which must then be 404); Vercel
  OAuth starts (GET vercel/oauth/start); GitHub device flows with the real
  gh (POST github/cli/start, a poll every other time, POST cli/cancel,
  then a poll that must be 404). A 409 on an rclone start (another flow
  holds the port lock, or is still giving it back) is an expected answer,
  counted apart; the loop tries again.

Every request has a timeout (--timeout, --flow-timeout for flow starts,
saves and cancels). A reset, an EOF, a timeout, a status outside the
expected ones or a malformed answer is a failure. The daemon's answers
are checked further: the remotes and the list match the workspace, and a
status read after an acknowledged write shows that write (the account
saved, or not connected after a disconnect).

After the daemon's run, with every request answered:

- every write is in place: mcp-tokens.json holds, for each token
  connector, the token of the last acknowledged write (none after a
  disconnect) -- writes of one connector are sequential, one writer each,
  so "last" is well defined; with --writers N > 1 it must hold the token
  of a write that no acknowledged write of that connector followed (began
  after it was answered) --, the unrelated key "other" is intact,
  rclone.conf is byte for byte what it was, github_token.json is absent
  (only pasted tokens were saved);
- every acknowledged save has an "ok" line with the token's fingerprint
  in the vault's IPC log (<state_dir>/ipc.log, HMAC under ipc-log.key),
  and `connectorctl audit verify` accepts the log;
- the http and vault processes are the ones that started (no crash and
  restart hid a failure), and no gh, rclone or worker outlives its flow
  (Vercel OAuth workers wait for their callback until session_ttl; at
  most vercel_pending_max of them may stay).

The bare server has no state: its answers are not checked beyond their
status and shape, and a session it is asked about after a cancel answers
200 (the daemon: 404).

Prints a table (per endpoint: requests, req/s, p50/p99 latency in ms,
failures, daemon beside bare), the CPU seconds each process used during
each run and how busy the machine was, and writes it all as JSON to
<build>/bench-load.json. Exit status 1 if any request failed or any check
after the run failed.

The client, the fake providers, rclone, gh, the daemon's processes and
the bare server all share the machine's cores: the numbers compare the
daemon with the bare server under the same conditions; they are not the
capacity of either on a dedicated host.

Python 3 standard library only; talks to 127.0.0.1 only.
"""

import argparse
import asyncio
import datetime
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import call  # noqa: E402

API = "/api/connectors/"
TOKEN_CONNECTORS = ("manus", "github", "vercel")
RCLONE_CONNECTORS = ("gdrive", "onedrive")
ALL_CONNECTORS = {"gdrive", "onedrive", "github", "vercel", "manus"}
ACCOUNT_KEY = {"github": "login", "vercel": "username"}
STORED_SECRET = {"manus": "api_key", "github": "access_token",
                 "vercel": "access_token"}
AUTH_METHOD = {"github": "pat", "vercel": "api_token"}
DISCONNECT_EVERY = 10       # one write in ten is a disconnect
SAVES_PER_SECOND = 40       # per connector, an upper bound: sizes the pools
VERCEL_PENDING_MAX = 32     # the default of vercel_pending_max
LEFTOVER_WAIT = 15          # seconds for workers and tools to end
RCLONE_BUSY_PAUSE = 0.05    # seconds between starts refused with 409

READ_MIX = [
    ("GET manus/status", API + "manus/status", "status", "manus"),
    ("GET github/status", API + "github/status", "status", "github"),
    ("GET vercel/status", API + "vercel/status", "status", "vercel"),
    ("GET gdrive/remotes", API + "gdrive/remotes", "remotes", "gdrive"),
    ("GET onedrive/remotes", API + "onedrive/remotes", "remotes",
     "onedrive"),
    ("GET /api/connectors", "/api/connectors", "list", None),
]

# The row order of the table.
LABELS = [r[0] for r in READ_MIX] + \
    ["POST %s/token" % c for c in TOKEN_CONNECTORS] + \
    ["POST %s/disconnect" % c for c in TOKEN_CONNECTORS] + [
        "POST {c}/remotes", "POST {c}/remotes (409 busy)",
        "GET {c}/sessions/{id}", "POST {c}/sessions/{id}/cancel",
        "GET {c}/sessions/{id} (after cancel)",
        "GET vercel/oauth/start",
        "POST github/cli/start", "POST github/cli/poll",
        "POST github/cli/cancel", "POST github/cli/poll (after cancel)"]


# ---------------------------------------------------------------------------
# Answer checks: None when the answer is right, else the reason


def is_ok_true(status, body):
    return None if isinstance(body, dict) and body.get("ok") is True \
        else 'not {"ok": true}'


def check_status(status, body):
    if not isinstance(body, dict) or not isinstance(body.get("connected"),
                                                    bool):
        return "no boolean \"connected\""
    return None


class Run:
    """One target's run: the mix, the flows, and what they saw."""

    def __init__(self, name, port, token, bare, pools, args):
        self.name = name
        self.port = port
        self.token = token
        self.bare = bare
        self.pools = pools
        self.args = args
        self.stats = benchlib.Stats()
        self.writes = {c: [] for c in TOKEN_CONNECTORS}
        self.next_token = {c: 0 for c in TOKEN_CONNECTORS}
        self.flows = {"rclone": 0, "rclone_busy": 0, "vercel": 0, "gh": 0}
        self.end = None
        self.elapsed = None

    def client(self):
        return benchlib.Client(self.port, self.token)

    # -- checks that only the daemon's answers can pass

    def check_remotes(self, connector):
        def check(status, body):
            r = body.get("remotes") if isinstance(body, dict) else None
            if not isinstance(r, list) or not all(
                    isinstance(x, dict) and isinstance(x.get("name"), str)
                    and isinstance(x.get("type"), str) for x in r):
                return "no \"remotes\" list of {name, type}"
            if not self.bare and r != benchlib.INITIAL_REMOTES[connector]:
                return "not the workspace's remotes"
            return None
        return check

    def check_list(self, status, body):
        c = body.get("connectors") if isinstance(body, dict) else None
        if not isinstance(c, list) or not all(isinstance(x, dict)
                                              for x in c):
            return "no \"connectors\" list"
        if {x.get("name") for x in c} != ALL_CONNECTORS or len(c) != 5:
            return "not the five connectors"
        if not self.bare and any(x.get("remotes") != 1 for x in c
                                 if x.get("name") in RCLONE_CONNECTORS):
            return "not one remote each for gdrive and onedrive"
        return None

    def check_saved(self, connector, token):
        def check(status, body):
            why = is_ok_true(status, body)
            if why or self.bare or connector not in ACCOUNT_KEY:
                return why
            user = body.get("user")
            key = ACCOUNT_KEY[connector]
            if not isinstance(user, dict) or \
                    user.get(key) != self.pools.login[token]:
                return "the answer's user is not the token's account"
            return None
        return check

    def check_after_write(self, connector, token):
        """The status right after an acknowledged write shows it."""
        def check(status, body):
            why = check_status(status, body)
            if why or self.bare:
                return why
            if token is None:
                return None if body["connected"] is False else \
                    "connected after an acknowledged disconnect"
            if body["connected"] is not True:
                return "not connected after an acknowledged save"
            if connector in ACCOUNT_KEY:
                user = body.get("user")
                if not isinstance(user, dict) or user.get(
                        ACCOUNT_KEY[connector]) != self.pools.login[token]:
                    return "status shows another account than the last " \
                        "acknowledged save's"
            return None
        return check

    # -- the connections

    async def reader(self, i):
        cl = self.client()
        n = i
        try:
            while time.monotonic() < self.end:
                label, path, kind, c = READ_MIX[n % len(READ_MIX)]
                n += 1
                check = {"status": check_status,
                         "remotes": self.check_remotes(c) if c else None,
                         "list": self.check_list}[kind]
                await call(self.stats, cl, label, "GET", path, {200},
                           timeout=self.args.timeout, check=check)
        finally:
            cl.close()

    async def writer(self, c):
        cl = self.client()
        base = API + c
        k = 0
        # With one writer per connector its status must show its last
        # write; with more, another writer's may be there already.
        alone = self.args.writers == 1
        try:
            while time.monotonic() < self.end:
                k += 1
                if k % DISCONNECT_EVERY == 0:
                    token = None
                    t0 = time.monotonic()
                    r = await call(self.stats, cl, "POST %s/disconnect" % c,
                                   "POST", base + "/disconnect", {200},
                                   timeout=self.args.flow_timeout,
                                   check=is_ok_true)
                else:
                    token = self.pools.token(c, self.next_token[c])
                    self.next_token[c] += 1
                    t0 = time.monotonic()
                    r = await call(self.stats, cl, "POST %s/token" % c,
                                   "POST", base + "/token", {200},
                                   body={"token": token},
                                   timeout=self.args.flow_timeout,
                                   check=self.check_saved(c, token))
                self.writes[c].append({"token": token, "start": t0,
                                       "end": time.monotonic(),
                                       "acked": r is not None})
                if r is not None:
                    await call(self.stats, cl, "GET %s/status" % c, "GET",
                               base + "/status", {200},
                               timeout=self.args.timeout,
                               check=self.check_after_write(c, token)
                               if alone else check_status)
        finally:
            cl.close()

    async def rclone_loop(self):
        """gdrive and onedrive flows in turn: start, sometimes wait for
        rclone's URL, cancel, check the session is gone."""
        cl = self.client()
        ft = self.args.flow_timeout
        n = 0
        try:
            while time.monotonic() < self.end:
                c = RCLONE_CONNECTORS[n % 2]
                name = "bench%d" % n
                r = await call(self.stats, cl, "POST {c}/remotes", "POST",
                               API + c + "/remotes",
                               {202: None,
                                409: "POST {c}/remotes (409 busy)"},
                               body={"name": name}, timeout=ft,
                               check=self.check_rc_start)
                if r is None:
                    await asyncio.sleep(RCLONE_BUSY_PAUSE)
                    continue
                if r[0] == 409:
                    self.flows["rclone_busy"] += 1
                    await asyncio.sleep(RCLONE_BUSY_PAUSE)
                    continue
                n += 1
                self.flows["rclone"] += 1
                sid = r[1]["session_id"]
                spath = "%s%s/sessions/%s" % (API, c, sid)
                if n % 2 == 0:
                    await self.rclone_wait_url(cl, spath)
                await call(self.stats, cl, "POST {c}/sessions/{id}/cancel",
                           "POST", spath + "/cancel", {200}, timeout=ft,
                           check=is_ok_true)
                await call(self.stats, cl,
                           "GET {c}/sessions/{id} (after cancel)", "GET",
                           spath, {200} if self.bare else {404},
                           timeout=self.args.timeout)
        finally:
            cl.close()

    def check_rc_start(self, status, body):
        if status == 409:
            return None
        if not isinstance(body, dict) or not isinstance(
                body.get("session_id"), str) or body.get("status") != \
                "pending":
            return 'not {"session_id", "status": "pending"}'
        return None

    async def rclone_wait_url(self, cl, spath):
        """Poll the session until rclone has printed the provider's URL."""
        deadline = time.monotonic() + self.args.flow_timeout
        while time.monotonic() < deadline:
            r = await call(self.stats, cl, "GET {c}/sessions/{id}", "GET",
                           spath, {200}, timeout=self.args.timeout,
                           check=self.check_rc_session)
            if r is None or r[1]["status"] == "awaiting_oauth":
                return
            await asyncio.sleep(0.05)
        self.stats.fail("GET {c}/sessions/{id}", "%s: no awaiting_oauth "
                        "within %d s" % (spath, self.args.flow_timeout))

    def check_rc_session(self, status, body):
        st = body.get("status") if isinstance(body, dict) else None
        if st not in ("pending", "awaiting_oauth"):
            return "status %r, want pending or awaiting_oauth" % (st,)
        if st == "awaiting_oauth" and not str(body.get("auth_url", "")) \
                .startswith("https://"):
            return "awaiting_oauth without an https auth_url"
        return None

    async def vercel_loop(self):
        cl = self.client()
        try:
            while time.monotonic() < self.end:
                r = await call(self.stats, cl, "GET vercel/oauth/start",
                               "GET", API + "vercel/oauth/start", {200},
                               timeout=self.args.flow_timeout,
                               check=self.check_vc_start)
                if r is not None:
                    self.flows["vercel"] += 1
                else:
                    await asyncio.sleep(0.1)
        finally:
            cl.close()

    @staticmethod
    def check_vc_start(status, body):
        if not isinstance(body, dict) or not str(body.get(
                "authorize_url", "")).startswith(
                    "https://vercel.com/oauth/authorize?") or \
                not body.get("state") or not body.get("code_verifier_id"):
            return "not {authorize_url, state, code_verifier_id}"
        return None

    async def gh_loop(self):
        cl = self.client()
        ft = self.args.flow_timeout
        n = 0
        try:
            while time.monotonic() < self.end:
                r = await call(self.stats, cl, "POST github/cli/start",
                               "POST", API + "github/cli/start", {200},
                               timeout=ft, check=self.check_gh_start)
                if r is None:
                    await asyncio.sleep(0.1)
                    continue
                n += 1
                self.flows["gh"] += 1
                sid = {"session_id": r[1]["session_id"]}
                if n % 2 == 0:
                    await call(self.stats, cl, "POST github/cli/poll",
                               "POST", API + "github/cli/poll", {200},
                               body=sid, timeout=self.args.timeout,
                               check=self.check_gh_pending)
                await call(self.stats, cl, "POST github/cli/cancel", "POST",
                           API + "github/cli/cancel", {200}, body=sid,
                           timeout=ft, check=is_ok_true)
                await call(self.stats, cl,
                           "POST github/cli/poll (after cancel)", "POST",
                           API + "github/cli/poll",
                           {200} if self.bare else {404}, body=sid,
                           timeout=self.args.timeout)
        finally:
            cl.close()

    @staticmethod
    def check_gh_start(status, body):
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in
                ("session_id", "user_code", "verification_uri")):
            return "not {session_id, user_code, verification_uri, ...}"
        return None

    @staticmethod
    def check_gh_pending(status, body):
        st = body.get("status") if isinstance(body, dict) else None
        return None if st == "pending" else "status %r, want pending" % (st,)

    async def main(self):
        n_readers = self.args.connections - self.args.nwriters
        t0 = time.monotonic()
        self.end = t0 + self.args.duration
        tasks = [self.reader(i) for i in range(n_readers)]
        tasks += [self.writer(c) for c in TOKEN_CONNECTORS
                  for _ in range(self.args.writers)]
        if self.args.flows:
            tasks += [self.rclone_loop(), self.vercel_loop(), self.gh_loop()]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        self.elapsed = time.monotonic() - t0
        for r in results:
            if isinstance(r, BaseException):
                self.stats.fail("client", "a connection's loop raised %r"
                                % (r,))


# ---------------------------------------------------------------------------
# Where the CPU went


class CpuMeter:
    """CPU seconds of the processes of a run, and how busy the machine
    was: on shared cores a server's numbers mean little without them."""

    def __init__(self, procs):
        self.procs = procs      # name -> (pid, "own"|"children"|"both")
        self.before = self.sample()

    def sample(self):
        out = {}
        for name, (pid, part) in self.procs.items():
            if pid is None:
                t = os.times()
                out[name] = t.user + t.system
                continue
            c = benchlib.cpu_seconds(pid)
            if c is not None:
                out[name] = {"own": c[0], "children": c[1],
                             "both": c[0] + c[1]}[part]
        out[None] = benchlib.machine_jiffies()
        return out

    def result(self):
        after = self.sample()
        cpu = {n: round(after[n] - self.before[n], 2) for n in self.procs
               if n in after and n in self.before}
        busy = after[None][0] - self.before[None][0]
        total = after[None][1] - self.before[None][1]
        return cpu, round(100.0 * busy / total, 1) if total else 0.0


# ---------------------------------------------------------------------------
# After the daemon's run


class Checks:
    """Named pass/fail checks made after a run."""

    def __init__(self):
        self.results = []

    def check(self, good, name, detail=""):
        self.results.append({"ok": bool(good), "check": name,
                             "detail": "" if good else detail})
        return good

    def note(self, text):
        """Not a check: a fact worth printing beside them."""
        self.results.append({"ok": True, "check": text, "detail": "",
                             "note": True})

    def failed(self):
        return [r for r in self.results if not r["ok"]]


def expected_final(writes):
    """The values the connector may hold after its writes: those of the
    writes no acknowledged write followed (started after it ended). With
    one writer and every write acknowledged that is the last write's.
    Returns a set of tokens (None: nothing stored)."""
    inf = float("inf")
    out = set()
    for w in writes:
        end = w["end"] if w["acked"] else inf
        if not any(x["acked"] and x["start"] > end for x in writes):
            out.add(w["token"])
    return out


def fingerprint(key, secret):
    """The IPC log's fingerprint (lib/audit.c audit_fingerprint)."""
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()[:32]


def verify_daemon(env, run, roles_before, build, checks):
    """Everything acknowledged is stored; nothing crashed or was left."""
    tokens_raw = env.read_bytes(os.path.join(env.workspace,
                                             "mcp-tokens.json"))
    try:
        tokens = json.loads(tokens_raw) if tokens_raw else {}
    except ValueError:
        tokens = None
    if not checks.check(isinstance(tokens, dict),
                        "mcp-tokens.json parses as a JSON object",
                        repr(tokens_raw[:200] if tokens_raw else None)):
        tokens = {}
    checks.check(tokens.get("other") == {"x": 1},
                 "mcp-tokens.json: the unrelated key \"other\" is intact",
                 repr(tokens.get("other")))
    for c in TOKEN_CONNECTORS:
        writes = run.writes[c]
        entry = tokens.get(c)
        stored = entry.get(STORED_SECRET[c]) if isinstance(entry, dict) \
            else None
        want = expected_final(writes)
        acked = sum(w["acked"] for w in writes)

        def describe(token):
            if token is None:
                return "nothing"
            n = [i + 1 for i, w in enumerate(writes) if w["token"] == token]
            return "the token of write #%d" % n[-1] if n else \
                "a token never sent"
        checks.check(stored in want if writes else stored is None,
                     "mcp-tokens.json[%s] holds the last acknowledged write "
                     "(%d writes, %d acknowledged, the last a %s)"
                     % (c, len(writes), acked,
                        "disconnect" if writes and writes[-1]["token"] is None
                        else "save"),
                     "stored %s, want %s" % (describe(stored), " or ".join(
                         describe(t) for t in want)))
        if stored is not None and c in AUTH_METHOD:
            checks.check(entry.get("auth_method") == AUTH_METHOD[c],
                         "mcp-tokens.json[%s] auth_method is %s"
                         % (c, AUTH_METHOD[c]),
                         repr(entry.get("auth_method")))
    checks.check(not os.path.exists(os.path.join(
        env.home, ".xo-cowork", "github_token.json")),
        "github_token.json absent (only pasted GitHub tokens were saved)")
    checks.check(env.read_bytes(os.path.join(env.workspace, "rclone.conf"))
                 == benchlib.INITIAL_RCLONE.encode(),
                 "rclone.conf unchanged by the started and cancelled flows")

    # The IPC log: a line for every acknowledged save, an intact chain.
    with open(os.path.join(env.state_dir, "ipc-log.key"), "rb") as f:
        key = f.read()
    logged = {c: set() for c in TOKEN_CONNECTORS}
    nlines = 0
    with open(os.path.join(env.state_dir, "ipc.log"), "rb") as f:
        for line in f:
            nlines += 1
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("outcome") == "ok" and rec.get("connector") in \
                    logged and isinstance(rec.get("fp"), dict):
                logged[rec["connector"]] |= set(rec["fp"].values())
    for c in TOKEN_CONNECTORS:
        saves = [w["token"] for w in run.writes[c]
                 if w["acked"] and w["token"] is not None]
        missing = [t for t in saves if fingerprint(key, t)
                   not in logged[c]]
        checks.check(not missing, "ipc.log has an ok line for each of the "
                     "%d acknowledged %s saves" % (len(saves), c),
                     "%d missing" % len(missing))
        # A save that failed may still have been stored (e.g. answered 503
        # after the vault wrote it): worth knowing when one failed.
        unacked = [w["token"] for w in run.writes[c]
                   if not w["acked"] and w["token"] is not None]
        if unacked:
            applied = sum(fingerprint(key, t) in logged[c] for t in unacked)
            checks.note("%d failed %s saves, %d of them stored anyway "
                        "(ipc.log)" % (len(unacked), c, applied))
    p = subprocess.run([os.path.join(build, "connectorctl"), "audit",
                        "verify", os.path.join(env.state_dir, "ipc.log")],
                       capture_output=True, text=True, check=False)
    checks.check(p.returncode == 0, "connectorctl audit verify: %s"
                 % (p.stdout.strip() or p.stderr.strip()),
                 p.stdout + p.stderr)

    # No role restarted, nothing left behind.
    roles = benchlib.role_pids(env.pid)
    for role in ("http", "vault"):
        checks.check(roles.get(role) == roles_before.get(role),
                     "the %s process is the one that started (no crash)"
                     % role, "%r then %r" % (roles_before.get(role),
                                             roles.get(role)))

    def leftovers():
        r = benchlib.role_pids(env.pid)
        others = {k: v for k, v in r.items() if k.startswith("worker ")
                  and k != "worker vercel"}
        return (others, len(r.get("worker vercel", [])),
                benchlib.tool_pids(env.pid))

    def clean():
        others, nvc, tools = leftovers()
        return not others and not tools and nvc <= VERCEL_PENDING_MAX
    cdtest = benchlib.cdtest
    cdtest.wait_for(clean, LEFTOVER_WAIT, 0.2)
    others, nvc, tools = leftovers()
    checks.check(not others and not tools,
                 "no worker, gh or rclone left %d s after the run "
                 "(besides pending Vercel OAuth workers)" % LEFTOVER_WAIT,
                 "workers %r, tools %r" % (others, tools))
    checks.check(nvc <= VERCEL_PENDING_MAX, "at most %d pending Vercel "
                 "OAuth workers (%d)" % (VERCEL_PENDING_MAX, nvc),
                 "%d" % nvc)
    return nlines


# ---------------------------------------------------------------------------
# Report


def print_table(summaries, elapsed):
    targets = list(summaries)
    head = ["endpoint"]
    for t in targets:
        head += ["%s n" % t, "req/s", "p50 ms", "p99 ms", "fail"]
    lines = [head]
    labels = [l for l in LABELS if any(l in summaries[t]["endpoints"]
                                       for t in targets)]
    labels += sorted({l for t in targets for l in summaries[t]["endpoints"]}
                     - set(labels))
    for label in labels + ["all"]:
        row = [label]
        for t in targets:
            s = summaries[t]["endpoints"].get(label) if label != "all" \
                else summaries[t]["total"]
            if s is None:
                row += ["-", "-", "-", "-", "-"]
            else:
                row += [str(s["requests"]), "%.1f" % s["rps"],
                        "%.2f" % s["p50_ms"], "%.2f" % s["p99_ms"],
                        str(s["failures"])]
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        if n == len(lines) - 1:
            print("-+-".join("-" * w for w in widths))
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths))))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def summarize(run):
    eps = {label: e.summary(run.elapsed)
           for label, e in run.stats.endpoints.items()}
    lat = sorted(x for e in run.stats.endpoints.values() for x in e.lat)
    answered = len(lat)
    total = {"requests": answered,
             "rps": answered / run.elapsed if run.elapsed else 0.0,
             "p50_ms": benchlib.percentile(lat, 50) * 1e3,
             "p99_ms": benchlib.percentile(lat, 99) * 1e3,
             "failures": run.stats.nfailures}
    return {"elapsed_s": round(run.elapsed, 3), "endpoints": eps,
            "total": total, "flows": dict(run.flows),
            "writes": {c: {"writes": len(w),
                           "acknowledged": sum(x["acked"] for x in w)}
                       for c, w in run.writes.items()},
            "failures": [{"endpoint": l, "reason": r}
                         for l, r in run.stats.failures]}


# ---------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(benchlib.REPO, "build"),
                    help="meson build directory (default: build)")
    ap.add_argument("--duration", type=int, default=60,
                    help="seconds of load per target (default: 60)")
    ap.add_argument("--connections", type=int, default=64,
                    help="keep-alive connections of the mix (default: 64)")
    ap.add_argument("--timeout", type=float, default=10,
                    help="seconds a read may take (default: 10)")
    ap.add_argument("--flow-timeout", type=float, default=40,
                    help="seconds a save, disconnect, flow start or cancel "
                    "may take (default: 40; the daemon's own deadline is "
                    "35)")
    ap.add_argument("--targets", default="daemon,bare",
                    help="comma-separated: daemon, bare (default: both)")
    ap.add_argument("--writers", type=int, default=1,
                    help="writer connections per token connector (default: "
                    "1, so that each connector's writes are ordered; with "
                    "more, the stored token must be one that no "
                    "acknowledged write followed)")
    ap.add_argument("--no-flows", dest="flows", action="store_false",
                    help="no OAuth flows in the background")
    ap.add_argument("--json", help="where to write the results (default: "
                    "<build>/bench-load.json)")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="start the daemon with as many -v (its log is in "
                    "the temp dir: see --keep)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (daemon log, workspace, state) "
                    "and print its path")
    args = ap.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    if not args.targets or set(args.targets) - {"daemon", "bare"}:
        ap.error("--targets takes daemon and/or bare")
    if not 1 <= args.duration <= 3600:
        ap.error("--duration must be between 1 and 3600 seconds")
    if not 1 <= args.writers <= 16:
        ap.error("--writers must be between 1 and 16")
    args.nwriters = args.writers * len(TOKEN_CONNECTORS)
    if not args.nwriters + 1 <= args.connections <= 1000:
        ap.error("--connections must be between %d and 1000"
                 % (args.nwriters + 1))
    args.build = os.path.abspath(args.build)
    args.json = args.json or os.path.join(args.build, "bench-load.json")
    return args


def main():
    args = parse_args()
    bare_bin = os.path.join(args.build, "bench", "bare-evhttp")
    for path in (os.path.join(args.build, "connectord"), bare_bin,
                 os.path.join(args.build, "connectorctl")):
        if not os.access(path, os.X_OK):
            sys.exit("no %s: build first (ninja -C %s)" % (path, args.build))
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    if args.flows:
        benchlib.reserve_oauth_port()

    tmp = benchlib.make_tmp("connectord-load-")
    servers = []
    summaries = {}
    checks = Checks()
    fake = None
    try:
        print("fake providers, token pools ...", flush=True)
        fake = benchlib.cdtest.Fake()
        pools = benchlib.TokenPools(fake, max(100, SAVES_PER_SECOND *
                                              args.writers * args.duration))
        for target in args.targets:
            tdir = os.path.join(tmp, target)
            os.mkdir(tdir, 0o755)
            if target == "daemon":
                env = benchlib.DaemonEnv(
                    args.build, tdir, servers, fake,
                    files={"mcp-tokens.json": benchlib.INITIAL_TOKENS,
                           "rclone.conf": benchlib.INITIAL_RCLONE},
                    verbose=args.verbose)
                port, token, server = env.port, env.token, env.server
                roles_before = benchlib.role_pids(env.pid)
            else:
                port = benchlib.free_port()
                token = "bench-" + os.urandom(16).hex()
                server = benchlib.Server("bare-evhttp",
                                         [bare_bin, str(port), token],
                                         os.path.join(tdir, "bare.log"))
                servers.append(server)
                server.wait_ready(port, API + "manus/status", token)
            print("%s: %d connections, %d s%s ..." % (
                target, args.connections, args.duration,
                ", flows in the background" if args.flows else ""),
                flush=True)
            run = Run(target, port, token, target == "bare", pools, args)
            if target == "daemon":
                procs = {"http": (roles_before["http"][0], "own"),
                         "vault": (roles_before["vault"][0], "own"),
                         "broker": (env.pid, "own"),
                         "workers+gh+rclone": (env.pid, "children")}
            else:
                procs = {"bare-evhttp": (server.pid, "own")}
            procs["fake providers"] = (fake.proc.pid, "both")
            procs["client"] = (None, "own")
            meter = CpuMeter(procs)
            asyncio.run(run.main())
            cpu, busy = meter.result()
            if not server.alive():
                checks.check(False, "%s is alive after the run" % target,
                             server.log_tail())
            summaries[target] = summarize(run)
            summaries[target]["cpu_s"] = cpu
            summaries[target]["machine_busy_pct"] = busy
            if target == "daemon":
                nlines = verify_daemon(env, run, roles_before, args.build,
                                       checks)
                summaries[target]["ipc_log_lines"] = nlines
            server.stop()
    finally:
        for server in reversed(servers):
            server.stop()
        if fake is not None:
            fake.stop()
        if args.keep:
            print("kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("%d s per target, %d connections (%d writers, %d readers)%s; "
          "%d CPUs shared by the client, the fake providers, the tools and "
          "the servers" % (args.duration, args.connections, args.nwriters,
                           args.connections - args.nwriters,
                           " + 3 flow loops" if args.flows else "",
                           os.cpu_count()))
    print("endpoints under /api/connectors/; latencies of expected answers; "
          "fail = failed or hung requests")
    print()
    print_table(summaries, None)
    print()
    for t, s in summaries.items():
        w = ", ".join("%s %d/%d" % (c, x["acknowledged"], x["writes"])
                      for c, x in s["writes"].items())
        f = s["flows"]
        print("%s: writes acknowledged %s; flows: rclone %d started "
              "(%d starts refused with 409 while the port lock was busy), "
              "vercel %d, gh %d" % (t, w, f["rclone"], f["rclone_busy"],
                                    f["vercel"], f["gh"]))
        print("%s: CPU seconds: %s; all CPUs %.0f%% busy (other work on "
              "the machine included)" % (
            t, ", ".join("%s %.1f" % kv for kv in s["cpu_s"].items()),
            s["machine_busy_pct"]))
    for r in checks.results:
        print("%s %s%s" % ("note" if r.get("note") else
                           "ok  " if r["ok"] else "FAIL", r["check"],
                           (": " + r["detail"]) if r["detail"] else ""))
    nfail = sum(s["total"]["failures"] for s in summaries.values())
    for t, s in summaries.items():
        for f in s["failures"][:20]:
            print("%s failure: %s: %s" % (t, f["endpoint"], f["reason"]),
                  file=sys.stderr)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "connections": args.connections,
        "writers": args.nwriters,
        "flows": args.flows,
        "cpus": os.cpu_count(),
        "valid": nfail == 0 and not checks.failed(),
        "targets": summaries,
        "checks": checks.results,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("\nwritten: %s" % args.json)
    if not result["valid"]:
        print("FAILED: %d failed or hung requests, %d failed checks"
              % (nfail, len(checks.failed())), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
