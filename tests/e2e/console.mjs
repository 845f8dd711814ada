// The web console in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core; no browser is ever downloaded), against the real
// daemon and the fake providers that tests/integration/test_console.py
// started. That file runs this one and relays its output.
//
// Output, one line each:
//   ok - <name> / not ok - <name>   a check (the Python side numbers them)
//   # <text>                        diagnostics
//   @@ask {"op": ..., ...}          a request to the Python side, which
//                                   answers one JSON line on stdin: play
//                                   the provider (follow an authorize URL
//                                   at the fake, approve a device code)
//
// Environment: CONSOLE_BASE (http://127.0.0.1:<port>), CONSOLE_LINK (a
// fresh one-time sign-in link), SHOT_DIR, MANUS_KEY, GH_PAT, GH_PAT_LOGIN,
// GH_BAD, GH_DEVICE_LOGIN, CONSOLE_OPEN_BASE (another daemon, with
// api_auth = none), CHROMIUM (default /usr/bin/chromium).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('CONSOLE_BASE');
const OPEN_BASE = env('CONSOLE_OPEN_BASE');   // a daemon with api_auth = none
const LINK = env('CONSOLE_LINK');
const SHOTS = env('SHOT_DIR');
const MANUS_KEY = env('MANUS_KEY');
const GH_PAT = env('GH_PAT');
const GH_PAT_LOGIN = env('GH_PAT_LOGIN');
const GH_BAD = env('GH_BAD');
const GH_DEVICE_LOGIN = env('GH_DEVICE_LOGIN');
const VERCEL_HOST = env('VERCEL_WEB_HOST', 'vercel.com');
const SLOW = Number(env('E2E_SLOW', '1'));  // a factor for timeouts (ASan)
const T = (ms) => ms * SLOW;

// ---------------------------------------------------------------------------
// TAP and the line protocol with the Python side

let failures = 0;
const say = (line) => process.stdout.write(line + '\n');
const diag = (text) => String(text).split('\n').forEach((l) => say('# ' + l));
function ok(cond, name) {
  if (!cond) failures++;
  say(`${cond ? 'ok' : 'not ok'} - ${name}`);
  return !!cond;
}
function is(got, want, name) {
  const good = ok(got === want, name);
  if (!good) {
    diag(`     got: ${JSON.stringify(got)}`);
    diag(`    want: ${JSON.stringify(want)}`);
  }
  return good;
}

const stdin = readline.createInterface({ input: process.stdin });
const answers = [];
let waiter = null;
stdin.on('line', (line) => {
  if (waiter) {
    const w = waiter;
    waiter = null;
    w(line);
  } else answers.push(line);
});
async function ask(op, args = {}) {
  say('@@ask ' + JSON.stringify({ op, ...args }));
  const line = answers.length ? answers.shift()
    : await new Promise((resolve) => { waiter = resolve; });
  const reply = JSON.parse(line);
  if (reply.error) throw new Error(`the Python side could not ${op}: ${reply.error}`);
  return reply;
}

// A group of checks: an exception fails it (with the message), never the
// whole file.
async function step(name, fn) {
  diag(`--- ${name}`);
  try {
    await fn();
  } catch (e) {
    ok(false, `${name}: ran to the end without an exception`);
    diag(String(e && e.stack || e).split('\n').slice(0, 6).join('\n'));
  }
}

// ---------------------------------------------------------------------------
// The page

const card = (c) => `#card-${c}`;
const role = (c, r) => `${card(c)} [data-role="${r}"]`;

async function text(page, sel) {
  return (await page.locator(sel).first().textContent()) ?? '';
}

// Wait until the element's text contains want (a string or a RegExp).
async function waitText(page, sel, want, timeout = T(10000)) {
  const src = want instanceof RegExp ? { re: want.source, flags: want.flags } : { s: want };
  try {
    await page.waitForFunction(([s, w]) => {
      const el = document.querySelector(s);
      if (!el) return false;
      const t = el.textContent || '';
      return w.re !== undefined ? new RegExp(w.re, w.flags).test(t) : t.includes(w.s);
    }, [sel, src], { timeout, polling: 100 });
    return true;
  } catch (e) {
    diag(`waited ${timeout} ms for ${sel} to show ${want}; it shows ${JSON.stringify(await text(page, sel).catch(() => '?'))}`);
    return false;
  }
}

async function visible(page, sel, timeout = T(10000)) {
  try {
    await page.locator(sel).first().waitFor({ state: 'visible', timeout });
    return true;
  } catch (e) {
    return false;
  }
}

async function shot(page, name, sel = null) {
  const file = path.join(SHOTS, name + '.png');
  if (sel) await page.locator(sel).screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: true });
  diag(`screenshot ${file}`);
}

async function ready(page) {
  await page.waitForSelector('body[data-ready="true"]', { timeout: T(15000) });
}

// ---------------------------------------------------------------------------

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-e2e-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  timeout: T(30000),
});
context.setDefaultTimeout(T(10000));
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });

// Nothing the page loads leaves this machine; a provider's page is played
// by the Python side (the fake), everything else is refused.
const outside = [];
const ours = (href) => href.startsWith(BASE + '/') || href.startsWith(OPEN_BASE + '/');
await context.route((url) => !ours(url.href) && url.protocol !== 'about:' && url.protocol !== 'data:',
  async (route) => {
    const url = route.request().url();
    const host = new URL(url).hostname;
    if (host === VERCEL_HOST && route.request().isNavigationRequest()) {
      const { location } = await ask('vercel_authorize', { url });
      await route.fulfill({ status: 302, headers: { Location: location } });
      return;
    }
    if (url.startsWith('http://127.0.0.1:') && route.request().isNavigationRequest()) {
      await route.continue();   // the callback on the daemon's own port
      return;
    }
    outside.push(url);
    await route.abort();
  });

const page = context.pages()[0] || await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text()))
    problems.push('console: ' + m.text());
});
// Every confirm() (delete, disconnect) is accepted; counted to check
// that it was asked.
let dialogs = 0;
page.on('dialog', (d) => { dialogs++; d.accept(); });

await step('signed out', async () => {
  const res = await page.goto(BASE + '/');
  is(res.status(), 200, 'GET / answers 200 without a session');
  const csp = res.headers()['content-security-policy'] || '';
  ok(/default-src 'none'/.test(csp) && /script-src 'self'/.test(csp) &&
     !/unsafe-inline|unsafe-eval/.test(csp),
     `the page is served with a strict CSP (${csp})`);
  ok(await visible(page, '#signed-out'), 'without a session the page says it is not signed in');
  ok(await page.locator('#cards').isHidden(), 'and shows no card');
  ok((await text(page, '#signin-curl')).includes(BASE + '/api/console/login'),
    'and tells how to mint a sign-in link for this address');
  await shot(page, '01-signed-out');
});

await step('sign in through the one-time link', async () => {
  const res = await page.goto(LINK);
  is(new URL(page.url()).pathname, '/', 'the link lands on the console (303 to /)');
  ok(res && res.ok(), 'and the console loads');
  await ready(page);
  const cookies = await context.cookies(BASE);
  const c = cookies.find((k) => k.name === 'cd_console');
  ok(c, 'a cd_console cookie is set');
  if (c) {
    ok(c.httpOnly, 'the cookie is HttpOnly');
    is(c.sameSite, 'Strict', 'the cookie is SameSite=Strict');
    is(c.path, '/', 'the cookie is for Path=/');
  }
  is(await page.evaluate(() => document.cookie), '', 'the page\'s script cannot read the cookie');
  for (const c of ['gdrive', 'onedrive', 'github', 'vercel', 'manus'])
    is((await text(page, role(c, 'badge'))).trim(), 'Not connected', `${c}: the card says not connected`);
  await shot(page, '02-all-disconnected');

  const again = await context.newPage();
  const r2 = await again.goto(LINK);
  is(r2.status(), 403, 'the same link is refused the second time (403)');
  ok(/does not work/i.test(await again.textContent('body')), 'with a page that says so');
  await again.close();
});

await step('Manus by keyboard', async () => {
  await page.bringToFront();
  await page.evaluate(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); });
  let reached = false;
  const order = [];
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => {
      const a = document.activeElement;
      return a ? (a.id || a.getAttribute('data-role') || a.textContent.trim() || a.tagName) : '';
    });
    order.push(id);
    reached = id === 'manus-token';
  }
  if (!ok(reached, 'Tab reaches the Manus key field'))
    diag('tab order: ' + order.join(', '));
  ok(order.indexOf('gdrive-name') < order.indexOf('manus-token') &&
     order.indexOf('github-token') < order.indexOf('manus-token'),
    'in the page\'s order (Drive, ..., GitHub, ..., Manus)');
  const outline = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return `${s.outlineStyle} ${s.outlineWidth}`;
  });
  ok(!/^none/.test(outline) && !/ 0px$/.test(outline), `the focused field shows a focus outline (${outline})`);
  const attrs = await page.evaluate(() => {
    const f = document.getElementById('manus-token');
    return [f.type, f.autocomplete, document.querySelector('label[for="manus-token"]')?.textContent.trim()];
  });
  is(attrs.join('|'), 'password|off|Manus API key', 'the key field is a labelled password field, autocomplete off');
  await page.keyboard.type(MANUS_KEY);
  await page.keyboard.press('Enter');
  ok(await waitText(page, role('manus', 'badge'), 'Connected'), 'Enter saves the key: Manus is connected');
  ok(await waitText(page, role('manus', 'live'), 'Connected'), 'the card says so in its live region');
  is(await page.inputValue('#manus-token'), '', 'the key field is cleared');
  ok(!(await page.content()).includes(MANUS_KEY), 'the key appears nowhere in the page');
  ok(await page.locator(role('manus', 'disconnect')).isVisible(), 'the connected card offers Disconnect');
  ok(await page.locator(role('manus', 'reconnect')).isVisible(), 'and Reconnect');
  await shot(page, '03-manus-connected', card('manus'));
});

await step('Manus reconnect', async () => {
  await page.click(role('manus', 'reconnect'));
  ok(await waitText(page, role('manus', 'live'), 'Still connected'), 'Reconnect re-checks the key: still connected');
});

await step('a rejected GitHub token', async () => {
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/connectors/github/token'));
  await page.fill('#github-token', GH_BAD);
  await page.click(`${role('github', 'token-form')} button[type="submit"]`);
  const res = await answer;
  is(res.status(), 422, 'the API rejects the token (422)');
  const sentence = (await res.json()).error;
  ok(await waitText(page, role('github', 'live'), sentence), 'the card shows the API\'s sentence as is');
  is(await page.getAttribute(role('github', 'live'), 'data-kind'), 'error', 'as an error');
  is((await text(page, role('github', 'badge'))).trim(), 'Not connected', 'GitHub stays not connected');
  is(await page.inputValue('#github-token'), '', 'the token field is cleared after the submit');
  ok(!(await page.content()).includes(GH_BAD), 'the rejected token appears nowhere in the page');
  await shot(page, '04-error-shown', card('github'));
});

await step('save a GitHub token, then disconnect', async () => {
  await page.fill('#github-token', GH_PAT);
  await page.press('#github-token', 'Enter');
  ok(await waitText(page, role('github', 'badge'), 'Connected'), 'a good token connects GitHub');
  ok(await waitText(page, role('github', 'account'), GH_PAT_LOGIN), `the card shows the login (${GH_PAT_LOGIN})`);
  ok((await text(page, role('github', 'account'))).includes('personal access token'), 'and how it was connected');
  ok(!(await page.content()).includes(GH_PAT), 'the token appears nowhere in the page');
  await shot(page, '05-github-connected-token', card('github'));
  const before = dialogs;
  await page.click(role('github', 'disconnect'));
  ok(await waitText(page, role('github', 'badge'), 'Not connected'), 'Disconnect: GitHub is not connected');
  is(dialogs, before + 1, 'Disconnect asked for confirmation first');
  ok(await page.locator(role('github', 'device-start')).isVisible(), 'the card offers to connect again');
  const st = await page.evaluate(async () => (await fetch('/api/connectors/github/status', { credentials: 'same-origin' })).json());
  is(st.connected, false, 'the API agrees: github/status is not connected');
});

await step('GitHub device flow cancelled', async () => {
  const started = page.waitForResponse((r) => r.url().endsWith('/cli/start'));
  await page.click(role('github', 'device-start'));
  await started;
  await visible(page, role('github', 'flow'));
  const cancelled = page.waitForResponse((r) => r.url().endsWith('/cli/cancel'));
  await page.click(`${role('github', 'flow')} [data-role="cancel"]`);
  is((await cancelled).status(), 200, 'Cancel ends the device flow at the API (200)');
  ok(await waitText(page, role('github', 'live'), 'Cancelled'), 'the card says cancelled');
  ok(await page.locator(role('github', 'device-start')).isVisible(), 'and offers to start again');
});

await step('GitHub device flow through approval', async () => {
  await page.click(role('github', 'device-start'));
  ok(await visible(page, role('github', 'flow'), T(20000)), 'Sign in with GitHub shows the device step');
  const code = (await text(page, role('github', 'user-code'))).trim();
  ok(/^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(code), `the user code is shown (${code})`);
  const link = page.locator(role('github', 'verify-link'));
  is(await link.getAttribute('href'), 'https://github.com/login/device', 'with the verification link');
  is(await link.getAttribute('target'), '_blank', 'which opens in a new tab');
  is(await link.getAttribute('rel'), 'noopener noreferrer', 'with rel=noopener noreferrer');
  await shot(page, '06-github-device-code', card('github'));
  await page.click(role('github', 'copy'));
  ok(await waitText(page, role('github', 'live'), /copied|Copy the selected/), 'Copy answers');
  const clip = await page.evaluate(() => navigator.clipboard.readText().catch(() => null));
  if (clip !== null) is(clip, code, 'Copy puts the code on the clipboard');
  const r = await ask('github_approve', { user_code: code, login: GH_DEVICE_LOGIN });
  ok(r.ok, 'the fake GitHub approved the code');
  ok(await waitText(page, role('github', 'badge'), 'Connected', T(30000)), 'the card sees the approval: connected');
  ok(await waitText(page, role('github', 'account'), GH_DEVICE_LOGIN), `as ${GH_DEVICE_LOGIN}`);
  ok(await page.locator(role('github', 'flow')).isHidden(), 'the device step is gone');
  await shot(page, '07-github-connected', card('github'));
});

await step('Drive flow through paste', async () => {
  await page.fill('#gdrive-name', 'personal');
  await page.click(`${role('gdrive', 'start-form')} button[type="submit"]`);
  ok(await visible(page, role('gdrive', 'auth-link'), T(30000)), 'Connect leads to the provider link (awaiting_oauth)');
  const link = page.locator(role('gdrive', 'auth-link'));
  const href = await link.getAttribute('href');
  ok(href && href.startsWith('https://accounts.google.com/'), `the link is Google's (${(href || '').slice(0, 48)}...)`);
  is(await link.getAttribute('target'), '_blank', 'it opens in a new tab');
  is(await link.getAttribute('rel'), 'noopener noreferrer', 'with rel=noopener noreferrer');
  is(await page.getAttribute('#gdrive-paste', 'type'), 'password', 'the paste box is a password field');
  await shot(page, '08-drive-awaiting-paste', card('gdrive'));

  // Another authorization's URL: the API's sentence, and the flow lives on.
  const bad = page.waitForResponse((r) => r.url().endsWith('/submit'));
  await page.fill('#gdrive-paste', 'http://localhost:53682/?state=not-this-session&code=4/0wrong');
  await page.press('#gdrive-paste', 'Enter');
  const badRes = await bad;
  is(badRes.status(), 400, 'a URL with another state is refused (400)');
  ok(await waitText(page, role('gdrive', 'live'), (await badRes.json()).error), 'the card shows the API\'s sentence');
  ok(await page.locator(role('gdrive', 'paste-form')).isVisible(), 'and still offers the paste box');
  await shot(page, '09-drive-paste-refused', card('gdrive'));

  const { location } = await ask('follow', { url: href });
  ok(location.includes('code='), 'the fake Google redirected to rclone\'s URL with a code');
  await page.fill('#gdrive-paste', location);
  await page.click(`${role('gdrive', 'paste-form')} button[type="submit"]`);
  is(await page.inputValue('#gdrive-paste'), '', 'the paste box is cleared after the submit');
  ok(await waitText(page, role('gdrive', 'live'), 'Connected', T(30000)), 'the flow completes');
  ok(await waitText(page, role('gdrive', 'remotes'), 'personal'), 'the remote is listed');
  is((await text(page, role('gdrive', 'badge'))).trim(), 'Connected', 'Google Drive is connected');
  ok(await page.locator(role('gdrive', 'start-form')).isVisible(), 'the name field is back for another remote');
  is(await page.locator(role('onedrive', 'remotes') + ' li').count(), 0, 'OneDrive lists no drive remote');
  await shot(page, '10-drive-completed', card('gdrive'));
});

await step('Drive name already in use, and cancel', async () => {
  const r = page.waitForResponse((x) => x.url().endsWith('/api/connectors/gdrive/remotes') && x.request().method() === 'POST');
  await page.fill('#gdrive-name', 'personal');
  await page.press('#gdrive-name', 'Enter');
  const res = await r;
  is(res.status(), 409, 'starting with a name in use answers 409');
  ok(await waitText(page, role('gdrive', 'live'), (await res.json()).error), 'the card shows the API\'s sentence');

  await page.fill('#gdrive-name', 'spare');
  await page.press('#gdrive-name', 'Enter');
  ok(await visible(page, role('gdrive', 'auth-link'), T(30000)), 'another flow reaches awaiting_oauth');

  // OneDrive meanwhile: the callback port is held, the API says so.
  const busy = page.waitForResponse((x) => x.url().endsWith('/api/connectors/onedrive/remotes') && x.request().method() === 'POST');
  await page.fill('#onedrive-name', 'work');
  await page.press('#onedrive-name', 'Enter');
  const busyRes = await busy;
  is(busyRes.status(), 409, 'OneDrive while the Drive flow holds port 53682: 409');
  ok(await waitText(page, role('onedrive', 'live'), (await busyRes.json()).error), 'the OneDrive card shows the API\'s sentence');
  ok(await page.locator(role('onedrive', 'start-form')).isVisible(), 'and keeps its name field for a later try');
  await shot(page, '10b-onedrive-port-busy', card('onedrive'));
  const cancelled = page.waitForResponse((x) => x.url().endsWith('/cancel'));
  await page.click(`${role('gdrive', 'flow')} [data-role="cancel"]`);
  is((await cancelled).status(), 200, 'Cancel ends it at the API (200)');
  ok(await waitText(page, role('gdrive', 'live'), 'Cancelled'), 'the card says cancelled');
  is(await page.locator(role('gdrive', 'remotes') + ' li').count(), 1, 'the existing remote is still listed');
});

await step('Drive remote deleted', async () => {
  const before = dialogs;
  const del = page.waitForResponse((x) => x.request().method() === 'DELETE');
  await page.click(`${role('gdrive', 'remotes')} button:has-text("Delete")`);
  is((await del).status(), 204, 'Delete answers 204');
  is(dialogs, before + 1, 'after a confirmation');
  ok(await waitText(page, role('gdrive', 'badge'), 'Not connected'), 'Google Drive is not connected any more');
  is(await page.locator(role('gdrive', 'remotes') + ' li').count(), 0, 'no remote listed');
});

await step('Vercel through its authorization page and /callback', async () => {
  const popup = context.waitForEvent('page', { timeout: T(10000) });
  await page.click(role('vercel', 'oauth-start'));
  const win = await popup;
  ok(win, 'Connect with Vercel opens a window');
  ok(await visible(page, role('vercel', 'flow')), 'the card waits, with a link in case no window opened');
  await shot(page, '11-vercel-waiting', card('vercel'));
  await win.waitForLoadState('load', { timeout: T(20000) }).catch(() => {});
  ok(/\/callback\?/.test(win.url()), `the window ends on the daemon's /callback (${win.url().split('?')[0]})`);
  ok(/Vercel connected/i.test(await win.textContent('body').catch(() => '')), 'whose page says Vercel is connected');
  await win.close();
  ok(await waitText(page, role('vercel', 'badge'), 'Connected', T(15000)), 'the card sees it (status polled): connected');
  ok(await page.locator(role('vercel', 'flow')).isHidden(), 'the waiting step is gone');
  await shot(page, '12-vercel-connected', card('vercel'));
});

await step('cross-site requests', async () => {
  const r = await page.evaluate(async () => {
    const res = await fetch('/api/connectors/manus/disconnect', { method: 'POST', credentials: 'same-origin' });
    return [res.status, await res.json().catch(() => null)];
  });
  is(r[0], 403, 'a POST from the page without X-CSRF-Token is refused (403)');
  ok(r[1] && typeof r[1].error === 'string' && r[1].error.length > 0, `with a sentence (${r[1] && r[1].error})`);
  const w = await page.evaluate(async () => (await fetch('/api/connectors/manus/disconnect', {
    method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': '0'.repeat(64) } })).status);
  is(w, 403, 'and so is one with a wrong token');
  const st = await page.evaluate(async () => (await fetch('/api/connectors/manus/status', { credentials: 'same-origin' })).json());
  is(st.connected, true, 'Manus is still connected');
});

await step('phone width', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.reload();
  await ready(page);
  const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  ok(sw <= cw, `no horizontal scroll at 375 px (scrollWidth ${sw}, clientWidth ${cw})`);
  const xs = await page.$$eval('.card', (els) => els.map((e) => Math.round(e.getBoundingClientRect().left)));
  is(new Set(xs).size, 1, 'the cards are in one column');
  const widest = await page.$$eval('body *', (els) => Math.max(...els.map((e) => e.getBoundingClientRect().right)));
  ok(widest <= 375, `nothing reaches past the right edge (${widest})`);
  const vp = await page.getAttribute('meta[name="viewport"]', 'content');
  ok(/width=device-width/.test(vp || ''), 'the page has a viewport meta');
  await shot(page, '13-phone-width');
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step('Manus reconnect refused', async () => {
  await ask('manus_revoke');
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/connectors/manus/reconnect'));
  await page.click(role('manus', 'reconnect'));
  const res = await answer;
  is(res.status(), 422, 'Reconnect of a revoked key: the API answers 422');
  const sentence = (await res.json()).error;
  ok(await waitText(page, role('manus', 'live'), sentence), 'the card shows the API\'s sentence');
  ok(await waitText(page, role('manus', 'badge'), 'Needs attention'), 'the badge says the key needs attention');
  ok((await text(page, role('manus', 'account'))).includes('no longer works'), 'the account line says the saved key no longer works');
  ok(await page.locator(role('manus', 'disconnect')).isVisible(), 'Disconnect is still offered');
  ok(await page.locator('#manus-token').isVisible(), 'and so is the key field, for a new key');
  await shot(page, '14-manus-needs-attention', card('manus'));
});

await step('Manus disconnect', async () => {
  await page.click(role('manus', 'disconnect'));
  ok(await waitText(page, role('manus', 'badge'), 'Not connected'), 'Disconnect: Manus is not connected');
  ok(await page.locator('#manus-token').isVisible(), 'the key field is back');
});

await step('sign out', async () => {
  await page.click('#signout');
  ok(await visible(page, '#signed-out'), 'Sign out shows the signed-out state');
  const s = await page.evaluate(async () => (await fetch('/api/connectors', { credentials: 'same-origin' })).status);
  is(s, 401, 'the API does not take the old cookie any more (401)');
  await page.reload();
  ok(await visible(page, '#signed-out'), 'a reload stays signed out');
  await shot(page, '15-signed-out-again');
});

await step('a daemon without API authentication', async () => {
  const open = await context.newPage();
  open.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await open.goto(OPEN_BASE + '/');
  await ready(open);
  ok(await open.locator('#cards').isVisible(), 'with api_auth = none the cards show without a sign-in');
  ok((await text(open, '#session-note')).includes('api_auth = none'), 'and the header says API authentication is off');
  ok(await open.locator('#signout').isHidden(), 'with no Sign out button');
  is((await text(open, role('manus', 'badge'))).trim(), 'Not connected', 'the cards read that daemon\'s state');
  await open.close();
});

await step('the page kept its own rules', async () => {
  if (!ok(problems.length === 0, 'no script error and no CSP violation in the whole run'))
    diag(problems.join('\n'));
  if (!ok(outside.length === 0, 'the page loaded nothing from outside (but the provider pages)'))
    diag(outside.join('\n'));
});

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
stdin.close();
process.exit(failures ? 1 : 0);
