// connectord's web console: one card per connector, each doing what the
// API contract (api.md) and the seed document's frontend flow describe.
//
// Rules this file keeps:
// - Server data reaches the page through textContent or attributes only,
//   never innerHTML; links to providers are checked to be http(s).
// - Every request goes to this origin with the session cookie; every
//   non-GET request carries X-CSRF-Token from GET /api/console/session.
// - Secrets (tokens, keys, pasted redirect URLs) are read once from their
//   password field, which is cleared at once, and are never shown.
// - The page works without a mouse: real buttons and forms, focus moved
//   where the next step is, one aria-live region per card.
'use strict';

const API = '/api/connectors';
const RCLONE_POLL_MS = 1000;       // seed document: poll every second
const GH_POLL_DEFAULT_S = 2;       // cli/start gives no interval; 2 s
const VERCEL_POLL_MS = 2000;
const VERCEL_WAIT_MS = 600 * 1000; // the daemon's default session_ttl
const LABELS = {
  gdrive: 'Google Drive', onedrive: 'OneDrive', github: 'GitHub',
  vercel: 'Vercel', manus: 'Manus',
};

const session = { csrf: null, expiresAt: 0, signedIn: false };
const cards = {};

// ---------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One request: resolves to the parsed JSON (null for 204), or rejects with
// an ApiError carrying the API's own sentence.
async function api(path, method = 'GET', body = undefined) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrf)
    headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'connectord could not be reached; check that it is still running.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
  }
  if (!res.ok) {
    const sentence = data && typeof data.error === 'string' && data.error.trim()
      ? data.error
      : `The request failed (HTTP ${res.status}).`;
    if (res.status === 401 && session.signedIn)
      signedOut('Your session has ended (it expired, you signed out, or connectord restarted).');
    throw new ApiError(res.status, sentence);
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Only http(s) links from the API become hrefs.
function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch (e) {
    return null;
  }
}

function accountName(user) {
  if (!user || typeof user !== 'object') return null;
  const handle = user.login || user.username || null;
  const name = typeof user.name === 'string' && user.name ? user.name : null;
  if (handle && name && name !== handle) return `${handle} (${name})`;
  return handle || name || user.email || null;
}

// How a credential was saved (status's auth_method), for the account line.
const METHODS = {
  pat: 'with a personal access token', cli: 'through GitHub sign-in',
  api_token: 'with an access token', oauth: 'through Vercel sign-in',
};

// ---------------------------------------------------------------------------
// What every card has: a badge, an account line, a live region, a busy flag
// (actions are ignored while one runs) and at most one flow at a time.

class Card {
  constructor(name) {
    this.name = name;
    this.label = LABELS[name];
    this.el = document.getElementById('card-' + name);
    this.badge = this.q('badge');
    this.account = this.q('account');
    this.live = this.q('live');
    this.flow = null;
    this.busy = false;
  }

  q(role) {
    return this.el.querySelector(`[data-role="${role}"]`);
  }

  // The card's live region; the same message again is not re-announced.
  say(text, kind = 'info') {
    if (this.live.textContent === text && this.live.dataset.kind === kind) return;
    this.live.dataset.kind = kind;
    this.live.textContent = text;
  }

  // A poll met a daemon that did not answer: say so, and say what the
  // flow waits for again once a poll gets through (flow.waiting).
  troubled(flow, e) {
    flow.troubled = true;
    this.say(e.message + ' Still trying…', 'error');
  }

  recovered(flow) {
    if (!flow.troubled) return;
    flow.troubled = false;
    if (flow.waiting) this.say(flow.waiting);
  }

  fail(err) {
    this.say(err instanceof ApiError ? err.message : String(err && err.message || err), 'error');
  }

  setBadge(text, kind) {
    this.badge.textContent = text;
    this.badge.className = 'badge' + (kind ? ' ' + kind : '');
  }

  // Run one action unless another is running; errors end up in the card.
  async act(fn, button) {
    if (this.busy || !session.signedIn) return;
    this.busy = true;
    this.el.setAttribute('aria-busy', 'true');
    if (button) button.setAttribute('aria-disabled', 'true');
    try {
      await fn();
    } catch (e) {
      this.fail(e);
    } finally {
      this.busy = false;
      this.el.removeAttribute('aria-busy');
      if (button) button.removeAttribute('aria-disabled');
    }
  }

  // A flow is an object whose `stopped` flag every loop checks after each
  // await; stopping the card's flow ends its polling at the next step.
  newFlow(extra = {}) {
    this.stopFlow();
    this.flow = { stopped: false, ...extra };
    return this.flow;
  }

  stopFlow() {
    if (this.flow) this.flow.stopped = true;
    this.flow = null;
  }

  current(flow) {
    return flow === this.flow && !flow.stopped && session.signedIn;
  }
}

// ---------------------------------------------------------------------------
// Google Drive and OneDrive: remotes of rclone.conf, added through a flow
// whose provider link the person opens, then pastes where it ended.

class RcloneCard extends Card {
  constructor(name) {
    super(name);
    this.list = this.q('remotes');
    this.startForm = this.q('start-form');
    this.nameInput = this.startForm.elements.name;
    this.flowBox = this.q('flow');
    this.linkWrap = this.q('link-wrap');
    this.link = this.q('auth-link');
    this.pasteForm = this.q('paste-form');
    this.pasteInput = this.pasteForm.elements.code;
    this.startForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.act(() => this.start(this.nameInput.value.trim(), false),
        this.startForm.querySelector('button'));
    });
    this.pasteForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.act(() => this.submit(), this.pasteForm.querySelector('button'));
    });
    this.q('cancel').addEventListener('click', () => this.cancel());
  }

  summary(entry) {
    const n = entry && typeof entry.remotes === 'number' ? entry.remotes : 0;
    this.setBadge(n > 0 ? 'Connected' : 'Not connected', n > 0 ? 'on' : '');
  }

  async refresh() {
    const r = await api(`${API}/${this.name}/remotes`);
    const remotes = Array.isArray(r && r.remotes) ? r.remotes : [];
    this.render(remotes);
  }

  render(remotes) {
    const n = remotes.length;
    this.setBadge(n > 0 ? 'Connected' : 'Not connected', n > 0 ? 'on' : '');
    this.account.textContent = n === 0 ? 'No remotes yet.'
      : n === 1 ? '1 remote:' : `${n} remotes:`;
    const items = remotes.map((rm) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = String(rm.name);
      const again = document.createElement('button');
      again.type = 'button';
      again.className = 'quiet small';
      again.textContent = 'Re-authorise';
      again.setAttribute('aria-label', `Re-authorise ${rm.name}`);
      again.addEventListener('click', () =>
        this.act(() => this.start(String(rm.name), true), again));
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'danger small';
      del.textContent = 'Delete';
      del.setAttribute('aria-label', `Delete ${rm.name}`);
      del.addEventListener('click', () =>
        this.act(() => this.remove(String(rm.name)), del));
      li.append(name, again, del);
      return li;
    });
    this.list.replaceChildren(...items);
  }

  async remove(name) {
    if (!window.confirm(`Delete the ${this.label} remote "${name}" from rclone.conf?`))
      return;
    await api(`${API}/${this.name}/remotes/${encodeURIComponent(name)}`, 'DELETE');
    this.say(`Deleted "${name}".`, 'ok');
    await this.refresh();
    this.nameInput.focus();
  }

  showFlow(on) {
    this.flowBox.hidden = !on;
    this.startForm.hidden = on;
    if (!on) {
      this.linkWrap.hidden = true;
      this.pasteForm.hidden = true;
      this.link.removeAttribute('href');
      this.pasteInput.value = '';
    }
  }

  async start(name, force) {
    const body = force ? { name, force: true } : { name };
    this.say(`Starting rclone for "${name}"…`);
    const r = await api(`${API}/${this.name}/remotes`, 'POST', body);
    const flow = this.newFlow({ id: r.session_id, remote: name, submitted: false });
    this.showFlow(true);
    this.q('cancel').focus();
    this.poll(flow); // runs on its own; the card is free for Submit/Cancel
  }

  async poll(flow) {
    const base = `${API}/${this.name}/sessions/${encodeURIComponent(flow.id)}`;
    for (;;) {
      await sleep(RCLONE_POLL_MS);
      if (!this.current(flow)) return;
      let s;
      try {
        s = await api(base);
      } catch (e) {
        if (!this.current(flow)) return;
        if (e.status === 404) {
          this.end(flow, 'The session expired or was cancelled; start again.', 'error');
          return;
        }
        if (e.status === 0 || e.status >= 500) { // transient: keep polling
          this.troubled(flow, e);
          continue;
        }
        this.end(flow, e.message, 'error');
        return;
      }
      if (!this.current(flow)) return;
      this.recovered(flow);
      if (s.status === 'pending') {
        flow.waiting = 'Waiting for rclone to give the sign-in link…';
        this.say(flow.waiting);
      } else if (s.status === 'awaiting_oauth') {
        if (!flow.linkShown) this.showLink(flow, s.auth_url);
      } else if (s.status === 'completed') {
        this.end(flow, `Connected: the remote "${s.remote_name || flow.remote}" is ready.`, 'ok');
        await this.refreshQuietly();
        return;
      } else if (s.status === 'error') {
        this.end(flow, s.error || 'The flow failed; start again.', 'error');
        await this.refreshQuietly();
        return;
      }
    }
  }

  showLink(flow, authUrl) {
    const href = safeUrl(authUrl);
    if (!href) {
      this.say('The daemon gave no usable sign-in link; cancel and start again.', 'error');
      return;
    }
    flow.linkShown = true;
    this.link.href = href;
    this.linkWrap.hidden = false;
    this.pasteForm.hidden = false;
    flow.waiting = 'Open the sign-in page, allow access, then paste the address you end on.';
    this.say(flow.waiting);
    this.link.focus();
  }

  async submit() {
    const flow = this.flow;
    const pasted = this.pasteInput.value.trim();
    this.pasteInput.value = '';
    if (!flow) return;
    if (!pasted) {
      this.say('Paste the address your browser ended on first.', 'error');
      this.pasteInput.focus();
      return;
    }
    this.say('Checking the pasted address…');
    try {
      await api(`${API}/${this.name}/sessions/${encodeURIComponent(flow.id)}/submit`, 'POST', { code: pasted });
    } catch (e) {
      // A 400 (another authorization's URL, a typo) leaves the flow alive
      // for another paste.
      this.fail(e);
      this.pasteInput.focus();
      return;
    }
    if (!this.current(flow)) return;
    flow.submitted = true;
    this.pasteForm.hidden = true;
    flow.waiting = 'Code submitted; rclone is finishing…';
    this.say(flow.waiting);
    this.q('cancel').focus();
  }

  async cancel() {
    const flow = this.flow;
    if (!flow) return;
    this.stopFlow();
    this.showFlow(false);
    this.nameInput.focus();
    try {
      await api(`${API}/${this.name}/sessions/${encodeURIComponent(flow.id)}/cancel`, 'POST');
      this.say('Cancelled.');
    } catch (e) {
      if (e.status === 404) this.say('Cancelled.');
      else this.fail(e);
    }
  }

  end(flow, text, kind) {
    if (flow !== this.flow) return;
    this.stopFlow();
    this.showFlow(false);
    this.say(text, kind);
    if (kind === 'ok') this.nameInput.value = '';
    this.nameInput.focus();
  }

  async refreshQuietly() {
    try {
      await this.refresh();
    } catch (e) {
      /* the flow's own message stays */
    }
  }
}

// ---------------------------------------------------------------------------
// GitHub, Vercel, Manus: one stored credential each.

class TokenCard extends Card {
  constructor(name, checking) {
    super(name);
    this.checking = checking;
    this.connectBox = this.q('connect');
    this.stored = this.q('stored-actions');
    this.tokenForm = this.q('token-form');
    this.tokenInput = this.tokenForm.elements.token;
    this.tokenForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.act(() => this.saveToken(), this.tokenForm.querySelector('button'));
    });
    const rc = this.q('reconnect');
    rc.addEventListener('click', () => this.act(() => this.reconnect(), rc));
    const dc = this.q('disconnect');
    dc.addEventListener('click', () => this.act(() => this.disconnect(), dc));
  }

  summary(entry) {
    this.show({ connected: !!(entry && entry.connected), user: entry && entry.user });
  }

  async refresh() {
    this.show(await api(`${API}/${this.name}/status`));
  }

  // st: GET .../status. Stored = connected, or kept after a failed check.
  show(st) {
    const connected = !!st.connected;
    const stored = connected || typeof st.error === 'string';
    if (connected) this.setBadge('Connected', 'on');
    else if (stored) this.setBadge('Needs attention', 'bad');
    else this.setBadge('Not connected', '');
    const who = accountName(st.user);
    const how = METHODS[st.auth_method];
    let line = '';
    if (connected) {
      line = who ? `Signed in as ${who}` : 'A working credential is saved';
      line += how ? `, ${how}.` : '.';
    } else if (stored) {
      // The reason, unless the live region shows that very sentence.
      const why = this.live.textContent === st.error ? '.' : `: ${st.error}`;
      line = `The saved credential no longer works${why} Reconnect to check it again, save a new one, or disconnect.`;
    }
    this.account.textContent = line;
    this.stored.hidden = !stored;
    this.connectBox.hidden = connected || !!this.flow;
    this.state = { connected, stored };
  }

  async saveToken() {
    const token = this.tokenInput.value.trim();
    this.tokenInput.value = '';
    if (!token) {
      this.say('Paste the token first.', 'error');
      this.tokenInput.focus();
      return;
    }
    this.say(`Checking it with ${this.checking}…`);
    try {
      const r = await api(`${API}/${this.name}/token`, 'POST', { token });
      const who = accountName(r && r.user);
      this.say(who ? `Connected as ${who}.` : 'Connected.', 'ok');
    } catch (e) {
      this.fail(e);
      this.tokenInput.focus();
      return;
    }
    await this.refresh();
    this.focusFirst();
  }

  async reconnect() {
    this.say(`Checking the stored credential with ${this.checking}…`);
    let r;
    try {
      r = await api(`${API}/${this.name}/reconnect`, 'POST');
    } catch (e) {
      this.fail(e);
      await this.refreshQuietly();
      return;
    }
    const who = accountName(r && r.user);
    this.say(who ? `Still connected as ${who}.` : 'Still connected.', 'ok');
    await this.refresh();
  }

  async disconnect() {
    if (!window.confirm(`Disconnect ${this.label}? The stored credential is deleted.`))
      return;
    await api(`${API}/${this.name}/disconnect`, 'POST');
    this.say('Disconnected.', 'ok');
    await this.refresh();
    this.focusFirst();
  }

  focusFirst() {
    const target = this.state && this.state.stored ? this.q('reconnect')
      : this.connectBox.querySelector('button, input');
    if (target) target.focus();
  }

  async refreshQuietly() {
    try {
      await this.refresh();
    } catch (e) {
      /* keep the message */
    }
  }
}

class GithubCard extends TokenCard {
  constructor() {
    super('github', 'GitHub');
    this.flowBox = this.q('flow');
    this.codeEl = this.q('user-code');
    this.verify = this.q('verify-link');
    const start = this.q('device-start');
    start.addEventListener('click', () => this.act(() => this.startDevice(), start));
    this.q('copy').addEventListener('click', () => this.copyCode());
    this.q('cancel').addEventListener('click', () => this.cancelDevice());
  }

  async startDevice() {
    this.say('Starting the GitHub sign-in…');
    const r = await api(`${API}/github/cli/start`, 'POST');
    const flow = this.newFlow({ id: r.session_id });
    const href = safeUrl(r.verification_uri) || 'https://github.com/login/device';
    this.codeEl.textContent = String(r.user_code || '');
    this.verify.href = href;
    this.verify.textContent = `Open ${href.replace(/^https?:\/\//, '')}`;
    this.connectBox.hidden = true;
    this.flowBox.hidden = false;
    const mins = Math.round((Number(r.expires_in) || 900) / 60);
    flow.waiting = `Waiting for you to enter the code at GitHub (it is valid for ${mins} minutes)…`;
    this.say(flow.waiting);
    this.q('copy').focus();
    const every = Number(r.interval) > 0 ? Number(r.interval) : GH_POLL_DEFAULT_S;
    this.pollDevice(flow, every * 1000);
  }

  async pollDevice(flow, ms) {
    for (;;) {
      await sleep(ms);
      if (!this.current(flow)) return;
      let s;
      try {
        s = await api(`${API}/github/cli/poll`, 'POST', { session_id: flow.id });
      } catch (e) {
        if (!this.current(flow)) return;
        if (e.status === 0 || e.status >= 500) {
          this.troubled(flow, e);
          continue;
        }
        this.endDevice(flow, e.status === 404
          ? 'The sign-in session ended; start again.' : e.message, 'error');
        return;
      }
      if (!this.current(flow)) return;
      this.recovered(flow);
      if (s.status === 'pending') continue;
      if (s.status === 'approved') {
        const who = accountName(s.user);
        this.endDevice(flow, who ? `Connected as ${who}.` : 'Connected.', 'ok');
      } else if (s.status === 'expired') {
        this.endDevice(flow, s.error || 'The code expired before it was entered; start again.', 'error');
      } else if (s.status === 'denied') {
        this.endDevice(flow, s.error || 'The sign-in was denied at GitHub.', 'error');
      } else {
        this.endDevice(flow, s.error || 'The GitHub sign-in failed; start again.', 'error');
      }
      await this.refreshQuietly();
      this.focusFirst();
      return;
    }
  }

  endDevice(flow, text, kind) {
    if (flow !== this.flow) return;
    this.stopFlow();
    this.flowBox.hidden = true;
    this.codeEl.textContent = '';
    this.connectBox.hidden = !!(this.state && this.state.connected);
    this.say(text, kind);
  }

  async copyCode() {
    const code = this.codeEl.textContent;
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(code);
      this.say('Code copied. Paste it on GitHub\'s device page.');
    } catch (e) {
      // No clipboard here (or no permission): select the code so that
      // the person copies it with the keyboard.
      const range = document.createRange();
      range.selectNodeContents(this.codeEl);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      this.codeEl.focus();
      this.say('Copy the selected code (Ctrl+C or ⌘C).');
    }
  }

  async cancelDevice() {
    const flow = this.flow;
    if (!flow) return;
    this.endDevice(flow, 'Cancelled.', 'info');
    this.focusFirst();
    try {
      await api(`${API}/github/cli/cancel`, 'POST', { session_id: flow.id });
    } catch (e) {
      if (e.status !== 404) this.fail(e);
    }
  }
}

class VercelCard extends TokenCard {
  constructor() {
    super('vercel', 'Vercel');
    this.flowBox = this.q('flow');
    this.authLink = this.q('authorize-link');
    const start = this.q('oauth-start');
    start.addEventListener('click', () => this.act(() => this.startOauth(), start));
    this.q('cancel').addEventListener('click', () => this.cancelOauth());
  }

  async startOauth() {
    this.say('Asking connectord for Vercel\'s authorization page…');
    const r = await api(`${API}/vercel/oauth/start`);
    const href = safeUrl(r.authorize_url);
    if (!href) throw new Error('The daemon gave no usable authorization link.');
    const flow = this.newFlow();
    this.authLink.href = href;
    this.connectBox.hidden = true;
    this.flowBox.hidden = false;
    // noopener: Vercel's page gets no handle on this one; the card learns
    // of the end from the stored state.
    window.open(href, '_blank', 'noopener,noreferrer');
    flow.waiting = 'Waiting for you to finish at Vercel…';
    this.say(flow.waiting);
    this.authLink.focus();
    this.pollStatus(flow);
  }

  async pollStatus(flow) {
    const until = Date.now() + VERCEL_WAIT_MS;
    while (Date.now() < until) {
      await sleep(VERCEL_POLL_MS);
      if (!this.current(flow)) return;
      let st;
      try {
        st = await api(`${API}/vercel/status`);
      } catch (e) {
        if (!this.current(flow)) return;
        if (e.status === 0 || e.status >= 500) {
          this.troubled(flow, e);
          continue;
        }
        this.endOauth(flow, e.message, 'error');
        return;
      }
      if (!this.current(flow)) return;
      this.recovered(flow);
      if (st.connected) {
        this.endOauth(flow, (accountName(st.user) ? `Connected as ${accountName(st.user)}.` : 'Connected.'), 'ok');
        this.show(st);
        this.focusFirst();
        return;
      }
    }
    this.endOauth(flow, 'The authorization was not finished in time; start again.', 'error');
  }

  endOauth(flow, text, kind) {
    if (flow !== this.flow) return;
    this.stopFlow();
    this.flowBox.hidden = true;
    this.authLink.removeAttribute('href');
    this.connectBox.hidden = !!(this.state && this.state.connected);
    this.say(text, kind);
  }

  cancelOauth() {
    if (!this.flow) return;
    this.endOauth(this.flow, 'Cancelled.', 'info');
    this.focusFirst();
  }
}

// ---------------------------------------------------------------------------
// Signing in and out

function signedOut(why) {
  clearTimeout(expiryTimer);
  session.signedIn = false;
  session.csrf = null;
  for (const c of Object.values(cards)) {
    c.stopFlow();
  }
  document.getElementById('loading').hidden = true;
  document.getElementById('cards').hidden = true;
  document.getElementById('who').hidden = true;
  document.getElementById('signed-out-why').textContent = why || '';
  document.getElementById('signin-curl').textContent =
    'curl -X POST -H "Authorization: Bearer $(cat var/state/api-token)" ' +
    location.origin + '/api/console/login';
  document.getElementById('signed-out').hidden = false;
}

let expiryTimer = null;

// s: GET /api/console/session, or null when the API needs no sign-in.
function signedIn(s) {
  session.csrf = s ? s.csrf : null;
  session.expiresAt = s ? Number(s.expires_at) || 0 : 0;
  session.signedIn = true;
  const note = document.getElementById('session-note');
  const until = new Date(session.expiresAt * 1000);
  note.textContent = !s ? 'API authentication is off (api_auth = none)'
    : session.expiresAt ? 'Signed in until ' + until.toLocaleString([], {
      weekday: 'short', hour: '2-digit', minute: '2-digit' })
      : 'Signed in';
  clearTimeout(expiryTimer);
  if (session.expiresAt) {
    const ms = session.expiresAt * 1000 - Date.now();
    if (ms > 0 && ms < 2 ** 31)
      expiryTimer = setTimeout(() => signedOut('Your session has expired.'), ms);
  }
  document.getElementById('signout').hidden = !s;
  document.getElementById('loading').hidden = true;
  document.getElementById('signed-out').hidden = true;
  document.getElementById('who').hidden = false;
  document.getElementById('cards').hidden = false;
}

async function signOut() {
  try {
    await api('/api/console/logout', 'POST');
  } catch (e) {
    /* signed out either way */
  }
  signedOut('You signed out.');
}

async function load() {
  cards.gdrive = new RcloneCard('gdrive');
  cards.onedrive = new RcloneCard('onedrive');
  cards.github = new GithubCard();
  cards.vercel = new VercelCard();
  cards.manus = new TokenCard('manus', 'Manus');
  document.getElementById('signout').addEventListener('click', signOut);

  let s;
  try {
    s = await api('/api/console/session');
  } catch (e) {
    if (e.status === 401) {
      signedOut('');
      return;
    }
    // No cookie session but no 401 either: a daemon with api_auth = none
    // answers the API to anyone, so the page needs no sign-in there.
    try {
      await api(API);
      s = null;
    } catch (e2) {
      signedOut(e.message);
      return;
    }
  }
  signedIn(s);

  // Connected or not, from stored state; then each card's details.
  try {
    const all = await api(API);
    for (const entry of (all && all.connectors) || []) {
      const c = cards[entry.name];
      if (c) c.summary(entry);
    }
  } catch (e) {
    for (const c of Object.values(cards)) c.fail(e);
  }
  await Promise.all(Object.values(cards).map((c) =>
    c.refresh().catch((e) => c.fail(e))));
  document.body.dataset.ready = 'true';
}

document.addEventListener('DOMContentLoaded', load);
