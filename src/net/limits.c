/* limits.c — connection count, slow clients' log lines, header size; see limits.h. */
#include "net/limits.h"

#include <h2o/http1.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

static uint64_t wall_ms(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000;
}

bool tally_conn_admit(tally_conn_limits *l)
{
    int now = atomic_fetch_add(&l->open, 1) + 1;
    if (now > l->max_connections + TALLY_REFUSING_MAX) {
        atomic_fetch_sub(&l->open, 1);
        return false;
    }
    return true;
}

static void on_socket_close(void *arg)
{
    tally_conn *c = arg;
    if (c->reading_since) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        uint64_t took = wall_ms(&tv) - c->reading_since;
        /* closed by h2o's request timeout: it has been arriving for about that long */
        if (took + 1100 >= c->limits->request_timeout_ms)
            fprintf(stderr, "tally: closed the connection from %s: its request's %s did not arrive within "
                            "--request-timeout (%llu ms)\n", c->peer, c->reading_body ? "body" : "headers",
                    (unsigned long long)c->limits->request_timeout_ms);
    }
    atomic_fetch_sub(&c->limits->open, 1);
    free(c);
}

tally_conn *tally_conn_attach(tally_conn_limits *l, h2o_socket_t *sock)
{
    tally_conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->limits = l;
    c->over_limit = atomic_load(&l->open) > l->max_connections;
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[48] = "?", port[8] = "";
    if (len > 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(c->peer, sizeof c->peer, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = c;
    return c;
}

tally_conn *tally_conn_of(h2o_req_t *req)
{
    if (!req->conn->callbacks->get_socket)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    return sock && sock->on_close.cb == on_socket_close ? sock->on_close.data : NULL;
}

void tally_conn_request_arrived(tally_conn *c)
{
    if (c)
        c->reading_since = 0;
}

static int note_arriving(h2o_req_t *req, void *arg)
{
    (void)arg;
    tally_conn *c = tally_conn_of(req);
    if (!c)
        return 0;
    /* begun (its first byte came) and not yet handed to a handler */
    bool arriving = req->timestamps.request_begin_at.tv_sec != 0 && req->processed_at.at.tv_sec == 0;
    c->reading_since = arriving ? wall_ms(&req->timestamps.request_begin_at) : 0;
    c->reading_body = arriving && req->timestamps.request_body_begin_at.tv_sec != 0;
    return 0;
}

void tally_conn_sweep(h2o_context_t *ctx)
{
    H2O_HTTP1_CALLBACKS.foreach_request(ctx, note_arriving, NULL);
}

size_t tally_request_head_size(const h2o_req_t *req)
{
    /* "METHOD PATH HTTP/1.1\r\n", "Host: …\r\n", each "name: value\r\n", the blank line */
    size_t n = req->input.method.len + req->input.path.len + 12 + req->input.authority.len + 8 + 2;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}
