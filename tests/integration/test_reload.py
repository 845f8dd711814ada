#!/usr/bin/python3
"""SIGHUP: the configuration is read again and the logs are reopened, with
no restart and no lost request.

- under load (concurrent token saves, SIGHUP sent five times while they
  run, the file edited between signals): every save answers 200, http and
  the vault keep their pids, the IPC log still verifies;
- the access log renamed away mid-load, then SIGHUP: the new file gets the
  lines from then on and the two files together hold one line per
  request, none lost, none doubled; lines have the documented form and no
  query string;
- a reloadable key takes effect: public_url (read by http) in the RFC 9728
  document, manus_api_url (read by a new worker) in the path the fake
  Manus sees;
- a key that cannot change at run time (listen, oauth_port) is named in
  the log as kept until the next start, and the listener stays;
- a file that does not load is reported with its line, and the running
  configuration stays entirely;
- the IPC log renamed to ipc.log.1, SIGHUP, more saves: a new ipc.log that
  starts with LOG_REOPENED; `connectorctl audit verify ipc.log.1 ipc.log`
  and `... ipc.log.1` alone exit 0, ipc.log alone exits 0 with a note;
  an edit in ipc.log.1 is detected across the series, even in its last
  line, which no check of that file alone can see;
- a new http, after a crash, writes the same access log file.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

TOKEN = "/api/connectors/manus/token"
STATUS = "/api/connectors/manus/status"
PRM = "/.well-known/oauth-protected-resource"
HOST = "api.manus.ai"
CTL = os.path.join(cdtest.BUILD, "connectorctl")
SAVES = 24
HUPS = 5
ACCESS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                         r"(GET|POST|DELETE|PUT|PATCH|HEAD|OPTIONS) "
                         r"/\S* \d{3} \d+$")


class Fx:
    """The fake, the daemon, and the config file the tests rewrite."""

    def __init__(self, fake, d):
        self.fake = fake
        self.d = d
        self.access = os.path.join(d.dir, "access.log")
        self.extra = {"access_log": self.access}
        self.pids = None

    def write_conf(self, **changes):
        """Rewrite connectord.conf: the harness's keys, the access log,
        and changes (a None value removes a key)."""
        self.extra.update(changes)
        conf = self.d.config(self.fake, self.extra)
        with open(self.d.conf_path + ".new", "w", encoding="utf-8") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        os.rename(self.d.conf_path + ".new", self.d.conf_path)

    def hup(self, wait_for=None, timeout=5):
        """SIGHUP the broker; wait until the log shows the reload done
        (or wait_for, a regex, in what the log gained). Returns the new
        log text."""
        mark = len(self.d.log_text())
        os.kill(self.d.proc.pid, signal.SIGHUP)
        pattern = wait_for or r"reload: (configuration read again|.*stays)"

        def seen():
            text = self.d.log_text()[mark:]
            return text if re.search(pattern, text) else None
        return cdtest.wait_for(seen, timeout) or self.d.log_text()[mark:]

    def roles(self):
        return (self.d.pid_of("http"), self.d.pid_of("vault"))


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake:
        d = cdtest.Daemon(fake, start=False)
        fx = Fx(fake, d)
        fx.write_conf()
        with d:
            d.start()
            fx.pids = fx.roles()
            diag("http, vault: %r" % (fx.pids,))
            yield fx


def new_key():
    return "manus_" + secrets.token_hex(16)


def save_all(d, keys, during=None):
    """Save every key concurrently; once the first save is answered, call
    during(outcomes) while the others are in flight. Returns the outcomes:
    (status, body) or ("exception", ...)."""
    outcomes = [None] * len(keys)
    gate = threading.Barrier(len(keys))
    first = threading.Event()

    def save(i):
        gate.wait()
        try:
            status, _, body, _ = d.api("POST", TOKEN, {"token": keys[i]},
                                       timeout=60)
            outcomes[i] = (status, body)
        except Exception as e:     # a reset or a timeout: judged below
            outcomes[i] = ("exception", repr(e))
        first.set()

    threads = [threading.Thread(target=save, args=(i,), daemon=True)
               for i in range(len(keys))]
    for t in threads:
        t.start()
    if during is not None:
        first.wait(30)
        during(outcomes)
    for t in threads:
        t.join(90)
    return outcomes


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def verify(*paths):
    p = subprocess.run([CTL, "audit", "verify"] + list(paths),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def reload_under_load(fx):
    fake, d = fx.fake, fx.d
    keys = [new_key() for _ in range(SAVES)]
    for k in keys:
        fake.add_manus_key(k)

    sent = {"hups": 0, "pending": 0}

    def hups(outcomes):
        """At least HUPS signals, and more while saves are unanswered;
        the file changes every time, so each one sends a CONFIG."""
        sent["pending"] = sum(1 for o in outcomes if o is None)
        while sent["hups"] < HUPS or (None in outcomes and
                                      sent["hups"] < 200):
            fx.write_conf(session_ttl=600 + sent["hups"] % 7)
            os.kill(d.proc.pid, signal.SIGHUP)
            sent["hups"] += 1
            time.sleep(0.03)

    mark = len(d.log_text())
    outcomes = save_all(d, keys, hups)
    diag("%d SIGHUPs; %d of %d saves were unanswered at the first"
         % (sent["hups"], sent["pending"], SAVES))
    ok(sent["pending"] > 0, "saves were in flight when the SIGHUPs began")
    bad = [(i, o) for i, o in enumerate(outcomes) if not o or o[0] != 200]
    ok(not bad, "every one of %d saves made across the SIGHUPs answers "
       "200 (none reset, none failed)" % SAVES)
    for i, o in bad[:5]:
        diag("save %d: %r" % (i, o))
    log = d.log_text()[mark:]
    # Signals sent close together may be delivered as one.
    ok(cdtest.wait_for(lambda: d.log_text()[mark:].count(
        "reload: configuration read again") >= 1, 5),
       "the broker logged its reloads (%d)" % d.log_text()[mark:].count(
           "reload: configuration read again"))
    is_(fx.roles(), fx.pids, "http and the vault kept their pids")
    ok("restarting" not in log and "protocol violation" not in log,
       "nothing was restarted and no channel broke")
    stored = (d.read_tokens() or {}).get("manus", {}).get("api_key")
    ok(stored in keys, "a key sent is the one stored")
    rc, out = verify(os.path.join(d.state_dir, "ipc.log"))
    is_(rc, 0, "the IPC log verifies (%s)" % out.splitlines()[0])


def access_log_rotated_under_load(fx):
    d = fx.d
    rotated = fx.access + ".1"
    before = len(read_lines(fx.access))
    mark = len(d.log_text())
    count = {"n": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            d.api("GET", STATUS + "?code=sekrit-query-value")
            with lock:
                count["n"] += 1

    threads = [threading.Thread(target=client, daemon=True)
               for _ in range(4)]
    for t in threads:
        t.start()
    cdtest.wait_for(lambda: count["n"] >= 40, 10)
    os.rename(fx.access, rotated)
    fx.hup()
    ok(cdtest.wait_for(lambda: len(read_lines(fx.access)) >= 20, 10),
       "after the SIGHUP the new access.log gets lines")
    stop.set()
    for t in threads:
        t.join(30)
    old, new = read_lines(rotated), read_lines(fx.access)
    made = count["n"]
    diag("%d requests: %d lines in access.log.1 (after %d before), %d in "
         "access.log" % (made, len(old) - before, before, len(new)))
    is_(len(old) - before + len(new), made,
        "one line per request across the two files: none lost, none "
        "doubled")
    odd = [x for x in old + new if not ACCESS_LINE.match(x)]
    ok(not odd, "every line is 'time method path status ms'")
    for x in odd[:3]:
        diag("odd line: %r" % x)
    ok(all(x.split()[2] == STATUS for x in old[before:] + new),
       "with the path and without its query string")
    text = "\n".join(old + new)
    ok("sekrit" not in text, "no query value in the access log")
    ok(STATUS + " 200" not in d.log_text()[mark:],
       "with access_log set, access lines stay out of the daemon log")
    is_(os.stat(fx.access).st_mode & 0o777, 0o640,
        "the new access log is mode 0640")


def reloadable_keys_take_effect(fx):
    fake, d = fx.fake, fx.d
    fx.write_conf(public_url="http://reloaded.example:8700",
                  manus_api_url="https://api.manus.ai/reloaded")
    log = fx.hup()
    ok("public_url changed; the new value is in effect" in log and
       "manus_api_url changed" in log, "the log names the keys taken")

    def resource():
        return (d.api("GET", PRM, token=False)[2] or {}).get("resource")
    is_(cdtest.wait_for(lambda: resource() == "http://reloaded.example:8700",
                        5) and resource(), "http://reloaded.example:8700",
        "http answers with the new public_url")

    key = new_key()
    fake.reset()
    fake.add_manus_key(key)
    status = d.api("POST", TOKEN, {"token": key})[0]
    paths = [r["path"].split("?")[0] for r in fake.requests(HOST)]
    diag("save with the new manus_api_url: %d, fake saw %r" % (status,
                                                              paths))
    ok("/reloaded/v2/task.list" in paths,
       "a worker started after the reload uses the new manus_api_url")

    fx.write_conf(manus_api_url=None)
    fx.hup()
    fake.add_manus_key(key)
    cdtest.answered_ok(d.api("POST", TOKEN, {"token": key}),
                       "with the key back at its default, a save works")
    is_(fx.roles(), fx.pids, "still the same http and vault")


def fixed_keys_are_kept(fx):
    d = fx.d
    other = cdtest.free_port()
    fx.write_conf(listen="127.0.0.1:%d" % other, oauth_port=53999)
    log = fx.hup()
    want = ("key listen changed in the file; it takes effect at the next "
            "start; keeping 127.0.0.1:%d" % d.port)
    ok(want in log, "the log names listen, says when it takes effect and "
       "what is kept")
    ok("key oauth_port changed in the file; it takes effect at the next "
       "start; keeping 53682" in log, "and the same for oauth_port")
    ok(d.healthy(), "the API still answers on the old address")
    ok(not cdtest.tcp_listening(other), "nothing listens on the new one")
    fx.write_conf(listen="127.0.0.1:%d" % d.port, oauth_port=None)
    log = fx.hup()
    ok("keeping" not in log, "once the file agrees again, nothing is "
       "reported as kept")


def broken_file_keeps_everything(fx):
    d = fx.d
    fx.write_conf(public_url="http://broken.example:1")
    with open(d.conf_path, "a", encoding="utf-8") as f:
        f.write("session_ttl = 5\n")
    nlines = len(read_lines(d.conf_path))
    log = fx.hup()
    ok(re.search(r"connectord\.conf:%d: session_ttl must be" % nlines, log),
       "the broken line is reported with its number")
    ok("the running configuration stays in force" in log,
       "and the running configuration stays")
    resource = (d.api("GET", PRM, token=False)[2] or {}).get("resource")
    is_(resource, "http://reloaded.example:8700",
        "no key of the broken file took effect")
    fx.write_conf(public_url="http://127.0.0.1:8700")
    log = fx.hup()
    ok("public_url changed" in log, "a good file afterwards is taken")


def ipc_log_rotated(fx):
    fake, d = fx.fake, fx.d
    log_path = os.path.join(d.state_dir, "ipc.log")
    rotated = log_path + ".1"
    for _ in range(2):
        key = new_key()
        fake.add_manus_key(key)
        cdtest.answered_ok(d.api("POST", TOKEN, {"token": key}),
                           "a save before the rotation")
    os.rename(log_path, rotated)
    log = fx.hup(wait_for=r"reopened ipc\.log")
    ok("reopened ipc.log: the hash chain continues" in log,
       "the vault reopened the IPC log")
    ok(os.path.exists(log_path), "a new ipc.log exists")
    keys = [new_key() for _ in range(4)]
    for k in keys:
        fake.add_manus_key(k)
    outcomes = save_all(d, keys)
    ok(all(o and o[0] == 200 for o in outcomes), "saves after the rotation")
    old = [json.loads(x) for x in read_lines(rotated)]
    new = [json.loads(x) for x in read_lines(log_path)]
    ok(new and new[0]["type"] == "LOG_REOPENED" and
       new[0]["seq"] == old[-1]["seq"] + 1,
       "the new file starts with LOG_REOPENED at the next seq")
    ok(sum(1 for x in new if x["type"] == "CRED_PUT_REQ") == len(keys),
       "the new file has the saves made after the rotation")

    rc, out = verify(rotated, log_path)
    is_(rc, 0, "audit verify ipc.log.1 ipc.log exits 0")
    ok("one chain" in out, "and reports one chain (%s)"
       % out.splitlines()[-1])
    rc, out = verify(rotated)
    is_(rc, 0, "audit verify ipc.log.1 alone exits 0")
    rc, out = verify(log_path)
    is_(rc, 0, "audit verify ipc.log alone exits 0")
    ok("note:" in out and "continues a file rotated before it" in out,
       "and says the file continues a rotated one")
    diag(out)

    work = os.path.join(d.dir, "edited")
    os.mkdir(work)
    lines = read_lines(rotated)
    for what, idx in (("a middle line", 1), ("its last line", -1)):
        edited = list(lines)
        edited[idx] = edited[idx].replace('"outcome":"ok"',
                                          '"outcome":"OK"', 1)
        path = os.path.join(work, "ipc.log.1")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(edited) + "\n")
        shutil.copy(log_path, os.path.join(work, "ipc.log"))
        rc, out = verify(path, os.path.join(work, "ipc.log"))
        is_(rc, 1, "an edit of %s of ipc.log.1 breaks the series" % what)
        diag(out.splitlines()[-1])
    ok("ipc.log: line 1: prev does not match" in out,
       "the edit of the last line shows at the start of the next file")
    is_(fx.roles(), fx.pids, "http and the vault were never restarted")


def access_log_after_http_restart(fx):
    """A new http (after a crash) gets the access log from the broker at
    its start, not only on SIGHUP."""
    d = fx.d
    http = d.pid_of("http")
    os.kill(http, signal.SIGKILL)
    ok(d.wait_role("http", not_pid=http, timeout=10) and
       d.wait_healthy(10), "a new http runs")
    before = len(read_lines(fx.access))
    for _ in range(5):
        d.api("GET", STATUS)
    got = read_lines(fx.access)[before:]
    is_(sum(1 for x in got if x.split()[2] == STATUS), 5,
        "its requests are in the access log file")


if __name__ == "__main__":
    cdtest.run([reload_under_load, access_log_rotated_under_load,
                reloadable_keys_take_effect, fixed_keys_are_kept,
                broken_file_keeps_everything, ipc_log_rotated,
                access_log_after_http_restart],
               fixture=scenario)
