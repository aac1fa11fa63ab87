// The run view, shared by the live dashboard (data from the API) and the static report (data
// inlined in the file): charts, heatmap, findings timeline, test results, config, checkpoints.
import { h, clear, fmt, fmtPercent, fmtDuration, fmtTime, emaSmooth, RUN_COLORS, withSettings } from './util.js';
import { LineChart, heatmap, confusionMatrix } from './charts.js';

const TRAIN = '#2563eb', VAL = '#e8590c', STEP = '#60a5fa';
const HEAT_PREFIXES = ['grad_norm/', 'update_ratio/', 'weight_norm/', 'zero_grad/', 'dead_relu/', 'saturated/'];

export function hasTag(tags, split, tag) {
  return tags.some((t) => t.split === split && t.tag === tag);
}

// Which charts a run (or several) gets, from the tags that exist. Only the series logged every
// few steps (smooth: true) are smoothed: a per-epoch value is an average over the epoch already,
// and smoothing it would misstate it; the lr is a setting, shown as it was.
export function chartPlan(tags) {
  const plan = [];
  const line = (split, tag, label, color, dash, smooth = false) => (hasTag(tags, split, tag) ? [{ split, tag, label, color, dash, smooth }] : []);
  const loss = [...line('train', 'step_loss', 'train (per step)', STEP, undefined, true), ...line('train', 'loss', 'train (epoch mean)', TRAIN), ...line('val', 'loss', 'val', VAL, [6, 4])];
  if (loss.length) plan.push({ id: 'loss', title: 'Loss', yLabel: 'loss', lines: loss });
  for (const [tag, title, yLabel] of [['accuracy', 'Accuracy', 'accuracy (fraction)'], ['mae', 'MAE', 'mean absolute error'], ['rmse', 'RMSE', 'root mean squared error']]) {
    const lines = [...line('train', tag, 'train', TRAIN), ...line('val', tag, 'val', VAL, [6, 4])];
    if (lines.length) plan.push({ id: tag, title, yLabel, lines });
  }
  const lr = line('train', 'lr', 'lr', '#7c3aed');
  if (lr.length) plan.push({ id: 'lr', title: 'Learning rate', yLabel: 'learning rate', lines: lr, log: true });
  const gn = line('train', 'grad_norm', 'global gradient norm', '#0f9d58', undefined, true);
  if (gn.length) plan.push({ id: 'grad_norm', title: 'Global gradient norm', yLabel: 'L2 norm', lines: gn, log: true });
  // The gradient noise scale (McCandlish et al. 2018): near the critical batch size, the epoch's
  // estimate so far at each logging step.
  const noise = line('train', 'noise_scale', 'gradient noise scale', '#9333ea');
  if (noise.length) plan.push({ id: 'noise_scale', title: 'Gradient noise scale (critical batch size)', yLabel: 'examples per step', lines: noise, log: true });
  const cpu = line('system', 'cpu_percent', 'process CPU, all threads', '#0891b2');
  if (cpu.length) plan.push({ id: 'cpu', title: 'Process CPU', yLabel: 'CPU % (100 = one core busy)', lines: cpu });
  const rss = line('system', 'rss_mib', 'resident memory', '#b45309');
  if (rss.length) plan.push({ id: 'rss', title: 'Process memory', yLabel: 'resident set (MiB)', lines: rss });
  return plan;
}

const SEVERITY_COLORS = { error: '#c62828', warning: '#e8590c', info: '#5b6472' };

export function heatGroups(tags) {
  const groups = [];
  for (const prefix of HEAT_PREFIXES) {
    const layers = tags.filter((t) => t.split === 'train' && t.tag.startsWith(prefix)).map((t) => t.tag)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (layers.length) groups.push({ prefix, layers });
  }
  return groups;
}

export function otherTags(tags) {
  const shown = new Set(['train/step_loss', 'train/loss', 'val/loss', 'train/accuracy', 'val/accuracy', 'train/mae', 'val/mae',
    'train/rmse', 'val/rmse', 'train/lr', 'train/grad_norm', 'train/noise_scale', 'system/cpu_percent', 'system/rss_mib']);
  return tags.filter((t) => !shown.has(`${t.split}/${t.tag}`) && !HEAT_PREFIXES.some((p) => t.tag.startsWith(p)));
}

// Keeps the last of points that share a step (lr is stored per step and again per epoch).
function dedupe(x, y) {
  const xs = [], ys = [];
  for (let i = 0; i < x.length; i++) {
    if (xs.length && xs[xs.length - 1] === x[i]) ys[ys.length - 1] = y[i];
    else { xs.push(x[i]); ys.push(y[i]); }
  }
  return [xs, ys];
}

export function statusBadge(status, reason) {
  const s = status || 'unknown';
  const text = s === 'stopped' && reason ? `stopped: ${reason.replace(/_/g, ' ')}` : s;
  return h('span', { class: `badge status-${s.replace(/[^a-z]/g, '')}`, text });
}

export function severityBadge(sev) {
  return h('span', { class: `badge sev-${String(sev).replace(/[^a-z]/g, '')}`, text: sev || 'info' });
}

export function bestMetricText(run) {
  const m = run.best_val_metric;
  if (!m) return run.best_val_loss !== null && run.best_val_loss !== undefined ? `loss ${fmt(run.best_val_loss)}` : '–';
  return m.tag === 'accuracy' ? `${fmtPercent(m.value)} acc` : `${fmt(m.value)} ${m.tag}`;
}

// A page of charts over one or several runs. source.series(runName, split, tag, {points, from, to})
// returns {step, value, count, returned}; source.csv(runName, split, tag) a link or null.
export class RunCharts {
  constructor(root, { runs, source, settings, onSettings = null }) {
    this.root = root;
    this.runs = runs;             // [{name, detail, color}]
    this.source = source;
    this.settings = settings;     // {smoothing, logs: {chart id: bool}}
    this.onSettings = onSettings;
    this.charts = [];             // {chart, spec, range, full}
    this.heat = [];
    this.otherChart = null;
    this.epochSteps = [];
    this.findingMarkers = [];
  }

  // A chart's log axis: the user's last choice for it, else its default (lr, gradient norm).
  logFor(id, byDefault) {
    const logs = this.settings.logs || {};
    return id in logs ? !!logs[id] : !!byDefault;
  }

  saveLog(id, on) {
    this.settings.logs = { ...(this.settings.logs || {}), [id]: on };
    if (this.onSettings) this.onSettings();
  }

  // Findings, as markers on the loss chart at their step (pre-flight findings have none).
  setFindings(findings) {
    this.findingMarkers = (findings || []).filter((f) => (f.step || 0) > 0)
      .map((f) => ({ x: f.step, color: SEVERITY_COLORS[f.severity] || SEVERITY_COLORS.info }));
    const loss = this.charts.find((e) => e.spec.id === 'loss');
    if (loss) loss.chart.setOverlays({ markers: this.findingMarkers });
  }

  tags() {
    const seen = new Map();
    for (const r of this.runs) for (const t of r.detail.tags || []) seen.set(`${t.split}/${t.tag}`, t);
    return [...seen.values()];
  }

  async build() {
    for (const e of [...this.charts, this.otherChart].filter(Boolean)) e.chart.destroy();
    for (const hm of this.heat) hm.destroy();
    this.charts = [];
    this.otherChart = null;
    this.heat = [];
    this.heatSelect = null;
    this.heatAt = 0;
    clear(this.root);
    const tags = this.tags();
    const plan = chartPlan(tags);
    const grid = h('div', { class: 'chart-grid' });
    this.root.appendChild(grid);
    if (plan.length === 0) grid.appendChild(h('p', { class: 'muted', text: 'No metrics yet: the charts appear with the first logged step.' }));
    for (const spec of plan) {
      const entry = { spec, range: [null, null], full: new Map() };
      entry.chart = new LineChart(grid, {
        title: spec.title, id: spec.id, log: this.logFor(spec.id, spec.log), yLabel: spec.yLabel,
        onZoom: (from, to) => { entry.range = [from, to]; this.loadChart(entry); },
        onLog: (on) => this.saveLog(spec.id, on),
      });
      if (spec.id === 'loss') entry.chart.setOverlays({ markers: this.findingMarkers });
      if (this.source.csv && this.runs.length === 1) {
        const links = spec.lines.map((l) => h('a', { class: 'csv', href: this.source.csv(this.runs[0].name, l.split, l.tag), download: '', title: `download ${l.split}/${l.tag} as CSV`, text: `${l.split}/${l.tag}` }));
        entry.chart.el.appendChild(h('div', { class: 'chart-foot' }, h('span', { class: 'muted', text: 'CSV: ' }), links));
      }
      this.charts.push(entry);
    }
    this.heatRoot = h('div', { class: 'heat-root' });
    this.root.appendChild(this.heatRoot);
    this.otherRoot = h('div', { class: 'other-root' });
    this.root.appendChild(this.otherRoot);
    this.buildOther(tags);
    await this.refresh();
  }

  buildOther(tags) {
    const others = otherTags(tags);
    clear(this.otherRoot);
    if (!others.length) return;
    const select = h('select', { class: 'tag-select', 'aria-label': 'metric' },
      others.map((t) => h('option', { value: `${t.split}\u001f${t.tag}`, text: `${t.split}/${t.tag}` })));
    const box = h('div', { class: 'chart-grid one' });
    this.otherRoot.append(h('div', { class: 'section-head' }, h('h2', { text: 'More metrics' }), select), box);
    const entry = { spec: null, range: [null, null], full: new Map() };
    entry.chart = new LineChart(box, {
      title: 'metric', id: 'other', log: this.logFor('other', false),
      onZoom: (f, t) => { entry.range = [f, t]; this.loadChart(entry); }, onLog: (on) => this.saveLog('other', on),
    });
    const pick = () => {
      const [split, tag] = select.value.split('\u001f');
      entry.spec = { id: 'other', title: `${split}/${tag}`, yLabel: tag, lines: [{ split, tag, label: `${split}/${tag}`, color: TRAIN }] };
      entry.full = new Map();
      entry.chart.el.querySelector('h3').textContent = `${split}/${tag}`;
      entry.range = [null, null];
      entry.chart.zoomed = false;
      this.loadChart(entry);
    };
    select.addEventListener('change', pick);
    this.otherChart = entry;
    pick();
  }

  async loadChart(entry) {
    if (!entry.spec) return;
    const points = Math.min(Math.max(Math.round(entry.chart.width() * 2), 400), 4000);
    const [from, to] = entry.range;
    const lines = [];
    const jobs = [];
    const multi = this.runs.length > 1;
    this.runs.forEach((run, ri) => {
      for (const l of entry.spec.lines) {
        if (!(run.detail.tags || []).some((t) => t.split === l.split && t.tag === l.tag)) continue;
        jobs.push(this.source.series(run.name, l.split, l.tag, { points, from, to }).then((s) => ({ run, ri, l, s })));
      }
    });
    const results = await Promise.all(jobs);
    let total = 0, returned = 0;
    for (const { run, ri, l, s } of results) {
      total += s.count || 0;
      returned += s.step.length;
      const [x, y] = dedupe(s.step, s.value);
      const color = multi ? run.color : l.color;
      const label = multi ? `${run.detail.display_name || run.name} · ${l.label}` : l.label;
      const w = this.settings.smoothing;
      if (l.smooth && w > 0 && x.length > 8) {
        // Smoothed over the whole series: a zoomed window continues the average of the points
        // before it (from the last whole-series load) instead of starting a new one.
        const key = `${run.name}\u001f${l.split}\u001f${l.tag}`;
        const zoomed = entry.range[0] !== null;
        let seed;
        const full = entry.full.get(key);
        if (zoomed && full && full.w === w) {
          let k = -1;
          while (k + 1 < full.x.length && full.x[k + 1] < x[0]) k++;
          if (k >= 0) seed = full.y[k];
        }
        const smoothed = emaSmooth(y, w, seed);
        if (!zoomed) entry.full.set(key, { x, y: smoothed, w });
        lines.push({ label: label + ' (raw)', color, dash: l.dash, x, y, raw: true });
        lines.push({ label: `${label}, smoothed`, color, dash: l.dash, x, y: smoothed });
      } else {
        lines.push({ label, color, dash: l.dash, x, y });
      }
    }
    const note = total > returned ? `${fmt(returned)} of ${fmt(total)} points (min/max per bucket)` : `${fmt(total)} points`;
    entry.chart.setData(lines, entry.range[0] !== null ? note + ' · zoomed, double-click to reset' : note);
    entry.chart.setOverlays({ vlines: this.epochSteps });
  }

  // Epoch ends, as faint lines on every chart: the steps of the first run's per-epoch loss.
  async loadEpochs() {
    const run = this.runs[0];
    if (!run || !hasTag(run.detail.tags || [], 'train', 'loss')) { this.epochSteps = []; return; }
    const s = await this.source.series(run.name, 'train', 'loss', { points: 400 });
    this.epochSteps = s.step.length <= 200 ? s.step : [];
  }

  async refresh() {
    await this.loadEpochs();
    await Promise.all(this.charts.map((e) => this.loadChart(e)));
    if (this.otherChart) await this.loadChart(this.otherChart);
    // The heatmap (one request per layer) follows a live run at most every 2 s.
    const now = Date.now();
    if (!this.heatAt || now - this.heatAt > 2000) {
      this.heatAt = now;
      await this.refreshHeat();
    }
  }

  async refreshHeat() {
    const run = this.runs[0];
    const groups = heatGroups(run.detail.tags || []);
    if (!groups.length) { clear(this.heatRoot); return; }
    if (!this.heatSelect) {
      this.heatSelect = h('select', { class: 'tag-select', 'aria-label': 'per-layer signal' }, groups.map((g) => h('option', { value: g.prefix, text: g.prefix.replace('/', '') })));
      this.heatSelect.addEventListener('change', () => this.refreshHeat());
      this.heatBox = h('div');
      this.heatRoot.append(h('div', { class: 'section-head' }, h('h2', { text: 'Per layer' }), this.heatSelect), this.heatBox);
    }
    const g = groups.find((x) => x.prefix === this.heatSelect.value) || groups[0];
    const rows = await Promise.all(g.layers.map((tag) => this.source.series(run.name, 'train', tag, { points: 600 })
      .then((s) => ({ label: tag.slice(g.prefix.length), x: s.step, y: s.value }))));
    for (const hm of this.heat) hm.destroy();
    this.heat = [heatmap(this.heatBox, rows, { title: `${g.prefix.replace('/', '')} per layer over steps` })];
  }

  setSmoothing(w) {
    this.settings.smoothing = w;
    for (const e of [...this.charts, this.otherChart].filter(Boolean)) e.full = new Map();
    this.refresh();
  }
}

export function toolbar(settings, charts, onChange) {
  const value = h('span', { class: 'smooth-value', text: settings.smoothing.toFixed(2) });
  const slider = h('input', { type: 'range', min: '0', max: '0.99', step: '0.01', value: String(settings.smoothing), 'aria-label': 'smoothing' });
  slider.addEventListener('input', () => { value.textContent = Number(slider.value).toFixed(2); });
  slider.addEventListener('change', () => { charts.setSmoothing(Number(slider.value)); onChange && onChange(); });
  return h('div', { class: 'toolbar' },
    h('label', { title: 'debiased exponential moving average, as TensorBoard smooths; applied to the series logged every few steps, never to per-epoch values or the lr' }, 'Smoothing (per-step series) ', slider, value),
    h('span', { class: 'muted hint', text: 'hover for raw values · drag across a chart to zoom · double-click to reset' }));
}

export function findingsView(findings, maxStep) {
  const box = h('div', { class: 'findings' });
  if (!findings.length) {
    box.appendChild(h('p', { class: 'muted', text: 'No findings: the diagnostics saw nothing wrong so far.' }));
    return box;
  }
  const lastStep = Math.max(maxStep || 0, ...findings.map((f) => f.step || 0), 1);
  // Before training (pre-flight and data checks): no step to place them at.
  const beforeTraining = (f) => !f.step && !f.epoch;
  const track = h('div', { class: 'timeline', title: 'findings by step' });
  const cards = h('div', { class: 'finding-cards' });
  findings.forEach((f, i) => {
    const sev = String(f.severity || 'info').replace(/[^a-z]/g, '');
    const card = h('article', { class: `finding sev-${sev}`, id: `finding-${i}` },
      h('header', null, severityBadge(f.severity), h('strong', { class: 'kind', text: String(f.kind || '').replace(/_/g, ' ') }),
        h('span', { class: 'muted', text: beforeTraining(f) ? 'before training' : `step ${fmt(f.step)} · epoch ${fmt(f.epoch)}` })),
      h('p', { class: 'message' }, withSettings(f.message)),
      evidenceTable(f.evidence),
      f.remedy ? h('p', { class: 'remedy' }, h('span', { class: 'remedy-label', text: 'Remedy' }), h('span', null, withSettings(f.remedy))) : null);
    cards.appendChild(card);
    track.appendChild(h('button', {
      class: `tick sev-${sev}`, style: { left: `${(100 * (f.step || 0)) / lastStep}%` }, title: `${f.kind} at step ${f.step}`,
      'aria-label': `${f.kind} at step ${f.step}`, onclick: () => { card.scrollIntoView({ behavior: 'smooth', block: 'center' }); card.classList.add('flash'); setTimeout(() => card.classList.remove('flash'), 1200); },
    }));
  });
  box.append(h('div', { class: 'timeline-wrap' }, h('span', { class: 'muted', text: 'step 0' }), track, h('span', { class: 'muted', text: `step ${fmt(lastStep)}` })), cards);
  return box;
}

function evidenceTable(evidence) {
  if (evidence === null || evidence === undefined || evidence === '') return null;
  if (typeof evidence !== 'object') return h('pre', { class: 'evidence', text: String(evidence) });
  const entries = Object.entries(evidence);
  if (!entries.length) return null;
  return h('dl', { class: 'evidence' }, entries.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: typeof v === 'number' ? fmt(v, 6) : typeof v === 'object' ? JSON.stringify(v) : String(v) })]));
}

export function testResultsView(results) {
  const test = results && results.test;
  if (!test) return h('p', { class: 'muted', text: 'No test results: `trainscope train` tests after training, or run `trainscope test RUN`.' });
  const box = h('div', { class: 'test-results' });
  const task = typeof test.task === 'string' ? test.task : 'classification';
  const percent = new Set(['accuracy', 'exact_match', 'miou']);
  if (test.metrics && typeof test.metrics === 'object') {
    box.appendChild(h('div', { class: 'stat-row' }, Object.entries(test.metrics).map(([k, v]) =>
      h('div', { class: 'stat' }, h('div', { class: 'stat-label', text: k }), h('div', { class: 'stat-value', text: percent.has(k) || k.endsWith('_accuracy') ? fmtPercent(v) : fmt(v) })))));
  }
  const perClass = Array.isArray(test.per_class) ? test.per_class : [];
  const names = perClass.map((c) => c.class);
  const parts = h('div', { class: 'test-grid' });
  const positions = task === 'segmentation' ? 'pixels' : task === 'sequence' ? 'steps' : '';
  if (Array.isArray(test.confusion_matrix)) {
    parts.appendChild(h('div', { class: 'card-inner' }, h('h3', { text: positions ? `Confusion matrix (${positions})` : 'Confusion matrix' }), h('div', { class: 'scroll-x' }, confusionMatrix(test.confusion_matrix, names))));
  }
  if (perClass.length) {
    // Multilabel: one row per label; segmentation and sequence add each class's IoU.
    const unit = task === 'multilabel' ? 'label' : 'class';
    const iou = perClass.some((c) => Object.prototype.hasOwnProperty.call(c, 'iou'));
    const bar = (v) => (v === null || v === undefined ? h('span', { class: 'muted', text: '–' })
      : h('div', { class: 'bar' }, h('div', { class: 'bar-fill', style: { width: `${Math.max(0, Math.min(1, v || 0)) * 100}%` } }), h('span', { text: fmtPercent(v) })));
    const heads = [unit, 'precision', 'recall', 'F1', positions ? `support (${positions})` : 'support'].concat(iou ? ['IoU'] : []);
    parts.appendChild(h('div', { class: 'card-inner' }, h('h3', { text: unit === 'label' ? 'Per label' : 'Per class' }),
      h('table', { class: 'per-class' },
        h('thead', null, h('tr', null, heads.map((t) => h('th', { text: t })))),
        h('tbody', null, perClass.map((c) => h('tr', null, h('td', { text: c.class }), h('td', null, bar(c.precision)), h('td', null, bar(c.recall)), h('td', null, bar(c.f1)), h('td', { class: 'num', text: fmt(c.support) }),
          iou ? h('td', null, bar(c.iou)) : null))))));
  }
  box.appendChild(parts);
  const mistakes = Array.isArray(test.mistakes) ? test.mistakes : [];
  if (mistakes.length) {
    // Only base64 PNG data is ever placed in src: anything else in the store is dropped.
    const image = (m) => (typeof m.png === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(m.png)
      ? h('img', { src: `data:image/png;base64,${m.png}`, alt: `test example ${m.index}` }) : h('div', { class: 'no-image' }));
    box.appendChild(h('div', { class: 'card-inner mistakes' }, h('h3', { text: 'Most confidently wrong test images' }),
      h('div', { class: 'mistake-grid' }, mistakes.map((m) => h('figure', { class: 'mistake' }, image(m),
        h('figcaption', null, h('div', { class: 'mistake-pred', text: `${m.predicted} (${fmtPercent(m.confidence)})` }),
          h('div', { class: 'muted', text: `true: ${m.label} · #${m.index}` })))))));
  }
  return box;
}

// `trainscope check`'s data checks: what was read, copies across splits side by side, and the
// labels a cheap out-of-fold model disputes, each with its image (base64 PNG only).
export function dataCheckView(report) {
  if (!report || typeof report !== 'object') return h('p', { class: 'muted', text: 'No data checks: run `trainscope check`.' });
  const box = h('div', { class: 'data-check' });
  const splits = Array.isArray(report.splits) ? report.splits : [];
  const counts = report.suspect_counts && typeof report.suspect_counts === 'object' ? report.suspect_counts : {};
  const stat = (label, value, key) => h('div', { class: 'stat', dataset: { stat: key } }, h('div', { class: 'stat-label', text: label }), h('div', { class: 'stat-value', text: value }));
  box.appendChild(h('div', { class: 'stat-row' }, [
    ...splits.map((s) => stat(`${s.split} examples`, fmt(s.examples), `examples-${s.split}`)),
    stat('copies across splits', `${fmt(report.exact_pairs ?? 0)} exact · ${report.images ? fmt(report.near_pairs ?? 0) : '–'} near`, 'copies'),
    report.label_noise_checked ? stat('label suspects', splits.filter((s) => s.split in counts).map((s) => `${fmt(counts[s.split])} ${s.split}`).join(' · '), 'suspects') : null,
    report.label_noise_checked ? stat('cheap model, out of fold', fmtPercent(report.oof_accuracy), 'oof') : null,
    stat('broken inputs', fmt(report.broken_count ?? 0), 'broken'),
    stat('took', fmtDuration(report.seconds), 'seconds'),
  ]));
  const image = (png, alt) => (typeof png === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(png)
    ? h('img', { src: `data:image/png;base64,${png}`, alt }) : h('div', { class: 'no-image' }));
  const parts = h('div', { class: 'test-grid' });
  // Class counts per split, as bars scaled to each split's largest class.
  const names = Array.isArray(report.class_names) && report.class_names.length ? report.class_names
    : Object.keys(splits[0]?.class_counts || {});
  if (names.length && splits.some((s) => s.class_counts)) {
    const largest = splits.map((s) => Math.max(1, ...Object.values(s.class_counts || {})));
    const bar = (v, max) => h('div', { class: 'bar' }, h('div', { class: 'bar-fill', style: { width: `${(100 * (v || 0)) / max}%` } }), h('span', { text: fmt(v ?? 0) }));
    parts.appendChild(h('div', { class: 'card-inner' }, h('h3', { text: 'Examples per class' }),
      h('table', { class: 'per-class class-counts' },
        h('thead', null, h('tr', null, h('th', { text: 'class' }), splits.map((s) => h('th', { text: s.split })))),
        h('tbody', null, names.map((n) => h('tr', null, h('td', { text: n }), splits.map((s, i) => h('td', null, bar((s.class_counts || {})[n], largest[i])))))))));
  }
  box.appendChild(parts);
  const pairs = Array.isArray(report.duplicates) ? report.duplicates : [];
  const total = (report.exact_pairs ?? 0) + (report.near_pairs ?? 0);
  if (pairs.length) {
    const label = (v) => (v === null || v === undefined ? '' : String(v));
    box.appendChild(h('div', { class: 'card-inner', dataset: { copies: '' } },
      h('h3', { text: `Copies across splits${total > pairs.length ? ` (the first ${pairs.length} of ${fmt(total)}; the report lists all)` : ''}` }),
      h('div', { class: 'pair-grid' }, pairs.map((p) => {
        const relabeled = p.label_a !== undefined && label(p.label_a) !== label(p.label_b);
        const how = p.kind === 'exact' ? 'exact copy' : `near: r ${Number(p.correlation).toFixed(4)}${Array.isArray(p.shift) && (p.shift[0] || p.shift[1]) ? `, moved ${p.shift[0]},${p.shift[1]}` : ''}`;
        return h('figure', { class: `pair${relabeled ? ' relabeled' : ''}`, dataset: { kind: p.kind } },
          h('div', { class: 'pair-images' }, image(p.png_a, `${p.split_a} example ${p.a}`), image(p.png_b, `${p.split_b} example ${p.b}`)),
          h('figcaption', null,
            h('div', { class: 'pair-where', text: `${p.split_a} #${p.a} · ${p.split_b} #${p.b}` }),
            h('div', { class: 'muted', text: how }),
            p.label_a !== undefined ? h('div', { class: relabeled ? 'pair-labels bad' : 'pair-labels muted', text: relabeled ? `labels differ: ${label(p.label_a)} vs ${label(p.label_b)}` : label(p.label_a) }) : null));
      }))));
  }
  const suspects = Array.isArray(report.label_suspects) ? report.label_suspects : [];
  for (const split of ['train', 'val', 'test']) {
    const list = suspects.filter((s) => s.split === split);
    if (!list.length) continue;
    const flagged = counts[split] ?? list.length;
    box.appendChild(h('div', { class: 'card-inner mistakes', dataset: { suspects: split } },
      h('h3', { text: `Label suspects in ${split}: the ${list.length} most suspect of ${fmt(flagged)}` }),
      h('div', { class: 'mistake-grid' }, list.map((s) => h('figure', { class: 'mistake suspect' }, image(s.png, `${split} example ${s.index}`),
        h('figcaption', null,
          h('div', { class: 'suspect-given', text: `given: ${s.given}` }),
          h('div', { class: 'mistake-pred', text: `looks like: ${s.suggested} (${fmtPercent(s.suggested_probability)})` }),
          h('div', { class: 'muted', text: `#${s.index}${s.source !== undefined && s.source !== s.index ? ` · file row ${s.source}` : ''}`, title: 'its index in the split, and its row in the file the split was read from' })))))));
  }
  if (!pairs.length && !suspects.length && !(report.broken_count > 0))
    box.appendChild(h('p', { class: 'muted', text: 'No copies across splits, label suspects or broken inputs found.' }));
  return box;
}

export function settingsView(settings) {
  if (!settings || !settings.length) return h('p', { class: 'muted', text: 'No settings recorded.' });
  const filter = h('input', { type: 'search', placeholder: 'filter settings', class: 'filter', 'aria-label': 'filter settings' });
  const rows = settings.map((s) => h('tr', { class: s.source === 'default' ? '' : 'changed' },
    h('td', { class: 'key', text: s.key }), h('td', { class: 'value', text: s.value }), h('td', { class: 'source', text: s.source }), h('td', { class: 'reason muted', text: s.reason })));
  filter.addEventListener('input', () => {
    const q = filter.value.toLowerCase();
    rows.forEach((r) => { r.style.display = r.textContent.toLowerCase().includes(q) ? '' : 'none'; });
  });
  return h('div', null, filter, h('div', { class: 'scroll-x' }, h('table', { class: 'settings' },
    h('thead', null, h('tr', null, ['key', 'value', 'source', 'reason'].map((t) => h('th', { text: t })))), h('tbody', null, rows))));
}

export function checkpointsView(checkpoints) {
  if (!checkpoints || !checkpoints.length) return h('p', { class: 'muted', text: 'No checkpoints.' });
  // One row per file: the latest record of each path (the server lists only files on disk).
  const latest = new Map();
  for (const c of checkpoints) latest.set(c.path, c);
  const size = (b) => (b === undefined || b === null ? '–' : b >= 1048576 ? `${(b / 1048576).toFixed(1)} MiB` : `${Math.ceil(b / 1024)} KiB`);
  return h('table', { class: 'checkpoints' },
    h('thead', null, h('tr', null, ['file', 'kind', 'epoch', 'step', 'monitor', 'value', 'size', 'saved'].map((t) => h('th', { text: t })))),
    h('tbody', null, [...latest.values()].map((c) => h('tr', null, h('td', { class: 'mono', text: c.path }), h('td', { text: c.kind }), h('td', { class: 'num', text: fmt(c.epoch) }),
      h('td', { class: 'num', text: fmt(c.step) }), h('td', { text: c.monitor }), h('td', { class: 'num', text: fmt(c.value) }), h('td', { class: 'num', text: size(c.bytes) }), h('td', { text: fmtTime(c.wall_time) })))));
}

export function runFacts(run) {
  if (run.meta?.kind === 'data_check') {
    return h('div', { class: 'facts' }, [['status', statusBadge(run.status, run.stop_reason)], ['kind', 'data checks'],
      ['data', run.meta['data.source'] || '–'], ['started', fmtTime(run.started_at)]]
      .map(([k, v]) => h('div', { class: 'fact' }, h('div', { class: 'fact-label', text: k }), h('div', { class: 'fact-value', dataset: { fact: k } }, v))));
  }
  const facts = [
    ['status', statusBadge(run.status, run.stop_reason)],
    ['model', run.model || '–'],
    ['best val', bestMetricText(run)],
    ['best epoch', run.best_epoch ?? '–'],
    ['epochs', run.max_epochs ? `${run.epochs} / ${run.max_epochs}` : String(run.epochs ?? '–')],
    ['duration', fmtDuration(run.duration)],
    ['started', fmtTime(run.started_at)],
  ];
  const meta = run.meta || {};
  if (meta.host) facts.push(['host', meta.host]);
  if (meta['git.commit'])
    facts.push(['git', h('span', { dataset: { fact: 'git' }, title: meta['git.dirty'] === 'true' ? 'uncommitted changes: their diff is kept in the run (results git/diff)' : 'a clean work tree',
      text: `${meta['git.commit'].slice(0, 10)}${meta['git.dirty'] === 'true' ? ' + changes' : ''}` })]);
  const box = h('div', { class: 'facts' }, facts.map(([k, v]) => h('div', { class: 'fact' }, h('div', { class: 'fact-label', text: k }), h('div', { class: 'fact-value' }, v))));
  if (run.stop_message) box.appendChild(h('div', { class: 'fact wide' }, h('div', { class: 'fact-label', text: 'why it stopped' }), h('div', { class: 'fact-value', text: run.stop_message })));
  // A resumed run's curves continue without a seam (the store is cut back to the checkpoint), so
  // say where it continued from.
  // Where it comes from: the command, the host and the git state of the working directory.
  const m = run.meta || {};
  if (m.command) box.appendChild(h('div', { class: 'fact wide' }, h('div', { class: 'fact-label', text: 'command' }), h('div', { class: 'fact-value mono', dataset: { fact: 'command' }, text: m.command })));
  const resumes = Number(run.meta?.resumes || 0);
  if (resumes > 0) {
    const times = resumes === 1 ? 'once' : `${resumes} times`;
    const text = `${times}; last from ${run.meta.resumed_from || 'its start'} on ${fmtTime(Number(run.meta.resumed_at))}`;
    box.appendChild(h('div', { class: 'fact wide' }, h('div', { class: 'fact-label', text: 'resumed' }), h('div', { class: 'fact-value', dataset: { fact: 'resumed' }, text })));
  }
  return box;
}

export function section(title, content, extra) {
  return h('section', { class: 'card', dataset: { section: title.toLowerCase() } }, h('div', { class: 'section-head' }, h('h2', { text: title }), extra || null), content);
}

export function colorFor(i) { return RUN_COLORS[i % RUN_COLORS.length]; }
