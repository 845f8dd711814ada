#!/usr/bin/python3
"""The fake Google and Microsoft (tests/fakes/fakeprovider.py) behave as the
real rclone 1.60 expects (reference/rclone.md sections 2, 5, 10): rclone's
own `rclone authorize drive|onedrive`, run as the worker runs it (private
HOME, HTTPS_PROXY to the fake, its CA by --ca-cert and SSL_CERT_FILE),
completes, fails and reports exactly as documented. No daemon here: when
this suite fails, test_rclone_flow.py cannot be trusted.

Port 53682 is global to the machine: every rclone here waits for it to be
free, and only one runs at a time.
"""

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

RCLONE = "/usr/bin/rclone"
PORT = 53682
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:53682/auth\?state=[A-Za-z0-9_-]+")
BACKENDS = {
    "drive": {"provider": "google",
              "auth": "https://accounts.google.com/o/oauth2/auth?",
              "redirect": "http://127.0.0.1:53682/",
              "token_host": "oauth2.googleapis.com", "token_path": "/token",
              "auth_style": "form"},
    "onedrive": {"provider": "microsoft",
                 "auth": "https://login.microsoftonline.com/common/oauth2/"
                         "v2.0/authorize?",
                 "redirect": "http://localhost:53682/",
                 "token_host": "login.microsoftonline.com",
                 "token_path": "/common/oauth2/v2.0/token",
                 "auth_style": "basic"},
}


class Authorize:
    """One `rclone authorize <backend> --auth-no-open-browser
    --config=/dev/null --ca-cert <ca>` as the worker runs it."""

    def __init__(self, fake, backend):
        if not cdtest.wait_port_free(PORT, 30):
            raise RuntimeError("port %d stays busy" % PORT)
        self.dir = tempfile.mkdtemp(prefix="cdrcfake-")
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.dir,
                    "HTTPS_PROXY": fake.proxy_url,
                    "SSL_CERT_FILE": fake.ca_file}
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [RCLONE, "authorize", backend, "--auth-no-open-browser",
             "--config=/dev/null", "--ca-cert", fake.ca_file],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.err)
        self.out = None

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def local_url(self, timeout=10):
        def found():
            m = LOCAL_URL.search(self.stderr())
            return m.group(0) if m else None
        return cdtest.wait_for(lambda: found() or (self.proc.poll() is not None
                                                   and found()), timeout, 0.05)

    def wait(self, timeout=20):
        """rclone's exit status (None on timeout); stdout kept in out."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.out = out.decode("utf-8", "replace")
        return self.proc.returncode

    def token(self):
        """The token JSON rclone printed between its paste markers."""
        for line in (self.out or "").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    return json.loads(line)
        return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def local_get(path_query, timeout=10):
    """GET on rclone's callback server: (status, Location, body) or
    (None, None, error) when rclone closed without answering."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    try:
        conn.request("GET", path_query)
        r = conn.getresponse()
        return r.status, r.getheader("Location"), r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, None, str(e).encode()
    finally:
        conn.close()


def provider_url(a):
    """rclone's local URL resolved to the provider's (the 307 Location)."""
    local = a.local_url()
    if not ok(local, "rclone prints its local /auth?state= URL"):
        diag(a.stderr())
        return None
    status, location, _ = local_get(local[len("http://127.0.0.1:53682"):])
    if not is_(status, 307, "the local URL answers 307"):
        return None
    return location


def forward(pasted):
    """Play the daemon: send the pasted URL's query to rclone's /."""
    return local_get("/?" + urllib.parse.urlsplit(pasted).query)


def https(fake, host, method, path, body=None, headers=None, timeout=10):
    """One request to a fake provider through the proxy, TLS verified."""
    ctx = ssl.create_default_context(cafile=fake.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", fake.proxy_port,
                                       timeout=timeout, context=ctx)
    conn.set_tunnel(host, 443)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return r.status, r.getheader("Location"), parsed
    finally:
        conn.close()


def state(fake, backend):
    return fake.google_state() if backend == "drive" else \
        fake.microsoft_state()


@contextlib.contextmanager
def fixture():
    if not os.access(RCLONE, os.X_OK):
        cdtest.skip_all("no rclone at %s" % RCLONE)
    with cdtest.Fake() as fake:
        yield fake


@contextlib.contextmanager
def authorize(fake, backend):
    a = Authorize(fake, backend)
    try:
        yield a
    finally:
        a.close()


# ---------------------------------------------------------------------------


def completes(fake, backend):
    """The whole flow: local URL, provider URL, the fake's redirect,
    forwarded to rclone, exit 0 with a token the fake issued."""
    b = BACKENDS[backend]
    fake.reset()
    with authorize(fake, backend) as a:
        url = provider_url(a)
        if not ok(url and url.startswith(b["auth"]),
                  "%s: the provider URL is rclone's compiled-in one (%s)"
                  % (backend, (url or "")[:60])):
            return None
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        pasted = fake.follow_auth_url(url)
        pq = urllib.parse.parse_qs(urllib.parse.urlsplit(pasted).query)
        ok(pasted.startswith(b["redirect"] + "?") and
           pq.get("state") == q.get("state") and pq.get("code"),
           "%s: the fake redirects to %s with the state and a code"
           % (backend, b["redirect"]))
        status, _, body = forward(pasted)
        # rclone hands the code to its main goroutine and may shut its
        # server down before the page is written (seen under ASan load):
        # the worker ignores this answer for that reason, and rclone's
        # exit status, checked next, is what counts.
        ok(status in (200, None), "%s: rclone's callback answers 200 or "
           "closes once it has the code (%r)" % (backend, status))
        rc = a.wait()
        if not is_(rc, 0, "%s: rclone authorize exits 0" % backend):
            diag(a.stderr())
            return None
        token = a.token()
        ok(isinstance(token, dict) and token.get("token_type") == "Bearer"
           and token.get("refresh_token") and token.get("expiry"),
           "%s: rclone prints the token JSON (access, refresh, expiry)"
           % backend)
        st = state(fake, backend)
        ok(any(t["access_token"] == cdtest.fingerprint(
            (token or {}).get("access_token", "")) for t in st["tokens"]),
           "%s: it is the access token the fake issued" % backend)
        is_([c["status"] for c in st["codes"]], ["redeemed"],
            "%s: the code was redeemed once" % backend)
        tr = st["token_requests"]
        ok(len(tr) == 1 and tr[0]["auth_style"] == b["auth_style"] and
           tr[0]["client_secret"] and tr[0]["redirect_uri"] == b["redirect"],
           "%s: one token request, client credentials in the %s, "
           "redirect_uri %s" % (backend, b["auth_style"], b["redirect"]))
        conns = [e["target"] for e in fake.log() if e.get("kind") ==
                 "connect"]
        ok(b["token_host"] + ":443" in conns, "%s: rclone reached %s "
           "through the proxy" % (backend, b["token_host"]))
        return token


def drive_completes(fake):
    completes(fake, "drive")


def onedrive_completes(fake):
    """And Graph answers the drive for that token, 401 for another."""
    token = completes(fake, "onedrive")
    if not token:
        return
    auth = {"Authorization": "Bearer " + token["access_token"]}
    status, _, body = https(fake, "graph.microsoft.com", "GET",
                            "/v1.0/me/drive", headers=auth)
    is_((status, (body or {}).get("id"), (body or {}).get("driveType")),
        (200, "b!fakeDriveId123", "personal"),
        "Graph /v1.0/me/drive: the fake drive for the issued token")
    status, _, body = https(fake, "graph.microsoft.com", "GET",
                            "/v1.0/me/drives", headers=auth)
    is_((status, [d.get("id") for d in (body or {}).get("value", [])]),
        (200, ["b!fakeDriveId123"]), "Graph /v1.0/me/drives lists it")
    status, _, body = https(fake, "graph.microsoft.com", "GET",
                            "/v1.0/drives/b!fakeDriveId123/root",
                            headers=auth)
    is_((status, ((body or {}).get("parentReference") or {}).get("driveId")),
        (200, "b!fakeDriveId123"), "Graph /v1.0/drives/{id}/root")
    status, _, _ = https(fake, "graph.microsoft.com", "GET",
                         "/v1.0/me/drive",
                         headers={"Authorization": "Bearer not-issued"})
    is_(status, 401, "Graph: a token the fake never issued gets 401")
    status, _, _ = https(fake, "graph.microsoft.com", "GET", "/v1.0/me/drive")
    is_(status, 401, "Graph: no token gets 401")
    for mode, want in (("401", 401), ("500", 500)):
        fake.microsoft_config(graph_mode=mode)
        status, _, _ = https(fake, "graph.microsoft.com", "GET",
                             "/v1.0/me/drive", headers=auth)
        is_(status, want, "Graph: graph_mode %s answers %d" % (mode, want))
    fake.microsoft_config(graph_mode="normal")
    # Refresh: a new access token that Graph accepts too.
    basic = base64.b64encode(b"od-client:od-secret").decode()
    form = urllib.parse.urlencode({"grant_type": "refresh_token",
                                   "refresh_token": token["refresh_token"]})
    # The refresh token was issued to rclone's client id, not od-client.
    status, _, body = https(fake, "login.microsoftonline.com", "POST",
                            "/common/oauth2/v2.0/token", form,
                            {"Authorization": "Basic " + basic,
                             "Content-Type":
                             "application/x-www-form-urlencoded"})
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "refresh for another client: 400 invalid_grant")
    cid = state(fake, "onedrive")["tokens"][0]["client_id"]
    form = urllib.parse.urlencode({"grant_type": "refresh_token",
                                   "refresh_token": token["refresh_token"],
                                   "client_id": cid,
                                   "client_secret": "x"})
    status, _, body = https(fake, "login.microsoftonline.com", "POST",
                            "/common/oauth2/v2.0/token", form,
                            {"Content-Type":
                             "application/x-www-form-urlencoded"})
    ok(status == 200 and (body or {}).get("access_token") and
       body["access_token"] != token["access_token"],
       "refresh_token grant (client in the form): a new access token")
    if status == 200:
        status, _, _ = https(fake, "graph.microsoft.com", "GET",
                             "/v1.0/me/drive", headers={
                                 "Authorization": "Bearer " +
                                 body["access_token"]})
        is_(status, 200, "Graph accepts the refreshed token")


def rclone_fails(fake, backend, what, prepare, pasted_fn, want_forward,
                 want_err):
    """rclone exits 1 with want_err in stderr; nothing on stdout."""
    fake.reset()
    with authorize(fake, backend) as a:
        url = provider_url(a)
        if not url:
            return
        prepare()
        pasted = pasted_fn(fake.follow_auth_url(url))
        status, _, body = forward(pasted)
        ok(status in want_forward, "%s: rclone's callback answers %s (%r)"
           % (what, "/".join(map(str, want_forward)), status))
        rc = a.wait()
        err = a.stderr()
        if not is_(rc, 1, "%s: rclone exits 1" % what):
            diag(err)
        ok(want_err in err, "%s: rclone says %r" % (what, want_err))
        is_(a.token(), None, "%s: no token printed" % what)


def wrong_state(fake):
    rclone_fails(fake, "drive", "wrong state", lambda: None,
                 lambda p: re.sub(r"state=[^&]+", "state=WRONG", p),
                 (400, None), "Auth state doesn't match")


def denied(fake):
    """google_deny: the redirect carries error=access_denied and state."""
    def check(p):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)
        ok(q.get("error") == ["access_denied"] and "code" not in q and
           q.get("state"), "deny: redirect with error=access_denied, the "
           "state, no code")
        return p
    # rclone may exit before its 400 page is out (rclone.md section 10:
    # accept an answer, an empty reply or a reset alike).
    rclone_fails(fake, "drive", "Google deny", fake.google_deny, check,
                 (400, None), "No code returned")
    rclone_fails(fake, "onedrive", "Microsoft deny", fake.microsoft_deny,
                 lambda p: p, (400, None), "No code returned")
    is_(fake.google_state()["deny_pending"], 0, "a deny is used up by one "
        "consent")


def bogus_code(fake):
    """A code the fake never issued: the callback says 200, the token
    endpoint 400, rclone exits 1."""
    rclone_fails(fake, "drive", "bogus code", lambda: None,
                 lambda p: re.sub(r"code=[^&]+", "code=4%2F0Abogus", p),
                 (200, None), "failed to get token")
    tr = fake.google_state()["token_requests"]
    ok(tr and tr[0]["code"] == cdtest.fingerprint("4/0Abogus"),
       "bogus code: rclone sent it decoded once")


def token_400(fake):
    rclone_fails(fake, "onedrive", "token_mode 400",
                 lambda: fake.microsoft_config(token_mode="400"),
                 lambda p: p, (200, None), "400 Bad Request")


def token_faults(fake):
    """Faults on the token route, as rclone meets them after the paste:
    HTML or cut-off JSON fail it at once; one 500 at Microsoft is retried
    by rclone's onedrive backend, which then completes."""
    for backend, mode, want in (("drive", "garbage", "invalid character"),
                                ("drive", "truncated",
                                 "unexpected end of JSON input")):
        b = BACKENDS[backend]
        rclone_fails(fake, backend, "token %s" % mode,
                     lambda b=b, mode=mode: fake.fault(
                         b["provider"], b["token_path"], mode, times=1),
                     lambda p: p, (200, None), want)
    fake.reset()
    b = BACKENDS["onedrive"]
    with authorize(fake, "onedrive") as a:
        url = provider_url(a)
        if not url:
            return
        pasted = fake.follow_auth_url(url)
        fake.fault(b["provider"], b["token_path"], "500", times=1)
        forward(pasted)
        is_(a.wait(), 0, "onedrive: one token 500, retried: exit 0")
        is_([e["status"] for e in fake.requests(b["token_host"],
                                                b["token_path"])],
            [500, 200], "onedrive: the token request was sent twice")


def fake_only(fake):
    """The fake's own rules, without rclone: required parameters, single
    use codes, redirect_uri binding, the hang mode, follow_auth_url."""
    fake.reset()
    base = "/o/oauth2/auth?"
    full = {"response_type": "code", "client_id": "cid",
            "redirect_uri": "http://127.0.0.1:53682/", "state": "st8",
            "scope": "s"}
    for missing in ("response_type", "client_id", "redirect_uri", "state"):
        q = dict(full)
        del q[missing]
        status, loc, body = https(fake, "accounts.google.com", "GET",
                                  base + urllib.parse.urlencode(q))
        is_((status, (body or {}).get("error")), (400, "invalid_request"),
            "authorize without %s: 400 invalid_request" % missing)
    status, loc, _ = https(fake, "accounts.google.com", "GET",
                           base + urllib.parse.urlencode(full))
    is_(status, 302, "authorize: 302")
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc or "").query).get(
        "code", [""])[0]
    ok(code.startswith("4/0A"), "Google codes look like Google's (4/0A...)")
    is_(https(fake, "oauth2.googleapis.com", "GET",
              base + urllib.parse.urlencode(full))[0], 404,
        "the consent page is not served on the token host")

    def redeem(code, redirect="http://127.0.0.1:53682/"):
        form = urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code,
            "client_id": "cid", "client_secret": "sec",
            "redirect_uri": redirect})
        return https(fake, "oauth2.googleapis.com", "POST", "/token", form,
                     {"Content-Type": "application/x-www-form-urlencoded"})
    status, _, body = redeem(code, "http://localhost:53682/")
    is_((status, (body or {}).get("error")), (400, "redirect_uri_mismatch"),
        "token: another redirect_uri: 400 redirect_uri_mismatch")
    status, _, body = redeem(code)
    ok(status == 200 and (body or {}).get("access_token", "").startswith(
        "ya29.") and body.get("expires_in") == 3599 and
       body.get("token_type") == "Bearer" and body.get("refresh_token"),
       "token: 200 with access_token, Bearer, refresh_token, 3599 s")
    status, _, body = redeem(code)
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "token: the same code twice: 400 invalid_grant")
    fake.google_config(token_mode="hang")
    t0 = time.monotonic()
    try:
        https(fake, "oauth2.googleapis.com", "POST", "/token", "x",
              timeout=1.5)
        hung = False
    except OSError:
        hung = True
    ok(hung and time.monotonic() - t0 >= 1.4,
       "token_mode hang: no answer within 1.5 s")
    fake.reset()
    is_(fake.google_state()["config"], {"token_mode": "normal"},
        "reset restores token_mode normal")
    try:
        fake.follow_auth_url("https://accounts.google.com/o/oauth2/auth?x=1")
        raised = False
    except RuntimeError:
        raised = True
    ok(raised, "follow_auth_url raises when the answer is not a redirect")


if __name__ == "__main__":
    cdtest.run([drive_completes, onedrive_completes, wrong_state, denied,
                bogus_code, token_400, token_faults, fake_only],
               fixture=fixture)
