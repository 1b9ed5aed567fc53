// What only PostgreSQL promises, on top of every other suite run against it:
// an open interactive transaction holds only the rows it touched (other
// writers go on), a full pool of transaction connections refuses `begin`
// after a bounded wait, writes per commit in /metrics, `tally copy` from a
// SQLite folder, and a clear refusal when the database cannot be reached.
// Suites that need a PostgreSQL skip on SQLite (TALLY_DB_URL unset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

import {
  BACKEND, ROOT, SHOP_SCHEMA, startServer, stopAll, runTally, tempDir, listAll, metrics, parallel, expectStatus,
  shopSchema, dbUrl, sleep, expectError,
} from './lib/server.mjs';
import { WsClient } from './lib/wsclient.mjs';
import { createKey, revokeKey, withToken, within } from './lib/auth.mjs';

const pgOnly = BACKEND === 'postgres' ? {} : { skip: 'PostgreSQL only: run with TALLY_DB_URL=postgresql://…' };

test.after(stopAll);

test('an unreachable database: a clear message naming the URL without its password, and a non-zero exit', async () => {
  const r = await runTally(['serve', '--schema', SHOP_SCHEMA, '--db', 'postgresql://tally:s3cret@127.0.0.1:1/shop',
    '--listen', '127.0.0.1:0'], { timeoutMs: 20000 });
  assert.equal(r.started, false, 'it must not serve');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /postgresql:\/\/tally@127\.0\.0\.1:1\/shop/, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, /s3cret/, 'the password must never be printed');
});

test('an open interactive transaction blocks only the row it touched: writes to other rows go on', pgOnly, async () => {
  const srv = await startServer({ args: ['--max-txn-ms', '20000'] });
  const held = (await srv.api('POST', '/api/product', { sku: 'held', stock: 100 })).body;
  const free = (await srv.api('POST', '/api/product', { sku: 'free', stock: 0 })).body;
  const c = await WsClient.open(srv);
  assert.equal((await c.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
  const step = await c.step({ update: 'product', id: held.id, data: { _atomics: { stock: { decrement: 1 } } } });
  assert.equal(step.ok, true, JSON.stringify(step));

  // 200 writes to another row, from 20 clients, all answered while the transaction stays open.
  const answers = await parallel(20, async () => {
    const got = [];
    for (let i = 0; i < 10; i++) {
      const r = await srv.api('PATCH', `/api/product/${free.id}`, { _atomics: { stock: { increment: 1 } } });
      expectStatus(r, 200);
      got.push(r.body.stock);
    }
    return got;
  });
  const values = answers.flat();
  assert.equal(new Set(values).size, 200, 'every answer a distinct new value');
  assert.equal(Math.max(...values), 200);

  // A write to the held row waits for the transaction, then applies on top of it.
  const blocked = srv.api('PATCH', `/api/product/${held.id}`, { _atomics: { stock: { decrement: 10 } } });
  const first = await Promise.race([blocked.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);
  assert.equal(first, 'waiting', 'a write to the row the transaction holds must wait for it');
  assert.equal((await c.call({ op: 'commit' })).ok, true);
  const after = await blocked;
  expectStatus(after, 200);
  assert.equal(after.body.stock, 89, 'the waiting write applied after the commit: 100 - 1 - 10');
  c.close();
  await srv.stop();
});

test('a write waiting for a row an open transaction holds does not stall its lane: the lane\'s other writes go on, and it applies after the commit', pgOnly, async () => {
  // One lane, so the held row's write and the others share it.
  const srv = await startServer({ args: ['--lanes', '1', '--max-txn-ms', '20000', '--queue-timeout', '15000'] });
  const held = (await srv.api('POST', '/api/product', { sku: 'held', stock: 100 })).body;
  const free = (await srv.api('POST', '/api/product', { sku: 'free', stock: 0 })).body;
  const c = await WsClient.open(srv);
  assert.equal((await c.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
  assert.equal((await c.step({ update: 'product', id: held.id, data: { _atomics: { stock: { decrement: 1 } } } })).ok, true);
  const blocked = srv.api('PATCH', `/api/product/${held.id}`, { _atomics: { stock: { decrement: 10 } } });
  await new Promise((r) => setTimeout(r, 200));
  // 100 writes to another row through the same lane, while the blocked one waits for 3 s of the transaction.
  const others = (async () => {
    for (let i = 0; i < 100; i++) {
      expectStatus(await srv.api('PATCH', `/api/product/${free.id}`, { _atomics: { stock: { increment: 1 } } }), 200);
    }
    return 'done';
  })();
  const first = await Promise.race([others, new Promise((r) => setTimeout(() => r('stalled'), 3000))]);
  assert.equal(first, 'done', 'writes to other rows must not wait for the open transaction, even in the same lane');
  const early = await Promise.race([blocked.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 10))]);
  assert.equal(early, 'waiting', 'the write to the held row still waits: it is not failed');
  assert.equal((await c.call({ op: 'commit' })).ok, true);
  const r = await blocked;
  expectStatus(r, 200);
  assert.equal(r.body.stock, 89, 'applied once, after the commit: 100 - 1 - 10');
  c.close();
  await srv.stop();
});

const decrement = (id) => ({ update: 'product', id, data: { _atomics: { stock: { decrement: 1 } } } });

// PostgreSQL breaks a deadlock in the transaction that has waited longest
// (its deadlock_timeout, 1 s, runs out first): the tests below choose which.
test('a deadlock that makes a batch transaction the victim: it is re-run on the server, invisibly, and applies once', pgOnly, async () => {
  const srv = await startServer({ args: ['--max-txn-ms', '20000'] });
  const a = (await srv.api('POST', '/api/product', { sku: 'a', stock: 100 })).body;
  const b = (await srv.api('POST', '/api/product', { sku: 'b', stock: 100 })).body;
  const c = await WsClient.open(srv);
  assert.equal((await c.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
  assert.equal((await c.step(decrement(a.id))).ok, true);                              // the session holds a
  const batch = srv.api('POST', '/api/transaction', { steps: [decrement(b.id), decrement(a.id)] }); // holds b, waits for a
  await new Promise((r) => setTimeout(r, 300));
  const second = await c.step(decrement(b.id));       // waits for b: a deadlock; the batch has waited longer
  assert.equal(second.ok, true, `the session goes on once the batch gives way: ${JSON.stringify(second)}`);
  assert.equal((await c.call({ op: 'commit' })).ok, true);
  const r = await batch;
  expectStatus(r, 200); // re-run after the session's commit, and applied
  assert.deepEqual(r.body.results.map((x) => x.stock), [98, 98], 'the re-run saw the session\'s committed writes');
  c.close();
  await srv.stop();
});

test('a deadlock that makes an interactive transaction the victim: 409 CONFLICT with rolledBack, nothing of it applied', pgOnly, async () => {
  const srv = await startServer({ args: ['--max-txn-ms', '20000'] });
  const a = (await srv.api('POST', '/api/product', { sku: 'a', stock: 100 })).body;
  const b = (await srv.api('POST', '/api/product', { sku: 'b', stock: 100 })).body;
  const one = await WsClient.open(srv);
  const two = await WsClient.open(srv);
  for (const c of [one, two]) assert.equal((await c.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
  assert.equal((await one.step(decrement(a.id))).ok, true);
  assert.equal((await two.step(decrement(b.id))).ok, true);
  const waiting = one.step(decrement(b.id));          // one waits for b first
  await new Promise((r) => setTimeout(r, 300));
  const other = two.step(decrement(a.id));            // two waits for a: a deadlock, and one has waited longer
  const refused = await waiting;
  assert.equal(refused.ok, false, JSON.stringify(refused));
  assert.equal(refused.error.code, 'CONFLICT', JSON.stringify(refused));
  assert.equal(refused.rolledBack, true, 'rolled back, so the client may run it again');
  assert.match(refused.error.message, /again|retry/i);
  assert.equal((await other).ok, true);
  assert.equal((await two.call({ op: 'commit' })).ok, true);
  const stock = async (id) => (await srv.api('GET', `/api/product/${id}`)).body.stock;
  assert.deepEqual([await stock(a.id), await stock(b.id)], [99, 99], 'only the survivor\'s two decrements');
  for (const c of [one, two]) c.close();
  await srv.stop();
});

test('a full pool of transaction connections: begin waits --queue-timeout, then 503 OVERLOADED, and nothing is lost', pgOnly, async () => {
  const srv = await startServer({ args: ['--sessions', '2', '--queue-timeout', '400', '--max-txn-ms', '10000'] });
  const p = (await srv.api('POST', '/api/product', { sku: 'p', stock: 0 })).body;
  const open = [await WsClient.open(srv), await WsClient.open(srv)];
  for (const c of open) assert.equal((await c.call({ op: 'begin', timeoutMs: 10000 })).ok, true);
  const third = await WsClient.open(srv);
  const t0 = Date.now();
  const refused = await third.call({ op: 'begin', timeoutMs: 10000 });
  assert.equal(refused.ok, false, JSON.stringify(refused));
  assert.equal(refused.error.code, 'OVERLOADED');
  assert.ok(Date.now() - t0 < 5000, 'answered at its wait bound, not when a transaction ended');
  // Plain writes are not held up by the full pool.
  const w = await srv.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
  expectStatus(w, 200);
  for (const c of open) assert.equal((await c.call({ op: 'rollback' })).ok, true);
  // A connection is free again: begin works.
  assert.equal((await third.call({ op: 'begin' })).ok, true);
  assert.equal((await third.call({ op: 'commit' })).ok, true);
  for (const c of [...open, third]) c.close();
  await srv.stop();
});

test('group commit on PostgreSQL: /metrics counts batches, so writes per commit can be read off', pgOnly, async () => {
  const srv = await startServer();
  const p = (await srv.api('POST', '/api/product', { sku: 'hot', stock: 0 })).body;
  const before = await metrics(srv);
  await parallel(50, async () => {
    for (let i = 0; i < 40; i++) {
      expectStatus(await srv.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } }), 200);
    }
  });
  const m = await metrics(srv);
  const writes = m.tally_writes_total - before.tally_writes_total;
  const batches = m.tally_batches_total - before.tally_batches_total;
  assert.equal(writes, 2000);
  assert.ok(batches >= 1 && batches <= writes, `batches ${batches}`);
  assert.equal(m.tally_backend_info, 1);
  // /health names the backend and, on PostgreSQL, the synchronous standbys (none on this test cluster).
  const h = await srv.api('GET', '/health');
  assert.deepEqual(h.body, { status: 'ok', backend: 'postgresql', synchronousStandbys: 0 });
  const r = await srv.api('GET', `/api/product/${p.id}`);
  assert.equal(r.body.stock, 2000);
  console.log(`# ${writes} writes in ${batches} commits: ${(writes / batches).toFixed(1)} writes per commit`);
  await srv.stop();
});

test('tally copy moves a SQLite folder into an empty PostgreSQL database: every record, ids, fences, limits, answers', pgOnly, async () => {
  const s = shopSchema();
  s.limits = { login: { rate: 10, periodMs: 60000, burst: 5 } };
  const schemaFile = `${tempDir('tally-copy-schema-')}/shop.json`;
  (await import('node:fs')).writeFileSync(schemaFile, JSON.stringify(s));
  const folder = tempDir('tally-copy-src-');

  // The source: a SQLite server with records of every model, deletions, links, a lock, a limit, an idempotent write.
  const src = await startServer({ schema: schemaFile, dataDir: folder, backend: 'sqlite' });
  const api = src.api;
  for (let i = 0; i < 30; i++) await api('POST', '/api/customer', { name: `c${i}`, email: `c${i}@x.org`, orderCount: i });
  for (const id of [28, 29, 30]) expectStatus(await api('DELETE', `/api/customer/${id}`), 200); // ids never to be reused
  const ev = (await api('POST', '/api/event', { soldTicketCount: 0, availableTicketCount: 10 })).body;
  for (let i = 0; i < 3; i++) await api('POST', '/api/ticket', { event: { _link: ev.id } });
  const post = (await api('POST', '/api/post', { title: 'tab\there\nnewline \\ back', images: [{ create: { url: 'https://x/1.png' } }] })).body;
  await api('POST', '/api/product', { sku: 'ünïcode ✓', stock: 7 });
  let lock;
  for (let i = 0; i < 3; i++) {
    lock = (await api('POST', '/api/locks/job/acquire', { ttlMs: 60000 })).body;
    await api('POST', '/api/locks/job/release', { token: lock.token });
  }
  assert.equal(lock.fence, 3);
  for (let i = 0; i < 3; i++) await api('POST', '/api/limits/login/ada', {});
  const idem = await api('POST', '/api/customer', { name: 'once' }, { headers: { 'idempotency-key': 'k-1' } });
  expectStatus(idem, 201);
  const models = Object.keys(s.models);
  const before = {};
  for (const m of models) before[m] = await listAll(api, m);
  const feedBefore = (await api('GET', '/api/changes?after=0&first=1000')).body;
  await src.stop();

  const target = dbUrl(tempDir('tally-copy-dst-'));
  const r = await runTally(['copy', '--schema', schemaFile, '--from', folder, '--to', target]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /copied 35 record\(s\), 1 lock\(s\), 1 rate-limit state\(s\), 1 stored answer\(s\) and 0 API key\(s\)/, r.stdout);

  // A second copy into the same (now filled) database is refused and changes nothing.
  const again = await runTally(['copy', '--schema', schemaFile, '--from', folder, '--to', target]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /empty/);

  const dst = await startServer({ schema: schemaFile, args: ['--db', target], backend: 'none' });
  for (const m of models) assert.deepEqual(await listAll(dst.api, m), before[m], `every ${m} record, as it was`);
  const next = await dst.api('POST', '/api/customer', { name: 'new' });
  expectStatus(next, 201);
  assert.ok(next.body.id > 31, `ids go on past the highest ever given (31), got ${next.body.id}`);
  const relock = await dst.api('POST', '/api/locks/job/acquire', { ttlMs: 1000 });
  assert.equal(relock.body.fence, 4, 'the fence keeps growing from where it was');
  const limited = await dst.api('POST', '/api/limits/login/ada', {});
  assert.ok(limited.body.remaining < 4, `the limit state came along (a fresh key would have 4 left): ${limited.text}`);
  const replay = await dst.api('POST', '/api/customer', { name: 'once' }, { headers: { 'idempotency-key': 'k-1' } });
  assert.deepEqual(replay.body, idem.body, 'the stored answer replays');
  const got = await dst.api('GET', `/api/post/${post.id}`);
  assert.equal(got.body.title, 'tab\there\nnewline \\ back');
  // the change feed came along, its seqs going on: the copy itself added no changes
  const feedAfter = (await dst.api('GET', `/api/changes?after=0&first=1000`)).body;
  assert.deepEqual(feedAfter.changes.slice(0, feedBefore.changes.length), feedBefore.changes);
  const fresh = feedAfter.changes.slice(feedBefore.changes.length);
  assert.ok(fresh.length >= 1 && fresh.every((x) => x.seq > feedBefore.next), 'new writes after the copied feed');
  await dst.stop();
});

test('tally copy carries API keys: the token works on PostgreSQL, open mode stays closed, a stored answer stays its key\'s, new keys get new ids', pgOnly, async () => {
  const folder = tempDir('tally-copy-keys-src-');
  const token = await createKey(folder, 'app', ['write'], 'sqlite');
  const other = await createKey(folder, 'other', ['write'], 'sqlite');
  const src = await startServer({ dataDir: folder, backend: 'sqlite' });
  const made = await withToken(src, token)('POST', '/api/customer', { name: 'once' }, { headers: { 'idempotency-key': 'k-1' } });
  expectStatus(made, 201);
  await src.stop();
  await revokeKey(folder, 'other', 'sqlite');

  const target = dbUrl(tempDir('tally-copy-keys-dst-'));
  const r = await runTally(['copy', '--schema', SHOP_SCHEMA, '--from', folder, '--to', target]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /and 1 API key\(s\)/, r.stdout);
  const dst = await startServer({ args: ['--db', target], backend: 'none' });
  try {
    expectError(await dst.api('GET', '/api/customer'), 401, 'UNAUTHORIZED');               // keys existed: no open mode
    expectError(await withToken(dst, other)('GET', '/api/customer'), 401, 'UNAUTHORIZED'); // the revoked one stays revoked
    const again = await withToken(dst, token)('POST', '/api/customer', { name: 'once' }, { headers: { 'idempotency-key': 'k-1' } });
    expectStatus(again, 201);
    assert.deepEqual(again.body, made.body, 'the stored answer replays for its key');
    // a key made now gets an id past the copied ones (the sequence moved on) and works at once
    const third = await runTally(['keys', 'create', '--name', 'third', '--scope', 'read', '--db', target]);
    assert.equal(third.code, 0, third.stderr);
    const fresh = third.stdout.trim();
    await within(3000, 'the new key', async () => (await withToken(dst, fresh)('GET', '/api/customer')).status === 200);
  } finally {
    await dst.stop();
  }
});

test('a PostgreSQL with fsync off: refused at start-up, saying why, unless --durability-relaxed', pgOnly, async () => {
  const dir = tempDir('tally-pg-nofsync-');
  const pg = path.join(ROOT, 'scripts', 'pg.sh');
  const up = spawnSync(pg, ['start', dir], { encoding: 'utf8', env: { ...process.env, PG_FSYNC: 'off' }, timeout: 60000 });
  assert.equal(up.status, 0, up.stderr);
  const url = `${up.stdout.trim()}/tally`;
  try {
    const refused = await runTally(['serve', '--schema', SHOP_SCHEMA, '--db', url, '--listen', '127.0.0.1:0']);
    assert.equal(refused.started, false, 'it must not serve on a database that does not fsync');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /fsync/, refused.stderr);
    assert.match(refused.stderr, /durability-relaxed/, 'the message names the way out');
    const relaxed = await startServer({ args: ['--db', url, '--durability-relaxed'], backend: 'none' });
    expectStatus(await relaxed.api('POST', '/api/customer', { name: 'relaxed' }), 201);
    await relaxed.stop();
  } finally {
    spawnSync(pg, ['stop', dir], { encoding: 'utf8', timeout: 60000 });
  }
});

/**
 * A TCP proxy in front of PostgreSQL that, once armed, cuts the first
 * connection that sends COMMIT: either after PostgreSQL has answered it (the
 * answer is lost: it did commit) or before passing it on (it never arrived).
 */
async function commitCutter(pgPort) {
  const state = { armed: null, cuts: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(pgPort, '127.0.0.1');
    let committing = false;
    let lane = false;   // a writer lane's connection (it records batch ids); the change feed's commits are not cut
    const cut = () => { state.cuts++; state.armed = null; client.destroy(); upstream.destroy(); };
    client.on('data', (d) => {
      if (d.includes('tally_batches')) lane = true;
      if (state.armed && lane && d.includes('COMMIT')) {
        if (state.armed === 'before') return cut();
        committing = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => { if (committing) return cut(); client.write(d); });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { state, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

test('a connection lost during COMMIT: the batch id tells whether it committed, before answering either way', pgOnly, async () => {
  const real = dbUrl(tempDir('tally-commit-cut-'));
  const pgPort = Number(/:(\d+)\//.exec(real)[1]);
  const proxy = await commitCutter(pgPort);
  const url = real.replace(`:${pgPort}/`, `:${proxy.port}/`);
  const srv = await startServer({ backend: 'none', args: ['--db', url, '--lanes', '1'] });
  try {
    const p = (await srv.api('POST', '/api/product', { sku: 'cut', stock: 0 })).body;
    const inc = () => srv.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
    // The answer to COMMIT is lost; PostgreSQL did commit: found by its batch id, so 200 and applied once.
    proxy.state.armed = 'after';
    const lost = await inc();
    assert.equal(proxy.state.cuts, 1, 'the proxy cut the connection during COMMIT');
    expectStatus(lost, 200);
    assert.equal(lost.body.stock, 1);
    // COMMIT itself is lost: nothing committed, so 503 UNAVAILABLE and nothing applied.
    proxy.state.armed = 'before';
    const never = await inc();
    assert.equal(proxy.state.cuts, 2);
    assert.equal(never.status, 503, never.text);
    assert.equal(never.body.error.code, 'UNAVAILABLE');
    const now = await srv.api('GET', `/api/product/${p.id}`);
    assert.equal(now.body.stock, 1, 'the write whose COMMIT never arrived was not applied; the other was, once');
    // And the server goes on.
    for (let i = 0; i < 10; i++) expectStatus(await inc(), 200);
    assert.equal((await srv.api('GET', `/api/product/${p.id}`)).body.stock, 11);
  } finally {
    await srv.stop();
    await proxy.close();
  }
});

test('PostgreSQL restarted under a load of increments: only successes and JSON 503s, nothing acknowledged lost, healthy again', pgOnly, async () => {
  const dir = tempDir('tally-pg-restart-');
  const pg = path.join(ROOT, 'scripts', 'pg.sh');
  const up = spawnSync(pg, ['start', dir], { encoding: 'utf8', timeout: 60000 });
  assert.equal(up.status, 0, up.stderr);
  const url = `${up.stdout.trim()}/tally`;
  const srv = await startServer({ backend: 'none', args: ['--db', url] });
  try {
    const p = (await srv.api('POST', '/api/product', { sku: 'restart', stock: 0 })).body;
    let sent = 0, acked = 0, refused = 0, health503 = 0;
    const odd = [];
    const stopAt = Date.now() + 7000;
    const restarted = new Promise((resolve) => {
      setTimeout(() => {
        const r = spawn(pg, ['restart', dir], { stdio: 'ignore' });
        r.on('exit', (code) => resolve(code));
      }, 1500);
    });
    const watch = (async () => { // /health while it happens
      while (Date.now() < stopAt) {
        const h = await fetch(srv.url + '/health').catch(() => null);
        if (h && h.status === 503) health503++;
        if (h) await h.arrayBuffer();
        await sleep(50);
      }
    })();
    await parallel(20, async () => {
      while (Date.now() < stopAt) {
        sent++;
        const r = await srv.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
        if (r.status === 200) acked++;
        else if (r.status === 503 && r.body && r.body.error && ['UNAVAILABLE', 'OVERLOADED'].includes(r.body.error.code)) {
          refused++;
          await sleep(20);
        } else odd.push(`${r.status} ${r.text}`);
      }
    });
    await watch;
    assert.equal(await restarted, 0, 'pg_ctl restart worked');
    assert.deepEqual(odd.slice(0, 5), [], 'every answer is a success or a JSON 503');
    // Healthy again within seconds.
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      const h = await fetch(srv.url + '/health');
      await h.arrayBuffer();
      healthy = h.status === 200;
      if (!healthy) await sleep(100);
    }
    assert.ok(healthy, '/health answers 200 again within 10 s');
    const stored = (await srv.api('GET', `/api/product/${p.id}`)).body.stock;
    console.log(`# sent ${sent}, acknowledged ${acked}, refused 503 ${refused}, stored ${stored}; /health said 503 ${health503} time(s)`);
    assert.ok(refused > 0, 'the restart was felt: some writes were refused');
    assert.ok(stored >= acked && stored <= sent, `acknowledged ${acked} <= stored ${stored} <= sent ${sent}`);
    const after = await srv.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
    expectStatus(after, 200);
    assert.equal(after.body.stock, stored + 1);
  } finally {
    await srv.stop().catch(() => {});
    spawnSync(pg, ['stop', dir], { encoding: 'utf8', timeout: 60000 });
  }
});
