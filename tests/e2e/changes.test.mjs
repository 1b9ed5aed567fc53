// The change feed (README.md, "Change feed"): every acknowledged write seen
// exactly once and in seq order by a follower while 20 writers race; nothing
// of a rolled-back write or transaction; a transaction's changes together and
// in step order; updateMany, deleteMany and cascades; a model that opts out;
// long polls; resuming after a restart; 410 GONE past retention (by age and
// by rows); scopes; and replaying the feed rebuilds every record's state.
// Runs on both backends (the PostgreSQL multi-server case is in
// changes-multiserver.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, stopAll, shopPlus, expectError, parallel, sleep, listAll, metrics } from './lib/server.mjs';
import { createKey, withToken, within } from './lib/auth.mjs';

test.after(stopAll);

const schema = shopPlus({
  folder: { fields: { name: { type: 'string' } } },
  file: { fields: { name: { type: 'string' }, size: { type: 'float' }, meta: { type: 'json' }, done: { type: 'boolean' },
    folder: { type: 'belongsTo', model: 'folder', onDelete: 'cascade' } } },
  secret: { changes: false, fields: { note: { type: 'string' } } },
});

/** Every change after `after` up to now (pages of `first`), checking seq only grows. */
async function drain(api, after = 0, { models, first = 1000 } = {}) {
  const out = [];
  let next = after;
  for (;;) {
    const q = `/api/changes?after=${next}&first=${first}${models ? `&models=${models}` : ''}`;
    const r = await api('GET', q);
    assert.equal(r.status, 200, r.text);
    for (const c of r.body.changes) {
      if (out.length) assert.ok(c.seq > out[out.length - 1].seq, `seq ${c.seq} after ${out[out.length - 1].seq}`);
      else assert.ok(c.seq > after);
      out.push(c);
    }
    assert.ok(r.body.next >= next);
    if (r.body.changes.length < first) return { changes: out, next: r.body.next };
    next = r.body.next;
  }
}

async function head(api) {
  const r = await api('GET', '/api/changes');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.changes, []);
  return r.body.next;
}

/** Replays changes into a map model -> id -> record (null once deleted). */
function replay(changes, into = new Map()) {
  for (const c of changes) {
    if (!into.has(c.model)) into.set(c.model, new Map());
    into.get(c.model).set(c.id, c.op === 'delete' ? null : c.record);
  }
  return into;
}

test('20 concurrent writers: every acknowledged write is seen exactly once, seq strictly increasing, and replay rebuilds the records', async () => {
  const srv = await startServer({ schema });
  const start = await head(srv.api);
  // A follower long-polls alongside the writers.
  const seen = [];
  let stop = false;
  const follower = (async () => {
    let next = start;
    while (!stop || seen.length === 0 || next < (await head(srv.api))) {
      const r = await srv.api('GET', `/api/changes?after=${next}&waitMs=200&first=137`);
      assert.equal(r.status, 200, r.text);
      for (const c of r.body.changes) {
        assert.ok(c.seq > (seen.length ? seen[seen.length - 1].seq : start), 'seq only grows');
        seen.push(c);
      }
      next = r.body.next;
    }
  })();
  const acked = [];
  await parallel(20, async (w) => {
    const name = `w${w}`;
    const c = await srv.api('POST', '/api/customer', { name, email: `${name}@x` });
    assert.equal(c.status, 201);
    acked.push(`customer/${c.body.id}/create/0`);
    for (let k = 1; k <= 15; k++) {
      const u = await srv.api('PATCH', `/api/customer/${c.body.id}`, { _atomics: { orderCount: { increment: 1 } } });
      assert.equal(u.status, 200);
      acked.push(`customer/${c.body.id}/update/${u.body.orderCount}`);
    }
  });
  stop = true;
  await follower;
  const got = seen.map((c) => `${c.model}/${c.id}/${c.op}/${c.record.orderCount}`);
  assert.equal(new Set(got).size, got.length, 'no change twice');
  assert.deepEqual([...got].sort(), [...acked].sort(), 'exactly the acknowledged writes');
  assert.equal(seen.length, 20 * 16);
  // Per record, the versions come in the order they were applied.
  const last = new Map();
  for (const c of seen) {
    if (c.op === 'update') assert.equal(c.record.orderCount, (last.get(c.id) ?? 0) + 1);
    last.set(c.id, c.record.orderCount);
  }
  const state = replay(seen).get('customer');
  for (const rec of await listAll(srv.api, 'customer')) assert.deepEqual(state.get(rec.id), rec);
  const m = await metrics(srv);
  assert.ok(m.tally_changes_head >= seen[seen.length - 1].seq);
});

test('a hot row: increments merged into one statement still show one change per write, each with its own value', async () => {
  const srv = await startServer({ schema });
  const c = (await srv.api('POST', '/api/customer', { name: 'hot' })).body;
  const from = await head(srv.api);
  const before = (await metrics(srv)).tally_coalesced_writes_total ?? 0;
  const answers = await parallel(200, () => srv.api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } }));
  const merged = (await metrics(srv)).tally_coalesced_writes_total - before;
  const { changes } = await drain(srv.api, from, { first: 37 });
  assert.equal(changes.length, 200);
  assert.deepEqual(changes.map((x) => x.record.orderCount), Array.from({ length: 200 }, (_, i) => i + 1));
  assert.deepEqual(changes.map((x) => x.record.orderCount).sort((a, b) => a - b),
    answers.map((a) => a.body.orderCount).sort((a, b) => a - b), 'each answer is one change');
  for (const x of changes) assert.equal(x.record.updatedAt, answers.find((a) => a.body.orderCount === x.record.orderCount).body.updatedAt);
  // resuming from inside a merged run gives the rest of it
  const mid = changes[99].seq;
  const rest = await drain(srv.api, mid);
  assert.deepEqual(rest.changes.map((x) => x.record.orderCount), Array.from({ length: 100 }, (_, i) => i + 101));
  assert.ok(merged > 0, 'some increments were merged (tally_coalesced_writes_total)');
});

test('nothing of a rolled-back transaction or a refused write; a transaction\'s changes together and in step order', async () => {
  const srv = await startServer({ schema });
  const api = srv.api;
  const ev = (await api('POST', '/api/event', { availableTicketCount: 1 })).body;
  const from = await head(api);
  // a transaction whose last step's expectation fails: none of it
  const bad = await api('POST', '/api/transaction', { steps: [
    { create: 'customer', data: { name: 'ghost' } },
    { update: 'event', id: ev.id, data: { _atomics: { availableTicketCount: { decrement: 1 } } } },
    { get: 'event', id: ev.id, expect: { availableTicketCount: { greaterThan: 5 } } },
  ] });
  assert.equal(bad.status, 409, bad.text);
  // a write refused by its min: none either
  expectError(await api('PATCH', `/api/event/${ev.id}`, { _atomics: { availableTicketCount: { decrement: 2 } } }), 422, 'INVARIANT');
  // many transactions racing plain writes
  const txns = [];
  await parallel(10, async (i) => {
    for (let k = 0; k < 5; k++) {
      const r = await api('POST', '/api/transaction', { steps: [
        { create: 'folder', data: { name: `t${i}-${k}` }, as: 'f' },
        { create: 'file', data: { name: `a${i}-${k}`, folder: { _link: { $ref: 'f.id' } } } },
        { update: 'event', id: ev.id, data: { _atomics: { soldTicketCount: { increment: 1 } } } },
      ] });
      assert.equal(r.status, 200, r.text);
      txns.push(r.body.results);
      assert.equal((await api('POST', '/api/customer', { name: `p${i}-${k}` })).status, 201);
    }
  });
  const { changes } = await drain(api, from);
  assert.ok(!changes.some((c) => c.model === 'customer' && c.record?.name === 'ghost'), 'no change of the rolled-back create');
  assert.equal(changes.filter((c) => c.model === 'event').length, 50, 'only the applied event updates');
  for (const [folder, file] of txns) {
    const i = changes.findIndex((c) => c.model === 'folder' && c.id === folder.id);
    assert.ok(i >= 0);
    assert.equal(changes[i].op, 'create');
    assert.equal(changes[i + 1].model, 'file');
    assert.equal(changes[i + 1].id, file.id);
    assert.equal(changes[i + 2].model, 'event');
    assert.equal(changes[i + 2].seq, changes[i].seq + 2, 'consecutive seqs');
  }
});

test('updateMany, deleteMany and cascades emit a change per row; values keep their types; an opted-out model emits none', async () => {
  const srv = await startServer({ schema });
  const api = srv.api;
  const from = await head(api);
  const folder = (await api('POST', '/api/folder', { name: 'f' })).body;
  for (let i = 0; i < 5; i++)
    assert.equal((await api('POST', '/api/file', { name: `x${i}`, size: 0.1 + 0.2, meta: { a: [i] }, done: i % 2 === 0, folder: folder.id })).status, 201);
  assert.equal((await api('POST', '/api/secret', { note: 'hush' })).status, 201);
  const um = await api('POST', '/api/file/updateMany', { filter: { done: { equals: true } }, set: { name: 'done' } });
  assert.equal(um.body.count, 3);
  const dm = await api('POST', '/api/file/deleteMany', { filter: { name: { equals: 'x1' } } });
  assert.equal(dm.body.count, 1);
  assert.equal((await api('DELETE', `/api/folder/${folder.id}`)).status, 200);
  const { changes } = await drain(api, from);
  assert.ok(!changes.some((c) => c.model === 'secret'));
  const files = changes.filter((c) => c.model === 'file');
  assert.deepEqual(files.map((c) => c.op), ['create', 'create', 'create', 'create', 'create', 'update', 'update', 'update',
    'delete', 'delete', 'delete', 'delete', 'delete']);
  const created = files[0].record;
  assert.equal(created.size, 0.1 + 0.2, 'floats exact');
  assert.deepEqual(created.meta, { a: [0] });
  assert.equal(created.done, true);
  assert.equal(created.folder, folder.id);
  // the folder's delete and its cascade come last, together (in either order: the database's)
  const tail = changes.slice(-5);
  const gone = tail.find((c) => c.model === 'folder');
  assert.equal(gone.op, 'delete');
  assert.equal(gone.record, null);
  assert.deepEqual(tail.filter((c) => c.model === 'file').map((c) => c.op), ['delete', 'delete', 'delete', 'delete']);
  assert.match(changes[0].at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // models= filters; asking for an opted-out or unknown model is refused
  const onlyFolders = await drain(api, from, { models: 'folder' });
  assert.deepEqual(onlyFolders.changes.map((c) => c.op), ['create', 'delete']);
  expectError(await api('GET', '/api/changes?models=secret'), 422, 'VALIDATION', 'models');
  expectError(await api('GET', '/api/changes?models=nope'), 422, 'VALIDATION', 'models');
  expectError(await api('GET', '/api/changes?after=-1'), 422, 'VALIDATION', 'after');
  expectError(await api('GET', '/api/changes?first=0'), 422, 'VALIDATION', 'first');
  expectError(await api('GET', '/api/changes?bogus=1'), 400, 'BAD_REQUEST');
  expectError(await api('POST', '/api/changes', {}), 405, 'METHOD_NOT_ALLOWED');
});

test('a long poll answers as soon as a change commits, and empty when waitMs passes', async () => {
  const srv = await startServer({ schema });
  const api = srv.api;
  const h = await head(api);
  let t0 = Date.now();
  const empty = await api('GET', `/api/changes?after=${h}&waitMs=300`);
  assert.deepEqual(empty.body, { changes: [], next: h });
  assert.ok(Date.now() - t0 >= 280, 'waited');
  t0 = Date.now();
  const polls = Array.from({ length: 10 }, () => api('GET', `/api/changes?after=${h}&waitMs=10000`));
  await sleep(100);
  const c = (await api('POST', '/api/folder', { name: 'now' })).body;
  for (const p of await Promise.all(polls)) {
    assert.equal(p.body.changes.length, 1);
    assert.equal(p.body.changes[0].id, c.id);
    assert.equal(p.body.next, p.body.changes[0].seq);
  }
  assert.ok(Date.now() - t0 < 3000, 'answered when the change came, not at waitMs');
});

test('the feed survives a restart and resumes from next', async () => {
  const srv = await startServer({ schema });
  const from = await head(srv.api);
  for (let i = 0; i < 10; i++) await srv.api('POST', '/api/folder', { name: `before${i}` });
  const first = await srv.api('GET', `/api/changes?after=${from}&first=4`);
  assert.equal(first.body.changes.length, 4);
  await srv.stop();
  const again = await startServer({ schema, dataDir: srv.dataDir });
  for (let i = 0; i < 3; i++) await again.api('POST', '/api/folder', { name: `after${i}` });
  const rest = await drain(again.api, first.body.next);
  assert.deepEqual(rest.changes.map((c) => c.record.name),
    ['before4', 'before5', 'before6', 'before7', 'before8', 'before9', 'after0', 'after1', 'after2']);
});

test('past retention (age or rows) a cursor is 410 GONE naming the oldest seq kept; after=0 starts there', async () => {
  const byAge = await startServer({ schema, args: ['--changes-retention-ms', '400'] });
  await byAge.api('POST', '/api/folder', { name: 'old' });
  await sleep(1500);
  await byAge.api('POST', '/api/folder', { name: 'new' });
  let gone;
  for (let i = 0; i < 40; i++) {
    gone = await byAge.api('GET', '/api/changes?after=1');
    if (gone.status === 410) break;
    await byAge.api('POST', '/api/folder', { name: 'nudge' });
    await sleep(100);
  }
  expectError(gone, 410, 'GONE', 'after');
  const oldest = Number(/oldest kept is (\d+)/.exec(gone.body.error.message)[1]);
  assert.ok(oldest > 1);
  const fromOldest = await byAge.api('GET', '/api/changes?after=0');
  assert.equal(fromOldest.status, 200);
  assert.ok(fromOldest.body.changes.every((c) => c.seq >= oldest));
  assert.ok(!fromOldest.body.changes.some((c) => c.record.name === 'old'));

  const byRows = await startServer({ schema, args: ['--changes-max-rows', '5', '--changes-retention-ms', '100000'] });
  for (let i = 0; i < 12; i++) await byRows.api('POST', '/api/folder', { name: `r${i}` });
  let kept;
  for (let i = 0; i < 60; i++) {
    kept = await byRows.api('GET', '/api/changes?after=0');
    if (kept.body.changes.length <= 5) break;
    await sleep(100);
  }
  assert.deepEqual(kept.body.changes.map((c) => c.record.name).slice(-5), ['r7', 'r8', 'r9', 'r10', 'r11']);
  assert.ok(kept.body.changes.length <= 5);
  expectError(await byRows.api('GET', '/api/changes?after=1'), 410, 'GONE');
});

test('scopes: changes follows everything, read:MODEL follows that model with ?models=, others are 403', async () => {
  const srv = await startServer({ schema });
  const admin = await createKey(srv, 'admin', ['admin']);
  const feed = await createKey(srv, 'feed', ['changes']);
  const reader = await createKey(srv, 'reader', ['read:folder']);
  const writer = await createKey(srv, 'writer', ['write:customer']);
  await within(3000, 'keys on', async () => (await srv.api('GET', '/api/changes')).status === 401 &&
    (await withToken(srv, writer)('GET', '/api/changes?models=customer')).status === 200);
  await withToken(srv, admin)('POST', '/api/folder', { name: 'x' });
  assert.equal((await withToken(srv, feed)('GET', '/api/changes?after=0')).status, 200);
  assert.equal((await withToken(srv, reader)('GET', '/api/changes?after=0&models=folder')).status, 200);
  expectError(await withToken(srv, reader)('GET', '/api/changes?after=0'), 403, 'FORBIDDEN');
  expectError(await withToken(srv, reader)('GET', '/api/changes?models=customer'), 403, 'FORBIDDEN');
  assert.equal((await withToken(srv, writer)('GET', '/api/changes?models=customer')).status, 200, 'write implies read');
  expectError(await srv.api('GET', '/api/changes'), 401, 'UNAUTHORIZED');
});

/** Reads a server-sent event stream: {events, close()}; events fill as they come. */
async function eventStream(srv, query = '', headers = {}) {
  const ctl = new AbortController();
  const res = await fetch(`http://127.0.0.1:${srv.port}/api/changes${query}`, {
    headers: { accept: 'text/event-stream', ...headers }, signal: ctl.signal,
  });
  const s = { status: res.status, type: res.headers.get('content-type'), events: [], ids: [], ended: false, text: '' };
  if (res.status !== 200) { s.body = await res.json(); return s; }
  (async () => {
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = { event: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) { ev.id = line.slice(4); s.ids.push(Number(ev.id)); }
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data += line.slice(6);
          }
          if (ev.data) s.events.push({ ...ev, json: JSON.parse(ev.data) });
        }
      }
    } catch { /* aborted */ }
    s.ended = true;
  })();
  s.close = () => ctl.abort();
  return s;
}

async function until(what, check, ms = 5000) {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

test('server-sent events: each change an event whose id is its seq, live; Last-Event-ID resumes; GONE is an error event', async () => {
  const srv = await startServer({ schema, args: ['--changes-max-rows', '3'] });
  const api = srv.api;
  const from = await head(api);
  const s = await eventStream(srv, `?after=${from}&models=folder`);
  assert.equal(s.status, 200);
  assert.match(s.type, /^text\/event-stream/);
  const made = [];
  for (let i = 0; i < 3; i++) {
    made.push((await api('POST', '/api/folder', { name: `e${i}` })).body);
    await api('POST', '/api/customer', { name: 'not followed' });
  }
  await until('three events', () => s.events.length >= 3);
  assert.deepEqual(s.events.map((e) => e.event), ['change', 'change', 'change']);
  assert.deepEqual(s.events.map((e) => e.json.id), made.map((f) => f.id));
  for (const e of s.events) assert.equal(Number(e.id), e.json.seq);
  s.close();
  // a reconnect with Last-Event-ID (it wins over after) gets only what came later
  const lastId = s.events[1].id;
  const again = await eventStream(srv, '?after=0&models=folder', { 'last-event-id': lastId });
  await until('the third again', () => again.events.length >= 1);
  assert.equal(again.events[0].json.id, made[2].id);
  assert.equal(again.events.length, 1);
  again.close();
  // refused before the stream starts: a bad query, no scope
  const bad = await eventStream(srv, '?models=nope');
  assert.equal(bad.status, 422);
  assert.equal(bad.body.error.code, 'VALIDATION');
  // past what is kept: an error event, then the end of the stream
  for (let i = 0; i < 10; i++) await api('POST', '/api/folder', { name: `more${i}` });
  let gone;
  for (let i = 0; i < 50; i++) {
    gone = await eventStream(srv, '?after=1');
    await until('an answer', () => gone.events.length > 0 || gone.ended, 3000).catch(() => {});
    if (gone.events.some((e) => e.event === 'error')) break;
    gone.close();
    await sleep(100);
  }
  const err = gone.events.find((e) => e.event === 'error');
  assert.equal(err.json.error.code, 'GONE');
  await until('the stream ends', () => gone.ended);
  // a server with streams open still stops at once
  const open = await eventStream(srv, '');
  const t0 = Date.now();
  const exit = await srv.stop();
  assert.equal(exit.code, 0);
  assert.ok(Date.now() - t0 < 10000);
  open.close();
});

test('WebSocket subscribe: answered with the cursor, then a change event per change; unsubscribe stops them', async () => {
  const { WsClient } = await import('./lib/wsclient.mjs');
  const srv = await startServer({ schema });
  const api = srv.api;
  await api('POST', '/api/folder', { name: 'before' });
  const ws = await WsClient.open(srv);
  const sub = await ws.call({ op: 'subscribe', models: ['folder', 'file'] });
  assert.equal(sub.ok, true, JSON.stringify(sub));
  const h = sub.result.after;
  assert.equal(h, await head(api), 'from now on');
  const f = (await api('POST', '/api/folder', { name: 'live' })).body;
  await api('POST', '/api/customer', { name: 'not followed' });
  await api('POST', '/api/file', { name: 'x', folder: f.id });
  const e1 = await ws.nextEvent('change', 3000);
  const e2 = await ws.nextEvent('change', 3000);
  assert.deepEqual([e1.model, e1.op, e1.record.name], ['folder', 'create', 'live']);
  assert.deepEqual([e2.model, e2.record.name], ['file', 'x']);
  assert.ok(e1.seq > h && e2.seq > e1.seq);
  // a second subscribe on the same connection is refused; unsubscribe, then resume from a seq
  const twice = await ws.call({ op: 'subscribe' });
  assert.equal(twice.ok, false);
  assert.equal(twice.error.code, 'CONFLICT');
  assert.equal((await ws.call({ op: 'unsubscribe' })).ok, true);
  await api('POST', '/api/folder', { name: 'unseen' });
  await sleep(200);
  assert.equal(ws.inbox.filter((m) => m.event === 'change').length, 0);
  const resumed = await ws.call({ op: 'subscribe', after: e1.seq, models: ['folder'] });
  assert.equal(resumed.ok, true);
  const r1 = await ws.nextEvent('change', 3000);
  assert.equal(r1.record.name, 'unseen');
  const bad = await ws.call({ op: 'subscribe', models: ['secret'] });
  assert.equal(bad.ok, false);
  ws.close();
  const ws2 = await WsClient.open(srv);
  const gone = await ws2.call({ op: 'subscribe', models: ['nope'] });
  assert.equal(gone.error.code, 'VALIDATION');
  ws2.close();
});

test('a stream ends when its key is revoked: SSE with an error event, a WebSocket subscription with changesEnded', async () => {
  const { WsClient } = await import('./lib/wsclient.mjs');
  const { revokeKey } = await import('./lib/auth.mjs');
  const srv = await startServer({ schema });
  const admin = await createKey(srv, 'admin', ['admin']);
  const feed = await createKey(srv, 'feed', ['changes']);
  await within(3000, 'keys on', async () => (await withToken(srv, feed)('GET', '/api/changes')).status === 200);
  const s = await eventStream(srv, `?access_token=${feed}`);
  assert.equal(s.status, 200);
  const ws = await WsClient.open(`ws://127.0.0.1:${srv.port}/api/ws?access_token=${feed}`);
  assert.equal((await ws.call({ op: 'subscribe' })).ok, true);
  await withToken(srv, admin)('POST', '/api/folder', { name: 'seen' });
  await until('the first change', () => s.events.length === 1);
  assert.equal((await ws.nextEvent('change', 3000)).record.name, 'seen');
  await revokeKey(srv, 'feed');
  await within(3000, 'revoked', async () => (await withToken(srv, feed)('GET', '/api/changes')).status === 401);
  await withToken(srv, admin)('POST', '/api/folder', { name: 'not for a revoked key' });
  await until('the stream ends', () => s.ended);
  const last = s.events[s.events.length - 1];
  assert.equal(last.event, 'error');
  assert.equal(last.json.error.code, 'UNAUTHORIZED');
  const ended = await ws.nextEvent('changesEnded', 3000);
  assert.equal(ended.error.code, 'UNAUTHORIZED');
  assert.ok(!ws.all.some((m) => m.record?.name === 'not for a revoked key'));
  ws.close();
});
