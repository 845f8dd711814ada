#!/usr/bin/python3
"""The Google Drive (gdrive) and OneDrive (onedrive) connectors (api.md,
first section) run the real rclone 1.60 against the fake Google and
Microsoft (tests/fakes/fakeprovider.py, reference/rclone.md) and keep
their contract: 202 and a session, the provider's URL, the pasted redirect
checked against the session's state, one flow at a time on port 53682,
rclone.conf edited in place with every other byte kept.

One fake and one daemon for most of the file; the workspace starts with a
hand-written rclone.conf (a comment, an s3 remote, a drive and a onedrive
remote, blank lines) whose bytes are checked around every edit. Two more
daemons, briefly: one with session_ttl = 30, one whose rclone is missing.
A thread samples the daemon's process tree all along so that every rclone
a flow started, and every worker's private directory, can be checked to be
gone after the flow ends, however it ends.

Port 53682 is global to the machine: the file waits for it to be free
before every flow and never runs two flows at once.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import (argv_of, environ_of, privdir_of,  # noqa: E402
                    starttime)
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

RCLONE = "/usr/bin/rclone"
PORT = 53682
API = "/api/connectors/"
TYPE = {"gdrive": "drive", "onedrive": "onedrive"}
SESSION_ID = {c: re.compile(re.escape(c) + r"-[A-Za-z0-9_-]{8,}")
              for c in TYPE}
AUTH_PREFIX = {
    "gdrive": "https://accounts.google.com/o/oauth2/auth?",
    "onedrive": "https://login.microsoftonline.com/common/oauth2/v2.0/"
                "authorize?",
}
REDIRECT_URI = {"gdrive": "http://127.0.0.1:53682/",
                "onedrive": "http://localhost:53682/"}
FLOW_TIMEOUT = 15       # seconds from submit to a final status
# The broker gives the lock back only once the ended worker is reaped and
# the port can be bound again, retrying every 200 ms (broker/lock.c): a
# start right after an ending may meet a 409 for that long.
LOCK_GRACE = 2

# The workspace's rclone.conf before the daemon starts, as a person and
# rclone itself would have left it (rclone ends its file with a blank
# line). Its tokens are made up; the daemon must not log them either.
LEGACY_ACCESS = "ya29.legacy-" + secrets.token_urlsafe(24)
WORK_ACCESS = "EwB4legacy-" + secrets.token_urlsafe(24)
ORIGINAL_CONF = (
    "# rclone remotes, partly kept by hand: this comment must survive\n"
    "\n"
    "[other]\n"
    "type = s3\n"
    "provider = AWS\n"
    "env_auth = true\n"
    "\n"
    "\n"
    "[legacy]\n"
    "type = drive\n"
    'token = {"access_token":"%s","token_type":"Bearer",'
    '"refresh_token":"1//legacy-refresh","expiry":"2024-01-01T00:00:00Z"}\n'
    "\n"
    "[work]\n"
    "type = onedrive\n"
    'token = {"access_token":"%s","token_type":"Bearer",'
    '"refresh_token":"M.legacy-refresh","expiry":"2024-01-01T00:00:00Z"}\n'
    "drive_id = b!oldWorkDrive\n"
    "drive_type = business\n"
    "\n" % (LEGACY_ACCESS, WORK_ACCESS))


# ---------------------------------------------------------------------------
# /proc helpers


def is_rclone(argv):
    return bool(argv) and os.path.basename(argv[0]) == "rclone"


class Watch:
    """Samples the broker's descendants every 50 ms: rclone processes
    (argv, environment, parent) and the workers' private directories."""

    def __init__(self, daemon):
        self.d = daemon
        self.lock = threading.Lock()
        self.rclone = {}        # (pid, starttime) -> {"argv", "env", "ppid"}
        self.workers = {}       # (pid, starttime) -> title
        self.privdirs = set()
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
            title = cdtest._title(pid) or ""
            if title.startswith(("connectord: worker gdrive",
                                 "connectord: worker onedrive")):
                dirs = {privdir_of(environ_of(pid).get(k))
                        for k in ("HOME", "TMPDIR")}
                with contextlib.suppress(OSError):
                    dirs.add(privdir_of(os.readlink("/proc/%d/cwd" % pid)))
                with self.lock:
                    self.workers[key] = title
                    self.privdirs |= dirs - {None}
                continue
            argv = argv_of(pid)
            if not is_rclone(argv):
                continue
            with self.lock:
                if key in self.rclone:
                    continue
            env = environ_of(pid)
            f = cdtest._stat_fields(pid)
            with self.lock:
                self.rclone[key] = {"argv": argv, "env": env,
                                    "ppid": int(f[1]) if f else None}
                self.privdirs |= {privdir_of(env.get("HOME"))} - {None}

    def snapshot(self):
        with self.lock:
            return dict(self.rclone), dict(self.workers), set(self.privdirs)

    def live_rclone(self):
        """Every rclone that is ours: seen under the broker, under it now,
        or running with one of our private directories as HOME (an orphan
        reparented away from the daemon)."""
        seen, _, dirs = self.snapshot()
        live = {pid for (pid, st) in seen if cdtest.alive(pid)
                and starttime(pid) == st}
        if self.d.proc is not None and self.d.proc.poll() is None:
            live |= {p for p in cdtest._descendants(self.d.proc.pid)
                     if is_rclone(argv_of(p))}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in live:
                continue
            pid = int(name)
            if is_rclone(argv_of(pid)) and \
                    privdir_of(environ_of(pid).get("HOME")) in dirs:
                live.add(pid)
        return sorted(p for p in live if cdtest.alive(p))

    def live_privdirs(self):
        _, _, dirs = self.snapshot()
        return sorted(d for d in dirs if os.path.lexists(d))

    def stop(self):
        self.stop_ev.set()
        self.thread.join(2)


# ---------------------------------------------------------------------------
# rclone.conf helpers


def sections(data):
    """[(name, start, end)] of the sections of rclone.conf bytes: a
    section runs from its header line to the next header (or the end)."""
    out, pos, cur = [], 0, None
    for line in data.splitlines(keepends=True):
        m = re.match(rb"^\[([^\]]*)\]\s*$", line)
        if m:
            if cur:
                out.append((cur[0], cur[1], pos))
            cur = (m.group(1).decode("utf-8", "replace"), pos)
        pos += len(line)
    if cur:
        out.append((cur[0], cur[1], pos))
    return out


def section_keys(data, name):
    """{key: value} of one section, or None when it is absent."""
    for n, start, end in sections(data):
        if n == name:
            keys = {}
            for line in data[start:end].decode().splitlines()[1:]:
                k, sep, v = line.partition("=")
                if sep and not line.lstrip().startswith(("#", ";")):
                    keys[k.strip()] = v.strip()
            return keys
    return None


def around(data, name):
    """(bytes before the section's header, bytes after its block)."""
    for n, start, end in sections(data):
        if n == name:
            return data[:start], data[end:]
    return None


# ---------------------------------------------------------------------------
# The scenario


class Scenario:
    def __init__(self, fake, daemon, watch):
        self.fake = fake
        self.d = daemon
        self.watch = watch
        self.secrets = {LEGACY_ACCESS, WORK_ACCESS}
        self.added = []         # remotes this file added, in order

    # -- files

    @property
    def conf_path(self):
        return os.path.join(self.d.workspace, "rclone.conf")

    def conf(self):
        try:
            with open(self.conf_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def listremotes(self):
        """{name: type} as the real rclone reads the workspace's file."""
        home = tempfile.mkdtemp(prefix="cdrclone-")
        try:
            r = subprocess.run(
                [RCLONE, "listremotes", "--long", "--config", self.conf_path],
                env={"PATH": "/usr/bin:/bin", "HOME": home},
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=20)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if r.returncode != 0:
            diag("rclone listremotes: exit %d: %s" % (r.returncode,
                                                      r.stderr.strip()))
            return None
        out = {}
        for line in r.stdout.splitlines():
            name, sep, typ = line.partition(":")
            if sep:
                out[name.strip()] = typ.strip()
        return out

    # -- the API

    def start(self, c, name, force=None, raw=None):
        body = {"name": name}
        if force is not None:
            body["force"] = force
        return self.d.api("POST", API + c + "/remotes",
                          None if raw is not None else body, raw=raw)

    def session(self, c, sid):
        return self.d.api("GET", "%s%s/sessions/%s" % (API, c, sid))

    def submit(self, c, sid, text):
        return self.d.api("POST", "%s%s/sessions/%s/submit" % (API, c, sid),
                          {"code": text})

    def cancel(self, c, sid):
        return self.d.api("POST", "%s%s/sessions/%s/cancel" % (API, c, sid))

    def remotes(self, c):
        status, _, body, raw = self.d.api("GET", API + c + "/remotes")
        if status != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("remotes"), list):
            diag("GET %s/remotes: %r %r" % (c, status, raw[:300]))
            return None
        return body["remotes"]

    def idle(self, what, timeout=20):
        """Before a flow: port 53682 free (it is global to the machine).
        Once it stayed busy, later waits are short, so that one stuck flow
        does not make every check wait."""
        if getattr(self, "port_stuck", False):
            timeout = 3
        if not cdtest.wait_port_free(PORT, timeout):
            self.port_stuck = True
            ok(False, "%s: port %d is free within %d s" % (what, PORT,
                                                           timeout))

    def refused(self, c, result, status, name):
        """is_error_json(), and a flow started by mistake is cancelled so
        that it does not hold the lock for the checks after it."""
        good = is_error_json(result, status, name)
        body = result[2]
        if result[0] == 202 and isinstance(body, dict) and \
                isinstance(body.get("session_id"), str):
            diag("cancelling the flow started by mistake")
            self.cancel(c, body["session_id"])
        return good

    def start_when_free(self, c, name, what, force=None):
        """Start once port 53682 is free, retrying a 409 for LOCK_GRACE
        seconds (the lock of the flow that just ended is given back
        asynchronously). Returns the last result."""
        self.idle(what)
        t0 = time.monotonic()
        tries = 0
        while True:
            result = self.start(c, name, force)
            tries += 1
            if result[0] != 409 or time.monotonic() - t0 > LOCK_GRACE:
                break
            time.sleep(0.02)
        if tries > 1:
            diag("%s: the lock was free after %.2f s (%d starts)"
                 % (what, time.monotonic() - t0, tries))
        return result

    def start_ok(self, c, name, what, force=None):
        """A start that must succeed: 202 {"session_id": "<c>-...",
        "status": "pending"}. Returns the session id or None."""
        status, _, body, raw = self.start_when_free(c, name, what, force)
        good = (status == 202 and isinstance(body, dict)
                and isinstance(body.get("session_id"), str)
                and SESSION_ID[c].fullmatch(body["session_id"])
                and body.get("status") == "pending")
        if not ok(good, "%s: POST %s/remotes %r answers 202 with a "
                  "%s-... session, pending" % (what, c, name, c)):
            diag("got %r %r" % (status, raw[:300]))
            return None
        return body["session_id"]

    def wait_status(self, c, sid, done, timeout):
        """Poll every 0.1 s until the status is in done, the answer is not
        200, or timeout. Returns (http status, body, statuses seen)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            status, _, body, _ = self.session(c, sid)
            st = body.get("status") if isinstance(body, dict) else None
            if not seen or seen[-1] != (status, st):
                seen.append((status, st))
            if status != 200 or st in done or time.monotonic() > deadline:
                return status, body, seen
            time.sleep(0.1)

    def awaiting(self, c, sid, what, timeout=20):
        """Wait for awaiting_oauth; check the answer's shape. Returns the
        body or None."""
        status, body, seen = self.wait_status(
            c, sid, ("awaiting_oauth", "completed", "error"), timeout)
        if not is_((status, (body or {}).get("status")),
                   (200, "awaiting_oauth"),
                   "%s: the session reaches awaiting_oauth" % what):
            diag("statuses seen: %r; last %r" % (seen, body))
            return None
        url = body.get("auth_url")
        good = (isinstance(url, str) and url.startswith(AUTH_PREFIX[c])
                and body.get("needs_manual_code") is True
                and body.get("error") is None)
        if not ok(good, "%s: awaiting_oauth has the provider's auth_url, "
                  "needs_manual_code true, error null" % what):
            diag("body: %r" % (body,))
            return None
        return body

    def paste_for(self, c, body):
        """Follow the session's auth_url at the fake like a browser; the
        redirect URL a person would paste. Its code is a secret."""
        pasted = self.fake.follow_auth_url(body["auth_url"])
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(pasted).query)
        self.secrets |= set(q.get("code", []))
        return pasted

    def finish(self, c, sid, what, timeout=FLOW_TIMEOUT):
        """Poll until completed or error; returns (status, body)."""
        status, body, seen = self.wait_status(c, sid, ("completed", "error"),
                                              timeout)
        st = (body or {}).get("status")
        if st not in ("completed", "error"):
            ok(False, "%s: the session ends (completed or error) within "
               "%d s" % (what, timeout))
            diag("statuses seen: %r; last %r" % (seen, body))
        return status, body

    def complete(self, c, name, what, force=None, paste=None):
        """A whole flow that must succeed. paste(pasted URL) gives the text
        to submit (default: the URL). Returns True on completion."""
        sid = self.start_ok(c, name, what, force)
        if sid is None:
            return False
        body = self.awaiting(c, sid, what)
        if body is None:
            self.cancel(c, sid)
            return False
        pasted = self.paste_for(c, body)
        text = paste(pasted) if paste else pasted
        if not answered_ok(self.submit(c, sid, text),
                           '%s: submit answers 200 {"ok": true}' % what):
            self.cancel(c, sid)
            return False
        status, body = self.finish(c, sid, what)
        if not is_((status, (body or {}).get("status")), (200, "completed"),
                   "%s: the session completes" % what):
            diag("last body %r" % (body,))
            return False
        is_((body.get("remote_name"), body.get("error")), (name, None),
            "%s: completed session names the remote, error null" % what)
        self.collect_tokens()
        if name not in self.added:
            self.added.append(name)
        return True

    def collect_tokens(self):
        """Every token in rclone.conf is a secret for the leak checks."""
        data = self.conf() or b""
        for n, _, _ in sections(data):
            tok = (section_keys(data, n) or {}).get("token")
            try:
                doc = json.loads(tok) if tok else {}
            except ValueError:
                continue
            for k in ("access_token", "refresh_token"):
                if isinstance(doc.get(k), str):
                    self.secrets.add(doc[k])

    def fake_state(self, c):
        return self.fake.google_state() if c == "gdrive" else \
            self.fake.microsoft_state()

    def check_ended(self, what, timeout=10):
        """After a flow ended: no rclone of ours is left, port 53682 is
        free, and every private directory a worker used is gone."""
        left = cdtest.wait_for(lambda: not self.watch.live_rclone(), timeout)
        if not ok(left, "%s: no rclone process left" % what):
            diag("rclone left: %r" % [(p, argv_of(p))
                                      for p in self.watch.live_rclone()])
        ok(cdtest.wait_port_free(PORT, timeout),
           "%s: port %d is free again" % (what, PORT))
        gone = cdtest.wait_for(lambda: not self.watch.live_privdirs(),
                               timeout)
        if not ok(gone, "%s: the worker's /tmp/connectord-job* directory "
                  "is gone" % what):
            diag("still there: %r" % self.watch.live_privdirs())

    def check_remote_stored(self, c, name, what):
        """The remote is listed by the API and by rclone, its section holds
        a token the fake issued, and the file is 0600."""
        listed = self.remotes(c) or []
        ok({"name": name, "type": TYPE[c]} in listed,
           "%s: GET %s/remotes lists %r of type %s" % (what, c, name,
                                                       TYPE[c]))
        other = "onedrive" if c == "gdrive" else "gdrive"
        ok(name not in [r.get("name") for r in self.remotes(other) or []],
           "%s: GET %s/remotes does not list it" % (what, other))
        rl = self.listremotes() or {}
        is_(rl.get(name), TYPE[c], "%s: rclone listremotes --long shows "
            "'%s: %s'" % (what, name, TYPE[c]))
        data = self.conf() or b""
        keys = section_keys(data, name) or {}
        is_(keys.get("type"), TYPE[c], "%s: [%s] has type = %s"
            % (what, name, TYPE[c]))
        try:
            token = json.loads(keys.get("token") or "")
        except ValueError:
            token = None
        if not ok(isinstance(token, dict), "%s: [%s] has token = {json}"
                  % (what, name)):
            return keys
        issued = self.fake_state(c)["tokens"]
        ok(any(t["access_token"] == cdtest.fingerprint(
            token.get("access_token") or "") and t["refresh_token"] ==
            cdtest.fingerprint(token.get("refresh_token") or "")
            for t in issued),
           "%s: the token's access and refresh tokens are the ones the fake "
           "issued" % what)
        ok(token.get("token_type") == "Bearer" and
           isinstance(token.get("expiry"), str),
           "%s: the token has token_type Bearer and an expiry" % what)
        is_(oct(stat.S_IMODE(os.stat(self.conf_path).st_mode)), oct(0o600),
            "%s: rclone.conf has mode 0600" % what)
        return keys

    def check_kept(self, what, expect=None):
        """Every section other than the ones this file added is byte for
        byte as expected (the original, unless given)."""
        data = self.conf() or b""
        for name in self.added:
            a = around(data, name)
            if a is not None:
                data = a[0] + a[1]
        want = (expect or ORIGINAL_CONF).encode()
        if not is_(data == want, True, "%s: the rest of rclone.conf is "
                   "byte for byte what it was" % what):
            diag("now:  %r" % data[-400:])
            diag("want: %r" % want[-400:])


@contextlib.contextmanager
def scenario():
    if not os.access(RCLONE, os.X_OK):
        cdtest.skip_all("no rclone at %s" % RCLONE)
    with cdtest.Fake() as fake:
        d = cdtest.Daemon(fake, files={"rclone.conf": ORIGINAL_CONF},
                          start=False)
        try:
            d.start()
            watch = Watch(d)
            try:
                yield Scenario(fake, d, watch)
            finally:
                watch.stop()
        finally:
            d.stop()


# ---------------------------------------------------------------------------
# Happy paths


def gdrive_flow(s):
    """Start, pending, awaiting_oauth with Google's URL, paste, completed:
    the remote is in rclone.conf with the fake's token."""
    s.fake.reset()
    before = s.conf()
    s.idle("gdrive")
    t0 = time.monotonic()
    status, _, body, raw = s.start("gdrive", "personal")
    took = time.monotonic() - t0
    if not ok(status == 202 and isinstance(body, dict) and
              SESSION_ID["gdrive"].fullmatch(str(body.get("session_id"))) and
              body.get("status") == "pending",
              'gdrive: POST remotes {"name": "personal"} answers 202 '
              '{"session_id": "gdrive-...", "status": "pending"}'):
        diag("got %r %r" % (status, raw[:300]))
        return
    ok(took < 2, "gdrive: answered at once (%.2f s)" % took)
    sid = body["session_id"]
    status, _, first, raw = s.session("gdrive", sid)
    if status == 200 and (first or {}).get("status") == "pending":
        is_(first, {"status": "pending", "auth_url": None,
                    "needs_manual_code": True, "remote_name": "personal",
                    "error": None},
            "gdrive: a pending session has auth_url null, error null")
    else:
        cdtest.skip("gdrive: a pending session has auth_url null",
                    "already %r" % ((first or {}).get("status"),))
    body = s.awaiting("gdrive", sid, "gdrive")
    if body is None:
        s.cancel("gdrive", sid)
        return
    is_(body.get("remote_name"), "personal", "gdrive: remote_name")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(body["auth_url"]).query)
    is_((q.get("redirect_uri"), q.get("response_type")),
        ([REDIRECT_URI["gdrive"]], ["code"]),
        "gdrive: auth_url asks for a code to http://127.0.0.1:53682/")
    ok(q.get("state") and re.fullmatch(r"[A-Za-z0-9_-]{16,}", q["state"][0]),
       "gdrive: auth_url carries rclone's state")
    check_rclone_process(s, "drive")
    is_(s.conf(), before, "gdrive: rclone.conf untouched while awaiting")
    pasted = s.paste_for("gdrive", body)
    ok(pasted.startswith(REDIRECT_URI["gdrive"] + "?") and
       "code=" in pasted, "gdrive: the fake redirects to rclone's URL with "
       "a code")
    t0 = time.monotonic()
    answered_ok(s.submit("gdrive", sid, pasted),
                'gdrive: submit of the pasted URL answers 200 {"ok": true}')
    status, body = s.finish("gdrive", sid, "gdrive")
    if not is_((status, (body or {}).get("status")), (200, "completed"),
               "gdrive: the session completes (%.1f s)"
               % (time.monotonic() - t0)):
        diag("body %r" % (body,))
        return
    is_((body.get("remote_name"), body.get("error"),
         body.get("needs_manual_code")), ("personal", None, True),
        "gdrive: completed: remote_name, error null")
    s.added.append("personal")
    s.collect_tokens()
    reqs = s.fake.google_state()["token_requests"]
    ok(len(reqs) == 1 and reqs[0]["grant_type"] == "authorization_code" and
       reqs[0]["redirect_uri"] == REDIRECT_URI["gdrive"],
       "gdrive: rclone redeemed the code once at oauth2.googleapis.com")
    keys = s.check_remote_stored("gdrive", "personal", "gdrive")
    is_(sorted(keys), ["token", "type"], "gdrive: [personal] holds type and "
        "token only")
    is_(s.listremotes(), {"other": "s3", "legacy": "drive",
                          "work": "onedrive", "personal": "drive"},
        "gdrive: rclone lists every remote of the file")
    is_([r["name"] for r in s.remotes("gdrive") or []],
        ["legacy", "personal"], "gdrive: GET remotes lists drive remotes "
        "only, in file order")
    s.check_kept("gdrive")
    s.check_ended("gdrive")


def check_rclone_process(s, backend):
    """rclone authorize runs as a worker's child, in the job's private
    directory, with the proxy and CA the daemon was configured with."""
    found = cdtest.wait_for(
        lambda: [v for v in s.watch.snapshot()[0].values()
                 if v["argv"][1:3] == ["authorize", backend]], 3)
    if not ok(found, "rclone authorize %s ran under the daemon" % backend):
        return
    g = found[-1]
    ok("--auth-no-open-browser" in g["argv"],
       "rclone got --auth-no-open-browser (%s)" % " ".join(g["argv"]))
    env = g["env"]
    ok(privdir_of(env.get("HOME")), "rclone's HOME is in /tmp/connectord-job*"
       " (%r)" % (env.get("HOME"),))
    is_(env.get("HTTPS_PROXY"), s.fake.proxy_url,
        "rclone's HTTPS_PROXY is the configured proxy")
    workers = {pid for pid, _ in s.watch.snapshot()[1]}
    ok(g["ppid"] in workers, "rclone is a child of a 'connectord: worker' "
       "process")


def onedrive_flow(s):
    """The same for OneDrive, plus drive_id and drive_type from Graph."""
    s.fake.reset()
    if not s.complete("onedrive", "od-home", "onedrive"):
        return
    keys = s.check_remote_stored("onedrive", "od-home", "onedrive")
    is_((keys.get("drive_id"), keys.get("drive_type")),
        ("b!fakeDriveId123", "personal"),
        "onedrive: drive_id = b!fakeDriveId123, drive_type = personal")
    st = s.fake.microsoft_state()
    ok(st["token_requests"] and st["token_requests"][0]["redirect_uri"] ==
       REDIRECT_URI["onedrive"], "onedrive: rclone redeemed the code with "
       "redirect_uri http://localhost:53682/")
    graph = s.fake.requests("graph.microsoft.com", "/v1.0/me/drive")
    token = json.loads((keys.get("token") or "{}"))
    ok(graph and all(g["headers"].get("authorization") == "Bearer " +
                     cdtest.fingerprint(token.get("access_token", ""))
                     for g in graph),
       "onedrive: GET graph.microsoft.com/v1.0/me/drive with the new "
       "access token as Bearer")
    is_([r["name"] for r in s.remotes("onedrive") or []], ["work", "od-home"],
        "onedrive: GET remotes lists onedrive remotes only, in file order")
    s.check_kept("onedrive")
    s.check_ended("onedrive")


def pasted_variants(s):
    """The bare code works as well as the URL: decoded (Google's "4/0A..."
    holds a slash), still percent-encoded as copied from an address bar,
    or with white space around it."""
    s.fake.reset()

    def bare(pasted):
        return urllib.parse.parse_qs(
            urllib.parse.urlsplit(pasted).query)["code"][0]

    def encoded(pasted):
        return "  " + re.search(r"[?&]code=([^&]+)", pasted).group(1) + "\n"

    if s.complete("gdrive", "bare", "bare Google code", paste=bare):
        s.check_remote_stored("gdrive", "bare", "bare Google code")
    s.check_ended("bare Google code")
    if s.complete("gdrive", "bare-enc", "percent-encoded Google code with "
                  "white space", paste=encoded):
        s.check_remote_stored("gdrive", "bare-enc", "percent-encoded code")
    s.check_ended("percent-encoded Google code")
    if s.complete("onedrive", "od-bare", "bare Microsoft code", paste=bare):
        s.check_remote_stored("onedrive", "od-bare", "bare Microsoft code")
    s.check_ended("bare Microsoft code")
    # The state check is on the state, not on the host: any host goes.
    if s.complete("gdrive", "other-host", "URL with another host",
                  paste=lambda p: p.replace("http://127.0.0.1:53682/",
                                            "http://localhost:53682/")):
        s.check_remote_stored("gdrive", "other-host", "URL with another host")
    s.check_ended("URL with another host")


# ---------------------------------------------------------------------------
# The pasted text and the session's state


def state_checks(s):
    """A wrong state is 400 and the flow stays alive; a URL without state
    is 400; the right paste completes; a second submit is 409."""
    s.fake.reset()
    c, what = "onedrive", "state checks"
    sid = s.start_ok(c, "state-check", what)
    if sid is None:
        return
    body = s.awaiting(c, sid, what)
    if body is None:
        s.cancel(c, sid)
        return
    pasted = s.paste_for(c, body)
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(pasted).query)[
        "state"][0]
    wrong = pasted.replace("state=" + state, "state=" + state[:-2] + "zz")
    is_error_json(s.submit(c, sid, wrong), 400,
                  "a pasted URL with another state: JSON 400")
    is_(s.session(c, sid)[2].get("status"), "awaiting_oauth",
        "after the wrong state the session still awaits a code")
    nostate = re.sub(r"[?&]state=[^&]*", "", pasted).replace(
        "53682/&", "53682/?")
    ok("state=" not in nostate and "code=" in nostate,
       "(the test built a URL without state: %s)" % ("code=" in nostate))
    is_error_json(s.submit(c, sid, nostate), 400,
                  "a pasted URL without state: JSON 400")
    for text in ("", "   ", "http://localhost:53682/?state=" + state):
        is_error_json(s.submit(c, sid, text), 400,
                      "paste %r: JSON 400" % text[:40])
    raw = s.d.api("POST", "%s%s/sessions/%s/submit" % (API, c, sid),
                  raw=b'{"code": 5}')
    is_error_json(raw, 400, 'submit {"code": 5}: JSON 400')
    is_(s.session(c, sid)[2].get("status"), "awaiting_oauth",
        "after the refused pastes the session still awaits a code")
    ok(not s.fake_state(c)["token_requests"],
       "no refused paste reached the token endpoint")
    answered_ok(s.submit(c, sid, pasted), "then the right URL: 200")
    is_error_json(s.submit(c, sid, pasted), 409,
                  "a second submit after one was accepted: JSON 409")
    status, body = s.finish(c, sid, what)
    if is_((status, (body or {}).get("status")), (200, "completed"),
           "after a wrong paste the right one completes"):
        s.added.append("state-check")
        s.collect_tokens()
        s.check_remote_stored(c, "state-check", what)
    is_error_json(s.submit(c, sid, pasted), 409,
                  "submit to a completed session: JSON 409")
    s.check_ended(what)


def submit_while_pending(s):
    """A submit before rclone's URL is known is 409 (if the test is fast
    enough to catch the pending window)."""
    s.fake.reset()
    status, _, body, raw = s.start_when_free("gdrive", "pending-submit",
                                             "pending submit")
    if not is_(status, 202, "pending submit: start answers 202"):
        return
    sid = body["session_id"]
    result = s.submit("gdrive", sid, "http://127.0.0.1:53682/?code=x&state="
                      "not-the-state")
    if result[0] == 400:
        cdtest.skip("submit in pending: JSON 409",
                    "the session was already awaiting_oauth")
    else:
        is_error_json(result, 409, "submit in pending: JSON 409")
    answered_ok(s.cancel("gdrive", sid), "pending submit: cancel 200")
    s.check_ended("pending submit")


# ---------------------------------------------------------------------------
# Names and the single flight


BAD_NAMES = [("UPPER", '"UPPER"'), ("a b", '"a b"'), ("", '""'),
             ("a" * 33, "33 characters"), ("x\n", '"x\\n"'),
             ("../x", '"../x"'), ("x.y", '"x.y"'), ("é", "non-ASCII")]


def invalid_names(s):
    """Names outside [a-z0-9_-]{1,32} and malformed bodies are 400, and
    start nothing."""
    before = s.conf()
    for c in TYPE:
        for name, label in BAD_NAMES:
            s.refused(c, s.start(c, name), 400, "%s: name %s: JSON 400"
                      % (c, label))
        for label, raw in (("missing name", b"{}"),
                           ("name 5", b'{"name": 5}'),
                           ("name null", b'{"name": null}'),
                           ("not JSON", b"{nope"),
                           ("an array", b'["personal"]')):
            s.refused(c, s.start(c, None, raw=raw), 400,
                      "%s: %s: JSON 400" % (c, label))
    ok(not s.watch.live_rclone(), "invalid names: no rclone started")
    is_(s.conf(), before, "invalid names: rclone.conf untouched")
    # 32 characters is still a name.
    sid = s.start_ok("gdrive", "a" * 32, "32-character name")
    if sid:
        answered_ok(s.cancel("gdrive", sid), "32-character name: cancel")
    s.check_ended("32-character name")


def name_conflicts(s):
    """A name in use is 409 without force; a name of the other
    connector's type is 409 even with force."""
    before = s.conf()
    for c, name, force in (("gdrive", "personal", None),
                           ("gdrive", "personal", False),
                           ("gdrive", "legacy", None),
                           ("onedrive", "work", None),
                           ("onedrive", "od-home", False),
                           ("onedrive", "personal", None),
                           ("onedrive", "personal", True),
                           ("gdrive", "work", None),
                           ("gdrive", "work", True),
                           ("gdrive", "od-home", True),
                           ("onedrive", "other", True)):
        s.refused(c, s.start(c, name, force), 409,
                  "%s: %r (force %r), in use: JSON 409" % (c, name, force))
    ok(not s.watch.live_rclone(), "name conflicts: no rclone started")
    is_(s.conf(), before, "name conflicts: rclone.conf untouched")


def force_reauth(s):
    """force re-authorises an existing remote: until the new flow
    completes the old section is untouched (a cancel keeps it), then the
    section is replaced in place."""
    s.fake.reset()
    c, what = "gdrive", "force"
    before = s.conf()
    old_keys = section_keys(before, "legacy")
    sid = s.start_ok(c, "legacy", what, force=True)
    if sid is None:
        return
    body = s.awaiting(c, sid, what)
    is_(s.conf(), before, "force: while awaiting, rclone.conf is unchanged")
    answered_ok(s.cancel(c, sid), "force: cancel answers 200")
    s.check_ended("force, cancelled")
    is_(s.conf(), before, "force: after cancel, the old [legacy] is intact")

    sid = s.start_ok(c, "legacy", what + " again", force=True)
    if sid is None:
        return
    body = s.awaiting(c, sid, what)
    if body is None:
        s.cancel(c, sid)
        return
    pasted = s.paste_for(c, body)
    is_(s.conf(), before, "force: still unchanged before the submit")
    answered_ok(s.submit(c, sid, pasted), "force: submit 200")
    status, body = s.finish(c, sid, what)
    if not is_((status, (body or {}).get("status")), (200, "completed"),
               "force: the flow completes"):
        return
    s.collect_tokens()
    keys = s.check_remote_stored(c, "legacy", what)
    ok(keys.get("token") != old_keys.get("token"),
       "force: [legacy] holds the new token")
    after = s.conf()
    a, b = around(before, "legacy"), around(after, "legacy")
    ok(a and b and a == b, "force: the bytes before and after [legacy] are "
       "unchanged (the section is replaced in place)")
    is_([n for n, _, _ in sections(after)], [n for n, _, _ in
                                             sections(before)],
        "force: the order of the sections is unchanged")
    s.check_ended(what)


def single_flight(s):
    """One flow at a time, across both connectors: 409 while one is
    pending or awaiting; free again after completion."""
    s.fake.reset()
    status, _, body, raw = s.start_when_free("gdrive", "first",
                                             "single flight")
    if not is_(status, 202, "single flight: first start 202"):
        return
    sid = body["session_id"]
    pending = (s.session("gdrive", sid)[2] or {}).get("status") == "pending"
    r1, r2 = s.start("gdrive", "second"), s.start("onedrive", "third")
    label = "pending" if pending else "awaiting"
    s.refused("gdrive", r1, 409, "a second gdrive flow while one is %s: "
              "409" % label)
    s.refused("onedrive", r2, 409, "a onedrive flow while a gdrive one is "
              "%s: 409" % label)
    body = s.awaiting("gdrive", sid, "single flight")
    if body is None:
        s.cancel("gdrive", sid)
        return
    s.refused("gdrive", s.start("gdrive", "second"), 409,
              "a second gdrive flow while one awaits: 409")
    s.refused("onedrive", s.start("onedrive", "third"), 409,
              "a onedrive flow while a gdrive one awaits: 409")
    s.refused("gdrive", s.start("gdrive", "first", force=True), 409,
              "the same name again while its flow awaits: 409")
    answered_ok(s.submit("gdrive", sid, s.paste_for("gdrive", body)),
                "single flight: submit 200")
    status, body = s.finish("gdrive", sid, "single flight")
    if is_((body or {}).get("status"), "completed",
           "single flight: the first flow completes"):
        s.added.append("first")
        s.collect_tokens()
    s.check_ended("single flight")
    # The lock is released: a onedrive flow may start now.
    sid = s.start_ok("onedrive", "third", "after completion")
    if sid:
        ok(s.awaiting("onedrive", sid, "after completion"),
           "lock released after completion: a onedrive flow runs")
        answered_ok(s.cancel("onedrive", sid), "after completion: cancel")
    s.check_ended("after completion")


# ---------------------------------------------------------------------------
# Flows that fail


def error_flow(s, c, name, what, prepare=None, paste=None, timeout=20):
    """A flow whose paste is accepted but that must end in error: a
    sentence without secrets, nothing stored, the lock released."""
    s.fake.reset()
    before = s.conf()
    sid = s.start_ok(c, name, what)
    if sid is None:
        return
    body = s.awaiting(c, sid, what)
    if body is None:
        s.cancel(c, sid)
        return
    if prepare:
        prepare()
    pasted = s.paste_for(c, body)
    text = paste(pasted) if paste else pasted
    answered_ok(s.submit(c, sid, text), "%s: submit 200" % what)
    status, body = s.finish(c, sid, what, timeout)
    if is_((status, (body or {}).get("status")), (200, "error"),
           "%s: the session ends in error" % what):
        err = body.get("error")
        ok(isinstance(err, str) and len(err.strip()) > 10 and
           err.rstrip().endswith("."),
           "%s: error is a sentence (%r)" % (what, err))
        leaked = [cdtest.fingerprint(x) for x in s.secrets | {text}
                  if x and x in str(err)]
        ok(not leaked and "access_token" not in str(err) and
           "Bearer" not in str(err), "%s: no code or token in the error"
           % what)
        is_(body.get("remote_name"), name, "%s: remote_name kept" % what)
    is_(s.conf(), before, "%s: rclone.conf untouched" % what)
    ok(name not in [r["name"] for r in s.remotes(c) or []],
       "%s: nothing listed" % what)
    s.check_ended(what)
    sid = s.start_ok(c, name, what + ", then a new flow")
    if sid:
        answered_ok(s.cancel(c, sid), "%s: lock released, next flow "
                    "starts (cancelled)" % what)
    s.check_ended(what + ", next flow")


def bogus_code(s):
    """The right state with a code the fake never issued: accepted by
    submit, refused by the token endpoint, the session ends in error."""
    bogus = "4/0A" + secrets.token_urlsafe(40)
    s.secrets.add(bogus)

    def paste(pasted):
        return re.sub(r"code=[^&]+", "code=" + urllib.parse.quote(bogus,
                                                                  safe=""),
                      pasted)

    error_flow(s, "gdrive", "bogus", "bogus code", paste=paste)
    reqs = s.fake.google_state()["token_requests"]
    ok(reqs and reqs[0]["code"] == cdtest.fingerprint(bogus),
       "bogus code: rclone sent exactly the pasted code, decoded once")


def provider_failures(s):
    """The token endpoint refusing (400), Microsoft Graph refusing the
    token (401) or failing (500): error, nothing stored."""
    error_flow(s, "gdrive", "tok400", "Google token endpoint 400",
               prepare=lambda: s.fake.google_config(token_mode="400"))
    error_flow(s, "onedrive", "tok400", "Microsoft token endpoint 400",
               prepare=lambda: s.fake.microsoft_config(token_mode="400"))
    error_flow(s, "onedrive", "graph401", "Graph 401",
               prepare=lambda: s.fake.microsoft_config(graph_mode="401"))
    error_flow(s, "onedrive", "graph500", "Graph 500",
               prepare=lambda: s.fake.microsoft_config(graph_mode="500"))
    s.fake.reset()


def denied(s):
    """The person refuses at Google: the pasted URL carries
    error=access_denied. Refused with a JSON 4xx (400 or 422), never
    stored; the flow is cancelled afterwards."""
    s.fake.reset()
    c, what = "gdrive", "access denied"
    before = s.conf()
    sid = s.start_ok(c, "denied", what)
    if sid is None:
        return
    body = s.awaiting(c, sid, what)
    if body is None:
        s.cancel(c, sid)
        return
    s.fake.google_deny()
    pasted = s.paste_for(c, body)
    ok("error=access_denied" in pasted and "code=" not in pasted,
       "access denied: the fake redirects with error=access_denied")
    result = s.submit(c, sid, pasted)
    ok(result[0] in (400, 422), "access denied: submit answers 400 or 422 "
       "(%r)" % (result[0],))
    is_error_json(result, result[0], "access denied: a JSON error")
    status, body, _ = s.wait_status(c, sid, ("completed",), 1)
    ok((body or {}).get("status") != "completed",
       "access denied: the session does not complete")
    s.cancel(c, sid)
    is_(s.conf(), before, "access denied: rclone.conf untouched")
    s.check_ended(what)


def cancel_flows(s):
    """Cancel while awaiting, and while rclone waits on a token endpoint
    that never answers: 200, the session is gone, rclone is killed, the
    lock is released."""
    s.fake.reset()
    for c, what, hang in (("gdrive", "cancel", False),
                          ("onedrive", "cancel", False),
                          ("gdrive", "cancel during the token exchange",
                           True)):
        what = "%s %s" % (c, what)
        before = s.conf()
        sid = s.start_ok(c, "cancelled", what)
        if sid is None:
            continue
        body = s.awaiting(c, sid, what)
        if body is not None and hang:
            s.fake.google_config(token_mode="hang")
            answered_ok(s.submit(c, sid, s.paste_for(c, body)),
                        "%s: submit 200" % what)
            ok(cdtest.wait_for(lambda: s.fake.google_state()[
                "token_requests"], 10), "%s: rclone is at the token "
               "endpoint" % what)
            time.sleep(0.5)
            st = (s.session(c, sid)[2] or {}).get("status")
            ok(st in ("pending", "awaiting_oauth"), "%s: the session has not "
               "ended while the exchange hangs (%r)" % (what, st))
        answered_ok(s.cancel(c, sid), '%s: POST cancel answers 200 '
                    '{"ok": true}' % what)
        is_error_json(s.session(c, sid), 404, "%s: the session id then "
                      "answers 404" % what)
        is_error_json(s.cancel(c, sid), 404, "%s: a second cancel: 404"
                      % what)
        is_error_json(s.submit(c, sid, "x"), 404, "%s: submit: 404" % what)
        s.check_ended(what, timeout=5)
        is_(s.conf(), before, "%s: rclone.conf untouched" % what)
        s.fake.reset()
    sid = s.start_ok("onedrive", "cancelled", "after cancels")
    if sid:
        answered_ok(s.cancel("onedrive", sid), "lock released after cancel")
    s.check_ended("after cancels")


def kill_worker(s):
    """kill -9 of the 'connectord: worker gdrive' process: its rclone goes
    too, and a new flow can start within 10 s."""
    s.fake.reset()
    what = "kill -9"
    sid = s.start_ok("gdrive", "killed", what)
    if sid is None:
        return
    if s.awaiting("gdrive", sid, what) is None:
        s.cancel("gdrive", sid)
        return
    pid = s.d.pid_of("worker gdrive")
    if not ok(pid, "kill -9: one 'connectord: worker gdrive' process"):
        s.cancel("gdrive", sid)
        return
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    new = None
    while time.monotonic() - t0 < 10 and new is None:
        if not cdtest.tcp_listening(PORT):
            status, _, body, _ = s.start("gdrive", "killed")
            if status == 202:
                new = body["session_id"]
                break
        time.sleep(0.2)
    if not ok(new, "kill -9: a new flow starts within 10 s (%.1f s)"
              % (time.monotonic() - t0)):
        diag("last start answer: %r" % (s.start("gdrive", "killed")[3],))
        diag("rclone left: %r" % s.watch.live_rclone())
    status, _, body, _ = s.session("gdrive", sid)
    ok(status == 404 or (body or {}).get("status") == "error",
       "kill -9: the old session is gone or in error (%r %r)"
       % (status, (body or {}).get("status")))
    if new:
        ok(s.awaiting("gdrive", new, "kill -9, new flow"),
           "kill -9: the new flow runs")
        answered_ok(s.cancel("gdrive", new), "kill -9: cancel the new flow")
    s.check_ended(what)


def port_held_elsewhere(s):
    """Another program listening on 53682: the flow does not hang; it
    fails with a JSON error or a session in error, and frees the lock."""
    s.fake.reset()
    what = "port held by another program"
    # Let the previous flow's lock go first: it is not given back while
    # the port is held, by anyone.
    s.idle(what)
    time.sleep(LOCK_GRACE / 2)
    lsock = socket.socket()
    # As rclone itself binds: connections in TIME_WAIT do not count.
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind(("127.0.0.1", PORT))
        lsock.listen(1)
    except OSError as e:
        lsock.close()
        cdtest.skip(what, "cannot bind port %d: %s" % (PORT, e))
        return
    try:
        result = s.start("gdrive", "held")
        status, _, body, raw = result
        if status == 202:
            st, body, seen = s.wait_status("gdrive", body["session_id"],
                                           ("error", "completed"), 35)
            err = (body or {}).get("error")
            ok((body or {}).get("status") == "error" and
               isinstance(err, str) and err.strip(),
               "%s: the session ends in error with a sentence (%r)"
               % (what, err))
            # rclone said "address already in use": a person can act on
            # the port's number, not on a timeout that never happened.
            ok(isinstance(err, str) and str(PORT) in err,
               "%s: the error names port %d" % (what, PORT))
        else:
            ok(status in (409, 502, 503), "%s: start answers 409, 502 or "
               "503 (%d)" % (what, status))
            is_error_json(result, status, "%s: a JSON error" % what)
    finally:
        lsock.close()
    left = cdtest.wait_for(lambda: not s.watch.live_rclone(), 10)
    ok(left, "%s: no rclone left" % what)
    sid = s.start_ok("gdrive", "held", what + ", then")
    if sid:
        answered_ok(s.cancel("gdrive", sid), "%s: lock released" % what)
    s.check_ended(what)


# ---------------------------------------------------------------------------
# Sessions and remotes that do not exist, deleting


def unknown_sessions(s):
    """Unknown ids, and one connector's session asked through the other,
    are 404 for GET, submit and cancel."""
    for c in TYPE:
        for sid in (c + "-" + secrets.token_hex(16), "nope",
                    ("gdrive" if c == "onedrive" else "onedrive") + "-" +
                    secrets.token_hex(16)):
            is_error_json(s.session(c, sid), 404, "%s: GET session %s...: "
                          "404" % (c, sid[:12]))
            is_error_json(s.submit(c, sid, "x"), 404,
                          "%s: submit to %s...: 404" % (c, sid[:12]))
            is_error_json(s.cancel(c, sid), 404, "%s: cancel %s...: 404"
                          % (c, sid[:12]))
    sid = s.start_ok("gdrive", "cross", "cross-connector session")
    if sid:
        is_error_json(s.session("onedrive", sid), 404,
                      "a gdrive session asked through onedrive: 404")
        is_error_json(s.cancel("onedrive", sid), 404,
                      "a gdrive session cancelled through onedrive: 404")
        is_((s.session("gdrive", sid)[2] or {}).get("remote_name"), "cross",
            "... and it is still there for gdrive")
        answered_ok(s.cancel("gdrive", sid), "cross: cancel")
    s.check_ended("cross-connector session")


def delete_remotes(s):
    """DELETE is 204 with an empty body; missing or other-type remotes are
    404; the rest of the file is kept byte for byte."""
    for c in TYPE:
        for name in ("no-such-remote",):
            is_error_json(s.d.api("DELETE", API + c + "/remotes/" + name),
                          404, "%s: DELETE a missing remote: 404" % c)
    before = s.conf()
    is_error_json(s.d.api("DELETE", API + "gdrive/remotes/work"), 404,
                  "DELETE a onedrive remote through gdrive: 404")
    is_error_json(s.d.api("DELETE", API + "onedrive/remotes/personal"), 404,
                  "DELETE a drive remote through onedrive: 404")
    is_error_json(s.d.api("DELETE", API + "gdrive/remotes/other"), 404,
                  "DELETE an s3 remote through gdrive: 404")
    is_(s.conf(), before, "refused DELETEs leave rclone.conf untouched")

    by_type = {n: t for n, t in (s.listremotes() or {}).items()}
    for name in list(s.added):
        c = "gdrive" if by_type.get(name) == "drive" else "onedrive"
        status, hdrs, _, raw = s.d.api("DELETE", API + c + "/remotes/" +
                                       name)
        is_((status, raw), (204, b""), "DELETE %s/remotes/%s: 204, empty "
            "body" % (c, name))
        ok(name not in [r["name"] for r in s.remotes(c) or []],
           "after DELETE, %s is no longer listed" % name)
        ok(name not in (s.listremotes() or {}), "after DELETE, rclone does "
           "not list %s" % name)
        if status == 204:
            s.added.remove(name)
            is_error_json(s.d.api("DELETE", API + c + "/remotes/" + name),
                          404, "DELETE %s again: 404" % name)
    # [legacy] was re-authorised in place; everything else is original.
    want = ORIGINAL_CONF
    cur = (s.conf() or b"").decode()
    a = around(ORIGINAL_CONF.encode(), "legacy")
    b = around(s.conf() or b"", "legacy")
    if a and b:
        want = ORIGINAL_CONF.replace(
            ORIGINAL_CONF[len(a[0]):len(ORIGINAL_CONF) - len(a[1])],
            cur[len(b[0]):len(cur) - len(b[1])])
    is_(cur, want, "after deleting every remote it added, rclone.conf is "
        "the original byte for byte (but [legacy]'s new token)")
    is_(oct(stat.S_IMODE(os.stat(s.conf_path).st_mode)), oct(0o600),
        "rclone.conf is still 0600")


# ---------------------------------------------------------------------------
# Separate daemons: session TTL, rclone missing


def session_ttl(s):
    """With session_ttl = 30 a session answers 404 after 30 s; its rclone
    is killed and the lock released."""
    what = "session_ttl 30"
    s.idle(what)
    with cdtest.Daemon(s.fake, overrides={"session_ttl": "30"}) as d:
        watch = Watch(d)
        t = Scenario(s.fake, d, watch)
        try:
            t0 = time.monotonic()
            sid = t.start_ok("gdrive", "ttl", what)
            if sid is None:
                return
            if t.awaiting("gdrive", sid, what) is None:
                t.cancel("gdrive", sid)
                return
            time.sleep(max(0, 27 - (time.monotonic() - t0)))
            is_(t.session("gdrive", sid)[0], 200,
                "%s: the session still answers after 27 s" % what)
            gone = cdtest.wait_for(
                lambda: t.session("gdrive", sid)[0] == 404, 33 -
                (time.monotonic() - t0), 0.25)
            if not ok(gone, "%s: the session answers 404 by 33 s (%.1f s)"
                      % (what, time.monotonic() - t0)):
                t.cancel("gdrive", sid)
            is_error_json(t.session("gdrive", sid), 404,
                          "%s: expired session: JSON 404" % what)
            t.check_ended(what, timeout=5)
            sid = t.start_ok("gdrive", "ttl", what + ", then")
            if sid:
                answered_ok(t.cancel("gdrive", sid),
                            "%s: a new flow starts after expiry" % what)
            t.check_ended(what + ", then")
        finally:
            watch.stop()


def rclone_missing(s):
    """rclone = /nonexistent/rclone: starting a flow answers 503; the
    rest of the API still works."""
    try:
        d = cdtest.Daemon(s.fake, overrides={"rclone": "/nonexistent/rclone"},
                          files={"rclone.conf": ORIGINAL_CONF})
    except RuntimeError as e:
        ok(False, "the daemon starts with rclone = /nonexistent/rclone")
        diag(str(e)[-2000:])
        return
    with d:
        for c in TYPE:
            is_error_json(d.api("POST", API + c + "/remotes",
                                {"name": "newone"}), 503,
                          "rclone missing: %s start answers JSON 503" % c)
        status, _, body, _ = d.api("GET", API + "gdrive/remotes")
        is_((status, [r["name"] for r in (body or {}).get("remotes", [])]),
            (200, ["legacy"]), "rclone missing: listing still works")
        status, _, body, raw = d.api("DELETE", API + "onedrive/remotes/work")
        is_((status, raw), (204, b""),
            "rclone missing: deleting still works")


# ---------------------------------------------------------------------------
# Leaks, shutdown


def no_secret_leaks(s):
    """No code or token in the daemon log, in any API answer, or in the
    state directory."""
    ok(len(s.secrets) > 10, "the test collected codes and tokens (%d)"
       % len(s.secrets))
    secrets_ = sorted(s.secrets)
    cdtest.scrub_check(s.d.log_text(), secrets_,
                       "no code or token in the daemon log")
    bodies = b"\n".join(raw for _, _, _, raw in s.d.transcript)
    cdtest.scrub_check(bodies, secrets_, "no code or token in any API answer")
    cdtest.scrub_check(s.d.state_files_text(), secrets_,
                       "no code or token in state_dir")
    log = s.d.log_text()
    ok("ya29." not in log and "EwB4" not in log and "4/0A" not in log,
       "no token- or code-shaped text in the daemon log")


def clean_shutdown(s):
    """SIGTERM ends the daemon with status 0; no rclone outlives it."""
    is_(s.d.stop(), 0, "connectord exits 0 on SIGTERM")
    left = cdtest.wait_for(lambda: not s.watch.live_rclone(), 5)
    ok(left, "shutdown: no rclone left")


if __name__ == "__main__":
    cdtest.run([gdrive_flow, onedrive_flow, pasted_variants, state_checks,
                submit_while_pending, invalid_names, name_conflicts,
                force_reauth, single_flight, bogus_code, provider_failures,
                denied, cancel_flows, kill_worker, port_held_elsewhere,
                unknown_sessions, delete_remotes, session_ttl,
                rclone_missing, no_secret_leaks, clean_shutdown],
               fixture=scenario)
