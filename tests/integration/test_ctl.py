#!/usr/bin/python3
"""connectorctl status against the running daemon's control socket.

The broker answers "status\\n" on <state_dir>/connectord.sock (mode 0660,
root and the vault user's group) with one JSON line: its roles with pids,
uptime and restarts, the flows in progress and the OAuth port lock. Only
uid 0 and the vault's uid are answered (SO_PEERCRED); anyone else is
logged and closed. A client that sends nothing, too much or many at once
never blocks the daemon.

One daemon (its workspace owned by _cdtest, so that the vault runs as a
user of its own) and one fake for the whole file. Needs root: it checks
the socket's owner and runs clients as other users (setpriv).
"""

import contextlib
import grp
import json
import os
import pwd
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

OWNER = "_cdtest"
CTL = os.path.join(cdtest.BUILD, "connectorctl")
RCLONE = "/usr/bin/rclone"
OAUTH_PORT = 53682
CONN_MAX = 8            # CD_CTL_CONN_MAX
TIMEOUT = 5             # CD_CTL_TIMEOUT_SEC
REQUEST_MAX = 64        # CD_CTL_REQUEST_MAX


class Scenario:
    def __init__(self, fake, d):
        self.fake = fake
        self.d = d
        self.sock = os.path.join(d.state_dir, "connectord.sock")

    def ctl(self, *args, user=None, group=None, sock=True):
        """Run connectorctl status [args]; as root, or as user (with
        group as its only group). Returns (exit status, stdout, stderr)."""
        argv = [CTL, "status"] + list(args)
        if sock:
            argv += ["-s", self.sock]
        if user is not None:
            argv = ["setpriv", "--reuid=" + user, "--regid=" +
                    (group or user), "--clear-groups"] + argv
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout, p.stderr

    def status(self):
        """The daemon's JSON answer through connectorctl --json."""
        rc, out, err = self.ctl("--json")
        if rc != 0:
            diag("connectorctl status --json: %d %r" % (rc, err))
            return {}
        return json.loads(out)


@contextlib.contextmanager
def scenario():
    if not os.access(CTL, os.X_OK):
        cdtest.skip_all("no connectorctl at %s" % CTL)
    with cdtest.Fake() as fake, cdtest.Daemon(fake, owner=OWNER) as d:
        yield Scenario(fake, d)


def role(st, name):
    for r in st.get("roles", []):
        if r.get("role") == name:
            return r
    return {}


def raw_client():
    """A connection of our own to the control socket, as root."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    return s


def ended(s, timeout):
    """Whether the daemon closed s within timeout (EOF or reset)."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def socket_file(s):
    """Mode 0660, owner root, group the vault user's primary group."""
    st = os.stat(s.sock)
    ok(stat.S_ISSOCK(st.st_mode), "the control socket is a socket in "
       "state_dir")
    is_(oct(stat.S_IMODE(st.st_mode)), oct(0o660), "its mode is 0660")
    is_(st.st_uid, 0, "its owner is root")
    is_(grp.getgrgid(st.st_gid).gr_gid, pwd.getpwnam(OWNER).pw_gid,
        "its group is the vault user's")
    sd = os.stat(s.d.state_dir)
    is_((oct(stat.S_IMODE(sd.st_mode)), sd.st_uid),
        (oct(0o700), pwd.getpwnam(OWNER).pw_uid),
        "state_dir around it is 0700, the vault user's")


def roles_as_root(s):
    """Every role with the pid /proc shows, an uptime, no restarts; the
    table shows the same; the socket is found from the configuration."""
    st = s.status()
    pids = s.d.pids()
    for name in ("broker", "http", "vault"):
        r = role(st, name)
        is_(r.get("pid"), (pids.get(name) or [None])[0],
            "%s: pid as in /proc" % name)
        is_(r.get("state"), "running", "%s: running" % name)
        ok(isinstance(r.get("uptime"), int) and 0 <= r["uptime"] < 120,
           "%s: uptime in seconds (%r)" % (name, r.get("uptime")))
        ok(isinstance(r.get("started"), int) and
           abs(r["started"] - time.time()) < 120,
           "%s: started is a time" % name)
        is_(r.get("restarts"), 0, "%s: no restart yet" % name)
    is_(st.get("flows"), [], "no flow in progress")
    is_(st.get("lock"), {"port": OAUTH_PORT, "state": "free"},
        "the lock is free")
    rc, out, err = s.ctl("-f", s.d.conf_path, sock=False)
    is_(rc, 0, "connectorctl status -f conf: exit 0 (socket from "
        "state_dir)")
    lines = out.splitlines()
    ok(lines and lines[0].split()[:5] ==
       ["ROLE", "PID", "STATE", "UPTIME", "RESTARTS"], "the table's head")
    for name in ("broker", "http", "vault"):
        row = [ln.split() for ln in lines if ln.startswith(name + " ")]
        ok(row and row[0][1] == str(pids[name][0]) and
           row[0][2] == "running" and row[0][4] == "0",
           "the table shows %s with its pid, running, 0 restarts" % name)
    ok("FLOWS 0" in out, "the table shows no flow")
    ok(re.search(r"^LOCK port %d: free$" % OAUTH_PORT, out, re.M),
       "the table shows the lock free")
    if rc != 0 or not lines:
        diag(out + err)


def vault_restart(s):
    """kill -9 of the vault: a new pid, restarts 1; the others keep 0."""
    old = s.d.pid_of("vault")
    os.kill(old, signal.SIGKILL)
    new = s.d.wait_role("vault", not_pid=old)
    ok(new and s.d.wait_healthy(10), "a new vault runs and healthz is 200")
    st = s.status()
    is_(role(st, "vault").get("pid"), new, "vault: the new pid")
    is_(role(st, "vault").get("restarts"), 1, "vault: restarts 1")
    ok(role(st, "vault").get("uptime", 99) < 10, "vault: uptime restarted")
    is_((role(st, "http").get("restarts"), role(st, "broker").get(
        "restarts")), (0, 0), "http and broker: still 0 restarts")


@contextlib.contextmanager
def hanging_save(s):
    """A manus token check held by a hanging fake; yields the worker pid."""
    key = "manus_" + secrets.token_hex(8)
    s.fake.reset()
    s.fake.add_manus_key(key)
    s.fake.set_mode("manus", "hang")
    t = threading.Thread(target=lambda: s.d.api(
        "POST", "/api/connectors/manus/token", {"token": key}, timeout=60),
        daemon=True)
    t.start()
    try:
        yield s.d.wait_role("worker manus", timeout=10)
    finally:
        s.fake.reset()
        t.join(60)


def flow_in_progress(s):
    """A token check in progress: its job, kind, connector, pid, age and
    the seconds left before its deadline (30 s for a check)."""
    with hanging_save(s) as worker:
        if not ok(worker, "a manus worker runs"):
            return
        time.sleep(1.1)
        st = s.status()
        flows = st.get("flows", [])
        is_(len(flows), 1, "one flow in progress")
        f = flows[0] if flows else {}
        is_((f.get("kind"), f.get("connector"), f.get("remote"),
             f.get("pid"), f.get("state")),
            ("token", "manus", None, worker, "running"),
            "the flow: token, manus, no remote, the worker's pid, running")
        ok(isinstance(f.get("job"), int) and f["job"] > 0, "it has a job id")
        ok(isinstance(f.get("age"), int) and 1 <= f["age"] < 30,
           "its age in seconds (%r)" % f.get("age"))
        ok(isinstance(f.get("deadline"), int) and 0 < f["deadline"] <= 29,
           "seconds left to its deadline (%r)" % f.get("deadline"))
        is_(st.get("lock", {}).get("state"), "free",
            "a token check does not take the lock")
        rc, out, _ = s.ctl()
        row = [ln.split() for ln in out.splitlines()
               if ln.split()[:1] == [str(f.get("job"))]]
        ok(rc == 0 and "FLOWS 1" in out and row and
           row[0][1:5] == ["token", "manus", "-", str(worker)],
           "the table lists the flow")
    ok(cdtest.wait_for(lambda: s.status().get("flows") == [], 10),
       "the flow is gone once its worker ended")


def rclone_lock(s):
    """A Drive flow holds the OAuth port lock from its start: status names
    its job, connector and remote; free again after cancel."""
    if not os.access(RCLONE, os.X_OK):
        cdtest.skip("the lock holder of an rclone flow", "no rclone")
        return
    if not cdtest.wait_port_free(OAUTH_PORT, 20):
        ok(False, "port %d is free within 20 s" % OAUTH_PORT)
        return
    status, _, body, raw = s.d.api("POST", "/api/connectors/gdrive/remotes",
                                   {"name": "ctl-test"})
    if not ok(status == 202, "a gdrive flow starts (202)"):
        diag(raw[:300])
        return
    sid = body["session_id"]
    try:
        st = s.status()
        lock = st.get("lock", {})
        flows = [f for f in st.get("flows", []) if f.get("kind") == "rclone"]
        is_((lock.get("state"), lock.get("connector"), lock.get("remote")),
            ("held", "gdrive", "ctl-test"),
            "the lock is held by the gdrive flow for remote ctl-test")
        ok(flows and lock.get("job") == flows[0].get("job"),
           "the holder is the rclone job listed among the flows")
        ok(isinstance(lock.get("since"), int) and
           isinstance(lock.get("held_for"), int), "since when, how long")
        rc, out, _ = s.ctl()
        ok(rc == 0 and re.search(r"^LOCK port %d: held by job %s \(gdrive, "
                                 r"remote ctl-test\) for \d+s$"
                                 % (OAUTH_PORT, lock.get("job")), out, re.M),
           "the table names the holder")
    finally:
        s.d.api("POST", "/api/connectors/gdrive/sessions/%s/cancel" % sid)
    ok(cdtest.wait_for(lambda: s.status().get("lock", {}).get("state") ==
                       "free", 10), "the lock is free after cancel")


def vault_user_answered(s):
    """The vault's user may ask (it can reach its own state_dir)."""
    rc, out, err = s.ctl("--json", user=OWNER)
    is_(rc, 0, "as %s: exit 0" % OWNER)
    ok(rc == 0 and role(json.loads(out), "broker").get("pid") ==
       s.d.proc.pid, "as %s: the status is answered" % OWNER)
    if rc != 0:
        diag(err)


def others_refused(s):
    """nobody cannot reach the socket (state_dir is the vault's, 0700);
    through a hard link in an open directory it reaches the socket only
    with the vault's group (mode 0660), and then the broker refuses its
    uid (SO_PEERCRED) and logs it."""
    rc, _, err = s.ctl(user="nobody", group="nogroup")
    ok(rc == 1 and "permission denied" in err,
       "nobody: exit 1, permission denied (%d %r)" % (rc, err.strip()))
    top = tempfile.mkdtemp(prefix="cdctl-")
    try:
        os.chmod(top, 0o755)
        link = os.path.join(top, "ctl.sock")
        os.link(s.sock, link)
        rc, _, err = s.ctl("-s", link, user="nobody", group="nogroup",
                           sock=False)
        ok(rc == 1 and "permission denied" in err,
           "nobody through a link: the mode 0660 refuses it")
        mark = len(s.d.log_text())
        group = grp.getgrgid(pwd.getpwnam(OWNER).pw_gid).gr_name
        rc, out, err = s.ctl("-s", link, user="nobody", group=group,
                             sock=False)
        ok(rc == 1 and out == "" and "without an answer" in err,
           "nobody in the vault's group: connected, refused, no answer "
           "(%d %r)" % (rc, err.strip()))
        ok(cdtest.wait_for(lambda: re.search(
            r"control: refused uid %d \(pid \d+\)" % pwd.getpwnam(
                "nobody").pw_uid, s.d.log_text()[mark:]), 5),
           "the refusal is logged with the uid")
    finally:
        subprocess.run(["rm", "-rf", top], check=False)


def idle_and_full(s):
    """A client that sends nothing holds a slot, not the daemon: healthz
    and status still answer; CONN_MAX of them fill the slots, so one more
    is closed at once; each is closed at its timeout."""
    t0 = time.monotonic()
    idle = []
    try:
        for _ in range(CONN_MAX):
            c = raw_client()
            c.connect(s.sock)
            idle.append(c)
        ok(s.d.healthy(), "healthz answers while %d clients idle" % CONN_MAX)
        extra = raw_client()
        extra.connect(s.sock)
        ok(ended(extra, 3), "one more client is closed at once")
        extra.close()
        rc, _, err = s.ctl()
        ok(rc == 1, "connectorctl while every slot is taken: exit 1 (%r)"
           % err.strip())
        ok(ended(idle[0], TIMEOUT + 3), "an idle client is closed at its "
           "timeout")
        took = time.monotonic() - t0
        ok(TIMEOUT - 1 <= took <= TIMEOUT + 3,
           "after about %d s (%.1f s)" % (TIMEOUT, took))
        ok(all(ended(c, 2) for c in idle[1:]), "so is every other")
    finally:
        for c in idle:
            c.close()
    ok(s.status().get("roles"), "status answers again")


def bad_requests(s):
    """A request longer than the limit is refused and closed; an unknown
    command gets a JSON error; half a request then EOF is a request."""
    mark = len(s.d.log_text())
    c = raw_client()
    c.connect(s.sock)
    got = b""
    try:
        c.sendall(b"x" * (REQUEST_MAX * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            got += data
    except (ConnectionResetError, BrokenPipeError):
        pass
    c.close()
    ok(got == b"" or "error" in json.loads(got),
       "a 64 KiB request: closed, at most a JSON error (%r)" % got[:100])
    ok("control: a request longer than %d bytes; refused" % REQUEST_MAX in
       s.d.log_text()[mark:], "the refusal is logged")
    ok(s.d.healthy() and s.status().get("roles"), "the daemon serves on")
    c = raw_client()
    c.connect(s.sock)
    c.sendall(b"delete everything\n")
    answer = json.loads(c.makefile("rb").readline())
    c.close()
    ok(isinstance(answer.get("error"), str) and "status" in answer["error"],
       "an unknown command: {\"error\": ...} naming status")
    c = raw_client()
    c.connect(s.sock)
    c.sendall(b"status")
    c.shutdown(socket.SHUT_WR)
    answer = json.loads(c.makefile("rb").readline())
    c.close()
    ok(role(answer, "broker").get("pid") == s.d.proc.pid,
       "'status' ended by EOF instead of a newline is answered")


def not_running(s):
    """No daemon: exit 1 with a sentence; bad usage: exit 2."""
    rc, _, err = s.ctl("-s", "/nonexistent/connectord.sock", sock=False)
    ok(rc == 1 and "not running" in err, "no socket: exit 1, not running")
    rc, _, _ = s.ctl("--bogus", sock=False)
    is_(rc, 2, "an unknown option: exit 2")
    rc, _, err = s.ctl("-f", "/nonexistent.conf", sock=False)
    is_(rc, 2, "an unreadable configuration: exit 2")


def second_daemon_refused(s):
    """A second daemon on the same state_dir stops at its start, and the
    running one keeps its socket."""
    p = subprocess.run([cdtest.daemon_binary(), "-d", "-f", s.d.conf_path,
                        "-o", "listen=127.0.0.1:%d" % cdtest.free_port()],
                       capture_output=True, text=True, timeout=20)
    ok(p.returncode != 0 and "another connectord runs" in p.stderr,
       "a second daemon on this state_dir refuses to start")
    ok(os.path.exists(s.sock) and s.status().get("roles"),
       "the first daemon still answers on its socket")
    path = os.path.join(s.d.dir, "not-a-socket")
    with open(path, "w") as f:
        f.write("keep me\n")
    p = subprocess.run([cdtest.daemon_binary(), "-d", "-f", s.d.conf_path,
                        "-o", "listen=127.0.0.1:%d" % cdtest.free_port(),
                        "-o", "control_socket=" + path],
                       capture_output=True, text=True, timeout=20)
    ok(p.returncode != 0 and "is not a socket" in p.stderr,
       "control_socket naming a regular file: the daemon refuses to start")
    with open(path) as f:
        is_(f.read(), "keep me\n", "and leaves the file alone")


def socket_removed_at_exit(s):
    """A clean stop removes the socket."""
    s.d.proc.terminate()
    s.d.proc.wait(15)
    ok(not os.path.exists(s.sock), "the socket is gone after SIGTERM")


def main():
    cdtest.run([socket_file, roles_as_root, vault_restart, flow_in_progress,
                rclone_lock, vault_user_answered, others_refused,
                bad_requests, idle_and_full, not_running,
                second_daemon_refused, socket_removed_at_exit],
               fixture=scenario)


if __name__ == "__main__":
    if os.geteuid() != 0:
        cdtest.skip_all("needs root (socket owner, setpriv)")
    main()
