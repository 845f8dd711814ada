#!/usr/bin/python3
"""The vault killed between every step of a write.

A manus token save makes the vault run a fixed sequence of system calls
(lib/store.c store_write and the IPC log's commit hook): open the
directory and flock it, read the current file, create the temporary file,
fchmod, write, fsync, write the IPC log line, fdatasync the log, rename,
fsync the directory, then write status.json the same way, push the
metadata to http and answer the worker. A disconnect runs the same steps
with the entry removed.

For each step, strace(1) attaches to the running vault with a fault
injection that delivers SIGKILL on entry to that system call (its Nth
call since the attach), so the vault dies with every earlier step done
and this one not started. Then:

- the client got a 200 or a JSON 5xx sentence, never a reset or a hang;
- mcp-tokens.json parses, keeps the unrelated entry, mode 0600, and
  holds the old value if the vault died before the rename, the new one
  if after it, never anything else;
- a 200 means the new value is in the file; a new value in the file means
  the IPC log holds its committed line (a log line without the rename is
  possible: the vault died between them and the client got a 5xx);
- `connectorctl audit verify` accepts the log;
- the broker restarted the vault, and the restarted vault removed the
  temporary file the dead one left (it may hold a secret);
- the vault really was killed at that step (else the case proves nothing).
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
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

STRACE = "/usr/bin/strace"
CTL = os.path.join(cdtest.BUILD, "connectorctl")
TOKEN = "/api/connectors/manus/token"
DISCONNECT = "/api/connectors/manus/disconnect"

# (what was done when the vault died, system call, its Nth call). The
# rename is the commit: the file holds the old value before it and the new
# value after it.
SAVE_STEPS = [
    ("before the directory lock", "flock", 1),
    ("holding the lock, before reading the file", "openat", 2),
    ("before creating the temporary file", "openat", 3),
    ("before its chmod", "fchmod", 1),
    ("before writing it", "write", 1),
    ("before its fsync", "fsync", 1),
    ("before the IPC log line", "write", 2),
    ("before the IPC log's fdatasync", "fdatasync", 1),
    ("before the rename", "renameat", 1),
    ("after the rename, before the directory fsync", "fsync", 2),
    ("before status.json's temporary file", "openat", 4),
    ("before status.json's rename", "renameat", 2),
    ("before the metadata push to http", "sendmsg", 1),
    ("before answering the worker", "sendmsg", 2),
]
DISCONNECT_STEPS = [
    ("before the directory lock", "flock", 1),
    ("before creating the temporary file", "openat", 3),
    ("before writing it", "write", 1),
    ("before the IPC log line", "write", 2),
    ("before the rename", "renameat", 1),
    ("after the rename, before the directory fsync", "fsync", 2),
    ("before status.json's rename", "renameat", 2),
    ("before the metadata push to http", "sendmsg", 1),
    ("before answering http", "sendmsg", 2),
]


def new_key():
    return "manus_" + secrets.token_hex(16)


def entry(key):
    return {"api_key": key, "expires_at": 0, "token_type": "api_key"}


@contextlib.contextmanager
def scenario():
    first = new_key()
    files = {"mcp-tokens.json": json.dumps(
        {"other": {"x": 1}, "manus": entry(first)}) + "\n"}
    with cdtest.Fake() as fake, cdtest.Daemon(fake, files=files) as d:
        fake.add_manus_key(first)
        d.current = first
        yield fake, d


@contextlib.contextmanager
def injected(pid, syscall, nth):
    """strace attached to pid, killing it on entry to its nth syscall."""
    log = os.path.join(os.path.dirname(CTL), "vault-steps.strace")
    p = subprocess.Popen(
        [STRACE, "-p", str(pid), "-qq", "-o", log, "-e", "trace=" + syscall,
         "-e", "inject=%s:signal=KILL:when=%d" % (syscall, nth)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

    def traced():
        try:
            with open("/proc/%d/status" % pid) as f:
                return any(ln.startswith("TracerPid:") and
                           ln.split()[1] != "0" for ln in f)
        except OSError:
            return False
    try:
        ok(cdtest.wait_for(traced, 10), "strace attached to the vault")
        yield
    finally:
        if p.poll() is None:
            p.terminate()
        p.wait(10)


def committed_fps(d):
    with open(os.path.join(d.state_dir, "ipc-log.key"), "rb") as f:
        hkey = f.read()
    with open(os.path.join(d.state_dir, "ipc.log"), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    fps = {x["fp"].get("api_key") for x in lines
           if x["type"] == "CRED_PUT_REQ" and x["outcome"] == "ok"}
    return lambda k: hmac.new(hkey, k.encode(), hashlib.sha256) \
        .hexdigest()[:32] in fps


def leftovers(d):
    return [n for n in os.listdir(d.workspace) if n.endswith(".tmp")] + \
        [n for n in os.listdir(d.state_dir) if n.endswith(".tmp")]


def committed_at(steps, step):
    return steps.index(step) > [s[1] for s in steps].index("renameat")


def after_kill(d, what, vault, result, old, new, removing, committed):
    """The checks every step shares; returns what the file holds."""
    got = result[0] if result else None
    if got == 200:
        ok(True, "%s: answered 200" % what)
    else:
        cdtest.is_error_json(result, got if got and got >= 500 else 503,
                             "%s: answered with a JSON 5xx sentence" % what)
    ok(cdtest.wait_for(lambda: not cdtest.alive(vault), 10),
       "%s: the vault was killed at that step" % what)
    newv = d.wait_role("vault", not_pid=vault, timeout=10)
    ok(newv, "%s: the broker started a new vault" % what)
    ok(d.wait_healthy(10), "%s: healthz is 200" % what)
    path = os.path.join(d.workspace, "mcp-tokens.json")
    try:
        with open(path, encoding="utf-8") as f:
            tokens = json.load(f)
    except ValueError as e:
        ok(False, "%s: mcp-tokens.json parses (%s)" % (what, e))
        return old
    is_(stat.S_IMODE(os.stat(path).st_mode), 0o600,
        "%s: mcp-tokens.json is 0600" % what)
    is_(tokens.get("other"), {"x": 1}, "%s: the unrelated entry survived"
        % what)
    held = tokens.get("manus")
    held = held["api_key"] if isinstance(held, dict) else None
    is_(held, new if committed else old, "%s: the file holds the %s value"
        % (what, "new" if committed else "old"))
    if got == 200:
        is_(held, new, "%s: a 200 means the new value is stored" % what)
    if held == new and not removing:
        ok(committed_fps(d)(new),
           "%s: the stored key has its committed IPC log line" % what)
    rc = subprocess.run([CTL, "audit", "verify",
                         os.path.join(d.state_dir, "ipc.log")],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=30)
    is_(rc.returncode, 0, "%s: connectorctl audit verify accepts the log"
        % what)
    # The new vault sweeps at start; give its start a moment to finish.
    ok(cdtest.wait_for(lambda: not leftovers(d), 5),
       "%s: no temporary file is left behind" % what)
    return held


def save_step(step):
    label, syscall, nth = step
    what = "save killed %s (%s #%d)" % (label, syscall, nth)

    def test(fx):
        fake, d = fx
        new = new_key()
        fake.add_manus_key(new)
        vault = d.pid_of("vault")
        result = None
        with injected(vault, syscall, nth):
            t0 = time.monotonic()
            try:
                result = d.api("POST", TOKEN, {"token": new}, timeout=60)
            except Exception as e:   # a reset or a timeout: a failure
                diag("%s: %r" % (what, e))
            diag("%s: answered %s in %.2f s" % (
                what, result[0] if result else "nothing",
                time.monotonic() - t0))
        held = after_kill(d, what, vault, result, d.current, new, False,
                          committed_at(SAVE_STEPS, step))
        d.current = held
    test.__name__ = "save_" + label.replace(" ", "_").replace(",", "")
    return test


def disconnect_step(step):
    label, syscall, nth = step
    what = "disconnect killed %s (%s #%d)" % (label, syscall, nth)

    def test(fx):
        fake, d = fx
        if d.current is None:       # reconnect first, outside the fault
            key = new_key()
            fake.add_manus_key(key)
            cdtest.answered_ok(d.api("POST", TOKEN, {"token": key}),
                               "%s: a key is stored first" % what)
            d.current = key
        vault = d.pid_of("vault")
        result = None
        with injected(vault, syscall, nth):
            try:
                result = d.api("POST", DISCONNECT, {}, timeout=60)
            except Exception as e:
                diag("%s: %r" % (what, e))
        d.current = after_kill(d, what, vault, result, d.current, None, True,
                               committed_at(DISCONNECT_STEPS, step))
    test.__name__ = "disconnect_" + label.replace(" ", "_").replace(",", "")
    return test


def still_works(fx):
    fake, d = fx
    key = new_key()
    fake.add_manus_key(key)
    cdtest.answered_ok(d.api("POST", TOKEN, {"token": key}),
                       "after every kill a save works")
    tokens = d.read_tokens()
    is_(tokens.get("manus"), entry(key), "and lands in mcp-tokens.json")


def main():
    tests = [save_step(s) for s in SAVE_STEPS] + \
        [disconnect_step(s) for s in DISCONNECT_STEPS] + [still_works]
    cdtest.run(tests, fixture=scenario)


if __name__ == "__main__":
    if os.geteuid() != 0:
        cdtest.skip_all("needs root to trace the vault")
    if not os.access(STRACE, os.X_OK):
        cdtest.skip_all("strace is not installed (make test installs it)")
    main()
