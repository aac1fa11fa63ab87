// The dashboard in a real browser: playwright-core drives Debian's chromium (headless) against
// `trainscope dashboard` over fixture runs and a live `trainscope train`.
// node dashboard.e2e.mjs --cli build/trainscope --make-runs build/tests/make_runs --out DIR
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../web/package.json'));
const { chromium } = require('playwright-core');

const arg = (name) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const cli = resolve(arg('--cli')), makeRuns = resolve(arg('--make-runs')), out = resolve(arg('--out') || join(tmpdir(), 'trainscope-e2e-out'));
mkdirSync(out, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'trainscope-e2e-'));
const runs = join(work, 'runs');
const children = [];
let failures = 0, passes = 0;

function log(...a) { console.log(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a); }
async function check(name, fn) {
  const start = performance.now();
  try { await fn(); passes++; log(`PASS ${name} (${Math.round(performance.now() - start)} ms)`); }
  catch (e) { failures++; log(`FAIL ${name}: ${e.stack || e}`); }
}
function assert(cond, message) { if (!cond) throw new Error(message); }
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Starts a child, resolving with the first stdout line that matches `ready`.
function start(cmd, args, ready) {
  const child = spawn(cmd, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let text = '';
  child.stderr.on('data', (d) => { text += d; });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      text += d;
      const m = text.match(ready);
      if (m) resolve({ child, match: m, output: () => text });
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited with ${code} before it was ready:\n${text}`)));
  });
}

let browser;
try {
  log('fixtures');
  execFileSync(makeRuns, [runs]);
  const dash = await start(cli, ['dashboard', runs, '--port', '0'], /(http:\/\/127\.0\.0\.1:\d+\/)/);
  const base = dash.match[1];
  log('dashboard at', base);

  // launch() gives the browser a fresh temporary --user-data-dir of its own (and removes it).
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  const dialogs = [];
  const pageErrors = [];
  context.on('page', (p) => {
    p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    p.on('pageerror', (e) => pageErrors.push(e.message));
  });
  const page = await context.newPage();

  await check('a hostile run name renders as text', async () => {
    await page.goto(base);
    await page.waitForSelector('table.runs tbody tr[data-run]');
    const names = await page.$$eval('table.runs td.name a', (as) => as.map((a) => a.textContent));
    assert(names.includes('<script>alert(1)</script>'), `run names: ${JSON.stringify(names)}`);
    // A sweep's trials: one group header, then its trials in order, each with its settings.
    const sweep = await page.$$eval('table.runs tbody tr', (rows) => {
      const at = rows.findIndex((r) => r.dataset.sweep === 'lr-sweep');
      return at < 0 ? null : { header: rows[at].textContent, next: rows.slice(at + 1, at + 3).map((r) => [r.dataset.run, r.querySelector('td.name div')?.textContent]) };
    });
    assert(sweep && sweep.header.includes('sweep lr-sweep · 2 trials · 2 finished'), `sweep group: ${JSON.stringify(sweep)}`);
    assert(sweep.next[0][0] === 'sw-001' && sweep.next[1][0] === 'sw-002' && sweep.next[0][1] === 'train.lr=0.002000', `trials: ${JSON.stringify(sweep.next)}`);
    await page.screenshot({ path: join(out, 'runs-list.png'), fullPage: true });
    await page.click('text=<script>alert(1)</script>');
    await page.waitForSelector('.finding');
    await page.waitForTimeout(300);
    const injected = await page.evaluate(() => ({
      imgs: document.querySelectorAll('img').length,
      scripts: [...document.scripts].filter((s) => !s.src).length,
      svgs: document.querySelectorAll('main svg').length,
      links: [...document.querySelectorAll('a')].filter((a) => a.href.startsWith('javascript:')).length,
      title: document.querySelector('.run-title h1').textContent,
      finding: document.querySelector('.finding .message').textContent,
    }));
    await page.screenshot({ path: join(out, 'hostile-run.png'), fullPage: true });
    assert(injected.imgs === 0 && injected.scripts === 0 && injected.svgs === 0 && injected.links === 0, `injected: ${JSON.stringify(injected)}`);
    assert(injected.title === '<script>alert(1)</script>', `title ${injected.title}`);
    assert(injected.finding === '<img src=x onerror=alert(6)>', `finding ${injected.finding}`);
    assert(dialogs.length === 0, `dialogs opened: ${dialogs}`);
  });

  await check('a tag with a million points loads in under a second', async () => {
    await page.goto(base + '#/');
    const start = Date.now();
    await page.goto(base + '#/run/big');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=loss]')?.dataset.points || 0) > 0), 10000, 'the big chart');
    const ms = Date.now() - start;
    const info = await page.evaluate(() => ({ points: Number(document.querySelector('[data-chart=loss]').dataset.points), note: document.querySelector('[data-chart=loss] .chart-note').textContent }));
    log(`big run: ${ms} ms to a drawn chart; ${info.note}`);
    await page.screenshot({ path: join(out, 'big-run.png') });
    assert(info.points <= 8000, `the browser received ${info.points} points`);
    assert(/of 1,000,\d{3} points/.test(info.note), `note: ${info.note}`);
    assert(ms < 1000, `took ${ms} ms`);
    // The spike at step 654,321 survives downsampling.
    const api = await page.evaluate(async () => (await fetch('api/runs/big/series?split=train&tag=step_loss&points=2000')).json());
    assert(Math.max(...api.value) > 5, 'the spike was dropped');
  });

  await check('a live run: a page opened before it starts waits, the curve grows, a finding appears, checkpoints match the disk', async () => {
    // The CLI prints the URL before the run exists: the page says it is starting, then loads.
    await page.goto(base + '#/run/live');
    await page.waitForSelector('.card.starting');
    // A live run beside the dashboard (its own dashboard off: the one above serves the directory).
    const train = spawn(cli, ['train', '--runs-dir', runs, '--name', 'live', '--epochs', '40', '--no-test', '--no-dashboard',
      '--progress', 'plain', '--set', 'data.limit=2000', '--set', 'train.log_every=2', '--set', 'train.early_stopping=false',
      '--set', 'train.batch_size=64'], { cwd: work, stdio: 'ignore' });
    children.push(train);
    await until(() => existsSync(join(runs, 'live', 'run.sqlite')), 60000, 'the live run to start');
    // The waiting page turns into the run's page by itself.
    await until(() => page.evaluate(() => document.querySelector('.run-title .mono')?.textContent === 'live'), 10000, 'the live run page');
    const points = () => page.evaluate(() => Number(document.querySelector('[data-chart=loss]')?.dataset.points || 0));
    await until(async () => (await points()) > 0, 60000, 'first points of the live run');
    const first = await points();
    await page.screenshot({ path: join(out, 'live-run-early.png') });
    await until(async () => (await points()) > first + 5, 30000, 'the loss curve to grow without reload');
    log(`live: loss chart went from ${first} to ${await points()} points`);
    const before = await page.$$eval('.finding', (f) => f.length);
    execFileSync(makeRuns, ['--add-finding', join(runs, 'live')]);
    const t0 = Date.now();
    await until(async () => (await page.$$eval('.finding', (f) => f.length)) > before, 3000, 'the finding to appear');
    log(`live: the finding appeared ${Date.now() - t0} ms after it was stored`);
    const text = await page.$$eval('.finding', (f) => f.map((x) => x.textContent).join('\n'));
    assert(text.includes('clip gradients at 1.0') && text.includes('grad_norm_20_steps_ago'), text);
    // The checkpoints view lists the files on disk, each once (rotation removes epoch files).
    const dir = join(runs, 'live', 'checkpoints');
    const shown = () => page.$$eval('table.checkpoints td.mono', (t) => t.map((x) => x.textContent.replace('checkpoints/', '')).sort().join(' '));
    const onDisk = () => readdirSync(dir).filter((f) => f.endsWith('.ckpt')).sort().join(' ');
    await until(async () => (await shown()).includes('previous.ckpt'), 30000, 'previous.ckpt in the checkpoints view');
    await until(async () => (await shown()) === onDisk(), 5000, `the checkpoints view (${await shown()}) to match the disk (${onDisk()})`);
    await page.screenshot({ path: join(out, 'live-run.png'), fullPage: true });
  });

  await check('honest charts: raw per-epoch values, smoothing per step only, log lr, axes, epochs, findings', async () => {
    await page.goto(base + '#/run/cmp-a');
    await until(() => page.evaluate(() => document.querySelector('.run-title .mono')?.textContent === 'cmp-a'), 10000, 'the cmp-a page');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=accuracy]')?.dataset.points || 0) > 0), 10000, 'the accuracy chart');
    const facts = await page.evaluate(async () => {
      const chart = (id) => document.querySelector(`[data-chart=${id}]`).chart;
      const api = await (await fetch('api/runs/cmp-a/series?split=val&tag=accuracy&points=2000')).json();
      const acc = chart('accuracy'), loss = chart('loss'), lr = chart('lr');
      const val = acc.series.find((x) => x.label === 'val');
      const at700 = val.y[val.x.indexOf(700)];
      return {
        accRaw: acc.series.some((x) => x.raw), lossRaw: loss.series.filter((x) => x.raw).map((x) => x.label),
        lossLabels: loss.series.map((x) => x.label), at700, api700: api.value[api.step.indexOf(700)],
        lrLog: lr.log, lrRange: [lr.u.scales.y.min, lr.u.scales.y.max], epochs: loss.vlines.length, markers: loss.markers.length,
        axes: loss.u.axes.map((a) => a.label),
        legendCase: getComputedStyle(document.querySelector('[data-chart=loss] .u-legend th') || document.body).textTransform,
      };
    });
    assert(!facts.accRaw, 'a per-epoch series was smoothed');
    assert(facts.at700 === facts.api700, `val accuracy at the best epoch: chart ${facts.at700}, store ${facts.api700}`);
    assert(JSON.stringify(facts.lossRaw) === JSON.stringify(['train (per step) (raw)']), `smoothed series: ${facts.lossRaw}`);
    assert(facts.lossLabels.includes('train (epoch mean)') && facts.lossLabels.includes('val'), `loss lines ${facts.lossLabels}`);
    assert(facts.lrLog && facts.lrRange[0] > 0 && facts.lrRange[1] > facts.lrRange[0] && facts.lrRange[0] < 0.003 && facts.lrRange[1] > 0.003,
      `a constant lr on its log axis: ${JSON.stringify(facts)}`);
    assert(facts.epochs === 10, `epoch lines ${facts.epochs}`);
    assert(facts.markers === 1, `finding markers ${facts.markers}`);
    assert(facts.axes.includes('step') && facts.axes.includes('loss'), `axis titles ${facts.axes}`);
    assert(facts.legendCase === 'none', `legend text-transform ${facts.legendCase}`);
    // Hovering a smoothed line shows the raw value beside it.
    const box = await page.$eval('[data-chart=loss] .u-over', (o) => { const r = o.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
    await page.mouse.move(box.x + box.w * 0.5, box.y + box.h * 0.5);
    const legend = await page.textContent('[data-chart=loss] .u-legend');
    assert(/\(raw [\d.]+\)/.test(legend), `hover legend: ${legend}`);
    // Zooming keeps the smoothing of the whole series: the same steps get the same values.
    const whole = await page.evaluate(() => { const s = document.querySelector('[data-chart=loss]').chart.series.find((x) => x.label.endsWith('smoothed')); return { x: s.x, y: s.y }; });
    await page.mouse.move(box.x + box.w * 0.5, box.y + box.h * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.w * 0.8, box.y + box.h * 0.5, { steps: 5 });
    await page.mouse.up();
    await until(() => page.evaluate(() => document.querySelector('[data-chart=loss] .chart-note').textContent.includes('zoomed')), 5000, 'the zoom');
    const zoomed = await page.evaluate(() => { const s = document.querySelector('[data-chart=loss]').chart.series.find((x) => x.label.endsWith('smoothed')); return { x: s.x, y: s.y }; });
    let worst = 0;
    zoomed.x.forEach((x, i) => { const j = whole.x.indexOf(x); if (j >= 0) worst = Math.max(worst, Math.abs(zoomed.y[i] - whole.y[j]) / Math.abs(whole.y[j])); });
    assert(zoomed.x.length > 10 && zoomed.x[0] > whole.x[0] && worst < 1e-9, `zoomed smoothing differs by ${worst} (${zoomed.x.length} points from step ${zoomed.x[0]})`);
    await page.screenshot({ path: join(out, 'honest-charts.png'), fullPage: true });
    await page.dblclick('[data-chart=loss] .u-over');
  });

  await check('the gradient noise scale has a chart of its own', async () => {
    await page.goto(base + '#/run/cmp-a');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=noise_scale]')?.dataset.points || 0) > 0), 10000, 'the noise scale chart');
    const text = await page.evaluate(() => document.querySelector('[data-chart=noise_scale]').textContent);
    assert(text.includes('Gradient noise scale (critical batch size)'), text.slice(0, 200));
    const other = await page.evaluate(() => [...document.querySelectorAll('.tag-select option')].map((o) => o.textContent).join(' '));
    assert(!other.includes('train/noise_scale'), 'noise_scale is charted, not listed among the other metrics');
  });

  await check('two runs compared', async () => {
    await page.goto(base + '#/');
    await page.waitForSelector('tr[data-run="cmp-a"] input');
    await page.check('tr[data-run="cmp-a"] input');
    await page.check('tr[data-run="cmp-b"] input');
    await page.click('text=Compare selected');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=loss]')?.dataset.points || 0) > 0), 10000, 'the compare chart');
    const legend = await page.$$eval('[data-chart=loss] .u-legend .u-series', (s) => s.filter((x) => x.style.display !== 'none').map((x) => x.textContent));
    assert(legend.some((l) => l.includes('cmp-a')) && legend.some((l) => l.includes('cmp-b')), `legend: ${legend}`);
    const diff = await page.$$eval('[data-section="settings that differ"] td.key', (t) => t.map((x) => x.textContent));
    assert(diff.includes('train.lr'), `diff: ${diff}`);
    assert(!(await page.$('[data-warning="data"]')), 'the same data: no warning that the validation sets differ');
    await page.screenshot({ path: join(out, 'compare.png'), fullPage: true });
    // Runs on other examples: the comparison says which setting makes their splits differ.
    await page.goto(base + '#/compare/sw-001,sw-002');
    const warning = await (await page.waitForSelector('[data-warning="data"]')).textContent();
    assert(warning.includes('validation and test sets differ') && warning.includes('data.limit: 0 vs 5000'), `warning: ${warning}`);
  });

  await check('a finished run: findings, test results, config, checkpoints, CSV', async () => {
    await page.goto(base + '#/run/cmp-a');
    await page.waitForSelector('.finding');
    await page.waitForSelector('table.confusion');
    // A remedy's proposed settings show as config keys, not as the {key=value} the store keeps.
    const settings = await page.$$eval('.finding .remedy code.setting', (c) => c.map((x) => x.textContent));
    assert(settings.join('|') === 'model.dropout = 0.3|train.weight_decay = 0.0001', `remedy settings ${settings}`);
    const remedy = await page.textContent('.finding .remedy');
    assert(!remedy.includes('{'), `remedy text ${remedy}`);
    await until(() => page.evaluate(() => document.querySelectorAll('.heat canvas').length > 0), 10000, 'the heatmap');
    const per = await page.$$eval('table.per-class td:first-child', (t) => t.map((x) => x.textContent));
    assert(per.includes('<b>bird</b>'), `per-class ${per}`);
    const resumed = await page.textContent('[data-fact=resumed]');
    assert(/^2 times; last from last\.ckpt \(epoch 5, step 437\) on \d{4}-\d\d-\d\d \d\d:\d\d$/.test(resumed), `resumed: ${resumed}`);
    const download = await Promise.all([page.waitForEvent('download'), page.click('[data-chart=loss] a.csv >> nth=0')]);
    const path = await download[0].path();
    const csv = (await import('node:fs')).readFileSync(path, 'utf8');
    assert(csv.startsWith('step,epoch,value,wall_time\n') && csv.trim().split('\n').length === 1001, `csv lines ${csv.split('\n').length}`);
    // Smoothing and the log axis redraw without errors.
    await page.check('input[aria-label="log scale"]');
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(out, 'finished-run.png'), fullPage: true });
    await page.uncheck('input[aria-label="log scale"]');
  });

  await check('test results as the task has them: IoU per class for segmentation, a row per label for multilabel', async () => {
    // Hash navigation keeps the last page until the next renders: wait for this run's own table.
    await page.goto(base + '#/run/seg');
    await until(() => page.$$eval('table.per-class td', (t) => t.some((td) => td.textContent === 'square')), 10000, 'the segmentation table');
    const heads = await page.$$eval('table.per-class th', (t) => t.map((x) => x.textContent));
    assert(heads.join('|') === 'class|precision|recall|F1|support (pixels)|IoU', `segmentation heads ${heads}`);
    const iou = await page.$$eval('table.per-class tbody tr', (rows) => rows.map((r) => r.lastElementChild.textContent));
    assert(iou.join('|') === '96.23%|71.57%|4.08%|–', `IoU cells ${iou}`);
    const titles = await page.$$eval('.test-results h3', (t) => t.map((x) => x.textContent));
    assert(titles.includes('Confusion matrix (pixels)') && titles.includes('Per class'), `titles ${titles}`);
    const stats = await page.$$eval('.test-results .stat', (s) => s.map((x) => x.textContent));
    assert(stats.includes('miou57.29%'), `stats ${stats}`);
    await page.screenshot({ path: join(out, 'segmentation-test.png'), fullPage: true });
    await page.goto(base + '#/run/tags');
    await until(() => page.$$eval('table.per-class td', (t) => t.some((td) => td.textContent === 'outdoor')), 10000, 'the multilabel table');
    const labelHeads = await page.$$eval('table.per-class th', (t) => t.map((x) => x.textContent));
    assert(labelHeads.join('|') === 'label|precision|recall|F1|support', `multilabel heads ${labelHeads}`);
    const labelTitles = await page.$$eval('.test-results h3', (t) => t.map((x) => x.textContent));
    assert(labelTitles.join('|') === 'Per label', `multilabel titles ${labelTitles}`);
    assert(!(await page.$('table.confusion')), 'no confusion matrix for multilabel');
    const labelStats = await page.$$eval('.test-results .stat', (s) => s.map((x) => x.textContent));
    assert(labelStats.includes('exact_match93.30%'), `stats ${labelStats}`);
  });

  await check('a data check run: copies side by side, label suspects with their images, nothing injected', async () => {
    await page.goto(base + '#/run/dc');
    await page.waitForSelector('.data-check .pair');
    const view = await page.evaluate(() => ({
      sections: [...document.querySelectorAll('section.card')].map((s) => s.dataset.section),
      pairs: [...document.querySelectorAll('.pair')].map((p) => [p.dataset.kind, p.querySelector('.pair-where').textContent, p.querySelectorAll('img').length, p.classList.contains('relabeled')]),
      relabeled: document.querySelector('.pair.relabeled .pair-labels')?.textContent,
      copiesHeading: document.querySelector('[data-copies] h3')?.textContent,
      train: [...document.querySelectorAll('[data-suspects=train] figure')].map((f) => [f.querySelectorAll('img').length, f.querySelector('.suspect-given').textContent, f.querySelector('.mistake-pred').textContent]),
      trainHeading: document.querySelector('[data-suspects=train] h3')?.textContent,
      where: document.querySelector('[data-suspects=train] figure .muted')?.textContent,
      test: document.querySelectorAll('[data-suspects=test] figure').length,
      counts: [...document.querySelectorAll('table.class-counts tbody td:first-child')].map((t) => t.textContent),
      bold: document.querySelectorAll('.data-check b').length,
      oof: document.querySelector('[data-stat=oof] .stat-value')?.textContent,
    }));
    await page.screenshot({ path: join(out, 'data-check.png'), fullPage: true });
    assert(!view.sections.includes('charts') && !view.sections.includes('test results') && view.sections.includes('data checks'), `sections ${view.sections}`);
    assert(JSON.stringify(view.pairs) === JSON.stringify([['exact', 'train #12 · test #7', 2, false], ['near', 'train #30 · test #9', 2, true]]), `pairs ${JSON.stringify(view.pairs)}`);
    assert(view.relabeled === 'labels differ: dog vs <b>bird</b>', `relabeled ${view.relabeled}`);
    assert(view.copiesHeading === 'Copies across splits (the first 2 of 41; the report lists all)', `heading ${view.copiesHeading}`);
    // The second suspect's "png" is not base64: no image for it.
    assert(JSON.stringify(view.train) === JSON.stringify([[1, 'given: cat', 'looks like: dog (97.00%)'], [0, 'given: dog', 'looks like: <b>bird</b> (80.00%)']]), `train ${JSON.stringify(view.train)}`);
    assert(view.trainHeading === 'Label suspects in train: the 2 most suspect of 57', `heading ${view.trainHeading}`);
    assert(view.where === '#3 · file row 103', `where ${view.where}`);
    assert(view.test === 1 && view.bold === 0 && view.oof === '84.00%', JSON.stringify(view));
    assert(JSON.stringify(view.counts) === JSON.stringify(['cat', 'dog', '<b>bird</b>']), `counts ${view.counts}`);
    assert(dialogs.length === 0, `dialogs opened: ${dialogs}`);
  });

  await check('a static report opens offline', async () => {
    const file = join(out, 'report.html');
    execFileSync(cli, ['report', join(runs, 'cmp-a'), '--out', file]);
    const offline = await browser.newContext({ viewport: { width: 1400, height: 1000 }, offline: true });
    const p = await offline.newPage();
    const errors = [];
    p.on('pageerror', (e) => errors.push(e.message));
    p.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) errors.push('request ' + r.url()); });
    await p.goto(pathToFileURL(file).href);
    await p.waitForFunction(() => document.body.dataset.ready === 'report', null, { timeout: 5000 });
    const points = await p.evaluate(() => Number(document.querySelector('[data-chart=loss]')?.dataset.points || 0));
    await p.screenshot({ path: join(out, 'report.png'), fullPage: true });
    assert(points > 0, 'report chart is empty');
    assert(errors.length === 0, `errors: ${errors}`);
    assert(await p.$('.finding'), 'no findings in the report');
    await offline.close();
  });

  assert(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
} catch (e) {
  failures++;
  log(`FAIL setup: ${e.stack || e}`);
} finally {
  if (browser) await browser.close();
  // SIGTERM stops a training run after its current batch, which it checkpoints first: wait for
  // every child to exit before removing what they write into.
  const exited = children.filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); }));
  await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 15000))]);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passes} passed, ${failures} failed`);
console.log(`screenshots: ${out}`);
process.exit(failures ? 1 : 0);
