#!/usr/bin/python3
"""Bad requests get api.md's JSON errors and change nothing.

Every malformed, oversized, misrouted or unauthenticated request must be
answered with the right status, Content-Type application/json and a body
{"error": "<sentence>"}; afterwards the daemon is still healthy, Manus was
never called, and mcp-tokens.json is byte-for-byte what it was.
"""

import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import answered_ok, is_, is_error_json, ok  # noqa: E402

TOKEN = "/api/connectors/manus/token"
SEED = json.dumps({"other": {"x": 1},
                   "manus": {"api_key": "manus_seeded_key_0123456789",
                             "expires_at": 0, "token_type": "api_key"}},
                  indent=2) + "\n"

# (name, method, path, keyword arguments of Daemon.api, expected status)
CASES = [
    ("malformed JSON", "POST", TOKEN, {"raw": b'{"token": '}, 400),
    ("JSON array body", "POST", TOKEN, {"raw": b'["manus_x"]'}, 400),
    ("JSON string body", "POST", TOKEN, {"raw": b'"manus_x"'}, 400),
    ("empty body", "POST", TOKEN, {"raw": b""}, 400),
    ("invalid UTF-8", "POST", TOKEN, {"raw": b'{"token": "\xff\xfe"}'}, 400),
    ("token is a number", "POST", TOKEN, {"body": {"token": 5}}, 400),
    ("token is null", "POST", TOKEN, {"body": {"token": None}}, 400),
    ("token is empty", "POST", TOKEN, {"body": {"token": ""}}, 400),
    ("token missing", "POST", TOKEN, {"body": {}}, 400),
    ("70 KiB body", "POST", TOKEN,
     {"raw": b'{"token": "' + b"a" * (70 * 1024) + b'"}'}, 413),
    ("unknown connector", "POST", "/api/connectors/nosuch/token",
     {"body": {"token": "x"}}, 404),
    ("unknown API path", "GET", "/api/nosuch", {}, 404),
    ("unknown path", "GET", "/nosuch", {}, 404),
    ("GET on a POST path", "GET", TOKEN, {}, 405),
    ("GET on disconnect", "GET", "/api/connectors/manus/disconnect", {}, 405),
    ("no bearer token", "POST", TOKEN,
     {"body": {"token": "x"}, "token": False}, 401),
    ("wrong bearer token", "POST", TOKEN,
     {"body": {"token": "x"}, "token": "not-the-token"}, 401),
    ("wrong auth scheme", "POST", TOKEN,
     {"body": {"token": "x"}, "token": False,
      "headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, 401),
    ("disconnect without bearer token", "POST",
     "/api/connectors/manus/disconnect", {"token": False}, 401),
    ("status without bearer token", "GET", "/api/connectors/manus/status",
     {"token": False}, 401),
]


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": SEED}) as d:
        yield fake, d


def bad_requests(fx):
    fake, d = fx
    before = d.tokens_bytes()
    for name, method, path, kwargs, status in CASES:
        is_error_json(d.api(method, path, **kwargs), status,
                      "%s: JSON %d" % (name, status))
        ok(d.healthy(), "%s: daemon still healthy" % name)
    is_(d.tokens_bytes(), before, "mcp-tokens.json unchanged, byte for byte")
    is_(fake.requests(), [], "Manus was never called")


def healthz_is_public(fx):
    _, d = fx
    result = d.api("GET", "/healthz", token=False)
    answered_ok(result, '/healthz without token: 200 {"ok": true}')
    is_(result[1].get("content-type", "").split(";")[0], "application/json",
        "/healthz answers JSON")


def still_serves(fx):
    """After all that, a good request is still served."""
    _, d = fx
    status, _, body, _ = d.api("GET", "/api/connectors/manus/status")
    is_((status, body.get("connected") if body else None), (200, True),
        "status still answers from the seeded file")


if __name__ == "__main__":
    cdtest.run([bad_requests, healthz_is_public, still_serves],
               fixture=scenario)
