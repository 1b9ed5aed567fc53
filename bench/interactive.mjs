// What an open interactive (WebSocket) transaction costs everyone else.
//
// On SQLite an interactive transaction owns the write connection from begin
// to commit; other writes queue behind it. This measures HTTP increments
// from 20 keep-alive clients for DURATION seconds in three phases:
//   1. alone;
//   2. while one WebSocket client loops begin → 1 step → commit, back to back;
//   3. the same with 20 ms of client "think time" inside each transaction.
// and prints writes/s and p50/p99 latency of the HTTP increments per phase.
// Usage: node bench/interactive.mjs   (builds nothing; needs build/tally and
//        tests/e2e/node_modules, i.e. `make` and `npm ci` in tests/e2e)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'tests/e2e/package.json'));
const WebSocket = require('ws');
const { RawConnection } = await import(path.join(root, 'tests/e2e/lib/rawhttp.mjs'));
const DURATION = Number(process.env.DURATION || 5) * 1000;
const CLIENTS = 20;

const data = mkdtempSync(path.join(os.tmpdir(), 'tally-bench-'));
const srv = spawn(path.join(root, 'build/tally'),
  ['serve', '--schema', path.join(root, 'examples/shop.json'), '--data', data, '--listen', '127.0.0.1:0'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve) => srv.stdout.on('data', (d) => {
  const m = /listening on http:\/\/[^:]+:(\d+)/.exec(d.toString());
  if (m) resolve(Number(m[1]));
}));
const base = `http://127.0.0.1:${port}`;
await fetch(`${base}/api/customer`, { method: 'POST', body: JSON.stringify({ name: 'hot' }) });
await fetch(`${base}/api/product`, { method: 'POST', body: JSON.stringify({ sku: 'ws', stock: 1e9 }) });

async function httpLoad(ms) {
  const conns = await Promise.all(Array.from({ length: CLIENTS }, async () => {
    const c = new RawConnection('127.0.0.1', port); await c.connect(); return c;
  }));
  const lat = [];
  const body = JSON.stringify({ _atomics: { orderCount: { increment: 1 } } });
  const end = Date.now() + ms;
  await Promise.all(conns.map(async (c) => {
    while (Date.now() < end) {
      const t = process.hrtime.bigint();
      const r = await c.request('PATCH', '/api/customer/1', body);
      if (r.status === 200) lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }));
  conns.forEach((c) => c.close?.());
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN;
  return { rps: lat.length / (ms / 1000), p50: q(0.5), p99: q(0.99) };
}

function wsLoop(thinkMs, stop) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/ws`);
    let id = 0, txns = 0;
    const waiting = [];
    ws.on('message', (d) => waiting.shift()?.(JSON.parse(d.toString())));
    const call = (m) => new Promise((r) => { waiting.push(r); ws.send(JSON.stringify({ id: ++id, ...m })); });
    ws.on('open', async () => {
      while (!stop.done) {
        await call({ op: 'begin', timeoutMs: 5000 });
        await call({ op: 'step', step: { update: 'product', id: 1, data: { _atomics: { stock: { decrement: 1 } } } } });
        if (thinkMs) await new Promise((r) => setTimeout(r, thinkMs));
        await call({ op: 'commit' });
        txns++;
      }
      ws.close();
      resolve(txns);
    });
  });
}

const rows = [];
rows.push(['alone', await httpLoad(DURATION), 0]);
for (const think of [0, 20]) {
  const stop = { done: false };
  const loop = wsLoop(think, stop);
  const r = await httpLoad(DURATION);
  stop.done = true;
  rows.push([`with a WS txn loop, think ${think} ms`, r, await loop]);
}
srv.kill('SIGTERM');
await new Promise((r) => srv.on('exit', r));
rmSync(data, { recursive: true, force: true });
console.log(`HTTP increments from ${CLIENTS} clients, ${DURATION / 1000} s per phase`);
console.log('phase'.padEnd(36), 'writes/s'.padStart(10), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'ws txns/s'.padStart(10));
for (const [name, r, txns] of rows)
  console.log(name.padEnd(36), r.rps.toFixed(0).padStart(10), r.p50.toFixed(2).padStart(8), r.p99.toFixed(2).padStart(8),
    (txns / (DURATION / 1000)).toFixed(0).padStart(10));
