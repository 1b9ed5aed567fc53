// transaction.ts — interactive transactions over the WebSocket at /api/ws:
// begin, one step per call (the same model calls as over HTTP), commit when
// the callback returns, rollback when it throws. The server's own rollback
// (a failed step, the timeout's `rolledBack` event) becomes the error the
// transaction throws; with `retries`, a 409 CONFLICT that rolled the
// transaction back (PostgreSQL's serialization failure or deadlock) runs the
// callback again on a fresh transaction.

import {
  Conflict, errorFromAnswer, NetworkError, Overloaded, statusOfCode, TallyError, TransactionInDoubt,
  TransactionTimedOut,
} from './errors.js';
import type { Transport } from './http.js';
import { sleep } from './http.js';
import type { Executor } from './query.js';
import { steps } from './query.js';
import type { Step } from './types.js';

/** The WebSocket constructor: the platform's, or one given (e.g. the `ws` package's on Node 20). */
export type WebSocketClass = new (url: string) => WebSocket;

export interface TransactionOptions {
  /** Roll back on the server this long after begin (default 5,000; the server caps it at its --max-txn-ms). */
  timeoutMs?: number;
  /** Run the callback again this many times after a 409 CONFLICT that rolled the transaction back (default 0). */
  retries?: number;
  /** The first retry's delay (doubling). Default 20 ms. */
  retryDelayMs?: number;
}

interface Pending {
  resolve: (msg: any) => void;
  reject: (e: unknown) => void;
  commit: boolean;
}

/** One WebSocket to /api/ws, calls matched to answers by id. */
class Socket {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed: TallyError | null = null;
  onEvent: (msg: any) => void = () => {};

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (ev: MessageEvent) => this.message(ev.data));
    ws.addEventListener('close', (ev: CloseEvent) => this.lost(`the connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
    ws.addEventListener('error', () => this.lost('the connection failed'));
  }

  static open(Impl: WebSocketClass, url: string, timeoutMs: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try { ws = new Impl(url); } catch (e) { reject(e); return; }
      const shown = url.replace(/access_token=[^&]*/, 'access_token=…');
      const t = setTimeout(() => { fail(`no connection within ${timeoutMs} ms`); try { ws.close(); } catch { /* */ } }, timeoutMs);
      const fail = (why: string) => {
        clearTimeout(t);
        reject(new NetworkError(`cannot open ${shown}: ${why}`, { code: 'NETWORK', status: 0 }));
      };
      ws.addEventListener('open', () => { clearTimeout(t); resolve(new Socket(ws)); }, { once: true });
      ws.addEventListener('error', () => fail('the connection failed'), { once: true });
      ws.addEventListener('close', (ev: CloseEvent) => fail(`closed with ${ev.code}`), { once: true });
    });
  }

  private message(data: unknown) {
    let msg: any;
    try { msg = JSON.parse(typeof data === 'string' ? data : String(data)); } catch { return; }
    if (msg && typeof msg.event === 'string') return this.onEvent(msg);
    const p = typeof msg?.id === 'number' ? this.pending.get(msg.id) : undefined;
    if (!p) return;
    this.pending.delete(msg.id);
    p.resolve(msg);
  }

  private lost(why: string) {
    if (this.closed) return;
    this.closed = new NetworkError(`the WebSocket to the server was lost: ${why}`, { code: 'NETWORK', status: 0 });
    for (const [, p] of this.pending) {
      p.reject(p.commit
        ? new TransactionInDoubt(`the connection was lost while the commit was in flight: it may or may not have been applied (${why})`,
          { code: 'TRANSACTION_IN_DOUBT', status: 0 })
        : this.closed);
    }
    this.pending.clear();
  }

  /** Sends {id, ...msg}; resolves with the answer (ok or not). */
  call(msg: Record<string, unknown>): Promise<any> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, commit: msg.op === 'commit' });
      this.ws.send(JSON.stringify({ id, ...msg }));
    });
  }

  close() {
    this.closed ??= new NetworkError('the transaction is over', { code: 'NETWORK', status: 0 });
    try { this.ws.close(1000); } catch { /* already closed */ }
  }
}

function errorOf(msg: any): TallyError {
  const code = msg?.error?.code;
  return errorFromAnswer(typeof code === 'string' ? statusOfCode(code) : 500, msg, msg?.rolledBack === true);
}

/** The steps of one open transaction, run one at a time in call order. */
export class TransactionRunner implements Executor {
  /** Why the server rolled it back, once it has: every later call throws this. */
  aborted: TallyError | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly abortWaiters = new Set<(e: TallyError) => void>();

  constructor(private readonly sock: Socket) {
    sock.onEvent = (ev) => {
      if (ev.event === 'rolledBack') {
        this.abort(new TransactionTimedOut(
          `the server rolled the transaction back (${ev.reason ?? 'timeout'}): it stayed open past its timeoutMs; nothing of it was applied`,
          { code: 'TRANSACTION_TIMED_OUT', status: 409, rolledBack: true }));
      }
    };
  }

  private abort(e: TallyError) {
    if (this.aborted) return;
    this.aborted = e;
    for (const w of this.abortWaiters) w(e);
  }

  run<T>(step: Step, pick: (result: any) => T): Promise<T> {
    const next = this.chain.then(() => this.send(step)).then(pick);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private send(step: Step): Promise<any> {
    if (this.aborted) return Promise.reject(this.aborted);
    return new Promise((resolve, reject) => {
      const onAbort = (e: TallyError) => reject(e);
      this.abortWaiters.add(onAbort);
      this.sock.call({ op: 'step', step }).then((msg) => {
        this.abortWaiters.delete(onAbort);
        if (msg.ok) return resolve(msg.result);
        const e = errorOf(msg);
        if (msg.rolledBack) this.abort(e);
        reject(this.aborted && this.aborted !== e ? this.aborted : e);
      }, (e) => { this.abortWaiters.delete(onAbort); reject(e); });
    });
  }

  async begin(timeoutMs: number | undefined) {
    const msg = await this.sock.call(timeoutMs === undefined ? { op: 'begin' } : { op: 'begin', timeoutMs });
    if (!msg.ok) throw errorOf(msg);
  }

  async commit() {
    await this.chain;
    if (this.aborted) throw this.aborted;
    const msg = await this.sock.call({ op: 'commit' });
    if (msg.ok) return;
    const e = errorOf(msg);
    throw this.aborted ?? e;
  }

  async rollback() {
    await this.chain;
    try { await this.sock.call({ op: 'rollback' }); } catch { /* closing the connection rolls back too */ }
  }

  checkLock(name: string, token: string) {
    return this.run(steps.checkLock(name, token), (r) => r as { fence: number; expiresAt: string });
  }
}

export function isRetryableConflict(e: unknown): boolean {
  return e instanceof Conflict && e.rolledBack;
}

/**
 * Runs fn in one interactive transaction (see TransactionOptions); `makeTx`
 * wraps a runner in the model proxy the callback sees.
 */
export async function runTransaction<Tx, T>(
  transport: Transport,
  Impl: WebSocketClass | undefined,
  makeTx: (runner: TransactionRunner, attempt: number) => Tx,
  fn: (tx: Tx) => Promise<T> | T,
  o: TransactionOptions = {},
): Promise<T> {
  if (typeof fn !== 'function') throw new TypeError('transaction() takes an async function (tx) => …');
  if (!Impl) {
    throw new TypeError('this platform has no WebSocket (Node before 22): pass createClient({WebSocket}), e.g. ' +
      "`import WebSocket from 'ws'`");
  }
  const retries = o.retries ?? 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptOnce(transport, Impl, makeTx, fn, o.timeoutMs, attempt);
    } catch (e) {
      if (attempt < retries && isRetryableConflict(e)) {
        await sleep(Math.min(1000, (o.retryDelayMs ?? 20) * 2 ** attempt) * (0.5 + Math.random() / 2));
        continue;
      }
      throw e;
    }
  }
}

async function attemptOnce<Tx, T>(
  transport: Transport, Impl: WebSocketClass, makeTx: (runner: TransactionRunner, attempt: number) => Tx,
  fn: (tx: Tx) => Promise<T> | T, timeoutMs: number | undefined, attempt: number,
): Promise<T> {
  const sock = await Socket.open(Impl, transport.wsUrl(), transport.timeoutMs);
  try {
    const runner = new TransactionRunner(sock);
    // begin: OVERLOADED (every transaction slot taken) says nothing started, so it is retried.
    for (let i = 0; ; i++) {
      try {
        await runner.begin(timeoutMs);
        break;
      } catch (e) {
        if (e instanceof Overloaded && i < transport.retries) { await sleep(transport.backoff(i)); continue; }
        throw e;
      }
    }
    let result: T;
    try {
      result = await fn(makeTx(runner, attempt));
    } catch (e) {
      if (!runner.aborted) await runner.rollback();
      // A conflict that rolled it back decides the retry, whatever the callback made of it.
      throw isRetryableConflict(runner.aborted) ? runner.aborted : e;
    }
    await runner.commit();
    return result;
  } finally {
    sock.close();
  }
}
