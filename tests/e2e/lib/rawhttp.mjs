// A lean HTTP/1.1 keep-alive client on a raw TCP socket, one request at a
// time per connection. `fetch` costs about a millisecond of client CPU per
// request, so 50 fetch "clients" on a small machine keep only a few requests
// at the server at once; these connections keep all 50 in flight, which is
// what the group-commit tests need to measure.
import net from 'node:net';

export class RawConnection {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.sock = null;
    this.buf = Buffer.alloc(0);
    this.waiter = null;
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port, noDelay: true }, () => resolve());
      s.once('error', reject);
      s.on('data', (d) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this._pump(); });
      s.on('error', (e) => { if (this.waiter) { const w = this.waiter; this.waiter = null; w.reject(e); } });
      s.on('close', () => { this.closed = true; this._pump(); if (this.waiter) { const w = this.waiter; this.waiter = null; w.reject(new Error('connection closed')); } });
      this.sock = s;
    });
  }

  _pump() {
    if (!this.waiter) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const lines = head.split('\r\n');
    const sm = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!sm) { const w = this.waiter; this.waiter = null; w.reject(new Error(`bad status line: ${lines[0]}`)); return; }
    const headers = {};
    const hdrs = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) {
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        hdrs.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
      }
    }
    let text;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      // chunk-size CRLF data CRLF ... 0 CRLF CRLF
      let pos = end + 4;
      const parts = [];
      for (;;) {
        const le = this.buf.indexOf('\r\n', pos);
        if (le < 0) return;
        const size = parseInt(this.buf.subarray(pos, le).toString('latin1').split(';')[0], 16);
        if (Number.isNaN(size)) { const w = this.waiter; this.waiter = null; w.reject(new Error('bad chunk size')); return; }
        if (size === 0) {
          const fin = this.buf.indexOf('\r\n\r\n', le);
          const fin2 = this.buf.length >= le + 4 && this.buf.subarray(le, le + 4).toString('latin1') === '\r\n\r\n' ? le : fin;
          if (fin2 < 0) return;
          pos = fin2 + 4;
          break;
        }
        if (this.buf.length < le + 2 + size + 2) return;
        parts.push(this.buf.subarray(le + 2, le + 2 + size));
        pos = le + 2 + size + 2;
      }
      text = Buffer.concat(parts).toString('utf8');
      this.buf = this.buf.subarray(pos);
    } else if (headers['content-length'] === undefined && !/^(1\d\d|204|304)$/.test(sm[1])) {
      // no length and not chunked: the body runs until the server closes
      if (!this.closed) return;
      text = this.buf.subarray(end + 4).toString('utf8');
      this.buf = Buffer.alloc(0);
    } else {
      const len = Number(headers['content-length'] || 0);
      if (this.buf.length < end + 4 + len) return;
      text = this.buf.subarray(end + 4, end + 4 + len).toString('utf8');
      this.buf = this.buf.subarray(end + 4 + len);
    }
    const w = this.waiter;
    this.waiter = null;
    let body;
    try { body = JSON.parse(text); } catch { body = undefined; }
    // the same shape as api(): headers is a Headers object
    w.resolve({ status: Number(sm[1]), headers: hdrs, text, body });
  }

  request(method, path, bodyText = '') {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      const len = Buffer.byteLength(bodyText, 'utf8');
      // one write per request: head and body together
      this.sock.write(`${method} ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n${bodyText}`);
    });
  }

  close() { if (this.sock) this.sock.destroy(); }
}

/** Open n connections to a server (`srv.port`). */
export async function rawConnections(srv, n) {
  const conns = Array.from({ length: n }, () => new RawConnection('127.0.0.1', srv.port));
  await Promise.all(conns.map((c) => c.connect()));
  return conns;
}
