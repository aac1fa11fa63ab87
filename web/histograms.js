// Weights and gradients per layer, from the histograms of the run's TensorBoard event file (one
// per parameter and epoch end), drawn the way TensorBoard draws them:
//   distributions: percentile bands over the run (min-max, 7-93%, 16-84%, 31-69%, the median),
//                  on the page's x axis, zoom and cursor;
//   histograms:    each epoch's histogram as a ridge, older ones further back and fainter.
// One small panel per parameter, weights and gradients of a layer side by side, with a kind
// select and a filter; panels draw when they scroll into view.
import { h, clear, fmt } from './util.js';
import { hexAlpha } from './charts.js';
import { visibilityWatcher } from './scalars.js';

const KIND_COLORS = { weights: '#2563eb', grads: '#e8590c' };
const OTHER_COLOR = '#7c3aed';

// TensorBoard's distribution percentiles: the normal distribution's ±1.5, ±1, ±0.5 sigma points.
export const DIST_BASIS = [0, 0.0668, 0.1587, 0.3085, 0.5, 0.6915, 0.8413, 0.9332, 1];

// The edges of bucket i: (limits[i-1], limits[i]], the first starting at min; both clamped to
// [min, max] (a writer may close the last bucket at the largest double).
function bucketEdges(item, i) {
  const left = i === 0 ? item.min : Math.max(item.limits[i - 1], item.min);
  return [Math.min(left, item.max), Math.min(item.limits[i], item.max)];
}

// The values at DIST_BASIS of a histogram, interpolating linearly inside the bucket where each
// falls; nulls for an empty histogram.
export function percentiles(item) {
  const total = item.counts.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return DIST_BASIS.map(() => null);
  return DIST_BASIS.map((p) => {
    if (p <= 0) return item.min;
    if (p >= 1) return item.max;
    const target = p * total;
    let below = 0;
    for (let i = 0; i < item.counts.length; i++) {
      const c = item.counts[i];
      if (c > 0 && below + c >= target) {
        const [left, right] = bucketEdges(item, i);
        return left + ((right - left) * (target - below)) / c;
      }
      below += c;
    }
    return item.max;
  });
}

// About `count` round tick values between lo and hi.
function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

// Colour c mixed with white: t = 0 white, 1 the colour.
function tint(hex, t) {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c) => Math.round(255 + (c - 255) * t);
  return `rgb(${mix((n >> 16) & 255)}, ${mix((n >> 8) & 255)}, ${mix(n & 255)})`;
}

// The per-epoch histograms of one parameter as offset ridges: x the value, the newest epoch in
// front at the bottom. Each ridge is scaled to its own peak (its shape is what reads; its width
// is on the x axis). describe(item) names an epoch end ("epoch 3 · step 300").
function ridgeline(container, items, { color, describe }) {
  const height = 190, margin = { left: 10, right: 78, top: 8, bottom: 22 };
  const canvas = h('canvas', { class: 'ridge-canvas' });
  const tip = h('div', { class: 'heat-tip' });
  const el = h('div', { class: 'ridge-plot' }, canvas, tip);
  container.appendChild(el);
  const lo = Math.min(...items.map((it) => it.min)), hi = Math.max(...items.map((it) => it.max));
  const [xmin, xmax] = hi > lo ? [lo, hi] : [lo - 0.5, hi + 0.5];
  let hover = -1, layout = null;

  const draw = () => {
    const width = Math.max(el.clientWidth, 200);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr; canvas.height = height * dpr;
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const ctx = canvas.getContext('2d');
    ctx.scale(dpr, dpr);
    const plotW = width - margin.left - margin.right, plotH = height - margin.top - margin.bottom;
    const n = items.length;
    const ridge = n > 1 ? plotH * 0.45 : plotH * 0.9;
    const gap = n > 1 ? (plotH - ridge) / (n - 1) : 0;
    const px = (v) => margin.left + ((v - xmin) / (xmax - xmin)) * plotW;
    layout = { px, base: (i) => margin.top + ridge + i * gap, ridge, plotW };
    ctx.font = '10.5px system-ui, sans-serif';
    // x ticks
    ctx.fillStyle = '#5b6472'; ctx.strokeStyle = '#eef0f3'; ctx.textAlign = 'center'; ctx.textBaseline = 'top';
    for (const v of niceTicks(xmin, xmax, Math.max(2, Math.floor(plotW / 70)))) {
      ctx.beginPath(); ctx.moveTo(Math.round(px(v)) + 0.5, margin.top); ctx.lineTo(Math.round(px(v)) + 0.5, height - margin.bottom); ctx.stroke();
      ctx.fillText(fmt(v, 3), px(v), height - margin.bottom + 5);
    }
    // Oldest first, so that newer ridges cover older ones.
    items.forEach((it, i) => {
      const base = layout.base(i);
      const dens = it.counts.map((c, k) => { const [a, b] = bucketEdges(it, k); return c / Math.max(b - a, (it.max - it.min) * 1e-6 || 1e-12); });
      const peak = Math.max(...dens) || 1;
      const t = n > 1 ? i / (n - 1) : 1;
      ctx.beginPath();
      ctx.moveTo(px(it.min), base);
      dens.forEach((d, k) => { const [a, b] = bucketEdges(it, k); ctx.lineTo(px((a + b) / 2), base - (ridge * d) / peak); });
      ctx.lineTo(px(it.max), base);
      ctx.closePath();
      ctx.fillStyle = tint(color, 0.12 + 0.5 * t);
      ctx.fill();
      ctx.lineWidth = i === hover ? 2 : 1;
      ctx.strokeStyle = i === hover ? '#111827' : tint(color, 0.35 + 0.65 * t);
      ctx.stroke();
    });
    // Which epoch a ridge is: the oldest, the newest and one between.
    ctx.textAlign = 'left'; ctx.textBaseline = 'middle'; ctx.fillStyle = '#5b6472';
    const labelled = [...new Set([0, Math.floor((n - 1) / 2), n - 1])].filter((i) => i >= 0);
    for (const i of labelled) ctx.fillText(describe(items[i]).split(' · ')[0], width - margin.right + 6, layout.base(i));
  };

  const onMove = (e) => {
    if (!layout) return;
    const rect = canvas.getBoundingClientRect();
    const y = e.clientY - rect.top, x = e.clientX - rect.left;
    // The ridge whose baseline is nearest below the pointer.
    let best = items.length - 1;
    for (let i = 0; i < items.length; i++) if (layout.base(i) >= y) { best = i; break; }
    if (best !== hover) { hover = best; draw(); }
    const it = items[best];
    const v = ((x - margin.left) / layout.plotW) * (xmax - xmin) + xmin;
    let text = `${describe(it)} · ${fmt(it.num)} values in [${fmt(it.min)}, ${fmt(it.max)}]`;
    for (let k = 0; k < it.counts.length; k++) {
      const [a, b] = bucketEdges(it, k);
      if (v >= a && v <= b) { text += ` · ${fmt(it.counts[k])} in (${fmt(a, 3)}, ${fmt(b, 3)}]`; break; }
    }
    tip.textContent = text;
    tip.style.display = 'block';
    tip.style.left = `${Math.max(0, Math.min(x + 12, rect.width - 300))}px`;
    tip.style.top = `${y + 14}px`;
  };
  canvas.addEventListener('mousemove', onMove);
  canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; hover = -1; draw(); });
  draw();
  const ro = new ResizeObserver(() => draw());
  ro.observe(el);
  return { el, destroy: () => { ro.disconnect(); el.remove(); } };
}

// The distributions chart's series: four nested bands, widest first, then the median on top.
function distributionSeries(items, xs, color) {
  const q = items.map(percentiles);
  const col = (k) => q.map((p) => p[k]);
  const band = (hiK, loK, alpha) => [
    { label: `${DIST_BASIS[hiK] * 100}%`, color, x: xs, y: col(hiK), edge: true, fill: hexAlpha(color, alpha) },
    { label: `${DIST_BASIS[loK] * 100}%`, color, x: xs, y: col(loK), edge: true },
  ];
  // The hover text of the median carries the bands around it (series 1..8 are the edges).
  const value = (u, v, si, di) => {
    if (v === null || v === undefined || di === null || di === undefined) return '–';
    const at = (k) => fmt(u.data[k][di], 3);
    return `${fmt(v, 3)} · 68%: ${at(6)} to ${at(5)} · 87%: ${at(4)} to ${at(3)} · all: ${at(2)} to ${at(1)}`;
  };
  return [...band(8, 0, 0.12), ...band(7, 1, 0.14), ...band(6, 2, 0.18), ...band(5, 3, 0.24),
    { label: 'median', color, x: xs, y: col(4), width: 1.5, value }];
}

export class HistogramsView {
  // load(): the run's {histograms: [{tag, items}]}; charts: the page's RunCharts (x axis, zoom,
  // cursor); run: the run shown.
  constructor(root, charts, run, load) {
    this.root = root;
    this.charts = charts;
    this.run = run;
    this.loadData = load;
    this.data = null;
    this.loadedAt = 0;
    this.mode = 'distributions';
    this.panels = [];
    this.byElement = new Map();
    this.observer = visibilityWatcher((el) => this.show(el), (el) => { const p = this.byElement.get(el); if (p) p.visible = false; });
    charts.attach(this);
  }

  build() {
    if (!this.data) this.refresh();
  }

  // A live run's histograms grow by one per epoch end: looked up at most every 10 s, and once
  // more when it ends; a finished run's do not change.
  async refresh() {
    const now = Date.now(), status = this.run.detail.status;
    if (this.data && status === this.loadedStatus && (status !== 'running' || now - this.loadedAt < 10000)) return;
    this.loadedAt = now;
    this.loadedStatus = status;
    let data;
    try {
      data = await this.loadData();
    } catch (e) {
      data = { histograms: [], error: e.message || String(e) };
    }
    const fresh = JSON.stringify(data);
    if (fresh === this.dataText) return;
    this.dataText = fresh;
    this.data = data;
    this.render();
  }

  redraw(what) {
    if (what === 'smoothing') return;
    for (const p of this.panels) {
      if (!p.chart) continue;
      if (what === 'axis') { p.chart.setXAxis(this.charts.xAxisSpec()); this.drawDistribution(p); } else p.chart.showRange();
    }
  }

  render() {
    this.destroyPanels();
    clear(this.root);
    const list = (this.data.histograms || []).filter((s) => s.items && s.items.length);
    if (!list.length) {
      const running = this.run.detail.status === 'running';
      this.root.appendChild(h('p', { class: 'muted empty-state', dataset: { histograms: 'none' } },
        running ? 'No weight or gradient histograms yet: ' : 'This run has no weight or gradient histograms: ',
        'the TensorBoard logger writes them at each epoch end into the event file beside run.sqlite (',
        h('code', { text: 'events.out.tfevents.*' }), running ? '); the first appear when the first epoch ends.' : '), and this run\u2019s directory holds none.',
        this.data.error ? ` (${this.data.error})` : ''));
      return;
    }
    const kinds = [...new Set(list.map((s) => s.tag.split('/')[0]))];
    const modes = ['distributions', 'histograms'].map((m) => {
      const b = h('button', { class: `seg${m === this.mode ? ' on' : ''}`, 'aria-pressed': String(m === this.mode), dataset: { view: m }, text: m[0].toUpperCase() + m.slice(1) });
      b.addEventListener('click', () => { this.mode = m; this.render(); });
      return b;
    });
    this.kind = this.kind && kinds.includes(this.kind) ? this.kind : 'all';
    const kindSelect = h('select', { 'aria-label': 'histogram kind' }, h('option', { value: 'all', text: 'weights and gradients' }),
      kinds.map((k) => h('option', { value: k, text: k, selected: k === this.kind })));
    kindSelect.addEventListener('change', () => { this.kind = kindSelect.value; this.applyFilter(); });
    this.filter = h('input', { type: 'search', class: 'filter', placeholder: 'filter layers', 'aria-label': 'filter layers', value: this.query || '' });
    this.filter.addEventListener('input', () => { this.query = this.filter.value; this.applyFilter(); });
    this.count = h('span', { class: 'muted small' });
    const note = this.mode === 'distributions'
      ? 'bands: min–max, 7–93%, 16–84%, 31–69% of the values; line: the median'
      : 'one ridge per epoch end, the newest in front; each scaled to its own peak';
    this.root.append(h('div', { class: 'hist-head' }, h('span', { class: 'seg-group' }, modes), kindSelect, this.filter, this.count, h('span', { class: 'muted small', text: note })));
    const grid = h('div', { class: 'chart-grid small hist-grid' });
    this.root.appendChild(grid);
    // A layer's weights and gradients next to each other.
    const layer = (tag) => tag.slice(tag.indexOf('/') + 1);
    const kindRank = (tag) => { const k = tag.split('/')[0]; return k === 'weights' ? 0 : k === 'grads' ? 1 : 2; };
    const sorted = [...list].sort((a, b) => layer(a.tag).localeCompare(layer(b.tag), 'en', { numeric: true }) || kindRank(a.tag) - kindRank(b.tag) || a.tag.localeCompare(b.tag));
    for (const s of sorted) {
      const kind = s.tag.split('/')[0];
      const el = h('div', { class: 'chart hist-panel', dataset: { histogram: s.tag } },
        h('div', { class: 'chart-head' }, h('h3', { text: layer(s.tag), title: s.tag }), h('span', { class: `kind-badge kind-${kind.replace(/[^a-z]/g, '')}`, text: kind }),
          h('span', { class: 'chart-note', text: `${s.items.length} epoch end${s.items.length === 1 ? '' : 's'}` })));
      el.style.minHeight = '250px';
      grid.appendChild(el);
      const p = { tag: s.tag, kind, items: s.items, el, color: KIND_COLORS[kind] || OTHER_COLOR, chart: null, ridge: null, visible: false };
      this.panels.push(p);
      this.byElement.set(el, p);
      this.observer.observe(el);
    }
    this.applyFilter();
  }

  show(el) {
    const p = this.byElement.get(el);
    if (!p) return;
    p.visible = true;
    if (p.chart || p.ridge) return;
    p.el.style.minHeight = '';
    if (this.mode === 'histograms') {
      p.ridge = ridgeline(p.el, p.items, { color: p.color, describe: (it) => this.describe(it) });
      return;
    }
    // The panel's head is its own; the chart brings only the plot.
    p.chart = this.charts.makeChart(p.el, { id: `dist:${p.tag}`, title: '', height: 170, logToggle: false, yLabel: 'value' });
    p.chart.el.classList.add('bare');
    this.drawDistribution(p);
  }

  drawDistribution(p) {
    const clock = this.charts.clock(this.run);
    const mode = this.charts.mode;
    const xs = p.items.map((it) => clock.xAt(mode, it.step, it.wall_time));
    const missing = xs.some((x) => x === null);
    p.chart.setData(missing ? [] : distributionSeries(p.items, xs, p.color), missing ? clock.missing(mode) : '');
  }

  describe(it) {
    const epoch = this.charts.clock(this.run).xAt('epoch', it.step);
    const e = epoch !== null && Math.abs(epoch - Math.round(epoch)) < 1e-6 ? `epoch ${Math.round(epoch)} · ` : '';
    return `${e}step ${fmt(it.step)}`;
  }

  applyFilter() {
    const q = (this.query || '').trim().toLowerCase();
    let shown = 0;
    for (const p of this.panels) {
      const match = (this.kind === 'all' || p.kind === this.kind) && (!q || p.tag.toLowerCase().includes(q));
      p.el.style.display = match ? '' : 'none';
      if (match) shown++;
    }
    this.count.textContent = `${shown} of ${this.panels.length} histograms`;
  }

  destroyPanels() {
    for (const p of this.panels) {
      this.observer.unobserve(p.el);
      if (p.chart) p.chart.destroy();
      if (p.ridge) p.ridge.destroy();
    }
    this.panels = [];
    this.byElement.clear();
  }

  destroy() {
    this.destroyPanels();
    this.observer.disconnect();
  }
}
