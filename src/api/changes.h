/*
 * changes.h — the change feed's calls (README.md, "Change feed"): the plan
 * of one page (after, models, first, waitMs), who may read it, and its
 * answers as JSON: a page {"changes": […], "next"}, or one change as an SSE
 * event or a WebSocket message.  The three ways to follow the feed share
 * these; the net and WebSocket layers chain pages, each after the last's
 * next.
 */
#ifndef TALLY_API_CHANGES_H
#define TALLY_API_CHANGES_H

#include <stdbool.h>
#include <stdint.h>

#include "api/auth.h"
#include "core/buf.h"
#include "core/plan.h"
#include "exec/job.h"

#define TALLY_CHANGES_FIRST_DEFAULT 100
#define TALLY_CHANGES_FIRST_MAX 1000
#define TALLY_CHANGES_WAIT_MAX 60000 /* ms */

/* What a follower asks for, decoded from a query string or a message. */
typedef struct tally_changes_ask {
    int64_t after;        /* -1: from now on; 0: from the oldest kept */
    int first;            /* 0: the default */
    int64_t wait_ms;
    int models[64];       /* model indexes (nmodels 0: every model) */
    int nmodels;
} tally_changes_ask;

/* Adds model `name` to ask: 0, or -code (not a model, opts out, too many) with err naming it. */
int tally_changes_ask_model(const tally_schema *schema, tally_changes_ask *ask, const char *name, size_t len,
                            tally_error *err);
/* Whether p may read what ask asks for: `changes`, or read:MODEL of every model asked for
 * (every model of the feed when none is named).  0 or -TALLY_FORBIDDEN. */
int tally_changes_allowed(const tally_schema *schema, const tally_principal *p, const tally_changes_ask *ask,
                          tally_error *err);
/* The query string of GET /api/changes into ask (routes.c): 0 or -code with err. */
int tally_api_changes_ask(const tally_schema *schema, const char *query, size_t len, tally_changes_ask *ask,
                          tally_error *err);
/* The checks of the event stream (net/sse.h) before it starts: origin, token
 * (Authorization or access_token), the query, Last-Event-ID (which wins over
 * after), scopes.  0 with ask filled, or TALLY_API_NOW with resp the refusal. */
int tally_api_changes_admit(const tally_api *api, const tally_http_request *req, const char *last_event_id,
                            size_t lei_len, tally_http_response *resp, tally_changes_ask *ask,
                            tally_principal *who);
/* Before each page of a stream: whether who may still follow ask (its key
 * not revoked, its scopes still enough).  0 or -code with err. */
int tally_changes_recheck(const tally_api *api, tally_principal *who, const tally_changes_ask *ask, tally_error *err);
/* A plan of one TALLY_OP_CHANGES step for ask (handed to the caller). */
tally_plan *tally_changes_plan(const tally_schema *schema, const tally_changes_ask *ask);
/* The job's render: {"changes": […], "next": N}, or the error. */
void tally_changes_render(tally_job *job);
/* One change as JSON: {"seq", "model", "id", "op", "record", "at"}. */
void tally_changes_render_one(tally_buf *b, const tally_schema *schema, const tally_change *c);

#endif
