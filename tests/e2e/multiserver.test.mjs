// Many Tally servers on one PostgreSQL database (docs/architecture.md, "PostgreSQL:
// many servers on one database"): three servers share one database and
// every test spreads its calls over them (round-robin per request), so that
// what one server promises alone must hold across servers too: no lost
// increment, min/max and guards judged against the latest committed value,
// transactions all or nothing, locks that exclude (with waiters woken on
// another server than the one that released), GCRA limits and
// Idempotency-Key replays shared through the database, servers starting at
// once on an empty database, an interactive transaction holding only its
// rows, the survivors of a kill -9 going on serving with nothing
// acknowledged lost, a rolling additive schema change, --portable, and a
// pg_ctl restart under load across all three. PostgreSQL only: skipped on
// SQLite (one server per data folder, by its flock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

import {
  BACKEND, startServer, stopAll, tempDir, dbUrl, expectError, expectStatus, parallel, sleep, listAll,
  runTally, shopSchema, writeSchema, SHOP_SCHEMA, metrics, ROOT,
} from './lib/server.mjs';
import { RawConnection } from './lib/rawhttp.mjs';
import { clients } from './lib/load.mjs';
import { headerConnections, closeAll, shopWithLimits, limitPath, lockPath, raceAll } from './lib/primitives.mjs';
import { WsClient } from './lib/wsclient.mjs';
import { findWhere, ticketSaleSteps } from './lib/records.mjs';

const pgOnly = (opts = {}) => (BACKEND === 'postgres'
  ? opts
  : { ...opts, skip: 'PostgreSQL only: many servers share one database there (run with TALLY_DB_URL=postgresql://…)' });

test.after(stopAll);

/**
 * Three Tally servers on one fresh PostgreSQL database. opts: schema, args
 * (extra flags for every server), together (start all three at the same
 * moment; otherwise the first migrates the empty database, then the other
 * two start side by side). Returns {url, servers, stop}.
 */
async function threeServers(opts = {}) {
  const url = dbUrl(tempDir('tally-multi-'));
  const one = () => startServer({ schema: opts.schema, backend: 'none', args: ['--db', url, ...(opts.args || [])] });
  let servers;
  if (opts.together) {
    servers = await Promise.all([one(), one(), one()]);
  } else {
    const first = await one();
    servers = [first, ...(await Promise.all([one(), one()]))];
  }
  return {
    url,
    servers,
    async stop() { await Promise.all(servers.map((s) => s.stop().catch(() => {}))); },
  };
}

/** One raw keep-alive connection to each server, for one client that sends each request to the next server. */
async function rotatingClients(servers, n) {
  const perServer = await Promise.all(servers.map((s) => clients(s, n)));   // lib/load.mjs Clients reopen after Connection: close
  return Array.from({ length: n }, (_, k) => ({
    /** request number i of client k goes to server (k + i) mod 3 */
    at: (i) => (k + i) % servers.length,
    conn: (s) => perServer[s][k],
    close() { for (const p of perServer) p[k].close(); },
  }));
}

const countBy = (xs, f) => xs.reduce((m, x) => { const k = f(x); m[k] = (m[k] || 0) + 1; return m; }, {});
const statuses = (rs) => JSON.stringify(countBy(rs, (r) => r.status));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const ms = (x) => `${Math.round(x)} ms`;
/** Resolves with `value` after `after` ms, without keeping the process alive (for Promise.race bounds). */
const later = (after, value) => new Promise((r) => setTimeout(() => r(value), after).unref());

async function createOn(srv, model, data) {
  const r = await srv.api('POST', `/api/${model}`, data);
  expectStatus(r, 201);
  return r.body;
}

async function getOn(srv, model, id) {
  const r = await srv.api('GET', `/api/${model}/${id}`);
  expectStatus(r, 200);
  return r.body;
}

test('7b. an additive schema change rolls: servers on the older schema go on serving; a server started with it afterwards is refused, naming the versions', pgOnly({ timeout: 90000 }), async () => {
  const url = dbUrl(tempDir('tally-multi-roll-'));
  const newer = shopSchema();
  newer.models.customer.fields.tier = { type: 'string', default: 'basic' };
  newer.models.note = { fields: { text: { type: 'string', required: true } } };
  const newerFile = writeSchema(newer);
  const old1 = await startServer({ backend: 'none', args: ['--db', url] });
  const old2 = await startServer({ backend: 'none', args: ['--db', url] });
  let fresh;
  try {
    fresh = await startServer({ schema: newerFile, backend: 'none', args: ['--db', url] });   // migrates to version 2
    // the older servers go on serving: their creates get the new field's default; they read and update what the newer one wrote
    const a = await createOn(old1, 'customer', { name: 'Old', email: 'old@example.com' });
    assert.equal((await getOn(fresh, 'customer', a.id)).tier, 'basic');
    const b = await createOn(fresh, 'customer', { name: 'New', email: 'new@example.com', tier: 'gold' });
    const seenOld = await getOn(old2, 'customer', b.id);
    assert.equal(seenOld.name, 'New');
    assert.equal(seenOld.tier, undefined, 'the older server shows only the fields its schema has');
    const r = await old2.api('PATCH', `/api/customer/${b.id}`, { _atomics: { orderCount: { increment: 2 } } });
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 2);
    assert.equal((await getOn(fresh, 'customer', b.id)).tier, 'gold', 'an older server\'s update keeps the newer field');
    expectStatus(await fresh.api('POST', '/api/note', { text: 'only on the newer schema' }), 201);

    // a server started with the older schema now: refused, saying why; the newer schema still starts
    const refused = await runTally(['serve', '--schema', SHOP_SCHEMA, '--db', url, '--listen', '127.0.0.1:0']);
    assert.equal(refused.started, false);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /this schema is version 1 of the database, which was migrated to version 2 at \d{4}-/);
    assert.match(refused.stderr, /Start with the newest schema file/);
    const again = await runTally(['serve', '--schema', newerFile, '--db', url, '--listen', '127.0.0.1:0']);
    assert.equal(again.started, true, again.stderr);
    // the running older servers were not disturbed by either start
    expectStatus(await old1.api('PATCH', `/api/customer/${a.id}`, { _atomics: { orderCount: { increment: 1 } } }), 200);
  } finally {
    await Promise.all([old1, old2, fresh].filter(Boolean).map((s) => s.stop().catch(() => {})));
  }
});

// ---------------------------------------------------------------------------
test('1. lost updates: 50 clients x 200 increments over 3 servers end at exactly 10,000, every answer distinct', pgOnly({ timeout: 180000 }), async () => {
  const CLIENTS = 50;
  const EACH = 200;
  const m = await threeServers();
  try {
    const [s1] = m.servers;
    const c = await createOn(s1, 'customer', { name: 'hot row' });
    const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
    const cs = await rotatingClients(m.servers, CLIENTS);
    const failures = [];
    const t0 = Date.now();
    let perClient;
    try {
      perClient = await parallel(CLIENTS, async (k) => {
        const seen = [];
        for (let i = 0; i < EACH; i++) {
          const s = cs[k].at(i);
          const r = await cs[k].conn(s).request('PATCH', `/api/customer/${c.id}`, body);
          if (r.status !== 200) { failures.push(`client ${k} #${i} on server ${s + 1}: ${r.status} ${r.text}`); continue; }
          seen.push(r.body.orderCount);
        }
        return seen;
      });
    } finally {
      for (const x of cs) x.close();
    }
    const secs = (Date.now() - t0) / 1000;
    console.log(`# ${CLIENTS * EACH} increments over 3 servers in ${secs.toFixed(1)} s (${Math.round(CLIENTS * EACH / secs)}/s)`);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} increments failed`);
    const all = perClient.flat();
    assert.equal(all.length, CLIENTS * EACH);
    assert.equal(new Set(all).size, CLIENTS * EACH, 'every increment must answer a value no other increment got (on any server)');
    assert.equal(Math.min(...all), 1);
    assert.equal(Math.max(...all), CLIENTS * EACH);
    // a client's later increment (on another server) sees its earlier one
    for (const [k, seen] of perClient.entries()) {
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i] > seen[i - 1], `client ${k}: answer ${seen[i]} after ${seen[i - 1]}`);
      }
    }
    for (const [i, s] of m.servers.entries()) {
      assert.equal((await getOn(s, 'customer', c.id)).orderCount, CLIENTS * EACH, `server ${i + 1} reads the stored value`);
    }
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('2. the invariant across servers: stock 100 (min 0), 300 concurrent decrements: exactly 100 succeed, 200 INVARIANT, stock 0', pgOnly({ timeout: 120000 }), async () => {
  const m = await threeServers();
  try {
    const p = await createOn(m.servers[0], 'product', { sku: 'HOT-SKU', stock: 100 });
    const body = JSON.stringify({ _atomics: { stock: { decrement: 1 } } });
    const N = 300;
    const perServer = await Promise.all(m.servers.map((s) => clients(s, N / 3)));   // every connection open before any request
    let answers;
    try {
      answers = await parallel(N, (i) => perServer[i % 3][Math.floor(i / 3)].request('PATCH', `/api/product/${p.id}`, body));
    } finally {
      for (const cs of perServer) for (const c of cs) c.close();
    }
    const ok = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status === 422);
    const other = answers.filter((r) => r.status !== 200 && r.status !== 422);
    console.log(`# decrements: ${statuses(answers)}; successes per server ${JSON.stringify(countBy(answers.map((r, i) => [r, i]).filter(([r]) => r.status === 200), ([, i]) => i % 3 + 1))}`);
    assert.deepEqual(other.map((r) => `${r.status} ${r.text}`), [], 'only 200 and 422 answers');
    assert.equal(ok.length, 100, 'exactly 100 decrements succeed');
    assert.equal(refused.length, 200, 'exactly 200 are refused');
    for (const r of refused) expectError(r, 422, 'INVARIANT');
    for (const r of answers) assert.ok(!/"stock"\s*:\s*-/.test(r.text), `negative stock in ${r.text}`);
    assert.deepEqual(ok.map((r) => r.body.stock).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i),
      'the successful decrements answer 99, 98, ..., 0, once each');
    for (const s of m.servers) assert.equal((await getOn(s, 'product', p.id)).stock, 0);
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('3a. inventory across servers: stock 101, 150 clients reserve 2 with a guard: 50 reservations, no oversell, stock 1', pgOnly({ timeout: 120000 }), async () => {
  const m = await threeServers();
  try {
    const p = await createOn(m.servers[0], 'product', { sku: 'INV', stock: 101 });
    const N = 150;
    const body = JSON.stringify({ _where: { stock: { greaterThanOrEqual: 2 } }, _atomics: { stock: { decrement: 2 } } });
    const perServer = await Promise.all(m.servers.map((s) => clients(s, N / 3)));
    let answers;
    try {
      answers = await parallel(N, (i) => perServer[i % 3][Math.floor(i / 3)].request('PATCH', `/api/product/${p.id}`, body));
    } finally {
      for (const cs of perServer) for (const c of cs) c.close();
    }
    console.log(`# reservations: ${statuses(answers)}`);
    const ok = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status !== 200);
    assert.deepEqual(refused.filter((r) => r.status !== 409).map((r) => `${r.status} ${r.text}`), [], 'only 200 and 409 answers');
    for (const r of answers) assert.ok(!/"stock"\s*:\s*-/.test(r.text), `negative stock in ${r.text}`);
    assert.equal(ok.length, 50, 'exactly 50 reservations of 2 fit in 101');
    assert.deepEqual(ok.map((r) => r.body.stock).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => 1 + 2 * i),
      'the reservations answer 99, 97, ..., 1, once each: a serial order across servers');
    for (const r of refused) {
      expectError(r, 409, 'GUARD_FAILED');
      assert.ok(r.body.error.current.stock < 2, `refused while ${r.body.error.current.stock} were in stock: ${r.text}`);
    }
    for (const s of m.servers) assert.equal((await getOn(s, 'product', p.id)).stock, 1, 'stock = 101 - 2 x successes');
  } finally {
    await m.stop();
  }
});

test('3b. ticket sale across servers: 180 buyers (one transaction each) for 60 tickets: 60 sales, 60 tickets, counts consistent', pgOnly({ timeout: 120000 }), async () => {
  const m = await threeServers();
  try {
    const TICKETS = 60;
    const BUYERS = 180;
    const e = await createOn(m.servers[0], 'event', { availableTicketCount: TICKETS });
    const perServer = await Promise.all(m.servers.map((s) => clients(s, BUYERS / 3)));
    let answers;
    try {
      answers = await parallel(BUYERS, (i) => {
        const steps = ticketSaleSteps(e.id, i);
        return perServer[i % 3][Math.floor(i / 3)].request('POST', '/api/transaction', { steps });
      });
    } finally {
      for (const cs of perServer) for (const c of cs) c.close();
    }
    console.log(`# ticket sales: ${statuses(answers)}`);
    const ok = answers.map((r, i) => [r, i]).filter(([r]) => r.status === 200);
    const refused = answers.map((r, i) => [r, i]).filter(([r]) => r.status !== 200);
    assert.equal(ok.length, TICKETS, `exactly ${TICKETS} buyers succeed; statuses ${statuses(answers)}`);
    for (const [r, i] of refused) {
      expectError(r, 422, 'INVARIANT');
      assert.equal(r.body.error.step, i % 2 === 0 ? 1 : 0, `the counting step is named: ${r.text}`);
    }
    const sold = [];
    const ticketIds = new Set();
    for (const [r, i] of ok) {
      const [a, b] = r.body.results;
      const [t, sale] = i % 2 === 0 ? [a, b] : [b, a];
      assert.equal(t.event, e.id, r.text);
      assert.equal(sale.soldTicketCount + sale.availableTicketCount, TICKETS, r.text);
      sold.push(sale.soldTicketCount);
      ticketIds.add(t.id);
    }
    assert.deepEqual(sold.sort((x, y) => x - y), Array.from({ length: TICKETS }, (_, k) => k + 1), 'each sale answers a distinct count');
    for (const s of m.servers) {
      const after = await getOn(s, 'event', e.id);
      assert.deepEqual([after.soldTicketCount, after.availableTicketCount], [TICKETS, 0]);
    }
    const tickets = await findWhere(m.servers[2].api, 'ticket', 'event', e.id);
    assert.equal(tickets.length, TICKETS, 'exactly as many tickets as sales: no ticket without its count');
    assert.deepEqual(new Set(tickets.map((t) => t.id)), ticketIds, 'the tickets are exactly those of the successful buyers');
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
/**
 * Workers that take the lock `name` in turn (acquire with waitMs, checkLock
 * from another server, read-then-write a counter, release), each call on the
 * server `plan(w, i)` names: {acq, chk, rel} indexes. Returns the holds in
 * grant order with what went wrong; asserts nothing.
 */
async function lockRace(servers, { name, workers, each, ttlMs, holdMs, deadline, counterId, plan }) {
  const cs = await rotatingClients(servers, workers);
  const holds = [];          // {w, fence, acqServer, relServer, grantAt, releaseSentAt, releaseAt, remainingAtRelease}
  const problems = [];
  let holders = 0;
  let maxHolders = 0;
  const t0 = Date.now();
  try {
    await parallel(workers, async (w) => {
      const c = cs[w];
      for (let i = 0; i < each; i++) {
        const { acq, chk, rel } = plan(w, i);
        let g;
        for (let attempt = 0; attempt < 3 && !g && Date.now() < deadline; attempt++) {
          const r = await c.conn(acq).request('POST', lockPath(name, 'acquire'), { ttlMs, waitMs: 20000 });
          if (r.status === 200) g = r.body;
          else problems.push(`worker ${w} acquire on server ${acq + 1}: ${r.status} ${r.text}`);
        }
        if (!g) return;
        const hold = { w, fence: g.fence, acqServer: acq, relServer: rel, grantAt: Date.now(), expiresAt: Date.parse(g.expiresAt) };
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        if (holders !== 1) problems.push(`worker ${w} got fence ${g.fence} while ${holders - 1} other(s) held the lock`);
        // the lease holds, as the database sees it from another server
        const ck = await c.conn(chk).request('POST', '/api/transaction', { steps: [{ checkLock: name, token: g.token }] });
        if (ck.status !== 200) problems.push(`worker ${w} checkLock on server ${chk + 1} right after its grant: ${ck.status} ${ck.text}`);
        // read-then-write: loses updates unless the lock really excludes
        const cur = await c.conn(chk).request('GET', `/api/customer/${counterId}`);
        await sleep(holdMs);
        const up = await c.conn(chk).request('PATCH', `/api/customer/${counterId}`, { orderCount: cur.body.orderCount + 1 });
        if (up.status !== 200) problems.push(`worker ${w} PATCH: ${up.status} ${up.text}`);
        holders--;                           // no longer acting as the holder once we decide to release
        hold.releaseSentAt = Date.now();
        const rl = await c.conn(rel).request('POST', lockPath(name, 'release'), { token: g.token });
        hold.releaseAt = Date.now();
        if (rl.status !== 200 || rl.body.fence !== g.fence) problems.push(`worker ${w} release on server ${rel + 1}: ${rl.status} ${rl.text}`);
        holds.push(hold);
      }
    });
  } finally {
    for (const x of cs) x.close();
  }
  const secs = (Date.now() - t0) / 1000;
  // [grant answer received, release sent) lies inside each true hold: two of them must never overlap
  const byGrant = [...holds].sort((a, b) => a.grantAt - b.grantAt);
  const overlaps = [];
  for (let i = 1; i < byGrant.length; i++) {
    if (byGrant[i].grantAt < byGrant[i - 1].releaseSentAt) {
      overlaps.push(`fence ${byGrant[i].fence} granted ${byGrant[i - 1].releaseSentAt - byGrant[i].grantAt} ms before fence ${byGrant[i - 1].fence} was released`);
    }
  }
  // hand-offs: from a release answered on one server to the next grant answered on the same or another
  const cross = [];
  const same = [];
  for (let i = 1; i < byGrant.length; i++) {
    const prev = byGrant[i - 1];
    const d = { delay: byGrant[i].grantAt - prev.releaseAt, leaseLeft: prev.expiresAt - prev.releaseAt };
    (byGrant[i].acqServer === prev.relServer ? same : cross).push(d);
  }
  const fmt = (xs) => (xs.length
    ? `median ${ms(median(xs.map((x) => x.delay)))}, max ${ms(Math.max(...xs.map((x) => x.delay)))} (${xs.length}; lease left at the release: median ${ms(median(xs.map((x) => x.leaseLeft)))})`
    : 'none');
  const summary = `${holds.length} grants in ${secs.toFixed(1)} s; hand-off to a waiter on another server than the release's: ${fmt(cross)}; on the same server: ${fmt(same)}`;
  return { holds, byGrant, problems, overlaps, maxHolders, cross, same, summary };
}

function assertLockRace(r, expected) {
  assert.deepEqual(r.problems.slice(0, 5), [], `${r.problems.length} problems`);
  assert.deepEqual(r.overlaps.slice(0, 5), [], 'two holders at once');
  assert.equal(r.maxHolders, 1);
  assert.equal(r.holds.length, expected, 'every planned grant happened');
  const fences = r.byGrant.map((h) => h.fence);
  for (let i = 1; i < fences.length; i++) {
    assert.ok(fences[i] > fences[i - 1], `fences must increase in grant order: ${fences.join(',')}`);
    assert.equal(fences[i], fences[i - 1] + 1, `fences grow by one with every grant: ${fences.join(',')}`);
  }
}

test('4a. lock exclusion with waiters on every server: never two holders, no lost update, fences grow by one in grant order', pgOnly({ timeout: 150000 }), async () => {
  const m = await threeServers();
  try {
    const counter = await createOn(m.servers[0], 'customer', { name: 'lock counter', orderCount: 0 });
    // phase 1: 6 workers, each call of each on the next server (waiters everywhere, releases everywhere)
    const mixed = await lockRace(m.servers, {
      name: 'job', workers: 6, each: 4, ttlMs: 5000, holdMs: 30, deadline: Date.now() + 60000, counterId: counter.id,
      plan: (w, i) => ({ acq: (w + i) % 3, chk: (w + i + 1) % 3, rel: (w + i + 2) % 3 }),
    });
    console.log(`# mixed: ${mixed.summary}`);
    assertLockRace(mixed, 24);
    // phase 2: 4 workers wait on servers 1 and 2 only, every release is on server 3, where no one waits:
    // each hand-off is to a waiter on another server than the release's
    const remote = await lockRace(m.servers, {
      name: 'job', workers: 4, each: 3, ttlMs: 1500, holdMs: 30, deadline: Date.now() + 60000, counterId: counter.id,
      plan: (w, i) => ({ acq: (w + i) % 2, chk: (w + i + 1) % 2, rel: 2 }),
    });
    console.log(`# releases on server 3 only: ${remote.summary}`);
    assertLockRace(remote, 12);
    assert.ok(remote.byGrant[0].fence === mixed.byGrant.at(-1).fence + 1, 'the fence goes on across both phases');
    assert.equal((await getOn(m.servers[1], 'customer', counter.id)).orderCount, 36, 'an update was lost: the lock did not exclude');
    const locks = await m.servers[2].api('GET', '/api/locks');
    assert.equal(locks.body.locks.filter((l) => l.name === 'job').length, 0, 'every grant was released');
  } finally {
    await m.stop();
  }
});

/**
 * A lock handed from a holder on one server to a waiter on another, for each
 * [holder, waiter] pair (the first on one server, as a baseline): asserts
 * every waiter was granted the next fence well before the lease would have
 * ended, so it was woken by the release, not by the lease's end.
 */
async function handoffs(m) {
  const name = 'handoff';
  const TTL = 5000;
  const results = [];
  const pairs = [[0, 0], [0, 1], [1, 2], [2, 0]];   // [holder's server, waiter's server]; the first is the same-server baseline
  for (const [a, b] of pairs) {
    const A = m.servers[a];
    const B = m.servers[b];
    const g = await A.api('POST', lockPath(name, 'acquire'), { ttlMs: TTL });
    expectStatus(g, 200);
    const waiting = B.api('POST', lockPath(name, 'acquire'), { ttlMs: TTL, waitMs: 10000 });
    await sleep(100);                                  // the waiter is parked on server B
    const rl = await A.api('POST', lockPath(name, 'release'), { token: g.body.token });
    const releasedAt = Date.now();
    expectStatus(rl, 200);
    const remaining = Date.parse(g.body.expiresAt) - releasedAt;
    const w = await waiting;
    const delay = Date.now() - releasedAt;
    results.push({ a, b, delay, remaining, status: w.status, fence: w.body?.fence, expect: g.body.fence + 1, text: w.text });
    console.log(`# release on server ${a + 1}, waiter on server ${b + 1}: granted ${ms(delay)} after the release (${ms(remaining)} of the lease were left): ${w.status}`);
    if (w.status === 200) expectStatus(await B.api('POST', lockPath(name, 'release'), { token: w.body.token }), 200);
    else await sleep(TTL);                              // leave the lock free for the next pair
  }
  for (const r of results) {
    assert.equal(r.status, 200, `the waiter on server ${r.b + 1} was not granted: ${r.text}`);
    assert.equal(r.fence, r.expect, 'the next fence');
    assert.ok(r.delay < r.remaining / 2,
      `release on server ${r.a + 1}, waiter on server ${r.b + 1}: granted ${r.delay} ms after the release, with ${r.remaining} ms of the lease left — it waited for the lease, not for the release`);
  }
  return results.length * 2;                            // releases made: each holder's and each waiter's
}

const lockHintMetrics = async (servers) => Promise.all(servers.map(async (s) => {
  const x = await metrics(s);
  return { listening: x.tally_lock_hints_listening, sent: x.tally_lock_hints_sent_total, received: x.tally_lock_hints_received_total, wakeups: x.tally_lock_hint_wakeups_total };
}));

test('4b. a waiter on one server is granted soon after a release on another, not at the end of the lease; the release reaches it as a NOTIFY hint', pgOnly({ timeout: 90000 }), async () => {
  const m = await threeServers();
  try {
    const releases = await handoffs(m);
    // every release was told to every server (after its COMMIT, from the side connection), and the waiters on
    // other servers were woken by those hints rather than by their 250 ms poll
    let seen;
    for (const until = Date.now() + 5000; Date.now() < until; await sleep(50)) {
      seen = await lockHintMetrics(m.servers);
      if (seen.every((x) => x.received >= releases)) break;
    }
    console.log(`# hints per server: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen.map((x) => x.listening), [1, 1, 1], 'every server listens');
    assert.equal(seen.reduce((n, x) => n + x.sent, 0), releases, 'one hint per release');
    for (const x of seen) assert.ok(x.received >= releases, `a server heard ${x.received} of ${releases} releases`);
    assert.ok(seen.reduce((n, x) => n + x.wakeups, 0) >= 1, 'no waiter was woken by a hint');
  } finally {
    await m.stop();
  }
});

test('4c. --portable (no advisory locks, no LISTEN/NOTIFY): three servers start at once; waiters on other servers are granted by polling, long before the lease ends', pgOnly({ timeout: 120000 }), async () => {
  const m = await threeServers({ together: true, args: ['--portable'], schema: shopWithLimits() });
  try {
    const c = await createOn(m.servers[0], 'customer', { name: 'portable', email: 'portable@example.com' });
    for (const s of m.servers) expectStatus(await s.api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } }), 200);
    assert.equal((await getOn(m.servers[2], 'customer', c.id)).orderCount, 3);
    await handoffs(m);
    const seen = await lockHintMetrics(m.servers);
    assert.deepEqual(seen, m.servers.map(() => ({ listening: 0, sent: 0, received: 0, wakeups: 0 })), 'no hints with --portable');
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('5. rate limit across servers: 12 racing calls on one key (burst 5) over 3 servers: exactly 5 allowed, 3 rounds', pgOnly({ timeout: 60000 }), async () => {
  const m = await threeServers({ schema: shopWithLimits() });
  try {
    for (let round = 0; round < 3; round++) {
      const key = `multi-${process.pid}-${Date.now()}-${round}`;
      const conns = (await Promise.all(m.servers.map((s) => headerConnections(s, 4)))).flat();   // 4 a server
      const { rs, ok, no } = await raceAll(conns, limitPath('login', key));
      console.log(`# round ${round + 1}: ${statuses(rs)}`);
      assert.equal(ok.length + no.length, 12, rs.map((r) => `${r.status} ${r.text}`).join('\n'));
      assert.equal(ok.length, 5, `burst 5, allowed ${ok.length}: ${ok.map((r) => r.text).join(' ')}`);
      for (const r of ok) assert.equal(r.body.allowed, true, r.text);
      assert.deepEqual(ok.map((r) => r.body.remaining).sort(), [0, 1, 2, 3, 4], 'remaining 4..0 once each');
      for (const r of no) {
        expectError(r, 429, 'RATE_LIMITED');
        assert.equal(r.body.allowed, false);
        assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After ${r.headers.get('retry-after')}`);
      }
      for (const s of m.servers) expectError(await s.api('POST', limitPath('login', key)), 429, 'RATE_LIMITED');
    }
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('6. one Idempotency-Key raced by 10 requests over 3 servers: created (or incremented) once, every racer gets the stored answer', pgOnly({ timeout: 60000 }), async () => {
  const m = await threeServers();
  try {
    const report = [];
    const failures = [];
    const race = async (method, path, body, key) => {
      const conns = await Promise.all(Array.from({ length: 10 }, (_, i) => headerConnections(m.servers[i % 3], 1).then((x) => x[0])));
      try {
        return await Promise.all(conns.map((c) => c.send(method, path, body, { 'Idempotency-Key': key })));
      } finally {
        closeAll(conns);
      }
    };
    for (let round = 0; round < 3; round++) {
      const key = `multi-create-${process.pid}-${Date.now()}-${round}`;
      const name = `idem ${key}`;
      const rs = await race('POST', '/api/customer', { name }, key);
      report.push(`create round ${round + 1}: ${rs.map((r, i) => `s${i % 3 + 1}:${r.status}${r.status >= 300 ? ' ' + (r.body?.error?.code ?? r.text) : ''}`).join(', ')}`);
      const ok = rs.filter((r) => r.status >= 200 && r.status < 300);
      assert.ok(ok.length >= 1, `no racer succeeded: ${rs.map((r) => `${r.status} ${r.text}`).join('\n')}`);
      for (const r of ok) assert.deepEqual({ status: r.status, body: r.body }, { status: ok[0].status, body: ok[0].body }, 'every success is the one stored answer (same id)');
      const recs = (await listAll(m.servers[(round + 1) % 3].api, 'customer')).filter((c) => c.name === name);
      assert.equal(recs.length, 1, `created ${recs.length} records`);
      assert.equal(recs[0].id, ok[0].body.id);
      for (const [i, r] of rs.entries()) if (r.status !== ok[0].status) failures.push(`create round ${round + 1}, racer ${i} on server ${i % 3 + 1}: ${r.status} ${r.text}`);
    }
    const c = await createOn(m.servers[0], 'customer', { name: 'idem counter' });
    const key = `multi-patch-${process.pid}-${Date.now()}`;
    const rs = await race('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } }, key);
    report.push(`increment: ${rs.map((r, i) => `s${i % 3 + 1}:${r.status}${r.status >= 300 ? ' ' + (r.body?.error?.code ?? r.text) : ''}`).join(', ')}`);
    const ok = rs.filter((r) => r.status === 200);
    assert.ok(ok.length >= 1);
    for (const r of ok) assert.deepEqual(r.body, ok[0].body);
    assert.equal(ok[0].body.orderCount, 1);
    assert.equal((await getOn(m.servers[2], 'customer', c.id)).orderCount, 1, 'the increment was applied more than once');
    for (const [i, r] of rs.entries()) if (r.status !== 200) failures.push(`increment racer ${i} on server ${i % 3 + 1}: ${r.status} ${r.text}`);
    for (const line of report) console.log(`# ${line}`);
    // a repeat in flight on another server waits for the first and replays its answer (docs/architecture.md, "PostgreSQL: many servers on one database")
    assert.deepEqual(failures, [], 'every racer, on whichever server, gets the stored answer');
  } finally {
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('7. three servers started at the same moment on an empty database all come up and serve (3 rounds)', pgOnly({ timeout: 120000 }), async () => {
  for (let round = 0; round < 3; round++) {
    const url = dbUrl(tempDir('tally-multi-start-'));
    const t0 = Date.now();
    const started = await Promise.allSettled([0, 1, 2].map(() => startServer({ schema: shopWithLimits(), backend: 'none', args: ['--db', url] })));
    const up = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
    try {
      console.log(`# round ${round + 1}: ${up.length} of 3 up in ${ms(Date.now() - t0)}`);
      assert.deepEqual(started.filter((s) => s.status === 'rejected').map((s) => String(s.reason?.message ?? s.reason).slice(0, 2000)), [],
        'every server comes up');
      // each serves writes of its own; each sees the others' (one schema, migrated once)
      const made = [];
      for (const [i, s] of up.entries()) made.push(await createOn(s, 'customer', { name: `from ${i + 1}`, email: `s${i + 1}@example.com` }));
      assert.equal(new Set(made.map((x) => x.id)).size, 3, 'distinct ids: one sequence');
      for (const s of up) {
        const list = await listAll(s.api, 'customer');
        assert.deepEqual(list.map((x) => x.id).sort((a, b) => a - b), made.map((x) => x.id).sort((a, b) => a - b));
        expectStatus(await s.api('POST', limitPath('login', 'k'), ''), 200);
      }
      expectError(await up[2].api('POST', '/api/customer', { name: 'dup', email: 's1@example.com' }), 409, 'UNIQUE_VIOLATION', 'email');
    } finally {
      await Promise.all(up.map((s) => s.stop().catch(() => {})));
    }
  }
});

// ---------------------------------------------------------------------------
test('8. an interactive transaction open on server 1 holds only its row: servers 2 and 3 write other rows at once; a write to its row waits for the commit', pgOnly({ timeout: 90000 }), async () => {
  const m = await threeServers({ args: ['--max-txn-ms', '20000'] });
  const [s1, s2, s3] = m.servers;
  let ws;
  try {
    const A = await createOn(s1, 'product', { sku: 'held', stock: 100 });
    const B = await createOn(s2, 'product', { sku: 'free', stock: 0 });
    ws = await WsClient.open(s1);
    assert.equal((await ws.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
    const step = await ws.step({ update: 'product', id: A.id, data: { _atomics: { stock: { decrement: 1 } } } });
    assert.equal(step.ok, true, JSON.stringify(step));
    assert.equal(step.result.stock, 99);
    const openedAt = Date.now();
    assert.equal((await getOn(s3, 'product', A.id)).stock, 100, 'no one sees the open transaction\'s write');

    // 10 clients on server 2 and 10 on server 3: 200 increments of B and 20 creates, all while the transaction stays open
    const work = parallel(20, async (k) => {
      const s = k % 2 === 0 ? s2 : s3;
      const got = [];
      for (let i = 0; i < 10; i++) {
        const r = await s.api('PATCH', `/api/product/${B.id}`, { _atomics: { stock: { increment: 1 } } });
        expectStatus(r, 200);
        got.push(r.body.stock);
      }
      await createOn(s, 'customer', { name: `written meanwhile ${k}` });
      return got;
    });
    const first = await Promise.race([work.then(() => 'done'), later(10000, 'waiting')]);
    const took = Date.now() - openedAt;
    assert.equal(first, 'done', 'writes to other rows on other servers must not wait for the open transaction (20 s timeout)');
    const values = (await work).flat();
    console.log(`# 220 writes on servers 2 and 3 in ${ms(took)} while the transaction was open`);
    assert.equal(new Set(values).size, 200);
    assert.equal(Math.max(...values), 200);
    const still = await ws.step({ get: 'product', id: A.id });
    assert.equal(still.ok, true, `the transaction is still open: ${JSON.stringify(still)}`);
    assert.equal(still.result.stock, 99);

    // a write to A from server 2 waits for server 1's commit, then applies on top of it
    const blocked = s2.api('PATCH', `/api/product/${A.id}`, { _atomics: { stock: { decrement: 10 } } });
    const state = await Promise.race([blocked.then(() => 'answered'), later(500, 'waiting')]);
    assert.equal(state, 'waiting', 'a write to the row the transaction holds must wait for it');
    const commit = await ws.call({ op: 'commit' });
    const committedAt = Date.now();
    assert.equal(commit.ok, true, JSON.stringify(commit));
    const after = await blocked;
    console.log(`# the waiting write on server 2 was answered ${ms(Date.now() - committedAt)} after server 1's commit`);
    expectStatus(after, 200);
    assert.equal(after.body.stock, 89, 'the waiting write applied after the commit: 100 - 1 - 10');
    assert.equal((await getOn(s3, 'product', A.id)).stock, 89);
    assert.equal((await getOn(s1, 'product', B.id)).stock, 200);
  } finally {
    if (ws) await ws.close();
    await m.stop();
  }
});

// ---------------------------------------------------------------------------
test('9. kill -9 of one of three servers under load: the other two go on serving, nothing acknowledged is lost, nothing invented', pgOnly({ timeout: 120000 }), async () => {
  const CLIENTS = 30;
  const VICTIM = 1;                 // server 2
  const m = await threeServers();
  try {
    const c = await createOn(m.servers[0], 'customer', { name: 'survivor counter' });
    const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
    const conns = await Promise.all(m.servers.map((s) => Promise.all(Array.from({ length: CLIENTS }, async () => {
      const x = new RawConnection('127.0.0.1', s.port);
      await x.connect();
      return x;
    }))));
    let sent = 0;                    // requests written to a socket
    let acked = 0;                   // answered 200
    let maxAnswered = 0;
    let unansweredVictim = 0;        // the victim's connections that died with a request in flight
    let ackedAfterKill = 0;          // answers by the survivors after the kill began
    let killStarted = false;
    const bad = [];                  // anything else: a non-200, an error on a survivor
    const perServerAcked = [0, 0, 0];
    let phase = 'before';
    const PHASE_ACKS = 1200;
    const hardStop = Date.now() + 60000;
    let resolveEnough;
    const enough = new Promise((r) => { resolveEnough = r; });
    let stopAt = Infinity;

    const load = parallel(CLIENTS, async (k) => {
      const dead = new Set();
      for (let i = 0; i < 100000 && Date.now() < Math.min(stopAt, hardStop); i++) {
        const s = (k + i) % 3;
        if (dead.has(s)) continue;
        const conn = conns[s][k];
        if (conn.closed) {
          if (s === VICTIM && killStarted) { dead.add(s); continue; }
          bad.push(`client ${k}: connection to server ${s + 1} closed`);
          dead.add(s);
          continue;
        }
        const afterKill = killStarted;
        sent++;
        let r;
        try {
          r = await conn.request('PATCH', `/api/customer/${c.id}`, body);
        } catch (e) {
          if (s === VICTIM && killStarted) unansweredVictim++;
          else bad.push(`client ${k} on server ${s + 1}: ${e.message}`);
          dead.add(s);
          continue;
        }
        if (r.status !== 200) { bad.push(`client ${k} on server ${s + 1}: ${r.status} ${r.text}`); continue; }
        acked++;
        perServerAcked[s]++;
        maxAnswered = Math.max(maxAnswered, r.body.orderCount);
        if (afterKill && s !== VICTIM) ackedAfterKill++;
        if (phase === 'before' && acked >= PHASE_ACKS) resolveEnough();
        if (phase === 'after' && ackedAfterKill >= PHASE_ACKS) stopAt = 0;
      }
    });
    await Promise.race([enough, later(30000)]);
    const ackedBeforeKill = acked;
    killStarted = true;
    phase = 'after';
    const st = await m.servers[VICTIM].kill9();
    assert.equal(st.signal, 'SIGKILL');
    const killedAt = Date.now();
    stopAt = Math.min(stopAt, killedAt + 20000);      // the survivors: until PHASE_ACKS more answers, or 20 s
    await load;
    for (const cs of conns) for (const x of cs) x.close();
    console.log(`# ${ackedBeforeKill} acknowledged before the kill, ${ackedAfterKill} by the survivors after it (${ms(Date.now() - killedAt)}); sent ${sent}, acknowledged ${acked} (per server ${perServerAcked.join('/')}), ${unansweredVictim} lost with the victim's connections; errors elsewhere: ${bad.length}`);
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} errors not from the killed server's connections`);
    assert.ok(ackedBeforeKill >= PHASE_ACKS, `only ${ackedBeforeKill} increments acknowledged in 30 s before the kill`);
    assert.ok(ackedAfterKill >= PHASE_ACKS, `the survivors acknowledged only ${ackedAfterKill} increments in the 20 s after the kill`);

    const survivors = m.servers.filter((_, i) => i !== VICTIM);
    for (const s of survivors) {
      const v = (await getOn(s, 'customer', c.id)).orderCount;
      console.log(`# stored on server ${m.servers.indexOf(s) + 1}: ${v} (acknowledged ${acked}, sent ${sent})`);
      assert.ok(v >= acked, `acknowledged ${acked} increments but only ${v} are stored`);
      assert.ok(v >= maxAnswered, `an answer said ${maxAnswered} but only ${v} are stored`);
      assert.ok(v <= sent, `stored ${v}, more than the ${sent} sent`);
      assert.ok(v <= acked + unansweredVictim, `stored ${v}, more than ${acked} acknowledged + ${unansweredVictim} unanswered`);
    }
  } finally {
    await m.stop();
  }
});

test('10. pg_ctl restart under a load of increments spread over 3 servers: only successes and JSON 503s, acknowledged <= stored <= sent, every server healthy again within seconds', pgOnly({ timeout: 120000 }), async () => {
  const dir = tempDir('tally-multi-restart-');
  const pg = path.join(ROOT, 'scripts', 'pg.sh');
  const up = spawnSync(pg, ['start', dir], { encoding: 'utf8', timeout: 60000 });
  assert.equal(up.status, 0, up.stderr);
  const url = `${up.stdout.trim()}/tally`;
  const servers = [];
  try {
    servers.push(await startServer({ backend: 'none', args: ['--db', url] }));
    servers.push(...await Promise.all([0, 1].map(() => startServer({ backend: 'none', args: ['--db', url] }))));
    const p = await createOn(servers[0], 'product', { sku: 'restart-3', stock: 0 });
    let sent = 0, acked = 0, refused = 0;
    const odd = [];
    const perServer = [0, 0, 0];
    const stopAt = Date.now() + 7000;
    const restarted = new Promise((resolve) => {
      setTimeout(() => spawn(pg, ['restart', dir], { stdio: 'ignore' }).on('exit', resolve), 1500);
    });
    await parallel(21, async (k) => {
      for (let i = 0; Date.now() < stopAt; i++) {
        const s = (k + i) % 3;                          // each client's calls go round the servers
        sent++;
        const r = await servers[s].api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
        if (r.status === 200) { acked++; perServer[s]++; } else if (r.status === 503 && ['UNAVAILABLE', 'OVERLOADED'].includes(r.body?.error?.code)) {
          refused++;
          await sleep(20);
        } else odd.push(`server ${s + 1}: ${r.status} ${r.text}`);
      }
    });
    assert.equal(await restarted, 0, 'pg_ctl restart worked');
    assert.deepEqual(odd.slice(0, 5), [], 'every answer is a success or a JSON 503');
    const healthyAt = [];
    const t0 = Date.now();
    for (const s of servers) {
      let healthy = false;
      while (!healthy && Date.now() - t0 < 10000) {
        const h = await fetch(s.url + '/health');
        await h.arrayBuffer();
        healthy = h.status === 200;
        if (!healthy) await sleep(100);
      }
      assert.ok(healthy, 'every server answers /health 200 again within 10 s');
      healthyAt.push(Date.now() - t0);
    }
    const stored = (await getOn(servers[1], 'product', p.id)).stock;
    console.log(`# sent ${sent}, acknowledged ${acked} (per server ${perServer.join('/')}), refused 503 ${refused}, stored ${stored}; healthy after the load ${healthyAt.map(ms).join(', ')}`);
    assert.ok(refused > 0, 'the restart was felt: some writes were refused');
    assert.ok(perServer.every((n) => n > 0), 'every server acknowledged writes');
    assert.ok(stored >= acked && stored <= sent, `acknowledged ${acked} <= stored ${stored} <= sent ${sent}`);
    for (const s of servers) expectStatus(await s.api('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } }), 200);
    assert.equal((await getOn(servers[2], 'product', p.id)).stock, stored + 3, 'every server writes again');
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
    spawnSync(pg, ['stop', dir], { encoding: 'utf8', timeout: 60000 });
  }
});
