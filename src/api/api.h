/*
 * api.h — what the HTTP layer asks of the API layer: turn one request into
 * an answer now, or into a job for a worker whose answer comes later.
 *
 * The API layer parses JSON, routes, decodes plans and renders answers; it
 * never touches a database handle (it hands plans to the engine, exec/
 * engine.h, and passes the loop's opaque in-place read context through) and
 * never sees h2o.  The net layer sees jobs only through the functions below.
 */
#ifndef TALLY_API_API_H
#define TALLY_API_API_H

#include <stddef.h>
#include <stdint.h>

#include "core/schema.h"
#include "exec/engine.h"
#include "exec/job.h"

typedef struct tally_api {
    const tally_schema *schema; /* borrowed */
    tally_engine *engine;       /* borrowed */
    size_t max_body;            /* bytes; larger bodies get 413 */
    int max_txn_steps;          /* steps in one transaction */
    uint64_t max_txn_ms;        /* interactive transactions' longest timeout */
} tally_api;

typedef struct tally_http_request {
    const char *method;
    size_t method_len;
    const char *path;   /* raw path, without the query string */
    size_t path_len;
    const char *query;  /* after '?', or NULL */
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *idem_key;             /* the Idempotency-Key header, or NULL */
    size_t idem_key_len;
    tally_engine_local *local;        /* the loop thread's in-place read context (may be NULL) */
    void (*complete)(tally_job *job); /* called (on a worker thread) with a job's answer */
    void *origin;                     /* stored in the job for complete */
} tally_http_request;

typedef struct tally_http_response {
    int status;
    char *body;               /* malloc'ed; the caller frees it */
    size_t body_len;
    const char *content_type; /* static */
    const char *allow;        /* static; set with 405 */
    int retry_after_s;        /* > 0: a Retry-After header */
} tally_http_response;

enum { TALLY_API_LATER = 0, TALLY_API_NOW = 1 };

/* Answers now (returns TALLY_API_NOW, resp filled) or submits a job whose
 * answer reaches req->complete later (returns TALLY_API_LATER). */
int tally_api_handle(const tally_api *api, const tally_http_request *req, tally_http_response *resp);

/* A loop thread's context for answering point reads in place (NULL when the
 * backend cannot); opened and closed by that thread. */
int tally_api_local_open(const tally_api *api, tally_engine_local **out, tally_error *err);
void tally_api_local_close(tally_engine_local *local);

/* What a completed job answers; the strings are the job's. */
typedef struct tally_api_answer {
    int status;
    const char *body;
    size_t body_len;
    int retry_after_s; /* > 0: a Retry-After header */
} tally_api_answer;
tally_api_answer tally_api_job_answer(const tally_job *job);
/* The origin the request gave (tally_http_request.origin, or the WebSocket connection). */
void *tally_api_job_origin(const tally_job *job);
/* Frees a completed job once its answer is sent (or its client has gone). */
void tally_api_job_release(tally_job *job);

#endif
