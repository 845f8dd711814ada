#!/usr/bin/python3
"""A ca_file in a directory only root can read (what a harness using
mkdtemp() produces) still works: the broker copies the bundle into each
job's private directory for the worker, which runs as the service user,
and for the tools it starts."""

import os
import secrets
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import is_, ok  # noqa: E402


def private_ca():
    if os.geteuid() != 0:
        cdtest.skip("a root-only CA directory", "needs root")
        return
    with cdtest.Fake() as fake:
        priv = tempfile.mkdtemp(prefix="cd-ca-")
        try:
            os.chmod(priv, 0o700)
            ca = os.path.join(priv, "ca.pem")
            shutil.copy(fake.ca_file, ca)
            os.chmod(ca, 0o600)
            with cdtest.Daemon(fake, overrides={"ca_file": ca},
                               owner="_cdtest") as d:
                key = "manus_" + secrets.token_hex(8)
                fake.add_manus_key(key)
                is_(d.api("POST", "/api/connectors/manus/token",
                          {"token": key})[0], 200,
                    "a token check through TLS with a root-only ca_file")
                r = d.api("POST", "/api/connectors/github/cli/start")
                is_(r[0], 200, "gh reaches the fake with the copied CA")
                if r[0] == 200:
                    d.api("POST", "/api/connectors/github/cli/cancel",
                          {"session_id": r[2]["session_id"]})
                ok(not any(n.startswith("connectord-job") and
                           os.path.exists(os.path.join("/tmp", n, "ca.pem"))
                           and os.stat(os.path.join("/tmp", n)).st_uid == 0
                           for n in os.listdir("/tmp")),
                   "no job directory is left owned by root")
        finally:
            shutil.rmtree(priv, ignore_errors=True)


def main():
    cdtest.run([private_ca])


if __name__ == "__main__":
    main()
