// The README, true as written: every runnable shell example of README.md is
// run as a new user would paste it, in order, on a fresh `make run` (the
// server `make run` starts: examples/shop.json, an empty data folder,
// 127.0.0.1, SQLite), and each answer must be the one the README shows.
//
// What runs. Fenced blocks tagged ```sh (or ```bash, ```shell) are run; a block
// tagged ```sh no-test is not (it needs a key, TLS, PostgreSQL, the tally
// command on PATH, or it would change what later examples rely on: the README
// says why around it). Other blocks (```json, ``` plain) are never run.
//
// Commands. A command is a non-comment line, continued over `\` line ends and
// over quotes left open (a multi-line -d '{…}' body). Every command runs in one
// bash, in order, so shell variables carry over (next=$(curl …), token=…);
// `localhost:8080` becomes the test server's port. curl is a shell function
// that adds `-D FILE`, so the test knows the HTTP status of the last curl of a
// command without changing what it prints.
//
// Answers. The comment line right under a command is its answer when it is
//   # 201                 the HTTP status only
//   # 201 {"id":1,…}      the status and the JSON body
//   # {"id":1,…}          the JSON body only
// Without one, the command must exit 0 and its last curl (if any) answer 2xx.
// Any other comment is prose. A JSON answer is compared as JSON, except:
//   - `…` as an object member: the real answer may have more members
//     (`{"id":1,…}`); as the last array element: more elements;
//   - `…` inside a string: any text there ("message":"…" is any message);
//   - any RFC 3339 timestamp string equals any other (createdAt, updatedAt,
//     expiresAt, …);
//   - fields named in VARYING (tokens, cursors, timings that move by the
//     millisecond) only need the same JSON type (a "next" of null is still
//     told from a cursor).
// A mismatch fails with the README line, the command, the expected and the
// actual answer; the examples after it are skipped (they depend on it).
//
// SQLite only: `make run` serves SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, tempDir, sqliteOnly } from './lib/server.mjs';

const README = path.join(ROOT, 'README.md');
const RUNNABLE = new Set(['sh', 'bash', 'shell']);
const VARYING = new Set(['token', 'next', 'retryAfterMs', 'resetAfterMs', 'requestId']);
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const COMMAND_TIMEOUT_MS = 20000;

// ---------- reading the README ----------

/** Fenced blocks: {info, words, startLine (1-based, of the first body line), lines}. */
function fencedBlocks(text) {
  const out = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]);
    if (!open) continue;
    const words = open[1].trim().split(/\s+/).filter(Boolean);
    const body = [];
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j])) body.push(lines[j++]);
    out.push({ words, startLine: i + 2, lines: body });
    i = j;
  }
  return out;
}

/** Does this text leave a quote open or end in a line continuation? (bash's rules, enough of them) */
function unfinished(text) {
  let q = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q === "'") { if (c === "'") q = null; continue; }
    if (c === '\\') { i++; continue; }
    if (q === '"') { if (c === '"') q = null; continue; }
    if (c === "'" || c === '"') q = c;
    else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {   // a comment to the line's end
      while (i < text.length && text[i] !== '\n') i++;
    }
  }
  return q !== null || text.endsWith('\\');
}

/** The answer a comment line shows, or null when it is prose. */
function parseAnswer(comment) {
  const m = /^#\s*(?:(\d{3})(?:\s+|$))?(.*)$/.exec(comment.trim());
  if (!m) return null;
  const status = m[1] ? Number(m[1]) : null;
  const rest = m[2].trim();
  if (rest && !/^[{[]/.test(rest)) return null;       // prose, even when it starts with a number
  if (status === null && !rest) return null;
  return { status, json: rest || null, text: comment.trim() };
}

/** The runnable commands of the README, in order: {line, command, answer|null}. */
export function readmeExamples(text = readFileSync(README, 'utf8')) {
  const examples = [];
  for (const b of fencedBlocks(text)) {
    if (!RUNNABLE.has(b.words[0]) || b.words.includes('no-test')) continue;
    for (let i = 0; i < b.lines.length; i++) {
      const first = b.lines[i];
      if (!first.trim() || first.trim().startsWith('#')) continue;
      const line = b.startLine + i;
      let command = first;
      while (unfinished(command) && i + 1 < b.lines.length) command += '\n' + b.lines[++i];
      const next = b.lines[i + 1];
      const answer = next !== undefined && next.trim().startsWith('#') ? parseAnswer(next) : null;
      examples.push({ line, command, answer });
    }
  }
  return examples;
}

// ---------- comparing answers ----------

const REST = '\u0000…rest';

/** The README's JSON with its `…` elisions made parseable. */
function parseExpected(json) {
  let out = '';
  const stack = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {                    // copy a string whole
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      out += json.slice(i, j + 1);
      i = j;
    } else if (c === '…') {
      out += stack.at(-1) === '{' ? '"\\u0000…rest":0' : '"\\u0000…rest"';   // the REST key/element
    } else {
      if (c === '{' || c === '[') stack.push(c);
      if (c === '}' || c === ']') stack.pop();
      out += c;
    }
  }
  return JSON.parse(out);
}

const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** null when actual matches expected, else where and how it differs. */
function mismatch(expected, actual, where = '$', key = null) {
  if (key !== null && VARYING.has(key)) {
    return kind(expected) === kind(actual) ? null : `${where}: a ${kind(expected)} was expected, not ${JSON.stringify(actual)}`;
  }
  if (typeof expected === 'string') {
    if (typeof actual !== 'string') return `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
    if (TIMESTAMP.test(expected) && TIMESTAMP.test(actual)) return null;
    if (expected.includes('…')) {
      const re = new RegExp(`^${expected.split('…').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^]*')}$`);
      return re.test(actual) ? null : `${where}: ${JSON.stringify(actual)} is not ${JSON.stringify(expected)}`;
    }
    return expected === actual ? null : `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  }
  if (kind(expected) !== kind(actual)) return `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  if (Array.isArray(expected)) {
    const open = expected.at(-1) === REST;
    const items = open ? expected.slice(0, -1) : expected;
    if (open ? actual.length < items.length : actual.length !== items.length) {
      return `${where}: ${actual.length} elements, expected ${open ? 'at least ' : ''}${items.length}`;
    }
    for (let i = 0; i < items.length; i++) {
      const d = mismatch(items[i], actual[i], `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (kind(expected) === 'object') {
    const open = REST in expected;
    for (const k of Object.keys(expected)) {
      if (k === REST) continue;
      if (!(k in actual)) return `${where}.${k}: missing`;
      const d = mismatch(expected[k], actual[k], `${where}.${k}`, k);
      if (d) return d;
    }
    if (!open) {
      const extra = Object.keys(actual).filter((k) => !(k in expected));
      if (extra.length) return `${where}: unexpected member(s) ${extra.join(', ')}`;
    }
    return null;
  }
  return Object.is(expected, actual) ? null : `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

// ---------- one bash for the whole README ----------

function startShell(cwd, headersFile) {
  const env = { ...process.env, README_HEADERS: headersFile, no_proxy: 'localhost,127.0.0.1', NO_PROXY: 'localhost,127.0.0.1' };
  const sh = spawn('bash', ['--noprofile', '--norc'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let waiting = null;
  sh.stdout.setEncoding('utf8');
  sh.stderr.setEncoding('utf8');
  sh.stdout.on('data', (d) => {
    out += d;
    const m = /\u001eEND (\d+)\n/.exec(out);
    if (m && waiting) {
      const stdout = out.slice(0, m.index);
      out = out.slice(m.index + m[0].length);
      const w = waiting;
      waiting = null;
      w({ rc: Number(m[1]), stdout, stderr: err });
      err = '';
    }
  });
  sh.stderr.on('data', (d) => { err += d; });
  sh.stdin.write(`curl() { command curl -D "$README_HEADERS" "$@"; }\n`);
  return {
    run(command) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { waiting = null; reject(new Error(`no end after ${COMMAND_TIMEOUT_MS} ms`)); }, COMMAND_TIMEOUT_MS);
        waiting = (r) => { clearTimeout(timer); resolve(r); };
        sh.stdin.write(`: > "$README_HEADERS"\n${command}\nprintf '\\036END %d\\n' $?\n`);
      });
    },
    close() { sh.stdin.end(); sh.kill('SIGKILL'); },
  };
}

/** The status of the last answer curl wrote to the headers file, or null if no curl ran. */
function lastStatus(headersFile) {
  let text = '';
  try { text = readFileSync(headersFile, 'utf8'); } catch { return null; }
  const all = [...text.matchAll(/^HTTP\/[\d.]+ (\d{3})/gm)];
  return all.length ? Number(all.at(-1)[1]) : null;
}

// ---------- the tests ----------

test('the README has runnable examples, each with its answer convention understood', () => {
  const ex = readmeExamples();
  assert.ok(ex.length >= 30, `only ${ex.length} runnable commands found in README.md`);
  for (const e of ex) {
    if (e.answer && e.answer.json) assert.doesNotThrow(() => parseExpected(e.answer.json), `README.md:${e.line + 1}: the answer is not JSON: ${e.answer.text}`);
    assert.doesNotMatch(e.command, /localhost:(?!8080)\d+/, `README.md:${e.line}: a runnable example talks to localhost:8080 (make run's port)`);
  }
});

test('every runnable README example answers what the README shows, on a fresh make run', sqliteOnly('make run serves SQLite'), async (t) => {
  const srv = await startServer({ backend: 'sqlite' });
  const cwd = tempDir('tally-readme-');
  const headersFile = path.join(cwd, '.headers');
  const shell = startShell(cwd, headersFile);
  let failed = null;
  try {
    for (const e of readmeExamples()) {
      const label = `README.md:${e.line} ${e.command.split('\n')[0].slice(0, 90)}`;
      if (failed) { await t.test(label, { skip: `after the failure at README.md:${failed}` }, () => {}); continue; }
      await t.test(label, async () => {
        const command = e.command.replace(/(localhost|127\.0\.0\.1):8080/g, `$1:${srv.port}`);
        try {
          const r = await shell.run(command);
          const status = lastStatus(headersFile);
          const actual = `${status ?? '(no curl)'} ${r.stdout.trim()}`;
          const say = (why) => `README.md:${e.line}: ${why}\n  command:  ${command}\n  expected: ${e.answer ? e.answer.text : '(exit 0, 2xx)'}\n  actual:   ${actual}\n  stderr:   ${r.stderr.trim()}`;
          assert.equal(r.rc, 0, say(`exit status ${r.rc}`));
          if (!e.answer) {
            if (status !== null) assert.ok(status >= 200 && status < 300, say(`answered ${status}, and the README shows no answer (so a success)`));
            return;
          }
          if (e.answer.status !== null) assert.equal(status, e.answer.status, say('another status'));
          if (e.answer.json !== null) {
            let body;
            try { body = JSON.parse(r.stdout); } catch { assert.fail(say('the answer is not JSON')); }
            const d = mismatch(parseExpected(e.answer.json), body);
            assert.equal(d, null, say(d));
          }
        } catch (err) {
          failed = e.line;
          throw err;
        }
      });
    }
  } finally {
    shell.close();
    await srv.stop();
  }
});
