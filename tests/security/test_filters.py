#!/usr/bin/python3
"""Each role's real sandbox (try-role enters it with the same
sandbox_enter() call as the daemon) allows what SECURITY.md says the role
may do and refuses the rest: the table below is SECURITY.md's filter
column, executed.

As root the identities and http's chroot apply too; as another user only
the filters, no-new-privs and limits do, and the rows that depend on the
uid are skipped.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

TRY_ROLE = os.path.join(cdtest.BUILD, "tests", "try-role")
OWNER = "_cdtest"
ROOT = os.geteuid() == 0

# (role, op, arg-key, expected); "denied" matches any refusal.
MATRIX = [
    ("http", "open", "tokens", "denied"),
    ("http", "open", "passwd", "denied"),
    ("http", "open-write", "tokens", "denied"),
    ("http", "socket", None, "denied"),
    ("http", "exec", "true", "denied: seccomp"),
    ("http", "ptrace", None, "denied: seccomp"),
    ("http", "mount", None, "denied: seccomp"),
    ("http", "setuid", None, "denied: seccomp"),
    ("http", "chroot", None, "denied: seccomp"),
    ("vault", "open", "tokens", "allowed"),
    ("vault", "socket", None, "denied: seccomp"),
    ("vault", "exec", "true", "denied: seccomp"),
    ("vault", "ptrace", None, "denied: seccomp"),
    ("vault", "mount", None, "denied: seccomp"),
    ("vault", "setuid", None, "denied: seccomp"),
    ("worker", "open", "tokens", "denied"),
    ("worker", "open", "passwd", "allowed"),
    ("worker", "open-write", "scratch", "denied"),
    ("worker", "socket", None, "allowed"),
    ("worker", "exec", "true", "denied: seccomp"),
    ("worker", "ptrace", None, "denied: seccomp"),
    ("worker", "mount", None, "denied: seccomp"),
    ("worker", "setuid", None, "denied: seccomp"),
]


def setup():
    """A config whose workspace holds a 0600 credential file owned by the
    workspace owner, and a scratch file anyone may write."""
    top = tempfile.mkdtemp(prefix="cd-filters-")
    os.chmod(top, 0o755)
    ws = os.path.join(top, "workspace")
    os.mkdir(ws, 0o755)
    tokens = os.path.join(ws, "mcp-tokens.json")
    with open(tokens, "w") as f:
        f.write("{}\n")
    os.chmod(tokens, 0o600)
    scratch = os.path.join(top, "scratch")
    with open(scratch, "w") as f:
        f.write("x")
    os.chmod(scratch, 0o666)
    if ROOT:
        pw = pwd.getpwnam(OWNER)
        os.chown(ws, pw.pw_uid, pw.pw_gid)
        os.chown(tokens, pw.pw_uid, pw.pw_gid)
    conf = os.path.join(top, "c.conf")
    with open(conf, "w") as f:
        f.write("workspace = %s\nstate_dir = %s/state\n" % (ws, top))
    return conf, {"tokens": tokens, "passwd": "/etc/passwd",
                  "scratch": scratch, "true": "/bin/true"}


def uid_dependent(role, op, arg):
    """Rows whose answer comes from the uid or the chroot, not the filter."""
    return arg == "tokens" and op == "open" and role == "worker"


def matrix():
    conf, paths = setup()
    try:
        run_matrix(conf, paths)
    finally:
        shutil.rmtree(os.path.dirname(conf), ignore_errors=True)


def run_matrix(conf, paths):
    for role, op, arg, want in MATRIX:
        name = "%s %s%s: %s" % (role, op, " " + arg if arg else "", want)
        if not ROOT and uid_dependent(role, op, arg):
            cdtest.skip(name, "needs root for the identity change")
            continue
        argv = [TRY_ROLE, role, conf, op] + ([paths[arg]] if arg else [])
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        got = p.stdout.strip()
        if want == "denied":
            ok(got.startswith("denied"), name + " (got %r)" % got)
        else:
            is_(got, want, name)
        if p.returncode != 0:
            diag(p.stderr.strip())


def main():
    if not os.access(TRY_ROLE, os.X_OK):
        cdtest.run([lambda: ok(False, "try-role is built at %s" % TRY_ROLE)])
    cdtest.run([matrix])


if __name__ == "__main__":
    main()
