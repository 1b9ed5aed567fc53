// The TypeScript client's db.changes({after, models}) (clients/js/src/changes.ts):
// an async iterator that yields every committed change once, in seq order,
// across lost connections and a restart of the server; db.action runs a
// named action. Both backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { startServer, stopAll, shopPlus, sleep, ROOT } from './lib/server.mjs';
import { tally, connect } from './lib/client.mjs';

test.after(stopAll);

const schema = shopPlus({ folder: { fields: { name: { type: 'string' } } } });

test('db.changes yields each change once, in order, resuming after dropped connections and a server restart', async () => {
  let srv = await startServer({ schema });
  const port = srv.port;
  // a fetch that drops every fourth call on the floor, as a flaky network would
  let calls = 0;
  const flaky = (url, init) => (++calls % 4 === 0 ? Promise.reject(new TypeError('connection reset')) : fetch(url, init));
  const db = tally.createClient({ url: srv.url, fetch: flaky, retries: 1, retryDelayMs: 10 });
  const writer = connect(srv);
  const seen = [];
  const feed = db.changes({ after: 0, models: ['folder'], waitMs: 300 });
  const reading = (async () => {
    for await (const c of feed) {
      seen.push(c);
      if (seen.length === 40) break;
    }
  })();
  for (let i = 0; i < 20; i++) await writer.folder.create({ name: `a${i}` });
  await sleep(300);
  await srv.stop();
  await sleep(500);   // the feed keeps asking meanwhile
  srv = await startServer({ schema, dataDir: srv.dataDir, args: ['--listen', `127.0.0.1:${port}`] });
  const again = connect(srv);
  for (let i = 0; i < 20; i++) await again.folder.create({ name: `b${i}` });
  await reading;
  assert.deepEqual(seen.map((c) => c.record.name), [...Array.from({ length: 20 }, (_, i) => `a${i}`),
    ...Array.from({ length: 20 }, (_, i) => `b${i}`)]);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].seq > seen[i - 1].seq);
  assert.equal(feed.cursor, seen[39].seq);
  // from now on: only what comes after
  const live = db.changes({ models: ['folder'], waitMs: 300 });
  const first = live.next();
  await sleep(200);
  await again.folder.create({ name: 'now' });
  assert.equal((await first).value.record.name, 'now');
  await live.return();
});

test('db.changes throws Gone for a cursor older than what the server keeps', async () => {
  const srv = await startServer({ schema, args: ['--changes-max-rows', '2'] });
  const db = connect(srv);
  for (let i = 0; i < 6; i++) await db.folder.create({ name: `r${i}` });
  let err;
  for (let i = 0; i < 50 && !(err instanceof tally.Gone); i++) {
    err = await db.changes({ after: 1, waitMs: 100 }).next().catch((e) => e);
    await sleep(100);
  }
  assert.ok(err instanceof tally.Gone, String(err));
});

test('db.action runs a named action and throws its errors as TallyErrors', async () => {
  const srv = await startServer({ schema: path.join(ROOT, 'examples', 'actions.json') });
  const db = connect(srv);
  const ev = await db.event.create({ availableTicketCount: 1 });
  const [event, ticket] = await db.action('sellTicket', { event: ev.id, buyer: 'ann' });
  assert.equal(event.availableTicketCount, 0);
  assert.equal(ticket.buyer, 'ann');
  await assert.rejects(db.action('sellTicket', { event: ev.id }), tally.InvariantViolation);
  await assert.rejects(db.action('sellTicket', {}), (e) => e instanceof tally.ValidationError && e.path === 'event');
  await assert.rejects(db.action('nope', {}), tally.NotFound);
});
