// Rate limits declared in the schema (README.md, "Locks, rate limits and safe
// retries"): GCRA with T = periodMs/rate, `burst` at once, one more every T ms;
// exactly `burst` of a race on a fresh key allowed; 429 with Retry-After;
// cost; independent keys; durable state; key syntax; bad schema limits.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fileServer, runTally, writeSchema, shopSchema, tempDir, expectError, expectStatus, sleep, dbArgs,
} from './lib/server.mjs';
import {
  headerConnections, closeAll, shopWithLimits, limitPath, LIMITS, raceAll,
} from './lib/primitives.mjs';

const schemaFile = shopWithLimits();
const suite = fileServer({ schema: schemaFile });
const { api } = suite;

const T = (name) => LIMITS[name].periodMs / LIMITS[name].rate;
let keySeq = 0;
const freshKey = (what = 'k') => `${what}-${process.pid}-${++keySeq}`;

/** Assert an allowed answer and return its body. */
function expectAllowed(r, remaining) {
  expectStatus(r, 200);
  assert.deepEqual(Object.keys(r.body).sort(), ['allowed', 'remaining', 'resetAfterMs', 'retryAfterMs'],
    `allowed answer fields: ${r.text}`);
  assert.equal(r.body.allowed, true);
  assert.equal(r.body.retryAfterMs, 0);
  if (remaining !== undefined) assert.equal(r.body.remaining, remaining, `remaining: ${r.text}`);
  return r.body;
}

/** Assert a refused answer (429, RATE_LIMITED, Retry-After rounded up) and return its body. */
function expectRefused(r, limit) {
  expectError(r, 429, 'RATE_LIMITED');
  const b = r.body;
  assert.equal(b.allowed, false, r.text);
  assert.equal(b.remaining, 0, r.text);
  assert.ok(Number.isInteger(b.retryAfterMs) && b.retryAfterMs > 0 && b.retryAfterMs <= T(limit),
    `retryAfterMs must be in (0, T=${T(limit)}] for a cost-1 call: ${r.text}`);
  assert.ok(Number.isInteger(b.resetAfterMs) && b.resetAfterMs >= b.retryAfterMs, `resetAfterMs: ${r.text}`);
  assert.equal(r.headers.get('retry-after'), String(Math.ceil(b.retryAfterMs / 1000)),
    `Retry-After must be retryAfterMs in whole seconds rounded up: ${r.text}`);
  return b;
}

describe('GCRA', () => {
  test('a fresh key allows burst (5) one after another with the remaining count and reset time of GCRA, then 429', async () => {
    const key = freshKey('seq');
    const t = T('login'); // 6000 ms
    const t0 = Date.now();
    for (let i = 1; i <= 5; i++) {
      const b = expectAllowed(await api('POST', limitPath('login', key)), 5 - i);
      const elapsed = Date.now() - t0;
      assert.ok(b.resetAfterMs <= i * t && b.resetAfterMs >= i * t - elapsed - 5,
        `call ${i}: resetAfterMs ${b.resetAfterMs} should be ${i}·T minus the time since the first call (${elapsed} ms)`);
    }
    const r6 = await api('POST', limitPath('login', key));
    const b6 = expectRefused(r6, 'login');
    assert.ok(b6.retryAfterMs >= t - (Date.now() - t0) - 5, `retryAfterMs ${b6.retryAfterMs}: the next one is T after the first`);
    assert.equal(r6.headers.get('retry-after'), '6');
    // a refusal is not stored: asking again does not push the time further out
    const b7 = expectRefused(await api('POST', limitPath('login', key)), 'login');
    assert.ok(b7.retryAfterMs <= b6.retryAfterMs, `retryAfterMs grew from ${b6.retryAfterMs} to ${b7.retryAfterMs}: a refused call was counted`);
    assert.ok(b7.resetAfterMs <= b6.resetAfterMs, `resetAfterMs grew from ${b6.resetAfterMs} to ${b7.resetAfterMs}`);
  });

  test('12 racing calls on a fresh key with burst 5: exactly 5 allowed (remaining 4..0 once each), 7 refused', async () => {
    const key = freshKey('race');
    const conns = await headerConnections(suite.srv, 12);
    const { rs, ok, no } = await raceAll(conns, limitPath('login', key));
    assert.equal(ok.length + no.length, 12, rs.map((r) => `${r.status} ${r.text}`).join('\n'));
    assert.equal(ok.length, 5, `allowed: ${ok.map((r) => r.text).join(' ')}`);
    for (const r of ok) expectAllowed(r);
    assert.deepEqual(ok.map((r) => r.body.remaining).sort(), [0, 1, 2, 3, 4]);
    for (const r of no) expectRefused(r, 'login');
    // and the key stays exhausted
    expectRefused(await api('POST', limitPath('login', key)), 'login');
  });

  test('after the emission interval passes, exactly one more is allowed (T = 500 ms, 12 racing calls each time)', async () => {
    const key = freshKey('refill');
    const conns = await headerConnections(suite.srv, 12);
    try {
      const first = await Promise.all(conns.map((c) => c.send('POST', limitPath('slow', key))));
      assert.equal(first.filter((r) => r.status === 200).length, 5, first.map((r) => r.text).join('\n'));
      const refused = first.filter((r) => r.status === 429).map((r) => expectRefused(r, 'slow'));
      assert.equal(refused.length, 7);
      // wait until the server says one more is due, and a little more
      await sleep(Math.max(...refused.map((b) => b.retryAfterMs)) + 30);
      const second = await Promise.all(conns.map((c) => c.send('POST', limitPath('slow', key))));
      const ok = second.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, `exactly one more after one interval: ${second.map((r) => r.status).join(',')}`);
      expectAllowed(ok[0], 0);
      for (const r of second.filter((x) => x.status !== 200)) expectRefused(r, 'slow');
    } finally {
      closeAll(conns);
    }
  });

  test('the "fast" limit (T = 50 ms): burst used up, refused with Retry-After 1, one more allowed after 60 ms', async () => {
    const key = freshKey('fast');
    expectAllowed(await api('POST', limitPath('fast', key), { cost: 5 }), 0);
    const r = await api('POST', limitPath('fast', key));
    const b = expectRefused(r, 'fast');
    assert.equal(r.headers.get('retry-after'), '1', 'under a second rounds up to 1');
    assert.ok(b.retryAfterMs <= 50);
    await sleep(60);
    expectAllowed(await api('POST', limitPath('fast', key)));
  });

  test('cost: takes that many at once; a cost the key cannot afford now is refused and takes nothing', async () => {
    const t = T('login');
    const key = freshKey('cost');
    const a = expectAllowed(await api('POST', limitPath('login', key), { cost: 3 }), 2);
    assert.ok(a.resetAfterMs <= 3 * t && a.resetAfterMs > 3 * t - 1000, `resetAfterMs ${a.resetAfterMs} should be about 3·T`);
    const r = await api('POST', limitPath('login', key), { cost: 3 });
    expectError(r, 429, 'RATE_LIMITED');
    assert.equal(r.body.allowed, false);
    assert.ok(r.body.retryAfterMs > t - 1000 && r.body.retryAfterMs <= t, `retryAfterMs ${r.body.retryAfterMs}: one more T is needed`);
    expectAllowed(await api('POST', limitPath('login', key), { cost: 2 }), 0);
    expectRefused(await api('POST', limitPath('login', key)), 'login');
    // the whole burst in one call
    expectAllowed(await api('POST', limitPath('login', freshKey('cost5')), { cost: 5 }), 0);
    // an explicit cost of 1 is the same as no body
    expectAllowed(await api('POST', limitPath('login', freshKey('cost1')), { cost: 1 }), 4);
    expectAllowed(await api('POST', limitPath('login', freshKey('cost1')), {}), 4);
  });

  test('keys are independent, and so are limits with the same key', async () => {
    const a = freshKey('indep-a');
    const b = freshKey('indep-b');
    expectAllowed(await api('POST', limitPath('login', a), { cost: 5 }), 0);
    expectRefused(await api('POST', limitPath('login', a)), 'login');
    expectAllowed(await api('POST', limitPath('login', b)), 4);
    expectAllowed(await api('POST', limitPath('slow', a)), 4);
    expectRefused(await api('POST', limitPath('login', a)), 'login');
    expectAllowed(await api('POST', limitPath('login', b)), 3);
  });
});

describe('bad input', () => {
  test('an unknown limit is a 404', async () => {
    const r = await api('POST', limitPath('nope', 'someone'));
    expectError(r, 404, 'NOT_FOUND');
    assert.match(r.body.error.message, /nope/);
  });

  test('a cost above burst, or a cost that is not a positive whole number, is a 400 and takes nothing', async () => {
    const key = freshKey('badcost');
    const failures = [];
    for (const body of [{ cost: 6 }, { cost: 1000000 }, { cost: -1 }, { cost: 1.5 }, { cost: '2' }, { cost: null }, '{"cost": ', '[1]']) {
      const r = await api('POST', limitPath('login', key), body);
      try {
        if (typeof body === 'string') expectError(r, 400, 'BAD_REQUEST');
        else expectError(r, 400, 'BAD_REQUEST', 'cost');
      } catch (e) {
        failures.push(`${typeof body === 'string' ? body : JSON.stringify(body)} -> ${r.status} ${r.text}`);
      }
    }
    assert.deepEqual(failures, [], 'each must be a 400 BAD_REQUEST (path "cost" for a bad cost)');
    // nothing was taken (nor given back): the whole burst is still there, and no more
    expectAllowed(await api('POST', limitPath('login', key), { cost: 5 }), 0);
    expectRefused(await api('POST', limitPath('login', key)), 'login');
  });

  const goodKeys = [
    ['an email', 'ada@example.com'],
    ['an IPv6 address', '2001:db8::1'],
    ['non-ASCII', 'ünïcode'],
    ['128 bytes of UTF-8', 'é'.repeat(64)],
  ];
  for (const [what, key] of goodKeys) {
    test(`a key may be ${what}; it is its own key`, async () => {
      expectAllowed(await api('POST', limitPath('slow', key), { cost: 5 }), 0);
      expectRefused(await api('POST', limitPath('slow', key)), 'slow');
      expectAllowed(await api('POST', limitPath('slow', `${key.slice(0, -1)}x`)), 4);
    });
  }

  const badKeys = [
    ['empty', '/api/limits/login/'],
    ['129 bytes', limitPath('login', 'k'.repeat(129))],
    ['129 bytes of UTF-8', limitPath('login', `${'é'.repeat(64)}k`)],
    ['a control character', limitPath('login', 'a\u0001b')],
    ['a newline', limitPath('login', 'a\nb')],
  ];
  for (const [what, p] of badKeys) {
    test(`a key that is ${what} is a 400`, async () => {
      expectError(await api('POST', p), 400, 'BAD_REQUEST');
    });
  }
});

describe('durability and the schema', () => {
  test('limit state survives a restart and a kill -9', async () => {
    const s1 = await startServer({ schema: schemaFile });
    const full = 'durable-full';
    const part = 'durable-part';
    expectAllowed(await s1.api('POST', limitPath('login', full), { cost: 5 }), 0);
    expectAllowed(await s1.api('POST', limitPath('login', part), { cost: 2 }), 3);
    assert.equal((await s1.stop()).code, 0);

    const s2 = await startServer({ schema: schemaFile, dataDir: s1.dataDir });
    expectRefused(await s2.api('POST', limitPath('login', full)), 'login');
    expectAllowed(await s2.api('POST', limitPath('login', part)), 2);
    await s2.kill9();

    const s3 = await startServer({ schema: schemaFile, dataDir: s1.dataDir });
    expectRefused(await s3.api('POST', limitPath('login', full)), 'login');
    expectAllowed(await s3.api('POST', limitPath('login', part)), 1);
    expectAllowed(await s3.api('POST', limitPath('login', 'durable-new')), 4);
    await s3.stop();
  });

  const good = LIMITS.login;
  const bad = [
    ['rate 0', { rate: 0, periodMs: 60000, burst: 5 }],
    ['a negative rate', { rate: -1, periodMs: 60000, burst: 5 }],
    ['a missing periodMs', { rate: 10, burst: 5 }],
    ['periodMs 0', { rate: 10, periodMs: 0, burst: 5 }],
    ['an unknown option', { rate: 10, periodMs: 60000, burst: 5, jitter: true }],
    ['a rate that is a string', { rate: '10', periodMs: 60000, burst: 5 }],
    ['not an object', 10],
  ];
  for (const [what, spec] of bad) {
    test(`a schema limit with ${what} stops start-up with a message naming it`, async () => {
      const s = shopSchema();
      s.limits = { okLimit: good, brokenLimitXyz: spec };
      const file = writeSchema(s);
      const r = await runTally(['serve', '--schema', file, ...dbArgs(tempDir()), '--listen', '127.0.0.1:0']);
      assert.equal(r.started, false, 'serve started on a bad limit');
      assert.equal(r.timedOut, false, 'serve hung on a bad limit');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /brokenLimitXyz/, `stderr should name the limit: ${r.stderr}`);
    });
  }

  test('a good limits section starts (control for the cases above)', async () => {
    const s = shopSchema();
    s.limits = { okLimit: good };
    const one = await startServer({ schema: writeSchema(s) });
    expectAllowed(await one.api('POST', limitPath('okLimit', 'x')), 4);
    expectError(await one.api('POST', limitPath('login', 'x')), 404, 'NOT_FOUND');
    await one.stop();
  });
});
