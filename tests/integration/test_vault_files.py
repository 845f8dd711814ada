#!/usr/bin/python3
"""The vault's files: a credential file it cannot parse is never
overwritten, and every request it handles leaves one line in the
hash-chained IPC log, with secrets only as HMAC fingerprints, which
connectorctl audit verify accepts and which detects an edited line.
"""

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

BASE = "/api/connectors/manus"
CTL = os.path.join(cdtest.BUILD, "connectorctl")


def vault_fp(d, secret):
    """The fingerprint the vault writes: HMAC-SHA256 under its own key,
    first 16 bytes in hex."""
    with open(os.path.join(d.state_dir, "ipc-log.key"), "rb") as f:
        key = f.read()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()[:32]


def log_lines(d):
    with open(os.path.join(d.state_dir, "ipc.log"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def verify(path):
    p = subprocess.run([CTL, "audit", "verify", path], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


@contextlib.contextmanager
def corrupt_scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"manus": {"api_key": '}) as d:
        yield fake, d


def corrupt_file_untouched(fx):
    fake, d = fx
    before = d.tokens_bytes()
    key = "manus_" + secrets.token_hex(16)
    fake.add_manus_key(key)
    status, _, body, _ = d.api("POST", BASE + "/token", {"token": key})
    is_(status, 500, "saving into an unparsable mcp-tokens.json fails")
    err = body.get("error", "") if isinstance(body, dict) else ""
    ok("mcp-tokens.json" in err and "repair" in err,
       "the error names the file and says what to do (%r)" % err)
    is_(d.tokens_bytes(), before, "the unparsable file is byte-identical")
    status, _, body, _ = d.api("POST", BASE + "/disconnect")
    is_(status, 500, "a disconnect fails the same way")
    is_(d.tokens_bytes(), before, "and leaves the file alone")
    left = [n for n in os.listdir(d.workspace) if n.endswith(".tmp")]
    is_(left, [], "no temporary file is left in the workspace")
    cdtest.scrub_check(d.log_text(), [key], "the daemon log")


@contextlib.contextmanager
def log_scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(fake) as d:
        yield fake, d


def ipc_log_chain(fx):
    fake, d = fx
    good = "manus_" + secrets.token_hex(16)
    fake.add_manus_key(good)
    cdtest.answered_ok(d.api("POST", BASE + "/token", {"token": good}),
                       "a key is saved")
    cdtest.answered_ok(d.api("POST", BASE + "/reconnect"), "and revalidated")
    fake.revoke_manus_key(good)
    is_(d.api("POST", BASE + "/reconnect")[0], 422,
        "a revoked key fails to reconnect")
    cdtest.answered_ok(d.api("POST", BASE + "/disconnect"), "and is removed")

    path = os.path.join(d.state_dir, "ipc.log")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    is_(mode, 0o600, "ipc.log is mode 0600")
    is_(stat.S_IMODE(os.stat(os.path.join(d.state_dir,
                                          "ipc-log.key")).st_mode),
        0o600, "its HMAC key is mode 0600")
    lines = log_lines(d)
    types = [(line["type"], line["outcome"]) for line in lines]
    diag("log: %r" % types)
    for want in [("CRED_PUT_REQ", "ok"), ("CRED_GET_REQ", "ok"),
                 ("CRED_MARK_REQ", "valid"), ("CRED_MARK_REQ", "invalid"),
                 ("DELETE_REQ", "ok")]:
        ok(want in types, "the log records %s %s" % want)
    put = next(x for x in lines if x["type"] == "CRED_PUT_REQ")
    is_(put["peer"], "worker", "a store is attributed to the worker")
    ok(put["job"] > 0 and put["pid"] > 0, "with its job id and pid")
    is_(put["kind"], "token", "and its kind")
    is_(put["fp"].get("api_key"), vault_fp(d, good),
        "the key appears only as its HMAC fingerprint")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ok(good not in text, "the key itself is not in the log")
    is_([x["seq"] for x in lines], list(range(1, len(lines) + 1)),
        "sequence numbers run 1..N")

    rc, out = verify(path)
    is_(rc, 0, "connectorctl audit verify accepts the log (%s)"
        % out.strip())
    ok("%d lines" % len(lines) in out, "and counts every line")

    tampered = os.path.join(d.dir, "tampered.log")
    with open(path, encoding="utf-8") as f:
        raw = f.read().splitlines(True)
    raw[1] = raw[1].replace('"ok"', '"OK"', 1)
    with open(tampered, "w", encoding="utf-8") as f:
        f.writelines(raw)
    rc, out = verify(tampered)
    is_(rc, 1, "an edited line breaks the chain")
    ok("line 3" in out, "and verify names the first line that no longer "
       "fits (%s)" % out.strip())


def corrupt_store():
    with corrupt_scenario() as fx:
        corrupt_file_untouched(fx)


def ipc_log():
    with log_scenario() as fx:
        ipc_log_chain(fx)


def main():
    cdtest.run([corrupt_store, ipc_log])


if __name__ == "__main__":
    main()
