// Helpers for suites that use API keys (README "Access: keys, scopes,
// origins"): create and revoke keys with the real `tally keys` command
// against a server's store, call the API with a token, open WebSockets with
// chosen headers, and poll until a change has reached a server.
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { dbArgs, runTally, sleep } from './server.mjs';
import { WsClient } from './wsclient.mjs';

/** `tally keys create` against srv's store (while it serves): the token it printed. */
export async function createKey(srvOrDir, name, scopes, backend) {
  const dir = typeof srvOrDir === 'string' ? srvOrDir : srvOrDir.dataDir;
  const args = ['keys', 'create', '--name', name, ...scopes.flatMap((s) => ['--scope', s]), ...dbArgs(dir, backend)];
  const r = await runTally(args);
  assert.equal(r.code, 0, `tally keys create failed: ${r.stderr}`);
  const token = r.stdout.trim();
  assert.match(token, /^tly_[A-Za-z0-9_-]{43}$/, `the token alone on stdout, not ${JSON.stringify(r.stdout)}`);
  return token;
}

/** `tally keys revoke NAME` against srv's store. */
export async function revokeKey(srvOrDir, name, backend) {
  const dir = typeof srvOrDir === 'string' ? srvOrDir : srvOrDir.dataDir;
  const r = await runTally(['keys', 'revoke', name, ...dbArgs(dir, backend)]);
  assert.equal(r.code, 0, `tally keys revoke failed: ${r.stderr}`);
  return r;
}

/** srv.api with Authorization: Bearer token (and any other headers). */
export function withToken(srv, token, extraHeaders = {}) {
  return (method, path, body, opts = {}) => srv.api(method, path, body, {
    ...opts,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extraHeaders, ...(opts.headers || {}) },
  });
}

/** Polls check() (truthy when done) every 50 ms; fails after ms. Returns how long it took. */
export async function within(ms, what, check) {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > ms) assert.fail(`${what}: not seen within ${ms} ms`);
    await sleep(50);
  }
}

/**
 * Opens /api/ws with options ({headers, origin, query}): {client} once open, or
 * {status, body} when the upgrade is refused with an HTTP answer.
 */
export function openWs(srv, { query = '', headers = {}, origin } = {}) {
  const url = `ws://127.0.0.1:${srv.port}/api/ws${query}`;
  const ws = new WebSocket(url, { perMessageDeflate: false, headers, ...(origin ? { origin } : {}) });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ client: new WsClient(ws) }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let parsed;
        try { parsed = JSON.parse(body); } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    ws.once('error', reject);
  });
}

/**
 * One HTTP/1.1 request with exactly the headers given (Host and Origin
 * included, which fetch will not let a caller choose): {status, headers, body, text}.
 */
export function rawRequest(srv, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, method, path, headers, setHost: !('host' in headers) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let parsed;
        try { parsed = text.length ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}
