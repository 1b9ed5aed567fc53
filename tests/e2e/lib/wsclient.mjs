// A small client for Tally's WebSocket API (`/api/ws`, README.md, "Interactive transactions over WebSocket"), built
// on the `ws` package. One JSON text message each way; answers echo the id of
// their request; server-initiated events (`{"event": ...}`) carry no id.
//
//   const c = await WsClient.open(srv);
//   const a = await c.call({op: 'begin', timeoutMs: 5000});   // id added if missing
//   a.ok, a.result, a.error, a.rolledBack
//   await c.step({create: 'post', data: {title: 'x'}});        // {op: 'step', step}
//   c.sendRaw('not json'); await c.next((m) => m.id === null);  // anything goes
//   await c.nextEvent('rolledBack', 3000);
//   c.close(); c.terminate();                                   // clean close / TCP drop
import WebSocket from 'ws';

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.inbox = [];           // messages not yet taken by a waiter
    this.all = [];             // every message ever received, in order
    this.waiters = [];         // {pred, resolve, reject, timer}
    this.closed = false;
    this.closeInfo = null;
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data).toString('utf8') : data.toString();
      let msg;
      try { msg = JSON.parse(text); } catch { msg = { __unparsable: text }; }
      this.all.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(msg);
      } else {
        this.inbox.push(msg);
      }
    });
    ws.on('close', (code, reason) => {
      this.closed = true;
      this.closeInfo = { code, reason: reason.toString() };
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`websocket closed (${code} ${reason}) while waiting for a message${code === 1006 ? ' (dropped without a close frame: did the server die?)' : ''}`));
      }
    });
    ws.on('error', () => { /* surfaced through close */ });
  }

  /** Connect to srv (an object with .port, or a URL string). */
  static open(srv, path = '/api/ws') {
    const url = typeof srv === 'string' ? srv : `ws://127.0.0.1:${srv.port}${path}`;
    // no permessage-deflate: frames go out synchronously, as written
    const ws = new WebSocket(url, { perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
  }

  /** Wait for the next message matching pred (already received ones first). */
  next(pred = () => true, timeoutMs = 10000) {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.closed) return Promise.reject(new Error(`websocket is closed (${this.closeInfo?.code}${this.closeInfo?.code === 1006 ? ': dropped without a close frame, did the server die?' : ''})`));
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no matching message within ${timeoutMs} ms; received so far: ${JSON.stringify(this.all)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Wait for a server event such as {"event": "rolledBack"}. */
  nextEvent(name, timeoutMs = 10000) {
    return this.next((m) => m && m.event === name, timeoutMs);
  }

  /** Send a message object without waiting; returns the id used. */
  send(msg) {
    const m = { ...msg };
    if (!('id' in m)) m.id = this.nextId++;
    this.ws.send(JSON.stringify(m));
    return m.id;
  }

  /** Send several messages in one TCP write (they reach the server together); returns their ids. */
  sendTogether(msgs) {
    const sock = this.ws._socket;
    sock.cork();
    try {
      return msgs.map((m) => this.send(m));
    } finally {
      sock.uncork();
    }
  }

  /** Send raw text (or a Buffer) as a text frame. */
  sendRaw(text) {
    this.ws.send(text, { binary: false });
  }

  /** Send a message and wait for the answer that echoes its id. */
  async call(msg, timeoutMs = 10000) {
    const id = this.send(msg);
    return this.next((m) => m && typeof m === 'object' && 'id' in m && m.id === id && !('event' in m), timeoutMs);
  }

  begin(timeoutMs, extra = {}) {
    return this.call(timeoutMs === undefined ? { op: 'begin', ...extra } : { op: 'begin', timeoutMs, ...extra });
  }
  step(step, timeoutMs) { return this.call({ op: 'step', step }, timeoutMs); }
  commit(timeoutMs) { return this.call({ op: 'commit' }, timeoutMs); }
  rollback(timeoutMs) { return this.call({ op: 'rollback' }, timeoutMs); }

  /** Clean WebSocket close; resolves once the socket is closed. */
  close() {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }

  /** Drop the TCP connection without a close handshake. */
  terminate() {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.terminate();
    });
  }
}

/** Assert-free helper: a promise that records when it settled. */
export function track(promise) {
  const t = { done: false, value: undefined, error: undefined, at: 0 };
  t.promise = promise.then(
    (v) => { t.done = true; t.value = v; t.at = Date.now(); return v; },
    (e) => { t.done = true; t.error = e; t.at = Date.now(); throw e; },
  );
  t.promise.catch(() => {});
  return t;
}
