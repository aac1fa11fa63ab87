// Charts: line charts on uPlot (zoom by dragging, double-click to reset), a per-layer heatmap
// and a confusion matrix. All labels are set as text.
import uPlot from './vendor/uPlot.esm.js';
import { h, clear, fmt } from './util.js';

// Integer steps only on the x axis: 1, 2, 5, 10, 20, 50, ... (uPlot picks the spacing).
const STEP_INCRS = [];
for (let m = 1; m <= 1e9; m *= 10) STEP_INCRS.push(m, 2 * m, 5 * m);

// The y range on a log axis: whole decades around the data, and one decade either side of a
// constant series (uPlot's own range collapses to a point there and draws nothing).
function logRange(u, min, max) {
  if (!(min > 0) || !(max > 0)) return [1e-6, 1];
  if (max / min < 1.0001) return [min / 10, max * 10];
  return uPlot.rangeLog(min, max, 10, true);
}

// seriesList: [{label, color, dash, width, raw, x: [...steps], y: [...values]}]. A raw series is
// the unsmoothed companion of the one after it, whose hover value then shows both.
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

export class LineChart {
  constructor(container, { title, log = false, height = 240, onZoom = null, onLog = null, id = '', yLabel = '', xLabel = 'step' } = {}) {
    this.container = container;
    this.log = log;
    this.height = height;
    this.onZoom = onZoom;
    this.zoomed = false;
    this.key = '';
    this.u = null;
    this.series = [];
    this.vlines = [];   // faint lines, e.g. epoch ends: [step]
    this.markers = [];  // findings: [{x, color, title}]
    this.yLabel = yLabel;
    this.xLabel = xLabel;
    this.box = h('div', { class: 'chart-plot' });
    this.note = h('span', { class: 'chart-note' });
    this.logBox = h('input', { type: 'checkbox', checked: log, 'aria-label': 'log scale' });
    this.logBox.addEventListener('change', () => { this.setLog(this.logBox.checked); if (onLog) onLog(this.logBox.checked); });
    this.el = h('div', { class: 'chart', dataset: { chart: id || title || '' } },
      h('div', { class: 'chart-head' }, h('h3', { text: title }), this.note,
        h('label', { class: 'chart-log', title: 'logarithmic y-axis' }, this.logBox, ' log')),
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

  // Faint vertical lines (epoch ends) and finding markers; drawn over the plot.
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
    this.el.dataset.points = String(visible.reduce((n, s) => n + (s.raw ? 0 : s.x.length), 0));
    if (visible.length === 0) {
      if (this.u) { this.u.destroy(); this.u = null; }
      clear(this.box).appendChild(h('p', { class: 'muted empty', text: 'no points yet' }));
      this.key = '';
      return;
    }
    const tables = visible.map((s) => [s.x, this.log ? s.y.map((v) => (v !== null && v > 0 ? v : null)) : s.y]);
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables, tables.map(() => [0, 1]));
    const key = JSON.stringify([this.log, visible.map((s) => [s.label, s.color, s.dash, s.raw])]);
    if (this.u && key === this.key) {
      if (this.zoomed) {
        const { min, max } = this.u.scales.x;
        this.u.setData(data, false);
        this.u.setScale('x', { min, max });
      } else {
        this.u.setData(data, true);
      }
      return;
    }
    this.key = key;
    if (this.u) this.u.destroy();
    clear(this.box);
    const self = this;
    const axisFont = '11px system-ui, sans-serif';
    const opts = {
      width: this.width(),
      height: this.height,
      scales: { x: { time: false }, y: this.log ? { distr: 3, range: logRange } : { distr: 1 } },
      axes: [
        { stroke: '#5b6472', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dfe3e8' }, incrs: STEP_INCRS,
          values: (u, vals) => vals.map((v) => (v === null ? '' : fmt(v))), label: this.xLabel, labelSize: 18, labelFont: axisFont },
        { stroke: '#5b6472', size: 64, grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dfe3e8' },
          values: (u, vals) => vals.map((v) => (v === null ? '' : fmt(v, tickDigits(vals)))), label: this.yLabel, labelSize: 18, labelFont: axisFont },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: true }, focus: { prox: 16 } },
      focus: { alpha: 0.35 },
      series: [
        { label: 'step', value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)) },
        ...visible.map((s, i) => ({
          label: s.label,
          stroke: s.raw ? hexAlpha(s.color, 0.22) : s.color,
          width: s.width || (s.raw ? 1 : 1.75),
          dash: s.dash,
          spanGaps: true,
          points: { show: s.x.length < 40 && !s.raw, size: 5, fill: s.color },
          // A smoothed line's hover value carries the raw value at the same step.
          value: (u, v, si, di) => {
            if (v === null || v === undefined) return '–';
            const raw = i > 0 && visible[i - 1].raw && di !== null && di !== undefined ? u.data[si - 1][di] : undefined;
            return raw === undefined ? fmt(v) : `${fmt(v)} (raw ${raw === null ? '–' : fmt(raw)})`;
          },
        })),
      ],
      hooks: {
        draw: [(u) => self.drawOverlays(u)],
        setSelect: [(u) => {
          if (u.select.width > 4) {
            const min = u.posToVal(u.select.left, 'x'), max = u.posToVal(u.select.left + u.select.width, 'x');
            self.zoomed = true;
            if (self.onZoom) self.onZoom(Math.floor(min), Math.ceil(max));
          }
        }],
      },
    };
    this.u = new uPlot(opts, data, this.box);
    // Raw (unsmoothed) companions stay out of the legend.
    const rows = this.u.root.querySelectorAll('.u-legend .u-series');
    visible.forEach((s, i) => { if (s.raw && rows[i + 1]) rows[i + 1].style.display = 'none'; });
    this.u.over.addEventListener('dblclick', () => {
      if (!self.zoomed) return;
      self.zoomed = false;
      if (self.onZoom) self.onZoom(null, null);
    });
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

function hexAlpha(hex, a) {
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
