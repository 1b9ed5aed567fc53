// Guarded updates (README.md, "Guarded updates"): `PATCH /api/{model}/{id}` with `_where`
// applies only if the row matches, judged by the statement that writes; else
// 409 GUARD_FAILED with `current`, the row as it stood, and nothing changed.
// Under contention: the inventory reservation and the course capacity check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileServer, shopPlus, expectError, expectStatus, parallel } from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';
import { clients } from './lib/load.mjs';
import { rng } from './lib/filtermodel.mjs';

const suite = fileServer({
  schema: shopPlus({
    doc: {
      fields: {
        version: { type: 'integer', default: 0 },
        body: { type: 'string' },
        owner: { type: 'string' },
        n: { type: 'integer' },
        limit: { type: 'integer' },
        due: { type: 'datetime' },
        done: { type: 'boolean' },
      },
    },
  }),
});
const { api } = suite;
const { create, get } = recordHelpers(() => api);

/** A guard failure: 409 GUARD_FAILED, `current` is the record as stored now, and it did not change. */
async function expectGuardFailed(r, model, before) {
  expectError(r, 409, 'GUARD_FAILED');
  const cur = r.body.error.current;
  assert.ok(cur && typeof cur === 'object', `error.current must be the record: ${r.text}`);
  const now = await get(model, before.id);
  assert.deepEqual(now, before, 'nothing changed (updatedAt included)');
  assert.deepEqual(cur, now, 'current is the record as it stood');
  return cur;
}

test('a guard that matches applies the change and answers the record; one that does not is a 409 with current, nothing changed', async () => {
  const p = await create('product', { sku: 'G-1', stock: 10 });
  const ok = await api('PATCH', `/api/product/${p.id}`, { _where: { stock: { greaterThanOrEqual: 3 } }, _atomics: { stock: { decrement: 3 } } });
  expectStatus(ok, 200);
  assert.equal(ok.body.stock, 7);
  assert.deepEqual(await get('product', p.id), ok.body);

  const stood = await get('product', p.id);
  const no = await api('PATCH', `/api/product/${p.id}`, { _where: { stock: { greaterThanOrEqual: 8 } }, _atomics: { stock: { decrement: 8 } } });
  const cur = await expectGuardFailed(no, 'product', stood);
  assert.equal(cur.stock, 7);
  assert.equal(cur.sku, 'G-1');

  // plain fields and atomics together: a failing guard leaves both alone
  const both = await api('PATCH', `/api/product/${p.id}`, { _where: { sku: { equals: 'other' } }, sku: 'G-1x', _atomics: { stock: { increment: 1 } } });
  await expectGuardFailed(both, 'product', stood);
  const both2 = await api('PATCH', `/api/product/${p.id}`, { _where: { sku: { equals: 'G-1' } }, sku: 'G-1x', _atomics: { stock: { increment: 1 } } });
  expectStatus(both2, 200);
  assert.equal(both2.body.sku, 'G-1x');
  assert.equal(both2.body.stock, 8);

  // the same guard again no longer matches: the row changed
  const after2 = await get('product', p.id);
  const again = await api('PATCH', `/api/product/${p.id}`, { _where: { sku: { equals: 'G-1' } }, sku: 'G-1y' });
  assert.equal((await expectGuardFailed(again, 'product', after2)).sku, 'G-1x');

  // an empty guard matches every row
  const empty = await api('PATCH', `/api/product/${p.id}`, { _where: {}, _atomics: { stock: { increment: 2 } } });
  expectStatus(empty, 200);
  assert.equal(empty.body.stock, 10);
});

test('a guard on a missing record is a 404, whether or not it would match', async () => {
  const p = await create('product', { sku: 'G-gone', stock: 1 });
  const d = await api('DELETE', `/api/product/${p.id}`);
  expectStatus(d, 200);
  for (const where of [{}, { stock: { greaterThan: 100 } }, { stock: { equals: 1 } }]) {
    const r = await api('PATCH', `/api/product/${p.id}`, { _where: where, _atomics: { stock: { increment: 1 } } });
    expectError(r, 404, 'NOT_FOUND');
  }
  expectError(await api('PATCH', '/api/product/99999999', { _where: {}, stock: 1 }), 404, 'NOT_FOUND');
});

test('guards use the whole filter language: AND/OR/NOT, null and unset, field to field, datetimes, booleans, id', async () => {
  const d = await create('doc', { body: 'v0', n: null, limit: 3, due: '2030-01-01T00:00:00Z', done: false });
  const patch = (body) => api('PATCH', `/api/doc/${d.id}`, body);
  let cur = await get('doc', d.id);
  const step = async (body, shouldApply, check) => {
    const stood = await get('doc', d.id);
    const r = await patch(body);
    if (shouldApply) {
      expectStatus(r, 200);
      cur = r.body;
      assert.deepEqual(await get('doc', d.id), cur);
      if (check) check(cur);
    } else {
      await expectGuardFailed(r, 'doc', stood);
    }
  };
  // claim only while unowned (equals null / isSet false)
  await step({ _where: { owner: { equals: null } }, owner: 'ann' }, true, (x) => assert.equal(x.owner, 'ann'));
  await step({ _where: { owner: { equals: null } }, owner: 'bob' }, false);
  await step({ _where: { owner: { isSet: false } }, owner: 'bob' }, false);
  await step({ _where: { owner: { notEquals: null } }, body: 'owned' }, true, (x) => assert.equal(x.body, 'owned'));
  // n is unset: notEquals is false on it, NOT(equals) is true
  await step({ _where: { n: { notEquals: 5 } }, body: 'x' }, false);
  await step({ _where: { n: { lessThan: 5 } }, body: 'x' }, false);
  await step({ _where: { NOT: { n: { equals: 5 } } }, n: 1 }, true, (x) => assert.equal(x.n, 1));
  // field to field: n < limit
  await step({ _where: { n: { lessThan: { field: 'limit' } } }, _atomics: { n: { increment: 1 } } }, true, (x) => assert.equal(x.n, 2));
  await step({ _where: { n: { lessThan: { field: 'limit' } } }, _atomics: { n: { increment: 1 } } }, true, (x) => assert.equal(x.n, 3));
  await step({ _where: { n: { lessThan: { field: 'limit' } } }, _atomics: { n: { increment: 1 } } }, false);
  // OR / AND / several fields in one object
  await step({ _where: { OR: [{ owner: { equals: 'bob' } }, { done: { equals: true } }] }, body: 'x' }, false);
  await step({ _where: { OR: [{ owner: { equals: 'bob' } }, { done: { equals: false } }] }, done: true }, true, (x) => assert.equal(x.done, true));
  await step({ _where: { owner: { equals: 'ann' }, done: { equals: false } }, body: 'y' }, false);
  await step({ _where: { AND: [{ owner: { in: ['ann', 'cy'] } }, { done: { equals: true } }] }, body: 'y' }, true);
  // datetimes by instant, id
  await step({ _where: { due: { lessThan: '2029-12-31T21:00:00-02:00' } }, body: 'z' }, false);
  await step({ _where: { due: { equals: '2030-01-01T01:00:00+01:00' } }, body: 'z' }, true);
  await step({ _where: { id: { equals: d.id + 1 } }, body: 'w' }, false);
  await step({ _where: { id: { equals: d.id }, version: { equals: 0 } }, body: 'w', _atomics: { version: { increment: 1 } } }, true,
    (x) => assert.equal(x.version, 1));
  await step({ _where: { updatedAt: { equals: cur.updatedAt }, version: { equals: 1 } }, body: 'v' }, true);
});

test('a bad _where is a 400 with a path under _where, and changes nothing', async () => {
  const p = await create('product', { sku: 'G-bad', stock: 5 });
  const stood = await get('product', p.id);
  const cases = [
    [{ nope: { equals: 1 } }, '_where.nope'],
    [{ stock: { bigger: 1 } }, '_where.stock.bigger'],
    [{ stock: { greaterThan: 'five' } }, '_where.stock.greaterThan'],
    [{ sku: { equals: 5 } }, '_where.sku.equals'],
    [{ stock: { greaterThan: { field: 'nope' } } }, '_where.stock.greaterThan.field'],
    [{ stock: { greaterThan: { field: 'sku' } } }, /^_where\.stock\.greaterThan/],
    [{ stock: { in: 5 } }, '_where.stock.in'],
    [{ stock: { in: [null] } }, /^_where\.stock\.in/],
    [{ OR: [{ stock: { equals: 1 } }, { nope: { isSet: true } }] }, '_where.OR[1].nope'],
    [{ NOT: { stock: { lessThan: true } } }, '_where.NOT.stock.lessThan'],
    [5, '_where'],
    [[{ stock: { equals: 5 } }], '_where'],
  ];
  let deep = { stock: { equals: 5 } };
  for (let i = 0; i < 40; i++) deep = { NOT: deep };
  cases.push([deep, /^_where(\.NOT)+/]);
  const wrong = [];
  for (const [where, path] of cases) {
    const r = await api('PATCH', `/api/product/${p.id}`, { _where: where, _atomics: { stock: { decrement: 1 } } });
    try { expectError(r, 400, 'BAD_REQUEST', path); } catch (e) { wrong.push(`${JSON.stringify(where).slice(0, 80)}: ${e.message.split('\n')[0]}`); }
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(await get('product', p.id), stood);
});

test('a guard that matches but whose change crosses min is a 422 INVARIANT; one that fails is a 409 even if the change would cross', async () => {
  const p = await create('product', { sku: 'G-min', stock: 2 });
  const stood = await get('product', p.id);
  const r1 = await api('PATCH', `/api/product/${p.id}`, { _where: { stock: { greaterThanOrEqual: 1 } }, _atomics: { stock: { decrement: 3 } } });
  expectError(r1, 422, 'INVARIANT');
  assert.deepEqual(await get('product', p.id), stood);
  const r2 = await api('PATCH', `/api/product/${p.id}`, { _where: { stock: { greaterThanOrEqual: 3 } }, _atomics: { stock: { decrement: 3 } } });
  const cur = await expectGuardFailed(r2, 'product', stood);
  assert.equal(cur.stock, 2);
});

test('optimistic concurrency: 30 clients write version 0 at once with a version guard: exactly one wins, the others see its write', async () => {
  const d = await create('doc', { body: 'start' });
  const cs = await clients(suite.srv, 30);
  const answers = await parallel(30, (k) => cs[k].request('PATCH', `/api/doc/${d.id}`,
    { _where: { version: { equals: 0 } }, body: `writer ${k}`, _atomics: { version: { increment: 1 } } }));
  for (const c of cs) c.close();
  const ok = answers.filter((r) => r.status === 200);
  const refused = answers.filter((r) => r.status === 409);
  assert.equal(ok.length + refused.length, 30, `only 200 and 409: ${answers.filter((r) => r.status !== 200 && r.status !== 409).map((r) => r.text)}`);
  assert.equal(ok.length, 1, 'exactly one writer wins');
  const winner = ok[0].body;
  assert.equal(winner.version, 1);
  for (const r of refused) {
    expectError(r, 409, 'GUARD_FAILED');
    assert.equal(r.body.error.current.version, 1);
    assert.equal(r.body.error.current.body, winner.body, 'the refused see the winner\'s write');
  }
  assert.deepEqual(await get('doc', d.id), winner);
});

test('inventory: stock 50, 200 concurrent clients reserve 1-3 with a guard: no oversell, no false refusal, a serial order of reservations (3 rounds)', async () => {
  const r = rng(2024);
  for (let round = 0; round < 3; round++) {
    const p = await create('product', { sku: `INV-${round}`, stock: 50 });
    const CLIENTS = 200;
    const qty = Array.from({ length: CLIENTS }, () => 1 + Math.floor(r() * 3));
    const cs = await clients(suite.srv, CLIENTS);       // every connection open before any request goes
    const answers = await parallel(CLIENTS, (k) => cs[k].request('PATCH', `/api/product/${p.id}`,
      { _where: { stock: { greaterThanOrEqual: qty[k] } }, _atomics: { stock: { decrement: qty[k] } } }));
    for (const c of cs) c.close();

    const other = answers.map((a, k) => [a, k]).filter(([a]) => a.status !== 200 && a.status !== 409);
    assert.deepEqual(other.map(([a, k]) => `client ${k}: ${a.status} ${a.text}`), [], 'only 200 and 409 answers');
    for (const a of answers) assert.ok(!/"stock"\s*:\s*-/.test(a.text), `negative stock in an answer: ${a.text}`);

    const wins = [];
    let reserved = 0;
    for (const [k, a] of answers.entries()) {
      if (a.status === 200) {
        assert.equal(a.body.id, p.id);
        assert.ok(a.body.stock >= 0, `negative stock: ${a.text}`);
        wins.push({ after: a.body.stock, qty: qty[k] });
        reserved += qty[k];
      } else {
        expectError(a, 409, 'GUARD_FAILED');
        const cur = a.body.error.current;
        assert.equal(cur.id, p.id);
        assert.ok(cur.stock >= 0, `negative stock in current: ${a.text}`);
        assert.ok(cur.stock < qty[k], `client ${k} asked ${qty[k]} and was refused while current.stock was ${cur.stock}: a false refusal`);
      }
    }
    const final = (await get('product', p.id)).stock;
    assert.ok(final >= 0, 'final stock never negative');
    assert.equal(reserved, 50 - final, 'the successful reservations add up to 50 - final stock');
    assert.ok(wins.length > 0 && wins.length < CLIENTS);
    // the successful answers chain into one serial order: 50 -> ... -> final
    wins.sort((a, b) => b.after - a.after);
    let level = 50;
    for (const w of wins) {
      assert.equal(w.after + w.qty, level, `a reservation of ${w.qty} answered stock ${w.after}, but the stock before it was ${level}`);
      level = w.after;
    }
    assert.equal(level, final);
    // with 200 clients asking ~400 in all, the stock must end below the smallest refused ask
    const refusedAsks = answers.map((a, k) => (a.status === 409 ? qty[k] : Infinity));
    assert.ok(final < Math.min(...refusedAsks), `final stock ${final}, yet a client asking ${Math.min(...refusedAsks)} was refused`);
  }
});

test('course: capacity 30, 500 concurrent guarded enrolments (slotsTaken < maxStudents): exactly 30 succeed, 470 get GUARD_FAILED', async () => {
  const c = await create('course', { name: 'Algebra' });
  assert.equal(c.maxStudents, 30);
  assert.equal(c.slotsTaken, 0);
  const N = 500;
  const cs = await clients(suite.srv, N);
  const body = { _where: { slotsTaken: { lessThan: { field: 'maxStudents' } } }, _atomics: { slotsTaken: { increment: 1 } } };
  const answers = await parallel(N, (k) => cs[k].request('PATCH', `/api/course/${c.id}`, body));
  for (const x of cs) x.close();
  const ok = answers.filter((r) => r.status === 200);
  const refused = answers.filter((r) => r.status === 409);
  const other = answers.filter((r) => r.status !== 200 && r.status !== 409);
  assert.deepEqual(other.map((r) => `${r.status} ${r.text}`).slice(0, 5), [], 'only 200 and 409 answers');
  assert.equal(ok.length, 30, 'exactly 30 enrolments succeed');
  assert.equal(refused.length, 470);
  assert.deepEqual(ok.map((r) => r.body.slotsTaken).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1),
    'the successful enrolments answer 1..30, once each');
  for (const r of refused) {
    expectError(r, 409, 'GUARD_FAILED');
    assert.equal(r.body.error.current.slotsTaken, 30, `a refusal before the course was full: ${r.text}`);
    assert.equal(r.body.error.current.maxStudents, 30);
  }
  const final = await get('course', c.id);
  assert.equal(final.slotsTaken, 30);
});

test('course: the guard compares with the row\'s own maxStudents, also after it changes (7, then raised to 10)', async () => {
  const c = await create('course', { name: 'Seminar', maxStudents: 7 });
  const body = { _where: { slotsTaken: { lessThan: { field: 'maxStudents' } } }, _atomics: { slotsTaken: { increment: 1 } } };
  const burst = async (n) => {
    const cs = await clients(suite.srv, n);
    const a = await parallel(n, (k) => cs[k].request('PATCH', `/api/course/${c.id}`, body));
    for (const x of cs) x.close();
    for (const r of a) assert.ok(r.status === 200 || r.status === 409, `${r.status} ${r.text}`);
    return a.filter((r) => r.status === 200).length;
  };
  assert.equal(await burst(100), 7);
  assert.equal((await get('course', c.id)).slotsTaken, 7);
  const raise = await api('PATCH', `/api/course/${c.id}`, { maxStudents: 10 });
  expectStatus(raise, 200);
  assert.equal(await burst(50), 3);
  const final = await get('course', c.id);
  assert.equal(final.slotsTaken, 10);
  assert.equal(final.maxStudents, 10);
});
