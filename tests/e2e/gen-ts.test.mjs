// `tally gen ts`: the types it writes compile with @tally/client, accept
// what the server accepts and refuse what it refuses (checked by the
// TypeScript compiler of clients/js's lockfile, with @ts-expect-error lines
// that fail the compile if they ever stop being errors); bad input is
// refused with a message.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runTally, SHOP_SCHEMA, tempDir, writeSchema } from './lib/server.mjs';
import { CLIENT_DIR, TSC } from './lib/client.mjs';

/** A folder where `import … from "@tally/client"` finds clients/js, with the files given; tsc's output. */
function typecheck(files) {
  const dir = tempDir('tally-gen-ts-');
  mkdirSync(path.join(dir, 'node_modules', '@tally'), { recursive: true });
  symlinkSync(CLIENT_DIR, path.join(dir, 'node_modules', '@tally', 'client'));
  writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'] },
    files: Object.keys(files),
  }));
  const r = spawnSync(process.execPath, [TSC, '-p', dir], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr, dir };
}

test('the shop types: the issue\'s calls compile, and what the server refuses is a type error', async () => {
  const dir = tempDir('tally-gen-out-');
  const out = path.join(dir, 'shop.ts');
  const r = await runTally(['gen', 'ts', '--schema', SHOP_SCHEMA, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const ts = readFileSync(out, 'utf8');
  assert.match(ts, /export interface Product \{/);
  assert.match(ts, /export interface TicketCreate \{\n[^}]*event: Tally\.LinkOrCreate<EventCreate>;/, 'a required belongsTo is a link or a nested create');
  assert.match(ts, /export interface Ticket \{[^}]*event: number;/, 'a belongsTo is the linked id in the record');
  assert.match(ts, /images\?: Array<Tally\.HasManyItem<Omit<ImageCreate, "post">>>/, 'hasMany children without their link back');
  assert.match(ts, /export type ProductNumeric = "stock";/);
  assert.match(ts, /export type LimitName = "login";/);
  const use = `
import { createClient, GuardFailed } from "@tally/client";
import type { Schema, Product } from "./shop.js";
const db = createClient<Schema>({ url: "http://127.0.0.1:8080" });
export async function uses(): Promise<void> {
  const c = await db.customer.update(1, { _atomics: { orderCount: { increment: 1 } } });
  const name: string = c.name;
  const n: number = await db.customer.whereId(1).increment("orderCount");
  const count: number = await db.product.where({ sku: { in: ["a", "b"] } }).incrementMany("stock", 5);
  const left: number = await db.product.whereId(5).where("stock", ">=", 2).decrement("stock", 2);
  await db.transaction(async (tx) => { await tx.ticket.create({ event: { _link: 1 } }); }, { timeoutMs: 5000 });
  for await (const p of db.product.list({ sort: { stock: "descending" } })) { const sku: string = p.sku; void sku; }
  await db.post.create({ title: "t", images: [{ create: { url: "https://x/1.png" } }, { _link: 3 }] });
  await db.ticket.create({ event: { create: { availableTicketCount: 10 } } });
  await db.batch((b) => { const p = b.post.create({ title: "x" }); b.image.create({ url: "u", post: { _link: p.ref("id") } }); });
  await db.rateLimit.upsert({ on: ["userId", "window"], create: { userId: "u", window: 1 }, update: { _atomics: { requests: { increment: 1 } } } });
  try { await db.product.update(1, { _where: { stock: { greaterThanOrEqual: 2 } }, _atomics: { stock: { decrement: 2 } } }); }
  catch (e) { if (e instanceof GuardFailed) { const cur = e.current as Product | undefined; void cur; } }
  // @ts-expect-error sku is a string: _atomics takes the numeric fields only
  await db.product.update(1, { _atomics: { sku: { increment: 1 } } });
  // @ts-expect-error increment takes a numeric field
  await db.product.whereId(1).increment("sku");
  // @ts-expect-error name is required
  await db.customer.create({ email: "x@y" });
  // @ts-expect-error there is no such field
  await db.customer.create({ name: "x", nickname: "y" });
  // @ts-expect-error stock is a number
  await db.product.create({ sku: "a", stock: "5" });
  // @ts-expect-error an update links by id; a nested create is for creates
  await db.ticket.update(1, { event: { create: {} } });
  // @ts-expect-error the record's belongsTo is an id
  const ev: { id: number } = (await db.ticket.get(1)).event;
  // @ts-expect-error no such model
  await db.nosuch.get(1);
  void name; void n; void count; void left; void ev;
}
`;
  const tc = typecheck({ 'shop.ts': ts, 'use.ts': use });
  assert.equal(tc.code, 0, `tsc:\n${tc.out}`);
});

test('every field type, and a model with no numeric field has no _atomics at all', async () => {
  const schema = writeSchema({
    models: {
      thing: { fields: {
        i: { type: 'integer', required: true, min: 0, max: 9 }, f: { type: 'float' }, b: { type: 'boolean', default: true },
        s: { type: 'string', maxLength: 5 }, d: { type: 'datetime' }, j: { type: 'json' },
        owner: { type: 'belongsTo', model: 'person', onDelete: 'setNull' } } },
      person: { fields: { name: { type: 'string', required: true }, things: { type: 'hasMany', model: 'thing', inverse: 'owner' } } },
    },
  });
  const r = await runTally(['gen', 'ts', '--schema', schema]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\/\*\* integer, required, min 0, max 9 \*\/\n  i: number;/);
  assert.match(r.stdout, /d\?: string \| Date \| null;/, 'a datetime takes a Date or RFC 3339 text');
  assert.match(r.stdout, /export type PersonNumeric = never;/);
  const use = `
import { createClient } from "@tally/client";
import type { Schema } from "./types.js";
const db = createClient<Schema>({ url: "http://h:1" });
export async function uses(): Promise<void> {
  const t = await db.thing.create({ i: 1, f: 2.5, b: false, s: "abc", d: new Date(), j: { any: ["json"] }, owner: 1 });
  const when: string | null = t.d; const o: number | null = t.owner; void when; void o;
  await db.thing.update(t.id, { _atomics: { i: { increment: 1 }, f: [{ decrement: 0.5 }] }, owner: null });
  await db.person.create({ name: "p", things: [{ create: { i: 2 } }] });
  // @ts-expect-error a model without numeric fields takes no _atomics
  await db.person.update(1, { _atomics: {} });
  // @ts-expect-error i is required
  await db.thing.create({ f: 1 });
}
`;
  const tc = typecheck({ 'types.ts': r.stdout, 'use.ts': use });
  assert.equal(tc.code, 0, `tsc:\n${tc.out}`);
});

test('bad input: a bad schema, clashing type names, a missing --schema, an unknown language', async () => {
  const bad = await runTally(['gen', 'ts', '--schema', writeSchema({ models: { p: { fields: { x: { type: 'money' } } } } })]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad schema .*x/);
  const clash = await runTally(['gen', 'ts', '--schema', writeSchema({ models: {
    post: { fields: { t: { type: 'string' } } }, Post: { fields: { t: { type: 'string' } } } } })]);
  assert.equal(clash.code, 1);
  assert.match(clash.stderr, /'post' and 'Post' would both get the TypeScript type Post/);
  const none = await runTally(['gen', 'ts']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /needs --schema FILE/);
  const other = await runTally(['gen', 'py', '--schema', SHOP_SCHEMA]);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /ts \(TypeScript\) only/);
  const unwritable = await runTally(['gen', 'ts', '--schema', SHOP_SCHEMA, '--out', '/nonexistent-dir/x.ts']);
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.stderr, /cannot write \/nonexistent-dir\/x.ts/);
});
