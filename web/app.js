// The live dashboard: runs list, one run, several runs compared. Polls the read-only API; a
// running run's charts update within a second of new data reaching the run store.
import { h, clear, fmt, fmtDuration, fmtTime, fmtAgo, getJSON, enc } from './util.js';
import {
  RunCharts, toolbar, findingsView, testResultsView, settingsView, checkpointsView, runFacts, section,
  statusBadge, bestMetricText, severityBadge, colorFor,
  dataCheckView,
} from './views.js';

const app = document.getElementById('app');
const crumbs = document.getElementById('crumbs');
const live = document.getElementById('live');
const POLL_MS = 500;           // a running run
const POLL_FINISHED_MS = 10000;  // a finished one: only a resume or a test pass changes it
const POLL_MAX_MS = 15000;       // the longest wait while the server is unreachable
const ENDED = new Set(['finished', 'stopped', 'crashed']);

const stored = JSON.parse(localStorage.getItem('trainscope.settings') || '{}');
const settings = {
  smoothing: typeof stored.smoothing === 'number' ? stored.smoothing : 0.6,
  logs: stored.logs && typeof stored.logs === 'object' ? stored.logs : {},
};
const saveSettings = () => localStorage.setItem('trainscope.settings', JSON.stringify(settings));

let page = null;  // {stop()}

const apiSource = {
  series: (run, split, tag, { points, from, to } = {}) => {
    let q = `api/runs/${enc(run)}/series?split=${enc(split)}&tag=${enc(tag)}&points=${points || 2000}`;
    if (from !== null && from !== undefined) q += `&from=${from}`;
    if (to !== null && to !== undefined) q += `&to=${to}`;
    return getJSON(q);
  },
  csv: (run, split, tag) => `api/runs/${enc(run)}/csv?split=${enc(split)}&tag=${enc(tag)}`,
};

function setCrumbs(...items) {
  clear(crumbs);
  items.forEach((it, i) => {
    if (i) crumbs.appendChild(h('span', { class: 'sep', text: '/' }));
    crumbs.appendChild(it.href ? h('a', { href: it.href, text: it.text }) : h('span', { text: it.text }));
  });
}

function setLive(state) {
  live.className = `live ${state}`;
  live.textContent = state === 'on' ? 'live' : state === 'error' ? 'server unreachable' : '';
}

function showError(e) {
  clear(app).appendChild(h('div', { class: 'card error' }, h('h2', { text: 'Cannot load' }), h('p', { text: e.message || String(e) }), h('p', null, h('a', { href: '#/', text: 'back to the runs' }))));
}

// Calls fn until stop(), one call at a time, every interval() ms (a number or a function). While
// the server is unreachable the wait doubles, up to POLL_MAX_MS, and the page says so once.
function poller(fn, interval) {
  let stopped = false, timer = null, failures = 0;
  const wait = () => (typeof interval === 'function' ? interval() : interval);
  const tick = async () => {
    if (stopped) return;
    try { await fn(); failures = 0; setLive('on'); } catch (e) { failures++; setLive('error'); }
    if (!stopped) timer = setTimeout(tick, failures ? Math.min(POLL_MAX_MS, wait() * 2 ** failures) : wait());
  };
  timer = setTimeout(tick, wait());
  return { stop: () => { stopped = true; clearTimeout(timer); } };
}

// A run page opened before its run exists (the CLI prints the URL before the data has loaded):
// says so and looks again every second.
function waitForRun(name) {
  setCrumbs({ text: 'runs', href: '#/' }, { text: name });
  clear(app).appendChild(h('div', { class: 'card starting' }, h('h2', { text: `Starting ${name}` }),
    h('p', { class: 'muted', text: 'The run is being prepared (data, batch choice, pre-flight checks); it appears here as soon as it has started.' })));
  document.body.dataset.ready = location.hash;
  return poller(async () => {
    try {
      await getJSON(`api/runs/${enc(name)}/version`);
    } catch (e) {
      if (e.status === 404) return;  // not yet: the server is there, the run is not
      throw e;
    }
    route();
  }, 1000);
}

// ---- runs list ----
async function runsPage() {
  setCrumbs({ text: 'runs' });
  const selected = new Set();
  const compareBtn = h('button', { class: 'primary', disabled: true, text: 'Compare selected' });
  compareBtn.addEventListener('click', () => { location.hash = `#/compare/${[...selected].map(enc).join(',')}`; });
  const body = h('tbody');
  const dirNote = h('span', { class: 'muted' });
  clear(app).appendChild(h('section', { class: 'card' },
    h('div', { class: 'section-head' }, h('h2', { text: 'Runs' }), dirNote, h('span', { class: 'spacer' }), compareBtn),
    h('div', { class: 'scroll-x' }, h('table', { class: 'runs' },
      h('thead', null, h('tr', null, h('th', { class: 'check' }), ['run', 'status', 'best val', 'epochs', 'duration', 'findings', 'started', 'last data'].map((t) => h('th', { text: t })))),
      body))));
  const render = (data) => {
    dirNote.textContent = data.runs_dir;
    clear(body);
    // Newest first; a sweep's trials together, in trial order, where its newest trial falls.
    const newest = (a, b) => (b.started_at || 0) - (a.started_at || 0);
    const runs = [];
    const sweeps = new Map();
    for (const r of [...data.runs].sort(newest)) {
      if (!r.sweep) { runs.push(r); continue; }
      if (!sweeps.has(r.sweep)) { sweeps.set(r.sweep, []); runs.push({ group: r.sweep }); }
      sweeps.get(r.sweep).push(r);
    }
    if (!runs.length) body.appendChild(h('tr', null, h('td', { colspan: 9, class: 'muted', text: 'No runs yet. Start one with `trainscope train`.' })));
    const rows = [];
    for (const r of runs) {
      if (!r.group) { rows.push(r); continue; }
      const trials = sweeps.get(r.group).sort((a, b) => a.name.localeCompare(b.name));
      const finished = trials.filter((t) => t.status === 'finished').length;
      rows.push({ header: r.group, text: `sweep ${r.group} · ${trials.length} trial${trials.length === 1 ? '' : 's'} · ${finished} finished` });
      rows.push(...trials);
    }
    for (const r of rows) {
      if (r.header) {
        body.appendChild(h('tr', { class: 'group', dataset: { sweep: r.header } }, h('td', { colspan: 9, text: r.text })));
        continue;
      }
      const box = h('input', { type: 'checkbox', 'aria-label': `select ${r.display_name}`, checked: selected.has(r.name) });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(r.name); else selected.delete(r.name);
        compareBtn.disabled = selected.size < 2;
      });
      const f = r.findings || {};
      const findings = Object.entries(f).map(([sev, n]) => h('span', { class: `count sev-${sev.replace(/[^a-z]/g, '')}`, title: `${n} ${sev}`, text: n }));
      body.appendChild(h('tr', { dataset: { run: r.name } },
        h('td', { class: 'check' }, box),
        h('td', { class: 'name' }, h('a', { href: `#/run/${enc(r.name)}`, text: r.display_name }), r.model ? h('span', { class: 'muted small', text: ` ${r.model}` }) : null,
          r.sweep_trial ? h('div', { class: 'muted small', text: r.sweep_trial }) : null),
        h('td', { title: r.stop_message || '' }, statusBadge(r.status, r.stop_reason)),
        h('td', { class: 'num', text: bestMetricText(r) }),
        h('td', { class: 'num', text: r.max_epochs ? `${r.epochs} / ${r.max_epochs}` : fmt(r.epochs) }),
        h('td', { class: 'num', text: fmtDuration(r.duration) }),
        h('td', null, findings.length ? findings : h('span', { class: 'muted', text: '–' })),
        h('td', { text: fmtTime(r.started_at) }),
        h('td', { class: 'muted', text: fmtAgo(r.last_update) })));
    }
  };
  render(await getJSON('api/runs'));
  return poller(async () => render(await getJSON('api/runs')), 2000);
}

// ---- one run ----
async function runPage(name) {
  let detail, firstFindings, firstVersion;
  try {
    [detail, firstFindings, firstVersion] = await Promise.all([
      getJSON(`api/runs/${enc(name)}`), getJSON(`api/runs/${enc(name)}/findings`), getJSON(`api/runs/${enc(name)}/version`)]);
  } catch (e) {
    if (e.status === 404) return waitForRun(name);
    throw e;
  }
  setCrumbs({ text: 'runs', href: '#/' }, { text: detail.display_name || name });
  const chartsRoot = h('div');
  const charts = new RunCharts(chartsRoot, { runs: [{ name, detail, color: colorFor(0) }], source: apiSource, settings, onSettings: saveSettings });
  const findingsBox = h('div');
  const testBox = h('div');
  const factsBox = h('div');
  const checkpointsBox = h('div');
  const findingsCount = h('span', { class: 'muted' });
  const dataCheckBox = h('div');
  // `trainscope check` writes a run of its own: its findings and the data checks' gallery, no
  // curves, test results or checkpoints.
  const dataCheck = detail.meta?.kind === 'data_check';
  const hasDataCheck = (d) => Boolean(d.results && d.results.data_check);
  clear(app).append(...[
    h('div', { class: 'run-title' }, h('h1', { text: detail.display_name || name }), h('span', { class: 'muted mono', text: name })),
    factsBox,
    dataCheck ? null : section('Charts', chartsRoot, toolbar(settings, charts, saveSettings)),
    section('Findings', findingsBox, findingsCount),
    dataCheck || hasDataCheck(detail) ? section('Data checks', dataCheckBox) : null,
    dataCheck ? null : section('Test results', testBox),
    dataCheck ? null : section('Checkpoints', checkpointsBox),
    section('Resolved config', settingsView(detail.settings)),
  ].filter(Boolean));
  const renderDetail = (d) => {
    clear(factsBox).appendChild(runFacts(d));
    clear(dataCheckBox).appendChild(dataCheckView(d.results?.data_check?.report));
    clear(testBox).appendChild(testResultsView(d.results));
    clear(checkpointsBox).appendChild(checkpointsView(d.checkpoints));
  };
  const renderFindings = (list, d) => {
    const maxStep = Math.max(0, ...(d.tags || []).map((t) => t.last_step || 0));
    clear(findingsBox).appendChild(findingsView(list, maxStep));
    findingsCount.textContent = list.length ? `${list.length} finding${list.length > 1 ? 's' : ''}` : '';
    charts.setFindings(list);
  };
  renderDetail(detail);
  renderFindings(firstFindings, detail);
  await charts.build();

  let version = firstVersion;
  let tagCount = (detail.tags || []).length;
  let status = detail.status;
  return poller(async () => {
    const v = await getJSON(`api/runs/${enc(name)}/version`);
    if (JSON.stringify(v) === JSON.stringify(version)) return;
    const d = await getJSON(`api/runs/${enc(name)}`);
    charts.runs[0].detail = d;
    status = d.status;
    renderDetail(d);
    if (v.findings !== version.findings) renderFindings(await getJSON(`api/runs/${enc(name)}/findings`), d);
    if ((d.tags || []).length !== tagCount) { tagCount = d.tags.length; await charts.build(); }
    else if (v.metrics !== version.metrics) await charts.refresh();
    version = v;
  }, () => (ENDED.has(status) ? POLL_FINISHED_MS : POLL_MS));
}

// ---- several runs ----
async function comparePage(names) {
  const details = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}`)));
  setCrumbs({ text: 'runs', href: '#/' }, { text: `compare ${names.length} runs` });
  const runs = names.map((name, i) => ({ name, detail: details[i], color: colorFor(i) }));
  const chartsRoot = h('div');
  const charts = new RunCharts(chartsRoot, { runs, source: apiSource, settings, onSettings: saveSettings });
  clear(app).append(
    h('div', { class: 'run-title' }, h('h1', { text: `Comparing ${names.length} runs` })),
    section('Runs', compareTable(runs)),
    dataWarning(runs) || '',
    section('Charts', chartsRoot, toolbar(settings, charts, saveSettings)),
    section('Settings that differ', configDiff(runs)));
  await charts.build();
  const versions = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}/version`)));
  return poller(async () => {
    const now = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}/version`)));
    if (JSON.stringify(now) === JSON.stringify(versions)) return;
    const fresh = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}`)));
    fresh.forEach((d, i) => { runs[i].detail = d; versions[i] = now[i]; });
    await charts.refresh();
  }, () => (runs.every((r) => ENDED.has(r.detail.status)) ? POLL_FINISHED_MS : POLL_MS));
}

function compareTable(runs) {
  return h('table', { class: 'runs compare' },
    h('thead', null, h('tr', null, ['', 'run', 'status', 'best val', 'best epoch', 'epochs', 'duration'].map((t) => h('th', { text: t })))),
    h('tbody', null, runs.map((r) => h('tr', null,
      h('td', null, h('span', { class: 'swatch', style: { background: r.color } })),
      h('td', { class: 'name' }, h('a', { href: `#/run/${enc(r.name)}`, text: r.detail.display_name || r.name })),
      h('td', null, statusBadge(r.detail.status, r.detail.stop_reason)),
      h('td', { class: 'num', text: bestMetricText(r.detail) }),
      h('td', { class: 'num', text: fmt(r.detail.best_epoch) }),
      h('td', { class: 'num', text: fmt(r.detail.epochs) }),
      h('td', { class: 'num', text: fmtDuration(r.detail.duration) })))));
}

// The settings that decide which examples the validation and test splits hold: runs that differ
// in one of them are not measured on the same examples, and their val/test curves do not compare.
const DATA_KEYS = ['data.dataset', 'data.dir', 'data.limit', 'data.test_limit', 'data.val_fraction', 'data.split_seed', 'data.classes'];

function dataWarning(runs) {
  const maps = runs.map((r) => new Map((r.detail.settings || []).map((s) => [s.key, s.value])));
  const differ = DATA_KEYS.filter((k) => new Set(maps.map((m) => m.get(k) ?? '')).size > 1);
  if (!differ.length) return null;
  const what = differ.map((k) => `${k}: ${maps.map((m) => m.get(k) ?? '–').join(' vs ')}`).join('; ');
  return h('div', { class: 'card warning-note', dataset: { warning: 'data' }, role: 'note' },
    h('strong', { text: 'Their validation and test sets differ. ' }),
    h('span', { text: `The val and test values below are not measured on the same examples (${what}); compare them with care.` }));
}

function configDiff(runs) {
  const keys = new Set();
  const maps = runs.map((r) => new Map((r.detail.settings || []).map((s) => [s.key, s.value])));
  maps.forEach((m) => m.forEach((_, k) => keys.add(k)));
  const differ = [...keys].sort().filter((k) => new Set(maps.map((m) => m.get(k))).size > 1 && !['run.name'].includes(k));
  if (!differ.length) return h('p', { class: 'muted', text: 'The runs have the same settings.' });
  return h('div', { class: 'scroll-x' }, h('table', { class: 'settings' },
    h('thead', null, h('tr', null, h('th', { text: 'key' }), runs.map((r) => h('th', null, h('span', { class: 'swatch', style: { background: r.color } }), ' ', r.detail.display_name || r.name)))),
    h('tbody', null, differ.map((k) => h('tr', null, h('td', { class: 'key', text: k }), maps.map((m) => h('td', { class: 'value', text: m.get(k) ?? '–' })))))));
}

// ---- router ----
async function route() {
  if (page) { page.stop(); page = null; }
  setLive('');
  const hash = location.hash || '#/';
  try {
    if (hash.startsWith('#/run/')) page = await runPage(decodeURIComponent(hash.slice(6)));
    else if (hash.startsWith('#/compare/')) page = await comparePage(hash.slice(10).split(',').filter(Boolean).map(decodeURIComponent));
    else page = await runsPage();
  } catch (e) {
    showError(e);
  }
  document.body.dataset.ready = hash;
}

window.addEventListener('hashchange', route);
route();
