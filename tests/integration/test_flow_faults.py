#!/usr/bin/python3
"""Flows against providers that hang, answer slowly, answer 500 or answer
garbage, and flows whose gh, rclone or worker is killed (issue 6,
"Faults"): every wait ends within a bound taken from the daemon's own
limits, every failure ends in a JSON error sentence (api.md), no
credential file changes, no gh, rclone, worker or job directory is left,
and the OAuth port lock and the device-flow count come back.

- GitHub device flow (real gh 2.23): the device-code endpoint and the
  token poll each hanging, slow, answering 500, HTML, cut-off JSON, or
  the right body under the wrong content type; gh and its worker killed
  while the flow is pending.
- Drive / OneDrive (real rclone 1.60): the token endpoint hanging, slow,
  answering 500, HTML or cut-off JSON after the paste; Microsoft Graph's
  me/drive answering 500 or HTML; rclone killed while awaiting the paste
  and while redeeming it; the worker killed.
- Vercel OAuth: the token endpoint hanging, slow, answering 500, HTML or
  cut-off JSON; userinfo answering HTML (with and without a usable
  /v2/user to fall back on); the worker killed while awaiting the code
  and while exchanging it.

One fake and one daemon (session_ttl 30, the shortest allowed, and
gh_flows_max 2). The waits that only a bound can end (a hanging device
code: 20 s; a hanging poll: the 30 s session; a hanging Vercel exchange:
libcurl's 15 s; a hanging Drive exchange: 20 s) run side by side in
background threads, started first, while the quick cases run; the
checks on them come later, from the main thread. Flows that must
complete (the slow answers) run last, so that every earlier check can
demand that no credential file changed at all.

Port 53682 is global to the machine: rclone flows run one at a time, each
after the port is free.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import (argv_of, environ_of, privdir_of,  # noqa: E402
                    starttime)
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

GH, RCLONE = "/usr/bin/gh", "/usr/bin/rclone"
API = "/api/connectors/"
GHB = API + "github"
VCB = API + "vercel"
PORT = 53682
TTL = 30                # session_ttl: the job deadline of every flow
GH_CODE_WAIT = 20       # workers/ghdevice.c GH_CODE_WAIT_SEC
RC_EXCHANGE_WAIT = 20   # workers/rclone.c RC_EXCHANGE_WAIT_SEC
CURL_TIMEOUT = 15       # include/cd_limits.h CD_CURL_TIMEOUT_SEC
QUICK = 5               # a failure no timeout has to end: answered within
SLACK = 6               # a bounded wait ends by its bound plus this
LOCK_GRACE = 3          # a new rclone flow starts within this of an end
SLOW = 3                # seconds a "slow" answer is late
VC_CLIENT = "cl_faults0123"
VC_REDIRECT = "http://127.0.0.1:8700/callback"
TOKEN_PATH = {"gdrive": ("google", "/token"),
              "onedrive": ("microsoft", "/common/oauth2/v2.0/token")}
WHO = {"gdrive": "Google", "onedrive": "Microsoft"}

# What the workspace holds before the daemon starts: every failure below
# must leave these bytes exactly as they are.
RCLONE_CONF = (
    "# hand-kept remotes: nothing below may move\n"
    "\n"
    "[keep]\n"
    "type = drive\n"
    'token = {"access_token":"ya29.keep-%s","token_type":"Bearer",'
    '"refresh_token":"1//keep","expiry":"2024-01-01T00:00:00Z"}\n'
    "\n"
    "[work]\n"
    "type = onedrive\n"
    "drive_id = b!work\n"
    "drive_type = business\n"
    "\n" % secrets.token_urlsafe(12))
TOKENS = json.dumps({
    "github": {"access_token": "ghp_" + secrets.token_hex(18),
               "refresh_token": None, "expires_at": 0,
               "token_type": "Bearer", "scope": "repo",
               "auth_method": "pat"},
    "vercel": {"access_token": secrets.token_hex(12),
               "token_type": "Bearer", "auth_method": "api_token",
               "username": "kept", "name": "Kept"},
    "other": {"x": 1}}, indent=2) + "\n"
GH_TOKEN_FILE = json.dumps({
    "access_token": "gho_" + secrets.token_hex(18), "token_type": "bearer",
    "scope": "repo", "user": {"login": "kept"},
    "created_at": "2024-01-01T00:00:00Z"}) + "\n"


# ---------------------------------------------------------------------------
# /proc


class Watch:
    """Samples the broker's descendants every 50 ms: workers (their job
    directory from their working directory) and the gh and rclone they run
    (theirs from HOME), each under (pid, starttime) so that a reused pid
    is never mistaken for one of ours."""

    def __init__(self, daemon):
        self.d = daemon
        self.lock = threading.Lock()
        self.seen = {}          # (pid, starttime) -> info
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_ev.wait(0.05):
            try:
                self.sample()
            except Exception:   # a process vanishing mid-read
                pass

    def sample(self):
        proc = self.d.proc
        if proc is None or proc.poll() is not None:
            return
        for pid in cdtest._descendants(proc.pid):
            key = (pid, starttime(pid))
            argv = argv_of(pid)
            title = cdtest._title(pid) or ""
            # A tool is checked first: between fork and execve it still
            # carries its worker's title.
            if argv and os.path.basename(argv[0]) in ("gh", "rclone"):
                kind, name = "tool", os.path.basename(argv[0])
            elif title.startswith("connectord: worker "):
                kind, name = "worker", title.split()[2]
            else:
                continue
            with self.lock:
                info = self.seen.get(key)
            if info is not None and info["kind"] == kind:
                if info["dir"] is None and kind == "worker":
                    with contextlib.suppress(OSError):
                        info["dir"] = privdir_of(
                            os.readlink("/proc/%d/cwd" % pid))
                continue
            if kind == "worker":
                info = {"kind": kind, "name": name, "dir": None}
                with contextlib.suppress(OSError):
                    info["dir"] = privdir_of(
                        os.readlink("/proc/%d/cwd" % pid))
            else:
                f = cdtest._stat_fields(pid)
                info = {"kind": kind, "name": name, "argv": argv,
                        "ppid": int(f[1]) if f else None,
                        "dir": privdir_of(environ_of(pid).get("HOME"))}
            with self.lock:
                self.seen[key] = info

    def mark(self):
        with self.lock:
            return set(self.seen)

    def since(self, mark, *names):
        """{key: info} of processes first seen after mark, of the given
        worker connectors and tool names (all when none given)."""
        with self.lock:
            return {k: dict(v) for k, v in self.seen.items()
                    if k not in mark and (not names or v["name"] in names)}

    def all(self):
        return self.since(set())

    def now(self, procs):
        """The current record of each process in procs (its job directory
        may have been learnt since)."""
        with self.lock:
            return {k: dict(self.seen.get(k, v)) for k, v in procs.items()}

    @staticmethod
    def live(procs):
        return sorted(pid for (pid, st) in procs if cdtest.alive(pid) and
                      starttime(pid) == st)

    @staticmethod
    def dirs_left(procs):
        return sorted({v["dir"] for v in procs.values()
                       if v["dir"] and os.path.lexists(v["dir"])})

    def stop(self):
        self.stop_ev.set()
        self.thread.join(2)


# ---------------------------------------------------------------------------
# Background waits: they only record; the main thread checks.


class Task(threading.Thread):
    def __init__(self, name, fn):
        super().__init__(daemon=True, name=name)
        self.fn = fn
        self.result = None
        self.error = None
        self.t0 = time.monotonic()
        self.start()

    def run(self):
        try:
            self.result = self.fn(self)
        except Exception:
            self.error = traceback.format_exc()

    def finish(self, what, timeout):
        """Join; a check that it ended, and without an exception."""
        self.join(max(0.1, timeout))
        if not ok(not self.is_alive(), "%s: the wait ended" % what):
            return None
        if self.error:
            ok(False, "%s: ran without an exception" % what)
            diag(self.error)
            return None
        return self.result


# ---------------------------------------------------------------------------
# The scenario


class Scenario:
    def __init__(self, fake, daemon, watch):
        self.fake = fake
        self.d = daemon
        self.watch = watch
        self.tasks = {}
        self.procs = {}         # each long wait's own processes
        self.rc_ended = None    # when the last rclone flow ended
        self.secrets = set()

    # -- files

    @property
    def paths(self):
        return {"rclone.conf": os.path.join(self.d.workspace, "rclone.conf"),
                "mcp-tokens.json": self.d.tokens_path,
                "github_token.json": os.path.join(
                    self.d.home, ".xo-cowork", "github_token.json")}

    def files(self, *names):
        out = {}
        for name, path in self.paths.items():
            if names and name not in names:
                continue
            try:
                with open(path, "rb") as f:
                    out[name] = f.read()
            except FileNotFoundError:
                out[name] = None
        return out

    def unchanged(self, what, before):
        now = self.files(*before)
        changed = sorted(n for n in before if now[n] != before[n])
        ok(not changed, "%s: %s unchanged, byte for byte"
           % (what, ", ".join(sorted(before))))
        if changed:
            diag("changed: %r" % changed)

    # -- processes

    def ended(self, what, procs, timeout=10):
        """The flow's gh or rclone and its worker are gone, and so is the
        worker's job directory."""
        procs = self.watch.now(procs or {})
        gone = cdtest.wait_for(lambda: not self.watch.live(procs), timeout)
        if not ok(gone, "%s: no gh, rclone or worker of this flow left"
                  % what):
            diag("left: %r" % [(p, argv_of(p)) for p in
                               self.watch.live(procs)])
        procs = self.watch.now(procs)
        gone = cdtest.wait_for(lambda: not self.watch.dirs_left(procs),
                               timeout)
        if not ok(gone, "%s: its /tmp/connectord-job* directory is gone"
                  % what):
            diag("still there: %r" % self.watch.dirs_left(procs))

    def tool_of(self, mark, tool, connector, timeout=5):
        """(pid of the flow's gh or rclone, pid of its worker), both seen
        after mark; the tool is the worker's child."""
        def find():
            procs = self.watch.since(mark, tool, connector)
            workers = {pid for (pid, _), v in procs.items()
                       if v["kind"] == "worker"}
            for (pid, _), v in procs.items():
                if v["kind"] == "tool" and v["ppid"] in workers and \
                        cdtest.alive(pid):
                    return pid, v["ppid"]
            return None
        return cdtest.wait_for(find, timeout, 0.05) or (None, None)

    def own(self, what, mark, *names):
        """The processes of the one flow started since mark (nothing else
        started meanwhile), once its worker has been seen."""
        cdtest.wait_for(lambda: [v for v in self.watch.since(
            mark, *names).values() if v["kind"] == "worker"], 3, 0.05)
        procs = self.watch.since(mark, *names)
        ok(procs, "%s: its worker and tool were seen (%d processes)"
           % (what, len(procs)))
        return procs

    def worker_of(self, mark, connector, timeout=5):
        def find():
            for (pid, _), v in self.watch.since(mark, connector).items():
                if v["kind"] == "worker" and cdtest.alive(pid):
                    return pid
            return None
        return cdtest.wait_for(find, timeout, 0.05)

    # -- GitHub

    def gh_start(self, timeout=60):
        t0 = time.monotonic()
        result = self.d.api("POST", GHB + "/cli/start", timeout=timeout)
        return result, time.monotonic() - t0

    def gh_poll(self, sid):
        return self.d.api("POST", GHB + "/cli/poll", {"session_id": sid})

    def gh_poll_until(self, sid, timeout, every=0.2):
        """Poll until the status is no longer pending (or not 200).
        Returns (http status, body, seconds, statuses seen)."""
        t0 = time.monotonic()
        seen = []
        while True:
            status, _, body, _ = self.gh_poll(sid)
            st = body.get("status") if isinstance(body, dict) else None
            if not seen or seen[-1][1:] != (status, st):
                seen.append((round(time.monotonic() - t0, 1), status, st))
            if status != 200 or st != "pending" or \
                    time.monotonic() - t0 > timeout:
                return status, body, time.monotonic() - t0, seen
            time.sleep(every)

    def gh_started(self, what):
        """A start that must succeed: (session id, user code) or None."""
        (status, _, body, raw), took = self.gh_start()
        if not ok(status == 200 and isinstance(body, dict) and
                  body.get("session_id") and body.get("user_code"),
                  "%s: cli/start answers 200 with a code (%.1f s)"
                  % (what, took)):
            diag("got %r %r" % (status, raw[:300]))
            return None
        return body["session_id"], body["user_code"]

    # -- Drive / OneDrive

    def rc_session(self, c, sid):
        return self.d.api("GET", "%s%s/sessions/%s" % (API, c, sid))

    def rc_start(self, c, name, what):
        """Start once port 53682 is free; a 409 is retried for LOCK_GRACE
        seconds (the lock of the flow that just ended). Checks that the
        flow started within LOCK_GRACE of the previous one's end. Returns
        the session id or None."""
        if not cdtest.wait_port_free(PORT, 30):
            ok(False, "%s: port %d is free" % (what, PORT))
            return None
        t0 = time.monotonic()
        # Asked right after the previous flow's end: this start checks
        # that the lock came back with it.
        fresh = self.rc_ended is not None and t0 - self.rc_ended < 1
        while True:
            status, _, body, raw = self.d.api("POST", API + c + "/remotes",
                                              {"name": name})
            if status != 409 or time.monotonic() - t0 > LOCK_GRACE:
                break
            time.sleep(0.05)
        if not ok(status == 202 and isinstance(body, dict) and
                  body.get("session_id"), "%s: POST %s/remotes answers 202%s"
                  % (what, c, " within %d s of the previous flow's end: the "
                     "lock came back" % LOCK_GRACE if fresh else "")):
            diag("got %r %r" % (status, raw[:300]))
            return None
        if fresh:
            diag("%s: started %.2f s after the previous flow ended"
                 % (what, time.monotonic() - self.rc_ended))
        self.rc_ended = None
        return body["session_id"]

    def rc_awaiting(self, c, sid, what, timeout=20):
        """Wait for awaiting_oauth; the session's body or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            status, _, body, _ = self.rc_session(c, sid)
            st = (body or {}).get("status")
            if status != 200 or st != "pending":
                break
            time.sleep(0.1)
        if not is_((status, st), (200, "awaiting_oauth"),
                   "%s: the session awaits the paste" % what):
            diag("body %r" % (body,))
            return None
        return body

    def rc_paste(self, body):
        pasted = self.fake.follow_auth_url(body["auth_url"])
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(pasted).query)
        self.secrets |= set(q.get("code", []))
        return pasted

    def rc_submit(self, c, sid, pasted, what):
        return answered_ok(self.d.api("POST", "%s%s/sessions/%s/submit"
                                      % (API, c, sid), {"code": pasted}),
                           "%s: the paste is accepted" % what)

    def rc_until_end(self, c, sid, timeout):
        """Poll until the session is no longer pending/awaiting (or not
        200). (http status, body, seconds)."""
        t0 = time.monotonic()
        while True:
            status, _, body, _ = self.rc_session(c, sid)
            st = (body or {}).get("status")
            if status != 200 or st not in ("pending", "awaiting_oauth") or \
                    time.monotonic() - t0 > timeout:
                return status, body, time.monotonic() - t0
            time.sleep(0.1)

    def rc_cancel(self, c, sid):
        return self.d.api("POST", "%s%s/sessions/%s/cancel" % (API, c, sid))

    # -- Vercel

    def vc_started(self, what):
        """oauth/start and the consent at the fake: (code, state) or
        None."""
        status, _, body, raw = self.d.api("GET", VCB + "/oauth/start")
        if not ok(status == 200 and isinstance(body, dict) and
                  body.get("authorize_url"), "%s: oauth/start answers 200"
                  % what):
            diag("got %r %r" % (status, raw[:300]))
            return None
        loc = self.fake.vercel_authorize(body["authorize_url"])
        q = {k: v[0] for k, v in urllib.parse.parse_qs(
            urllib.parse.urlsplit(loc).query).items()}
        self.secrets.add(q.get("code"))
        return q.get("code"), q.get("state")

    def vc_exchange(self, code, state, timeout=60):
        t0 = time.monotonic()
        result = self.d.api("POST", VCB + "/oauth/exchange",
                            {"code": code, "state": state}, timeout=timeout)
        return result, time.monotonic() - t0

    # -- the fake

    def fault_taken(self, provider, path, timeout=10):
        """Wait until a times=1 fault on path was used."""
        return cdtest.wait_for(lambda: not [
            f for f in self.fake.faults(provider) if f["path"] == path],
            timeout, 0.05)


def sentence(body):
    """The error sentence of an answer body, or None."""
    e = body.get("error") if isinstance(body, dict) else None
    return e if isinstance(e, str) and e.strip() else None


def is_sentence(err, what, *words):
    """A sentence a person can act on: ends with a period and says one of
    words (when given). (No code or token in it: nothing_left scans every
    answer.)"""
    good = isinstance(err, str) and len(err) > 20 and \
        err.rstrip().endswith(".") and (not words or any(
            w.lower() in err.lower() for w in words))
    if not ok(good, "%s: the error says so in a sentence (%r)" % (what, err)):
        diag("wanted one of %r" % (words,))
    return good


@contextlib.contextmanager
def scenario():
    for tool in (GH, RCLONE):
        if not os.access(tool, os.X_OK):
            cdtest.skip_all("no %s" % tool)
    with cdtest.Fake() as fake:
        fake.vercel_add_client(VC_CLIENT, [VC_REDIRECT])
        d = cdtest.Daemon(fake, overrides={
            "session_ttl": str(TTL), "gh_flows_max": "2",
            "vercel_client_id": VC_CLIENT},
            files={"rclone.conf": RCLONE_CONF, "mcp-tokens.json": TOKENS},
            start=False)
        try:
            xo = os.path.join(d.home, ".xo-cowork")
            os.mkdir(xo, 0o700)
            with open(os.path.join(xo, "github_token.json"), "w") as f:
                f.write(GH_TOKEN_FILE)
            os.chmod(os.path.join(xo, "github_token.json"), 0o600)
            d.start()
            watch = Watch(d)
            try:
                s = Scenario(fake, d, watch)
                s.original = s.files()
                yield s
            finally:
                watch.stop()
        finally:
            d.stop()


# ---------------------------------------------------------------------------
# The waits only a bound can end, started first


def launch_long_waits(s):
    """A device-code request that is never answered, a token poll that is
    never answered, a Vercel exchange that is never answered and a Drive
    token exchange that is never answered, all at once."""
    fake = s.fake

    # 1. GitHub never answers the device-code request.
    fake.fault("github", "/login/device/code", "hang", times=1)
    m = s.watch.mark()
    s.tasks["gh device hang"] = Task("gh device hang",
                                     lambda t: s.gh_start(timeout=90))
    ok(s.fault_taken("github", "/login/device/code"),
       "device code hangs: gh asked and is waiting")
    s.procs["gh device hang"] = s.own("device code hangs", m, "gh",
                                     "github")

    # 2. GitHub never answers a token poll, after the code was shown.
    m = s.watch.mark()
    t0 = time.monotonic()
    started = s.gh_started("poll hangs")
    if started:
        sid, code = started
        fake.fault("github", "/login/oauth/access_token", "hang",
                   user_code=code)

        def poll(t):
            got = s.gh_poll_until(sid, TTL + 3 * SLACK, 0.25)
            return got, time.monotonic() - t0
        s.tasks["gh poll hang"] = Task("gh poll hang", poll)
        s.procs["gh poll hang"] = s.own("poll hangs", m, "gh", "github")

    # 3. Vercel never answers the token request.
    m = s.watch.mark()
    cs = s.vc_started("Vercel exchange hangs")
    if cs:
        fake.fault("vercel", "/login/oauth/token", "hang", times=1)
        s.tasks["vc hang"] = Task("vc hang", lambda t: s.vc_exchange(*cs))
        ok(s.fault_taken("vercel", "/login/oauth/token"),
           "Vercel exchange hangs: the worker asked and is waiting")
        s.procs["vc hang"] = s.own("Vercel exchange hangs", m, "vercel")

    # 4. Google never answers rclone's token request after the paste.
    before = s.files("rclone.conf")
    m = s.watch.mark()
    what = "Drive exchange hangs"
    sid = s.rc_start("gdrive", "f-hang", what)
    body = s.rc_awaiting("gdrive", sid, what) if sid else None
    if body is None:
        if sid:
            s.rc_cancel("gdrive", sid)
        return
    pasted = s.rc_paste(body)
    fake.fault("google", "/token", "hang", times=1)
    if not s.rc_submit("gdrive", sid, pasted, what):
        s.rc_cancel("gdrive", sid)
        return
    t0 = time.monotonic()
    s.tasks["rc hang"] = Task("rc hang", lambda t: (s.rc_until_end(
        "gdrive", sid, RC_EXCHANGE_WAIT + TTL), t0))
    ok(s.fault_taken("google", "/token"), "%s: rclone asked and is waiting"
       % what)
    s.rc_hang = (sid, before, s.own(what, m, "rclone", "gdrive"))


# ---------------------------------------------------------------------------
# GitHub: quick failures, kills


def gh_device_code_faults(s):
    """The device-code endpoint answering 500, HTML, cut-off JSON, or its
    form body labelled text/html: cli/start answers a JSON 502 at once
    (gh falls back to a browser login for the last ones: no waiting for a
    code that never comes), nothing is stored, gh is gone."""
    for mode, words in (("500", ("HTTP 500",)),
                        ("garbage", ("not available",)),
                        ("truncated", ("could not read",)),
                        ("wrong_type", ("not available",))):
        what = "device code %s" % mode
        before = s.files("mcp-tokens.json", "github_token.json")
        m = s.watch.mark()
        s.fake.fault("github", "/login/device/code", mode, times=1)
        result, took = s.gh_start()
        is_error_json(result, 502, "%s: cli/start answers a JSON 502" % what)
        ok(took < QUICK, "%s: answered in %.2f s (< %d s)"
           % (what, took, QUICK))
        diag("%s: cli/start answered in %.2f s" % (what, took))
        is_sentence(sentence(result[2]), what, *words)
        s.unchanged(what, before)
        s.ended(what, s.watch.since(m, "gh", "github"))


def gh_poll_faults(s):
    """After the code was shown, the token poll answering 500, HTML,
    cut-off JSON or a form under text/html: the next polls say error with
    a sentence within seconds; nothing is stored, gh is gone."""
    for mode, words in (("500", ("HTTP 500",)),
                        ("garbage", ("could not read",)),
                        ("truncated", ("could not read",)),
                        ("wrong_type", ("could not read",))):
        what = "token poll %s" % mode
        before = s.files("mcp-tokens.json", "github_token.json")
        m = s.watch.mark()
        started = s.gh_started(what)
        if not started:
            continue
        sid, code = started
        s.fake.fault("github", "/login/oauth/access_token", mode,
                     user_code=code)
        status, body, took, seen = s.gh_poll_until(sid, 15)
        if not is_((status, (body or {}).get("status")), (200, "error"),
                   "%s: the poll says error" % what):
            diag("seen %r" % seen)
        ok(took < QUICK, "%s: within %.1f s of the fault (< %d s; gh "
           "polls every second)" % (what, took, QUICK))
        diag("%s: poll said error %.2f s after the fault" % (what, took))
        is_sentence(sentence(body), what, *words)
        s.unchanged(what, before)
        s.ended(what, s.watch.since(m, "gh", "github"))


def fill_device_flows(s, what):
    """Start device flows until the gh_flows_max (2) refusal: the new
    flows' (session id, user code) list, the refusal checked."""
    flows = []
    for _ in range(3):
        result, _ = s.gh_start()
        status, _, body, _ = result
        if status == 409:
            is_error_json(result, 409, "%s: with gh_flows_max flows "
                          "running, another start is refused (JSON 409)"
                          % what)
            return flows
        if not ok(status == 200, "%s: a flow starts (%r)" % (what, status)):
            return flows
        flows.append((body["session_id"], body["user_code"]))
    ok(False, "%s: gh_flows_max (2) refuses a third flow" % what)
    return flows


def gh_killed(s):
    """kill -9 of gh (found as the worker's child running "gh auth
    login") while the flow is pending: the next poll says error in a
    sentence, nothing is stored, the worker and its directory go, and the
    device-flow count drops: a start refused a moment ago now works."""
    what = "gh killed"
    before = s.files("mcp-tokens.json", "github_token.json")
    m = s.watch.mark()
    flows = fill_device_flows(s, what)
    if not flows:
        return
    # The newest flow's gh: the last one seen after the mark.
    gh = cdtest.wait_for(lambda: sorted(
        (pid for (pid, _), v in s.watch.since(m, "gh").items()
         if v["argv"][1:3] == ["auth", "login"] and cdtest.alive(pid))),
        5)
    if not ok(gh, "%s: a 'gh auth login' process runs under a github "
              "worker" % what):
        return
    gh = gh[-1]
    procs = s.watch.since(m, "gh", "github")
    parent = procs[(gh, starttime(gh))]["ppid"] if (gh, starttime(gh)) in \
        procs else None
    ok(parent in {pid for (pid, _), v in procs.items()
                  if v["kind"] == "worker"},
       "%s: gh %d is a child of a 'connectord: worker github'" % (what, gh))
    # Which session is that gh's? The one whose poll turns to error.
    os.kill(gh, signal.SIGKILL)
    t0 = time.monotonic()
    ended = None
    while time.monotonic() - t0 < QUICK + SLACK and ended is None:
        for fsid, _ in flows:
            status, _, body, _ = s.gh_poll(fsid)
            if status != 200 or (body or {}).get("status") != "pending":
                ended = (fsid, status, body)
                break
        time.sleep(0.1)
    took = time.monotonic() - t0
    if not ok(ended, "%s: a poll says the flow ended" % what):
        return
    fsid, status, body = ended
    is_((status, (body or {}).get("status")), (200, "error"),
        "%s: the poll says error" % what)
    ok(took < QUICK, "%s: %.2f s after the kill (< %d s)" % (what, took,
                                                             QUICK))
    diag("%s: the poll said error %.2f s after kill -9" % (what, took))
    is_sentence(sentence(body), what, "stopped")
    (status, _, body, raw), _ = s.gh_start()
    if not ok(status == 200, "%s: the flow count dropped: a new start "
              "works (%r)" % (what, status)):
        diag("got %r" % raw[:300])
    if status == 200:
        flows.append((body["session_id"], body["user_code"]))
    for fsid, _ in flows:
        if fsid != ended[0]:
            answered_ok(s.d.api("POST", GHB + "/cli/cancel",
                                {"session_id": fsid}),
                        "%s: the other flows are cancelled" % what)
    s.unchanged(what, before)
    s.ended(what, s.watch.since(m, "gh", "github"))


def gh_worker_killed(s):
    """kill -9 of the flow's 'connectord: worker github': its gh dies with
    it, the next poll says error in a sentence, nothing is stored."""
    what = "github worker killed"
    before = s.files("mcp-tokens.json", "github_token.json")
    m = s.watch.mark()
    started = s.gh_started(what)
    if not started:
        return
    sid, _ = started
    gh, worker = s.tool_of(m, "gh", "github")
    if not ok(worker, "%s: the flow's worker and gh found" % what):
        return
    os.kill(worker, signal.SIGKILL)
    status, body, took, seen = s.gh_poll_until(sid, QUICK + SLACK, 0.1)
    if not is_((status, (body or {}).get("status")), (200, "error"),
               "%s: the poll says error" % what):
        diag("seen %r" % seen)
    ok(took < QUICK, "%s: %.2f s after the kill (< %d s)"
       % (what, took, QUICK))
    diag("%s: the poll said error %.2f s after kill -9" % (what, took))
    is_sentence(sentence(body), what, "worker")
    ok(cdtest.wait_for(lambda: not cdtest.alive(gh), 5),
       "%s: its gh (%d) died with it" % (what, gh))
    s.unchanged(what, before)
    s.ended(what, s.watch.since(m, "gh", "github"))


# ---------------------------------------------------------------------------
# Vercel: quick failures, kills


def vercel_token_faults(s):
    """The token endpoint answering 500, HTML or cut-off JSON; userinfo
    and /v2/user both answering HTML: exchange answers a JSON 502 at
    once, mcp-tokens.json is unchanged."""
    for what, faults, words in (
            ("Vercel token 500", [("/login/oauth/token", "500")],
             ("HTTP 500",)),
            ("Vercel token garbage", [("/login/oauth/token", "garbage")],
             ("not JSON",)),
            ("Vercel token truncated", [("/login/oauth/token",
                                         "truncated")], ("not JSON",)),
            ("Vercel userinfo and /v2/user garbage",
             [("/login/oauth/userinfo", "garbage"), ("/v2/user",
                                                     "garbage")],
             ("account",))):
        before = s.files("mcp-tokens.json")
        m = s.watch.mark()
        cs = s.vc_started(what)
        if not cs:
            continue
        for path, mode in faults:
            s.fake.fault("vercel", path, mode, times=1)
        result, took = s.vc_exchange(*cs)
        is_error_json(result, 502, "%s: exchange answers a JSON 502" % what)
        ok(took < QUICK, "%s: in %.2f s" % (what, took))
        is_sentence(sentence(result[2]), what, *words)
        for path, _ in faults:
            s.fake.fault("vercel", path, "normal")
        s.unchanged(what, before)
        s.ended(what, s.watch.since(m, "vercel"))


def vercel_worker_killed(s):
    """kill -9 of the 'connectord: worker vercel' while it awaits the
    code, and while it waits on a token endpoint that never answers: the
    exchange gets a JSON error at once (not at a timeout), mcp-tokens.json
    is unchanged."""
    what = "Vercel worker killed awaiting the code"
    before = s.files("mcp-tokens.json")
    m = s.watch.mark()
    cs = s.vc_started(what)
    worker = s.worker_of(m, "vercel") if cs else None
    if ok(worker, "%s: the flow's worker found" % what):
        os.kill(worker, signal.SIGKILL)
        ok(cdtest.wait_for(lambda: not cdtest.alive(worker), 5),
           "%s: it is gone" % what)
        time.sleep(0.3)     # the broker reports its end to http
        result, took = s.vc_exchange(*cs)
        ok(result[0] in (400, 503), "%s: exchange answers 400 or 503 (%r)"
           % (what, result[0]))
        is_error_json(result, result[0], "%s: a JSON error" % what)
        ok(took < QUICK, "%s: in %.2f s" % (what, took))
        is_sentence(sentence(result[2]), what, "start again")
        s.unchanged(what, before)
        s.ended(what, s.watch.since(m, "vercel"))

    what = "Vercel worker killed mid-exchange"
    m = s.watch.mark()
    cs = s.vc_started(what)
    if not cs:
        return
    worker = s.worker_of(m, "vercel")
    s.fake.fault("vercel", "/login/oauth/token", "hang", times=1)
    task = Task(what, lambda t: s.vc_exchange(*cs))
    if not ok(s.fault_taken("vercel", "/login/oauth/token") and worker,
              "%s: the worker is at the token endpoint" % what):
        task.join(60)
        return
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    got = task.finish(what, 60)
    if got is None:
        return
    result, _ = got
    took = task.t0 + got[1] - killed
    is_error_json(result, 503, "%s: exchange answers a JSON 503" % what)
    ok(took < QUICK, "%s: %.2f s after the kill (< %d s, not at a "
       "timeout)" % (what, took, QUICK))
    diag("%s: exchange answered %.2f s after kill -9" % (what, took))
    is_sentence(sentence(result[2]), what, "worker")
    s.unchanged(what, before)
    s.ended(what, s.watch.since(m, "vercel"))


# ---------------------------------------------------------------------------
# Drive / OneDrive


def rclone_token_hang(s):
    """The Drive exchange that never got an answer: the session ends in
    error at rclone's 20 s bound (not at the 30 s session end), saying the
    provider did not answer; rclone.conf is unchanged, rclone is gone and
    the lock is free."""
    what = "Drive exchange hangs"
    task = s.tasks.get("rc hang")
    if not ok(task, "%s: started" % what):
        return
    got = task.finish(what, RC_EXCHANGE_WAIT + TTL)
    if got is None:
        return
    (status, body, took), _ = got
    is_((status, (body or {}).get("status")), (200, "error"),
        "%s: the session ends in error" % what)
    ok(RC_EXCHANGE_WAIT - 2 <= took <= RC_EXCHANGE_WAIT + SLACK,
       "%s: after %.1f s (the %d s bound)" % (what, took, RC_EXCHANGE_WAIT))
    diag("%s: session error %.1f s after the paste" % (what, took))
    is_sentence(sentence(body), what, "did not answer")
    s.rc_ended = time.monotonic()
    sid, before, procs = s.rc_hang
    s.unchanged(what, before)
    s.ended(what, procs)


def rc_error_flow(s, c, name, what, provider, path, mode, words,
                  who=None):
    """Start, paste, the fault, submit: the session ends in error within
    QUICK seconds with a sentence; rclone.conf unchanged, rclone gone."""
    before = s.files("rclone.conf")
    m = s.watch.mark()
    sid = s.rc_start(c, name, what)
    body = s.rc_awaiting(c, sid, what) if sid else None
    if body is None:
        if sid:
            s.rc_cancel(c, sid)
        return
    pasted = s.rc_paste(body)
    # Every request, not just the next: rclone's onedrive backend retries
    # a failed token request once.
    s.fake.fault(provider, path, mode)
    submitted = s.rc_submit(c, sid, pasted, what)
    status, body, took = s.rc_until_end(c, sid, 30) if submitted else \
        (None, None, 0)
    s.fake.fault(provider, path, "normal")
    if not submitted:
        s.rc_cancel(c, sid)
        return
    s.rc_ended = time.monotonic()
    is_((status, (body or {}).get("status")), (200, "error"),
        "%s: the session ends in error" % what)
    ok(took < QUICK, "%s: within %.2f s of the paste" % (what, took))
    is_sentence(sentence(body), what, *words)
    if who:
        ok(who in (sentence(body) or ""), "%s: it names %s" % (what, who))
    s.unchanged(what, before)
    s.ended(what, s.watch.since(m, "rclone", c))


def rclone_token_faults(s):
    """The token endpoint answering 500, HTML or cut-off JSON after the
    paste (Google and Microsoft)."""
    for c, mode, words in (("gdrive", "500", ("HTTP 500",)),
                           ("gdrive", "garbage", ("could not read",)),
                           ("gdrive", "truncated", ("could not read",)),
                           ("onedrive", "500", ("HTTP 500",)),
                           ("onedrive", "garbage", ("could not read",))):
        provider, path = TOKEN_PATH[c]
        rc_error_flow(s, c, "f-" + mode, "%s token %s" % (c, mode),
                      provider, path, mode, words, WHO[c])


def onedrive_graph_faults(s):
    """Microsoft Graph's me/drive answering 500 or HTML once the token
    is there: error, nothing stored."""
    for mode, words in (("500", ("HTTP 500",)),
                        ("garbage", ("not a drive",))):
        rc_error_flow(s, "onedrive", "g-" + mode, "Graph me/drive %s"
                      % mode, "microsoft", "/v1.0/me/drive", mode, words)


def rclone_killed(s):
    """kill -9 of rclone (the worker's child running "rclone authorize")
    while it awaits the paste, and right after the paste while it redeems
    the code: the session ends in error in a sentence, rclone.conf is
    unchanged, and the next flow starts at once."""
    for when in ("awaiting the paste", "after the paste"):
        what = "rclone killed %s" % when
        before = s.files("rclone.conf")
        m = s.watch.mark()
        sid = s.rc_start("gdrive", "k-rclone", what)
        body = s.rc_awaiting("gdrive", sid, what) if sid else None
        if body is None:
            if sid:
                s.rc_cancel("gdrive", sid)
            continue
        rc, worker = s.tool_of(m, "rclone", "gdrive")
        if not ok(rc and argv_of(rc)[1:3] == ["authorize", "drive"],
                  "%s: 'rclone authorize drive' runs under the worker"
                  % what):
            s.rc_cancel("gdrive", sid)
            continue
        if when == "after the paste":
            pasted = s.rc_paste(body)
            s.fake.fault("google", "/token", "hang", times=1)
            s.rc_submit("gdrive", sid, pasted, what)
            ok(s.fault_taken("google", "/token"), "%s: rclone is at the "
               "token endpoint" % what)
        os.kill(rc, signal.SIGKILL)
        status, body, took = s.rc_until_end("gdrive", sid, 30)
        s.rc_ended = time.monotonic()
        is_((status, (body or {}).get("status")), (200, "error"),
            "%s: the session ends in error" % what)
        ok(took < QUICK, "%s: %.2f s after the kill (< %d s)"
           % (what, took, QUICK))
        diag("%s: session error %.2f s after kill -9" % (what, took))
        is_sentence(sentence(body), what, "stopped")
        s.unchanged(what, before)
        s.ended(what, s.watch.since(m, "rclone", "gdrive"))


def rclone_worker_killed(s):
    """kill -9 of the 'connectord: worker onedrive' awaiting the paste:
    its rclone goes too, the session ends (error, or 404 once gone), the
    lock is free for the next flow."""
    what = "onedrive worker killed"
    before = s.files("rclone.conf")
    m = s.watch.mark()
    sid = s.rc_start("onedrive", "k-worker", what)
    body = s.rc_awaiting("onedrive", sid, what) if sid else None
    if body is None:
        if sid:
            s.rc_cancel("onedrive", sid)
        return
    rc, worker = s.tool_of(m, "rclone", "onedrive")
    if not ok(worker, "%s: the flow's worker and rclone found" % what):
        s.rc_cancel("onedrive", sid)
        return
    os.kill(worker, signal.SIGKILL)
    status, body, took = s.rc_until_end("onedrive", sid, 30)
    s.rc_ended = time.monotonic()
    ok(status == 404 or (body or {}).get("status") == "error",
       "%s: the session ends in error (%r %r)" % (what, status,
                                                  (body or {}).get("status")))
    if status == 200:
        is_sentence(sentence(body), what, "worker")
    ok(took < QUICK, "%s: %.2f s after the kill (< %d s)"
       % (what, took, QUICK))
    diag("%s: session ended %.2f s after kill -9" % (what, took))
    ok(cdtest.wait_for(lambda: not cdtest.alive(rc), 5),
       "%s: its rclone (%d) died with it" % (what, rc))
    s.unchanged(what, before)
    s.ended(what, s.watch.since(m, "rclone", "onedrive"))


# ---------------------------------------------------------------------------
# The long waits end


def long_waits_end(s):
    """The device code never answered: JSON 502 at the 20 s code wait,
    saying GitHub did not answer. The poll never answered: the flow
    ends at the 30 s session end (expired, then 404). The Vercel exchange
    never answered: JSON 502 at libcurl's 15 s timeout. In each case
    nothing is stored and nothing is left."""
    what = "device code hangs"
    got = s.tasks["gh device hang"].finish(what, GH_CODE_WAIT + 2 * SLACK)
    if got:
        result, took = got
        is_error_json(result, 502, "%s: cli/start answers a JSON 502" % what)
        ok(GH_CODE_WAIT - 2 <= took <= GH_CODE_WAIT + SLACK,
           "%s: after %.1f s (the %d s code wait, before the %d s session "
           "deadline)" % (what, took, GH_CODE_WAIT, TTL))
        diag("%s: cli/start answered after %.1f s" % (what, took))
        is_sentence(sentence(result[2]), what, "did not answer")
    s.ended(what, s.procs.get("gh device hang"))

    what = "token poll hangs"
    task = s.tasks.get("gh poll hang")
    got = task.finish(what, TTL + 3 * SLACK) if task else None
    if got:
        (status, body, _, seen), took = got
        last = (status, (body or {}).get("status"))
        ok(last in ((200, "expired"), (200, "error"), (404, None)),
           "%s: the flow ends: expired, error or gone (%r)" % (what, last))
        is_sentence(sentence(body), what, "expired", "start again",
                    "start a new one")
        ok(TTL - 3 <= took <= TTL + SLACK,
           "%s: pending until the %d s session end, over after %.1f s"
           % (what, TTL, took))
        diag("%s: statuses %r (seconds from the start)" % (what, seen))
    s.ended(what, s.procs.get("gh poll hang"))

    what = "Vercel exchange hangs"
    got = s.tasks["vc hang"].finish(what, CURL_TIMEOUT + SLACK) \
        if "vc hang" in s.tasks else None
    if got:
        result, took = got
        is_error_json(result, 502, "%s: exchange answers a JSON 502" % what)
        ok(CURL_TIMEOUT - 2 <= took <= CURL_TIMEOUT + SLACK,
           "%s: after %.1f s (libcurl's %d s bound)"
           % (what, took, CURL_TIMEOUT))
        diag("%s: exchange answered after %.1f s" % (what, took))
        is_sentence(sentence(result[2]), what, "could not be reached")
    s.ended(what, s.procs.get("vc hang"))
    # Every failure so far, the long ones included, changed nothing.
    s.unchanged("after every failure", s.original)
    launch_slow_answers(s)


# ---------------------------------------------------------------------------
# Slow answers complete


def gh_slow(s, where):
    """A device flow whose device-code or token endpoint answers SLOW
    seconds late: approved all the same."""
    (status, _, body, raw), took = s.gh_start()
    if status != 200:
        return ("start", status, raw[:300], took)
    sid, code = body["session_id"], body["user_code"]
    if where == "poll":
        s.fake.fault("github", "/login/oauth/access_token", "slow",
                     delay=SLOW, user_code=code)
    s.fake.github_approve(login="octo-" + where, user_code=code)
    status, body, ptook, seen = s.gh_poll_until(sid, 30)
    return ("poll", status, body, took, ptook, seen)


def vc_slow(s):
    """The Vercel token endpoint answering SLOW s late, then userinfo
    answering HTML (the account comes from /v2/user): both connect."""
    out = []
    for path, mode in (("/login/oauth/token", "slow"),
                       ("/login/oauth/userinfo", "garbage")):
        cs = s.vc_started("Vercel %s %s" % (path, mode))
        s.fake.fault("vercel", path, mode, times=1, delay=SLOW)
        out.append(s.vc_exchange(*cs))
    return out


def launch_slow_answers(s):
    s.fake.fault("github", "/login/device/code", "slow", times=1,
                 delay=SLOW)
    s.tasks["gh slow device"] = Task("gh slow device",
                                     lambda t: gh_slow(s, "device"))
    # One device-code fault at a time: the first start took it.
    s.fault_taken("github", "/login/device/code", 15)
    s.tasks["gh slow poll"] = Task("gh slow poll",
                                   lambda t: gh_slow(s, "poll"))
    s.tasks["vc slow"] = Task("vc slow", lambda t: vc_slow(s))


def rclone_slow(s):
    """Google's token endpoint answering SLOW s late: the flow completes
    and the new remote is the only change to rclone.conf."""
    what = "Drive token slow"
    before = s.files("rclone.conf")["rclone.conf"]
    m = s.watch.mark()
    sid = s.rc_start("gdrive", "slow", what)
    body = s.rc_awaiting("gdrive", sid, what) if sid else None
    if body is None:
        if sid:
            s.rc_cancel("gdrive", sid)
        return
    pasted = s.rc_paste(body)
    s.fake.fault("google", "/token", "slow", times=1, delay=SLOW)
    s.rc_submit("gdrive", sid, pasted, what)
    status, body, took = s.rc_until_end("gdrive", sid, 30)
    is_((status, (body or {}).get("status")), (200, "completed"),
        "%s: the session completes (%.1f s after the paste)" % (what, took))
    ok(took >= SLOW - 0.5, "%s: it did wait for the late answer" % what)
    after = s.files("rclone.conf")["rclone.conf"] or b""
    ok(after.startswith(before) and b"\n[slow]\ntype = drive\n" in
       after[len(before) - 1:], "%s: [slow] added after the untouched "
       "original bytes" % what)
    s.ended(what, s.watch.since(m, "rclone", "gdrive"))


def slow_answers_complete(s):
    for where in ("device", "poll"):
        what = "GitHub %s endpoint slow" % where
        got = s.tasks["gh slow " + where].finish(what, 45)
        if not got:
            continue
        if not ok(got[0] == "poll", "%s: cli/start answers 200" % what):
            diag("got %r" % (got,))
            continue
        _, status, body, took, ptook, seen = got
        is_((status, (body or {}).get("status"),
             ((body or {}).get("user") or {}).get("login")),
            (200, "approved", "octo-" + where),
            "%s: approved all the same" % what)
        if where == "device":
            ok(SLOW - 0.5 <= took < GH_CODE_WAIT, "%s: cli/start waited "
               "for the late code (%.1f s)" % (what, took))
        else:
            ok(ptook >= SLOW - 0.5, "%s: approval seen after the late "
               "poll (%.1f s)" % (what, ptook))
    got = s.tasks["vc slow"].finish("Vercel slow answers", 45)
    if got:
        (tok, took), (ui, _) = got
        answered_ok(tok, "Vercel token endpoint slow: exchange succeeds")
        ok(took >= SLOW - 0.5, "Vercel token endpoint slow: it waited "
           "(%.1f s)" % took)
        answered_ok(ui, "Vercel userinfo garbage: exchange succeeds with "
                    "the /v2/user account")
        is_(((ui[2] or {}).get("user") or {}).get("username"),
            "vercel-fake", "Vercel userinfo garbage: the account is named")
    tokens = s.d.read_tokens() or {}
    is_((tokens.get("github") or {}).get("auth_method"), "cli",
        "mcp-tokens.json: github now from the device flow")
    is_((tokens.get("vercel") or {}).get("auth_method"), "oauth",
        "mcp-tokens.json: vercel now from OAuth")
    is_(tokens.get("other"), {"x": 1}, "mcp-tokens.json: 'other' kept")
    for e in (tokens.get("github"), tokens.get("vercel")):
        for k in ("access_token", "refresh_token"):
            if isinstance((e or {}).get(k), str):
                s.secrets.add(e[k])


# ---------------------------------------------------------------------------
# Nothing left


def nothing_left(s):
    """No worker, gh or rclone of the daemon's left, every job directory
    gone, port 53682 free and a new flow starts; no code or token in the
    daemon's log."""
    procs = s.watch.all()
    ok(procs, "the watch saw the flows' processes (%d)" % len(procs))
    s.ended("in the end", procs)
    roles = s.d.pids()
    left = sorted(r for r in roles if r.startswith("worker"))
    ok(not left, "no worker process left (%r)" % left)
    ok(cdtest.wait_port_free(PORT, 5), "port %d is free" % PORT)
    sid = s.rc_start("gdrive", "last", "in the end")
    if sid:
        answered_ok(s.rc_cancel("gdrive", sid), "in the end: a new Drive "
                    "flow starts and is cancelled")
    ok(s.d.healthy(), "healthz is 200")
    secrets_ = sorted(x for x in s.secrets if x)
    ok(len(secrets_) > 10, "the codes and tokens seen (%d)" % len(secrets_))
    cdtest.scrub_check(s.d.log_text(), secrets_,
                       "no code or token in the daemon log")
    cdtest.scrub_check(b"\n".join(raw for _, _, _, raw in s.d.transcript),
                       secrets_, "no code or token in any API answer")


if __name__ == "__main__":
    cdtest.run([launch_long_waits, gh_device_code_faults, gh_poll_faults,
                gh_killed, gh_worker_killed, vercel_token_faults,
                vercel_worker_killed, rclone_token_hang, rclone_token_faults,
                onedrive_graph_faults, rclone_killed, rclone_worker_killed,
                long_waits_end, rclone_slow, slow_answers_complete,
                nothing_left], fixture=scenario)
