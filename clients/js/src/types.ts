// types.ts — the wire shapes of Tally's API as TypeScript types: records,
// `_atomics`, filters, sorts, links, step references, and the per-model type
// triple (record, create, update, numeric fields) that `tally gen ts` writes
// for a schema. Without generated types every model is `AnyModel`.

/** Fields every record has. */
export interface BaseRecord {
  id: number;
  createdAt: string;
  updatedAt: string;
}

/** A record of a model without generated types. */
export type AnyRecord = BaseRecord & { [field: string]: unknown };

/** `{}` means 1. */
export type AtomicAmount = number | Record<string, never>;
export type AtomicOp = { increment: AtomicAmount } | { decrement: AtomicAmount };
/** One operation, or a list applied in order: `{stock: [{increment: 5}, {decrement: 2}]}`. */
export type AtomicChange = AtomicOp | AtomicOp[];

/** A value taken from an earlier transaction step's result: `{"$ref": "name.field"}`. */
export interface Ref {
  $ref: string;
}

/** Compare with another field of the same row: `{field: "maxStudents"}`. */
export interface FieldRef {
  field: string;
}

/** A link to a record by id: a bare id or `{_link: id}` (an id may be a step reference). */
export type Link = number | Ref | { _link: number | Ref };
/** A belongsTo field on create: a link, or `{create: {...}}` of the linked model. */
export type LinkOrCreate<Create> = Link | { create: Create };
/** One item of a hasMany list on create. */
export type HasManyItem<Create> = { _link: number | Ref } | { create: Create };

type Scalar<T> = Exclude<T, null | undefined>;
type Operand<T> = Scalar<T> | FieldRef | Ref;

/** Conditions on one field; several in one object are ANDed. */
export interface FieldFilter<T> {
  equals?: Operand<T> | null;
  notEquals?: Operand<T> | null;
  lessThan?: Operand<T>;
  lessThanOrEqual?: Operand<T>;
  greaterThan?: Operand<T>;
  greaterThanOrEqual?: Operand<T>;
  in?: Array<Scalar<T>>;
  notIn?: Array<Scalar<T>>;
  isSet?: boolean;
}

/** The filter language: `{stock: {greaterThan: 0}, OR: [...]}`. */
export type Filter<R = AnyRecord> = {
  [K in keyof R]?: FieldFilter<R[K]>;
} & {
  AND?: Array<Filter<R>>;
  OR?: Array<Filter<R>>;
  NOT?: Filter<R>;
};

export type SortDirection = 'ascending' | 'descending';
export type SortKey<R = AnyRecord> = { [K in keyof R]?: SortDirection };
/** `{stock: "descending"}` or a list of those; `id` breaks ties. */
export type Sort<R = AnyRecord> = SortKey<R> | Array<SortKey<R>>;

/** The operators `where(field, op, value)` takes, short and long. */
export type Operator =
  | '=' | '==' | '!=' | '<' | '<=' | '>' | '>='
  | 'equals' | 'notEquals' | 'lessThan' | 'lessThanOrEqual' | 'greaterThan' | 'greaterThanOrEqual'
  | 'in' | 'notIn' | 'isSet';

/** What `tally gen ts` writes per model. */
export interface ModelTypes {
  record: object;
  create: object;
  update: object;
  /** The names of the numeric (integer and float) fields: the only ones `_atomics` and increment take. */
  numeric: string;
}

/** A model without generated types: any fields, any numeric field. */
export interface AnyModel {
  record: AnyRecord;
  create: { [field: string]: unknown };
  update: { [field: string]: unknown; _atomics?: { [field: string]: AtomicChange } };
  numeric: string;
}

/** Models by name. */
export type SchemaTypes = { [model: string]: ModelTypes };
export type AnySchema = { [model: string]: AnyModel };

export type RecordOf<M extends ModelTypes> = M['record'];
export type CreateOf<M extends ModelTypes> = M['create'];
export type UpdateOf<M extends ModelTypes> = M['update'] & { _where?: Filter<M['record']> };

/** One page of a listing. */
export interface Page<R> {
  records: R[];
  /** The cursor of the next page, or null after the last. */
  next: string | null;
}

export interface Upserted<R> {
  record: R;
  created: boolean;
}

/** A transaction step in its wire form (README, "Transactions"). */
export type Step = { [key: string]: unknown; as?: string; expect?: Filter<any> };
