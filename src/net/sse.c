/* sse.c — the change feed as server-sent events; see sse.h. */
#include "net/sse.h"

#include <stdlib.h>
#include <string.h>

#include "api/changes.h"
#include "api/render.h"

#define SSE_HEARTBEAT_MS 15000 /* an empty page (a comment) at least this often */

typedef struct sse_stream sse_stream;

/* In the request's pool: tells the stream when h2o disposes of the request. */
typedef struct sse_guard {
    sse_stream *s;
} sse_guard;

struct sse_stream {
    h2o_generator_t gen;
    h2o_multithread_message_t msg; /* the answer of the job out (one at a time) */
    h2o_multithread_receiver_t *rx;
    const tally_api *api;
    h2o_req_t *req;                /* NULL once h2o is done with it */
    sse_guard *guard;
    tally_changes_ask ask;         /* ask.after moves on with each page */
    tally_principal who;           /* its key, looked up again before each page (a revoked key ends it) */
    tally_job *job;                /* the job out, or its answer */
    bool job_out;
    tally_buf out;                 /* what h2o is sending (valid until proceed) */
};

static void stream_free(sse_stream *s)
{
    tally_buf_free(&s->out);
    free(s);
}

/* Feed thread: a page is ready; the loop that owns the stream sends it. */
static void on_job_complete(tally_job *job)
{
    sse_stream *s = tally_api_job_origin(job);
    s->job = job;
    h2o_multithread_send_message(s->rx, &s->msg);
}

/* The page as events: one per change, id its seq; or a comment and the cursor; or the error and the end. */
static void render_sse(tally_job *job)
{
    tally_buf b;
    tally_buf_init(&b);
    if (job->rc != 0) {
        int status;
        size_t len;
        char *e = tally_render_error(&job->err, &status, &len);
        tally_buf_add(&b, "event: error\ndata: ");
        tally_buf_addn(&b, e, len);
        tally_buf_add(&b, "\n\n");
        free(e);
    } else {
        const tally_step_result *r = &job->plan->results[0];
        for (int i = 0; i < r->nchanges; i++) {
            if (r->changes[i].model < 0)
                continue;
            tally_buf_addf(&b, "id: %lld\nevent: change\ndata: ", (long long)r->changes[i].seq);
            tally_changes_render_one(&b, job->plan->schema, &r->changes[i]);
            tally_buf_add(&b, "\n\n");
        }
        /* the cursor, so that a reconnect's Last-Event-ID skips what was looked at */
        tally_buf_addf(&b, ": %s\nid: %lld\n\n", r->nchanges ? "page" : "waiting", (long long)r->next);
    }
    free(job->body);
    job->body = b.s;
    job->body_len = b.len;
    job->status = job->rc ? 410 : 200;
}

static void ask_next(sse_stream *s)
{
    s->ask.wait_ms = SSE_HEARTBEAT_MS;
    tally_job *job = tally_job_new(tally_changes_plan(s->api->schema, &s->ask));
    job->render = render_sse;
    job->complete = on_job_complete;
    job->origin = s;
    s->job_out = true;
    if (tally_engine_submit(s->api->engine, job) != 0) { /* stopping: the stream ends */
        s->job_out = false;
        tally_job_free(job);
        tally_buf_free(&s->out);
        tally_buf_init(&s->out);
        static const char bye[] = ": the server is shutting down\n\n";
        h2o_iovec_t v = h2o_iovec_init(bye, sizeof bye - 1);
        h2o_send(s->req, &v, 1, H2O_SEND_STATE_FINAL);
    }
}

/* h2o sent what it had: ask for the next page. */
static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_stream *s = H2O_STRUCT_FROM_MEMBER(sse_stream, gen, gen);
    (void)req;
    tally_buf_free(&s->out);
    tally_buf_init(&s->out);
    if (s->req)
        ask_next(s);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    sse_stream *s = H2O_STRUCT_FROM_MEMBER(sse_stream, gen, gen);
    s->req = NULL; /* the client left: nothing more is sent */
}

static void on_dispose(void *arg)
{
    sse_guard *g = arg;
    sse_stream *s = g->s;
    if (!s)
        return;
    s->req = NULL;
    s->guard = NULL;
    if (!s->job_out)
        stream_free(s); /* else when the job comes back */
}

/* Loop thread: pages for this loop's streams. */
static void on_pages(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    (void)rx;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        sse_stream *s = H2O_STRUCT_FROM_MEMBER(sse_stream, msg, msg);
        tally_job *job = s->job;
        s->job = NULL;
        s->job_out = false;
        if (!s->req) {
            tally_job_free(job);
            if (!s->guard)
                stream_free(s);
            continue;
        }
        bool end = job->rc != 0;
        tally_error err;
        if (!end && tally_changes_recheck(s->api, &s->who, &s->ask, &err)) { /* revoked meanwhile: nothing of it */
            job->rc = -(int)err.code;
            job->err = err;
            render_sse(job);
            end = true;
        }
        if (!end)
            s->ask.after = job->plan->results[0].next;
        tally_buf_addn(&s->out, job->body, job->body_len);
        tally_job_free(job);
        h2o_iovec_t v = h2o_iovec_init(s->out.s, s->out.len);
        h2o_send(s->req, &v, 1, end ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
    }
}

void tally_sse_register(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *rx)
{
    h2o_multithread_register_receiver(queue, rx, on_pages);
}

bool tally_sse_wanted(h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        !h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/api/changes")))
        return false;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    return i >= 0 && h2o_strstr(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                                H2O_STRLIT("text/event-stream")) != SIZE_MAX;
}

int tally_sse_start(const tally_api *api, h2o_multithread_receiver_t *rx, h2o_req_t *req, const tally_http_request *r,
                    tally_access_entry *log, tally_http_response *refusal)
{
    ssize_t lei = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    tally_changes_ask ask;
    tally_principal who;
    if (tally_api_changes_admit(api, r, lei >= 0 ? req->headers.entries[lei].value.base : NULL,
                                lei >= 0 ? req->headers.entries[lei].value.len : 0, refusal, &ask, &who) != 0)
        return 1;
    sse_stream *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->gen.proceed = on_proceed;
    s->gen.stop = on_stop;
    s->rx = rx;
    s->api = api;
    s->req = req;
    s->ask = ask;
    s->who = who;
    tally_buf_init(&s->out);
    s->guard = h2o_mem_alloc_shared(&req->pool, sizeof *s->guard, on_dispose);
    s->guard->s = s;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    tally_access_finish(log, req->method.base, req->method.len, req->path.base,
                        req->query_at != SIZE_MAX ? req->query_at : req->path.len, 200, 0, NULL, 0);
    h2o_start_response(req, &s->gen);
    tally_buf_add(&s->out, ": the change feed of this server; each event's id is its seq\nretry: 1000\n\n");
    h2o_iovec_t v = h2o_iovec_init(s->out.s, s->out.len);
    h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS); /* the headers go now; proceed asks for the first page */
    return 0;
}
