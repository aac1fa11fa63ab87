// The runs list: a table of runs that sorts, filters, groups and exports, a column chooser over
// every setting and final metric, parallel coordinates over the shown numeric columns, and each
// run's tags and note. runs_model.js computes; this module draws and keeps the reader's choices
// (columns, sort, filter, grouping, colour) in localStorage.
import { h, clear, fmt, fmtDuration, fmtTime, fmtAgo, getJSON, enc } from './util.js';
import { statusBadge, bestMetricText } from './views.js';
import {
  catalogue, defaultColumns, resolveColumns, parseFilter, matches, arrange, stats, toCSV, toJSON, isEnded, fmtPlain,
} from './runs_model.js';
import { parallelCoordinates } from './parcoords.js';
import { tagChips, editAnnotationsDialog } from './annotations.js';

const STORE_KEY = 'trainscope.runsTable';
const POLL_MS = 2000;
const FILTER_DELAY_MS = 120;
// Built-in columns whose mean and std over a group mean something (not dates, not findings).
const GROUP_STATS = new Set(['best', 'epochs', 'duration']);

// Empties `el` and appends the children: arrays flattened, nulls skipped (native append would
// write them as text).
function fill(el, ...children) {
  clear(el).append(...children.flat(Infinity).filter(Boolean));
  return el;
}

function loadState() {
  let s = {};
  try { s = JSON.parse(localStorage.getItem(STORE_KEY) || '{}') || {}; } catch { /* a damaged entry: the defaults */ }
  return {
    columns: Array.isArray(s.columns) ? s.columns.filter((x) => typeof x === 'string') : null,  // null: the defaults
    sort: s.sort && typeof s.sort.id === 'string' && (s.sort.dir === 1 || s.sort.dir === -1) ? s.sort : null,
    filter: typeof s.filter === 'string' ? s.filter : '',
    group: typeof s.group === 'string' ? s.group : 'sweep',
    colorBy: typeof s.colorBy === 'string' ? s.colorBy : null,
    parallel: s.parallel !== false,
  };
}

export async function runsPage({ app, setCrumbs, poller }) {
  setCrumbs({ text: 'runs' });
  const table = new RunsTable(app);
  table.setData(await getJSON('api/runs'));
  const poll = poller(async () => table.setData(await getJSON('api/runs')), POLL_MS);
  return { stop: () => { poll.stop(); table.stop(); } };
}

class RunsTable {
  constructor(app) {
    this.state = loadState();
    this.selected = new Set();
    this.brushes = new Map();   // column id -> [low, high], from the parallel coordinates
    this.dataText = '';
    this.runs = [];
    this.shown = { cols: [], runs: [] };  // what the table shows, for export
    this.build(app);
  }

  save() { localStorage.setItem(STORE_KEY, JSON.stringify(this.state)); }

  // ---- the page's fixed parts ----
  build(app) {
    this.dirNote = h('span', { class: 'muted' });
    this.compareBtn = h('button', { class: 'primary', disabled: true, text: 'Compare selected', onclick: () => this.compare([...this.selected]) });
    this.compareGroupsBtn = h('button', { text: 'Compare groups', hidden: true, dataset: { action: 'compare-groups' } });
    this.filterInput = h('input', { type: 'search', class: 'runs-filter', value: this.state.filter, 'aria-label': 'filter runs',
      placeholder: 'filter: words, or key=value, key>number, key<number (e.g. train.lr<0.01 val/accuracy>0.9)' });
    let timer = null;
    this.filterInput.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.setFilter(this.filterInput.value), FILTER_DELAY_MS);
    });
    this.filterError = h('div', { class: 'filter-error', role: 'alert' });
    this.groupSelect = h('select', { 'aria-label': 'group by', class: 'group-select' });
    this.groupSelect.addEventListener('change', () => { this.state.group = this.groupSelect.value; this.save(); this.render(); });
    this.columnsBtn = h('button', { type: 'button', text: 'Columns', 'aria-expanded': 'false', dataset: { action: 'columns' } });
    this.chooser = h('div', { class: 'column-chooser', hidden: true });
    this.columnsBtn.addEventListener('click', () => this.toggleChooser());
    this.chooser.addEventListener('keydown', (e) => { if (e.key === 'Escape') { this.toggleChooser(false); this.columnsBtn.focus(); } });
    this.count = h('span', { class: 'muted small runs-count', role: 'status' });
    this.head = h('thead');
    this.body = h('tbody');

    this.pcRoot = h('div', { class: 'pc-root' });
    this.colorSelect = h('select', { 'aria-label': 'colour by' });
    this.colorSelect.addEventListener('change', () => { this.state.colorBy = this.colorSelect.value || ''; this.save(); this.render(); });
    this.clearBrushBtn = h('button', { type: 'button', text: 'Clear brush', hidden: true, onclick: () => this.setBrushes(new Map()) });
    this.pcToggle = h('button', { type: 'button', class: 'link-button', onclick: () => { this.state.parallel = !this.state.parallel; this.save(); this.render(); } });
    this.pcCard = h('section', { class: 'card', dataset: { section: 'parallel coordinates' } },
      h('div', { class: 'section-head' }, h('h2', { text: 'Parallel coordinates' }),
        h('span', { class: 'muted small', text: 'drag along an axis to keep a range · click an axis to clear it · click a line to open its run' }),
        h('span', { class: 'spacer' }), h('label', { class: 'small' }, 'colour by ', this.colorSelect), this.clearBrushBtn, this.pcToggle),
      this.pcRoot);

    const tools = h('div', { class: 'table-tools' }, this.filterInput,
      h('label', { class: 'small' }, 'group by ', this.groupSelect), h('span', { class: 'chooser-anchor' }, this.columnsBtn, this.chooser),
      h('button', { type: 'button', text: '⤓ CSV', title: 'download the rows and columns shown, as CSV', dataset: { export: 'csv' }, onclick: () => this.download('csv') }),
      h('button', { type: 'button', text: '⤓ JSON', title: 'download the rows and columns shown, as JSON', dataset: { export: 'json' }, onclick: () => this.download('json') }),
      this.count);
    clear(app).append(this.pcCard, h('section', { class: 'card', dataset: { section: 'runs' } },
      h('div', { class: 'section-head' }, h('h2', { text: 'Runs' }), this.dirNote, h('span', { class: 'spacer' }), this.compareGroupsBtn, this.compareBtn),
      tools, this.filterError,
      h('div', { class: 'scroll-x' }, h('table', { class: 'runs' }, this.head, this.body))));

    // The parallel coordinates take the card's width: redraw when it changes.
    this.resize = new ResizeObserver(() => { if (this.pcRoot.clientWidth !== this.pcWidth) this.renderParallel(true); });
    this.resize.observe(this.pcRoot);
    this.outside = (e) => { if (!this.chooser.hidden && !e.target.closest('.chooser-anchor')) this.toggleChooser(false); };
    document.addEventListener('pointerdown', this.outside);
  }

  stop() {
    this.resize.disconnect();
    document.removeEventListener('pointerdown', this.outside);
  }

  // New data from api/runs; the same answer as last time draws nothing.
  setData(data) {
    const text = JSON.stringify(data);
    if (text === this.dataText) return;
    this.dataText = text;
    this.dirNote.textContent = data.runs_dir || '';
    this.runs = data.runs || [];
    const names = new Set(this.runs.map((r) => r.name));
    for (const n of this.selected) if (!names.has(n)) this.selected.delete(n);
    this.render();
  }

  setFilter(text) {
    this.state.filter = text;
    if (this.filterInput.value !== text) this.filterInput.value = text;
    this.save();
    this.render();
  }

  setBrushes(brushes) {
    this.brushes = brushes;
    this.render();
  }

  // ---- what is shown ----
  render() {
    const cat = catalogue(this.runs);
    this.cat = cat;
    const cols = resolveColumns(this.state.columns || defaultColumns(cat), cat);
    const { terms, errors } = parseFilter(this.state.filter, cat);
    this.filterError.textContent = errors.length ? `Not applied: ${errors.join('; ')}.` : '';
    const filtered = this.runs.filter((r) => matches(r, terms));
    const axes = cols.filter((c) => c.kind !== 'builtin' && c.numeric);
    for (const id of this.brushes.keys()) if (!axes.some((c) => c.id === id)) this.brushes.delete(id);
    const visible = filtered.filter((r) => this.inBrushes(r));
    const sortCol = this.state.sort ? cat.byId.get(this.state.sort.id) : null;
    const rows = arrange(visible, { group: this.groupKey(cat), sortCol, dir: this.state.sort?.dir || 1, cat });

    this.shown = { cols, runs: rows.flatMap((x) => (x.run ? [x.run] : x.runs)) };
    this.pcInput = { runs: filtered, axes, cat };
    this.renderGroupSelect(cat);
    this.renderHead(cols, sortCol);
    this.renderBody(rows, cols);
    this.renderCount(filtered.length, visible.length);
    this.renderParallel(false);
    this.renderCompareGroups(rows);
    this.renderCompareSelected();
  }

  renderCompareSelected() {
    const n = this.selected.size;
    this.compareBtn.disabled = n < 2;
    this.compareBtn.textContent = n >= 2 ? `Compare selected (${n})` : 'Compare selected';
  }

  inBrushes(run) {
    for (const [id, [lo, hi]] of this.brushes) {
      const v = this.cat.byId.get(id)?.value(run);
      if (typeof v !== 'number' || !(v >= lo && v <= hi)) return false;
    }
    return true;
  }

  groupKey(cat) {
    const g = this.state.group;
    return g === 'none' || g === 'sweep' || cat.byId.has(g) ? g : 'sweep';
  }

  renderGroupSelect(cat) {
    const current = this.groupKey(cat);
    const differ = cat.settings.filter((c) => c.differs), same = cat.settings.filter((c) => !c.differs);
    fill(this.groupSelect,
      h('option', { value: 'sweep', text: 'sweep (default)' }),
      h('option', { value: 'none', text: 'nothing' }),
      differ.length ? h('optgroup', { label: 'settings that differ' }, differ.map((c) => h('option', { value: c.id, text: c.key }))) : null,
      same.length ? h('optgroup', { label: 'other settings' }, same.map((c) => h('option', { value: c.id, text: c.key }))) : null);
    this.groupSelect.value = current;
  }

  renderCount(filtered, visible) {
    const total = this.runs.length;
    let text = visible === total ? `${total} run${total === 1 ? '' : 's'}` : `${visible} of ${total} runs`;
    if (this.brushes.size) text += ` (${filtered - visible} more outside the brush on ${[...this.brushes.keys()].map((id) => this.cat.byId.get(id).label).join(', ')})`;
    this.count.textContent = text;
    this.clearBrushBtn.hidden = !this.brushes.size;
  }

  // ---- the table ----
  renderHead(cols, sortCol) {
    const all = h('input', { type: 'checkbox', 'aria-label': 'select the runs shown' });
    const names = this.shown.runs.map((r) => r.name);
    all.checked = names.length > 0 && names.every((n) => this.selected.has(n));
    all.addEventListener('change', () => {
      for (const n of names) { if (all.checked) this.selected.add(n); else this.selected.delete(n); }
      this.render();
    });
    clear(this.head).appendChild(h('tr', null, h('th', { class: 'check' }, all), cols.map((c) => {
      const dir = sortCol === c ? this.state.sort.dir : 0;
      // A key's section over its name ("train." over "batch_size"): narrower columns, and the
      // names line up.
      const cut = c.kind === 'builtin' ? -1 : Math.max(c.key.lastIndexOf('.'), c.key.lastIndexOf('/'));
      const label = cut < 0 ? c.label : h('span', { class: 'key-label' }, h('span', { class: 'key-prefix', text: c.key.slice(0, cut + 1) }), h('span', { text: c.key.slice(cut + 1) }));
      const th = h('th', { class: `${c.numeric ? 'num ' : ''}${c.kind === 'builtin' ? '' : 'key-col'}`, 'aria-sort': dir ? (dir > 0 ? 'ascending' : 'descending') : null,
        dataset: { col: c.id }, title: c.kind === 'setting' ? `setting ${c.key}` : c.kind === 'final' ? `last value of ${c.key}` : null },
      h('button', { type: 'button', class: 'th-sort', onclick: () => this.cycleSort(c) }, label, h('span', { class: 'sort-arrow', 'aria-hidden': 'true', text: dir > 0 ? '▲' : dir < 0 ? '▼' : '' })));
      return th;
    })));
  }

  // Unsorted -> ascending -> descending -> unsorted.
  cycleSort(col) {
    const s = this.state.sort;
    if (!s || s.id !== col.id) this.state.sort = { id: col.id, dir: 1 };
    else if (s.dir === 1) this.state.sort = { id: col.id, dir: -1 };
    else this.state.sort = null;
    this.save();
    this.render();
  }

  renderBody(rows, cols) {
    clear(this.body);
    const span = cols.length + 1;
    if (!this.runs.length) {
      this.body.appendChild(h('tr', null, h('td', { colspan: span, class: 'muted', text: 'No runs yet. Start one with `trainscope train`.' })));
      return;
    }
    if (!rows.length) {
      this.body.appendChild(h('tr', null, h('td', { colspan: span, class: 'muted' }, 'No run matches the filter. ',
        h('button', { type: 'button', class: 'link-button', text: 'Show all', onclick: () => { this.brushes.clear(); this.setFilter(''); } }))));
      return;
    }
    const tagsShown = cols.some((c) => c.id === 'tags');
    for (const row of rows) {
      if (row.run) { this.body.appendChild(this.runRow(row.run, cols, tagsShown)); continue; }
      this.body.appendChild(row.sweep ? this.sweepRow(row.sweep, row.runs, span) : this.groupRow(row.group, row.runs, cols));
      for (const r of row.runs) this.body.appendChild(this.runRow(r, cols, tagsShown));
    }
  }

  runRow(r, cols, tagsShown) {
    const box = h('input', { type: 'checkbox', 'aria-label': `select ${r.display_name}`, checked: this.selected.has(r.name) });
    box.addEventListener('change', () => {
      if (box.checked) this.selected.add(r.name); else this.selected.delete(r.name);
      this.renderCompareSelected();
    });
    return h('tr', { dataset: { run: r.name } }, h('td', { class: 'check' }, box), cols.map((c) => this.cell(c, r, tagsShown)));
  }

  cell(c, r, tagsShown) {
    if (c.kind !== 'builtin') {
      const v = c.value(r);
      if (v === null || v === undefined || v === '') return h('td', { class: `${c.numeric ? 'num ' : ''}muted`, text: '–' });
      if (typeof v === 'number') return h('td', { class: 'num', text: c.kind === 'setting' ? fmtPlain(v) : fmt(v) });
      return h('td', { class: 'value', title: String(v).length > 40 ? String(v) : null, text: String(v) });
    }
    switch (c.id) {
      case 'run': return this.nameCell(r, tagsShown);
      case 'status': return h('td', { title: r.stop_message || '' }, statusBadge(r.status, r.stop_reason));
      case 'best': return h('td', { class: 'num', text: bestMetricText(r) });
      case 'epochs': return h('td', { class: 'num', text: r.max_epochs ? `${r.epochs} / ${r.max_epochs}` : fmt(r.epochs) });
      case 'duration': return h('td', { class: 'num', text: fmtDuration(r.duration) });
      case 'findings': {
        const f = Object.entries(r.findings || {}).map(([sev, n]) => h('span', { class: `count sev-${sev.replace(/[^a-z]/g, '')}`, title: `${n} ${sev}`, text: n }));
        return h('td', null, f.length ? f : h('span', { class: 'muted', text: '–' }));
      }
      case 'started': return h('td', { class: 'date', text: fmtTime(r.started_at) });
      case 'updated': return h('td', { class: 'date muted', text: fmtAgo(r.last_update) });
      case 'tags': return h('td', null, tagChips(r.annotations?.tags, (t) => this.filterByTag(t)));
      case 'note': return h('td', { class: 'note-cell', title: r.annotations?.note || null, text: r.annotations?.note || '' });
      default: return h('td', { text: c.value(r) ?? '–' });
    }
  }

  nameCell(r, tagsShown) {
    const note = r.annotations?.note || '';
    const edit = h('button', { type: 'button', class: 'edit-annotations', title: 'edit tags and note', 'aria-label': `edit the tags and note of ${r.display_name}`, text: '✎' });
    edit.addEventListener('click', () => editAnnotationsDialog(r, { suggestions: this.allTags(), onSaved: (stored) => this.annotated(r.name, stored) }));
    return h('td', { class: 'name' },
      h('a', { href: `#/run/${enc(r.name)}`, text: r.display_name }), r.model ? h('span', { class: 'muted small', text: ` ${r.model}` }) : null, edit,
      r.sweep_trial ? h('div', { class: 'muted small', text: r.sweep_trial }) : null,
      tagsShown ? null : h('div', { class: 'row-tags' }, tagChips(r.annotations?.tags, (t) => this.filterByTag(t))),
      note ? h('div', { class: 'row-note muted small', title: note, text: note.length > 90 ? `${note.slice(0, 89)}…` : note }) : null);
  }

  // A sweep's header counts all its trials, and says how many of them the filter shows.
  sweepRow(sweep, trials, span) {
    const all = this.runs.filter((r) => r.sweep === sweep);
    const finished = all.filter((t) => t.status === 'finished').length;
    const hidden = all.length - trials.length;
    return h('tr', { class: 'group', dataset: { sweep } }, h('td', { colspan: span },
      `sweep ${sweep} · ${all.length} trial${all.length === 1 ? '' : 's'} · ${finished} finished${hidden ? ` · ${trials.length} shown` : ''}`,
      trials.length > 1 ? h('a', { class: 'group-compare', href: compareHash(trials), text: 'compare trials' }) : null));
  }

  // A setting's group: its value, n, and the mean ± std of each numeric column over its runs.
  groupRow(group, runs, cols) {
    const box = h('input', { type: 'checkbox', 'aria-label': `select the runs with ${group.key} = ${group.value}`, checked: runs.every((r) => this.selected.has(r.name)) });
    box.addEventListener('change', () => {
      for (const r of runs) { if (box.checked) this.selected.add(r.name); else this.selected.delete(r.name); }
      this.render();
    });
    const value = group.value === null ? 'not set' : typeof group.value === 'number' ? fmtPlain(group.value) : String(group.value);
    const ended = runs.filter((r) => isEnded(r.status)).length;
    return h('tr', { class: 'group setting-group', dataset: { group: value, n: String(runs.length) } }, h('td', { class: 'check' }, box), cols.map((c) => {
      if (c.id === 'run') {
        return h('td', { class: 'name' }, h('div', { class: 'group-label mono', text: `${group.key} = ${value}` }),
          h('span', { class: 'muted group-n', text: `n = ${runs.length}` }),
          runs.length > 1 ? h('a', { class: 'group-compare', href: compareHash(runs, group.key), text: 'compare group' }) : null);
      }
      if (c.id === 'status') return h('td', { class: 'muted small', text: `${ended} of ${runs.length} ended` });
      if (!c.numeric || (c.kind === 'builtin' && !GROUP_STATS.has(c.id))) return h('td');
      const s = stats(runs.map((r) => c.value(r)));
      if (!s) return h('td', { class: 'num muted', text: '–' });
      // Best val reads as the rows do: a percentage where every run's best is an accuracy.
      const percent = c.id === 'best' && runs.every((r) => r.best_val_metric?.tag === 'accuracy');
      const [mean, std] = meanStdText(percent ? { mean: 100 * s.mean, std: s.std === null ? null : 100 * s.std } : s, c, percent ? '%' : '');
      return h('td', { class: 'num group-stat', dataset: { mean: String(s.mean), std: s.std === null ? '' : String(s.std) },
        title: `mean ± sample standard deviation over ${s.n} run${s.n === 1 ? '' : 's'}` }, mean, std ? h('div', { class: 'std', text: `± ${std}` }) : null);
    }));
  }

  renderCompareGroups(rows) {
    const groups = rows.filter((x) => x.group);
    const btn = this.compareGroupsBtn;
    btn.hidden = !groups.length;
    if (!groups.length) return;
    const runs = groups.flatMap((g) => g.runs);
    btn.disabled = runs.length < 2;
    btn.title = `compare the ${groups.length} groups shown, each as its mean ± std`;
    btn.onclick = () => { location.hash = compareHash(runs, groups[0].group.key); };
  }

  compare(names) { location.hash = `#/compare/${names.map(enc).join(',')}`; }

  // ---- tags ----
  filterByTag(tag) {
    const word = /[\s"]/.test(tag) ? `tag="${tag}"` : `tag=${tag}`;
    const words = this.state.filter.trim();
    if (!words.split(/\s+/).includes(word)) this.setFilter(words ? `${words} ${word}` : word);
  }

  allTags() {
    return [...new Set(this.runs.flatMap((r) => r.annotations?.tags || []))].sort();
  }

  annotated(name, stored) {
    const r = this.runs.find((x) => x.name === name);
    if (r) r.annotations = stored;
    this.dataText = '';  // this.runs no longer matches the last answer: the next poll redraws
    this.render();
  }

  // ---- parallel coordinates ----
  renderParallel(force) {
    const { runs, axes, cat } = this.pcInput || { runs: [], axes: [], cat: this.cat };
    const usable = axes.length >= 2 && this.runs.length >= 2;
    this.pcCard.hidden = !usable;
    if (!usable) return;
    this.pcToggle.textContent = this.state.parallel ? 'Hide' : 'Show';
    this.pcRoot.hidden = !this.state.parallel;
    // The colour: the reader's choice ('' for none), else the first final metric shown.
    const chosen = this.state.colorBy;
    let colorBy = chosen === '' ? null : cat.byId.get(chosen);
    if (chosen !== '' && !colorBy?.numeric) colorBy = axes.find((c) => c.kind === 'final') || axes[axes.length - 1];
    fill(this.colorSelect, h('option', { value: '', text: 'nothing' }), axes.map((c) => h('option', { value: c.id, text: c.label })));
    if (colorBy && !axes.includes(colorBy)) this.colorSelect.appendChild(h('option', { value: colorBy.id, text: colorBy.label }));
    this.colorSelect.value = colorBy ? colorBy.id : '';
    if (!this.state.parallel) return;
    // Polls bring the same values most of the time: redraw only when what is drawn changes.
    const signature = JSON.stringify([this.pcRoot.clientWidth, axes.map((c) => c.id), colorBy?.id, [...this.brushes],
      runs.map((r) => [r.name, ...axes.map((c) => c.value(r)), colorBy ? colorBy.value(r) : null])]);
    if (!force && signature === this.pcSignature) return;
    this.pcSignature = signature;
    this.pcWidth = this.pcRoot.clientWidth;
    parallelCoordinates(this.pcRoot, { runs, axes, colorBy, brushes: this.brushes, onBrush: (b) => this.setBrushes(b), active: (r) => this.inBrushes(r) });
  }

  // ---- column chooser ----
  toggleChooser(open = this.chooser.hidden) {
    this.chooser.hidden = !open;
    this.columnsBtn.setAttribute('aria-expanded', String(open));
    if (open) { this.chooserQuery = ''; this.renderChooser(); this.chooser.querySelector('input[type=search]').focus(); }
  }

  renderChooser() {
    const cat = this.cat;
    const ids = this.state.columns || defaultColumns(cat);
    const shown = new Set(ids);
    const search = h('input', { type: 'search', placeholder: 'find a setting or metric', 'aria-label': 'find a column', value: this.chooserQuery || '' });
    const lists = h('div', { class: 'chooser-lists' });
    const choose = (id, on) => {
      const next = (this.state.columns || defaultColumns(cat)).filter((x) => x !== id);
      if (on) next.push(id);
      this.state.columns = next;
      this.save();
      this.render();
    };
    const item = (c, extra) => {
      const box = h('input', { type: 'checkbox', checked: shown.has(c.id), dataset: { col: c.id } });
      box.addEventListener('change', () => choose(c.id, box.checked));
      return h('label', { class: 'chooser-item', dataset: { key: c.label.toLowerCase() } }, box, h('span', { class: c.kind === 'builtin' ? '' : 'mono', text: c.label }), extra || null);
    };
    const differ = cat.settings.filter((c) => c.differs), same = cat.settings.filter((c) => !c.differs);
    const group = (title, items) => (items.length ? h('div', { class: 'chooser-group' }, h('div', { class: 'chooser-title', text: title }), items) : null);
    fill(lists,
      group('Run', cat.builtins.filter((c) => !c.fixed).map((c) => item(c))),
      group('Final metrics (last value logged)', cat.finals.map((c) => item(c))),
      group('Settings that differ between runs', differ.map((c) => item(c, h('span', { class: 'muted small', text: ' differs' })))),
      group('Settings the runs share', same.map((c) => item(c))));
    const applyQuery = () => {
      const q = search.value.trim().toLowerCase();
      this.chooserQuery = search.value;
      for (const el of lists.querySelectorAll('.chooser-item')) el.hidden = Boolean(q) && !el.dataset.key.includes(q);
    };
    search.addEventListener('input', applyQuery);
    fill(this.chooser, h('div', { class: 'chooser-head' }, search,
      h('button', { type: 'button', class: 'link-button', text: 'defaults', title: "today's columns, the validation metric and the settings that differ", onclick: () => { this.state.columns = null; this.save(); this.render(); this.renderChooser(); } })), lists);
    applyQuery();
  }

  // ---- export ----
  download(kind) {
    const { cols, runs } = this.shown;
    const text = kind === 'csv' ? toCSV(cols, runs) : toJSON(cols, runs);
    const blob = new Blob([text], { type: kind === 'csv' ? 'text/csv;charset=utf-8' : 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);  // not through h(): its links are the dashboard's own only
    a.download = `trainscope-runs.${kind}`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
}

// A group's mean and std as text, the mean to the std's precision (two significant digits of the
// std): 0.9127 ± 0.0052. No std where the runs agree (a setting they share) or there is one run.
function meanStdText({ mean, std }, col, unit = '') {
  const agree = std === null || std <= 1e-9 * Math.abs(mean);
  if (col.id === 'duration') return [fmtDuration(mean), agree ? null : fmtDuration(std)];
  const plain = col.kind === 'setting' ? fmtPlain : fmt;
  if (agree) return [plain(mean) + unit, null];
  const decimals = 1 - Math.floor(Math.log10(std));
  if (decimals < 0 || decimals > 8 || Math.abs(mean) >= 1e7) return [fmt(mean) + unit, fmt(std, 2) + unit];
  return [mean.toFixed(decimals) + unit, std.toFixed(decimals) + unit];
}

// The comparison of these runs; with `groupKey`, drawn as each group's mean ± std.
function compareHash(runs, groupKey) {
  return `#/compare/${runs.map((r) => enc(r.name)).join(',')}${groupKey ? `?group=${enc(groupKey)}` : ''}`;
}
