#!/usr/bin/python3
"""The GitHub connector's device flow (api.md: cli/start, cli/poll,
cli/cancel) runs the real gh against a fake github.com (reference/gh.md
sections 5-7) and keeps its contract.

One daemon and one fake for the whole file. The broker runs with a hostile
environment (HOME holding the user's own gh login, GH_TOKEN, GH_DEBUG, ...)
that gh must never see: gh gets a scrubbed environment and a private config
directory in the job's /tmp/connectord-job* directory, and the user's
~/.config/gh stays byte-identical. A thread samples the daemon's process
tree all along, so that every gh process and private directory a flow used
can be checked to be gone after the flow ends, however it ends.
"""

import contextlib
import json
import os
import re
import secrets
import stat
import string
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import (argv_of, environ_of, privdir_of,  # noqa: E402
                    starttime)
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

BASE = "/api/connectors/github"
VERIFICATION_URI = "https://github.com/login/device"
USER_CODE = re.compile(r"[A-Z0-9]{4}-[A-Z0-9]{4}")
SESSION_ID = re.compile(r"gh-cli-[A-Za-z0-9_-]{8,}")
GH = "/usr/bin/gh"
ALNUM = string.ascii_letters + string.digits

# The broker's environment: everything here is something gh must not get
# (reference/gh.md section 3). HOME and GH_CONFIG_DIR are set per daemon.
DECOY_TOKEN = "gho_" + "".join(secrets.choice(ALNUM) for _ in range(36))
USERS_OWN_TOKEN = "gho_" + "".join(secrets.choice(ALNUM) for _ in range(36))
HOSTILE_ENV = {
    "GH_TOKEN": DECOY_TOKEN, "GITHUB_TOKEN": DECOY_TOKEN,
    "GH_ENTERPRISE_TOKEN": DECOY_TOKEN, "GITHUB_ENTERPRISE_TOKEN": DECOY_TOKEN,
    "GH_HOST": "evil.example", "GH_DEBUG": "api", "DEBUG": "1",
    "CLICOLOR_FORCE": "1", "GH_FORCE_TTY": "1", "CODESPACES": "true",
}
NEVER_PASS = sorted(HOSTILE_ENV) + ["XDG_CONFIG_HOME"]
USERS_HOSTS_YML = ("github.com:\n    user: the-real-user\n"
                   "    oauth_token: %s\n    git_protocol: ssh\n"
                   % USERS_OWN_TOKEN)
ROOT_HOSTS_YML = "/root/.config/gh/hosts.yml"


# ---------------------------------------------------------------------------
# /proc helpers


def is_gh(argv):
    return bool(argv) and os.path.basename(argv[0]) == "gh"


def all_pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


class Watch:
    """Samples the broker's descendants every 50 ms: gh processes (argv,
    environment, stdin) and the workers' private directories."""

    def __init__(self, daemon):
        self.d = daemon
        self.lock = threading.Lock()
        self.gh = {}            # (pid, starttime) -> {"argv", "env", "stdin"}
        self.workers = set()    # (pid, starttime) of "worker github"
        self.privdirs = set()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_ev.wait(0.05):
            try:
                self.sample()
            except Exception:   # a process vanishing mid-read, a stopped daemon
                pass

    def sample(self):
        proc = self.d.proc
        if proc is None or proc.poll() is not None:
            return
        for pid in cdtest._descendants(proc.pid):
            argv = argv_of(pid)
            key = (pid, starttime(pid))
            if (cdtest._title(pid) or "").startswith(
                    "connectord: worker github"):
                dirs = {privdir_of(environ_of(pid).get(k))
                        for k in ("HOME", "TMPDIR")}
                with contextlib.suppress(OSError):
                    dirs.add(privdir_of(os.readlink("/proc/%d/cwd" % pid)))
                with self.lock:
                    self.workers.add(key)
                    self.privdirs |= dirs - {None}
            elif is_gh(argv):
                with self.lock:
                    if key in self.gh:
                        continue
                env = environ_of(pid)
                try:
                    stdin = os.readlink("/proc/%d/fd/0" % pid)
                except OSError:
                    stdin = None
                f = cdtest._stat_fields(pid)
                ppid = int(f[1]) if f else None
                with self.lock:
                    self.gh[key] = {"argv": argv, "env": env, "stdin": stdin,
                                    "ppid": ppid}
                    self.privdirs |= {privdir_of(env.get(k)) for k in
                                      ("GH_CONFIG_DIR", "HOME")} - {None}

    def snapshot(self):
        with self.lock:
            return dict(self.gh), set(self.workers), set(self.privdirs)

    def live_gh(self):
        """Every gh process that is ours: seen under the broker, under it
        now, or running with one of our private directories (an orphan)."""
        seen, _, dirs = self.snapshot()
        live = {pid for (pid, st) in seen if cdtest.alive(pid)
                and starttime(pid) == st}
        if self.d.proc is not None and self.d.proc.poll() is None:
            live |= {p for p in cdtest._descendants(self.d.proc.pid)
                     if is_gh(argv_of(p)) and cdtest.alive(p)}
        for pid in all_pids():
            if pid in live or not is_gh(argv_of(pid)):
                continue
            env = environ_of(pid)
            if any(privdir_of(env.get(k)) in dirs
                   for k in ("GH_CONFIG_DIR", "HOME")):
                live.add(pid)
        return sorted(p for p in live if cdtest.alive(p))

    def live_privdirs(self):
        _, _, dirs = self.snapshot()
        return sorted(d for d in dirs if os.path.lexists(d))

    def stop(self):
        self.stop_ev.set()
        self.thread.join(2)


# ---------------------------------------------------------------------------
# The scenario


class Scenario:
    def __init__(self, fake, daemon, watch, root_hosts):
        self.fake = fake
        self.d = daemon
        self.watch = watch
        self.root_hosts = root_hosts    # bytes of /root's hosts.yml or None
        self.tokens = set()             # every token the vault stored
        self.user_codes = set()

    @property
    def gh_token_file(self):
        return os.path.join(self.d.home, ".xo-cowork", "github_token.json")

    def users_gh_files(self):
        """The user's own gh config (in the broker's HOME) as bytes."""
        out = {}
        base = os.path.join(self.d.home, ".config", "gh")
        for root, _, files in os.walk(base):
            for n in files:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, base)] = f.read()
        return out

    def read_gh_token_file(self):
        try:
            with open(self.gh_token_file, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def start(self, timeout=60):
        """POST cli/start; returns (result, seconds). Records the code."""
        t0 = time.monotonic()
        result = self.d.api("POST", BASE + "/cli/start", timeout=timeout)
        took = time.monotonic() - t0
        body = result[2]
        if isinstance(body, dict) and isinstance(body.get("user_code"), str):
            self.user_codes.add(body["user_code"])
        return result, took

    def start_ok(self, what):
        """A start that must succeed: checks the answer's shape and that
        the flow's gh runs in a private directory of its own (so that
        check_ended has something to check). Returns the body or None."""
        dirs_before = self.watch.snapshot()[2]
        (status, _, body, raw), took = self.start()
        if not ok(status == 200 and isinstance(body, dict),
                  "%s: cli/start answers 200 (%.1f s)" % (what, took)):
            diag("cli/start: %r %r" % (status, raw[:300]))
            return None
        good = (isinstance(body.get("session_id"), str)
                and SESSION_ID.fullmatch(body["session_id"])
                and isinstance(body.get("user_code"), str)
                and USER_CODE.fullmatch(body["user_code"])
                and body.get("verification_uri") == VERIFICATION_URI
                and isinstance(body.get("expires_in"), int)
                and not isinstance(body.get("expires_in"), bool)
                and body["expires_in"] > 0)
        if not ok(good, "%s: start answer has session_id gh-cli-..., "
                  "user_code, verification_uri, expires_in" % what):
            diag("cli/start body: %r" % (body,))
            return None
        new = cdtest.wait_for(
            lambda: self.watch.snapshot()[2] - dirs_before, 3, 0.05)
        ok(new, "%s: gh seen running in a new /tmp/connectord-job* "
           "directory %s" % (what, sorted(new)))
        return body

    def poll(self, sid):
        return self.d.api("POST", BASE + "/cli/poll", {"session_id": sid})

    def poll_until(self, sid, done, timeout):
        """Poll every 0.3 s until the status is in done; returns the last
        (status code, body) and the statuses seen on the way."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            status, _, body, raw = self.poll(sid)
            st = body.get("status") if isinstance(body, dict) else None
            if not seen or seen[-1] != (status, st):
                seen.append((status, st))
            if status != 200 or st in done or time.monotonic() > deadline:
                return status, body, seen
            time.sleep(0.3)

    def fake_code(self, user_code):
        for c in self.fake.github_state()["codes"]:
            if c["user_code"] == user_code:
                return c
        return None

    def cancel(self, sid):
        return self.d.api("POST", BASE + "/cli/cancel", {"session_id": sid})

    def status(self):
        status, _, body, raw = self.d.api("GET", BASE + "/status")
        if status != 200 or not isinstance(body, dict):
            diag("status answered %r %r" % (status, raw[:200]))
            return {}
        return body

    def check_ended(self, what, timeout=10):
        """After a flow ended: no gh of ours is left, and every private
        directory a worker used is gone."""
        left = cdtest.wait_for(lambda: not self.watch.live_gh(), timeout)
        if not ok(left, "%s: no gh process left" % what):
            diag("gh left: %r" % [(p, argv_of(p))
                                  for p in self.watch.live_gh()])
        gone = cdtest.wait_for(lambda: not self.watch.live_privdirs(),
                               timeout)
        if not ok(gone, "%s: the worker's /tmp/connectord-job* directory "
                  "is gone" % what):
            diag("still there: %r" % self.watch.live_privdirs())


@contextlib.contextmanager
def scenario():
    if not os.access(GH, os.X_OK):
        cdtest.skip_all("no gh at %s" % GH)
    root_hosts = read_bytes(ROOT_HOSTS_YML)
    with cdtest.Fake() as fake:
        d = cdtest.Daemon(fake, files={"mcp-tokens.json":
                                       '{"other": {"x": 1}}\n'},
                          start=False)
        try:
            # The user's own gh login, where gh would write by default.
            gh_dir = os.path.join(d.home, ".config", "gh")
            os.makedirs(gh_dir, mode=0o700)
            for name, text in (("hosts.yml", USERS_HOSTS_YML),
                               ("config.yml", "git_protocol: ssh\n")):
                with open(os.path.join(gh_dir, name), "w") as f:
                    f.write(text)
                os.chmod(os.path.join(gh_dir, name), 0o600)
            d.env.update(HOSTILE_ENV, HOME=d.home, GH_CONFIG_DIR=gh_dir,
                         XDG_CONFIG_HOME=os.path.join(d.home, ".config"))
            users_gh_before = Scenario(fake, d, None, None).users_gh_files()
            d.start()
            watch = Watch(d)
            try:
                s = Scenario(fake, d, watch, root_hosts)
                s.users_gh_before = users_gh_before
                yield s
            finally:
                watch.stop()
        finally:
            d.stop()


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------
# The checks


def approved_flow(s):
    """Start, pending polls, approval at the fake: the token lands in
    mcp-tokens.json (auth_method cli) and in ~/.xo-cowork/github_token.json,
    gh ran with a scrubbed environment, and everything is cleaned up."""
    s.fake.reset()
    body = s.start_ok("approve")
    if body is None:
        return
    sid, code = body["session_id"], body["user_code"]
    fc = s.fake_code(code)
    ok(fc is not None and fc["status"] == "pending",
       "the user code is the one the fake issued, still pending")
    if fc:
        is_(fc["scope"], "repo read:org gist", "gh asked for gh's scopes")

    # Pending while nobody approved (the fake is polled every second).
    status, _, pbody, raw = s.poll(sid)
    is_((status, (pbody or {}).get("status")), (200, "pending"),
        'poll before approval: {"status": "pending"}')
    time.sleep(1.5)
    status, _, pbody, raw = s.poll(sid)
    is_((status, (pbody or {}).get("status")), (200, "pending"),
        "still pending 1.5 s later")
    fc = s.fake_code(code)
    ok(fc and fc["polls"] >= 1, "gh is polling the fake (%s polls)"
       % (fc and fc["polls"]))

    check_gh_processes(s)

    approval = s.fake.github_approve(login="octo-fake", user_code=code)
    t0 = time.monotonic()
    status, pbody, seen = s.poll_until(sid, ("approved", "denied", "expired",
                                             "error"), 10)
    took = time.monotonic() - t0
    if not is_((status, (pbody or {}).get("status")), (200, "approved"),
               "after approval: approved within 10 s (%.1f s)" % took):
        diag("statuses seen: %r; last body %r" % (seen, pbody))
        return
    user = pbody.get("user") or {}
    is_(user.get("login"), "octo-fake", "approved poll carries the user")
    if "id" in user:
        is_(user.get("id"), approval["user"]["id"], "and GitHub's user id")

    tokens = s.d.read_tokens() or {}
    e = tokens.get("github") or {}
    token = e.get("access_token")
    if isinstance(token, str):
        s.tokens.add(token)
    is_(sorted(e), sorted(["access_token", "refresh_token", "expires_at",
                           "token_type", "scope", "auth_method"]),
        "github entry has exactly the six keys")
    is_(e.get("auth_method"), "cli", "github entry: auth_method cli")
    is_((e.get("refresh_token"), e.get("expires_at"), e.get("token_type")),
        (None, 0, "Bearer"), "github entry: no refresh, no expiry, Bearer")
    ok(isinstance(e.get("scope"), str) and "repo" in e["scope"],
       "github entry: scope %r" % (e.get("scope"),))
    fc = s.fake_code(code)
    ok(isinstance(token, str) and fc and
       fc["token"] == cdtest.fingerprint(token),
       "the stored token is the one the fake issued for this code")
    is_(tokens.get("other"), {"x": 1}, "unknown key 'other' preserved")
    is_(oct(stat.S_IMODE(os.stat(s.d.tokens_path).st_mode)), oct(0o600),
        "mcp-tokens.json has mode 0600")
    check_gh_token_file(s, token)

    body = s.status()
    is_((body.get("connected"), body.get("auth_method")), (True, "cli"),
        "status: connected, auth_method cli")
    is_((body.get("user") or {}).get("login"), "octo-fake",
        "status: the account")
    s.check_ended("approved")


def check_gh_processes(s):
    """While gh polls: it is a child of the github worker, runs the §1
    command line with stdin not a TTY, and its environment is scrubbed and
    points into the job's private directory."""
    found = cdtest.wait_for(lambda: [v for v in s.watch.snapshot()[0]
                                     .values()
                                     if v["argv"][1:3] == ["auth", "login"]],
                            3)
    if not ok(found, "a gh auth login process ran under the daemon"):
        return
    g = found[0]
    argv, env = g["argv"], g["env"]
    ok("--hostname" in argv and "github.com" in argv or
       "-h" in argv and "github.com" in argv,
       "gh auth login got --hostname github.com (%s)" % " ".join(argv))
    bad = [k for k in NEVER_PASS if k in env]
    ok(not bad, "gh's environment has none of %s" % ", ".join(NEVER_PASS))
    if bad:
        diag("passed to gh: %s" % ", ".join(bad))
    ok(privdir_of(env.get("GH_CONFIG_DIR")),
       "GH_CONFIG_DIR is inside /tmp/connectord-job* (%r)"
       % (env.get("GH_CONFIG_DIR"),))
    ok(privdir_of(env.get("HOME")),
       "HOME is inside /tmp/connectord-job* (%r)" % (env.get("HOME"),))
    ok(g["stdin"] is not None and not g["stdin"].startswith(("/dev/pts",
                                                             "/dev/tty")),
       "gh's stdin is not a terminal (%r)" % (g["stdin"],))
    _, workers, _ = s.watch.snapshot()
    ok(g["ppid"] in {pid for pid, _ in workers},
       "gh is a child of a 'connectord: worker github' process")


def check_gh_token_file(s, token):
    data = s.read_gh_token_file()
    if not ok(data is not None, "~/.xo-cowork/github_token.json written"):
        return
    st = os.stat(s.gh_token_file)
    is_(oct(stat.S_IMODE(st.st_mode)), oct(0o600),
        "github_token.json has mode 0600")
    is_(oct(stat.S_IMODE(os.stat(os.path.dirname(s.gh_token_file)).st_mode)),
        oct(0o700), "~/.xo-cowork has mode 0700")
    try:
        doc = json.loads(data)
    except ValueError:
        ok(False, "github_token.json is JSON")
        return
    if not ok(isinstance(doc, dict), "github_token.json is an object"):
        return
    missing = [k for k in ("access_token", "token_type", "scope", "user",
                           "created_at") if k not in doc]
    ok(not missing, "github_token.json has access_token, token_type, scope, "
       "user, created_at (missing: %r)" % missing)
    ok(doc.get("access_token") == token,
       "github_token.json holds the same token as mcp-tokens.json")
    is_(doc.get("token_type"), "bearer", "github_token.json: token_type "
        "bearer")
    is_((doc.get("user") or {}).get("login"), "octo-fake",
        "github_token.json: the user")
    ca = doc.get("created_at")
    ok((isinstance(ca, (int, float)) and not isinstance(ca, bool) and ca > 0)
       or (isinstance(ca, str) and ca.strip()),
       "github_token.json: created_at (%r)" % (ca,))


def disconnect_after_cli(s):
    """Disconnect removes both copies of a device-flow token."""
    answered_ok(s.d.api("POST", BASE + "/disconnect"), "disconnect: 200 ok")
    ok("github" not in (s.d.read_tokens() or {}),
       "disconnect: github entry removed")
    ok(not os.path.exists(s.gh_token_file),
       "disconnect: github_token.json removed")
    is_(s.status().get("connected"), False, "status after disconnect: false")


def ended_flow(s, what, end, want):
    """Start, end the code at the fake (deny or expire), poll until want;
    nothing is stored."""
    s.fake.reset()
    before = (s.d.tokens_bytes(), s.read_gh_token_file())
    body = s.start_ok(what)
    if body is None:
        return
    sid, code = body["session_id"], body["user_code"]
    end(user_code=code)
    status, pbody, seen = s.poll_until(sid, ("approved", "denied", "expired",
                                             "error"), 10)
    if not is_((status, (pbody or {}).get("status")), (200, want),
               '%s: poll says {"status": "%s"}' % (what, want)):
        diag("statuses seen: %r; last body %r" % (seen, pbody))
    ok("user" not in (pbody or {}), "%s: no user in the answer" % what)
    ok((s.d.tokens_bytes(), s.read_gh_token_file()) == before,
       "%s: nothing stored" % what)
    s.check_ended(what)


def denied_flow(s):
    ended_flow(s, "deny", s.fake.github_deny, "denied")


def expired_flow(s):
    ended_flow(s, "expire", s.fake.github_expire, "expired")


def unknown_and_malformed(s):
    """Unknown session ids are 404, malformed bodies 400."""
    unknown = "gh-cli-" + secrets.token_hex(8)
    is_error_json(s.poll(unknown), 404, "poll of an unknown session: JSON 404")
    is_error_json(s.cancel(unknown), 404,
                  "cancel of an unknown session: JSON 404 (api.md 404 row)")
    for what, raw in (("no body", None), ("not JSON", b"{nope"),
                      ("empty session_id", b'{"session_id": ""}'),
                      ("session_id not a string", b'{"session_id": 7}'),
                      ("no session_id", b"{}")):
        for op in ("poll", "cancel"):
            is_error_json(s.d.api("POST", BASE + "/cli/" + op, raw=raw), 400,
                          "%s with %s: JSON 400" % (op, what))


def cancelled_flow(s):
    """Cancel kills gh at once: it polls no more, the session is gone."""
    s.fake.reset()
    before = (s.d.tokens_bytes(), s.read_gh_token_file())
    body = s.start_ok("cancel")
    if body is None:
        return
    sid, code = body["session_id"], body["user_code"]
    cdtest.wait_for(lambda: (s.fake_code(code) or {}).get("polls"), 5)
    answered_ok(s.cancel(sid), 'cancel: 200 {"ok": true}')
    s.check_ended("cancel", timeout=5)
    polls = (s.fake_code(code) or {}).get("polls")
    time.sleep(2.5)     # the fake's interval is 1 s
    is_((s.fake_code(code) or {}).get("polls"), polls,
        "cancel: the fake is polled no more")
    is_error_json(s.poll(sid), 404, "poll after cancel: JSON 404")
    # Approving now must not store anything: nobody is waiting for it.
    s.fake.github_approve(user_code=code)
    time.sleep(1.5)
    ok((s.d.tokens_bytes(), s.read_gh_token_file()) == before,
       "cancel: nothing stored, even after a late approval")


def start_provider_500(s):
    """GitHub answering 500 to the device-code request: gh fails at once,
    start answers 502."""
    s.fake.reset()
    s.fake.set_mode("github", "500")
    try:
        (result, took) = s.start()
    finally:
        s.fake.set_mode("github", "normal")
    is_error_json(result, 502, "GitHub 500 at start: JSON 502")
    ok(took < 15, "GitHub 500 at start: answered in %.1f s" % took)
    s.check_ended("GitHub 500 at start")


def browser_fallback(s):
    """Device flow unavailable (404): gh falls back to a browser flow that
    never ends, recognisable at once (a URL line without a code line):
    start fails with 502 within seconds, saying so, and gh is killed."""
    s.fake.reset()
    s.fake.github_config(device_mode="404")
    try:
        (result, took) = s.start(timeout=60)
    finally:
        s.fake.github_config(device_mode="normal")
    is_error_json(result, 502, "device flow unavailable: start JSON 502")
    ok(took < 5, "device flow unavailable: answered in %.1f s (< 5 s, not "
       "at the code wait)" % took)
    ok("not available" in ((result[2] or {}).get("error") or ""),
       "device flow unavailable: the error says so (%r)"
       % ((result[2] or {}).get("error"),))
    ok([r for r in s.fake.requests("github.com", "/login/device/code")
        if r["status"] == 404], "gh did ask for a device code (got 404)")
    s.check_ended("browser fallback", timeout=5)


def two_flows_at_once(s):
    """Two device flows run side by side; each gets its own code, its own
    gh and its own answer."""
    s.fake.reset()
    a = s.start_ok("first of two")
    b = s.start_ok("second of two")
    if a is None or b is None:
        return
    ok(a["session_id"] != b["session_id"] and a["user_code"] != b["user_code"],
       "two flows: distinct session ids and user codes")
    s.fake.github_approve(login="octo-second", user_code=b["user_code"])
    status, pb, seen = s.poll_until(b["session_id"], ("approved", "denied",
                                                      "expired", "error"), 10)
    is_(((pb or {}).get("status"), ((pb or {}).get("user") or {})
         .get("login")), ("approved", "octo-second"),
        "two flows: the second is approved for its own user")
    status, _, pa, _ = s.poll(a["session_id"])
    is_((status, (pa or {}).get("status")), (200, "pending"),
        "two flows: the first is still pending")
    s.fake.github_approve(login="octo-first", user_code=a["user_code"])
    status, pa, seen = s.poll_until(a["session_id"], ("approved", "denied",
                                                      "expired", "error"), 10)
    is_(((pa or {}).get("status"), ((pa or {}).get("user") or {})
         .get("login")), ("approved", "octo-first"),
        "two flows: the first is approved for its own user")
    e = (s.d.read_tokens() or {}).get("github") or {}
    token = e.get("access_token")
    if isinstance(token, str):
        s.tokens.add(token)
    fc = s.fake_code(a["user_code"])
    ok(fc and isinstance(token, str) and
       fc["token"] == cdtest.fingerprint(token),
       "two flows: the last approval's token is the one stored")
    s.check_ended("two flows")


def users_gh_untouched(s):
    """The user's own gh login is never touched."""
    is_(s.users_gh_files(), s.users_gh_before,
        "~/.config/gh of the broker's HOME is byte-identical")
    ok(read_bytes(ROOT_HOSTS_YML) == s.root_hosts,
       "%s unchanged (%s)" % (ROOT_HOSTS_YML, "absent" if s.root_hosts is None
                              else "present"))


def no_secret_leaks(s):
    """No token or user code in the daemon log; no token in any answer."""
    secrets_ = sorted(s.tokens) + [DECOY_TOKEN, USERS_OWN_TOKEN]
    ok(s.tokens, "the test saw the stored tokens (%d)" % len(s.tokens))
    bodies = b"\n".join(raw for _, _, _, raw in s.d.transcript)
    cdtest.scrub_check(bodies, secrets_, "no token in any API response")
    log = s.d.log_text()
    cdtest.scrub_check(log, secrets_, "no token in the daemon log")
    leaked = sorted(c for c in s.user_codes if c in log)
    ok(not leaked, "no user code in the daemon log (%d codes checked)"
       % len(s.user_codes))
    cdtest.scrub_check(s.d.state_files_text(), secrets_,
                       "no token in state_dir (IPC log included)")


def clean_shutdown(s):
    """SIGTERM ends the daemon and all its processes, with status 0; no gh
    and no private directory outlive it."""
    is_(s.d.stop(), 0, "connectord exits 0 on SIGTERM")
    s.check_ended("shutdown", timeout=5)


if __name__ == "__main__":
    cdtest.run([approved_flow, disconnect_after_cli, denied_flow,
                expired_flow, unknown_and_malformed, cancelled_flow,
                start_provider_500, browser_fallback, two_flows_at_once,
                users_gh_untouched, no_secret_leaks, clean_shutdown],
               fixture=scenario)
