#!/usr/bin/python3
"""When http (or the vault) dies, flows in progress cannot finish: their
workers are ended at once, so the OAuth port lock is free for the next
flow right after the restart, not at the old flows' deadlines."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402


def await_oauth(d, sid, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st, _, body, _ = d.api("GET", "/api/connectors/gdrive/sessions/" + sid)
        if st == 200 and body.get("status") != "pending":
            return body.get("status")
        time.sleep(0.2)
    return None


def restart(role):
    with cdtest.Fake() as fake, cdtest.Daemon(fake) as d:
        cdtest.wait_port_free(53682, 30)
        st, _, body, _ = d.api("POST", "/api/connectors/gdrive/remotes",
                               {"name": "first"})
        if not is_(st, 202, "%s: a flow starts" % role):
            return
        is_(await_oauth(d, body["session_id"]), "awaiting_oauth",
            "%s: it waits for the paste, holding the port" % role)
        old = d.pid_of(role)
        os.kill(old, signal.SIGKILL)
        ok(d.wait_role(role, not_pid=old, timeout=10), "%s restarted" % role)
        ok(d.wait_healthy(10), "healthz is 200 again")
        t0 = time.monotonic()
        st = None
        while time.monotonic() - t0 < 5:
            st, _, body, _ = d.api("POST", "/api/connectors/gdrive/remotes",
                                   {"name": "second"})
            if st == 202:
                break
            time.sleep(0.1)
        is_(st, 202, "%s: a new flow starts within 5 s of the restart"
            % role)
        diag("new flow accepted %.2f s after the restart"
             % (time.monotonic() - t0))
        if st == 202:
            d.api("POST", "/api/connectors/gdrive/sessions/%s/cancel"
                  % body["session_id"])


def main():
    cdtest.run([lambda: restart("http"), lambda: restart("vault")])


if __name__ == "__main__":
    main()
