// index.ts — @tally/client: createClient and everything it hands out.
//
//   import { createClient, GuardFailed } from "@tally/client";
//   const db = createClient({ url: "http://127.0.0.1:8080", token });
//   await db.customer.update(1, { _atomics: { orderCount: { increment: 1 } } });
//   const n = await db.customer.whereId(1).increment("orderCount");
//
// `db.<model>` is the model's calls (query.ts); `db.batch` a batch
// transaction (batch.ts); `db.transaction` an interactive one over a
// WebSocket (transaction.ts); `db.locks`, `db.withLock`, `db.limits`
// (locks.ts); `db.keys` for an admin key. With types from `tally gen ts`,
// `createClient<Schema>(…)` types every model.

import { batchCore, batchResults, StepCollector } from './batch.js';
import type { BatchBuilder, BatchResults } from './batch.js';
import { Transport } from './http.js';
import type { TransportOptions } from './http.js';
import type { HeldLock, WithLockOptions } from './locks.js';
import { Limits, Locks } from './locks.js';
import { httpOf, ModelClient, steps } from './query.js';
import type { Executor } from './query.js';
import { runTransaction, TransactionRunner } from './transaction.js';
import type { TransactionOptions, WebSocketClass } from './transaction.js';
import type { AnySchema, ModelTypes, SchemaTypes, Step } from './types.js';

export * from './errors.js';
export * from './types.js';
export { field, ModelClient, Query, RecordList, RecordQuery } from './query.js';
export type { FindOptions, ListOptions, UpdateManyOptions, UpdateOptions, UpsertOptions } from './query.js';
export { StepHandle } from './batch.js';
export type { BatchBuilder, BatchModel, BatchQuery, BatchRecordQuery, BatchResults } from './batch.js';
export type { TransactionOptions, WebSocketClass } from './transaction.js';
export type { AcquireOptions, HeldLock, Lease, LimitAnswer, WithLockOptions } from './locks.js';
export { Limits, Locks } from './locks.js';
export type { TransportOptions } from './http.js';
export type { Change, ChangeFeed, ChangesOptions } from './changes.js';
import { changeFeed, type ChangeFeed, type ChangesOptions } from './changes.js';

export interface ClientOptions extends TransportOptions {
  /** The WebSocket class for interactive transactions (default: the platform's; on Node 20 pass the `ws` package's). */
  WebSocket?: WebSocketClass | undefined;
}

/** The calls an interactive transaction's callback gets besides its models. */
export interface TransactionCore {
  /** 0 on the first run of the callback, 1 on the first retry… */
  readonly attempt: number;
  /** A fenced write: the step fails (LockLost, and the transaction rolls back) unless token holds the lock now. */
  checkLock(name: string, token: string): Promise<{ fence: number; expiresAt: string }>;
  /** A step in its wire form; answers its result. */
  step<T = unknown>(step: Step): Promise<T>;
}

export type Transaction<S extends SchemaTypes = AnySchema> = TransactionCore & { [K in keyof S]: ModelClient<S[K]> };

export interface ApiKey {
  name: string;
  scopes: string[];
  createdAt?: string;
}

/** The calls of the client besides its models. */
export interface ClientCore<S extends SchemaTypes = AnySchema> {
  /** The calls of a model by name (also `db.<name>`; this form works for any name). */
  model<K extends keyof S & string>(name: K): ModelClient<S[K]>;
  /**
   * A batch transaction: steps collected by `build` (with the model calls of
   * `b.<model>`), sent in one request, applied all or none. Or the steps in
   * their wire form.
   */
  batch(build: (b: BatchBuilder<S>) => unknown): Promise<BatchResults>;
  batch(steps: Step[]): Promise<unknown[]>;
  /** An interactive transaction over a WebSocket: commit when fn returns, rollback when it throws. */
  transaction<T>(fn: (tx: Transaction<S>) => Promise<T> | T, options?: TransactionOptions): Promise<T>;
  /** Runs fn holding the lock `name`, renewing its lease; fn gets the fence and the token. */
  withLock<T>(name: string, fn: (lock: HeldLock) => Promise<T> | T, options?: WithLockOptions): Promise<T>;
  readonly locks: Locks;
  readonly limits: Limits;
  readonly keys: {
    create(o: { name: string; scopes: string[] }): Promise<ApiKey & { token: string }>;
    list(): Promise<ApiKey[]>;
    revoke(name: string): Promise<void>;
  };
  /**
   * The change feed: `for await (const c of db.changes({after, models}))` yields
   * every committed change in seq order, resuming after a lost connection.
   */
  changes<R = Record<string, unknown>>(options?: ChangesOptions): ChangeFeed<R>;
  /** Runs the named action `name` of the schema with its params: every step's result. */
  action(name: string, params?: Record<string, unknown>): Promise<unknown[]>;
  /** GET /health: `{status: "ok", backend}`, or throws Unavailable (503) with the reason. */
  health(): Promise<{ status: string; backend?: string; [more: string]: unknown }>;
  /** The transport, for calls the client has no method for: `db.http.call("GET", "/api/openapi.json")`. */
  readonly http: Transport;
}

export type TallyClient<S extends SchemaTypes = AnySchema> = ClientCore<S> & { [K in keyof S]: ModelClient<S[K]> };

/** Properties a model proxy must never answer as a model (a `then` would make the client look like a promise). */
const NOT_MODELS = new Set(['then', 'catch', 'finally', 'toJSON', 'constructor', 'valueOf', 'toString', 'inspect',
  'asymmetricMatch', 'nodeType', 'prototype', '__proto__']);

/** core's own properties, then any other string property as a model (cached). */
function withModels<C extends object>(core: C, make: (name: string) => unknown): C {
  const cache = new Map<string, unknown>();
  return new Proxy(core, {
    get(target, prop, receiver) {
      if (typeof prop !== 'string' || prop in target || NOT_MODELS.has(prop)) return Reflect.get(target, prop, receiver);
      let m = cache.get(prop);
      if (!m) cache.set(prop, (m = make(prop)));
      return m;
    },
  });
}

class HttpExecutor implements Executor {
  constructor(private readonly t: Transport) {}
  async run<T>(step: Step, pick: (result: any) => T): Promise<T> {
    const { method, path, body, write } = httpOf(step);
    return pick((await this.t.call(method, path, body, { write })).body);
  }
}

/** A client for the Tally server at options.url. */
export function createClient<S extends SchemaTypes = AnySchema>(options: ClientOptions): TallyClient<S> {
  const t = new Transport(options);
  const exec = new HttpExecutor(t);
  const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  const locks = new Locks(t);
  const limits = new Limits(t);
  const core: ClientCore<S> = {
    http: t,
    locks,
    limits,
    model: (name) => new ModelClient(exec, name) as ModelClient<any>,
    batch: (async (arg: ((b: BatchBuilder<S>) => unknown) | Step[]) => {
      if (Array.isArray(arg)) {
        return (await t.call<{ results: unknown[] }>('POST', '/api/transaction', { steps: arg }, { write: true })).body.results;
      }
      if (typeof arg !== 'function') throw new TypeError('batch() takes a function (b) => { b.model.create(…) … } or a list of steps');
      const c = new StepCollector();
      const b = withModels(batchCore(c), (name) => new ModelClient(c, name)) as BatchBuilder<S>;
      await arg(b);
      if (c.steps.length === 0) throw new TypeError('the batch has no steps');
      const a = await t.call<{ results: unknown[] }>('POST', '/api/transaction', { steps: c.steps }, { write: true });
      return batchResults(c, a.body.results);
    }) as ClientCore<S>['batch'],
    transaction: (fn, o) => runTransaction(t, WS, (runner: TransactionRunner, attempt: number) => withModels(
      {
        attempt,
        checkLock: (name: string, token: string) => runner.checkLock(name, token),
        step: <T>(step: Step) => runner.run(step, (r) => r as T),
      } as TransactionCore,
      (name) => new ModelClient(runner, name)) as Transaction<S>, fn, o),
    withLock: (name, fn, o) => locks.withLock(name, fn, o),
    keys: {
      create: async (o) => (await t.call<ApiKey & { token: string }>('POST', '/api/keys', o, { write: true })).body,
      list: async () => (await t.call<{ keys: ApiKey[] }>('GET', '/api/keys')).body.keys,
      revoke: async (name) => { await t.call('DELETE', `/api/keys/${encodeURIComponent(name)}`, undefined, { write: true }); },
    },
    health: async () => (await t.call<{ status: string }>('GET', '/health')).body,
    changes: (o) => changeFeed(t, o),
    action: async (name, params) => (await t.call<{ results: unknown[] }>('POST',
      `/api/actions/${encodeURIComponent(name)}`, params ?? {}, { write: true })).body.results,
  };
  return withModels(core, (name) => new ModelClient(exec, name)) as TallyClient<S>;
}

export { steps as stepForms };
export type { ModelTypes };
