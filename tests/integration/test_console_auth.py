#!/usr/bin/python3
"""The web console's server side, over plain HTTP (the browser tests are
test_console.py): its files and their headers, the one-time sign-in links,
the cookie session, and the cross-site request checks.

- /, /console.css, /console.js need no token and carry a strict CSP
  (no inline script or style, nothing from another origin), nosniff,
  DENY framing, no referrer, an ETag (304 on If-None-Match);
- the link printed at start (the daemon runs with -d, as make run does)
  works once, appears once on the terminal and in no log line;
- POST /api/console/login mints a link (API token only; a signed-in
  browser cannot); a link works once; unknown ones get 403;
- the cookie is HttpOnly, SameSite=Strict, Path=/, 256 bits;
- with the cookie: GETs work; anything else needs X-CSRF-Token and is
  refused (403, nothing stored) without it, with a wrong one, from another
  Origin or with Sec-Fetch-Site: cross-site; logout ends it;
- a request with an Authorization header is judged by it alone;
- sessions and links are bounded (the oldest goes);
- an http restart signs everyone out and does not bring back a used link.
"""

import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import cdtest  # noqa: E402
from cdtest import diag, is_, ok  # noqa: E402

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self'; connect-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
LINK = re.compile(r"(https?://\S+)/login\?token=([0-9a-f]{64})")


def req(d, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def mint(d):
    st, _, body = req(d, "POST", "/api/console/login",
                      {"Authorization": "Bearer " + d.token})
    if st != 200:
        return None
    url = json.loads(body)["url"]
    return url[url.index("/login"):]


def sign_in(d, path):
    """(cookie "name=value", csrf) after opening the link, or (None, None)."""
    st, h, _ = req(d, "GET", path)
    if st != 303 or "set-cookie" not in h:
        return None, None
    cookie = h["set-cookie"].split(";")[0]
    st, _, body = req(d, "GET", "/api/console/session", {"Cookie": cookie})
    return cookie, json.loads(body)["csrf"] if st == 200 else None


def files_and_headers(fx):
    _, d = fx
    for path, ctype in (("/", "text/html"), ("/console.css", "text/css"),
                        ("/console.js", "text/javascript")):
        st, h, body = req(d, "GET", path)
        is_(st, 200, "GET %s without a token: 200" % path)
        ok(h.get("content-type", "").startswith(ctype),
           "%s is %s" % (path, ctype))
        is_(h.get("content-security-policy"), CSP, "%s: the strict CSP"
            % path)
        is_(h.get("x-content-type-options"), "nosniff", "%s: nosniff" % path)
        is_(h.get("x-frame-options"), "DENY", "%s: no framing" % path)
        is_(h.get("referrer-policy"), "no-referrer", "%s: no referrer"
            % path)
        ok(body, "%s has content" % path)
        st, _, body = req(d, "GET", path, {"If-None-Match": h.get("etag")})
        is_(st, 304, "%s with its ETag: 304" % path)
    st, _, body = req(d, "GET", "/")
    page = body.decode()
    ok(not re.search(r"<script(?![^>]*\bsrc=)", page),
       "index.html has no inline script")
    ok(not re.search(r"\sstyle=|<style", page),
       "index.html has no inline style")
    ok(not re.search(r"(src|href)=\"(https?:)?//", page),
       "index.html loads nothing from another origin")
    st, _, _ = req(d, "POST", "/")
    is_(st, 405, "POST / is 405")
    st, _, _ = req(d, "GET", "/console.txt")
    is_(st, 404, "an unknown file is 404")


def startup_link(fx):
    _, d = fx
    """make run's link: printed once on the terminal, never in a log line,
    valid once."""
    out = d.log_text()
    found = LINK.findall(out)
    if not ok(len(found) == 1, "the start printed one sign-in link"):
        return
    tok = found[0][1]
    logged = [ln for ln in out.splitlines() if tok in ln and
              not ln.strip().startswith("http")]
    ok(not logged, "the link's token is in no log line")
    cookie, csrf = sign_in(d, "/login?token=" + tok)
    ok(cookie and csrf, "the printed link signs a browser in")
    st, _, _ = req(d, "GET", "/login?token=" + tok)
    is_(st, 403, "the printed link works only once")
    ok(d.log_text().count(tok) == 1, "the token was not logged on use")


def minted_links(fx):
    _, d = fx
    st, _, _ = req(d, "POST", "/api/console/login")
    is_(st, 401, "minting a link needs the API token")
    path = mint(d)
    ok(path and re.fullmatch(r"/login\?token=[0-9a-f]{64}", path),
       "POST /api/console/login gives a /login?token= link")
    st, h, body = req(d, "GET", path)
    is_(st, 303, "opening it redirects")
    is_(h.get("location"), "/", "to the console")
    cookie = h.get("set-cookie", "")
    attrs = [a.strip() for a in cookie.split(";")]
    ok(re.fullmatch(r"cd_console=[0-9a-f]{64}", attrs[0]),
       "the cookie is cd_console with 256 random bits")
    for a in ("HttpOnly", "SameSite=Strict", "Path=/"):
        ok(a in attrs, "the cookie is %s" % a)
    st, _, body = req(d, "GET", path)
    is_(st, 403, "the same link a second time: 403")
    ok(b"already used" in body, "with a page that says why")
    for bad in ("/login", "/login?token=", "/login?token=" + "0" * 64,
                "/login?token=%00", "/login?token=" + "a" * 5000):
        st, _, _ = req(d, "GET", bad)
        is_(st, 403, "GET %s: 403" % bad[:40])
    cookie2, _ = sign_in(d, mint(d))
    c1 = attrs[0]
    st, _, _ = req(d, "POST", "/api/console/login", {"Cookie": c1,
                                                      "X-CSRF-Token": "x"})
    ok(st == 403, "a signed-in browser cannot mint links (%d)" % st)
    ok(cookie2 and cookie2 != c1, "each sign-in gets its own cookie")


def cookie_session(fx):
    fake, d = fx
    cookie, csrf = sign_in(d, mint(d))
    if not ok(cookie and csrf and re.fullmatch(r"[0-9a-f]{64}", csrf),
              "signed in, with a 256-bit CSRF token"):
        return
    st, _, body = req(d, "GET", "/api/connectors", {"Cookie": cookie})
    is_(st, 200, "GET /api/connectors with the cookie")
    st, _, _ = req(d, "GET", "/api/connectors",
                   {"Cookie": "cd_console=" + "0" * 64})
    is_(st, 401, "a made-up cookie: 401")
    st, _, _ = req(d, "GET", "/api/connectors", {"Cookie": cookie + "x"})
    is_(st, 401, "a cookie with one character more: 401")
    st, _, _ = req(d, "GET", "/api/connectors",
                   {"Cookie": "a=b; " + cookie + "; c=d"})
    is_(st, 200, "the cookie among others")
    key = "manus_" + secrets.token_hex(16)
    fake.add_manus_key(key)
    body = json.dumps({"token": key})
    before = d.tokens_bytes()
    origin = "http://127.0.0.1:%d" % d.port
    for what, hdrs in (
            ("no CSRF token", {}),
            ("a wrong CSRF token", {"X-CSRF-Token": "0" * 64}),
            ("another Origin", {"X-CSRF-Token": csrf,
                                "Origin": "http://evil.example"}),
            ("Sec-Fetch-Site: cross-site", {"X-CSRF-Token": csrf,
                                            "Sec-Fetch-Site": "cross-site"}),
            ("Origin null", {"X-CSRF-Token": csrf, "Origin": "null"})):
        h = {"Cookie": cookie, "Content-Type": "application/json"}
        h.update(hdrs)
        st, _, rb = req(d, "POST", "/api/connectors/manus/token", h, body)
        is_(st, 403, "cookie save with %s: 403" % what)
        ok(json.loads(rb).get("error"), "with a JSON sentence")
    is_(d.tokens_bytes(), before, "nothing was stored by a refused request")
    st, _, _ = req(d, "DELETE", "/api/connectors/gdrive/remotes/x",
                   {"Cookie": cookie})
    is_(st, 403, "a DELETE with the cookie and no CSRF token: 403")
    st, _, rb = req(d, "POST", "/api/connectors/manus/token",
                    {"Cookie": cookie, "X-CSRF-Token": csrf,
                     "Origin": origin, "Sec-Fetch-Site": "same-origin",
                     "Content-Type": "application/json"}, body)
    is_(st, 200, "the console's own save (token, origin, same-origin)")
    # The header decides when it is there: a valid bearer needs no CSRF
    # token, a wrong one is 401 even with a good cookie.
    st, _, _ = req(d, "POST", "/api/connectors/manus/reconnect",
                   {"Cookie": cookie, "Authorization": "Bearer " + d.token,
                    "Content-Type": "application/json"}, "{}")
    ok(st != 403 and st != 401, "bearer with a cookie: judged by the "
       "bearer (%d)" % st)
    st, _, _ = req(d, "GET", "/api/connectors",
                   {"Cookie": cookie, "Authorization": "Bearer nope"})
    is_(st, 401, "a wrong bearer is 401 even with a good cookie")
    st, _, _ = req(d, "GET", "/api/console/session",
                   {"Authorization": "Bearer " + d.token})
    is_(st, 400, "the session path is for the cookie only")
    st, _, _ = req(d, "POST", "/api/console/logout", {"Cookie": cookie})
    is_(st, 403, "logout without the CSRF token: 403")
    st, h, _ = req(d, "POST", "/api/console/logout",
                   {"Cookie": cookie, "X-CSRF-Token": csrf})
    is_(st, 200, "logout")
    ok("Max-Age=0" in h.get("set-cookie", ""), "and the cookie is cleared")
    st, _, _ = req(d, "GET", "/api/connectors", {"Cookie": cookie})
    is_(st, 401, "after logout the cookie is dead")


def bounded(fx):
    _, d = fx
    links = [mint(d) for _ in range(9)]
    st, _, _ = req(d, "GET", links[0])
    is_(st, 403, "nine links minted: the oldest was dropped")
    st, _, _ = req(d, "GET", links[8])
    is_(st, 303, "the newest works")
    cookies = [sign_in(d, mint(d))[0] for _ in range(17)]
    st, _, _ = req(d, "GET", "/api/connectors", {"Cookie": cookies[0]})
    is_(st, 401, "17 sign-ins: the oldest session was signed out")
    st, _, _ = req(d, "GET", "/api/connectors", {"Cookie": cookies[16]})
    is_(st, 200, "the newest is signed in")


def http_restart(fx):
    _, d = fx
    cookie, _ = sign_in(d, mint(d))
    path = mint(d)
    http_pid = d.pid_of("http")
    os.kill(http_pid, signal.SIGKILL)
    ok(d.wait_role("http", not_pid=http_pid, timeout=10),
       "http restarted")
    ok(d.wait_healthy(10), "healthz again")
    st, _, _ = req(d, "GET", "/api/connectors", {"Cookie": cookie})
    is_(st, 401, "an http restart signs the browser out")
    st, _, _ = req(d, "GET", path)
    is_(st, 403, "and an unused link from before is gone too")
    tok = LINK.findall(d.log_text())
    if tok:
        st, _, _ = req(d, "GET", "/login?token=" + tok[0][1])
        is_(st, 403, "the start's link does not come back with a new http")


def no_secret_in_log(fx):
    _, d = fx
    text = d.log_text()
    for m in re.findall(r"[0-9a-f]{64}", text):
        diag("a 64-hex string in the log: %s..." % m[:8])
    ok(len(re.findall(r"[0-9a-f]{64}", text)) == 1,
       "no cookie, CSRF token or minted link in the log (only the start's "
       "printed link)")
    ok("/login" in text and "?token" not in text.replace(
        "/login?token=", "", 1), "the access log has /login without its "
       "query")


@contextlib.contextmanager
def scenario():
    with cdtest.Fake() as fake, cdtest.Daemon(fake) as d:
        yield fake, d


def cross_site_without_auth(fx):
    """api_auth = none: a browser on another site could post a form to the
    API. Requests that change something and say they come from another
    origin or site are refused; a program (no Origin) and the configured
    ui_origin are not."""
    fake, _ = fx
    ui = "http://ui.example:3000"
    d = cdtest.Daemon(fake, overrides={"api_auth": "none", "ui_origin": ui})
    try:
        before = d.tokens_bytes()
        key = "manus_" + secrets.token_hex(16)
        fake.add_manus_key(key)
        body = json.dumps({"token": key})
        for what, hdrs in (
                ("a form from another origin",
                 {"Origin": "http://evil.example",
                  "Content-Type": "text/plain"}),
                ("Sec-Fetch-Site: cross-site",
                 {"Sec-Fetch-Site": "cross-site"}),
                ("Sec-Fetch-Site: same-site (another port)",
                 {"Sec-Fetch-Site": "same-site",
                  "Origin": "http://127.0.0.1:1"})):
            st, _, _ = req(d, "POST", "/api/connectors/manus/token", hdrs,
                           body)
            is_(st, 403, "api_auth none, %s: 403" % what)
            st, _, _ = req(d, "POST", "/api/connectors/manus/disconnect",
                           hdrs, "{}")
            is_(st, 403, "api_auth none, %s: disconnect 403" % what)
        is_(d.tokens_bytes(), before, "api_auth none: nothing changed")
        st, _, _ = req(d, "POST", "/api/connectors/manus/token",
                       {"Origin": ui, "Sec-Fetch-Site": "cross-site"}, body)
        is_(st, 200, "api_auth none: the configured ui_origin may post")
        st, _, _ = req(d, "POST", "/api/connectors/manus/token", {}, body)
        is_(st, 200, "api_auth none: a program (no Origin) may post")
    finally:
        d.stop()


def bearer_from_another_origin(fx):
    _, d = fx
    st, _, _ = req(d, "POST", "/api/connectors/manus/disconnect",
                   {"Authorization": "Bearer " + d.token,
                    "Origin": "http://evil.example"}, "{}")
    is_(st, 403, "even with the bearer, a browser request from another "
        "origin is refused")


def main():
    cdtest.run([files_and_headers, startup_link, minted_links,
                cookie_session, bounded, http_restart, no_secret_in_log,
                cross_site_without_auth, bearer_from_another_origin],
               fixture=scenario)


if __name__ == "__main__":
    main()
