// Batch transactions (POST /api/transaction, README.md, "Transactions"): every step form,
// results in order, all or nothing with the failing step named, expect,
// {"$ref": "name.field"}, limits; nested creates on POST /api/post; and the
// two contention cases of issue 5 (ticket sale, course enrolment).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fileServer, shopPlus, expectError, expectStatus, listAll, parallel,
} from './lib/server.mjs';
import { recordHelpers, uniq, ticketSaleSteps } from './lib/records.mjs';
import { rawConnections } from './lib/rawhttp.mjs';

const suite = fileServer({
  schema: shopPlus({
    enrollment: { fields: {
      course: { type: 'belongsTo', model: 'course', required: true },
      student: { type: 'string' },
    } },
  }),
});
const { api } = suite;
const { create, get, findWhere } = recordHelpers(() => api);
const txn = (steps) => api('POST', '/api/transaction', { steps });

/** A transaction error: status, code, the failing step's index (and its `as` name). */
function expectStepError(res, status, code, step, as) {
  expectError(res, status, code);
  assert.equal(res.body.error.step, step, `expected error.step ${step}; answer was ${res.status} ${res.text}`);
  if (as !== undefined) assert.equal(res.body.error.as, as, `expected error.as ${as}; answer was ${res.text}`);
  assert.equal(res.body.results, undefined, `a failed transaction has no results: ${res.text}`);
}

// ---------------------------------------------------------------------------
describe('nested creates: POST /api/post with images', () => {
  test('a post with three images is created with all three linked to it', async () => {
    const title = uniq('post3');
    const urls = [1, 2, 3].map((i) => `https://img.example/${title}/${i}.png`);
    const r = await api('POST', '/api/post', { title, images: urls.map((url) => ({ create: { url } })) });
    expectStatus(r, 201);
    assert.equal(r.body.title, title);
    assert.equal(typeof r.body.id, 'number');
    const imgs = await findWhere('image', 'post', r.body.id);
    assert.deepEqual(imgs.map((i) => i.url).sort(), [...urls].sort());
    for (const i of imgs) assert.equal(i.post, r.body.id);
    assert.equal((await get('post', r.body.id)).title, title);
  });

  test('an image url of exactly maxLength (2048) is accepted', async () => {
    const title = uniq('post-2048');
    const url = 'h'.repeat(2048);
    const r = await api('POST', '/api/post', { title, images: [{ create: { url } }] });
    expectStatus(r, 201);
    const imgs = await findWhere('image', 'post', r.body.id);
    assert.equal(imgs.length, 1);
    assert.equal(imgs[0].url.length, 2048);
  });

  test('the third image over maxLength: 422 VALIDATION and neither the post nor any image exists', async () => {
    const title = uniq('post-bad3');
    const imagesBefore = await listAll(api, 'image');
    const postsBefore = await listAll(api, 'post');
    const r = await api('POST', '/api/post', {
      title,
      images: [
        { create: { url: `https://img.example/${title}/1.png` } },
        { create: { url: `https://img.example/${title}/2.png` } },
        { create: { url: 'x'.repeat(2049) } },
      ],
    });
    expectError(r, 422, 'VALIDATION');
    assert.match(String(r.body.error.path), /url/, `error.path should name the url: ${r.text}`);
    assert.deepEqual(await findWhere('post', 'title', title), [], 'the post must not exist');
    const imagesAfter = await listAll(api, 'image');
    assert.deepEqual(imagesAfter, imagesBefore, 'no image may have been created');
    assert.equal(imagesAfter.filter((i) => i.url.includes(title)).length, 0);
    assert.deepEqual(await listAll(api, 'post'), postsBefore, 'no post may have been created');
  });

  test('the same nested create as a transaction step: success, and failure on the third image (step 0, nothing kept)', async () => {
    const title = uniq('post-step');
    const ok = await txn([{ as: 'p', create: 'post', data: { title, images: [{ create: { url: 'a' } }, { create: { url: 'b' } }] } }]);
    expectStatus(ok, 200);
    assert.equal(ok.body.results.length, 1);
    assert.equal(ok.body.results[0].title, title);
    assert.equal((await findWhere('image', 'post', ok.body.results[0].id)).length, 2);

    const title2 = uniq('post-step-bad');
    const imagesBefore = await listAll(api, 'image');
    const bad = await txn([
      { create: 'customer', data: { name: title2 } },
      { as: 'p', create: 'post', data: { title: title2, images: [{ create: { url: 'a' } }, { create: { url: 'b' } }, { create: { url: 'y'.repeat(3000) } }] } },
    ]);
    expectStepError(bad, 422, 'VALIDATION', 1, 'p');
    assert.deepEqual(await findWhere('post', 'title', title2), []);
    assert.deepEqual(await findWhere('customer', 'name', title2), [], 'the earlier step is rolled back too');
    assert.deepEqual(await listAll(api, 'image'), imagesBefore);
  });
});

// ---------------------------------------------------------------------------
describe('step forms and results', () => {
  test('every step form but upsert in one transaction: results in order with the documented shapes', async () => {
    const tag = uniq('forms');
    const e = await create('event', { availableTicketCount: 10 });
    const doomed = await create('course', { name: `${tag}-doomed` });
    await create('course', { name: `${tag}-many`, maxStudents: 5 });
    await create('course', { name: `${tag}-many`, maxStudents: 6 });
    await create('course', { name: `${tag}-gone` });
    await create('course', { name: `${tag}-gone` });
    const r = await txn([
      /* 0 */ { as: 'p', create: 'post', data: { title: `${tag}-post` } },
      /* 1 */ { get: 'event', id: e.id },
      /* 2 */ { find: 'course', filter: { name: { equals: `${tag}-many` } }, sort: { maxStudents: 'descending' }, first: 10 },
      /* 3 */ { update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 2 }, availableTicketCount: { decrement: 2 } } },
        where: { availableTicketCount: { greaterThanOrEqual: 2 } } },
      /* 4 */ { delete: 'course', id: doomed.id },
      /* 5 */ { updateMany: 'course', filter: { name: { equals: `${tag}-many` } }, set: { maxStudents: 7 }, _atomics: { slotsTaken: { increment: 1 } } },
      /* 6 */ { deleteMany: 'course', filter: { name: { equals: `${tag}-gone` } } },
      /* 7 */ { get: 'post', id: { $ref: 'p.id' } },
    ]);
    expectStatus(r, 200);
    const res = r.body.results;
    assert.ok(Array.isArray(res), r.text);
    assert.equal(res.length, 8, r.text);
    assert.equal(res[0].title, `${tag}-post`);
    assert.equal(typeof res[0].id, 'number');
    assert.ok(res[0].createdAt && res[0].updatedAt, 'a created record carries createdAt/updatedAt');
    assert.equal(res[1].id, e.id);
    assert.equal(res[1].availableTicketCount, 10, 'get answers the record as it stood at that step');
    assert.deepEqual(res[2].records.map((c) => c.maxStudents), [6, 5], 'find honours filter and sort');
    assert.equal(res[2].next, null);
    assert.equal(res[3].soldTicketCount, 2);
    assert.equal(res[3].availableTicketCount, 8);
    assert.deepEqual(res[4], { id: doomed.id });
    assert.deepEqual(res[5], { count: 2 });
    assert.deepEqual(res[6], { count: 2 });
    assert.equal(res[7].id, res[0].id);
    assert.equal(res[7].title, `${tag}-post`);

    // and it is all applied
    const ev = await get('event', e.id);
    assert.deepEqual([ev.soldTicketCount, ev.availableTicketCount], [2, 8]);
    assert.equal((await api('GET', `/api/course/${doomed.id}`)).status, 404);
    const many = await findWhere('course', 'name', `${tag}-many`);
    assert.deepEqual(many.map((c) => [c.maxStudents, c.slotsTaken]), [[7, 1], [7, 1]]);
    assert.deepEqual(await findWhere('course', 'name', `${tag}-gone`), []);
    assert.equal((await get('post', res[0].id)).title, `${tag}-post`);
  });

  test('upsert steps ({"upsert", "on", "create", "update"}): the first creates, the second updates; {"record", "created"}', async () => {
    const tag = uniq('ups');
    const email = `${tag}@example.com`;
    const up = (as) => ({ as, upsert: 'customer', on: ['email'], create: { name: tag, email }, update: { _atomics: { orderCount: { increment: 1 } } } });
    const r = await txn([up('u1'), up('u2')]);
    expectStatus(r, 200);
    const [a, b] = r.body.results;
    assert.equal(a.created, true, `first upsert creates: ${JSON.stringify(a)}`);
    assert.equal(a.record.email, email);
    assert.equal(a.record.orderCount, 0);
    assert.equal(b.created, false, `second upsert updates: ${JSON.stringify(b)}`);
    assert.equal(b.record.id, a.record.id);
    assert.equal(b.record.orderCount, 1);
    const cust = await findWhere('customer', 'email', email);
    assert.equal(cust.length, 1);
    assert.equal(cust[0].orderCount, 1);

    // an upsert undone by a later failing step
    const r2 = await txn([up('u'), { get: 'post', id: 987654321 }]);
    expectStepError(r2, 404, 'NOT_FOUND', 1);
    assert.equal((await findWhere('customer', 'email', email))[0].orderCount, 1);
  });

  test('a later step sees the effects of earlier steps (get and find after writes)', async () => {
    const tag = uniq('see');
    const r = await txn([
      { as: 'c', create: 'course', data: { name: tag, maxStudents: 3 } },
      { update: 'course', id: { $ref: 'c.id' }, data: { maxStudents: 9, _atomics: { slotsTaken: { increment: 4 } } } },
      { get: 'course', id: { $ref: 'c.id' } },
      { find: 'course', filter: { name: { equals: tag } } },
      { delete: 'course', id: { $ref: 'c.id' } },
      { find: 'course', filter: { name: { equals: tag } } },
    ]);
    expectStatus(r, 200);
    const [c, u, g, f1, d, f2] = r.body.results;
    assert.equal(u.maxStudents, 9);
    assert.equal(u.slotsTaken, 4);
    assert.equal(g.maxStudents, 9);
    assert.equal(g.slotsTaken, 4);
    assert.deepEqual(f1.records.map((x) => x.id), [c.id]);
    assert.deepEqual(d, { id: c.id });
    assert.deepEqual(f2.records, []);
  });

  test('all or nothing: a failing last step undoes creates, updates, deletes and bulk changes before it', async () => {
    const tag = uniq('aon');
    const e = await create('event', { availableTicketCount: 1 });
    const keep = await create('course', { name: `${tag}-keep`, maxStudents: 11 });
    await create('course', { name: `${tag}-bulk`, maxStudents: 1 });
    const before = {
      course: await listAll(api, 'course'), post: await listAll(api, 'post'), event: await listAll(api, 'event'),
      customer: await listAll(api, 'customer'), ticket: await listAll(api, 'ticket'),
    };
    const r = await txn([
      { create: 'post', data: { title: `${tag}-post` } },
      { update: 'course', id: keep.id, data: { maxStudents: 99 } },
      { delete: 'course', id: keep.id },
      { updateMany: 'course', filter: { name: { equals: `${tag}-bulk` } }, set: { maxStudents: 50 } },
      { deleteMany: 'course', filter: { name: { equals: `${tag}-bulk` } } },
      { create: 'customer', data: { name: tag, email: `${tag}@example.com` } },
      { create: 'ticket', data: { event: { _link: e.id } } },
      { as: 'sell', update: 'event', id: e.id, data: { _atomics: { availableTicketCount: { decrement: 2 } } } },
    ]);
    expectStepError(r, 422, 'INVARIANT', 7, 'sell');
    assert.match(String(r.body.error.path), /availableTicketCount/);
    for (const m of Object.keys(before)) {
      assert.deepEqual(await listAll(api, m), before[m], `${m} must be exactly as before the failed transaction`);
    }
  });

  test('a rolled-back create leaves no trace: a later upsert that creates says created: true (201)', async () => {
    const tag = uniq('trace');
    // the failed transaction inserts a customer, then fails: the insert is undone
    const r = await txn([{ create: 'customer', data: { name: tag, email: `${tag}-ghost@example.com` } }, { get: 'post', id: 987654321 }]);
    expectStepError(r, 404, 'NOT_FOUND', 1);
    assert.deepEqual(await findWhere('customer', 'name', tag), []);
    // the next upsert creates a new customer (probably in the row id the ghost had)
    const email = `${tag}@example.com`;
    const u = await api('POST', '/api/customer/upsert', { on: ['email'], create: { name: tag, email }, update: { name: `${tag}-updated` } });
    assert.equal(u.body?.created, true, `the upsert created the customer, so created must be true: ${u.status} ${u.text}`);
    expectStatus(u, 201);
    const u2 = await api('POST', '/api/customer/upsert', { on: ['email'], create: { name: tag, email }, update: { name: `${tag}-updated` } });
    expectStatus(u2, 200);
    assert.equal(u2.body.created, false);
    assert.equal(u2.body.record.id, u.body.record.id);
  });

  test('a guard that fails inside a transaction: 409 GUARD_FAILED naming the step, with the current row; nothing applied', async () => {
    const tag = uniq('guard');
    const e = await create('event', { availableTicketCount: 1 });
    const r = await txn([
      { create: 'post', data: { title: tag } },
      { update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 } } } },
      { as: 'g', update: 'event', id: e.id, data: { _atomics: { availableTicketCount: { decrement: 1 } } }, where: { availableTicketCount: { greaterThanOrEqual: 5 } } },
    ]);
    expectStepError(r, 409, 'GUARD_FAILED', 2, 'g');
    if (r.body.error.current !== undefined) {
      // the row as the guard saw it: after step 1's increment, inside the transaction
      assert.equal(r.body.error.current.availableTicketCount, 1, r.text);
    }
    const now = await get('event', e.id);
    assert.equal(now.soldTicketCount, 0);
    assert.equal(now.availableTicketCount, 1);
    assert.deepEqual(await findWhere('post', 'title', tag), []);
  });

  test('a unique violation in step 2 is named and rolls back steps 0 and 1', async () => {
    const tag = uniq('uniq');
    await create('customer', { name: 'holder', email: `${tag}@example.com` });
    const r = await txn([
      { create: 'post', data: { title: tag } },
      { create: 'course', data: { name: tag } },
      { as: 'dup', create: 'customer', data: { name: 'second', email: `${tag}@example.com` } },
    ]);
    expectStepError(r, 409, 'UNIQUE_VIOLATION', 2, 'dup');
    assert.deepEqual(await findWhere('post', 'title', tag), []);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
  });

  test('a step on a missing record (get / update / delete) fails with 404 naming the step, nothing applied', async () => {
    for (const step of [{ get: 'post', id: 987654321 }, { update: 'post', id: 987654321, data: { title: 'x' } }, { delete: 'post', id: 987654321 }]) {
      const tag = uniq('missing');
      const r = await txn([{ create: 'course', data: { name: tag } }, step]);
      expectStepError(r, 404, 'NOT_FOUND', 1);
      assert.deepEqual(await findWhere('course', 'name', tag), [], `after ${JSON.stringify(step)}`);
    }
  });

  test('malformed transactions: 400 BAD_REQUEST (no steps list, an unknown operation named by index)', async () => {
    for (const body of [{}, { steps: {} }, { steps: 'create' }, '[1,2]', 'not json']) {
      const r = await api('POST', '/api/transaction', body);
      expectError(r, 400, 'BAD_REQUEST');
    }
    const tag = uniq('badop');
    const r = await txn([{ create: 'course', data: { name: tag } }, { frobnicate: 'course', id: 1 }]);
    expectStepError(r, 400, 'BAD_REQUEST', 1);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
    const r2 = await txn([{ create: 'course', data: { name: tag } }, { create: 'noSuchModel', data: {} }]);
    assert.ok(r2.status === 400 || r2.status === 404, r2.text);
    assert.equal(r2.body.error.step, 1, r2.text);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
  });

  test('GET /api/transaction is not allowed (405 with Allow)', async () => {
    const r = await api('GET', '/api/transaction');
    expectError(r, 405, 'METHOD_NOT_ALLOWED');
    assert.match(r.headers.get('allow') || '', /POST/);
  });
});

// ---------------------------------------------------------------------------
describe('expect', () => {
  test('expect on a record that holds passes; one that does not: 409 EXPECTATION_FAILED with step and as, nothing applied', async () => {
    const c = await create('course', { name: uniq('exp'), maxStudents: 2 });
    const step = (extra = {}) => ({ as: 'c', update: 'course', id: c.id, data: { _atomics: { slotsTaken: { increment: 1 } } }, expect: { slotsTaken: { lessThanOrEqual: 2 } }, ...extra });
    for (const want of [1, 2]) {
      const r = await txn([step()]);
      expectStatus(r, 200);
      assert.equal(r.body.results[0].slotsTaken, want);
    }
    const tag = uniq('exp-post');
    const r = await txn([{ create: 'post', data: { title: tag } }, step()]);
    expectStepError(r, 409, 'EXPECTATION_FAILED', 1, 'c');
    assert.equal((await get('course', c.id)).slotsTaken, 2, 'the increment that broke the expectation is rewound');
    assert.deepEqual(await findWhere('post', 'title', tag), []);
  });

  test('expect may compare two fields of the result ({"field": "maxStudents"})', async () => {
    const c = await create('course', { name: uniq('exp-ff'), maxStudents: 1 });
    const st = { update: 'course', id: c.id, data: { _atomics: { slotsTaken: { increment: 1 } } }, expect: { slotsTaken: { lessThanOrEqual: { field: 'maxStudents' } } } };
    expectStatus(await txn([st]), 200);
    expectStepError(await txn([st]), 409, 'EXPECTATION_FAILED', 0);
    assert.equal((await get('course', c.id)).slotsTaken, 1);
  });

  test('expect on updateMany / deleteMany is on {"count": n}', async () => {
    const tag = uniq('exp-count');
    await create('course', { name: tag });
    await create('course', { name: tag });
    const ok = await txn([{ updateMany: 'course', filter: { name: { equals: tag } }, set: { maxStudents: 3 }, expect: { count: { equals: 2 } } }]);
    expectStatus(ok, 200);
    assert.deepEqual(ok.body.results, [{ count: 2 }]);

    const none = await txn([
      { updateMany: 'course', filter: { name: { equals: tag } }, set: { maxStudents: 4 } },
      { as: 'm', updateMany: 'course', filter: { name: { equals: `${tag}-nobody` } }, set: { maxStudents: 9 }, expect: { count: { greaterThan: 0 } } },
    ]);
    expectStepError(none, 409, 'EXPECTATION_FAILED', 1, 'm');
    assert.deepEqual((await findWhere('course', 'name', tag)).map((c) => c.maxStudents), [3, 3]);

    const del = await txn([{ deleteMany: 'course', filter: { name: { equals: tag } }, expect: { count: { lessThan: 2 } } }]);
    expectStepError(del, 409, 'EXPECTATION_FAILED', 0);
    assert.equal((await findWhere('course', 'name', tag)).length, 2, 'the deleteMany is undone');
    const del2 = await txn([{ deleteMany: 'course', filter: { name: { equals: tag } }, expect: { count: { equals: 2 } } }]);
    expectStatus(del2, 200);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
  });

  test('expect on a find result or a created record', async () => {
    const tag = uniq('exp-create');
    const r = await txn([{ create: 'course', data: { name: tag, maxStudents: 40 }, expect: { maxStudents: { lessThanOrEqual: 30 } } }]);
    expectStepError(r, 409, 'EXPECTATION_FAILED', 0);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
    const ok = await txn([{ create: 'course', data: { name: tag, maxStudents: 20 }, expect: { AND: [{ maxStudents: { lessThanOrEqual: 30 } }, { name: { equals: tag } }] } }]);
    expectStatus(ok, 200);
  });
});

// ---------------------------------------------------------------------------
describe('references', () => {
  test('{"$ref": "p.id"} of a created post links images, addresses later steps and fills filters', async () => {
    const tag = uniq('ref');
    const r = await txn([
      { as: 'p', create: 'post', data: { title: tag } },
      { as: 'i1', create: 'image', data: { url: `${tag}/1`, post: { _link: { $ref: 'p.id' } } } },
      { create: 'image', data: { url: `${tag}/2`, post: { $ref: 'p.id' } } },
      { update: 'post', id: { $ref: 'p.id' }, data: { title: `${tag}-renamed` } },
      { find: 'image', filter: { post: { equals: { $ref: 'p.id' } } }, sort: { id: 'ascending' } },
      { get: 'image', id: { $ref: 'i1.id' } },
    ]);
    expectStatus(r, 200);
    const [p, i1, i2, up, found, g] = r.body.results;
    assert.equal(i1.post, p.id);
    assert.equal(i2.post, p.id);
    assert.equal(up.id, p.id);
    assert.equal(up.title, `${tag}-renamed`);
    assert.deepEqual(found.records.map((x) => x.id), [i1.id, i2.id]);
    assert.equal(g.id, i1.id);
    const imgs = await findWhere('image', 'post', p.id);
    assert.equal(imgs.length, 2);
    assert.equal((await get('post', p.id)).title, `${tag}-renamed`);
  });

  test('a returned counter value can be referenced: as a data value, an atomic amount, a guard value', async () => {
    const e = await create('event', { availableTicketCount: 50 });
    const tag = uniq('refnum');
    const r = await txn([
      { as: 'e', update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 7 }, availableTicketCount: { decrement: 7 } } } },
      { as: 'c', create: 'course', data: { name: tag, maxStudents: { $ref: 'e.soldTicketCount' } } },
      { update: 'course', id: { $ref: 'c.id' }, data: { _atomics: { slotsTaken: { increment: { $ref: 'e.soldTicketCount' } } } },
        where: { maxStudents: { equals: { $ref: 'e.soldTicketCount' } } } },
      { as: 'n', create: 'customer', data: { name: { $ref: 'c.name' } } },
    ]);
    expectStatus(r, 200);
    assert.equal(r.body.results[1].maxStudents, 7);
    assert.equal(r.body.results[2].slotsTaken, 7);
    assert.equal(r.body.results[3].name, tag);
    const courses = await findWhere('course', 'name', tag);
    assert.equal(courses.length, 1);
    assert.equal(courses[0].slotsTaken, 7);
  });

  test('the count of an updateMany can be referenced', async () => {
    const tag = uniq('refcount');
    await create('course', { name: tag });
    await create('course', { name: tag });
    await create('course', { name: tag });
    const r = await txn([
      { as: 'm', updateMany: 'course', filter: { name: { equals: tag } }, set: { maxStudents: 1 } },
      { create: 'course', data: { name: `${tag}-n`, maxStudents: { $ref: 'm.count' } } },
    ]);
    expectStatus(r, 200);
    assert.equal(r.body.results[1].maxStudents, 3);
  });

  test('stored strings that start with "$" (or look like a reference) are kept exactly', async () => {
    const strings = ['$notref', '$ref', '$p.id', '$', '$$', '{"$ref": "p.id"}'];
    const r = await txn([
      { as: 'p', create: 'post', data: { title: 'anchor' } },
      ...strings.map((s) => ({ create: 'post', data: { title: s } })),
      { create: 'image', data: { url: '$ref:p.id', post: { _link: { $ref: 'p.id' } } } },
    ]);
    expectStatus(r, 200);
    const created = r.body.results.slice(1, 1 + strings.length);
    assert.deepEqual(created.map((x) => x.title), strings);
    for (const [i, s] of strings.entries()) assert.equal((await get('post', created[i].id)).title, s);
    const img = r.body.results[r.body.results.length - 1];
    assert.equal(img.url, '$ref:p.id');
    assert.equal(img.post, r.body.results[0].id);
    // a "$" string is a plain value in a filter too
    const f = await txn([{ find: 'post', filter: { title: { equals: '$notref' } } }]);
    expectStatus(f, 200);
    assert.ok(f.body.results[0].records.some((x) => x.id === created[0].id), f.text);
    // and outside transactions
    const direct = await create('post', { title: '$direct' });
    assert.equal((await get('post', direct.id)).title, '$direct');
  });

  test('a reference to an unknown name: 400 BAD_REQUEST with the step, before anything runs', async () => {
    const tag = uniq('refname');
    const r = await txn([
      { as: 'p', create: 'post', data: { title: tag } },
      { create: 'course', data: { name: tag } },
      { create: 'image', data: { url: tag, post: { _link: { $ref: 'q.id' } } } },
    ]);
    expectStepError(r, 400, 'BAD_REQUEST', 2);
    assert.deepEqual(await findWhere('post', 'title', tag), [], 'step 0 must not have run');
    assert.deepEqual(await findWhere('course', 'name', tag), [], 'step 1 must not have run');
    assert.deepEqual(await findWhere('image', 'url', tag), []);
  });

  test('a reference to an unknown field: 400 BAD_REQUEST with the step, before anything runs', async () => {
    const tag = uniq('reffield');
    const r = await txn([
      { as: 'p', create: 'post', data: { title: tag } },
      { update: 'post', id: { $ref: 'p.nosuchfield' }, data: { title: 'x' } },
    ]);
    expectStepError(r, 400, 'BAD_REQUEST', 1);
    assert.deepEqual(await findWhere('post', 'title', tag), []);

    // a delete answers only {"id"}: any other field of it is unknown
    const c = await create('course', { name: tag });
    const r2 = await txn([
      { as: 'd', delete: 'course', id: c.id },
      { create: 'post', data: { title: { $ref: 'd.name' } } },
    ]);
    expectStepError(r2, 400, 'BAD_REQUEST', 1);
    assert.equal((await get('course', c.id)).name, tag, 'the delete must not have run');
  });

  test('a reference to a later step (or to itself) is an unknown name: 400, nothing runs', async () => {
    const tag = uniq('reffwd');
    const r = await txn([
      { create: 'course', data: { name: tag } },
      { create: 'image', data: { url: tag, post: { $ref: 'p.id' } } },
      { as: 'p', create: 'post', data: { title: tag } },
    ]);
    expectStepError(r, 400, 'BAD_REQUEST', 1);
    const self = await txn([
      { create: 'course', data: { name: tag } },
      { as: 's', create: 'post', data: { title: { $ref: 's.title' } } },
    ]);
    expectStepError(self, 400, 'BAD_REQUEST', 1);
    assert.deepEqual(await findWhere('course', 'name', tag), []);
    assert.deepEqual(await findWhere('post', 'title', tag), []);
  });

  test('a malformed reference ({"$ref": "p"}, a number) is a 400 naming the step', async () => {
    const tag = uniq('refbad');
    for (const ref of ['p', 5, '.id', 'p.']) {
      const r = await txn([
        { as: 'p', create: 'post', data: { title: tag } },
        { create: 'course', data: { name: { $ref: ref } } },
      ]);
      expectStepError(r, 400, 'BAD_REQUEST', 1);
    }
    assert.deepEqual(await findWhere('post', 'title', tag), []);
  });
});

// ---------------------------------------------------------------------------
describe('limits', () => {
  test('1000 steps are accepted; 1001 is a 400 with nothing applied', async () => {
    const tag = uniq('lim');
    const steps = (n, t) => Array.from({ length: n }, (_, i) => ({ create: 'course', data: { name: t, maxStudents: i } }));
    const ok = await txn(steps(1000, tag));
    expectStatus(ok, 200);
    assert.equal(ok.body.results.length, 1000);
    assert.deepEqual(ok.body.results.map((c) => c.maxStudents), Array.from({ length: 1000 }, (_, i) => i));
    assert.equal((await findWhere('course', 'name', tag)).length, 1000);

    const tag2 = uniq('lim-over');
    const over = await txn(steps(1001, tag2));
    expectError(over, 400, 'BAD_REQUEST');
    assert.match(over.body.error.message, /1000|1,000/, `the message should say the limit: ${over.text}`);
    assert.deepEqual(await findWhere('course', 'name', tag2), []);
  });

  test('--max-txn-steps 5 changes the limit', async () => {
    const s2 = await startServer({ args: ['--max-txn-steps', '5'] });
    try {
      const steps = (n) => Array.from({ length: n }, (_, i) => ({ create: 'course', data: { name: `m5-${n}`, maxStudents: i } }));
      const ok = await s2.api('POST', '/api/transaction', { steps: steps(5) });
      expectStatus(ok, 200);
      assert.equal(ok.body.results.length, 5);
      const over = await s2.api('POST', '/api/transaction', { steps: steps(6) });
      expectError(over, 400, 'BAD_REQUEST');
      const list = await s2.api('GET', '/api/course?first=1000');
      assert.deepEqual(list.body.records.map((c) => c.name).sort(), Array(5).fill('m5-5'));
    } finally {
      await s2.stop();
    }
  });
});

// ---------------------------------------------------------------------------
describe('contention', () => {
  test('ticket sale as one batch: 300 concurrent buyers for 100 tickets', async () => {
    const e = await create('event', { availableTicketCount: 100 });
    const BUYERS = 300;
    const conns = await rawConnections(suite.srv, BUYERS);
    let answers;
    try {
      answers = await parallel(BUYERS, (i) => {
        const steps = ticketSaleSteps(e.id, i);
        return conns[i].request('POST', '/api/transaction', JSON.stringify({ steps }));
      });
    } finally {
      for (const c of conns) c.close();
    }
    const ok = answers.map((r, i) => [r, i]).filter(([r]) => r.status === 200);
    const refused = answers.map((r, i) => [r, i]).filter(([r]) => r.status !== 200);
    assert.equal(ok.length, 100, `exactly 100 buyers succeed; statuses: ${JSON.stringify(answers.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] || 0) + 1 }), {}))}`);
    for (const [r, i] of refused) {
      // the invariant (min 0) refuses; a guard error would be acceptable too
      expectError(r, r.body?.error?.code === 'GUARD_FAILED' ? 409 : 422, ['INVARIANT', 'GUARD_FAILED']);
      assert.equal(r.body.error.step, i % 2 === 0 ? 1 : 0, `the counting step is named: ${r.text}`);
    }
    const sold = [];
    const ticketIds = new Set();
    for (const [r, i] of ok) {
      const [a, b] = r.body.results;
      const [t, sale] = i % 2 === 0 ? [a, b] : [b, a];
      assert.equal(t.event, e.id, r.text);
      assert.equal(sale.soldTicketCount + sale.availableTicketCount, 100, r.text);
      sold.push(sale.soldTicketCount);
      ticketIds.add(t.id);
    }
    assert.deepEqual(sold.sort((x, y) => x - y), Array.from({ length: 100 }, (_, k) => k + 1), 'each sale answers a distinct count 1..100');
    const after = await get('event', e.id);
    assert.equal(after.soldTicketCount, 100);
    assert.equal(after.availableTicketCount, 0);
    const tickets = await findWhere('ticket', 'event', e.id);
    assert.equal(tickets.length, 100, 'exactly 100 tickets exist: no ticket without its count');
    assert.deepEqual(new Set(tickets.map((t) => t.id)), ticketIds, 'the tickets are exactly those of the successful buyers');
  });

  test('ticket sale with a guard instead of the min: refused buyers get GUARD_FAILED', async () => {
    const e = await create('event', { availableTicketCount: 20 });
    const conns = await rawConnections(suite.srv, 80);
    let answers;
    try {
      answers = await parallel(80, (i) => conns[i].request('POST', '/api/transaction', JSON.stringify({ steps: [
        { as: 't', create: 'ticket', data: { event: { _link: e.id } } },
        { update: 'event', id: e.id, data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } },
          where: { availableTicketCount: { greaterThan: 0 } } },
      ] })));
    } finally {
      for (const c of conns) c.close();
    }
    assert.equal(answers.filter((r) => r.status === 200).length, 20);
    for (const r of answers.filter((x) => x.status !== 200)) {
      expectError(r, 409, 'GUARD_FAILED');
      assert.equal(r.body.error.step, 1, r.text);
    }
    const after = await get('event', e.id);
    assert.deepEqual([after.soldTicketCount, after.availableTicketCount], [20, 0]);
    assert.equal((await findWhere('ticket', 'event', e.id)).length, 20);
  });

  test('course enrolment with expect: 500 concurrent, capacity 30 -> exactly 30 enrolments, slotsTaken 30', async () => {
    const c = await create('course', { name: uniq('popular') });
    assert.equal(c.maxStudents, 30);
    const N = 500;
    const conns = await rawConnections(suite.srv, N);
    let answers;
    try {
      answers = await parallel(N, (i) => conns[i].request('POST', '/api/transaction', JSON.stringify({ steps: [
        { as: 'c', update: 'course', id: c.id, data: { _atomics: { slotsTaken: { increment: 1 } } }, expect: { slotsTaken: { lessThanOrEqual: 30 } } },
        { as: 'e', create: 'enrollment', data: { course: { _link: { $ref: 'c.id' } }, student: `student-${i}` } },
      ] })));
    } finally {
      for (const c2 of conns) c2.close();
    }
    const ok = answers.filter((r) => r.status === 200);
    const bad = answers.filter((r) => r.status !== 200);
    assert.equal(ok.length, 30, `statuses: ${JSON.stringify(answers.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] || 0) + 1 }), {}))}`);
    for (const r of bad) {
      expectError(r, 409, 'EXPECTATION_FAILED');
      assert.equal(r.body.error.step, 0, r.text);
      assert.equal(r.body.error.as, 'c', r.text);
    }
    assert.deepEqual(ok.map((r) => r.body.results[0].slotsTaken).sort((a, b) => a - b), Array.from({ length: 30 }, (_, k) => k + 1));
    const after = await get('course', c.id);
    assert.equal(after.slotsTaken, 30);
    const enrolled = await findWhere('enrollment', 'course', c.id);
    assert.equal(enrolled.length, 30, 'exactly 30 enrolment records');
    assert.deepEqual(new Set(enrolled.map((x) => x.student)), new Set(ok.map((r) => r.body.results[1].student)));
  });

  test('course enrolment, record first and field-to-field expect (slotsTaken <= maxStudents = 12): 150 concurrent', async () => {
    const c = await create('course', { name: uniq('small'), maxStudents: 12 });
    const N = 150;
    const conns = await rawConnections(suite.srv, N);
    let answers;
    try {
      answers = await parallel(N, (i) => conns[i].request('POST', '/api/transaction', JSON.stringify({ steps: [
        { create: 'enrollment', data: { course: c.id, student: `s-${i}` } },
        { update: 'course', id: c.id, data: { _atomics: { slotsTaken: { increment: 1 } } }, expect: { slotsTaken: { lessThanOrEqual: { field: 'maxStudents' } } } },
      ] })));
    } finally {
      for (const c2 of conns) c2.close();
    }
    assert.equal(answers.filter((r) => r.status === 200).length, 12);
    for (const r of answers.filter((x) => x.status !== 200)) {
      expectError(r, 409, 'EXPECTATION_FAILED');
      assert.equal(r.body.error.step, 1, r.text);
    }
    assert.equal((await get('course', c.id)).slotsTaken, 12);
    assert.equal((await findWhere('enrollment', 'course', c.id)).length, 12, 'the enrolment records of refused students were rolled back');
  });
});
