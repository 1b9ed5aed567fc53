// The server as a process: health, metrics, signals, the data-folder lock,
// schema errors, check-schema, migrations, and the body size limit.
import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import {
  startServer, stopAll, runTally, writeSchema, tempDir, expectError, expectStatus, listAll,
  parseMetrics, parallel, SHOP_SCHEMA, BACKEND, dbArgs, sqliteOnly, TALLY_BIN,
} from './lib/server.mjs';
import { rawConnections } from './lib/rawhttp.mjs';

after(stopAll);

describe('health and metrics', () => {
  test('GET /health answers 200', async () => {
    const srv = await startServer();
    const r = await fetch(srv.url + '/health');
    assert.equal(r.status, 200);
    await r.text();
    await srv.stop();
  });

  test('GET /metrics is Prometheus text with writes, batches, fsyncs and queue depth', async () => {
    const srv = await startServer();
    const get = async () => {
      const r = await fetch(srv.url + '/metrics');
      const text = await r.text();
      assert.equal(r.status, 200, text);
      assert.match(r.headers.get('content-type') || '', /^text\/plain/);
      return text;
    };
    const t0 = await get();
    for (const line of t0.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?(\d+(\.\d+)?([eE][+-]?\d+)?|NaN|\+Inf|-Inf)( -?\d+)?$/,
        `not a Prometheus sample line: ${JSON.stringify(line)}`);
    }
    const m0 = parseMetrics(t0);
    // tally_fsyncs_total is SQLite's (fsyncs counted on the data folder's files); PostgreSQL fsyncs in its own server
    const sqlite = BACKEND === 'sqlite';
    for (const k of ['tally_writes_total', 'tally_batches_total', ...(sqlite ? ['tally_fsyncs_total'] : []), 'tally_queue_depth']) {
      assert.ok(k in m0, `/metrics lacks ${k}:\n${t0}`);
    }
    assert.equal(m0.tally_queue_depth, 0);
    const c = await srv.api('POST', '/api/customer', { name: 'm' });
    expectStatus(c, 201);
    for (let i = 0; i < 3; i++) {
      expectStatus(await srv.api('PATCH', `/api/customer/${c.body.id}`, { _atomics: { orderCount: { increment: 1 } } }), 200);
    }
    const m1 = parseMetrics(await get());
    assert.ok(m1.tally_writes_total - m0.tally_writes_total >= 4, `writes went ${m0.tally_writes_total} -> ${m1.tally_writes_total}`);
    assert.ok(m1.tally_batches_total - m0.tally_batches_total >= 1);
    if (sqlite) assert.ok(m1.tally_fsyncs_total - m0.tally_fsyncs_total >= 1);
    // reads are not writes
    const before = m1.tally_writes_total;
    for (let i = 0; i < 5; i++) expectStatus(await srv.api('GET', `/api/customer/${c.body.id}`), 200);
    assert.equal(parseMetrics(await get()).tally_writes_total, before, 'a GET must not count as a write');
    await srv.stop();
  });
});

describe('signals', () => {
  test('SIGTERM with writes in flight: every accepted write is answered, none lost or applied unanswered, exit 0', async (t) => {
    const srv = await startServer();
    const c = await srv.api('POST', '/api/customer', { name: 'term' });
    expectStatus(c, 201);
    const id = c.body.id;
    let ok = 0;
    let refused = 0;
    let dropped = 0;
    let signalled = false;
    let okAfterSignal = 0;
    const bad = [];
    let resolveGo;
    const go = new Promise((r) => { resolveGo = r; });
    // lean keep-alive connections, so that many writes really are at the server when the signal lands
    const conns = await rawConnections(srv, 50);
    const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
    const clients = parallel(50, async (k) => {
      for (;;) {
        let r;
        try {
          r = await conns[k].request('PATCH', `/api/customer/${id}`, body);
        } catch {
          dropped++; // refused connection or closed before a request was sent/answered
          return;
        }
        if (r.status === 200) {
          ok++;
          if (signalled) okAfterSignal++;
          if (ok >= 500) resolveGo();
          // keep writing after the signal too: each later write must be
          // answered or refused, never applied without an answer
        } else if (r.status === 503) {
          refused++;
          expectError(r, 503, r.body?.error?.code);
          return;
        } else {
          bad.push(`${r.status} ${r.text}`);
          return;
        }
      }
    });
    await go;
    signalled = true;
    const st = await srv.stop('SIGTERM');
    await clients;
    for (const x of conns) x.close();
    t.diagnostic(`${ok} answered 200 (${okAfterSignal} after SIGTERM was sent), ${refused} answered 503, ${dropped} connections dropped`);
    assert.deepEqual(bad, []);
    assert.equal(st.code, 0, `exit after SIGTERM: ${JSON.stringify(st)}; stderr: ${srv.stderr}`);
    const again = await startServer({ dataDir: srv.dataDir });
    const g = await again.api('GET', `/api/customer/${id}`);
    assert.equal(g.body.orderCount, ok,
      `${ok} increments answered 200 (${okAfterSignal} after SIGTERM), ${refused} answered 503, ${dropped} connections dropped; `
      + `stored value is ${g.body.orderCount}`);
    await again.stop();
  });

  test('SIGINT stops the server cleanly (exit 0) and data stays', async () => {
    const srv = await startServer();
    const c = await srv.api('POST', '/api/customer', { name: 'int' });
    expectStatus(c, 201);
    const st = await srv.stop('SIGINT');
    assert.equal(st.code, 0, `exit after SIGINT: ${JSON.stringify(st)}; stderr: ${srv.stderr}`);
    const again = await startServer({ dataDir: srv.dataDir });
    assert.deepEqual((await again.api('GET', `/api/customer/${c.body.id}`)).body, c.body);
    await again.stop();
  });

  test('SIGTERM the moment the server says it listens (20 times): it exits 0 every time', async () => {
    // The engine's threads are started before the main thread waits for signals: if
    // one of them could take SIGTERM, its default action would end the process.
    const codes = [];
    for (let i = 0; i < 20; i++) {
      const dir = tempDir('tally-sig-');
      const proc = spawn(TALLY_BIN, ['serve', '--schema', SHOP_SCHEMA, ...dbArgs(dir), '--listen', '127.0.0.1:0'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.setEncoding('utf8');
      let out = '';
      proc.stdout.on('data', (d) => { out += d; if (/listening on/.test(out)) proc.kill('SIGTERM'); });
      proc.stderr.resume();
      const [code, signal] = await new Promise((r) => proc.on('exit', (c, sg) => r([c, sg])));
      codes.push(signal ? `signal ${signal}` : code);
    }
    assert.deepEqual(codes.filter((c) => c !== 0), [], `exit codes: ${codes.join(', ')}`);
  });

  test('SIGTERM on an idle server exits 0 and frees the port', async () => {
    const srv = await startServer();
    const st = await srv.stop('SIGTERM');
    assert.equal(st.code, 0);
    await assert.rejects(fetch(srv.url + '/health'));
  });
});

describe('data folder lock', sqliteOnly('the data folder\'s flock (tally.lock); on PostgreSQL many servers share one database by design'), () => {
  test('a second server on the same data folder refuses to start; the first keeps serving', async () => {
    const a = await startServer();
    const c = await a.api('POST', '/api/customer', { name: 'owner' });
    expectStatus(c, 201);
    const b = await runTally(['serve', '--schema', SHOP_SCHEMA, ...dbArgs(a.dataDir), '--listen', '127.0.0.1:0']);
    assert.equal(b.started, false, 'the second server must not serve');
    assert.equal(b.timedOut, false, 'the second server must exit, not hang');
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /lock/i, `stderr should say the folder is locked: ${b.stderr}`);
    // the first one is unharmed
    const g = await a.api('GET', `/api/customer/${c.body.id}`);
    assert.deepEqual(g.body, c.body);
    expectStatus(await a.api('PATCH', `/api/customer/${c.body.id}`, { _atomics: { orderCount: { increment: 1 } } }), 200);
    // once it stops, the folder can be used again
    assert.equal((await a.stop()).code, 0);
    const again = await startServer({ dataDir: a.dataDir });
    assert.equal((await again.api('GET', `/api/customer/${c.body.id}`)).body.orderCount, 1);
    await again.stop();
  });

  test('the lock is released by kill -9 (the kernel drops it)', async () => {
    const a = await startServer();
    await a.kill9();
    const again = await startServer({ dataDir: a.dataDir });
    expectStatus(await fetch(again.url + '/health'), 200);
    await again.stop();
  });
});

describe('schema validation', () => {
  test('check-schema accepts the shop schema', async () => {
    const r = await runTally(['check-schema', SHOP_SCHEMA]);
    assert.equal(r.code, 0, `check-schema examples/shop.json: ${r.stdout} ${r.stderr}`);
  });

  const m = (fields, extra = {}) => ({ models: { widget: { fields, ...extra }, other: { fields: { n: { type: 'integer' } } } } });
  const bad = [
    ['an unknown type', m({ size: { type: 'bigint' } }), ['widget', 'size', /type|bigint/i]],
    ['a field without a type', m({ size: { required: true } }), ['widget', 'size', /type/i]],
    ['belongsTo an unknown model', m({ owner: { type: 'belongsTo', model: 'ghost' } }), ['widget', 'owner', 'ghost']],
    ['belongsTo without a model', m({ owner: { type: 'belongsTo' } }), ['widget', 'owner', /model/i]],
    ['hasMany whose inverse does not exist', m({ parts: { type: 'hasMany', model: 'other', inverse: 'widget' } }), ['widget', 'parts', /inverse/i]],
    ['a bad onDelete', {
      models: {
        widget: { fields: { owner: { type: 'belongsTo', model: 'other', onDelete: 'explode' } } },
        other: { fields: { n: { type: 'integer' } } },
      },
    }, ['widget', 'owner', /onDelete|explode/i]],
    ['a field name that is not an identifier', m({ '1size': { type: 'integer' } }), ['widget', '1size']],
    ['a field name with a quote', m({ 'si"ze': { type: 'integer' } }), ['widget', /si.?"ze|si\\"ze|name/]],
    ['a field name over 63 bytes', m({ ['f'.repeat(64)]: { type: 'integer' } }), ['widget', 'f'.repeat(64)]],
    ['a default of the wrong type', m({ count: { type: 'integer', default: 'ten' } }), ['widget', 'count', /default/i]],
    ['min on a string', m({ label: { type: 'string', min: 0 } }), ['widget', 'label', /min/i]],
    ['maxLength on an integer', m({ count: { type: 'integer', maxLength: 3 } }), ['widget', 'count', /maxLength/i]],
    ['min above max', m({ count: { type: 'integer', min: 10, max: 1 } }), ['widget', 'count', /min|max/i]],
    ['a default outside min/max', m({ count: { type: 'integer', min: 0, default: -1 } }), ['widget', 'count', /default|min/i]],
    ['an unknown field option', m({ count: { type: 'integer', uniq: true } }), ['widget', 'count', 'uniq']],
    ['a field named id', m({ id: { type: 'integer' } }), ['widget', 'id']],
    ['a field named createdAt', m({ createdAt: { type: 'datetime' } }), ['widget', 'createdAt']],
    ['a compound unique naming an unknown field', m({ a: { type: 'string' } }, { unique: [['a', 'zz']] }), ['widget', 'zz']],
  ];
  for (const [name, schema, wants] of bad) {
    test(`${name}: check-schema and serve both refuse, naming model, field and problem`, async () => {
      const file = writeSchema(schema);
      const chk = await runTally(['check-schema', file]);
      assert.notEqual(chk.code, 0, `check-schema accepted it: ${chk.stdout}`);
      const chkOut = chk.stdout + chk.stderr;
      const srv = await runTally(['serve', '--schema', file, ...dbArgs(tempDir()), '--listen', '127.0.0.1:0']);
      assert.equal(srv.started, false, 'serve started on a bad schema');
      assert.equal(srv.timedOut, false, 'serve hung on a bad schema');
      assert.notEqual(srv.code, 0);
      for (const w of wants) {
        const re = w instanceof RegExp ? w : new RegExp(w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
        assert.match(chkOut, re, `check-schema output should mention ${w}: ${chkOut}`);
        assert.match(srv.stderr, re, `serve stderr should mention ${w}: ${srv.stderr}`);
      }
    });
  }

  test('a model name that is not an identifier is refused, naming it', async () => {
    const file = writeSchema({ models: { 'bad-model': { fields: { n: { type: 'integer' } } } } });
    const chk = await runTally(['check-schema', file]);
    assert.notEqual(chk.code, 0);
    assert.match(chk.stdout + chk.stderr, /bad-model/);
  });

  test('a file that is not JSON, or is missing, is refused with a message', async () => {
    for (const file of [writeSchema('{"models": {'), path.join(tempDir(), 'missing.json')]) {
      const chk = await runTally(['check-schema', file]);
      assert.notEqual(chk.code, 0);
      assert.ok((chk.stdout + chk.stderr).trim().length > 0, 'a message is printed');
      const srv = await runTally(['serve', '--schema', file, ...dbArgs(tempDir()), '--listen', '127.0.0.1:0']);
      assert.equal(srv.started, false);
      assert.notEqual(srv.code, 0);
      assert.ok(srv.stderr.trim().length > 0, 'serve prints why it stops');
    }
  });

  test('a schema with no models object is refused', async () => {
    const chk = await runTally(['check-schema', writeSchema({ tables: {} })]);
    assert.notEqual(chk.code, 0);
  });
});

describe('migrations', () => {
  const v1 = { models: { member: { fields: { name: { type: 'string', required: true }, level: { type: 'integer', default: 1 } } } } };
  const v2 = {
    models: {
      member: { fields: {
        name: { type: 'string', required: true },
        level: { type: 'integer', default: 1 },
        nickname: { type: 'string' },
        points: { type: 'integer', default: 7 },
      } },
      tag: { fields: { label: { type: 'string', unique: true } } },
    },
  };
  const dropped = { models: { member: { fields: { name: { type: 'string', required: true }, points: { type: 'integer', default: 7 }, nickname: { type: 'string' } } }, tag: v2.models.tag } };
  const retyped = JSON.parse(JSON.stringify(v2));
  retyped.models.member.fields.level = { type: 'string' };

  test('adding models and fields keeps old data; destructive changes are refused and change nothing', async () => {
    const dataDir = tempDir('tally-mig-');
    const s1 = await startServer({ schema: writeSchema(v1), dataDir });
    const a = await s1.api('POST', '/api/member', { name: 'old', level: 4 });
    expectStatus(a, 201);
    assert.equal((await s1.stop()).code, 0);

    // additive: new fields null or default, new model works
    const s2 = await startServer({ schema: writeSchema(v2), dataDir });
    const g = await s2.api('GET', `/api/member/${a.body.id}`);
    expectStatus(g, 200);
    assert.equal(g.body.name, 'old');
    assert.equal(g.body.level, 4);
    assert.equal(g.body.nickname, null);
    assert.equal(g.body.points, 7, 'an added field with a default reads as the default on old rows');
    assert.equal(g.body.createdAt, a.body.createdAt);
    const p = await s2.api('PATCH', `/api/member/${a.body.id}`, { nickname: 'oldie', _atomics: { points: { increment: 1 } } });
    expectStatus(p, 200);
    assert.equal(p.body.points, 8);
    expectStatus(await s2.api('POST', '/api/tag', { label: 'new' }), 201);
    const members = await listAll(s2.api, 'member');
    assert.equal((await s2.stop()).code, 0);

    // destructive: refused, names model and field
    for (const [what, schema, field] of [['dropped field', dropped, 'level'], ['changed type', retyped, 'level']]) {
      const file = writeSchema(schema);
      const r = await runTally(['serve', '--schema', file, ...dbArgs(dataDir), '--listen', '127.0.0.1:0']);
      assert.equal(r.started, false, `${what}: the server must refuse to serve`);
      assert.equal(r.timedOut, false);
      assert.notEqual(r.code, 0, `${what}: exit code`);
      assert.match(r.stderr, /member/, `${what}: stderr names the model: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(field), `${what}: stderr names the field: ${r.stderr}`);
    }

    // dropping a whole model is destructive too
    const noTag = { models: { member: v2.models.member } };
    const r = await runTally(['serve', '--schema', writeSchema(noTag), ...dbArgs(dataDir), '--listen', '127.0.0.1:0']);
    assert.equal(r.started, false, 'dropping a model must be refused');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /tag/);

    // the first schema is now an older version of the database's: refused, saying so
    const older = await runTally(['serve', '--schema', writeSchema(v1), ...dbArgs(dataDir), '--listen', '127.0.0.1:0']);
    assert.equal(older.started, false, 'the older schema must be refused');
    assert.notEqual(older.code, 0);
    assert.match(older.stderr, /this schema is version 1 of the database, which was migrated to version 2 at /);
    assert.match(older.stderr, /tally migrate --allow-destructive/);

    // the refusals changed nothing: v2 still starts with the same data
    const s3 = await startServer({ schema: writeSchema(v2), dataDir });
    assert.deepEqual(await listAll(s3.api, 'member'), members);
    assert.equal((await listAll(s3.api, 'tag')).length, 1);
    await s3.stop();
  });

  test('tally migrate prints each change it makes; --dry-run prints the plan and changes nothing; start-up prints what it migrated', async () => {
    const dataDir = tempDir('tally-mig-print-');
    const f1 = writeSchema(v1);
    const f2 = writeSchema(v2);
    const first = await runTally(['migrate', '--schema', f1, ...dbArgs(dataDir)]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^tally: applied: model 'member' created$/m);
    assert.match(first.stdout, /^tally: applied: the schema recorded as version 1$/m);

    const plan = await runTally(['migrate', '--schema', f2, '--dry-run', ...dbArgs(dataDir)]);
    assert.equal(plan.code, 0, plan.stderr);
    const would = plan.stdout.split('\n').filter((l) => l.startsWith('tally: would apply: ')).map((l) => l.slice(20)).sort();
    assert.deepEqual(would, [
      "model 'member': field 'nickname' added (null in existing records)",
      "model 'member': field 'points' added (existing records get its default)",
      "model 'tag' created",
      "model 'tag': label made unique",
      'the schema recorded as version 2',
    ]);
    assert.match(plan.stdout, /dry run: the changes above would be made; nothing was changed/);
    // nothing changed: v1 is still the newest version, with nothing to do
    const same = await runTally(['migrate', '--schema', f1, ...dbArgs(dataDir)]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /matches .* \(nothing to change\)/);
    assert.doesNotMatch(same.stdout, /applied:/);

    // a server started on v2 migrates and says so on stderr; started again, it has nothing to say
    const s1 = await startServer({ schema: f2, dataDir });
    await s1.stop();
    assert.match(s1.stderr, /^tally: migrated: model 'tag' created$/m);
    assert.match(s1.stderr, /^tally: migrated: model 'member': field 'points' added/m);
    const s2 = await startServer({ schema: f2, dataDir });
    await s2.stop();
    assert.doesNotMatch(s2.stderr, /migrated:/);
  });

  test('a new required field: refused without a default while records exist (they would have no value); with a default they get it', async () => {
    const dataDir = tempDir('tally-mig-req-');
    const s1 = await startServer({ schema: writeSchema(v1), dataDir });
    expectStatus(await s1.api('POST', '/api/member', { name: 'old' }), 201);
    await s1.stop();
    const bare = JSON.parse(JSON.stringify(v1));
    bare.models.member.fields.tier = { type: 'string', required: true };
    const r = await runTally(['serve', '--schema', writeSchema(bare), ...dbArgs(dataDir), '--listen', '127.0.0.1:0']);
    assert.equal(r.started, false);
    assert.match(r.stderr, /model 'member', field 'tier': a new required field needs a value in the records already stored, and it has no default/);
    const given = JSON.parse(JSON.stringify(v1));
    given.models.member.fields.tier = { type: 'string', required: true, default: 'basic' };
    const s2 = await startServer({ schema: writeSchema(given), dataDir });
    const all = await listAll(s2.api, 'member');
    assert.deepEqual(all.map((m) => m.tier), ['basic']);
    expectError(await s2.api('POST', '/api/member', { name: 'new', tier: null }), 422, 'VALIDATION', 'tier');
    await s2.stop();
    // on an empty model a required field needs no default
    const fresh = tempDir('tally-mig-req-empty-');
    const s3 = await startServer({ schema: writeSchema(v1), dataDir: fresh });
    await s3.stop();
    const s4 = await startServer({ schema: writeSchema(bare), dataDir: fresh });
    await s4.stop();
  });

  test('check-schema with a database says whether it would migrate, and changes nothing', async () => {
    const dataDir = tempDir('tally-chk-');
    const fresh = await runTally(['check-schema', writeSchema(v1), ...dbArgs(dataDir)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const s1 = await startServer({ schema: writeSchema(v1), dataDir });
    const a = await s1.api('POST', '/api/member', { name: 'kept', level: 3 });
    assert.equal((await s1.stop()).code, 0);

    // additive: it would migrate, but nothing changes now
    const ok = await runTally(['check-schema', writeSchema(v2), ...dbArgs(dataDir)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /will be migrated to it at start-up \(nothing was changed now\)/);
    // destructive: refused, with the reason a server would give
    const bad = await runTally(['check-schema', writeSchema(retyped), ...dbArgs(dataDir)]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot serve this schema as it is: .*member.*level.*type changed from integer to string/);

    // v1 still serves as it was: the additive check left no new model or field behind
    const s2 = await startServer({ schema: writeSchema(v1), dataDir });
    const g = await s2.api('GET', `/api/member/${a.body.id}`);
    assert.deepEqual(Object.keys(g.body).sort(), ['createdAt', 'id', 'level', 'name', 'updatedAt']);
    expectError(await s2.api('GET', '/api/tag'), 404, 'NOT_FOUND');
    await s2.stop();
  });
});

describe('body size limit', () => {
  test('--max-body: a larger body is 413 PAYLOAD_TOO_LARGE and nothing is created; a smaller one works', async () => {
    const srv = await startServer({ args: ['--max-body', '1000'] });
    const big = JSON.stringify({ name: 'x'.repeat(2000) });
    const r = await srv.api('POST', '/api/customer', big);
    expectError(r, 413, 'PAYLOAD_TOO_LARGE');
    assert.deepEqual(await listAll(srv.api, 'customer'), []);
    const c = await srv.api('POST', '/api/customer', { name: 'y'.repeat(900) });
    expectStatus(c, 201);
    const p = await srv.api('PATCH', `/api/customer/${c.body.id}`, { name: 'z'.repeat(1500) });
    expectError(p, 413, 'PAYLOAD_TOO_LARGE');
    assert.deepEqual((await srv.api('GET', `/api/customer/${c.body.id}`)).body, c.body);
    // the server still serves after refusing
    expectStatus(await fetch(srv.url + '/health'), 200);
    await srv.stop();
  });

  test('the default limit is 1 MiB', async () => {
    const srv = await startServer();
    const under = await srv.api('POST', '/api/customer', { name: 'a'.repeat(1000000) });
    expectStatus(under, 201);
    assert.equal(under.body.name.length, 1000000);
    const over = await srv.api('POST', '/api/customer', JSON.stringify({ name: 'b'.repeat(1048576) }));
    expectError(over, 413, 'PAYLOAD_TOO_LARGE');
    const all = await listAll(srv.api, 'customer');
    assert.equal(all.length, 1);
    await srv.stop();
  });
});

describe('overload', () => {
  test('a full write queue answers 503 and never applies those writes later', async () => {
    const srv = await startServer({ args: ['--queue-max', '1'] });
    const c = await srv.api('POST', '/api/customer', { name: 'q' });
    expectStatus(c, 201);
    const answers = await parallel(200, () => srv.api('PATCH', `/api/customer/${c.body.id}`, { _atomics: { orderCount: { increment: 1 } } }));
    const ok = answers.filter((r) => r.status === 200).length;
    const busy = answers.filter((r) => r.status === 503);
    for (const r of answers) assert.ok(r.status === 200 || r.status === 503, `${r.status} ${r.text}`);
    for (const r of busy) expectError(r, 503, r.body?.error?.code);
    const g = await srv.api('GET', `/api/customer/${c.body.id}`);
    assert.equal(g.body.orderCount, ok, `${ok} answered 200, ${busy.length} answered 503`);
    assert.ok(busy.length > 0, 'with --queue-max 1 and 200 concurrent writes, some are refused with 503');
    await srv.stop();
  });
});
