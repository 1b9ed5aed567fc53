// The change feed (README.md, "Change feed"): `db.changes({after, models})`
// is an async iterator of committed changes in seq order, long-polling
// GET /api/changes. It resumes where it was after a lost connection or a
// restarted server (it asks after the last seq it gave out), so a loop over
// it sees every change once; a cursor older than what the server keeps
// throws Gone, and `break` (or the signal) ends it.
import { Gone, NetworkError, TallyError } from './errors.js';
import { sleep, type Transport } from './http.js';

/** One committed change: the record after it (null for a delete). */
export interface Change<R = Record<string, unknown>> {
  seq: number;
  model: string;
  id: number;
  op: 'create' | 'update' | 'delete';
  record: R | null;
  at: string;
}

export interface ChangesOptions {
  /** The seq to continue after; 0: from the oldest kept; omitted: from now on. */
  after?: number | undefined;
  /** Only these models' changes. */
  models?: string[] | undefined;
  /** How long one poll waits on the server for a change (default 20000 ms). */
  waitMs?: number | undefined;
  /** Changes per page (default 100). */
  first?: number | undefined;
  signal?: AbortSignal | undefined;
}

interface Page { changes: Change[]; next: number }

/** The iterator of db.changes; `cursor` is the seq to resume after (the last one given out). */
export interface ChangeFeed<R = Record<string, unknown>> extends AsyncIterableIterator<Change<R>> {
  readonly cursor: number | undefined;
}

export function changeFeed<R = Record<string, unknown>>(t: Transport, o: ChangesOptions = {}): ChangeFeed<R> {
  const waitMs = o.waitMs ?? 20000;
  let cursor = o.after;
  let buffered: Change[] = [];
  let failures = 0;
  const query = (withWait: boolean) => {
    const q = new URLSearchParams();
    if (cursor !== undefined) q.set('after', String(cursor));
    if (o.models?.length) q.set('models', o.models.join(','));
    if (o.first) q.set('first', String(o.first));
    if (withWait) q.set('waitMs', String(waitMs));
    return `/api/changes?${q}`;
  };
  async function page(): Promise<void> {
    for (;;) {
      if (o.signal?.aborted) throw o.signal.reason;
      try {
        const first = cursor === undefined;   // from now on: learn the cursor, then wait after it
        const a = await t.call<Page>('GET', query(!first), undefined, { timeoutMs: waitMs + 15000, signal: o.signal });
        failures = 0;
        buffered = a.body.changes;
        cursor = a.body.next;
        if (buffered.length || first) return;
      } catch (e) {
        if (e instanceof Gone || o.signal?.aborted) throw e;
        const transient = e instanceof NetworkError || (e instanceof TallyError && e.status === 503);
        if (!transient) throw e;
        // the server is away (restarting, unreachable): ask again after the same cursor
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures++, 6)), o.signal);
      }
    }
  }
  const it: ChangeFeed<R> = {
    get cursor() { return cursor; },
    async next(): Promise<IteratorResult<Change<R>>> {
      while (!buffered.length) await page();
      const c = buffered.shift()!;
      return { value: c as Change<R>, done: false };
    },
    async return(): Promise<IteratorResult<Change<R>>> {
      buffered = [];
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() { return it; },
  };
  return it;
}
