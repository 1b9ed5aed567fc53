/*
 * server.c — h2o/libuv loops, accept, request hand-off, answers coming back
 * from the workers, and the signal-driven shutdown.  See server.h.
 *
 * A waiting request is tracked by a `pending` (malloc'ed, owned by the loop)
 * and a small guard allocated in the request's memory pool.  Whichever comes
 * first, the worker's answer or h2o disposing the request (the client went
 * away), unhooks the other, so an answer is never written to a freed request.
 * Both happen on the loop thread, so no lock is needed.
 *
 * Every answer goes out through send_answer, which counts it and logs its
 * line (net/access_log.h); the log entry lives in the request's pool.
 *
 * Limits (net/limits.h) are checked here before a request reaches the API:
 * a connection past --max-connections, a request head past
 * --max-header-size, a WebSocket upgrade of another protocol version.
 */
#include "net/server.h"

#include <errno.h>
#include <h2o.h>
#include <h2o/websocket.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/render.h"
#include "api/ws.h"
#include "net/access_log.h"
#include "net/http_errors.h"
#include "net/limits.h"
#include "net/sse.h"
#include "net/tls.h"

typedef struct server server;

typedef struct loop_thread {
    server *srv;
    pthread_t tid;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listen_fd;
    h2o_multithread_receiver_t done_rx; /* answers from the workers */
    h2o_multithread_receiver_t ws_rx;   /* answers for WebSocket connections */
    h2o_multithread_receiver_t sse_rx;  /* pages for this loop's change-feed event streams (net/sse.h) */
    uv_async_t wake;                    /* commands from the main thread */
    atomic_int command;                 /* CMD_* */
    tally_engine_local *local;          /* this loop's in-place read context (opaque; NULL if none) */
    h2o_linklist_t ws_conns;            /* open WebSockets (ws_conn.link), told 1001 at shutdown */
    uv_timer_t sweep;                   /* notes the requests still arriving (net/limits.h) */
    uv_prepare_t log_flush;             /* before each wait for events: this loop's log lines go out */
} loop_thread;

/* Commands from the main thread: bits, so that two sent close together are both seen. */
enum { CMD_CLOSE_LISTENER = 1, CMD_GOING_AWAY = 2, CMD_STOP = 4 };

struct server {
    const tally_server_options *opt;
    h2o_globalconf_t config;
    loop_thread *threads;
    int nthreads;
    atomic_long inflight; /* jobs handed to a worker and not yet answered */
    SSL_CTX *ssl;         /* NULL: plain HTTP */
    tally_conn_limits limits;
    atomic_int websockets; /* open WebSocket connections, over every loop */
};

typedef struct pending_guard pending_guard;

typedef struct pending {
    h2o_multithread_message_t msg; /* first: the message is the pending */
    h2o_req_t *req;                /* NULL once h2o has disposed of the request */
    pending_guard *guard;
    loop_thread *thread;
    tally_job *job;
    tally_access_entry *log; /* in the request's pool: valid while req is */
} pending;

struct pending_guard {
    pending *p;
};

typedef struct tally_handler {
    h2o_handler_t super;
    server *srv;
} tally_handler;

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

/* The request's path without its query string (never logged: an access_token may be there). */
static size_t path_len_of(const h2o_req_t *req) { return req->query_at != SIZE_MAX ? req->query_at : req->path.len; }

static void send_answer(h2o_req_t *req, const tally_access_entry *log, int status, const char *content_type,
                        const char *allow, int retry_after_s, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    if (allow)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    if (retry_after_s > 0) {
        char *v = h2o_mem_alloc_pool(&req->pool, 24);
        int n = snprintf(v, 24, "%d", retry_after_s);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
    }
    req->res.content_length = len; /* h2o_send_inline leaves it unset, which costs the keep-alive */
    /* logged before the send: h2o may dispose of the request inside it */
    tally_access_finish(log, req->method.base, req->method.len, req->path.base, path_len_of(req), status, len, body,
                        len);
    h2o_send_inline(req, body, len); /* copies the body into the request's pool */
}

/* Starts the request's log entry, in its pool, and echoes its request id in the answer. */
static tally_access_entry *begin_log(h2o_req_t *req)
{
    tally_access_entry *e = h2o_mem_alloc_pool(&req->pool, sizeof *e);
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    tally_access_begin(e, req->method.base, req->method.len, req->path.base, path_len_of(req),
                       i >= 0 ? req->headers.entries[i].value.base : NULL, i >= 0 ? req->headers.entries[i].value.len : 0);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, e->request_id,
                          strlen(e->request_id));
    return e;
}

/* The headers the API layer asked for (api.h, tally_http_response): added at
 * once, so that an answer that comes later from a worker carries them too. */
static void add_access_headers(h2o_req_t *req, const tally_http_response *resp)
{
    if (resp->www_authenticate)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    if (!resp->cors_origin)
        return;
    /* the value points into the request's own headers, which live as long as the request */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, resp->cors_origin,
                   resp->cors_origin_len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                   H2O_STRLIT("Retry-After"));
    if (resp->preflight) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                       H2O_STRLIT("GET, POST, PATCH, DELETE, OPTIONS"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                       H2O_STRLIT("Authorization, Content-Type, Idempotency-Key"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, H2O_STRLIT("600"));
    }
}

/* A request header's value (name in lower case), or NULL. */
static const char *header(h2o_req_t *req, const char *name, size_t *len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    *len = i >= 0 ? req->headers.entries[i].value.len : 0;
    return i >= 0 ? req->headers.entries[i].value.base : NULL;
}

/* What the API layer reads of a request: method, path, query, body and the headers it uses. */
static tally_http_request api_request(h2o_req_t *req)
{
    size_t path_len = path_len_of(req);
    ssize_t idem = h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1);
    tally_http_request r = {
        .method = req->method.base, .method_len = req->method.len,
        .path = req->path.base, .path_len = path_len,
        .query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL,
        .query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0,
        .body = req->entity.base, .body_len = req->entity.base ? req->entity.len : 0,
        .idem_key = idem >= 0 ? req->headers.entries[idem].value.base : NULL,
        .idem_key_len = idem >= 0 ? req->headers.entries[idem].value.len : 0,
        .tls = req->scheme == &H2O_URL_SCHEME_HTTPS,
    };
    r.authorization = header(req, "authorization", &r.authorization_len);
    r.origin_header = header(req, "origin", &r.origin_header_len);
    /* The Host header (HTTP/2: :authority) as the client sent it.  When it is
     * missing h2o fills in its host configuration's name: that very buffer
     * means "none was sent" (HTTP/1.0). */
    h2o_iovec_t host = req->input.authority;
    bool supplied = req->hostconf && host.base == req->hostconf->authority.hostport.base;
    r.host = host.base && host.len && !supplied ? host.base : NULL;
    r.host_len = r.host ? host.len : 0;
    return r;
}

static void on_guard_dispose(void *arg)
{
    pending_guard *g = arg;
    if (g->p) { /* the client left before the answer came: drop it when it does */
        g->p->req = NULL;
        g->p->guard = NULL;
    }
}

/* Worker thread: the job's outcome is final; post it to the loop that owns the request. */
static void on_job_complete(tally_job *job)
{
    pending *p = tally_api_job_origin(job);
    p->job = job;
    h2o_multithread_send_message(&p->thread->done_rx, &p->msg);
}

/* Loop thread: answers that came back from the workers. */
static void on_answers(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    loop_thread *t = H2O_STRUCT_FROM_MEMBER(loop_thread, done_rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        pending *p = (pending *)msg;
        if (p->req) {
            p->guard->p = NULL;
            tally_api_answer a = tally_api_job_answer(p->job);
            send_answer(p->req, p->log, a.status, "application/json", NULL, a.retry_after_s, a.body, a.body_len);
        }
        tally_api_job_release(p->job);
        free(p);
        atomic_fetch_sub(&t->srv->inflight, 1);
    }
}

/* ---- WebSocket -------------------------------------------------------------------- */

/*
 * One upgraded connection.  h2o may report the close from inside a send (a
 * failed write) or deliver several messages in one read, so calls into the
 * protocol (tally_ws_*) never nest with the close: `depth` counts calls in
 * progress and a close that arrives meanwhile is handled when they return.
 */
typedef struct ws_conn {
    h2o_linklist_t link;        /* in thread->ws_conns while conn is open */
    h2o_websocket_conn_t *conn; /* NULL once closed */
    loop_thread *thread;
    tally_ws *ws;
    int depth;
    bool close_pending;
} ws_conn;

typedef struct ws_answer {
    h2o_multithread_message_t msg;
    tally_job *job;
} ws_answer;

static void ws_leave(ws_conn *c)
{
    if (--c->depth == 0 && c->close_pending) {
        c->close_pending = false;
        c->depth++;
        bool freed = tally_ws_closed(c->ws);
        c->depth--;
        if (freed)
            free(c);
    }
}

/* Only queues: inside a message callback h2o's own loop sends what is queued
 * when the callback returns; after an answer from a worker, on_ws_answers
 * calls h2o_websocket_proceed once the protocol call is over. */
static void ws_send(void *arg, const char *text, size_t len)
{
    ws_conn *c = arg;
    if (!c->conn)
        return;
    struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
    wslay_event_queue_msg(c->conn->ws_ctx, &m); /* copies the text */
}

/* Worker thread: a job of a WebSocket connection is done; post it to the connection's loop. */
static void ws_job_complete(tally_job *job)
{
    ws_conn *c = tally_api_job_origin(job);
    ws_answer *a = calloc(1, sizeof *a); /* an unlinked message is all zeroes */
    if (!a)
        abort();
    a->job = job;
    h2o_multithread_send_message(&c->thread->ws_rx, &a->msg);
}

static void on_ws_answers(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    (void)rx;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        ws_answer *a = (ws_answer *)msg;
        tally_job *job = a->job;
        ws_conn *c = tally_api_job_origin(job);
        free(a);
        c->depth++;
        if (tally_ws_job_done(c->ws, job)) {
            free(c); /* the protocol state is gone, and with it every use of c */
            continue;
        }
        if (c->conn)
            h2o_websocket_proceed(c->conn); /* may report a close: handled by ws_leave below */
        ws_leave(c);
    }
}

static void on_ws_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    ws_conn *c = conn->data;
    if (!arg) { /* closed by the peer or by an error */
        h2o_websocket_close(conn);
        c->conn = NULL;
        h2o_linklist_unlink(&c->link);
        atomic_fetch_sub(&c->thread->srv->websockets, 1);
        atomic_fetch_sub_explicit(&tally_metrics_global.websocket_connections, 1, memory_order_relaxed);
        c->close_pending = true;
        c->depth++;
        ws_leave(c);
        return;
    }
    if (arg->opcode == WSLAY_BINARY_FRAME) { /* RFC 6455 7.4.1: 1003, a type of data it cannot accept */
        static const char why[] = "Tally takes JSON text messages, not binary ones";
        wslay_event_queue_close(conn->ws_ctx, 1003, (const uint8_t *)why, sizeof why - 1);
        return; /* h2o sends the close when this callback returns; the client's close ends the connection */
    }
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return; /* control frames are wslay's */
    c->depth++;
    tally_ws_message(c->ws, (const char *)arg->msg, arg->msg_length);
    ws_leave(c);
}

static int upgrade_ws(server *srv, loop_thread *t, h2o_req_t *req, const char *client_key, tally_access_entry *log)
{
    ws_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->thread = t;
    tally_http_request r = api_request(req);
    tally_http_response resp;
    struct tally_principal *principal;
    int refused = tally_api_ws_admit(srv->opt->api, &r, &resp, &principal);
    memcpy(log->key_name, resp.key_name, sizeof log->key_name);
    if (refused) { /* refused: origin, Host or token */
        free(c);
        add_access_headers(req, &resp);
        send_answer(req, log, resp.status, resp.content_type, resp.allow, 0, resp.body, resp.body_len);
        free(resp.body);
        return 0;
    }
    tally_ws_io io = {.send = ws_send, .complete = ws_job_complete, .conn = c};
    c->ws = tally_ws_new(srv->opt->api, &io, principal);
    /* The upgrade's line (101, no body) before h2o takes the request over. */
    tally_access_finish(log, req->method.base, req->method.len, req->path.base, path_len_of(req), 101, 0, NULL, 0);
    c->conn = h2o_upgrade_to_websocket(req, client_key, c, on_ws_message);
    h2o_linklist_insert(&t->ws_conns, &c->link);
    atomic_fetch_add(&srv->websockets, 1);
    atomic_fetch_add_explicit(&tally_metrics_global.websocket_connections, 1, memory_order_relaxed);
    /* Messages past --max-body get a JSON refusal; far past it, wslay closes
     * the connection (1009) rather than buffer without bound. */
    size_t cap = srv->opt->api->max_body * 4 + 65536;
    wslay_event_config_set_max_recv_msg_length(c->conn->ws_ctx, cap > (16u << 20) ? cap : (16u << 20));
    return 0;
}

/* Answers a refusal decided here, before the API: err as a JSON error body. */
static int refuse(h2o_req_t *req, const tally_access_entry *log, tally_error *err)
{
    int status;
    size_t len;
    char *body = tally_render_error(err, &status, &len);
    send_answer(req, log, status, "application/json", NULL, 0, body, len);
    free(body);
    return 0;
}

/* A WebSocket upgrade (GET with Upgrade: websocket) of a version other than 13: 426 naming 13 (RFC 6455 4.4). */
static bool other_ws_version(h2o_req_t *req)
{
    if (!req->upgrade.base || !h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket")))
        return false;
    ssize_t v = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-version"), -1);
    return v < 0 || !h2o_memis(req->headers.entries[v].value.base, req->headers.entries[v].value.len, H2O_STRLIT("13"));
}

/* The limits of net/limits.h; 1 when the request was refused. */
static int over_limits(server *srv, h2o_req_t *req, tally_conn *conn, const tally_access_entry *log)
{
    tally_error err;
    if (conn && conn->over_limit) {
        req->http1_is_persistent = 0; /* and then the connection closes */
        tally_fail(&err, TALLY_OVERLOADED, NULL, "the server has its most connections open (--max-connections %d); "
                   "this one is closed: retry later, or reuse an open connection", srv->limits.max_connections);
        return refuse(req, log, &err), 1;
    }
    size_t head = tally_request_head_size(req);
    if (head > srv->opt->max_header_size) {
        tally_fail(&err, TALLY_HEADERS_TOO_LARGE, NULL, "the request's line and headers are %zu bytes; this server "
                   "takes at most %zu (--max-header-size): send fewer or shorter headers", head,
                   srv->opt->max_header_size);
        return refuse(req, log, &err), 1;
    }
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/api/ws")) && other_ws_version(req)) {
        ssize_t v = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-version"), -1);
        tally_fail(&err, TALLY_UPGRADE_REQUIRED, NULL, "this server speaks WebSocket version 13 (RFC 6455), not "
                   "%.*s: connect with Sec-WebSocket-Version: 13", v < 0 ? 4 : (int)req->headers.entries[v].value.len,
                   v < 0 ? "none" : req->headers.entries[v].value.base);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-version"), 0, NULL,
                              H2O_STRLIT("13"));
        return refuse(req, log, &err), 1;
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server *srv = ((tally_handler *)self)->srv;
    loop_thread *t = H2O_STRUCT_FROM_MEMBER(loop_thread, ctx, req->conn->ctx);
    tally_conn *conn = tally_conn_of(req);
    tally_conn_request_arrived(conn);
    tally_access_entry *log = begin_log(req);
    if (over_limits(srv, req, conn, log))
        return 0;
    const char *client_key = NULL;
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/api/ws")) &&
        h2o_is_websocket_handshake(req, &client_key) == 0 && client_key)
        return upgrade_ws(srv, t, req, client_key, log);
    if (tally_sse_wanted(req)) { /* the change feed as a stream of events */
        tally_http_request r = api_request(req);
        tally_http_response resp;
        if (tally_sse_start(srv->opt->api, &t->sse_rx, req, &r, log, &resp)) {
            memcpy(log->key_name, resp.key_name, sizeof log->key_name);
            add_access_headers(req, &resp);
            send_answer(req, log, resp.status, resp.content_type, resp.allow, resp.retry_after_s, resp.body,
                        resp.body_len);
            free(resp.body);
        }
        return 0;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->req = req;
    p->thread = t;
    p->log = log;
    p->guard = h2o_mem_alloc_shared(&req->pool, sizeof *p->guard, on_guard_dispose);
    p->guard->p = p;

    tally_http_request r = api_request(req);
    r.local = t->local;
    r.complete = on_job_complete;
    r.origin = p;
    tally_http_response resp;
    atomic_fetch_add(&srv->inflight, 1);
    int now = tally_api_handle(srv->opt->api, &r, &resp);
    memcpy(log->key_name, resp.key_name, sizeof log->key_name);
    add_access_headers(req, &resp);
    if (now == TALLY_API_NOW) {
        atomic_fetch_sub(&srv->inflight, 1);
        p->guard->p = NULL;
        free(p);
        send_answer(req, log, resp.status, resp.content_type, resp.allow, resp.retry_after_s, resp.body,
                    resp.body_len);
        free(resp.body);
    }
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    loop_thread *t = listener->data;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof *conn);
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0 || !tally_conn_admit(&t->srv->limits)) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free); /* a flood past the limit and its refusals: closed */
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    tally_conn_attach(&t->srv->limits, sock);
    h2o_accept(&t->accept_ctx, sock);
}

/* Shutdown: every open WebSocket of this loop gets a close frame, 1001 "going away" (RFC 6455 7.4.1). */
static void ws_going_away(loop_thread *t)
{
    static const char why[] = "the server is shutting down";
    h2o_linklist_t *node = t->ws_conns.next;
    while (node != &t->ws_conns) {
        ws_conn *c = H2O_STRUCT_FROM_MEMBER(ws_conn, link, node);
        node = node->next; /* c may be closed and unlinked below */
        wslay_event_queue_close(c->conn->ws_ctx, 1001, (const uint8_t *)why, sizeof why - 1);
        c->depth++;
        h2o_websocket_proceed(c->conn); /* sends it; a close it reports is handled by ws_leave */
        ws_leave(c);
    }
}

static void on_wake(uv_async_t *async)
{
    loop_thread *t = async->data;
    int cmd = atomic_exchange(&t->command, 0);
    if ((cmd & CMD_CLOSE_LISTENER) && !uv_is_closing((uv_handle_t *)&t->listener)) {
        uv_close((uv_handle_t *)&t->listener, NULL);
        uv_timer_stop(&t->sweep);
    }
    if (cmd & CMD_GOING_AWAY)
        ws_going_away(t);
    if (cmd & CMD_STOP)
        uv_stop(&t->loop);
}

static void on_sweep(uv_timer_t *timer)
{
    loop_thread *t = timer->data;
    tally_conn_sweep(&t->ctx);
}

static void on_log_flush(uv_prepare_t *prep)
{
    (void)prep;
    tally_log_flush();
}

static void *loop_main(void *arg)
{
    loop_thread *t = arg;
    tally_log_buffer_start(); /* this thread's lines go out once per iteration (on_log_flush) */
    uv_run(&t->loop, UV_RUN_DEFAULT);
    tally_log_buffer_stop();
    return NULL;
}

/* Opens a listening socket with SO_REUSEPORT so that every loop has its own. */
static int open_listener(const char *host, int port, int *bound_port, tally_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0)
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot resolve %s: %s", host, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) || bind(fd, ai->ai_addr, ai->ai_addrlen) ||
        listen(fd, 4096)) {
        int e = errno;
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return tally_fail(err, TALLY_INTERNAL, NULL, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void broadcast(server *srv, int started, int cmd)
{
    for (int i = 0; i < started; i++) {
        atomic_fetch_or(&srv->threads[i].command, cmd);
        uv_async_send(&srv->threads[i].wake);
    }
}

int tally_server_run(const tally_server_options *opt, tally_error *err)
{
    server srv = {.opt = opt};
    int rc = 0;
    if ((opt->tls_cert || opt->tls_key) && !(srv.ssl = tally_tls_context_new(opt->tls_cert, opt->tls_key, err)))
        return -(int)err->code;
    srv.limits.max_connections = opt->max_connections;
    srv.limits.request_timeout_ms = opt->request_timeout_ms;
    srv.nthreads = opt->threads > 0 ? opt->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (srv.nthreads < 1)
        srv.nthreads = 1;
    srv.threads = calloc((size_t)srv.nthreads, sizeof *srv.threads);

    h2o_config_init(&srv.config);
    srv.config.server_name = h2o_iovec_init(H2O_STRLIT("tally"));
    /* A body a little past --max-body is read whole and refused by the API
     * (413, JSON): a client still uploading it gets the answer instead of a
     * connection reset, which is what an early refusal and close gives most
     * HTTP clients (fetch reports "fetch failed").  Far past it, h2o refuses
     * before reading (its 413, made JSON by the filter below) and closes. */
    srv.config.max_request_entity_size = opt->api->max_body * 4 + 65536;
    /* Slow clients: the time to send a request's head and body (HTTP/1), to
     * finish a TLS handshake, and an HTTP/2 connection's idle time. */
    srv.config.http1.req_timeout = opt->request_timeout_ms;
    srv.config.handshake_timeout = opt->request_timeout_ms;
    srv.config.http2.idle_timeout = opt->request_timeout_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&srv.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    /* h2o's own error answers are bound to the host's fallback path */
    tally_http_errors_register(&host->fallback_path, opt->api->max_body);
    tally_http_errors_register(path, opt->api->max_body);
    tally_handler *handler = (tally_handler *)h2o_create_handler(path, sizeof *handler);
    handler->super.on_req = on_req;
    handler->srv = &srv;

    /* Signals are taken by sigwait in this thread only; the loops inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int port = opt->port, started = 0;
    for (int i = 0; i < srv.nthreads; i++) {
        loop_thread *t = &srv.threads[i];
        t->srv = &srv;
        t->listen_fd = open_listener(opt->host, port, &port, err); /* the first picks the port for port 0 */
        if (t->listen_fd < 0) {
            rc = t->listen_fd;
            goto stop;
        }
        if ((rc = tally_api_local_open(opt->api, &t->local, err)))
            goto stop;
        uv_loop_init(&t->loop);
        h2o_context_init(&t->ctx, &t->loop, &srv.config);
        t->accept_ctx.ctx = &t->ctx;
        t->accept_ctx.hosts = srv.config.hosts;
        t->accept_ctx.ssl_ctx = srv.ssl;
        h2o_linklist_init_anchor(&t->ws_conns);
        uv_timer_init(&t->loop, &t->sweep);
        t->sweep.data = t;
        uint64_t every = opt->request_timeout_ms / 4 < 1000 ? opt->request_timeout_ms / 4 + 1 : 1000;
        uv_timer_start(&t->sweep, on_sweep, every, every);
        uv_prepare_init(&t->loop, &t->log_flush);
        uv_prepare_start(&t->log_flush, on_log_flush);
        uv_unref((uv_handle_t *)&t->log_flush);
        h2o_multithread_register_receiver(t->ctx.queue, &t->done_rx, on_answers);
        h2o_multithread_register_receiver(t->ctx.queue, &t->ws_rx, on_ws_answers);
        tally_sse_register(t->ctx.queue, &t->sse_rx);
        uv_async_init(&t->loop, &t->wake, on_wake);
        t->wake.data = t;
        uv_tcp_init(&t->loop, &t->listener);
        t->listener.data = t;
        if (uv_tcp_open(&t->listener, t->listen_fd) != 0 ||
            uv_listen((uv_stream_t *)&t->listener, 4096, on_accept) != 0) {
            rc = tally_fail(err, TALLY_INTERNAL, NULL, "cannot start listening on port %d", port);
            goto stop;
        }
        pthread_create(&t->tid, NULL, loop_main, t);
        started++;
    }
    char listen_at[300];
    snprintf(listen_at, sizeof listen_at, strchr(opt->host, ':') ? "[%s]:%d" : "%s:%d", opt->host, port);
    tally_log_field fields[24];
    int nf = 0;
    for (int i = 0; i < opt->nstartup && nf < 22; i++)
        fields[nf++] = opt->startup[i];
    fields[nf++] = (tally_log_field){"tls", srv.ssl ? "on" : "off"};
    fields[nf++] = (tally_log_field){"listen", listen_at};
    tally_log_event(TALLY_LOG_INFO, "started", fields, nf);
    printf("tally: listening on %s://%s:%d\n", srv.ssl ? "https" : "http", opt->host, port);
    fflush(stdout);

    int sig;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tally: %s received, finishing the writes in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");

stop:
    broadcast(&srv, started, CMD_CLOSE_LISTENER);
    if (opt->drain)
        opt->drain(opt->drain_arg); /* every queued job runs and is answered */
    /* Wait (bounded) for the answers to be handed to their connections, then
     * give the loops a moment to write them out before stopping. */
    for (int waited = 0; atomic_load(&srv.inflight) > 0 && waited < 10000; waited += 5)
        usleep(5000);
    usleep(100000);
    /* Then WebSockets are told 1001 (going away) and given a moment (bounded)
     * for the client's close to come back, so they do not see a dropped connection. */
    broadcast(&srv, started, CMD_GOING_AWAY);
    for (int waited = 0; atomic_load(&srv.websockets) > 0 && waited < 1000; waited += 5)
        usleep(5000);
    broadcast(&srv, started, CMD_STOP);
    for (int i = 0; i < started; i++)
        pthread_join(srv.threads[i].tid, NULL);
    for (int i = 0; i < srv.nthreads; i++)
        tally_api_local_close(srv.threads[i].local);
    free(srv.threads);
    if (srv.ssl)
        SSL_CTX_free(srv.ssl);
    return rc;
}
