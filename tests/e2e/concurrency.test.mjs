// Many clients at once: no lost update, invariants hold under contention,
// unique values are granted once, and an answered write is visible to the
// next read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileServer, expectStatus, expectError, parallel, metrics } from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';
import { rawConnections } from './lib/rawhttp.mjs';

const suite = fileServer();
const { api } = suite;
const { create } = recordHelpers(() => api);

test('lost update: 50 clients x 200 increments on one field end at exactly 10000, every answer distinct', async () => {
  const CLIENTS = 50;
  const EACH = 200;
  const c = await create('customer', { name: 'hot row' });
  const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
  const failures = [];
  // one keep-alive connection per client (lean raw HTTP/1.1, so that all 50
  // really have a request at the server at once; fetch is CPU-bound here)
  const conns = await rawConnections(suite.srv, CLIENTS);
  const before = await metrics(suite.srv);
  const perClient = await parallel(CLIENTS, async (k) => {
    const seen = [];
    for (let i = 0; i < EACH; i++) {
      const r = await conns[k].request('PATCH', `/api/customer/${c.id}`, body);
      if (r.status !== 200) { failures.push(`client ${k} #${i}: ${r.status} ${r.text}`); continue; }
      seen.push(r.body.orderCount);
    }
    return seen;
  });
  for (const x of conns) x.close();
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} increments failed`);
  const all = perClient.flat();
  assert.equal(all.length, CLIENTS * EACH);
  const distinct = new Set(all);
  assert.equal(distinct.size, CLIENTS * EACH, 'every increment must answer a value no other increment got');
  assert.equal(Math.min(...all), 1);
  assert.equal(Math.max(...all), CLIENTS * EACH);
  // each client's own sequential increments see strictly increasing values
  for (const [k, seen] of perClient.entries()) {
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i] > seen[i - 1], `client ${k}: answer ${seen[i]} after ${seen[i - 1]}`);
    }
  }
  const g = await api('GET', `/api/customer/${c.id}`);
  expectStatus(g, 200);
  assert.equal(g.body.orderCount, CLIENTS * EACH);
  // the increments that met in one batch were summed into one statement (and still answered one by one)
  const after = await metrics(suite.srv);
  const coalesced = after.tally_coalesced_writes_total - before.tally_coalesced_writes_total;
  const batches = after.tally_batches_total - before.tally_batches_total;
  console.log(`# ${CLIENTS * EACH} increments in ${batches} batches, ${coalesced} of them applied in runs summed into one statement`);
  assert.ok(coalesced > 0, 'no increments were summed: 50 clients on one row should meet in batches');
});

test('invariant under contention: stock 100, min 0, 300 concurrent decrements: exactly 100 succeed', async () => {
  const p = await create('product', { sku: 'HOT-SKU', stock: 100 });
  const body = JSON.stringify({ _atomics: { stock: { decrement: 1 } } });
  const answers = await parallel(300, () => api('PATCH', `/api/product/${p.id}`, body));
  const ok = answers.filter((r) => r.status === 200);
  const refused = answers.filter((r) => r.status === 422);
  const other = answers.filter((r) => r.status !== 200 && r.status !== 422);
  assert.deepEqual(other.map((r) => `${r.status} ${r.text}`), [], 'only 200 and 422 answers');
  assert.equal(ok.length, 100, 'exactly 100 decrements succeed');
  assert.equal(refused.length, 200, 'exactly 200 are refused');
  for (const r of refused) expectError(r, 422, 'INVARIANT');
  for (const r of answers) {
    if (r.body && typeof r.body.stock === 'number') assert.ok(r.body.stock >= 0, `negative stock in ${r.text}`);
    assert.ok(!/"stock"\s*:\s*-/.test(r.text), `negative stock in ${r.text}`);
  }
  assert.deepEqual(ok.map((r) => r.body.stock).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i),
    'the successful decrements answer 99, 98, ..., 0, once each');
  const g = await api('GET', `/api/product/${p.id}`);
  assert.equal(g.body.stock, 0);
});

test('two fields in one request stay consistent under contention (sold + available = 50)', async () => {
  const e = await create('event', { availableTicketCount: 50 });
  const body = JSON.stringify({ _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } });
  const answers = await parallel(80, () => api('PATCH', `/api/event/${e.id}`, body));
  const ok = answers.filter((r) => r.status === 200);
  assert.equal(ok.length, 50, answers.filter((r) => r.status !== 200 && r.status !== 422).map((r) => r.text).join('\n'));
  for (const r of answers) if (r.status !== 200) expectError(r, 422, 'INVARIANT');
  for (const r of ok) assert.equal(r.body.soldTicketCount + r.body.availableTicketCount, 50, r.text);
  const g = await api('GET', `/api/event/${e.id}`);
  assert.equal(g.body.soldTicketCount, 50);
  assert.equal(g.body.availableTicketCount, 0);
});

test('a unique value raced by 20 clients is granted exactly once', async () => {
  const answers = await parallel(20, (i) => api('POST', '/api/customer', { name: `racer-${i}`, email: 'race@example.com' }));
  const created = answers.filter((r) => r.status === 201);
  assert.equal(created.length, 1, answers.map((r) => r.status).join(','));
  for (const r of answers) if (r.status !== 201) expectError(r, 409, 'UNIQUE_VIOLATION', 'email');
  const list = await api('GET', '/api/customer?first=1000');
  assert.equal(list.body.records.filter((c) => c.email === 'race@example.com').length, 1);
});

test('concurrent creates get distinct ids and all are listed', async () => {
  const answers = await parallel(100, (i) => api('POST', '/api/course', { name: `c-${i}` }));
  for (const r of answers) expectStatus(r, 201);
  const ids = answers.map((r) => r.body.id);
  assert.equal(new Set(ids).size, 100);
  const list = await api('GET', '/api/course?first=1000');
  const listed = new Set(list.body.records.map((c) => c.id));
  for (const id of ids) assert.ok(listed.has(id), `created id ${id} is not listed`);
});

test('read your writes: after an answered increment, a GET sees at least that value', async () => {
  const c = await create('customer', { name: 'ryw' });
  const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
  const stale = [];
  await parallel(20, async () => {
    let lastRead = 0;
    for (let i = 0; i < 30; i++) {
      const w = await api('PATCH', `/api/customer/${c.id}`, body);
      expectStatus(w, 200);
      const r = await api('GET', `/api/customer/${c.id}`);
      expectStatus(r, 200);
      if (r.body.orderCount < w.body.orderCount) stale.push(`wrote ${w.body.orderCount}, then read ${r.body.orderCount}`);
      if (r.body.orderCount < lastRead) stale.push(`read ${lastRead}, then read ${r.body.orderCount}`);
      lastRead = r.body.orderCount;
    }
  });
  assert.deepEqual(stale.slice(0, 5), [], `${stale.length} stale reads`);
  assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 600);
});
