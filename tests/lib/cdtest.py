"""Harness for connectord's integration and security tests.

A test file imports this module, writes one function per check group, and
ends with ``cdtest.run([...], fixture=...)``. What it offers:

- TAP output: ok(), is_(), diag(), skip_all(), done(); run() turns an
  exception in a test function into a ``not ok`` with the traceback as
  ``#`` lines, so one failure never hides the rest of the count.
- Fake: the fake providers (tests/fakes/fakeprovider.py) in a temp dir,
  with follow_auth_url() to play a browser at the fake Google/Microsoft,
  vercel_authorize() at the fake vercel.com, provider_request() to call
  a fake provider directly.
- tcp_listening(), wait_port_free(): rclone's OAuth port (53682) is
  global to the machine.
- Daemon: the real connectord on a free loopback port with a private
  workspace, its API, its processes by role, its files.
- channel_between(), steal_fd(), message(): a hostile peer's tools, to
  send a hand-built IPC message on a role's own channel.
- scrub_check(): no secret in a text.

Every process a test starts is stopped at exit, even when the test dies
or the runner times it out (SIGTERM), so that nothing outlives a suite.

Python 3 standard library only; talks to 127.0.0.1 only.
"""

import atexit
import contextlib
import ctypes
import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAKE_SCRIPT = os.path.join(REPO, "tests", "fakes", "fakeprovider.py")
BUILD = os.environ.get("CD_BUILD_DIR", os.path.join(REPO, "build"))
KEEP = os.environ.get("CDTEST_KEEP") == "1"   # keep temp dirs for a post-mortem
SANITIZED = os.environ.get("CD_SANITIZED") == "1"   # an ASan+UBSan build

# ---------------------------------------------------------------------------
# TAP

_count = 0
_failed = 0


def _emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def diag(text):
    """Print text as TAP diagnostics ("# ..." lines)."""
    for line in str(text).splitlines() or [""]:
        _emit("# " + line)


def ok(cond, name):
    """One check. Returns cond, so a test can stop early on failure."""
    global _count, _failed
    _count += 1
    if cond:
        _emit("ok %d - %s" % (_count, name))
    else:
        _failed += 1
        _emit("not ok %d - %s" % (_count, name))
    return bool(cond)


def is_(got, want, name):
    """Equality check that shows both sides when it fails."""
    if ok(got == want, name):
        return True
    diag("     got: %r" % (got,))
    diag("    want: %r" % (want,))
    return False


def skip(name, reason):
    """A check that could not run here; counts as passed, TAP-wise."""
    global _count
    _count += 1
    _emit("ok %d - %s # SKIP %s" % (_count, name, reason))


def skip_all(reason):
    """The whole file does not apply here (e.g. not root)."""
    _emit("ok 1 # SKIP %s" % reason)
    _emit("1..1")
    sys.exit(0)


def done():
    """Print the plan and exit: 1 if anything failed."""
    _emit("1..%d" % _count)
    sys.exit(1 if _failed else 0)


def _report_exception(what):
    ok(False, "%s ran to the end without an exception" % what)
    diag(traceback.format_exc().rstrip())


def run(tests, fixture=None):
    """Run test functions in order, then done().

    Without a fixture each function is called with no argument. With one
    (a context-manager factory, e.g. a @contextlib.contextmanager function
    starting a Fake and a Daemon), it is entered once and its value passed
    to every function; its exit always runs, so processes are stopped.
    """
    _install_signal_handlers()
    try:
        if fixture is None:
            _run_each(tests, ())
        else:
            try:
                with fixture() as fx:
                    _run_each(tests, (fx,))
            except Exception:
                _report_exception("fixture")
    finally:
        _cleanup()
    done()


def _run_each(tests, args):
    for fn in tests:
        diag("--- %s" % fn.__name__)
        try:
            fn(*args)
        except Exception:
            _report_exception(fn.__name__)


# ---------------------------------------------------------------------------
# Process bookkeeping: whatever we start is stopped at exit.

_live = []


def _cleanup():
    for obj in reversed(list(_live)):
        try:
            obj.stop()
        except Exception:
            diag("cleanup of %r failed:\n%s" % (obj, traceback.format_exc()))


def _install_signal_handlers():
    """The runner sends SIGTERM on timeout: exit through the cleanup."""
    def on_term(signum, _frame):
        diag("killed by signal %d; cleaning up" % signum)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)


atexit.register(_cleanup)


def wait_for(pred, timeout, interval=0.1):
    """Poll pred() until it returns something truthy or timeout passes.
    Returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def free_port():
    """A loopback port free right now (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listening(port):
    """True when some socket of this machine listens on TCP port (IPv4 or
    IPv6, any address), from /proc/net/tcp and tcp6; binds nothing."""
    want = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name, encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is fields[1], st (0A = LISTEN) fields[3]
            if len(fields) > 3 and fields[1].endswith(want) and \
                    fields[3] == "0A":
                return True
    return False


def wait_port_free(port, timeout):
    """Wait until nothing listens on port; True if it is free."""
    return wait_for(lambda: not tcp_listening(port), timeout, 0.1)


def fingerprint(secret):
    """What the fake writes in its log instead of a secret (same function
    as fakeprovider.fingerprint)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8", "surrogateescape")
    return "sha256:" + hashlib.sha256(secret).hexdigest()[:16]


def _http(host, port, method, path, body=None, headers=None, timeout=20):
    """One HTTP exchange; returns (status, headers, json_or_None, raw).

    If the server answers and closes before the whole body is sent (a 413
    for instance), the answer is still read.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, _parse_json(raw), raw
    finally:
        conn.close()


def _parse_json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# The fake providers


class Fake:
    """fakeprovider.py in its own temp dir: proxy, CA, control API, log."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cdfake-")
        # Workers read the CA after dropping to an unprivileged user.
        os.chmod(self.dir, 0o755)
        self.out = open(os.path.join(self.dir, "fake.out"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE_SCRIPT, "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT)
        _live.append(self)
        info = self._wait_ready(15)
        self.proxy_port = info["proxy_port"]
        self.control_port = info["control_port"]
        self.ca_file = info["ca_file"]
        self.proxy_url = "http://127.0.0.1:%d" % self.proxy_port

    def _wait_ready(self, timeout):
        path = os.path.join(self.dir, "fake.json")
        if not wait_for(lambda: os.path.exists(path) or
                        self.proc.poll() is not None, timeout):
            raise RuntimeError("fake provider not ready in %d s" % timeout)
        if self.proc.poll() is not None:
            raise RuntimeError("fake provider exited: %s" % self.output())
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def output(self):
        with open(os.path.join(self.dir, "fake.out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def control(self, method, path, body=None):
        """Call the control API; raises unless it answers 200."""
        data = json.dumps(body).encode() if body is not None else None
        status, _, parsed, raw = _http(
            "127.0.0.1", self.control_port, method, path, data,
            {"Content-Type": "application/json"} if data else {})
        if status != 200:
            raise RuntimeError("fake control %s %s: %d %r"
                               % (method, path, status, raw[:200]))
        return parsed

    def add_manus_key(self, key):
        self.control("POST", "/_fake/manus/keys", {"key": key})

    def revoke_manus_key(self, key):
        self.control("POST", "/_fake/manus/revoke", {"key": key})

    def add_github_pat(self, token, login, id, name):  # noqa: A002
        """Register a token that the fake GitHub accepts for that user;
        returns the /user document it will answer."""
        return self.control("POST", "/_fake/github/pat", {
            "token": token, "login": login, "id": id, "name": name})["user"]

    def revoke_github(self, token):
        """Forget a GitHub token (PAT or device-flow): checks get 401."""
        self.control("POST", "/_fake/github/revoke", {"token": token})

    def github_approve(self, login="octo-fake", user_code=None):
        """Approve the newest pending device code (or user_code) for login.
        Returns {"ok", "user_code", "user"}."""
        body = {"login": login}
        if user_code is not None:
            body["user_code"] = user_code
        return self.control("POST", "/_fake/github/approve", body)

    def github_deny(self, user_code=None):
        """Deny the newest pending device code (or user_code)."""
        return self.control("POST", "/_fake/github/deny",
                            {} if user_code is None else
                            {"user_code": user_code})

    def github_expire(self, user_code=None):
        """Expire the newest pending device code (or user_code)."""
        return self.control("POST", "/_fake/github/expire",
                            {} if user_code is None else
                            {"user_code": user_code})

    def github_config(self, **kw):
        """expires_in, interval, device_mode ("normal"|"404"),
        graphql_mode ("normal"|"401"), poll_error (None|"slow_down"|...).
        reset() restores the defaults (900, 1, normal, normal, None)."""
        return self.control("POST", "/_fake/github/config", kw)["config"]

    def github_state(self):
        """{"mode", "config", "codes": [...], "tokens": [...], "revoked"};
        device codes and tokens appear as fingerprints."""
        return self.control("GET", "/_fake/github/state")

    def google_deny(self):
        """The next Google consent is refused: its redirect carries
        error=access_denied and the state instead of a code."""
        return self.control("POST", "/_fake/google/deny", {})

    def google_config(self, **kw):
        """token_mode ("normal"|"400"|"hang"). reset() restores normal."""
        return self.control("POST", "/_fake/google/config", kw)["config"]

    def google_state(self):
        """{"mode", "config", "deny_pending", "codes", "tokens",
        "token_requests"}; codes and tokens appear as fingerprints."""
        return self.control("GET", "/_fake/google/state")

    def microsoft_deny(self):
        """As google_deny, for login.microsoftonline.com."""
        return self.control("POST", "/_fake/microsoft/deny", {})

    def microsoft_config(self, **kw):
        """token_mode ("normal"|"400"|"hang"), graph_mode
        ("normal"|"401"|"500"). reset() restores normal for both."""
        return self.control("POST", "/_fake/microsoft/config", kw)["config"]

    def microsoft_state(self):
        """As google_state, for the fake Microsoft."""
        return self.control("GET", "/_fake/microsoft/state")

    def add_vercel_pat(self, token, username, name=None, email=None):
        """Register a Vercel account token for username (name and email
        made up unless given; name may be None). Returns the "user" of
        the /v2/user answer it will get."""
        body = {"token": token, "username": username}
        if name is not None:
            body["name"] = name
        if email is not None:
            body["email"] = email
        return self.control("POST", "/_fake/vercel/pat", body)["user"]

    def revoke_vercel(self, token):
        """Forget a Vercel token (account token, OAuth access or refresh
        token): every later use gets 401 (or reject_status)."""
        self.control("POST", "/_fake/vercel/revoke", {"token": token})

    def vercel_config(self, **kw):
        """display_name (None|str: every account's name as answered),
        token_mode ("normal"|"400"|"500"), userinfo_mode ("normal"|"404"),
        register_secret (bool), reject_status (401|403), oauth_username
        (the person who consents). reset() restores the defaults (None,
        normal, normal, False, 401, "vercel-fake")."""
        return self.control("POST", "/_fake/vercel/config", kw)["config"]

    def vercel_deny(self, error_description=None):
        """The next consent at vercel.com is refused: its redirect carries
        error=access_denied, this error_description and the state."""
        return self.control("POST", "/_fake/vercel/deny",
                            {} if error_description is None else
                            {"error_description": error_description})

    def vercel_add_client(self, client_id, redirect_uris, client_secret=None):
        """A client the fake Vercel knows without registration (for a
        configured vercel_client_id)."""
        body = {"client_id": client_id, "redirect_uris": list(redirect_uris)}
        if client_secret is not None:
            body["client_secret"] = client_secret
        return self.control("POST", "/_fake/vercel/client", body)

    def vercel_state(self):
        """{"mode", "config", "registrations", "clients", "codes", "pkce":
        {"passed", "failed"}, "token_requests", "tokens", "refresh_tokens",
        "spent_refresh_tokens", "revocations", "deny_pending"}; codes,
        tokens, verifiers and secrets appear as fingerprints."""
        return self.control("GET", "/_fake/vercel/state")

    def vercel_authorize(self, authorize_url, timeout=10):
        """Play the person's browser at vercel.com: GET the daemon's
        authorize_url through the proxy, consent being immediate at the
        fake, and return the Location without following it: the callback
        URL (redirect_uri?code=..&state=.., or ?error=..) the browser would
        open next. Raises when the fake refuses the request (400/401)."""
        return self.follow_auth_url(authorize_url, timeout)

    def provider_request(self, url, method="GET", body=None, headers=None,
                         timeout=10):
        """One request to a fake provider's https URL through the proxy,
        TLS verified against the fake's CA, no redirect followed. Returns
        (status, headers with lower-case names, parsed JSON or None, raw
        body)."""
        u = urllib.parse.urlsplit(url)
        ctx = ssl.create_default_context(cafile=self.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", self.proxy_port,
                                           timeout=timeout, context=ctx)
        conn.set_tunnel(u.hostname, u.port or 443)
        try:
            path = (u.path or "/") + ("?" + u.query if u.query else "")
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, _parse_json(raw), raw
        finally:
            conn.close()

    def follow_auth_url(self, url, timeout=10):
        """Play the person's browser at the provider: GET an https URL
        through the fake's proxy (CONNECT, then TLS verified against the
        fake's CA for the URL's host) without following the redirect.
        Returns the Location, i.e. the URL the person would paste; raises
        when the answer is not a redirect."""
        u = urllib.parse.urlsplit(url)
        if u.scheme != "https" or not u.hostname:
            raise ValueError("not an https URL: %r" % (url,))
        ctx = ssl.create_default_context(cafile=self.ca_file)
        conn = http.client.HTTPSConnection("127.0.0.1", self.proxy_port,
                                           timeout=timeout, context=ctx)
        conn.set_tunnel(u.hostname, u.port or 443)
        try:
            path = (u.path or "/") + ("?" + u.query if u.query else "")
            conn.request("GET", path, headers={"Accept": "text/html"})
            resp = conn.getresponse()
            body = resp.read()
            location = resp.getheader("Location")
        finally:
            conn.close()
        if resp.status not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError("%s answered %d without a redirect: %r"
                               % (u.hostname, resp.status, body[:200]))
        return location

    def set_mode(self, provider, mode):
        self.control("POST", "/_fake/mode", {"provider": provider, "mode": mode})

    def fault(self, provider, path, mode, method=None, times=None,
              delay=None, **scope):
        """A fault on one route of a provider, unlike set_mode (every
        route): mode "500", "garbage" (200 text/html, not JSON),
        "truncated" (200 application/json cut short), "wrong_type" (the
        normal answer labelled text/html), "hang", "slow" (the normal
        answer after delay seconds, default 3); "normal" removes the
        path's faults. times: only the next that many requests (default:
        every one until removed or reset()). scope narrows it further
        (GitHub: user_code=, the token polls of one device flow). Returns
        the provider's faults."""
        body = {"provider": provider, "path": path, "mode": mode}
        for k, v in (("method", method), ("times", times), ("delay", delay)):
            if v is not None:
                body[k] = v
        body.update(scope)
        return self.control("POST", "/_fake/fault", body)["faults"]

    def faults(self, provider):
        """The faults still set on a provider, each with its "hits"."""
        return self.control("GET", "/_fake/state")[provider]["faults"]

    def reset(self):
        self.control("POST", "/_fake/reset")

    def log(self):
        """Every CONNECT and request so far (since the last reset)."""
        return self.control("GET", "/_fake/log")

    def requests(self, host=None, path=None):
        """The provider requests in the log, optionally filtered by host and
        by path without query."""
        return [e for e in self.log() if e.get("kind") == "request"
                and (host is None or e["host"] == host)
                and (path is None or e["path"].split("?")[0] == path)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        if self in _live:
            _live.remove(self)
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# The daemon

TITLE_PREFIX = "connectord: "


def daemon_binary():
    return os.environ.get("CONNECTORD", os.path.join(BUILD, "connectord"))


class Daemon:
    """The real connectord with a private workspace, started in the
    foreground (-d) with its log captured.

    Layout of the temp dir (mode 0755 so that dropped roles can traverse):
      connectord.conf, daemon.log, workspace/, home/, state/ (made by the
      daemon itself: only its parent exists beforehand).
    """

    def __init__(self, fake=None, overrides=None, owner=None, files=None,
                 start=True, binary=None, env=None):
        """overrides: config keys to add or replace (None removes one).
        owner: user name that gets workspace and home (tests run as root).
        files: {name: text} written into the workspace before start.
        env: variables added to (or, with None, removed from) the broker's
        environment, e.g. a hostile one its children must not inherit."""
        self.binary = binary or daemon_binary()
        self.env = env or {}
        self.dir = tempfile.mkdtemp(prefix="connectord-")
        os.chmod(self.dir, 0o755)
        self.workspace = os.path.join(self.dir, "workspace")
        self.home = os.path.join(self.dir, "home")
        self.state_dir = os.path.join(self.dir, "state")
        self.conf_path = os.path.join(self.dir, "connectord.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.port = free_port()
        self.owner = owner
        self.proc = None
        self.exit_code = None
        self.token = None
        self.transcript = []    # (method, path, status, raw body) of api()
        self.seen_children = set()
        for d in (self.workspace, self.home):
            os.mkdir(d, 0o755)
        for name, text in (files or {}).items():
            self.write_workspace_file(name, text)
        if owner:
            self._chown_tree(owner)
        self._write_config(fake, overrides or {})
        if start:
            self.start()

    def __repr__(self):
        return "Daemon(%s)" % self.dir

    # -- setup

    def config(self, fake, overrides):
        """The config as an ordered dict of key -> value."""
        conf = {
            "listen": "127.0.0.1:%d" % self.port,
            "workspace": self.workspace,
            "state_dir": self.state_dir,
            "home": self.home,
        }
        if fake is not None:
            conf["https_proxy"] = fake.proxy_url
            conf["ca_file"] = fake.ca_file
        conf.update(overrides)
        return {k: v for k, v in conf.items() if v is not None}

    def _write_config(self, fake, overrides):
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write("# written by tests/lib/cdtest.py\n")
            for k, v in self.config(fake, overrides).items():
                f.write("%s = %s\n" % (k, v))

    def write_workspace_file(self, name, text, mode=0o600):
        path = os.path.join(self.workspace, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, mode)
        if self.owner:
            pw = pwd.getpwnam(self.owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def _chown_tree(self, user):
        pw = pwd.getpwnam(user)
        for top in (self.workspace, self.home):
            for root, dirs, files in os.walk(top):
                for name in [root] + [os.path.join(root, n)
                                      for n in dirs + files]:
                    os.chown(name, pw.pw_uid, pw.pw_gid)

    def start(self, timeout=15):
        """Start the broker and wait until /healthz says all roles are up."""
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("no connectord binary at %s (build it, or set "
                               "CONNECTORD)" % self.binary)
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                    "no_proxy")}
        env.update(self.env)
        env = {k: v for k, v in env.items() if v is not None}
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-d", "-f", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=self.logf,
            stderr=subprocess.STDOUT, env=env)
        _live.append(self)
        if not self.wait_healthy(timeout):
            raise RuntimeError("connectord not healthy within %d s; log:\n%s"
                               % (timeout, self.log_text()[-4000:]))
        self.token = self.read_api_token()

    def read_api_token(self):
        """The API token, or None when there is none (api_auth = none)."""
        try:
            with open(os.path.join(self.state_dir, "api-token"),
                      encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def healthy(self):
        """True when GET /healthz answers 200 {"ok": true}."""
        try:
            status, _, body, _ = _http("127.0.0.1", self.port, "GET",
                                       "/healthz", timeout=2)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200 and isinstance(body, dict) and \
            body.get("ok") is True

    def wait_healthy(self, timeout=10):
        def check():
            if self.proc.poll() is not None:
                raise RuntimeError("connectord exited with %s; log:\n%s"
                                   % (self.proc.returncode,
                                      self.log_text()[-4000:]))
            return self.healthy()
        return wait_for(check, timeout, 0.1)

    # -- the API

    def api(self, method, path, body=None, token=True, raw=None,
            headers=None, timeout=20):
        """One API request. token: True (the daemon's), False (none), or a
        string to send as the bearer token. body is sent as JSON; raw as
        given bytes. Returns (status, headers, parsed JSON or None, raw)."""
        hdrs = {}
        if token is True:
            hdrs["Authorization"] = "Bearer " + self.token
        elif isinstance(token, str):
            hdrs["Authorization"] = "Bearer " + token
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        result = _http("127.0.0.1", self.port, method, path, data, hdrs,
                       timeout)
        self.transcript.append((method, path, result[0], result[3]))
        return result

    # -- processes

    def pids(self):
        """{role: [pid, ...]} for the broker and its live descendants whose
        title starts with "connectord: " ("http", "vault", "worker manus").
        The broker is the process this harness started."""
        roles = {}
        if self.proc is None or self.proc.poll() is not None:
            return roles
        roles["broker"] = [self.proc.pid]
        for pid in _descendants(self.proc.pid):
            title = _title(pid)
            if title and title.startswith(TITLE_PREFIX):
                role = title[len(TITLE_PREFIX):].strip()
                roles.setdefault(role, []).append(pid)
                self.seen_children.add(pid)
        return roles

    def pid_of(self, role):
        """The single pid of a role, or None."""
        found = self.pids().get(role, [])
        return found[0] if len(found) == 1 else None

    def wait_role(self, role, not_pid=None, timeout=10):
        """Wait for a process of role other than not_pid (a restarted role,
        or a worker appearing); returns its pid or None."""
        def check():
            for pid in self.pids().get(role, []):
                if pid != not_pid:
                    return pid
            return None
        return wait_for(check, timeout)

    def stop(self):
        """SIGTERM, then up to 10 s. Returns the exit status (negative: the
        signal). Having to kill it, or children left behind, is reported as
        a failed check. Safe to call twice."""
        if self in _live:
            _live.remove(self)
        if self.proc is not None and self.exit_code is None:
            self.exit_code = self._terminate()
            self.logf.close()
            if SANITIZED:
                self._check_sanitizers()
            if _failed:
                diag("daemon log (last 40 lines), %s:" % self.log_path)
                diag("\n".join(self.log_text().splitlines()[-40:]))
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.exit_code

    def _check_sanitizers(self):
        """In a sanitized run (CD_SANITIZED=1) every report of
        AddressSanitizer or UndefinedBehaviorSanitizer in the daemon's log
        (all roles write there) is a failure."""
        text = self.log_text()
        reports = [line for line in text.splitlines()
                   if "ERROR: AddressSanitizer" in line
                   or "runtime error:" in line
                   or "ERROR: LeakSanitizer" in line]
        if not ok(not reports, "no sanitizer report in the daemon log"):
            diag("\n".join(reports[:10]))

    def _terminate(self):
        children = set(_descendants(self.proc.pid))
        children |= {p for p in self.seen_children
                     if (_title(p) or "").startswith(TITLE_PREFIX)}
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                ok(False, "connectord exits within 10 s of SIGTERM")
        self._check_no_orphans(children)
        return self.proc.returncode

    def _check_no_orphans(self, pids):
        """Children of the broker must be gone soon after it has exited."""
        if wait_for(lambda: not [p for p in pids if alive(p)], 5):
            return
        left = [(p, _title(p)) for p in pids if alive(p)]
        for p, _ in left:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        ok(False, "no connectord process outlives the broker")
        diag("left behind (now killed): %r" % left)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- files

    def log_text(self):
        """The daemon's stderr/stdout so far."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def tokens_path(self):
        return os.path.join(self.workspace, "mcp-tokens.json")

    def tokens_bytes(self):
        """mcp-tokens.json as bytes, or None when it does not exist."""
        try:
            with open(self.tokens_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_tokens(self):
        """mcp-tokens.json parsed, or None when it does not exist. A file
        that does not parse raises (that is a test failure)."""
        data = self.tokens_bytes()
        return None if data is None else json.loads(data)

    def state_files_text(self):
        """Every file under state_dir, concatenated (for secret scans)."""
        chunks = []
        for root, _, files in os.walk(self.state_dir):
            for name in files:
                path = os.path.join(root, name)
                if not os.path.isfile(path):
                    continue    # sockets, fifos
                with open(path, "rb") as f:
                    chunks.append(f.read().decode("utf-8", "replace"))
        return "\n".join(chunks)


def _proc_read(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name, which may itself
    hold spaces and parentheses: [state, ppid, ...]."""
    data = _proc_read(pid, "stat")
    if data is None:
        return None
    return data[data.rindex(b")") + 2:].split()


def _state(pid):
    f = _stat_fields(pid)
    return f[0].decode() if f else None


# A job's private directory (HOME and TMPDIR of its worker and tool).
PRIVDIR = re.compile(r"^(/tmp/connectord-job[^/]+)")


def argv_of(pid):
    """The argument vector of pid, [] when it is gone."""
    data = _proc_read(pid, "cmdline")
    return [a.decode("utf-8", "replace") for a in (data or b"").split(b"\0")
            if a]


def environ_of(pid):
    """The environment pid started with, as a dict."""
    data = _proc_read(pid, "environ")
    out = {}
    for item in (data or b"").split(b"\0"):
        k, sep, v = item.decode("utf-8", "replace").partition("=")
        if sep:
            out[k] = v
    return out


def starttime(pid):
    """Field 22 of /proc/<pid>/stat: tells a pid from its reuse."""
    f = _stat_fields(pid)
    return f[19].decode() if f and len(f) > 19 else None


def privdir_of(path):
    """The job directory a path lies in, or None."""
    m = PRIVDIR.match(path or "")
    return m.group(1) if m else None


def _descendants(root):
    """Every live process below root, by walking ppid links in /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f:
                children.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _title(pid):
    """The process title from /proc/<pid>/cmdline (NULs as spaces), or None
    if the process is gone or has none (a zombie, a kernel thread)."""
    data = _proc_read(pid, "cmdline")
    title = " ".join(p.decode("utf-8", "replace")
                     for p in (data or b"").split(b"\0") if p)
    return title or None


def proc_status(pid):
    """/proc/<pid>/status as a dict of field -> value string."""
    data = _proc_read(pid, "status")
    if data is None:
        return None
    out = {}
    for line in data.decode().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def alive(pid):
    """True while pid exists and is not a zombie."""
    return _state(pid) not in (None, "Z")


# ---------------------------------------------------------------------------
# A hostile peer's tools

MSG_MAGIC_VERSION = 0x43440001
MSG_HDR = struct.Struct("=IHHII")   # magic, type, flags, len, job (msg.h)


def message(mtype, payload=b"", job=0, flags=0, length=None):
    """One IPC frame as proto/msg.h lays it out. length overrides the
    header's len field to build a lying frame."""
    n = len(payload) if length is None else length
    return MSG_HDR.pack(MSG_MAGIC_VERSION, mtype, flags, n, job) + payload


def put_u32(v):
    return struct.pack("=I", v)


def put_str(s):
    """A string field as a u32 length then the bytes (the assumed encoding
    of msg_put_str; a hostile peer's frames need not be well formed)."""
    b = s.encode() if isinstance(s, str) else s
    return put_u32(len(b)) + b


def _socket_fds(pid):
    """{socket inode: fd} for every socket open in pid."""
    out = {}
    base = "/proc/%d/fd" % pid
    for fd in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            out[int(m.group(1))] = int(fd)
    return out


_SS_UNIX = re.compile(r"^u_\w+\s+\S+\s+\d+\s+\d+\s+\S+\s+(\d+)\s+\S+\s+(\d+)")


def _unix_peers():
    """{inode: peer inode} of every connected unix socket, from `ss -xan`
    (the kernel's sock_diag peer information)."""
    out = subprocess.run(["ss", "-xan"], capture_output=True, text=True,
                         check=True).stdout
    peers = {}
    for line in out.splitlines():
        m = _SS_UNIX.match(line)
        if m and m.group(2) != "0":
            peers[int(m.group(1))] = int(m.group(2))
    return peers


def channels_between(pid_a, pid_b):
    """Sorted fds of pid_a whose unix socket's peer is open in pid_b."""
    a, b = _socket_fds(pid_a), _socket_fds(pid_b)
    peers = _unix_peers()
    return sorted(fd for ino, fd in a.items() if peers.get(ino) in b)


def channel_between(pid_a, pid_b):
    """The one fd of pid_a connected to pid_b; raises if none or several."""
    fds = channels_between(pid_a, pid_b)
    if len(fds) != 1:
        raise RuntimeError("expected one channel from %d to %d, found %r"
                           % (pid_a, pid_b, fds))
    return fds[0]


_SYS_pidfd_getfd = 438    # the same number on every Linux architecture


def steal_fd(pid, fd):
    """A copy of another process's descriptor (pidfd_getfd(2)); root may
    take one even from a non-dumpable process. Returns our new fd."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pidfd = os.pidfd_open(pid)
    try:
        r = libc.syscall(ctypes.c_long(_SYS_pidfd_getfd), ctypes.c_int(pidfd),
                         ctypes.c_int(fd), ctypes.c_uint(0))
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, "pidfd_getfd(%d, %d): %s"
                          % (pid, fd, os.strerror(e)))
        return int(r)
    finally:
        os.close(pidfd)


def send_as(pid, fd, frame):
    """Send one frame on pid's socket fd, as if pid had sent it."""
    with socket.socket(fileno=steal_fd(pid, fd)) as s:
        s.send(frame)


# ---------------------------------------------------------------------------
# Checks shared by many tests


def scrub_check(text, secrets, name):
    """ok() that none of the secrets occurs in text. A failure names the
    secret by its fingerprint, never by its value."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    leaked = [fingerprint(s) for s in secrets if s and s in text]
    if not ok(not leaked, name):
        diag("leaked secrets (fingerprints): %s" % ", ".join(leaked))
    return not leaked


def is_error_json(result, status, name):
    """The API's error shape: the status, Content-Type application/json and
    a body {"error": "<non-empty sentence>"}."""
    got, hdrs, body, raw = result
    good = (got == status
            and hdrs.get("content-type", "").split(";")[0].strip()
            == "application/json"
            and isinstance(body, dict)
            and isinstance(body.get("error"), str) and body["error"].strip())
    if not ok(good, name):
        diag("status %r (want %r), content-type %r, body %r"
             % (got, status, hdrs.get("content-type"), raw[:300]))
    return good


def answered_ok(result, name, **fields):
    """200 with {"ok": true} and any given fields (extra fields allowed)."""
    status, _, body, raw = result
    want = dict(ok=True, **fields)
    good = status == 200 and isinstance(body, dict) and all(
        body.get(k) == v for k, v in want.items())
    if not ok(good, name):
        diag("got %r %r, want 200 with %r" % (status, raw[:200], want))
    return good


def user_ids(name):
    """(uid, gid) of a user, or None when it does not exist."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid
