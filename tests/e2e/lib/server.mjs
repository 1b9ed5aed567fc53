// Test harness: start the real `tally` binary on a free port and talk to it
// over HTTP the way a client would. Nothing here knows how the server works
// inside; it only relies on the command line and the HTTP contract.
//
//   const srv = await startServer();             // fresh temp data dir, shop schema
//   const r = await srv.api('POST', '/api/customer', {name: 'Ada'});
//   r.status, r.headers, r.body (parsed JSON or undefined), r.text (raw)
//   await srv.stop();                            // SIGTERM, waits, returns {code, signal}
//   await srv.kill9();
//
// Every server started here is remembered; `stopAll()` (use it in `after`)
// and process exit kill whatever is left.
//
// A suite that shares one server between all its tests:
//   const suite = fileServer({ schema: shopPlus({...}) });   // at the top level
//   const { api } = suite;        // usable in tests; suite.srv is the server
//
// Backends: with TALLY_DB_URL unset (or sqlite:…) every server is SQLite,
// `--data DIR`. With TALLY_DB_URL=postgresql://USER@HOST:PORT (a base URL: a
// database name in it is ignored; scripts/pg.sh prints one) every server is
// PostgreSQL: each data folder gets a database of its own on that cluster,
// created on first use and named after the folder, so a server restarted on
// the same dataDir finds its data again; the server gets `--db BASE/NAME`
// in place of `--data DIR` (the folder is still made, for traces and such).
//   BACKEND                  'sqlite' | 'postgres'
//   dbArgs(dataDir)          the flags naming that folder's store: for runTally(['serve', …])
//   dbUrl(dataDir)           that store as one string (folder, or database URL): for `tally copy --to`
//   startServer({backend: 'sqlite'})    one SQLite server whatever the backend under test
//   test(name, sqliteOnly('why'), fn)   skipped on PostgreSQL, saying why
// The databases are dropped when the test process exits (TALLY_KEEP_TMP keeps them).

import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../..');
export const TALLY_BIN = process.env.TALLY_BIN || path.join(ROOT, 'build', 'tally');
export const SHOP_SCHEMA = path.join(ROOT, 'examples', 'shop.json');

const live = new Set();       // running child processes started by this module
const tempDirs = new Set();

// ---------- the backend under test ----------

const DB_URL = (process.env.TALLY_DB_URL || '').trim();
const PG_URL = /^postgres(ql)?:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(DB_URL);
if (DB_URL && !PG_URL && !/^sqlite:/.test(DB_URL)) {
  throw new Error(`TALLY_DB_URL must be postgresql://USER@HOST:PORT or sqlite:…, not ${DB_URL}`);
}
/** 'sqlite' or 'postgres': the store every server of this test process uses. */
export const BACKEND = PG_URL ? 'postgres' : 'sqlite';
const PG_BASE = PG_URL ? `postgresql://${PG_URL[2]}` : null;   // no database, no query
const PG_QUERY = PG_URL ? (PG_URL[4] || '') : '';
const pgDatabases = new Set();  // databases this process created

/** psql: $PSQL, else the newest server version's own (skips Debian's perl wrapper), else PATH. */
const PSQL = process.env.PSQL || (() => {
  try {
    const vs = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a);
    for (const v of vs) {
      const p = `/usr/lib/postgresql/${v}/bin/psql`;
      if (existsSync(p)) return p;
    }
  } catch { /* no server packages */ }
  return 'psql';
})();

function psql(database, sqls, { timeoutMs = 30000 } = {}) {
  const args = ['-X', '-q', '-d', `${PG_BASE}/${database}${PG_QUERY}`];
  for (const q of sqls) args.push('-c', q);
  return spawnSync(PSQL, args, { encoding: 'utf8', timeout: timeoutMs });
}

/** The PostgreSQL database name for a data folder: readable, unique per folder, under 63 bytes. */
export function pgDatabaseName(dataDir) {
  const abs = path.resolve(dataDir);
  const hash = createHash('sha256').update(abs).digest('hex').slice(0, 12);
  const base = path.basename(abs).toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 40);
  return `t_${base}_${hash}`;
}

function ensurePgDatabase(dataDir) {
  const name = pgDatabaseName(dataDir);
  if (pgDatabases.has(name)) return name;
  const r = psql('postgres', [`CREATE DATABASE "${name}"`]);
  if (r.error) throw new Error(`cannot run ${PSQL} to create a test database: ${r.error.message}`);
  if (r.status !== 0 && !/already exists/.test(r.stderr)) {
    throw new Error(`CREATE DATABASE ${name} on ${PG_BASE} failed (exit ${r.status}): ${r.stderr}`);
  }
  pgDatabases.add(name);
  return name;
}

/**
 * The command-line flags that name the store of a data folder on the backend
 * under test: ['--data', dir] on SQLite; on PostgreSQL ['--db', url] of the
 * folder's own database (created if need be). For tests that run
 * `tally serve`/`migrate` themselves through runTally.
 */
export function dbArgs(dataDir, backend = BACKEND) {
  if (backend === 'none') return [];
  if (backend === 'sqlite') return ['--data', dataDir];
  return ['--db', dbUrl(dataDir, backend)];
}

/**
 * The store of a data folder as a URL-or-path: the folder on SQLite, its
 * database's URL on PostgreSQL (created if need be).
 */
export function dbUrl(dataDir, backend = BACKEND) {
  if (backend === 'none') return null;
  if (backend === 'sqlite') return dataDir;
  if (backend !== 'postgres') throw new Error(`unknown backend ${backend}: sqlite, postgres or none`);
  if (!PG_BASE) throw new Error('a PostgreSQL server was asked for, but TALLY_DB_URL is not a postgresql:// URL');
  return `${PG_BASE}/${ensurePgDatabase(dataDir)}${PG_QUERY}`;
}

/**
 * Test options for a test (or describe) that only means something on SQLite
 * (the data folder's files, its flock, fsyncs counted on it): skipped on
 * PostgreSQL with the reason given. Other options may be passed along:
 *   test('name', sqliteOnly('the data folder flock', { skip: noStrace }), fn)
 */
export function sqliteOnly(reason, opts = {}) {
  if (BACKEND === 'sqlite') return opts;
  return { ...opts, skip: `SQLite only: ${reason}` };
}

process.on('exit', () => {
  for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  if (!process.env.TALLY_KEEP_TMP) {
    for (const d of tempDirs) { try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ } }
    if (pgDatabases.size > 0) {
      // WITH (FORCE) ends the sessions of servers just killed that PostgreSQL has not noticed yet.
      psql('postgres', [...pgDatabases].map((n) => `DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`));
    }
  }
});

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'tally-e2e-') {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** Write a schema object (or raw text) into a temp file and return its path. */
export function writeSchema(schema, dir = tempDir('tally-schema-')) {
  const file = path.join(dir, `schema-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, typeof schema === 'string' ? schema : JSON.stringify(schema, null, 2));
  return file;
}

/** The shop schema of README.md, "Schema" as an object (a fresh copy each call). */
export function shopSchema() {
  return JSON.parse(readFileSync(SHOP_SCHEMA, 'utf8'));
}

/** Shop schema plus extra models; returns the path of a temp schema file. */
export function shopPlus(extraModels) {
  const s = shopSchema();
  Object.assign(s.models, extraModels);
  return writeSchema(s);
}

/** Build an `api(method, path, body, opts)` function for a base URL. */
export function makeApi(baseUrl) {
  return async function api(method, urlPath, body, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
        headers['content-type'] = 'application/json';
      }
    }
    const res = await fetch(baseUrl + urlPath, { method, headers, body: payload, signal: opts.signal });
    const text = await res.text();
    let parsed;
    try { parsed = text.length ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
}

/** GET over HTTPS trusting ca (PEM text): {status, headers, text}. */
export function httpsGet(url, ca) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    }).on('error', reject);
  });
}

function onceExit(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode });
      return;
    }
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Children of a pid (used to find the server under a wrapper such as strace). */
function childPids(pid) {
  const out = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(ent));
    } catch { /* raced with exit */ }
  }
  return out;
}

/**
 * Start `tally serve` on 127.0.0.1:0.
 * opts: schema (path, default examples/shop.json), dataDir (default: fresh temp
 * dir; on PostgreSQL it names the server's database, see dbArgs), backend
 * ('sqlite' | 'postgres' | 'none': default BACKEND; 'none' passes no store
 * flag, for args that name one themselves), args (extra flags), wrap (argv
 * prefix, e.g. ['strace', ...]), env, startTimeoutMs, ca (PEM text: the
 * certificate an HTTPS server's /health is checked against).
 */
export async function startServer(opts = {}) {
  const schema = opts.schema || SHOP_SCHEMA;
  const dataDir = opts.dataDir || tempDir('tally-data-');
  mkdirSync(dataDir, { recursive: true });
  const backend = opts.backend || BACKEND;
  const serveArgs = ['serve', '--schema', schema, ...dbArgs(dataDir, backend), '--listen', '127.0.0.1:0', ...(opts.args || [])];
  const argv = opts.wrap ? [...opts.wrap, TALLY_BIN, ...serveArgs] : [TALLY_BIN, ...serveArgs];
  const proc = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env || {}) },
  });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = onceExit(proc).then((r) => { live.delete(proc); return r; });

  const listening = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /tally: listening on (https?:\/\/127\.0\.0\.1:(\d+))/.exec(stdout);
      if (m) resolve({ url: m[1], port: Number(m[2]) });
    });
    proc.once('error', (e) => reject(new Error(`cannot run ${argv[0]}: ${e.message}`)));
    exited.then((r) => reject(new Error(
      `tally exited before listening (code ${r.code}, signal ${r.signal})\nargv: ${argv.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`)));
  });
  const startTimeout = opts.startTimeoutMs ?? 20000;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(
      `tally did not print its listening line within ${startTimeout} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), startTimeout);
  });
  let where;
  try {
    where = await Promise.race([listening, timeout]);
  } catch (e) {
    clearTimeout(timer);
    proc.kill('SIGKILL');
    await exited;
    throw e;
  }
  clearTimeout(timer);

  const api = makeApi(where.url);
  // Wait for /health (the listening line should already mean it serves).
  for (let i = 0; ; i++) {
    try {
      if (where.url.startsWith('https:')) {   // opts.ca: the PEM the server's certificate is checked against
        if ((await httpsGet(where.url + '/health', opts.ca)).status === 200) break;
      } else {
        const r = await fetch(where.url + '/health');
        await r.arrayBuffer();
        if (r.status === 200) break;
      }
    } catch { /* not yet */ }
    if (i > 200) { proc.kill('SIGKILL'); await exited; throw new Error(`/health never answered 200\nstderr: ${stderr}`); }
    await sleep(50);
  }

  /** pid of the tally process itself (differs from proc.pid under a wrapper). */
  function serverPid() {
    if (!opts.wrap) return proc.pid;
    const kids = childPids(proc.pid);
    if (kids.length !== 1) throw new Error(`expected one child of wrapper ${proc.pid}, found ${kids}`);
    return kids[0];
  }
  const pid = serverPid();

  const srv = {
    url: where.url,
    port: where.port,
    dataDir,
    /** what the server was given: the folder (SQLite) or the database URL (PostgreSQL) */
    db: dbUrl(dataDir, backend),
    backend,
    schema,
    proc,
    pid,
    api,
    exited,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    /** Send a signal (SIGTERM by default) and wait for exit; returns {code, signal}. */
    async stop(signal = 'SIGTERM', timeoutMs = 15000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      try { process.kill(pid, signal); } catch { /* already gone */ }
      let t;
      const r = await Promise.race([
        exited,
        new Promise((resolve) => { t = setTimeout(() => resolve(null), timeoutMs); }),
      ]);
      clearTimeout(t);
      if (r === null) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`tally did not exit within ${timeoutMs} ms of ${signal}\nstderr: ${stderr}`);
      }
      return r;
    },
    /** SIGKILL the server and wait until it is gone. */
    async kill9() {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      return exited;
    },
  };
  return srv;
}

/**
 * One server for the whole test file: started (with startServer's `opts`) in a
 * `before` hook, and every server stopped in an `after` hook. Call it at the top
 * level of a test file. Returns `{srv, api}`: `srv` is the server once the hook
 * has run (a test may set it to a restarted one), `api` calls `srv.api`
 * whichever server that is at the time. (node:test starts top-level `before`
 * hooks at once, side by side: a suite that must load data into the server
 * first starts it in its own hook instead.)
 */
export function fileServer(opts = {}) {
  const suite = {
    srv: null,
    api: (...args) => suite.srv.api(...args),
  };
  before(async () => { suite.srv = await startServer(opts); });
  after(stopAll);
  return suite;
}

/** Kill every server this process started that is still running. */
export async function stopAll() {
  const procs = [...live];
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  await Promise.all(procs.map(onceExit));
}

/**
 * Run the tally binary with arguments and wait for it to exit (or time out).
 * For commands that must fail (a second server on a locked dir, a bad schema):
 * if it prints its listening line instead, it is killed and `started` is true.
 */
export async function runTally(args, { timeoutMs = 15000 } = {}) {
  const proc = spawn(TALLY_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let stdout = '';
  let stderr = '';
  let started = false;
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    stdout += d;
    if (!started && /tally: listening on/.test(stdout)) { started = true; proc.kill('SIGKILL'); }
  });
  proc.stderr.on('data', (d) => { stderr += d; });
  let timedOut = false;
  const t = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
  const r = await onceExit(proc);
  clearTimeout(t);
  live.delete(proc);
  return { code: r.code, signal: r.signal, stdout, stderr, started, timedOut };
}

// ---------- assertions and small helpers shared by the suites ----------


export const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Assert an error answer: status, JSON error body with code and message, optional path. */
export function expectError(res, status, code, errPath) {
  const ctx = `answer was ${res.status} ${res.text}`;
  assert.equal(res.status, status, `expected status ${status}; ${ctx}`);
  assert.ok(res.body && typeof res.body === 'object' && res.body.error && typeof res.body.error === 'object',
    `expected an {"error": {...}} body; ${ctx}`);
  const codes = Array.isArray(code) ? code : [code];
  assert.ok(codes.includes(res.body.error.code), `expected error code ${codes.join(' or ')}; ${ctx}`);
  assert.equal(typeof res.body.error.message, 'string', `error.message must be a string; ${ctx}`);
  assert.ok(res.body.error.message.length > 0, `error.message must not be empty; ${ctx}`);
  if (errPath instanceof RegExp) {
    assert.match(String(res.body.error.path), errPath, `expected error.path to match ${errPath}; ${ctx}`);
  } else if (errPath !== undefined) {
    assert.equal(res.body.error.path, errPath, `expected error.path ${errPath}; ${ctx}`);
  }
  const ct = res.headers.get('content-type') || '';
  assert.match(ct, /application\/json/, `error content-type should be JSON; ${ctx}`);
}

/** Assert a 2xx answer with the given status, with the answer text in the message. */
export function expectStatus(res, status) {
  assert.equal(res.status, status, `expected ${status}; answer was ${res.status} ${res.text}`);
}

/** Every record of a model, following cursors. */
export async function listAll(api, model, pageSize = 1000) {
  const out = [];
  let after = null;
  for (let i = 0; i < 10000; i++) {
    const q = `first=${pageSize}` + (after ? `&after=${encodeURIComponent(after)}` : '');
    const r = await api('GET', `/api/${model}?${q}`);
    assert.equal(r.status, 200, `listing ${model}: ${r.status} ${r.text}`);
    out.push(...r.body.records);
    if (r.body.next === null) return out;
    after = r.body.next;
  }
  throw new Error('listing did not end');
}

/** Parse Prometheus text: {name: summed value over label sets}. */
export function parseMetrics(text) {
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const mm = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$/.exec(line.trim());
    if (!mm) continue;
    m[mm[1]] = (m[mm[1]] || 0) + Number(mm[3]);
  }
  return m;
}

export async function metrics(srv) {
  const r = await fetch(srv.url + '/metrics');
  const text = await r.text();
  assert.equal(r.status, 200, `/metrics: ${r.status} ${text}`);
  return parseMetrics(text);
}

/** Run `fn(i)` for i in 0..n-1 with all of them started at once. */
export function parallel(n, fn) {
  return Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
}

export { sleep };
