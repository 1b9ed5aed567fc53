// @tally/client (clients/js) against a real server: records and their
// errors as typed classes, listing by cursor, bulk calls and upserts, batch
// transactions with references and expect, interactive transactions
// (commit, rollback, the server's rollbacks as errors, the timeout, retries
// after CONFLICT), locks and withLock, keys, and the Idempotency-Key that
// every write carries, seen through a proxy that loses an answer.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test, describe, after } from 'node:test';
import { BACKEND, fileServer, parallel, shopPlus, sleep, startServer, stopAll } from './lib/server.mjs';
import { createKey, within } from './lib/auth.mjs';
import { connect, tally } from './lib/client.mjs';

const {
  TallyError, NotFound, ValidationError, UniqueViolation, BadRequest, Conflict, InvariantViolation, GuardFailed,
  ExpectationFailed, Locked, LockLost, TransactionTimedOut, Unauthorized, Forbidden, NetworkError, createClient,
} = tally;

const SCHEMA = shopPlus({ counter: { fields: { n: { type: 'integer', default: 0 } } } });
const suite = fileServer({ schema: SCHEMA });
after(stopAll);
let db;
const client = () => (db ??= connect(suite.srv));
let unique = 0;
const tag = (s) => `${s}-${process.pid}-${++unique}`;

describe('records', () => {
  test('errors are typed by code, with status, path and the server message', async () => {
    const db = client();
    const check = async (promise, Class, status, path) => {
      await assert.rejects(promise, (e) => {
        assert.ok(e instanceof Class, `expected ${Class.name}, got ${e.name}: ${e.message}`);
        assert.ok(e instanceof TallyError);
        assert.equal(e.status, status);
        if (path !== undefined) assert.equal(e.path, path);
        assert.ok(e.message.length > 10, e.message);
        return true;
      });
    };
    await check(db.customer.get(999999), NotFound, 404);
    await check(db.customer.create({ email: tag('x') + '@x' }), ValidationError, 422, 'name');
    const email = tag('dup') + '@x';
    await db.customer.create({ name: 'A', email });
    await check(db.customer.create({ name: 'B', email }), UniqueViolation, 409);
    await check(db.customer.create({ name: 'C', nickname: 'c' }), BadRequest, 400);
    await check(db.nosuchmodel.create({}), NotFound, 404);
    const p = await db.product.create({ sku: tag('sku'), stock: 1 });
    await check(db.product.update(p.id, { _atomics: { stock: { decrement: 2 } } }), InvariantViolation, 422, '_atomics.stock');
    await check(db.product.whereId(p.id).increment('sku'), ValidationError, 422);
    const ev = await db.event.create({});
    await db.ticket.create({ event: ev.id });
    await check(db.event.delete(ev.id), Conflict, 409);
    assert.equal((await db.product.get(p.id)).stock, 1, 'nothing changed by the refusals');
  });

  test('bad arguments are refused before any request, saying what to give', () => {
    const db = client();
    assert.throws(() => db.product.where('stock', '=>', 1), /operator is one of/);
    assert.throws(() => db.product.whereId('7'), /positive integer/);
    assert.throws(() => db.product.whereId(1).increment('stock', 'two'), /takes a number/);
    assert.throws(() => db.product.deleteMany({}), /needs a filter/);
    assert.throws(() => createClient({ url: 'localhost:8080' }), /http or https/);
  });

  test('create, get, update with _where, delete; update answers the record after', async () => {
    const db = client();
    const p = await db.product.create({ sku: tag('apple'), stock: 10 });
    assert.equal(p.stock, 10);
    assert.equal((await db.product.get(p.id)).sku, p.sku);
    const r = await db.product.update(p.id, { _atomics: { stock: [{ increment: 5 }, { decrement: 2 }] } });
    assert.equal(r.stock, 13);
    const g = await db.product.update(p.id, { _where: { stock: { greaterThanOrEqual: 20 } }, _atomics: { stock: { decrement: 20 } } })
      .catch((e) => e);
    assert.ok(g instanceof GuardFailed);
    assert.equal(g.current.stock, 13, 'the refused row as it stood');
    const h = await db.product.update(p.id, { _atomics: { stock: { decrement: 3 } } }, { where: { stock: { greaterThan: 2 } } });
    assert.equal(h.stock, 10);
    assert.equal(await db.product.whereId(p.id).where({ stock: { equals: 10 } }).increment('stock'), 11);
    assert.deepEqual(await db.product.delete(p.id), { id: p.id });
    await assert.rejects(db.product.get(p.id), NotFound);
  });

  test('list is every record once, in sort order, fetched page by page with cursors', async () => {
    const db = client();
    const prefix = tag('list');
    await parallel(23, (i) => db.product.create({ sku: `${prefix}-${String(i).padStart(2, '0')}`, stock: i % 7 }));
    const filter = { sku: { in: Array.from({ length: 23 }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`) } };
    const seen = [];
    for await (const p of db.product.list({ filter, sort: [{ stock: 'descending' }, { sku: 'ascending' }], pageSize: 5 })) seen.push(p);
    assert.equal(seen.length, 23);
    assert.equal(new Set(seen.map((p) => p.id)).size, 23, 'no record twice');
    const key = (p) => [-p.stock, p.sku];
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [key(seen[i - 1]), key(seen[i])];
      assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `order at ${i}`);
    }
    const pages = [];
    for await (const page of db.product.where(filter).list({ pageSize: 5 }).pages()) pages.push(page.records.length);
    assert.deepEqual(pages, [5, 5, 5, 5, 3]);
    const first = await db.product.find({ filter, first: 10 });
    assert.equal(first.records.length, 10);
    assert.equal(typeof first.next, 'string');
    const second = await db.product.find({ filter, first: 20, after: first.next });
    assert.equal(second.records.length, 13);
    assert.equal(second.next, null);
  });

  test('updateMany, incrementMany, deleteMany answer counts; upsert says whether it created', async () => {
    const db = client();
    const a = tag('bulk-a');
    const b = tag('bulk-b');
    await db.product.create({ sku: a, stock: 1 });
    await db.product.create({ sku: b, stock: 9 });
    assert.equal(await db.product.where({ sku: { in: [a, b] } }).incrementMany('stock', 5), 2);
    assert.equal(await db.product.updateMany({ filter: { sku: { in: [a, b] } }, _atomics: { stock: { decrement: 1 } } }), 2);
    await assert.rejects(db.product.where({ sku: { in: [a, b] } }).decrementMany('stock', 6), InvariantViolation,
      'all or nothing: the row with 5 would go below 0');
    assert.deepEqual((await db.product.where({ sku: { in: [a, b] } }).list({ sort: { sku: 'ascending' } }).toArray()).map((p) => p.stock), [5, 13]);
    assert.equal(await db.product.where('stock', '>=', 10).where({ sku: { in: [a, b] } }).decrementMany('stock', 10), 1,
      'a guarded reservation: only rows with enough');
    const up = (n) => db.product.upsert({ on: 'sku', create: { sku: `${a}-up`, stock: n }, update: { _atomics: { stock: { increment: n } } } });
    assert.deepEqual([(await up(2)).created, (await up(3)).created], [true, false]);
    assert.equal((await db.product.where('sku', `${a}-up`).first()).stock, 5);
    assert.equal(await db.product.where({ sku: { in: [a, b, `${a}-up`] } }).deleteMany(), 3);
  });
});

describe('batch transactions', () => {
  test('steps with references apply together; a failed expect applies none', async () => {
    const db = client();
    const course = await db.course.create({ name: tag('c'), maxStudents: 1 });
    const enrol = () => db.batch((b) => {
      b.course.whereId(course.id).increment('slotsTaken').expect({ slotsTaken: { lessThanOrEqual: tally.field('maxStudents') } });
      const p = b.post.create({ title: `enrolled in ${course.id}` }).as('p');
      b.image.create({ url: 'https://x.example/badge.png', post: { _link: p.ref('id') } });
    });
    const r = await enrol();
    assert.equal(r[0], 1, 'the increment step answers the new value');
    assert.equal(r[2].post, r[1].id, 'the image links to the post made in the same batch');
    await assert.rejects(enrol(), (e) => e instanceof ExpectationFailed && e.step === 0);
    assert.equal((await db.course.get(course.id)).slotsTaken, 1);
    assert.equal((await db.post.where('title', `enrolled in ${course.id}`).list().toArray()).length, 1, 'the refused batch left no post');
    const raw = await db.batch([{ get: 'course', id: course.id }]);
    assert.equal(raw[0].id, course.id, 'steps in their wire form');
  });
});

describe('interactive transactions', () => {
  test('commit on return: the callback\'s value, and every step applied', async () => {
    const db = client();
    const c = await db.counter.create({});
    const out = await db.transaction(async (tx) => {
      const n = await tx.counter.whereId(c.id).increment('n', 2);
      const [x, y, z] = await Promise.all([1, 2, 3].map((i) => tx.product.create({ sku: `${c.id}-tx-${i}` })));
      return { n, ids: [x.id, y.id, z.id], attempt: tx.attempt };
    }, { timeoutMs: 3000 });
    assert.equal(out.n, 2);
    assert.equal(out.attempt, 0);
    assert.equal((await db.counter.get(c.id)).n, 2);
    assert.equal((await db.product.where({ sku: { in: [1, 2, 3].map((i) => `${c.id}-tx-${i}`) } }).list().toArray()).length, 3,
      'calls made at once inside one transaction are sent one after another');
  });

  test('rollback on throw: the callback\'s error comes out and nothing is applied', async () => {
    const db = client();
    const c = await db.counter.create({});
    const mine = new Error('changed my mind');
    await assert.rejects(db.transaction(async (tx) => {
      await tx.counter.whereId(c.id).increment('n');
      throw mine;
    }), (e) => e === mine);
    assert.equal((await db.counter.get(c.id)).n, 0);
  });

  test('a failed step rolls back, and the transaction throws it even if the callback swallowed it', async () => {
    const db = client();
    const c = await db.counter.create({});
    const sku = tag('taken');
    await db.product.create({ sku });
    let caught;
    await assert.rejects(db.transaction(async (tx) => {
      await tx.counter.whereId(c.id).increment('n');
      try { await tx.product.create({ sku }); } catch (e) { caught = e; }
      return 'done anyway';
    }), (e) => e instanceof UniqueViolation && e.rolledBack === true);
    assert.ok(caught instanceof UniqueViolation && caught.rolledBack);
    assert.equal((await db.counter.get(c.id)).n, 0);
    const guarded = await db.transaction(async (tx) => tx.counter.whereId(c.id).where('n', '>', 5).increment('n')).catch((e) => e);
    assert.ok(guarded instanceof GuardFailed && guarded.rolledBack && guarded.current.n === 0);
  });

  test('past timeoutMs the server rolls back: TransactionTimedOut, nothing applied', async () => {
    const db = client();
    const c = await db.counter.create({});
    const t0 = Date.now();
    await assert.rejects(db.transaction(async (tx) => {
      await tx.counter.whereId(c.id).increment('n');
      await sleep(600);
      await tx.counter.whereId(c.id).increment('n');
    }, { timeoutMs: 250 }), (e) => e instanceof TransactionTimedOut && e.rolledBack);
    assert.ok(Date.now() - t0 < 3000);
    assert.equal((await db.counter.get(c.id)).n, 0);
  });

  test('retries: a CONFLICT that rolled back runs the callback again; without retries it is thrown', async () => {
    const db = client();
    const ev = await db.event.create({});
    await db.ticket.create({ event: ev.id });
    const c = await db.counter.create({});
    const attempts = [];
    const work = (tx) => {
      attempts.push(tx.attempt);
      // the first run deletes a record still linked (409 CONFLICT, rolled back); the next does the real work
      return tx.attempt === 0 ? tx.event.delete(ev.id) : tx.counter.whereId(c.id).increment('n');
    };
    assert.equal(await db.transaction(work, { retries: 2 }), 1);
    assert.deepEqual(attempts, [0, 1]);
    attempts.length = 0;
    await assert.rejects(db.transaction(work), (e) => e instanceof Conflict && e.rolledBack);
    assert.deepEqual(attempts, [0]);
    assert.equal((await db.counter.get(c.id)).n, 1);
  });

  test('PostgreSQL: two transactions that deadlock both commit with retries', {
    skip: BACKEND === 'postgres' ? false : 'PostgreSQL only: on SQLite one transaction holds the writer, so two never interleave',
  }, async () => {
    const db = client();
    const a = await db.counter.create({});
    const b = await db.counter.create({});
    let bothIn;
    const met = new Promise((resolve) => { let n = 0; bothIn = () => { if (++n === 2) resolve(); }; });
    let runs = 0;
    const cross = (first, second) => db.transaction(async (tx) => {
      runs++;
      await tx.counter.whereId(first.id).increment('n');
      if (tx.attempt === 0) { bothIn(); await met; } // each holds one row and reaches for the other's
      await tx.counter.whereId(second.id).increment('n');
    }, { retries: 5, timeoutMs: 4000 });
    await Promise.all([cross(a, b), cross(b, a)]);
    assert.ok(runs >= 3, `one of them ran again (${runs} runs)`);
    assert.deepEqual([(await db.counter.get(a.id)).n, (await db.counter.get(b.id)).n], [2, 2], 'each applied exactly once');
  });

  test('without a WebSocket class the client says what to pass', { skip: globalThis.WebSocket ? 'this Node has a WebSocket' : false }, async () => {
    const bare = createClient({ url: suite.srv.url });
    await assert.rejects(bare.transaction(async () => {}), /pass createClient\(\{WebSocket\}\)/);
  });
});

describe('locks', () => {
  test('acquire, Locked with expiresAt, renew, release; a lease past its ttl is LockLost', async () => {
    const db = client();
    const name = tag('lock');
    const lease = await db.locks.acquire(name, { ttlMs: 5000 });
    assert.equal(lease.name, name);
    assert.match(lease.token, /^[0-9a-f]{32}$/);
    await assert.rejects(db.locks.acquire(name), (e) => e instanceof Locked && typeof e.expiresAt === 'string');
    assert.equal((await db.locks.renew(lease, { ttlMs: 5000 })).fence, lease.fence);
    assert.deepEqual(await db.locks.release(lease), { released: true, fence: lease.fence });
    const short = await db.locks.acquire(name, { ttlMs: 100 });
    assert.equal(short.fence, lease.fence + 1);
    await sleep(250);
    await assert.rejects(db.locks.renew(short), LockLost);
  });

  test('withLock releases after a throw, and throws LockLost when the lease ran out during the work', async () => {
    const db = client();
    const name = tag('job');
    await assert.rejects(db.withLock(name, async () => { throw new Error('job failed'); }), /job failed/);
    assert.ok((await db.locks.acquire(name)).fence > 0, 'released after the throw: free at once');
    const other = tag('job');
    let signal;
    await assert.rejects(db.withLock(other, async (lock) => { signal = lock.signal; await sleep(400); return 'done'; },
      { ttlMs: 100, renewEveryMs: 1000 }), (e) => e instanceof LockLost);
    const waited = await db.withLock(other, async (lock) => lock.fence, { waitMs: 2000 });
    assert.ok(waited >= 2);
    assert.equal(signal.aborted, false, 'the loss was found at release, not by a renewal');
  });
});

describe('keys', () => {
  test('a Bearer token works over HTTP and WebSocket; none is Unauthorized, a missing scope Forbidden', async () => {
    const srv = await startServer();
    const admin = await createKey(srv, 'admin', ['admin']);
    const reader = await createKey(srv, 'reader', ['read']);
    await within(3000, 'keys on', async () => (await srv.api('GET', '/api/product')).status === 401);
    const db = connect(srv, { token: admin });
    const p = await db.product.create({ sku: 'keyed', stock: 1 });
    assert.equal(await db.transaction(async (tx) => tx.product.whereId(p.id).increment('stock')), 2);
    await assert.rejects(connect(srv).product.get(p.id), Unauthorized);
    await assert.rejects(connect(srv).transaction(async (tx) => tx.product.get(p.id)), (e) => e instanceof NetworkError || e instanceof Unauthorized);
    const ro = connect(srv, { token: reader });
    assert.equal((await ro.product.get(p.id)).stock, 2);
    await assert.rejects(ro.product.whereId(p.id).increment('stock'), (e) => e instanceof Forbidden && /write/.test(e.message));
    const made = await db.keys.create({ name: 'ops', scopes: ['metrics'] });
    assert.match(made.token, /^tly_/);
    assert.ok((await db.keys.list()).some((k) => k.name === 'ops'));
    await db.keys.revoke('ops');
    await srv.stop();
  });
});

describe('Idempotency-Key and safe retries', () => {
  /** An HTTP proxy in front of the server that loses the answers of requests lose() picks (the request is still served). */
  async function lossyProxy(target, lose) {
    const seen = [];
    const proxy = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const entry = { method: req.method, url: req.url, key: req.headers['idempotency-key'] ?? null };
        seen.push(entry);
        const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (ures) => {
          const body = [];
          ures.on('data', (c) => body.push(c));
          ures.on('end', () => {
            if (lose(entry, seen)) { entry.lost = true; res.socket.destroy(); return; }
            res.writeHead(ures.statusCode, ures.headers);
            res.end(Buffer.concat(body));
          });
        });
        up.end(Buffer.concat(chunks));
      });
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${proxy.address().port}`, seen, close: () => new Promise((r) => proxy.close(r)) };
  }

  test('every write carries a fresh key, reads none; a lost answer is retried with the same key and applied once', async () => {
    const db = client();
    const c = await db.counter.create({});
    const proxy = await lossyProxy(suite.srv.url, (e, seen) => e.method === 'PATCH' && seen.filter((s) => s.method === 'PATCH').length === 1);
    try {
      const via = createClient({ url: proxy.url, retryDelayMs: 10 });
      assert.equal(await via.counter.whereId(c.id).increment('n'), 1, 'the retry got the stored answer');
      assert.equal((await db.counter.get(c.id)).n, 1, 'applied once though sent twice');
      const patches = proxy.seen.filter((s) => s.method === 'PATCH');
      assert.equal(patches.length, 2);
      assert.ok(patches[0].lost);
      assert.ok(patches[0].key && patches[0].key === patches[1].key, 'the retry carried the same Idempotency-Key');
      await via.counter.get(c.id);
      await via.counter.whereId(c.id).increment('n');
      const gets = proxy.seen.filter((s) => s.method === 'GET');
      assert.ok(gets.length >= 1 && gets.every((s) => s.key === null), 'reads carry no key');
      const keys = proxy.seen.filter((s) => s.method === 'PATCH').map((s) => s.key);
      assert.equal(new Set(keys).size, 2, 'each write has a key of its own');
      assert.equal((await db.counter.get(c.id)).n, 2);
    } finally {
      await proxy.close();
    }
  });

  test('with idempotency off, a write whose answer was lost is not retried: NetworkError says it may have applied', async () => {
    const db = client();
    const c = await db.counter.create({});
    const proxy = await lossyProxy(suite.srv.url, (e) => e.method === 'PATCH');
    try {
      const via = createClient({ url: proxy.url, idempotency: false });
      await assert.rejects(via.counter.whereId(c.id).increment('n'), (e) => e instanceof NetworkError && /may or may not/.test(e.message));
      assert.equal(proxy.seen.filter((s) => s.method === 'PATCH').length, 1, 'sent once');
      assert.equal(proxy.seen[0].key, null);
      assert.equal((await db.counter.get(c.id)).n, 1, 'it had been applied');
    } finally {
      await proxy.close();
    }
  });

  test('a server that is not there yet: writes retry until it answers, then apply once', async () => {
    const srv = await startServer({ schema: SCHEMA });
    const port = srv.port;
    const dataDir = srv.dataDir;
    const c = await connect(srv).counter.create({});
    await srv.stop();
    const db = connect(srv, { retries: 30, retryDelayMs: 100 });
    const pending = db.counter.whereId(c.id).increment('n');
    await sleep(300);
    const again = await startServer({ schema: SCHEMA, dataDir, args: ['--listen', `127.0.0.1:${port}`] });
    assert.equal(await pending, 1);
    assert.equal((await connect(again).counter.get(c.id)).n, 1);
    await again.stop();
  });
});
