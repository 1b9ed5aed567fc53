/*
 * ws.c — the WebSocket message protocol; see ws.h.
 *
 * Within a transaction one call is in flight at a time (the client waits for
 * each answer); calls outside one may overlap.  A step that fails, whether
 * the database refuses it or it does not decode, rolls the whole transaction
 * back and its answer says "rolledBack": true.  So does a timeout.  Like a
 * PostgreSQL transaction block after an error, the transaction then stays
 * "aborted" on this connection: further steps and commit are refused
 * (rolledBack) until the client sends rollback or begin, so a call meant for
 * the transaction can never run on its own outside it.  Answers are rendered on the
 * worker, before the commit they depend on, like every other answer.
 */
#include "api/ws.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "api/changes.h"
#include "api/decode.h"
#include "api/json_in.h"
#include "api/render.h"
#include "api/transaction.h"
#include "api/txn_quota.h"
#include "core/buf.h"
#include "core/json_arena.h"
#include "exec/metrics.h"
#include "exec/session.h"

struct tally_ws {
    const tally_api *api;
    tally_ws_io io;
    tally_session *session; /* the open (or pending) transaction, our reference; NULL if none */
    bool busy;              /* a call of that transaction is in flight */
    const char *aborted;    /* the server rolled the transaction back (why, static); the client must end it */
    bool closed;
    int pending;            /* jobs out */
    tally_principal *principal; /* the key of the upgrade, looked up again for every message; owned */
    bool counted;           /* the open transaction holds a place in api->txns and in tally_interactive_transactions */
    int64_t counted_key;    /* the key it was counted for (0: open mode) */
    /* A change-feed subscription (op subscribe): a chain of feed jobs, one out at a time. */
    bool subscribed;
    bool sub_acked;         /* its first page answered the subscribe call */
    char *sub_echo;         /* the subscribe call's id (owned) */
    tally_changes_ask sub;  /* sub.after moves on with each page */
    int sub_gen;            /* counts subscriptions: a page of an earlier one is dropped */
};

#define WS_SUB_WAIT_MS 25000 /* a subscription's long poll; an empty page just asks again */

tally_ws *tally_ws_new(const tally_api *api, const tally_ws_io *io, tally_principal *principal)
{
    tally_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        abort();
    ws->api = api;
    ws->io = *io;
    ws->principal = principal;
    return ws;
}

/* ---- answers (rendered on a worker, or here) ------------------------------------ */

/* {"id":E,"ok":false,["rolledBack":true,]"error":{...}} from an error body {"error":{...}}. */
static void error_message(tally_buf *b, const char *echo, const char *error_body, bool rolled_back)
{
    tally_buf_addf(b, "{\"id\":%s,\"ok\":false,%s%s", echo, rolled_back ? "\"rolledBack\":true," : "", error_body + 1);
}

static void render_ws_job(tally_job *job)
{
    if (job->kind == TALLY_JOB_EVENT ? job->rc == 0 : !job->echo) {
        /* silent: a session's quiet end, or the rollback of a dropped connection */
        tally_job_set_body(job, 0, NULL, 0);
        return;
    }
    tally_plan *plan = job->session ? job->session->plan : job->plan;
    tally_buf b;
    tally_buf_init(&b);
    if (job->kind == TALLY_JOB_EVENT) {
        tally_buf_add(&b, "{\"event\":\"rolledBack\",\"reason\":\"timeout\"}");
    } else if (job->rc != 0) {
        int status;
        size_t len;
        char *body = tally_render_plan_error(plan, &job->err, &status, &len);
        bool rolled_back = job->kind == TALLY_JOB_STEP || job->kind == TALLY_JOB_COMMIT;
        error_message(&b, job->echo, body, rolled_back);
        free(body);
    } else if (job->kind == TALLY_JOB_STEP || job->kind == TALLY_JOB_NORMAL) {
        tally_buf_addf(&b, "{\"id\":%s,\"ok\":true,\"result\":", job->echo);
        tally_render_step_result(&b, plan, plan->txn[plan->ntxn - 1].answer);
        tally_buf_addc(&b, '}');
    } else {
        tally_buf_addf(&b, "{\"id\":%s,\"ok\":true}", job->echo);
    }
    tally_job_set_body(job, 200, b.s, b.len);
}

static void send_error(tally_ws *ws, const char *echo, tally_error *err, bool rolled_back)
{
    int status;
    size_t len;
    char *body = tally_render_error(err, &status, &len);
    tally_buf b;
    tally_buf_init(&b);
    error_message(&b, echo, body, rolled_back);
    ws->io.send(ws->io.conn, b.s, b.len);
    tally_buf_free(&b);
    free(body);
}

static tally_job *new_job(tally_ws *ws, tally_job_kind kind, tally_plan *plan, const char *echo)
{
    tally_job *job = tally_job_new(plan);
    job->kind = kind;
    job->echo = echo ? strdup(echo) : NULL;
    job->render = render_ws_job;
    job->complete = ws->io.complete;
    job->origin = ws->io.conn;
    if (kind != TALLY_JOB_NORMAL) {
        job->session = ws->session;
        tally_session_ref(ws->session);
    }
    return job;
}

/* Ends our hold on the transaction (its end is the writer's business). */
static void drop_session(tally_ws *ws)
{
    if (ws->session)
        tally_session_unref(ws->session);
    ws->session = NULL;
    ws->busy = false;
    if (ws->counted && ws->api->txns)
        tally_txn_quota_give(ws->api->txns, ws->counted_key);
    if (ws->counted)
        atomic_fetch_sub_explicit(&tally_metrics_global.interactive_transactions, 1, memory_order_relaxed);
    ws->counted = false;
}

/* Hands a session job to the writer; false when the transaction is no longer open. */
static bool push_session_job(tally_ws *ws, tally_job *job)
{
    if (tally_engine_submit(ws->api->engine, job) == 0) {
        ws->pending++;
        return true;
    }
    tally_job_free(job);
    return false;
}

/* Rolls back the open transaction without an answer (the client was told otherwise). */
static void rollback_silently(tally_ws *ws)
{
    if (!ws->session)
        return;
    if (tally_session_leave_waiting(ws->session, TALLY_SESSION_CANCELLED) != 0)
        push_session_job(ws, new_job(ws, TALLY_JOB_ROLLBACK, NULL, NULL));
    drop_session(ws);
}

/* ---- calls -------------------------------------------------------------------- */

static void op_begin(tally_ws *ws, const char *echo, json_t *msg)
{
    tally_error err;
    json_t *t = json_object_get(msg, "timeoutMs");
    uint64_t timeout = ws->api->max_txn_ms < 5000 ? ws->api->max_txn_ms : 5000;
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1)) { /* refused: nothing changes, an aborted one stays */
        tally_fail(&err, TALLY_BAD_REQUEST, "timeoutMs", "timeoutMs is a positive number of milliseconds");
        return send_error(ws, echo, &err, false);
    }
    if (t && (uint64_t)json_integer_value(t) < ws->api->max_txn_ms)
        timeout = (uint64_t)json_integer_value(t);
    else if (t)
        timeout = ws->api->max_txn_ms; /* capped by --max-txn-ms */
    if (ws->session && !ws->busy && tally_session_get_state(ws->session) == TALLY_SESSION_DONE) {
        drop_session(ws); /* it ended on the server's side (a timeout not yet reported) */
        ws->aborted = "timeout";
    }
    if (ws->session) {
        tally_fail(&err, TALLY_CONFLICT, "op", "a transaction is already open on this connection; commit or roll it back first");
        return send_error(ws, echo, &err, false);
    }
    if (tally_auth_check_begin(ws->principal, &err))
        return send_error(ws, echo, &err, false);
    int64_t key = ws->principal->open ? 0 : ws->principal->key.id;
    if (ws->api->txns && tally_txn_quota_take(ws->api->txns, key, ws->principal->key.name, &err)) {
        TALLY_METRIC_ADD(begin_refused[err.code == TALLY_TOO_MANY_TRANSACTIONS ? TALLY_BEGIN_REFUSED_PER_KEY
                                                                                : TALLY_BEGIN_REFUSED_TOTAL], 1);
        return send_error(ws, echo, &err, false);
    }
    ws->session = tally_session_new(ws->api->schema, timeout, ws->io.conn);
    ws->counted = true; /* the quota (when there is one) and tally_interactive_transactions */
    atomic_fetch_add_explicit(&tally_metrics_global.interactive_transactions, 1, memory_order_relaxed);
    ws->counted_key = key;
    tally_job *job = new_job(ws, TALLY_JOB_BEGIN, NULL, echo);
    if (tally_engine_submit(ws->api->engine, job) != 0) {
        tally_job_free(job);
        drop_session(ws);
        tally_fail(&err, TALLY_OVERLOADED, NULL, "the server's write queue is full or it is stopping; retry later");
        return send_error(ws, echo, &err, false);
    }
    ws->aborted = NULL; /* a begin that is taken also ends an aborted transaction */
    ws->pending += 2;   /* begin's answer, and the session's end event */
    ws->busy = true;
}

/* A step outside a transaction: its own one-step transaction. */
static void op_lone_step(tally_ws *ws, const char *echo, json_t *step)
{
    tally_error err;
    tally_plan *plan = tally_plan_new(ws->api->schema);
    if (tally_decode_txn_step(plan, step, "", &err) || tally_auth_check_plan(ws->principal, plan, 0, &err)) {
        tally_plan_free(plan);
        err.step = -1;
        return send_error(ws, echo, &err, false);
    }
    plan->answer_step = plan->nsteps - 1;
    tally_job *job = new_job(ws, TALLY_JOB_NORMAL, plan, echo);
    int rc = tally_engine_submit(ws->api->engine, job);
    if (rc != 0) {
        tally_job_free(job);
        tally_fail(&err, TALLY_OVERLOADED, NULL, "the server's queue is full or it is stopping; retry later");
        return send_error(ws, echo, &err, false);
    }
    ws->pending++;
}

/* The server ended the transaction (why): calls meant for it are refused until the client ends it. */
static void abort_session(tally_ws *ws, const char *why)
{
    drop_session(ws);
    ws->aborted = why;
}

static void refuse_aborted(tally_ws *ws, const char *echo)
{
    tally_error err;
    tally_fail(&err, TALLY_CONFLICT, "op",
               "the transaction was rolled back (%s) and nothing of it was applied; send rollback to end it, or "
               "begin a new one", ws->aborted);
    send_error(ws, echo, &err, true);
}

static void op_step(tally_ws *ws, const char *echo, json_t *step)
{
    tally_error err;
    tally_session *s = ws->session;
    if (ws->aborted)
        return refuse_aborted(ws, echo);
    tally_plan *plan = s->plan; /* ours: no call of the session is in flight */
    int from = plan->nsteps, index = plan->ntxn;
    /* a step the key may not run is refused like one that does not decode: before it runs */
    if (tally_decode_txn_step(plan, step, "", &err) || tally_auth_check_plan(ws->principal, plan, from, &err)) {
        err.step = index;
        rollback_silently(ws);
        ws->aborted = "a step failed";
        return send_error(ws, echo, &err, true);
    }
    tally_job *job = new_job(ws, TALLY_JOB_STEP, NULL, echo);
    job->from_step = from;
    if (!push_session_job(ws, job)) { /* it ended on the server's side before we heard: a timeout */
        abort_session(ws, s->end_reason ? s->end_reason : "timeout");
        return refuse_aborted(ws, echo);
    }
    ws->busy = true;
}

static void op_end(tally_ws *ws, const char *echo, tally_job_kind kind)
{
    tally_error err;
    tally_session *s = ws->session;
    if (!ws->aborted && push_session_job(ws, new_job(ws, kind, NULL, echo))) {
        ws->busy = true;
        return;
    }
    if (!ws->aborted)
        abort_session(ws, s->end_reason ? s->end_reason : "timeout");
    if (kind == TALLY_JOB_ROLLBACK) { /* the client ends an aborted transaction: that is all it takes */
        ws->aborted = NULL;
        tally_buf b;
        tally_buf_init(&b);
        tally_buf_addf(&b, "{\"id\":%s,\"ok\":true}", echo);
        ws->io.send(ws->io.conn, b.s, b.len);
        tally_buf_free(&b);
        return;
    }
    tally_fail(&err, TALLY_CONFLICT, NULL, "the transaction was rolled back (%s); nothing of it was applied",
               ws->aborted);
    ws->aborted = NULL;
    send_error(ws, echo, &err, true);
}

/* ---- the change feed ------------------------------------------------------------ */

static void submit_sub(tally_ws *ws)
{
    ws->sub.wait_ms = ws->sub_acked ? WS_SUB_WAIT_MS : 0;
    tally_job *job = tally_job_new(tally_changes_plan(ws->api->schema, &ws->sub));
    job->render = tally_changes_render; /* unused: tally_ws_job_done sends the changes one by one */
    job->complete = ws->io.complete;
    job->origin = ws->io.conn;
    job->from_step = ws->sub_gen; /* which subscription the page is for */
    if (tally_engine_submit(ws->api->engine, job) != 0) {
        tally_job_free(job);
        ws->subscribed = false;
        static const char msg[] = "{\"event\":\"changesEnded\",\"reason\":\"the server is stopping\"}";
        ws->io.send(ws->io.conn, msg, sizeof msg - 1);
        return;
    }
    ws->pending++;
}

/* {"op": "subscribe", "after": SEQ, "models": [...]}: answered with the current cursor, then change events. */
static void op_subscribe(tally_ws *ws, const char *echo, json_t *msg)
{
    tally_error err;
    tally_changes_ask ask = {.after = -1};
    json_t *after = json_object_get(msg, "after"), *models = json_object_get(msg, "models");
    if (ws->subscribed) {
        tally_fail(&err, TALLY_CONFLICT, "op", "this connection already follows the change feed; unsubscribe first");
        return send_error(ws, echo, &err, false);
    }
    if (after && (!json_is_integer(after) || json_integer_value(after) < 0)) {
        tally_fail(&err, TALLY_VALIDATION, "after", "after is a seq: a whole number (0: from the oldest change kept)");
        return send_error(ws, echo, &err, false);
    }
    if (after)
        ask.after = json_integer_value(after);
    if (models && !json_is_array(models)) {
        tally_fail(&err, TALLY_VALIDATION, "models", "models is a list of model names");
        return send_error(ws, echo, &err, false);
    }
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        if (!json_is_string(m)) {
            tally_fail(&err, TALLY_VALIDATION, "models", "models is a list of model names");
            return send_error(ws, echo, &err, false);
        }
        if (tally_changes_ask_model(ws->api->schema, &ask, json_string_value(m), json_string_length(m), &err))
            return send_error(ws, echo, &err, false);
    }
    if (tally_changes_allowed(ws->api->schema, ws->principal, &ask, &err))
        return send_error(ws, echo, &err, false);
    ws->subscribed = true;
    ws->sub_gen++;
    ws->sub_acked = false;
    ws->sub = ask;
    free(ws->sub_echo);
    ws->sub_echo = strdup(echo);
    submit_sub(ws);
}

static void op_unsubscribe(tally_ws *ws, const char *echo)
{
    ws->subscribed = false; /* the page out, if any, is dropped when it comes */
    tally_buf b;
    tally_buf_init(&b);
    tally_buf_addf(&b, "{\"id\":%s,\"ok\":true}", echo);
    ws->io.send(ws->io.conn, b.s, b.len);
    tally_buf_free(&b);
}

/* A page of the subscription came back: its changes as events, then the next page. */
static void sub_page(tally_ws *ws, tally_job *job)
{
    if (ws->closed || !ws->subscribed || job->from_step != ws->sub_gen)
        return;
    tally_buf b;
    tally_buf_init(&b);
    tally_error err;
    if (job->rc == 0 && tally_changes_recheck(ws->api, ws->principal, &ws->sub, &err)) { /* revoked meanwhile */
        job->rc = -(int)err.code;
        job->err = err;
    }
    if (job->rc != 0) {
        ws->subscribed = false;
        if (!ws->sub_acked)
            return send_error(ws, ws->sub_echo, &job->err, false);
        int status;
        size_t len;
        char *body = tally_render_error(&job->err, &status, &len);
        tally_buf_add(&b, "{\"event\":\"changesEnded\",");
        tally_buf_addn(&b, body + 1, len - 1);
        free(body);
        ws->io.send(ws->io.conn, b.s, b.len);
        tally_buf_free(&b);
        return;
    }
    const tally_step_result *r = &job->plan->results[0];
    if (!ws->sub_acked) {
        ws->sub_acked = true;
        tally_buf_addf(&b, "{\"id\":%s,\"ok\":true,\"result\":{\"after\":%lld}}", ws->sub_echo,
                       (long long)job->plan->steps[0].since);
        ws->io.send(ws->io.conn, b.s, b.len);
    }
    for (int i = 0; i < r->nchanges; i++) {
        if (r->changes[i].model < 0)
            continue;
        b.len = 0; /* {"event":"change","seq":…} : the change's own fields after "event" */
        tally_buf_add(&b, "{\"event\":\"change\",");
        size_t at = b.len;
        tally_changes_render_one(&b, ws->api->schema, &r->changes[i]);
        memmove(b.s + at, b.s + at + 1, b.len - at - 1); /* drop the change's own '{' */
        b.len--;
        ws->io.send(ws->io.conn, b.s, b.len);
    }
    tally_buf_free(&b);
    ws->sub.after = r->next;
    submit_sub(ws);
}

void tally_ws_message(tally_ws *ws, const char *text, size_t len)
{
    tally_error err;
    tally_error perr;
    json_t *msg = tally_json_parse(text, len, "the message", "", TALLY_JSON_ANY, &perr);
    json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
    char *echo = tally_json_text(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *op = json_object_get(msg, "op");
    const char *name = json_string_value(op);
    static const char *const keys[] = {"id", "op", "step", "timeoutMs", "after", "models", NULL};
    const char *unknown = json_is_object(msg) ? tally_unknown_key(msg, keys, NULL) : NULL;
    if (tally_auth_refresh(ws->api, ws->principal, &err)) { /* the key as it is now: revoked keys stop here */
        send_error(ws, echo, &err, false);
    } else if (len > ws->api->max_body) { /* parsed only to echo its id (the net layer caps what it reads) */
        tally_fail(&err, TALLY_PAYLOAD_TOO_LARGE, NULL,
                   "the message is %zu bytes; this server accepts at most %zu (--max-body)", len, ws->api->max_body);
        send_error(ws, echo, &err, false);
    } else if (!msg) {
        send_error(ws, echo, &perr, false);
    } else if (!json_is_object(msg)) {
        tally_fail(&err, TALLY_BAD_REQUEST, NULL, "a message is a JSON object {\"id\", \"op\", ...}, not %s",
                   json_is_array(msg) ? "a list" : "a single value");
        send_error(ws, echo, &err, false);
    } else if (unknown) {
        tally_fail(&err, TALLY_BAD_REQUEST, unknown,
                   "a message takes id, op, step and timeoutMs (after and models for subscribe), not '%s'", unknown);
        send_error(ws, echo, &err, false);
    } else if (json_is_real(id)) { /* echoed back, it must come back exactly as sent */
        tally_fail(&err, TALLY_BAD_REQUEST, "id", "id is a whole number from -2^63 to 2^63-1 (or a string), so that "
                   "the answer carries it back exactly; not a fraction or a number that large");
        send_error(ws, echo, &err, false);
    } else if (!name || (strcmp(name, "begin") && strcmp(name, "step") && strcmp(name, "commit") &&
                         strcmp(name, "rollback") && strcmp(name, "subscribe") && strcmp(name, "unsubscribe"))) {
        tally_fail(&err, TALLY_BAD_REQUEST, "op", "op is begin, step, commit, rollback, subscribe or unsubscribe");
        send_error(ws, echo, &err, false);
    } else if (strcmp(name, "subscribe") == 0) {
        op_subscribe(ws, echo, msg);
    } else if (strcmp(name, "unsubscribe") == 0) {
        op_unsubscribe(ws, echo);
    } else if (strcmp(name, "begin") == 0) {
        op_begin(ws, echo, msg);
    } else if (ws->session && ws->busy) {
        tally_fail(&err, TALLY_CONFLICT, "op", "wait for the answer to the previous call of this transaction");
        send_error(ws, echo, &err, false);
    } else if (strcmp(name, "step") == 0) {
        json_t *step = json_object_get(msg, "step");
        if (!json_is_object(step)) {
            tally_fail(&err, TALLY_BAD_REQUEST, "step", "step is an object such as {\"create\": \"post\", \"data\": {...}}");
            send_error(ws, echo, &err, false);
        } else if (ws->session || ws->aborted) {
            op_step(ws, echo, step);
        } else {
            op_lone_step(ws, echo, step);
        }
    } else if (!ws->session && !ws->aborted) {
        tally_fail(&err, TALLY_CONFLICT, "op", "there is no open transaction; send begin first");
        send_error(ws, echo, &err, false);
    } else {
        op_end(ws, echo, strcmp(name, "commit") == 0 ? TALLY_JOB_COMMIT : TALLY_JOB_ROLLBACK);
    }
    free(echo);
    json_decref(msg);
}

static bool maybe_free(tally_ws *ws)
{
    if (!ws->closed || ws->pending > 0)
        return false;
    drop_session(ws);
    free(ws->principal);
    free(ws->sub_echo);
    free(ws);
    return true;
}

bool tally_ws_job_done(tally_ws *ws, tally_job *job)
{
    ws->pending--;
    if (job->kind == TALLY_JOB_NORMAL && job->plan && job->plan->nsteps == 1 &&
        job->plan->steps[0].op == TALLY_OP_CHANGES) { /* a page of the subscription */
        sub_page(ws, job);
        tally_job_free(job);
        return maybe_free(ws);
    }
    if (job->session && job->session == ws->session) {
        if (job->kind != TALLY_JOB_EVENT)
            ws->busy = false;
        if (job->kind == TALLY_JOB_COMMIT || job->kind == TALLY_JOB_ROLLBACK || (job->kind == TALLY_JOB_BEGIN && job->rc))
            drop_session(ws); /* ended by the client (or never started) */
        else if (job->kind == TALLY_JOB_STEP && job->rc)
            abort_session(ws, "a step failed");
        else if (job->kind == TALLY_JOB_EVENT && job->rc)
            abort_session(ws, "timeout");
    }
    if (!ws->closed && job->body)
        ws->io.send(ws->io.conn, job->body, job->body_len);
    tally_job_free(job);
    return maybe_free(ws);
}

bool tally_ws_closed(tally_ws *ws)
{
    ws->closed = true;
    if (ws->session) /* roll back at once, not at the timeout */
        rollback_silently(ws);
    return maybe_free(ws);
}
