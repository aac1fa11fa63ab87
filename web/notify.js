// Browser notifications, opt in: a bell in the top bar. While it is on, the open dashboard polls
// api/runs every 5 s and announces, once each, a run that ends, a sweep whose trials have all
// ended, and a run's new finding of severity warning or error. What was announced is remembered
// in localStorage, so a reload or a second tab does not announce it again.
import { h, getJSON, enc } from './util.js';

const ON_KEY = 'trainscope.notify';
const SEEN_KEY = 'trainscope.notified';
const SEEN_MAX = 500;               // announced keys kept, the newest
const POLL_MS = 5000;
const POLL_MAX_MS = 60000;          // the longest wait while the server is unreachable
// A sweep starts its next trial some seconds after the last one ended (data, pre-flight checks),
// and its trials appear only once they start: without the plan's size, all trials ended and none
// new for this long means the sweep is over.
const SWEEP_QUIET_S = 60;
const ENDED = new Set(['finished', 'stopped', 'crashed']);
const LOUD = new Set(['warning', 'error']);

const supported = () => typeof window.Notification === 'function' && window.isSecureContext;

function loadSeen() {
  try { const v = JSON.parse(localStorage.getItem(SEEN_KEY) || '[]'); return Array.isArray(v) ? v : []; } catch { return []; }
}

// True the first time `key` is claimed, in this tab or any other of this origin.
function claim(key) {
  const seen = loadSeen();
  if (seen.includes(key)) return false;
  seen.push(key);
  localStorage.setItem(SEEN_KEY, JSON.stringify(seen.slice(-SEEN_MAX)));
  return true;
}

function announce(key, title, body, hash) {
  if (!claim(key)) return;
  // The tag makes a second tab's copy replace this one rather than stack beside it.
  const n = new Notification(title, { body, tag: key });
  n.onclick = () => { window.focus(); if (hash) location.hash = hash; n.close(); };
}

const label = (r) => r.display_name || r.name;
const loud = (findings) => Object.entries(findings || {}).reduce((s, [sev, n]) => s + (LOUD.has(sev) ? n : 0), 0);

// What changed between two looks at api/runs, as announcements. The first look is the baseline:
// what had already happened before the bell was on is not news.
export class RunWatcher {
  constructor(fetchFindings) {
    this.fetchFindings = fetchFindings;  // name -> Promise<[finding]>
    this.runs = null;                    // name -> {status, loud}
    this.sweeps = new Map();             // sweep -> {active, quietSince}
  }

  async update(rows, now = Date.now() / 1000) {
    const out = [];
    const first = this.runs === null;
    const before = this.runs || new Map();
    this.runs = new Map(rows.map((r) => [r.name, { status: r.status, loud: loud(r.findings) }]));
    if (first) {
      for (const r of rows) if (r.sweep && !ENDED.has(r.status)) this.sweep(r.sweep).active = true;
      return out;
    }
    for (const r of rows) {
      const was = before.get(r.name);
      if (ENDED.has(r.status) && (!was || !ENDED.has(was.status))) {
        out.push({ key: `end:${r.name}:${r.ended_at ?? r.last_update ?? ''}`, hash: `#/run/${enc(r.name)}`,
          title: `${label(r)} ${r.status}`, body: r.stop_message || `after ${r.epochs ?? 0} epochs` });
      }
      const grew = loud(r.findings) - (was ? was.loud : 0);
      if (grew > 0) out.push(...await this.newFindings(r, grew));
      if (r.sweep && !ENDED.has(r.status)) this.sweep(r.sweep).active = true;
    }
    out.push(...this.endedSweeps(rows, now));
    return out;
  }

  sweep(name) {
    if (!this.sweeps.has(name)) this.sweeps.set(name, { active: false, quietSince: null, count: 0 });
    return this.sweeps.get(name);
  }

  async newFindings(run, count) {
    const list = (await this.fetchFindings(run.name)).filter((f) => LOUD.has(f.severity)).sort((a, b) => a.id - b.id);
    return list.slice(-count).map((f) => ({ key: `finding:${run.name}:${f.id}`, hash: `#/run/${enc(run.name)}`,
      title: `${label(run)}: ${f.severity} (${String(f.kind || '').replace(/_/g, ' ')})`, body: f.message || '' }));
  }

  // A sweep seen running ends when all its trials have ended and it has all its trials: as many
  // as its plan holds where the server says (sweep_trials), else none new for SWEEP_QUIET_S.
  endedSweeps(rows, now) {
    const out = [];
    const trials = new Map();
    for (const r of rows) if (r.sweep) (trials.get(r.sweep) || trials.set(r.sweep, []).get(r.sweep)).push(r);
    for (const [name, list] of trials) {
      const s = this.sweep(name);
      if (!s.active) continue;
      if (!list.every((r) => ENDED.has(r.status))) { s.quietSince = null; s.count = list.length; continue; }
      // All ended: the quiet time starts now, and again whenever a new trial has come and gone.
      if (s.quietSince === null || list.length !== s.count) { s.quietSince = now; s.count = list.length; }
      const planned = list.find((r) => Number.isInteger(r.sweep_trials))?.sweep_trials;
      const complete = planned ? list.length >= planned : now - s.quietSince >= SWEEP_QUIET_S;
      if (!complete) continue;
      s.active = false;
      const finished = list.filter((r) => r.status === 'finished').length;
      const last = Math.max(...list.map((r) => r.ended_at || r.last_update || 0));
      out.push({ key: `sweep:${name}:${last}`, hash: '#/', title: `sweep ${name} ended`,
        body: `${list.length} trial${list.length === 1 ? '' : 's'}, ${finished} finished` });
    }
    return out;
  }
}

// Polls while on: every POLL_MS, doubling the wait after each failure up to POLL_MAX_MS.
function startPolling() {
  const watcher = new RunWatcher((name) => getJSON(`api/runs/${enc(name)}/findings`));
  let stopped = false, timer = null, failures = 0;
  const tick = async () => {
    try {
      const data = await getJSON('api/runs');
      const news = await watcher.update(data.runs || []);
      // The bell may have been turned off while this look was on its way: then it stays quiet.
      if (!stopped) for (const a of news) announce(a.key, a.title, a.body, a.hash);
      failures = 0;
    } catch {
      failures++;
    }
    if (!stopped) timer = setTimeout(tick, Math.min(POLL_MAX_MS, POLL_MS * 2 ** failures));
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

const SVG = 'http://www.w3.org/2000/svg';
function bellIcon() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of ['M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15z', 'M10 20a2 2 0 0 0 4 0', 'M4 4l16 16']) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.appendChild(p);
  }
  return svg;
}

// The bell: mounts into `slot` (index.html's #notify) and starts polling if it was left on.
export function mountNotifications(slot) {
  if (!slot) return;
  const button = h('button', { type: 'button', class: 'bell', dataset: { notify: 'off' } }, bellIcon());
  let stop = null;
  const set = (state, why) => {
    button.dataset.notify = state;
    button.setAttribute('aria-pressed', String(state === 'on'));
    button.title = why;
    button.setAttribute('aria-label', why);
    if (state === 'on' && !stop) stop = startPolling();
    if (state !== 'on' && stop) { stop(); stop = null; }
  };
  const off = 'notifications off: click to be told when a run or a sweep ends, or a run gets a warning';
  const on = 'notifications on: runs and sweeps that end, and new warnings, are announced; click to turn off';
  if (!supported()) {
    button.disabled = true;
    set('unsupported', 'this browser offers no notifications for this page (they need https or localhost)');
  } else if (localStorage.getItem(ON_KEY) === 'on' && Notification.permission === 'granted') {
    set('on', on);
  } else {
    set('off', Notification.permission === 'denied' ? 'notifications are blocked for this site: allow them in the browser to use the bell' : off);
  }
  button.addEventListener('click', async () => {
    if (button.dataset.notify === 'on') {
      localStorage.setItem(ON_KEY, 'off');
      set('off', off);
      return;
    }
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') {
      set('off', 'notifications are blocked for this site: allow them in the browser to use the bell');
      return;
    }
    localStorage.setItem(ON_KEY, 'on');
    set('on', on);
  });
  slot.appendChild(button);
}
