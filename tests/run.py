#!/usr/bin/python3
"""The test suite runner that `make test` calls.

Runs, in order: every unit test binary build/tests/test_* or
build/tests/unit/test_* (skipped when the build dir has none), then every tests/integration/test_*.py and
tests/security/test_*.py. Each suite runs with a timeout, its TAP output
streamed with the suite name as prefix. TAP "ok" / "not ok" lines are
counted across all suites; a suite that crashes, times out, or whose plan
does not match its count adds one failure. The last line is exactly
"N passed, N failed"; the exit status is 0 only when nothing failed.

Usage: tests/run.py [--only PATTERN] [--timeout SECONDS] [--build DIR]
PATTERN matches suite names ("unit/test_msg", "integration/test_manus")
as a substring, or as a glob when it holds * ? or [.
"""

import argparse
import fnmatch
import glob
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable

TAP_RESULT = re.compile(r"^(not )?ok\b(?:\s+\d+)?(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")
TAP_SKIP = re.compile(r"#\s*skip", re.IGNORECASE)
TAP_TODO = re.compile(r"#\s*todo", re.IGNORECASE)


class Tally:
    """Counts of one suite, from its TAP lines."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.plan = None

    @property
    def count(self):
        return self.passed + self.failed

    def feed(self, line):
        m = TAP_RESULT.match(line)
        if m:
            directive = m.group(2)
            if TAP_SKIP.search(directive):
                self.skipped += 1
            # A "not ok # TODO" is an expected failure, not a failure.
            if m.group(1) and not TAP_TODO.search(directive):
                self.failed += 1
            else:
                self.passed += 1
            return
        m = TAP_PLAN.match(line)
        if m and self.plan is None:
            self.plan = int(m.group(1))


def unit_binaries(build):
    """Executables test_* that meson built from tests/meson.build (into
    build/tests/) or from a tests/unit/meson.build (build/tests/unit/)."""
    found = {}
    for d in ("tests", os.path.join("tests", "unit")):
        for path in glob.glob(os.path.join(build, d, "test_*")):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.setdefault(os.path.basename(path), path)
    return [found[name] for name in sorted(found)]


def find_suites(build):
    """(name, argv, cwd) of every suite, in run order."""
    suites = []
    for path in unit_binaries(build):
        suites.append(("unit/" + os.path.basename(path), [path], build))
    for group in ("integration", "security"):
        for path in sorted(glob.glob(os.path.join(REPO, "tests", group,
                                                  "test_*.py"))):
            name = group + "/" + os.path.basename(path)[:-3]
            suites.append((name, [PYTHON, path], REPO))
    return suites


def selected(name, pattern):
    if pattern is None:
        return True
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name, pattern)
    return pattern in name


def pump(stream, lines):
    """Reader thread: lines of the suite's output into a queue, then None."""
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    lines.put(None)


def stop_group(proc):
    """SIGTERM the suite's process group (the harness then stops the daemons
    it started), SIGKILL whatever is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_suite(name, argv, cwd, timeout, env):
    """Run one suite, streaming its output. Returns (tally, problem or
    None)."""
    tally = Tally()
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lines = queue.Queue()
    threading.Thread(target=pump, args=(proc.stdout, lines),
                     daemon=True).start()
    timed_out = False
    while True:
        left = start + timeout - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            timed_out = True
            stop_group(proc)
            drain(name, lines, tally)
            break
        if line is None:
            break
        print("[%s] %s" % (name, line), flush=True)
        tally.feed(line)
    rc = proc.wait()
    return tally, verdict(tally, rc, timed_out, timeout)


def drain(name, lines, tally, grace=2):
    """After a kill, show what the suite still printed (its cleanup)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            return
        if line is None:
            return
        print("[%s] %s" % (name, line), flush=True)
        tally.feed(line)


def verdict(tally, rc, timed_out, timeout):
    """Why a suite counts one extra failure, or None."""
    if timed_out:
        return "timed out after %d s" % timeout
    if rc < 0:
        return "killed by signal %d" % -rc
    if tally.plan is None:
        return "printed no plan (exit status %d)" % rc
    if tally.plan != tally.count:
        return "planned %d tests, ran %d" % (tally.plan, tally.count)
    if rc != 0 and tally.failed == 0:
        return "exit status %d with no failing test" % rc
    return None


# rclone's OAuth callback port. Ports the kernel hands out on its own
# (every test server's and client's) come from a range that contains it;
# one landing on 53682 makes an unrelated rclone flow fail. Reserving it
# keeps the kernel from picking it (root only).
OAUTH_PORT = 53682
RESERVED_PORTS = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def reserve_oauth_port():
    try:
        with open(RESERVED_PORTS) as f:
            current = f.read().strip()
        ports = [p for p in current.split(",") if p]
        if str(OAUTH_PORT) in ports:
            return
        with open(RESERVED_PORTS, "w") as f:
            f.write(",".join(ports + [str(OAUTH_PORT)]))
        print("# reserved port %d from the ephemeral range" % OAUTH_PORT)
    except OSError as e:
        print("# could not reserve port %d (%s); a test server picking it "
              "would disturb the rclone tests" % (OAUTH_PORT, e))


def main():
    reserve_oauth_port()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", metavar="PATTERN")
    ap.add_argument("--timeout", type=int,
                    default=int(os.environ.get("CDTEST_TIMEOUT", "300")),
                    help="seconds per suite (default 300, or $CDTEST_TIMEOUT)")
    ap.add_argument("--build", default=os.environ.get(
        "CD_BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--sanitized", metavar="BUILD",
                    help="also run every suite against this build "
                    "(-Db_sanitize=address,undefined); a sanitizer report "
                    "in any daemon log is a failure")
    args = ap.parse_args()
    runs = [(args.build, "", {})]
    if args.sanitized:
        runs.append((args.sanitized, "asan+ubsan:", {
            "CD_SANITIZED": "1",
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}))
    passed = failed = skipped = 0
    for build, prefix, extra in runs:
        p, f, s = run_build(args, os.path.abspath(build), prefix, extra)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    if skipped:
        print("# %d skipped (counted as passed)" % skipped)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


def run_build(args, build, prefix, extra):
    """Every selected suite against one build: (passed, failed,
    skipped)."""

    env = dict(os.environ, CD_BUILD_DIR=build, PYTHONDONTWRITEBYTECODE="1",
               **extra)
    env["CONNECTORD"] = os.path.join(build, "connectord")
    suites = [s for s in find_suites(build) if selected(s[0], args.only)]
    if not unit_binaries(build):
        print("# no unit test binaries under %s/tests: skipped" % build)

    passed = failed = skipped = 0
    for name, argv, cwd in suites:
        t0 = time.monotonic()
        name = prefix + name
        tally, problem = run_suite(name, argv, cwd, args.timeout, env)
        passed += tally.passed
        failed += tally.failed + (1 if problem else 0)
        skipped += tally.skipped
        print("# %s: %d passed, %d failed%s (%.1f s)"
              % (name, tally.passed, tally.failed,
                 "; " + problem if problem else "", time.monotonic() - t0),
              flush=True)
    if not suites:
        print("# no suite matches %r" % args.only)
        failed += 1
    return passed, failed, skipped


if __name__ == "__main__":
    sys.exit(main())
