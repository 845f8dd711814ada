#!/usr/bin/python3
"""What an operator installs is what runs (issue 8).

`make install DESTDIR=<root>` (the wrapper over `meson install`) puts the
programs, the example configuration, the manual pages and the systemd unit
under the build's prefix in <root>, with sane modes. Then, from that tree:

- the example configuration names every key of lib/config.c, commented
  out at its built-in default, and the installed connectord accepts it
  with -n (the installed broker finds its roles relative to itself, so a
  DESTDIR tree runs in place);
- each manual page passes `mandoc -Tlint` and renders with `man -l`
  without a warning, with this build's paths filled in;
- the unit passes `systemd-analyze verify`;
- the installed daemon started with the unit's own ExecStart (only the
  DESTDIR prefix and `-f <test config>` added), under what can be
  reproduced here of the unit's sandbox: its capability bounding set,
  NoNewPrivileges, ProtectSystem=strict with its writable paths,
  PrivateTmp, PrivateDevices (with /dev/log a socket of this test) and
  MemoryDenyWriteExecute, detaches, comes up healthy with every role,
  saves a Manus token and runs a GitHub device flow through gh against the
  fake providers, logs to syslog under one ident per role, and stops
  cleanly on SIGTERM.

The test's tree lives under /run rather than /tmp: the private /tmp of the
unit's sandbox hides /tmp.
"""

import contextlib
import ctypes
import glob
import json
import os
import re
import shutil
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

REPO = cdtest.REPO
BUILD = cdtest.BUILD
OWNER = "_cdtest"
SERVICE_USER = "_connectord"
PAGES = {"man8": ["connectord.8", "connectorctl.8"],
         "man5": ["connectord.conf.5"]}
# Manual pages that are not ours: a reference to one the host lacks is a
# fact about the host, not about the page.
OTHER_PAGES = ("gh 1", "rclone 1", "ps 1", "systemd 1", "syslog 3",
               "logrotate 8")
PR_SET_CHILD_SUBREAPER = 36
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
LIBC = ctypes.CDLL(None, use_errno=True)


def build_dirs():
    """The build's install directories, absolute, from meson."""
    out = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"],
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout
    opts = {o["name"]: o["value"] for o in json.loads(out)}
    prefix = opts["prefix"]
    return {k: os.path.join(prefix, opts[k]) for k in
            ("sbindir", "libexecdir", "sysconfdir", "datadir", "mandir")} | \
        {"prefix": prefix, "unitdir": opts.get("systemdsystemunitdir", "")}


class Tree:
    """The DESTDIR install and the test's files, under one directory."""

    def __init__(self):
        os.makedirs("/run", exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="cdtest-install-", dir="/run")
        os.chmod(self.root, 0o755)
        self.dest = os.path.join(self.root, "dest")
        self.dirs = build_dirs()

    def at(self, path):
        """An installed absolute path inside the DESTDIR tree."""
        return self.dest + path

    def stop(self):
        if not cdtest.KEEP:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def fixture():
    tree = Tree()
    try:
        yield tree
    finally:
        tree.stop()


# ---------------------------------------------------------------------------
# The install


def install(t):
    """make install DESTDIR=... through the wrapper."""
    t0 = time.monotonic()
    r = subprocess.run(["make", "-s", "-C", REPO, "install",
                        "BUILD=" + BUILD, "DESTDIR=" + t.dest],
                       capture_output=True, text=True, timeout=300)
    if not ok(r.returncode == 0, "make install DESTDIR=... exits 0 (%.1f s)"
              % (time.monotonic() - t0)):
        diag((r.stdout + r.stderr)[-3000:])
        return
    d = t.dirs
    expect = {
        d["sbindir"] + "/connectord": 0o755,
        d["sbindir"] + "/connectorctl": 0o755,
        d["libexecdir"] + "/connectord/connectord-http": 0o755,
        d["libexecdir"] + "/connectord/connectord-vault": 0o755,
        d["libexecdir"] + "/connectord/connectord-worker": 0o755,
        d["datadir"] + "/doc/connectord/connectord.conf.example": 0o644,
        d["datadir"] + "/doc/connectord/SECURITY.md": 0o644,
    }
    for sub, pages in PAGES.items():
        for p in pages:
            expect[d["mandir"] + "/" + sub + "/" + p] = 0o644
    for path, mode in expect.items():
        try:
            st = os.stat(t.at(path))
        except OSError as e:
            ok(False, "%s is installed (%s)" % (path, e))
            continue
        is_(oct(stat.S_IMODE(st.st_mode)), oct(mode),
            "%s is installed, mode %o" % (path, mode))
    units = glob.glob(t.dest + "/**/connectord.service", recursive=True)
    if not ok(len(units) == 1, "one connectord.service is installed (%r)"
              % units):
        return
    t.unit = units[0]
    unitdir = os.path.dirname(t.unit)[len(t.dest):]
    ok(unitdir.startswith(d["prefix"] + "/") or d["prefix"] == "/usr",
       "the unit is under the prefix (%s)" % unitdir)
    is_(oct(stat.S_IMODE(os.stat(t.unit).st_mode)), oct(0o644),
        "the unit has mode 644")
    loose = []
    for top, dirs, files in os.walk(t.dest):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            if st.st_mode & 0o022 or st.st_uid != 0:
                loose.append(os.path.join(top, name))
    ok(not loose, "nothing installed is group- or world-writable or owned "
       "by anyone but root")
    if loose:
        diag("%r" % loose[:10])


# ---------------------------------------------------------------------------
# The example configuration


def config_keys():
    """[(key, default or None)] from the key table of lib/config.c."""
    with open(os.path.join(REPO, "lib", "config.c"), encoding="utf-8") as f:
        src = f.read()
    table = src[src.index("config_keys[] = {"):]
    table = table[:table.index("\n};")]
    keys = []
    for entry in re.findall(r"\{ \.name = .*?\}", table, re.S):
        name = re.search(r'\.name = "([^"]+)"', entry).group(1)
        m = re.search(r'\.def = "([^"]*)"', entry)
        keys.append((name, m.group(1) if m else None))
    return keys


def example_config(t):
    path = t.at(t.dirs["datadir"] + "/doc/connectord/connectord.conf.example")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    live = [ln for ln in lines if ln.strip() and
            not ln.lstrip().startswith("#")]
    is_(live, [], "every line of the example is a comment (the defaults "
        "apply)")
    commented = {}
    for ln in lines:
        m = re.match(r"#([a-z_]+) = (.*)$", ln)
        if m:
            commented.setdefault(m.group(1), m.group(2))
    keys = config_keys()
    ok(len(keys) >= 24, "lib/config.c has its %d keys" % len(keys))
    missing = [k for k, _ in keys if k not in commented]
    is_(missing, [], "the example names every key of lib/config.c")
    wrong = [(k, commented.get(k), d) for k, d in keys
             if d is not None and k in commented and commented[k] != d]
    is_(wrong, [], "each key with a built-in default shows that default")
    with open(os.path.join(REPO, "docs", "man", "connectord.conf.5"),
              encoding="utf-8") as f:
        page = f.read()
    undocumented = [k for k, _ in keys if ".It Ic %s " % k not in page]
    is_(undocumented, [], "connectord.conf(5) documents every key")

    # The installed daemon checks the example where its relative default
    # workspace exists, and an uncommented copy of it (every key set to
    # the value shown) just as well.
    top = tempfile.mkdtemp(dir=t.root)
    os.makedirs(os.path.join(top, "var", "workspace"))
    binary = t.at(t.dirs["sbindir"] + "/connectord")
    r = subprocess.run([binary, "-n", "-f", path], cwd=top,
                       capture_output=True, text=True, timeout=30)
    is_((r.returncode, r.stderr.strip()), (0, "configuration OK"),
        "the installed connectord -n accepts the example")
    home = os.path.join(top, "home")
    os.mkdir(home)
    values = dict(commented, home=home, ca_file="", vault_user=OWNER,
                  user=SERVICE_USER)
    copy = os.path.join(top, "all.conf")
    with open(copy, "w", encoding="utf-8") as f:
        for k, v in values.items():
            f.write("%s = %s\n" % (k, v))
    r = subprocess.run([binary, "-n", "-f", copy], cwd=top,
                       capture_output=True, text=True, timeout=30)
    is_((r.returncode, r.stderr.strip()), (0, "configuration OK"),
        "and every key uncommented at the value shown")


def default_config_path(t):
    """The broker reads <sysconfdir>/connectord/connectord.conf without -f:
    the path compiled in is the one the pages and the unit name."""
    want = os.path.join(t.dirs["sysconfdir"], "connectord", "connectord.conf")
    with open(t.at(t.dirs["sbindir"] + "/connectord"), "rb") as f:
        binary = f.read()
    ok(want.encode() + b"\0" in binary,
       "the installed broker's default file is %s" % want)
    for sub, pages in PAGES.items():
        for p in pages:
            with open(t.at(t.dirs["mandir"] + "/" + sub + "/" + p),
                      encoding="utf-8") as f:
                text = f.read()
            is_(re.findall(r"@[A-Z_]+@", text), [],
                "%s: every @...@ placeholder is filled in" % p)
            if p != "connectorctl.8":
                ok(want in text, "%s names %s" % (p, want))


# ---------------------------------------------------------------------------
# Manual pages


def manual_pages(t):
    """mandoc -Tlint says nothing but where it looked a reference up: it
    checks .Xr against the host's /usr/share/man (MANPATH does not change
    that), so those notes are about the host; references to our own pages
    are checked against the installed tree instead."""
    if not ok(shutil.which("mandoc"), "mandoc is installed (scripts/deps.sh "
              "test)"):
        return
    mandir = t.at(t.dirs["mandir"])
    for sub, pages in PAGES.items():
        for p in pages:
            path = os.path.join(mandir, sub, p)
            r = subprocess.run(["mandoc", "-Tlint", path],
                               capture_output=True, text=True, timeout=30)
            lines = [ln for ln in (r.stdout + r.stderr).splitlines()
                     if not re.search(r"outdated mandoc\.db|STYLE: "
                                      r"referenced manual not found: ", ln)]
            is_(lines, [], "mandoc -Tlint %s: nothing to say" % p)
            with open(path, encoding="utf-8") as f:
                refs = re.findall(r"^\.Xr (\S+) (\d)", f.read(), re.M)
            ours = [(n, sec) for n, sec in refs if n.startswith("connector")]
            dangling = [(n, sec) for n, sec in ours if not os.path.exists(
                os.path.join(mandir, "man" + sec, n + "." + sec))]
            is_(dangling, [], "%s: its references to connectord pages (%d) "
                "are installed" % (p, len(ours)))
            others = {"%s %s" % r for r in refs} - {"%s %s" % r for r in ours}
            ok(others <= set(OTHER_PAGES), "%s: other references are to "
               "known pages (%s)" % (p, ", ".join(sorted(others))))
            r = subprocess.run(["man", "--warnings", "-l", path],
                               env=dict(os.environ, MANWIDTH="80"),
                               capture_output=True, text=True, timeout=60)
            ok(r.returncode == 0 and r.stderr == "" and
               len(r.stdout) > 1000,
               "man -l %s renders without a warning (%d bytes)"
               % (p, len(r.stdout)))
            if r.stderr:
                diag(r.stderr[:2000])


# ---------------------------------------------------------------------------
# The unit


def unit_service(t):
    """[Service] of the installed unit: {key: [values]}."""
    out, section = {}, None
    with open(t.unit, encoding="utf-8") as f:
        for ln in f.read().splitlines():
            ln = ln.strip()
            if not ln or ln.startswith("#"):
                continue
            if ln.startswith("["):
                section = ln
                continue
            if section == "[Service]":
                k, _, v = ln.partition("=")
                out.setdefault(k, []).append(v)
    return out


def staged_unit(t):
    """The installed unit with its installed paths moved into the DESTDIR
    tree, as systemd-analyze and this test must find the programs."""
    with open(t.unit, encoding="utf-8") as f:
        text = f.read()
    sbin = t.dirs["sbindir"]
    text = re.sub(r"^(Exec\w+=)%s/" % re.escape(sbin),
                  lambda m: m.group(1) + t.at(sbin) + "/", text, flags=re.M)
    d = os.path.join(t.root, "unit")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "connectord.service")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def unit_verify(t):
    svc = unit_service(t)
    is_(svc.get("Type"), ["forking"], "Type=forking: the broker detaches "
        "and logs to syslog")
    argv = svc.get("ExecStart", [""])[0].split()
    is_(argv, [t.dirs["sbindir"] + "/connectord"],
        "ExecStart is the installed broker, without -d")
    ok("NoNewPrivileges" in svc and svc["NoNewPrivileges"] == ["yes"],
       "NoNewPrivileges=yes")
    if not shutil.which("systemd-analyze"):
        cdtest.skip("systemd-analyze verify accepts the unit",
                    "systemd-analyze is not installed (Debian's systemd "
                    "package)")
        return
    env = dict(os.environ, MANPATH=t.at(t.dirs["mandir"]))
    r = subprocess.run(["systemd-analyze", "verify", staged_unit(t)],
                       env=env, capture_output=True, text=True, timeout=60)
    if not ok(r.returncode == 0 and not r.stderr.strip(),
              "systemd-analyze verify accepts the unit, its man: "
              "references included"):
        diag(r.stdout + r.stderr)


# ---------------------------------------------------------------------------
# The unit's command line, in the unit's sandbox


SANDBOX = r"""
set -eu
T=$1; shift
SOCK=$1; shift
RW=$1; shift
# PrivateDevices=yes: a /dev of its own with the basic nodes, /dev/log
# (systemd's points at the journal; here at the test's socket).
mkdir -p "$T/olddev"
mount --bind /dev "$T/olddev"
mount -t tmpfs -o mode=755,nosuid,noexec tmpfs /dev
for n in null zero full random urandom tty; do
	: > "/dev/$n"
	mount --bind "$T/olddev/$n" "/dev/$n"
done
mkdir /dev/pts /dev/shm
mount --bind "$T/olddev/pts" /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
: > /dev/log
mount --bind "$SOCK" /dev/log
umount -l "$T/olddev"
# PrivateTmp=yes.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
if [ -d /var/tmp ]; then mount -t tmpfs -o mode=1777 tmpfs /var/tmp; fi
# ProtectSystem=strict: / read-only but for the writable paths.
for p in $RW; do
	if [ -d "$p" ]; then mount --bind "$p" "$p"; fi
done
mount -o remount,bind,ro /
exec "$@"
"""


class SyslogListener:
    """A datagram socket read all along by a thread, as a syslog daemon
    reads /dev/log: a unix datagram socket queues only a few messages, and
    once it is full every sender's syslog() blocks."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.1)
        self.lines = []
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.lines.append(data.decode("utf-8", "replace"))

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


SYSLOG_LINE = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d "
                         r"([\w.-]+)\[(\d+)\]: (.*)$", re.S)


def parse_syslog(lines):
    """[(priority, ident, pid, message)] of the datagrams received."""
    out = []
    for ln in lines:
        m = SYSLOG_LINE.match(ln)
        out.append((int(m.group(1)), m.group(2), int(m.group(3)),
                    m.group(4)) if m else (None, None, None, ln))
    return out


def children_of(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = cdtest._stat_fields(int(name))
            if f and int(f[1]) == pid:
                kids.append(int(name))
    return kids


def caps_from_unit(svc):
    names = " ".join(svc.get("CapabilityBoundingSet", [])).split()
    return [n.lower().replace("cap_", "", 1) for n in names]


def cap_mask(names):
    numbers = {"chown": 0, "dac_override": 1, "dac_read_search": 2,
               "fowner": 3, "fsetid": 4, "kill": 5, "setgid": 6,
               "setuid": 7, "setpcap": 8, "net_bind_service": 10,
               "sys_chroot": 18, "sys_admin": 21}
    return sum(1 << numbers[n] for n in names)


class Service:
    """The installed broker started the way systemd would start the unit."""

    def __init__(self, t, fake, extra_args=()):
        self.t = t
        self.svc = unit_service(t)
        self.dir = tempfile.mkdtemp(prefix="svc-", dir=t.root)
        os.chmod(self.dir, 0o755)
        self.workspace = os.path.join(self.dir, "workspace")
        self.home = os.path.join(self.dir, "home")
        self.state_dir = os.path.join(self.dir, "state")
        for p in (self.workspace, self.home):
            os.mkdir(p, 0o755)
            uid, gid = cdtest.user_ids(OWNER)
            os.chown(p, uid, gid)
        # The fake's CA lives in /tmp, which the private /tmp hides.
        self.ca = os.path.join(self.dir, "fake-ca.pem")
        shutil.copy(fake.ca_file, self.ca)
        self.port = cdtest.free_port()
        self.conf = os.path.join(self.dir, "connectord.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write("listen = 127.0.0.1:%d\nworkspace = %s\nhome = %s\n"
                    "state_dir = %s\nhttps_proxy = %s\nca_file = %s\n"
                    % (self.port, self.workspace, self.home, self.state_dir,
                       fake.proxy_url, self.ca))
        self.sock_path = os.path.join(self.dir, "dev-log.sock")
        self.log = SyslogListener(self.sock_path)
        self.broker = None
        self.status = None
        self.extra_args = list(extra_args)
        self.start_rc = None
        self.start_out = ""

    def argv(self):
        exec_start = self.svc["ExecStart"][0].split()
        binary = self.t.at(exec_start[0])
        inner = [binary] + exec_start[1:] + self.extra_args + \
            ["-f", self.conf]
        caps = caps_from_unit(self.svc)
        priv = ["setpriv", "--bounding-set",
                "-all," + ",".join("+" + c for c in caps)]
        if self.svc.get("NoNewPrivileges") == ["yes"]:
            priv.append("--no-new-privs")
        rw = [p.lstrip("-") for v in self.svc.get("ReadWritePaths", [])
              for p in v.split()]
        rw += ["/run/" + d for d in self.svc.get("RuntimeDirectory", [])]
        rw += ["/var/lib/" + d for d in self.svc.get("StateDirectory", [])]
        rw += ["/home", "/root", self.t.root]
        return (["unshare", "--mount", "--propagation", "private", "sh",
                 "-c", SANDBOX, "sh", self.dir, self.sock_path, " ".join(rw)]
                + priv + ["--"] + inner)

    def env(self):
        """systemd's environment: PATH and nothing else, but for the
        sanitizers' settings in an instrumented build, whose reports go
        to files here since a detached daemon's stderr is /dev/null."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if cdtest.SANITIZED:
            self.san_dir = os.path.join(self.dir, "sanitizer")
            os.makedirs(self.san_dir, exist_ok=True)
            os.chmod(self.san_dir, 0o1777)
            for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                env[k] = "%s:log_path=%s/%s" % (
                    os.environ.get(k, ""), self.san_dir, k[:-8].lower())
        return env

    def sanitizer_reports(self):
        if not cdtest.SANITIZED:
            return
        text = ""
        for path in glob.glob(os.path.join(self.san_dir, "*")):
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read()
        ok("ERROR: AddressSanitizer" not in text and
           "runtime error:" not in text, "no sanitizer report")
        if text:
            diag(text[:3000])

    def start(self):
        for d in self.svc.get("RuntimeDirectory", []):
            os.makedirs("/run/" + d, mode=0o755, exist_ok=True)
        mdwe = self.svc.get("MemoryDenyWriteExecute") == ["yes"]

        def preexec():
            if mdwe and LIBC.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN,
                                   0, 0, 0) != 0:
                os.write(2, b"cdtest: PR_SET_MDWE refused\n")
        _live.append(self)
        r = subprocess.run(self.argv(), capture_output=True, text=True,
                           timeout=60, preexec_fn=preexec, env=self.env())
        self.start_rc, self.start_out = r.returncode, r.stdout + r.stderr
        # Orphaned by its parent's exit, the detached broker is ours: this
        # process is their subreaper, as systemd is for a service.
        found = cdtest.wait_for(lambda: [
            p for p in children_of(os.getpid())
            if (cdtest._title(p) or "").startswith("connectord: broker")], 5)
        self.broker = found[0] if found else None
        return self.broker is not None

    def healthy(self):
        try:
            status, _, body, _ = cdtest._http("127.0.0.1", self.port, "GET",
                                              "/healthz", timeout=2)
        except OSError:
            return False
        return status == 200 and (body or {}).get("ok") is True

    def api(self, method, path, body=None, timeout=20):
        with open(os.path.join(self.state_dir, "api-token"),
                  encoding="utf-8") as f:
            token = f.read().strip()
        data = json.dumps(body).encode() if body is not None else None
        return cdtest._http("127.0.0.1", self.port, method, path, data,
                            {"Authorization": "Bearer " + token,
                             "Content-Type": "application/json"}, timeout)

    def roles(self):
        roles = {}
        for pid in cdtest._descendants(self.broker):
            title = cdtest._title(pid) or ""
            if title.startswith("connectord: "):
                roles.setdefault(title[12:].strip(), []).append(pid)
        return roles

    @property
    def lines(self):
        return list(self.log.lines)

    def syslog(self):
        # Let the reader catch up with what was sent just now.
        time.sleep(0.2)
        return parse_syslog(self.lines)

    def terminate(self, timeout=10):
        """SIGTERM to the broker, as systemd's KillMode=mixed sends it;
        returns its wait status, or None if it had to be killed."""
        if self.broker is None or self.status is not None:
            return self.status
        os.kill(self.broker, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.broker, os.WNOHANG)
            if pid:
                self.status = status
                return status
            time.sleep(0.05)
        os.kill(self.broker, signal.SIGKILL)
        os.waitpid(self.broker, 0)
        self.status = -1
        return None

    def stop(self):
        if self in _live:
            _live.remove(self)
        kids = cdtest._descendants(self.broker) if self.broker else []
        self.terminate()
        for p in kids:
            if cdtest.alive(p):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
        self.log.close()


_live = []


def _stop_all():
    for s in list(_live):
        with contextlib.suppress(Exception):
            s.stop()


def unit_command_line(t):
    if not hasattr(t, "unit"):
        ok(False, "the unit was installed")
        return
    for tool in ("unshare", "setpriv"):
        if not ok(shutil.which(tool), "%s is installed (util-linux)" % tool):
            return
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    with cdtest.Fake() as fake:
        svc = Service(t, fake)
        try:
            run_service(t, fake, svc)
        finally:
            svc.stop()


def run_service(t, fake, s):
    diag("started as: %s" % " ".join(s.argv()[7:]))
    started = s.start()
    if not ok(s.start_rc == 0 and started,
              "the unit's ExecStart exits 0 once the broker has detached "
              "(rc %s)" % s.start_rc):
        diag(s.start_out[-3000:])
        return
    ok("PR_SET_MDWE refused" not in s.start_out,
       "MemoryDenyWriteExecute: the kernel's W^X lock is on (PR_SET_MDWE)")
    if not ok(cdtest.wait_for(s.healthy, 10), "healthz answers 200 within "
              "10 s"):
        diag("syslog: %r" % s.syslog()[-20:])
        return
    check_mounts(s)
    roles = s.roles()
    ok(len(roles.get("http", [])) == 1 and len(roles.get("vault", [])) == 1,
       "http and vault run under the broker (%r)" % roles)
    check_identities(s, roles)

    fake.add_manus_key("mk-install-" + "a" * 24)
    r = s.api("POST", "/api/connectors/manus/token",
              {"token": "mk-install-" + "a" * 24})
    cdtest.answered_ok(r, "a Manus token save through the fake answers 200")
    with open(os.path.join(s.workspace, "mcp-tokens.json"),
              encoding="utf-8") as f:
        stored = json.load(f)
    is_(stored.get("manus", {}).get("api_key"), "mk-install-" + "a" * 24,
        "and is in mcp-tokens.json")
    github_device_flow(s, fake)

    status = s.terminate()
    ok(status is not None and os.WIFEXITED(status) and
       os.WEXITSTATUS(status) == 0,
       "SIGTERM stops the broker with status 0 within 10 s (%r)" % status)
    ok(cdtest.wait_for(lambda: not [p for ps in roles.values() for p in ps
                                    if cdtest.alive(p)], 5),
       "no role outlives it")
    s.sanitizer_reports()
    check_syslog(s, debug=False)


def check_mounts(s):
    """The broker's view is the emulated sandbox: / read-only, its own /tmp
    and /dev, the writable paths writable."""
    mounts = {}
    with open("/proc/%d/mountinfo" % s.broker, encoding="utf-8") as f:
        for ln in f:
            fields = ln.split()
            fstype = fields[fields.index("-") + 1]
            mounts[fields[4]] = (fields[5].split(",")[0], fstype)
    is_(mounts.get("/", ("?",))[0], "ro", "ProtectSystem=strict: / is "
        "read-only for the service")
    is_(mounts.get("/tmp"), ("rw", "tmpfs"), "PrivateTmp: /tmp is its own")
    is_(mounts.get("/dev"), ("rw", "tmpfs"), "PrivateDevices: /dev is its "
        "own")
    is_(mounts.get(s.t.root, ("?",))[0], "rw", "the writable paths are "
        "writable")


def check_identities(s, roles):
    svc_ids, owner = cdtest.user_ids(SERVICE_USER), cdtest.user_ids(OWNER)
    want = cap_mask(caps_from_unit(s.svc))
    st = cdtest.proc_status(s.broker)
    is_((st["Uid"].split()[0], int(st["CapBnd"], 16), st["NoNewPrivs"]),
        ("0", want, "1"), "the broker: root, the unit's bounding set, "
        "no_new_privs")
    for role, ids in (("http", svc_ids), ("vault", owner)):
        for pid in roles.get(role, []):
            st = cdtest.proc_status(pid)
            is_((st["Uid"].split()[0], st["CapBnd"], st["CapEff"]),
                (str(ids[0]), "0" * 16, "0" * 16),
                "%s dropped to uid %d with no capability left" %
                (role, ids[0]))


def github_device_flow(s, fake):
    """gh under the unit's sandbox: the job directory (chowned to the
    service user, the CA copied into it, removed afterwards), gh's Go
    runtime under W^X, the vault writing <home>/.xo-cowork."""
    status, _, body, raw = s.api("POST", "/api/connectors/github/cli/start",
                                 timeout=30)
    if not ok(status == 200 and (body or {}).get("user_code"),
              "a GitHub device flow starts gh and answers its code"):
        diag("%r %r" % (status, raw[:300]))
        return
    fake.github_approve(login="octo-install", user_code=body["user_code"])
    sid = body["session_id"]

    def approved():
        try:
            _, _, b, _ = s.api("POST", "/api/connectors/github/cli/poll",
                               {"session_id": sid}, timeout=5)
        except OSError as e:
            diag("poll: %s" % e)
            return None
        return (b or {}).get("status") not in (None, "pending") and b
    b = cdtest.wait_for(approved, 15, 0.3)
    if not is_((b or {}).get("status"), "approved",
               "and is approved through gh"):
        diag("\n".join("%s %s" % (e[1], e[3]) for e in s.syslog()[-30:]))
    token_file = os.path.join(s.home, ".xo-cowork", "github_token.json")
    ok(cdtest.wait_for(lambda: os.path.exists(token_file), 5),
       "the vault wrote <home>/.xo-cowork/github_token.json")
    tmp = "/proc/%d/root/tmp" % s.broker
    ok(cdtest.wait_for(lambda: not [n for n in os.listdir(tmp)
                                    if n.startswith("connectord-job")], 5),
       "no job directory is left in the service's private /tmp")


def check_syslog(s, debug):
    entries = s.syslog()
    bad = [e[3] for e in entries if e[0] is None]
    is_(bad, [], "every syslog line is <pri>time ident[pid]: message")
    idents = {e[1] for e in entries if e[1]}
    # Without -v the vault has nothing to say on a good day.
    for ident in ("connectord-broker", "connectord-http") + \
            (("connectord-vault",) if debug else ()):
        ok(ident in idents, "syslog has lines from %s" % ident)
    diag("idents seen: %s" % ", ".join(sorted(idents)))
    ok(not [e for e in entries if e[1] and not
            e[1].startswith("connectord-")], "every ident is connectord-<role>")
    prefixed = [e for e in entries if e[3] and
                re.match(r"(broker|http|vault|worker [a-z]+): ", e[3])]
    is_(prefixed, [], "no message repeats its role")
    debug_lines = [e for e in entries if e[0] is not None and e[0] % 8 == 7]
    if debug:
        ok(debug_lines, "with -v, debug lines (daemon.debug) are logged "
           "(%d)" % len(debug_lines))
    else:
        is_(debug_lines, [], "without -v, no debug line")
    ok([e for e in entries if e[1] == "connectord-http" and
        re.search(r"POST /api/connectors/manus/token 200", e[3])] or debug,
       "the access log is http's")
    cdtest.scrub_check("\n".join(s.lines), ["mk-install-" + "a" * 24],
                       "no token in syslog")


def verbose_logs(t):
    """-v: the same start with debug lines, at daemon.debug."""
    if not hasattr(t, "unit"):
        return
    with cdtest.Fake() as fake:
        s = Service(t, fake, extra_args=["-v"])
        try:
            if not ok(s.start() and cdtest.wait_for(s.healthy, 10),
                      "with -v the service comes up too"):
                diag(s.start_out[-2000:])
                return
            status = s.terminate()
            ok(status is not None and os.WIFEXITED(status) and
               os.WEXITSTATUS(status) == 0, "and stops with status 0")
            s.sanitizer_reports()
            check_syslog(s, debug=True)
        finally:
            s.stop()


def main():
    if os.geteuid() != 0:
        cdtest.skip_all("needs root: install tree owned by root, the "
                        "service's mount namespace and identities")
    if not cdtest.user_ids(OWNER) or not cdtest.user_ids(SERVICE_USER):
        cdtest.skip_all("needs the users %s and %s (scripts/deps.sh test)"
                        % (OWNER, SERVICE_USER))
    try:
        cdtest.run([install, example_config, default_config_path,
                    manual_pages, unit_verify, unit_command_line,
                    verbose_logs], fixture=fixture)
    finally:
        _stop_all()


if __name__ == "__main__":
    main()
