/*
 * sse.h — the change feed as server-sent events: GET /api/changes with
 * Accept: text/event-stream (README.md, "Change feed").  The answer stays
 * open; each change is an event whose id is its seq, and a comment goes out
 * when nothing changed for a while so that proxies keep the stream.  It is a
 * chain of feed jobs (exec/feed.h), each after the last one's next, and the
 * next is asked for only once h2o has sent the last (its proceed), so a slow
 * client holds at most one page in memory.  An error (410 GONE past
 * retention; a key revoked meanwhile: each page is checked against the key as
 * it is now) is an `error` event, then the end.
 *
 * One loop thread owns a stream; answers from the feed thread reach it
 * through the receiver registered with tally_sse_register.
 */
#ifndef TALLY_NET_SSE_H
#define TALLY_NET_SSE_H

#include <h2o.h>
#include <stdbool.h>

#include "api/api.h"
#include "net/access_log.h"

/* On each loop at start-up: the receiver of this loop's stream answers. */
void tally_sse_register(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *rx);
/* Whether req asks for the event stream of the change feed. */
bool tally_sse_wanted(h2o_req_t *req);
/* Starts the stream for req (0; its log entry is written as it starts), or
 * returns 1 with *refusal the answer to send instead (401, 403, 422…; its
 * body malloc'ed, the caller's).  r is the request as the API layer reads it. */
int tally_sse_start(const tally_api *api, h2o_multithread_receiver_t *rx, h2o_req_t *req, const tally_http_request *r,
                    tally_access_entry *log, tally_http_response *refusal);

#endif
