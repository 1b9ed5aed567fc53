/*
 * server.h — the HTTP front: h2o on libuv, one event loop per thread, each
 * with its own listening socket (SO_REUSEPORT) and its own in-place read
 * context from the API layer (opaque: net/ holds no database handle).
 *
 * A loop thread never waits on the writer: a write becomes a job, and its
 * answer comes back through the loop's h2o_multithread queue.  If the client
 * has gone meanwhile, the answer is dropped.  The server owns nothing of the
 * API, the writer or the reader: they are borrowed for its whole run.
 */
#ifndef TALLY_NET_SERVER_H
#define TALLY_NET_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "core/error.h"
#include "net/access_log.h"

typedef struct tally_server_options {
    const char *host;          /* to bind, e.g. "127.0.0.1" */
    int port;                  /* 0 picks a free one */
    int threads;               /* event loops; 0 = one per core */
    const tally_api *api;      /* borrowed */
    const char *tls_cert;      /* PEM files: both set serves HTTPS (HTTP/2 by ALPN), both NULL plain HTTP */
    const char *tls_key;
    int max_connections;       /* open at once; past it requests are answered 503 and the connection closed */
    size_t max_header_size;    /* a request's line and headers, in bytes; past it a 431 */
    uint64_t request_timeout_ms; /* a client's time to send a request (and TLS handshake, and HTTP/2 idle) */
    /* Called once on SIGINT/SIGTERM after the listeners are closed: stop the
     * workers so that every queued job is run and answered. */
    void (*drain)(void *arg);
    void *drain_arg;
    /* The start-up log line's fields (borrowed); the server adds tls and listen. */
    const tally_log_field *startup;
    int nstartup;
} tally_server_options;

/* Serves until SIGINT or SIGTERM, then shuts down cleanly: stops accepting,
 * drains the workers, waits for every answer in flight to be sent, and
 * closes WebSockets with 1001 (going away), and returns 0.  Once it serves,
 * logs the start-up line (stderr) and prints "tally: listening on
 * http://HOST:PORT" (https:// with TLS) on stdout, for whoever waits for it. */
int tally_server_run(const tally_server_options *opt, tally_error *err);

#endif
