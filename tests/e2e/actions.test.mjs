// Named actions (README.md, "Named actions") with the shipped examples/actions.json:
// sellTicket all or nothing (sold out leaves no ticket), params checked before
// anything runs (422 VALIDATION naming the param), an unknown action 404, 100
// racing enroll calls on a 30-seat course give exactly 30 enrolments, joinGame
// and joinChat stop at their caps, the scope action:NAME alone runs an
// action, and a schema whose action names an unknown model, field or param,
// or a $ref to a later step, is refused at start-up naming the action and step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync } from 'node:fs';

import { startServer, stopAll, expectError, parallel, listAll, runTally, writeSchema, ROOT } from './lib/server.mjs';
import { createKey, withToken, within } from './lib/auth.mjs';

test.after(stopAll);

const ACTIONS = path.join(ROOT, 'examples', 'actions.json');
const actionsSchema = () => JSON.parse(readFileSync(ACTIONS, 'utf8'));

test('sellTicket: the ticket and both counters together; sold out is refused and leaves nothing', async () => {
  const srv = await startServer({ schema: ACTIONS });
  const { api } = srv;
  const ev = (await api('POST', '/api/event', { name: 'gig', availableTicketCount: 2 })).body;
  const r = await api('POST', '/api/actions/sellTicket', { event: ev.id, buyer: 'ann' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.results[0].soldTicketCount, 1);
  assert.equal(r.body.results[0].availableTicketCount, 1);
  assert.equal(r.body.results[1].event, ev.id);
  assert.equal(r.body.results[1].buyer, 'ann');
  assert.equal((await api('POST', '/api/actions/sellTicket', { event: ev.id })).status, 200, 'an optional param left out');
  const soldOut = await api('POST', '/api/actions/sellTicket', { event: ev.id, buyer: 'late' });
  expectError(soldOut, 422, 'INVARIANT');
  assert.equal(soldOut.body.error.step, 0);
  const tickets = await listAll(api, 'ticket');
  assert.equal(tickets.length, 2);
  assert.ok(!tickets.some((t) => t.buyer === 'late'));
  const now = (await api('GET', `/api/event/${ev.id}`)).body;
  assert.deepEqual([now.soldTicketCount, now.availableTicketCount], [2, 0]);
});

test('params are checked before anything runs: missing, unknown, wrongly typed are 422 naming the param; unknown action 404', async () => {
  const srv = await startServer({ schema: ACTIONS });
  const { api } = srv;
  const ev = (await api('POST', '/api/event', { availableTicketCount: 5 })).body;
  expectError(await api('POST', '/api/actions/sellTicket', {}), 422, 'VALIDATION', 'event');
  expectError(await api('POST', '/api/actions/sellTicket'), 422, 'VALIDATION', 'event');
  expectError(await api('POST', '/api/actions/sellTicket', { event: String(ev.id) }), 422, 'VALIDATION', 'event');
  expectError(await api('POST', '/api/actions/sellTicket', { event: ev.id, buyer: 7 }), 422, 'VALIDATION', 'buyer');
  const unknown = await api('POST', '/api/actions/sellTicket', { event: ev.id, price: 3 });
  expectError(unknown, 422, 'VALIDATION', 'price');
  assert.match(unknown.body.error.message, /event, buyer/);
  expectError(await api('POST', '/api/actions/sellTicket', [ev.id]), 422, 'VALIDATION');
  expectError(await api('POST', '/api/actions/refund', {}), 404, 'NOT_FOUND');
  expectError(await api('GET', '/api/actions/sellTicket'), 405, 'METHOD_NOT_ALLOWED');
  // nothing ran
  assert.equal((await listAll(api, 'ticket')).length, 0);
  assert.equal((await api('GET', `/api/event/${ev.id}`)).body.availableTicketCount, 5);
});

test('100 racing enroll calls on a 30-seat course: exactly 30 enrolments, slotsTaken and current_students 30', async () => {
  const srv = await startServer({ schema: ACTIONS });
  const { api } = srv;
  const course = (await api('POST', '/api/course', { name: 'Databases' })).body;
  assert.equal(course.maxStudents, 30);
  const answers = await parallel(100, (i) => api('POST', '/api/actions/enroll', { course: course.id, student: `s${i}` }));
  const ok = answers.filter((r) => r.status === 200);
  assert.equal(ok.length, 30);
  for (const r of answers.filter((x) => x.status !== 200)) expectError(r, 409, 'GUARD_FAILED');
  const after = (await api('GET', `/api/course/${course.id}`)).body;
  assert.equal(after.slotsTaken, 30);
  assert.equal(after.current_students, 30);
  const enrolments = await listAll(api, 'enrolment');
  assert.equal(enrolments.length, 30);
  assert.deepEqual(new Set(enrolments.map((e) => e.student)), new Set(ok.map((r) => r.body.results[1].student)));
  // one student twice: the unique key refuses it and the seat is not taken
  const again = await api('POST', '/api/actions/enroll', { course: (await api('POST', '/api/course', {})).body.id, student: 'twice' });
  assert.equal(again.status, 200);
  const dup = await api('POST', '/api/actions/enroll', { course: again.body.results[0].id, student: 'twice' });
  expectError(dup, 409, 'UNIQUE_VIOLATION');
  assert.equal((await api('GET', `/api/course/${again.body.results[0].id}`)).body.slotsTaken, 1);
});

test('joinGame stops at 6 players and joinChat at 50 members, racing', async () => {
  const srv = await startServer({ schema: ACTIONS });
  const { api } = srv;
  const game = (await api('POST', '/api/game', { name: 'g' })).body;
  const chat = (await api('POST', '/api/chat', { title: 'c' })).body;
  const g = await parallel(20, (i) => api('POST', '/api/actions/joinGame', { game: game.id, player: `p${i}` }));
  const c = await parallel(80, (i) => api('POST', '/api/actions/joinChat', { chat: chat.id, user: `u${i}` }));
  assert.equal(g.filter((r) => r.status === 200).length, 6);
  assert.equal(c.filter((r) => r.status === 200).length, 50);
  assert.equal((await listAll(api, 'player')).length, 6);
  assert.equal((await listAll(api, 'member')).length, 50);
  assert.equal((await api('GET', `/api/game/${game.id}`)).body.players, 6);
});

test('the scope action:NAME alone runs that action, and only that one', async () => {
  const srv = await startServer({ schema: ACTIONS });
  const admin = await createKey(srv, 'admin', ['admin']);
  const seller = await createKey(srv, 'seller', ['action:sellTicket']);
  await within(5000, 'keys on', async () => (await srv.api('GET', '/api/event')).status === 401 &&
    (await withToken(srv, seller)('POST', '/api/actions/nope', {})).status === 404);
  const ev = (await withToken(srv, admin)('POST', '/api/event', { availableTicketCount: 3 })).body;
  const sell = withToken(srv, seller);
  assert.equal((await sell('POST', '/api/actions/sellTicket', { event: ev.id })).status, 200);
  expectError(await sell('POST', '/api/ticket', { event: ev.id }), 403, 'FORBIDDEN');
  const course = (await withToken(srv, admin)('POST', '/api/course', {})).body;
  const no = await sell('POST', '/api/actions/enroll', { course: course.id, student: 'x' });
  expectError(no, 403, 'FORBIDDEN');
  assert.match(no.body.error.message, /action:enroll/);
});

test('an action naming an unknown model, field or param, or a $ref to a later step, is refused at start-up naming action and step', async () => {
  const cases = [
    [[{ create: 'nope', data: {} }], /action 'bad', step 0: .*nope/],
    [[{ create: 'ticket', data: { event: { _link: 1 } } }, { create: 'ticket', data: { bogus: 1 } }], /action 'bad', step 1: .*bogus/],
    [[{ update: 'event', id: { $param: 'x' }, data: { name: 'a' } }], /action 'bad', step 0: .*"x"/],
    [[{ update: 'event', id: { $ref: 't.event' }, data: { name: 'a' } }, { as: 't', create: 'ticket', data: { event: { _link: 1 } } }],
      /action 'bad', step 0: .*'t'/],
  ];
  for (const [steps, message] of cases) {
    const s = actionsSchema();
    s.actions = { bad: { params: { event: { type: 'integer' } }, steps } };
    const r = await runTally(['check-schema', writeSchema(s)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, message);
  }
  const s = actionsSchema();
  s.actions = { bad: { params: { event: { type: 'money' } }, steps: [{ get: 'event', id: 1 }] } };
  const r = await runTally(['check-schema', writeSchema(s)]);
  assert.match(r.stderr, /action 'bad', param 'event'/);
});

test('the OpenAPI document describes each action (its params) and the change feed, and is valid OpenAPI 3.1', async () => {
  const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
  const srv = await startServer({ schema: ACTIONS });
  const doc = (await srv.api('GET', '/api/openapi.json')).body;
  const sell = doc.paths['/api/actions/sellTicket'].post;
  assert.equal(sell['x-tally-scope'], 'action:sellTicket');
  const body = sell.requestBody.content['application/json'].schema;
  assert.deepEqual(body.required, ['event']);
  assert.equal(body.properties.event.type, 'integer');
  assert.equal(body.properties.buyer.type, 'string');
  assert.ok(doc.paths['/api/actions/enroll'] && doc.paths['/api/actions/joinGame'] && doc.paths['/api/actions/joinChat']);
  const feed = doc.paths['/api/changes'].get;
  assert.ok(feed.responses['410'], 'GONE');
  assert.deepEqual(feed.parameters.map((p) => p.name), ['after', 'models', 'first', 'waitMs', 'Last-Event-ID']);
  await SwaggerParser.validate(structuredClone(doc));
});
