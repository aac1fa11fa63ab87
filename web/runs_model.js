// The runs table's data side, without the DOM: the columns a set of runs offers, a cell's value,
// the filter language, sorting, grouping with mean and std, and export. runs_table.js draws what
// this computes; keeping it pure lets node check it without a browser.

// A setting's TOML literal as the table uses it: a number where it is one, a string without its
// quotes, anything else (booleans, arrays, tables) as written.
export function settingValue(text) {
  if (text === undefined || text === null) return null;
  const s = String(text).trim();
  if (/^[+-]?(\d[\d_]*)(\.\d[\d_]*)?([eE][+-]?\d+)?$/.test(s)) return Number(s.replace(/_/g, ''));
  if (/^[+-]?(inf|nan)$/.test(s)) return s.includes('nan') ? NaN : (s.startsWith('-') ? -Infinity : Infinity);
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) {
    let inner;
    try { inner = JSON.parse(s); } catch { inner = s.slice(1, -1); }
    // A number the run resolved from a text setting (train.batch_size "auto" -> "32") sorts and
    // compares as the number it is.
    return /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(inner) ? Number(inner) : inner;
  }
  if (s.length >= 2 && s.startsWith("'") && s.endsWith("'")) return s.slice(1, -1);
  return s;
}

// A setting's number as written by a person: 0.0003, 5000, 1e-7 (up to 6 significant digits, no
// thousands separators, an exponent only where JavaScript would write one).
export function fmtPlain(v) {
  return typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(6))) : String(v);
}

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const ENDED = new Set(['finished', 'stopped', 'crashed']);
export const isEnded = (status) => ENDED.has(status);

// Settings every run has by construction, or that only name the run: never "a setting that differs".
const IDENTITY_KEYS = new Set(['run.name', 'run.dir', 'run.sweep', 'run.sweep_trial']);
const SEVERITY_WEIGHT = { error: 1e6, warning: 1e3, info: 1 };
const iso = (wall) => (isNum(wall) && wall > 0 ? new Date(wall * 1000).toISOString() : null);
const tagsOf = (run) => (Array.isArray(run.annotations?.tags) ? run.annotations.tags : []);
const noteOf = (run) => (typeof run.annotations?.note === 'string' ? run.annotations.note : '');

// The table's own columns: today's runs list, then the optional ones. value() sorts and filters,
// exported() is what CSV and JSON get (dates as ISO 8601, tags as a list).
export const BUILTIN_COLUMNS = [
  { id: 'run', label: 'run', value: (r) => r.display_name || r.name, fixed: true },
  { id: 'status', label: 'status', value: (r) => r.status || 'unknown' },
  { id: 'best', label: 'best val', numeric: true, value: (r) => (r.best_val_metric ? r.best_val_metric.value : r.best_val_loss ?? null) },
  { id: 'epochs', label: 'epochs', numeric: true, value: (r) => (isNum(r.epochs) ? r.epochs : null) },
  { id: 'duration', label: 'duration', exportLabel: 'duration (s)', numeric: true, value: (r) => (isNum(r.duration) ? r.duration : null) },
  { id: 'findings', label: 'findings', numeric: true,
    value: (r) => Object.entries(r.findings || {}).reduce((s, [sev, n]) => s + (SEVERITY_WEIGHT[sev] || 1) * n, 0),
    exported: (r) => Object.entries(r.findings || {}).map(([sev, n]) => `${sev}:${n}`).join(' ') },
  { id: 'started', label: 'started', numeric: true, value: (r) => (isNum(r.started_at) ? r.started_at : null), exported: (r) => iso(r.started_at) },
  { id: 'updated', label: 'last data', numeric: true, value: (r) => (isNum(r.last_update) ? r.last_update : null), exported: (r) => iso(r.last_update) },
  { id: 'model', label: 'model', value: (r) => r.model || null },
  { id: 'sweep', label: 'sweep', value: (r) => r.sweep || null },
  { id: 'tags', label: 'tags', value: (r) => tagsOf(r).join(','), exported: (r) => tagsOf(r) },
  { id: 'note', label: 'note', value: (r) => noteOf(r) || null },
].map((c) => ({ kind: 'builtin', key: c.id, numeric: false, exported: c.value, exportLabel: c.label, ...c }));
export const DEFAULT_BUILTINS = ['run', 'status', 'best', 'epochs', 'duration', 'findings', 'started', 'updated'];

function settingColumn(key, numeric, differs) {
  const value = (r) => (r.settings && key in r.settings ? settingValue(r.settings[key]) : null);
  return { id: `setting:${key}`, kind: 'setting', key, label: key, exportLabel: key, numeric, differs, value, exported: value };
}

function finalColumn(key) {
  const value = (r) => { const v = r.final ? r.final[key] : null; return isNum(v) ? v : null; };
  return { id: `final:${key}`, kind: 'final', key, label: key, exportLabel: key, numeric: true, value, exported: value };
}

// Every column the runs offer: the built-in ones, each final metric, each setting (numeric when
// every run that has it holds a number; `differs` when the runs hold more than one value).
export function catalogue(runs) {
  const settingKeys = new Map();
  const finalKeys = new Set();
  for (const r of runs) {
    for (const [k, v] of Object.entries(r.settings || {})) {
      if (!settingKeys.has(k)) settingKeys.set(k, { values: new Set(), numeric: true, count: 0 });
      const info = settingKeys.get(k);
      const parsed = settingValue(v);
      info.values.add(typeof parsed === 'number' ? `n${parsed}` : `s${parsed}`);
      info.numeric = info.numeric && typeof parsed === 'number';
      info.count++;
    }
    for (const k of Object.keys(r.final || {})) finalKeys.add(k);
  }
  const settings = [...settingKeys.keys()].sort().map((k) => {
    const info = settingKeys.get(k);
    const col = settingColumn(k, info.numeric, info.values.size > 1 && !IDENTITY_KEYS.has(k));
    col.count = info.count;
    return col;
  });
  const finals = [...finalKeys].sort(metricOrder).map(finalColumn);
  const all = [...BUILTIN_COLUMNS, ...finals, ...settings];
  return { builtins: BUILTIN_COLUMNS, finals, settings, byId: new Map(all.map((c) => [c.id, c])) };
}

// val before test before train before system, then by name: what a reader looks for first.
const SPLIT_ORDER = ['val', 'test', 'train', 'system'];
function metricOrder(a, b) {
  const sa = SPLIT_ORDER.indexOf(a.split('/')[0]), sb = SPLIT_ORDER.indexOf(b.split('/')[0]);
  return sa !== sb ? sa - sb : a.localeCompare(b);
}

const MAX_DEFAULT_SETTINGS = 5;

// The columns shown before anyone chooses: today's, the validation accuracy (or loss), and the
// settings that differ between the runs (those most runs have first, at most five).
export function defaultColumns(cat) {
  const ids = [...DEFAULT_BUILTINS];
  const metric = ['final:val/accuracy', 'final:val/loss'].find((id) => cat.byId.has(id));
  if (metric) ids.push(metric);
  const differ = cat.settings.filter((c) => c.differs).sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
  ids.push(...differ.slice(0, MAX_DEFAULT_SETTINGS).map((c) => c.id));
  return ids;
}

// The chosen columns that still exist, the run column always first.
export function resolveColumns(ids, cat) {
  const cols = (ids || []).map((id) => cat.byId.get(id)).filter((c) => c && c.id !== 'run');
  return [cat.byId.get('run'), ...cols];
}

// ---- filter ----
// Words separated by spaces ("quoted words" stay one). A word `key OP value` (OP one of = != > <
// >= <=) compares a setting, a final metric or one of name, model, status, sweep, tag, note,
// epochs; any other word must appear in the run's name, model, status, sweep, tags or note.
// `=` on text ignores case and takes * as a wildcard; on numbers it compares numerically.

const TERM = /^([A-Za-z_][\w.\/-]*?)(>=|<=|!=|=|>|<)(.*)$/;
const FILTER_KEYS = {
  name: (r) => [r.name, r.display_name], model: (r) => r.model, status: (r) => r.status, sweep: (r) => r.sweep,
  tag: (r) => tagsOf(r), tags: (r) => tagsOf(r), note: (r) => noteOf(r), epochs: (r) => (isNum(r.epochs) ? r.epochs : null),
};

// Words of a filter; `"two words"` stays one word of free text, `tag="two words"` one comparison.
export function tokenize(text) {
  const words = [];
  let cur = '', quoted = false, started = false, freeText = false;
  const end = () => { if (started) words.push({ text: cur, freeText }); cur = ''; started = false; freeText = false; };
  for (const ch of String(text || '')) {
    if (ch === '"') { if (!started) freeText = true; quoted = !quoted; started = true; continue; }
    if (!quoted && /\s/.test(ch)) { end(); continue; }
    cur += ch; started = true;
  }
  end();
  return words;
}

// {terms, errors}: each error names the word and says what would work; the other words still apply.
export function parseFilter(text, cat) {
  const terms = [], errors = [];
  for (const word of tokenize(text)) {
    const w = word.text;
    if (!w) continue;
    const m = word.freeText ? null : w.match(TERM);
    if (!m) {
      if (!word.freeText && /^(>=|<=|!=|=|>|<)/.test(w) && Number.isFinite(parseFloat(w.replace(/^[<>=!]+/, ''))))
        errors.push(`"${w}" compares nothing: put a setting or metric before it, e.g. val/accuracy${w}`);
      else terms.push({ text: w.toLowerCase() });
      continue;
    }
    const [, key, op, raw] = m;
    const get = lookup(key, cat);
    if (!get) {
      const near = closest(key, [...Object.keys(FILTER_KEYS), ...cat.finals.map((c) => c.key), ...cat.settings.map((c) => c.key)]);
      errors.push(`"${w}": no setting or final metric is called ${key}${near ? ` (did you mean ${near}?)` : ''}`);
      continue;
    }
    if (raw === '') { errors.push(`"${w}" needs a value after ${op}`); continue; }
    const number = Number(raw);
    if ('<>'.includes(op[0]) && !Number.isFinite(number)) {
      errors.push(`"${w}": ${op} compares numbers, and ${raw} is not one`);
      continue;
    }
    terms.push({ key, op, raw, number: raw.trim() !== '' && Number.isFinite(number) ? number : null, get });
  }
  return { terms, errors };
}

function lookup(key, cat) {
  if (FILTER_KEYS[key]) return FILTER_KEYS[key];
  const col = cat.byId.get(`final:${key}`) || cat.byId.get(`setting:${key}`);
  return col ? col.value : null;
}

export function matches(run, terms) {
  return terms.every((t) => (t.get ? compareTerm(t, t.get(run)) : haystack(run).includes(t.text)));
}

function haystack(run) {
  return [run.name, run.display_name, run.model, run.status, run.sweep, run.sweep_trial, ...tagsOf(run), noteOf(run)]
    .filter(Boolean).join('\n').toLowerCase();
}

function compareTerm(t, value) {
  const values = Array.isArray(value) ? value : [value];
  if (t.op === '!=') return !values.some((v) => equals(v, t));
  if (t.op === '=') return values.some((v) => equals(v, t));
  return values.some((v) => {
    if (!isNum(v)) return false;
    switch (t.op) {
      case '>': return v > t.number;
      case '<': return v < t.number;
      case '>=': return v >= t.number;
      default: return v <= t.number;
    }
  });
}

function equals(v, t) {
  if (v === null || v === undefined) return false;
  if (typeof v === 'number' && t.number !== null) return Math.abs(v - t.number) <= 1e-12 * Math.max(Math.abs(v), Math.abs(t.number));
  const pattern = new RegExp(`^${t.raw.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return pattern.test(String(v).toLowerCase());
}

// The candidate within a small edit distance of a mistyped key, for "did you mean".
function closest(word, candidates) {
  let best = null, bestD = Math.max(2, Math.floor(word.length / 4)) + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}

function editDistance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

// ---- sort and group ----
// Missing values last whichever the direction; numbers numerically, text naturally ("run-10" after "run-9").
export function compareValues(a, b, dir = 1) {
  const missA = a === null || a === undefined || a === '' || (typeof a === 'number' && Number.isNaN(a));
  const missB = b === null || b === undefined || b === '' || (typeof b === 'number' && Number.isNaN(b));
  if (missA || missB) return missA === missB ? 0 : missA ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return dir * (a - b);
  return dir * String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
}

export function sortRuns(runs, col, dir) {
  const keyed = runs.map((r) => [col.value(r), r]);
  keyed.sort((x, y) => compareValues(x[0], y[0], dir) || x[1].name.localeCompare(y[1].name));
  return keyed.map((x) => x[1]);
}

// n, mean and sample standard deviation (n - 1: the spread of seeds, not of these few draws) of
// the finite values; std null for a single value.
export function stats(values) {
  const v = values.filter(isNum);
  if (!v.length) return null;
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (v.length - 1)) : null;
  return { n: v.length, mean, std };
}

// Rows for the table: [{group: {...}, runs: [...]}, or {run}] in display order.
//  - group 'sweep': today's list, newest first, a sweep's trials together (in trial order unless
//    sorted) where its first run falls;
//  - group 'none': the runs, sorted;
//  - group 'setting:KEY': one group per value of KEY (runs without it together), ordered by
//    the sort column's mean when sorted, else by the value.
export function arrange(runs, { group = 'sweep', sortCol = null, dir = 1, cat } = {}) {
  const newestFirst = (a, b) => (b.started_at || 0) - (a.started_at || 0) || a.name.localeCompare(b.name);
  const ordered = sortCol ? sortRuns(runs, sortCol, dir) : [...runs].sort(newestFirst);
  if (group === 'none') return ordered.map((run) => ({ run }));
  if (group.startsWith('setting:') && cat?.byId.has(group)) return bySetting(ordered, cat.byId.get(group), sortCol, dir);
  const out = [];
  const sweeps = new Map();
  for (const r of ordered) {
    if (!r.sweep) { out.push({ run: r }); continue; }
    if (!sweeps.has(r.sweep)) { sweeps.set(r.sweep, []); out.push({ sweep: r.sweep, runs: sweeps.get(r.sweep) }); }
    sweeps.get(r.sweep).push(r);
  }
  if (!sortCol) for (const trials of sweeps.values()) trials.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  return out;
}

function bySetting(ordered, col, sortCol, dir) {
  const groups = new Map();
  for (const r of ordered) {
    const v = col.value(r);
    const k = v === null ? '\u0000' : typeof v === 'number' ? `n${v}` : `s${v}`;
    if (!groups.has(k)) groups.set(k, { key: col.key, value: v, runs: [] });
    groups.get(k).runs.push(r);
  }
  const list = [...groups.values()];
  if (sortCol) {
    const rep = (g) => (sortCol.numeric ? stats(g.runs.map(sortCol.value))?.mean ?? null : sortCol.value(g.runs[0]));
    list.sort((a, b) => compareValues(rep(a), rep(b), dir));
  } else {
    list.sort((a, b) => compareValues(a.value, b.value, 1));
  }
  return list.map((g) => ({ group: g, runs: g.runs }));
}

// ---- export ----
const exportedValue = (col, run) => {
  const v = col.exported(run);
  return typeof v === 'number' && !Number.isFinite(v) ? null : v ?? null;
};

// One object per run with the shown columns' names as keys, in the shown order.
export function toJSON(cols, runs) {
  return JSON.stringify(runs.map((r) => Object.fromEntries(cols.map((c) => [c.exportLabel, exportedValue(c, r)]))), null, 2) + '\n';
}

// RFC 4180: every field that holds a comma, a quote, a line break or edge spaces is quoted, its
// quotes doubled; lines end in CRLF. Text that a spreadsheet would run as a formula (=, +, -, @,
// a tab or CR first) gets a leading apostrophe, as OWASP advises for CSV injection; numbers never do.
export function csvField(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) v = v.join(',');
  if (typeof v === 'number') return String(v);
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCSV(cols, runs) {
  const lines = [cols.map((c) => csvField(c.exportLabel)).join(',')];
  for (const r of runs) lines.push(cols.map((c) => csvField(exportedValue(c, r))).join(','));
  return lines.join('\r\n') + '\r\n';
}
