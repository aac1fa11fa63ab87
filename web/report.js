// The static report: the run view over data inlined in the HTML file (no server, no network).
import { h } from './util.js';
import { RunCharts, findingsView, testResultsView, settingsView, checkpointsView, runFacts, section, colorFor } from './views.js';
import { ScalarGrid } from './scalars.js';

const reportData = JSON.parse(document.getElementById('report-data').textContent);
const reportRun = reportData.run;
const reportSeries = new Map(reportData.series.map((s) => [`${s.split}\u001f${s.tag}`, s]));

const inlineSource = {
  series: async (run, split, tag, { from, to } = {}) => {
    const s = reportSeries.get(`${split}\u001f${tag}`) || { step: [], value: [], count: 0 };
    if (from === null || from === undefined) return s;
    const keep = s.step.map((x, i) => i).filter((i) => s.step[i] >= from && s.step[i] <= to);
    const pick = (a) => (a ? keep.map((i) => a[i]) : a);
    return { ...s, step: pick(s.step), value: pick(s.value), epoch: pick(s.epoch), wall_time: pick(s.wall_time), count: keep.length };
  },
  csv: null,
};

const reportRoot = document.getElementById('app');
const reportCharts = h('div');
const reportScalars = h('div');
const reportMaxStep = Math.max(0, ...(reportRun.tags || []).map((t) => t.last_step || 0));
reportRoot.append(
  h('header', { class: 'topbar' }, h('span', { class: 'brand', text: 'trainscope' }), h('span', { class: 'crumbs', text: 'report' })),
  h('main', null,
    h('div', { class: 'run-title' }, h('h1', { text: reportRun.display_name || reportRun.name }),
      h('span', { class: 'muted', text: `report written ${new Date(reportData.generated_at * 1000).toLocaleString()}` })),
    runFacts(reportRun),
    section('Charts', reportCharts),
    section('All scalars', reportScalars),
    section('Findings', findingsView(reportData.findings, reportMaxStep)),
    section('Test results', testResultsView(reportRun.results)),
    section('Checkpoints', checkpointsView(reportRun.checkpoints)),
    section('Resolved config', settingsView(reportRun.settings))));
// The dashboard's defaults: per-step series smoothed as TensorBoard does, with the raw values.
const charts = new RunCharts(reportCharts, { runs: [{ name: reportRun.name, detail: reportRun, color: colorFor(0) }], source: inlineSource, settings: { smoothing: 0.6, logs: {} } });
new ScalarGrid(reportScalars, charts);
charts.setFindings(reportData.findings);
charts.build().then(() => { document.body.dataset.ready = 'report'; });
