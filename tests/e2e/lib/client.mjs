// The built TypeScript client (clients/js) for the suites that test it:
// builds it with the lockfile's tsc when dist/ is missing or older than
// its sources, then imports it.
//
//   import { tally, connect, CLIENT_DIR, TSC } from './lib/client.mjs';
//   const db = connect(srv);              // createClient({url: srv.url, WebSocket}) on a started server
//   tally.GuardFailed, tally.field, …     // everything the package exports
//
// Node 20 has no WebSocket of its own, so connect() hands the client the
// `ws` package's (a real WebSocket client); Node 22+ would use its own.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { ROOT } from './server.mjs';

export const CLIENT_DIR = path.join(ROOT, 'clients', 'js');
export const TSC = path.join(CLIENT_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

function newestSource() {
  let t = statSync(path.join(CLIENT_DIR, 'tsconfig.json')).mtimeMs;
  for (const f of readdirSync(path.join(CLIENT_DIR, 'src'))) t = Math.max(t, statSync(path.join(CLIENT_DIR, 'src', f)).mtimeMs);
  return t;
}

function buildClient() {
  const out = path.join(CLIENT_DIR, 'dist', 'index.js');
  if (existsSync(out) && statSync(out).mtimeMs >= newestSource()) return;
  if (!existsSync(TSC)) {
    throw new Error(`clients/js has no TypeScript compiler: run scripts/deps.sh test (npm ci in ${CLIENT_DIR})`);
  }
  const r = spawnSync(process.execPath, [TSC, '-p', path.join(CLIENT_DIR, 'tsconfig.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building clients/js failed:\n${r.stdout}${r.stderr}`);
}

buildClient();
export const tally = await import(path.join(CLIENT_DIR, 'dist', 'index.js'));

/** A client for a started server (srv from startServer), with options added. */
export function connect(srv, options = {}) {
  return tally.createClient({ url: srv.url, WebSocket, ...options });
}

export { WebSocket };
