// DOM and formatting helpers. Every text goes through text nodes or textContent: nothing from a
// run (names, tags, messages, config values) is ever parsed as HTML.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'href') el.setAttribute('href', safeHref(v));
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// A finding's text with each proposed setting, written {key=value} by the run, as a code span
// "key = value" (the config key: the same in config.toml, --set and the library).
const SETTING_REF = /\{([a-z0-9_]+(?:\.[a-z0-9_]+)+)=([^{}]*)\}/g;
export function withSettings(text) {
  const s = String(text ?? '');
  const parts = [];
  let done = 0;
  for (const m of s.matchAll(SETTING_REF)) {
    if (m.index > done) parts.push(s.slice(done, m.index));
    parts.push(h('code', { class: 'setting', title: `--set ${m[1]}=${m[2]}`, text: `${m[1]} = ${m[2]}` }));
    done = m.index + m[0].length;
  }
  if (done < s.length) parts.push(s.slice(done));
  return parts;
}

// Links are the dashboard's own: fragments, relative API paths. Anything else is dropped.
export function safeHref(v) {
  const s = String(v);
  return s.startsWith('#') || s.startsWith('api/') || s.startsWith('./') ? s : '#';
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmt(v, digits = 4) {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e7) return v.toLocaleString('en-US');
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

export function fmtPercent(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : (100 * v).toFixed(2) + '%';
}

export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  const m = Math.floor(s / 60), sec = Math.round(s % 60);
  if (m < 60) return `${m} min ${sec} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtTime(wall) {
  if (!wall) return '–';
  const d = new Date(wall * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fmtAgo(wall) {
  if (!wall) return '';
  const s = Date.now() / 1000 - wall;
  if (s < 5) return 'just now';
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

// TensorBoard's smoothing: an exponential moving average debiased for its zero start, so that
// the first points are not pulled towards 0. Non-finite points pass through. `seed`, the smoothed
// value just before the first point (a zoomed window of a longer series), continues that average
// instead of starting a new one, so zooming does not change the curve.
export function emaSmooth(values, weight, seed) {
  if (!weight || weight <= 0) return values;
  const out = new Array(values.length);
  const seeded = seed !== undefined && seed !== null && Number.isFinite(seed);
  let last = seeded ? seed : 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) { out[i] = v; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = seeded ? last : last / (1 - Math.pow(weight, n));
  }
  return out;
}

export async function getJSON(path, signal) {
  const res = await fetch(path, { credentials: 'same-origin', signal, headers: { Accept: 'application/json' } });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = (await res.json()).error || message; } catch { /* not JSON */ }
    const error = new Error(message);
    error.status = res.status;
    throw error;
  }
  return res.json();
}

export function enc(s) { return encodeURIComponent(s); }

// 24 run colours, in the order runs get them. The first seven keep apart for the colour-blind
// too (blue, orange, bluish green, vermillion, reddish purple, sky blue, near black: the hues of
// Okabe and Ito's set); each next one was picked greedily for the largest smallest OKLab distance
// to those before it under normal, deuteranope, protanope and tritanope vision (Machado et al.'s
// simulation), among colours with 2.6:1 contrast or more on white, so a thin line stays visible.
export const RUN_COLORS = [
  '#2563eb', '#e69f00', '#009e73', '#d55e00', '#cc79a7', '#56b4e9', '#27272a', '#770591',
  '#165d1b', '#ba2783', '#4711c8', '#8f7fed', '#805aa5', '#953c43', '#e543c8', '#4683c5',
  '#f24e71', '#a05b11', '#86155c', '#494fb5', '#f57e4d', '#778a2d', '#9c29d0', '#2f8247',
];
