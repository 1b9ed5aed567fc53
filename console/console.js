// The Tally web console: browse a model's records (filter, sort, pages by
// cursor), create, edit and delete them, apply `_atomics` with an optional
// guard, run a transaction from JSON, see locks and rate limits, and watch
// one counter change (by the change feed). It learns the models from the server's own
// /api/openapi.json and talks only to the server it was loaded from. A token,
// when the server has keys, is kept in sessionStorage (this tab) only.
// Every value from the server reaches the page as text (textContent), never
// as HTML.

const TOKEN_KEY = 'tally-console-token';
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  models: {},          // name -> {fields: [{name, type, nullable, link}], numeric: [], required: []}
  limits: [],          // [{name, summary}]
  model: null,         // the model shown
  cursors: [null],     // the "after" of each page up to the one shown
  next: null,          // the shown page's next cursor
  records: [],
  selected: null,      // the record in the editor
  live: null,          // {timer, last}
};

// ---------- talking to the server ----------

class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = body && body.error ? body.error : { code: `HTTP_${status}`, message: fallback };
    super(e.message);
    this.status = status;
    this.code = e.code;
    this.path = e.path;
    this.step = e.step;
    this.as = e.as;
    this.current = e.current;
    this.body = body;
  }
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** One call to this server: the parsed answer of a 2xx (or of a status in accept), else an ApiError. */
async function api(method, path, body, { accept = [] } = {}) {
  const headers = { accept: 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['idempotency-key'] = newKey();
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  if (res.ok || accept.includes(res.status)) return { status: res.status, body: parsed };
  throw new ApiError(res.status, parsed, text.slice(0, 300) || res.statusText);
}

// ---------- messages ----------

function say(text, kind = '') {
  const m = $('message');
  m.textContent = text;
  m.className = kind;
}

function describeError(e) {
  if (!(e instanceof ApiError)) return `Error: ${e.message}`;
  let s = `${e.code}: ${e.message}`;
  if (e.path) s += ` (at ${e.path})`;
  if (e.step !== undefined) s += ` [step ${e.step}${e.as ? `, "${e.as}"` : ''}]`;
  if (e.current) s += `\ncurrent: ${JSON.stringify(e.current)}`;
  return s;
}

function fail(e) { say(describeError(e), 'error'); }

/** Parses JSON typed by the user, naming the box it came from. */
function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}

function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') n.className = v;
    else if (k in n && typeof v !== 'string') n[k] = v;
    else n.setAttribute(k, v);
  }
  for (const c of children) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
}

function cellText(v) {
  if (v === null || v === undefined) return el('span', { class: 'muted' }, 'null');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// ---------- the schema, from the server's API description ----------

function typeOf(prop) {
  if (prop.anyOf) return typeOf(prop.anyOf.find((p) => p.type !== 'null') || {});
  const types = Array.isArray(prop.type) ? prop.type : [prop.type];
  const t = types.find((x) => x && x !== 'null');
  if (t === 'string' && prop.format === 'date-time') return 'datetime';
  if (t === 'integer' && /linked/.test(prop.description || '')) return 'link';
  return t || 'json';
}

function readSchema(doc) {
  const schemas = doc.components.schemas;
  for (const name of schemas.ModelName.enum) {
    const rec = schemas[`${name}.record`];
    const fields = Object.entries(rec.properties)
      .filter(([f]) => !['id', 'createdAt', 'updatedAt'].includes(f))
      .map(([f, p]) => ({ name: f, type: typeOf(p), nullable: Array.isArray(p.type) && p.type.includes('null') }));
    const atomics = schemas[`${name}.atomics`];
    state.models[name] = {
      fields,
      numeric: atomics ? Object.keys(atomics.properties) : [],
      required: schemas[`${name}.create`].required || [],
    };
  }
  state.limits = Object.entries(doc.paths)
    .map(([p, v]) => [/^\/api\/limits\/([^/]+)\/\{key\}$/.exec(p), v])
    .filter(([m]) => m)
    .map(([m, v]) => ({ name: decodeURIComponent(m[1]), summary: v.post.summary }));
}

// ---------- start: token, schema ----------

async function start() {
  try {
    const h = await api('GET', '/health', undefined, { accept: [503] });
    $('server-status').textContent = `${h.body.backend}: ${h.body.status}${h.body.reason ? ` (${h.body.reason})` : ''}`;
  } catch (e) {
    $('server-status').textContent = `unreachable: ${e.message}`;
  }
  let doc;
  try {
    doc = (await api('GET', '/api/openapi.json')).body;
  } catch (e) {
    if (e.status === 401) {
      const had = !!state.token;
      forgetToken(false);
      showLogin(had ? `That token was refused: ${e.message}` : '');
      return;
    }
    fail(e);
    return;
  }
  readSchema(doc);
  $('login').hidden = true;
  $('app').hidden = false;
  $('token-status').textContent = state.token ? 'using a token (this tab only)' : 'open mode (no keys)';
  $('forget-token').hidden = !state.token;
  buildModels();
  buildLive();
  buildLimits();
  const first = Object.keys(state.models)[0];
  if (first) await showModel(first);
  $('txn-json').value = exampleTransaction();
}

function showLogin(error) {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = error || '';
  $('token-input').focus();
}

function forgetToken(reload = true) {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  if (reload) location.reload();
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('token-input').value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $('token-input').value = '';
  start();
});
$('forget-token').addEventListener('click', () => forgetToken());

// ---------- tabs and models ----------

for (const b of document.querySelectorAll('#tabs button')) {
  b.addEventListener('click', () => showTab(b.dataset.tab));
}

function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== `tab-${name}`;
  say('');
  if (name === 'locks') refreshLocks();
}

function buildModels() {
  const nav = $('models');
  nav.replaceChildren(...Object.keys(state.models).map((name) => {
    const b = el('button', { type: 'button', 'data-model': name }, name);
    b.addEventListener('click', () => { showTab('records'); showModel(name); });
    return b;
  }));
}

async function showModel(name) {
  state.model = name;
  for (const b of $('models').children) b.setAttribute('aria-current', String(b.dataset.model === name));
  $('records-title').textContent = name;
  const m = state.models[name];
  $('sort-field').replaceChildren(...['id', ...m.fields.map((f) => f.name), 'createdAt', 'updatedAt']
    .map((f) => el('option', { value: f }, f)));
  $('filter-input').value = '';
  $('editor').hidden = true;
  $('creator').hidden = true;
  state.cursors = [null];
  await loadPage();
}

// ---------- records: the listing ----------

function currentQuery() {
  const text = $('filter-input').value.trim();
  const filter = text ? parseJson(text, 'The filter') : undefined;
  return { filter, sort: { [$('sort-field').value]: $('sort-direction').value }, first: Number($('page-size').value) };
}

async function loadPage() {
  let q;
  try { q = currentQuery(); } catch (e) { fail(e); return; }
  const after = state.cursors[state.cursors.length - 1];
  try {
    const r = await api('POST', `/api/${encodeURIComponent(state.model)}/find`, { ...q, ...(after ? { after } : {}) });
    state.records = r.body.records;
    state.next = r.body.next;
    renderRecords();
  } catch (e) {
    fail(e);
  }
}

function renderRecords() {
  const m = state.models[state.model];
  const cols = ['id', ...m.fields.map((f) => f.name), 'updatedAt'];
  $('records').tHead.replaceChildren(el('tr', {}, ...cols.map((c) => el('th', {}, c))));
  $('records').tBodies[0].replaceChildren(...state.records.map((r) => {
    const tr = el('tr', { 'data-id': String(r.id) }, ...cols.map((c) => el('td', { 'data-field': c }, cellText(r[c]))));
    if (state.selected && state.selected.id === r.id) tr.classList.add('selected');
    tr.addEventListener('click', () => openEditor(r));
    return tr;
  }));
  const page = state.cursors.length;
  $('page-info').textContent = state.records.length
    ? `page ${page}: ${state.records.length} record(s)${state.next ? '' : ', the last page'}`
    : (page === 1 ? 'no records' : 'no more records');
  $('prev-page').disabled = page === 1;
  $('next-page').disabled = !state.next;
}

$('query-form').addEventListener('submit', (ev) => { ev.preventDefault(); state.cursors = [null]; say(''); loadPage(); });
$('next-page').addEventListener('click', () => { if (state.next) { state.cursors.push(state.next); loadPage(); } });
$('prev-page').addEventListener('click', () => { if (state.cursors.length > 1) { state.cursors.pop(); loadPage(); } });

/** Puts a changed record into the table without another request. */
function replaceRecord(r) {
  const i = state.records.findIndex((x) => x.id === r.id);
  if (i >= 0) state.records[i] = r;
  renderRecords();
}

// ---------- records: the editor ----------

function inputFor(f, value) {
  if (f.type === 'boolean') {
    const s = el('select', { id: `field-${f.name}`, 'data-field': f.name },
      el('option', { value: 'true' }, 'true'), el('option', { value: 'false' }, 'false'));
    if (f.nullable) s.append(el('option', { value: 'null' }, 'null'));
    s.value = value === null || value === undefined ? 'null' : String(value);
    return s;
  }
  const text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return el('input', { id: `field-${f.name}`, 'data-field': f.name, value: text, size: '40', placeholder: f.nullable ? 'null' : '' });
}

/** The value an input stands for, by the field's type; '' is null. */
function valueOf(f, raw) {
  if (f.type === 'boolean') return raw === 'null' ? null : raw === 'true';
  if (raw === '') return null;
  switch (f.type) {
    case 'integer': case 'link': {
      if (!/^-?\d+$/.test(raw)) throw new Error(`${f.name} takes a whole number, not "${raw}"`);
      return Number(raw);
    }
    case 'number': {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error(`${f.name} takes a number, not "${raw}"`);
      return n;
    }
    case 'json': return parseJson(raw, f.name);
    default: return raw;
  }
}

function openEditor(r) {
  state.selected = r;
  const m = state.models[state.model];
  $('creator').hidden = true;
  $('editor').hidden = false;
  $('editor-title').textContent = `${state.model} ${r.id}`;
  $('edit-fields').replaceChildren(...m.fields.flatMap((f) => [
    el('label', { for: `field-${f.name}` }, `${f.name} (${f.type === 'link' ? 'id' : f.type})`), inputFor(f, r[f.name]),
  ]));
  $('atomic-form').hidden = m.numeric.length === 0;
  $('atomic-field').replaceChildren(...m.numeric.map((f) => el('option', { value: f }, f)));
  $('delete-record').textContent = 'Delete';
  renderRecords();
}

$('close-editor').addEventListener('click', () => { $('editor').hidden = true; state.selected = null; renderRecords(); });

$('edit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = state.selected;
  const m = state.models[state.model];
  const data = {};
  try {
    for (const f of m.fields) {
      const v = valueOf(f, $(`field-${f.name}`).value.trim());
      if (JSON.stringify(v) !== JSON.stringify(r[f.name] ?? null)) data[f.name] = v;
    }
  } catch (e) { fail(e); return; }
  if (Object.keys(data).length === 0) { say('Nothing changed.'); return; }
  try {
    const after = (await api('PATCH', `/api/${encodeURIComponent(state.model)}/${r.id}`, data)).body;
    say(`Saved ${state.model} ${r.id}: ${Object.keys(data).join(', ')}.`, 'ok');
    replaceRecord(after);
    openEditor(after);
  } catch (e) { fail(e); }
});

$('atomic-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = state.selected;
  const field = $('atomic-field').value;
  const op = $('atomic-op').value;
  const amount = Number($('atomic-amount').value);
  const body = { _atomics: { [field]: { [op]: amount } } };
  try {
    const guard = $('guard-input').value.trim();
    if (guard) body._where = parseJson(guard, 'The guard');
  } catch (e) { fail(e); return; }
  try {
    const after = (await api('PATCH', `/api/${encodeURIComponent(state.model)}/${r.id}`, body)).body;
    say(`${field} is now ${after[field]} (${op} ${amount}, inside the database).`, 'ok');
    replaceRecord(after);
    openEditor(after);
  } catch (e) {
    fail(e);
    if (e.code === 'GUARD_FAILED' && e.current) { replaceRecord(e.current); openEditor(e.current); }
  }
});

$('delete-record').addEventListener('click', async () => {
  const b = $('delete-record');
  if (b.textContent === 'Delete') { b.textContent = 'Click again to delete'; return; }
  const r = state.selected;
  try {
    await api('DELETE', `/api/${encodeURIComponent(state.model)}/${r.id}`);
    say(`Deleted ${state.model} ${r.id}.`, 'ok');
    $('editor').hidden = true;
    state.selected = null;
    await loadPage();
  } catch (e) { fail(e); b.textContent = 'Delete'; }
});

// ---------- records: create ----------

$('new-record').addEventListener('click', () => {
  const m = state.models[state.model];
  const template = {};
  for (const f of m.fields) {
    if (!m.required.includes(f.name)) continue;
    template[f.name] = f.type === 'link' ? { _link: 1 } : f.type === 'integer' || f.type === 'number' ? 0 : f.type === 'boolean' ? false : '';
  }
  $('editor').hidden = true;
  $('creator').hidden = false;
  $('creator-title').textContent = `New ${state.model}`;
  $('create-json').value = JSON.stringify(template, null, 2);
});
$('close-creator').addEventListener('click', () => { $('creator').hidden = true; });

$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  let data;
  try { data = parseJson($('create-json').value, 'The new record'); } catch (e) { fail(e); return; }
  try {
    const r = (await api('POST', `/api/${encodeURIComponent(state.model)}`, data)).body;
    say(`Created ${state.model} ${r.id}.`, 'ok');
    $('creator').hidden = true;
    await loadPage();
    openEditor(r);
  } catch (e) { fail(e); }
});

// ---------- transaction ----------

function exampleTransaction() {
  const [name, m] = Object.entries(state.models).find(([, mm]) => mm.numeric.length) || Object.entries(state.models)[0] || [];
  if (!name) return '{"steps": []}';
  const steps = [{ as: 'r', get: name, id: 1 }];
  const f = m.numeric[0];
  if (f) steps.push({ update: name, id: { $ref: 'r.id' }, data: { _atomics: { [f]: { increment: 1 } } }, expect: { [f]: { greaterThan: 0 } } });
  return JSON.stringify({ steps }, null, 2);
}

$('run-txn').addEventListener('click', async () => {
  const out = $('txn-result');
  out.textContent = '';
  let body;
  try { body = parseJson($('txn-json').value, 'The transaction'); } catch (e) { fail(e); return; }
  try {
    const r = (await api('POST', '/api/transaction', body)).body;
    say(`Applied: ${r.results.length} step(s), all together.`, 'ok');
    out.textContent = JSON.stringify(r.results, null, 2);
  } catch (e) {
    fail(e);
    out.textContent = 'Nothing was applied.';
  }
});

// ---------- locks and limits ----------

async function refreshLocks() {
  try {
    const locks = (await api('GET', '/api/locks')).body.locks;
    $('locks').tBodies[0].replaceChildren(...(locks.length ? locks.map((l) => el('tr', {},
      el('td', {}, l.name), el('td', {}, String(l.fence)), el('td', {}, l.expiresAt)))
      : [el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'no lock is held'))]));
  } catch (e) { fail(e); }
}
$('refresh-locks').addEventListener('click', refreshLocks);

function buildLimits() {
  $('limits').tBodies[0].replaceChildren(...(state.limits.length
    ? state.limits.map((l) => el('tr', {}, el('td', {}, l.name), el('td', {}, l.summary)))
    : [el('tr', {}, el('td', { colspan: '2', class: 'muted' }, 'the schema declares no limits'))]));
  $('limit-name').replaceChildren(...state.limits.map((l) => el('option', { value: l.name }, l.name)));
  $('limit-form').hidden = state.limits.length === 0;
}

$('limit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = $('limit-name').value;
  const key = $('limit-key').value;
  const cost = Number($('limit-cost').value) || 1;
  try {
    const r = await api('POST', `/api/limits/${encodeURIComponent(name)}/${encodeURIComponent(key)}`, { cost }, { accept: [429] });
    const a = r.body;
    say(a.allowed ? `Allowed: ${a.remaining} left.` : `Refused: retry after ${a.retryAfterMs} ms.`, a.allowed ? 'ok' : 'error');
    $('limit-result').textContent = JSON.stringify(a, null, 2);
  } catch (e) { fail(e); }
});

// ---------- live counter ----------

function buildLive() {
  $('live-model').replaceChildren(...Object.keys(state.models).map((n) => el('option', { value: n }, n)));
  const fields = () => {
    const m = state.models[$('live-model').value];
    $('live-field').replaceChildren(...(m.numeric.length ? m.numeric : m.fields.map((f) => f.name)).map((f) => el('option', { value: f }, f)));
  };
  $('live-model').addEventListener('change', fields);
  fields();
}

function stopWatching() {
  if (state.live) clearTimeout(state.live.timer);
  state.live = null;
  $('stop-watch').disabled = true;
}

$('live-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  stopWatching();
  const model = $('live-model').value;
  const id = Number($('live-id').value);
  const field = $('live-field').value;
  const live = { timer: 0, last: undefined };
  state.live = live;
  $('stop-watch').disabled = false;
  const show = (v, at) => {
    const big = $('live-value');
    big.textContent = v === null || v === undefined ? 'null' : String(v);
    if (live.last !== undefined && v !== live.last) {
      big.classList.add('changed');
      $('live-info').textContent = `${model} ${id}.${field}: ${live.last} → ${v} at ${new Date(at).toLocaleTimeString()}`;
    } else if (live.last === undefined) {
      $('live-info').textContent = `${model} ${id}.${field}, following the change feed`;
    }
    live.last = v;
  };
  // The feed's cursor first, then the record: no change between the two is missed.
  // Then long polls of GET /api/changes for this model (the scope changes or read:MODEL).
  const follow = async () => {
    let after;
    while (state.live === live) {
      try {
        if (after === undefined) {
          after = (await api('GET', `/api/changes?models=${encodeURIComponent(model)}`)).body.next;
          show((await api('GET', `/api/${encodeURIComponent(model)}/${id}`)).body[field], Date.now());
          continue;
        }
        const page = (await api('GET', `/api/changes?models=${encodeURIComponent(model)}&after=${after}&waitMs=10000`)).body;
        if (state.live !== live) return;
        for (const c of page.changes)
          if (c.id === id) show(c.op === 'delete' ? null : c.record[field], c.at);
        after = page.next;
      } catch (e) {
        fail(e);
        if (e.code === 'GONE') after = undefined; /* fell behind what is kept: read the record again */
        await new Promise((r) => { live.timer = setTimeout(r, 1000); });
      }
    }
  };
  follow();
});
$('stop-watch').addEventListener('click', stopWatching);

start();
