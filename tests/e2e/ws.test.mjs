// Interactive transactions over the WebSocket at /api/ws (README.md, "Interactive transactions over WebSocket", and
// docs/architecture.md, "Interactive transactions"): begin / step / commit / rollback, isolation of an open
// transaction, the writer held by it (other writes wait, then succeed), its
// release on rollback / drop / timeout, malformed messages, and reads and
// lone steps over the same socket. The client is the `ws` package.
import { test, before, after, beforeEach, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopAll, shopPlus, expectError, expectStatus, listAll, parallel, sleep, BACKEND, sqliteOnly,
} from './lib/server.mjs';
import { WsClient, track } from './lib/wsclient.mjs';
import { recordHelpers, uniq } from './lib/records.mjs';

const SCHEMA = shopPlus({
  enrollment: { fields: {
    course: { type: 'belongsTo', model: 'course', required: true },
    student: { type: 'string' },
  } },
});

// A server that died (a crash) is noted and replaced before the next test, so
// that one crash fails the test that saw it and the last test of this file,
// not every test after it.
const deaths = [];
const slots = [];
let lastTest = '(none yet)';
function serverSlot(opts) {
  const slot = { srv: null };
  slots.push(slot);
  slot.ensure = async () => {
    const s = slot.srv;
    if (s && (s.proc.exitCode !== null || s.proc.signalCode !== null)) {
      if (!slot.reported) deaths.push(`server on port ${s.port} found dead (code ${s.proc.exitCode}, signal ${s.proc.signalCode}) after: ${lastTest}`);
      slot.srv = null;
      slot.reported = false;
    }
    if (!slot.srv) slot.srv = await startServer(opts);
    return slot.srv;
  };
  return slot;
}
const main = serverSlot({ schema: SCHEMA });
const api = (...a) => main.srv.api(...a);
let clients = [];
before(main.ensure);
beforeEach(main.ensure);
afterEach(async (t) => {
  lastTest = t.name;
  const mine = clients;
  clients = [];
  for (const c of mine) { try { await c.terminate(); } catch { /* gone */ } }
});
after(stopAll);

async function connect(server = main.srv) {
  const c = await WsClient.open(server);
  clients.push(c);
  return c;
}
// create, get and findWhere take another server's api last
const { create, get, findWhere } = recordHelpers(() => api);

function ok(ans, what = 'call') {
  assert.equal(ans.ok, true, `${what} should succeed; answer: ${JSON.stringify(ans)}`);
  return ans.result;
}
function failed(ans, code, what = 'call') {
  assert.equal(ans.ok, false, `${what} should fail; answer: ${JSON.stringify(ans)}`);
  assert.ok(ans.error && typeof ans.error === 'object', `an error object: ${JSON.stringify(ans)}`);
  assert.equal(typeof ans.error.message, 'string', JSON.stringify(ans));
  assert.ok(ans.error.message.length > 0, JSON.stringify(ans));
  if (code) {
    const codes = Array.isArray(code) ? code : [code];
    assert.ok(codes.includes(ans.error.code), `expected error code ${codes.join(' or ')}; answer: ${JSON.stringify(ans)}`);
  }
  return ans.error;
}
const incOrders = (id) => ({ update: 'customer', id, data: { _atomics: { orderCount: { increment: 1 } } } });

/** An HTTP write that must wait behind an open transaction: not answered after `ms`. */
async function assertWaiting(t, ms = 300, what = 'the HTTP write') {
  await sleep(ms);
  assert.equal(t.done, false,
    `${what} was answered while another client's transaction held the writer: ${t.value ? `${t.value.status} ${t.value.text}` : t.error}`);
}

// ---------------------------------------------------------------------------
describe('reads and lone steps over the socket', () => {
  test('a lone step runs on its own and is visible at once; every step form answers like its HTTP call', async () => {
    const c = await connect();
    const tag = uniq('lone');
    const post = ok(await c.step({ create: 'post', data: { title: tag } }), 'create');
    assert.equal(post.title, tag);
    assert.equal(typeof post.id, 'number');
    assert.equal((await get('post', post.id)).title, tag, 'committed by itself: HTTP sees it');

    const g = ok(await c.step({ get: 'post', id: post.id }), 'get');
    assert.deepEqual(g, await get('post', post.id));

    await create('course', { name: tag, maxStudents: 1 });
    await create('course', { name: tag, maxStudents: 2 });
    const f = ok(await c.step({ find: 'course', filter: { name: { equals: tag } }, sort: { maxStudents: 'descending' }, first: 1 }), 'find');
    assert.deepEqual(f.records.map((x) => x.maxStudents), [2]);
    assert.equal(typeof f.next, 'string', 'a cursor for the next page');

    const e = await create('event', { availableTicketCount: 3 });
    const u = ok(await c.step({ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } }, where: { availableTicketCount: { greaterThan: 0 } } }), 'update');
    assert.deepEqual([u.soldTicketCount, u.availableTicketCount], [1, 2]);
    assert.deepEqual([(await get('event', e.id)).soldTicketCount, (await get('event', e.id)).availableTicketCount], [1, 2]);

    assert.deepEqual(ok(await c.step({ updateMany: 'course', filter: { name: { equals: tag } }, set: { maxStudents: 9 } }), 'updateMany'), { count: 2 });
    assert.deepEqual((await findWhere('course', 'name', tag)).map((x) => x.maxStudents), [9, 9]);
    assert.deepEqual(ok(await c.step({ deleteMany: 'course', filter: { name: { equals: tag } } }), 'deleteMany'), { count: 2 });
    assert.deepEqual(await findWhere('course', 'name', tag), []);
    assert.deepEqual(ok(await c.step({ delete: 'post', id: post.id }), 'delete'), { id: post.id });
    assert.equal((await api('GET', `/api/post/${post.id}`)).status, 404);
  });

  test('a failing lone step answers ok:false with its error and changes nothing; the connection goes on', async () => {
    const c = await connect();
    failed(await c.step({ get: 'post', id: 987654321 }), 'NOT_FOUND');
    const e = await create('event', { availableTicketCount: 0 });
    const err = failed(await c.step({ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } } }), 'INVARIANT');
    assert.match(String(err.path), /availableTicketCount/);
    const now = await get('event', e.id);
    assert.deepEqual([now.soldTicketCount, now.availableTicketCount], [0, 0]);
    failed(await c.step({ create: 'image', data: { url: 'u'.repeat(2049) } }), 'VALIDATION');
    const p = ok(await c.step({ create: 'post', data: { title: 'after failures' } }));
    assert.equal((await get('post', p.id)).title, 'after failures');
  });

  test('answers echo the request id, numbers and strings alike', async () => {
    const c = await connect();
    for (const id of [42, 'req-abc', 0]) {
      const a = await c.call({ id, op: 'step', step: { find: 'post', first: 1 } });
      assert.equal(a.id, id);
      ok(a);
    }
  });

  test('a commit, rollback or step that needs a transaction when none is open is an error, and the connection goes on', async () => {
    const c = await connect();
    failed(await c.commit(), null, 'commit without begin');
    failed(await c.rollback(), null, 'rollback without begin');
    ok(await c.step({ find: 'post', first: 1 }));
  });
});

// ---------------------------------------------------------------------------
describe('begin / step / commit / rollback', () => {
  test('commit makes the steps visible; before it, other clients see none of them', async () => {
    const tag = uniq('commit');
    const e = await create('event', { availableTicketCount: 5 });
    const cust = await create('customer', { name: tag });
    const c = await connect();
    ok(await c.begin(5000), 'begin');
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    const img = ok(await c.step({ create: 'image', data: { url: `${tag}/1`, post: { _link: p.id } } }));
    const sale = ok(await c.step({ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 2 }, availableTicketCount: { decrement: 2 } } } }));
    assert.deepEqual([sale.soldTicketCount, sale.availableTicketCount], [2, 3]);
    ok(await c.step({ update: 'customer', id: cust.id, data: { name: `${tag}-renamed` } }));
    // inside the transaction its own writes are seen
    assert.equal(ok(await c.step({ get: 'post', id: p.id })).title, tag);
    assert.deepEqual(ok(await c.step({ find: 'image', filter: { post: { equals: p.id } } })).records.map((x) => x.id), [img.id]);

    // outside, nothing of it yet (reads do not wait for the writer)
    expectError(await api('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    expectError(await api('GET', `/api/image/${img.id}`), 404, 'NOT_FOUND');
    assert.deepEqual(await findWhere('post', 'title', tag), []);
    assert.ok(!(await listAll(api, 'image')).some((x) => x.id === img.id));
    const ev = await get('event', e.id);
    assert.deepEqual([ev.soldTicketCount, ev.availableTicketCount], [0, 5]);
    assert.equal((await get('customer', cust.id)).name, tag);

    ok(await c.commit(), 'commit');
    assert.equal((await get('post', p.id)).title, tag);
    assert.equal((await get('image', img.id)).post, p.id);
    const ev2 = await get('event', e.id);
    assert.deepEqual([ev2.soldTicketCount, ev2.availableTicketCount], [2, 3]);
    assert.equal((await get('customer', cust.id)).name, `${tag}-renamed`);
  });

  test('reads over HTTP are answered while a transaction is open (they do not wait for it)', async () => {
    const cust = await create('customer', { name: uniq('reader') });
    const c = await connect();
    ok(await c.begin(4000));
    ok(await c.step(incOrders(cust.id)));
    const reads = await parallel(20, () => api('GET', `/api/customer/${cust.id}`));
    for (const r of reads) { expectStatus(r, 200); assert.equal(r.body.orderCount, 0); }
    expectStatus(await api('GET', '/api/customer?first=5'), 200);
    // the transaction is still open, so the reads did not wait for its end
    ok(await c.commit(), 'commit after the reads');
    assert.equal((await get('customer', cust.id)).orderCount, 1);
  });

  test('rollback leaves nothing: creates, updates, deletes and bulk changes are undone', async () => {
    const tag = uniq('rb');
    const keep = await create('course', { name: tag, maxStudents: 3 });
    const e = await create('event', { availableTicketCount: 4 });
    const before = { course: await listAll(api, 'course'), post: await listAll(api, 'post'), event: await listAll(api, 'event') };
    const c = await connect();
    ok(await c.begin(5000));
    ok(await c.step({ create: 'post', data: { title: tag } }));
    ok(await c.step({ update: 'event', id: e.id, data: { _atomics: { availableTicketCount: { decrement: 4 } } } }));
    ok(await c.step({ updateMany: 'course', filter: { name: { equals: tag } }, set: { maxStudents: 77 } }));
    ok(await c.step({ delete: 'course', id: keep.id }));
    ok(await c.rollback(), 'rollback');
    assert.deepEqual(await listAll(api, 'course'), before.course);
    assert.deepEqual(await listAll(api, 'post'), before.post);
    assert.deepEqual(await listAll(api, 'event'), before.event);
    // and the connection can run the next transaction
    ok(await c.begin(5000));
    const p = ok(await c.step({ create: 'post', data: { title: `${tag}-2` } }));
    ok(await c.commit());
    assert.equal((await get('post', p.id)).title, `${tag}-2`);
  });

  test('a failing step rolls the whole transaction back: rolledBack:true, earlier steps gone, the transaction ended', async () => {
    const tag = uniq('stepfail');
    const e = await create('event', { availableTicketCount: 1 });
    const c = await connect();
    ok(await c.begin(5000));
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    ok(await c.step({ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } } }));
    const ans = await c.step({ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } } });
    failed(ans, 'INVARIANT', 'the second sale');
    assert.equal(ans.rolledBack, true, `the answer says the transaction was rolled back: ${JSON.stringify(ans)}`);
    expectError(await api('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    const ev = await get('event', e.id);
    assert.deepEqual([ev.soldTicketCount, ev.availableTicketCount], [0, 1]);
    // the transaction is over: commit has nothing to commit
    failed(await c.commit(), null, 'commit after a failed step');
    expectError(await api('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    // and the writer is free: an HTTP write goes through
    expectStatus(await api('PATCH', `/api/event/${e.id}`, { _atomics: { soldTicketCount: { increment: 5 } } }), 200);
    // a new transaction on the same connection works
    ok(await c.begin(5000));
    ok(await c.step({ create: 'post', data: { title: `${tag}-again` } }));
    ok(await c.commit());
    assert.equal((await findWhere('post', 'title', `${tag}-again`)).length, 1);
  });

  test('other failing steps in a transaction (missing record, validation, unknown model, guard, expect) also roll back', async () => {
    const e = await create('event', { availableTicketCount: 2 });
    const bad = [
      [{ get: 'post', id: 987654321 }, 'NOT_FOUND'],
      [{ create: 'image', data: { url: 'v'.repeat(2049) } }, 'VALIDATION'],
      [{ create: 'noSuchModel', data: {} }, ['NOT_FOUND', 'BAD_REQUEST']],
      [{ update: 'event', id: e.id, data: { soldTicketCount: 1 }, where: { availableTicketCount: { greaterThan: 100 } } }, 'GUARD_FAILED'],
      [{ update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 } } }, expect: { soldTicketCount: { greaterThan: 50 } } }, 'EXPECTATION_FAILED'],
      [{ updateMany: 'event', filter: { id: { equals: e.id } }, set: { soldTicketCount: 3 }, expect: { count: { equals: 0 } } }, 'EXPECTATION_FAILED'],
    ];
    const c = await connect();
    for (const [step, code] of bad) {
      const tag = uniq('fail');
      ok(await c.begin(5000));
      ok(await c.step({ create: 'post', data: { title: tag } }));
      const ans = await c.step(step);
      failed(ans, code, JSON.stringify(step));
      assert.equal(ans.rolledBack, true, `${JSON.stringify(step)}: ${JSON.stringify(ans)}`);
      assert.deepEqual(await findWhere('post', 'title', tag), [], `after ${JSON.stringify(step)} the earlier create is gone`);
    }
    const ev = await get('event', e.id);
    assert.deepEqual([ev.soldTicketCount, ev.availableTicketCount], [0, 2]);
  });

  test('several transactions one after another on one connection', async () => {
    const tag = uniq('seq');
    const cust = await create('customer', { name: tag });
    const c = await connect();
    let committed = 0;
    for (let i = 1; i <= 5; i++) {
      ok(await c.begin(5000));
      const r = ok(await c.step(incOrders(cust.id)));
      assert.equal(r.orderCount, committed + 1, `transaction ${i} sees the ${committed} committed before it`);
      if (i === 3) ok(await c.rollback());
      else { ok(await c.commit()); committed++; }
    }
    assert.equal((await get('customer', cust.id)).orderCount, 4, 'four commits and one rollback');
  });

  test('a second call sent before the previous answer is refused; nothing of the transaction survives its rollback', async () => {
    const tag = uniq('pipe');
    const c = await connect();
    ok(await c.begin(5000));
    // both calls in one TCP write, so that the second surely arrives before the first is answered
    const [id1, id2] = c.sendTogether([
      { op: 'step', step: { create: 'post', data: { title: tag } } },
      { op: 'step', step: { create: 'post', data: { title: `${tag}-b` } } },
    ]);
    const [a1, a2] = await Promise.all([
      c.next((m) => m.id === id1), c.next((m) => m.id === id2),
    ]);
    ok(a1, 'the first call');
    failed(a2, null, 'the call sent before the previous answer');
    await c.rollback(); // whether the transaction is still open or was ended by the refusal
    assert.deepEqual(await findWhere('post', 'title', tag), []);
    assert.deepEqual(await findWhere('post', 'title', `${tag}-b`), []);
    // the connection is still usable
    ok(await c.begin(5000));
    ok(await c.commit());
  });

  test('a second begin on a connection with an open transaction is refused; the open one is unharmed', async () => {
    const tag = uniq('rebegin');
    const c = await connect();
    ok(await c.begin(5000));
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    failed(await c.begin(5000), null, 'a nested begin');
    ok(await c.commit(), 'the first transaction still commits');
    assert.equal((await get('post', p.id)).title, tag);
  });

  test('begin with a bad timeoutMs is a 400-style BAD_REQUEST', async () => {
    const c = await connect();
    for (const t of [-5, 0, 'soon', {}]) failed(await c.call({ op: 'begin', timeoutMs: t }), 'BAD_REQUEST', `timeoutMs ${JSON.stringify(t)}`);
    // none of them opened a transaction
    failed(await c.commit(), null);
  });
});

// ---------------------------------------------------------------------------
describe('malformed messages', () => {
  test('an id that cannot come back exactly (a fraction, or past 64 bits) is refused and changes nothing: the open transaction stays open', async () => {
    const c = await connect();
    assert.equal((await c.begin(5000)).ok, true);
    for (const id of ['9223372036854775808', '1.5', '-2.5e3']) {
      c.sendRaw(`{"id": ${id}, "op": "rollback"}`);
      const a = await c.next((m) => m.ok === false && m.error?.path === 'id');
      failed(a, 'BAD_REQUEST', `id ${id}`);
      assert.match(a.error.message, /whole number/);
    }
    const still = await c.call({ op: 'step', step: { find: 'customer', first: 1 } });
    assert.equal(still.ok, true, `the transaction is still open: ${JSON.stringify(still)}`);
    assert.equal((await c.rollback()).ok, true);
  });

  test('not JSON, not an object, an unknown op, a step without a step: BAD_REQUEST answers, the connection stays usable', async () => {
    const c = await connect();
    c.sendRaw('this is not JSON');
    let a = await c.next((m) => m.id === null);
    assert.equal(a.ok, false);
    assert.equal(a.error.code, 'BAD_REQUEST', JSON.stringify(a));
    assert.equal(typeof a.error.message, 'string');

    c.sendRaw('{"id": 5, "op": "step", ');
    a = await c.next((m) => 'id' in m && (m.id === null || m.id === 5));
    failed(a, 'BAD_REQUEST', 'truncated JSON');

    c.sendRaw('[1, 2, 3]');
    a = await c.next((m) => m.id === null);
    failed(a, 'BAD_REQUEST', 'a JSON array');

    a = await c.call({ id: 77, op: 'frobnicate' });
    assert.equal(a.id, 77);
    failed(a, 'BAD_REQUEST', 'unknown op');

    a = await c.call({ id: 78 });
    assert.equal(a.id, 78);
    failed(a, 'BAD_REQUEST', 'no op');

    a = await c.call({ id: 79, op: 'step' });
    failed(a, 'BAD_REQUEST', 'a step without a step');
    a = await c.call({ id: 80, op: 'step', step: 'create post' });
    failed(a, 'BAD_REQUEST', 'a step that is a string');
    a = await c.call({ id: 81, op: 'step', step: { frob: 'post' } });
    failed(a, 'BAD_REQUEST', 'an unknown step form');

    assert.equal(c.closed, false, 'the connection stays open');
    const p = ok(await c.step({ create: 'post', data: { title: 'usable after garbage' } }));
    ok(await c.begin(5000));
    ok(await c.step({ get: 'post', id: p.id }));
    ok(await c.commit());
  });

  test('a malformed message inside an open transaction is answered; the connection stays usable', async () => {
    const tag = uniq('garbage-in-txn');
    const c = await connect();
    ok(await c.begin(5000));
    ok(await c.step({ create: 'post', data: { title: tag } }));
    c.sendRaw('{{{');
    const a = await c.next((m) => m.id === null);
    failed(a, 'BAD_REQUEST');
    // whatever happened to the transaction, the socket answers and can end it
    await c.rollback();
    assert.deepEqual(await findWhere('post', 'title', tag), []);
    ok(await c.step({ find: 'post', first: 1 }));
  });
});

// ---------------------------------------------------------------------------
describe('the writer: other writes wait behind an open transaction, then succeed', () => {
  test('an HTTP write from another client waits while the transaction is open and succeeds after commit', async () => {
    const cust = await create('customer', { name: uniq('waiter') });
    const c = await connect();
    ok(await c.begin(5000));
    assert.equal(ok(await c.step(incOrders(cust.id))).orderCount, 1);
    const patch = track(api('PATCH', `/api/customer/${cust.id}`, { _atomics: { orderCount: { increment: 10 } } }));
    const post = track(api('POST', '/api/post', { title: 'queued behind a transaction' }));
    await assertWaiting(patch, 300, 'the PATCH');
    // SQLite has one writer, which the transaction holds; on PostgreSQL a write to
    // other rows goes on (postgres.test.mjs), only the PATCH of the held row waits
    if (BACKEND === 'sqlite') assert.equal(post.done, false, 'the POST must wait too');
    ok(await c.commit(), 'commit');
    const pr = await patch.promise;
    expectStatus(pr, 200);
    assert.equal(pr.body.orderCount, 11, 'the waiting write ran after the transaction and saw its increment');
    expectStatus(await post.promise, 201);
    assert.equal((await get('customer', cust.id)).orderCount, 11);
  });

  test('after rollback the waiting write is answered promptly and applied (the transaction\'s change is not)', async () => {
    const cust = await create('customer', { name: uniq('rbwait') });
    const c = await connect();
    ok(await c.begin(5000));
    ok(await c.step(incOrders(cust.id)));
    const patch = track(api('PATCH', `/api/customer/${cust.id}`, { _atomics: { orderCount: { increment: 10 } } }));
    await assertWaiting(patch);
    const t0 = Date.now();
    ok(await c.rollback());
    const pr = await patch.promise;
    const waited = Date.now() - t0;
    expectStatus(pr, 200);
    assert.equal(pr.body.orderCount, 10);
    assert.ok(waited < 2000, `the writer must be free at the rollback, not at the 5 s timeout (waited ${waited} ms)`);
  });

  for (const how of ['terminate', 'close']) {
    test(`a dropped connection (${how}) rolls back at once: nothing left, and the waiting write is answered promptly`, async () => {
      const tag = uniq(`drop-${how}`);
      const cust = await create('customer', { name: tag });
      const c = await connect();
      ok(await c.begin(5000));
      ok(await c.step(incOrders(cust.id)));
      const p = ok(await c.step({ create: 'post', data: { title: tag } }));
      const patch = track(api('PATCH', `/api/customer/${cust.id}`, { _atomics: { orderCount: { increment: 10 } } }));
      await assertWaiting(patch);
      const t0 = Date.now();
      await (how === 'terminate' ? c.terminate() : c.close());
      const pr = await patch.promise;
      const waited = Date.now() - t0;
      expectStatus(pr, 200);
      assert.equal(pr.body.orderCount, 10, 'the dropped transaction\'s increment is gone');
      assert.ok(waited < 2000, `the writer must be freed when the connection drops, not at the 5 s timeout (waited ${waited} ms)`);
      expectError(await api('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
      assert.deepEqual(await findWhere('post', 'title', tag), []);
      assert.equal((await get('customer', cust.id)).orderCount, 10);
    });
  }

  test('a dropped connection with no waiting writer leaves nothing either', async () => {
    const tag = uniq('drop-idle');
    const c = await connect();
    ok(await c.begin(5000));
    ok(await c.step({ create: 'post', data: { title: tag } }));
    await c.terminate();
    // the next write goes through (the writer was released) and the post never appears
    expectStatus(await api('POST', '/api/post', { title: `${tag}-after` }), 201);
    assert.deepEqual(await findWhere('post', 'title', tag), []);
  });

  test('a lone write step from another socket waits too, then succeeds', async () => {
    const cust = await create('customer', { name: uniq('ws-waiter') });
    const a = await connect();
    const b = await connect();
    ok(await a.begin(5000));
    ok(await a.step(incOrders(cust.id)));
    const lone = track(b.step(incOrders(cust.id)));
    await assertWaiting(lone, 300, 'the other socket\'s lone write');
    ok(await a.commit());
    assert.equal(ok(await lone.promise).orderCount, 2);
  });

  test('a second client\'s begin waits for the first transaction; it then sees the committed data', sqliteOnly(
    'SQLite has one writer, which an open transaction holds; on PostgreSQL each transaction has a connection of its own and begins at once'),
  async () => {
    const cust = await create('customer', { name: uniq('two-txn') });
    const a = await connect();
    const b = await connect();
    ok(await a.begin(5000));
    ok(await a.step(incOrders(cust.id)));
    const bBegin = track(b.begin(5000));
    await assertWaiting(bBegin, 300, 'the second begin');
    ok(await a.commit());
    ok(await bBegin.promise, 'the second begin');
    assert.equal(ok(await b.step({ get: 'customer', id: cust.id })).orderCount, 1);
    assert.equal(ok(await b.step(incOrders(cust.id))).orderCount, 2);
    ok(await b.commit());
    assert.equal((await get('customer', cust.id)).orderCount, 2);
  });

  test('many interactive read-check-write transactions are serialized: 40 clients, 15 tickets, plain sets', async () => {
    const e = await create('event', { availableTicketCount: 15 });
    const N = 40;
    const socks = await Promise.all(Array.from({ length: N }, () => connect()));
    const outcome = await parallel(N, async (i) => {
      const c = socks[i];
      ok(await c.begin(5000), `client ${i} begin`);
      const ev = ok(await c.step({ get: 'event', id: e.id }));
      if (ev.availableTicketCount <= 0) { ok(await c.rollback()); return 'sold out'; }
      // read, decide, write plain values: correct only if nobody else writes in between
      ok(await c.step({ update: 'event', id: e.id, data: { availableTicketCount: ev.availableTicketCount - 1, soldTicketCount: ev.soldTicketCount + 1 } }));
      ok(await c.step({ create: 'ticket', data: { event: e.id } }));
      ok(await c.commit(), `client ${i} commit`);
      return 'bought';
    });
    assert.equal(outcome.filter((o) => o === 'bought').length, 15);
    const ev = await get('event', e.id);
    assert.deepEqual([ev.soldTicketCount, ev.availableTicketCount], [15, 0]);
    assert.equal((await findWhere('ticket', 'event', e.id)).length, 15);
    await Promise.all(socks.map((s) => s.close()));
  });

  test('group commit goes on around interactive transactions: concurrent HTTP writes and socket transactions all land', async () => {
    const cust = await create('customer', { name: uniq('mixed') });
    const socks = await Promise.all(Array.from({ length: 10 }, () => connect()));
    await Promise.all([
      parallel(100, () => api('PATCH', `/api/customer/${cust.id}`, { _atomics: { orderCount: { increment: 1 } } }).then((r) => expectStatus(r, 200))),
      parallel(10, async (i) => {
        const c = socks[i];
        for (let k = 0; k < 3; k++) {
          ok(await c.begin(5000));
          ok(await c.step(incOrders(cust.id)));
          ok(await c.step(incOrders(cust.id)));
          ok(await c.commit());
        }
      }),
    ]);
    assert.equal((await get('customer', cust.id)).orderCount, 100 + 10 * 3 * 2);
    await Promise.all(socks.map((s) => s.close()));
  });
});

// ---------------------------------------------------------------------------
describe('timeouts', () => {
  const slot = serverSlot({ schema: SCHEMA });
  beforeEach(slot.ensure);
  after(async () => { if (slot.srv) await slot.srv.stop().catch(() => {}); });
  const tapi = (...a) => slot.srv.api(...a);

  test('a transaction left open past timeoutMs is rolled back, its client told; a waiting write then succeeds', async () => {
    const tag = uniq('tmo');
    const cust = await create('customer', { name: tag }, tapi);
    const c = await connect(slot.srv);
    ok(await c.begin(500));
    ok(await c.step(incOrders(cust.id)));
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    const patch = track(tapi('PATCH', `/api/customer/${cust.id}`, { _atomics: { orderCount: { increment: 10 } } }));
    const ev = await c.nextEvent('rolledBack', 5000);
    assert.equal(ev.reason, 'timeout', JSON.stringify(ev));
    const pr = await patch.promise;
    expectStatus(pr, 200);
    assert.equal(pr.body.orderCount, 10, 'the timed-out increment is gone; the waiting one applied');
    expectError(await tapi('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    assert.deepEqual(await findWhere('post', 'title', tag, tapi), []);
    // the transaction is over
    failed(await c.commit(), null, 'commit after the timeout');
    expectError(await tapi('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    assert.equal(c.closed, false, 'the connection stays open after a timeout');
    ok(await c.step({ get: 'customer', id: cust.id }));
    await c.close();
  });

  test('a step meant for a transaction that timed out is refused (rolledBack), never run on its own, until the client ends it', async () => {
    const tag = uniq('tmo-step');
    const c = await connect(slot.srv);
    ok(await c.begin(300));
    await sleep(600); // past the timeout; the client has not looked at the event yet
    const a = await c.step({ create: 'post', data: { title: tag } });
    assert.equal(a.ok, false, `the step was applied outside the transaction: ${JSON.stringify(a)}`);
    assert.equal(a.rolledBack, true);
    assert.equal(a.error.code, 'CONFLICT');
    assert.match(a.error.message, /timeout/);
    assert.equal((await c.nextEvent('rolledBack', 5000)).reason, 'timeout');
    assert.deepEqual(await findWhere('post', 'title', tag, tapi), []);
    // like a PostgreSQL block after an error, the transaction stays aborted until the client ends it
    const again = await c.step({ create: 'post', data: { title: tag } });
    assert.equal(again.ok, false);
    assert.equal(again.rolledBack, true);
    ok(await c.call({ op: 'rollback' }));
    // now a step runs on its own, and is committed
    const b = ok(await c.step({ create: 'post', data: { title: tag } }));
    assert.equal((await findWhere('post', 'title', tag, tapi)).map((r) => r.id).join(), String(b.id));
    // and a commit meant for a timed-out transaction is refused the same way
    ok(await c.begin(300));
    await sleep(600);
    const cm = await c.call({ op: 'commit' });
    assert.equal(cm.ok, false);
    assert.equal(cm.rolledBack, true);
    await c.close();
  });

  test('after a failed step, calls meant for the transaction are refused until rollback or begin; none runs on its own', async () => {
    const tag = uniq('aborted');
    const c = await connect(slot.srv);
    ok(await c.begin(5000));
    ok(await c.step({ create: 'post', data: { title: tag } }));
    const bad = await c.step({ get: 'post', id: 987654321 });
    assert.equal(bad.ok, false);
    assert.equal(bad.rolledBack, true);
    // a client that sent these before reading the failure must not see them applied on their own
    const [s1, s2] = await Promise.all([
      c.step({ create: 'post', data: { title: tag } }),
      c.step({ create: 'post', data: { title: tag } }),
    ]);
    for (const a of [s1, s2]) {
      assert.equal(a.ok, false, JSON.stringify(a));
      assert.equal(a.rolledBack, true);
    }
    const cm = await c.call({ op: 'commit' }); // commit ends the aborted transaction, refused
    assert.equal(cm.ok, false);
    assert.equal(cm.rolledBack, true);
    assert.deepEqual(await findWhere('post', 'title', tag, tapi), []);
    // after that, lone steps again; and begin also ends an aborted transaction
    ok(await c.step({ find: 'post', first: 1 }));
    ok(await c.begin(5000));
    const bad2 = await c.step({ get: 'post', id: 987654321 });
    assert.equal(bad2.rolledBack, true);
    ok(await c.begin(5000));
    ok(await c.call({ op: 'rollback' }));
    await c.close();
  });

  test('the timeout counts from begin even while the client keeps sending steps', async () => {
    const tag = uniq('busy');
    const c = await connect(slot.srv);
    ok(await c.begin(700));
    let event = null;
    c.nextEvent('rolledBack', 6000).then((e) => { event = e; }, () => {});
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    let n = 0;
    const t0 = Date.now();
    // keep the transaction busy with reads (a read that lands after the end harms nothing)
    while (!event && Date.now() - t0 < 5000) {
      const a = await c.step({ find: 'post', filter: { title: { equals: tag } } });
      if (!a.ok) break;
      n++;
      await sleep(50);
    }
    await sleep(100);
    assert.ok(event, `a busy transaction must still time out (sent ${n} steps over ${Date.now() - t0} ms)`);
    assert.equal(event.reason, 'timeout');
    assert.ok(n > 0);
    expectError(await tapi('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
    assert.deepEqual(await findWhere('post', 'title', tag, tapi), [], 'the create does not survive the timeout');
    await c.close();
  });

  test('without timeoutMs the transaction stays open past 1.5 s and is rolled back at the default (5 s)', async () => {
    const tag = uniq('default');
    const c = await connect(slot.srv);
    ok(await c.begin());
    ok(await c.step({ create: 'post', data: { title: tag } }));
    await sleep(1500);
    ok(await c.step({ create: 'post', data: { title: tag } }), 'still open after 1.5 s');
    const ev = await c.nextEvent('rolledBack', 8000);
    assert.equal(ev.reason, 'timeout');
    assert.deepEqual(await findWhere('post', 'title', tag, tapi), []);
    await c.close();
  });

  test('after a timeout, a new transaction on the same connection, then a close: the server stays up, nothing kept', async () => {
    // a timeout, then a new transaction on the same connection that is dropped
    const tag = uniq('after-tmo');
    const c = await connect(slot.srv);
    ok(await c.begin(300));
    await c.nextEvent('rolledBack', 5000);
    ok(await c.begin(), 'a new transaction after a timeout');
    const p = ok(await c.step({ create: 'post', data: { title: tag } }));
    await c.close();
    await sleep(3000);
    slot.reported = true; // a death here is this test's failure, not news for the survival test
    assert.equal(slot.srv.proc.exitCode, null, `the server died (signal ${slot.srv.proc.signalCode}); stderr: ${slot.srv.stderr}`);
    assert.equal(slot.srv.proc.signalCode, null, `the server died (signal ${slot.srv.proc.signalCode}); stderr: ${slot.srv.stderr}`);
    const h = await fetch(`${slot.srv.url}/health`).then((r) => r.status, (e) => `fetch failed: ${e.message}`);
    assert.equal(h, 200);
    expectError(await tapi('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
  });
});

describe('--max-txn-ms caps timeoutMs', () => {
  test('with --max-txn-ms 1000, a begin asking for 60 s is rolled back after the cap', async () => {
    const s = await startServer({ schema: SCHEMA, args: ['--max-txn-ms', '1000'] });
    try {
      const tag = uniq('cap');
      const c = await connect(s);
      ok(await c.begin(60000));
      const p = ok(await c.step({ create: 'post', data: { title: tag } }));
      const ev = await c.nextEvent('rolledBack', 6000);
      assert.equal(ev.reason, 'timeout');
      expectError(await s.api('GET', `/api/post/${p.id}`), 404, 'NOT_FOUND');
      // and the default (no timeoutMs) is capped as well
      ok(await c.begin());
      ok(await c.step({ create: 'post', data: { title: tag } }));
      assert.equal((await c.nextEvent('rolledBack', 6000)).reason, 'timeout');
      assert.deepEqual(await findWhere('post', 'title', tag, s.api), []);
      await c.close();
    } finally {
      await s.stop().catch(() => {});
    }
  });
});

describe('survival', () => {
  test('the server survived every test above (none was found dead)', async () => {
    await sleep(2500); // a crash may come a moment after the socket that caused it closed
    for (const slot of slots) await slot.ensure();
    assert.deepEqual(deaths, []);
  });
});
