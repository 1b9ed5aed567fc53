// locks.ts — locks with fencing tokens and GCRA rate limits (README, "Locks,
// rate limits and safe retries"). withLock takes a lock, renews its lease in
// the background while the callback runs, hands the callback the fence (and
// an AbortSignal that fires if the lease is lost), and releases it after.

import { LockLost, TallyError } from './errors.js';
import type { Transport } from './http.js';
import { sleep } from './http.js';

export interface Lease {
  name: string;
  /** The holder's secret: renew, release and checkLock need it. */
  token: string;
  /** Grows by one with every grant of this name: pass it to what you write to, so it can refuse an older one. */
  fence: number;
  expiresAt: string;
}

export interface AcquireOptions {
  /** The lease (1–86,400,000 ms; default 30,000). */
  ttlMs?: number;
  /** How long to wait for a held lock (0–30,000 ms; default 0: Locked at once). */
  waitMs?: number;
}

export interface WithLockOptions extends AcquireOptions {
  /** How often the lease is renewed while the callback runs (default ttlMs / 3). */
  renewEveryMs?: number;
}

/** What the withLock callback gets. */
export interface HeldLock extends Lease {
  /** Aborted (with LockLost) if a renewal finds the lease lost: stop writing under this fence. */
  signal: AbortSignal;
}

export interface LimitAnswer {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
  resetAfterMs: number;
}

const lockPath = (name: string, verb: string) => `/api/locks/${encodeURIComponent(name)}/${verb}`;

export class Locks {
  constructor(private readonly t: Transport) {}

  /** Takes the lock (waiting up to waitMs); Locked (with expiresAt) when another holds it. */
  async acquire(name: string, o: AcquireOptions = {}): Promise<Lease> {
    const body = { ttlMs: o.ttlMs ?? 30000, waitMs: o.waitMs ?? 0 };
    const a = await this.t.call<Omit<Lease, 'name'>>('POST', lockPath(name, 'acquire'), body,
      { write: true, timeoutMs: body.waitMs + this.t.timeoutMs });
    return { name, ...a.body };
  }

  /** Extends the lease; LockLost when the token no longer holds the lock. */
  async renew(lease: Pick<Lease, 'name' | 'token'>, o: { ttlMs?: number } = {}): Promise<{ fence: number; expiresAt: string }> {
    return (await this.t.call<{ fence: number; expiresAt: string }>('POST', lockPath(lease.name, 'renew'),
      { token: lease.token, ttlMs: o.ttlMs ?? 30000 }, { write: true })).body;
  }

  /** Lets the lock go; LockLost when the lease had already run out. */
  async release(lease: Pick<Lease, 'name' | 'token'>): Promise<{ released: boolean; fence: number }> {
    return (await this.t.call<{ released: boolean; fence: number }>('POST', lockPath(lease.name, 'release'),
      { token: lease.token }, { write: true })).body;
  }

  /** The locks held now: name, fence, expiresAt (never tokens). */
  async list(): Promise<Array<{ name: string; fence: number; expiresAt: string }>> {
    return (await this.t.call<{ locks: Array<{ name: string; fence: number; expiresAt: string }> }>('GET', '/api/locks')).body.locks;
  }

  /**
   * Runs fn while holding the lock `name`: acquired (waiting up to waitMs,
   * default 10 s), renewed every renewEveryMs, released after fn settles.
   * If a renewal finds the lease lost, lock.signal aborts and withLock
   * throws LockLost once fn has settled (its writes may have overlapped
   * another holder's); a release that finds the lease gone does too.
   */
  async withLock<T>(name: string, fn: (lock: HeldLock) => Promise<T> | T, o: WithLockOptions = {}): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError('withLock(name, fn) takes an async function (lock) => …');
    const ttlMs = o.ttlMs ?? 30000;
    const every = o.renewEveryMs ?? Math.max(1, Math.floor(ttlMs / 3));
    const lease = await this.acquire(name, { ttlMs, waitMs: o.waitMs ?? 10000 });
    const ctl = new AbortController();
    let lost: TallyError | null = null;
    const stopSignal = new AbortController();
    const renewing = (async () => {
      for (;;) {
        try { await sleep(every, stopSignal.signal); } catch { return; }
        try {
          const r = await this.renew(lease, { ttlMs });
          lease.expiresAt = r.expiresAt;
        } catch (e) {
          if (e instanceof LockLost) {
            lost = e;
            ctl.abort(e);
            return;
          }
          // no answer: the lease may still hold until expiresAt; try again at the next tick
        }
      }
    })();
    const held: HeldLock = { ...lease, signal: ctl.signal };
    Object.defineProperty(held, 'expiresAt', { get: () => lease.expiresAt, enumerable: true });
    let result: T;
    try {
      result = await fn(held);
    } finally {
      stopSignal.abort();
      await renewing;
      if (!lost) {
        try {
          await this.release(lease);
        } catch (e) {
          if (e instanceof LockLost) lost = e;
          else throw e;
        }
      }
    }
    if (lost) {
      throw new LockLost(`the lease on lock '${name}' (fence ${lease.fence}) ran out while the work ran: ${(lost as TallyError).message}`,
        { code: 'LOCK_LOST', status: 409, body: (lost as TallyError).body });
    }
    return result;
  }
}

export class Limits {
  constructor(private readonly t: Transport) {}

  /** Asks the limit `name` for `key` (cost 1 unless given): `{allowed, remaining, retryAfterMs, resetAfterMs}`; never throws on a refusal. */
  async check(name: string, key: string, o: { cost?: number } = {}): Promise<LimitAnswer> {
    const a = await this.t.call<LimitAnswer>('POST', `/api/limits/${encodeURIComponent(name)}/${encodeURIComponent(key)}`,
      o.cost === undefined ? undefined : { cost: o.cost }, { write: true, accept: [429] });
    const { allowed, remaining, retryAfterMs, resetAfterMs } = a.body;
    return { allowed, remaining, retryAfterMs, resetAfterMs };
  }

  /** The same, but a refusal throws RateLimited (with retryAfterMs, remaining, resetAfterMs). */
  async take(name: string, key: string, o: { cost?: number } = {}): Promise<LimitAnswer> {
    const a = await this.t.call<LimitAnswer>('POST', `/api/limits/${encodeURIComponent(name)}/${encodeURIComponent(key)}`,
      o.cost === undefined ? undefined : { cost: o.cost }, { write: true });
    return a.body;
  }
}

