// The web console (console/, served at /console) in a real browser: Debian's
// chromium, headless, driven by puppeteer-core (no browser download). It
// clicks through what a person would: browse a model's pages, filter and
// sort, edit a record, an increment, a guard that refuses, an invariant, a
// new record, a transaction, locks and limits, the live counter, and the
// token prompt of a server with keys. Each step checks what the page shows
// (and the server's state through the API) and saves a screenshot into
// build/console-screenshots/<backend>/ (TALLY_SCREENSHOT_DIR to change it),
// a folder the test output names.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import {
  BACKEND, ROOT, SHOP_SCHEMA, TALLY_BIN, dbArgs, expectError, runTally, startServer, stopAll, tempDir,
} from './lib/server.mjs';
import { createKey, within } from './lib/auth.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.TALLY_SCREENSHOT_DIR || path.join(ROOT, 'build', 'console-screenshots', BACKEND);
const noBrowser = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (scripts/deps.sh test installs Debian's chromium)`;

let browser;
let shot = 0;
before(async () => {
  if (noBrowser) return;
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  console.log(`console screenshots: ${SHOTS}`);
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
});
after(async () => {
  if (browser) await browser.close();
  await stopAll();
});

/** Saves a screenshot named after the step; its path goes to the test output. */
async function snap(t, page, name) {
  const file = path.join(SHOTS, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  t.diagnostic(`screenshot: ${file}`);
}

async function newPage(errors) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[19]|status of 4[0-9][0-9]/.test(m.text())) errors.push(m.text()); });
  return page;
}

const text = (page, sel) => page.$eval(sel, (n) => n.textContent);
const waitText = (page, sel, what, timeout = 5000) => page.waitForFunction(
  (s, w) => document.querySelector(s) && document.querySelector(s).textContent.includes(w), { timeout }, sel, what)
  .catch(async () => assert.fail(`${sel} never showed "${what}"; it shows "${await text(page, sel)}"`));
async function fill(page, sel, value) {
  await page.click(sel, { clickCount: 3 });
  await page.keyboard.press('Backspace');
  await page.type(sel, value);
}
const column = (page, field) => page.$$eval(`#records tbody td[data-field="${field}"]`, (tds) => tds.map((td) => td.textContent));

describe('the console in chromium', { skip: noBrowser }, () => {
  let srv;
  let page;
  const errors = [];
  const byId = async (model, id) => (await srv.api('GET', `/api/${model}/${id}`)).body;

  before(async () => {
    srv = await startServer();
    for (let i = 1; i <= 12; i++) {
      const r = await srv.api('POST', '/api/product', { sku: `sku-${String(i).padStart(2, '0')}`, stock: i });
      assert.equal(r.status, 201, r.text);
    }
    page = await newPage(errors);
  });

  test('the files are served from the server\'s own origin, and nothing else is fetched', async () => {
    const r = await fetch(`${srv.url}/console/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    const js = await fetch(`${srv.url}/console/console.js`);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    expectError(await srv.api('GET', '/console/nope.js'), 404, 'NOT_FOUND');
    expectError(await srv.api('GET', '/console/../tally.db'), 404, 'NOT_FOUND');
    expectError(await srv.api('POST', '/console/index.html', {}), 405, 'METHOD_NOT_ALLOWED');
    const requested = new Set();
    page.on('request', (req) => requested.add(new URL(req.url()).origin));
    await page.goto(`${srv.url}/console`, { waitUntil: 'networkidle0' });
    assert.deepEqual([...requested].filter((o) => o !== 'null' && o !== srv.url), [], 'no other origin (no CDN)');
  });

  test('browse: models, pages by cursor, filter and sort', async (t) => {
    await page.waitForSelector('#models button[data-model="product"]');
    const models = await page.$$eval('#models button', (bs) => bs.map((b) => b.textContent));
    assert.deepEqual(models, ['customer', 'product', 'event', 'ticket', 'post', 'image', 'course', 'rateLimit']);
    await page.click('#models button[data-model="product"]');
    await waitText(page, '#records-title', 'product');
    await page.select('#page-size', '10');
    await page.click('#apply-query');
    await waitText(page, '#page-info', 'page 1: 10 record(s)');
    assert.deepEqual(await column(page, 'sku'), Array.from({ length: 10 }, (_, i) => `sku-${String(i + 1).padStart(2, '0')}`));
    await snap(t, page, 'browse-page-1');
    await page.click('#next-page');
    await waitText(page, '#page-info', 'page 2: 2 record(s), the last page');
    assert.deepEqual(await column(page, 'sku'), ['sku-11', 'sku-12']);
    assert.equal(await page.$eval('#next-page', (b) => b.disabled), true);
    await page.click('#prev-page');
    await waitText(page, '#page-info', 'page 1');
    await fill(page, '#filter-input', '{"stock": {"greaterThan": 8}}');
    await page.select('#sort-field', 'stock');
    await page.select('#sort-direction', 'descending');
    await page.click('#apply-query');
    await waitText(page, '#page-info', 'page 1: 4 record(s), the last page');
    assert.deepEqual(await column(page, 'stock'), ['12', '11', '10', '9']);
    await snap(t, page, 'browse-filtered-sorted');
    await fill(page, '#filter-input', '{"stock": ');
    await page.click('#apply-query');
    await waitText(page, '#message', 'The filter is not valid JSON');
    await fill(page, '#filter-input', '{"stok": {"greaterThan": 1}}');
    await page.click('#apply-query');
    await waitText(page, '#message', 'BAD_REQUEST');
    await page.$eval('#filter-input', (n) => { n.value = ''; });
    await page.select('#sort-field', 'id');
    await page.select('#sort-direction', 'ascending');
    await page.click('#apply-query');
    await waitText(page, '#page-info', 'page 1: 10 record(s)');
  });

  test('edit a record: the change is saved and shown', async (t) => {
    await page.click('#records tbody tr[data-id="3"]');
    await waitText(page, '#editor-title', 'product 3');
    await fill(page, '#field-sku', 'sku-03-green');
    await page.click('#save-record');
    await waitText(page, '#message', 'Saved product 3: sku.');
    assert.equal((await byId('product', 3)).sku, 'sku-03-green');
    assert.equal(await page.$eval('#records tbody tr[data-id="3"] td[data-field="sku"]', (n) => n.textContent), 'sku-03-green');
    await snap(t, page, 'edit-saved');
    await fill(page, '#field-stock', 'many');
    await page.click('#save-record');
    await waitText(page, '#message', 'stock takes a whole number');
  });

  test('an increment inside the database, then a guard that refuses and an invariant', async (t) => {
    await page.click('#records tbody tr[data-id="5"]');
    await waitText(page, '#editor-title', 'product 5');
    await page.select('#atomic-field', 'stock');
    await page.select('#atomic-op', 'increment');
    await fill(page, '#atomic-amount', '3');
    await page.click('#apply-atomic');
    await waitText(page, '#message', 'stock is now 8');
    assert.equal((await byId('product', 5)).stock, 8);
    assert.equal(await page.$eval('#records tbody tr[data-id="5"] td[data-field="stock"]', (n) => n.textContent), '8');
    await snap(t, page, 'increment');

    await page.select('#atomic-op', 'decrement');
    await fill(page, '#atomic-amount', '20');
    await fill(page, '#guard-input', '{"stock": {"greaterThanOrEqual": 20}}');
    await page.click('#apply-atomic');
    await waitText(page, '#message', 'GUARD_FAILED');
    const msg = await text(page, '#message');
    assert.match(msg, /current: \{"id":5,"sku":"sku-05","stock":8/, 'the refused row as it stood');
    assert.equal(await page.$eval('#message', (n) => n.className), 'error');
    assert.equal((await byId('product', 5)).stock, 8, 'nothing changed');
    await snap(t, page, 'guard-refused');

    await page.$eval('#guard-input', (n) => { n.value = ''; });
    await page.click('#apply-atomic');
    await waitText(page, '#message', 'INVARIANT');
    assert.match(await text(page, '#message'), /below its min of 0/);
    assert.equal((await byId('product', 5)).stock, 8);
    await snap(t, page, 'invariant-refused');
  });

  test('create a record from JSON; a refused one says why', async (t) => {
    await page.click('#new-record');
    await waitText(page, '#creator-title', 'New product');
    assert.deepEqual(JSON.parse(await page.$eval('#create-json', (n) => n.value)), { sku: '' }, 'a template of the required fields');
    await page.$eval('#create-json', (n) => { n.value = '{"sku": "kiwi", "stock": 4}'; });
    await page.click('#create-record');
    await waitText(page, '#message', 'Created product 13.');
    assert.equal((await byId('product', 13)).sku, 'kiwi');
    await waitText(page, '#editor-title', 'product 13');
    await snap(t, page, 'created');
    await page.click('#new-record');
    await page.$eval('#create-json', (n) => { n.value = '{"sku": "kiwi"}'; });
    await page.click('#create-record');
    await waitText(page, '#message', 'UNIQUE_VIOLATION');
  });

  test('a transaction from the JSON editor: applied together, or refused naming the step', async (t) => {
    await page.click('#tabs button[data-tab="transaction"]');
    await page.waitForSelector('#txn-json', { visible: true });
    const good = { steps: [
      { as: 'p', get: 'product', id: 1 },
      { update: 'product', id: { $ref: 'p.id' }, data: { _atomics: { stock: { increment: 10 } } } }] };
    await page.$eval('#txn-json', (n, v) => { n.value = v; }, JSON.stringify(good));
    await page.click('#run-txn');
    await waitText(page, '#message', 'Applied: 2 step(s)');
    assert.match(await text(page, '#txn-result'), /"stock": 11/);
    await snap(t, page, 'transaction-applied');
    const bad = { steps: [
      { update: 'product', id: 1, data: { _atomics: { stock: { increment: 1 } } } },
      { as: 'last', update: 'product', id: 2, data: { _atomics: { stock: { decrement: 50 } } } }] };
    await page.$eval('#txn-json', (n, v) => { n.value = v; }, JSON.stringify(bad));
    await page.click('#run-txn');
    await waitText(page, '#message', 'INVARIANT');
    assert.match(await text(page, '#message'), /\[step 1, "last"\]/);
    assert.equal(await text(page, '#txn-result'), 'Nothing was applied.');
    assert.equal((await byId('product', 1)).stock, 11, 'the first step was rolled back too');
    await snap(t, page, 'transaction-refused');
  });

  test('locks and limits', async (t) => {
    const lock = await srv.api('POST', '/api/locks/nightly-report/acquire', { ttlMs: 60000 });
    assert.equal(lock.status, 200, lock.text);
    await page.click('#tabs button[data-tab="locks"]');
    await waitText(page, '#locks tbody', 'nightly-report');
    assert.match(await text(page, '#limits tbody'), /login.*10 per 60000 ms/);
    await fill(page, '#limit-key', 'ada@example.com');
    await fill(page, '#limit-cost', '2');
    await page.click('#take-limit');
    await waitText(page, '#message', 'Allowed: 3 left.');
    await fill(page, '#limit-cost', '5');
    await page.click('#take-limit');
    await waitText(page, '#message', 'Refused: retry after');
    assert.match(await text(page, '#limit-result'), /"allowed": false/);
    await snap(t, page, 'locks-and-limits');
  });

  test('the live counter follows changes made elsewhere', async (t) => {
    await page.click('#tabs button[data-tab="live"]');
    await page.select('#live-model', 'product');
    await fill(page, '#live-id', '4');
    await page.select('#live-field', 'stock');
    await page.click('#watch');
    await waitText(page, '#live-value', '4');
    for (let i = 0; i < 3; i++) await srv.api('PATCH', '/api/product/4', { _atomics: { stock: { increment: 5 } } });
    await waitText(page, '#live-value', '19');
    assert.match(await text(page, '#live-info'), /product 4\.stock: \d+ → 19/);
    await snap(t, page, 'live-counter');
    await page.click('#stop-watch');
    assert.deepEqual(errors, [], 'no script errors on the page');
  });
});

describe('the console with keys', { skip: noBrowser }, () => {
  test('asks for a token, keeps it in this tab\'s session only, and forgets it on request', async (t) => {
    const srv = await startServer();
    const token = await createKey(srv, 'console', ['admin']);
    await within(3000, 'keys on', async () => (await srv.api('GET', '/api/product')).status === 401);
    const errors = [];
    const page = await newPage(errors);
    await page.goto(`${srv.url}/console`, { waitUntil: 'networkidle0' });
    await page.waitForSelector('#token-input', { visible: true });
    await snap(t, page, 'keys-login');
    await page.type('#token-input', 'tly_not-a-real-token');
    await page.click('#token-form button[type="submit"]');
    await waitText(page, '#login-error', 'That token was refused');
    await page.type('#token-input', token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#models button[data-model="product"]', { visible: true });
    await waitText(page, '#token-status', 'using a token');
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('tally-console-token'), local: localStorage.length, cookie: document.cookie }));
    assert.deepEqual(stored, { session: token, local: 0, cookie: '' });
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForSelector('#models button[data-model="product"]', { visible: true });
    await snap(t, page, 'keys-signed-in');
    await page.click('#forget-token');
    await page.waitForSelector('#token-input', { visible: true });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tally-console-token')), null);
    await page.close();
    await srv.stop();
  });

  test('--console-dir: given, it is used; missing, start-up stops; a binary with no files beside it serves 404', async () => {
    const given = await startServer({ args: ['--console-dir', path.join(ROOT, 'console')] });
    assert.equal((await fetch(`${given.url}/console`)).status, 200);
    await given.stop();
    const bad = await runTally(['serve', '--schema', SHOP_SCHEMA, ...dbArgs(tempDir()), '--listen', '127.0.0.1:0',
      '--console-dir', '/nonexistent']);
    assert.equal(bad.started, false);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--console-dir \/nonexistent holds no index.html/);
    // The same binary copied to a folder with no console/ beside it (and no share/tally/console above it).
    const lonely = path.join(tempDir('tally-lonely-'), 'bin');
    mkdirSync(lonely);
    copyFileSync(TALLY_BIN, path.join(lonely, 'tally'));
    chmodSync(path.join(lonely, 'tally'), 0o755);
    const proc = spawn(path.join(lonely, 'tally'), ['serve', '--schema', SHOP_SCHEMA, ...dbArgs(tempDir()), '--listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    const url = await new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => { out += d; const m = /listening on (http:\/\/\S+)/.exec(out); if (m) resolve(m[1]); });
      proc.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    try {
      assert.match(err, /no web console: the web console's files are not beside the binary/);
      const r = await fetch(`${url}/console`);
      assert.equal(r.status, 404);
      assert.match((await r.json()).error.message, /no console files/);
      assert.equal((await fetch(`${url}/health`)).status, 200, 'the rest serves as usual');
    } finally {
      proc.kill('SIGTERM');
    }
  });
});
