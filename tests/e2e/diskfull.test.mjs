// A full disk (README "Durability and group commit"): the data folder on a
// small tmpfs that the test mounts, filled under write load. Every refusal
// is a JSON 503, /health answers 503 and says why while writes cannot be
// made durable, nothing acknowledged is lost, and writing resumes by itself
// once space returns. SQLite only (the data folder is the server's), and
// only where the test may mount a tmpfs (root, CAP_SYS_ADMIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { startServer, stopAll, tempDir, sleep, BACKEND, listAll, parallel } from './lib/server.mjs';

test.after(stopAll);

function mountTmpfs(dir, size) {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || r.error?.message || 'mount failed').trim();
}

const mountDir = path.join(tempDir('tally-diskfull-'), 'fs');
const cannot = BACKEND !== 'sqlite' ? 'SQLite only: the data folder is the server\'s' : mountTmpfs(mountDir, '6m');

test('a full disk under write load: JSON 503s, /health 503 with the reason, nothing acknowledged lost, writing resumes by itself', { skip: cannot ? `cannot mount a tmpfs here (${cannot})` : false, timeout: 120000 }, async () => {
  const dataDir = path.join(mountDir, 'data');
  const filler = path.join(mountDir, 'filler');
  writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024, 1));   // space to give back later
  let srv;
  try {
    srv = await startServer({ dataDir });
    const acked = [];
    const odd = [];
    let refused = 0;
    const body = (i) => ({ name: `c${i}-${'x'.repeat(4000)}` });
    // fill it: until writes are refused for a while
    let n = 0;
    for (let round = 0; round < 400 && refused < 20; round++) {
      const rs = await parallel(10, () => srv.api('POST', '/api/customer', body(n++)));
      for (const r of rs) {
        if (r.status === 201) acked.push(r.body.id);
        else if (r.status === 503 && r.body?.error?.code) refused++;
        else odd.push(`${r.status} ${r.text.slice(0, 200)}`);
      }
    }
    assert.deepEqual(odd.slice(0, 5), [], 'every answer is a 201 or a JSON 503');
    assert.ok(refused >= 20, `the disk never filled (${acked.length} records written)`);
    const h = await fetch(`${srv.url}/health`);
    const hb = await h.json();
    console.log(`# ${acked.length} records acknowledged, ${refused} refused; /health: ${h.status} ${JSON.stringify(hb)}`);
    assert.equal(h.status, 503, '/health must not say ok while writes cannot be made durable');
    assert.match(JSON.stringify(hb), /full|space/i, 'and says why');

    // space returns: writes go through again, and /health says ok, with no restart
    unlinkSync(filler);
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      const r = await srv.api('POST', '/api/customer', { name: 'after' });
      if (r.status === 201) { ok = true; acked.push(r.body.id); } else await sleep(100);
    }
    assert.ok(ok, 'writes resume once space is back');
    let healthy = false;
    for (let i = 0; i < 50 && !healthy; i++) {
      healthy = (await fetch(`${srv.url}/health`)).status === 200;
      if (!healthy) await sleep(100);
    }
    assert.ok(healthy, '/health says ok again');

    // nothing acknowledged was lost (across a restart too)
    await srv.stop();
    srv = await startServer({ dataDir });
    const ids = new Set((await listAll(srv.api, 'customer')).map((c) => c.id));
    assert.deepEqual(acked.filter((id) => !ids.has(id)), [], 'every acknowledged record is there');
  } finally {
    if (srv) await srv.stop().catch(() => {});
    spawnSync('umount', ['-l', mountDir]);
  }
});

test.after(() => { if (!cannot) spawnSync('umount', ['-l', mountDir]); });
