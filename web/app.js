// The live dashboard: runs list, one run, several runs compared. Polls the read-only API; a
// running run's charts update within a second of new data reaching the run store.
import { h, clear, fmt, fmtDuration, getJSON, enc } from './util.js';
import {
  RunCharts, toolbar, findingsView, testResultsView, settingsView, checkpointsView, runFacts, section,
  statusBadge, bestMetricText, severityBadge, colorFor,
  dataCheckView, groupRuns,
} from './views.js';
import { ScalarGrid } from './scalars.js';
import { HistogramsView } from './histograms.js';
import { runsPage } from './runs_table.js';
import { annotationsSection } from './annotations.js';
import { mountNotifications } from './notify.js';

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
  xAxis: typeof stored.xAxis === 'string' ? stored.xAxis : 'step',  // step, epoch, samples, wall, relative
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
  histograms: (run) => getJSON(`api/runs/${enc(run)}/histograms`),
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
  // Every scalar as small multiples, and the weight and gradient histograms: on the charts' axis.
  const scalarsRoot = h('div');
  const scalars = new ScalarGrid(scalarsRoot, charts);
  const histogramsRoot = h('div');
  const histograms = new HistogramsView(histogramsRoot, charts, charts.runs[0], () => apiSource.histograms(name));
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
    annotationsSection(name, detail.annotations),
    dataCheck ? null : section('Charts', chartsRoot, toolbar(settings, charts, saveSettings)),
    dataCheck ? null : section('All scalars', scalarsRoot),
    dataCheck ? null : section('Weights and gradients', histogramsRoot),
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
    clear(findingsBox).appendChild(findingsView(list, maxStep, d.results?.verify?.remedies));
    findingsCount.textContent = list.length ? `${list.length} finding${list.length > 1 ? 's' : ''}` : '';
    charts.setFindings(list);
  };
  renderDetail(detail);
  renderFindings(firstFindings, detail);
  await charts.build();

  let version = firstVersion;
  let tagCount = (detail.tags || []).length;
  let status = detail.status;
  const polling = poller(async () => {
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
  return { stop: () => { polling.stop(); scalars.destroy(); histograms.destroy(); } };
}

// ---- several runs ----
// ?group=<setting key>: one colour per value of that setting, each group drawn as its mean and a
// mean ± std band over its runs (seeds).
async function comparePage(names, query) {
  const details = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}`)));
  setCrumbs({ text: 'runs', href: '#/' }, { text: `compare ${names.length} runs` });
  const runs = names.map((name, i) => ({ name, detail: details[i], color: colorFor(i) }));
  const groupKey = query.get('group') || '';
  const groups = groupKey ? groupRuns(runs, groupKey) : null;
  if (groups) for (const g of groups) for (const r of g.runs) r.color = g.color;
  const chartsRoot = h('div');
  const charts = new RunCharts(chartsRoot, { runs, source: apiSource, settings, onSettings: saveSettings, groups });
  const scalarsRoot = h('div');
  const scalars = new ScalarGrid(scalarsRoot, charts);
  const tools = toolbar(settings, charts, saveSettings);
  tools.prepend(groupPicker(names, runs, groupKey));
  const title = groups ? `Comparing ${names.length} runs in ${groups.length} group${groups.length === 1 ? '' : 's'} by ${groupKey}` : `Comparing ${names.length} runs`;
  clear(app).append(
    h('div', { class: 'run-title' }, h('h1', { text: title })),
    section('Runs', compareTable(runs, groups)),
    dataWarning(runs) || '',
    section('Charts', chartsRoot, tools),
    section('All scalars', scalarsRoot),
    section('Settings that differ', configDiff(runs)));
  await charts.build();
  const versions = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}/version`)));
  const polling = poller(async () => {
    const now = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}/version`)));
    if (JSON.stringify(now) === JSON.stringify(versions)) return;
    const fresh = await Promise.all(names.map((n) => getJSON(`api/runs/${enc(n)}`)));
    fresh.forEach((d, i) => { runs[i].detail = d; versions[i] = now[i]; });
    await charts.refresh();
  }, () => (runs.every((r) => ENDED.has(r.detail.status)) ? POLL_FINISHED_MS : POLL_MS));
  return { stop: () => { polling.stop(); scalars.destroy(); } };
}

// The setting to group the runs by: those whose value differs between them.
function groupPicker(names, runs, current) {
  const keys = new Set();
  const maps = runs.map((r) => new Map((r.detail.settings || []).map((s) => [s.key, s.value])));
  maps.forEach((m) => m.forEach((_, k) => keys.add(k)));
  const differ = [...keys].sort().filter((k) => k !== 'run.name' && new Set(maps.map((m) => m.get(k))).size > 1);
  if (current && !differ.includes(current)) differ.unshift(current);
  const select = h('select', { 'aria-label': 'group by' }, h('option', { value: '', text: 'none (one line per run)' }),
    differ.map((k) => h('option', { value: k, text: k, selected: k === current })));
  select.addEventListener('change', () => {
    location.hash = `#/compare/${names.map(enc).join(',')}${select.value ? `?group=${enc(select.value)}` : ''}`;
  });
  return h('label', { title: 'one colour per value of a setting: the mean over its runs and a band of ± one standard deviation' }, 'group by ', select);
}

function compareTable(runs, groups) {
  const groupOf = (r) => groups && groups.find((g) => g.runs.includes(r));
  return h('table', { class: 'runs compare' },
    h('thead', null, h('tr', null, ['', 'run', groups ? `group: ${groups[0].key}` : null, 'status', 'best val', 'best epoch', 'epochs', 'duration'].filter((t) => t !== null).map((t) => h('th', { text: t })))),
    h('tbody', null, runs.map((r) => h('tr', null,
      h('td', null, h('span', { class: 'swatch', style: { background: r.color } })),
      h('td', { class: 'name' }, h('a', { href: `#/run/${enc(r.name)}`, text: r.detail.display_name || r.name })),
      groups ? h('td', { class: 'mono', text: `${groupOf(r).value} (n=${groupOf(r).runs.length})` }) : null,
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
    else if (hash.startsWith('#/compare/')) {
      const [list, query] = hash.slice(10).split('?');
      page = await comparePage(list.split(',').filter(Boolean).map(decodeURIComponent), new URLSearchParams(query || ''));
    }
    else page = await runsPage({ app, setCrumbs, poller });
  } catch (e) {
    showError(e);
  }
  document.body.dataset.ready = hash;
}

mountNotifications(document.getElementById('notify'));
window.addEventListener('hashchange', route);
route();
