// query.ts — the record API of one model, in the three shapes: Gadget's API
// object (`create`, `update(id, {_atomics})`, `get`, `delete`, `list`), an
// ORM's query builder (`whereId(id).increment(field)`, `where(...).
// incrementMany(field, n)`, guarded `where(field, op, value).decrement`),
// and bulk calls. Every call is built as a transaction step (README,
// "Transactions") and handed to an executor: over HTTP (each step becomes
// its own route) or inside an interactive transaction (a WebSocket step), so
// the same code runs in both. Nothing is computed here that the server
// decides: a guard is sent as `_where`, the new value comes from the answer.

import type {
  AnyModel, AtomicChange, Filter, FieldRef, ModelTypes, Operator, Page, Sort, Step, Upserted, UpdateOf,
} from './types.js';

/** Runs one step and picks the caller's value out of its result. */
export interface Executor {
  run<T>(step: Step, pick: (result: any) => T): Promise<T>;
}

/** `{field: name}`: compare with another field of the same row (`where("slotsTaken", "<", field("maxStudents"))`). */
export function field(name: string): FieldRef {
  return { field: name };
}

const OPERATORS: Record<string, string> = {
  '=': 'equals', '==': 'equals', '!=': 'notEquals', '<': 'lessThan', '<=': 'lessThanOrEqual', '>': 'greaterThan',
  '>=': 'greaterThanOrEqual', equals: 'equals', notEquals: 'notEquals', lessThan: 'lessThan',
  lessThanOrEqual: 'lessThanOrEqual', greaterThan: 'greaterThan', greaterThanOrEqual: 'greaterThanOrEqual',
  in: 'in', notIn: 'notIn', isSet: 'isSet',
};

/** A filter from where()'s arguments: (filter), (field, value) for equals, or (field, op, value). */
export function condition(args: unknown[]): Filter<any> {
  if (args.length === 1) {
    const f = args[0];
    if (!f || typeof f !== 'object' || Array.isArray(f)) {
      throw new TypeError(`where() takes a filter object such as {stock: {greaterThan: 0}}, not ${JSON.stringify(f)}`);
    }
    return f as Filter<any>;
  }
  if ((args.length === 2 || args.length === 3) && typeof args[0] === 'string') {
    const [name, op, value] = args.length === 2 ? [args[0], '=', args[1]] : args;
    const wire = typeof op === 'string' ? OPERATORS[op] : undefined;
    if (!wire) {
      throw new TypeError(`where("${name}", ${JSON.stringify(op)}, …): the operator is one of ${Object.keys(OPERATORS).join(' ')}`);
    }
    if (value === undefined) throw new TypeError(`where("${name}", "${String(op)}", undefined): give a value`);
    return { [name as string]: { [wire]: value } } as Filter<any>;
  }
  throw new TypeError('where() takes (filter), (field, value) or (field, operator, value)');
}

/** Both filters (either may be absent). */
export function both(a: Filter<any> | undefined, b: Filter<any> | undefined): Filter<any> | undefined {
  if (!a) return b;
  if (!b) return a;
  return { AND: [a, b] } as Filter<any>;
}

function checkId(id: unknown, what: string): number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
    throw new TypeError(`${what} takes a record id (a positive integer), not ${JSON.stringify(id)}`);
  }
  return id;
}

function checkAmount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new TypeError(`${what} takes a number, not ${JSON.stringify(n)}`);
  return n;
}

// ---- steps --------------------------------------------------------------------------

export const steps = {
  create: (model: string, data: object): Step => ({ create: model, data }),
  get: (model: string, id: number): Step => ({ get: model, id: checkId(id, `${model}.get`) }),
  find: (model: string, o: FindOptions<any> = {}): Step => {
    const s: Step = { find: model };
    if (o.filter !== undefined) s.filter = o.filter;
    if (o.sort !== undefined) s.sort = o.sort;
    if (o.first !== undefined) s.first = o.first;
    if (o.after !== undefined && o.after !== null) s.after = o.after;
    return s;
  },
  /** data may carry `_where` (the wire form of PATCH); it becomes the step's where, ANDed with `where`. */
  update: (model: string, id: number, data: object, where?: Filter<any>): Step => {
    const { _where, ...rest } = data as { _where?: Filter<any> };
    const guard = both(_where, where);
    const s: Step = { update: model, id: checkId(id, `${model}.update`), data: rest };
    if (guard) s.where = guard;
    return s;
  },
  delete: (model: string, id: number): Step => ({ delete: model, id: checkId(id, `${model}.delete`) }),
  upsert: (model: string, o: UpsertOptions<any>): Step => ({ upsert: model, on: o.on, create: o.create, update: o.update ?? {} }),
  updateMany: (model: string, o: UpdateManyOptions<any>): Step => {
    if (!o || o.filter === undefined) throw new TypeError(`${model}.updateMany needs a filter ({} for every record)`);
    const s: Step = { updateMany: model, filter: o.filter };
    if (o.set !== undefined) s.set = o.set;
    if (o._atomics !== undefined) s._atomics = o._atomics;
    return s;
  },
  deleteMany: (model: string, o: { filter: Filter<any> }): Step => {
    if (!o || o.filter === undefined) throw new TypeError(`${model}.deleteMany needs a filter ({} for every record, which needs the admin scope)`);
    return { deleteMany: model, filter: o.filter };
  },
  checkLock: (name: string, token: string): Step => ({ checkLock: name, token }),
};

const atomic = (f: string, op: 'increment' | 'decrement', n: number) => ({ _atomics: { [f]: { [op]: n } } });

/** The HTTP call of a step: each step form is also a route of its own. */
export function httpOf(step: Step): { method: string; path: string; body?: unknown; write: boolean } {
  // The step's operation is the key whose value is the model's name (an upsert also has create and update objects).
  const op = ['create', 'get', 'find', 'update', 'delete', 'upsert', 'updateMany', 'deleteMany']
    .find((k) => typeof step[k] === 'string');
  if (!op) throw new TypeError(`this step runs only inside a transaction: ${JSON.stringify(step)}`);
  const { [op]: model, ...rest } = step;
  const path = `/api/${encodeURIComponent(String(model))}`;
  switch (op) {
    case 'create': return { method: 'POST', path, body: rest.data, write: true };
    case 'get': return { method: 'GET', path: `${path}/${rest.id}`, write: false };
    case 'find': return { method: 'POST', path: `${path}/find`, body: rest, write: false };
    case 'update': {
      const body: Record<string, unknown> = { ...(rest.data as object) };
      if (rest.where) body._where = rest.where;
      return { method: 'PATCH', path: `${path}/${rest.id}`, body, write: true };
    }
    case 'delete': return { method: 'DELETE', path: `${path}/${rest.id}`, write: true };
    default: return { method: 'POST', path: `${path}/${op}`, body: rest, write: true };
  }
}

// ---- options -------------------------------------------------------------------------

export interface FindOptions<R> {
  filter?: Filter<R>;
  sort?: Sort<R>;
  /** Page size, 1–1000 (the server's default is 50). */
  first?: number;
  /** The cursor from a previous page's `next`. */
  after?: string | null;
}

export interface ListOptions<R> {
  filter?: Filter<R>;
  sort?: Sort<R>;
  /** Records fetched per request (default 100). */
  pageSize?: number;
  /** Start after this cursor. */
  after?: string | null;
}

export interface UpsertOptions<M extends ModelTypes> {
  /** A unique field, or the fields of a declared compound key. */
  on: string | string[];
  create: M['create'];
  update?: M['update'];
}

export interface UpdateManyOptions<M extends ModelTypes> {
  filter: Filter<M['record']>;
  set?: Partial<M['record']>;
  _atomics?: { [F in M['numeric']]?: AtomicChange };
}

export interface UpdateOptions<R> {
  /** A guard on the row, judged by the statement that writes (409 GuardFailed with `current` when it does not match). */
  where?: Filter<R>;
}

// ---- the listing ------------------------------------------------------------------------

/** Every record of a listing, fetched page by page as it is iterated. */
export class RecordList<R> implements AsyncIterable<R> {
  constructor(private readonly exec: Executor, private readonly model: string, private readonly o: ListOptions<R>) {}

  /** Each page as it comes: `{records, next}`. */
  async *pages(): AsyncGenerator<Page<R>> {
    let after = this.o.after ?? null;
    const first = this.o.pageSize ?? 100;
    for (;;) {
      const page: Page<R> = await this.exec.run(
        steps.find(this.model, { filter: this.o.filter, sort: this.o.sort, first, after }), (r) => r);
      yield page;
      if (page.next === null || page.records.length === 0) return;
      after = page.next;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<R> {
    for await (const page of this.pages()) yield* page.records;
  }

  /** Every record in one array. */
  async toArray(): Promise<R[]> {
    const out: R[] = [];
    for await (const r of this) out.push(r);
    return out;
  }
}

// ---- the query builder --------------------------------------------------------------------

type WhereArgs<R> = [filter: Filter<R>] | [field: keyof R & string, value: unknown] | [field: keyof R & string, op: Operator, value: unknown];

/** One record (`whereId(id)`), optionally guarded by `where(...)`. */
export class RecordQuery<M extends ModelTypes = AnyModel> {
  constructor(
    private readonly exec: Executor,
    readonly model: string,
    readonly id: number,
    readonly guard?: Filter<M['record']>,
  ) {
    checkId(id, `${model}.whereId`);
  }

  /** A guard on this record (ANDed with earlier ones): the change happens only while the row matches. */
  where(...args: WhereArgs<M['record']>): RecordQuery<M> {
    return new RecordQuery<M>(this.exec, this.model, this.id, both(this.guard, condition(args)));
  }

  /** Adds `by` (default 1) inside the database; answers the new value. */
  increment(f: M['numeric'], by = 1): Promise<number> {
    checkAmount(by, 'increment');
    return this.exec.run(steps.update(this.model, this.id, atomic(f, 'increment', by), this.guard), (r) => r[f] as number);
  }

  /** Subtracts `by` (default 1) inside the database; answers the new value. */
  decrement(f: M['numeric'], by = 1): Promise<number> {
    checkAmount(by, 'decrement');
    return this.exec.run(steps.update(this.model, this.id, atomic(f, 'decrement', by), this.guard), (r) => r[f] as number);
  }

  /** Sets fields and/or applies `_atomics`; answers the record after. */
  update(data: UpdateOf<M>): Promise<M['record']> {
    return this.exec.run(steps.update(this.model, this.id, data as object, this.guard), (r) => r);
  }

  /** The record (a guard is not checked on a read). */
  get(): Promise<M['record']> {
    return this.exec.run(steps.get(this.model, this.id), (r) => r);
  }

  delete(): Promise<{ id: number }> {
    if (this.guard) throw new TypeError('a delete takes no guard: Tally guards updates only');
    return this.exec.run(steps.delete(this.model, this.id), (r) => r);
  }
}

/** The records matching a filter. */
export class Query<M extends ModelTypes = AnyModel> {
  constructor(private readonly exec: Executor, readonly model: string, readonly filter: Filter<M['record']>) {}

  where(...args: WhereArgs<M['record']>): Query<M> {
    return new Query<M>(this.exec, this.model, both(this.filter, condition(args)) as Filter<M['record']>);
  }

  /** Adds `by` to the field of every matching record in one statement; answers how many. */
  incrementMany(f: M['numeric'], by = 1): Promise<number> {
    checkAmount(by, 'incrementMany');
    return this.updateMany({ _atomics: { [f]: { increment: by } } as UpdateManyOptions<M>['_atomics'] });
  }

  /** Subtracts `by` from every matching record in one statement (all or nothing against min/max); answers how many. */
  decrementMany(f: M['numeric'], by = 1): Promise<number> {
    checkAmount(by, 'decrementMany');
    return this.updateMany({ _atomics: { [f]: { decrement: by } } as UpdateManyOptions<M>['_atomics'] });
  }

  updateMany(o: Omit<UpdateManyOptions<M>, 'filter'>): Promise<number> {
    return this.exec.run(steps.updateMany(this.model, { ...o, filter: this.filter }), (r) => r.count as number);
  }

  deleteMany(): Promise<number> {
    return this.exec.run(steps.deleteMany(this.model, { filter: this.filter }), (r) => r.count as number);
  }

  /** One page. */
  find(o: Omit<FindOptions<M['record']>, 'filter'> = {}): Promise<Page<M['record']>> {
    return this.exec.run(steps.find(this.model, { ...o, filter: this.filter }), (r) => r);
  }

  /** The first matching record (in `sort` order), or null. */
  first(sort?: Sort<M['record']>): Promise<M['record'] | null> {
    return this.exec.run(steps.find(this.model, { filter: this.filter, sort, first: 1 }), (r) => r.records[0] ?? null);
  }

  /** Every matching record, page by page. */
  list(o: Omit<ListOptions<M['record']>, 'filter'> = {}): RecordList<M['record']> {
    return new RecordList(this.exec, this.model, { ...o, filter: this.filter });
  }
}

/** The calls on one model: `db.product`, `tx.product`. */
export class ModelClient<M extends ModelTypes = AnyModel> {
  constructor(private readonly exec: Executor, readonly model: string) {}

  /** Creates a record (belongsTo as `{_link: id}` or `{create: {...}}`, hasMany as a list of those); answers it. */
  create(data: M['create']): Promise<M['record']> {
    return this.exec.run(steps.create(this.model, data as object), (r) => r);
  }

  /** The record with this id; NotFound when there is none. */
  get(id: number): Promise<M['record']> {
    return this.exec.run(steps.get(this.model, id), (r) => r);
  }

  /** Sets fields and/or applies `_atomics` (and a `_where` guard); answers the record after the change. */
  update(id: number, data: UpdateOf<M>, o: UpdateOptions<M['record']> = {}): Promise<M['record']> {
    return this.exec.run(steps.update(this.model, id, data as object, o.where), (r) => r);
  }

  delete(id: number): Promise<{ id: number }> {
    return this.exec.run(steps.delete(this.model, id), (r) => r);
  }

  /** One page: `{records, next}`. */
  find(o: FindOptions<M['record']> = {}): Promise<Page<M['record']>> {
    return this.exec.run(steps.find(this.model, o), (r) => r);
  }

  /** Every record (matching `filter`, in `sort` order) as an async iterator, fetched page by page with cursors. */
  list(o: ListOptions<M['record']> = {}): RecordList<M['record']> {
    return new RecordList(this.exec, this.model, o);
  }

  /** Creates, or updates the record with the same `on` values, in one statement. */
  upsert(o: UpsertOptions<M>): Promise<Upserted<M['record']>> {
    return this.exec.run(steps.upsert(this.model, o), (r) => r);
  }

  /** Every matching record in one statement, all or nothing; answers how many. */
  updateMany(o: UpdateManyOptions<M>): Promise<number> {
    return this.exec.run(steps.updateMany(this.model, o), (r) => r.count as number);
  }

  /** Deletes every matching record; answers how many. `{filter: {}}` is every record (admin scope). */
  deleteMany(o: { filter: Filter<M['record']> }): Promise<number> {
    return this.exec.run(steps.deleteMany(this.model, o), (r) => r.count as number);
  }

  /** The record with this id, for increment/decrement/update, optionally guarded. */
  whereId(id: number): RecordQuery<M> {
    return new RecordQuery<M>(this.exec, this.model, id);
  }

  /** The records matching a filter: `where({sku: {in: [...]}})`, `where("stock", ">=", 2)`. */
  where(...args: WhereArgs<M['record']>): Query<M> {
    return new Query<M>(this.exec, this.model, condition(args) as Filter<M['record']>);
  }
}
