#!/usr/bin/python3
"""The Vercel connector keeps api.md's contract ("Vercel", "Conventions")
against the fake Vercel: account tokens checked with GET /v2/user, and
"Sign in with Vercel" (authorization code, PKCE S256, RFC 7591
registration) through GET /callback and POST oauth/exchange, without the
original service's defects (reference/seed-service.md sections 6, 9, 10):
no caller-chosen redirect_uri, single-use and expiring states in bounded
number, escaped callback pages whose only script posts to the configured
UI origin, a metadata document that ignores the Host header, and no
token, code or verifier anywhere but where api.md puts them.

Daemons, all behind one fake:
- main: ui_origin and public_url set, the default redirect URI; most
  checks, in order, building on each other's stored state;
- ttl: session_ttl=30 and no ui_origin; a flow started first is completed
  only after 31 s, at the end (the wait overlaps the other checks);
- small (short-lived): vercel_pending_max=2 and a configured client id;
- moved (short-lived): the main workspace's mcp-tokens.json, another
  vercel_redirect_uri, and a fake that now issues client secrets.
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
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fakes"))
from fakeprovider import pkce_s256  # noqa: E402

BASE = "/api/connectors/vercel"
API_HOST, WEB_HOST = "api.vercel.com", "vercel.com"
UI_ORIGIN = "https://ui.example.test"
PUBLIC_URL = "https://connectord.example.test"
REDIRECT = "http://127.0.0.1:8700/callback"         # the default
REDIRECT2 = "http://127.0.0.1:8701/callback"
SCOPE = "openid email profile offline_access"
TTL = 30
CLIENT_ID = "cl_configured0123"                      # small's vercel_client_id
OAUTH_USER = "vercel-fake"                           # the fake's person
ALNUM = string.ascii_letters + string.digits
B64URL43 = re.compile(r"[A-Za-z0-9_-]{43}")
PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
            "</script><script>alert(1)</script>", "'; alert(1); //",
            '" onmouseover="alert(1)', "a\u2028b</p><b>x</b>"]


def account_token():
    """A Vercel account token's shape: 24 alphanumerics."""
    return "".join(secrets.choice(ALNUM) for _ in range(24))


PAT1, PAT2, BAD = account_token(), account_token(), account_token()
PAT_ENTRY_KEYS = {"access_token", "token_type", "auth_method", "username",
                  "name"}
OAUTH_ENTRY_KEYS = {"access_token", "refresh_token", "expires_at",
                    "token_type", "auth_method", "username", "name", "email"}


class Scenario:
    def __init__(self, fake, main, ttl):
        self.fake = fake
        self.d = main
        self.ttl = ttl
        self.secrets = set()        # every token, code, client secret seen
        self.challenges = set()     # every code_challenge the daemons made
        self.retired = []           # (name, log, transcript, state text)
        self.ttl_flow = None        # (start time, callback URL, code)

    # -- the fake

    def vstate(self):
        return self.fake.vercel_state()

    def mark(self):
        """The fake log's last sequence number: requests() after it."""
        log = self.fake.log()
        return log[-1]["seq"] if log else 0

    def since(self, mark, host=None, path=None):
        return [e for e in self.fake.log() if e["seq"] > mark
                and e.get("kind") == "request"
                and (host is None or e["host"] == host)
                and (path is None or e["path"].split("?")[0] == path)]

    def token_requests_for(self, code):
        return [r for r in self.vstate()["token_requests"]
                if r["code"] == cdtest.fingerprint(code)]

    # -- the daemons

    def status(self, d=None):
        status, _, body, raw = (d or self.d).api("GET", BASE + "/status")
        if status != 200 or not isinstance(body, dict):
            diag("status answered %r %r" % (status, raw[:200]))
            return {}
        return body

    def start(self, d=None, query=""):
        """oauth/start; the answer's body (or {}), its challenge noted."""
        status, _, body, raw = (d or self.d).api(
            "GET", BASE + "/oauth/start" + query)
        if status != 200 or not isinstance(body, dict):
            ok(False, "oauth/start answers 200 JSON")
            diag("got %r %r" % (status, raw[:300]))
            return {}
        q = auth_query(body.get("authorize_url", ""))
        if q.get("code_challenge"):
            self.challenges.add(q["code_challenge"])
        return body

    def authorize(self, body):
        """The browser at vercel.com: the callback URL it is sent to."""
        loc = self.fake.vercel_authorize(body["authorize_url"])
        code = auth_query(loc).get("code")
        if code:
            self.secrets.add(code)
        return loc

    def callback(self, d, url):
        """The browser opens the callback URL: its path and query, from
        the daemon, without the API token."""
        u = urllib.parse.urlsplit(url)
        return d.api("GET", u.path + ("?" + u.query if u.query else ""),
                     token=False)

    def note_tokens(self, d):
        """Remember every secret the daemon stored, for the leak scans."""
        for e in (d.read_tokens() or {}).values():
            if isinstance(e, dict):
                for k in ("access_token", "refresh_token", "client_secret"):
                    if isinstance(e.get(k), str):
                        self.secrets.add(e[k])

    def retire(self, name, d):
        """Stop a short-lived daemon, keeping what the leak scans need."""
        self.note_tokens(d)
        log, state = d.log_text(), d.state_files_text()
        is_(d.stop(), 0, "%s daemon exits 0 on SIGTERM" % name)
        self.retired.append((name, log, list(d.transcript), state))


def auth_query(url):
    """A URL's query as {name: single value}."""
    return {k: v[0] for k, v in urllib.parse.parse_qs(
        urllib.parse.urlsplit(url).query, keep_blank_values=True).items()}


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, \
            cdtest.Daemon(fake, overrides={
                "ui_origin": UI_ORIGIN, "public_url": PUBLIC_URL},
                files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as main, \
            cdtest.Daemon(fake, overrides={"session_ttl": str(TTL)}) as ttl:
        yield Scenario(fake, main, ttl)


# ---------------------------------------------------------------------------
# The callback page


def check_page(result, status, title, what, ui_origin=UI_ORIGIN):
    """api.md's callback page: the status, HTML, a strict CSP with a
    nonce, no-store, the title; scripts only with that nonce (or inert
    JSON data), posting only to ui_origin (none at all without one), never
    to '*'. Returns (page text, the message JSON or None)."""
    got, hdrs, _, raw = result
    text = raw.decode("utf-8", "replace")
    is_(got, status, "%s: status %d" % (what, status))
    is_(hdrs.get("content-type", "").split(";")[0], "text/html",
        "%s: text/html" % what)
    csp = hdrs.get("content-security-policy", "")
    m = re.search(r"script-src 'nonce-([A-Za-z0-9+/=_-]{16,})'", csp)
    ok("default-src 'none'" in csp and m,
       "%s: CSP default-src 'none', script-src with a nonce (%r)"
       % (what, csp))
    nonce = m.group(1) if m else None
    is_(hdrs.get("cache-control"), "no-store", "%s: Cache-Control no-store"
        % what)
    is_(re.findall(r"<title>(.*?)</title>", text, re.S), [title],
        "%s: titled %r" % (what, title))
    tags = re.findall(r"<script\b[^>]*>", text, re.I)
    data = [t for t in tags if 'type="application/json"' in t]
    code = [t for t in tags if t not in data]
    ok(all(t == '<script nonce="%s">' % nonce for t in code),
       "%s: every executable script carries the CSP nonce (%r)"
       % (what, code))
    ok("'*'" not in text and '"*"' not in text and "`*`" not in text,
       "%s: no '*' anywhere in the page" % what)
    targets = re.findall(r"postMessage\(\s*[A-Za-z_$][\w$]*\s*,\s*([^)]*)\)",
                         text)
    if ui_origin is None:
        ok(not tags, "%s: without ui_origin, no script at all" % what)
    else:
        ok(targets.count(json.dumps(ui_origin)) == len(targets) and
           text.count("postMessage") == len(targets),
           "%s: every postMessage targets exactly %s (%r)"
           % (what, ui_origin, targets))
    msg = None
    blocks = re.findall(r'<script type="application/json"[^>]*>(.*?)'
                        r'</script>', text, re.S)
    if blocks:
        ok(len(blocks) == 1 and not re.search(r"[<>&]", blocks[0]),
           "%s: the message block has <, > and & escaped" % what)
        try:
            msg = json.loads(blocks[0])
        except ValueError:
            ok(False, "%s: the message block is JSON" % what)
    return text, msg


def check_success(s, d, result, what, user, ui_origin=UI_ORIGIN):
    text, msg = check_page(result, 200, "Vercel connected", what, ui_origin)
    ok("Signed in as " in text, "%s: says 'Signed in as ...'" % what)
    if ui_origin is not None:
        is_(msg, {"type": "vercel_oauth_success", "username": user},
            "%s: the message for the opener" % what)
    return text


def check_failure(result, what, status=400, ui_origin=UI_ORIGIN):
    text, msg = check_page(result, status, "Vercel authorization failed",
                           what, ui_origin)
    if msg is not None:
        is_(msg.get("type"), "vercel_oauth_error",
            "%s: the message is an error" % what)
    return text


def check_oauth_entry(s, d, user, what, before=None):
    """The stored vercel entry of an OAuth connection: api.md's keys, the
    tokens the fake issued, expires_at about now + 3600."""
    entry = (d.read_tokens() or {}).get("vercel") or {}
    s.note_tokens(d)
    is_(set(entry), OAUTH_ENTRY_KEYS, "%s: vercel entry has exactly the "
        "OAuth keys" % what)
    is_((entry.get("token_type"), entry.get("auth_method")),
        ("Bearer", "oauth"), "%s: token_type Bearer, auth_method oauth"
        % what)
    is_((entry.get("username"), entry.get("name"), entry.get("email")),
        user, "%s: username, name and email of the account" % what)
    issued = {t["access_token"]: t for t in s.vstate()["tokens"]
              if t["source"] == "oauth"}
    fp = cdtest.fingerprint(entry.get("access_token") or "")
    t = issued.get(fp)
    ok(t is not None, "%s: the access token is one the fake issued" % what)
    ok(t is not None and entry.get("refresh_token") and
       t["refresh_token"] == cdtest.fingerprint(entry["refresh_token"]),
       "%s: with its refresh token (offline_access)" % what)
    exp = entry.get("expires_at")
    ok(isinstance(exp, int) and abs(exp - (time.time() + 3600)) < 60,
       "%s: expires_at = now + expires_in (%r)" % (what, exp))
    if before is not None:
        ok(entry.get("access_token") != before.get("access_token"),
           "%s: a new token replaced the old one" % what)
    mode = stat.S_IMODE(os.stat(d.tokens_path).st_mode)
    is_(oct(mode), oct(0o600), "%s: mcp-tokens.json stays 0600" % what)
    return entry


def check_exchange_request(s, code, client_id, redirect, what,
                           secret="none"):
    """The one token request for code: the right client, redirect URI and
    grant, and a verifier that passed the fake's PKCE check."""
    reqs = s.token_requests_for(code)
    if not is_(len(reqs), 1, "%s: one token request for the code" % what):
        return
    r = reqs[0]
    is_((r["grant_type"], r["client_id"], r["redirect_uri"]),
        ("authorization_code", client_id, redirect),
        "%s: authorization_code for the client and redirect URI" % what)
    is_(r["pkce"], "passed", "%s: the fake's PKCE check passed "
        "(S256 of the verifier = the challenge)" % what)
    is_(r["client_secret"], secret, "%s: client secret sent: %s"
        % (what, secret))


# ---------------------------------------------------------------------------
# The TTL flow: started first, completed last


def ttl_flow_begins(s):
    """On the session_ttl=30 daemon: start a flow and authorize it now;
    its callback is opened after 31 s (ttl_flow_expired)."""
    body = s.start(s.ttl)
    if not body:
        return
    t0 = time.monotonic()
    loc = s.authorize(body)
    s.ttl_flow = (t0, loc, auth_query(loc).get("code"))
    ok(auth_query(loc).get("code"), "ttl daemon: the flow got a code")


# ---------------------------------------------------------------------------
# Account tokens


def nothing_stored(s):
    m = s.mark()
    body = s.status()
    is_(body.get("connected"), False, 'status with nothing stored: '
        '{"connected": false}')
    ok("user" not in body, "status with nothing stored: no user")
    is_(s.since(m), [], "status with nothing stored: Vercel not called")


def token_accepted(s):
    """A valid account token is checked once with GET /v2/user."""
    user = s.fake.add_vercel_pat(PAT1, "pat-alice", name="Pat Alice",
                                 email="alice@example.com")
    m = s.mark()
    status, _, body, raw = s.d.api("POST", BASE + "/token", {"token": PAT1})
    if not answered_ok((status, None, body, raw),
                       'valid token: 200 {"ok": true}'):
        return
    want = {k: user[k] for k in ("username", "name", "email", "avatar")}
    is_({k: (body.get("user") or {}).get(k) for k in want}, want,
        "valid token: the answer's user is Vercel's account")
    tokens = s.d.read_tokens() or {}
    is_(tokens.get("vercel"), {
        "access_token": PAT1, "token_type": "Bearer",
        "auth_method": "api_token", "username": "pat-alice",
        "name": "Pat Alice"}, "vercel entry stored as specified")
    is_(tokens.get("other"), {"x": 1}, "unknown key 'other' preserved")
    is_(oct(stat.S_IMODE(os.stat(s.d.tokens_path).st_mode)), oct(0o600),
        "mcp-tokens.json has mode 0600")
    reqs = s.since(m)
    is_([(r["method"], r["host"], r["path"]) for r in reqs],
        [("GET", API_HOST, "/v2/user")],
        "exactly one GET https://api.vercel.com/v2/user")
    ok(reqs and reqs[0]["headers"].get("authorization") ==
       "Bearer " + cdtest.fingerprint(PAT1),
       "the token travels as Authorization: Bearer")


def status_is_offline(s):
    m = s.mark()
    for i in range(3):
        body = s.status()
    is_(body.get("connected"), True, "status: connected")
    is_((body.get("user") or {}).get("username"), "pat-alice",
        "status: the stored account")
    is_(body.get("auth_method"), "api_token", "status: auth_method "
        "api_token")
    status, _, lst, raw = s.d.api("GET", "/api/connectors")
    vc = [c for c in (lst or {}).get("connectors", [])
          if isinstance(c, dict) and c.get("name") == "vercel"]
    ok(status == 200 and len(vc) == 1 and vc[0].get("connected") is True,
       "GET /api/connectors lists vercel as connected")
    is_(s.since(m), [], "status and the list made no request to Vercel")


def token_rejected(s):
    """401 or 403 from Vercel: 422, nothing written."""
    for reject in (401, 403):
        s.fake.vercel_config(reject_status=reject)
        before = s.d.tokens_bytes()
        m = s.mark()
        is_error_json(s.d.api("POST", BASE + "/token", {"token": BAD}), 422,
                      "token Vercel answers %d: JSON 422" % reject)
        ok(s.d.tokens_bytes() == before, "rejected (%d): mcp-tokens.json "
           "unchanged" % reject)
        is_([r["status"] for r in s.since(m, API_HOST, "/v2/user")],
            [reject], "rejected (%d): one GET /v2/user" % reject)
    s.fake.vercel_config(reject_status=401)
    is_(s.status().get("connected"), True,
        "rejected: the stored token still counts as connected")


def provider_faults(s):
    """Vercel failing (500) or answering something that is not JSON: 502,
    nothing written."""
    s.fake.add_vercel_pat(PAT2, "pat-bob")
    for mode in ("500", "garbage"):
        before = s.d.tokens_bytes()
        s.fake.set_mode("vercel", mode)
        try:
            result = s.d.api("POST", BASE + "/token", {"token": PAT2},
                             timeout=60)
        finally:
            s.fake.set_mode("vercel", "normal")
        is_error_json(result, 502, "Vercel %s: JSON 502" % mode)
        ok(s.d.tokens_bytes() == before, "Vercel %s: file unchanged" % mode)


def malformed_token_requests(s):
    before = s.d.tokens_bytes()
    m = s.mark()
    for what, raw in [("not JSON", b"{not json"),
                      ("empty token", b'{"token": ""}'),
                      ("no token field", b"{}"),
                      ("token not a string", b'{"token": 7}')]:
        is_error_json(s.d.api("POST", BASE + "/token", raw=raw), 400,
                      "token with %s: JSON 400" % what)
    ok(s.d.tokens_bytes() == before, "malformed bodies: file unchanged")
    is_(s.since(m), [], "malformed bodies: Vercel not called")


def reconnect(s):
    """reconnect re-validates live; a revoked token gets 422 and status
    says why; once it works again the error is gone."""
    m = s.mark()
    status, _, body, raw = s.d.api("POST", BASE + "/reconnect")
    if answered_ok((status, None, body, raw), 'reconnect: {"ok": true, '
                   '"connected": true}', connected=True):
        is_((body.get("user") or {}).get("username"), "pat-alice",
            "reconnect: the account")
    reqs = s.since(m, API_HOST, "/v2/user")
    ok(len(reqs) == 1 and reqs[0]["headers"].get("authorization") ==
       "Bearer " + cdtest.fingerprint(PAT1),
       "reconnect: one GET /v2/user with the stored token")
    s.fake.revoke_vercel(PAT1)
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 422,
                  "reconnect with a revoked token: JSON 422")
    is_(((s.d.read_tokens() or {}).get("vercel") or {}).get("access_token")
        == PAT1, True, "revoked: the entry is kept")
    body = s.status()
    is_(body.get("connected"), False, "status after failed reconnect: "
        "false")
    ok(isinstance(body.get("error"), str) and body["error"].strip(),
       "status after failed reconnect: an error sentence (%r)"
       % (body.get("error"),))
    s.fake.add_vercel_pat(PAT1, "pat-alice", name="Pat Alice",
                          email="alice@example.com")
    answered_ok(s.d.api("POST", BASE + "/reconnect"),
                "reconnect once the token works again", connected=True)
    body = s.status()
    ok(body.get("connected") is True and body.get("error") is None,
       "status: connected again, no error left")


def disconnect(s):
    answered_ok(s.d.api("POST", BASE + "/disconnect"), "disconnect: 200 ok")
    tokens = s.d.read_tokens() or {}
    ok("vercel" not in tokens, "disconnect: vercel entry removed")
    is_(tokens.get("other"), {"x": 1}, "disconnect: 'other' preserved")
    is_(s.status().get("connected"), False, "status after disconnect: false")
    before = s.d.tokens_bytes()
    answered_ok(s.d.api("POST", BASE + "/disconnect"),
                "second disconnect: 200 ok")
    ok(s.d.tokens_bytes() == before, "second disconnect: file unchanged")
    m = s.mark()
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 404,
                  "reconnect with nothing stored: JSON 404")
    is_(s.since(m), [], "reconnect with nothing stored: Vercel not called")


# ---------------------------------------------------------------------------
# OAuth


def oauth_needs_api_token(s):
    m = s.mark()
    is_error_json(s.d.api("GET", BASE + "/oauth/start", token=False), 401,
                  "oauth/start without the API token: 401")
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": "x", "state": "y"}, token=False), 401,
                  "oauth/exchange without the API token: 401")
    is_(s.since(m), [], "and Vercel is not called")


def oauth_start_shape(s):
    """The first start registers a client (RFC 7591) for the configured
    redirect URI, keeps it, and answers a PKCE S256 authorize URL."""
    regs0 = len(s.vstate()["registrations"])
    m = s.mark()
    body = s.start()
    if not body:
        return
    is_(sorted(body), ["authorize_url", "code_verifier_id", "state"],
        "start: authorize_url, state, code_verifier_id")
    regs = s.vstate()["registrations"][regs0:]
    if not is_(len(regs), 1, "start without a client: one registration"):
        return
    is_(regs[0]["request"], {
        "client_name": "connectord", "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "scope": SCOPE},
        "the registration asks for what api.md says")
    is_([(r["method"], r["host"], r["path"]) for r in s.since(m)],
        [("POST", API_HOST, "/login/oauth/register")],
        "start made that one request (no token exchange, no identity)")
    client = (s.d.read_tokens() or {}).get("vercel_client") or {}
    is_((client.get("client_id"), client.get("redirect_uris")),
        (regs[0]["client_id"], [REDIRECT]),
        "the client is kept under vercel_client with its redirect_uris")
    s.client_id = regs[0]["client_id"]
    url = body["authorize_url"]
    u = urllib.parse.urlsplit(url)
    is_((u.scheme, u.netloc, u.path), ("https", WEB_HOST, "/oauth/authorize"),
        "authorize_url is https://vercel.com/oauth/authorize")
    q = auth_query(url)
    is_(sorted(q), sorted(["client_id", "response_type", "redirect_uri",
                           "state", "code_challenge",
                           "code_challenge_method", "scope"]),
        "authorize_url has exactly the expected parameters")
    is_((q.get("client_id"), q.get("response_type"), q.get("redirect_uri"),
         q.get("code_challenge_method"), q.get("scope")),
        (s.client_id, "code", REDIRECT, "S256", SCOPE),
        "client_id, response_type=code, the configured redirect_uri, "
        "S256, openid email profile offline_access")
    ok("scope=openid%20email%20profile%20offline_access" in u.query,
       "scope encoded as openid%20email%20profile%20offline_access")
    is_(q.get("state"), body["state"], "the URL's state is the answer's")
    ok(B64URL43.fullmatch(body["state"] or ""), "state: 43 base64url "
       "characters (256 bits)")
    ok(B64URL43.fullmatch(q.get("code_challenge") or ""),
       "code_challenge: 43 base64url characters")
    vid = body.get("code_verifier_id") or ""
    ok(vid and pkce_s256(vid) != q.get("code_challenge") and
       pkce_s256(body["state"]) != q.get("code_challenge"),
       "neither code_verifier_id nor state is the verifier")
    s.first_flow = body


def callback_end_to_end(s):
    """The browser path: vercel.com redirects to /callback, which the
    daemon answers with the success page after a PKCE-checked exchange."""
    body = s.first_flow
    loc = s.authorize(body)
    ok(loc.startswith(REDIRECT + "?"), "vercel.com sends the browser to "
       "the configured redirect URI")
    code = auth_query(loc).get("code")
    pkce0 = s.vstate()["pkce"]
    regs0 = len(s.vstate()["registrations"])
    m = s.mark()
    result = s.callback(s.d, loc)
    text = check_success(s, s.d, result, "callback", OAUTH_USER)
    ok("Signed in as Vercel Fake." in text, "the page names the account")
    check_exchange_request(s, code, s.client_id, REDIRECT, "callback")
    pkce = s.vstate()["pkce"]
    is_((pkce["passed"] - pkce0["passed"], pkce["failed"] - pkce0["failed"]),
        (1, 0), "callback: one PKCE pass, no failure at the fake")
    is_([(r["method"], r["path"]) for r in s.since(m)],
        [("POST", "/login/oauth/token"), ("GET", "/login/oauth/userinfo")],
        "callback: token exchange, then userinfo (no /v2/user needed)")
    is_(len(s.vstate()["registrations"]), regs0,
        "callback: no registration")
    s.oauth_entry = check_oauth_entry(
        s, s.d, (OAUTH_USER, "Vercel Fake", OAUTH_USER + "@example.com"),
        "callback")
    is_((s.d.read_tokens() or {}).get("other"), {"x": 1},
        "callback: 'other' preserved")
    s.first_callback = loc
    m = s.mark()
    st = s.status()
    ok(st.get("connected") is True and st.get("auth_method") == "oauth" and
       (st.get("user") or {}).get("username") == OAUTH_USER,
       "status: connected, auth_method oauth, the account (%r)" % (st,))
    is_(s.since(m), [], "status asks Vercel nothing")


def callback_replayed(s):
    """The same callback URL again: single-use state, 400 page, no second
    exchange, nothing changed."""
    before = s.d.tokens_bytes()
    m = s.mark()
    check_failure(s.callback(s.d, s.first_callback), "replayed callback")
    ok(s.d.tokens_bytes() == before, "replayed callback: file unchanged")
    is_(s.since(m), [], "replayed callback: Vercel not called")


def forged_state(s):
    """A real code with a state the daemon never issued: 400 page."""
    body = s.start()
    loc = s.authorize(body)
    code = auth_query(loc)["code"]
    forged = "%s?code=%s&state=%s" % (REDIRECT, urllib.parse.quote(code),
                                      secrets.token_urlsafe(32))
    before = s.d.tokens_bytes()
    m = s.mark()
    check_failure(s.callback(s.d, forged), "forged state")
    for what, q in [("no state", "?code=" + urllib.parse.quote(code)),
                    ("empty state", "?code=x&state="),
                    ("no query", "")]:
        check_failure(s.callback(s.d, REDIRECT + q), "callback with " + what)
    ok(s.d.tokens_bytes() == before, "forged states: file unchanged")
    is_(s.since(m), [], "forged states: Vercel not called")
    s.pending_flow = (body, loc)


def missing_code(s):
    """The flow's own state without a code: 400, and the state is spent."""
    body, loc = s.pending_flow
    m = s.mark()
    before = s.d.tokens_bytes()
    check_failure(s.callback(s.d, REDIRECT + "?state=" + body["state"]),
                  "callback with the state and no code")
    check_failure(s.callback(s.d, loc), "then the real code for that state")
    ok(s.d.tokens_bytes() == before, "missing code: file unchanged")
    is_(s.since(m), [], "missing code: Vercel not called")


def exchange_end_to_end(s):
    """The JSON path: oauth/exchange with the code and state a client
    captured; the registered client is reused."""
    regs0 = len(s.vstate()["registrations"])
    body = s.start()
    loc = s.authorize(body)
    q = auth_query(loc)
    status, _, ans, raw = s.d.api("POST", BASE + "/oauth/exchange",
                                  {"code": q["code"], "state": q["state"]})
    if answered_ok((status, None, ans, raw), 'exchange: 200 {"ok": true}'):
        u = ans.get("user") or {}
        is_((u.get("username"), u.get("name"), u.get("email")),
            (OAUTH_USER, "Vercel Fake", OAUTH_USER + "@example.com"),
            "exchange: the answer's user")
    check_exchange_request(s, q["code"], s.client_id, REDIRECT, "exchange")
    is_(len(s.vstate()["registrations"]), regs0,
        "the second flow reused the registered client (no registration)")
    s.oauth_entry = check_oauth_entry(
        s, s.d, (OAUTH_USER, "Vercel Fake", OAUTH_USER + "@example.com"),
        "exchange", s.oauth_entry)
    before = s.d.tokens_bytes()
    m = s.mark()
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": q["code"], "state": q["state"]}), 400,
                  "the same exchange again: JSON 400")
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": q["code"],
                           "state": secrets.token_urlsafe(32)}), 400,
                  "exchange with an unknown state: JSON 400")
    for what, raw in [("not JSON", b"{"), ("no code", b'{"state": "x"}'),
                      ("no state", b'{"code": "x"}'),
                      ("code not a string", b'{"code": 1, "state": "x"}')]:
        is_error_json(s.d.api("POST", BASE + "/oauth/exchange", raw=raw),
                      400, "exchange with %s: JSON 400" % what)
    ok(s.d.tokens_bytes() == before, "refused exchanges: file unchanged")
    is_(s.since(m), [], "refused exchanges: Vercel not called")
    check_failure(s.callback(s.d, loc), "callback after the same flow was "
                  "exchanged")


def caller_redirect_ignored(s):
    """?redirect_uri= on start changes nothing: neither the authorize URL
    nor the registered client (seed-service.md section 10.3)."""
    regs0 = len(s.vstate()["registrations"])
    evil = "https://evil.example/cb"
    body = s.start(query="?redirect_uri=" + urllib.parse.quote(evil, ""))
    if not body:
        return
    is_(auth_query(body["authorize_url"]).get("redirect_uri"), REDIRECT,
        "start?redirect_uri=evil: the authorize URL keeps the configured "
        "redirect URI")
    ok("evil.example" not in body["authorize_url"],
       "the caller's URI appears nowhere in the authorize URL")
    is_(len(s.vstate()["registrations"]), regs0,
        "no registration for the caller's URI")
    is_(((s.d.read_tokens() or {}).get("vercel_client") or {}).get(
        "redirect_uris"), [REDIRECT], "vercel_client unchanged")
    loc = s.authorize(body)
    ok(loc.startswith(REDIRECT + "?"), "vercel.com redirects to the "
       "configured URI")
    s.spare = (body, loc)


def code_refused(s):
    """Vercel refusing the code (400): exchange 422, callback 400 page;
    failing (500): exchange 502, callback 502 page. Each spends its state,
    nothing is stored."""
    before = s.d.tokens_bytes()
    s.fake.vercel_config(token_mode="400")
    try:
        body, loc = s.spare
        q = auth_query(loc)
        is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                              {"code": q["code"], "state": q["state"]}),
                      422, "exchange of a refused code: JSON 422")
        loc2 = s.authorize(s.start())
        text = check_failure(s.callback(s.d, loc2), "callback, code refused")
        ok("not accept" in text, "the page says the code was not accepted")
    finally:
        s.fake.vercel_config(token_mode="normal")
    m = s.mark()
    check_failure(s.callback(s.d, loc2), "the refused flow's callback again")
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": q["code"], "state": q["state"]}), 400,
                  "the refused flow's exchange again: JSON 400")
    is_(s.since(m), [], "a refused flow is spent: no second token request")
    # A code the fake never issued, with a live state.
    body = s.start()
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": "vc_code_" + secrets.token_urlsafe(24),
                           "state": body["state"]}), 422,
                  "exchange of a made-up code: JSON 422")
    s.fake.vercel_config(token_mode="500")
    try:
        q = auth_query(s.authorize(s.start()))
        is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                              {"code": q["code"], "state": q["state"]}),
                      502, "exchange while Vercel fails: JSON 502")
        check_failure(s.callback(s.d, s.authorize(s.start())),
                      "callback while Vercel fails", 502)
    finally:
        s.fake.vercel_config(token_mode="normal")
    ok(s.d.tokens_bytes() == before, "refused and failed exchanges: file "
       "unchanged")
    is_(s.vstate()["pkce"]["failed"], 0, "no PKCE failure at the fake so "
        "far")


def userinfo_fallback(s):
    """userinfo failing: the account comes from /v2/user instead."""
    s.fake.vercel_config(userinfo_mode="404", oauth_username="fallback-fay")
    try:
        loc = s.authorize(s.start())
        m = s.mark()
        check_success(s, s.d, s.callback(s.d, loc), "callback with userinfo "
                      "down", "fallback-fay")
        is_([(r["path"], r["status"]) for r in s.since(m)],
            [("/login/oauth/token", 200), ("/login/oauth/userinfo", 404),
             ("/v2/user", 200)], "token, userinfo (404), then /v2/user")
        s.oauth_entry = check_oauth_entry(
            s, s.d, ("fallback-fay", "Fallback Fay",
                     "fallback-fay@example.com"), "fallback", s.oauth_entry)
    finally:
        s.fake.vercel_config(userinfo_mode="normal",
                             oauth_username=OAUTH_USER)


def provider_refusal(s):
    """The person refuses at vercel.com and the description carries
    markup: a 400 page shows it escaped; the flow is over."""
    payload = "<script>alert(1)</script>"
    body = s.start()
    s.fake.vercel_deny(payload)
    loc = s.authorize(body)
    q = auth_query(loc)
    is_((q.get("error"), q.get("error_description"), "code" in q),
        ("access_denied", payload, False), "vercel.com redirects with "
        "error=access_denied and the description")
    before = s.d.tokens_bytes()
    m = s.mark()
    text = check_failure(s.callback(s.d, loc), "access_denied")
    ok(payload not in text and
       "&lt;script&gt;alert(1)&lt;/script&gt;" in text,
       "the description is shown HTML-escaped")
    is_error_json(s.d.api("POST", BASE + "/oauth/exchange",
                          {"code": "x", "state": body["state"]}), 400,
                  "the refused flow's state is spent: exchange 400")
    ok(s.d.tokens_bytes() == before, "refusal: file unchanged")
    is_(s.since(m), [], "refusal: Vercel not called")


def callback_payloads(s):
    """seed-service.md section 9's payloads in error_description (and in
    error): never in the page unescaped."""
    for p in PAYLOADS:
        for params in ({"error": "access_denied", "error_description": p,
                        "state": secrets.token_urlsafe(32)},
                       {"error": p}):
            url = REDIRECT + "?" + urllib.parse.urlencode(params)
            text = check_failure(s.callback(s.d, url), "payload %r in %s"
                                 % (p, "/".join(params)))
            ok(p not in text, "payload %r: not in the page as is" % p)
            ok(not re.search(r"<(?!/?(?:!doctype|html|head|meta|title|body|"
                             r"h1|p)\b)[a-z]", text, re.I),
               "payload %r: no tag but the page's own" % p)


def markup_identity(s):
    """A display name and a username carrying markup (a hostile or
    compromised provider): the success page escapes the name and keeps
    the username inert in the JSON block; the JSON API answers them as
    data."""
    name = "<img src=x onerror=alert(1)>"
    user = "</script><script>alert(1)</script>\u2028"
    s.fake.vercel_config(display_name=name, oauth_username=user)
    try:
        loc = s.authorize(s.start())
        text = check_success(s, s.d, s.callback(s.d, loc),
                             "markup in name and username", user)
        ok(name not in text and "&lt;img src=x onerror=alert(1)&gt;" in
           text, "the display name is HTML-escaped")
        is_(text.count("</script>"), len(re.findall(r"<script\b", text)),
            "the username closes no script element")
        q = auth_query(s.authorize(s.start()))
        status, _, ans, _ = s.d.api("POST", BASE + "/oauth/exchange",
                                    {"code": q["code"], "state": q["state"]})
        is_((status, ((ans or {}).get("user") or {}).get("name")),
            (200, name), "exchange answers the name as JSON data")
        s.oauth_entry = check_oauth_entry(
            s, s.d, (user, name, user + "@example.com"), "markup",
            s.oauth_entry)
    finally:
        s.fake.vercel_config(display_name=None, oauth_username=OAUTH_USER)


def reconnect_oauth(s):
    """reconnect of an OAuth connection: still reported as oauth
    (seed-service.md section 10.19)."""
    status, _, body, raw = s.d.api("POST", BASE + "/reconnect")
    ok(status == 200 and (body or {}).get("connected") is True,
       "reconnect of an OAuth token: 200 connected (%r %r)"
       % (status, raw[:200]))
    entry = (s.d.read_tokens() or {}).get("vercel") or {}
    is_(entry.get("auth_method"), "oauth", "reconnect keeps auth_method "
        "oauth in the entry")
    is_(s.status().get("auth_method"), "oauth",
        "status after reconnect: auth_method oauth")


# ---------------------------------------------------------------------------
# The other daemons


def no_ui_origin(s):
    """Without ui_origin no page has a script, success or failure."""
    loc = s.authorize(s.start(s.ttl))
    check_success(s, s.ttl, s.callback(s.ttl, loc), "ttl daemon success",
                  OAUTH_USER, ui_origin=None)
    s.note_tokens(s.ttl)
    check_failure(s.callback(s.ttl, loc), "ttl daemon replay",
                  ui_origin=None)
    s.fake.vercel_config(token_mode="400")
    try:
        loc = s.authorize(s.start(s.ttl))
        check_failure(s.callback(s.ttl, loc), "ttl daemon refused code",
                      ui_origin=None)
    finally:
        s.fake.vercel_config(token_mode="normal")


def pending_bounded(s):
    """vercel_pending_max=2: a third start drops the oldest flow, whose
    state then gets the 400 page; the others complete. With
    vercel_client_id configured nothing is registered."""
    s.fake.vercel_add_client(CLIENT_ID, [REDIRECT])
    regs0 = len(s.vstate()["registrations"])
    d = cdtest.Daemon(s.fake, overrides={"vercel_pending_max": "2",
                                         "vercel_client_id": CLIENT_ID,
                                         "ui_origin": UI_ORIGIN})
    try:
        flows = [s.start(d) for _ in range(3)]
        is_([auth_query(f["authorize_url"]).get("client_id")
             for f in flows], [CLIENT_ID] * 3,
            "configured vercel_client_id: in every authorize URL")
        is_(len(s.vstate()["registrations"]), regs0,
            "configured vercel_client_id: no registration")
        ok("vercel_client" not in (d.read_tokens() or {}),
           "configured vercel_client_id: no vercel_client stored")
        locs = [s.authorize(f) for f in flows]
        code_a = auth_query(locs[0])["code"]
        check_failure(s.callback(d, locs[0]), "pending_max=2, the first "
                      "of three flows")
        is_(s.token_requests_for(code_a), [],
            "the dropped flow's code was never exchanged")
        ok("vercel" not in (d.read_tokens() or {}),
           "the dropped flow stored nothing")
        check_success(s, d, s.callback(d, locs[1]), "pending_max=2, the "
                      "second flow", OAUTH_USER)
        check_success(s, d, s.callback(d, locs[2]), "pending_max=2, the "
                      "third flow", OAUTH_USER)
        check_exchange_request(s, auth_query(locs[2])["code"], CLIENT_ID,
                               REDIRECT, "configured client")
        # Starts in flight at once must not overshoot the bound either.
        threads = [threading.Thread(target=s.start, args=(d,), daemon=True)
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        ok(cdtest.wait_for(lambda: len(d.pids().get("worker vercel", []))
                           <= 2, 5),
           "pending_max=2: after 8 concurrent starts at most 2 flows wait "
           "(%d)" % len(d.pids().get("worker vercel", [])))
    finally:
        s.retire("small", d)


def reregister_for_new_redirect(s):
    """A workspace whose vercel_client was registered for another redirect
    URI (the main daemon's file, under a daemon configured with
    REDIRECT2): the next start registers again, for REDIRECT2; the new
    client's secret is sent on the exchange; a later start reuses it."""
    old = s.d.read_tokens() or {}
    old_client = old.get("vercel_client") or {}
    regs0 = len(s.vstate()["registrations"])
    s.fake.vercel_config(register_secret=True)
    d = cdtest.Daemon(s.fake, overrides={"vercel_redirect_uri": REDIRECT2,
                                         "ui_origin": UI_ORIGIN},
                      files={"mcp-tokens.json": s.d.tokens_bytes().decode()})
    try:
        body = s.start(d)
        regs = s.vstate()["registrations"][regs0:]
        is_([r["request"]["redirect_uris"] for r in regs], [[REDIRECT2]],
            "another redirect URI: one new registration, for it")
        new_client = (d.read_tokens() or {}).get("vercel_client") or {}
        ok(regs and new_client.get("client_id") == regs[0]["client_id"] !=
           old_client.get("client_id") and
           new_client.get("redirect_uris") == [REDIRECT2] and
           new_client.get("client_secret"),
           "vercel_client replaced: new id, REDIRECT2, the secret kept")
        q = auth_query(body.get("authorize_url", ""))
        is_((q.get("client_id"), q.get("redirect_uri")),
            (new_client.get("client_id"), REDIRECT2),
            "the authorize URL uses the new client and REDIRECT2")
        loc = s.authorize(body)
        ok(loc.startswith(REDIRECT2 + "?"), "vercel.com redirects to "
           "REDIRECT2")
        check_success(s, d, s.callback(d, loc), "moved daemon callback",
                      OAUTH_USER)
        check_exchange_request(s, auth_query(loc)["code"],
                               new_client.get("client_id"), REDIRECT2,
                               "confidential client", secret="ok")
        check_oauth_entry(s, d, (OAUTH_USER, "Vercel Fake",
                                 OAUTH_USER + "@example.com"), "moved")
        is_((d.read_tokens() or {}).get("other"), {"x": 1},
            "moved: 'other' preserved")
        s.start(d)
        is_(len(s.vstate()["registrations"]), regs0 + 1,
            "a later start reuses the new client")
        s.moved_file = d.tokens_bytes()
    finally:
        s.fake.vercel_config(register_secret=False)
        s.retire("moved", d)


def due_workspace(data, ahead=60):
    """mcp-tokens.json text whose vercel entry expires in ahead seconds."""
    tokens = json.loads(data)
    tokens["vercel"]["expires_at"] = int(time.time()) + ahead
    return json.dumps(tokens, indent=2) + "\n"


def refresh_requests(s, mark):
    return [r for r in s.vstate()["token_requests"][mark:]
            if r["grant_type"] == "refresh_token"]


def oauth_refresh(s):
    """A stored OAuth token due within two minutes is refreshed before
    status answers: refresh grant with the stored refresh token and the
    client's secret, rotated tokens stored, status connected; the next
    status asks nothing. Then disconnect revokes upstream (confidential
    client) and says so."""
    if not getattr(s, "moved_file", None):
        ok(False, "the moved daemon left a workspace to refresh")
        return
    old = json.loads(s.moved_file)
    client = old["vercel_client"]
    d = cdtest.Daemon(s.fake, overrides={"vercel_redirect_uri": REDIRECT2},
                      files={"mcp-tokens.json": due_workspace(s.moved_file)})
    try:
        n0, regs0 = len(s.vstate()["token_requests"]), \
            len(s.vstate()["registrations"])
        body = s.status(d)
        is_((body.get("connected"), body.get("auth_method")),
            (True, "oauth"), "status of a due token: connected, oauth")
        reqs = refresh_requests(s, n0)
        if is_(len(reqs), 1, "status of a due token: one refresh grant"):
            r = reqs[0]
            is_((r["client_id"], r["refresh_token"], r["client_secret"],
                 r["status"]),
                (client["client_id"],
                 cdtest.fingerprint(old["vercel"]["refresh_token"]), "ok",
                 200), "refresh: the stored refresh token, the client and "
                "its secret; the fake answered 200")
        is_(len(s.vstate()["registrations"]), regs0,
            "refresh: no registration")
        new = (d.read_tokens() or {}).get("vercel") or {}
        s.note_tokens(d)
        ok(new.get("access_token") not in (None,
                                           old["vercel"]["access_token"])
           and new.get("refresh_token") not in (
               None, old["vercel"]["refresh_token"]),
           "refresh: new access and (rotated) refresh token stored")
        ok(isinstance(new.get("expires_at"), int) and
           abs(new["expires_at"] - time.time() - 3600) < 60,
           "refresh: expires_at moved to now + 3600")
        is_({k: new.get(k) for k in ("auth_method", "username", "name",
                                     "email")},
            {k: old["vercel"][k] for k in ("auth_method", "username",
                                           "name", "email")},
            "refresh: the account fields kept")
        n1 = len(s.vstate()["token_requests"])
        is_(s.status(d).get("connected"), True, "status again: connected")
        is_(refresh_requests(s, n1), [], "status again: no refresh")
        s.refreshed_file = d.tokens_bytes()
        refresh_with_other_redirect(s)
        revs0 = len(s.vstate()["revocations"])
        status, _, ans, raw = d.api("POST", BASE + "/disconnect")
        ok(status == 200 and ans == {"ok": True, "revoked": True},
           'disconnect of a confidential client\'s token: {"ok": true, '
           '"revoked": true} (%r)' % (raw[:100],))
        revs = s.vstate()["revocations"][revs0:]
        fps = {r["token"] for r in revs}
        ok(cdtest.fingerprint(new.get("access_token") or "-") in fps and
           all(r["client_secret"] == "ok" and r["auth_style"] == "basic"
               for r in revs),
           "the access token was revoked with HTTP Basic client "
           "credentials (%r)" % (revs,))
        is_(s.fake.provider_request(
            "https://%s/v2/user" % API_HOST, headers={
                "Authorization": "Bearer %s" % new.get("access_token")})[0],
            401, "the revoked access token no longer works at Vercel")
        ok(cdtest.fingerprint(new.get("refresh_token") or "-") in fps,
           "disconnect also revokes the refresh token (it outlives the "
           "access token by weeks)")
        tokens = d.read_tokens() or {}
        ok("vercel" not in tokens and tokens.get("vercel_client") == client,
           "disconnect removes vercel and keeps vercel_client")
    finally:
        s.retire("refresh", d)


def refresh_with_other_redirect(s):
    """The refresh grant has no redirect URI: a daemon now configured with
    another vercel_redirect_uri refreshes with the stored client, without
    registering a new one at status time."""
    old = json.loads(s.refreshed_file)
    d = cdtest.Daemon(s.fake, overrides={"vercel_redirect_uri": REDIRECT},
                      files={"mcp-tokens.json":
                             due_workspace(s.refreshed_file)})
    try:
        n0, regs0 = len(s.vstate()["token_requests"]), \
            len(s.vstate()["registrations"])
        body = s.status(d)
        is_(len(s.vstate()["registrations"]), regs0,
            "refresh under another redirect URI: no registration")
        reqs = refresh_requests(s, n0)
        is_([(r["client_id"], r["status"]) for r in reqs],
            [(old["vercel_client"]["client_id"], 200)],
            "refresh under another redirect URI: the stored client's grant")
        is_(body.get("connected"), True,
            "refresh under another redirect URI: still connected")
        after = d.read_tokens() or {}
        is_((after.get("vercel_client") or {}).get("client_id"),
            old["vercel_client"]["client_id"],
            "refresh under another redirect URI: vercel_client kept")
        s.note_tokens(d)
    finally:
        s.retire("other-redirect", d)


def refresh_refused(s):
    """The moved daemon's original refresh token was rotated out by the
    refresh above: Vercel failing (500) leaves the connection as it is; a
    refusal (400 invalid_grant) marks it, keeps the entry, and the next
    status does not retry."""
    if not getattr(s, "moved_file", None):
        return
    d = cdtest.Daemon(s.fake, files={"mcp-tokens.json":
                                     due_workspace(s.moved_file)},
                      overrides={"vercel_redirect_uri": REDIRECT2})
    try:
        before = d.tokens_bytes()
        s.fake.set_mode("vercel", "500")
        try:
            status, _, body, raw = d.api("GET", BASE + "/status")
        finally:
            s.fake.set_mode("vercel", "normal")
        ok(status == 200 and (body or {}).get("connected") is True,
           "refresh while Vercel fails: status 200, still connected (%r %r)"
           % (status, raw[:200]))
        ok(d.tokens_bytes() == before, "refresh while Vercel fails: file "
           "unchanged")
        n0 = len(s.vstate()["token_requests"])
        body = s.status(d)
        reqs = refresh_requests(s, n0)
        is_([(r["status"], r["error"]) for r in reqs],
            [(400, "invalid_grant")], "a rotated-out refresh token: the "
            "fake refuses it")
        ok(body.get("connected") is False and
           isinstance(body.get("error"), str) and body["error"].strip(),
           "refused refresh: connected false with an error (%r)" % (body,))
        entry = (d.read_tokens() or {}).get("vercel") or {}
        is_(entry.get("access_token"), json.loads(s.moved_file)["vercel"][
            "access_token"], "refused refresh: the entry is kept")
        n1 = len(s.vstate()["token_requests"])
        is_(s.status(d).get("connected"), False, "status again: still "
            "marked")
        is_(refresh_requests(s, n1), [], "status again: no new refresh")
    finally:
        s.retire("refused", d)


def disconnect_oauth_public(s):
    """The main daemon's client is public (no secret): disconnect cannot
    authenticate a revocation, says so, and removes the entry."""
    m = s.mark()
    status, _, body, raw = s.d.api("POST", BASE + "/disconnect")
    ok(status == 200 and body == {"ok": True, "revoked": False},
       'disconnect with a public client: {"ok": true, "revoked": false} (%r)'
       % (raw[:100],))
    is_(s.since(m), [], "and no request to Vercel")
    tokens = s.d.read_tokens() or {}
    ok("vercel" not in tokens and "vercel_client" in tokens and
       tokens.get("other") == {"x": 1},
       "vercel removed; vercel_client and 'other' kept")


def metadata_document(s):
    """RFC 9728 document: public, from configuration whatever the Host
    header says, CORS-readable, never cached; OPTIONS answers CORS."""
    path = "/.well-known/oauth-protected-resource"
    forged = {"Host": "evil.example.net",
              "X-Forwarded-Host": "evil2.example.net",
              "X-Forwarded-Proto": "gopher", "Forwarded": "host=evil3"}
    for d, resource in ((s.d, PUBLIC_URL), (s.ttl, "http://127.0.0.1:8700")):
        status, hdrs, body, raw = d.api("GET", path, token=False,
                                        headers=forged)
        body = body if isinstance(body, dict) else {}
        is_(status, 200, "metadata with a forged Host: 200")
        is_(hdrs.get("content-type", "").split(";")[0], "application/json",
            "metadata: application/json")
        is_(body.get("resource"), resource,
            "metadata: resource is the configured public_url")
        ok(b"evil" not in raw and b"gopher" not in raw,
           "metadata: nothing from the forged headers")
        is_((body.get("authorization_servers"),
             body.get("bearer_methods_supported"),
             body.get("registration_endpoint")),
            (["https://vercel.com"], ["header"],
             "https://api.vercel.com/login/oauth/register"),
            "metadata: authorization_servers, bearer_methods_supported, "
            "registration_endpoint")
        sc = body.get("scopes_supported")
        ok(isinstance(sc, list) and sc and set(sc) <= set(SCOPE.split()),
           "metadata: scopes_supported are Vercel's (%r)" % (sc,))
        is_((hdrs.get("access-control-allow-origin"),
             hdrs.get("cache-control")), ("*", "no-store"),
            "metadata: Access-Control-Allow-Origin *, no-store")
    status, hdrs, _, _ = s.d.api("OPTIONS", path, token=False, headers={
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "GET"})
    is_(status, 200, "OPTIONS metadata: 200")
    ok(hdrs.get("access-control-allow-origin") == "*" and
       "GET" in hdrs.get("access-control-allow-methods", ""),
       "OPTIONS metadata: the CORS headers")


def ttl_flow_expired(s):
    """The ttl daemon's first flow, authorized at once, completed after
    session_ttl + 1 s: 400 page, no exchange, nothing stored."""
    if s.ttl_flow is None:
        ok(False, "the ttl flow was started")
        return
    t0, loc, code = s.ttl_flow
    wait = t0 + TTL + 1 - time.monotonic()
    if wait > 0:
        diag("waiting %.1f s for session_ttl" % wait)
        time.sleep(wait)
    before = s.ttl.tokens_bytes()
    m = s.mark()
    check_failure(s.callback(s.ttl, loc), "callback after session_ttl",
                  ui_origin=None)
    is_(s.token_requests_for(code), [], "the expired flow's code was never "
        "exchanged")
    ok(s.ttl.tokens_bytes() == before, "expired flow: file unchanged")
    is_(s.since(m), [], "expired flow: Vercel not called")


# ---------------------------------------------------------------------------


def verifier_leaks(text, challenges):
    """Strings of text that look like a PKCE verifier and hash to one of
    the challenges."""
    return [v for v in set(re.findall(r"[A-Za-z0-9._~-]{43,128}", text))
            if pkce_s256(v) in challenges]


def no_secret_leaks(s):
    """No token, code, client secret or verifier in any response (beyond
    the identity api.md puts there), daemon log, state_dir, or the fake's
    log."""
    for d in (s.d, s.ttl):
        s.note_tokens(d)
    secrets_ = sorted(s.secrets | {PAT1, PAT2, BAD})
    ok(len(s.challenges) >= 10 and len(s.secrets) >= 10,
       "the scans have material (%d challenges, %d secrets)"
       % (len(s.challenges), len(s.secrets)))
    sources = [("main", s.d.log_text(), s.d.transcript,
                s.d.state_files_text()),
               ("ttl", s.ttl.log_text(), s.ttl.transcript,
                s.ttl.state_files_text())] + s.retired
    for name, log, transcript, state in sources:
        bodies = b"\n".join(raw for _, _, _, raw in transcript).decode(
            "utf-8", "replace")
        cdtest.scrub_check(bodies, secrets_, "%s: no secret in any API "
                           "response or page" % name)
        cdtest.scrub_check(log, secrets_, "%s: no secret in the daemon log"
                           % name)
        cdtest.scrub_check(state, secrets_, "%s: no secret in state_dir"
                           % name)
        for what, text in (("responses", bodies), ("log", log),
                           ("state_dir", state)):
            leaked = verifier_leaks(text, s.challenges)
            if not ok(not leaked, "%s: no PKCE verifier in the %s"
                      % (name, what)):
                diag("leaked verifiers (fingerprints): %s" % ", ".join(
                    cdtest.fingerprint(v) for v in leaked))
        ok("code=" not in log and "?state=" not in log,
           "%s: no callback query in the log" % name)
    with open(os.path.join(s.fake.dir, "fake.log"), "rb") as f:
        cdtest.scrub_check(f.read(), secrets_, "no secret in the fake's "
                           "own log")


def clean_shutdown(s):
    is_(s.d.stop(), 0, "main daemon exits 0 on SIGTERM")
    is_(s.ttl.stop(), 0, "ttl daemon exits 0 on SIGTERM")


if __name__ == "__main__":
    cdtest.run([ttl_flow_begins, nothing_stored, token_accepted,
                status_is_offline, token_rejected, provider_faults,
                malformed_token_requests, reconnect, disconnect,
                oauth_needs_api_token, oauth_start_shape,
                callback_end_to_end, callback_replayed, forged_state,
                missing_code, exchange_end_to_end, caller_redirect_ignored,
                code_refused, userinfo_fallback, provider_refusal,
                callback_payloads, markup_identity, reconnect_oauth,
                disconnect_oauth_public, no_ui_origin, pending_bounded,
                reregister_for_new_redirect, oauth_refresh, refresh_refused,
                metadata_document, ttl_flow_expired, no_secret_leaks,
                clean_shutdown], fixture=scenario)
