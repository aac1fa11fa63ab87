// The runs table's logic without a browser: the filter language, sorting, grouping with mean and
// std, export, and which run events the notifications announce.
// node --test tests/e2e/runs_model.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as m from '../../web/runs_model.js';
import { RunWatcher } from '../../web/notify.js';

const runs = [
  { name: 'a', display_name: 'a', status: 'finished', model: 'mlp', started_at: 3,
    settings: { 'train.lr': '0.001', 'train.seed': '0', 'optim.name': '"adam"', 'run.name': '"a"', 'train.batch_size': '"32"' },
    final: { 'val/accuracy': 0.9, 'val/loss': 0.3 }, annotations: { tags: ['baseline', 'two words'], note: 'first try' } },
  { name: 'b', display_name: 'b', status: 'running', model: 'cnn', started_at: 2,
    settings: { 'train.lr': '0.003', 'train.seed': '1', 'optim.name': '"sgd"', 'run.name': '"b"', 'train.batch_size': '64' },
    final: { 'val/accuracy': 0.8, 'val/loss': null }, annotations: { tags: [], note: '' } },
  { name: 'c', display_name: 'c', status: 'finished', sweep: 's', started_at: 1,
    settings: { 'train.lr': '1e-3', 'train.seed': '2', 'run.name': '"c"' }, final: { 'val/accuracy': 0.95 } },
];
const cat = m.catalogue(runs);
const shown = (text) => {
  const { terms, errors } = m.parseFilter(text, cat);
  return { names: runs.filter((r) => m.matches(r, terms)).map((r) => r.name).join(''), errors };
};

test('settings read as the table shows them', () => {
  assert.equal(m.settingValue('"adam"'), 'adam');
  assert.equal(m.settingValue('"32"'), 32);  // resolved from "auto"
  assert.equal(m.settingValue('1_000'), 1000);
  assert.equal(m.settingValue('[64, 128]'), '[64, 128]');
  assert.equal(m.settingValue('true'), 'true');
  assert.equal(m.fmtPlain(0.0003), '0.0003');
  assert.equal(m.fmtPlain(5000), '5000');
});

test('default columns: today\'s, the validation accuracy, the settings that differ', () => {
  const ids = m.defaultColumns(cat);
  assert.deepEqual(ids.slice(0, 8), m.DEFAULT_BUILTINS);
  assert.equal(ids[8], 'final:val/accuracy');
  assert.deepEqual(ids.slice(9).sort(), ['setting:optim.name', 'setting:train.batch_size', 'setting:train.lr', 'setting:train.seed']);
  assert.ok(cat.byId.get('setting:train.batch_size').numeric);
});

test('filter: words, comparisons, wildcards, tags', () => {
  assert.deepEqual(shown('train.lr<0.002'), { names: 'ac', errors: [] });
  assert.deepEqual(shown('train.lr=0.001'), { names: 'ac', errors: [] });  // 1e-3 is 0.001
  assert.deepEqual(shown('val/accuracy>0.85 train.lr<0.01'), { names: 'ac', errors: [] });
  assert.deepEqual(shown('val/accuracy>=0.9'), { names: 'ac', errors: [] });
  assert.deepEqual(shown('optim.name=ad*'), { names: 'a', errors: [] });
  assert.deepEqual(shown('optim.name!=adam'), { names: 'bc', errors: [] });
  assert.deepEqual(shown('tag="two words"'), { names: 'a', errors: [] });
  assert.deepEqual(shown('"two words"'), { names: 'a', errors: [] });
  assert.deepEqual(shown('MLP'), { names: 'a', errors: [] });
  assert.deepEqual(shown('status=finished first'), { names: 'a', errors: [] });
  assert.deepEqual(shown('<script>'), { names: '', errors: [] });  // a word, not a comparison
});

test('filter: what it cannot parse is named, and the rest still applies', () => {
  assert.match(shown('trian.lr<1').errors[0], /no setting or final metric is called trian\.lr \(did you mean train\.lr\?\)/);
  assert.match(shown('train.lr>abc').errors[0], /> compares numbers, and abc is not one/);
  assert.match(shown('train.lr>').errors[0], /needs a value/);
  assert.match(shown('>0.9').errors[0], /compares nothing/);
  assert.deepEqual(shown('mlp trian.lr<1').names, 'a');
});

test('sort: numbers, missing values last both ways', () => {
  const order = (id, dir) => m.arrange(runs, { group: 'none', sortCol: cat.byId.get(id), dir, cat }).map((x) => x.run.name).join('');
  assert.equal(order('final:val/loss', 1), 'abc');
  assert.equal(order('final:val/loss', -1), 'abc');
  assert.equal(order('final:val/accuracy', -1), 'cab');
  // Unsorted: newest first, a sweep's trials under its header.
  assert.deepEqual(m.arrange(runs, { cat }).map((x) => x.run?.name ?? `sweep ${x.sweep}`), ['a', 'b', 'sweep s']);
});

test('group by a setting: one group per value, mean and sample std', () => {
  const groups = m.arrange(runs, { group: 'setting:train.lr', cat });
  assert.deepEqual(groups.map((g) => [g.group.value, g.runs.map((r) => r.name).join('')]), [[0.001, 'ac'], [0.003, 'b']]);
  const s = m.stats([0.9, 0.95, null]);
  assert.equal(s.n, 2);
  assert.ok(Math.abs(s.mean - 0.925) < 1e-15 && Math.abs(s.std - Math.sqrt(0.00125)) < 1e-15);
  assert.equal(m.stats([0.5]).std, null);
});

test('CSV: RFC 4180 quoting, no formulas, full precision; JSON keeps types', () => {
  assert.equal(m.csvField('a,b'), '"a,b"');
  assert.equal(m.csvField('say "hi"'), '"say ""hi"""');
  assert.equal(m.csvField('line\nbreak'), '"line\nbreak"');
  assert.equal(m.csvField('=1+1'), "'=1+1");
  assert.equal(m.csvField(-1.5), '-1.5');
  const cols = m.resolveColumns(['status', 'tags', 'duration', 'final:val/loss', 'gone'], cat);
  assert.equal(m.toCSV(cols, runs.slice(0, 2)), 'run,status,tags,duration (s),val/loss\r\na,finished,"baseline,two words",,0.3\r\nb,running,,,\r\n');
  assert.deepEqual(JSON.parse(m.toJSON(cols, runs.slice(0, 1))), [{ run: 'a', status: 'finished', tags: ['baseline', 'two words'], 'duration (s)': null, 'val/loss': 0.3 }]);
});

test('notifications: a run that ends, a new warning, a sweep once all its trials ended, each once', async () => {
  const findings = { a: [{ id: 1, severity: 'info', kind: 'x' }, { id: 2, severity: 'warning', kind: 'overfitting', message: 'val up' }] };
  const w = new RunWatcher(async (n) => findings[n] || []);
  const row = (name, status, extra = {}) => ({ name, display_name: name, status, findings: {}, ...extra });
  const keys = async (rows, now) => (await w.update(rows, now)).map((a) => a.key);
  // The first look is the baseline: what already happened is not news.
  assert.deepEqual(await keys([row('a', 'running'), row('old', 'finished'), row('s-001', 'running', { sweep: 's' })], 0), []);
  assert.deepEqual(await keys([row('a', 'running', { findings: { info: 1, warning: 1 } }), row('old', 'finished'), row('s-001', 'finished', { sweep: 's', ended_at: 5 })], 5),
    ['finding:a:2', 'end:s-001:5']);
  assert.deepEqual(await keys([row('a', 'finished', { ended_at: 9, findings: { info: 1, warning: 1 } }), row('s-001', 'finished', { sweep: 's', ended_at: 5 })], 10), ['end:a:9']);
  // The sweep's next trial starts: not over yet.
  const sweep = (second) => [row('s-001', 'finished', { sweep: 's', ended_at: 5 }), row('s-002', second, { sweep: 's', ended_at: second === 'finished' ? 50 : null })];
  assert.deepEqual(await keys(sweep('running'), 40), []);
  assert.deepEqual(await keys(sweep('finished'), 50), ['end:s-002:50']);
  assert.deepEqual(await keys(sweep('finished'), 100), []);  // quiet for 50 s: maybe another trial
  assert.deepEqual(await keys(sweep('finished'), 111), ['sweep:s:50']);
  assert.deepEqual(await keys(sweep('finished'), 200), []);
});
