// The seeds' stories, told with @tally/client (clients/js) against a real
// server: the order counter, ticket sales with sold/available, a post whose
// third image fails, the 30-student course, the 2-to-6-player game, the
// chat room of 50, the per-user-per-minute rate limit and the "one job at a
// time" lock. Each race is many clients at once, then a check that nothing
// was lost or over-sold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileServer, parallel, shopPlus, sleep } from './lib/server.mjs';
import { connect, tally } from './lib/client.mjs';

const { GuardFailed, InvariantViolation, ValidationError, field } = tally;

const suite = fileServer({
  schema: shopPlus({
    enrolment: { fields: {
      course: { type: 'belongsTo', model: 'course', required: true, onDelete: 'cascade' },
      student: { type: 'string', required: true } } },
    game: { fields: {
      players: { type: 'integer', default: 0, min: 0, max: 6 },
      started: { type: 'boolean', default: false } } },
    room: { fields: {
      name: { type: 'string', required: true },
      members: { type: 'integer', default: 0, min: 0, max: 50 } } },
    membership: { fields: {
      room: { type: 'belongsTo', model: 'room', required: true, onDelete: 'cascade' },
      user: { type: 'string', required: true } },
      unique: [['room', 'user']] },
    job: { fields: {
      name: { type: 'string', required: true, unique: true },
      running: { type: 'integer', default: 0, min: 0, max: 1 },
      runs: { type: 'integer', default: 0 },
      lastFence: { type: 'integer', default: 0 } } },
  }),
});
let db;
const client = () => (db ??= connect(suite.srv));

/** Settles every promise; {ok: [values], failed: [errors]}. */
async function outcomes(promises) {
  const all = await Promise.allSettled(promises);
  return {
    ok: all.filter((r) => r.status === 'fulfilled').map((r) => r.value),
    failed: all.filter((r) => r.status === 'rejected').map((r) => r.reason),
  };
}

function assertAll(errors, Class, what) {
  for (const e of errors) assert.ok(e instanceof Class, `${what}: expected ${Class.name}, got ${e?.name} ${e?.code}: ${e?.message}`);
}

test('the order counter: 200 racing increments each get their own new value, and none is lost', async () => {
  const db = client();
  const ada = await db.customer.create({ name: 'Ada', email: 'ada@stories.example' });
  const after = await db.customer.update(ada.id, { _atomics: { orderCount: { increment: 1 } } });
  assert.equal(after.orderCount, 1, 'update answers the record after the change');
  const values = await parallel(200, () => db.customer.whereId(ada.id).increment('orderCount'));
  assert.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 2),
    'every increment saw a value no other increment saw');
  assert.equal((await db.customer.get(ada.id)).orderCount, 201);
});

test('ticket sales: sold and available move together, and never past the last ticket', async () => {
  const db = client();
  const ev = await db.event.create({ availableTicketCount: 50 });
  const buy = () => db.batch((b) => {
    b.ticket.create({ event: { _link: ev.id } });
    b.event.update(ev.id, { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } });
  });
  const { ok, failed } = await outcomes(Array.from({ length: 70 }, buy));
  assert.equal(ok.length, 50, 'exactly as many sales as tickets');
  assertAll(failed, InvariantViolation, 'a sale past the last ticket');
  for (const e of failed) {
    assert.equal(e.path, 'data._atomics.availableTicketCount');
    assert.equal(e.step, 1);
  }
  const after = await db.event.get(ev.id);
  assert.equal(after.soldTicketCount, 50);
  assert.equal(after.availableTicketCount, 0);
  assert.equal((await db.ticket.where('event', ev.id).list().toArray()).length, 50, 'a ticket exists for every sale, no more');

  // The same sale in interactive transactions: 12 buyers for 5 tickets.
  const small = await db.event.create({ availableTicketCount: 5 });
  const sold = await outcomes(Array.from({ length: 12 }, () => db.transaction(async (tx) => {
    const t = await tx.ticket.create({ event: { _link: small.id } });
    await tx.event.whereId(small.id).increment('soldTicketCount');
    await tx.event.whereId(small.id).decrement('availableTicketCount');
    return t.id;
  }, { timeoutMs: 5000 })));
  assert.equal(sold.ok.length, 5);
  assertAll(sold.failed, InvariantViolation, 'an interactive sale past the last ticket');
  assert.ok(sold.failed.every((e) => e.rolledBack), 'the failed step rolled its transaction back');
  const tickets = await db.ticket.where('event', small.id).list().toArray();
  assert.deepEqual(tickets.map((t) => t.id).sort(), [...sold.ok].sort(), 'the committed tickets are the ones answered');
  const e2 = await db.event.get(small.id);
  assert.deepEqual([e2.soldTicketCount, e2.availableTicketCount], [5, 0]);
});

test('a post with images that fails on the third leaves no post and no image', async () => {
  const db = client();
  const url = (n) => `https://stories.example/${n}.png`;
  await assert.rejects(db.post.create({
    title: 'holiday',
    images: [{ create: { url: url(1) } }, { create: { url: url(2) } }, { create: { url: 'x'.repeat(2049) } }],
  }), (e) => {
    assert.ok(e instanceof ValidationError, `${e.name}: ${e.message}`);
    assert.equal(e.status, 422);
    assert.equal(e.path, 'images[2].url');
    return true;
  });
  // The same as a batch with references: the images link to the post by $ref.
  await assert.rejects(db.batch((b) => {
    const p = b.post.create({ title: 'holiday' });
    b.image.create({ url: url(3), post: { _link: p.ref('id') } });
    b.image.create({ url: url(4), post: { _link: p.ref('id') } });
    b.image.create({ url: 'y'.repeat(2049), post: { _link: p.ref('id') } });
  }), (e) => e instanceof ValidationError && e.step === 3);
  assert.equal((await db.post.where('title', 'holiday').list().toArray()).length, 0, 'no post');
  assert.equal((await db.image.where({ url: { in: [url(1), url(2), url(3), url(4)] } }).list().toArray()).length, 0, 'no image');
  // And the batch that works: the results are the post, then each image linked to it.
  const r = await db.batch((b) => {
    const p = b.post.create({ title: 'holiday' });
    b.image.create({ url: url(5), post: { _link: p.ref('id') } });
  });
  assert.equal(r[1].post, r[0].id);
});

test('the 30-student course: 45 racing enrolments, exactly 30 seats taken and 30 enrolments', async () => {
  const db = client();
  const course = await db.course.create({ name: 'Databases', maxStudents: 30 });
  const enrol = (i) => db.batch((b) => {
    b.course.whereId(course.id).where('slotsTaken', '<', field('maxStudents')).increment('slotsTaken');
    b.enrolment.create({ course: { _link: course.id }, student: `student-${i}` });
  });
  const { ok, failed } = await outcomes(Array.from({ length: 45 }, (_, i) => enrol(i)));
  assert.equal(ok.length, 30);
  assertAll(failed, GuardFailed, 'an enrolment past capacity');
  for (const e of failed) assert.equal(e.current.slotsTaken, 30, 'the refused row shows the full course');
  assert.deepEqual(ok.map((r) => r[0]).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1),
    'each enrolment took its own seat');
  assert.equal((await db.course.get(course.id)).slotsTaken, 30);
  assert.equal((await db.enrolment.where('course', course.id).list().toArray()).length, 30);
});

test('the 2-to-6-player game: no start with one player, never a seventh, a start at two or more', async () => {
  const db = client();
  const game = await db.game.create({});
  const start = () => db.game.whereId(game.id).where('players', '>=', 2).update({ started: true });
  assert.equal(await db.game.whereId(game.id).increment('players'), 1);
  await assert.rejects(start(), (e) => {
    assert.ok(e instanceof GuardFailed, `${e.name}: ${e.message}`);
    assert.equal(e.current.players, 1);
    assert.equal(e.current.started, false);
    return true;
  });
  const { ok, failed } = await outcomes(Array.from({ length: 10 }, () => db.game.whereId(game.id).increment('players')));
  assert.deepEqual(ok.sort(), [2, 3, 4, 5, 6]);
  assertAll(failed, InvariantViolation, 'a seventh player');
  assert.equal(failed.length, 5);
  const started = await start();
  assert.deepEqual([started.players, started.started], [6, true]);
  // Leaving is the guarded decrement the other way: never below zero.
  const emptied = await db.game.where({ id: { equals: game.id } }).decrementMany('players', 6);
  assert.equal(emptied, 1);
  await assert.rejects(db.game.whereId(game.id).decrement('players'), InvariantViolation);
});

test('the chat room of 50: 60 racing joins in interactive transactions, 50 members and 50 memberships', async () => {
  const db = client();
  const room = await db.room.create({ name: 'lobby' });
  const join = (i) => db.transaction(async (tx) => {
    await tx.membership.create({ room: { _link: room.id }, user: `user-${i}` });
    return tx.room.whereId(room.id).increment('members');
  }, { timeoutMs: 5000 });
  const { ok, failed } = await outcomes(Array.from({ length: 60 }, (_, i) => join(i)));
  assert.equal(ok.length, 50);
  assert.deepEqual([...ok].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
  assertAll(failed, InvariantViolation, 'a 51st member');
  assert.equal((await db.room.get(room.id)).members, 50);
  assert.equal((await db.membership.where('room', room.id).list({ pageSize: 7 }).toArray()).length, 50);
});

test('per user and minute: the upsert counter counts every request once; the GCRA limit refuses past the burst', async () => {
  const db = client();
  const window = Math.floor(Date.now() / 60000);
  const hit = (userId) => db.rateLimit.upsert({
    on: ['userId', 'window'],
    create: { userId, window, requests: 1 },
    update: { _atomics: { requests: { increment: 1 } } },
  });
  const answers = await parallel(40, () => hit('u-story'));
  assert.equal(answers.filter((a) => a.created).length, 1, 'the window row was created once');
  assert.deepEqual(answers.map((a) => a.record.requests).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i + 1));
  const row = await db.rateLimit.where({ userId: { equals: 'u-story' }, window: { equals: window } }).first();
  assert.equal(row.requests, 40);

  // The declared limit (login: 10 a minute, burst 5): racing takes get exactly the burst.
  const takes = await outcomes(Array.from({ length: 8 }, () => db.limits.take('login', 'ada@stories.example')));
  assert.equal(takes.ok.length, 5);
  assertAll(takes.failed, tally.RateLimited, 'a take past the burst');
  for (const e of takes.failed) assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 6000, `retryAfterMs ${e.retryAfterMs}`);
  const check = await db.limits.check('login', 'ada@stories.example');
  assert.equal(check.allowed, false, 'check answers a refusal without throwing');
  assert.equal((await db.limits.check('login', 'bob@stories.example')).allowed, true, 'another user has a burst of their own');
});

test('one job at a time: racing workers take turns under the lock, renewed past its ttl, fences growing', async () => {
  const db = client();
  const job = await db.job.create({ name: 'reorder-dataset' });
  const order = [];
  const worker = () => db.withLock('reorder-dataset', async (lock) => {
    // running has max 1: a second worker inside at once would be refused here
    await db.job.whereId(job.id).increment('running');
    await sleep(400); // longer than the ttl: only renewals keep the lease
    await db.batch((b) => { // a fenced write: refused unless this lease still holds
      b.checkLock('reorder-dataset', lock.token);
      b.job.whereId(job.id).where('lastFence', '<', lock.fence).update({ lastFence: lock.fence });
      b.job.whereId(job.id).increment('runs');
    });
    await db.job.whereId(job.id).decrement('running');
    order.push(lock.fence);
    return lock.fence;
  }, { ttlMs: 250, waitMs: 10000 });
  const fences = await parallel(4, worker);
  assert.equal(new Set(fences).size, 4, 'each turn had its own fence');
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'turns ran in fence order');
  const after = await db.job.get(job.id);
  assert.deepEqual([after.running, after.runs, after.lastFence], [0, 4, Math.max(...fences)]);
  assert.deepEqual(await db.locks.list().then((l) => l.filter((x) => x.name === 'reorder-dataset')), [], 'released');
});
