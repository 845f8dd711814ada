#!/usr/bin/python3
"""The fake Vercel (tests/fakes/fakeprovider.py) enforces what the daemon's
Vercel tests rely on (reference/specs.md sections 2 and 9): registration,
the authorize checks, single-use codes bound to client and redirect URI,
the PKCE S256 check (a wrong verifier is refused and counted), rotating
refresh tokens, userinfo, revocation. No daemon here: when this suite
fails, test_vercel.py's "the fake's PKCE check passed" proves nothing.
"""

import base64
import contextlib
import hashlib
import os
import secrets
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import is_, ok  # noqa: E402

API = "https://api.vercel.com"
AUTHORIZE = "https://vercel.com/oauth/authorize"
REDIRECT = "http://127.0.0.1:8700/callback"
SCOPE = "openid email profile offline_access"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def s256(verifier):
    return base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def verifier():
    return secrets.token_urlsafe(32)     # 43 characters


@contextlib.contextmanager
def fixture():
    with cdtest.Fake() as fake:
        yield fake


def register(fake, redirect=REDIRECT):
    status, _, body, _ = fake.provider_request(
        API + "/login/oauth/register", "POST",
        '{"client_name": "t", "redirect_uris": ["%s"], '
        '"token_endpoint_auth_method": "none"}' % redirect,
        {"Content-Type": "application/json"})
    return status, body or {}


def authorize_url(cid, challenge, **over):
    q = {"client_id": cid, "response_type": "code",
         "redirect_uri": REDIRECT, "state": "st-" + secrets.token_hex(8),
         "code_challenge": challenge, "code_challenge_method": "S256",
         "scope": SCOPE}
    q.update(over)
    q = {k: v for k, v in q.items() if v is not None}
    return AUTHORIZE + "?" + urllib.parse.urlencode(q)


def code_of(location):
    return urllib.parse.parse_qs(
        urllib.parse.urlsplit(location).query).get("code", [None])[0]


def token(fake, timeout=10, **form):
    return fake.provider_request(API + "/login/oauth/token", "POST",
                                 urllib.parse.urlencode(form), FORM,
                                 timeout=timeout)


def registration_and_authorize(fake):
    fake.reset()
    status, client = register(fake)
    cid = client.get("client_id")
    ok(status == 201 and cid and "client_secret" not in client,
       "register: 201 with a client_id and no secret by default")
    st = fake.vercel_state()
    is_([r["request"]["redirect_uris"] for r in st["registrations"]],
        [[REDIRECT]], "the registration and its redirect_uris are recorded")
    status, _ = register(fake, "not a url")
    is_(status, 400, "register with a relative redirect URI: 400")
    ch = s256(verifier())
    bad = {"unknown client": dict(client_id="cl_nope"),
           "unregistered redirect": dict(redirect_uri="http://evil/cb"),
           "response_type token": dict(response_type="token"),
           "method plain": dict(code_challenge_method="plain"),
           "no challenge": dict(code_challenge=None),
           "no state": dict(state=None)}
    for what, over in bad.items():
        status, hdrs, _, _ = fake.provider_request(
            authorize_url(cid, ch, **over))
        ok(status in (400, 401) and "location" not in hdrs,
           "authorize with %s: %d, no redirect" % (what, status))
    status, _, _, _ = fake.provider_request(
        API + "/oauth/authorize?" + authorize_url(cid, ch).split("?")[1])
    is_(status, 404, "the consent page is not served on api.vercel.com")
    url = authorize_url(cid, ch)
    loc = fake.vercel_authorize(url)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
    ok(loc.startswith(REDIRECT + "?") and q.get("code") and
       q.get("state") == urllib.parse.parse_qs(
           urllib.parse.urlsplit(url).query)["state"],
       "authorize: 302 to redirect_uri with a code and the state")
    fake.vercel_deny("<b>no</b>")
    loc = fake.vercel_authorize(authorize_url(cid, ch, state="s1"))
    is_(urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query),
        {"error": ["access_denied"], "error_description": ["<b>no</b>"],
         "state": ["s1"]}, "after deny: error, description and state")


def pkce_and_codes(fake):
    fake.reset()
    cid = register(fake)[1]["client_id"]
    v = verifier()
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base = dict(grant_type="authorization_code", client_id=cid,
                redirect_uri=REDIRECT, code=code)
    status, _, body, _ = token(fake, **base, code_verifier=verifier())
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "a wrong verifier: 400 invalid_grant")
    is_(fake.vercel_state()["pkce"], {"passed": 0, "failed": 1},
        "the failed PKCE check is counted")
    status, _, body, _ = token(fake, **base, code_verifier=v)
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "a code whose PKCE check failed is spent")
    v = verifier()
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base.update(code=code)
    status, _, body, _ = token(fake, **base)
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "no verifier at all: 400 invalid_grant")
    v = verifier()
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base.update(code=code)
    status, _, body, _ = token(fake, **dict(base, client_id="cl_other"),
                               code_verifier=v)
    is_(status, 401, "another client id: 401 invalid_client")
    status, _, body, _ = token(fake, **dict(
        base, redirect_uri="http://127.0.0.1:9/cb"), code_verifier=v)
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "another redirect_uri: 400 invalid_grant (and the code is spent)")
    v = verifier()
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base.update(code=code)
    status, _, body, _ = token(fake, **base, code_verifier=v)
    body = body or {}
    ok(status == 200 and body.get("access_token") and
       body.get("refresh_token") and body.get("expires_in") == 3600 and
       body.get("token_type") == "Bearer",
       "the right verifier: 200 with access and refresh token, 3600 s")
    st = fake.vercel_state()
    is_(st["pkce"], {"passed": 1, "failed": 2},
        "the pass is counted (and the missing verifier was a failure)")
    ok(st["token_requests"][-1]["code_verifier"] == cdtest.fingerprint(v)
       and v not in repr(st), "state shows the verifier as a fingerprint")
    status, _, again, _ = token(fake, **base, code_verifier=v)
    is_(status, 400, "the same code twice: 400")
    access, refresh = body.get("access_token"), body.get("refresh_token")
    bearer = {"Authorization": "Bearer %s" % access}
    status, _, claims, _ = fake.provider_request(
        API + "/login/oauth/userinfo", headers=bearer)
    ok(status == 200 and claims.get("preferred_username") == "vercel-fake"
       and claims.get("name") == "Vercel Fake" and claims.get("sub") and
       claims.get("email") == "vercel-fake@example.com",
       "userinfo: the person's claims")
    fake.vercel_config(display_name="<i>x</i>", userinfo_mode="404")
    is_(fake.provider_request(API + "/login/oauth/userinfo",
                              headers=bearer)[0], 404, "userinfo_mode 404")
    status, _, user, _ = fake.provider_request(API + "/v2/user",
                                               headers=bearer)
    is_((status, (user or {}).get("user", {}).get("name")), (200, "<i>x</i>"),
        "/v2/user accepts the OAuth token; display_name overrides the name")
    rt = dict(grant_type="refresh_token", client_id=cid)
    status, _, new, _ = token(fake, **rt, refresh_token=refresh)
    new = new or {}
    ok(status == 200 and new.get("refresh_token") not in (None, refresh),
       "refresh: 200 with a new refresh token (rotation)")
    status, _, body, _ = token(fake, **rt, refresh_token=refresh)
    is_((status, (body or {}).get("error")), (400, "invalid_grant"),
        "the rotated-out refresh token: 400 invalid_grant")
    status, _, _, _ = fake.provider_request(
        API + "/login/oauth/token/revoke", "POST", urllib.parse.urlencode(
            {"token": new.get("access_token"), "client_id": cid}), FORM)
    is_(status, 200, "revoke: 200")
    is_(fake.provider_request(API + "/v2/user", headers={
        "Authorization": "Bearer %s" % new.get("access_token")})[0], 401,
        "a revoked access token: 401")
    is_(fake.vercel_state()["revocations"][-1]["kind"], "access",
        "the revocation is recorded")


def secret_clients_and_modes(fake):
    fake.reset()
    fake.vercel_config(register_secret=True)
    status, client = register(fake)
    cid, sec = client.get("client_id"), client.get("client_secret")
    ok(status == 201 and sec, "register_secret: the answer has a secret")
    v = verifier()
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base = dict(grant_type="authorization_code", client_id=cid,
                redirect_uri=REDIRECT, code=code, code_verifier=v)
    is_(token(fake, **base)[0], 401,
        "a confidential client without its secret: 401")
    code = code_of(fake.vercel_authorize(authorize_url(cid, s256(v))))
    base.update(code=code)
    is_(token(fake, **base, client_secret=sec)[0], 200,
        "with client_secret in the form: 200")
    is_(fake.vercel_state()["token_requests"][-1]["client_secret"], "ok",
        "the secret check is recorded")
    fake.vercel_config(token_mode="500")
    is_(token(fake, **base)[0], 500, "token_mode 500")
    fake.vercel_config(token_mode="400")
    is_(token(fake, **base)[0], 400, "token_mode 400")
    fake.add_vercel_pat("pat-1", "someone", name=None)
    status, _, user, _ = fake.provider_request(
        API + "/v2/user", headers={"Authorization": "Bearer pat-1"})
    is_((status, (user or {}).get("user", {}).get("username")),
        (200, "someone"), "a registered account token: /v2/user 200")
    fake.vercel_config(reject_status=403)
    is_(fake.provider_request(API + "/v2/user", headers={
        "Authorization": "Bearer nope"})[0], 403, "reject_status 403")
    fake.reset()
    is_(fake.vercel_state()["config"]["token_mode"], "normal",
        "reset restores the config")


def route_faults(fake):
    """POST /_fake/fault: one route fails in each mode while the others
    answer normally; times counts down, "normal" and reset remove faults,
    bad requests are refused (the machinery test_flow_faults.py uses)."""
    fake.reset()
    fake.add_vercel_pat("pat-f", "faulty")
    user = {"Authorization": "Bearer pat-f"}
    fake.fault("vercel", "/login/oauth/token", "garbage")
    st, h, body, raw = token(fake, grant_type="refresh_token")
    ok(st == 200 and h.get("content-type") == "text/html" and body is None
       and raw.startswith(b"<html>"), "garbage: 200 text/html, not JSON")
    is_(fake.provider_request(API + "/v2/user", headers=user)[0], 200,
        "a fault on one route leaves the others alone")
    fake.fault("vercel", "/login/oauth/token", "normal")
    is_(token(fake, grant_type="refresh_token")[0], 401,
        'mode "normal" removes the fault (an unknown client: 401)')
    fake.fault("vercel", "/login/oauth/token", "truncated")
    st, h, body, raw = token(fake, grant_type="refresh_token")
    ok(st == 200 and h.get("content-type") == "application/json" and
       body is None and raw.startswith(b"{"),
       "truncated: 200 application/json that does not parse")
    fake.fault("vercel", "/login/oauth/token", "normal")
    fake.fault("vercel", "/v2/user", "wrong_type", method="GET")
    st, h, body, _ = fake.provider_request(API + "/v2/user", headers=user)
    ok(st == 200 and h.get("content-type") == "text/html" and
       (body or {}).get("user", {}).get("username") == "faulty",
       "wrong_type: the normal answer, labelled text/html")
    fake.fault("vercel", "/v2/user", "normal")
    fake.fault("vercel", "/v2/user", "500", times=2)
    got = [fake.provider_request(API + "/v2/user", headers=user)[0]
           for _ in range(3)]
    is_(got, [500, 500, 200], "times=2: two 500s, then normal again")
    is_(fake.faults("vercel"), [], "a used-up fault is gone")
    fake.fault("vercel", "/v2/user", "slow", delay=1)
    t0 = time.monotonic()
    st = fake.provider_request(API + "/v2/user", headers=user)[0]
    ok(st == 200 and time.monotonic() - t0 >= 0.9,
       "slow: the normal answer, delay seconds late")
    is_([(f["mode"], f["hits"]) for f in fake.faults("vercel")],
        [("slow", 1)], "the fault counts its hits")
    fake.fault("vercel", "/v2/user", "hang", method="POST")
    is_(fake.provider_request(API + "/v2/user", headers=user)[0], 200,
        "a fault for POST leaves GET alone")
    fake.fault("vercel", "/login/oauth/token", "hang")
    t0 = time.monotonic()
    try:
        token(fake, grant_type="refresh_token", timeout=1.5)
        hung = False
    except OSError:
        hung = True
    ok(hung and time.monotonic() - t0 >= 1.4, "hang: no answer in 1.5 s")
    ok([e for e in fake.log() if e.get("fault") == "hang"],
       "the log names the fault a request got")
    fake.reset()
    is_(fake.faults("vercel"), [], "reset removes every fault")
    for body in ({"provider": "vercel", "path": "/v2/user", "mode": "x"},
                 {"provider": "nope", "path": "/v2/user", "mode": "500"},
                 {"provider": "vercel", "path": "/v2/user", "mode": "500",
                  "times": 0},
                 {"provider": "vercel", "path": "/v2/user", "mode": "slow",
                  "delay": 600},
                 {"provider": "vercel", "path": "/v2/user", "mode": "500",
                  "user_code": "ABCD-EFGH"}):
        try:
            fake.control("POST", "/_fake/fault", body)
            ok(False, "fault %r is refused" % (body,))
        except RuntimeError:
            ok(True, "fault %r is refused" % (body,))


if __name__ == "__main__":
    cdtest.run([registration_and_authorize, pkce_and_codes,
                secret_clients_and_modes, route_faults], fixture=fixture)
