#!/usr/bin/python3
"""kill -9 of any child loses nothing, tears nothing, and service resumes.

- the vault, killed while 50 saves are in flight: every request gets an
  answer (200 or a JSON 5xx, never a hang or a reset), mcp-tokens.json still
  parses and holds one of the keys sent plus the unrelated key, a new vault
  comes up and the next save works;
- http: a new http answers /healthz within 10 s;
- a worker in the middle of a validation: the waiting client gets a JSON
  502/503 promptly.
"""

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import answered_ok, diag, is_, is_error_json, ok  # noqa: E402

TOKEN = "/api/connectors/manus/token"
HOST = "api.manus.ai"
SAVES = 50
KILL_AFTER_ACKS = 10


def new_key():
    return "manus_" + secrets.token_hex(16)


def entry(key):
    return {"api_key": key, "expires_at": 0, "token_type": "api_key"}


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        yield fake, d


class Saves:
    """SAVES concurrent token saves, each with its own key; counts 200s so
    that the vault can be killed after the first few are acknowledged."""

    def __init__(self, d, keys):
        self.d = d
        self.keys = keys
        self.outcomes = [None] * len(keys)
        self.acks = 0
        self.cond = threading.Condition()
        self.gate = threading.Barrier(len(keys))
        self.threads = [threading.Thread(target=self.save, args=(i,),
                                         daemon=True)
                        for i in range(len(keys))]

    def save(self, i):
        self.gate.wait()
        try:
            status, _, body, _ = self.d.api("POST", TOKEN,
                                            {"token": self.keys[i]},
                                            timeout=30)
            self.outcomes[i] = (status, body)
        except Exception as e:     # a reset or a timeout: recorded, judged
            self.outcomes[i] = ("exception", repr(e))
        with self.cond:
            if self.outcomes[i][0] == 200:
                self.acks += 1
            self.cond.notify_all()

    def start(self):
        for t in self.threads:
            t.start()

    def wait_acks(self, n, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.acks >= n or
                               all(self.outcomes), timeout)
            return self.acks

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)


def acceptable(outcome):
    """200, or a 5xx with a JSON error sentence."""
    status, body = outcome
    if status == 200:
        return True
    return (isinstance(status, int) and 500 <= status < 600
            and isinstance(body, dict) and isinstance(body.get("error"), str))


def vault_killed_during_saves(fx):
    fake, d = fx
    keys = [new_key() for _ in range(SAVES)]
    for k in keys:
        fake.add_manus_key(k)
    vault = d.pid_of("vault")
    if not ok(vault, "one vault process found"):
        diag("roles: %r" % d.pids())
        return
    saves = Saves(d, keys)
    saves.start()
    acked = saves.wait_acks(KILL_AFTER_ACKS, 30)
    os.kill(vault, signal.SIGKILL)
    diag("vault %d killed after %d acknowledged saves" % (vault, acked))

    ok(saves.join(60), "every save got an answer (none hung)")
    bad = [(i, o) for i, o in enumerate(saves.outcomes)
           if o is None or not acceptable(o)]
    ok(not bad, "every answer is a 200 or a JSON 5xx (no reset, no hang)")
    for i, o in bad[:10]:
        diag("save %d: %r" % (i, o))
    diag("outcomes: %d x 200, %d other"
         % (sum(1 for o in saves.outcomes if o and o[0] == 200),
            sum(1 for o in saves.outcomes if not o or o[0] != 200)))

    new_vault = d.wait_role("vault", not_pid=vault, timeout=10)
    ok(new_vault, "a new vault is running within 10 s (%r)" % new_vault)
    ok(d.wait_healthy(10), "healthz is 200 again")
    tokens = parsed_tokens(d)
    manus = tokens.get("manus") if tokens else None
    key = manus.get("api_key") if isinstance(manus, dict) else None
    ok(key in keys, "the stored key is one of the keys sent")
    if key in keys:
        is_(manus, entry(key), "the stored entry is whole")
        diag("stored key is save %d (%r)" % (keys.index(key),
                                             saves.outcomes[keys.index(key)]))
    is_(tokens.get("other") if tokens else None, {"x": 1},
        "the unrelated entry survived")
    ledger_agrees(d, keys, saves.outcomes, key)
    fresh_save_works(fake, d, "after the vault restart")


def ledger_agrees(d, keys, outcomes, stored):
    """Every acknowledged save is in the IPC log as committed, and the
    file holds the last committed key (or, if the vault died between the
    log line and the rename, the one before it, whose successor then was
    never acknowledged)."""
    with open(os.path.join(d.state_dir, "ipc-log.key"), "rb") as f:
        hkey = f.read()

    def fp(k):
        return hmac.new(hkey, k.encode(), hashlib.sha256).hexdigest()[:32]

    with open(os.path.join(d.state_dir, "ipc.log"), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    committed = [x["fp"].get("api_key") for x in lines
                 if x["type"] == "CRED_PUT_REQ" and x["outcome"] == "ok"]
    acked = [k for k, o in zip(keys, outcomes) if o and o[0] == 200]
    missing = [k for k in acked if fp(k) not in committed]
    ok(not missing, "every acknowledged save is committed in the IPC log "
       "(%d acknowledged, %d committed)" % (len(acked), len(committed)))
    if not committed or stored is None:
        ok(False, "the log and the file name a stored key")
        return
    by_fp = {fp(k): i for i, k in enumerate(keys)}
    if fp(stored) == committed[-1]:
        ok(True, "the file holds the last committed key")
    else:
        last = by_fp.get(committed[-1])
        ok(len(committed) > 1 and fp(stored) == committed[-2] and
           last is not None and outcomes[last][0] != 200,
           "the file holds the key before an unacknowledged last commit")


def parsed_tokens(d):
    """mcp-tokens.json parsed, with a check that it parses at all."""
    try:
        tokens = d.read_tokens()
    except ValueError as e:
        ok(False, "mcp-tokens.json parses (%s)" % e)
        return None
    ok(isinstance(tokens, dict), "mcp-tokens.json parses to an object")
    return tokens if isinstance(tokens, dict) else None


def fresh_save_works(fake, d, when):
    key = new_key()
    fake.add_manus_key(key)
    answered_ok(d.api("POST", TOKEN, {"token": key}), "a save works %s" % when)
    tokens = parsed_tokens(d)
    is_(tokens.get("manus") if tokens else None, entry(key),
        "and lands in mcp-tokens.json")


def http_killed(fx):
    _, d = fx
    http, broker = d.pid_of("http"), d.proc.pid
    if not ok(http, "one http process found"):
        diag("roles: %r" % d.pids())
        return
    os.kill(http, signal.SIGKILL)
    t0 = time.monotonic()
    new_http = d.wait_role("http", not_pid=http, timeout=10)
    ok(new_http, "a new http is running (%r)" % new_http)
    ok(d.wait_healthy(max(0.1, 10 - (time.monotonic() - t0))),
       "healthz is 200 within 10 s of the kill")
    ok(cdtest.alive(broker) and d.proc.poll() is None, "the broker lives on")
    is_(d.api("GET", "/api/connectors/manus/status")[0], 200,
        "the API token still works")


def worker_killed_mid_validation(fx):
    fake, d = fx
    key = new_key()
    fake.reset()
    fake.add_manus_key(key)
    fake.set_mode("manus", "hang")
    before = d.tokens_bytes()
    answer = {}

    def save():
        try:
            answer["result"] = d.api("POST", TOKEN, {"token": key}, timeout=60)
        except Exception as e:
            answer["result"] = ("exception", repr(e))
        answer["at"] = time.monotonic()

    t = threading.Thread(target=save, daemon=True)
    t.start()
    try:
        in_check = cdtest.wait_for(lambda: fake.requests(HOST), 10)
        ok(in_check, "the worker's check reached the (hanging) fake")
        worker = d.wait_role("worker manus", timeout=5)
        if not ok(worker, "the worker is running (%r)" % worker):
            diag("roles: %r" % d.pids())
            return
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        t.join(15)
    finally:
        fake.set_mode("manus", "normal")
    if not ok(not t.is_alive() and "at" in answer,
              "the client got an answer, not a hang"):
        return
    ok(answer["at"] - killed_at < 5, "answered %.1f s after the kill (< 5 s)"
       % (answer["at"] - killed_at))
    result = answer["result"]
    if result[0] == "exception":
        ok(False, "the request was answered, not reset (%s)" % result[1])
    else:
        is_error_json(result, result[0] if result[0] in (502, 503) else 502,
                      "the answer is a JSON 502 or 503")
    ok(cdtest.wait_for(lambda: "worker manus" not in d.pids(), 5),
       "no manus worker left")
    ok(d.healthy(), "healthz is 200")
    is_(d.tokens_bytes(), before, "mcp-tokens.json unchanged")


def worker_frozen_until_deadline(fx):
    """A worker that stops making progress (here: SIGSTOP, so not even
    libcurl's timeout can fire) is killed by the broker at the job's
    deadline (30 s for a token check), and the client gets a 503 that
    says so, not a hang."""
    fake, d = fx
    key = new_key()
    fake.reset()
    fake.add_manus_key(key)
    fake.set_mode("manus", "hang")
    answer = {}

    def save():
        answer["result"] = d.api("POST", TOKEN, {"token": key}, timeout=90)
        answer["at"] = time.monotonic()

    t = threading.Thread(target=save, daemon=True)
    t0 = time.monotonic()
    t.start()
    try:
        worker = d.wait_role("worker manus", timeout=10)
        if not ok(worker, "the worker is running"):
            return
        os.kill(worker, signal.SIGSTOP)
        t.join(60)
    finally:
        fake.set_mode("manus", "normal")
    if not ok("at" in answer, "the client got an answer within 60 s"):
        return
    took = answer["at"] - t0
    ok(25 <= took <= 40, "answered at the 30 s deadline (%.1f s)" % took)
    is_error_json(answer["result"], 503, "a JSON 503")
    err = (answer["result"][2] or {}).get("error", "")
    ok("in time" in err, "saying the worker did not finish in time (%r)"
       % err)
    ok(not cdtest.alive(worker), "the frozen worker is gone")
    ok("reached its deadline" in d.log_text(), "the broker logged why")


def broker_killed_under_load(fx):
    """kill -9 of the broker itself during concurrent saves: every child
    follows it within 5 s (their channels to it close; workers have a
    parent-death signal), nothing hangs, the files are whole, and a
    daemon started again on the same state has every acknowledged save."""
    fake, d = fx
    keys = [new_key() for _ in range(SAVES)]
    for k in keys:
        fake.add_manus_key(k)
    saves = Saves(d, keys)
    saves.start()
    acked = saves.wait_acks(KILL_AFTER_ACKS, 30)
    children = cdtest._descendants(d.proc.pid)
    d.proc.kill()
    d.proc.wait(10)
    diag("broker killed after %d acknowledged saves, %d children"
         % (acked, len(children)))
    ok(cdtest.wait_for(lambda: not [p for p in children
                                    if cdtest.alive(p)], 5),
       "every child of the broker is gone within 5 s")
    ok(saves.join(60), "every save ended (none hung)")
    # With the front end gone a client may see a reset: the service is
    # down. What it must never see is a 200 that was not stored.
    bad = [(i, o) for i, o in enumerate(saves.outcomes)
           if o is None or (o[0] != "exception" and not acceptable(o))]
    ok(not bad, "every answer is a 200, a JSON 5xx or a closed connection")
    for i, o in bad[:10]:
        diag("save %d: %r" % (i, o))
    d.logf.close()
    d.start()
    ok(True, "a daemon starts again on the same state")
    tokens = parsed_tokens(d)
    manus = tokens.get("manus") if tokens else None
    key = manus.get("api_key") if isinstance(manus, dict) else None
    ok(key in keys, "the stored key is one of the keys sent")
    is_(tokens.get("other") if tokens else None, {"x": 1},
        "the unrelated entry survived")
    ledger_agrees(d, keys, [o if o and o[0] != "exception" else None
                            for o in saves.outcomes], key)
    ok(not [n for n in os.listdir(d.workspace) if n.endswith(".tmp")],
       "no temporary file is left in the workspace")
    fresh_save_works(fake, d, "after the broker was killed and restarted")


if __name__ == "__main__":
    cdtest.run([vault_killed_during_saves, http_killed,
                worker_killed_mid_validation, worker_frozen_until_deadline,
                broker_killed_under_load],
               fixture=scenario)
