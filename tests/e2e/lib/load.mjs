// Many clients at once, cheaply: lean HTTP/1.1 connections (lib/rawhttp.mjs)
// that reopen themselves when the server ends one. (The server answers some
// statuses with `Connection: close`, so a client that keeps sending on its
// connection must be ready to reconnect, as any HTTP client is.)
import assert from 'node:assert/strict';
import { RawConnection } from './rawhttp.mjs';
import { parallel } from './server.mjs';

export class Client {
  constructor(srv) {
    this.srv = srv;
    this.conn = null;
    this.reconnects = 0;
  }

  async open() {
    this.conn = new RawConnection('127.0.0.1', this.srv.port);
    await this.conn.connect();
  }

  /** Send one request; returns {status, headers, text, body} like api(). */
  async request(method, path, body) {
    if (!this.conn || this.conn.closed) {
      if (this.conn) this.reconnects++;
      await this.open();
    }
    const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const r = await this.conn.request(method, path, text);
    if (/close/i.test(r.headers.get('connection') || '')) {
      this.conn.close();
      this.conn = null;
    }
    return r;
  }

  close() { if (this.conn) this.conn.close(); this.conn = null; }
}

/** n clients, each with its connection already open. */
export async function clients(srv, n) {
  const list = Array.from({ length: n }, () => new Client(srv));
  await Promise.all(list.map((c) => c.open()));
  return list;
}

/**
 * POST every object of `rows` to /api/{model} from `n` concurrent clients;
 * returns the created records in the order of `rows`. Any answer other than
 * 201 fails the test.
 */
export async function createMany(srv, model, rows, n = 20) {
  const cs = await clients(srv, Math.max(1, Math.min(n, rows.length)));
  const out = new Array(rows.length);
  const failures = [];
  let nextIndex = 0;
  try {
    await parallel(cs.length, async (k) => {
      for (;;) {
        const i = nextIndex++;
        if (i >= rows.length) return;
        const r = await cs[k].request('POST', `/api/${model}`, rows[i]);
        if (r.status !== 201) { failures.push(`#${i}: ${r.status} ${r.text}`); continue; }
        out[i] = r.body;
      }
    });
  } finally {
    for (const c of cs) c.close();
  }
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} creates of ${model} failed`);
  return out;
}
