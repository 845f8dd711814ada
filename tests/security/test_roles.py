#!/usr/bin/python3
"""Each role runs with the identity and sandbox design.md section 3 gives it,
and a hostile peer on a role's own channel ends that role, not the daemon.

Needs root (the daemon drops privileges only when started as root) and the
users _connectord (http and workers) and _cdtest (owner of the workspace,
hence the vault's user), which the test-suite setup creates.

- /proc/<pid>/status of http, vault and a live worker: Uid/Gid, Seccomp 2
  (filter), NoNewPrivs 1; non-dumpable (its /proc files owned by root);
  http chrooted.
- try-role (build/tests/try-role) applies a role's real sandbox:
  http cannot open mcp-tokens.json, the vault can.
- http's channel to the vault carries a CRED_PUT_REQ (workers only): the
  vault dies and is replaced, the broker lives on, the file is untouched.
- http's control channel to the broker (fd 3) carries a GRANT (broker only):
  http is replaced, the broker lives on.
"""

import contextlib
import os
import secrets
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

SERVICE_USER = "_connectord"
OWNER = "_cdtest"
# meson puts it beside tests/meson.build; the brief named tests/security/.
TRY_ROLE = next((p for p in (
    os.path.join(cdtest.BUILD, "tests", "try-role"),
    os.path.join(cdtest.BUILD, "tests", "security", "try-role"))
    if os.path.exists(p)), os.path.join(cdtest.BUILD, "tests", "try-role"))
MSG_GRANT = 0x0301
MSG_CRED_PUT_REQ = 0x0601
VIOLATION = "protocol violation"


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(
            fake, owner=OWNER,
            files={"mcp-tokens.json": '{"other": {"x": 1}}\n'}) as d:
        yield fake, d


@contextlib.contextmanager
def live_worker(fake, d):
    """A manus worker kept alive by a hanging fake; yields its pid (or
    None). The save it serves ends with an error answer, which is fine."""
    key = "manus_" + secrets.token_hex(16)
    fake.reset()
    fake.add_manus_key(key)
    fake.set_mode("manus", "hang")
    t = threading.Thread(target=lambda: _quietly(d.api, "POST",
                                                 "/api/connectors/manus/token",
                                                 {"token": key}, timeout=60),
                         daemon=True)
    t.start()
    try:
        yield d.wait_role("worker manus", timeout=10)
    finally:
        fake.reset()        # releases the hanging connection
        t.join(60)


def _quietly(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception:
        pass


def check_ids(role, status, uid, gid):
    for field, want in (("Uid", uid), ("Gid", gid)):
        got = status.get(field, "").split()
        is_(got, [str(want)] * 4, "%s: %s is %d (real, effective, saved, fs)"
            % (role, field, want))
    groups = status.get("Groups", "").split()
    ok("0" not in groups, "%s: no root supplementary group (%r)"
       % (role, groups))


def check_sandbox(role, pid, status):
    is_(status.get("Seccomp"), "2", "%s: seccomp filter mode" % role)
    is_(status.get("NoNewPrivs"), "1", "%s: no_new_privs" % role)
    # Every capability set empty, the bounding set included: dropping the
    # bounding set needs CAP_SETPCAP, so it must happen before the uid
    # change, and nothing the role executes can ever regain a capability.
    caps = {k: status.get(k) for k in ("CapInh", "CapPrm", "CapEff",
                                       "CapBnd", "CapAmb")}
    if not ok(all(v is not None and int(v, 16) == 0 for v in caps.values()),
              "%s: every capability set empty, bounding set included"
              % role):
        diag("%r" % caps)
    # A non-dumpable process's /proc files belong to root, whatever its uid.
    owner = os.stat("/proc/%d/environ" % pid).st_uid
    ok(owner == 0 and status.get("Uid", "0").split()[0] != "0",
       "%s: non-dumpable (/proc/%d/environ owned by uid %d)"
       % (role, pid, owner))


def identities_and_sandboxes(fx):
    fake, d = fx
    service, owner = cdtest.user_ids(SERVICE_USER), cdtest.user_ids(OWNER)
    with live_worker(fake, d) as worker:
        roles = {"http": d.pid_of("http"), "vault": d.pid_of("vault"),
                 "worker manus": worker}
        if not ok(all(roles.values()), "http, vault and a worker found"):
            diag("found %r; all roles: %r" % (roles, d.pids()))
        for role, pid in roles.items():
            if not pid:
                continue
            status = cdtest.proc_status(pid)
            ids = owner if role == "vault" else service
            check_ids(role, status, *ids)
            check_sandbox(role, pid, status)
    http = roles["http"]
    if http:
        root = os.readlink("/proc/%d/root" % http)
        ok(root != "/", "http is chrooted (root %r)" % root)


def try_role(role, d, path):
    """try-role's verdict ("allowed", "denied: EACCES", ...) or None."""
    r = subprocess.run([TRY_ROLE, role, d.conf_path, "open", path],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        diag("try-role %s exited %d: %s" % (role, r.returncode,
                                            (r.stdout + r.stderr).strip()))
        return None
    return r.stdout.strip()


def http_cannot_read_credentials(fx):
    _, d = fx
    if not ok(os.access(TRY_ROLE, os.X_OK), "try-role is built (%s)"
              % TRY_ROLE):
        return
    path = d.tokens_path
    verdict = try_role("http", d, path)
    ok(verdict is not None and verdict.startswith("denied"),
       "http's sandbox cannot open mcp-tokens.json (%r)" % verdict)
    verdict = try_role("vault", d, path)
    is_(verdict, "allowed", "the vault's sandbox can open mcp-tokens.json")


def violation_logged(d, since):
    """Wait for a log line about a protocol violation after offset since."""
    return cdtest.wait_for(
        lambda: VIOLATION in d.log_text()[since:].lower(), 5)


def hostile_http_to_vault(fx):
    """A worker-only message on http's vault channel ends the vault."""
    _, d = fx
    http, vault, broker = d.pid_of("http"), d.pid_of("vault"), d.proc.pid
    if not ok(http and vault, "http and vault found"):
        return
    before = d.tokens_bytes()
    log_at = len(d.log_text())
    fd = cdtest.channel_between(http, vault)
    diag("http %d fd %d talks to vault %d" % (http, fd, vault))
    payload = cdtest.put_str("manus") + cdtest.put_str(
        '{"api_key":"hostile","expires_at":0,"token_type":"api_key"}')
    cdtest.send_as(http, fd, cdtest.message(MSG_CRED_PUT_REQ, payload))

    ok(cdtest.wait_for(lambda: not cdtest.alive(vault), 10),
       "the vault ended on CRED_PUT_REQ from http")
    new_vault = d.wait_role("vault", not_pid=vault, timeout=10)
    ok(new_vault, "a new vault is running within 10 s (%r)" % new_vault)
    ok(d.proc.poll() is None and d.proc.pid == broker,
       "the broker lives on, same pid")
    ok(violation_logged(d, log_at), "the log names a protocol violation")
    ok(d.wait_healthy(10), "healthz is 200 again")
    is_(d.tokens_bytes(), before, "mcp-tokens.json unchanged")


def hostile_http_to_broker(fx):
    """A broker-only message on http's control channel ends http."""
    _, d = fx
    http, broker = d.pid_of("http"), d.proc.pid
    if not ok(http, "http found"):
        return
    log_at = len(d.log_text())
    channels = cdtest.channels_between(http, broker)
    ok(3 in channels, "http's fd 3 is a channel to the broker (%r)"
       % channels)
    payload = (cdtest.put_str("manus") + cdtest.put_str("manus")
               + cdtest.put_str("") + cdtest.put_u32(7) + cdtest.put_u32(1))
    cdtest.send_as(http, 3, cdtest.message(MSG_GRANT, payload, job=1))

    new_http = d.wait_role("http", not_pid=http, timeout=10)
    ok(new_http, "a new http is running within 10 s (%r)" % new_http)
    ok(not cdtest.alive(http), "the old http is gone")
    ok(d.proc.poll() is None and d.proc.pid == broker,
       "the broker lives on, same pid")
    ok(violation_logged(d, log_at), "the log names a protocol violation")
    ok(d.wait_healthy(10), "healthz is 200 again")


def main():
    if os.geteuid() != 0:
        cdtest.skip_all("not root")
    missing = [u for u in (SERVICE_USER, OWNER) if not cdtest.user_ids(u)]
    if missing:
        # Not a skip: CI creates these users, and a silent skip would hide
        # the security tests.
        ok(False, "test users exist (missing: %s)" % ", ".join(missing))
        cdtest.done()
    cdtest.run([identities_and_sandboxes, http_cannot_read_credentials,
                hostile_http_to_vault, hostile_http_to_broker],
               fixture=scenario)


if __name__ == "__main__":
    main()
