// tally backup and tally restore (README "Backups"): a consistent copy of a
// SQLite database taken while the server serves it under write load, restored
// into a new folder: every write acknowledged before the backup began is
// there, nothing that was never sent is, and the restored database never
// hands out again an id or a lock fence the lost one may have handed out
// after the backup. SQLite only: PostgreSQL has its own tools (pg_dump, PITR).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAll, runTally, tempDir, expectStatus, sleep, sqliteOnly, listAll } from './lib/server.mjs';
import { rawConnections } from './lib/rawhttp.mjs';

test.after(stopAll);

const FLOOR = 2 ** 40; // the first restore generation's ids and fences lie above this

test('a backup under write load, restored into a new folder: every write acknowledged before it is there; ids and fences never repeat', sqliteOnly('tally backup copies a SQLite data folder'), async () => {
  const dataDir = tempDir('tally-backup-src-');
  const srv = await startServer({ dataDir });
  const p = (await srv.api('POST', '/api/product', { sku: 'backed-up', stock: 0 })).body;
  const conns = await rawConnections(srv, 10);
  let running = true, sent = 0, acked = 0;
  const createdIds = [];          // [id, acknowledged at ms]
  const inc = JSON.stringify({ _atomics: { stock: { increment: 1 } } });
  const load = Promise.all(conns.map(async (c, k) => {
    for (let i = 0; running; i++) {
      if (i % 5 === 0) {
        const r = await c.request('POST', '/api/customer', JSON.stringify({ name: `c${k}-${i}` }));
        if (r.status === 201) createdIds.push([r.body.id, Date.now()]);
      } else {
        sent++;
        const r = await c.request('PATCH', `/api/product/${p.id}`, inc);
        if (r.status === 200) acked++;
      }
    }
  }));
  await sleep(800);
  const ackedBefore = acked;
  const startedAt = Date.now();
  const file = path.join(tempDir('tally-backup-file-'), 'shop.backup');
  const b = await runTally(['backup', '--data', dataDir, '--to', file]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /backed up .* one snapshot/);
  const ackedDuring = acked - ackedBefore;
  await sleep(300);
  // after the backup: more ids and fences that the restored database must never hand out again
  let lastFence = 0;
  for (let i = 0; i < 3; i++) {
    const g = await srv.api('POST', '/api/locks/job/acquire', { ttlMs: 60000 });
    expectStatus(g, 200);
    lastFence = g.body.fence;
    expectStatus(await srv.api('POST', '/api/locks/job/release', { token: g.body.token }), 200);
  }
  running = false;
  await load;
  for (const c of conns) c.close();
  const maxId = Math.max(...createdIds.map(([id]) => id));
  await srv.stop();
  console.log(`# ${ackedBefore} increments acknowledged before the backup, ${ackedDuring} while it ran, ${acked} in all of ${sent} sent; ${createdIds.length} customers, highest id ${maxId}; fence ${lastFence}`);
  assert.ok(ackedDuring > 0, 'the server kept serving writes while the backup ran');

  // restore into a new folder and serve it
  const restored = tempDir('tally-backup-dst-');
  const r = await runTally(['restore', '--from', file, '--data', restored]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /restore generation 1/);
  const back = await startServer({ dataDir: restored });
  try {
    const stock = (await back.api('GET', `/api/product/${p.id}`)).body.stock;
    assert.ok(stock >= ackedBefore, `acknowledged before the backup: ${ackedBefore}, restored: ${stock}`);
    assert.ok(stock <= sent, `restored ${stock}, more than the ${sent} ever sent`);
    const have = new Set((await listAll(back.api, 'customer')).map((c) => c.id));
    const missing = createdIds.filter(([id, at]) => at < startedAt && !have.has(id));
    assert.deepEqual(missing, [], 'every customer acknowledged before the backup began is there');
    // no id, no fence handed out again
    const next = await back.api('POST', '/api/customer', { name: 'after the restore' });
    expectStatus(next, 201);
    assert.ok(next.body.id > FLOOR && next.body.id > maxId, `a new id ${next.body.id} above the floor and above ${maxId}`);
    assert.ok(Number.isSafeInteger(next.body.id));
    const g = await back.api('POST', '/api/locks/job/acquire', { ttlMs: 1000 });
    expectStatus(g, 200);
    assert.ok(g.body.fence > FLOOR && g.body.fence > lastFence, `fence ${g.body.fence} after ${lastFence}`);
    const fresh = await back.api('POST', '/api/locks/never-seen/acquire', { ttlMs: 1000 });
    assert.ok(fresh.body.fence > FLOOR, 'a lock name first taken after the restore starts above the floor too');
  } finally {
    await back.stop();
  }
});

test('backup and restore refuse what they should, in plain words, and change nothing', sqliteOnly('tally backup copies a SQLite data folder'), async () => {
  const dataDir = tempDir('tally-backup-bad-');
  const srv = await startServer({ dataDir });
  const file = path.join(tempDir('tally-backup-bad-file-'), 'b.db');
  writeFileSync(file, 'already here');
  const exists = await runTally(['backup', '--data', dataDir, '--to', file]);
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /already exists; back up into a new file/);
  const none = await runTally(['backup', '--data', tempDir('tally-backup-empty-'), '--to', `${file}.2`]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /there is no database at/);
  assert.equal(existsSync(`${file}.2`), false);
  const pg = await runTally(['backup', '--db', 'postgresql://tally@127.0.0.1:1/x', '--to', `${file}.3`]);
  assert.equal(pg.code, 2);
  assert.match(pg.stderr, /pg_dump/);
  // restoring over a folder that holds a database (here: the one being served) is refused
  const good = path.join(tempDir('tally-backup-good-'), 'b.db');
  const made = await runTally(['backup', '--data', dataDir, '--to', good]);
  assert.equal(made.code, 0, made.stderr);
  const over = await runTally(['restore', '--from', good, '--data', dataDir]);
  assert.notEqual(over.code, 0);
  assert.match(over.stderr, /locked by another tally process|already holds a database/);
  const notTally = await runTally(['restore', '--from', file, '--data', tempDir('tally-backup-nt-')]);
  assert.equal(notTally.code, 1);
  assert.match(notTally.stderr, /cannot open|not a Tally backup/);
  expectStatus(await srv.api('GET', '/api/customer'), 200);   // the server was not disturbed
  await srv.stop();
});
