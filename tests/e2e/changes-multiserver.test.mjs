// The change feed across servers on one PostgreSQL (docs/architecture.md,
// "Change feed"): three servers write at once, on every lane, while an
// interactive transaction that wrote early stays open and others commit
// past it.  Followers on each server never see a seq smaller than one they
// were already shown, every acknowledged write appears exactly once, the
// three servers show the same feed, and replaying it rebuilds every
// record's final state.  PostgreSQL only.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { BACKEND, startServer, stopAll, tempDir, dbUrl, parallel, sleep, listAll } from './lib/server.mjs';
import { WsClient } from './lib/wsclient.mjs';

const pgOnly = BACKEND === 'postgres' ? {} : { skip: 'PostgreSQL only: many servers share one database there' };

test.after(stopAll);

async function threeServers() {
  const url = dbUrl(tempDir('tally-feed-multi-'));
  const one = () => startServer({ backend: 'none', args: ['--db', url] });
  const first = await one();
  return [first, ...(await Promise.all([one(), one()]))];
}

/** A follower that long-polls `servers` in turn; fails on a seq not above the last one shown. */
function follower(servers) {
  const f = { seen: [], next: 0, stop: false, problems: [] };
  f.done = (async () => {
    for (let turn = 0; ; turn++) {
      const srv = servers[turn % servers.length];
      const r = await srv.api('GET', `/api/changes?after=${f.next}&waitMs=100&first=50`);
      if (r.status !== 200) { f.problems.push(r.text); return; }
      for (const c of r.body.changes) {
        const last = f.seen.length ? f.seen[f.seen.length - 1].seq : 0;
        if (c.seq <= last) f.problems.push(`seq ${c.seq} shown after ${last}`);
        f.seen.push(c);
      }
      if (r.body.next < f.next) f.problems.push(`next went back from ${f.next} to ${r.body.next}`);
      f.next = r.body.next;
      if (f.stop && r.body.changes.length === 0) return;
    }
  })();
  return f;
}

test('three servers, an open transaction, many writers: followers never go back, see each write once, and replay the state', pgOnly, async () => {
  const servers = await threeServers();
  const [s0, s1] = servers;
  const customers = [];
  for (let i = 0; i < 6; i++) customers.push((await s0.api('POST', '/api/customer', { name: `c${i}` })).body);
  const followers = [follower(servers), follower([servers[2], servers[0]]), follower([servers[1]])];

  // An interactive transaction on s1 writes customer 0 first, then stays open while everyone else commits.
  const ws = await WsClient.open(s1);
  assert.equal((await ws.call({ op: 'begin', timeoutMs: 20000 })).ok, true);
  const held = await ws.step({ create: 'product', data: { sku: 'held' } });
  assert.equal(held.ok, true, JSON.stringify(held));
  const acked = [];   // model/id/op/orderCount-or-sku of every acknowledged write
  for (const c of customers) acked.push(`customer/${c.id}/create/0`);
  const writers = parallel(18, async (w) => {
    const srv = servers[w % 3];
    for (let k = 0; k < 12; k++) {
      if (k % 4 === 3) {
        const p = await srv.api('POST', '/api/product', { sku: `w${w}-${k}` });
        assert.equal(p.status, 201, p.text);
        acked.push(`product/${p.body.id}/create/${p.body.sku}`);
      } else {
        const c = customers[(w + k) % customers.length];
        const u = await srv.api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } });
        assert.equal(u.status, 200, u.text);
        acked.push(`customer/${c.id}/update/${u.body.orderCount}`);
      }
    }
  });
  await sleep(1500);   // others commit past the open transaction meanwhile
  const late = await ws.step({ update: 'customer', id: customers[5].id, data: { name: 'touched late' } });
  assert.equal(late.ok, true, JSON.stringify(late));
  const commit = await ws.commit(20000);
  assert.equal(commit.ok, true, JSON.stringify(commit));
  acked.push(`product/${held.result.id}/create/held`);
  await writers;
  ws.close();
  // the held transaction's rename of customer 5 is an update whose orderCount is whatever it was then
  const renamed = customers[5].id;

  await sleep(500);
  for (const f of followers) f.stop = true;
  await Promise.all(followers.map((f) => f.done));
  for (const f of followers) assert.deepEqual(f.problems, []);

  const key = (c) => `${c.model}/${c.id}/${c.op}/${c.model === 'product' ? c.record.sku : c.record.orderCount}`;
  const [a, b, c] = followers;
  assert.deepEqual(b.seen.map((x) => x.seq), a.seen.map((x) => x.seq), 'one feed, whichever server is asked');
  assert.deepEqual(c.seen.map(key), a.seen.map(key));
  const got = a.seen.filter((x) => !(x.model === 'customer' && x.id === renamed && x.record.name === 'touched late'));
  const keys = got.map(key);
  assert.equal(new Set(keys).size, keys.length, 'no change twice');
  assert.deepEqual([...keys].sort(), [...acked].sort(), 'exactly the acknowledged writes');
  assert.equal(a.seen.filter((x) => x.record?.name === 'touched late').length, 1);
  // the held transaction's changes come together, after changes shown while it was open
  const i = a.seen.findIndex((x) => x.model === 'product' && x.record.sku === 'held');
  assert.equal(a.seen[i + 1].record.name, 'touched late');
  assert.equal(a.seen[i + 1].seq, a.seen[i].seq + 1);
  assert.ok(i > 0 && a.seen.slice(0, i).some((x) => x.model === 'customer' && x.op === 'update'));

  // replay: each record's last change is its state now
  const state = new Map();
  for (const x of a.seen) state.set(`${x.model}/${x.id}`, x.record);
  for (const model of ['customer', 'product'])
    for (const rec of await listAll(s0.api, model)) assert.deepEqual(state.get(`${model}/${rec.id}`), rec, `${model} ${rec.id}`);
  await Promise.all(servers.map((s) => s.stop()));
});
