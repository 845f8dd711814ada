"""What bench/load.py and bench/rss.py share: the servers they start, a
keep-alive HTTP/1.1 client on asyncio, per-endpoint statistics, the fake
providers' token pools and the daemon's processes in /proc.

Python 3 standard library only; talks to 127.0.0.1 only. The fake
providers come from the test harness (tests/lib/cdtest.py: Fake, which
runs tests/fakes/fakeprovider.py); the daemon is started here rather than
with cdtest.Daemon, whose checks print TAP lines.
"""

import array
import asyncio
import http.client
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import cdtest  # noqa: E402  (the fake providers and /proc helpers)

START_TIMEOUT = 20      # seconds for a server to answer after start
STOP_TIMEOUT = 10       # seconds between SIGTERM and SIGKILL
OAUTH_PORT = 53682      # rclone's callback port, global to the machine
RESERVED_PORTS = "/proc/sys/net/ipv4/ip_local_reserved_ports"
ALNUM = string.ascii_letters + string.digits
TITLE_PREFIX = "connectord: "

# The workspace every benchmark daemon starts with: a key the daemon must
# keep, and one remote of each rclone type for the list endpoints. The
# rclone tokens are made up; nothing ever uses them.
INITIAL_TOKENS = '{"other": {"x": 1}}\n'
INITIAL_RCLONE = (
    "[personal]\n"
    "type = drive\n"
    'token = {"access_token":"ya29.bench","token_type":"Bearer",'
    '"refresh_token":"1//bench","expiry":"2024-01-01T00:00:00Z"}\n'
    "\n"
    "[work]\n"
    "type = onedrive\n"
    'token = {"access_token":"EwBbench","token_type":"Bearer",'
    '"refresh_token":"M.bench","expiry":"2024-01-01T00:00:00Z"}\n'
    "drive_id = b!bench\n"
    "drive_type = personal\n"
    "\n")
INITIAL_REMOTES = {"gdrive": [{"name": "personal", "type": "drive"}],
                   "onedrive": [{"name": "work", "type": "onedrive"}]}


def free_port():
    """A loopback port free right now (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, token=None, timeout=2):
    """One GET on 127.0.0.1; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def reserve_oauth_port():
    """Keep the kernel from handing out port 53682 as an ephemeral port
    (as tests/run.py does): the benchmark's many client connections must
    not take the port an rclone flow needs. Root only; best effort."""
    try:
        with open(RESERVED_PORTS) as f:
            ports = [p for p in f.read().strip().split(",") if p]
        if str(OAUTH_PORT) not in ports:
            with open(RESERVED_PORTS, "w") as f:
                f.write(",".join(ports + [str(OAUTH_PORT)]))
    except OSError as e:
        print("could not reserve port %d (%s)" % (OAUTH_PORT, e),
              file=sys.stderr)


# ---------------------------------------------------------------------------
# Servers


class Server:
    """A process we started; stop() sends SIGTERM, then SIGKILL if needed."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, port, path, token=None):
        """Poll until GET path answers 200, or raise with the log's tail."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                break
            try:
                if get(port, path, token)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not answer 200 on %s (exit status %s); "
                           "log tail:\n%s" % (self.name, path,
                                              self.proc.poll(),
                                              self.log_tail()))

    def log_tail(self, lines=30):
        """The last lines of the log, without the per-request access log
        lines that would otherwise bury the reason of a failure."""
        with open(self.log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(self.log_path) - 65536))
            text = f.read().decode("utf-8", "replace")
        kept = [l for l in text.splitlines() if "http_access_log" not in l]
        return "\n".join(kept[-lines:])

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print("%s ignored SIGTERM for %d s; killing it"
                      % (self.name, STOP_TIMEOUT), file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class DaemonEnv:
    """connectord on a free loopback port in a private temp dir, with the
    layout the tests use (workspace/, home/, state/ made by the daemon),
    optionally reaching the fake providers through https_proxy and
    ca_file. The daemon is appended to servers as soon as it runs, so that
    the caller stops it even if it never gets ready."""

    def __init__(self, build, tmp, servers, fake=None, files=None,
                 verbose=0):
        self.dir = tmp
        self.workspace = os.path.join(tmp, "workspace")
        self.home = os.path.join(tmp, "home")
        self.state_dir = os.path.join(tmp, "state")
        for d in (self.workspace, self.home):
            os.mkdir(d, 0o755)
        for name, text in (files or {}).items():
            path = os.path.join(self.workspace, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o600)
        self.port = free_port()
        conf = os.path.join(tmp, "connectord.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("listen = 127.0.0.1:%d\n" % self.port)
            f.write("workspace = %s\n" % self.workspace)
            f.write("state_dir = %s\n" % self.state_dir)
            f.write("home = %s\n" % self.home)
            if fake is not None:
                f.write("https_proxy = %s\n" % fake.proxy_url)
                f.write("ca_file = %s\n" % fake.ca_file)
        # As the tests do: no proxy from our own environment reaches it.
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                    "no_proxy")}
        self.server = Server("connectord",
                             [os.path.join(build, "connectord"), "-d"] +
                             ["-v"] * verbose + ["-f", conf],
                             os.path.join(tmp, "daemon.log"), env=env)
        servers.append(self.server)
        self.server.wait_ready(self.port, "/healthz")
        with open(os.path.join(self.state_dir, "api-token"),
                  encoding="utf-8") as f:
            self.token = f.read().strip()

    @property
    def pid(self):
        return self.server.pid

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def read_bytes(self, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


def make_tmp(prefix):
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)    # the daemon's roles drop to _connectord
    return tmp


# ---------------------------------------------------------------------------
# The fake providers' accepted tokens


class FakeControl:
    """The fake's control API, one connection per call: the fake writes
    an answer's headers and body in two sends, and on a reused
    connection Nagle's algorithm then holds the body until the client's
    delayed ACK (40 ms a call); a fresh connection ACKs at once."""

    def __init__(self, fake):
        self.port = fake.control_port

    def call(self, path, body):
        data = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body=data, headers={
                "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError("fake control %s: %d %r"
                               % (path, resp.status, raw[:200]))
        return json.loads(raw)

    def close(self):
        pass


def _alnum(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


class TokenPools:
    """Tokens the fake accepts, per token connector, each with its own
    account (so that a status can tell which save it reflects), and one
    token per connector the fake refuses."""

    CONNECTORS = ("manus", "github", "vercel")

    def __init__(self, fake, size):
        self.size = size
        self.pools = {c: [] for c in self.CONNECTORS}
        self.login = {}         # token -> the account name it belongs to
        ctl = FakeControl(fake)
        try:
            for i in range(size):
                t = "manus_" + secrets.token_hex(16)
                ctl.call("/_fake/manus/keys", {"key": t})
                self.pools["manus"].append(t)
                t = "ghp_" + _alnum(36)
                login = "bench-gh-%d" % i
                ctl.call("/_fake/github/pat", {"token": t, "login": login,
                                               "id": 7100000 + i,
                                               "name": "Bench %d" % i})
                self.pools["github"].append(t)
                self.login[t] = login
                t = _alnum(24)
                login = "bench-vc-%d" % i
                ctl.call("/_fake/vercel/pat", {"token": t,
                                               "username": login})
                self.pools["vercel"].append(t)
                self.login[t] = login
        finally:
            ctl.close()
        # Never registered: the fake answers 401, the daemon 422.
        self.bad = {"manus": "manus_" + secrets.token_hex(16),
                    "github": "ghp_" + _alnum(36),
                    "vercel": _alnum(24)}

    def token(self, connector, n):
        """The n-th token of a connector (the pool wraps around; two
        consecutive ones always differ)."""
        pool = self.pools[connector]
        return pool[n % len(pool)]


# ---------------------------------------------------------------------------
# The asyncio client


class RequestFailed(Exception):
    """A request that got no complete answer: reset, EOF, timeout."""


class _Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.fut = None
        self.closed = False
        self.head_only = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.fut is None:
            return
        if self.fut.done():
            return
        try:
            resp = self._parse()
        except (RequestFailed, ValueError) as e:
            self.fut.set_exception(RequestFailed(str(e)))
            return
        if resp is not None:
            self.fut.set_result(resp)

    def _parse(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise RequestFailed("malformed status line %r" % head[0][:80])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status in (204, 304) or 100 <= status < 200 or self.head_only:
            length = 0
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:
            raise RequestFailed("answer without Content-Length (%d)"
                                % status)
        if len(self.buf) < end + 4 + length:
            return None
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        return status, headers, body

    def connection_lost(self, exc):
        self.closed = True
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(RequestFailed(
                "connection closed before the answer (%s)"
                % (exc or "EOF")))

    def eof_received(self):
        return False


class Client:
    """A keep-alive connection to 127.0.0.1:port that reconnects when the
    server closed it (Connection: close, or after an error)."""

    def __init__(self, port, token):
        self.port = port
        self.auth = ("Authorization: Bearer %s\r\n" % token).encode() \
            if token else b""
        self.host = ("Host: 127.0.0.1:%d\r\n" % port).encode()
        self.proto = None
        self.connects = 0

    async def _connect(self, timeout):
        loop = asyncio.get_running_loop()
        try:
            _, self.proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, "127.0.0.1", self.port),
                timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise RequestFailed("cannot connect: %s" % (e or "timeout"))
        self.connects += 1

    def close(self):
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.abort()
        self.proto = None

    async def request(self, method, path, body=None, timeout=10,
                      auth=True, raw=None, extra_headers=b"", wire=None):
        """Send one request and wait for its whole answer. body: an
        object sent as JSON; raw: bytes sent as the body; wire: bytes
        sent instead of the whole request (method and path then only
        name it in errors). Returns
        (status, headers with lower-case names, body bytes, seconds).
        Raises RequestFailed on reset, EOF or timeout (the connection is
        then dropped)."""
        if self.proto is None or self.proto.closed:
            await self._connect(timeout)
        p = self.proto
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        parts = [("%s %s HTTP/1.1\r\n" % (method, path)).encode(),
                 self.host, self.auth if auth else b"", extra_headers]
        if data is not None:
            parts.append(b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n" % len(data))
        parts.append(b"\r\n")
        if data is not None:
            parts.append(data)
        loop = asyncio.get_running_loop()
        fut = p.fut = loop.create_future()
        p.head_only = method == "HEAD"

        def expire():
            if not fut.done():
                fut.set_exception(RequestFailed("no answer within %g s"
                                                % timeout))

        timer = loop.call_later(timeout, expire)
        t0 = time.perf_counter()
        try:
            if p.buf:       # bytes the server sent unasked
                raise RequestFailed("unsolicited bytes before the request: "
                                    "%r" % bytes(p.buf[:80]))
            p.transport.write(wire if wire is not None else b"".join(parts))
            status, headers, rbody = await fut
        except RequestFailed:
            self.close()
            raise
        finally:
            timer.cancel()
            p.fut = None
        took = time.perf_counter() - t0
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, rbody, took


def parse_json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Statistics


class Endpoint:
    """Latencies (answers with an expected status) and counts of one
    endpoint label."""

    def __init__(self):
        self.lat = array.array("d")
        self.statuses = {}
        self.failures = 0

    def add(self, status, seconds):
        self.lat.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self, elapsed):
        lat = sorted(self.lat)
        return {
            "requests": len(lat),
            "rps": len(lat) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
            "max_ms": (lat[-1] if lat else 0.0) * 1e3,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": self.failures,
        }


def percentile(sorted_values, pct):
    """Nearest-rank percentile of an already sorted sequence (0 if empty)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1,
                   int(round(pct / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class Stats:
    """Per-endpoint statistics and the list of failures of one run."""

    FAILURES_KEPT = 50

    def __init__(self):
        self.endpoints = {}
        self.failures = []      # (label, reason), the first FAILURES_KEPT
        self.nfailures = 0

    def ep(self, label):
        e = self.endpoints.get(label)
        if e is None:
            e = self.endpoints[label] = Endpoint()
        return e

    def ok(self, label, status, seconds):
        self.ep(label).add(status, seconds)

    def fail(self, label, reason):
        self.ep(label).failures += 1
        self.nfailures += 1
        if len(self.failures) < self.FAILURES_KEPT:
            self.failures.append((label, reason))

    def total_requests(self):
        return sum(len(e.lat) + e.failures for e in self.endpoints.values())


async def call(stats, client, label, method, path, expect, body=None,
               timeout=10, check=None, **kw):
    """One request, accounted under label: an answer whose status is in
    expect (a set, or a dict status -> label for answers counted apart,
    e.g. {202: None, 409: "... (409 busy)"}) and that check(status,
    parsed JSON) accepts (returns None, or a reason to fail) counts as a
    success; anything else as a failure. Returns (status, parsed body) or
    None on failure."""
    try:
        status, _, raw, took = await client.request(method, path, body,
                                                    timeout, **kw)
    except RequestFailed as e:
        stats.fail(label, "%s %s: %s" % (method, path, e))
        return None
    if status not in expect:
        stats.fail(label, "%s %s: unexpected %d %r"
                   % (method, path, status, raw[:200]))
        return None
    parsed = parse_json(raw) if raw else None
    if check is not None:
        why = check(status, parsed)
        if why:
            stats.fail(label, "%s %s: %d %s: %r"
                       % (method, path, status, why, raw[:200]))
            return None
    apart = expect.get(status) if isinstance(expect, dict) else None
    stats.ok(apart or label, status, took)
    return status, parsed


# ---------------------------------------------------------------------------
# The daemon's processes


def role_pids(broker_pid):
    """{role: [pid, ...]} of the broker and its descendants titled
    "connectord: <role>" ("http", "vault", "worker manus", ...)."""
    roles = {"broker": [broker_pid]}
    for pid in cdtest._descendants(broker_pid):
        title = cdtest._title(pid)
        if title and title.startswith(TITLE_PREFIX):
            roles.setdefault(title[len(TITLE_PREFIX):].strip(),
                             []).append(pid)
    return roles


def tool_pids(broker_pid):
    """Descendants of the broker that run gh or rclone."""
    out = []
    for pid in cdtest._descendants(broker_pid):
        data = cdtest._proc_read(pid, "cmdline") or b""
        argv0 = data.split(b"\0")[0].decode("utf-8", "replace")
        if os.path.basename(argv0) in ("gh", "rclone"):
            out.append((pid, os.path.basename(argv0)))
    return out


def vmrss_kib(pid):
    """VmRSS of pid in KiB from /proc/<pid>/status, or None."""
    st = cdtest.proc_status(pid)
    if not st or "VmRSS" not in st:
        return None
    return int(st["VmRSS"].split()[0])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(own, reaped children's) CPU seconds, user plus system, of pid from
    /proc/<pid>/stat; None when it is gone. The broker's children's time
    is that of every worker it reaped, and of the gh and rclone processes
    those workers reaped."""
    f = cdtest._stat_fields(pid)
    if not f or len(f) < 15:
        return None
    return ((int(f[11]) + int(f[12])) / _CLK_TCK,
            (int(f[13]) + int(f[14])) / _CLK_TCK)


def machine_jiffies():
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)      # idle + iowait
    return sum(v) - idle, sum(v)
