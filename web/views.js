// The run view, shared by the live dashboard (data from the API) and the static report (data
// inlined in the file): charts, heatmap, findings timeline, test results, config, checkpoints.
import { h, clear, fmt, fmtPercent, fmtDuration, fmtTime, emaSmooth, RUN_COLORS, withSettings } from './util.js';
import { LineChart, heatmap, confusionMatrix, X_MODES, xAxisSpec, meanBand, hexAlpha } from './charts.js';

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
  // Sharpness along each logged step against the 2 / lr_eff it may reach before the step
  // overshoots (Cohen et al. 2021): above the dashed line the loss rises on the step's own batch.
  const sharp = [...line('train', 'sharpness/step', 'sharpness along the step', '#be123c', undefined, true), ...line('train', 'sharpness/limit', '2 / lr_eff (edge of stability)', '#5b6472', [6, 4], true)];
  if (sharp.length) plan.push({ id: 'sharpness', title: 'Sharpness against the edge of stability', yLabel: 'curvature along the step', lines: sharp, log: true });
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

// Keeps the last of points that share a step (lr is stored per step and again per epoch), with
// each point's epoch and wall time where the API gives them.
function dedupeSeries(s) {
  const out = { step: [], value: [], epoch: s.epoch ? [] : null, wall_time: s.wall_time ? [] : null, count: s.count ?? s.step.length, returned: s.step.length };
  for (let i = 0; i < s.step.length; i++) {
    const last = out.step.length - 1;
    const at = last >= 0 && out.step[last] === s.step[i] ? last : out.step.length;
    out.step[at] = s.step[i];
    out.value[at] = s.value[i];
    if (out.epoch) out.epoch[at] = s.epoch[i];
    if (out.wall_time) out.wall_time[at] = s.wall_time[i];
  }
  return out;
}

// A setting of a run as plain text: from the run detail's list or the runs list's map, with a
// TOML string's quotes removed ("32" -> 32).
export function settingText(detail, key) {
  const s = detail && detail.settings;
  const v = Array.isArray(s) ? s.find((x) => x.key === key)?.value : s && typeof s === 'object' ? s[key] : undefined;
  if (v === undefined || v === null) return undefined;
  const text = String(v);
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
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

// Where a run's points go on the x axis, for each of X_MODES. A point carries its step, epoch
// and wall time; what turns those into x is the run's own: its epoch ends (the steps of a
// per-epoch series), its batch size (samples seen = step x batch size, approximate where an
// epoch ends in a smaller batch) and its start time.
export class RunClock {
  constructor(detail) {
    this.knots = { step: [], epoch: [], wall: [] };
    this.knotKey = '';
    this.setDetail(detail);
  }

  setDetail(detail) {
    const batch = Number(settingText(detail, 'train.batch_size'));
    this.batch = Number.isFinite(batch) && batch > 0 ? batch : null;
    this.start = Number.isFinite(detail.started_at) ? detail.started_at : null;
  }

  // The epoch ends, from a per-epoch series: {step, epoch, wall_time}.
  setKnots(s) {
    this.knots = { step: s.step.slice(), epoch: s.step.map((_, i) => (s.epoch ? s.epoch[i] : i + 1)), wall: s.wall_time ? s.wall_time.slice() : [] };
  }

  // Why a mode cannot place this run's points, or null when it can.
  missing(mode) {
    if (mode === 'epoch' && !this.knots.step.length) return 'no epoch has ended yet';
    if (mode === 'samples' && !this.batch) return 'its batch size is unknown';
    if (mode === 'relative' && this.start === null) return 'its start time is unknown';
    return null;
  }

  // The fractional epoch at a step: linear between epoch ends (epoch 0 at step 0); past the last
  // end, at the pace of the last epoch.
  epochAt(step) {
    const { step: s, epoch: e } = this.knots;
    const n = s.length;
    if (!n) return null;
    let i = 0;
    while (i < n && s[i] < step) i++;
    if (i < n && s[i] === step) return e[i];
    const [s0, e0, s1, e1] = i === 0 ? [0, 0, s[0], e[0]] : i < n ? [s[i - 1], e[i - 1], s[i], e[i]]
      : n > 1 ? [s[n - 2], e[n - 2], s[n - 1], e[n - 1]] : [0, 0, s[0], e[0]];
    return s1 === s0 ? e1 : e0 + ((e1 - e0) * (step - s0)) / (s1 - s0);
  }

  // The wall time at a step, between the epoch ends' (for marks that have only a step).
  wallAt(step) {
    const { step: s, wall: w } = this.knots;
    if (!w.length) return null;
    if (w.length === 1) return w[0];
    let i = 1;
    while (i < s.length - 1 && s[i] < step) i++;
    return w[i - 1] + ((w[i] - w[i - 1]) * (step - s[i - 1])) / Math.max(s[i] - s[i - 1], 1);
  }

  // x of each point of a series ({step, epoch, wall_time}), or null where the mode cannot place it.
  xs(mode, s) {
    if (this.missing(mode)) return null;
    switch (mode) {
      case 'epoch': return s.step.map((st) => this.epochAt(st));
      case 'samples': return s.step.map((st) => st * this.batch);
      case 'wall': return s.wall_time ? s.wall_time.slice() : null;
      case 'relative': return s.wall_time ? s.wall_time.map((w) => (w === null ? null : w - this.start)) : null;
      default: return s.step.slice();
    }
  }

  // x of one step (epoch ends, findings, histograms); `wall` where the caller knows it.
  xAt(mode, step, wall) {
    if (this.missing(mode)) return null;
    switch (mode) {
      case 'epoch': return this.epochAt(step);
      case 'samples': return step * this.batch;
      case 'wall': return wall ?? this.wallAt(step);
      case 'relative': { const w = wall ?? this.wallAt(step); return w === null ? null : w - this.start; }
      default: return step;
    }
  }

  // The steps to load for an x range: [from, to], null for an open end. Wider than the range
  // where x is not a function of the step alone (wall time: the epoch ends around it), so the
  // chart's edges stay covered; the chart itself shows exactly the range.
  stepRange(mode, [x0, x1]) {
    const floor = (v) => Math.max(0, Math.floor(v)), ceil = (v) => Math.ceil(v);
    switch (mode) {
      case 'step': return [floor(x0), ceil(x1)];
      case 'samples': return this.batch ? [floor(x0 / this.batch), ceil(x1 / this.batch)] : [null, null];
      case 'epoch': return [this.stepAtEpoch(x0, floor), this.stepAtEpoch(x1, ceil)];
      default: {
        const offset = mode === 'relative' ? this.start || 0 : 0;
        const { step: s, wall: w } = this.knots;
        let from = null, to = null;
        for (let i = 0; i < w.length; i++) {
          if (w[i] - offset <= x0) from = s[i];
          if (to === null && w[i] - offset >= x1) to = s[i];
        }
        return [from, to];
      }
    }
  }

  // The inverse of epochAt (it is linear between epoch ends).
  stepAtEpoch(epoch, round) {
    const { step: s, epoch: e } = this.knots;
    if (!s.length) return null;
    const ks = [0, ...s], ke = [0, ...e];
    let i = 1;
    while (i < ks.length - 1 && ke[i] < epoch) i++;
    const v = ks[i - 1] + ((ks[i] - ks[i - 1]) * (epoch - ke[i - 1])) / Math.max(ke[i] - ke[i - 1], 1e-9);
    return round(v);
  }
}

// The per-epoch series whose steps are a run's epoch ends.
const EPOCH_SERIES = [['train', 'loss'], ['val', 'loss'], ['train', 'accuracy'], ['val', 'accuracy']];

let pageCount = 0;

// The charts of one run, of several runs (one colour each), or of groups of runs (one colour per
// group: its mean line and a mean ± std band). One x axis (settings.xAxis), one zoom and one hover
// cursor for every chart of the page, including those of attached views (the small multiples,
// the distributions), which implement build(), refresh() and redraw('axis' | 'range' | 'smoothing').
// source.series(runName, split, tag, {points, from, to}) returns {step, value, epoch, wall_time,
// count, returned}; source.csv(runName, split, tag) a link or null.
export class RunCharts {
  constructor(root, { runs, source, settings, onSettings = null, groups = null }) {
    this.root = root;
    this.runs = runs;             // [{name, detail, color}]
    this.groups = groups;         // null, or [{label, color, runs: [run]}]
    this.source = source;
    this.settings = settings;     // {smoothing, logs: {chart id: bool}, xAxis}
    this.onSettings = onSettings;
    this.charts = [];             // the main grid: {chart, spec, full, seq}
    this.views = [];
    this.heat = [];
    this.range = null;            // the page's zoom in x units, or null for all of the data
    this.sync = `trainscope-charts-${++pageCount}`;
    this.clocks = new Map();      // run name -> RunClock
    this.findings = [];
  }

  get mode() { return X_MODES.some((m) => m.id === this.settings.xAxis) ? this.settings.xAxis : 'step'; }

  attach(view) { this.views.push(view); }

  clock(run) {
    let c = this.clocks.get(run.name);
    if (!c) { c = new RunClock(run.detail); this.clocks.set(run.name, c); }
    return c;
  }

  xAxisSpec() { return xAxisSpec(this.mode, { batches: this.runs.map((r) => this.clock(r).batch) }); }

  // A chart wired to the page: its x axis, zoom and cursor. opts: LineChart's (id, title, yLabel,
  // log, height, logToggle).
  makeChart(container, opts) {
    return new LineChart(container, {
      ...opts, xAxis: this.xAxisSpec(), sync: this.sync, range: () => this.range,
      onZoom: (r) => this.setRange(r), onLog: (on) => this.saveLog(opts.id, on),
    });
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
    this.findings = (findings || []).filter((f) => (f.step || 0) > 0);
    const loss = this.charts.find((e) => e.spec.id === 'loss');
    if (loss) loss.chart.setOverlays({ markers: this.markers() });
  }

  markers() {
    const clock = this.runs[0] && this.clock(this.runs[0]);
    if (!clock) return [];
    return this.findings.map((f) => ({ x: clock.xAt(this.mode, f.step), color: SEVERITY_COLORS[f.severity] || SEVERITY_COLORS.info }))
      .filter((m) => m.x !== null);
  }

  // Epoch ends, as faint lines on every chart, where the runs shown share them (runs of other
  // batch sizes end their epochs at other steps).
  epochLines() {
    const lines = this.runs.map((run) => {
      const clock = this.clock(run);
      return clock.knots.step.map((s, i) => clock.xAt(this.mode, s, clock.knots.wall[i])).filter((x) => x !== null);
    });
    const first = JSON.stringify(lines[0] || []);
    return lines.length && lines[0].length <= 200 && lines.every((l) => JSON.stringify(l) === first) ? lines[0] : [];
  }

  tags() {
    const seen = new Map();
    for (const r of this.runs) for (const t of r.detail.tags || []) seen.set(`${t.split}/${t.tag}`, t);
    return [...seen.values()];
  }

  async build() {
    for (const e of this.charts) e.chart.destroy();
    for (const hm of this.heat) hm.destroy();
    this.charts = [];
    this.heat = [];
    this.heatSelect = null;
    this.heatAt = 0;
    clear(this.root);
    const plan = chartPlan(this.tags());
    const grid = h('div', { class: 'chart-grid' });
    this.root.appendChild(grid);
    if (plan.length === 0) grid.appendChild(h('p', { class: 'muted', text: 'No metrics yet: the charts appear with the first logged step.' }));
    for (const spec of plan) {
      const entry = { spec, full: new Map(), seq: 0 };
      entry.chart = this.makeChart(grid, { title: spec.title, id: spec.id, log: this.logFor(spec.id, spec.log), yLabel: spec.yLabel });
      if (this.source.csv && this.runs.length === 1) {
        const links = spec.lines.map((l) => h('a', { class: 'csv', href: this.source.csv(this.runs[0].name, l.split, l.tag), download: '', title: `download ${l.split}/${l.tag} as CSV`, text: `${l.split}/${l.tag}` }));
        entry.chart.el.appendChild(h('div', { class: 'chart-foot' }, h('span', { class: 'muted', text: 'CSV: ' }), links));
      }
      this.charts.push(entry);
    }
    this.heatRoot = h('div', { class: 'heat-root' });
    this.root.appendChild(this.heatRoot);
    for (const v of this.views) v.build();
    await this.refresh();
  }

  // Each run's epoch ends, loaded again only when its per-epoch series has grown.
  async loadClocks() {
    await Promise.all(this.runs.map(async (run) => {
      const clock = this.clock(run);
      clock.setDetail(run.detail);
      const tags = run.detail.tags || [];
      const pick = EPOCH_SERIES.map(([split, tag]) => tags.find((t) => t.split === split && t.tag === tag)).find(Boolean);
      if (!pick) return;
      const key = `${pick.split}/${pick.tag}/${pick.count}/${pick.last_step}`;
      if (key === clock.knotKey) return;
      clock.setKnots(await this.source.series(run.name, pick.split, pick.tag, { points: 4000 }));
      clock.knotKey = key;
    }));
  }

  async refresh() {
    await this.loadClocks();
    await Promise.all([...this.charts.map((e) => this.loadChart(e)), ...this.views.map((v) => v.refresh())]);
    // The heatmap (one request per layer) follows a live run at most every 2 s.
    const now = Date.now();
    if (!this.heatAt || now - this.heatAt > 2000) {
      this.heatAt = now;
      await this.refreshHeat();
    }
  }

  // The page's zoom: every chart shows it at once, then reloads its points in that range.
  setRange(range) {
    this.range = range && range[1] > range[0] ? range : null;
    for (const e of this.charts) e.chart.showRange();
    for (const v of this.views) v.redraw('range');
    return Promise.all(this.charts.map((e) => this.loadChart(e)));
  }

  setXAxis(mode) {
    this.settings.xAxis = mode;
    if (this.onSettings) this.onSettings();
    this.range = null;
    const spec = this.xAxisSpec();
    for (const e of this.charts) e.chart.setXAxis(spec);
    for (const v of this.views) v.redraw('axis');
    return Promise.all(this.charts.map((e) => this.loadChart(e)));
  }

  setSmoothing(w) {
    this.settings.smoothing = w;
    for (const e of this.charts) e.full = new Map();
    for (const v of this.views) v.redraw('smoothing');
    return Promise.all(this.charts.map((e) => this.loadChart(e)));
  }

  // Loads and draws one chart: entry {chart, spec: {id, lines: [{split, tag, label, color, dash,
  // smooth}]}, full: Map, seq}. Only the last of overlapping loads draws.
  async loadChart(entry) {
    if (!entry.spec || !entry.chart) return;
    const seq = entry.seq = (entry.seq || 0) + 1;
    const points = Math.min(Math.max(Math.round(entry.chart.width() * 2), 400), 4000);
    const mode = this.mode, range = this.range;
    const jobs = [];
    for (const run of this.runs) {
      for (const l of entry.spec.lines) {
        if (!hasTag(run.detail.tags || [], l.split, l.tag)) continue;
        jobs.push(this.loadLine(entry, run, l, { points, mode, range }).then((line) => ({ run, l, line })));
      }
    }
    const results = await Promise.all(jobs);
    if (seq !== entry.seq) return;
    let total = 0, returned = 0;
    const missing = new Map();
    for (const { run, line } of results) {
      total += line.count;
      returned += line.returned;
      if (!line.x) missing.set(run.detail.display_name || run.name, this.clock(run).missing(mode) || 'no wall times');
    }
    const lines = this.groups ? this.groupLines(entry.spec, results, points) : this.runLines(entry.spec, results);
    let note = total > returned ? `${fmt(returned)} of ${fmt(total)} points (min/max per bucket)` : `${fmt(total)} points`;
    if (this.groups) note = `mean ± std over runs · ${note}`;
    if (missing.size) note += ` · not shown: ${[...missing].map(([n, why]) => `${n} (${why})`).join(', ')}`;
    if (range) note += ' · zoomed, double-click to reset';
    entry.chart.setData(lines, note);
    entry.chart.setOverlays({ vlines: this.epochLines(), markers: entry.spec.id === 'loss' ? this.markers() : [] });
  }

  // One series of one run at the page's x: {x (null when the mode cannot place it), steps, y
  // (smoothed where the line is), raw (the unsmoothed y, or null), count, returned}.
  async loadLine(entry, run, l, { points, mode, range }) {
    const clock = this.clock(run);
    const [from, to] = range ? clock.stepRange(mode, range) : [null, null];
    const s = dedupeSeries(await this.source.series(run.name, l.split, l.tag, { points, from, to }));
    const out = { x: clock.xs(mode, s), steps: s.step, y: s.value, raw: null, count: s.count, returned: s.returned };
    const w = this.settings.smoothing;
    if (l.smooth && w > 0 && s.step.length > 8) {
      // Smoothed over the whole series: a zoomed window continues the average of the points
      // before it (from a whole-series load) instead of starting a new one.
      const key = `${run.name}\u001f${l.split}\u001f${l.tag}`;
      let full = entry.full.get(key);
      if (from !== null || to !== null) {
        if (!full || full.w !== w) {
          const whole = dedupeSeries(await this.source.series(run.name, l.split, l.tag, { points }));
          full = { steps: whole.step, y: emaSmooth(whole.value, w), w };
          entry.full.set(key, full);
        }
        let k = -1;
        while (k + 1 < full.steps.length && full.steps[k + 1] < s.step[0]) k++;
        out.y = emaSmooth(s.value, w, k >= 0 ? full.y[k] : undefined);
      } else {
        out.y = emaSmooth(s.value, w);
        entry.full.set(key, { steps: s.step, y: out.y, w });
      }
      out.raw = s.value;
    }
    // uPlot needs x in ascending order; a clock set back can break that for wall time.
    if (out.x && out.x.some((v, i) => i > 0 && v < out.x[i - 1])) sortByX(out);
    return out;
  }

  // A line per run and series: a run's colour when several runs share the chart.
  runLines(spec, results) {
    const multi = this.runs.length > 1;
    const lines = [];
    for (const { run, l, line } of results) {
      if (!line.x) continue;
      const color = multi ? run.color : l.color;
      const label = multi ? `${run.detail.display_name || run.name} · ${l.label}` : l.label;
      if (line.raw) {
        lines.push({ label: `${label} (raw)`, color, dash: l.dash, x: line.x, y: line.raw, raw: true });
        lines.push({ label: `${label}, smoothed`, color, dash: l.dash, x: line.x, y: line.y });
      } else {
        lines.push({ label, color, dash: l.dash, x: line.x, y: line.y });
      }
    }
    return lines;
  }

  // Per group and series: the mean over the group's runs and a ± one standard deviation band,
  // with the number of runs in the legend.
  groupLines(spec, results, points) {
    const lines = [];
    for (const l of spec.lines) {
      for (const g of this.groups) {
        const members = results.filter((r) => r.l === l && g.runs.includes(r.run) && r.line.x);
        if (!members.length) continue;
        const band = meanBand(members.map((r) => ({ x: r.line.x, y: r.line.y })), Math.round(points / 4));
        const name = spec.lines.length > 1 ? `${g.label} · ${l.label}` : g.label;
        const label = `${name} (n=${band.runs})`;
        lines.push({ label, color: g.color, dash: l.dash, x: band.x, y: band.mean, spread: true });
        lines.push({ label: `${label} +std`, color: g.color, x: band.x, y: band.mean.map((m, i) => m + band.std[i]), edge: true, fill: hexAlpha(g.color, 0.16) });
        lines.push({ label: `${label} -std`, color: g.color, x: band.x, y: band.mean.map((m, i) => m - band.std[i]), edge: true });
      }
    }
    return lines;
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
    const of = this.runs.length > 1 ? ` of ${run.detail.display_name || run.name}` : '';
    this.heat = [heatmap(this.heatBox, rows, { title: `${g.prefix.replace('/', '')} per layer over steps${of}` })];
  }
}

function sortByX(line) {
  const order = line.x.map((_, i) => i).sort((a, b) => line.x[a] - line.x[b]);
  for (const k of ['x', 'steps', 'y', 'raw']) if (line[k]) line[k] = order.map((i) => line[k][i]);
}

// Runs grouped by the value of a setting, in order of first appearance: one colour per group.
export function groupRuns(runs, key) {
  const groups = new Map();
  for (const run of runs) {
    const value = settingText(run.detail, key) ?? '(unset)';
    if (!groups.has(value)) groups.set(value, { key, value, label: `${key}=${value}`, color: colorFor(groups.size), runs: [] });
    groups.get(value).runs.push(run);
  }
  return [...groups.values()];
}

export function toolbar(settings, charts, onChange) {
  const value = h('span', { class: 'smooth-value', text: settings.smoothing.toFixed(2) });
  const slider = h('input', { type: 'range', min: '0', max: '0.99', step: '0.01', value: String(settings.smoothing), 'aria-label': 'smoothing' });
  slider.addEventListener('input', () => { value.textContent = Number(slider.value).toFixed(2); });
  slider.addEventListener('change', () => { charts.setSmoothing(Number(slider.value)); onChange && onChange(); });
  const axis = h('select', { 'aria-label': 'x-axis' }, X_MODES.map((m) => h('option', { value: m.id, text: m.name, selected: m.id === charts.mode })));
  axis.addEventListener('change', () => { charts.setXAxis(axis.value); onChange && onChange(); });
  return h('div', { class: 'toolbar' },
    h('label', { title: 'what the x axis of every chart counts. Samples seen is derived as step × batch size (approximate: an epoch\u2019s last batch may be smaller); relative time counts from the run\u2019s start' }, 'x-axis ', axis),
    h('label', { title: 'debiased exponential moving average, as TensorBoard smooths; applied to the series logged every few steps, never to per-epoch values or the lr' }, 'Smoothing (per-step series) ', slider, value),
    h('span', { class: 'muted hint', text: 'hover for raw values · drag across a chart to zoom all · double-click to reset' }));
}

// What `trainscope diagnose RUN --verify` measured for a finding's remedy (the run's result
// verify/remedies): per alternative, the paired effect of the remedy on the replays' final
// validation loss and accuracy with its spread, the verdict, where the replays started, and a
// link comparing them (the baseline and remedy sweeps as two groups).
function verifiedView(checks) {
  if (!checks || !checks.length) return null;
  const signed = (v, digits) => `${v > 0 ? '+' : v < 0 ? '−' : ''}${fmt(Math.abs(v), digits)}`;
  const points = (v) => `${v > 0 ? '+' : v < 0 ? '−' : ''}${(100 * Math.abs(v)).toFixed(2)} pts`;
  const items = checks.map((c) => {
    const settings = Object.entries(c.settings || {}).map(([k, v]) => [h('code', { class: 'setting', text: `${k} = ${v}` }), ' ']);
    const verdict = String(c.verdict || '');
    const badge = h('span', { class: `verdict verdict-${verdict.replace(/[^a-z]+/g, '-')}`, dataset: { verdict }, text: verdict });
    if (!c.sweep) return h('li', null, settings, badge, h('span', { class: 'muted', text: c.note ? `: ${c.note}` : '' }));
    const seeds = (c.with_remedy || []).length;
    const loss = Number.isFinite(c.loss_effect) ? `val loss ${signed(c.loss_effect)} ± ${fmt(c.loss_spread, 2)}` : 'val loss finite where the baseline diverged';
    const acc = Number.isFinite(c.accuracy_effect) ? `, val accuracy ${points(c.accuracy_effect)} ± ${(100 * (c.accuracy_spread || 0)).toFixed(2)}` : '';
    const from = c.from_epoch > 0 ? `from epoch ${c.from_epoch} (${c.from_checkpoint})` : 'from the start';
    const runs = [...(c.baseline || []), ...(c.with_remedy || [])].map((r) => r.run).filter(Boolean);
    return h('li', null, settings, badge,
      h('span', { text: `: ${loss}${acc} (${seeds} seed${seeds === 1 ? '' : 's'}, ${c.epochs} epoch${c.epochs === 1 ? '' : 's'} ${from}). ` }),
      runs.length ? h('a', { class: 'compare-replays', href: `#/compare/${runs.map(encodeURIComponent).join(',')}?group=run.sweep`, text: 'compare the replays' }) : null);
  });
  return h('div', { class: 'verified' }, h('span', { class: 'remedy-label', text: 'Verified by replay' }), h('ul', null, items));
}

export function findingsView(findings, maxStep, verify) {
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
      f.remedy ? h('p', { class: 'remedy' }, h('span', { class: 'remedy-label', text: 'Remedy' }), h('span', null, withSettings(f.remedy))) : null,
      verifiedView((verify?.checks || []).filter((c) => c && c.kind === f.kind)));
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
  // A fork made by `trainscope diagnose --verify`: its history up to the fork is the original's.
  if (m.forked_from) {
    box.appendChild(h('div', { class: 'fact wide' }, h('div', { class: 'fact-label', text: 'forked from' }),
      h('div', { class: 'fact-value', dataset: { fact: 'forked' } }, h('a', { href: `#/run/${encodeURIComponent(m.forked_from)}`, text: m.forked_from }),
        ` at ${m.forked_at || `epoch ${m.forked_epoch}`}: a replay of diagnose --verify; its curves up to epoch ${m.forked_epoch} are the original's`)));
  }
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
