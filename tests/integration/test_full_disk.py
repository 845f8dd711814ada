#!/usr/bin/python3
"""Faults in storage lose nothing: with the workspace on a small tmpfs that
is full, a save answers 507 with a sentence and the old mcp-tokens.json is
intact (no temporary file left); with the IPC log refusing writes, the
save is refused (fail closed) and the credential file is unchanged. Both
recover once the fault is gone.

Needs root (tmpfs mounts, chattr); skipped otherwise.
"""

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

TOKEN = "/api/connectors/manus/token"


@contextlib.contextmanager
def tmpfs(size):
    """A fresh tmpfs of size bytes, unmounted afterwards."""
    d = tempfile.mkdtemp(prefix="cd-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size,
                    "tmpfs", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def fill(d):
    """Fill the file system holding d; returns the filler's path."""
    path = os.path.join(d, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def save(fake, d, ok_expected):
    key = "manus_" + secrets.token_hex(12)
    fake.add_manus_key(key)
    r = d.api("POST", TOKEN, {"token": key})
    return key, r


def full_workspace():
    with tmpfs(512 * 1024) as ws, cdtest.Fake() as fake:
        with cdtest.Daemon(fake, overrides={"workspace": ws}) as d:
            key1, r = save(fake, d, True)
            is_(r[0], 200, "a save works on the small file system")
            before = open(os.path.join(ws, "mcp-tokens.json"), "rb").read()
            filler = fill(ws)
            _, r = save(fake, d, False)
            is_(r[0], 507, "a save on the full file system answers 507")
            err = (r[2] or {}).get("error", "")
            ok("mcp-tokens.json" in err, "with a sentence naming the file "
               "(%r)" % err)
            is_(open(os.path.join(ws, "mcp-tokens.json"), "rb").read(),
                before, "the old mcp-tokens.json is intact")
            is_([n for n in os.listdir(ws) if n.endswith(".tmp")], [],
                "no temporary file is left behind")
            os.unlink(filler)
            key3, r = save(fake, d, True)
            is_(r[0], 200, "once space returns a save works again")
            ok(key3 in open(os.path.join(ws, "mcp-tokens.json")).read(),
               "and lands in the file")


def ipc_log_unwritable():
    """The IPC log refusing writes (made immutable with chattr, which
    affects the vault's open descriptor too): a save is refused and the
    credential file is not changed."""
    with cdtest.Fake() as fake, cdtest.Daemon(fake) as d:
        key1, r = save(fake, d, True)
        is_(r[0], 200, "a save works")
        log = os.path.join(d.state_dir, "ipc.log")
        tokens = os.path.join(d.workspace, "mcp-tokens.json")
        before = open(tokens, "rb").read()
        if subprocess.run(["chattr", "+i", log]).returncode != 0:
            cdtest.skip("IPC log unwritable", "chattr +i not supported here")
            return
        try:
            _, r = save(fake, d, False)
            is_(r[0], 503, "with the IPC log unwritable the save is refused")
            err = (r[2] or {}).get("error", "")
            ok("IPC log" in err, "saying why (%r)" % err)
            is_(open(tokens, "rb").read(), before,
                "mcp-tokens.json was not changed (fail closed)")
            is_([n for n in os.listdir(d.workspace) if n.endswith(".tmp")],
                [], "no temporary file is left behind")
        finally:
            subprocess.run(["chattr", "-i", log])
        _, r = save(fake, d, True)
        is_(r[0], 200, "once the log can be written a save works")
        rc = subprocess.run([os.path.join(cdtest.BUILD, "connectorctl"),
                             "audit", "verify", log],
                            capture_output=True, text=True)
        is_(rc.returncode, 0, "the IPC log still verifies (%s)"
            % (rc.stdout + rc.stderr).strip())


def main():
    if os.geteuid() != 0:
        cdtest.skip_all("needs root for tmpfs mounts")
    cdtest.run([full_workspace, ipc_log_unwritable])


if __name__ == "__main__":
    main()
