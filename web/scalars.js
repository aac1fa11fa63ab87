// Every scalar series of a run (or of the runs compared) as small charts, grouped by split and
// prefix (train, train/grad_norm/*, val, system, ...) in collapsible groups, with a filter box over
// the series names. A chart is made and loaded only when it scrolls into view, so a run with
// hundreds of per-layer series stays fast; a series with one value (test/*) is a number in its
// group's stat grid. The charts share the page's x axis, zoom and cursor (RunCharts).
import { h, clear, fmt } from './util.js';
import { chartPlan } from './views.js';

const SPLIT_ORDER = ['train', 'val', 'test', 'system'];
const SPLIT_COLORS = { train: '#2563eb', val: '#e8590c', test: '#0f9d58', system: '#0891b2' };
const OPEN_UP_TO = 12;  // a group of more series starts closed (per-layer series of a deep model)
const PANEL_HEIGHT = 150;

// Calls show(target) when an observed element comes within a screen of view, hide(target) when
// it leaves: what makes charts load lazily.
export function visibilityWatcher(show, hide) {
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) (e.isIntersecting ? show : hide)(e.target);
  }, { rootMargin: '300px 0px' });
  return observer;
}

// The series of `tags` ({split, tag, count}), in groups: [{id, title, series: [tag], singles: [tag]}].
// A group is a split and the part of the tag before its first '/' (train/grad_norm/* holds
// train/grad_norm/0.weight, ...); tags without '/' form the split's own group.
export function scalarGroups(tags) {
  const groups = new Map();
  for (const t of tags) {
    const slash = t.tag.indexOf('/');
    const id = slash < 0 ? t.split : `${t.split}/${t.tag.slice(0, slash)}/*`;
    if (!groups.has(id)) groups.set(id, { id, split: t.split, prefixed: slash >= 0, series: [], singles: [] });
    // One value in every run: a number, not a chart.
    (t.maxCount <= 1 ? groups.get(id).singles : groups.get(id).series).push(t);
  }
  const splitRank = (s) => (SPLIT_ORDER.includes(s) ? SPLIT_ORDER.indexOf(s) : SPLIT_ORDER.length);
  const byName = (a, b) => a.localeCompare(b, 'en', { numeric: true });
  const out = [...groups.values()].sort((a, b) => splitRank(a.split) - splitRank(b.split) || byName(a.split, b.split)
    || Number(a.prefixed) - Number(b.prefixed) || byName(a.id, b.id));
  for (const g of out) for (const list of [g.series, g.singles]) list.sort((a, b) => byName(a.tag, b.tag));
  return out;
}

// A unit for a tag's y axis where its name says it.
function yLabelFor(tag) {
  const last = tag.split('/').pop();
  if (/_percent$/.test(last)) return `${last.replace(/_percent$/, '')} (%)`;
  if (/_mib$/.test(last)) return `${last.replace(/_mib$/, '')} (MiB)`;
  if (/_seconds$/.test(last)) return `${last.replace(/_seconds$/, '')} (s)`;
  if (last === 'samples_per_s') return 'examples per second';
  return '';
}

// Smoothed as the main charts smooth a series (views.js chartPlan); of the others, only the
// training signals logged every few steps (per-layer norms and ratios). Per-epoch values, the lr
// and the system's measurements are shown as they were.
function smoothable(t, epochs, planned) {
  if (planned.has(t.key)) return planned.get(t.key);
  return t.split === 'train' && !/(^|\/)lr(\/|$)/.test(t.tag) && t.maxCount > Math.max(8, 1.5 * epochs);
}

export class ScalarGrid {
  constructor(root, charts) {
    this.root = root;
    this.charts = charts;
    this.panels = [];     // {key, el, spec, chart, visible, stale, full, seq}
    this.groups = [];     // {id, details, panels, stats, total, countEl}
    this.signature = '';
    this.byElement = new Map();
    this.observer = visibilityWatcher((el) => this.show(el), (el) => this.hide(el));
    this.filter = h('input', { type: 'search', class: 'filter', placeholder: 'filter scalars (substring)', 'aria-label': 'filter scalars' });
    this.filter.addEventListener('input', () => this.applyFilter());
    this.count = h('span', { class: 'muted small', dataset: { scalarCount: '' } });
    this.body = h('div', { class: 'scalar-groups' });
    root.append(h('div', { class: 'scalar-head' }, this.filter, this.count), this.body);
    charts.attach(this);
  }

  // The tags of every run, each with the most points any run has of it.
  tags() {
    const seen = new Map();
    for (const r of this.charts.runs) {
      for (const t of r.detail.tags || []) {
        const key = `${t.split}/${t.tag}`;
        const known = seen.get(key);
        seen.set(key, { split: t.split, tag: t.tag, key, maxCount: Math.max(known ? known.maxCount : 0, t.count || 0) });
      }
    }
    return [...seen.values()];
  }

  // Rebuilt only when the set of series (or which are single values) changed: a live run adds
  // its validation series after the first epoch.
  build() {
    const tags = this.tags();
    const signature = tags.map((t) => `${t.key}:${t.maxCount <= 1}`).sort().join('\n');
    if (signature === this.signature) return;
    this.signature = signature;
    this.destroyPanels();
    clear(this.body);
    const groups = scalarGroups(tags);
    const epochs = Math.max(1, ...this.charts.runs.map((r) => r.detail.epochs || 0));
    const planned = new Map(chartPlan(this.charts.tags()).flatMap((c) => c.lines.map((l) => [`${l.split}/${l.tag}`, l.smooth])));
    for (const g of groups) {
      const total = g.series.length + g.singles.length;
      const grid = h('div', { class: 'chart-grid small' });
      const stats = g.singles.map((t) => this.stat(t));
      const panels = g.series.map((t) => this.panel(t, grid, smoothable(t, epochs, planned)));
      const details = h('details', { class: 'scalar-group', open: total <= OPEN_UP_TO, dataset: { group: g.id } },
        h('summary', null, h('span', { class: 'group-name', text: g.id }), h('span', { class: 'muted small', dataset: { groupCount: '' }, text: `${total} series` })),
        stats.length ? h('div', { class: 'stat-row scalar-stats' }, stats.map((s) => s.el)) : null,
        panels.length ? grid : null);
      this.body.appendChild(details);
      this.groups.push({ id: g.id, details, panels, stats, total, countEl: details.querySelector('[data-group-count]') });
    }
    if (!groups.length) this.body.appendChild(h('p', { class: 'muted', text: 'No scalars yet.' }));
    this.applyFilter();
  }

  panel(t, grid, smooth) {
    // Until it is in view: its name, in a box the size of the chart it becomes.
    const el = h('div', { class: 'scalar-panel', dataset: { scalar: t.key } },
      h('div', { class: 'chart pending', style: { height: `${PANEL_HEIGHT + 74}px` } }, h('div', { class: 'chart-head' }, h('h3', { text: t.key }))));
    grid.appendChild(el);
    const color = SPLIT_COLORS[t.split] || '#4b5563';
    const spec = { id: t.key, title: t.key, lines: [{ split: t.split, tag: t.tag, label: t.key, color, smooth }] };
    const p = { key: t.key, el, spec, chart: null, visible: false, stale: true, full: new Map(), seq: 0,
      log: /(^|\/)(lr|grad_norm|update_ratio)(\/|$)/.test(t.tag), yLabel: yLabelFor(t.tag) };
    this.panels.push(p);
    this.byElement.set(el, p);
    this.observer.observe(el);
    return p;
  }

  // A single value, from the run details (no request): the run's; each run's when several are
  // compared; each group's mean ± std when they are grouped.
  stat(t) {
    const valueOf = (r) => (r.detail.tags || []).find((x) => x.split === t.split && x.tag === t.tag);
    const runs = this.charts.runs.filter(valueOf);
    const row = (color, text, title) => h('div', { class: 'stat-run', title },
      h('span', { class: 'swatch', style: { background: color } }), h('span', { class: 'num', text }));
    let body;
    if (this.charts.runs.length === 1) {
      const info = valueOf(runs[0]);
      body = h('div', { class: 'stat-value', title: `step ${fmt(info.last_step)}`, text: fmt(info.last_value) });
    } else if (this.charts.groups) {
      body = h('div', { class: 'stat-values' }, this.charts.groups.map((g) => {
        const values = g.runs.filter(valueOf).map((r) => valueOf(r).last_value).filter((v) => Number.isFinite(v));
        if (!values.length) return null;
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        const std = values.length > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)) : 0;
        return row(g.color, `${fmt(mean)} ± ${fmt(std, 2)} (n=${values.length})`, g.label);
      }));
    } else {
      body = h('div', { class: 'stat-values' }, runs.map((r) => row(r.color, fmt(valueOf(r).last_value), r.detail.display_name || r.name)));
    }
    return { key: t.key, el: h('div', { class: 'stat scalar-stat', dataset: { scalar: t.key } }, h('div', { class: 'stat-label', text: t.key }), body) };
  }

  show(el) {
    const p = this.byElement.get(el);
    if (!p) return;
    p.visible = true;
    if (p.stale) this.load(p);
  }

  hide(el) {
    const p = this.byElement.get(el);
    if (p) p.visible = false;
  }

  load(p) {
    if (!p.chart) p.chart = this.charts.makeChart(clear(p.el), { id: p.key, title: p.key, yLabel: p.yLabel, height: PANEL_HEIGHT, log: this.charts.logFor(p.key, p.log) });
    p.stale = false;
    return this.charts.loadChart(p);
  }

  // New data: the charts in view reload now, the others when they come into view.
  refresh() {
    const jobs = [];
    for (const p of this.panels) {
      if (!p.chart) continue;
      p.stale = true;
      if (p.visible) jobs.push(this.load(p));
    }
    return Promise.all(jobs);
  }

  redraw(what) {
    for (const p of this.panels) {
      if (!p.chart) continue;
      if (what === 'axis') p.chart.setXAxis(this.charts.xAxisSpec());
      if (what === 'range') p.chart.showRange();
      if (what === 'smoothing') p.full = new Map();
    }
    this.refresh();
  }

  applyFilter() {
    const q = this.filter.value.trim().toLowerCase();
    let shown = 0, total = 0;
    for (const g of this.groups) {
      let n = 0;
      for (const item of [...g.panels, ...g.stats]) {
        const match = !q || item.key.toLowerCase().includes(q);
        item.el.style.display = match ? '' : 'none';
        if (match) n++;
      }
      shown += n;
      total += g.total;
      g.details.style.display = n ? '' : 'none';
      g.countEl.textContent = q ? `${n} of ${g.total} series` : `${g.total} series`;
      // A search opens the groups it found something in.
      if (q && n) g.details.open = true;
    }
    this.count.textContent = q ? `${shown} of ${total} series match` : `${total} series`;
  }

  destroyPanels() {
    for (const p of this.panels) {
      this.observer.unobserve(p.el);
      if (p.chart) p.chart.destroy();
    }
    this.panels = [];
    this.groups = [];
    this.byElement.clear();
  }

  destroy() {
    this.destroyPanels();
    this.observer.disconnect();
  }
}
