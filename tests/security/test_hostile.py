#!/usr/bin/python3
"""Hostile peers on the channels a compromised process could use: a
worker talking to the vault or to http, http talking to the vault, the
vault talking to http. Each bad frame (a type the receiver does not
accept from that peer, a request outside the worker's grant, garbage
after a valid frame, a length that lies, a truncated header) ends the
receiving child; the broker survives, restarts it, and no credential file
changes.

Frames are sent on the real channel, taken from the sending process with
pidfd_getfd(2) (root).
"""

import contextlib
import os
import secrets
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, ok  # noqa: E402

MSG_GRANT = 0x0301
MSG_META_REQ = 0x0401
MSG_META_PUSH = 0x0402
MSG_CRED_PUT_REQ = 0x0601
MSG_CRED_GET_REQ = 0x0603


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        yield fake, d


@contextlib.contextmanager
def live_worker(fake, d):
    """A manus token worker held alive by a hanging fake."""
    key = "manus_" + secrets.token_hex(8)
    fake.reset()
    fake.add_manus_key(key)
    fake.set_mode("manus", "hang")

    def save():
        try:
            d.api("POST", "/api/connectors/manus/token", {"token": key},
                  timeout=60)
        except Exception:
            pass
    t = threading.Thread(target=save, daemon=True)
    t.start()
    try:
        yield d.wait_role("worker manus", timeout=10)
    finally:
        fake.reset()
        t.join(60)


def expect_restart(d, victim_role, victim, before, what):
    broker = d.proc.pid
    ok(cdtest.wait_for(lambda: not cdtest.alive(victim), 10),
       "%s: the %s ended" % (what, victim_role))
    ok(d.wait_role(victim_role, not_pid=victim, timeout=10),
       "%s: a new %s runs" % (what, victim_role))
    ok(d.proc.poll() is None and d.proc.pid == broker,
       "%s: the broker lives on" % what)
    ok(d.wait_healthy(10), "%s: healthz is 200 again" % what)
    ok(d.tokens_bytes() == before, "%s: mcp-tokens.json unchanged" % what)


def from_worker_to_vault(frame_of, what):
    def test(fx):
        fake, d = fx
        before = d.tokens_bytes()
        with live_worker(fake, d) as worker:
            vault = d.pid_of("vault")
            if not ok(worker and vault, "%s: worker and vault found" % what):
                return
            fd = cdtest.channel_between(worker, vault)
            cdtest.send_as(worker, fd, frame_of())
            expect_restart(d, "vault", vault, before, what)
    test.__name__ = what.replace(" ", "_")
    return test


def from_worker_to_http(fx):
    fake, d = fx
    what = "worker sends META_PUSH to http"
    before = d.tokens_bytes()
    with live_worker(fake, d) as worker:
        http = d.pid_of("http")
        if not ok(worker and http, "%s: worker and http found" % what):
            return
        fd = cdtest.channel_between(worker, http)
        cdtest.send_as(worker, fd, cdtest.message(
            MSG_META_PUSH, cdtest.put_str('{"connectors":{}}')))
        expect_restart(d, "http", http, before, what)


def from_http_to_vault(frame, what):
    def test(fx):
        _, d = fx
        before = d.tokens_bytes()
        http, vault = d.pid_of("http"), d.pid_of("vault")
        fd = cdtest.channel_between(http, vault)
        cdtest.send_as(http, fd, frame)
        expect_restart(d, "vault", vault, before, what)
    test.__name__ = what.replace(" ", "_")
    return test


def from_vault_to_http(fx):
    _, d = fx
    what = "vault sends an unknown type to http"
    before = d.tokens_bytes()
    http, vault = d.pid_of("http"), d.pid_of("vault")
    fd = cdtest.channel_between(vault, http)
    cdtest.send_as(vault, fd, cdtest.message(0x7777, b"x"))
    expect_restart(d, "http", http, before, what)
    diag("http restarted after a hostile vault frame")


def from_broker_to_vault(fx):
    """Even the broker's channel is checked: a type the vault never takes
    from the broker ends the vault, and the broker restarts it."""
    _, d = fx
    what = "broker sends META_PUSH to the vault"
    before = d.tokens_bytes()
    broker, vault = d.proc.pid, d.pid_of("vault")
    fd = cdtest.channel_between(broker, vault)
    cdtest.send_as(broker, fd, cdtest.message(
        MSG_META_PUSH, cdtest.put_str("{}")))
    expect_restart(d, "vault", vault, before, what)


def from_worker_to_broker(fx):
    """A worker saying anything but READY to the broker is killed; the
    broker carries on and the client gets a JSON 5xx, not a hang."""
    fake, d = fx
    what = "worker sends GRANT to the broker"
    before = d.tokens_bytes()
    with live_worker(fake, d) as worker:
        if not ok(worker, "%s: worker found" % what):
            return
        cdtest.send_as(worker, 3, cdtest.message(MSG_GRANT,
                                                 cdtest.put_str("x")))
        ok(cdtest.wait_for(lambda: not cdtest.alive(worker), 10),
           "%s: the worker was killed" % what)
        ok(d.proc.poll() is None, "%s: the broker lives on" % what)
        ok(d.wait_healthy(10), "%s: healthz is 200" % what)
        ok(d.tokens_bytes() == before, "%s: mcp-tokens.json unchanged"
           % what)


def main():
    put = cdtest.put_str("manus") + cdtest.put_str(
        '{"api_key":"hostile","expires_at":0,"token_type":"api_key"}') + \
        cdtest.put_str("")
    tests = [
        from_worker_to_vault(lambda: cdtest.message(
            MSG_GRANT, cdtest.put_str("x")), "worker sends GRANT to vault"),
        from_worker_to_vault(lambda: cdtest.message(
            MSG_CRED_GET_REQ, cdtest.put_str("manus")),
            "token worker reads outside its grant"),
        from_worker_to_vault(lambda: cdtest.message(
            MSG_CRED_PUT_REQ, cdtest.put_str("github") + put[9:]),
            "worker stores another connector"),
        from_worker_to_http,
        from_http_to_vault(cdtest.message(MSG_META_REQ, b"junk"),
                           "garbage after a valid frame"),
        from_http_to_vault(cdtest.message(MSG_META_REQ, b"", length=64),
                           "a length that lies"),
        from_http_to_vault(cdtest.message(MSG_META_REQ)[:8],
                           "a truncated header"),
        from_vault_to_http,
        from_broker_to_vault,
        from_worker_to_broker,
    ]
    cdtest.run(tests, fixture=scenario)


if __name__ == "__main__":
    if os.geteuid() != 0:
        cdtest.skip_all("needs root to take another process's descriptor")
    main()
