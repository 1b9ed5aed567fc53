// Record helpers shared by the suites: create / read / find over the HTTP API,
// each asserting the status the call must answer.
//
// Each standalone function takes the `api` of lib/server.mjs first. Suites
// that set their `api` in a `before` hook bind them once with
//   const { create, get, snapshot } = recordHelpers(() => api);
// the getter is read at each call, so a server started (or restarted) later is
// the one used; every bound helper also takes another server's api last.
import { expectStatus, listAll } from './server.mjs';

/** POST /api/{model}; expects 201 and returns the record. */
export async function createRecord(api, model, data) {
  const r = await api('POST', `/api/${model}`, data);
  expectStatus(r, 201);
  return r.body;
}

/** GET /api/{model}/{id}; expects 200 and returns the record. */
export async function getRecord(api, model, id) {
  const r = await api('GET', `/api/${model}/${id}`);
  expectStatus(r, 200);
  return r.body;
}

/** Records of a model whose `name` equals `name` (via GET with a filter; one page). */
export async function findByName(api, model, name) {
  const f = encodeURIComponent(JSON.stringify({ name: { equals: name } }));
  const r = await api('GET', `/api/${model}?filter=${f}`);
  expectStatus(r, 200);
  return r.body.records;
}

/** Records of a model whose `field` equals `value` (via the POST find call, every page). */
export async function findWhere(api, model, field, value) {
  const out = [];
  let after = null;
  for (;;) {
    const r = await api('POST', `/api/${model}/find`, { filter: { [field]: { equals: value } }, first: 1000, ...(after ? { after } : {}) });
    expectStatus(r, 200);
    out.push(...r.body.records);
    if (r.body.next === null) return out;
    after = r.body.next;
  }
}

/** State of whole models, to prove that a failed request changed nothing: {model: records}. */
export async function snapshots(api, ...models) {
  const out = {};
  for (const m of models) out[m] = await listAll(api, m);
  return out;
}

/** The helpers above bound to `getApi()`, read at each call. */
export function recordHelpers(getApi) {
  return {
    create: (model, data, api = getApi()) => createRecord(api, model, data),
    get: (model, id, api = getApi()) => getRecord(api, model, id),
    byName: (model, name, api = getApi()) => findByName(api, model, name),
    findWhere: (model, field, value, api = getApi()) => findWhere(api, model, field, value),
    /** Every record of a model (listAll), to prove that a failed request changed nothing. */
    snapshot: (model, api = getApi()) => listAll(api, model),
    snapshots: (...models) => snapshots(getApi(), ...models),
  };
}

/** A name no other test (or earlier run on the same data) uses. */
export const uniq = (p) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * The steps of buyer i's ticket purchase for event eventId, as one transaction:
 * half create the ticket before counting the sale, half after (linking it to
 * the counted event by $ref), so that a refusal must undo either order.
 */
export function ticketSaleSteps(eventId, i) {
  const ticket = { as: 't', create: 'ticket', data: { event: { _link: eventId } } };
  const count = { as: 'sale', update: 'event', id: eventId,
    data: { _atomics: { soldTicketCount: { increment: 1 }, availableTicketCount: { decrement: 1 } } } };
  return i % 2 === 0 ? [ticket, count] : [count, { ...ticket, data: { event: { _link: { $ref: 'sale.id' } } } }];
}
