// How long the dashboard takes to show, in headless Chromium, the runs table of every run and a
// comparison of ten: from the start of a fresh page load until the table holds all its rows (and
// its parallel coordinates are drawn), and until every chart of the comparison has drawn its data.
// node bench/dashboard_render.mjs --url http://127.0.0.1:PORT/ [--reps 5] [--compare 10]
// (bench/run_dashboard_render_bench.sh generates the runs and starts the dashboard.)
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../web/package.json'));
const { chromium } = require('playwright-core');

const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : fallback; };
const url = arg('--url');
const reps = Number(arg('--reps', 5));
const compareCount = Number(arg('--compare', 10));
if (!url) { console.error('usage: node bench/dashboard_render.mjs --url http://127.0.0.1:PORT/ [--reps 5] [--compare 10]'); process.exit(2); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// One viewport for all: the charts' and the table's layout depend on it.
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await context.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));

// Milliseconds from the start of a fresh load of `hash` (the page's navigation start) until
// the view is rendered, checked every frame in the page. (The page's CSP forbids eval, so the
// check is a function evaluated over the DevTools protocol, not a waitForFunction string.)
async function timeLoad(hash, view, count) {
  await page.goto('about:blank');
  await page.goto(url + hash);
  return page.evaluate(([hash, view, count]) => new Promise((resolve, reject) => {
    // The table: the router has finished the page, every run has its row, and the parallel
    // coordinates (when shown) have drawn. The comparison: the router has finished the page and
    // every line chart has been given its data (data-points is set when a chart draws).
    const done = () => {
      if (document.body.dataset.ready !== hash) return false;
      if (view === 'table') {
        if (document.querySelectorAll('table.runs tbody tr[data-run]').length < count) return false;
        const card = document.querySelector('[data-section="parallel coordinates"]');
        return !card || card.hidden || Boolean(card.querySelector('svg.pc, .pc-root > p'));
      }
      const charts = [...document.querySelectorAll('.chart[data-chart]:not(.heat)')];
      return charts.length > 0 && charts.every((c) => c.dataset.points !== undefined);
    };
    const giveUp = performance.now() + 60000;
    const tick = () => {
      if (done()) resolve(Math.round(performance.now()));
      else if (performance.now() > giveUp) reject(new Error(`${view} not rendered after 60 s`));
      else requestAnimationFrame(tick);
    };
    tick();
  }), [hash, view, count]);
}

const stats = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median, max: s[s.length - 1], min: s[0] };
};

const runs = (await (await fetch(url + 'api/runs')).json()).runs.map((r) => r.name).sort();
const compared = runs.slice(0, compareCount);
const compareHash = `#/compare/${compared.map(encodeURIComponent).join(',')}`;
const points = async () => page.evaluate(() => [...document.querySelectorAll('.chart[data-chart]')].reduce((n, c) => n + Number(c.dataset.points || 0), 0));

// The first load of each is reported apart: it opens every run's store on the server.
const cold = { table: await timeLoad('#/', 'table', runs.length), compare: await timeLoad(compareHash, 'compare') };
const drawn = await points();
const charts = await page.evaluate(() => document.querySelectorAll('.chart[data-chart]:not(.heat)').length);
const table = [], compare = [];
for (let i = 0; i < reps; i++) {
  table.push(await timeLoad('#/', 'table', runs.length));
  compare.push(await timeLoad(compareHash, 'compare'));
}
await browser.close();

const t = stats(table), c = stats(compare);
console.log(`${runs.length} runs; the comparison: ${compared.length} runs, ${charts} charts, ${drawn.toLocaleString('en-US')} points drawn`);
console.log('');
console.log(`| view | first load (ms) | median of ${reps} (ms) | max (ms) |`);
console.log('|---|---|---|---|');
console.log(`| runs table, ${runs.length} runs | ${cold.table} | ${t.median} | ${t.max} |`);
console.log(`| comparison of ${compared.length} runs | ${cold.compare} | ${c.median} | ${c.max} |`);
if (errors.length) {
  console.log(`\npage errors: ${errors.join('; ')}`);
  process.exit(1);
}
