// Idempotency-Key on writes (README.md, "Locks, rate limits and safe retries"):
// a repeat with the same key, method, path and body gets the stored answer
// and changes nothing — also when racing, while the first is still in flight,
// and after a restart; another body is 422; keys are scoped by method and
// path; "try again later" answers (429, 409 LOCKED) are not stored; malformed
// keys are 400s.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fileServer, expectError, expectStatus, sleep,
} from './lib/server.mjs';
import {
  headerConnections, closeAll, shopWithLimits, limitPath, lockPath, lockTable, acquire, release,
} from './lib/primitives.mjs';
import { createRecord as create, findByName as byName } from './lib/records.mjs';

const schemaFile = shopWithLimits();
const suite = fileServer({ schema: schemaFile });
const { api } = suite;

let seq = 0;
const newKey = (what = 'k') => `${what}-${process.pid}-${Date.now()}-${++seq}`;
const withKey = (key) => ({ headers: { 'Idempotency-Key': key } });
const INC = { _atomics: { orderCount: { increment: 1 } } };

/** Same status and body as the stored answer. */
function sameAnswer(r, first, what = 'the repeat') {
  assert.equal(r.status, first.status, `${what}: status ${r.status} ${r.text}, first was ${first.status} ${first.text}`);
  assert.deepEqual(r.body, first.body, `${what} must get the stored answer`);
  assert.match(r.headers.get('content-type') || '', /application\/json/);
}

describe('replay', () => {
  test('POST create: a repeat gets the same 201 and record, and creates nothing', async () => {
    const key = newKey('create');
    const name = `idem create ${key}`;
    const first = await api('POST', '/api/customer', { name }, withKey(key));
    expectStatus(first, 201);
    for (let i = 0; i < 3; i++) sameAnswer(await api('POST', '/api/customer', { name }, withKey(key)), first);
    assert.equal((await byName(api, 'customer', name)).length, 1, 'the repeats created records');
    // without a key the same request is a new write, as always
    expectStatus(await api('POST', '/api/customer', { name }), 201);
    assert.equal((await byName(api, 'customer', name)).length, 2);
  });

  test('PATCH increment: a repeat gets the same answer and does not increment again', async () => {
    const c = await create(api, 'customer', { name: 'idem patch' });
    const key = newKey('patch');
    const first = await api('PATCH', `/api/customer/${c.id}`, INC, withKey(key));
    expectStatus(first, 200);
    assert.equal(first.body.orderCount, 1);
    await sleep(5);
    sameAnswer(await api('PATCH', `/api/customer/${c.id}`, INC, withKey(key)), first);
    const g = await api('GET', `/api/customer/${c.id}`);
    assert.equal(g.body.orderCount, 1);
    assert.equal(g.body.updatedAt, first.body.updatedAt, 'the repeat touched the record');
  });

  test('DELETE: a repeat gets the same 200, not a 404', async () => {
    const c = await create(api, 'customer', { name: 'idem delete' });
    const key = newKey('delete');
    const first = await api('DELETE', `/api/customer/${c.id}`, undefined, withKey(key));
    expectStatus(first, 200);
    assert.equal(first.body.id, c.id);
    sameAnswer(await api('DELETE', `/api/customer/${c.id}`, undefined, withKey(key)), first);
    expectError(await api('GET', `/api/customer/${c.id}`), 404, 'NOT_FOUND');
    expectError(await api('DELETE', `/api/customer/${c.id}`, undefined, withKey(newKey('delete2'))), 404, 'NOT_FOUND');
  });

  test('/api/transaction: a repeat gets the same results and applies nothing', async () => {
    const c = await create(api, 'customer', { name: 'idem txn counter' });
    const key = newKey('txn');
    const name = `idem txn ${key}`;
    const body = { steps: [
      { as: 'n', create: 'customer', data: { name } },
      { update: 'customer', id: c.id, data: INC },
    ] };
    const first = await api('POST', '/api/transaction', body, withKey(key));
    expectStatus(first, 200);
    sameAnswer(await api('POST', '/api/transaction', body, withKey(key)), first);
    assert.equal((await byName(api, 'customer', name)).length, 1);
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 1);
  });

  test('a stored 4xx is replayed even after the cause is gone, and the repeat changes nothing', async () => {
    const p = await create(api, 'product', { sku: `IDEM-${process.pid}-${Date.now()}`, stock: 0 });
    const key = newKey('invariant');
    const body = { _atomics: { stock: { decrement: 1 } } };
    const first = await api('PATCH', `/api/product/${p.id}`, body, withKey(key));
    expectError(first, 422, 'INVARIANT');
    expectStatus(await api('PATCH', `/api/product/${p.id}`, { stock: 5 }), 200);
    const again = await api('PATCH', `/api/product/${p.id}`, body, withKey(key));
    sameAnswer(again, first);
    assert.equal((await api('GET', `/api/product/${p.id}`)).body.stock, 5, 'the repeat of a stored failure must not run');
  });

  test('the same key with another body is 422 IDEMPOTENCY_MISMATCH and changes nothing', async () => {
    const key = newKey('mismatch');
    const name = `idem mismatch ${key}`;
    const first = await api('POST', '/api/customer', { name }, withKey(key));
    expectStatus(first, 201);
    const other = await api('POST', '/api/customer', { name: `${name} other` }, withKey(key));
    expectError(other, 422, 'IDEMPOTENCY_MISMATCH');
    assert.equal((await byName(api, 'customer', `${name} other`)).length, 0);
    // and the stored answer is still there for the first body
    sameAnswer(await api('POST', '/api/customer', { name }, withKey(key)), first);

    const c = await create(api, 'customer', { name: 'idem mismatch patch' });
    const k2 = newKey('mismatch-patch');
    expectStatus(await api('PATCH', `/api/customer/${c.id}`, INC, withKey(k2)), 200);
    expectError(await api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 5 } } }, withKey(k2)), 422, 'IDEMPOTENCY_MISMATCH');
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 1);
  });

  test('keys are scoped by method and path: the same key elsewhere is an independent write', async () => {
    const key = newKey('scope');
    const a = await create(api, 'customer', { name: 'idem scope a' });
    const b = await create(api, 'customer', { name: 'idem scope b' });
    const ra = await api('PATCH', `/api/customer/${a.id}`, INC, withKey(key));
    expectStatus(ra, 200);
    const rb = await api('PATCH', `/api/customer/${b.id}`, INC, withKey(key));
    expectStatus(rb, 200);
    assert.equal(rb.body.id, b.id, 'another path must not get the first path\'s answer');
    assert.equal((await api('GET', `/api/customer/${b.id}`)).body.orderCount, 1);
    const rp = await api('POST', '/api/product', { sku: `SCOPE-${key}` }, withKey(key));
    expectStatus(rp, 201);
    assert.equal(rp.body.sku, `SCOPE-${key}`);
    const rd = await api('DELETE', `/api/customer/${a.id}`, undefined, withKey(key));
    expectStatus(rd, 200);
    assert.deepEqual(rd.body, { id: a.id });
    expectError(await api('GET', `/api/customer/${a.id}`), 404, 'NOT_FOUND');
    // each one still replays its own answer
    sameAnswer(await api('PATCH', `/api/customer/${b.id}`, INC, withKey(key)), rb);
    assert.equal((await api('GET', `/api/customer/${b.id}`)).body.orderCount, 1);
  });
});

describe('concurrency', () => {
  test('10 racing PATCH increments with one key: applied once, all get the same answer', async () => {
    const c = await create(api, 'customer', { name: 'idem race patch' });
    const key = newKey('race-patch');
    const conns = await headerConnections(suite.srv, 10);
    let rs;
    try {
      rs = await Promise.all(conns.map((k) => k.send('PATCH', `/api/customer/${c.id}`, INC, { 'Idempotency-Key': key })));
    } finally {
      closeAll(conns);
    }
    for (const r of rs) {
      expectStatus(r, 200);
      assert.deepEqual(r.body, rs[0].body, 'every racer gets the one stored answer');
    }
    assert.equal(rs[0].body.orderCount, 1);
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 1, 'the increment was applied more than once');
  });

  test('10 racing POST creates with one key: one record, every racer gets it', async () => {
    const key = newKey('race-create');
    const name = `idem race create ${key}`;
    const conns = await headerConnections(suite.srv, 10);
    let rs;
    try {
      rs = await Promise.all(conns.map((k) => k.send('POST', '/api/customer', { name }, { 'Idempotency-Key': key })));
    } finally {
      closeAll(conns);
    }
    for (const r of rs) {
      expectStatus(r, 201);
      assert.deepEqual(r.body, rs[0].body);
    }
    const recs = await byName(api, 'customer', name);
    assert.equal(recs.length, 1, `created ${recs.length} records`);
    assert.equal(recs[0].id, rs[0].body.id);
  });

  test('10 racing rate-limit calls with one key take from the limit once', async () => {
    const lk = newKey('race-limit');
    const key = newKey('race-limit-idem');
    const conns = await headerConnections(suite.srv, 10);
    let rs;
    try {
      rs = await Promise.all(conns.map((k) => k.send('POST', limitPath('login', lk), '', { 'Idempotency-Key': key })));
    } finally {
      closeAll(conns);
    }
    for (const r of rs) {
      expectStatus(r, 200);
      assert.deepEqual(r.body, rs[0].body);
    }
    assert.equal(rs[0].body.remaining, 4);
    const next = await api('POST', limitPath('login', lk));
    expectStatus(next, 200);
    assert.equal(next.body.remaining, 3, 'the racing calls took more than one');
  });

  test('a repeat that arrives while the first waits for a lock waits for it and gets the same grant', async () => {
    const name = `idem-wait-${process.pid}`;
    const a = await acquire(api, name, { ttlMs: 30000 });
    const key = newKey('lock-wait');
    const body = { ttlMs: 30000, waitMs: 10000 };
    const conns = await headerConnections(suite.srv, 2);
    try {
      let done = 0;
      const p1 = conns[0].send('POST', lockPath(name, 'acquire'), body, { 'Idempotency-Key': key }).then((r) => { done++; return r; });
      await sleep(150);
      const p2 = conns[1].send('POST', lockPath(name, 'acquire'), body, { 'Idempotency-Key': key }).then((r) => { done++; return r; });
      await sleep(150);
      assert.equal(done, 0, 'neither may be answered while the lock is held');
      await release(api, name, a.token);
      const [r1, r2] = await Promise.all([p1, p2]);
      expectStatus(r1, 200);
      sameAnswer(r2, r1, 'the in-flight repeat');
      assert.equal(r1.body.fence, a.fence + 1);
      // one grant only: the lock is held by r1's token and the next fence is +2
      assert.equal((await lockTable(api)).map.get(name).fence, a.fence + 1);
      await release(api, name, r1.body.token);
      const n = await acquire(api, name, { ttlMs: 1000 });
      assert.equal(n.fence, a.fence + 2, 'the repeat made a grant of its own');
      await release(api, name, n.token);
    } finally {
      closeAll(conns);
    }
  });
});

describe('answers that are not stored', () => {
  test('409 LOCKED is not stored: the retry with the same key runs again and is granted; then that grant is replayed', async () => {
    const name = `idem-locked-${process.pid}`;
    const a = await acquire(api, name, { ttlMs: 30000 });
    const key = newKey('locked');
    const body = { ttlMs: 30000 };
    expectError(await api('POST', lockPath(name, 'acquire'), body, withKey(key)), 409, 'LOCKED');
    await release(api, name, a.token);
    const g = await api('POST', lockPath(name, 'acquire'), body, withKey(key));
    expectStatus(g, 200);
    assert.equal(g.body.fence, a.fence + 1);
    sameAnswer(await api('POST', lockPath(name, 'acquire'), body, withKey(key)), g);
    assert.equal((await lockTable(api)).map.get(name).fence, a.fence + 1, 'the replay must not grant again');
    assert.deepEqual(await release(api, name, g.body.token), { released: true, fence: g.body.fence });
    // a replayed release answer
    const rk = newKey('release');
    const b = await acquire(api, name, { ttlMs: 30000 });
    const r1 = await api('POST', lockPath(name, 'release'), { token: b.token }, withKey(rk));
    expectStatus(r1, 200);
    sameAnswer(await api('POST', lockPath(name, 'release'), { token: b.token }, withKey(rk)), r1, 'a repeated release');
  });

  test('429 is not stored: the retry with the same key runs again once the limit allows; then it is replayed', async () => {
    const lk = newKey('limited');
    const key = newKey('limited-idem');
    expectStatus(await api('POST', limitPath('slow', lk), { cost: 5 }), 200);
    const refused = await api('POST', limitPath('slow', lk), '', withKey(key));
    expectError(refused, 429, 'RATE_LIMITED');
    await sleep(refused.body.retryAfterMs + 30);
    const ok = await api('POST', limitPath('slow', lk), '', withKey(key));
    expectStatus(ok, 200);
    assert.equal(ok.body.allowed, true);
    assert.equal(ok.body.remaining, 0);
    sameAnswer(await api('POST', limitPath('slow', lk), '', withKey(key)), ok);
    // the replay took nothing: the next call is refused (one more is due only T = 500 ms later)
    expectError(await api('POST', limitPath('slow', lk)), 429, 'RATE_LIMITED');
  });
});

describe('restarts', () => {
  test('stored answers survive a restart and a kill -9: repeats still get them and change nothing', async () => {
    const s1 = await startServer({ schema: schemaFile });
    const c = await create(s1.api, 'customer', { name: 'idem restart counter' });
    const kCreate = newKey('restart-create');
    const kPatch = newKey('restart-patch');
    const name = `idem restart ${kCreate}`;
    const created = await s1.api('POST', '/api/customer', { name }, withKey(kCreate));
    expectStatus(created, 201);
    const patched = await s1.api('PATCH', `/api/customer/${c.id}`, INC, withKey(kPatch));
    expectStatus(patched, 200);
    assert.equal((await s1.stop()).code, 0);

    const s2 = await startServer({ schema: schemaFile, dataDir: s1.dataDir });
    sameAnswer(await s2.api('POST', '/api/customer', { name }, withKey(kCreate)), created, 'after a restart');
    sameAnswer(await s2.api('PATCH', `/api/customer/${c.id}`, INC, withKey(kPatch)), patched, 'after a restart');
    expectError(await s2.api('POST', '/api/customer', { name: `${name} other` }, withKey(kCreate)), 422, 'IDEMPOTENCY_MISMATCH');
    assert.equal((await byName(s2.api, 'customer', name)).length, 1);
    assert.equal((await s2.api('GET', `/api/customer/${c.id}`)).body.orderCount, 1);
    const kAfter = newKey('restart-kill');
    const third = await s2.api('PATCH', `/api/customer/${c.id}`, INC, withKey(kAfter));
    expectStatus(third, 200);
    assert.equal(third.body.orderCount, 2);
    await s2.kill9();

    const s3 = await startServer({ schema: schemaFile, dataDir: s1.dataDir });
    sameAnswer(await s3.api('PATCH', `/api/customer/${c.id}`, INC, withKey(kAfter)), third, 'after kill -9');
    sameAnswer(await s3.api('PATCH', `/api/customer/${c.id}`, INC, withKey(kPatch)), patched, 'after two restarts');
    assert.equal((await s3.api('GET', `/api/customer/${c.id}`)).body.orderCount, 2);
    await s3.stop();
  });
});

describe('malformed keys', () => {
  test('empty, over 255 characters, spaces or control characters: 400, nothing written', async () => {
    const name = `idem malformed ${process.pid}`;
    const viaFetch = [
      ['empty', ''],
      ['256 characters', 'k'.repeat(256)],
      ['a space inside', 'two words'],
      ['1000 characters', 'x'.repeat(1000)],
    ];
    const failures = [];
    for (const [what, key] of viaFetch) {
      const r = await api('POST', '/api/customer', { name }, withKey(key));
      try { expectError(r, 400, 'BAD_REQUEST'); } catch { failures.push(`${what}: ${r.status} ${r.text}`); }
    }
    // bytes fetch will not send, on raw connections. The HTTP layer may refuse
    // a control character in a header before routing (plain-text 400, then it
    // closes the connection): the status is what counts there.
    for (const [what, key] of [['a control character', 'ab\u0001cd'], ['a tab inside', 'ab\tcd'], ['DEL', 'ab\u007fcd']]) {
      const [conn] = await headerConnections(suite.srv, 1);
      try {
        const r = await conn.send('POST', '/api/customer', { name }, { 'Idempotency-Key': key });
        if (r.status !== 400) failures.push(`${what}: ${r.status} ${r.text}`);
        else if (/application\/json/.test(r.headers.get('content-type') || '')) {
          try { expectError(r, 400, 'BAD_REQUEST'); } catch { failures.push(`${what}: ${r.status} ${r.text}`); }
        }
      } finally {
        conn.close();
      }
    }
    assert.deepEqual(failures, [], 'each malformed key must be a 400 BAD_REQUEST');
    assert.equal((await byName(api, 'customer', name)).length, 0, 'a request with a malformed key was applied');
    // also on a lock and a limit: nothing granted, nothing taken
    const lname = `idem-malformed-${process.pid}`;
    const f = await acquire(api, lname, { ttlMs: 1000 });
    await release(api, lname, f.token);
    expectError(await api('POST', lockPath(lname, 'acquire'), { ttlMs: 1000 }, withKey('a b')), 400, 'BAD_REQUEST');
    assert.equal((await lockTable(api)).map.has(lname), false);
    const g = await acquire(api, lname, { ttlMs: 1000 });
    assert.equal(g.fence, f.fence + 1, 'the refused acquire used a fence');
    await release(api, lname, g.token);
    const lk = newKey('malformed-limit');
    expectError(await api('POST', limitPath('login', lk), '', withKey('k'.repeat(256))), 400, 'BAD_REQUEST');
    assert.equal((await api('POST', limitPath('login', lk))).body.remaining, 4, 'the refused call took from the limit');
  });

  test('a 255-character key of visible ASCII is fine', async () => {
    const key = `${'!~'.repeat(127)}Z`;
    assert.equal(key.length, 255);
    const name = `idem 255 ${process.pid}`;
    const first = await api('POST', '/api/customer', { name }, withKey(key));
    expectStatus(first, 201);
    sameAnswer(await api('POST', '/api/customer', { name }, withKey(key)), first);
    assert.equal((await byName(api, 'customer', name)).length, 1);
  });
});
