/*
 * routes.c — method and path to handler, for every call under /api plus
 * /health and /metrics.  A handler decodes the request into a plan and
 * either runs it here (a point read on the loop's own connection) or hands
 * it to a worker (writes to the writer, scans to the reader).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/actions.h"
#include "api/auth.h"
#include "api/changes.h"
#include "api/console.h"
#include "api/decode.h"
#include "api/json_in.h"
#include "api/keys.h"
#include "api/origin.h"
#include "api/filter.h"
#include "api/locks.h"
#include "api/transaction.h"
#include "api/render.h"
#include "exec/metrics.h"
#include "core/json_arena.h"

#define MAX_SEGMENTS 4

_Static_assert(sizeof ((tally_http_response *)0)->key_name >= TALLY_KEY_NAME_MAX, "room for a key's name");

typedef struct route_ctx {
    const tally_api *api;
    const tally_http_request *req;
    tally_http_response *resp;
    char seg[MAX_SEGMENTS][256]; /* percent-decoded path segments after /api */
    size_t seglen[MAX_SEGMENTS];
    int nseg;
    tally_principal principal; /* who asks (authenticated before routing) */
} route_ctx;

static int answer_error(route_ctx *c, tally_error *err)
{
    c->resp->body = tally_render_error(err, &c->resp->status, &c->resp->body_len);
    c->resp->content_type = "application/json";
    return TALLY_API_NOW;
}

static int fail_now(route_ctx *c, tally_code code, const char *path, const char *fmt, const char *arg)
{
    tally_error err;
    tally_fail(&err, code, path, fmt, arg);
    return answer_error(c, &err);
}

/* 200 {"status": "ok", "backend": …, on PostgreSQL "synchronousStandbys": n}
 * while the database answers; 503 {"status": "unavailable", "reason": …}
 * while it does not (writes then answer 503 too). */
static int handle_health(route_ctx *c)
{
    char reason[sizeof ((tally_error *)0)->message];
    tally_db_state state = {.sync_standbys = -1};
    bool up = tally_engine_healthy(c->api->engine, reason, sizeof reason, &state);
    json_t *j = up ? json_pack("{s:s, s:s}", "status", "ok", "backend", tally_engine_backend(c->api->engine)->name)
                   : json_pack("{s:s, s:s, s:s}", "status", "unavailable", "backend",
                               tally_engine_backend(c->api->engine)->name, "reason", reason);
    /* With replicas, an acknowledged write survives a failover only to a synchronous standby. */
    if (state.sync_standbys >= 0)
        json_object_set_new(j, "synchronousStandbys", json_integer(state.sync_standbys));
    c->resp->status = up ? 200 : 503;
    c->resp->body = tally_json_text(j, JSON_COMPACT);
    c->resp->body_len = strlen(c->resp->body);
    c->resp->content_type = "application/json";
    json_decref(j);
    return TALLY_API_NOW;
}

static int method_not_allowed(route_ctx *c, const char *allow)
{
    tally_error err;
    tally_fail(&err, TALLY_METHOD_NOT_ALLOWED, NULL, "%.*s is not allowed here; use %s",
               (int)c->req->method_len, c->req->method, allow);
    c->resp->allow = allow;
    return answer_error(c, &err);
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Percent-decodes s into out (cap bytes with NUL); '+' is a space when plus_space.  -1 on malformed or too long. */
static ptrdiff_t url_decode(const char *s, size_t n, char *out, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            ch = (char)(h * 16 + l);
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return (ptrdiff_t)o;
}

bool tally_http_method_is(const tally_http_request *req, const char *m)
{
    if (m[0] == 'G' && strcmp(m, "GET") == 0 && req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0)
        return true;
    return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

static bool method_is(const tally_http_request *req, const char *m) { return tally_http_method_is(req, m); }

/* ---- jobs ------------------------------------------------------------------ */

static int submit_checked(route_ctx *c, tally_plan *plan, bool allowed);

static int submit(route_ctx *c, tally_plan *plan) { return submit_checked(c, plan, false); }

/* allowed: the caller's scope covers the whole plan already (action:NAME). */
static int submit_checked(route_ctx *c, tally_plan *plan, bool allowed)
{
    tally_error aerr;
    if (!allowed && tally_auth_check_plan(&c->principal, plan, 0, &aerr)) { /* every step, before any runs */
        tally_plan_free(plan);
        return answer_error(c, &aerr);
    }
    tally_job *job = tally_job_new(plan);
    job->render = tally_render_job;
    job->complete = c->req->complete;
    job->origin = c->req->origin;
    tally_op op = plan->steps[plan->answer_step].op;
    bool scan = !plan->writes && (op == TALLY_OP_LIST || op == TALLY_OP_LOCK_LIST);
    if (!plan->writes && !scan && tally_engine_read_here(c->req->local, job)) {
        /* a point read answered in place, on this loop's own connection */
        c->resp->status = job->status;
        c->resp->body = job->body;
        c->resp->body_len = job->body_len;
        c->resp->content_type = "application/json";
        job->body = NULL;
        tally_job_free(job);
        return TALLY_API_NOW;
    }
    if (plan->writes && c->req->idem_key) {
        tally_error err;
        job->idem = tally_idem_key_new(c->req->method, c->req->method_len, c->req->path, c->req->path_len,
                                       c->req->idem_key, c->req->idem_key_len, c->req->body, c->req->body_len, &err);
        if (!job->idem) {
            tally_job_free(job);
            return answer_error(c, &err);
        }
        if (!c->principal.open) { /* one key never replays another's answer: the key's id scopes it */
            char *scoped;
            if (asprintf(&scoped, "%lld\n%s", (long long)c->principal.key.id, job->idem->key) < 0)
                abort();
            free((char *)job->idem->key);
            job->idem->key = scoped;
        }
    }
    int rc = tally_engine_submit(c->api->engine, job);
    if (rc == 0)
        return TALLY_API_LATER;
    tally_job_free(job);
    return fail_now(c, TALLY_OVERLOADED, NULL, "%s",
                    "the server's queue is full or it is shutting down; nothing was applied, retry later");
}

/* Submits a plan whose decoder returned `step` (its answer step), or answers the decoder's error. */
static int submit_decoded(route_ctx *c, tally_plan *plan, int step, tally_error *err)
{
    if (step < 0) {
        tally_plan_free(plan);
        return answer_error(c, err);
    }
    plan->answer_step = step;
    return submit(c, plan);
}

static json_t *parse_body(route_ctx *c, tally_error *err)
{
    if (c->req->body_len == 0) {
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "the request needs a JSON object body");
        return NULL;
    }
    return tally_json_parse(c->req->body, c->req->body_len, "the body", "", TALLY_JSON_DOCUMENT, err);
}

/* ---- handlers ------------------------------------------------------------------ */

static int handle_by_id(route_ctx *c, const tally_model *m, int64_t id, tally_op op)
{
    tally_plan *plan = tally_plan_new(c->api->schema);
    tally_step *s = tally_plan_add_step(plan, op, m);
    s->id = tally_value_int(id);
    plan->answer_step = 0;
    return submit(c, plan);
}

/* Runs a decoder that adds steps from a JSON body; answers its error or submits. */
typedef int (*body_decoder)(tally_plan *, const tally_model *, json_t *, tally_error *);

static int handle_body_id(route_ctx *c, const tally_model *m, body_decoder decode, int64_t id)
{
    tally_error err;
    json_t *body = parse_body(c, &err);
    if (!body)
        return answer_error(c, &err);
    tally_plan *plan = tally_plan_new(c->api->schema);
    int step = decode ? decode(plan, m, body, &err) : tally_decode_patch(plan, m, tally_value_int(id), body, &err);
    json_decref(body);
    return submit_decoded(c, plan, step, &err);
}

static int handle_body(route_ctx *c, const tally_model *m, body_decoder decode)
{
    return handle_body_id(c, m, decode, 0);
}

/* PATCH /api/{model}/{id}: the one body call that also takes the id from the path. */
static int handle_update(route_ctx *c, const tally_model *m, int64_t id) { return handle_body_id(c, m, NULL, id); }

static int decode_create_body(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err)
{
    return tally_decode_create(plan, m, body, "", err);
}

static int decode_find_body(tally_plan *plan, const tally_model *m, json_t *body, tally_error *err)
{
    if (!json_is_object(body))
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "the body of find is an object: {\"filter\", \"sort\", \"first\", \"after\"}");
    static const char *const keys[] = {"filter", "sort", "first", "after", NULL};
    const char *key = tally_unknown_key(body, keys, NULL);
    if (key)
        return tally_fail(err, TALLY_BAD_REQUEST, key, "find takes filter, sort, first and after, not '%s'", key);
    tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIST, m);
    if (tally_decode_find(plan, s, json_object_get(body, "filter"), json_object_get(body, "sort"),
                          json_object_get(body, "first"), json_object_get(body, "after"), err))
        return -(int)err->code;
    return 0;
}

/* GET /api/{model}?filter=…&sort=…&first=…&after=…: filter and sort are URL-encoded JSON. */
static int handle_list(route_ctx *c, const tally_model *m)
{
    const char *q = c->req->query;
    size_t qlen = c->req->query ? c->req->query_len : 0;
    json_t *params[4] = {NULL, NULL, NULL, NULL}; /* filter, sort, first, after */
    static const char *const names[4] = {"filter", "sort", "first", "after"};
    tally_error err;
    int rc = 0;
    char *val = malloc(qlen + 1);
    for (size_t i = 0; rc == 0 && i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        char key[64];
        size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
        ptrdiff_t vlen = eq ? url_decode(eq + 1, (size_t)(q + end - eq - 1), val, qlen + 1, 1) : 0;
        int k = 0;
        ptrdiff_t kdec = url_decode(q + i, klen, key, sizeof key, 1);
        if (kdec < 0 || vlen < 0 || (size_t)kdec != strlen(key)) { /* a NUL inside a name is no name of ours */
            rc = tally_fail(&err, TALLY_BAD_REQUEST, NULL, "a query parameter is not valid URL encoding");
            break;
        }
        i = end + 1;
        if (klen == 0)
            continue;
        while (k < 4 && strcmp(key, names[k]) != 0)
            k++;
        if (k == 4) {
            rc = tally_fail(&err, TALLY_BAD_REQUEST, key,
                            "unknown query parameter '%s'; a listing takes filter, sort, first and after", key);
            break;
        }
        json_decref(params[k]);
        if (k == 2) { /* first: a number */
            int64_t n;
            params[k] = tally_decode_id(val, (size_t)vlen, &n) == 0 ? json_integer(n) : json_string("");
        } else if (k == 3) { /* after: the cursor text */
            params[k] = json_stringn(val, (size_t)vlen); /* NULL for text that is not UTF-8 */
            if (!params[k])
                rc = tally_fail(&err, TALLY_BAD_REQUEST, "after",
                                "after must be the \"next\" cursor of an earlier page, unchanged");
        } else { /* filter, sort: JSON */
            params[k] = tally_json_parse(val, (size_t)vlen, key, key, TALLY_JSON_ANY, &err);
            if (!params[k])
                rc = -(int)err.code;
        }
    }
    free(val);
    tally_plan *plan = NULL;
    if (rc == 0) {
        plan = tally_plan_new(c->api->schema);
        tally_step *s = tally_plan_add_step(plan, TALLY_OP_LIST, m);
        rc = tally_decode_find(plan, s, params[0], params[1], params[2], params[3], &err);
    }
    for (int k = 0; k < 4; k++)
        json_decref(params[k]);
    if (rc) {
        tally_plan_free(plan);
        return answer_error(c, &err);
    }
    plan->answer_step = 0;
    return submit(c, plan);
}

static int handle_transaction(route_ctx *c)
{
    tally_error err;
    json_t *body = parse_body(c, &err);
    if (!body)
        return answer_error(c, &err);
    tally_plan *plan = tally_plan_new(c->api->schema);
    int rc = tally_decode_transaction(plan, body, c->api->max_txn_steps, &err);
    json_decref(body);
    if (rc) {
        tally_plan_free(plan);
        return answer_error(c, &err);
    }
    plan->writes = true; /* reads in a transaction see its writes: all of it runs on the writer */
    return submit(c, plan);
}

/* POST /api/actions/{name}: the params checked, then the action's steps as one transaction.
 * action:NAME alone allows it; without it the key needs the scopes of every step. */
static int handle_action(route_ctx *c)
{
    if (c->nseg != 2)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "%s", "actions live at /api/actions/{name}");
    const tally_action *a = tally_schema_action(c->api->schema, c->seg[1], c->seglen[1]);
    if (!a)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "there is no action '%s' in the schema", c->seg[1]);
    if (!method_is(c->req, "POST"))
        return method_not_allowed(c, "POST");
    tally_scope need = tally_scope_of(TALLY_SCOPE_ACTION, a->name);
    bool allowed = c->principal.open || tally_scopes_allow(&c->principal.key.scopes, &need);
    tally_error err;
    json_t *body = NULL;
    if (c->req->body_len) {
        body = parse_body(c, &err);
        if (!body)
            return answer_error(c, &err);
    }
    tally_plan *plan;
    int rc = tally_action_plan(c->api->schema, a, body, c->api->max_txn_steps, &plan, &err);
    json_decref(body);
    if (rc)
        return answer_error(c, &err);
    if (!allowed && tally_auth_check_plan(&c->principal, plan, 0, &err)) {
        tally_plan_free(plan);
        char what[128];
        snprintf(what, sizeof what, "to run action %s", a->name);
        tally_auth_require(&c->principal, &need, what, &err);
        return answer_error(c, &err);
    }
    return submit_checked(c, plan, true);
}

/* /api/locks, /api/locks/{name}/{op}, /api/limits/{name}/{key} */
static int handle_primitive(route_ctx *c)
{
    bool locks = strcmp(c->seg[0], "locks") == 0;
    tally_error aerr;
    tally_scope need = tally_scope_of(locks ? TALLY_SCOPE_LOCKS : TALLY_SCOPE_LIMITS, NULL);
    if (tally_auth_require(&c->principal, &need, locks ? "for locks" : "for rate limits", &aerr))
        return answer_error(c, &aerr);
    if (locks && c->nseg == 1) {
        if (!method_is(c->req, "GET"))
            return method_not_allowed(c, "GET");
        tally_plan *plan = tally_plan_new(c->api->schema);
        plan->answer_step = tally_decode_lock_list(plan);
        return submit(c, plan);
    }
    if (!locks && c->nseg == 2) /* /api/limits/{name}/ : the key is empty */
        return fail_now(c, TALLY_BAD_REQUEST, "key", "%s",
                        "the key is missing: POST /api/limits/{name}/{key}, a key of 1 to 128 bytes of UTF-8");
    if (c->nseg != 3)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "%s",
                        locks ? "locks live at /api/locks/{name}/acquire, /renew and /release"
                              : "limits live at /api/limits/{name}/{key}");
    if (!method_is(c->req, "POST"))
        return method_not_allowed(c, "POST");
    tally_error err;
    json_t *body = NULL;
    if (c->req->body_len || locks) {
        body = parse_body(c, &err);
        if (!body)
            return answer_error(c, &err);
    }
    tally_plan *plan = tally_plan_new(c->api->schema);
    int step = locks ? (strcmp(c->seg[2], "check") == 0
                            ? tally_fail(&err, TALLY_BAD_REQUEST, NULL, "check is a transaction step: "
                                         "{\"checkLock\": name, \"token\": t}")
                            : tally_decode_lock(plan, c->seg[1], c->seglen[1], c->seg[2], body, &err))
                     : tally_decode_limit(plan, c->seg[1], c->seglen[1], c->seg[2], c->seglen[2], body, &err);
    json_decref(body);
    return submit_decoded(c, plan, step, &err);
}

/* GET /api/openapi.json: the document built at start-up, the same bytes every time.
 * It needs a valid key when keys are on, and no scope (docs/decisions.md). */
static int handle_openapi(route_ctx *c)
{
    if (!method_is(c->req, "GET") && !method_is(c->req, "HEAD"))
        return method_not_allowed(c, "GET");
    if (!c->api->openapi)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "%s", "this server has no API description");
    c->resp->body = malloc(c->api->openapi_len + 1);
    if (!c->resp->body)
        abort();
    memcpy(c->resp->body, c->api->openapi, c->api->openapi_len + 1);
    c->resp->body_len = c->api->openapi_len;
    c->resp->status = 200;
    c->resp->content_type = "application/json";
    return TALLY_API_NOW;
}

/* A whole number from lo to hi in query text, or -1. */
static int64_t query_number(const char *v, size_t n, int64_t lo, int64_t hi)
{
    int64_t x = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x < lo || x > hi ? -1 : x;
}

/* The query of GET /api/changes (and of its SSE form) into ask: 0 or -code with err. */
int tally_api_changes_ask(const tally_schema *schema, const char *q, size_t qlen, tally_changes_ask *ask,
                          tally_error *err)
{
    memset(ask, 0, sizeof *ask);
    ask->after = -1;
    char val[2048], key[64];
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
        ptrdiff_t kdec = url_decode(q + i, klen, key, sizeof key, 1);
        ptrdiff_t vlen = eq ? url_decode(eq + 1, (size_t)(q + end - eq - 1), val, sizeof val, 1) : 0;
        if (!eq)
            val[0] = '\0';
        i = end + 1;
        if (klen == 0)
            continue;
        if (kdec < 0 || vlen < 0 || (size_t)kdec != strlen(key))
            return tally_fail(err, TALLY_BAD_REQUEST, NULL, "a query parameter is not valid URL encoding");
        if (strcmp(key, "access_token") == 0)
            continue; /* an EventSource's token (api/auth.h) */
        if (strcmp(key, "after") == 0) {
            if ((ask->after = query_number(val, (size_t)vlen, 0, INT64_MAX / 2)) < 0)
                return tally_fail(err, TALLY_VALIDATION, "after",
                                  "after is a seq: a whole number (0: from the oldest change kept)");
        } else if (strcmp(key, "first") == 0) {
            int64_t n = query_number(val, (size_t)vlen, 1, TALLY_CHANGES_FIRST_MAX);
            if (n < 0)
                return tally_fail(err, TALLY_VALIDATION, "first", "first is a whole number from 1 to %d",
                                  TALLY_CHANGES_FIRST_MAX);
            ask->first = (int)n;
        } else if (strcmp(key, "waitMs") == 0) {
            if ((ask->wait_ms = query_number(val, (size_t)vlen, 0, TALLY_CHANGES_WAIT_MAX)) < 0)
                return tally_fail(err, TALLY_VALIDATION, "waitMs", "waitMs is a whole number from 0 to %d",
                                  TALLY_CHANGES_WAIT_MAX);
        } else if (strcmp(key, "models") == 0) {
            for (size_t a = 0; a < (size_t)vlen;) {
                size_t b = a;
                while (b < (size_t)vlen && val[b] != ',')
                    b++;
                if (b > a && tally_changes_ask_model(schema, ask, val + a, b - a, err))
                    return -(int)err->code;
                a = b + 1;
            }
            if (ask->nmodels == 0)
                return tally_fail(err, TALLY_VALIDATION, "models",
                                  "models is a comma-separated list of model names; omit it to follow every model");
        } else {
            return tally_fail(err, TALLY_BAD_REQUEST, key,
                              "unknown query parameter '%s'; the change feed takes after, models, first and waitMs",
                              key);
        }
    }
    return 0;
}

/* GET /api/changes?after=&models=&first=&waitMs= */
static int handle_changes(route_ctx *c)
{
    if (!method_is(c->req, "GET"))
        return method_not_allowed(c, "GET");
    tally_changes_ask ask;
    tally_error err;
    if (tally_api_changes_ask(c->api->schema, c->req->query, c->req->query ? c->req->query_len : 0, &ask, &err) ||
        tally_changes_allowed(c->api->schema, &c->principal, &ask, &err))
        return answer_error(c, &err);
    tally_job *job = tally_job_new(tally_changes_plan(c->api->schema, &ask));
    job->render = tally_changes_render;
    job->complete = c->req->complete;
    job->origin = c->req->origin;
    if (tally_engine_submit(c->api->engine, job) == 0)
        return TALLY_API_LATER;
    tally_job_free(job);
    return fail_now(c, TALLY_OVERLOADED, NULL, "%s", "the server is too busy to follow the change feed; retry later");
}

static int handle_metrics(route_ctx *c)
{
    c->resp->status = 200;
    c->resp->body = tally_engine_metrics(c->api->engine, &c->resp->body_len);
    c->resp->content_type = "text/plain; version=0.0.4";
    return TALLY_API_NOW;
}

/* ---- routing ------------------------------------------------------------------ */

static int route_api(route_ctx *c)
{
    if (c->nseg == 0)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "%s", "no such path; records live at /api/{model}");
    if (c->nseg == 1 && strcmp(c->seg[0], "ws") == 0) /* the net layer upgrades real handshakes */
        return fail_now(c, TALLY_BAD_REQUEST, NULL, "%s",
                        "/api/ws speaks WebSocket: connect with a WebSocket client (Upgrade: websocket)");
    if (c->nseg == 1 && strcmp(c->seg[0], "openapi.json") == 0)
        return handle_openapi(c);
    if (strcmp(c->seg[0], "keys") == 0 && c->nseg <= 2) {
        tally_error aerr;
        tally_scope admin = tally_scope_of(TALLY_SCOPE_ADMIN, NULL);
        if (tally_auth_require(&c->principal, &admin, "to manage keys", &aerr))
            return answer_error(c, &aerr);
        return tally_api_keys(c->api, c->req, c->nseg == 2 ? c->seg[1] : NULL, c->resp);
    }
    if (strcmp(c->seg[0], "locks") == 0 || strcmp(c->seg[0], "limits") == 0)
        return handle_primitive(c);
    if (c->nseg == 1 && strcmp(c->seg[0], "changes") == 0)
        return handle_changes(c);
    if (strcmp(c->seg[0], "actions") == 0)
        return handle_action(c);
    if (c->nseg == 1 && strcmp(c->seg[0], "transaction") == 0)
        return method_is(c->req, "POST") ? handle_transaction(c) : method_not_allowed(c, "POST");
    const tally_model *m = tally_schema_model(c->api->schema, c->seg[0], c->seglen[0]);
    if (!m)
        return fail_now(c, TALLY_NOT_FOUND, NULL, "there is no model '%s' in the schema", c->seg[0]);
    const tally_http_request *req = c->req;
    { /* the model's read or write scope, before the body is looked at; submit checks every step again */
        bool read = method_is(req, "GET") || method_is(req, "HEAD") ||
                    (c->nseg == 2 && strcmp(c->seg[1], "find") == 0);
        tally_scope need = tally_scope_of(read ? TALLY_SCOPE_READ : TALLY_SCOPE_WRITE, m->name);
        if (!c->principal.open && !tally_scopes_allow(&c->principal.key.scopes, &need)) {
            char what[128];
            snprintf(what, sizeof what, "to %s %s records", read ? "read" : "write", m->name);
            tally_error aerr;
            tally_auth_require(&c->principal, &need, what, &aerr);
            return answer_error(c, &aerr);
        }
    }
    if (c->nseg == 1) {
        if (method_is(req, "GET"))
            return handle_list(c, m);
        if (method_is(req, "POST"))
            return handle_body(c, m, decode_create_body);
        return method_not_allowed(c, "GET, POST");
    }
    if (c->nseg == 2) {
        static const struct {
            const char *name;
            int (*decode)(tally_plan *, const tally_model *, json_t *, tally_error *);
        } calls[] = {{"find", decode_find_body},
                     {"updateMany", tally_decode_update_many},
                     {"deleteMany", tally_decode_delete_many},
                     {"upsert", tally_decode_upsert}};
        for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++)
            if (strcmp(c->seg[1], calls[k].name) == 0)
                return method_is(req, "POST") ? handle_body(c, m, calls[k].decode) : method_not_allowed(c, "POST");
        int64_t id;
        if (tally_decode_id(c->seg[1], c->seglen[1], &id))
            return fail_now(c, TALLY_BAD_REQUEST, "id", "'%s' is not a record id; ids are positive integers",
                            c->seg[1]);
        if (method_is(req, "GET"))
            return handle_by_id(c, m, id, TALLY_OP_GET);
        if (method_is(req, "PATCH"))
            return handle_update(c, m, id);
        if (method_is(req, "DELETE"))
            return handle_by_id(c, m, id, TALLY_OP_DELETE);
        return method_not_allowed(c, "GET, PATCH, DELETE");
    }
    return fail_now(c, TALLY_NOT_FOUND, NULL, "%s", "no such path under /api");
}

/* The browser checks (api/origin.h): 0 to go on (resp's CORS fields set for
 * an allowed cross-origin request), or -TALLY_FORBIDDEN with err. */
static int check_browser(const tally_api *api, const tally_http_request *req, tally_http_response *resp,
                         tally_error *err)
{
    bool keys_on = tally_keyring_keys_on(tally_engine_keyring(api->engine));
    if (req->origin_header) {
        if (!tally_origin_allowed(api->access, keys_on, req->origin_header, req->origin_header_len, req->host,
                                  req->host_len, req->tls))
            return tally_fail(err, TALLY_FORBIDDEN, NULL,
                              "requests from the web page at %.*s are not allowed; nothing was changed (the server "
                              "allows its own origin and those given with --cors-origin)",
                              (int)(req->origin_header_len > 200 ? 200 : req->origin_header_len), req->origin_header);
        resp->cors_origin = req->origin_header;
        resp->cors_origin_len = req->origin_header_len;
    }
    if (!keys_on && req->host && !tally_host_allowed(api->access, req->host, req->host_len))
        return tally_fail(err, TALLY_FORBIDDEN, NULL,
                          "this server has no API keys yet, so it answers only to localhost, 127.0.0.1, [::1] and "
                          "the names given with --host, not to Host %.*s (a defence against DNS rebinding); create "
                          "a key with `tally keys create`, or add --host",
                          (int)(req->host_len > 200 ? 200 : req->host_len), req->host);
    return 0;
}

int tally_api_handle(const tally_api *api, const tally_http_request *req, tally_http_response *resp)
{
    route_ctx c = {.api = api, .req = req, .resp = resp};
    memset(resp, 0, sizeof *resp);
    const char *p = req->path;
    size_t n = req->path_len;
    tally_error err;
    if (check_browser(api, req, resp, &err))
        return answer_error(&c, &err);
    if (req->origin_header && method_is(req, "OPTIONS")) { /* a CORS preflight: no token needed */
        resp->status = 204;
        resp->preflight = true;
        return TALLY_API_NOW;
    }
    if (tally_console_path(p, n)) /* static files, no token: the page asks for one (api/console.h) */
        return tally_console_answer(api->console, req, resp);
    if (n == 7 && memcmp(p, "/health", 7) == 0) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return method_not_allowed(&c, "GET");
        return handle_health(&c);
    }
    const char *token = NULL;
    size_t token_len = 0;
    tally_auth_token(req, false, &token, &token_len);
    if (tally_auth_authenticate(api, token, token_len, &c.principal, &err)) {
        resp->www_authenticate = true;
        return answer_error(&c, &err);
    }
    if (!c.principal.open)
        snprintf(resp->key_name, sizeof resp->key_name, "%s", c.principal.key.name);
    if (n == 8 && memcmp(p, "/metrics", 8) == 0) {
        if (!method_is(req, "GET"))
            return method_not_allowed(&c, "GET");
        tally_scope need = tally_scope_of(TALLY_SCOPE_METRICS, NULL);
        if (tally_auth_require(&c.principal, &need, "to read /metrics", &err))
            return answer_error(&c, &err);
        return handle_metrics(&c);
    }
    if (req->body_len > api->max_body) {
        tally_fail(&err, TALLY_PAYLOAD_TOO_LARGE, NULL,
                   "the body is %zu bytes; this server accepts at most %zu (--max-body)", req->body_len, api->max_body);
        return answer_error(&c, &err);
    }
    if (n < 4 || memcmp(p, "/api", 4) != 0 || (n > 4 && p[4] != '/'))
        return fail_now(&c, TALLY_NOT_FOUND, NULL, "%s", "no such path; the API lives under /api");
    /* Split what follows /api into percent-decoded segments; a trailing slash is ignored. */
    size_t i = 5;
    while (i < n) {
        size_t end = i;
        while (end < n && p[end] != '/')
            end++;
        if (end == n && end == i)
            break; /* a trailing slash; an empty segment inside is kept (an empty lock name is a 400) */
        if (c.nseg == MAX_SEGMENTS)
            return fail_now(&c, TALLY_NOT_FOUND, NULL, "%s", "no such path under /api");
        ptrdiff_t len = url_decode(p + i, end - i, c.seg[c.nseg], sizeof c.seg[0], 0);
        if (len < 0)
            return fail_now(&c, TALLY_BAD_REQUEST, NULL, "%s", "a path segment is malformed or too long");
        c.seglen[c.nseg++] = (size_t)len;
        i = end + 1;
    }
    return route_api(&c);
}

/* The admission of a long-lived stream (a WebSocket, server-sent events):
 * origin and Host, then the key, from the header or ?access_token= (a
 * browser's WebSocket or EventSource cannot set headers), into c->principal.
 * 0, or TALLY_API_NOW with the refusal in c->resp. */
static int admit_stream(route_ctx *c)
{
    memset(c->resp, 0, sizeof *c->resp);
    tally_error err;
    if (check_browser(c->api, c->req, c->resp, &err))
        return answer_error(c, &err); /* TALLY_API_NOW */
    const char *token = NULL;
    size_t token_len = 0;
    tally_auth_token(c->req, true, &token, &token_len);
    if (tally_auth_authenticate(c->api, token, token_len, &c->principal, &err)) {
        c->resp->www_authenticate = true;
        return answer_error(c, &err); /* TALLY_API_NOW */
    }
    if (!c->principal.open)
        snprintf(c->resp->key_name, sizeof c->resp->key_name, "%s", c->principal.key.name);
    return 0;
}

int tally_api_ws_admit(const tally_api *api, const tally_http_request *req, tally_http_response *resp,
                       tally_principal **principal)
{
    route_ctx c = {.api = api, .req = req, .resp = resp};
    *principal = NULL;
    if (admit_stream(&c))
        return TALLY_API_NOW;
    *principal = malloc(sizeof c.principal);
    if (!*principal)
        abort();
    **principal = c.principal;
    return 0;
}

int tally_api_changes_admit(const tally_api *api, const tally_http_request *req, const char *last_event_id,
                            size_t lei_len, tally_http_response *resp, tally_changes_ask *ask,
                            tally_principal *who)
{
    route_ctx c = {.api = api, .req = req, .resp = resp};
    if (admit_stream(&c))
        return TALLY_API_NOW;
    tally_error err;
    if (tally_api_changes_ask(api->schema, req->query, req->query ? req->query_len : 0, ask, &err))
        return answer_error(&c, &err);
    if (last_event_id) { /* a reconnecting EventSource: wins over after */
        int64_t seq = query_number(last_event_id, lei_len, 0, INT64_MAX / 2);
        if (seq < 0)
            return fail_now(&c, TALLY_VALIDATION, "Last-Event-ID", "%s",
                            "Last-Event-ID is the id of an event of this stream: a seq");
        ask->after = seq;
    }
    if (tally_changes_allowed(api->schema, &c.principal, ask, &err))
        return answer_error(&c, &err);
    *who = c.principal;
    return 0;
}

int tally_api_local_open(const tally_api *api, tally_engine_local **out, tally_error *err)
{
    return tally_engine_local_open(api->engine, out, err);
}

void tally_api_local_close(tally_engine_local *local) { tally_engine_local_close(local); }

tally_api_answer tally_api_job_answer(const tally_job *job)
{
    return (tally_api_answer){.status = job->status, .body = job->body, .body_len = job->body_len,
                              .retry_after_s = job->retry_after_s};
}

void *tally_api_job_origin(const tally_job *job) { return job->origin; }

void tally_api_job_release(tally_job *job) { tally_job_free(job); }
