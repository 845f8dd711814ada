#!/usr/bin/python3
"""HTTP throughput and latency of connectord against a bare evhttp server.

Usage: bench/run.py [--build DIR] [--duration 10] [--connections 1,16,64]
                    [--threads 2]

Starts the real daemon (build/connectord, in the foreground, on a free
loopback port with a private temp workspace) and build/bench/bare-evhttp
(the same libevent and event loop model, the same answer bytes, the same
constant-time token check, and nothing else). For each connection count it
runs wrk against the daemon's GET /api/connectors/manus/status and then
against the bare server's same path, so that drift on the machine affects
both alike. Both servers get a short warm-up first.

Prints a table (req/s, their ratio daemon/bare, p50/p99 latency in ms) and
writes the results as JSON to <build>/bench-status.json. A run is valid only
if wrk saw no non-2xx/3xx answer and no socket error; invalid runs are
reported and make the exit status 1. Both servers are stopped with SIGTERM
at the end, even on error or when this script is itself terminated.

wrk, the daemon and the bare server share the machine's cores: the numbers
are a comparison between the two servers under the same conditions, not
the capacity of either one on a dedicated host.

Python 3 standard library only; talks to 127.0.0.1 only.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REPO, DaemonEnv, Server, free_port, get, \
    make_tmp  # noqa: E402

PATH = "/api/connectors/manus/status"
EXPECTED_BODY = b'{"connected":false}\n'
EXPECTED_HEADERS = {"Content-Type": "application/json",
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff"}
WARMUP_SECONDS = 1
WARMUP_CONNECTIONS = 16
WRK_SLACK = 30          # seconds wrk may run beyond its duration

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def check_same_answer(daemon_port, bare_port, token):
    """Both servers must send the same status, headers and body."""
    for name, port in (("connectord", daemon_port), ("bare-evhttp", bare_port)):
        status, headers, body = get(port, PATH, token)
        got = {k: headers.get(k) for k in EXPECTED_HEADERS}
        if status != 200 or body != EXPECTED_BODY or got != EXPECTED_HEADERS:
            raise RuntimeError("%s answered %d %r %r, want 200 %r %r"
                               % (name, status, got, body, EXPECTED_HEADERS,
                                  EXPECTED_BODY))


def to_ms(text):
    """'105.00us', '1.20ms', '2.01s' -> milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("unknown wrk latency %r" % text)
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out):
    """The numbers we need from `wrk --latency` output."""
    def one(pattern, conv=float, default=None):
        m = re.search(pattern, out, re.MULTILINE)
        if m:
            return conv(m.group(1))
        if default is not None:
            return default
        raise ValueError("no match for %r in wrk output:\n%s" % (pattern, out))

    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", out)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"),
                             map(int, sock.groups()))) if sock else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    return {
        "requests": one(r"^\s*(\d+) requests in ", int),
        "rps": one(r"^Requests/sec:\s+([0-9.]+)"),
        "p50_ms": one(r"^\s*50%\s+(\S+)", to_ms),
        "p99_ms": one(r"^\s*99%\s+(\S+)", to_ms),
        # wrk omits these lines when the count is zero.
        "non_2xx_3xx": one(r"^\s*Non-2xx or 3xx responses: (\d+)", int, 0),
        "socket_errors": socket_errors,
    }


def run_wrk(url, token, conns, threads, duration):
    argv = ["wrk", "--latency", "-t%d" % min(threads, conns),
            "-c%d" % conns, "-d%ds" % duration,
            "-H", "Authorization: Bearer " + token, url]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=duration + WRK_SLACK, check=False)
    if p.returncode != 0:
        raise RuntimeError("wrk exited with %d:\n%s%s"
                           % (p.returncode, p.stdout, p.stderr))
    r = parse_wrk(p.stdout)
    r["errors"] = r["non_2xx_3xx"] + sum(r["socket_errors"].values())
    return r


def wrk_version():
    p = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                       check=False)
    return (p.stdout + p.stderr).splitlines()[0] if (p.stdout + p.stderr) \
        else "unknown"


def print_table(rows):
    head = ("connections", "daemon req/s", "bare req/s", "ratio",
            "daemon p50/p99 ms", "bare p50/p99 ms", "errors d/b")
    lines = [head]
    for r in rows:
        d, b = r["daemon"], r["bare"]
        lines.append((
            str(r["connections"]), "%.0f" % d["rps"], "%.0f" % b["rps"],
            "%.3f" % r["ratio"],
            "%.3f / %.3f" % (d["p50_ms"], d["p99_ms"]),
            "%.3f / %.3f" % (b["p50_ms"], b["p99_ms"]),
            "%d / %d" % (d["errors"], b["errors"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print(" | ".join(c.rjust(w) for c, w in zip(line, widths)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="meson build directory (default: build)")
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds per wrk run (default: 10)")
    ap.add_argument("--connections", default="1,16,64",
                    help="comma-separated connection counts")
    ap.add_argument("--threads", type=int, default=2,
                    help="wrk threads (at most the connection count)")
    args = ap.parse_args()
    try:
        args.connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        ap.error("--connections must be integers separated by commas")
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be between 1 and 600 seconds")
    if args.threads < 1 or any(c < 1 or c > 1000 for c in args.connections):
        ap.error("--threads must be >= 1 and connections in 1..1000")
    args.build = os.path.abspath(args.build)
    return args


def main():
    args = parse_args()
    bare_bin = os.path.join(args.build, "bench", "bare-evhttp")
    for path in (os.path.join(args.build, "connectord"), bare_bin):
        if not os.access(path, os.X_OK):
            sys.exit("no %s: build first (ninja -C %s)" % (path, args.build))
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")

    # SIGTERM (e.g. from a timeout) must still stop the servers.
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))

    tmp = make_tmp("connectord-bench-")
    servers = []
    rows = []
    try:
        env = DaemonEnv(args.build, tmp, servers)
        dport, token, daemon = env.port, env.token, env.server
        bport = free_port()
        bare = Server("bare-evhttp", [bare_bin, str(bport), token],
                      os.path.join(tmp, "bare.log"))
        servers.append(bare)
        bare.wait_ready(bport, PATH, token)
        check_same_answer(dport, bport, token)

        urls = {"daemon": "http://127.0.0.1:%d%s" % (dport, PATH),
                "bare": "http://127.0.0.1:%d%s" % (bport, PATH)}
        targets = (("daemon", daemon), ("bare", bare))
        print("wrk: %s; %d CPUs shared by wrk and both servers; %d s per run"
              % (wrk_version(), os.cpu_count(), args.duration))
        for key, _ in targets:
            run_wrk(urls[key], token, WARMUP_CONNECTIONS, args.threads,
                    WARMUP_SECONDS)
        for conns in args.connections:
            row = {"connections": conns,
                   "threads": min(args.threads, conns)}
            for key, server in targets:
                print("  %-6s -c%-4d ..." % (key, conns), flush=True)
                row[key] = run_wrk(urls[key], token, conns, args.threads,
                                   args.duration)
                if not server.alive():
                    raise RuntimeError("%s died during the run; log tail:\n%s"
                                       % (server.name, server.log_tail()))
            row["ratio"] = row["daemon"]["rps"] / row["bare"]["rps"] \
                if row["bare"]["rps"] else 0.0
            rows.append(row)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print_table(rows)
    invalid = [r["connections"] for r in rows
               if r["daemon"]["errors"] or r["bare"]["errors"]]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec="seconds"),
        "path": PATH,
        "duration_s": args.duration,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "wrk": wrk_version(),
        "valid": not invalid,
        "results": rows,
    }
    out = os.path.join(args.build, "bench-status.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("\nwritten: %s" % out)
    if invalid:
        print("INVALID: errors at %s connections (see the errors column)"
              % ", ".join(map(str, invalid)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
