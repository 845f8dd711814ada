#!/usr/bin/python3
"""The fake GitHub (tests/fakes/fakeprovider.py) behaves as the real gh
2.23 expects (reference/gh.md sections 2, 5-7, 9): gh's own device-flow
login, run as the worker runs it, succeeds, fails and falls back exactly as
documented. No daemon here: when this suite fails, the daemon's GitHub
tests cannot be trusted.
"""

import contextlib
import http.client
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

GH = "/usr/bin/gh"
ARGV = [GH, "auth", "login", "--hostname", "github.com", "--git-protocol",
        "https", "--web"]
CODE_LINE = re.compile(r"one-time code: ([A-Z0-9]{4}-[A-Z0-9]{4})")
URL_LINE = re.compile(r"Open this URL to continue in your web browser: (\S+)")
FAIL = "failed to authenticate via web browser: "


class Login:
    """One `gh auth login` in a private config directory, as the worker
    runs it (gh.md section 10), with stderr collected by a thread."""

    def __init__(self, fake):
        self.dir = tempfile.mkdtemp(prefix="cdghfake-")
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.dir,
                    "GH_CONFIG_DIR": os.path.join(self.dir, "gh"),
                    "GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1",
                    "NO_COLOR": "1", "HTTPS_PROXY": fake.proxy_url,
                    "SSL_CERT_FILE": fake.ca_file}
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(ARGV, env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.err)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def code(self, timeout=5):
        """The user code once gh printed both lines, else None."""
        def found():
            text = self.stderr()
            m = CODE_LINE.search(text)
            return m.group(1) if m and URL_LINE.search(text) else None
        return cdtest.wait_for(lambda: found() or self.proc.poll() is not None
                               and found(), timeout, 0.05)

    def wait(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def token(self):
        r = subprocess.run([GH, "auth", "token", "--hostname", "github.com"],
                           env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
        return r.returncode, r.stdout.strip(), r.stderr.strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fixture():
    if not os.access(GH, os.X_OK):
        cdtest.skip_all("no gh at %s" % GH)
    with cdtest.Fake() as fake:
        yield fake


@contextlib.contextmanager
def login(fake):
    g = Login(fake)
    try:
        yield g
    finally:
        g.close()


def fake_code(fake, user_code):
    return next((c for c in fake.github_state()["codes"]
                 if c["user_code"] == user_code), None)


def last_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def approve_late(fake):
    """Code printed at once; pending polls; approval; exit 0; the token
    from gh auth token is the one the fake issued."""
    fake.reset()
    with login(fake) as g:
        t0 = time.monotonic()
        code = g.code()
        if not ok(code, "gh prints the code and URL lines (%.2f s)"
                  % (time.monotonic() - t0)):
            diag(g.stderr())
            return
        is_(URL_LINE.search(g.stderr()).group(1),
            "https://github.com/login/device",
            "the URL line is the fake's verification_uri")
        c = fake_code(fake, code)
        ok(c and c["status"] == "pending" and c["client_id"] ==
           "178c6fc778ccc68e1d6a" and c["scope"] == "repo read:org gist",
           "the fake issued that code to gh's client id and scopes")
        time.sleep(2.5)
        ok(fake_code(fake, code)["polls"] >= 2,
           "gh polls every second (interval 1) while pending")
        fake.github_approve(login="octo-fake")
        rc = g.wait()
        text = g.stderr()
        if not is_(rc, 0, "gh exits 0 after approval"):
            diag(text)
        ok("✓ Logged in as octo-fake" in text, "gh: Logged in as octo-fake")
        ok(g.proc.stdout.read() == b"", "gh's stdout stays empty")
        hosts = os.path.join(g.env["GH_CONFIG_DIR"], "hosts.yml")
        is_(oct(stat.S_IMODE(os.stat(hosts).st_mode)) if
            os.path.exists(hosts) else None, oct(0o600),
            "hosts.yml written 0600 in GH_CONFIG_DIR")
        rc, token, err = g.token()
        is_(rc, 0, "gh auth token exits 0")
        ok(re.fullmatch(r"gho_[A-Za-z0-9]{36}", token),
           "the token looks like gho_<36>")
        is_(fake_code(fake, code)["token"], cdtest.fingerprint(token),
            "gh auth token prints the token the fake issued")
        seen = [(r["host"], r["method"], r["path"]) for r in fake.requests()]
        is_([seen[0], seen[-1]] if seen else None,
            [("github.com", "POST", "/login/device/code"),
             ("api.github.com", "POST", "/graphql")],
            "gh asked for a code first and ran the viewer query last")
        ok(all(x == ("github.com", "POST", "/login/oauth/access_token")
               for x in seen[1:-1]), "and only polled in between")
        gql = fake.requests("api.github.com", "/graphql")
        ok(gql and gql[0]["headers"].get("authorization") ==
           "token " + cdtest.fingerprint(token),
           "the viewer query carries Authorization: token <issued token>")


def ended(fake, what, action, suffix, **config):
    fake.reset()
    if config:
        fake.github_config(**config)
    with login(fake) as g:
        code = g.code()
        if not ok(code, "%s: gh printed a code" % what):
            diag(g.stderr())
            return
        action(user_code=code)
        rc = g.wait()
        line = last_line(g.stderr())
        is_(rc, 1, "%s: gh exits 1" % what)
        ok(line.startswith(FAIL) and line.endswith(suffix),
           "%s: stderr ends %r (%r)" % (what, suffix, line))
        is_(g.token()[0], 1, "%s: no token stored" % what)


def deny(fake):
    ended(fake, "deny", fake.github_deny, "(access_denied)")


def expire(fake):
    ended(fake, "expire", fake.github_expire, "(expired_token)")


def slow_down_is_fatal(fake):
    """gh 2.23 treats slow_down as fatal (gh.md section 5)."""
    ended(fake, "slow_down", lambda user_code: None, "(slow_down)",
          poll_error="slow_down")


def natural_expiry(fake):
    """expires_in elapses: gh gives up by itself (context deadline)."""
    fake.reset()
    fake.github_config(expires_in=2)
    with login(fake) as g:
        ok(g.code(), "short expiry: gh printed a code")
        rc = g.wait(10)
        is_(rc, 1, "short expiry: gh exits 1 by itself")
        line = last_line(g.stderr())
        ok(line.startswith(FAIL), "short expiry: %r" % line)


def server_error(fake):
    fake.reset()
    fake.set_mode("github", "500")
    with login(fake) as g:
        rc = g.wait()
        is_(rc, 1, "device code 500: gh exits 1")
        is_(last_line(g.stderr()), FAIL + "HTTP 500",
            "device code 500: 'HTTP 500'")
        ok(not CODE_LINE.search(g.stderr()), "device code 500: no code line")


def browser_fallback(fake):
    """404 on the device-code endpoint: gh starts a browser flow with no
    code line and waits forever (the worker must kill it)."""
    fake.reset()
    fake.github_config(device_mode="404")
    with login(fake) as g:
        cdtest.wait_for(lambda: URL_LINE.search(g.stderr()), 5)
        time.sleep(1)
        text = g.stderr()
        m = URL_LINE.search(text)
        ok(m and m.group(1).startswith(
            "https://github.com/login/oauth/authorize?client_id="
            "178c6fc778ccc68e1d6a&redirect_uri=http%3A%2F%2F127.0.0.1"),
           "fallback: the authorize URL line, pointing at a local port")
        ok(not CODE_LINE.search(text), "fallback: no code line")
        ok(g.proc.poll() is None, "fallback: gh is still waiting")


def graphql_401_loses_token(fake):
    """A failing viewer query after the grant: exit 1, nothing saved."""
    fake.reset()
    fake.github_config(graphql_mode="401")
    with login(fake) as g:
        ok(g.code(), "graphql 401: gh printed a code")
        fake.github_approve()
        is_(g.wait(), 1, "graphql 401: gh exits 1")
        ok("non-200 OK status code: 401" in last_line(g.stderr()),
           "graphql 401: %r" % last_line(g.stderr()))
        is_(g.token()[0], 1, "graphql 401: no token stored")


def route_faults(fake):
    """Faults on one route, as gh meets them: HTML at the device-code
    endpoint makes gh fall back to its endless browser login; cut-off JSON
    fails it at once; a hanging device-code request leaves it silent; a
    poll fault scoped to one user code fails that login only."""
    fake.reset()
    fake.fault("github", "/login/device/code", "garbage", times=1)
    with login(fake) as g:
        cdtest.wait_for(lambda: URL_LINE.search(g.stderr()), 5)
        text = g.stderr()
        ok(URL_LINE.search(text) and not CODE_LINE.search(text) and
           g.proc.poll() is None, "device code garbage: a URL line, no "
           "code line, gh still waiting (the browser fallback)")
    fake.fault("github", "/login/device/code", "truncated", times=1)
    with login(fake) as g:
        is_((g.wait(), last_line(g.stderr())), (1, FAIL + "unexpected EOF"),
            "device code truncated: exit 1, 'unexpected EOF'")
    fake.fault("github", "/login/device/code", "hang", times=1)
    with login(fake) as g:
        time.sleep(1.5)
        ok(g.proc.poll() is None and not g.stderr().strip(),
           "device code hangs: gh prints nothing and waits")
    with login(fake) as a, login(fake) as b:
        ca, cb = a.code(), b.code()
        if not ok(ca and cb, "two logins printed codes"):
            return
        fake.fault("github", "/login/oauth/access_token", "500",
                   user_code=ca)
        is_((a.wait(), last_line(a.stderr())), (1, FAIL + "HTTP 500"),
            "a poll fault scoped to one user code: that gh exits 'HTTP 500'")
        ok(b.proc.poll() is None, "the other login is still polling")
        fake.github_approve(user_code=cb)
        is_(b.wait(), 0, "and is approved")
    ok([e for e in fake.requests("github.com", "/login/oauth/access_token")
        if e.get("fault") == "500"], "the log names the polls that got it")


def tls_get(fake, host, method, path, body=None, headers=None):
    """One request through the fake's proxy, trusting only its CA."""
    ctx = ssl.create_default_context(cafile=fake.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", fake.proxy_port,
                                       context=ctx, timeout=10)
    conn.set_tunnel(host, 443)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def rest_and_control(fake):
    """JSON when asked, /user for PATs, revocation, wrong hosts, control
    errors (the parts gh itself does not exercise)."""
    fake.reset()
    form = "client_id=178c6fc778ccc68e1d6a&scope=repo+read%3Aorg+gist"
    st, h, raw = tls_get(fake, "github.com", "POST", "/login/device/code",
                         form, {"Accept": "application/json", "Content-Type":
                                "application/x-www-form-urlencoded"})
    doc = json.loads(raw) if st == 200 else {}
    ok(h.get("content-type", "").startswith("application/json")
       and re.fullmatch(r"[0-9a-f]{40}", doc.get("device_code", ""))
       and re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", doc.get("user_code", ""))
       and doc.get("verification_uri") == "https://github.com/login/device"
       and doc.get("expires_in") == 900 and doc.get("interval") == 1,
       "device code as JSON with Accept: application/json")
    st, h, raw = tls_get(fake, "github.com", "POST",
                         "/login/oauth/access_token",
                         "client_id=178c6fc778ccc68e1d6a&device_code=00&"
                         "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-"
                         "type%3Adevice_code")
    ok(st == 200 and h.get("content-type", "").startswith(
        "application/x-www-form-urlencoded") and
       b"error=incorrect_device_code" in raw,
       "unknown device code: form-encoded incorrect_device_code")
    user = fake.add_github_pat("ghp_faketest", "pat-user", 77, "Pat User")
    hdrs = {"Authorization": "Bearer ghp_faketest",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28"}
    st, h, raw = tls_get(fake, "api.github.com", "GET", "/user", None, hdrs)
    ok(st == 200 and json.loads(raw) == user and
       h.get("x-oauth-scopes") == "repo, read:org, gist",
       "GET /user with a PAT: the user and X-OAuth-Scopes")
    ok({"login", "id", "name", "avatar_url"} <= set(user) and
       user["id"] == 77, "the user has login, id, name, avatar_url")
    st, _, _ = tls_get(fake, "api.github.com", "GET", "/user", None,
                       {"Authorization": "token ghp_faketest"})
    is_(st, 200, "'token' scheme accepted too")
    r = fake.requests("api.github.com", "/user")[0]["headers"]
    is_((r.get("authorization"), r.get("accept"),
         r.get("x-github-api-version")),
        ("Bearer " + cdtest.fingerprint("ghp_faketest"),
         "application/vnd.github+json", "2022-11-28"),
        "the log keeps Accept and X-GitHub-Api-Version, hashes the token")
    st, _, _ = tls_get(fake, "github.com", "GET", "/user", None, hdrs)
    is_(st, 404, "GET /user on github.com (wrong host): 404")
    fake.revoke_github("ghp_faketest")
    st, _, raw = tls_get(fake, "api.github.com", "GET", "/user", None, hdrs)
    ok(st == 401 and json.loads(raw).get("message") == "Bad credentials",
       "revoked PAT: 401 Bad credentials")
    with open(os.path.join(fake.dir, "fake.log"), "rb") as f:
        ok(b"ghp_faketest" not in f.read(), "no token in the fake's log")
    for path, body in (("/_fake/github/approve", {"user_code": "NONE-0000"}),
                       ("/_fake/github/config", {"device_mode": "nope"}),
                       ("/_fake/github/pat", {"login": "x"})):
        try:
            fake.control("POST", path, body)
            ok(False, "control %s %r is refused" % (path, body))
        except RuntimeError:
            ok(True, "control %s %r is refused" % (path, body))


if __name__ == "__main__":
    cdtest.run([approve_late, deny, expire, slow_down_is_fatal,
                natural_expiry, server_error, browser_fallback,
                graphql_401_loses_token, route_faults, rest_and_control],
               fixture=fixture)
