#!/usr/bin/python3
"""Run every libFuzzer target for a set time and report on each (make fuzz).

For each executable fuzz_<name> in <build>/tests (built with -Dfuzz=true),
one after the other (the machine's cores are shared): the committed seeds
of tests/fuzz/corpus/<name up to its first '_'> are copied into
<build>/corpus-<name>, which the run then grows (inputs found earlier stay
there, the committed corpus is never written unless --merge is given),
with tests/fuzz/dict/<name>.dict as its dictionary. Crash, leak, timeout
and out-of-memory inputs go to <build>/artifacts-<name>/, the whole output
to <build>/fuzz-<name>.log.

The table at the end gives per target: executions and executions per
second (libFuzzer's final stats), coverage as libFuzzer's last status line
has it (cov: edges, ft: features), the corpus size in inputs and bytes,
and whether the run found a crash. The exit status is 1 if any did.

Usage: tests/fuzz/run_fuzz.py [--build DIR] [--seconds N] [--only NAME...]
                              [--fresh] [--merge]
Python 3 standard library only.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FUZZ = os.path.join(REPO, "tests", "fuzz")

STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
ARTIFACT = re.compile(r"(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+$")


def targets(build, only):
    """(name, path) of every fuzz_<name> executable, sorted by name."""
    found = []
    for path in sorted(glob.glob(os.path.join(build, "tests", "fuzz_*"))):
        name = os.path.basename(path)[len("fuzz_"):]
        if os.path.isfile(path) and os.access(path, os.X_OK) and \
                (not only or name in only):
            found.append((name, path))
    return found


def seeds_dir(name):
    return os.path.join(FUZZ, "corpus", name.split("_")[0])


def prepare(build, name, fresh):
    """The work corpus: a copy of the seeds, plus what earlier runs
    found unless fresh."""
    work = os.path.join(build, "corpus-" + name)
    if fresh and os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    src = seeds_dir(name)
    for f in os.listdir(src) if os.path.isdir(src) else []:
        if not f.startswith("."):
            shutil.copy(os.path.join(src, f), os.path.join(work, f))
    arts = os.path.join(build, "artifacts-" + name)
    os.makedirs(arts, exist_ok=True)
    return work, arts


def artifacts(arts):
    return sorted(f for f in os.listdir(arts) if ARTIFACT.match(f))


def parse(log):
    """Last status line and final stats of a libFuzzer log."""
    r = {"execs": None, "rate": None, "cov": None, "ft": None,
         "units": None, "bytes": None}
    for line in log.splitlines():
        m = STATUS.match(line)
        if m:
            r["cov"], r["ft"] = int(m.group(2)), int(m.group(3))
            r["units"], r["bytes"] = int(m.group(4)), m.group(5)
            continue
        m = STAT.match(line)
        if m and m.group(1) == "number_of_executed_units":
            r["execs"] = int(m.group(2))
        elif m and m.group(1) == "average_exec_per_sec":
            r["rate"] = int(m.group(2))
    return r


def run(build, name, path, seconds, fresh):
    work, arts = prepare(build, name, fresh)
    before = set(artifacts(arts))
    argv = [path, "-max_total_time=%d" % seconds, "-print_final_stats=1",
            "-timeout=10", "-rss_limit_mb=2048",
            "-artifact_prefix=" + arts + os.sep]
    dict_path = os.path.join(FUZZ, "dict", name + ".dict")
    if os.path.exists(dict_path):
        argv.append("-dict=" + dict_path)
    argv.append(work)
    print("== fuzz_%s: %d s, corpus %s%s" % (
        name, seconds, os.path.relpath(work, REPO),
        ", dict " + os.path.relpath(dict_path, REPO)
        if os.path.exists(dict_path) else ""), flush=True)
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd=build,
                          timeout=seconds * 3 + 120)
    log = proc.stdout.decode("utf-8", "replace")
    with open(os.path.join(build, "fuzz-%s.log" % name), "w") as f:
        f.write(log)
    r = parse(log)
    new = [a for a in artifacts(arts) if a not in before]
    r["crash"] = proc.returncode != 0 or bool(new) or \
        "ERROR: libFuzzer" in log or "ERROR: AddressSanitizer" in log
    r["artifacts"] = [os.path.join(arts, a) for a in new]
    r["rc"] = proc.returncode
    if r["crash"]:
        tail = [ln for ln in log.splitlines() if "ERROR" in ln or
                "SUMMARY" in ln or "runtime error" in ln][:6]
        for ln in tail:
            print("   " + ln)
        for a in r["artifacts"]:
            print("   input: %s (replay: %s %s)" % (a, path, a))
    return r


def merge(build, name):
    """Minimise the work corpus into the committed one (--merge)."""
    path = os.path.join(build, "tests", "fuzz_" + name)
    subprocess.run([path, "-merge=1", seeds_dir(name),
                    os.path.join(build, "corpus-" + name)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=build, check=False)


def fmt(v):
    return "-" if v is None else str(v)


def table(results, seconds):
    head = ("target", "execs", "exec/s", "cov", "ft", "corpus", "crash")
    rows = [head]
    for name, r in results:
        corpus = "-" if r["units"] is None else "%d/%s" % (r["units"],
                                                          r["bytes"])
        rows.append((name, fmt(r["execs"]), fmt(r["rate"]), fmt(r["cov"]),
                     fmt(r["ft"]), corpus, "YES" if r["crash"] else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    print()
    print("libFuzzer, %d s per target (cov: edges, ft: features, from the "
          "last status line)" % seconds)
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build-fuzz"))
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--only", nargs="*", default=[],
                    help="target names (without fuzz_)")
    ap.add_argument("--fresh", action="store_true",
                    help="start each work corpus from the seeds alone")
    ap.add_argument("--merge", action="store_true",
                    help="minimise what was found into the committed corpus")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    found = targets(build, args.only)
    if not found:
        print("no fuzz_* targets in %s/tests: build with CC=clang and "
              "-Dfuzz=true" % build, file=sys.stderr)
        return 2
    results = []
    for name, path in found:
        results.append((name, run(build, name, path, args.seconds,
                                  args.fresh)))
        if args.merge and not results[-1][1]["crash"]:
            merge(build, name)
    table(results, args.seconds)
    crashed = [n for n, r in results if r["crash"]]
    if crashed:
        print("\ncrash found by: %s (logs: %s/fuzz-<name>.log)" %
              (", ".join(crashed), os.path.relpath(build, REPO)))
        return 1
    print("\nno crash in %d targets" % len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
