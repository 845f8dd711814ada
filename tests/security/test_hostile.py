#!/usr/bin/python3
"""Hostile peers on every channel a compromised process could use:
http->broker, vault->broker, broker->http, broker->vault, http->vault,
vault->http, worker->vault, worker->broker, worker->http. On each, every
kind of bad frame the issue names is sent on the real channel, as the
sending process (its descriptor taken with pidfd_getfd(2); root):

  oversize      a well-formed frame whose payload exceeds every cap
  short         a header that promises more payload than follows
  unknown       a type number no message has
  unpermitted   a real type the receiver never takes from that peer
  descriptor    a permitted type with a descriptor attached, which that
                type never carries
  repeated      a one-time request sent again (where the channel has one)
  garbage       a valid frame with bytes after its last field

and the SIGHUP messages (CONFIG, ACCESS_LOG, LOG_REOPEN), which only the
broker may send to http and the vault: each from another peer, an
ACCESS_LOG whose flag says "no file" with a descriptor attached or whose
descriptor is not a file open for appending, and a CONFIG that does not
parse.

The receiving child dies (when the receiver is the broker, it kills the
sender instead); the broker survives and restarts what must run; healthz
answers again; no credential file changes.

Channels without a one-time request say so in a diagnostic: http->vault
(META_REQ and DELETE_REQ are repeatable), vault->http (a late DELETE_ANS
for a request http gave up on is legitimate and ignored), worker->http
(http reads exactly one JOB_RESULT and closes the channel, so a second is
never read), worker->broker (a worker sends nothing to the broker at all:
any frame ends it). The reverse worker directions (http, vault and broker to a
worker) are read by the worker only when it waits for an answer; a worker
refuses anything but the one type it waits for (workers/worker.c).
"""

import contextlib
import os
import re
import secrets
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, ok  # noqa: E402

MSG_INIT = 0x0101
MSG_READY = 0x0102
MSG_CONFIG = 0x0103
MSG_SPAWN_REQ = 0x0201
MSG_JOB_CANCEL = 0x0203
MSG_JOB_EXIT = 0x0204
MSG_ACCESS_LOG = 0x0206
MSG_STATS = 0x0207
MSG_GRANT = 0x0301
MSG_GRANT_END = 0x0302
MSG_LOG_REOPEN = 0x0304
MSG_META_REQ = 0x0401
MSG_META_PUSH = 0x0402
MSG_DELETE_REQ = 0x0403
MSG_DELETE_ANS = 0x0404
MSG_JOB_PROGRESS = 0x0502
MSG_JOB_RESULT = 0x0503
MSG_CRED_PUT_REQ = 0x0601
MSG_CRED_GET_REQ = 0x0603
MSG_UNKNOWN = 0x7777
PAYLOAD_MAX = 256 * 1024      # CD_MSG_PAYLOAD_MAX, above every channel cap
SO_SNDBUFFORCE = 32
NOBODY_JOB = 0x7ffffff0       # a job id no real job has


STORED_KEY = "manus_" + "5" * 32


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        fake.add_manus_key(STORED_KEY)
        st = d.api("POST", "/api/connectors/manus/token",
                   {"token": STORED_KEY})[0]
        ok(st == 200, "a manus key is stored to start with")
        yield fake, d


@contextlib.contextmanager
def live_worker(fake, d, kind="token"):
    """A manus worker held alive by a hanging fake: a token check (grant:
    PUT) or a revalidation (grant: GET, then MARK; its GET already used)."""
    key = "manus_" + secrets.token_hex(8)
    fake.reset()
    fake.add_manus_key(key)
    fake.add_manus_key(STORED_KEY)
    fake.set_mode("manus", "hang")

    def save():
        try:
            if kind == "token":
                d.api("POST", "/api/connectors/manus/token", {"token": key},
                      timeout=60)
            else:
                d.api("POST", "/api/connectors/manus/reconnect", {},
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


def send_hostile(pid, fd, frame, fds=()):
    """Send one frame on pid's descriptor fd, as pid; fds are attached as
    SCM_RIGHTS. The send buffer is raised first so that an oversize frame
    goes out as one record."""
    with socket.socket(fileno=cdtest.steal_fd(pid, fd)) as s:
        if len(frame) > 100000:
            s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 4 * len(frame))
        if fds:
            socket.send_fds(s, [frame], list(fds))
        else:
            s.send(frame)



def msg(mtype, payload=b"", job=0, length=None):
    return cdtest.message(mtype, payload, job=job, length=length)


def worker_job(d, pid):
    """The job id of the worker pid, from the broker's "job N: worker ...
    started (pid P)" line."""
    m = re.findall(r"job (\d+): worker \S+ \S+ started \(pid %d\)" % pid,
                   d.log_text())
    return int(m[-1]) if m else 0


def common_cases(permitted, unpermitted):
    """The cases every channel has, built around one frame the receiver
    does take from that peer (permitted: a function of the payload tail)
    and one type it never takes from it."""
    frame = permitted(b"")
    return [
        ("oversize", lambda: (msg(MSG_UNKNOWN, b"x" * (PAYLOAD_MAX + 1)),
                              ())),
        ("short", lambda: (frame[:8] + (len(frame) - 16 + 12).to_bytes(
            4, "little") + frame[12:], ())),
        ("unknown", lambda: (msg(MSG_UNKNOWN, b"x"), ())),
        ("unpermitted", lambda: (unpermitted, ())),
        ("descriptor", lambda: (frame, (os.open("/dev/null", os.O_RDONLY),))),
        ("garbage", lambda: (permitted(b"junk"), ())),
    ]


# Each channel: (name, sender, receiver, victim, cases). sender and
# receiver name roles ("broker", "http", "vault", "worker"); victim is the
# role that must die. Frames that the receiver takes are aimed at a job
# that does not exist, so that even an accepted frame changes nothing.
def job_cancel(tail):
    return msg(MSG_JOB_CANCEL, tail, job=NOBODY_JOB)


def job_exit(tail):
    return msg(MSG_JOB_EXIT, cdtest.put_u32(4) + cdtest.put_u32(0) + tail,
               job=NOBODY_JOB)


def stats(tail, fields=7):
    """The broker's counters for /metrics: seven u32 (proto/msg.h)."""
    return msg(MSG_STATS, b"".join(cdtest.put_u32(i) for i in
                                   range(fields)) + tail)


def grant_end(tail):
    return msg(MSG_GRANT_END, tail, job=NOBODY_JOB)


def meta_req(tail):
    return msg(MSG_META_REQ, tail)


def delete_ans(tail):
    return msg(MSG_DELETE_ANS, cdtest.put_u32(0x7ffffff0) +
               cdtest.put_u32(200) + cdtest.put_str("") + tail)


def ready(tail):
    return msg(MSG_READY, tail)


def cred_get(tail):
    return msg(MSG_CRED_GET_REQ, cdtest.put_str("manus") + tail)


def job_result(tail):
    return msg(MSG_JOB_RESULT, cdtest.put_u32(502) + cdtest.put_str(
        "A hostile answer.") + cdtest.put_str("") + tail)


def config(text):
    return msg(MSG_CONFIG, cdtest.put_str(text))


def access_log(on):
    return msg(MSG_ACCESS_LOG, cdtest.put_u32(on))


def dev_null():
    return (os.open("/dev/null", os.O_RDONLY),)


# The reload messages: from any peer but the broker, and malformed from it.
RELOAD = {
    "http->broker": [("CONFIG from http", lambda: (config("a = b"), ()))],
    "http->vault": [("LOG_REOPEN from http", lambda: (msg(MSG_LOG_REOPEN),
                                                      ()))],
    "vault->http": [("ACCESS_LOG from the vault",
                     lambda: (access_log(1), dev_null()))],
    "worker->vault": [("CONFIG from a worker",
                       lambda: (config("session_ttl = 60"), ()))],
    "worker->http": [("ACCESS_LOG from a worker",
                      lambda: (access_log(1), dev_null()))],
    "broker->http": [
        ("ACCESS_LOG off with a descriptor",
         lambda: (access_log(0), dev_null())),
        ("ACCESS_LOG with a descriptor not open for appending",
         lambda: (access_log(1), dev_null())),
        ("CONFIG that does not parse", lambda: (config("bogus = 1"), ())),
    ],
    "broker->vault": [
        ("LOG_REOPEN with garbage", lambda: (msg(MSG_LOG_REOPEN, b"x"),
                                             ())),
        ("CONFIG that does not parse",
         lambda: (config("session_ttl = 5"), ())),
    ],
}


def grant(job):
    return msg(MSG_GRANT, cdtest.put_str("token") + cdtest.put_str("manus") +
               cdtest.put_str("") + cdtest.put_u32(1) + cdtest.put_u32(1),
               job=job)


CHANNELS = [
    ("http->broker", "http", "broker", "http",
     common_cases(job_cancel, msg(MSG_META_PUSH, cdtest.put_str("{}"))) +
     [("repeated", lambda: (ready(b""), ())),
      ("unpermitted STATS", lambda: (stats(b""), ()))]),
    ("vault->broker", "vault", "broker", "vault",
     common_cases(ready, msg(MSG_SPAWN_REQ, cdtest.put_u32(1))) +
     [("repeated", lambda: (ready(b""), ()))]),
    ("broker->http", "broker", "http", "http",
     common_cases(job_exit, msg(MSG_GRANT_END, job=NOBODY_JOB)) +
     [("repeated", lambda: (msg(MSG_INIT, cdtest.put_u32(0)), ())),
      # MSG_STATS, the counters for /metrics: every field or nothing.
      ("STATS short", lambda: (stats(b"", fields=6), ())),
      ("STATS garbage", lambda: (stats(b"junk"), ())),
      ("STATS descriptor", lambda: (stats(b""), (os.open(
          "/dev/null", os.O_RDONLY),)))]),
    ("broker->vault", "broker", "vault", "vault",
     common_cases(grant_end, msg(MSG_JOB_EXIT, job=NOBODY_JOB)) +
     [("repeated", "grant twice")]),
    ("http->vault", "http", "vault", "vault",
     common_cases(meta_req, msg(MSG_CRED_PUT_REQ, cdtest.put_str("manus")))),
    ("vault->http", "vault", "http", "http",
     common_cases(delete_ans, msg(MSG_CRED_GET_REQ,
                                  cdtest.put_str("manus")))),
    ("worker->vault", "worker", "vault", "vault",
     common_cases(cred_get, msg(MSG_META_REQ)) +
     [("repeated", lambda: (cred_get(b""), ()))]),
    # A worker sends nothing to the broker; READY stands in for the frame
    # a child could send there.
    ("worker->broker", "worker", "broker", "worker",
     common_cases(ready, msg(MSG_SPAWN_REQ, cdtest.put_u32(1)))),
    ("worker->http", "worker", "http", "http",
     common_cases(job_result, msg(MSG_META_PUSH, cdtest.put_str("{}")))),
]


CHANNELS = [(name, snd, rcv, victim, cases + RELOAD.get(name, []))
            for name, snd, rcv, victim, cases in CHANNELS]


def pid_of(d, role, worker):
    return {"broker": d.proc.pid, "worker": worker}.get(role) or \
        d.pid_of(role)


def expect_worker_killed(d, worker, before, what):
    ok(cdtest.wait_for(lambda: not cdtest.alive(worker), 10),
       "%s: the broker killed the worker" % what)
    ok(d.proc.poll() is None, "%s: the broker lives on" % what)
    ok(d.wait_healthy(10), "%s: healthz is 200" % what)
    ok(d.tokens_bytes() == before, "%s: mcp-tokens.json unchanged" % what)


def hostile(channel, case):
    name, sender, receiver, victim, _ = channel
    label, make = case
    what = "%s %s" % (name, label)

    def test(fx):
        fake, d = fx
        before = d.tokens_bytes()
        kind = "revalidate" if (sender == "worker" and
                                label == "repeated") else "token"
        ctx = live_worker(fake, d, kind) if "worker" in (sender, receiver) \
            else contextlib.nullcontext(None)
        with ctx as worker:
            mark = len(d.log_text())
            src = pid_of(d, sender, worker)
            dst = pid_of(d, receiver, worker)
            victim_pid = pid_of(d, victim, worker)
            if not ok(src and dst, "%s: %s and %s found" % (what, sender,
                                                             receiver)):
                return
            # A worker's control channel to the broker is its fd 3.
            fd = 3 if (sender, receiver) == ("worker", "broker") else \
                cdtest.channel_between(src, dst)
            if make == "grant twice":
                a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                send_hostile(src, fd, grant(NOBODY_JOB - 1), (a.fileno(),))
                send_hostile(src, fd, grant(NOBODY_JOB - 1), (b.fileno(),))
                a.close()
                b.close()
            else:
                frame, fds = make()
                if sender == "worker":
                    # As the worker's own job, so that only the case at
                    # hand is wrong with the frame.
                    frame = frame[:12] + worker_job(d, src).to_bytes(
                        4, "little") + frame[16:]
                try:
                    send_hostile(src, fd, frame, fds)
                finally:
                    for x in fds:
                        os.close(x)
            if victim == "worker":
                expect_worker_killed(d, victim_pid, before, what)
            else:
                expect_restart(d, victim, victim_pid, before, what)
            why = [ln for ln in d.log_text()[mark:].splitlines()
                   if "protocol violation" in ln]
            ok(why, "%s: the violation is logged" % what)
            for ln in why[:1]:
                diag(ln.strip())
    test.__name__ = what.replace(" ", "_").replace("->", "_to_")
    return test


def grant_case(frame_of, what):
    """Requests a token worker's grant does not allow."""
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


def stored_key_intact(fx):
    _, d = fx
    ok(STORED_KEY.encode() in d.tokens_bytes(),
       "after every hostile frame the stored key is still there")


def main():
    put = cdtest.put_str("manus") + cdtest.put_str(
        '{"api_key":"hostile","expires_at":0,"token_type":"api_key"}') + \
        cdtest.put_str("")
    tests = [hostile(ch, case) for ch in CHANNELS for case in ch[4]]
    tests += [
        grant_case(lambda: cdtest.message(
            MSG_CRED_GET_REQ, cdtest.put_str("manus")),
            "token worker reads outside its grant"),
        grant_case(lambda: cdtest.message(
            MSG_CRED_PUT_REQ, cdtest.put_str("github") + put[9:]),
            "worker stores another connector"),
        stored_key_intact,
    ]
    cdtest.run(tests, fixture=scenario)


if __name__ == "__main__":
    if os.geteuid() != 0:
        cdtest.skip_all("needs root to take another process's descriptor")
    main()
