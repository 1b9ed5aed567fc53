// Locks with fencing (README.md, "Locks, rate limits and safe retries"):
// mutual exclusion under contention, first-come-first-served waiters that do
// not hold a server thread, lease expiry and takeover (the old holder's
// renew, release and checkLock are refused and change nothing), fences that
// keep growing across restarts, lock names, and bad input.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fileServer, expectError, expectStatus, parallel, sleep, RFC3339_MS_UTC,
} from './lib/server.mjs';
import {
  headerConnections, closeAll, lockPath, lockTable, acquire, release, HEX32,
} from './lib/primitives.mjs';
import { recordHelpers } from './lib/records.mjs';

const suite = fileServer();
const { api } = suite;
const { create, byName } = recordHelpers(() => api);

function fencedTxn(customerId, name, token, marker) {
  return {
    steps: [
      { update: 'customer', id: customerId, data: { _atomics: { orderCount: { increment: 1 } } } },
      { as: 'guard', checkLock: name, token },
      { create: 'customer', data: { name: marker } },
    ],
  };
}

describe('the basic calls', () => {
  test('acquire, a second acquire is LOCKED, GET /api/locks shows the holder without its token, renew, release', async () => {
    const name = 'basic-job';
    const t0 = Date.now();
    const a = await acquire(api, name, { ttlMs: 30000 });
    assert.match(a.token, HEX32, `token ${a.token}`);
    assert.ok(Number.isSafeInteger(a.fence) && a.fence >= 1, `fence ${a.fence}`);
    assert.match(a.expiresAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/, `expiresAt ${a.expiresAt}`);
    const exp = Date.parse(a.expiresAt);
    assert.ok(exp >= t0 + 29000 && exp <= Date.now() + 31000, `expiresAt ${a.expiresAt} is not about 30 s from now`);

    const b = await api('POST', lockPath(name, 'acquire'), { ttlMs: 1000 });
    expectError(b, 409, 'LOCKED');
    assert.equal(b.body.error.expiresAt, a.expiresAt, 'LOCKED carries the current lease\'s expiresAt');
    assert.equal(b.body.token, undefined);
    assert.ok(!b.text.includes(a.token), 'the LOCKED answer must not reveal the holder\'s token');

    const { map, text } = await lockTable(api);
    assert.deepEqual(map.get(name), { name, fence: a.fence, expiresAt: a.expiresAt });
    assert.ok(!text.includes(a.token), `GET /api/locks reveals a token: ${text}`);

    const rn = await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 60000 });
    expectStatus(rn, 200);
    assert.equal(rn.body.fence, a.fence, 'renew keeps the fence');
    assert.ok(Date.parse(rn.body.expiresAt) > exp + 20000, `renewed expiresAt ${rn.body.expiresAt} vs ${a.expiresAt}`);
    assert.equal((await lockTable(api)).map.get(name).expiresAt, rn.body.expiresAt);

    const rl = await api('POST', lockPath(name, 'release'), { token: a.token });
    expectStatus(rl, 200);
    assert.deepEqual(rl.body, { released: true, fence: a.fence });
    assert.equal((await lockTable(api)).map.has(name), false, 'a released lock is not listed');

    // released: the token is dead
    expectError(await api('POST', lockPath(name, 'release'), { token: a.token }), 409, 'LOCK_LOST');
    expectError(await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 1000 }), 409, 'LOCK_LOST');
    assert.equal((await lockTable(api)).map.has(name), false, 'a refused renew must not bring the lock back');

    const c = await acquire(api, name, { ttlMs: 1000 });
    assert.equal(c.fence, a.fence + 1, 'the next grant has the next fence');
    assert.notEqual(c.token, a.token, 'every grant has a new token');
    await release(api, name, c.token);
  });

  test('a grant of another name does not advance this name\'s fence', async () => {
    const a = await acquire(api, 'fence-own', { ttlMs: 5000 });
    await release(api, 'fence-own', a.token);
    for (let i = 0; i < 3; i++) {
      const o = await acquire(api, 'fence-other', { ttlMs: 5000 });
      await release(api, 'fence-other', o.token);
    }
    const b = await acquire(api, 'fence-own', { ttlMs: 5000 });
    assert.equal(b.fence, a.fence + 1);
    await release(api, 'fence-own', b.token);
  });

  test('checkLock in a transaction passes for the holder, with {fence, expiresAt} as its result', async () => {
    const name = 'txn-guard';
    const c = await create('customer', { name: 'txn-guard counter' });
    const a = await acquire(api, name, { ttlMs: 30000 });
    const r = await api('POST', '/api/transaction', fencedTxn(c.id, name, a.token, 'txn-guard ok'));
    expectStatus(r, 200);
    assert.equal(r.body.results.length, 3);
    assert.equal(r.body.results[1].fence, a.fence);
    assert.equal(r.body.results[1].expiresAt, a.expiresAt);
    assert.equal(r.body.results[0].orderCount, 1);
    assert.equal((await byName('customer', 'txn-guard ok')).length, 1);
    await release(api, name, a.token);
  });
});

describe('contention', () => {
  test('mutual exclusion: 10 workers x 5 grants with waitMs: never two holders, no lost update, 50 increasing fences', async () => {
    const name = 'mutex';
    const WORKERS = 10;
    const EACH = 5;
    const counter = await create('customer', { name: 'mutex counter', orderCount: 0 });
    const conns = await headerConnections(suite.srv, WORKERS);
    let holders = 0;
    let maxHolders = 0;
    const overlaps = [];
    const problems = [];
    const grants = []; // fences in the order the grants arrived
    try {
      await parallel(WORKERS, async (w) => {
        const conn = conns[w];
        for (let i = 0; i < EACH; i++) {
          let g;
          for (let attempt = 0; attempt < 5 && !g; attempt++) {
            const r = await conn.send('POST', lockPath(name, 'acquire'), { ttlMs: 20000, waitMs: 20000 });
            if (r.status === 200) g = r.body;
            else problems.push(`worker ${w} acquire: ${r.status} ${r.text}`);
          }
          if (!g) return;
          holders++;
          maxHolders = Math.max(maxHolders, holders);
          if (holders !== 1) overlaps.push(`worker ${w} got fence ${g.fence} while ${holders - 1} other(s) held the lock`);
          grants.push(g.fence);
          // read-then-write: loses updates unless the lock really excludes
          const cur = await conn.send('GET', `/api/customer/${counter.id}`);
          if (cur.status !== 200) problems.push(`GET: ${cur.status} ${cur.text}`);
          await sleep(20);
          const up = await conn.send('PATCH', `/api/customer/${counter.id}`, { orderCount: cur.body.orderCount + 1 });
          if (up.status !== 200) problems.push(`PATCH: ${up.status} ${up.text}`);
          holders--; // no longer acting as the holder once we decide to release
          const rl = await conn.send('POST', lockPath(name, 'release'), { token: g.token });
          if (rl.status !== 200 || rl.body.fence !== g.fence) problems.push(`worker ${w} release: ${rl.status} ${rl.text}`);
        }
      });
    } finally {
      closeAll(conns);
    }
    assert.deepEqual(problems.slice(0, 5), [], `${problems.length} calls failed`);
    assert.deepEqual(overlaps.slice(0, 5), [], 'two holders at once');
    assert.equal(maxHolders, 1);
    assert.equal(grants.length, WORKERS * EACH);
    assert.equal(new Set(grants).size, WORKERS * EACH, `fences are not distinct: ${grants}`);
    for (let i = 1; i < grants.length; i++) {
      assert.equal(grants[i], grants[i - 1] + 1, `fences in grant order must grow by one: ${grants.join(',')}`);
    }
    const g = await api('GET', `/api/customer/${counter.id}`);
    expectStatus(g, 200);
    assert.equal(g.body.orderCount, WORKERS * EACH, 'an update was lost: the lock did not exclude');
    assert.equal((await lockTable(api)).map.has(name), false, 'every grant was released');
  });

  test('waiters are served first come, first served, one at a time', async () => {
    const name = 'fifo';
    const a = await acquire(api, name, { ttlMs: 30000 });
    const conns = await headerConnections(suite.srv, 3);
    const order = [];
    try {
      const waits = conns.map((c, i) => ({ i, done: false, r: null }));
      const start = (w) => {
        w.p = conns[w.i].send('POST', lockPath(name, 'acquire'), { ttlMs: 30000, waitMs: 15000 })
          .then((r) => { w.done = true; w.r = r; order.push(w.i); return r; });
      };
      for (const w of waits) { start(w); await sleep(150); } // B, then C, then D queue up
      assert.deepEqual(waits.map((w) => w.done), [false, false, false], 'nobody may be granted a held lock');

      await release(api, name, a.token);
      const b = await waits[0].p;
      expectStatus(b, 200);
      assert.equal(b.body.fence, a.fence + 1);
      await sleep(200);
      assert.deepEqual(waits.map((w) => w.done), [true, false, false], 'the others keep waiting while B holds it');

      await release(api, name, b.body.token);
      const c = await waits[1].p;
      expectStatus(c, 200);
      assert.equal(c.body.fence, a.fence + 2);
      await sleep(200);
      assert.equal(waits[2].done, false);

      await release(api, name, c.body.token);
      const d = await waits[2].p;
      expectStatus(d, 200);
      assert.equal(d.body.fence, a.fence + 3);
      assert.deepEqual(order, [0, 1, 2], 'granted in the order they asked');
      await release(api, name, d.body.token);
    } finally {
      closeAll(conns);
    }
  });

  test('64 waiters do not hold server threads: other calls are answered meanwhile; the waiters time out with LOCKED', async () => {
    const name = 'crowd';
    const a = await acquire(api, name, { ttlMs: 60000 });
    const N = 64;
    const conns = await headerConnections(suite.srv, N);
    try {
      const t0 = Date.now();
      let answered = 0;
      const waiters = conns.map((c) => c.send('POST', lockPath(name, 'acquire'), { ttlMs: 1000, waitMs: 4000 })
        .then((r) => { answered++; return r; }));
      await sleep(200);
      // the server still does other work, writes included
      const c = await create('customer', { name: 'while waiting' });
      await parallel(10, async () => {
        expectStatus(await api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } }), 200);
      });
      expectStatus(await api('GET', `/api/customer/${c.id}`), 200);
      const other = await acquire(api, 'crowd-other', { ttlMs: 1000 });
      await release(api, 'crowd-other', other.token);
      assert.equal((await lockTable(api)).map.get(name).fence, a.fence);
      assert.equal(answered, 0, 'a waiter was answered before its waitMs passed while the lock was held');

      const rs = await Promise.all(waiters);
      const elapsed = Date.now() - t0;
      for (const r of rs) expectError(r, 409, 'LOCKED');
      assert.ok(elapsed >= 3900, `waiters were refused after ${elapsed} ms, before their waitMs of 4000`);
      assert.equal((await lockTable(api)).map.get(name).fence, a.fence, 'nobody else was granted the lock');
      expectStatus(await api('POST', '/api/transaction', { steps: [{ checkLock: name, token: a.token }] }), 200);
    } finally {
      closeAll(conns);
    }
    await release(api, name, a.token);
  });
  test('every waiter that times out gets LOCKED with the current lease\'s expiresAt', async () => {
    const name = 'timeouts';
    const a = await acquire(api, name, { ttlMs: 60000 });
    const conns = await headerConnections(suite.srv, 3);
    try {
      const rs = await Promise.all(conns.map((c) => c.send('POST', lockPath(name, 'acquire'), { ttlMs: 1000, waitMs: 300 })));
      const bad = [];
      for (const [i, r] of rs.entries()) {
        expectError(r, 409, 'LOCKED');
        if (r.body.error.expiresAt !== a.expiresAt) bad.push(`waiter ${i}: ${r.text}`);
      }
      assert.deepEqual(bad, [], `holder's expiresAt is ${a.expiresAt}`);
    } finally {
      closeAll(conns);
    }
    await release(api, name, a.token);
  });
});

describe('leases', () => {
  test('when leases end, waiters are served one at a time in arrival order (one lease each)', async () => {
    const name = 'lease-chain';
    const a = await acquire(api, name, { ttlMs: 300 });
    // three waiters, arriving in a known order, each holding for 300 ms and never releasing
    const answers = [];
    const waits = [];
    for (let k = 0; k < 3; k++) {
      waits.push(api('POST', lockPath(name, 'acquire'), { ttlMs: 300, waitMs: 10000 })
        .then((r) => { answers.push({ k, at: Date.now(), r }); }));
      await sleep(30); // the server sees them in this order
    }
    await Promise.all(waits);
    for (const { k, r } of answers) expectStatus(r, 200, `waiter ${k}`);
    const byArrival = [...answers].sort((x, y) => x.k - y.k);
    assert.deepEqual(byArrival.map((x) => x.r.body.fence), [a.fence + 1, a.fence + 2, a.fence + 3],
      'fences follow arrival order: first come, first served');
    // one at a time: each grant comes after the previous holder's lease ended
    for (let k = 1; k < 3; k++) {
      const prevEnd = Date.parse(byArrival[k - 1].r.body.expiresAt);
      const granted = Date.parse(byArrival[k].r.body.expiresAt) - 300;
      assert.ok(granted >= prevEnd - 5, `waiter ${k} granted at ${granted}, before the lease before it ended at ${prevEnd}`);
    }
  });

  test('a waiter is granted the lock when the holder\'s lease ends; the old holder is then refused', async () => {
    const name = 'lease-wake';
    const t0 = Date.now();
    const a = await acquire(api, name, { ttlMs: 400 });
    const b = await api('POST', lockPath(name, 'acquire'), { ttlMs: 30000, waitMs: 10000 });
    const waited = Date.now() - t0;
    expectStatus(b, 200);
    assert.equal(b.body.fence, a.fence + 1);
    assert.ok(waited >= 390, `granted after ${waited} ms, before the 400 ms lease ended`);
    expectError(await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 30000 }), 409, 'LOCK_LOST');
    expectError(await api('POST', lockPath(name, 'release'), { token: a.token }), 409, 'LOCK_LOST');
    assert.deepEqual((await lockTable(api)).map.get(name), { name, fence: b.body.fence, expiresAt: b.body.expiresAt });
    await release(api, name, b.body.token);
  });

  test('lease expiry and takeover: the old holder\'s renew, release and fenced transaction are refused and change nothing', async () => {
    const name = 'takeover';
    const c = await create('customer', { name: 'takeover counter' });
    const a = await acquire(api, name, { ttlMs: 200 });
    // still held: the fenced transaction works
    const ok = await api('POST', '/api/transaction', fencedTxn(c.id, name, a.token, 'takeover A in time'));
    expectStatus(ok, 200);
    assert.equal(ok.body.results[0].orderCount, 1);
    await sleep(400);

    // expired, nobody has taken it since: the lease is still lost
    const exp1 = await api('POST', '/api/transaction', fencedTxn(c.id, name, a.token, 'takeover A late'));
    expectError(exp1, 409, 'LOCK_LOST');
    assert.equal(exp1.body.error.step, 1, `the error names the checkLock step: ${exp1.text}`);
    expectError(await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 30000 }), 409, 'LOCK_LOST');
    expectError(await api('POST', lockPath(name, 'release'), { token: a.token }), 409, 'LOCK_LOST');

    // B takes it over
    const b = await acquire(api, name, { ttlMs: 30000 });
    assert.equal(b.fence, a.fence + 1, 'the takeover has the next fence');

    const renew = await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 60000 });
    expectError(renew, 409, 'LOCK_LOST');
    const rel = await api('POST', lockPath(name, 'release'), { token: a.token });
    expectError(rel, 409, 'LOCK_LOST');
    const late = await api('POST', '/api/transaction', fencedTxn(c.id, name, a.token, 'takeover A late'));
    expectError(late, 409, 'LOCK_LOST');
    assert.equal(late.body.error.step, 1);

    // nothing changed: B still holds it with the same lease, the other steps were not applied
    assert.deepEqual((await lockTable(api)).map.get(name), { name, fence: b.fence, expiresAt: b.expiresAt });
    const g = await api('GET', `/api/customer/${c.id}`);
    expectStatus(g, 200);
    assert.equal(g.body.orderCount, 1, 'the refused transactions\' update steps must not be applied');
    assert.equal((await byName('customer', 'takeover A late')).length, 0, 'the refused transactions\' create steps must not be applied');
    expectError(await api('POST', lockPath(name, 'acquire'), { ttlMs: 1000 }), 409, 'LOCKED');

    // B is the holder in every respect
    const bt = await api('POST', '/api/transaction', fencedTxn(c.id, name, b.token, 'takeover B'));
    expectStatus(bt, 200);
    assert.equal(bt.body.results[1].fence, b.fence);
    assert.equal(bt.body.results[0].orderCount, 2);
    const br = await api('POST', lockPath(name, 'renew'), { token: b.token, ttlMs: 30000 });
    expectStatus(br, 200);
    assert.equal(br.body.fence, b.fence);
    assert.deepEqual(await release(api, name, b.token), { released: true, fence: b.fence });
  });

  test('GET /api/locks lists current holders only: not a lease whose ttl has passed', async () => {
    const name = 'expired-listing';
    const a = await acquire(api, name, { ttlMs: 200 });
    assert.equal((await lockTable(api)).map.get(name)?.fence, a.fence, 'listed while held');
    await sleep(400);
    expectError(await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 30000 }), 409, 'LOCK_LOST');
    const { map, text } = await lockTable(api);
    assert.equal(map.has(name), false, `an expired lease (expiresAt ${a.expiresAt}) is listed as a holder at ${new Date().toISOString()}: ${text}`);
  });

  test('renew extends the lease: past the first ttl the holder still holds it', async () => {
    const name = 'renewed';
    const a = await acquire(api, name, { ttlMs: 300 });
    const rn = await api('POST', lockPath(name, 'renew'), { token: a.token, ttlMs: 10000 });
    expectStatus(rn, 200);
    await sleep(500);
    expectError(await api('POST', lockPath(name, 'acquire'), { ttlMs: 1000 }), 409, 'LOCKED');
    const t = await api('POST', '/api/transaction', { steps: [{ checkLock: name, token: a.token }] });
    expectStatus(t, 200);
    assert.deepEqual(t.body.results[0], { fence: a.fence, expiresAt: rn.body.expiresAt });
    assert.deepEqual(await release(api, name, a.token), { released: true, fence: a.fence });
  });
});

describe('restarts', () => {
  test('fences keep growing across a restart and a kill -9; a held lease survives a restart', async () => {
    const s1 = await startServer();
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const g = await acquire(s1.api, 'restart-job', { ttlMs: 30000 });
      seen.push(g.fence);
      await release(s1.api, 'restart-job', g.token);
    }
    const held = await acquire(s1.api, 'restart-held', { ttlMs: 120000 });
    assert.deepEqual(seen, [seen[0], seen[0] + 1, seen[0] + 2]);
    assert.equal((await s1.stop()).code, 0);

    const s2 = await startServer({ dataDir: s1.dataDir });
    const g2 = await acquire(s2.api, 'restart-job', { ttlMs: 30000 });
    assert.equal(g2.fence, seen[2] + 1, `after a restart the fence goes on from ${seen[2]}`);
    // the held lease is still held by its token
    assert.deepEqual((await lockTable(s2.api)).map.get('restart-held'), { name: 'restart-held', fence: held.fence, expiresAt: held.expiresAt });
    expectError(await s2.api('POST', lockPath('restart-held', 'acquire'), { ttlMs: 1000 }), 409, 'LOCKED');
    expectStatus(await s2.api('POST', '/api/transaction', { steps: [{ checkLock: 'restart-held', token: held.token }] }), 200);
    // g2 is still held when the server is killed
    await s2.kill9();

    const s3 = await startServer({ dataDir: s1.dataDir });
    expectError(await s3.api('POST', lockPath('restart-job', 'acquire'), { ttlMs: 1000 }), 409, 'LOCKED');
    await release(s3.api, 'restart-job', g2.token);
    const g3 = await acquire(s3.api, 'restart-job', { ttlMs: 30000 });
    assert.equal(g3.fence, g2.fence + 1, 'after kill -9 the fence goes on');
    await release(s3.api, 'restart-held', held.token);
    await s3.stop();
  });
});

describe('names', () => {
  const good = [
    ['an email', 'ada@example.com'],
    ['an IPv6 address', '2001:db8::1'],
    ['non-ASCII', 'ünïcode'],
    ['spaces and punctuation', 'reorder dataset #7 (eu-west)'],
    ['a slash, encoded', 'tenant/42'],
    ['128 bytes of two-byte characters', 'é'.repeat(64)],
    ['128 ASCII bytes', 'n'.repeat(128)],
  ];
  for (const [what, name] of good) {
    test(`a lock name may be ${what}`, async () => {
      const g = await acquire(api, name, { ttlMs: 30000 });
      assert.deepEqual((await lockTable(api)).map.get(name), { name, fence: g.fence, expiresAt: g.expiresAt });
      expectError(await api('POST', lockPath(name, 'acquire'), { ttlMs: 1000 }), 409, 'LOCKED');
      expectStatus(await api('POST', '/api/transaction', { steps: [{ checkLock: name, token: g.token }] }), 200);
      expectStatus(await api('POST', lockPath(name, 'renew'), { token: g.token, ttlMs: 30000 }), 200);
      assert.deepEqual(await release(api, name, g.token), { released: true, fence: g.fence });
    });
  }

  const bad = [
    ['empty', '/api/locks//acquire'],
    ['129 ASCII bytes', lockPath('n'.repeat(129), 'acquire')],
    ['129 bytes of UTF-8', lockPath(`${'é'.repeat(64)}x`, 'acquire')],
    ['a newline', lockPath('a\nb', 'acquire')],
    ['a control character', lockPath('a\u0001b', 'acquire')],
    ['a NUL', lockPath('a\u0000b', 'acquire')],
    ['not UTF-8', '/api/locks/%C3%28/acquire'],
  ];
  for (const [what, p] of bad) {
    test(`a lock name that is ${what} is a 400 and nothing changes`, async () => {
      const before = (await lockTable(api)).text;
      const r = await api('POST', p, { ttlMs: 30000 });
      expectError(r, 400, 'BAD_REQUEST');
      assert.equal((await lockTable(api)).text, before, 'GET /api/locks changed');
    });
  }
});

describe('bad input', () => {
  test('unknown op, bad ttlMs/waitMs, missing token: 400 BAD_REQUEST with a path, and nothing changes', async () => {
    const name = 'bad-input';
    const heldName = 'bad-input-held';
    const first = await acquire(api, name, { ttlMs: 30000 });
    await release(api, name, first.token);
    const held = await acquire(api, heldName, { ttlMs: 60000 });
    const tableBefore = (await lockTable(api)).text;

    const cases = [
      ['unknown op', 'POST', lockPath(name, 'frob'), { ttlMs: 1000 }, undefined],
      ['unknown op on the held lock', 'POST', lockPath(heldName, 'frob'), { token: held.token, ttlMs: 1000 }, undefined],
      ['acquire without ttlMs', 'POST', lockPath(name, 'acquire'), {}, 'ttlMs'],
      ['acquire without ttlMs but waitMs', 'POST', lockPath(name, 'acquire'), { waitMs: 100 }, 'ttlMs'],
      ['negative ttlMs', 'POST', lockPath(name, 'acquire'), { ttlMs: -1 }, 'ttlMs'],
      ['ttlMs 0', 'POST', lockPath(name, 'acquire'), { ttlMs: 0 }, 'ttlMs'],
      ['ttlMs above 86400000', 'POST', lockPath(name, 'acquire'), { ttlMs: 86400001 }, 'ttlMs'],
      ['huge ttlMs', 'POST', lockPath(name, 'acquire'), { ttlMs: 1e300 }, 'ttlMs'],
      ['fractional ttlMs', 'POST', lockPath(name, 'acquire'), { ttlMs: 1.5 }, 'ttlMs'],
      ['ttlMs as a string', 'POST', lockPath(name, 'acquire'), { ttlMs: '1000' }, 'ttlMs'],
      ['null ttlMs', 'POST', lockPath(name, 'acquire'), { ttlMs: null }, 'ttlMs'],
      ['waitMs above 30000', 'POST', lockPath(name, 'acquire'), { ttlMs: 1000, waitMs: 30001 }, 'waitMs'],
      ['negative waitMs', 'POST', lockPath(name, 'acquire'), { ttlMs: 1000, waitMs: -1 }, 'waitMs'],
      ['waitMs as a string', 'POST', lockPath(name, 'acquire'), { ttlMs: 1000, waitMs: '10' }, 'waitMs'],
      ['renew without token', 'POST', lockPath(heldName, 'renew'), { ttlMs: 1000 }, 'token'],
      ['release without token', 'POST', lockPath(heldName, 'release'), {}, 'token'],
      ['renew with a numeric token', 'POST', lockPath(heldName, 'renew'), { token: 12345, ttlMs: 1000 }, 'token'],
      ['renew without ttlMs', 'POST', lockPath(heldName, 'renew'), { token: held.token }, 'ttlMs'],
      ['renew with negative ttlMs', 'POST', lockPath(heldName, 'renew'), { token: held.token, ttlMs: -5 }, 'ttlMs'],
      ['renew with huge ttlMs', 'POST', lockPath(heldName, 'renew'), { token: held.token, ttlMs: 86400001 }, 'ttlMs'],
      ['not JSON', 'POST', lockPath(name, 'acquire'), '{"ttlMs": ', undefined],
      ['an array body', 'POST', lockPath(name, 'acquire'), '[1000]', undefined],
    ];
    const failures = [];
    for (const [what, method, p, body, errPath] of cases) {
      const r = await api(method, p, body);
      try {
        expectError(r, 400, 'BAD_REQUEST', errPath);
      } catch (e) {
        failures.push(`${what}: ${method} ${p} ${typeof body === 'string' ? body : JSON.stringify(body)} -> ${r.status} ${r.text}`);
      }
    }
    assert.deepEqual(failures, [], 'each bad request must be a 400 BAD_REQUEST naming the field');
    // an integer beyond 64 bits: the server's general 422 OVERFLOW is as clear as a 400
    const ov = await api('POST', lockPath(name, 'acquire'), '{"ttlMs": 18446744073709551617}');
    if (ov.status === 422) expectError(ov, 422, 'OVERFLOW', 'ttlMs');
    else expectError(ov, 400, 'BAD_REQUEST', 'ttlMs');

    // nothing changed: same holders and leases, no grant happened, the held token still holds
    assert.equal((await lockTable(api)).text, tableBefore, 'GET /api/locks changed');
    const next = await acquire(api, name, { ttlMs: 1000 });
    assert.equal(next.fence, first.fence + 1, 'a bad request must not use up a fence');
    await release(api, name, next.token);
    expectStatus(await api('POST', '/api/transaction', { steps: [{ checkLock: heldName, token: held.token }] }), 200);
    assert.deepEqual(await release(api, heldName, held.token), { released: true, fence: held.fence });
  });

  test('the limits of ttlMs and waitMs themselves are accepted (1, 86400000, waitMs 0 and 30000)', async () => {
    const name = 'bounds';
    const a = await acquire(api, name, { ttlMs: 86400000, waitMs: 30000 });
    const exp = Date.parse(a.expiresAt);
    assert.ok(exp > Date.now() + 86400000 - 60000, `expiresAt ${a.expiresAt} is not a day away`);
    await release(api, name, a.token);
    const b = await acquire(api, name, { ttlMs: 1, waitMs: 0 });
    assert.equal(b.fence, a.fence + 1);
    await sleep(20);
    expectError(await api('POST', lockPath(name, 'release'), { token: b.token }), 409, 'LOCK_LOST');
  });

  test('a checkLock step with a token that never held the lock fails the transaction and applies nothing', async () => {
    const name = 'forged';
    const c = await create('customer', { name: 'forged counter' });
    const a = await acquire(api, name, { ttlMs: 30000 });
    const forged = a.token.replace(/^./, (ch) => (ch === '0' ? '1' : '0'));
    const r = await api('POST', '/api/transaction', fencedTxn(c.id, name, forged, 'forged create'));
    expectError(r, 409, 'LOCK_LOST');
    assert.equal(r.body.error.step, 1);
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 0);
    assert.equal((await byName('customer', 'forged create')).length, 0);
    const r2 = await api('POST', '/api/transaction', fencedTxn(c.id, 'never-locked', a.token, 'forged create'));
    expectError(r2, 409, 'LOCK_LOST');
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.orderCount, 0);
    await release(api, name, a.token);
  });
});
