#!/usr/bin/python3
"""The GitHub connector's token path keeps api.md's contract against a fake
api.github.com (GET /user, reference/gh.md section 9).

One daemon and one fake for the whole file; the checks run in order and
build on each other's stored state (save, faults, disconnect, reconnect).
The workspace starts with mcp-tokens.json = {"other": {"x": 1}}, which must
survive every write.
"""

import contextlib
import os
import re
import secrets
import stat
import string
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

BASE = "/api/connectors/github"
API_HOST = "api.github.com"
SCOPES = "repo, read:org, gist"     # the fake's X-OAuth-Scopes
ALNUM = string.ascii_letters + string.digits


def pat():
    """A classic PAT's shape: ghp_ and 36 alphanumerics."""
    return "ghp_" + "".join(secrets.choice(ALNUM) for _ in range(36))


PAT1 = pat()
PAT2 = pat()
BAD = pat()
USER1 = ("pat-octo", 4242001, "Pat Octo")
USER2 = ("pat-second", 4242002, None)   # GitHub's name may be null
USER_KEYS = ("login", "id", "name", "avatar_url")


def entry(token):
    """The github entry of mcp-tokens.json for a PAT: exactly these six keys
    (reference/seed-service.md section 8)."""
    return {"access_token": token, "refresh_token": None, "expires_at": 0,
            "token_type": "Bearer", "scope": SCOPES, "auth_method": "pat"}


class Scenario:
    def __init__(self, fake, daemon):
        self.fake = fake
        self.d = daemon
        self.users = {}     # token -> the fake's /user document

    @property
    def gh_token_file(self):
        return os.path.join(self.d.home, ".xo-cowork", "github_token.json")

    def register(self, token, user):
        login, uid, name = user
        self.users[token] = self.fake.add_github_pat(token, login, uid, name)

    def want_user(self, token):
        """The four user fields api.md names, as the fake serves them."""
        u = self.users[token]
        return {k: u[k] for k in USER_KEYS}

    def save(self, token, timeout=20):
        return self.d.api("POST", BASE + "/token", {"token": token},
                          timeout=timeout)

    def status(self):
        status, _, body, raw = self.d.api("GET", BASE + "/status")
        if status != 200 or not isinstance(body, dict):
            diag("status answered %r %r" % (status, raw[:200]))
            return {}
        return body

    def checks(self):
        """GET /user requests the fake received since its last reset."""
        return self.fake.requests(API_HOST, "/user")


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        yield Scenario(fake, d)


def user_matches(got, want, name):
    """The answer's user carries login, id, name and avatar_url as GitHub
    gave them (extra fields allowed)."""
    sub = {k: got.get(k) for k in USER_KEYS} if isinstance(got, dict) \
        else got
    return is_(sub, want, name)


def nothing_stored(s):
    """A fresh workspace: not connected, and status asks GitHub nothing."""
    s.fake.reset()
    body = s.status()
    is_(body.get("connected"), False, 'status with nothing stored: '
        '{"connected": false}')
    ok("user" not in body, "status with nothing stored: no user")
    is_(len(s.fake.log()), 0, "status with nothing stored: GitHub not called")


def token_accepted(s):
    """A valid PAT is checked once with GET /user, then stored 0600."""
    s.fake.reset()
    s.register(PAT1, USER1)
    status, _, body, raw = s.save(PAT1)
    if not answered_ok((status, None, body, raw), 'valid PAT: 200 {"ok": '
                       'true}'):
        return
    user_matches(body.get("user"), s.want_user(PAT1),
                 "valid PAT: the answer's user is GitHub's account")
    tokens = s.d.read_tokens() or {}
    is_(tokens.get("github"), entry(PAT1),
        "github entry stored as specified (six keys, auth_method pat)")
    is_(tokens.get("other"), {"x": 1}, "unknown key 'other' preserved")
    mode = stat.S_IMODE(os.stat(s.d.tokens_path).st_mode)
    is_(oct(mode), oct(0o600), "mcp-tokens.json has mode 0600")
    reqs = s.checks()
    is_(len(reqs), 1, "exactly one GET /user reached GitHub")
    is_(len(s.fake.requests()), 1, "and no other request")
    if reqs:
        r, h = reqs[0], reqs[0]["headers"]
        is_((r["method"], r["host"]), ("GET", API_HOST),
            "validation is GET https://api.github.com/user")
        is_(h.get("authorization"), "Bearer " + cdtest.fingerprint(PAT1),
            "the PAT travels as Authorization: Bearer")
        is_(h.get("accept"), "application/vnd.github+json",
            "Accept: application/vnd.github+json")
        version = h.get("x-github-api-version")
        ok(isinstance(version, str) and
           re.fullmatch(r"\d{4}-\d{2}-\d{2}", version),
           "X-GitHub-Api-Version sent (%r)" % (version,))


def status_is_offline(s):
    """Status answers from stored state with the account: GitHub sees
    nothing, however often it is asked."""
    s.fake.reset()
    for i in range(3):
        body = s.status()
        if i == 0:
            is_(body.get("connected"), True, "status: connected")
            user_matches(body.get("user"), s.want_user(PAT1),
                         "status: the stored account")
            is_(body.get("auth_method"), "pat", "status: auth_method pat")
    is_(len(s.fake.log()), 0, "status made no CONNECT or request")
    status, _, body, raw = s.d.api("GET", "/api/connectors")
    gh = [c for c in (body or {}).get("connectors", [])
          if isinstance(c, dict) and c.get("name") == "github"]
    ok(status == 200 and len(gh) == 1 and gh[0].get("connected") is True
       and (gh[0].get("user") or {}).get("login") == USER1[0],
       "GET /api/connectors lists github as connected with its user")
    if not gh:
        diag("GET /api/connectors: %r %r" % (status, raw[:300]))
    is_(len(s.fake.log()), 0, "GET /api/connectors made no request")


def token_rejected(s):
    """A token GitHub refuses (401) gets 422 and nothing is written."""
    s.fake.reset()
    s.register(PAT1, USER1)
    before = s.d.tokens_bytes()
    is_error_json(s.save(BAD), 422, "rejected PAT: JSON 422")
    ok(s.d.tokens_bytes() == before, "rejected PAT: mcp-tokens.json "
       "unchanged")
    reqs = s.checks()
    is_(len(reqs), 1, "rejected PAT: one GET /user")
    is_(reqs and reqs[0]["status"], 401, "rejected PAT: the fake said 401")
    is_(s.status().get("connected"), True,
        "rejected PAT: the stored token still counts as connected")


def provider_fault(s, mode, max_sec=20):
    """Save PAT2 (valid at the fake) while GitHub misbehaves: JSON 502,
    file unchanged."""
    s.fake.reset()
    s.register(PAT2, USER2)
    s.fake.set_mode("github", mode)
    before = s.d.tokens_bytes()
    t0 = time.monotonic()
    try:
        result = s.save(PAT2, timeout=60)
    finally:
        s.fake.set_mode("github", "normal")
    took = time.monotonic() - t0
    is_error_json(result, 502, "GitHub %s: JSON 502" % mode)
    ok(took < max_sec, "GitHub %s: answered in %.1f s (< %d s)"
       % (mode, took, max_sec))
    ok(s.d.tokens_bytes() == before, "GitHub %s: mcp-tokens.json unchanged"
       % mode)


def provider_500(s):
    provider_fault(s, "500")


def provider_garbage(s):
    provider_fault(s, "garbage")


def provider_hangs(s):
    """A GitHub that never answers costs a bounded wait (about 30 s)."""
    provider_fault(s, "hang", max_sec=40)


def malformed_requests(s):
    """Bodies the API cannot use are 400 and never reach GitHub."""
    s.fake.reset()
    before = s.d.tokens_bytes()
    cases = [("not JSON", b"{not json"), ("empty token", b'{"token": ""}'),
             ("no token field", b"{}"), ("token not a string",
                                         b'{"token": 12345}'),
             ("JSON array", b'["ghp_x"]')]
    for what, raw in cases:
        is_error_json(s.d.api("POST", BASE + "/token", raw=raw), 400,
                      "token with %s: JSON 400" % what)
    ok(s.d.tokens_bytes() == before, "malformed bodies: file unchanged")
    is_(len(s.fake.log()), 0, "malformed bodies: GitHub not called")


def disconnect(s):
    """Disconnect removes the github entry and github_token.json, and may
    be repeated."""
    # A device-flow copy of a token, as the vault would have left it.
    os.makedirs(os.path.dirname(s.gh_token_file), mode=0o700, exist_ok=True)
    with open(s.gh_token_file, "w", encoding="utf-8") as f:
        f.write('{"access_token": "gho_stale", "token_type": "bearer"}\n')
    os.chmod(s.gh_token_file, 0o600)
    answered_ok(s.d.api("POST", BASE + "/disconnect"), "disconnect: 200 ok")
    tokens = s.d.read_tokens() or {}
    ok("github" not in tokens, "disconnect: github entry removed")
    is_(tokens.get("other"), {"x": 1}, "disconnect: 'other' preserved")
    ok(not os.path.exists(s.gh_token_file),
       "disconnect: ~/.xo-cowork/github_token.json removed")
    body = s.status()
    is_(body.get("connected"), False, "status after disconnect: false")
    ok("user" not in body, "status after disconnect: no user")
    before = s.d.tokens_bytes()
    answered_ok(s.d.api("POST", BASE + "/disconnect"),
                "second disconnect: 200 ok")
    ok(s.d.tokens_bytes() == before, "second disconnect: file unchanged")


def reconnect_nothing_stored(s):
    s.fake.reset()
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 404,
                  "reconnect with nothing stored: JSON 404")
    is_(len(s.fake.log()), 0, "reconnect with nothing stored: GitHub not "
        "called")


def reconnect_ok(s):
    """Reconnect re-validates the stored token live."""
    s.fake.reset()
    s.register(PAT1, USER1)
    answered_ok(s.save(PAT1), "store PAT1 again")
    status, _, body, raw = s.d.api("POST", BASE + "/reconnect")
    if answered_ok((status, None, body, raw),
                   'reconnect: {"ok": true, "connected": true}',
                   connected=True):
        user_matches(body.get("user"), s.want_user(PAT1),
                     "reconnect: the answer carries the account")
    reqs = s.checks()
    is_(len(reqs), 2, "reconnect: one more GET /user")
    ok(reqs and reqs[-1]["headers"].get("authorization")
       == "Bearer " + cdtest.fingerprint(PAT1),
       "reconnect: checked the stored token")


def reconnect_revoked(s):
    """A token revoked at GitHub: 422, the token is kept, status says why."""
    s.fake.revoke_github(PAT1)
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 422,
                  "reconnect with a revoked token: JSON 422")
    is_((s.d.read_tokens() or {}).get("github"), entry(PAT1),
        "revoked token: entry kept in mcp-tokens.json")
    body = s.status()
    is_(body.get("connected"), False, "status after failed reconnect: false")
    err = body.get("error")
    ok(isinstance(err, str) and err.strip(),
       "status after failed reconnect: a string error (%r)" % (err,))


def reconnect_recovers(s):
    """Once the token works again, reconnect clears the error."""
    s.register(PAT1, USER1)
    answered_ok(s.d.api("POST", BASE + "/reconnect"),
                "reconnect after the token works again", connected=True)
    body = s.status()
    is_(body.get("connected"), True, "status: connected again")
    ok(body.get("error") is None, "status: no error left (%r)"
       % (body.get("error"),))


def no_secret_leaks(s):
    """No token in any answer, the daemon log, the state dir, the fake
    log."""
    tokens = [PAT1, PAT2, BAD]
    bodies = b"\n".join(raw for _, _, _, raw in s.d.transcript)
    cdtest.scrub_check(bodies, tokens, "no token in any API response")
    cdtest.scrub_check(s.d.log_text(), tokens, "no token in the daemon log")
    cdtest.scrub_check(s.d.state_files_text(), tokens,
                       "no token in state_dir (IPC log included)")
    with open(os.path.join(s.fake.dir, "fake.log"), "rb") as f:
        cdtest.scrub_check(f.read(), tokens, "no token in the fake's own log")


def clean_shutdown(s):
    """SIGTERM ends the daemon and all its processes, with status 0."""
    is_(s.d.stop(), 0, "connectord exits 0 on SIGTERM")


if __name__ == "__main__":
    cdtest.run([nothing_stored, token_accepted, status_is_offline,
                token_rejected, provider_500, provider_garbage,
                provider_hangs, malformed_requests, disconnect,
                reconnect_nothing_stored, reconnect_ok, reconnect_revoked,
                reconnect_recovers, no_secret_leaks, clean_shutdown],
               fixture=scenario)
