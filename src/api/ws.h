/*
 * ws.h — the WebSocket protocol at /api/ws (README.md, "Interactive transactions over WebSocket"): one JSON text
 * message each way per call, each request's "id" echoed in its answer.
 *
 *   {"id", "op": "begin", "timeoutMs"}   open an interactive transaction
 *   {"id", "op": "step", "step": {...}}  a transaction step (as in POST /api/transaction);
 *                                        outside begin…commit it runs on its own
 *   {"id", "op": "commit"} / "rollback"
 *   {"id", "op": "subscribe", "after", "models"}  follow the change feed: answered with
 *                                        {"result": {"after": SEQ}}, then {"event": "change", "seq", …}
 *                                        messages (api/changes.h); "unsubscribe" ends it
 *
 * A tally_ws is one connection's protocol state.  It lives on the loop
 * thread that owns the connection; the net layer feeds it messages and the
 * jobs that come back, and gives it a way to send.  It does not know h2o.
 */
#ifndef TALLY_API_WS_H
#define TALLY_API_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

typedef struct tally_ws tally_ws;

typedef struct tally_ws_io {
    void (*send)(void *conn, const char *text, size_t len); /* loop thread; copies text */
    void (*complete)(tally_job *job);                      /* worker thread: post the job back to conn's loop */
    void *conn;                                            /* the net layer's connection (job->origin) */
} tally_ws_io;

/* principal: the key of the upgrade (tally_api_ws_admit), handed over. */
struct tally_principal;
tally_ws *tally_ws_new(const tally_api *api, const tally_ws_io *io, struct tally_principal *principal);
/* A text message arrived. */
void tally_ws_message(tally_ws *ws, const char *text, size_t len);
/* A job of this connection came back (loop thread): sends its answer if the
 * connection is still open, frees the job.  Returns true when ws was freed. */
bool tally_ws_job_done(tally_ws *ws, tally_job *job);
/* The connection is gone: an open transaction is rolled back at once.
 * Returns true when ws was freed (else it is freed by the last job_done). */
bool tally_ws_closed(tally_ws *ws);

#endif
