// _atomics: increments and decrements done in the database, answered with the
// record after the change; invariants (min/max) and 64-bit overflow refused
// with nothing changed.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fileServer, shopPlus, expectError, expectStatus } from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';

const I64_MAX = '9223372036854775807';
const I64_MIN = '-9223372036854775808';

const { api } = fileServer({
  schema: shopPlus({
    meter: { fields: { reading: { type: 'float', default: 0 }, label: { type: 'string' }, on: { type: 'boolean' } } },
    gauge: { fields: { level: { type: 'integer', default: 5, min: 0, max: 10 }, temp: { type: 'float', min: -1.5, max: 1.5 } } },
    wide: { fields: { big: { type: 'integer' }, other: { type: 'integer', default: 0 } } },
  }),
});
const { create, get } = recordHelpers(() => api);

async function patch(model, id, body) {
  return api('PATCH', `/api/${model}/${id}`, body);
}
const atomics = (a) => ({ _atomics: a });

describe('increment and decrement', () => {
  test('increment answers the new value and stores it', async () => {
    const c = await create('customer', { name: 'inc' });
    const r = await patch('customer', c.id, atomics({ orderCount: { increment: 5 } }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 5);
    assert.equal(r.body.name, 'inc');
    assert.equal(r.body.id, c.id);
    assert.equal(r.body.createdAt, c.createdAt);
    assert.ok(r.body.updatedAt >= c.updatedAt);
    assert.deepEqual(await get('customer', c.id), r.body);
    const r2 = await patch('customer', c.id, atomics({ orderCount: { increment: 5 } }));
    assert.equal(r2.body.orderCount, 10, 'the second increment adds to the stored value');
  });

  test('decrement', async () => {
    const c = await create('customer', { name: 'dec', orderCount: 10 });
    const r = await patch('customer', c.id, atomics({ orderCount: { decrement: 3 } }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 7);
    assert.equal((await get('customer', c.id)).orderCount, 7);
  });

  test('decrement below zero is fine where there is no min', async () => {
    const c = await create('customer', { name: 'neg' });
    const r = await patch('customer', c.id, atomics({ orderCount: { decrement: 4 } }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, -4);
  });

  test('{"increment": {}} and {"decrement": {}} mean 1', async () => {
    const c = await create('customer', { name: 'default-one', orderCount: 10 });
    let r = await patch('customer', c.id, atomics({ orderCount: { increment: {} } }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 11);
    r = await patch('customer', c.id, atomics({ orderCount: { decrement: {} } }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 10);
    r = await patch('customer', c.id, atomics({ orderCount: [{ increment: {} }, { increment: {} }, { increment: {} }] }));
    expectStatus(r, 200);
    assert.equal(r.body.orderCount, 13);
  });

  test('a list of operations on one field is applied in order', async () => {
    const p = await create('product', { sku: 'LIST-1', stock: 10 });
    const r = await patch('product', p.id, atomics({ stock: [{ increment: 5 }, { decrement: 2 }] }));
    expectStatus(r, 200);
    assert.equal(r.body.stock, 13);
    const r2 = await patch('product', p.id, atomics({ stock: [{ decrement: 1 }, { decrement: 1 }, { increment: 10 }, { decrement: 4 }] }));
    expectStatus(r2, 200);
    assert.equal(r2.body.stock, 17);
    assert.equal((await get('product', p.id)).stock, 17);
  });

  test('several fields in one request change together', async () => {
    const e = await create('event', { availableTicketCount: 100 });
    const r = await patch('event', e.id, atomics({ soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } }));
    expectStatus(r, 200);
    assert.equal(r.body.soldTicketCount, 1);
    assert.equal(r.body.availableTicketCount, 99);
    const g = await get('event', e.id);
    assert.equal(g.soldTicketCount, 1);
    assert.equal(g.availableTicketCount, 99);
  });

  test('plain fields and _atomics on other fields in one PATCH', async () => {
    const c = await create('customer', { name: 'mixed' });
    const r = await patch('customer', c.id, { name: 'mixed-2', _atomics: { orderCount: { increment: 2 } } });
    expectStatus(r, 200);
    assert.equal(r.body.name, 'mixed-2');
    assert.equal(r.body.orderCount, 2);
    assert.deepEqual(await get('customer', c.id), r.body);
  });

  test('float fields increment and decrement by fractions', async () => {
    const m = await create('meter', {});
    assert.equal(m.reading, 0);
    let r = await patch('meter', m.id, atomics({ reading: { increment: 0.5 } }));
    expectStatus(r, 200);
    assert.equal(r.body.reading, 0.5);
    r = await patch('meter', m.id, atomics({ reading: { increment: 0.25 } }));
    assert.equal(r.body.reading, 0.75);
    r = await patch('meter', m.id, atomics({ reading: { decrement: 1.5 } }));
    assert.equal(r.body.reading, -0.75);
    r = await patch('meter', m.id, atomics({ reading: [{ increment: 2 }, { decrement: 0.125 }] }));
    assert.equal(r.body.reading, 1.125);
    assert.equal((await get('meter', m.id)).reading, 1.125);
  });

  test('values beyond 2^53 increment exactly', async () => {
    const r0 = await api('POST', '/api/wide', '{"big": 9007199254740993}');
    expectStatus(r0, 201);
    const id = r0.body.id;
    const r = await api('PATCH', `/api/wide/${id}`, '{"_atomics": {"big": {"increment": 2}}}');
    expectStatus(r, 200);
    assert.match(r.text, /"big"\s*:\s*9007199254740995\s*[,}]/, r.text);
    const r2 = await api('PATCH', `/api/wide/${id}`, '{"_atomics": {"big": {"increment": 9000000000000000000}}}');
    expectStatus(r2, 200);
    assert.match(r2.text, /"big"\s*:\s*9009007199254740995\s*[,}]/, r2.text);
    const g = await api('GET', `/api/wide/${id}`);
    assert.match(g.text, /"big"\s*:\s*9009007199254740995\s*[,}]/, g.text);
  });

  test('increment up to exactly 2^63-1 and decrement down to exactly -2^63 succeed', async () => {
    const r0 = await api('POST', '/api/wide', '{"big": 9223372036854775800}');
    expectStatus(r0, 201);
    const r = await api('PATCH', `/api/wide/${r0.body.id}`, '{"_atomics": {"big": {"increment": 7}}}');
    expectStatus(r, 200);
    assert.match(r.text, new RegExp(`"big"\\s*:\\s*${I64_MAX}\\s*[,}]`), r.text);
    const g = await api('GET', `/api/wide/${r0.body.id}`);
    assert.match(g.text, new RegExp(`"big"\\s*:\\s*${I64_MAX}\\s*[,}]`), g.text);

    const m0 = await api('POST', '/api/wide', '{"big": -9223372036854775800}');
    expectStatus(m0, 201);
    const m = await api('PATCH', `/api/wide/${m0.body.id}`, '{"_atomics": {"big": {"decrement": 8}}}');
    expectStatus(m, 200);
    assert.match(m.text, new RegExp(`"big"\\s*:\\s*${I64_MIN}\\s*[,}]`), m.text);
  });
});

describe('invariants (min/max)', () => {
  test('a decrement below min: 422 INVARIANT, nothing changed', async () => {
    const p = await create('product', { sku: 'INV-1', stock: 10 });
    const r = await patch('product', p.id, atomics({ stock: { decrement: 11 } }));
    expectError(r, 422, 'INVARIANT', '_atomics.stock');
    assert.deepEqual(await get('product', p.id), p);
    const ok = await patch('product', p.id, atomics({ stock: { decrement: 10 } }));
    expectStatus(ok, 200);
    assert.equal(ok.body.stock, 0, 'reaching min exactly is allowed');
    const r2 = await patch('product', p.id, atomics({ stock: { decrement: {} } }));
    expectError(r2, 422, 'INVARIANT', '_atomics.stock');
    assert.equal((await get('product', p.id)).stock, 0);
  });

  test('judged after all of a field\'s operations', async () => {
    const p = await create('product', { sku: 'INV-2', stock: 10 });
    // passes below min on the way, ends at 5: allowed
    const r = await patch('product', p.id, atomics({ stock: [{ decrement: 15 }, { increment: 10 }] }));
    expectStatus(r, 200);
    assert.equal(r.body.stock, 5);
    // ends below min: refused, nothing changed
    const before = await get('product', p.id);
    const r2 = await patch('product', p.id, atomics({ stock: [{ increment: 10 }, { decrement: 16 }] }));
    expectError(r2, 422, 'INVARIANT', '_atomics.stock');
    assert.deepEqual(await get('product', p.id), before);
  });

  test('crossing max: 422 INVARIANT; reaching max is allowed', async () => {
    const g = await create('gauge', {});
    assert.equal(g.level, 5);
    const r = await patch('gauge', g.id, atomics({ level: { increment: 6 } }));
    expectError(r, 422, 'INVARIANT', '_atomics.level');
    assert.deepEqual(await get('gauge', g.id), g);
    const ok = await patch('gauge', g.id, atomics({ level: { increment: 5 } }));
    expectStatus(ok, 200);
    assert.equal(ok.body.level, 10);
  });

  test('float invariants', async () => {
    const g = await create('gauge', { temp: 1.0 });
    const r = await patch('gauge', g.id, atomics({ temp: { increment: 0.75 } }));
    expectError(r, 422, 'INVARIANT', '_atomics.temp');
    const ok = await patch('gauge', g.id, atomics({ temp: { increment: 0.5 } }));
    expectStatus(ok, 200);
    assert.equal(ok.body.temp, 1.5);
    const low = await patch('gauge', g.id, atomics({ temp: { decrement: 3.25 } }));
    expectError(low, 422, 'INVARIANT', '_atomics.temp');
    assert.equal((await get('gauge', g.id)).temp, 1.5);
  });

  test('one field failing its invariant fails the whole request: the other fields do not change', async () => {
    const e = await create('event', { availableTicketCount: 0, soldTicketCount: 7 });
    const r = await patch('event', e.id, atomics({ soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } }));
    expectError(r, 422, 'INVARIANT', '_atomics.availableTicketCount');
    assert.deepEqual(await get('event', e.id), e);
    const c = await create('product', { sku: 'INV-3', stock: 1 });
    const r2 = await patch('product', c.id, { sku: 'INV-3-renamed', _atomics: { stock: { decrement: 2 } } });
    expectError(r2, 422, 'INVARIANT', '_atomics.stock');
    assert.deepEqual(await get('product', c.id), c, 'the plain field set in the same request is not applied');
  });

  test('plain set crossing min or max: 422 INVARIANT, unchanged', async () => {
    const p = await create('product', { sku: 'INV-4', stock: 3 });
    expectError(await patch('product', p.id, { stock: -1 }), 422, 'INVARIANT', 'stock');
    const g = await create('gauge', {});
    expectError(await patch('gauge', g.id, { level: 11 }), 422, 'INVARIANT', 'level');
    assert.deepEqual(await get('product', p.id), p);
    assert.deepEqual(await get('gauge', g.id), g);
  });

  test('create crossing min or max: 422 INVARIANT, nothing created', async () => {
    const r = await api('POST', '/api/product', { sku: 'INV-5', stock: -1 });
    expectError(r, 422, 'INVARIANT', 'stock');
    const r2 = await api('POST', '/api/gauge', { level: 11 });
    expectError(r2, 422, 'INVARIANT', 'level');
    // the sku is still free: nothing was created
    const ok = await create('product', { sku: 'INV-5', stock: 0 });
    assert.equal(ok.stock, 0);
  });
});

describe('overflow', () => {
  async function wide(big) {
    const r = await api('POST', '/api/wide', `{"big": ${big}, "other": 1}`);
    expectStatus(r, 201);
    return r;
  }
  const bigIs = (text, v) => new RegExp(`"big"\\s*:\\s*${v}\\s*[,}]`).test(text);

  test('increment 1 on 2^63-1: 422 OVERFLOW, value unchanged', async () => {
    const w = await wide(I64_MAX);
    const r = await api('PATCH', `/api/wide/${w.body.id}`, '{"_atomics": {"big": {"increment": 1}}}');
    expectError(r, 422, 'OVERFLOW', '_atomics.big');
    const g = await api('GET', `/api/wide/${w.body.id}`);
    assert.ok(bigIs(g.text, I64_MAX), `value changed: ${g.text}`);
    assert.equal(g.body.updatedAt, w.body.updatedAt);
  });

  test('decrement 1 on -2^63: 422 OVERFLOW, value unchanged', async () => {
    const w = await wide(I64_MIN);
    const r = await api('PATCH', `/api/wide/${w.body.id}`, '{"_atomics": {"big": {"decrement": 1}}}');
    expectError(r, 422, 'OVERFLOW', '_atomics.big');
    const g = await api('GET', `/api/wide/${w.body.id}`);
    assert.ok(bigIs(g.text, I64_MIN), `value changed: ${g.text}`);
  });

  test('a large increment that passes 2^63-1: 422 OVERFLOW', async () => {
    const w = await wide('1');
    const r = await api('PATCH', `/api/wide/${w.body.id}`, `{"_atomics": {"big": {"increment": ${I64_MAX}}}}`);
    expectError(r, 422, 'OVERFLOW', '_atomics.big');
    const g = await api('GET', `/api/wide/${w.body.id}`);
    assert.equal(g.body.big, 1);
  });

  test('a large decrement that passes -2^63: 422 OVERFLOW', async () => {
    const w = await wide('-2');
    const r = await api('PATCH', `/api/wide/${w.body.id}`, `{"_atomics": {"big": {"decrement": ${I64_MAX}}}}`);
    expectError(r, 422, 'OVERFLOW', '_atomics.big');
    assert.equal((await api('GET', `/api/wide/${w.body.id}`)).body.big, -2);
  });

  test('overflow on one field leaves the other fields of the request unapplied', async () => {
    const w = await wide(I64_MAX);
    const r = await api('PATCH', `/api/wide/${w.body.id}`, '{"_atomics": {"other": {"increment": 5}, "big": {"increment": 1}}}');
    expectError(r, 422, 'OVERFLOW', '_atomics.big');
    const g = await api('GET', `/api/wide/${w.body.id}`);
    assert.equal(g.body.other, 1);
    assert.ok(bigIs(g.text, I64_MAX), g.text);
  });
});

describe('bad _atomics requests change nothing', () => {
  const cases = [
    ['_atomics not an object', { _atomics: 5 }, 400, 'BAD_REQUEST'],
    ['_atomics an array', { _atomics: [] }, 400, 'BAD_REQUEST'],
    ['a bare number for a field', { _atomics: { orderCount: 5 } }, 400, 'BAD_REQUEST'],
    ['an unknown operation', { _atomics: { orderCount: { multiply: 2 } } }, 400, 'BAD_REQUEST'],
    ['a list holding a bare number', { _atomics: { orderCount: [5] } }, 400, 'BAD_REQUEST'],
    ['a string amount', { _atomics: { orderCount: { increment: '5' } } }, 400, 'BAD_REQUEST'],
    ['a boolean amount', { _atomics: { orderCount: { decrement: true } } }, 400, 'BAD_REQUEST'],
    ['a null amount', { _atomics: { orderCount: { increment: null } } }, 400, 'BAD_REQUEST'],
    ['an array amount', { _atomics: { orderCount: { increment: [1] } } }, 400, 'BAD_REQUEST'],
    ['an unknown field', { _atomics: { nope: { increment: 1 } } }, 400, 'BAD_REQUEST', '_atomics.nope'],
    ['a field both set and in _atomics', { orderCount: 1, _atomics: { orderCount: { increment: 1 } } }, 400, 'BAD_REQUEST'],
    ['_atomics on id', { _atomics: { id: { increment: 1 } } }, 400, 'BAD_REQUEST'],
    ['_atomics on a string field', { _atomics: { name: { increment: 1 } } }, 422, 'VALIDATION', '_atomics.name'],
    ['a fractional amount on an integer field', { _atomics: { orderCount: { increment: 1.5 } } }, [400, 422], ['BAD_REQUEST', 'VALIDATION']],
    ['a later operation of a list is bad', { _atomics: { orderCount: [{ increment: 1 }, { increment: 'x' }] } }, 400, 'BAD_REQUEST'],
  ];
  for (const [name, body, status, code, p] of cases) {
    test(`${name}: ${Array.isArray(status) ? status.join('/') : status}`, async () => {
      const c = await create('customer', { name: `bad-${name}`, orderCount: 4 });
      const r = await patch('customer', c.id, body);
      if (Array.isArray(status)) {
        assert.ok(status.includes(r.status), `status ${r.status} ${r.text}`);
        expectError(r, r.status, code, p);
      } else {
        expectError(r, status, code, p);
      }
      assert.deepEqual(await get('customer', c.id), c);
    });
  }

  test('_atomics on a boolean field: 422 VALIDATION', async () => {
    const m = await create('meter', { on: true });
    expectError(await patch('meter', m.id, atomics({ on: { increment: 1 } })), 422, 'VALIDATION', '_atomics.on');
    expectError(await patch('meter', m.id, atomics({ label: { decrement: 1 } })), 422, 'VALIDATION', '_atomics.label');
    assert.deepEqual(await get('meter', m.id), m);
  });

  test('_atomics on a field that is unset (null): an error with nothing changed, or the amount itself; never a silent null', async () => {
    const c = await create('customer', { name: 'null-count', orderCount: null });
    assert.equal(c.orderCount, null);
    const r = await patch('customer', c.id, atomics({ orderCount: { increment: 3 } }));
    if (r.status === 200) {
      assert.equal(r.body.orderCount, 3, `an increment of an unset field answered ${r.text}`);
      assert.equal((await get('customer', c.id)).orderCount, 3);
    } else {
      expectError(r, 422, 'VALIDATION');
      assert.deepEqual(await get('customer', c.id), c);
    }
  });

  test('_atomics on a missing record: 404 NOT_FOUND, nothing created', async () => {
    const r = await patch('customer', 987654321, atomics({ orderCount: { increment: 1 } }));
    expectError(r, 404, 'NOT_FOUND');
    expectError(await api('GET', '/api/customer/987654321'), 404, 'NOT_FOUND');
  });

  test('_atomics on an unknown model: 404 NOT_FOUND', async () => {
    expectError(await patch('nosuchmodel', 1, atomics({ x: { increment: 1 } })), 404, 'NOT_FOUND');
  });
});
