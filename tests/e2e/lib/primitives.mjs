// Helpers for the locks, rate-limit and idempotency suites.
//
// HeaderConnection is the lean keep-alive client of rawhttp.mjs with extra
// request headers (Idempotency-Key, or bytes fetch refuses to send), so that
// many requests are really at the server at once.
import assert from 'node:assert/strict';
import { RawConnection } from './rawhttp.mjs';
import { shopSchema, writeSchema } from './server.mjs';

export class HeaderConnection extends RawConnection {
  /**
   * One request; `headers` is an object of extra header lines. Values are sent
   * as given (latin1), so a test can send a malformed header on purpose.
   * The answer has the shape of api(): {status, headers, text, body}.
   */
  send(method, path, body, headers = {}) {
    const bodyText = body === undefined ? '' : (typeof body === 'string' ? body : JSON.stringify(body));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      const len = Buffer.byteLength(bodyText, 'utf8');
      let extra = '';
      for (const [k, v] of Object.entries(headers)) extra += `${k}: ${v}\r\n`;
      const head = `${method} ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${len}\r\n${extra}\r\n`;
      this.sock.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(bodyText, 'utf8')]));
    });
  }
}

/** Open n HeaderConnections to a server. */
export async function headerConnections(srv, n) {
  const conns = Array.from({ length: n }, () => new HeaderConnection('127.0.0.1', srv.port));
  await Promise.all(conns.map((c) => c.connect()));
  return conns;
}

/** Close connections (ignores ones already closed). */
export function closeAll(conns) {
  for (const c of conns) { try { c.close(); } catch { /* gone */ } }
}

/** The schema of the limits/idempotency suites: the shop models plus rate limits. */
export const LIMITS = {
  login: { rate: 10, periodMs: 60000, burst: 5 },   // T = 6000 ms
  fast: { rate: 20, periodMs: 1000, burst: 5 },     // T = 50 ms
  slow: { rate: 4, periodMs: 2000, burst: 5 },      // T = 500 ms
};

export function shopWithLimits(limits = LIMITS) {
  const s = shopSchema();
  s.limits = limits;
  return writeSchema(s);
}

export const HEX32 = /^[0-9a-f]{32}$/;

/** Path of a lock operation for a (not yet encoded) name. */
export const lockPath = (name, op) => `/api/locks/${encodeURIComponent(name)}/${op}`;

/** Path of a rate-limit call for a (not yet encoded) key. */
export const limitPath = (limit, key) => `/api/limits/${encodeURIComponent(limit)}/${encodeURIComponent(key)}`;

/** GET /api/locks as a map name -> {name, fence, expiresAt}; checks the shape. */
export async function lockTable(api) {
  const r = await api('GET', '/api/locks');
  assert.equal(r.status, 200, `GET /api/locks: ${r.status} ${r.text}`);
  assert.ok(r.body && Array.isArray(r.body.locks), `GET /api/locks: expected {"locks": [...]}, got ${r.text}`);
  const m = new Map();
  for (const l of r.body.locks) {
    assert.deepEqual(Object.keys(l).sort(), ['expiresAt', 'fence', 'name'], `lock entry ${JSON.stringify(l)}`);
    m.set(l.name, l);
  }
  return { map: m, text: r.text };
}

/** Acquire and assert a grant; returns {token, fence, expiresAt}. */
export async function acquire(api, name, body = { ttlMs: 30000 }) {
  const r = await api('POST', lockPath(name, 'acquire'), body);
  assert.equal(r.status, 200, `acquire ${name}: ${r.status} ${r.text}`);
  return r.body;
}

/** Release and assert success. */
export async function release(api, name, token) {
  const r = await api('POST', lockPath(name, 'release'), { token });
  assert.equal(r.status, 200, `release ${name}: ${r.status} ${r.text}`);
  return r.body;
}

/** Sends POST path on every connection at once, closes them, and returns the answers with the allowed (200) and refused (429) ones. */
export async function raceAll(conns, path) {
  let rs;
  try {
    rs = await Promise.all(conns.map((c) => c.send('POST', path)));
  } finally {
    closeAll(conns);
  }
  return { rs, ok: rs.filter((r) => r.status === 200), no: rs.filter((r) => r.status === 429) };
}
