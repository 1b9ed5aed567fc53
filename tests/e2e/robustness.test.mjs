// Robustness: seeded, generated bad input for every call (README.md, "API").
//
// The rule checked: bad input gets a clear JSON error — a status in
// {200,201,400,404,405,409,413,422,426,429,431,503} and, for errors,
// {"error": {"code", "message"}} with a code of the documented table (the
// code's own status) — never a 5xx other than 503, never a dropped
// connection; it changes nothing; the server stays up (GET /health 200 after
// every batch).
//
// Four parts, each bounded by a count and by time, all from one seed:
//   1. mixed HTTP: valid requests for every call (records, listing with
//      filter/sort/first/after in the query and via /find, updateMany,
//      deleteMany, upsert, transactions with as/$ref/expect, locks, limits,
//      Idempotency-Key) put through structured mutations — wrong types at any
//      position, missing/extra/duplicate keys, deep nesting, huge numbers, long
//      strings (past --max-body), unicode (multibyte, \ud800, \u0000, invalid
//      UTF-8), malformed JSON, malformed percent-encoding, odd paths, unknown
//      methods, odd headers. Some stay valid and change data: that is fine here.
//   2. raw sockets: invalid HTTP, Content-Length larger than the body then
//      close, bodies over --max-body and over h2o's own limit, pipelining,
//      chunked oddities, byte-by-byte sends, HTTP/2 prefaces.
//   3. WebSocket: garbage text and binary frames, invalid UTF-8, huge and
//      deeply nested messages, calls out of turn (commit before begin, steps
//      after rollback, several calls in flight), closing mid-transaction,
//      timeouts, and malformed frames on a raw socket.
//   4. invalid only: the same generators, but every write is made certainly
//      invalid (a "poison" applied last: malformed JSON, invalid UTF-8, an
//      unknown key, an unknown model/limit/lock operation, a missing id, a
//      body over the limit; interactive transactions that never commit). A
//      snapshot of every record, of the long-lived locks and of a rate-limit
//      key is taken before and compared after: nothing may change, and no
//      poisoned request may be answered 2xx.
//
// Repeat a run: FUZZ_SEED=<seed printed on failure>. Budget: FUZZ_TIME_MS
// (default 36000, the four parts share it) and FUZZ_SCALE (multiplies the
// count limits, default 1). On a crash the batch is replayed one request at a
// time on a fresh server to name the request, and the sanitizer report's
// first lines are shown. The report lists one example per kind of problem;
// FUZZ_REPORT_ALL=1 lists every one.
//
// The server runs with --max-body 65536 (so bodies past the limit stay
// cheap) and --max-txn-ms 2000. A crash in part 4 restarts the comparison:
// the snapshot is taken again on the fresh server.
//
// Known exceptions, allowed: h2o 2.2.5 answers some malformed HTTP itself,
// with a plain-text 400 written straight to the socket (send_bad_request in
// its lib/http1.c, which no hook sees) or by closing the connection, before
// Tally sees it — request heads over about 400 KiB (H2O_MAX_REQLEN), more
// than 100 headers, control characters in the request line or header
// values, a method that is not an HTTP token, bytes that are not HTTP at
// all. Its other refusals (a broken Content-Length or chunked body, a body
// over --max-body, an Expect other than 100-continue) are rewritten as JSON.
// h2o also closes the connection after an answer to a request whose
// Connection header is not keep-alive. WebSocket text frames with invalid
// UTF-8 are closed by wslay with 1007 (RFC 6455), not answered; binary
// frames are closed with 1003.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stopAll, shopSchema, writeSchema, sleep } from './lib/server.mjs';
import { WsClient } from './lib/wsclient.mjs';
import {
  makeRng, runSeed, raw, Raw, DUP, ser, clone, positions, base64url, hasRaw,
  FuzzConnection, rawExchange, answerProblems, wsAnswerProblems, describeRequest, decodeBody,
  requestBytes,
} from './lib/fuzz.mjs';

const SEED = runSeed();
const TIME_MS = Number(process.env.FUZZ_TIME_MS || 36000);
const SCALE = Number(process.env.FUZZ_SCALE || 1);
const MAX_BODY = 65536;
const H2O_BODY_LIMIT = 4 * MAX_BODY + 65536;
const SHARE = { mixed: 0.32, raw: 0.12, ws: 0.2, invalid: 0.36 };
const LIMIT = { mixed: 20000 * SCALE, raw: 1500 * SCALE, ws: 400 * SCALE, invalid: 15000 * SCALE };
const CONNS = 4;
const BATCH = 48;

after(stopAll);

// ---------- the server: the shop plus a model with every field type, and limits ----------

const SCHEMA = (() => {
  const s = shopSchema();
  s.models.kitchen = { fields: {
    i: { type: 'integer', min: -1000000, max: 1000000 },
    f: { type: 'float' },
    b: { type: 'boolean' },
    d: { type: 'datetime' },
    j: { type: 'json' },
    s: { type: 'string', maxLength: 16 },
    u: { type: 'string', unique: true },
    ref: { type: 'belongsTo', model: 'customer', onDelete: 'setNull' },
  } };
  s.models.note = { fields: {
    kitchen: { type: 'belongsTo', model: 'kitchen', onDelete: 'cascade' },
    text: { type: 'string' },
  } };
  s.limits = {
    slow: { rate: 1, periodMs: 1000000000, burst: 1000 },   // never refills during a run: remaining is exact
    fast: { rate: 100, periodMs: 1000, burst: 3 },
  };
  return writeSchema(s);
})();
const SERVER_ARGS = ['--max-body', String(MAX_BODY), '--max-txn-ms', '2000'];

/** Field types per model, for filters, sorts, bodies. */
const FIELDS = {
  customer: { id: 'id', name: 'string', email: 'string', orderCount: 'integer', createdAt: 'datetime' },
  product: { id: 'id', sku: 'string', stock: 'integer', updatedAt: 'datetime' },
  event: { id: 'id', soldTicketCount: 'integer', availableTicketCount: 'integer' },
  ticket: { id: 'id', event: 'ref' },
  post: { id: 'id', title: 'string' },
  image: { id: 'id', url: 'string', post: 'ref' },
  course: { id: 'id', name: 'string', maxStudents: 'integer', slotsTaken: 'integer' },
  rateLimit: { id: 'id', userId: 'string', window: 'integer', requests: 'integer' },
  kitchen: { id: 'id', i: 'integer', f: 'float', b: 'boolean', d: 'datetime', j: 'json', s: 'string', u: 'string', ref: 'ref' },
  note: { id: 'id', kitchen: 'ref', text: 'string' },
};
const REF = { ticket: { event: 'event' }, image: { post: 'post' }, kitchen: { ref: 'customer' }, note: { kitchen: 'kitchen' } };
const MODELS = Object.keys(FIELDS);
const NUMERIC = {
  customer: ['orderCount'], product: ['stock'], event: ['soldTicketCount', 'availableTicketCount'],
  course: ['maxStudents', 'slotsTaken'], rateLimit: ['window', 'requests'], kitchen: ['i', 'f'],
};

let srv = null;
let stderrSeen = 0;   // how much of the server's stderr has been looked at for sanitizer reports
const alive = () => srv && srv.proc.exitCode === null && srv.proc.signalCode === null;

async function freshServer() {
  srv = await startServer({ schema: SCHEMA, args: SERVER_ARGS, env: { UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1' } });
  stderrSeen = 0;
  return srv;
}

async function healthy() {
  if (!alive()) return false;
  try {
    const r = await fetch(`${srv.url}/health`, { signal: AbortSignal.timeout(8000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/** The first lines of a sanitizer report (or the tail of stderr). */
function crashExcerpt(stderr) {
  if (!stderr.trim()) return '   (nothing on stderr: run against build-asan/tally for a sanitizer report)';
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => /ERROR: (Address|Undefined|Leak)Sanitizer|runtime error:|AddressSanitizer|SUMMARY:/.test(l));
  if (i >= 0) return lines.slice(i, i + 30).join('\n');
  return lines.slice(-20).join('\n');
}

// ---------- findings ----------

class Findings {
  constructor(part) { this.part = part; this.list = []; this.counts = {}; }
  add(kind, what, detail) { this.list.push({ kind, what, detail }); }
  count(k, n = 1) { this.counts[k] = (this.counts[k] || 0) + n; }
  report() {
    const seen = new Map();
    for (const f of this.list) {
      // one entry per kind of problem (the answer's own text left out), with its first example
      const key = `${f.kind}|${String(f.detail).split(' — answer:')[0].replace(/\d+/g, 'N').slice(0, 160)}`;
      if (!seen.has(key)) seen.set(key, { ...f, n: 0 });
      seen.get(key).n++;
    }
    const all = process.env.FUZZ_REPORT_ALL ? this.list.map((f) => ({ ...f, n: 1 })) : [...seen.values()].slice(0, 25);
    const items = all.map((f, i) =>
      `#${i + 1} [${f.kind}] ×${f.n}\n   request: ${f.what}\n   problem: ${f.detail}`);
    return `${this.part}: ${this.list.length} problem(s), ${seen.size} distinct; seed ${SEED} `
      + `(repeat with FUZZ_SEED=${SEED})\n${items.join('\n')}`;
  }
  summary() { return `${this.part}: seed ${SEED}, ${Object.entries(this.counts).map(([k, v]) => `${k}=${v}`).join(' ')}`; }
}

// ---------- fixtures: records, a held lock, a rate-limit key ----------

async function fixtures(tag) {
  const api = srv.api;
  const F = { tag, ids: {}, lockName: `fx-${tag}`, limitKey: `probe-${tag}`, idem: [], cursors: [] };
  const mk = async (model, data) => {
    const r = await api('POST', `/api/${model}`, data);
    assert.equal(r.status, 201, `fixture ${model} ${JSON.stringify(data)}: ${r.status} ${r.text}`);
    (F.ids[model] ||= []).push(r.body.id);
    return r.body;
  };
  for (let i = 0; i < 3; i++) await mk('customer', { name: `c${i}`, email: `c${i}-${tag}@example.com` });
  for (let i = 0; i < 3; i++) await mk('product', { sku: `sku${i}-${tag}`, stock: 10 });
  for (let i = 0; i < 2; i++) await mk('event', { availableTicketCount: 10 });
  for (let i = 0; i < 2; i++) await mk('ticket', { event: { _link: F.ids.event[i] } });
  const post = await mk('post', { title: `post-${tag}` });
  for (let i = 0; i < 2; i++) await mk('image', { url: `https://example.com/${tag}/${i}.png`, post: { _link: post.id } });
  await mk('course', { name: `course-${tag}`, maxStudents: 3 });
  await mk('rateLimit', { userId: `u-${tag}`, window: 1, requests: 1 });
  for (let i = 0; i < 2; i++) {
    await mk('kitchen', { i: i, f: 1.5, b: true, d: '2020-01-01T00:00:00Z', j: { a: [1, 2] }, s: `k${i}`, u: `u${i}-${tag}`, ref: { _link: F.ids.customer[0] } });
  }
  for (let i = 0; i < 2; i++) await mk('note', { kitchen: { _link: F.ids.kitchen[i] }, text: `n${i}` });
  const l = await api('POST', `/api/locks/${F.lockName}/acquire`, { ttlMs: 600000 });
  assert.equal(l.status, 200, `fixture lock: ${l.status} ${l.text}`);
  F.lock = l.body;
  for (let i = 0; i < 4; i++) F.idem.push(`idem-${tag}-${i}`);
  return F;
}

// ---------- value generators ----------

function idOf(g, model) {
  const ids = g.F.ids[model] || [];
  return ids.length && g.rng.chance(0.9) ? g.rng.pick(ids) : g.rng.pick([1, 2, 3, 999999]);
}

function valueFor(g, type, model, field) {
  const r = g.rng;
  switch (type) {
    case 'integer': return r.pick([0, 1, 2, 5, 10, -1, 100]);
    case 'float': return r.pick([0.5, -1.25, 3, 0.001, 42]);
    case 'boolean': return r.chance(0.5);
    case 'string': return r.pick(['a', 'apple', 'zz', 'Ünïcødé ☃', '', `s${r.int(100)}`]);
    case 'datetime': return r.pick(['2020-01-01T00:00:00Z', '2024-02-29T12:30:00.5+02:00', '1970-01-01T00:00:00.000Z']);
    case 'json': return r.pick([{ a: 1 }, [1, 2], 'text', 3, { nested: { x: [true] } }]);
    case 'ref': return idOf(g, REF[model]?.[field] || 'customer');
    default: return idOf(g, model);
  }
}

const LONG_LENGTHS = [64, 255, 256, 2049, 16000, MAX_BODY - 200, MAX_BODY + 10];
function longString(r) {
  const n = r.pick(LONG_LENGTHS);
  const unit = r.pick(['x', 'é', '☃', '𝄞', 'ab\u0000']);
  return unit.repeat(Math.max(1, Math.floor(n / Buffer.byteLength(unit))));
}

function deepNest(r) {
  const d = r.pick([33, 64, 500, 2047, 2048, 2049, 5000, 12000]);
  switch (r.int(4)) {
    case 0: return raw('['.repeat(d) + ']'.repeat(d));
    case 1: return raw('{"a":'.repeat(d) + '1' + '}'.repeat(d));
    case 2: return raw('{"NOT":'.repeat(d) + '{"id":{"equals":1}}' + '}'.repeat(d));
    default: return raw('{"AND":['.repeat(d) + '{}' + ']}'.repeat(d));
  }
}

const WEIRD_SCALARS = [
  () => null, () => true, () => false, () => 0, () => -1, () => 1, () => 2 ** 31, () => 2 ** 53,
  () => raw('-0'), () => raw('9007199254740993'), () => raw('9223372036854775807'), () => raw('9223372036854775808'),
  () => raw('-9223372036854775808'), () => raw('-9223372036854775809'), () => raw('18446744073709551616'),
  () => 1e308, () => -1e308, () => raw('1e309'), () => raw('-1e309'), () => raw('4.9e-324'), () => raw('1e-400'),
  () => 0.1, () => -2.5, () => raw('123456789012345678901234567890123456789'), () => raw('1.0'), () => raw('1E2'),
  () => raw('-0.0'),
  () => '', () => 'x', () => 'NaN', () => 'Infinity', () => '-Infinity', () => '1e400', () => '9223372036854775808',
  () => '0x10', () => '1', () => 'true', () => 'null',
  () => '\u0000', () => 'a\u0000b', () => '\ud800', () => '\udc00x', () => 'x\ud83d', () => '𝄞', () => '\uffff',
  () => '\u202eevil', () => 'ü☃𝄞 mixed',
  () => '2020-02-30T00:00:00Z', () => '2020-01-01', () => '9999-12-31T23:59:59.999Z', () => '0000-01-01T00:00:00Z',
  () => '1970-01-01T00:00:00+25:00', () => '2020-01-01T00:00:60Z', () => '+275760-09-13T00:00:00Z',
  () => '2020-01-01T00:00:00.123456789Z', () => '2020-01-01t00:00:00z', () => '-2020-01-01T00:00:00Z',
  () => "'; DROP TABLE customer; --", () => '%s%s%n%x', () => '$ref', () => 'a.id',
];

function weirdScalar(r) {
  return r.chance(0.08) ? longString(r) : r.pick(WEIRD_SCALARS)();
}

function weird(r) {
  switch (r.weighted([[10, 'scalar'], [2, 'array'], [3, 'object'], [1, 'deep'], [1, 'long']])) {
    case 'scalar': return weirdScalar(r);
    case 'long': return longString(r);
    case 'deep': return deepNest(r);
    case 'array': return r.pick([() => [], () => [weirdScalar(r)], () => [1, 'a', null, {}], () => Array.from({ length: r.pick([100, 10001]) }, (_, i) => i)])();
    default: return r.pick([
      () => ({}),
      () => ({ $ref: r.pick(['a.id', 'p.id', 's0.id', 's1.count', 'x', '.', '', 'a.', '.id', 'a.b.c', 's0.title', 's0.nosuch', 's0.j']) }),
      () => ({ $ref: weirdScalar(r) }),
      () => ({ $ref: 's0.id', extra: 1 }),
      () => ({ field: r.pick(['stock', 'nosuch', 'id', '', 'j', 'name', 'createdAt']) }),
      () => ({ _link: weirdScalar(r) }),
      () => ({ _link: 1, create: {} }),
      () => ({ create: {} }),
      () => ({ create: weirdScalar(r) }),
      () => ({ increment: weirdScalar(r) }),
      () => ({ decrement: {} }),
      () => ({ equals: weirdScalar(r) }),
      () => ({ in: [weirdScalar(r), weirdScalar(r)] }),
      () => ({ [weirdKey(r)]: weirdScalar(r) }),
    ])();
  }
}

const WEIRD_KEYS = ['zz', '', 'id', 'createdAt', 'updatedAt', '_atomics', '_where', '_link', 'create', '$ref', '__proto__',
  'constructor', 'toString', 'é', '\u0000', 'a\u0000b', '\ud800', 'stock', 'name', 'AND', 'OR', 'NOT', 'filter', 'steps',
  'as', 'expect', 'token', 'ttlMs', 'waitMs', 'cost', 'x.y', 'images', 'event', 'sqlite_master', 'tally_locks', 'j',
  'op', 'field', 'in', 'equals', 'isSet', 'on', 'set', 'sort', 'first', 'after', 'where', 'data'];
function weirdKey(r) {
  return r.chance(0.05) ? 'k'.repeat(r.pick([64, 5000])) : r.pick(WEIRD_KEYS);
}

/** Set an own, enumerable key even for '__proto__'. */
function setKey(o, k, v) {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

// ---------- valid bodies ----------

function createBody(g, m, depth = 0) {
  const r = g.rng;
  const n = r.int(1e9);
  const opt = (o, k, v) => { if (r.chance(0.6)) o[k] = v; return o; };
  switch (m) {
    case 'customer': return opt({ name: `n${n}` }, 'email', `e${n}@example.com`);
    case 'product': return opt({ sku: `p${n}` }, 'stock', r.range(0, 50));
    case 'event': return opt(opt({}, 'soldTicketCount', r.range(0, 5)), 'availableTicketCount', r.range(0, 20));
    case 'ticket': return { event: depth < 1 && r.chance(0.2) ? { create: createBody(g, 'event', depth + 1) } : r.pick([{ _link: idOf(g, 'event') }, idOf(g, 'event')]) };
    case 'post': {
      const o = { title: `t${n}` };
      if (depth < 1 && r.chance(0.4)) o.images = [{ create: { url: `https://example.com/${n}.png` } }, ...(r.chance(0.3) ? [{ _link: idOf(g, 'image') }] : [])];
      return o;
    }
    case 'image': return opt({ url: `https://example.com/${n}.png` }, 'post', depth < 1 && r.chance(0.3) ? { create: createBody(g, 'post', depth + 1) } : { _link: idOf(g, 'post') });
    case 'course': return opt(opt({ name: `c${n}` }, 'maxStudents', r.range(1, 5)), 'slotsTaken', 0);
    case 'rateLimit': return opt({ userId: `u${r.int(5)}`, window: r.int(1e6) }, 'requests', r.int(3));
    case 'kitchen': {
      const o = {};
      for (const [f, t] of Object.entries(FIELDS.kitchen)) {
        if (f === 'id' || !r.chance(0.6)) continue;
        o[f] = f === 'u' ? `u${n}` : f === 's' ? `s${r.int(1000)}` : f === 'ref' ? { _link: idOf(g, 'customer') } : valueFor(g, t, 'kitchen', f);
      }
      return o;
    }
    default: return { kitchen: r.chance(0.2) && depth < 1 ? { create: createBody(g, 'kitchen', depth + 1) } : { _link: idOf(g, 'kitchen') }, text: `x${n}` };
  }
}

function atomicsFor(g, m) {
  const r = g.rng;
  const fields = NUMERIC[m];
  if (!fields) return undefined;
  const o = {};
  for (const f of fields) {
    if (!r.chance(0.6)) continue;
    const one = () => r.pick([{ increment: r.range(0, 3) }, { decrement: r.range(0, 3) }, { increment: {} }, { decrement: 0.5 }]);
    o[f] = r.chance(0.25) ? [one(), one()] : one();
  }
  if (!Object.keys(o).length) o[fields[0]] = { increment: 1 };
  return o;
}

function setFor(g, m) {
  const r = g.rng;
  const full = createBody(g, m);
  const o = {};
  for (const [k, v] of Object.entries(full)) {
    if (k === 'images' || (REF[m] && REF[m][k] && v && typeof v === 'object' && 'create' in v)) continue;
    if (r.chance(0.5)) o[k] = v;
  }
  return o;
}

function patchBody(g, m, withWhere = true) {
  const r = g.rng;
  const o = setFor(g, m);
  if (NUMERIC[m] && r.chance(0.6)) {
    const a = atomicsFor(g, m);
    for (const f of Object.keys(a)) delete o[f];
    o._atomics = a;
  }
  if (withWhere && r.chance(0.3)) o._where = filterFor(g, m);
  return o;
}

const ORDER_OPS = ['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'];
function condFor(g, m, f, type) {
  const r = g.rng;
  const sameType = Object.entries(FIELDS[m]).filter(([, t]) => t === type || (['integer', 'float', 'id', 'ref'].includes(t) && ['integer', 'float', 'id', 'ref'].includes(type))).map(([k]) => k);
  const v = () => (r.chance(0.15) && sameType.length ? { field: r.pick(sameType) } : valueFor(g, type, m, f));
  const ops = type === 'json' ? ['isSet', 'equalsNull'] : type === 'boolean' ? ['equals', 'notEquals', 'in', 'isSet'] : ['equals', 'notEquals', 'in', 'notIn', 'isSet', ...ORDER_OPS];
  const o = {};
  for (let i = r.range(1, 2); i > 0; i--) {
    const op = r.pick(ops);
    if (op === 'isSet') o.isSet = r.chance(0.5);
    else if (op === 'equalsNull') o[r.pick(['equals', 'notEquals'])] = null;
    else if (op === 'in' || op === 'notIn') o[op] = Array.from({ length: r.range(0, 3) }, () => valueFor(g, type, m, f));
    else o[op] = op === 'equals' && r.chance(0.1) ? null : v();
  }
  return o;
}

function filterFor(g, m, depth = 0) {
  const r = g.rng;
  if (depth < 3 && r.chance(0.25)) {
    const kind = r.pick(['AND', 'OR', 'NOT']);
    if (kind === 'NOT') return { NOT: filterFor(g, m, depth + 1) };
    return { [kind]: Array.from({ length: r.range(0, 3) }, () => filterFor(g, m, depth + 1)) };
  }
  const o = {};
  for (let i = r.range(0, 2); i > 0; i--) {
    const [f, t] = r.pick(Object.entries(FIELDS[m]));
    o[f] = condFor(g, m, f, t);
  }
  return o;
}

function sortFor(g, m) {
  const r = g.rng;
  const fields = Object.entries(FIELDS[m]).filter(([, t]) => t !== 'json').map(([k]) => k);
  const one = () => ({ [r.pick(fields)]: r.pick(['ascending', 'descending']) });
  if (r.chance(0.03)) return Array.from({ length: r.pick([16, 17]) }, one);   // at most 16 sort keys
  return r.chance(0.6) ? one() : Array.from({ length: r.range(1, 3) }, one);
}

function cursorFor(g, m) {
  const r = g.rng;
  if (g.F.cursors.length && r.chance(0.5)) return r.pick(g.F.cursors);
  const fields = Object.keys(FIELDS[m]);
  return r.pick([
    () => base64url(JSON.stringify({ k: ['id+'], v: [r.int(20)] })),
    () => base64url(JSON.stringify({ k: [`${r.pick(fields)}${r.pick(['+', '-'])}`, 'id+'], v: [weirdScalarJs(r), 3] })),
    () => base64url(JSON.stringify({ k: ['id+'], v: [] })),
    () => base64url(JSON.stringify({ k: [], v: [1] })),
    () => base64url(JSON.stringify({ k: ['nosuch+'], v: [1] })),
    () => base64url(JSON.stringify({ k: ['id*'], v: [1] })),
    () => base64url(JSON.stringify({ k: 'id+', v: 1 })),
    () => base64url(JSON.stringify({ k: Array(20).fill('id+'), v: Array(20).fill(1) })),
    () => base64url(ser({ k: ['id+'], v: [raw('9223372036854775808')] })),
    () => base64url(ser(weird(r))),
    () => base64url(`id:${r.int(10)}`),
    () => Buffer.from(Array.from({ length: r.range(1, 40) }, () => r.int(256))).toString('base64url'),
    () => r.pick(['', '=', '====', 'a', '!!!', '%00', 'AAAA'.repeat(r.pick([10, 3000]))]),
  ])();
}
function weirdScalarJs(r) {
  const v = weirdScalar(r);
  return v instanceof Raw ? 1 : v;
}

function stepFor(g, names, i) {
  const r = g.rng;
  const m = r.pick(MODELS);
  const idRef = () => (names.length && r.chance(0.3) ? { $ref: `${r.pick(names)}.id` } : idOf(g, m));
  let s;
  switch (r.pick(['create', 'create', 'get', 'find', 'update', 'update', 'delete', 'upsert', 'updateMany', 'deleteMany', 'checkLock'])) {
    case 'create': {
      s = { create: m, data: createBody(g, m) };
      if (m === 'ticket' && names.length && r.chance(0.5)) s.data.event = { _link: { $ref: `${r.pick(names)}.id` } };
      break;
    }
    case 'get': s = { get: m, id: idRef() }; break;
    case 'find': s = { find: m, filter: filterFor(g, m), ...(r.chance(0.4) ? { sort: sortFor(g, m) } : {}), ...(r.chance(0.4) ? { first: r.range(1, 20) } : {}) }; break;
    case 'update': s = { update: m, id: idRef(), data: patchBody(g, m, false), ...(r.chance(0.3) ? { where: filterFor(g, m) } : {}) }; break;
    case 'delete': s = { delete: m, id: idRef() }; break;
    case 'upsert': s = upsertBody(g); s = { upsert: s.model, on: s.body.on, create: s.body.create, update: s.body.update }; break;
    case 'updateMany': { const mm = r.pick(Object.keys(NUMERIC)); s = { updateMany: mm, filter: narrowFilter(g, mm), _atomics: atomicsFor(g, mm) }; break; }
    case 'deleteMany': s = { deleteMany: m, filter: narrowFilter(g, m) }; break;
    default: s = { checkLock: g.F.lockName, token: r.chance(0.7) ? g.F.lock.token : 'f'.repeat(32) };
  }
  if (r.chance(0.5)) s.as = `s${i}`;
  if (r.chance(0.25)) s.expect = r.chance(0.5) ? { id: { greaterThan: 0 } } : filterFor(g, m);
  return s;
}

/** A filter that matches few rows (so deleteMany/updateMany do not wipe the fixtures). */
function narrowFilter(g, m) {
  const r = g.rng;
  return r.chance(0.7) ? { id: { equals: idOf(g, m) } } : { AND: [{ id: { greaterThan: 1000000 } }, filterFor(g, m)] };
}

function upsertBody(g) {
  const r = g.rng;
  const n = r.int(1e9);
  switch (r.int(4)) {
    case 0: return { model: 'rateLimit', body: { on: ['userId', 'window'], create: { userId: `u${r.int(3)}`, window: r.int(3), requests: 1 }, update: { _atomics: { requests: { increment: 1 } } } } };
    case 1: return { model: 'product', body: { on: ['sku'], create: { sku: `up${r.int(5)}`, stock: 5 }, update: r.chance(0.5) ? { stock: r.int(9) } : { _atomics: { stock: { increment: 1 } } } } };
    case 2: return { model: 'customer', body: { on: ['email'], create: { name: `n${n}`, email: `up${r.int(5)}@example.com` }, update: { name: `m${n}` } } };
    default: return { model: 'kitchen', body: { on: ['u'], create: { u: `up${r.int(5)}`, i: 1 }, update: { _atomics: { i: { increment: 1 } } } } };
  }
}

const enc = encodeURIComponent;

/** One valid request spec: {method, path: [segments], query: [[k, v]] | null, body, headers, kind}. */
function validSpec(g) {
  const r = g.rng;
  const F = g.F;
  const m = r.pick(MODELS);
  const kind = r.weighted([[4, 'create'], [3, 'get'], [4, 'patch'], [1.5, 'delete'], [3, 'list'], [3, 'find'],
    [2, 'updateMany'], [1, 'deleteMany'], [2, 'upsert'], [4, 'transaction'], [1.5, 'acquire'], [1, 'renew'],
    [1, 'release'], [0.5, 'locks'], [2, 'limit']]);
  const s = { method: 'POST', path: ['api', m], query: null, body: undefined, headers: {}, kind };
  switch (kind) {
    case 'create': s.body = createBody(g, m); break;
    case 'get': s.method = 'GET'; s.path.push(String(idOf(g, m))); break;
    case 'patch': s.method = 'PATCH'; s.path.push(String(idOf(g, m))); s.body = patchBody(g, m); break;
    case 'delete': s.method = 'DELETE'; s.path.push(String(idOf(g, m))); break;
    case 'list': {
      s.method = 'GET';
      s.query = [];
      if (r.chance(0.6)) s.query.push(['filter', enc(ser(filterFor(g, m)))]);
      if (r.chance(0.4)) s.query.push(['sort', enc(ser(sortFor(g, m)))]);
      if (r.chance(0.5)) s.query.push(['first', String(r.range(1, 30))]);
      if (r.chance(0.3)) s.query.push(['after', enc(cursorFor(g, m))]);
      break;
    }
    case 'find': {
      s.path.push('find');
      s.body = {};
      if (r.chance(0.7)) s.body.filter = filterFor(g, m);
      if (r.chance(0.4)) s.body.sort = sortFor(g, m);
      if (r.chance(0.5)) s.body.first = r.range(1, 30);
      if (r.chance(0.3)) s.body.after = cursorFor(g, m);
      break;
    }
    case 'updateMany': {
      const mm = r.pick(Object.keys(NUMERIC));
      s.path = ['api', mm, 'updateMany'];
      s.body = { filter: narrowFilter(g, mm) };
      if (r.chance(0.7)) s.body._atomics = atomicsFor(g, mm);
      if (r.chance(0.4) || !s.body._atomics) s.body.set = setFor(g, mm);
      break;
    }
    case 'deleteMany': s.path.push('deleteMany'); s.body = { filter: narrowFilter(g, m) }; break;
    case 'upsert': { const u = upsertBody(g); s.path = ['api', u.model, 'upsert']; s.body = u.body; break; }
    case 'transaction': {
      const names = [];
      const steps = [];
      if (r.chance(0.02)) {   // at the --max-txn-steps limit (1000) and one past it
        const m2 = r.pick(MODELS);
        for (let i = r.pick([1000, 1001]); i > 0; i--) steps.push(r.chance(0.5) ? { get: m2, id: idOf(g, m2) } : { find: m2, first: 1 });
      }
      for (let i = steps.length ? 0 : r.range(1, 5); i > 0; i--) {
        const st = stepFor(g, names, steps.length);
        steps.push(st);
        if (st.as) names.push(st.as);
      }
      s.path = ['api', 'transaction'];
      s.body = { steps };
      break;
    }
    case 'acquire': case 'renew': case 'release': {
      const name = r.pick([F.lockName, `l${r.int(4)}-${F.tag}`, enc(`ada@example.com-${F.tag}`), enc(`ü☃-${F.tag}`), enc(`[::1]-${F.tag}`)]);
      s.path = ['api', 'locks', name, kind];
      const token = r.chance(0.6) ? F.lock.token : 'f'.repeat(32);
      s.body = kind === 'acquire' ? { ttlMs: r.pick([1, 50, 1000, 60000]), ...(r.chance(0.4) ? { waitMs: r.pick([0, 10, 50]) } : {}) }
        : kind === 'renew' ? { token, ttlMs: r.pick([50, 600000]) } : { token };
      break;
    }
    case 'locks': s.method = 'GET'; s.path = ['api', 'locks']; break;
    default: {
      s.path = ['api', 'limits', r.pick(['slow', 'fast']), r.chance(0.5) ? F.limitKey : enc(`k${r.int(5)}@x-${F.tag}`)];
      if (r.chance(0.5)) s.body = { cost: r.pick([1, 2]) };
    }
  }
  if (s.method !== 'GET' && r.chance(0.15)) s.headers['Idempotency-Key'] = r.pick(F.idem);
  return s;
}

// ---------- mutations ----------

const SEGMENTS = ['', '%', '%zz', '%2', '%2F', '%2f..%2f', '%00', 'a%00b', '%c3%28', '%ED%A0%80', '%C0%80', '%FF%FE', '%F4%90%80%80',
  '..', '.', '%2e%2e', enc('ü☃𝄞'), '\xff\xfe', '\x80', '?', ';x', 'customer;v=1', '0', '-1', '9223372036854775807',
  '9223372036854775808', '18446744073709551617', '1e3', '1.0', '01', '+1', '0x1', ' 1', '%201', '1%20', 'nosuchmodel',
  'CUSTOMER', 'find', 'upsert', 'updateMany', 'deleteMany', 'transaction', 'ws', 'locks', 'limits', 'acquire', 'metrics',
  'health', 'sqlite_master', 'tally_locks', '*', '~', '$ref', '%24ref'];

function mutatePath(r, s) {
  const p = s.path;
  switch (r.int(8)) {
    case 0: case 1: case 2: {
      const i = r.range(1, Math.max(1, p.length - 1));
      p[i] = r.chance(0.1) ? 'x'.repeat(r.pick([64, 129, 300, 5000, 100000])) : r.pick(SEGMENTS);
      break;
    }
    case 3: p.push(r.chance(0.5) ? '' : r.pick(SEGMENTS)); break;                 // trailing slash / extra segment
    case 4: p.splice(r.range(0, p.length), 0, ''); break;                           // a '//'
    case 5: if (p.length > 1) p.splice(r.range(1, p.length - 1), 1); break;       // drop a segment
    case 6: p[0] = r.pick(['API', 'api/', '', 'api%2F', '.', 'api/..', 'api/./']); break;
    default: s.absolute = true;                                                       // absolute-form target
  }
}

const BAD_QUERY_VALUES = ['%', '%G1', '%e2%82', '%ff', '%00', '+', '%2B', '{', enc('{'), enc('{"id":'), enc('[]'), enc('null'),
  enc('"id"'), enc('{"id":{"nosuch":1}}'), enc('{"id":"ascending","id":"descending"}'), '', '0', '-1', '1001', '1e2',
  '9223372036854775808', 'abc', '1.5', ' 1', '%201', enc('{"$ref":"a.id"}')];
function mutateQuery(g, s) {
  const r = g.rng;
  if (!s.query) s.query = [];
  const q = s.query;
  switch (r.int(7)) {
    case 0: if (q.length) q[r.int(q.length)][1] = r.pick(BAD_QUERY_VALUES); else q.push(['filter', r.pick(BAD_QUERY_VALUES)]); break;
    case 1: q.push([r.pick(['filter', 'sort', 'first', 'after', 'zz', '', '%', 'filter%00', 'FILTER']), r.pick(BAD_QUERY_VALUES)]); break;
    case 2: if (q.length) q.push([...q[r.int(q.length)]]); break;                       // a repeated parameter
    case 3: q.push([r.pick(['filter', 'sort', 'after']), enc(ser(weird(r)))]); break;
    case 4: q.push([r.pick(['filter', 'first', 'x']), null]); break;                    // a name without '='
    case 5: q.push(['filter', enc(deepNest(r).text)]); break;
    default: q.push(['after', enc(cursorFor(g, 'customer'))]);
  }
}

const METHODS = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'FOO', 'get', 'PATCHX', 'TRACE', 'CONNECT',
  'M'.repeat(200), 'POST\x01', 'G\xe9T', 'PRI', 'PROPFIND', 'LINK'];
const IDEM_KEYS = ['', ' ', 'a'.repeat(255), 'a'.repeat(256), 'k\xc3\xa9y', 'k y', 'k\ty', 'k\x01', '"quoted"', '%00', 'x'.repeat(5000)];
const CONTENT_TYPES = ['text/plain', 'application/json; charset=latin1', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x', 'garbage', '', 'application/json\x00'];
function mutateHeaders(r, s) {
  switch (r.int(5)) {
    case 0: s.headers['Idempotency-Key'] = r.pick(IDEM_KEYS); break;
    case 1: s.headers['Idempotency-Key'] = [r.pick(IDEM_KEYS), 'second']; break;
    case 2: if (r.chance(0.5)) s.noContentType = true; else s.headers['Content-Type'] = r.pick(CONTENT_TYPES); break;
    case 3: s.chunked = true; break;
    default: s.headers[r.pick(['X-Fuzz', 'Accept', 'Accept-Encoding', 'Expect', 'Connection'])] = r.pick(['*/*', 'gzip, br', '100-continue', 'close', 'x'.repeat(10000), '\x7f']);
  }
}

function mutateTree(r, s) {
  if (s.body === undefined) { s.body = r.chance(0.5) ? weird(r) : {}; return; }
  const pos = r.pick(positions(s.body));
  const set = (v) => { if (pos.parent === null) s.body = v; else if (Array.isArray(pos.parent)) pos.parent[pos.key] = v; else setKey(pos.parent, pos.key, v); };
  const isObj = pos.value && typeof pos.value === 'object' && !Array.isArray(pos.value) && !(pos.value instanceof Raw);
  switch (r.weighted([[6, 'replace'], [2, 'delete'], [3, 'addKey'], [1, 'wrapArray'], [1, 'wrapObject'], [1, 'dup'], [0.5, 'deep']])) {
    case 'replace': set(weird(r)); break;
    case 'delete':
      if (pos.parent === null) s.body = r.pick([{}, [], null]);
      else if (Array.isArray(pos.parent)) pos.parent.splice(pos.key, 1);
      else delete pos.parent[pos.key];
      break;
    case 'addKey': {
      const target = isObj ? pos.value : (s.body && typeof s.body === 'object' && !Array.isArray(s.body) && !(s.body instanceof Raw) ? s.body : null);
      if (target) setKey(target, weirdKey(r), weird(r)); else set({ [weirdKey(r)]: weird(r) });
      break;
    }
    case 'wrapArray': set([pos.value]); break;
    case 'wrapObject': set({ [r.pick(['create', '_link', '$ref', 'field', 'increment', 'equals', 'NOT', 'data'])]: pos.value }); break;
    case 'dup': {
      const target = isObj ? pos.value : s.body;
      if (target && typeof target === 'object' && !Array.isArray(target) && !(target instanceof Raw)) {
        const keys = Object.keys(target);
        const k = keys.length ? r.pick(keys) : 'zz';
        target[DUP] = [...(target[DUP] || []), [k, r.chance(0.5) ? clone(target[k]) : weird(r)]];
      }
      break;
    }
    default: set(deepNest(r));
  }
}

const BAD_NUMBER_TOKENS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '0x1F', '01', '+1', '.5', '1.', '-', '1e', '- 1', '1_000', '\uff10', '1e+99999999999999999999'];
const GARBAGE_TAILS = ['}', ']', 'x', ',', ' {}', '\u0000', 'null', '{"a":1}', '\n\n\n', '//c', '"'];
const INVALID_UTF8 = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc3]];

/** Text-level mutations of the serialized body (Buffers in, Buffers out). */
const TEXT_OPS = {
  truncate: (r, b) => b.subarray(0, r.int(Math.max(1, b.length))),
  tail: (r, b) => Buffer.concat([b, Buffer.from(r.pick(GARBAGE_TAILS))]),
  head: (r, b) => Buffer.concat([Buffer.from(r.pick(['\ufeff', ' \n\t', 'x', ")]}'\n", '\u0000'])), b]),
  number: (r, b) => {
    const t = b.toString('latin1');
    const re = /(?<=[:[,])-?\d+(\.\d+)?([eE][+-]?\d+)?/g;
    const all = [...t.matchAll(re)];
    if (!all.length) return Buffer.concat([b, Buffer.from(r.pick(BAD_NUMBER_TOKENS))]);
    const mm = r.pick(all);
    return Buffer.concat([b.subarray(0, mm.index), Buffer.from(r.pick(BAD_NUMBER_TOKENS)), b.subarray(mm.index + mm[0].length)]);
  },
  quote: (r, b) => { const i = b.indexOf('"', r.int(b.length)); if (i < 0) return b; const c = Buffer.from(b); c[i] = 0x27; return c; },
  comment: (r, b) => { const i = r.int(b.length + 1); return Buffer.concat([b.subarray(0, i), Buffer.from('/*c*/'), b.subarray(i)]); },
  control: (r, b) => { const i = b.indexOf('"', r.int(b.length)); if (i < 0) return b; return Buffer.concat([b.subarray(0, i + 1), Buffer.from([r.pick([0x0a, 0x01, 0x09, 0x00, 0x1f, 0x7f])]), b.subarray(i + 1)]); },
  utf8: (r, b) => { const i = b.indexOf('"', r.int(b.length)); const at = i < 0 ? r.int(b.length + 1) : i + 1; return Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(INVALID_UTF8)), b.subarray(at)]); },
  escape: (r, b) => { const i = b.indexOf('"', r.int(b.length)); if (i < 0) return b; return Buffer.concat([b.subarray(0, i + 1), Buffer.from(r.pick(['\\x41', '\\u12', '\\uZZZZ', '\\', '\\ud800\\u0041', '\\udfff', '\\U0001F600', '\\0'])), b.subarray(i + 1)]); },
  replace: (r) => Buffer.from(r.pick(['', 'null', '[]', '"str"', '1', 'true', '{', '{"', '{}{}', '\ufeff{}', ' '])),
  unterminated: (r, b) => Buffer.concat([b.subarray(0, Math.max(0, b.length - 1)), Buffer.from(r.pick([',"abc', ',"a":"x', ',"a":[', ',"a":{']))]),
};

function mutateText(r, s) {
  if (s.body === undefined && r.chance(0.5)) s.body = {};
  s.textOps = [...(s.textOps || []), r.pick(Object.keys(TEXT_OPS))];
}

function mutateMethod(r, s) { s.method = r.pick(METHODS); }

function mutate(g, s, n) {
  const r = g.rng;
  for (let i = 0; i < n; i++) {
    switch (r.weighted([[s.body !== undefined ? 7 : 1, 'tree'], [2.5, 'text'], [2, 'path'], [s.query ? 2.5 : 0.6, 'query'], [0.8, 'method'], [1.2, 'header']])) {
      case 'tree': mutateTree(r, s); break;
      case 'text': mutateText(r, s); break;
      case 'path': mutatePath(r, s); s.pathMutated = true; break;
      case 'query': mutateQuery(g, s); break;
      case 'method': mutateMethod(r, s); s.methodMutated = true; break;
      default: mutateHeaders(r, s);
    }
  }
  return s;
}

/** Turn a spec into the bytes-level request FuzzConnection sends, with its rule flags. */
function build(g, s) {
  let body;
  if (s.body !== undefined || (s.textOps && s.textOps.length)) {
    body = Buffer.from(s.body === undefined ? '' : ser(s.body), 'utf8');
    for (const op of s.textOps || []) body = TEXT_OPS[op](g.rng, body);
  }
  let target = `/${s.path.join('/')}`;
  if (s.query) target += `?${s.query.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&')}`;
  if (s.absolute) target = `http://127.0.0.1${target}`;
  const req = { method: s.method, target, headers: s.headers, body, chunked: s.chunked, noContentType: s.noContentType, kind: s.kind, poisoned: s.poisoned };
  const ctl = (v) => (Array.isArray(v) ? v : [v]).some((x) => /[\x00-\x08\x0a-\x1f\x7f]/.test(x));
  req.h2oMay = !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s.method) || /[\x00-\x20\x7f]/.test(target)
    || Object.values(s.headers).some(ctl) || (body && body.length > H2O_BODY_LIMIT) || ['CONNECT', 'PRI'].includes(s.method)
    || Object.entries(s.headers).some(([k, v]) => k.toLowerCase() === 'expect' && v !== '100-continue')
    || target.length + JSON.stringify(s.headers).length > 400000;   // a head past h2o's H2O_MAX_REQLEN (8 KiB + 400 KiB)
  req.underApi = !/^\/(health|metrics)([/?]|$)/.test(target);
  return req;
}

// ---------- poison: make a write certainly invalid (part 4) ----------

/** Apply one change that no mutation can undo and no server may accept. */
function poison(g, s) {
  const r = g.rng;
  s.poisoned = true;
  const hasObjectBody = s.body && typeof s.body === 'object' && !Array.isArray(s.body) && !(s.body instanceof Raw);
  const recordPath = s.path[0] === 'api' && MODELS.includes(s.path[1]);
  const asBuilt = !s.pathMutated && !s.methodMutated;
  // writes whose Idempotency-Key is checked (reads, find included, ignore the header)
  const idemChecked = asBuilt && ['create', 'patch', 'delete', 'updateMany', 'deleteMany', 'upsert', 'transaction', 'acquire', 'renew', 'release', 'limit'].includes(s.kind);
  const choices = [];
  if (asBuilt && s.method === 'GET' && (s.kind === 'list' || s.kind === 'get')) {
    // a read made certainly invalid stays a read: it must be refused all the same
    choices.push(...(s.kind === 'list' ? ['badQueryName', 'badAfter', 'badFirst', 'badFilter', 'badSort'] : ['badReadId']));
  } else if (s.method === 'DELETE') {
    choices.push('missingId', 'unknownModel', 'badId');
    if (idemChecked) choices.push('badIdemKey');
  } else {
    if (idemChecked) choices.push('badIdemKey');
    choices.push('malformed', 'malformed', 'utf8', 'tooLarge', 'method');
    if (hasObjectBody && !(s.textOps && s.textOps.length)) choices.push('unknownKey', 'unknownKey');
    if (recordPath || s.path[1] === 'limits' || s.path[1] === 'locks') choices.push('unknownModel');
  }
  switch (r.pick(choices)) {
    case 'missingId':
      s.path = ['api', r.pick(MODELS), String(4611686018427387904n + BigInt(r.int(1000)))];
      break;
    case 'badId': s.path = ['api', r.pick(MODELS), r.pick(['0', '-1', 'abc', '1.5', '9223372036854775808', '%zz', ''])]; break;
    case 'unknownModel':
      if (s.path[1] === 'limits') s.path = ['api', 'limits', 'nosuchlimit', s.path[3] || 'k'];
      else if (s.path[1] === 'locks') s.path = ['api', 'locks', s.path[2] || 'x', 'grab'];
      else s.path = ['api', 'nosuchmodel', ...s.path.slice(2)];
      break;
    case 'unknownKey': setKey(s.body, `zz_unknown_${r.int(1000)}`, weird(r)); break;
    case 'tooLarge': s.textOps = [...(s.textOps || []), 'padLarge']; break;
    case 'method': s.method = r.pick(['PUT', 'FOO', 'OPTIONS', 'PROPFIND']); break;
    case 'utf8': s.textOps = [...(s.textOps || []), 'utf8Always']; break;
    case 'badIdemKey': s.headers['Idempotency-Key'] = r.pick(['', ' ', 'a'.repeat(256), 'k\xc3\xa9y', 'k y', 'k\ty', '\t']); break;
    case 'badQueryName': s.query.push([r.pick(['zz', 'first%00x', 'filter%00', 'after%00a', '%ff', 'sort%20', 'FIRST', 'first[]', 'x'.repeat(70)]), '1']); return s;
    case 'badAfter': s.query.push(['after', r.pick(['%ff', '%80abc', 'eyJrIjpbImlkKyJdLCJ2IjpbMl19%ff', '%c3%a9', 'A', '!', '%00', '', '%2B%2F'])]); return s;
    case 'badFirst': s.query.push(['first', r.pick(['0', '1001', '-1', 'x', '1%00', '', '1.5', '9223372036854775808', '%ff'])]); return s;
    case 'badFilter':
      s.query.push(['filter', enc(r.pick(['{"nosuch":{"equals":1}}', '{"id":{"nosuchop":1}}', '{', '{"id":{"equals":1}', `${'{"NOT":'.repeat(40)}{}${'}'.repeat(40)}`, '{"id":{"in":[null]}}']))]);
      return s;
    case 'badSort': s.query.push(['sort', enc(r.pick(['{"nosuch":"ascending"}', '{"id":"up"}', '[{"id":"ascending"},{"nosuch":"descending"}]', '"id"', '{"id":"ascending","name":"descending"}x']))]); return s;
    case 'badReadId': s.path[2] = r.pick(['0', '-1', 'abc', '1.0', '1%00', '%ff', '+1', '9223372036854775808', '18446744073709551617', '4611686018427387904']); return s;   // not '': /api/m/ is the collection
    default: s.textOps = [...(s.textOps || []), 'malformedAlways'];
  }
  if (s.method === 'GET' || s.method === 'HEAD') s.method = 'POST'; // a poisoned read stays invalid as a write
  return s;
}
TEXT_OPS.padLarge = (r, b) => Buffer.concat([b, Buffer.alloc(MAX_BODY + 1 - Math.min(b.length, MAX_BODY) + r.int(MAX_BODY * 2), 0x20)]);
TEXT_OPS.utf8Always = (r, b) => { const at = r.int(b.length + 1); return Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(INVALID_UTF8)), b.subarray(at)]); };
TEXT_OPS.malformedAlways = (r, b) => {
  for (let i = 0; i < 8; i++) {
    const t = TEXT_OPS[r.pick(['truncate', 'tail', 'quote', 'comment', 'unterminated', 'number', 'escape'])](r, b);
    if (!t.toString('latin1').trim()) continue;       // an empty body is no body: valid for some calls
    try { JSON.parse(t.toString('utf8')); } catch { return t; }
  }
  return Buffer.concat([b, Buffer.from('}x')]);
};

// ---------- running HTTP batches ----------

/** Send a batch over CONNS connections; returns the problems found (not yet added: a crash explains some). */
async function runHttp(reqs, findings, g) {
  const conns = Array.from({ length: CONNS }, () => new FuzzConnection(srv.port));
  const results = new Array(reqs.length);
  let next = 0;
  await Promise.all(conns.map(async (c) => {
    while (next < reqs.length) {
      const i = next++;
      results[i] = await c.request(reqs[i], 20000);
    }
  }));
  for (const c of conns) c.close();
  const problems = [];
  for (let i = 0; i < reqs.length; i++) {
    const req = reqs[i];
    const res = results[i];
    findings.count('http');
    if (!res.error) findings.count(`status_${res.status}`);
    const probs = answerProblems(req, res);
    if (req.poisoned && !res.error && res.status >= 200 && res.status < 300) probs.push('a certainly invalid request was accepted');
    if (probs.length) problems.push({ noAnswer: !!res.error, what: describeRequest(req), detail: `${probs.join('; ')} — answer: ${res.error || `${res.status} ${decodeBody(res.body).text.slice(0, 300)}`}` });
    if (g && !res.error && res.status < 300) learn(g, req, res);
  }
  return problems;
}

/** Add a batch's problems; when the server died in it, missing answers are the crash's, reported once by checkAlive. */
function addProblems(findings, problems, up) {
  for (const p of problems) if (up || !p.noAnswer) findings.add('http', p.what, p.detail);
}

/** Keep ids of new records and cursors from listings, so later requests use them. */
function learn(g, req, res) {
  const { json } = decodeBody(res.body);
  if (!json || typeof json !== 'object') return;
  const m = /^\/api\/([A-Za-z]+)/.exec(req.target);
  if (res.status === 201 && m && FIELDS[m[1]] && Number.isInteger(json.id)) {
    const ids = (g.F.ids[m[1]] ||= []);
    ids.push(json.id);
    if (ids.length > 40) ids.splice(0, ids.length - 40);
  }
  if (typeof json.next === 'string' && g.F.cursors.length < 50) g.F.cursors.push(json.next);
}

/**
 * After a batch: the server must answer /health. If it died, show its report,
 * replay the batch one request at a time on a fresh server to name the
 * request, and go on with a fresh server.
 */
async function checkAlive(findings, batch, what, replay = true) {
  const up = await healthy();
  // UBSan (and ASan without abort_on_error) may report and go on: read what it printed
  const fresh = srv.stderr.slice(stderrSeen);
  stderrSeen = srv.stderr.length;
  if (/runtime error:|ERROR: AddressSanitizer|WARNING: .*Sanitizer/.test(fresh)) {
    findings.add('sanitizer', what, `the server reported:\n${crashExcerpt(fresh)}`);
  }
  if (up) return true;
  const dead = srv;
  await Promise.race([dead.exited, sleep(3000)]);
  const how = `code ${dead.proc.exitCode}, signal ${dead.proc.signalCode}`;
  const excerpt = crashExcerpt(dead.stderr);
  let culprit = '(not pinned: the batch did not reproduce it alone)';
  if (alive()) { try { await dead.kill9(); } catch { /* gone */ } }
  if (replay && batch && batch.length) {
    await freshServer();
    await fixtures(`replay${Date.now() % 100000}`);
    const c = new FuzzConnection(srv.port);
    for (const req of batch) {
      const res = await c.request(req, 20000);
      if (res.error || !(await healthy())) {
        await Promise.race([srv.exited, sleep(3000)]);
        if (!alive()) {
          culprit = `${describeRequest(req, 1500)}\n   replay report:\n${crashExcerpt(srv.stderr)}`;
          break;
        }
      }
    }
    c.close();
    if (alive()) await srv.kill9();
  }
  findings.add('crash', what, `server died (${how}) during this batch; first request found to kill a fresh server alone: ${culprit}\n   report:\n${excerpt}`);
  await freshServer();
  return false;
}

function budget(part) {
  return Date.now() + TIME_MS * SHARE[part];
}

// ---------- raw sockets ----------

function garbageBytes(r, n) {
  return Buffer.from(Array.from({ length: n }, () => (r.chance(0.7) ? 32 + r.int(95) : r.int(256))));
}

const okHead = (port, method, target, extra = '') => `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}`;

/**
 * One raw-socket case: {name, chunks, reqs (well-formed requests in order, whose answers must pass the rule),
 * lenient (any answer but a 5xx may come, or none)}. `invalidOnly`: the case must change nothing.
 */
function rawCase(g, invalidOnly) {
  const r = g.rng;
  const port = srv.port;
  const validCreate = () => ser({ name: `raw-${r.int(1e9)}`, email: `raw${r.int(1e9)}@example.com` });
  const kinds = [
    'garbage', 'badline', 'badheader', 'cl-short-close', 'cl-bad', 'te-bad', 'over-json', 'over-h2o', 'huge-cl',
    'pipeline', 'pipeline-garbage', 'bytewise', 'http10', 'h2', 'expect', 'lf-only', 'many-headers', 'upgrade-bad',
  ];
  const kind = r.pick(kinds);
  const c = { name: kind, chunks: [], reqs: [], lenient: true };
  switch (kind) {
    case 'garbage': c.chunks.push(garbageBytes(r, r.pick([1, 16, 200, 5000]))); break;
    case 'badline': {
      c.chunks.push(Buffer.from(r.pick([
        'GET\r\n\r\n', 'GET /api/customer HTTP/9.9\r\n\r\n', 'GET /api/customer HTTP/1.1 extra\r\n\r\n',
        'GET  /api/customer HTTP/1.1\r\n\r\n', '/api/customer HTTP/1.1\r\n\r\n', 'GET /api/customer\r\n\r\n',
        `GET /api/cust\x00omer HTTP/1.1\r\nHost: localhost\r\n\r\n`, `GET /api/customer HTTP/1.1\rHost: localhost\r\n\r\n`,
        'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: localhost\r\n\r\n',
        `GET ${'/x'.repeat(300000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 'G\xffT /api/customer HTTP/1.1\r\n\r\n',
      ]), 'latin1'));
      break;
    }
    case 'badheader': {
      const h = r.pick(['Host\r\n', 'Bad Header: x\r\n', 'X-A: a\x00b\r\n', 'X-A: a\r\n b\r\n', ': novalue\r\n',
        `X-Long: ${'v'.repeat(r.pick([10000, 500000]))}\r\n`, 'Idempotency-Key: a\x01b\r\n', 'Content-Type: application/json\x7f\r\n']);
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer', h)}Content-Length: ${invalidOnly ? 2 : 0}\r\n\r\n${invalidOnly ? '{}' : ''}`, 'latin1'));
      break;
    }
    case 'cl-short-close': {   // Content-Length larger than the body, then close (a complete valid create in it)
      const body = validCreate();
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer')}Content-Type: application/json\r\nContent-Length: ${body.length + r.pick([1, 10, 100000])}\r\n\r\n${body}`));
      c.chunks.push(r.pick([0, 50]), r.pick(['end', 'destroy']));
      break;
    }
    case 'cl-bad': {
      const cl = r.pick(['-1', 'abc', '1, 2', '0x10', '18446744073709551617', ' 5', '5 ', '+5']);
      const two = r.chance(0.3) ? 'Content-Length: 2\r\n' : '';
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer')}Content-Type: application/json\r\nContent-Length: ${cl}\r\n${two}\r\n{}`));
      break;
    }
    case 'te-bad': {
      const body = invalidOnly ? '{"zz":1}' : validCreate();
      const variants = [
        `Transfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`,
        `Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n${body}\r\n0\r\n\r\n`,
        `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)};ext="x\r\n${body}\r\n0\r\n\r\n`,
        `Transfer-Encoding: chunked\r\n\r\n${(body.length + 5).toString(16)}\r\n${body}\r\n`,   // a chunk cut short, then close
        `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n`,         // no last chunk, then close
        `Transfer-Encoding: gzip\r\n\r\n${body}`,
        `Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${body.length.toString(16)}\r\n${body}\r\nzz\r\n`,
        `Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n${body.length.toString(16)}\r\n${body}\r\nzz`,
      ];
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer')}Content-Type: application/json\r\n${r.pick(variants)}`));
      c.chunks.push(50, 'end');
      break;
    }
    case 'over-json': {      // just over --max-body: Tally's JSON 413
      const pad = Buffer.alloc(MAX_BODY + 1 + r.int(MAX_BODY * 2), 0x20);
      const body = Buffer.concat([Buffer.from(validCreate()), pad]);
      const req = { method: 'POST', target: '/api/customer', headers: {}, body, chunked: r.chance(0.3), underApi: true };
      c.chunks.push(requestBytes(port, req));
      c.reqs.push(req);
      c.lenient = false;
      c.expect413 = true;
      break;
    }
    case 'over-h2o': {       // over h2o's own limit: its plain-text 413, or the connection closed
      const body = Buffer.concat([Buffer.from(validCreate()), Buffer.alloc(H2O_BODY_LIMIT + 1, 0x20)]);
      c.chunks.push(requestBytes(port, { method: 'POST', target: '/api/customer', headers: {}, body, chunked: r.chance(0.3) }));
      break;
    }
    case 'huge-cl': {
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer')}Content-Type: application/json\r\nContent-Length: ${r.pick(['1000000000000000', '9223372036854775807', String(H2O_BODY_LIMIT - 10)])}\r\n\r\n${validCreate()}`));
      c.chunks.push(30, r.pick(['end', 'destroy']));
      break;
    }
    case 'pipeline': case 'pipeline-garbage': {
      const n = r.range(2, 12);
      const bufs = [];
      for (let i = 0; i < n; i++) {
        let req;
        if (r.chance(0.2)) req = { method: 'GET', target: '/health', headers: {}, underApi: false };
        else {
          const s = mutate(g, validSpec(g), r.range(0, 2));
          if (invalidOnly) poison(g, s);
          req = build(g, s);
          if (req.h2oMay || (req.body && req.body.length > MAX_BODY)) { i--; continue; }   // h2o's answers, or 413s that close
          req.underApi = true;
        }
        c.reqs.push(req);
        bufs.push(requestBytes(port, req));
      }
      if (kind === 'pipeline-garbage') {
        const at = r.range(1, bufs.length);
        // The answers after the garbage cannot be matched to requests (the garbage joins the next request's
        // line), so the parser cannot tell which answer a HEAD and carry no body (a HEAD's answer still
        // names the length a GET's would have): the requests after it go as GET instead.
        for (let i = at; i < c.reqs.length; i++) {
          if (c.reqs[i].method !== 'HEAD') continue;
          c.reqs[i] = { ...c.reqs[i], method: 'GET' };
          bufs[i] = requestBytes(port, c.reqs[i]);
        }
        bufs.splice(at, 0, garbageBytes(r, r.pick([3, 50])));
        c.reqs = c.reqs.slice(0, at);   // answers after the garbage may not come
        c.partialOk = true;
      }
      c.chunks.push(Buffer.concat(bufs));
      c.lenient = false;
      break;
    }
    case 'bytewise': {
      let req;
      for (let k = 0; k < 50; k++) {
        const s = mutate(g, validSpec(g), r.range(0, 1));
        if (invalidOnly) poison(g, s);
        req = build(g, s);
        if (!req.body || req.body.length <= 2000) break;
      }
      const bytes = requestBytes(port, req);
      const step = r.pick([1, 7, 64]);
      for (let i = 0; i < bytes.length && i < 3000; i += step) c.chunks.push(bytes.subarray(i, i + step), ...(r.chance(0.1) ? [2] : []));
      if (bytes.length <= 3000 && !req.h2oMay) { c.reqs.push({ ...req, underApi: true }); c.lenient = false; }
      break;
    }
    case 'http10': {
      const body = invalidOnly ? '{"zz":1}' : validCreate();
      c.chunks.push(Buffer.from(`POST /api/customer HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${r.chance(0.5) ? 'Connection: keep-alive\r\n' : ''}\r\n${body}`));
      c.reqs.push({ method: 'POST', target: '/api/customer', underApi: true });
      c.lenient = false;
      break;
    }
    case 'h2': {
      c.chunks.push(Buffer.concat([Buffer.from(r.pick([
        'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
        `GET /api/customer HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: ${r.pick(['AAMAAABkAAQAAP__', '!!!', ''])}\r\n\r\n`,
      ]), 'latin1'), garbageBytes(r, r.pick([0, 9, 100, 2000]))]));
      c.allowBad = true;
      break;
    }
    case 'expect': {
      const body = invalidOnly ? '{"zz":1}' : validCreate();
      c.chunks.push(Buffer.from(`${okHead(port, 'POST', '/api/customer')}Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`), 30, Buffer.from(body));
      c.reqs.push({ method: 'POST', target: '/api/customer', underApi: true });
      c.lenient = false;
      break;
    }
    case 'lf-only': {
      const body = invalidOnly ? '{"zz":1}' : validCreate();
      c.chunks.push(Buffer.from(`POST /api/customer HTTP/1.1\nHost: localhost\nContent-Type: application/json\nContent-Length: ${body.length}\n\n${body}`));
      break;
    }
    case 'many-headers': {
      let h = '';
      for (let i = 0; i < r.pick([99, 101, 1000]); i++) h += `X-H${i}: ${i}\r\n`;
      c.chunks.push(Buffer.from(`${okHead(port, 'GET', '/api/customer', h)}\r\n`));
      break;
    }
    default: {             // a WebSocket handshake gone wrong: plain HTTP answers from Tally
      const h = r.pick(['Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n',
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 8\r\n',
        'Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n']);
      c.chunks.push(Buffer.from(`${okHead(port, r.pick(['GET', 'POST']), r.pick(['/api/ws', '/api/ws/', '/api/ws?x=1', '/api/customer']), h)}\r\n`));
      c.allowUpgrade = true;
    }
  }
  return c;
}

async function runRawCase(c, findings) {
  const out = await rawExchange(srv.port, c.chunks, { waitMs: 300, maxMs: 10000, heads: c.reqs.map((q) => q.method === 'HEAD') });
  findings.count('raw');
  const what = `${c.name}: ${JSON.stringify(Buffer.concat(c.chunks.filter(Buffer.isBuffer)).subarray(0, 400).toString('latin1'))}`;
  if (out.bad && !c.allowBad) findings.add('raw', what, `unparsable answer: ${out.bad}`);
  const answers = out.answers;
  for (let i = 0; i < answers.length; i++) {
    const a = answers[i];
    const req = c.reqs[i];
    if (a.status === 101 && (c.allowUpgrade || c.allowBad)) break;
    if (req && !c.lenient) {
      const probs = answerProblems(req, a);
      if (c.expect413 && a.status !== 413) probs.push(`expected 413 for a body over --max-body, got ${a.status}`);
      if (probs.length) findings.add('raw', `${what} — request #${i}: ${describeRequest(req, 200)}`, `${probs.join('; ')} — answer: ${a.status} ${decodeBody(a.body).text.slice(0, 200)}`);
    } else {
      const ct = a.headers['content-type'] || '';
      if (a.status >= 500 && a.status !== 503) findings.add('raw', what, `status ${a.status}: ${decodeBody(a.body).text.slice(0, 200)}`);
      else if (/json/.test(ct)) {
        const probs = answerProblems({ method: 'POST', underApi: true }, a);
        if (probs.length) findings.add('raw', what, `${probs.join('; ')} — answer: ${a.status} ${decodeBody(a.body).text.slice(0, 200)}`);
      } else if (![400, 413, 414, 431, 101].includes(a.status)) {
        findings.add('raw', what, `non-JSON answer ${a.status} ${ct}: ${decodeBody(a.body).text.slice(0, 200)}`);
      }
    }
  }
  const closing = answers.some((a) => /close/i.test(a.headers.connection || ''));   // h2o closes after e.g. "Connection: foo"
  if (!c.lenient && !c.partialOk && !closing && answers.length < c.reqs.length) {
    findings.add('raw', what, `${c.reqs.length} well-formed request(s) but ${answers.length} answer(s)${out.bad ? ` (${out.bad})` : ''}`);
  }
}

// ---------- raw WebSocket frames ----------

function wsFrame(r, { fin = 1, rsv = 0, opcode = 1, mask = true, payload = Buffer.alloc(0), len }) {
  const n = len ?? payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 255);
  else { head.push(m | 127); const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); head.push(...b); }
  let p = payload;
  if (mask) {
    const key = Buffer.from([r.int(256), r.int(256), r.int(256), r.int(256)]);
    head.push(...key);
    p = Buffer.from(payload.map((x, i) => x ^ key[i % 4]));
  }
  return Buffer.concat([Buffer.from(head), p]);
}

function wsRawCase(g) {
  const r = g.rng;
  const hs = Buffer.from(`GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  const msg = Buffer.from('{"id":1,"op":"step","step":{"find":"customer","first":1}}');
  const frames = [
    () => garbageBytes(r, r.pick([1, 2, 14, 300])),
    () => wsFrame(r, { mask: false, payload: msg }),
    () => wsFrame(r, { opcode: r.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xf]), payload: msg }),
    () => wsFrame(r, { rsv: r.range(1, 7), payload: msg }),
    () => wsFrame(r, { opcode: 9, payload: Buffer.alloc(126, 0x61) }),
    () => wsFrame(r, { opcode: 9, fin: 0, payload: Buffer.from('x') }),
    () => wsFrame(r, { opcode: 0, payload: msg }),
    () => Buffer.concat([wsFrame(r, { fin: 0, payload: msg.subarray(0, 10) }), wsFrame(r, { payload: msg.subarray(10) })]),
    () => wsFrame(r, { payload: Buffer.alloc(0), len: r.pick([2 ** 62, 2 ** 53, 2 ** 31, 0x7fffffff]) }),
    () => Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]),      // a 64-bit length with the top bit set
    () => wsFrame(r, { opcode: 8, payload: Buffer.from([r.int(256)]) }),
    () => wsFrame(r, { opcode: 8, payload: Buffer.from([0x03, 0xe7]) }),
    () => wsFrame(r, { opcode: 8, payload: Buffer.from([0x03, 0xe8, 0xff, 0xfe]) }),
    () => Buffer.concat([wsFrame(r, { fin: 0, payload: Buffer.from([0xe2, 0x82]) }), wsFrame(r, { opcode: 0, payload: Buffer.from([0x28]) })]),
    () => Buffer.concat([...Array.from({ length: 500 }, (_, i) => wsFrame(r, { fin: 0, opcode: i === 0 ? 1 : 0, payload: msg.subarray(i % msg.length, (i % msg.length) + 1) })), wsFrame(r, { opcode: 0, payload: Buffer.alloc(0) })]),
    () => wsFrame(r, { payload: msg }),
    () => wsFrame(r, { opcode: 2, payload: garbageBytes(r, 100) }),
  ];
  const chunks = [hs, 30];
  const count = r.range(1, 4);
  for (let i = 0; i < count; i++) chunks.push(r.pick(frames)());
  if (r.chance(0.5)) chunks.push(r.pick(['end', 'destroy']));
  return chunks;
}

// ---------- WebSocket sessions ----------

/**
 * One scripted session. In 'invalid' mode nothing it sends may change data:
 * writes only inside a transaction that is never committed, lone steps only
 * reads or poisoned steps. Returns the number of messages sent.
 */
async function wsSession(g, mode, findings) {
  const r = g.rng;
  let c;
  try { c = await WsClient.open(srv); } catch (e) { findings.add('ws', 'open /api/ws', `cannot connect: ${e.message}`); return 0; }
  const log = [];
  let sent = 0;
  let open = false;
  let aborted = false;   // the server rolled the transaction back; the client has not ended it yet
  let openedAt = 0;
  let window = 0;      // how long after begin writes may still be sent (0: unknown timeout, no writes)
  let nextId = 1;
  const where = () => `ws session (${log.length} messages): ${log.slice(-6).join(' | ')}`;
  const short = (t) => (t.length > 200 ? `${t.slice(0, 200)}…(${t.length} bytes)` : t);

  async function call(payload, { expectId, binary = false, timeout = 15000 } = {}) {
    const text = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : ser(payload);
    log.push(Buffer.isBuffer(text) ? `<${binary ? 'binary' : 'text'} ${text.length} bytes>` : short(text));
    sent++;
    findings.count('ws_messages');
    if (c.closed) return null;
    try { c.ws.send(text, { binary }); } catch { return null; }
    if (binary) return null;
    let ans;
    try {
      ans = await c.next((m) => !(m && typeof m === 'object' && 'event' in m && !('id' in m)), timeout);
    } catch (e) {
      if (!c.closed) findings.add('ws', where(), `no answer: ${e.message.slice(0, 200)}`);
      return null;
    }
    const probs = wsAnswerProblems(ans, expectId);
    if (probs.length) findings.add('ws', where(), `${probs.join('; ')} — answer: ${short(JSON.stringify(ans))}`);
    if (ans && ans.rolledBack === true) { open = false; aborted = true; }   // a failing step ended the transaction
    // until the client ends an aborted transaction (rollback, commit or begin), calls meant for it are refused
    if (ans && typeof payload === 'object' && !Buffer.isBuffer(payload) && ['begin', 'commit', 'rollback'].includes(payload.op)
        && ans.ok === true) aborted = false;   // a refused call (malformed envelope) ends nothing
    if (ans && typeof payload === 'object' && payload.op === 'commit' && ans.rolledBack) aborted = false;
    return ans;
  }
  const msg = (o) => ({ id: nextId++, ...o });
  const callMsg = async (o, opts = {}) => { const m = msg(o); return call(m, { expectId: hasRaw(m) ? undefined : m.id, ...opts }); };
  const rolledBackEvents = () => c.all.filter((m) => m && m.event === 'rolledBack').length;
  let rbAtBegin = 0;
  // the server may have ended the transaction on its own (timeout): then a begin is fine again
  const serverEnded = () => rolledBackEvents() > rbAtBegin || Date.now() - openedAt > 1500;
  const freshTxn = () => open && Date.now() - openedAt < window && rolledBackEvents() === rbAtBegin;
  const poisonedStep = () => {
    const st = stepFor(g, [], 0);
    if (r.chance(0.5)) setKey(st, 'zz_unknown', 1);
    else { const k = Object.keys(st).find((x) => MODELS.includes(st[x])) || 'get'; st[k] = 'nosuchmodel'; }
    return st;
  };
  const readStep = () => {
    const m = r.pick(MODELS);
    return r.chance(0.5) ? { find: m, first: r.range(1, 5), filter: filterFor(g, m) } : { get: m, id: idOf(g, m) };
  };
  const probe = () => callMsg({ op: 'step', step: { find: 'customer', first: 1 } });

  const actions = r.range(3, 14);
  try {
    for (let a = 0; a < actions && !c.closed; a++) {
      const act = r.weighted([[3, 'garbage'], [1, 'binary'], [2, 'outOfTurn'], [3, 'begin'], [5, 'step'], [2, 'mutatedStep'],
        [1.5, 'end'], [1, 'together'], [0.6, 'huge'], [0.6, 'deep'], [0.3, 'badUtf8'], [0.5, 'timeout'], [0.7, 'extraKey']]);
      switch (act) {
        case 'garbage': {
          const t = r.pick([
            () => garbageBytes(r, r.pick([1, 10, 300])).toString('latin1'),
            () => ser(weird(r)),
            () => '',
            () => '{"id": 1, "op": "begin"',
            // ids jansson cannot read: the whole message is refused, whatever its op
            () => `{"id": ${r.pick(['1e400', '9223372036854775808', '"\\ud800"'])}, "op": "${r.pick(['begin', 'commit', 'rollback', 'step'])}"}`,
            () => `{"id": ${r.pick(['{"a":[1]}', '[]', 'null', '-0', '"s"', '1.5'])}, "op": "${r.pick(['x', '', 'BEGIN'])}"}`,
            () => ser({ id: nextId++, op: weird(r) }),
            () => ser({ id: nextId++, op: 'step', step: weird(r) }),
            () => ser({ id: nextId++, op: 'step' }),
            () => ser({ op: 'x' }),
            () => { const o = msg({ op: 'step', step: readStep() }); o[DUP] = [['op', 'nosuchop']]; return ser(o); },
          ])();
          const ans = await call(t);
          if (ans && ans.ok === true && mode === 'invalid') findings.add('ws', where(), `garbage was accepted — answer: ${short(JSON.stringify(ans))}`);
          break;
        }
        case 'binary': await call(garbageBytes(r, r.pick([0, 10, 5000])), { binary: true }); await probe(); break;
        case 'outOfTurn': {
          if (open) {
            const sure = !serverEnded();
            const ans = await callMsg({ op: 'begin' });
            if (ans && ans.ok === true) { openedAt = Date.now(); window = 0; rbAtBegin = rolledBackEvents(); }
            if (sure && !serverEnded() && ans && !(ans.ok === false && ans.error?.code === 'CONFLICT')) findings.add('ws', where(), `begin inside a transaction: expected 409 CONFLICT — answer: ${short(JSON.stringify(ans))}`);
          } else {
            const op = r.pick(['commit', 'rollback']);
            const wasAborted = aborted;
            const ans = await callMsg({ op });
            if (wasAborted) {   // ending a transaction the server rolled back: rollback is ok, commit is refused
              // (ws.test.mjs checks this exactly; here the script's view of the state may lag, so
              // "no open transaction" is accepted too — what must never happen is a commit that applies)
              const good = op === 'rollback' ? ans?.ok === true : ans?.ok === false && ans.rolledBack === true;
              const noTxn = ans?.ok === false && ans.error?.code === 'CONFLICT';
              if (ans && !good && !noTxn) findings.add('ws', where(), `${op} of an aborted transaction: unexpected answer — ${short(JSON.stringify(ans))}`);
            } else if (ans && op === 'rollback' && ans.ok === true) {
              // the script's idea of the state can lag the server's (calls sent together, a refused
              // envelope): a rollback that finds something to end is harmless and answers ok
            } else if (ans && !(ans.ok === false && ans.error?.code === 'CONFLICT')) {
              findings.add('ws', where(), `${op} without begin: expected 409 CONFLICT — answer: ${short(JSON.stringify(ans))}`);
            }
          }
          break;
        }
        case 'begin': {
          if (open) break;
          const t = r.pick([undefined, 100, 1500, 2000, 0, -1, 2001, 1e308, 'x', raw('9223372036854775808'), {}, 1.5]);
          const ans = await callMsg(t === undefined ? { op: 'begin' } : { op: 'begin', timeoutMs: t });
          if (ans && ans.ok === true) { open = true; openedAt = Date.now(); rbAtBegin = rolledBackEvents(); window = [undefined, 1500, 2000].includes(t) ? 500 : 0; }
          break;
        }
        case 'step': {
          let st;
          if (mode === 'mixed' || freshTxn()) st = stepFor(g, [], 0);
          else st = r.chance(0.5) ? readStep() : poisonedStep();
          const ans = await callMsg({ op: 'step', step: st });
          if (ans && ans.rolledBack) open = false;
          if (ans && ans.ok === false && open && !ans.rolledBack && ans.error?.code !== 'CONFLICT') {
            findings.add('ws', where(), `a failed step inside a transaction without "rolledBack" — answer: ${short(JSON.stringify(ans))}`);
          }
          break;
        }
        case 'mutatedStep': {
          const s = { body: { id: nextId++, op: 'step', step: stepFor(g, [], 0) } };
          for (let i = r.range(1, 3); i > 0; i--) mutateTree(r, s);
          if (mode === 'invalid' && !freshTxn()) {
            if (s.body && typeof s.body === 'object' && s.body.step && typeof s.body.step === 'object' && !Array.isArray(s.body.step) && !(s.body.step instanceof Raw)) setKey(s.body.step, 'zz_unknown', 1);
            else break;
          }
          if (mode === 'invalid' && s.body && typeof s.body === 'object') delete s.body[DUP];
          if (/"(begin|commit|rollback)"/.test(ser(s.body))) break;   // would change the state this script tracks
          const ans = await call(ser(s.body));
          if (ans && ans.rolledBack) open = false;
          break;
        }
        case 'end': {
          const how = mode === 'invalid' || !open ? r.pick(['rollback', 'close', 'terminate']) : r.pick(['commit', 'rollback', 'close', 'terminate']);
          if (how === 'close') { await c.close(); break; }
          if (how === 'terminate') { await c.terminate(); break; }
          await callMsg({ op: how });
          open = false;
          break;
        }
        case 'together': {   // several calls in flight at once: one transaction takes one call at a time
          const steps = Array.from({ length: r.range(2, 4) }, () => ({ op: 'step', step: mode === 'mixed' || freshTxn() ? stepFor(g, [], 0) : readStep() }));
          if (open) steps.push({ op: mode === 'mixed' && r.chance(0.5) ? 'commit' : 'rollback' });
          const msgs = steps.map(msg);
          for (const m of msgs) { log.push(short(ser(m))); sent++; findings.count('ws_messages'); }
          c.sendTogether(msgs);
          for (const m of msgs) {
            let ans;
            try { ans = await c.next((x) => x && x.id === m.id, 15000); } catch (e) { if (!c.closed) findings.add('ws', where(), `no answer to id ${m.id}: ${e.message.slice(0, 200)}`); break; }
            const probs = wsAnswerProblems(ans, m.id);
            if (probs.length) findings.add('ws', where(), `${probs.join('; ')} — answer: ${short(JSON.stringify(ans))}`);
            if (ans && ans.rolledBack === true) open = false;
          }
          // the last one (commit/rollback) may have been refused as a call out of turn: the transaction may still be open
          if (open) { await callMsg({ op: 'rollback' }); open = false; }
          break;
        }
        case 'huge': {
          const size = r.pick([MAX_BODY + 100, 1 << 20, 4 << 20]);
          const t = r.pick([
            () => ser(msg({ op: 'step', step: { create: 'kitchen', data: { s: 'x'.repeat(size) } } })),
            () => ser(msg({ op: 'step', step: { find: 'customer', filter: { name: { in: Array.from({ length: Math.max(10001, Math.floor(size / 8)) }, (_, i) => `n${i}`) } } } })),
            () => 'x'.repeat(size),
          ])();
          const ans = await call(t, { timeout: 30000 });
          if (ans && ans.ok === true) findings.add('ws', where(), `a huge invalid message was accepted — answer: ${short(JSON.stringify(ans))}`);
          break;
        }
        case 'deep': {
          const d = r.pick([2049, 50000, 1000000]);
          const t = r.pick([
            () => `{"id":${nextId++},"op":"step","step":{"create":"kitchen","data":{"j":${'['.repeat(d)}${']'.repeat(d)}}}}`,
            () => `{"id":${nextId++},"op":"step","step":{"find":"customer","filter":${'{"NOT":'.repeat(d)}{}${'}'.repeat(d)}}}`,
            () => '['.repeat(d),
          ])();
          const ans = await call(t, { timeout: 30000 });
          if (ans && ans.ok === true) findings.add('ws', where(), `a message nested ${d} deep was accepted — answer: ${short(JSON.stringify(ans))}`);
          break;
        }
        case 'extraKey': {   // an envelope with a key the protocol does not have: refused, as every HTTP body is
          const key = r.pick(['pad', 'zz', 'stpe', 'Op', 'timeoutMS', 'data']);
          const val = r.chance(0.2) ? 'p'.repeat(r.pick([MAX_BODY + 100, 1 << 20])) : 1;
          const m = r.chance(0.7) || open ? msg({ op: 'step', step: readStep() }) : msg({ op: 'begin' });
          setKey(m, key, val);
          const ans = await call(m, { expectId: m.id, timeout: 30000 });
          if (ans && ans.ok === true) {
            findings.add('ws', where(), `a message with a key the protocol does not have was accepted (HTTP bodies refuse unknown keys with 400) — answer: ${short(JSON.stringify(ans))}`);
            if (m.op === 'begin') { open = true; openedAt = Date.now(); rbAtBegin = rolledBackEvents(); window = 0; }
          }
          break;
        }
        case 'badUtf8': {
          await call(Buffer.concat([Buffer.from('{"id":1,"op":"'), Buffer.from(r.pick(INVALID_UTF8)), Buffer.from('"}')]), { binary: false, timeout: 3000 });
          break;     // wslay closes with 1007: no answer expected
        }
        default: {   // timeout: the server rolls back on its own, a commit after it must fail
          if (open) break;
          const b = await callMsg({ op: 'begin', timeoutMs: 300 });
          if (!b || b.ok !== true) break;
          rbAtBegin = rolledBackEvents();
          const t0 = Date.now();
          // a write only while the transaction is surely open (in invalid mode it must never run on its own)
          if (mode === 'mixed' || Date.now() - t0 < 50) await callMsg({ op: 'step', step: stepFor(g, [], 0) });
          await sleep(800);
          const ans = await callMsg({ op: 'commit' });
          if (ans && ans.ok !== false) findings.add('ws', where(), `commit 800 ms after a 300 ms transaction timeout succeeded — answer: ${short(JSON.stringify(ans))}`);
          break;
        }
      }
    }
    if (!c.closed && r.chance(0.5)) await probe();
  } finally {
    for (const m of c.all) {
      if (m && typeof m === 'object' && 'event' in m && !('id' in m)) {
        if (m.event !== 'rolledBack' || typeof m.reason !== 'string') findings.add('ws', where(), `unexpected event — answer: ${short(JSON.stringify(m))}`);
      }
    }
    if (mode === 'invalid' || r.chance(0.5)) await c.terminate(); else await c.close();
  }
  return sent;
}

// ---------- snapshot ----------

async function snapshot(F) {
  const api = srv.api;
  const models = {};
  for (const m of MODELS) {
    const rows = [];
    let after = null;
    for (let i = 0; i < 1000; i++) {
      const r = await api('GET', `/api/${m}?first=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      assert.equal(r.status, 200, `snapshot ${m}: ${r.status} ${r.text}`);
      rows.push(...r.body.records);
      if (r.body.next === null) break;
      after = r.body.next;
    }
    models[m] = rows;
  }
  const l = await api('GET', '/api/locks');
  assert.equal(l.status, 200, `snapshot locks: ${l.status} ${l.text}`);
  const p = await api('POST', `/api/limits/slow/${F.limitKey}`, {});
  assert.equal(p.status, 200, `limit probe: ${p.status} ${p.text}`);
  return { models, locks: l.body.locks, remaining: p.body.remaining, at: Date.now() };
}

function diffSnapshots(a, b) {
  const out = [];
  for (const m of MODELS) {
    const A = new Map(a.models[m].map((x) => [x.id, JSON.stringify(x)]));
    const B = new Map(b.models[m].map((x) => [x.id, JSON.stringify(x)]));
    for (const [id, x] of B) if (!A.has(id)) out.push(`${m} ${id} appeared: ${x.slice(0, 300)}`);
    for (const [id, x] of A) {
      if (!B.has(id)) out.push(`${m} ${id} disappeared: ${x.slice(0, 300)}`);
      else if (B.get(id) !== x) out.push(`${m} ${id} changed:\n     before ${x.slice(0, 300)}\n     after  ${B.get(id).slice(0, 300)}`);
    }
  }
  const horizon = b.at + 10000;
  const lasting = (s) => JSON.stringify(s.locks.filter((l) => Date.parse(l.expiresAt) > horizon).sort((x, y) => (x.name < y.name ? -1 : 1)));
  if (lasting(a) !== lasting(b)) out.push(`locks changed:\n     before ${lasting(a)}\n     after  ${lasting(b)}`);
  if (b.remaining !== a.remaining - 1) out.push(`rate-limit key: remaining went ${a.remaining} -> ${b.remaining}; only the probe itself (-1) should count`);
  return out;
}

// ---------- the tests ----------

test(`robustness 1: mutated requests for every call get JSON answers with documented codes (seed ${SEED})`, { timeout: TIME_MS * 3 + 60000 }, async (t) => {
  const findings = new Findings('mixed HTTP');
  await freshServer();
  const rng = makeRng(SEED ^ 0x1111);
  const g = { rng, F: await fixtures(`m${SEED}`) };
  const deadline = budget('mixed');
  let n = 0;
  while (n < LIMIT.mixed && Date.now() < deadline) {
    const batch = [];
    for (let i = 0; i < BATCH; i++) {
      const s = validSpec(g);
      mutate(g, s, rng.weighted([[1.5, 0], [4, 1], [3, 2], [1.5, 3]]));
      batch.push(build(g, s));
    }
    n += batch.length;
    const problems = await runHttp(batch, findings, g);
    const up = await checkAlive(findings, batch, `batch ending at request ${n}`);
    addProblems(findings, problems, up);
    if (!up) g.F = await fixtures(`m${SEED}-${n}`);
  }
  t.diagnostic(findings.summary());
  assert.equal(findings.list.length, 0, findings.report());
});

test(`robustness 2: raw-socket garbage, short bodies, oversized bodies and pipelining (seed ${SEED})`, { timeout: TIME_MS * 3 + 60000 }, async (t) => {
  const findings = new Findings('raw sockets');
  if (!(await healthy())) await freshServer();
  const rng = makeRng(SEED ^ 0x2222);
  const g = { rng, F: await fixtures(`r${SEED}`) };
  const deadline = budget('raw');
  let n = 0;
  while (n < LIMIT.raw && Date.now() < deadline) {
    const cases = Array.from({ length: 8 }, () => rawCase(g, false));
    await Promise.all(cases.map((c) => runRawCase(c, findings)));
    n += cases.length;
    const reqs = cases.flatMap((c) => c.reqs).filter((x) => x.target);
    if (!(await checkAlive(findings, reqs, `raw cases ${cases.map((c) => c.name).join(', ')}`))) g.F = await fixtures(`r${SEED}-${n}`);
  }
  t.diagnostic(findings.summary());
  assert.equal(findings.list.length, 0, findings.report());
});

test(`robustness 3: WebSocket garbage, huge and nested messages, calls out of turn, drops mid-transaction (seed ${SEED})`, { timeout: TIME_MS * 3 + 60000 }, async (t) => {
  const findings = new Findings('WebSocket');
  if (!(await healthy())) await freshServer();
  const rng = makeRng(SEED ^ 0x3333);
  const g = { rng, F: await fixtures(`w${SEED}`) };
  const deadline = budget('ws');
  let n = 0;
  while (n < LIMIT.ws && Date.now() < deadline) {
    if (rng.chance(0.25)) {
      const chunks = wsRawCase(g);
      await rawExchange(srv.port, chunks, { waitMs: 200, maxMs: 5000 });
      findings.count('ws_raw');
      n++;
      if (!(await checkAlive(findings, null, `raw WebSocket frames ${JSON.stringify(Buffer.concat(chunks.filter(Buffer.isBuffer)).subarray(0, 600).toString('latin1'))}`))) g.F = await fixtures(`w${SEED}-${n}`);
      continue;
    }
    const pair = [rng.fork(), rng.fork()];
    await Promise.all(pair.map((r2) => wsSession({ rng: r2, F: g.F }, 'mixed', findings)));
    findings.count('ws_sessions', 2);
    n += 2;
    if (!(await checkAlive(findings, null, 'WebSocket sessions'))) g.F = await fixtures(`w${SEED}-${n}`);
  }
  t.diagnostic(findings.summary());
  assert.equal(findings.list.length, 0, findings.report());
});

test(`robustness 4: a run of only invalid requests changes nothing (seed ${SEED})`, { timeout: TIME_MS * 3 + 60000 }, async (t) => {
  const findings = new Findings('invalid only');
  if (!(await healthy())) await freshServer();
  const rng = makeRng(SEED ^ 0x4444);
  const g = { rng, F: await fixtures(`i${SEED}`) };
  let before = await snapshot(g.F);
  const deadline = budget('invalid');
  let n = 0;
  while (n < LIMIT.invalid && Date.now() < deadline) {
    const what = rng.weighted([[6, 'http'], [1.5, 'raw'], [1.5, 'ws'], [0.5, 'wsraw']]);
    let ok = true;
    if (what === 'http') {
      const batch = [];
      for (let i = 0; i < BATCH; i++) {
        const s = validSpec(g);
        mutate(g, s, rng.weighted([[2, 0], [4, 1], [3, 2]]));
        batch.push(build(g, poison(g, s)));
      }
      n += batch.length;
      const problems = await runHttp(batch, findings, null);
      ok = await checkAlive(findings, batch, `invalid batch ending at request ${n}`);
      addProblems(findings, problems, ok);
    } else if (what === 'raw') {
      const cases = Array.from({ length: 6 }, () => rawCase(g, true));
      await Promise.all(cases.map((c) => runRawCase(c, findings)));
      n += cases.length;
      ok = await checkAlive(findings, cases.flatMap((c) => c.reqs).filter((x) => x.target), `raw cases ${cases.map((c) => c.name).join(', ')}`);
    } else if (what === 'ws') {
      n += await wsSession({ rng: rng.fork(), F: g.F }, 'invalid', findings);
      findings.count('ws_sessions');
      ok = await checkAlive(findings, null, 'WebSocket session (invalid)');
    } else {
      const chunks = wsRawCase(g);
      await rawExchange(srv.port, chunks, { waitMs: 200, maxMs: 5000 });
      findings.count('ws_raw');
      n++;
      ok = await checkAlive(findings, null, `raw WebSocket frames ${JSON.stringify(Buffer.concat(chunks.filter(Buffer.isBuffer)).subarray(0, 600).toString('latin1'))}`);
    }
    if (!ok) {
      // a crash is reported; go on with a fresh server, compared from a fresh snapshot
      g.F = await fixtures(`i${SEED}-${n}`);
      before = await snapshot(g.F);
    }
  }
  // a transaction dropped at the very end is rolled back at once; give the writer a moment anyway
  await sleep(100);
  const afterSnap = await snapshot(g.F);
  for (const d of diffSnapshots(before, afterSnap)) findings.add('changed', 'the run of invalid requests', d);
  t.diagnostic(findings.summary());
  assert.equal(findings.list.length, 0, findings.report());
});
