// http.ts — the client's HTTP transport: one call is one request (JSON in and
// out, Bearer token), every write carries a fresh Idempotency-Key, and calls
// are retried only when that is safe: a 503 (the server says nothing was
// applied), or no answer at all for a read or for a write with its key (the
// server replays the stored answer of a write that did happen).

import { errorFromAnswer, NetworkError, TallyError } from './errors.js';

export interface TransportOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** An API key's token, sent as `Authorization: Bearer TOKEN`. */
  token?: string | undefined;
  /** How long one attempt may take before it is abandoned (and retried if safe). Default 30,000 ms. */
  timeoutMs?: number | undefined;
  /** Attempts after the first for a call that is safe to retry. Default 3. */
  retries?: number | undefined;
  /** The first retry's delay; each next one doubles, up to 2 s. Default 50 ms. */
  retryDelayMs?: number | undefined;
  /** Send an Idempotency-Key with every write (default true). Off: no key, and writes are retried only after a 503. */
  idempotency?: boolean | undefined;
  /** Headers added to every request. */
  headers?: Record<string, string> | undefined;
  /** A fetch implementation (default: the platform's). */
  fetch?: typeof fetch | undefined;
}

export interface CallOptions {
  /** A write: gets an Idempotency-Key (unless `idempotencyKey: null`). */
  write?: boolean;
  /** The key to send instead of a fresh one; null for none. */
  idempotencyKey?: string | null;
  /** Statuses answered to the caller instead of thrown (e.g. 429 for a limit check). */
  accept?: number[];
  /** This call's attempt timeout (a lock acquire waits on the server). */
  timeoutMs?: number;
  /** This call's retries. */
  retries?: number;
  signal?: AbortSignal | undefined;
}

export interface Answer<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

/** A random key for one call (crypto.randomUUID where the platform has it). */
export function randomKey(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class Transport {
  readonly baseUrl: string;
  readonly token: string | undefined;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly idempotency: boolean;
  private readonly extraHeaders: Record<string, string>;
  private readonly fetchImpl: typeof fetch;

  constructor(o: TransportOptions) {
    if (!o || typeof o.url !== 'string' || !/^https?:\/\//.test(o.url)) {
      throw new TypeError(`createClient needs {url: "http://HOST:PORT"} (http or https), not ${JSON.stringify(o?.url)}`);
    }
    this.baseUrl = o.url.replace(/\/+$/, '');
    this.token = o.token || undefined;
    this.timeoutMs = o.timeoutMs ?? 30000;
    this.retries = o.retries ?? 3;
    this.retryDelayMs = o.retryDelayMs ?? 50;
    this.idempotency = o.idempotency ?? true;
    this.extraHeaders = { ...(o.headers || {}) };
    const f = o.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (typeof f !== 'function') throw new TypeError('this platform has no fetch: pass createClient({fetch})');
    this.fetchImpl = f.bind(globalThis);
  }

  /** The delay before retry number `attempt` (0-based): doubling with jitter, at most 2 s. */
  backoff(attempt: number): number {
    const base = Math.min(2000, this.retryDelayMs * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  /**
   * One call: method, path under the base URL, optional JSON body. Answers
   * the parsed body of a 2xx (or an accepted status); throws the TallyError
   * subclass of the error's code otherwise.
   */
  async call<T = unknown>(method: string, path: string, body?: unknown, opts: CallOptions = {}): Promise<Answer<T>> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.extraHeaders };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const write = opts.write ?? (method !== 'GET' && method !== 'HEAD');
    const key = opts.idempotencyKey === null ? null
      : opts.idempotencyKey ?? (write && this.idempotency ? randomKey() : null);
    if (key) headers['idempotency-key'] = key;
    // Without an answer, a repeat is safe for a read, or for a write the server can recognise by its key.
    const safeWithoutAnswer = !write || key !== null;
    const retries = opts.retries ?? this.retries;
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      let text: string;
      const ctl = new AbortController();
      const onAbort = () => ctl.abort(opts.signal?.reason);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => ctl.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      try {
        res = await this.fetchImpl(this.baseUrl + path, { method, headers, body: payload, signal: ctl.signal });
        text = await res.text();
      } catch (cause) {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (safeWithoutAnswer && attempt < retries) {
          await sleep(this.backoff(attempt), opts.signal);
          continue;
        }
        const why = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
        throw new NetworkError(
          `${method} ${path}: no answer from ${this.baseUrl} (${why})` +
            (write && !key ? '; it may or may not have been applied (no Idempotency-Key, so it was not retried)' : ''),
          { code: 'NETWORK', status: 0, cause });
      }
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      let parsed: unknown = undefined;
      if (text.length) {
        try { parsed = JSON.parse(text); } catch { parsed = text; }
      }
      if ((res.status >= 200 && res.status < 300) || opts.accept?.includes(res.status)) {
        return { status: res.status, body: parsed as T, headers: res.headers };
      }
      const err: TallyError = errorFromAnswer(res.status, parsed);
      // 503: OVERLOADED or UNAVAILABLE, never applied: always safe to send again.
      if (res.status === 503 && attempt < retries) {
        const ra = Number(res.headers.get('retry-after'));
        await sleep(ra > 0 ? Math.min(ra * 1000, 5000) : this.backoff(attempt), opts.signal);
        continue;
      }
      throw err;
    }
  }

  /** The WebSocket URL of /api/ws, with the token as access_token (a browser's WebSocket cannot set headers). */
  wsUrl(): string {
    const u = this.baseUrl.replace(/^http/, 'ws') + '/api/ws';
    return this.token ? `${u}?access_token=${encodeURIComponent(this.token)}` : u;
  }
}
