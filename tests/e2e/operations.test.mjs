// Operations (README "Logs and metrics"): one log line per HTTP request and
// per WebSocket upgrade on stderr, in text (key=value) or JSON, filtered by
// --log-level, never carrying a token or a query string; the start-up line;
// /metrics counters and histograms moving by what was done, in valid
// Prometheus text; `tally --version` and `tally serve --help`.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer, stopAll, writeSchema, tempDir, runTally, BACKEND, ROOT, RFC3339_MS_UTC, sleep,
} from './lib/server.mjs';
import { createKey, withToken, within, openWs } from './lib/auth.mjs';

after(stopAll);

const SCHEMA = writeSchema({
  models: {
    product: { fields: { sku: { type: 'string', required: true, unique: true }, stock: { type: 'integer', default: 0, min: 0 } } },
  },
  limits: { login: { rate: 1, periodMs: 600000, burst: 1 } },
});

const VERSION = /project\('tally',\s*'c',\s*version\s*:\s*'([^']+)'/.exec(readFileSync(path.join(ROOT, 'meson.build'), 'utf8'))[1];

/** A server started with one admin key 'ops' made beforehand: {srv, api (Bearer ops), token}. */
async function keyedServer(args = []) {
  const dataDir = tempDir('tally-ops-');
  const token = await createKey(dataDir, 'ops', ['admin']);
  const srv = await startServer({ schema: SCHEMA, dataDir, args });
  return { srv, api: withToken(srv, token), token };
}

/** logfmt: key=value or key="quoted \" value" pairs. */
function parseText(line) {
  const out = {};
  const re = /([a-z_]+)=("((?:[^"\\]|\\.)*)"|\S+)/g;
  let m;
  while ((m = re.exec(line))) out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
  return out;
}

/** The request lines of a server's stderr so far, parsed. */
function requestLines(srv, format) {
  return srv.stderr.split('\n').filter((l) => (format === 'json' ? l.startsWith('{') : l.startsWith('time=')))
    .map((l) => (format === 'json' ? JSON.parse(l) : parseText(l))).filter((e) => e.msg === 'request');
}

/** Waits until the log holds a line with this request id (lines are written as answers go out). */
async function lineFor(srv, format, id) {
  let found;
  await within(3000, `the log line of ${id}`, () => (found = requestLines(srv, format).find((e) => e.request_id === id)));
  return found;
}

/** A mix of requests, each with its own X-Request-Id; returns what each should log. */
async function requestMix(srv, api, token) {
  const want = [];
  const call = async (id, method, p, body, extra = {}) => {
    const r = await api(method, p, body, { headers: { 'x-request-id': id, ...extra } });
    assert.equal(r.headers.get('x-request-id'), id, `${id}: X-Request-Id echoed`);
    want.push({ id, method, path: p.split('?')[0], status: r.status, code: r.body?.error?.code });
    return r;
  };
  const made = await call('mix-create', 'POST', '/api/product', { sku: 'a', stock: 1 });
  assert.equal(made.status, 201, made.text);
  await call('mix-read', 'GET', `/api/product/${made.body.id}`);
  await call('mix-list', 'GET', '/api/product?first=10');
  const nf = await call('mix-404', 'GET', '/api/nosuchmodel');
  assert.equal(nf.status, 404);
  const inv = await call('mix-422', 'PATCH', `/api/product/${made.body.id}`, { _atomics: { stock: { decrement: 5 } } });
  assert.equal(inv.status, 422, inv.text);
  const tx = await call('mix-txn', 'POST', '/api/transaction', { steps: [{ create: 'product', data: { sku: 'b' } }] });
  assert.equal(tx.status, 200, tx.text);
  // a token in the query of an ordinary request: not accepted there (401), never logged
  const q = await srv.api('GET', `/api/product?access_token=${token}`, undefined, { headers: { 'x-request-id': 'mix-query' } });
  assert.equal(q.status, 401);
  want.push({ id: 'mix-query', method: 'GET', path: '/api/product', status: 401, code: 'UNAUTHORIZED', nokey: true });
  // a WebSocket upgrade with the token in its URL: one line, 101, the key's name
  const ws = await openWs(srv, { query: `?access_token=${token}`, headers: { 'x-request-id': 'mix-ws' } });
  assert.ok(ws.client, `the upgrade: ${JSON.stringify(ws)}`);
  const b = await ws.client.begin(2000);
  assert.equal(b.ok, true, JSON.stringify(b));
  await ws.client.rollback();
  ws.client.close();
  want.push({ id: 'mix-ws', method: 'GET', path: '/api/ws', status: 101 });
  return want;
}

function checkLines(srv, format, want, got) {
  for (const w of want) {
    const e = got.find((g) => g.request_id === w.id);
    assert.ok(e, `a line for ${w.id}`);
    assert.equal(got.filter((g) => g.request_id === w.id).length, 1, `one line for ${w.id}`);
    assert.equal(e.method, w.method, w.id);
    assert.equal(e.path, w.path, w.id);
    assert.equal(Number(e.status), w.status, w.id);
    assert.match(e.time, RFC3339_MS_UTC, w.id);
    assert.equal(e.level, w.status >= 400 ? 'warn' : 'info', w.id);
    assert.ok(Number(e.duration_ms) >= 0, `${w.id}: duration_ms ${e.duration_ms}`);
    assert.ok(Number(e.bytes) >= 0, `${w.id}: bytes ${e.bytes}`);
    if (w.nokey) assert.equal(e.key, undefined, `${w.id}: no key`);
    else assert.equal(e.key, 'ops', `${w.id}: the key's name`);
    if (w.status >= 400) assert.equal(e.code, w.code, `${w.id}: the error code`);
    else assert.equal(e.code, undefined, w.id);
  }
}

describe('request logs', () => {
  test('text: one line per request and upgrade, request ids, key names, never a token or a query', async () => {
    const { srv, api, token } = await keyedServer();
    const want = await requestMix(srv, api, token);
    await lineFor(srv, 'text', 'mix-ws');
    const got = requestLines(srv, 'text');
    checkLines(srv, 'text', want, got);
    // a request id that is not 1-128 printable characters is replaced by 16 hex digits
    const r = await api('GET', '/health', undefined, { headers: { 'x-request-id': 'x'.repeat(129) } });
    const made = r.headers.get('x-request-id');
    assert.match(made, /^[0-9a-f]{16}$/);
    await lineFor(srv, 'text', made);
    const none = await fetch(srv.url + '/health');
    assert.match(none.headers.get('x-request-id'), /^[0-9a-f]{16}$/, 'made up when none is sent');
    // the start-up line
    const start = srv.stderr.split('\n').map(parseText).find((e) => e.msg === 'started');
    assert.ok(start, srv.stderr);
    assert.equal(start.backend, BACKEND === 'postgres' ? 'postgresql' : 'sqlite');
    assert.equal(start.durability, 'durable');
    assert.equal(start.access, 'keys');
    assert.equal(start.tls, 'off');
    assert.equal(start.listen, `127.0.0.1:${srv.port}`);
    assert.equal(start.version, VERSION);
    assert.ok(!/:[^@/]*@/.test(start.db), `no password in ${start.db}`);
    // no token anywhere
    assert.ok(!srv.stderr.includes(token) && !srv.stdout.includes(token), 'no token in the log');
    assert.ok(!srv.stderr.includes('access_token'), 'no query string in the log');
  });

  test('json: every line parses, with the fields the README names', async () => {
    const { srv, api, token } = await keyedServer(['--log-format', 'json']);
    const want = await requestMix(srv, api, token);
    await lineFor(srv, 'json', 'mix-ws');
    const lines = srv.stderr.split('\n').filter((l) => l.startsWith('{'));
    for (const l of lines) JSON.parse(l);
    const got = requestLines(srv, 'json');
    checkLines(srv, 'json', want, got);
    for (const e of got) {
      for (const f of ['time', 'level', 'msg', 'method', 'path', 'status', 'duration_ms', 'bytes', 'request_id']) {
        assert.ok(f in e, `${f} in ${JSON.stringify(e)}`);
      }
      assert.equal(typeof e.status, 'number');
      assert.equal(typeof e.duration_ms, 'number');
      assert.equal(typeof e.bytes, 'number');
    }
    const start = lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'started');
    assert.ok(start && start.backend && start.listen && start.durability && start.access && start.tls, JSON.stringify(start));
    assert.ok(!srv.stderr.includes(token), 'no token in the log');
  });

  test('--log-level warn hides 2xx lines and shows the 404', async () => {
    const srv = await startServer({ schema: SCHEMA, args: ['--log-level', 'warn'] });
    const ok = await srv.api('POST', '/api/product', { sku: 'w' }, { headers: { 'x-request-id': 'lvl-ok' } });
    assert.equal(ok.status, 201);
    const nf = await srv.api('GET', '/api/nosuch', undefined, { headers: { 'x-request-id': 'lvl-404' } });
    assert.equal(nf.status, 404);
    const e = await lineFor(srv, 'text', 'lvl-404');
    assert.equal(e.level, 'warn');
    assert.equal(e.code, 'NOT_FOUND');
    await sleep(100);
    const got = requestLines(srv, 'text');
    assert.ok(!got.some((g) => g.request_id === 'lvl-ok'), 'no 2xx line');
    assert.ok(!got.some((g) => Number(g.status) < 400), 'no line below warn');
    assert.ok(!/msg=started/.test(srv.stderr), 'the start-up line is info');
  });
});

/** Prometheus text: {samples: Map 'name{labels}' -> value, families: {name: {help, type}}}; fails on a bad line. */
function parseExposition(text) {
  const samples = new Map();
  const families = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m;
    if ((m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      families[m[2]] = { ...families[m[2]], [m[1].toLowerCase()]: m[3] };
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    samples.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  for (const key of samples.keys()) {
    const name = key.replace(/\{.*$/, '');
    const family = families[name] ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(families[family]?.help, `HELP for ${family}`);
    assert.ok(families[family]?.type, `TYPE for ${family}`);
    if (family !== name) assert.equal(families[family].type, 'histogram', `${name} belongs to a histogram`);
  }
  return { samples, families };
}

describe('/metrics', () => {
  test('counters and histograms move by what was done; valid exposition text', async () => {
    const { srv, api, token } = await keyedServer(['--max-txns-per-key', '1']);
    const scrape = async () => {
      const r = await api('GET', '/metrics');
      assert.equal(r.status, 200, r.text);
      return parseExposition(r.text).samples;
    };
    const delta = (a, b, k) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
    const m0 = await scrape();

    // 5 writes, 2 reads
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const r = await api('POST', '/api/product', { sku: `m${i}` });
      assert.equal(r.status, 201, r.text);
      ids.push(r.body.id);
    }
    for (let i = 0; i < 2; i++) assert.equal((await api('GET', `/api/product/${ids[i]}`)).status, 200);
    assert.equal((await api('GET', '/api/nosuch')).status, 404);
    const m1 = await scrape();
    assert.equal(delta(m0, m1, 'tally_request_duration_seconds_count{kind="write"}'), 5);
    assert.equal(delta(m0, m1, 'tally_request_duration_seconds_count{kind="read"}'), 3, 'two reads and the 404 of a list');
    assert.equal(delta(m0, m1, 'tally_http_requests_total{route="records",status="2xx"}'), 7);
    assert.equal(delta(m0, m1, 'tally_http_requests_total{route="list",status="4xx"}'), 1);
    assert.equal(delta(m0, m1, 'tally_http_requests_total{route="metrics",status="2xx"}'), 1);
    assert.equal(delta(m0, m1, 'tally_batch_size_count'), delta(m0, m1, 'tally_batches_total'));
    assert.ok(delta(m0, m1, 'tally_batch_size_sum') >= 5, 'the five writes are in the batches');
    assert.equal(delta(m0, m1, 'tally_request_duration_seconds_bucket{kind="write",le="+Inf"}'), 5);

    // 1 allowed rate-limit call and 3 refused
    const limits = [];
    for (let i = 0; i < 4; i++) limits.push((await api('POST', '/api/limits/login/ada')).status);
    assert.deepEqual(limits, [200, 429, 429, 429]);
    // a lock acquire that waits
    const held = await api('POST', '/api/locks/L/acquire', { ttlMs: 300 });
    assert.equal(held.status, 200, held.text);
    const waited = await api('POST', '/api/locks/L/acquire', { ttlMs: 1000, waitMs: 5000 });
    assert.equal(waited.status, 200, waited.text);
    const m2 = await scrape();
    assert.equal(delta(m1, m2, 'tally_limit_refusals_total'), 3);
    assert.equal(delta(m1, m2, 'tally_http_requests_total{route="limits",status="4xx"}'), 3);
    assert.equal(delta(m1, m2, 'tally_lock_waits_total'), 1);
    assert.equal(delta(m1, m2, 'tally_batch_size_count'), delta(m1, m2, 'tally_batches_total'));

    // WebSockets: one holds the key's only transaction; 3 begins elsewhere are refused per key
    const a = (await openWs(srv, { query: `?access_token=${token}` })).client;
    const b = (await openWs(srv, { query: `?access_token=${token}` })).client;
    assert.equal((await a.begin(3000)).ok, true);
    for (let i = 0; i < 3; i++) {
      const r = await b.begin(3000);
      assert.equal(r.error?.code, 'TOO_MANY_TRANSACTIONS', JSON.stringify(r));
    }
    const m3 = await scrape();
    assert.equal(m3.get('tally_websocket_connections'), 2);
    assert.equal(m3.get('tally_interactive_transactions'), 1);
    assert.equal(delta(m2, m3, 'tally_begin_refused_total{reason="per_key"}'), 3);
    assert.equal(delta(m2, m3, 'tally_begin_refused_total{reason="total"}'), 0);
    assert.equal(delta(m2, m3, 'tally_http_requests_total{route="ws",status="2xx"}'), 2);
    const c = await a.step({ create: 'product', data: { sku: 'in-txn' } });
    assert.equal(c.ok, true, JSON.stringify(c));
    assert.equal((await a.call({ op: 'commit' })).ok, true);
    a.close();
    b.close();
    await within(3000, 'the WebSockets closed', async () => (await scrape()).get('tally_websocket_connections') === 0);
    const m4 = await scrape();
    assert.equal(m4.get('tally_interactive_transactions'), 0);
    assert.equal(delta(m3, m4, 'tally_batch_size_count'), delta(m3, m4, 'tally_batches_total'));
    assert.ok(delta(m3, m4, 'tally_batches_total') >= 1, 'the interactive commit is a batch');

    // a transaction
    const t = await api('POST', '/api/transaction', { steps: [{ create: 'product', data: { sku: 'tx' } }] });
    assert.equal(t.status, 200, t.text);
    const m5 = await scrape();
    assert.equal(delta(m4, m5, 'tally_request_duration_seconds_count{kind="transaction"}'), 1);
    assert.equal(delta(m4, m5, 'tally_http_requests_total{route="transaction",status="2xx"}'), 1);

    const backend = BACKEND === 'postgres' ? 'postgresql' : 'sqlite';
    assert.equal(m5.get(`tally_build_info{version="${VERSION}",backend="${backend}"}`), 1);
    // the histograms' buckets are cumulative and end at _count
    for (const kind of ['read', 'write', 'transaction']) {
      let prev = 0;
      for (const le of ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf']) {
        const v = m5.get(`tally_request_duration_seconds_bucket{kind="${kind}",le="${le}"}`);
        assert.ok(v >= prev, `${kind} le=${le}`);
        prev = v;
      }
      assert.equal(prev, m5.get(`tally_request_duration_seconds_count{kind="${kind}"}`));
    }
    for (const le of ['1', '2', '4', '8', '16', '32', '64', '128', '256', '+Inf']) {
      assert.ok(m5.has(`tally_batch_size_bucket{le="${le}"}`), `batch bucket ${le}`);
    }
  });
});

describe('the command line', () => {
  test('tally --version, tally serve --help and tally --help exit 0', async () => {
    const v = await runTally(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout, `tally ${VERSION}\n`);
    const sv = await runTally(['serve', '--version']);
    assert.equal(sv.code, 0);
    assert.equal(sv.stdout, `tally ${VERSION}\n`);
    const h = await runTally(['serve', '--help']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /--log-format text\|json/);
    assert.match(h.stdout, /--log-level/);
    const top = await runTally(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /tally serve/);
  });
});
