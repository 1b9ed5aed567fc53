// Bulk calls and upserts (README.md, "Bulk changes and upserts"): updateMany (one statement, all or
// nothing against min/max), deleteMany (a filter is required; {} means every
// row), and upsert (one INSERT ... ON CONFLICT ... DO UPDATE on a declared
// unique key), with the rate-limiter recipe under contention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  fileServer, shopPlus, expectError, expectStatus, parallel, metrics,
} from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';
import { clients, createMany } from './lib/load.mjs';
import { findAll } from './lib/filtermodel.mjs';

const suite = fileServer({
  schema: shopPlus({
    acct: {
      fields: {
        name: { type: 'string', required: true },
        balance: { type: 'integer', default: 0, min: 0, max: 1000 },
        rate: { type: 'float' },
        tier: { type: 'string' },
      },
    },
    cell: { fields: { v: { type: 'integer', default: 0, min: 0 }, grp: { type: 'integer' } } },
    tagged: { fields: { tag: { type: 'string' }, n: { type: 'integer' } } },
    ua: { fields: { k: { type: 'string', unique: true } } },
    ub: { fields: { k: { type: 'string', unique: true }, n: { type: 'integer', default: 0 } } },
    counter: { fields: { key: { type: 'string', required: true, unique: true }, n: { type: 'integer', default: 0 } } },
  }),
});
const { api } = suite;
const { create } = recordHelpers(() => api);

const all = async (model, filter) => (await findAll(api, model, { filter })).records;
const byId = (rows) => new Map(rows.map((x) => [x.id, x]));

// ---------- upsert: the rate limiter ----------

const RL_BODY = (userId, window) => ({
  on: ['userId', 'window'],
  create: { userId, window, requests: 1 },
  update: { _atomics: { requests: { increment: 1 } } },
});

test('rate limiter: 20 clients x 50 upserts on [userId, window]: answers count 1..1000 once each, calls 1..100 allowed, one created', async () => {
  const CLIENTS = 20;
  const EACH = 50;
  const LIMIT = 100;
  const body = RL_BODY('u-42', 29398560);
  const cs = await clients(suite.srv, CLIENTS);
  const failures = [];
  const perClient = await parallel(CLIENTS, async (k) => {
    const seen = [];
    for (let i = 0; i < EACH; i++) {
      const r = await cs[k].request('POST', '/api/rateLimit/upsert', body);
      if (r.status !== 200 && r.status !== 201) { failures.push(`client ${k} #${i}: ${r.status} ${r.text}`); continue; }
      seen.push({ status: r.status, created: r.body.created, requests: r.body.record.requests, id: r.body.record.id });
    }
    return seen;
  });
  for (const c of cs) c.close();
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} upserts failed`);
  const answers = perClient.flat();
  assert.equal(answers.length, CLIENTS * EACH);
  assert.deepEqual(answers.map((a) => a.requests).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i + 1),
    'the returned counts are exactly 1..1000, each once');
  const allowed = answers.filter((a) => a.requests <= LIMIT);
  assert.equal(allowed.length, LIMIT, 'exactly 100 calls are under the limit');
  assert.deepEqual(allowed.map((a) => a.requests).sort((a, b) => a - b), Array.from({ length: LIMIT }, (_, i) => i + 1));
  const created = answers.filter((a) => a.created === true);
  assert.equal(created.length, 1, 'exactly one answer says created: true');
  assert.equal(created[0].status, 201);
  assert.equal(created[0].requests, 1, 'the creating call is call number 1');
  for (const a of answers) {
    if (a.created !== true) { assert.equal(a.created, false); assert.equal(a.status, 200); }
  }
  assert.equal(new Set(answers.map((a) => a.id)).size, 1, 'every answer is about one row');
  for (const [k, seen] of perClient.entries()) {
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].requests > seen[i - 1].requests, `client ${k}: counts must grow`);
  }
  const rows = await all('rateLimit', { userId: { equals: 'u-42' } });
  assert.equal(rows.length, 1, 'one row for the key');
  assert.equal(rows[0].requests, 1000, "the row's final count is 1000");
  assert.equal(rows[0].window, 29398560);
});

test('rate limiter keys are separate: concurrent upserts on two users and two windows count each key on its own', async () => {
  const keys = [['a', 1], ['a', 2], ['b', 1], ['b', 2]];
  const cs = await clients(suite.srv, 40);
  const answers = await parallel(40, async (k) => {
    const out = [];
    for (let i = 0; i < 10; i++) {
      const [u, w] = keys[(k + i) % 4];
      // `on` in either order names the same compound key
      const b = RL_BODY(`sep-${u}`, w);
      if (i % 2) b.on = ['window', 'userId'];
      const r = await cs[k].request('POST', '/api/rateLimit/upsert', b);
      assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.text}`);
      out.push({ key: `${u}/${w}`, requests: r.body.record.requests, created: r.body.created });
    }
    return out;
  });
  for (const c of cs) c.close();
  const flat = answers.flat();
  for (const [u, w] of keys) {
    const mine = flat.filter((a) => a.key === `${u}/${w}`);
    assert.equal(mine.length, 100);
    assert.deepEqual(mine.map((a) => a.requests).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1), `${u}/${w}`);
    assert.equal(mine.filter((a) => a.created).length, 1, `${u}/${w}: one created`);
  }
  const rows = await all('rateLimit', { userId: { in: ['sep-a', 'sep-b'] } });
  assert.equal(rows.length, 4);
  for (const r of rows) assert.equal(r.requests, 100);
});

// ---------- upsert: behaviour and errors ----------

test('upsert creates (201, created: true) then updates (200, created: false) with plain fields and _atomics; on a single field as a string or list', async () => {
  const r1 = await api('POST', '/api/product/upsert', { on: 'sku', create: { sku: 'UP-1', stock: 5 }, update: { _atomics: { stock: { increment: 2 } } } });
  expectStatus(r1, 201);
  assert.equal(r1.body.created, true);
  assert.equal(r1.body.record.sku, 'UP-1');
  assert.equal(r1.body.record.stock, 5, 'a create takes the create values, not the update');
  const r2 = await api('POST', '/api/product/upsert', { on: ['sku'], create: { sku: 'UP-1', stock: 5 }, update: { _atomics: { stock: { increment: 2 } } } });
  expectStatus(r2, 200);
  assert.equal(r2.body.created, false);
  assert.equal(r2.body.record.id, r1.body.record.id);
  assert.equal(r2.body.record.stock, 7);
  const r3 = await api('POST', '/api/product/upsert', { on: 'sku', create: { sku: 'UP-1' }, update: { stock: 40 } });
  expectStatus(r3, 200);
  assert.equal(r3.body.record.stock, 40);
  const g = await api('GET', `/api/product/${r1.body.record.id}`);
  assert.deepEqual(g.body, r3.body.record, 'the answer is the stored record');
  // a unique field that is not required (customer.email). (A customer is made
  // first so that the upsert's new id differs from the product's: the case of
  // equal ids is the next test's.)
  await create('customer', { name: 'Someone' });
  const c1 = await api('POST', '/api/customer/upsert', { on: 'email', create: { name: 'Ann', email: 'ann@x' }, update: { _atomics: { orderCount: { increment: 1 } } } });
  expectStatus(c1, 201);
  const c2 = await api('POST', '/api/customer/upsert', { on: 'email', create: { name: 'Ann', email: 'ann@x' }, update: { name: 'Ann B', _atomics: { orderCount: { increment: 1 } } } });
  expectStatus(c2, 200);
  assert.equal(c2.body.record.name, 'Ann B');
  assert.equal(c2.body.record.orderCount, 1);
  // an update that crosses min is a 422 and changes nothing
  const r4 = await api('POST', '/api/product/upsert', { on: 'sku', create: { sku: 'UP-1' }, update: { _atomics: { stock: { decrement: 41 } } } });
  expectError(r4, 422, 'INVARIANT');
  assert.deepEqual((await api('GET', `/api/product/${r1.body.record.id}`)).body, r3.body.record);
});

test('upsert answers created: true for a new row even when the previous write created a row with the same id in another model', async () => {
  // ua and ub are fresh: the create below gets ua id 1 and the upsert inserts ub id 1
  const a1 = await create('ua', { k: 'first' });
  const b1 = await api('POST', '/api/ub/upsert', { on: 'k', create: { k: 'p' }, update: { _atomics: { n: { increment: 1 } } } });
  assert.equal((await all('ub', { k: { equals: 'p' } })).length, 1, 'the upsert inserted the row');
  assert.equal(b1.body.record.n, 0, 'the row was created, not updated');
  assert.equal(b1.body.record.id, a1.id, 'the case under test: same id as the previous insert');
  assert.equal(b1.body.created, true, `a row that did not exist was created; answer was ${b1.status} ${b1.text}`);
  expectStatus(b1, 201);
  const b2 = await api('POST', '/api/ub/upsert', { on: 'k', create: { k: 'p' }, update: { _atomics: { n: { increment: 1 } } } });
  expectStatus(b2, 200);
  assert.equal(b2.body.created, false);
  // again, after another insert elsewhere (ub's update above consumed an id: SQLite's
  // AUTOINCREMENT counts the attempted insert, so ids need not line up here)
  await create('ua', { k: 'second' });
  const b3 = await api('POST', '/api/ub/upsert', { on: 'k', create: { k: 'q' }, update: { _atomics: { n: { increment: 1 } } } });
  assert.equal(b3.body.created, true, `answer was ${b3.status} ${b3.text}`);
  expectStatus(b3, 201);
});

test('upsert: 50 clients race to upsert the same 10 keys: 10 rows, exactly one created per key, counts add up', async () => {
  // a first counter row, so that no new row's id equals the previous insert's
  // (another model's) id: that case is the test above
  await create('counter', { key: 'first' });
  const cs = await clients(suite.srv, 50);
  const answers = await parallel(50, async (k) => {
    const out = [];
    for (let i = 0; i < 10; i++) {
      const key = `race-${(k + i) % 10}`;
      const r = await cs[k].request('POST', '/api/counter/upsert', { on: 'key', create: { key, n: 1 }, update: { _atomics: { n: { increment: 1 } } } });
      assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.text}`);
      assert.equal(r.status === 201, r.body.created === true, `status and created agree: ${r.status} ${r.text}`);
      out.push({ key, n: r.body.record.n, created: r.body.created, id: r.body.record.id });
    }
    return out;
  });
  for (const c of cs) c.close();
  const flat = answers.flat();
  const rows = await all('counter', { key: { notEquals: 'first' } });
  assert.equal(rows.length, 10);
  const createdWrong = [];
  for (const row of rows) {
    assert.equal(row.n, 50, `${row.key}: 50 upserts`);
    const mine = flat.filter((a) => a.key === row.key);
    assert.deepEqual(mine.map((a) => a.n).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
    const c = mine.filter((a) => a.created);
    if (c.length !== 1 || c[0].n !== 1) {
      createdWrong.push(`${row.key} (id ${row.id}): ${c.length} answers say created (n = ${c.map((a) => a.n)}), the answer with n = 1 says created: ${mine.find((a) => a.n === 1).created}`);
    }
  }
  assert.deepEqual(createdWrong, [], 'exactly one created: true per key, on the call that made it (n = 1)');
});

test('upsert: on must be a declared unique field or compound key (400, path on); create must give every on field', async () => {
  const before = await all('rateLimit');
  const bad = [
    [{ on: 'requests', create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['window'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId', 'window', 'requests'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId', 'nope'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: [], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: 5, create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: 'id', create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId', 'userId'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId', 'window', 'userId'], create: { userId: 'z', window: 1 }, update: { requests: 1 } }, /^on/],
    [{ on: ['userId', 'window'], create: { userId: 'z', window: 1 }, update: { nope: 1 } }, /^update/],
  ];
  const wrong = [];
  for (const [body, p] of bad) {
    const r = await api('POST', '/api/rateLimit/upsert', body);
    try { expectError(r, 400, 'BAD_REQUEST', p); } catch (e) { wrong.push(`${JSON.stringify(body.on)}: ${e.message.split('\n')[0]}`); }
  }
  assert.deepEqual(wrong, []);
  // create without a field of `on`: refused (nothing could ever match it)
  const miss = await api('POST', '/api/customer/upsert', { on: 'email', create: { name: 'No Mail' }, update: { name: 'x' } });
  expectError(miss, 400, 'BAD_REQUEST');
  const miss2 = await api('POST', '/api/rateLimit/upsert', { on: ['userId', 'window'], create: { userId: 'z' }, update: { requests: 1 } });
  assert.ok(miss2.status === 400 || miss2.status === 422, `create without window: ${miss2.status} ${miss2.text}`);
  expectError(miss2, miss2.status, ['BAD_REQUEST', 'VALIDATION']);
  assert.deepEqual(await all('rateLimit'), before, 'nothing was written');
  assert.equal((await all('customer', { name: { equals: 'No Mail' } })).length, 0);
});

// ---------- updateMany ----------

test('updateMany changes exactly the matching rows with set and _atomics, answers the count, leaves the rest alone', async () => {
  const rows = [];
  for (let i = 0; i < 12; i++) rows.push(await create('acct', { name: `a${i}`, balance: i * 10, tier: i % 3 === 0 ? null : i % 3 === 1 ? 'gold' : 'basic', rate: i / 4 }));
  const ids = rows.map((r) => r.id);
  const mine = { id: { in: ids } };
  const before = byId(await all('acct', mine));
  const filter = { ...mine, OR: [{ tier: { equals: 'gold' } }, { tier: { isSet: false } }], balance: { lessThan: 100 } };
  const want = rows.filter((r) => (r.tier === 'gold' || r.tier === null) && r.balance < 100).map((r) => r.id);
  assert.ok(want.length > 2 && want.length < 12);
  const u = await api('POST', '/api/acct/updateMany', { filter, set: { tier: 'silver' }, _atomics: { balance: { increment: 5 } } });
  expectStatus(u, 200);
  assert.deepEqual(u.body, { count: want.length });
  const after1 = byId(await all('acct', mine));
  for (const id of ids) {
    const b = before.get(id);
    const a = after1.get(id);
    if (want.includes(id)) {
      assert.equal(a.tier, 'silver');
      assert.equal(a.balance, b.balance + 5);
      assert.equal(a.name, b.name);
    } else {
      assert.deepEqual(a, b, `row ${id} did not match and must not change`);
    }
  }
  // field to field in the filter: balance > rate (every row here), with a list of atomics
  const u2 = await api('POST', '/api/acct/updateMany', { filter: { ...mine, balance: { greaterThan: { field: 'rate' } } },
    _atomics: { balance: [{ increment: 10 }, { decrement: 3 }] } });
  expectStatus(u2, 200);
  const gt = rows.filter((r) => after1.get(r.id).balance > r.rate).length;
  assert.deepEqual(u2.body, { count: gt });
  const after2 = byId(await all('acct', mine));
  for (const id of ids) {
    const was = after1.get(id);
    assert.equal(after2.get(id).balance, was.balance > was.rate ? was.balance + 7 : was.balance);
  }
  // nothing matches: count 0, nothing changes
  const u3 = await api('POST', '/api/acct/updateMany', { filter: { ...mine, balance: { greaterThan: 5000 } }, set: { tier: 'x' } });
  expectStatus(u3, 200);
  assert.deepEqual(u3.body, { count: 0 });
  assert.deepEqual(byId(await all('acct', mine)), after2);
});

test('updateMany: filter is required ({} for every row), something must change, a bad filter is a 400 with its path; nothing changes', async () => {
  const a = await create('acct', { name: 'req', balance: 1 });
  const snapshot = await all('acct');
  const cases = [
    [{ set: { tier: 'x' } }, 400, 'filter'],
    [{ filter: null, set: { tier: 'x' } }, 400, 'filter'],
    [{ filter: [], set: { tier: 'x' } }, 400, 'filter'],
    [{ filter: { nope: { equals: 1 } }, set: { tier: 'x' } }, 400, 'filter.nope'],
    [{ filter: { balance: { bigger: 1 } }, set: { tier: 'x' } }, 400, 'filter.balance.bigger'],
    [{ filter: { balance: { greaterThan: 'x' } }, set: { tier: 'x' } }, 400, 'filter.balance.greaterThan'],
    [{ filter: { balance: { greaterThan: { field: 'nope' } } }, set: { tier: 'x' } }, 400, 'filter.balance.greaterThan.field'],
    [{ filter: {} }, 400, undefined],
    [{ filter: {}, set: { nope: 1 } }, 400, /nope/],
    [{ filter: {}, _atomics: { name: { increment: 1 } } }, [400, 422], /name/],
    [{ filter: {}, set: { balance: 'lots' } }, [400, 422], /balance/],
  ];
  const wrong = [];
  for (const [body, status, p] of cases) {
    const r = await api('POST', '/api/acct/updateMany', body);
    const st = Array.isArray(status) ? (status.includes(r.status) ? r.status : status[0]) : status;
    try { expectError(r, st, ['BAD_REQUEST', 'VALIDATION'], p); } catch (e) { wrong.push(`${JSON.stringify(body)}: ${e.message.split('\n')[0]}`); }
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(await all('acct'), snapshot, 'nothing changed');
  // {} written out changes every row
  const u = await api('POST', '/api/acct/updateMany', { filter: {}, set: { tier: 'everyone' } });
  expectStatus(u, 200);
  assert.deepEqual(u.body, { count: snapshot.length });
  for (const r of await all('acct')) assert.equal(r.tier, 'everyone');
  assert.ok(a.id);
});

test('updateMany is all or nothing: rows that would cross min or max make it a 422 INVARIANT naming how many, and no row changes', async () => {
  const rows = [];
  for (let i = 0; i < 10; i++) rows.push(await create('acct', { name: `inv${i}`, balance: i * 100 + 5 }));   // 5, 105, ..., 905
  const mine = { name: { in: rows.map((r) => r.name) } };
  const snapshot = await all('acct', mine);
  const check = async (body, n) => {
    const r = await api('POST', '/api/acct/updateMany', body);
    expectError(r, 422, 'INVARIANT');
    assert.match(r.body.error.message, new RegExp(`\\b${n} matching rows? would cross`), `the message says ${n} rows would cross: ${r.text}`);
    assert.deepEqual(await all('acct', mine), snapshot, 'no row changed');
  };
  await check({ filter: mine, _atomics: { balance: { decrement: 300 } } }, 3);            // 5, 105, 205 go below 0
  await check({ filter: mine, _atomics: { balance: { increment: 200 } } }, 2);            // 805, 905 go above 1000
  await check({ filter: { ...mine, balance: { lessThan: 500 } }, _atomics: { balance: { decrement: 6 } } }, 1);
  await check({ filter: mine, set: { balance: 1001 } }, 10);
  await check({ filter: mine, set: { tier: 'ok' }, _atomics: { balance: [{ increment: 1000 }, { decrement: 1000 }, { decrement: 10 }] } }, 1);
  // the same change restricted to rows that stay inside: applies
  const ok = await api('POST', '/api/acct/updateMany', { filter: { ...mine, balance: { greaterThanOrEqual: 300 } }, _atomics: { balance: { decrement: 300 } } });
  expectStatus(ok, 200);
  assert.deepEqual(ok.body, { count: 7 });
  const now = await all('acct', mine);
  assert.deepEqual(now.map((r) => r.balance), [5, 105, 205, 5, 105, 205, 305, 405, 505, 605]);
});

test('updateMany over 100,000 rows: one write, count 100000, every row changed; a crossing one changes none and names the count', async () => {
  const N = 100000;
  const rows = Array.from({ length: N }, (_, i) => ({ v: i % 10, grp: i % 7 }));
  const made = await createMany(suite.srv, 'cell', rows, 100);
  const initial = new Map(made.map((x) => [x.id, x.v]));
  assert.equal(initial.size, N);

  const m0 = await metrics(suite.srv);
  const u = await api('POST', '/api/cell/updateMany', { filter: {}, _atomics: { v: { increment: 1 } } });
  const m1 = await metrics(suite.srv);
  expectStatus(u, 200);
  assert.deepEqual(u.body, { count: N });
  assert.equal(m1.tally_writes_total - m0.tally_writes_total, 1, 'the updateMany is one write');

  // nothing is left at the old lowest value, and every row moved by exactly one
  const none = await api('GET', `/api/cell?filter=${encodeURIComponent(JSON.stringify({ v: { equals: 0 } }))}&first=10`);
  expectStatus(none, 200);
  assert.deepEqual(none.body.records, []);
  const listed = (await findAll(api, 'cell', { first: 1000 })).records;
  assert.equal(listed.length, N);
  let bad = 0;
  for (const r of listed) if (r.v !== initial.get(r.id) + 1) bad++;
  assert.equal(bad, 0, `${bad} rows not incremented by exactly one`);

  // a decrement of 5 would take every row now at 1..4 below min 0: 4 of every 10 rows
  const m2 = await metrics(suite.srv);
  const x = await api('POST', '/api/cell/updateMany', { filter: {}, _atomics: { v: { decrement: 5 } } });
  expectError(x, 422, 'INVARIANT');
  assert.match(x.body.error.message, /\b40,?000 matching rows would cross/, x.text);
  const after = (await findAll(api, 'cell', { first: 1000 })).records;
  assert.deepEqual(after, listed, 'no row changed (values and updatedAt)');
  const m3 = await metrics(suite.srv);
  assert.ok(m3.tally_writes_total - m2.tally_writes_total <= 1);

  // a filtered updateMany over part of the big table
  const g3 = made.filter((r) => r.grp === 3).length;
  const f = await api('POST', '/api/cell/updateMany', { filter: { grp: { equals: 3 } }, set: { grp: 30 }, _atomics: { v: { increment: 100 } } });
  expectStatus(f, 200);
  assert.deepEqual(f.body, { count: g3 });
  const left = await api('POST', '/api/cell/find', { filter: { OR: [{ grp: { equals: 3 } }, { grp: { equals: 30 }, v: { lessThan: 101 } }] }, first: 5 });
  expectStatus(left, 200);
  assert.deepEqual(left.body.records, []);
});

// ---------- deleteMany ----------

test('deleteMany with a filter deletes exactly the matching rows (unset values by the two-valued rules) and answers the count', async () => {
  const made = [];
  for (let i = 0; i < 30; i++) made.push(await create('tagged', { tag: ['a', 'b', 'c'][i % 3], n: i % 4 === 0 ? null : i % 4 }));
  const d = await api('POST', '/api/tagged/deleteMany', { filter: { tag: { equals: 'a' } } });
  expectStatus(d, 200);
  assert.deepEqual(d.body, { count: 10 });
  let left = await all('tagged');
  assert.equal(left.length, 20);
  assert.ok(left.every((r) => r.tag !== 'a'));
  // NOT(n equals 1) also takes the rows where n is unset
  const want = left.filter((r) => r.tag === 'b' && r.n !== 1).map((r) => r.id);
  assert.ok(left.some((r) => r.tag === 'b' && r.n === null));
  const d2 = await api('POST', '/api/tagged/deleteMany', { filter: { tag: { equals: 'b' }, NOT: { n: { equals: 1 } } } });
  expectStatus(d2, 200);
  assert.deepEqual(d2.body, { count: want.length });
  left = await all('tagged');
  for (const id of want) assert.ok(!left.some((r) => r.id === id), `row ${id} deleted`);
  assert.equal(left.length, 20 - want.length);
  // nothing matches: count 0
  const d3 = await api('POST', '/api/tagged/deleteMany', { filter: { n: { greaterThan: 100 } } });
  expectStatus(d3, 200);
  assert.deepEqual(d3.body, { count: 0 });
  assert.equal((await all('tagged')).length, left.length);
  for (const r of made.filter((x) => want.includes(x.id))) expectError(await api('GET', `/api/tagged/${r.id}`), 404, 'NOT_FOUND');
});

test('deleteMany without a filter is refused and deletes nothing; {"filter": {}} deletes every row; ids are not reused', async () => {
  const made = [];
  for (let i = 0; i < 5; i++) made.push(await create('tagged', { tag: 'keep', n: i }));
  const snapshot = await all('tagged');
  assert.ok(snapshot.length >= 5);
  const refusals = [
    [{}, 'filter'],
    [{ filter: null }, 'filter'],
    [{ filter: 'all' }, 'filter'],
    [{ filter: [] }, 'filter'],
    [{ where: {} }, undefined],
    [{ filter: { nope: { equals: 1 } } }, 'filter.nope'],
    [{ filter: { tag: { bigger: 'a' } } }, 'filter.tag.bigger'],
  ];
  const wrong = [];
  for (const [body, p] of refusals) {
    const r = await api('POST', '/api/tagged/deleteMany', body);
    try { expectError(r, 400, 'BAD_REQUEST', p); } catch (e) { wrong.push(`${JSON.stringify(body)}: ${e.message.split('\n')[0]}`); }
  }
  for (const raw of ['', 'null', '[]', 'not json']) {
    const r = await api('POST', '/api/tagged/deleteMany', raw);
    try { expectError(r, 400, 'BAD_REQUEST'); } catch (e) { wrong.push(`body ${JSON.stringify(raw)}: ${e.message.split('\n')[0]}`); }
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(await all('tagged'), snapshot, 'nothing was deleted');

  const maxId = Math.max(...snapshot.map((r) => r.id));
  const d = await api('POST', '/api/tagged/deleteMany', { filter: {} });
  expectStatus(d, 200);
  assert.deepEqual(d.body, { count: snapshot.length });
  assert.deepEqual(await all('tagged'), []);
  const again = await api('POST', '/api/tagged/deleteMany', { filter: {} });
  expectStatus(again, 200);
  assert.deepEqual(again.body, { count: 0 });
  const fresh = await create('tagged', { tag: 'new' });
  assert.ok(fresh.id > maxId, `a new row gets a new id (${fresh.id} > ${maxId})`);
  expectError(await api('POST', '/api/nomodel/deleteMany', { filter: {} }), 404, 'NOT_FOUND');
});

test('deleteMany is all or nothing: a row still linked by a restrict reference makes it a 409 CONFLICT and nothing is deleted', async () => {
  const evs = [];
  for (let i = 0; i < 3; i++) evs.push(await create('event', { soldTicketCount: 100 + i }));
  const mine = { id: { in: evs.map((e) => e.id) } };
  await create('ticket', { event: evs[1].id });
  const snapshot = await all('event', mine);
  const d = await api('POST', '/api/event/deleteMany', { filter: mine });
  expectError(d, 409, 'CONFLICT');
  assert.deepEqual(await all('event', mine), snapshot, 'no event was deleted');
  const d2 = await api('POST', '/api/event/deleteMany', { filter: { ...mine, id: { in: evs.map((e) => e.id), notEquals: evs[1].id } } });
  expectStatus(d2, 200);
  assert.deepEqual(d2.body, { count: 2 });
  assert.deepEqual((await all('event', mine)).map((e) => e.id), [evs[1].id]);
});
