// GET /api/openapi.json (README "API description"): the OpenAPI 3.1 document
// generated from the schema, validated with swagger-parser, checked for what a
// user relies on (paths per model, record/create/update schemas, _atomics,
// error codes, limits), and a real answer of the server validated against the
// record schema it gives (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv2020 from 'ajv/dist/2020.js';
import { startServer, stopAll, writeSchema, shopSchema, ROOT, expectStatus } from './lib/server.mjs';
import { createKey, withToken, within } from './lib/auth.mjs';

after(stopAll);

/** The error codes of the README's error table. */
function readmeErrorCodes() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### Errors');
  const table = readme.slice(start, readme.indexOf('\n## ', start));
  const codes = new Set();
  for (const line of table.split('\n')) {
    if (!/^\| \d{3} \|/.test(line)) continue;
    const cell = line.split('|')[2];
    for (const m of cell.matchAll(/`([A-Z_]+)`/g)) codes.add(m[1]);
  }
  return [...codes];
}

async function fetchDoc(srv, api = srv.api) {
  const r = await api('GET', '/api/openapi.json');
  expectStatus(r, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r;
}

/** A validator of the document's component schemas: check(name, value) -> errors or null. */
function schemaChecker(doc) {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ $id: 'tally-openapi', components: doc.components });
  return (name, value) => {
    const validate = ajv.compile({ $ref: `tally-openapi#/components/schemas/${name}` });
    return validate(value) ? null : validate.errors;
  };
}

const types = (s) => (Array.isArray(s.type) ? s.type : [s.type]);

/** What every model must have: its paths and a record schema of exactly its stored fields. */
function checkModel(doc, name, model) {
  for (const [p, methods] of [
    [`/api/${name}`, ['get', 'post']],
    [`/api/${name}/{id}`, ['get', 'patch', 'delete']],
    [`/api/${name}/find`, ['post']],
    [`/api/${name}/updateMany`, ['post']],
    [`/api/${name}/deleteMany`, ['post']],
    [`/api/${name}/upsert`, ['post']],
  ]) {
    assert.ok(doc.paths[p], `path ${p}`);
    for (const m of methods) assert.ok(doc.paths[p][m], `${m.toUpperCase()} ${p}`);
  }
  const list = doc.paths[`/api/${name}`].get;
  assert.deepEqual(list.parameters.map((q) => q.name).sort(), ['after', 'filter', 'first', 'sort']);
  assert.ok(doc.paths[`/api/${name}`].post.responses['201'], 'create answers 201');
  assert.ok(doc.paths[`/api/${name}/{id}`].patch.responses['409'], 'an update can fail its guard');
  const fields = Object.entries(model.fields);
  const stored = fields.filter(([, f]) => f.type !== 'hasMany').map(([n]) => n);
  const record = doc.components.schemas[`${name}.record`];
  assert.deepEqual(Object.keys(record.properties).sort(), ['createdAt', 'id', 'updatedAt', ...stored].sort(),
    `${name}.record has exactly the stored fields and id/createdAt/updatedAt`);
  assert.equal(record.additionalProperties, false);
  assert.deepEqual(types(record.properties.id), ['integer']);
  assert.equal(record.properties.createdAt.format, 'date-time');
  const create = doc.components.schemas[`${name}.create`];
  const mustGive = fields.filter(([, f]) => f.required && f.default === undefined).map(([n]) => n);
  assert.deepEqual((create.required || []).slice().sort(), mustGive.sort(), `${name}.create requires its required fields`);
  for (const [n, f] of fields) {
    assert.ok(create.properties[n], `${name}.create has ${n}`);
    if (f.type === 'hasMany') continue;
    const p = record.properties[n];
    const expect = { integer: 'integer', float: 'number', boolean: 'boolean', string: 'string', datetime: 'string',
      belongsTo: 'integer' }[f.type];
    if (f.type === 'json') assert.equal(p.type, undefined, `${name}.${n}: any JSON value`);
    else assert.deepEqual(types(p), f.required ? [expect] : [expect, 'null'], `${name}.${n}: ${JSON.stringify(p)}`);
    if (f.min !== undefined) assert.equal(p.minimum, f.min, `${name}.${n} minimum`);
    if (f.max !== undefined) assert.equal(p.maximum, f.max, `${name}.${n} maximum`);
    if (f.maxLength !== undefined) assert.equal(p.maxLength, f.maxLength, `${name}.${n} maxLength`);
    if (f.type === 'datetime') assert.equal(p.format, 'date-time');
  }
  const update = doc.components.schemas[`${name}.update`];
  assert.equal(update.required, undefined, `${name}.update: every field optional`);
  assert.ok(update.properties._where, `${name}.update has _where`);
  const numeric = fields.filter(([, f]) => f.type === 'integer' || f.type === 'float').map(([n]) => n);
  if (numeric.length) {
    assert.ok(update.properties._atomics, `${name}.update has _atomics`);
    const atomics = doc.components.schemas[`${name}.atomics`];
    assert.deepEqual(Object.keys(atomics.properties).sort(), numeric.sort(), `${name}: _atomics only for numeric fields`);
  } else {
    assert.equal(update.properties._atomics, undefined, `${name} has no numeric field, so no _atomics`);
  }
}

function checkCommon(doc) {
  assert.equal(doc.openapi, '3.1.0');
  const codes = doc.components.schemas.ErrorCode.enum;
  for (const c of readmeErrorCodes()) assert.ok(codes.includes(c), `error code ${c} in the enum`);
  assert.ok(readmeErrorCodes().length >= 20, 'the README table was read');
  const err = doc.components.schemas.Error;
  assert.deepEqual(err.required, ['error']);
  assert.deepEqual(err.properties.error.required, ['code', 'message']);
  assert.ok(err.properties.error.properties.path);
  assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  assert.ok(doc.paths['/api/transaction'].post);
  for (const op of ['acquire', 'renew', 'release']) assert.ok(doc.paths[`/api/locks/{name}/${op}`].post, op);
  assert.ok(doc.paths['/api/locks'].get);
  assert.ok(doc.paths['/api/keys'].get && doc.paths['/api/keys'].post && doc.paths['/api/keys/{name}'].delete);
  assert.deepEqual(doc.paths['/health'].get.security, [], '/health needs no token');
  assert.ok(doc.paths['/metrics'].get);
  assert.ok(doc.paths['/api/ws'].get.responses['101'], 'the WebSocket upgrade answers 101');
  const idem = (op) => (op.parameters || []).some((p) => p.$ref === '#/components/parameters/IdempotencyKey');
  assert.ok(idem(doc.paths['/api/transaction'].post), 'Idempotency-Key on writes');
  assert.ok(!idem(doc.paths['/api/locks'].get), 'not on reads');
  const filter = doc.components.schemas.IntegerCondition.properties;
  assert.deepEqual(Object.keys(filter).sort(), ['equals', 'greaterThan', 'greaterThanOrEqual', 'in', 'isSet', 'lessThan',
    'lessThanOrEqual', 'notEquals', 'notIn'].sort());
  // every error answer of every call is the error body, and names its codes
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(item)) {
      if (m === 'parameters') continue;
      for (const [status, r] of Object.entries(op.responses)) {
        if (Number(status) < 400 || p === '/health') continue;
        assert.equal(r.content['application/json'].schema.$ref, '#/components/schemas/Error', `${m} ${p} ${status}`);
        assert.match(r.description, /^[A-Z_]+: /, `${m} ${p} ${status} names its codes`);
      }
    }
  }
}

describe('openapi: the shop schema', () => {
  let srv;
  let doc;
  let text;
  before(async () => {
    srv = await startServer();
    const r = await fetchDoc(srv);
    doc = r.body;
    text = r.text;
  });

  test('is valid OpenAPI 3.1 (swagger-parser) and the same bytes each time', async () => {
    await SwaggerParser.validate(structuredClone(doc));
    const again = await fetchDoc(srv);
    assert.equal(again.text, text);
  });

  test('covers every model, call and error code', () => {
    checkCommon(doc);
    const schema = shopSchema();
    for (const [name, model] of Object.entries(schema.models)) checkModel(doc, name, model);
    assert.deepEqual(Object.keys(doc.paths).filter((p) => p.startsWith('/api/limits/')), ['/api/limits/login/{key}'],
      'the one limit examples/shop.json declares');
    const link = doc.components.schemas['ticket.create'].properties.event.anyOf;
    assert.equal(link.length, 3, 'belongsTo as id, {"_link": id} or {"create": …}');
  });

  test('real answers validate against the schemas the document gives', async () => {
    const check = schemaChecker(doc);
    const c = await srv.api('POST', '/api/customer', { name: 'Ada' });
    expectStatus(c, 201);
    assert.equal(check('customer.record', c.body), null, JSON.stringify(check('customer.record', c.body)));
    const t = await srv.api('POST', '/api/ticket', { event: { create: { availableTicketCount: 3 } } });
    expectStatus(t, 201);
    assert.equal(check('ticket.record', t.body), null);
    const list = await srv.api('GET', '/api/customer?first=10');
    assert.equal(check('customer.list', list.body), null);
    const bad = await srv.api('PATCH', `/api/customer/${c.body.id}`, { _where: { name: { equals: 'Bob' } }, name: 'C' });
    assert.equal(bad.status, 409);
    assert.equal(check('Error', bad.body), null);
    // the validator is real: these do not fit
    assert.notEqual(check('customer.record', { ...c.body, extra: 1 }), null, 'an unknown field');
    assert.notEqual(check('customer.record', { ...c.body, orderCount: 'x' }), null, 'a wrong type');
    assert.notEqual(check('customer.create', {}), null, 'name is required');
    assert.equal(check('customer.update', { _atomics: { orderCount: { increment: 1 } } }), null);
    assert.notEqual(check('customer.update', { _atomics: { name: { increment: 1 } } }), null, 'not numeric');
    assert.equal(check('product.filter', { OR: [{ stock: { greaterThan: 0 } }, { NOT: { sku: { isSet: true } } }] }), null);
    assert.notEqual(check('product.filter', { stock: { above: 0 } }), null, 'an unknown operator');
  });
});

describe('openapi: every field type and a limit', () => {
  const schemaObj = {
    models: {
      thing: {
        fields: {
          count: { type: 'integer', min: -5, max: 100, default: 0 },
          ratio: { type: 'float', min: 0, max: 1.5 },
          flag: { type: 'boolean', default: false },
          label: { type: 'string', required: true, maxLength: 40 },
          when: { type: 'datetime' },
          meta: { type: 'json' },
          owner: { type: 'belongsTo', model: 'owner', onDelete: 'setNull' },
        },
      },
      owner: {
        fields: {
          name: { type: 'string', required: true, unique: true },
          things: { type: 'hasMany', model: 'thing', inverse: 'owner' },
        },
      },
    },
    limits: { login: { rate: 10, periodMs: 60000, burst: 5 } },
  };
  let srv;
  let doc;
  before(async () => {
    srv = await startServer({ schema: writeSchema(schemaObj) });
    doc = (await fetchDoc(srv)).body;
  });

  test('is valid OpenAPI 3.1 and gives each type its JSON type', async () => {
    await SwaggerParser.validate(structuredClone(doc));
    checkCommon(doc);
    for (const [name, model] of Object.entries(schemaObj.models)) checkModel(doc, name, model);
    const thing = doc.components.schemas['thing.record'].properties;
    assert.equal(thing.ratio.maximum, 1.5);
    assert.equal(doc.components.schemas['thing.create'].properties.count.default, 0);
    assert.deepEqual(Object.keys(doc.components.schemas['thing.atomics'].properties).sort(), ['count', 'ratio']);
    assert.equal(doc.components.schemas['owner.update'].properties._atomics, undefined);
  });

  test('a declared limit has its path', () => {
    const op = doc.paths['/api/limits/login/{key}'].post;
    assert.ok(op, 'POST /api/limits/login/{key}');
    assert.deepEqual(op['x-tally-limit'], { rate: 10, periodMs: 60000, burst: 5 });
    assert.ok(op.responses['429'].description.includes('RATE_LIMITED'));
    assert.equal(op.requestBody.content['application/json'].schema.properties.cost.maximum, 5);
  });

  test('a created record with every field validates against its record schema', async () => {
    const check = schemaChecker(doc);
    const o = await srv.api('POST', '/api/owner', { name: 'ann', things: [{ create: { label: 'nested' } }] });
    expectStatus(o, 201);
    assert.equal(check('owner.record', o.body), null);
    const t = await srv.api('POST', '/api/thing', {
      count: 7, ratio: 0.5, flag: true, label: 'x', when: '2026-01-02T03:04:05Z', meta: { a: [1, 2] }, owner: o.body.id,
    });
    expectStatus(t, 201);
    assert.equal(check('thing.record', t.body), null, JSON.stringify(check('thing.record', t.body)));
    const empty = await srv.api('POST', '/api/thing', { label: 'y' });
    assert.equal(check('thing.record', empty.body), null, 'unset fields are null');
    assert.notEqual(check('thing.record', { ...t.body, count: 101 }), null, 'over max');
    assert.notEqual(check('thing.record', { ...t.body, label: 'z'.repeat(41) }), null, 'over maxLength');
    const nested = doc.components.schemas['owner.create'].properties.things.items.anyOf[0].properties.create;
    assert.equal(nested.properties.owner, undefined, 'a record created in a hasMany list is linked by the server');
    assert.deepEqual(nested.required, ['label']);
    const r = await srv.api('POST', '/api/limits/login/ann');
    assert.equal(check('LimitAnswer', r.body), null);
  });
});

describe('openapi: with keys on', () => {
  test('needs a valid key, and no scope', async () => {
    const srv = await startServer();
    const token = await createKey(srv, 'limits-only', ['limits']);
    await within(2000, 'keys on', async () => (await srv.api('GET', '/api/openapi.json')).status === 401);
    const r = await fetchDoc(srv, withToken(srv, token));
    assert.equal(r.body.openapi, '3.1.0');
    const wrong = await withToken(srv, 'tly_' + 'A'.repeat(43))('GET', '/api/openapi.json');
    assert.equal(wrong.status, 401);
    assert.equal((await srv.api('GET', '/health')).status, 200, '/health stays open');
  });
});
