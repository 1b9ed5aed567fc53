// The filter language, sorting and keyset paging (README.md, "Filters, sorting and paging"): every
// operator alone and combined on every field type, unset values, field-to-field
// comparisons, bad filters with the path of the mistake, and paging that stays
// correct while other clients insert and delete rows.
//
// Most checks compare the server's answer with lib/filtermodel.mjs, a small
// reference model of the documented rules, on data this suite wrote itself;
// a few hand-worked cases pin the rules down independently of that model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, writeSchema, expectError, expectStatus, parallel, sleep } from './lib/server.mjs';
import { createMany, clients } from './lib/load.mjs';
import {
  rng, pick, fieldTypes, matches, expectedIds, sortComparator, findAll, findPage, listQuery,
} from './lib/filtermodel.mjs';

const SCHEMA = {
  models: {
    owner: { fields: { name: { type: 'string' } } },
    item: {
      fields: {
        n: { type: 'integer' },
        m: { type: 'integer' },
        f: { type: 'float' },
        g: { type: 'float' },
        flag: { type: 'boolean' },
        flag2: { type: 'boolean' },
        s: { type: 'string' },
        t: { type: 'string' },
        at: { type: 'datetime' },
        until: { type: 'datetime' },
        meta: { type: 'json' },
        owner: { type: 'belongsTo', model: 'owner', onDelete: 'setNull' },
      },
    },
    tiny: {
      fields: {
        name: { type: 'string', required: true },
        x: { type: 'integer' },
        s: { type: 'string' },
        d: { type: 'datetime' },
        o: { type: 'belongsTo', model: 'owner', onDelete: 'setNull' },
        j: { type: 'json' },
      },
    },
    pageA: { fields: { grp: { type: 'integer' }, tag: { type: 'string' } } },
    pageB: { fields: { grp: { type: 'integer' }, tag: { type: 'string' } } },
    pageC: { fields: { grp: { type: 'integer' }, tag: { type: 'string' } } },
  },
};
const T = fieldTypes(SCHEMA.models.item);

let srv;
let api;
let owners;      // owner records
let items;       // item records as the server answered them
before(async () => {
  srv = await startServer({ schema: writeSchema(SCHEMA) });
  api = srv.api;
  owners = [];
  for (const name of ['o1', 'o2', 'o3']) {
    const r = await api('POST', '/api/owner', { name });
    expectStatus(r, 201);
    owners.push(r.body);
  }
  items = await createMany(srv, 'item', makeItems(owners.map((o) => o.id)), 10);
});
after(stopAll);

// ---------- the data ----------

const MAXSAFE = Number.MAX_SAFE_INTEGER;
const POOLS = {
  n: [-MAXSAFE, -5, 0, 1, 3, 3, 7, 7, 100, MAXSAFE],
  f: [-1.5, 0, 0.1, 2.5, 2.5, 3, 1e10],
  flag: [true, false],
  s: ['', 'A', 'B', 'Z', 'a', 'a b', 'ab', 'abc', 'b', 'ä', 'é', '日本'],
  at: ['1969-12-31T23:59:59.999Z', '2020-01-01T00:00:00Z', '2024-02-29T12:00:00.123Z',
    '2024-02-29T14:00:00.123+02:00', '2024-02-29T12:00:00.124Z', '2038-01-19T03:14:08Z'],
  meta: [{ a: 1 }, [1, 2], 'str', 0, false, ''],
};
// operands that are not stored values (between, below, above the data)
const EXTRA = {
  n: [-MAXSAFE + 1, -6, 2, 50, 1e15],
  f: [-2, 1, 2.4999, 1e11],
  flag: [],
  s: ['aa', 'abd', 'zzz', 'ÿ', 'Ab', 'a'.repeat(3)],
  at: ['2000-06-15T08:30:00+05:30', '2024-02-29T07:00:00.123-05:00', '2024-02-29T12:00:00.122Z',
    '2100-01-01T00:00:00Z'],
};
const POOL_OF = { n: 'n', m: 'n', f: 'f', g: 'f', flag: 'flag', flag2: 'flag', s: 's', t: 's', at: 'at', until: 'at', meta: 'meta' };

function makeItems(ownerIds) {
  const r = rng(4242);
  const maybe = (v) => (r() < 0.2 ? null : v);
  const out = [];
  for (let i = 0; i < 150; i++) {
    const it = {};
    for (const [field, pool] of Object.entries(POOL_OF)) {
      const v = maybe(pick(r, POOLS[pool]));
      // unset fields are sometimes omitted, sometimes sent as null
      if (v !== null || r() < 0.5) it[field] = v;
    }
    const o = maybe(pick(r, ownerIds));
    if (o !== null || r() < 0.5) it.owner = o;
    out.push(it);
  }
  return out;
}

/** Operands to try for a field: stored values plus values in between and outside. */
function operandsFor(field) {
  if (field === 'owner') return [...owners.map((o) => o.id), 999999];
  if (field === 'id') {
    const ids = items.map((x) => x.id).sort((a, b) => a - b);
    return [ids[0], ids[5], ids[Math.floor(ids.length / 2)], ids[ids.length - 1], 0, ids[ids.length - 1] + 1000];
  }
  if (field === 'createdAt' || field === 'updatedAt') {
    const ts = items.map((x) => x[field]).sort();
    return [ts[0], ts[Math.floor(ts.length / 3)], ts[Math.floor(ts.length / 2)], ts[ts.length - 1],
      '2000-01-01T00:00:00Z', '2999-01-01T00:00:00Z'];
  }
  const p = POOL_OF[field];
  return [...new Set([...POOLS[p], ...(EXTRA[p] || [])].map((v) => JSON.stringify(v)))].map((v) => JSON.parse(v));
}

async function idsOf(filter, sort, via = 'get') {
  const { records } = await findAll(api, 'item', { filter, sort, via });
  return records.map((x) => x.id);
}

/** Run filters against the server and the model; fail listing every mismatch. */
async function checkAgainstModel(filters, { sort, via } = {}) {
  const mismatches = [];
  const CONC = 8;
  let k = 0;
  await parallel(CONC, async () => {
    for (;;) {
      const i = k++;
      if (i >= filters.length) return;
      const f = filters[i];
      const how = via || (i % 2 ? 'post' : 'get');
      const got = await idsOf(f, sort, how);
      const want = expectedIds(T, items, f, sort);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        const gs = new Set(got);
        const ws = new Set(want);
        mismatches.push(`${how} filter=${JSON.stringify(f)}${sort ? ` sort=${JSON.stringify(sort)}` : ''}: `
          + `extra ids ${JSON.stringify(got.filter((x) => !ws.has(x)).slice(0, 10))}, `
          + `missing ids ${JSON.stringify(want.filter((x) => !gs.has(x)).slice(0, 10))}`
          + (got.length === want.length ? ' (same set, different order?)' : ''));
      }
    }
  });
  assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${filters.length} filters disagree with the documented rules`);
}

// ---------- sanity of the data itself ----------

test('the data covers every type, with unset values, and datetimes come back in UTC', () => {
  assert.equal(items.length, 150);
  for (const field of [...Object.keys(POOL_OF), 'owner']) {
    assert.ok(items.some((x) => x[field] === null), `some ${field} unset`);
    assert.ok(items.filter((x) => x[field] !== null).length > 20, `many ${field} set`);
  }
  // a datetime written with an offset comes back as the same instant in UTC
  for (const x of items) {
    if (x.at !== null) assert.match(x.at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  }
  assert.ok(items.some((x) => x.at === '2024-02-29T12:00:00.123Z'));
  // json values that are falsy in JavaScript are still set values
  assert.ok(items.some((x) => x.meta === 0) && items.some((x) => x.meta === false) && items.some((x) => x.meta === ''));
});

// ---------- hand-worked cases ----------

test('hand-worked: every operator on an integer and a string with an unset row, NOT, AND, OR, bytewise strings', async () => {
  const mk = async (data) => { const r = await api('POST', '/api/tiny', data); expectStatus(r, 201); return r.body; };
  const A = await mk({ name: 'A', x: 5, s: 'a' });
  const B = await mk({ name: 'B' });
  const C = await mk({ name: 'C', x: 7, s: 'B' });
  const D = await mk({ name: 'D', x: 5, s: 'é' });
  const byName = { A, B, C, D };
  const cases = [
    [{}, 'ABCD'],
    [{ x: { equals: 5 } }, 'AD'],
    [{ x: { notEquals: 5 } }, 'C'],
    [{ NOT: { x: { equals: 5 } } }, 'BC'],
    [{ NOT: { x: { notEquals: 5 } } }, 'ABD'],
    [{ x: { equals: null } }, 'B'],
    [{ x: { notEquals: null } }, 'ACD'],
    [{ NOT: { x: { equals: null } } }, 'ACD'],
    [{ x: { isSet: false } }, 'B'],
    [{ x: { isSet: true } }, 'ACD'],
    [{ x: { lessThan: 6 } }, 'AD'],
    [{ NOT: { x: { lessThan: 6 } } }, 'BC'],
    [{ x: { lessThanOrEqual: 7 } }, 'ACD'],
    [{ x: { greaterThan: 5 } }, 'C'],
    [{ x: { greaterThanOrEqual: 5 } }, 'ACD'],
    [{ x: { in: [7, 9] } }, 'C'],
    [{ x: { notIn: [7] } }, 'AD'],
    [{ NOT: { x: { notIn: [7] } } }, 'BC'],
    [{ NOT: { x: { in: [5] } } }, 'BC'],
    [{ x: { greaterThan: 4, lessThan: 6 } }, 'AD'],
    [{ x: { equals: 5 }, s: { equals: 'a' } }, 'A'],
    [{ OR: [{ x: { equals: 7 } }, { s: { equals: 'a' } }] }, 'AC'],
    [{ OR: [{ x: { equals: 7 } }, { x: { isSet: false } }] }, 'BC'],
    [{ AND: [{ x: { isSet: true } }, { NOT: { s: { lessThan: 'a' } } }] }, 'AD'],
    [{ NOT: { OR: [{ x: { equals: 7 } }, { s: { equals: 'é' } }] } }, 'AB'],
    [{ NOT: { NOT: { x: { equals: 5 } } } }, 'AD'],
    [{ s: { lessThan: 'a' } }, 'C'],            // 'B' (0x42) < 'a' (0x61)
    [{ s: { greaterThan: 'z' } }, 'D'],         // 'é' (0xC3 0xA9) > 'z'
    [{ s: { greaterThanOrEqual: 'a', lessThan: 'b' } }, 'A'],
    [{ x: { equals: { field: 'x' } } }, 'ACD'],
    [{ x: { lessThan: { field: 'x' } } }, ''],
    [{ NOT: { x: { equals: { field: 'x' } } } }, 'B'],
    [{ name: { in: ['A', 'D', 'nobody'] } }, 'AD'],
  ];
  const wrong = [];
  for (const [filter, want] of cases) {
    for (const via of ['get', 'post']) {
      const { records } = await findAll(api, 'tiny', { filter, via });
      const got = records.map((r) => r.name).sort().join('');
      if (got !== want) wrong.push(`${via} ${JSON.stringify(filter)}: got "${got}", want "${want}"`);
    }
  }
  assert.deepEqual(wrong, []);

  // sorting: NULLs first ascending, last descending; id breaks ties ascending
  const order = async (sort) => (await findAll(api, 'tiny', { sort })).records.map((r) => r.name).join('');
  assert.equal(await order({ s: 'ascending' }), 'BCAD');
  assert.equal(await order({ s: 'descending' }), 'DACB');
  assert.equal(await order({ x: 'ascending' }), 'BADC');
  assert.equal(await order({ x: 'descending' }), 'CADB');
  assert.equal(await order([{ x: 'descending' }, { s: 'descending' }]), 'CDAB');
  assert.equal(await order({ id: 'descending' }), 'DCBA');
  assert.ok(byName.A.id < byName.D.id);
});

test('hand-worked: datetimes compare by instant whatever the offset; belongsTo by id, unset after its target is deleted; json only isSet/null', async () => {
  const o = await api('POST', '/api/owner', { name: 'doomed' });
  expectStatus(o, 201);
  const mk = async (data) => { const r = await api('POST', '/api/tiny', data); expectStatus(r, 201); return r.body; };
  const E = await mk({ name: 'E', d: '2024-02-29T14:00:00.123+02:00', o: o.body.id, j: { k: [1] } });
  const F = await mk({ name: 'F', d: '2024-02-29T12:00:00.124Z', o: owners[0].id, j: 0 });
  const G = await mk({ name: 'G', j: null });
  assert.equal(E.d, '2024-02-29T12:00:00.123Z');
  const names = async (filter) => (await findAll(api, 'tiny', { filter })).records.map((r) => r.name).sort().join('');
  const only = { name: { in: ['E', 'F', 'G'] } };
  assert.equal(await names({ ...only, d: { equals: '2024-02-29T12:00:00.123Z' } }), 'E');
  assert.equal(await names({ ...only, d: { equals: '2024-02-29T07:00:00.123-05:00' } }), 'E');
  assert.equal(await names({ ...only, d: { lessThan: '2024-02-29T14:00:00.124+02:00' } }), 'E');
  assert.equal(await names({ ...only, d: { greaterThan: '2024-02-29T12:00:00.123Z' } }), 'F');
  assert.equal(await names({ ...only, d: { in: ['2024-02-29T13:00:00.124+01:00'] } }), 'F');
  assert.equal(await names({ ...only, NOT: { d: { greaterThan: '2024-02-29T12:00:00.123Z' } } }), 'EG');
  assert.equal(await names({ ...only, o: { equals: o.body.id } }), 'E');
  assert.equal(await names({ ...only, o: { in: [o.body.id, owners[0].id] } }), 'EF');
  assert.equal(await names({ ...only, o: { isSet: false } }), 'G');
  assert.equal(await names({ ...only, j: { isSet: true } }), 'EF');
  assert.equal(await names({ ...only, j: { equals: null } }), 'G');
  assert.equal(await names({ ...only, j: { notEquals: null } }), 'EF');
  // the linked owner goes away (onDelete setNull): E's link is now unset
  const del = await api('DELETE', `/api/owner/${o.body.id}`);
  expectStatus(del, 200);
  assert.equal(await names({ ...only, o: { equals: o.body.id } }), '');
  assert.equal(await names({ ...only, o: { isSet: false } }), 'EG');
  assert.equal(await names({ ...only, NOT: { o: { equals: owners[0].id } } }), 'EG');
  assert.ok(G.id > F.id && F.id > E.id);
});

// ---------- every operator alone, every field type, against the model ----------

const SCALAR_FIELDS = ['n', 'm', 'f', 'g', 'flag', 'flag2', 's', 't', 'at', 'until', 'owner', 'id', 'createdAt', 'updatedAt'];
const COMPARE_OPS = ['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'];

function inLists(field, r) {
  const ops = operandsFor(field);
  const lists = [[], [ops[0]], [ops[1], ops[ops.length - 1]]];
  for (let i = 0; i < 2; i++) lists.push(ops.filter(() => r() < 0.4));
  return lists;
}

test('every operator alone on every field type (and id, createdAt, updatedAt) matches the documented rules', async () => {
  const r = rng(1);
  const filters = [];
  for (const field of SCALAR_FIELDS) {
    const ops = operandsFor(field);
    for (const v of [...ops, null]) {
      filters.push({ [field]: { equals: v } }, { [field]: { notEquals: v } });
    }
    for (const op of COMPARE_OPS) for (const v of ops) filters.push({ [field]: { [op]: v } });
    for (const list of inLists(field, r)) filters.push({ [field]: { in: list } }, { [field]: { notIn: list } });
    filters.push({ [field]: { isSet: true } }, { [field]: { isSet: false } });
  }
  filters.push({ meta: { isSet: true } }, { meta: { isSet: false } }, { meta: { equals: null } }, { meta: { notEquals: null } });
  await checkAgainstModel(filters);
});

test('NOT of every operator on every field type: unset rows match the negation (two-valued logic)', async () => {
  const r = rng(2);
  const filters = [];
  for (const field of SCALAR_FIELDS) {
    const ops = operandsFor(field);
    const some = [ops[0], ops[Math.floor(ops.length / 2)], ops[ops.length - 1]];
    for (const v of [...some, null]) filters.push({ NOT: { [field]: { equals: v } } }, { NOT: { [field]: { notEquals: v } } });
    for (const op of COMPARE_OPS) for (const v of some) filters.push({ NOT: { [field]: { [op]: v } } });
    for (const list of inLists(field, r)) filters.push({ NOT: { [field]: { in: list } } }, { NOT: { [field]: { notIn: list } } });
    filters.push({ NOT: { [field]: { isSet: true } } });
  }
  filters.push({ NOT: { meta: { isSet: true } } }, { NOT: { meta: { equals: null } } });
  await checkAgainstModel(filters);
  // and, independent of the model: NOT(x equals v) holds exactly on the rows where x equals v does not
  const all = items.map((x) => x.id).sort((a, b) => a - b);
  for (const field of ['n', 's', 'at', 'owner', 'flag']) {
    const v = operandsFor(field)[1];
    const yes = await idsOf({ [field]: { equals: v } });
    const no = await idsOf({ NOT: { [field]: { equals: v } } });
    assert.deepEqual([...yes, ...no].sort((a, b) => a - b), all, `equals and NOT equals on ${field} split the rows`);
    assert.ok(no.some((id) => items.find((x) => x.id === id)[field] === null), `NOT equals on ${field} includes unset rows`);
    const ne = await idsOf({ [field]: { notEquals: v } });
    assert.ok(!ne.some((id) => items.find((x) => x.id === id)[field] === null), `notEquals on ${field} excludes unset rows`);
  }
});

const PAIRS = [
  ['n', 'm'], ['m', 'n'], ['n', 'n'], ['f', 'g'], ['n', 'f'], ['f', 'n'], ['g', 'g'], ['s', 't'], ['t', 's'], ['s', 's'],
  ['at', 'until'], ['until', 'at'], ['flag', 'flag2'], ['owner', 'owner'], ['createdAt', 'updatedAt'],
  ['at', 'createdAt'], ['id', 'n'], ['n', 'id'],
];

test('field-to-field comparisons: every comparison operator, both orders, unset on either side, and NOT of each', async () => {
  const filters = [];
  for (const [a, b] of PAIRS) {
    for (const op of ['equals', 'notEquals', ...COMPARE_OPS]) {
      filters.push({ [a]: { [op]: { field: b } } }, { NOT: { [a]: { [op]: { field: b } } } });
    }
  }
  await checkAgainstModel(filters);
  // independent of the model: some rows really do have n == m, n < m and an unset side
  const eq = await idsOf({ n: { equals: { field: 'm' } } });
  const lt = await idsOf({ n: { lessThan: { field: 'm' } } });
  const gt = await idsOf({ n: { greaterThan: { field: 'm' } } });
  const unset = items.filter((x) => x.n === null || x.m === null).map((x) => x.id);
  assert.ok(eq.length > 0 && lt.length > 0 && gt.length > 0 && unset.length > 0, 'the data has every case');
  assert.equal(eq.length + lt.length + gt.length + unset.length, items.length, 'equal, less, greater and unset split the rows');
  for (const id of eq) { const x = items.find((y) => y.id === id); assert.equal(x.n, x.m); }
  for (const id of lt) { const x = items.find((y) => y.id === id); assert.ok(x.n < x.m); }
  // createdAt <= updatedAt always holds for rows never changed
  assert.equal((await idsOf({ createdAt: { lessThanOrEqual: { field: 'updatedAt' } } })).length, items.length);
  // field-to-field inside a range on the same field: m < n <= 7
  await checkAgainstModel([{ n: { greaterThan: { field: 'm' }, lessThanOrEqual: 7 } }]);
});

// ---------- combined ----------

function randomLeaf(r) {
  if (r() < 0.07) return { meta: pick(r, [{ isSet: true }, { isSet: false }, { equals: null }, { notEquals: null }]) };
  const field = pick(r, SCALAR_FIELDS);
  const ops = operandsFor(field);
  const kind = r();
  if (kind < 0.1) return { [field]: { isSet: r() < 0.5 } };
  if (kind < 0.25) return { [field]: { [pick(r, ['in', 'notIn'])]: ops.filter(() => r() < 0.35) } };
  if (kind < 0.35) {
    const pair = pick(r, PAIRS.filter(([a]) => a === field)) || pick(r, PAIRS);
    return { [pair[0]]: { [pick(r, ['equals', 'notEquals', ...COMPARE_OPS])]: { field: pair[1] } } };
  }
  if (kind < 0.45) {
    // two operators on one field: a range
    const lo = pick(r, ops);
    const hi = pick(r, ops);
    return { [field]: { [pick(r, ['greaterThan', 'greaterThanOrEqual'])]: lo, [pick(r, ['lessThan', 'lessThanOrEqual'])]: hi } };
  }
  const op = pick(r, ['equals', 'notEquals', ...COMPARE_OPS]);
  const v = (op === 'equals' || op === 'notEquals') && r() < 0.15 ? null : pick(r, ops);
  return { [field]: { [op]: v } };
}

function randomFilter(r, depth) {
  if (depth <= 0 || r() < 0.3) return randomLeaf(r);
  const k = r();
  if (k < 0.3) return { AND: Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomFilter(r, depth - 1)) };
  if (k < 0.6) return { OR: Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomFilter(r, depth - 1)) };
  if (k < 0.8) return { NOT: randomFilter(r, depth - 1) };
  // several keys in one object are ANDed: fields and combinators side by side
  const out = { ...randomLeaf(r) };
  const extra = randomFilter(r, depth - 1);
  for (const [key, v] of Object.entries(extra)) if (!(key in out)) out[key] = v;
  if (r() < 0.5 && !('OR' in out)) out.OR = [randomFilter(r, depth - 1), randomLeaf(r)];
  return out;
}

test('combined: 400 random AND/OR/NOT trees over all field types (several fields and operators per object) match the documented rules', async () => {
  const r = rng(99);
  const filters = Array.from({ length: 400 }, () => randomFilter(r, 4));
  // the trees must not be trivial: many match some rows but not all
  const nontrivial = filters.filter((f) => {
    const n = items.filter((x) => matches(T, f, x)).length;
    return n > 0 && n < items.length;
  });
  assert.ok(nontrivial.length > 150, `only ${nontrivial.length} non-trivial random filters`);
  await checkAgainstModel(filters);
});

test('a listing with a filter pages correctly in small pages, by GET and by POST /find alike', async () => {
  const filter = { OR: [{ n: { greaterThan: 0 } }, { s: { isSet: false } }, { NOT: { flag: { equals: true } } }] };
  const want = expectedIds(T, items, filter);
  for (const via of ['get', 'post']) {
    const { records, pages } = await findAll(api, 'item', { filter, first: 7, via });
    assert.deepEqual(records.map((x) => x.id), want, via);
    const full = Math.ceil(want.length / 7);
    assert.ok(pages === full || pages === full + 1, `${via}: ${pages} pages of 7 for ${want.length} rows`);
  }
  // default page size is 50 and answers carry whole records
  const r = await api('GET', `/api/item?${listQuery({ filter: {} })}`);
  expectStatus(r, 200);
  assert.equal(r.body.records.length, 50);
  assert.deepEqual(r.body.records[0], items.slice().sort((a, b) => a.id - b.id)[0]);
  assert.equal(typeof r.body.next, 'string');
});

// ---------- sorting ----------

test('sort on every sortable field, both directions, and on several keys, matches the rules, whole and in pages of 7', async () => {
  const sorts = [];
  for (const field of SCALAR_FIELDS) {
    sorts.push({ [field]: 'ascending' }, { [field]: 'descending' });
  }
  sorts.push([{ flag: 'ascending' }, { n: 'descending' }],
    [{ n: 'descending' }, { s: 'ascending' }],
    [{ owner: 'descending' }, { at: 'ascending' }, { f: 'descending' }],
    [{ flag2: 'descending' }, { flag: 'ascending' }, { id: 'descending' }]);
  const wrong = [];
  for (const [i, sort] of sorts.entries()) {
    const want = expectedIds(T, items, {}, sort);
    const whole = (await findAll(api, 'item', { sort, via: i % 2 ? 'post' : 'get' })).records.map((x) => x.id);
    if (JSON.stringify(whole) !== JSON.stringify(want)) wrong.push(`whole ${JSON.stringify(sort)}`);
    const paged = (await findAll(api, 'item', { sort, first: 7, via: i % 2 ? 'get' : 'post' })).records.map((x) => x.id);
    if (JSON.stringify(paged) !== JSON.stringify(want)) wrong.push(`pages of 7 ${JSON.stringify(sort)}`);
  }
  assert.deepEqual(wrong, []);
  // with a filter too
  await checkAgainstModel([{ n: { isSet: true } }, { OR: [{ n: { lessThan: 3 } }, { n: { isSet: false } }] }],
    { sort: [{ n: 'descending' }, { g: 'ascending' }] });
});

// ---------- bad filters and sorts ----------

const BAD_FILTERS = [
  [{ nope: { equals: 1 } }, 'filter.nope'],
  [{ n: { bigger: 1 } }, 'filter.n.bigger'],
  [{ n: { greaterThan: '5' } }, 'filter.n.greaterThan'],
  [{ n: { equals: true } }, 'filter.n.equals'],
  [{ f: { lessThan: 'x' } }, 'filter.f.lessThan'],
  [{ s: { equals: 5 } }, 'filter.s.equals'],
  [{ flag: { equals: 'true' } }, 'filter.flag.equals'],
  [{ at: { lessThan: 'yesterday' } }, 'filter.at.lessThan'],
  [{ at: { lessThan: 1700000000000 } }, 'filter.at.lessThan'],
  [{ at: { greaterThan: '2024-13-45T00:00:00Z' } }, 'filter.at.greaterThan'],
  [{ owner: { equals: 'o1' } }, 'filter.owner.equals'],
  [{ n: { in: 5 } }, 'filter.n.in'],
  [{ n: { notIn: { a: 1 } } }, 'filter.n.notIn'],
  [{ n: { in: [1, null] } }, /^filter\.n\.in/],
  [{ s: { notIn: [null] } }, /^filter\.s\.notIn/],
  [{ n: { in: [1, 'two'] } }, /^filter\.n\.in/],
  [{ n: { isSet: 1 } }, 'filter.n.isSet'],
  [{ n: { greaterThan: { field: 'nope' } } }, 'filter.n.greaterThan.field'],
  [{ n: { greaterThan: { field: 's' } } }, /^filter\.n\.greaterThan/],
  [{ meta: { equals: { a: 1 } } }, /^filter\.meta/],
  [{ meta: { greaterThan: 1 } }, /^filter\.meta/],
  [{ n: 5 }, 'filter.n'],
  [{ OR: { n: { equals: 1 } } }, 'filter.OR'],
  [{ AND: 5 }, 'filter.AND'],
  [{ NOT: [] }, 'filter.NOT'],
  [{ OR: [{ n: { equals: 1 } }, { nope: { equals: 1 } }] }, 'filter.OR[1].nope'],
  [{ AND: [{ NOT: { n: { bigger: 1 } } }] }, 'filter.AND[0].NOT.n.bigger'],
  [{ n: { equals: 1 }, OR: [{ s: { lessThan: 3 } }] }, 'filter.OR[0].s.lessThan'],
  [[], 'filter'],
  ['n', 'filter'],
];

function nested(levels) {
  // `levels` filter objects, one inside the other: NOT … NOT {n: {equals: 1}}
  let f = { n: { equals: 1 } };
  for (let i = 1; i < levels; i++) f = { NOT: f };
  return f;
}

test('bad filters are a 400 BAD_REQUEST whose path points at the mistake (GET and POST /find), and change nothing', async () => {
  const wrong = [];
  for (const [filter, p] of BAD_FILTERS) {
    for (const via of ['get', 'post']) {
      const r = await findPage(api, 'item', { filter, via });
      try { expectError(r, 400, 'BAD_REQUEST', p); } catch (e) { wrong.push(`${via} ${JSON.stringify(filter)}: ${e.message.split('\n')[0]}`); }
    }
  }
  assert.deepEqual(wrong, []);
  // not JSON at all
  const g = await api('GET', '/api/item?filter=%7Bnope');
  expectError(g, 400, 'BAD_REQUEST', 'filter');
  // a bad filter in updateMany and deleteMany points into "filter" too, and nothing changes
  const before = (await findAll(api, 'item')).records;
  const um = await api('POST', '/api/item/updateMany', { filter: { OR: [{ n: { equals: 1 } }, { n: { bigger: 1 } }] }, set: { n: 0 } });
  expectError(um, 400, 'BAD_REQUEST', 'filter.OR[1].n.bigger');
  const dm = await api('POST', '/api/item/deleteMany', { filter: { n: { lessThan: 'x' } } });
  expectError(dm, 400, 'BAD_REQUEST', 'filter.n.lessThan');
  assert.deepEqual((await findAll(api, 'item')).records, before);
});

test('filters nest at most 32 levels: 32 nested filter objects work, 33 and far deeper are a 400, and the server lives on', async () => {
  for (const levels of [2, 16, 32]) {
    const f = nested(levels);
    await checkAgainstModel([f]);
  }
  // AND lists count as levels too
  let deepAnd = { n: { equals: 1 } };
  for (let i = 1; i < 32; i++) deepAnd = { AND: [deepAnd] };
  await checkAgainstModel([deepAnd]);
  for (const levels of [33, 40, 1000]) {
    for (const via of ['get', 'post']) {
      const r = await findPage(api, 'item', { filter: nested(levels), via });
      expectError(r, 400, 'BAD_REQUEST', /^filter(\.NOT)+/);
    }
    let and = { n: { equals: 1 } };
    for (let i = 1; i < levels; i++) and = i % 2 ? { AND: [and] } : { OR: [{ s: { isSet: true } }, and] };
    const r = await findPage(api, 'item', { filter: and, via: 'post' });
    expectError(r, 400, 'BAD_REQUEST', /^filter\.(AND|OR)/);
  }
  // 100,000 levels (about 800 KB of JSON, under the 1 MiB body limit): refused, not a crash
  const huge = '{"NOT":'.repeat(100000) + '{"n":{"equals":1}}' + '}'.repeat(100000);
  const r = await api('POST', '/api/item/find', `{"filter":${huge}}`);
  assert.ok(r.status === 400 || r.status === 413, `a 100,000-level filter: ${r.status} ${r.text.slice(0, 200)}`);
  const h = await api('GET', '/api/item?first=1');
  expectStatus(h, 200);
  assert.equal(srv.proc.exitCode, null, 'the server is still running');
});

test('bad sorts and cursors are a 400 with a path; a cursor from another sort is refused', async () => {
  expectError(await findPage(api, 'item', { sort: { nope: 'ascending' } }), 400, 'BAD_REQUEST', /^sort/);
  expectError(await findPage(api, 'item', { sort: { n: 'up' } }), 400, 'BAD_REQUEST', /^sort/);
  expectError(await findPage(api, 'item', { sort: [{ n: 'ascending' }, { nope: 'descending' }], via: 'post' }), 400, 'BAD_REQUEST', /^sort/);
  expectError(await findPage(api, 'item', { sort: 'n' }), 400, 'BAD_REQUEST', /^sort/);
  const p = await findPage(api, 'item', { sort: { n: 'descending' }, first: 7 });
  expectStatus(p, 200);
  assert.equal(typeof p.body.next, 'string');
  // the same cursor with the same sort works, with another sort it does not
  expectStatus(await findPage(api, 'item', { sort: { n: 'descending' }, first: 7, after: p.body.next }), 200);
  for (const sort of [undefined, { n: 'ascending' }, { m: 'descending' }, [{ n: 'descending' }, { s: 'ascending' }]]) {
    for (const via of ['get', 'post']) {
      const r = await findPage(api, 'item', { sort, first: 7, after: p.body.next, via });
      expectError(r, 400, 'BAD_REQUEST', 'after');
    }
  }
  // a cursor of the default sort used with a sort
  const d = await findPage(api, 'item', { first: 7 });
  expectError(await findPage(api, 'item', { sort: { n: 'ascending' }, first: 7, after: d.body.next }), 400, 'BAD_REQUEST', 'after');
  expectError(await findPage(api, 'item', { first: 7, after: 'not-a-cursor' }), 400, 'BAD_REQUEST', 'after');
  // a tampered cursor (one character changed) is a 400 or still a valid page, never a 500
  const t = d.body.next.slice(0, -2) + (d.body.next.slice(-2, -1) === 'A' ? 'B' : 'A') + d.body.next.slice(-1);
  const tr = await findPage(api, 'item', { first: 7, after: t });
  assert.ok(tr.status === 200 || tr.status === 400, `tampered cursor: ${tr.status} ${tr.text}`);
});

// ---------- paging while others insert and delete ----------

/**
 * Page through `model` (first=7) while CHURN clients insert and delete rows,
 * one round of an insert and a delete each per page read. Checks: no row seen
 * twice; every row that existed throughout (created before, never deleted) is
 * seen; the rows come in strictly increasing sort order.
 */
async function pageUnderChurn(model, { sort, filter, via, seed }) {
  const r = rng(seed);
  const types = fieldTypes(SCHEMA.models[model]);
  const GRPS = [null, 0, 1, 2, 3, 4, 5];
  const TAGS = [null, 'a', 'b', 'c'];
  const rowsIn = Array.from({ length: 1000 }, (_, i) => ({ grp: i % 10 === 0 ? null : i % 6, tag: pick(r, TAGS) }));
  const initial = await createMany(srv, model, rowsIn, 20);
  const byId = new Map(initial.map((x) => [x.id, x]));
  const deleted = new Set();       // ids some client tried to delete
  const inserted = new Map();      // id -> record
  const initialIds = initial.map((x) => x.id);

  const CHURN = 6;
  const MAX_ROUNDS = 120;
  const conns = await clients(srv, CHURN);
  let pagesDone = 0;
  let done = false;
  const churnErrors = [];
  let churnOps = 0;
  const completed = new Array(CHURN).fill(0);   // rounds each churner has finished
  const churners = parallel(CHURN, async (k) => {
    const c = conns[k];
    for (let round = 0; round < MAX_ROUNDS && !done; round++, completed[k] = round) {
      while (!done && round >= pagesDone) await sleep(1);
      if (done) break;
      const ins = await c.request('POST', `/api/${model}`, { grp: pick(r, GRPS), tag: pick(r, TAGS) });
      if (ins.status !== 201) { churnErrors.push(`insert: ${ins.status} ${ins.text}`); continue; }
      inserted.set(ins.body.id, ins.body);
      byId.set(ins.body.id, ins.body);
      // delete mostly rows that existed before paging began, sometimes new ones
      let victim;
      if (r() < 0.75) victim = pick(r, initialIds);
      else victim = pick(r, [...inserted.keys()]);
      if (deleted.has(victim)) continue;
      deleted.add(victim);
      const del = await c.request('DELETE', `/api/${model}/${victim}`);
      if (del.status !== 200) churnErrors.push(`delete ${victim}: ${del.status} ${del.text}`);
      churnOps += 2;
    }
  });

  const seen = [];
  let after = null;
  let pages = 0;
  try {
    for (;;) {
      // keep the churn in step: while page p is read, round p-1 of inserts and
      // deletes is under way (the pager only waits for round p-2 to finish)
      while (pagesDone < MAX_ROUNDS && Math.min(...completed) < pagesDone - 1) await sleep(1);
      const p = await findPage(api, model, { filter, sort, first: 7, after, via });
      assert.equal(p.status, 200, `page ${pages}: ${p.status} ${p.text}`);
      assert.ok(p.body.records.length <= 7);
      seen.push(...p.body.records);
      pages++;
      pagesDone++;
      if (p.body.next === null) break;
      after = p.body.next;
      assert.ok(pages < 5000, 'paging did not end');
    }
  } finally {
    done = true;
    await churners;
    for (const c of conns) c.close();
  }
  assert.deepEqual(churnErrors.slice(0, 5), [], 'the concurrent inserts and deletes succeed');
  assert.ok(churnOps > 300, `enough churn happened while paging (${churnOps} operations over ${pages} pages)`);
  assert.ok(deleted.size > 100 && inserted.size > 100, 'rows were both inserted and deleted during paging');

  // no row twice
  const ids = seen.map((x) => x.id);
  const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert.deepEqual(dup, [], 'no row is seen twice');
  // every row that existed throughout (and matches the filter) was seen
  const seenSet = new Set(ids);
  const stable = initial.filter((x) => !deleted.has(x.id) && matches(types, filter || {}, x));
  const skipped = stable.filter((x) => !seenSet.has(x.id)).map((x) => x.id);
  assert.deepEqual(skipped, [], `none of the ${stable.length} rows that existed throughout is skipped`);
  // every row seen is one that was written and matches the filter, as it was written
  for (const x of seen) {
    assert.ok(byId.has(x.id), `row ${x.id} was never written`);
    assert.deepEqual(x, byId.get(x.id));
    assert.ok(matches(types, filter || {}, x), `row ${x.id} does not match the filter`);
  }
  // and in strictly increasing sort order across all pages
  const cmp = sortComparator(types, sort);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(cmp(seen[i - 1], seen[i]) < 0,
      `rows out of order at ${i}: ${JSON.stringify(seen[i - 1])} then ${JSON.stringify(seen[i])} for sort ${JSON.stringify(sort)}`);
  }
  // some rows inserted during paging were seen, some deleted initial rows were not
  assert.ok(seen.some((x) => inserted.has(x.id)) || sort !== undefined, 'with the default sort, rows appended meanwhile are reached');
  return { pages, seen: seen.length, stable: stable.length };
}

test('paging 1,000 rows in pages of 7 (default sort) while 6 clients insert and delete: no row twice, none skipped', async () => {
  const r = await pageUnderChurn('pageA', { seed: 11, via: 'get' });
  assert.ok(r.pages > 100);
});

test('paging 1,000 rows in pages of 7 sorted descending on a field with many equal values and NULLs, under inserts and deletes', async () => {
  const r = await pageUnderChurn('pageB', { seed: 12, via: 'post', sort: { grp: 'descending' } });
  assert.ok(r.pages > 100);
});

test('paging with a filter and two sort keys with NULLs (ascending, then descending) under inserts and deletes', async () => {
  const r = await pageUnderChurn('pageC', {
    seed: 13,
    via: 'get',
    sort: [{ grp: 'ascending' }, { tag: 'descending' }],
    filter: { OR: [{ grp: { isSet: false } }, { grp: { lessThan: 4 } }, { tag: { equals: 'c' } }] },
  });
  assert.ok(r.pages > 50);
});
