#!/usr/bin/python3
"""Fake remote providers for connectord's tests, reached through an HTTPS proxy.

One process plays every remote provider so that the daemon's production URLs
stay unchanged (reference/gh.md section 7):

- a proxy on 127.0.0.1 that answers ``CONNECT <provider host>:443`` with
  ``200 Connection established`` and then terminates TLS itself, with a leaf
  certificate for every provider host signed by a throwaway CA made at start;
  any other CONNECT target, and any non-CONNECT request, gets 403;
- fake provider endpoints behind it, chosen by the request's Host (then the
  TLS SNI, then the CONNECT target), one handler class per provider;
- a plain-HTTP control API on a second loopback port (``/_fake/...``);
- a log of every CONNECT and request, in memory (``GET /_fake/log``) and as
  JSON lines in ``<dir>/fake.log``. Secrets are never logged: credential
  headers and secret query parameters are replaced by a SHA-256 prefix
  (``sha256:<16 hex>``, see fingerprint()), request bodies by their length
  and fingerprint.

When ready it writes ``{"proxy_port", "control_port", "ca_file"}`` to
``<dir>/fake.json`` (atomically), so a test waits for that file.

Only Python 3 standard library and the openssl command line tool.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import select
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Every host a connector may reach. CONNECT to anything else is refused, so
# that a daemon reaching somewhere unexpected shows up as a 403 in the log.
PROVIDER_HOSTS = (
    "api.manus.ai",
    "github.com",
    "api.github.com",
    "api.vercel.com",
    "vercel.com",
    "accounts.google.com",
    "oauth2.googleapis.com",
    "www.googleapis.com",
    "login.microsoftonline.com",
    "graph.microsoft.com",
)

# Headers worth recording, and those among them that carry a secret.
LOGGED_HEADERS = ("user-agent", "accept", "content-type", "content-length",
                  "authorization", "x-manus-api-key", "cookie",
                  "x-github-api-version")
SECRET_HEADERS = ("authorization", "x-manus-api-key", "cookie")
# Query parameters that carry secrets in OAuth-style flows.
SECRET_PARAMS = ("code", "code_verifier", "client_secret", "access_token",
                 "refresh_token", "device_code", "token", "api_key")

HANG_MAX_SEC = 120      # longest a "hang" answer holds a connection
SLOW_DELAY_SEC = 3      # delay of a "slow" answer
BODY_MAX = 1024 * 1024  # largest request body the fake reads
MODES = ("normal", "500", "garbage", "hang", "slow")
# Faults of one route (POST /_fake/fault), unlike MODES which hit every
# route of a provider: "500" (the provider's own 500 shape), "garbage" (200
# text/html that is not JSON), "truncated" (200 application/json cut in the
# middle of a document), "wrong_type" (the route's normal answer labelled
# text/html), "hang" (never answers), "slow" (the normal answer after
# "delay" seconds). "normal" removes the route's faults.
FAULT_MODES = ("500", "garbage", "truncated", "wrong_type", "hang", "slow")
GARBAGE_BODY = b"<html><body><h1>Service temporarily garbled</h1>"
TRUNCATED_BODY = b'{"access_token": "tru'
FAULT_DELAY_MAX = 60    # longest "slow" delay a fault may ask for


def fingerprint(secret):
    """Stand-in for a secret in logs: tests compute the same value to check
    which key the daemon sent without the key ever being written to disk."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8", "surrogateescape")
    return "sha256:" + hashlib.sha256(secret).hexdigest()[:16]


def redact_header(name, value):
    """Keep an Authorization scheme ("Bearer") visible, hash the rest."""
    if name not in SECRET_HEADERS:
        return value
    if name == "authorization" and " " in value:
        scheme, cred = value.split(" ", 1)
        return scheme + " " + fingerprint(cred.strip())
    return fingerprint(value)


def redact_path(path):
    """Replace the values of secret query parameters by fingerprints."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    out = [(k, fingerprint(v) if k in SECRET_PARAMS else v) for k, v in pairs]
    return base + "?" + urllib.parse.urlencode(out, safe=":")


class Log:
    """The request log: a list for the control API, JSON lines on disk."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.entries = []
        self.seq = 0

    def add(self, **entry):
        with self.lock:
            self.seq += 1
            entry = {"seq": self.seq, "time": round(time.time(), 3), **entry}
            self.entries.append(entry)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")

    def snapshot(self):
        with self.lock:
            return list(self.entries)

    def clear(self):
        with self.lock:
            self.entries = []
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"kind": "reset",
                                    "time": round(time.time(), 3)}) + "\n")


class Request:
    """What a provider handler sees of one request."""

    def __init__(self, method, path, headers, body, host=None):
        self.method = method
        self.host = host            # the Host header's name, lower case
        self.target = path
        self.path, _, self.query_string = path.partition("?")
        self.query = urllib.parse.parse_qs(self.query_string)
        self.headers = headers      # http.client.HTTPMessage, case-insensitive
        self.body = body
        self.fault = None           # the per-route fault applied, if any

    def json(self):
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class Response:
    """One answer: status, headers, body bytes."""

    def __init__(self, status, body=b"", content_type="application/json",
                 headers=None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = {"Content-Type": content_type, **(headers or {})}


# Returned by a provider to hold the connection without ever answering.
HANG = object()


class Provider:
    """Base of the fake providers: host names, a scenario mode, routes.

    A subclass sets ``name`` and ``hosts``, fills ``routes`` with
    ``(method, path) -> bound method(req)``, and may add control actions
    (``POST /_fake/<name>/<action>``) as ``control_<action>(body)``. The
    failure modes are applied here, once, for every route of the provider.
    """

    name = None
    hosts = ()

    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "normal"
        self.routes = {}
        self.faults = []    # per-route faults, oldest first (add_fault)
        self.fault_lock = threading.Lock()

    def reset(self):
        """Back to normal mode, no fault; subclasses also forget
        registered state."""
        self.mode = "normal"
        with self.fault_lock:
            self.faults = []

    def error_500(self):
        return Response(500, {"message": "boom"})

    def not_found(self, req):
        return Response(404, {"message": "Not Found"})

    def handle(self, req):
        """Apply the current mode, then the route. Returns a Response or
        HANG."""
        mode = self.mode
        if mode == "500":
            return self.error_500()
        if mode == "garbage":
            return Response(200, b"<html>not json", "text/html")
        if mode == "hang":
            return HANG
        if mode == "slow":
            time.sleep(SLOW_DELAY_SEC)
        fault = self.take_fault(req)
        if fault is not None:
            req.fault = fault["mode"]
            if fault["mode"] == "500":
                return self.error_500()
            if fault["mode"] == "garbage":
                return Response(200, GARBAGE_BODY, "text/html")
            if fault["mode"] == "truncated":
                return Response(200, TRUNCATED_BODY)
            if fault["mode"] == "hang":
                return HANG
            if fault["mode"] == "slow":
                time.sleep(fault["delay"])
        resp = self.route(req)
        if fault is not None and fault["mode"] == "wrong_type" and \
                resp is not HANG:
            resp.headers["Content-Type"] = "text/html"
        return resp

    def route(self, req):
        route = self.routes.get((req.method, req.path)) or \
            self.match_route(req)
        return route(req) if route else self.not_found(req)

    def match_route(self, req):
        """A route for a path with a parameter in it, or None."""
        return None

    # -- per-route faults

    def add_fault(self, body):
        """{"path", "mode", "method"?, "times"?, "delay"?, scope...}: the
        next "times" requests (every one when absent) to path (and method)
        get the fault. Mode "normal" removes the path's faults. Scope keys
        are provider-specific (fault_scope); a fault with a scope only hits
        requests inside it. Returns the faults now set."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        path = require_str(body, "path")
        mode = require_str(body, "mode")
        method = body.get("method")
        times = body.get("times")
        delay = body.get("delay", SLOW_DELAY_SEC)
        if mode != "normal" and mode not in FAULT_MODES:
            raise BadControl("unknown fault mode %r" % mode)
        if method is not None and method not in ("GET", "POST", "PUT",
                                                 "PATCH", "DELETE"):
            raise BadControl("bad method %r" % (method,))
        if times is not None and (not isinstance(times, int) or
                                  isinstance(times, bool) or times < 1):
            raise BadControl("times must be a positive integer or null")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                or not 0 <= delay <= FAULT_DELAY_MAX:
            raise BadControl("delay must be 0 to %d seconds"
                             % FAULT_DELAY_MAX)
        scope = {k: v for k, v in body.items() if k not in
                 ("provider", "path", "mode", "method", "times", "delay")}
        self.check_fault_scope(scope)
        with self.fault_lock:
            if mode == "normal":
                self.faults = [f for f in self.faults if f["path"] != path
                               or (method and f["method"] not in
                                   (None, method))]
            else:
                self.faults.append({"path": path, "method": method,
                                    "mode": mode, "times": times,
                                    "delay": delay, "scope": scope,
                                    "hits": 0})
            return [dict(f) for f in self.faults]

    def check_fault_scope(self, scope):
        """Raise BadControl for scope keys this provider does not know."""
        if scope:
            raise BadControl("unknown fault keys %s" % sorted(scope))

    def fault_scope(self, req, scope):
        """True when req is inside a fault's scope."""
        return True

    def take_fault(self, req):
        """The first fault for req (its use counted), or None."""
        with self.fault_lock:
            for f in self.faults:
                if f["path"] != req.path or \
                        f["method"] not in (None, req.method):
                    continue
                if f["scope"] and not self.fault_scope(req, f["scope"]):
                    continue
                f["hits"] += 1
                if f["times"] is not None:
                    f["times"] -= 1
                    if f["times"] == 0:
                        self.faults.remove(f)
                return dict(f)
        return None

    def faults_state(self):
        with self.fault_lock:
            return [dict(f) for f in self.faults]


class Manus(Provider):
    """api.manus.ai: API keys checked with GET /v2/task.list
    (reference/seed-service.md section 7)."""

    name = "manus"
    hosts = ("api.manus.ai",)

    def __init__(self):
        super().__init__()
        self.keys = set()
        self.routes = {("GET", "/v2/task.list"): self.task_list}

    def reset(self):
        super().reset()
        with self.lock:
            self.keys.clear()

    def error_500(self):
        return Response(500, {"ok": False, "error": {
            "code": "internal", "message": "boom"}})

    def task_list(self, req):
        key = req.headers.get("x-manus-api-key")
        with self.lock:
            valid = key is not None and key in self.keys
        if not valid:
            return Response(401, {"ok": False, "error": {
                "code": "permission_denied", "message": "invalid api key"}})
        return Response(200, {"ok": True, "data": []})

    def control_keys(self, body):
        """Register a key that the fake then accepts."""
        with self.lock:
            self.keys.add(require_str(body, "key"))
        return Response(200, {"ok": True})

    def control_revoke(self, body):
        """Forget a key: the next check with it gets 401."""
        with self.lock:
            self.keys.discard(require_str(body, "key"))
        return Response(200, {"ok": True})


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GH_SCOPES = "repo, read:org, gist"      # X-OAuth-Scopes of every token
USER_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
OAUTH_ERRORS = {    # GitHub's error_description for each error code
    "authorization_pending": "The authorization request is still pending.",
    "slow_down": "Too many requests have been made in the same timeframe.",
    "expired_token": "The `device_code` has expired.",
    "access_denied": "The authorization request was denied.",
    "incorrect_device_code": "The device_code provided is not valid.",
    "incorrect_client_credentials":
        "The client_id and/or client_secret passed are incorrect.",
    "unsupported_grant_type":
        "The grant type is not supported by the authorization server.",
}
DERIVED = object()   # github_user(): make the name up from the login


def github_user(login, uid=None, name=DERIVED):
    """A /user document like GitHub's (the fields a client may read).
    name may be None: GitHub's is null for accounts that never set one."""
    if uid is None:
        uid = 1000 + int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
    return {
        "login": login, "id": uid,
        "node_id": "U_fake%d" % uid,
        "avatar_url": "https://avatars.githubusercontent.com/u/%d?v=4" % uid,
        "html_url": "https://github.com/" + login,
        "url": "https://api.github.com/users/" + login,
        "type": "User", "site_admin": False,
        "name": login.replace("-", " ").title() if name is DERIVED else name,
        "company": None, "blog": "", "location": None, "email": None,
        "bio": None, "public_repos": 3, "followers": 0, "following": 0,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }


class DeviceCode:
    """One device authorization: "pending" until approved, denied or
    expired; "issued" once the token went out."""

    def __init__(self, client_id, scope, expires_in, interval):
        self.device_code = secrets.token_hex(20)
        self.user_code = "%s-%s" % tuple(
            "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(4))
            for _ in range(2))
        self.client_id = client_id
        self.scope = scope
        self.expires_in = expires_in
        self.interval = interval
        self.created = time.time()
        self.status = "pending"
        self.user = None        # set on approval
        self.token = None       # set when issued
        self.polls = 0
        self.last_poll = None

    def effective_status(self):
        if self.status == "pending" and \
                time.time() > self.created + self.expires_in:
            return "expired"
        return self.status

    def public(self):
        """For /_fake/github/state: the device code as a fingerprint."""
        return {"user_code": self.user_code,
                "device_code": fingerprint(self.device_code),
                "client_id": self.client_id, "scope": self.scope,
                "status": self.effective_status(),
                "login": self.user["login"] if self.user else None,
                "token": fingerprint(self.token) if self.token else None,
                "expires_in": self.expires_in, "interval": self.interval,
                "created": round(self.created, 3), "polls": self.polls,
                "last_poll": self.last_poll}


class GitHub(Provider):
    """github.com (device flow, as gh 2.23 drives it) and api.github.com
    (GraphQL viewer query, GET /user for PATs): reference/gh.md 5, 6, 9.

    The OAuth endpoints answer form-urlencoded unless the client asks for
    JSON with Accept: application/json, and carry errors in a 200 body,
    like GitHub. Tokens are known either from the device flow or from
    POST /_fake/github/pat; revoking one makes every check with it 401.
    """

    name = "github"
    hosts = ("github.com", "api.github.com")
    DEFAULTS = {"expires_in": 900, "interval": 1, "device_mode": "normal",
                "graphql_mode": "normal", "poll_error": None}
    DEVICE_MODES = ("normal", "404")
    GRAPHQL_MODES = ("normal", "401")
    POLL_ERRORS = (None, "slow_down", "incorrect_client_credentials")

    def __init__(self):
        super().__init__()
        self.config = dict(self.DEFAULTS)
        self.codes = []         # DeviceCode, oldest first
        self.tokens = {}        # token -> {"user", "source", "scopes"}
        self.revoked = set()    # fingerprints of revoked tokens
        self.routes = {
            ("POST", "/login/device/code"): self.device_code,
            ("POST", "/login/oauth/access_token"): self.access_token,
            ("POST", "/graphql"): self.graphql,
            ("GET", "/user"): self.user,
            ("GET", "/"): self.api_root,
        }

    def reset(self):
        super().reset()
        with self.lock:
            self.config = dict(self.DEFAULTS)
            self.codes = []
            self.tokens = {}
            self.revoked = set()

    def error_500(self):
        return Response(500, {"message": "Server Error"})

    def not_found(self, req):
        return Response(404, {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest"})

    # -- helpers

    @staticmethod
    def form(req):
        """The form body as {name: first value}."""
        text = (req.body or b"").decode("utf-8", "replace")
        return {k: v[0] for k, v in
                urllib.parse.parse_qs(text, keep_blank_values=True).items()}

    @staticmethod
    def oauth_reply(req, fields, status=200):
        """Form-urlencoded unless the client accepts JSON, like GitHub."""
        accept = (req.headers.get("Accept") or "").lower()
        if "application/json" in accept:
            return Response(status, fields)
        return Response(status, urllib.parse.urlencode(
            [(k, v) for k, v in fields.items() if v is not None]),
            "application/x-www-form-urlencoded; charset=utf-8")

    def oauth_error(self, req, code):
        return self.oauth_reply(req, {
            "error": code, "error_description": OAUTH_ERRORS[code],
            "error_uri": "https://docs.github.com/developers/apps/"
                         "authorizing-oauth-apps#error-codes-for-the-"
                         "device-flow"})

    def bearer(self, req):
        """The known, unrevoked token of an Authorization header ("token X"
        or "Bearer X"), or None."""
        value = req.headers.get("Authorization") or ""
        scheme, _, cred = value.partition(" ")
        cred = cred.strip()
        if scheme.lower() not in ("token", "bearer") or not cred:
            return None
        with self.lock:
            return cred if cred in self.tokens else None

    @staticmethod
    def bad_credentials():
        return Response(401, {
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest"})

    @staticmethod
    def wrong_host(req, host):
        """The OAuth endpoints live on github.com, the API on
        api.github.com: the wrong host is a client bug, answered 404."""
        return req.host is not None and req.host != host

    # -- per-route faults scoped to one device flow

    def check_fault_scope(self, scope):
        """{"user_code": "XXXX-XXXX"}: the fault hits only the token polls
        of that device code, so that flows running side by side each get
        their own fault."""
        if set(scope) - {"user_code"} or not all(
                isinstance(v, str) and v for v in scope.values()):
            raise BadControl("a GitHub fault's only scope is user_code")

    def fault_scope(self, req, scope):
        device = self.form(req).get("device_code")
        with self.lock:
            return any(c.device_code == device and
                       c.user_code == scope["user_code"] for c in self.codes)

    # -- github.com: the device flow

    def device_code(self, req):
        if self.wrong_host(req, "github.com"):
            return self.not_found(req)
        with self.lock:
            cfg = dict(self.config)
        if cfg["device_mode"] == "404":
            # gh then falls back to the browser flow (gh.md section 5).
            return Response(404, b"Not Found", "text/plain")
        f = self.form(req)
        if not f.get("client_id"):
            return self.oauth_error(req, "incorrect_client_credentials")
        code = DeviceCode(f["client_id"], f.get("scope", ""),
                          cfg["expires_in"], cfg["interval"])
        with self.lock:
            self.codes.append(code)
        return self.oauth_reply(req, {
            "device_code": code.device_code, "user_code": code.user_code,
            "verification_uri": "https://github.com/login/device",
            "expires_in": code.expires_in, "interval": code.interval})

    def access_token(self, req):
        if self.wrong_host(req, "github.com"):
            return self.not_found(req)
        f = self.form(req)
        if f.get("grant_type") != DEVICE_GRANT:
            return self.oauth_error(req, "unsupported_grant_type")
        with self.lock:
            code = next((c for c in self.codes
                         if c.device_code == f.get("device_code")), None)
            if code is None:
                return self.oauth_error(req, "incorrect_device_code")
            code.polls += 1
            code.last_poll = round(time.time(), 3)
            if f.get("client_id") != code.client_id:
                return self.oauth_error(req, "incorrect_client_credentials")
            status = code.effective_status()
            if status == "pending" and self.config["poll_error"]:
                return self.oauth_error(req, self.config["poll_error"])
            if status == "pending":
                return self.oauth_error(req, "authorization_pending")
            if status == "denied":
                return self.oauth_error(req, "access_denied")
            if status == "expired":
                return self.oauth_error(req, "expired_token")
            if status == "issued":  # a device code is good for one token
                return self.oauth_error(req, "incorrect_device_code")
            # approved
            token = "gho_" + "".join(
                secrets.choice(USER_CODE_ALPHABET + USER_CODE_ALPHABET.lower())
                for _ in range(36))
            code.token = token
            code.status = "issued"
            self.tokens[token] = {"user": code.user, "source": "device",
                                  "scopes": GH_SCOPES}
        return self.oauth_reply(req, {
            "access_token": token, "token_type": "bearer",
            "scope": GH_SCOPES.replace(" ", "")})

    # -- api.github.com

    def graphql(self, req):
        if self.wrong_host(req, "api.github.com"):
            return self.not_found(req)
        token = self.bearer(req)
        with self.lock:
            forced = self.config["graphql_mode"] == "401"
            entry = self.tokens.get(token) if token else None
        if entry is None or forced:
            return self.bad_credentials()
        return Response(200, {"data": {"viewer": {
            "login": entry["user"]["login"]}}})

    def user(self, req):
        if self.wrong_host(req, "api.github.com"):
            return self.not_found(req)
        token = self.bearer(req)
        with self.lock:
            entry = self.tokens.get(token) if token else None
        if entry is None:
            return self.bad_credentials()
        return Response(200, entry["user"], headers={
            "X-OAuth-Scopes": entry["scopes"],
            "X-Accepted-OAuth-Scopes": "",
            "X-GitHub-Media-Type": "github.v3; format=json"})

    def api_root(self, req):
        """GET https://api.github.com/ (gh auth status, --with-token)."""
        if self.wrong_host(req, "api.github.com"):
            return self.not_found(req)
        token = self.bearer(req)
        with self.lock:
            entry = self.tokens.get(token) if token else None
        if req.headers.get("Authorization") and entry is None:
            return self.bad_credentials()
        headers = {"X-OAuth-Scopes": entry["scopes"]} if entry else {}
        return Response(200, {"current_user_url":
                              "https://api.github.com/user"}, headers=headers)

    # -- control

    def find_code(self, body, *statuses):
        """The named device code (user_code), else the newest one in one of
        the statuses. Call with the lock held."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        want = body.get("user_code")
        for c in reversed(self.codes):
            if want is not None and c.user_code != want:
                continue
            if want is not None or c.effective_status() in statuses:
                return c
        raise LookupError("no such device code" if want else
                          "no pending device code")

    @staticmethod
    def id_and_name(body):
        """Optional "id" (an integer) and "name" (a string, or null for an
        account without one) of a control request."""
        uid, name = body.get("id"), body.get("name", DERIVED)
        if uid is not None and (not isinstance(uid, int) or
                                isinstance(uid, bool)):
            raise BadControl("field 'id' must be an integer")
        if name is not DERIVED and name is not None and \
                not isinstance(name, str):
            raise BadControl("field 'name' must be a string or null")
        return uid, name

    def control_pat(self, body):
        """Register a token (a PAT) for a user: {"token", "login", "id",
        "name", "scopes"?}."""
        token = require_str(body, "token")
        login = require_str(body, "login")
        user = github_user(login, *self.id_and_name(body))
        scopes = body.get("scopes", GH_SCOPES)
        with self.lock:
            self.tokens[token] = {"user": user, "source": "pat",
                                  "scopes": scopes}
            self.revoked.discard(fingerprint(token))
        return Response(200, {"ok": True, "user": user})

    def control_revoke(self, body):
        """Forget a token (PAT or device-flow): every check gets 401."""
        token = require_str(body, "token")
        with self.lock:
            known = self.tokens.pop(token, None) is not None
            self.revoked.add(fingerprint(token))
        return Response(200, {"ok": True, "known": known})

    def control_approve(self, body):
        """Approve the newest pending device code (or {"user_code"}) for
        {"login"} (default octo-fake), optional "id" and "name"."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        login = body.get("login", "octo-fake")
        if not isinstance(login, str) or not login:
            raise BadControl("field 'login' must be a non-empty string")
        user = github_user(login, *self.id_and_name(body))
        with self.lock:
            c = self.find_code(body, "pending")
            if c.effective_status() != "pending":
                raise BadControl("device code %s is %s"
                                 % (c.user_code, c.effective_status()))
            c.status, c.user = "approved", user
            return Response(200, {"ok": True, "user_code": c.user_code,
                                  "user": user})

    def end_code(self, body, status):
        with self.lock:
            c = self.find_code(body, "pending", "approved")
            if c.effective_status() not in ("pending", "approved"):
                raise BadControl("device code %s is %s"
                                 % (c.user_code, c.effective_status()))
            c.status = status
            return Response(200, {"ok": True, "user_code": c.user_code})

    def control_deny(self, body):
        """The user cancels at github.com: polls get access_denied."""
        return self.end_code(body, "denied")

    def control_expire(self, body):
        """The device code times out: polls get expired_token."""
        return self.end_code(body, "expired")

    def control_config(self, body):
        """{"expires_in", "interval", "device_mode": "normal"|"404",
        "graphql_mode": "normal"|"401", "poll_error": null|"slow_down"|...};
        keys not given keep their value."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        new = {}
        for k, v in body.items():
            if k not in self.DEFAULTS:
                raise BadControl("unknown config key %r" % k)
            if k in ("expires_in", "interval") and \
                    (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise BadControl("%s must be a positive integer" % k)
            if (k == "device_mode" and v not in self.DEVICE_MODES) or \
                    (k == "graphql_mode" and v not in self.GRAPHQL_MODES) or \
                    (k == "poll_error" and v not in self.POLL_ERRORS):
                raise BadControl("bad value for %s: %r" % (k, v))
            new[k] = v
        with self.lock:
            self.config.update(new)
            return Response(200, {"ok": True, "config": dict(self.config)})

    def state(self):
        with self.lock:
            return {"mode": self.mode, "config": dict(self.config),
                    "codes": [c.public() for c in self.codes],
                    "tokens": [{"token": fingerprint(t),
                                "login": e["user"]["login"],
                                "source": e["source"]}
                               for t, e in self.tokens.items()],
                    "revoked": sorted(self.revoked)}


# ---------------------------------------------------------------------------
# Google and Microsoft: the authorization-code flow as rclone 1.60 drives it
# (reference/rclone.md sections 2.2, 2.3, 5 and 10).

OAUTH_ERROR_TEXT = {
    "invalid_request": "A required parameter is missing or malformed.",
    "unsupported_response_type": "Only response_type=code is supported.",
    "invalid_client": "The client could not be authenticated.",
    "invalid_grant": "The code or refresh token is unknown, already used, "
                     "or was issued to another client.",
    "redirect_uri_mismatch": "The redirect_uri differs from the one of the "
                             "authorization request.",
    "unsupported_grant_type": "The grant type is not supported.",
}


def random_guid():
    h = secrets.token_hex(16)
    return "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))


class AuthCode:
    """One authorization code: "issued" until a token request redeems it
    ("redeemed"); a code works once."""

    def __init__(self, code, client_id, redirect_uri, scope, state):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.state = state
        self.status = "issued"
        self.created = time.time()

    def public(self):
        """For /_fake/<provider>/state: the code as a fingerprint."""
        return {"code": fingerprint(self.code), "client_id": self.client_id,
                "redirect_uri": self.redirect_uri, "scope": self.scope,
                "state": self.state, "status": self.status,
                "created": round(self.created, 3)}


class OAuthProvider(Provider):
    """An OAuth 2.0 authorization server for the code flow:

    - ``GET <auth_path>`` on ``auth_host`` needs response_type=code,
      client_id, redirect_uri and state (else 400 invalid_request), and
      answers 302 to ``<redirect_uri>?...code=<fresh code>&state=<state>``,
      which is the URL a person would paste. After ``control_deny`` the next
      one redirects with ``error=access_denied`` and the state instead.
    - ``POST <token_path>`` on ``token_host``: grant_type=authorization_code
      with a code it issued, for the same client_id and redirect_uri (each
      code works once), or grant_type=refresh_token; else a 400 OAuth error.
      Client credentials are accepted in HTTP Basic or in the form body.
      ``token_mode`` "400" refuses every request with invalid_grant, "hang"
      never answers.

    Access tokens it issued are known to the provider's API routes.
    """

    auth_host = auth_path = token_host = token_path = None
    DEFAULTS = {"token_mode": "normal"}
    TOKEN_MODES = ("normal", "400", "hang")

    def __init__(self):
        super().__init__()
        self.config = dict(self.DEFAULTS)
        self.codes = {}             # code -> AuthCode
        self.tokens = {}            # access token -> grant facts
        self.refresh_tokens = {}    # refresh token -> grant facts
        self.deny_next = 0
        self.token_requests = []    # what each token request carried
        self.routes = {("GET", self.auth_path): self.authorize,
                       ("POST", self.token_path): self.token}

    def reset(self):
        super().reset()
        with self.lock:
            self.config = dict(self.DEFAULTS)
            self.codes = {}
            self.tokens = {}
            self.refresh_tokens = {}
            self.deny_next = 0
            self.token_requests = []

    # -- what a subclass varies

    def new_code(self):
        raise NotImplementedError

    def new_tokens(self):
        """(access token, refresh token)."""
        raise NotImplementedError

    def redirect_params(self, code, state, scope):
        return [("code", code), ("state", state)]

    def deny_params(self, state):
        return [("error", "access_denied"), ("state", state)]

    def token_answer(self, access, refresh, scope):
        return {"access_token": access, "token_type": "Bearer",
                "refresh_token": refresh, "expires_in": 3599, "scope": scope}

    # -- helpers

    @staticmethod
    def wrong_host(req, host):
        return req.host is not None and req.host != host

    @staticmethod
    def form(req):
        text = (req.body or b"").decode("utf-8", "replace")
        return {k: v[0] for k, v in
                urllib.parse.parse_qs(text, keep_blank_values=True).items()}

    @staticmethod
    def basic_auth(req):
        """(client_id, client_secret) of an HTTP Basic header, or None."""
        value = req.headers.get("Authorization") or ""
        scheme, _, cred = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(cred.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        cid, sep, secret = raw.partition(":")
        if not sep:
            return None
        unq = urllib.parse.unquote_plus     # RFC 6749 section 2.3.1
        return unq(cid), unq(secret)

    @staticmethod
    def oauth_error(code, status=400):
        return Response(status, {"error": code,
                                 "error_description": OAUTH_ERROR_TEXT[code]})

    @staticmethod
    def with_query(url, pairs):
        sep = "&" if "?" in url else "?"
        return url + sep + urllib.parse.urlencode(pairs)

    def bearer(self, req):
        """The grant facts of a Bearer token this provider issued, or
        None."""
        value = req.headers.get("Authorization") or ""
        scheme, _, cred = value.partition(" ")
        if scheme.lower() != "bearer" or not cred.strip():
            return None
        with self.lock:
            return self.tokens.get(cred.strip())

    # -- the endpoints

    def authorize(self, req):
        if self.wrong_host(req, self.auth_host):
            return self.not_found(req)
        q = {k: v[0] for k, v in req.query.items()}
        for k in ("response_type", "client_id", "redirect_uri", "state"):
            if not q.get(k):
                return Response(400, {
                    "error": "invalid_request",
                    "error_description": "Missing parameter: " + k})
        if q["response_type"] != "code":
            return self.oauth_error("unsupported_response_type")
        redirect = q["redirect_uri"]
        if not redirect.startswith(("http://", "https://")):
            return Response(400, {"error": "invalid_request",
                                  "error_description": "bad redirect_uri"})
        with self.lock:
            if self.deny_next > 0:
                self.deny_next -= 1
                return Response(302, b"", "text/html", headers={
                    "Location": self.with_query(
                        redirect, self.deny_params(q["state"]))})
            code = self.new_code()
            scope = q.get("scope", "")
            self.codes[code] = AuthCode(code, q["client_id"], redirect, scope,
                                        q["state"])
        return Response(302, b"", "text/html", headers={
            "Location": self.with_query(
                redirect, self.redirect_params(code, q["state"], scope))})

    def token(self, req):
        if self.wrong_host(req, self.token_host):
            return self.not_found(req)
        f = self.form(req)
        basic = self.basic_auth(req)
        client_id = basic[0] if basic else f.get("client_id")
        with self.lock:
            mode = self.config["token_mode"]
            self.token_requests.append({
                "grant_type": f.get("grant_type"),
                "auth_style": "basic" if basic else
                              "form" if "client_id" in f else "none",
                "client_id": client_id,
                "client_secret": bool(basic[1] if basic else
                                      f.get("client_secret")),
                "redirect_uri": f.get("redirect_uri"),
                "code": fingerprint(f["code"]) if f.get("code") else None,
                "time": round(time.time(), 3)})
        if mode == "hang":
            return HANG
        if mode == "400":
            return self.oauth_error("invalid_grant")
        if not client_id:
            return self.oauth_error("invalid_client", 401)
        grant = f.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                c = self.codes.get(f.get("code") or "")
                if c is None or c.status != "issued" or \
                        c.client_id != client_id:
                    return self.oauth_error("invalid_grant")
                if f.get("redirect_uri") != c.redirect_uri:
                    return self.oauth_error("redirect_uri_mismatch")
                c.status = "redeemed"
                scope = c.scope
                access, refresh = self.new_tokens()
            elif grant == "refresh_token":
                old = self.refresh_tokens.get(f.get("refresh_token") or "")
                if old is None or old["client_id"] != client_id:
                    return self.oauth_error("invalid_grant")
                scope = old["scope"]
                access, refresh = self.new_tokens()
                refresh = f["refresh_token"]
            else:
                return self.oauth_error("unsupported_grant_type")
            facts = {"client_id": client_id, "scope": scope,
                     "grant_type": grant, "refresh_token": refresh}
            self.tokens[access] = facts
            self.refresh_tokens[refresh] = facts
        return Response(200, self.token_answer(access, refresh, scope),
                        headers={"Cache-Control": "no-store",
                                 "Pragma": "no-cache"})

    # -- control

    def control_deny(self, body):
        """The person refuses at the consent screen: the next authorize
        redirects with error=access_denied instead of a code."""
        with self.lock:
            self.deny_next += 1
        return Response(200, {"ok": True})

    def control_config(self, body):
        """Keys of DEFAULTS; keys not given keep their value."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        new = {}
        for k, v in body.items():
            allowed = getattr(self, k.upper() + "S", None) \
                if k.endswith("_mode") else None
            if k not in self.DEFAULTS or allowed is None or v not in allowed:
                raise BadControl("bad config %s=%r" % (k, v))
            new[k] = v
        with self.lock:
            self.config.update(new)
            return Response(200, {"ok": True, "config": dict(self.config)})

    def state(self):
        with self.lock:
            return {"mode": self.mode, "config": dict(self.config),
                    "deny_pending": self.deny_next,
                    "codes": [c.public() for c in self.codes.values()],
                    "tokens": [{"access_token": fingerprint(t),
                                "refresh_token": fingerprint(
                                    f["refresh_token"]),
                                "client_id": f["client_id"],
                                "scope": f["scope"],
                                "grant_type": f["grant_type"]}
                               for t, f in self.tokens.items()],
                    "token_requests": list(self.token_requests)}


class Google(OAuthProvider):
    """accounts.google.com (consent), oauth2.googleapis.com (tokens):
    rclone's compiled-in drive endpoints. Codes look like Google's
    ("4/0A..."): the slash arrives percent-encoded in the redirect, so a
    client that does not decode the pasted value once sends a code the
    token endpoint does not know. The redirect carries state, code and
    scope, in Google's order."""

    name = "google"
    hosts = ("accounts.google.com", "oauth2.googleapis.com",
             "www.googleapis.com")
    auth_host, auth_path = "accounts.google.com", "/o/oauth2/auth"
    token_host, token_path = "oauth2.googleapis.com", "/token"

    def error_500(self):
        return Response(500, {"error": {"code": 500, "message":
                                        "Internal error",
                                        "status": "INTERNAL"}})

    def new_code(self):
        return "4/0A" + secrets.token_urlsafe(54)

    def new_tokens(self):
        return ("ya29.a0" + secrets.token_urlsafe(96),
                "1//0" + secrets.token_urlsafe(72))

    def redirect_params(self, code, state, scope):
        return [("state", state), ("code", code), ("scope", scope)]


FAKE_DRIVE = {"id": "b!fakeDriveId123", "driveType": "personal",
              "name": "OneDrive",
              "owner": {"user": {"displayName": "Fake User",
                                 "id": "fakeuser123"}},
              "quota": {"total": 5368709120, "used": 1024,
                        "remaining": 5368708096, "state": "normal"}}


class Microsoft(OAuthProvider):
    """login.microsoftonline.com (consent and tokens, "common" tenant) and
    graph.microsoft.com (the drive rclone's onedrive backend needs):
    ``GET /v1.0/me/drive`` and ``/v1.0/me/drives`` answer the fake drive
    (id b!fakeDriveId123, personal) for a token issued here, else 401;
    ``GET /v1.0/drives/<id>/root`` its root item. ``graph_mode`` "401"
    refuses every token, "500" fails every Graph call."""

    name = "microsoft"
    hosts = ("login.microsoftonline.com", "graph.microsoft.com")
    auth_host = token_host = "login.microsoftonline.com"
    auth_path = "/common/oauth2/v2.0/authorize"
    token_path = "/common/oauth2/v2.0/token"
    DEFAULTS = {"token_mode": "normal", "graph_mode": "normal"}
    GRAPH_MODES = ("normal", "401", "500")

    def __init__(self):
        super().__init__()
        self.routes.update({
            ("GET", "/v1.0/me/drive"): self.me_drive,
            ("GET", "/v1.0/me/drives"): self.me_drives,
        })

    def match_route(self, req):
        parts = req.path.split("/")     # "", "v1.0", "drives", id, "root"
        if req.method == "GET" and len(parts) == 5 and \
                parts[1:3] == ["v1.0", "drives"] and parts[4] == "root":
            return self.drive_root
        return None

    def error_500(self):
        return Response(500, {"error": {"code": "generalException",
                                        "message": "boom"}})

    def new_code(self):
        return "M.C507_BAY.2.U." + random_guid()

    def new_tokens(self):
        return ("EwB4A8l6BAAU" + secrets.token_urlsafe(120),
                "M.C507_BAY.0.U.-C" + secrets.token_urlsafe(90))

    def deny_params(self, state):
        return [("error", "access_denied"),
                ("error_description", "The user has denied access to the "
                                      "scope requested by the client "
                                      "application."),
                ("state", state)]

    def token_answer(self, access, refresh, scope):
        return {"token_type": "Bearer", "scope": scope, "expires_in": 3600,
                "ext_expires_in": 3600, "access_token": access,
                "refresh_token": refresh}

    # -- graph.microsoft.com

    def graph_check(self, req):
        """None when the request may go on, else the error Response."""
        if self.wrong_host(req, "graph.microsoft.com"):
            return self.not_found(req)
        with self.lock:
            gmode = self.config["graph_mode"]
        if gmode == "500":
            return self.error_500()
        if gmode == "401" or self.bearer(req) is None:
            return Response(401, {"error": {
                "code": "InvalidAuthenticationToken",
                "message": "Access token is empty or invalid."}},
                headers={"WWW-Authenticate": 'Bearer realm=""'})
        return None

    def me_drive(self, req):
        return self.graph_check(req) or Response(200, FAKE_DRIVE)

    def me_drives(self, req):
        return self.graph_check(req) or Response(200, {"value": [FAKE_DRIVE]})

    def drive_root(self, req):
        err = self.graph_check(req)
        if err:
            return err
        drive_id = urllib.parse.unquote(req.path.split("/")[3])
        if drive_id != FAKE_DRIVE["id"]:
            return Response(404, {"error": {"code": "itemNotFound",
                                            "message": "Item not found"}})
        return Response(200, {
            "id": "root-id", "name": "root",
            "webUrl": "https://onedrive.live.com/?cid=fakeuser123",
            "folder": {"childCount": 0}, "root": {},
            "parentReference": {"driveId": FAKE_DRIVE["id"],
                                "driveType": FAKE_DRIVE["driveType"]}})

    def control_config(self, body):
        """{"token_mode": "normal"|"400"|"hang",
        "graph_mode": "normal"|"401"|"500"}."""
        return super().control_config(body)


# ---------------------------------------------------------------------------
# Vercel: REST tokens checked with GET /v2/user, and "Sign in with Vercel"
# (authorization code with PKCE S256, RFC 7591 registration, OIDC userinfo):
# reference/specs.md section 9, reference/seed-service.md section 6.

VERCEL_SCOPES = ("openid", "email", "profile", "offline_access")
PKCE_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz0123456789-._~")
B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "abcdefghijklmnopqrstuvwxyz0123456789-_")
VERCEL_CODE_TTL = 600       # seconds an authorization code stays good
VERCEL_TOKEN_TTL = 3600     # expires_in of an access token


def pkce_s256(verifier):
    """RFC 7636 S256: BASE64URL-NOPAD(SHA256(ASCII(verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def valid_verifier(v):
    """RFC 7636 section 4.1: 43 to 128 unreserved characters."""
    return isinstance(v, str) and 43 <= len(v) <= 128 and \
        set(v) <= PKCE_VERIFIER_CHARS


class VercelCode:
    """One authorization code, bound to the client, the redirect URI and
    the PKCE challenge of its authorization request; good once.
    status: "issued", "redeemed", or "failed" (a refused redemption also
    spends it)."""

    def __init__(self, client_id, redirect_uri, challenge, scope, state,
                 username):
        self.code = "vc_code_" + secrets.token_urlsafe(24)
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.challenge = challenge
        self.scope = scope
        self.state = state
        self.username = username
        self.status = "issued"
        self.created = time.time()

    def expired(self):
        return time.time() > self.created + VERCEL_CODE_TTL

    def public(self):
        """For /_fake/vercel/state: the code as a fingerprint."""
        return {"code": fingerprint(self.code), "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "code_challenge": self.challenge, "scope": self.scope,
                "state": self.state, "username": self.username,
                "status": self.status, "created": round(self.created, 3)}


class Vercel(Provider):
    """api.vercel.com and vercel.com.

    REST: ``GET /v2/user`` answers ``{"user": {...}}`` for a Bearer token
    registered with ``POST /_fake/vercel/pat`` or issued by the OAuth
    endpoints below, else ``reject_status`` (401, or 403 as the live API
    does) with Vercel's error shape.

    OAuth ("Sign in with Vercel"):

    - ``POST /login/oauth/register`` (RFC 7591) takes a JSON client
      metadata document and answers 201 with a fresh ``client_id`` (and a
      ``client_secret`` when config ``register_secret`` is true). Every
      registration is recorded with its redirect URIs.
    - ``GET vercel.com/oauth/authorize`` needs a known ``client_id``, a
      ``redirect_uri`` registered for that client (exact match),
      ``response_type=code``, a ``state``, a 43-character
      ``code_challenge`` and ``code_challenge_method=S256``; otherwise 400
      (never a redirect to an unchecked URI). The person is config
      ``oauth_username``; consent is given at once: 302 to
      ``<redirect_uri>?code=<fresh>&state=<state>``. After ``deny`` the
      next one redirects with ``error=access_denied``, an
      ``error_description`` and the state instead.
    - ``POST /login/oauth/token`` (form): ``authorization_code`` needs a
      code it issued, unspent and unexpired, for the same client_id and
      redirect_uri, and a ``code_verifier`` whose S256 is the code's
      challenge (counted in state as pkce passed/failed); confidential
      clients authenticate (Basic or form secret). ``refresh_token``
      rotates: the old refresh token dies, a new one is issued. Refresh
      tokens only with the ``offline_access`` scope. Errors are 400
      ``invalid_grant`` etc. (401 ``invalid_client``); ``token_mode`` "400"
      refuses every request, "500" fails it.
    - ``GET|POST /login/oauth/userinfo`` (Bearer, OAuth tokens only):
      claims ``sub``, ``preferred_username``, ``name``, ``picture``
      (profile), ``email``, ``email_verified`` (email);
      ``userinfo_mode`` "404" makes it fail, so that a client falls back.
    - ``POST /login/oauth/token/revoke`` (RFC 7009), client authenticated
      as on the token endpoint (else 401): forgets an access or refresh
      token, 200 even for an unknown one; each revocation is recorded.

    ``display_name``, when set, replaces every account's name in every
    answer (/v2/user and userinfo): a hostile provider's markup.
    """

    name = "vercel"
    hosts = ("api.vercel.com", "vercel.com")
    API_HOST, WEB_HOST = "api.vercel.com", "vercel.com"
    DEFAULTS = {"display_name": None, "token_mode": "normal",
                "userinfo_mode": "normal", "register_secret": False,
                "reject_status": 401, "oauth_username": "vercel-fake"}
    TOKEN_MODES = ("normal", "400", "500")
    USERINFO_MODES = ("normal", "404")
    DENY_TEXT = "The user denied the authorization request."

    def __init__(self):
        super().__init__()
        self.routes = {
            ("GET", "/v2/user"): self.v2_user,
            ("POST", "/login/oauth/register"): self.register,
            ("GET", "/oauth/authorize"): self.authorize,
            ("POST", "/login/oauth/token"): self.token,
            ("GET", "/login/oauth/userinfo"): self.userinfo,
            ("POST", "/login/oauth/userinfo"): self.userinfo,
            ("POST", "/login/oauth/token/revoke"): self.revoke,
        }
        self._clear()

    def _clear(self):
        self.config = dict(self.DEFAULTS)
        self.users = {}             # username -> account facts
        self.clients = {}           # client_id -> client metadata
        self.registrations = []     # what each registration asked
        self.codes = {}             # code -> VercelCode
        self.tokens = {}            # access token -> grant facts
        self.refresh_tokens = {}    # live refresh token -> grant facts
        self.spent_refresh = set()  # fingerprints of rotated-out ones
        self.token_requests = []
        self.pkce = {"passed": 0, "failed": 0}
        self.revocations = []
        self.deny_next = []         # error_description of queued refusals

    def reset(self):
        super().reset()
        with self.lock:
            self._clear()

    # -- shapes

    def error_500(self):
        return Response(500, {"error": {"code": "internal_server_error",
                                        "message": "An unexpected internal "
                                                   "error occurred."}})

    def not_found(self, req):
        return Response(404, {"error": {"code": "not_found",
                                        "message": "The requested path was "
                                                   "not found."}})

    @staticmethod
    def oauth_error(code, description, status=400):
        return Response(status, {"error": code,
                                 "error_description": description},
                        headers={"Cache-Control": "no-store"})

    def wrong_host(self, req, host):
        return req.host is not None and req.host != host

    def account(self, username, name=DERIVED, email=None):
        """The account of username, made up on first use. Lock held."""
        u = self.users.get(username)
        if u is None:
            h = hashlib.sha256(username.encode()).hexdigest()
            u = {"uid": "usr_" + h[:24], "username": username,
                 "name": username.replace("-", " ").title(),
                 "email": username + "@example.com", "avatar": h[:40],
                 "created": 1577836800000 + int(h[24:30], 16)}
            self.users[username] = u
        if name is not DERIVED:
            u["name"] = name
        if email is not None:
            u["email"] = email
        return u

    def shown_name(self, u):
        """The account's name as answered. Lock held."""
        override = self.config["display_name"]
        return override if override is not None else u["name"]

    def user_doc(self, u):
        """GET /v2/user's answer for an account. Lock held."""
        return {"user": {
            "id": u["uid"], "uid": u["uid"], "email": u["email"],
            "name": self.shown_name(u), "username": u["username"],
            "avatar": u["avatar"], "defaultTeamId": None,
            "createdAt": u["created"], "softBlock": None,
            "version": "northstar"}}

    def bearer(self, req):
        """(token, grant facts) of a known Bearer token, else (None, None).
        Lock held."""
        value = req.headers.get("Authorization") or ""
        scheme, _, cred = value.partition(" ")
        cred = cred.strip()
        if scheme.lower() != "bearer" or not cred:
            return None, None
        facts = self.tokens.get(cred)
        return (cred, facts) if facts else (None, None)

    @staticmethod
    def form(req):
        text = (req.body or b"").decode("utf-8", "replace")
        return {k: v[0] for k, v in
                urllib.parse.parse_qs(text, keep_blank_values=True).items()}

    # -- api.vercel.com REST

    def v2_user(self, req):
        if self.wrong_host(req, self.API_HOST):
            return self.not_found(req)
        with self.lock:
            _, facts = self.bearer(req)
            if facts is None:
                return Response(self.config["reject_status"], {"error": {
                    "code": "forbidden", "message": "Not authorized",
                    "invalidToken": True}})
            return Response(200, self.user_doc(self.users[facts["user"]]))

    # -- OAuth: registration

    def register(self, req):
        if self.wrong_host(req, self.API_HOST):
            return self.not_found(req)
        meta = req.json()
        if not isinstance(meta, dict):
            return self.oauth_error("invalid_client_metadata",
                                    "The body must be a JSON object.")
        uris = meta.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(
                isinstance(u, str) and
                urllib.parse.urlsplit(u).scheme in ("http", "https") and
                urllib.parse.urlsplit(u).netloc and "#" not in u
                for u in uris):
            return self.oauth_error("invalid_redirect_uri",
                                    "redirect_uris must be absolute http(s) "
                                    "URIs without a fragment.")
        method = meta.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in ("none", "client_secret_basic",
                          "client_secret_post"):
            return self.oauth_error("invalid_client_metadata",
                                    "Unsupported token_endpoint_auth_method.")
        with self.lock:
            secret = None
            if self.config["register_secret"]:
                secret = "vcs_" + secrets.token_urlsafe(32)
                if method == "none":
                    method = "client_secret_post"
            client_id = "cl_" + secrets.token_hex(12)
            client = {
                "client_id": client_id,
                "client_id_issued_at": int(time.time()),
                "client_name": meta.get("client_name"),
                "redirect_uris": list(uris),
                "grant_types": meta.get("grant_types",
                                        ["authorization_code"]),
                "response_types": meta.get("response_types", ["code"]),
                "token_endpoint_auth_method": method,
                "scope": meta.get("scope", "openid email profile")}
            if secret is not None:
                client["client_secret"] = secret
                client["client_secret_expires_at"] = 0
            self.clients[client_id] = client
            self.registrations.append({
                "client_id": client_id, "request": meta,
                "with_secret": secret is not None,
                "time": round(time.time(), 3)})
        return Response(201, client, headers={"Cache-Control": "no-store"})

    # -- OAuth: vercel.com/oauth/authorize

    def authorize(self, req):
        if self.wrong_host(req, self.WEB_HOST):
            return self.not_found(req)
        q = {k: v[0] for k, v in req.query.items()}
        for k in ("client_id", "redirect_uri", "response_type", "state",
                  "code_challenge", "code_challenge_method"):
            if not q.get(k):
                return self.oauth_error("invalid_request",
                                        "Missing parameter: " + k)
        with self.lock:
            client = self.clients.get(q["client_id"])
            if client is None:
                return self.oauth_error("invalid_client",
                                        "Unknown client_id.", 401)
            if q["redirect_uri"] not in client["redirect_uris"]:
                return self.oauth_error("invalid_request", "redirect_uri "
                                        "is not registered for this client.")
        if q["response_type"] != "code":
            return self.oauth_error("unsupported_response_type",
                                    "Only response_type=code is supported.")
        if q["code_challenge_method"] != "S256":
            return self.oauth_error("invalid_request",
                                    "code_challenge_method must be S256.")
        if len(q["code_challenge"]) != 43 or \
                not set(q["code_challenge"]) <= B64URL_CHARS:
            return self.oauth_error("invalid_request",
                                    "code_challenge is not an S256 value.")
        scope = q.get("scope", "openid email profile")
        if set(scope.split()) - set(VERCEL_SCOPES):
            return self.oauth_error("invalid_scope", "Unknown scope.")
        redirect = q["redirect_uri"]
        with self.lock:
            if self.deny_next:
                desc = self.deny_next.pop(0)
                params = [("error", "access_denied"),
                          ("error_description", desc), ("state", q["state"])]
            else:
                username = self.config["oauth_username"]
                self.account(username)
                c = VercelCode(q["client_id"], redirect, q["code_challenge"],
                               scope, q["state"], username)
                self.codes[c.code] = c
                params = [("code", c.code), ("state", q["state"])]
        sep = "&" if "?" in redirect else "?"
        return Response(302, b"", "text/html", headers={
            "Location": redirect + sep + urllib.parse.urlencode(params)})

    # -- OAuth: tokens

    def client_auth(self, req, f):
        """(client, secret check) where the check is "ok", "none" (no
        secret sent), or "wrong"; client None when unknown. Lock held."""
        basic = OAuthProvider.basic_auth(req)
        client_id = basic[0] if basic else f.get("client_id")
        secret = basic[1] if basic else f.get("client_secret")
        client = self.clients.get(client_id or "")
        if not secret:
            return client, "none"
        ok = client is not None and client.get("client_secret") is not None \
            and secrets.compare_digest(client["client_secret"], secret)
        return client, "ok" if ok else "wrong"

    def issue(self, client_id, username, scope):
        """(access, refresh or None), recorded. Lock held."""
        access = "vca_" + secrets.token_urlsafe(32)
        refresh = "vcr_" + secrets.token_urlsafe(32) \
            if "offline_access" in scope.split() else None
        facts = {"user": username, "source": "oauth", "client_id": client_id,
                 "scope": scope, "refresh_token": refresh,
                 "issued": round(time.time(), 3)}
        self.tokens[access] = facts
        if refresh:
            self.refresh_tokens[refresh] = facts
        return access, refresh

    def token(self, req):
        if self.wrong_host(req, self.API_HOST):
            return self.not_found(req)
        f = self.form(req)
        grant = f.get("grant_type")
        rec = {"grant_type": grant,
               "client_id": f.get("client_id"),
               "auth_style": "basic" if OAuthProvider.basic_auth(req)
               else "form" if "client_secret" in f else "none",
               "redirect_uri": f.get("redirect_uri"),
               "code": fingerprint(f["code"]) if f.get("code") else None,
               "code_verifier": fingerprint(f["code_verifier"])
               if f.get("code_verifier") else None,
               "refresh_token": fingerprint(f["refresh_token"])
               if f.get("refresh_token") else None,
               "pkce": None, "time": round(time.time(), 3)}
        with self.lock:
            self.token_requests.append(rec)
            resp = self.token_locked(req, f, grant, rec)
            rec["status"] = resp.status
            rec["error"] = json.loads(resp.body).get("error") \
                if resp.status != 200 else None
        return resp

    def token_locked(self, req, f, grant, rec):
        mode = self.config["token_mode"]
        if mode == "500":
            return self.error_500()
        if mode == "400":
            return self.oauth_error("invalid_grant", "The authorization "
                                    "grant is invalid (forced by the fake).")
        client, check = self.client_auth(req, f)
        rec["client_secret"] = check
        if client is None:
            return self.oauth_error("invalid_client", "Unknown client.", 401)
        rec["client_id"] = client["client_id"]
        if client.get("client_secret") is not None and check != "ok" or \
                check == "wrong":
            return self.oauth_error("invalid_client", "Client "
                                    "authentication failed.", 401)
        if grant == "authorization_code":
            return self.redeem_code(f, client, rec)
        if grant == "refresh_token":
            return self.redeem_refresh(f, client)
        return self.oauth_error("unsupported_grant_type",
                                "The grant type is not supported.")

    def redeem_code(self, f, client, rec):
        c = self.codes.get(f.get("code") or "")
        if c is None or c.status != "issued" or c.expired() or \
                c.client_id != client["client_id"]:
            return self.oauth_error("invalid_grant", "The code is unknown, "
                                    "expired, used already, or was issued "
                                    "to another client.")
        if f.get("redirect_uri") != c.redirect_uri:
            c.status = "failed"
            return self.oauth_error("invalid_grant", "redirect_uri differs "
                                    "from the authorization request's.")
        verifier = f.get("code_verifier")
        if not valid_verifier(verifier) or \
                not secrets.compare_digest(pkce_s256(verifier), c.challenge):
            c.status = "failed"
            self.pkce["failed"] += 1
            rec["pkce"] = "failed"
            return self.oauth_error("invalid_grant",
                                    "PKCE verification failed.")
        self.pkce["passed"] += 1
        rec["pkce"] = "passed"
        c.status = "redeemed"
        return self.token_answer(client["client_id"], c.username, c.scope)

    def redeem_refresh(self, f, client):
        old = f.get("refresh_token") or ""
        facts = self.refresh_tokens.get(old)
        if facts is None or facts["client_id"] != client["client_id"]:
            return self.oauth_error("invalid_grant", "The refresh token is "
                                    "unknown, revoked or already used.")
        del self.refresh_tokens[old]     # rotation: good once
        self.spent_refresh.add(fingerprint(old))
        return self.token_answer(client["client_id"], facts["user"],
                                 facts["scope"])

    def token_answer(self, client_id, username, scope):
        access, refresh = self.issue(client_id, username, scope)
        body = {"access_token": access, "token_type": "Bearer",
                "expires_in": VERCEL_TOKEN_TTL, "scope": scope}
        if refresh:
            body["refresh_token"] = refresh
        return Response(200, body, headers={"Cache-Control": "no-store",
                                            "Pragma": "no-cache"})

    # -- OAuth: userinfo and revocation

    def userinfo(self, req):
        if self.wrong_host(req, self.API_HOST):
            return self.not_found(req)
        with self.lock:
            if self.config["userinfo_mode"] == "404":
                return self.not_found(req)
            _, facts = self.bearer(req)
            if facts is None or facts["source"] != "oauth" or \
                    "openid" not in facts["scope"].split():
                return Response(401, {"error": "invalid_token",
                                      "error_description": "The access "
                                      "token is invalid."}, headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token"'})
            u = self.users[facts["user"]]
            claims = {"sub": u["uid"]}
            scopes = facts["scope"].split()
            if "profile" in scopes:
                claims.update(preferred_username=u["username"],
                              name=self.shown_name(u),
                              picture="https://vercel.com/api/www/avatar/"
                                      + u["avatar"])
            if "email" in scopes:
                claims.update(email=u["email"], email_verified=True)
        return Response(200, claims, headers={"Cache-Control": "no-store"})

    def revoke(self, req):
        if self.wrong_host(req, self.API_HOST):
            return self.not_found(req)
        f = self.form(req)
        token = f.get("token") or ""
        with self.lock:
            client, check = self.client_auth(req, f)
            if client is None or check == "wrong" or \
                    (client.get("client_secret") is not None and
                     check != "ok"):
                return self.oauth_error("invalid_client", "Client "
                                        "authentication failed.", 401)
            kind = "unknown"
            if token in self.tokens:
                kind = "access"
                del self.tokens[token]
            elif token in self.refresh_tokens:
                kind = "refresh"
                facts = self.refresh_tokens.pop(token)
                self.tokens = {a: t for a, t in self.tokens.items()
                               if t is not facts}
            self.revocations.append({
                "token": fingerprint(token), "kind": kind,
                "token_type_hint": f.get("token_type_hint"),
                "client_id": client["client_id"],
                "auth_style": "basic" if OAuthProvider.basic_auth(req)
                else "form", "client_secret": check,
                "time": round(time.time(), 3)})
        return Response(200, {})

    # -- control

    def control_pat(self, body):
        """Register an account token: {"token", "username", "name"?,
        "email"?}. Returns the /v2/user answer it will get."""
        token = require_str(body, "token")
        username = require_str(body, "username")
        name = body.get("name", DERIVED)
        if name is not DERIVED and name is not None and \
                not isinstance(name, str):
            raise BadControl("field 'name' must be a string or null")
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            raise BadControl("field 'email' must be a string")
        with self.lock:
            u = self.account(username, name, email)
            self.tokens[token] = {"user": username, "source": "pat",
                                  "client_id": None, "scope": "",
                                  "refresh_token": None,
                                  "issued": round(time.time(), 3)}
            return Response(200, {"ok": True, "user": self.user_doc(u)[
                "user"]})

    def control_revoke(self, body):
        """Forget a token (account token, OAuth access or refresh token):
        every later use of it fails."""
        token = require_str(body, "token")
        with self.lock:
            known = self.tokens.pop(token, None) is not None
            known = self.refresh_tokens.pop(token, None) is not None or known
        return Response(200, {"ok": True, "known": known})

    def control_deny(self, body):
        """The person refuses at the consent screen: the next authorize
        redirects with error=access_denied and {"error_description"} (any
        text, markup included: a hostile provider's)."""
        desc = body.get("error_description", self.DENY_TEXT) \
            if isinstance(body, dict) else self.DENY_TEXT
        if not isinstance(desc, str):
            raise BadControl("error_description must be a string")
        with self.lock:
            self.deny_next.append(desc)
        return Response(200, {"ok": True})

    def control_client(self, body):
        """A client registered out of band (the vercel_client_id case):
        {"client_id", "redirect_uris": [...], "client_secret"?}."""
        client_id = require_str(body, "client_id")
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris or \
                not all(isinstance(u, str) and u for u in uris):
            raise BadControl("redirect_uris must be a list of strings")
        secret = body.get("client_secret")
        if secret is not None and not isinstance(secret, str):
            raise BadControl("client_secret must be a string")
        client = {"client_id": client_id, "redirect_uris": list(uris),
                  "token_endpoint_auth_method":
                      "client_secret_post" if secret else "none",
                  "grant_types": ["authorization_code", "refresh_token"],
                  "response_types": ["code"],
                  "scope": " ".join(VERCEL_SCOPES)}
        if secret:
            client["client_secret"] = secret
        with self.lock:
            self.clients[client_id] = client
        return Response(200, {"ok": True})

    def control_config(self, body):
        """{"display_name": null|str, "token_mode": "normal"|"400"|"500",
        "userinfo_mode": "normal"|"404", "register_secret": bool,
        "reject_status": 401|403, "oauth_username": str}; keys not given
        keep their value."""
        if not isinstance(body, dict):
            raise BadControl("body must be an object")
        checks = {
            "display_name": lambda v: v is None or isinstance(v, str),
            "token_mode": lambda v: v in self.TOKEN_MODES,
            "userinfo_mode": lambda v: v in self.USERINFO_MODES,
            "register_secret": lambda v: isinstance(v, bool),
            "reject_status": lambda v: v in (401, 403) and
            not isinstance(v, bool),
            "oauth_username": lambda v: isinstance(v, str) and v != "",
        }
        for k, v in body.items():
            if k not in checks or not checks[k](v):
                raise BadControl("bad config %s=%r" % (k, v))
        with self.lock:
            self.config.update(body)
            return Response(200, {"ok": True, "config": dict(self.config)})

    def state(self):
        """Everything recorded; codes, tokens and secrets as
        fingerprints."""
        with self.lock:
            clients = []
            for c in self.clients.values():
                c = dict(c)
                if "client_secret" in c:
                    c["client_secret"] = fingerprint(c["client_secret"])
                clients.append(c)
            return {
                "mode": self.mode, "config": dict(self.config),
                "registrations": [dict(r) for r in self.registrations],
                "clients": clients,
                "codes": [c.public() for c in self.codes.values()],
                "pkce": dict(self.pkce),
                "token_requests": [dict(r) for r in self.token_requests],
                "tokens": [{"access_token": fingerprint(t),
                            "refresh_token": fingerprint(f["refresh_token"])
                            if f["refresh_token"] else None,
                            "source": f["source"], "user": f["user"],
                            "client_id": f["client_id"], "scope": f["scope"]}
                           for t, f in self.tokens.items()],
                "refresh_tokens": [fingerprint(t)
                                   for t in self.refresh_tokens],
                "spent_refresh_tokens": sorted(self.spent_refresh),
                "revocations": list(self.revocations),
                "deny_pending": len(self.deny_next)}


# One instance per provider class.
PROVIDER_CLASSES = (Manus, GitHub, Google, Microsoft, Vercel)


class BadControl(Exception):
    """A malformed control request; answered 400."""


def require_str(body, field):
    value = body.get(field) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise BadControl("field %r must be a non-empty string" % field)
    return value


class Fake:
    """Shared state: providers by name and by host, the log, the TLS
    context, and an event that releases hanging connections on reset."""

    def __init__(self, directory, tls_context):
        self.dir = directory
        self.tls = tls_context
        self.log = Log(os.path.join(directory, "fake.log"))
        self.providers = {}
        self.by_host = {}
        for cls in PROVIDER_CLASSES:
            p = cls()
            self.providers[p.name] = p
            for h in p.hosts:
                self.by_host[h] = p
        self.release = threading.Event()
        self.release_lock = threading.Lock()

    def provider_for(self, *names):
        for n in names:
            if n and n in self.by_host:
                return self.by_host[n]
        return None

    def reset(self):
        self.log.clear()
        for p in self.providers.values():
            p.reset()
        self.release_hangs()

    def release_hangs(self):
        with self.release_lock:
            # Wake every hanging connection, then arm a fresh event.
            self.release.set()
            self.release = threading.Event()


# ---------------------------------------------------------------------------
# Certificates


def make_certs(directory):
    """A throwaway CA and one leaf for every provider host, with the openssl
    command line tool. Returns (ca_file, leaf_cert, leaf_key). The CA
    certificate is world-readable because workers read it after dropping to
    an unprivileged user; the keys are not."""
    p = lambda name: os.path.join(directory, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    run_openssl(["req", "-x509", *ec, "-nodes", "-keyout", p("ca.key"),
                 "-out", p("ca.pem"), "-days", "2", "-subj",
                 "/CN=connectord test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash"])
    run_openssl(["req", "-new", *ec, "-nodes", "-keyout", p("leaf.key"),
                 "-out", p("leaf.csr"), "-subj", "/CN=fake providers"])
    san = ",".join("DNS:" + h for h in PROVIDER_HOSTS)
    with open(p("leaf.ext"), "w", encoding="ascii") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n" % san)
    run_openssl(["x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"),
                 "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", p("leaf.ext"), "-out", p("leaf.pem")])
    os.chmod(p("ca.pem"), 0o644)
    os.chmod(p("ca.key"), 0o600)
    os.chmod(p("leaf.key"), 0o600)
    return p("ca.pem"), p("leaf.pem"), p("leaf.key")


def run_openssl(args):
    r = subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("fakeprovider: openssl %s failed: %s" % (args[0], r.stderr))


def make_tls_context(cert, key):
    """Server-side TLS offering HTTP/1.1 only (never h2 through ALPN), and
    recording the SNI name on the socket for dispatch and logging."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])

    def remember_sni(sslsock, server_name, _ctx):
        sslsock.fake_sni = server_name

    ctx.sni_callback = remember_sni
    return ctx


# ---------------------------------------------------------------------------
# The proxy and the provider endpoints behind it


class ConnContext:
    """Per-tunnel facts handed to ProviderHandler in place of a server."""

    def __init__(self, fake, connect_host, sni):
        self.fake = fake
        self.connect_host = connect_host
        self.sni = sni


class ProviderHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 over the TLS tunnel, keep-alive, one Provider per Host."""

    protocol_version = "HTTP/1.1"
    server_version = "fakeprovider"
    sys_version = ""
    timeout = HANG_MAX_SEC + 10     # idle keep-alive connections end

    def log_message(self, fmt, *args):
        pass    # the JSON log is the record

    def do_any(self):
        ctx = self.server
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        body = self.read_body()
        if body is None:
            return
        req = Request(self.command, self.path, self.headers, body,
                      host or ctx.sni or ctx.connect_host)
        provider = ctx.fake.provider_for(host, ctx.sni, ctx.connect_host)
        if provider is None:
            resp = Response(404, {"message": "no fake for host %s" % host})
        else:
            resp = provider.handle(req)
        entry = dict(kind="request", host=host, sni=ctx.sni,
                     connect=ctx.connect_host, method=self.command,
                     path=redact_path(self.path),
                     headers=self.logged_headers(),
                     body_len=len(body),
                     body_sha256=fingerprint(body) if body else None)
        if req.fault is not None:
            entry["fault"] = req.fault
        if resp is HANG:
            ctx.fake.log.add(status=None, note="hang", **entry)
            self.hang()
            return
        ctx.fake.log.add(status=resp.status, **entry)
        self.send(resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_any

    def read_body(self):
        """The request body (Content-Length or chunked), or None after
        answering 413/400."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.read_chunked()
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > BODY_MAX:
            self.send(Response(413 if n > 0 else 400, {"message": "body"}))
            self.close_connection = True
            return None
        return self.rfile.read(n) if n else b""

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0",
                       16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return data
            data += self.rfile.read(size)
            self.rfile.readline()
            if len(data) > BODY_MAX:
                self.send(Response(413, {"message": "body"}))
                self.close_connection = True
                return None

    def logged_headers(self):
        return {k: redact_header(k, self.headers[k])
                for k in LOGGED_HEADERS if k in self.headers}

    def send(self, resp):
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)
        self.wfile.flush()

    def hang(self):
        """Never answer: wait until the client goes away (the socket turns
        readable at EOF or on a TLS alert), a reset, or HANG_MAX_SEC."""
        release = self.server.fake.release
        deadline = time.monotonic() + HANG_MAX_SEC
        while time.monotonic() < deadline and not release.is_set():
            r, _, _ = select.select([self.connection], [], [], 0.5)
            if r:
                break
        self.close_connection = True


class ProxyHandler(BaseHTTPRequestHandler):
    """Answers CONNECT for provider hosts and serves the tunnel itself."""

    protocol_version = "HTTP/1.1"
    server_version = "fakeprovider-proxy"
    sys_version = ""
    timeout = 30
    # Unbuffered reads: nothing past the CONNECT headers may be consumed
    # here, since the TLS handshake follows on the same socket.
    rbufsize = 0

    def log_message(self, fmt, *args):
        pass

    def do_CONNECT(self):
        fake = self.server.fake
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]").lower()
        allowed = host in PROVIDER_HOSTS and port == "443"
        fake.log.add(kind="connect", target=self.path,
                     status=200 if allowed else 403)
        if not allowed:
            self.refuse("CONNECT target not served by the fake")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.serve_tunnel(fake, host)

    def serve_tunnel(self, fake, host):
        try:
            tls = fake.tls.wrap_socket(self.connection, server_side=True)
        except (OSError, ValueError) as e:
            fake.log.add(kind="tls_error", target=self.path, error=str(e))
            return
        try:
            ctx = ConnContext(fake, host, getattr(tls, "fake_sni", None))
            ProviderHandler(tls, self.client_address, ctx)
        except OSError:
            pass    # the client went away mid-request
        finally:
            tls.close()

    def refuse(self, why):
        body = json.dumps({"message": why}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_other(self):
        self.server.fake.log.add(kind="proxy_request", method=self.command,
                                 target=redact_path(self.path), status=403)
        self.refuse("this proxy only tunnels CONNECT")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_other


class ProxyServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


# ---------------------------------------------------------------------------
# The control API


class ControlHandler(BaseHTTPRequestHandler):
    """Plain HTTP on loopback: scenario switches and the log for tests."""

    protocol_version = "HTTP/1.1"
    server_version = "fakeprovider-control"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path in ("/_fake/log", "/_fake/log/"):
            self.reply(200, self.server.fake.log.snapshot())
        elif self.path == "/_fake/state":
            self.reply(200, {name: {"mode": p.mode,
                                    "faults": p.faults_state()}
                             for name, p in self.server.fake.providers.items()})
        else:
            state = self.provider_state()
            if state is None:
                self.reply(404, {"error": "unknown control path"})
            else:
                self.reply(200, state)

    def provider_state(self):
        """GET /_fake/<provider>/state, for providers that keep some."""
        parts = self.path.rstrip("/").split("/")
        if len(parts) != 4 or parts[1] != "_fake" or parts[3] != "state":
            return None
        provider = self.server.fake.providers.get(parts[2])
        state = getattr(provider, "state", None)
        return state() if state is not None else None

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if 0 < n <= BODY_MAX else b""
        try:
            body = json.loads(raw or b"{}")
            self.reply(200, self.dispatch(self.path.rstrip("/"), body))
        except (ValueError, BadControl) as e:
            self.reply(400, {"error": str(e)})
        except LookupError as e:
            self.reply(404, {"error": str(e)})

    def dispatch(self, path, body):
        """Route a control POST; returns the JSON answer or raises."""
        fake = self.server.fake
        if path == "/_fake/reset":
            fake.reset()
            return {"ok": True}
        if path == "/_fake/mode":
            provider = fake.providers.get(require_str(body, "provider"))
            mode = require_str(body, "mode")
            if provider is None or mode not in MODES:
                raise BadControl("unknown provider or mode")
            provider.mode = mode
            return {"ok": True}
        if path == "/_fake/fault":
            provider = fake.providers.get(require_str(body, "provider"))
            if provider is None:
                raise BadControl("unknown provider")
            return {"ok": True, "faults": provider.add_fault(body)}
        parts = path.split("/")     # "", "_fake", provider, action
        if len(parts) == 4 and parts[1] == "_fake":
            provider = fake.providers.get(parts[2])
            action = getattr(provider, "control_" + parts[3], None)
            if action is not None:
                resp = action(body)
                return json.loads(resp.body)
        raise LookupError("unknown control path")

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# ---------------------------------------------------------------------------


def serve(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def write_ready(directory, info):
    """Atomically, so that a reader never sees a half-written file."""
    tmp = os.path.join(directory, "fake.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.rename(tmp, os.path.join(directory, "fake.json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True,
                    help="directory for the CA, fake.json and fake.log")
    args = ap.parse_args()
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)

    ca_file, cert, key = make_certs(directory)
    fake = Fake(directory, make_tls_context(cert, key))
    proxy = ProxyServer(("127.0.0.1", 0), ProxyHandler)
    control = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    proxy.fake = control.fake = fake
    serve(proxy)
    serve(control)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    write_ready(directory, {"proxy_port": proxy.server_address[1],
                            "control_port": control.server_address[1],
                            "ca_file": ca_file, "pid": os.getpid()})
    while not stop.wait(1):
        pass
    fake.release_hangs()
    proxy.shutdown()
    control.shutdown()


if __name__ == "__main__":
    main()
