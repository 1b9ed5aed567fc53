// Records over HTTP: create, read, update, delete, list; every error the
// contract names, each followed by a check that nothing changed.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fileServer, shopPlus, expectError, expectStatus, RFC3339_MS_UTC,
} from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';

const ITEM = {
  fields: {
    label: { type: 'string', maxLength: 10 },
    count: { type: 'integer' },
    big: { type: 'integer' },
    ratio: { type: 'float' },
    flag: { type: 'boolean' },
    at: { type: 'datetime' },
    meta: { type: 'json' },
    level: { type: 'integer', default: 3 },
    kind: { type: 'string', default: 'plain' },
    enabled: { type: 'boolean', default: true },
  },
};

const suite = fileServer({ schema: shopPlus({ item: ITEM, page: { fields: { n: { type: 'integer' } } } }) });
const { api } = suite;
/** snapshot(model): state of a whole model, to prove that a failed request changed nothing. */
const { create, snapshot } = recordHelpers(() => api);

const I64_MAX = '9223372036854775807';
const I64_MIN = '-9223372036854775808';

describe('create and read', () => {
  test('POST /api/customer answers 201 with the whole record; GET returns the same', async () => {
    const t0 = Date.now();
    const r = await api('POST', '/api/customer', { name: 'Ada', email: 'ada@example.com' });
    expectStatus(r, 201);
    assert.match(r.headers.get('content-type') || '', /application\/json/);
    const c = r.body;
    assert.deepEqual(Object.keys(c).sort(), ['createdAt', 'email', 'id', 'name', 'orderCount', 'updatedAt']);
    assert.ok(Number.isInteger(c.id) && c.id > 0, `id ${c.id}`);
    assert.equal(c.name, 'Ada');
    assert.equal(c.email, 'ada@example.com');
    assert.equal(c.orderCount, 0, 'default applies on create');
    assert.match(c.createdAt, RFC3339_MS_UTC);
    assert.match(c.updatedAt, RFC3339_MS_UTC);
    const created = Date.parse(c.createdAt);
    assert.ok(Math.abs(created - t0) < 10 * 60 * 1000, `createdAt ${c.createdAt} is not about now`);
    assert.ok(c.updatedAt >= c.createdAt);

    const g = await api('GET', `/api/customer/${c.id}`);
    expectStatus(g, 200);
    assert.deepEqual(g.body, c);
  });

  test('unset optional fields are null and defaults apply', async () => {
    const c = await create('customer', { name: 'NoMail' });
    assert.equal(c.email, null);
    assert.equal(c.orderCount, 0);
    const course = await create('course', {});
    assert.equal(course.name, null);
    assert.equal(course.maxStudents, 30);
    assert.equal(course.slotsTaken, 0);
    const it = await create('item', {});
    assert.deepEqual(
      { label: it.label, count: it.count, ratio: it.ratio, flag: it.flag, at: it.at, meta: it.meta,
        level: it.level, kind: it.kind, enabled: it.enabled },
      { label: null, count: null, ratio: null, flag: null, at: null, meta: null, level: 3, kind: 'plain', enabled: true });
  });

  test('a given value overrides the default', async () => {
    const c = await create('customer', { name: 'X', orderCount: 7 });
    assert.equal(c.orderCount, 7);
    const it = await create('item', { level: -4, kind: 'k', enabled: false });
    assert.equal(it.level, -4);
    assert.equal(it.kind, 'k');
    assert.equal(it.enabled, false);
  });

  test('every field type round-trips', async () => {
    const meta = { a: [1, 2.5, { b: null, c: 'x' }], d: true, e: 'üñí' };
    const it = await create('item', {
      label: 'héllo', count: -12, ratio: 0.125, flag: true, at: '2026-01-02T03:04:05.678Z', meta,
    });
    assert.equal(it.label, 'héllo');
    assert.equal(it.count, -12);
    assert.equal(it.ratio, 0.125);
    assert.equal(it.flag, true);
    assert.equal(it.at, '2026-01-02T03:04:05.678Z');
    assert.deepEqual(it.meta, meta);
    const g = await api('GET', `/api/item/${it.id}`);
    expectStatus(g, 200);
    assert.deepEqual(g.body, it);
  });

  test('json fields hold any JSON value (array, string, number, false)', async () => {
    for (const v of [[1, 'two', null], 'just a string', 42, false]) {
      const it = await create('item', { meta: v });
      assert.deepEqual(it.meta, v);
      const g = await api('GET', `/api/item/${it.id}`);
      assert.deepEqual(g.body.meta, v);
    }
  });

  test('an integer into a float field is accepted', async () => {
    const it = await create('item', { ratio: 2 });
    assert.equal(it.ratio, 2);
  });

  test('datetime with an offset comes back as the same instant in UTC with milliseconds', async () => {
    const it = await create('item', { at: '2026-01-02T05:04:05.678+02:00' });
    assert.equal(it.at, '2026-01-02T03:04:05.678Z');
    const it2 = await create('item', { at: '2026-03-04T10:11:12Z' });
    assert.equal(it2.at, '2026-03-04T10:11:12.000Z');
  });

  test('64-bit integers beyond 2^53 round-trip exactly', async () => {
    for (const v of [I64_MAX, I64_MIN, '9007199254740993', '-9007199254740993']) {
      const r = await api('POST', '/api/item', `{"big": ${v}}`);
      expectStatus(r, 201);
      assert.match(r.text, new RegExp(`"big"\\s*:\\s*${v}\\s*[,}]`), `create answer ${r.text}`);
      const g = await api('GET', `/api/item/${r.body.id}`);
      assert.match(g.text, new RegExp(`"big"\\s*:\\s*${v}\\s*[,}]`), `GET answer ${g.text}`);
    }
  });

  test('ids are increasing integers', async () => {
    const a = await create('customer', { name: 'a' });
    const b = await create('customer', { name: 'b' });
    assert.ok(b.id > a.id);
  });
});

describe('create errors change nothing', () => {
  const cases = [
    ['missing required field', 'customer', { email: 'm@x' }, 422, 'VALIDATION', 'name'],
    ['null into a required field', 'customer', { name: null }, 422, 'VALIDATION', 'name'],
    ['string into integer', 'customer', { name: 'a', orderCount: '5' }, 422, 'VALIDATION', 'orderCount'],
    ['1.5 into integer', 'customer', { name: 'a', orderCount: 1.5 }, 422, 'VALIDATION', 'orderCount'],
    ['boolean into integer', 'customer', { name: 'a', orderCount: true }, 422, 'VALIDATION', 'orderCount'],
    ['number into string', 'customer', { name: 5 }, 422, 'VALIDATION', 'name'],
    ['object into string', 'customer', { name: { a: 1 } }, 422, 'VALIDATION', 'name'],
    ['string into boolean', 'item', { flag: 'true' }, 422, 'VALIDATION', 'flag'],
    ['string into float', 'item', { ratio: '0.5' }, 422, 'VALIDATION', 'ratio'],
    ['not a datetime', 'item', { at: 'yesterday' }, 422, 'VALIDATION', 'at'],
    ['impossible datetime', 'item', { at: '2026-02-30T10:00:00.000Z' }, 422, 'VALIDATION', 'at'],
    ['string over maxLength', 'item', { label: 'x'.repeat(11) }, 422, 'VALIDATION', 'label'],
    ['url over maxLength 2048', 'image', { url: 'u'.repeat(2049) }, 422, 'VALIDATION', 'url'],
    ['unknown field', 'customer', { name: 'a', nickname: 'b' }, 400, 'BAD_REQUEST', 'nickname'],
    ['setting id', 'customer', { name: 'a', id: 123456 }, 400, 'BAD_REQUEST', 'id'],
    ['setting createdAt', 'customer', { name: 'a', createdAt: '2020-01-01T00:00:00.000Z' }, 400, 'BAD_REQUEST', 'createdAt'],
    ['setting updatedAt', 'customer', { name: 'a', updatedAt: '2020-01-01T00:00:00.000Z' }, 400, 'BAD_REQUEST', 'updatedAt'],
  ];
  for (const [name, model, body, status, code, p] of cases) {
    test(`${name}: ${status} ${code}`, async () => {
      const before = await snapshot(model);
      const r = await api('POST', `/api/${model}`, body);
      expectError(r, status, code, p);
      assert.deepEqual(await snapshot(model), before);
    });
  }

  test('a string exactly at maxLength is accepted', async () => {
    const it = await create('item', { label: 'x'.repeat(10) });
    assert.equal(it.label, 'xxxxxxxxxx');
    const img = await create('image', { url: 'u'.repeat(2048) });
    assert.equal(img.url.length, 2048);
  });

  test('integer past 2^63-1 on create is a 422', async () => {
    const before = await snapshot('item');
    for (const v of ['9223372036854775808', '-9223372036854775809', '1e30']) {
      const r = await api('POST', '/api/item', `{"big": ${v}}`);
      expectError(r, 422, ['VALIDATION', 'OVERFLOW'], 'big');
    }
    assert.deepEqual(await snapshot('item'), before);
  });

  const malformed = [
    ['malformed JSON', '{"name": "a",'],
    ['trailing garbage', '{"name": "a"} x'],
    ['empty body', ''],
    ['an array', '[{"name": "a"}]'],
    ['a string', '"name"'],
    ['a number', '5'],
    ['null', 'null'],
  ];
  for (const [name, text] of malformed) {
    test(`body that is ${name}: 400 BAD_REQUEST`, async () => {
      const before = await snapshot('customer');
      const r = await api('POST', '/api/customer', text, { headers: { 'content-type': 'application/json' } });
      expectError(r, 400, 'BAD_REQUEST');
      assert.deepEqual(await snapshot('customer'), before);
    });
  }

  test('unknown model: 404 NOT_FOUND', async () => {
    const r = await api('POST', '/api/nosuchmodel', { name: 'a' });
    expectError(r, 404, 'NOT_FOUND');
  });
});

describe('unique constraints', () => {
  test('duplicate unique value on create: 409 UNIQUE_VIOLATION, nothing created', async () => {
    await create('customer', { name: 'U1', email: 'dup@example.com' });
    const before = await snapshot('customer');
    const r = await api('POST', '/api/customer', { name: 'U2', email: 'dup@example.com' });
    expectError(r, 409, 'UNIQUE_VIOLATION', 'email');
    assert.deepEqual(await snapshot('customer'), before);
  });

  test('several records may leave a unique field unset', async () => {
    const a = await create('customer', { name: 'nomail1' });
    const b = await create('customer', { name: 'nomail2' });
    assert.equal(a.email, null);
    assert.equal(b.email, null);
  });

  test('duplicate unique value on PATCH: 409, the record unchanged', async () => {
    await create('customer', { name: 'P1', email: 'taken@example.com' });
    const c = await create('customer', { name: 'P2', email: 'mine@example.com' });
    const r = await api('PATCH', `/api/customer/${c.id}`, { email: 'taken@example.com', name: 'changed' });
    expectError(r, 409, 'UNIQUE_VIOLATION', 'email');
    const g = await api('GET', `/api/customer/${c.id}`);
    assert.deepEqual(g.body, c);
  });

  test('required unique sku', async () => {
    await create('product', { sku: 'SKU-1' });
    const before = await snapshot('product');
    const r = await api('POST', '/api/product', { sku: 'SKU-1', stock: 5 });
    expectError(r, 409, 'UNIQUE_VIOLATION', 'sku');
    assert.deepEqual(await snapshot('product'), before);
  });

  test('compound unique [userId, window]', async () => {
    const a = await create('rateLimit', { userId: 'u1', window: 100 });
    assert.equal(a.requests, 0);
    await create('rateLimit', { userId: 'u1', window: 101 });
    await create('rateLimit', { userId: 'u2', window: 100 });
    const before = await snapshot('rateLimit');
    const r = await api('POST', '/api/rateLimit', { userId: 'u1', window: 100, requests: 5 });
    expectError(r, 409, 'UNIQUE_VIOLATION');
    assert.deepEqual(await snapshot('rateLimit'), before);
    // moving another row onto the taken pair is refused too
    const r2 = await api('PATCH', `/api/rateLimit/${before.find((x) => x.userId === 'u2').id}`, { userId: 'u1' });
    expectError(r2, 409, 'UNIQUE_VIOLATION');
    assert.deepEqual(await snapshot('rateLimit'), before);
  });
});

describe('update', () => {
  test('PATCH sets plain fields and answers the record after the change', async () => {
    const c = await create('customer', { name: 'Before', email: 'before@example.com' });
    const r = await api('PATCH', `/api/customer/${c.id}`, { name: 'After', orderCount: 3 });
    expectStatus(r, 200);
    assert.equal(r.body.id, c.id);
    assert.equal(r.body.name, 'After');
    assert.equal(r.body.orderCount, 3);
    assert.equal(r.body.email, 'before@example.com', 'fields not given keep their value');
    assert.equal(r.body.createdAt, c.createdAt);
    assert.match(r.body.updatedAt, RFC3339_MS_UTC);
    assert.ok(r.body.updatedAt >= c.updatedAt);
    const g = await api('GET', `/api/customer/${c.id}`);
    assert.deepEqual(g.body, r.body);
  });

  test('PATCH can clear an optional field with null', async () => {
    const c = await create('customer', { name: 'N', email: 'clear@example.com' });
    const r = await api('PATCH', `/api/customer/${c.id}`, { email: null });
    expectStatus(r, 200);
    assert.equal(r.body.email, null);
    assert.equal((await api('GET', `/api/customer/${c.id}`)).body.email, null);
  });

  test('PATCH of every type', async () => {
    const it = await create('item', {});
    const r = await api('PATCH', `/api/item/${it.id}`,
      { label: 'abc', count: 9, ratio: -1.5, flag: false, at: '2030-12-31T23:59:59.999Z', meta: { k: [1] } });
    expectStatus(r, 200);
    assert.equal(r.body.label, 'abc');
    assert.equal(r.body.count, 9);
    assert.equal(r.body.ratio, -1.5);
    assert.equal(r.body.flag, false);
    assert.equal(r.body.at, '2030-12-31T23:59:59.999Z');
    assert.deepEqual(r.body.meta, { k: [1] });
  });

  const bad = [
    ['null into a required field', { name: null }, 422, 'VALIDATION', 'name'],
    ['string into integer', { orderCount: 'many' }, 422, 'VALIDATION', 'orderCount'],
    ['1.5 into integer', { orderCount: 1.5 }, 422, 'VALIDATION', 'orderCount'],
    ['unknown field', { name: 'ok', nickname: 'x' }, 400, 'BAD_REQUEST', 'nickname'],
    ['setting id', { id: 999 }, 400, 'BAD_REQUEST', 'id'],
    ['setting createdAt', { createdAt: '2020-01-01T00:00:00.000Z' }, 400, 'BAD_REQUEST', 'createdAt'],
    ['setting updatedAt', { updatedAt: '2020-01-01T00:00:00.000Z' }, 400, 'BAD_REQUEST', 'updatedAt'],
    ['a field both set and in _atomics', { orderCount: 5, _atomics: { orderCount: { increment: 1 } } }, 400, 'BAD_REQUEST'],
  ];
  for (const [name, body, status, code, p] of bad) {
    test(`PATCH with ${name}: ${status} ${code}, record unchanged`, async () => {
      const c = await create('customer', { name: 'Keep', email: `keep-${Math.random()}@x`, orderCount: 2 });
      const r = await api('PATCH', `/api/customer/${c.id}`, body);
      expectError(r, status, code, p);
      assert.deepEqual((await api('GET', `/api/customer/${c.id}`)).body, c);
    });
  }

  for (const [name, text] of [['malformed JSON', '{"name":'], ['an array', '[]'], ['a number', '1'], ['empty body', '']]) {
    test(`PATCH whose body is ${name}: 400, record unchanged`, async () => {
      const c = await create('customer', { name: 'Keep2' });
      const r = await api('PATCH', `/api/customer/${c.id}`, text, { headers: { 'content-type': 'application/json' } });
      expectError(r, 400, 'BAD_REQUEST');
      assert.deepEqual((await api('GET', `/api/customer/${c.id}`)).body, c);
    });
  }

  test('PATCH string over maxLength: 422, unchanged', async () => {
    const it = await create('item', { label: 'short' });
    const r = await api('PATCH', `/api/item/${it.id}`, { label: 'x'.repeat(11) });
    expectError(r, 422, 'VALIDATION', 'label');
    assert.deepEqual((await api('GET', `/api/item/${it.id}`)).body, it);
  });

  test('PATCH a missing record: 404, nothing created', async () => {
    const before = await snapshot('customer');
    const r = await api('PATCH', '/api/customer/987654321', { name: 'ghost' });
    expectError(r, 404, 'NOT_FOUND');
    assert.deepEqual(await snapshot('customer'), before);
  });

  test('PATCH on an unknown model: 404', async () => {
    expectError(await api('PATCH', '/api/nosuchmodel/1', { name: 'x' }), 404, 'NOT_FOUND');
  });
});

describe('read errors', () => {
  test('GET a missing record: 404 NOT_FOUND', async () => {
    expectError(await api('GET', '/api/customer/987654321'), 404, 'NOT_FOUND');
  });
  test('GET on an unknown model: 404 NOT_FOUND', async () => {
    expectError(await api('GET', '/api/nosuchmodel/1'), 404, 'NOT_FOUND');
    expectError(await api('GET', '/api/nosuchmodel'), 404, 'NOT_FOUND');
  });
  for (const id of ['abc', '1.5', '12abc', '1e3', '%20', '-1', '99999999999999999999']) {
    test(`bad id in the path (${id}): 400 BAD_REQUEST for GET, PATCH and DELETE`, async () => {
      const c = await create('customer', { name: 'bad-id-check' });
      const before = await snapshot('customer');
      expectError(await api('GET', `/api/customer/${id}`), 400, 'BAD_REQUEST');
      expectError(await api('PATCH', `/api/customer/${id}`, { name: 'z' }), 400, 'BAD_REQUEST');
      expectError(await api('DELETE', `/api/customer/${id}`), 400, 'BAD_REQUEST');
      assert.deepEqual(await snapshot('customer'), before);
      assert.ok(before.some((x) => x.id === c.id));
    });
  }
  test('unknown path under /api: 404 NOT_FOUND with an error body', async () => {
    const c = await create('customer', { name: 'path' });
    for (const p of [`/api/customer/${c.id}/orders/1`, '/api/', '/api']) {
      const r = await api('GET', p);
      expectError(r, 404, 'NOT_FOUND');
    }
  });
});

describe('method not allowed', () => {
  test('PUT /api/customer/1: 405 METHOD_NOT_ALLOWED with an Allow header, nothing changed', async () => {
    const c = await create('customer', { name: 'put-target' });
    const r = await api('PUT', `/api/customer/${c.id}`, { name: 'replaced' });
    expectError(r, 405, 'METHOD_NOT_ALLOWED');
    const allow = (r.headers.get('allow') || '').toUpperCase().split(/\s*,\s*/);
    for (const m of ['GET', 'PATCH', 'DELETE']) assert.ok(allow.includes(m), `Allow: ${r.headers.get('allow')}`);
    assert.ok(!allow.includes('PUT'));
    assert.deepEqual((await api('GET', `/api/customer/${c.id}`)).body, c);
  });
  test('PUT and DELETE on a collection: 405 with Allow listing GET and POST', async () => {
    const before = await snapshot('customer');
    for (const m of ['PUT', 'DELETE']) {
      const r = await api(m, '/api/customer', m === 'PUT' ? { name: 'x' } : undefined);
      expectError(r, 405, 'METHOD_NOT_ALLOWED');
      const allow = (r.headers.get('allow') || '').toUpperCase().split(/\s*,\s*/);
      assert.ok(allow.includes('GET') && allow.includes('POST'), `Allow: ${r.headers.get('allow')}`);
    }
    assert.deepEqual(await snapshot('customer'), before);
  });
  test('POST to a record: 405', async () => {
    const c = await create('customer', { name: 'post-to-record' });
    const r = await api('POST', `/api/customer/${c.id}`, { name: 'x' });
    expectError(r, 405, 'METHOD_NOT_ALLOWED');
    assert.ok(r.headers.get('allow'), 'Allow header present');
    assert.deepEqual((await api('GET', `/api/customer/${c.id}`)).body, c);
  });
});

describe('delete', () => {
  test('DELETE answers {id}; the record is gone from GET and from the listing', async () => {
    const c = await create('customer', { name: 'Doomed', email: 'doomed@example.com' });
    const r = await api('DELETE', `/api/customer/${c.id}`);
    expectStatus(r, 200);
    assert.deepEqual(r.body, { id: c.id });
    expectError(await api('GET', `/api/customer/${c.id}`), 404, 'NOT_FOUND');
    const all = await snapshot('customer');
    assert.ok(!all.some((x) => x.id === c.id));
    // its unique value is free again
    const again = await create('customer', { name: 'Reborn', email: 'doomed@example.com' });
    assert.notEqual(again.id, c.id);
  });

  test('DELETE twice: the second is 404, and PATCH on it is 404', async () => {
    const c = await create('customer', { name: 'Twice' });
    expectStatus(await api('DELETE', `/api/customer/${c.id}`), 200);
    const before = await snapshot('customer');
    expectError(await api('DELETE', `/api/customer/${c.id}`), 404, 'NOT_FOUND');
    expectError(await api('PATCH', `/api/customer/${c.id}`, { name: 'zombie' }), 404, 'NOT_FOUND');
    expectError(await api('PATCH', `/api/customer/${c.id}`, { _atomics: { orderCount: { increment: 1 } } }), 404, 'NOT_FOUND');
    assert.deepEqual(await snapshot('customer'), before);
  });

  test('DELETE on an unknown model: 404', async () => {
    expectError(await api('DELETE', '/api/nosuchmodel/1'), 404, 'NOT_FOUND');
  });

  test('ids are never reused, even after deleting the newest record', async () => {
    const a = await create('customer', { name: 'newest' });
    expectStatus(await api('DELETE', `/api/customer/${a.id}`), 200);
    const b = await create('customer', { name: 'next' });
    assert.ok(b.id > a.id, `new id ${b.id} must be greater than deleted ${a.id}`);
  });
});

describe('listing', () => {
  test('an empty model lists as {records: [], next: null}', async () => {
    const r = await api('GET', '/api/ticket');
    expectStatus(r, 200);
    assert.deepEqual(r.body, { records: [], next: null });
  });

  test('first/after page through every record in id order, once each', async () => {
    const made = [];
    for (let i = 0; i < 7; i++) made.push(await create('page', { n: i }));
    const seen = [];
    let after = null;
    let pages = 0;
    for (;;) {
      const r = await api('GET', `/api/page?first=3${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      expectStatus(r, 200);
      assert.deepEqual(Object.keys(r.body).sort(), ['next', 'records']);
      assert.ok(r.body.records.length <= 3);
      seen.push(...r.body.records);
      pages++;
      if (r.body.next === null) break;
      assert.equal(typeof r.body.next, 'string');
      after = r.body.next;
      assert.ok(pages < 10, 'paging does not end');
    }
    assert.deepEqual(seen.map((x) => x.id), made.map((x) => x.id));
    assert.deepEqual(seen, made, 'listed records are whole records');
    // the first page of 3 has a cursor
    const first = await api('GET', '/api/page?first=3');
    assert.equal(first.body.records.length, 3);
    assert.notEqual(first.body.next, null);
  });

  test('first defaults to 50; first=1000 is allowed', async () => {
    for (let i = 0; i < 60; i++) await create('page', { n: 100 + i });
    const r = await api('GET', '/api/page');
    expectStatus(r, 200);
    assert.equal(r.body.records.length, 50);
    assert.notEqual(r.body.next, null);
    const ids = r.body.records.map((x) => x.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    const big = await api('GET', '/api/page?first=1000');
    expectStatus(big, 200);
    assert.equal(big.body.records.length, (await snapshot('page')).length);
    assert.equal(big.body.next, null);
  });

  test('a cursor still works after the record it points past is deleted', async () => {
    const all = await snapshot('page');
    const p1 = await api('GET', '/api/page?first=2');
    expectStatus(p1, 200);
    const lastOnPage = p1.body.records[1];
    const firstOfNext = all[2];
    expectStatus(await api('DELETE', `/api/page/${lastOnPage.id}`), 200);
    expectStatus(await api('DELETE', `/api/page/${firstOfNext.id}`), 200);
    const p2 = await api('GET', `/api/page?first=2&after=${encodeURIComponent(p1.body.next)}`);
    expectStatus(p2, 200);
    assert.deepEqual(p2.body.records.map((x) => x.id), [all[3].id, all[4].id]);
  });

  for (const q of ['first=0', 'first=1001', 'first=-1', 'first=abc', 'first=1.5', 'after=!!!not-a-cursor!!!', 'first=2&after=%00%01']) {
    test(`bad listing parameter ${q}: 400 BAD_REQUEST`, async () => {
      const r = await api('GET', `/api/page?${q}`);
      expectError(r, 400, 'BAD_REQUEST');
    });
  }
});

describe('restart keeps records and never reuses ids', () => {
  test('after a clean restart the records are there and a new id is above every old one', async () => {
    const a = await create('customer', { name: 'before-restart', email: 'restart@example.com' });
    expectStatus(await api('DELETE', `/api/customer/${a.id}`), 200);
    const b = await create('customer', { name: 'kept' });
    const all = await snapshot('customer');
    const st = await suite.srv.stop('SIGTERM');
    assert.equal(st.code, 0, `exit code after SIGTERM; stderr: ${suite.srv.stderr}`);
    suite.srv = await startServer({ schema: suite.srv.schema, dataDir: suite.srv.dataDir });
    assert.deepEqual(await snapshot('customer'), all);
    expectStatus(await api('DELETE', `/api/customer/${b.id}`), 200);
    const c = await create('customer', { name: 'after-restart' });
    assert.ok(c.id > b.id, `id ${c.id} after restart must exceed every earlier id (${b.id})`);
  });
});

describe('HEAD', () => {
  test('HEAD on any GET route answers as GET, without the body: the same status and headers', async () => {
    const srv = await startServer();
    try {
      const made = await srv.api('POST', '/api/customer', { name: 'head' });
      expectStatus(made, 201);
      for (const p of [`/api/customer/${made.body.id}`, '/api/customer?first=5', '/api/customer/999999', '/health', '/api/locks']) {
        const get = await fetch(srv.url + p);
        const getBody = await get.text();
        const head = await fetch(srv.url + p, { method: 'HEAD' });
        const headBody = await head.text();
        assert.equal(head.status, get.status, `HEAD ${p}`);
        assert.equal(headBody, '', `HEAD ${p} sends no body`);
        assert.equal(head.headers.get('content-type'), get.headers.get('content-type'), `HEAD ${p} content-type`);
        assert.equal(Number(head.headers.get('content-length') ?? getBody.length), Buffer.byteLength(getBody), `HEAD ${p} content-length`);
      }
    } finally {
      await srv.stop();
    }
  });
});
