#!/usr/bin/python3
"""The Manus connector keeps api.md's contract against a fake api.manus.ai.

One daemon and one fake for the whole file; the checks run in order and
build on each other's stored state (save, faults, disconnect, reconnect).
The workspace starts with mcp-tokens.json = {"other": {"x": 1}}, which must
survive every write.
"""

import contextlib
import os
import secrets
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

BASE = "/api/connectors/manus"
HOST = "api.manus.ai"
CHECK_PATH = "/v2/task.list?limit=1"
KEY1 = "manus_" + secrets.token_hex(16)
KEY2 = "manus_" + secrets.token_hex(16)
BAD = "manus_" + secrets.token_hex(16)


def entry(key):
    """The manus entry of mcp-tokens.json (reference/seed-service.md 8)."""
    return {"api_key": key, "expires_at": 0, "token_type": "api_key"}


class Scenario:
    def __init__(self, fake, daemon):
        self.fake = fake
        self.d = daemon

    def save(self, key, timeout=20):
        return self.d.api("POST", BASE + "/token", {"token": key},
                          timeout=timeout)

    def status(self):
        status, _, body, raw = self.d.api("GET", BASE + "/status")
        if status != 200 or not isinstance(body, dict):
            diag("status answered %r %r" % (status, raw[:200]))
            return {}
        return body

    def checks(self):
        """Validation requests the fake received since its last reset."""
        return self.fake.requests(HOST, "/v2/task.list")


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        yield Scenario(fake, d)


def token_accepted(s):
    """A valid key is checked once, then stored 0600 beside other keys."""
    s.fake.reset()
    s.fake.add_manus_key(KEY1)
    answered_ok(s.save(KEY1), 'valid key: 200 {"ok": true}')
    tokens = s.d.read_tokens()
    is_(tokens.get("manus"), entry(KEY1), "manus entry stored as specified")
    is_(tokens.get("other"), {"x": 1}, "unknown key 'other' preserved")
    mode = stat.S_IMODE(os.stat(s.d.tokens_path).st_mode)
    is_(oct(mode), oct(0o600), "mcp-tokens.json has mode 0600")
    is_(s.status().get("connected"), True, "status: connected")
    reqs = s.checks()
    is_(len(reqs), 1, "exactly one validation request reached Manus")
    if reqs:
        r = reqs[0]
        is_((r["method"], r["path"]), ("GET", CHECK_PATH),
            "validation is GET /v2/task.list?limit=1")
        is_(r["headers"].get("x-manus-api-key"), cdtest.fingerprint(KEY1),
            "the key travels in x-manus-api-key")


def token_rejected(s):
    """A key Manus refuses gets 422 and nothing is written."""
    s.fake.reset()
    s.fake.add_manus_key(KEY1)
    before = s.d.tokens_bytes()
    is_error_json(s.save(BAD), 422, "rejected key: JSON 422")
    ok(s.d.tokens_bytes() == before, "rejected key: mcp-tokens.json unchanged")
    is_(len(s.checks()), 1, "rejected key: one validation request")
    is_(s.status().get("connected"), True,
        "rejected key: the stored key still counts as connected")


def provider_fault(s, mode, max_sec=20):
    """Save KEY2 (valid at the fake) while the fake misbehaves: JSON 502,
    file unchanged. Returns the seconds the answer took."""
    s.fake.reset()
    s.fake.add_manus_key(KEY2)
    s.fake.set_mode("manus", mode)
    before = s.d.tokens_bytes()
    t0 = time.monotonic()
    try:
        result = s.save(KEY2, timeout=60)
    finally:
        s.fake.set_mode("manus", "normal")
    took = time.monotonic() - t0
    is_error_json(result, 502, "Manus %s: JSON 502" % mode)
    ok(took < max_sec, "Manus %s: answered in %.1f s (< %d s)"
       % (mode, took, max_sec))
    ok(s.d.tokens_bytes() == before, "Manus %s: mcp-tokens.json unchanged"
       % mode)
    return took


def provider_500(s):
    provider_fault(s, "500")


def provider_garbage(s):
    provider_fault(s, "garbage")


def provider_hangs(s):
    """A provider that never answers costs a bounded wait (about 30 s)."""
    provider_fault(s, "hang", max_sec=40)


def provider_slow(s):
    """A provider that answers in 3 s is still within the deadline."""
    s.fake.reset()
    s.fake.add_manus_key(KEY2)
    s.fake.set_mode("manus", "slow")
    try:
        t0 = time.monotonic()
        result = s.save(KEY2)
        took = time.monotonic() - t0
    finally:
        s.fake.set_mode("manus", "normal")
    answered_ok(result, "slow Manus: key accepted")
    ok(took >= 3, "slow Manus: the answer waited for Manus (%.1f s)" % took)
    is_(s.d.read_tokens().get("manus"), entry(KEY2), "slow Manus: stored")


def status_is_offline(s):
    """Status answers from stored state: Manus sees nothing."""
    before = len(s.fake.log())
    for _ in range(3):
        is_(s.status().get("connected"), True, "status: connected")
    is_(len(s.fake.log()), before, "status made no CONNECT or request")


def disconnect(s):
    """Disconnect removes only the manus entry, and may be repeated."""
    answered_ok(s.d.api("POST", BASE + "/disconnect"), "disconnect: 200 ok")
    tokens = s.d.read_tokens()
    ok("manus" not in tokens, "disconnect: manus entry removed")
    is_(tokens.get("other"), {"x": 1}, "disconnect: 'other' preserved")
    is_(s.status().get("connected"), False, "status after disconnect: false")
    before = s.d.tokens_bytes()
    answered_ok(s.d.api("POST", BASE + "/disconnect"),
                "second disconnect: 200 ok")
    ok(s.d.tokens_bytes() == before, "second disconnect: file unchanged")


def reconnect_nothing_stored(s):
    s.fake.reset()
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 404,
                  "reconnect with nothing stored: JSON 404")
    is_(len(s.checks()), 0, "reconnect with nothing stored: Manus not called")


def reconnect_ok(s):
    """Reconnect re-validates the stored key live."""
    s.fake.reset()
    s.fake.add_manus_key(KEY1)
    answered_ok(s.save(KEY1), "store KEY1 again")
    answered_ok(s.d.api("POST", BASE + "/reconnect"),
                'reconnect: {"ok": true, "connected": true}', connected=True)
    reqs = s.checks()
    is_(len(reqs), 2, "reconnect: one more validation request")
    ok(reqs and reqs[-1]["headers"].get("x-manus-api-key")
       == cdtest.fingerprint(KEY1), "reconnect: checked the stored key")


def reconnect_revoked(s):
    """A key revoked at Manus: 422, the key is kept, status says why."""
    s.fake.revoke_manus_key(KEY1)
    is_error_json(s.d.api("POST", BASE + "/reconnect"), 422,
                  "reconnect with a revoked key: JSON 422")
    is_(s.d.read_tokens().get("manus"), entry(KEY1),
        "revoked key: entry kept in mcp-tokens.json")
    body = s.status()
    is_(body.get("connected"), False, "status after failed reconnect: false")
    err = body.get("error")
    ok(isinstance(err, str) and err.strip(),
       "status after failed reconnect: a string error (%r)" % (err,))


def reconnect_recovers(s):
    """Once the key works again, reconnect clears the error."""
    s.fake.add_manus_key(KEY1)
    answered_ok(s.d.api("POST", BASE + "/reconnect"),
                "reconnect after the key works again", connected=True)
    body = s.status()
    is_(body.get("connected"), True, "status: connected again")
    ok(body.get("error") is None, "status: no error left (%r)"
       % (body.get("error"),))


def no_secret_leaks(s):
    """No key in any answer, the daemon log, the state dir, the fake log."""
    keys = [KEY1, KEY2, BAD]
    bodies = b"\n".join(raw for _, _, _, raw in s.d.transcript)
    cdtest.scrub_check(bodies, keys, "no key in any API response")
    cdtest.scrub_check(s.d.log_text(), keys, "no key in the daemon log")
    cdtest.scrub_check(s.d.state_files_text(), keys,
                       "no key in state_dir (IPC log included)")
    with open(os.path.join(s.fake.dir, "fake.log"), "rb") as f:
        cdtest.scrub_check(f.read(), keys, "no key in the fake's own log")


def clean_shutdown(s):
    """SIGTERM ends the daemon and all its processes, with status 0."""
    is_(s.d.stop(), 0, "connectord exits 0 on SIGTERM")


if __name__ == "__main__":
    cdtest.run([token_accepted, token_rejected, provider_500,
                provider_garbage, provider_hangs, provider_slow,
                status_is_offline, disconnect, reconnect_nothing_stored,
                reconnect_ok, reconnect_revoked, reconnect_recovers,
                no_secret_leaks, clean_shutdown], fixture=scenario)
