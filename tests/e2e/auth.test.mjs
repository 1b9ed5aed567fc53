// API keys, scopes and origins (README.md, "Access: keys, scopes,
// origins"): every route and the WebSocket refused without a key, with a
// wrong key and with a key lacking the scope (nothing changed), served with
// it; transactions checked before they run; keys made and revoked by the
// `tally keys` command and over HTTP while serving, seen within a second (on
// PostgreSQL by every server of one database); cross-origin attacks; open
// mode only on loopback; one key's interactive transactions cannot fail
// another key's writes; no token ever in the server's log.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopAll, writeSchema, tempDir, runTally, dbArgs, BACKEND, TALLY_BIN, sleep, parallel,
} from './lib/server.mjs';
import { createKey, revokeKey, withToken, within, openWs, rawRequest } from './lib/auth.mjs';
import { spawn } from 'node:child_process';

const SCHEMA = writeSchema({
  models: {
    product: { fields: { sku: { type: 'string', required: true, unique: true }, stock: { type: 'integer', default: 0, min: 0 } } },
    post: { fields: { title: { type: 'string', required: true }, images: { type: 'hasMany', model: 'image', inverse: 'post' } } },
    image: { fields: { url: { type: 'string', required: true }, post: { type: 'belongsTo', model: 'post' } } },
  },
  limits: { login: { rate: 100, periodMs: 1000, burst: 100 } },
});

const servers = [];   // every server of this file: their logs are checked for tokens at the end
const tokens = [];    // every token this file saw
async function serve(opts = {}) {
  const srv = await startServer({ schema: SCHEMA, ...opts });
  servers.push(srv);
  return srv;
}
function remember(t) { tokens.push(t); return t; }

after(stopAll);

function expect401(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.body?.error?.code, 'UNAUTHORIZED', what);
  assert.match(r.headers.get ? r.headers.get('www-authenticate') : r.headers['www-authenticate'], /^Bearer/, what);
}
function expect403(r, scope, what) {
  assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.body?.error?.code, 'FORBIDDEN', what);
  assert.ok(r.body.error.message.includes(scope), `${what}: the message names ${scope}: ${r.body.error.message}`);
}

describe('every route needs its scope', () => {
  let srv, admin, seed;
  const keys = {};
  const WRONG = 'tly_' + 'A'.repeat(43);
  before(async () => {
    srv = await serve();
    admin = withToken(srv, remember(await createKey(srv, 'root', ['admin'])));
    await within(3000, 'the first key', async () => (await srv.api('GET', '/api/product')).status === 401);
    const want = {
      reader: ['read:product'], writer: ['write:product'], writer2: ['write:product'], locker: ['locks'],
      limiter: ['limits'], watcher: ['metrics'], other: ['read:post'], imager: ['write:image'], everyone: ['read', 'write'],
    };
    for (const [name, scopes] of Object.entries(want)) {
      const r = await admin('POST', '/api/keys', { name, scopes });
      assert.equal(r.status, 201, r.text);
      assert.deepEqual([r.body.name, r.body.scopes], [name, scopes]);
      keys[name] = withToken(srv, remember(r.body.token));
      keys[name].token = r.body.token;
    }
    assert.equal((await admin('POST', '/api/product', { sku: 'seed', stock: 5 })).status, 201);
  });

  const ROUTES = [
    ['GET', '/api/product', undefined, 'read:product', 'reader', 200],
    ['GET', '/api/product/1', undefined, 'read:product', 'reader', 200],
    ['POST', '/api/product/find', { filter: {} }, 'read:product', 'reader', 200],
    ['POST', '/api/product', { sku: 'new' }, 'write:product', 'writer', 201],
    ['PATCH', '/api/product/1', { _atomics: { stock: { increment: 1 } } }, 'write:product', 'writer', 200],
    ['DELETE', '/api/product/999', undefined, 'write:product', 'writer', 404],
    ['POST', '/api/product/updateMany', { filter: { sku: { equals: 'none' } }, set: { stock: 1 } }, 'write:product', 'writer', 200],
    ['POST', '/api/product/deleteMany', { filter: { sku: { equals: 'none' } } }, 'write:product', 'writer', 200],
    ['POST', '/api/product/deleteMany', { filter: {} }, 'admin', null, 200],
    ['POST', '/api/product/upsert', { on: ['sku'], create: { sku: 'up' }, update: { stock: 2 } }, 'write:product', 'writer', 201],
    ['POST', '/api/transaction', { steps: [{ create: 'product', data: { sku: 'tx' } }] }, 'write:product', 'writer', 200],
    ['GET', '/api/locks', undefined, 'locks', 'locker', 200],
    ['POST', '/api/locks/job/acquire', { ttlMs: 1000 }, 'locks', 'locker', 200],
    ['POST', '/api/limits/login/ada', undefined, 'limits', 'limiter', 200],
    ['GET', '/metrics', undefined, 'metrics', 'watcher', 200],
    ['GET', '/api/keys', undefined, 'admin', null, 200],
    ['POST', '/api/keys', { name: 'x', scopes: ['read'] }, 'admin', null, 201],
    ['DELETE', '/api/keys/nobody', undefined, 'admin', null, 404],
  ];

  test('no key, a wrong key, a key without the scope: 401 / 401 / 403 naming the scope, and nothing changed', async () => {
    const before = (await admin('GET', '/api/product')).body.records;
    const keysBefore = (await admin('GET', '/api/keys')).body;
    for (const [method, path, body, scope, , ] of ROUTES) {
      const what = `${method} ${path} ${JSON.stringify(body)}`;
      expect401(await srv.api(method, path, body), `${what} with no key`);
      expect401(await withToken(srv, WRONG)(method, path, body), `${what} with a wrong key`);
      const lacking = scope === 'read:product' ? 'other' : scope === 'write:product' ? 'reader' : scope === 'admin' ? 'writer' : 'other';
      expect403(await keys[lacking](method, path, body), scope, `${what} with '${lacking}'`);
    }
    assert.deepEqual((await admin('GET', '/api/product')).body.records, before, 'no record changed');
    assert.deepEqual((await admin('GET', '/api/keys')).body, keysBefore, 'no key changed');
    assert.deepEqual((await admin('GET', '/api/locks')).body.locks, [], 'no lock taken');
  });

  test('a key with the scope is served', async () => {
    for (const [method, path, body, , holder, status] of ROUTES) {
      const r = await (holder ? keys[holder] : admin)(method, path, body);
      assert.equal(r.status, status, `${method} ${path} as ${holder || 'root'}: ${r.text}`);
      if (path === '/api/keys' && method === 'POST') remember(r.body.token);
    }
    seed = (await admin('POST', '/api/product', { sku: 'seed-again', stock: 5 })).body.id; // deleteMany {} took the first
    assert.equal((await keys.writer('GET', `/api/product/${seed}`)).status, 200, 'write:product implies read:product');
    assert.equal((await keys.everyone('POST', '/api/post', { title: 'p' })).status, 201, 'write covers every model');
    expect403(await keys.everyone('POST', '/api/post/deleteMany', { filter: {} }), 'admin', 'write is not admin');
    const health = await srv.api('GET', '/health');
    assert.equal(health.status, 200, '/health needs no key');
  });

  test('GET /api/keys never shows a token; bad key input is a 4xx in plain terms and changes nothing', async () => {
    const list = await admin('GET', '/api/keys');
    assert.equal(list.status, 200);
    assert.ok(!/tly_/.test(list.text) && !list.body.keys.some((k) => 'token' in k), list.text);
    const before = list.body;
    const bad = [
      [{ name: 'a', scopes: ['superuser'] }, 400, 'superuser'],
      [{ name: 'a', scopes: ['read:nosuchmodel'] }, 400, 'nosuchmodel'],
      [{ name: '', scopes: ['read'] }, 400, 'name'],
      [{ name: 'a', scopes: [] }, 400, 'scope'],
      [{ name: 'reader', scopes: ['read'] }, 409, 'reader'],
      [{ name: 'a b', scopes: ['read'] }, 400, 'name'],
    ];
    for (const [body, status, word] of bad) {
      const r = await admin('POST', '/api/keys', body);
      assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
      assert.ok(r.body.error.message.includes(word), r.body.error.message);
    }
    assert.deepEqual((await admin('GET', '/api/keys')).body, before);
  });

  test('a transaction with one step outside the key\'s scopes changes nothing; so does a nested create of another model', async () => {
    const r = await keys.writer('POST', '/api/transaction', { steps: [
      { create: 'product', data: { sku: 'tx-a' } }, { as: 'p', create: 'post', data: { title: 'no' } }] });
    expect403(r, 'write:post', 'the post step');
    assert.equal(r.body.error.step, 1);
    const found = await admin('POST', '/api/product/find', { filter: { sku: { equals: 'tx-a' } } });
    assert.deepEqual(found.body.records, [], 'the first step did not run');
    const nested = await keys.imager('POST', '/api/image', { url: 'u', post: { create: { title: 't' } } });
    expect403(nested, 'write:post', 'a nested create of a post');
    assert.deepEqual((await admin('POST', '/api/image/find', {})).body.records, []);
  });

  test('Idempotency-Key answers are scoped by key: another key never gets a replay', async () => {
    const body = { sku: 'idem' };
    const h = { headers: { 'idempotency-key': 'same-key-1' } };
    const first = await keys.writer('POST', '/api/product', body, h);
    assert.equal(first.status, 201, first.text);
    const other = await keys.writer2('POST', '/api/product', body, h);
    assert.equal(other.status, 409, `not a replay of writer's answer: ${other.text}`);
    assert.equal(other.body.error.code, 'UNIQUE_VIOLATION');
    const again = await keys.writer('POST', '/api/product', body, h);
    assert.deepEqual([again.status, again.body.id], [201, first.body.id], 'the same key replays');
  });

  test('WebSocket: the upgrade needs a key; every message and step is checked against it', async () => {
    expect401h(await openWs(srv), 'no key');
    expect401h(await openWs(srv, { query: `?access_token=${WRONG}` }), 'a wrong key');
    const { client: c } = await openWs(srv, { query: `?access_token=${keys.reader.token}` });
    assert.ok(c, 'access_token in the URL');
    assert.equal((await c.step({ get: 'product', id: seed })).ok, true);
    const lone = await c.step({ create: 'product', data: { sku: 'ws-lone' } });
    assert.equal(lone.ok, false);
    assert.equal(lone.error.code, 'FORBIDDEN');
    assert.ok(lone.error.message.includes('write:product'));
    assert.equal((await c.begin(5000)).ok, true);
    assert.equal((await c.step({ get: 'product', id: seed })).ok, true);
    const inTxn = await c.step({ update: 'product', id: seed, data: { stock: 99 } });
    assert.equal(inTxn.ok, false);
    assert.equal(inTxn.error.code, 'FORBIDDEN');
    assert.equal(inTxn.rolledBack, true);
    await c.rollback();
    assert.notEqual((await admin('GET', `/api/product/${seed}`)).body.stock, 99, 'nothing changed');
    assert.deepEqual((await admin('POST', '/api/product/find', { filter: { sku: { equals: 'ws-lone' } } })).body.records, []);
    const { client: w } = await openWs(srv, { headers: { authorization: `Bearer ${keys.watcher.token}` } });
    const b = await w.begin(5000);
    assert.equal(b.ok, false, 'a metrics key cannot begin');
    assert.equal(b.error.code, 'FORBIDDEN');
    c.close();
    w.close();
  });

  test('a revoked key stops at once on this server, also on an open WebSocket', async () => {
    const r = await admin('POST', '/api/keys', { name: 'shortlived', scopes: ['read'] });
    const t = remember(r.body.token);
    const { client: c } = await openWs(srv, { query: `?access_token=${t}` });
    assert.equal((await c.step({ get: 'product', id: seed })).ok, true);
    assert.equal((await admin('DELETE', '/api/keys/shortlived')).status, 200);
    expect401(await withToken(srv, t)('GET', '/api/product'), 'right after DELETE /api/keys/shortlived');
    const m = await c.step({ get: 'product', id: seed });
    assert.equal(m.ok, false);
    assert.equal(m.error.code, 'UNAUTHORIZED');
    c.close();
  });

  test('keys command beside a serving server: list shows names and scopes, never tokens', async () => {
    const r = await runTally(['keys', 'list', ...dbArgs(srv.dataDir)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /root\s.*admin/);
    assert.match(r.stdout, /reader\s.*read:product/);
    assert.ok(!/tly_/.test(r.stdout + r.stderr));
  });
});

function expect401h(r, what) {
  assert.equal(r.status, 401, `${what}: ${JSON.stringify(r)}`);
  assert.equal(r.body.error.code, 'UNAUTHORIZED');
  assert.match(r.headers['www-authenticate'], /^Bearer/);
}

describe('keys made and revoked with the command while serving', () => {
  test('open mode until the first key; create and revoke are seen within a second; the last key revoked leaves only /health', async () => {
    const srv = await serve();
    assert.equal((await srv.api('POST', '/api/product', { sku: 'open' })).status, 201, 'open mode on loopback');
    const t = remember(await createKey(srv, 'ci', ['read', 'write']));
    await within(3000, 'the created key', async () => (await srv.api('GET', '/api/product')).status === 401);
    const ci = withToken(srv, t);
    assert.equal((await ci('GET', '/api/product')).status, 200);
    await revokeKey(srv, 'ci');
    await within(3000, 'the revoked key', async () => (await ci('GET', '/api/product')).status === 401);
    for (const [m, p, b] of [['GET', '/api/product'], ['POST', '/api/product', { sku: 'x' }], ['GET', '/metrics'], ['GET', '/api/keys']]) {
      expect401(await srv.api(m, p, b), `${m} ${p} after the last key was revoked`);
    }
    assert.equal((await srv.api('GET', '/health')).status, 200);
    const listed = await runTally(['keys', 'list', ...dbArgs(srv.dataDir)]);
    assert.match(listed.stderr, /every call but \/health is refused/);
  });

  test('bad command input: a clear message, exit 2, nothing created', async () => {
    const dir = tempDir('tally-keys-');
    for (const args of [['--name', 'a', '--scope', 'superuser'], ['--scope', 'read'], ['--name', 'a']]) {
      const r = await runTally(['keys', 'create', ...args, ...dbArgs(dir)]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /tally: /);
      assert.equal(r.stdout, '');
    }
    await createKey(dir, 'dup', ['read']).then(remember);
    const again = await runTally(['keys', 'create', '--name', 'dup', '--scope', 'read', ...dbArgs(dir)]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    const gone = await runTally(['keys', 'revoke', 'nobody', ...dbArgs(dir)]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no key named 'nobody'/);
  });

  test('keys, changes and actions are reserved model names', async () => {
    for (const name of ['keys', 'changes', 'actions']) {
      const file = writeSchema({ models: { [name]: { fields: { a: { type: 'string' } } } } });
      const r = await runTally(['check-schema', file]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /reserved/);
    }
  });
});

describe('two servers on one PostgreSQL database', { skip: BACKEND !== 'postgres' && 'PostgreSQL only: servers sharing one database' }, () => {
  test('a key created on one server works on the other, and revoked on one is refused by the other within a second', async () => {
    const a = await serve();
    const b = await serve({ dataDir: a.dataDir });
    const root = remember(await createKey(a, 'root', ['admin']));
    const adminA = withToken(a, root);
    const adminB = withToken(b, root);
    await within(3000, 'the first key on b', async () => (await b.api('GET', '/api/product')).status === 401);
    const made = await adminA('POST', '/api/keys', { name: 'shared', scopes: ['read:product'] });
    assert.equal(made.status, 201);
    const shared = withToken(b, remember(made.body.token));
    await within(3000, 'the key made on a, on b', async () => (await shared('GET', '/api/product')).status === 200);
    assert.equal((await adminA('DELETE', '/api/keys/shared')).status, 200);
    await within(3000, 'the key revoked on a, on b', async () => (await shared('GET', '/api/product')).status === 401);
    assert.equal((await adminB('GET', '/api/keys')).body.keys.length, 1);
  });
});

describe('browsers: origins and Host', () => {
  let open, keyed, root;
  before(async () => {
    open = await serve({ args: ['--host', 'tally.test'] });
    keyed = await serve({ args: ['--cors-origin', 'https://app.example'] });
    root = remember(await createKey(keyed, 'root', ['admin']));
    await within(3000, 'the key', async () => (await keyed.api('GET', '/api/product')).status === 401);
    for (const s of [open]) assert.equal((await s.api('POST', '/api/product', { sku: 'keep' })).status, 201);
    assert.equal((await withToken(keyed, root)('POST', '/api/product', { sku: 'keep' })).status, 201);
  });

  test('a text/plain cross-origin deleteMany is refused and the table is intact (open mode and with a key)', async () => {
    const evil = { origin: 'http://evil.example', 'content-type': 'text/plain' };
    const r = await rawRequest(open, 'POST', '/api/product/deleteMany', { headers: evil, body: '{"filter": {}}' });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error.code, 'FORBIDDEN');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal((await open.api('GET', '/api/product')).body.records.length, 1, 'nothing deleted');
    const k = await rawRequest(keyed, 'POST', '/api/product/deleteMany',
      { headers: { ...evil, authorization: `Bearer ${root}` }, body: '{"filter": {}}' });
    assert.equal(k.status, 403, k.text);
    assert.equal((await withToken(keyed, root)('GET', '/api/product')).body.records.length, 1);
  });

  test('the server\'s own origin is served; a --cors-origin one gets CORS headers and a preflight without a token', async () => {
    const own = await rawRequest(open, 'GET', '/api/product', { headers: { origin: `http://127.0.0.1:${open.port}` } });
    assert.equal(own.status, 200, own.text);
    const pre = await rawRequest(keyed, 'OPTIONS', '/api/product', { headers: {
      origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    assert.equal(pre.status, 204, pre.text);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(pre.headers['access-control-allow-headers'], /Authorization/);
    assert.match(pre.headers['access-control-allow-headers'], /Idempotency-Key/);
    assert.match(pre.headers['access-control-allow-methods'], /PATCH/);
    const r = await rawRequest(keyed, 'GET', '/api/product', { headers: { origin: 'https://app.example', authorization: `Bearer ${root}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(r.headers.vary, /Origin/);
    assert.match(r.headers['access-control-expose-headers'], /Retry-After/);
    const foreignPre = await rawRequest(keyed, 'OPTIONS', '/api/product', { headers: { origin: 'https://other.example' } });
    assert.equal(foreignPre.status, 403);
  });

  test('open mode answers only loopback names and --host; with keys any Host is served', async () => {
    const foreign = await rawRequest(open, 'GET', '/api/product', { headers: { host: `attacker.example:${open.port}` } });
    assert.equal(foreign.status, 403, foreign.text);
    assert.match(foreign.body.error.message, /DNS rebinding/);
    for (const host of [`localhost:${open.port}`, `127.0.0.1:${open.port}`, `[::1]:${open.port}`, `tally.test:${open.port}`]) {
      assert.equal((await rawRequest(open, 'GET', '/api/product', { headers: { host } })).status, 200, host);
    }
    const keyedForeign = await rawRequest(keyed, 'GET', '/api/product', { headers: { host: 'proxy.internal', authorization: `Bearer ${root}` } });
    assert.equal(keyedForeign.status, 200, keyedForeign.text);
  });

  test('a WebSocket upgrade from a foreign origin or with a foreign Host is refused', async () => {
    const r = await openWs(open, { origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'FORBIDDEN');
    const h = await openWs(open, { headers: { host: 'attacker.example' } });
    assert.equal(h.status, 403);
    const ok = await openWs(open, { origin: `http://127.0.0.1:${open.port}` });
    assert.ok(ok.client);
    ok.client.close();
  });
});

describe('open mode only on loopback', () => {
  test('0.0.0.0 without a key refuses to start and says what to do; with a key made first, it serves', async () => {
    const dir = tempDir('tally-wide-');
    const r = await runTally(['serve', '--schema', SCHEMA, ...dbArgs(dir), '--listen', '0.0.0.0:0']);
    assert.equal(r.started, false);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /tally keys create --name \S+ --scope admin/);
    assert.match(r.stderr, /--open/);
    const open = await runTally(['serve', '--schema', SCHEMA, ...dbArgs(tempDir('tally-wide-open-')), '--listen', '0.0.0.0:0', '--open']);
    assert.equal(open.started, true, open.stderr);
    remember(await createKey(dir, 'root', ['admin']));
    const keyed = await runTally(['serve', '--schema', SCHEMA, ...dbArgs(dir), '--listen', '0.0.0.0:0']);
    assert.equal(keyed.started, true, keyed.stderr);
  });
});

describe('interactive transactions per key', () => {
  test('50 clients of one key looping begin cannot fail or hold up another key\'s writes', async () => {
    const TXN_MS = 1500;
    const srv = await serve({ args: ['--max-txn-ms', String(TXN_MS)] });
    const root = withToken(srv, remember(await createKey(srv, 'root', ['admin'])));
    const busyToken = remember(await createKey(srv, 'busy', ['read', 'write']));
    const other = withToken(srv, remember(await createKey(srv, 'other', ['write:product'])));
    // made with the command: the server sees each within its keyring's poll (wait for all three, not the first)
    const busyApi = withToken(srv, busyToken);
    await within(3000, 'the keys', async () => (await srv.api('GET', '/api/product')).status === 401
      && (await root('GET', '/api/product')).status === 200 && (await other('GET', '/api/product')).status === 200
      && (await busyApi('GET', '/api/product')).status === 200);
    const p = (await root('POST', '/api/product', { sku: 'hot', stock: 0 })).body;
    const busy = (await root('POST', '/api/product', { sku: 'busy', stock: 0 })).body;
    const until = Date.now() + 4 * TXN_MS;
    const refusals = new Map();
    let began = 0;
    const clients = await Promise.all(Array.from({ length: 50 }, () => openWs(srv, { query: `?access_token=${busyToken}` })));
    const loops = clients.map(async ({ client: c }) => {
      while (Date.now() < until) {
        const b = await c.begin(TXN_MS);
        if (b.ok) {
          began++;
          await c.step({ get: 'product', id: busy.id });
          await c.nextEvent('rolledBack', 3 * TXN_MS).catch(() => {}); // held to its timeout
          await c.rollback();
        } else {
          assert.ok(b.error && typeof b.error.code === 'string', `a refusal is JSON with a code: ${JSON.stringify(b)}`);
          assert.ok(['TOO_MANY_TRANSACTIONS', 'OVERLOADED'].includes(b.error.code), JSON.stringify(b));
          refusals.set(b.error.code, (refusals.get(b.error.code) || 0) + 1);
          await sleep(25);
        }
      }
    });
    const slowest = [];
    const writes = (async () => {
      let n = 0;
      while (Date.now() < until) {
        const t0 = Date.now();
        const w = await other('PATCH', `/api/product/${p.id}`, { _atomics: { stock: { increment: 1 } } });
        assert.equal(w.status, 200, `another key's write: ${w.text}`);
        slowest.push(Date.now() - t0);
        n++;
        await sleep(50);
      }
      return n;
    })();
    const [n] = await Promise.all([writes, ...loops]);
    assert.ok(began > 0, 'some transactions began');
    assert.ok((refusals.get('TOO_MANY_TRANSACTIONS') || 0) > 0, 'the per-key limit refused some');
    const worst = Math.max(...slowest);
    assert.ok(worst <= TXN_MS + 1000, `no write waited longer than about one transaction timeout: ${worst} ms`);
    assert.equal((await root('GET', `/api/product/${p.id}`)).body.stock, n, 'every write applied');
    for (const { client } of clients) client.close();
  });
});

test('the servers\' logs contain no token', () => {
  assert.ok(tokens.length > 10);
  for (const srv of servers) {
    const log = srv.stdout + srv.stderr;
    for (const t of tokens) assert.ok(!log.includes(t), `a token in the log of ${srv.url}`);
    assert.ok(!/tly_[A-Za-z0-9_-]{20}/.test(log), 'nothing that looks like a token');
  }
});
