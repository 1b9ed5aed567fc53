// Relations: belongsTo by _link / bare id / nested create, hasMany create and
// link on create, all in one transaction (a failure anywhere rolls the whole
// create back), and onDelete restrict / cascade / setNull.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fileServer, shopPlus, expectError, expectStatus } from './lib/server.mjs';
import { recordHelpers } from './lib/records.mjs';

const { api } = fileServer({
  schema: shopPlus({
    team: { fields: {
      name: { type: 'string', required: true },
      players: { type: 'hasMany', model: 'player', inverse: 'team' },
      fans: { type: 'hasMany', model: 'fan', inverse: 'team' },
    } },
    player: { fields: {
      name: { type: 'string' },
      team: { type: 'belongsTo', model: 'team', onDelete: 'cascade' },
    } },
    goal: { fields: {
      minute: { type: 'integer' },
      player: { type: 'belongsTo', model: 'player', onDelete: 'cascade' },
    } },
    fan: { fields: {
      name: { type: 'string' },
      team: { type: 'belongsTo', model: 'team', onDelete: 'setNull' },
    } },
    sponsor: { fields: {
      name: { type: 'string' },
      team: { type: 'belongsTo', model: 'team' },
    } },
  }),
});
const { create, get, snapshot, snapshots } = recordHelpers(() => api);

describe('belongsTo', () => {
  test('{"_link": id} stores the target id; the record shows it as an integer', async () => {
    const p = await create('post', { title: 'P' });
    const img = await create('image', { url: 'https://x/1.png', post: { _link: p.id } });
    assert.equal(img.post, p.id);
    assert.equal((await get('image', img.id)).post, p.id);
  });

  test('a bare integer id links too', async () => {
    const p = await create('post', { title: 'P2' });
    const img = await create('image', { url: 'https://x/2.png', post: p.id });
    assert.equal(img.post, p.id);
  });

  test('an optional belongsTo left out or null is null', async () => {
    const a = await create('image', { url: 'https://x/3.png' });
    assert.equal(a.post, null);
    const b = await create('image', { url: 'https://x/4.png', post: null });
    assert.equal(b.post, null);
  });

  test('_link to a missing record: 422 VALIDATION, nothing created', async () => {
    const before = await snapshots('image', 'post');
    for (const body of [{ url: 'u', post: { _link: 987654 } }, { url: 'u', post: 987654 }]) {
      const r = await api('POST', '/api/image', body);
      expectError(r, 422, 'VALIDATION', /^post\b/);
    }
    assert.deepEqual(await snapshots('image', 'post'), before);
  });

  test('a required belongsTo left out or null: 422 VALIDATION', async () => {
    const before = await snapshot('ticket');
    expectError(await api('POST', '/api/ticket', {}), 422, 'VALIDATION', 'event');
    expectError(await api('POST', '/api/ticket', { event: null }), 422, 'VALIDATION', 'event');
    assert.deepEqual(await snapshot('ticket'), before);
  });

  test('a belongsTo of the wrong type: 422 VALIDATION', async () => {
    const before = await snapshot('image');
    expectError(await api('POST', '/api/image', { url: 'u', post: 'one' }), 422, 'VALIDATION', 'post');
    expectError(await api('POST', '/api/image', { url: 'u', post: 1.5 }), 422, 'VALIDATION', 'post');
    expectError(await api('POST', '/api/image', { url: 'u', post: { _link: 'one' } }), 422, 'VALIDATION', /^post\b/);
    assert.deepEqual(await snapshot('image'), before);
  });

  test('nested {"create": {...}} creates the target first and links it', async () => {
    const beforeEvents = (await snapshot('event')).length;
    const t = await create('ticket', { event: { create: { availableTicketCount: 5 } } });
    assert.ok(Number.isInteger(t.event));
    const e = await get('event', t.event);
    assert.equal(e.availableTicketCount, 5);
    assert.equal(e.soldTicketCount, 0, 'defaults apply to the nested record');
    assert.equal((await snapshot('event')).length, beforeEvents + 1);
  });

  test('a failing nested create rolls back: neither record is created', async () => {
    const before = await snapshots('image', 'post');
    // the nested post is missing its required title
    const r = await api('POST', '/api/image', { url: 'https://x/n.png', post: { create: {} } });
    assert.equal(r.status, 422, r.text);
    expectError(r, 422, 'VALIDATION');
    assert.deepEqual(await snapshots('image', 'post'), before);
  });

  test('a root that fails after its nested create succeeded: the nested record is rolled back', async () => {
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/image', { url: 'u'.repeat(2049), post: { create: { title: 'orphan?' } } });
    expectError(r, 422, 'VALIDATION', 'url');
    assert.deepEqual(await snapshots('image', 'post'), before, 'the nested post must not exist');
  });

  test('PATCH moves a belongsTo to another target, to null, and refuses a missing target', async () => {
    const p1 = await create('post', { title: 'one' });
    const p2 = await create('post', { title: 'two' });
    const img = await create('image', { url: 'https://x/m.png', post: { _link: p1.id } });
    let r = await api('PATCH', `/api/image/${img.id}`, { post: { _link: p2.id } });
    expectStatus(r, 200);
    assert.equal(r.body.post, p2.id);
    r = await api('PATCH', `/api/image/${img.id}`, { post: null });
    expectStatus(r, 200);
    assert.equal(r.body.post, null);
    r = await api('PATCH', `/api/image/${img.id}`, { post: p1.id });
    expectStatus(r, 200);
    assert.equal(r.body.post, p1.id);
    const cur = await get('image', img.id);
    r = await api('PATCH', `/api/image/${img.id}`, { post: { _link: 987654 }, url: 'https://x/changed.png' });
    expectError(r, 422, 'VALIDATION', /^post\b/);
    assert.deepEqual(await get('image', img.id), cur);
  });
});

describe('hasMany on create', () => {
  test('creates and links children in the same request; answers the root without the hasMany field', async () => {
    const loose = await create('image', { url: 'https://x/loose.png' });
    const before = (await snapshot('image')).length;
    const r = await api('POST', '/api/post', {
      title: 'gallery',
      images: [{ create: { url: 'https://x/a.png' } }, { create: { url: 'https://x/b.png' } }, { _link: loose.id }],
    });
    expectStatus(r, 201);
    const p = r.body;
    assert.equal(p.title, 'gallery');
    assert.ok(!('images' in p), `hasMany fields are not in the record: ${r.text}`);
    assert.deepEqual(Object.keys(p).sort(), ['createdAt', 'id', 'title', 'updatedAt']);
    const imgs = (await snapshot('image')).filter((i) => i.post === p.id);
    assert.deepEqual(imgs.map((i) => i.url).sort(), ['https://x/a.png', 'https://x/b.png', 'https://x/loose.png']);
    assert.equal((await snapshot('image')).length, before + 2);
    assert.equal((await get('image', loose.id)).post, p.id);
    assert.ok(!('images' in (await get('post', p.id))));
  });

  test('a failing child rolls back the root and every other child', async () => {
    const loose = await create('image', { url: 'https://x/loose2.png' });
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/post', {
      title: 'doomed gallery',
      images: [{ _link: loose.id }, { create: { url: 'https://x/ok.png' } }, { create: {} }],
    });
    expectError(r, 422, 'VALIDATION', 'images[2].url');
    assert.deepEqual(await snapshots('image', 'post'), before, 'no post, no image created, the linked image not moved');
  });

  test('a child over maxLength rolls everything back', async () => {
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/post', {
      title: 'long',
      images: [{ create: { url: 'https://x/fine.png' } }, { create: { url: 'u'.repeat(2049) } }],
    });
    expectError(r, 422, 'VALIDATION', 'images[1].url');
    assert.deepEqual(await snapshots('image', 'post'), before);
  });

  test('linking a missing child rolls everything back', async () => {
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/post', {
      title: 'missing link',
      images: [{ create: { url: 'https://x/c.png' } }, { _link: 987654 }],
    });
    expectError(r, 422, 'VALIDATION', /^images\[1\]/);
    assert.deepEqual(await snapshots('image', 'post'), before);
  });

  test('a root that fails rolls back its children', async () => {
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/post', { images: [{ create: { url: 'https://x/d.png' } }] });
    expectError(r, 422, 'VALIDATION', 'title');
    assert.deepEqual(await snapshots('image', 'post'), before);
  });

  test('hasMany that is not a list: an error, nothing created', async () => {
    const before = await snapshots('image', 'post');
    const r = await api('POST', '/api/post', { title: 't', images: { create: { url: 'x' } } });
    assert.ok(r.status === 400 || r.status === 422, `status ${r.status} ${r.text}`);
    expectError(r, r.status, r.status === 400 ? 'BAD_REQUEST' : 'VALIDATION');
    assert.deepEqual(await snapshots('image', 'post'), before);
  });
});

describe('onDelete', () => {
  test('restrict (the default): deleting a referenced record is 409 CONFLICT, nothing changed', async () => {
    const t = await create('ticket', { event: { create: { availableTicketCount: 1 } } });
    const e = await get('event', t.event);
    const r = await api('DELETE', `/api/event/${e.id}`);
    expectError(r, 409, 'CONFLICT');
    assert.deepEqual(await get('event', e.id), e);
    assert.deepEqual(await get('ticket', t.id), t);
    // once the reference is gone, the delete works
    expectStatus(await api('DELETE', `/api/ticket/${t.id}`), 200);
    const d = await api('DELETE', `/api/event/${e.id}`);
    expectStatus(d, 200);
    assert.deepEqual(d.body, { id: e.id });
  });

  test('restrict on image.post: a post with images cannot be deleted', async () => {
    const r0 = await api('POST', '/api/post', { title: 'has images', images: [{ create: { url: 'https://x/r.png' } }] });
    expectStatus(r0, 201);
    const r = await api('DELETE', `/api/post/${r0.body.id}`);
    expectError(r, 409, 'CONFLICT');
    assert.deepEqual(await get('post', r0.body.id), r0.body);
  });

  test('cascade deletes the children (and theirs); setNull clears the reference', async () => {
    const team = await create('team', { name: 'Reds' });
    const other = await create('team', { name: 'Blues' });
    const p1 = await create('player', { name: 'p1', team: { _link: team.id } });
    const p2 = await create('player', { name: 'p2', team: team.id });
    const pOther = await create('player', { name: 'p3', team: other.id });
    const g1 = await create('goal', { minute: 10, player: p1.id });
    const gOther = await create('goal', { minute: 20, player: pOther.id });
    const f1 = await create('fan', { name: 'f1', team: team.id });
    const fOther = await create('fan', { name: 'f2', team: other.id });

    const r = await api('DELETE', `/api/team/${team.id}`);
    expectStatus(r, 200);
    assert.deepEqual(r.body, { id: team.id });
    expectError(await api('GET', `/api/team/${team.id}`), 404, 'NOT_FOUND');
    expectError(await api('GET', `/api/player/${p1.id}`), 404, 'NOT_FOUND');
    expectError(await api('GET', `/api/player/${p2.id}`), 404, 'NOT_FOUND');
    expectError(await api('GET', `/api/goal/${g1.id}`), 404, 'NOT_FOUND');
    const fan = await get('fan', f1.id);
    assert.equal(fan.team, null, 'setNull');
    assert.equal(fan.name, 'f1');
    // the other team's records are untouched
    assert.deepEqual(await get('player', pOther.id), pOther);
    assert.deepEqual(await get('goal', gOther.id), gOther);
    assert.deepEqual(await get('fan', fOther.id), fOther);
    assert.deepEqual(await get('team', other.id), other);
  });

  test('a restrict child blocks the delete, and the cascade and setNull of that delete do not happen', async () => {
    const team = await create('team', { name: 'Greens' });
    await create('player', { name: 'gp', team: team.id });
    await create('fan', { name: 'gf', team: team.id });
    await create('sponsor', { name: 'gs', team: team.id });
    const before = await snapshots('team', 'player', 'fan', 'sponsor', 'goal');
    const r = await api('DELETE', `/api/team/${team.id}`);
    expectError(r, 409, 'CONFLICT');
    assert.deepEqual(await snapshots('team', 'player', 'fan', 'sponsor', 'goal'), before);
  });

  test('deleting a child leaves the parent alone', async () => {
    const team = await create('team', { name: 'Golds' });
    const pl = await create('player', { name: 'solo', team: team.id });
    expectStatus(await api('DELETE', `/api/player/${pl.id}`), 200);
    assert.deepEqual(await get('team', team.id), team);
  });

  test('hasMany create on a cascade relation, then delete cascades them', async () => {
    const r = await api('POST', '/api/team', {
      name: 'Whites', players: [{ create: { name: 'w1' } }, { create: { name: 'w2' } }], fans: [{ create: { name: 'wf' } }],
    });
    expectStatus(r, 201);
    const id = r.body.id;
    const players = (await snapshot('player')).filter((p) => p.team === id);
    const fans = (await snapshot('fan')).filter((f) => f.team === id);
    assert.equal(players.length, 2);
    assert.equal(fans.length, 1);
    expectStatus(await api('DELETE', `/api/team/${id}`), 200);
    for (const p of players) expectError(await api('GET', `/api/player/${p.id}`), 404, 'NOT_FOUND');
    assert.equal((await get('fan', fans[0].id)).team, null);
  });
});
