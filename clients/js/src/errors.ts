// errors.ts — one error class per Tally error code, so that "which condition
// failed" is an `instanceof` (or `err.code`) check, never a parse of a message.
// Every class extends TallyError, which carries what the server said: code,
// HTTP status, message, path, the failing transaction step and its `as` name,
// and whether an interactive transaction was rolled back.

/** What the server sent as `{"error": {...}}` (plus anything beside it). */
export interface ErrorBody {
  code: string;
  message: string;
  path?: string;
  step?: number;
  as?: string;
  current?: Record<string, unknown>;
  expiresAt?: string;
  [more: string]: unknown;
}

export interface TallyErrorInit {
  code: string;
  status: number;
  path?: string;
  step?: number;
  as?: string;
  rolledBack?: boolean;
  body?: ErrorBody;
  cause?: unknown;
}

/** Any error the client throws for an answer of the server or a failed call. */
export class TallyError extends Error {
  /** The server's error code (`GUARD_FAILED`, `INVARIANT`…), or the client's (`NETWORK`, `TRANSACTION_TIMED_OUT`…). */
  readonly code: string;
  /** The HTTP status (over a WebSocket: the status the same error has over HTTP; 0 when nothing was answered). */
  readonly status: number;
  /** The part of the request that is wrong (`"_atomics.stock"`, `"images[2].url"`), when the server names one. */
  readonly path: string | undefined;
  /** The 0-based step of a transaction that failed, and its `as` name. */
  readonly step: number | undefined;
  readonly as: string | undefined;
  /** An interactive transaction's answer said it was rolled back: nothing of it was applied. */
  readonly rolledBack: boolean;
  /** The error object as the server sent it. */
  readonly body: ErrorBody | undefined;

  constructor(message: string, init: TallyErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status;
    this.path = init.path;
    this.step = init.step;
    this.as = init.as;
    this.rolledBack = init.rolledBack ?? false;
    this.body = init.body;
  }
}

/** 400 BAD_REQUEST: the request does not have the shape of a call (the message says what and where). */
export class BadRequest extends TallyError {}
/** 401 UNAUTHORIZED: keys are on and the token is missing or not a live key's. */
export class Unauthorized extends TallyError {}
/** 403 FORBIDDEN: the key lacks the scope the call needs (the message names it), or a foreign origin. */
export class Forbidden extends TallyError {}
/** 404 NOT_FOUND: an unknown model, a missing record, an unknown limit or path. */
export class NotFound extends TallyError {}
/** 405 METHOD_NOT_ALLOWED. */
export class MethodNotAllowed extends TallyError {}
/** 409 GUARD_FAILED: a `where` guard did not match; nothing changed. `current` is the row as it stood. */
export class GuardFailed extends TallyError {
  readonly current: Record<string, unknown> | undefined;
  constructor(message: string, init: TallyErrorInit) {
    super(message, init);
    this.current = init.body?.current;
  }
}
/** 409 UNIQUE_VIOLATION: a unique field or compound key is already taken. */
export class UniqueViolation extends TallyError {}
/** 409 CONFLICT: a restricted delete, a call out of turn, or (PostgreSQL) a serialization failure or deadlock. */
export class Conflict extends TallyError {}
/** 409 EXPECTATION_FAILED: a transaction step's `expect` did not hold; the transaction was rolled back. */
export class ExpectationFailed extends TallyError {}
/** 409 LOCKED: another holder has the lock; `expiresAt` is when its lease ends. */
export class Locked extends TallyError {
  readonly expiresAt: string | undefined;
  constructor(message: string, init: TallyErrorInit) {
    super(message, init);
    this.expiresAt = init.body?.expiresAt;
  }
}
/** 409 LOCK_LOST: the token no longer holds the lock (its lease ran out). */
export class LockLost extends TallyError {}
/** 410 GONE. */
export class Gone extends TallyError {}
/** 413 PAYLOAD_TOO_LARGE: the body is over the server's --max-body. */
export class PayloadTooLarge extends TallyError {}
/** 431 HEADERS_TOO_LARGE. */
export class HeadersTooLarge extends TallyError {}
/** 422 VALIDATION: a value does not fit the schema (type, required, maxLength, a missing link). */
export class ValidationError extends TallyError {}
/** 422 INVARIANT: the write would cross a field's min or max; nothing changed. */
export class InvariantViolation extends TallyError {}
/** 422 OVERFLOW: an integer would pass ±(2^63−1). */
export class Overflow extends TallyError {}
/** 422 IDEMPOTENCY_MISMATCH: an Idempotency-Key was reused with another body. */
export class IdempotencyMismatch extends TallyError {}
/** 429 RATE_LIMITED: a limit refused the call; retry after `retryAfterMs`. */
export class RateLimited extends TallyError {
  readonly retryAfterMs: number;
  readonly remaining: number;
  readonly resetAfterMs: number;
  constructor(message: string, init: TallyErrorInit & { retryAfterMs?: number; remaining?: number; resetAfterMs?: number }) {
    super(message, init);
    this.retryAfterMs = init.retryAfterMs ?? 0;
    this.remaining = init.remaining ?? 0;
    this.resetAfterMs = init.resetAfterMs ?? 0;
  }
}
/** 429 TOO_MANY_TRANSACTIONS: this key has its most interactive transactions open. */
export class TooManyTransactions extends TallyError {}
/** 503 OVERLOADED: not applied; the client retries these by itself first. */
export class Overloaded extends TallyError {}
/** 503 UNAVAILABLE: the database could not commit; not applied; retried by the client first. */
export class Unavailable extends TallyError {}
/** 504 TIMEOUT: the database cancelled the statement. */
export class Timeout extends TallyError {}
/** 500 INTERNAL and any answer the client cannot read. */
export class InternalError extends TallyError {}
/** The server rolled an interactive transaction back at its timeout (`{"event": "rolledBack", "reason": "timeout"}`). */
export class TransactionTimedOut extends TallyError {}
/** The connection dropped while a commit was in flight: it may or may not have been applied. */
export class TransactionInDoubt extends TallyError {}
/** No answer: the server could not be reached, the connection dropped, or the request timed out (code NETWORK). */
export class NetworkError extends TallyError {}

type ErrorClass = new (message: string, init: TallyErrorInit) => TallyError;

const byCode: Record<string, [ErrorClass, number]> = {
  BAD_REQUEST: [BadRequest, 400],
  UNAUTHORIZED: [Unauthorized, 401],
  FORBIDDEN: [Forbidden, 403],
  NOT_FOUND: [NotFound, 404],
  METHOD_NOT_ALLOWED: [MethodNotAllowed, 405],
  GUARD_FAILED: [GuardFailed, 409],
  UNIQUE_VIOLATION: [UniqueViolation, 409],
  CONFLICT: [Conflict, 409],
  EXPECTATION_FAILED: [ExpectationFailed, 409],
  LOCKED: [Locked, 409],
  LOCK_LOST: [LockLost, 409],
  GONE: [Gone, 410],
  PAYLOAD_TOO_LARGE: [PayloadTooLarge, 413],
  HEADERS_TOO_LARGE: [HeadersTooLarge, 431],
  VALIDATION: [ValidationError, 422],
  INVARIANT: [InvariantViolation, 422],
  OVERFLOW: [Overflow, 422],
  IDEMPOTENCY_MISMATCH: [IdempotencyMismatch, 422],
  RATE_LIMITED: [RateLimited, 429],
  TOO_MANY_TRANSACTIONS: [TooManyTransactions, 429],
  OVERLOADED: [Overloaded, 503],
  UNAVAILABLE: [Unavailable, 503],
  TIMEOUT: [Timeout, 504],
  INTERNAL: [InternalError, 500],
};

/** The HTTP status the server gives an error code (500 for codes it does not know). */
export function statusOfCode(code: string): number {
  return byCode[code]?.[1] ?? 500;
}

/**
 * The error for an answer: `status` is the HTTP status (0: take the code's),
 * `answer` the whole parsed body (`{"error": {...}, ...}`), rolledBack from a
 * WebSocket answer.
 */
export function errorFromAnswer(status: number, answer: unknown, rolledBack = false): TallyError {
  const outer = (answer && typeof answer === 'object' ? answer : {}) as Record<string, unknown>;
  const e = outer.error && typeof outer.error === 'object' ? (outer.error as ErrorBody) : undefined;
  if (!e || typeof e.code !== 'string') {
    const text = typeof answer === 'string' ? answer : JSON.stringify(answer);
    return new InternalError(`the server answered ${status} without a Tally error: ${String(text).slice(0, 300)}`, {
      code: `HTTP_${status}`, status, rolledBack,
    });
  }
  const [Class, codeStatus] = byCode[e.code] ?? [TallyError, 0];
  const init = {
    code: e.code,
    status: status || codeStatus || 500,
    path: typeof e.path === 'string' ? e.path : undefined,
    step: typeof e.step === 'number' ? e.step : undefined,
    as: typeof e.as === 'string' ? e.as : undefined,
    rolledBack,
    body: e,
    retryAfterMs: typeof outer.retryAfterMs === 'number' ? outer.retryAfterMs : undefined,
    remaining: typeof outer.remaining === 'number' ? outer.remaining : undefined,
    resetAfterMs: typeof outer.resetAfterMs === 'number' ? outer.resetAfterMs : undefined,
  };
  return new Class(e.message || e.code, init);
}
