// Parallel coordinates in SVG: one vertical axis per numeric column (settings and final
// metrics), one line per run, coloured by a chosen column. Dragging along an axis brushes a
// range; the brushes (column id -> [low, high] in data units) go to onBrush, which filters the
// runs table; a click on an axis without a drag clears its brush. Hovering a line highlights it
// and names its run; a click opens the run.
import { h, clear, fmt, enc } from './util.js';
import { fmtPlain } from './runs_model.js';

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 300;
const MARGIN = { top: 44, right: 56, bottom: 18, left: 56 };
const LOG_SPAN = 20;  // an axis whose positive values span this factor or more is drawn in log
// A perceptually ordered scale readable by colour-blind eyes (viridis' hues, stopped before its
// pale yellow end, which vanishes on white).
const SCALE = ['#440154', '#3b528b', '#21918c', '#5ec962', '#b5de2b'];
const NO_COLOR = '#9ca3af';

function el(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  for (const c of children) if (c) node.appendChild(c);
  return node;
}

function title(text) {
  const t = el('title');
  t.textContent = text;
  return t;
}

const finite = (v) => typeof v === 'number' && Number.isFinite(v);

export function colorAt(t) {
  const x = Math.min(1, Math.max(0, t)) * (SCALE.length - 1);
  const i = Math.min(SCALE.length - 2, Math.floor(x)), f = x - i;
  const rgb = (s) => [1, 3, 5].map((k) => parseInt(s.slice(k, k + 2), 16));
  const a = rgb(SCALE[i]), b = rgb(SCALE[i + 1]);
  return `rgb(${a.map((v, k) => Math.round(v + f * (b[k] - v))).join(',')})`;
}

// An axis' mapping between values and [0, 1] (bottom to top), log where the values span decades.
// A constant axis puts its one value in the middle.
export function axisScale(values) {
  const v = values.filter(finite);
  if (!v.length) return null;
  const lo = Math.min(...v), hi = Math.max(...v);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.5;
    return { log: false, lo, hi, toUnit: () => 0.5, fromUnit: (t) => lo + (t - 0.5) * 2 * pad, ticks: () => [lo] };
  }
  const log = lo > 0 && hi / lo >= LOG_SPAN;
  const f = log ? Math.log10 : (x) => x;
  const a = f(lo), b = f(hi);
  return {
    log, lo, hi,
    toUnit: (x) => (f(x) - a) / (b - a),
    fromUnit: (t) => (log ? 10 ** (a + t * (b - a)) : a + t * (b - a)),
    // Both ends, and round values between them that leave room for their labels.
    ticks: (plotH = 200) => {
      const inner = (log ? logTicks(lo, hi) : linearTicks(lo, hi))
        .filter((t) => { const u = (f(t) - a) / (b - a); return u * plotH > 14 && (1 - u) * plotH > 14; });
      return [lo, ...inner, hi];
    },
  };
}

function linearTicks(lo, hi) {
  const raw = (hi - lo) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let x = Math.ceil(lo / step) * step; x <= hi + step * 1e-9; x += step) out.push(Number(x.toPrecision(12)));
  return out;
}

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

// Draws into `root` (emptied). runs: the runs to draw; active(run): whether it passes the
// brushes (others are drawn faint); axes: columns {id, label, value(run)}; colorBy: a column or
// null; brushes: Map id -> [lo, hi]; onBrush(Map) after a brush changes.
export function parallelCoordinates(root, { runs, axes, colorBy, brushes, onBrush, active }) {
  clear(root);
  const width = Math.max(480, root.clientWidth || 1000);
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const scales = axes.map((c) => axisScale(runs.map((r) => c.value(r))));
  const shown = axes.map((c, i) => ({ col: c, scale: scales[i] })).filter((a) => a.scale);
  if (shown.length < 2) {
    root.appendChild(h('p', { class: 'muted', text: 'Parallel coordinates need two numeric columns with values: add settings or final metrics with Columns.' }));
    return;
  }
  if (runs.length < 2) {
    root.appendChild(h('p', { class: 'muted', text: `Parallel coordinates compare two runs or more; the filter leaves ${runs.length ? 'one' : 'none'}.` }));
    return;
  }
  const gap = (width - MARGIN.left - MARGIN.right) / (shown.length - 1);
  const xOf = (i) => MARGIN.left + i * gap;
  const yOf = (a, v) => MARGIN.top + (1 - a.scale.toUnit(v)) * plotH;

  const colorScale = colorBy ? axisScale(runs.map((r) => colorBy.value(r))) : null;
  const colorOf = (r) => {
    const v = colorBy ? colorBy.value(r) : null;
    return colorScale && finite(v) ? colorAt(colorScale.toUnit(v)) : NO_COLOR;
  };

  const svg = el('svg', { class: 'pc', width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img',
    'aria-label': `parallel coordinates of ${runs.length} runs over ${shown.map((a) => a.col.label).join(', ')}` });
  const tip = h('div', { class: 'pc-tip' });

  // Lines: the brushed-out runs first and faint, so the others draw over them.
  const lines = el('g', { class: 'pc-lines' });
  const ordered = [...runs].sort((a, b) => Number(active(a)) - Number(active(b)));
  for (const r of ordered) {
    // A run without a value on an axis passes it by, dashed: its line joins the axes it has
    // without seeming to cross the others at a value.
    const pts = [];
    shown.forEach((a, i) => { const v = a.col.value(r); if (finite(v)) pts.push([i, xOf(i).toFixed(1), yOf(a, v).toFixed(1)]); });
    if (pts.length < 2) continue;
    let solid = '', dashed = '';
    for (let k = 1; k < pts.length; k++) {
      const seg = `M${pts[k - 1][1]},${pts[k - 1][2]}L${pts[k][1]},${pts[k][2]}`;
      if (pts[k][0] === pts[k - 1][0] + 1) solid += seg; else dashed += seg;
    }
    const on = active(r);
    const stroke = on ? colorOf(r) : null;
    const g = el('g', { class: `pc-line${on ? '' : ' out'}`, 'data-run': r.name },
      solid ? el('path', { d: solid, class: 'pc-stroke', stroke }) : null,
      dashed ? el('path', { d: dashed, class: 'pc-stroke pc-gap', stroke }) : null,
      el('path', { d: solid + dashed, class: 'pc-hit' }));
    g.addEventListener('pointerenter', (e) => hover(g, r, e));
    g.addEventListener('pointermove', (e) => place(e));
    g.addEventListener('pointerleave', () => hover(null));
    g.addEventListener('click', () => { location.hash = `#/run/${enc(r.name)}`; });
    lines.appendChild(g);
  }
  // The hovered line is drawn again on top (moving it there would lose the click under way).
  const hot = el('g', { class: 'pc-hot' });
  svg.append(lines, hot);

  const hover = (g, r, e) => {
    svg.classList.toggle('hovering', Boolean(g));
    clear(hot);
    if (!g) { tip.style.display = 'none'; return; }
    for (const p of g.querySelectorAll('.pc-stroke')) hot.appendChild(p.cloneNode());
    const v = colorBy ? colorBy.value(r) : null;
    tip.textContent = colorBy && finite(v) ? `${r.display_name || r.name} · ${colorBy.label} ${fmt(v)}` : (r.display_name || r.name);
    tip.style.display = 'block';
    place(e);
  };
  const place = (e) => {
    const box = root.getBoundingClientRect();
    tip.style.left = `${e.clientX - box.left + 12}px`;
    tip.style.top = `${e.clientY - box.top + 12}px`;
  };

  shown.forEach((a, i) => svg.appendChild(axis(a, xOf(i), gap, plotH, brushes, onBrush)));
  root.append(svg, tip);
  if (colorBy && colorScale) root.appendChild(legend(colorBy, colorScale));
}

function axis(a, x, gap, plotH, brushes, onBrush) {
  const g = el('g', { class: 'pc-axis', 'data-axis': a.col.id });
  const top = MARGIN.top, bottom = MARGIN.top + plotH;
  const maxChars = Math.max(6, Math.floor(gap / 7));
  const name = a.col.label + (a.scale.log ? ' (log)' : '');
  const label = el('text', { x, y: top - 22, class: 'pc-label', 'text-anchor': 'middle' }, title(name));
  label.appendChild(document.createTextNode(name.length > maxChars ? `${name.slice(0, maxChars - 1)}…` : name));
  g.appendChild(label);
  g.appendChild(el('line', { x1: x, x2: x, y1: top, y2: bottom, class: 'pc-axis-line' }));
  const y = (v) => top + (1 - a.scale.toUnit(v)) * plotH;
  for (const t of a.scale.ticks(plotH)) {
    g.appendChild(el('line', { x1: x - 3, x2: x, y1: y(t), y2: y(t), class: 'pc-tick' }));
    const text = el('text', { x: x - 6, y: y(t) + 3.5, class: 'pc-tick-label', 'text-anchor': 'end' });
    text.textContent = fmtPlain(Number(t.toPrecision(4)));
    g.appendChild(text);
  }
  // The brush: drawn where it is, and a strip along the axis that takes the drags.
  const range = brushes.get(a.col.id);
  const rect = el('rect', { x: x - 7, width: 14, class: 'pc-brush', display: range ? null : 'none' });
  const show = (y0, y1) => { rect.setAttribute('y', Math.min(y0, y1)); rect.setAttribute('height', Math.abs(y1 - y0)); rect.removeAttribute('display'); };
  if (range) show(y(range[1]), y(range[0]));
  g.appendChild(rect);
  const area = el('rect', { x: x - 12, y: top - 4, width: 24, height: plotH + 8, class: 'pc-brush-area' }, title(`drag to keep the runs in a range of ${a.col.label}; click to clear`));
  const clamp = (v) => Math.min(bottom, Math.max(top, v));
  area.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    area.setPointerCapture(e.pointerId);
    const svgTop = area.ownerSVGElement.getBoundingClientRect().top;
    const y0 = clamp(e.clientY - svgTop);
    let y1 = y0;
    const move = (ev) => { y1 = clamp(ev.clientY - svgTop); show(y0, y1); };
    const up = () => {
      area.removeEventListener('pointermove', move);
      area.removeEventListener('pointerup', up);
      const next = new Map(brushes);
      if (Math.abs(y1 - y0) < 3) next.delete(a.col.id);
      else {
        const unit = (py) => 1 - (py - top) / plotH;
        const lo = a.scale.fromUnit(unit(Math.max(y0, y1))), hi = a.scale.fromUnit(unit(Math.min(y0, y1)));
        next.set(a.col.id, [lo, hi]);
      }
      onBrush(next);
    };
    area.addEventListener('pointermove', move);
    area.addEventListener('pointerup', up);
  });
  g.appendChild(area);
  return g;
}

function legend(col, scale) {
  const stops = Array.from({ length: 11 }, (_, i) => colorAt(i / 10)).join(', ');
  return h('div', { class: 'pc-legend' },
    h('span', { class: 'muted', text: `colour: ${col.label}${scale.log ? ' (log)' : ''}` }),
    h('span', { class: 'num', text: fmt(scale.lo) }),
    h('span', { class: 'pc-gradient', style: { background: `linear-gradient(to right, ${stops})` } }),
    h('span', { class: 'num', text: fmt(scale.hi) }));
}
