/*
 * limits.h — the limits that protect the loops from their clients: how many
 * connections are open at once, how large a request's line and headers may
 * be, and how long a client may take to send a request (slow clients).
 *
 * Connections are counted across every loop (one atomic counter).  Past
 * --max-connections a connection is still accepted, and its requests are
 * answered 503 OVERLOADED (JSON, naming the flag) and the connection closed,
 * so a client learns why instead of seeing a reset; a flood beyond that
 * (TALLY_REFUSING_MAX more) is closed at once, unanswered.
 *
 * Slow clients are h2o's to cut off (its HTTP/1 request timeout, which
 * closes the connection without an answer); h2o says nothing when it does, so
 * each loop looks at its connections' requests now and then (a sweep) to
 * know which are still arriving, and a connection closed while its request
 * was still arriving past the timeout gets a log line.
 *
 * A tally_conn is owned by its connection: made at accept, freed when h2o
 * closes the socket.  Everything here runs on the connection's loop thread,
 * except the counter.
 */
#ifndef TALLY_NET_LIMITS_H
#define TALLY_NET_LIMITS_H

#include <h2o.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define TALLY_REFUSING_MAX 64 /* connections past the limit that are answered 503 before others are just closed */

typedef struct tally_conn_limits {
    int max_connections;
    uint64_t request_timeout_ms;
    atomic_int open; /* connections open now, over every loop */
} tally_conn_limits;

typedef struct tally_conn {
    tally_conn_limits *limits;
    bool over_limit;          /* accepted past --max-connections: its requests are refused */
    uint64_t reading_since;   /* wall-clock ms when the request still arriving began (0: none) */
    bool reading_body;        /* ...and its headers were in, its body not */
    char peer[64];            /* the client's address, for logs */
} tally_conn;

/* Counts a new connection.  false: past the limit and past the refusals,
 * close it at once (nothing was counted). */
bool tally_conn_admit(tally_conn_limits *l);
/* Attaches the record of an admitted connection to its socket (freed, and the
 * count given back, when h2o closes the socket). */
tally_conn *tally_conn_attach(tally_conn_limits *l, h2o_socket_t *sock);
/* The record of the connection a request came on, or NULL. */
tally_conn *tally_conn_of(h2o_req_t *req);
/* A request of this connection reached the handler: it is no longer arriving. */
void tally_conn_request_arrived(tally_conn *c);
/* Notes which HTTP/1 requests of this loop are still arriving (call now and then). */
void tally_conn_sweep(h2o_context_t *ctx);

/* The size of a request's line and headers, counted as HTTP/1.1 sends them. */
size_t tally_request_head_size(const h2o_req_t *req);

#endif
