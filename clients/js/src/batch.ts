// batch.ts — batch transactions (POST /api/transaction): the steps are
// collected first, with the same model calls as everywhere else, and sent in
// one request that applies all of them or none. A step's handle gives
// references to its result for later steps (`p.ref("id")` is
// `{"$ref": "s0.id"}`) and takes an `expect` condition on it.

import type { Executor, FindOptions, UpdateManyOptions, UpdateOptions, UpsertOptions } from './query.js';
import { steps } from './query.js';
import type {
  AnyModel, AnySchema, Filter, ModelTypes, Operator, Page, Ref, SchemaTypes, Sort, Step, UpdateOf, Upserted,
} from './types.js';

/** One collected step: refer to its result in later steps, or put a condition on it. */
export class StepHandle<T = unknown> {
  /** @internal */
  constructor(readonly index: number, readonly step: Step, readonly pick: (result: any) => T) {}

  /** `{"$ref": "name.field"}` of this step's result (the step is named `s<index>` unless named with `as`). */
  ref(field: string): Ref {
    if (typeof this.step.as !== 'string') this.step.as = `s${this.index}`;
    return { $ref: `${this.step.as}.${field}` };
  }

  /** Names the step (its name appears in errors as `as`). */
  as(name: string): this {
    this.step.as = name;
    return this;
  }

  /** A condition on this step's own result: when it does not hold, everything is rolled back (ExpectationFailed). */
  expect(filter: Filter<any>): this {
    this.step.expect = filter;
    return this;
  }
}

/** Collects steps instead of running them. */
export class StepCollector implements Executor {
  readonly steps: Step[] = [];
  readonly handles: StepHandle[] = [];

  run<T>(step: Step, pick: (result: any) => T): Promise<T> {
    const h = new StepHandle<T>(this.steps.length, step, pick);
    this.steps.push(step);
    this.handles.push(h as StepHandle);
    return h as unknown as Promise<T>; // the model calls hand back whatever the executor gives: here, the handle
  }
}

type WhereArgs<R> = [filter: Filter<R>] | [field: keyof R & string, value: unknown] | [field: keyof R & string, op: Operator, value: unknown];

/** The model calls inside a batch: each collects a step and answers its handle. */
export interface BatchModel<M extends ModelTypes = AnyModel> {
  create(data: M['create']): StepHandle<M['record']>;
  get(id: number): StepHandle<M['record']>;
  update(id: number, data: UpdateOf<M>, o?: UpdateOptions<M['record']>): StepHandle<M['record']>;
  delete(id: number): StepHandle<{ id: number }>;
  find(o?: FindOptions<M['record']>): StepHandle<Page<M['record']>>;
  upsert(o: UpsertOptions<M>): StepHandle<Upserted<M['record']>>;
  updateMany(o: UpdateManyOptions<M>): StepHandle<number>;
  deleteMany(o: { filter: Filter<M['record']> }): StepHandle<number>;
  whereId(id: number): BatchRecordQuery<M>;
  where(...args: WhereArgs<M['record']>): BatchQuery<M>;
}

export interface BatchRecordQuery<M extends ModelTypes = AnyModel> {
  where(...args: WhereArgs<M['record']>): BatchRecordQuery<M>;
  /** The step's result is the new value. */
  increment(field: M['numeric'], by?: number): StepHandle<number>;
  decrement(field: M['numeric'], by?: number): StepHandle<number>;
  update(data: UpdateOf<M>): StepHandle<M['record']>;
  get(): StepHandle<M['record']>;
  delete(): StepHandle<{ id: number }>;
}

export interface BatchQuery<M extends ModelTypes = AnyModel> {
  where(...args: WhereArgs<M['record']>): BatchQuery<M>;
  incrementMany(field: M['numeric'], by?: number): StepHandle<number>;
  decrementMany(field: M['numeric'], by?: number): StepHandle<number>;
  updateMany(o: Omit<UpdateManyOptions<M>, 'filter'>): StepHandle<number>;
  deleteMany(): StepHandle<number>;
  find(o?: Omit<FindOptions<M['record']>, 'filter'>): StepHandle<Page<M['record']>>;
  first(sort?: Sort<M['record']>): StepHandle<M['record'] | null>;
}

export interface BatchCore {
  /** A fenced write: the batch fails with LockLost unless `token` holds the lock `name` now. */
  checkLock(name: string, token: string): StepHandle<{ fence: number; expiresAt: string }>;
  /** A step in its wire form. */
  step<T = unknown>(step: Step): StepHandle<T>;
}

export type BatchBuilder<S extends SchemaTypes = AnySchema> = BatchCore & { [K in keyof S]: BatchModel<S[K]> };

/** The results of a batch, in step order (each as its call answers: a record, a new value, a count). */
export type BatchResults = unknown[] & {
  /** The result of one step, by its handle. */
  get<T>(handle: StepHandle<T>): T;
};

export function batchCore(c: StepCollector): BatchCore {
  return {
    checkLock: (name, token) => c.run(steps.checkLock(name, token), (r) => r) as unknown as StepHandle<{ fence: number; expiresAt: string }>,
    step: <T>(step: Step) => c.run(step, (r) => r as T) as unknown as StepHandle<T>,
  };
}

/** The results of the collected steps, each picked as its call answers. */
export function batchResults(c: StepCollector, raw: unknown[]): BatchResults {
  const out = c.handles.map((h, i) => h.pick(raw[i])) as BatchResults;
  Object.defineProperty(out, 'get', {
    value: <T>(h: StepHandle<T>) => {
      if (c.handles[h.index] !== (h as StepHandle)) throw new TypeError('that step handle is not of this batch');
      return out[h.index] as T;
    },
  });
  return out;
}
