// Tools for the robustness suite (robustness.test.mjs): a seeded PRNG, a JSON
// writer that can emit what JSON.stringify cannot (raw number tokens,
// duplicate keys), a byte-exact HTTP/1.1 client on a raw socket (any method,
// any request target, any header bytes, pipelining), and the checks every
// answer must pass (README.md, "Errors": a JSON error with a documented code).
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------- seeded randomness ----------

/** sfc32 seeded from one 32-bit number; deterministic for a seed. */
export function makeRng(seed) {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  const rng = {
    float: next,
    /** integer in [0, n) */
    int: (n) => Math.floor(next() * n),
    /** integer in [lo, hi] */
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    /** pick from [[weight, value], ...] */
    weighted: (pairs) => {
      const total = pairs.reduce((s, [w]) => s + w, 0);
      let x = next() * total;
      for (const [w, v] of pairs) { if ((x -= w) < 0) return v; }
      return pairs[pairs.length - 1][1];
    },
    /** a child generator, so that one part's draws do not shift another's */
    fork: () => makeRng(Math.floor(next() * 4294967296)),
  };
  return rng;
}

/**
 * The seed of a run: FUZZ_SEED from the environment; else, under CI, a fixed
 * seed (a CI run must be repeatable); else the clock, so that every local run
 * explores new inputs (a failure prints its seed).
 */
export function runSeed() {
  const env = process.env.FUZZ_SEED;
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  if (process.env.CI) return 20261123;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

// ---------- JSON with raw tokens and duplicate keys ----------

/** A piece of JSON text written as is (a number JS cannot hold, deep nesting, garbage). */
export class Raw {
  constructor(text) { this.text = text; }
}
export const raw = (t) => new Raw(t);

/** Extra key/value pairs written after an object's own keys: duplicate keys. */
export const DUP = Symbol('duplicate keys');

/** Serialize a tree of plain values, Raw pieces and DUP pairs. */
export function ser(v) {
  if (v instanceof Raw) return v.text;
  if (v === undefined) return 'null';
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isFinite(v) ? (Object.is(v, -0) ? '-0' : String(v)) : 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return `[${v.map(ser).join(',')}]`;
  const parts = Object.keys(v).map((k) => `${JSON.stringify(k)}:${ser(v[k])}`);
  for (const [k, x] of v[DUP] || []) parts.push(`${JSON.stringify(k)}:${ser(x)}`);
  return `{${parts.join(',')}}`;
}

/** Does a tree hold a Raw piece (text whose meaning only the server's parser decides)? */
export function hasRaw(v) {
  if (v instanceof Raw) return true;
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some(hasRaw);
  return Object.keys(v).some((k) => hasRaw(v[k])) || (v[DUP] || []).some(([, x]) => hasRaw(x));
}

/** A deep copy of a tree (keeps Raw and DUP). */
export function clone(v) {
  if (v === null || typeof v !== 'object' || v instanceof Raw) return v;
  if (Array.isArray(v)) return v.map(clone);
  const o = {};
  for (const k of Object.keys(v)) o[k] = clone(v[k]);
  if (v[DUP]) o[DUP] = v[DUP].map(([k, x]) => [k, clone(x)]);
  return o;
}

/** Every position in a tree: [{parent, key, value}] (the root has parent null). */
export function positions(tree) {
  const out = [{ parent: null, key: null, value: tree }];
  const walk = (v, depth) => {
    if (depth > 40 || v === null || typeof v !== 'object' || v instanceof Raw) return;
    const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    for (const k of keys) {
      out.push({ parent: v, key: k, value: v[k] });
      walk(v[k], depth + 1);
    }
  };
  walk(tree, 0);
  return out;
}

export const base64url = (s) => Buffer.from(s).toString('base64url');

// ---------- raw HTTP/1.1 ----------

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse one response at the start of buf. Returns null when more bytes are
 * needed, {bad} when the bytes are not a response, else {res, rest}.
 * `closed`: the peer closed, so a body without a length ends here.
 */
export function parseResponse(buf, { isHead = false, closed = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return closed && buf.length ? { bad: `incomplete head: ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}` } : null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const sm = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!sm) return { bad: `bad status line: ${JSON.stringify(lines[0].slice(0, 200))}` };
  const status = Number(sm[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  let pos = end + 4;
  let body;
  if (status >= 100 && status < 200) {
    return { res: { status, headers, body: Buffer.alloc(0), interim: true }, rest: buf.subarray(pos) };
  }
  if (isHead || status === 204 || status === 304) {
    body = Buffer.alloc(0);
  } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    for (;;) {
      const le = buf.indexOf('\r\n', pos);
      if (le < 0) return closed ? { bad: 'truncated chunked body' } : null;
      const size = parseInt(buf.subarray(pos, le).toString('latin1').split(';')[0], 16);
      if (Number.isNaN(size)) return { bad: 'bad chunk size' };
      if (size === 0) {
        const fin = buf.indexOf('\r\n', le + 2);   // trailers end with an empty line
        if (fin < 0) return closed ? { bad: 'truncated chunked trailer' } : null;
        pos = fin + 2;
        break;
      }
      if (buf.length < le + 2 + size + 2) return closed ? { bad: 'truncated chunk' } : null;
      parts.push(buf.subarray(le + 2, le + 2 + size));
      pos = le + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    if (buf.length < pos + len) return closed ? { bad: `body shorter than its Content-Length ${len}` } : null;
    body = buf.subarray(pos, pos + len);
    pos += len;
  } else {
    if (!closed) return null;
    body = buf.subarray(pos);
    pos = buf.length;
  }
  return { res: { status, headers, body }, rest: buf.subarray(pos) };
}

/** Decode an answer body: {text, json, utf8ok}. */
export function decodeBody(body) {
  let text;
  let utf8ok = true;
  try { text = utf8.decode(body); } catch { utf8ok = false; text = body.toString('latin1'); }
  let json;
  try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { text, json, utf8ok };
}

/**
 * Bytes of one request. `target` and header values are latin1 strings (so a
 * test can put any byte in them); `body` a string (UTF-8) or Buffer.
 * opts.contentLength overrides the Content-Length header (null: none);
 * opts.chunked sends the body in chunks; opts.noContentType drops that header.
 */
export function requestBytes(port, { method, target, headers = {}, body, contentLength, chunked, noContentType, noHost }) {
  const b = body === undefined ? undefined : (Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'));
  let head = `${method} ${target} HTTP/1.1\r\n`;
  if (!noHost) head += `Host: 127.0.0.1:${port}\r\n`;
  const lower = Object.keys(headers).map((k) => k.toLowerCase());
  if (b !== undefined && !noContentType && !lower.includes('content-type')) head += 'Content-Type: application/json\r\n';
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`;
  }
  let payload = b || Buffer.alloc(0);
  if (chunked && b !== undefined) {
    head += 'Transfer-Encoding: chunked\r\n';
    const parts = [];
    for (let i = 0; i < b.length; i += 4096) {
      const c = b.subarray(i, i + 4096);
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    payload = Buffer.concat(parts);
  } else if (contentLength !== null && (b !== undefined || contentLength !== undefined)) {
    head += `Content-Length: ${contentLength ?? b.length}\r\n`;
  }
  head += '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), payload]);
}

/**
 * A keep-alive connection that sends one request at a time and reconnects
 * when the server has closed. request() never throws: a failure is
 * {error: '...'} in the result.
 */
export class FuzzConnection {
  constructor(port) {
    this.port = port;
    this.sock = null;
    this.buf = Buffer.alloc(0);
    this.closed = true;
    this.kick = null;
  }

  async _connect() {
    this.buf = Buffer.alloc(0);
    this.closed = false;
    await new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: this.port, noDelay: true }, resolve);
      s.once('error', reject);
      // events of a socket this connection has already given up are ignored
      s.on('data', (d) => { if (this.sock !== s) return; this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.kick?.(); });
      s.on('error', () => { /* seen as close */ });
      s.on('close', () => { if (this.sock !== s) return; this.closed = true; this.kick?.(); });
      this.sock = s;
    });
    this.sock.removeAllListeners('error');
    this.sock.on('error', () => { /* seen as close */ });
  }

  /** Send req (see requestBytes) and read one final answer; {status, headers, body} or {error}. */
  async request(req, timeoutMs = 15000) {
    if (this.closed || !this.sock) {
      try { await this._connect(); } catch (e) { return { error: `cannot connect: ${e.message}` }; }
    }
    const bytes = requestBytes(this.port, req);
    const isHead = req.method === 'HEAD';
    const deadline = Date.now() + timeoutMs;
    this.sock.write(bytes);
    for (;;) {
      const p = parseResponse(this.buf, { isHead, closed: this.closed });
      if (p && p.bad) { this.close(); return { error: p.bad }; }
      if (p && p.res.interim) { this.buf = p.rest; continue; }
      if (p) {
        this.buf = p.rest;
        if (/close/i.test(p.res.headers.connection || '') || this.closed) this.close();
        return p.res;
      }
      if (this.closed) { this.close(); return { error: 'connection closed without an answer' }; }
      const left = deadline - Date.now();
      if (left <= 0) { this.close(); return { error: `no answer within ${timeoutMs} ms` }; }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.kick = () => { clearTimeout(t); this.kick = null; resolve(); };
      });
    }
  }

  close() {
    if (this.sock) this.sock.destroy();
    this.sock = null;
    this.closed = true;
  }
}

/**
 * Open a connection, write `chunks` (Buffers, with optional pauses: a number
 * is a pause in ms, 'end' half-closes, 'destroy' drops it), and collect every
 * answer until the server closes or `waitMs` passes without new bytes.
 * `heads[i]` says the i-th request is a HEAD (its answer has no body).
 * Returns {answers: [{status, headers, body}], bad, closedByServer}.
 */
export async function rawExchange(port, chunks, { waitMs = 400, heads = [], maxMs = 10000 } = {}) {
  let buf = Buffer.alloc(0);
  let closed = false;
  let last = Date.now();
  const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); last = Date.now(); });
  s.on('error', () => { /* seen as close */ });
  s.on('close', () => { closed = true; });
  try {
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  } catch (e) {
    return { answers: [], bad: `cannot connect: ${e.message}`, closedByServer: false };
  }
  let destroyed = false;
  for (const c of chunks) {
    if (typeof c === 'number') { await sleep(c); continue; }
    if (c === 'end') { s.end(); continue; }
    if (c === 'destroy') { s.destroy(); destroyed = true; break; }
    if (closed) break;
    await new Promise((resolve) => s.write(c, () => resolve()));
  }
  const t0 = Date.now();
  last = Date.now();
  while (!closed && !destroyed && Date.now() - last < waitMs && Date.now() - t0 < maxMs) await sleep(10);
  const closedByServer = closed && !destroyed;
  s.destroy();
  const answers = [];
  let bad;
  for (;;) {
    if (!buf.length) break;
    // heads[i]: the i-th request was a HEAD, so its answer has no body whatever its Content-Length
    const p = parseResponse(buf, { isHead: !!heads[answers.length], closed: true });
    if (!p) break;
    if (p.bad) { bad = p.bad; break; }
    buf = p.rest;
    if (!p.res.interim) answers.push(p.res);
  }
  return { answers, bad, closedByServer };
}

// ---------- the contract every answer must meet ----------

export const ALLOWED_STATUS = new Set([200, 201, 400, 404, 405, 409, 413, 422, 426, 429, 431, 503]);
/** Error codes of README.md's "Errors" table, with their status. */
export const CODE_STATUS = {
  BAD_REQUEST: 400, NOT_FOUND: 404, METHOD_NOT_ALLOWED: 405,
  GUARD_FAILED: 409, UNIQUE_VIOLATION: 409, CONFLICT: 409, EXPECTATION_FAILED: 409, LOCKED: 409, LOCK_LOST: 409,
  PAYLOAD_TOO_LARGE: 413, UPGRADE_REQUIRED: 426, HEADERS_TOO_LARGE: 431,
  VALIDATION: 422, INVARIANT: 422, OVERFLOW: 422, IDEMPOTENCY_MISMATCH: 422,
  RATE_LIMITED: 429, OVERLOADED: 503,
};

/**
 * Problems with one HTTP answer (empty list: fine).
 * req.underApi: the target is under /api (the JSON rule applies);
 * req.h2oMay: the request is malformed at the HTTP level, so h2o may answer
 * it itself with a plain-text 400/413 or close the connection.
 */
export function answerProblems(req, res) {
  const out = [];
  if (res.error) {
    if (!req.h2oMay) out.push(`no answer: ${res.error}`);
    return out;
  }
  const ct = res.headers['content-type'] || '';
  const isJson = /^application\/json/i.test(ct);
  if (req.h2oMay && !isJson && (res.status === 400 || res.status === 413 || res.status === 417)) return out; // h2o's own answer
  if (res.status >= 500 && res.status !== 503) out.push(`status ${res.status}`);
  if (!req.underApi) return out;
  if (!ALLOWED_STATUS.has(res.status)) out.push(`status ${res.status} is not one of ${[...ALLOWED_STATUS].join(',')}`);
  if (req.method === 'HEAD') return out;
  if (!isJson) out.push(`content-type ${JSON.stringify(ct)} is not application/json`);
  const { text, json, utf8ok } = decodeBody(res.body);
  if (!utf8ok) out.push('answer body is not valid UTF-8');
  if (json === undefined) { out.push(`answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`); return out; }
  if (res.status >= 400) {
    const e = json && typeof json === 'object' ? json.error : undefined;
    if (!e || typeof e !== 'object') out.push(`error answer without an error object: ${text.slice(0, 200)}`);
    else {
      if (!(e.code in CODE_STATUS)) out.push(`error code ${JSON.stringify(e.code)} is not in the documented table`);
      else if (CODE_STATUS[e.code] !== res.status) out.push(`error code ${e.code} comes with status ${res.status}, not ${CODE_STATUS[e.code]}`);
      if (typeof e.message !== 'string' || !e.message.length) out.push('error.message is not a non-empty string');
    }
    if (res.status === 405 && !res.headers.allow) out.push('405 without an Allow header');
  } else if (json === null || typeof json !== 'object') {
    out.push(`2xx answer is not a JSON object: ${text.slice(0, 200)}`);
  }
  return out;
}

/** Problems with one WebSocket answer to a message whose id was `id` (undefined: no id known). */
export function wsAnswerProblems(msg, id) {
  const out = [];
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return [`answer is not a JSON object: ${JSON.stringify(msg)}`];
  if ('__unparsable' in msg) return [`answer is not JSON: ${JSON.stringify(String(msg.__unparsable).slice(0, 200))}`];
  if (!('id' in msg)) out.push(`answer without an id: ${JSON.stringify(msg).slice(0, 200)}`);
  else if (id !== undefined && JSON.stringify(msg.id) !== JSON.stringify(id)) out.push(`answer id ${JSON.stringify(msg.id)} does not echo ${JSON.stringify(id)}`);
  if (typeof msg.ok !== 'boolean') out.push(`answer without a boolean ok: ${JSON.stringify(msg).slice(0, 200)}`);
  if (msg.ok === false) {
    const e = msg.error;
    if (!e || typeof e !== 'object') out.push(`failed answer without an error object: ${JSON.stringify(msg).slice(0, 200)}`);
    else {
      if (!(e.code in CODE_STATUS)) out.push(`error code ${JSON.stringify(e.code)} is not in the documented table`);
      if (typeof e.message !== 'string' || !e.message.length) out.push('error.message is not a non-empty string');
    }
  }
  return out;
}

/** A short, exact, printable description of a request for a report. */
export function describeRequest(req, max = 400) {
  // bytes outside printable ASCII as \xHH, so that the report is exact
  const hex = (s) => s.replace(/[^\x20-\x7e]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const esc = (s) => `"${hex(s.length > max ? s.slice(0, max) : s).replace(/"/g, '\\"')}"${s.length > max ? `…(${s.length} bytes)` : ''}`;
  const body = req.body === undefined ? '' : (Buffer.isBuffer(req.body) ? req.body.toString('latin1') : req.body);
  const h = Object.keys(req.headers || {}).length ? ` headers=${hex(JSON.stringify(req.headers).slice(0, 300))}` : '';
  const extra = [req.chunked && 'chunked', req.contentLength !== undefined && `Content-Length:${req.contentLength}`,
    req.noContentType && 'no content-type'].filter(Boolean).join(' ');
  return `${hex(req.method.length > 60 ? `${req.method.slice(0, 60)}…(${req.method.length} bytes)` : req.method)} ${esc(req.target)}${h}${extra ? ` [${extra}]` : ''}${req.body === undefined ? '' : ` body=${esc(body)}`}`;
}
