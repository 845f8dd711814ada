#!/usr/bin/python3
"""The web console (issue 7) in headless Chromium, end to end: the real
daemon, the real rclone and gh, the fake providers, and the page driven by
playwright-core (tests/e2e/console.mjs) in Debian's /usr/bin/chromium.

This file starts the fake and the daemon (and a second one with api_auth
= none, whose console needs no sign-in), mints a one-time sign-in link
with the API token, runs the browser script and relays its checks as TAP.
The script asks this side to play the person at the providers (follow
Google's authorize URL to the redirect a person would paste, approve a
GitHub device code, consent at Vercel) with lines "@@ask {...}", answered
with one JSON line on its standard input. After the browser is done, the
files are checked: what the page stored is where api.md puts it, and no
secret it handled reached the daemon's log.

Screenshots of each card state go to <build>/console-screenshots/.
Port 53682 is global to the machine: the Drive flow waits for it.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

E2E = os.path.join(cdtest.REPO, "tests", "e2e")
SCRIPT = os.path.join(E2E, "console.mjs")
CHROMIUM = "/usr/bin/chromium"
NODE = shutil.which("node") or "/usr/bin/node"
RCLONE, GH = "/usr/bin/rclone", "/usr/bin/gh"
SHOT_DIR = os.path.join(cdtest.BUILD, "console-screenshots")
SHOTS = ["01-signed-out", "02-all-disconnected", "03-manus-connected",
         "04-error-shown", "05-github-connected-token",
         "06-github-device-code", "07-github-connected",
         "08-drive-awaiting-paste", "09-drive-paste-refused",
         "10-drive-completed", "10b-onedrive-port-busy", "11-vercel-waiting", "12-vercel-connected",
         "13-phone-width", "14-manus-needs-attention",
         "15-signed-out-again"]
ALNUM = string.ascii_letters + string.digits
OAUTH_PORT = 53682
# The browser script's whole run; the sanitized build is slower.
BROWSER_TIMEOUT = 240 if cdtest.SANITIZED else 150


def gh_token():
    return "ghp_" + "".join(secrets.choice(ALNUM) for _ in range(36))


MANUS_KEY = "manus_" + secrets.token_hex(16)
GH_PAT, GH_BAD = gh_token(), gh_token()
GH_PAT_LOGIN, GH_DEVICE_LOGIN = "octo-console", "octo-device"


class Scenario:
    def __init__(self, fake, daemon, open_daemon):
        self.fake = fake
        self.d = daemon
        self.open = open_daemon
        self.base = "http://127.0.0.1:%d" % daemon.port
        self.secrets = {MANUS_KEY, GH_PAT, GH_BAD}
        self.asked = []

    # -- the provider side, for the browser script

    def answer(self, req):
        op = req.get("op")
        self.asked.append(op)
        if op == "follow":
            # Google's consent at the fake: the URL a person would paste.
            location = self.fake.follow_auth_url(req["url"])
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
            self.secrets |= set(q.get("code", []))
            return {"location": location}
        if op == "github_approve":
            r = self.fake.github_approve(login=req["login"],
                                         user_code=req["user_code"])
            return {"ok": bool(r.get("ok"))}
        if op == "vercel_authorize":
            location = self.fake.vercel_authorize(req["url"])
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
            self.secrets |= set(q.get("code", []))
            return {"location": location}
        if op == "manus_revoke":
            self.fake.revoke_manus_key(MANUS_KEY)
            return {"ok": True}
        return {"error": "unknown op %r" % op}


@contextlib.contextmanager
def scenario():
    for path, what in ((CHROMIUM, "chromium"), (NODE, "node"),
                       (RCLONE, "rclone"), (GH, "gh")):
        if not os.access(path, os.X_OK):
            cdtest.skip_all("no %s at %s (scripts/deps.sh test installs it)"
                            % (what, path))
    if not os.path.isdir(os.path.join(E2E, "node_modules", "playwright-core")):
        cdtest.skip_all("no tests/e2e/node_modules/playwright-core (run "
                        "scripts/deps.sh test)")
    with cdtest.Fake() as fake:
        d = cdtest.Daemon(fake, files={"mcp-tokens.json":
                                       '{"other": {"x": 1}}\n'},
                          start=False)
        # Links, the Vercel redirect and the Origin check name this port.
        base = "http://127.0.0.1:%d" % d.port
        d._write_config(fake, {"public_url": base,
                               "vercel_redirect_uri": base + "/callback"})
        try:
            d.start()
            fake.add_manus_key(MANUS_KEY)
            fake.add_github_pat(GH_PAT, GH_PAT_LOGIN, 4242, "Console Tester")
            with cdtest.Daemon(fake, overrides={"api_auth": "none"},
                               start=False) as o:
                o.read_api_token = lambda: None     # it writes none
                o.start()
                yield Scenario(fake, d, o)
        finally:
            d.stop()


# ---------------------------------------------------------------------------


def mint_link(s):
    """POST /api/console/login with the API token: a one-time link on
    public_url; only the API token can mint one."""
    status, _, body, raw = s.d.api("POST", "/api/console/login")
    url = body.get("url") if isinstance(body, dict) else None
    if not ok(status == 200 and isinstance(url, str) and
              url.startswith(s.base + "/login?token="),
              "POST /api/console/login with the API token answers a link "
              "on public_url"):
        diag("got %r %r" % (status, raw[:200]))
        return None
    is_(body.get("expires_in"), 600, "the link lives 600 s")
    status, _, _, _ = s.d.api("POST", "/api/console/login", token=False)
    is_(status, 401, "without the API token no link is minted (401)")
    return url


def run_browser(s, link):
    """Run console.mjs, relay its checks, answer its questions."""
    os.makedirs(SHOT_DIR, exist_ok=True)
    for name in SHOTS:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(SHOT_DIR, name + ".png"))
    if not cdtest.wait_port_free(OAUTH_PORT, 30):
        ok(False, "port %d is free for the Drive flow" % OAUTH_PORT)
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                "no_proxy")}
    env.update(CONSOLE_BASE=s.base, CONSOLE_LINK=link, SHOT_DIR=SHOT_DIR,
               CONSOLE_OPEN_BASE="http://127.0.0.1:%d" % s.open.port,
               MANUS_KEY=MANUS_KEY, GH_PAT=GH_PAT, GH_BAD=GH_BAD,
               GH_PAT_LOGIN=GH_PAT_LOGIN, GH_DEVICE_LOGIN=GH_DEVICE_LOGIN,
               CHROMIUM=CHROMIUM, E2E_SLOW="3" if cdtest.SANITIZED else "1")
    t0 = time.monotonic()
    proc = subprocess.Popen([NODE, SCRIPT], cwd=E2E, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    killer = threading.Timer(BROWSER_TIMEOUT, _kill_group, (proc,))
    killer.start()
    relayed = 0
    try:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("@@ask "):
                try:
                    reply = s.answer(json.loads(line[6:]))
                except Exception as e:  # the script reports it
                    reply = {"error": "%s: %s" % (type(e).__name__, e)}
                proc.stdin.write((json.dumps(reply) + "\n").encode())
                proc.stdin.flush()
            elif line.startswith("ok - "):
                ok(True, line[5:])
                relayed += 1
            elif line.startswith("not ok - "):
                ok(False, line[9:])
                relayed += 1
            else:
                diag(line[2:] if line.startswith("# ") else line)
        rc = proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
    took = time.monotonic() - t0
    diag("browser script: %d checks in %.1f s" % (relayed, took))
    is_(rc, 0, "the browser script ran to the end with every check passed")
    ok(relayed >= 100, "the browser script ran its checks (%d)" % relayed)


def _kill_group(proc):
    """The script and the Chromium it started, all in its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def browser(s):
    link = mint_link(s)
    if link is None:
        return
    run_browser(s, link)
    for name in SHOTS:
        path = os.path.join(SHOT_DIR, name + ".png")
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except FileNotFoundError:
            head = b""
        ok(head == b"\x89PNG\r\n\x1a\n", "screenshot %s.png saved" % name)


def stored_state(s):
    """What the page did is in the files: Manus saved then disconnected,
    GitHub from the device flow, Vercel from OAuth, no Drive remote left;
    the unrelated entry kept."""
    tokens = s.d.read_tokens() or {}
    is_(tokens.get("other"), {"x": 1}, "mcp-tokens.json keeps the other "
        "entry")
    ok("manus" not in tokens, "manus was disconnected from the page")
    gh = tokens.get("github") or {}
    is_(gh.get("auth_method"), "cli", "github is stored from the device "
        "flow (auth_method cli)")
    vc = tokens.get("vercel") or {}
    is_(vc.get("auth_method"), "oauth", "vercel is stored from OAuth")
    conf = os.path.join(s.d.workspace, "rclone.conf")
    try:
        with open(conf, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    ok("[personal]" not in text and "[spare]" not in text,
       "rclone.conf has no remote left by the page")
    ok(sorted(set(s.asked)) == ["follow", "github_approve", "manus_revoke",
                                "vercel_authorize"],
       "the script asked for the four provider steps (%r)" % s.asked)


def no_secret_leaks(s):
    cdtest.scrub_check(s.d.log_text(), s.secrets,
                       "no key, token or code the page handled is in the "
                       "daemon's log")
    cdtest.scrub_check(s.d.state_files_text(), s.secrets,
                       "nor in the state directory")


if __name__ == "__main__":
    cdtest.run([browser, stored_state, no_secret_leaks], fixture=scenario)
