// Charts: line charts on uPlot (drag to zoom, double-click to reset, one zoom and one hover
// cursor for every chart of a page), the x axis they share, a per-layer heatmap and a confusion
// matrix. All labels are set as text.
import uPlot from './vendor/uPlot.esm.js';
import { h, clear, fmt } from './util.js';

// ---- the x axis ----
// What the x axis counts. The points carry step, epoch and wall time; RunCharts (views.js) turns
// them into x values, and the spec below draws the axis for that choice.
export const X_MODES = [
  { id: 'step', name: 'step' },
  { id: 'epoch', name: 'epoch' },
  { id: 'samples', name: 'samples seen' },
  { id: 'wall', name: 'wall time' },
  { id: 'relative', name: 'relative time' },
];

// 1, 2, 5 times the powers of ten from `lo` up: tick spacings that read as round numbers.
function roundIncrs(lo) {
  const out = [];
  for (let m = lo; m <= 1e12; m *= 10) out.push(m, 2 * m, 5 * m);
  return out;
}
const INTEGER_INCRS = roundIncrs(1);
const FRACTION_INCRS = [0.1, 0.2, 0.25, 0.5];
// Durations that read as round times: seconds, minutes, hours, days.
const TIME_INCRS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
  21600, 43200, 86400, 172800, 604800, 1209600, 2592000];

// 12.8k, 1.28M: a count in few characters (ticks are round, so 4 digits tell them apart).
function fmtCompact(v) {
  const a = Math.abs(v);
  for (const [size, unit] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']])
    if (a >= size) return `${Number((v / size).toPrecision(4))}${unit}`;
  return String(Number(v.toPrecision(4)));
}

// 45s, 1m30s, 2h5m, 1d3h: a duration in seconds as a clock-free length of time.
function fmtSpan(seconds, secondDigits = 0) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const sign = seconds < 0 ? '-' : '';
  let s = Math.abs(seconds);
  if (s < 60) return `${sign}${Number(s.toFixed(s < 10 ? Math.max(secondDigits, 1) : secondDigits))}s`;
  s = Math.round(s * 10 ** secondDigits) / 10 ** secondDigits;
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  const sec = Number((s % 60).toFixed(secondDigits));
  const parts = [d && `${d}d`, hr && `${hr}h`, m && `${m}m`, sec && !d && `${sec}s`].filter(Boolean);
  return sign + (parts.join('') || '0s');
}

const pad2 = (n) => String(n).padStart(2, '0');
function clockText(wall, seconds) {
  const d = new Date(wall * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}${seconds ? `:${pad2(d.getSeconds())}` : ''}`;
}
function dateText(wall) {
  const d = new Date(wall * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}

// How a chart draws x for one mode: the axis title (with its unit), the tick spacings and texts,
// and the hover text. `batches`: the batch sizes of the runs shown (samples seen is derived).
export function xAxisSpec(mode, { batches = [] } = {}) {
  const trim = (v) => String(Number(v.toFixed(3)));
  switch (mode) {
    case 'epoch':
      return {
        id: 'epoch', label: 'epoch', legendLabel: 'epoch',
        // Whole epochs, unless the view is under two epochs wide.
        incrs: (u, ai, min, max) => (max - min >= 2 ? INTEGER_INCRS : FRACTION_INCRS.concat(INTEGER_INCRS)),
        tick: (v) => trim(v),
        legend: (v) => Number(v.toFixed(2)).toString(),
      };
    case 'samples': {
      const known = [...new Set(batches.filter((b) => b > 0))];
      const times = known.length === 1 ? `step × ${known[0]}` : 'step × each run\u2019s batch size';
      return {
        id: 'samples', label: `samples seen ≈ ${times} (derived)`, legendLabel: 'samples',
        incrs: INTEGER_INCRS,
        tick: (v) => fmtCompact(v),
        legend: (v) => `≈ ${fmt(Math.round(v))}`,
      };
    }
    case 'wall':
      return {
        id: 'wall', legendLabel: 'time',
        label: (u) => (u && Number.isFinite(u.scales.x.min) ? `wall time, local (${dateText(u.scales.x.min)})` : 'wall time, local'),
        incrs: TIME_INCRS,
        tick: (v, incr) => clockText(v, incr < 60),
        legend: (v) => `${dateText(v)} ${clockText(v, true)}`,
      };
    case 'relative':
      return {
        id: 'relative', label: 'time since the run started', legendLabel: 'since start',
        incrs: TIME_INCRS,
        tick: (v, incr) => fmtSpan(v, incr < 1 ? 1 : 0),
        legend: (v) => fmtSpan(v, 1),
      };
    default:
      return {
        id: 'step', label: 'step', legendLabel: 'step',
        incrs: INTEGER_INCRS,
        tick: (v) => (Math.abs(v) >= 1e5 ? fmtCompact(v) : fmt(v)),
        legend: (v) => fmt(v),
      };
  }
}

// The y range on a log axis: whole decades around the data, and one decade either side of a
// constant series (uPlot's own range collapses to a point there and draws nothing).
function logRange(u, min, max) {
  if (!(min > 0) || !(max > 0)) return [1e-6, 1];
  if (max / min < 1.0001) return [min / 10, max * 10];
  return uPlot.rangeLog(min, max, 10, true);
}

// Significant digits that tell neighbouring ticks apart: 3, or more when the ticks are close
// together relative to their size (a memory chart between 249.0 and 249.5 MiB).
function tickDigits(vals) {
  const finite = vals.filter((v) => v !== null && Number.isFinite(v));
  if (finite.length < 2) return 3;
  const step = Math.abs(finite[1] - finite[0]);
  const size = Math.max(...finite.map(Math.abs));
  if (!(step > 0) || !(size > 0)) return 3;
  return Math.min(10, Math.max(3, Math.ceil(Math.log10(size / step)) + 2));
}

// A line chart of one or several series over a shared x axis.
// seriesList: [{label, color, dash, width, x: [...], y: [...], and at most one of
//   raw: true    the unsmoothed companion of the series after it (drawn faint, no legend row; the
//                hover value of the next series shows both),
//   spread: true a mean whose next two series are its upper and lower edge (hover: mean ± spread),
//   edge: true   a band edge: not drawn, no legend row; `fill` on an upper edge shades the area
//                down to the lower edge that follows it,
//   value: (u, v, seriesIndex, dataIndex) => text   a hover text of its own}]
// The x range is the page's (range() returns [min, max] or null for all of the data): a drag calls
// onZoom([min, max]), a double-click onZoom(null), and the page redraws every chart. Charts made
// with the same `sync` key share the hover cursor.
export class LineChart {
  constructor(container, { title, id = '', log = false, height = 240, yLabel = '', xAxis = xAxisSpec('step'), sync = null,
    range = null, onZoom = null, onLog = null, logToggle = true } = {}) {
    this.container = container;
    this.log = log;
    this.height = height;
    this.onZoom = onZoom;
    this.range = range || (() => null);
    this.sync = sync;
    this.xAxis = xAxis;
    this.key = '';
    this.u = null;
    this.series = [];
    this.vlines = [];   // faint lines, e.g. epoch ends: [x]
    this.markers = [];  // findings: [{x, color, title}]
    this.yLabel = yLabel;
    this.box = h('div', { class: 'chart-plot', style: { minHeight: `${height}px` } });
    this.note = h('span', { class: 'chart-note' });
    this.logBox = h('input', { type: 'checkbox', checked: log, 'aria-label': 'log scale' });
    this.logBox.addEventListener('change', () => { this.setLog(this.logBox.checked); if (onLog) onLog(this.logBox.checked); });
    this.el = h('div', { class: 'chart', dataset: { chart: id || title || '' } },
      h('div', { class: 'chart-head' }, h('h3', { text: title, title }), this.note,
        logToggle ? h('label', { class: 'chart-log', title: 'logarithmic y-axis' }, this.logBox, ' log') : null),
      this.box);
    this.el.chart = this;  // for tests and the console: the chart behind the element
    container.appendChild(this.el);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.box);
  }

  width() { return Math.max(this.box.clientWidth || this.container.clientWidth || 400, 200); }

  resize() {
    if (this.u && Math.abs(this.u.width - this.width()) > 2) this.u.setSize({ width: this.width(), height: this.height });
  }

  setLog(log) {
    if (log === this.log) return;
    this.log = log;
    this.logBox.checked = log;
    this.key = '';
    this.setData(this.series, this.noteText);
  }

  // Another x axis: the next setData draws it (the caller reloads the data in the new units).
  setXAxis(spec) {
    this.xAxis = spec;
    this.key = '';
  }

  // The page's x range changed: redraw at it (the data follows when the page has reloaded it).
  showRange() {
    if (this.u) this.u.setData(this.u.data, true);
  }

  // The x axis title and tick texts as drawn (tests and the console).
  xTitle() {
    const label = this.u ? this.u.axes[0].label : this.xAxis.label;
    return typeof label === 'function' ? label(this.u) : label;
  }

  xTicks() { return this.u ? [...(this.u.axes[0]._values || [])] : []; }

  // Faint vertical lines (epoch ends) and finding markers, in x units; drawn over the plot.
  setOverlays({ vlines, markers } = {}) {
    if (vlines) this.vlines = vlines;
    if (markers) this.markers = markers;
    if (this.u) this.u.redraw(false);
  }

  setNote(text) { this.noteText = text; this.note.textContent = text || ''; }

  setData(seriesList, note) {
    this.series = seriesList;
    this.setNote(note);
    const visible = seriesList.filter((s) => s.x.length > 0);
    this.el.dataset.points = String(visible.reduce((n, s) => n + (s.raw || s.edge ? 0 : s.x.length), 0));
    if (visible.length === 0) {
      if (this.u) { this.u.destroy(); this.u = null; }
      clear(this.box).appendChild(h('p', { class: 'muted empty', text: 'no points yet' }));
      this.key = '';
      return;
    }
    const tables = visible.map((s) => [s.x, this.log ? s.y.map((v) => (v !== null && v > 0 ? v : null)) : s.y]);
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables, tables.map(() => [0, 1]));
    const key = JSON.stringify([this.log, this.xAxis.id, visible.map((s) => [s.label, s.color, s.dash, s.raw, s.edge, s.fill])]);
    if (this.u && key === this.key) {
      this.u.setData(data, true);
      return;
    }
    this.key = key;
    if (this.u) this.u.destroy();
    clear(this.box);
    this.u = new uPlot(this.options(visible), data, this.box);
    // Raw companions and band edges stay out of the legend.
    const rows = this.u.root.querySelectorAll('.u-legend .u-series');
    visible.forEach((s, i) => { if ((s.raw || s.edge) && rows[i + 1]) rows[i + 1].style.display = 'none'; });
    this.u.over.addEventListener('dblclick', () => { if (this.range() && this.onZoom) this.onZoom(null); });
  }

  options(visible) {
    const self = this;
    const axisFont = '11px system-ui, sans-serif';
    const x = this.xAxis;
    const bands = [];
    visible.forEach((s, i) => { if (s.edge && s.fill && visible[i + 1]) bands.push({ series: [i + 1, i + 2], fill: s.fill }); });
    return {
      width: this.width(),
      height: this.height,
      scales: {
        x: {
          time: false,
          range: (u, min, max) => {
            const r = self.range();
            if (r) return [r[0], r[1]];
            if (min === null || max === null) return [0, 1];
            return min === max ? [min - 1, max + 1] : [min, max];
          },
        },
        y: this.log ? { distr: 3, range: logRange } : { distr: 1 },
      },
      axes: [
        { stroke: '#5b6472', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dfe3e8' }, incrs: x.incrs,
          values: (u, vals, ai, space, incr) => vals.map((v) => (v === null ? '' : x.tick(v, incr))),
          label: x.label, labelSize: 18, labelFont: axisFont },
        // A small chart keeps three or four y ticks (uPlot's default spacing would leave one or two).
        { stroke: '#5b6472', size: 64, space: this.height < 200 ? 20 : 30, grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dfe3e8' },
          values: (u, vals) => vals.map((v) => (v === null ? '' : fmt(v, tickDigits(vals)))), label: this.yLabel, labelSize: 18, labelFont: axisFont },
      ],
      legend: { live: true },
      bands,
      cursor: {
        drag: { x: true, y: false, setScale: false },
        y: false,  // a horizontal hair would sit at the same height on charts of other units
        focus: { prox: 16 },
        // Only the hover position travels to the other charts: a zoom goes through the page.
        sync: { key: this.sync, scales: ['x', null], filters: { pub: (type) => type === 'mousemove' } },
      },
      focus: { alpha: 0.35 },
      series: [
        { label: x.legendLabel, value: (u, v) => (v === null || v === undefined ? '–' : x.legend(v)) },
        ...visible.map((s, i) => ({
          label: s.label,
          stroke: s.edge ? 'transparent' : s.raw ? hexAlpha(s.color, 0.22) : s.color,
          width: s.edge ? 0 : s.width || (s.raw ? 1 : 1.75),
          dash: s.dash,
          spanGaps: true,
          points: { show: s.x.length < 40 && !s.raw && !s.edge, size: 5, fill: s.color },
          value: (u, v, si, di) => {
            if (s.value) return s.value(u, v, si, di);
            if (v === null || v === undefined) return '–';
            const at = (k) => (di !== null && di !== undefined ? u.data[k][di] : undefined);
            // A smoothed line's hover value carries the raw value at the same x.
            if (i > 0 && visible[i - 1].raw) {
              const raw = at(si - 1);
              return raw === undefined ? fmt(v) : `${fmt(v)} (raw ${raw === null ? '–' : fmt(raw)})`;
            }
            if (s.spread) {
              const hi = at(si + 1);
              return hi === undefined || hi === null ? fmt(v) : `${fmt(v)} ± ${fmt(hi - v, 2)}`;
            }
            return fmt(v);
          },
        })),
      ],
      hooks: {
        draw: [(u) => self.drawOverlays(u)],
        setSelect: [(u) => {
          if (u.select.width <= 4) return;
          const min = u.posToVal(u.select.left, 'x'), max = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (self.onZoom) self.onZoom([min, max]);
        }],
      },
    };
  }

  drawOverlays(u) {
    const ctx = u.ctx, { top, height } = u.bbox;
    const xs = u.scales.x;
    const at = (x) => Math.round(u.valToPos(x, 'x', true)) + 0.5;
    ctx.save();
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(91, 100, 114, 0.16)';
    ctx.setLineDash([2, 3]);
    for (const x of this.vlines) {
      if (x < xs.min || x > xs.max) continue;
      ctx.beginPath(); ctx.moveTo(at(x), top); ctx.lineTo(at(x), top + height); ctx.stroke();
    }
    ctx.setLineDash([]);
    for (const m of this.markers) {
      if (m.x < xs.min || m.x > xs.max) continue;
      const px = at(m.x);
      ctx.strokeStyle = hexAlpha(m.color, 0.55);
      ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + height); ctx.stroke();
      ctx.fillStyle = m.color;
      ctx.beginPath(); ctx.moveTo(px - 5, top); ctx.lineTo(px + 5, top); ctx.lineTo(px, top + 8); ctx.closePath(); ctx.fill();
    }
    ctx.restore();
  }

  destroy() {
    this.resizeObserver.disconnect();
    if (this.u) this.u.destroy();
    this.el.remove();
  }
}

// The mean of several series and its spread, on one grid: what a group of runs (seeds) did.
// runs: [{x: [...], y: [...]}] in ascending x. The grid is every x of the runs when they are few
// (per-epoch values of runs that share their steps stay exact), else `points` evenly spaced
// values; each run is interpolated linearly onto it, inside its own x range only. At each grid x:
// the mean, the sample standard deviation (0 for one run) and how many runs it covers.
export function meanBand(runs, points = 400) {
  const clean = runs.map((r) => {
    const x = [], y = [];
    for (let i = 0; i < r.x.length; i++) if (r.y[i] !== null && Number.isFinite(r.y[i])) { x.push(r.x[i]); y.push(r.y[i]); }
    return { x, y };
  }).filter((r) => r.x.length > 0);
  const out = { x: [], mean: [], std: [], n: [], runs: clean.length };
  if (!clean.length) return out;
  const distinct = new Set();
  for (const r of clean) for (const v of r.x) { distinct.add(v); if (distinct.size > points) break; }
  let grid;
  if (distinct.size <= points) {
    grid = [...distinct].sort((a, b) => a - b);
  } else {
    const lo = Math.min(...clean.map((r) => r.x[0])), hi = Math.max(...clean.map((r) => r.x[r.x.length - 1]));
    grid = Array.from({ length: points }, (_, i) => lo + ((hi - lo) * i) / (points - 1));
  }
  for (const g of grid) {
    const vals = [];
    for (const r of clean) {
      const v = interpolate(r.x, r.y, g);
      if (v !== null) vals.push(v);
    }
    if (!vals.length) continue;
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    const variance = vals.length > 1 ? vals.reduce((a, b) => a + (b - mean) ** 2, 0) / (vals.length - 1) : 0;
    out.x.push(g); out.mean.push(mean); out.std.push(Math.sqrt(variance)); out.n.push(vals.length);
  }
  return out;
}

// y at x by linear interpolation between the neighbouring points; null outside [x[0], x[last]].
function interpolate(xs, ys, x) {
  if (x < xs[0] || x > xs[xs.length - 1]) return null;
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid; else hi = mid;
  }
  if (xs[lo] === x || hi === lo) return ys[lo];
  if (xs[hi] === x) return ys[hi];
  return ys[lo] + ((ys[hi] - ys[lo]) * (x - xs[lo])) / (xs[hi] - xs[lo]);
}

export function hexAlpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

// Viridis, 6 stops.
const VIRIDIS = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
function viridis(t) {
  t = Math.min(1, Math.max(0, t));
  const f = t * (VIRIDIS.length - 1), i = Math.min(Math.floor(f), VIRIDIS.length - 2), r = f - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return `rgb(${Math.round(a[0] + (b[0] - a[0]) * r)}, ${Math.round(a[1] + (b[1] - a[1]) * r)}, ${Math.round(a[2] + (b[2] - a[2]) * r)})`;
}

// rows: [{label, x: [...steps], y: [...values]}]; colors on a log10 scale.
export function heatmap(container, rows, { title = 'per-layer gradient norm', unit = '' } = {}) {
  const labelWidth = Math.min(220, 24 + 7 * Math.max(...rows.map((r) => r.label.length)));
  const rowHeight = Math.max(10, Math.min(22, Math.floor(360 / rows.length)));
  const height = rows.length * rowHeight;
  const canvas = h('canvas', { class: 'heat-canvas' });
  const tip = h('div', { class: 'heat-tip' });
  const labels = h('div', { class: 'heat-labels', style: { width: labelWidth + 'px' } },
    rows.map((r) => h('div', { class: 'heat-label', title: r.label, style: { height: rowHeight + 'px', lineHeight: rowHeight + 'px' }, text: r.label })));
  const scale = h('div', { class: 'heat-scale' });
  const el = h('div', { class: 'chart heat', dataset: { chart: title } },
    h('div', { class: 'chart-head' }, h('h3', { text: title }), h('span', { class: 'chart-note', text: 'log color scale; hover for values' })),
    h('div', { class: 'heat-body' }, labels, h('div', { class: 'heat-plot' }, canvas, tip)),
    scale);
  container.appendChild(el);

  let lo = Infinity, hi = -Infinity, xmin = Infinity, xmax = -Infinity;
  for (const r of rows) {
    for (let i = 0; i < r.x.length; i++) {
      const v = r.y[i];
      if (v !== null && v > 0 && Number.isFinite(v)) { lo = Math.min(lo, Math.log10(v)); hi = Math.max(hi, Math.log10(v)); }
      xmin = Math.min(xmin, r.x[i]); xmax = Math.max(xmax, r.x[i]);
    }
  }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) hi = lo + 1;
  const draw = () => {
    const width = Math.max(canvas.parentElement.clientWidth, 200);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr; canvas.height = height * dpr;
    canvas.style.width = width + 'px'; canvas.style.height = height + 'px';
    const ctx = canvas.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.fillStyle = '#f3f4f6';
    ctx.fillRect(0, 0, width, height);
    const span = Math.max(xmax - xmin, 1);
    rows.forEach((r, ri) => {
      for (let i = 0; i < r.x.length; i++) {
        const v = r.y[i];
        const x0 = ((r.x[i] - xmin) / span) * (width - 2);
        const x1 = i + 1 < r.x.length ? ((r.x[i + 1] - xmin) / span) * (width - 2) : width;
        ctx.fillStyle = v === null || !Number.isFinite(v) ? '#e03131' : v <= 0 ? '#111827' : viridis((Math.log10(v) - lo) / (hi - lo));
        ctx.fillRect(x0, ri * rowHeight, Math.max(x1 - x0 + 0.5, 1), rowHeight - 1);
      }
    });
  };
  draw();
  const ro = new ResizeObserver(draw);
  ro.observe(canvas.parentElement);
  canvas.addEventListener('mousemove', (e) => {
    const rect = canvas.getBoundingClientRect();
    const ri = Math.floor((e.clientY - rect.top) / rowHeight);
    const r = rows[ri];
    if (!r || r.x.length === 0) { tip.style.display = 'none'; return; }
    const step = xmin + ((e.clientX - rect.left) / rect.width) * Math.max(xmax - xmin, 1);
    let best = 0;
    for (let i = 0; i < r.x.length; i++) if (Math.abs(r.x[i] - step) < Math.abs(r.x[best] - step)) best = i;
    tip.textContent = `${r.label} · step ${fmt(r.x[best])} · ${fmt(r.y[best])}${unit}`;
    tip.style.display = 'block';
    tip.style.left = Math.min(e.clientX - rect.left + 12, rect.width - 260) + 'px';
    tip.style.top = (e.clientY - rect.top + 12) + 'px';
  });
  canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  const gradient = h('div', { class: 'heat-gradient' });
  gradient.style.background = `linear-gradient(to right, ${[0, 0.2, 0.4, 0.6, 0.8, 1].map(viridis).join(', ')})`;
  scale.append(h('span', { text: fmt(Math.pow(10, lo)) }), gradient, h('span', { text: fmt(Math.pow(10, hi)) }),
    h('span', { class: 'muted', text: `steps ${fmt(xmin)}–${fmt(xmax)}` }));
  return { el, destroy: () => { ro.disconnect(); el.remove(); } };
}

// matrix[true][predicted]; cells shaded by the row's share.
export function confusionMatrix(matrix, classNames) {
  const n = matrix.length;
  const names = (i) => (classNames && classNames[i] !== undefined ? String(classNames[i]) : String(i));
  const table = h('table', { class: 'confusion' });
  table.appendChild(h('thead', null, h('tr', null, h('th', { class: 'corner', text: 'true \\ predicted' }),
    Array.from({ length: n }, (_, j) => h('th', { class: 'pred', title: names(j), text: names(j) })))));
  const body = h('tbody');
  for (let i = 0; i < n; i++) {
    const total = matrix[i].reduce((a, b) => a + b, 0) || 1;
    body.appendChild(h('tr', null, h('th', { title: names(i), text: names(i) }),
      matrix[i].map((c, j) => {
        const share = c / total;
        const bg = i === j ? `rgba(37, 99, 235, ${0.08 + 0.8 * share})` : c > 0 ? `rgba(232, 89, 12, ${0.06 + 0.9 * Math.min(1, share * 3)})` : 'transparent';
        return h('td', { title: `${names(i)} → ${names(j)}: ${c} (${(100 * share).toFixed(1)}%)`, style: { background: bg, color: i === j && share > 0.55 ? '#fff' : '' }, text: c });
      })));
  }
  table.appendChild(body);
  return table;
}
