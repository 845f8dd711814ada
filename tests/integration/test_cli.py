#!/usr/bin/python3
"""The command line of design.md §6: -n checks a configuration and exits 0,
or 1 with the reason and the line number; -o overrides a key after the
file; built-in defaults apply without any file; a bad flag gets usage.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import is_, ok  # noqa: E402

BIN = cdtest.daemon_binary()


def check(args, cwd, conf=None):
    argv = [BIN, "-n"] + (["-f", conf] if conf else []) + args
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def write(top, text, name="c.conf"):
    path = os.path.join(top, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def cli():
    top = tempfile.mkdtemp(prefix="cd-cli-")
    try:
        run_checks(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run_checks(top):
    ws = os.path.join(top, "ws")
    os.mkdir(ws)
    good = write(top, "# a comment\n\nworkspace = %s\nstate_dir = %s/st\n"
                 "session_ttl = 900\nlisten = 127.0.0.1:1\n"
                 "listen = [::1]:2\nlisten = unix:%s/sock\n" % (ws, top, top),
                 name="good.conf")
    rc, out = check([], top, good)
    is_(rc, 0, "-n accepts a good file (%s)" % out)

    cases = [
        ("workspace = %s\nbogus = 1\n" % ws, "c.conf:2:", "unknown key"),
        ("workspace = %s\n\nsession_ttl = 5\n" % ws, "c.conf:3:",
         "session_ttl out of range"),
        ("workspace = %s\nlisten = 127.0.0.1:99999\n" % ws, "c.conf:2:",
         "bad port"),
        ("workspace = %s\napi_auth = maybe\n" % ws, "c.conf:2:",
         "bad api_auth"),
        ("workspace = %s/missing\n" % top, "c.conf:1:", "missing workspace"),
        ("workspace = %s\nstate_dir = %s/st\n" % (ws, ws), "c.conf:2:",
         "state_dir inside the workspace"),
        ("workspace = %s\nmanus_api_url = ftp://x\n" % ws, "c.conf:2:",
         "a URL that is not http(s)"),
        ("workspace %s\n" % ws, "c.conf:1:", "a line without ="),
    ]
    for text, where, what in cases:
        rc, out = check([], top, write(top, text))
        is_(rc, 1, "-n refuses %s" % what)
        ok(where in out, "and names the line (%s)" % out)

    rc, out = check(["-o", "session_ttl=5"], top, good)
    is_(rc, 1, "-o is validated too (%s)" % out)
    rc, out = check(["-o", "session_ttl=120"], top, good)
    is_(rc, 0, "-o overrides a key after the file")
    rc, out = check([], top, os.path.join(top, "nope.conf"))
    is_(rc, 1, "a missing file is an error (%s)" % out)

    os.makedirs(os.path.join(top, "var", "workspace"))
    rc, out = check([], top)
    is_(rc, 0, "built-in defaults apply without a file (%s)" % out)

    p = subprocess.run([BIN, "-x"], capture_output=True, text=True,
                       timeout=30)
    is_(p.returncode, 1, "an unknown flag exits 1")
    ok("usage: connectord [-dnv]" in p.stderr, "with the usage line")


def main():
    cdtest.run([cli])


if __name__ == "__main__":
    main()
