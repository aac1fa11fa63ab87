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

  // ---- runs table: sort, filter, columns, groups, tags, export ----
  {
    const TABLE_STATE = 'trainscope.runsTable';
    const shownRuns = () => page.$$eval('table.runs tbody tr[data-run]', (rows) => rows.map((r) => r.dataset.run));
    const apiRuns = async () => (await page.evaluate(async () => (await fetch('api/runs')).json())).runs;
    // A fresh table (default columns, no filter, no sort), grouped by nothing or as given.
    const freshTable = async (group = 'none') => {
      await page.goto(base + '#/');
      await page.evaluate((key) => localStorage.removeItem(key), TABLE_STATE);
      await page.reload();
      await page.waitForSelector('table.runs tbody tr[data-run]');
      await page.selectOption('select.group-select', group);
    };
    const filter = async (text) => {
      await page.fill('input.runs-filter', text);
      await until(() => page.evaluate((t) => JSON.parse(localStorage.getItem('trainscope.runsTable') || '{}').filter === t, text), 2000, `the filter "${text}"`);
    };

    await check('runs table: a click on a header sorts by it, ascending then descending, with an arrow', async () => {
      await freshTable();
      const th = 'th[data-col="final:val/accuracy"]';
      const values = async () => {
        const byName = new Map((await apiRuns()).map((r) => [r.name, r.final?.['val/accuracy'] ?? null]));
        return (await shownRuns()).map((n) => byName.get(n)).filter((v) => v !== null);
      };
      await page.click(`${th} button`);
      const up = await values();
      assert(up.length >= 8 && up.every((v, i) => i === 0 || up[i - 1] <= v), `ascending: ${up}`);
      assert(await page.getAttribute(th, 'aria-sort') === 'ascending' && await page.textContent(`${th} .sort-arrow`) === '▲', 'the ascending arrow');
      await page.click(`${th} button`);
      const down = await values();
      assert(JSON.stringify(down) === JSON.stringify([...up].reverse()), `descending: ${down}`);
      assert(await page.textContent(`${th} .sort-arrow`) === '▼', 'the descending arrow');
      // Runs without the value stay last whichever the direction.
      const last = (await shownRuns()).slice(-1)[0];
      assert(!(await apiRuns()).find((r) => r.name === last).final?.['val/accuracy'], `last row ${last}`);
      await page.screenshot({ path: join(out, 'runs-sorted.png'), fullPage: true });
    });

    await check('runs table: filter by text, by key>number, and a filter it cannot parse says why', async () => {
      await freshTable();
      await filter('grp');
      const grp = await shownRuns();
      assert(grp.length === 6 && grp.every((n) => n.startsWith('grp-')), `text: ${grp}`);
      await filter('grp train.lr>0.002');
      const fast = await shownRuns();
      assert(fast.length === 3 && fast.every((n) => n.startsWith('grp-lr0.003')), `grp train.lr>0.002: ${fast}`);
      await filter('val/accuracy>0.9 train.lr<0.01');
      const good = await apiRuns();
      const expected = good.filter((r) => r.final?.['val/accuracy'] > 0.9 && Number(r.settings?.['train.lr']) < 0.01).map((r) => r.name).sort();
      assert(JSON.stringify((await shownRuns()).sort()) === JSON.stringify(expected) && expected.length > 0, `metric filter: ${await shownRuns()} vs ${expected}`);
      await filter('grp trian.lr>1');
      const error = await page.textContent('.filter-error');
      assert(error.includes('trian.lr') && error.includes('did you mean train.lr'), `error: ${error}`);
      assert((await shownRuns()).length === 6, 'the words it could parse still apply');
      await page.screenshot({ path: join(out, 'runs-filter-error.png') });
      await filter('');
    });

    await check('runs table: the column chooser adds a setting column, and it stays after a reload', async () => {
      await freshTable();
      assert(!(await page.$('th[data-col="setting:train.batch_size"]')), 'train.batch_size is not a default column');
      await page.click('[data-action=columns]');
      await page.fill('.column-chooser input[type=search]', 'batch');
      await page.check('.column-chooser input[data-col="setting:train.batch_size"]');
      await page.waitForSelector('th[data-col="setting:train.batch_size"]');
      await page.screenshot({ path: join(out, 'runs-columns.png') });
      await page.keyboard.press('Escape');
      await page.reload();
      await page.waitForSelector('th[data-col="setting:train.batch_size"]');
      const index = await page.$$eval('table.runs thead th', (t) => t.findIndex((x) => x.dataset.col === 'setting:train.batch_size'));
      const cell = await page.$eval(`tr[data-run="cmp-a"] td:nth-child(${index + 1})`, (td) => [td.textContent, td.className]);
      assert(cell[0] === '128' && cell[1].includes('num'), `cmp-a's batch size cell: ${cell}`);
    });

    await check('runs table: grouped by a setting, each group shows n and the mean ± std of its seeds', async () => {
      await freshTable('sweep');
      await filter('grp');
      await page.selectOption('select.group-select', 'setting:train.lr');
      const groups = await page.$$eval('tr.setting-group', (rows) => rows.map((r) => {
        const at = [...r.parentElement.children].indexOf(r);
        const col = [...document.querySelectorAll('table.runs thead th')].findIndex((t) => t.dataset.col === 'final:val/accuracy');
        const stat = r.children[col];
        return { value: r.dataset.group, n: Number(r.dataset.n), mean: Number(stat.dataset.mean), std: Number(stat.dataset.std), text: stat.textContent,
          link: r.querySelector('a.group-compare')?.getAttribute('href'), runs: [...r.parentElement.children].slice(at + 1, at + 4).map((x) => x.dataset.run) };
      }));
      assert(groups.length === 2 && groups.every((g) => g.n === 3), `groups: ${JSON.stringify(groups)}`);
      const finals = new Map((await apiRuns()).map((r) => [r.name, r.final?.['val/accuracy']]));
      for (const g of groups) {
        const v = g.runs.map((n) => finals.get(n));
        const mean = v.reduce((a, b) => a + b, 0) / 3;
        const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / 2);
        assert(g.runs.every((n) => n.startsWith(`grp-lr${g.value}-`)), `group ${g.value} holds ${g.runs}`);
        assert(Math.abs(g.mean - mean) < 1e-12 && Math.abs(g.std - std) < 1e-12 && std > 0 && g.text.includes('±'), `group ${g.value}: ${JSON.stringify(g)} vs ${mean} ± ${std}`);
        assert(g.link === `#/compare/${g.runs.join(',')}?group=train.lr`, `compare link ${g.link}`);
      }
      assert(!(await page.$('[data-action=compare-groups][hidden]')), 'the compare groups button shows');
      await page.screenshot({ path: join(out, 'runs-grouped.png'), fullPage: true });
    });

    await check('runs table: a tag saved through the editor survives a reload, and its chip filters the table', async () => {
      await freshTable();
      await page.hover('tr[data-run="grp-lr0.001-s0"]');
      await page.click('tr[data-run="grp-lr0.001-s0"] .edit-annotations');
      await page.fill('dialog[open] .tag-input', 'e2e-kept');
      await page.keyboard.press('Enter');
      await page.fill('dialog[open] .note-input', 'saved by the <b>browser test</b>');
      await page.click('dialog[open] button[type=submit]');
      await page.waitForSelector('dialog', { state: 'detached' });
      await page.reload();
      await page.waitForSelector('tr[data-run="grp-lr0.001-s0"] .chip[data-tag="e2e-kept"]');
      const note = await page.textContent('tr[data-run="grp-lr0.001-s0"] .row-note');
      assert(note === 'saved by the <b>browser test</b>', `note ${note}`);
      await page.click('tr[data-run="grp-lr0.001-s0"] .chip[data-tag="e2e-kept"]');
      await until(async () => JSON.stringify(await shownRuns()) === '["grp-lr0.001-s0"]', 2000, 'the chip to filter the table');
      assert(await page.inputValue('input.runs-filter') === 'tag=e2e-kept', 'the chip wrote tag=e2e-kept');
      await page.screenshot({ path: join(out, 'runs-tags.png') });
      // The run page edits the same: its editor shows the tag, and a removal there is stored.
      await page.goto(base + '#/run/grp-lr0.001-s0');
      await page.waitForSelector('[data-section="tags and notes"] .chip[data-tag="e2e-kept"]');
      await page.screenshot({ path: join(out, 'run-tags.png') });
      await page.click('[data-section="tags and notes"] button[aria-label="remove tag e2e-kept"]');
      await page.click('[data-section="tags and notes"] button[type=submit]');
      await until(async () => (await page.textContent('[data-section="tags and notes"] .save-message')) === 'saved', 3000, 'the save');
      const stored = (await apiRuns()).find((r) => r.name === 'grp-lr0.001-s0').annotations;
      assert(stored.tags.length === 0 && stored.note === 'saved by the <b>browser test</b>', `stored ${JSON.stringify(stored)}`);
    });

    await check('runs table: CSV export holds exactly the rows and columns shown, in order', async () => {
      await freshTable();
      await filter('grp train.lr<0.002');
      await page.click('th[data-col="final:val/accuracy"] button');
      const heads = await page.$$eval('table.runs thead th[data-col]', (t) => t.map((x) => x.dataset.col));
      const rows = await shownRuns();
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-export=csv]')]);
      const csv = (await import('node:fs')).readFileSync(await download.path(), 'utf8');
      const lines = csv.trimEnd().split('\r\n');
      assert(download.suggestedFilename() === 'trainscope-runs.csv', download.suggestedFilename());
      assert(lines.length === rows.length + 1 && lines[0].split(',').length === heads.length, `csv ${JSON.stringify(csv)} for ${rows} x ${heads}`);
      assert(lines[0].startsWith('run,status,best val,') && lines[0].includes('val/accuracy'), `header ${lines[0]}`);
      assert(JSON.stringify(lines.slice(1).map((l) => l.split(',')[0])) === JSON.stringify(rows), `rows ${lines.slice(1)} vs ${rows}`);
      const acc = heads.indexOf('final:val/accuracy');
      const finals = new Map((await apiRuns()).map((r) => [r.name, r.final['val/accuracy']]));
      assert(lines.slice(1).every((l, i) => Number(l.split(',')[acc]) === finals.get(rows[i])), 'full-precision values');
    });

    await check('runs table: brushing a parallel-coordinates axis narrows the table, and a click clears it', async () => {
      await freshTable();
      await filter('grp');
      await page.waitForSelector('.pc-axis[data-axis="final:val/accuracy"]');
      const area = await page.$eval('.pc-axis[data-axis="final:val/accuracy"] .pc-brush-area', (a) => { const r = a.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y, h: r.height }; });
      // The top third of the axis: the lr=0.003 seeds, whose accuracy is highest.
      await page.mouse.move(area.x, area.y + 2);
      await page.mouse.down();
      await page.mouse.move(area.x, area.y + area.h / 3, { steps: 6 });
      await page.mouse.up();
      await until(async () => (await shownRuns()).length < 6, 2000, 'the brush to narrow the table');
      const kept = await shownRuns();
      assert(kept.length > 0 && kept.every((n) => n.startsWith('grp-lr0.003')), `brushed: ${kept}`);
      assert((await page.textContent('.runs-count')).includes('outside the brush on val/accuracy'), 'the count names the brush');
      await page.screenshot({ path: join(out, 'runs-brush.png') });
      await page.mouse.click(area.x, area.y + area.h * 0.9);
      await until(async () => (await shownRuns()).length === 6, 2000, 'the click to clear the brush');
    });

    // The checks after these find the table as a first visit shows it.
    await page.evaluate((key) => localStorage.removeItem(key), TABLE_STATE);
    await page.reload();
  }

  await check('notifications: with the bell on a new error finding is announced once, not again after a reload, and not with the bell off', async () => {
    const run = 'sw-002';  // a finished run no later check looks at for its findings
    // Headless Chromium shows no notifications: a stand-in records each one. notify.js polls the
    // same api/runs as the runs table, so its own looks are counted apart, told by notify.js in
    // the caller's stack: `started` when one is sent, `answered` once the server has answered it.
    const stub = () => {
      window.notes = [];
      window.Notification = class {
        static permission = 'granted';
        static requestPermission() { return Promise.resolve('granted'); }
        constructor(title, options = {}) { Object.assign(this, { title, body: options.body, tag: options.tag }); window.notes.push(this); }
        close() {}
      };
      window.bellLooks = { started: 0, answered: 0 };
      const fetch = window.fetch.bind(window);
      window.fetch = (url, ...rest) => {
        const answer = fetch(url, ...rest);
        if (String(url).split('?')[0] === 'api/runs' && /\/notify\.js:/.test(new Error().stack)) {
          window.bellLooks.started++;
          answer.then(() => { window.bellLooks.answered++; }, () => {});
        }
        return answer;
      };
    };
    const contexts = [];
    const openRunsPage = async () => {
      const c = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      contexts.push(c);
      await c.addInitScript(stub);
      const p = await c.newPage();
      p.on('pageerror', (e) => pageErrors.push(e.message));
      await p.goto(base + '#/');
      await p.waitForSelector('table.runs tbody tr[data-run]');
      return p;
    };
    const notes = (p) => p.evaluate(() => window.notes.map(({ title, body, tag }) => ({ title, body, tag })));
    const looks = (p) => p.evaluate(() => window.bellLooks);
    const bell = async (p, state) => {
      await p.click('#notify button.bell');
      await p.waitForSelector(`#notify button.bell[data-notify="${state}"][aria-pressed="${state === 'on'}"]`);
    };
    try {
      // Two browsers, each with its own storage: one keeps the bell on, one turns it on and off.
      const on = await openRunsPage(), off = await openRunsPage();
      await bell(on, 'on');
      await bell(off, 'on');
      await bell(off, 'off');
      const offLooks = (await looks(off)).started, offSince = Date.now();
      // What a bell's first look sees is not news: add the finding only once both have had it.
      await until(async () => (await looks(on)).answered >= 1 && (await looks(off)).answered >= offLooks, 10000, 'the first looks');
      execFileSync(makeRuns, ['--add-finding', join(runs, run)]);
      const [note] = await until(async () => { const n = await notes(on); return n.length ? n : null; }, 12000, 'the announcement');
      assert((await notes(on)).length === 1, `announced: ${JSON.stringify(await notes(on))}`);
      assert(note.title === `${run}: error (exploding gradients)` && note.body === 'the global gradient norm grew 1000x in 20 steps',
        `the announcement: ${JSON.stringify(note)}`);
      const seen = await on.evaluate(() => JSON.parse(localStorage.getItem('trainscope.notified')));
      assert(seen.filter((k) => k === note.tag).length === 1 && note.tag.startsWith(`finding:${run}:`), `remembered ${JSON.stringify(seen)} for ${note.tag}`);
      // A click on it opens the run.
      await on.evaluate(() => window.notes[0].onclick());
      assert(await on.evaluate(() => location.hash) === `#/run/${run}`, 'the click opened the run');
      // After a reload the bell is still on; its first look and the one after stay quiet.
      await on.goto(base + '#/');
      await on.reload();
      await on.waitForSelector('#notify button.bell[data-notify="on"]');
      await until(async () => (await looks(on)).started >= 2, 12000, 'a second look after the reload');
      assert((await notes(on)).length === 0, `announced again: ${JSON.stringify(await notes(on))}`);
      // The bell turned off has not looked since, so it has announced nothing, over more than one poll.
      await until(() => Date.now() - offSince > 6000, 7000, 'a poll interval with the bell off');
      assert((await looks(off)).started === offLooks && (await notes(off)).length === 0,
        `the bell off looked ${JSON.stringify(await looks(off))} and announced ${JSON.stringify(await notes(off))}`);
    } finally {
      for (const c of contexts) await c.close();
    }
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
    await page.screenshot({ path: join(out, 'honest-charts.png'), fullPage: true, style: 'section[data-section="all scalars"], section[data-section="weights and gradients"] { display: none }' });
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

  await check('the sharpness along the step is charted against its edge', async () => {
    await page.goto(base + '#/run/cmp-a');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=sharpness]')?.dataset.points || 0) > 0), 10000, 'the sharpness chart');
    const labels = await page.evaluate(() => document.querySelector('[data-chart=sharpness]').chart.series.map((s) => s.label).join(' | '));
    assert(labels.includes('sharpness along the step') && labels.includes('2 / lr_eff (edge of stability)'), labels);
    await page.locator('[data-chart=sharpness]').screenshot({ path: join(out, 'sharpness.png') });
  });

  await check('a remedy verified by replay shows beside its finding, and a fork links its original', async () => {
    await page.goto(base + '#/run/cmp-a');
    await page.waitForSelector('.finding .verified li');
    const items = await page.$$eval('.finding .verified li', (li) => li.map((x) => x.textContent));
    assert(items.length === 2, `checks: ${JSON.stringify(items)}`);
    assert(items[0].startsWith('model.dropout = 0.3 no clear effect: val loss +0.001') && items[0].includes('10 epochs from the start'), items[0]);
    assert(items[1].startsWith('train.weight_decay = 0.0001 helped: val loss −0.05 ± 0.004, val accuracy +1.20 pts ± 0.30')
      && items[1].includes('(1 seed, 3 epochs from epoch 7 (checkpoints/epoch-0007.ckpt))'), items[1]);
    await page.locator('.finding:has(.verified)').screenshot({ path: join(out, 'verified-remedies.png') });
    await page.click('.finding .verified li:nth-child(2) a.compare-replays');
    await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=loss]')?.dataset.points || 0) > 0), 10000, 'the replays compared');
    assert(decodeURIComponent(await page.evaluate(() => location.hash)).startsWith('#/compare/sw-001,sw-002'), 'the replays compared');
    await page.goto(base + '#/run/sw-002');
    const forked = await (await page.waitForSelector('[data-fact=forked]')).textContent();
    assert(forked.startsWith('cmp-a at epoch-0007.ckpt (epoch 7, step 700)'), forked);
    assert(await page.$eval('[data-fact=forked] a', (a) => a.getAttribute('href')) === '#/run/cmp-a', 'links the original');
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
    await page.screenshot({ path: join(out, 'compare.png'), fullPage: true, style: 'section[data-section="all scalars"], section[data-section="weights and gradients"] { display: none }' });
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
    await page.screenshot({ path: join(out, 'finished-run.png'), fullPage: true, style: 'section[data-section="all scalars"], section[data-section="weights and gradients"] { display: none }' });
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

  // ---- charts: x-axis, small multiples, histograms, groups ----
  {
    const chartOf = (id) => `document.querySelector('[data-chart="${id}"]').chart`;
    // Opens a page afresh (the router marks body[data-ready] once a page has loaded), so that no
    // check reads the page before it.
    const open = async (hash) => {
      await page.evaluate(() => { delete document.body.dataset.ready; });
      if ((await page.evaluate(() => location.hash)) === hash) await page.reload(); else await page.goto(base + hash);
      await until(() => page.evaluate((x) => document.body.dataset.ready === x, hash), 10000, `the page ${hash}`);
    };
    const openRun = async (name) => {
      await open(`#/run/${name}`);
      await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=accuracy]')?.dataset.points || 0) > 0), 10000, 'the accuracy chart');
    };
    // Switches the x-axis and waits until the charts have redrawn in the new units (the loss and
    // the accuracy chart both: they are rebuilt one after the other).
    const setAxis = async (mode, title) => {
      await page.selectOption('select[aria-label="x-axis"]', mode);
      await until(() => page.evaluate((t) => ['accuracy', 'loss'].every((id) => { const c = document.querySelector(`[data-chart=${id}]`).chart; return c.u && t.test(c.xTitle()) && c.xTicks().length > 1; }), title), 5000, `the ${mode} axis`);
    };
    const valPoint = (x) => page.evaluate((x0) => {
      const s = document.querySelector('[data-chart=accuracy]').chart.series.find((l) => l.label === 'val');
      const i = s.x.findIndex((v) => Math.abs(v - x0) < 1e-9);
      return i < 0 ? null : s.y[i];
    }, x);

    await check('x-axis: step, epoch, samples seen, wall and relative time, each with its title, ticks and the best epoch where it belongs', async () => {
      await openRun('cmp-a');
      const best = await page.evaluate(async () => { const s = await (await fetch('api/runs/cmp-a/series?split=val&tag=accuracy')).json(); return s.value[s.step.indexOf(700)]; });
      // cmp-a: 100 steps an epoch, batch size 128, a point a second from its start; best epoch 7 (step 700).
      const modes = [
        ['step', /^step$/, 700, /^[\d,]+$/],
        ['epoch', /^epoch$/, 7, /^\d+$/],
        ['samples', /^samples seen ≈ step × 128 \(derived\)$/, 700 * 128, /^\d+(\.\d+)?k$/],
        ['wall', /^wall time, local \(\d{4}-\d\d-\d\d\)$/, 1790000700, /^\d\d:\d\d(:\d\d)?$/],
        ['relative', /^time since the run started$/, 700, /^(\d+m)?(\d+s)?$/],
      ];
      for (const [mode, title, x, tick] of modes) {
        await setAxis(mode, title);
        const ticks = await page.evaluate(() => document.querySelector('[data-chart=loss]').chart.xTicks().filter(Boolean));
        assert(ticks.length > 2 && ticks.every((t) => tick.test(t)), `${mode} ticks: ${ticks}`);
        assert((await valPoint(x)) === best, `${mode}: val accuracy at x = ${x} is ${await valPoint(x)}, the store has ${best} at the best epoch`);
        if (mode === 'epoch') {
          // Hovering the best epoch's point shows x = 7 and the raw value.
          const at = await page.evaluate(() => { const u = document.querySelector('[data-chart=accuracy]').chart.u; const r = u.over.getBoundingClientRect(); return { x: r.x + u.valToPos(7, 'x'), y: r.y + r.height / 2 }; });
          await page.mouse.move(at.x, at.y);
          const legend = await page.$$eval('[data-chart=accuracy] .u-legend .u-series', (s) => s.map((x) => x.textContent));
          assert(legend[0].replace(/\s/g, '') === 'epoch7', `hovered x: ${legend[0]}`);
          assert(legend.some((l) => l.includes(String(Number(best.toPrecision(4))))), `hovered values: ${legend}`);
          await page.screenshot({ path: join(out, 'x-axis-epoch.png') });
        }
      }
      // The choice is remembered: a reload keeps it.
      await setAxis('epoch', /^epoch$/);
      await page.reload();
      await until(() => page.evaluate(() => document.querySelector('[data-chart=accuracy]')?.chart?.xTitle() === 'epoch'), 10000, 'the remembered epoch axis');
      assert(await page.$eval('select[aria-label="x-axis"]', (s) => s.value) === 'epoch', 'the x-axis select after a reload');
    });

    await check('a zoom on one chart zooms every chart, the cursor follows across them, a double-click resets all', async () => {
      await openRun('cmp-a');
      await setAxis('epoch', /^epoch$/);
      const ranges = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.chart')].filter((c) => c.chart?.u)
        .map((c) => [c.dataset.chart, [c.chart.u.scales.x.min, c.chart.u.scales.x.max]])));
      const before = await ranges();
      const overBox = () => page.$eval('[data-chart=accuracy] .u-over', (o) => { const r = o.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
      // The hover cursor is shared: the loss chart's follows the accuracy chart's. The charts
      // are rebuilt after the axis change, so each try reads the box again and hovers anew (a
      // move over a chart that was replaced meanwhile reaches no chart).
      const cursors = () => page.evaluate(() => { const c = (id) => document.querySelector(`[data-chart=${id}]`).chart.u; return [c('accuracy').posToVal(c('accuracy').cursor.left, 'x'), c('loss').posToVal(c('loss').cursor.left, 'x')]; });
      let box, last, tries = 0;
      const cursor = await until(async () => {
        box = await overBox();
        await page.mouse.move(box.x + box.w * (0.3 + 0.001 * (tries++ % 2)), box.y + box.h / 2);
        last = await cursors();
        return Math.abs(last[0] - last[1]) < 0.05 && last[0] > 1 ? last : null;
      }, 5000, 'the loss chart\'s cursor to follow the accuracy chart\'s').catch(() => last);
      assert(Math.abs(cursor[0] - cursor[1]) < 0.05, `cursors at ${cursor}`);
      // A drag over a chart that a late redraw replaced zooms nothing: each try reads the box
      // again and drags anew.
      const followed = async () => { const r = await ranges(); return r.loss[0] > before.loss[0] + 1 && r.lr[0] === r.accuracy[0]; };
      let synced = false;
      for (let attempt = 0; attempt < 3 && !synced; attempt++) {
        if (attempt > 0) { box = await overBox(); await page.mouse.move(box.x + box.w * 0.3, box.y + box.h / 2); }
        await page.mouse.down();
        await page.mouse.move(box.x + box.w * 0.7, box.y + box.h / 2, { steps: 5 });
        await page.mouse.up();
        synced = await until(followed, 3000, 'the other charts to follow the zoom').then(() => true, () => false);
      }
      assert(synced, `the other charts did not follow the zoom: ${JSON.stringify(await ranges())}`);
      const zoomed = await ranges();
      for (const [id, [min, max]] of Object.entries(zoomed))
        if (!id.startsWith('dist:')) assert(min === zoomed.accuracy[0] && max === zoomed.accuracy[1], `${id} shows ${min}–${max}, accuracy ${zoomed.accuracy}`);
      await until(() => page.evaluate(() => document.querySelector('[data-chart=lr] .chart-note').textContent.includes('zoomed')), 5000, 'the lr chart reloaded in the zoomed range');
      await page.screenshot({ path: join(out, 'zoom-synced.png') });
      await page.dblclick('[data-chart=loss] .u-over');
      await until(async () => { const r = await ranges(); return r.accuracy[0] <= before.accuracy[0] && r.loss[0] <= before.loss[0]; }, 5000, 'every chart back to the whole run');
    });

    await check('every scalar in small multiples: groups by prefix, a filter, loaded when in view, single values as numbers', async () => {
      await openRun('cmp-a');
      await setAxis('step', /^step$/);
      const scalars = 'section[data-section="all scalars"]';
      const groups = await page.$$eval(`${scalars} details.scalar-group`, (d) => d.map((x) => x.dataset.group));
      assert(JSON.stringify(groups) === JSON.stringify(['train', 'train/grad_norm/*', 'train/sharpness/*', 'val', 'test', 'system']), `groups ${groups}`);
      // Nothing below the fold is loaded yet.
      assert(await page.$$eval(`${scalars} .scalar-panel .chart:not(.pending)`, (c) => c.length) === 0, 'small multiples loaded before they were in view');
      const stat = await page.$eval(`${scalars} .scalar-stat[data-scalar="test/accuracy"]`, (s) => s.textContent);
      assert(stat === 'test/accuracy0.88', `test/accuracy: ${stat}`);
      assert(!(await page.$(`${scalars} .scalar-panel[data-scalar^="test/"]`)), 'a single value was charted');
      await page.$eval(`${scalars} [data-scalar="system/rss_mib"]`, (p) => p.scrollIntoView());
      await until(() => page.evaluate(() => Number(document.querySelector('[data-scalar="system/rss_mib"] .chart')?.dataset.points || 0) === 20), 5000, 'system/rss_mib to load in view');
      const loaded = await page.$$eval(`${scalars} .scalar-panel`, (p) => [p.filter((x) => x.querySelector('.chart:not(.pending)')).length, p.length]);
      assert(loaded[0] < loaded[1], `loaded ${loaded[0]} of ${loaded[1]}: not only those in view`);
      await page.fill('input[aria-label="filter scalars"]', 'GRAD_NORM/');
      const shown = await page.$$eval(`${scalars} [data-scalar]`, (p) => p.filter((x) => x.offsetParent !== null).map((x) => x.dataset.scalar));
      assert(JSON.stringify(shown) === JSON.stringify(['train/grad_norm/0.weight', 'train/grad_norm/1.weight', 'train/grad_norm/2.weight', 'train/grad_norm/3.weight']), `filtered: ${shown}`);
      assert(await page.textContent('[data-scalar-count]') === '4 of 19 series match', await page.textContent('[data-scalar-count]'));
      await until(() => page.evaluate(() => Number(document.querySelector('[data-scalar="train/grad_norm/3.weight"] .chart')?.dataset.points || 0) > 0), 5000, 'a filtered chart to load');
      await (await page.$(scalars)).screenshot({ path: join(out, 'all-scalars-filtered.png'), style: '.topbar { position: static }' });
      await page.fill('input[aria-label="filter scalars"]', '');
      await page.$eval(scalars, (s) => s.scrollIntoView());
      await page.waitForTimeout(400);
      await (await page.$(scalars)).screenshot({ path: join(out, 'all-scalars.png'), style: '.topbar { position: static }' });
    });

    await check('weights and gradients: distributions and histograms from the event file, an empty state without one', async () => {
      await openRun('cmp-a');
      const section = 'section[data-section="weights and gradients"]';
      await page.waitForSelector(`${section} [data-histogram]`);
      const tags = await page.$$eval(`${section} [data-histogram]`, (p) => p.map((x) => x.dataset.histogram));
      assert(tags.length === 8 && tags[0] === 'weights/0.weight' && tags[1] === 'grads/0.weight', `histograms ${tags}`);
      await page.$eval(section, (s) => s.scrollIntoView());
      await until(() => page.evaluate(() => Number(document.querySelector('[data-histogram="weights/0.weight"] .chart')?.dataset.points || 0) === 10), 5000, 'the distribution of weights/0.weight');
      // Percentile bands nest: min <= 7% <= ... <= max at every epoch end, weights spreading out.
      const dist = await page.evaluate(() => {
        const d = document.querySelector('[data-histogram="weights/0.weight"] .chart').chart;
        const edges = d.series.slice(0, 8).map((s) => s.y);
        const order = [1, 3, 5, 7, 6, 4, 2, 0];  // min, 7%, 16%, 31%, 69%, 84%, 93%, max
        return { nested: edges[0].every((_, i) => order.every((k, j) => j === 0 || edges[order[j - 1]][i] <= edges[k][i])), bands: d.u.bands.length,
          spread: [edges[2][0] - edges[3][0], edges[2][9] - edges[3][9]] };
      });
      assert(dist.nested && dist.bands === 4 && dist.spread[1] > dist.spread[0], `distribution ${JSON.stringify(dist)}`);
      await page.selectOption('select[aria-label="histogram kind"]', 'grads');
      const visible = await page.$$eval(`${section} [data-histogram]`, (p) => p.filter((x) => x.offsetParent !== null).map((x) => x.dataset.histogram));
      assert(visible.length === 4 && visible.every((t) => t.startsWith('grads/')), `grads only: ${visible}`);
      await (await page.$(section)).screenshot({ path: join(out, 'distributions.png'), style: '.topbar { position: static }' });
      await page.click(`${section} button[data-view=histograms]`);
      const canvas = await page.waitForSelector('[data-histogram="grads/0.weight"] canvas.ridge-canvas');
      const cb = await canvas.boundingBox();
      await page.mouse.move(cb.x + cb.width * 0.4, cb.y + cb.height * 0.85);
      const tip = await page.textContent('[data-histogram="grads/0.weight"] .heat-tip');
      assert(/^epoch 10 · step 1,000 · 400 values in/.test(tip), `ridge tooltip: ${tip}`);
      await (await page.$(section)).screenshot({ path: join(out, 'histograms.png'), style: '.topbar { position: static }' });
      await open('#/run/cmp-b');
      const empty = await (await page.waitForSelector('[data-histograms=none]')).textContent();
      assert(empty.includes('no weight or gradient histograms') && empty.includes('each epoch end'), `empty state: ${empty}`);
    });

    await check('a grouped comparison: one colour per group, its mean and a ± std band, n in the legend', async () => {
      const names = ['grp-lr0.001-s0', 'grp-lr0.001-s1', 'grp-lr0.001-s2', 'grp-lr0.003-s0', 'grp-lr0.003-s1', 'grp-lr0.003-s2'];
      await open(`#/compare/${names.join(',')}?group=train.lr`);
      await until(() => page.evaluate(() => Number(document.querySelector('[data-chart=accuracy]')?.dataset.points || 0) > 0), 10000, 'the grouped accuracy chart');
      await setAxis('step', /^step$/);
      const view = await page.evaluate(() => {
        const acc = document.querySelector('[data-chart=accuracy]').chart, lr = document.querySelector('[data-chart=lr]').chart;
        const legend = (c) => [...c.u.root.querySelectorAll('.u-legend .u-series')].filter((x) => x.style.display !== 'none').map((x) => x.querySelector('.u-label').textContent);
        const mean = acc.series.find((s) => s.label === 'train.lr=0.001000 · val (n=3)');
        const hi = acc.series[acc.series.indexOf(mean) + 1], lo = acc.series[acc.series.indexOf(mean) + 2];
        return { lr: legend(lr), acc: legend(acc), bands: acc.u.bands.length, at700: mean && mean.y[mean.x.indexOf(700)],
          width: hi && Math.max(...hi.y.map((v, i) => v - lo.y[i])), group: document.querySelector('table.compare th:nth-child(3)').textContent,
          title: document.querySelector('.run-title h1').textContent };
      });
      assert(JSON.stringify(view.lr) === JSON.stringify(['step', 'train.lr=0.001000 (n=3)', 'train.lr=0.003000 (n=3)']), `lr legend ${view.lr}`);
      assert(view.acc.length === 5 && view.bands === 4, `accuracy legend ${view.acc}, ${view.bands} bands`);
      const seeds = await page.evaluate(async (ns) => Promise.all(ns.slice(0, 3).map(async (n) => { const s = await (await fetch(`api/runs/${n}/series?split=val&tag=accuracy`)).json(); return s.value[s.step.indexOf(700)]; })), names);
      const mean = seeds.reduce((a, b) => a + b, 0) / 3;
      assert(Math.abs(view.at700 - mean) < 1e-12 && view.width > 0, `group mean at step 700: ${view.at700}, seeds ${seeds}; band width ${view.width}`);
      assert(view.group === 'group: train.lr' && view.title === 'Comparing 6 runs in 2 groups by train.lr', `${view.group} / ${view.title}`);
      const stat = await page.$eval('[data-scalar="test/accuracy"]', (s) => s.textContent);
      assert(stat.includes('0.865 ± 0.005 (n=3)') && stat.includes('0.885 ± 0.005 (n=3)'), `grouped test/accuracy: ${stat}`);
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(out, 'grouped-compare.png') });
      // Without ?group the page stays one line per run.
      await open(`#/compare/${names[0]},${names[3]}`);
      await until(() => page.evaluate(() => document.querySelector('.run-title h1')?.textContent === 'Comparing 2 runs'
        && Number(document.querySelector('[data-chart=lr]')?.dataset.points || 0) > 0), 10000, 'the ungrouped comparison');
      const plain = await page.evaluate(() => ({ bands: document.querySelector('[data-chart=lr]').chart.u.bands.length,
        legend: [...document.querySelectorAll('[data-chart=lr] .u-legend .u-label')].map((x) => x.textContent) }));
      assert(plain.bands === 0 && plain.legend.includes('grp-lr0.001-s0 · lr'), `ungrouped: ${JSON.stringify(plain)}`);
    });
  }

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
