// A reference model of the filter language and of sorting (README.md, "Filters, sorting and paging"), in
// plain JavaScript, for checking the server's answers against on data the test
// itself wrote. It knows only the documented rules:
//   - an unset (null) value matches only `isSet: false` and `equals: null`
//     (`notEquals: null` matches set values); every other operator is false on
//     it, and NOT of false is true (two-valued logic);
//   - a `{"field": name}` operand compares with another field of the same row
//     (false when either side is unset);
//   - strings compare bytewise (UTF-8), datetimes by instant, booleans as
//     false < true, belongsTo by the linked id;
//   - several fields or operators in one object are ANDed;
//   - sorting: NULLs first ascending, last descending; `id` ascending breaks ties.
// Plus small helpers to page through a listing.
import assert from 'node:assert/strict';

/** Deterministic PRNG (mulberry32) so that a failure can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = (r, list) => list[Math.floor(r() * list.length)];

/** Field types of a model as the model needs them (`id`, `createdAt`, `updatedAt` added). */
export function fieldTypes(modelSchema) {
  const t = { id: 'integer', createdAt: 'datetime', updatedAt: 'datetime' };
  for (const [name, f] of Object.entries(modelSchema.fields)) t[name] = f.type;
  return t;
}

function norm(type, v) {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'datetime': {
      const ms = Date.parse(v);
      if (Number.isNaN(ms)) throw new Error(`model: not a datetime: ${v}`);
      return ms;
    }
    case 'boolean': return v ? 1 : 0;
    case 'string': return Buffer.from(v, 'utf8');
    default: return v;
  }
}

function cmp(a, b) {
  if (Buffer.isBuffer(a)) return Buffer.compare(a, b);
  return a < b ? -1 : a > b ? 1 : 0;
}

const isFieldRef = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.field === 'string';

function evalOp(types, row, field, op, operand) {
  const type = types[field];
  const v = norm(type, row[field]);
  switch (op) {
    case 'isSet': return (v !== null) === operand;
    case 'in':
    case 'notIn': {
      if (v === null) return false;
      const hit = operand.some((x) => cmp(v, norm(type, x)) === 0);
      return op === 'in' ? hit : !hit;
    }
    default: break;
  }
  if (operand === null) {
    if (op === 'equals') return v === null;
    if (op === 'notEquals') return v !== null;
    throw new Error(`model: null operand for ${op}`);
  }
  let o;
  if (isFieldRef(operand)) o = norm(types[operand.field], row[operand.field]);
  else o = norm(type, operand);
  if (v === null || o === null) return false;
  const c = cmp(v, o);
  switch (op) {
    case 'equals': return c === 0;
    case 'notEquals': return c !== 0;
    case 'lessThan': return c < 0;
    case 'lessThanOrEqual': return c <= 0;
    case 'greaterThan': return c > 0;
    case 'greaterThanOrEqual': return c >= 0;
    default: throw new Error(`model: unknown operator ${op}`);
  }
}

/** Does `row` match `filter`? */
export function matches(types, filter, row) {
  for (const [k, v] of Object.entries(filter)) {
    if (k === 'AND') { if (!v.every((g) => matches(types, g, row))) return false; continue; }
    if (k === 'OR') { if (!v.some((g) => matches(types, g, row))) return false; continue; }
    if (k === 'NOT') { if (matches(types, v, row)) return false; continue; }
    if (!(k in types)) throw new Error(`model: unknown field ${k}`);
    for (const [op, operand] of Object.entries(v)) {
      if (!evalOp(types, row, k, op, operand)) return false;
    }
  }
  return true;
}

/** Normalise a sort spec to [[field, 'ascending'|'descending'], ...]. */
export function sortKeys(sort) {
  if (sort === undefined || sort === null) return [];
  const list = Array.isArray(sort) ? sort : [sort];
  const out = [];
  for (const o of list) for (const [f, d] of Object.entries(o)) out.push([f, d]);
  return out;
}

/** Comparator for rows under `sort` (NULLs first ascending, last descending; id breaks ties). */
export function sortComparator(types, sort) {
  const keys = sortKeys(sort);
  if (!keys.some(([f]) => f === 'id')) keys.push(['id', 'ascending']);
  return (a, b) => {
    for (const [f, dir] of keys) {
      const x = norm(types[f], a[f]);
      const y = norm(types[f], b[f]);
      let c;
      if (x === null && y === null) c = 0;
      else if (x === null) c = -1;
      else if (y === null) c = 1;
      else c = cmp(x, y);
      if (dir === 'descending') c = -c;
      if (c !== 0) return c;
    }
    return 0;
  };
}

/** The ids the model expects for a filter and sort over `rows`. */
export function expectedIds(types, rows, filter, sort) {
  return rows.filter((r) => matches(types, filter || {}, r)).sort(sortComparator(types, sort)).map((r) => r.id);
}

/**
 * Every record a listing gives, following `next`. via: 'get' (query string) or
 * 'post' (POST /find). Returns {records, pages}.
 */
export async function findAll(api, model, { filter, sort, first = 1000, via = 'get', maxPages = 100000 } = {}) {
  const records = [];
  let after = null;
  let pages = 0;
  for (;;) {
    const r = await findPage(api, model, { filter, sort, first, after, via });
    assert.equal(r.status, 200, `listing ${model} filter=${JSON.stringify(filter)} sort=${JSON.stringify(sort)}: ${r.status} ${r.text}`);
    assert.ok(Array.isArray(r.body.records), `records must be a list: ${r.text}`);
    assert.ok(r.body.records.length <= first, `a page holds at most first=${first} records`);
    records.push(...r.body.records);
    pages++;
    if (r.body.next === null) return { records, pages };
    assert.equal(typeof r.body.next, 'string', `next must be a string or null: ${r.text}`);
    after = r.body.next;
    if (pages > maxPages) throw new Error('listing did not end');
  }
}

/** One page of a listing, by GET with a query string or by POST /find. */
export function findPage(api, model, { filter, sort, first, after, via = 'get' } = {}) {
  if (via === 'post') {
    const body = {};
    if (filter !== undefined) body.filter = filter;
    if (sort !== undefined) body.sort = sort;
    if (first !== undefined) body.first = first;
    if (after) body.after = after;
    return api('POST', `/api/${model}/find`, body);
  }
  return api('GET', `/api/${model}?${listQuery({ filter, sort, first, after })}`);
}

export function listQuery({ filter, sort, first, after } = {}) {
  const q = [];
  if (filter !== undefined) q.push(`filter=${encodeURIComponent(JSON.stringify(filter))}`);
  if (sort !== undefined) q.push(`sort=${encodeURIComponent(JSON.stringify(sort))}`);
  if (first !== undefined) q.push(`first=${first}`);
  if (after) q.push(`after=${encodeURIComponent(after)}`);
  return q.join('&');
}
